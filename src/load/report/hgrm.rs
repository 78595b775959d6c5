//! The HdrHistogram percentile distribution (`.hgrm`), CLASSIC layout, as `hdr_percentiles_print`
//! writes it with 5 ticks per half distance and a value scale of 1000 (µs recorded, ms
//! printed). HdrHistogram's `plotFiles.html` reads it: it skips `#` lines and keeps the rows that
//! split into exactly 4 fields.

use std::io::{self, Write};

use hdrhistogram::Histogram;

/// Ticks per half distance to 100 %: the tick sequence every plotter input must share.
pub const TICKS_PER_HALF_DISTANCE: u32 = 5;

/// µs recorded, ms printed.
const SCALE: f64 = 1000.0;

/// Writes `h` (µs) as a CLASSIC percentile distribution in ms.
///
/// Footer `Buckets` is the crate's `buckets()` (bucket count covering the highest trackable
/// value); `SubBuckets` is the sub-bucket count, `2^ceil(log2(2 * 10^sigfig))` (2048 at 3
/// digits), which is what the C and Java footers print. The crate does not expose it, and its
/// `distinct_values()` is the length of the whole counts array, not the sub-bucket count.
pub fn write_hgrm(h: &Histogram<u64>, out: &mut impl Write) -> io::Result<()> {
    writeln!(
        out,
        "{:>12} {:>12} {:>12} {:>12}\n",
        "Value", "Percentile", "TotalCount", "1/(1-Percentile)"
    )?;
    let mut total = 0u64;
    for v in h.iter_quantiles(TICKS_PER_HALF_DISTANCE) {
        total += v.count_since_last_iteration();
        let q = v.quantile_iterated_to();
        let value = v.value_iterated_to() as f64 / SCALE;
        if q >= 1.0 {
            writeln!(out, "{value:12.3} {q:12.6} {total:12} {:>12}", "inf")?;
        } else {
            writeln!(
                out,
                "{value:12.3} {q:12.6} {total:12} {:12.2}",
                1.0 / (1.0 - q)
            )?;
        }
    }
    writeln!(
        out,
        "#[Mean    = {:12.3}, StdDeviation   = {:12.3}]",
        h.mean() / SCALE,
        h.stdev() / SCALE
    )?;
    writeln!(
        out,
        "#[Max     = {:12.3}, Total count    = {:12}]",
        h.max() as f64 / SCALE,
        h.len()
    )?;
    writeln!(
        out,
        "#[Buckets = {:12}, SubBuckets     = {:12}]",
        h.buckets(),
        sub_bucket_count(h.sigfig())
    )
}

/// The sub-bucket count HdrHistogram derives from the significant digits.
pub fn sub_bucket_count(sigfig: u8) -> u64 {
    let single_unit = 2 * 10u64.pow(u32::from(sigfig));
    single_unit.next_power_of_two()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::report::model::new_histogram;

    #[test]
    fn footer_sizes() {
        assert_eq!(sub_bucket_count(3), 2048);
        assert_eq!(sub_bucket_count(2), 256);
        assert_eq!(sub_bucket_count(1), 32);
    }

    #[test]
    fn empty_histogram_has_header_and_footer() {
        let h = new_histogram();
        let mut out = Vec::new();
        write_hgrm(&h, &mut out).unwrap();
        let s = String::from_utf8(out).unwrap();
        assert!(s.starts_with("       Value   Percentile   TotalCount 1/(1-Percentile)\n\n"));
        assert!(s.contains("Total count    =            0]"));
    }

    #[test]
    fn single_value() {
        let mut h = new_histogram();
        h.record(1500).unwrap();
        let mut out = Vec::new();
        write_hgrm(&h, &mut out).unwrap();
        let s = String::from_utf8(out).unwrap();
        let rows: Vec<&str> = s.lines().skip(2).filter(|l| !l.starts_with('#')).collect();
        assert!(!rows.is_empty());
        let last: Vec<&str> = rows.last().unwrap().split_whitespace().collect();
        assert_eq!(last, ["1.500", "1.000000", "1", "inf"]);
    }
}
