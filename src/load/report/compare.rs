//! `ringload compare A.json B.json`: the change between two JSON reports, and the minimal JSON
//! parser it (and the schema check) reads them with.

use std::collections::BTreeMap;

use super::units;

/// A parsed JSON value. Objects keep their keys sorted (duplicates: the last wins).
#[derive(Debug, Clone, PartialEq)]
pub enum Json {
    Null,
    Bool(bool),
    Num(f64),
    Str(String),
    Arr(Vec<Json>),
    Obj(BTreeMap<String, Json>),
}

impl Json {
    /// The value at a `/`-separated path of object keys, e.g. `"latency/p99"`.
    pub fn at(&self, path: &str) -> Option<&Json> {
        let mut v = self;
        for k in path.split('/').filter(|k| !k.is_empty()) {
            match v {
                Json::Obj(m) => v = m.get(k)?,
                Json::Arr(a) => v = a.get(k.parse::<usize>().ok()?)?,
                _ => return None,
            }
        }
        Some(v)
    }

    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Json::Num(n) => Some(*n),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Json::Str(s) => Some(s),
            _ => None,
        }
    }
}

/// Parses one JSON document (RFC 8259; surrounding whitespace allowed).
pub fn parse_json(s: &str) -> Result<Json, String> {
    let mut p = Parser {
        b: s.as_bytes(),
        i: 0,
        depth: 0,
    };
    p.ws();
    let v = p.value()?;
    p.ws();
    if p.i != p.b.len() {
        return Err(p.err("trailing characters"));
    }
    Ok(v)
}

struct Parser<'a> {
    b: &'a [u8],
    i: usize,
    depth: usize,
}

impl Parser<'_> {
    fn err(&self, what: &str) -> String {
        format!("bad JSON at byte {}: {what}", self.i)
    }

    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.b.get(self.i) {
            self.i += 1;
        }
    }

    fn eat(&mut self, c: u8) -> Result<(), String> {
        if self.b.get(self.i) == Some(&c) {
            self.i += 1;
            Ok(())
        } else {
            Err(self.err(&format!("expected '{}'", c as char)))
        }
    }

    fn lit(&mut self, word: &str, v: Json) -> Result<Json, String> {
        if self.b[self.i..].starts_with(word.as_bytes()) {
            self.i += word.len();
            Ok(v)
        } else {
            Err(self.err("unexpected word"))
        }
    }

    fn value(&mut self) -> Result<Json, String> {
        match self.b.get(self.i) {
            None => Err(self.err("unexpected end")),
            Some(b'{') => self.nested(Self::object),
            Some(b'[') => self.nested(Self::array),
            Some(b'"') => self.string().map(Json::Str),
            Some(b't') => self.lit("true", Json::Bool(true)),
            Some(b'f') => self.lit("false", Json::Bool(false)),
            Some(b'n') => self.lit("null", Json::Null),
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(_) => Err(self.err("unexpected character")),
        }
    }

    fn nested(&mut self, f: fn(&mut Self) -> Result<Json, String>) -> Result<Json, String> {
        self.depth += 1;
        if self.depth > 128 {
            return Err(self.err("nested too deep"));
        }
        let v = f(self);
        self.depth -= 1;
        v
    }

    fn object(&mut self) -> Result<Json, String> {
        self.eat(b'{')?;
        let mut m = BTreeMap::new();
        self.ws();
        if self.b.get(self.i) == Some(&b'}') {
            self.i += 1;
            return Ok(Json::Obj(m));
        }
        loop {
            self.ws();
            if self.b.get(self.i) != Some(&b'"') {
                return Err(self.err("expected a key"));
            }
            let k = self.string()?;
            self.ws();
            self.eat(b':')?;
            self.ws();
            let v = self.value()?;
            m.insert(k, v);
            self.ws();
            match self.b.get(self.i) {
                Some(b',') => self.i += 1,
                Some(b'}') => {
                    self.i += 1;
                    return Ok(Json::Obj(m));
                }
                _ => return Err(self.err("expected ',' or '}'")),
            }
        }
    }

    fn array(&mut self) -> Result<Json, String> {
        self.eat(b'[')?;
        let mut a = Vec::new();
        self.ws();
        if self.b.get(self.i) == Some(&b']') {
            self.i += 1;
            return Ok(Json::Arr(a));
        }
        loop {
            self.ws();
            a.push(self.value()?);
            self.ws();
            match self.b.get(self.i) {
                Some(b',') => self.i += 1,
                Some(b']') => {
                    self.i += 1;
                    return Ok(Json::Arr(a));
                }
                _ => return Err(self.err("expected ',' or ']'")),
            }
        }
    }

    fn hex4(&mut self) -> Result<u32, String> {
        let h = self
            .b
            .get(self.i..self.i + 4)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u32::from_str_radix(h, 16).ok())
            .ok_or_else(|| self.err("bad \\u escape"))?;
        self.i += 4;
        Ok(h)
    }

    fn string(&mut self) -> Result<String, String> {
        self.eat(b'"')?;
        let mut out = Vec::new();
        loop {
            let Some(&c) = self.b.get(self.i) else {
                return Err(self.err("unterminated string"));
            };
            self.i += 1;
            match c {
                b'"' => break,
                b'\\' => {
                    let Some(&e) = self.b.get(self.i) else {
                        return Err(self.err("unterminated string"));
                    };
                    self.i += 1;
                    let ch = match e {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => {
                            let hi = self.hex4()?;
                            let cp = if (0xd800..0xdc00).contains(&hi)
                                && self.b[self.i..].starts_with(b"\\u")
                            {
                                self.i += 2;
                                let lo = self.hex4()?;
                                0x10000 + ((hi - 0xd800) << 10) + (lo.wrapping_sub(0xdc00) & 0x3ff)
                            } else {
                                hi
                            };
                            char::from_u32(cp).unwrap_or('\u{fffd}')
                        }
                        _ => return Err(self.err("bad escape")),
                    };
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                }
                c if c < 0x20 => return Err(self.err("control character in string")),
                c => out.push(c),
            }
        }
        String::from_utf8(out).map_err(|_| self.err("invalid UTF-8"))
    }

    fn number(&mut self) -> Result<Json, String> {
        let start = self.i;
        while let Some(b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9') = self.b.get(self.i) {
            self.i += 1;
        }
        let t = std::str::from_utf8(&self.b[start..self.i]).unwrap_or("");
        let ok_shape = {
            let d = t.strip_prefix('-').unwrap_or(t);
            d.as_bytes().first().is_some_and(u8::is_ascii_digit)
                && !(d.len() > 1 && d.starts_with('0') && d.as_bytes()[1].is_ascii_digit())
        };
        match t.parse::<f64>() {
            Ok(n) if ok_shape && n.is_finite() => Ok(Json::Num(n)),
            _ => {
                self.i = start;
                Err(self.err("bad number"))
            }
        }
    }
}

/// What `compare` lists: label, path in the report, how to print a value.
const ROWS: &[(&str, &str, Kind)] = &[
    ("rate (req/s)", "rate", Kind::Rate),
    ("latency p50", "latency/p50", Kind::Us),
    ("latency p90", "latency/p90", Kind::Us),
    ("latency p99", "latency/p99", Kind::Us),
    ("latency p99.9", "latency/p999", Kind::Us),
    ("latency max", "latency/max", Kind::Us),
    ("service p99", "service/p99", Kind::Us),
    ("errors", "error_count", Kind::Count),
    ("CPU-µs/request", "cost/cpu_us_per_request", Kind::Plain),
];

#[derive(Clone, Copy)]
enum Kind {
    Rate,
    Us,
    Count,
    Plain,
}

fn show(k: Kind, v: f64) -> String {
    match k {
        Kind::Rate => format!("{v:.1}"),
        Kind::Us => units::dur(v),
        Kind::Count => format!("{v:.0}"),
        Kind::Plain => format!("{v:.2}"),
    }
}

fn show_delta(k: Kind, d: f64) -> String {
    let sign = if d > 0.0 {
        "+"
    } else if d < 0.0 {
        "-"
    } else {
        ""
    };
    format!("{sign}{}", show(k, d.abs()))
}

/// A table of the change from report A to report B: metric | A | B | change (absolute and %).
/// Refuses reports of different (or missing) schema versions.
pub fn compare(a_json: &str, b_json: &str) -> Result<String, String> {
    let a = parse_json(a_json).map_err(|e| format!("report A: {e}"))?;
    let b = parse_json(b_json).map_err(|e| format!("report B: {e}"))?;
    let schema = |j: &Json, n: &str| {
        j.at("schema").and_then(Json::as_f64).ok_or_else(|| {
            format!("report {n} has no \"schema\" field: not a ringload JSON report")
        })
    };
    let (sa, sb) = (schema(&a, "A")?, schema(&b, "B")?);
    if sa != sb {
        return Err(format!(
            "report A has schema {sa} and report B schema {sb}: they cannot be compared \
             (rerun one with the same ringload version)"
        ));
    }
    let mut rows: Vec<[String; 4]> =
        vec![["metric".into(), "A".into(), "B".into(), "change".into()]];
    for &(label, path, kind) in ROWS {
        let va = a.at(path).and_then(Json::as_f64);
        let vb = b.at(path).and_then(Json::as_f64);
        let change = match (va, vb) {
            (Some(x), Some(y)) => {
                let d = y - x;
                let p = if x != 0.0 {
                    format!("{:+.1}%", d * 100.0 / x)
                } else if d == 0.0 {
                    "+0.0%".into()
                } else {
                    "n/a".into()
                };
                format!("{} ({p})", show_delta(kind, d))
            }
            _ => "-".into(),
        };
        let cell = |v: Option<f64>| v.map_or("-".to_string(), |v| show(kind, v));
        rows.push([label.into(), cell(va), cell(vb), change]);
    }
    let mut w = [0usize; 4];
    for r in &rows {
        for (i, c) in r.iter().enumerate() {
            w[i] = w[i].max(c.chars().count());
        }
    }
    let mut out = String::new();
    for (n, j) in [("A", &a), ("B", &b)] {
        let urls = match j.at("config/urls") {
            Some(Json::Arr(u)) => u
                .iter()
                .filter_map(Json::as_str)
                .collect::<Vec<_>>()
                .join(" "),
            _ => String::new(),
        };
        let mode = j.at("config/mode").and_then(Json::as_str).unwrap_or("?");
        let trust = match j.at("verdict/trustworthy") {
            Some(Json::Bool(false)) => "  [NOT TRUSTWORTHY]",
            _ => "",
        };
        out.push_str(&format!("{n}: {urls} ({mode}){trust}\n"));
    }
    out.push('\n');
    for r in &rows {
        let pad = |s: &str, n: usize| format!("{s}{}", " ".repeat(n - s.chars().count()));
        let rpad = |s: &str, n: usize| format!("{}{s}", " ".repeat(n - s.chars().count()));
        out.push_str(&format!(
            "{}  {}  {}  {}\n",
            pad(&r[0], w[0]),
            rpad(&r[1], w[1]),
            rpad(&r[2], w[2]),
            rpad(&r[3], w[3])
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_values() {
        let v =
            parse_json(r#" {"a": [1, -2.5e3, true, false, null], "b": "x\"\u00e9\ud83d\ude00"} "#)
                .unwrap();
        assert_eq!(v.at("a/1"), Some(&Json::Num(-2500.0)));
        assert_eq!(v.at("a/4"), Some(&Json::Null));
        assert_eq!(v.at("b").and_then(Json::as_str), Some("x\"é😀"));
        assert!(parse_json("{\"a\":1,}").is_err());
        assert!(parse_json("[1 2]").is_err());
        assert!(parse_json("01").is_err());
        assert!(parse_json("\"abc").is_err());
        assert!(parse_json("{} x").is_err());
        assert!(parse_json(&"[".repeat(1000)).is_err());
    }

    #[test]
    fn refuses_other_schema() {
        let e = compare(r#"{"schema":1}"#, r#"{"schema":2}"#).unwrap_err();
        assert!(e.contains("schema 1") && e.contains("schema 2"), "{e}");
        assert!(compare(r#"{"schema":1}"#, r#"{}"#).is_err());
    }
}
