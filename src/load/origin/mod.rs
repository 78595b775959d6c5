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
//!
//! The pieces: `cli` (options), `worker` (one thread's listeners and accept loops),
//! `session` (one connection's request loop), `params` (the query-parameter controls),
//! `respond` (response heads and bodies), `request_body` (request bodies, discarded or
//! echoed), `wire` (the session's buffered reads and writes), `pattern` (the pattern
//! block) and `stats` (counters, the JSON object and the stats file).

mod cli;
mod params;
mod pattern;
mod request_body;
mod respond;
mod session;
mod stats;
mod wire;
mod worker;

use std::ffi::OsString;
use std::io::Write as _;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::Arc;

use crate::io::{self, Backend, Epoll, Ring, Uring};

pub use cli::USAGE;
pub use pattern::{BLOCK, pattern_byte};

use cli::{Cli, Settings, parse_args};
use stats::{Counters, stats_json};
use worker::worker;

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
    let (kind, _) = io::select(s.io).map_err(|why| format!("io_uring is not available: {why}"))?;
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
                    io::Kind::Ring => Ring::block_on(worker::<Ring>(settings, counters, listeners)),
                    io::Kind::Epoll => {
                        Epoll::block_on(worker::<Epoll>(settings, counters, listeners))
                    }
                }
            })
            .map_err(|e| format!("could not start a thread: {e}"))?;
    }
    let list: Vec<String> = addrs.iter().map(|a| a.to_string()).collect();
    let backend = kind.name();
    eprintln!(
        "ringload origin: listening on {} ({} thread(s), {backend})",
        list.join(", "),
        s.threads
    );
    let write_stats = |json: &str| {
        if let Some(path) = &s.stats_file {
            stats::write_stats_file(path, json);
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
