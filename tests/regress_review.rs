//! Regressions for defects a review of the data path found. Each test names the defect and
//! fails if it returns.

mod common;
use common::*;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

/// `[P]` to `http://127.0.0.1:18000/...` once went to a standalone worker
/// `http://127.0.0.1:1800` because its URL was a string prefix of the target.
#[test]
fn rewrite_to_a_url_picks_the_worker_at_a_path_boundary() {
    let b = port_origin();
    // A worker whose URL is a string prefix of b's: its port is b's port without the last digit.
    let prefix_port = b.port / 10;
    let conf = format!(
        "ProxyPass /a http://127.0.0.1:{prefix_port}\nProxyPass /b http://127.0.0.1:{}\nRewriteRule ^/r/(.*) http://127.0.0.1:{}/$1 [P]\n",
        b.port, b.port
    );
    let p = start_proxy("boundary", &conf, 1);
    let r = Client::connect(p.port).get("/r/x", "");
    assert_eq!(r.text(), format!("Server response, port {}\n", b.port));
    assert!(b.requests.lock().unwrap()[0].starts_with("GET /x HTTP/1.1"));
}

/// Idle member connections closed by the member stayed open (CLOSE_WAIT) below the top of
/// the pool stack: the sweep now drops them.
#[test]
fn pool_sweep_closes_idle_connections_the_member_closed() {
    let o = port_origin();
    let p = proxy_pass("sweep", o.port, "", "");
    let fds = || {
        std::fs::read_dir(format!("/proc/{}/fd", p.proc.pid()))
            .unwrap()
            .count()
    };
    let base = fds();
    // 16 concurrent requests leave 16 idle member connections in the pool.
    let hs: Vec<_> = (0..16)
        .map(|_| {
            let port = p.port;
            std::thread::spawn(move || {
                let mut c = Client::connect(port);
                c.send(b"GET /x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
                c.read_response(false).unwrap().status
            })
        })
        .collect();
    assert!(hs.into_iter().all(|h| h.join().unwrap() == 200));
    let pooled = fds();
    drop(o); // the member closes every connection
    let until = Instant::now() + Duration::from_secs(5);
    while fds() > base + 2 && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        fds() <= base + 2,
        "fds: {base} before, {pooled} pooled, {} after the member closed",
        fds()
    );
}

/// A chunked upload was streamed past LimitRequestBody; now it is cut with 413.
#[test]
fn chunked_body_over_limit_request_body_gets_413() {
    let o = http_origin(|_, body| ok(&body.len().to_string()));
    let p = proxy_pass("chunklimit", o.port, "LimitRequestBody 1000\n", "");
    let mut c = Client::connect(p.port);
    c.send(b"POST /u HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n");
    let chunk = format!("{:x}\r\n{}\r\n", 600, "x".repeat(600));
    c.send(chunk.as_bytes());
    c.send(chunk.as_bytes());
    let r = c.read_response(false).unwrap();
    assert_eq!(r.status, 413);
    assert_eq!(r.header("Connection").as_deref(), Some("close"));
}

/// With Expect: 100-continue and a member that never sends 100 (and waits for the body), the
/// exchange stalled until ProxyTimeout; the body now goes after a short wait.
#[test]
fn expect_continue_to_a_member_that_never_sends_100() {
    let o = http_origin(|_, body| ok(&String::from_utf8_lossy(body)));
    let p = proxy_pass("expect", o.port, "ProxyTimeout 10\n", "");
    let mut c = Client::connect(p.port);
    c.send(b"POST /e HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n");
    // Like curl, the client sends the body after its own wait for the 100.
    std::thread::sleep(Duration::from_millis(300));
    c.send(b"hello");
    let t0 = Instant::now();
    let r = c.read_response(false).unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "hello");
    assert!(
        t0.elapsed() < Duration::from_secs(5),
        "took {:?}",
        t0.elapsed()
    );
}

/// A local 404 to an HTTP/1.0 keep-alive client kept the connection but did not say so.
#[test]
fn local_responses_tell_http10_clients_the_connection_stays() {
    let p = start_proxy("local10", "ProxyPass /x http://127.0.0.1:1/\n", 1);
    let mut c = Client::connect(p.port);
    c.send(b"GET /nothing HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    let r = c.read_response(false).unwrap();
    assert_eq!(r.status, 404);
    assert_eq!(r.header("Connection").as_deref(), Some("Keep-Alive"));
    c.send(b"GET /again HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    assert_eq!(c.read_response(false).unwrap().status, 404);
}

/// A response sent before the request body was read was at risk of being destroyed by a
/// reset; the proxy now half-closes and drains (lingering close).
#[test]
fn early_response_survives_a_client_still_uploading() {
    let p = start_proxy("linger", "ProxyPass /x http://127.0.0.1:1/\n", 1);
    let mut s = std::net::TcpStream::connect(("127.0.0.1", p.port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"POST /nothing HTTP/1.1\r\nHost: a\r\nContent-Length: 2000000\r\n\r\n")
        .unwrap();
    let chunk = vec![b'x'; 65536];
    for _ in 0..8 {
        if s.write_all(&chunk).is_err() {
            break;
        }
    }
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 404 Not Found\r\n"), "{text}");
    assert!(
        text.contains("</html>"),
        "the whole response must arrive: {text}"
    );
}

/// A rewrite that inserts a header value put raw spaces into the request line.
#[test]
fn rewrite_inserting_a_header_value_is_escaped_in_the_request_line() {
    let o = port_origin();
    let conf = format!(
        "RewriteRule ^/h$ http://127.0.0.1:{}/%{{HTTP:X-Name}} [P]\nProxyPass /unused http://127.0.0.1:{}/\n",
        o.port, o.port
    );
    let p = start_proxy("escape", &conf, 1);
    let r = Client::connect(p.port).get("/h", "X-Name: a b\r\n");
    assert_eq!(r.status, 200);
    assert!(
        o.requests.lock().unwrap()[0].starts_with("GET /a%20b HTTP/1.1\r\n"),
        "{:?}",
        o.requests.lock().unwrap()
    );
}
