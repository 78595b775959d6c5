//! Test harness: free ports, the real binaries started and stopped by PID, a scripted raw-TCP
//! origin (in the spirit of VTest's `server` blocks) and a small keep-alive HTTP client.
#![allow(dead_code)] // each test file uses its own subset

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ringproxy::http::{self, BodyFraming, ChunkedScanner, Parsed, ResponseHead};

/// A port nobody listens on right now (bound, read, released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A fresh directory for one test's files.
pub fn temp_dir(tag: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let d = std::env::temp_dir().join(format!(
        "ringproxy-test-{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Waits until something accepts on `port` (bounded).
pub fn wait_listening(port: u16, limit: Duration) -> bool {
    let until = Instant::now() + limit;
    while Instant::now() < until {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// Waits (bounded) until the file `log` contains `marker`, the line a server writes once all
/// its listeners are bound. A successful connect is not enough: when the server failed to bind
/// (another test took the port between `free_port` and the bind), the connect may reach that
/// other test's listener. Err (with the log) if the process exits first or the limit passes.
pub fn wait_ready(
    child: &mut Child,
    log: &Path,
    marker: &str,
    limit: Duration,
) -> Result<(), String> {
    let until = Instant::now() + limit;
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if text.contains(marker) {
            return Ok(());
        }
        if let Ok(Some(st)) = child.try_wait() {
            return Err(format!("exited ({st}): {text}"));
        }
        if Instant::now() > until {
            return Err(format!("no \"{marker}\" within {limit:?}: {text}"));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A child process, killed by PID when dropped.
pub struct Proc {
    pub child: Child,
}

impl Proc {
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: signals our own child by PID.
        unsafe { libc::kill(self.pid(), sig) };
    }

    /// Sends `sig` and waits (bounded) for the exit status.
    pub fn stop(&mut self, sig: i32, limit: Duration) -> Option<std::process::ExitStatus> {
        self.signal(sig);
        self.wait(limit)
    }

    pub fn wait(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let until = Instant::now() + limit;
        while Instant::now() < until {
            if let Ok(Some(st)) = self.child.try_wait() {
                return Some(st);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        None
    }

    pub fn stdout_string(&mut self) -> String {
        let mut s = String::new();
        if let Some(o) = self.child.stdout.as_mut() {
            let _ = o.read_to_string(&mut s);
        }
        s
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A running ringproxy with its config directory and logs.
pub struct Proxy {
    pub proc: Proc,
    pub port: u16,
    pub dir: PathBuf,
}

impl Proxy {
    pub fn access_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("access.log")).unwrap_or_default()
    }
    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("error.log")).unwrap_or_default()
    }
    pub fn conf_path(&self) -> PathBuf {
        self.dir.join("proxy.conf")
    }
    /// Waits (bounded) until the access log has `n` lines; returns them.
    pub fn access_lines(&self, n: usize) -> Vec<String> {
        let until = Instant::now() + Duration::from_secs(5);
        loop {
            let lines: Vec<String> = self.access_log().lines().map(str::to_string).collect();
            if lines.len() >= n || Instant::now() > until {
                return lines;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }
}

pub fn ringproxy_bin() -> &'static str {
    env!("CARGO_BIN_EXE_ringproxy")
}

/// The log format the seed's tutorial uses, minus the TLS and ModSecurity items.
pub const EXTENDED: &str = r#"LogFormat "%h %{GEOIP_COUNTRY_CODE}e %u [%{%Y-%m-%d %H:%M:%S}t.%{usec_frac}t] \"%r\" %>s %b \"%{Referer}i\" \"%{User-Agent}i\" %v %A %p %R %{BALANCER_WORKER_ROUTE}e %X \"%{cookie}n\" %{UNIQUE_ID}e %I %O %{ratio}n%% %D" extended"#;

/// ringproxy with one worker passing every request to the origin on `port`: `before` goes
/// ahead of the ProxyPass line, `params` after its URL (" ttl=1").
pub fn proxy_pass(tag: &str, port: u16, before: &str, params: &str) -> Proxy {
    let conf = format!("{before}ProxyPass / http://127.0.0.1:{port}/{params}\n");
    start_proxy(tag, &conf, 1)
}

/// Starts ringproxy on a free port with `body` as its config (a `Listen`, ErrorLog and an
/// extended CustomLog are prepended). `threads`: the -j value.
pub fn start_proxy(tag: &str, body: &str, threads: usize) -> Proxy {
    for _ in 0..5 {
        let port = free_port();
        let dir = temp_dir(tag);
        let conf = format!(
            "Listen 127.0.0.1:{port}\nErrorLog {}\nLogLevel info\n{EXTENDED}\nCustomLog {} extended\n{body}\n",
            dir.join("error.log").display(),
            dir.join("access.log").display()
        );
        std::fs::write(dir.join("proxy.conf"), conf).unwrap();
        let child = Command::new(ringproxy_bin())
            .arg("-f")
            .arg(dir.join("proxy.conf"))
            .arg("-j")
            .arg(threads.to_string())
            .arg("--grace")
            .arg("5")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start ringproxy");
        let mut proc = Proc { child };
        let log = dir.join("error.log");
        match wait_ready(
            &mut proc.child,
            &log,
            " configured, ",
            Duration::from_secs(5),
        ) {
            Ok(()) => return Proxy { proc, port, dir },
            Err(why) => eprintln!("ringproxy on {port} did not start, retrying: {why}"),
        }
        let _ = proc.stop(libc::SIGKILL, Duration::from_secs(2));
    }
    panic!("ringproxy did not start");
}

/// Starts `ringload origin` on `ports` with extra arguments; waits until every port accepts.
pub fn start_origin(ports: &[u16], extra: &[&str]) -> Proc {
    let list: Vec<String> = ports.iter().map(u16::to_string).collect();
    let log = temp_dir("origin").join("stderr");
    let child = Command::new(env!("CARGO_BIN_EXE_ringload"))
        .arg("origin")
        .arg("--ports")
        .arg(list.join(","))
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("start ringload origin");
    let mut p = Proc { child };
    if let Err(why) = wait_ready(&mut p.child, &log, ORIGIN_READY, Duration::from_secs(5)) {
        panic!("origin on {list:?} did not start: {why}");
    }
    p
}

/// What `ringload origin` writes to stderr once every port is bound.
pub const ORIGIN_READY: &str = "ringload origin: listening on";

/// A balancer stanza for members on `ports` (routes "r<port>"), with extra ProxySet params.
pub fn balancer_conf(name: &str, ports: &[u16], member_params: &[&str], proxyset: &str) -> String {
    let mut s = String::from(
        "LoadModule proxy_balancer_module modules/mod_proxy_balancer.so\n\
         LoadModule lbmethod_byrequests_module modules/mod_lbmethod_byrequests.so\n\
         LoadModule lbmethod_bytraffic_module modules/mod_lbmethod_bytraffic.so\n\
         LoadModule lbmethod_bybusyness_module modules/mod_lbmethod_bybusyness.so\n\
         LoadModule slotmem_shm_module modules/mod_slotmem_shm.so\n",
    );
    s.push_str(&format!("<Proxy balancer://{name}>\n"));
    for (i, p) in ports.iter().enumerate() {
        let extra = member_params.get(i).copied().unwrap_or("");
        s.push_str(&format!(
            "  BalancerMember http://127.0.0.1:{p} route=r{p} {extra}\n"
        ));
    }
    if !proxyset.is_empty() {
        s.push_str(&format!("  ProxySet {proxyset}\n"));
    }
    s.push_str("</Proxy>\n");
    s
}

/// One parsed response.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub head: String,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<String> {
        self.head.lines().skip(1).find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_string())
        })
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A keep-alive client over one TCP connection.
pub struct Client {
    pub s: TcpStream,
    buf: Vec<u8>,
}

impl Client {
    pub fn connect(port: u16) -> Client {
        let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.set_nodelay(true).unwrap();
        Client { s, buf: Vec::new() }
    }

    pub fn send(&mut self, raw: &[u8]) {
        self.s.write_all(raw).unwrap();
    }

    /// `GET path` with Host and optional extra header lines ("Name: v\r\n" each).
    pub fn get(&mut self, path: &str, extra: &str) -> Response {
        self.send(format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n{extra}\r\n").as_bytes());
        self.read_response(false).expect("response")
    }

    /// `POST path` with Host and `body` (Content-Length framed).
    pub fn post(&mut self, path: &str, body: &str) -> Response {
        let len = body.len();
        let req = format!(
            "POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Length: {len}\r\n\r\n{body}"
        );
        self.send(req.as_bytes());
        self.read_response(false).expect("response")
    }

    /// Reads one response; None when the connection closed first.
    pub fn read_response(&mut self, head_request: bool) -> Option<Response> {
        let mut head = ResponseHead::new();
        loop {
            if !self.buf.is_empty() {
                match http::parse_response(&self.buf, head_request, 1 << 20, &mut head) {
                    Ok(Parsed::Complete) => break,
                    Ok(Parsed::Partial) => {}
                    Err(e) => panic!(
                        "bad response: {}: {:?}",
                        e.reason,
                        String::from_utf8_lossy(&self.buf)
                    ),
                }
            }
            if !self.fill() {
                return None;
            }
        }
        let head_len = head.head_len;
        let head_text = String::from_utf8_lossy(&self.buf[..head_len]).into_owned();
        let status = head.status;
        let framing = head.body;
        self.buf.drain(..head_len);
        let mut body = Vec::new();
        match framing {
            BodyFraming::None => {}
            BodyFraming::Length(n) => {
                while (self.buf.len() as u64) < n {
                    assert!(self.fill(), "connection closed mid-body");
                }
                body.extend(self.buf.drain(..n as usize));
            }
            BodyFraming::Chunked => {
                let mut sc = ChunkedScanner::new();
                loop {
                    let (n, done) = sc
                        .scan(&self.buf, |d| body.extend_from_slice(d))
                        .expect("chunked");
                    self.buf.drain(..n);
                    if done {
                        break;
                    }
                    assert!(self.fill(), "connection closed mid-chunked-body");
                }
            }
            BodyFraming::UntilClose => {
                while self.fill() {}
                body = std::mem::take(&mut self.buf);
            }
        }
        Some(Response {
            status,
            head: head_text,
            body,
        })
    }

    fn fill(&mut self) -> bool {
        let mut b = [0u8; 65536];
        match self.s.read(&mut b) {
            Ok(0) | Err(_) => false,
            Ok(n) => {
                self.buf.extend_from_slice(&b[..n]);
                true
            }
        }
    }

    /// True when the peer closed the connection (EOF within the timeout).
    pub fn closed(&mut self) -> bool {
        self.s
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut b = [0u8; 1];
        matches!(self.s.read(&mut b), Ok(0))
    }
}

/// What a scripted origin saw: every byte received, per connection.
#[derive(Default)]
pub struct Seen {
    pub conns: Vec<Vec<u8>>,
}

/// A raw-TCP origin in this process: each accepted connection runs `script` on its stream.
pub struct ScriptedOrigin {
    pub port: u16,
    pub seen: Arc<Mutex<Seen>>,
    /// Request heads as `http_origin` parsed them, in arrival order (live, unlike `seen`).
    pub requests: Arc<Mutex<Vec<String>>>,
    accepted: Arc<AtomicUsize>,
    /// Clones of every accepted stream, shut down on drop so the origin dies like a killed process.
    live: Arc<Mutex<Vec<TcpStream>>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl ScriptedOrigin {
    pub fn start<F>(script: F) -> ScriptedOrigin
    where
        F: Fn(&mut TcpStream, &mut Vec<u8>) + Send + Sync + 'static,
    {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.set_nonblocking(true).unwrap();
        let port = l.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Seen::default()));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (seen2, stop2) = (seen.clone(), stop.clone());
        let accepted = Arc::new(AtomicUsize::new(0));
        let accepted2 = accepted.clone();
        let live: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let live2 = live.clone();
        let script = Arc::new(script);
        let handle = std::thread::spawn(move || {
            while !stop2.load(Ordering::Relaxed) {
                match l.accept() {
                    Ok((mut s, _)) => {
                        accepted2.fetch_add(1, Ordering::Relaxed);
                        if let Ok(c) = s.try_clone() {
                            live2.lock().unwrap().push(c);
                        }
                        s.set_nonblocking(false).unwrap();
                        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                        let (seen3, script) = (seen2.clone(), script.clone());
                        std::thread::spawn(move || {
                            let mut got = Vec::new();
                            script(&mut s, &mut got);
                            // The clone kept for Drop would hold the socket open otherwise.
                            let _ = s.shutdown(std::net::Shutdown::Both);
                            seen3.lock().unwrap().conns.push(got);
                        });
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        ScriptedOrigin {
            port,
            seen,
            requests: Arc::default(),
            accepted,
            live,
            stop,
            handle: Some(handle),
        }
    }

    /// Connections accepted so far (finished or not).
    pub fn connections(&self) -> usize {
        self.accepted.load(Ordering::Relaxed)
    }

    /// Everything received on all finished connections, concatenated.
    pub fn received(&self) -> Vec<u8> {
        self.seen.lock().unwrap().conns.concat()
    }
}

impl Drop for ScriptedOrigin {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
        for s in self.live.lock().unwrap().iter() {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
    }
}

/// Reads one request head (until CRLFCRLF) from `s` into `got`; false on EOF/timeout.
pub fn read_head(s: &mut TcpStream, got: &mut Vec<u8>) -> bool {
    let start = got.len();
    let mut b = [0u8; 4096];
    loop {
        if got[start..].windows(4).any(|w| w == b"\r\n\r\n") {
            return true;
        }
        match s.read(&mut b) {
            Ok(0) | Err(_) => return false,
            Ok(n) => got.extend_from_slice(&b[..n]),
        }
    }
}

/// Sends raw bytes on a fresh connection and returns everything until close (bounded).
pub fn raw_exchange(port: u16, raw: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(raw).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    out
}

pub fn config_dir_file(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// A keep-alive HTTP origin in this process: for each request (head plus a Content-Length
/// body), `respond(head, body)` returns the raw response bytes; an empty reply closes.
pub fn http_origin<F>(respond: F) -> ScriptedOrigin
where
    F: Fn(&[u8], &[u8]) -> Vec<u8> + Send + Sync + 'static,
{
    http_origin_with_interim(|_| None, respond)
}

/// `http_origin` that first sends what `interim(head)` returns (a 100 Continue, say), if
/// anything, before it reads the request body.
pub fn http_origin_with_interim<I, F>(interim: I, respond: F) -> ScriptedOrigin
where
    I: Fn(&[u8]) -> Option<Vec<u8>> + Send + Sync + 'static,
    F: Fn(&[u8], &[u8]) -> Vec<u8> + Send + Sync + 'static,
{
    let requests: Arc<Mutex<Vec<String>>> = Arc::default();
    let log = requests.clone();
    let mut o = ScriptedOrigin::start(move |s, got| {
        loop {
            let start = got.len();
            if !read_head(s, got) {
                return;
            }
            let end = start
                + got[start..]
                    .windows(4)
                    .position(|w| w == b"\r\n\r\n")
                    .unwrap()
                + 4;
            let head = got[start..end].to_vec();
            log.lock()
                .unwrap()
                .push(String::from_utf8_lossy(&head).into_owned());
            let text = String::from_utf8_lossy(&head).to_ascii_lowercase();
            let cl: usize = text
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map_or(0, |v| v.trim().parse().unwrap_or(0));
            if let Some(first) = interim(&head)
                && s.write_all(&first).is_err()
            {
                return;
            }
            let mut b = [0u8; 65536];
            while got.len() < end + cl {
                match s.read(&mut b) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => got.extend_from_slice(&b[..n]),
                }
            }
            let reply = respond(&head, &got[end..end + cl]);
            if reply.is_empty() || s.write_all(&reply).is_err() {
                return;
            }
        }
    });
    o.requests = requests;
    o
}

/// `HTTP/1.1 200 OK` with `body` and Content-Length.
pub fn ok(body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// An origin answering every request with "Server response, port N\n".
pub fn port_origin() -> ScriptedOrigin {
    let port = Arc::new(AtomicUsize::new(0));
    let p2 = port.clone();
    let o = http_origin(move |_, _| {
        ok(&format!(
            "Server response, port {}\n",
            p2.load(Ordering::Relaxed)
        ))
    });
    port.store(o.port as usize, Ordering::Relaxed);
    o
}
