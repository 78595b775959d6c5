//! `ringload`'s command line: every flag lands in the right `Plan` field, every bad input gives
//! its one-line message, and the open-loop timetables keep to their schedules. Parsing runs
//! against a fixed `Env` (4 cores, 1024/4096 descriptors, no terminal) so results do not depend
//! on the machine.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use ringproxy::load::cli::{Command, Env, USAGE, host_override, parse, parse_with};
use ringproxy::load::plan::{IoChoice, Plan, Schedule, Stop, Tally};
use ringproxy::load::schedule::{NEVER, Timetable, cumulative, mean_rate};

const ENV: Env = Env {
    cores: 4,
    nofile_soft: 1024,
    nofile_hard: 4096,
    stderr_is_tty: false,
};

fn args(a: &[&str]) -> Vec<OsString> {
    a.iter().map(OsString::from).collect()
}

fn try_plan(a: &[&str]) -> Result<Plan, String> {
    match parse_with(args(a), &ENV)? {
        Command::Run(p) => Ok(p),
        other => panic!("{a:?}: not a run: {other:?}"),
    }
}

fn plan(a: &[&str]) -> Plan {
    try_plan(a).unwrap_or_else(|e| panic!("{a:?}: {e}"))
}

fn err(a: &[&str]) -> String {
    match parse_with(args(a), &ENV) {
        Err(e) => {
            assert!(!e.contains('\n'), "not one line: {e}");
            e
        }
        Ok(c) => panic!("{a:?}: accepted: {c:?}"),
    }
}

const U: &str = "http://127.0.0.1:8080/";

#[test]
fn defaults() {
    let p = plan(&[U]);
    assert_eq!(p.targets.len(), 1);
    let t = &p.targets[0];
    assert_eq!(t.url, U);
    assert!(!t.tls);
    assert_eq!(t.host, "127.0.0.1");
    assert_eq!(t.port, 8080);
    assert_eq!(t.addr, "127.0.0.1:8080".parse::<SocketAddr>().unwrap());
    assert_eq!(t.path, "/");
    assert_eq!(t.weight, 1);
    assert_eq!(p.method, "GET");
    assert!(p.headers.is_empty());
    assert!(p.body.is_empty());
    assert_eq!(p.connections, 50);
    assert_eq!(p.threads, 4);
    assert_eq!(p.stop, Stop::Duration(Duration::from_secs(10)));
    assert_eq!(p.rate, None);
    assert_eq!(p.warmup, Duration::ZERO);
    assert_eq!(p.timeout, Duration::from_secs(2));
    assert_eq!(p.connect_timeout, Duration::from_secs(2));
    assert_eq!(p.drain, Duration::from_secs(2));
    assert!(p.keepalive);
    assert_eq!(p.close_every, None);
    assert_eq!(p.pipeline, 1);
    assert!(!p.insecure);
    assert_eq!(p.tally, None);
    assert_eq!(p.io, IoChoice::Auto);
    assert!(p.outputs.hgrm.is_none() && p.outputs.hlog.is_none());
    assert!(p.outputs.json.is_none() && p.outputs.svg.is_none());
    assert!(!p.outputs.progress);
    assert!(p.fail_if.is_empty());
    assert!(p.find_max.is_none());
    // Progress defaults to on when stderr is a terminal.
    let tty = Env {
        stderr_is_tty: true,
        ..ENV
    };
    let Ok(Command::Run(p)) = parse_with(args(&[U]), &tty) else {
        panic!()
    };
    assert!(p.outputs.progress);
}

#[test]
fn urls_and_weights() {
    let p = plan(&[
        "http://localhost:9000/a/b?x=1&y=2",
        "--url",
        "https://127.0.0.1/s@3",
        "http://[::1]:81/v6@2",
        "http://127.0.0.1",
    ]);
    assert_eq!(p.targets.len(), 4);
    let t = &p.targets[0];
    assert_eq!(
        (t.host.as_str(), t.port, t.path.as_str(), t.weight),
        ("localhost", 9000, "/a/b?x=1&y=2", 1)
    );
    assert!(t.addr.ip().is_loopback() && t.addr.port() == 9000);
    let t = &p.targets[1];
    assert!(t.tls);
    assert_eq!((t.port, t.path.as_str(), t.weight), (443, "/s", 3));
    assert_eq!(t.url, "https://127.0.0.1/s");
    let t = &p.targets[2];
    assert_eq!((t.host.as_str(), t.port, t.weight), ("[::1]", 81, 2));
    assert_eq!(t.addr, "[::1]:81".parse::<SocketAddr>().unwrap());
    let t = &p.targets[3];
    assert_eq!((t.port, t.path.as_str()), (80, "/"));

    assert!(err(&["ftp://127.0.0.1/"]).contains("ftp://127.0.0.1/"));
    assert!(err(&["127.0.0.1:8080"]).contains("bad URL 127.0.0.1:8080"));
    assert!(err(&["http://127.0.0.1:70000/"]).contains("bad port"));
    let e = err(&["http://no-such-host.invalid/"]);
    assert!(e.contains("cannot resolve no-such-host.invalid"), "{e}");
    assert!(err(&["http://127.0.0.1/@0"]).contains("weight"));
    assert!(err(&[]).contains("no URL"));
    assert!(err(&["--url"]).contains("--url needs a value"));
}

#[test]
fn load_flags() {
    let p = plan(&[
        "-c",
        "200",
        "-t",
        "3",
        "-d",
        "1m",
        "--warmup",
        "5s",
        "--timeout",
        "750ms",
        "--connect-timeout",
        "250us",
        "--drain",
        "3s",
        "-p",
        "8",
        "--close-every",
        "100",
        U,
    ]);
    assert_eq!(p.connections, 200);
    assert_eq!(p.threads, 3);
    assert_eq!(p.stop, Stop::Duration(Duration::from_secs(60)));
    assert_eq!(p.warmup, Duration::from_secs(5));
    assert_eq!(p.timeout, Duration::from_millis(750));
    assert_eq!(p.connect_timeout, Duration::from_micros(250));
    assert_eq!(p.drain, Duration::from_secs(3));
    assert_eq!(p.pipeline, 8);
    assert_eq!(p.close_every, Some(100));
    assert!(p.keepalive);

    let p = plan(&["--connections=10", "--threads=2", "--requests", "5k", U]);
    assert_eq!((p.connections, p.threads), (10, 2));
    assert_eq!(p.stop, Stop::Requests(5000));
    // -n below -c is fine.
    assert_eq!(plan(&["-c", "50", "-n", "3", U]).stop, Stop::Requests(3));
    // --drain defaults to --timeout.
    assert_eq!(plan(&["--timeout", "5", U]).drain, Duration::from_secs(5));
    // -t above -c is clamped, not refused; the default -t is the cores, at most -c.
    assert_eq!(plan(&["-c", "2", "-t", "8", U]).threads, 2);
    assert_eq!(plan(&["-c", "3", U]).threads, 3);
    assert_eq!(
        plan(&["-d", "1.5s", U]).stop,
        Stop::Duration(Duration::from_millis(1500))
    );
    assert_eq!(
        plan(&["-d", "10", U]).stop,
        Stop::Duration(Duration::from_secs(10))
    );

    let p = plan(&["--no-keepalive", U]);
    assert!(!p.keepalive);
}

#[test]
fn request_flags() {
    let p = plan(&[
        "-m",
        "PUT",
        "-H",
        "X-A: 1",
        "--header",
        "x-b:two words ",
        "-b",
        "hello",
        "--insecure",
        U,
    ]);
    assert_eq!(p.method, "PUT");
    assert_eq!(p.headers, vec!["X-A: 1", "x-b: two words"]);
    assert_eq!(p.body, b"hello");
    assert!(p.insecure);
    // A body makes the default method POST.
    let p = plan(&["-b", "x", U]);
    assert_eq!(p.method, "POST");

    let dir = std::env::temp_dir().join(format!("ringload-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("body.bin");
    std::fs::write(&f, b"\x00\x01file body").unwrap();
    let p = plan(&["--body-file", f.to_str().unwrap(), U]);
    assert_eq!(p.body, b"\x00\x01file body");
    assert_eq!(p.method, "POST");
    let missing = dir.join("missing.bin");
    let e = err(&["--body-file", missing.to_str().unwrap(), U]);
    assert!(e.contains(missing.to_str().unwrap()), "{e}");
    let _ = std::fs::remove_dir_all(&dir);

    // Host may be overridden; the others are ringload's.
    let p = plan(&["-H", "Host: example.com", U]);
    assert_eq!(p.headers, vec!["Host: example.com"]);
    assert_eq!(host_override(&p), Some("example.com"));
    assert_eq!(host_override(&plan(&[U])), None);
    for h in [
        "Content-Length: 5",
        "transfer-encoding: chunked",
        "Connection: close",
    ] {
        let e = err(&["-H", h, U]);
        assert!(e.contains("ringload sets"), "{e}");
        assert!(e.contains(h.split(':').next().unwrap()), "{e}");
    }
    assert!(err(&["-H", "NoColon", U]).contains("Name: value"));
    assert!(err(&["-H", "Bad Name: x", U]).contains("bad header name"));
    assert!(err(&["-m", "GE T", U]).contains("bad method"));
    assert!(err(&["--io", "poll", U]).contains("expected auto, uring, ring or epoll"));
    assert!(err(&["-b", "x", "--body-file", "/dev/null", U]).contains("given twice"));
}

#[test]
fn output_flags() {
    let p = plan(&[
        "--tally",
        "header:X-Backend",
        "--io",
        "epoll",
        "--hgrm",
        "a.hgrm",
        "--hlog",
        "b.hlog",
        "--json",
        "c.json",
        "--svg",
        "d.svg",
        "--progress",
        U,
    ]);
    assert_eq!(p.tally, Some(Tally::Header("X-Backend".into())));
    assert_eq!(p.io, IoChoice::Epoll);
    assert_eq!(p.outputs.hgrm, Some(PathBuf::from("a.hgrm")));
    assert_eq!(p.outputs.hlog, Some(PathBuf::from("b.hlog")));
    assert_eq!(p.outputs.json, Some(PathBuf::from("c.json")));
    assert_eq!(p.outputs.svg, Some(PathBuf::from("d.svg")));
    assert!(p.outputs.progress);
    assert_eq!(plan(&["--tally", "body", U]).tally, Some(Tally::Body));
    assert_eq!(plan(&["--io", "uring", U]).io, IoChoice::Uring);
    assert_eq!(plan(&["--io", "auto", U]).io, IoChoice::Auto);
    let tty = Env {
        stderr_is_tty: true,
        ..ENV
    };
    let Ok(Command::Run(p)) = parse_with(args(&["--quiet", U]), &tty) else {
        panic!()
    };
    assert!(!p.outputs.progress);
    assert!(err(&["--tally", "cookie", U]).contains("--tally"));
    assert!(err(&["--io", "kqueue", U]).contains("--io"));
}

#[test]
fn rates_and_schedules() {
    let p = plan(&["-R", "1000", U]);
    assert_eq!(p.rate, Some(Schedule::Constant { rate: 1000.0 }));
    let p = plan(&["-R", "2.5k", "--schedule", "constant", U]);
    assert_eq!(p.rate, Some(Schedule::Constant { rate: 2500.0 }));
    let p = plan(&["-R", "500", "--schedule", "poisson", U]);
    assert_eq!(
        p.rate,
        Some(Schedule::Poisson {
            rate: 500.0,
            seed: 1
        })
    );
    let p = plan(&["-R", "500", "--schedule", "poisson", "--seed", "42", U]);
    assert_eq!(
        p.rate,
        Some(Schedule::Poisson {
            rate: 500.0,
            seed: 42
        })
    );
    let p = plan(&["--schedule", "step:100,50,10s", U]);
    assert_eq!(
        p.rate,
        Some(Schedule::Step {
            start: 100.0,
            step: 50.0,
            every: Duration::from_secs(10)
        })
    );
    let p = plan(&["--schedule", "ramp:0,5000,30s", U]);
    assert_eq!(
        p.rate,
        Some(Schedule::Ramp {
            from: 0.0,
            to: 5000.0,
            over: Duration::from_secs(30)
        })
    );
    assert!(err(&["--schedule", "poisson", U]).contains("needs -R"));
    assert!(err(&["--schedule", "constant", U]).contains("needs -R"));
    assert!(err(&["-R", "10", "--schedule", "ramp:1,2,3s", U]).contains("-R does not apply"));
    assert!(err(&["--schedule", "ramp:1,2", U]).contains("FROM,TO,OVER"));
    assert!(err(&["--schedule", "step:1,2,0s", U]).contains("EVERY"));
    assert!(err(&["--schedule", "sine", U]).contains("--schedule"));
    assert!(err(&["-R", "10", "--seed", "3", U]).contains("--seed"));
    assert!(err(&["-R", "0", U]).contains("above 0"));
    assert!(err(&["-R", "fast", U]).contains("-R"));
}

#[test]
fn rate_below_threads() {
    let e = err(&["-t", "4", "-R", "3", U]);
    assert_eq!(
        e,
        "rate 3 req/s is below the 4 threads: each thread needs at least 1 req/s; \
         lower -t or raise -R"
    );
    assert!(try_plan(&["-t", "4", "-R", "4", U]).is_ok());
    // A defaulted -t is lowered to fit the rate instead.
    assert_eq!(plan(&["-R", "2", U]).threads, 2);
    assert_eq!(plan(&["-R", "0.5", U]).threads, 1);
    assert!(err(&["-t", "4", "--schedule", "ramp:1,3,10s", U]).contains("below the 4 threads"));
}

#[test]
fn fail_if_and_find_max() {
    let p = plan(&[
        "--fail-if",
        "p99>5ms,errors>0.1%",
        "--fail-if",
        "rate<1000",
        U,
    ]);
    assert_eq!(p.fail_if.len(), 3);
    assert!(err(&["--fail-if", "p99", U]).contains("--fail-if"));

    let p = plan(&["--find-max", "--slo", "p99<10ms", U]);
    let f = p.find_max.expect("find-max");
    assert_eq!(f.slo.len(), 1);
    assert_eq!(f.start_rate, 100.0);
    assert_eq!(f.factor, 1.5);
    assert_eq!(f.step, Duration::from_secs(10));
    assert_eq!(p.rate, Some(Schedule::Constant { rate: 100.0 }));
    let p = plan(&[
        "--find-max",
        "--slo",
        "p99<10ms",
        "--start-rate",
        "2k",
        "--step-factor",
        "2",
        "--step-duration",
        "5s",
        U,
    ]);
    let f = p.find_max.unwrap();
    assert_eq!(
        (f.start_rate, f.factor, f.step),
        (2000.0, 2.0, Duration::from_secs(5))
    );
    assert_eq!(p.stop, Stop::Duration(Duration::from_secs(5)));

    assert!(err(&["--find-max", U]).contains("--find-max needs --slo"));
    assert!(err(&["--slo", "p99<1ms", U]).contains("--slo applies only"));
    assert!(err(&["--find-max", "--slo", "p99<1ms", "-R", "5", U]).contains("--start-rate"));
    assert!(err(&["--find-max", "--slo", "p99<1ms", "-d", "5s", U]).contains("do not apply"));
    assert!(err(&["--step-factor", "2", U]).contains("only to --find-max"));
    assert!(err(&["--find-max", "--slo", "p99<1ms", "--step-factor", "1", U]).contains("above 1"));
}

#[test]
fn bad_inputs() {
    assert!(err(&["-d", "5s", "-n", "100", U]).contains("-d and -n conflict"));
    assert!(err(&["-p", "0", U]).contains("-p (pipeline depth) must be at least 1"));
    assert_eq!(
        err(&["--frobnicate", U]),
        "unknown flag --frobnicate (see ringload --help)"
    );
    assert!(err(&["-Z", U]).contains("unknown flag -Z"));
    assert!(err(&["-c", "0", U]).contains("-c must be at least 1"));
    assert!(err(&["-c", "ten", U]).contains("-c"));
    assert!(err(&["-t", "0", U]).contains("-t must be at least 1"));
    assert!(err(&["-d", "0s", U]).contains("-d must be above 0"));
    assert!(err(&["-d", "5 parsecs", U]).contains("bad duration"));
    assert!(err(&["--timeout", "0", U]).contains("--timeout"));
    assert!(err(&["--no-keepalive", "-p", "2", U]).contains("keep-alive"));
    assert!(err(&["--no-keepalive", "--close-every", "3", U]).contains("conflict"));
    assert!(err(&["-c", "1", "-c", "2", U]).contains("given twice"));

    // File descriptors: 1024 soft, 4096 hard in ENV.
    assert!(try_plan(&["-c", "960", U]).is_ok());
    let e = err(&["-c", "961", U]);
    assert!(e.contains("ulimit -n 1025") && e.contains("4096"), "{e}");
    let e = err(&["-c", "5000", U]);
    assert!(e.contains("hard limit 4096"), "{e}");
    // And against this process's real limit.
    let e = match parse(args(&["-c", "4000000000000", U])) {
        Err(e) => e,
        Ok(_) => return, // an unlimited RLIMIT_NOFILE
    };
    assert!(e.contains("file descriptors"), "{e}");
}

#[test]
fn help_and_compare() {
    assert!(matches!(parse_with(args(&["-h"]), &ENV), Ok(Command::Help)));
    assert!(matches!(
        parse_with(args(&["--help", U]), &ENV),
        Ok(Command::Help)
    ));
    for flag in [
        "--connections",
        "--threads",
        "--duration",
        "--requests",
        "--rate",
        "--schedule",
        "--seed",
        "--warmup",
        "--timeout",
        "--connect-timeout",
        "--drain",
        "--method",
        "--header",
        "--body",
        "--body-file",
        "--no-keepalive",
        "--close-every",
        "--pipeline",
        "--insecure",
        "--tally",
        "--io",
        "--hgrm",
        "--hlog",
        "--json",
        "--svg",
        "--progress",
        "--quiet",
        "--fail-if",
        "--find-max",
        "--slo",
        "--start-rate",
        "--step-factor",
        "--step-duration",
        "compare",
    ] {
        assert!(USAGE.contains(flag), "usage lacks {flag}");
    }
    match parse_with(args(&["compare", "a.json", "b.json"]), &ENV) {
        Ok(Command::Compare(a, b)) => {
            assert_eq!((a, b), (PathBuf::from("a.json"), PathBuf::from("b.json")))
        }
        other => panic!("{other:?}"),
    }
    assert!(err(&["compare", "a.json"]).contains("two JSON reports"));
    assert!(err(&["compare", "a", "b", "c"]).contains("two JSON reports"));
    assert!(err(&["compare", "--x", "a", "b"]).contains("unknown flag"));
}

// Schedules, through the public API.

fn union(s: &Schedule, conns: usize, until: Duration) -> Vec<Duration> {
    let mut all = Vec::new();
    for c in 0..conns {
        let mut tt = Timetable::new(s, c, conns);
        loop {
            let t = tt.next();
            if t >= until {
                break;
            }
            all.push(t);
        }
    }
    all.sort();
    all
}

#[test]
fn constant_union_spaced_exactly() {
    for conns in [1, 10, 50, 128] {
        let r = 2000u64;
        let all = union(
            &Schedule::Constant { rate: r as f64 },
            conns,
            Duration::from_secs(1),
        );
        assert_eq!(all.len() as u64, r);
        for (k, t) in all.iter().enumerate() {
            assert_eq!(*t, Duration::from_micros(k as u64 * 500), "k {k}");
        }
    }
}

#[test]
fn step_and_ramp_windows() {
    let cases = [
        Schedule::Step {
            start: 200.0,
            step: 300.0,
            every: Duration::from_millis(700),
        },
        Schedule::Ramp {
            from: 50.0,
            to: 3000.0,
            over: Duration::from_secs(2),
        },
    ];
    for s in &cases {
        let total = Duration::from_secs(3);
        let all = union(s, 16, total);
        let w = Duration::from_millis(50);
        let mut a = Duration::ZERO;
        while a < total {
            let b = a + w;
            let got = all.iter().filter(|&&t| t >= a && t < b).count() as f64;
            let want = cumulative(s, b) - cumulative(s, a);
            assert!(
                (got - want).abs() <= 1.0 + 1e-9,
                "{s:?} at {a:?}: {got} vs {want}"
            );
            a = b;
        }
        let mr = mean_rate(s, total);
        assert!((all.len() as f64 / 3.0 - mr).abs() <= 1.0, "{s:?}");
    }
}

#[test]
fn poisson_rate_and_seeds() {
    let draws = |seed: u64, conn: usize, conns: usize| -> Vec<Duration> {
        let mut tt = Timetable::new(&Schedule::Poisson { rate: 800.0, seed }, conn, conns);
        (0..10_000).map(|_| tt.next()).collect()
    };
    let d = draws(1, 0, 1);
    let rate = 10_000.0 / d.last().unwrap().as_secs_f64();
    assert!((rate / 800.0 - 1.0).abs() < 0.05, "rate {rate}");
    assert!(d.windows(2).all(|w| w[0] <= w[1]));
    // 4 connections each at 200/s.
    let d = draws(5, 2, 4);
    let rate = 10_000.0 / d.last().unwrap().as_secs_f64();
    assert!((rate / 200.0 - 1.0).abs() < 0.05, "rate {rate}");
    assert_eq!(draws(7, 1, 4), draws(7, 1, 4));
    assert_ne!(draws(7, 1, 4), draws(8, 1, 4));
    assert_ne!(draws(7, 1, 4), draws(7, 2, 4));
    assert!(d.iter().all(|&t| t < NEVER));
}
