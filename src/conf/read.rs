//! The read pass: what httpd does while it reads the files (its EXEC_ON_READ directives), before
//! any directive is given meaning. `Define`/`UnDefine`, `${VAR}` substitution, `Include` and
//! `IncludeOptional`, `<IfModule>`, `<IfDefine>`, `LoadModule` and `ServerRoot` are handled
//! here; what is left is a tree of `Item`s for `directives`. Content skipped by a false
//! `<IfModule>`/`<IfDefine>` is never split into words, substituted or looked up.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use super::ConfError;
use super::modules::ModuleSet;
use super::parse::{self, Node, Span, Word};

/// Include nesting cap (httpd: AP_MAX_INCLUDE_DEPTH 128): stops an Include loop.
const MAX_INCLUDE_DEPTH: usize = 128;

/// A directive or section after the read pass, with its words split and substituted.
#[derive(Debug, Clone)]
pub struct Item {
    /// As written, for messages.
    pub name: String,
    /// Lower-cased, for lookups.
    pub key: String,
    pub args: Vec<Word>,
    pub span: Span,
    /// `Some` for a section (`<Proxy>`, `<Directory>`...).
    pub children: Option<Vec<Item>>,
}

impl Item {
    pub fn err(&self, message: impl Into<String>) -> ConfError {
        ConfError::at(&self.span, &self.name, message)
    }

    pub fn err_at(&self, w: &Word, message: impl Into<String>) -> ConfError {
        ConfError::at(&self.span.with_line(w.line), &self.name, message)
    }

    pub fn warn_text(&self, message: &str) -> String {
        format!("{}: {}: {}", self.span, self.name, message)
    }
}

#[derive(Debug, Default)]
pub struct Reader {
    /// `Define NAME VALUE`.
    vars: HashMap<String, String>,
    /// Every `Define`d name (for `<IfDefine>`), with or without a value.
    defined: HashSet<String>,
    pub modules: ModuleSet,
    pub server_root: Option<PathBuf>,
    pub warnings: Vec<String>,
    depth: usize,
}

impl Reader {
    /// Reads `text` (the contents of `file`) and everything it includes.
    pub fn read_text(&mut self, text: &str, file: &Path) -> Result<Vec<Item>, ConfError> {
        let file = Rc::new(file.to_path_buf());
        let nodes = parse::parse(text, file)
            .map_err(|e| ConfError::at(&e.span, &e.directive, e.message))?;
        let mut out = Vec::new();
        self.process(nodes, &mut out)?;
        Ok(out)
    }

    fn words(&mut self, node: &Node) -> Vec<Word> {
        let vars = &self.vars;
        let (text, unknown) = parse::substitute(&node.args, &|name| {
            vars.get(name).cloned().or_else(|| std::env::var(name).ok())
        });
        for name in unknown {
            self.warnings.push(format!(
                "{}: Config variable ${{{name}}} is not defined",
                node.span
            ));
        }
        parse::words(&text)
    }

    fn process(&mut self, nodes: Vec<Node>, out: &mut Vec<Item>) -> Result<(), ConfError> {
        for node in nodes {
            let key = node.name.to_ascii_lowercase();
            let args = self.words(&node);
            let item = Item {
                name: node.name.clone(),
                key,
                args,
                span: node.span.clone(),
                children: None,
            };
            if let Some(children) = node.children {
                let item = Item {
                    name: format!("<{}>", node.name),
                    ..item
                };
                match item.key.as_str() {
                    "ifmodule" | "ifdefine" => {
                        let [arg] = item.args.as_slice() else {
                            return Err(item.err("takes exactly one argument"));
                        };
                        let (negate, name) = match arg.text.strip_prefix('!') {
                            Some(n) => (true, n),
                            None => (false, arg.text.as_str()),
                        };
                        if name.is_empty() {
                            return Err(item.err("needs a name after '!'"));
                        }
                        let present = if item.key == "ifmodule" {
                            self.modules.if_module(name)
                        } else {
                            self.defined.contains(name)
                        };
                        if present != negate {
                            self.process(children, out)?;
                        }
                    }
                    _ => {
                        let mut inner = Vec::new();
                        self.process(children, &mut inner)?;
                        out.push(Item {
                            children: Some(inner),
                            ..item
                        });
                    }
                }
                continue;
            }
            match item.key.as_str() {
                "define" => match item.args.as_slice() {
                    [name] => {
                        self.defined.insert(name.text.clone());
                    }
                    [name, value] => {
                        if name.text.contains(':') {
                            return Err(item.err("Variable name must not contain ':'"));
                        }
                        self.defined.insert(name.text.clone());
                        self.vars.insert(name.text.clone(), value.text.clone());
                    }
                    _ => return Err(item.err("takes one or two arguments: NAME [VALUE]")),
                },
                "undefine" => {
                    let [name] = item.args.as_slice() else {
                        return Err(item.err("takes one argument: NAME"));
                    };
                    self.defined.remove(&name.text);
                    self.vars.remove(&name.text);
                }
                "serverroot" => {
                    let [dir] = item.args.as_slice() else {
                        return Err(item.err("takes one argument: the server root directory"));
                    };
                    let p = PathBuf::from(&dir.text);
                    if !p.is_dir() {
                        return Err(item.err("ServerRoot must be a valid directory"));
                    }
                    self.server_root = Some(p);
                }
                "loadmodule" => {
                    let [name, _path] = item.args.as_slice() else {
                        return Err(item.err("takes two arguments: a module name and the name of a shared object file to load it from"));
                    };
                    self.modules
                        .load(&name.text)
                        .map_err(|m| item.err_at(name, m))?;
                }
                "include" | "includeoptional" => {
                    let [arg] = item.args.as_slice() else {
                        return Err(
                            item.err("takes one argument: a file, directory or wildcard pattern")
                        );
                    };
                    self.include(&item, arg, item.key == "includeoptional", out)?;
                }
                _ => out.push(item),
            }
        }
        Ok(())
    }

    /// Relative paths are relative to ServerRoot, else to the directory of the including file.
    fn resolve(&self, p: &str, span: &Span) -> PathBuf {
        let p = Path::new(p);
        if p.is_absolute() {
            return p.to_path_buf();
        }
        match &self.server_root {
            Some(root) => root.join(p),
            None => span.file.parent().unwrap_or(Path::new("")).join(p),
        }
    }

    fn include(
        &mut self,
        item: &Item,
        arg: &Word,
        optional: bool,
        out: &mut Vec<Item>,
    ) -> Result<(), ConfError> {
        let path = self.resolve(&arg.text, &item.span);
        let paths = match expand(&path) {
            Ok(p) => p,
            Err(_) if optional => return Ok(()),
            Err(m) => return Err(item.err_at(arg, m)),
        };
        for p in paths {
            let mut files = Vec::new();
            if p.is_dir() {
                collect_dir(&p, &mut files).map_err(|m| item.err_at(arg, m))?;
            } else if optional && !p.exists() {
                continue;
            } else {
                files.push(p);
            }
            for f in files {
                if self.depth >= MAX_INCLUDE_DEPTH {
                    return Err(item.err_at(arg, format!("Exceeded the maximum include nesting level of {MAX_INCLUDE_DEPTH} (Include loop?) at {}", f.display())));
                }
                let text = std::fs::read_to_string(&f).map_err(|e| {
                    item.err_at(
                        arg,
                        format!("Could not open configuration file {}: {e}", f.display()),
                    )
                })?;
                self.depth += 1;
                let file = Rc::new(f);
                let nodes = parse::parse(&text, file)
                    .map_err(|e| ConfError::at(&e.span, &e.directive, e.message));
                let r = nodes.and_then(|n| self.process(n, out));
                self.depth -= 1;
                r?;
            }
        }
        Ok(())
    }
}

/// Every file under `dir`, sorted, directories recursively (httpd includes a directory's files in
/// alphabetical order).
fn collect_dir(dir: &Path, files: &mut Vec<PathBuf>) -> Result<(), String> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| {
            format!(
                "Include/IncludeOptional: Could not open directory {}: {e}",
                dir.display()
            )
        })?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    for e in entries {
        if e.is_dir() {
            collect_dir(&e, files)?;
        } else {
            files.push(e);
        }
    }
    Ok(())
}

fn has_wildcard(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// Expands wildcards in any path component; matches sorted alphabetically. A wildcard with no
/// match is an error (`No matches for the wildcard ...`).
fn expand(path: &Path) -> Result<Vec<PathBuf>, String> {
    let text = path.to_string_lossy();
    if !has_wildcard(&text) {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut current = vec![PathBuf::new()];
    let comps: Vec<_> = path.components().collect();
    for (i, c) in comps.iter().enumerate() {
        let c = c.as_os_str().to_string_lossy();
        if !has_wildcard(&c) {
            for p in &mut current {
                p.push(c.as_ref());
            }
            continue;
        }
        let last = i + 1 == comps.len();
        let mut next = Vec::new();
        for dir in &current {
            let d = if dir.as_os_str().is_empty() {
                Path::new(".")
            } else {
                dir.as_path()
            };
            let rd = std::fs::read_dir(d).map_err(|e| {
                format!(
                    "Include/IncludeOptional: Could not open directory {}: {e}",
                    d.display()
                )
            })?;
            let mut names: Vec<String> = rd
                .filter_map(|e| e.ok())
                .filter(|e| last || e.path().is_dir())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| {
                    (!n.starts_with('.') || c.starts_with('.'))
                        && fnmatch(c.as_bytes(), n.as_bytes())
                })
                .collect();
            if names.is_empty() {
                return Err(format!(
                    "No matches for the wildcard '{c}' in '{}', failing",
                    d.display()
                ));
            }
            names.sort();
            next.extend(names.into_iter().map(|n| dir.join(n)));
        }
        current = next;
    }
    Ok(current)
}

/// Shell-style match: `*`, `?`, `[abc]`, `[a-z]`, `[!x]`.
fn fnmatch(p: &[u8], s: &[u8]) -> bool {
    match p.first() {
        None => s.is_empty(),
        Some(b'*') => (0..=s.len()).any(|i| fnmatch(&p[1..], &s[i..])),
        Some(b'?') => !s.is_empty() && fnmatch(&p[1..], &s[1..]),
        Some(b'[') => {
            let Some(close) = p.iter().skip(2).position(|&c| c == b']').map(|x| x + 2) else {
                return s.first() == Some(&b'[') && fnmatch(&p[1..], &s[1..]);
            };
            let Some(&ch) = s.first() else { return false };
            let mut set = &p[1..close];
            let negate = matches!(set.first(), Some(b'!') | Some(b'^'));
            if negate {
                set = &set[1..];
            }
            let mut hit = false;
            let mut i = 0;
            while i < set.len() {
                if i + 2 < set.len() && set[i + 1] == b'-' {
                    hit |= set[i] <= ch && ch <= set[i + 2];
                    i += 3;
                } else {
                    hit |= set[i] == ch;
                    i += 1;
                }
            }
            hit != negate && fnmatch(&p[close + 1..], &s[1..])
        }
        Some(&c) => s.first() == Some(&c) && fnmatch(&p[1..], &s[1..]),
    }
}

#[cfg(test)]
mod tests {
    use super::fnmatch;

    #[test]
    fn wildcard_matching() {
        assert!(fnmatch(b"*.conf", b"a.conf"));
        assert!(!fnmatch(b"*.conf", b"a.conf.bak"));
        assert!(fnmatch(b"v?-[0-9][!x].conf", b"v1-2y.conf"));
        assert!(!fnmatch(b"v?-[0-9][!x].conf", b"v1-2x.conf"));
    }
}
