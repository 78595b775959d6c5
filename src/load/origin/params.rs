//! The per-request controls in the query string: `delay`, `status`, `close`, `fail`, `size`
//! and `echo`.

use super::stats::MAX_STATUS;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Fail {
    None,
    Reset,
    Garbage,
}

/// The per-request controls from the query string.
#[derive(Debug, Clone, Copy)]
pub(super) struct Params {
    pub(super) delay_ms: Option<u64>,
    pub(super) status: u16,
    pub(super) close: bool,
    pub(super) fail: Fail,
    pub(super) size: Option<u64>,
    pub(super) echo: bool,
}

pub(super) fn parse_params(query: Option<&[u8]>) -> Result<Params, &'static str> {
    let mut p = Params {
        delay_ms: None,
        status: 200,
        close: false,
        fail: Fail::None,
        size: None,
        echo: false,
    };
    let Some(q) = query else { return Ok(p) };
    for pair in q.split(|&b| b == b'&') {
        let (k, v) = match pair.iter().position(|&b| b == b'=') {
            Some(i) => (&pair[..i], &pair[i + 1..]),
            None => (pair, &b""[..]),
        };
        let v = std::str::from_utf8(v).map_err(|_| "bad query value")?;
        match k {
            b"delay" => p.delay_ms = Some(v.parse().map_err(|_| "bad delay")?),
            b"status" => {
                p.status = match v.parse::<u16>() {
                    Ok(s) if (200..MAX_STATUS as u16).contains(&s) => s,
                    _ => return Err("bad status (200-599)"),
                }
            }
            b"close" => p.close = flag(v),
            b"echo" => p.echo = flag(v),
            b"fail" => {
                p.fail = match v {
                    "reset" => Fail::Reset,
                    "garbage" => Fail::Garbage,
                    "" | "0" | "none" => Fail::None,
                    _ => return Err("bad fail (reset or garbage)"),
                }
            }
            b"size" => p.size = Some(crate::load::parse_size(v).map_err(|_| "bad size")?),
            _ => {}
        }
    }
    Ok(p)
}

fn flag(v: &str) -> bool {
    !matches!(v, "0" | "false" | "no")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params() {
        let p = parse_params(Some(b"delay=5&status=404&close=1&size=1k&echo=1&x=y")).unwrap();
        assert_eq!(p.delay_ms, Some(5));
        assert_eq!(p.status, 404);
        assert!(p.close && p.echo);
        assert_eq!(p.size, Some(1024));
        assert_eq!(parse_params(Some(b"fail=reset")).unwrap().fail, Fail::Reset);
        assert_eq!(
            parse_params(Some(b"fail=garbage")).unwrap().fail,
            Fail::Garbage
        );
        assert!(parse_params(Some(b"status=99")).is_err());
        assert!(parse_params(Some(b"status=600")).is_err());
        assert!(parse_params(Some(b"fail=maybe")).is_err());
        assert!(!parse_params(Some(b"close=0")).unwrap().close);
    }
}
