//! Sticky sessions (httpd `find_session_route`, `get_path_param`, `get_cookie_param`,
//! `find_route_worker`).
//!
//! - The URL parameter (`stickysession=COOKIE|URLPARAM`'s second half, or the single name) is
//!   tried first: a case-sensitive search for `name` immediately followed by `=` anywhere in the
//!   raw request target (no delimiter check before the name). Leading delimiters are skipped
//!   (apr_strtok), the value runs to the next `?` or `&`, and `;` too with scolonpathdelim.
//! - Only when there is no URL value, the Cookie header values: `name` at the start or after
//!   `;`, `,` or whitespace, optional whitespace, `=`, a non-empty rest; the value ends at the
//!   first `;` or `,`.
//! - The route is what follows the first separator (stickysessionsep, default '.'); a value
//!   without it, or with nothing after it, gives no route (and no BALANCER_SESSION_*).
//!   stickysessionsep=Off takes the whole value.

use crate::conf::model::StickySpec;

use super::Balancer;

/// A sticky route found in a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sticky<'a> {
    /// The name that matched (`BALANCER_SESSION_STICKY`): the URL parameter or the cookie name.
    pub name: &'a str,
    /// The route (`BALANCER_SESSION_ROUTE`), never empty.
    pub route: &'a [u8],
}

pub(crate) fn extract<'a>(
    spec: &'a StickySpec,
    sep: Option<u8>,
    scolon: bool,
    target: &'a [u8],
    cookie_values: &[&'a [u8]],
) -> Option<Sticky<'a>> {
    let (name, value) = match url_param(target, spec.url_param.as_bytes(), scolon) {
        Some(v) => (spec.url_param.as_str(), v),
        None => (
            spec.cookie.as_str(),
            cookie_values
                .iter()
                .find_map(|c| cookie(c, spec.cookie.as_bytes()))?,
        ),
    };
    let route = match sep {
        Some(sep) => &value[value.iter().position(|&b| b == sep)? + 1..],
        None => value,
    };
    if route.is_empty() {
        return None;
    }
    Some(Sticky { name, route })
}

/// Positions where `needle` occurs in `hay` (strstr, then strstr from the next byte).
fn occurrences<'h>(hay: &'h [u8], needle: &'h [u8]) -> impl Iterator<Item = usize> + 'h {
    (0..hay.len().saturating_sub(needle.len()).saturating_add(1))
        .filter(move |&p| !needle.is_empty() && hay[p..].starts_with(needle))
}

/// httpd `get_path_param`.
fn url_param<'a>(target: &'a [u8], name: &[u8], scolon: bool) -> Option<&'a [u8]> {
    let is_delim = |b: u8| b == b'?' || b == b'&' || (scolon && b == b';');
    for p in occurrences(target, name) {
        let after = p + name.len();
        if target.get(after) != Some(&b'=') || after + 1 >= target.len() {
            continue;
        }
        // apr_strtok: skip leading delimiters, then the token; nothing left means NULL.
        let rest = &target[after + 1..];
        let start = rest.iter().position(|&b| !is_delim(b))?;
        let rest = &rest[start..];
        let end = rest.iter().position(|&b| is_delim(b)).unwrap_or(rest.len());
        return Some(&rest[..end]);
    }
    None
}

fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

/// httpd `get_cookie_param` on one Cookie header value.
fn cookie<'a>(value: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    for p in occurrences(value, name) {
        if p != 0 && !matches!(value[p - 1], b';' | b',') && !is_space(value[p - 1]) {
            continue;
        }
        let mut q = p + name.len();
        while q < value.len() && is_space(value[q]) {
            q += 1;
        }
        if value.get(q) != Some(&b'=') || q + 1 >= value.len() {
            continue;
        }
        let rest = &value[q + 1..];
        let end = rest
            .iter()
            .position(|&b| b == b';' || b == b',')
            .unwrap_or(rest.len());
        return Some(&rest[..end]);
    }
    None
}

/// httpd `find_route_worker`: non-standby members first, then hot standbys; a usable member
/// with this route (drain included) wins; an unusable one is retried, then its `redirect=` is
/// followed (depth at most the member count). Members in `exclude` count as unusable.
pub(crate) fn find_route_member(
    bal: &Balancer,
    route: &[u8],
    exclude: u64,
    now_ms: u64,
    depth: usize,
) -> Option<usize> {
    use crate::conf::model::status::HOT_STANDBY;
    if depth > bal.members().len() {
        return None;
    }
    let usable = |i: usize| bal.members()[i].is_usable() && exclude & (1 << i) == 0;
    for standby_pass in [false, true] {
        for (i, m) in bal.members().iter().enumerate() {
            if (m.status() & HOT_STANDBY != 0) != standby_pass {
                continue;
            }
            let r = m.spec().route.as_bytes();
            if r.is_empty() || r != route {
                continue;
            }
            if usable(i) {
                return Some(i);
            }
            m.try_recover(now_ms);
            if usable(i) {
                return Some(i);
            }
            let redirect = m.spec().redirect.as_bytes();
            // The redirect lookup only returns usable members (it retried them already).
            if !redirect.is_empty()
                && let Some(j) = find_route_member(bal, redirect, exclude, now_ms, depth + 1)
            {
                return Some(j);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::balance::testutil::*;
    use crate::balance::{NoMember, PickCache};
    use crate::conf::model::{LbMethodKind, StickySpec, status};

    fn bal(names: &[&str]) -> Balancer {
        let mut s = lfs(LbMethodKind::ByRequests, &vec![1; names.len()]);
        s.sticky = sticky("JSESSIONID");
        for (m, n) in s.members.iter_mut().zip(names) {
            m.route = n.to_string();
        }
        Balancer::new(s)
    }

    fn route<'a>(b: &'a Balancer, target: &'a [u8], cookies: &[&'a [u8]]) -> Option<&'a [u8]> {
        b.sticky_route(target, cookies).map(|s| s.route)
    }

    #[test]
    fn cookie_route() {
        let b = bal(&["node1"]);
        let s = b.sticky_route(b"/x", &[b"JSESSIONID=abc.node1"]).unwrap();
        assert_eq!((s.name, s.route), ("JSESSIONID", &b"node1"[..]));
        assert_eq!(
            route(&b, b"/", &[b"a=1; JSESSIONID=abc.n2; b=2"]),
            Some(&b"n2"[..])
        );
        assert_eq!(
            route(&b, b"/", &[b"a=1,JSESSIONID = abc.n3,b"]),
            Some(&b"n3"[..])
        );
        assert_eq!(route(&b, b"/", &[b"XJSESSIONID=abc.n4"]), None);
        assert_eq!(
            route(&b, b"/", &[b"other=1", b"JSESSIONID=abc.n5"]),
            Some(&b"n5"[..])
        );
        // Case-sensitive names.
        assert_eq!(route(&b, b"/", &[b"jsessionid=abc.n1"]), None);
        // No separator, or nothing after it: no route.
        assert_eq!(route(&b, b"/", &[b"JSESSIONID=abc"]), None);
        assert_eq!(route(&b, b"/", &[b"JSESSIONID=abc."]), None);
        // First separator only.
        assert_eq!(route(&b, b"/", &[b"JSESSIONID=a.b.n2"]), Some(&b"b.n2"[..]));
    }

    #[test]
    fn url_route() {
        let mut s = lfs(LbMethodKind::ByRequests, &[1]);
        s.sticky = Some(StickySpec {
            cookie: "JSESSIONID".into(),
            url_param: "jsessionid".into(),
        });
        let b = Balancer::new(s);
        let st = b.sticky_route(b"/x;jsessionid=x.n2", &[]).unwrap();
        assert_eq!((st.name, st.route), ("jsessionid", &b"n2"[..]));
        assert_eq!(route(&b, b"/x?jsessionid=x.n2&y=1", &[]), Some(&b"n2"[..]));
        assert_eq!(
            route(&b, b"/x?a=1&jsessionid=x.n2/more", &[]),
            Some(&b"n2/more"[..])
        );
        // URL param wins over cookie; cookie used when no URL value.
        let st = b
            .sticky_route(b"/x?jsessionid=x.n2", &[b"JSESSIONID=y.n1"])
            .unwrap();
        assert_eq!((st.name, st.route), ("jsessionid", &b"n2"[..]));
        let st = b.sticky_route(b"/x", &[b"JSESSIONID=y.n1"]).unwrap();
        assert_eq!((st.name, st.route), ("JSESSIONID", &b"n1"[..]));
        // A URL value without separator hides the cookie (httpd).
        assert_eq!(route(&b, b"/x?jsessionid=abc", &[b"JSESSIONID=y.n1"]), None);
        // Case-sensitive.
        assert_eq!(route(&b, b"/x?JSESSIONID=x.n2", &[]), None);
        // ';' ends the value only with scolonpathdelim.
        assert_eq!(
            route(&b, b"/x;jsessionid=x.n2;v=1", &[]),
            Some(&b"n2;v=1"[..])
        );
        let mut s = lfs(LbMethodKind::ByRequests, &[1]);
        s.sticky = sticky("jsessionid");
        s.scolonpathdelim = true;
        let b = Balancer::new(s);
        assert_eq!(route(&b, b"/x;jsessionid=x.n2;v=1", &[]), Some(&b"n2"[..]));
        // stickysessionsep=Off: whole value.
        let mut s = lfs(LbMethodKind::ByRequests, &[1]);
        s.sticky = sticky("ROUTEID");
        s.sticky_sep = None;
        let b = Balancer::new(s);
        assert_eq!(route(&b, b"/", &[b"ROUTEID=n7"]), Some(&b"n7"[..]));
        // No stickysession configured.
        let b = Balancer::new(lfs(LbMethodKind::ByRequests, &[1]));
        assert_eq!(route(&b, b"/", &[b"JSESSIONID=a.n1"]), None);
    }

    #[test]
    fn sticky_pick_and_route_changed() {
        let b = bal(&["n1", "n2", "n3"]);
        let mut cache = PickCache::new();
        for _ in 0..5 {
            let st = b.sticky_route(b"/", &[b"JSESSIONID=s.n2"]).unwrap();
            let p = b.pick(Some(&st), 0, 0, &mut cache).unwrap();
            assert_eq!((p.index(), p.route_changed()), (1, false));
        }
        // First visit (no route) with stickysession configured: route changed.
        let p = b.pick(None, 0, 0, &mut cache).unwrap();
        assert!(p.route_changed());
        drop(p);
        // Unknown route: load balanced, route changed.
        let st = b.sticky_route(b"/", &[b"JSESSIONID=s.zz"]).unwrap();
        assert!(b.pick(Some(&st), 0, 0, &mut cache).unwrap().route_changed());
        // Drain stays usable for sticky traffic but not for load balancing.
        b.members()[0].set_flags(status::DRAIN);
        let st = b.sticky_route(b"/", &[b"JSESSIONID=s.n1"]).unwrap();
        assert_eq!(b.pick(Some(&st), 0, 0, &mut cache).unwrap().index(), 0);
        for _ in 0..4 {
            assert_ne!(b.pick(None, 0, 0, &mut cache).unwrap().index(), 0);
        }
    }

    #[test]
    fn routed_member_down() {
        let b = bal(&["n1", "n2"]);
        let mut cache = PickCache::new();
        b.mark_error(1, 0);
        let st = b.sticky_route(b"/", &[b"JSESSIONID=s.n2"]).unwrap();
        let p = b.pick(Some(&st), 0, 10, &mut cache).unwrap();
        assert_eq!((p.index(), p.route_changed()), (0, true));
        drop(p);
        // Failover exclude also counts as down for the route.
        let st1 = b.sticky_route(b"/", &[b"JSESSIONID=s.n1"]).unwrap();
        b.members()[1].clear_flags(status::IN_ERROR);
        let p = b.pick(Some(&st1), 0b01, 10, &mut cache).unwrap();
        assert_eq!((p.index(), p.route_changed()), (1, true));
    }

    #[test]
    fn nofailover() {
        let mut s = lfs(LbMethodKind::ByRequests, &[1, 1]);
        s.sticky = sticky("JSESSIONID");
        s.nofailover = true;
        s.members[0].route = "n1".into();
        s.members[1].route = "n2".into();
        let b = Balancer::new(s);
        let mut cache = PickCache::new();
        b.members()[1].set_flags(status::DISABLED);
        let st = b.sticky_route(b"/", &[b"JSESSIONID=s.n2"]).unwrap();
        assert_eq!(
            b.pick(Some(&st), 0, 10, &mut cache).unwrap_err(),
            NoMember::RouteUnavailable
        );
        // An unknown route still load balances.
        let st = b.sticky_route(b"/", &[b"JSESSIONID=s.zz"]).unwrap();
        assert_eq!(b.pick(Some(&st), 0, 10, &mut cache).unwrap().index(), 0);
    }

    #[test]
    fn redirect_chain() {
        let b = bal(&["n1", "n2", "n3"]);
        // n1 -> n2 -> n3; n1 and n2 disabled.
        let mut s = b.spec().clone();
        s.members[0].redirect = "n2".into();
        s.members[1].redirect = "n3".into();
        let b = Balancer::new(s);
        b.members()[0].set_flags(status::DISABLED);
        b.members()[1].set_flags(status::DISABLED);
        let mut cache = PickCache::new();
        let st = b.sticky_route(b"/", &[b"JSESSIONID=s.n1"]).unwrap();
        let p = b.pick(Some(&st), 0, 0, &mut cache).unwrap();
        assert_eq!((p.index(), p.route_changed()), (2, true));
        drop(p);
        // A redirect loop ends (depth limit) and falls back to load balancing.
        let mut s = b.spec().clone();
        s.members[1].redirect = "n1".into();
        s.members[2].status = status::HOT_STANDBY;
        let b = Balancer::new(s);
        b.members()[0].set_flags(status::DISABLED);
        b.members()[1].set_flags(status::DISABLED);
        let st = b.sticky_route(b"/", &[b"JSESSIONID=s.n1"]).unwrap();
        let p = b.pick(Some(&st), 0, 0, &mut cache).unwrap();
        assert_eq!((p.index(), p.route_changed()), (2, true));
    }

    #[test]
    fn standby_with_route_found_after_regulars() {
        let mut s = lfs(LbMethodKind::ByRequests, &[1, 1]);
        s.sticky = sticky("JSESSIONID");
        s.members[0].route = "n1".into();
        s.members[0].status = status::HOT_STANDBY;
        s.members[1].route = "n1".into();
        let b = Balancer::new(s);
        let mut cache = PickCache::new();
        let st = b.sticky_route(b"/", &[b"JSESSIONID=s.n1"]).unwrap();
        assert_eq!(b.pick(Some(&st), 0, 0, &mut cache).unwrap().index(), 1);
    }
}
