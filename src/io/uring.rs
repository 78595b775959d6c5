//! The io_uring backend. Every socket operation is a raw io_uring opcode whose stored data (our
//! owned buffers) lives until the completion even if the future is dropped. Deadlines cancel
//! the operation by fd and then await it, so a timeout never loses bytes (notes 1.6 a/b).
//!
//! Two drivers run the ring, one per thread: tokio-uring's (`Uring`), and our own event loop
//! (`Ring`, own.rs), which can set up the ring with `DEFER_TASKRUN`. The operations here are
//! written once, generic over the driver.

use std::fs::File;
use std::future::Future;
use std::io;
use std::marker::PhantomData;
use std::net::{Shutdown, SocketAddr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::rc::Rc;
use std::time::{Duration, Instant};

use io_uring::types::{CancelBuilder, Fd, Timespec};
use io_uring::{cqueue, opcode, squeue};
use tokio_uring::{InFlightOneshot, OneshotOutputTransform, UnsubmittedOneshot};

use super::{Backend, Conn, Deadlines, ExchangeError, Gather, Listener, Ready, timed_out};

mod own;
mod watch;

pub use own::OwnRing;

/// What runs a thread's ring: submits operations that own their data until completion, runs
/// tasks, and spawns them.
#[allow(async_fn_in_trait)] // single-threaded by design, as `Backend`
pub trait Driver: 'static {
    const NAME: &'static str;
    /// An operation in flight; dropping it leaves the data with the driver until the kernel
    /// completes it.
    type Op<D: Unpin + 'static>: Future<Output = (io::Result<u32>, D)>;
    fn submit<D: Unpin + 'static>(data: D, sqe: squeue::Entry) -> Self::Op<D>;
    fn block_on<F: Future>(fut: F) -> F::Output;
    fn spawn<F: Future<Output = ()> + 'static>(fut: F);
    /// Submits `first` and `second` linked: `second` starts once `first` succeeded, and only
    /// `second` completes the operation. If `first` fails, the operation ends with a
    /// `FirstFailed` error and `second` never runs. Err(data) where the driver cannot link.
    fn submit_linked<D: Unpin + 'static>(
        data: D,
        first: squeue::Entry,
        second: squeue::Entry,
    ) -> Result<Self::Op<D>, D>;
    /// A kernel timeout: microsecond-accurate.
    async fn sleep_until(deadline: Instant);
    /// The cheapest timer the driver has, allocation-free, for housekeeping ticks.
    async fn pause_until(deadline: Instant);
    /// See `Backend::now`.
    fn now() -> Instant {
        Instant::now()
    }
}

/// How a linked operation's first half failed: its completion's result (an errno, negated, or
/// the bytes it moved before it failed).
#[derive(Debug)]
pub struct FirstFailed(pub i32);

impl std::fmt::Display for FirstFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the first of two linked operations failed ({})", self.0)
    }
}

impl std::error::Error for FirstFailed {}

impl FirstFailed {
    fn into_io(self) -> io::Error {
        if self.0 < 0 {
            io::Error::from_raw_os_error(-self.0)
        } else {
            io::ErrorKind::WriteZero.into() // some bytes went, then the send failed
        }
    }
}

/// Requests up to this size go out linked with the read of their response (one small send).
const LINK_MAX: usize = 64 * 1024;
/// A linked pair needs its read deadline at least this far away: the pair then shares it (the
/// send completes at once), and a cancel at the deadline is certain to find the read, which
/// the kernel starts only after the send, in the submitting `io_uring_enter`.
const LINK_MIN_WAIT: Duration = Duration::from_millis(5);

/// Submits a kernel timeout for `deadline` with its timespec in `ts` and waits for it; returns
/// the box for reuse. Boxed: the kernel reads the timespec when it takes the entry, which may
/// be after the future has moved.
async fn timeout<R: Driver>(mut ts: Box<Timespec>, deadline: Instant) -> Box<Timespec> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return ts;
    }
    *ts = Timespec::new()
        .sec(left.as_secs())
        .nsec(left.subsec_nanos());
    let sqe = opcode::Timeout::new(&*ts as *const Timespec).build();
    R::submit(ts, sqe).await.1 // ETIME is the normal completion
}

/// tokio-uring's driver: its ring is polled through tokio's epoll loop.
pub struct TokioUring;

impl Driver for TokioUring {
    const NAME: &'static str = "io_uring";
    type Op<D: Unpin + 'static> = InFlightOneshot<D, Completion<D>>;

    fn submit<D: Unpin + 'static>(data: D, sqe: squeue::Entry) -> Self::Op<D> {
        UnsubmittedOneshot::new(data, Completion(PhantomData), sqe).submit()
    }

    fn block_on<F: Future>(fut: F) -> F::Output {
        tokio_uring::builder().entries(1024).start(fut)
    }

    fn spawn<F: Future<Output = ()> + 'static>(fut: F) {
        drop(tokio_uring::spawn(fut));
    }

    /// tokio-uring routes every completion to its own table; it cannot skip one.
    fn submit_linked<D: Unpin + 'static>(
        data: D,
        _: squeue::Entry,
        _: squeue::Entry,
    ) -> Result<Self::Op<D>, D> {
        Err(data)
    }

    async fn sleep_until(deadline: Instant) {
        timeout::<Self>(Box::new(Timespec::new()), deadline).await;
    }

    async fn pause_until(deadline: Instant) {
        tokio::time::sleep_until(deadline.into()).await;
    }
}

/// The backend on tokio-uring's driver.
pub type Uring = UringOn<TokioUring>;
/// The backend on our own event loop.
pub type Ring = UringOn<OwnRing>;

/// Maps a completion to `(result, stored data)`.
pub struct Completion<D>(PhantomData<fn() -> D>);

impl<D> OneshotOutputTransform for Completion<D> {
    type Output = (io::Result<u32>, D);
    type StoredData = D;
    fn transform_oneshot_output(self, data: D, cqe: cqueue::Entry) -> Self::Output {
        let res = cqe.result();
        let r = if res < 0 {
            Err(io::Error::from_raw_os_error(-res))
        } else {
            Ok(res as u32)
        };
        (r, data)
    }
}

/// Cancels every operation in flight on `fd`; the cancel is queued on the ring at once, and
/// the returned future waits for the cancel itself to complete.
fn cancel_fd<R: Driver>(fd: RawFd) -> impl Future<Output = ()> + use<R> {
    let sqe = opcode::AsyncCancel2::new(CancelBuilder::fd(Fd(fd)).all()).build();
    let op = R::submit((), sqe);
    async move {
        let _ = op.await; // ENOENT: nothing was in flight
    }
}

/// Awaits `op`; at the deadline cancels it and awaits it again, so its buffers come back and a
/// completion that raced the cancel is kept (a read that got data returns that data).
async fn until<R: Driver, D: Unpin + 'static>(
    fd: RawFd,
    op: R::Op<D>,
    deadline: Instant,
) -> (io::Result<u32>, D) {
    if let Some(armed) = watch::arm::<R>(fd, deadline) {
        let (r, d) = op.await;
        return (timeout_if_cancelled(r, armed.finish()), d);
    }
    // A near deadline (ringload's next scheduled send) gets a kernel timeout: microseconds,
    // where tokio's wheel has milliseconds. If the operation wins, the timeout is left to
    // expire on its own, at most 100 ms later (`watch::COARSE_FROM`); the driver keeps its
    // timespec alive until then.
    let mut op = std::pin::pin!(op);
    tokio::select! {
        biased;
        out = &mut op => return out,
        _ = UringOn::<R>::sleep_until(deadline) => {}
    }
    cancel_fd::<R>(fd).await;
    let (r, d) = op.await;
    (timeout_if_cancelled(r, true), d)
}

/// An operation cancelled because its deadline passed reports TimedOut.
fn timeout_if_cancelled(r: io::Result<u32>, expired: bool) -> io::Result<u32> {
    match r {
        Err(e)
            if expired
                && (e.raw_os_error() == Some(libc::ECANCELED)
                    || e.raw_os_error() == Some(libc::EINTR)) =>
        {
            Err(timed_out())
        }
        other => other,
    }
}

/// The io_uring backend on driver `R`.
pub struct UringOn<R>(PhantomData<fn() -> R>);

impl<R: Driver> Backend for UringOn<R> {
    type Conn = UringConn<R>;
    type Listener = UringListener<R>;
    const NAME: &'static str = R::NAME;

    fn block_on<F: Future>(fut: F) -> F::Output {
        R::block_on(fut)
    }

    fn spawn<F: Future<Output = ()> + 'static>(fut: F) {
        R::spawn(fut);
    }

    fn listener(l: std::net::TcpListener) -> io::Result<UringListener<R>> {
        l.set_nonblocking(false)?;
        Ok(UringListener {
            fd: OwnedFd::from(l),
            closed: std::cell::Cell::new(false),
            driver: PhantomData,
        })
    }

    async fn connect(addr: SocketAddr, deadline: Instant) -> io::Result<UringConn<R>> {
        let domain = if addr.is_ipv4() {
            libc::AF_INET
        } else {
            libc::AF_INET6
        };
        // SAFETY: plain socket(2); the result is checked before use.
        let raw = unsafe { libc::socket(domain, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a fresh fd we own.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // Boxed so the kernel's pointer stays valid while the op future moves.
        let sa = Box::new(socket2::SockAddr::from(addr));
        let sqe = opcode::Connect::new(Fd(raw), sa.as_ptr(), sa.len()).build();
        let (r, _sa) = until::<R, _>(raw, R::submit(sa, sqe), deadline).await;
        r?;
        socket2::SockRef::from(&fd).set_nodelay(true)?;
        Ok(UringConn::new(fd))
    }

    async fn append(file: Rc<File>, buf: Vec<u8>) -> (io::Result<()>, Vec<u8>) {
        let fd = file.as_raw_fd();
        let mut data = (file, buf, 0usize);
        while data.2 < data.1.len() {
            let rest = &data.1[data.2..];
            // Offset 0 with O_APPEND appends, as pwrite(2) does on Linux.
            let sqe =
                opcode::Write::new(Fd(fd), rest.as_ptr(), rest.len().min(1 << 30) as u32).build();
            let (r, back) = R::submit(data, sqe).await;
            data = back;
            match r {
                Ok(0) => return (Err(io::ErrorKind::WriteZero.into()), data.1),
                Ok(n) => data.2 += n as usize,
                Err(e) => return (Err(e), data.1),
            }
        }
        (Ok(()), data.1)
    }

    async fn sleep_until(deadline: Instant) {
        R::sleep_until(deadline).await;
    }

    async fn pause_until(deadline: Instant) {
        R::pause_until(deadline).await;
    }

    fn now() -> Instant {
        R::now()
    }
}

pub struct UringListener<R> {
    fd: OwnedFd,
    closed: std::cell::Cell<bool>,
    driver: PhantomData<fn() -> R>,
}

impl<R: Driver> Listener for UringListener<R> {
    type Conn = UringConn<R>;

    async fn accept(&self) -> io::Result<(UringConn<R>, SocketAddr)> {
        if self.closed.get() {
            return Err(io::Error::new(
                io::ErrorKind::NotConnected,
                "listener closed",
            ));
        }
        let sqe = opcode::Accept::new(
            Fd(self.fd.as_raw_fd()),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
        )
        .flags(libc::SOCK_CLOEXEC)
        .build();
        let (r, ()) = R::submit((), sqe).await;
        // SAFETY: a successful accept returns a new fd that we now own.
        let fd = unsafe { OwnedFd::from_raw_fd(r? as RawFd) };
        let sock = socket2::SockRef::from(&fd);
        sock.set_nodelay(true)?;
        let peer = sock
            .peer_addr()?
            .as_socket()
            .ok_or_else(|| io::Error::other("non-IP peer"))?;
        Ok((UringConn::new(fd), peer))
    }

    fn close(&self) {
        self.closed.set(true);
        // shutdown(2) on a listening socket makes pending accepts complete with an error.
        // SAFETY: plain syscall on an fd we own.
        unsafe { libc::shutdown(self.fd.as_raw_fd(), libc::SHUT_RDWR) };
    }
}

pub struct UringConn<R> {
    fd: OwnedFd,
    driver: PhantomData<fn() -> R>,
}

impl<R: Driver> UringConn<R> {
    fn new(fd: OwnedFd) -> Self {
        UringConn {
            fd,
            driver: PhantomData,
        }
    }

    fn raw(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// A receive into `buf[len..capacity]` (grown first if full).
    fn recv_sqe(&self, buf: &mut Vec<u8>) -> squeue::Entry {
        let len = buf.len();
        if buf.capacity() == len {
            buf.reserve(4096);
        }
        let room = (buf.capacity() - len).min(u32::MAX as usize) as u32;
        // SAFETY: the pointer is into the Vec's heap block, which the op owns until completion.
        let ptr = unsafe { buf.as_mut_ptr().add(len) };
        opcode::Recv::new(Fd(self.raw()), ptr, room).build()
    }

    /// A send of `g`'s segments (at most IOV_MAX of them): one buffer goes as a plain send,
    /// which spares the kernel the copy of a message header and an iovec array that a sendmsg
    /// or writev makes (a relayed head and a small body from one read are one segment, and a
    /// small gather of several is copied into one first). The pointers are into the heap
    /// blocks of `g.input`, `g.scratch`, `g.iov` and `g.msg`, which travel with the operation.
    fn send_sqe(&self, g: &mut Gather, flags: i32) -> squeue::Entry {
        let flags = flags | libc::MSG_NOSIGNAL;
        g.flatten_small();
        match g.single() {
            Some(bytes) => opcode::Send::new(Fd(self.raw()), bytes.as_ptr(), bytes.len() as u32)
                .flags(flags)
                .build(),
            None => opcode::SendMsg::new(Fd(self.raw()), g.fill_msghdr())
                .flags(flags as u32)
                .build(),
        }
    }
}

/// Extends `buf` by the `n` bytes a receive wrote after its old length.
fn received(r: io::Result<u32>, buf: &mut Vec<u8>) -> io::Result<usize> {
    let n = r? as usize;
    // SAFETY: the kernel initialised n bytes after len, within the capacity it was given.
    unsafe { buf.set_len(buf.len() + n) };
    Ok(n)
}

impl<R: Driver> Conn for UringConn<R> {
    async fn read(&self, mut buf: Vec<u8>, deadline: Instant) -> (io::Result<usize>, Vec<u8>) {
        let sqe = self.recv_sqe(&mut buf);
        let (r, mut buf) = until::<R, _>(self.raw(), R::submit(buf, sqe), deadline).await;
        (received(r, &mut buf), buf)
    }

    async fn write_all(&self, g: &mut Gather, deadline: Instant) -> io::Result<()> {
        while !g.is_empty() {
            let sqe = self.send_sqe(g, 0);
            let (r, back) =
                until::<R, _>(self.raw(), R::submit(std::mem::take(g), sqe), deadline).await;
            *g = back;
            match r {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => g.advance(n as usize),
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// A small request goes out as one send (MSG_WAITALL: all or an error; a sendmsg when it
    /// has several segments) linked with the read, so both take one submission and only the
    /// read completes; on a driver that cannot link, or for a larger request, one after the
    /// other.
    async fn write_then_read(
        &self,
        g: &mut Gather,
        buf: &mut Vec<u8>,
        by: Deadlines,
    ) -> Result<usize, ExchangeError> {
        let far = by.read >= R::now() + LINK_MIN_WAIT;
        if !far || g.total_len() > LINK_MAX || g.segs.len() > super::IOV_MAX {
            return super::one_then_other(self, g, buf, by).await;
        }
        let send = self.send_sqe(g, libc::MSG_WAITALL);
        let recv = self.recv_sqe(buf);
        // The pointers are into the heap blocks of g.input / g.scratch / g.iov / g.msg and
        // buf, which travel with the operation.
        let op = match R::submit_linked((std::mem::take(g), std::mem::take(buf)), send, recv) {
            Ok(op) => op,
            Err((gb, bb)) => {
                (*g, *buf) = (gb, bb);
                return super::one_then_other(self, g, buf, by).await;
            }
        };
        let (r, (gb, bb)) = until::<R, _>(self.raw(), op, by.read).await;
        (*g, *buf) = (gb, bb);
        match r {
            Err(e) if e.get_ref().is_some_and(|i| i.is::<FirstFailed>()) => {
                let first = e
                    .into_inner()
                    .and_then(|i| i.downcast::<FirstFailed>().ok());
                let e = first.map_or_else(|| io::ErrorKind::Other.into(), |f| f.into_io());
                Err(ExchangeError::Write(e))
            }
            r => received(r, buf).map_err(ExchangeError::Read),
        }
    }

    /// A one-shot poll on the socket, cancelled at the deadline like any other operation.
    async fn ready(&self, dir: Ready, deadline: Instant) -> io::Result<()> {
        let mask = match dir {
            Ready::Read => libc::POLLIN | libc::POLLRDHUP,
            Ready::Write => libc::POLLOUT,
        };
        let sqe = opcode::PollAdd::new(Fd(self.raw()), mask as u32).build();
        let (r, ()) = until::<R, _>(self.raw(), R::submit((), sqe), deadline).await;
        r.map(drop)
    }

    fn is_idle_alive(&self) -> bool {
        super::peek_idle(self.raw())
    }

    fn shutdown(&self, how: Shutdown) {
        let _ = socket2::SockRef::from(&self.fd).shutdown(how);
    }

    fn raw_fd(&self) -> RawFd {
        self.raw()
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        socket2::SockRef::from(&self.fd)
            .local_addr()?
            .as_socket()
            .ok_or_else(|| io::Error::other("non-IP"))
    }
}

/// Ring creation plus the kernel version that cancel-by-fd needs (5.19).
pub fn probe() -> Result<(), String> {
    if let Err(e) = io_uring::IoUring::new(8) {
        return Err(format!("io_uring_setup failed: {e}"));
    }
    // SAFETY: uname fills the struct.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    if unsafe { libc::uname(&mut u) } != 0 {
        return Ok(());
    }
    let rel: Vec<u8> = u
        .release
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect();
    let rel = String::from_utf8_lossy(&rel);
    let mut it = rel.split(['.', '-']).map(|p| p.parse::<u32>().unwrap_or(0));
    let (major, minor) = (it.next().unwrap_or(0), it.next().unwrap_or(0));
    if (major, minor) < (5, 19) {
        return Err(format!(
            "kernel {rel} lacks io_uring cancel-by-fd (needs 5.19)"
        ));
    }
    Ok(())
}
