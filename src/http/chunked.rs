//! A streaming, validating scanner for `Transfer-Encoding: chunked` bodies (RFC 9112 §7.1).
//!
//! Built for pass-through relay: the proxy forwards the scanned bytes verbatim, and the scanner
//! tells it where the body ends and whether the framing is sound. Decoded chunk payload is
//! handed to a callback as sub-slices of the input (no copy), for body-size accounting or
//! re-framing. The state machine works on any split of the input, down to one byte per call.
//!
//! Strictness: the chunk size is `1*HEXDIG` (at most 16 digits, leading zeros included), with
//! nothing before it; only `BWS ";"` may follow it before the extensions; extensions are at most
//! [`MAX_EXTENSION`] bytes per size line and may hold no control characters but HT; every line
//! ends in CRLF (a bare LF or a stray byte after chunk data is an error); trailer fields must look
//! like `token ":" value` and take at most [`MAX_TRAILERS`] bytes in all.

/// Cap on the bytes after the chunk size on one size line (BWS and extensions).
pub const MAX_EXTENSION: usize = 1024;
/// Cap on the whole trailer section (field lines with their CRLFs).
pub const MAX_TRAILERS: usize = 8192;

/// Why a chunked body is rejected. After an error the scanner keeps returning it until
/// [`ChunkedScanner::reset`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChunkError {
    /// The size line does not start with a hex digit, or has junk after the digits (including
    /// trailing whitespace not followed by `;`), or an extension has a control character.
    BadSize,
    /// More than 16 hex digits.
    SizeOverflow,
    /// The extensions on one size line exceed [`MAX_EXTENSION`] bytes.
    ExtensionTooLong,
    /// A line does not end in CRLF (bare LF, bare CR, or chunk data not followed by CRLF).
    BadLineEnd,
    /// The trailer section exceeds [`MAX_TRAILERS`] bytes.
    TrailerTooLong,
    /// A trailer line is not `token ":" field-value`.
    BadTrailer,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// At the start of a size line: a hex digit must come.
    SizeStart,
    /// Reading hex digits.
    Size,
    /// Whitespace after the digits: more whitespace or `;` must follow.
    SizeBws,
    /// In the extensions (after `;`), until CR.
    Ext,
    /// After the CR of the size line.
    SizeLf,
    /// Chunk payload; `remaining` bytes left.
    Data,
    /// After the payload: CR, then LF.
    DataCr,
    DataLf,
    /// At the start of a trailer line, or the final empty line.
    TrailerStart,
    /// In a trailer field name.
    TrailerName,
    /// In a trailer field value, until CR.
    TrailerValue,
    /// After the CR of a trailer line.
    TrailerLf,
    /// After the CR of the final empty line.
    FinalLf,
    Done,
    Failed(ChunkError),
}

/// See the module documentation. One per message; [`reset`](Self::reset) to reuse.
#[derive(Debug, Clone)]
pub struct ChunkedScanner {
    state: State,
    /// The chunk size being read, then the payload bytes left in the chunk.
    remaining: u64,
    /// Hex digits read on the current size line.
    digits: u8,
    /// Bytes after the digits on the current size line.
    ext_len: usize,
    /// Trailer section bytes so far.
    trailer_len: usize,
}

impl Default for ChunkedScanner {
    fn default() -> Self {
        Self::new()
    }
}

impl ChunkedScanner {
    pub fn new() -> Self {
        ChunkedScanner {
            state: State::SizeStart,
            remaining: 0,
            digits: 0,
            ext_len: 0,
            trailer_len: 0,
        }
    }

    /// Back to the start of a body.
    pub fn reset(&mut self) {
        *self = Self::new();
    }

    /// True once the last chunk, the trailers and the final CRLF have been seen.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Scans as much of `input` as is part of this message body; returns `(consumed, done)`.
    ///
    /// `done`: the last chunk, trailers and final CRLF have been seen; `consumed` may then be
    /// less than `input.len()` (the rest is the next message). When not done, `consumed` is
    /// always `input.len()`: feed the next bytes on the next call. `on_data` gets each piece
    /// of chunk payload (the decoded data), in order, as sub-slices of `input`.
    pub fn scan(
        &mut self,
        input: &[u8],
        mut on_data: impl FnMut(&[u8]),
    ) -> Result<(usize, bool), ChunkError> {
        let mut i = 0;
        while i < input.len() {
            match self.state {
                State::Done => return Ok((i, true)),
                State::Failed(e) => return Err(e),
                State::Data => {
                    let n = (input.len() - i)
                        .min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
                    on_data(&input[i..i + n]);
                    i += n;
                    self.remaining -= n as u64;
                    if self.remaining == 0 {
                        self.state = State::DataCr;
                    }
                }
                _ => {
                    if let Err(e) = self.step(input[i]) {
                        self.state = State::Failed(e);
                        return Err(e);
                    }
                    i += 1;
                }
            }
        }
        match self.state {
            State::Failed(e) => Err(e),
            s => Ok((i, s == State::Done)),
        }
    }

    /// One byte of framing (everything but payload).
    fn step(&mut self, b: u8) -> Result<(), ChunkError> {
        self.state = match self.state {
            State::SizeStart => {
                let d = hex_value(b).ok_or(match b {
                    b'\n' => ChunkError::BadLineEnd,
                    _ => ChunkError::BadSize,
                })?;
                self.remaining = u64::from(d);
                self.digits = 1;
                self.ext_len = 0;
                State::Size
            }
            State::Size => match b {
                b'\r' => State::SizeLf,
                b'\n' => return Err(ChunkError::BadLineEnd),
                b';' => self.ext_byte(State::Ext)?,
                b' ' | b'\t' => self.ext_byte(State::SizeBws)?,
                _ => {
                    let d = hex_value(b).ok_or(ChunkError::BadSize)?;
                    if self.digits == 16 {
                        return Err(ChunkError::SizeOverflow);
                    }
                    self.digits += 1;
                    self.remaining = (self.remaining << 4) | u64::from(d);
                    State::Size
                }
            },
            State::SizeBws => match b {
                b' ' | b'\t' => self.ext_byte(State::SizeBws)?,
                b';' => self.ext_byte(State::Ext)?,
                b'\n' => return Err(ChunkError::BadLineEnd),
                _ => return Err(ChunkError::BadSize),
            },
            State::Ext => match b {
                b'\r' => State::SizeLf,
                b'\n' => return Err(ChunkError::BadLineEnd),
                b'\t' | b' '..=0x7e | 0x80..=0xff => self.ext_byte(State::Ext)?,
                _ => return Err(ChunkError::BadSize),
            },
            State::SizeLf => {
                if b != b'\n' {
                    return Err(ChunkError::BadLineEnd);
                }
                if self.remaining == 0 {
                    self.trailer_len = 0;
                    State::TrailerStart
                } else {
                    State::Data
                }
            }
            State::DataCr if b == b'\r' => State::DataLf,
            State::DataLf if b == b'\n' => State::SizeStart,
            State::DataCr | State::DataLf => return Err(ChunkError::BadLineEnd),
            State::TrailerStart => match b {
                b'\r' => State::FinalLf,
                b'\n' => return Err(ChunkError::BadLineEnd),
                _ if is_tchar(b) => self.trailer_byte(State::TrailerName)?,
                _ => return Err(ChunkError::BadTrailer),
            },
            State::TrailerName => match b {
                b':' => self.trailer_byte(State::TrailerValue)?,
                _ if is_tchar(b) => self.trailer_byte(State::TrailerName)?,
                b'\n' | b'\r' => return Err(ChunkError::BadTrailer),
                _ => return Err(ChunkError::BadTrailer),
            },
            State::TrailerValue => match b {
                b'\r' => self.trailer_byte(State::TrailerLf)?,
                b'\n' => return Err(ChunkError::BadLineEnd),
                b'\t' | b' '..=0x7e | 0x80..=0xff => self.trailer_byte(State::TrailerValue)?,
                _ => return Err(ChunkError::BadTrailer),
            },
            State::TrailerLf => {
                if b != b'\n' {
                    return Err(ChunkError::BadLineEnd);
                }
                self.trailer_byte(State::TrailerStart)?
            }
            State::FinalLf => {
                if b != b'\n' {
                    return Err(ChunkError::BadLineEnd);
                }
                State::Done
            }
            State::Data | State::Done | State::Failed(_) => unreachable!("handled by scan"),
        };
        Ok(())
    }

    fn ext_byte(&mut self, next: State) -> Result<State, ChunkError> {
        self.ext_len += 1;
        if self.ext_len > MAX_EXTENSION {
            return Err(ChunkError::ExtensionTooLong);
        }
        Ok(next)
    }

    fn trailer_byte(&mut self, next: State) -> Result<State, ChunkError> {
        self.trailer_len += 1;
        if self.trailer_len > MAX_TRAILERS {
            return Err(ChunkError::TrailerTooLong);
        }
        Ok(next)
    }
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// RFC 9110 tchar.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (consumed, done, decoded data) or the error.
    type Outcome = Result<(usize, bool, Vec<u8>), ChunkError>;

    fn whole(input: &[u8]) -> Outcome {
        let mut s = ChunkedScanner::new();
        let mut data = Vec::new();
        let (n, done) = s.scan(input, |d| data.extend_from_slice(d))?;
        Ok((n, done, data))
    }

    fn byte_by_byte(input: &[u8]) -> Outcome {
        let mut s = ChunkedScanner::new();
        let mut data = Vec::new();
        let mut consumed = 0;
        for i in 0..input.len() {
            let (n, done) = s.scan(&input[i..i + 1], |d| data.extend_from_slice(d))?;
            consumed += n;
            if done {
                return Ok((consumed, true, data));
            }
            assert_eq!(n, 1, "a not-done scan consumes everything");
        }
        Ok((consumed, false, data))
    }

    /// Runs both ways, checks they agree, returns the outcome.
    fn run(input: &[u8]) -> Outcome {
        let a = whole(input);
        let b = byte_by_byte(input);
        assert_eq!(
            a,
            b,
            "whole vs byte-by-byte for {:?}",
            String::from_utf8_lossy(input)
        );
        a
    }

    #[test]
    fn valid_bodies() {
        let cases: &[(&[u8], &[u8])] = &[
            (b"0\r\n\r\n", b""),
            (b"5\r\nhello\r\n0\r\n\r\n", b"hello"),
            (b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", b"hello world"),
            (b"A\r\n0123456789\r\n0\r\n\r\n", b"0123456789"),
            (b"a\r\n0123456789\r\n000\r\n\r\n", b"0123456789"),
            (b"0000000000000003\r\nabc\r\n0\r\n\r\n", b"abc"),
            (b"2\r\n\r\n\r\n0\r\n\r\n", b"\r\n"),
        ];
        for (input, data) in cases {
            assert_eq!(
                run(input),
                Ok((input.len(), true, data.to_vec())),
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn extensions() {
        let cases: &[(&[u8], &[u8])] = &[
            (b"5;name=value\r\nhello\r\n0\r\n\r\n", b"hello"),
            (b"5 ;a\r\nhello\r\n0;last\r\n\r\n", b"hello"),
            (b"5\t \t; a = \"q s\" ; b\r\nhello\r\n0\r\n\r\n", b"hello"),
        ];
        for (input, data) in cases {
            assert_eq!(
                run(input),
                Ok((input.len(), true, data.to_vec())),
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
        // right at the cap: 1024 bytes after the digits
        let mut at_cap = b"1;".to_vec();
        at_cap.extend(std::iter::repeat_n(b'x', MAX_EXTENSION - 1));
        at_cap.extend_from_slice(b"\r\nZ\r\n0\r\n\r\n");
        assert_eq!(run(&at_cap), Ok((at_cap.len(), true, b"Z".to_vec())));
    }

    #[test]
    fn trailers() {
        let input = b"3\r\nabc\r\n0\r\nExpires: never\r\nX-Checksum:abc \r\n\r\n";
        assert_eq!(run(input), Ok((input.len(), true, b"abc".to_vec())));
        let input = b"0\r\nX-Empty:\r\n\r\n";
        assert_eq!(run(input), Ok((input.len(), true, vec![])));
    }

    #[test]
    fn stops_at_end_of_body() {
        let body = b"4\r\nwiki\r\n0\r\nT: 1\r\n\r\n";
        let mut input = body.to_vec();
        input.extend_from_slice(b"GET /next HTTP/1.1\r\n");
        assert_eq!(run(&input), Ok((body.len(), true, b"wiki".to_vec())));
        // a done scanner consumes nothing more
        let mut s = ChunkedScanner::new();
        assert_eq!(s.scan(&input, |_| {}), Ok((body.len(), true)));
        assert!(s.is_done());
        assert_eq!(
            s.scan(b"more", |_| panic!("no data after done")),
            Ok((0, true))
        );
        s.reset();
        assert!(!s.is_done());
        assert_eq!(s.scan(b"0\r\n\r\n", |_| {}), Ok((5, true)));
    }

    #[test]
    fn partial_body_is_not_done() {
        let input = b"5\r\nhel";
        assert_eq!(run(input), Ok((input.len(), false, b"hel".to_vec())));
        let input = b"5\r\nhello\r\n0\r\n";
        assert_eq!(run(input), Ok((input.len(), false, b"hello".to_vec())));
    }

    #[test]
    fn errors() {
        let long_ext = {
            let mut v = b"1;".to_vec();
            v.extend(std::iter::repeat_n(b'x', MAX_EXTENSION));
            v.extend_from_slice(b"\r\nZ\r\n0\r\n\r\n");
            v
        };
        let long_trailer = {
            let mut v = b"0\r\n".to_vec();
            for i in 0..1000 {
                v.extend_from_slice(format!("X-{i:04}: 0\r\n").as_bytes()); // 11 bytes each
            }
            v.extend_from_slice(b"\r\n");
            v
        };
        let cases: &[(&[u8], ChunkError)] = &[
            (b"\r\n", ChunkError::BadSize),
            (b"x\r\n", ChunkError::BadSize),
            (b" 5\r\nhello\r\n0\r\n\r\n", ChunkError::BadSize),
            (b"5 \r\nhello\r\n0\r\n\r\n", ChunkError::BadSize),
            (b"5x\r\nhello\r\n0\r\n\r\n", ChunkError::BadSize),
            (b"+5\r\nhello\r\n0\r\n\r\n", ChunkError::BadSize),
            (b"-1\r\n", ChunkError::BadSize),
            (b"0x5\r\nhello\r\n0\r\n\r\n", ChunkError::BadSize),
            (b"5;a\x01\r\nhello\r\n0\r\n\r\n", ChunkError::BadSize),
            (b"10000000000000000\r\n", ChunkError::SizeOverflow),
            (b"00000000000000001\r\n", ChunkError::SizeOverflow),
            (&long_ext, ChunkError::ExtensionTooLong),
            (b"5\nhello\r\n0\r\n\r\n", ChunkError::BadLineEnd),
            (b"5\rhello\r\n0\r\n\r\n", ChunkError::BadLineEnd),
            (b"5;e\nhello\r\n0\r\n\r\n", ChunkError::BadLineEnd),
            (b"5\r\nhello\n0\r\n\r\n", ChunkError::BadLineEnd),
            (b"5\r\nhelloo\r\n0\r\n\r\n", ChunkError::BadLineEnd),
            (b"5\r\nhello\r0\r\n\r\n", ChunkError::BadLineEnd),
            (b"\n", ChunkError::BadLineEnd),
            (b"0\r\n\n", ChunkError::BadLineEnd),
            (b"0\r\n\rx", ChunkError::BadLineEnd),
            (b"0\r\nX: y\n\r\n", ChunkError::BadLineEnd),
            (b"0\r\nX: y\rz\r\n", ChunkError::BadLineEnd),
            (&long_trailer, ChunkError::TrailerTooLong),
            (b"0\r\n: y\r\n\r\n", ChunkError::BadTrailer),
            (b"0\r\n y\r\n\r\n", ChunkError::BadTrailer),
            (b"0\r\nX : y\r\n\r\n", ChunkError::BadTrailer),
            (b"0\r\nX\r\n\r\n", ChunkError::BadTrailer),
            (b"0\r\nX: a\x00b\r\n\r\n", ChunkError::BadTrailer),
        ];
        for (input, want) in cases {
            assert_eq!(
                run(input),
                Err(*want),
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn error_is_sticky_until_reset() {
        let mut s = ChunkedScanner::new();
        assert_eq!(s.scan(b"z", |_| {}), Err(ChunkError::BadSize));
        assert_eq!(s.scan(b"0\r\n\r\n", |_| {}), Err(ChunkError::BadSize));
        s.reset();
        assert_eq!(s.scan(b"0\r\n\r\n", |_| {}), Ok((5, true)));
    }

    #[test]
    fn large_chunk_in_pieces() {
        // payload is delivered as slices of the input, whatever the split
        let mut input = b"1000\r\n".to_vec();
        input.extend((0..4096u32).map(|i| (i % 251) as u8));
        input.extend_from_slice(b"\r\n0\r\n\r\n");
        let want: Vec<u8> = (0..4096u32).map(|i| (i % 251) as u8).collect();
        for split in [1usize, 3, 7, 100, 4095, 10000] {
            let mut s = ChunkedScanner::new();
            let mut data = Vec::new();
            let mut done = false;
            for piece in input.chunks(split) {
                let (n, d) = s.scan(piece, |x| data.extend_from_slice(x)).unwrap();
                assert_eq!(n, piece.len());
                done = d;
            }
            assert!(done, "split {split}");
            assert_eq!(data, want, "split {split}");
        }
    }
}
