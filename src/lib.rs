//! ringproxy: a thread-per-core io_uring reverse proxy that runs an Apache httpd
//! mod_proxy_balancer configuration unchanged.
//!
//! The data path, in the order a request meets it:
//! 1. accept (`shard`): one pinned thread per core, each with its own SO_REUSEPORT listener;
//! 2. parse (`http`): the request head, parsed in place with httparse, strict RFC 9112 framing;
//! 3. route (`proxy::route`): RewriteRule / ProxyPass to a balancer and a rewritten path;
//! 4. balance (`balance`): sticky route, lbset tiers and the lbmethod, on counters shared by all
//!    shards;
//! 5. pool checkout (`pool`): the newest idle keep-alive connection to that member, or a connect;
//! 6. forward (`proxy::forward`): the head as slices in one send (io_uring copies a gather
//!    under 1 KiB into one buffer first: cheaper than the kernel's iovec import), then the body;
//! 7. relay (`proxy::relay`): response head, ProxyPassReverse, body back to the client;
//! 8. log (`log`): the compiled LogFormat, rendered into the shard's buffer.
//!
//! `conf` turns httpd syntax into the validated `conf::Config`; `io` is the only seam that knows
//! io_uring (and its epoll fallback).

pub mod balance;
pub mod conf;
pub mod errlog;
pub mod http;
pub mod io;
pub mod load;
pub mod log;
pub mod pool;
pub mod proxy;
pub mod server;
pub mod shard;
