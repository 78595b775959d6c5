//! Moving a body from one socket to another through a pipe (splice(2)), so its bytes are never
//! copied into the proxy and out again. With a 256 KiB pipe the relaying thread spends about
//! half the CPU per MiB that a read and a write through a 256 KiB buffer cost; with the default
//! 64 KiB pipe it saves nothing (benches/splice_relay.rs), so a pipe the kernel will not make
//! that large is not used.

use std::cell::{Cell, RefCell};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

/// The pipe size splicing needs to pay off.
const PIPE_SIZE: usize = 256 * 1024;
/// Empty pipes a thread keeps for the next body. Each counts 64 pages against an unprivileged
/// user's fs.pipe-user-pages-soft (16384 by default) for as long as it is kept.
const KEPT: usize = 8;
/// After the kernel refused a pipe this large, bodies take the buffers for this long before
/// the next try (instead of a pipe made and closed per body).
const RETRY: Duration = Duration::from_secs(1);

thread_local! {
    static IDLE: RefCell<Vec<Pipe>> = const { RefCell::new(Vec::new()) };
    static REFUSED_AT: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// Which way a socket must become ready (`Conn::ready`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ready {
    Read,
    Write,
}

/// A non-blocking pipe of `PIPE_SIZE` bytes and what it holds.
pub struct Pipe {
    r: OwnedFd,
    w: OwnedFd,
    /// Bytes spliced in and not yet out.
    held: usize,
}

impl Pipe {
    /// An empty pipe from this thread's spares, or a new one; None when the kernel will not
    /// make one of `PIPE_SIZE` (fs.pipe-user-pages-soft is spent, or no fds are left): the
    /// body is then copied through a buffer.
    pub fn take() -> Option<Pipe> {
        if let Some(p) = IDLE.with(|i| i.borrow_mut().pop()) {
            return Some(p);
        }
        if REFUSED_AT.get().is_some_and(|t| t.elapsed() < RETRY) {
            return None;
        }
        let pipe = Pipe::new();
        REFUSED_AT.set(pipe.is_none().then(Instant::now));
        pipe
    }

    fn new() -> Option<Pipe> {
        let mut fds = [0; 2];
        // SAFETY: pipe2 fills the two fds it is given.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) } < 0 {
            return None;
        }
        // SAFETY: both fds are new and ours alone.
        let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        // SAFETY: fcntl on our own pipe.
        let size = unsafe { libc::fcntl(w.as_raw_fd(), libc::F_SETPIPE_SZ, PIPE_SIZE as i32) };
        (size >= PIPE_SIZE as i32).then_some(Pipe { r, w, held: 0 })
    }

    /// Returns an emptied pipe for the next body; one that still holds bytes is closed.
    pub fn give_back(self) {
        if self.held == 0 {
            IDLE.with(|i| {
                let mut i = i.borrow_mut();
                if i.len() < KEPT {
                    i.push(self);
                }
            });
        }
    }

    /// Bytes spliced in and not yet out.
    pub fn held(&self) -> usize {
        self.held
    }

    /// Room for more.
    fn room(&self) -> usize {
        PIPE_SIZE - self.held
    }

    /// splice(2) from the socket `fd` into the pipe, at most `max` bytes, without waiting:
    /// Ok(0) at end of stream, Err(WouldBlock) when nothing is there yet.
    pub fn fill_from(&mut self, fd: RawFd, max: usize) -> io::Result<usize> {
        let n = splice(fd, self.w.as_raw_fd(), max.min(self.room()))?;
        self.held += n;
        Ok(n)
    }

    /// splice(2) of what the pipe holds to the socket `fd`, as much as it takes now.
    pub fn drain_to(&mut self, fd: RawFd) -> io::Result<usize> {
        let n = splice(self.r.as_raw_fd(), fd, self.held)?;
        self.held -= n;
        Ok(n)
    }
}

fn splice(from: RawFd, to: RawFd, len: usize) -> io::Result<usize> {
    let null = std::ptr::null_mut();
    let flags = libc::SPLICE_F_MOVE | libc::SPLICE_F_NONBLOCK;
    // SAFETY: splice between two fds we own, no offsets (sockets and pipes have none).
    let n = unsafe { libc::splice(from, null, to, null, len, flags) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(n as usize)
}

/// O_NONBLOCK on a socket while a body is spliced through it: splice(2) honours only the
/// socket's own flag, and a blocking socket would stall the whole shard. The io_uring backend's
/// sockets are blocking (io_uring never blocks on them); they get their flags back on drop.
pub struct NonBlocking {
    fd: RawFd,
    restore: Option<i32>,
}

impl NonBlocking {
    pub fn set(fd: RawFd) -> io::Result<NonBlocking> {
        // SAFETY: fcntl on a socket the caller keeps open for the guard's life.
        let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
        if flags < 0 {
            return Err(io::Error::last_os_error());
        }
        if flags & libc::O_NONBLOCK != 0 {
            return Ok(NonBlocking { fd, restore: None });
        }
        // SAFETY: as above.
        if unsafe { libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) } < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(NonBlocking {
            fd,
            restore: Some(flags),
        })
    }
}

impl Drop for NonBlocking {
    fn drop(&mut self) {
        if let Some(flags) = self.restore {
            // SAFETY: as in `set`.
            unsafe { libc::fcntl(self.fd, libc::F_SETFL, flags) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};

    fn pair() -> (TcpStream, TcpStream) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let a = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        (a, l.accept().unwrap().0)
    }

    #[test]
    fn a_pipe_moves_bytes_between_sockets_without_waiting() {
        let (mut src, from) = pair();
        let (to, mut sink) = pair();
        let _a = NonBlocking::set(from.as_raw_fd()).unwrap();
        let _b = NonBlocking::set(to.as_raw_fd()).unwrap();
        let mut p = Pipe::take().expect("a 256 KiB pipe");
        let e = p.fill_from(from.as_raw_fd(), 100).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock, "nothing sent yet");
        src.write_all(b"hello, pipe").unwrap();
        let mut got = 0;
        for _ in 0..1000 {
            match p.fill_from(from.as_raw_fd(), 5) {
                Ok(n) => {
                    got = n;
                    break;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    std::thread::sleep(std::time::Duration::from_millis(1))
                }
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!((got, p.held()), (5, 5), "at most what was asked");
        assert_eq!(p.drain_to(to.as_raw_fd()).unwrap(), 5);
        assert_eq!(p.held(), 0);
        let mut buf = [0u8; 5];
        sink.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"hello");
        drop(src);
        let rest = p.fill_from(from.as_raw_fd(), 100).unwrap();
        assert_eq!(rest, 6, "the rest, then end of stream");
        assert_eq!(p.fill_from(from.as_raw_fd(), 100).unwrap(), 0);
    }

    #[test]
    fn the_flags_come_back_after_splicing() {
        let (a, _b) = pair();
        let flags = || unsafe { libc::fcntl(a.as_raw_fd(), libc::F_GETFL) };
        assert_eq!(flags() & libc::O_NONBLOCK, 0);
        let g = NonBlocking::set(a.as_raw_fd()).unwrap();
        assert_ne!(flags() & libc::O_NONBLOCK, 0);
        drop(g);
        assert_eq!(flags() & libc::O_NONBLOCK, 0);
    }
}
