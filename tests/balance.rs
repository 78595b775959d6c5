//! Balancing across shards: the configured split holds for the whole process, sticky routes
//! pin clients, a dead member fails over, and keep-alive clients reuse pooled connections.

mod common;
use common::*;

use std::time::Duration;

/// Runs `total` GETs of `path` over `conns` keep-alive client connections in parallel.
fn load(port: u16, conns: usize, total: usize, path: &str, extra: &str) -> Vec<u16> {
    let per = total / conns;
    let hs: Vec<_> = (0..conns)
        .map(|_| {
            let (path, extra) = (path.to_string(), extra.to_string());
            std::thread::spawn(move || {
                let mut c = Client::connect(port);
                let req = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n{extra}\r\n");
                (0..per)
                    .map(|_| {
                        c.send(req.as_bytes());
                        match c.read_response(false) {
                            Some(r) => r.status,
                            None => {
                                // The proxy had closed this connection (after an error
                                // response): send the request again on a new one.
                                c = Client::connect(port);
                                c.send(req.as_bytes());
                                c.read_response(false).map_or(0, |r| r.status)
                            }
                        }
                    })
                    .collect::<Vec<u16>>()
            })
        })
        .collect();
    hs.into_iter().flat_map(|h| h.join().unwrap()).collect()
}

#[test]
fn byrequests_split_is_global_across_two_shards() {
    let os = [port_origin(), port_origin(), port_origin()];
    let ports: Vec<u16> = os.iter().map(|o| o.port).collect();
    let conf = format!(
        "{}ProxyPass / balancer://lf/\n",
        balancer_conf(
            "lf",
            &ports,
            &["loadfactor=1", "loadfactor=2", "loadfactor=3"],
            ""
        )
    );
    let p = start_proxy("fairness", &format!("MaxKeepAliveRequests 0\n{conf}"), 2);
    let statuses = load(p.port, 8, 12_000, "/x", "");
    assert!(statuses.iter().all(|&s| s == 200));
    let counts: Vec<usize> = os
        .iter()
        .map(|o| o.requests.lock().unwrap().len())
        .collect();
    for (got, want) in counts.iter().zip([2_000usize, 4_000, 6_000]) {
        assert!(
            got.abs_diff(want) <= want / 100,
            "split {counts:?} not within 1% of 2000/4000/6000"
        );
    }
    // Both shards served: the error log names two shards and connections spread (SO_REUSEPORT).
    assert!(p.error_log().contains("2 shard(s)"), "{}", p.error_log());
}

/// Share of the load the second of two members (loadfactors 1:3) gets under bybusyness with
/// `conns` parallel clients; the first member answers after `first_delay_ms`.
fn bybusyness_share(conns: usize, first_delay_ms: u64) -> f64 {
    let first = http_origin(move |_, _| {
        std::thread::sleep(Duration::from_millis(first_delay_ms));
        ok("first")
    });
    let second = port_origin();
    let conf = format!(
        "MaxKeepAliveRequests 0\n{}ProxyPass / balancer://m/\n",
        balancer_conf(
            "m",
            &[first.port, second.port],
            &["loadfactor=1", "loadfactor=3"],
            "lbmethod=bybusyness"
        )
    );
    let p = start_proxy("bybusyness", &conf, 2);
    let total = 400 * conns;
    assert!(
        load(p.port, conns, total, "/x", "")
            .iter()
            .all(|&s| s == 200)
    );
    second.requests.lock().unwrap().len() as f64 / total as f64
}

#[test]
fn bytraffic_spreads_bytes_by_loadfactor() {
    let os = [port_origin(), port_origin()];
    let ports: Vec<u16> = os.iter().map(|o| o.port).collect();
    let conf = format!(
        "MaxKeepAliveRequests 0\n{}ProxyPass / balancer://m/\n",
        balancer_conf(
            "m",
            &ports,
            &["loadfactor=1", "loadfactor=3"],
            "lbmethod=bytraffic"
        )
    );
    let p = start_proxy("bytraffic", &conf, 2);
    assert!(load(p.port, 4, 2_000, "/x", "").iter().all(|&s| s == 200));
    let a = os[0].requests.lock().unwrap().len() as f64;
    let b = os[1].requests.lock().unwrap().len() as f64;
    let share = b / (a + b);
    assert!(
        (0.70..=0.80).contains(&share),
        "member 2 got {share:.3} of the load, want ~0.75"
    );
}

#[test]
fn bybusyness_follows_loadfactor_when_idle_and_avoids_the_busy_member() {
    // Sequential load: busy is always 0, so the byrequests tie-break gives exactly 1:3.
    let share = bybusyness_share(1, 0);
    assert!(
        (share - 0.75).abs() < 0.01,
        "sequential share {share:.3}, want 0.75"
    );
    // Concurrent load with a slow first member: it holds requests longer, so it gets few.
    let share = bybusyness_share(4, 20);
    assert!(
        share > 0.85,
        "the fast member got only {share:.3} of the load"
    );
}

#[test]
fn sticky_sessions_pin_cookie_and_url_routes() {
    let os = [port_origin(), port_origin(), port_origin()];
    let ports: Vec<u16> = os.iter().map(|o| o.port).collect();
    let conf = format!(
        "{}ProxyPass / balancer://s/\n",
        balancer_conf("s", &ports, &[], "stickysession=ROUTEID|route")
    );
    let p = start_proxy("sticky", &conf, 2);
    let mut c = Client::connect(p.port);
    let want = format!("Server response, port {}\n", ports[1]);
    for _ in 0..20 {
        let r = c.get(
            "/a",
            &format!("Cookie: other=1; ROUTEID=.r{}\r\n", ports[1]),
        );
        assert_eq!(r.text(), want);
    }
    let want2 = format!("Server response, port {}\n", ports[2]);
    for _ in 0..10 {
        assert_eq!(
            c.get(&format!("/a?route=x.r{}", ports[2]), "").text(),
            want2
        );
    }
    // No separator: no stickiness, normal balancing (all members used).
    let mut seen = std::collections::HashSet::new();
    for _ in 0..6 {
        seen.insert(
            c.get("/a", &format!("Cookie: ROUTEID=r{}\r\n", ports[1]))
                .text(),
        );
    }
    assert_eq!(seen.len(), 3, "{seen:?}");
}

#[test]
fn dead_member_fails_over_then_all_down_gives_503() {
    let alive = port_origin();
    let dead_port = free_port(); // nothing listens: connection refused
    let conf = format!(
        "{}ProxyPass / balancer://f/\n",
        balancer_conf("f", &[dead_port, alive.port], &[], "")
    );
    let p = start_proxy("failover", &conf, 1);
    let mut c = Client::connect(p.port);
    for _ in 0..10 {
        let r = c.get("/x", "");
        assert_eq!(r.status, 200);
        assert_eq!(r.text(), format!("Server response, port {}\n", alive.port));
    }
    let log = p.error_log();
    assert!(log.contains("AH00957"), "{log}");
    // The dead member is in error state for retry=60s: only one connect attempt was made.
    assert_eq!(log.matches("AH00957").count(), 1, "{log}");
    drop(alive);
    std::thread::sleep(Duration::from_millis(100));
    let mut c2 = Client::connect(p.port);
    let r = c2.get("/x", "");
    assert_eq!(r.status, 503);
    assert_eq!(r.header("Connection").as_deref(), Some("close"));
    // Forced recovery re-probed both members for this request (httpd's forcerecovery=On).
    let log = p.error_log();
    assert!(
        log.contains(&format!(
            "attempt to connect to 127.0.0.1:{dead_port} failed"
        )),
        "{log}"
    );
    assert_eq!(log.matches("AH00957").count(), 3, "{log}");
}

/// Member A: its first connection answers "A" once and closes when the next request arrives
/// (after the proxy's liveness check passed); later connections answer "A" to every request
/// when `later_answer`, else close at once (a member that just died but whose socket still
/// accepts). Member B answers "B" to every request. The proxy balances over A, then B.
fn stale_a_and_b(tag: &str, later_answer: bool) -> (ScriptedOrigin, ScriptedOrigin, Proxy) {
    use std::io::Write;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let accepted = Arc::new(AtomicUsize::new(0));
    let a = ScriptedOrigin::start(move |s, got| {
        let first = accepted.fetch_add(1, Ordering::SeqCst) == 0;
        if !first && !later_answer {
            return;
        }
        while read_head(s, got) {
            let _ = s.write_all(&ok("A"));
            if first {
                let _ = read_head(s, got); // then close without answering
                return;
            }
        }
    });
    let b = ScriptedOrigin::start(|s, got| {
        while read_head(s, got) {
            let _ = s.write_all(&ok("B"));
        }
    });
    let conf = format!(
        "{}ProxyPass / balancer://s/\n",
        balancer_conf("s", &[a.port, b.port], &[], "")
    );
    let p = start_proxy(tag, &conf, 1);
    (a, b, p)
}

/// A's pooled connection goes stale under the third request, and A's new connections end at
/// once: the request is replayed on a fresh connection to A, which ends before any response
/// byte too, so A goes in error state and the request fails over to B.
#[test]
fn a_failed_replay_after_a_stale_reuse_still_fails_over() {
    let (a, _b, p) = stale_a_and_b("replayfail", false);
    let mut c = Client::connect(p.port);
    let first_two = [c.get("/1", "").text(), c.get("/2", "").text()];
    assert_eq!(
        first_two,
        ["A", "B"],
        "byrequests alternates, first member first"
    );
    let r = c.get("/3", "");
    assert_eq!(
        (r.status, r.text()),
        (200, "B".to_string()),
        "{}",
        p.error_log()
    );
    assert_eq!(
        a.connections(),
        2,
        "the replay opened a fresh connection to A"
    );
    let log = p.error_log();
    assert!(
        log.contains(&format!(
            "member http://127.0.0.1:{} reset a new connection",
            a.port
        )),
        "{log}"
    );
}

/// A's pooled connection goes stale under the third request, and A takes new connections:
/// the request is replayed on a fresh connection to A and succeeds there, and it cost A one
/// pick, not two: the rotation goes on to B next.
#[test]
fn a_stale_reuse_is_replayed_to_the_same_member_as_one_pick() {
    let (a, b, p) = stale_a_and_b("replayok", true);
    let mut c = Client::connect(p.port);
    let texts: Vec<String> = (1..=4)
        .map(|i| c.get(&format!("/{i}"), "").text())
        .collect();
    assert_eq!(texts, ["A", "B", "A", "B"], "{}", p.error_log());
    assert_eq!(
        a.connections(),
        2,
        "the replay opened a fresh connection to A"
    );
    assert_eq!(b.connections(), 1);
    assert!(
        !p.error_log().contains("reset a new connection"),
        "{}",
        p.error_log()
    );
}

#[test]
fn member_killed_mid_run_fails_over_without_errors_to_clients() {
    // Two real origin processes; one is SIGKILLed while requests are in flight.
    let (pa, pb) = (free_port(), free_port());
    let _a = start_origin(&[pa], &[]);
    let mut b = start_origin(&[pb], &[]);
    let conf = format!(
        "MaxKeepAliveRequests 0\n{}ProxyPass / balancer://k/\n",
        balancer_conf("k", &[pa, pb], &[], "")
    );
    let p = start_proxy("killed", &conf, 2);
    assert!(load(p.port, 4, 400, "/x", "").iter().all(|&s| s == 200));
    // A request whose pooled connection dies before any response byte is replayed on a fresh
    // connection, whose connect fails over to the other member.
    let port = p.port;
    let run = std::thread::spawn(move || load(port, 4, 2_000, "/x", ""));
    std::thread::sleep(Duration::from_millis(150));
    b.stop(libc::SIGKILL, Duration::from_secs(5))
        .expect("origin killed");
    let statuses = run.join().unwrap();
    let bad: Vec<_> = statuses.iter().filter(|&&s| s != 200).collect();
    // Only a request whose response was cut mid-way may fail: at most one per client.
    assert!(
        bad.len() <= 4,
        "statuses after the kill: {bad:?}\n{}",
        p.error_log()
    );
    assert!(load(p.port, 4, 400, "/x", "").iter().all(|&s| s == 200));
    // The member was put in error state: by a refused connect, or by a reset new connection.
    let log = p.error_log();
    assert!(
        log.contains(&format!("attempt to connect to 127.0.0.1:{pb} failed"))
            || log.contains(&format!(
                "member http://127.0.0.1:{pb} reset a new connection"
            )),
        "{log}"
    );
}

#[test]
fn keepalive_clients_reuse_pooled_member_connections() {
    let o = port_origin();
    let conf = format!(
        "MaxKeepAliveRequests 0\nProxyPass / http://127.0.0.1:{}/\n",
        o.port
    );
    let p = start_proxy("reuse", &conf, 2);
    let clients = 4;
    assert!(
        load(p.port, clients, 10_000, "/x", "")
            .iter()
            .all(|&s| s == 200)
    );
    let opened = o.connections();
    assert!(
        opened <= 2 * clients,
        "10,000 requests opened {opened} member connections (max {})",
        2 * clients
    );
    assert_eq!(o.requests.lock().unwrap().len(), 10_000);
}
