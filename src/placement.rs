//! Which shard serves a new client connection. The kernel spreads connections over the shards'
//! SO_REUSEPORT listeners by a hash of their addresses, which leaves some shards with far more
//! than others: 50 connections over 8 listeners put 1.6 times the average on the busiest one
//! (median of 20 tries), so with keep-alive clients that shard saturates while the others wait.
//! A shard that accepts a connection while another shard serves fewer hands it over there
//! (`Backend::hand_over`), which HAProxy does between its threads and what nginx gets from
//! EPOLLEXCLUSIVE. This is per connection, never per request: the counts are touched at accept
//! and close only.

use std::os::fd::RawFd;
use std::sync::atomic::{AtomicI32, AtomicUsize, Ordering};

use crate::balance::CachePadded;
use crate::io::Mailbox;

/// What other shards know of one shard: each on its own cache line.
#[derive(Debug)]
pub struct ShardLoad {
    /// Client connections placed on this shard and not yet closed.
    conns: AtomicUsize,
    /// Its `Mailbox`, or -1 while it takes no connections from other shards (a backend
    /// without one, not started yet, or draining).
    mailbox: AtomicI32,
}

/// One `ShardLoad` per shard, indexed by shard.
pub type Loads = [CachePadded<ShardLoad>];

pub fn loads(shards: usize) -> Box<Loads> {
    (0..shards)
        .map(|_| {
            CachePadded(ShardLoad {
                conns: AtomicUsize::new(0),
                mailbox: AtomicI32::new(-1),
            })
        })
        .collect()
}

impl ShardLoad {
    pub fn set_mailbox(&self, m: Option<Mailbox>) {
        let raw: RawFd = m.map_or(-1, |m| m.0);
        self.mailbox.store(raw, Ordering::Release);
    }

    pub fn mailbox(&self) -> Option<Mailbox> {
        let raw = self.mailbox.load(Ordering::Acquire);
        (raw >= 0).then_some(Mailbox(raw))
    }

    /// A connection placed here closed (or never started).
    pub fn closed(&self) {
        self.conns.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Places a connection that shard `from` accepted: on the shard with the fewest connections
/// if that has fewer than `from` and a mailbox, else on `from`. Counts it there at once, so
/// that accepts racing on other shards see it.
pub fn place(loads: &Loads, from: usize) -> usize {
    let mut best = from;
    let mut least = loads[from].conns.load(Ordering::Relaxed);
    for (i, l) in loads.iter().enumerate() {
        let n = l.conns.load(Ordering::Relaxed);
        if n < least && l.mailbox.load(Ordering::Relaxed) >= 0 {
            (best, least) = (i, n);
        }
    }
    loads[best].conns.fetch_add(1, Ordering::Relaxed);
    best
}

/// A hand-over from `from` to `to` failed: the connection stays on `from`.
pub fn stayed(loads: &Loads, to: usize, from: usize) {
    loads[to].closed();
    loads[from].conns.fetch_add(1, Ordering::Relaxed);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(l: &Loads) -> Vec<usize> {
        l.iter().map(|s| s.conns.load(Ordering::Relaxed)).collect()
    }

    fn open(n: usize) -> Box<Loads> {
        let l = loads(n);
        for (i, s) in l.iter().enumerate() {
            s.set_mailbox(Some(Mailbox(100 + i as RawFd)));
        }
        l
    }

    #[test]
    fn connections_all_accepted_by_one_shard_spread_evenly() {
        let l = open(4);
        let placed: Vec<usize> = (0..10).map(|_| place(&l, 2)).collect();
        assert_eq!(placed[0], 2, "a tie stays where it was accepted");
        assert_eq!(counts(&l), [3, 2, 3, 2]);
    }

    #[test]
    fn closing_makes_a_shard_the_next_choice() {
        let l = open(3);
        for from in [0, 1, 2, 0, 1, 2] {
            assert_eq!(place(&l, from), from, "balanced: each keeps its own");
        }
        l[1].closed();
        assert_eq!(place(&l, 0), 1);
        assert_eq!(counts(&l), [2, 2, 2]);
    }

    #[test]
    fn shards_without_a_mailbox_get_nothing_handed_over() {
        let l = open(3);
        l[1].set_mailbox(None);
        for _ in 0..4 {
            place(&l, 0);
        }
        assert_eq!(counts(&l), [2, 0, 2]);
        assert_eq!(l[1].mailbox(), None);
        assert_eq!(l[2].mailbox(), Some(Mailbox(102)));
    }

    #[test]
    fn a_failed_hand_over_counts_the_connection_where_it_stayed() {
        let l = open(2);
        place(&l, 0);
        assert_eq!(place(&l, 0), 1);
        stayed(&l, 1, 0);
        assert_eq!(counts(&l), [2, 0]);
    }
}
