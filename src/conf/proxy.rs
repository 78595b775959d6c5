//! mod_proxy and mod_proxy_balancer directives: `<Proxy>`, `BalancerMember`, `ProxySet`,
//! `ProxyPass`, `ProxyPassReverse`; worker and balancer parameters; member URLs.
//!
//! Balancers are created when first named (a `ProxyPass` may come before its `<Proxy>`), and
//! checked in `finish_balancers` once the whole file is read. `ProxySet` worker parameters in a
//! balancer are defaults for every member, applied before each member's own parameters,
//! whatever their order in the file.

use std::net::ToSocketAddrs;
use std::time::Duration;

use super::ConfError;
use super::directives::{Builder, ProxySection, duration, on_off};
use super::model::*;
use super::parse::{Span, Word};
use super::read::Item;

/// httpd's default balancer slot count; ringproxy's cap on members.
const MAX_MEMBERS: usize = 64;

/// A balancer while the file is read.
pub(super) struct BalancerBuild {
    /// Everything but `members`.
    pub spec: BalancerSpec,
    pub members: Vec<MemberBuild>,
    /// `ProxySet` worker parameters: defaults for every member.
    pub defaults: Vec<WorkerOp>,
    /// The `<Proxy>`, `BalancerMember` or `ProxySet` that defined it; None while it is only
    /// referenced (by ProxyPass / ProxyPassReverse).
    pub defined_at: Option<Span>,
    /// The first line that named it, and its directive.
    pub first_ref: Span,
    pub first_ref_directive: String,
    /// `lbmethod=` was given (so its module was checked then).
    pub lbmethod_set: bool,
}

pub(super) struct MemberBuild {
    pub base: MemberSpec,
    pub ops: Vec<WorkerOp>,
    pub span: Span,
}

/// One validated worker parameter.
#[derive(Debug, Clone)]
pub(super) enum WorkerOp {
    LbFactor(u32),
    LbSet(u32),
    Route(String),
    Redirect(String),
    /// (set, bit) in order: `S-E` is [(true, S), (false, E)].
    Status(Vec<(bool, u16)>),
    Retry(Duration),
    Timeout(Duration),
    ConnectionTimeout(Duration),
    Ttl(Duration),
    Max(u32),
    Reuse(bool),
}

impl WorkerOp {
    fn apply(&self, m: &mut MemberSpec) {
        match self {
            WorkerOp::LbFactor(f) => m.lbfactor = *f,
            WorkerOp::LbSet(s) => m.lbset = *s,
            WorkerOp::Route(r) => m.route = r.clone(),
            WorkerOp::Redirect(r) => m.redirect = r.clone(),
            WorkerOp::Status(ops) => {
                for &(set, bit) in ops {
                    if set {
                        m.status |= bit;
                    } else {
                        m.status &= !bit;
                    }
                }
            }
            WorkerOp::Retry(d) => m.retry = *d,
            WorkerOp::Timeout(d) => m.timeout = Some(*d),
            WorkerOp::ConnectionTimeout(d) => m.connection_timeout = Some(*d),
            WorkerOp::Ttl(d) => m.ttl = Some(*d),
            WorkerOp::Max(n) => m.max = Some(*n),
            WorkerOp::Reuse(r) => m.enable_reuse = *r,
        }
    }
}

/// A parsed `http://host[:port][/path]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct WorkerUrl {
    /// Lower-cased; IPv6 literals keep their brackets.
    pub host: String,
    pub port: u16,
    /// "" when none or "/".
    pub path: String,
    /// scheme and host lower-cased, port 80 dropped, path kept, a lone "/" dropped.
    pub normalized: String,
}

pub(super) fn parse_worker_url(s: &str) -> Result<WorkerUrl, String> {
    let Some((scheme, rest)) = s.split_once("://") else {
        return Err(format!("'{s}' is not a URL (http://host[:port][/path])"));
    };
    let scheme = scheme.to_ascii_lowercase();
    if scheme != "http" {
        let why = if scheme == "https" {
            " (TLS to backends is not supported yet)"
        } else {
            ""
        };
        return Err(format!("scheme {scheme} not supported by ringproxy{why}"));
    }
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    if authority.contains('@') {
        return Err(format!(
            "'{s}': user information in a worker URL is not supported"
        ));
    }
    if path.contains(['?', '#']) {
        return Err(format!(
            "'{s}': a worker URL cannot have a query string or fragment"
        ));
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let Some((addr, after)) = v6.split_once(']') else {
            return Err(format!("'{s}': unterminated IPv6 address"));
        };
        (format!("[{addr}]"), after.strip_prefix(':'))
    } else {
        match authority.split_once(':') {
            Some((h, p)) => (h.to_string(), Some(p)),
            None => (authority.to_string(), None),
        }
    };
    if host.is_empty() || host == "[]" {
        return Err(format!("'{s}': no host name"));
    }
    let port = match port {
        None | Some("") => 80,
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n > 0 => n,
            _ => return Err(format!("'{s}': invalid port '{p}'")),
        },
    };
    let host = host.to_ascii_lowercase();
    let path = if path == "/" {
        String::new()
    } else {
        path.to_string()
    };
    let port_part = if port == 80 {
        String::new()
    } else {
        format!(":{port}")
    };
    let normalized = format!("http://{host}{port_part}{path}");
    Ok(WorkerUrl {
        host,
        port,
        path,
        normalized,
    })
}

/// `balancer://NAME[/path]` -> ("balancer://name", "/path"); None if not a balancer URL.
pub(super) fn balancer_url(s: &str) -> Option<Result<(String, String), String>> {
    let scheme = s.get(..11)?;
    if !scheme.eq_ignore_ascii_case("balancer://") {
        return None;
    }
    let rest = &s[11..];
    let (name, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    if name.is_empty() {
        return Some(Err(format!("'{s}': balancer URL without a name")));
    }
    let path = if path == "/" { "" } else { path };
    Some(Ok((
        format!("balancer://{}", name.to_ascii_lowercase()),
        path.to_string(),
    )))
}

fn need_balancer_modules(b: &Builder, item: &Item, name: &str) -> Result<(), ConfError> {
    for m in ["proxy_balancer_module", "slotmem_shm_module"] {
        if !b.modules.is_loaded(m) {
            return Err(item.err(format!(
                "{name} needs LoadModule proxy_balancer_module and LoadModule slotmem_shm_module ({m} is not loaded)"
            )));
        }
    }
    Ok(())
}

fn balancer_index(b: &mut Builder, item: &Item, name: &str, implicit: bool) -> usize {
    let span = &item.span;
    if let Some(&i) = b.balancer_index.get(name) {
        return i;
    }
    let spec = BalancerSpec {
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
    };
    b.balancers.push(BalancerBuild {
        spec,
        members: Vec::new(),
        defaults: Vec::new(),
        defined_at: None,
        first_ref: span.clone(),
        first_ref_directive: item.name.clone(),
        lbmethod_set: false,
    });
    b.balancer_index
        .insert(name.to_string(), b.balancers.len() - 1);
    b.balancers.len() - 1
}

/// A balancer named by `<Proxy>`, `BalancerMember` or `ProxySet`: defined from here on.
fn define_balancer(b: &mut Builder, item: &Item, url: &Word) -> Result<usize, ConfError> {
    let (name, _path) = match balancer_url(&url.text) {
        Some(r) => r.map_err(|m| item.err_at(url, m))?,
        None => {
            return Err(item.err_at(url, format!("'{}' is not a balancer://NAME URL", url.text)));
        }
    };
    need_balancer_modules(b, item, &name)?;
    let i = balancer_index(b, item, &name, false);
    if b.balancers[i].defined_at.is_none() {
        b.balancers[i].defined_at = Some(item.span.clone());
    }
    Ok(i)
}

fn split_kv<'a>(item: &Item, w: &'a Word) -> Result<(String, &'a str), ConfError> {
    match w.text.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_ascii_lowercase(), v)),
        _ => Err(item.err_at(w, format!("'{}' is not key=value", w.text))),
    }
}

/// A worker parameter: Ok(Some(op)), Ok(None) if accepted and ignored (with a warning), Err if
/// invalid; `Err` with `unknown` text if the key is not a worker key.
fn worker_param(
    b: &mut Builder,
    item: &Item,
    w: &Word,
    key: &str,
    v: &str,
) -> Result<Option<WorkerOp>, ConfError> {
    let int = |what: &str| -> Result<i64, ConfError> {
        v.parse::<i64>()
            .map_err(|_| item.err_at(w, format!("{what} must be a number, not '{v}'")))
    };
    let op = match key {
        "loadfactor" => {
            let lf: f64 = v.parse().unwrap_or(f64::NAN);
            if !(1.0..=100.0).contains(&lf) {
                return Err(item.err_at(w, "LoadFactor must be a number between 1..100"));
            }
            WorkerOp::LbFactor((lf * 100.0) as u32)
        }
        "lbset" => {
            let n = int("LBset")?;
            if !(0..=99).contains(&n) {
                return Err(item.err_at(w, "LBset must be between 0 and 99"));
            }
            WorkerOp::LbSet(n as u32)
        }
        "route" | "redirect" => {
            if v.len() >= 64 {
                let what = if key == "route" { "Route" } else { "Redirect" };
                return Err(item.err_at(w, format!("{what} length must be < 64 characters")));
            }
            if key == "route" {
                WorkerOp::Route(v.to_string())
            } else {
                WorkerOp::Redirect(v.to_string())
            }
        }
        "status" => WorkerOp::Status(parse_status(v).map_err(|m| item.err_at(w, m))?),
        "retry" => {
            let n = int("Retry")?;
            if n < 0 {
                return Err(item.err_at(w, "Retry must be a positive value"));
            }
            WorkerOp::Retry(Duration::from_secs(n as u64))
        }
        "timeout" | "ttl" => {
            let n = int(if key == "ttl" { "TTL" } else { "Timeout" })?;
            if n < 1 {
                let what = if key == "ttl" { "TTL" } else { "Timeout" };
                return Err(item.err_at(w, format!("{what} must be at least one second")));
            }
            let d = Duration::from_secs(n as u64);
            if key == "ttl" {
                WorkerOp::Ttl(d)
            } else {
                WorkerOp::Timeout(d)
            }
        }
        "connectiontimeout" => match duration(v, true) {
            Some(d) if !d.is_zero() => WorkerOp::ConnectionTimeout(d),
            _ => return Err(item.err_at(w, "Connectiontimeout must be at least one millisecond")),
        },
        "max" => {
            let n = int("Max")?;
            if n < 0 || n > u32::MAX as i64 {
                return Err(item.err_at(w, "Max must be a positive value"));
            }
            WorkerOp::Max(n as u32)
        }
        "enablereuse" | "disablereuse" => {
            let on = on_off(
                item,
                &Word {
                    text: v.to_string(),
                    line: w.line,
                },
            )?;
            WorkerOp::Reuse(if key == "enablereuse" { on } else { !on })
        }
        "smax" | "min" | "acquire" | "keepalive" | "flushpackets" | "flushwait"
        | "iobuffersize" | "receivebuffersize" | "ping" | "responsefieldsize" | "addressttl" => {
            b.warn(
                item,
                format!(
                    "worker parameter '{}' is accepted but ignored by ringproxy",
                    w.text
                ),
            );
            return Ok(None);
        }
        "upgrade" | "secret" | "flusher" | "mapping" => {
            return Err(item.err_at(
                w,
                format!("worker parameter '{key}' is not supported by ringproxy"),
            ));
        }
        k if k.starts_with("hc") => {
            return Err(item.err_at(
                w,
                format!("health-check parameter '{k}' is not supported by ringproxy yet"),
            ));
        }
        _ => return Err(item.err_at(w, format!("unknown Worker parameter '{}'", w.text))),
    };
    Ok(Some(op))
}

fn parse_status(v: &str) -> Result<Vec<(bool, u16)>, String> {
    let mut set = true;
    let mut out = Vec::new();
    for c in v.chars() {
        let bit = match c.to_ascii_uppercase() {
            '+' => {
                set = true;
                continue;
            }
            '-' => {
                set = false;
                continue;
            }
            'D' => status::DISABLED,
            'S' => status::STOPPED,
            'I' => status::IGNORE_ERRORS,
            'R' => status::HOT_SPARE,
            'H' => status::HOT_STANDBY,
            'E' => status::IN_ERROR,
            'N' => status::DRAIN,
            'C' => status::HC_FAILED,
            // httpd's internal O(k) G(raceful) U(sed) F: accepted, nothing to record.
            'O' | 'G' | 'U' | 'F' => continue,
            _ => {
                return Err(format!(
                    "unknown status parameter option '{c}' in status={v} (use D S I R H E N C with + or -)"
                ));
            }
        };
        out.push((set, bit));
    }
    Ok(out)
}

/// A balancer parameter on balancer `i`: Ok(false) when `key` is not a balancer key.
fn balancer_param(
    b: &mut Builder,
    item: &Item,
    w: &Word,
    i: usize,
    key: &str,
    v: &str,
) -> Result<bool, ConfError> {
    let flag = |b: &Builder| -> Result<bool, ConfError> {
        let _ = b;
        on_off(
            item,
            &Word {
                text: v.to_string(),
                line: w.line,
            },
        )
    };
    let name = b.balancers[i].spec.name.clone();
    match key {
        "lbmethod" => {
            let m = v.to_ascii_lowercase();
            if m == "heartbeat" {
                return Err(item.err_at(
                    w,
                    "lbmethod=heartbeat is not supported by this ringproxy yet",
                ));
            }
            let kind = match m.as_str() {
                "byrequests" => LbMethodKind::ByRequests,
                "bytraffic" => LbMethodKind::ByTraffic,
                "bybusyness" => LbMethodKind::ByBusyness,
                _ => return Err(item.err_at(w, format!("unknown lbmethod lbmethod={v}; {name}"))),
            };
            let module = format!("lbmethod_{m}_module");
            if !b.modules.is_loaded(&module) {
                return Err(item.err_at(
                    w,
                    format!(
                        "unknown lbmethod lbmethod={v}; {name} (LoadModule {module} is missing)"
                    ),
                ));
            }
            b.balancers[i].spec.lbmethod = kind;
            b.balancers[i].lbmethod_set = true;
        }
        "stickysession" => {
            if v.is_empty() {
                return Err(item.err_at(w, "stickysession needs a name"));
            }
            let v = if v.len() >= 64 {
                b.warn(
                    item,
                    "stickysession longer than 63 characters is truncated (as httpd does)",
                );
                &v[..v
                    .char_indices()
                    .take_while(|(i, _)| *i < 63)
                    .last()
                    .map(|(i, c)| i + c.len_utf8())
                    .unwrap_or(0)]
            } else {
                v
            };
            let (cookie, url_param) = v.split_once('|').unwrap_or((v, v));
            b.balancers[i].spec.sticky = Some(StickySpec {
                cookie: cookie.to_string(),
                url_param: url_param.to_string(),
            });
        }
        "stickysessionsep" => {
            b.balancers[i].spec.sticky_sep = if v.eq_ignore_ascii_case("off") {
                None
            } else if v.len() == 1 {
                Some(v.as_bytes()[0])
            } else {
                return Err(item.err_at(w, "stickysessionsep must be a single character or Off"));
            };
        }
        "scolonpathdelim" => b.balancers[i].spec.scolonpathdelim = flag(b)?,
        "nofailover" => b.balancers[i].spec.nofailover = flag(b)?,
        "forcerecovery" => b.balancers[i].spec.force_recovery = flag(b)?,
        "failontimeout" => {
            flag(b)?;
            b.warn(
                item,
                format!("'{}' is accepted but ignored by ringproxy", w.text),
            );
        }
        "maxattempts" => {
            let n: u32 = v.parse().map_err(|_| {
                item.err_at(w, "maximum number of attempts must be a positive number")
            })?;
            b.balancers[i].spec.max_attempts = Some(n);
        }
        "timeout" => {
            let n: u64 = v
                .parse()
                .map_err(|_| item.err_at(w, "timeout must be a number of seconds"))?;
            if n < 1 {
                return Err(item.err_at(w, "timeout must be at least one second"));
            }
            b.balancers[i].spec.timeout = Some(Duration::from_secs(n));
        }
        "failonstatus" => {
            let mut codes = Vec::new();
            for c in v.split([',', ' ']).filter(|c| !c.is_empty()) {
                match c.parse::<u16>() {
                    Ok(n) if (100..=599).contains(&n) => codes.push(n),
                    _ => {
                        return Err(item.err_at(
                            w,
                            "failonstatus must be one or more HTTP response codes (100..599)",
                        ));
                    }
                }
            }
            if codes.is_empty() {
                return Err(item.err_at(
                    w,
                    "failonstatus must be one or more HTTP response codes (100..599)",
                ));
            }
            b.balancers[i].spec.fail_on_status = codes;
        }
        "nonce" => {}
        "growth" => {
            let n: u32 = v
                .parse()
                .map_err(|_| item.err_at(w, "growth must be a number"))?;
            if n > 100 {
                return Err(item.err_at(w, "growth must be between 1 and 100"));
            }
        }
        _ => return Ok(false),
    }
    Ok(true)
}

/// `<Proxy url [balancer params]>`.
pub(super) fn open_section(b: &mut Builder, item: &Item) -> Result<ProxySection, ConfError> {
    let Some((url, params)) = item.args.split_first() else {
        return Err(item.err("<Proxy> needs a URL: <Proxy balancer://NAME> or <Proxy *>"));
    };
    let text = url.text.strip_prefix("proxy:").unwrap_or(&url.text);
    let url = Word {
        text: text.to_string(),
        line: url.line,
    };
    if balancer_url(&url.text).is_none() {
        if let Some(p) = params.first() {
            return Err(item.err_at(
                p,
                format!(
                    "parameters on <Proxy {}> are not supported by ringproxy",
                    url.text
                ),
            ));
        }
        return Ok(ProxySection {
            balancer: None,
            url: url.text,
        });
    }
    let i = define_balancer(b, item, &url)?;
    for w in params {
        let (k, v) = split_kv(item, w)?;
        if !balancer_param(b, item, w, i, &k, v)? {
            return Err(item.err_at(w, format!("unknown Balancer parameter '{}'", w.text)));
        }
    }
    Ok(ProxySection {
        balancer: Some(i),
        url: b.balancers[i].spec.name.clone(),
    })
}

/// `BalancerMember [balancer://x] url [params]`.
pub(super) fn balancer_member(b: &mut Builder, item: &Item) -> Result<(), ConfError> {
    let (i, rest) = match &b.section {
        Some(ProxySection {
            balancer: Some(i), ..
        }) => (*i, item.args.as_slice()),
        Some(s) => {
            return Err(item.err(format!(
                "BalancerMember must be in a <Proxy balancer://...> section, not <Proxy {}>",
                s.url
            )));
        }
        None => {
            let Some((bal, rest)) = item.args.split_first() else {
                return Err(item.err("takes a balancer://NAME and a URL outside <Proxy>"));
            };
            (define_balancer(b, item, bal)?, rest)
        }
    };
    let Some((url, params)) = rest.split_first() else {
        return Err(item.err("needs a URL: BalancerMember http://host[:port] [key=value ...]"));
    };
    if balancer_url(&url.text).is_some() {
        return Err(item.err_at(url, "a member URL cannot be a balancer:// URL"));
    }
    let u = parse_worker_url(&url.text).map_err(|m| item.err_at(url, m))?;
    let mut ops = Vec::new();
    for w in params {
        let (k, v) = split_kv(item, w)?;
        if let Some(op) = worker_param(b, item, w, &k, v)? {
            ops.push(op);
        }
    }
    if b.balancers[i]
        .members
        .iter()
        .any(|m| m.base.url == u.normalized)
    {
        for w in params {
            b.warn(
                item,
                format!(
                    "AH01150: Ignoring parameter '{}' for worker '{}' because of worker sharing",
                    w.text, u.normalized
                ),
            );
        }
        return Ok(());
    }
    let base = member_base(item, url, &u)?;
    b.balancers[i].members.push(MemberBuild {
        base,
        ops,
        span: item.span.clone(),
    });
    Ok(())
}

fn member_base(item: &Item, w: &Word, u: &WorkerUrl) -> Result<MemberSpec, ConfError> {
    let bare = u.host.trim_start_matches('[').trim_end_matches(']');
    let addrs: Vec<_> = (bare, u.port)
        .to_socket_addrs()
        .map_err(|e| item.err_at(w, format!("could not resolve host name {bare}: {e}")))?
        .collect();
    if addrs.is_empty() {
        return Err(item.err_at(w, format!("could not resolve host name {bare}: no address")));
    }
    Ok(MemberSpec {
        url: u.normalized.clone(),
        host: u.host.clone(),
        port: u.port,
        path: u.path.clone(),
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
    })
}

/// `ProxySet [url] key=value ...`.
pub(super) fn proxy_set(b: &mut Builder, item: &Item) -> Result<(), ConfError> {
    let (target, params) = match item.args.split_first() {
        Some((first, rest)) if !first.text.contains('=') => (Some(first), rest),
        _ => (None, item.args.as_slice()),
    };
    if params.is_empty() {
        return Err(item.err("needs at least one key=value parameter"));
    }
    let i = match (target, &b.section) {
        (Some(t), _) if balancer_url(&t.text).is_some() => {
            let i = define_balancer(b, item, t)?;
            if let Some(ProxySection {
                balancer: Some(cur),
                url,
            }) = &b.section
                && *cur != i
            {
                return Err(item.err_at(t, format!("ProxySet for {} inside <Proxy {url}>", t.text)));
            }
            i
        }
        (Some(t), _) => {
            return Err(item.err_at(
                t,
                format!(
                    "ProxySet on a worker URL ({}) is not supported by ringproxy yet; put the parameters on its BalancerMember or ProxyPass line",
                    t.text
                ),
            ));
        }
        (
            None,
            Some(ProxySection {
                balancer: Some(i), ..
            }),
        ) => *i,
        (None, Some(s)) => {
            return Err(item.err(format!(
                "ProxySet inside <Proxy {}> is not supported by ringproxy",
                s.url
            )));
        }
        (None, None) => return Err(item.err("needs a balancer://NAME URL outside <Proxy>")),
    };
    for w in params {
        let (k, v) = split_kv(item, w)?;
        if balancer_param(b, item, w, i, &k, v)? {
            continue;
        }
        match worker_param(b, item, w, &k, v) {
            Ok(Some(op)) => b.balancers[i].defaults.push(op),
            Ok(None) => {}
            Err(e) if e.message.starts_with("unknown Worker parameter") => {
                return Err(item.err_at(
                    w,
                    format!("unknown Balancer or Worker parameter '{}'", w.text),
                ));
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// `ProxyPass path url|! [key=value ...]`.
pub(super) fn proxy_pass(b: &mut Builder, item: &Item) -> Result<(), ConfError> {
    let [path, target, params @ ..] = item.args.as_slice() else {
        return Err(item.err("takes a path and a URL (or !), then optional key=value parameters"));
    };
    if !path.text.starts_with('/') {
        return Err(item.err_at(path, format!("the path '{}' must start with /", path.text)));
    }
    for w in params {
        if !w.text.contains('=') {
            let why = match w.text.to_ascii_lowercase().as_str() {
                "nocanon" | "noquery" | "interpolate" => {
                    format!("ProxyPass flag '{}' is not supported by ringproxy", w.text)
                }
                _ => format!("'{}' is not key=value", w.text),
            };
            return Err(item.err_at(w, why));
        }
    }
    let target = if target.text == "!" {
        if let Some(w) = params.first() {
            return Err(item.err_at(w, "ProxyPass path ! takes no parameters"));
        }
        PassTarget::Exclude
    } else if let Some(r) = balancer_url(&target.text) {
        let (name, bpath) = r.map_err(|m| item.err_at(target, m))?;
        need_balancer_modules(b, item, &name)?;
        let i = balancer_index(b, item, &name, false);
        for w in params {
            let (k, v) = split_kv(item, w)?;
            if !balancer_param(b, item, w, i, &k, v)? {
                return Err(item.err_at(w, format!("unknown Balancer parameter '{}'", w.text)));
            }
        }
        PassTarget::Balancer {
            balancer: i,
            path: bpath,
        }
    } else {
        let u = parse_worker_url(&target.text).map_err(|m| item.err_at(target, m))?;
        let mut ops = Vec::new();
        for w in params {
            let (k, v) = split_kv(item, w)?;
            if let Some(op) = worker_param(b, item, w, &k, v)? {
                ops.push(op);
            }
        }
        let i = match b.balancer_index.get(&u.normalized) {
            Some(&i) => {
                for w in params {
                    b.warn(
                        item,
                        format!("AH01150: Ignoring parameter '{}' for worker '{}' because of worker sharing", w.text, u.normalized),
                    );
                }
                i
            }
            None => {
                let base = member_base(item, target, &u)?;
                let i = balancer_index(b, item, &u.normalized, true);
                b.balancers[i].defined_at = Some(item.span.clone());
                b.balancers[i].members.push(MemberBuild {
                    base,
                    ops,
                    span: item.span.clone(),
                });
                i
            }
        };
        PassTarget::Balancer {
            balancer: i,
            path: String::new(),
        }
    };
    b.proxy_pass.push(ProxyPass {
        path: path.text.clone(),
        target,
    });
    Ok(())
}

/// `ProxyPassReverse path url`.
pub(super) fn proxy_pass_reverse(b: &mut Builder, item: &Item) -> Result<(), ConfError> {
    let [path, url, rest @ ..] = item.args.as_slice() else {
        return Err(item.err("takes two arguments: a path and a URL"));
    };
    if let Some(w) = rest.first() {
        return Err(item.err_at(
            w,
            format!(
                "'{}' is not supported by ringproxy (ProxyPassReverse path url)",
                w.text
            ),
        ));
    }
    let target = match balancer_url(&url.text) {
        Some(r) => {
            let (name, bpath) = r.map_err(|m| item.err_at(url, m))?;
            need_balancer_modules(b, item, &name)?;
            ReverseTarget::Balancer {
                balancer: balancer_index(b, item, &name, false),
                path: bpath,
            }
        }
        None => ReverseTarget::Url(url.text.clone()),
    };
    b.proxy_pass_reverse.push(ProxyPassReverse {
        path: path.text.clone(),
        target,
    });
    Ok(())
}

/// Checks every balancer and builds its members: ProxySet defaults, then the member's own
/// parameters.
pub(super) fn finish_balancers(b: &mut Builder) -> Result<Vec<BalancerSpec>, ConfError> {
    let mut out = Vec::new();
    for bb in std::mem::take(&mut b.balancers) {
        let name = &bb.spec.name;
        let Some(defined_at) = &bb.defined_at else {
            return Err(ConfError::at(
                &bb.first_ref,
                &bb.first_ref_directive,
                format!(
                    "{name} is not defined (no <Proxy {name}> section or BalancerMember names it)"
                ),
            ));
        };
        if bb.members.is_empty() {
            return Err(ConfError::at(
                defined_at,
                "<Proxy>",
                format!("{name} has no BalancerMember"),
            ));
        }
        if let Some(m) = bb.members.get(MAX_MEMBERS) {
            return Err(ConfError::at(
                &m.span,
                "BalancerMember",
                format!("{name} has more than {MAX_MEMBERS} members"),
            ));
        }
        if !bb.spec.implicit
            && !bb.lbmethod_set
            && !b.modules.is_loaded("lbmethod_byrequests_module")
        {
            return Err(ConfError::at(
                defined_at,
                "LoadModule",
                format!(
                    "{name}: the default lbmethod byrequests needs LoadModule lbmethod_byrequests_module"
                ),
            ));
        }
        let mut spec = bb.spec;
        for m in bb.members {
            let mut member = m.base;
            for op in bb.defaults.iter().chain(m.ops.iter()) {
                op.apply(&mut member);
            }
            spec.members.push(member);
        }
        out.push(spec);
    }
    Ok(out)
}
