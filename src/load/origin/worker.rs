//! One worker thread: its listeners, the state its connections share, and the accept loops.

use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use crate::conf::model::Limits;
use crate::io::{Backend, Listener};

use super::cli::Settings;
use super::session::Session;
use super::stats::Counters;

/// What one thread's connections share.
pub(super) struct Shard {
    pub(super) settings: Settings,
    pub(super) counters: Arc<Counters>,
    /// Per port: the default body `Server response, port N\n`.
    pub(super) default_body: Box<[Box<[u8]>]>,
    pub(super) limits: Limits,
}

/// Runs one thread's listeners (one per port, in `Settings::ports` order); never returns.
pub(super) async fn worker<B: Backend>(
    settings: Settings,
    counters: Arc<Counters>,
    listeners: Vec<std::net::TcpListener>,
) {
    let default_body = settings
        .ports
        .iter()
        .map(|p| {
            format!("Server response, port {p}\n")
                .into_bytes()
                .into_boxed_slice()
        })
        .collect();
    let shard = Rc::new(Shard {
        settings,
        counters,
        default_body,
        limits: Limits::default(),
    });
    for (idx, l) in listeners.into_iter().enumerate() {
        let l = match B::listener(l) {
            Ok(l) => Rc::new(l),
            Err(e) => {
                eprintln!("ringload origin: listener setup failed: {e}");
                std::process::exit(1);
            }
        };
        // Two accepts outstanding per listener, for connection bursts.
        for _ in 0..2 {
            B::spawn(accept_loop::<B>(l.clone(), shard.clone(), idx));
        }
    }
    std::future::pending::<()>().await;
}

async fn accept_loop<B: Backend>(l: Rc<B::Listener>, shard: Rc<Shard>, idx: usize) {
    loop {
        match l.accept().await {
            Ok((conn, _)) => {
                shard.counters.ports[idx].connections.fetch_add(1, Relaxed);
                B::spawn(Session::<B>::new(conn, shard.clone(), idx).serve());
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotConnected => return,
            // EMFILE and friends: back off a little rather than spin.
            Err(_) => B::pause_until(Instant::now() + Duration::from_millis(10)).await,
        }
    }
}
