//! Member URLs: parsing and normalising `http://host[:port][/path]` worker URLs and
//! `balancer://NAME[/path]` URLs, and resolving a member's host into its `MemberSpec`.

use std::net::ToSocketAddrs;

use super::ConfError;
use super::model::MemberSpec;
use super::parse::Word;
use super::read::Item;

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

/// A member's spec from its URL: the host resolved now, every parameter at its default.
pub(super) fn member_base(item: &Item, w: &Word, u: &WorkerUrl) -> Result<MemberSpec, ConfError> {
    let bare = u.host.trim_start_matches('[').trim_end_matches(']');
    let addrs: Vec<_> = (bare, u.port)
        .to_socket_addrs()
        .map_err(|e| item.err_at(w, format!("could not resolve host name {bare}: {e}")))?
        .collect();
    if addrs.is_empty() {
        return Err(item.err_at(w, format!("could not resolve host name {bare}: no address")));
    }
    Ok(MemberSpec::with_defaults(
        u.normalized.clone(),
        u.host.clone(),
        u.port,
        u.path.clone(),
        addrs,
    ))
}
