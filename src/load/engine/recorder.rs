//! One generator thread's measurements: histograms, counters and tallies, recorded without
//! sharing anything; the threads' recorders are merged into a `RunReport` at the end.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::load::report::model::{ConnStats, new_histogram};

/// Microseconds, clamped into the histograms' range.
pub fn micros(d: Duration) -> u64 {
    (d.as_micros() as u64).clamp(1, 3_600_000_000)
}

pub struct Recorder {
    /// Start of the measured window; nothing before it is recorded.
    pub window_start: Instant,
    /// End of the measured window (the stop), once the run is over.
    pub window_end: Option<Instant>,
    pub latency: Histogram<u64>,
    pub service: Histogram<u64>,
    pub connect: Histogram<u64>,
    pub ttfb: Histogram<u64>,
    pub send_lag: Histogram<u64>,
    /// Responses per status code (100..=999), indexed by the code.
    pub status_counts: Box<[u64; 1000]>,
    pub errors: BTreeMap<String, u64>,
    pub conns: ConnStats,
    pub tally: HashMap<Vec<u8>, u64>,
    pub responses: u64,
    pub bytes_read: u64,
    pub bytes_written: u64,
    /// Corrected latency per second of the window.
    pub intervals: Vec<Histogram<u64>>,
    /// Requests in flight at the stop: answered during the drain, unanswered at its deadline,
    /// or failed during it.
    pub drained: u64,
    pub abandoned: u64,
    pub failed_in_drain: u64,
}

/// One completed response, as the connection saw it.
pub struct Sample {
    /// When the schedule wanted the request sent (the send time in closed loop).
    pub intended: Instant,
    pub sent: Instant,
    pub first_byte: Instant,
    pub done: Instant,
    pub status: u16,
}

impl Recorder {
    pub fn new(window_start: Instant) -> Recorder {
        Recorder {
            window_start,
            window_end: None,
            latency: new_histogram(),
            service: new_histogram(),
            connect: new_histogram(),
            ttfb: new_histogram(),
            send_lag: new_histogram(),
            status_counts: Box::new([0; 1000]),
            errors: BTreeMap::new(),
            conns: ConnStats::default(),
            tally: HashMap::new(),
            responses: 0,
            bytes_read: 0,
            bytes_written: 0,
            intervals: Vec::new(),
            drained: 0,
            abandoned: 0,
            failed_in_drain: 0,
        }
    }

    /// Whether a request sent at `sent` belongs to the measured window.
    pub fn counts(&self, sent: Instant) -> bool {
        sent >= self.window_start && self.window_end.is_none_or(|end| sent < end)
    }

    /// `after_stop`: the response came in during the drain.
    pub fn response(&mut self, s: &Sample, open_loop: bool, after_stop: bool) {
        if !self.counts(s.sent) {
            return;
        }
        let lat = micros(s.done - s.intended);
        let _ = self.latency.record(lat);
        let _ = self.service.record(micros(s.done - s.sent));
        let _ = self
            .ttfb
            .record(micros(s.first_byte.saturating_duration_since(s.sent)));
        if open_loop {
            let _ = self
                .send_lag
                .record(micros(s.sent.saturating_duration_since(s.intended)));
        }
        self.status_counts[usize::from(s.status.min(999))] += 1;
        self.responses += 1;
        if let Some(h) = self.interval(s.done) {
            let _ = h.record(lat);
        }
        if after_stop {
            self.drained += 1;
        }
    }

    /// A request that got no response within `timeout`: an error, and a latency of the timeout
    /// (plus the send lag, for the corrected figure).
    pub fn timeout(&mut self, intended: Instant, sent: Instant, timeout: Duration) {
        if !self.counts(sent) {
            return;
        }
        self.error("response:timeout");
        let lat = micros(sent - intended + timeout);
        let _ = self.latency.record(lat);
        let _ = self.service.record(micros(timeout));
        if let Some(h) = self.interval(sent + timeout) {
            let _ = h.record(lat);
        }
    }

    /// A request the schedule wanted sent at `due` that had not gone out at the stop.
    pub fn unsent(&mut self, due: Instant, stop: Instant) {
        self.error("unsent:backlog");
        let lat = micros(stop.saturating_duration_since(due));
        let _ = self.latency.record(lat);
        if let Some(h) = self.interval(stop) {
            let _ = h.record(lat);
        }
    }

    pub fn connected(&mut self, began: Instant, took: Duration) {
        if began >= self.window_start {
            self.conns.opened += 1;
            let _ = self.connect.record(micros(took));
        }
    }

    /// Whether traffic counters (bytes, reuse, server closes) should count `now`.
    pub fn in_window(&self, now: Instant) -> bool {
        now >= self.window_start
    }

    pub fn error(&mut self, kind: &str) {
        match self.errors.get_mut(kind) {
            Some(n) => *n += 1,
            None => {
                self.errors.insert(kind.to_string(), 1);
            }
        }
    }

    pub fn tally(&mut self, key: &[u8]) {
        match self.tally.get_mut(key) {
            Some(n) => *n += 1,
            None => {
                self.tally.insert(key.to_vec(), 1);
            }
        }
    }

    /// The histogram of the window's second that `at` falls in (created on first use).
    fn interval(&mut self, at: Instant) -> Option<&mut Histogram<u64>> {
        let i = at.saturating_duration_since(self.window_start).as_secs() as usize;
        if i > 100_000 {
            return None;
        }
        while self.intervals.len() <= i {
            self.intervals.push(interval_histogram());
        }
        self.intervals.get_mut(i)
    }
}

/// Per-second histograms keep 2 significant digits: one per thread per second of a long run
/// must stay small (about 20 KB, not the 190 KB of a 3-digit one).
pub fn interval_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 2).expect("histogram bounds")
}

/// Classifies an I/O error for the report: "phase:kind".
pub fn error_kind(phase: &'static str, e: &std::io::Error) -> String {
    use std::io::ErrorKind::*;
    let kind = match e.kind() {
        ConnectionRefused => "refused",
        ConnectionReset => "reset",
        ConnectionAborted => "aborted",
        BrokenPipe => "broken-pipe",
        TimedOut => "timeout",
        UnexpectedEof => "premature-close",
        AddrNotAvailable => "address-not-available",
        _ => return format!("{phase}:errno-{}", e.raw_os_error().unwrap_or(0)),
    };
    format!("{phase}:{kind}")
}
