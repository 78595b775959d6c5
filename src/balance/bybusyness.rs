//! bybusyness: the member with the fewest in-flight requests (`busy`) wins; among equal busy,
//! the byrequests order decides: the cycle is walked from the balancer-wide counter's position
//! and the first member with the minimal busy is taken. With busy always 0 (sequential load)
//! this is exactly byrequests, as in httpd.

use std::sync::atomic::Ordering;

use super::byrequests::cycle;
use super::{Balancer, Candidates, LbMethod, MAX_MEMBERS, PickCache};

/// httpd `lbmethod=bybusyness`.
#[derive(Debug, Clone, Copy, Default)]
pub struct ByBusyness;

impl LbMethod for ByBusyness {
    fn name(&self) -> &'static str {
        "bybusyness"
    }
    fn pick(&self, bal: &Balancer, candidates: Candidates, cache: &mut PickCache) -> Option<usize> {
        // Snapshot busy once per candidate so the walk compares consistent values.
        let mut busy = [u64::MAX; MAX_MEMBERS];
        let mut min = u64::MAX;
        for i in candidates.iter() {
            busy[i] = bal.members()[i].busy();
            min = min.min(busy[i]);
        }
        let cycle = cycle(bal, candidates, cache);
        if cycle.is_empty() {
            return None;
        }
        let len = cycle.len();
        let start = (bal.seq.fetch_add(1, Ordering::Relaxed) % len as u64) as usize;
        (0..len)
            .map(|k| usize::from(cycle[(start + k) % len]))
            .find(|&i| busy[i] == min)
    }
}

#[cfg(test)]
mod tests {
    use crate::balance::testutil::*;
    use crate::balance::{Balancer, PickCache};
    use crate::conf::model::LbMethodKind;

    #[test]
    fn sequential_equals_byrequests() {
        let b = Balancer::new(lfs(LbMethodKind::ByBusyness, &[1, 2, 3]));
        let mut cache = PickCache::new();
        let got: Vec<usize> = (0..12)
            .map(|_| b.pick(None, 0, 0, &mut cache).unwrap().index())
            .collect();
        assert_eq!(got, vec![2, 1, 0, 2, 1, 2, 2, 1, 0, 2, 1, 2]);
    }

    #[test]
    fn concurrent_held_picks_go_to_least_busy() {
        let b = Balancer::new(lfs(LbMethodKind::ByBusyness, &[1, 2, 3]));
        let mut cache = PickCache::new();
        let mut held = Vec::new();
        for _ in 0..6 {
            held.push(b.pick(None, 0, 0, &mut cache).unwrap());
        }
        let got: Vec<usize> = held.iter().map(|p| p.index()).collect();
        // c b a c b a
        assert_eq!(got, vec![2, 1, 0, 2, 1, 0]);
        let busy: Vec<u64> = b.members().iter().map(|m| m.busy()).collect();
        assert_eq!(busy, vec![2, 2, 2]);
        drop(held);
        assert!(b.members().iter().all(|m| m.busy() == 0));
    }

    #[test]
    fn least_busy_wins_over_weight() {
        let b = Balancer::new(lfs(LbMethodKind::ByBusyness, &[1, 1, 10]));
        let mut cache = PickCache::new();
        let c = b.pick(None, 0, 0, &mut cache).unwrap();
        assert_eq!(c.index(), 2);
        // While c is busy, a and b (busy 0) are chosen.
        let x = b.pick(None, 0, 0, &mut cache).unwrap();
        let y = b.pick(None, 0, 0, &mut cache).unwrap();
        let mut xy = [x.index(), y.index()];
        xy.sort();
        assert_eq!(xy, [0, 1]);
        drop(c);
        assert_eq!(b.pick(None, 0, 0, &mut cache).unwrap().index(), 2);
    }
}
