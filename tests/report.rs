//! The report formats of `ringload`, on a hand-built run with known values: 10,000 samples of
//! 1..=10,000 µs plus one 1 s outlier, and a few one-second intervals.

use std::collections::BTreeMap;

use hdrhistogram::Histogram;
use hdrhistogram::serialization::Deserializer;
use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};

use ringproxy::load::plan::{Cmp, Condition, Metric, Outputs};
use ringproxy::load::report::compare::{Json, compare, parse_json};
use ringproxy::load::report::failif::{evaluate, parse_conditions};
use ringproxy::load::report::hgrm::write_hgrm;
use ringproxy::load::report::hlog::write_hlog;
use ringproxy::load::report::json::to_json;
use ringproxy::load::report::json_schema::{JSON_SCHEMA, validate};
use ringproxy::load::report::model::{
    ConnStats, Cost, RunConfig, RunReport, SCHEMA_VERSION, Verdict, new_histogram,
};
use ringproxy::load::report::summary::{progress_line, summary};
use ringproxy::load::report::svg::{SPECTRUM_TITLE, TIMELINE_TITLE, to_svg};
use ringproxy::load::report::write_outputs;

fn hist(values: impl IntoIterator<Item = u64>) -> Histogram<u64> {
    let mut h = new_histogram();
    for v in values {
        h.record(v).unwrap();
    }
    h
}

/// 10,001 responses in 10 s: latency 1..=10,000 µs plus 1 s; service time half of that.
fn report() -> RunReport {
    let latency = hist((1..=10_000).chain([1_000_000]));
    let service = hist((1..=10_000u64).map(|v| v.div_ceil(2)).chain([2_000]));
    let intervals: Vec<(f64, Histogram<u64>)> = (0..10)
        .map(|i| {
            let mut h = hist((i * 1000 + 1..=i * 1000 + 1000).map(|v| v as u64));
            if i == 3 {
                h.record(1_000_000).unwrap();
            }
            (i as f64, h)
        })
        .collect();
    RunReport {
        config: RunConfig {
            urls: vec!["http://127.0.0.1:8080/\"quoted\"".into()],
            method: "GET".into(),
            connections: 50,
            threads: 2,
            pipeline: 1,
            mode: "constant:1000".into(),
            target_rate: 1000.0,
            io: "io_uring".into(),
            version: "0.1.0".into(),
        },
        started_unix: 1_700_000_000.5,
        duration_s: 10.0,
        responses: 10_001,
        bytes_read: 1_200_000,
        bytes_written: 800_000,
        latency,
        service,
        connect: hist([50, 60, 70, 900]),
        ttfb: hist((1..=100).map(|v| v * 10)),
        send_lag: hist((1..=1000).map(|v| v % 40 + 1)),
        status: BTreeMap::from([(200, 9_901), (503, 100)]),
        errors: BTreeMap::from([
            ("read:reset".to_string(), 7),
            ("response:timeout".to_string(), 3),
        ]),
        conns: ConnStats {
            opened: 52,
            reused: 9_949,
            closed_by_server: 2,
        },
        tally: BTreeMap::from([
            ("backend-a".to_string(), 6_000),
            ("backend-b".to_string(), 4_001),
        ]),
        in_flight_at_stop: 14,
        drained: 11,
        abandoned: 1,
        failed_in_drain: 2,
        intervals,
        cost: Cost {
            user_s: 0.02,
            sys_s: 0.11,
            cpu_us_per_request: 13.0,
            core_use_pct: 0.65,
            max_rss_kb: 5_120,
        },
        verdict: Verdict {
            trustworthy: true,
            reasons: vec![],
        },
    }
}

#[test]
fn hgrm_parses_back() {
    let r = report();
    let mut out = Vec::new();
    write_hgrm(&r.latency, &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some("       Value   Percentile   TotalCount 1/(1-Percentile)")
    );
    assert_eq!(lines.next(), Some(""));
    let mut rows = Vec::new();
    let mut footer = Vec::new();
    for l in lines {
        if l.starts_with('#') {
            footer.push(l);
            continue;
        }
        let f: Vec<&str> = l.split(' ').filter(|f| !f.is_empty()).collect();
        assert_eq!(f.len(), 4, "row {l:?}");
        // Fixed-width columns, as printf's %12 formats write them.
        assert_eq!(l.len(), 12 * 4 + 3, "row {l:?}");
        rows.push((
            f[0].parse::<f64>().unwrap(),
            f[1].parse::<f64>().unwrap(),
            f[2].parse::<u64>().unwrap(),
            f[3].to_string(),
        ));
    }
    assert!(rows.len() > 50, "{} rows", rows.len());
    for w in rows.windows(2) {
        assert!(w[1].0 >= w[0].0, "values not monotonic: {w:?}");
        assert!(w[1].1 >= w[0].1 && w[1].2 >= w[0].2);
    }
    let half = rows.iter().find(|r| r.1 >= 0.5).unwrap();
    assert!((half.0 - 5.0).abs() < 0.01, "50% row {half:?}");
    assert_eq!(half.3, "2.00");
    let last = rows.last().unwrap();
    assert_eq!(last.3, "inf");
    assert_eq!(last.1, 1.0);
    assert_eq!(last.2, 10_001);
    assert!((last.0 - 1000.0).abs() < 1.0, "last row {last:?}");
    // Every row but the last has a finite 1/(1-p).
    assert!(
        rows[..rows.len() - 1]
            .iter()
            .all(|r| r.3.parse::<f64>().is_ok())
    );
    assert_eq!(footer.len(), 3);
    assert!(footer[0].starts_with("#[Mean    = "), "{}", footer[0]);
    assert!(footer[1].starts_with("#[Max     = "));
    assert!(
        footer[1].ends_with("Total count    =        10001]"),
        "{}",
        footer[1]
    );
    assert!(
        footer[2].contains("SubBuckets     =         2048]"),
        "{}",
        footer[2]
    );
    let mean: f64 = footer[0][12..24].trim().parse().unwrap();
    assert!((mean - r.latency.mean() / 1000.0).abs() < 0.001);
}

#[test]
fn hlog_parses_back() {
    let r = report();
    let mut out = Vec::new();
    write_hlog(&r, &mut out).unwrap();
    let text = String::from_utf8(out.clone()).unwrap();
    assert!(text.contains("#[StartTime: 1700000000.500 (seconds since epoch)]"));
    assert!(text.contains("#[BaseTime: 1700000000.500 (seconds since epoch)]"));
    assert!(text.contains("\"StartTimestamp\",\"Interval_Length\""));
    assert!(text.contains("microseconds"));
    let mut deser = Deserializer::new();
    let mut got = Vec::new();
    let mut saw_start = false;
    for e in IntervalLogIterator::new(&out) {
        match e.unwrap() {
            LogEntry::StartTime(t) => {
                saw_start = true;
                assert!((t.as_secs_f64() - r.started_unix).abs() < 0.001);
            }
            LogEntry::BaseTime(_) => {}
            LogEntry::Interval(iv) => {
                let bytes = decode_base64(iv.encoded_histogram());
                let h: Histogram<u64> = deser.deserialize(&mut &bytes[..]).unwrap();
                got.push((
                    iv.start_timestamp().as_secs_f64(),
                    iv.duration(),
                    iv.max(),
                    h,
                ));
            }
        }
    }
    assert!(saw_start);
    assert_eq!(got.len(), r.intervals.len());
    for ((t, len, max, h), (ot, oh)) in got.iter().zip(&r.intervals) {
        assert!((t - ot).abs() < 0.001);
        assert_eq!(len.as_secs_f64(), 1.0);
        assert_eq!(h.len(), oh.len());
        assert_eq!(h.max(), oh.max());
        assert_eq!(h, oh);
        assert!(
            (max - oh.max() as f64 / 1000.0).abs() < 0.001,
            "max column in ms"
        );
    }
}

/// Standard base64 (the interval log's encoding), for the test only.
fn decode_base64(s: &str) -> Vec<u8> {
    let val = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => panic!("bad base64 {c}"),
    };
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0);
    for c in s.bytes().filter(|c| *c != b'=') {
        acc = (acc << 6) | u32::from(val(c));
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}

#[test]
fn json_round_trips_and_validates() {
    let r = report();
    let text = to_json(&r);
    let j = parse_json(&text).unwrap();
    let schema = parse_json(JSON_SCHEMA).unwrap();
    let errs = validate(&schema, &j);
    assert!(errs.is_empty(), "{errs:#?}");
    let num = |p: &str| {
        j.at(p)
            .and_then(Json::as_f64)
            .unwrap_or_else(|| panic!("{p}"))
    };
    assert_eq!(num("schema"), f64::from(SCHEMA_VERSION));
    assert_eq!(num("latency/p99"), r.latency.value_at_quantile(0.99) as f64);
    assert!((num("latency/p99") - 9_900.0).abs() <= 10.0);
    assert_eq!(num("latency/count"), 10_001.0);
    assert_eq!(num("latency/max"), r.latency.max() as f64);
    assert_eq!(num("service/p50"), r.service.value_at_quantile(0.5) as f64);
    assert_eq!(num("rate"), 1000.1);
    assert_eq!(num("status/503"), 100.0);
    assert_eq!(num("errors/read:reset"), 7.0);
    assert_eq!(num("error_count"), 10.0);
    assert_eq!(num("conns/reused"), 9_949.0);
    assert_eq!(num("tally/backend-a"), 6_000.0);
    assert_eq!(num("abandoned"), 1.0);
    assert_eq!(num("failed_in_drain"), 2.0);
    assert_eq!(num("cost/cpu_us_per_request"), 13.0);
    assert_eq!(num("intervals/3/max"), r.intervals[3].1.max() as f64);
    assert_eq!(num("intervals/9/t"), 9.0);
    assert_eq!(j.at("verdict/trustworthy"), Some(&Json::Bool(true)));
    assert_eq!(
        j.at("config/urls/0").and_then(Json::as_str),
        Some("http://127.0.0.1:8080/\"quoted\"")
    );
    match j.at("spectrum/latency") {
        Some(Json::Arr(a)) => {
            assert!(a.len() > 50);
            assert_eq!(
                a.last().unwrap().at("0").and_then(Json::as_f64),
                Some(100.0)
            );
        }
        other => panic!("spectrum {other:?}"),
    }
    // A report missing a key or with a wrong type fails the schema.
    let broken = text.replace("\"responses\":", "\"responses_x\":");
    assert!(!validate(&schema, &parse_json(&broken).unwrap()).is_empty());
    let broken = text.replace("\"trustworthy\":true", "\"trustworthy\":1");
    assert!(!validate(&schema, &parse_json(&broken).unwrap()).is_empty());
}

#[test]
fn svg_is_well_formed() {
    let mut r = report();
    r.config.urls = vec!["http://a/?x=1&y=<2>".into()];
    let s = to_svg(&r);
    assert!(s.starts_with("<svg"));
    assert!(s.trim_end().ends_with("</svg>"));
    assert!(s.contains(SPECTRUM_TITLE) && s.contains(TIMELINE_TITLE));
    assert!(s.contains("x=1&amp;y=&lt;2&gt;"));
    assert!(!s.contains("<script") && !s.contains("@font-face") && !s.contains("href"));
    for label in ["0%", "90%", "99%", "99.9%", "99.99%", "99.999%"] {
        assert!(s.contains(&format!(">{label}</text>")), "tick {label}");
    }
    // Balanced tags: every opening tag is closed, by `/>` or a matching `</name>`.
    let mut stack = Vec::new();
    let mut rest = &s[..];
    while let Some(i) = rest.find('<') {
        let end = rest[i..].find('>').expect("unterminated tag") + i;
        let tag = &rest[i + 1..end];
        if let Some(name) = tag.strip_prefix('/') {
            assert_eq!(stack.pop(), Some(name.to_string()), "mismatched </{name}>");
        } else if !tag.ends_with('/') {
            stack.push(tag.split_whitespace().next().unwrap().to_string());
        }
        rest = &rest[end + 1..];
    }
    assert!(stack.is_empty(), "unclosed {stack:?}");
    assert!(s.matches("<polyline").count() >= 5);
    // An empty run still renders.
    let mut e = report();
    e.latency = new_histogram();
    e.service = new_histogram();
    e.intervals.clear();
    let s = to_svg(&e);
    assert!(s.contains("no data"));
}

#[test]
fn fail_if_parses_examples() {
    let c = parse_conditions("p99>5ms,errors>0.1%,rate<1000,p99.9<=20ms,max<1s,status>1%").unwrap();
    let want = [
        (Metric::Latency(99.0), Cmp::Gt, 5_000.0),
        (Metric::ErrorRatio, Cmp::Gt, 0.001),
        (Metric::Rate, Cmp::Lt, 1000.0),
        (Metric::Latency(99.9), Cmp::Le, 20_000.0),
        (Metric::Latency(100.0), Cmp::Lt, 1_000_000.0),
        (Metric::BadStatusRatio, Cmp::Gt, 0.01),
    ];
    assert_eq!(c.len(), want.len());
    for (got, (m, op, v)) in c.iter().zip(want) {
        assert_eq!(got.metric, m);
        assert_eq!(got.op, op);
        assert!((got.value - v).abs() < 1e-9, "{got:?}");
    }
    let c = parse_conditions(" p50 >= 250us , p99.99>1.5s ").unwrap();
    assert_eq!(c[0].value, 250.0);
    assert_eq!(c[0].op, Cmp::Ge);
    assert_eq!(c[1].value, 1_500_000.0);
    for bad in [
        "",
        "p99",
        "p99>",
        "p99>5",
        "errors>0.1",
        "rate<fast",
        "foo>1",
        "p101>1ms",
        "p99>5ms,",
        ">5ms",
        "p99>-1ms",
    ] {
        assert!(parse_conditions(bad).is_err(), "{bad:?} accepted");
    }
    let e = parse_conditions("p99>5").unwrap_err();
    assert!(e.contains("p99>5") && e.contains("unit"), "{e}");
}

#[test]
fn fail_if_evaluates_both_ways() {
    let r = report();
    // p99 ≈ 9.9 ms, max 1 s, errors 10/10011 ≈ 0.1%, 503s ≈ 1%, rate 1000.1.
    let failing =
        parse_conditions("p99>5ms,errors>0.05%,rate<2000,p99.9<=20ms,max>=1s,status>0.5%").unwrap();
    let v = evaluate(&failing, &r);
    assert_eq!(v.len(), 6, "{v:#?}");
    assert!(
        v[0].starts_with("p99 9.9") && v[0].ends_with("ms > 5ms"),
        "{}",
        v[0]
    );
    assert_eq!(v[1], "errors 0.10% > 0.05%");
    assert_eq!(v[2], "rate 1000.1 req/s < 2000 req/s");
    assert!(
        v[3].starts_with("p99.9 ") && v[3].ends_with(" <= 20ms"),
        "{}",
        v[3]
    );
    assert!(v[4].starts_with("max 1.00s >= 1s"), "{}", v[4]);
    assert_eq!(v[5], "status 1.00% > 0.5%");
    let passing =
        parse_conditions("p99>20ms,errors>1%,rate<500,p99.9<=5ms,max<1s,status>5%").unwrap();
    assert_eq!(evaluate(&passing, &r), Vec::<String>::new());
    let direct = [Condition {
        metric: Metric::Latency(50.0),
        op: Cmp::Gt,
        value: 4_000.0,
    }];
    assert_eq!(evaluate(&direct, &r), ["p50 5.00ms > 4ms"]);
}

#[test]
fn compare_shows_rate_change() {
    let a = report();
    let mut b = report();
    b.responses = 12_000;
    b.cost.cpu_us_per_request = 11.5;
    let out = compare(&to_json(&a), &to_json(&b)).unwrap();
    let rate = out.lines().find(|l| l.starts_with("rate")).unwrap();
    assert!(rate.contains("1000.1") && rate.contains("1200.0"), "{rate}");
    assert!(
        rate.contains("+199.9") && rate.contains("+19.99") || rate.contains("+20.0%"),
        "{rate}"
    );
    let cpu = out.lines().find(|l| l.starts_with("CPU")).unwrap();
    assert!(cpu.contains("-1.50") && cpu.contains("-11.5%"), "{cpu}");
    assert!(out.lines().any(|l| l.starts_with("latency p99.9")));
    let other = to_json(&b).replace("\"schema\": 1", "\"schema\": 99");
    let e = compare(&to_json(&a), &other).unwrap_err();
    assert!(e.contains("schema"), "{e}");
    assert!(compare("{", &to_json(&a)).unwrap_err().contains("report A"));
}

#[test]
fn summary_is_complete() {
    let mut r = report();
    let s = summary(&r);
    for want in [
        "http://127.0.0.1:8080/",
        "open loop at 1000 req/s (schedule constant:1000)",
        "2 threads, 50 connections, pipeline 1",
        "10001 responses in 10.00s, 1000.1 req/s",
        "0.12 MB/s read",
        "p99.99",
        "corrected",
        "service time",
        "connect",
        "ttfb",
        "send lag",
        "200: 9901 (99.00%)",
        "503: 100",
        "read:reset",
        "52 opened",
        "2 closed by server",
        "backend-a",
        "59.99%",
        "14 in flight, 11 drained, 2 failed, 1 abandoned",
        "13.0 CPU-µs/request",
        "max RSS 5.24MB",
        "verdict      trustworthy",
    ] {
        assert!(s.contains(want), "missing {want:?} in\n{s}");
    }
    // Tally sorted by count, largest first; errors too.
    assert!(s.find("backend-a").unwrap() < s.find("backend-b").unwrap());
    assert!(s.find("read:reset").unwrap() < s.find("response:timeout").unwrap());
    // The corrected p50 is 5.00ms; max 1.00s.
    let row = s
        .lines()
        .find(|l| l.trim_start().starts_with("corrected"))
        .unwrap();
    assert!(row.contains("5.00ms") && row.contains("1.00s"), "{row}");
    r.verdict = Verdict {
        trustworthy: false,
        reasons: vec![
            "fell behind its schedule".into(),
            "used 93% of its cores".into(),
        ],
    };
    r.config.mode = "closed".into();
    let s = summary(&r);
    assert!(s.contains("NOT TRUSTWORTHY: fell behind its schedule; used 93% of its cores"));
    assert!(s.contains("closed loop") && !s.contains("send lag"));
    let p = progress_line(12.0, 24_000, 3, 2001.25);
    assert!(p.contains("12s") && p.contains("24000") && p.contains("2001.2"));
    assert!(p.contains("3 errors"), "{p}");
}

#[test]
fn writes_output_files() {
    let r = report();
    let dir = std::env::temp_dir().join(format!("ringload-report-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let outputs = Outputs {
        hgrm: Some(dir.join("run.hgrm")),
        hlog: Some(dir.join("run.hlog")),
        json: Some(dir.join("run.json")),
        svg: Some(dir.join("run.svg")),
        progress: false,
    };
    write_outputs(&r, &outputs).unwrap();
    for f in ["run.hgrm", "run.hlog", "run.json", "run.svg"] {
        assert!(std::fs::metadata(dir.join(f)).unwrap().len() > 100, "{f}");
    }
    let bad = Outputs {
        json: Some(dir.join("no/such/dir/run.json")),
        ..Outputs::default()
    };
    let e = write_outputs(&r, &bad).unwrap_err();
    assert!(e.contains("no/such/dir/run.json"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `RINGLOAD_REPORT_DUMP=DIR cargo test --test report dump` writes every format of the sample
/// run to DIR, to look at by eye (the SVG in a browser, the .hgrm in plotFiles.html).
#[test]
fn dump_samples_when_asked() {
    let Some(dir) = std::env::var_os("RINGLOAD_REPORT_DUMP") else {
        return;
    };
    let dir = std::path::PathBuf::from(dir);
    std::fs::create_dir_all(&dir).unwrap();
    let r = report();
    let outputs = Outputs {
        hgrm: Some(dir.join("sample.hgrm")),
        hlog: Some(dir.join("sample.hlog")),
        json: Some(dir.join("sample.json")),
        svg: Some(dir.join("sample.svg")),
        progress: false,
    };
    write_outputs(&r, &outputs).unwrap();
    std::fs::write(dir.join("sample.txt"), summary(&r)).unwrap();
}
