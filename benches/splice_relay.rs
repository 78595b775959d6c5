//! What splice(2) would save the proxy on large bodies: a relay thread moves a stream from one
//! loopback TCP connection to another, either through a user-space buffer (read + write, 256
//! KiB at a time, as ringproxy streams bodies) or through a pipe (splice in, splice out; a pipe
//! of 256 KiB, and of the default 64 KiB, which is what an unprivileged process can give every
//! connection under fs.pipe-user-pages-soft), and the relay thread's own CPU time per MiB is
//! counted by the kernel (CLOCK_THREAD_CPUTIME_ID). A source thread writes, a sink thread reads and discards; both
//! are outside the figure. Runs alternate between the two ways; medians of CPU-µs per MiB.
//! `cargo bench --bench splice_relay`.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::thread;

const CHUNK: usize = 256 * 1024;
const MIB_PER_RUN: usize = 256;
const RUNS: usize = 5;

#[derive(Clone, Copy, PartialEq)]
enum Way {
    Copy,
    /// Through a pipe of this many bytes.
    Splice(usize),
}

fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes the timespec it is given.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// A connected loopback pair: (the end written to, the end read from).
fn pair() -> (TcpStream, TcpStream) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let a = TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let (b, _) = l.accept().unwrap();
    a.set_nodelay(true).unwrap();
    b.set_nodelay(true).unwrap();
    (a, b)
}

fn check(r: isize, what: &str) -> usize {
    assert!(r >= 0, "{what}: {}", std::io::Error::last_os_error());
    r as usize
}

/// Moves `total` bytes from `from` to `to`; returns the relay thread's CPU nanoseconds.
fn relay(way: Way, from: &mut TcpStream, to: &mut TcpStream, total: usize) -> u64 {
    let t0 = thread_cpu_ns();
    let mut moved = 0;
    match way {
        Way::Copy => {
            let mut buf = vec![0u8; CHUNK];
            while moved < total {
                let n = from.read(&mut buf).unwrap();
                assert!(n > 0, "source closed early");
                to.write_all(&buf[..n]).unwrap();
                moved += n;
            }
        }
        Way::Splice(pipe) => {
            let mut fds = [0; 2];
            // SAFETY: pipe2 fills the two fds it is given.
            check(
                unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } as isize,
                "pipe2",
            );
            // SAFETY: plain fcntl on our pipe.
            let size = unsafe { libc::fcntl(fds[1], libc::F_SETPIPE_SZ, pipe as libc::c_int) };
            assert_eq!(size as usize, pipe, "F_SETPIPE_SZ");
            let (pr, pw) = (fds[0], fds[1]);
            let null = std::ptr::null_mut();
            while moved < total {
                // SAFETY: splice between our socket and our pipe, no offsets.
                let n = check(
                    unsafe {
                        libc::splice(from.as_raw_fd(), null, pw, null, pipe, libc::SPLICE_F_MOVE)
                    },
                    "splice in",
                );
                assert!(n > 0, "source closed early");
                let mut left = n;
                while left > 0 {
                    // SAFETY: as above, from the pipe to the other socket.
                    left -= check(
                        unsafe {
                            libc::splice(pr, null, to.as_raw_fd(), null, left, libc::SPLICE_F_MOVE)
                        },
                        "splice out",
                    );
                }
                moved += n;
            }
            // SAFETY: closing the pipe we opened.
            unsafe {
                libc::close(pr);
                libc::close(pw);
            }
        }
    }
    thread_cpu_ns() - t0
}

fn main() {
    let total = MIB_PER_RUN << 20;
    let ways = [Way::Copy, Way::Splice(CHUNK), Way::Splice(64 * 1024)];
    let mut per_way: Vec<(Way, Vec<f64>)> = ways.iter().map(|w| (*w, vec![])).collect();
    for _ in 0..RUNS {
        for (way, results) in per_way.iter_mut() {
            let (mut src, mut relay_in) = pair();
            let (mut relay_out, mut sink) = pair();
            let source = thread::spawn(move || {
                let data = vec![0x5au8; CHUNK];
                for _ in 0..total / CHUNK {
                    src.write_all(&data).unwrap();
                }
            });
            let drain = thread::spawn(move || {
                let mut buf = vec![0u8; CHUNK];
                let mut got = 0;
                while got < total {
                    let n = sink.read(&mut buf).unwrap();
                    assert!(n > 0, "relay closed early");
                    got += n;
                }
            });
            let way = *way;
            let ns = thread::spawn(move || relay(way, &mut relay_in, &mut relay_out, total))
                .join()
                .unwrap();
            source.join().unwrap();
            drain.join().unwrap();
            results.push(ns as f64 / 1000.0 / MIB_PER_RUN as f64);
        }
    }
    for (way, mut r) in per_way {
        r.sort_by(f64::total_cmp);
        let name = match way {
            Way::Copy => "read + write, 256 KiB buffer".to_string(),
            Way::Splice(p) => format!("splice through a {} KiB pipe", p / 1024),
        };
        println!(
            "{name:<32} {:>8.1} relay CPU-µs per MiB (median of {RUNS}; {:.1}–{:.1})",
            r[RUNS / 2],
            r[0],
            r[RUNS - 1]
        );
    }
}
