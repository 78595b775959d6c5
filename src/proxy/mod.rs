//! One client connection, request after request. `serve` reads top to bottom as a request
//! meets the proxy: parse the head, route, balance, check out a member connection, forward,
//! relay, log, then decide keep-alive. Errors end in a status and a log line, never a panic.

mod attempt;
pub mod forward;
mod logview;
mod relay;
mod respond;
pub mod route;

use std::io;
use std::net::{Shutdown, SocketAddr};
use std::rc::Rc;
use std::task::Poll;
use std::time::{Duration, Instant};

use crate::balance::{Balancer, NoMember, Pick, Sticky, ms_at};
use crate::conf::Config;
use crate::conf::model::LogLevel;
use crate::http::{self, FieldKind, Method, Parsed, RequestHead, ResponseHead};
use crate::io::{Backend, Conn, Gather};
use crate::pool::{BOUND_WAIT, Counted, DEFAULT_MAX_IDLE, Lease, MemberKey, Place};
use crate::shard::{Epoch, Shard};
use forward::BodyState;
use respond::ConnHeader;
use route::{Route, RouteInput};

/// First read size for a client; grows up to the head limit, and to `BODY_BUF` for bodies.
const INITIAL_BUF: usize = 8 * 1024;
/// Buffer size for streaming large bodies (bounded memory per connection): a 1 MiB body in 4
/// reads and 4 writes; 256 KiB cost 27 % less CPU per 1 MiB response than 64 KiB (perf/README.md).
const BODY_BUF: usize = 256 * 1024;
/// A body of known length with at least this much left after the first read (a response's,
/// or a request's Content-Length body) goes through a pipe (splice) instead of through
/// `BODY_BUF` (io/pipe.rs).
const SPLICE_MIN: u64 = 64 * 1024;

/// How long a closing client connection is drained after our response when it may still be
/// sending (httpd's lingering close), so the response is not lost to a reset.
const LINGER: Duration = Duration::from_secs(2);
/// How long a keep-alive connection may sit idle before it gives back buffers a large body
/// made it grow: busy connections keep theirs, idle ones do not each hold 256 KiB.
const IDLE_SHRINK: Duration = Duration::from_secs(1);
/// How long a request with `Expect: 100-continue` waits for the member's 100 before sending
/// the body anyway (the client does the same after its own wait).
const EXPECT_WAIT: Duration = Duration::from_secs(1);

/// What one exchange did, for the log line and the keep-alive verdict. It holds the member
/// picks (busy counts up) until the request is logged, as httpd's request-pool cleanup does.
pub(crate) struct Exchange<'e> {
    /// The start of the event loop's turn in which the head was parsed (`Backend::now`;
    /// `log::wall_clock_at` gives its wall-clock time).
    t0: Instant,
    status: Option<u16>,
    body_bytes: u64,
    bytes_in: u64,
    bytes_out: u64,
    balancer: Option<usize>,
    member: Option<usize>,
    route_changed: bool,
    /// The response head in `bbuf` is valid (for `%{H}o`).
    has_resp: bool,
    keep_alive: bool,
    aborted: bool,
    /// Where the next pipelined request starts in the client buffer.
    next: usize,
    /// The request head parsed (false for a rejected one).
    head_valid: bool,
    /// Bytes sent to and read from the member (bytraffic).
    bytes_out_backend: u64,
    bytes_in_backend: u64,
    /// The whole request body was read from the client.
    request_done: bool,
    /// The member that served the request, and those that failed before it.
    pick: Option<Pick<'e>>,
    failed_picks: Vec<Pick<'e>>,
}

/// A sticky session's route, copied out of the client buffer (which the exchange needs
/// mutably). A route can match a member only if shorter than 64 bytes (httpd's limit on
/// route=), so a longer one is not kept.
struct StickyRoute<'e> {
    name: &'e str,
    route: [u8; 64],
    len: usize,
}

impl StickyRoute<'_> {
    fn get(&self) -> Sticky<'_> {
        Sticky {
            name: self.name,
            route: &self.route[..self.len],
        }
    }
}

pub(crate) struct Client<B: Backend> {
    conn: B::Conn,
    peer: SocketAddr,
    local: SocketAddr,
    id: u64,
    inbuf: Vec<u8>,
    bbuf: Vec<u8>,
    g: Gather,
    req: RequestHead,
    resp: ResponseHead,
    target: Vec<u8>,
    served: u64,
}

/// Serves one accepted connection until it closes.
pub async fn serve<B: Backend>(shard: Rc<Shard<B>>, conn: B::Conn, peer: SocketAddr) {
    let slot = shard.register(conn.raw_fd());
    let id = shard.next_conn_id.get();
    shard.next_conn_id.set(id + 1);
    let local = conn.local_addr().unwrap_or(peer);
    let mut c = Client::<B> {
        conn,
        peer,
        local,
        id,
        inbuf: Vec::with_capacity(INITIAL_BUF),
        bbuf: Vec::new(),
        g: Gather::new(),
        req: RequestHead::new(),
        resp: ResponseHead::new(),
        target: Vec::new(),
        served: 0,
    };
    loop {
        let head = c.read_head(&shard, &shard.epoch(), slot).await;
        // The request runs in the generation current when its head arrived, not the one
        // current when the connection started waiting for it.
        let epoch = shard.epoch();
        match head {
            HeadRead::Complete => {}
            HeadRead::Closed => break,
            HeadRead::Reject(status, reason) => {
                c.reject(&shard, &epoch, status, reason).await;
                c.linger().await;
                break;
            }
        }
        shard.set_idle(slot, false);
        let x = c.exchange(&shard, &epoch).await;
        c.log(&shard, &epoch, &x);
        c.served += 1;
        let (keep, next, linger) = (x.keep_alive, x.next, !x.request_done && !x.aborted);
        drop(x);
        if !keep {
            if linger {
                c.linger().await;
            }
            break;
        }
        c.inbuf.drain(..next);
    }
    c.conn.shutdown(Shutdown::Both);
    shard.unregister(slot);
}

enum HeadRead {
    Complete,
    /// Peer closed, idle timeout, or drain: close without a response.
    Closed,
    Reject(u16, &'static str),
}

impl<B: Backend> Client<B> {
    fn holds_body_buffers(&self) -> bool {
        self.bbuf.capacity() >= BODY_BUF || self.inbuf.capacity() >= BODY_BUF
    }

    /// Frees the buffers of an idle connection (`inbuf` is empty then) that large bodies grew.
    fn release_body_buffers(&mut self) {
        if self.bbuf.capacity() >= BODY_BUF {
            self.bbuf = Vec::new();
        }
        if self.inbuf.capacity() >= BODY_BUF {
            self.inbuf = Vec::with_capacity(INITIAL_BUF);
        }
    }

    /// Reads until a complete request head is in `inbuf` (pipelined bytes may already be).
    async fn read_head(&mut self, shard: &Shard<B>, epoch: &Epoch<B>, slot: usize) -> HeadRead {
        let cfg = &epoch.shared.config;
        let idle_deadline = B::now()
            + if self.served == 0 {
                cfg.header_read_timeout
            } else {
                cfg.keep_alive_timeout
            };
        let mut head_deadline = None;
        loop {
            if !self.inbuf.is_empty() {
                match http::parse_request(&self.inbuf, &cfg.limits, &mut self.req) {
                    Ok(Parsed::Complete) => return HeadRead::Complete,
                    Ok(Parsed::Partial) => {}
                    Err(e) => return HeadRead::Reject(e.status, e.reason),
                }
            }
            let idle = self.inbuf.is_empty();
            shard.set_idle(slot, idle);
            if idle && shard.draining() {
                return HeadRead::Closed;
            }
            let mut deadline = if idle {
                idle_deadline
            } else {
                *head_deadline.get_or_insert_with(|| B::now() + cfg.header_read_timeout)
            };
            let shrink_at = (idle && self.holds_body_buffers())
                .then(|| B::now() + IDLE_SHRINK)
                .filter(|&at| at < deadline);
            let shrink = shrink_at.is_some();
            deadline = shrink_at.unwrap_or(deadline);
            if self.inbuf.len() == self.inbuf.capacity() {
                // Room to see past the head limit, so the parser can answer 431 or 414.
                let want = (self.inbuf.capacity() * 2).min(cfg.limits.head_size + 1024);
                self.inbuf
                    .reserve(want.saturating_sub(self.inbuf.len()).max(1024));
            }
            let buf = std::mem::take(&mut self.inbuf);
            let (r, buf) = self.conn.read(buf, deadline).await;
            self.inbuf = buf;
            match r {
                Ok(0) if http::has_request_line(&self.inbuf) => {
                    return HeadRead::Reject(400, "the connection closed in the request head");
                }
                Ok(0) => return HeadRead::Closed,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::TimedOut && shrink => {
                    self.release_body_buffers();
                }
                Err(e) if e.kind() == io::ErrorKind::TimedOut && !idle => {
                    return HeadRead::Reject(408, "timeout reading the request head");
                }
                Err(_) => return HeadRead::Closed,
            }
        }
    }

    /// Answers a request that could not be parsed, then the connection closes.
    async fn reject(
        &mut self,
        shard: &Shard<B>,
        epoch: &Epoch<B>,
        status: u16,
        reason: &'static str,
    ) {
        shard.control.errlog.write_client(
            LogLevel::Info,
            "core",
            Some(self.peer),
            &format!("AH00126: {status}: {reason}"),
        );
        self.g.clear();
        let body = respond::error_page(&mut self.g, status, ConnHeader::Close, false, None);
        let sent = self.g.total_len() as u64;
        let dl = B::now() + epoch.shared.config.timeout;
        let _ = attempt::write_via(&self.conn, &mut self.g, None, dl).await;
        let mut x = self.new_exchange();
        x.head_valid = false;
        x.status = Some(status);
        x.body_bytes = body;
        x.bytes_out = sent;
        x.bytes_in = self.inbuf.len() as u64;
        x.keep_alive = false;
        x.request_done = false;
        self.log(shard, epoch, &x);
    }

    /// Half-closes and drains what the client still sends, for up to `LINGER`, so a
    /// response sent before its request body was read is not destroyed by a reset.
    async fn linger(&mut self) {
        self.conn.shutdown(Shutdown::Write);
        let until = B::now() + LINGER;
        let mut budget: usize = 1 << 20;
        loop {
            self.inbuf.clear();
            let buf = std::mem::take(&mut self.inbuf);
            let (r, buf) = self.conn.read(buf, until).await;
            self.inbuf = buf;
            match r {
                Ok(n) if n > 0 && n < budget => budget -= n,
                _ => return,
            }
        }
    }

    fn new_exchange<'e>(&self) -> Exchange<'e> {
        Exchange {
            t0: B::now(),
            status: None,
            body_bytes: 0,
            bytes_in: 0,
            bytes_out: 0,
            balancer: None,
            member: None,
            route_changed: false,
            has_resp: false,
            keep_alive: false,
            aborted: false,
            next: self.req.head_len,
            head_valid: true,
            bytes_out_backend: 0,
            bytes_in_backend: 0,
            request_done: BodyState::new(self.req.body, 0).is_done(),
            pick: None,
            failed_picks: Vec::new(),
        }
    }

    /// Everything after a parsed head: route, then proxy or answer locally.
    async fn exchange<'e>(&mut self, shard: &Shard<B>, epoch: &'e Epoch<B>) -> Exchange<'e> {
        let cfg = &epoch.shared.config;
        let mut x = self.new_exchange();
        x.bytes_in = self.req.head_len as u64;
        let route = {
            let input = RouteInput {
                buf: &self.inbuf,
                req: &self.req,
                peer: self.peer,
                local: self.local,
                server_name: &cfg.server_name,
            };
            let mut scratch = epoch.route_scratch.borrow_mut();
            route::route(cfg, &input, &mut scratch, &mut self.target)
        };
        match route {
            Route::Proxy { balancer } => self.proxy(shard, epoch, balancer, &mut x).await,
            Route::Redirect(code) => {
                let mut loc = Vec::new();
                if self.target.first() == Some(&b'/') {
                    loc.extend_from_slice(b"http://");
                    loc.extend_from_slice(
                        self.req
                            .host
                            .map(|h| h.get(&self.inbuf))
                            .unwrap_or(cfg.server_name.as_bytes()),
                    );
                }
                loc.extend_from_slice(&self.target);
                self.local_response(shard, epoch, &mut x, code, Some(&loc))
                    .await;
            }
            Route::Forbidden => self.local_response(shard, epoch, &mut x, 403, None).await,
            Route::Gone => self.local_response(shard, epoch, &mut x, 410, None).await,
            Route::NotFound => self.local_response(shard, epoch, &mut x, 404, None).await,
        }
        x
    }

    /// The keep-alive verdict before a response head goes out.
    fn keep_alive(&self, cfg: &Config, shard: &Shard<B>, status: u16, body_read: bool) -> bool {
        cfg.keep_alive
            && !self.req.conn_close
            && body_read
            && (cfg.max_keep_alive_requests == 0
                || self.served + 1 < cfg.max_keep_alive_requests as u64)
            && !respond::drops_connection(status)
            && !shard.draining()
    }

    /// Logs why member `m` failed, puts it in error state for its `retry=` and excludes it from
    /// this request's further picks.
    fn disable_member(
        &self,
        shard: &Shard<B>,
        bal: &Balancer,
        m: usize,
        msg: &str,
        exclude: &mut u64,
    ) {
        shard
            .control
            .errlog
            .write_client(LogLevel::Error, "proxy", Some(self.peer), msg);
        bal.mark_error(m, ms_at(B::now()));
        *exclude |= 1 << m;
    }

    /// Answers from the proxy itself. A request body that was not read closes the connection.
    async fn local_response(
        &mut self,
        shard: &Shard<B>,
        epoch: &Epoch<B>,
        x: &mut Exchange<'_>,
        status: u16,
        location: Option<&[u8]>,
    ) {
        let cfg = &epoch.shared.config;
        x.keep_alive = self.keep_alive(cfg, shard, status, x.request_done);
        let conn = match (x.keep_alive, self.req.version) {
            (false, _) => ConnHeader::Close,
            (true, http::Version::Http10) => ConnHeader::KeepAlive,
            (true, http::Version::Http11) => ConnHeader::Default,
        };
        self.g.clear();
        x.body_bytes = respond::error_page(
            &mut self.g,
            status,
            conn,
            self.req.method == Method::Head,
            location,
        );
        x.status = Some(status);
        x.bytes_out = self.g.total_len() as u64;
        if attempt::write_via(&self.conn, &mut self.g, None, B::now() + cfg.timeout)
            .await
            .is_err()
        {
            x.keep_alive = false;
            x.aborted = true;
        }
    }

    /// The route this request's sticky session names, if the balancer has a stickysession;
    /// without one, the request's cookies are not looked at.
    fn sticky_route<'e>(&self, bal: &'e Balancer) -> Option<StickyRoute<'e>> {
        let spec = bal.spec().sticky.as_ref()?;
        let mut cookies: [&[u8]; 8] = [&[]; 8];
        let mut n = 0;
        for f in self
            .req
            .fields
            .iter()
            .filter(|f| f.kind == FieldKind::Cookie)
            .take(8)
        {
            cookies[n] = f.value.get(&self.inbuf);
            n += 1;
        }
        let s = bal.sticky_route(self.req.target.get(&self.inbuf), &cookies[..n])?;
        let mut route = [0u8; 64];
        if s.route.len() >= route.len() {
            return None;
        }
        route[..s.route.len()].copy_from_slice(s.route);
        // The same name, borrowed from the balancer rather than the request.
        let name = if s.name == spec.cookie {
            spec.cookie.as_str()
        } else {
            spec.url_param.as_str()
        };
        Some(StickyRoute {
            name,
            route,
            len: s.route.len(),
        })
    }

    /// Balance, check out, forward, relay; with failover to another member on connect errors.
    async fn proxy<'e>(
        &mut self,
        shard: &Shard<B>,
        epoch: &'e Epoch<B>,
        b: usize,
        x: &mut Exchange<'e>,
    ) {
        let cfg = &epoch.shared.config;
        let bal = &epoch.shared.balancers[b];
        x.balancer = Some(b);
        if bal.spec().denied {
            return self.local_response(shard, epoch, x, 403, None).await;
        }
        let sticky_route = self.sticky_route(bal);
        let sticky = sticky_route.as_ref().map(StickyRoute::get);
        let mut exclude = 0u64;
        let mut attempts = 0u32;
        let max_attempts = bal.max_attempts();
        // Set after a connection went stale: the replay uses a fresh connection.
        let mut fresh_only = false;
        // A stale reused connection is replayed once, to the same member: the member may just
        // have closed it idle, which costs it no pick (httpd retries on the same worker; nginx
        // does not count it as a try). A stale fresh one fails over once. (Once `fresh_only`,
        // nothing is reused, so the first case comes at most once.)
        let mut same_member = None;
        let mut failed_over = false;
        let (pick, be, outcome) = loop {
            let (pick, be, reused): (Pick<'_>, Counted<B::Conn>, bool) = loop {
                let picked = match same_member.take() {
                    Some(p) => Ok(p),
                    None => bal.pick(
                        sticky.as_ref(),
                        exclude,
                        ms_at(B::now()),
                        &mut epoch.caches.borrow_mut()[b],
                    ),
                };
                let pick = match picked {
                    Ok(p) => p,
                    Err(e) => {
                        let msg = match e {
                            NoMember::RouteUnavailable => format!(
                                "AH01167: {}: {e} ({})",
                                bal.name(),
                                String::from_utf8_lossy(
                                    sticky.as_ref().map(|s| s.route).unwrap_or(b"")
                                )
                            ),
                            _ => format!("AH01170: {}: {e}", bal.name()),
                        };
                        shard.control.errlog.write_client(
                            LogLevel::Error,
                            "proxy",
                            Some(self.peer),
                            &msg,
                        );
                        return self.local_response(shard, epoch, x, 503, None).await;
                    }
                };
                let m = pick.index();
                x.member = Some(m);
                x.route_changed = pick.route_changed();
                let spec = pick.spec();
                let key = MemberKey {
                    slot: epoch.shared.first_slot[b] + m,
                };
                let ticket = if spec.enable_reuse && !fresh_only {
                    match lease(shard, epoch, key, spec.ttl).await {
                        Lease::Reuse(c) => break (pick, c, true),
                        Lease::Open(ticket) => ticket,
                    }
                } else {
                    epoch.pool.borrow().ticket(key)
                };
                match connect::<B>(spec, cfg).await {
                    Ok(c) => {
                        bal.mark_ok(m);
                        break (pick, ticket.admit(c), false);
                    }
                    Err(e) => {
                        drop(ticket); // no connection: its place is free at once
                        let msg = format!(
                            "AH00957: http: attempt to connect to {}:{} failed ({e}); disabling member {} for {}s",
                            spec.host,
                            spec.port,
                            spec.url,
                            spec.retry.as_secs()
                        );
                        self.disable_member(shard, bal, m, &msg, &mut exclude);
                        x.failed_picks.push(pick);
                        attempts += 1;
                        if attempts > max_attempts {
                            return self.local_response(shard, epoch, x, 503, None).await;
                        }
                    }
                }
            };
            let outcome = self
                .forward_and_relay(epoch, shard, pick.spec(), &be, x)
                .await;
            if matches!(outcome, Outcome::Stale) && (reused || !failed_over) {
                // The connection died before any response byte, and the request can be
                // replayed. A reused one may just have been closed idle (after its check); a
                // fresh one that resets means the member is failing (a killed process whose
                // socket still accepted), so it goes in error state and the replay fails over.
                be.shutdown(Shutdown::Both);
                fresh_only = true;
                if reused {
                    same_member = Some(pick);
                } else {
                    let m = pick.index();
                    let msg = format!(
                        "AH01102: member {} reset a new connection; disabling it",
                        pick.spec().url
                    );
                    self.disable_member(shard, bal, m, &msg, &mut exclude);
                    failed_over = true;
                    x.failed_picks.push(pick);
                }
                continue;
            }
            break (pick, be, outcome);
        };
        let m = pick.index();
        let key = MemberKey {
            slot: epoch.shared.first_slot[b] + m,
        };
        let spec = pick.spec();
        pick.add_traffic(x.bytes_out_backend, x.bytes_in_backend);
        x.pick = Some(pick);
        let (status, why) = match outcome {
            Outcome::Done { reusable } => {
                if reusable && spec.enable_reuse {
                    let max = spec.max.map_or(DEFAULT_MAX_IDLE, |m| m as usize);
                    epoch.pool.borrow_mut().checkin(key, be, max, B::now());
                } else {
                    be.shutdown(Shutdown::Both);
                }
                return;
            }
            Outcome::ClientGone => {
                be.shutdown(Shutdown::Both);
                x.keep_alive = false;
                x.aborted = true;
                return;
            }
            Outcome::BadRequestBody => (400, "malformed chunked request body"),
            Outcome::BodyTooLarge => (413, "request body over LimitRequestBody"),
            Outcome::Stale => (502, "connection closed before the response"),
            Outcome::Failed(status, why) => (status, why),
        };
        be.shutdown(Shutdown::Both);
        drop(be); // its place under the bound is free before the error page goes out
        let msg = format!("AH01102: error with member {}: {why}", spec.url);
        shard
            .control
            .errlog
            .write_client(LogLevel::Error, "proxy", Some(self.peer), &msg);
        if x.has_resp {
            // Part of the response went out: the client connection is cut.
            x.keep_alive = false;
            x.aborted = true;
        } else {
            self.req.conn_close = true;
            self.local_response(shard, epoch, x, status, None).await;
        }
    }
}

/// How one forward-and-relay attempt ended.
#[derive(Debug, Clone, Copy)]
enum Outcome {
    /// The response went out whole; `reusable`: the member connection may go back to the pool.
    Done {
        reusable: bool,
    },
    /// The member connection failed before any response byte, and the request may be replayed.
    Stale,
    /// The member failed; answer this status if nothing went out yet.
    Failed(u16, &'static str),
    /// The client's chunked body is malformed: 400, and both connections close.
    BadRequestBody,
    /// The client's chunked body went past LimitRequestBody: 413, and both connections close.
    BodyTooLarge,
    ClientGone,
}

/// An idle connection to the member, or a ticket to open one. When the shard already holds as
/// many member connections as it has clients with a request in progress (see `pool`), this
/// waits up to `BOUND_WAIT` for one of the member's busy connections to come back before
/// opening one more (the deadline is checked whenever a connection comes back or closes, and
/// at the shard's 50 ms tick, so the wait can run up to one tick past it).
async fn lease<B: Backend>(
    shard: &Shard<B>,
    epoch: &Epoch<B>,
    key: MemberKey,
    ttl: Option<Duration>,
) -> Lease<B::Conn> {
    let bound = shard.busy_clients();
    let give_up = B::now() + BOUND_WAIT;
    let mut place = Place::default();
    std::future::poll_fn(|cx| {
        let now = B::now();
        let wait = (now < give_up).then_some((cx.waker(), &mut place));
        match epoch.pool.borrow_mut().lease(key, ttl, now, bound, wait) {
            Some(l) => Poll::Ready(l),
            None => Poll::Pending,
        }
    })
    .await
}

/// The I/O timeout for a member: its `timeout=`, else ProxyTimeout, else Timeout.
fn member_timeout(spec: &crate::conf::model::MemberSpec, cfg: &Config) -> Duration {
    spec.timeout.or(cfg.proxy_timeout).unwrap_or(cfg.timeout)
}

async fn connect<B: Backend>(
    spec: &crate::conf::model::MemberSpec,
    cfg: &Config,
) -> io::Result<B::Conn> {
    let limit = spec
        .connection_timeout
        .unwrap_or_else(|| member_timeout(spec, cfg));
    let mut last = io::Error::new(io::ErrorKind::AddrNotAvailable, "no address");
    for &a in &spec.addrs {
        match B::connect(a, B::now() + limit).await {
            Ok(c) => return Ok(c),
            Err(e) => last = e,
        }
    }
    Err(last)
}
