//! mod_unique_id (2.4.29+ layout): 20 bytes = stamp (4, request time in
//! seconds, network order) ‖ root (10, random per child) ‖ counter (2, random
//! start, network order) ‖ connection id (4, network order), encoded as 27
//! characters. httpd 2.4.47+ uses the base64url alphabet (`-` `_`); 2.4.29 to
//! 2.4.46 used `@` `-` in the last two positions (`UniqueIdGen::legacy_alphabet`).

use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

/// Length of an encoded UNIQUE_ID.
pub const UNIQUE_ID_LEN: usize = 27;

const ALPHA_URL: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
const ALPHA_LEGACY: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789@-";

/// Per-shard UNIQUE_ID generator (httpd: one per child process).
#[derive(Debug, Clone)]
pub struct UniqueIdGen {
    root: [u8; 10],
    counter: u16,
    alphabet: &'static [u8; 64],
}

/// 16 random bytes read once per process (getrandom, else /dev/urandom, else
/// a time/pid mix).
fn process_seed() -> &'static [u8; 16] {
    static SEED: OnceLock<[u8; 16]> = OnceLock::new();
    SEED.get_or_init(|| {
        let mut b = [0u8; 16];
        // SAFETY: writes at most b.len() bytes into b.
        let n = unsafe { libc::getrandom(b.as_mut_ptr().cast(), b.len(), 0) };
        if n == b.len() as isize {
            return b;
        }
        if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
            use std::io::Read;
            if f.read_exact(&mut b).is_ok() {
                return b;
            }
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos() as u64;
        let pid = u64::from(std::process::id());
        let x = splitmix(now ^ pid.rotate_left(32));
        let y = splitmix(x ^ pid);
        b[..8].copy_from_slice(&x.to_le_bytes());
        b[8..].copy_from_slice(&y.to_le_bytes());
        b
    })
}

fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl UniqueIdGen {
    /// Generator for shard `shard` of this process. The root is the process's
    /// random root with the shard index folded into its last two bytes, so the
    /// shards of one process never share a root; the counter starts at a
    /// random value per shard.
    pub fn new(shard: usize) -> UniqueIdGen {
        let seed = process_seed();
        let mut root = [0u8; 10];
        root.copy_from_slice(&seed[..10]);
        let s = (shard as u16).to_be_bytes();
        root[8] ^= s[0];
        root[9] ^= s[1];
        let mix = splitmix(u64::from_le_bytes(seed[8..16].try_into().unwrap()) ^ shard as u64);
        UniqueIdGen::with_root(root, mix as u16)
    }

    /// Explicit root and counter start (tests, reproducible ids).
    pub fn with_root(root: [u8; 10], counter: u16) -> UniqueIdGen {
        UniqueIdGen {
            root,
            counter,
            alphabet: ALPHA_URL,
        }
    }

    /// Switch to the pre-2.4.47 alphabet (`@` and `-` instead of `-` and `_`).
    pub fn legacy_alphabet(mut self) -> UniqueIdGen {
        self.alphabet = ALPHA_LEGACY;
        self
    }

    /// Next id, stamped with the current time.
    pub fn next(&mut self, conn_id: u64, out: &mut [u8; UNIQUE_ID_LEN]) {
        self.next_at(SystemTime::now(), conn_id, out)
    }

    /// Next id stamped with `request_time` (httpd uses `r->request_time`).
    pub fn next_at(
        &mut self,
        request_time: SystemTime,
        conn_id: u64,
        out: &mut [u8; UNIQUE_ID_LEN],
    ) {
        let stamp = request_time
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() as u32)
            .unwrap_or(0);
        let counter = self.counter;
        self.counter = self.counter.wrapping_add(1);
        let mut raw = [0u8; 21]; // 20 bytes + one zero pad byte for the last group
        raw[0..4].copy_from_slice(&stamp.to_be_bytes());
        raw[4..14].copy_from_slice(&self.root);
        raw[14..16].copy_from_slice(&counter.to_be_bytes());
        raw[16..20].copy_from_slice(&(conn_id as u32).to_be_bytes());
        encode(self.alphabet, &raw, out);
    }
}

fn encode(alpha: &[u8; 64], raw: &[u8; 21], out: &mut [u8; UNIQUE_ID_LEN]) {
    let mut k = 0;
    for g in raw.chunks_exact(3) {
        let n = u32::from(g[0]) << 16 | u32::from(g[1]) << 8 | u32::from(g[2]);
        for shift in [18, 12, 6, 0] {
            if k == UNIQUE_ID_LEN {
                return;
            }
            out[k] = alpha[((n >> shift) & 63) as usize];
            k += 1;
        }
    }
}

/// Decodes a 27-char UNIQUE_ID back into its 20 bytes: stamp ‖ root ‖
/// counter ‖ conn id. `legacy` selects the pre-2.4.47 alphabet (`@` `-`).
pub fn decode_unique_id(id: &[u8], legacy: bool) -> Option<[u8; 20]> {
    if id.len() != UNIQUE_ID_LEN {
        return None;
    }
    let val = |c: u8| -> Option<u64> {
        Some(u64::from(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'@' if legacy => 62,
            b'-' if legacy => 63,
            b'-' => 62,
            b'_' if !legacy => 63,
            _ => return None,
        }))
    };
    let mut bits: u64 = 0;
    let mut nbits = 0;
    let mut out = [0u8; 20];
    let mut k = 0;
    for &c in id {
        bits = (bits << 6) | val(c)?;
        nbits += 6;
        if nbits >= 8 {
            nbits -= 8;
            if k < 20 {
                out[k] = (bits >> nbits) as u8;
                k += 1;
            }
        }
    }
    (k == 20).then_some(out)
}
