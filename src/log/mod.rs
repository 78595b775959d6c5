//! Access logging in httpd's LogFormat language (mod_log_config, with the
//! mod_logio `%I %O %S`, mod_ssl `%{VAR}x %{..}c` and mod_unique_id pieces).
//!
//! A format is compiled once at config load ([`LogFormat::compile`]) into a
//! list of literals and typed items with pre-parsed arguments, then rendered
//! per request from a [`LogRecord`] into the shard's log buffer
//! ([`LogFormat::render`]). Rendering does not allocate once the buffer has
//! grown to a line's size: integers are formatted by hand, and local-time
//! strings are cached per second per item.

mod escape;
mod format;
mod time;
mod unique_id;

#[cfg(test)]
mod tests;

pub use time::wall_clock_at;
pub use unique_id::{UNIQUE_ID_LEN, UniqueIdGen, decode_unique_id};

use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use escape::{push_escaped, push_hex, push_ip, push_opt_escaped, push_u64};

/// What a request exposes to the access log. The proxy implements it on its
/// per-request state, so rendering needs no intermediate struct.
pub trait LogRecord {
    /// `%h %a %{c}a`, `%{remote}p`.
    fn remote_addr(&self) -> SocketAddr;
    /// `%A`, `%{local}p`, `%p` (canonical port = local port).
    fn local_addr(&self) -> SocketAddr;
    /// `%r`: the request line without CRLF.
    fn request_line(&self) -> &[u8];
    /// `%m`
    fn method(&self) -> &[u8];
    /// `%U`: path without the query.
    fn path(&self) -> &[u8];
    /// `%q`: `?query`, or empty when `None`.
    fn query(&self) -> Option<&[u8]>;
    /// `%H`
    fn protocol(&self) -> &[u8];
    /// `%s %>s`; also what status-list conditions test.
    fn status(&self) -> Option<u16>;
    /// `%b` (`-` when 0), `%B`.
    fn body_bytes(&self) -> u64;
    /// `%{Name}i` (case-insensitive name), `%{name}C` reads `Cookie`.
    fn request_header(&self, name: &str) -> Option<&[u8]>;
    /// `%{Name}o`
    fn response_header(&self, name: &str) -> Option<&[u8]>;
    /// `%{VAR}e` (BALANCER_*, UNIQUE_ID, ...); `%L` reads `UNIQUE_ID`.
    /// `Some(b"")` logs empty, `None` logs `-`.
    fn env(&self, name: &str) -> Option<&[u8]>;
    /// `%v %V`
    fn server_name(&self) -> &[u8];
    /// `%R` (`proxy-server`)
    fn handler(&self) -> Option<&[u8]>;
    /// `%X`: `b'+'` kept alive, `b'-'` closed, `b'X'` aborted.
    fn conn_status(&self) -> u8;
    /// `%k`: keep-alive requests before this one on the connection.
    fn keepalive_requests(&self) -> u64;
    /// `%I`: bytes received including headers (and TLS handshake on the first request).
    fn bytes_in(&self) -> u64;
    /// `%O`: bytes sent including headers.
    fn bytes_out(&self) -> u64;
    /// `%t`: request start (request line read).
    fn start_time(&self) -> SystemTime;
    /// `%D %T %{UNIT}T`; `%{end:...}t` is `start_time() + duration()`.
    fn duration(&self) -> Duration;
    /// `%{NAME}x`: empty or `None` logs `-`.
    fn ssl_var(&self, name: &str) -> Option<&[u8]>;
}

/// A compiled LogFormat.
#[derive(Debug)]
pub struct LogFormat {
    /// The format string as given to [`LogFormat::compile`].
    pub source: String,
    items: Vec<Item>,
}

#[derive(Debug)]
enum Item {
    Lit(Box<[u8]>),
    Field(Field),
}

#[derive(Debug)]
struct Field {
    cond: Option<Cond>,
    kind: Kind,
}

/// `%400,501{..}i` / `%!200,304{..}i`
#[derive(Debug)]
struct Cond {
    negate: bool,
    list: Box<[u64]>,
}

impl Cond {
    fn passes(&self, status: Option<u16>) -> bool {
        let st = u64::from(status.unwrap_or(0));
        let in_list = self.list.contains(&st);
        in_list != self.negate
    }
}

#[derive(Debug, Clone, Copy)]
enum DurUnit {
    S,
    Ms,
    Us,
}

#[derive(Debug)]
enum Kind {
    /// Fixed output: `-` items (`%l %u %n %f`, ...) and httpd's "bogus
    /// argument is printed literally" cases.
    Const(Box<[u8]>),
    RemoteIp,
    LocalIp,
    BodyClf,
    BodyBytes,
    Cookie(Box<str>),
    Duration(DurUnit),
    Env(Box<str>),
    ReqHeader(Box<str>),
    RespHeader(Box<str>),
    Ssl(Box<str>),
    Protocol,
    KeepAlives,
    LogId,
    Method,
    LocalPort,
    RemotePort,
    Pid,
    Tid,
    HexTid,
    Query,
    RequestLine,
    Handler,
    Status,
    Time(time::TimeItem),
    Path,
    ServerName,
    ConnStatus,
    BytesIn,
    BytesOut,
    BytesBoth,
}

impl LogFormat {
    /// Compiles a LogFormat string (quotes already removed by the config
    /// parser). The error is httpd's message, e.g.
    /// `Unrecognized LogFormat directive %Z`.
    pub fn compile(fmt: &str) -> Result<LogFormat, String> {
        Ok(LogFormat {
            source: fmt.to_string(),
            items: format::parse(fmt)?,
        })
    }

    /// Appends one log line, terminated by `\n`, to `out`.
    pub fn render<R: LogRecord + ?Sized>(&self, rec: &R, out: &mut Vec<u8>) {
        for item in &self.items {
            match item {
                Item::Lit(b) => out.extend_from_slice(b),
                Item::Field(f) => {
                    if let Some(c) = &f.cond
                        && !c.passes(rec.status())
                    {
                        out.push(b'-');
                        continue;
                    }
                    render_kind(&f.kind, rec, out);
                }
            }
        }
        out.push(b'\n');
    }
}

fn render_kind<R: LogRecord + ?Sized>(kind: &Kind, rec: &R, out: &mut Vec<u8>) {
    match kind {
        Kind::Const(b) => out.extend_from_slice(b),
        Kind::RemoteIp => push_ip(out, rec.remote_addr().ip()),
        Kind::LocalIp => push_ip(out, rec.local_addr().ip()),
        Kind::BodyClf => match rec.body_bytes() {
            0 => out.push(b'-'),
            n => push_u64(out, n),
        },
        Kind::BodyBytes => push_u64(out, rec.body_bytes()),
        Kind::Cookie(name) => push_opt_escaped(
            out,
            rec.request_header("Cookie")
                .and_then(|c| format::find_cookie(c, name.as_bytes())),
        ),
        Kind::Duration(unit) => {
            let d = rec.duration();
            push_u64(
                out,
                match unit {
                    DurUnit::S => d.as_secs(),
                    DurUnit::Ms => d.as_millis() as u64,
                    DurUnit::Us => d.as_micros() as u64,
                },
            )
        }
        Kind::Env(name) => push_opt_escaped(out, rec.env(name)),
        Kind::ReqHeader(name) => push_opt_escaped(out, rec.request_header(name)),
        Kind::RespHeader(name) => push_opt_escaped(out, rec.response_header(name)),
        Kind::Ssl(name) => match rec.ssl_var(name) {
            Some(v) if !v.is_empty() => out.extend_from_slice(v),
            _ => out.push(b'-'),
        },
        Kind::Protocol => push_escaped(out, rec.protocol()),
        Kind::KeepAlives => push_u64(out, rec.keepalive_requests()),
        Kind::LogId => push_opt_escaped(out, rec.env("UNIQUE_ID")),
        Kind::Method => push_escaped(out, rec.method()),
        Kind::LocalPort => push_u64(out, u64::from(rec.local_addr().port())),
        Kind::RemotePort => push_u64(out, u64::from(rec.remote_addr().port())),
        Kind::Pid => push_u64(out, u64::from(std::process::id())),
        // SAFETY: pthread_self has no preconditions.
        Kind::Tid => push_u64(out, unsafe { libc::pthread_self() } as u64),
        Kind::HexTid => push_hex(out, unsafe { libc::pthread_self() } as u64),
        Kind::Query => {
            if let Some(q) = rec.query() {
                out.push(b'?');
                push_escaped(out, q);
            }
        }
        Kind::RequestLine => push_escaped(out, rec.request_line()),
        Kind::Handler => push_opt_escaped(out, rec.handler()),
        Kind::Status => match rec.status() {
            Some(s) => push_u64(out, u64::from(s)),
            None => out.push(b'-'),
        },
        Kind::Time(t) => t.render(rec.start_time(), rec.duration(), out),
        Kind::Path => push_escaped(out, rec.path()),
        Kind::ServerName => push_escaped(out, rec.server_name()),
        Kind::ConnStatus => out.push(rec.conn_status()),
        Kind::BytesIn => push_u64(out, rec.bytes_in()),
        Kind::BytesOut => push_u64(out, rec.bytes_out()),
        Kind::BytesBoth => push_u64(out, rec.bytes_in() + rec.bytes_out()),
    }
}
