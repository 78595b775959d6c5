//! mod_log_config and the error log: `ErrorLog`, `LogLevel`, `LogFormat`, `CustomLog`,
//! `TransferLog`. Access logs wait in the `Builder` until the whole file is read, then their
//! format nicknames are resolved (as httpd resolves them).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::ConfError;
use super::args::one;
use super::builder::Builder;
use super::model::*;
use super::parse::{Span, Word};
use super::read::Item;

/// A `CustomLog`/`TransferLog` waiting for the nicknames (resolved after the walk, as httpd
/// resolves them after reading the whole configuration).
pub(super) struct PendingLog {
    pub span: Span,
    pub directive: String,
    pub path: PathBuf,
    /// None: the default format (TransferLog).
    pub format: Option<String>,
    pub env: Option<(String, bool)>,
}

/// httpd's predefined nicknames (`common`, `combined`, `combinedio`), and the default format
/// (`common`).
pub(super) fn builtin_log_formats() -> (HashMap<String, String>, String) {
    let common = "%h %l %u %t \"%r\" %>s %b".to_string();
    let combined = format!("{common} \"%{{Referer}}i\" \"%{{User-Agent}}i\"");
    let log_formats = HashMap::from([
        ("common".to_string(), common.clone()),
        ("combinedio".to_string(), format!("{combined} %I %O")),
        ("combined".to_string(), combined),
    ]);
    (log_formats, common)
}

pub(super) fn error_log(b: &mut Builder, item: &Item) -> Result<(), ConfError> {
    let w = one(item, "a file name")?;
    b.error_log = Some(b.log_path(item, w)?);
    Ok(())
}

pub(super) fn log_level(b: &mut Builder, item: &Item) -> Result<(), ConfError> {
    if item.args.is_empty() {
        return Err(item.err("takes at least one argument: a level"));
    }
    for w in &item.args {
        if w.text.contains(':') {
            b.warn(
                item,
                format!("per-module level '{}' is ignored by ringproxy", w.text),
            );
            continue;
        }
        b.log_level = match LogLevel::from_name(&w.text) {
            Some(level) => level,
            None => {
                return Err(item.err_at(
                    w,
                    format!(
                        "'{}' is not a level: one of emerg, alert, crit, error, warn, notice, info, debug, trace1..trace8",
                        w.text
                    ),
                ));
            }
        };
    }
    Ok(())
}

pub(super) fn log_format(b: &mut Builder, item: &Item) -> Result<(), ConfError> {
    let (fmt, nick) = match item.args.as_slice() {
        [f] => (f, None),
        [f, n] => (f, Some(n)),
        _ => return Err(item.err("takes one or two arguments: a format string [nickname]")),
    };
    crate::log::LogFormat::compile(&fmt.text).map_err(|m| item.err_at(fmt, m))?;
    match nick {
        Some(n) => {
            b.log_formats.insert(n.text.clone(), fmt.text.clone());
        }
        None => b.default_format = fmt.text.clone(),
    }
    Ok(())
}

pub(super) fn custom_log(b: &mut Builder, item: &Item) -> Result<(), ConfError> {
    let (path, fmt, env) = match item.args.as_slice() {
        [p, f] => (p, f, None),
        [p, f, e] => (p, f, Some(e)),
        _ => {
            return Err(item.err(
                "takes two or three arguments: a file name, a format or nickname, [env=[!]VAR]",
            ));
        }
    };
    let env = match env {
        None => None,
        Some(e) => {
            if e.text.starts_with("expr=") {
                return Err(item.err_at(
                    e,
                    "expr= conditions are not supported by ringproxy; use env=[!]VAR",
                ));
            }
            let Some(var) = e.text.strip_prefix("env=") else {
                return Err(item.err_at(
                    e,
                    format!("'{}': the third argument must be env=[!]VAR", e.text),
                ));
            };
            let (var, set) = match var.strip_prefix('!') {
                Some(v) => (v, false),
                None => (var, true),
            };
            if var.is_empty() {
                return Err(item.err_at(e, "env= needs a variable name"));
            }
            Some((var.to_string(), set))
        }
    };
    let path = b.log_path(item, path)?;
    if fmt.text.contains('%') {
        crate::log::LogFormat::compile(&fmt.text).map_err(|m| item.err_at(fmt, m))?;
    }
    b.logs.push(PendingLog {
        span: item.span.clone(),
        directive: item.name.clone(),
        path,
        format: Some(fmt.text.clone()),
        env,
    });
    Ok(())
}

pub(super) fn transfer_log(b: &mut Builder, item: &Item) -> Result<(), ConfError> {
    let w = one(item, "a file name")?;
    let path = b.log_path(item, w)?;
    b.logs.push(PendingLog {
        span: item.span.clone(),
        directive: item.name.clone(),
        path,
        format: None,
        env: None,
    });
    Ok(())
}

impl Builder {
    pub(super) fn log_path(&self, item: &Item, w: &Word) -> Result<PathBuf, ConfError> {
        if w.text.starts_with('|') {
            return Err(item.err_at(w, "piped logs are not supported by ringproxy"));
        }
        if w.text.starts_with("syslog:") || w.text == "syslog" {
            return Err(item.err_at(w, "syslog logging is not supported by ringproxy"));
        }
        let p = Path::new(&w.text);
        Ok(if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.base_dir.join(p)
        })
    }

    /// The access logs, their format nicknames resolved and compiled.
    pub(super) fn access_logs(&mut self) -> Result<Vec<AccessLog>, ConfError> {
        let mut access_logs = Vec::new();
        for log in std::mem::take(&mut self.logs) {
            let fmt = match &log.format {
                None => self.default_format.clone(),
                Some(f) if f.contains('%') => f.clone(),
                Some(f) => match self.log_formats.get(f) {
                    Some(f) => f.clone(),
                    None => {
                        return Err(ConfError::at(
                            &log.span,
                            &log.directive,
                            format!(
                                "unknown LogFormat nickname '{f}' (a format string must contain '%')"
                            ),
                        ));
                    }
                },
            };
            let format = crate::log::LogFormat::compile(&fmt)
                .map_err(|m| ConfError::at(&log.span, &log.directive, m))?;
            access_logs.push(AccessLog {
                path: log.path,
                format,
                env_condition: log.env,
            });
        }
        Ok(access_logs)
    }
}
