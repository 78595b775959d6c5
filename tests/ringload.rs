//! ringload against `ringload origin` (and through ringproxy): the numbers it reports agree
//! with what the origin counted, the corrected latency sees an injected stall, the output
//! files parse back, and bad input gets a one-line error and a non-zero exit.

mod common;
use common::*;

use std::process::{Command, Output};
use std::time::Duration;

use ringproxy::load::report::compare::{Json, parse_json};
use ringproxy::load::report::json_schema::{JSON_SCHEMA, validate};

fn ringload(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ringload"))
        .args(args)
        .output()
        .expect("run ringload")
}

/// Runs ringload and asserts it succeeded.
fn ringload_ok(args: &[&str]) -> Output {
    let out = ringload(args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Runs ringload with `--json` into `dir`, asserts it succeeded, and returns the parsed report.
fn ringload_json(dir: &std::path::Path, name: &str, args: &[&str]) -> Json {
    let path = dir.join(name);
    let mut all: Vec<&str> = args.to_vec();
    let p = path.to_str().unwrap().to_string();
    all.extend(["--json", p.as_str()]);
    ringload_ok(&all);
    parse_json(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

fn num(j: &Json, path: &str) -> f64 {
    match j.at(path) {
        Some(Json::Num(n)) => *n,
        other => panic!("{path}: {other:?}"),
    }
}

/// The origin's counters for `port`, read from its stats file.
fn origin_count(stats: &std::path::Path, port: u16, key: &str) -> f64 {
    let text = std::fs::read_to_string(stats).unwrap();
    num(&parse_json(&text).unwrap(), &format!("ports/{port}/{key}"))
}

fn wait_stats(stats: &std::path::Path) {
    std::thread::sleep(Duration::from_millis(350)); // the origin rewrites the file every 100 ms
    assert!(stats.exists());
}

/// On each I/O backend, ringload's and the origin's both.
#[test]
fn counts_match_what_the_origin_counted_and_json_matches_its_schema() {
    for io in ["uring", "ring", "epoll"] {
        counts_match(io);
    }
}

fn counts_match(io: &str) {
    let port = free_port();
    let dir = temp_dir("rl-counts");
    let stats = dir.join("stats.json");
    let _o = start_origin(
        &[port],
        &["--io", io, "--stats-file", stats.to_str().unwrap()],
    );
    let json = dir.join("run.json");
    let url = format!("http://127.0.0.1:{port}/?status=201");
    let out = ringload_ok(&[
        "--io",
        io,
        "-c",
        "8",
        "-t",
        "2",
        "-n",
        "5000",
        "-p",
        "2",
        "--json",
        json.to_str().unwrap(),
        &url,
    ]);
    let text = std::fs::read_to_string(&json).unwrap();
    let j = parse_json(&text).unwrap();
    let schema = parse_json(JSON_SCHEMA).unwrap();
    let errs = validate(&schema, &j);
    assert!(errs.is_empty(), "schema: {errs:?}");
    wait_stats(&stats);
    assert_eq!(num(&j, "responses"), 5000.0);
    assert_eq!(num(&j, "status/201"), 5000.0);
    assert_eq!(origin_count(&stats, port, "requests"), 5000.0);
    assert_eq!(origin_count(&stats, port, "status/201"), 5000.0);
    assert_eq!(
        num(&j, "bytes_read"),
        origin_count(&stats, port, "bytes_out")
    );
    assert_eq!(
        num(&j, "conns/opened"),
        origin_count(&stats, port, "connections")
    );
    assert_eq!(num(&j, "latency/count"), 5000.0);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("201: 5000"), "{io}: {stdout}");
}

#[test]
fn warmup_requests_run_but_are_not_counted() {
    let port = free_port();
    let dir = temp_dir("rl-warmup");
    let stats = dir.join("stats.json");
    let _o = start_origin(&[port], &["--stats-file", stats.to_str().unwrap()]);
    let url = format!("http://127.0.0.1:{port}/");
    let args = ["-c", "2", "-t", "1", "-n", "300", "--warmup", "500ms", &url];
    let j = ringload_json(&dir, "run.json", &args);
    wait_stats(&stats);
    assert_eq!(num(&j, "responses"), 300.0);
    assert!(
        origin_count(&stats, port, "requests") > 400.0,
        "the warm-up must have sent requests too"
    );
}

#[test]
fn tally_shows_how_the_balancer_split_the_tutorial_load() {
    let (a, b) = (free_port(), free_port());
    let _o = start_origin(&[a, b], &[]);
    let conf = format!(
        "{}RewriteRule ^/service1/(.*) balancer://t/service1/$1 [P,L]\n",
        balancer_conf("t", &[a, b], &[], "")
    );
    let p = start_proxy("rl-tally", &conf, 2);
    let url = format!("http://127.0.0.1:{}/service1/index.html", p.port);
    let out = ringload_ok(&["-c", "4", "-t", "2", "-n", "2000", "--tally", "body", &url]);
    let s = String::from_utf8_lossy(&out.stdout);
    for port in [a, b] {
        let line = s
            .lines()
            .find(|l| l.contains(&format!("Server response, port {port}")))
            .unwrap_or_else(|| panic!("no tally line for {port}: {s}"));
        assert!(line.contains(" 1000 ") && line.contains("50.00%"), "{line}");
    }
}

#[test]
fn corrected_p99_reflects_a_one_second_stall_at_a_fixed_rate() {
    let port = free_port();
    let mut o = start_origin(&[port], &[]);
    let dir = temp_dir("rl-stall");
    let json = dir.join("run.json");
    let url = format!("http://127.0.0.1:{port}/");
    let pid = o.pid();
    let staller = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(1500));
        // SAFETY: stops and resumes our own child.
        unsafe { libc::kill(pid, libc::SIGSTOP) };
        std::thread::sleep(Duration::from_secs(1));
        unsafe { libc::kill(pid, libc::SIGCONT) };
    });
    ringload_ok(&[
        "-c",
        "20",
        "-t",
        "1",
        "-R",
        "500",
        "-d",
        "5s",
        "--timeout",
        "3s",
        "--json",
        json.to_str().unwrap(),
        &url,
    ]);
    staller.join().unwrap();
    let j = parse_json(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let corrected = num(&j, "latency/p99");
    let service = num(&j, "service/p99");
    assert!(
        corrected >= 800_000.0,
        "corrected p99 {corrected} µs does not show the 1 s stall"
    );
    assert!(
        service < 200_000.0,
        "service p99 {service} µs: only the requests in flight at the stall waited"
    );
    let _ = o.stop(libc::SIGTERM, Duration::from_secs(5));
}

#[test]
fn hgrm_and_hlog_parse_back() {
    use hdrhistogram::serialization::Deserializer;
    use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};
    let port = free_port();
    let _o = start_origin(&[port], &[]);
    let dir = temp_dir("rl-files");
    let (hgrm, hlog, svg) = (dir.join("l.hgrm"), dir.join("l.hlog"), dir.join("l.svg"));
    let url = format!("http://127.0.0.1:{port}/");
    ringload_ok(&[
        "-c",
        "4",
        "-t",
        "1",
        "-R",
        "2000",
        "-d",
        "2s",
        "--hgrm",
        hgrm.to_str().unwrap(),
        "--hlog",
        hlog.to_str().unwrap(),
        "--svg",
        svg.to_str().unwrap(),
        &url,
    ]);
    let text = std::fs::read_to_string(&hgrm).unwrap();
    let rows: Vec<Vec<&str>> = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        rows[0],
        ["Value", "Percentile", "TotalCount", "1/(1-Percentile)"]
    );
    assert!(rows[1..].iter().all(|r| r.len() == 4));
    let total: u64 = rows.last().unwrap()[2].parse().unwrap();
    assert!(total > 3000, "{total}");
    let log = std::fs::read(&hlog).unwrap();
    let mut d = Deserializer::new();
    let mut count = 0u64;
    let mut intervals = 0;
    for e in IntervalLogIterator::new(&log) {
        if let Ok(LogEntry::Interval(i)) = e {
            let bytes = base64_decode(i.encoded_histogram());
            let h: hdrhistogram::Histogram<u64> = d.deserialize(&mut &bytes[..]).unwrap();
            count += h.len();
            intervals += 1;
        }
    }
    assert!(intervals >= 2);
    assert_eq!(count, total);
    assert!(std::fs::read_to_string(&svg).unwrap().starts_with("<svg"));
}

/// Standard base64 (the .hlog encoding), without a crate.
fn base64_decode(s: &str) -> Vec<u8> {
    let val = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        _ => 63,
    };
    let bytes: Vec<u8> = s.bytes().filter(|&c| c != b'=').collect();
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    for chunk in bytes.chunks(4) {
        let mut n = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            n |= (val(c) as u32) << (18 - 6 * i);
        }
        out.push((n >> 16) as u8);
        if chunk.len() > 2 {
            out.push((n >> 8) as u8);
        }
        if chunk.len() > 3 {
            out.push(n as u8);
        }
    }
    out
}

#[test]
fn fail_if_sets_the_exit_code_and_compare_diffs_two_runs() {
    let port = free_port();
    let _o = start_origin(&[port], &[]);
    let dir = temp_dir("rl-failif");
    let (a, b) = (dir.join("a.json"), dir.join("b.json"));
    let url = format!("http://127.0.0.1:{port}/");
    let ok = ringload(&[
        "-c",
        "2",
        "-t",
        "1",
        "-n",
        "500",
        "--fail-if",
        "errors>1%",
        "--json",
        a.to_str().unwrap(),
        &url,
    ]);
    assert_eq!(
        ok.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&ok.stdout)
    );
    let slow = format!("http://127.0.0.1:{port}/?delay=20");
    let bad = ringload(&[
        "-c",
        "2",
        "-t",
        "1",
        "-n",
        "50",
        "--fail-if",
        "p99<1ms",
        "--json",
        b.to_str().unwrap(),
        &slow,
    ]);
    let _ = bad;
    let fail = ringload(&[
        "-c",
        "2",
        "-t",
        "1",
        "-n",
        "50",
        "--fail-if",
        "p99>1ms",
        &slow,
    ]);
    assert_eq!(fail.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&fail.stdout).contains("fail-if: p99"));
    let cmp = ringload(&["compare", a.to_str().unwrap(), b.to_str().unwrap()]);
    assert!(
        cmp.status.success(),
        "{}",
        String::from_utf8_lossy(&cmp.stderr)
    );
    let t = String::from_utf8_lossy(&cmp.stdout);
    assert!(t.contains("rate") && t.contains("p99"), "{t}");
}

#[test]
fn bad_input_gets_one_line_and_a_nonzero_exit() {
    let dead = free_port();
    for (args, want) in [
        (vec!["-c", "1", "-n", "1", "htp:/nope"], "URL"),
        (
            vec!["-t", "4", "-c", "8", "-R", "2", "http://127.0.0.1:1/"],
            "below the 4 threads",
        ),
        (vec!["-c", "1000000", "http://127.0.0.1:1/"], "ulimit -n"),
    ] {
        let out = ringload(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        assert!(err.contains(want), "{args:?}: {err}");
    }
    let url = format!("http://127.0.0.1:{dead}/");
    // -n would never be reached: the run must still end, with the error.
    let out = ringload(&["-c", "2", "-n", "100", "--connect-timeout", "200ms", &url]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no connection") && err.contains("connect:refused"),
        "{err}"
    );
}

#[test]
fn find_max_steps_the_rate_up_until_the_slo_breaks() {
    let port = free_port();
    let _o = start_origin(&[port], &[]);
    // Four connections to an origin that takes 5 ms per request top out near 800 req/s.
    let url = format!("http://127.0.0.1:{port}/?delay=5");
    let out = ringload(&[
        "-c",
        "4",
        "-t",
        "1",
        "--find-max",
        "--slo",
        "p99<100ms",
        "--start-rate",
        "200",
        "--step-factor",
        "2",
        "--step-duration",
        "1s",
        &url,
    ]);
    let s = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{s}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let knee = s
        .lines()
        .find(|l| l.starts_with("knee: "))
        .unwrap_or_else(|| panic!("{s}"));
    let rate: f64 = knee.split_whitespace().nth(1).unwrap().parse().unwrap();
    assert!((200.0..=800.0).contains(&rate), "{s}");
    assert!(
        s.contains("SLO broken") || s.contains("generator limit"),
        "{s}"
    );
}

#[test]
fn ramp_and_poisson_schedules_send_what_they_promise() {
    let port = free_port();
    let _o = start_origin(&[port], &[]);
    let dir = temp_dir("rl-sched");
    let url = format!("http://127.0.0.1:{port}/");
    // A ramp from 100 to 500 req/s over 2 s sends the integral: 600 requests.
    let args = [
        "-c",
        "8",
        "-t",
        "1",
        "--schedule",
        "ramp:100,500,2s",
        "-d",
        "2s",
        &url,
    ];
    let n = num(&ringload_json(&dir, "ramp.json", &args), "responses");
    assert!((570.0..=630.0).contains(&n), "ramp sent {n}, want ~600");
    // Poisson at 400 req/s for 2 s: about 800.
    let args = [
        "-c",
        "8",
        "-t",
        "1",
        "-R",
        "400",
        "--schedule",
        "poisson",
        "--seed",
        "7",
        "-d",
        "2s",
        &url,
    ];
    let n = num(&ringload_json(&dir, "poisson.json", &args), "responses");
    assert!((680.0..=920.0).contains(&n), "poisson sent {n}, want ~800");
}

#[test]
fn a_terminal_gets_a_live_progress_line() {
    let port = free_port();
    let _o = start_origin(&[port], &[]);
    let url = format!("http://127.0.0.1:{port}/");
    // `script` gives ringload a pseudo-terminal, as an interactive user would have.
    let cmd = format!(
        "{} -c 2 -t 1 -d 2500ms {url}",
        env!("CARGO_BIN_EXE_ringload")
    );
    let out = Command::new("script")
        .args(["-qefc", &cmd, "/dev/null"])
        .output()
        .expect("script(1)");
    let text = String::from_utf8_lossy(&out.stdout);
    let lines = text.matches("\r[").count();
    assert!(lines >= 2, "expected a progress line each second: {text:?}");
    assert!(
        text.contains("responses") && text.contains("req/s"),
        "{text}"
    );
}

#[test]
fn a_schedule_that_falls_to_zero_ends_on_time_and_unsent_requests_are_reported() {
    let port = free_port();
    let _o = start_origin(&[port], &[]);
    let dir = temp_dir("rl-backlog");
    // A ramp down to 0 req/s: connections wait for a send that never comes; the run must still
    // end at -d.
    let t0 = std::time::Instant::now();
    let out = ringload(&[
        "-c",
        "4",
        "-t",
        "1",
        "--schedule",
        "ramp:50,0,1s",
        "-d",
        "2s",
        &format!("http://127.0.0.1:{port}/"),
    ]);
    assert!(out.status.success());
    assert!(
        t0.elapsed() < Duration::from_secs(5),
        "took {:?}",
        t0.elapsed()
    );
    // One connection to a 200 ms origin cannot send 100 req/s: the requests that were due but
    // never sent are errors with their waiting time as latency, not silently dropped.
    let url = format!("http://127.0.0.1:{port}/?delay=200");
    let j = ringload_json(
        &dir,
        "b.json",
        &["-c", "1", "-t", "1", "-R", "100", "-d", "2s", &url],
    );
    let unsent = num(&j, "errors/unsent:backlog");
    let responses = num(&j, "responses");
    assert!(
        unsent + responses >= 190.0,
        "{unsent} unsent + {responses} responses of ~200 scheduled"
    );
    assert!(
        num(&j, "latency/max") > 1_000_000.0,
        "the backlog's waiting time is in the latency"
    );
}

#[test]
fn requests_pipelined_behind_a_connection_close_are_sent_again_not_counted_as_errors() {
    let port = free_port();
    let _o = start_origin(&[port], &[]);
    let dir = temp_dir("rl-requeue");
    // Every response says Connection: close; three more requests are pipelined behind each.
    let url = format!("http://127.0.0.1:{port}/?close=1");
    let j = ringload_json(
        &dir,
        "r.json",
        &["-c", "2", "-t", "1", "-p", "4", "-n", "200", &url],
    );
    assert_eq!(num(&j, "responses"), 200.0);
    assert_eq!(num(&j, "error_count"), 0.0);
    assert!(num(&j, "conns/opened") >= 200.0);
}

/// Requests in flight at the stop are all accounted for: those answered during the drain,
/// those that time out during it (a 1 s origin, a 300 ms timeout) and those still unanswered
/// at its deadline add up to "in flight at stop".
#[test]
fn requests_timing_out_during_the_drain_count_as_in_flight_at_the_stop() {
    let port = free_port();
    let _o = start_origin(&[port], &[]);
    let dir = temp_dir("rl-drain");
    let url = format!("http://127.0.0.1:{port}/?delay=1000");
    let j = ringload_json(
        &dir,
        "d.json",
        &[
            "-c",
            "2",
            "-t",
            "1",
            "-d",
            "1s",
            "--timeout",
            "300ms",
            "--drain",
            "1s",
            &url,
        ],
    );
    let failed = num(&j, "failed_in_drain");
    assert!(failed >= 1.0, "{failed} failed during the drain");
    assert_eq!(
        num(&j, "in_flight_at_stop"),
        num(&j, "drained") + num(&j, "abandoned") + failed
    );
    assert_eq!(num(&j, "responses"), 0.0);
    assert!(num(&j, "errors/response:timeout") >= failed);
}
