//! Field-level helpers shared by request and response parsing: classification by name, list
//! tokens, Content-Length and Transfer-Encoding validation, Connection-named hop-by-hop marking.
//! Nothing here allocates.

use super::{Field, FieldKind, Span};

/// Classifies a field by name (case-insensitive).
pub(crate) fn classify(name: &[u8], is_request: bool) -> FieldKind {
    let eq = |s: &str| name.eq_ignore_ascii_case(s.as_bytes());
    match name.len() {
        2 if eq("te") => FieldKind::HopByHop,
        4 if eq("host") => FieldKind::Host,
        6 if eq("expect") => FieldKind::Expect,
        6 if eq("cookie") => FieldKind::Cookie,
        7 if eq("trailer") || eq("upgrade") => FieldKind::HopByHop,
        10 if eq("connection") => FieldKind::Connection,
        10 if eq("keep-alive") => FieldKind::HopByHop,
        12 if eq("max-forwards") => FieldKind::MaxForwards,
        14 if eq("content-length") => FieldKind::ContentLength,
        15 if eq("x-forwarded-for") => FieldKind::XForwardedFor,
        16 if eq("x-forwarded-host") => FieldKind::XForwardedHost,
        16 if eq("proxy-connection") => FieldKind::HopByHop,
        17 if eq("transfer-encoding") => FieldKind::TransferEncoding,
        18 if eq("x-forwarded-server") => FieldKind::XForwardedServer,
        18 if !is_request && eq("proxy-authenticate") => FieldKind::HopByHop,
        19 if is_request && eq("proxy-authorization") => FieldKind::HopByHop,
        _ => FieldKind::Normal,
    }
}

/// The elements of a comma-separated list value, OWS-trimmed, empty elements skipped
/// (RFC 9110 §5.6.1).
pub(crate) fn list_tokens(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|&b| b == b',')
        .map(trim_ows)
        .filter(|t| !t.is_empty())
}

pub(crate) fn trim_ows(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

/// `Content-Length = 1*DIGIT`, no sign, no list, no overflow. The value is already trimmed.
pub(crate) fn parse_content_length(v: &[u8]) -> Option<u64> {
    if v.is_empty() {
        return None;
    }
    let mut n: u64 = 0;
    for &b in v {
        if !b.is_ascii_digit() {
            return None;
        }
        n = n.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
    }
    Some(n)
}

/// What the Transfer-Encoding fields of a message say, all fields taken as one list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TeVerdict {
    /// The final (and only) coding is chunked.
    Chunked,
    /// Some coding we do not implement comes before a final chunked (e.g. `gzip, chunked`).
    UnknownBeforeChunked,
    /// The final coding is not chunked (or the list is empty).
    NotChunkedFinal,
    /// `chunked` appears more than once.
    ChunkedTwice,
}

pub(crate) fn transfer_encoding(fields: &[Field], buf: &[u8]) -> TeVerdict {
    let mut seen_chunked = false;
    let mut last_chunked = false;
    let mut other_before = false;
    let mut any = false;
    for f in fields
        .iter()
        .filter(|f| f.kind == FieldKind::TransferEncoding)
    {
        for t in list_tokens(f.value.get(buf)) {
            any = true;
            if t.eq_ignore_ascii_case(b"chunked") {
                if seen_chunked {
                    return TeVerdict::ChunkedTwice;
                }
                seen_chunked = true;
                last_chunked = true;
            } else {
                // Also catches `chunked;param` (chunked takes no parameters) as a non-chunked
                // coding.
                if !seen_chunked {
                    other_before = true;
                }
                last_chunked = false;
            }
        }
    }
    if !any || !last_chunked {
        TeVerdict::NotChunkedFinal
    } else if other_before {
        TeVerdict::UnknownBeforeChunked
    } else {
        TeVerdict::Chunked
    }
}

/// Connection options that matter to us, over all Connection fields.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ConnOptions {
    pub close: bool,
    pub keep_alive: bool,
}

/// Reads every Connection field: notes `close` / `keep-alive`, and marks each field named there
/// as [`FieldKind::HopByHop`] (Host, Content-Length, Transfer-Encoding and Connection keep their
/// kind: framing and routing must not be switched off by a client). Compares token slices
/// against field names; no allocation.
pub(crate) fn apply_connection(fields: &mut [Field], buf: &[u8]) -> ConnOptions {
    let mut opts = ConnOptions::default();
    for i in 0..fields.len() {
        if fields[i].kind != FieldKind::Connection {
            continue;
        }
        let value: Span = fields[i].value;
        for t in list_tokens(value.get(buf)) {
            if t.eq_ignore_ascii_case(b"close") {
                opts.close = true;
            } else if t.eq_ignore_ascii_case(b"keep-alive") {
                opts.keep_alive = true;
            }
            for f in fields.iter_mut() {
                let keeps = matches!(
                    f.kind,
                    FieldKind::Host
                        | FieldKind::ContentLength
                        | FieldKind::TransferEncoding
                        | FieldKind::Connection
                        | FieldKind::HopByHop
                );
                if !keeps && f.name.get(buf).eq_ignore_ascii_case(t) {
                    f.kind = FieldKind::HopByHop;
                }
            }
        }
    }
    opts
}

/// Converts httparse's request headers (sub-slices of `buf`) to spans, classifying each.
pub(crate) fn collect_fields(headers: &[httparse::Header<'_>], buf: &[u8], out: &mut Vec<Field>) {
    let base = buf.as_ptr() as usize;
    for h in headers {
        let name_start = h.name.as_ptr() as usize - base;
        let name_end = name_start + h.name.len();
        // Values contain no LF, so the first LF after the colon ends the line (the scanner has
        // already checked it is preceded by CR).
        let lf =
            name_end + super::scan::find_byte::<b'\n'>(&buf[name_end..]).expect("complete head");
        let value = if h.value.is_empty() {
            Span::new(lf - 1, lf - 1)
        } else {
            let s = h.value.as_ptr() as usize - base;
            Span::new(s, s + h.value.len())
        };
        out.push(Field {
            name: Span::new(name_start, name_end),
            value,
            line: Span::new(name_start, lf + 1),
            kind: classify(h.name.as_bytes(), true),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification() {
        assert_eq!(classify(b"HOST", true), FieldKind::Host);
        assert_eq!(classify(b"content-LENGTH", true), FieldKind::ContentLength);
        assert_eq!(
            classify(b"Transfer-Encoding", false),
            FieldKind::TransferEncoding
        );
        assert_eq!(classify(b"TE", true), FieldKind::HopByHop);
        assert_eq!(classify(b"Keep-Alive", true), FieldKind::HopByHop);
        assert_eq!(classify(b"Proxy-Connection", true), FieldKind::HopByHop);
        assert_eq!(classify(b"Upgrade", true), FieldKind::HopByHop);
        assert_eq!(classify(b"Trailer", false), FieldKind::HopByHop);
        assert_eq!(classify(b"Proxy-Authorization", true), FieldKind::HopByHop);
        assert_eq!(classify(b"Proxy-Authorization", false), FieldKind::Normal);
        assert_eq!(classify(b"Proxy-Authenticate", false), FieldKind::HopByHop);
        assert_eq!(classify(b"Proxy-Authenticate", true), FieldKind::Normal);
        assert_eq!(classify(b"x-forwarded-for", true), FieldKind::XForwardedFor);
        assert_eq!(
            classify(b"X-Forwarded-Host", true),
            FieldKind::XForwardedHost
        );
        assert_eq!(
            classify(b"X-Forwarded-Server", true),
            FieldKind::XForwardedServer
        );
        assert_eq!(classify(b"Max-Forwards", true), FieldKind::MaxForwards);
        assert_eq!(classify(b"Expect", true), FieldKind::Expect);
        assert_eq!(classify(b"Cookie", true), FieldKind::Cookie);
        assert_eq!(classify(b"Hosts", true), FieldKind::Normal);
        assert_eq!(classify(b"X-Foo", true), FieldKind::Normal);
    }

    #[test]
    fn content_length_values() {
        assert_eq!(parse_content_length(b"0"), Some(0));
        assert_eq!(parse_content_length(b"0005"), Some(5));
        assert_eq!(
            parse_content_length(b"18446744073709551615"),
            Some(u64::MAX)
        );
        for bad in [
            &b""[..],
            b"+5",
            b"-1",
            b"5x",
            b" 5",
            b"5, 5",
            b"18446744073709551616",
            b"0x10",
        ] {
            assert_eq!(
                parse_content_length(bad),
                None,
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn tokens() {
        let v: Vec<&[u8]> = list_tokens(b" a ,, b\t,c,").collect();
        assert_eq!(v, vec![&b"a"[..], b"b", b"c"]);
        assert_eq!(list_tokens(b" , ").count(), 0);
    }
}
