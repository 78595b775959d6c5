//! The directive table: each directive's name, the module that defines it, whether it may appear
//! inside `<Proxy>`, and its handler. Handlers build the model in a `Builder` (`builder.rs`);
//! `validate.rs` then checks what only the whole configuration can tell and returns the
//! `Config`.
//!
//! The handlers live by area: `core_directives.rs`, `log_directives.rs`, `proxy.rs`
//! (mod_proxy), `rewrite.rs` (mod_rewrite); the directives accepted with a warning are listed
//! in `accepted.rs`. Directives known but not supported yet are refused here.

use super::ConfError;
use super::accepted::ACCEPTED;
use super::builder::Builder;
use super::core_directives::*;
use super::log_directives::*;
use super::proxy::{
    proxy_add_headers, proxy_preserve_host, proxy_requests, proxy_timeout, proxy_via,
};
use super::read::Item;

pub(super) type Handler = fn(&mut Builder, &Item) -> Result<(), ConfError>;

pub(super) struct Directive {
    pub name: &'static str,
    pub module: &'static str,
    /// May appear inside `<Proxy>`.
    pub in_proxy: bool,
    pub handler: Handler,
}

pub(super) const fn d(name: &'static str, module: &'static str, handler: Handler) -> Directive {
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
];

pub(super) fn lookup(key: &str) -> Option<&'static Directive> {
    TABLE
        .iter()
        .chain(ACCEPTED)
        .find(|d| d.name.eq_ignore_ascii_case(key))
}

// ---- known, not supported yet ----

fn not_yet(_b: &mut Builder, item: &Item) -> Result<(), ConfError> {
    Err(item.err(format!("{} is not supported by ringproxy yet", item.name)))
}

fn no_tls(_b: &mut Builder, item: &Item) -> Result<(), ConfError> {
    Err(item.err(format!(
        "{} is not supported by ringproxy yet (no TLS)",
        item.name
    )))
}
