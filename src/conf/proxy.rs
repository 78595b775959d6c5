//! mod_proxy and mod_proxy_balancer directives: `<Proxy>`, `BalancerMember`, `ProxySet`,
//! `ProxyPass`, `ProxyPassReverse`, and the server-level switches (`ProxyPreserveHost`,
//! `ProxyTimeout`, ...). Worker and balancer `key=value` parameters are parsed in `params.rs`,
//! member URLs in `member_url.rs`.
//!
//! Balancers are created when first named (a `ProxyPass` may come before its `<Proxy>`), and
//! checked in `finish_balancers` once the whole file is read. `ProxySet` worker parameters in a
//! balancer are defaults for every member, applied before each member's own parameters,
//! whatever their order in the file.

use super::ConfError;
use super::args::{flag, one, seconds_arg};
use super::builder::{Builder, ProxySection};
use super::member_url::{balancer_url, member_base, parse_worker_url};
use super::model::*;
use super::params::{
    WorkerOp, balancer_param, balancer_params, split_kv, worker_param, worker_params,
};
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

/// Balancer `name` needs mod_proxy_balancer and mod_slotmem_shm: the error message when one is
/// not loaded (also used for `RewriteRule [P]` targets).
pub(super) fn need_balancer_modules(b: &Builder, name: &str) -> Result<(), String> {
    for m in ["proxy_balancer_module", "slotmem_shm_module"] {
        if !b.modules.is_loaded(m) {
            return Err(format!(
                "{name} needs LoadModule proxy_balancer_module and LoadModule slotmem_shm_module ({m} is not loaded)"
            ));
        }
    }
    Ok(())
}

fn balancer_index(b: &mut Builder, item: &Item, name: &str, implicit: bool) -> usize {
    let span = &item.span;
    if let Some(&i) = b.balancer_index.get(name) {
        return i;
    }
    let spec = BalancerSpec::with_defaults(name, implicit);
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
    need_balancer_modules(b, &name).map_err(|m| item.err(m))?;
    let i = balancer_index(b, item, &name, false);
    if b.balancers[i].defined_at.is_none() {
        b.balancers[i].defined_at = Some(item.span.clone());
    }
    Ok(i)
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
    balancer_params(b, item, i, params)?;
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
    let ops = worker_params(b, item, params)?;
    if b.balancers[i]
        .members
        .iter()
        .any(|m| m.base.url == u.normalized)
    {
        warn_worker_sharing(b, item, params, &u.normalized);
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

/// A worker already defined for this URL is shared: the repeated line's parameters are
/// ignored, with httpd's warning for each.
fn warn_worker_sharing(b: &mut Builder, item: &Item, params: &[Word], url: &str) {
    for w in params {
        b.warn(
            item,
            format!(
                "AH01150: Ignoring parameter '{}' for worker '{url}' because of worker sharing",
                w.text
            ),
        );
    }
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
        need_balancer_modules(b, &name).map_err(|m| item.err(m))?;
        let i = balancer_index(b, item, &name, false);
        balancer_params(b, item, i, params)?;
        PassTarget::Balancer {
            balancer: i,
            path: bpath,
        }
    } else {
        let u = parse_worker_url(&target.text).map_err(|m| item.err_at(target, m))?;
        let ops = worker_params(b, item, params)?;
        let i = match b.balancer_index.get(&u.normalized) {
            Some(&i) => {
                warn_worker_sharing(b, item, params, &u.normalized);
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
            need_balancer_modules(b, &name).map_err(|m| item.err(m))?;
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

pub(super) fn proxy_preserve_host(b: &mut Builder, item: &Item) -> Result<(), ConfError> {
    b.proxy_preserve_host = flag(item)?;
    Ok(())
}

pub(super) fn proxy_add_headers(b: &mut Builder, item: &Item) -> Result<(), ConfError> {
    b.proxy_add_headers = flag(item)?;
    Ok(())
}

pub(super) fn proxy_timeout(b: &mut Builder, item: &Item) -> Result<(), ConfError> {
    let t = seconds_arg(item, false)?;
    if t.is_zero() {
        return Err(item.err("ProxyTimeout must be at least 1 second"));
    }
    b.proxy_timeout = Some(t);
    Ok(())
}

pub(super) fn proxy_requests(_b: &mut Builder, item: &Item) -> Result<(), ConfError> {
    if flag(item)? {
        return Err(item.err("forward proxying (ProxyRequests On) is not supported by ringproxy"));
    }
    Ok(())
}

pub(super) fn proxy_via(b: &mut Builder, item: &Item) -> Result<(), ConfError> {
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
