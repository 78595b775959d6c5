//! `%t` / `%{format}t`: CLF time, strftime formats in local time, and the
//! epoch / fraction tokens. Formatted local-time strings are cached per second
//! per item and per thread, so steady-state rendering neither allocates, calls
//! libc, nor touches a cache line another worker writes.

use std::cell::{Cell, RefCell};
use std::ffi::CString;
use std::sync::Once;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::escape::{push_u64, push_u64_padded};

unsafe extern "C" {
    fn tzset();
}

static TZSET: Once = Once::new();

/// Reads `TZ` once, like httpd at startup. `localtime_r` does not re-read it.
pub(super) fn init_tz() {
    TZSET.call_once(|| unsafe { tzset() });
}

#[derive(Debug)]
pub(super) struct TimeItem {
    /// `end:` prefix: start + duration instead of the request start.
    from_end: bool,
    fmt: TimeFmt,
}

#[derive(Debug)]
enum TimeFmt {
    /// `[10/Oct/2000:13:55:36 -0700]`, with its cache id.
    Clf(u64),
    /// strftime format (NUL-terminated) and its cache id.
    Custom(CString, u64),
    Sec,
    Msec,
    Usec,
    MsecFrac,
    UsecFrac,
}

/// One thread's last formatted second for one time item.
struct Cache {
    id: u64,
    sec: i64,
    buf: Vec<u8>,
}

/// Identifies a time item's cache entries; formats compiled by a reload get new ids.
static NEXT_CACHE_ID: AtomicU64 = AtomicU64::new(0);

fn new_cache_id() -> u64 {
    NEXT_CACHE_ID.fetch_add(1, Ordering::Relaxed)
}

/// Entries a thread keeps (a config with more `%t` items than this formats some of them anew
/// per line). Past it, the entry refreshed longest ago is reused: that of a format a reload
/// dropped, which no line renders any more.
const CACHES_PER_THREAD: usize = 64;

thread_local! {
    static CACHES: RefCell<Vec<Cache>> = const { RefCell::new(Vec::new()) };
    /// A monotonic instant and the wall-clock time read with it, renewed each second.
    static ANCHOR: Cell<Option<(Instant, SystemTime)>> = const { Cell::new(None) };
}

/// How long one anchor serves: a wall-clock step (NTP, `date -s`) shows in the log within it.
const ANCHOR_LIFE: Duration = Duration::from_secs(1);

/// The wall-clock time of a monotonic instant, from this thread's anchor, so that a request's
/// start costs no clock read beyond the event loop's once per turn (`Backend::now`).
pub fn wall_clock_at(t: Instant) -> SystemTime {
    let anchor = ANCHOR.get().filter(|&(at, _)| t < at + ANCHOR_LIFE);
    let (at, wall) = anchor.unwrap_or_else(|| {
        let fresh = (Instant::now(), SystemTime::now());
        ANCHOR.set(Some(fresh));
        fresh
    });
    match t.checked_duration_since(at) {
        Some(after) => wall + after,
        None => wall - at.duration_since(t),
    }
}

impl TimeItem {
    /// Parses the `{arg}` of `%t` the way mod_log_config's `log_request_time` does.
    pub(super) fn parse(arg: Option<&str>) -> Result<TimeItem, String> {
        let mut from_end = false;
        let mut fmt = arg.unwrap_or("");
        let mut clf = fmt.is_empty();
        if let Some(rest) = fmt.strip_prefix("begin") {
            if rest.is_empty() {
                clf = true;
            } else if let Some(r) = rest.strip_prefix(':') {
                fmt = r;
            }
        } else if let Some(rest) = fmt.strip_prefix("end") {
            if rest.is_empty() {
                clf = true;
                from_end = true;
            } else if let Some(r) = rest.strip_prefix(':') {
                fmt = r;
                from_end = true;
            }
        }
        let fmt = if clf {
            TimeFmt::Clf(new_cache_id())
        } else {
            match fmt {
                "sec" => TimeFmt::Sec,
                "msec" => TimeFmt::Msec,
                "usec" => TimeFmt::Usec,
                "msec_frac" => TimeFmt::MsecFrac,
                "usec_frac" => TimeFmt::UsecFrac,
                // `begin:` / `end:` with nothing after: an empty strftime.
                "" => TimeFmt::Custom(CString::default(), new_cache_id()),
                f => TimeFmt::Custom(
                    CString::new(f).map_err(|_| "NUL byte in %{...}t format".to_string())?,
                    new_cache_id(),
                ),
            }
        };
        if matches!(fmt, TimeFmt::Clf(_) | TimeFmt::Custom(..)) {
            init_tz();
        }
        Ok(TimeItem { from_end, fmt })
    }

    pub(super) fn render(&self, start: SystemTime, dur: Duration, out: &mut Vec<u8>) {
        let t = if self.from_end { start + dur } else { start };
        let (sec, usec) = split(t);
        match &self.fmt {
            TimeFmt::Sec => push_u64(out, sec.max(0) as u64),
            TimeFmt::Msec => push_u64(out, (sec.max(0) as u64) * 1000 + u64::from(usec / 1000)),
            TimeFmt::Usec => push_u64(out, (sec.max(0) as u64) * 1_000_000 + u64::from(usec)),
            TimeFmt::MsecFrac => push_u64_padded(out, u64::from(usec / 1000), 3),
            TimeFmt::UsecFrac => push_u64_padded(out, u64::from(usec), 6),
            TimeFmt::Clf(id) => cached(*id, sec, out, |o| {
                let tm = local_tm(sec);
                push_clf(o, &tm);
            }),
            TimeFmt::Custom(f, id) => cached(*id, sec, out, |o| {
                let tm = local_tm(sec);
                push_strftime(o, f, &tm);
            }),
        }
    }
}

/// Seconds since the epoch (floored) and microseconds within the second.
fn split(t: SystemTime) -> (i64, u32) {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => (d.as_secs() as i64, d.subsec_micros()),
        Err(e) => {
            let d = e.duration();
            let mut s = -(d.as_secs() as i64);
            let mut us = d.subsec_micros();
            if us > 0 {
                s -= 1;
                us = 1_000_000 - us;
            }
            (s, us)
        }
    }
}

/// Serves from this thread's cache for item `id`, formatting again when the second changed.
fn cached(id: u64, sec: i64, out: &mut Vec<u8>, fill: impl Fn(&mut Vec<u8>)) {
    CACHES.with_borrow_mut(|caches| {
        let i = match caches.iter().position(|c| c.id == id) {
            Some(i) => i,
            None if caches.len() < CACHES_PER_THREAD => {
                caches.push(Cache {
                    id,
                    sec: i64::MIN,
                    buf: Vec::with_capacity(64),
                });
                caches.len() - 1
            }
            None => {
                let i = (0..caches.len())
                    .min_by_key(|&i| caches[i].sec)
                    .unwrap_or(0);
                caches[i].id = id;
                caches[i].sec = i64::MIN;
                i
            }
        };
        let c = &mut caches[i];
        if c.sec != sec {
            c.buf.clear();
            fill(&mut c.buf);
            c.sec = sec;
        }
        out.extend_from_slice(&c.buf);
    })
}

pub(super) fn local_tm(sec: i64) -> libc::tm {
    // SAFETY: tm is plain data; localtime_r fills it (or leaves zeroes on error).
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    let t = sec as libc::time_t;
    unsafe { libc::localtime_r(&t, &mut tm) };
    tm
}

const MONTHS: [&[u8; 3]; 12] = [
    b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec",
];

/// `[%02d/%s/%d:%02d:%02d:%02d %c%.2d%.2d]` with English month names, as httpd.
fn push_clf(out: &mut Vec<u8>, tm: &libc::tm) {
    out.push(b'[');
    push_u64_padded(out, tm.tm_mday.max(0) as u64, 2);
    out.push(b'/');
    out.extend_from_slice(MONTHS[tm.tm_mon.clamp(0, 11) as usize]);
    out.push(b'/');
    let year = i64::from(tm.tm_year) + 1900;
    if year < 0 {
        out.push(b'-');
    }
    push_u64(out, year.unsigned_abs());
    out.push(b':');
    push_u64_padded(out, tm.tm_hour.max(0) as u64, 2);
    out.push(b':');
    push_u64_padded(out, tm.tm_min.max(0) as u64, 2);
    out.push(b':');
    push_u64_padded(out, tm.tm_sec.max(0) as u64, 2);
    out.push(b' ');
    #[allow(clippy::useless_conversion)] // c_long is i32 on 32-bit targets
    let off = i64::from(tm.tm_gmtoff);
    out.push(if off < 0 { b'-' } else { b'+' });
    let off = off.unsigned_abs();
    push_u64_padded(out, off / 3600, 2);
    push_u64_padded(out, (off % 3600) / 60, 2);
    out.push(b']');
}

/// Appends `strftime(fmt, tm)`. httpd formats into an 8 KiB buffer; so do we
/// at most. Grows `out` only when its spare capacity is too small.
fn push_strftime(out: &mut Vec<u8>, fmt: &CString, tm: &libc::tm) {
    if fmt.as_bytes().is_empty() {
        return;
    }
    let mut want = 128usize;
    loop {
        out.reserve(want);
        let spare = out.spare_capacity_mut();
        // SAFETY: strftime writes at most spare.len() bytes (incl. NUL) into
        // the spare capacity; we only expose the n bytes it reports.
        let n = unsafe {
            libc::strftime(
                spare.as_mut_ptr().cast::<libc::c_char>(),
                spare.len(),
                fmt.as_ptr(),
                tm,
            )
        };
        if n > 0 {
            unsafe { out.set_len(out.len() + n) };
            return;
        }
        if want >= 8192 {
            return; // genuinely empty result, or longer than httpd allows
        }
        want *= 4;
    }
}
