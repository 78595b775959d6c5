//! `--fail-if` / `--slo`: parsing the clauses and checking them against a run.
//!
//! Grammar: clauses separated by commas, each `METRIC OP VALUE` (spaces allowed):
//! - `pN` (`p50`, `p99`, `p99.9`, `p99.99`) or `max`: corrected latency, VALUE with a unit `us`
//!   (or `µs`), `ms` or `s`;
//! - `errors`: errors / (responses + errors), VALUE in `%`;
//! - `status`: responses not 2xx/3xx / responses, VALUE in `%`;
//! - `rate`: achieved responses per second, a plain number.
//!
//! OP is `<`, `<=`, `>` or `>=`. A clause that holds is a violation (`p99>5ms` fails the run
//! when p99 is over 5 ms).

use crate::load::plan::{Cmp, Condition, Metric};

use super::model::RunReport;
use super::units;

/// Parses `p99>5ms,errors>0.1%,rate<1000`.
pub fn parse_conditions(s: &str) -> Result<Vec<Condition>, String> {
    let mut out = Vec::new();
    for clause in s.split(',') {
        let c = clause.trim();
        if c.is_empty() {
            return Err(format!("empty clause in {s:?}"));
        }
        out.push(parse_one(c).map_err(|e| format!("bad condition {c:?}: {e}"))?);
    }
    Ok(out)
}

fn parse_one(c: &str) -> Result<Condition, String> {
    let Some(at) = c.find(['<', '>']) else {
        return Err("no comparison (use <, <=, > or >=)".into());
    };
    let bytes = c.as_bytes();
    let eq = bytes.get(at + 1) == Some(&b'=');
    let op = match (bytes[at], eq) {
        (b'<', false) => Cmp::Lt,
        (b'<', true) => Cmp::Le,
        (b'>', false) => Cmp::Gt,
        _ => Cmp::Ge,
    };
    let name = c[..at].trim().to_ascii_lowercase();
    let val = c[at + 1 + usize::from(eq)..].trim();
    if val.is_empty() {
        return Err("no value after the comparison".into());
    }
    let metric = match name.as_str() {
        "max" => Metric::Latency(100.0),
        "errors" => Metric::ErrorRatio,
        "status" => Metric::BadStatusRatio,
        "rate" => Metric::Rate,
        n if n.starts_with('p') => {
            let p: f64 = n[1..]
                .parse()
                .map_err(|_| format!("unknown percentile {n:?} (e.g. p50, p99, p99.9)"))?;
            if !(0.0..=100.0).contains(&p) {
                return Err(format!("percentile {p} is outside 0..100"));
            }
            Metric::Latency(p)
        }
        "" => return Err("no metric before the comparison".into()),
        n => {
            return Err(format!(
                "unknown metric {n:?} (pN, max, errors, status or rate)"
            ));
        }
    };
    let value = match metric {
        Metric::Latency(_) => parse_latency(val)?,
        Metric::ErrorRatio | Metric::BadStatusRatio => {
            let Some(n) = val.strip_suffix('%') else {
                return Err(format!("{val:?} needs a % (e.g. 0.1%)"));
            };
            number(n)? / 100.0
        }
        Metric::Rate => number(val.strip_suffix("/s").unwrap_or(val))?,
    };
    Ok(Condition { metric, op, value })
}

fn number(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
        _ => Err(format!("{s:?} is not a non-negative number")),
    }
}

/// `5ms`, `250us`, `250µs`, `1s`, `1.5s` to µs.
fn parse_latency(s: &str) -> Result<f64, String> {
    for (suffix, mult) in [("us", 1.0), ("µs", 1.0), ("ms", 1000.0), ("s", 1_000_000.0)] {
        if let Some(n) = s.strip_suffix(suffix) {
            return Ok(number(n)? * mult);
        }
    }
    Err(format!("{s:?} needs a unit: us, ms or s"))
}

/// The measured value of `m` in `r`: µs for latencies, a fraction for ratios, req/s for rate.
pub fn measure(m: Metric, r: &RunReport) -> f64 {
    match m {
        Metric::Latency(p) if p >= 100.0 => r.latency.max() as f64,
        Metric::Latency(p) => r.latency.value_at_percentile(p) as f64,
        Metric::ErrorRatio => {
            let e = r.error_count();
            let all = r.responses + e;
            if all == 0 { 0.0 } else { e as f64 / all as f64 }
        }
        Metric::BadStatusRatio => {
            if r.responses == 0 {
                0.0
            } else {
                r.bad_status_count() as f64 / r.responses as f64
            }
        }
        Metric::Rate => r.rate(),
    }
}

fn holds(op: Cmp, a: f64, b: f64) -> bool {
    match op {
        Cmp::Lt => a < b,
        Cmp::Le => a <= b,
        Cmp::Gt => a > b,
        Cmp::Ge => a >= b,
    }
}

fn op_str(op: Cmp) -> &'static str {
    match op {
        Cmp::Lt => "<",
        Cmp::Le => "<=",
        Cmp::Gt => ">",
        Cmp::Ge => ">=",
    }
}

/// One message per condition that holds (a violation), e.g. `p99 7.20ms > 5ms`.
pub fn evaluate(conds: &[Condition], r: &RunReport) -> Vec<String> {
    conds
        .iter()
        .filter_map(|c| {
            let v = measure(c.metric, r);
            holds(c.op, v, c.value).then(|| describe(c, v))
        })
        .collect()
}

/// One message per condition that does NOT hold (an SLO clause that broke), e.g.
/// `p99 120ms >= 100ms` for the clause `p99<100ms`.
pub fn unmet(conds: &[Condition], r: &RunReport) -> Vec<String> {
    conds
        .iter()
        .filter_map(|c| {
            let v = measure(c.metric, r);
            let negated = Condition {
                op: match c.op {
                    Cmp::Lt => Cmp::Ge,
                    Cmp::Le => Cmp::Gt,
                    Cmp::Gt => Cmp::Le,
                    Cmp::Ge => Cmp::Lt,
                },
                ..c.clone()
            };
            (!holds(c.op, v, c.value)).then(|| describe(&negated, v))
        })
        .collect()
}

/// `p99 7.20ms > 5ms`, `errors 0.25% > 0.1%`, `rate 812.3 req/s < 1000 req/s`.
pub fn describe(c: &Condition, measured: f64) -> String {
    let op = op_str(c.op);
    match c.metric {
        Metric::Latency(p) => format!(
            "{} {} {op} {}",
            units::pct_label(p),
            units::dur(measured),
            units::dur_short(c.value)
        ),
        Metric::ErrorRatio | Metric::BadStatusRatio => {
            let name = if c.metric == Metric::ErrorRatio {
                "errors"
            } else {
                "status"
            };
            format!(
                "{name} {} {op} {}%",
                ratio_pct(measured),
                units::trim_num(c.value * 100.0)
            )
        }
        Metric::Rate => format!(
            "rate {measured:.1} req/s {op} {} req/s",
            units::trim_num(c.value)
        ),
    }
}

/// A ratio as a percentage with enough digits to compare against small thresholds.
fn ratio_pct(f: f64) -> String {
    let p = f * 100.0;
    if p != 0.0 && p < 0.01 {
        format!("{p:.4}%")
    } else {
        format!("{p:.2}%")
    }
}
