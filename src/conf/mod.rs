//! Configuration: httpd syntax in, a validated `Config` out.
//!
//! The stages, in order:
//! - `parse`: syntax only (logical lines, comments, quoting, `<Section>` nesting, file:line);
//! - `read`: what httpd does while reading (Include, Define/`${VAR}`, IfModule, IfDefine,
//!   LoadModule, ServerRoot);
//! - `directives`: the directive table; `builder` walks the read items through it, each
//!   directive's handler building the model (`core_directives`, `log_directives`, `proxy` with
//!   `params` and `member_url`, `rewrite`, `accepted`); `validate` then checks the whole.
//!
//! `modules` is what ringproxy knows about httpd modules. Only the first error is reported, as
//! httpd does; harmless directives are accepted with a warning kept in `Config::warnings`.

mod accepted;
mod args;
mod builder;
mod core_directives;
mod directives;
mod log_directives;
mod member_url;
pub mod model;
pub mod modules;
mod params;
mod parse;
mod proxy;
mod read;
mod rewrite;
#[cfg(test)]
mod tests;
mod validate;

use std::fmt;
use std::path::{Path, PathBuf};

pub use model::Config;

/// A configuration error: where, which directive, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfError {
    pub file: PathBuf,
    /// 1-based; 0 when the error is about the file as a whole (e.g. no `Listen`).
    pub line: usize,
    /// The directive (or `<Section>`) at fault, as written.
    pub directive: String,
    pub message: String,
}

impl ConfError {
    pub(crate) fn at(span: &parse::Span, directive: &str, message: impl Into<String>) -> ConfError {
        ConfError {
            file: span.file.as_ref().clone(),
            line: span.line,
            directive: directive.to_string(),
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "Syntax error on line {} of {}:",
            self.line,
            self.file.display()
        )?;
        if self.directive.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "{}: {}", self.directive, self.message)
        }
    }
}

impl std::error::Error for ConfError {}

/// Reads `path` and everything it includes, and builds the validated `Config`.
pub fn load(path: &Path) -> Result<Config, ConfError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfError {
        file: path.to_path_buf(),
        line: 0,
        directive: String::new(),
        message: format!("Could not open configuration file {}: {e}", path.display()),
    })?;
    load_str(&text, path)
}

/// As `load`, with the main file's text given. `path` names it in errors, and relative
/// `Include` and log paths resolve against its directory unless `ServerRoot` is set.
pub fn load_str(text: &str, path: &Path) -> Result<Config, ConfError> {
    let mut reader = read::Reader::default();
    let items = reader.read_text(text, path)?;
    builder::build(items, reader, path)
}
