//! What ringproxy knows about httpd modules: which are built in (always loaded, as if compiled
//! statically into httpd), which a `LoadModule` line must name before their directives or
//! features work, and how `<IfModule>` names (`rewrite_module` or `mod_rewrite.c`) map to them.

/// Always loaded; `LoadModule` of one of these is accepted silently.
pub const BUILTIN: &[&str] = &[
    "core",
    "so_module",
    "http_module",
    "mpm_event_module",
    "mpm_worker_module",
    "mpm_prefork_module",
    "proxy_module",
    "proxy_http_module",
    "rewrite_module",
    "log_config_module",
    "logio_module",
    "authz_core_module",
    "authz_host_module",
    "unixd_module",
    "mime_module",
    "dir_module",
    "alias_module",
    "env_module",
    "setenvif_module",
    "filter_module",
    "reqtimeout_module",
];

/// Known to ringproxy, but only usable once a `LoadModule` line names them.
pub const LOADABLE: &[&str] = &[
    "proxy_balancer_module",
    "lbmethod_byrequests_module",
    "lbmethod_bytraffic_module",
    "lbmethod_bybusyness_module",
    "lbmethod_heartbeat_module",
    "slotmem_shm_module",
    "ssl_module",
    "headers_module",
    "unique_id_module",
    "status_module",
    "proxy_hcheck_module",
    "heartmonitor_module",
    "watchdog_module",
];

/// The modules of one configuration: the built-ins, then `LoadModule`d ones in load order.
#[derive(Debug, Clone)]
pub struct ModuleSet {
    loaded: Vec<String>,
}

impl Default for ModuleSet {
    fn default() -> Self {
        ModuleSet {
            loaded: BUILTIN.iter().map(|s| s.to_string()).collect(),
        }
    }
}

impl ModuleSet {
    /// `LoadModule name path`: Err(message) when ringproxy does not have the module.
    pub fn load(&mut self, name: &str) -> Result<(), String> {
        if BUILTIN.contains(&name) || self.is_loaded(name) {
            return Ok(());
        }
        if LOADABLE.contains(&name) {
            self.loaded.push(name.to_string());
            return Ok(());
        }
        Err(format!("module {name} is not part of ringproxy"))
    }

    pub fn is_loaded(&self, name: &str) -> bool {
        self.loaded.iter().any(|m| m == name)
    }

    /// `<IfModule name>`: `name` is a module identifier (`proxy_module`) or its source file
    /// (`mod_proxy.c`).
    pub fn if_module(&self, name: &str) -> bool {
        self.is_loaded(&module_id(name))
    }

    pub fn names(&self) -> Vec<String> {
        self.loaded.clone()
    }
}

/// `mod_rewrite.c` -> `rewrite_module`; an identifier is returned unchanged.
pub fn module_id(name: &str) -> String {
    let Some(stem) = name.strip_suffix(".c") else {
        return name.to_string();
    };
    match stem {
        "core" => "core".into(),
        "http_core" => "http_module".into(),
        "event" => "mpm_event_module".into(),
        "worker" => "mpm_worker_module".into(),
        "prefork" => "mpm_prefork_module".into(),
        _ => format!("{}_module", stem.strip_prefix("mod_").unwrap_or(stem)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_map_to_identifiers() {
        assert_eq!(module_id("mod_rewrite.c"), "rewrite_module");
        assert_eq!(module_id("mod_proxy_balancer.c"), "proxy_balancer_module");
        assert_eq!(module_id("event.c"), "mpm_event_module");
        assert_eq!(module_id("proxy_module"), "proxy_module");
        let mut m = ModuleSet::default();
        assert!(m.if_module("mod_rewrite.c"));
        assert!(!m.if_module("headers_module"));
        m.load("headers_module").unwrap();
        assert!(m.if_module("mod_headers.c"));
        assert_eq!(
            m.load("php_module").unwrap_err(),
            "module php_module is not part of ringproxy"
        );
    }
}
