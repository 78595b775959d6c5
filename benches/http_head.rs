//! Request-head parsing and chunked scanning: nanoseconds and heap allocations per operation.
//! `cargo bench --bench http_head`. (The full bench set is the perf issue's; this one guards
//! the parser's steady state.)

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use ringproxy::conf::model::Limits;
use ringproxy::http::{ChunkedScanner, Parsed, RequestHead, parse_request};

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
}
