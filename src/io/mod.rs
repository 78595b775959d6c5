//! The I/O seam. Everything that knows io_uring lives in `uring`; `epoll` is the fallback with
//! the same contract, for kernels or sandboxes (seccomp, `kernel.io_uring_disabled`) without
//! io_uring. The proxy is generic over `Backend` and never names either runtime.
//!
//! The contract both backends keep, because tokio-uring's dropped ops are not cancelled
//! (shared/notes/io-uring.md 1.6):
//! - every operation owns its buffers for as long as the kernel may touch them;
//! - a deadline never loses bytes: a read that times out is cancelled and awaited, and data that
//!   raced the cancel is returned, not dropped;
//! - a connection's fd is closed only once no operation on it is in flight.

use std::fs::File;
use std::future::Future;
use std::io;
use std::net::{Shutdown, SocketAddr};
use std::rc::Rc;
use std::time::Instant;

mod epoll;
mod pipe;
mod uring;

pub use epoll::Epoll;
pub use pipe::{NonBlocking, Pipe, Ready};
pub use uring::{Ring, Uring};

/// One runtime flavour. All futures are `!Send`: a shard's connections never leave its thread.
#[allow(async_fn_in_trait)] // shards are single-threaded by design; no Send bounds wanted
pub trait Backend: 'static {
    type Conn: Conn;
    type Listener: Listener<Conn = Self::Conn>;
    const NAME: &'static str;

    /// Runs `fut` to completion on a fresh runtime owned by the current thread.
    fn block_on<F: Future>(fut: F) -> F::Output;
    /// Spawns a task on the current thread's runtime.
    fn spawn<F: Future<Output = ()> + 'static>(fut: F);
    fn listener(l: std::net::TcpListener) -> io::Result<Self::Listener>;
    /// Connects with TCP_NODELAY set; Err(TimedOut) at the deadline.
    async fn connect(addr: SocketAddr, deadline: Instant) -> io::Result<Self::Conn>;
    /// Appends `buf` to a file opened with O_APPEND (log files), without blocking the shard
    /// where the backend allows it.
    async fn append(file: Rc<File>, buf: Vec<u8>) -> (io::Result<()>, Vec<u8>);
    /// Sleeps until `deadline` with the finest timer the backend has (io_uring: a kernel
    /// timeout, microsecond-accurate; epoll: tokio's millisecond wheel). For open-loop pacing.
    async fn sleep_until(deadline: Instant);
    /// Sleeps until `deadline` on the backend's cheapest timer (milliseconds are fine; no
    /// allocation per call): housekeeping ticks and back-offs.
    async fn pause_until(deadline: Instant);
    /// The time to compute deadlines from. On our own io_uring loop it is read once per turn
    /// of the loop, so a deadline may fall up to one turn early, never late (a clock read per
    /// deadline was 1.4–2.8 % of the proxy's CPU, perf/README.md); elsewhere `Instant::now()`.
    fn now() -> Instant {
        Instant::now()
    }
}

#[allow(async_fn_in_trait)]
pub trait Listener: 'static {
    type Conn: Conn;
    /// Accepts one connection (TCP_NODELAY set). Several accepts may be outstanding.
    async fn accept(&self) -> io::Result<(Self::Conn, SocketAddr)>;
    /// Makes every pending and future `accept` fail, so accept loops end (drain).
    fn close(&self);
}

#[allow(async_fn_in_trait)]
pub trait Conn: 'static {
    /// Reads into `buf[len..capacity]` and extends `len`; Ok(0) is end of stream. At the
    /// deadline (io_uring: up to 10 ms after it when it was 100 ms or more away, see
    /// uring/watch.rs): Err(TimedOut), with nothing consumed from the socket.
    async fn read(&self, buf: Vec<u8>, deadline: Instant) -> (io::Result<usize>, Vec<u8>);
    /// Writes every segment of `g`, in order; Err(TimedOut) at the deadline. On every return
    /// `g` has its buffers back (on an error, with the segments not sent). If the future is
    /// dropped mid-flight, `g` (and `buf` in `write_then_read`) may be left empty: their heap
    /// blocks stay with the operation until the kernel completes it. Borrowed, not passed by
    /// value, so the buffers move only into the operation (perf/README.md).
    async fn write_all(&self, g: &mut Gather, deadline: Instant) -> io::Result<()>;
    /// `write_all` of `g` by `by.write`, then one `read` into `buf` by `by.read`: a client's
    /// request and the start of its response. A backend that can link the two submits them at
    /// once.
    async fn write_then_read(
        &self,
        g: &mut Gather,
        buf: &mut Vec<u8>,
        by: Deadlines,
    ) -> Result<usize, ExchangeError> {
        one_then_other(self, g, buf, by).await
    }
    /// Splices up to `max` bytes of what has arrived into `pipe` without waiting: Ok(0) at end
    /// of stream, Err(WouldBlock) when nothing is there yet (then `ready(Ready::Read)`). The
    /// socket is non-blocking meanwhile (`NonBlocking`).
    fn splice_in(&self, pipe: &mut Pipe, max: usize) -> io::Result<usize> {
        pipe.fill_from(self.raw_fd(), max)
    }
    /// Splices what `pipe` holds to the socket, as much as it takes without waiting;
    /// Err(WouldBlock) when it takes nothing (then `ready(Ready::Write)`).
    fn splice_out(&self, pipe: &mut Pipe) -> io::Result<usize> {
        pipe.drain_to(self.raw_fd())
    }
    /// Waits until the socket can be read (or has reached its end) or written;
    /// Err(TimedOut) at the deadline.
    async fn ready(&self, dir: Ready, deadline: Instant) -> io::Result<()>;
    /// True when an idle connection shows neither EOF nor unsolicited bytes (checked with
    /// MSG_PEEK | MSG_DONTWAIT; never parks a read on the socket).
    fn is_idle_alive(&self) -> bool;
    fn shutdown(&self, how: Shutdown);
    fn local_addr(&self) -> io::Result<SocketAddr>;
    /// The socket's fd, for the shard's registry (drain shuts idle ones down).
    fn raw_fd(&self) -> std::os::fd::RawFd;
}

/// Lets the thread's other tasks run before this one goes on: a transfer that never has to
/// wait (a fast member and a fast client) would otherwise hold the shard. Wakes itself and
/// yields once, on any backend's executor.
pub async fn yield_now() {
    let mut yielded = false;
    std::future::poll_fn(|cx| {
        if yielded {
            return std::task::Poll::Ready(());
        }
        yielded = true;
        cx.waker().wake_by_ref();
        std::task::Poll::Pending
    })
    .await
}

/// Which half of a `Conn::write_then_read` failed.
#[derive(Debug)]
pub enum ExchangeError {
    Write(io::Error),
    Read(io::Error),
}

/// The deadlines of `Conn::write_then_read`'s two halves.
#[derive(Debug, Clone, Copy)]
pub struct Deadlines {
    pub write: Instant,
    pub read: Instant,
}

/// `Conn::write_then_read` as two operations, one after the other (also for byte streams
/// over a `Conn`, such as ringload's TLS).
pub async fn write_then_read(
    write: impl AsyncFnOnce(&mut Gather) -> io::Result<()>,
    read: impl AsyncFnOnce(Vec<u8>) -> (io::Result<usize>, Vec<u8>),
    g: &mut Gather,
    buf: &mut Vec<u8>,
) -> Result<usize, ExchangeError> {
    write(g).await.map_err(ExchangeError::Write)?;
    let (r, back) = read(std::mem::take(buf)).await;
    *buf = back;
    r.map_err(ExchangeError::Read)
}

/// `Conn::write_then_read` on `c` as two operations, one after the other.
async fn one_then_other<C: Conn + ?Sized>(
    c: &C,
    g: &mut Gather,
    buf: &mut Vec<u8>,
    by: Deadlines,
) -> Result<usize, ExchangeError> {
    let write = async |g: &mut Gather| c.write_all(g, by.write).await;
    write_then_read(write, async |b| c.read(b, by.read).await, g, buf).await
}

/// Which buffer of a `Gather` a segment points into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Src {
    /// The input buffer of the other side (forwarded bytes, never copied).
    Input,
    /// Bytes the proxy generated (changed header fields, its own responses).
    Scratch,
}

/// A gather list over two owned buffers: what one `writev` (or one send) sends. The buffers
/// travel with the operation and come back with its result, so the kernel never sees freed
/// memory and nothing is allocated per request once capacities have grown.
#[derive(Debug, Default)]
pub struct Gather {
    pub input: Vec<u8>,
    pub scratch: Vec<u8>,
    segs: Vec<(Src, u32, u32)>,
    /// The uring backend's iovec array, kept for its capacity.
    iov: Vec<libc::iovec>,
    /// The uring backend's sendmsg header (one, on the heap so the kernel's pointer to it
    /// stays valid while the Gather moves).
    msg: Vec<libc::msghdr>,
}

impl Gather {
    pub fn new() -> Gather {
        Gather::default()
    }

    /// Drops every segment and the scratch bytes (a flattened send leaves a copy there); the
    /// buffers keep their capacity.
    pub fn clear(&mut self) {
        self.segs.clear();
        self.scratch.clear();
    }

    /// Takes `src` as the input buffer that `Src::Input` segments point into.
    pub fn lend_input(&mut self, src: &mut Vec<u8>) {
        self.input = std::mem::take(src);
    }

    /// Gives the input buffer back to `src` and clears the list for the next use.
    pub fn return_input(&mut self, src: &mut Vec<u8>) {
        *src = std::mem::take(&mut self.input);
        self.clear();
    }

    /// Appends `start..end` of one buffer; merges with the previous segment when contiguous.
    pub fn push(&mut self, src: Src, start: usize, end: usize) {
        if start >= end {
            return;
        }
        if let Some(last) = self.segs.last_mut()
            && last.0 == src
            && last.2 as usize == start
        {
            last.2 = end as u32;
            return;
        }
        self.segs.push((src, start as u32, end as u32));
    }

    /// Appends bytes to the scratch buffer and a segment for them.
    pub fn push_scratch(&mut self, bytes: &[u8]) {
        let start = self.scratch.len();
        self.scratch.extend_from_slice(bytes);
        self.push(Src::Scratch, start, self.scratch.len());
    }

    pub fn is_empty(&self) -> bool {
        self.segs.is_empty()
    }

    pub fn total_len(&self) -> usize {
        self.segs.iter().map(|s| (s.2 - s.1) as usize).sum()
    }

    /// Copies a small gather of several segments to the end of the scratch buffer, as one
    /// segment: the copy of a few hundred bytes costs less than the kernel's import of a
    /// msghdr and its iovecs, and the send becomes a plain one.
    fn flatten_small(&mut self) {
        if self.segs.len() < 2 || self.total_len() > FLATTEN_MAX {
            return;
        }
        let start = self.scratch.len();
        for &(src, s, e) in &self.segs {
            let range = s as usize..e as usize;
            match src {
                Src::Input => self.scratch.extend_from_slice(&self.input[range]),
                Src::Scratch => self.scratch.extend_from_within(range),
            }
        }
        self.segs.clear();
        self.segs
            .push((Src::Scratch, start as u32, self.scratch.len() as u32));
    }

    /// The bytes when there is exactly one segment.
    fn single(&self) -> Option<&[u8]> {
        match self.segs[..] {
            [seg] => Some(self.slice(seg)),
            _ => None,
        }
    }

    /// The bytes of each segment, in order (for wires that transform them, such as TLS).
    pub fn segments(&self) -> impl Iterator<Item = &[u8]> + '_ {
        self.segs.iter().map(|&s| self.slice(s))
    }

    fn slice(&self, seg: (Src, u32, u32)) -> &[u8] {
        let buf = match seg.0 {
            Src::Input => &self.input,
            Src::Scratch => &self.scratch,
        };
        &buf[seg.1 as usize..seg.2 as usize]
    }

    /// Rebuilds the iovec array from the segments (at most IOV_MAX of them per call).
    fn fill_iov(&mut self) {
        self.iov.clear();
        for &(src, start, end) in self.segs.iter().take(IOV_MAX) {
            let buf = match src {
                Src::Input => &self.input,
                Src::Scratch => &self.scratch,
            };
            let s = &buf[start as usize..end as usize];
            self.iov.push(libc::iovec {
                iov_base: s.as_ptr() as *mut libc::c_void,
                iov_len: s.len(),
            });
        }
    }

    /// A sendmsg header over the iovec array rebuilt from the segments.
    fn fill_msghdr(&mut self) -> *const libc::msghdr {
        self.fill_iov();
        // SAFETY: all-zero is a valid msghdr (no name, no control data).
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_iov = self.iov.as_mut_ptr();
        msg.msg_iovlen = self.iov.len() as _;
        self.msg.clear();
        self.msg.push(msg);
        self.msg.as_ptr()
    }

    /// Marks `n` bytes as written: drops finished segments, trims a partial one.
    fn advance(&mut self, mut n: usize) {
        let mut done = 0;
        for seg in self.segs.iter_mut() {
            let len = (seg.2 - seg.1) as usize;
            if n >= len {
                n -= len;
                done += 1;
            } else {
                seg.1 += n as u32;
                break;
            }
        }
        self.segs.drain(..done);
    }
}

/// The largest gather of several segments sent as one copy (see `Gather::flatten_small`).
const FLATTEN_MAX: usize = 1024;

/// The most segments one writev or sendmsg takes (Linux's UIO_MAXIOV).
const IOV_MAX: usize = 1024;

/// Which backend a process runs on, decided once at start-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Uring,
    /// io_uring on our own event loop (uring/own.rs).
    Ring,
    Epoll,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Uring => Uring::NAME,
            Kind::Ring => Ring::NAME,
            Kind::Epoll => Epoll::NAME,
        }
    }
}

/// The backend asked for (`--io`, `IoBackend`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Choice {
    /// `ring` where io_uring is usable, else `epoll`.
    Auto,
    /// io_uring on tokio-uring's loop.
    Uring,
    /// io_uring on our own event loop.
    Ring,
    Epoll,
}

impl Choice {
    /// The command-line spelling: `auto`, `uring` (or `io_uring`), `ring`, `epoll`.
    pub fn parse(word: &str) -> Option<Choice> {
        Some(match word {
            "auto" => Choice::Auto,
            "uring" | "io_uring" => Choice::Uring,
            "ring" => Choice::Ring,
            "epoll" => Choice::Epoll,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Choice::Auto => "auto",
            Choice::Uring => "uring",
            Choice::Ring => "ring",
            Choice::Epoll => "epoll",
        }
    }
}

/// Where a thread runs for `choice`: the kind, with the reason when `auto` fell back to epoll
/// because io_uring is unusable here; Err(why io_uring is unusable) when the choice needs it.
pub fn select(choice: Choice) -> Result<(Kind, Option<String>), String> {
    match (choice, probe_uring()) {
        (Choice::Epoll, _) => Ok((Kind::Epoll, None)),
        (Choice::Uring, Ok(())) => Ok((Kind::Uring, None)),
        (Choice::Ring | Choice::Auto, Ok(())) => Ok((Kind::Ring, None)),
        (Choice::Auto, Err(why)) => Ok((Kind::Epoll, Some(why))),
        (Choice::Uring | Choice::Ring, Err(why)) => Err(why),
    }
}

/// Checks that io_uring can be used here (ring creation and the cancel-by-fd opcode the
/// timeouts rely on). Err carries the reason for the one-line notice.
fn probe_uring() -> Result<(), String> {
    uring::probe()
}

/// Liveness of an idle socket without consuming anything: EOF or stray bytes mean dead.
fn peek_idle(fd: std::os::fd::RawFd) -> bool {
    let mut b = [0u8; 1];
    // SAFETY: one-byte peek into a stack buffer.
    let n = unsafe {
        libc::recv(
            fd,
            b.as_mut_ptr().cast(),
            1,
            libc::MSG_PEEK | libc::MSG_DONTWAIT,
        )
    };
    n < 0 && io::Error::last_os_error().kind() == io::ErrorKind::WouldBlock
}

/// One listener with SO_REUSEPORT and SO_REUSEADDR, listening with a backlog of 4096: each
/// thread binds its own, and the kernel spreads connections between them.
pub fn reuseport_listener(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    let s = reuseaddr_socket(addr)?;
    s.set_reuse_port(true)?;
    s.set_nodelay(true)?;
    s.bind(&addr.into())?;
    s.listen(4096)?;
    Ok(s.into())
}

/// Checks that nobody listens on `addr` yet. SO_REUSEPORT listeners of the same user would
/// otherwise share the port silently; this probe has SO_REUSEADDR only, so it conflicts with any
/// listening socket but not with connections left in TIME_WAIT.
pub fn check_port_free(addr: SocketAddr) -> io::Result<()> {
    reuseaddr_socket(addr)?.bind(&addr.into())
}

/// A TCP socket for `addr`'s family with SO_REUSEADDR, close-on-exec.
fn reuseaddr_socket(addr: SocketAddr) -> io::Result<socket2::Socket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let s = Socket::new(
        Domain::for_address(addr),
        Type::STREAM.cloexec(),
        Some(Protocol::TCP),
    )?;
    s.set_reuse_address(true)?;
    Ok(s)
}

/// Deadline helper: now + d.
pub fn deadline(d: std::time::Duration) -> Instant {
    Instant::now() + d
}

fn timed_out() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "timed out")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gather_merges_and_advances() {
        let mut g = Gather::new();
        g.input.extend_from_slice(b"GET / HTTP/1.1\r\nA: b\r\n");
        g.push(Src::Input, 0, 16);
        g.push(Src::Input, 16, 22);
        g.push_scratch(b"X: y\r\n");
        assert_eq!(g.segs.len(), 2);
        assert_eq!(g.total_len(), 28);
        g.advance(20);
        assert_eq!(g.segs.len(), 2);
        assert_eq!(g.slice(g.segs[0]), b"\r\n");
        g.advance(2);
        assert_eq!(g.segs.len(), 1);
        assert_eq!(g.slice(g.segs[0]), b"X: y\r\n");
        g.advance(6);
        assert!(g.is_empty());
    }

    #[test]
    fn a_small_gather_is_sent_as_one_copy_and_a_large_one_as_it_is() {
        let mut g = Gather::new();
        g.input.extend_from_slice(b"GET / HTTP/1.1\r\nA: b\r\n");
        g.push(Src::Input, 0, 16);
        g.push_scratch(b"X: y\r\n");
        g.push(Src::Input, 16, 22);
        g.flatten_small();
        assert_eq!(g.single(), Some(&b"GET / HTTP/1.1\r\nX: y\r\nA: b\r\n"[..]));
        g.advance(16);
        assert_eq!(g.single(), Some(&b"X: y\r\nA: b\r\n"[..]));
        // The copy goes with the segments: a Gather reused for send after send (ringload's)
        // does not grow.
        g.clear();
        assert!(g.is_empty() && g.scratch.is_empty());

        let mut g = Gather::new();
        g.input.resize(FLATTEN_MAX, b'a');
        g.push_scratch(b"head\r\n");
        g.push(Src::Input, 0, FLATTEN_MAX);
        g.flatten_small();
        assert_eq!(g.segs.len(), 2);
        assert_eq!(g.total_len(), FLATTEN_MAX + 6);
    }
}
