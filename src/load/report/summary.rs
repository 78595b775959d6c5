//! The human report printed at the end of a run, and the live progress line.

use std::fmt::Write as _;

use hdrhistogram::Histogram;

use super::model::RunReport;
use super::units::{bytes, dur, pct};

/// Percentiles of the latency table, with their column labels.
const TABLE: &[(&str, f64)] = &[
    ("p50", 50.0),
    ("p75", 75.0),
    ("p90", 90.0),
    ("p99", 99.0),
    ("p99.9", 99.9),
    ("p99.99", 99.99),
];

fn at(h: &Histogram<u64>, p: f64) -> f64 {
    h.value_at_percentile(p) as f64
}

/// The end-of-run report: what ran, how fast, latency tables, counts, and whether the generator
/// itself can be trusted.
pub fn summary(r: &RunReport) -> String {
    let mut s = String::new();
    let c = &r.config;
    let open = c.mode != "closed" && !c.mode.is_empty();
    let _ = writeln!(
        s,
        "ringload {}{}",
        c.version,
        if c.io.is_empty() {
            String::new()
        } else {
            format!(" ({})", c.io)
        }
    );
    let method = if c.method.is_empty() {
        "GET"
    } else {
        &c.method
    };
    match c.urls.as_slice() {
        [] => {}
        [u] => {
            let _ = writeln!(s, "  target       {method} {u}");
        }
        us => {
            let _ = writeln!(s, "  targets      {method} {}", us.join(", "));
        }
    }
    if open {
        let _ = writeln!(
            s,
            "  mode         open loop at {:.0} req/s (schedule {})",
            c.target_rate, c.mode
        );
    } else {
        let _ = writeln!(s, "  mode         closed loop");
    }
    let _ = writeln!(
        s,
        "  load         {} threads, {} connections, pipeline {}",
        c.threads, c.connections, c.pipeline
    );
    let secs = r.duration_s.max(0.0);
    let mbps = |b: u64| {
        if secs > 0.0 {
            b as f64 / secs / 1e6
        } else {
            0.0
        }
    };
    let _ = writeln!(
        s,
        "  requests     {} responses in {secs:.2}s, {:.1} req/s{}",
        r.responses,
        r.rate(),
        if open && c.target_rate > 0.0 {
            format!(" ({:.1}% of target)", r.rate() * 100.0 / c.target_rate)
        } else {
            String::new()
        }
    );
    let _ = writeln!(
        s,
        "  throughput   {:.2} MB/s read ({}), {:.2} MB/s written ({})",
        mbps(r.bytes_read),
        bytes(r.bytes_read as f64),
        mbps(r.bytes_written),
        bytes(r.bytes_written as f64)
    );

    // Latency table.
    s.push('\n');
    let mut header = format!("  {:<20}", "latency");
    for (l, _) in TABLE {
        let _ = write!(header, "{l:>9}");
    }
    let _ = write!(header, "{:>9}{:>9}{:>9}", "max", "mean", "stdev");
    let _ = writeln!(s, "{}", header.trim_end());
    let rows: [(&str, &Histogram<u64>); 2] = [
        (if open { "corrected" } else { "latency" }, &r.latency),
        ("service time", &r.service),
    ];
    for (name, h) in rows {
        let mut line = format!("  {name:<20}");
        if h.is_empty() {
            line.push_str("      (no samples)");
        } else {
            for (_, p) in TABLE {
                let _ = write!(line, "{:>9}", dur(at(h, *p)));
            }
            let _ = write!(
                line,
                "{:>9}{:>9}{:>9}",
                dur(h.max() as f64),
                dur(h.mean()),
                dur(h.stdev())
            );
        }
        let _ = writeln!(s, "{line}");
    }
    if !open {
        let _ = writeln!(
            s,
            "  (closed loop: latency is measured from each send; it omits the waits a real \
             client would have had)"
        );
    }
    let p50_99 = |name: &str, h: &Histogram<u64>, s: &mut String| {
        if !h.is_empty() {
            let _ = writeln!(
                s,
                "  {name:<20}p50 {}  p99 {}  max {}",
                dur(at(h, 50.0)),
                dur(at(h, 99.0)),
                dur(h.max() as f64)
            );
        }
    };
    p50_99("connect", &r.connect, &mut s);
    p50_99("ttfb", &r.ttfb, &mut s);
    if open {
        p50_99("send lag", &r.send_lag, &mut s);
    }

    // Counts.
    s.push('\n');
    if r.status.is_empty() {
        let _ = writeln!(s, "  status       none");
    } else {
        let parts: Vec<String> = r
            .status
            .iter()
            .map(|(code, n)| format!("{code}: {n} ({})", pct(*n, r.responses)))
            .collect();
        let _ = writeln!(s, "  status       {}", parts.join(", "));
        let bad = r.bad_status_count();
        if bad > 0 {
            let _ = writeln!(
                s,
                "               {bad} not 2xx/3xx ({})",
                pct(bad, r.responses)
            );
        }
    }
    let errors = r.error_count();
    if errors == 0 {
        let _ = writeln!(s, "  errors       0");
    } else {
        let mut by: Vec<(&String, &u64)> = r.errors.iter().collect();
        by.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        let _ = writeln!(
            s,
            "  errors       {errors} ({} of requests)",
            pct(errors, r.responses + errors)
        );
        for (k, n) in by {
            let _ = writeln!(s, "    {k:<28}{n:>12}");
        }
    }
    let _ = writeln!(
        s,
        "  connections  {} opened, {} requests on reused connections, {} closed by server",
        r.conns.opened, r.conns.reused, r.conns.closed_by_server
    );
    if !r.tally.is_empty() {
        let total: u64 = r.tally.values().sum();
        let mut by: Vec<(&String, &u64)> = r.tally.iter().collect();
        by.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        let w = by
            .iter()
            .map(|(k, _)| k.chars().count())
            .max()
            .unwrap_or(0)
            .min(40);
        let _ = writeln!(s, "  tally");
        for (k, n) in by {
            let k: String = k
                .chars()
                .map(|c| if c.is_control() { '.' } else { c })
                .collect();
            let _ = writeln!(s, "    {k:<w$}  {n:>12}  {:>7}", pct(*n, total));
        }
    }
    let _ = writeln!(
        s,
        "  at stop      {} in flight, {} drained, {} failed, {} abandoned",
        r.in_flight_at_stop, r.drained, r.failed_in_drain, r.abandoned
    );

    // The generator itself.
    s.push('\n');
    let k = &r.cost;
    let _ = writeln!(
        s,
        "  generator    {:.1} CPU-µs/request (user {:.2}s + sys {:.2}s), {:.1}% of its cores, \
         max RSS {}",
        k.cpu_us_per_request,
        k.user_s,
        k.sys_s,
        k.core_use_pct,
        bytes(k.max_rss_kb as f64 * 1024.0)
    );
    let _ = writeln!(s, "  verdict      {}", verdict_line(r));
    s
}

/// `trustworthy`, or `NOT TRUSTWORTHY: reason; reason`.
pub fn verdict_line(r: &RunReport) -> String {
    if r.verdict.trustworthy {
        "trustworthy".into()
    } else if r.verdict.reasons.is_empty() {
        "NOT TRUSTWORTHY".into()
    } else {
        format!("NOT TRUSTWORTHY: {}", r.verdict.reasons.join("; "))
    }
}

/// The live line printed each second: `[  12s]  24000 responses  2001.3 req/s  0 errors`,
/// with the rate over the last second.
pub fn progress_line(elapsed_s: f64, responses: u64, errors: u64, rate: f64) -> String {
    format!("[{elapsed_s:>5.0}s] {responses:>10} responses {rate:>10.1} req/s {errors:>6} errors")
}
