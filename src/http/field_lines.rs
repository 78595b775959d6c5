//! The field lines of a complete response head, parsed in one pass into [`Field`]s.
//!
//! Runs after [`super::scan::HeadScan`] has found the end of the head, so every line here ends
//! in CRLF, none is folded, none has whitespace before its colon, and their number is within
//! the cap. What is left to check is the grammar of each line (RFC 9110 §5.1, §5.5):
//! `field-name ":" OWS field-value OWS`, a name of one or more tchars, a value of visible
//! characters, SP, HTAB and obs-text, never another control character or DEL.

use super::fields::{classify, trim_ows};
use super::scan::find_byte;
use super::{Field, Span};

/// Why a field line was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FieldLineError {
    /// No colon, an empty name, or a byte in the name that is not a tchar.
    Name,
    /// A control character (other than HTAB) or DEL in the value.
    Value,
}

/// Parses the response field lines in `buf[start..end]` (`end` is where the head's final empty
/// line starts) and appends them to `out`, classified.
pub(crate) fn parse_field_lines(
    buf: &[u8],
    start: usize,
    end: usize,
    out: &mut Vec<Field>,
) -> Result<(), FieldLineError> {
    for (pos, lf) in lines(buf, start, end) {
        let line = &buf[pos..lf - 1];
        let colon = find_byte::<b':'>(line).ok_or(FieldLineError::Name)?;
        let name = &line[..colon];
        if name.is_empty() || !name.iter().all(|&b| is_tchar(b)) {
            return Err(FieldLineError::Name);
        }
        push_field(buf, pos, colon, lf, out)?;
    }
    Ok(())
}

/// Like [`parse_field_lines`], but keeps only Content-Length, Transfer-Encoding, Connection
/// and the field named `also`, recognised by the byte where their colon must be. Kept fields
/// have their values checked; the other lines only for a bare CR, which a parser that ends
/// lines at CR would read as a line break, hiding a framing field in an ignored line.
pub(crate) fn parse_framing_lines(
    buf: &[u8],
    start: usize,
    end: usize,
    also: Option<&[u8]>,
    out: &mut Vec<Field>,
) -> Result<(), FieldLineError> {
    for (pos, lf) in lines(buf, start, end) {
        let line = &buf[pos..lf - 1];
        let named = |name: &[u8]| {
            line.len() > name.len()
                && line[name.len()] == b':'
                && line[..name.len()].eq_ignore_ascii_case(name)
        };
        let kept = [&b"content-length"[..], b"transfer-encoding", b"connection"]
            .into_iter()
            .chain(also)
            .find(|&n| !n.is_empty() && named(n));
        if let Some(name) = kept {
            push_field(buf, pos, name.len(), lf, out)?;
        } else if find_byte::<b'\r'>(line).is_some() {
            return Err(FieldLineError::Value);
        }
    }
    Ok(())
}

/// `(start, LF index)` of each line in `buf[start..end]`. The scanner has checked that every
/// line there ends in CRLF, so `LF index - 1` is its CR.
fn lines(buf: &[u8], start: usize, end: usize) -> impl Iterator<Item = (usize, usize)> + '_ {
    let mut pos = start;
    std::iter::from_fn(move || {
        let lf = pos + find_byte::<b'\n'>(&buf[pos..end])?;
        let line = (pos, lf);
        pos = lf + 1;
        Some(line)
    })
}

/// Checks the value of the field line at `buf[pos..lf + 1]`, whose colon is at `pos + colon`,
/// and appends the field.
fn push_field(
    buf: &[u8],
    pos: usize,
    colon: usize,
    lf: usize,
    out: &mut Vec<Field>,
) -> Result<(), FieldLineError> {
    let raw = &buf[pos + colon + 1..lf - 1];
    if !valid_value(raw) {
        return Err(FieldLineError::Value);
    }
    let value = trim_ows(raw);
    let value = if value.is_empty() {
        Span::new(lf - 1, lf - 1)
    } else {
        let s = value.as_ptr() as usize - buf.as_ptr() as usize;
        Span::new(s, s + value.len())
    };
    out.push(Field {
        name: Span::new(pos, pos + colon),
        value,
        line: Span::new(pos, lf + 1),
        kind: classify(&buf[pos..pos + colon], false),
    });
    Ok(())
}

/// tchar (RFC 9110 §5.6.2): `!#$%&'*+-.^_`|~`, digits and letters.
const TCHAR: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        t[i] = b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'!' | b'#'
                    | b'$'
                    | b'%'
                    | b'&'
                    | b'\''
                    | b'*'
                    | b'+'
                    | b'-'
                    | b'.'
                    | b'^'
                    | b'_'
                    | b'`'
                    | b'|'
                    | b'~'
            );
        i += 1;
    }
    t
};

#[inline]
fn is_tchar(b: u8) -> bool {
    TCHAR[b as usize]
}

/// field-vchar / SP / HTAB / obs-text: anything but the other controls and DEL.
#[inline]
fn is_value_byte(b: u8) -> bool {
    b == b'\t' || (b >= 0x20 && b != 0x7f)
}

/// Whether every byte of `v` may appear in a field value. Eight bytes at a time: a word with
/// no byte below 0x20 and none equal to 0x7f is fine as it is; only a word that has one (in
/// practice an HTAB) is looked at byte by byte.
pub(crate) fn valid_value(v: &[u8]) -> bool {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let mut words = v.chunks_exact(8);
    for w in &mut words {
        let x = u64::from_le_bytes(w.try_into().unwrap());
        // Some byte < 0x20 (exact as a yes/no answer for a bound up to 0x80).
        let low = x.wrapping_sub(LO * 0x20) & !x & HI;
        // Some byte == 0x7f: a zero byte in x ^ 0x7f7f...
        let d = x ^ (LO * 0x7f);
        let del = d.wrapping_sub(LO) & !d & HI;
        if (low | del) != 0 && !w.iter().all(|&b| is_value_byte(b)) {
            return false;
        }
    }
    words.remainder().iter().all(|&b| is_value_byte(b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::FieldKind;

    fn parse(head: &[u8]) -> Result<Vec<Field>, FieldLineError> {
        let mut out = Vec::new();
        // `head` ends with the final CRLF, as in a real head.
        parse_field_lines(head, 0, head.len() - 2, &mut out).map(|()| out)
    }

    #[test]
    fn spans_kinds_and_trimming() {
        let buf = b"Server: x\r\nContent-Length:  5 \r\nX-Empty:\r\nX-Tab:\t a\tb\t\r\n\r\n";
        let f = parse(buf).unwrap();
        assert_eq!(f.len(), 4);
        assert_eq!(f[0].name.get(buf), b"Server");
        assert_eq!(f[0].value.get(buf), b"x");
        assert_eq!(f[0].line.get(buf), b"Server: x\r\n");
        assert_eq!(f[1].kind, FieldKind::ContentLength);
        assert_eq!(f[1].value.get(buf), b"5");
        assert_eq!(f[2].value.get(buf), b"");
        assert_eq!(f[2].value.start as usize, 40); // at the CR of its line
        assert_eq!(f[3].value.get(buf), b"a\tb");
        assert_eq!(f[3].kind, FieldKind::Normal);
        assert!(parse(b"\r\n").unwrap().is_empty());
    }

    #[test]
    fn bad_names_and_values() {
        use FieldLineError::{Name, Value};
        let cases: [(&[u8], FieldLineError); 10] = [
            (b"NoColon\r\n\r\n", Name),
            (b": empty name\r\n\r\n", Name),
            (b"Bad\"Name: v\r\n\r\n", Name),
            (b"Sp ace: v\r\n\r\n", Name),
            (b"\xe9: v\r\n\r\n", Name),
            (b"X: a\x00\r\n\r\n", Value),
            (b"X: a\x7f\r\n\r\n", Value),
            (b"X: 0123456789\x01abcdef\r\n\r\n", Value),
            (b"X: a\rb\r\n\r\n", Value),
            (b"X: 01234567\x1f\r\n\r\n", Value),
        ];
        for (bad, want) in cases {
            assert_eq!(parse(bad), Err(want), "{:?}", String::from_utf8_lossy(bad));
        }
        // obs-text and every visible character are fine
        let ok = b"X: caf\xe9 \x80\xff !\"#$%&'()*+,-./09:;<=>?@AZ[\\]^_`az{|}~\r\n\r\n";
        assert_eq!(parse(ok).unwrap()[0].value.get(ok).len(), ok.len() - 7);
    }

    #[test]
    fn value_check_matches_the_bytewise_rule() {
        // Every byte value in every position of a 17-byte value (two words and a remainder).
        for b in 0..=255u8 {
            for at in 0..17 {
                let mut v = [b'a'; 17];
                v[at] = b;
                assert_eq!(valid_value(&v), is_value_byte(b), "byte {b:#x} at {at}");
            }
        }
    }
}
