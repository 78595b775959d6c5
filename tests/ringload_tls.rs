//! ringload against `https://` targets: a TLS origin inside the test (rustls over std threads,
//! a self-signed certificate made at test time) answers keep-alive HTTP/1.1, and the real
//! binary's counts must match the origin's; without `--insecure` the certificate is refused.

mod common;
use common::*;

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Output};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ringproxy::load::report::compare::{Json, parse_json};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::{HandshakeKind, ServerConfig, ServerConnection, StreamOwned};

const BODY: &[u8] = b"hello over tls\n";

#[derive(Default)]
struct Counts {
    requests: AtomicU64,
    body_bytes: AtomicU64,
    handshakes: AtomicU64,
    resumed: AtomicU64,
    failed: AtomicU64,
}

/// A keep-alive HTTP/1.1 origin over TLS on 127.0.0.1, one thread per connection; stopped
/// (and every thread joined) on drop.
struct TlsOrigin {
    port: u16,
    counts: Arc<Counts>,
    stop: Arc<AtomicBool>,
    acceptor: Option<JoinHandle<()>>,
}

impl TlsOrigin {
    fn start() -> TlsOrigin {
        let ck = rcgen::generate_simple_self_signed(vec![
            "localhost".to_string(),
            "127.0.0.1".to_string(),
        ])
        .unwrap();
        let cert = CertificateDer::from(ck.cert.der().to_vec());
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(ck.signing_key.serialize_der()));
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![cert], key)
            .unwrap();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let config = Arc::new(config);
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let counts = Arc::new(Counts::default());
        let stop = Arc::new(AtomicBool::new(false));
        let (c, s) = (counts.clone(), stop.clone());
        let acceptor = std::thread::spawn(move || {
            let mut conns: Vec<JoinHandle<()>> = Vec::new();
            while !s.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((sock, _)) => {
                        let (config, c, s) = (config.clone(), c.clone(), s.clone());
                        conns.push(std::thread::spawn(move || serve(sock, config, &c, &s)));
                        conns.retain(|h| !h.is_finished());
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(2));
                    }
                    Err(_) => break,
                }
            }
            for h in conns {
                let _ = h.join();
            }
        });
        TlsOrigin {
            port,
            counts,
            stop,
            acceptor: Some(acceptor),
        }
    }

    fn url(&self) -> String {
        format!("https://127.0.0.1:{}/", self.port)
    }

    fn requests(&self) -> u64 {
        self.counts.requests.load(Ordering::SeqCst)
    }
}

impl Drop for TlsOrigin {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.acceptor.take() {
            let _ = h.join();
        }
    }
}

/// One connection: answers each request (head, then a Content-Length body) with 200 and
/// `BODY`, pipelined requests in order; closes after `Connection: close`.
fn serve(sock: TcpStream, config: Arc<ServerConfig>, counts: &Counts, stop: &AtomicBool) {
    sock.set_nonblocking(false).unwrap();
    sock.set_nodelay(true).unwrap();
    // Reads wake up this often to see the stop flag.
    sock.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let conn = ServerConnection::new(config).unwrap();
    let mut tls = StreamOwned::new(conn, sock);
    let mut buf: Vec<u8> = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    let mut counted_handshake = false;
    while !stop.load(Ordering::Relaxed) {
        let n = match tls.read(&mut chunk) {
            Ok(0) => return,
            Ok(n) => n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => continue,
            Err(_) => {
                // A refused certificate ends up here (the client's alert).
                counts.failed.fetch_add(1, Ordering::Relaxed);
                return;
            }
        };
        if !counted_handshake {
            counted_handshake = true;
            counts.handshakes.fetch_add(1, Ordering::Relaxed);
            if tls.conn.handshake_kind() == Some(HandshakeKind::Resumed) {
                counts.resumed.fetch_add(1, Ordering::Relaxed);
            }
        }
        buf.extend_from_slice(&chunk[..n]);
        let mut close = false;
        let mut out: Vec<u8> = Vec::new();
        while let Some(end) = find(&buf, b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let body_len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map_or(0, |v| v.trim().parse().unwrap());
            if buf.len() < end + 4 + body_len {
                break;
            }
            buf.drain(..end + 4 + body_len);
            counts.requests.fetch_add(1, Ordering::SeqCst);
            counts
                .body_bytes
                .fetch_add(body_len as u64, Ordering::SeqCst);
            close = head.contains("connection: close");
            out.extend_from_slice(
                format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n{}\r\n",
                    BODY.len(),
                    if close { "Connection: close\r\n" } else { "" }
                )
                .as_bytes(),
            );
            out.extend_from_slice(BODY);
            if close {
                break;
            }
        }
        if !out.is_empty() && tls.write_all(&out).and_then(|()| tls.flush()).is_err() {
            return;
        }
        if close {
            tls.conn.send_close_notify();
            let _ = tls.flush();
            return;
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn ringload(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ringload"))
        .args(args)
        .output()
        .expect("run ringload")
}

fn num(j: &Json, path: &str) -> f64 {
    match j.at(path) {
        Some(Json::Num(n)) => *n,
        other => panic!("{path}: {other:?}"),
    }
}

fn run_json(args: &[&str], json: &std::path::Path) -> Json {
    let mut all = args.to_vec();
    all.extend(["--json", json.to_str().unwrap()]);
    let out = ringload(&all);
    assert!(
        out.status.success(),
        "{args:?}: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    parse_json(&std::fs::read_to_string(json).unwrap()).unwrap()
}

/// The origin counts a request once it has answered it; ringload exits once it has read the
/// answer, so the counter may trail by a moment.
fn settle(origin: &TlsOrigin, want: u64) -> u64 {
    let until = Instant::now() + Duration::from_secs(2);
    while origin.requests() < want && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(10));
    }
    origin.requests()
}

#[test]
fn https_with_insecure_counts_match_the_origin() {
    let origin = TlsOrigin::start();
    let dir = temp_dir("rl-tls");
    let url = origin.url();
    let j = run_json(
        &["--insecure", "-c", "4", "-n", "2000", &url],
        &dir.join("a.json"),
    );
    assert_eq!(num(&j, "responses"), 2000.0);
    assert_eq!(num(&j, "status/200"), 2000.0);
    assert_eq!(num(&j, "error_count"), 0.0);
    assert_eq!(settle(&origin, 2000), 2000);
    // Keep-alive: one handshake per connection, timed as the connect.
    assert_eq!(num(&j, "conns/opened"), 4.0);
    assert_eq!(num(&j, "connect/count"), 4.0);
    assert_eq!(origin.counts.handshakes.load(Ordering::SeqCst), 4);
    assert_eq!(
        num(&j, "bytes_read"),
        2000.0 * (BODY.len() + "HTTP/1.1 200 OK\r\nContent-Length: 15\r\n\r\n".len()) as f64
    );

    // The epoll fallback carries TLS the same way.
    let before = origin.requests();
    let j = run_json(
        &["--insecure", "--io", "epoll", "-c", "2", "-n", "200", &url],
        &dir.join("epoll.json"),
    );
    assert_eq!(num(&j, "status/200"), 200.0);
    assert_eq!(settle(&origin, before + 200), before + 200);

    // Pipelined requests with a body larger than rustls's 64 KiB send buffer.
    let before = origin.requests();
    let body = dir.join("body");
    std::fs::write(&body, vec![b'x'; 100_000]).unwrap();
    let j = run_json(
        &[
            "--insecure",
            "-c",
            "2",
            "-p",
            "3",
            "-n",
            "60",
            "--body-file",
            body.to_str().unwrap(),
            &url,
        ],
        &dir.join("b.json"),
    );
    assert_eq!(num(&j, "status/200"), 60.0);
    assert_eq!(num(&j, "error_count"), 0.0);
    assert_eq!(settle(&origin, before + 60), before + 60);
    assert!(origin.counts.body_bytes.load(Ordering::SeqCst) >= 60 * 100_000);
}

#[test]
fn https_without_keepalive_handshakes_every_request_and_resumes() {
    let origin = TlsOrigin::start();
    let dir = temp_dir("rl-tls-close");
    let j = run_json(
        &[
            "--insecure",
            "--no-keepalive",
            "-c",
            "4",
            "-n",
            "300",
            &origin.url(),
        ],
        &dir.join("run.json"),
    );
    assert_eq!(num(&j, "status/200"), 300.0);
    assert_eq!(num(&j, "error_count"), 0.0);
    assert_eq!(settle(&origin, 300), 300);
    let opened = num(&j, "conns/opened");
    assert!(opened >= 300.0, "opened {opened}");
    assert!(num(&j, "connect/count") >= 300.0);
    assert!(num(&j, "connect/max") > 0.0);
    assert_eq!(num(&j, "conns/reused"), 0.0);
    // One config per run: reconnects resume their TLS sessions.
    let resumed = origin.counts.resumed.load(Ordering::SeqCst);
    assert!(resumed >= 250, "resumed {resumed} of {opened}");
}

#[test]
fn a_self_signed_certificate_is_refused_without_insecure() {
    let origin = TlsOrigin::start();
    let out = ringload(&["-c", "2", "-d", "500ms", &origin.url()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        err.contains("no connection") && err.contains("connect:tls-cert-unknown-issuer"),
        "{err}"
    );
    assert_eq!(origin.requests(), 0);
    assert!(origin.counts.failed.load(Ordering::SeqCst) >= 2);

    // https:// to a plain-HTTP port names that too.
    let port = free_port();
    let _plain = start_origin(&[port], &[]);
    let out = ringload(&[
        "--insecure",
        "-c",
        "1",
        "-d",
        "300ms",
        &format!("https://127.0.0.1:{port}/"),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("connect:tls-not-a-tls-server"), "{err}");
}
