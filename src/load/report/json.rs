//! The JSON report: every field of [`RunReport`], versioned by `schema` (see
//! [`super::json_schema::JSON_SCHEMA`]). Latencies are in µs.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use hdrhistogram::Histogram;

use super::hgrm::TICKS_PER_HALF_DISTANCE;
use super::model::{RunReport, SCHEMA_VERSION};

/// Renders `r` as one JSON document (pretty enough to diff: one top-level key a line).
pub fn to_json(r: &RunReport) -> String {
    let mut o = Obj::new();
    o.raw("schema", SCHEMA_VERSION.to_string());
    let c = &r.config;
    let mut cfg = Obj::new();
    cfg.raw(
        "urls",
        format!(
            "[{}]",
            c.urls
                .iter()
                .map(|u| string(u))
                .collect::<Vec<_>>()
                .join(",")
        ),
    );
    cfg.str("method", &c.method);
    cfg.raw("connections", c.connections.to_string());
    cfg.raw("threads", c.threads.to_string());
    cfg.raw("pipeline", c.pipeline.to_string());
    cfg.str("mode", &c.mode);
    cfg.raw("target_rate", num(c.target_rate));
    cfg.str("io", &c.io);
    cfg.str("version", &c.version);
    o.raw("config", cfg.finish());
    o.raw("started_unix", num(r.started_unix));
    o.raw("duration_s", num(r.duration_s));
    o.raw("responses", r.responses.to_string());
    o.raw("rate", num(r.rate()));
    o.raw("bytes_read", r.bytes_read.to_string());
    o.raw("bytes_written", r.bytes_written.to_string());
    o.raw("latency", latency(&r.latency));
    o.raw("service", latency(&r.service));
    o.raw("connect", latency(&r.connect));
    o.raw("ttfb", latency(&r.ttfb));
    o.raw("send_lag", latency(&r.send_lag));
    let status: BTreeMap<String, u64> = r.status.iter().map(|(k, v)| (k.to_string(), *v)).collect();
    o.raw("status", counts(&status));
    o.raw("errors", counts(&r.errors));
    o.raw("error_count", r.error_count().to_string());
    let mut conns = Obj::new();
    conns.raw("opened", r.conns.opened.to_string());
    conns.raw("reused", r.conns.reused.to_string());
    conns.raw("closed_by_server", r.conns.closed_by_server.to_string());
    o.raw("conns", conns.finish());
    o.raw("tally", counts(&r.tally));
    o.raw("in_flight_at_stop", r.in_flight_at_stop.to_string());
    o.raw("drained", r.drained.to_string());
    o.raw("abandoned", r.abandoned.to_string());
    o.raw("failed_in_drain", r.failed_in_drain.to_string());
    let mut iv = String::from("[");
    for (i, (t, h)) in r.intervals.iter().enumerate() {
        if i > 0 {
            iv.push(',');
        }
        let _ = write!(
            iv,
            "{{\"t\":{},\"count\":{},\"p50\":{},\"p99\":{},\"max\":{}}}",
            num(*t),
            h.len(),
            h.value_at_quantile(0.5),
            h.value_at_quantile(0.99),
            h.max()
        );
    }
    iv.push(']');
    o.raw("intervals", iv);
    let mut spectrum = Obj::new();
    spectrum.raw("latency", spectrum_of(&r.latency));
    spectrum.raw("service", spectrum_of(&r.service));
    o.raw("spectrum", spectrum.finish());
    let k = &r.cost;
    let mut cost = Obj::new();
    cost.raw("user_s", num(k.user_s));
    cost.raw("sys_s", num(k.sys_s));
    cost.raw("cpu_us_per_request", num(k.cpu_us_per_request));
    cost.raw("core_use_pct", num(k.core_use_pct));
    cost.raw("max_rss_kb", k.max_rss_kb.to_string());
    o.raw("cost", cost.finish());
    let mut verdict = Obj::new();
    verdict.raw("trustworthy", r.verdict.trustworthy.to_string());
    verdict.raw(
        "reasons",
        format!(
            "[{}]",
            r.verdict
                .reasons
                .iter()
                .map(|s| string(s))
                .collect::<Vec<_>>()
                .join(",")
        ),
    );
    o.raw("verdict", verdict.finish());
    let mut s = o.finish_pretty();
    s.push('\n');
    s
}

/// `{"count","min","mean","stdev","max","p50","p75","p90","p99","p999","p9999"}` in µs.
fn latency(h: &Histogram<u64>) -> String {
    let mut o = Obj::new();
    o.raw("count", h.len().to_string());
    o.raw("min", h.min().to_string());
    o.raw("mean", num(h.mean()));
    o.raw("stdev", num(h.stdev()));
    o.raw("max", h.max().to_string());
    for (k, q) in [
        ("p50", 0.5),
        ("p75", 0.75),
        ("p90", 0.9),
        ("p99", 0.99),
        ("p999", 0.999),
        ("p9999", 0.9999),
    ] {
        o.raw(k, h.value_at_quantile(q).to_string());
    }
    o.finish()
}

/// The percentile spectrum as `[[percentile, µs], ...]`, on the .hgrm tick sequence.
fn spectrum_of(h: &Histogram<u64>) -> String {
    let mut s = String::from("[");
    for (i, v) in h.iter_quantiles(TICKS_PER_HALF_DISTANCE).enumerate() {
        if i > 0 {
            s.push(',');
        }
        let _ = write!(
            s,
            "[{},{}]",
            num(v.quantile_iterated_to() * 100.0),
            v.value_iterated_to()
        );
    }
    s.push(']');
    s
}

fn counts(m: &BTreeMap<String, u64>) -> String {
    let mut o = Obj::new();
    for (k, v) in m {
        o.raw(k, v.to_string());
    }
    o.finish()
}

/// A finite number as JSON (Rust never prints exponents); NaN and infinities as `null`.
pub fn num(v: f64) -> String {
    if v.is_finite() {
        let s = format!("{v}");
        if s == "-0" { "0".into() } else { s }
    } else {
        "null".into()
    }
}

/// A JSON string literal.
pub fn string(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 2);
    o.push('"');
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            '\n' => o.push_str("\\n"),
            '\r' => o.push_str("\\r"),
            '\t' => o.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(o, "\\u{:04x}", c as u32);
            }
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

struct Obj(Vec<(String, String)>);

impl Obj {
    fn new() -> Self {
        Obj(Vec::new())
    }
    fn raw(&mut self, k: &str, v: String) {
        self.0.push((k.to_string(), v));
    }
    fn str(&mut self, k: &str, v: &str) {
        self.raw(k, string(v));
    }
    fn finish(self) -> String {
        let parts: Vec<String> = self
            .0
            .into_iter()
            .map(|(k, v)| format!("{}:{}", string(&k), v))
            .collect();
        format!("{{{}}}", parts.join(","))
    }
    fn finish_pretty(self) -> String {
        let parts: Vec<String> = self
            .0
            .into_iter()
            .map(|(k, v)| format!("  {}: {}", string(&k), v))
            .collect();
        format!("{{\n{}\n}}", parts.join(",\n"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes() {
        assert_eq!(string("a\"b\\c\n\u{1}"), "\"a\\\"b\\\\c\\n\\u0001\"");
        assert_eq!(num(f64::NAN), "null");
        assert_eq!(num(1e-7), "0.0000001");
        assert_eq!(num(2.0), "2");
    }
}
