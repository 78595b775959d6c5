//! The per-shard keep-alive pool (`enablereuse=on`): one LIFO stack of idle connections per
//! member, so the hottest connection is reused and cold ones age out. Owned by one shard, so no
//! locks. A connection comes back only after a complete response with no leftover bytes (the
//! caller's decision); on checkout it must pass a liveness peek and be younger than `ttl`.

use std::time::{Duration, Instant};

use crate::io::Conn;

/// ringproxy's cap on idle connections per member per shard when `max=` is not given.
pub const DEFAULT_MAX_IDLE: usize = 1024;

struct Idle<C> {
    conn: C,
    since: Instant,
}

pub struct Pool<C> {
    /// Indexed by `MemberKey::slot`.
    stacks: Vec<Vec<Idle<C>>>,
}

/// Where a member's stack sits: the member's position over all balancers, in config order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemberKey {
    pub slot: usize,
}

impl<C: Conn> Pool<C> {
    pub fn new(members: usize) -> Pool<C> {
        Pool {
            stacks: (0..members).map(|_| Vec::new()).collect(),
        }
    }

    /// The newest idle connection that is still alive and younger than `ttl`; stale ones are
    /// closed on the way.
    pub fn checkout(&mut self, key: MemberKey, ttl: Option<Duration>, now: Instant) -> Option<C> {
        let stack = &mut self.stacks[key.slot];
        while let Some(idle) = stack.pop() {
            let expired = ttl.is_some_and(|ttl| now.duration_since(idle.since) >= ttl);
            if !expired && idle.conn.is_idle_alive() {
                return Some(idle.conn);
            }
        }
        None
    }

    /// Returns a connection after a complete response; beyond `max` the oldest is closed.
    pub fn checkin(&mut self, key: MemberKey, conn: C, max: usize, now: Instant) {
        let stack = &mut self.stacks[key.slot];
        if max == 0 {
            return;
        }
        if stack.len() >= max {
            stack.remove(0);
        }
        stack.push(Idle { conn, since: now });
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
