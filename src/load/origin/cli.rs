//! The command line of `ringload origin`: its options, parsed and validated into [`Settings`].

use std::ffi::OsString;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;

use crate::io::Choice as IoChoice;

pub const USAGE: &str = "usage: ringload origin [options]
  --port N            serve port N (repeatable; default 8000)
  --ports A,B,...     serve several ports
  --addr IP           address to bind (default 127.0.0.1)
  -t, --threads N     threads, each pinned to a core with its own listeners (default 1)
  --io ring|uring|epoll|auto   I/O backend (default auto: ring, io_uring on our own loop,
                      where io_uring is usable, else epoll; uring: on tokio-uring's loop)
  --body-size BYTES   send BYTES of a fixed pattern instead of 'Server response, port N\\n'
                      (suffixes k, m, g)
  --chunked           send bodies with Transfer-Encoding: chunked
  --delay MS          wait MS milliseconds before each response
  --stats-file PATH   rewrite PATH with the JSON counters every 100 ms
query parameters, per request:
  ?delay=MS  ?status=NNN  ?close=1  ?fail=reset|garbage  ?size=BYTES  ?echo=1
SIGTERM or SIGINT prints the counters as JSON on stdout and exits 0.";

/// The command line, validated.
#[derive(Debug, Clone)]
pub(super) struct Settings {
    pub(super) addr: IpAddr,
    pub(super) ports: Vec<u16>,
    pub(super) threads: usize,
    pub(super) io: IoChoice,
    pub(super) body_size: Option<u64>,
    pub(super) chunked: bool,
    pub(super) delay_ms: u64,
    pub(super) stats_file: Option<PathBuf>,
}

pub(super) enum Cli {
    Run(Settings),
    Help,
}

pub(super) fn parse_args(args: Vec<OsString>) -> Result<Cli, String> {
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
                s.io = IoChoice::parse(&v).ok_or_else(|| {
                    format!("--io: expected uring, ring, epoll or auto, not {v:?}")
                })?;
            }
            Long("body-size") => {
                let v = text(&mut p, "--body-size")?;
                s.body_size =
                    Some(crate::load::parse_size(&v).map_err(|e| format!("--body-size: {e}"))?);
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
}
