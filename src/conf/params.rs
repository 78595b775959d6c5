//! Worker and balancer parameters (`key=value` on `<Proxy>`, `BalancerMember`, `ProxySet` and
//! `ProxyPass`): the key tables and their value parsers.

use std::time::Duration;

use super::ConfError;
use super::args::{duration, on_off};
use super::builder::Builder;
use super::model::*;
use super::parse::Word;
use super::read::Item;

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
    pub(super) fn apply(&self, m: &mut MemberSpec) {
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

/// The value `v` of the `key=value` word `w`, as On or Off.
fn value_on_off(item: &Item, w: &Word, v: &str) -> Result<bool, ConfError> {
    on_off(
        item,
        &Word {
            text: v.to_string(),
            line: w.line,
        },
    )
}

pub(super) fn split_kv<'a>(item: &Item, w: &'a Word) -> Result<(String, &'a str), ConfError> {
    match w.text.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_ascii_lowercase(), v)),
        _ => Err(item.err_at(w, format!("'{}' is not key=value", w.text))),
    }
}

/// invalid; `Err` with `unknown` text if the key is not a worker key.
pub(super) fn worker_param(
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
            let on = value_on_off(item, w, v)?;
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
pub(super) fn balancer_param(
    b: &mut Builder,
    item: &Item,
    w: &Word,
    i: usize,
    key: &str,
    v: &str,
) -> Result<bool, ConfError> {
    let flag = || value_on_off(item, w, v);
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
        "scolonpathdelim" => b.balancers[i].spec.scolonpathdelim = flag()?,
        "nofailover" => b.balancers[i].spec.nofailover = flag()?,
        "forcerecovery" => b.balancers[i].spec.force_recovery = flag()?,
        "failontimeout" => {
            flag()?;
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

/// Worker parameters, in order; those accepted and ignored are left out.
pub(super) fn worker_params(
    b: &mut Builder,
    item: &Item,
    params: &[Word],
) -> Result<Vec<WorkerOp>, ConfError> {
    let mut ops = Vec::new();
    for w in params {
        let (k, v) = split_kv(item, w)?;
        if let Some(op) = worker_param(b, item, w, &k, v)? {
            ops.push(op);
        }
    }
    Ok(ops)
}

/// Balancer parameters on balancer `i`; a key that is not a balancer key is an error.
pub(super) fn balancer_params(
    b: &mut Builder,
    item: &Item,
    i: usize,
    params: &[Word],
) -> Result<(), ConfError> {
    for w in params {
        let (k, v) = split_kv(item, w)?;
        if !balancer_param(b, item, w, i, &k, v)? {
            return Err(item.err_at(w, format!("unknown Balancer parameter '{}'", w.text)));
        }
    }
    Ok(())
}
