//! A load run as the engine sees it: validated, with every URL resolved. `load::cli` builds it
//! from the command line; nothing here parses text.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Plan {
    /// Where requests go, each with a weight (`URL@W`, default 1).
    pub targets: Vec<Target>,
    pub method: String,
    /// Extra request header lines, `Name: value` (Host, Content-Length and Connection are ours).
    pub headers: Vec<String>,
    pub body: Vec<u8>,
    /// `-c`: connections, split across threads.
    pub connections: usize,
    /// `-t`: generator threads, each pinned to a core with its own ring.
    pub threads: usize,
    pub stop: Stop,
    /// `-R` and `--schedule`: open loop at this rate; None = closed loop.
    pub rate: Option<Schedule>,
    /// `--warmup`: run but not counted.
    pub warmup: Duration,
    /// `--timeout`: a response slower than this counts as an error and at this value.
    pub timeout: Duration,
    /// `--connect-timeout`.
    pub connect_timeout: Duration,
    /// `--drain`: how long requests still in flight at the end may take.
    pub drain: Duration,
    /// Keep-alive (default on; `--no-keepalive` closes after each response).
    pub keepalive: bool,
    /// `--close-every N`: close each connection after N responses.
    pub close_every: Option<u64>,
    /// `-p`: requests in flight per connection (pipelining depth), at least 1.
    pub pipeline: usize,
    /// `--insecure`: accept any TLS certificate.
    pub insecure: bool,
    pub tally: Option<Tally>,
    pub io: IoChoice,
    pub outputs: Outputs,
    /// `--fail-if`: conditions that make the exit code 1.
    pub fail_if: Vec<Condition>,
    /// `--find-max --slo`: step the rate up until the SLO breaks.
    pub find_max: Option<FindMax>,
}

#[derive(Debug, Clone)]
pub struct Target {
    /// As given, for reports.
    pub url: String,
    pub tls: bool,
    /// Host name for the Host header and TLS SNI.
    pub host: String,
    pub port: u16,
    pub addr: SocketAddr,
    /// Path and query, starting with `/`.
    pub path: String,
    pub weight: u32,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Stop {
    /// `-d`: run for this long after the warm-up.
    Duration(Duration),
    /// `-n`: this many requests after the warm-up.
    Requests(u64),
}

/// Open-loop rate over time (requests per second across all threads).
#[derive(Debug, Clone, PartialEq)]
pub enum Schedule {
    Constant {
        rate: f64,
    },
    /// `step:START,STEP,EVERY`: START req/s, plus STEP every EVERY.
    Step {
        start: f64,
        step: f64,
        every: Duration,
    },
    /// `ramp:FROM,TO,OVER`: linear from FROM to TO over OVER, then TO.
    Ramp {
        from: f64,
        to: f64,
        over: Duration,
    },
    /// `poisson`: exponential gaps around `rate`, from `seed`.
    Poisson {
        rate: f64,
        seed: u64,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tally {
    /// `--tally header:NAME`: count responses by this header's value.
    Header(String),
    /// `--tally body`: count responses by their body (truncated to 64 bytes).
    Body,
}

pub use crate::io::Choice as IoChoice;

#[derive(Debug, Clone, Default)]
pub struct Outputs {
    pub hgrm: Option<PathBuf>,
    pub hlog: Option<PathBuf>,
    pub json: Option<PathBuf>,
    pub svg: Option<PathBuf>,
    /// A live progress line each second (on when stderr is a terminal, `--progress`/`--quiet`).
    pub progress: bool,
}

/// One `--fail-if`/`--slo` clause, e.g. `p99>5ms`, `errors>0.1%`, `rate<1000`.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    pub metric: Metric,
    pub op: Cmp,
    /// Microseconds for latencies, a fraction (0.001 = 0.1%) for error ratios, req/s for rate.
    pub value: f64,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Metric {
    /// A percentile of the corrected latency (p50, p99, p99.9, max as 100).
    Latency(f64),
    /// Errors / (requests + errors).
    ErrorRatio,
    /// Non-2xx/3xx responses / responses.
    BadStatusRatio,
    /// Achieved requests per second.
    Rate,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cmp {
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Debug, Clone, PartialEq)]
pub struct FindMax {
    /// The SLO that must hold (all clauses).
    pub slo: Vec<Condition>,
    /// First rate, step factor, and each step's duration.
    pub start_rate: f64,
    pub factor: f64,
    pub step: Duration,
}
