//! Relay: the member's response head as the client gets it (hop-by-hop fields dropped,
//! ProxyPassReverse applied, our own Connection field), and the body framing on the way back.

use crate::conf::Config;
use crate::conf::model::ReverseTarget;
use crate::http::{BodyFraming, ChunkError, ChunkedScanner, FieldKind, ResponseHead, Version};
use crate::io::{Gather, Src};

/// Fields whose URL ProxyPassReverse rewrites.
fn is_location(name: &[u8]) -> bool {
    name.eq_ignore_ascii_case(b"location")
        || name.eq_ignore_ascii_case(b"content-location")
        || name.eq_ignore_ascii_case(b"uri")
        || name.eq_ignore_ascii_case(b"destination")
}

/// How the body reaches the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientFraming {
    /// As the member framed it (Content-Length or chunked, forwarded verbatim).
    Same,
    /// Chunked from the member to an HTTP/1.0 client: sent de-chunked, delimited by close.
    Dechunk,
    /// Until the member closes: the client connection closes too.
    UntilClose,
}

pub fn client_framing(resp: &ResponseHead, client: Version) -> ClientFraming {
    match resp.body {
        BodyFraming::Chunked if client == Version::Http10 => ClientFraming::Dechunk,
        BodyFraming::UntilClose => ClientFraming::UntilClose,
        _ => ClientFraming::Same,
    }
}

/// Appends the client-bound response head to `g` (whose `input` will be `buf`).
#[allow(clippy::too_many_arguments)] // one call site; the pieces are independent inputs
pub fn response_head(
    g: &mut Gather,
    buf: &[u8],
    resp: &ResponseHead,
    cfg: &Config,
    host: Option<&[u8]>,
    framing: ClientFraming,
    keep_alive: bool,
    client: Version,
) {
    // "NNN reason" exactly as the member sent it, with its CRLF (the parser refuses a bare LF
    // on any line). Unchanged bytes go from the member's buffer, so a head with nothing to
    // drop is one segment with its body.
    let mut start = resp.status_line.start as usize;
    if !buf[start..].starts_with(b"HTTP/1.1 ") {
        g.push_scratch(b"HTTP/1.1 ");
        start += 9;
    }
    g.push(Src::Input, start, resp.status_line.end as usize + 2);
    for f in &resp.fields {
        match f.kind {
            FieldKind::Connection | FieldKind::HopByHop => continue,
            FieldKind::TransferEncoding if framing == ClientFraming::Dechunk => continue,
            _ => {}
        }
        let name = f.name.get(buf);
        if is_location(name) && reverse_map(g, cfg, name, f.value.get(buf), host) {
            continue;
        }
        g.push(Src::Input, f.line.start as usize, f.line.end as usize);
    }
    if !keep_alive {
        g.push_scratch(b"Connection: close\r\n\r\n");
    } else if client == Version::Http10 {
        g.push_scratch(b"Connection: Keep-Alive\r\n\r\n");
    } else {
        g.push(Src::Input, resp.head_len - 2, resp.head_len); // the member's final CRLF
    }
}

/// ProxyPassReverse: when `value` starts with a member URL (plus the target's path), writes
/// the rewritten field and returns true. The public URL uses the client's Host, as httpd does
/// with UseCanonicalName Off.
fn reverse_map(
    g: &mut Gather,
    cfg: &Config,
    name: &[u8],
    value: &[u8],
    host: Option<&[u8]>,
) -> bool {
    for rule in &cfg.proxy_pass_reverse {
        let mut hit = None;
        match &rule.target {
            ReverseTarget::Balancer { balancer, path } => {
                for m in &cfg.balancers[*balancer].members {
                    if let Some(rest) = strip_url_prefix(value, m.url.as_bytes(), path.as_bytes()) {
                        hit = Some(rest);
                        break;
                    }
                }
            }
            ReverseTarget::Url(u) => hit = strip_url_prefix(value, u.as_bytes(), b""),
        }
        let Some(rest) = hit else { continue };
        g.push_scratch(name);
        g.push_scratch(b": ");
        if let Some(h) = host {
            g.push_scratch(b"http://");
            g.push_scratch(h);
        }
        let public = rule.path.as_bytes();
        g.push_scratch(public);
        if !public.ends_with(b"/") && !rest.is_empty() && rest[0] != b'/' {
            g.push_scratch(b"/");
        } else if public.ends_with(b"/") && rest.first() == Some(&b'/') {
            g.push_scratch(&rest[1..]);
            g.push_scratch(b"\r\n");
            return true;
        }
        g.push_scratch(rest);
        g.push_scratch(b"\r\n");
        return true;
    }
    false
}

/// `value` minus the case-insensitive prefix `url` + `path`, if it has it.
fn strip_url_prefix<'a>(value: &'a [u8], url: &[u8], path: &[u8]) -> Option<&'a [u8]> {
    let n = url.len();
    if value.len() < n || !value[..n].eq_ignore_ascii_case(url) {
        return None;
    }
    let rest = &value[n..];
    let path = path.strip_suffix(b"/").unwrap_or(path);
    let rest = rest.strip_prefix(path)?;
    (rest.is_empty() || rest[0] == b'/' || rest[0] == b'?').then_some(rest)
}

/// Progress through a response body.
pub enum RespBody {
    Done,
    Remaining(u64),
    Chunked {
        scanner: ChunkedScanner,
        dechunk: bool,
    },
    UntilClose,
}

impl RespBody {
    pub fn new(resp: &ResponseHead, framing: ClientFraming) -> RespBody {
        match resp.body {
            BodyFraming::None | BodyFraming::Length(0) => RespBody::Done,
            BodyFraming::Length(n) => RespBody::Remaining(n),
            BodyFraming::Chunked => RespBody::Chunked {
                scanner: ChunkedScanner::new(),
                dechunk: framing == ClientFraming::Dechunk,
            },
            BodyFraming::UntilClose => RespBody::UntilClose,
        }
    }

    pub fn is_done(&self) -> bool {
        matches!(self, RespBody::Done)
    }

    /// Pushes the part of `buf[offset..]` that belongs to the body onto `g`; returns how many
    /// bytes of `buf` it consumed. De-chunking pushes only the payload ranges.
    pub fn take(&mut self, g: &mut Gather, buf: &[u8], offset: usize) -> Result<usize, ChunkError> {
        let avail = &buf[offset..];
        let n = match self {
            RespBody::Done => 0,
            RespBody::Remaining(r) => {
                let n = (*r).min(avail.len() as u64) as usize;
                *r -= n as u64;
                if *r == 0 {
                    *self = RespBody::Done;
                }
                g.push(Src::Input, offset, offset + n);
                n
            }
            RespBody::UntilClose => {
                g.push(Src::Input, offset, buf.len());
                avail.len()
            }
            RespBody::Chunked { scanner, dechunk } => {
                let base = buf.as_ptr() as usize;
                let (n, done) = if *dechunk {
                    // Payload slices point into `buf`; forward them in place.
                    scanner.scan(avail, |d| {
                        let s = d.as_ptr() as usize - base;
                        g.push(Src::Input, s, s + d.len());
                    })?
                } else {
                    let r = scanner.scan(avail, |_| {})?;
                    g.push(Src::Input, offset, offset + r.0);
                    r
                };
                if done {
                    *self = RespBody::Done;
                }
                n
            }
        };
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::{Parsed, parse_response};

    /// The client-bound head for `resp` (a whole response) to a keep-alive HTTP/1.1 client, as
    /// the segments of the gather.
    fn relayed(resp: &[u8]) -> Vec<Vec<u8>> {
        let cfg = crate::conf::load_str("Listen 8080\n", std::path::Path::new("t.conf")).unwrap();
        let mut head = ResponseHead::new();
        assert!(matches!(
            parse_response(resp, false, 8192, &mut head),
            Ok(Parsed::Complete)
        ));
        let mut g = Gather::new();
        response_head(
            &mut g,
            resp,
            &head,
            &cfg,
            None,
            ClientFraming::Same,
            true,
            Version::Http11,
        );
        g.input.extend_from_slice(resp);
        g.segments().map(<[u8]>::to_vec).collect()
    }

    #[test]
    fn a_head_with_nothing_to_change_is_relayed_as_the_members_bytes() {
        let resp = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n";
        assert_eq!(relayed(resp), [resp.to_vec()]);
    }

    #[test]
    fn a_relayed_head_drops_hop_by_hop_fields_and_speaks_http_1_1() {
        let resp = b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 3\r\n\r\n";
        assert_eq!(
            relayed(resp).concat(),
            b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n"
        );
        let resp = b"HTTP/1.1 204 No Content\r\nKeep-Alive: timeout=5\r\nA: b\r\n\r\n";
        let segs = relayed(resp);
        assert_eq!(segs.concat(), b"HTTP/1.1 204 No Content\r\nA: b\r\n\r\n");
        assert_eq!(segs.len(), 2);
    }
}
