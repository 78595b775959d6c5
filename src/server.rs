//! The control plane: binds the listeners, starts one pinned shard thread per core, and turns
//! signals into drain (SIGTERM, SIGINT) and reload (SIGHUP). Nothing here runs per request.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::balance::Balancer;
use crate::conf::Config;
use crate::conf::model::LogLevel;
use crate::errlog::ErrorLog;
use crate::io::{self, Backend, Epoll, Ring, Uring};
use crate::shard;

/// Everything one configuration generation shares between shards: the model and the live
/// balancers (their counters are the global ones).
pub struct Shared {
    pub config: Arc<Config>,
    pub balancers: Box<[Balancer]>,
    /// Pool slot of each balancer's first member (`pool::MemberKey`).
    pub first_slot: Box<[usize]>,
    pub generation: u64,
}

impl Shared {
    pub fn new(config: Config, generation: u64) -> Shared {
        let mut first_slot = Vec::with_capacity(config.balancers.len());
        let mut slots = 0;
        let balancers = config
            .balancers
            .iter()
            .map(|spec| {
                first_slot.push(slots);
                slots += spec.members.len();
                Balancer::new(spec.clone())
            })
            .collect();
        Shared {
            config: Arc::new(config),
            balancers,
            first_slot: first_slot.into(),
            generation,
        }
    }

    pub fn member_slots(&self) -> usize {
        self.config.balancers.iter().map(|b| b.members.len()).sum()
    }
}

/// Process-wide control state. Shards read `generation` and `draining` with one relaxed load
/// per request or tick; the mutex is taken only when the generation changed.
pub struct Control {
    current: Mutex<Arc<Shared>>,
    generation: AtomicU64,
    pub draining: AtomicBool,
    /// Client connections open across all shards.
    pub open_conns: AtomicUsize,
    pub errlog: ErrorLog,
}

impl Control {
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    pub fn current(&self) -> Arc<Shared> {
        self.current.lock().unwrap().clone()
    }

    fn install(&self, shared: Shared) {
        let g = shared.generation;
        *self.current.lock().unwrap() = Arc::new(shared);
        self.generation.store(g, Ordering::Release);
    }
}

/// Start-up options from the command line.
pub struct Options {
    pub config_path: PathBuf,
    pub threads: Option<usize>,
    /// How long SIGTERM waits for in-flight requests before exiting anyway.
    pub grace: Duration,
}

/// Runs the proxy until SIGTERM/SIGINT has drained it. Returns the process exit code.
pub fn run(config: Config, opts: Options) -> i32 {
    let errlog = match ErrorLog::open(config.error_log.as_deref()) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("ringproxy: cannot open ErrorLog: {e}");
            return 1;
        }
    };
    errlog.set_level(config.log_level);
    for w in &config.warnings {
        errlog.write(LogLevel::Warn, "core", w);
    }
    let kind = match io::select(config.io_backend) {
        Ok((kind, None)) => kind,
        Ok((kind, Some(why))) => {
            let msg = format!("io_uring is not available ({why}); running on the epoll backend");
            errlog.write(LogLevel::Notice, "core", &msg);
            eprintln!("ringproxy: {msg}");
            kind
        }
        Err(why) => {
            let name = config.io_backend.name();
            let msg =
                format!("io_uring is not available ({why}) and IoBackend {name} was configured");
            errlog.write(LogLevel::Emerg, "core", &msg);
            eprintln!("ringproxy: {msg}");
            return 1;
        }
    };
    let cores = core_affinity::get_core_ids().unwrap_or_default();
    let threads = opts
        .threads
        .or(config.threads)
        .unwrap_or(cores.len().max(1))
        .max(1);
    let addrs = config.listeners.clone();
    let mut per_shard = Vec::with_capacity(threads);
    for shard in 0..threads {
        let mut ls = Vec::with_capacity(addrs.len());
        for &a in &addrs {
            // SO_REUSEPORT would let a second ringproxy share the port silently: refuse a port
            // that something already listens on before the shards bind theirs.
            let bound = if shard == 0 {
                io::check_port_free(a).and_then(|()| io::reuseport_listener(a))
            } else {
                io::reuseport_listener(a)
            };
            match bound {
                Ok(l) => ls.push(l),
                Err(e) => {
                    let msg = format!("could not bind to address {a}: {e}");
                    errlog.write(LogLevel::Emerg, "core", &msg);
                    eprintln!("ringproxy: {msg}");
                    return 1;
                }
            }
        }
        per_shard.push(ls);
    }
    let control = Arc::new(Control {
        current: Mutex::new(Arc::new(Shared::new(config, 1))),
        generation: AtomicU64::new(1),
        draining: AtomicBool::new(false),
        open_conns: AtomicUsize::new(0),
        errlog,
    });
    let sigs = block_signals();
    let mut handles = Vec::with_capacity(threads);
    for (index, listeners) in per_shard.into_iter().enumerate() {
        let control = control.clone();
        let core = cores.get(index % cores.len().max(1)).copied();
        let h = std::thread::Builder::new()
            .name(format!("shard-{index}"))
            .spawn(move || {
                if let Some(core) = core {
                    core_affinity::set_for_current(core);
                }
                match kind {
                    io::Kind::Uring => {
                        Uring::block_on(shard::run::<Uring>(index, control, listeners))
                    }
                    io::Kind::Ring => Ring::block_on(shard::run::<Ring>(index, control, listeners)),
                    io::Kind::Epoll => {
                        Epoll::block_on(shard::run::<Epoll>(index, control, listeners))
                    }
                }
            })
            .expect("spawn shard thread");
        handles.push(h);
    }
    control.errlog.write(
        LogLevel::Notice,
        "core",
        &format!(
            "ringproxy {} configured, {threads} shard(s) on {:?}",
            env!("CARGO_PKG_VERSION"),
            kind
        ),
    );
    supervise(&control, &opts, &sigs, &handles);
    let deadline = Instant::now() + opts.grace;
    while handles.iter().any(|h| !h.is_finished()) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let cut = control.open_conns.load(Ordering::Relaxed);
    if cut > 0 {
        control.errlog.write(
            LogLevel::Warn,
            "core",
            &format!("grace period over, {cut} connection(s) cut"),
        );
    } else {
        control
            .errlog
            .write(LogLevel::Notice, "core", "drained, exiting");
    }
    0
}

/// Waits for signals: SIGHUP reloads, SIGTERM/SIGINT start the drain and return.
fn supervise(
    control: &Control,
    opts: &Options,
    sigs: &libc::sigset_t,
    handles: &[std::thread::JoinHandle<()>],
) {
    loop {
        let ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 200_000_000,
        };
        // SAFETY: waits for one of the blocked signals in `sigs`.
        let sig = unsafe { libc::sigtimedwait(sigs, std::ptr::null_mut(), &ts) };
        match sig {
            libc::SIGHUP => reload(control, opts),
            libc::SIGTERM | libc::SIGINT => {
                control
                    .errlog
                    .write(LogLevel::Notice, "core", "caught SIGTERM, draining");
                control.draining.store(true, Ordering::SeqCst);
                return;
            }
            _ => {
                if handles.iter().all(|h| h.is_finished()) {
                    return;
                }
            }
        }
    }
}

fn reload(control: &Control, opts: &Options) {
    match crate::conf::load(&opts.config_path) {
        Ok(config) => {
            let old = control.current();
            if config.listeners != old.config.listeners {
                control.errlog.write(
                    LogLevel::Warn,
                    "core",
                    "SIGHUP: Listen changes need a restart; listeners kept",
                );
            }
            for w in &config.warnings {
                control.errlog.write(LogLevel::Warn, "core", w);
            }
            control.errlog.set_level(config.log_level);
            control.install(Shared::new(config, old.generation + 1));
            control.errlog.write(
                LogLevel::Notice,
                "core",
                "SIGHUP received, configuration reloaded",
            );
        }
        Err(e) => {
            let msg =
                format!("SIGHUP: configuration rejected, still serving the previous one: {e}");
            control
                .errlog
                .write(LogLevel::Error, "core", &msg.replace('\n', " "));
        }
    }
}

/// Blocks the control signals in this thread (and the shards it spawns) so that only
/// `sigtimedwait` in `supervise` sees them; ignores SIGPIPE (a peer's close is an I/O error).
fn block_signals() -> libc::sigset_t {
    // SAFETY: plain signal-mask calls on a zeroed sigset.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in [libc::SIGHUP, libc::SIGTERM, libc::SIGINT] {
            libc::sigaddset(&mut set, s);
        }
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    }
}
