//! The HdrHistogram V2 interval log (`.hlog`): one DEFLATE-compressed V2 histogram per interval,
//! as Java's `HistogramLogWriter` writes it, so `HistogramLogProcessor` and the crate's
//! `IntervalLogIterator` read it back.
//!
//! Timestamps: `#[StartTime]` and `#[BaseTime]` are both the start of the measured window, and
//! each interval's timestamp is its offset from it. Histograms hold µs; the `Interval_Max`
//! column is divided by 1000 (ms, `#[MaxValueDivisor: 1000.000]`). Java's
//! `HistogramLogProcessor` assumes ns input by default, so pass `-outputValueUnitRatio 1000` to
//! get ms from our µs.

use std::io::{self, Write};
use std::time::{Duration, UNIX_EPOCH};

use hdrhistogram::serialization::V2DeflateSerializer;
use hdrhistogram::serialization::interval_log::IntervalLogWriterBuilder;

use super::model::RunReport;

/// The column legend Java's writer puts after the headers (the crate's writer does not).
pub const LEGEND: &str =
    "\"StartTimestamp\",\"Interval_Length\",\"Interval_Max\",\"Interval_Compressed_Histogram\"";

/// Writes `r.intervals` as an interval log. Each interval lasts until the next one starts; the
/// last lasts 1 s (or less when the window ends sooner).
pub fn write_hlog(r: &RunReport, out: &mut impl Write) -> io::Result<()> {
    let start = UNIX_EPOCH + Duration::from_secs_f64(r.started_unix.max(0.0));
    let mut ser = V2DeflateSerializer::new();
    {
        let mut b = IntervalLogWriterBuilder::new();
        b.add_comment(&format!(
            "[Logged with ringload {}]",
            if r.config.version.is_empty() {
                "?"
            } else {
                &r.config.version
            }
        ))
        .add_comment("[Histogram values are in microseconds (Interval_Max in ms)]")
        .add_comment(&format!("[Targets: {}]", r.config.urls.join(" ")))
        .with_start_time(start)
        .with_base_time(start);
        b.begin_log_with(out, &mut ser)?;
    }
    writeln!(out, "{LEGEND}")?;
    // This builder only writes `#[MaxValueDivisor: 1000.000]` (a comment to Java's reader).
    let mut w = IntervalLogWriterBuilder::new()
        .with_max_value_divisor(1000.0)
        .begin_log_with(out, &mut ser)?;
    for (i, (offset, h)) in r.intervals.iter().enumerate() {
        let len = interval_length(r, i);
        w.write_histogram(
            h,
            Duration::from_secs_f64(offset.max(0.0)),
            Duration::from_secs_f64(len),
            None,
        )
        .map_err(|e| io::Error::other(e.to_string()))?;
    }
    Ok(())
}

/// How long interval `i` lasted: until the next one starts, else 1 s (cut at the window's end).
pub fn interval_length(r: &RunReport, i: usize) -> f64 {
    let start = r.intervals[i].0;
    let len = match r.intervals.get(i + 1) {
        Some((next, _)) => next - start,
        None => {
            let rest = r.duration_s - start;
            if rest > 0.0 && rest < 1.0 { rest } else { 1.0 }
        }
    };
    if len.is_finite() && len > 0.0 {
        len
    } else {
        1.0
    }
}
