//! Open-loop schedules: when each request is *intended* to go out, independent of responses
//! (the coordinated-omission-correct plan, notes §3).
//!
//! **Time origin.** Every offset here is measured from the start of the *run*: t = 0 is the first
//! instant of the warm-up (with no warm-up, the start of the measured window). Step and ramp
//! schedules count their EVERY and OVER from that same origin.
//!
//! **Which request is due when.** Let N(t) be the schedule's cumulative count, the integral of its
//! rate from 0 to t. Global request k (k = 0, 1, 2, ...) is due at the first t where N(t) >= k: so
//! a constant rate R gives k / R exactly (request 0 at t = 0), and a window [a, b) holds
//! ceil(N(b)) - ceil(N(a)) requests, within 1 of the integral. Connection j of `conns` takes
//! k = j, j + conns, j + 2 conns, ..., so the union over all connections is exactly the global
//! plan. Poisson is the exception: each connection is its own Poisson process of rate R / conns
//! (their superposition is a Poisson process of rate R), its first request one random gap after 0.
//!
//! A rate that falls to 0 for good (a ramp to 0, a step schedule stepping down to 0) ends the
//! plan: [`Timetable::next`] then returns [`NEVER`].

use std::time::Duration;

use super::plan::Schedule;
use super::rng::Rng;

/// Returned by [`Timetable::next`] when the schedule sends nothing more, ever: 100 years, so that
/// `Instant + NEVER` cannot overflow and no run reaches it.
pub const NEVER: Duration = Duration::from_secs(100 * 365 * 86_400);

/// One connection's intended send offsets, in order. Holds no heap memory; `next` is O(1)
/// (amortised over step boundaries for a step schedule).
#[derive(Debug, Clone)]
pub struct Timetable {
    kind: Kind,
}

#[derive(Debug, Clone)]
enum Kind {
    Never,
    /// Global index `k`, advanced by `stride` each call.
    Constant {
        rate: f64,
        k: u64,
        stride: u64,
    },
    Step {
        start: f64,
        step: f64,
        every: f64,
        /// Segments with a positive rate (u64::MAX: all of them).
        positive: u64,
        /// Current segment, for the amortised search.
        seg: u64,
        k: u64,
        stride: u64,
    },
    Ramp {
        from: f64,
        to: f64,
        over: f64,
        k: u64,
        stride: u64,
    },
    Poisson {
        rng: Rng,
        /// This connection's rate (R / conns).
        rate: f64,
        /// Seconds since the start of the last offset handed out.
        t: f64,
    },
}

fn ok_rate(r: f64) -> bool {
    r.is_finite() && r > 0.0
}

/// Seconds to a Duration, rounded to the nanosecond; NaN or [`NEVER`] and beyond is [`NEVER`].
fn secs(x: f64) -> Duration {
    if x.is_nan() {
        return NEVER;
    }
    if x <= 0.0 {
        return Duration::ZERO;
    }
    if x >= NEVER.as_secs_f64() {
        return NEVER;
    }
    Duration::from_nanos((x * 1e9).round() as u64)
}

impl Timetable {
    /// The timetable of connection `conn` (0-based) of `conns` connections.
    pub fn new(schedule: &Schedule, conn: usize, conns: usize) -> Timetable {
        let conns = conns.max(1) as u64;
        let k = conn as u64 % conns;
        let stride = conns;
        let kind = match *schedule {
            Schedule::Constant { rate } if ok_rate(rate) => Kind::Constant { rate, k, stride },
            Schedule::Step { start, step, every } if every > Duration::ZERO => {
                let start = start.max(0.0);
                let positive = if step >= 0.0 {
                    if start > 0.0 || step > 0.0 {
                        u64::MAX
                    } else {
                        0
                    }
                } else {
                    (start / -step).ceil() as u64
                };
                if positive == 0 || !start.is_finite() || !step.is_finite() {
                    Kind::Never
                } else {
                    Kind::Step {
                        start,
                        step,
                        every: every.as_secs_f64(),
                        positive,
                        seg: 0,
                        k,
                        stride,
                    }
                }
            }
            Schedule::Ramp { from, to, over } => {
                let (from, to) = (from.max(0.0), to.max(0.0));
                if !from.is_finite() || !to.is_finite() || (from == 0.0 && to == 0.0) {
                    Kind::Never
                } else if over.is_zero() {
                    // No ramp at all: TO from the start.
                    Kind::Constant {
                        rate: to,
                        k,
                        stride,
                    }
                } else {
                    Kind::Ramp {
                        from,
                        to,
                        over: over.as_secs_f64(),
                        k,
                        stride,
                    }
                }
            }
            Schedule::Poisson { rate, seed } if ok_rate(rate) => Kind::Poisson {
                rng: Rng::for_stream(seed, conn as u64),
                rate: rate / conns as f64,
                t: 0.0,
            },
            _ => Kind::Never,
        };
        Timetable { kind }
    }

    /// The next request's intended offset from the start of the run; [`NEVER`] once the schedule
    /// has ended. (Named as the engine calls it; not an `Iterator`, as it never returns None.)
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Duration {
        match &mut self.kind {
            Kind::Never => NEVER,
            Kind::Constant { rate, k, stride } => {
                let c = *k;
                *k = k.saturating_add(*stride);
                secs(c as f64 / *rate)
            }
            Kind::Step {
                start,
                step,
                every,
                positive,
                seg,
                k,
                stride,
            } => {
                let c = *k as f64;
                *k = k.saturating_add(*stride);
                if c == 0.0 {
                    return Duration::ZERO;
                }
                // Advance to the segment where the count reaches c.
                while step_cum(*start, *step, *every, *positive, *seg + 1) < c {
                    *seg += 1;
                    if *seg >= *positive {
                        self.kind = Kind::Never;
                        return NEVER;
                    }
                }
                let rate = (*start + *seg as f64 * *step).max(0.0);
                if rate <= 0.0 {
                    self.kind = Kind::Never;
                    return NEVER;
                }
                let base = step_cum(*start, *step, *every, *positive, *seg);
                secs(*seg as f64 * *every + (c - base) / rate)
            }
            Kind::Ramp {
                from,
                to,
                over,
                k,
                stride,
            } => {
                let c = *k as f64;
                *k = k.saturating_add(*stride);
                match ramp_invert(*from, *to, *over, c) {
                    Some(t) => secs(t),
                    None => {
                        self.kind = Kind::Never;
                        NEVER
                    }
                }
            }
            Kind::Poisson { rng, rate, t } => {
                *t += rng.exp(*rate);
                secs(*t)
            }
        }
    }
}

/// Cumulative count of a step schedule at the start of segment `i` (segments of `every` s;
/// segment m runs at max(0, start + m * step); only the first `positive` are above 0).
fn step_cum(start: f64, step: f64, every: f64, positive: u64, i: u64) -> f64 {
    let n = i.min(positive) as f64;
    every * (n * start + step * n * (n - 1.0) / 2.0)
}

/// The first t with N(t) >= c for a ramp; None when the count never gets there.
fn ramp_invert(from: f64, to: f64, over: f64, c: f64) -> Option<f64> {
    if c <= 0.0 {
        return Some(0.0);
    }
    let n_over = (from + to) / 2.0 * over;
    if c <= n_over {
        // N(t) = from t + a t², a = (to - from) / (2 over); the stable root of a t² + b t - c.
        let a = (to - from) / (2.0 * over);
        let disc = (from * from + 4.0 * a * c).max(0.0);
        let t = 2.0 * c / (from + disc.sqrt());
        Some(t.min(over))
    } else if to > 0.0 {
        Some(over + (c - n_over) / to)
    } else {
        None
    }
}

/// The schedule's rate (req/s) at offset `t`.
pub fn rate_at(schedule: &Schedule, t: Duration) -> f64 {
    let t = t.as_secs_f64();
    match *schedule {
        Schedule::Constant { rate } | Schedule::Poisson { rate, .. } => rate.max(0.0),
        Schedule::Step { start, step, every } => {
            if every.is_zero() {
                return start.max(0.0);
            }
            let i = (t / every.as_secs_f64()).floor();
            (start + i * step).max(0.0)
        }
        Schedule::Ramp { from, to, over } => {
            let over = over.as_secs_f64();
            if t >= over {
                to.max(0.0)
            } else {
                (from + (to - from) * t / over).max(0.0)
            }
        }
    }
}

/// The schedule's cumulative count N(t): requests due in [0, t] (for Poisson, the expectation).
pub fn cumulative(schedule: &Schedule, t: Duration) -> f64 {
    let ts = t.as_secs_f64();
    match *schedule {
        Schedule::Constant { rate } | Schedule::Poisson { rate, .. } => rate.max(0.0) * ts,
        Schedule::Step { start, step, every } => {
            if every.is_zero() {
                return start.max(0.0) * ts;
            }
            let e = every.as_secs_f64();
            let start = start.max(0.0);
            let positive = if step >= 0.0 {
                u64::MAX
            } else {
                (start / -step).ceil() as u64
            };
            let i = (ts / e).floor();
            let seg = i as u64;
            let rate = if seg >= positive {
                0.0
            } else {
                (start + i * step).max(0.0)
            };
            step_cum(start, step, e, positive, seg) + rate * (ts - i * e)
        }
        Schedule::Ramp { from, to, over } => {
            let (from, to) = (from.max(0.0), to.max(0.0));
            let o = over.as_secs_f64();
            if ts >= o {
                (from + to) / 2.0 * o + to * (ts - o)
            } else {
                from * ts + (to - from) / (2.0 * o) * ts * ts
            }
        }
    }
}

/// Mean rate (req/s) over the first `over` of the run, for reports; the starting rate when
/// `over` is zero.
pub fn mean_rate(schedule: &Schedule, over: Duration) -> f64 {
    if over.is_zero() {
        return rate_at(schedule, Duration::ZERO);
    }
    cumulative(schedule, over) / over.as_secs_f64()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn union(s: &Schedule, conns: usize, until: Duration) -> Vec<Duration> {
        let mut all = Vec::new();
        for c in 0..conns {
            let mut tt = Timetable::new(s, c, conns);
            let mut prev = Duration::ZERO;
            loop {
                let t = tt.next();
                assert!(t >= prev, "conn {c}: {t:?} after {prev:?}");
                prev = t;
                if t >= until {
                    break;
                }
                all.push(t);
            }
        }
        all.sort();
        all
    }

    fn count_in(v: &[Duration], a: Duration, b: Duration) -> usize {
        v.iter().filter(|&&t| t >= a && t < b).count()
    }

    #[test]
    fn constant_single_connection_exact() {
        let s = Schedule::Constant { rate: 1000.0 };
        let mut tt = Timetable::new(&s, 0, 1);
        for k in 0..10_000u64 {
            assert_eq!(tt.next(), Duration::from_micros(k * 1000));
        }
        let mut tt = Timetable::new(&Schedule::Constant { rate: 3.0 }, 0, 1);
        assert_eq!(tt.next(), Duration::ZERO);
        assert_eq!(tt.next(), Duration::from_nanos(333_333_333));
        assert_eq!(tt.next(), Duration::from_nanos(666_666_667));
        assert_eq!(tt.next(), Duration::from_secs(1));
    }

    #[test]
    fn constant_union_over_one_second() {
        for (rate, conns) in [(1000u64, 7usize), (1000, 1), (250, 50), (7, 3)] {
            let s = Schedule::Constant { rate: rate as f64 };
            let all = union(&s, conns, Duration::from_secs(1));
            assert_eq!(all.len() as u64, rate, "rate {rate} conns {conns}");
            let gap = 1e9 / rate as f64;
            for (i, w) in all.windows(2).enumerate() {
                let d = (w[1] - w[0]).as_nanos() as f64;
                assert!((d - gap).abs() <= 1.0, "gap {i}: {d} ns vs {gap}");
            }
            // Connection j's own spacing is conns / R.
            let mut tt = Timetable::new(&s, 1 % conns, conns);
            let a = tt.next();
            let b = tt.next();
            let want = conns as f64 * gap;
            assert!(((b - a).as_nanos() as f64 - want).abs() <= 1.0);
        }
    }

    fn check_windows(s: &Schedule, conns: usize, total: Duration, window: Duration) {
        let all = union(s, conns, total);
        let mut a = Duration::ZERO;
        while a < total {
            let b = (a + window).min(total);
            let got = count_in(&all, a, b) as f64;
            let want = cumulative(s, b) - cumulative(s, a);
            assert!(
                (got - want).abs() <= 1.0 + 1e-9,
                "{s:?} [{a:?},{b:?}): {got} vs {want}"
            );
            a = b;
        }
        let want = cumulative(s, total);
        assert!((all.len() as f64 - want).abs() <= 1.0 + 1e-9);
    }

    #[test]
    fn step_counts_match_integral() {
        let s = Schedule::Step {
            start: 100.0,
            step: 50.0,
            every: Duration::from_secs(1),
        };
        for conns in [1, 4, 33] {
            check_windows(
                &s,
                conns,
                Duration::from_secs(6),
                Duration::from_millis(250),
            );
            check_windows(
                &s,
                conns,
                Duration::from_secs(6),
                Duration::from_millis(1000),
            );
            check_windows(
                &s,
                conns,
                Duration::from_secs(6),
                Duration::from_millis(1300),
            );
        }
        assert_eq!(cumulative(&s, Duration::from_secs(2)), 250.0);
        assert_eq!(mean_rate(&s, Duration::from_secs(2)), 125.0);
        // Starting from 0: nothing but request 0 in the first step.
        let z = Schedule::Step {
            start: 0.0,
            step: 10.0,
            every: Duration::from_millis(500),
        };
        check_windows(&z, 3, Duration::from_secs(5), Duration::from_millis(100));
        // Stepping down to 0 ends the plan.
        let down = Schedule::Step {
            start: 30.0,
            step: -10.0,
            every: Duration::from_secs(1),
        };
        check_windows(&down, 2, Duration::from_secs(5), Duration::from_millis(500));
        let mut tt = Timetable::new(&down, 0, 1);
        let n = (0..100).take_while(|_| tt.next() != NEVER).count();
        assert_eq!(n, 61); // k = 0..=60: N reaches 60 at t = 3 s.
    }

    #[test]
    fn ramp_counts_match_integral() {
        let up = Schedule::Ramp {
            from: 0.0,
            to: 1000.0,
            over: Duration::from_secs(2),
        };
        let mixed = Schedule::Ramp {
            from: 200.0,
            to: 900.0,
            over: Duration::from_millis(1500),
        };
        let down = Schedule::Ramp {
            from: 800.0,
            to: 100.0,
            over: Duration::from_secs(1),
        };
        for s in [&up, &mixed, &down] {
            for conns in [1, 5, 64] {
                check_windows(s, conns, Duration::from_secs(3), Duration::from_millis(100));
                check_windows(s, conns, Duration::from_secs(3), Duration::from_millis(370));
            }
        }
        assert_eq!(cumulative(&up, Duration::from_secs(2)), 1000.0);
        assert_eq!(cumulative(&up, Duration::from_secs(3)), 2000.0);
        assert_eq!(mean_rate(&up, Duration::from_secs(2)), 500.0);
        // Exact inversion: from 0, N(t) = 250 t², so request k is at sqrt(k / 250).
        let mut tt = Timetable::new(&up, 0, 1);
        for k in 0..1000u64 {
            let want = (k as f64 / 250.0).sqrt();
            let got = tt.next().as_secs_f64();
            assert!((got - want).abs() < 2e-9, "k {k}: {got} vs {want}");
        }
        // Ramp to zero ends.
        let to_zero = Schedule::Ramp {
            from: 100.0,
            to: 0.0,
            over: Duration::from_secs(1),
        };
        let mut tt = Timetable::new(&to_zero, 0, 1);
        let n = (0..1000).take_while(|_| tt.next() != NEVER).count();
        assert_eq!(n, 51);
    }

    #[test]
    fn poisson_mean_and_reproducibility() {
        let s = Schedule::Poisson {
            rate: 1000.0,
            seed: 1,
        };
        // One connection, 10,000 draws: the mean rate within 5%.
        let mut tt = Timetable::new(&s, 0, 1);
        let mut last = Duration::ZERO;
        for _ in 0..10_000 {
            let t = tt.next();
            assert!(t >= last);
            last = t;
        }
        let rate = 10_000.0 / last.as_secs_f64();
        assert!((rate - 1000.0).abs() < 50.0, "rate {rate}");
        // Across 10 connections, the union is at rate R.
        let all = union(&s, 10, Duration::from_secs(10));
        let rate = all.len() as f64 / 10.0;
        assert!((rate - 1000.0).abs() < 50.0, "union rate {rate}");

        let seq = |seed: u64, conn: usize| -> Vec<Duration> {
            let mut tt = Timetable::new(&Schedule::Poisson { rate: 100.0, seed }, conn, 4);
            (0..100).map(|_| tt.next()).collect()
        };
        assert_eq!(seq(1, 0), seq(1, 0));
        assert_eq!(seq(9, 3), seq(9, 3));
        assert_ne!(seq(1, 0), seq(2, 0));
        assert_ne!(seq(1, 0), seq(1, 1));
    }

    #[test]
    fn degenerate_schedules_never_send() {
        for s in [
            Schedule::Constant { rate: 0.0 },
            Schedule::Constant { rate: f64::NAN },
            Schedule::Poisson { rate: 0.0, seed: 1 },
            Schedule::Ramp {
                from: 0.0,
                to: 0.0,
                over: Duration::from_secs(1),
            },
            Schedule::Step {
                start: 0.0,
                step: 0.0,
                every: Duration::from_secs(1),
            },
        ] {
            assert_eq!(Timetable::new(&s, 0, 1).next(), NEVER, "{s:?}");
        }
        assert_eq!(
            mean_rate(&Schedule::Constant { rate: 5.0 }, Duration::ZERO),
            5.0
        );
    }
}
