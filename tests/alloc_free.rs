//! Zero heap allocations per request on the steady path: the proxy runs in this process with a
//! counting allocator that counts only on shard threads ("shard-N"), and after a warm-up a
//! run of keep-alive requests (rewrite rule, byrequests pick, pooled member connection, access
//! log with UNIQUE_ID) must not allocate at all, on io_uring with tokio-uring's driver and with
//! our own loop.

mod common;
use common::*;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

struct Counting;

static SHARD_ALLOCS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// 0 unknown, 1 shard thread, 2 other thread, 3 being classified.
    static KIND: Cell<u8> = const { Cell::new(0) };
}

fn note() {
    let k = KIND.try_with(|k| k.get()).unwrap_or(2);
    let k = if k == 0 {
        KIND.with(|c| c.set(3));
        let shard = std::thread::current()
            .name()
            .is_some_and(|n| n.starts_with("shard-"));
        let v = if shard { 1 } else { 2 };
        KIND.with(|c| c.set(v));
        v
    } else {
        k
    };
    if k == 1 {
        SHARD_ALLOCS.fetch_add(1, Ordering::Relaxed);
    }
}

// SAFETY: forwards to the system allocator; counting has no effect on the returned memory.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        note();
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        note();
        unsafe { System.realloc(p, l, n) }
    }
}

#[global_allocator]
static A: Counting = Counting;

/// One test for both backends, one after the other: the counter is process-wide.
#[test]
fn steady_state_requests_allocate_nothing_on_shard_threads() {
    for io in ["uring", "ring"] {
        steady_state_requests(io);
    }
}

fn steady_state_requests(io: &str) {
    let (o1, o2) = (port_origin(), port_origin());
    let port = free_port();
    let dir = temp_dir("alloc");
    let conf = format!(
        "IoBackend {io}\nListen 127.0.0.1:{port}\nMaxKeepAliveRequests 0\nLoadModule unique_id_module m\n{EXTENDED}\nCustomLog {} extended\n{}\
         RewriteRule ^/service1/(.*) balancer://b/service1/$1 [P,L]\nProxyPassReverse / balancer://b/\n",
        dir.join("access.log").display(),
        balancer_conf("b", &[o1.port, o2.port], &[], "")
    );
    let path = dir.join("p.conf");
    std::fs::write(&path, conf).unwrap();
    let config = ringproxy::conf::load(&path).unwrap();
    let opts = ringproxy::server::Options {
        config_path: path,
        threads: Some(2),
        grace: Duration::from_secs(1),
    };
    std::thread::spawn(move || ringproxy::server::run(config, opts));
    assert!(wait_listening(port, Duration::from_secs(5)));
    let mut clients: Vec<Client> = (0..4).map(|_| Client::connect(port)).collect();
    let mut round = |n: usize| {
        for _ in 0..n {
            for c in clients.iter_mut() {
                let r = c.get("/service1/index.html", "User-Agent: alloc-test\r\n");
                assert_eq!(r.status, 200);
            }
        }
    };
    round(500);
    std::thread::sleep(Duration::from_millis(300)); // let a log flush and a sweep run
    round(200);
    let before = SHARD_ALLOCS.load(Ordering::Relaxed);
    // The counter does see shard threads: start-up and warm-up allocated.
    assert!(
        before > 100,
        "only {before} shard allocations counted during warm-up"
    );
    round(2_500);
    std::thread::sleep(Duration::from_millis(300));
    let allocs = SHARD_ALLOCS.load(Ordering::Relaxed) - before;
    let lines = std::fs::read_to_string(dir.join("access.log"))
        .unwrap()
        .lines()
        .count();
    assert!(lines >= 12_000, "access log has {lines} lines");
    assert_eq!(
        allocs, 0,
        "{allocs} allocations on shard threads over 10,000 requests (IoBackend {io})"
    );
}
