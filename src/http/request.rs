//! Client request heads.

use super::fields::{self, TeVerdict};
use super::scan::{HeadScan, ScanError, ScanLimits};
use super::{BodyFraming, Field, FieldKind, Method, Parsed, Span, Version};
use crate::conf::model::Limits;
use std::mem::MaybeUninit;

/// Size of the on-stack httparse header array: the effective cap on request fields whatever
/// `Limits::header_fields` says.
const MAX_FIELDS: usize = 128;

/// A parsed request head: spans into the caller's buffer. Reuse one per connection (or per
/// shard): `fields` keeps its capacity, so steady-state parsing does not allocate.
#[derive(Debug, Clone)]
pub struct RequestHead {
    pub method: Method,
    /// The method token as sent.
    pub method_span: Span,
    /// The request target as sent (origin-form `/p?q`, absolute-form `http://h/p?q`, or `*`).
    pub target: Span,
    /// The target without its query. For absolute-form, the path part after the authority,
    /// which may be empty (`http://h` or `http://h?q`): forward `/` then. For `*`, `*`.
    pub path: Span,
    /// What follows the first `?` (possibly empty), if there is a `?`.
    pub query: Option<Span>,
    /// For absolute-form only, the authority (`host[:port]`, non-empty). RFC 9112 §3.2.2: the
    /// authority then takes precedence over the Host header for routing.
    pub authority: Option<Span>,
    pub version: Version,
    /// Every field line, in order.
    pub fields: Vec<Field>,
    /// Bytes from the start of the buffer to the end of the head (after the empty line),
    /// including any empty lines skipped before the request line.
    pub head_len: usize,
    pub body: BodyFraming,
    /// `Connection: close`, or HTTP/1.0 without `Connection: keep-alive`: close after the
    /// response.
    pub conn_close: bool,
    /// HTTP/1.1 with `Expect: 100-continue` (ignored in HTTP/1.0, RFC 9110 §10.1.1).
    pub expect_continue: bool,
    /// The Host field's value (at most one Host field is accepted).
    pub host: Option<Span>,
    /// The request line, without CRLF (for `%r` in the access log).
    pub request_line: Span,
    scan: HeadScan,
}

impl Default for RequestHead {
    fn default() -> Self {
        Self::new()
    }
}

impl RequestHead {
    /// An empty head whose field list has room for 32 fields.
    pub fn new() -> Self {
        RequestHead {
            method: Method::Get,
            method_span: Span::default(),
            target: Span::default(),
            path: Span::default(),
            query: None,
            authority: None,
            version: Version::Http11,
            fields: Vec::with_capacity(32),
            head_len: 0,
            body: BodyFraming::None,
            conn_close: false,
            expect_continue: false,
            host: None,
            request_line: Span::default(),
            scan: HeadScan::default(),
        }
    }

    /// Forgets a partial scan. Needed only if the buffer was compacted or replaced while
    /// [`parse_request`] was returning `Partial`.
    pub fn reset(&mut self) {
        self.scan.reset();
        self.fields.clear();
    }

    /// The value of the first field named `name` (case-insensitive).
    pub fn field<'a>(&self, buf: &'a [u8], name: &str) -> Option<&'a [u8]> {
        super::find_field(&self.fields, buf, name)
    }
}

/// Why a request is rejected: the status to answer with (the connection is then closed) and a
/// short static reason for the error log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestError {
    pub status: u16,
    pub reason: &'static str,
}

const fn err(status: u16, reason: &'static str) -> RequestError {
    RequestError { status, reason }
}

/// Parses a request head at the start of `buf` into `head`.
///
/// Returns `Partial` until the head is complete (call again with more bytes appended), then
/// `Complete` with every field of `head` set. Rejections, with the status they carry:
///
/// - 400: bare LF anywhere in the head; obs-fold; whitespace between a field name and its colon;
///   bad method token, control characters in the target, a bad field name or value; a target
///   that is not origin-form (`/…`), absolute-form (`http://…`, `https://…`, non-empty
///   authority) or `*` with OPTIONS; HTTP/1.1 without Host; more than one Host; a Host value with
///   characters outside an authority; Content-Length with Transfer-Encoding; more than one
///   Content-Length (even identical); a Content-Length that is not `1*DIGIT` or overflows u64;
///   Transfer-Encoding in HTTP/1.0; Transfer-Encoding whose final coding is not chunked, or
///   chunked twice; a malformed version.
/// - 413: a Content-Length above `limits.body` (when that is not 0).
/// - 414: a request line longer than `limits.request_line` (detected while partial too).
/// - 431: more than `limits.header_fields` fields (128 at most), a field line longer than
///   `limits.field_size`, a head longer than `limits.head_size` (detected while partial too).
/// - 501: CONNECT; a transfer coding other than chunked before the final chunked.
/// - 505: a well-formed version other than HTTP/1.0 and HTTP/1.1.
///
/// The request line is checked as soon as it has ended (method, target, version, CONNECT), so
/// those rejections come while the rest of the head is partial too.
pub fn parse_request(
    buf: &[u8],
    limits: &Limits,
    head: &mut RequestHead,
) -> Result<Parsed, RequestError> {
    let lim = ScanLimits {
        first_line: limits.request_line,
        field_line: limits.field_size,
        fields: limits.header_fields,
        head: limits.head_size.min(u32::MAX as usize),
    };
    let scanned = head.scan.scan(buf, &lim);
    let first = (head.scan.first_start, head.scan.first_end);
    let head_len = match scanned {
        Ok(None) => {
            if let Some(line) = head.scan.unchecked_first_line() {
                if let Err(e) = early_request_line(buf, line, head) {
                    head.scan.reset();
                    return Err(e);
                }
                head.scan.first_checked = true;
            }
            return Ok(Parsed::Partial);
        }
        Ok(Some(n)) => {
            head.scan.reset();
            n
        }
        Err(e) => {
            // httpd reads the request line before the fields: its fault comes first, whether
            // the head arrived whole or in pieces.
            let line_fault = head
                .scan
                .unchecked_first_line()
                .and_then(|line| early_request_line(buf, line, head).err());
            head.scan.reset();
            if let Some(f) = line_fault {
                return Err(f);
            }
            return Err(match e {
                ScanError::FirstLineTooLong => err(414, "request line too long"),
                ScanError::FieldLineTooLong => err(431, "field line too long"),
                ScanError::TooManyFields => err(431, "too many fields"),
                ScanError::HeadTooLarge => err(431, "request head too large"),
                ScanError::BareLf => err(400, "bare LF"),
                ScanError::ObsFold => err(400, "obs-fold"),
                ScanError::SpaceBeforeColon => err(400, "whitespace before colon"),
            });
        }
    };
    let r = complete(&buf[..head_len], first, limits, head);
    if r.is_ok() {
        head.head_len = head_len;
    }
    r
}

fn complete(
    buf: &[u8],
    line: (usize, usize),
    limits: &Limits,
    head: &mut RequestHead,
) -> Result<Parsed, RequestError> {
    head.fields.clear();
    // Uninitialised: filling 128 empty headers would cost more than parsing a small head.
    let mut storage = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_FIELDS];
    let n = (limits.header_fields.saturating_add(1)).min(MAX_FIELDS);
    let mut req = httparse::Request::new(&mut []);
    match req.parse_with_uninit_headers(buf, &mut storage[..n]) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => return Err(err(400, "malformed head")),
        Err(e) => {
            // A fault in the fields after a complete request line: the line's own comes first.
            if req.version.is_some() {
                request_line(&req, buf, line, head)?;
            }
            return Err(httparse_error(e, &buf[line.0..line.1]));
        }
    }
    request_line(&req, buf, line, head)?;
    fields::collect_fields(req.headers, buf, &mut head.fields);
    head_semantics(buf, limits, head)?;
    Ok(Parsed::Complete)
}

/// The request line of a head that has not ended yet, checked as soon as the line itself has:
/// a malformed one is answered at once, as httpd does, not when the head ends or times out.
fn early_request_line(
    buf: &[u8],
    line: (usize, usize),
    head: &mut RequestHead,
) -> Result<(), RequestError> {
    let mut req = httparse::Request::new(&mut []);
    // Up to the line's CRLF: httparse then wants the fields and says Partial.
    if let Err(e) = req.parse(&buf[..line.1 + 2]) {
        return Err(httparse_error(e, &buf[line.0..line.1]));
    }
    if req.version.is_none() {
        return Ok(()); // not reached by httparse: left to the complete head
    }
    request_line(&req, buf, line, head)
}

/// An httparse error as a status; `line` is the request line.
fn httparse_error(e: httparse::Error, line: &[u8]) -> RequestError {
    match e {
        // httparse stops at the first bad byte without telling whether it was in the method or
        // the target.
        httparse::Error::Token => err(400, "bad method or target"),
        httparse::Error::Version => version_error(line),
        httparse::Error::HeaderName => err(400, "bad field name"),
        httparse::Error::HeaderValue => err(400, "bad field value"),
        httparse::Error::TooManyHeaders => err(431, "too many fields"),
        _ => err(400, "malformed head"),
    }
}

/// Method, target and version from `req`, httparse's parse of `buf` (which starts where the
/// head does); `line` is the request line's span.
fn request_line(
    req: &httparse::Request<'_, '_>,
    buf: &[u8],
    (line_start, line_end): (usize, usize),
    head: &mut RequestHead,
) -> Result<(), RequestError> {
    let base = buf.as_ptr() as usize;
    let off = |s: &str| s.as_ptr() as usize - base;

    let method_str = req.method.expect("parsed");
    let method = Method::from_token(method_str.as_bytes()).ok_or(err(501, "CONNECT"))?;
    head.method = method;
    let m0 = off(method_str);
    head.method_span = Span::new(m0, m0 + method_str.len());
    head.version = if req.version == Some(0) {
        Version::Http10
    } else {
        Version::Http11
    };
    head.request_line = Span::new(line_start, line_end);

    let target = req.path.expect("parsed");
    let t0 = off(target);
    head.target = Span::new(t0, t0 + target.len());
    parse_target(target.as_bytes(), t0, method, head)
}

/// 505 for `HTTP/d.d` other than 1.0/1.1, 400 for anything else malformed.
fn version_error(line: &[u8]) -> RequestError {
    let v = match line.iter().rposition(|&b| b == b' ') {
        Some(i) => &line[i + 1..],
        None => return err(400, "malformed request line"),
    };
    match v {
        [b'H', b'T', b'T', b'P', b'/', a, b'.', b] if a.is_ascii_digit() && b.is_ascii_digit() => {
            err(505, "unsupported HTTP version")
        }
        _ => err(400, "malformed HTTP version"),
    }
}

/// Splits the target into path / query / authority, checking its form.
fn parse_target(
    t: &[u8],
    t0: usize,
    method: Method,
    head: &mut RequestHead,
) -> Result<(), RequestError> {
    head.authority = None;
    if t == b"*" {
        if method != Method::Options {
            return Err(err(400, "asterisk-form target without OPTIONS"));
        }
        head.path = Span::new(t0, t0 + 1);
        head.query = None;
        return Ok(());
    }
    if t.contains(&b'#') {
        return Err(err(400, "fragment in request target"));
    }
    let path_start = if t.first() == Some(&b'/') {
        0
    } else {
        let scheme_len = if t.len() >= 7 && t[..7].eq_ignore_ascii_case(b"http://") {
            7
        } else if t.len() >= 8 && t[..8].eq_ignore_ascii_case(b"https://") {
            8
        } else {
            return Err(err(400, "bad request target"));
        };
        let rest = &t[scheme_len..];
        let auth_len = rest
            .iter()
            .position(|&b| b == b'/' || b == b'?')
            .unwrap_or(rest.len());
        if auth_len == 0 || !rest[..auth_len].iter().all(|&b| is_authority_byte(b)) {
            return Err(err(400, "bad authority in target"));
        }
        let a0 = t0 + scheme_len;
        head.authority = Some(Span::new(a0, a0 + auth_len));
        scheme_len + auth_len
    };
    match t[path_start..].iter().position(|&b| b == b'?') {
        Some(q) => {
            let q = path_start + q;
            head.path = Span::new(t0 + path_start, t0 + q);
            head.query = Some(Span::new(t0 + q + 1, t0 + t.len()));
        }
        None => {
            head.path = Span::new(t0 + path_start, t0 + t.len());
            head.query = None;
        }
    }
    Ok(())
}

/// Bytes allowed in `host[:port]` (reg-name, IP-literal, pct-encoding, port); no userinfo.
fn is_authority_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=%:[]".contains(&b)
}

/// Field-level rules: Host, framing, Connection, Expect.
fn head_semantics(buf: &[u8], limits: &Limits, head: &mut RequestHead) -> Result<(), RequestError> {
    let mut host = None;
    let mut cl: Option<Span> = None;
    let mut te = false;
    for f in &head.fields {
        match f.kind {
            FieldKind::Host => {
                if host.is_some() {
                    return Err(err(400, "more than one Host"));
                }
                host = Some(f.value);
            }
            FieldKind::ContentLength => {
                if cl.is_some() {
                    return Err(err(400, "more than one Content-Length"));
                }
                cl = Some(f.value);
            }
            FieldKind::TransferEncoding => te = true,
            _ => {}
        }
    }
    if let Some(h) = host {
        if !h.get(buf).iter().all(|&b| is_authority_byte(b)) {
            return Err(err(400, "bad Host"));
        }
    } else if head.version == Version::Http11 {
        return Err(err(400, "HTTP/1.1 without Host"));
    }
    head.host = host;

    head.body = if te {
        if head.version == Version::Http10 {
            return Err(err(400, "Transfer-Encoding in HTTP/1.0"));
        }
        if cl.is_some() {
            return Err(err(400, "Content-Length with Transfer-Encoding"));
        }
        match fields::transfer_encoding(&head.fields, buf) {
            TeVerdict::Chunked => BodyFraming::Chunked,
            TeVerdict::UnknownBeforeChunked => return Err(err(501, "unsupported transfer coding")),
            TeVerdict::NotChunkedFinal => {
                return Err(err(400, "final transfer coding not chunked"));
            }
            TeVerdict::ChunkedTwice => return Err(err(400, "chunked applied twice")),
        }
    } else if let Some(v) = cl {
        let n = fields::parse_content_length(v.get(buf)).ok_or(err(400, "bad Content-Length"))?;
        if limits.body != 0 && n > limits.body {
            return Err(err(413, "body larger than LimitRequestBody"));
        }
        BodyFraming::Length(n)
    } else {
        BodyFraming::None
    };

    // Before Connection marking: the client waits for a 100 even if it (oddly) named Expect
    // in Connection.
    head.expect_continue = head.version == Version::Http11
        && head.fields.iter().any(|f| {
            f.kind == FieldKind::Expect && f.value.get(buf).eq_ignore_ascii_case(b"100-continue")
        });
    let conn = fields::apply_connection(&mut head.fields, buf);
    head.conn_close = match head.version {
        Version::Http11 => conn.close,
        Version::Http10 => conn.close || !conn.keep_alive,
    };
    Ok(())
}

/// True when `buf` holds a whole request line, after the empty lines that `parse_request`
/// skips. httpd answers a head that ends there (the client closed) with 400; before that, it
/// closes without a word.
pub fn has_request_line(buf: &[u8]) -> bool {
    skip_empty_lines(buf).contains(&b'\n')
}

/// `buf` from where its request line starts: past the empty lines before it, which
/// `parse_request` skips (RFC 9112 §2.2).
pub fn skip_empty_lines(buf: &[u8]) -> &[u8] {
    let start = buf
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(buf.len());
    &buf[start..]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_line_is_whole_once_its_line_ends() {
        for (buf, want) in [
            (&b""[..], false),
            (b"\r\n\r\n", false),
            (b"GET / HT", false),
            (b"\r\nGET / HTTP/1.1\r", false),
            (b"GET / HTTP/1.1\r\n", true),
            (b"\r\nGET / HTTP/1.1\r\nHost: a", true),
            (b"garbage\n", true),
        ] {
            assert_eq!(
                has_request_line(buf),
                want,
                "{:?}",
                String::from_utf8_lossy(buf)
            );
        }
    }

    fn parse(input: &[u8]) -> Result<(Parsed, RequestHead), RequestError> {
        let mut h = RequestHead::new();
        parse_request(input, &Limits::default(), &mut h).map(|p| (p, h))
    }

    fn complete_head(input: &[u8]) -> RequestHead {
        match parse(input) {
            Ok((Parsed::Complete, h)) => h,
            other => panic!("{:?}: {other:?}", String::from_utf8_lossy(input)),
        }
    }

    fn status_of(input: &[u8]) -> u16 {
        match parse(input) {
            Err(e) => e.status,
            Ok((p, _)) => panic!("{:?} parsed as {p:?}", String::from_utf8_lossy(input)),
        }
    }

    #[test]
    fn get_with_three_fields() {
        let buf = b"GET /a/b?x=1&y HTTP/1.1\r\nHost: example.com\r\nUser-Agent:  curl/8 \r\nAccept: */*\r\n\r\n";
        let h = complete_head(buf);
        assert_eq!(h.method, Method::Get);
        assert_eq!(h.method_span.get(buf), b"GET");
        assert_eq!(h.target.get(buf), b"/a/b?x=1&y");
        assert_eq!(h.path.get(buf), b"/a/b");
        assert_eq!(h.query.unwrap().get(buf), b"x=1&y");
        assert_eq!(h.authority, None);
        assert_eq!(h.version, Version::Http11);
        assert_eq!(h.request_line.get(buf), b"GET /a/b?x=1&y HTTP/1.1");
        assert_eq!(h.head_len, buf.len());
        assert_eq!(h.fields.len(), 3);
        let f = &h.fields;
        assert_eq!(f[0].name.get(buf), b"Host");
        assert_eq!(f[0].value.get(buf), b"example.com");
        assert_eq!(f[0].line.get(buf), b"Host: example.com\r\n");
        assert_eq!(f[0].kind, FieldKind::Host);
        assert_eq!(f[1].name.get(buf), b"User-Agent");
        assert_eq!(f[1].value.get(buf), b"curl/8");
        assert_eq!(f[1].line.get(buf), b"User-Agent:  curl/8 \r\n");
        assert_eq!(f[1].kind, FieldKind::Normal);
        assert_eq!(f[2].value.get(buf), b"*/*");
        assert_eq!(f[2].line.get(buf), b"Accept: */*\r\n");
        assert_eq!(h.host.unwrap().get(buf), b"example.com");
        assert_eq!(h.body, BodyFraming::None);
        assert!(!h.conn_close);
        assert!(!h.expect_continue);
        assert_eq!(h.field(buf, "user-agent"), Some(&b"curl/8"[..]));
        assert_eq!(h.field(buf, "X-Missing"), None);
    }

    #[test]
    fn empty_field_value() {
        let buf = b"GET / HTTP/1.1\r\nHost: h\r\nX-Empty:\r\nX-Blank:   \r\n\r\n";
        let h = complete_head(buf);
        assert_eq!(h.fields[1].value.get(buf), b"");
        assert_eq!(h.fields[1].line.get(buf), b"X-Empty:\r\n");
        assert_eq!(h.fields[2].value.get(buf), b"");
        assert_eq!(h.fields[2].line.get(buf), b"X-Blank:   \r\n");
    }

    #[test]
    fn partial_then_complete() {
        let buf = b"POST /up HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello";
        let head_end = buf.len() - 5;
        let mut h = RequestHead::new();
        let lim = Limits::default();
        for n in 0..head_end {
            assert_eq!(
                parse_request(&buf[..n], &lim, &mut h),
                Ok(Parsed::Partial),
                "at {n}"
            );
        }
        assert_eq!(
            parse_request(&buf[..head_end], &lim, &mut h),
            Ok(Parsed::Complete)
        );
        assert_eq!(h.head_len, head_end);
        assert_eq!(h.body, BodyFraming::Length(5));
        assert_eq!(h.method, Method::Post);
        // the same, in two uneven pieces, with the body already there
        let mut h = RequestHead::new();
        assert_eq!(parse_request(&buf[..23], &lim, &mut h), Ok(Parsed::Partial));
        assert_eq!(parse_request(buf, &lim, &mut h), Ok(Parsed::Complete));
        assert_eq!(h.head_len, head_end);
        assert_eq!(&buf[h.head_len..], b"hello");
    }

    #[test]
    fn a_bad_request_line_is_rejected_before_the_head_ends() {
        for (buf, status) in [
            (&b"G\x01T / HTTP/1.1\r\nHost: a"[..], 400),
            (b"GET / HTTP/1.3\r\n", 505),
            (b"GET / HTTP/1.1 x\r\nHo", 400),
            (b"GET /\r\n", 400),
            (b"GET a/b HTTP/1.1\r\n", 400),
            (b"GET * HTTP/1.1\r\n", 400),
            (b"\r\nCONNECT a:443 HTTP/1.1\r\n", 501),
        ] {
            assert_eq!(status_of(buf), status, "{:?}", String::from_utf8_lossy(buf));
        }
        for buf in [
            &b"GET / HTTP/1.1\r\nHost: a"[..],
            b"\r\nOPTIONS * HTTP/1.1\r\n",
            b"GET http://h/p?q HTTP/1.0\r\n",
        ] {
            assert!(matches!(parse(buf), Ok((Parsed::Partial, _))), "{buf:?}");
        }
        // Checked once, then the head completes as usual.
        let buf = b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n";
        let (lim, mut h) = (Limits::default(), RequestHead::new());
        assert_eq!(parse_request(&buf[..20], &lim, &mut h), Ok(Parsed::Partial));
        assert_eq!(parse_request(&buf[..24], &lim, &mut h), Ok(Parsed::Partial));
        assert_eq!(parse_request(buf, &lim, &mut h), Ok(Parsed::Complete));
        assert_eq!(h.path.get(buf), b"/x");
    }

    #[test]
    fn pipelined() {
        let buf = b"GET /one HTTP/1.1\r\nHost: h\r\n\r\nGET /two HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\nGET /thr";
        let lim = Limits::default();
        let mut h = RequestHead::new();
        assert_eq!(parse_request(buf, &lim, &mut h), Ok(Parsed::Complete));
        assert_eq!(h.path.get(buf), b"/one");
        assert!(!h.conn_close);
        let second = &buf[h.head_len..];
        assert_eq!(parse_request(second, &lim, &mut h), Ok(Parsed::Complete));
        assert_eq!(h.path.get(second), b"/two");
        assert!(h.conn_close);
        let third = &second[h.head_len..];
        assert_eq!(parse_request(third, &lim, &mut h), Ok(Parsed::Partial));
    }

    #[test]
    fn leading_empty_lines_are_skipped() {
        let buf = b"\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n";
        let h = complete_head(buf);
        assert_eq!(h.head_len, buf.len());
        assert_eq!(h.request_line.get(buf), b"GET / HTTP/1.1");
        assert_eq!(status_of(b"\nGET / HTTP/1.1\r\nHost: h\r\n\r\n"), 400);
    }

    #[test]
    fn keep_alive_logic() {
        let cases: &[(&[u8], bool)] = &[
            (b"GET / HTTP/1.1\r\nHost: h\r\n\r\n", false),
            (
                b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
                true,
            ),
            (
                b"GET / HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, CLOSE\r\n\r\n",
                true,
            ),
            (
                b"GET / HTTP/1.1\r\nHost: h\r\nConnection: x\r\nConnection: close\r\n\r\n",
                true,
            ),
            (b"GET / HTTP/1.0\r\n\r\n", true),
            (b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", false),
            (
                b"GET / HTTP/1.0\r\nConnection: foo,keep-alive\r\n\r\n",
                false,
            ),
            (
                b"GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n",
                true,
            ),
            (b"GET / HTTP/1.0\r\nKeep-Alive: timeout=5\r\n\r\n", true),
        ];
        for (input, close) in cases {
            assert_eq!(
                complete_head(input).conn_close,
                *close,
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn connection_named_fields_are_hop_by_hop() {
        let buf = b"GET / HTTP/1.1\r\nHost: h\r\nX-Foo: 1\r\nConnection: close, x-foo\r\nX-Bar: 2\r\nx-FOO: 3\r\n\
Keep-Alive: 5\r\nCookie: a=b\r\nConnection: cookie, host, content-length\r\nContent-Length: 0\r\n\r\n";
        let h = complete_head(buf);
        let kind = |i: usize| h.fields[i].kind;
        assert_eq!(kind(0), FieldKind::Host, "Host keeps its kind");
        assert_eq!(kind(1), FieldKind::HopByHop);
        assert_eq!(kind(2), FieldKind::Connection);
        assert_eq!(kind(3), FieldKind::Normal);
        assert_eq!(kind(4), FieldKind::HopByHop, "case-insensitive");
        assert_eq!(kind(5), FieldKind::HopByHop);
        assert_eq!(kind(6), FieldKind::HopByHop, "Cookie named in Connection");
        assert_eq!(kind(7), FieldKind::Connection);
        assert_eq!(
            kind(8),
            FieldKind::ContentLength,
            "Content-Length keeps its kind"
        );
        assert!(h.conn_close);
        assert_eq!(h.body, BodyFraming::Length(0));
    }

    #[test]
    fn hop_by_hop_by_name() {
        let buf = b"GET / HTTP/1.1\r\nHost: h\r\nTE: trailers\r\nUpgrade: websocket\r\nProxy-Authorization: x\r\n\
Proxy-Connection: keep-alive\r\nTrailer: X\r\nX-Forwarded-For: 1.2.3.4\r\nMax-Forwards: 3\r\n\r\n";
        let h = complete_head(buf);
        let kinds: Vec<FieldKind> = h.fields.iter().map(|f| f.kind).collect();
        use FieldKind::*;
        assert_eq!(
            kinds,
            vec![
                Host,
                HopByHop,
                HopByHop,
                HopByHop,
                HopByHop,
                HopByHop,
                XForwardedFor,
                MaxForwards
            ]
        );
    }

    #[test]
    fn absolute_form_target() {
        let buf = b"GET http://Example.com:8080/a/b?q=1 HTTP/1.1\r\nHost: other\r\n\r\n";
        let h = complete_head(buf);
        assert_eq!(h.target.get(buf), b"http://Example.com:8080/a/b?q=1");
        assert_eq!(h.authority.unwrap().get(buf), b"Example.com:8080");
        assert_eq!(h.path.get(buf), b"/a/b");
        assert_eq!(h.query.unwrap().get(buf), b"q=1");
        assert_eq!(h.host.unwrap().get(buf), b"other");

        let buf = b"GET HTTPS://h?x HTTP/1.1\r\nHost: h\r\n\r\n";
        let h = complete_head(buf);
        assert_eq!(h.authority.unwrap().get(buf), b"h");
        assert_eq!(h.path.get(buf), b"");
        assert_eq!(h.query.unwrap().get(buf), b"x");

        let buf = b"GET http://h HTTP/1.1\r\nHost: h\r\n\r\n";
        let h = complete_head(buf);
        assert_eq!(h.path.get(buf), b"");
        assert_eq!(h.query, None);

        assert_eq!(status_of(b"GET http:///x HTTP/1.1\r\nHost: h\r\n\r\n"), 400);
        assert_eq!(
            status_of(b"GET http://u@h/x HTTP/1.1\r\nHost: h\r\n\r\n"),
            400
        );
        assert_eq!(status_of(b"GET ftp://h/x HTTP/1.1\r\nHost: h\r\n\r\n"), 400);
    }

    #[test]
    fn asterisk_form() {
        let buf = b"OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n";
        let h = complete_head(buf);
        assert_eq!(h.method, Method::Options);
        assert_eq!(h.path.get(buf), b"*");
        assert_eq!(h.query, None);
        assert_eq!(status_of(b"GET * HTTP/1.1\r\nHost: h\r\n\r\n"), 400);
    }

    #[test]
    fn query_edge_cases() {
        let buf = b"GET /p? HTTP/1.1\r\nHost: h\r\n\r\n";
        let h = complete_head(buf);
        assert_eq!(h.path.get(buf), b"/p");
        assert_eq!(h.query.unwrap().get(buf), b"");
        let buf = b"GET /p?a?b HTTP/1.1\r\nHost: h\r\n\r\n";
        let h = complete_head(buf);
        assert_eq!(h.query.unwrap().get(buf), b"a?b");
    }

    #[test]
    fn framing() {
        let h = complete_head(b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n");
        assert_eq!(h.body, BodyFraming::Chunked);
        let h = complete_head(b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: Chunked \r\n\r\n");
        assert_eq!(h.body, BodyFraming::Chunked);
        let h = complete_head(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 42\r\n\r\n");
        assert_eq!(h.body, BodyFraming::Length(42));
        let h = complete_head(b"POST / HTTP/1.0\r\nContent-Length: 0\r\n\r\n");
        assert_eq!(h.body, BodyFraming::Length(0));
        let h = complete_head(b"POST / HTTP/1.1\r\nHost: h\r\n\r\n");
        assert_eq!(h.body, BodyFraming::None);
    }

    #[test]
    fn expect_continue() {
        let h = complete_head(
            b"PUT / HTTP/1.1\r\nHost: h\r\nExpect: 100-Continue\r\nContent-Length: 3\r\n\r\n",
        );
        assert!(h.expect_continue);
        assert_eq!(h.fields[1].kind, FieldKind::Expect);
        let h =
            complete_head(b"PUT / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n");
        assert!(!h.expect_continue, "ignored in HTTP/1.0");
        let h = complete_head(
            b"PUT / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nConnection: expect\r\nContent-Length: 3\r\n\r\n",
        );
        assert!(h.expect_continue, "the client still waits for 100");
        assert_eq!(
            h.fields[1].kind,
            FieldKind::HopByHop,
            "but Expect is not forwarded"
        );
    }

    #[test]
    fn http10_without_host_is_fine() {
        let h = complete_head(b"GET / HTTP/1.0\r\n\r\n");
        assert_eq!(h.version, Version::Http10);
        assert_eq!(h.host, None);
    }

    /// Every rejection with its status.
    const REJECTIONS: &[(&[u8], u16)] = &[
            // bare LF, in the request line, a field, or the final empty line
            (b"GET / HTTP/1.1\nHost: h\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: h\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: h\r\n\n", 400),
            // bare CR
            (b"GET / HTTP/1.1\r\nHost: h\rX: y\r\n\r\n", 400),
            // obs-fold
            (b"GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n b\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n\tb\r\n\r\n", 400),
            // whitespace before colon
            (b"GET / HTTP/1.1\r\nHost : h\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: h\r\nContent-Length\t: 1\r\n\r\n", 400),
            // bad field name / value
            (b"GET / HTTP/1.1\r\nHost: h\r\n: x\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: h\r\nX(: x\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: h\r\nX: a\x00b\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: h\r\nX: a\x7fb\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: h\r\nno colon\r\n\r\n", 400),
            // CL + TE
            (b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
            (b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n", 400),
            // several Content-Length, even identical, or a list
            (b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n", 400),
            (b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5, 5\r\n\r\n", 400),
            // bad Content-Length values
            (b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: +5\r\n\r\n", 400),
            (b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: -1\r\n\r\n", 400),
            (b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length:  5x\r\n\r\n", 400),
            (b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: \r\n\r\n", 400),
            (b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 18446744073709551616\r\n\r\n", 400),
            (b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0x5\r\n\r\n", 400),
            // Transfer-Encoding problems
            (b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
            (b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\n", 400),
            (b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", 400),
            (b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, chunked\r\n\r\n", 400),
            (b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
            (b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: \r\n\r\n", 400),
            (b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked;x=1\r\n\r\n", 400),
            (b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501),
            (b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n", 501),
            // Host
            (b"GET / HTTP/1.1\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", 400),
            (b"GET / HTTP/1.0\r\nHost: a\r\nhost: b\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", 400),
            // target
            (b"GET /a\x01b HTTP/1.1\r\nHost: h\r\n\r\n", 400),
            (b"GET /a\x7fb HTTP/1.1\r\nHost: h\r\n\r\n", 400),
            (b"GET /a\tb HTTP/1.1\r\nHost: h\r\n\r\n", 400),
            (b"GET a/b HTTP/1.1\r\nHost: h\r\n\r\n", 400),
            (b"GET h:80 HTTP/1.1\r\nHost: h\r\n\r\n", 400),
            (b"GET * HTTP/1.1\r\nHost: h\r\n\r\n", 400),
            (b"GET /a#frag HTTP/1.1\r\nHost: h\r\n\r\n", 400),
            (b"GET http://h#frag HTTP/1.1\r\nHost: h\r\n\r\n", 400),
            // request line shape
            (b"GET  / HTTP/1.1\r\nHost: h\r\n\r\n", 400),
            (b"GET / HTTP/1.1 \r\nHost: h\r\n\r\n", 400),
            (b"GET /\r\n\r\n", 400),
            (b"G\x01T / HTTP/1.1\r\nHost: h\r\n\r\n", 400),
            (b"GET / HTTX/1.1\r\nHost: h\r\n\r\n", 400),
            (b"GET / HTTP/1.1x\r\nHost: h\r\n\r\n", 400),
            // version
            (b"GET / HTTP/2.0\r\nHost: h\r\n\r\n", 505),
            (b"GET / HTTP/1.2\r\nHost: h\r\n\r\n", 505),
            (b"GET / HTTP/0.9\r\nHost: h\r\n\r\n", 505),
            // CONNECT
            (b"CONNECT h:443 HTTP/1.1\r\nHost: h:443\r\n\r\n", 501),
            // a fault in the request line and one in the fields: the line's, however the bytes
            // arrive (found by the scan, by httparse, or by the field rules)
            (b"GET / HTTP/1.2\r\nHost: h\r\nX: a\r\n b\r\n\r\n", 505),
            (b"CONNECT h:443 HTTP/1.1\r\nX(: x\r\n\r\n", 501),
            (b"GET a/b HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
            (b"GET / HTTP/3.0\r\nHost: h\r\nHost: h\r\n\r\n", 505),
        ];

    #[test]
    fn rejections() {
        let cases = REJECTIONS;
        for (input, status) in cases {
            assert_eq!(
                status_of(input),
                *status,
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn rejections_fed_incrementally() {
        // Appending a byte at a time exercises the resumable scan: the first error must carry
        // the same status as the whole input, and no prefix may parse as Complete.
        for (input, status) in REJECTIONS {
            let mut h = RequestHead::new();
            let lim = Limits::default();
            let mut got = None;
            for n in 1..=input.len() {
                match parse_request(&input[..n], &lim, &mut h) {
                    Ok(Parsed::Partial) => {}
                    Ok(Parsed::Complete) => {
                        panic!("complete at {n}: {:?}", String::from_utf8_lossy(input))
                    }
                    Err(e) => {
                        got = Some(e.status);
                        break;
                    }
                }
            }
            assert_eq!(got, Some(*status), "{:?}", String::from_utf8_lossy(input));
        }
    }

    #[test]
    fn bare_lf_is_rejected_while_partial() {
        // No need to wait for the end of the head.
        assert_eq!(status_of(b"GET / HTTP/1.1\nHost"), 400);
    }

    #[test]
    fn body_limit() {
        let lim = Limits {
            body: 10,
            ..Limits::default()
        };
        let mut h = RequestHead::new();
        let r = parse_request(
            b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 11\r\n\r\n",
            &lim,
            &mut h,
        );
        assert_eq!(r.unwrap_err().status, 413);
        let r = parse_request(
            b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\n",
            &lim,
            &mut h,
        );
        assert_eq!(r, Ok(Parsed::Complete));
    }

    #[test]
    fn limits_414_431() {
        let lim = Limits {
            request_line: 20,
            header_fields: 3,
            field_size: 16,
            head_size: 200,
            body: 0,
        };
        let run = |input: &[u8]| {
            let mut h = RequestHead::new();
            parse_request(input, &lim, &mut h).map_err(|e| e.status)
        };
        // request line: 20 bytes is fine, 21 is not, complete or partial
        let line20 = format!("GET /{} HTTP/1.1", "a".repeat(6));
        assert_eq!(line20.len(), 20);
        assert_eq!(
            run(format!("{line20}\r\nHost: h\r\n\r\n").as_bytes()),
            Ok(Parsed::Complete)
        );
        let line21 = format!("GET /{} HTTP/1.1", "a".repeat(7));
        assert_eq!(
            run(format!("{line21}\r\nHost: h\r\n\r\n").as_bytes()),
            Err(414)
        );
        // without a CRLF yet: 21 bytes could still be a 20-byte line and its CR, 22 cannot
        assert_eq!(run(&[b'a'; 21]), Ok(Parsed::Partial));
        assert_eq!(run(&[b'a'; 22]), Err(414));
        // field count
        assert_eq!(
            run(b"GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 2\r\n\r\n"),
            Ok(Parsed::Complete)
        );
        assert_eq!(
            run(b"GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n"),
            Err(431)
        );
        assert_eq!(
            run(b"GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 2\r\nC: 3\r\n"),
            Err(431)
        );
        // field line size: 16 is fine, 17 is not, complete or partial
        assert_eq!(
            run(b"GET / HTTP/1.1\r\nHost: h\r\nX: 0123456789abc\r\n\r\n"),
            Ok(Parsed::Complete)
        );
        assert_eq!(
            run(b"GET / HTTP/1.1\r\nHost: h\r\nX: 0123456789abcd\r\n\r\n"),
            Err(431)
        );
        assert_eq!(
            run(b"GET / HTTP/1.1\r\nHost: h\r\nX: 0123456789abcde"),
            Err(431)
        );
        // whole head
        let lim = Limits {
            head_size: 40,
            ..Limits::default()
        };
        let mut h = RequestHead::new();
        let r = parse_request(b"GET / HTTP/1.1\r\nHost: h\r\nX-A: 1234567", &lim, &mut h);
        assert_eq!(r, Ok(Parsed::Partial));
        let r = parse_request(
            b"GET / HTTP/1.1\r\nHost: h\r\nX-A: 12345678901234",
            &lim,
            &mut h,
        );
        assert_eq!(r.unwrap_err().status, 431);
        let mut h = RequestHead::new();
        let exact = b"GET / HTTP/1.1\r\nHost: h\r\nX-A: 123456\r\n\r\n";
        assert_eq!(exact.len(), 40);
        assert_eq!(parse_request(exact, &lim, &mut h), Ok(Parsed::Complete));
    }

    #[test]
    fn more_fields_than_the_stack_array() {
        let lim = Limits {
            header_fields: 1000,
            ..Limits::default()
        };
        let mut req = b"GET / HTTP/1.1\r\nHost: h\r\n".to_vec();
        for i in 0..MAX_FIELDS {
            req.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
        }
        req.extend_from_slice(b"\r\n");
        let mut h = RequestHead::new();
        assert_eq!(parse_request(&req, &lim, &mut h).unwrap_err().status, 431);
    }

    #[test]
    fn error_resets_partial_state() {
        let lim = Limits::default();
        let mut h = RequestHead::new();
        assert_eq!(
            parse_request(b"GET / HTTP/1.1\r\nHo", &lim, &mut h),
            Ok(Parsed::Partial)
        );
        assert!(parse_request(b"GET / HTTP/1.1\r\nHost : h\r\n", &lim, &mut h).is_err());
        assert_eq!(
            parse_request(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n", &lim, &mut h),
            Ok(Parsed::Complete)
        );
        // a different buffer after Partial needs reset(); one shorter than what was scanned is
        // detected (and must not panic)
        assert_eq!(
            parse_request(b"GET /a/much/longer/path HTTP/1.1\r\nHo", &lim, &mut h),
            Ok(Parsed::Partial)
        );
        assert_eq!(
            parse_request(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n", &lim, &mut h),
            Ok(Parsed::Complete)
        );
        let other = b"GET /x HTTP/1.1\r\nHost: h\r\n\r\n";
        assert_eq!(
            parse_request(&other[..other.len() - 1], &lim, &mut h),
            Ok(Parsed::Partial)
        );
        h.reset();
        assert_eq!(
            parse_request(b"GET /y HTTP/1.1\r\nHost: hh\r\n\r\n", &lim, &mut h),
            Ok(Parsed::Complete)
        );
    }

    #[test]
    fn steady_state_does_not_grow_fields() {
        let lim = Limits::default();
        let mut h = RequestHead::new();
        let mut cap = None;
        for i in 0..1000 {
            let req = format!(
                "GET /item/{i}?n={i} HTTP/1.1\r\nHost: h{}\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\nE: 5\r\nF: 6\r\n\
                 G: 7\r\nH: 8\r\nI: 9\r\nJ: 10\r\nK: 11\r\nL: 12\r\nM: 13\r\nN: 14\r\nO: 15\r\nP: 16\r\nQ: 17\r\n\
                 R: 18\r\nS: 19\r\nT: 20\r\nU: 21\r\nV: 22\r\nW: 23\r\nX: 24\r\nY: 25\r\nZ: 26\r\nAA: 27\r\n\
                 AB: 28\r\nAC: 29\r\nAD: 30\r\nAE: 31\r\nAF: 32\r\nAG: 33\r\nAH: 34\r\nAI: 35\r\nAJ: 36\r\n\r\n",
                i % 7
            );
            assert_eq!(
                parse_request(req.as_bytes(), &lim, &mut h),
                Ok(Parsed::Complete)
            );
            assert_eq!(h.fields.len(), 37);
            assert_eq!(
                h.query.unwrap().get(req.as_bytes()),
                format!("n={i}").as_bytes()
            );
            match cap {
                None => cap = Some(h.fields.capacity()),
                Some(c) => assert_eq!(h.fields.capacity(), c, "fields grew at request {i}"),
            }
        }
        assert!(cap.unwrap() >= 37);
    }
}
