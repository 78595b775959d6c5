//! Bodies of known length past the first read go through a pipe (io/pipe.rs), on every I/O
//! backend. Responses, member to client: the bytes arrive intact and in order (also to a client
//! that reads slowly), the member connection is reused after them, and a member that closes or
//! stalls mid-body cuts the client connection without a second response. Requests, client to
//! member: the body arrives intact, a request pipelined behind it is served, a client stalling
//! mid-body is dropped at Timeout, and a member closing mid-body gets the client a 502.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{Client, Proxy, ScriptedOrigin, start_proxy};

const BACKENDS: [&str; 3] = ["ring", "uring", "epoll"];
const BIG: usize = 3 << 20;

/// Bytes that show any reordering or loss: no 4 KiB page repeats another at the same offset.
fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i % 251) as u8).collect()
}

/// ringproxy on backend `io` in front of the member on `port` (`extra`: config lines before the
/// ProxyPass), and a client connection that has sent `GET path`.
fn proxied_get(tag: &str, io: &str, extra: &str, port: u16, path: &str) -> (Proxy, TcpStream) {
    let p = start_proxy(
        &format!("{tag}-{io}"),
        &format!("IoBackend {io}\n{extra}ProxyPass / http://127.0.0.1:{port}/\n"),
        1,
    );
    let mut s = TcpStream::connect(("127.0.0.1", p.port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(6))).unwrap();
    let get = format!("GET {path} HTTP/1.1\r\nHost: a\r\n\r\n");
    s.write_all(get.as_bytes()).unwrap();
    (p, s)
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
        let p = start_proxy(
            &format!("splice-{io}"),
            &format!("IoBackend {io}\nProxyPass / http://127.0.0.1:{}/\n", o.port),
            1,
        );
        let mut c = Client::connect(p.port);
        for i in 0..3 {
            let r = c.get("/", "");
            assert_eq!(r.status, 200, "{io} #{i}");
            assert!(
                r.body == want,
                "{io} #{i}: the body differs from the member's"
            );
        }
        assert_eq!(
            o.connections() - before,
            1,
            "{io}: one member connection carries all three responses"
        );
    }
}

/// A 3 MiB body read 64 KiB at a time with pauses: the proxy waits for the client's socket to
/// take more.
#[test]
fn a_slow_client_gets_the_whole_body() {
    let o = big_body_origin();
    let want = pattern(BIG);
    for io in BACKENDS {
        let (_p, mut s) = proxied_get("splice-slow", io, "", o.port, "/");
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
        let (_p, mut s) = proxied_get("splice-stall", io, "ProxyTimeout 1\n", o.port, "/stall");
        let t0 = Instant::now();
        let mut n = 0;
        let mut buf = vec![0u8; 64 * 1024];
        let closed = loop {
            match s.read(&mut buf) {
                Ok(0) => break true,
                Ok(k) => n += k,
                Err(_) => break false,
            }
        };
        let took = t0.elapsed();
        assert!(closed, "{io}: the client connection stayed open");
        assert!(
            took >= Duration::from_millis(900) && took < Duration::from_secs(3),
            "{io}: cut after {took:?}"
        );
        assert!(n < 1048576, "{io}: {n} bytes");
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
        let (p, mut s) = proxied_get("splice-short", io, "", o.port, "/short");
        let t0 = Instant::now();
        let mut got = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        let closed = loop {
            match s.read(&mut buf) {
                Ok(0) => break true,
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(_) => break false,
            }
        };
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

/// A member that answers each request with whether its body is `pattern(len)`.
fn upload_checking_origin() -> ScriptedOrigin {
    common::http_origin(|head, body| {
        if head.starts_with(b"GET ") {
            return common::ok("after");
        }
        let intact = body == pattern(body.len()).as_slice();
        common::ok(&format!(
            "{} {}",
            if intact { "intact" } else { "damaged" },
            body.len()
        ))
    })
}

#[test]
fn uploads_arrive_intact_and_a_request_pipelined_behind_one_is_served() {
    let o = upload_checking_origin();
    let body = pattern(BIG);
    for io in BACKENDS {
        let before = o.connections();
        let p = start_proxy(
            &format!("splice-up-{io}"),
            &format!("IoBackend {io}\nProxyPass / http://127.0.0.1:{}/\n", o.port),
            1,
        );
        let mut c = Client::connect(p.port);
        for i in 0..2 {
            let mut raw = format!("POST /up HTTP/1.1\r\nHost: a\r\nContent-Length: {BIG}\r\n\r\n")
                .into_bytes();
            raw.extend_from_slice(&body);
            raw.extend_from_slice(b"GET /after HTTP/1.1\r\nHost: a\r\n\r\n");
            c.send(&raw);
            let r = c.read_response(false).expect("the upload's response");
            assert_eq!(r.text(), format!("intact {BIG}"), "{io} #{i}");
            let r = c
                .read_response(false)
                .expect("the pipelined GET's response");
            assert_eq!(r.text(), "after", "{io} #{i}");
        }
        assert_eq!(
            o.connections() - before,
            1,
            "{io}: one member connection carries all four requests"
        );
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

/// A request head for a 1 MiB upload and its first 300 KiB, sent on a fresh connection to
/// ringproxy on backend `io` in front of the member on `port` (`extra`: config lines).
fn stalled_upload(tag: &str, io: &str, extra: &str, port: u16) -> (Proxy, TcpStream) {
    let p = start_proxy(
        &format!("{tag}-{io}"),
        &format!("IoBackend {io}\n{extra}ProxyPass / http://127.0.0.1:{port}/\n"),
        1,
    );
    let mut s = TcpStream::connect(("127.0.0.1", p.port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(6))).unwrap();
    let mut raw = b"POST /up HTTP/1.1\r\nHost: a\r\nContent-Length: 1048576\r\n\r\n".to_vec();
    raw.extend_from_slice(&pattern(300 * 1024));
    s.write_all(&raw).unwrap();
    (p, s)
}

/// Reads until the proxy closes the connection (bounded by the read timeout); what came, and
/// whether it was a close.
fn read_until_close(s: &mut TcpStream) -> (Vec<u8>, bool) {
    let mut got = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return (got, true),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(_) => return (got, false),
        }
    }
}

/// A client that stops sending mid-body for longer than Timeout is dropped at about that time;
/// the member never sees a whole body, and the proxy serves on.
#[test]
fn a_client_stalling_mid_upload_is_dropped_at_its_timeout() {
    let o = upload_checking_origin();
    for io in BACKENDS {
        let (p, mut s) = stalled_upload("splice-up-stall", io, "Timeout 1\n", o.port);
        let t0 = Instant::now();
        let (got, closed) = read_until_close(&mut s);
        let took = t0.elapsed();
        assert!(closed, "{io}: the client connection stayed open");
        assert!(
            took >= Duration::from_millis(900) && took < Duration::from_secs(4),
            "{io}: dropped after {took:?}"
        );
        assert!(
            !String::from_utf8_lossy(&got).contains("intact"),
            "{io}: the member answered a partial body"
        );
        let mut c = Client::connect(p.port);
        assert_eq!(c.get("/", "").text(), "after", "{io}: the proxy serves on");
    }
}

/// A member that closes mid-body: the client gets a 502 and the connection closes.
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
    for io in BACKENDS {
        let (_p, mut s) = stalled_upload("splice-up-cut", io, "", o.port);
        // The rest of the body, while the proxy may already have given up on it.
        let mut w = s.try_clone().unwrap();
        let writer = std::thread::spawn(move || {
            let _ = w.write_all(&pattern(1048576)[300 * 1024..]);
        });
        let (got, closed) = read_until_close(&mut s);
        let text = String::from_utf8_lossy(&got);
        assert!(text.starts_with("HTTP/1.1 502 "), "{io}: {text:?}");
        assert!(closed, "{io}: the client connection stayed open");
        writer.join().unwrap();
    }
}
