//! byrequests: httpd's smooth weighted round robin, exact across threads.
//!
//! httpd, per request: every candidate does `lbstatus += lf`, the strictly greatest lbstatus
//! wins (ties to the earlier offered member), the winner does `lbstatus -= total`. From
//! lbstatus all 0 this is periodic: with the lfs divided by their gcd, one period is
//! `sum(lf)` picks, member i wins exactly `lf_i` of them, and lbstatus is back to 0. So the
//! sequence of one period is computed once per candidate set (into the caller's `PickCache`)
//! and pick n takes `cycle[n % len]`, n from one balancer-wide atomic counter: every window of
//! `len` consecutive picks, whichever threads make them, has the exact split.
//!
//! A period longer than `MAX_CYCLE` (e.g. many coprime load factors) is approximated: the
//! reduced lfs are scaled to sum to at most `MAX_CYCLE` (each at least 1), which keeps the
//! shares within about 1/4096 of the configured ones.

use std::sync::atomic::Ordering;

use super::{Balancer, Candidates, LbMethod, MAX_CYCLE, MAX_MEMBERS, PickCache};

/// httpd `lbmethod=byrequests`.
#[derive(Debug, Clone, Copy, Default)]
pub struct ByRequests;

impl LbMethod for ByRequests {
    fn name(&self) -> &'static str {
        "byrequests"
    }
    fn pick(&self, bal: &Balancer, candidates: Candidates, cache: &mut PickCache) -> Option<usize> {
        let cycle = cycle(bal, candidates, cache);
        if cycle.is_empty() {
            return None;
        }
        let n = bal.seq.fetch_add(1, Ordering::Relaxed);
        Some(usize::from(cycle[(n % cycle.len() as u64) as usize]))
    }
}

/// The byrequests cycle for `candidates`, recomputed only when the balancer or the candidate set
/// differs from the cached one. Never allocates once the cache exists (capacity `MAX_CYCLE`).
pub(crate) fn cycle<'c>(
    bal: &Balancer,
    candidates: Candidates,
    cache: &'c mut PickCache,
) -> &'c [u8] {
    if cache.balancer != bal.id() || cache.key != candidates || cache.cycle.is_empty() {
        let mut lfs = [(0u8, 0u32); MAX_MEMBERS];
        let mut n = 0;
        for i in candidates.iter() {
            lfs[n] = (i as u8, bal.members()[i].lf());
            n += 1;
        }
        build_cycle(&lfs[..n], &mut cache.cycle);
        cache.balancer = bal.id();
        cache.key = candidates;
    }
    &cache.cycle
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// Simulates one period of httpd's byrequests over `members` ((member index, lf) in offer
/// order) into `out`.
pub(crate) fn build_cycle(members: &[(u8, u32)], out: &mut Vec<u8>) {
    out.clear();
    if members.is_empty() {
        return;
    }
    let mut lf = [0u64; MAX_MEMBERS];
    let g = members
        .iter()
        .fold(0u64, |g, &(_, l)| gcd(g, u64::from(l.max(1))));
    for (k, &(_, l)) in members.iter().enumerate() {
        lf[k] = u64::from(l.max(1)) / g;
    }
    let lf = &mut lf[..members.len()];
    let mut total: u64 = lf.iter().sum();
    if total > MAX_CYCLE as u64 {
        // Scale down so that even with every lf rounded up to 1 the sum fits.
        let target = (MAX_CYCLE - members.len()) as u64;
        for l in lf.iter_mut() {
            *l = (*l * target / total).max(1);
        }
        let g = lf.iter().fold(0u64, |g, &l| gcd(g, l));
        for l in lf.iter_mut() {
            *l /= g;
        }
        total = lf.iter().sum();
    }
    let mut st = [0i64; MAX_MEMBERS];
    let st = &mut st[..members.len()];
    for _ in 0..total {
        let mut best = 0;
        for k in 0..members.len() {
            st[k] += lf[k] as i64;
            if st[k] > st[best] {
                best = k;
            }
        }
        st[best] -= total as i64;
        out.push(members[best].0);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::balance::testutil::*;
    use crate::conf::model::{LbMethodKind, status};

    fn picks(b: &Balancer, n: usize) -> Vec<usize> {
        let mut cache = PickCache::new();
        (0..n)
            .map(|_| b.pick(None, 0, 0, &mut cache).unwrap().index())
            .collect()
    }

    #[test]
    fn one_two_three_is_httpd_sequence() {
        let b = Balancer::new(lfs(LbMethodKind::ByRequests, &[1, 2, 3]));
        assert_eq!(picks(&b, 12), vec![2, 1, 0, 2, 1, 2, 2, 1, 0, 2, 1, 2]);
    }

    #[test]
    fn quarter_each_with_b_disabled() {
        let mut s = lfs(LbMethodKind::ByRequests, &[1, 1, 1, 1]);
        for m in &mut s.members {
            m.lbfactor = 25;
        }
        s.members[1].status = status::DISABLED;
        let b = Balancer::new(s);
        assert_eq!(picks(&b, 6), vec![0, 2, 3, 0, 2, 3]);
    }

    #[test]
    fn seventy_thirty() {
        let mut s = lfs(LbMethodKind::ByRequests, &[1, 1]);
        s.members[0].lbfactor = 70;
        s.members[1].lbfactor = 30;
        let b = Balancer::new(s);
        let got = picks(&b, 100);
        for w in got.chunks(10) {
            assert_eq!(w.iter().filter(|&&i| i == 0).count(), 7, "{w:?}");
        }
    }

    #[test]
    fn cycle_matches_live_simulation() {
        // Compare the precomputed cycle with a direct lbstatus simulation over two periods.
        for lfs in [
            &[100u32, 200, 300][..],
            &[150, 100],
            &[700, 300, 1000, 100],
            &[100],
        ] {
            let members: Vec<(u8, u32)> =
                lfs.iter().enumerate().map(|(i, &l)| (i as u8, l)).collect();
            let mut out = Vec::new();
            build_cycle(&members, &mut out);
            let total: i64 = lfs.iter().map(|&l| i64::from(l)).sum();
            let mut st = vec![0i64; lfs.len()];
            for n in 0..out.len() * 2 {
                let mut best = 0;
                for k in 0..lfs.len() {
                    st[k] += i64::from(lfs[k]);
                    if st[k] > st[best] {
                        best = k;
                    }
                }
                st[best] -= total;
                assert_eq!(
                    usize::from(out[n % out.len()]),
                    best,
                    "lfs {lfs:?} pick {n}"
                );
            }
            assert!(st.iter().all(|&s| s == 0));
        }
    }

    #[test]
    fn long_period_is_approximated_within_cap() {
        let members: Vec<(u8, u32)> = (0..64u8).map(|i| (i, 9000 + u32::from(i) * 13)).collect();
        let mut out = Vec::with_capacity(MAX_CYCLE);
        build_cycle(&members, &mut out);
        assert!(out.len() <= MAX_CYCLE && out.capacity() == MAX_CYCLE);
        for i in 0..64u8 {
            assert!(out.contains(&i));
        }
    }

    fn global_fairness(threads: usize) {
        let b = Arc::new(Balancer::new(lfs(LbMethodKind::ByRequests, &[1, 2, 3])));
        let per_thread = 12_000 / threads;
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                let b = Arc::clone(&b);
                std::thread::spawn(move || {
                    let mut cache = PickCache::new();
                    let mut counts = [0u32; 3];
                    for _ in 0..per_thread {
                        counts[b.pick(None, 0, 0, &mut cache).unwrap().index()] += 1;
                    }
                    counts
                })
            })
            .collect();
        let mut total = [0u32; 3];
        for h in handles {
            for (t, c) in total.iter_mut().zip(h.join().unwrap()) {
                *t += c;
            }
        }
        assert_eq!(total, [2_000, 4_000, 6_000]);
        let elected: Vec<u64> = b.members().iter().map(|m| m.elected()).collect();
        assert_eq!(elected, vec![2_000, 4_000, 6_000]);
    }

    #[test]
    fn global_fairness_two_threads() {
        global_fairness(2);
    }

    #[test]
    fn global_fairness_four_threads() {
        global_fairness(4);
    }
}
