//! Response heads that repeat are recognised instead of parsed again.
//!
//! Against one origin most responses carry the same head, byte for byte (nginx's change once a
//! second, with Date). The same bytes parse to the same result, so a connection keeps the last
//! final head it parsed and compares the next one with it: a ~100–300 byte compare instead of
//! the scan, the status line and the field lines.

use std::ops::Deref;

use crate::http::{self, Parsed, ResponseError, ResponseHead};

/// The response head being read, and the bytes of the last final head parsed into it.
pub(super) struct LastHead {
    head: ResponseHead,
    /// Empty when the next head must be parsed: none yet, an interim (1xx) head, or a parse
    /// that stopped part-way (its scan state lives in `head`).
    bytes: Vec<u8>,
}

impl LastHead {
    pub fn new() -> LastHead {
        LastHead {
            head: ResponseHead::new(),
            bytes: Vec::new(),
        }
    }

    /// For a new connection.
    pub fn reset(&mut self) {
        self.head.reset();
        self.bytes.clear();
    }

    /// [`http::parse_response_framing`] of the head at the start of `buf`, or the last result
    /// again when `buf` starts with the same head.
    pub fn parse(
        &mut self,
        buf: &[u8],
        head_only: bool,
        also: Option<&[u8]>,
    ) -> Result<Parsed, ResponseError> {
        let n = self.bytes.len();
        if n > 0 {
            let m = buf.len().min(n);
            if buf[..m] == self.bytes[..m] {
                // The last head ends at its first empty line after the status line, so a
                // shorter match holds no complete head yet.
                return Ok(if m == n {
                    Parsed::Complete
                } else {
                    Parsed::Partial
                });
            }
        }
        let parsed = http::parse_response_framing(buf, head_only, 1 << 20, &mut self.head, also);
        self.bytes.clear();
        if matches!(parsed, Ok(Parsed::Complete)) && self.head.status >= 200 {
            self.bytes.extend_from_slice(&buf[..self.head.head_len]);
        }
        parsed
    }
}

impl Deref for LastHead {
    type Target = ResponseHead;
    fn deref(&self) -> &ResponseHead {
        &self.head
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::BodyFraming;

    const A: &[u8] = b"HTTP/1.1 200 OK\r\nX-Backend: a\r\nContent-Length: 2\r\n\r\nok";
    const B: &[u8] = b"HTTP/1.1 200 OK\r\nX-Backend: bb\r\nContent-Length: 3\r\n\r\nyes";

    #[test]
    fn a_repeated_head_gives_the_same_result_and_a_new_one_is_parsed() {
        let mut h = LastHead::new();
        let also = Some(&b"x-backend"[..]);
        assert_eq!(h.parse(A, false, also), Ok(Parsed::Complete));
        assert_eq!(h.body, BodyFraming::Length(2));
        assert_eq!(h.field(A, "x-backend"), Some(&b"a"[..]));
        // The same head again, in pieces: a prefix waits, the whole is recognised.
        let len = h.head_len;
        assert_eq!(h.parse(&A[..10], false, also), Ok(Parsed::Partial));
        assert_eq!(h.parse(A, false, also), Ok(Parsed::Complete));
        assert_eq!(h.head_len, len);
        // A different head is parsed, also when it arrives in pieces that first look the same.
        assert_eq!(h.parse(&B[..20], false, also), Ok(Parsed::Partial));
        assert_eq!(h.parse(&B[..30], false, also), Ok(Parsed::Partial));
        assert_eq!(h.parse(B, false, also), Ok(Parsed::Complete));
        assert_eq!(h.body, BodyFraming::Length(3));
        assert_eq!(h.field(B, "x-backend"), Some(&b"bb"[..]));
        // ... and then A again, whose bytes are no longer the last ones.
        assert_eq!(h.parse(A, false, also), Ok(Parsed::Complete));
        assert_eq!(h.body, BodyFraming::Length(2));
    }

    #[test]
    fn interim_heads_and_errors_are_not_remembered() {
        let mut h = LastHead::new();
        let cont = b"HTTP/1.1 100 Continue\r\n\r\n";
        assert_eq!(h.parse(cont, false, None), Ok(Parsed::Complete));
        assert_eq!(h.status, 100);
        assert_eq!(h.parse(A, false, None), Ok(Parsed::Complete));
        assert_eq!(h.status, 200);
        let bad = b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n";
        assert!(h.parse(bad, false, None).is_err());
        assert!(h.parse(bad, false, None).is_err());
    }
}
