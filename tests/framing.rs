//! Strict RFC 9112 framing against the real binary: what the proxy refuses to forward (and with
//! which status), what it refuses to accept from a member, chunked bodies both ways,
//! Expect: 100-continue, interim responses, and the client- and member-side timeouts.
//!
//! Every rejection test checks three things: the status, that the connection closes after it
//! (with `Connection: close`), and that the origin saw nothing at all.

mod common;
use common::*;

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant};

use ringproxy::http::ChunkedScanner;

// ---- helpers -------------------------------------------------------------------------------

/// Sends `raw` on a fresh connection and reads until the proxy closes it or `limit` passes.
/// Returns what came back and whether the connection was closed (EOF or reset) by the proxy.
fn exchange(port: u16, raw: &[u8], limit: Duration) -> (Vec<u8>, bool) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_nodelay(true).unwrap();
    // A write may fail when the proxy already answered and closed; what it sent still counts.
    let _ = s.write_all(raw);
    read_until_close(&mut s, limit)
}

/// Reads until EOF/reset (true) or until `limit` passes (false).
fn read_until_close(s: &mut TcpStream, limit: Duration) -> (Vec<u8>, bool) {
    let until = Instant::now() + limit;
    let mut out = Vec::new();
    let mut b = [0u8; 65536];
    loop {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return (out, false);
        }
        s.set_read_timeout(Some(left)).unwrap();
        match s.read(&mut b) {
            Ok(0) => return (out, true),
            Ok(n) => out.extend_from_slice(&b[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return (out, false);
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            // ECONNRESET and friends: the proxy closed (with our bytes unread).
            Err(_) => return (out, true),
        }
    }
}

/// Counts the status lines the client got (responses start with `HTTP/1.1 NNN`).
fn status_lines(text: &str) -> Vec<&str> {
    text.split("\r\n")
        .filter(|l| l.starts_with("HTTP/1.1 ") || l.starts_with("HTTP/1.0 "))
        .collect()
}

/// Checks one rejected request: exactly one response, `status`, `Connection: close`, the
/// connection closed, and the origin saw no connection and no request.
fn assert_rejected(p: &Proxy, o: &ScriptedOrigin, what: &str, raw: &[u8], status: u16) {
    let (out, closed) = exchange(p.port, raw, Duration::from_secs(5));
    let text = String::from_utf8_lossy(&out);
    let want = format!("HTTP/1.1 {status} ");
    assert!(
        text.starts_with(&want),
        "{what}: want {status}, got {text:?}"
    );
    let head = text.split("\r\n\r\n").next().unwrap();
    assert!(
        head.to_ascii_lowercase().contains("\r\nconnection: close"),
        "{what}: no Connection: close in {head:?}"
    );
    assert_eq!(
        status_lines(&text).len(),
        1,
        "{what}: more than one response: {text:?}"
    );
    assert!(closed, "{what}: the connection stayed open after {status}");
    assert_eq!(o.connections(), 0, "{what}: the origin got a connection");
    assert!(
        o.requests.lock().unwrap().is_empty(),
        "{what}: the origin got {:?}",
        o.requests.lock().unwrap()
    );
}

fn proxy_to(tag: &str, o: &ScriptedOrigin, extra: &str) -> Proxy {
    proxy_pass(tag, o.port, extra, "")
}

/// One request as a scripted origin read it.
struct Req {
    head: String,
    /// The body as the origin decoded it (Content-Length or chunked).
    body: Vec<u8>,
    /// The body bytes as they came on the wire (chunk framing and trailers included).
    raw_body: Vec<u8>,
}

impl Req {
    fn path(&self) -> &str {
        self.head.split(' ').nth(1).unwrap_or("")
    }
    fn header(&self, name: &str) -> Option<String> {
        self.head.split("\r\n").skip(1).find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
    }
}

/// Reads more bytes into `buf` (and the origin's record `got`); false on EOF, error or timeout.
fn fill(s: &mut TcpStream, buf: &mut Vec<u8>, got: &mut Vec<u8>) -> bool {
    let mut b = [0u8; 65536];
    match s.read(&mut b) {
        Ok(0) | Err(_) => false,
        Ok(n) => {
            buf.extend_from_slice(&b[..n]);
            got.extend_from_slice(&b[..n]);
            true
        }
    }
}

/// Takes one request head off `buf` (reading as needed).
fn next_head(s: &mut TcpStream, buf: &mut Vec<u8>, got: &mut Vec<u8>) -> Option<String> {
    loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head: Vec<u8> = buf.drain(..i + 4).collect();
            return Some(String::from_utf8_lossy(&head).into_owned());
        }
        if !fill(s, buf, got) {
            return None;
        }
    }
}

/// Reads the body `head` announces; returns (decoded, raw). None when the stream ends first
/// or the chunked framing is bad.
fn next_body(
    s: &mut TcpStream,
    buf: &mut Vec<u8>,
    got: &mut Vec<u8>,
    head: &str,
) -> Option<(Vec<u8>, Vec<u8>)> {
    let lower = head.to_ascii_lowercase();
    let te = lower
        .split("\r\n")
        .find_map(|l| l.strip_prefix("transfer-encoding:"));
    if te.is_some_and(|v| v.contains("chunked")) {
        let mut sc = ChunkedScanner::new();
        let (mut body, mut raw) = (Vec::new(), Vec::new());
        loop {
            let (n, done) = sc.scan(buf, |d| body.extend_from_slice(d)).ok()?;
            raw.extend(buf.drain(..n));
            if done {
                return Some((body, raw));
            }
            if !fill(s, buf, got) {
                return None;
            }
        }
    }
    let cl: usize = lower
        .split("\r\n")
        .find_map(|l| l.strip_prefix("content-length:"))
        .map_or(0, |v| v.trim().parse().unwrap_or(0));
    while buf.len() < cl {
        if !fill(s, buf, got) {
            return None;
        }
    }
    let body: Vec<u8> = buf.drain(..cl).collect();
    Some((body.clone(), body))
}

/// What a scripted origin does with one request.
enum Act {
    /// Write these bytes and wait for the next request on the same connection.
    Reply(Vec<u8>),
    /// Write these bytes, then close the connection.
    ReplyClose(Vec<u8>),
}

/// A keep-alive origin that reads whole requests (Content-Length or chunked bodies) and
/// answers with `f`; heads are recorded in `requests`.
fn origin<F>(f: F) -> ScriptedOrigin
where
    F: Fn(&Req) -> Act + Send + Sync + 'static,
{
    let log: std::sync::Arc<std::sync::Mutex<Vec<String>>> = Default::default();
    let log2 = log.clone();
    let mut o = ScriptedOrigin::start(move |s, got| {
        let mut buf = Vec::new();
        loop {
            let Some(head) = next_head(s, &mut buf, got) else {
                return;
            };
            log2.lock().unwrap().push(head.clone());
            let Some((body, raw_body)) = next_body(s, &mut buf, got, &head) else {
                return;
            };
            let req = Req {
                head,
                body,
                raw_body,
            };
            match f(&req) {
                Act::Reply(b) => {
                    if s.write_all(&b).is_err() {
                        return;
                    }
                }
                Act::ReplyClose(b) => {
                    let _ = s.write_all(&b);
                    return;
                }
            }
        }
    });
    o.requests = log;
    o
}

/// Waits (bounded) until every accepted origin connection has finished its script.
fn origin_settled(o: &ScriptedOrigin) {
    let until = Instant::now() + Duration::from_secs(8);
    while o.seen.lock().unwrap().conns.len() < o.connections() && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Polls the proxy's error log (bounded) for a line satisfying `pred`.
fn error_log_line(p: &Proxy, pred: impl Fn(&str) -> bool) -> Option<String> {
    let until = Instant::now() + Duration::from_secs(5);
    loop {
        if let Some(l) = p.error_log().lines().find(|l| pred(l)) {
            return Some(l.to_string());
        }
        if Instant::now() > until {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

// ---- rejected requests ----------------------------------------------------------------------

#[test]
fn conflicting_or_malformed_body_framing_is_rejected() {
    let o = http_origin(|_, _| ok("origin"));
    let p = proxy_to("framing-cl-te", &o, "");
    let post = "POST / HTTP/1.1\r\nHost: a\r\n";
    let cases: &[(&str, String, u16)] = &[
        (
            "CL then TE",
            format!("{post}Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
            400,
        ),
        (
            "TE then CL",
            format!("{post}Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n"),
            400,
        ),
        (
            "two identical CL",
            format!("{post}Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello"),
            400,
        ),
        (
            "two differing CL",
            format!("{post}Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!"),
            400,
        ),
        (
            "CL +5",
            format!("{post}Content-Length: +5\r\n\r\nhello"),
            400,
        ),
        (
            "CL list 5, 5",
            format!("{post}Content-Length: 5, 5\r\n\r\nhello"),
            400,
        ),
        ("CL -1", format!("{post}Content-Length: -1\r\n\r\n"), 400),
        ("CL abc", format!("{post}Content-Length: abc\r\n\r\n"), 400),
        (
            "CL hex",
            format!("{post}Content-Length: 0x5\r\n\r\nhello"),
            400,
        ),
        ("CL empty", format!("{post}Content-Length: \r\n\r\n"), 400),
        (
            "CL overflow (u64::MAX + 1)",
            format!("{post}Content-Length: 18446744073709551616\r\n\r\n"),
            400,
        ),
        (
            "CL overflow (30 digits)",
            format!("{post}Content-Length: 999999999999999999999999999999\r\n\r\n"),
            400,
        ),
        (
            "TE in HTTP/1.0",
            "POST / HTTP/1.0\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n".into(),
            400,
        ),
        (
            "TE chunked, gzip",
            format!("{post}Transfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n"),
            400,
        ),
        (
            "TE gzip alone",
            format!("{post}Transfer-Encoding: gzip\r\n\r\nxxxx"),
            400,
        ),
        (
            "TE chunked twice",
            format!(
                "{post}Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
            ),
            400,
        ),
        (
            "TE gzip, chunked",
            format!("{post}Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n"),
            501,
        ),
    ];
    for (what, raw, status) in cases {
        assert_rejected(&p, &o, what, raw.as_bytes(), *status);
    }
    // Control: the same proxy forwards a well-framed body.
    let mut c = Client::connect(p.port);
    c.send(format!("{post}Content-Length: 5\r\n\r\nhello").as_bytes());
    assert_eq!(c.read_response(false).unwrap().text(), "origin");
}

#[test]
fn malformed_heads_are_rejected() {
    let o = http_origin(|_, _| ok("origin"));
    let p = proxy_to("framing-heads", &o, "");
    let cases: &[(&str, &[u8], u16)] = &[
        (
            "obs-fold (space)",
            b"GET / HTTP/1.1\r\nHost: a\r\nX-A: one\r\n two\r\n\r\n",
            400,
        ),
        (
            "obs-fold (tab)",
            b"GET / HTTP/1.1\r\nHost: a\r\nX-A: one\r\n\ttwo\r\n\r\n",
            400,
        ),
        (
            "obs-fold right after the request line",
            b"GET / HTTP/1.1\r\n Host: a\r\n\r\n",
            400,
        ),
        (
            "space before colon",
            b"GET / HTTP/1.1\r\nHost: a\r\nX-A : 1\r\n\r\n",
            400,
        ),
        (
            "tab before colon",
            b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length\t: 0\r\n\r\n",
            400,
        ),
        ("bare LF line ends", b"GET / HTTP/1.1\nHost: a\n\n", 400),
        (
            "one bare LF among CRLFs",
            b"GET / HTTP/1.1\r\nHost: a\nX-A: 1\r\n\r\n",
            400,
        ),
        ("HTTP/1.1 without Host", b"GET / HTTP/1.1\r\n\r\n", 400),
        (
            "two Host fields",
            b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
            400,
        ),
        (
            "two identical Host fields",
            b"GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n",
            400,
        ),
        (
            "CONNECT",
            b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
            501,
        ),
        ("HTTP/2.0", b"GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505),
        ("HTTP/1.2", b"GET / HTTP/1.2\r\nHost: a\r\n\r\n", 505),
    ];
    for (what, raw, status) in cases {
        assert_rejected(&p, &o, what, raw, *status);
    }
    let mut c = Client::connect(p.port);
    assert_eq!(c.get("/", "").text(), "origin");
}

#[test]
fn head_limits_answer_414_and_431() {
    let o = http_origin(|_, _| ok("origin"));
    let p = proxy_to(
        "framing-limits",
        &o,
        "LimitRequestLine 100\nLimitRequestFields 5\nLimitRequestFieldSize 50\n",
    );
    let long_target = format!("/{}", "a".repeat(120));
    let many: String = (0..6).map(|i| format!("X-F{i}: v\r\n")).collect();
    let long_field = format!("X-Long: {}\r\n", "v".repeat(60));
    let cases: Vec<(&str, String, u16)> = vec![
        (
            "request line over LimitRequestLine",
            format!("GET {long_target} HTTP/1.1\r\nHost: a\r\n\r\n"),
            414,
        ),
        (
            "more fields than LimitRequestFields",
            format!("GET / HTTP/1.1\r\nHost: a\r\n{many}\r\n"),
            431,
        ),
        (
            "a field over LimitRequestFieldSize",
            format!("GET / HTTP/1.1\r\nHost: a\r\n{long_field}\r\n"),
            431,
        ),
    ];
    for (what, raw, status) in &cases {
        assert_rejected(&p, &o, what, raw.as_bytes(), *status);
    }
    // A request line over the limit is refused before the head ends (no CRLFCRLF sent).
    assert_rejected(
        &p,
        &o,
        "request line over the limit, head unfinished",
        format!("GET /{} HTTP/1.1\r\nHost: a\r\n", "b".repeat(300)).as_bytes(),
        414,
    );
    // Controls just under each limit pass.
    let mut c = Client::connect(p.port);
    let ok_target = format!("/{}", "a".repeat(70));
    let r = c.get(&ok_target, "X-F1: v\r\nX-F2: v\r\nX-F3: v\r\nX-F4: v\r\n");
    assert_eq!(r.text(), "origin");
    let r = c.get("/", &format!("X-Long: {}\r\n", "v".repeat(30)));
    assert_eq!(r.text(), "origin");
    assert_eq!(o.requests.lock().unwrap().len(), 2);
}

#[test]
fn head_over_the_cap_without_end_is_431() {
    let o = http_origin(|_, _| ok("origin"));
    let p = proxy_to("framing-headcap", &o, "");
    // 20 fields of 4000 bytes: each within LimitRequestFieldSize (8190) and the count within
    // LimitRequestFields (100), but 80 KB in all, over the 64 KiB head cap. No empty line.
    let mut raw = b"GET / HTTP/1.1\r\nHost: a\r\n".to_vec();
    for i in 0..20 {
        raw.extend_from_slice(format!("X-Pad{i:02}: {}\r\n", "p".repeat(4000)).as_bytes());
    }
    assert!(!raw.windows(4).any(|w| w == b"\r\n\r\n"));
    let t0 = Instant::now();
    assert_rejected(&p, &o, "head over the cap", &raw, 431);
    // Refused as soon as the cap is crossed, not at the header-read timeout.
    assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());
}

#[test]
fn bad_chunk_size_never_reaches_the_origin_as_a_complete_request() {
    // The origin answers as soon as it has a complete (valid chunked) request, so a proxy that
    // forwarded one would get a 200 back.
    let o = origin(|r| Act::Reply(ok(&format!("got {}", r.body.len()))));
    let p = proxy_to("framing-badchunk", &o, "");
    let head = b"POST /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n";
    let variants: &[(&str, &[&[u8]])] = &[
        ("zz with the head", &[b"zz\r\nhello\r\n0\r\n\r\n"]),
        (
            "zz after a good chunk",
            &[b"5\r\nhello\r\n", b"zz\r\n0\r\n\r\n"],
        ),
        ("data not followed by CRLF", &[b"5\r\nhelloXX\r\n0\r\n\r\n"]),
        ("negative size", &[b"-5\r\nhello\r\n0\r\n\r\n"]),
        ("size with junk", &[b"5 x\r\nhello\r\n0\r\n\r\n"]),
    ];
    for (what, parts) in variants {
        let mut s = TcpStream::connect(("127.0.0.1", p.port)).unwrap();
        s.set_nodelay(true).unwrap();
        s.write_all(head).unwrap();
        for part in *parts {
            std::thread::sleep(Duration::from_millis(100));
            let _ = s.write_all(part);
        }
        let (out, closed) = read_until_close(&mut s, Duration::from_secs(5));
        let text = String::from_utf8_lossy(&out);
        assert!(closed, "{what}: connection left open: {text:?}");
        assert!(
            out.is_empty() || text.starts_with("HTTP/1.1 400 "),
            "{what}: {text:?}"
        );
        origin_settled(&o);
        let seen = o.seen.lock().unwrap();
        for conn in &seen.conns {
            let Some(i) = conn.windows(4).position(|w| w == b"\r\n\r\n") else {
                continue;
            };
            let mut sc = ChunkedScanner::new();
            let scanned = sc.scan(&conn[i + 4..], |_| {});
            assert!(
                !matches!(scanned, Ok((_, true))),
                "{what}: the origin saw a complete request: {:?}",
                String::from_utf8_lossy(conn)
            );
            // The proxy validates chunk framing before forwarding it: the bad bytes stay home.
            assert!(
                scanned.is_ok(),
                "{what}: malformed chunk framing was forwarded: {:?}",
                String::from_utf8_lossy(conn)
            );
        }
    }
}

#[test]
fn te_plus_cl_smuggling_is_refused_and_the_hidden_request_never_runs() {
    let o = http_origin(|_, _| ok("origin"));
    let p = proxy_to("framing-smuggle", &o, "");
    // CL.TE and TE.CL classics: whichever length a peer believed, a second request hides in
    // the body.
    let cases: &[(&str, &[u8])] = &[
        (
            "TE chunked + CL 4, GET in the body",
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n",
        ),
        (
            "CL 4 + TE chunked, chunk holds a GET",
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n5c\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\nContent-Length: 15\r\n\r\nx=1\r\n0\r\n\r\n",
        ),
        (
            "TE with a space before the colon",
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n",
        ),
        (
            "TE obs-folded",
            b"POST / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n Transfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n",
        ),
    ];
    for (what, raw) in cases {
        assert_rejected(&p, &o, what, raw, 400);
    }
}

#[test]
fn pipelined_valid_request_then_garbage_gets_an_answer_then_400() {
    let o = http_origin(|h, _| ok(String::from_utf8_lossy(h).split(' ').nth(1).unwrap()));
    let p = proxy_to("framing-pipe-garbage", &o, "");
    let mut c = Client::connect(p.port);
    c.send(b"GET /one HTTP/1.1\r\nHost: a\r\n\r\nGARBAGE \x01\x02 NOT HTTP\r\n\r\n");
    let r1 = c.read_response(false).expect("first response");
    assert_eq!(r1.status, 200);
    assert_eq!(r1.text(), "/one");
    let r2 = c.read_response(false).expect("400 for the garbage");
    assert_eq!(r2.status, 400);
    assert_eq!(r2.header("Connection").as_deref(), Some("close"));
    assert!(c.closed());
    // A valid request after a bad one is not served either: the connection is gone.
    assert_eq!(o.requests.lock().unwrap().len(), 1);

    // Same with a second request whose framing is bad (two Content-Length).
    let mut c = Client::connect(p.port);
    c.send(b"GET /two HTTP/1.1\r\nHost: a\r\n\r\nPOST /three HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab");
    assert_eq!(c.read_response(false).unwrap().text(), "/two");
    let r = c.read_response(false).unwrap();
    assert_eq!(r.status, 400);
    assert!(c.closed());
    assert_eq!(o.requests.lock().unwrap().len(), 2);
}

#[test]
fn a_bad_request_line_is_answered_before_the_head_ends() {
    let o = http_origin(|_, _| ok("origin"));
    let p = proxy_to("framing-early-line", &o, "");
    // No empty line follows: the answer must come without waiting for it, well before the
    // 20 s header timeout that would otherwise end the wait (`assert_rejected` reads for 5 s).
    let cases: &[(&str, &[u8], u16)] = &[
        ("bad method byte", b"G\x01T / HTTP/1.1\r\nHost: a\r\n", 400),
        ("not HTTP at all", b"GARBAGE \x01 NOT HTTP\r\n", 400),
        ("HTTP/1.3", b"GET / HTTP/1.3\r\nHost: a\r\n", 505),
        ("CONNECT", b"CONNECT a:443 HTTP/1.1\r\n", 501),
    ];
    for (what, raw, status) in cases {
        assert_rejected(&p, &o, what, raw, *status);
    }
}

#[test]
fn a_head_cut_short_after_its_request_line_gets_400_and_a_log_line() {
    let o = http_origin(|_, _| ok("origin"));
    let p = proxy_to("framing-cut", &o, "");
    let send_then_close = |raw: &[u8]| {
        let mut s = TcpStream::connect(("127.0.0.1", p.port)).unwrap();
        s.write_all(raw).unwrap();
        s.shutdown(Shutdown::Write).unwrap();
        read_until_close(&mut s, Duration::from_secs(5))
    };
    // The empty line before the request line is skipped, in the log line too.
    let (out, closed) = send_then_close(b"\r\nGET /cut HTTP/1.1\r\nHost: a\r\nX-A: par");
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 400 "), "{text:?}");
    assert!(
        text.to_ascii_lowercase().contains("\r\nconnection: close"),
        "{text:?}"
    );
    assert!(closed);
    // Cut inside the request line: closed without a response or a log line, as httpd does.
    let (out, closed) = send_then_close(b"GET /cu");
    assert!(
        out.is_empty() && closed,
        "{:?}",
        String::from_utf8_lossy(&out)
    );
    let lines = p.access_lines(1);
    std::thread::sleep(Duration::from_millis(300)); // more than the 50 ms log flush
    assert_eq!(p.access_log().lines().count(), 1, "{}", p.access_log());
    assert!(lines[0].contains("\"GET /cut HTTP/1.1\" 400 "), "{lines:?}");
    assert!(p.error_log().contains("closed in the request head"));
    assert_eq!(o.connections(), 0);
}

// ---- member side ---------------------------------------------------------------------------

/// An origin with one misbehaviour per path; every reply keeps the connection open unless the
/// path says otherwise.
fn misbehaving_origin() -> ScriptedOrigin {
    origin(|r| {
        match r.path() {
        "/clte" => Act::Reply(
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
                .to_vec(),
        ),
        "/dupcl" => Act::Reply(
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!".to_vec(),
        ),
        "/garbage" => Act::Reply(b"SURPRISE! not a status line\r\nContent-Length: 0\r\n\r\n".to_vec()),
        "/badstatus" => Act::Reply(b"HTTP/1.1 2OO OK\r\nContent-Length: 0\r\n\r\n".to_vec()),
        "/short" => Act::ReplyClose(
            b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789".to_vec(),
        ),
        "/extra" => Act::Reply(
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhelloHTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nsmuggled"
                .to_vec(),
        ),
        _ => Act::Reply(ok("good")),
    }
    })
}

/// `path` on a fresh client gets a 502 with `Connection: close`, the client connection closes,
/// and the member connection it came on is not reused by the next request.
fn assert_bad_member_response(p: &Proxy, o: &ScriptedOrigin, path: &str) {
    let mut c = Client::connect(p.port);
    assert_eq!(c.get("/good", "").text(), "good");
    let before = o.connections();
    // Warm: the previous request's member connection is pooled and reused.
    assert_eq!(c.get("/good", "").text(), "good");
    assert_eq!(
        o.connections(),
        before,
        "{path}: pooled connection not reused"
    );
    let r = c.get(path, "");
    assert_eq!(r.status, 502, "{path}: {}", r.head);
    assert_eq!(r.header("Connection").as_deref(), Some("close"), "{path}");
    assert!(c.closed(), "{path}: client connection left open after 502");
    let mut c = Client::connect(p.port);
    assert_eq!(c.get("/good", "").text(), "good");
    assert_eq!(
        o.connections(),
        before + 1,
        "{path}: the member connection behind the 502 was reused"
    );
}

#[test]
fn member_response_with_cl_and_te_is_502_and_its_connection_dropped() {
    let o = misbehaving_origin();
    let p = proxy_to("framing-be-clte", &o, "");
    assert_bad_member_response(&p, &o, "/clte");
    assert!(error_log_line(&p, |l| l.contains("AH01102")).is_some());
}

#[test]
fn member_response_with_differing_content_lengths_is_502() {
    let o = misbehaving_origin();
    let p = proxy_to("framing-be-dupcl", &o, "");
    assert_bad_member_response(&p, &o, "/dupcl");
}

#[test]
fn member_garbage_status_line_is_502() {
    let o = misbehaving_origin();
    let p = proxy_to("framing-be-garbage", &o, "");
    assert_bad_member_response(&p, &o, "/garbage");
    assert_bad_member_response(&p, &o, "/badstatus");
}

#[test]
fn member_closing_mid_body_cuts_the_client_connection() {
    let o = misbehaving_origin();
    let p = proxy_to("framing-be-short", &o, "");
    let (out, closed) = exchange(
        p.port,
        b"GET /short HTTP/1.1\r\nHost: a\r\n\r\n",
        // Promptly: well under the 5 s KeepAliveTimeout a kept connection would wait for.
        Duration::from_secs(3),
    );
    assert!(
        closed,
        "client connection left open after a truncated body: {:?}",
        String::from_utf8_lossy(&out)
    );
    let text = String::from_utf8_lossy(&out);
    // The head (with the member's Content-Length: 100) may have gone out; the body cannot be
    // complete, and no second response (an error page) may follow a started one.
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    assert!(head.starts_with("HTTP/1.1 200 OK"), "{text:?}");
    assert!(head.contains("Content-Length: 100"), "{head:?}");
    assert!(body.len() < 100, "{text:?}");
    assert!(
        body.starts_with("0123456789") || body.is_empty(),
        "{body:?}"
    );
    assert_eq!(status_lines(&text).len(), 1, "{text:?}");
    // The proxy is fine afterwards.
    let mut c = Client::connect(p.port);
    assert_eq!(c.get("/good", "").text(), "good");
}

#[test]
fn member_bytes_past_content_length_are_dropped_with_the_connection() {
    let o = misbehaving_origin();
    let p = proxy_to("framing-be-extra", &o, "");
    let mut c = Client::connect(p.port);
    assert_eq!(c.get("/good", "").text(), "good");
    let before = o.connections();
    let r = c.get("/extra", "");
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "hello");
    // The next request on the same client connection gets its own answer, not the extra bytes,
    // and goes over a new member connection.
    let r = c.get("/good", "");
    assert_eq!(r.text(), "good", "{}", r.head);
    assert_eq!(
        o.connections(),
        before + 1,
        "the member connection with stray bytes went back to the pool"
    );
    let r = c.get("/good", "");
    assert_eq!(r.text(), "good");
}

// ---- chunked bodies ------------------------------------------------------------------------

#[test]
fn chunked_request_body_reaches_the_origin_de_framed_correctly() {
    let o = origin(|r| {
        let te = r.header("Transfer-Encoding").unwrap_or_default();
        let cl = r.header("Content-Length");
        let trailer = r
            .raw_body
            .windows(b"\r\nX-Sum: 42\r\n".len())
            .any(|w| w == b"\r\nX-Sum: 42\r\n");
        Act::Reply(ok(&format!(
            "te={te} cl={cl:?} trailer={trailer} body={}",
            String::from_utf8_lossy(&r.body)
        )))
    });
    let p = proxy_to("framing-chunked-up", &o, "");
    let mut c = Client::connect(p.port);
    c.send(b"POST /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n");
    for part in [
        &b"5;name=val\r\nhello\r\n"[..],
        b"1\r\n \r\n",
        b"0000A\r\n",
        b"wor",
        b"ld, 123\r\n",
        b"0\r\nX-Sum: 42\r\n\r\n",
    ] {
        std::thread::sleep(Duration::from_millis(30));
        c.send(part);
    }
    let r = c.read_response(false).expect("response");
    assert_eq!(r.status, 200, "{}", r.head);
    assert_eq!(
        r.text(),
        "te=chunked cl=None trailer=true body=hello world, 123"
    );
    // The proxy found the end of the body: the connection is in sync for the next request.
    let r = c.get("/next", "");
    assert!(r.text().ends_with("body="), "{}", r.text());
    // Pipelined right behind a chunked body in one write.
    c.send(b"POST /a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\nGET /b HTTP/1.1\r\nHost: a\r\n\r\n");
    assert!(c.read_response(false).unwrap().text().ends_with("body=abc"));
    assert!(c.read_response(false).unwrap().text().ends_with("body="));
    let heads = o.requests.lock().unwrap();
    assert_eq!(heads.len(), 4, "{heads:?}");
    assert!(heads[0].starts_with("POST /up HTTP/1.1\r\n"));
}

const CHUNKED_REPLY: &[u8] = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-Before: 1\r\n\r\n5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-Sum: 42\r\n\r\n";

#[test]
fn chunked_response_stays_chunked_for_http11_with_trailers() {
    let o = origin(|_| Act::Reply(CHUNKED_REPLY.to_vec()));
    let p = proxy_to("framing-chunked-down11", &o, "");
    let mut s = TcpStream::connect(("127.0.0.1", p.port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"GET /c HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();
    let mut buf = Vec::new();
    let mut b = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = s.read(&mut b).expect("head");
        assert!(n > 0, "closed before the head");
        buf.extend_from_slice(&b[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(
        head.contains("\r\nTransfer-Encoding: chunked\r\n"),
        "{head}"
    );
    assert!(
        !head.to_ascii_lowercase().contains("content-length"),
        "{head}"
    );
    assert!(!head.contains("Connection: close"), "{head}");
    let mut sc = ChunkedScanner::new();
    let mut decoded = Vec::new();
    let mut raw = buf.split_off(head_end);
    let mut off = 0;
    loop {
        let (n, done) = sc
            .scan(&raw[off..], |d| decoded.extend_from_slice(d))
            .expect("valid chunked body");
        off += n;
        if done {
            break;
        }
        let k = s.read(&mut b).expect("body");
        assert!(k > 0, "closed mid-body");
        raw.extend_from_slice(&b[..k]);
    }
    assert_eq!(decoded, b"hello world");
    let raw = String::from_utf8_lossy(&raw[..off]).into_owned();
    assert!(
        raw.ends_with("0\r\nX-Sum: 42\r\n\r\n"),
        "trailer lost: {raw:?}"
    );
    assert_eq!(off, raw.len());
    // Still in sync on the same connection.
    let mut c = Client::connect(p.port);
    assert_eq!(c.get("/c", "").text(), "hello world");
    s.write_all(b"GET /c HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();
    let n = s.read(&mut b).unwrap();
    assert!(b[..n].starts_with(b"HTTP/1.1 200 OK\r\n"));
}

#[test]
fn chunked_response_is_de_chunked_for_http10_and_closed() {
    let o = origin(|_| Act::Reply(CHUNKED_REPLY.to_vec()));
    let p = proxy_to("framing-chunked-down10", &o, "");
    for req in [
        &b"GET /c HTTP/1.0\r\n\r\n"[..],
        b"GET /c HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
    ] {
        let (out, closed) = exchange(p.port, req, Duration::from_secs(5));
        assert!(
            closed,
            "HTTP/1.0 connection not closed after a de-chunked body"
        );
        let text = String::from_utf8_lossy(&out);
        let (head, body) = text.split_once("\r\n\r\n").expect("head");
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
        assert!(head.contains("\r\nConnection: close"), "{head}");
        assert!(head.contains("\r\nX-Before: 1"), "{head}");
        assert!(
            !head.to_ascii_lowercase().contains("transfer-encoding"),
            "{head}"
        );
        assert_eq!(body, "hello world");
    }
}

// ---- Expect: 100-continue and interim responses --------------------------------------------

#[test]
fn expect_100_continue_is_relayed_from_the_origin() {
    let o = ScriptedOrigin::start(|s, got| {
        let mut buf = Vec::new();
        while let Some(head) = next_head(s, &mut buf, got) {
            if head
                .to_ascii_lowercase()
                .contains("\r\nexpect: 100-continue\r\n")
            {
                s.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").unwrap();
            }
            let Some((body, _)) = next_body(s, &mut buf, got, &head) else {
                return;
            };
            let reply = format!("got {}", String::from_utf8_lossy(&body));
            if s.write_all(&ok(&reply)).is_err() {
                return;
            }
        }
    });
    let p = proxy_to("framing-expect", &o, "");
    let mut c = Client::connect(p.port);
    c.s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    c.send(b"POST /e HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n");
    let r = c
        .read_response(false)
        .expect("100 Continue before the body was sent");
    assert_eq!(r.status, 100, "{}", r.head);
    c.send(b"hello");
    let r = c.read_response(false).expect("final response");
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "got hello");
    // The connection stays usable.
    assert_eq!(c.get("/x", "").text(), "got ");
}

#[test]
fn final_response_to_expect_without_reading_the_body_closes_the_client() {
    // The origin answers from the head alone and never reads the body.
    let o = ScriptedOrigin::start(|s, got| {
        let mut buf = Vec::new();
        while let Some(head) = next_head(s, &mut buf, got) {
            let path = head.split(' ').nth(1).unwrap_or("").to_string();
            let reply = match path.as_str() {
                "/417" => {
                    b"HTTP/1.1 417 Expectation Failed\r\nContent-Length: 4\r\n\r\nnope".to_vec()
                }
                "/201" => b"HTTP/1.1 201 Created\r\nContent-Length: 4\r\n\r\ndone".to_vec(),
                _ => ok("good"),
            };
            if s.write_all(&reply).is_err() {
                return;
            }
        }
    });
    let p = proxy_to("framing-expect-final", &o, "");
    for (path, status, body) in [("/417", 417, "nope"), ("/201", 201, "done")] {
        let mut c = Client::connect(p.port);
        c.send(
            format!(
                "PUT {path} HTTP/1.1\r\nHost: a\r\nContent-Length: 100000\r\nExpect: 100-continue\r\n\r\n"
            )
            .as_bytes(),
        );
        let r = c.read_response(false).expect("final response");
        assert_eq!(r.status, status, "{}", r.head);
        assert_eq!(r.text(), body);
        assert_eq!(r.header("Connection").as_deref(), Some("close"), "{path}");
        assert!(
            c.closed(),
            "{path}: connection left open with an unread body"
        );
    }
    // Neither member connection (with an unread request body behind it) was reused.
    let before = o.connections();
    let mut c = Client::connect(p.port);
    assert_eq!(c.get("/good", "").text(), "good");
    assert_eq!(o.connections(), before + 1);
}

#[test]
fn early_hints_are_relayed_to_http11_clients_only() {
    let o = origin(|_| {
        let mut b = b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n".to_vec();
        b.extend_from_slice(&ok("final"));
        Act::Reply(b)
    });
    let p = proxy_to("framing-103", &o, "");
    let mut c = Client::connect(p.port);
    c.send(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    let r = c.read_response(false).unwrap();
    assert_eq!(r.status, 103, "{}", r.head);
    assert_eq!(
        r.header("Link").as_deref(),
        Some("</style.css>; rel=preload")
    );
    let r = c.read_response(false).unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "final");
    assert_eq!(c.get("/", "").status, 103);
    // HTTP/1.0 has no 1xx: only the final response.
    let (out, _) = exchange(p.port, b"GET / HTTP/1.0\r\n\r\n", Duration::from_secs(5));
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    assert!(!text.contains("103"), "{text}");
}

// ---- timeouts ------------------------------------------------------------------------------

#[test]
fn keep_alive_timeout_closes_an_idle_client() {
    let o = http_origin(|_, _| ok("origin"));
    let p = proxy_to("framing-katimeout", &o, "KeepAliveTimeout 1\n");
    let mut c = Client::connect(p.port);
    assert_eq!(c.get("/", "").text(), "origin");
    let t0 = Instant::now();
    let (out, closed) = read_until_close(&mut c.s, Duration::from_secs(5));
    let took = t0.elapsed();
    assert!(closed, "idle keep-alive connection still open after 5 s");
    assert!(out.is_empty(), "{:?}", String::from_utf8_lossy(&out));
    assert!(
        took >= Duration::from_millis(700) && took < Duration::from_secs(4),
        "closed after {took:?}"
    );
}

#[test]
fn slow_header_gets_408_or_close_while_others_are_served() {
    let o = http_origin(|_, _| ok("origin"));
    let p = proxy_to("framing-slowloris", &o, "RequestReadTimeout header=1\n");
    let t0 = Instant::now();
    // Half a head, then nothing.
    let mut stall = TcpStream::connect(("127.0.0.1", p.port)).unwrap();
    stall.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n").unwrap();
    // One byte every 200 ms: the deadline is for the whole head, not per read.
    let drip = std::thread::spawn({
        let port = p.port;
        move || {
            let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
            let t = Instant::now();
            for &b in b"GET / HTTP/1.1\r\nHost: a\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" {
                if s.write_all(&[b]).is_err() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(200));
                if t.elapsed() > Duration::from_secs(6) {
                    break;
                }
            }
            t.elapsed()
        }
    });
    // Meanwhile the single shard keeps serving others.
    for _ in 0..5 {
        let t = Instant::now();
        let mut c = Client::connect(p.port);
        assert_eq!(c.get("/", "").text(), "origin");
        assert!(
            t.elapsed() < Duration::from_millis(800),
            "{:?}",
            t.elapsed()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let (out, closed) = read_until_close(&mut stall, Duration::from_secs(5));
    let took = t0.elapsed();
    assert!(closed, "stalled head still open after {took:?}");
    assert!(
        took >= Duration::from_millis(700) && took < Duration::from_secs(4),
        "closed after {took:?}"
    );
    let text = String::from_utf8_lossy(&out);
    assert!(
        out.is_empty() || text.starts_with("HTTP/1.1 408 "),
        "{text:?}"
    );
    let dripped = drip.join().unwrap();
    assert!(
        dripped < Duration::from_secs(4),
        "a one-byte-at-a-time head was allowed {dripped:?}"
    );
    assert!(o.requests.lock().unwrap().len() == 5);
}

#[test]
fn proxy_timeout_gives_504_and_an_error_log_line() {
    // Reads the head, then never answers (until the test is long over).
    let o = ScriptedOrigin::start(|s, got| {
        let mut buf = Vec::new();
        if next_head(s, &mut buf, got).is_some() {
            std::thread::sleep(Duration::from_secs(6));
        }
    });
    let p = proxy_to("framing-proxytimeout", &o, "ProxyTimeout 1\n");
    let mut c = Client::connect(p.port);
    let t0 = Instant::now();
    let r = c.get("/slow", "");
    let took = t0.elapsed();
    assert_eq!(r.status, 504, "{}", r.head);
    assert!(
        took >= Duration::from_millis(700) && took < Duration::from_secs(4),
        "504 after {took:?}"
    );
    let line = error_log_line(&p, |l| l.contains("[proxy:error]") && l.contains("timeout"));
    assert!(line.is_some(), "error log: {}", p.error_log());
    assert_eq!(
        o.connections(),
        1,
        "a timed-out request must not be retried"
    );
}

// ---- more member-side framing ---------------------------------------------------------------

#[test]
fn close_delimited_response_reaches_the_client_and_closes_it() {
    let o = origin(|_| Act::ReplyClose(b"HTTP/1.1 200 OK\r\nX-A: 1\r\n\r\nuntil close".to_vec()));
    let p = proxy_to("framing-untilclose", &o, "");
    let (out, closed) = exchange(
        p.port,
        b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
        Duration::from_secs(3),
    );
    assert!(
        closed,
        "client connection must close after a close-delimited body"
    );
    let text = String::from_utf8_lossy(&out);
    let (head, body) = text.split_once("\r\n\r\n").expect("head");
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(head.contains("\r\nConnection: close"), "{head}");
    assert_eq!(body, "until close");
}

#[test]
fn malformed_chunked_response_is_502_before_the_head_and_a_cut_after() {
    let o = ScriptedOrigin::start(|s, got| {
        let mut buf = Vec::new();
        let Some(head) = next_head(s, &mut buf, got) else {
            return;
        };
        if head.starts_with("GET /late ") {
            // A good chunk goes out with the head; the bad size line comes in a later read.
            let _ =
                s.write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n");
            std::thread::sleep(Duration::from_millis(200));
            let _ = s.write_all(b"zz\r\nmore\r\n0\r\n\r\n");
        } else {
            let _ = s.write_all(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
            );
        }
        // Keep the connection open: the proxy must not wait for more.
        let _ = next_head(s, &mut buf, got);
    });
    let p = proxy_to("framing-be-badchunk", &o, "");
    // The whole bad response is in the first read: nothing went to the client yet, so it gets
    // a 502 (not a silent close).
    let (out, closed) = exchange(
        p.port,
        b"GET /early HTTP/1.1\r\nHost: a\r\n\r\n",
        Duration::from_secs(3),
    );
    let text = String::from_utf8_lossy(&out);
    assert!(closed, "{text:?}");
    assert!(text.starts_with("HTTP/1.1 502 "), "{text:?}");
    // Mid-body: the chunked stream is cut without a last chunk.
    let (out, closed) = exchange(
        p.port,
        b"GET /late HTTP/1.1\r\nHost: a\r\n\r\n",
        Duration::from_secs(3),
    );
    let text = String::from_utf8_lossy(&out);
    assert!(closed, "{text:?}");
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text:?}");
    assert!(!text.contains("zz"), "bad framing forwarded: {text:?}");
    assert!(
        !text.ends_with("0\r\n\r\n"),
        "cut stream looks complete: {text:?}"
    );
    assert_eq!(status_lines(&text).len(), 1, "{text:?}");
}

#[test]
fn client_abort_mid_upload_drops_the_member_connection() {
    let o = origin(|r| Act::Reply(ok(&format!("got {}", r.body.len()))));
    let p = proxy_to("framing-client-abort", &o, "");
    let mut c = Client::connect(p.port);
    c.send(b"POST /up HTTP/1.1\r\nHost: a\r\nContent-Length: 1000\r\n\r\n0123456789");
    std::thread::sleep(Duration::from_millis(100));
    drop(c);
    // The member connection carrying a partial body is closed, never pooled: its script ends
    // with EOF before a whole request.
    origin_settled(&o);
    assert_eq!(o.connections(), 1);
    assert_eq!(
        o.seen.lock().unwrap().conns.len(),
        1,
        "member connection still open"
    );
    let mut c = Client::connect(p.port);
    assert_eq!(c.get("/next", "").text(), "got 0");
    assert_eq!(o.connections(), 2);
}

/// A deterministic byte stream and a split of it into odd pieces.
fn odd_bytes(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 31 + i / 97) as u8).collect()
}

fn odd_sizes(total: usize, seed: usize) -> Vec<usize> {
    let mut v = Vec::new();
    let (mut left, mut x) = (total, seed);
    while left > 0 {
        x = x.wrapping_mul(1103515245).wrapping_add(12345) % (1 << 31);
        let n = (1 + x % 70_000).min(left);
        v.push(n);
        left -= n;
    }
    v
}

/// `data` as a chunked body with odd chunk sizes (some with extensions) and a trailer.
fn chunk_up(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut at = 0;
    for (i, n) in odd_sizes(data.len(), 7).into_iter().enumerate() {
        if i % 3 == 0 {
            out.extend_from_slice(format!("{n:x};i={i}\r\n").as_bytes());
        } else {
            out.extend_from_slice(format!("{n:X}\r\n").as_bytes());
        }
        out.extend_from_slice(&data[at..at + n]);
        out.extend_from_slice(b"\r\n");
        at += n;
    }
    out.extend_from_slice(b"0\r\nX-End: yes\r\n\r\n");
    out
}

/// Writes `bytes` in odd-sized pieces (so framing lines straddle reads).
fn write_oddly(s: &mut TcpStream, bytes: &[u8]) -> std::io::Result<()> {
    let mut at = 0;
    for (i, n) in odd_sizes(bytes.len(), 3).into_iter().enumerate() {
        let n = n % 9000 + 1;
        let n = n.min(bytes.len() - at);
        s.write_all(&bytes[at..at + n])?;
        at += n;
        if i % 16 == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
        if at == bytes.len() {
            break;
        }
    }
    if at < bytes.len() {
        s.write_all(&bytes[at..])?;
    }
    Ok(())
}

#[test]
fn chunked_bodies_with_odd_boundaries_survive_both_ways() {
    const N: usize = 3 << 20;
    let o = ScriptedOrigin::start(|s, got| {
        let mut buf = Vec::new();
        while let Some(head) = next_head(s, &mut buf, got) {
            let Some((body, _)) = next_body(s, &mut buf, got, &head) else {
                return;
            };
            got.clear(); // keep the record small
            let reply = if head.starts_with("POST ") {
                let same = body == odd_bytes(N);
                ok(&format!("len={} same={same}", body.len()))
            } else {
                let mut r = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
                r.extend_from_slice(&chunk_up(&odd_bytes(N)));
                r
            };
            if write_oddly(s, &reply).is_err() {
                return;
            }
        }
    });
    let p = proxy_to("framing-odd-chunks", &o, "");
    // Upload.
    let mut c = Client::connect(p.port);
    c.send(b"POST /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n");
    write_oddly(&mut c.s, &chunk_up(&odd_bytes(N))).unwrap();
    let r = c.read_response(false).expect("upload response");
    assert_eq!(r.text(), format!("len={N} same=true"));
    // Download, HTTP/1.1 (chunked kept) on the same connection.
    let r = c.get("/down", "");
    assert_eq!(r.header("Transfer-Encoding").as_deref(), Some("chunked"));
    assert!(r.body == odd_bytes(N), "chunked download differs");
    // Download, HTTP/1.0 (de-chunked, close-delimited).
    let (out, closed) = exchange(
        p.port,
        b"GET /down HTTP/1.0\r\n\r\n",
        Duration::from_secs(10),
    );
    assert!(closed);
    let i = out.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    assert_eq!(out.len() - i, N, "de-chunked length");
    assert!(out[i..] == odd_bytes(N)[..], "de-chunked download differs");
}

#[test]
fn heads_arriving_byte_by_byte_both_ways() {
    let o = ScriptedOrigin::start(|s, got| {
        let mut buf = Vec::new();
        while let Some(head) = next_head(s, &mut buf, got) {
            let body = format!("saw {}", head.lines().next().unwrap());
            let reply = ok(&body);
            for b in &reply {
                if s.write_all(&[*b]).is_err() {
                    return;
                }
                std::thread::sleep(Duration::from_micros(300));
            }
        }
    });
    let p = proxy_to("framing-bytewise", &o, "");
    let mut c = Client::connect(p.port);
    for b in b"GET /slow HTTP/1.1\r\nHost: a\r\nX-A: 1\r\n\r\n" {
        c.send(&[*b]);
        std::thread::sleep(Duration::from_micros(300));
    }
    let r = c.read_response(false).unwrap();
    assert_eq!(r.text(), "saw GET /slow HTTP/1.1");
    assert_eq!(c.get("/again", "").text(), "saw GET /again HTTP/1.1");
}

#[test]
fn large_heads_within_the_limits_pass_both_ways() {
    let big = "v".repeat(8000);
    let big2 = big.clone();
    let o = origin(move |r| {
        let n = r.head.len();
        Act::Reply(
            format!(
                "HTTP/1.1 200 OK\r\nX-Big1: {big2}\r\nX-Big2: {big2}\r\nX-Big3: {big2}\r\nContent-Length: {}\r\n\r\n{n}",
                n.to_string().len()
            )
            .into_bytes(),
        )
    });
    let p = proxy_to("framing-bigheads", &o, "");
    let mut c = Client::connect(p.port);
    // ~56 KB request head: 7 fields of 8000 bytes (each under LimitRequestFieldSize 8190).
    let extra: String = (0..7).map(|i| format!("X-Big{i}: {big}\r\n")).collect();
    let r = c.get("/", &extra);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("X-Big3").as_deref(), Some(big.as_str()));
    let seen: usize = r.text().parse().unwrap();
    assert!(seen > 56_000, "{seen}");
    assert_eq!(c.get("/", "").status, 200);
}

#[test]
fn request_pipelined_behind_a_streamed_body_is_kept() {
    let o = origin(|r| {
        let same = r.body == odd_bytes(r.body.len());
        Act::Reply(ok(&format!("{} {} {same}", r.path(), r.body.len())))
    });
    let p = proxy_to("framing-pipe-body", &o, "");
    let n = 300_000;
    let mut raw =
        format!("POST /cl HTTP/1.1\r\nHost: a\r\nContent-Length: {n}\r\n\r\n").into_bytes();
    raw.extend_from_slice(&odd_bytes(n));
    raw.extend_from_slice(
        b"POST /chunked HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n",
    );
    raw.extend_from_slice(&chunk_up(&odd_bytes(n)));
    raw.extend_from_slice(b"GET /last HTTP/1.1\r\nHost: a\r\n\r\n");
    let mut c = Client::connect(p.port);
    let mut s = c.s.try_clone().unwrap();
    let writer = std::thread::spawn(move || write_oddly(&mut s, &raw));
    assert_eq!(
        c.read_response(false).unwrap().text(),
        format!("/cl {n} true")
    );
    assert_eq!(
        c.read_response(false).unwrap().text(),
        format!("/chunked {n} true")
    );
    assert_eq!(c.read_response(false).unwrap().text(), "/last 0 true");
    writer.join().unwrap().unwrap();
}
