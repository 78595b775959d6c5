//! The proxy's per-request hot paths, each in nanoseconds and heap allocations per operation:
//! request-head parsing, chunked scanning, RewriteRule routing, the member-bound head's
//! rewriting, each lbmethod's pick from two threads at once (shared counters under
//! contention), and access-log rendering.
//! `cargo bench --bench hot_paths`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, SystemTime};

use ringproxy::balance::{Balancer, PickCache, ms_at};
use ringproxy::conf::model::Limits;
use ringproxy::http::{ChunkedScanner, Parsed, RequestHead, parse_request};
use ringproxy::io::Gather;
use ringproxy::log::{LogFormat, LogRecord};
use ringproxy::proxy::forward::request_head;
use ringproxy::proxy::route::{RouteInput, RouteScratch, route};

struct Counting;
static ALLOCS: AtomicU64 = AtomicU64::new(0);

// SAFETY: forwards to the system allocator and only counts calls.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.realloc(p, l, n) }
    }
}

#[global_allocator]
static A: Counting = Counting;

/// Runs `f` `n` times after a warm-up; prints ns/op and allocations/op.
fn bench(name: &str, n: u64, mut f: impl FnMut()) {
    for _ in 0..n / 10 {
        f();
    }
    let a0 = ALLOCS.load(Ordering::Relaxed);
    let t0 = Instant::now();
    for _ in 0..n {
        f();
    }
    let ns = t0.elapsed().as_nanos() as f64 / n as f64;
    let allocs = (ALLOCS.load(Ordering::Relaxed) - a0) as f64 / n as f64;
    println!("{name:<32} {ns:>9.1} ns/op {allocs:>6.2} allocs/op");
}

fn main() {
    let limits = Limits::default();
    let curl = b"GET /service1/index.html HTTP/1.1\r\nHost: localhost\r\nUser-Agent: curl/7.88.1\r\nAccept: */*\r\n\r\n";
    let browser = b"GET /service1/app/page?id=42&lang=en HTTP/1.1\r\nHost: www.example.com\r\n\
User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36\r\n\
Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\nAccept-Language: en-US,en;q=0.9\r\n\
Accept-Encoding: gzip, deflate, br\r\nConnection: keep-alive\r\nCookie: ROUTEID=.backend-port-8000; session=abcdef0123456789\r\n\
Referer: https://www.example.com/service1/app/\r\nUpgrade-Insecure-Requests: 1\r\nCache-Control: max-age=0\r\n\
X-Forwarded-For: 10.1.2.3\r\n\r\n";
    let mut head = RequestHead::new();
    for (name, req) in [
        ("parse_request curl (3 fields)", &curl[..]),
        ("parse_request browser (11 fields)", &browser[..]),
    ] {
        bench(name, 1_000_000, || {
            let r = parse_request(black_box(req), &limits, &mut head);
            assert!(matches!(r, Ok(Parsed::Complete)));
            black_box(&head);
        });
    }
    let mut body = Vec::new();
    for _ in 0..16 {
        body.extend_from_slice(b"1000\r\n");
        body.extend_from_slice(&[b'x'; 4096]);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(b"0\r\n\r\n");
    let mut sc = ChunkedScanner::new();
    bench("chunked scan 64 KiB in 16 chunks", 100_000, || {
        sc.reset();
        let (n, done) = sc
            .scan(black_box(&body), |d| {
                black_box(d);
            })
            .unwrap();
        assert!(done && n == body.len());
    });
    rewrite_routing();
    forwarded_head(browser);
    lb_picks();
    log_rendering();
}

const SEED_CONF: &str = "Listen 127.0.0.1:1
LoadModule proxy_balancer_module m
LoadModule lbmethod_byrequests_module m
LoadModule lbmethod_bytraffic_module m
LoadModule lbmethod_bybusyness_module m
LoadModule slotmem_shm_module m
RewriteRule ^/service1/(.*) balancer://backend/service1/$1 [proxy,last]
<Proxy balancer://backend>
BalancerMember http://127.0.0.1:8000 route=backend-port-8000
BalancerMember http://127.0.0.1:8001 route=backend-port-8001
</Proxy>
";

fn rewrite_routing() {
    // The seed's rule alone, then behind 19 rules for other prefixes that the request misses
    // (a site with a rule per service).
    let others: String = (2..=20)
        .map(|n| {
            format!("RewriteRule ^/service{n}/(.*) balancer://backend/service{n}/$1 [proxy,last]\n")
        })
        .collect();
    let many = SEED_CONF.replacen("RewriteRule", &format!("{others}RewriteRule"), 1);
    for (name, conf) in [
        ("RewriteRule [P] routing (seed rule)", SEED_CONF),
        ("RewriteRule [P] routing (20th of 20 rules)", many.as_str()),
    ] {
        let cfg = ringproxy::conf::load_str(conf, Path::new("bench.conf")).expect("config");
        let raw = b"GET /service1/index.html?x=1 HTTP/1.1\r\nHost: localhost\r\n\r\n";
        let mut head = RequestHead::new();
        assert!(matches!(
            parse_request(raw, &cfg.limits, &mut head),
            Ok(Parsed::Complete)
        ));
        let addr: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let mut scratch = RouteScratch::new(&cfg);
        let mut out = Vec::with_capacity(256);
        bench(name, 1_000_000, || {
            let input = RouteInput {
                buf: raw,
                req: &head,
                peer: addr,
                local: addr,
                server_name: "localhost",
            };
            black_box(route(&cfg, &input, &mut scratch, &mut out));
        });
    }
}

/// The member-bound head of a browser request: hop-by-hop fields dropped, Host and the
/// X-Forwarded-* fields written, the rest left in the client's buffer as segments.
fn forwarded_head(raw: &[u8]) {
    let cfg = ringproxy::conf::load_str(SEED_CONF, Path::new("bench.conf")).expect("config");
    let mut head = RequestHead::new();
    assert!(matches!(
        parse_request(raw, &cfg.limits, &mut head),
        Ok(Parsed::Complete)
    ));
    let member = &cfg.balancers[0].members[0];
    let peer: SocketAddr = "10.9.8.7:5000".parse().unwrap();
    let target = b"/service1/app/page?id=42&lang=en";
    let mut g = Gather::new();
    bench("forwarded head, browser request", 1_000_000, || {
        g.clear();
        request_head(&mut g, raw, &head, target, member, &cfg, peer, true);
        black_box(g.total_len());
    });
}

/// Runs `f` `n` times on each of two threads at once, each with its own state from `setup`;
/// prints ns per op (wall time over `n`, so two threads that never meet score as one) and
/// allocations per op (thread starts and `setup` allocate a few times per run, which rounds
/// away over 2 × `n` ops).
fn bench_2_threads<S>(name: &str, n: u64, setup: impl Fn() -> S + Sync, f: impl Fn(&mut S) + Sync) {
    let a0 = ALLOCS.load(Ordering::Relaxed);
    let t0 = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                let mut state = setup();
                for _ in 0..n {
                    f(&mut state);
                }
            });
        }
    });
    let ns = t0.elapsed().as_nanos() as f64 / n as f64;
    let allocs = (ALLOCS.load(Ordering::Relaxed) - a0) as f64 / (2 * n) as f64;
    println!("{name:<32} {ns:>9.1} ns/op {allocs:>6.2} allocs/op");
}

/// Each lbmethod's pick (and release), from two threads on one balancer at once.
fn lb_picks() {
    for method in ["byrequests", "bytraffic", "bybusyness"] {
        let conf = SEED_CONF.replace("</Proxy>", &format!("ProxySet lbmethod={method}\n</Proxy>"));
        let cfg = ringproxy::conf::load_str(&conf, Path::new("bench.conf")).expect("config");
        let bal = Balancer::new(cfg.balancers[0].clone());
        let now = ms_at(std::time::Instant::now());
        bench_2_threads(
            &format!("{method} pick, 2 threads"),
            2_000_000,
            PickCache::new,
            |cache| {
                let p = bal.pick(None, 0, now, cache).expect("pick");
                p.add_traffic(200, 300);
                black_box(p.index());
            },
        );
    }
}

struct Record;

impl LogRecord for Record {
    fn remote_addr(&self) -> SocketAddr {
        "127.0.0.1:40000".parse().unwrap()
    }
    fn local_addr(&self) -> SocketAddr {
        "127.0.0.1:8080".parse().unwrap()
    }
    fn request_line(&self) -> &[u8] {
        b"GET /service1/index.html HTTP/1.1"
    }
    fn method(&self) -> &[u8] {
        b"GET"
    }
    fn path(&self) -> &[u8] {
        b"/service1/index.html"
    }
    fn query(&self) -> Option<&[u8]> {
        None
    }
    fn protocol(&self) -> &[u8] {
        b"HTTP/1.1"
    }
    fn status(&self) -> Option<u16> {
        Some(200)
    }
    fn body_bytes(&self) -> u64 {
        27
    }
    fn request_header(&self, name: &str) -> Option<&[u8]> {
        name.eq_ignore_ascii_case("user-agent")
            .then_some(&b"curl/7.88.1"[..])
    }
    fn response_header(&self, _: &str) -> Option<&[u8]> {
        None
    }
    fn env(&self, name: &str) -> Option<&[u8]> {
        (name == "BALANCER_WORKER_ROUTE").then_some(&b"backend-port-8000"[..])
    }
    fn server_name(&self) -> &[u8] {
        b"localhost"
    }
    fn handler(&self) -> Option<&[u8]> {
        Some(b"proxy-server")
    }
    fn conn_status(&self) -> u8 {
        b'+'
    }
    fn keepalive_requests(&self) -> u64 {
        1
    }
    fn bytes_in(&self) -> u64 {
        97
    }
    fn bytes_out(&self) -> u64 {
        139
    }
    fn start_time(&self) -> SystemTime {
        SystemTime::now()
    }
    fn duration(&self) -> Duration {
        Duration::from_micros(1234)
    }
    fn ssl_var(&self, _: &str) -> Option<&[u8]> {
        None
    }
}

fn log_rendering() {
    let formats = [
        ("common", r#"%h %l %u %t "%r" %>s %b"#),
        (
            "netnea extended",
            r#"%h %{GEOIP_COUNTRY_CODE}e %u [%{%Y-%m-%d %H:%M:%S}t.%{usec_frac}t] "%r" %>s %b "%{Referer}i" "%{User-Agent}i" %v %A %p %R %{BALANCER_WORKER_ROUTE}e %X "%{cookie}n" %{UNIQUE_ID}e %I %O %{ratio}n%% %D"#,
        ),
    ];
    let render = |fmt: &LogFormat, out: &mut Vec<u8>| {
        if out.len() > (1 << 20) - 512 {
            out.clear();
        }
        fmt.render(&Record, out);
    };
    for (name, f) in formats {
        let fmt = LogFormat::compile(f).expect("format");
        let mut out = Vec::with_capacity(1 << 20);
        bench(&format!("log line, {name}"), 200_000, || {
            render(&fmt, &mut out)
        });
        // Workers share the compiled format: nothing they write may be shared.
        bench_2_threads(
            &format!("log line, {name}, 2 threads"),
            200_000,
            || Vec::with_capacity(1 << 20),
            |out| render(&fmt, out),
        );
    }
}
