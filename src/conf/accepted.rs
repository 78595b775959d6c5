//! Directives accepted with a warning: harmless in a proxy configuration, with no effect in
//! ringproxy.

use super::ConfError;
use super::builder::Builder;
use super::directives::{Directive, d};
use super::read::Item;

/// Looked up after `directives::TABLE`, with the module that must be loaded for each.
pub(super) static ACCEPTED: &[Directive] = &[
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

fn ignored(b: &mut Builder, item: &Item) -> Result<(), ConfError> {
    b.warn(
        item,
        "accepted for compatibility; it has no effect in ringproxy",
    );
    Ok(())
}
