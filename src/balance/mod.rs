//! Balancers: httpd mod_proxy_balancer member selection, shared by all shards without locks.
//!
//! A `Balancer` is built once from a `BalancerSpec` and shared as `Arc<Balancer>`. Every member
//! counter (status flags, error time, busy, elected, bytes) is an atomic on its own cache line.
//! The request path (`sticky_route`, `pick`, dropping the `Pick`) takes no lock and, once a
//! shard's `PickCache` is warm, allocates nothing.
//!
//! Selection, in the order httpd's `proxy_balancer_pre_request` runs it:
//! 1. forced recovery: when every member is in error (E) and `forcerecovery` is On, E is cleared
//!    on all of them;
//! 2. sticky route (`sticky.rs`): the usable member with that route, following `redirect=`;
//!    `nofailover` gives `NoMember::RouteUnavailable` when the route names an unusable member;
//! 3. lbset tiers (`candidates`): the first lbset that has a usable regular member, hot spare or
//!    hot standby gives the candidate set;
//! 4. the lbmethod (`LbMethod`) picks one candidate: `byrequests.rs`, `bytraffic.rs`,
//!    `bybusyness.rs`.
//!
//! byrequests is httpd's smooth weighted round robin, made exact across threads: the periodic
//! sequence it produces for a candidate set is precomputed (in the caller's `PickCache`) and one
//! balancer-wide atomic counter indexes it.
//!
//! # Deviations from httpd (for the README)
//! - byrequests and bybusyness: the smooth weighted round robin sequence is precomputed per
//!   candidate set and indexed by one balancer-wide counter, so the split is exact across
//!   threads. Sticky hits do not move it (httpd adds lf to every usable member and subtracts the
//!   total from the routed one, so sticky traffic shifts httpd's next picks). When the
//!   candidate set changes (a member goes down, comes back, is excluded by failover), the new
//!   cycle is entered at the counter's current position modulo its length, not from httpd's
//!   frozen per-member lbstatus; failover picks also consume a counter position.
//! - byrequests: a period (sum of the lfs over their gcd) longer than `MAX_CYCLE` (4096) picks
//!   is approximated by scaling the load factors down (each share within about 1/4096).
//! - bybusyness: ties on busy go to the first minimal member found walking the byrequests cycle
//!   from the counter; under concurrency httpd's lbstatus would drift differently (same result
//!   for the documented examples: sequential, and 6 held requests with lf 1,2,3).
//! - failover: members already tried by the request (`exclude`) count as unusable (and as
//!   unusable regulars for hot spares); httpd relies on E alone, so after a forced recovery it
//!   could go back to the same member.
//! - a balancer-manager load factor edit (httpd sets lbstatus = lf) has no equivalent yet.
//! - balancer `timeout=` (wait for a usable member, retrying every timeout/100) is the caller's
//!   loop around `pick`.
//! - at most 64 members per balancer (`MAX_MEMBERS`).

mod bybusyness;
mod byrequests;
mod bytraffic;
mod member;
mod sticky;

use std::fmt;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

pub use bybusyness::ByBusyness;
pub use byrequests::ByRequests;
pub use bytraffic::ByTraffic;
pub use member::{CachePadded, Member, NOT_USABLE};
pub use sticky::Sticky;

use crate::conf::model::{BalancerSpec, LbMethodKind, MemberSpec, status};

/// Most members one balancer may have (candidate sets are u64 bit masks).
pub const MAX_MEMBERS: usize = 64;

/// Longest precomputed byrequests cycle. Longer periods are approximated (see `byrequests.rs`).
pub const MAX_CYCLE: usize = 4096;

/// `t` in milliseconds on a monotonic clock shared by all threads (since a process-wide
/// `Instant`; 0 before it). Callers pass the event loop's clock (`Backend::now`).
pub fn ms_at(t: Instant) -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    let since = t.saturating_duration_since(*START.get_or_init(Instant::now));
    u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
}

/// Why `pick` found no member; the caller answers 503 and logs the matching message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoMember {
    /// The balancer has no members (httpd AH01171 "No workers in balancer").
    Empty,
    /// No usable member in any lbset (AH01170 "All workers are in error state").
    AllInError,
    /// `nofailover=On` and the sticky route names a member that is unusable
    /// (AH01167 "All workers are in error state for route (%s)").
    RouteUnavailable,
}

impl fmt::Display for NoMember {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NoMember::Empty => "No workers in balancer",
            NoMember::AllInError => "All workers are in error state",
            NoMember::RouteUnavailable => "All workers are in error state for route",
        })
    }
}

impl std::error::Error for NoMember {}

/// A candidate set: the members offered to the lbmethod, in httpd's offer order: the members of
/// `head` in config order, then those of `tail` in config order (hot spares are offered after
/// the regular members of their lbset). Ties go to the earlier offered member.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Candidates {
    pub head: u64,
    pub tail: u64,
}

impl Candidates {
    pub fn is_empty(&self) -> bool {
        self.head | self.tail == 0
    }
    pub fn len(&self) -> usize {
        (self.head.count_ones() + self.tail.count_ones()) as usize
    }
    pub fn mask(&self) -> u64 {
        self.head | self.tail
    }
    /// Member indices in offer order.
    pub fn iter(&self) -> impl Iterator<Item = usize> + use<> {
        Bits(self.head).chain(Bits(self.tail))
    }
}

/// Iterates the set bits of a mask, lowest first.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Bits(pub u64);

impl Iterator for Bits {
    type Item = usize;
    fn next(&mut self) -> Option<usize> {
        if self.0 == 0 {
            return None;
        }
        let i = self.0.trailing_zeros() as usize;
        self.0 &= self.0 - 1;
        Some(i)
    }
}

/// Per-shard, per-balancer scratch owned by the caller and passed as `&mut` to `pick`: the
/// byrequests cycle for the last candidate set. Never shared between threads. Build it once with
/// `PickCache::new()` (it reserves `MAX_CYCLE` bytes) and reuse it for every request to the same
/// balancer; using it for another balancer only costs a recomputation.
#[derive(Debug)]
pub struct PickCache {
    balancer: u64,
    key: Candidates,
    cycle: Vec<u8>,
}

impl PickCache {
    pub fn new() -> PickCache {
        PickCache {
            balancer: 0,
            key: Candidates::default(),
            cycle: Vec::with_capacity(MAX_CYCLE),
        }
    }

    /// The cycle for the cached candidate set (for tests and diagnostics).
    pub fn cycle(&self) -> &[u8] {
        &self.cycle
    }
}

impl Default for PickCache {
    fn default() -> Self {
        PickCache::new()
    }
}

/// A load-balancing method: chooses one member of a non-empty candidate set. Implementations
/// keep their state in the balancer's atomics (`Balancer::seq`, member counters) and in the
/// caller's `PickCache`; they must not lock or allocate in steady state.
pub trait LbMethod: Send + Sync + fmt::Debug {
    /// httpd's lbmethod name ("byrequests", ...).
    fn name(&self) -> &'static str;
    /// Chooses a member index out of `candidates` (never empty). None only if it cannot choose.
    fn pick(&self, bal: &Balancer, candidates: Candidates, cache: &mut PickCache) -> Option<usize>;
}

/// The member chosen by `Balancer::pick`. It holds the member's busy count up (busy++ at pick,
/// busy-- on drop, as httpd's request-pool cleanup does): keep it alive until the request is
/// over, logging included, and keep the guards of failed failover attempts alive too.
#[derive(Debug)]
pub struct Pick<'a> {
    bal: &'a Balancer,
    member: usize,
    route_changed: bool,
}

impl<'a> Pick<'a> {
    /// Index into `Balancer::members()` (and into the spec's members).
    pub fn index(&self) -> usize {
        self.member
    }
    pub fn member(&self) -> &'a Member {
        &self.bal.members[self.member]
    }
    pub fn spec(&self) -> &'a MemberSpec {
        self.member().spec()
    }
    /// `BALANCER_ROUTE_CHANGED=1`: stickysession is configured and the member came from load
    /// balancing, or a sticky route was followed through `redirect=` to another route.
    pub fn route_changed(&self) -> bool {
        self.route_changed
    }
    /// Adds the bytes sent to and read from the backend (bytraffic counters). Call once per
    /// request, with header bytes included as httpd counts them.
    pub fn add_traffic(&self, sent: u64, read: u64) {
        self.member().add_traffic(sent, read);
    }
}

impl Drop for Pick<'_> {
    fn drop(&mut self) {
        self.bal.members[self.member].release();
    }
}

/// A balancer at run time.
#[derive(Debug)]
pub struct Balancer {
    /// Process-unique id, so a `PickCache` notices it is used with another balancer.
    id: u64,
    spec: BalancerSpec,
    members: Box<[Member]>,
    /// (lbset, members of that lbset), ascending lbset.
    lbsets: Box<[(u32, u64)]>,
    method: Box<dyn LbMethod>,
    /// Balancer-wide request sequence for byrequests and bybusyness.
    pub(crate) seq: CachePadded<AtomicU64>,
}

impl Balancer {
    /// Builds the run-time balancer. Panics if the spec has more than `MAX_MEMBERS` members
    /// (config validation must reject that first).
    pub fn new(spec: BalancerSpec) -> Balancer {
        let method: Box<dyn LbMethod> = match spec.lbmethod {
            LbMethodKind::ByRequests => Box::new(ByRequests),
            LbMethodKind::ByTraffic => Box::new(ByTraffic),
            LbMethodKind::ByBusyness => Box::new(ByBusyness),
        };
        Balancer::with_method(spec, method)
    }

    /// Builds the balancer with a given method (for methods outside `LbMethodKind`).
    pub fn with_method(spec: BalancerSpec, method: Box<dyn LbMethod>) -> Balancer {
        static NEXT_ID: AtomicU64 = AtomicU64::new(1);
        assert!(
            spec.members.len() <= MAX_MEMBERS,
            "balancer {} has {} members; at most {MAX_MEMBERS} are supported",
            spec.name,
            spec.members.len()
        );
        let members: Box<[Member]> = spec.members.iter().cloned().map(Member::new).collect();
        let mut lbsets: Vec<(u32, u64)> = Vec::new();
        for (i, m) in spec.members.iter().enumerate() {
            match lbsets.iter_mut().find(|(set, _)| *set == m.lbset) {
                Some((_, mask)) => *mask |= 1 << i,
                None => lbsets.push((m.lbset, 1 << i)),
            }
        }
        lbsets.sort_unstable_by_key(|(set, _)| *set);
        Balancer {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            spec,
            members,
            lbsets: lbsets.into_boxed_slice(),
            method,
            seq: CachePadded(AtomicU64::new(0)),
        }
    }

    /// "balancer://name" (or the member URL of an implicit balancer).
    pub fn name(&self) -> &str {
        &self.spec.name
    }
    pub fn spec(&self) -> &BalancerSpec {
        &self.spec
    }
    pub fn members(&self) -> &[Member] {
        &self.members
    }
    pub fn method(&self) -> &dyn LbMethod {
        &*self.method
    }

    /// `maxattempts`; default members - 1. The failover loop retries while
    /// `attempts < max_attempts()`.
    pub fn max_attempts(&self) -> u32 {
        self.spec.max_attempts.unwrap_or_else(|| {
            u32::try_from(self.members.len())
                .unwrap_or(u32::MAX)
                .saturating_sub(1)
        })
    }

    /// The sticky session route of a request (see `sticky.rs`): URL parameter first, then the
    /// Cookie header values. None when the balancer has no stickysession, no value is found, or
    /// the value has no separator.
    pub fn sticky_route<'a>(
        &'a self,
        target: &'a [u8],
        cookie_values: &[&'a [u8]],
    ) -> Option<Sticky<'a>> {
        let spec = self.spec.sticky.as_ref()?;
        sticky::extract(
            spec,
            self.spec.sticky_sep,
            self.spec.scolonpathdelim,
            target,
            cookie_values,
        )
    }

    /// Chooses a member. `exclude` is a bit mask of members already tried by this request
    /// (failover): they are treated as unusable. `now_ms` comes from `ms_at`.
    pub fn pick(
        &self,
        sticky: Option<&Sticky<'_>>,
        exclude: u64,
        now_ms: u64,
        cache: &mut PickCache,
    ) -> Result<Pick<'_>, NoMember> {
        if self.members.is_empty() {
            return Err(NoMember::Empty);
        }
        self.force_recovery(now_ms);
        if let Some(s) = sticky {
            if let Some(i) = sticky::find_route_member(self, s.route, exclude, now_ms, 1) {
                let changed = self.members[i].spec().route.as_bytes() != s.route;
                return Ok(self.elect(i, changed));
            }
            if self.spec.nofailover
                && self
                    .members
                    .iter()
                    .any(|m| !m.spec().route.is_empty() && m.spec().route.as_bytes() == s.route)
            {
                return Err(NoMember::RouteUnavailable);
            }
        }
        let candidates = self.candidates(exclude, now_ms);
        if candidates.is_empty() {
            return Err(NoMember::AllInError);
        }
        let i = self
            .method
            .pick(self, candidates, cache)
            .ok_or(NoMember::AllInError)?;
        Ok(self.elect(i, self.spec.sticky.is_some()))
    }

    /// A connect failure or reset on `member`: puts it in error state (E) until its `retry=`
    /// elapses. No effect on implicit balancers or members with status I.
    pub fn mark_error(&self, member: usize, now_ms: u64) {
        let m = &self.members[member];
        if self.spec.implicit || m.status() & status::IGNORE_ERRORS != 0 {
            return;
        }
        m.set_error(now_ms);
    }

    /// A successful connect: resets error_time and retries (httpd does not clear E here).
    pub fn mark_ok(&self, member: usize) {
        self.members[member].reset_error_counters();
    }

    /// The candidate set for load balancing (§1.0): lbsets in ascending order; in each, the
    /// usable regular members, then the first min(#usable spares, #unusable) hot spares; if that
    /// is empty, the usable hot standbys of the lbset; else the next lbset. Members in E whose
    /// retry elapsed leave E here (only in the lbsets walked, as in httpd).
    pub fn candidates(&self, exclude: u64, now_ms: u64) -> Candidates {
        for &(_, set) in self.lbsets.iter() {
            let (mut regular, mut spares, mut standbys) = (0u64, 0u64, 0u64);
            let mut unusable = 0u32;
            for i in Bits(set) {
                let m = &self.members[i];
                let st = m.status();
                let kind = st & (status::HOT_SPARE | status::HOT_STANDBY);
                if st & status::DRAIN != 0 {
                    if kind == 0 {
                        unusable += 1;
                    }
                    continue;
                }
                let usable = if st & NOT_USABLE == 0 {
                    true
                } else {
                    m.try_recover(now_ms);
                    m.is_usable()
                };
                let usable = usable && exclude & (1 << i) == 0;
                if kind & status::HOT_SPARE != 0 {
                    if usable {
                        spares |= 1 << i;
                    }
                } else if kind & status::HOT_STANDBY != 0 {
                    if usable {
                        standbys |= 1 << i;
                    }
                } else if usable {
                    regular |= 1 << i;
                } else {
                    unusable += 1;
                }
            }
            let mut tail = 0u64;
            for i in Bits(spares).take(unusable as usize) {
                tail |= 1 << i;
            }
            if regular | tail != 0 {
                return Candidates {
                    head: regular,
                    tail,
                };
            }
            if standbys != 0 {
                return Candidates {
                    head: standbys,
                    tail: 0,
                };
            }
        }
        Candidates::default()
    }

    /// httpd `force_recovery`: retry members in E until one is not in E; if none is and
    /// `forcerecovery` is On, clear E on all of them.
    fn force_recovery(&self, now_ms: u64) {
        for m in self.members.iter() {
            if !m.in_error() {
                return;
            }
            m.try_recover(now_ms);
            if !m.in_error() {
                return;
            }
        }
        if self.spec.force_recovery {
            for m in self.members.iter() {
                m.force_clear_error();
            }
        }
    }

    fn elect(&self, member: usize, route_changed: bool) -> Pick<'_> {
        self.members[member].elect();
        Pick {
            bal: self,
            member,
            route_changed,
        }
    }

    pub(crate) fn id(&self) -> u64 {
        self.id
    }
}

#[cfg(test)]
pub(crate) mod testutil {

    use crate::conf::model::{BalancerSpec, LbMethodKind, MemberSpec, StickySpec};

    pub fn member(name: &str, lf: u32) -> MemberSpec {
        let mut m = MemberSpec::with_defaults(
            format!("http://{name}"),
            name.to_string(),
            80,
            String::new(),
            Vec::new(),
        );
        m.lbfactor = lf * 100;
        m
    }

    pub fn spec(method: LbMethodKind, members: Vec<MemberSpec>) -> BalancerSpec {
        let mut b = BalancerSpec::with_defaults("balancer://t", false);
        b.lbmethod = method;
        b.members = members;
        b
    }

    pub fn lfs(method: LbMethodKind, lfs: &[u32]) -> BalancerSpec {
        let names = ["a", "b", "c", "d", "e", "f", "g", "h"];
        spec(
            method,
            lfs.iter()
                .enumerate()
                .map(|(i, &lf)| member(names[i], lf))
                .collect(),
        )
    }

    pub fn sticky(name: &str) -> Option<StickySpec> {
        Some(StickySpec {
            cookie: name.to_string(),
            url_param: name.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::testutil::*;
    use super::*;

    fn seq(b: &Balancer, n: usize, now: u64) -> Vec<usize> {
        let mut cache = PickCache::new();
        (0..n)
            .map(|_| b.pick(None, 0, now, &mut cache).unwrap().index())
            .collect()
    }

    #[test]
    fn lbset_zero_down_uses_lbset_one() {
        let mut s = lfs(LbMethodKind::ByRequests, &[1, 1, 1]);
        s.members[2].lbset = 1;
        let b = Balancer::new(s);
        assert_eq!(seq(&b, 4, 10), vec![0, 1, 0, 1]);
        b.mark_error(0, 10);
        b.mark_error(1, 10);
        assert_eq!(seq(&b, 3, 20), vec![2, 2, 2]);
    }

    #[test]
    fn hot_standby_before_higher_lbset() {
        // A, B regular, S spare, H standby in lbset 0; C in lbset 1.
        let mut s = lfs(LbMethodKind::ByRequests, &[1, 1, 1, 1, 1]);
        s.members[2].status = status::HOT_SPARE;
        s.members[3].status = status::HOT_STANDBY;
        s.members[4].lbset = 1;
        let b = Balancer::new(s);
        assert_eq!(seq(&b, 4, 10), vec![0, 1, 0, 1]);
        b.mark_error(1, 10);
        // One unusable regular: one spare joins, offered after A.
        let got = seq(&b, 4, 20);
        assert_eq!(got.iter().filter(|&&i| i == 0).count(), 2);
        assert_eq!(got.iter().filter(|&&i| i == 2).count(), 2);
        b.mark_error(0, 20);
        b.mark_error(2, 20);
        assert_eq!(seq(&b, 3, 30), vec![3, 3, 3]);
        b.mark_error(3, 30);
        assert_eq!(seq(&b, 2, 40), vec![4, 4]);
    }

    #[test]
    fn hot_spares_replace_unusable_one_for_one() {
        let mut s = lfs(LbMethodKind::ByRequests, &[1, 1, 1, 1, 1]);
        s.members[3].status = status::HOT_SPARE;
        s.members[4].status = status::HOT_SPARE;
        let b = Balancer::new(s);
        assert_eq!(
            b.candidates(0, 0),
            Candidates {
                head: 0b111,
                tail: 0
            }
        );
        b.members()[1].set_flags(status::DISABLED);
        assert_eq!(
            b.candidates(0, 0),
            Candidates {
                head: 0b101,
                tail: 0b01000
            }
        );
        b.mark_error(2, 0);
        assert_eq!(
            b.candidates(0, 0),
            Candidates {
                head: 0b001,
                tail: 0b11000
            }
        );
        b.mark_error(0, 0);
        // Three unusable, two spares: both.
        assert_eq!(
            b.candidates(0, 0),
            Candidates {
                head: 0,
                tail: 0b11000
            }
        );
        // A drained regular counts as unusable.
        let mut s = lfs(LbMethodKind::ByRequests, &[1, 1, 1]);
        s.members[0].status = status::DRAIN;
        s.members[2].status = status::HOT_SPARE;
        let b = Balancer::new(s);
        assert_eq!(
            b.candidates(0, 0),
            Candidates {
                head: 0b010,
                tail: 0b100
            }
        );
    }

    #[test]
    fn error_state_and_retry() {
        let mut s = lfs(LbMethodKind::ByRequests, &[1, 1]);
        s.members[0].retry = std::time::Duration::from_secs(5);
        let b = Balancer::new(s);
        b.mark_error(0, 1000);
        assert!(b.members()[0].in_error());
        assert_eq!(seq(&b, 3, 2000), vec![1, 1, 1]);
        assert_eq!(seq(&b, 3, 6000), vec![1, 1, 1]); // now == error_time + retry: not yet
        let got = seq(&b, 4, 6001);
        assert!(got.contains(&0), "{got:?}");
        assert!(!b.members()[0].in_error());
        assert_eq!(b.members()[0].retries(), 1);
        b.mark_ok(0);
        assert_eq!(b.members()[0].retries(), 0);
    }

    #[test]
    fn forcerecovery_when_all_in_error() {
        let b = Balancer::new(lfs(LbMethodKind::ByRequests, &[1, 1]));
        let mut cache = PickCache::new();
        b.mark_error(0, 100);
        b.mark_error(1, 100);
        let p = b.pick(None, 0, 200, &mut cache).unwrap();
        assert_eq!(p.index(), 0);
        assert!(!b.members()[0].in_error() && !b.members()[1].in_error());
        drop(p);
        // Off: all down gives an error.
        let mut s = lfs(LbMethodKind::ByRequests, &[1, 1]);
        s.force_recovery = false;
        let b = Balancer::new(s);
        b.mark_error(0, 100);
        b.mark_error(1, 100);
        assert_eq!(
            b.pick(None, 0, 200, &mut cache).unwrap_err(),
            NoMember::AllInError
        );
        // A disabled member blocks forced recovery.
        let b = Balancer::new(lfs(LbMethodKind::ByRequests, &[1, 1]));
        b.members()[0].set_flags(status::DISABLED);
        b.mark_error(1, 100);
        assert_eq!(
            b.pick(None, 0, 200, &mut cache).unwrap_err(),
            NoMember::AllInError
        );
    }

    #[test]
    fn implicit_and_ignore_errors_never_in_error() {
        let mut s = lfs(LbMethodKind::ByRequests, &[1]);
        s.implicit = true;
        let b = Balancer::new(s);
        b.mark_error(0, 10);
        assert!(!b.members()[0].in_error());
        let mut s = lfs(LbMethodKind::ByRequests, &[1, 1]);
        s.members[1].status = status::IGNORE_ERRORS;
        let b = Balancer::new(s);
        b.mark_error(1, 10);
        assert!(!b.members()[1].in_error());
        b.mark_error(0, 10);
        assert!(b.members()[0].in_error());
    }

    #[test]
    fn exclude_mask_and_all_down() {
        let b = Balancer::new(lfs(LbMethodKind::ByRequests, &[1, 1, 1]));
        let mut cache = PickCache::new();
        for _ in 0..6 {
            let p = b.pick(None, 0b011, 10, &mut cache).unwrap();
            assert_eq!(p.index(), 2);
        }
        assert_eq!(
            b.pick(None, 0b111, 10, &mut cache).unwrap_err(),
            NoMember::AllInError
        );
        for i in 0..3 {
            b.members()[i].set_flags(status::STOPPED);
        }
        assert_eq!(
            b.pick(None, 0, 10, &mut cache).unwrap_err(),
            NoMember::AllInError
        );
        let empty = Balancer::new(lfs(LbMethodKind::ByRequests, &[]));
        assert_eq!(
            empty.pick(None, 0, 10, &mut cache).unwrap_err(),
            NoMember::Empty
        );
        assert_eq!(empty.max_attempts(), 0);
        assert_eq!(b.max_attempts(), 2);
    }

    #[test]
    fn stopped_is_never_retried() {
        let b = Balancer::new(lfs(LbMethodKind::ByRequests, &[1, 1]));
        b.members()[0].set_flags(status::STOPPED);
        b.mark_error(0, 0);
        assert_eq!(seq(&b, 3, 1_000_000), vec![1, 1, 1]);
        assert!(b.members()[0].in_error());
    }

    #[test]
    fn busy_guard_and_counters() {
        let b = Balancer::new(lfs(LbMethodKind::ByRequests, &[1]));
        let mut cache = PickCache::new();
        let p = b.pick(None, 0, 0, &mut cache).unwrap();
        assert_eq!(b.members()[0].busy(), 1);
        p.add_traffic(10, 20);
        drop(p);
        assert_eq!(b.members()[0].busy(), 0);
        assert_eq!(b.members()[0].elected(), 1);
        assert_eq!(
            (b.members()[0].transferred(), b.members()[0].read()),
            (10, 20)
        );
    }

    /// `cargo test --release -- --ignored pick_cost --nocapture`: rough cost of one pick.
    #[test]
    #[ignore]
    fn pick_cost() {
        for method in [
            LbMethodKind::ByRequests,
            LbMethodKind::ByBusyness,
            LbMethodKind::ByTraffic,
        ] {
            let b = Balancer::new(lfs(method, &[1, 2, 3, 4, 5, 6, 7, 8]));
            let mut cache = PickCache::new();
            let n = 1_000_000;
            let t = std::time::Instant::now();
            for _ in 0..n {
                std::hint::black_box(b.pick(None, 0, 0, &mut cache).unwrap().index());
            }
            println!(
                "{method:?}: {:.1} ns/pick",
                t.elapsed().as_nanos() as f64 / n as f64
            );
        }
    }

    #[test]
    fn zero_allocation_after_warm_up() {
        let mut s = lfs(LbMethodKind::ByRequests, &[1, 2, 3, 4]);
        s.sticky = sticky("JSESSIONID");
        s.members[3].route = "n4".to_string();
        let b = Balancer::new(s);
        let mut cache = PickCache::new();
        drop(b.pick(None, 0, 0, &mut cache).unwrap());
        let (ptr, cap) = (cache.cycle.as_ptr(), cache.cycle.capacity());
        let cookie: &[u8] = b"JSESSIONID=x.n4";
        for i in 0..10_000u64 {
            // Alternate candidate sets to force recomputation too.
            let exclude = if i % 100 == 0 { 0b0010 } else { 0 };
            let st = b.sticky_route(b"/x", &[cookie]);
            drop(b.pick(None, exclude, 0, &mut cache).unwrap());
            drop(b.pick(st.as_ref(), 0, 0, &mut cache).unwrap());
            assert_eq!((cache.cycle.as_ptr(), cache.cycle.capacity()), (ptr, cap));
        }
    }
}
