//! One balancer member: its spec plus the shared counters, each atomic on its own cache line.

use std::ops::Deref;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use crate::conf::model::{MemberSpec, status};

/// Pads and aligns `T` to 64 bytes so that two counters never share a cache line.
#[repr(C, align(64))]
#[derive(Debug, Default)]
pub struct CachePadded<T>(pub T);

impl<T> Deref for CachePadded<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

/// Flags that make a member unusable (httpd `PROXY_WORKER_NOT_USABLE_BITMAP` less shutdown and
/// not-initialised, which ringproxy has no equivalent for). Drain (N) and ignore-errors (I) are
/// not in it.
pub const NOT_USABLE: u16 =
    status::DISABLED | status::STOPPED | status::IN_ERROR | status::HC_FAILED;

/// A member as the balancer sees it at run time. Shared by every shard (inside `Arc<Balancer>`).
#[derive(Debug)]
pub struct Member {
    spec: MemberSpec,
    retry_ms: u64,
    /// `status::*` flags (a u16 kept in an AtomicU32).
    status: CachePadded<AtomicU32>,
    /// When E was last set (`ms_at` clock).
    error_time_ms: CachePadded<AtomicU64>,
    /// In-flight requests: +1 at pick, -1 when the `Pick` guard drops.
    busy: CachePadded<AtomicU64>,
    /// Times chosen (sticky or load balanced).
    elected: CachePadded<AtomicU64>,
    /// Bytes sent to the backend (bytraffic).
    transferred: CachePadded<AtomicU64>,
    /// Bytes read from the backend (bytraffic).
    read: CachePadded<AtomicU64>,
    /// Times recovered from E (retry elapsed or forced recovery); reset by `mark_ok`.
    retries: CachePadded<AtomicU32>,
}

impl Member {
    pub(crate) fn new(spec: MemberSpec) -> Member {
        let retry_ms = u64::try_from(spec.retry.as_millis()).unwrap_or(u64::MAX);
        Member {
            retry_ms,
            status: CachePadded(AtomicU32::new(u32::from(spec.status))),
            error_time_ms: CachePadded(AtomicU64::new(0)),
            busy: CachePadded(AtomicU64::new(0)),
            elected: CachePadded(AtomicU64::new(0)),
            transferred: CachePadded(AtomicU64::new(0)),
            read: CachePadded(AtomicU64::new(0)),
            retries: CachePadded(AtomicU32::new(0)),
            spec,
        }
    }

    pub fn spec(&self) -> &MemberSpec {
        &self.spec
    }
    /// Current `status::*` flags.
    pub fn status(&self) -> u16 {
        self.status.load(Ordering::Acquire) as u16
    }
    /// Sets flags (balancer-manager, health checks). Setting `IN_ERROR` here does not touch
    /// `error_time_ms`; use `Balancer::mark_error` for that.
    pub fn set_flags(&self, flags: u16) {
        self.status.fetch_or(u32::from(flags), Ordering::AcqRel);
    }
    pub fn clear_flags(&self, flags: u16) {
        self.status.fetch_and(!u32::from(flags), Ordering::AcqRel);
    }
    /// None of D, S, E, C.
    pub fn is_usable(&self) -> bool {
        self.status() & NOT_USABLE == 0
    }
    pub fn in_error(&self) -> bool {
        self.status() & status::IN_ERROR != 0
    }
    pub fn error_time_ms(&self) -> u64 {
        self.error_time_ms.load(Ordering::Acquire)
    }
    pub fn busy(&self) -> u64 {
        self.busy.load(Ordering::Relaxed)
    }
    pub fn elected(&self) -> u64 {
        self.elected.load(Ordering::Relaxed)
    }
    pub fn transferred(&self) -> u64 {
        self.transferred.load(Ordering::Relaxed)
    }
    pub fn read(&self) -> u64 {
        self.read.load(Ordering::Relaxed)
    }
    pub fn retries(&self) -> u32 {
        self.retries.load(Ordering::Relaxed)
    }

    /// httpd `ap_proxy_retry_worker`: a member in E whose retry interval has elapsed
    /// (`now > error_time + retry`) leaves E; a Stopped member is never retried. Only the thread
    /// that actually clears E counts the retry.
    pub(crate) fn try_recover(&self, now_ms: u64) {
        let st = self.status();
        if st & status::IN_ERROR == 0 || st & status::STOPPED != 0 {
            return;
        }
        if now_ms > self.error_time_ms().saturating_add(self.retry_ms) {
            self.force_clear_error();
        }
    }

    /// Clears E (retry elapsed or forced recovery) and counts a retry if E was set.
    pub(crate) fn force_clear_error(&self) {
        let prev = self
            .status
            .fetch_and(!u32::from(status::IN_ERROR), Ordering::AcqRel);
        if prev & u32::from(status::IN_ERROR) != 0 {
            self.retries.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub(crate) fn set_error(&self, now_ms: u64) {
        self.error_time_ms.store(now_ms, Ordering::Release);
        self.status
            .fetch_or(u32::from(status::IN_ERROR), Ordering::AcqRel);
    }

    pub(crate) fn reset_error_counters(&self) {
        self.error_time_ms.store(0, Ordering::Release);
        self.retries.store(0, Ordering::Relaxed);
    }

    pub(crate) fn elect(&self) {
        self.elected.fetch_add(1, Ordering::Relaxed);
        self.busy.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn release(&self) {
        self.busy.fetch_sub(1, Ordering::Relaxed);
    }

    pub(crate) fn add_traffic(&self, sent: u64, read: u64) {
        if sent != 0 {
            self.transferred.fetch_add(sent, Ordering::Relaxed);
        }
        if read != 0 {
            self.read.fetch_add(read, Ordering::Relaxed);
        }
    }

    /// lbfactor, never 0.
    pub(crate) fn lf(&self) -> u32 {
        self.spec.lbfactor.max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn padded_counters_are_on_their_own_lines() {
        assert_eq!(std::mem::align_of::<CachePadded<AtomicU64>>(), 64);
        assert_eq!(std::mem::size_of::<CachePadded<AtomicU32>>(), 64);
    }
}
