//! Routing: RewriteRule (with its RewriteConds) first, as mod_rewrite's translate hook runs
//! before mod_proxy's, then ProxyPass in config order. The result names a balancer and writes
//! the path (with query) to send to the member into a reused buffer: no allocation per request.
//!
//! Difference from httpd: patterns match the raw request path (still %-encoded), not the
//! decoded one, so captures forward exactly the bytes the client sent.

use std::net::SocketAddr;

use regex::{CaptureLocations, Regex};

use crate::conf::Config;
use crate::conf::model::{CondPattern, PassTarget, ServerVar, Template};
use crate::http::RequestHead;

/// What the router decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// Proxy to `Config::balancers[balancer]`; the member-relative target is in the out buffer.
    Proxy { balancer: usize },
    /// `[R]`: redirect with this status; the Location is in the out buffer.
    Redirect(u16),
    /// `[F]`.
    Forbidden,
    /// `[G]`.
    Gone,
    /// Nothing proxies this path (ringproxy serves no files).
    NotFound,
}

/// The request as the router sees it.
pub struct RouteInput<'a> {
    pub buf: &'a [u8],
    pub req: &'a RequestHead,
    pub peer: SocketAddr,
    pub local: SocketAddr,
    pub server_name: &'a str,
}

impl RouteInput<'_> {
    fn path(&self) -> &[u8] {
        self.req.path.get(self.buf)
    }
    fn query(&self) -> Option<&[u8]> {
        self.req.query.map(|q| q.get(self.buf))
    }
}

/// One shard's clone of a regex (a clone has its own match-cache pool, so shards never contend
/// on one) with its capture slots.
struct Matcher {
    re: Regex,
    caps: CaptureLocations,
}

impl Matcher {
    fn new(re: &Regex) -> Matcher {
        Matcher {
            re: re.clone(),
            caps: re.capture_locations(),
        }
    }
}

/// Per-shard scratch space for matching: the rule and condition matchers, and strings for
/// expanded test strings and substitutions.
pub struct RouteScratch {
    /// Per rule: its regex and capture slots.
    rules: Vec<Matcher>,
    /// Per rule, per condition: the same for regex conditions.
    conds: Vec<Vec<Option<Matcher>>>,
    path: String,
    expanded: String,
    test: String,
    /// The test string of the last matched condition (the subject of `%N`).
    last_test: String,
}

impl RouteScratch {
    pub fn new(cfg: &Config) -> RouteScratch {
        let rules = cfg
            .rewrite_rules
            .iter()
            .map(|r| Matcher::new(&r.pattern))
            .collect();
        let conds = cfg
            .rewrite_rules
            .iter()
            .map(|r| {
                r.conds
                    .iter()
                    .map(|c| match &c.pattern {
                        CondPattern::Regex(re) => Some(Matcher::new(re)),
                        _ => None,
                    })
                    .collect()
            })
            .collect();
        RouteScratch {
            rules,
            conds,
            path: String::new(),
            expanded: String::new(),
            test: String::new(),
            last_test: String::new(),
        }
    }
}

/// Routes one request; on `Proxy` and `Redirect`, `out` holds the target.
pub fn route(
    cfg: &Config,
    input: &RouteInput,
    scratch: &mut RouteScratch,
    out: &mut Vec<u8>,
) -> Route {
    out.clear();
    let raw_path = input.path();
    if cfg.rewrite_engine
        && !cfg.rewrite_rules.is_empty()
        && let Ok(p) = std::str::from_utf8(raw_path)
    {
        scratch.path.clear();
        scratch.path.push_str(p);
        if let Some(r) = rewrite(cfg, input, scratch, out) {
            return r;
        }
    }
    proxy_pass(cfg, raw_path, input.query(), out)
}

/// Applies the rewrite rules to `scratch.path`. Some(route) when a rule decided the request.
fn rewrite(
    cfg: &Config,
    input: &RouteInput,
    s: &mut RouteScratch,
    out: &mut Vec<u8>,
) -> Option<Route> {
    let mut rewritten = false;
    for (i, rule) in cfg.rewrite_rules.iter().enumerate() {
        let m = &mut s.rules[i];
        let matched = match &rule.prefix {
            Some(p) if !s.path.starts_with(p.as_str()) => false,
            _ => m.re.captures_read(&mut m.caps, &s.path).is_some(),
        };
        if matched == rule.negate {
            continue;
        }
        let Some(last_cond) = conds_hold(rule, i, input, s) else {
            continue;
        };
        if rule.flags.forbidden {
            return Some(Route::Forbidden);
        }
        if rule.flags.gone {
            return Some(Route::Gone);
        }
        if let Some(tpl) = &rule.substitution {
            s.expanded.clear();
            let caps = if rule.negate {
                None
            } else {
                Some(&s.rules[i].caps)
            };
            let cond = last_cond
                .and_then(|c| s.conds[i][c].as_ref())
                .map(|m| &m.caps);
            expand(
                tpl,
                &s.path,
                caps,
                &s.last_test,
                cond,
                input,
                &mut s.expanded,
            );
            let (target, new_query) = match s.expanded.split_once('?') {
                Some((t, q)) => (t, Some(q)),
                None => (s.expanded.as_str(), None),
            };
            let q = QueryRule {
                new: new_query,
                qsa: rule.flags.qsa,
                qsd: rule.flags.qsd,
            };
            if rule.flags.proxy {
                return Some(proxy_target(cfg, target, q, input.query(), out));
            }
            if let Some(code) = rule.flags.redirect {
                out.extend_from_slice(target.as_bytes());
                q.append(out, input.query());
                return Some(Route::Redirect(code));
            }
            s.path.clear();
            s.path.push_str(target);
            rewritten = true;
        } else if rule.flags.proxy {
            let q = QueryRule {
                new: None,
                qsa: false,
                qsd: rule.flags.qsd,
            };
            return Some(proxy_target(cfg, &s.path, q, input.query(), out));
        }
        if rule.flags.last {
            break;
        }
    }
    // A plain rewrite maps to a file in httpd; ringproxy serves none.
    rewritten.then_some(Route::NotFound)
}

/// Evaluates the rule's conditions (ANDed, `[OR]` joins with the next). Returns the index of
/// the last matched regex condition (for `%N`, whose subject is kept in `last_test`).
fn conds_hold(
    rule: &crate::conf::model::RewriteRule,
    i: usize,
    input: &RouteInput,
    s: &mut RouteScratch,
) -> Option<Option<usize>> {
    let mut last: Option<usize> = None;
    let mut ok = true;
    let mut or_pending = false;
    for (j, c) in rule.conds.iter().enumerate() {
        if or_pending && ok {
            // The OR group already holds; skip the rest of the group.
            or_pending = c.or_next;
            continue;
        }
        if !ok && !or_pending {
            return None;
        }
        s.test.clear();
        let caps = if rule.negate {
            None
        } else {
            Some(&s.rules[i].caps)
        };
        let cond_caps = last.and_then(|k| s.conds[i][k].as_ref()).map(|m| &m.caps);
        expand(
            &c.test,
            &s.path,
            caps,
            &s.last_test,
            cond_caps,
            input,
            &mut s.test,
        );
        let m = match &c.pattern {
            CondPattern::Regex(_) => s.conds[i][j]
                .as_mut()
                .is_some_and(|m| m.re.captures_read(&mut m.caps, &s.test).is_some()),
            CondPattern::Equal(v, nocase) => {
                if *nocase {
                    s.test.eq_ignore_ascii_case(v)
                } else {
                    s.test == *v
                }
            }
            CondPattern::Less(v) => s.test.as_str() < v.as_str(),
            CondPattern::Greater(v) => s.test.as_str() > v.as_str(),
        };
        let holds = m != c.negate;
        if holds && !c.negate && matches!(c.pattern, CondPattern::Regex(_)) {
            last = Some(j);
            std::mem::swap(&mut s.test, &mut s.last_test);
        }
        ok = holds;
        or_pending = c.or_next;
    }
    ok.then_some(last)
}

/// Expands a template: `$N` from the rule match on `subject`, `%N` from the last condition
/// match on `cond_subject`, `%{VAR}` from the request.
fn expand(
    tpl: &[Template],
    subject: &str,
    caps: Option<&CaptureLocations>,
    cond_subject: &str,
    cond: Option<&CaptureLocations>,
    input: &RouteInput,
    out: &mut String,
) {
    for part in tpl {
        match part {
            Template::Lit(s) => out.push_str(s),
            Template::RuleRef(n) => {
                if let Some((a, b)) = caps.and_then(|c| c.get(*n as usize)) {
                    out.push_str(&subject[a..b]);
                }
            }
            Template::CondRef(n) => {
                if let Some((a, b)) = cond.and_then(|c| c.get(*n as usize))
                    && let Some(s) = cond_subject.get(a..b)
                {
                    out.push_str(s);
                }
            }
            Template::Var(v) => push_var(v, input, out),
        }
    }
}

fn push_var(v: &ServerVar, input: &RouteInput, out: &mut String) {
    use std::fmt::Write;
    let lossy = |b: &[u8], out: &mut String| out.push_str(&String::from_utf8_lossy(b));
    match v {
        ServerVar::Header(name) => {
            if let Some(val) = input.req.field(input.buf, name) {
                lossy(val, out)
            }
        }
        ServerVar::RequestUri => lossy(input.path(), out),
        ServerVar::QueryString => lossy(input.query().unwrap_or(b""), out),
        ServerVar::RequestMethod => lossy(input.req.method_span.get(input.buf), out),
        ServerVar::RequestScheme => out.push_str("http"),
        ServerVar::RemoteAddr => {
            let _ = write!(out, "{}", input.peer.ip());
        }
        ServerVar::RemotePort => {
            let _ = write!(out, "{}", input.peer.port());
        }
        ServerVar::ServerName => out.push_str(input.server_name),
        ServerVar::ServerPort => {
            let _ = write!(out, "{}", input.local.port());
        }
        ServerVar::ServerAddr => {
            let _ = write!(out, "{}", input.local.ip());
        }
        ServerVar::TheRequest => lossy(input.req.request_line.get(input.buf), out),
        ServerVar::Https => out.push_str("off"),
    }
}

/// `balancer://name/path` from a `[P]` substitution: finds the balancer and writes the path.
fn proxy_target(
    cfg: &Config,
    target: &str,
    q: QueryRule,
    orig_query: Option<&[u8]>,
    out: &mut Vec<u8>,
) -> Route {
    let Some(rest) = target.strip_prefix("balancer://") else {
        // An http:// target naming a standalone ProxyPass URL shares that worker: the longest
        // such URL that is a prefix ending at a path boundary.
        let at_boundary = |b: &crate::conf::model::BalancerSpec| {
            b.implicit
                && target.len() >= b.name.len()
                && target[..b.name.len()].eq_ignore_ascii_case(&b.name)
                && matches!(
                    target.as_bytes().get(b.name.len()),
                    None | Some(b'/') | Some(b'?')
                )
        };
        let best = cfg
            .balancers
            .iter()
            .enumerate()
            .filter(|(_, b)| at_boundary(b))
            .max_by_key(|(_, b)| b.name.len())
            .map(|(i, _)| i);
        return match best {
            Some(i) => {
                push_path(out, &target[cfg.balancers[i].name.len()..]);
                q.append(out, orig_query);
                Route::Proxy { balancer: i }
            }
            None => Route::NotFound,
        };
    };
    let (name, path) = match rest.find('/') {
        Some(k) => (&rest[..k], &rest[k..]),
        None => (rest, ""),
    };
    let Some(i) = cfg.balancers.iter().position(|b| {
        !b.implicit && b.name.len() == 11 + name.len() && b.name[11..].eq_ignore_ascii_case(name)
    }) else {
        return Route::NotFound;
    };
    push_path(out, path);
    q.append(out, orig_query);
    Route::Proxy { balancer: i }
}

fn push_path(out: &mut Vec<u8>, path: &str) {
    if !path.starts_with('/') {
        out.push(b'/');
    }
    out.extend_from_slice(path.as_bytes());
}

/// How a substitution's query combines with the client's (`[QSA]`, `[QSD]`).
#[derive(Clone, Copy)]
struct QueryRule<'a> {
    /// The substitution's own query, when it had a `?`.
    new: Option<&'a str>,
    qsa: bool,
    qsd: bool,
}

impl QueryRule<'_> {
    fn append(self, out: &mut Vec<u8>, orig: Option<&[u8]>) {
        let orig = orig.filter(|_| !self.qsd);
        let mut sep = b'?';
        if let Some(q) = self.new.filter(|q| !q.is_empty()) {
            out.push(sep);
            out.extend_from_slice(q.as_bytes());
            sep = b'&';
        }
        if let Some(o) = orig.filter(|_| self.new.is_none() || self.qsa) {
            out.push(sep);
            out.extend_from_slice(o);
        }
    }
}

/// ProxyPass: the first prefix that matches at a segment boundary wins.
fn proxy_pass(cfg: &Config, path: &[u8], query: Option<&[u8]>, out: &mut Vec<u8>) -> Route {
    for pp in &cfg.proxy_pass {
        let prefix = pp.path.as_bytes();
        if !path.starts_with(prefix) {
            continue;
        }
        let rest = &path[prefix.len()..];
        if !(prefix.ends_with(b"/") || rest.is_empty() || rest[0] == b'/') {
            continue;
        }
        match &pp.target {
            PassTarget::Exclude => return Route::NotFound,
            PassTarget::Balancer {
                balancer,
                path: base,
            } => {
                out.extend_from_slice(base.as_bytes());
                if out.last() == Some(&b'/') && rest.first() == Some(&b'/') {
                    out.pop();
                }
                out.extend_from_slice(rest);
                if out.is_empty() || out[0] != b'/' {
                    out.insert(0, b'/');
                }
                if let Some(q) = query {
                    out.push(b'?');
                    out.extend_from_slice(q);
                }
                return Route::Proxy {
                    balancer: *balancer,
                };
            }
        }
    }
    Route::NotFound
}
