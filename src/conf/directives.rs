//! The directive table: each directive's name, the module that defines it, whether it may appear
//! inside `<Proxy>`, and its handler. Handlers build the model in a `Builder`; `finish` then
//! validates what only the whole configuration can tell (Listen present, balancers referenced
//! exist and have members, log nicknames) and returns the `Config`.
//!
//! Core, logging and the accepted-with-a-warning directives are here; mod_proxy's are in
//! `proxy.rs`, mod_rewrite's in `rewrite.rs`.

use std::collections::HashMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::ConfError;
use super::model::*;
use super::modules::ModuleSet;
use super::parse::{Span, Word};
use super::proxy::BalancerBuild;
use super::read::{Item, Reader};

pub(super) type Handler = fn(&mut Builder, &Item) -> Result<(), ConfError>;

pub(super) struct Directive {
    pub name: &'static str,
    pub module: &'static str,
    /// May appear inside `<Proxy>`.
    pub in_proxy: bool,
    pub handler: Handler,
}

const fn d(name: &'static str, module: &'static str, handler: Handler) -> Directive {
    Directive {
        name,
        module,
        in_proxy: false,
        handler,
    }
}

const fn p(name: &'static str, module: &'static str, handler: Handler) -> Directive {
    Directive {
        name,
        module,
        in_proxy: true,
        handler,
    }
}

/// Every directive ringproxy knows, with the module that must be loaded for it.
/// (`Define`, `UnDefine`, `Include`, `IncludeOptional`, `LoadModule`, `ServerRoot`,
/// `<IfModule>` and `<IfDefine>` are handled while reading, in `read.rs`.)
pub(super) static TABLE: &[Directive] = &[
    // core
    d("Listen", "core", listen),
    d("ServerName", "core", server_name),
    d("Timeout", "core", timeout),
    d("KeepAlive", "core", keep_alive),
    d("KeepAliveTimeout", "core", keep_alive_timeout),
    d("MaxKeepAliveRequests", "core", max_keep_alive_requests),
    d("LimitRequestLine", "core", limit_request_line),
    d("LimitRequestFields", "core", limit_request_fields),
    d("LimitRequestFieldSize", "core", limit_request_field_size),
    d("LimitRequestBody", "core", limit_request_body),
    d("ErrorLog", "core", error_log),
    d("LogLevel", "core", log_level),
    p("Options", "core", options),
    p("Require", "authz_core_module", require),
    p("Order", "core", access_compat),
    p("Allow", "core", access_compat),
    p("Deny", "core", access_compat),
    d("IoBackend", "core", io_backend),
    d("Threads", "core", threads),
    d(
        "RequestReadTimeout",
        "reqtimeout_module",
        request_read_timeout,
    ),
    // mod_log_config
    d("LogFormat", "log_config_module", log_format),
    d("CustomLog", "log_config_module", custom_log),
    d("TransferLog", "log_config_module", transfer_log),
    // mod_proxy, mod_proxy_balancer
    d("ProxyPass", "proxy_module", super::proxy::proxy_pass),
    d(
        "ProxyPassReverse",
        "proxy_module",
        super::proxy::proxy_pass_reverse,
    ),
    d("ProxyPreserveHost", "proxy_module", proxy_preserve_host),
    d("ProxyTimeout", "proxy_module", proxy_timeout),
    d("ProxyAddHeaders", "proxy_module", proxy_add_headers),
    d("ProxyRequests", "proxy_module", proxy_requests),
    d("ProxyVia", "proxy_module", proxy_via),
    p(
        "BalancerMember",
        "proxy_module",
        super::proxy::balancer_member,
    ),
    p("ProxySet", "proxy_module", super::proxy::proxy_set),
    // mod_rewrite
    d(
        "RewriteEngine",
        "rewrite_module",
        super::rewrite::rewrite_engine,
    ),
    d(
        "RewriteCond",
        "rewrite_module",
        super::rewrite::rewrite_cond,
    ),
    d(
        "RewriteRule",
        "rewrite_module",
        super::rewrite::rewrite_rule,
    ),
    d("RewriteMap", "rewrite_module", super::rewrite::rewrite_map),
    // mod_headers, mod_ssl, mod_proxy_hcheck: known, not supported yet
    d("Header", "headers_module", not_yet),
    d("RequestHeader", "headers_module", not_yet),
    d("SSLEngine", "ssl_module", no_tls),
    d("SSLProxyEngine", "ssl_module", no_tls),
    d("SSLCertificateFile", "ssl_module", no_tls),
    d("SSLCertificateKeyFile", "ssl_module", no_tls),
    d("ProxyHCExpr", "proxy_hcheck_module", not_yet),
    d("ProxyHCTemplate", "proxy_hcheck_module", not_yet),
    d("ProxyHCTPsize", "proxy_hcheck_module", not_yet),
    // accepted with a warning: harmless in a proxy configuration
    d("User", "unixd_module", ignored),
    d("Group", "unixd_module", ignored),
    d("ServerAdmin", "core", ignored),
    d("ServerTokens", "core", ignored),
    d("ServerSignature", "core", ignored),
    d("PidFile", "core", ignored),
    d("DefaultRuntimeDir", "core", ignored),
    d("Mutex", "core", ignored),
    d("TypesConfig", "mime_module", ignored),
    d("AddDefaultCharset", "core", ignored),
    d("DocumentRoot", "core", ignored),
    d("DirectoryIndex", "dir_module", ignored),
    d("HostnameLookups", "core", ignored),
    d("UseCanonicalName", "core", ignored),
    d("EnableSendfile", "core", ignored),
    d("EnableMMAP", "core", ignored),
    d("TraceEnable", "core", ignored),
    d("StartServers", "core", ignored),
    d("MinSpareThreads", "core", ignored),
    d("MaxSpareThreads", "core", ignored),
    d("ThreadsPerChild", "core", ignored),
    d("MaxRequestWorkers", "core", ignored),
    d("MaxConnectionsPerChild", "core", ignored),
    d("ServerLimit", "core", ignored),
    d("ThreadLimit", "core", ignored),
    d("AcceptFilter", "core", ignored),
    d("FileETag", "core", ignored),
    d("BalancerPersist", "proxy_module", ignored),
    d("BalancerInherit", "proxy_module", ignored),
    d("ProxyPassInherit", "proxy_module", ignored),
    d("SSLRandomSeed", "ssl_module", ignored),
];

pub(super) fn lookup(key: &str) -> Option<&'static Directive> {
    TABLE.iter().find(|d| d.name.eq_ignore_ascii_case(key))
}

/// Where the walk is: inside `<Proxy url>` or not.
#[derive(Debug, Clone)]
pub(super) struct ProxySection {
    /// Index into `Builder::balancers` for `<Proxy balancer://x>`; None for `<Proxy *>` etc.
    pub balancer: Option<usize>,
    pub url: String,
}

/// A `CustomLog`/`TransferLog` waiting for the nicknames (resolved after the walk, as httpd
/// resolves them after reading the whole configuration).
struct PendingLog {
    span: Span,
    directive: String,
    path: PathBuf,
    /// None: the default format (TransferLog).
    format: Option<String>,
    env: Option<(String, bool)>,
}

pub(super) struct Builder {
    pub main: PathBuf,
    pub modules: ModuleSet,
    /// ServerRoot, else the main file's directory: base of relative log paths.
    pub base_dir: PathBuf,
    pub listeners: Vec<SocketAddr>,
    pub server_name: Option<String>,
    pub io_backend: IoBackendChoice,
    pub threads: Option<usize>,
    pub timeout: Duration,
    pub proxy_timeout: Option<Duration>,
    pub keep_alive: bool,
    pub keep_alive_timeout: Duration,
    pub max_keep_alive_requests: u32,
    pub header_read_timeout: Duration,
    pub proxy_preserve_host: bool,
    pub proxy_add_headers: bool,
    pub limits: Limits,
    pub rewrite_engine: bool,
    pub rewrite_rules: Vec<RewriteRule>,
    /// RewriteConds waiting for their RewriteRule.
    pub pending_conds: Vec<(RewriteCond, Span)>,
    /// `[P]` targets naming a balancer: (name, where), checked after the walk.
    pub rule_balancer_refs: Vec<(String, Span)>,
    pub proxy_pass: Vec<ProxyPass>,
    pub proxy_pass_reverse: Vec<ProxyPassReverse>,
    pub balancers: Vec<BalancerBuild>,
    pub balancer_index: HashMap<String, usize>,
    pub section: Option<ProxySection>,
    log_formats: HashMap<String, String>,
    default_format: String,
    logs: Vec<PendingLog>,
    pub error_log: Option<PathBuf>,
    pub log_level: LogLevel,
    pub warnings: Vec<String>,
}

/// Builds the model from the read items, then validates it.
pub(super) fn build(items: Vec<Item>, reader: Reader, main: &Path) -> Result<Config, ConfError> {
    let base_dir = match &reader.server_root {
        Some(r) => r.clone(),
        None => main.parent().unwrap_or(Path::new("")).to_path_buf(),
    };
    let common = "%h %l %u %t \"%r\" %>s %b".to_string();
    let combined = format!("{common} \"%{{Referer}}i\" \"%{{User-Agent}}i\"");
    let log_formats = HashMap::from([
        ("common".to_string(), common.clone()),
        ("combinedio".to_string(), format!("{combined} %I %O")),
        ("combined".to_string(), combined),
    ]);
    let mut b = Builder {
        main: main.to_path_buf(),
        modules: reader.modules,
        base_dir,
        listeners: Vec::new(),
        server_name: None,
        io_backend: IoBackendChoice::Auto,
        threads: None,
        timeout: Duration::from_secs(60),
        proxy_timeout: None,
        keep_alive: true,
        keep_alive_timeout: Duration::from_secs(5),
        max_keep_alive_requests: 100,
        header_read_timeout: Duration::from_secs(20),
        proxy_preserve_host: false,
        proxy_add_headers: true,
        limits: Limits::default(),
        rewrite_engine: true,
        rewrite_rules: Vec::new(),
        pending_conds: Vec::new(),
        rule_balancer_refs: Vec::new(),
        proxy_pass: Vec::new(),
        proxy_pass_reverse: Vec::new(),
        balancers: Vec::new(),
        balancer_index: HashMap::new(),
        section: None,
        log_formats,
        default_format: common,
        logs: Vec::new(),
        error_log: None,
        log_level: LogLevel::Warn,
        warnings: reader.warnings,
    };
    b.walk(&items)?;
    b.finish()
}

fn invalid_command(item: &Item, name: &str) -> ConfError {
    item.err(format!(
        "Invalid command '{name}', perhaps misspelled or defined by a module not included in the server configuration"
    ))
}

impl Builder {
    pub fn warn(&mut self, item: &Item, message: impl AsRef<str>) {
        self.warnings.push(item.warn_text(message.as_ref()));
    }

    fn walk(&mut self, items: &[Item]) -> Result<(), ConfError> {
        for item in items {
            if let Some(children) = &item.children {
                self.section_item(item, children)?;
                continue;
            }
            let Some(dir) = lookup(&item.key).filter(|d| self.modules.is_loaded(d.module)) else {
                return Err(invalid_command(item, &item.name));
            };
            if self.section.is_some() && !dir.in_proxy {
                return Err(item.err(format!("{} not allowed in <Proxy> context", dir.name)));
            }
            (dir.handler)(self, item)?;
        }
        Ok(())
    }

    fn section_item(&mut self, item: &Item, children: &[Item]) -> Result<(), ConfError> {
        match item.key.as_str() {
            "proxy" => {
                if self.section.is_some() {
                    return Err(item.err("<Proxy> cannot be nested"));
                }
                let section = super::proxy::open_section(self, item)?;
                self.section = Some(section);
                let r = self.walk(children);
                self.section = None;
                r
            }
            "directory" | "directorymatch" | "location" | "locationmatch" | "files" | "filesmatch" | "proxymatch"
            | "if" | "elseif" | "else" | "limit" | "limitexcept" => Err(item.err(format!(
                "{} is not supported by ringproxy; only <Proxy>, <IfModule>, <IfDefine> sections",
                item.name
            ))),
            "virtualhost" => Err(item.err("<VirtualHost> is not supported yet")),
            _ => Err(invalid_command(item, &format!("<{}", &item.name[1..item.name.len() - 1]))),
        }
    }

    /// Every check that needs the whole configuration, then the `Config`.
    fn finish(mut self) -> Result<Config, ConfError> {
        if self.listeners.is_empty() {
            return Err(ConfError {
                file: self.main.clone(),
                line: 0,
                directive: "Listen".into(),
                message: "no Listen directive: ringproxy needs at least one address to listen on"
                    .into(),
            });
        }
        if let Some((_, span)) = self.pending_conds.first() {
            self.warnings.push(format!(
                "{span}: RewriteCond: no RewriteRule follows; the condition is ignored"
            ));
        }
        for (name, span) in std::mem::take(&mut self.rule_balancer_refs) {
            let defined = self
                .balancer_index
                .get(&name)
                .is_some_and(|&i| self.balancers[i].defined_at.is_some());
            if !defined {
                return Err(ConfError::at(
                    &span,
                    "RewriteRule",
                    format!(
                        "{name} is not defined (no <Proxy {name}> section or BalancerMember names it)"
                    ),
                ));
            }
        }
        let balancers = super::proxy::finish_balancers(&mut self)?;
        let mut access_logs = Vec::new();
        for log in std::mem::take(&mut self.logs) {
            let fmt = match &log.format {
                None => self.default_format.clone(),
                Some(f) if f.contains('%') => f.clone(),
                Some(f) => match self.log_formats.get(f) {
                    Some(f) => f.clone(),
                    None => {
                        return Err(ConfError::at(
                            &log.span,
                            &log.directive,
                            format!(
                                "unknown LogFormat nickname '{f}' (a format string must contain '%')"
                            ),
                        ));
                    }
                },
            };
            let format = crate::log::LogFormat::compile(&fmt)
                .map_err(|m| ConfError::at(&log.span, &log.directive, m))?;
            access_logs.push(AccessLog {
                path: log.path,
                format,
                env_condition: log.env,
            });
        }
        Ok(Config {
            source: self.main,
            listeners: self.listeners,
            server_name: self.server_name.unwrap_or_else(|| "localhost".into()),
            io_backend: self.io_backend,
            threads: self.threads,
            timeout: self.timeout,
            proxy_timeout: self.proxy_timeout,
            keep_alive: self.keep_alive,
            keep_alive_timeout: self.keep_alive_timeout,
            max_keep_alive_requests: self.max_keep_alive_requests,
            header_read_timeout: self.header_read_timeout,
            proxy_preserve_host: self.proxy_preserve_host,
            proxy_add_headers: self.proxy_add_headers,
            limits: self.limits,
            rewrite_engine: self.rewrite_engine,
            rewrite_rules: self.rewrite_rules,
            proxy_pass: self.proxy_pass,
            proxy_pass_reverse: self.proxy_pass_reverse,
            balancers,
            access_logs,
            error_log: self.error_log,
            log_level: self.log_level,
            modules: self.modules.names(),
            warnings: self.warnings,
        })
    }

    fn log_path(&self, item: &Item, w: &Word) -> Result<PathBuf, ConfError> {
        if w.text.starts_with('|') {
            return Err(item.err_at(w, "piped logs are not supported by ringproxy"));
        }
        if w.text.starts_with("syslog:") || w.text == "syslog" {
            return Err(item.err_at(w, "syslog logging is not supported by ringproxy"));
        }
        let p = Path::new(&w.text);
        Ok(if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.base_dir.join(p)
        })
    }
}

// ---- argument helpers, shared by proxy.rs and rewrite.rs ----

/// Exactly one argument.
pub(super) fn one<'a>(item: &'a Item, what: &str) -> Result<&'a Word, ConfError> {
    match item.args.as_slice() {
        [w] => Ok(w),
        _ => Err(item.err(format!("takes one argument, {what}"))),
    }
}

pub(super) fn on_off(item: &Item, w: &Word) -> Result<bool, ConfError> {
    if w.text.eq_ignore_ascii_case("on") {
        Ok(true)
    } else if w.text.eq_ignore_ascii_case("off") {
        Ok(false)
    } else {
        Err(item.err_at(w, format!("must be On or Off, not '{}'", w.text)))
    }
}

pub(super) fn flag(item: &Item) -> Result<bool, ConfError> {
    let w = one(item, "On or Off")?;
    on_off(item, w)
}

pub(super) fn number<T: std::str::FromStr>(
    item: &Item,
    w: &Word,
    what: &str,
) -> Result<T, ConfError> {
    w.text
        .parse()
        .map_err(|_| item.err_at(w, format!("{what} must be a number, not '{}'", w.text)))
}

/// Whole seconds, or `Nms` when `ms_ok`.
pub(super) fn duration(text: &str, ms_ok: bool) -> Option<Duration> {
    if ms_ok && let Some(ms) = text.strip_suffix("ms") {
        return ms.parse::<u64>().ok().map(Duration::from_millis);
    }
    let s = text.strip_suffix('s').filter(|_| ms_ok).unwrap_or(text);
    s.parse::<u64>().ok().map(Duration::from_secs)
}

fn seconds_arg(item: &Item, ms_ok: bool) -> Result<Duration, ConfError> {
    let w = one(
        item,
        if ms_ok {
            "a time in seconds (or Nms)"
        } else {
            "a time in seconds"
        },
    )?;
    duration(&w.text, ms_ok)
        .ok_or_else(|| item.err_at(w, format!("'{}' is not a valid time in seconds", w.text)))
}

// ---- core ----

fn listen(b: &mut Builder, item: &Item) -> Result<(), ConfError> {
    let (addr, proto) = match item.args.as_slice() {
        [a] => (a, None),
        [a, p] => (a, Some(p)),
        _ => return Err(item.err("takes one or two arguments: [address:]port [protocol]")),
    };
    if let Some(p) = proto {
        match p.text.to_ascii_lowercase().as_str() {
            "http" => {}
            "https" => {
                return Err(item.err_at(
                    p,
                    "TLS listeners (https) are not supported by ringproxy yet",
                ));
            }
            other => {
                return Err(item.err_at(
                    p,
                    format!("protocol '{other}' is not supported by ringproxy (only http)"),
                ));
            }
        }
    }
    let sa = parse_listen(&addr.text).map_err(|m| item.err_at(addr, m))?;
    if b.listeners.contains(&sa) {
        return Err(item.err_at(
            addr,
            format!("Cannot define multiple Listeners on the same IP:port ({sa})"),
        ));
    }
    b.listeners.push(sa);
    Ok(())
}

fn parse_listen(s: &str) -> Result<SocketAddr, String> {
    let port_ok = |p: u16| {
        if p == 0 {
            Err("Port must be specified (1..65535)".to_string())
        } else {
            Ok(p)
        }
    };
    if s.bytes().all(|c| c.is_ascii_digit()) {
        let port = s
            .parse::<u16>()
            .map_err(|_| format!("invalid port '{s}'"))?;
        return Ok(SocketAddr::from(([0, 0, 0, 0], port_ok(port)?)));
    }
    if let Ok(sa) = s.parse::<SocketAddr>() {
        port_ok(sa.port())?;
        return Ok(sa);
    }
    let Some((host, port)) = s.rsplit_once(':') else {
        return Err(format!("'{s}' is not [address:]port"));
    };
    let port = port_ok(
        port.parse::<u16>()
            .map_err(|_| format!("invalid port in '{s}'"))?,
    )?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    (host, port)
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| format!("could not resolve host name {host}"))
}

fn server_name(b: &mut Builder, item: &Item) -> Result<(), ConfError> {
    let w = one(item, "the server's host name [:port]")?;
    let t = &w.text;
    let t = t.split_once("://").map(|x| x.1).unwrap_or(t);
    let host = if let Some(rest) = t.strip_prefix('[') {
        format!("[{}]", rest.split(']').next().unwrap_or(""))
    } else {
        t.split(':').next().unwrap_or("").to_string()
    };
    if host.is_empty() {
        return Err(item.err_at(w, "needs a host name"));
    }
    b.server_name = Some(host);
    Ok(())
}

fn timeout(b: &mut Builder, item: &Item) -> Result<(), ConfError> {
    b.timeout = seconds_arg(item, false)?;
    Ok(())
}

fn keep_alive(b: &mut Builder, item: &Item) -> Result<(), ConfError> {
    b.keep_alive = flag(item)?;
    Ok(())
}

fn keep_alive_timeout(b: &mut Builder, item: &Item) -> Result<(), ConfError> {
    b.keep_alive_timeout = seconds_arg(item, true)?;
    Ok(())
}

fn max_keep_alive_requests(b: &mut Builder, item: &Item) -> Result<(), ConfError> {
    let w = one(item, "a number (0 = unlimited)")?;
    b.max_keep_alive_requests = number(item, w, "MaxKeepAliveRequests")?;
    Ok(())
}

fn limit_request_line(b: &mut Builder, item: &Item) -> Result<(), ConfError> {
    let w = one(item, "a size in bytes")?;
    b.limits.request_line = number(item, w, "LimitRequestLine")?;
    Ok(())
}

fn limit_request_fields(b: &mut Builder, item: &Item) -> Result<(), ConfError> {
    let w = one(item, "a number of header fields (0 = unlimited)")?;
    let n: usize = number(item, w, "LimitRequestFields")?;
    b.limits.header_fields = if n == 0 { usize::MAX } else { n };
    Ok(())
}

fn limit_request_field_size(b: &mut Builder, item: &Item) -> Result<(), ConfError> {
    let w = one(item, "a size in bytes")?;
    b.limits.field_size = number(item, w, "LimitRequestFieldSize")?;
    Ok(())
}

fn limit_request_body(b: &mut Builder, item: &Item) -> Result<(), ConfError> {
    let w = one(item, "a size in bytes (0 = unlimited)")?;
    b.limits.body = number(item, w, "LimitRequestBody")?;
    Ok(())
}

fn error_log(b: &mut Builder, item: &Item) -> Result<(), ConfError> {
    let w = one(item, "a file name")?;
    b.error_log = Some(b.log_path(item, w)?);
    Ok(())
}

fn log_level(b: &mut Builder, item: &Item) -> Result<(), ConfError> {
    if item.args.is_empty() {
        return Err(item.err("takes at least one argument: a level"));
    }
    for w in &item.args {
        if w.text.contains(':') {
            b.warn(
                item,
                format!("per-module level '{}' is ignored by ringproxy", w.text),
            );
            continue;
        }
        b.log_level = match w.text.to_ascii_lowercase().as_str() {
            "emerg" => LogLevel::Emerg,
            "alert" => LogLevel::Alert,
            "crit" => LogLevel::Crit,
            "error" => LogLevel::Error,
            "warn" => LogLevel::Warn,
            "notice" => LogLevel::Notice,
            "info" => LogLevel::Info,
            "debug" => LogLevel::Debug,
            t if t
                .strip_prefix("trace")
                .is_some_and(|n| matches!(n, "1" | "2" | "3" | "4" | "5" | "6" | "7" | "8")) =>
            {
                LogLevel::Trace
            }
            _ => {
                return Err(item.err_at(
                    w,
                    format!(
                        "'{}' is not a level: one of emerg, alert, crit, error, warn, notice, info, debug, trace1..trace8",
                        w.text
                    ),
                ));
            }
        };
    }
    Ok(())
}

fn options(_b: &mut Builder, _item: &Item) -> Result<(), ConfError> {
    // Options only concern files served from disk; a proxy serves none.
    Ok(())
}

fn require(b: &mut Builder, item: &Item) -> Result<(), ConfError> {
    let denied = match item.args.as_slice() {
        [a, g] if a.text.eq_ignore_ascii_case("all") && g.text.eq_ignore_ascii_case("granted") => {
            false
        }
        [a, g] if a.text.eq_ignore_ascii_case("all") && g.text.eq_ignore_ascii_case("denied") => {
            true
        }
        _ => {
            let args: Vec<_> = item.args.iter().map(|w| w.text.as_str()).collect();
            return Err(item.err(format!(
                "'Require {}' is not supported by ringproxy; only 'Require all granted' and 'Require all denied'",
                args.join(" ")
            )));
        }
    };
    if !denied {
        return Ok(());
    }
    match &b.section {
        Some(ProxySection { balancer: Some(i), .. }) => {
            b.balancers[*i].spec.denied = true;
            Ok(())
        }
        Some(s) => Err(item.err(format!(
            "Require all denied in <Proxy {}> is not supported; use it in a <Proxy balancer://...> section",
            s.url
        ))),
        None => Err(item.err("Require all denied outside <Proxy> is not supported")),
    }
}

fn access_compat(_b: &mut Builder, item: &Item) -> Result<(), ConfError> {
    Err(item.err(
        "Order/Allow/Deny (mod_access_compat) is not supported by ringproxy; use 'Require all granted' or 'Require all denied'",
    ))
}

fn io_backend(b: &mut Builder, item: &Item) -> Result<(), ConfError> {
    let w = one(item, "auto, uring or epoll")?;
    b.io_backend = match w.text.to_ascii_lowercase().as_str() {
        "auto" => IoBackendChoice::Auto,
        "uring" => IoBackendChoice::Uring,
        "epoll" => IoBackendChoice::Epoll,
        _ => return Err(item.err_at(w, format!("must be auto, uring or epoll, not '{}'", w.text))),
    };
    Ok(())
}

fn threads(b: &mut Builder, item: &Item) -> Result<(), ConfError> {
    let w = one(item, "the number of shard threads")?;
    let n: usize = number(item, w, "Threads")?;
    if n == 0 {
        return Err(item.err_at(w, "Threads must be at least 1"));
    }
    b.threads = Some(n);
    Ok(())
}

fn request_read_timeout(b: &mut Builder, item: &Item) -> Result<(), ConfError> {
    if item.args.is_empty() {
        return Err(item.err("takes at least one argument: header=N[-M][,MinRate=R] body=..."));
    }
    for w in &item.args {
        let Some((key, value)) = w.text.split_once('=') else {
            return Err(item.err_at(w, format!("'{}' is not key=value", w.text)));
        };
        if !key.eq_ignore_ascii_case("header") {
            continue;
        }
        let first = value.split([',', '-']).next().unwrap_or("");
        let secs: u64 = first
            .parse()
            .map_err(|_| item.err_at(w, format!("header timeout '{first}' is not a number")))?;
        if secs == 0 {
            return Err(item.err_at(w, "header=0 (no limit) is not supported by ringproxy"));
        }
        b.header_read_timeout = Duration::from_secs(secs);
        break;
    }
    Ok(())
}

// ---- mod_log_config ----

fn log_format(b: &mut Builder, item: &Item) -> Result<(), ConfError> {
    let (fmt, nick) = match item.args.as_slice() {
        [f] => (f, None),
        [f, n] => (f, Some(n)),
        _ => return Err(item.err("takes one or two arguments: a format string [nickname]")),
    };
    crate::log::LogFormat::compile(&fmt.text).map_err(|m| item.err_at(fmt, m))?;
    match nick {
        Some(n) => {
            b.log_formats.insert(n.text.clone(), fmt.text.clone());
        }
        None => b.default_format = fmt.text.clone(),
    }
    Ok(())
}

fn custom_log(b: &mut Builder, item: &Item) -> Result<(), ConfError> {
    let (path, fmt, env) = match item.args.as_slice() {
        [p, f] => (p, f, None),
        [p, f, e] => (p, f, Some(e)),
        _ => {
            return Err(item.err(
                "takes two or three arguments: a file name, a format or nickname, [env=[!]VAR]",
            ));
        }
    };
    let env = match env {
        None => None,
        Some(e) => {
            if e.text.starts_with("expr=") {
                return Err(item.err_at(
                    e,
                    "expr= conditions are not supported by ringproxy; use env=[!]VAR",
                ));
            }
            let Some(var) = e.text.strip_prefix("env=") else {
                return Err(item.err_at(
                    e,
                    format!("'{}': the third argument must be env=[!]VAR", e.text),
                ));
            };
            let (var, set) = match var.strip_prefix('!') {
                Some(v) => (v, false),
                None => (var, true),
            };
            if var.is_empty() {
                return Err(item.err_at(e, "env= needs a variable name"));
            }
            Some((var.to_string(), set))
        }
    };
    let path = b.log_path(item, path)?;
    if fmt.text.contains('%') {
        crate::log::LogFormat::compile(&fmt.text).map_err(|m| item.err_at(fmt, m))?;
    }
    b.logs.push(PendingLog {
        span: item.span.clone(),
        directive: item.name.clone(),
        path,
        format: Some(fmt.text.clone()),
        env,
    });
    Ok(())
}

fn transfer_log(b: &mut Builder, item: &Item) -> Result<(), ConfError> {
    let w = one(item, "a file name")?;
    let path = b.log_path(item, w)?;
    b.logs.push(PendingLog {
        span: item.span.clone(),
        directive: item.name.clone(),
        path,
        format: None,
        env: None,
    });
    Ok(())
}

// ---- mod_proxy server-level switches ----

fn proxy_preserve_host(b: &mut Builder, item: &Item) -> Result<(), ConfError> {
    b.proxy_preserve_host = flag(item)?;
    Ok(())
}

fn proxy_add_headers(b: &mut Builder, item: &Item) -> Result<(), ConfError> {
    b.proxy_add_headers = flag(item)?;
    Ok(())
}

fn proxy_timeout(b: &mut Builder, item: &Item) -> Result<(), ConfError> {
    let t = seconds_arg(item, false)?;
    if t.is_zero() {
        return Err(item.err("ProxyTimeout must be at least 1 second"));
    }
    b.proxy_timeout = Some(t);
    Ok(())
}

fn proxy_requests(_b: &mut Builder, item: &Item) -> Result<(), ConfError> {
    if flag(item)? {
        return Err(item.err("forward proxying (ProxyRequests On) is not supported by ringproxy"));
    }
    Ok(())
}

fn proxy_via(b: &mut Builder, item: &Item) -> Result<(), ConfError> {
    let w = one(item, "Off, On, Full or Block")?;
    match w.text.to_ascii_lowercase().as_str() {
        "off" => {}
        "on" | "full" | "block" => b.warn(
            item,
            format!(
                "ProxyVia {} is not supported by ringproxy; no Via header is added or removed",
                w.text
            ),
        ),
        _ => return Err(item.err_at(w, "must be Off, On, Full or Block")),
    }
    Ok(())
}

// ---- known but unsupported, or harmless ----

fn not_yet(_b: &mut Builder, item: &Item) -> Result<(), ConfError> {
    Err(item.err(format!("{} is not supported by ringproxy yet", item.name)))
}

fn no_tls(_b: &mut Builder, item: &Item) -> Result<(), ConfError> {
    Err(item.err(format!(
        "{} is not supported by ringproxy yet (no TLS)",
        item.name
    )))
}

fn ignored(b: &mut Builder, item: &Item) -> Result<(), ConfError> {
    b.warn(
        item,
        "accepted for compatibility; it has no effect in ringproxy",
    );
    Ok(())
}
