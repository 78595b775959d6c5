//! The cheap pre-scan that runs on every read until a head is complete.
//!
//! The head parsers (httparse for requests, `field_lines` for responses) start from byte 0, so
//! they run only once the whole head is present.
//! Until then this scanner walks the new bytes line by line (a word-at-a-time search for LF),
//! remembering where it stopped, and enforces what must be enforced while the head is partial:
//! line-length and field-count limits, the head size cap, bare LF, obs-fold and whitespace
//! between a field name and its colon (httparse accepts bare LF, so for requests that check is
//! ours alone).

/// Resumable scan state, embedded in the head structs.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct HeadScan {
    /// Next byte to examine.
    pos: usize,
    /// Start of the line being scanned.
    line_start: usize,
    /// Complete non-empty lines seen (start line + fields).
    lines: usize,
    /// The start line, without CRLF (valid once `lines > 0`).
    pub first_start: usize,
    pub first_end: usize,
    /// The caller has checked the start line while the head is still partial.
    pub first_checked: bool,
}

/// Limits applied by the scanner. Line lengths exclude the CRLF.
pub(crate) struct ScanLimits {
    pub first_line: usize,
    pub field_line: usize,
    pub fields: usize,
    pub head: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ScanError {
    FirstLineTooLong,
    FieldLineTooLong,
    TooManyFields,
    HeadTooLarge,
    BareLf,
    ObsFold,
    SpaceBeforeColon,
}

impl HeadScan {
    pub fn reset(&mut self) {
        *self = HeadScan::default();
    }

    /// The start line's span (without CRLF) once it has ended, until the caller has checked
    /// it (`first_checked`).
    pub fn unchecked_first_line(&self) -> Option<(usize, usize)> {
        (self.lines > 0 && !self.first_checked).then_some((self.first_start, self.first_end))
    }

    /// Scans `buf` from where the last call stopped. Returns `Some(head_len)` once the empty line
    /// ending the head has been seen, `None` if more bytes are needed. Leading empty lines
    /// (CRLF) before the start line are skipped (RFC 9112 §2.2) and count towards `head_len`.
    ///
    /// The caller must reset the scan after `Some` or an error; if `buf` is shorter than what
    /// was already scanned (the caller swapped buffers), the scan restarts from 0.
    pub fn scan(&mut self, buf: &[u8], lim: &ScanLimits) -> Result<Option<usize>, ScanError> {
        if buf.len() < self.pos {
            self.reset();
        }
        // A head longer than `lim.head` has its final LF past index `lim.head - 1`, so nothing
        // beyond `lim.head` needs scanning.
        let end = buf.len().min(lim.head);
        while let Some(i) = find_byte::<b'\n'>(&buf[self.pos..end]) {
            let lf = self.pos + i;
            self.pos = lf + 1;
            if lf == 0 || buf[lf - 1] != b'\r' {
                return Err(ScanError::BareLf);
            }
            let line = &buf[self.line_start..lf - 1];
            let line_start = self.line_start;
            self.line_start = lf + 1;
            if line.is_empty() {
                if self.lines == 0 {
                    continue; // an empty line before the start line
                }
                return Ok(Some(lf + 1));
            }
            if self.lines == 0 {
                if line.len() > lim.first_line {
                    return Err(ScanError::FirstLineTooLong);
                }
                self.first_start = line_start;
                self.first_end = lf - 1;
            } else {
                if line[0] == b' ' || line[0] == b'\t' {
                    return Err(ScanError::ObsFold);
                }
                if line.len() > lim.field_line {
                    return Err(ScanError::FieldLineTooLong);
                }
                if self.lines > lim.fields {
                    return Err(ScanError::TooManyFields);
                }
                // Only the byte before the colon: any other whitespace in the name (or a line
                // without a colon) is a bad field name to the head parser once the head is complete.
                if let Some(c) = find_byte::<b':'>(line)
                    && c > 0
                    && matches!(line[c - 1], b' ' | b'\t')
                {
                    return Err(ScanError::SpaceBeforeColon);
                }
            }
            self.lines += 1;
        }
        self.pos = end;
        // Enforce limits on the incomplete line too, so a client cannot make us buffer an
        // endless line.
        let partial = buf.len() - self.line_start;
        if self.lines == 0 {
            if partial >= lim.first_line.saturating_add(2) {
                return Err(ScanError::FirstLineTooLong);
            }
        } else if partial >= lim.field_line.saturating_add(2) {
            return Err(ScanError::FieldLineTooLong);
        }
        if buf.len() >= lim.head {
            return Err(ScanError::HeadTooLarge);
        }
        Ok(None)
    }
}

/// Index of the first byte `B` in `hay`: a word-at-a-time (SWAR) search, 8 bytes per step.
#[inline]
pub(crate) fn find_byte<const B: u8>(hay: &[u8]) -> Option<usize> {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let pattern: u64 = LO * B as u64;
    let mut chunks = hay.chunks_exact(8);
    let mut base = 0;
    for c in &mut chunks {
        let x = u64::from_le_bytes(c.try_into().unwrap()) ^ pattern;
        // The lowest set bit of this expression always marks a real zero byte (borrows only
        // propagate upwards), which is all we need with little-endian loading.
        let z = x.wrapping_sub(LO) & !x & HI;
        if z != 0 {
            return Some(base + (z.trailing_zeros() / 8) as usize);
        }
        base += 8;
    }
    chunks
        .remainder()
        .iter()
        .position(|&b| b == B)
        .map(|i| base + i)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn find_byte_matches_naive() {
        let mut v = vec![b'a'; 40];
        assert_eq!(find_byte::<b'\n'>(&v), None);
        for i in 0..40 {
            v[i] = b'\n';
            assert_eq!(find_byte::<b'\n'>(&v), Some(i));
            // a second LF later never changes the answer; one earlier does
            if i + 3 < 40 {
                v[i + 3] = b'\n';
                assert_eq!(find_byte::<b'\n'>(&v), Some(i));
                v[i + 3] = b'a';
            }
            v[i] = b'a';
        }
        // bytes next to 0x0a must not produce false positives
        let w = [0x0bu8, 0x09, 0x8a, 0x0b, 0x01, 0x00, 0xff, 0x0b, 0x0a];
        assert_eq!(find_byte::<b'\n'>(&w), Some(8));
    }

    fn lim() -> ScanLimits {
        ScanLimits {
            first_line: 20,
            field_line: 10,
            fields: 2,
            head: 100,
        }
    }

    #[test]
    fn resumes_where_it_stopped() {
        let full = b"\r\nGET / HTTP/1.1\r\nA: 1\r\n\r\nrest";
        let mut s = HeadScan::default();
        for n in 0..full.len() {
            let r = s.scan(&full[..n], &lim()).unwrap();
            if n < full.len() - 4 {
                assert_eq!(r, None, "at {n}");
            } else {
                assert_eq!(r, Some(full.len() - 4));
                assert_eq!(&full[s.first_start..s.first_end], b"GET / HTTP/1.1");
                break;
            }
        }
    }

    #[test]
    fn errors() {
        let cases: &[(&[u8], ScanError)] = &[
            (b"GET / HTTP/1.1\nA: 1\r\n\r\n", ScanError::BareLf),
            (b"\n", ScanError::BareLf),
            (b"GET / HTTP/1.1\r\nA: 1\r\n \r\n", ScanError::ObsFold),
            (b"GET / HTTP/1.1\r\nA : 1\r\n", ScanError::SpaceBeforeColon),
            (b"GET / HTTP/1.1\r\nA\t: 1\r\n", ScanError::SpaceBeforeColon),
            (
                b"GET /aaaaaaaaaaaaaaaaaaaa HTTP/1.1\r\n",
                ScanError::FirstLineTooLong,
            ),
            (b"GET /aaaaaaaaaaaaaaaaaaaaa", ScanError::FirstLineTooLong),
            (
                b"GET / HTTP/1.1\r\nA: 12345678\r\n",
                ScanError::FieldLineTooLong,
            ),
            (
                b"GET / HTTP/1.1\r\nA: 123456789",
                ScanError::FieldLineTooLong,
            ),
            (
                b"GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\n",
                ScanError::TooManyFields,
            ),
        ];
        for (input, want) in cases {
            let mut s = HeadScan::default();
            assert_eq!(
                s.scan(input, &lim()),
                Err(*want),
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
        // exactly at the limits is fine
        let mut s = HeadScan::default();
        assert_eq!(
            s.scan(b"GET / HTTP/1.1\r\nA: 1234567\r\nB: 2\r\n\r\n", &lim()),
            Ok(Some(36))
        );
        // head cap
        let mut s = HeadScan::default();
        let lim = ScanLimits {
            first_line: 100,
            field_line: 100,
            fields: 100,
            head: 30,
        };
        assert_eq!(
            s.scan(b"GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3", &lim),
            Err(ScanError::HeadTooLarge)
        );
    }
}
