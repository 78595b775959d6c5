//! Per-request behaviour: the query-parameter controls applied to one request, response heads,
//! and response bodies (the default body, or the pattern, queued or streamed).

use std::io::Write as _;
use std::net::Shutdown;
use std::sync::atomic::Ordering::Relaxed;

use crate::http::{BodyFraming, status_reason};
use crate::io::{Backend, Conn, Src};

use super::params::Fail;
use super::pattern::{BLOCK, PATTERN};
use super::session::{IoResult, Next, Req, Session};
use super::stats::MAX_STATUS;

/// Bodies up to this size are copied into the scratch buffer; larger ones are sent as segments
/// of the connection's copy of the pattern block.
const SMALL_BODY: u64 = 16 * 1024;
/// Pattern blocks per write when streaming a large body.
const BLOCKS_PER_WRITE: usize = 64;

/// How a response body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Framing {
    /// 204, 304: no body and no framing header.
    NoBody,
    Length(u64),
    Chunked,
    /// HTTP/1.0 client and `--chunked`: no length, the close ends the body.
    Close,
}

impl<B: Backend> Session<B> {
    /// Answers one request per its query parameters and the settings.
    pub(super) async fn handle(&mut self, req: Req) -> IoResult<Next> {
        let p = req.params;
        match p.fail {
            Fail::Reset => {
                self.flush().await?;
                self.conn.shutdown(Shutdown::Both);
                return Ok(Next::Abort);
            }
            Fail::Garbage => {
                self.g.push_scratch(b"HTTP/1.1 2OO OK\r\n\r\n");
                return Ok(Next::Close);
            }
            Fail::None => {}
        }
        let has_body = match req.framing {
            BodyFraming::Length(n) => n > 0,
            BodyFraming::Chunked | BodyFraming::UntilClose => true,
            BodyFraming::None => false,
        };
        if req.expect && has_body {
            self.g.push_scratch(b"HTTP/1.1 100 Continue\r\n\r\n");
        }
        let close = p.close || !req.keep_alive;
        let no_body_status = matches!(p.status, 204 | 304);
        let delay = p.delay_ms.unwrap_or(self.shard.settings.delay_ms);
        if p.echo && !req.head_only && !no_body_status {
            if delay > 0 {
                self.sleep(delay).await?;
            }
            return self.echo(req, close).await;
        }
        if !self.discard_body(req.framing).await? {
            self.queue_head(400, Framing::Length(17), true, req.http10);
            self.g.push_scratch(b"bad chunked body\n");
            return Ok(Next::Close);
        }
        if delay > 0 {
            self.sleep(delay).await?;
        }
        let body_len = p
            .size
            .or(self.shard.settings.body_size)
            .unwrap_or(self.shard.default_body[self.idx].len() as u64);
        let mut close = close;
        let framing = if no_body_status {
            Framing::NoBody
        } else if self.shard.settings.chunked {
            if req.http10 {
                close = true;
                Framing::Close
            } else {
                Framing::Chunked
            }
        } else {
            Framing::Length(body_len)
        };
        self.queue_head(p.status, framing, close, req.http10);
        if !req.head_only && framing != Framing::NoBody {
            let chunked = framing == Framing::Chunked;
            if p.size.is_none() && self.shard.settings.body_size.is_none() {
                let shard = self.shard.clone();
                self.queue_body(&shard.default_body[self.idx], chunked);
            } else {
                self.send_pattern(body_len, chunked).await?;
            }
        }
        Ok(if close { Next::Close } else { Next::KeepAlive })
    }

    /// Queues a whole (small) body into the scratch buffer, chunked or not.
    fn queue_body(&mut self, body: &[u8], chunked: bool) {
        if chunked && !body.is_empty() {
            self.push_chunk_size(body.len());
        }
        self.g.push_scratch(body);
        if chunked {
            self.g.push_scratch(if body.is_empty() {
                b"0\r\n\r\n"
            } else {
                b"\r\n0\r\n\r\n"
            });
        }
    }

    /// Queues (small) or writes (large) `len` bytes of the pattern, chunked or not.
    async fn send_pattern(&mut self, len: u64, chunked: bool) -> IoResult<()> {
        if len <= SMALL_BODY {
            self.queue_body(&PATTERN[..len as usize], chunked);
            return Ok(());
        }
        if self.pattern.is_empty() {
            self.pattern.extend_from_slice(&PATTERN);
        }
        let mut rem = len;
        while rem > 0 {
            for _ in 0..BLOCKS_PER_WRITE {
                if rem == 0 {
                    break;
                }
                let k = rem.min(BLOCK as u64) as usize;
                if chunked {
                    self.push_chunk_size(k);
                }
                self.g.push(Src::Input, 0, k);
                if chunked {
                    self.g.push_scratch(b"\r\n");
                }
                rem -= k as u64;
            }
            if rem == 0 && chunked {
                self.g.push_scratch(b"0\r\n\r\n");
            }
            std::mem::swap(&mut self.pattern, &mut self.g.input);
            let r = self.flush().await;
            std::mem::swap(&mut self.pattern, &mut self.g.input);
            r?;
        }
        Ok(())
    }

    /// Queues a chunk-size line, `{n:x}\r\n`.
    pub(super) fn push_chunk_size(&mut self, n: usize) {
        let start = self.g.scratch.len();
        let _ = write!(self.g.scratch, "{n:x}\r\n");
        self.g.push(Src::Scratch, start, self.g.scratch.len());
    }

    /// Formats a response head into the scratch buffer and counts its status.
    pub(super) fn queue_head(&mut self, status: u16, framing: Framing, close: bool, http10: bool) {
        if (status as usize) < MAX_STATUS {
            self.counters().status[status as usize].fetch_add(1, Relaxed);
        }
        let s = &mut self.g.scratch;
        let start = s.len();
        let _ = write!(
            s,
            "HTTP/1.1 {status} {}\r\nContent-Type: text/plain\r\n",
            status_reason(status)
        );
        match framing {
            Framing::Length(n) => {
                let _ = write!(s, "Content-Length: {n}\r\n");
            }
            Framing::Chunked => s.extend_from_slice(b"Transfer-Encoding: chunked\r\n"),
            Framing::NoBody | Framing::Close => {}
        }
        let _ = write!(s, "X-Origin-Port: {}\r\n", self.port);
        if close || framing == Framing::Close {
            s.extend_from_slice(b"Connection: close\r\n");
        } else if http10 {
            s.extend_from_slice(b"Connection: keep-alive\r\n");
        }
        s.extend_from_slice(b"\r\n");
        let end = s.len();
        self.g.push(Src::Scratch, start, end);
    }
}
