//! One client connection: its reusable buffers and the request loop (parse a head, answer it,
//! keep the connection alive or close it).

use std::rc::Rc;
use std::sync::atomic::Ordering::Relaxed;

use crate::http::parse_request;
use crate::http::{BodyFraming, ChunkedScanner, Method, Parsed, RequestHead, Version};
use crate::io::{Backend, Gather};

use super::params::{Params, parse_params};
use super::respond::Framing;
use super::stats::PortCounters;
use super::worker::Shard;

/// Initial read buffer per connection; grows to `STREAM_BUF` when a large body streams through.
const READ_BUF: usize = 16 * 1024;

/// What a parsed request needs once its head's buffer may be overwritten.
#[derive(Debug, Clone, Copy)]
pub(super) struct Req {
    pub(super) head_only: bool,
    pub(super) http10: bool,
    pub(super) framing: BodyFraming,
    pub(super) expect: bool,
    pub(super) keep_alive: bool,
    pub(super) params: Params,
}

/// What happens after a request.
pub(super) enum Next {
    KeepAlive,
    /// Flush, then a graceful close.
    Close,
    /// Drop the connection now (already shut down).
    Abort,
}

pub(super) type IoResult<T> = std::io::Result<T>;

/// One client connection and its reusable buffers.
pub(super) struct Session<B: Backend> {
    pub(super) conn: B::Conn,
    pub(super) shard: Rc<Shard>,
    pub(super) idx: usize,
    pub(super) port: u16,
    /// Read buffer; `buf[pos..]` is not consumed yet.
    pub(super) buf: Vec<u8>,
    pub(super) pos: usize,
    /// Pending output: response heads and small bodies in `g.scratch`. `g.input` is empty
    /// except during a write, when it holds the read buffer (echo) or the pattern block.
    pub(super) g: Gather,
    pub(super) head: RequestHead,
    pub(super) scanner: ChunkedScanner,
    /// Decoded chunk payload ranges in `buf` (echo of a chunked body).
    pub(super) pieces: Vec<(usize, usize)>,
    /// This connection's copy of the pattern block, made on first use.
    pub(super) pattern: Vec<u8>,
}

impl<B: Backend> Session<B> {
    pub(super) fn new(conn: B::Conn, shard: Rc<Shard>, idx: usize) -> Session<B> {
        let port = shard.settings.ports[idx];
        Session {
            conn,
            shard,
            idx,
            port,
            buf: Vec::with_capacity(READ_BUF),
            pos: 0,
            g: Gather::new(),
            head: RequestHead::new(),
            scanner: ChunkedScanner::new(),
            pieces: Vec::new(),
            pattern: Vec::new(),
        }
    }

    pub(super) fn counters(&self) -> &PortCounters {
        &self.shard.counters.ports[self.idx]
    }

    pub(super) async fn serve(mut self) {
        loop {
            let parsed = parse_request(&self.buf[self.pos..], &self.shard.limits, &mut self.head);
            match parsed {
                Ok(Parsed::Complete) => {}
                Ok(Parsed::Partial) => match self.fill().await {
                    Ok(n) if n > 0 => continue,
                    _ => return,
                },
                Err(e) => {
                    self.counters().requests.fetch_add(1, Relaxed);
                    let body = format!("{}\n", e.reason);
                    self.queue_head(e.status, Framing::Length(body.len() as u64), true, false);
                    self.g.push_scratch(body.as_bytes());
                    self.close_gracefully().await;
                    return;
                }
            }
            self.counters().requests.fetch_add(1, Relaxed);
            let base = &self.buf[self.pos..];
            let h = &self.head;
            let params = parse_params(h.query.map(|q| q.get(base)));
            let req_base = Req {
                head_only: h.method == Method::Head,
                http10: h.version == Version::Http10,
                framing: h.body,
                expect: h.expect_continue,
                keep_alive: !h.conn_close,
                params: match params {
                    Ok(p) => p,
                    Err(_) => parse_params(None).expect("defaults"),
                },
            };
            self.pos += self.head.head_len;
            let next = match params {
                Ok(_) => self.handle(req_base).await,
                Err(why) => {
                    // The body's framing is known but not worth reading: answer and close.
                    self.queue_head(
                        400,
                        Framing::Length(why.len() as u64 + 1),
                        true,
                        req_base.http10,
                    );
                    self.g.push_scratch(why.as_bytes());
                    self.g.push_scratch(b"\n");
                    Ok(Next::Close)
                }
            };
            match next {
                Ok(Next::KeepAlive) => {}
                Ok(Next::Close) => {
                    self.close_gracefully().await;
                    return;
                }
                Ok(Next::Abort) | Err(_) => return,
            }
        }
    }
}
