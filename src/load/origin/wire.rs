//! A session's reads and writes: flushing the queued output, refilling the read buffer, and
//! the graceful close.

use std::net::Shutdown;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use crate::io::{Backend, Conn};

use super::session::{IoResult, Session};

/// Read buffer size while a large body streams through.
const STREAM_BUF: usize = 64 * 1024;
/// How long one read or write may wait before the connection is dropped.
const IO_TIMEOUT: Duration = Duration::from_secs(300);
/// How long a graceful close keeps reading (and discarding) after the last response.
const LINGER: Duration = Duration::from_secs(2);

impl<B: Backend> Session<B> {
    /// Writes everything queued; the scratch buffer is then empty again.
    pub(super) async fn flush(&mut self) -> IoResult<()> {
        if self.g.is_empty() {
            self.g.clear();
            return Ok(());
        }
        let n = self.g.total_len() as u64;
        self.counters().bytes_out.fetch_add(n, Relaxed);
        let r = self
            .conn
            .write_all(&mut self.g, Instant::now() + IO_TIMEOUT)
            .await;
        self.g.clear();
        r
    }

    /// `flush` with the read buffer as the gather's input (for `Src::Input` segments into it).
    pub(super) async fn flush_with_buf(&mut self) -> IoResult<()> {
        std::mem::swap(&mut self.buf, &mut self.g.input);
        let r = self.flush().await;
        std::mem::swap(&mut self.buf, &mut self.g.input);
        r
    }

    /// Flushes pending output, makes room in the read buffer and reads. Ok(0): end of stream.
    pub(super) async fn fill(&mut self) -> IoResult<usize> {
        self.flush().await?;
        if self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        } else if self.pos > 0 {
            self.buf.copy_within(self.pos.., 0);
            self.buf.truncate(self.buf.len() - self.pos);
            self.pos = 0;
            self.head.reset();
        }
        if self.buf.len() == self.buf.capacity() {
            // A head larger than the buffer: grow (parse_request caps the head size).
            self.buf.reserve(self.buf.capacity());
        }
        let buf = std::mem::take(&mut self.buf);
        let (r, buf) = self.conn.read(buf, Instant::now() + IO_TIMEOUT).await;
        self.buf = buf;
        r
    }

    /// Makes room for a body streaming through and reads more of it: an end of stream here
    /// cuts the body short, so it is an error.
    pub(super) async fn fill_body(&mut self) -> IoResult<()> {
        self.grow_for_stream();
        if self.fill().await? == 0 {
            return Err(eof());
        }
        Ok(())
    }

    fn grow_for_stream(&mut self) {
        if self.buf.capacity() < STREAM_BUF {
            self.buf.reserve(STREAM_BUF - self.buf.len());
        }
    }

    pub(super) async fn sleep(&mut self, ms: u64) -> IoResult<()> {
        self.flush().await?;
        B::sleep_until(Instant::now() + Duration::from_millis(ms)).await;
        Ok(())
    }

    /// Flushes, half-closes, then reads and drops what the client still sends (for up to
    /// `LINGER`), so an unread request does not turn the close into a reset that could destroy
    /// the last response in flight.
    pub(super) async fn close_gracefully(&mut self) {
        if self.flush().await.is_err() {
            return;
        }
        self.conn.shutdown(Shutdown::Write);
        let deadline = Instant::now() + LINGER;
        for _ in 0..64 {
            self.buf.clear();
            let buf = std::mem::take(&mut self.buf);
            let (r, buf) = self.conn.read(buf, deadline).await;
            self.buf = buf;
            match r {
                Ok(n) if n > 0 => {}
                _ => return,
            }
        }
    }
}

fn eof() -> std::io::Error {
    std::io::ErrorKind::UnexpectedEof.into()
}
