//! The per-shard keep-alive pool (`enablereuse=on`): one LIFO stack of idle connections per
//! member, so the hottest connection is reused and cold ones age out. Owned by one shard, so no
//! locks. A connection comes back only after a complete response with no leftover bytes (the
//! caller's decision); on checkout it must pass a liveness peek and be younger than `ttl`.
//!
//! The pool also counts every member connection the shard has open or is opening (`Bound`),
//! so that a shard keeps no more of them than it has client connections with a request in
//! progress: each has at most one request in flight, so that many member connections are
//! enough.
//! Without the bound, per-member pools each grow to their member's peak share of the requests
//! in flight (byrequests alternates per request, so with 50 in flight one member at times has
//! 26), and together they exceed the client count. At the bound, a request whose member has no
//! idle connection waits briefly for one of that member's busy connections to come back, or
//! takes the place of a connection idle for long elsewhere. The bound is soft: a request opens
//! one more when its member has no connection at all (nothing would come back; with fewer
//! clients than members each member still needs one), or when its wait ran out.

use std::cell::{Cell, RefCell};
use std::ops::Deref;
use std::rc::Rc;
use std::task::Waker;
use std::time::{Duration, Instant};

use crate::io::Conn;

/// What the pool needs of a connection: the check an idle one passes before reuse.
pub trait IdleCheck {
    /// See `Conn::is_idle_alive`.
    fn is_idle_alive(&self) -> bool;
}

impl<C: Conn> IdleCheck for C {
    fn is_idle_alive(&self) -> bool {
        Conn::is_idle_alive(self)
    }
}

/// ringproxy's cap on idle connections per member per shard when `max=` is not given.
pub const DEFAULT_MAX_IDLE: usize = 1024;

/// How long a request waits at the bound for its member's next idle connection before it
/// opens one more anyway. Under load a busy connection comes back within a fraction of one
/// response time; this only caps the wait when the member's responses are slow (at 10 ms,
/// 1 MiB responses sometimes ran past it). Checked when a connection comes back or closes,
/// and at the shard's 50 ms tick.
pub const BOUND_WAIT: Duration = Duration::from_millis(50);

/// An idle connection unused this long is closed when another member needs room under the
/// bound. Long enough that a spare connection a member uses only at its peaks is kept: each
/// trade costs a connect, and with members of equal load they would trade back and forth (at
/// 100 ms, 1 MiB responses opened 66 connections for 50 clients; at 1 s, 201 for 200 clients
/// in some 5 s runs).
const COLD: Duration = Duration::from_secs(10);

/// The shard-wide side of the bound, shared by the shard's pools (a reload's old one too):
/// the member connections open or opening in all of them, and the requests waiting at the
/// bound, woken when a connection comes back or closes, and by the shard's housekeeping tick
/// so that a wait ends soon after its deadline even when nothing else moves.
#[derive(Default)]
pub struct Bound {
    open: Cell<usize>,
    waiters: RefCell<Vec<Waker>>,
    /// Swapped with `waiters` to wake them all without allocating.
    waking: RefCell<Vec<Waker>>,
}

impl Bound {
    pub fn wake_all(&self) {
        if self.waiters.borrow().is_empty() {
            return;
        }
        let mut waking = self.waking.borrow_mut();
        std::mem::swap(&mut *waking, &mut *self.waiters.borrow_mut());
        for w in waking.drain(..) {
            w.wake();
        }
    }
}

/// One pool's member connections, open or opening, and its requests waiting, per slot.
struct Ledger {
    open: Vec<Cell<u32>>,
    waiting: Vec<Cell<u32>>,
    shard: Rc<Bound>,
}

/// A request's place in its member's queue at the bound. While it waits, a later request for
/// the member waits behind it instead of taking the connection that came back for it (the
/// waiters are woken in the order they came, so the first one gets it).
#[derive(Default)]
pub struct Place {
    queued: Option<(usize, Rc<Ledger>)>,
}

impl Drop for Place {
    fn drop(&mut self) {
        if let Some((slot, ledger)) = &self.queued {
            let w = &ledger.waiting[*slot];
            w.set(w.get() - 1);
        }
    }
}

/// One counted place in the ledger: held while a connection is being opened, then by the
/// connection itself (`Counted`). Dropping it gives the place back and wakes the waiters.
pub struct Ticket {
    slot: usize,
    ledger: Rc<Ledger>,
}

impl Ticket {
    /// The connection this ticket was taken for, now open.
    pub fn admit<C>(self, conn: C) -> Counted<C> {
        Counted {
            conn,
            _ticket: self,
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let open = &self.ledger.open[self.slot];
        open.set(open.get() - 1);
        let shard = &self.ledger.shard;
        shard.open.set(shard.open.get() - 1);
        shard.wake_all();
    }
}

/// A member connection counted in its shard's ledger until it is dropped.
pub struct Counted<C> {
    conn: C,
    _ticket: Ticket,
}

impl<C> Deref for Counted<C> {
    type Target = C;
    fn deref(&self) -> &C {
        &self.conn
    }
}

struct Idle<C> {
    conn: Counted<C>,
    since: Instant,
}

pub struct Pool<C> {
    /// Indexed by `MemberKey::slot`.
    stacks: Vec<Vec<Idle<C>>>,
    ledger: Rc<Ledger>,
}

/// Where a member's stack sits: the member's position over all balancers, in config order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemberKey {
    pub slot: usize,
}

/// What `Pool::lease` found for a request.
pub enum Lease<C> {
    /// An idle connection that passed its checks.
    Reuse(Counted<C>),
    /// None idle: open one, counted by this ticket.
    Open(Ticket),
}

impl<C: IdleCheck> Pool<C> {
    pub fn new(members: usize, shard: Rc<Bound>) -> Pool<C> {
        Pool {
            stacks: (0..members).map(|_| Vec::new()).collect(),
            ledger: Rc::new(Ledger {
                open: (0..members).map(|_| Cell::new(0)).collect(),
                waiting: (0..members).map(|_| Cell::new(0)).collect(),
                shard,
            }),
        }
    }

    /// The newest idle connection that is still alive and younger than `ttl` (stale ones are
    /// closed on the way); else a ticket to open one. With `wait` (a waker and the request's
    /// place), None when the shard already holds `bound` member connections, this member has
    /// some that will come back and no idle one elsewhere is cold: then the request takes its
    /// place in the member's queue and the waker runs when a connection comes back or closes.
    /// A request that is not queued yet leaves idle connections to those that are.
    pub fn lease(
        &mut self,
        key: MemberKey,
        ttl: Option<Duration>,
        now: Instant,
        bound: usize,
        wait: Option<(&Waker, &mut Place)>,
    ) -> Option<Lease<C>> {
        let slot = key.slot;
        // Waiters re-poll in the order they came, so any of them may take what is idle; a
        // newcomer only when nobody waits.
        let may_take = match &wait {
            None => true,
            Some((_, place)) => place.queued.is_some() || self.ledger.waiting[slot].get() == 0,
        };
        if may_take {
            let stack = &mut self.stacks[slot];
            while let Some(idle) = stack.pop() {
                let expired = ttl.is_some_and(|ttl| now.duration_since(idle.since) >= ttl);
                if !expired && idle.conn.is_idle_alive() {
                    return Some(Lease::Reuse(idle.conn));
                }
            }
        }
        // Something of this member's will come back: a busy connection, or an idle one that a
        // request ahead is about to take (and will bring back).
        let will_return = self.ledger.open[slot].get() > 0;
        if let Some((waker, place)) = wait
            && will_return
            && self.ledger.shard.open.get() >= bound
            && !self.give_up_cold(now)
        {
            if place.queued.is_none() {
                let w = &self.ledger.waiting[slot];
                w.set(w.get() + 1);
                place.queued = Some((slot, self.ledger.clone()));
            }
            self.ledger.shard.waiters.borrow_mut().push(waker.clone());
            return None;
        }
        Some(Lease::Open(self.ticket(key)))
    }

    /// Closes the connection that has been idle longest if that is over `COLD`, making room
    /// under the bound: a member that needs more connections takes them from one that no
    /// longer uses all of its own, instead of waiting behind its own busy ones for good.
    fn give_up_cold(&mut self, now: Instant) -> bool {
        // The bottom of a LIFO stack is its longest idle connection.
        let coldest = (self.stacks.iter().enumerate())
            .filter_map(|(slot, stack)| stack.first().map(|i| (i.since, slot)))
            .min();
        match coldest {
            Some((since, slot)) if now.duration_since(since) >= COLD => {
                self.stacks[slot].remove(0);
                true
            }
            _ => false,
        }
    }

    /// A ticket to open a connection to the member whatever the bound (a replay that needs a
    /// fresh connection, a member without reuse, a wait that ran out).
    pub fn ticket(&self, key: MemberKey) -> Ticket {
        let open = &self.ledger.open[key.slot];
        open.set(open.get() + 1);
        let shard = &self.ledger.shard;
        shard.open.set(shard.open.get() + 1);
        Ticket {
            slot: key.slot,
            ledger: self.ledger.clone(),
        }
    }

    /// Member connections open or opening in this shard.
    pub fn open(&self) -> usize {
        self.ledger.shard.open.get()
    }

    /// Returns a connection after a complete response; beyond `max` the oldest is closed.
    pub fn checkin(&mut self, key: MemberKey, conn: Counted<C>, max: usize, now: Instant) {
        if max == 0 {
            return;
        }
        let stack = &mut self.stacks[key.slot];
        if stack.len() >= max {
            stack.remove(0);
        }
        stack.push(Idle { conn, since: now });
        self.ledger.shard.wake_all();
    }

    /// Closes idle connections older than their member's ttl (`ttl_of(slot)`) and those the
    /// member has closed (or sent stray bytes on), so they do not sit in CLOSE_WAIT below the
    /// top of a stack; run from the shard's housekeeping tick.
    pub fn sweep(&mut self, now: Instant, ttl_of: impl Fn(usize) -> Option<Duration>) {
        for (slot, stack) in self.stacks.iter_mut().enumerate() {
            let ttl = ttl_of(slot);
            stack.retain(|i| {
                ttl.is_none_or(|t| now.duration_since(i.since) < t) && i.conn.is_idle_alive()
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Wake;

    struct Fake;
    impl IdleCheck for Fake {
        fn is_idle_alive(&self) -> bool {
            true
        }
    }

    struct Count(AtomicUsize);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    const A: MemberKey = MemberKey { slot: 0 };
    const B: MemberKey = MemberKey { slot: 1 };

    fn opened(pool: &mut Pool<Fake>, key: MemberKey, now: Instant) -> Counted<Fake> {
        match pool.lease(key, None, now, usize::MAX, None) {
            Some(Lease::Open(t)) => t.admit(Fake),
            _ => panic!("expected a ticket"),
        }
    }

    /// A pool over members A and B holding one idle connection to B, and a waker that counts
    /// its wakes.
    fn with_idle_b(shard: Rc<Bound>) -> (Pool<Fake>, Instant, Arc<Count>, Waker) {
        let mut pool = Pool::new(2, shard);
        let t0 = Instant::now();
        let b = opened(&mut pool, B, t0);
        pool.checkin(B, b, 8, t0);
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(count.clone());
        (pool, t0, count, waker)
    }

    #[test]
    fn tickets_and_connections_are_counted_until_dropped() {
        let mut pool = Pool::<Fake>::new(2, Rc::default());
        let t0 = Instant::now();
        let a = opened(&mut pool, A, t0);
        let ticket = pool.ticket(B);
        assert_eq!(pool.open(), 2);
        drop(ticket); // a connect that failed
        assert_eq!(pool.open(), 1);
        pool.checkin(A, a, 8, t0);
        assert_eq!(pool.open(), 1, "an idle connection still counts");
        assert!(matches!(
            pool.lease(A, None, t0, 1, None),
            Some(Lease::Reuse(_))
        ));
        assert_eq!(pool.open(), 0, "the reused connection was dropped here");
    }

    #[test]
    fn at_the_bound_a_busy_member_waits_and_a_checkin_wakes_it() {
        let shard = Rc::new(Bound::default());
        let (mut pool, t0, count, waker) = with_idle_b(shard.clone());
        let a = opened(&mut pool, A, t0);
        // Under the bound, or without a waker (the wait ran out): open.
        assert!(matches!(
            pool.lease(A, None, t0, 3, Some((&waker, &mut Place::default()))),
            Some(Lease::Open(_))
        ));
        assert!(matches!(
            pool.lease(A, None, t0, 2, None),
            Some(Lease::Open(_))
        ));
        // Bound 2 reached, A's only connection busy, B's idle one warm: wait.
        assert!(
            pool.lease(A, None, t0, 2, Some((&waker, &mut Place::default())))
                .is_none()
        );
        assert_eq!(count.0.load(Ordering::Relaxed), 0);
        pool.checkin(A, a, 8, t0);
        assert_eq!(
            count.0.load(Ordering::Relaxed),
            1,
            "the checkin woke the waiter"
        );
        assert!(matches!(
            pool.lease(A, None, t0, 2, Some((&waker, &mut Place::default()))),
            Some(Lease::Reuse(_))
        ));
        // The housekeeping tick wakes waiters too.
        let a = opened(&mut pool, A, t0);
        assert!(
            pool.lease(A, None, t0, 2, Some((&waker, &mut Place::default())))
                .is_none()
        );
        shard.wake_all();
        assert_eq!(count.0.load(Ordering::Relaxed), 2);
        drop(a);
    }

    #[test]
    fn a_later_request_waits_behind_one_already_waiting() {
        let (mut pool, t0, _, waker) = with_idle_b(Rc::default());
        let a = opened(&mut pool, A, t0);
        let mut first = Place::default();
        assert!(
            pool.lease(A, None, t0, 2, Some((&waker, &mut first)))
                .is_none()
        );
        pool.checkin(A, a, 8, t0);
        // The connection came back for `first`: a newcomer queues instead of taking it.
        let mut later = Place::default();
        assert!(
            pool.lease(A, None, t0, 2, Some((&waker, &mut later)))
                .is_none()
        );
        let got = pool.lease(A, None, t0, 2, Some((&waker, &mut first)));
        assert!(matches!(got, Some(Lease::Reuse(_))));
        drop(first);
        // `later` is first in line now, and A's connection is busy again: it waits on.
        assert!(
            pool.lease(A, None, t0, 2, Some((&waker, &mut later)))
                .is_none()
        );
        assert_eq!(pool.ledger.waiting[A.slot].get(), 1);
        drop(later);
        assert_eq!(pool.ledger.waiting[A.slot].get(), 0);
        drop(got);
    }

    /// After a reload the old generation's pool still holds connections: they count too.
    #[test]
    fn the_count_spans_the_shards_pools() {
        let shard = Rc::new(Bound::default());
        let mut old = Pool::<Fake>::new(2, shard.clone());
        let (mut pool, t0, _, waker) = with_idle_b(shard);
        let _busy_old = opened(&mut old, A, t0);
        let _busy_new = opened(&mut pool, A, t0);
        assert_eq!(pool.open(), 3);
        assert!(
            pool.lease(A, None, t0, 3, Some((&waker, &mut Place::default())))
                .is_none()
        );
    }

    #[test]
    fn a_member_with_nothing_busy_opens_at_the_bound() {
        let (mut pool, t0, _, waker) = with_idle_b(Rc::default());
        // Waiting would wait for nothing: A has no connection to come back.
        assert!(matches!(
            pool.lease(A, None, t0, 1, Some((&waker, &mut Place::default()))),
            Some(Lease::Open(_))
        ));
    }

    #[test]
    fn a_cold_idle_connection_gives_up_its_place() {
        let (mut pool, t0, _, waker) = with_idle_b(Rc::default());
        let _a = opened(&mut pool, A, t0);
        let later = t0 + COLD;
        match pool.lease(A, None, later, 2, Some((&waker, &mut Place::default()))) {
            Some(Lease::Open(_t)) => assert_eq!(pool.open(), 2, "B's closed, A's opening"),
            _ => panic!("expected B's cold connection to make room"),
        }
        assert!(pool.stacks[B.slot].is_empty());
    }
}
