//! A self-contained SVG of a run: (a) the percentile spectrum of corrected latency and service
//! time (x: 1/(1-p) on a log scale, as HdrHistogram's plotter draws it), and (b) latency over
//! time (p50, p99 and max per interval). No scripts, no external fonts.

use std::fmt::Write as _;

use hdrhistogram::Histogram;

use super::hgrm::TICKS_PER_HALF_DISTANCE;
use super::hlog::interval_length;
use super::model::RunReport;
use super::units::trim_num;

pub const SPECTRUM_TITLE: &str = "Latency by percentile";
pub const TIMELINE_TITLE: &str = "Latency over time";

const W: f64 = 900.0;
const CHART_H: f64 = 380.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 30.0;
const TOP: f64 = 50.0;
const BOTTOM: f64 = 60.0;
const HEADER: f64 = 56.0;

const RED: &str = "#d62728";
const BLUE: &str = "#1f77b4";
const GREEN: &str = "#2ca02c";
const ORANGE: &str = "#ff7f0e";

/// Renders both charts into one SVG document.
pub fn to_svg(r: &RunReport) -> String {
    let height = HEADER + 2.0 * CHART_H;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{height}\" \
         viewBox=\"0 0 {W} {height}\" font-family=\"sans-serif\" font-size=\"12\">"
    );
    let _ = writeln!(
        s,
        "<rect x=\"0\" y=\"0\" width=\"{W}\" height=\"{height}\" fill=\"#ffffff\"/>"
    );
    let c = &r.config;
    let mode = if c.mode.is_empty() || c.mode == "closed" {
        "closed loop".to_string()
    } else {
        format!("open loop, {}", c.mode)
    };
    let _ = writeln!(
        s,
        "<text x=\"{}\" y=\"24\" font-size=\"16\" font-weight=\"bold\">{}</text>",
        LEFT,
        esc(&format!("ringload: {}", c.urls.join(", ")))
    );
    let _ = writeln!(
        s,
        "<text x=\"{}\" y=\"42\" fill=\"#555555\">{}</text>",
        LEFT,
        esc(&format!(
            "{mode}; {} connections, {} threads; {} responses in {:.1}s, {:.1} req/s",
            c.connections,
            c.threads,
            r.responses,
            r.duration_s,
            r.rate()
        ))
    );
    spectrum_chart(&mut s, r, HEADER);
    timeline_chart(&mut s, r, HEADER + CHART_H);
    s.push_str("</svg>\n");
    s
}

/// The plot rectangle of a chart starting at `y0`: (x0, y0, width, height).
fn plot_area(y0: f64) -> (f64, f64, f64, f64) {
    (LEFT, y0 + TOP, W - LEFT - RIGHT, CHART_H - TOP - BOTTOM)
}

fn spectrum_points(h: &Histogram<u64>) -> Vec<(f64, f64)> {
    h.iter_quantiles(TICKS_PER_HALF_DISTANCE)
        .filter(|v| v.quantile_iterated_to() < 1.0)
        .map(|v| {
            let x = (1.0 / (1.0 - v.quantile_iterated_to())).log10();
            (x, v.value_iterated_to() as f64 / 1000.0)
        })
        .collect()
}

fn spectrum_chart(s: &mut String, r: &RunReport, y0: f64) {
    let lat = spectrum_points(&r.latency);
    let svc = spectrum_points(&r.service);
    let decades = lat
        .iter()
        .chain(&svc)
        .map(|p| p.0)
        .fold(5.0f64, f64::max)
        .ceil()
        .min(9.0);
    let ys: Vec<f64> = lat.iter().chain(&svc).map(|p| p.1).collect();
    let axis = YAxis::fit(&ys);
    let (px, py, pw, ph) = plot_area(y0);
    let sx = |x: f64| px + x / decades * pw;
    let sy = |y: f64| py + ph - axis.frac(y) * ph;
    title(s, SPECTRUM_TITLE, y0);
    // Grid and ticks.
    for i in 0..=decades as u32 {
        let x = sx(f64::from(i));
        let label = if i == 0 {
            "0%".to_string()
        } else {
            format!("{}%", trim_pct(100.0 * (1.0 - 10f64.powi(-(i as i32)))))
        };
        vline(s, x, py, ph, &label);
    }
    y_grid(s, &axis, px, pw, &sy);
    axes(
        s,
        (px, py, pw, ph),
        "Percentile (log scale of 1/(1-p))",
        axis.label(),
    );
    if lat.is_empty() && svc.is_empty() {
        no_data(s, px + pw / 2.0, py + ph / 2.0);
    }
    polyline(s, &lat, RED, &sx, &sy);
    polyline(s, &svc, BLUE, &sx, &sy);
    legend(
        s,
        px + 12.0,
        py + 8.0,
        &[("corrected latency", RED), ("service time", BLUE)],
    );
}

fn timeline_chart(s: &mut String, r: &RunReport, y0: f64) {
    let mut p50 = Vec::new();
    let mut p99 = Vec::new();
    let mut max = Vec::new();
    let mut tmax: f64 = 0.0;
    for (i, (t, h)) in r.intervals.iter().enumerate() {
        // Plot each interval at its end, like per-second tools do.
        let x = t + interval_length(r, i);
        tmax = tmax.max(x);
        if h.is_empty() {
            continue;
        }
        p50.push((x, h.value_at_quantile(0.5) as f64 / 1000.0));
        p99.push((x, h.value_at_quantile(0.99) as f64 / 1000.0));
        max.push((x, h.max() as f64 / 1000.0));
    }
    let tmax = if tmax > 0.0 {
        tmax
    } else {
        r.duration_s.max(1.0)
    };
    let (tstep, ttop) = nice(tmax);
    let ys: Vec<f64> = p50.iter().chain(&p99).chain(&max).map(|p| p.1).collect();
    let axis = YAxis::fit(&ys);
    let (px, py, pw, ph) = plot_area(y0);
    let sx = |x: f64| px + x / ttop * pw;
    let sy = |y: f64| py + ph - axis.frac(y) * ph;
    title(s, TIMELINE_TITLE, y0);
    let mut t = 0.0;
    while t <= ttop + tstep / 2.0 {
        vline(s, sx(t), py, ph, &trim_num(t));
        t += tstep;
    }
    y_grid(s, &axis, px, pw, &sy);
    axes(s, (px, py, pw, ph), "Time (s)", axis.label());
    if max.is_empty() {
        no_data(s, px + pw / 2.0, py + ph / 2.0);
    }
    polyline(s, &max, RED, &sx, &sy);
    polyline(s, &p99, ORANGE, &sx, &sy);
    polyline(s, &p50, GREEN, &sx, &sy);
    legend(
        s,
        px + 12.0,
        py + 8.0,
        &[("max", RED), ("p99", ORANGE), ("p50", GREEN)],
    );
}

/// A round axis step and top (1, 2 or 5 × 10^k) for values up to `v`.
fn nice(v: f64) -> (f64, f64) {
    let v = if v.is_finite() && v > 0.0 { v } else { 1.0 };
    let raw = v / 5.0;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|st| *st >= raw)
        .unwrap_or(10.0 * mag);
    (step, (v / step).ceil().max(1.0) * step)
}

fn trim_pct(p: f64) -> String {
    let s = format!("{p:.6}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

fn title(s: &mut String, t: &str, y0: f64) {
    let _ = writeln!(
        s,
        "<text x=\"{}\" y=\"{:.1}\" font-size=\"14\" font-weight=\"bold\">{}</text>",
        LEFT,
        y0 + 30.0,
        esc(t)
    );
}

fn vline(s: &mut String, x: f64, py: f64, ph: f64, label: &str) {
    let _ = writeln!(
        s,
        "<line x1=\"{x:.1}\" y1=\"{py:.1}\" x2=\"{x:.1}\" y2=\"{:.1}\" stroke=\"#e5e5e5\"/>\
         <text x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"middle\" fill=\"#333333\">{}</text>",
        py + ph,
        py + ph + 16.0,
        esc(label)
    );
}

fn y_grid(s: &mut String, axis: &YAxis, px: f64, pw: f64, sy: &dyn Fn(f64) -> f64) {
    for v in axis.ticks() {
        let y = sy(v);
        let _ = writeln!(
            s,
            "<line x1=\"{px:.1}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\" stroke=\"#e5e5e5\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\" fill=\"#333333\">{}</text>",
            px + pw,
            px - 6.0,
            y + 4.0,
            trim_num(v)
        );
    }
}

/// The latency axis: linear from 0, or logarithmic (decades) when the largest value is over 50
/// times the median one, so that one outlier does not flatten every other line.
enum YAxis {
    Linear {
        step: f64,
        top: f64,
    },
    /// log10 of the bottom and top, whole decades.
    Log {
        lo: f64,
        hi: f64,
    },
}

impl YAxis {
    fn fit(ys: &[f64]) -> YAxis {
        let mut pos: Vec<f64> = ys
            .iter()
            .copied()
            .filter(|y| *y > 0.0 && y.is_finite())
            .collect();
        pos.sort_by(f64::total_cmp);
        let max = pos.last().copied().unwrap_or(0.0);
        let median = pos.get(pos.len() / 2).copied().unwrap_or(0.0);
        if median > 0.0 && max / median > 50.0 {
            let lo = pos[0].max(0.001).log10().floor();
            let hi = max.log10().ceil().max(lo + 1.0);
            YAxis::Log { lo, hi }
        } else {
            let (step, top) = nice(max);
            YAxis::Linear { step, top }
        }
    }

    /// Where `v` sits, 0 (bottom) to 1 (top).
    fn frac(&self, v: f64) -> f64 {
        match *self {
            YAxis::Linear { top, .. } => v / top,
            YAxis::Log { lo, hi } => ((v.max(10f64.powf(lo)).log10() - lo) / (hi - lo)).min(1.0),
        }
    }

    fn ticks(&self) -> Vec<f64> {
        match *self {
            YAxis::Linear { step, top } => (0..=(top / step).round() as u32)
                .map(|i| f64::from(i) * step)
                .collect(),
            YAxis::Log { lo, hi } => {
                let mut t = Vec::new();
                for d in lo as i32..=hi as i32 {
                    let base = 10f64.powi(d);
                    t.push(base);
                    if hi - lo <= 3.0 && d < hi as i32 {
                        t.extend([2.0 * base, 5.0 * base]);
                    }
                }
                t
            }
        }
    }

    fn label(&self) -> &'static str {
        match self {
            YAxis::Linear { .. } => "Latency (ms)",
            YAxis::Log { .. } => "Latency (ms, log scale)",
        }
    }
}

fn axes(s: &mut String, (px, py, pw, ph): (f64, f64, f64, f64), xlabel: &str, ylabel: &str) {
    let _ = writeln!(
        s,
        "<rect x=\"{px:.1}\" y=\"{py:.1}\" width=\"{pw:.1}\" height=\"{ph:.1}\" fill=\"none\" \
         stroke=\"#333333\"/>"
    );
    let _ = writeln!(
        s,
        "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
        px + pw / 2.0,
        py + ph + 38.0,
        esc(xlabel)
    );
    let (lx, ly) = (px - 52.0, py + ph / 2.0);
    let _ = writeln!(
        s,
        "<text x=\"{lx:.1}\" y=\"{ly:.1}\" text-anchor=\"middle\" \
         transform=\"rotate(-90 {lx:.1} {ly:.1})\">{}</text>",
        esc(ylabel)
    );
}

fn polyline(
    s: &mut String,
    pts: &[(f64, f64)],
    color: &str,
    sx: &dyn Fn(f64) -> f64,
    sy: &dyn Fn(f64) -> f64,
) {
    if pts.is_empty() {
        return;
    }
    let mut d = String::new();
    for (x, y) in pts {
        let _ = write!(d, "{:.1},{:.1} ", sx(*x), sy(*y));
    }
    let _ = writeln!(
        s,
        "<polyline points=\"{}\" fill=\"none\" stroke=\"{color}\" stroke-width=\"2\" \
         stroke-linejoin=\"round\"/>",
        d.trim_end()
    );
    if pts.len() == 1 {
        let (x, y) = pts[0];
        let _ = writeln!(
            s,
            "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"{color}\"/>",
            sx(x),
            sy(y)
        );
    }
}

fn legend(s: &mut String, x: f64, y: f64, items: &[(&str, &str)]) {
    let w = 20.0 + items.iter().map(|(l, _)| l.len()).max().unwrap_or(0) as f64 * 7.0 + 20.0;
    let _ = writeln!(
        s,
        "<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{w:.1}\" height=\"{:.1}\" fill=\"#ffffff\" \
         fill-opacity=\"0.85\" stroke=\"#cccccc\"/>",
        items.len() as f64 * 18.0 + 8.0
    );
    for (i, (label, color)) in items.iter().enumerate() {
        let ly = y + 16.0 + i as f64 * 18.0;
        let _ = writeln!(
            s,
            "<line x1=\"{:.1}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\" stroke=\"{color}\" \
             stroke-width=\"3\"/><text x=\"{:.1}\" y=\"{:.1}\">{}</text>",
            x + 8.0,
            ly - 4.0,
            x + 26.0,
            ly - 4.0,
            x + 32.0,
            ly,
            esc(label)
        );
    }
}

fn no_data(s: &mut String, x: f64, y: f64) {
    let _ = writeln!(
        s,
        "<text x=\"{x:.1}\" y=\"{y:.1}\" text-anchor=\"middle\" fill=\"#999999\">no data</text>"
    );
}

/// XML text escaping.
fn esc(t: &str) -> String {
    let mut o = String::with_capacity(t.len());
    for c in t.chars() {
        match c {
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '&' => o.push_str("&amp;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&apos;"),
            c if c.is_control() => {}
            c => o.push(c),
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nice_axes() {
        assert_eq!(nice(1000.0), (200.0, 1000.0));
        assert_eq!(nice(7.3), (2.0, 8.0));
        assert_eq!(nice(0.0), (0.2, 1.0));
        assert_eq!(trim_pct(99.9), "99.9");
        assert_eq!(esc("a<b&\"c\""), "a&lt;b&amp;&quot;c&quot;");
    }
}
