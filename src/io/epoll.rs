//! The epoll fallback on tokio's current-thread runtime, for hosts where io_uring is disabled
//! (a seccomp profile, `kernel.io_uring_disabled`, an old kernel). Readiness-based I/O is
//! cancel-safe, so deadlines are plain tokio timeouts here.

use std::cell::Cell;
use std::fs::File;
use std::future::Future;
use std::io::Write;
use std::io::{self, IoSlice};
use std::net::{Shutdown, SocketAddr};
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::time::Instant;

use tokio::io::Interest;
use tokio::net::{TcpListener, TcpStream};

use super::{Backend, Conn, Gather, Listener, Pipe, Ready, timed_out};

pub struct Epoll;

/// `fut`, or Err(TimedOut) at the deadline: readiness-based I/O is cancel-safe, so dropping it
/// there loses nothing.
async fn by<T>(deadline: Instant, fut: impl Future<Output = io::Result<T>>) -> io::Result<T> {
    tokio::time::timeout_at(deadline.into(), fut)
        .await
        .unwrap_or_else(|_| Err(timed_out()))
}

impl Backend for Epoll {
    type Conn = EpollConn;
    type Listener = EpollListener;
    const NAME: &'static str = "epoll";

    fn block_on<F: Future>(fut: F) -> F::Output {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime");
        tokio::task::LocalSet::new().block_on(&rt, fut)
    }

    fn spawn<F: Future<Output = ()> + 'static>(fut: F) {
        drop(tokio::task::spawn_local(fut));
    }

    fn listener(l: std::net::TcpListener) -> io::Result<EpollListener> {
        l.set_nonblocking(true)?;
        Ok(EpollListener {
            inner: TcpListener::from_std(l)?,
            closed: Cell::new(false),
            wake: tokio::sync::Notify::new(),
        })
    }

    async fn connect(addr: SocketAddr, deadline: Instant) -> io::Result<EpollConn> {
        let s = by(deadline, TcpStream::connect(addr)).await?;
        s.set_nodelay(true)?;
        Ok(EpollConn { s })
    }

    async fn append(file: Rc<File>, buf: Vec<u8>) -> (io::Result<()>, Vec<u8>) {
        // The fallback writes synchronously: appends to a local log file do not wait on a peer.
        let r = (&*file).write_all(&buf);
        (r, buf)
    }

    async fn sleep_until(deadline: Instant) {
        tokio::time::sleep_until(deadline.into()).await;
    }

    async fn pause_until(deadline: Instant) {
        Self::sleep_until(deadline).await;
    }
}

pub struct EpollListener {
    inner: TcpListener,
    closed: Cell<bool>,
    wake: tokio::sync::Notify,
}

impl Listener for EpollListener {
    type Conn = EpollConn;

    async fn accept(&self) -> io::Result<(EpollConn, SocketAddr)> {
        let closed = || io::Error::new(io::ErrorKind::NotConnected, "listener closed");
        if self.closed.get() {
            return Err(closed());
        }
        tokio::select! {
            r = self.inner.accept() => {
                let (s, peer) = r?;
                s.set_nodelay(true)?;
                Ok((EpollConn { s }, peer))
            }
            _ = self.wake.notified() => Err(closed()),
        }
    }

    fn close(&self) {
        self.closed.set(true);
        self.wake.notify_waiters();
        // SAFETY: plain syscall on the listener's fd; the kernel stops queueing connections.
        unsafe { libc::shutdown(self.inner.as_raw_fd(), libc::SHUT_RDWR) };
    }
}

pub struct EpollConn {
    s: TcpStream,
}

impl Conn for EpollConn {
    async fn read(&self, mut buf: Vec<u8>, deadline: Instant) -> (io::Result<usize>, Vec<u8>) {
        if buf.capacity() == buf.len() {
            buf.reserve(4096);
        }
        let r = by(deadline, async {
            loop {
                self.s.readable().await?;
                let len = buf.len();
                let spare = buf.spare_capacity_mut();
                // SAFETY: recv writes at most spare.len() bytes into the spare capacity.
                let n = unsafe {
                    libc::recv(
                        self.s.as_raw_fd(),
                        spare.as_mut_ptr().cast(),
                        spare.len(),
                        libc::MSG_DONTWAIT,
                    )
                };
                if n >= 0 {
                    // SAFETY: n bytes were initialised by the kernel.
                    unsafe { buf.set_len(len + n as usize) };
                    return Ok(n as usize);
                }
                let e = io::Error::last_os_error();
                if e.kind() != io::ErrorKind::WouldBlock {
                    return Err(e);
                }
                // Spurious readiness: clear it and wait again.
                let _ = self.s.try_read(&mut []);
            }
        })
        .await;
        (r, buf)
    }

    async fn write_all(&self, g: &mut Gather, deadline: Instant) -> io::Result<()> {
        by(deadline, async {
            while !g.is_empty() {
                self.s.writable().await?;
                let n = {
                    let mut slices = [IoSlice::new(&[]); 64];
                    let mut k = 0;
                    for &seg in g.segs.iter().take(64) {
                        slices[k] = IoSlice::new(g.slice(seg));
                        k += 1;
                    }
                    match self.s.try_write_vectored(&slices[..k]) {
                        Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                        Ok(n) => n,
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                        Err(e) => return Err(e),
                    }
                };
                g.advance(n);
            }
            Ok(())
        })
        .await
    }

    // Through tokio's try_io, so that a splice finding nothing clears the readiness tokio
    // keeps, and `ready` then waits for the next event.
    fn splice_in(&self, pipe: &mut Pipe, max: usize) -> io::Result<usize> {
        // An empty pipe: WouldBlock can then only be the socket's, whose readiness it clears.
        debug_assert_eq!(pipe.held(), 0);
        let fd = self.s.as_raw_fd();
        self.s
            .try_io(Interest::READABLE, || pipe.fill_from(fd, max))
    }

    fn splice_out(&self, pipe: &mut Pipe) -> io::Result<usize> {
        let fd = self.s.as_raw_fd();
        self.s.try_io(Interest::WRITABLE, || pipe.drain_to(fd))
    }

    async fn ready(&self, dir: Ready, deadline: Instant) -> io::Result<()> {
        let wait = async {
            match dir {
                Ready::Read => self.s.readable().await,
                Ready::Write => self.s.writable().await,
            }
        };
        by(deadline, wait).await
    }

    fn is_idle_alive(&self) -> bool {
        super::peek_idle(self.s.as_raw_fd())
    }

    fn shutdown(&self, how: Shutdown) {
        let _ = socket2::SockRef::from(&self.s).shutdown(how);
    }

    fn raw_fd(&self) -> std::os::fd::RawFd {
        self.s.as_raw_fd()
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.s.local_addr()
    }
}
