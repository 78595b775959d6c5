//! Bounded-memory streaming: 1 GiB through the proxy in each direction (Content-Length and
//! chunked uploads, a Content-Length download), generated and counted on the fly on both
//! ends, with the proxy's peak RSS (VmHWM) checked afterwards.
//!
//! In a debug build each transfer takes a few seconds to some tens of seconds, depending on the
//! machine; every read and write is bounded by a timeout so a stall fails instead of hanging.

mod common;
use common::*;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use ringproxy::http::ChunkedScanner;

const GIB: u64 = 1 << 30;
const PIECE: usize = 64 * 1024;
/// The cap on the proxy's peak resident set after a 1 GiB transfer.
const HWM_LIMIT_KB: u64 = 64 * 1024;

/// A kB figure from /proc/PID/status: `VmHWM` (peak RSS) or `VmRSS` (RSS now).
fn proc_status_kb(pid: i32, key: &str) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    s.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("{key} in /proc/{pid}/status"))
}

fn vm_hwm_kb(pid: i32) -> u64 {
    proc_status_kb(pid, "VmHWM")
}

/// A recognisable, non-uniform 64 KiB piece (so a lost, duplicated or shifted block shows).
fn piece() -> Vec<u8> {
    (0..PIECE).map(|i| (i * 7 + i / 251) as u8).collect()
}

/// Reads one head (up to CRLFCRLF) off `s`; returns it and the bytes read past it.
fn read_head_raw(s: &mut TcpStream) -> Option<(String, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut b = [0u8; 8192];
    loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let rest = buf.split_off(i + 4);
            return Some((String::from_utf8_lossy(&buf).into_owned(), rest));
        }
        match s.read(&mut b) {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&b[..n]),
        }
    }
}

/// Checks received body bytes against the generated stream as they pass, with memcmp (fast in
/// debug builds too): `at` is the body offset of `d`. Counts mismatching stretches in `bad`.
struct Verify {
    pattern: Vec<u8>,
    count: u64,
    bad: u64,
}

impl Verify {
    fn new() -> Verify {
        let p = piece();
        Verify {
            pattern: [p.clone(), p].concat(),
            count: 0,
            bad: 0,
        }
    }
    fn feed(&mut self, mut d: &[u8]) {
        while !d.is_empty() {
            let off = (self.count % PIECE as u64) as usize;
            let n = d.len().min(PIECE);
            if d[..n] != self.pattern[off..off + n] {
                self.bad += 1;
            }
            self.count += n as u64;
            d = &d[n..];
        }
    }
}

/// An origin that reads one request per connection, discards the body while counting it
/// (Content-Length or chunked), and answers with "<count> bad=<mismatches>".
fn counting_origin() -> ScriptedOrigin {
    ScriptedOrigin::start(|s, _got| {
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let Some((head, mut rest)) = read_head_raw(s) else {
            return;
        };
        let lower = head.to_ascii_lowercase();
        let chunked = lower.contains("\r\ntransfer-encoding: chunked\r\n");
        let cl: u64 = lower
            .split("\r\n")
            .find_map(|l| l.strip_prefix("content-length:"))
            .map_or(0, |v| v.trim().parse().unwrap_or(0));
        let mut v = Verify::new();
        let mut buf = vec![0u8; PIECE];
        if chunked {
            let mut sc = ChunkedScanner::new();
            loop {
                let (_, done) = match sc.scan(&rest, |d| v.feed(d)) {
                    Ok(r) => r,
                    Err(_) => return,
                };
                if done {
                    break;
                }
                match s.read(&mut buf) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => {
                        rest.clear();
                        rest.extend_from_slice(&buf[..n]);
                    }
                }
            }
        } else {
            v.feed(&rest);
            while v.count < cl {
                let want = ((cl - v.count) as usize).min(PIECE);
                match s.read(&mut buf[..want]) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => v.feed(&buf[..n]),
                }
            }
        }
        let _ = s.write_all(&ok(&format!("{} bad={}", v.count, v.bad)));
    })
}

/// Sends `head`, then `n` pieces (as chunks when `chunked`), then the last chunk; returns the
/// response.
fn upload(port: u16, head: &str, n: usize, chunked: bool) -> Response {
    let mut c = Client::connect(port);
    c.s.set_write_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    c.s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    c.send(head.as_bytes());
    let p = piece();
    let mut framed = Vec::with_capacity(PIECE + 16);
    if chunked {
        framed.extend_from_slice(format!("{PIECE:x}\r\n").as_bytes());
        framed.extend_from_slice(&p);
        framed.extend_from_slice(b"\r\n");
    } else {
        framed.extend_from_slice(&p);
    }
    for _ in 0..n {
        c.send(&framed);
    }
    if chunked {
        c.send(b"0\r\n\r\n");
    }
    c.read_response(false).expect("response to the upload")
}

fn run_upload(tag: &str, chunked: bool) {
    let o = counting_origin();
    let p = proxy_pass(tag, o.port, "", "");
    let pieces = (GIB / PIECE as u64) as usize;
    let head = if chunked {
        "POST /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n".to_string()
    } else {
        format!("POST /up HTTP/1.1\r\nHost: a\r\nContent-Length: {GIB}\r\n\r\n")
    };
    let before = vm_hwm_kb(p.proc.pid());
    let t0 = Instant::now();
    let r = upload(p.port, &head, pieces, chunked);
    let took = t0.elapsed();
    let hwm = vm_hwm_kb(p.proc.pid());
    eprintln!("{tag}: 1 GiB up in {took:?}; proxy VmHWM {before} kB before, {hwm} kB after");
    assert_eq!(r.status, 200, "{}", r.head);
    assert_eq!(r.text(), format!("{GIB} bad=0"));
    assert!(
        hwm < HWM_LIMIT_KB,
        "proxy VmHWM {hwm} kB after a 1 GiB upload (limit {HWM_LIMIT_KB} kB)"
    );
}

#[test]
fn one_gib_content_length_upload_streams_in_bounded_memory() {
    run_upload("bodies-up-cl", false);
}

#[test]
fn one_gib_chunked_upload_streams_in_bounded_memory() {
    run_upload("bodies-up-chunked", true);
}

#[test]
fn one_gib_download_streams_in_bounded_memory() {
    let o = ScriptedOrigin::start(|s, _got| {
        if read_head_raw(s).is_none() {
            return;
        }
        s.set_write_timeout(Some(Duration::from_secs(30))).unwrap();
        let p = piece();
        let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {GIB}\r\n\r\n");
        if s.write_all(head.as_bytes()).is_err() {
            return;
        }
        for _ in 0..GIB / PIECE as u64 {
            if s.write_all(&p).is_err() {
                return;
            }
        }
    });
    let p = proxy_pass("bodies-down", o.port, "", "");
    let before = vm_hwm_kb(p.proc.pid());
    let t0 = Instant::now();
    let mut s = TcpStream::connect(("127.0.0.1", p.port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.write_all(b"GET /big HTTP/1.1\r\nHost: a\r\n\r\n")
        .unwrap();
    let (head, rest) = read_head_raw(&mut s).expect("response head");
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(
        head.contains(&format!("Content-Length: {GIB}\r\n")),
        "{head}"
    );
    let mut v = Verify::new();
    v.feed(&rest);
    let mut buf = vec![0u8; PIECE];
    while v.count < GIB {
        let want = ((GIB - v.count) as usize).min(PIECE);
        match s.read(&mut buf[..want]) {
            Ok(0) => panic!("closed after {} bytes", v.count),
            Ok(n) => v.feed(&buf[..n]),
            Err(e) => panic!("read error after {} bytes: {e}", v.count),
        }
    }
    let took = t0.elapsed();
    let hwm = vm_hwm_kb(p.proc.pid());
    eprintln!(
        "bodies-down: 1 GiB down in {took:?}; proxy VmHWM {before} kB before, {hwm} kB after"
    );
    assert_eq!(v.count, GIB);
    assert_eq!(v.bad, 0, "body bytes differ from what the origin sent");
    // Nothing past the declared body.
    s.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut one = [0u8; 1];
    assert!(
        !matches!(s.read(&mut one), Ok(n) if n > 0),
        "bytes past the 1 GiB body"
    );
    assert!(
        hwm < HWM_LIMIT_KB,
        "proxy VmHWM {hwm} kB after a 1 GiB download (limit {HWM_LIMIT_KB} kB)"
    );
}

/// Keep-alive connections that carried a large response and then sat idle for over a second
/// hold no body buffer: 64 connections fetch 1 MiB one after another and stay open. Each would
/// otherwise keep its 256 KiB streaming buffer (16 MiB in all).
#[test]
fn idle_connections_after_large_responses_hold_no_body_buffers() {
    let op = free_port();
    let _o = start_origin(&[op], &["--body-size", "1m"]);
    let p = proxy_pass("bufpool", op, "", "");
    // One small exchange first, so start-up allocations are in the baseline.
    let mut first = Client::connect(p.port);
    assert_eq!(first.get("/?size=10", "").status, 200);
    let before = proc_status_kb(p.proc.pid(), "VmRSS");
    let mut idle = Vec::new();
    for _ in 0..64 {
        let mut c = Client::connect(p.port);
        let r = c.get("/", "");
        assert_eq!(r.status, 200);
        assert_eq!(r.body.len(), 1 << 20);
        idle.push(c);
    }
    std::thread::sleep(Duration::from_millis(1500));
    let grown = proc_status_kb(p.proc.pid(), "VmRSS").saturating_sub(before);
    assert!(
        grown < 6 * 1024,
        "RSS grew by {grown} kB over 64 idle connections"
    );
}
