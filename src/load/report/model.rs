//! The results of one run, merged from every thread: what every output format renders.

use std::collections::BTreeMap;

use hdrhistogram::Histogram;

/// Version of the JSON document (`schema` field); bump on incompatible changes.
pub const SCHEMA_VERSION: u32 = 1;

/// Latency histograms record microseconds, 1 µs to 1 hour, 3 significant digits.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("histogram bounds")
}

#[derive(Debug, Clone)]
pub struct RunReport {
    /// What was run, for the report header and `compare`.
    pub config: RunConfig,
    /// Unix time (s) when the measured window started.
    pub started_unix: f64,
    /// Length of the measured window (after warm-up, until the stop, before the drain).
    pub duration_s: f64,
    /// Responses completed in the window (every status), and bytes on the wire.
    pub responses: u64,
    pub bytes_read: u64,
    pub bytes_written: u64,
    /// Corrected latency: from each request's intended send time (open loop) or its send
    /// (closed loop), to the last byte of the response. Timeouts recorded at the timeout value.
    pub latency: Histogram<u64>,
    /// Service time: from the actual send to the last byte.
    pub service: Histogram<u64>,
    /// TCP (and TLS) connect time.
    pub connect: Histogram<u64>,
    /// Time to first response byte, from the actual send.
    pub ttfb: Histogram<u64>,
    /// How late each request went out against its schedule (open loop only).
    pub send_lag: Histogram<u64>,
    /// Responses per status code.
    pub status: BTreeMap<u16, u64>,
    /// Errors by "phase:kind", e.g. "connect:refused", "read:reset", "response:timeout",
    /// "read:parse", "read:premature-close", "write:broken-pipe".
    pub errors: BTreeMap<String, u64>,
    pub conns: ConnStats,
    /// `--tally` counts by header value or body.
    pub tally: BTreeMap<String, u64>,
    /// Requests in flight at the stop, and how the drain ended for them.
    pub in_flight_at_stop: u64,
    pub drained: u64,
    /// Still unanswered when the drain deadline passed (also counted as errors).
    pub abandoned: u64,
    /// Ended in an error during the drain: a response timeout, a reset (also counted as errors).
    pub failed_in_drain: u64,
    /// Per-second corrected-latency histograms (start offset in s), for .hlog and the plot.
    pub intervals: Vec<(f64, Histogram<u64>)>,
    pub cost: Cost,
    pub verdict: Verdict,
}

#[derive(Debug, Clone, Default)]
pub struct RunConfig {
    pub urls: Vec<String>,
    pub method: String,
    pub connections: usize,
    pub threads: usize,
    pub pipeline: usize,
    /// "closed", or the schedule as given ("constant:2000", "ramp:...", ...).
    pub mode: String,
    /// Target rate for open loop (the schedule's mean), 0 for closed loop.
    pub target_rate: f64,
    pub io: String,
    pub version: String,
}

#[derive(Debug, Clone, Copy, Default)]
pub struct ConnStats {
    pub opened: u64,
    /// Requests sent on a connection that had already carried one.
    pub reused: u64,
    pub closed_by_server: u64,
}

/// The generator's own cost.
#[derive(Debug, Clone, Copy, Default)]
pub struct Cost {
    pub user_s: f64,
    pub sys_s: f64,
    /// (user + sys) µs / responses.
    pub cpu_us_per_request: f64,
    /// Share of the generator's cores it used (100 = every thread's core busy the whole time).
    pub core_use_pct: f64,
    pub max_rss_kb: u64,
}

#[derive(Debug, Clone, Default)]
pub struct Verdict {
    pub trustworthy: bool,
    /// Why not: "fell behind its schedule (p99 send lag 12.3 ms)", "used 93% of its cores".
    pub reasons: Vec<String>,
}

impl RunReport {
    pub fn rate(&self) -> f64 {
        if self.duration_s > 0.0 {
            self.responses as f64 / self.duration_s
        } else {
            0.0
        }
    }

    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }

    /// Responses whose status is not 2xx or 3xx.
    pub fn bad_status_count(&self) -> u64 {
        self.status
            .iter()
            .filter(|(s, _)| !(200..400).contains(*s))
            .map(|(_, n)| n)
            .sum()
    }
}
