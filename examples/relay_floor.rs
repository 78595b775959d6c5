//! What ringproxy's I/O costs without HTTP: each accepted client connection is paired with one
//! member connection for its life, and bytes go back and forth with nothing looked at. Per
//! request it does a receive and a send each way and nothing else, with ringproxy's operations
//! and ring setup (`SINGLE_ISSUER | DEFER_TASKRUN`; one-shot receives; each send linked to the
//! next receive and posting no completion; descriptors not registered; one `io_uring_enter` per
//! batch of completions). No parsing, no routing, no pool check, no log: what ringproxy costs
//! above it is its own work. `perf/compare --proxies relay-floor` and
//! `TARGET=relay-floor perf/profile` run it (perf/README.md, "The io_uring byte relay").
//!
//! Each direction is a chain with one operation in flight: a receive, then the send of what
//! it got linked to the next receive into the same buffer. A close or an error on either side
//! ends both directions (no half-close). Bodies go through 64 KiB buffers, not spliced as
//! ringproxy's are, so it is a reference for small messages only.
//!
//! Usage: relay_floor LISTEN_PORT MEMBER_PORT[,MEMBER_PORT...] [THREADS]
//! (127.0.0.1 only; one SO_REUSEPORT listener per thread, THREADS >= 1; each thread takes the
//! members in turn for the connections it accepts).

use std::io;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use io_uring::{IoUring, opcode, squeue, types::Fd};
use socket2::{Domain, SockRef, Socket, Type};

const ENTRIES: u32 = 1024;
const BUF_LEN: usize = 64 * 1024;

/// What a completion is for: the low bits of its user data; the pair's index is above them.
/// A chain's send posts a completion only when it fails.
const ACCEPT: u64 = 0;
const UP_RECV: u64 = 1;
const DOWN_RECV: u64 = 2;
const SEND: u64 = 3;
const KIND_BITS: u32 = 2;

/// One client connection and its member connection. `up` carries client bytes to the member,
/// `down` the member's bytes to the client.
struct Pair {
    client: OwnedFd,
    member: OwnedFd,
    up: Box<[u8]>,
    down: Box<[u8]>,
    /// Directions whose chain still has an operation in flight (0 to 2).
    live: u8,
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: relay_floor LISTEN_PORT MEMBER_PORT[,MEMBER_PORT...] [THREADS]";
    let parsed = (|| {
        let listen: u16 = args.get(1)?.parse().ok()?;
        let members = args.get(2)?.split(',').map(|p| p.parse().ok());
        let members: Vec<u16> = members.collect::<Option<_>>()?;
        let threads: usize = args.get(3).map_or(Some(1), |t| t.parse().ok())?;
        (args.len() <= 4 && threads >= 1).then_some((listen, members, threads))
    })();
    let Some((listen, members, threads)) = parsed else {
        eprintln!("{usage}");
        std::process::exit(2);
    };
    raise_fd_limit();
    let workers: Vec<_> = (0..threads)
        .map(|_| {
            let listener = listener(listen).unwrap_or_else(|e| fail("listen", e));
            let members = members.clone();
            std::thread::spawn(move || {
                if let Err(e) = run(listener, &members) {
                    fail("worker", e);
                }
            })
        })
        .collect();
    for w in workers {
        let _ = w.join();
    }
}

/// Ends the whole process: a relay with a worker gone would measure something else.
fn fail(what: &str, e: io::Error) -> ! {
    eprintln!("relay_floor: {what}: {e}");
    std::process::exit(1);
}

/// Two descriptors per pair: lift the soft limit to the hard one.
fn raise_fd_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain system calls on a local struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

fn listener(port: u16) -> io::Result<Socket> {
    let s = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    s.set_reuse_address(true)?;
    s.set_reuse_port(true)?;
    s.bind(&SocketAddr::from((Ipv4Addr::LOCALHOST, port)).into())?;
    s.listen(1024)?;
    Ok(s)
}

fn run(listener: Socket, members: &[u16]) -> io::Result<()> {
    // Declared before the ring, so dropped after it: no buffer goes while the ring lives.
    let mut pairs: Vec<Option<Pair>> = Vec::new();
    let mut ring = IoUring::builder()
        .setup_single_issuer()
        .setup_defer_taskrun()
        .build(ENTRIES)?;
    let lfd = listener.as_raw_fd();
    let mut next_member = 0;
    let mut done: Vec<(u64, i32)> = Vec::with_capacity(ENTRIES as usize);
    push(&mut ring, &[accept_sqe(lfd)])?;
    loop {
        match ring.submit_and_wait(1) {
            Ok(_) => {}
            // A signal, or completions waiting to be reaped first.
            Err(e) if matches!(e.raw_os_error(), Some(libc::EINTR | libc::EBUSY)) => {}
            Err(e) => return Err(e),
        }
        done.clear();
        done.extend(ring.completion().map(|c| (c.user_data(), c.result())));
        for &(data, res) in &done {
            let (idx, kind) = ((data >> KIND_BITS) as usize, data & ((1 << KIND_BITS) - 1));
            match kind {
                ACCEPT => {
                    if res < 0 && !matches!(-res, libc::ECONNABORTED | libc::EINTR) {
                        return Err(io::Error::from_raw_os_error(-res));
                    }
                    push(&mut ring, &[accept_sqe(lfd)])?;
                    if res >= 0 {
                        // SAFETY: a successful accept returns a descriptor nothing else owns.
                        let client = unsafe { OwnedFd::from_raw_fd(res) };
                        let port = members[next_member % members.len()];
                        next_member += 1;
                        if let Ok(pair) = connect(client, port) {
                            start(&mut ring, &mut pairs, pair)?;
                        }
                    }
                }
                // The failed send's linked receive ends its chain (-ECANCELED).
                SEND => {}
                _ => {
                    let pair = pairs[idx].as_mut().expect("a receive of a live pair");
                    if res <= 0 {
                        // A close or an error ends both directions: the shutdown ends the
                        // other chain's receive; the pair goes when neither has one left.
                        pair.live -= 1;
                        if pair.live == 0 {
                            pairs[idx] = None;
                        } else {
                            for fd in [&pair.client, &pair.member] {
                                // SAFETY: a plain system call on a descriptor the pair owns.
                                unsafe { libc::shutdown(fd.as_raw_fd(), libc::SHUT_RDWR) };
                            }
                        }
                        continue;
                    }
                    let (from, to, buf) = if kind == UP_RECV {
                        (&pair.client, &pair.member, &mut pair.up)
                    } else {
                        (&pair.member, &pair.client, &mut pair.down)
                    };
                    let send = opcode::Send::new(Fd(to.as_raw_fd()), buf.as_ptr(), res as u32)
                        .flags(libc::MSG_WAITALL)
                        .build()
                        .flags(squeue::Flags::IO_LINK | squeue::Flags::SKIP_SUCCESS)
                        .user_data(tag(idx, SEND));
                    let recv = recv_sqe(from.as_raw_fd(), buf, idx, kind);
                    push(&mut ring, &[send, recv])?;
                }
            }
        }
    }
}

fn connect(client: OwnedFd, port: u16) -> io::Result<Pair> {
    let member = TcpStream::connect((Ipv4Addr::LOCALHOST, port))?;
    member.set_nodelay(true)?;
    SockRef::from(&client).set_nodelay(true)?;
    Ok(Pair {
        client,
        member: member.into(),
        up: vec![0; BUF_LEN].into_boxed_slice(),
        down: vec![0; BUF_LEN].into_boxed_slice(),
        live: 2,
    })
}

/// Puts the pair in a free slot and starts both directions' receives.
fn start(ring: &mut IoUring, pairs: &mut Vec<Option<Pair>>, mut pair: Pair) -> io::Result<()> {
    let idx = pairs.iter().position(Option::is_none).unwrap_or_else(|| {
        pairs.push(None);
        pairs.len() - 1
    });
    let up = recv_sqe(pair.client.as_raw_fd(), &mut pair.up, idx, UP_RECV);
    let down = recv_sqe(pair.member.as_raw_fd(), &mut pair.down, idx, DOWN_RECV);
    pairs[idx] = Some(pair);
    push(ring, &[up, down])
}

fn accept_sqe(lfd: RawFd) -> squeue::Entry {
    opcode::Accept::new(Fd(lfd), std::ptr::null_mut(), std::ptr::null_mut())
        .flags(libc::SOCK_CLOEXEC)
        .build()
        .user_data(ACCEPT)
}

fn recv_sqe(fd: RawFd, buf: &mut [u8], idx: usize, kind: u64) -> squeue::Entry {
    opcode::Recv::new(Fd(fd), buf.as_mut_ptr(), buf.len() as u32)
        .build()
        .user_data(tag(idx, kind))
}

/// A completion's user data: the pair's index above the kind bits.
fn tag(idx: usize, kind: u64) -> u64 {
    ((idx as u64) << KIND_BITS) | kind
}

/// Queues `entries` together, submitting first when they do not fit: a link holds only
/// within one submission, so a send and its linked receive must go in at once.
fn push(ring: &mut IoUring, entries: &[squeue::Entry]) -> io::Result<()> {
    // SAFETY: every buffer an entry points to is a pair's heap buffer, and a pair stays until
    // neither of its chains has an operation in flight.
    while unsafe { ring.submission().push_multiple(entries) }.is_err() {
        ring.submit()?;
    }
    Ok(())
}
