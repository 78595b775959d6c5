//! mod_rewrite directives: `RewriteEngine`, `RewriteCond`, `RewriteRule` (server context only).
//! Patterns are compiled with the `regex` crate; substitutions and test strings become
//! `Template` parts at load time, so the runtime never parses them.

use regex::Regex;

use super::ConfError;
use super::args::flag;
use super::builder::Builder;
use super::model::*;
use super::parse::Word;
use super::proxy::need_balancer_modules;
use super::read::Item;

pub(super) fn rewrite_engine(b: &mut Builder, item: &Item) -> Result<(), ConfError> {
    b.rewrite_engine = flag(item)?;
    Ok(())
}

pub(super) fn rewrite_map(_b: &mut Builder, item: &Item) -> Result<(), ConfError> {
    Err(item.err("RewriteMap is not supported by ringproxy"))
}

/// `[A,B=c]` -> ["A", "B=c"].
fn flag_list<'a>(item: &Item, w: &'a Word) -> Result<Vec<&'a str>, ConfError> {
    let inner = w
        .text
        .strip_prefix('[')
        .and_then(|s| s.strip_suffix(']'))
        .ok_or_else(|| {
            item.err_at(
                w,
                format!("flags must be written [flag,flag...], not '{}'", w.text),
            )
        })?;
    Ok(inner
        .split(',')
        .map(str::trim)
        .filter(|f| !f.is_empty())
        .collect())
}

fn compile(item: &Item, w: &Word, pattern: &str, nocase: bool) -> Result<Regex, ConfError> {
    let src = if nocase {
        format!("(?i){pattern}")
    } else {
        pattern.to_string()
    };
    Regex::new(&src).map_err(|e| {
        item.err_at(
            w,
            format!("cannot compile regular expression '{pattern}': {e}"),
        )
    })
}

/// The literal text at the start of every match of a pattern anchored with `^`: the run of
/// plain (or backslash-escaped punctuation) characters after it, less a last one that a
/// quantifier may repeat or drop. None when there is no such run, or when the pattern has an
/// alternation anywhere (`^/a|/b` does not anchor `/b`).
fn literal_prefix(pattern: &str) -> Option<String> {
    let rest = pattern.strip_prefix('^')?;
    if pattern.contains('|') {
        return None;
    }
    let mut prefix = String::new();
    let mut chars = rest.chars().peekable();
    while let Some(c) = chars.next() {
        let lit = match c {
            '\\' => match chars.next() {
                // `\<` and `\>` are word-boundary assertions, not characters.
                Some(e) if e.is_ascii_punctuation() && e != '<' && e != '>' => e,
                _ => break, // a class, an assertion or a code: not plain text
            },
            '.' | '+' | '*' | '?' | '(' | ')' | '[' | ']' | '{' | '}' | '^' | '$' => break,
            c => c,
        };
        if matches!(chars.peek(), Some('?' | '*' | '+' | '{')) {
            break; // `lit` may repeat or be absent
        }
        prefix.push(lit);
    }
    (!prefix.is_empty()).then_some(prefix)
}

pub(super) fn rewrite_cond(b: &mut Builder, item: &Item) -> Result<(), ConfError> {
    let (test, pat, flags) = match item.args.as_slice() {
        [t, p] => (t, p, None),
        [t, p, f] => (t, p, Some(f)),
        _ => return Err(item.err("takes two or three arguments: TestString CondPattern [flags]")),
    };
    let (mut nocase, mut or_next) = (false, false);
    if let Some(f) = flags {
        for fl in flag_list(item, f)? {
            match fl.to_ascii_lowercase().as_str() {
                "nc" | "nocase" => nocase = true,
                "or" | "ornext" => or_next = true,
                "nv" | "novary" => {}
                _ => return Err(item.err_at(f, format!("unknown flag '{fl}'"))),
            }
        }
    }
    let test_t = template(item, test)?;
    let (negate, p) = match pat.text.strip_prefix('!') {
        Some(p) => (true, p),
        None => (false, pat.text.as_str()),
    };
    let pattern = if matches!(
        p,
        "-f" | "-F" | "-d" | "-s" | "-l" | "-L" | "-h" | "-x" | "-U" | "-H"
    ) {
        return Err(item.err_at(
            pat,
            format!("'{p}' is not supported by ringproxy (no filesystem)"),
        ));
    } else if matches!(p, "-eq" | "-ne" | "-lt" | "-le" | "-gt" | "-ge") {
        return Err(item.err_at(
            pat,
            format!("integer comparison '{p}' is not supported by ringproxy"),
        ));
    } else if p == "expr" {
        return Err(item.err_at(pat, "expr conditions are not supported by ringproxy"));
    } else if p.starts_with("<=") || p.starts_with(">=") {
        return Err(item.err_at(
            pat,
            format!("'{}' comparisons are not supported by ringproxy", &p[..2]),
        ));
    } else if let Some(s) = p.strip_prefix('=') {
        CondPattern::Equal(
            if s == "\"\"" {
                String::new()
            } else {
                s.to_string()
            },
            nocase,
        )
    } else if let Some(s) = p.strip_prefix('<') {
        CondPattern::Less(s.to_string())
    } else if let Some(s) = p.strip_prefix('>') {
        CondPattern::Greater(s.to_string())
    } else {
        CondPattern::Regex(compile(item, pat, p, nocase)?)
    };
    b.pending_conds.push((
        RewriteCond {
            test: test_t,
            pattern,
            negate,
            or_next,
        },
        item.span.clone(),
    ));
    Ok(())
}

pub(super) fn rewrite_rule(b: &mut Builder, item: &Item) -> Result<(), ConfError> {
    let (pat, subst, flags) = match item.args.as_slice() {
        [p, s] => (p, s, None),
        [p, s, f] => (p, s, Some(f)),
        _ => return Err(item.err("takes two or three arguments: Pattern Substitution [flags]")),
    };
    let mut fl = RewriteFlags::default();
    if let Some(f) = flags {
        for raw in flag_list(item, f)? {
            let (key, value) = match raw.split_once('=') {
                Some((k, v)) => (k.to_ascii_lowercase(), Some(v)),
                None => (raw.to_ascii_lowercase(), None),
            };
            let no_value = |fl: &str| match value {
                Some(_) => Err(item.err_at(f, format!("flag {fl} takes no value"))),
                None => Ok(()),
            };
            match key.as_str() {
                "p" | "proxy" => {
                    no_value(raw)?;
                    fl.proxy = true;
                }
                "l" | "last" => {
                    no_value(raw)?;
                    fl.last = true;
                }
                "nc" | "nocase" => {
                    no_value(raw)?;
                    fl.nocase = true;
                }
                "qsa" | "qsappend" => {
                    no_value(raw)?;
                    fl.qsa = true;
                }
                "qsd" | "qsdiscard" => {
                    no_value(raw)?;
                    fl.qsd = true;
                }
                "ne" | "noescape" => {
                    no_value(raw)?;
                    fl.noescape = true;
                }
                "f" | "forbidden" => {
                    no_value(raw)?;
                    fl.forbidden = true;
                }
                "g" | "gone" => {
                    no_value(raw)?;
                    fl.gone = true;
                }
                "r" | "redirect" => {
                    let code = match value.map(|v| v.to_ascii_lowercase()) {
                        None => 302,
                        Some(v) => match v.as_str() {
                            "permanent" => 301,
                            "temp" => 302,
                            "seeother" => 303,
                            n => match n.parse::<u16>() {
                                Ok(c) if (300..=599).contains(&c) => c,
                                _ => return Err(item.err_at(f, format!("invalid redirect code '{raw}' (300..599, permanent, temp or seeother)"))),
                            },
                        },
                    };
                    fl.redirect = Some(code);
                }
                "b" | "bnp" | "backrefnoplus" | "bctls" | "bne" | "c" | "chain" | "co"
                | "cookie" | "dpi" | "discardpath" | "e" | "env" | "end" | "h" | "handler"
                | "n" | "next" | "ns" | "nosubreq" | "pt" | "passthrough" | "s" | "skip" | "t"
                | "type" | "qsl" | "qslast" | "unsafeallow3f" | "unsafeprefixstat" | "unc" => {
                    return Err(item.err_at(
                        f,
                        format!("RewriteRule flag {raw} is not supported by ringproxy"),
                    ));
                }
                _ => return Err(item.err_at(f, format!("unknown flag '{raw}'"))),
            }
        }
    }
    // [P], [F] and [G] imply [L].
    if fl.proxy || fl.forbidden || fl.gone {
        fl.last = true;
    }
    let (negate, p) = match pat.text.strip_prefix('!') {
        Some(p) => (true, p),
        None => (false, pat.text.as_str()),
    };
    let pattern = compile(item, pat, p, fl.nocase)?;
    let substitution = if subst.text == "-" {
        None
    } else {
        Some(template(item, subst)?)
    };
    if fl.proxy {
        check_proxy_target(b, item, subst, substitution.as_deref())?;
    }
    let conds = std::mem::take(&mut b.pending_conds)
        .into_iter()
        .map(|(c, _)| c)
        .collect();
    b.rewrite_rules.push(RewriteRule {
        at: item.span.to_string(),
        pattern,
        prefix: (!fl.nocase).then(|| literal_prefix(p)).flatten(),
        negate,
        substitution,
        conds,
        flags: fl,
    });
    Ok(())
}

/// A `[P]` target must be `balancer://name/...` (a balancer defined anywhere in the file) or
/// `http://...`.
fn check_proxy_target(
    b: &mut Builder,
    item: &Item,
    w: &Word,
    subst: Option<&[Template]>,
) -> Result<(), ConfError> {
    let Some(parts) = subst else {
        return Err(item.err_at(w, "[P] needs a substitution URL, not '-'"));
    };
    let lit = match parts.first() {
        Some(Template::Lit(s)) => s.as_str(),
        _ => "",
    };
    let lower = lit.to_ascii_lowercase();
    if lower.starts_with("balancer://") {
        let rest = &lit[11..];
        let name = match rest.find('/') {
            Some(i) => &rest[..i],
            None if parts.len() == 1 => rest,
            None => {
                return Err(item.err_at(w, "[P] target: the balancer name must be literal text"));
            }
        };
        if name.is_empty() {
            return Err(item.err_at(w, "[P] target: balancer URL without a name"));
        }
        let name = format!("balancer://{}", name.to_ascii_lowercase());
        need_balancer_modules(b, &name).map_err(|m| item.err_at(w, m))?;
        b.rule_balancer_refs
            .push((name, item.span.with_line(w.line)));
        Ok(())
    } else if lower.starts_with("http://") {
        Ok(())
    } else if lower.starts_with("https://") {
        Err(item.err_at(
            w,
            "[P] to https:// is not supported: TLS to backends is not supported by ringproxy yet",
        ))
    } else {
        Err(item.err_at(
            w,
            format!(
                "[P] target '{}' must start with balancer:// or http://",
                w.text
            ),
        ))
    }
}

/// Parses a substitution or test string: `$N`, `%N`, `%{VAR}`, `\x` (literal x), text.
pub(super) fn template(item: &Item, w: &Word) -> Result<Vec<Template>, ConfError> {
    let s = &w.text;
    let b = s.as_bytes();
    let mut out: Vec<Template> = Vec::new();
    let mut lit = String::new();
    let mut i = 0;
    let flush = |lit: &mut String, out: &mut Vec<Template>| {
        if !lit.is_empty() {
            out.push(Template::Lit(std::mem::take(lit)));
        }
    };
    while i < b.len() {
        let c = b[i];
        let next = b.get(i + 1).copied();
        match (c, next) {
            (b'\\', Some(_)) => {
                let ch = s[i + 1..].chars().next().expect("char");
                lit.push(ch);
                i += 1 + ch.len_utf8();
            }
            (b'$', Some(d)) if d.is_ascii_digit() => {
                flush(&mut lit, &mut out);
                out.push(Template::RuleRef(d - b'0'));
                i += 2;
            }
            (b'%', Some(d)) if d.is_ascii_digit() => {
                flush(&mut lit, &mut out);
                out.push(Template::CondRef(d - b'0'));
                i += 2;
            }
            (b'$', Some(b'{')) => {
                return Err(item.err_at(
                    w,
                    "RewriteMap lookups (${map:key}) are not supported by ringproxy",
                ));
            }
            (b'%', Some(b'{')) => {
                let Some(end) = s[i + 2..].find('}') else {
                    return Err(item.err_at(w, format!("unterminated %{{ in '{s}'")));
                };
                let name = &s[i + 2..i + 2 + end];
                let var = server_var(name).map_err(|m| item.err_at(w, m))?;
                flush(&mut lit, &mut out);
                out.push(Template::Var(var));
                i += 2 + end + 1;
            }
            _ => {
                let ch = s[i..].chars().next().expect("char");
                lit.push(ch);
                i += ch.len_utf8();
            }
        }
    }
    flush(&mut lit, &mut out);
    Ok(out)
}

fn server_var(name: &str) -> Result<ServerVar, String> {
    if let Some(h) = name.strip_prefix("HTTP:") {
        if h.is_empty() {
            return Err("%{HTTP:} needs a header name".into());
        }
        return Ok(ServerVar::Header(h.to_string()));
    }
    Ok(match name {
        "HTTP_HOST" => ServerVar::Header("Host".into()),
        "HTTP_USER_AGENT" => ServerVar::Header("User-Agent".into()),
        "HTTP_REFERER" => ServerVar::Header("Referer".into()),
        "HTTP_COOKIE" => ServerVar::Header("Cookie".into()),
        "HTTP_ACCEPT" => ServerVar::Header("Accept".into()),
        "REQUEST_URI" => ServerVar::RequestUri,
        "QUERY_STRING" => ServerVar::QueryString,
        "REQUEST_METHOD" => ServerVar::RequestMethod,
        "REQUEST_SCHEME" => ServerVar::RequestScheme,
        "REMOTE_ADDR" => ServerVar::RemoteAddr,
        "REMOTE_PORT" => ServerVar::RemotePort,
        "SERVER_NAME" => ServerVar::ServerName,
        "SERVER_PORT" => ServerVar::ServerPort,
        "SERVER_ADDR" => ServerVar::ServerAddr,
        "THE_REQUEST" => ServerVar::TheRequest,
        "HTTPS" => ServerVar::Https,
        _ => {
            return Err(format!(
                "server variable %{{{name}}} is not supported by ringproxy"
            ));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::literal_prefix;

    #[test]
    fn the_literal_prefix_is_what_every_match_starts_with() {
        for (pattern, want) in [
            ("^/service1/(.*)", Some("/service1/")),
            ("^/app$", Some("/app")),
            ("^/a.b", Some("/a")),
            ("^/ab?c", Some("/a")),
            ("^/ab*", Some("/a")),
            ("^/ab+", Some("/a")),
            ("^/a{2}", Some("/")),
            ("^/v1\\.0/x", Some("/v1.0/x")),
            ("^/v1\\.?0", Some("/v1")),
            ("^/caf\u{e9}/", Some("/caf\u{e9}/")),
            ("^/x\\d+", Some("/x")),
            ("^/\\<b", Some("/")),
            ("^(?i)/a", None),
            ("^/a|/b", None),
            ("^/(a|b)/", None),
            ("/service1/(.*)", None),
            ("^.*", None),
            ("^", None),
        ] {
            assert_eq!(literal_prefix(pattern).as_deref(), want, "{pattern}");
        }
    }

    /// Every path the regex matches starts with the prefix, so skipping the regex for the
    /// others changes nothing.
    #[test]
    fn a_path_without_the_prefix_never_matches() {
        let patterns = [
            "^/service1/(.*)",
            "^/app$",
            "^/ab?c",
            "^/a{2}x",
            "^/v1\\.?0",
            "^/x\\d+",
            "^/\\<b",
            "^/\\-\\~\\#/",
            "^/caf\u{e9}",
        ];
        let paths = [
            "/",
            "/a",
            "/ab",
            "/ac",
            "/abc",
            "/aax",
            "/aaax",
            "/app",
            "/apps",
            "/b",
            "/v10",
            "/v1.0",
            "/v1-0",
            "/x1",
            "/x",
            "/-~#/",
            "/service1/",
            "/service1/a",
            "/service1",
            "/service10/",
            "/caf\u{e9}",
            "/cafe",
        ];
        for p in patterns {
            let re = regex::Regex::new(p).unwrap();
            let prefix = literal_prefix(p).expect(p);
            for path in paths {
                assert!(
                    !re.is_match(path) || path.starts_with(&prefix),
                    "{p} matches {path} without {prefix}"
                );
            }
        }
    }
}
