//! The per-shard keep-alive pool (`enablereuse=on`): one LIFO stack of idle connections per
//! member, so the hottest connection is reused and cold ones age out. Owned by one shard, so no
//! locks. A connection comes back only after a complete response with no leftover bytes (the
//! caller's decision); on checkout it must pass a liveness peek and be younger than `ttl`.
//!
//! The pool also counts every member connection the shard has open or is opening (`Ledger`),
//! so that a shard keeps no more of them than it has client connections: each client
//! connection has at most one request in flight, so that many member connections are enough.
//! Without the bound, per-member pools each grow to their member's peak share of the requests
//! in flight (byrequests alternates per request, so with 50 in flight one member at times has
//! 26), and together they exceed the client count. At the bound, a request whose member has no
//! idle connection waits briefly for one of that member's busy connections to come back.

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
/// bound. Long enough that a member's spare connection used at its peaks is kept: at 100 ms,
/// 1 MiB responses (tens of ms each) made the two members trade connections back and forth
/// (66 opened for 50 clients).
const COLD: Duration = Duration::from_secs(1);

/// Requests waiting at the bound. One per shard, shared by its pools (a reload's old one
/// too): woken when a connection comes back or closes, and by the shard's housekeeping tick,
/// so that a wait ends at its deadline even when nothing else moves.
#[derive(Default)]
pub struct Waiters {
    list: RefCell<Vec<Waker>>,
    /// Swapped with `list` to wake them all without allocating.
    waking: RefCell<Vec<Waker>>,
}

impl Waiters {
    pub fn wake_all(&self) {
        if self.list.borrow().is_empty() {
            return;
        }
        let mut waking = self.waking.borrow_mut();
        std::mem::swap(&mut *waking, &mut *self.list.borrow_mut());
        for w in waking.drain(..) {
            w.wake();
        }
    }
}

/// The shard's member connections, open or opening, per pool slot.
struct Ledger {
    open: Vec<Cell<u32>>,
    total: Cell<usize>,
    waiters: Rc<Waiters>,
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
        self.ledger.total.set(self.ledger.total.get() - 1);
        self.ledger.waiters.wake_all();
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
    pub fn new(members: usize, waiters: Rc<Waiters>) -> Pool<C> {
        Pool {
            stacks: (0..members).map(|_| Vec::new()).collect(),
            ledger: Rc::new(Ledger {
                open: (0..members).map(|_| Cell::new(0)).collect(),
                total: Cell::new(0),
                waiters,
            }),
        }
    }

    /// The newest idle connection that is still alive and younger than `ttl` (stale ones are
    /// closed on the way); else a ticket to open one. With a `waker`, None when the shard
    /// already holds `bound` member connections, some of this member's are busy and no idle
    /// one is cold: then the waker runs when a connection comes back or closes.
    pub fn lease(
        &mut self,
        key: MemberKey,
        ttl: Option<Duration>,
        now: Instant,
        bound: usize,
        waker: Option<&Waker>,
    ) -> Option<Lease<C>> {
        let stack = &mut self.stacks[key.slot];
        while let Some(idle) = stack.pop() {
            let expired = ttl.is_some_and(|ttl| now.duration_since(idle.since) >= ttl);
            if !expired && idle.conn.is_idle_alive() {
                return Some(Lease::Reuse(idle.conn));
            }
        }
        // The stack is empty, so every counted connection of this member is busy (or opening).
        let busy = self.ledger.open[key.slot].get() > 0;
        if let Some(waker) = waker
            && busy
            && self.ledger.total.get() >= bound
            && !self.give_up_cold(now)
        {
            self.ledger.waiters.list.borrow_mut().push(waker.clone());
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
        self.ledger.total.set(self.ledger.total.get() + 1);
        Ticket {
            slot: key.slot,
            ledger: self.ledger.clone(),
        }
    }

    /// Member connections open or opening in this shard.
    pub fn open(&self) -> usize {
        self.ledger.total.get()
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
        self.ledger.waiters.wake_all();
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
        let waiters = Rc::new(Waiters::default());
        let mut pool = Pool::<Fake>::new(2, waiters.clone());
        let t0 = Instant::now();
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(count.clone());
        let a = opened(&mut pool, A, t0);
        let b = opened(&mut pool, B, t0);
        pool.checkin(B, b, 8, t0);
        // Under the bound, or without a waker (the wait ran out): open.
        assert!(matches!(
            pool.lease(A, None, t0, 3, Some(&waker)),
            Some(Lease::Open(_))
        ));
        assert!(matches!(
            pool.lease(A, None, t0, 2, None),
            Some(Lease::Open(_))
        ));
        // Bound 2 reached, A's only connection busy, B's idle one warm: wait.
        assert!(pool.lease(A, None, t0, 2, Some(&waker)).is_none());
        assert_eq!(count.0.load(Ordering::Relaxed), 0);
        pool.checkin(A, a, 8, t0);
        assert_eq!(
            count.0.load(Ordering::Relaxed),
            1,
            "the checkin woke the waiter"
        );
        assert!(matches!(
            pool.lease(A, None, t0, 2, Some(&waker)),
            Some(Lease::Reuse(_))
        ));
        // The housekeeping tick wakes waiters too.
        let a = opened(&mut pool, A, t0);
        assert!(pool.lease(A, None, t0, 2, Some(&waker)).is_none());
        waiters.wake_all();
        assert_eq!(count.0.load(Ordering::Relaxed), 2);
        drop(a);
    }

    #[test]
    fn a_member_with_nothing_busy_opens_at_the_bound() {
        let mut pool = Pool::<Fake>::new(2, Rc::default());
        let t0 = Instant::now();
        let waker = Waker::from(Arc::new(Count(AtomicUsize::new(0))));
        let b = opened(&mut pool, B, t0);
        pool.checkin(B, b, 8, t0);
        // Waiting would wait for nothing: A has no connection to come back.
        assert!(matches!(
            pool.lease(A, None, t0, 1, Some(&waker)),
            Some(Lease::Open(_))
        ));
    }

    #[test]
    fn a_cold_idle_connection_gives_up_its_place() {
        let mut pool = Pool::<Fake>::new(2, Rc::default());
        let t0 = Instant::now();
        let waker = Waker::from(Arc::new(Count(AtomicUsize::new(0))));
        let _a = opened(&mut pool, A, t0);
        let b = opened(&mut pool, B, t0);
        pool.checkin(B, b, 8, t0);
        let later = t0 + COLD;
        match pool.lease(A, None, later, 2, Some(&waker)) {
            Some(Lease::Open(_t)) => assert_eq!(pool.open(), 2, "B's closed, A's opening"),
            _ => panic!("expected B's cold connection to make room"),
        }
        assert!(pool.stacks[B.slot].is_empty());
    }
}
