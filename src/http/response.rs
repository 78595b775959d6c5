//! Backend response heads.

use super::field_lines::{FieldLineError, parse_field_lines, parse_framing_lines, valid_value};
use super::fields::{self, TeVerdict};
use super::scan::{HeadScan, ScanError, ScanLimits};
use super::{BodyFraming, Field, FieldKind, Parsed, Span, Version};

/// More response fields than this are an error.
const MAX_FIELDS: usize = 128;

/// A parsed response head: spans into the caller's buffer. Reuse one per backend connection;
/// `fields` keeps its capacity.
#[derive(Debug, Clone)]
pub struct ResponseHead {
    pub version: Version,
    /// 100..=599.
    pub status: u16,
    /// The reason phrase, verbatim (may be empty, may contain obs-text); httpd relays it as is.
    pub reason: Span,
    /// Every field line, in order.
    pub fields: Vec<Field>,
    /// Bytes from the start of the buffer to the end of the head.
    pub head_len: usize,
    /// RFC 9112 §6.3 framing. For 1xx (including 101) it is `None`: read the next head after it
    /// (a 101 means the backend switched protocols; the proxy does not support that yet).
    pub body: BodyFraming,
    /// `Connection: close`, or HTTP/1.0 without `Connection: keep-alive`. See also
    /// [`ResponseHead::reusable`].
    pub conn_close: bool,
    /// The status line, without CRLF.
    pub status_line: Span,
    scan: HeadScan,
}

impl Default for ResponseHead {
    fn default() -> Self {
        Self::new()
    }
}

impl ResponseHead {
    /// An empty head whose field list has room for 32 fields.
    pub fn new() -> Self {
        ResponseHead {
            version: Version::Http11,
            status: 0,
            reason: Span::default(),
            fields: Vec::with_capacity(32),
            head_len: 0,
            body: BodyFraming::None,
            conn_close: false,
            status_line: Span::default(),
            scan: HeadScan::default(),
        }
    }

    /// Forgets a partial scan. Needed only if the buffer was compacted or replaced while
    /// [`parse_response`] was returning `Partial`.
    pub fn reset(&mut self) {
        self.scan.reset();
        self.fields.clear();
    }

    /// The value of the first field named `name` (case-insensitive).
    pub fn field<'a>(&self, buf: &'a [u8], name: &str) -> Option<&'a [u8]> {
        super::find_field(&self.fields, buf, name)
    }

    /// Whether the backend connection may go back to the pool once this response's body has
    /// been read completely: not `conn_close`, not read-until-close, not a 101.
    pub fn reusable(&self) -> bool {
        !self.conn_close && self.body != BodyFraming::UntilClose && self.status != 101
    }
}

/// A malformed backend response: the proxy answers 502 and closes that backend connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResponseError {
    pub reason: &'static str,
}

const fn err(reason: &'static str) -> ResponseError {
    ResponseError { reason }
}

/// Parses a response head at the start of `buf` into `head`. `request_was_head`: the request
/// was HEAD (so the response has no body). `max_head`: the cap on the head's size.
///
/// Framing (RFC 9112 §6.3), in order: HEAD request, 1xx, 204, 304 → `None` (framing fields are
/// then not examined at all); Transfer-Encoding together with Content-Length → error;
/// Transfer-Encoding with final chunked → `Chunked` (chunked twice → error); Transfer-Encoding
/// whose final coding is not chunked → `UntilClose`; several Content-Length fields or a bad
/// value → error; a valid Content-Length → `Length`; neither → `UntilClose`.
///
/// Also errors: bare LF, obs-fold, whitespace before a colon, bad field names/values, a status
/// line that is not `HTTP/1.x NNN[ reason]` or a status outside 100..=599, Transfer-Encoding in
/// an HTTP/1.0 response (RFC 9112 §6.1: faulty framing), more than 128 fields, a head longer
/// than `max_head`. `HTTP/1.1 200` with no space and no reason is accepted (empty reason).
pub fn parse_response(
    buf: &[u8],
    request_was_head: bool,
    max_head: usize,
    head: &mut ResponseHead,
) -> Result<Parsed, ResponseError> {
    parse_head(buf, request_was_head, max_head, head, FieldSet::All)
}

/// [`parse_response`] for a client that needs the framing only (the load generator): the head's
/// lines, status line and framing are checked the same way, but only the Content-Length,
/// Transfer-Encoding and Connection fields, and the one named `also` (case-insensitive), are
/// parsed into `head.fields`; the other field lines are only checked for a bare CR.
pub fn parse_response_framing(
    buf: &[u8],
    request_was_head: bool,
    max_head: usize,
    head: &mut ResponseHead,
    also: Option<&[u8]>,
) -> Result<Parsed, ResponseError> {
    parse_head(
        buf,
        request_was_head,
        max_head,
        head,
        FieldSet::Framing(also),
    )
}

/// Which field lines become [`Field`]s.
#[derive(Clone, Copy)]
enum FieldSet<'a> {
    All,
    /// The framing fields and, if given, the field of this name.
    Framing(Option<&'a [u8]>),
}

fn parse_head(
    buf: &[u8],
    request_was_head: bool,
    max_head: usize,
    head: &mut ResponseHead,
    set: FieldSet<'_>,
) -> Result<Parsed, ResponseError> {
    let max_head = max_head.min(u32::MAX as usize);
    let lim = ScanLimits {
        first_line: max_head,
        field_line: max_head,
        fields: MAX_FIELDS,
        head: max_head,
    };
    let scanned = head.scan.scan(buf, &lim);
    let first = (head.scan.first_start, head.scan.first_end);
    let head_len = match scanned {
        Ok(None) => return Ok(Parsed::Partial),
        Ok(Some(n)) => {
            head.scan.reset();
            n
        }
        Err(e) => {
            head.scan.reset();
            return Err(match e {
                ScanError::FirstLineTooLong
                | ScanError::FieldLineTooLong
                | ScanError::HeadTooLarge => err("response head too large"),
                ScanError::TooManyFields => err("too many response fields"),
                ScanError::BareLf => err("bare LF in response head"),
                ScanError::ObsFold => err("obs-fold in response head"),
                ScanError::SpaceBeforeColon => err("whitespace before colon in response head"),
            });
        }
    };
    complete(&buf[..head_len], first, request_was_head, set, head)?;
    head.head_len = head_len;
    Ok(Parsed::Complete)
}

fn complete(
    buf: &[u8],
    (line_start, line_end): (usize, usize),
    request_was_head: bool,
    set: FieldSet<'_>,
    head: &mut ResponseHead,
) -> Result<(), ResponseError> {
    head.fields.clear();
    let (version, status) = status_line(&buf[line_start..line_end])?;
    if !(100..=599).contains(&status) {
        return Err(err("status code out of range"));
    }
    head.status = status;
    head.version = version;
    head.status_line = Span::new(line_start, line_end);
    // "HTTP/1.x NNN" is 12 bytes; the reason starts after the following SP.
    let r0 = (line_start + 13).min(line_end);
    head.reason = Span::new(r0, line_end);

    // The head ends with the empty line's CRLF; the fields start after the status line's.
    let (start, end) = (line_end + 2, buf.len() - 2);
    match set {
        FieldSet::All => parse_field_lines(buf, start, end, &mut head.fields),
        FieldSet::Framing(also) => parse_framing_lines(buf, start, end, also, &mut head.fields),
    }
    .map_err(|e| match e {
        FieldLineError::Name => err("bad response field name"),
        FieldLineError::Value => err("bad response field value"),
    })?;
    head.body = framing(buf, status, request_was_head, head)?;
    let conn = fields::apply_connection(&mut head.fields, buf);
    head.conn_close = match head.version {
        Version::Http11 => conn.close,
        Version::Http10 => conn.close || !conn.keep_alive,
    };
    Ok(())
}

/// `HTTP/1.x SP 3DIGIT [SP reason-phrase]` (RFC 9112 §4; a missing SP and reason is
/// tolerated). The reason may hold HTAB, SP, visible characters and obs-text.
fn status_line(line: &[u8]) -> Result<(Version, u16), ResponseError> {
    let version = match line.get(..8) {
        Some(b"HTTP/1.1") => Version::Http11,
        Some(b"HTTP/1.0") => Version::Http10,
        _ => return Err(err("bad response version")),
    };
    let code = match line.get(8..12) {
        Some(&[b' ', a, b, c]) if [a, b, c].iter().all(u8::is_ascii_digit) => {
            u16::from(a - b'0') * 100 + u16::from(b - b'0') * 10 + u16::from(c - b'0')
        }
        _ => return Err(err("bad status line")),
    };
    match line.get(12..) {
        Some([]) => {}
        Some([b' ', reason @ ..]) if valid_value(reason) => {}
        _ => return Err(err("bad status line")),
    }
    Ok((version, code))
}

fn framing(
    buf: &[u8],
    status: u16,
    request_was_head: bool,
    head: &ResponseHead,
) -> Result<BodyFraming, ResponseError> {
    if request_was_head || status < 200 || status == 204 || status == 304 {
        return Ok(BodyFraming::None);
    }
    let mut cl: Option<Span> = None;
    let mut te = false;
    for f in &head.fields {
        match f.kind {
            FieldKind::ContentLength => {
                if cl.is_some() {
                    return Err(err("more than one Content-Length"));
                }
                cl = Some(f.value);
            }
            FieldKind::TransferEncoding => te = true,
            _ => {}
        }
    }
    if te {
        if cl.is_some() {
            return Err(err("Content-Length with Transfer-Encoding"));
        }
        if head.version == Version::Http10 {
            return Err(err("Transfer-Encoding in HTTP/1.0 response"));
        }
        return match fields::transfer_encoding(&head.fields, buf) {
            TeVerdict::Chunked => Ok(BodyFraming::Chunked),
            TeVerdict::ChunkedTwice => Err(err("chunked applied twice")),
            // Some coding we cannot undo comes before chunked: still chunked on the wire, and
            // relayed verbatim, so the framing is what matters.
            TeVerdict::UnknownBeforeChunked => Ok(BodyFraming::Chunked),
            TeVerdict::NotChunkedFinal => Ok(BodyFraming::UntilClose),
        };
    }
    match cl {
        Some(v) => fields::parse_content_length(v.get(buf))
            .map(BodyFraming::Length)
            .ok_or(err("bad Content-Length")),
        None => Ok(BodyFraming::UntilClose),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(input: &[u8], was_head: bool) -> Result<ResponseHead, ResponseError> {
        let mut h = ResponseHead::new();
        match parse_response(input, was_head, 65536, &mut h)? {
            Parsed::Complete => Ok(h),
            Parsed::Partial => panic!("partial: {:?}", String::from_utf8_lossy(input)),
        }
    }

    fn framing_of(input: &[u8], was_head: bool) -> Result<BodyFraming, &'static str> {
        parse(input, was_head).map(|h| h.body).map_err(|e| e.reason)
    }

    #[test]
    fn basic_response() {
        let buf = b"HTTP/1.1 200 OK\r\nServer: x\r\nContent-Length: 5\r\n\r\nhello";
        let h = parse(buf, false).unwrap();
        assert_eq!(h.version, Version::Http11);
        assert_eq!(h.status, 200);
        assert_eq!(h.reason.get(buf), b"OK");
        assert_eq!(h.status_line.get(buf), b"HTTP/1.1 200 OK");
        assert_eq!(h.head_len, buf.len() - 5);
        assert_eq!(h.body, BodyFraming::Length(5));
        assert_eq!(h.fields.len(), 2);
        assert_eq!(h.fields[0].line.get(buf), b"Server: x\r\n");
        assert_eq!(h.fields[1].kind, FieldKind::ContentLength);
        assert_eq!(h.field(buf, "server"), Some(&b"x"[..]));
        assert!(!h.conn_close);
        assert!(h.reusable());
    }

    #[test]
    fn reason_phrase_verbatim() {
        let buf = b"HTTP/1.1 200 Custom  Reason\xe9 Here\r\nContent-Length: 0\r\n\r\n";
        let h = parse(buf, false).unwrap();
        assert_eq!(h.reason.get(buf), b"Custom  Reason\xe9 Here");
        let buf = b"HTTP/1.0 200 \r\nContent-Length: 0\r\n\r\n";
        let h = parse(buf, false).unwrap();
        assert_eq!(h.reason.get(buf), b"");
        let buf = b"HTTP/1.1 404\r\nContent-Length: 0\r\n\r\n";
        let h = parse(buf, false).unwrap();
        assert_eq!(h.status, 404);
        assert_eq!(h.reason.get(buf), b"");
    }

    #[test]
    fn framing_table() {
        use BodyFraming::*;
        let cases: &[(&[u8], bool, BodyFraming)] = &[
            // HEAD request: no body whatever the headers say
            (b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n", true, None),
            (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", true, None),
            (b"HTTP/1.1 200 OK\r\n\r\n", true, None),
            // 1xx, 204, 304
            (b"HTTP/1.1 100 Continue\r\n\r\n", false, None),
            (b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n", false, None),
            (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n", false, None),
            (b"HTTP/1.1 204 No Content\r\nContent-Length: 10\r\n\r\n", false, None),
            (b"HTTP/1.1 304 Not Modified\r\nContent-Length: 1234\r\n\r\n", false, None),
            (b"HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n", false, None),
            // chunked
            (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", false, Chunked),
            (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", false, Chunked),
            // TE not ending in chunked: until close
            (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", false, UntilClose),
            (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", false, UntilClose),
            // CL
            (b"HTTP/1.1 200 OK\r\nContent-Length: 42\r\n\r\n", false, Length(42)),
            (b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n", false, Length(0)),
            // neither
            (b"HTTP/1.1 200 OK\r\n\r\n", false, UntilClose),
            (b"HTTP/1.0 200 OK\r\n\r\n", false, UntilClose),
        ];
        for (input, was_head, want) in cases {
            assert_eq!(
                framing_of(input, *was_head),
                Ok(*want),
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn framing_errors() {
        let cases: &[&[u8]] = &[
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: +5\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: \r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n",
            b"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
        ];
        for input in cases {
            assert!(
                framing_of(input, false).is_err(),
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn malformed_heads() {
        let cases: &[&[u8]] = &[
            b"HTTP/1.1 200 OK\nContent-Length: 0\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 0\n\r\n",
            b"HTTP/1.1 200 OK\r\nX: a\r\n b\r\nContent-Length: 0\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length : 0\r\n\r\n",
            b"HTTP/1.1 20 OK\r\n\r\n",
            b"HTTP/1.1 2000 OK\r\n\r\n",
            b"HTTP/1.1  200 OK\r\n\r\n",
            b"HTTP/1.1 099 Low\r\n\r\n",
            b"HTTP/1.1 600 High\r\n\r\n",
            b"HTTP/2.0 200 OK\r\n\r\n",
            b"HTTP/1.2 200 OK\r\n\r\n",
            b"ICY 200 OK\r\n\r\n",
            b"HTTP/1.1 200 O\x01K\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nX: a\x00\r\n\r\n",
        ];
        for input in cases {
            assert!(
                parse(input, false).is_err(),
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn framing_only_parse_keeps_the_framing_fields_and_the_named_one() {
        let framing = |input: &[u8], also: Option<&[u8]>| {
            let mut h = ResponseHead::new();
            match parse_response_framing(input, false, 65536, &mut h, also) {
                Ok(Parsed::Complete) => Ok(h),
                Ok(Parsed::Partial) => panic!("partial"),
                Err(e) => Err(e.reason),
            }
        };
        // Lines it does not keep are only checked for a bare CR: a bad name or value there is
        // no error.
        let buf = b"HTTP/1.1 200 OK\r\nServer: x\r\nBad Name: \x01\r\nCONTENT-LENGTH: 3\r\n\
X-Backend: b1\r\nConnection: close\r\n\r\nabc";
        let h = framing(buf, Some(b"x-backend")).unwrap();
        let names: Vec<&[u8]> = h.fields.iter().map(|f| f.name.get(buf)).collect();
        assert_eq!(
            names,
            vec![&b"CONTENT-LENGTH"[..], b"X-Backend", b"Connection"]
        );
        assert_eq!(h.body, BodyFraming::Length(3));
        assert_eq!(h.field(buf, "x-backend"), Some(&b"b1"[..]));
        assert!(h.conn_close);
        assert_eq!(framing(buf, None).unwrap().fields.len(), 2);
        assert_eq!(
            framing(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
                None
            )
            .unwrap()
            .body,
            BodyFraming::Chunked
        );
        // Framing is as strict as in the full parse, also where a bare CR in a skipped line
        // would show a framing field to a parser that ends lines at CR.
        for bad in [
            &b"HTTP/1.1 200 OK\r\nX: a\rTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n"[..],
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\ncontent-length: 5\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\x00\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length : 5\r\n\r\n",
            b"HTTP/1.1 200 OK\nContent-Length: 5\r\n\r\n",
            b"HTTP/1.1 20 OK\r\n\r\n",
        ] {
            assert!(
                framing(bad, None).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn connection_handling() {
        let buf =
            b"HTTP/1.1 200 OK\r\nConnection: close, X-Secret\r\nX-Secret: 1\r\nKeep-Alive: t=5\r\n\
Proxy-Authenticate: Basic\r\nContent-Length: 0\r\n\r\n";
        let h = parse(buf, false).unwrap();
        assert!(h.conn_close);
        assert!(!h.reusable());
        let kinds: Vec<FieldKind> = h.fields.iter().map(|f| f.kind).collect();
        use FieldKind::*;
        assert_eq!(
            kinds,
            vec![Connection, HopByHop, HopByHop, HopByHop, ContentLength]
        );

        assert!(
            parse(b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", false)
                .unwrap()
                .conn_close
        );
        let h = parse(
            b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n",
            false,
        )
        .unwrap();
        assert!(!h.conn_close);
        assert!(h.reusable());
        // read-until-close is never reusable
        let h = parse(b"HTTP/1.1 200 OK\r\n\r\n", false).unwrap();
        assert!(!h.conn_close);
        assert!(!h.reusable());
        // 101 is exposed, never reusable
        let h = parse(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\n\r\n",
            false,
        )
        .unwrap();
        assert_eq!(h.status, 101);
        assert!(!h.reusable());
    }

    #[test]
    fn interim_then_final_in_one_buffer() {
        let buf =
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok";
        let mut h = ResponseHead::new();
        assert_eq!(
            parse_response(buf, false, 1024, &mut h),
            Ok(Parsed::Complete)
        );
        assert_eq!(h.status, 100);
        let rest = &buf[h.head_len..];
        assert_eq!(
            parse_response(rest, false, 1024, &mut h),
            Ok(Parsed::Complete)
        );
        assert_eq!(h.status, 201);
        assert_eq!(h.body, BodyFraming::Length(2));
        assert_eq!(&rest[h.head_len..], b"ok");
    }

    #[test]
    fn partial_and_size_cap() {
        let buf = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
        let mut h = ResponseHead::new();
        for n in 0..buf.len() {
            assert_eq!(
                parse_response(&buf[..n], false, 1024, &mut h),
                Ok(Parsed::Partial),
                "at {n}"
            );
        }
        assert_eq!(
            parse_response(buf, false, 1024, &mut h),
            Ok(Parsed::Complete)
        );
        let mut h = ResponseHead::new();
        assert!(parse_response(buf, false, buf.len() - 1, &mut h).is_err());
        assert!(parse_response(&buf[..20], false, 20, &mut h).is_err());
    }
}
