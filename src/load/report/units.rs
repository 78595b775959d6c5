//! Number formatting shared by the text formats: durations in µs scaled to µs/ms/s, byte
//! counts, and thresholds written back the way a user would type them.

/// A duration in µs with three significant digits and a sensible unit: `850µs`, `7.20ms`,
/// `1.23s`.
pub fn dur(us: f64) -> String {
    if !us.is_finite() {
        return "-".into();
    }
    let a = us.abs();
    if a < 1000.0 {
        sig3(us, "µs")
    } else if a < 1_000_000.0 {
        sig3(us / 1000.0, "ms")
    } else {
        sig3(us / 1_000_000.0, "s")
    }
}

/// A threshold in µs, as short as it can be written: `5ms`, `1s`, `250µs`, `2.5ms`.
pub fn dur_short(us: f64) -> String {
    let a = us.abs();
    let (v, unit) = if a >= 1_000_000.0 {
        (us / 1_000_000.0, "s")
    } else if a >= 1000.0 {
        (us / 1000.0, "ms")
    } else {
        (us, "µs")
    };
    format!("{}{unit}", trim_num(v))
}

/// A number with at most three decimals and no trailing zeros: `5`, `0.1`, `2.125`.
pub fn trim_num(v: f64) -> String {
    let s = format!("{v:.3}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" { "0".into() } else { s.into() }
}

fn sig3(v: f64, unit: &str) -> String {
    let a = v.abs();
    if a >= 100.0 || a == 0.0 {
        format!("{v:.0}{unit}")
    } else if a >= 10.0 {
        format!("{v:.1}{unit}")
    } else {
        format!("{v:.2}{unit}")
    }
}

/// Bytes in decimal units: `512B`, `12.3KB`, `4.56MB`, `7.89GB`.
pub fn bytes(n: f64) -> String {
    if n < 1000.0 {
        format!("{n:.0}B")
    } else if n < 1e6 {
        format!("{:.1}KB", n / 1e3)
    } else if n < 1e9 {
        format!("{:.2}MB", n / 1e6)
    } else {
        format!("{:.2}GB", n / 1e9)
    }
}

/// A percentage of `part` in `whole` with two decimals; `0.00%` when `whole` is 0.
pub fn pct(part: u64, whole: u64) -> String {
    if whole == 0 {
        "0.00%".into()
    } else {
        format!("{:.2}%", part as f64 * 100.0 / whole as f64)
    }
}

/// A percentile label: 50 -> `p50`, 99.9 -> `p99.9`, 100 -> `max`.
pub fn pct_label(p: f64) -> String {
    if p >= 100.0 {
        "max".into()
    } else {
        format!("p{}", trim_num(p))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scaling() {
        assert_eq!(dur(850.0), "850µs");
        assert_eq!(dur(7.2), "7.20µs");
        assert_eq!(dur(7200.0), "7.20ms");
        assert_eq!(dur(12_345.0), "12.3ms");
        assert_eq!(dur(1_230_000.0), "1.23s");
        assert_eq!(dur(0.0), "0µs");
        assert_eq!(dur_short(5000.0), "5ms");
        assert_eq!(dur_short(2500.0), "2.5ms");
        assert_eq!(dur_short(1e6), "1s");
        assert_eq!(dur_short(250.0), "250µs");
        assert_eq!(bytes(1_234_567.0), "1.23MB");
        assert_eq!(pct(1, 8), "12.50%");
        assert_eq!(pct_label(99.9), "p99.9");
        assert_eq!(pct_label(100.0), "max");
    }
}
