//! Core server directives: `Listen`, `ServerName`, `Timeout`, keep-alive, request limits,
//! `Options`, `Require` and mod_access_compat, `IoBackend`, `Threads`, `RequestReadTimeout`.

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use super::ConfError;
use super::args::{flag, number, one, seconds_arg};
use super::builder::{Builder, ProxySection};
use super::model::*;
use super::read::Item;

pub(super) fn listen(b: &mut Builder, item: &Item) -> Result<(), ConfError> {
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

pub(super) fn server_name(b: &mut Builder, item: &Item) -> Result<(), ConfError> {
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

pub(super) fn timeout(b: &mut Builder, item: &Item) -> Result<(), ConfError> {
    b.timeout = seconds_arg(item, false)?;
    Ok(())
}

pub(super) fn keep_alive(b: &mut Builder, item: &Item) -> Result<(), ConfError> {
    b.keep_alive = flag(item)?;
    Ok(())
}

pub(super) fn keep_alive_timeout(b: &mut Builder, item: &Item) -> Result<(), ConfError> {
    b.keep_alive_timeout = seconds_arg(item, true)?;
    Ok(())
}

pub(super) fn max_keep_alive_requests(b: &mut Builder, item: &Item) -> Result<(), ConfError> {
    let w = one(item, "a number (0 = unlimited)")?;
    b.max_keep_alive_requests = number(item, w, "MaxKeepAliveRequests")?;
    Ok(())
}

pub(super) fn limit_request_line(b: &mut Builder, item: &Item) -> Result<(), ConfError> {
    let w = one(item, "a size in bytes")?;
    b.limits.request_line = number(item, w, "LimitRequestLine")?;
    Ok(())
}

pub(super) fn limit_request_fields(b: &mut Builder, item: &Item) -> Result<(), ConfError> {
    let w = one(item, "a number of header fields (0 = unlimited)")?;
    let n: usize = number(item, w, "LimitRequestFields")?;
    b.limits.header_fields = if n == 0 { usize::MAX } else { n };
    Ok(())
}

pub(super) fn limit_request_field_size(b: &mut Builder, item: &Item) -> Result<(), ConfError> {
    let w = one(item, "a size in bytes")?;
    b.limits.field_size = number(item, w, "LimitRequestFieldSize")?;
    Ok(())
}

pub(super) fn limit_request_body(b: &mut Builder, item: &Item) -> Result<(), ConfError> {
    let w = one(item, "a size in bytes (0 = unlimited)")?;
    b.limits.body = number(item, w, "LimitRequestBody")?;
    Ok(())
}

pub(super) fn options(_b: &mut Builder, _item: &Item) -> Result<(), ConfError> {
    // Options only concern files served from disk; a proxy serves none.
    Ok(())
}

pub(super) fn require(b: &mut Builder, item: &Item) -> Result<(), ConfError> {
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

pub(super) fn access_compat(_b: &mut Builder, item: &Item) -> Result<(), ConfError> {
    Err(item.err(
        "Order/Allow/Deny (mod_access_compat) is not supported by ringproxy; use 'Require all granted' or 'Require all denied'",
    ))
}

pub(super) fn io_backend(b: &mut Builder, item: &Item) -> Result<(), ConfError> {
    let w = one(item, "auto, uring, ring or epoll")?;
    b.io_backend = match w.text.to_ascii_lowercase().as_str() {
        "auto" => IoBackendChoice::Auto,
        "uring" => IoBackendChoice::Uring,
        "ring" => IoBackendChoice::Ring,
        "epoll" => IoBackendChoice::Epoll,
        _ => {
            let why = format!("must be auto, uring, ring or epoll, not '{}'", w.text);
            return Err(item.err_at(w, why));
        }
    };
    Ok(())
}

pub(super) fn threads(b: &mut Builder, item: &Item) -> Result<(), ConfError> {
    let w = one(item, "the number of shard threads")?;
    let n: usize = number(item, w, "Threads")?;
    if n == 0 {
        return Err(item.err_at(w, "Threads must be at least 1"));
    }
    b.threads = Some(n);
    Ok(())
}

pub(super) fn request_read_timeout(b: &mut Builder, item: &Item) -> Result<(), ConfError> {
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
