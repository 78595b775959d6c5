//! Bodies of known length past the first read go through a pipe (io/pipe.rs), on every I/O
//! backend. Responses, member to client: the bytes arrive intact and in order (also to a client
//! that reads slowly), the member connection is reused after them, and a member that closes or
//! stalls mid-body cuts the client connection without a second response. Requests, client to
//! member: the body arrives intact, a request pipelined behind it is served, a body held back
//! for 100-continue goes after the member's 100 or after the wait for it, a client stalling
//! mid-body is dropped at Timeout, and a member closing mid-body gets the client a 502.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{Client, Proxy, ScriptedOrigin, proxy_pass};

const BACKENDS: [&str; 3] = ["ring", "uring", "epoll"];
const BIG: usize = 3 << 20;

/// Bytes that show any reordering or loss: no 4 KiB page repeats another at the same offset.
fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i % 251) as u8).collect()
}

/// ringproxy on backend `io` in front of the member on `port` (`extra`: config lines before the
/// ProxyPass).
fn proxy_to(tag: &str, io: &str, extra: &str, port: u16) -> Proxy {
    let before = format!("IoBackend {io}\n{extra}");
    proxy_pass(&format!("{tag}-{io}"), port, &before, "")
}

/// `proxy_to`, and a client connection that has sent `raw`.
fn proxied(tag: &str, io: &str, extra: &str, port: u16, raw: &[u8]) -> (Proxy, TcpStream) {
    let p = proxy_to(tag, io, extra, port);
    let mut s = TcpStream::connect(("127.0.0.1", p.port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(6))).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(raw).unwrap();
    (p, s)
}

fn get(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: a\r\n\r\n").into_bytes()
}

/// The head of `POST path` with a `len`-byte body and `extra` header lines, then the body's
/// first `sent` bytes.
fn upload_start(path: &str, len: usize, sent: usize, extra: &str) -> Vec<u8> {
    let mut raw =
        format!("POST {path} HTTP/1.1\r\nHost: a\r\nContent-Length: {len}\r\n{extra}\r\n")
            .into_bytes();
    raw.extend_from_slice(&pattern(len)[..sent]);
    raw
}

/// Reads until the proxy closes the connection (bounded by the read timeout); what came, and
/// whether it was a close (a reset counts: the proxy closes with unread bytes of ours).
fn read_until_close(s: &mut TcpStream) -> (Vec<u8>, bool) {
    let mut got = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return (got, true),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) => return (got, e.kind() == std::io::ErrorKind::ConnectionReset),
        }
    }
}

/// Reads until the proxy closes the connection, which must come at a 1 s timeout: after 0.9 s
/// and before `latest`. Returns what came before the close.
fn closed_at_timeout(io: &str, s: &mut TcpStream, latest: Duration) -> Vec<u8> {
    let t0 = Instant::now();
    let (got, closed) = read_until_close(s);
    let took = t0.elapsed();
    assert!(closed, "{io}: the client connection stayed open");
    assert!(
        took >= Duration::from_millis(900) && took < latest,
        "{io}: closed after {took:?}"
    );
    got
}

/// Pipes the process holds beyond its standard streams. Serving requests makes none except
/// for splicing, and a shard keeps the pipe of a finished splice for the next body, so the
/// count before and after a run of bodies tells whether they were spliced.
fn pipes_held(pid: i32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|e| {
            let e = e.ok()?;
            let fd: u32 = e.file_name().to_str()?.parse().ok()?;
            let to = std::fs::read_link(e.path()).ok()?;
            (fd > 2 && to.to_str()?.starts_with("pipe:")).then_some(())
        })
        .count()
}

/// After a run of spliced bodies: one member connection carried every request, and the bodies
/// went through one pipe, which the shard keeps for the next body.
fn assert_one_connection_and_pipe(
    io: &str,
    o: &ScriptedOrigin,
    conns_before: usize,
    p: &Proxy,
    pipes_before: usize,
) {
    assert_eq!(
        o.connections() - conns_before,
        1,
        "{io}: one member connection carries every request"
    );
    assert_eq!(
        pipes_held(p.proc.pid()),
        pipes_before + 2,
        "{io}: the bodies went through one pipe, kept for the next"
    );
}

/// A member that answers every request on a connection with `pattern(BIG)`.
fn big_body_origin() -> ScriptedOrigin {
    ScriptedOrigin::start(|s, got| {
        let body = pattern(BIG);
        while common::read_head(s, got) {
            let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {BIG}\r\n\r\n");
            if s.write_all(head.as_bytes()).is_err() || s.write_all(&body).is_err() {
                return;
            }
        }
    })
}

#[test]
fn large_bodies_arrive_intact_and_the_member_connection_is_reused() {
    let o = big_body_origin();
    let want = pattern(BIG);
    for io in BACKENDS {
        let before = o.connections();
        let p = proxy_to("splice", io, "", o.port);
        let pipes_before = pipes_held(p.proc.pid());
        let mut c = Client::connect(p.port);
        for i in 0..3 {
            let r = c.get("/", "");
            assert_eq!(r.status, 200, "{io} #{i}");
            assert!(
                r.body == want,
                "{io} #{i}: the body differs from the member's"
            );
        }
        assert_one_connection_and_pipe(io, &o, before, &p, pipes_before);
    }
}

/// A 3 MiB body read 64 KiB at a time with pauses: the proxy waits for the client's socket to
/// take more.
#[test]
fn a_slow_client_gets_the_whole_body() {
    let o = big_body_origin();
    let want = pattern(BIG);
    for io in BACKENDS {
        let (_p, mut s) = proxied("splice-slow", io, "", o.port, &get("/"));
        let mut got = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        let until = Instant::now() + Duration::from_secs(20);
        let body_at = |got: &[u8]| got.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4);
        while body_at(&got).is_none_or(|at| got.len() - at < BIG) && Instant::now() < until {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        let at = body_at(&got).expect("a response head");
        assert!(got[at..] == want[..], "{io}: {} body bytes", got.len() - at);
    }
}

/// A member that stops sending mid-body for longer than ProxyTimeout: the client connection
/// is cut at about that time, not left waiting.
#[test]
fn a_member_stalling_mid_body_cuts_the_client_connection_at_its_timeout() {
    let o = ScriptedOrigin::start(|s, got| {
        if !common::read_head(s, got) {
            return;
        }
        let head = "HTTP/1.1 200 OK\r\nContent-Length: 1048576\r\n\r\n";
        let _ = s.write_all(head.as_bytes());
        let _ = s.write_all(&vec![b'x'; 300 * 1024]);
        std::thread::sleep(Duration::from_secs(4));
    });
    for io in BACKENDS {
        let extra = "ProxyTimeout 1\n";
        let (_p, mut s) = proxied("splice-stall", io, extra, o.port, &get("/stall"));
        let got = closed_at_timeout(io, &mut s, Duration::from_secs(3));
        assert!(got.len() < 1048576, "{io}: {} bytes", got.len());
    }
}

#[test]
fn a_member_closing_mid_body_cuts_the_client_connection() {
    let o = ScriptedOrigin::start(|s, got| {
        if !common::read_head(s, got) {
            return;
        }
        if got.starts_with(b"GET /good ") {
            let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\ngood");
            return;
        }
        let head = "HTTP/1.1 200 OK\r\nContent-Length: 1048576\r\n\r\n";
        let _ = s.write_all(head.as_bytes());
        let _ = s.write_all(&vec![b'x'; 300 * 1024]);
        // Then the connection closes, 724 KiB short.
    });
    for io in BACKENDS {
        let (p, mut s) = proxied("splice-short", io, "", o.port, &get("/short"));
        let t0 = Instant::now();
        let (got, closed) = read_until_close(&mut s);
        assert!(
            closed,
            "{io}: client connection left open after a truncated body"
        );
        assert!(t0.elapsed() < Duration::from_secs(4), "{io}: closed late");
        let head_end = got.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        let head = String::from_utf8_lossy(&got[..head_end]);
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{io}: {head:?}");
        let body = &got[head_end..];
        assert!(
            body.len() <= 300 * 1024 && body.iter().all(|&b| b == b'x'),
            "{io}: {} body bytes: more than the member sent, or a second response",
            body.len()
        );
        let mut c = Client::connect(p.port);
        assert_eq!(
            c.get("/good", "").text(),
            "good",
            "{io}: the proxy serves on"
        );
    }
}

/// A member that answers each request with whether its body is `pattern(len)` (a GET with
/// "after"); for a request with `Expect: 100-continue` to a path holding "continue" it sends a
/// 100 first.
fn upload_checking_origin() -> ScriptedOrigin {
    common::http_origin_with_interim(
        |head| {
            let head = String::from_utf8_lossy(head).to_ascii_lowercase();
            (head.contains("continue ") && head.contains("\r\nexpect: 100-continue\r\n"))
                .then(|| b"HTTP/1.1 100 Continue\r\n\r\n".to_vec())
        },
        |head, body| {
            if head.starts_with(b"GET ") {
                return common::ok("after");
            }
            let intact = body == pattern(body.len()).as_slice();
            let verdict = if intact { "intact" } else { "damaged" };
            common::ok(&format!("{verdict} {}", body.len()))
        },
    )
}

#[test]
fn uploads_arrive_intact_and_a_request_pipelined_behind_one_is_served() {
    let o = upload_checking_origin();
    for io in BACKENDS {
        let before = o.connections();
        let p = proxy_to("splice-up", io, "", o.port);
        let pipes_before = pipes_held(p.proc.pid());
        let mut c = Client::connect(p.port);
        c.s.set_write_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        for i in 0..2 {
            let mut raw = upload_start("/up", BIG, BIG, "");
            raw.extend_from_slice(&get("/after"));
            c.send(&raw);
            let r = c.read_response(false).expect("the upload's response");
            assert_eq!(r.text(), format!("intact {BIG}"), "{io} #{i}");
            let r = c
                .read_response(false)
                .expect("the pipelined GET's response");
            assert_eq!(r.text(), "after", "{io} #{i}");
        }
        assert_one_connection_and_pipe(io, &o, before, &p, pipes_before);
        // %I counts the spliced body with the head.
        let lines = p.access_lines(4);
        let post = lines
            .iter()
            .find(|l| l.contains("\"POST /up "))
            .expect("a POST line");
        let fields: Vec<&str> = post.split_whitespace().collect();
        let bytes_in: usize = fields[fields.len() - 4].parse().expect("%I");
        assert!(
            bytes_in > BIG && bytes_in < BIG + 200,
            "{io}: %I {bytes_in}"
        );
    }
}

/// Reads one interim or final response head from `s`.
fn read_head_text(s: &mut TcpStream) -> String {
    let mut got = Vec::new();
    let mut b = [0u8; 1];
    while !got.ends_with(b"\r\n\r\n") && s.read(&mut b).is_ok_and(|n| n == 1) {
        got.push(b[0]);
    }
    String::from_utf8_lossy(&got).into_owned()
}

/// Reads a final response with a Content-Length body; its head and body as text.
fn read_response_text(s: &mut TcpStream) -> (String, String) {
    let head = read_head_text(s);
    let len: usize = head
        .to_ascii_lowercase()
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .map_or(0, |v| v.trim().parse().unwrap_or(0));
    let mut body = vec![0u8; len];
    let _ = s.read_exact(&mut body);
    (head, String::from_utf8_lossy(&body).into_owned())
}

/// A body held back for `Expect: 100-continue`, large enough to splice. When the member sends
/// its 100, the client gets it and sends the body slowly, for longer than ProxyTimeout: the
/// wait for the final response starts when the body is out, not when the head went. When the
/// member sends none, the body goes after the proxy's own wait for it.
#[test]
fn an_upload_held_for_100_continue_goes_after_the_100_or_the_wait() {
    let o = upload_checking_origin();
    let expect = "Expect: 100-continue\r\n";
    let body = pattern(BIG);
    let want = format!("intact {BIG}");
    for io in BACKENDS {
        let raw = upload_start("/continue", BIG, 0, expect);
        let (_p, mut s) = proxied("splice-up-100", io, "ProxyTimeout 1\n", o.port, &raw);
        let head = read_head_text(&mut s);
        assert!(head.starts_with("HTTP/1.1 100 "), "{io}: {head:?}");
        for part in body.chunks(BIG / 6) {
            s.write_all(part).unwrap();
            std::thread::sleep(Duration::from_millis(250));
        }
        let (head, text) = read_response_text(&mut s);
        assert!(
            head.starts_with("HTTP/1.1 200 "),
            "{io} after the 100: {head:?}"
        );
        assert_eq!(text, want, "{io} after the 100");

        let raw = upload_start("/up", BIG, 0, expect);
        let (_p, mut s) = proxied("splice-up-wait", io, "", o.port, &raw);
        std::thread::sleep(Duration::from_millis(300));
        s.write_all(&body).unwrap();
        let (head, text) = read_response_text(&mut s);
        assert!(
            head.starts_with("HTTP/1.1 200 "),
            "{io} without a 100: {head:?}"
        );
        assert_eq!(text, want, "{io} without a 100");
    }
}

/// A client that stops sending mid-body for longer than Timeout is dropped at about that time,
/// without a response; the member never sees a whole body, and the proxy serves on.
#[test]
fn a_client_stalling_mid_upload_is_dropped_at_its_timeout() {
    let o = upload_checking_origin();
    for io in BACKENDS {
        let raw = upload_start("/up", 1 << 20, 300 * 1024, "");
        let (p, mut s) = proxied("splice-up-stall", io, "Timeout 1\n", o.port, &raw);
        let got = closed_at_timeout(io, &mut s, Duration::from_secs(4));
        assert!(got.is_empty(), "{io}: {:?}", String::from_utf8_lossy(&got));
        let mut c = Client::connect(p.port);
        assert_eq!(c.get("/", "").text(), "after", "{io}: the proxy serves on");
    }
}

/// A member that closes with most of a 16 MiB body unread (more than socket buffers take in):
/// the write to it fails, the client gets a 502 and the connection closes.
#[test]
fn a_member_closing_mid_upload_gets_the_client_a_502() {
    let o = ScriptedOrigin::start(|s, got| {
        if !common::read_head(s, got) {
            return;
        }
        let mut buf = vec![0u8; 64 * 1024];
        let mut n = 0;
        while n < 200 * 1024 {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(k) => n += k,
            }
        }
        // Then the connection closes with the rest of the body unread (a reset).
    });
    const LEN: usize = 16 << 20;
    for io in BACKENDS {
        let raw = upload_start("/up", LEN, 300 * 1024, "");
        let (p, mut s) = proxied("splice-up-cut", io, "", o.port, &raw);
        // The rest of the body, while the proxy may already have given up on it.
        let mut w = s.try_clone().unwrap();
        let writer = std::thread::spawn(move || {
            let _ = w.write_all(&pattern(LEN)[300 * 1024..]);
        });
        let (got, closed) = read_until_close(&mut s);
        let text = String::from_utf8_lossy(&got);
        assert!(text.starts_with("HTTP/1.1 502 "), "{io}: {text:?}");
        assert!(closed, "{io}: the client connection stayed open");
        writer.join().unwrap();
        assert!(
            p.error_log().contains("write to the member failed"),
            "{io}: {}",
            p.error_log()
        );
    }
}
