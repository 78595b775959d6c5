//! The floor under any user-space proxy on io_uring: each accepted client connection is paired
//! with one member connection for its life, and bytes go back and forth with nothing looked
//! at. It does per request only what no proxy can skip: a receive and a send each way, on
//! ringproxy's ring setup (`SINGLE_ISSUER | DEFER_TASKRUN`, each send linked to the next
//! receive, the send posting no completion), one `io_uring_enter` per batch of completions.
//! No parsing, no routing, no pool check, no log. `perf/profile` runs it as
//! `TARGET=relay-floor` (perf/README.md, "The floor under the 0.6× target").
//!
//! Each direction is a chain with one operation in flight: a receive, then the send of what
//! it got linked to the next receive into the same buffer. A close or an error on either side
//! ends both directions (no half-close). Bodies go through 64 KiB buffers, not spliced as
//! ringproxy's are, so it is a floor for small messages only.
//!
//! Usage: relay_floor LISTEN_PORT MEMBER_PORT[,MEMBER_PORT...] [THREADS]
//! (127.0.0.1 only; members taken in turn per accepted connection; one SO_REUSEPORT listener
//! per thread).

use std::io;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use io_uring::{IoUring, opcode, squeue, types::Fd};
use socket2::{Domain, SockRef, Socket, Type};

const ENTRIES: u32 = 1024;
const BUF: usize = 64 * 1024;

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
    let (Some(listen), Some(members)) = (args.get(1), args.get(2)) else {
        eprintln!("{usage}");
        std::process::exit(2);
    };
    let listen: u16 = listen.parse().expect(usage);
    let members: Vec<u16> = members
        .split(',')
        .map(|p| p.parse().expect(usage))
        .collect();
    let threads: usize = args.get(3).map_or(1, |t| t.parse().expect(usage));
    let workers: Vec<_> = (0..threads)
        .map(|_| {
            let listener = listener(listen).expect("listen");
            let members = members.clone();
            std::thread::spawn(move || run(listener, &members))
        })
        .collect();
    for w in workers {
        if let Err(e) = w.join().expect("worker panicked") {
            eprintln!("relay_floor: {e}");
            std::process::exit(1);
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
    let mut ring = IoUring::builder()
        .setup_single_issuer()
        .setup_defer_taskrun()
        .build(ENTRIES)?;
    let lfd = listener.as_raw_fd();
    let mut pairs: Vec<Option<Pair>> = Vec::new();
    let mut next_member = 0;
    let mut queue = vec![accept_sqe(lfd)];
    loop {
        push_all(&mut ring, &mut queue)?;
        ring.submit_and_wait(1)?;
        let done: Vec<(u64, i32)> = ring
            .completion()
            .map(|c| (c.user_data(), c.result()))
            .collect();
        for (data, res) in done {
            let (idx, kind) = ((data >> KIND_BITS) as usize, data & ((1 << KIND_BITS) - 1));
            match kind {
                ACCEPT => {
                    queue.push(accept_sqe(lfd));
                    if res >= 0 {
                        // SAFETY: a successful accept returns a descriptor nothing else owns.
                        let client = unsafe { OwnedFd::from_raw_fd(res) };
                        let port = members[next_member % members.len()];
                        next_member += 1;
                        if let Ok(pair) = connect(client, port) {
                            start(&mut pairs, pair, &mut queue);
                        }
                    }
                }
                // The failed send's linked receive ends its chain (-ECANCELED).
                SEND => {}
                _ => {
                    let Some(pair) = pairs[idx].as_mut() else {
                        continue;
                    };
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
                        .user_data(((idx as u64) << KIND_BITS) | SEND);
                    queue.push(send);
                    queue.push(recv_sqe(from.as_raw_fd(), buf, idx, kind));
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
        up: vec![0; BUF].into_boxed_slice(),
        down: vec![0; BUF].into_boxed_slice(),
        live: 2,
    })
}

/// Puts the pair in a free slot and starts both directions' receives.
fn start(pairs: &mut Vec<Option<Pair>>, mut pair: Pair, queue: &mut Vec<squeue::Entry>) {
    let idx = pairs.iter().position(Option::is_none).unwrap_or_else(|| {
        pairs.push(None);
        pairs.len() - 1
    });
    queue.push(recv_sqe(
        pair.client.as_raw_fd(),
        &mut pair.up,
        idx,
        UP_RECV,
    ));
    queue.push(recv_sqe(
        pair.member.as_raw_fd(),
        &mut pair.down,
        idx,
        DOWN_RECV,
    ));
    pairs[idx] = Some(pair);
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
        .user_data(((idx as u64) << KIND_BITS) | kind)
}

fn push_all(ring: &mut IoUring, queue: &mut Vec<squeue::Entry>) -> io::Result<()> {
    for sqe in queue.drain(..) {
        // SAFETY: every buffer an entry points to is a pair's heap buffer, and a pair stays
        // until neither of its chains has an operation in flight.
        while unsafe { ring.submission().push(&sqe) }.is_err() {
            ring.submit()?;
        }
    }
    Ok(())
}
