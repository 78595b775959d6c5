//! Byte-level output helpers: `ap_escape_logitem` escaping and allocation-free
//! integer / IP formatting straight into the log buffer.

use std::io::Write as _;
use std::net::IpAddr;

/// True for bytes `ap_escape_logitem` rewrites: not printable ASCII, `"` or `\`.
#[inline]
fn needs_escape(b: u8) -> bool {
    !(0x20..0x7f).contains(&b) || b == b'"' || b == b'\\'
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Appends `s` escaped the way httpd's `ap_escape_logitem` does.
pub(super) fn push_escaped(out: &mut Vec<u8>, s: &[u8]) {
    let mut start = 0;
    for (i, &b) in s.iter().enumerate() {
        if !needs_escape(b) {
            continue;
        }
        out.extend_from_slice(&s[start..i]);
        start = i + 1;
        match b {
            b'\x08' => out.extend_from_slice(b"\\b"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            b'\x0b' => out.extend_from_slice(b"\\v"),
            b'\\' | b'"' => out.extend_from_slice(&[b'\\', b]),
            _ => out.extend_from_slice(&[
                b'\\',
                b'x',
                HEX[(b >> 4) as usize],
                HEX[(b & 15) as usize],
            ]),
        }
    }
    out.extend_from_slice(&s[start..]);
}

/// `-` for `None`, escaped value otherwise (empty stays empty).
#[inline]
pub(super) fn push_opt_escaped(out: &mut Vec<u8>, s: Option<&[u8]>) {
    match s {
        Some(s) => push_escaped(out, s),
        None => out.push(b'-'),
    }
}

/// Decimal formatting without allocation.
pub(super) fn push_u64(out: &mut Vec<u8>, mut v: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[i..]);
}

/// Decimal, zero-padded to at least `width` digits.
pub(super) fn push_u64_padded(out: &mut Vec<u8>, v: u64, width: usize) {
    let mut buf = [b'0'; 20];
    let mut i = buf.len();
    let mut x = v;
    loop {
        i -= 1;
        buf[i] = b'0' + (x % 10) as u8;
        x /= 10;
        if x == 0 {
            break;
        }
    }
    let start = i.min(buf.len().saturating_sub(width));
    out.extend_from_slice(&buf[start..]);
}

/// Lowercase hexadecimal.
pub(super) fn push_hex(out: &mut Vec<u8>, mut v: u64) {
    let mut buf = [0u8; 16];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = HEX[(v & 15) as usize];
        v >>= 4;
        if v == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[i..]);
}

/// IP address as APR prints it: IPv4 dotted quad, IPv4-mapped IPv6 shown as
/// IPv4, other IPv6 in RFC 5952 form without brackets.
pub(super) fn push_ip(out: &mut Vec<u8>, ip: IpAddr) {
    let v4 = match ip {
        IpAddr::V4(v4) => v4,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4,
            None => {
                // Ipv6Addr's Display formats on the stack; Vec's io::Write
                // only grows the buffer.
                let _ = write!(out, "{v6}");
                return;
            }
        },
    };
    let o = v4.octets();
    for (n, b) in o.iter().enumerate() {
        if n > 0 {
            out.push(b'.');
        }
        push_u64(out, u64::from(*b));
    }
}
