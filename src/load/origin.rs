//! `ringload origin`: a fast HTTP/1.1 origin server for tests, demos and benchmarks.
//!
//! Thread-per-core like ringproxy: each thread is pinned to a core, runs its own runtime (on the
//! `io::Backend` seam, io_uring or epoll) and owns one SO_REUSEPORT listener per port. Requests
//! are parsed with `http::parse_request`; request bodies are streamed through a bounded buffer
//! (discarded, or echoed back with `?echo=1`), and large response bodies are sent as repeated
//! segments of one 64 KiB pattern block, so memory stays bounded whatever the sizes.
//!
//! Per-request behaviour comes from query parameters (`delay`, `status`, `close`, `fail`,
//! `size`, `echo`; see [`USAGE`]). Counters are kept per thread and per port, and printed as
//! one JSON object on SIGTERM/SIGINT (and every 100 ms to `--stats-file`).
//!
//! Steady state allocates nothing per request: the connection's read buffer, request head,
//! chunked scanner and `Gather` (whose scratch buffer takes the response heads) are reused, and
//! pipelined responses are batched into one write until the next read.

use std::ffi::OsString;
use std::fmt::Write as _;
use std::io::Write as _;
use std::net::{IpAddr, Ipv4Addr, Shutdown, SocketAddr};
use std::os::fd::{AsRawFd, RawFd};
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use crate::conf::model::Limits;
use crate::http::{BodyFraming, ChunkedScanner, Method, Parsed, RequestHead, Version};
use crate::http::{parse_request, status_reason};
use crate::io::{self, Backend, Conn, Epoll, Gather, Listener, Src, Uring};

pub const USAGE: &str = "usage: ringload origin [options]
  --port N            serve port N (repeatable; default 8000)
  --ports A,B,...     serve several ports
  --addr IP           address to bind (default 127.0.0.1)
  -t, --threads N     threads, each pinned to a core with its own listeners (default 1)
  --io uring|epoll|auto   I/O backend (default auto: io_uring when usable)
  --body-size BYTES   send BYTES of a fixed pattern instead of 'Server response, port N\\n'
                      (suffixes k, m, g)
  --chunked           send bodies with Transfer-Encoding: chunked
  --delay MS          wait MS milliseconds before each response
  --stats-file PATH   rewrite PATH with the JSON counters every 100 ms
query parameters, per request:
  ?delay=MS  ?status=NNN  ?close=1  ?fail=reset|garbage  ?size=BYTES  ?echo=1
SIGTERM or SIGINT prints the counters as JSON on stdout and exits 0.";

/// The pattern block large bodies are made of. Byte `i` of any pattern body is
/// [`pattern_byte`]`(i)`: 63 characters of base64 alphabet and a newline, repeated.
pub const BLOCK: usize = 64 * 1024;
static PATTERN: [u8; BLOCK] = make_pattern();

const fn make_pattern() -> [u8; BLOCK] {
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut p = [0u8; BLOCK];
    let mut i = 0;
    while i < BLOCK {
        p[i] = if i % 64 == 63 {
            b'\n'
        } else {
            alphabet[i % 64]
        };
        i += 1;
    }
    p
}

/// Byte `i` of a pattern body (`--body-size`, `?size=`).
pub fn pattern_byte(i: u64) -> u8 {
    PATTERN[(i % 64) as usize]
}

/// Bodies up to this size are copied into the scratch buffer; larger ones are sent as segments
/// of the connection's copy of the pattern block.
const SMALL_BODY: u64 = 16 * 1024;
/// Pattern blocks per write when streaming a large body.
const BLOCKS_PER_WRITE: usize = 64;
/// Initial read buffer per connection; grows to `STREAM_BUF` when a large body streams through.
const READ_BUF: usize = 16 * 1024;
const STREAM_BUF: usize = 64 * 1024;
/// How long one read or write may wait before the connection is dropped.
const IO_TIMEOUT: Duration = Duration::from_secs(300);
/// How long a graceful close keeps reading (and discarding) after the last response.
const LINGER: Duration = Duration::from_secs(2);
/// Status codes counted (and accepted in `?status=`): 200..=599; the array is indexed by code.
const MAX_STATUS: usize = 600;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum IoChoice {
    Auto,
    Uring,
    Epoll,
}

/// The command line, validated.
#[derive(Debug, Clone)]
struct Settings {
    addr: IpAddr,
    ports: Vec<u16>,
    threads: usize,
    io: IoChoice,
    body_size: Option<u64>,
    chunked: bool,
    delay_ms: u64,
    stats_file: Option<PathBuf>,
}

enum Cli {
    Run(Settings),
    Help,
}

fn parse_args(args: Vec<OsString>) -> Result<Cli, String> {
    use lexopt::prelude::*;
    let mut s = Settings {
        addr: IpAddr::V4(Ipv4Addr::LOCALHOST),
        ports: Vec::new(),
        threads: 1,
        io: IoChoice::Auto,
        body_size: None,
        chunked: false,
        delay_ms: 0,
        stats_file: None,
    };
    let mut p = lexopt::Parser::from_args(args);
    let text = |p: &mut lexopt::Parser, flag: &str| -> Result<String, String> {
        let v = p.value().map_err(|e| e.to_string())?;
        v.into_string()
            .map_err(|v| format!("{flag}: invalid UTF-8 in {v:?}"))
    };
    while let Some(arg) = p.next().map_err(|e| e.to_string())? {
        match arg {
            Long("port") => {
                let v = text(&mut p, "--port")?;
                s.ports.push(parse_port(&v)?);
            }
            Long("ports") => {
                let v = text(&mut p, "--ports")?;
                for part in v.split(',').filter(|x| !x.trim().is_empty()) {
                    s.ports.push(parse_port(part)?);
                }
            }
            Long("addr") => {
                let v = text(&mut p, "--addr")?;
                s.addr = v
                    .trim()
                    .parse()
                    .map_err(|_| format!("--addr: bad IP address {v:?}"))?;
            }
            Short('t') | Long("threads") => {
                let v = text(&mut p, "--threads")?;
                s.threads = match v.trim().parse::<usize>() {
                    Ok(n) if (1..=4096).contains(&n) => n,
                    _ => return Err(format!("--threads: bad thread count {v:?}")),
                };
            }
            Long("io") => {
                let v = text(&mut p, "--io")?;
                s.io = match v.as_str() {
                    "auto" => IoChoice::Auto,
                    "uring" | "io_uring" => IoChoice::Uring,
                    "epoll" => IoChoice::Epoll,
                    _ => return Err(format!("--io: expected uring, epoll or auto, not {v:?}")),
                };
            }
            Long("body-size") => {
                let v = text(&mut p, "--body-size")?;
                s.body_size = Some(super::parse_size(&v).map_err(|e| format!("--body-size: {e}"))?);
            }
            Long("chunked") => s.chunked = true,
            Long("delay") => {
                let v = text(&mut p, "--delay")?;
                s.delay_ms = v
                    .trim()
                    .parse()
                    .map_err(|_| format!("--delay: bad milliseconds {v:?}"))?;
            }
            Long("stats-file") => s.stats_file = Some(p.value().map_err(|e| e.to_string())?.into()),
            Short('h') | Long("help") => return Ok(Cli::Help),
            _ => return Err(arg.unexpected().to_string()),
        }
    }
    if s.ports.is_empty() {
        s.ports.push(8000);
    }
    for (i, port) in s.ports.iter().enumerate() {
        if s.ports[..i].contains(port) {
            return Err(format!("port {port} given twice"));
        }
    }
    Ok(Cli::Run(s))
}

fn parse_port(v: &str) -> Result<u16, String> {
    match v.trim().parse::<u16>() {
        Ok(p) if p != 0 => Ok(p),
        _ => Err(format!("bad port {v:?} (expected 1-65535)")),
    }
}

/// Entry point of `ringload origin ARGS...` (the arguments after `origin`). Returns the exit
/// code: 0 after SIGTERM/SIGINT (or `--help`), 2 for bad input (flags, ports, bind failures).
pub fn main(args: Vec<OsString>) -> i32 {
    let s = match parse_args(args) {
        Ok(Cli::Run(s)) => s,
        Ok(Cli::Help) => {
            println!("{USAGE}");
            return 0;
        }
        Err(msg) => {
            eprintln!("ringload origin: {msg}");
            return 2;
        }
    };
    match run(s) {
        Ok(()) => 0,
        Err(msg) => {
            eprintln!("ringload origin: {msg}");
            2
        }
    }
}

fn run(s: Settings) -> Result<(), String> {
    let kind = match (s.io, io::probe_uring()) {
        (IoChoice::Epoll, _) => io::Kind::Epoll,
        (_, Ok(())) => io::Kind::Uring,
        (IoChoice::Uring, Err(why)) => return Err(format!("io_uring is not available: {why}")),
        (IoChoice::Auto, Err(_)) => io::Kind::Epoll,
    };
    let addrs: Vec<SocketAddr> = s
        .ports
        .iter()
        .map(|&p| SocketAddr::new(s.addr, p))
        .collect();
    for &a in &addrs {
        crate::io::check_port_free(a)
            .map_err(|e| format!("could not bind {a}: {}", super::short_error(&e)))?;
    }
    let mut per_thread = Vec::with_capacity(s.threads);
    for _ in 0..s.threads {
        let mut ls = Vec::with_capacity(addrs.len());
        for &a in &addrs {
            let l = crate::io::reuseport_listener(a)
                .map_err(|e| format!("could not bind {a}: {}", super::short_error(&e)))?;
            ls.push(l);
        }
        per_thread.push(ls);
    }
    // Shut down at exit, so that the port is free at once even while io_uring's asynchronous
    // teardown still holds a listener with a pending accept.
    let listen_fds: Vec<RawFd> = per_thread.iter().flatten().map(|l| l.as_raw_fd()).collect();
    let sigs = block_signals();
    let counters: Vec<Arc<Counters>> = (0..s.threads)
        .map(|_| Arc::new(Counters::new(s.ports.len())))
        .collect();
    let cores = core_affinity::get_core_ids().unwrap_or_default();
    for (index, listeners) in per_thread.into_iter().enumerate() {
        let settings = s.clone();
        let counters = counters[index].clone();
        let core = cores.get(index % cores.len().max(1)).copied();
        std::thread::Builder::new()
            .name(format!("origin-{index}"))
            .spawn(move || {
                if let Some(core) = core {
                    core_affinity::set_for_current(core);
                }
                match kind {
                    io::Kind::Uring => {
                        Uring::block_on(worker::<Uring>(settings, counters, listeners))
                    }
                    io::Kind::Epoll => {
                        Epoll::block_on(worker::<Epoll>(settings, counters, listeners))
                    }
                }
            })
            .map_err(|e| format!("could not start a thread: {e}"))?;
    }
    let list: Vec<String> = addrs.iter().map(|a| a.to_string()).collect();
    let backend = match kind {
        io::Kind::Uring => Uring::NAME,
        io::Kind::Epoll => Epoll::NAME,
    };
    eprintln!(
        "ringload origin: listening on {} ({} thread(s), {backend})",
        list.join(", "),
        s.threads
    );
    let write_stats = |json: &str| {
        if let Some(path) = &s.stats_file {
            let mut tmp = path.clone().into_os_string();
            tmp.push(".tmp");
            if std::fs::write(&tmp, json).is_ok() {
                let _ = std::fs::rename(&tmp, path);
            }
        }
    };
    write_stats(&stats_json(&s.ports, &counters));
    loop {
        let ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 100_000_000,
        };
        // SAFETY: waits for one of the signals blocked in `sigs`.
        let sig = unsafe { libc::sigtimedwait(&sigs, std::ptr::null_mut(), &ts) };
        let json = stats_json(&s.ports, &counters);
        write_stats(&json);
        if sig == libc::SIGTERM || sig == libc::SIGINT {
            for &fd in &listen_fds {
                // SAFETY: the workers own these fds and never close them; plain shutdown(2).
                unsafe { libc::shutdown(fd, libc::SHUT_RDWR) };
            }
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{json}");
            let _ = out.flush();
            return Ok(());
        }
    }
}

/// Blocks SIGTERM and SIGINT in this thread and the workers it spawns, so that only
/// `sigtimedwait` in `run` sees them; ignores SIGPIPE (a peer's close is an I/O error).
fn block_signals() -> libc::sigset_t {
    // SAFETY: plain signal-mask calls on a zeroed sigset.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        // A shell starts background jobs with SIGINT ignored, and an ignored signal is never
        // queued for sigtimedwait: restore the default (the mask keeps it from killing us).
        libc::signal(libc::SIGINT, libc::SIG_DFL);
        libc::signal(libc::SIGTERM, libc::SIG_DFL);
        set
    }
}

// ---------------------------------------------------------------------------------------------
// Counters

/// One port's counters in one thread (aligned so threads never share a cache line).
#[repr(align(128))]
struct PortCounters {
    connections: AtomicU64,
    requests: AtomicU64,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    status: Box<[AtomicU64]>,
}

/// One thread's counters, per port (in `Settings::ports` order). Only that thread writes them;
/// the main thread sums them.
struct Counters {
    ports: Box<[PortCounters]>,
}

impl Counters {
    fn new(ports: usize) -> Counters {
        Counters {
            ports: (0..ports)
                .map(|_| PortCounters {
                    connections: AtomicU64::new(0),
                    requests: AtomicU64::new(0),
                    bytes_in: AtomicU64::new(0),
                    bytes_out: AtomicU64::new(0),
                    status: (0..MAX_STATUS).map(|_| AtomicU64::new(0)).collect(),
                })
                .collect(),
        }
    }
}

/// `{"ports":{"8000":{"connections":N,"requests":N,"bytes_in":N,"bytes_out":N,"status":{"200":N}}}}`
fn stats_json(ports: &[u16], threads: &[Arc<Counters>]) -> String {
    let mut j = String::from("{\"ports\":{");
    for (i, port) in ports.iter().enumerate() {
        let sum = |f: &dyn Fn(&PortCounters) -> &AtomicU64| -> u64 {
            threads.iter().map(|t| f(&t.ports[i]).load(Relaxed)).sum()
        };
        if i > 0 {
            j.push(',');
        }
        let _ = write!(
            j,
            "\"{port}\":{{\"connections\":{},\"requests\":{},\"bytes_in\":{},\"bytes_out\":{},\"status\":{{",
            sum(&|p| &p.connections),
            sum(&|p| &p.requests),
            sum(&|p| &p.bytes_in),
            sum(&|p| &p.bytes_out),
        );
        let mut first = true;
        for code in 0..MAX_STATUS {
            let n = sum(&|p| &p.status[code]);
            if n > 0 {
                let _ = write!(j, "{}\"{code}\":{n}", if first { "" } else { "," });
                first = false;
            }
        }
        j.push_str("}}");
    }
    j.push_str("}}");
    j
}

// ---------------------------------------------------------------------------------------------
// Workers

/// What one thread's connections share.
struct Shard {
    settings: Settings,
    counters: Arc<Counters>,
    /// Per port: the default body `Server response, port N\n`.
    default_body: Box<[Box<[u8]>]>,
    limits: Limits,
}

async fn worker<B: Backend>(
    settings: Settings,
    counters: Arc<Counters>,
    listeners: Vec<std::net::TcpListener>,
) {
    let default_body = settings
        .ports
        .iter()
        .map(|p| {
            format!("Server response, port {p}\n")
                .into_bytes()
                .into_boxed_slice()
        })
        .collect();
    let shard = Rc::new(Shard {
        settings,
        counters,
        default_body,
        limits: Limits::default(),
    });
    for (idx, l) in listeners.into_iter().enumerate() {
        let l = match B::listener(l) {
            Ok(l) => Rc::new(l),
            Err(e) => {
                eprintln!("ringload origin: listener setup failed: {e}");
                std::process::exit(1);
            }
        };
        // Two accepts outstanding per listener, for connection bursts.
        for _ in 0..2 {
            B::spawn(accept_loop::<B>(l.clone(), shard.clone(), idx));
        }
    }
    std::future::pending::<()>().await;
}

async fn accept_loop<B: Backend>(l: Rc<B::Listener>, shard: Rc<Shard>, idx: usize) {
    loop {
        match l.accept().await {
            Ok((conn, _)) => {
                shard.counters.ports[idx].connections.fetch_add(1, Relaxed);
                B::spawn(Session::new(conn, shard.clone(), idx).serve());
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotConnected => return,
            // EMFILE and friends: back off a little rather than spin.
            Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fail {
    None,
    Reset,
    Garbage,
}

/// The per-request controls from the query string.
#[derive(Debug, Clone, Copy)]
struct Params {
    delay_ms: Option<u64>,
    status: u16,
    close: bool,
    fail: Fail,
    size: Option<u64>,
    echo: bool,
}

fn parse_params(query: Option<&[u8]>) -> Result<Params, &'static str> {
    let mut p = Params {
        delay_ms: None,
        status: 200,
        close: false,
        fail: Fail::None,
        size: None,
        echo: false,
    };
    let Some(q) = query else { return Ok(p) };
    for pair in q.split(|&b| b == b'&') {
        let (k, v) = match pair.iter().position(|&b| b == b'=') {
            Some(i) => (&pair[..i], &pair[i + 1..]),
            None => (pair, &b""[..]),
        };
        let v = std::str::from_utf8(v).map_err(|_| "bad query value")?;
        match k {
            b"delay" => p.delay_ms = Some(v.parse().map_err(|_| "bad delay")?),
            b"status" => {
                p.status = match v.parse::<u16>() {
                    Ok(s) if (200..MAX_STATUS as u16).contains(&s) => s,
                    _ => return Err("bad status (200-599)"),
                }
            }
            b"close" => p.close = flag(v),
            b"echo" => p.echo = flag(v),
            b"fail" => {
                p.fail = match v {
                    "reset" => Fail::Reset,
                    "garbage" => Fail::Garbage,
                    "" | "0" | "none" => Fail::None,
                    _ => return Err("bad fail (reset or garbage)"),
                }
            }
            b"size" => p.size = Some(super::parse_size(v).map_err(|_| "bad size")?),
            _ => {}
        }
    }
    Ok(p)
}

fn flag(v: &str) -> bool {
    !matches!(v, "0" | "false" | "no")
}

/// What a parsed request needs once its head's buffer may be overwritten.
#[derive(Debug, Clone, Copy)]
struct Req {
    head_only: bool,
    http10: bool,
    framing: BodyFraming,
    expect: bool,
    keep_alive: bool,
    params: Params,
}

/// How a response body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// 204, 304: no body and no framing header.
    NoBody,
    Length(u64),
    Chunked,
    /// HTTP/1.0 client and `--chunked`: no length, the close ends the body.
    Close,
}

/// What happens after a request.
enum Next {
    KeepAlive,
    /// Flush, then a graceful close.
    Close,
    /// Drop the connection now (already shut down).
    Abort,
}

type IoResult<T> = std::io::Result<T>;

fn eof() -> std::io::Error {
    std::io::ErrorKind::UnexpectedEof.into()
}

/// One client connection and its reusable buffers.
struct Session<C: Conn> {
    conn: C,
    shard: Rc<Shard>,
    idx: usize,
    port: u16,
    /// Read buffer; `buf[pos..]` is not consumed yet.
    buf: Vec<u8>,
    pos: usize,
    /// Pending output: response heads and small bodies in `g.scratch`. `g.input` is empty
    /// except during a write, when it holds the read buffer (echo) or the pattern block.
    g: Gather,
    head: RequestHead,
    scanner: ChunkedScanner,
    /// Decoded chunk payload ranges in `buf` (echo of a chunked body).
    pieces: Vec<(usize, usize)>,
    /// This connection's copy of the pattern block, made on first use.
    pattern: Vec<u8>,
}

impl<C: Conn> Session<C> {
    fn new(conn: C, shard: Rc<Shard>, idx: usize) -> Session<C> {
        let port = shard.settings.ports[idx];
        Session {
            conn,
            shard,
            idx,
            port,
            buf: Vec::with_capacity(READ_BUF),
            pos: 0,
            g: Gather::new(),
            head: RequestHead::new(),
            scanner: ChunkedScanner::new(),
            pieces: Vec::new(),
            pattern: Vec::new(),
        }
    }

    fn counters(&self) -> &PortCounters {
        &self.shard.counters.ports[self.idx]
    }

    async fn serve(mut self) {
        loop {
            let parsed = parse_request(&self.buf[self.pos..], &self.shard.limits, &mut self.head);
            match parsed {
                Ok(Parsed::Complete) => {}
                Ok(Parsed::Partial) => match self.fill().await {
                    Ok(n) if n > 0 => continue,
                    _ => return,
                },
                Err(e) => {
                    self.counters().requests.fetch_add(1, Relaxed);
                    let body = format!("{}\n", e.reason);
                    self.queue_head(e.status, Framing::Length(body.len() as u64), true, false);
                    self.g.push_scratch(body.as_bytes());
                    self.close_gracefully().await;
                    return;
                }
            }
            self.counters().requests.fetch_add(1, Relaxed);
            let base = &self.buf[self.pos..];
            let h = &self.head;
            let params = parse_params(h.query.map(|q| q.get(base)));
            let req_base = Req {
                head_only: h.method == Method::Head,
                http10: h.version == Version::Http10,
                framing: h.body,
                expect: h.expect_continue,
                keep_alive: !h.conn_close,
                params: match params {
                    Ok(p) => p,
                    Err(_) => parse_params(None).expect("defaults"),
                },
            };
            self.pos += self.head.head_len;
            let next = match params {
                Ok(_) => self.handle(req_base).await,
                Err(why) => {
                    // The body's framing is known but not worth reading: answer and close.
                    self.queue_head(
                        400,
                        Framing::Length(why.len() as u64 + 1),
                        true,
                        req_base.http10,
                    );
                    self.g.push_scratch(why.as_bytes());
                    self.g.push_scratch(b"\n");
                    Ok(Next::Close)
                }
            };
            match next {
                Ok(Next::KeepAlive) => {}
                Ok(Next::Close) => {
                    self.close_gracefully().await;
                    return;
                }
                Ok(Next::Abort) | Err(_) => return,
            }
        }
    }

    async fn handle(&mut self, req: Req) -> IoResult<Next> {
        let p = req.params;
        match p.fail {
            Fail::Reset => {
                self.flush().await?;
                self.conn.shutdown(Shutdown::Both);
                return Ok(Next::Abort);
            }
            Fail::Garbage => {
                self.g.push_scratch(b"HTTP/1.1 2OO OK\r\n\r\n");
                return Ok(Next::Close);
            }
            Fail::None => {}
        }
        let has_body = match req.framing {
            BodyFraming::Length(n) => n > 0,
            BodyFraming::Chunked | BodyFraming::UntilClose => true,
            BodyFraming::None => false,
        };
        if req.expect && has_body {
            self.g.push_scratch(b"HTTP/1.1 100 Continue\r\n\r\n");
        }
        let close = p.close || !req.keep_alive;
        let no_body_status = matches!(p.status, 204 | 304);
        let delay = p.delay_ms.unwrap_or(self.shard.settings.delay_ms);
        if p.echo && !req.head_only && !no_body_status {
            if delay > 0 {
                self.sleep(delay).await?;
            }
            return self.echo(req, close).await;
        }
        if !self.discard_body(req.framing).await? {
            self.queue_head(400, Framing::Length(17), true, req.http10);
            self.g.push_scratch(b"bad chunked body\n");
            return Ok(Next::Close);
        }
        if delay > 0 {
            self.sleep(delay).await?;
        }
        let body_len = p
            .size
            .or(self.shard.settings.body_size)
            .unwrap_or(self.shard.default_body[self.idx].len() as u64);
        let mut close = close;
        let framing = if no_body_status {
            Framing::NoBody
        } else if self.shard.settings.chunked {
            if req.http10 {
                close = true;
                Framing::Close
            } else {
                Framing::Chunked
            }
        } else {
            Framing::Length(body_len)
        };
        self.queue_head(p.status, framing, close, req.http10);
        if !req.head_only && framing != Framing::NoBody {
            let chunked = framing == Framing::Chunked;
            if p.size.is_none() && self.shard.settings.body_size.is_none() {
                let shard = self.shard.clone();
                let body = &shard.default_body[self.idx];
                if chunked {
                    let start = self.g.scratch.len();
                    let _ = write!(self.g.scratch, "{:x}\r\n", body.len());
                    self.g.scratch.extend_from_slice(body);
                    self.g.scratch.extend_from_slice(b"\r\n0\r\n\r\n");
                    self.g.push(Src::Scratch, start, self.g.scratch.len());
                } else {
                    self.g.push_scratch(body);
                }
            } else {
                self.send_pattern(body_len, chunked).await?;
            }
        }
        Ok(if close { Next::Close } else { Next::KeepAlive })
    }

    /// Reads and drops a request body per its framing. Ok(false): bad chunked framing.
    async fn discard_body(&mut self, framing: BodyFraming) -> IoResult<bool> {
        match framing {
            BodyFraming::None | BodyFraming::Length(0) => Ok(true),
            BodyFraming::Length(n) => {
                let mut rem = n;
                loop {
                    let take =
                        (self.buf.len() - self.pos).min(usize::try_from(rem).unwrap_or(usize::MAX));
                    self.pos += take;
                    rem -= take as u64;
                    self.counters().bytes_in.fetch_add(take as u64, Relaxed);
                    if rem == 0 {
                        return Ok(true);
                    }
                    self.grow_for_stream();
                    if self.fill().await? == 0 {
                        return Err(eof());
                    }
                }
            }
            BodyFraming::Chunked | BodyFraming::UntilClose => {
                self.scanner.reset();
                loop {
                    let mut got = 0u64;
                    let r = self
                        .scanner
                        .scan(&self.buf[self.pos..], |d| got += d.len() as u64);
                    self.counters().bytes_in.fetch_add(got, Relaxed);
                    let Ok((consumed, done)) = r else {
                        return Ok(false);
                    };
                    self.pos += consumed;
                    if done {
                        return Ok(true);
                    }
                    self.grow_for_stream();
                    if self.fill().await? == 0 {
                        return Err(eof());
                    }
                }
            }
        }
    }

    /// Streams the request body back: Content-Length when the request had one, else chunked.
    async fn echo(&mut self, req: Req, close: bool) -> IoResult<Next> {
        let status = req.params.status;
        match req.framing {
            BodyFraming::None | BodyFraming::Length(_) => {
                let n = match req.framing {
                    BodyFraming::Length(n) => n,
                    _ => 0,
                };
                self.queue_head(status, Framing::Length(n), close, req.http10);
                let mut rem = n;
                loop {
                    let take =
                        (self.buf.len() - self.pos).min(usize::try_from(rem).unwrap_or(usize::MAX));
                    if take > 0 {
                        self.g.push(Src::Input, self.pos, self.pos + take);
                        self.pos += take;
                        rem -= take as u64;
                        self.counters().bytes_in.fetch_add(take as u64, Relaxed);
                        self.flush_with_buf().await?;
                    }
                    if rem == 0 {
                        break;
                    }
                    self.grow_for_stream();
                    if self.fill().await? == 0 {
                        return Err(eof());
                    }
                }
            }
            BodyFraming::Chunked | BodyFraming::UntilClose => {
                self.queue_head(status, Framing::Chunked, close, req.http10);
                self.scanner.reset();
                loop {
                    self.pieces.clear();
                    let base = self.buf.as_ptr() as usize;
                    let pieces = &mut self.pieces;
                    let r = self.scanner.scan(&self.buf[self.pos..], |d| {
                        let start = d.as_ptr() as usize - base;
                        pieces.push((start, start + d.len()));
                    });
                    let Ok((consumed, done)) = r else {
                        // The response is under way: all that is left is to cut it.
                        let _ = self.flush().await;
                        self.conn.shutdown(Shutdown::Both);
                        return Ok(Next::Abort);
                    };
                    let total: usize = self.pieces.iter().map(|p| p.1 - p.0).sum();
                    self.counters().bytes_in.fetch_add(total as u64, Relaxed);
                    if total > 0 {
                        let start = self.g.scratch.len();
                        let _ = write!(self.g.scratch, "{total:x}\r\n");
                        self.g.push(Src::Scratch, start, self.g.scratch.len());
                        for i in 0..self.pieces.len() {
                            let (s, e) = self.pieces[i];
                            self.g.push(Src::Input, s, e);
                        }
                        self.g.push_scratch(b"\r\n");
                    }
                    self.pos += consumed;
                    if done {
                        self.g.push_scratch(b"0\r\n\r\n");
                    }
                    self.flush_with_buf().await?;
                    if done {
                        break;
                    }
                    self.grow_for_stream();
                    if self.fill().await? == 0 {
                        return Err(eof());
                    }
                }
            }
        }
        Ok(if close { Next::Close } else { Next::KeepAlive })
    }

    /// Queues (small) or writes (large) `len` bytes of the pattern, chunked or not.
    async fn send_pattern(&mut self, len: u64, chunked: bool) -> IoResult<()> {
        if len <= SMALL_BODY {
            let n = len as usize;
            if chunked && n > 0 {
                let start = self.g.scratch.len();
                let _ = write!(self.g.scratch, "{n:x}\r\n");
                self.g.push(Src::Scratch, start, self.g.scratch.len());
            }
            self.g.push_scratch(&PATTERN[..n]);
            if chunked {
                self.g.push_scratch(if n > 0 {
                    b"\r\n0\r\n\r\n"
                } else {
                    b"0\r\n\r\n"
                });
            }
            return Ok(());
        }
        if self.pattern.is_empty() {
            self.pattern.extend_from_slice(&PATTERN);
        }
        let mut rem = len;
        while rem > 0 {
            for _ in 0..BLOCKS_PER_WRITE {
                if rem == 0 {
                    break;
                }
                let k = rem.min(BLOCK as u64) as usize;
                if chunked {
                    let start = self.g.scratch.len();
                    let _ = write!(self.g.scratch, "{k:x}\r\n");
                    self.g.push(Src::Scratch, start, self.g.scratch.len());
                }
                self.g.push(Src::Input, 0, k);
                if chunked {
                    self.g.push_scratch(b"\r\n");
                }
                rem -= k as u64;
            }
            if rem == 0 && chunked {
                self.g.push_scratch(b"0\r\n\r\n");
            }
            std::mem::swap(&mut self.pattern, &mut self.g.input);
            let r = self.flush().await;
            std::mem::swap(&mut self.pattern, &mut self.g.input);
            r?;
        }
        Ok(())
    }

    /// Formats a response head into the scratch buffer and counts its status.
    fn queue_head(&mut self, status: u16, framing: Framing, close: bool, http10: bool) {
        if (status as usize) < MAX_STATUS {
            self.counters().status[status as usize].fetch_add(1, Relaxed);
        }
        let s = &mut self.g.scratch;
        let start = s.len();
        let _ = write!(
            s,
            "HTTP/1.1 {status} {}\r\nContent-Type: text/plain\r\n",
            status_reason(status)
        );
        match framing {
            Framing::Length(n) => {
                let _ = write!(s, "Content-Length: {n}\r\n");
            }
            Framing::Chunked => s.extend_from_slice(b"Transfer-Encoding: chunked\r\n"),
            Framing::NoBody | Framing::Close => {}
        }
        let _ = write!(s, "X-Origin-Port: {}\r\n", self.port);
        if close || framing == Framing::Close {
            s.extend_from_slice(b"Connection: close\r\n");
        } else if http10 {
            s.extend_from_slice(b"Connection: keep-alive\r\n");
        }
        s.extend_from_slice(b"\r\n");
        let end = s.len();
        self.g.push(Src::Scratch, start, end);
    }

    /// Writes everything queued; the scratch buffer is then empty again.
    async fn flush(&mut self) -> IoResult<()> {
        if self.g.is_empty() {
            self.g.scratch.clear();
            return Ok(());
        }
        let n = self.g.total_len() as u64;
        self.counters().bytes_out.fetch_add(n, Relaxed);
        let g = std::mem::take(&mut self.g);
        let (r, mut g) = self.conn.write_all(g, Instant::now() + IO_TIMEOUT).await;
        g.clear();
        g.scratch.clear();
        self.g = g;
        r
    }

    /// `flush` with the read buffer as the gather's input (for `Src::Input` segments into it).
    async fn flush_with_buf(&mut self) -> IoResult<()> {
        std::mem::swap(&mut self.buf, &mut self.g.input);
        let r = self.flush().await;
        std::mem::swap(&mut self.buf, &mut self.g.input);
        r
    }

    /// Flushes pending output, makes room in the read buffer and reads. Ok(0): end of stream.
    async fn fill(&mut self) -> IoResult<usize> {
        self.flush().await?;
        if self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        } else if self.pos > 0 {
            self.buf.copy_within(self.pos.., 0);
            self.buf.truncate(self.buf.len() - self.pos);
            self.pos = 0;
            self.head.reset();
        }
        if self.buf.len() == self.buf.capacity() {
            // A head larger than the buffer: grow (parse_request caps the head size).
            self.buf.reserve(self.buf.capacity());
        }
        let buf = std::mem::take(&mut self.buf);
        let (r, buf) = self.conn.read(buf, Instant::now() + IO_TIMEOUT).await;
        self.buf = buf;
        r
    }

    fn grow_for_stream(&mut self) {
        if self.buf.capacity() < STREAM_BUF {
            self.buf.reserve(STREAM_BUF - self.buf.len());
        }
    }

    async fn sleep(&mut self, ms: u64) -> IoResult<()> {
        self.flush().await?;
        tokio::time::sleep(Duration::from_millis(ms)).await;
        Ok(())
    }

    /// Flushes, half-closes, then reads and drops what the client still sends (for up to
    /// `LINGER`), so an unread request does not turn the close into a reset that could destroy
    /// the last response in flight.
    async fn close_gracefully(&mut self) {
        if self.flush().await.is_err() {
            return;
        }
        self.conn.shutdown(Shutdown::Write);
        let deadline = Instant::now() + LINGER;
        for _ in 0..64 {
            self.buf.clear();
            let buf = std::mem::take(&mut self.buf);
            let (r, buf) = self.conn.read(buf, deadline).await;
            self.buf = buf;
            match r {
                Ok(n) if n > 0 => {}
                _ => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<OsString> {
        a.iter().map(OsString::from).collect()
    }

    #[test]
    fn cli() {
        let Ok(Cli::Run(s)) = parse_args(args(&[
            "--port",
            "8000",
            "--ports",
            "8001,8002",
            "-t",
            "2",
            "--io",
            "epoll",
            "--body-size",
            "16k",
            "--chunked",
            "--delay",
            "5",
        ])) else {
            panic!("parse failed")
        };
        assert_eq!(s.ports, [8000, 8001, 8002]);
        assert_eq!(s.threads, 2);
        assert_eq!(s.io, IoChoice::Epoll);
        assert_eq!(s.body_size, Some(16384));
        assert!(s.chunked);
        assert_eq!(s.delay_ms, 5);
        let Ok(Cli::Run(s)) = parse_args(args(&[])) else {
            panic!()
        };
        assert_eq!(s.ports, [8000]);
        assert!(parse_args(args(&["--bogus"])).is_err());
        assert!(parse_args(args(&["--port", "0"])).is_err());
        assert!(parse_args(args(&["--port", "70000"])).is_err());
        assert!(parse_args(args(&["--ports", "8000,8000"])).is_err());
        assert!(parse_args(args(&["--io", "kqueue"])).is_err());
    }

    #[test]
    fn params() {
        let p = parse_params(Some(b"delay=5&status=404&close=1&size=1k&echo=1&x=y")).unwrap();
        assert_eq!(p.delay_ms, Some(5));
        assert_eq!(p.status, 404);
        assert!(p.close && p.echo);
        assert_eq!(p.size, Some(1024));
        assert_eq!(parse_params(Some(b"fail=reset")).unwrap().fail, Fail::Reset);
        assert_eq!(
            parse_params(Some(b"fail=garbage")).unwrap().fail,
            Fail::Garbage
        );
        assert!(parse_params(Some(b"status=99")).is_err());
        assert!(parse_params(Some(b"status=600")).is_err());
        assert!(parse_params(Some(b"fail=maybe")).is_err());
        assert!(!parse_params(Some(b"close=0")).unwrap().close);
    }

    #[test]
    fn pattern_repeats_across_blocks() {
        for i in [0u64, 63, 64, 65535, 65536, 1 << 30] {
            assert_eq!(pattern_byte(i), PATTERN[(i % BLOCK as u64) as usize]);
        }
        assert_eq!(PATTERN[63], b'\n');
        assert_eq!(PATTERN[0], b'A');
    }

    #[test]
    fn json_shape() {
        let c = Arc::new(Counters::new(2));
        c.ports[0].connections.fetch_add(1, Relaxed);
        c.ports[0].requests.fetch_add(3, Relaxed);
        c.ports[0].status[200].fetch_add(2, Relaxed);
        c.ports[0].status[404].fetch_add(1, Relaxed);
        let j = stats_json(&[8000, 8001], &[c.clone(), c]);
        assert_eq!(
            j,
            "{\"ports\":{\"8000\":{\"connections\":2,\"requests\":6,\"bytes_in\":0,\"bytes_out\":0,\
             \"status\":{\"200\":4,\"404\":2}},\"8001\":{\"connections\":0,\"requests\":0,\
             \"bytes_in\":0,\"bytes_out\":0,\"status\":{}}}}"
        );
    }
}
