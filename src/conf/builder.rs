//! The model while the file is read: the `Builder` every handler writes into, and the walk
//! over the read items that dispatches each directive to its handler through the table in
//! `directives.rs`. `validate.rs` turns the finished `Builder` into the `Config`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::ConfError;
use super::directives::lookup;
use super::log_directives::{PendingLog, builtin_log_formats};
use super::model::*;
use super::modules::ModuleSet;
use super::parse::Span;
use super::proxy::BalancerBuild;
use super::read::{Item, Reader};

/// Where the walk is: inside `<Proxy url>` or not.
#[derive(Debug, Clone)]
pub(super) struct ProxySection {
    /// Index into `Builder::balancers` for `<Proxy balancer://x>`; None for `<Proxy *>` etc.
    pub balancer: Option<usize>,
    pub url: String,
}

pub(super) struct Builder {
    pub main: PathBuf,
    pub modules: ModuleSet,
    /// ServerRoot, else the main file's directory: base of relative log paths.
    pub base_dir: PathBuf,
    pub listeners: Vec<SocketAddr>,
    pub server_name: Option<String>,
    pub io_backend: IoBackendChoice,
    pub threads: Option<usize>,
    pub timeout: Duration,
    pub proxy_timeout: Option<Duration>,
    pub keep_alive: bool,
    pub keep_alive_timeout: Duration,
    pub max_keep_alive_requests: u32,
    pub header_read_timeout: Duration,
    pub proxy_preserve_host: bool,
    pub proxy_add_headers: bool,
    pub limits: Limits,
    pub rewrite_engine: bool,
    pub rewrite_rules: Vec<RewriteRule>,
    /// RewriteConds waiting for their RewriteRule.
    pub pending_conds: Vec<(RewriteCond, Span)>,
    /// `[P]` targets naming a balancer: (name, where), checked after the walk.
    pub rule_balancer_refs: Vec<(String, Span)>,
    pub proxy_pass: Vec<ProxyPass>,
    pub proxy_pass_reverse: Vec<ProxyPassReverse>,
    pub balancers: Vec<BalancerBuild>,
    pub balancer_index: HashMap<String, usize>,
    pub section: Option<ProxySection>,
    /// `LogFormat` nicknames.
    pub log_formats: HashMap<String, String>,
    /// `LogFormat` without a nickname (for `TransferLog`).
    pub default_format: String,
    /// `CustomLog`/`TransferLog` lines, resolved once the whole file is read.
    pub logs: Vec<PendingLog>,
    pub error_log: Option<PathBuf>,
    pub log_level: LogLevel,
    pub warnings: Vec<String>,
}

/// Builds the model from the read items, then validates it.
pub(super) fn build(items: Vec<Item>, reader: Reader, main: &Path) -> Result<Config, ConfError> {
    let base_dir = match &reader.server_root {
        Some(r) => r.clone(),
        None => main.parent().unwrap_or(Path::new("")).to_path_buf(),
    };
    let (log_formats, common) = builtin_log_formats();
    let mut b = Builder {
        main: main.to_path_buf(),
        modules: reader.modules,
        base_dir,
        listeners: Vec::new(),
        server_name: None,
        io_backend: IoBackendChoice::Auto,
        threads: None,
        timeout: Duration::from_secs(60),
        proxy_timeout: None,
        keep_alive: true,
        keep_alive_timeout: Duration::from_secs(5),
        max_keep_alive_requests: 100,
        header_read_timeout: Duration::from_secs(20),
        proxy_preserve_host: false,
        proxy_add_headers: true,
        limits: Limits::default(),
        rewrite_engine: true,
        rewrite_rules: Vec::new(),
        pending_conds: Vec::new(),
        rule_balancer_refs: Vec::new(),
        proxy_pass: Vec::new(),
        proxy_pass_reverse: Vec::new(),
        balancers: Vec::new(),
        balancer_index: HashMap::new(),
        section: None,
        log_formats,
        default_format: common,
        logs: Vec::new(),
        error_log: None,
        log_level: LogLevel::Warn,
        warnings: reader.warnings,
    };
    b.walk(&items)?;
    b.finish()
}

fn invalid_command(item: &Item, name: &str) -> ConfError {
    item.err(format!(
        "Invalid command '{name}', perhaps misspelled or defined by a module not included in the server configuration"
    ))
}

impl Builder {
    pub fn warn(&mut self, item: &Item, message: impl AsRef<str>) {
        self.warnings.push(item.warn_text(message.as_ref()));
    }

    fn walk(&mut self, items: &[Item]) -> Result<(), ConfError> {
        for item in items {
            if let Some(children) = &item.children {
                self.section_item(item, children)?;
                continue;
            }
            let Some(dir) = lookup(&item.key).filter(|d| self.modules.is_loaded(d.module)) else {
                return Err(invalid_command(item, &item.name));
            };
            if self.section.is_some() && !dir.in_proxy {
                return Err(item.err(format!("{} not allowed in <Proxy> context", dir.name)));
            }
            (dir.handler)(self, item)?;
        }
        Ok(())
    }

    fn section_item(&mut self, item: &Item, children: &[Item]) -> Result<(), ConfError> {
        match item.key.as_str() {
            "proxy" => {
                if self.section.is_some() {
                    return Err(item.err("<Proxy> cannot be nested"));
                }
                let section = super::proxy::open_section(self, item)?;
                self.section = Some(section);
                let r = self.walk(children);
                self.section = None;
                r
            }
            "directory" | "directorymatch" | "location" | "locationmatch" | "files" | "filesmatch" | "proxymatch"
            | "if" | "elseif" | "else" | "limit" | "limitexcept" => Err(item.err(format!(
                "{} is not supported by ringproxy; only <Proxy>, <IfModule>, <IfDefine> sections",
                item.name
            ))),
            "virtualhost" => Err(item.err("<VirtualHost> is not supported yet")),
            _ => Err(invalid_command(item, &format!("<{}", &item.name[1..item.name.len() - 1]))),
        }
    }
}
