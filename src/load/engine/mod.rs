//! The load engine: one pinned thread per core, each with its own ring (the proxy's I/O seam)
//! and its share of the connections; per-thread recorders merged into one `RunReport`.
//! The main thread only starts, watches (progress line, Ctrl-C) and merges.

mod conn;
mod last_head;
mod recorder;
mod requests;
pub(crate) mod wire;

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use crate::balance::CachePadded;
use crate::io::{self, Backend, Epoll, Ring, Uring};
use crate::load::plan::{Plan, Schedule, Stop};
use crate::load::report::model::{Cost, RunConfig, RunReport, Verdict, new_histogram};
use crate::load::schedule::{Timetable, cumulative};
use recorder::Recorder;
use requests::{Groups, Requests};

pub use recorder::micros;

/// What the threads share: the clock origin, the stop, the -n budget, progress counters.
pub struct Shared {
    /// Origin of every timetable; the warm-up starts here.
    pub t0: Instant,
    pub window_start: Instant,
    /// Duration runs stop here; `-n` runs when the budget is spent.
    pub stop_at: Option<Instant>,
    /// Set on Ctrl-C or when the `-n` budget is spent; holds the stop instant in µs after t0.
    stop_us: AtomicU64,
    stopped: CachePadded<AtomicBool>,
    budget: Option<AtomicI64>,
    drain: Duration,
    /// Progress counters, written by every thread: each on its own cache line, away from
    /// the `stopped` flag every loop reads.
    pub responses: CachePadded<AtomicU64>,
    pub errors: CachePadded<AtomicU64>,
    /// Successful connects so far (a target that refuses every one ends the run early).
    pub connected: AtomicU64,
}

impl Shared {
    fn stop_now(&self) {
        // The instant goes first, so a thread that sees `stopped` also sees when.
        let at = self.t0.elapsed().as_micros().max(1) as u64;
        let _ = self
            .stop_us
            .compare_exchange(0, at, Ordering::SeqCst, Ordering::SeqCst);
        self.stopped.store(true, Ordering::SeqCst);
    }

    /// When the stop happened (or will, for a duration run), once it is known.
    fn stop_instant(&self) -> Option<Instant> {
        if self.stopped.load(Ordering::Relaxed) {
            let at = self.t0 + Duration::from_micros(self.stop_us.load(Ordering::SeqCst));
            return Some(self.stop_at.map_or(at, |s| s.min(at)));
        }
        self.stop_at
    }
}

/// One thread's view: the plan, the shared state, its recorder.
pub struct ThreadCtx {
    pub plan: Arc<Plan>,
    pub shared: Arc<Shared>,
    pub rec: RefCell<Recorder>,
    pub requests: Requests,
    pub groups: Groups,
    pub open_loop: bool,
    /// The run's one TLS client configuration (its session cache lets reconnects resume);
    /// None when no target is `https://`.
    pub tls: Option<Arc<rustls::ClientConfig>>,
}

impl ThreadCtx {
    /// No new requests from now on.
    fn stopped(&self, now: Instant) -> bool {
        self.shared.stopped.load(Ordering::Relaxed) || self.shared.stop_at.is_some_and(|s| now >= s)
    }

    /// After the stop, in-flight requests may run until this deadline.
    fn drain_deadline(&self) -> Option<Instant> {
        self.shared.stop_instant().map(|s| s + self.shared.drain)
    }

    /// Takes one request from the `-n` budget (requests in the warm-up are free).
    fn take_budget(&self, now: Instant) -> bool {
        let Some(b) = &self.shared.budget else {
            return true;
        };
        if now < self.shared.window_start {
            return true;
        }
        if b.fetch_sub(1, Ordering::Relaxed) > 0 {
            return true;
        }
        self.shared.stop_now();
        false
    }

    /// An error not tied to one request (connect failures), counted inside the window.
    fn count_error(&self, kind: &str) {
        if Instant::now() >= self.shared.window_start {
            self.rec.borrow_mut().error(kind);
            self.shared.errors.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Runs the plan and returns the merged report. `progress` gets called about once a second
/// with (elapsed in the window, responses, errors) while the run goes on.
pub fn run(plan: Plan, mut progress: impl FnMut(f64, u64, u64)) -> Result<RunReport, String> {
    let (kind, _) =
        io::select(plan.io).map_err(|why| format!("io_uring is not available: {why}"))?;
    let plan = Arc::new(plan);
    let tls = match plan.targets.iter().any(|t| t.tls) {
        true => Some(crate::load::tls::client_config(plan.insecure)?),
        false => None,
    };
    let threads = plan.threads.clamp(1, plan.connections.max(1));
    let t0 = Instant::now() + Duration::from_millis(20);
    let window_start = t0 + plan.warmup;
    let shared = Arc::new(Shared {
        t0,
        window_start,
        stop_at: match plan.stop {
            Stop::Duration(d) => Some(window_start + d),
            Stop::Requests(_) => None,
        },
        stop_us: AtomicU64::new(0),
        stopped: CachePadded(AtomicBool::new(false)),
        budget: match plan.stop {
            Stop::Requests(n) => Some(AtomicI64::new(n as i64)),
            Stop::Duration(_) => None,
        },
        drain: plan.drain,
        responses: CachePadded(AtomicU64::new(0)),
        errors: CachePadded(AtomicU64::new(0)),
        connected: AtomicU64::new(0),
    });
    let groups = Groups::new(&plan.targets);
    let assignment = groups.assign(plan.connections);
    let cores = core_affinity::get_core_ids().unwrap_or_default();
    let mut usage = [(0.0, 0.0, 0u64); 2];
    let mut handles = Vec::with_capacity(threads);
    for t in 0..threads {
        // Connection j of the run goes to thread j % threads.
        let conns: Vec<(usize, usize)> = (t..plan.connections)
            .step_by(threads)
            .map(|j| (j, assignment[j]))
            .collect();
        let (plan, shared, tls) = (plan.clone(), shared.clone(), tls.clone());
        let core = cores.get(t % cores.len().max(1)).copied();
        let h = std::thread::Builder::new()
            .name(format!("ringload-{t}"))
            .spawn(move || {
                if let Some(core) = core {
                    core_affinity::set_for_current(core);
                }
                match kind {
                    io::Kind::Uring => {
                        Uring::block_on(thread_main::<Uring>(plan, shared, tls, conns))
                    }
                    io::Kind::Ring => Ring::block_on(thread_main::<Ring>(plan, shared, tls, conns)),
                    io::Kind::Epoll => {
                        Epoll::block_on(thread_main::<Epoll>(plan, shared, tls, conns))
                    }
                }
            })
            .map_err(|e| format!("could not start a generator thread: {e}"))?;
        handles.push(h);
    }
    // A target that refuses every connection for this long ends the run (it would never end
    // in -n mode otherwise).
    let give_up = (plan.connect_timeout * 2).max(Duration::from_secs(2));
    watch(&shared, &handles, give_up, &mut usage, &mut progress);
    let mut recs = Vec::with_capacity(threads);
    for h in handles {
        recs.push(
            h.join()
                .map_err(|_| "a generator thread panicked".to_string())?,
        );
    }
    if usage[1].0 == 0.0 {
        usage[1] = rusage();
    }
    Ok(merge(
        &plan, &shared, recs, usage[0], usage[1], threads, kind,
    ))
}

/// Waits for the threads, calling `progress` each second; Ctrl-C stops the run early (the
/// report still comes out).
fn watch(
    shared: &Shared,
    handles: &[std::thread::JoinHandle<Recorder>],
    give_up: Duration,
    usage: &mut [(f64, f64, u64); 2],
    progress: &mut impl FnMut(f64, u64, u64),
) {
    // The generator's own cost is taken over the measured window only: resource usage is
    // sampled when the window opens and at the stop (warm-up and drain excluded).
    let mut sampled = [false; 2];
    let mut next = Instant::now() + Duration::from_secs(1);
    while handles.iter().any(|h| !h.is_finished()) {
        if INTERRUPTED.load(Ordering::Relaxed)
            || (shared.connected.load(Ordering::Relaxed) == 0 && shared.t0.elapsed() > give_up)
        {
            shared.stop_now();
        }
        std::thread::sleep(Duration::from_millis(5));
        let now = Instant::now();
        if !sampled[0] && now >= shared.window_start {
            usage[0] = rusage();
            sampled[0] = true;
        }
        if sampled[0] && !sampled[1] && shared.stop_instant().is_some_and(|s| now >= s) {
            usage[1] = rusage();
            sampled[1] = true;
        }
        if now >= next && now > shared.window_start {
            next += Duration::from_secs(1);
            let s = now.duration_since(shared.window_start).as_secs_f64();
            progress(
                s,
                shared.responses.load(Ordering::Relaxed),
                shared.errors.load(Ordering::Relaxed),
            );
        }
    }
}

/// Set by the SIGINT handler the CLI installs.
pub static INTERRUPTED: AtomicBool = AtomicBool::new(false);

async fn thread_main<B: Backend>(
    plan: Arc<Plan>,
    shared: Arc<Shared>,
    tls: Option<Arc<rustls::ClientConfig>>,
    conns: Vec<(usize, usize)>,
) -> Recorder {
    let open_loop = plan.rate.is_some();
    let ctx = Rc::new(ThreadCtx {
        requests: Requests::render(&plan),
        groups: Groups::new(&plan.targets),
        rec: RefCell::new(Recorder::new(shared.window_start)),
        open_loop,
        tls,
        plan: plan.clone(),
        shared: shared.clone(),
    });
    B::sleep_until(shared.t0).await;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<()>(conns.len().max(1));
    for &(j, group) in &conns {
        let timetable = plan
            .rate
            .as_ref()
            .map(|s| Timetable::new(s, j, plan.connections));
        let (ctx, tx) = (ctx.clone(), tx.clone());
        B::spawn(async move {
            conn::run::<B>(ctx, group, timetable).await;
            let _ = tx.send(()).await;
        });
    }
    drop(tx);
    while rx.recv().await.is_some() {}
    let mut rec = ctx.rec.borrow_mut();
    let mut out = Recorder::new(shared.window_start);
    std::mem::swap(&mut out, &mut rec);
    out.window_end = shared.stop_instant();
    out
}

fn rusage() -> (f64, f64, u64) {
    // SAFETY: getrusage fills the struct.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    (tv(u.ru_utime), tv(u.ru_stime), u.ru_maxrss as u64)
}

fn merge(
    plan: &Plan,
    shared: &Shared,
    recs: Vec<Recorder>,
    u0: (f64, f64, u64),
    u1: (f64, f64, u64),
    threads: usize,
    kind: io::Kind,
) -> RunReport {
    let end = shared.stop_instant().unwrap_or_else(Instant::now);
    let duration_s = end
        .saturating_duration_since(shared.window_start)
        .as_secs_f64();
    let mut r = RunReport {
        config: RunConfig {
            urls: plan.targets.iter().map(|t| t.url.clone()).collect(),
            method: plan.method.clone(),
            connections: plan.connections,
            threads,
            pipeline: plan.pipeline,
            mode: match &plan.rate {
                None => "closed".to_string(),
                Some(s) => schedule_name(s),
            },
            target_rate: plan
                .rate
                .as_ref()
                .map_or(0.0, |s| window_rate(s, plan.warmup, duration_s)),
            io: kind.name().to_string(),
            version: env!("CARGO_PKG_VERSION").to_string(),
        },
        started_unix: SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0)
            - shared.window_start.elapsed().as_secs_f64(),
        duration_s,
        responses: 0,
        bytes_read: 0,
        bytes_written: 0,
        latency: new_histogram(),
        service: new_histogram(),
        connect: new_histogram(),
        ttfb: new_histogram(),
        send_lag: new_histogram(),
        status: Default::default(),
        errors: Default::default(),
        conns: Default::default(),
        tally: Default::default(),
        in_flight_at_stop: 0,
        drained: 0,
        abandoned: 0,
        failed_in_drain: 0,
        intervals: Vec::new(),
        cost: Cost::default(),
        verdict: Verdict::default(),
    };
    for rec in recs {
        let _ = r.latency.add(&rec.latency);
        let _ = r.service.add(&rec.service);
        let _ = r.connect.add(&rec.connect);
        let _ = r.ttfb.add(&rec.ttfb);
        let _ = r.send_lag.add(&rec.send_lag);
        for (code, &n) in rec
            .status_counts
            .iter()
            .enumerate()
            .filter(|(_, n)| **n > 0)
        {
            *r.status.entry(code as u16).or_insert(0) += n;
        }
        for (k, v) in rec.errors {
            *r.errors.entry(k).or_insert(0) += v;
        }
        for (k, v) in rec.tally {
            *r.tally
                .entry(String::from_utf8_lossy(&k).into_owned())
                .or_insert(0) += v;
        }
        r.responses += rec.responses;
        r.bytes_read += rec.bytes_read;
        r.bytes_written += rec.bytes_written;
        r.conns.opened += rec.conns.opened;
        r.conns.reused += rec.conns.reused;
        r.conns.closed_by_server += rec.conns.closed_by_server;
        r.drained += rec.drained;
        r.abandoned += rec.abandoned;
        r.failed_in_drain += rec.failed_in_drain;
        for (i, h) in rec.intervals.iter().enumerate() {
            while r.intervals.len() <= i {
                r.intervals
                    .push((r.intervals.len() as f64, recorder::interval_histogram()));
            }
            let _ = r.intervals[i].1.add(h);
        }
    }
    r.in_flight_at_stop = r.drained + r.abandoned + r.failed_in_drain;
    let (user, sys) = (u1.0 - u0.0, u1.1 - u0.1);
    let wall = duration_s.max(1e-9);
    r.cost = Cost {
        user_s: user,
        sys_s: sys,
        cpu_us_per_request: if r.responses > 0 {
            (user + sys) * 1e6 / r.responses as f64
        } else {
            0.0
        },
        core_use_pct: (user + sys) / (wall * threads as f64) * 100.0,
        max_rss_kb: u1.2,
    };
    r.verdict = verdict(&r, plan);
    r
}

/// The schedule's mean rate over the measured window [warm-up, warm-up + duration).
fn window_rate(s: &Schedule, warmup: Duration, duration_s: f64) -> f64 {
    let end = warmup + Duration::from_secs_f64(duration_s.max(0.001));
    (cumulative(s, end) - cumulative(s, warmup)) / duration_s.max(0.001)
}

fn schedule_name(s: &Schedule) -> String {
    match s {
        Schedule::Constant { rate } => format!("constant:{rate}"),
        Schedule::Step { start, step, every } => {
            format!("step:{start},{step},{}s", every.as_secs_f64())
        }
        Schedule::Ramp { from, to, over } => format!("ramp:{from},{to},{}s", over.as_secs_f64()),
        Schedule::Poisson { rate, seed } => format!("poisson:{rate},seed={seed}"),
    }
}

/// A run is not trustworthy when the generator was the bottleneck: it used over 80% of its
/// cores, or (open loop) it sent late against its own schedule.
fn verdict(r: &RunReport, plan: &Plan) -> Verdict {
    let mut reasons = Vec::new();
    if r.cost.core_use_pct > 80.0 {
        reasons.push(format!(
            "the generator used {:.0}% of its cores (over 80%)",
            r.cost.core_use_pct
        ));
    }
    if plan.rate.is_some() && !r.send_lag.is_empty() {
        let p99 = r.send_lag.value_at_quantile(0.99);
        // A few ms of lag is scheduling noise on a busy host; more means the generator lagged.
        if p99 > 5_000 {
            reasons.push(format!(
                "it fell behind its schedule (p99 send lag {:.1} ms)",
                p99 as f64 / 1000.0
            ));
        }
        if r.config.target_rate > 0.0 && r.rate() < 0.95 * r.config.target_rate {
            reasons.push(format!(
                "it reached {:.0} of the {:.0} req/s asked",
                r.rate(),
                r.config.target_rate
            ));
        }
    }
    Verdict {
        trustworthy: reasons.is_empty(),
        reasons,
    }
}
