//! httpd configuration syntax, and no meaning (httpd `server/util.c` ap_cfg_getline /
//! ap_getword_conf, `server/config.c` ap_build_config):
//! - a `\` as the very last character of a physical line joins the next one (the backslash is
//!   dropped, the next line's leading blanks are kept); the logical line is then trimmed;
//! - a logical line whose first non-blank character is `#` is a comment (no trailing comments);
//! - `<Name args>` opens a section that `</Name>` closes (names compare case-insensitively);
//! - words are split on blanks; a word that starts with `"` or `'` runs to the matching quote,
//!   with `\"` (resp. `\'`) and `\\` unescaped; bare words unescape `\\` only;
//! - `${VAR}` is replaced before the line is split into words (`substitute`).
//!
//! Every piece of text keeps the physical line it came from, so an error can name file:line.

use std::path::PathBuf;
use std::rc::Rc;

/// Where a directive (or a word) was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Span {
    pub file: Rc<PathBuf>,
    pub line: usize,
}

impl Span {
    pub fn with_line(&self, line: usize) -> Span {
        Span {
            file: self.file.clone(),
            line,
        }
    }
}

impl std::fmt::Display for Span {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.file.display(), self.line)
    }
}

/// Text that remembers, for each byte, the physical line it was read from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Text {
    pub text: String,
    /// (byte offset, line) for each place where the line number changes; sorted by offset.
    marks: Vec<(usize, usize)>,
}

impl Text {
    fn new(first_line: usize) -> Text {
        Text {
            text: String::new(),
            marks: vec![(0, first_line)],
        }
    }

    fn push(&mut self, s: &str, line: usize) {
        if self.marks.last().map(|m| m.1) != Some(line) {
            self.marks.push((self.text.len(), line));
        }
        self.text.push_str(s);
    }

    /// The physical line of the byte at `offset`.
    pub fn line_at(&self, offset: usize) -> usize {
        let mut line = self.marks.first().map(|m| m.1).unwrap_or(0);
        for &(off, l) in &self.marks {
            if off <= offset {
                line = l;
            } else {
                break;
            }
        }
        line
    }

    /// The sub-text `start..end`, keeping line numbers.
    pub fn slice(&self, start: usize, end: usize) -> Text {
        let mut out = Text::new(self.line_at(start));
        let mut pos = start;
        for &(off, _) in &self.marks {
            if off > start && off < end {
                out.push(&self.text[pos..off], self.line_at(pos));
                pos = off;
            }
        }
        out.push(&self.text[pos..end], self.line_at(pos));
        out
    }

    /// Appends `other`, keeping its line numbers.
    fn append(&mut self, other: &Text) {
        let mut pos = 0;
        for &(off, _) in &other.marks {
            if off > pos {
                self.push(&other.text[pos..off], other.line_at(pos));
                pos = off;
            }
        }
        self.push(&other.text[pos..], other.line_at(pos));
    }

    fn trimmed(&self) -> Text {
        let start = self.text.len() - self.text.trim_start().len();
        let end = self.text.trim_end().len().max(start);
        self.slice(start, end)
    }
}

/// One word of a directive, unquoted and unescaped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Word {
    pub text: String,
    pub line: usize,
}

/// A directive line or a section, before any meaning is given to it.
#[derive(Debug, Clone)]
pub struct Node {
    /// The directive or section name as written (`BalancerMember`, `Proxy`).
    pub name: String,
    /// The rest of the line (for a section: between the name and the final `>`).
    pub args: Text,
    pub span: Span,
    /// `Some` for a `<Section>`.
    pub children: Option<Vec<Node>>,
}

/// A syntax error; `conf` turns it into a `ConfError`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    pub span: Span,
    pub directive: String,
    pub message: String,
}

/// Physical lines joined into logical lines, trimmed, comments and blank lines dropped.
pub fn logical_lines(src: &str) -> Vec<Text> {
    let mut out = Vec::new();
    let mut cur: Option<Text> = None;
    for (i, raw) in src.split('\n').enumerate() {
        let line_no = i + 1;
        let raw = raw.strip_suffix('\r').unwrap_or(raw);
        let t = cur.get_or_insert_with(|| Text::new(line_no));
        if let Some(joined) = raw.strip_suffix('\\') {
            t.push(joined, line_no);
            continue;
        }
        t.push(raw, line_no);
        let t = cur.take().expect("current line");
        let t = t.trimmed();
        if t.text.is_empty() || t.text.starts_with('#') {
            continue;
        }
        out.push(t);
    }
    if let Some(t) = cur.take() {
        let t = t.trimmed();
        if !t.text.is_empty() && !t.text.starts_with('#') {
            out.push(t);
        }
    }
    out
}

/// Parses one file's text into directives and nested sections.
pub fn parse(src: &str, file: Rc<PathBuf>) -> Result<Vec<Node>, SyntaxError> {
    // Stack of open sections: (node, children so far).
    let mut stack: Vec<(Node, Vec<Node>)> = Vec::new();
    let mut top: Vec<Node> = Vec::new();
    for line in logical_lines(src) {
        let span = Span {
            file: file.clone(),
            line: line.line_at(0),
        };
        let text = &line.text;
        if let Some(rest) = text.strip_prefix("</") {
            let name = rest.trim_end_matches('>').trim().to_string();
            let Some((open, children)) = stack.pop() else {
                return Err(SyntaxError {
                    span,
                    directive: format!("</{name}>"),
                    message: format!("</{name}> without matching <{name}> section"),
                });
            };
            if !open.name.eq_ignore_ascii_case(&name) {
                return Err(SyntaxError {
                    span,
                    directive: format!("</{name}>"),
                    message: format!("Expected </{}> but saw </{name}>", open.name),
                });
            }
            let node = Node {
                children: Some(children),
                ..open
            };
            match stack.last_mut() {
                Some((_, c)) => c.push(node),
                None => top.push(node),
            }
            continue;
        }
        let node = if let Some(rest) = text.strip_prefix('<') {
            let name_len = rest
                .find(|c: char| c.is_whitespace() || c == '>')
                .unwrap_or(rest.len());
            let name = rest[..name_len].to_string();
            if !text.ends_with('>') {
                return Err(SyntaxError {
                    span,
                    directive: format!("<{name}>"),
                    message: format!("<{name}> directive missing closing '>'"),
                });
            }
            let args = line.slice(1 + name_len, text.len() - 1).trimmed();
            stack.push((
                Node {
                    name,
                    args,
                    span,
                    children: None,
                },
                Vec::new(),
            ));
            continue;
        } else {
            let name_len = text.find(char::is_whitespace).unwrap_or(text.len());
            let name = text[..name_len].to_string();
            let args = line.slice(name_len, text.len()).trimmed();
            Node {
                name,
                args,
                span,
                children: None,
            }
        };
        match stack.last_mut() {
            Some((_, c)) => c.push(node),
            None => top.push(node),
        }
    }
    if let Some((open, _)) = stack.pop() {
        return Err(SyntaxError {
            span: open.span.clone(),
            directive: format!("<{}>", open.name),
            message: format!("<{}> was not closed.", open.name),
        });
    }
    Ok(top)
}

/// Replaces `${NAME}` with `lookup(NAME)`; names it cannot resolve are left as they are and
/// returned, so the caller can warn (httpd AH00111).
pub fn substitute(t: &Text, lookup: &dyn Fn(&str) -> Option<String>) -> (Text, Vec<String>) {
    let s = &t.text;
    if !s.contains("${") {
        return (t.clone(), Vec::new());
    }
    let mut out = Text::new(t.line_at(0));
    let mut unknown = Vec::new();
    let mut pos = 0;
    let mut lit_start = 0;
    while let Some(rel) = s[pos..].find("${") {
        let at = pos + rel;
        let Some(close_rel) = s[at + 2..].find('}') else {
            break;
        };
        let name = &s[at + 2..at + 2 + close_rel];
        let end = at + 2 + close_rel + 1;
        match (!name.is_empty()).then(|| lookup(name)).flatten() {
            Some(value) => {
                push_slice(&mut out, t, lit_start, at);
                out.push(&value, t.line_at(at));
                lit_start = end;
            }
            None => unknown.push(name.to_string()),
        }
        pos = end;
    }
    push_slice(&mut out, t, lit_start, s.len());
    (out, unknown)
}

fn push_slice(out: &mut Text, t: &Text, start: usize, end: usize) {
    if start < end {
        out.append(&t.slice(start, end));
    }
}

/// Splits a line into words as httpd's ap_getword_conf does.
pub fn words(t: &Text) -> Vec<Word> {
    let b = t.text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    loop {
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        if i >= b.len() {
            break;
        }
        let line = t.line_at(i);
        let (start, end, next, quote) = if b[i] == b'"' || b[i] == b'\'' {
            let q = b[i];
            let mut j = i + 1;
            while j < b.len() && b[j] != q {
                if b[j] == b'\\' && j + 1 < b.len() && b[j + 1] == q {
                    j += 2;
                } else {
                    j += 1;
                }
            }
            let end = j.min(b.len());
            (i + 1, end, (j + 1).min(b.len()), Some(q))
        } else {
            let mut j = i;
            while j < b.len() && !b[j].is_ascii_whitespace() {
                j += 1;
            }
            (i, j, j, None)
        };
        out.push(Word {
            text: unescape(&t.text[start..end], quote),
            line,
        });
        i = next;
    }
    out
}

fn unescape(s: &str, quote: Option<u8>) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 1 < b.len() && (b[i + 1] == b'\\' || Some(b[i + 1]) == quote) {
            out.push(b[i + 1]);
            i += 2;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file() -> Rc<PathBuf> {
        Rc::new(PathBuf::from("/t.conf"))
    }

    fn ws(s: &str) -> Vec<String> {
        let lines = logical_lines(s);
        words(&lines[0]).into_iter().map(|w| w.text).collect()
    }

    #[test]
    fn continuation_joins_and_keeps_lines() {
        let lines = logical_lines("Foo a \\\n   b\\\nc\nBar x\n");
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].text, "Foo a    bc");
        let w = words(&lines[0]);
        assert_eq!(
            w.iter()
                .map(|w| (w.text.as_str(), w.line))
                .collect::<Vec<_>>(),
            vec![("Foo", 1), ("a", 1), ("bc", 2)]
        );
        assert_eq!(lines[1].line_at(0), 4);
        // A backslash followed by a blank is not a continuation.
        assert_eq!(logical_lines("A \\ \nB\n").len(), 2);
    }

    #[test]
    fn comments_only_at_line_start() {
        let lines = logical_lines("  # comment\nFoo a#b # c\n#x\\\ncontinued comment\n\nBar\n");
        let texts: Vec<_> = lines.iter().map(|l| l.text.as_str()).collect();
        assert_eq!(texts, vec!["Foo a#b # c", "Bar"]);
    }

    #[test]
    fn quoting_and_escapes() {
        assert_eq!(
            ws(r#"LogFormat "%h \"%r\" a\\b" nick"#),
            vec!["LogFormat", r#"%h "%r" a\b"#, "nick"]
        );
        assert_eq!(
            ws(r#"X 'it\'s' "a b"c d\\e f\g"#),
            vec!["X", "it's", "a b", "c", r"d\e", r"f\g"]
        );
        assert_eq!(ws(r#"X "" y"#), vec!["X", "", "y"]);
    }

    #[test]
    fn substitution_keeps_unknown() {
        let lines = logical_lines("Listen ${HOST}:${PORT} ${NOPE}");
        let (t, unknown) = substitute(&lines[0], &|n| match n {
            "HOST" => Some("127.0.0.1".into()),
            "PORT" => Some("80".into()),
            _ => None,
        });
        assert_eq!(t.text, "Listen 127.0.0.1:80 ${NOPE}");
        assert_eq!(unknown, vec!["NOPE".to_string()]);
    }

    #[test]
    fn sections_nest_and_must_match() {
        let nodes = parse(
            "<Proxy balancer://x>\n <ifmodule foo>\n  A 1\n </IfModule>\n</proxy>\nB\n",
            file(),
        )
        .unwrap();
        assert_eq!(nodes.len(), 2);
        assert_eq!(nodes[0].name, "Proxy");
        assert_eq!(nodes[0].args.text, "balancer://x");
        let inner = nodes[0].children.as_ref().unwrap();
        assert_eq!(inner[0].children.as_ref().unwrap()[0].span.line, 3);
        let err = parse("<Proxy x>\nA\n</Location>\n", file()).unwrap_err();
        assert_eq!(err.span.line, 3);
        assert_eq!(err.message, "Expected </Proxy> but saw </Location>");
        let err = parse("A\n<Proxy x>\n", file()).unwrap_err();
        assert_eq!(
            (err.span.line, err.message.as_str()),
            (2, "<Proxy> was not closed.")
        );
        let err = parse("</Proxy>\n", file()).unwrap_err();
        assert!(err.message.contains("without matching"));
        let err = parse("<Proxy x\n</Proxy>\n", file()).unwrap_err();
        assert!(err.message.contains("missing closing '>'"));
    }
}
