//! perf/compare end to end, in its quick form against ringproxy and the io_uring byte relay
//! (examples/relay_floor.rs): direct, ringproxy ×1 and the relay ×1 at 27 B and c50, one run
//! of 1 s each, with cargo test's builds. The tables, the JSON and the charts come out, every
//! cell has a figure and no error, and nothing it started is left listening.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A base for `--port-base`: the origin ports base and base+1, the nginx origin's status
/// port base+2 and the proxy's base+80 all free now.
fn free_port_base() -> u16 {
    for _ in 0..50 {
        let base = common::free_port();
        if base > 65535 - 80 {
            continue;
        }
        let free = [1, 2, 80]
            .iter()
            .all(|d| std::net::TcpListener::bind(("127.0.0.1", base + d)).is_ok());
        if free {
            return base;
        }
    }
    panic!("no free port base");
}

/// The cells of a results table: for each row, its columns (trimmed).
fn table_rows(md: &str) -> Vec<Vec<String>> {
    md.lines()
        .filter(|l| l.starts_with("| 50 |"))
        .map(|l| l.split('|').map(|c| c.trim().to_string()).collect())
        .collect()
}

#[test]
fn quick_compare_writes_results_and_stops_what_it_started() {
    let out = common::temp_dir("perf-compare");
    let base = free_port_base();
    let built = Path::new(common::ringproxy_bin()).parent().unwrap();
    // `cargo test` builds the examples before it runs any test; `--test perf_compare` alone
    // does not.
    assert!(
        built.join("examples/relay_floor").exists(),
        "no {}: run the whole `cargo test`, or `cargo build --example relay_floor` first",
        built.join("examples/relay_floor").display()
    );
    let repo = env!("CARGO_MANIFEST_DIR");
    let mut child = Command::new("python3")
        .arg("perf/lib/compare.py")
        .args([
            "--quick",
            "--proxies",
            "ringproxy,relay-floor",
            "--wrk",
            "0",
        ])
        .args(["--duration", "1", "--warmup", "0.5"])
        .arg("--out")
        .arg(&out)
        .args(["--port-base", &base.to_string()])
        .env("PERF_BUILT", built)
        .current_dir(repo)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3");
    let until = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > until {
            let _ = child.kill();
            let _ = child.wait();
            panic!("perf/compare ran past 120 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert!(status.success(), "perf/compare failed: {err}");

    let files: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    for suffix in [".md", ".json", "-cpu.svg", "-latency.svg"] {
        let n = files.iter().filter(|f| f.ends_with(suffix)).count();
        assert_eq!(n, 1, "one {suffix} file in {files:?}");
    }
    let md_name = files.iter().find(|f| f.ends_with(".md")).unwrap();
    let md = std::fs::read_to_string(out.join(md_name)).unwrap();
    let rows = table_rows(&md);
    let row = |target: &str| {
        rows.iter()
            .find(|r| r[2] == target)
            .unwrap_or_else(|| panic!("no {target} row in\n{md}"))
    };
    for target in ["direct", "ringproxy ×1", "io_uring byte relay ×1"] {
        let r = row(target);
        // req/s (× direct) first: a positive count.
        let rate = r[3].split_whitespace().next().unwrap();
        assert!(
            rate.trim_end_matches('k').parse::<f64>().unwrap() > 0.0,
            "{target}: {r:?}"
        );
        assert_eq!(r.last().map(String::as_str), Some(""), "row ends with '|'");
        assert_eq!(r[r.len() - 2], "0", "{target} had errors: {r:?}");
    }
    // The proxy's CPU per request, counted from the kernel: a positive median.
    let proxy = row("ringproxy ×1");
    let cpu = proxy[4].split_whitespace().next().unwrap();
    assert!(cpu.parse::<f64>().unwrap() > 0.0, "{proxy:?}");
    // Backend connections opened (the column before errors), then the bound in parentheses.
    let opened = |r: &[String]| -> usize {
        let cell = r[r.len() - 3].split_whitespace().next().unwrap();
        cell.parse().unwrap()
    };
    // Within the bound of 1 worker × 50 clients.
    assert!((1..=50).contains(&opened(proxy)), "{proxy:?}");
    // The relay pairs each client connection with a member connection of its own: the
    // warm-up's 50, the run's 50 and the readiness probes'.
    let relay = row("io_uring byte relay ×1");
    assert!(opened(relay) >= 100, "{relay:?}");

    let json_name = files.iter().find(|f| f.ends_with(".json")).unwrap();
    let json = std::fs::read_to_string(out.join(json_name)).unwrap();
    assert!(json.contains("\"ringproxy\""), "{json}");
    for f in files.iter().filter(|f| f.ends_with(".svg")) {
        let svg = std::fs::read_to_string(out.join(f)).unwrap();
        assert!(
            svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"),
            "{f}"
        );
    }
    for port in [base, base + 1, base + 80] {
        assert!(
            std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
            "something still listens on {port}"
        );
    }
    std::fs::remove_dir_all(&out).unwrap();
}

/// perf/compare's port check waits for a listener that is about to go (an io_uring server's
/// outlives its process by moments), and still reports one that stays.
#[test]
fn the_port_check_waits_for_a_listener_on_its_way_out() {
    let check = |port: u16, timeout: &str| -> bool {
        let out = Command::new("python3")
            .arg("-c")
            .arg(format!(
                "import sys; sys.path.insert(0, 'perf/lib'); import procs; \
                 print(procs.port_free({port}, timeout={timeout}))"
            ))
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .expect("python3");
        assert!(out.status.success(), "{out:?}");
        match String::from_utf8_lossy(&out.stdout).trim() {
            "True" => true,
            "False" => false,
            other => panic!("port_free printed {other:?}"),
        }
    };
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    assert!(
        !check(port, "0.3"),
        "a listener that stays is reported busy"
    );
    let closer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(500));
        drop(listener);
    });
    assert!(
        check(port, "10"),
        "the port is free once the listener is gone"
    );
    closer.join().unwrap();
}
