//! The pattern block that `--body-size` and `?size=` bodies are made of.

/// The pattern block large bodies are made of. Byte `i` of any pattern body is
/// [`pattern_byte`]`(i)`: 63 characters of base64 alphabet and a newline, repeated.
pub const BLOCK: usize = 64 * 1024;
pub(super) static PATTERN: [u8; BLOCK] = make_pattern();

const fn make_pattern() -> [u8; BLOCK] {
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut p = [0u8; BLOCK];
    let mut i = 0;
    while i < BLOCK {
        p[i] = if i % 64 == 63 {
            b'\n'
        } else {
            alphabet[i % 64]
        };
        i += 1;
    }
    p
}

/// Byte `i` of a pattern body (`--body-size`, `?size=`).
pub fn pattern_byte(i: u64) -> u8 {
    PATTERN[(i % 64) as usize]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pattern_repeats_across_blocks() {
        for i in [0u64, 63, 64, 65535, 65536, 1 << 30] {
            assert_eq!(pattern_byte(i), PATTERN[(i % BLOCK as u64) as usize]);
        }
        assert_eq!(PATTERN[63], b'\n');
        assert_eq!(PATTERN[0], b'A');
    }
}
