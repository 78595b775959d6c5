//! ringload: the load tool bundled with ringproxy. `ringload origin` (module [`origin`]) is a
//! fast HTTP/1.1 origin server for tests, demos and benchmarks.
//!
//! Helpers shared by the subcommands live here: byte-size parsing and the SO_REUSEPORT
//! listener builder.

pub mod cli;
pub mod engine;
pub mod origin;
pub mod plan;
pub mod report;
pub mod rng;
pub mod run;
pub mod schedule;
pub mod tls;

/// Parses a byte count: plain digits, or digits followed by `k`, `m` or `g` (binary multiples,
/// case-insensitive; `16k` is 16384, `1g` is 1073741824).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let (digits, mult) = match t.as_bytes().last() {
        Some(b'k' | b'K') => (&t[..t.len() - 1], 1u64 << 10),
        Some(b'm' | b'M') => (&t[..t.len() - 1], 1u64 << 20),
        Some(b'g' | b'G') => (&t[..t.len() - 1], 1u64 << 30),
        _ => (t, 1),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "bad size {s:?} (expected BYTES, or a number with k, m or g)"
        ));
    }
    digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .ok_or_else(|| format!("size {s:?} is too large"))
}

/// An io::Error's message without the " (os error N)" suffix, for one-line errors.
pub fn short_error(e: &std::io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error ") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("0"), Ok(0));
        assert_eq!(parse_size("1000"), Ok(1000));
        assert_eq!(parse_size("16k"), Ok(16384));
        assert_eq!(parse_size("1M"), Ok(1 << 20));
        assert_eq!(parse_size("1g"), Ok(1 << 30));
        assert!(parse_size("").is_err());
        assert!(parse_size("k").is_err());
        assert!(parse_size("-1").is_err());
        assert!(parse_size("1t").is_err());
        assert!(parse_size("99999999999999999999g").is_err());
    }
}
