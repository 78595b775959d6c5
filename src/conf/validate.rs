//! Whole-configuration validation: what only the complete file can tell (a `Listen` present,
//! balancers referenced by `[P]` rules defined, every balancer complete, log nicknames known),
//! then the `Config`.

use super::ConfError;
use super::builder::Builder;
use super::model::*;

impl Builder {
    /// Every check that needs the whole configuration, then the `Config`.
    pub(super) fn finish(mut self) -> Result<Config, ConfError> {
        if self.listeners.is_empty() {
            return Err(ConfError {
                file: self.main.clone(),
                line: 0,
                directive: "Listen".into(),
                message: "no Listen directive: ringproxy needs at least one address to listen on"
                    .into(),
            });
        }
        if let Some((_, span)) = self.pending_conds.first() {
            self.warnings.push(format!(
                "{span}: RewriteCond: no RewriteRule follows; the condition is ignored"
            ));
        }
        for (name, span) in std::mem::take(&mut self.rule_balancer_refs) {
            let defined = self
                .balancer_index
                .get(&name)
                .is_some_and(|&i| self.balancers[i].defined_at.is_some());
            if !defined {
                return Err(ConfError::at(
                    &span,
                    "RewriteRule",
                    format!(
                        "{name} is not defined (no <Proxy {name}> section or BalancerMember names it)"
                    ),
                ));
            }
        }
        let balancers = super::proxy::finish_balancers(&mut self)?;
        let access_logs = self.access_logs()?;
        Ok(Config {
            source: self.main,
            listeners: self.listeners,
            server_name: self.server_name.unwrap_or_else(|| "localhost".into()),
            io_backend: self.io_backend,
            threads: self.threads,
            timeout: self.timeout,
            proxy_timeout: self.proxy_timeout,
            keep_alive: self.keep_alive,
            keep_alive_timeout: self.keep_alive_timeout,
            max_keep_alive_requests: self.max_keep_alive_requests,
            header_read_timeout: self.header_read_timeout,
            proxy_preserve_host: self.proxy_preserve_host,
            proxy_add_headers: self.proxy_add_headers,
            limits: self.limits,
            rewrite_engine: self.rewrite_engine,
            rewrite_rules: self.rewrite_rules,
            proxy_pass: self.proxy_pass,
            proxy_pass_reverse: self.proxy_pass_reverse,
            balancers,
            access_logs,
            error_log: self.error_log,
            log_level: self.log_level,
            modules: self.modules.names(),
            warnings: self.warnings,
        })
    }
}
