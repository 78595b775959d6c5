//! Counters, kept per thread and per port, and their sum as one JSON object (printed at exit
//! and rewritten into `--stats-file`).

use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Status codes counted (and accepted in `?status=`): 200..=599; the array is indexed by code.
pub(super) const MAX_STATUS: usize = 600;

/// One port's counters in one thread (aligned so threads never share a cache line).
#[repr(align(128))]
pub(super) struct PortCounters {
    pub(super) connections: AtomicU64,
    pub(super) requests: AtomicU64,
    pub(super) bytes_in: AtomicU64,
    pub(super) bytes_out: AtomicU64,
    pub(super) status: Box<[AtomicU64]>,
}

/// One thread's counters, per port (in `Settings::ports` order). Only that thread writes them;
/// the main thread sums them.
pub(super) struct Counters {
    pub(super) ports: Box<[PortCounters]>,
}

impl Counters {
    pub(super) fn new(ports: usize) -> Counters {
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
pub(super) fn stats_json(ports: &[u16], threads: &[Arc<Counters>]) -> String {
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

/// Rewrites `path` with `json` through a `.tmp` file and a rename, so that a reader never sees
/// a half-written file. Errors are ignored: the next tick tries again.
pub(super) fn write_stats_file(path: &Path, json: &str) {
    let mut tmp = path.to_path_buf().into_os_string();
    tmp.push(".tmp");
    if std::fs::write(&tmp, json).is_ok() {
        let _ = std::fs::rename(&tmp, path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
