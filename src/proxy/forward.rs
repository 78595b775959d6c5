//! Forward: the request head for the member, built as segments over the client's input buffer
//! (untouched field lines are not copied here) plus the changed fields in scratch, sent in one
//! send together with whatever body bytes arrived with the head (a small one is copied into
//! one buffer by the I/O seam, `Gather::flatten_small`).

use std::io::Write;
use std::net::{IpAddr, SocketAddr};

use crate::conf::Config;
use crate::conf::model::MemberSpec;
use crate::http::{BodyFraming, ChunkedScanner, FieldKind, Method, RequestHead};
use crate::io::{Gather, Src};

/// Appends the member-bound request head to `g` (whose `input` will be `buf`).
#[allow(clippy::too_many_arguments)] // one call site; the pieces are independent inputs
pub fn request_head(
    g: &mut Gather,
    buf: &[u8],
    req: &RequestHead,
    target: &[u8],
    member: &MemberSpec,
    cfg: &Config,
    peer: SocketAddr,
    backend_keep_alive: bool,
) {
    let m = req.method_span;
    g.push(Src::Input, m.start as usize, m.end as usize);
    g.push_scratch(b" ");
    // A member URL's own path prefixes every request sent to it.
    let base = member.path.as_bytes();
    g.push_scratch(if base.ends_with(b"/") && target.starts_with(b"/") {
        &base[..base.len() - 1]
    } else {
        base
    });
    push_target(g, target);
    g.push_scratch(b" HTTP/1.1\r\n");
    let client_host = req.host.map(|h| h.get(buf));
    match (cfg.proxy_preserve_host, client_host) {
        (true, Some(h)) => push_field(g, b"Host", h),
        _ => g.push_scratch(member.host_field.as_bytes()),
    }
    let has_body = !req.body.is_empty();
    for f in &req.fields {
        let forward = match f.kind {
            FieldKind::Normal | FieldKind::Cookie | FieldKind::MaxForwards => true,
            FieldKind::Expect => has_body,
            FieldKind::XForwardedFor | FieldKind::XForwardedHost | FieldKind::XForwardedServer => {
                !cfg.proxy_add_headers
            }
            FieldKind::Host
            | FieldKind::ContentLength
            | FieldKind::TransferEncoding
            | FieldKind::Connection
            | FieldKind::HopByHop => false,
        };
        if forward {
            g.push(Src::Input, f.line.start as usize, f.line.end as usize);
        }
    }
    // Added after the hop-by-hop stripping, so `Connection: X-Forwarded-For` cannot remove them.
    if cfg.proxy_add_headers {
        let mut ip = [0u8; 48];
        let n = ip_text(peer.ip(), &mut ip);
        merged_field(
            g,
            buf,
            req,
            FieldKind::XForwardedFor,
            b"X-Forwarded-For",
            &ip[..n],
        );
        if let Some(h) = client_host {
            merged_field(
                g,
                buf,
                req,
                FieldKind::XForwardedHost,
                b"X-Forwarded-Host",
                h,
            );
        }
        merged_field(
            g,
            buf,
            req,
            FieldKind::XForwardedServer,
            b"X-Forwarded-Server",
            cfg.server_name.as_bytes(),
        );
    }
    match req.body {
        BodyFraming::Length(n)
            if n > 0 || req.method == Method::Post || req.method == Method::Put =>
        {
            let start = g.scratch.len();
            let _ = write!(g.scratch, "Content-Length: {n}\r\n");
            let end = g.scratch.len();
            g.push(Src::Scratch, start, end);
        }
        BodyFraming::Chunked => g.push_scratch(b"Transfer-Encoding: chunked\r\n"),
        _ => {}
    }
    g.push_scratch(if backend_keep_alive {
        b"Connection: Keep-Alive\r\n\r\n"
    } else {
        b"Connection: close\r\n\r\n"
    });
}

/// Writes `ip` as text into `out`, returning its length. IPv4, the common case, without the
/// formatting machinery (a tenth of its cost per request).
fn ip_text(ip: IpAddr, out: &mut [u8; 48]) -> usize {
    let IpAddr::V4(v4) = ip else {
        let mut w = &mut out[..];
        let _ = write!(w, "{ip}");
        return 48 - w.len();
    };
    let mut n = 0;
    for (i, octet) in v4.octets().into_iter().enumerate() {
        if i > 0 {
            out[n] = b'.';
            n += 1;
        }
        if octet >= 100 {
            out[n] = b'0' + octet / 100;
            n += 1;
        }
        if octet >= 10 {
            out[n] = b'0' + octet / 10 % 10;
            n += 1;
        }
        out[n] = b'0' + octet % 10;
        n += 1;
    }
    n
}

/// The request target, with any byte that may not appear in a request line (a rewrite can
/// insert header values) percent-encoded.
fn push_target(g: &mut Gather, target: &[u8]) {
    let unsafe_byte = |b: u8| b <= b' ' || b >= 0x7f;
    if !target.iter().any(|&b| unsafe_byte(b)) {
        return g.push_scratch(target);
    }
    let start = g.scratch.len();
    for &b in target {
        if unsafe_byte(b) {
            let _ = write!(g.scratch, "%{b:02X}");
        } else {
            g.scratch.push(b);
        }
    }
    let end = g.scratch.len();
    g.push(Src::Scratch, start, end);
}

fn push_field(g: &mut Gather, name: &[u8], value: &[u8]) {
    g.push_scratch(name);
    g.push_scratch(b": ");
    g.push_scratch(value);
    g.push_scratch(b"\r\n");
}

/// `Name: <existing values>, <ours>`, as mod_proxy_http merges X-Forwarded-*.
fn merged_field(
    g: &mut Gather,
    buf: &[u8],
    req: &RequestHead,
    kind: FieldKind,
    name: &[u8],
    ours: &[u8],
) {
    let start = g.scratch.len();
    g.scratch.extend_from_slice(name);
    g.scratch.extend_from_slice(b": ");
    for f in req.fields.iter().filter(|f| f.kind == kind) {
        g.scratch.extend_from_slice(f.value.get(buf));
        g.scratch.extend_from_slice(b", ");
    }
    g.scratch.extend_from_slice(ours);
    g.scratch.extend_from_slice(b"\r\n");
    let end = g.scratch.len();
    g.push(Src::Scratch, start, end);
}

/// Why a request body could not be relayed.
pub enum BodyError {
    /// Malformed chunked framing.
    Malformed,
    /// More chunked data than LimitRequestBody allows.
    TooLarge,
}

/// Progress through a request body as its bytes pass by.
pub enum BodyState {
    /// Nothing (left) to send.
    Done,
    /// Content-Length bytes still to come.
    Remaining(u64),
    /// Chunked, with the payload bytes seen so far and LimitRequestBody (0 = none).
    Chunked {
        scanner: ChunkedScanner,
        seen: u64,
        limit: u64,
    },
}

impl BodyState {
    /// `limit` is LimitRequestBody; a Content-Length over it was refused by the parser already.
    pub fn new(framing: BodyFraming, limit: u64) -> BodyState {
        match framing {
            BodyFraming::Length(n) if n > 0 => BodyState::Remaining(n),
            BodyFraming::Chunked => BodyState::Chunked {
                scanner: ChunkedScanner::new(),
                seen: 0,
                limit,
            },
            _ => BodyState::Done,
        }
    }

    pub fn is_done(&self) -> bool {
        matches!(self, BodyState::Done)
    }

    /// Takes what belongs to this body from `avail` (bytes starting at `offset` of the buffer):
    /// pushes that range to `g` and returns its length. Bytes past the body are left alone
    /// (they are the next pipelined request).
    pub fn take(
        &mut self,
        g: &mut Gather,
        offset: usize,
        avail: &[u8],
        src: Src,
    ) -> Result<usize, BodyError> {
        let n = match self {
            BodyState::Done => 0,
            BodyState::Remaining(r) => {
                let n = (*r).min(avail.len() as u64) as usize;
                *r -= n as u64;
                if *r == 0 {
                    *self = BodyState::Done;
                }
                n
            }
            BodyState::Chunked {
                scanner,
                seen,
                limit,
            } => {
                let mut data = 0u64;
                let (n, done) = scanner
                    .scan(avail, |d| data += d.len() as u64)
                    .map_err(|_| BodyError::Malformed)?;
                *seen += data;
                if *limit > 0 && *seen > *limit {
                    return Err(BodyError::TooLarge);
                }
                if done {
                    *self = BodyState::Done;
                }
                n
            }
        };
        g.push(src, offset, offset + n);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_text_matches_display() {
        for ip in [
            "0.0.0.0",
            "255.255.255.255",
            "10.0.100.9",
            "1.20.3.40",
            "127.0.0.1",
            "::1",
            "2001:db8::ff00:42:8329",
            "::ffff:192.0.2.128",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            let mut out = [0u8; 48];
            let n = ip_text(ip, &mut out);
            assert_eq!(&out[..n], ip.to_string().as_bytes());
        }
    }
}
