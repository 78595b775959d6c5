//! LogFormat string parser, following mod_log_config's `parse_log_string`,
//! `parse_log_misc_string` and `parse_log_item`.

use super::time::TimeItem;
use super::{Cond, DurUnit, Field, Item, Kind};

const RAN_OFF: &str = "Ran off end of LogFormat parsing args to some directive";

pub(super) fn parse(fmt: &str) -> Result<Vec<Item>, String> {
    let s = fmt.as_bytes();
    let mut items = Vec::new();
    let mut lit: Vec<u8> = Vec::new();
    let mut i = 0;
    while i < s.len() {
        match s[i] {
            b'\\' => {
                i += 1;
                let esc = match s.get(i) {
                    Some(b'\\') => Some(b'\\'),
                    Some(b'n') => Some(b'\n'),
                    Some(b'r') => Some(b'\r'),
                    Some(b't') => Some(b'\t'),
                    // httpd keeps `\"` verbatim, but its config tokenizer has
                    // already turned `\"` into `"`; accept either input.
                    Some(b'"') => Some(b'"'),
                    _ => None,
                };
                match esc {
                    Some(c) => {
                        lit.push(c);
                        i += 1;
                    }
                    None => lit.push(b'\\'),
                }
            }
            b'%' => {
                i += 1;
                if s.get(i) == Some(&b'%') {
                    lit.push(b'%');
                    i += 1;
                    continue;
                }
                let (field, next) = parse_item(fmt, i)?;
                if !lit.is_empty() {
                    items.push(Item::Lit(std::mem::take(&mut lit).into_boxed_slice()));
                }
                items.push(Item::Field(field));
                i = next;
            }
            c => {
                lit.push(c);
                i += 1;
            }
        }
    }
    if !lit.is_empty() {
        items.push(Item::Lit(lit.into_boxed_slice()));
    }
    Ok(items)
}

/// Parses `[!][status,list][<|>][{arg}]letter` starting just after the `%`.
/// Modifiers may come in any order, as in httpd.
fn parse_item(fmt: &str, mut i: usize) -> Result<(Field, usize), String> {
    let s = fmt.as_bytes();
    let mut negate = false;
    let mut list: Vec<u64> = Vec::new();
    let mut arg: Option<&str> = None;
    loop {
        let Some(&c) = s.get(i) else {
            return Err(RAN_OFF.to_string());
        };
        match c {
            b'!' => {
                negate = !negate;
                i += 1;
            }
            b'<' | b'>' | b',' => i += 1,
            b'{' => {
                i += 1;
                match s[i..].iter().position(|&b| b == b'}') {
                    Some(e) => {
                        arg = Some(&fmt[i..i + e]);
                        i += e + 1;
                    }
                    None => {
                        arg = Some(&fmt[i..]);
                        i = s.len();
                    }
                }
            }
            b'0'..=b'9' => {
                let mut n: u64 = 0;
                while let Some(d @ b'0'..=b'9') = s.get(i) {
                    n = n.saturating_mul(10).saturating_add(u64::from(d - b'0'));
                    i += 1;
                }
                list.push(n);
            }
            b'^' => {
                let tok = fmt.get(i + 1..i + 3).unwrap_or("");
                let kind = match tok {
                    // %^FB needs LogIOTrackTTFB; trailers are not kept.
                    "FB" | "ti" | "to" => Kind::Const(Box::from(&b"-"[..])),
                    _ => {
                        let shown: String = fmt[i + 1..].chars().take(2).collect();
                        return Err(format!("Unrecognized LogFormat directive %^{shown}"));
                    }
                };
                return Ok((field(negate, list, kind), i + 3));
            }
            _ => {
                let ch = fmt[i..].chars().next().unwrap_or('?');
                let kind = letter(ch, arg)
                    .ok_or_else(|| format!("Unrecognized LogFormat directive %{ch}"))??;
                return Ok((field(negate, list, kind), i + ch.len_utf8()));
            }
        }
    }
}

fn field(negate: bool, list: Vec<u64>, kind: Kind) -> Field {
    let cond = (!list.is_empty()).then(|| Cond {
        negate,
        list: list.into_boxed_slice(),
    });
    Field { cond, kind }
}

fn dash() -> Kind {
    Kind::Const(Box::from(&b"-"[..]))
}

fn literal(a: &str) -> Kind {
    Kind::Const(Box::from(a.as_bytes()))
}

/// The item for `letter` with its `{arg}`; `None` if the letter is unknown.
fn letter(ch: char, arg: Option<&str>) -> Option<Result<Kind, String>> {
    let a = arg.unwrap_or("");
    let name = || Box::<str>::from(a);
    Some(Ok(match ch {
        // No mod_remoteip: client IP and peer IP are the same.
        'a' | 'h' => Kind::RemoteIp,
        'A' => Kind::LocalIp,
        'b' => Kind::BodyClf,
        'B' => Kind::BodyBytes,
        'C' => Kind::Cookie(name()),
        'D' => Kind::Duration(DurUnit::Us),
        'e' => Kind::Env(name()),
        // Filename of a proxied request is not tracked.
        'f' => dash(),
        'H' => Kind::Protocol,
        'i' => Kind::ReqHeader(name()),
        'k' => Kind::KeepAlives,
        'l' => dash(),
        'L' => {
            if a == "c" {
                dash()
            } else {
                Kind::LogId
            }
        }
        'm' => Kind::Method,
        'n' => dash(),
        'o' => Kind::RespHeader(name()),
        'p' => {
            if a.is_empty()
                || a.eq_ignore_ascii_case("canonical")
                || a.eq_ignore_ascii_case("local")
            {
                Kind::LocalPort
            } else if a.eq_ignore_ascii_case("remote") {
                Kind::RemotePort
            } else {
                literal(a)
            }
        }
        'P' => match a {
            "" | "pid" => Kind::Pid,
            "tid" => Kind::Tid,
            "hextid" => Kind::HexTid,
            _ => literal(a),
        },
        'q' => Kind::Query,
        'r' => Kind::RequestLine,
        'R' => Kind::Handler,
        's' => Kind::Status,
        't' => match TimeItem::parse(arg) {
            Ok(t) => Kind::Time(t),
            Err(e) => return Some(Err(e)),
        },
        'T' => {
            if a.is_empty() || a.eq_ignore_ascii_case("s") {
                Kind::Duration(DurUnit::S)
            } else if a.eq_ignore_ascii_case("ms") {
                Kind::Duration(DurUnit::Ms)
            } else if a.eq_ignore_ascii_case("us") {
                Kind::Duration(DurUnit::Us)
            } else {
                literal(a)
            }
        }
        'u' => dash(),
        'U' => Kind::Path,
        'v' | 'V' => Kind::ServerName,
        'X' => Kind::ConnStatus,
        'I' => Kind::BytesIn,
        'O' => Kind::BytesOut,
        'S' => Kind::BytesBoth,
        'x' => Kind::Ssl(name()),
        // mod_ssl's %{..}c
        'c' => match a {
            "version" => Kind::Ssl(Box::from("SSL_PROTOCOL")),
            "cipher" => Kind::Ssl(Box::from("SSL_CIPHER")),
            "subjectdn" => Kind::Ssl(Box::from("SSL_CLIENT_S_DN")),
            "issuerdn" => Kind::Ssl(Box::from("SSL_CLIENT_I_DN")),
            _ => dash(),
        },
        _ => return None,
    }))
}

/// mod_log_config's `log_cookie`: split the Cookie header on `;`, then each
/// pair on the first `=`; names compare case-insensitively after trimming;
/// pairs with an empty name or value are skipped.
pub(super) fn find_cookie<'a>(header: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    if name.is_empty() {
        return None;
    }
    for pair in header.split(|&b| b == b';') {
        let Some(eq) = pair.iter().position(|&b| b == b'=') else {
            continue;
        };
        let (n, v) = (trim(&pair[..eq]), &pair[eq + 1..]);
        if n.is_empty() || v.is_empty() {
            continue;
        }
        if n.eq_ignore_ascii_case(name) {
            return Some(trim(v));
        }
    }
    None
}

fn trim(s: &[u8]) -> &[u8] {
    let start = s
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(s.len());
    let end = s
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(start, |e| e + 1);
    &s[start..end]
}
