//! HTTP/1.1 heads and framing: the pure (no I/O) layer of the proxy.
//!
//! - [`parse_request`] parses a client request head **in place**: the caller owns a reusable byte
//!   buffer and gets back a [`RequestHead`] made of [`Span`]s (u32 offsets into that buffer),
//!   never owned strings. The head struct is reused across requests; its field list is cleared
//!   and refilled, so steady-state parsing does not allocate.
//! - [`parse_response`] parses a backend response head, with body framing per RFC 9112 §6.3.
//! - [`chunked::ChunkedScanner`] validates a chunked body as it streams through, for verbatim
//!   pass-through relay.
//! - [`status_reason`] gives the reason phrase for the proxy's own responses.
//!
//! Strictness (RFC 9112): bare LF, obs-fold, whitespace before a field colon, conflicting or
//! malformed framing headers are all rejected. See [`parse_request`] for the full list and the
//! status each rejection carries.
//!
//! Incremental use: between two calls that return [`Parsed::Partial`], the caller may only
//! *append* bytes to the buffer (the head remembers how far it has scanned, so a slow client
//! costs a scan of the new bytes only, and the head is parsed once, when it is complete: request
//! heads by httparse, response heads by `field_lines`).
//! After `Complete` or an error the scan state is reset, so the next call may pass a different
//! buffer (for example `&buf[head_len + body_len..]` for a pipelined request). If the buffer
//! is compacted or replaced while a head is partial, call `reset()` on the head first.

pub mod chunked;
mod field_lines;
mod fields;
mod request;
mod response;
mod scan;
mod status;

pub use chunked::{ChunkError, ChunkedScanner};
pub use request::{RequestError, RequestHead, has_request_line, parse_request, skip_empty_lines};
pub use response::{ResponseError, ResponseHead, parse_response, parse_response_framing};
pub use status::status_reason;

/// The HTTP version of a message. Only HTTP/1.0 and HTTP/1.1 are accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    Http10,
    Http11,
}

impl Version {
    /// `"HTTP/1.0"` or `"HTTP/1.1"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Version::Http10 => "HTTP/1.0",
            Version::Http11 => "HTTP/1.1",
        }
    }
}

/// A request method. Methods are case-sensitive (RFC 9110 §9.1): `get` is [`Method::Other`].
/// The exact bytes are always in [`RequestHead::method_span`]. CONNECT never appears here: it is
/// rejected with 501 by [`parse_request`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Head,
    Post,
    Put,
    Delete,
    Options,
    Trace,
    Patch,
    /// Any other token (extension methods are proxied as they are).
    Other,
}

impl Method {
    /// Idempotent per RFC 9110 §9.2.2: GET, HEAD, OPTIONS, TRACE, PUT, DELETE. A proxy may retry
    /// only these automatically. Unknown methods are not idempotent.
    pub fn is_idempotent(self) -> bool {
        matches!(
            self,
            Method::Get
                | Method::Head
                | Method::Options
                | Method::Trace
                | Method::Put
                | Method::Delete
        )
    }

    /// Maps the method token; `None` for CONNECT.
    pub(crate) fn from_token(t: &[u8]) -> Option<Method> {
        Some(match t {
            b"GET" => Method::Get,
            b"HEAD" => Method::Head,
            b"POST" => Method::Post,
            b"PUT" => Method::Put,
            b"DELETE" => Method::Delete,
            b"OPTIONS" => Method::Options,
            b"TRACE" => Method::Trace,
            b"PATCH" => Method::Patch,
            b"CONNECT" => return None,
            _ => Method::Other,
        })
    }
}

/// A byte range `start..end` into the caller's buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Span {
    pub start: u32,
    pub end: u32,
}

impl Span {
    /// The bytes of this span in `buf` (the buffer that was parsed).
    ///
    /// Panics if `buf` is shorter than `end`.
    #[inline]
    pub fn get<'a>(&self, buf: &'a [u8]) -> &'a [u8] {
        &buf[self.start as usize..self.end as usize]
    }

    /// `end - start`.
    #[inline]
    pub fn len(&self) -> usize {
        (self.end - self.start) as usize
    }

    /// True when the span is empty.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }

    #[inline]
    pub(crate) fn new(start: usize, end: usize) -> Span {
        debug_assert!(start <= end && end <= u32::MAX as usize);
        Span {
            start: start as u32,
            end: end as u32,
        }
    }
}

/// How the body after a head is delimited (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFraming {
    /// No body: a request with neither Content-Length nor Transfer-Encoding, or a response to
    /// HEAD, or a 1xx/204/304 response.
    None,
    /// Exactly this many bytes (`Content-Length`). `Length(0)` is kept distinct from `None` so
    /// that the proxy can tell an explicit `Content-Length: 0` apart; both mean no body bytes.
    Length(u64),
    /// `Transfer-Encoding` whose final coding is `chunked`: use [`ChunkedScanner`].
    Chunked,
    /// Responses only: the body runs until the backend closes the connection (no framing
    /// headers, or a final transfer coding other than chunked). Such a backend connection can
    /// never be reused, and the client side must be re-framed or closed.
    UntilClose,
}

impl BodyFraming {
    /// No body bytes follow the head: no body, or `Content-Length: 0`.
    pub fn is_empty(self) -> bool {
        matches!(self, BodyFraming::None | BodyFraming::Length(0))
    }
}

/// One field line of a head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field {
    /// The field name, as sent (case preserved).
    pub name: Span,
    /// The field value without leading/trailing whitespace (may be empty).
    pub value: Span,
    /// The whole `name: value\r\n` line including its CRLF, for verbatim forwarding.
    pub line: Span,
    /// What the proxy needs to know about this field.
    pub kind: FieldKind,
}

/// Classification of a field for forwarding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldKind {
    /// Forward as is.
    Normal,
    /// `Host`.
    Host,
    /// `Content-Length` (the proxy re-emits its own framing).
    ContentLength,
    /// `Transfer-Encoding` (the proxy re-emits its own framing).
    TransferEncoding,
    /// `Connection` (never forwarded).
    Connection,
    /// Hop-by-hop, never forwarded: `Keep-Alive`, `Proxy-Connection`, `TE`, `Trailer`, `Upgrade`,
    /// `Proxy-Authorization` (requests only), `Proxy-Authenticate` (responses only), and every
    /// field named by a `Connection` header — except `Host`, `Content-Length` and
    /// `Transfer-Encoding`, which keep their own kind even when named there.
    HopByHop,
    /// `Expect`.
    Expect,
    /// `Cookie`.
    Cookie,
    /// `X-Forwarded-For`.
    XForwardedFor,
    /// `X-Forwarded-Host`.
    XForwardedHost,
    /// `X-Forwarded-Server`.
    XForwardedServer,
    /// `Max-Forwards`.
    MaxForwards,
}

/// Result of a successful parse call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parsed {
    /// The head is not complete yet: read more bytes (appending to the same buffer) and call
    /// again. The head struct's public fields are unspecified.
    Partial,
    /// The head is complete and every public field of the head struct is set; `head_len` is the
    /// number of bytes it took (the body, or the next pipelined message, starts there).
    Complete,
}

/// Case-insensitive lookup of the first field named `name`; returns its value.
pub(crate) fn find_field<'a>(fields: &[Field], buf: &'a [u8], name: &str) -> Option<&'a [u8]> {
    fields
        .iter()
        .find(|f| f.name.get(buf).eq_ignore_ascii_case(name.as_bytes()))
        .map(|f| f.value.get(buf))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idempotent_methods() {
        for m in [
            Method::Get,
            Method::Head,
            Method::Options,
            Method::Trace,
            Method::Put,
            Method::Delete,
        ] {
            assert!(m.is_idempotent(), "{m:?}");
        }
        for m in [Method::Post, Method::Patch, Method::Other] {
            assert!(!m.is_idempotent(), "{m:?}");
        }
    }

    #[test]
    fn method_tokens_are_case_sensitive() {
        assert_eq!(Method::from_token(b"GET"), Some(Method::Get));
        assert_eq!(Method::from_token(b"get"), Some(Method::Other));
        assert_eq!(Method::from_token(b"PROPFIND"), Some(Method::Other));
        assert_eq!(Method::from_token(b"CONNECT"), None);
    }

    #[test]
    fn span_get() {
        let s = Span::new(2, 5);
        assert_eq!(s.get(b"abcdefg"), b"cde");
        assert_eq!(s.len(), 3);
        assert!(!s.is_empty());
        assert!(Span::new(4, 4).is_empty());
    }
}
