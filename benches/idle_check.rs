//! What the pool's liveness check on an idle member connection costs, and whether moving it
//! into io_uring would save anything: an idle loopback connection is checked in a loop by a
//! one-byte `recv(MSG_PEEK | MSG_DONTWAIT)` system call (what `Conn::is_idle_alive` does),
//! by `poll` with no wait and by `ioctl(FIONREAD)` (the other ways to ask), and by the same
//! peek as an io_uring operation, 32 of them per `io_uring_enter` (as it would go, in the
//! same submission as a request's send). A system call that does nothing (`getppid`) and an
//! io_uring no-op give the fixed costs. Nanoseconds per check, medians of 5 rounds.
//! `cargo bench --bench idle_check`.

use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsRawFd, RawFd};
use std::time::Instant;

use io_uring::{IoUring, opcode, squeue, types::Fd};

const CHECKS: u32 = 320_000;
const BATCH: u32 = 32;
const ROUNDS: usize = 5;

/// Nanoseconds per call of `f`, over CHECKS calls.
fn per_call(mut f: impl FnMut()) -> f64 {
    let t = Instant::now();
    for _ in 0..CHECKS {
        f();
    }
    t.elapsed().as_nanos() as f64 / f64::from(CHECKS)
}

/// What a peek of an idle connection completes with (a no-op: 0).
const EAGAIN: i32 = -libc::EAGAIN;

/// Nanoseconds per operation made by `sqe`, submitted BATCH at a time and all reaped.
fn per_op(ring: &mut IoUring, sqe: impl Fn() -> squeue::Entry) -> f64 {
    let t = Instant::now();
    for _ in 0..CHECKS / BATCH {
        for _ in 0..BATCH {
            // SAFETY: the entries point at nothing or at PEEK_SINK, which outlives the ring.
            unsafe { ring.submission().push(&sqe()).expect("room for a batch") };
        }
        ring.submit_and_wait(BATCH as usize)
            .expect("io_uring_enter");
        ring.completion()
            .for_each(|c| assert!(matches!(c.result(), 0 | EAGAIN), "{}", c.result()));
    }
    t.elapsed().as_nanos() as f64 / f64::from(CHECKS)
}

static PEEK_SINK: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(0);

fn peek(fd: RawFd) {
    let mut b = 0u8;
    // SAFETY: a one-byte peek into a local.
    let n = unsafe {
        libc::recv(
            fd,
            (&raw mut b).cast(),
            1,
            libc::MSG_PEEK | libc::MSG_DONTWAIT,
        )
    };
    assert_eq!(n, -1, "the connection is idle");
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let idle = TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let (_peer, _) = l.accept().unwrap();
    let fd = idle.as_raw_fd();
    let mut ring: IoUring = IoUring::builder()
        .setup_single_issuer()
        .setup_defer_taskrun()
        .build(2 * BATCH)
        .expect("io_uring with DEFER_TASKRUN");
    let peek_op = || {
        opcode::Recv::new(Fd(fd), PEEK_SINK.as_ptr(), 1)
            .flags(libc::MSG_PEEK | libc::MSG_DONTWAIT)
            .build()
    };
    let names = [
        "recv MSG_PEEK system call",
        "poll, no wait",
        "ioctl FIONREAD",
        "getppid (fixed cost of a system call)",
        "io_uring recv MSG_PEEK, 32 per enter",
        "io_uring nop, 32 per enter",
    ];
    let mut runs: Vec<Vec<f64>> = vec![Vec::new(); names.len()];
    for _ in 0..ROUNDS {
        runs[0].push(per_call(|| peek(fd)));
        runs[1].push(per_call(|| {
            let mut p = libc::pollfd {
                fd,
                events: libc::POLLIN | libc::POLLRDHUP,
                revents: 0,
            };
            // SAFETY: one pollfd, no wait.
            assert_eq!(unsafe { libc::poll(&mut p, 1, 0) }, 0);
        }));
        runs[2].push(per_call(|| {
            let mut n: libc::c_int = 0;
            // SAFETY: FIONREAD writes one int.
            assert_eq!(unsafe { libc::ioctl(fd, libc::FIONREAD, &mut n) }, 0);
            assert_eq!(n, 0);
        }));
        runs[3].push(per_call(|| {
            // SAFETY: no arguments, no effects.
            unsafe { libc::getppid() };
        }));
        runs[4].push(per_op(&mut ring, peek_op));
        runs[5].push(per_op(&mut ring, || opcode::Nop::new().build()));
    }
    for (name, r) in names.iter().zip(runs) {
        println!("{name:40} {:6.0} ns", median(r));
    }
}
