//! One shard: one pinned thread, its own runtime, its own SO_REUSEPORT listeners, keep-alive
//! pool, pick caches and access-log buffers. Connections never leave their shard, so nothing
//! here is locked; the only shared state is the balancers' atomics and the control flags.

use std::cell::{Cell, RefCell};
use std::fs::{File, OpenOptions};
use std::net::Shutdown;
use std::os::fd::RawFd;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use slab::Slab;

use crate::balance::PickCache;
use crate::conf::model::LogLevel;
use crate::io::{Backend, Conn, Listener};
use crate::log::UniqueIdGen;
use crate::pool::{Bound, Pool};
use crate::proxy::route::RouteScratch;
use crate::server::{Control, Shared};

/// Accepts kept in flight per listener, so a burst of connections does not wait on one.
const ACCEPTS_PER_LISTENER: usize = 4;
/// Housekeeping period: drain checks, log flushes, pool sweeps.
const TICK: Duration = Duration::from_millis(50);
/// A log buffer this full wakes the housekeeping task early, so buffers stay within their
/// initial capacity (`LOG_BUF`) and the request path never reallocates them.
const LOG_FLUSH_AT: usize = 128 * 1024;
const LOG_BUF: usize = 512 * 1024;
/// Pool sweeps (ttl, and idle connections the member closed) run every this many ticks.
const SWEEP_EVERY: u64 = 20;

/// The state of one configuration generation, as this shard sees it. Requests hold an `Rc` to
/// the generation they started in, so a reload never changes a request midway, and the old
/// pool closes when its last request ends.
pub struct Epoch<B: Backend> {
    pub shared: Arc<Shared>,
    pub pool: RefCell<Pool<B::Conn>>,
    pub caches: RefCell<Vec<PickCache>>,
    /// For each `Config::access_logs` entry, its sink in `Shard::sinks`.
    pub log_slots: Vec<usize>,
    pub route_scratch: RefCell<RouteScratch>,
    /// unique_id_module is loaded: requests get a UNIQUE_ID.
    pub unique_id: bool,
    /// Each pool slot's member `ttl`, for the housekeeping sweep.
    pub member_ttls: Vec<Option<Duration>>,
}

/// One access-log file as this shard writes it: lines accumulate in `buf` and the housekeeping
/// task appends them to the file, so a request never waits on the disk.
struct Sink {
    path: PathBuf,
    file: Rc<File>,
    buf: Vec<u8>,
    spare: Vec<u8>,
}

struct ConnSlot {
    fd: RawFd,
    idle: bool,
}

pub struct Shard<B: Backend> {
    pub index: usize,
    pub control: Arc<Control>,
    current: RefCell<Rc<Epoch<B>>>,
    generation: Cell<u64>,
    sinks: RefCell<Vec<Sink>>,
    conns: RefCell<Slab<ConnSlot>>,
    /// Of `conns`, those not idle.
    busy_clients: Cell<usize>,
    /// Bumped per accepted connection, for the connection id in logs and UNIQUE_ID.
    pub next_conn_id: Cell<u64>,
    pub unique_ids: RefCell<UniqueIdGen>,
    /// Wakes the housekeeping task before its tick (a log buffer filled up).
    wake: tokio::sync::Notify,
    /// The member-connection bound over this shard's pools of every epoch.
    pool_bound: Rc<Bound>,
}

impl<B: Backend> Shard<B> {
    /// The generation new requests use; rebuilt only when a reload installed a new one.
    pub fn epoch(&self) -> Rc<Epoch<B>> {
        let g = self.control.generation();
        if g != self.generation.get() {
            let shared = self.control.current();
            self.generation.set(shared.generation);
            let fresh = self.make_epoch(shared);
            *self.current.borrow_mut() = Rc::new(fresh);
        }
        self.current.borrow().clone()
    }

    fn make_epoch(&self, shared: Arc<Shared>) -> Epoch<B> {
        let mut log_slots = Vec::with_capacity(shared.config.access_logs.len());
        let mut sinks = self.sinks.borrow_mut();
        for l in &shared.config.access_logs {
            let slot = match sinks.iter().position(|s| s.path == l.path) {
                Some(i) => i,
                None => match OpenOptions::new().create(true).append(true).open(&l.path) {
                    Ok(f) => {
                        sinks.push(Sink {
                            path: l.path.clone(),
                            file: Rc::new(f),
                            buf: Vec::with_capacity(LOG_BUF),
                            spare: Vec::with_capacity(LOG_BUF),
                        });
                        sinks.len() - 1
                    }
                    Err(e) => {
                        let msg = format!("could not open access log {}: {e}", l.path.display());
                        self.control
                            .errlog
                            .write(LogLevel::Error, "log_config", &msg);
                        usize::MAX
                    }
                },
            };
            log_slots.push(slot);
        }
        let caches = shared.balancers.iter().map(|_| PickCache::new()).collect();
        Epoch {
            pool: RefCell::new(Pool::new(shared.member_slots(), self.pool_bound.clone())),
            caches: RefCell::new(caches),
            log_slots,
            route_scratch: RefCell::new(RouteScratch::new(&shared.config)),
            unique_id: shared
                .config
                .modules
                .iter()
                .any(|m| m == "unique_id_module"),
            member_ttls: shared
                .config
                .balancers
                .iter()
                .flat_map(|b| b.members.iter().map(|m| m.ttl))
                .collect(),
            shared,
        }
    }

    /// Appends to the buffer of access log `slot` (from `Epoch::log_slots`).
    pub fn with_log_buf(&self, slot: usize, f: impl FnOnce(&mut Vec<u8>)) {
        if let Some(s) = self.sinks.borrow_mut().get_mut(slot) {
            f(&mut s.buf);
            if s.buf.len() >= LOG_FLUSH_AT {
                self.wake.notify_one();
            }
        }
    }

    /// Registers a client connection; the returned key goes to `set_idle` and `unregister`.
    pub fn register(&self, fd: RawFd) -> usize {
        self.control.open_conns.fetch_add(1, Ordering::Relaxed);
        self.conns.borrow_mut().insert(ConnSlot { fd, idle: true })
    }

    /// Marks a connection as waiting for its next request (drain may close it then), or as
    /// having one in progress.
    pub fn set_idle(&self, key: usize, idle: bool) {
        if let Some(c) = self.conns.borrow_mut().get_mut(key)
            && c.idle != idle
        {
            c.idle = idle;
            let busy = self.busy_clients.get();
            self.busy_clients
                .set(if idle { busy - 1 } else { busy + 1 });
        }
    }

    pub fn unregister(&self, key: usize) {
        if let Some(c) = self.conns.borrow_mut().try_remove(key)
            && !c.idle
        {
            self.busy_clients.set(self.busy_clients.get() - 1);
        }
        self.control.open_conns.fetch_sub(1, Ordering::Relaxed);
    }

    /// Client connections on this shard with a request in progress: the bound on its member
    /// connections (`pool`). Not all open ones: when clients reconnect, the old connections
    /// linger idle for a while and would let the bound grow past what is in flight.
    pub fn busy_clients(&self) -> usize {
        self.busy_clients.get()
    }

    pub fn draining(&self) -> bool {
        self.control.draining.load(Ordering::Relaxed)
    }

    async fn flush_logs(&self) {
        let n = self.sinks.borrow().len();
        for i in 0..n {
            let (file, buf) = {
                let mut sinks = self.sinks.borrow_mut();
                let s = &mut sinks[i];
                if s.buf.is_empty() {
                    continue;
                }
                let spare = std::mem::take(&mut s.spare);
                (s.file.clone(), std::mem::replace(&mut s.buf, spare))
            };
            let (r, mut buf) = B::append(file, buf).await;
            if let Err(e) = r {
                let msg = format!("access log write failed: {e}");
                self.control
                    .errlog
                    .write(LogLevel::Error, "log_config", &msg);
            }
            buf.clear();
            self.sinks.borrow_mut()[i].spare = buf;
        }
    }
}

/// The body of a shard thread: accept loops plus the housekeeping loop, until drained.
pub async fn run<B: Backend>(
    index: usize,
    control: Arc<Control>,
    listeners: Vec<std::net::TcpListener>,
) {
    let shared = control.current();
    let shard = Rc::new(Shard::<B> {
        index,
        control,
        current: RefCell::new(Rc::new(Epoch {
            pool: RefCell::new(Pool::new(0, Rc::default())),
            caches: RefCell::new(Vec::new()),
            log_slots: Vec::new(),
            route_scratch: RefCell::new(RouteScratch::new(&shared.config)),
            unique_id: false,
            member_ttls: Vec::new(),
            shared: shared.clone(),
        })),
        generation: Cell::new(0),
        sinks: RefCell::new(Vec::new()),
        conns: RefCell::new(Slab::new()),
        busy_clients: Cell::new(0),
        next_conn_id: Cell::new((index as u64) << 48),
        unique_ids: RefCell::new(UniqueIdGen::new(index)),
        wake: tokio::sync::Notify::new(),
        pool_bound: Rc::default(),
    });
    shard.epoch();
    let mut open = Vec::with_capacity(listeners.len());
    for l in listeners {
        match B::listener(l) {
            Ok(l) => open.push(Rc::new(l)),
            Err(e) => shard.control.errlog.write(
                LogLevel::Emerg,
                "core",
                &format!("listener setup failed: {e}"),
            ),
        }
    }
    for l in &open {
        for _ in 0..ACCEPTS_PER_LISTENER {
            B::spawn(accept_loop(shard.clone(), l.clone()));
        }
    }
    let mut closed = false;
    let mut ticks = 0u64;
    loop {
        tokio::select! {
            _ = B::pause_until(Instant::now() + TICK) => {}
            _ = shard.wake.notified() => {}
        }
        if shard.draining() && !closed {
            closed = true;
            for l in &open {
                l.close();
            }
        }
        if closed {
            for c in shard.conns.borrow().iter().filter(|c| c.1.idle) {
                // SAFETY: the fd is owned by a live connection task. SHUT_RD makes its pending
                // read end with EOF so the task closes it, while a request that raced in can
                // still be answered.
                unsafe { libc::shutdown(c.1.fd, libc::SHUT_RD) };
            }
        }
        shard.flush_logs().await;
        shard.pool_bound.wake_all(); // a wait at the bound ends soon after its deadline
        ticks += 1;
        if ticks.is_multiple_of(SWEEP_EVERY) {
            let epoch = shard.current.borrow().clone();
            let now = Instant::now();
            let ttls = &epoch.member_ttls;
            epoch
                .pool
                .borrow_mut()
                .sweep(now, |slot| ttls.get(slot).copied().flatten());
        }
        if closed && shard.conns.borrow().is_empty() {
            shard.flush_logs().await;
            return;
        }
    }
}

async fn accept_loop<B: Backend>(shard: Rc<Shard<B>>, listener: Rc<B::Listener>) {
    loop {
        match listener.accept().await {
            Ok((conn, peer)) => {
                if shard.draining() {
                    conn.shutdown(Shutdown::Both);
                    continue;
                }
                B::spawn(crate::proxy::serve(shard.clone(), conn, peer));
            }
            Err(e) => {
                if shard.draining() {
                    return;
                }
                // EMFILE and friends: back off briefly instead of spinning.
                shard
                    .control
                    .errlog
                    .write(LogLevel::Error, "core", &format!("accept failed: {e}"));
                B::pause_until(Instant::now() + Duration::from_millis(10)).await;
            }
        }
    }
}
