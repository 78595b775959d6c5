//! Response bodies of known length past the first read go from member to client through a
//! pipe (io/pipe.rs), on every I/O backend: the bytes arrive intact and in order (also to a
//! client that reads slowly), the member connection is reused after them, and a member that
//! closes or stalls mid-body cuts the client connection without a second response.

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
