//! The validated configuration model. The runtime sees only these types, never httpd syntax:
//! `conf::parse` and `conf::load` turn a file into a `Config`, or a `ConfError` naming file:line.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use regex::Regex;

/// One loaded configuration; shared read-only by every shard (`Arc<Config>`).
#[derive(Debug)]
pub struct Config {
    /// The main file given with `-f`.
    pub source: PathBuf,
    /// `Listen [addr:]port`; at least one.
    pub listeners: Vec<SocketAddr>,
    /// `ServerName host[:port]` (the host part); default "localhost". Logged by `%v`, sent as
    /// X-Forwarded-Server.
    pub server_name: String,
    /// `IoBackend auto|ring|uring|epoll` (ringproxy's own directive); default auto (ring where
    /// io_uring is usable).
    pub io_backend: IoBackendChoice,
    /// `Threads N` (ringproxy's own directive): shard threads; None = one per core.
    pub threads: Option<usize>,
    /// `Timeout` (default 60 s): client I/O, and the backend default.
    pub timeout: Duration,
    /// `ProxyTimeout` (default: Timeout): backend I/O when a member sets no `timeout=`.
    pub proxy_timeout: Option<Duration>,
    /// `KeepAlive On|Off` (default On).
    pub keep_alive: bool,
    /// `KeepAliveTimeout` (default 5 s; accepts `ms` suffix).
    pub keep_alive_timeout: Duration,
    /// `MaxKeepAliveRequests` (default 100; 0 = unlimited).
    pub max_keep_alive_requests: u32,
    /// `RequestReadTimeout header=N` style cap on reading a request head (ringproxy default 20 s,
    /// httpd's mod_reqtimeout default). Cuts slowloris clients.
    pub header_read_timeout: Duration,
    /// `ProxyPreserveHost On|Off` (default Off).
    pub proxy_preserve_host: bool,
    /// `ProxyAddHeaders On|Off` (default On): X-Forwarded-For/-Host/-Server.
    pub proxy_add_headers: bool,
    /// Limits on the request head (`LimitRequestLine`, `LimitRequestFields`,
    /// `LimitRequestFieldSize`, `LimitRequestBody`).
    pub limits: Limits,
    /// `RewriteEngine On|Off`. ringproxy defaults to On (httpd: Off), so RewriteRules written
    /// without `RewriteEngine On` are applied; an explicit `RewriteEngine Off` turns them off.
    pub rewrite_engine: bool,
    /// `RewriteRule`s in config order, each with the `RewriteCond`s written before it.
    pub rewrite_rules: Vec<RewriteRule>,
    /// `ProxyPass path target|!` in config order (first match wins).
    pub proxy_pass: Vec<ProxyPass>,
    /// `ProxyPassReverse path target` in config order.
    pub proxy_pass_reverse: Vec<ProxyPassReverse>,
    /// Every balancer: `<Proxy balancer://x>` sections, plus one implicit single-member
    /// balancer per distinct standalone `ProxyPass http://…` URL.
    pub balancers: Vec<BalancerSpec>,
    /// `CustomLog path format|nickname [env=[!]VAR]`; also `TransferLog`.
    pub access_logs: Vec<AccessLog>,
    /// `ErrorLog path` (default: stderr).
    pub error_log: Option<PathBuf>,
    /// `LogLevel` (default warn).
    pub log_level: LogLevel,
    /// Modules named by `LoadModule`, plus the built-ins (see `conf::modules`).
    pub modules: Vec<String>,
    /// Directives accepted with a warning (file:line: text), printed at start-up and by `-t`.
    pub warnings: Vec<String>,
}

pub use crate::io::Choice as IoBackendChoice;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    Emerg,
    Alert,
    Crit,
    Error,
    Warn,
    Notice,
    Info,
    Debug,
    Trace,
}

impl LogLevel {
    /// httpd's name for the level, as `LogLevel` takes it and error-log lines print it.
    pub fn name(self) -> &'static str {
        match self {
            LogLevel::Emerg => "emerg",
            LogLevel::Alert => "alert",
            LogLevel::Crit => "crit",
            LogLevel::Error => "error",
            LogLevel::Warn => "warn",
            LogLevel::Notice => "notice",
            LogLevel::Info => "info",
            LogLevel::Debug => "debug",
            LogLevel::Trace => "trace",
        }
    }

    /// The level named `s` (case-insensitive); `trace1`..`trace8` are all `Trace`.
    pub fn from_name(s: &str) -> Option<LogLevel> {
        let s = s.to_ascii_lowercase();
        if s.strip_prefix("trace")
            .is_some_and(|n| matches!(n, "1" | "2" | "3" | "4" | "5" | "6" | "7" | "8"))
        {
            return Some(LogLevel::Trace);
        }
        [
            LogLevel::Emerg,
            LogLevel::Alert,
            LogLevel::Crit,
            LogLevel::Error,
            LogLevel::Warn,
            LogLevel::Notice,
            LogLevel::Info,
            LogLevel::Debug,
        ]
        .into_iter()
        .find(|l| l.name() == s)
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// LimitRequestLine (default 8190): a longer request line gets 414.
    pub request_line: usize,
    /// LimitRequestFields (default 100): more fields get 431.
    pub header_fields: usize,
    /// LimitRequestFieldSize (default 8190): a longer field line gets 431.
    pub field_size: usize,
    /// Whole request head cap (ringproxy: request_line + 8 KiB... fixed 64 KiB default); over it: 431.
    pub head_size: usize,
    /// LimitRequestBody (default 0 = unlimited; httpd 2.4.54+ defaults to 1 GiB): over it 413.
    pub body: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            request_line: 8190,
            header_fields: 100,
            field_size: 8190,
            head_size: 65536,
            body: 0,
        }
    }
}

/// A piece of a RewriteRule substitution or RewriteCond test string, parsed at load time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Template {
    Lit(String),
    /// `$N` from the rule pattern.
    RuleRef(u8),
    /// `%N` from the last matched RewriteCond.
    CondRef(u8),
    /// `%{NAME}`: a server variable.
    Var(ServerVar),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerVar {
    /// `%{HTTP:Name}` or the `HTTP_*` shorthands (HTTP_HOST, HTTP_USER_AGENT, HTTP_REFERER,
    /// HTTP_COOKIE, HTTP_ACCEPT): a request header, by name.
    Header(String),
    RequestUri,
    QueryString,
    RequestMethod,
    RequestScheme,
    RemoteAddr,
    RemotePort,
    ServerName,
    ServerPort,
    ServerAddr,
    TheRequest,
    Https,
}

#[derive(Debug, Clone)]
pub struct RewriteRule {
    /// Where the rule was written, for logs.
    pub at: String,
    pub pattern: Regex,
    /// Text that every match starts with (`^/service1/(.*)`: `/service1/`): a path without it
    /// cannot match, so the regex need not run. None where the pattern has none or is [NC].
    pub prefix: Option<String>,
    /// `!pattern`: matches when the regex does not (then no `$N`).
    pub negate: bool,
    /// None for `-` (no substitution).
    pub substitution: Option<Vec<Template>>,
    pub conds: Vec<RewriteCond>,
    pub flags: RewriteFlags,
}

#[derive(Debug, Clone, Default)]
pub struct RewriteFlags {
    /// P / proxy (implies last).
    pub proxy: bool,
    /// L / last.
    pub last: bool,
    /// NC / nocase (already compiled into `pattern`).
    pub nocase: bool,
    /// QSA / qsappend.
    pub qsa: bool,
    /// QSD / qsdiscard.
    pub qsd: bool,
    /// NE / noescape.
    pub noescape: bool,
    /// R[=code] / redirect: external redirect with this status (default 302).
    pub redirect: Option<u16>,
    /// F / forbidden: 403.
    pub forbidden: bool,
    /// G / gone: 410.
    pub gone: bool,
}

#[derive(Debug, Clone)]
pub struct RewriteCond {
    pub test: Vec<Template>,
    pub pattern: CondPattern,
    /// `!` before the pattern.
    pub negate: bool,
    /// `[OR]`: this condition is ORed with the next one.
    pub or_next: bool,
}

#[derive(Debug, Clone)]
pub enum CondPattern {
    /// A regex (`[NC]` already compiled in). Captures feed `%N`.
    Regex(Regex),
    /// `=str` (with `[NC]`: case-insensitive compare).
    Equal(String, bool),
    /// `<str`, `>str`: lexicographic compare.
    Less(String),
    Greater(String),
}

#[derive(Debug, Clone)]
pub struct ProxyPass {
    /// URL-path prefix (or regex source for ProxyPassMatch, not supported).
    pub path: String,
    pub target: PassTarget,
}

#[derive(Debug, Clone)]
pub enum PassTarget {
    /// `!`: exclude this path from proxying.
    Exclude,
    /// Index into `Config::balancers`, and the path part of the target URL, appended before the
    /// rest of the client path.
    Balancer { balancer: usize, path: String },
}

#[derive(Debug, Clone)]
pub struct ProxyPassReverse {
    /// The public path prefix ("/" in the seed).
    pub path: String,
    /// What to look for in Location-type response headers: every member URL of a balancer
    /// (with the balancer URL's path), or one URL.
    pub target: ReverseTarget,
}

#[derive(Debug, Clone)]
pub enum ReverseTarget {
    Balancer { balancer: usize, path: String },
    Url(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LbMethodKind {
    ByRequests,
    ByTraffic,
    ByBusyness,
}

/// `stickysession=NAME` or `stickysession=COOKIE|URLPARAM`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StickySpec {
    pub cookie: String,
    pub url_param: String,
}

#[derive(Debug, Clone)]
pub struct BalancerSpec {
    /// "balancer://backend", lower-cased, or the member URL of an implicit balancer.
    pub name: String,
    /// True for the single-member balancer made for a standalone ProxyPass URL: its member is
    /// never put in error state (httpd's ignore-errors for standalone workers).
    pub implicit: bool,
    pub lbmethod: LbMethodKind,
    pub sticky: Option<StickySpec>,
    /// `stickysessionsep` (default '.'); None = Off (the whole value is the route).
    pub sticky_sep: Option<u8>,
    pub scolonpathdelim: bool,
    pub nofailover: bool,
    /// `maxattempts`; None = members - 1.
    pub max_attempts: Option<u32>,
    /// `timeout` on the balancer: how long to wait for a usable member before 503.
    pub timeout: Option<Duration>,
    /// `forcerecovery` (default On).
    pub force_recovery: bool,
    /// `failonstatus` codes.
    pub fail_on_status: Vec<u16>,
    /// `Require all denied` in the section: 403 for every request routed here.
    pub denied: bool,
    pub members: Vec<MemberSpec>,
}

impl BalancerSpec {
    /// A balancer with httpd's defaults (byrequests, '.' route separator, forcerecovery On)
    /// and no members yet.
    pub fn with_defaults(name: &str, implicit: bool) -> BalancerSpec {
        BalancerSpec {
            name: name.to_string(),
            implicit,
            lbmethod: LbMethodKind::ByRequests,
            sticky: None,
            sticky_sep: Some(b'.'),
            scolonpathdelim: false,
            nofailover: false,
            max_attempts: None,
            timeout: None,
            force_recovery: true,
            fail_on_status: Vec::new(),
            denied: false,
            members: Vec::new(),
        }
    }
}

/// Member status flags, as httpd's `status=` letters.
pub mod status {
    pub const DISABLED: u16 = 1 << 0; // D
    pub const STOPPED: u16 = 1 << 1; // S
    pub const IGNORE_ERRORS: u16 = 1 << 2; // I
    pub const HOT_SPARE: u16 = 1 << 3; // R
    pub const HOT_STANDBY: u16 = 1 << 4; // H
    pub const IN_ERROR: u16 = 1 << 5; // E
    pub const DRAIN: u16 = 1 << 6; // N
    pub const HC_FAILED: u16 = 1 << 7; // C
}

#[derive(Debug, Clone)]
pub struct MemberSpec {
    /// Normalised URL: scheme and host lower-cased, default port dropped, path kept
    /// (`BALANCER_WORKER_NAME`).
    pub url: String,
    pub host: String,
    pub port: u16,
    /// `Host: host[:port]\r\n` as sent to this member (without ProxyPreserveHost), made once.
    pub host_field: String,
    /// Path part of the member URL ("" when none), prefixed to the forwarded path.
    pub path: String,
    /// Resolved at load time; connect tries them in order.
    pub addrs: Vec<SocketAddr>,
    /// `route=` ("" when unset).
    pub route: String,
    /// `redirect=`.
    pub redirect: String,
    /// lbfactor: `loadfactor` x 100 (100..=10000; default 100).
    pub lbfactor: u32,
    /// `lbset` 0..=99.
    pub lbset: u32,
    /// Initial `status=` flags (see `status`).
    pub status: u16,
    /// `retry` (default 60 s).
    pub retry: Duration,
    /// `timeout` (socket I/O); None = ProxyTimeout, then Timeout.
    pub timeout: Option<Duration>,
    /// `connectiontimeout`; None = the I/O timeout chain.
    pub connection_timeout: Option<Duration>,
    /// `ttl`: pooled idle connections older than this are closed, not reused.
    pub ttl: Option<Duration>,
    /// `max`: cap on idle pooled connections per shard (None = ringproxy default).
    pub max: Option<u32>,
    /// `enablereuse` (default On; `disablereuse=On` clears it).
    pub enable_reuse: bool,
}

impl MemberSpec {
    /// A member at `url` with every parameter at httpd's default (loadfactor 1, retry 60 s,
    /// reuse on).
    pub fn with_defaults(
        url: String,
        host: String,
        port: u16,
        path: String,
        addrs: Vec<SocketAddr>,
    ) -> MemberSpec {
        let host_field = if port == 80 {
            format!("Host: {host}\r\n")
        } else {
            format!("Host: {host}:{port}\r\n")
        };
        MemberSpec {
            url,
            host,
            port,
            host_field,
            path,
            addrs,
            route: String::new(),
            redirect: String::new(),
            lbfactor: 100,
            lbset: 0,
            status: 0,
            retry: Duration::from_secs(60),
            timeout: None,
            connection_timeout: None,
            ttl: None,
            max: None,
            enable_reuse: true,
        }
    }
}

#[derive(Debug)]
pub struct AccessLog {
    pub path: PathBuf,
    pub format: crate::log::LogFormat,
    /// `env=VAR` (log when set) or `env=!VAR` (log when unset).
    pub env_condition: Option<(String, bool)>,
}
