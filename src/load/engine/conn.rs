//! One client connection's loop: connect, keep up to `pipeline` requests in flight (sent on
//! the schedule in open loop, as soon as a response frees a slot in closed loop), parse every
//! response with the proxy's own HTTP code, record it, and reconnect when the server closes.

use std::collections::VecDeque;
use std::io;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use super::ThreadCtx;
use super::last_head::LastHead;
use super::recorder::{self, Sample};
use super::requests::Weighted;
use super::wire::Wire;
use crate::http::{BodyFraming, ChunkedScanner, Parsed, ResponseHead};
use crate::io::{Backend, Deadlines, ExchangeError, Gather, Src};
use crate::load::plan::Tally;
use crate::load::schedule::Timetable;
use crate::load::tls::{self, MaybeTls, TlsWire};

const READ_BUF: usize = 64 * 1024;
/// How often a waiting connection looks at the stop flag.
const STOP_POLL: std::time::Duration = std::time::Duration::from_millis(50);
/// Bytes of a body kept for `--tally body`.
const TALLY_BODY: usize = 64;

struct InFlight {
    intended: Instant,
    sent: Instant,
    first_byte: Option<Instant>,
}

/// Where the oldest in-flight response is.
enum Phase {
    Head,
    Length(u64),
    Chunked(ChunkedScanner),
    UntilClose,
}

/// Why a connection ended.
enum End {
    /// The run is over; requests still in flight are abandoned at the drain deadline.
    Stop,
    /// Reconnect after a clean end (server close between responses, timeout, close-every).
    Again,
    /// Reconnect after a failure; every request still in flight is lost with this error.
    Lost(String),
}

pub async fn run<B: Backend>(ctx: Rc<ThreadCtx>, group: usize, mut timetable: Option<Timetable>) {
    let addr = ctx.groups.addrs[group];
    let mut picker = Weighted::new(ctx.groups.members[group].clone());
    let mut next_intended = timetable.as_mut().map(|t| ctx.shared.t0 + t.next());
    let mut g = Gather::new();
    g.input = ctx.requests.bytes.clone();
    let mut buf: Vec<u8> = Vec::with_capacity(READ_BUF);
    let mut head = LastHead::new();
    let mut inflight: VecDeque<InFlight> = VecDeque::with_capacity(ctx.plan.pipeline);
    // Intended send times of requests the server never processed (pipelined behind a
    // `Connection: close` response): sent first on the next connection, keeping their times.
    let mut requeue: VecDeque<Instant> = VecDeque::with_capacity(ctx.plan.pipeline);
    // https://: the run's TLS config and the name the group's (first) target is checked for.
    let target = &ctx.plan.targets[ctx.groups.members[group][0].0];
    let tls = match (&ctx.tls, target.tls) {
        (Some(config), true) => match tls::server_name(&target.host) {
            Ok(name) => Some((config.clone(), name)),
            Err(_) => return ctx.count_error("connect:tls-bad-name"),
        },
        _ => None,
    };
    loop {
        let now = Instant::now();
        if ctx.stopped(now) {
            // Requeued requests still go out until the drain deadline; then they are errors.
            if requeue.is_empty() {
                return;
            }
            if ctx.drain_deadline().is_some_and(|d| now >= d) {
                let mut rec = ctx.rec.borrow_mut();
                for due in requeue.drain(..) {
                    if rec.counts(due) {
                        rec.error("drain:abandoned");
                        rec.abandoned += 1;
                        ctx.shared.errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
                return;
            }
        }
        let began = Instant::now();
        let deadline = began + ctx.plan.connect_timeout;
        let conn = match B::connect(addr, deadline).await {
            Ok(c) => match &tls {
                None => Ok(MaybeTls::Plain(c)),
                // The handshake counts in the connect time and its timeout.
                Some((config, name)) => {
                    TlsWire::handshake(c, name.clone(), config.clone(), deadline)
                        .await
                        .map(|w| MaybeTls::Tls(Box::new(w)))
                }
            },
            Err(e) => Err(e),
        };
        let conn = match conn {
            Ok(c) => c,
            Err(e) => {
                ctx.count_error(&error_kind("connect", &e));
                // Do not spin on a refusing server; each failure is counted.
                B::sleep_until(Instant::now() + std::time::Duration::from_millis(10)).await;
                continue;
            }
        };
        ctx.rec.borrow_mut().connected(began, began.elapsed());
        ctx.shared.connected.fetch_add(1, Ordering::Relaxed);
        buf.clear();
        head.reset();
        inflight.clear();
        let end = serve::<B, _>(
            &ctx,
            &conn,
            &mut g,
            &mut buf,
            &mut head,
            &mut inflight,
            &mut requeue,
            &mut picker,
            &mut timetable,
            &mut next_intended,
        )
        .await;
        // A clean end leaves only requests the server never processed: they go again.
        // Otherwise every request still in flight is one error.
        let why = match &end {
            End::Stop => "drain:abandoned",
            End::Again => {
                requeue.extend(inflight.drain(..).map(|f| f.intended));
                ""
            }
            End::Lost(kind) => kind.as_str(),
        };
        let lost_in_drain = matches!(end, End::Lost(_)) && ctx.stopped(Instant::now());
        for f in inflight.drain(..) {
            let mut rec = ctx.rec.borrow_mut();
            if rec.counts(f.sent) {
                rec.error(why);
                rec.abandoned += u64::from(matches!(end, End::Stop));
                rec.failed_in_drain += u64::from(lost_in_drain);
                drop(rec);
                ctx.shared.errors.fetch_add(1, Ordering::Relaxed);
            }
        }
        if matches!(end, End::Stop) {
            // Requests the schedule wanted sent before the stop but that never went out (the
            // connection was busy) are the coordinated omission at the end of a run: each is
            // an error and a latency of at least (stop - intended).
            if let Some(stop) = ctx.shared.stop_instant() {
                let mut rec = ctx.rec.borrow_mut();
                for due in requeue.drain(..) {
                    if rec.counts(due) {
                        rec.unsent(due, stop);
                        ctx.shared.errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            if let (Some(t), Some(stop)) = (timetable.as_mut(), ctx.shared.stop_instant()) {
                let mut rec = ctx.rec.borrow_mut();
                while let Some(due) = next_intended.filter(|&d| d < stop) {
                    if rec.counts(due) {
                        rec.unsent(due, stop);
                        ctx.shared.errors.fetch_add(1, Ordering::Relaxed);
                    }
                    next_intended = Some(ctx.shared.t0 + t.next());
                }
            }
            return;
        }
    }
}

/// Runs requests on one connection until it must be replaced or the run is over.
#[allow(clippy::too_many_arguments)] // the connection's long-lived state, owned by `run`
async fn serve<B: Backend, W: Wire>(
    ctx: &ThreadCtx,
    conn: &W,
    g: &mut Gather,
    buf: &mut Vec<u8>,
    head: &mut LastHead,
    inflight: &mut VecDeque<InFlight>,
    requeue: &mut VecDeque<Instant>,
    picker: &mut Weighted,
    timetable: &mut Option<Timetable>,
    next_intended: &mut Option<Instant>,
) -> End {
    let plan = &ctx.plan;
    // The one field besides the framing ones that response heads are parsed for.
    let tally_header = match &plan.tally {
        Some(Tally::Header(name)) => Some(name.as_bytes()),
        _ => None,
    };
    let mut sent_here = 0u64;
    let mut answered_here = 0u64;
    let mut phase = Phase::Head;
    let mut tally = [0u8; TALLY_BODY];
    let mut tally_len = 0usize;
    let mut closing = false;
    loop {
        // Send what the schedule and the pipeline allow. Closed-loop pipelines refill in
        // batches (once half empty), so one write carries several requests, as wrk's does.
        let now = Instant::now();
        let stopped = ctx.stopped(now);
        let refill = next_intended.is_some() || inflight.len() <= plan.pipeline / 2;
        let conn_done = closing
            || plan.close_every.is_some_and(|n| sent_here >= n)
            || (!plan.keepalive && sent_here >= 1);
        // After the stop only requeued requests (already counted and due) still go out.
        while refill
            && (!stopped || !requeue.is_empty())
            && !conn_done
            && inflight.len() < plan.pipeline
        {
            if plan.close_every.is_some_and(|n| sent_here >= n)
                || (!plan.keepalive && sent_here >= 1)
            {
                break;
            }
            let (intended, fresh) = match requeue.pop_front() {
                Some(t) => (t, false),
                None if stopped => break,
                None => {
                    let t = match *next_intended {
                        Some(t) if t > now => break,
                        Some(t) => t,
                        None => now,
                    };
                    if !ctx.take_budget(now) {
                        break;
                    }
                    (t, true)
                }
            };
            let (a, b) = ctx.requests.span(picker.next(), inflight.len());
            g.push(Src::Input, a, b);
            let sent = now;
            inflight.push_back(InFlight {
                intended,
                sent,
                first_byte: None,
            });
            if (sent_here > 0 || answered_here > 0) && ctx.rec.borrow().in_window(now) {
                ctx.rec.borrow_mut().conns.reused += 1;
            }
            sent_here += 1;
            if fresh && let Some(t) = timetable.as_mut() {
                *next_intended = Some(ctx.shared.t0 + t.next());
            }
        }
        let wrote = !g.is_empty();
        if !wrote && inflight.is_empty() {
            if stopped {
                return End::Stop;
            }
            if conn_done
                || plan.close_every.is_some_and(|n| sent_here >= n)
                || (!plan.keepalive && sent_here >= 1)
            {
                return End::Again;
            }
            // Open loop, nothing in flight: wait for the next intended send, in slices so a
            // stop (or a schedule that has gone to 0) is noticed.
            if let Some(t) = *next_intended {
                B::sleep_until(t.min(Instant::now() + STOP_POLL)).await;
            }
            continue;
        }
        // Read until the oldest response's timeout, or the next intended send if a slot is free.
        let oldest = &inflight[0];
        let timeout_at = oldest.sent + plan.timeout;
        // The drain deadline is known in advance for a duration run; a stop (-n, Ctrl-C) is
        // noticed within STOP_POLL.
        let drain_end = ctx.drain_deadline();
        let mut deadline = timeout_at.min(drain_end.unwrap_or(timeout_at));
        if !stopped {
            deadline = deadline.min(now + STOP_POLL.max(plan.timeout / 4));
        }
        if !conn_done
            && inflight.len() < plan.pipeline
            && !stopped
            && let Some(t) = *next_intended
        {
            deadline = deadline.min(t);
        }
        if buf.capacity() - buf.len() < 4096 {
            buf.reserve(READ_BUF);
        }
        let r = if wrote {
            // The requests and the read for their responses, at once where the backend can.
            let n = g.total_len() as u64;
            let by = Deadlines {
                write: now + plan.timeout,
                read: deadline,
            };
            let r = conn.write_then_read(g, buf, by).await;
            g.clear();
            let r = match r {
                Err(ExchangeError::Write(e)) => return End::Lost(error_kind("write", &e)),
                Err(ExchangeError::Read(e)) => Err(e),
                Ok(n) => Ok(n),
            };
            let mut rec = ctx.rec.borrow_mut();
            if rec.in_window(now) {
                rec.bytes_written += n;
            }
            r
        } else {
            let (r, back) = conn.read(std::mem::take(buf), deadline).await;
            *buf = back;
            r
        };
        let now = Instant::now();
        match r {
            Ok(0) => {
                let mut rec = ctx.rec.borrow_mut();
                if rec.in_window(now) {
                    rec.conns.closed_by_server += 1;
                }
                if matches!(phase, Phase::UntilClose) {
                    drop(rec);
                    complete(ctx, inflight, head, now, &tally[..tally_len]);
                    return End::Again;
                }
                drop(rec);
                if closing {
                    // The server said it would close; what was pipelined behind that response
                    // was never processed and goes again on a new connection.
                    return End::Again;
                }
                return End::Lost("read:premature-close".to_string());
            }
            Ok(n) => {
                let mut rec = ctx.rec.borrow_mut();
                if rec.in_window(now) {
                    rec.bytes_read += n as u64;
                }
                drop(rec);
                if inflight[0].first_byte.is_none() {
                    inflight[0].first_byte = Some(now);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                if drain_end.is_some_and(|d| now >= d) {
                    return End::Stop;
                }
                if now >= timeout_at {
                    let timeout = plan.timeout;
                    let in_drain = ctx.stopped(now);
                    let mut rec = ctx.rec.borrow_mut();
                    for f in inflight.drain(..) {
                        if rec.counts(f.sent) {
                            rec.timeout(f.intended, f.sent, timeout);
                            rec.failed_in_drain += u64::from(in_drain);
                            ctx.shared.errors.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    return End::Again;
                }
                continue; // time to send the next scheduled request
            }
            Err(e) => return End::Lost(error_kind("read", &e)),
        }
        // Consume every complete response in the buffer; `pos` is where unconsumed bytes
        // start, and the buffer is compacted once per read, not per response.
        let mut pos = 0;
        loop {
            match &mut phase {
                Phase::Head => {
                    match head.parse(&buf[pos..], ctx.requests.head_only, tally_header) {
                        Ok(Parsed::Complete) if head.status < 200 => {
                            pos += head.head_len;
                            continue;
                        }
                        Ok(Parsed::Complete) => {
                            if let Some(Tally::Header(name)) = &plan.tally {
                                let v = head.field(&buf[pos..], name).unwrap_or(b"-");
                                tally_len = v.len().min(TALLY_BODY);
                                tally[..tally_len].copy_from_slice(&v[..tally_len]);
                            } else {
                                tally_len = 0;
                            }
                            closing |= head.conn_close;
                            pos += head.head_len;
                            phase = match head.body {
                                BodyFraming::None | BodyFraming::Length(0) => {
                                    complete(ctx, inflight, head, now, &tally[..tally_len]);
                                    answered_here += 1;
                                    Phase::Head
                                }
                                BodyFraming::Length(n) => Phase::Length(n),
                                BodyFraming::Chunked => Phase::Chunked(ChunkedScanner::new()),
                                BodyFraming::UntilClose => Phase::UntilClose,
                            };
                        }
                        Ok(Parsed::Partial) => break,
                        Err(_) => return End::Lost("read:parse".to_string()),
                    }
                }
                Phase::Length(left) => {
                    let take = (*left).min((buf.len() - pos) as u64) as usize;
                    if matches!(plan.tally, Some(Tally::Body)) {
                        tally_body(&mut tally, &mut tally_len, &buf[pos..pos + take]);
                    }
                    pos += take;
                    *left -= take as u64;
                    if *left > 0 {
                        break;
                    }
                    complete(ctx, inflight, head, now, &tally[..tally_len]);
                    answered_here += 1;
                    phase = Phase::Head;
                }
                Phase::Chunked(sc) => {
                    let body_tally = matches!(plan.tally, Some(Tally::Body));
                    let scanned = sc.scan(&buf[pos..], |d| {
                        if body_tally {
                            tally_body(&mut tally, &mut tally_len, d);
                        }
                    });
                    match scanned {
                        Ok((n, done)) => {
                            pos += n;
                            if !done {
                                break;
                            }
                            complete(ctx, inflight, head, now, &tally[..tally_len]);
                            answered_here += 1;
                            phase = Phase::Head;
                        }
                        Err(_) => return End::Lost("read:parse".to_string()),
                    }
                }
                Phase::UntilClose => {
                    if matches!(plan.tally, Some(Tally::Body)) {
                        tally_body(&mut tally, &mut tally_len, &buf[pos..]);
                    }
                    pos = buf.len();
                    break;
                }
            }
            if pos == buf.len() {
                break;
            }
            if let Some(f) = inflight.front_mut() {
                f.first_byte.get_or_insert(now);
            }
        }
        buf.drain(..pos);
        if closing && inflight.is_empty() {
            return End::Again;
        }
    }
}

fn tally_body(tally: &mut [u8; TALLY_BODY], len: &mut usize, data: &[u8]) {
    let n = data.len().min(TALLY_BODY - *len);
    tally[*len..*len + n].copy_from_slice(&data[..n]);
    *len += n;
}

/// Records the oldest in-flight request as answered.
fn complete(
    ctx: &ThreadCtx,
    inflight: &mut VecDeque<InFlight>,
    head: &ResponseHead,
    now: Instant,
    tally: &[u8],
) {
    let Some(f) = inflight.pop_front() else {
        return;
    };
    let sample = Sample {
        intended: f.intended,
        sent: f.sent,
        first_byte: f.first_byte.unwrap_or(now),
        done: now,
        status: head.status,
    };
    let mut rec = ctx.rec.borrow_mut();
    let counted = rec.counts(f.sent);
    rec.response(&sample, ctx.open_loop, ctx.stopped(now));
    if counted && ctx.plan.tally.is_some() {
        rec.tally(tally);
    }
    drop(rec);
    if counted {
        ctx.shared.responses.fetch_add(1, Ordering::Relaxed);
    }
}

/// The error tally's name for `e`: TLS failures by what went wrong (`connect:tls-cert-...`),
/// the rest as the recorder names them.
fn error_kind(phase: &'static str, e: &io::Error) -> String {
    match tls::error_kind(e) {
        Some(kind) => format!("{phase}:{kind}"),
        None => recorder::error_kind(phase, e),
    }
}
