//! The keep-alive member pool: reuse, ttl, disablereuse, and the stale-connection race: a
//! reused connection that dies before any response byte is retried once on a fresh one, for
//! idempotent methods only.

mod common;
use common::*;

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

/// An origin that answers the first request on each connection and then closes the
/// connection without a word when the second one arrives (a backend's keep-alive timeout
/// racing the proxy's reuse).
fn one_shot_origin() -> ScriptedOrigin {
    ScriptedOrigin::start(|s, got| {
        if !read_head(s, got) {
            return;
        }
        let _ = s.write_all(&ok("first on this connection"));
        let _ = read_head(s, got);
        // Close without answering the second request.
    })
}

#[test]
fn stale_pooled_connection_is_retried_for_get_but_not_for_post() {
    let o = one_shot_origin();
    let p = proxy_pass("stale", o.port, "", "");
    let mut c = Client::connect(p.port);
    assert_eq!(c.get("/a", "").status, 200);
    // The pooled connection now fails on the next request: GET is replayed on a fresh one.
    let r = c.get("/b", "");
    assert_eq!(r.status, 200, "{}", p.error_log());
    assert_eq!(o.connections(), 2);
    // POST on the (again) stale pooled connection: not replayed, the client gets 502.
    let mut c2 = Client::connect(p.port);
    let r = c2.post("/c", "abc");
    assert_eq!(r.status, 502, "{}", r.head);
    assert_eq!(
        o.connections(),
        2,
        "a POST must not be retried on a new connection"
    );
}

#[test]
fn ttl_expires_idle_pooled_connections_and_disablereuse_never_pools() {
    let o = port_origin();
    let p = proxy_pass("ttl", o.port, "", " ttl=1");
    let mut c = Client::connect(p.port);
    assert_eq!(c.get("/a", "").status, 200);
    assert_eq!(c.get("/a", "").status, 200);
    assert_eq!(
        o.connections(),
        1,
        "the second request reuses the pooled connection"
    );
    std::thread::sleep(Duration::from_millis(1300));
    assert_eq!(c.get("/a", "").status, 200);
    assert_eq!(
        o.connections(),
        2,
        "an idle connection older than ttl=1 must not be reused"
    );

    let o2 = port_origin();
    let p2 = proxy_pass("noreuse", o2.port, "", " disablereuse=On");
    let mut c = Client::connect(p2.port);
    for _ in 0..5 {
        assert_eq!(c.get("/a", "").status, 200);
    }
    assert_eq!(o2.connections(), 5);
    assert!(
        o2.requests
            .lock()
            .unwrap()
            .iter()
            .all(|h| h.contains("Connection: close\r\n"))
    );
}

#[test]
fn member_closing_after_response_is_not_pooled() {
    let o = http_origin(|_, _| {
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi".to_vec()
    });
    let p = proxy_pass("connclose", o.port, "", "");
    let mut c = Client::connect(p.port);
    for _ in 0..3 {
        let r = c.get("/a", "");
        assert_eq!(r.text(), "hi");
        // The member's Connection: close is hop-by-hop: the client connection stays open.
        assert_eq!(r.header("Connection"), None);
    }
    assert_eq!(o.connections(), 3);
}

#[test]
fn connectiontimeout_cuts_a_connect_that_never_completes() {
    use socket2::{Domain, Socket, Type};
    // A listener that never accepts, with its queue filled: further SYNs are dropped, so a
    // connect to it hangs until the proxy's connectiontimeout.
    let l = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    l.bind(
        &"127.0.0.1:0"
            .parse::<std::net::SocketAddr>()
            .unwrap()
            .into(),
    )
    .unwrap();
    l.listen(0).unwrap();
    let port = l.local_addr().unwrap().as_socket().unwrap().port();
    let mut fillers = Vec::new();
    for _ in 0..4 {
        let s = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        s.set_nonblocking(true).unwrap();
        let _ = s.connect(&std::net::SocketAddr::from(([127, 0, 0, 1], port)).into());
        fillers.push(s);
    }
    std::thread::sleep(Duration::from_millis(200));
    let p = proxy_pass("conntimeout", port, "", " connectiontimeout=700ms");
    let t0 = Instant::now();
    let r = Client::connect(p.port).get("/x", "");
    let took = t0.elapsed();
    assert_eq!(r.status, 503);
    assert!(
        took >= Duration::from_millis(600) && took < Duration::from_secs(5),
        "took {took:?}"
    );
    assert!(p.error_log().contains("timed out"), "{}", p.error_log());
}

/// A member that closes each connection shortly after answering (a short keep-alive
/// timeout): the liveness peek finds the pooled connection dead, so a GET and a POST that
/// follow both go out on fresh connections.
#[test]
fn idle_close_by_member_is_survived_by_get_and_post() {
    let o = ScriptedOrigin::start(|s, got| {
        if read_head(s, got) {
            let _ = s.write_all(&ok("answered"));
            std::thread::sleep(Duration::from_millis(50));
        }
    });
    let p = proxy_pass("idleclose", o.port, "", "");
    let mut c = Client::connect(p.port);
    assert_eq!(c.get("/a", "").status, 200);
    std::thread::sleep(Duration::from_millis(300));
    let r = c.get("/b", "");
    assert_eq!(r.status, 200, "{}", p.error_log());
    assert_eq!(o.connections(), 2);
    std::thread::sleep(Duration::from_millis(300));
    let r = c.post("/c", "abc");
    assert_eq!(r.status, 200, "{}", p.error_log());
    assert_eq!(o.connections(), 3);
}

/// A member that closes each connection right after its response, without `Connection:
/// close`, so that the close races the next request's checkout: a GET that finds the pooled
/// connection closed only after its liveness check is replayed on a fresh connection to the
/// same member. A POST cannot be replayed; it comes once every close has arrived, so the check
/// finds the last one and the POST opens a fresh connection at once. No request fails.
#[test]
fn a_member_closing_after_each_response_fails_no_request() {
    let o = ScriptedOrigin::start(|s, got| {
        if read_head(s, got) {
            let _ = s.write_all(&ok("once"));
        }
    });
    let p = proxy_pass("closeeach", o.port, "", "");
    let mut c = Client::connect(p.port);
    for i in 1..=10 {
        let r = c.get(&format!("/g{i}"), "");
        assert_eq!((i, r.status), (i, 200), "{}", p.error_log());
        assert_eq!(r.text(), "once");
    }
    assert_eq!(o.connections(), 10);
    // The origin records a connection once it has shut it down.
    let until = Instant::now() + Duration::from_secs(5);
    while o.seen.lock().unwrap().conns.len() < 10 && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(Duration::from_millis(20));
    let r = c.post("/p", "abc");
    assert_eq!(r.status, 200, "{}", p.error_log());
    assert_eq!(o.connections(), 11);
}

/// A member that sends a second, unsolicited response after the first (a member that split
/// one request in two, say): the pooled connection's liveness check at checkout finds the
/// bytes, so neither a GET nor a POST is ever answered with them.
#[test]
fn an_unsolicited_response_is_never_taken_for_the_next_request() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let sent = Arc::new(AtomicUsize::new(0));
    let counted = sent.clone();
    let o = ScriptedOrigin::start(move |s, got| {
        if read_head(s, got) {
            let _ = s.write_all(&ok("first"));
            std::thread::sleep(Duration::from_millis(20));
            let _ = s.write_all(&ok("EVIL!"));
            counted.fetch_add(1, Ordering::SeqCst);
            // Whatever comes next on this connection gets the same.
            while read_head(s, got) {
                let _ = s.write_all(&ok("EVIL?"));
            }
        }
    });
    let p = proxy_pass("unsolicited", o.port, "", "");
    // Until the unsolicited response has gone out on every connection so far (on loopback it
    // is then in the proxy's socket).
    let wait_sent = || {
        let until = Instant::now() + Duration::from_secs(5);
        while sent.load(Ordering::SeqCst) < o.connections() && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(5));
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let mut c = Client::connect(p.port);
    assert_eq!(c.get("/a", "").text(), "first");
    for i in 0..3 {
        wait_sent();
        let r = c.get(&format!("/g{i}"), "");
        assert_eq!(
            (r.status, r.text()),
            (200, "first".to_string()),
            "{}",
            p.error_log()
        );
    }
    wait_sent();
    let r = c.post("/p", "abc");
    assert_eq!((r.status, r.text()), (200, "first".to_string()));
    assert_eq!(
        o.connections(),
        5,
        "each request after the first on a fresh connection"
    );
}

/// A shard keeps no more member connections than it has client connections (each client has
/// at most one request in flight), although byrequests alternates members per request, so
/// one member at times has more than its half of the requests in flight: the issue-5 bound,
/// backend connections opened at most threads × client connections.
#[test]
fn member_connections_stay_within_client_connections() {
    let (_origin, stats, ports, proxy) = two_members("pool-bound", "MaxKeepAliveRequests 0\n");
    let clients = 24;
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ringload"))
        .args(["-c", &clients.to_string(), "-t", "1", "-n", "40000"])
        .arg(format!("http://127.0.0.1:{}/b/x?delay=1", proxy.port))
        .output()
        .expect("run ringload");
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{report}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let opened = origin_connections(&stats_after(&stats, SystemTime::now()), &ports);
    assert!(
        opened.iter().all(|&n| n > 0),
        "both members used: {opened:?}"
    );
    assert!(
        opened.iter().sum::<u64>() <= clients,
        "member connections opened {opened:?} for {clients} client connections\n{}",
        proxy.error_log()
    );
    assert!(report.contains("40000"), "{report}");
}

/// At the bound, a request whose member's only connection is busy with a slow response waits
/// for it only until its deadline (50 ms, checked at the shard's 50 ms tick), then opens
/// another: it is not held behind the slow response.
#[test]
fn a_wait_at_the_bound_ends_at_its_deadline() {
    let (_origin, stats, ports, proxy) = two_members("pool-wait", "");
    // Two clients, so the shard's bound is two member connections.
    let mut slow = Client::connect(proxy.port);
    let mut fast = Client::connect(proxy.port);
    // byrequests alternates: the slow request holds one member's only connection, the fast
    // one leaves the other member's connection idle (the bound is reached), and the next
    // fast request goes to the slow request's member.
    slow.send(b"GET /b/x?delay=3000 HTTP/1.1\r\nHost: localhost\r\n\r\n");
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(fast.get("/b/x", "").status, 200);
    let t = Instant::now();
    assert_eq!(fast.get("/b/x", "").status, 200);
    let waited = t.elapsed();
    assert!(
        waited >= Duration::from_millis(40) && waited < Duration::from_millis(900),
        "waited {waited:?}: not a wait that ended at its deadline"
    );
    let text = stats_after(&stats, SystemTime::now());
    assert_eq!(
        origin_connections(&text, &ports).iter().sum::<u64>(),
        3,
        "a third connection for the request that waited: {text}"
    );
    assert_eq!(
        slow.read_response(false).expect("slow response").status,
        200
    );
}

/// `ringload origin` on two ports writing its counters to the returned stats file, and a
/// one-shard proxy with `extra` config balancing `/b/` over both with reuse on.
fn two_members(tag: &str, extra: &str) -> (Proc, std::path::PathBuf, [u16; 2], Proxy) {
    let ports = [free_port(), free_port()];
    let stats = temp_dir(tag).join("stats.json");
    let origin = start_origin(&ports, &["--stats-file", stats.to_str().unwrap()]);
    let conf = format!(
        "{extra}{}ProxyPass /b/ balancer://b/\n",
        balancer_conf("b", &ports, &["enablereuse=on", "enablereuse=on"], "")
    );
    let proxy = start_proxy(tag, &conf, 1);
    (origin, stats, ports, proxy)
}

/// Connections `ringload origin` accepted on each of `ports`, from its stats file.
/// The origin's counters from a rewrite of its stats file that began after `since` (it rewrites
/// the file every 100 ms, and a busy machine can hold that back), or as the file is after 5 s.
fn stats_after(path: &Path, since: SystemTime) -> String {
    let until = Instant::now() + Duration::from_secs(5);
    let next_tick = since + Duration::from_millis(100);
    loop {
        let modified = std::fs::metadata(path).and_then(|m| m.modified());
        if modified.is_ok_and(|t| t >= next_tick) || Instant::now() > until {
            return std::fs::read_to_string(path).unwrap();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn origin_connections(stats: &str, ports: &[u16]) -> Vec<u64> {
    ports
        .iter()
        .map(|p| {
            let key = format!("\"{p}\":{{");
            let at = stats.find(&key).unwrap_or_else(|| panic!("{p} in {stats}"));
            let rest = &stats[at..];
            let c = rest.find("\"connections\":").expect("connections") + 14;
            let digits: String = rest[c..].chars().take_while(char::is_ascii_digit).collect();
            digits.parse().unwrap()
        })
        .collect()
}
