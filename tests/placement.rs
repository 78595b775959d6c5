//! Connections spread evenly over the shards, whatever listener the kernel's SO_REUSEPORT hash
//! gave them to (src/placement.rs): a shard that accepts while another serves fewer hands the
//! connection over.

mod common;
use common::*;

use std::collections::HashMap;
use std::time::{Duration, Instant};

const SHARDS: usize = 4;

/// The shard (thread) that served each client port, from a `%{remote}p %{tid}P` log.
fn shard_of_port(proxy_log: &std::path::Path, lines: usize) -> HashMap<u16, String> {
    let until = Instant::now() + Duration::from_secs(5);
    loop {
        let text = std::fs::read_to_string(proxy_log).unwrap_or_default();
        if text.lines().count() >= lines || Instant::now() > until {
            return text
                .lines()
                .map(|l| {
                    let (port, tid) = l.split_once(' ').expect("port and tid");
                    (port.parse().unwrap(), tid.to_string())
                })
                .collect();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Server-side sockets of `port` whose client closed and the proxy has not (CLOSE_WAIT).
fn close_waits(port: u16) -> usize {
    let local = format!(":{port:04X} ");
    std::fs::read_to_string("/proc/net/tcp")
        .unwrap_or_default()
        .lines()
        .filter(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.len() > 3 && format!("{} ", f[1]).ends_with(&local) && f[3] == "08"
        })
        .count()
}

fn open(proxy: u16, n: usize) -> Vec<Client> {
    (0..n)
        .map(|_| {
            let mut c = Client::connect(proxy);
            assert_eq!(c.get("/", "").status, 200);
            c
        })
        .collect()
}

fn client_port(c: &Client) -> u16 {
    c.s.local_addr().unwrap().port()
}

#[test]
fn keep_alive_connections_spread_evenly_over_the_shards_and_refill_the_one_that_lost_them() {
    let origin_port = free_port();
    let _origin = start_origin(&[origin_port], &[]);
    let log = temp_dir("placement").join("shards.log");
    let conf = format!(
        "CustomLog {} \"%{{remote}}p %{{tid}}P\"\nProxyPass / http://127.0.0.1:{origin_port}/\n",
        log.display()
    );
    let proxy = start_proxy("placement", &conf, SHARDS);

    // One at a time, each answered before the next connects: every placement sees the last.
    let mut clients = open(proxy.port, 10 * SHARDS);
    let shard_of = shard_of_port(&log, clients.len());
    let mut per_shard: HashMap<&str, usize> = HashMap::new();
    for c in &clients {
        *per_shard.entry(&shard_of[&client_port(c)]).or_default() += 1;
    }
    assert_eq!(per_shard.len(), SHARDS, "{per_shard:?}");
    assert!(per_shard.values().all(|&n| n == 10), "{per_shard:?}");

    // Close the ten on one shard: the next ten connections all go there.
    let emptied = shard_of[&client_port(&clients[0])].clone();
    clients.retain(|c| shard_of[&client_port(c)] != emptied);
    let until = Instant::now() + Duration::from_secs(5);
    while close_waits(proxy.port) > 0 && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(close_waits(proxy.port), 0, "the proxy closed its ends");
    let more = open(proxy.port, 10);
    let shard_of = shard_of_port(&log, 10 * SHARDS + 10);
    for c in &more {
        assert_eq!(shard_of[&client_port(c)], emptied);
    }
    assert!(
        !proxy.error_log().contains("handed over"),
        "{}",
        proxy.error_log()
    );
}
