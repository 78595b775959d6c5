//! The command line of `ringload` (the load generator): text in, a validated [`Plan`] out.
//!
//! Every error is one line, naming the flag or value at fault; the caller prints it and exits 2.
//! URLs are resolved here (first address of `ToSocketAddrs`), `--body-file` is read here, and the
//! file-descriptor limit is checked here, so the engine starts from a plan that can run.

use std::ffi::OsString;
use std::net::ToSocketAddrs;
use std::path::PathBuf;
use std::time::Duration;

use super::plan::{Condition, FindMax, IoChoice, Outputs, Plan, Schedule, Stop, Tally, Target};

pub const USAGE: &str = "usage: ringload [options] URL[@WEIGHT]...
       ringload compare A.json B.json
       ringload origin [options]          (a test origin server; see ringload origin --help)

Sends HTTP/1.1 requests to the URLs (http:// or https://; several URLs are picked by weight)
and reports latency from each request's intended send time.

load:
  -c, --connections N     connections (default 50)
  -t, --threads N         threads, each pinned to a core (default: cores, at most -c and -R)
  -d, --duration DUR      measure for DUR after the warm-up (default 10s)
  -n, --requests N        or stop after N requests (not with -d)
  -R, --rate RATE         open loop at RATE req/s in total (default: closed loop)
      --schedule S        open-loop shape: constant (default with -R), poisson (with -R),
                          step:START,STEP,EVERY (START req/s, +STEP every EVERY),
                          ramp:FROM,TO,OVER (FROM to TO req/s over OVER, then TO)
      --seed N            seed for --schedule poisson (default 1)
      --warmup DUR        run DUR first without counting it (default 0)
      --timeout DUR       a response slower than DUR is an error, recorded at DUR (default 2s)
      --connect-timeout DUR   (default 2s)
      --drain DUR         how long requests in flight at the end may take (default: --timeout)
  -p, --pipeline N        requests in flight per connection (default 1)
      --no-keepalive      close the connection after each response
      --close-every N     close each connection after N responses
request:
  URL, --url URL          repeatable; URL@WEIGHT sends WEIGHT shares of the requests there
  -m, --method M          default GET, or POST when a body is given
  -H, --header 'N: V'     extra header (repeatable); Host replaces the URL's host; ringload sets
                          Content-Length, Transfer-Encoding and Connection itself
  -b, --body STRING       request body
      --body-file PATH    request body from a file
      --insecure          accept any TLS certificate
output:
      --tally header:NAME|body   count responses by a header's value or by body
      --hgrm PATH         HdrHistogram percentile distribution (plotFiles.html)
      --hlog PATH         HdrHistogram interval log (one histogram per second)
      --json PATH         the whole report as JSON
      --svg PATH          latency-over-time and percentile plot
      --progress, --quiet a live line each second, or none (default: when stderr is a terminal)
      --fail-if EXPR      exit 1 when a clause holds, e.g. 'p99>5ms,errors>0.1%,rate<1000'
search:
      --find-max          raise the rate step by step until the SLO breaks; report the highest
      --slo EXPR          the SLO that must hold, e.g. 'p99<10ms,errors<0.1%' (required)
      --start-rate R      first rate (default 100)
      --step-factor F     each step's rate is F times the last (default 1.5)
      --step-duration DUR each step's length (default 10s)
other:
      --io auto|ring|uring|epoll   I/O backend. auto (default): ring where io_uring is
                              usable, else epoll; ring: io_uring on ringload's own loop
                              (DEFER_TASKRUN); uring: io_uring on tokio-uring's loop
  -h, --help              this text
DUR: 250us, 500ms, 2s, 1.5s, 1m, 1h, or plain seconds (10). N and RATE accept a k suffix (10k).
Exit codes: 0 ok, 1 a --fail-if clause held or --find-max failed, 2 bad input.";

/// What the command line asks for.
#[allow(clippy::large_enum_variant)] // built once per process
#[derive(Debug, Clone)]
pub enum Command {
    Run(Plan),
    /// `ringload compare A.json B.json`.
    Compare(PathBuf, PathBuf),
    Help,
}

/// The facts about the machine that parsing depends on, so tests can fix them.
#[derive(Debug, Clone, Copy)]
pub struct Env {
    /// Default `-t`.
    pub cores: usize,
    /// RLIMIT_NOFILE soft and hard limits (u64::MAX for unlimited).
    pub nofile_soft: u64,
    pub nofile_hard: u64,
    /// Default for `--progress`.
    pub stderr_is_tty: bool,
}

impl Env {
    /// This process's environment.
    pub fn detect() -> Env {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let mut lim = libc::rlimit {
            rlim_cur: libc::RLIM_INFINITY,
            rlim_max: libc::RLIM_INFINITY,
        };
        // SAFETY: getrlimit writes into the struct we pass; isatty only inspects fd 2.
        let ok = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0;
        let conv = |v: libc::rlim_t| {
            if v == libc::RLIM_INFINITY {
                u64::MAX
            } else {
                v
            }
        };
        let (soft, hard) = if ok {
            (conv(lim.rlim_cur), conv(lim.rlim_max))
        } else {
            (u64::MAX, u64::MAX)
        };
        let tty = unsafe { libc::isatty(2) } == 1;
        Env {
            cores,
            nofile_soft: soft,
            nofile_hard: hard,
            stderr_is_tty: tty,
        }
    }
}

/// File descriptors kept free for everything but the connections (rings, eventfds, outputs).
pub const FD_RESERVE: u64 = 64;

/// Parses the arguments after the program name (`origin` is dispatched before this).
pub fn parse(args: Vec<OsString>) -> Result<Command, String> {
    parse_with(args, &Env::detect())
}

/// [`parse`] against a given environment.
pub fn parse_with(args: Vec<OsString>, env: &Env) -> Result<Command, String> {
    if args.first().and_then(|a| a.to_str()) == Some("compare") {
        return parse_compare(&args[1..]);
    }
    let raw = collect(args)?;
    if raw.help {
        return Ok(Command::Help);
    }
    build(raw, env).map(Command::Run)
}

fn parse_compare(rest: &[OsString]) -> Result<Command, String> {
    let mut paths = Vec::new();
    for a in rest {
        match a.to_str() {
            Some("-h" | "--help") => return Ok(Command::Help),
            Some(s) if s.starts_with('-') && s.len() > 1 => {
                return Err(format!(
                    "compare: unknown flag {s} (usage: ringload compare A.json B.json)"
                ));
            }
            _ => paths.push(PathBuf::from(a)),
        }
    }
    match <[PathBuf; 2]>::try_from(paths) {
        Ok([a, b]) => Ok(Command::Compare(a, b)),
        Err(p) => Err(format!(
            "compare takes two JSON reports, got {} (usage: ringload compare A.json B.json)",
            p.len()
        )),
    }
}

/// The flags as given, before defaults and cross-checks.
#[derive(Default)]
struct Raw {
    help: bool,
    urls: Vec<String>,
    connections: Option<usize>,
    threads: Option<usize>,
    duration: Option<Duration>,
    requests: Option<u64>,
    rate: Option<f64>,
    schedule: Option<String>,
    seed: Option<u64>,
    warmup: Option<Duration>,
    timeout: Option<Duration>,
    connect_timeout: Option<Duration>,
    drain: Option<Duration>,
    method: Option<String>,
    headers: Vec<String>,
    body: Option<(&'static str, Vec<u8>)>,
    no_keepalive: bool,
    close_every: Option<u64>,
    pipeline: Option<usize>,
    insecure: bool,
    tally: Option<Tally>,
    io: Option<IoChoice>,
    outputs: Outputs,
    progress: Option<bool>,
    fail_if: Vec<Condition>,
    find_max: bool,
    slo: Option<Vec<Condition>>,
    start_rate: Option<f64>,
    step_factor: Option<f64>,
    step_duration: Option<Duration>,
}

fn collect(args: Vec<OsString>) -> Result<Raw, String> {
    use lexopt::prelude::*;
    let mut r = Raw::default();
    let mut p = lexopt::Parser::from_args(args);
    let text = |p: &mut lexopt::Parser, flag: &str| -> Result<String, String> {
        let v = p
            .value()
            .map_err(|_| format!("{flag} needs a value (see ringload --help)"))?;
        v.into_string()
            .map_err(|v| format!("{flag}: invalid UTF-8 in {v:?}"))
    };
    fn once<T>(slot: &mut Option<T>, flag: &str, v: T) -> Result<(), String> {
        if slot.is_some() {
            return Err(format!("{flag} given twice"));
        }
        *slot = Some(v);
        Ok(())
    }
    while let Some(arg) = p.next().map_err(|e| e.to_string())? {
        match arg {
            Short('h') | Long("help") => r.help = true,
            Value(v) => {
                let s = v
                    .into_string()
                    .map_err(|v| format!("invalid UTF-8 in argument {v:?}"))?;
                r.urls.push(s);
            }
            Long("url") => {
                let v = text(&mut p, "--url")?;
                r.urls.push(v);
            }
            Short('c') | Long("connections") => {
                let v = text(&mut p, "-c")?;
                once(&mut r.connections, "-c", count("-c", &v)? as usize)?;
            }
            Short('t') | Long("threads") => {
                let v = text(&mut p, "-t")?;
                once(&mut r.threads, "-t", count("-t", &v)? as usize)?;
            }
            Short('d') | Long("duration") => {
                let v = text(&mut p, "-d")?;
                once(&mut r.duration, "-d", duration("-d", &v)?)?;
            }
            Short('n') | Long("requests") => {
                let v = text(&mut p, "-n")?;
                once(&mut r.requests, "-n", count("-n", &v)?)?;
            }
            Short('R') | Long("rate") => {
                let v = text(&mut p, "-R")?;
                once(&mut r.rate, "-R", rate("-R", &v)?)?;
            }
            Long("schedule") => {
                let v = text(&mut p, "--schedule")?;
                once(&mut r.schedule, "--schedule", v)?;
            }
            Long("seed") => {
                let v = text(&mut p, "--seed")?;
                let n = v
                    .trim()
                    .parse::<u64>()
                    .map_err(|_| format!("--seed: bad number {v:?}"))?;
                once(&mut r.seed, "--seed", n)?;
            }
            Long("warmup") => {
                let v = text(&mut p, "--warmup")?;
                once(&mut r.warmup, "--warmup", duration("--warmup", &v)?)?;
            }
            Long("timeout") => {
                let v = text(&mut p, "--timeout")?;
                once(&mut r.timeout, "--timeout", duration("--timeout", &v)?)?;
            }
            Long("connect-timeout") => {
                let v = text(&mut p, "--connect-timeout")?;
                let d = duration("--connect-timeout", &v)?;
                once(&mut r.connect_timeout, "--connect-timeout", d)?;
            }
            Long("drain") => {
                let v = text(&mut p, "--drain")?;
                once(&mut r.drain, "--drain", duration("--drain", &v)?)?;
            }
            Short('m') | Long("method") => {
                let v = text(&mut p, "-m")?;
                once(&mut r.method, "-m", method(&v)?)?;
            }
            Short('H') | Long("header") => {
                let v = text(&mut p, "-H")?;
                r.headers.push(v);
            }
            Short('b') | Long("body") => {
                let v = text(&mut p, "-b")?;
                once(&mut r.body, "-b/--body-file", ("-b", v.into_bytes()))?;
            }
            Long("body-file") => {
                let path = PathBuf::from(p.value().map_err(|_| "--body-file needs a PATH")?);
                let bytes = std::fs::read(&path).map_err(|e| {
                    format!("--body-file {}: {}", path.display(), super::short_error(&e))
                })?;
                once(&mut r.body, "-b/--body-file", ("--body-file", bytes))?;
            }
            Long("no-keepalive") => r.no_keepalive = true,
            Long("close-every") => {
                let v = text(&mut p, "--close-every")?;
                once(
                    &mut r.close_every,
                    "--close-every",
                    count("--close-every", &v)?,
                )?;
            }
            Short('p') | Long("pipeline") => {
                let v = text(&mut p, "-p")?;
                once(&mut r.pipeline, "-p", count_or_zero("-p", &v)? as usize)?;
            }
            Long("insecure") => r.insecure = true,
            Long("tally") => {
                let v = text(&mut p, "--tally")?;
                once(&mut r.tally, "--tally", tally(&v)?)?;
            }
            Long("io") => {
                let v = text(&mut p, "--io")?;
                let io = IoChoice::parse(&v).ok_or_else(|| {
                    format!("--io: expected auto, uring, ring or epoll, not {v:?}")
                })?;
                once(&mut r.io, "--io", io)?;
            }
            Long("hgrm") => {
                let v = PathBuf::from(p.value().map_err(|_| "--hgrm needs a PATH")?);
                once(&mut r.outputs.hgrm, "--hgrm", v)?;
            }
            Long("hlog") => {
                let v = PathBuf::from(p.value().map_err(|_| "--hlog needs a PATH")?);
                once(&mut r.outputs.hlog, "--hlog", v)?;
            }
            Long("json") => {
                let v = PathBuf::from(p.value().map_err(|_| "--json needs a PATH")?);
                once(&mut r.outputs.json, "--json", v)?;
            }
            Long("svg") => {
                let v = PathBuf::from(p.value().map_err(|_| "--svg needs a PATH")?);
                once(&mut r.outputs.svg, "--svg", v)?;
            }
            // The last of --progress/--quiet wins, so an alias can be overridden.
            Long("progress") => r.progress = Some(true),
            Long("quiet") => r.progress = Some(false),
            Long("fail-if") => {
                let v = text(&mut p, "--fail-if")?;
                r.fail_if
                    .extend(conditions(&v).map_err(|e| format!("--fail-if: {e}"))?);
            }
            Long("find-max") => r.find_max = true,
            Long("slo") => {
                let v = text(&mut p, "--slo")?;
                let c = conditions(&v).map_err(|e| format!("--slo: {e}"))?;
                r.slo.get_or_insert_with(Vec::new).extend(c);
            }
            Long("start-rate") => {
                let v = text(&mut p, "--start-rate")?;
                once(&mut r.start_rate, "--start-rate", rate("--start-rate", &v)?)?;
            }
            Long("step-factor") => {
                let v = text(&mut p, "--step-factor")?;
                let f = v
                    .trim()
                    .parse::<f64>()
                    .ok()
                    .filter(|f| f.is_finite() && *f > 1.0)
                    .ok_or_else(|| {
                        format!("--step-factor: expected a number above 1 (e.g. 1.5), not {v:?}")
                    })?;
                once(&mut r.step_factor, "--step-factor", f)?;
            }
            Long("step-duration") => {
                let v = text(&mut p, "--step-duration")?;
                let d = duration("--step-duration", &v)?;
                once(&mut r.step_duration, "--step-duration", d)?;
            }
            Long(f) => return Err(format!("unknown flag --{f} (see ringload --help)")),
            Short(c) => return Err(format!("unknown flag -{c} (see ringload --help)")),
        }
    }
    Ok(r)
}

/// `--fail-if` and `--slo` clauses: the report's parser, so both mean the same thing.
fn conditions(s: &str) -> Result<Vec<Condition>, String> {
    super::report::failif::parse_conditions(s)
}

fn build(r: Raw, env: &Env) -> Result<Plan, String> {
    // Targets.
    if r.urls.is_empty() {
        return Err("no URL given (usage: ringload [options] URL...; see --help)".into());
    }
    let targets = r
        .urls
        .iter()
        .map(|u| target(u))
        .collect::<Result<Vec<_>, _>>()?;

    // Connections, threads, the fd limit.
    let connections = r.connections.unwrap_or(50);
    if connections == 0 {
        return Err("-c must be at least 1".into());
    }
    check_fd_limit(connections as u64, env.nofile_soft, env.nofile_hard)?;
    if r.threads == Some(0) {
        return Err("-t must be at least 1".into());
    }

    // Stop.
    if r.find_max && (r.duration.is_some() || r.requests.is_some()) {
        return Err(
            "--find-max runs steps of --step-duration; -d and -n do not apply to it".into(),
        );
    }
    let stop = match (r.duration, r.requests) {
        (Some(_), Some(_)) => {
            return Err("-d and -n conflict: give a duration or a request count, not both".into());
        }
        (Some(d), None) if d.is_zero() => return Err("-d must be above 0".into()),
        (Some(d), None) => Stop::Duration(d),
        (None, Some(n)) => Stop::Requests(n),
        (None, None) => Stop::Duration(r.step_duration.unwrap_or(Duration::from_secs(10))),
    };

    // Rate and schedule.
    let find_max = if r.find_max {
        let Some(slo) = r.slo.clone() else {
            return Err("--find-max needs --slo, e.g. --slo 'p99<10ms,errors<0.1%'".into());
        };
        if r.rate.is_some() || r.schedule.is_some() {
            return Err(
                "--find-max sets the rate itself; use --start-rate instead of -R/--schedule".into(),
            );
        }
        let step = r.step_duration.unwrap_or(Duration::from_secs(10));
        if step.is_zero() {
            return Err("--step-duration must be above 0".into());
        }
        Some(FindMax {
            slo,
            start_rate: r.start_rate.unwrap_or(100.0),
            factor: r.step_factor.unwrap_or(1.5),
            step,
        })
    } else {
        if r.slo.is_some() {
            return Err("--slo applies only to --find-max (use --fail-if for a single run)".into());
        }
        for (given, flag) in [
            (r.start_rate.is_some(), "--start-rate"),
            (r.step_factor.is_some(), "--step-factor"),
            (r.step_duration.is_some(), "--step-duration"),
        ] {
            if given {
                return Err(format!("{flag} applies only to --find-max"));
            }
        }
        None
    };
    let rate = match &find_max {
        Some(f) => Some(Schedule::Constant { rate: f.start_rate }),
        None => schedule(r.schedule.as_deref(), r.rate, r.seed)?,
    };

    // Threads: default to the cores, never more than the connections; with a defaulted -t also
    // never more than the rate allows (1 req/s per thread at least).
    let floor_rate = rate.as_ref().and_then(checked_rate);
    let threads = match r.threads {
        Some(t) => t.min(connections),
        None => {
            let mut t = env.cores.max(1).min(connections);
            if let Some(fr) = floor_rate {
                t = t.min((fr.floor() as usize).max(1));
            }
            t
        }
    };
    if let Some(fr) = floor_rate
        && threads > 1
        && fr < threads as f64
    {
        let (what, fix) = if find_max.is_some() {
            ("start rate", "--start-rate")
        } else {
            ("rate", "-R")
        };
        return Err(format!(
            "{what} {} req/s is below the {threads} threads: each thread needs at least 1 req/s; \
             lower -t or raise {fix}",
            num(fr)
        ));
    }

    // Timing.
    let timeout = r.timeout.unwrap_or(Duration::from_secs(2));
    if timeout.is_zero() {
        return Err("--timeout must be above 0".into());
    }
    let connect_timeout = r.connect_timeout.unwrap_or(Duration::from_secs(2));
    if connect_timeout.is_zero() {
        return Err("--connect-timeout must be above 0".into());
    }

    // Connection reuse and pipelining.
    let pipeline = r.pipeline.unwrap_or(1);
    if pipeline == 0 {
        return Err("-p (pipeline depth) must be at least 1".into());
    }
    if r.no_keepalive && r.close_every.is_some() {
        return Err(
            "--no-keepalive and --close-every conflict (--no-keepalive is --close-every 1)".into(),
        );
    }
    if r.no_keepalive && pipeline > 1 {
        return Err("-p above 1 needs keep-alive: drop --no-keepalive".into());
    }

    // Request.
    let headers = headers(&r.headers)?;
    let (body_given, body) = match r.body {
        Some((_, b)) => (true, b),
        None => (false, Vec::new()),
    };
    let method = r
        .method
        .unwrap_or_else(|| if body_given { "POST" } else { "GET" }.to_string());

    let mut outputs = r.outputs;
    outputs.progress = r.progress.unwrap_or(env.stderr_is_tty);

    Ok(Plan {
        targets,
        method,
        headers,
        body,
        connections,
        threads,
        stop,
        rate,
        warmup: r.warmup.unwrap_or(Duration::ZERO),
        timeout,
        connect_timeout,
        drain: r.drain.unwrap_or(timeout),
        keepalive: !r.no_keepalive,
        close_every: r.close_every,
        pipeline,
        insecure: r.insecure,
        tally: r.tally,
        io: r.io.unwrap_or(IoChoice::Auto),
        outputs,
        fail_if: r.fail_if,
        find_max,
    })
}

/// The rate the threads-versus-rate check applies to: constant and Poisson their rate, a ramp its
/// higher end, a step schedule the larger of its first two steps.
fn checked_rate(s: &Schedule) -> Option<f64> {
    match *s {
        Schedule::Constant { rate } | Schedule::Poisson { rate, .. } => Some(rate),
        Schedule::Ramp { from, to, .. } => Some(from.max(to)),
        Schedule::Step { start, step, .. } => Some(start.max(start + step)),
    }
}

/// `--schedule` with `-R` and `--seed`.
fn schedule(
    spec: Option<&str>,
    rate: Option<f64>,
    seed: Option<u64>,
) -> Result<Option<Schedule>, String> {
    let (kind, args) = match spec {
        None => {
            if seed.is_some() {
                return Err("--seed applies only to --schedule poisson".into());
            }
            return Ok(rate.map(|rate| Schedule::Constant { rate }));
        }
        Some(s) => match s.split_once(':') {
            Some((k, a)) => (k.trim(), Some(a)),
            None => (s.trim(), None),
        },
    };
    if seed.is_some() && kind != "poisson" {
        return Err("--seed applies only to --schedule poisson".into());
    }
    let no_args = |k: &str| -> Result<(), String> {
        match args {
            Some(_) => Err(format!(
                "--schedule {k} takes no parameters (the rate is -R)"
            )),
            None => Ok(()),
        }
    };
    let need_rate = |k: &str| -> Result<f64, String> {
        rate.ok_or_else(|| format!("--schedule {k} needs -R RATE"))
    };
    let no_rate = |k: &str| -> Result<(), String> {
        match rate {
            Some(_) => Err(format!(
                "-R does not apply to --schedule {k}: its rates are in the schedule"
            )),
            None => Ok(()),
        }
    };
    let three = |k: &str, form: &str| -> Result<[String; 3], String> {
        let a = args.ok_or_else(|| format!("--schedule {k} needs parameters: {form}"))?;
        let parts: Vec<String> = a.split(',').map(|x| x.trim().to_string()).collect();
        <[String; 3]>::try_from(parts)
            .map_err(|_| format!("--schedule {k}: expected {form}, got {a:?}"))
    };
    let s = match kind {
        "constant" => {
            no_args(kind)?;
            Schedule::Constant {
                rate: need_rate(kind)?,
            }
        }
        "poisson" => {
            no_args(kind)?;
            Schedule::Poisson {
                rate: need_rate(kind)?,
                seed: seed.unwrap_or(1),
            }
        }
        "step" => {
            no_rate(kind)?;
            let [a, b, c] = three(kind, "step:START,STEP,EVERY (e.g. step:100,100,10s)")?;
            let start = rate_or_zero("--schedule step START", &a)?;
            let step = b
                .parse::<f64>()
                .ok()
                .filter(|x| x.is_finite())
                .ok_or_else(|| format!("--schedule step: bad STEP {b:?}"))?;
            let every = duration("--schedule step EVERY", &c)?;
            if every.is_zero() {
                return Err("--schedule step: EVERY must be above 0".into());
            }
            if start <= 0.0 && step <= 0.0 {
                return Err("--schedule step: the rate never rises above 0".into());
            }
            Schedule::Step { start, step, every }
        }
        "ramp" => {
            no_rate(kind)?;
            let [a, b, c] = three(kind, "ramp:FROM,TO,OVER (e.g. ramp:100,5000,30s)")?;
            let from = rate_or_zero("--schedule ramp FROM", &a)?;
            let to = rate_or_zero("--schedule ramp TO", &b)?;
            let over = duration("--schedule ramp OVER", &c)?;
            if from == 0.0 && to == 0.0 {
                return Err("--schedule ramp: FROM and TO are both 0".into());
            }
            Schedule::Ramp { from, to, over }
        }
        _ => {
            return Err(format!(
                "--schedule: expected constant, poisson, step:START,STEP,EVERY or \
                 ramp:FROM,TO,OVER, not {:?}",
                spec.unwrap_or_default()
            ));
        }
    };
    Ok(Some(s))
}

/// Refuses a connection count the file-descriptor limit cannot hold (with [`FD_RESERVE`] spare).
pub fn check_fd_limit(connections: u64, soft: u64, hard: u64) -> Result<(), String> {
    let need = connections.saturating_add(FD_RESERVE);
    if need <= soft {
        return Ok(());
    }
    if need <= hard {
        Err(format!(
            "-c {connections} needs {need} file descriptors but the limit is {soft}: \
             raise it with `ulimit -n {need}` (or `ulimit -n {hard}`, the hard limit) or lower -c"
        ))
    } else {
        let hard_s = if hard == u64::MAX {
            "unlimited".to_string()
        } else {
            hard.to_string()
        };
        Err(format!(
            "-c {connections} needs {need} file descriptors but the limit is {soft} and the hard \
             limit {hard_s}: raise the hard limit (limits.conf, or LimitNOFILE= for a systemd \
             unit), then `ulimit -n {need}`, or lower -c"
        ))
    }
}

/// One URL argument: `http[s]://host[:port][/path][?query][@WEIGHT]`, resolved.
fn target(spec: &str) -> Result<Target, String> {
    let (url, weight) = split_weight(spec)?;
    let p = parse_url(url)?;
    let lookup = p.host.trim_start_matches('[').trim_end_matches(']');
    let addr = (lookup, p.port)
        .to_socket_addrs()
        .map_err(|e| {
            format!(
                "cannot resolve {} in {url}: {}",
                p.host,
                super::short_error(&e)
            )
        })?
        .next()
        .ok_or_else(|| format!("cannot resolve {} in {url}: no address", p.host))?;
    Ok(Target {
        url: url.to_string(),
        tls: p.tls,
        host: p.host,
        port: p.port,
        addr,
        path: p.path,
        weight,
    })
}

/// Splits a trailing `@WEIGHT` (digits only) off a URL argument.
fn split_weight(spec: &str) -> Result<(&str, u32), String> {
    if let Some((url, w)) = spec.rsplit_once('@')
        && !w.is_empty()
        && w.bytes().all(|b| b.is_ascii_digit())
    {
        let weight: u32 = w
            .parse()
            .map_err(|_| format!("weight {w} in {spec} is too large"))?;
        if weight == 0 {
            return Err(format!("weight 0 in {spec}: a weight must be at least 1"));
        }
        return Ok((url, weight));
    }
    Ok((spec, 1))
}

/// A URL, split but not resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlParts {
    pub tls: bool,
    /// As in the URL; an IPv6 literal keeps its brackets (as the Host header needs them).
    pub host: String,
    pub port: u16,
    /// Path and query, starting with `/`; the fragment dropped.
    pub path: String,
}

/// Splits `http[s]://host[:port][/path][?query][#fragment]`.
pub fn parse_url(url: &str) -> Result<UrlParts, String> {
    let bad = |why: &str| format!("bad URL {url}: {why}");
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| bad("expected http://host[:port]/path or https://..."))?;
    let (tls, default_port) = match scheme.to_ascii_lowercase().as_str() {
        "http" => (false, 80),
        "https" => (true, 443),
        _ => return Err(bad(&format!("scheme {scheme} (only http and https)"))),
    };
    let rest = rest.split('#').next().unwrap_or_default();
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    if authority.contains('@') {
        return Err(bad(
            "user info (user@host) is not supported; use -H 'Authorization: ...'",
        ));
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (inside, after) = v6
            .split_once(']')
            .ok_or_else(|| bad("unclosed [ in the host"))?;
        if inside.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(bad(&format!("[{inside}] is not an IPv6 address")));
        }
        let port = match after {
            "" => None,
            p => Some(
                p.strip_prefix(':')
                    .ok_or_else(|| bad("expected :PORT after ]"))?,
            ),
        };
        (format!("[{inside}]"), port)
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), Some(p)),
            None => (authority.to_string(), None),
        }
    };
    if host.is_empty() {
        return Err(bad("no host"));
    }
    if !host.starts_with('[')
        && !host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
    {
        return Err(bad(&format!("bad host {host:?}")));
    }
    let port = match port {
        None => default_port,
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|&n| n != 0)
            .ok_or_else(|| bad(&format!("bad port {p:?}")))?,
    };
    if tail.bytes().any(|b| b <= b' ' || b == 0x7f) {
        return Err(bad(
            "spaces or control characters in the path (percent-encode them)",
        ));
    }
    let path = if tail.starts_with('/') {
        tail.to_string()
    } else {
        format!("/{tail}")
    };
    Ok(UrlParts {
        tls,
        host,
        port,
        path,
    })
}

/// `-H` lines, checked and normalised to `Name: value`. A `Host` line is kept (it replaces the
/// URL's host in the Host header; the engine writes its own only when none is here).
fn headers(lines: &[String]) -> Result<Vec<String>, String> {
    let mut out = Vec::with_capacity(lines.len());
    let mut host_seen = false;
    for line in lines {
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| format!("-H {line:?}: expected 'Name: value'"))?;
        let name = name.trim();
        let value = value.trim();
        if name.is_empty() || !name.bytes().all(is_tchar) {
            return Err(format!("-H {line:?}: bad header name {name:?}"));
        }
        if value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
            return Err(format!("-H {line:?}: CR, LF or NUL in the value"));
        }
        let lower = name.to_ascii_lowercase();
        let why = match lower.as_str() {
            "content-length" => Some("from the body (-b/--body-file)"),
            "transfer-encoding" => Some("(bodies go with Content-Length)"),
            "connection" => Some("(use --no-keepalive or --close-every)"),
            "host" if host_seen => return Err("-H Host given twice".into()),
            "host" => {
                host_seen = true;
                None
            }
            _ => None,
        };
        if let Some(why) = why {
            return Err(format!("-H {name}: ringload sets {name} itself {why}"));
        }
        out.push(format!("{name}: {value}"));
    }
    Ok(out)
}

/// The `-H Host:` override, if any: the engine sends it instead of the URL's host.
pub fn host_override(plan: &Plan) -> Option<&str> {
    plan.headers.iter().find_map(|h| {
        let (n, v) = h.split_once(':')?;
        n.eq_ignore_ascii_case("host").then(|| v.trim())
    })
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn method(s: &str) -> Result<String, String> {
    if s.is_empty() || !s.bytes().all(is_tchar) {
        return Err(format!("-m: bad method {s:?}"));
    }
    Ok(s.to_string())
}

fn tally(s: &str) -> Result<Tally, String> {
    if s == "body" {
        return Ok(Tally::Body);
    }
    match s.strip_prefix("header:") {
        Some(name) if !name.is_empty() && name.bytes().all(is_tchar) => {
            Ok(Tally::Header(name.to_string()))
        }
        _ => Err(format!("--tally: expected header:NAME or body, not {s:?}")),
    }
}

/// Parses a duration: a number (fractions allowed) with `ns`, `us`/`µs`, `ms`, `s`, `m` or `h`,
/// or a plain number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let ns_per: f64 = match unit.trim() {
        "" | "s" => 1e9,
        "ms" => 1e6,
        "us" | "µs" => 1e3,
        "ns" => 1.0,
        "m" | "min" => 60e9,
        "h" => 3600e9,
        _ => {
            return Err(format!(
                "bad duration {s:?} (e.g. 250us, 500ms, 2s, 1.5s, 1m, or plain seconds)"
            ));
        }
    };
    let v: f64 = num
        .parse()
        .ok()
        .filter(|v: &f64| v.is_finite())
        .ok_or_else(|| format!("bad duration {s:?} (e.g. 250us, 500ms, 2s, 1.5s, 1m)"))?;
    let ns = (v * ns_per).round();
    if ns >= u64::MAX as f64 {
        return Err(format!("duration {s:?} is too long"));
    }
    Ok(Duration::from_nanos(ns as u64))
}

fn duration(flag: &str, s: &str) -> Result<Duration, String> {
    parse_duration(s).map_err(|e| format!("{flag}: {e}"))
}

/// A count of at least 1: digits, optionally with a `k` (thousand) or `M` (million) suffix.
fn count(flag: &str, s: &str) -> Result<u64, String> {
    match count_or_zero(flag, s)? {
        0 => Err(format!("{flag} must be at least 1")),
        n => Ok(n),
    }
}

fn count_or_zero(flag: &str, s: &str) -> Result<u64, String> {
    let t = s.trim();
    let (digits, mult) = match t.as_bytes().last() {
        Some(b'k' | b'K') => (&t[..t.len() - 1], 1_000u64),
        Some(b'M') => (&t[..t.len() - 1], 1_000_000),
        _ => (t, 1),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("{flag}: expected a whole number, not {s:?}"));
    }
    digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .filter(|&n| n <= usize::MAX as u64)
        .ok_or_else(|| format!("{flag}: {s:?} is too large"))
}

/// A rate in req/s above 0: a number, fractions allowed, optionally with a `k` suffix.
fn rate(flag: &str, s: &str) -> Result<f64, String> {
    match rate_or_zero(flag, s)? {
        r if r > 0.0 => Ok(r),
        _ => Err(format!("{flag}: the rate must be above 0")),
    }
}

fn rate_or_zero(flag: &str, s: &str) -> Result<f64, String> {
    let t = s.trim();
    let (num, mult) = match t.strip_suffix(['k', 'K']) {
        Some(n) => (n, 1000.0),
        None => (t, 1.0),
    };
    num.parse::<f64>()
        .ok()
        .map(|v| v * mult)
        .filter(|v| v.is_finite() && *v >= 0.0)
        .ok_or_else(|| format!("{flag}: expected a rate in req/s (e.g. 500, 2.5, 10k), not {s:?}"))
}

/// A number without a needless `.0`.
fn num(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        let d = |s| parse_duration(s).unwrap();
        assert_eq!(d("500ms"), Duration::from_millis(500));
        assert_eq!(d("2s"), Duration::from_secs(2));
        assert_eq!(d("1.5s"), Duration::from_millis(1500));
        assert_eq!(d("1m"), Duration::from_secs(60));
        assert_eq!(d("10"), Duration::from_secs(10));
        assert_eq!(d("250us"), Duration::from_micros(250));
        assert_eq!(d("250µs"), Duration::from_micros(250));
        assert_eq!(d("0.5"), Duration::from_millis(500));
        assert_eq!(d("1h"), Duration::from_secs(3600));
        assert_eq!(d("0"), Duration::ZERO);
        for bad in ["", "s", "-1s", "1x", "1.2.3s", "ms", "1 d", "inf"] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn urls() {
        let u = parse_url("http://example.com/a?b=1#frag").unwrap();
        assert_eq!(
            u,
            UrlParts {
                tls: false,
                host: "example.com".into(),
                port: 80,
                path: "/a?b=1".into()
            }
        );
        let u = parse_url("https://h:8443").unwrap();
        assert_eq!((u.tls, u.port, u.path.as_str()), (true, 8443, "/"));
        assert_eq!(parse_url("HTTPS://h?x").unwrap().path, "/?x");
        let u = parse_url("http://[::1]:9000/p").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("[::1]", 9000));
        for bad in [
            "example.com/",
            "ftp://h/",
            "http:///p",
            "http://h:0/",
            "http://h:99999/",
            "http://h:x/",
            "http://u@h/",
            "http://[::1/",
            "http://[zz]/",
            "http://h/a b",
            "http://h h/",
        ] {
            assert!(parse_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn fd_limit() {
        assert!(check_fd_limit(100, 1024, 4096).is_ok());
        assert!(check_fd_limit(960, 1024, 4096).is_ok());
        let e = check_fd_limit(961, 1024, 4096).unwrap_err();
        assert!(e.contains("ulimit -n 1025") && e.contains("4096"), "{e}");
        let e = check_fd_limit(10_000, 1024, 4096).unwrap_err();
        assert!(
            e.contains("hard limit 4096") && e.contains("ulimit -n 10064"),
            "{e}"
        );
        assert!(check_fd_limit(1 << 40, u64::MAX, u64::MAX).is_ok());
    }
}
