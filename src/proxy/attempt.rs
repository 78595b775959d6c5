//! One forward-and-relay attempt on one member connection: the request head and body out, the
//! response head (after any 1xx) and body back, and the verdict on reusing the connection.

use std::io;
use std::time::{Duration, Instant};

use super::forward::{self, BodyError, BodyState};
use super::relay::{self, ClientFraming, RespBody};
use super::{
    BODY_BUF, Client, EXPECT_WAIT, Exchange, INITIAL_BUF, Outcome, SPLICE_MIN, member_timeout,
};
use crate::conf::model::MemberSpec;
use crate::http::{self, Method, Parsed};
use crate::io::{
    Backend, Conn, Deadlines, ExchangeError, Gather, NonBlocking, Pipe, Ready, Src, yield_now,
};
use crate::shard::{Epoch, Shard};

/// Sends `g`, with `src` (when given) as its input buffer; the buffer comes back afterwards and
/// the gather list is emptied for the next use. No closure around the send: each future layer
/// between the connection's task and the operation adds cold cache lines per request
/// (perf/README.md).
pub(super) async fn write_via<C: Conn>(
    conn: &C,
    g: &mut Gather,
    mut src: Option<&mut Vec<u8>>,
    deadline: Instant,
) -> io::Result<()> {
    if let Some(b) = src.as_deref_mut() {
        g.lend_input(b);
    }
    let r = conn.write_all(g, deadline).await;
    match src {
        Some(b) => g.return_input(b),
        None => g.clear(),
    }
    r
}

fn body_outcome(e: BodyError) -> Outcome {
    match e {
        BodyError::Malformed => Outcome::BadRequestBody,
        BodyError::TooLarge => Outcome::BodyTooLarge,
    }
}

impl<B: Backend> Client<B> {
    pub(super) async fn forward_and_relay(
        &mut self,
        epoch: &Epoch<B>,
        shard: &Shard<B>,
        spec: &MemberSpec,
        be: &B::Conn,
        x: &mut Exchange<'_>,
    ) -> Outcome {
        let cfg = &epoch.shared.config;
        let io_limit = member_timeout(spec, cfg);
        let head_len = self.req.head_len;
        self.g.clear();
        forward::request_head(
            &mut self.g,
            &self.inbuf,
            &self.req,
            &self.target,
            spec,
            cfg,
            self.peer,
            spec.enable_reuse,
        );
        let mut body = BodyState::new(self.req.body, cfg.limits.body);
        // With Expect: 100-continue and no body bytes yet, the body waits for the member's 100.
        let mut expect =
            self.req.expect_continue && !body.is_done() && self.inbuf.len() == head_len;
        let mut pos = head_len;
        if !expect {
            match body.take(&mut self.g, pos, &self.inbuf[pos..], Src::Input) {
                Ok(n) => pos += n,
                Err(e) => return body_outcome(e),
            }
        }
        let replayable = self.req.method.is_idempotent() && body.is_done() && !expect;
        x.bytes_in = pos as u64;
        x.bytes_out_backend = self.g.total_len() as u64;
        self.bbuf.clear();
        self.bbuf.reserve(INITIAL_BUF);
        let write_failed = if replayable {
            Outcome::Stale
        } else {
            Way::ToMember.sink_failed()
        };
        // A whole request (the usual case) goes out with the first read of its response, which
        // the backend may submit as one linked pair.
        let mut first_read = None;
        // One deadline for the whole head, so interim responses cannot stretch it (it starts
        // again once a body held back for 100-continue has gone out).
        let mut head_deadline;
        if body.is_done() && !expect {
            x.next = pos;
            head_deadline = B::now() + io_limit;
            let by = Deadlines {
                write: head_deadline,
                read: head_deadline,
            };
            self.g.lend_input(&mut self.inbuf);
            let r = be.write_then_read(&mut self.g, &mut self.bbuf, by).await;
            self.g.return_input(&mut self.inbuf);
            match r {
                Ok(n) => first_read = Some(Ok(n)),
                Err(ExchangeError::Read(e)) => first_read = Some(Err(e)),
                Err(ExchangeError::Write(_)) => return write_failed,
            }
        } else {
            let dl = B::now() + io_limit;
            if write_via(be, &mut self.g, Some(&mut self.inbuf), dl)
                .await
                .is_err()
            {
                return write_failed;
            }
            if !expect
                && let Err(o) = self
                    .stream_request_body(be, &mut body, &mut pos, x, io_limit, epoch)
                    .await
            {
                return o;
            }
            head_deadline = B::now() + io_limit;
        }
        // Response head, relaying any interim 1xx.
        let is_head = self.req.method == Method::Head;
        let mut got_any = false;
        loop {
            // (The linked read's bytes are parsed after its result is counted below.)
            if first_read.is_none() && !self.bbuf.is_empty() {
                match http::parse_response(
                    &self.bbuf,
                    is_head,
                    cfg.limits.head_size,
                    &mut self.resp,
                ) {
                    Ok(Parsed::Complete) if self.resp.status == 101 => {
                        return Outcome::Failed(502, "protocol upgrade is not supported");
                    }
                    Ok(Parsed::Complete) if self.resp.status < 200 => {
                        let n = self.resp.head_len;
                        if self.req.version == http::Version::Http11 {
                            self.g.push(Src::Input, 0, n);
                            let dl = B::now() + cfg.timeout;
                            if write_via(&self.conn, &mut self.g, Some(&mut self.bbuf), dl)
                                .await
                                .is_err()
                            {
                                return Outcome::ClientGone;
                            }
                        }
                        self.bbuf.drain(..n);
                        if self.resp.status == 100 && expect {
                            expect = false;
                            if let Err(o) = self
                                .stream_request_body(be, &mut body, &mut pos, x, io_limit, epoch)
                                .await
                            {
                                return o;
                            }
                            head_deadline = B::now() + io_limit;
                        }
                        continue;
                    }
                    Ok(Parsed::Complete) => break,
                    Ok(Parsed::Partial) => {}
                    Err(e) => return Outcome::Failed(502, e.reason),
                }
            }
            // A head that fills the buffer gets room for more before the next read (not when
            // the linked read is still to be counted: a large response fills it too, and the
            // buffer would double at every exchange).
            if first_read.is_none() && self.bbuf.len() == self.bbuf.capacity() {
                self.bbuf.reserve(self.bbuf.capacity());
            }
            // A member that never sends 100 gets the body anyway after EXPECT_WAIT.
            let deadline = if expect {
                head_deadline.min(B::now() + EXPECT_WAIT)
            } else {
                head_deadline
            };
            let r = match first_read.take() {
                Some(r) => r,
                None => {
                    let buf = std::mem::take(&mut self.bbuf);
                    let (r, buf) = be.read(buf, deadline).await;
                    self.bbuf = buf;
                    r
                }
            };
            if expect
                && deadline < head_deadline
                && matches!(r, Err(ref e) if e.kind() == io::ErrorKind::TimedOut)
            {
                expect = false;
                if let Err(o) = self
                    .stream_request_body(be, &mut body, &mut pos, x, io_limit, epoch)
                    .await
                {
                    return o;
                }
                head_deadline = B::now() + io_limit;
                continue;
            }
            match r {
                Ok(0) | Err(_) if !got_any && replayable => {
                    if matches!(r, Err(ref e) if e.kind() == io::ErrorKind::TimedOut) {
                        return Outcome::Failed(504, "timeout waiting for the member's response");
                    }
                    return Outcome::Stale;
                }
                Ok(0) => {
                    return Outcome::Failed(
                        502,
                        "member closed the connection before a full response head",
                    );
                }
                Ok(n) => {
                    got_any = true;
                    x.bytes_in_backend += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                    return Outcome::Failed(504, "timeout waiting for the member's response");
                }
                Err(_) => return Outcome::Failed(502, "error reading from the member"),
            }
        }
        x.request_done = body.is_done() && !expect;
        self.relay_response(epoch, shard, be, x, x.request_done, io_limit)
            .await
    }

    /// Streams the rest of a request body from the client to the member: a Content-Length body
    /// with `SPLICE_MIN` or more left through a pipe, else through the space after the head in
    /// the client buffer (so the head stays readable for the log).
    async fn stream_request_body(
        &mut self,
        be: &B::Conn,
        body: &mut BodyState,
        pos: &mut usize,
        x: &mut Exchange<'_>,
        io_limit: std::time::Duration,
        epoch: &Epoch<B>,
    ) -> Result<(), Outcome> {
        let head_len = self.req.head_len;
        let timeout = epoch.shared.config.timeout;
        while !body.is_done() {
            self.inbuf.truncate(head_len);
            *pos = head_len;
            if let BodyState::Remaining(left) = *body
                && left >= SPLICE_MIN
                && let Some(pipe) = Pipe::take()
            {
                // Only the body's bytes leave the client socket: what follows it (a
                // pipelined request) is read as the next head.
                let waits = (timeout, io_limit);
                splice_body::<B>(Way::ToMember, &self.conn, be, pipe, left, x, waits).await?;
                *body = BodyState::Done;
                break;
            }
            self.inbuf.reserve(BODY_BUF);
            let buf = std::mem::take(&mut self.inbuf);
            let (r, buf) = self.conn.read(buf, B::now() + timeout).await;
            self.inbuf = buf;
            match r {
                Ok(0) => return Err(Way::ToMember.source_failed(None)),
                Err(e) => return Err(Way::ToMember.source_failed(Some(&e))),
                Ok(_) => {}
            }
            match body.take(&mut self.g, head_len, &self.inbuf[head_len..], Src::Input) {
                Ok(n) => *pos = head_len + n,
                Err(e) => return Err(body_outcome(e)),
            }
            x.bytes_in += (*pos - head_len) as u64;
            x.bytes_out_backend += self.g.total_len() as u64;
            if write_via(be, &mut self.g, Some(&mut self.inbuf), B::now() + io_limit)
                .await
                .is_err()
            {
                return Err(Way::ToMember.sink_failed());
            }
        }
        x.next = *pos;
        Ok(())
    }

    /// Sends the response head and streams the body back; decides pool reuse.
    async fn relay_response(
        &mut self,
        epoch: &Epoch<B>,
        shard: &Shard<B>,
        be: &B::Conn,
        x: &mut Exchange<'_>,
        request_done: bool,
        io_limit: std::time::Duration,
    ) -> Outcome {
        let cfg = &epoch.shared.config;
        let framing = relay::client_framing(&self.resp, self.req.version);
        let keep = self.keep_alive(cfg, shard, self.resp.status, request_done)
            && framing == ClientFraming::Same;
        x.keep_alive = keep;
        x.status = Some(self.resp.status);
        x.has_resp = true;
        let host = self.req.host.map(|h| h.get(&self.inbuf));
        relay::response_head(
            &mut self.g,
            &self.bbuf,
            &self.resp,
            cfg,
            host,
            framing,
            keep,
            self.req.version,
        );
        let head_out = self.g.total_len();
        let resp_head = self.resp.head_len;
        let mut rbody = RespBody::new(&self.resp, framing);
        let mut consumed = match rbody.take(&mut self.g, &self.bbuf, resp_head) {
            Ok(n) => resp_head + n,
            Err(_) => {
                // Nothing went to the client yet: it gets a 502, not a silent close.
                x.has_resp = false;
                return Outcome::Failed(502, "malformed chunked body from the member");
            }
        };
        let mut leftover = rbody.is_done() && consumed < self.bbuf.len();
        let total = self.g.total_len();
        x.body_bytes = (total - head_out) as u64;
        x.bytes_out = total as u64;
        let client_dl = || B::now() + cfg.timeout;
        if write_via(&self.conn, &mut self.g, Some(&mut self.bbuf), client_dl())
            .await
            .is_err()
        {
            return Outcome::ClientGone;
        }
        if let RespBody::Remaining(left) = rbody
            && left >= SPLICE_MIN
            && let Some(pipe) = Pipe::take()
        {
            let waits = (io_limit, cfg.timeout);
            let way = Way::ToClient;
            if let Err(o) = splice_body::<B>(way, be, &self.conn, pipe, left, x, waits).await {
                return o;
            }
            // Bytes past the body never reached our buffer; the pool's liveness peek at the
            // next checkout closes a connection that has any.
            rbody = RespBody::Done;
        }
        while !rbody.is_done() {
            self.bbuf.truncate(resp_head);
            self.bbuf.reserve(BODY_BUF);
            let buf = std::mem::take(&mut self.bbuf);
            let (r, buf) = be.read(buf, B::now() + io_limit).await;
            self.bbuf = buf;
            match r {
                Ok(0) if matches!(rbody, RespBody::UntilClose) => break,
                Ok(0) => return Way::ToClient.source_failed(None),
                Ok(n) => x.bytes_in_backend += n as u64,
                Err(e) => return Way::ToClient.source_failed(Some(&e)),
            }
            consumed = match rbody.take(&mut self.g, &self.bbuf, resp_head) {
                Ok(n) => resp_head + n,
                Err(_) => return Outcome::Failed(502, "malformed chunked body from the member"),
            };
            leftover = rbody.is_done() && consumed < self.bbuf.len();
            let n = self.g.total_len() as u64;
            x.body_bytes += n;
            x.bytes_out += n;
            if write_via(&self.conn, &mut self.g, Some(&mut self.bbuf), client_dl())
                .await
                .is_err()
            {
                return Way::ToClient.sink_failed();
            }
        }
        let reusable = !self.resp.conn_close
            && !leftover
            && request_done
            && !matches!(self.resp.body, http::BodyFraming::UntilClose);
        Outcome::Done { reusable }
    }
}

/// Which way a body goes, spliced or through the buffers; says what each side's failure means
/// and (when spliced) which of the exchange's byte counts each step adds to.
#[derive(Clone, Copy)]
enum Way {
    /// A response body: member to client. The head is out: a failure cuts the client connection.
    ToClient,
    /// A request body: client to member, before the final response (a 100 may be out).
    ToMember,
}

impl Way {
    /// The source ended (`e` None) or failed (a read, or the wait for one, timed out or erred)
    /// before the body was whole.
    fn source_failed(self, e: Option<&io::Error>) -> Outcome {
        match (self, e) {
            (Way::ToClient, None) => Outcome::Failed(502, "member closed the connection mid-body"),
            (Way::ToClient, Some(e)) if e.kind() == io::ErrorKind::TimedOut => {
                Outcome::Failed(504, "timeout reading the member's body")
            }
            (Way::ToClient, Some(_)) => Outcome::Failed(502, "error reading the member's body"),
            (Way::ToMember, _) => Outcome::ClientGone,
        }
    }

    fn sink_failed(self) -> Outcome {
        match self {
            Way::ToClient => Outcome::ClientGone,
            Way::ToMember => Outcome::Failed(502, "write to the member failed"),
        }
    }

    fn count_in(self, x: &mut Exchange<'_>, n: u64) {
        match self {
            Way::ToClient => x.bytes_in_backend += n,
            Way::ToMember => x.bytes_in += n,
        }
    }

    fn count_out(self, x: &mut Exchange<'_>, n: u64) {
        match self {
            Way::ToClient => {
                x.body_bytes += n;
                x.bytes_out += n;
            }
            Way::ToMember => x.bytes_out_backend += n,
        }
    }
}

/// Streams the `left` bytes that remain of a body of known length from `src` to `dst` through
/// `pipe`, so they never pass through the proxy's memory (io/pipe.rs). `waits`: how long the
/// source, then the sink, may keep us waiting for each step. Err: the outcome when either side
/// failed.
async fn splice_body<B: Backend>(
    way: Way,
    src: &B::Conn,
    dst: &B::Conn,
    mut pipe: Pipe,
    left: u64,
    x: &mut Exchange<'_>,
    waits: (Duration, Duration),
) -> Result<(), Outcome> {
    let _s = NonBlocking::set(src.raw_fd()).map_err(|e| way.source_failed(Some(&e)))?;
    let _d = NonBlocking::set(dst.raw_fd()).map_err(|_| way.sink_failed())?;
    let moved = splice_all::<B>(way, src, dst, &mut pipe, left, x, waits).await;
    // An emptied pipe serves the next body, also after a failure; one with bytes left is closed.
    pipe.give_back();
    moved
}

async fn splice_all<B: Backend>(
    way: Way,
    src: &B::Conn,
    dst: &B::Conn,
    pipe: &mut Pipe,
    mut left: u64,
    x: &mut Exchange<'_>,
    waits: (Duration, Duration),
) -> Result<(), Outcome> {
    while left > 0 {
        match src.splice_in(pipe, usize::try_from(left).unwrap_or(usize::MAX)) {
            Ok(0) => return Err(way.source_failed(None)),
            Ok(n) => {
                left -= n as u64;
                way.count_in(x, n as u64);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                match src.ready(Ready::Read, B::now() + waits.0).await {
                    Ok(()) => continue,
                    Err(e) => return Err(way.source_failed(Some(&e))),
                }
            }
            Err(e) => return Err(way.source_failed(Some(&e))),
        }
        while pipe.held() > 0 {
            match dst.splice_out(pipe) {
                Ok(0) => return Err(way.sink_failed()),
                Ok(n) => way.count_out(x, n as u64),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if dst.ready(Ready::Write, B::now() + waits.1).await.is_err() {
                        return Err(way.sink_failed());
                    }
                }
                Err(_) => return Err(way.sink_failed()),
            }
        }
        yield_now().await;
    }
    Ok(())
}
