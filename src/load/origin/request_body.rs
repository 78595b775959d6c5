//! Request bodies, streamed through the read buffer: discarded, or echoed back (`?echo=1`).

use std::net::Shutdown;
use std::sync::atomic::Ordering::Relaxed;

use crate::http::BodyFraming;
use crate::io::{Backend, Conn, Src};

use super::respond::Framing;
use super::session::{IoResult, Next, Req, Session};

impl<B: Backend> Session<B> {
    /// Reads and drops a request body per its framing. Ok(false): bad chunked framing.
    pub(super) async fn discard_body(&mut self, framing: BodyFraming) -> IoResult<bool> {
        match framing {
            BodyFraming::None | BodyFraming::Length(0) => Ok(true),
            BodyFraming::Length(n) => {
                self.pass_length_body(n, false).await?;
                Ok(true)
            }
            BodyFraming::Chunked | BodyFraming::UntilClose => {
                self.scanner.reset();
                loop {
                    let mut got = 0u64;
                    let r = self
                        .scanner
                        .scan(&self.buf[self.pos..], |d| got += d.len() as u64);
                    self.counters().bytes_in.fetch_add(got, Relaxed);
                    let Ok((consumed, done)) = r else {
                        return Ok(false);
                    };
                    self.pos += consumed;
                    if done {
                        return Ok(true);
                    }
                    self.fill_body().await?;
                }
            }
        }
    }

    /// Consumes a body of `n` bytes as it arrives; with `echo`, each piece read is also written
    /// back (before the next read).
    async fn pass_length_body(&mut self, n: u64, echo: bool) -> IoResult<()> {
        let mut rem = n;
        loop {
            let take = (self.buf.len() - self.pos).min(usize::try_from(rem).unwrap_or(usize::MAX));
            if take > 0 {
                if echo {
                    self.g.push(Src::Input, self.pos, self.pos + take);
                }
                self.pos += take;
                rem -= take as u64;
                self.counters().bytes_in.fetch_add(take as u64, Relaxed);
                if echo {
                    self.flush_with_buf().await?;
                }
            }
            if rem == 0 {
                return Ok(());
            }
            self.fill_body().await?;
        }
    }

    /// Streams the request body back: Content-Length when the request had one, else chunked.
    pub(super) async fn echo(&mut self, req: Req, close: bool) -> IoResult<Next> {
        let status = req.params.status;
        match req.framing {
            BodyFraming::None | BodyFraming::Length(_) => {
                let n = match req.framing {
                    BodyFraming::Length(n) => n,
                    _ => 0,
                };
                self.queue_head(status, Framing::Length(n), close, req.http10);
                self.pass_length_body(n, true).await?;
            }
            BodyFraming::Chunked | BodyFraming::UntilClose => {
                self.queue_head(status, Framing::Chunked, close, req.http10);
                self.scanner.reset();
                loop {
                    self.pieces.clear();
                    let base = self.buf.as_ptr() as usize;
                    let pieces = &mut self.pieces;
                    let r = self.scanner.scan(&self.buf[self.pos..], |d| {
                        let start = d.as_ptr() as usize - base;
                        pieces.push((start, start + d.len()));
                    });
                    let Ok((consumed, done)) = r else {
                        // The response is under way: all that is left is to cut it.
                        let _ = self.flush().await;
                        self.conn.shutdown(Shutdown::Both);
                        return Ok(Next::Abort);
                    };
                    let total: usize = self.pieces.iter().map(|p| p.1 - p.0).sum();
                    self.counters().bytes_in.fetch_add(total as u64, Relaxed);
                    if total > 0 {
                        self.push_chunk_size(total);
                        for i in 0..self.pieces.len() {
                            let (s, e) = self.pieces[i];
                            self.g.push(Src::Input, s, e);
                        }
                        self.g.push_scratch(b"\r\n");
                    }
                    self.pos += consumed;
                    if done {
                        self.g.push_scratch(b"0\r\n\r\n");
                    }
                    self.flush_with_buf().await?;
                    if done {
                        break;
                    }
                    self.fill_body().await?;
                }
            }
        }
        Ok(if close { Next::Close } else { Next::KeepAlive })
    }
}
