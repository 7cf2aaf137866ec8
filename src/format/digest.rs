//! Digests over CSV bytes: sha256 of the whole stream, and the order-independent
//! content fingerprint.
//!
//! The fingerprint: every CSV record except the header is hashed with
//! XXH3-128 (seed 0) over its bytes without the line terminator, and the hashes
//! are summed modulo 2^128, alongside the record count. Because COPY's text is
//! deterministic under the pinned settings, the same rows give the same
//! fingerprint in a backup file, a source table and a target table, in any
//! order. Nothing here does I/O.

use sha2::{Digest, Sha256};
use xxhash_rust::xxh3::{Xxh3, xxh3_128};

/// The fingerprint's definition, recorded in manifests so anyone can recompute it.
pub const FINGERPRINT_ALGORITHM: &str = "xxh3-128: sum modulo 2^128 of XXH3-128 (seed 0) of each CSV record without its line terminator, header excluded";

/// sha256 of a byte stream, as lower-case hex.
#[derive(Clone, Default)]
pub struct Sha256Stage {
    hasher: Sha256,
    bytes: u64,
}

impl Sha256Stage {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn feed(&mut self, chunk: &[u8]) {
        self.hasher.update(chunk);
        self.bytes += chunk.len() as u64;
    }

    /// The digest as hex, and the byte count.
    pub fn finish(self) -> (String, u64) {
        (hex(&self.hasher.finalize()), self.bytes)
    }
}

/// The sha256 of a whole (small) byte string, as lower-case hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    let mut s = Sha256Stage::new();
    s.feed(bytes);
    s.finish().0
}

/// Lower-case hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

/// A finished fingerprint: record count and the 128-bit sum as 32 hex digits.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Fingerprint {
    pub records: u64,
    pub sum: String,
}

/// Accumulates the fingerprint from record pieces (see `RecordScanner::feed_with`).
/// The first record is the header and is skipped.
#[derive(Clone)]
pub struct Fingerprinter {
    sum: u128,
    records: u64,
    seen_header: bool,
    /// A record that crossed a block boundary, hashed in pieces.
    partial: Option<Box<Xxh3>>,
}

impl Default for Fingerprinter {
    fn default() -> Self {
        Self::new()
    }
}

impl Fingerprinter {
    pub fn new() -> Self {
        Fingerprinter { sum: 0, records: 0, seen_header: false, partial: None }
    }

    /// Takes the next piece of a record; `ends_record` says it completes one.
    pub fn piece(&mut self, piece: &[u8], ends_record: bool) {
        if !self.seen_header {
            if ends_record {
                self.seen_header = true;
            }
            return;
        }
        let hash = match (self.partial.take(), ends_record) {
            // The common case: a whole record in one call on the block.
            (None, true) => xxh3_128(piece),
            (None, false) => {
                let mut h = Box::new(Xxh3::new());
                h.update(piece);
                self.partial = Some(h);
                return;
            }
            (Some(mut h), false) => {
                h.update(piece);
                self.partial = Some(h);
                return;
            }
            (Some(mut h), true) => {
                h.update(piece);
                h.digest128()
            }
        };
        self.sum = self.sum.wrapping_add(hash);
        self.records += 1;
    }

    pub fn finish(self) -> Fingerprint {
        Fingerprint { records: self.records, sum: format!("{:032x}", self.sum) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::csv::RecordScanner;

    fn fingerprint(data: &[u8], block: usize) -> Fingerprint {
        let mut s = RecordScanner::new();
        let mut f = Fingerprinter::new();
        for chunk in data.chunks(block.max(1)) {
            s.feed_with(chunk, |p, e| f.piece(p, e));
        }
        f.finish()
    }

    #[test]
    fn order_independent_and_chunking_independent() {
        let a = b"id,t\n1,\"x\ny\"\n2,b\n3,\"\"\"q\"\"\"\n";
        let b = b"id,t\n3,\"\"\"q\"\"\"\n1,\"x\ny\"\n2,b\n";
        let fa = fingerprint(a, 1 << 20);
        assert_eq!(fa.records, 3);
        for block in 1..a.len() {
            assert_eq!(fingerprint(a, block), fa, "block {block}");
            assert_eq!(fingerprint(b, block), fa, "block {block}");
        }
    }

    #[test]
    fn content_changes_change_it_and_header_does_not() {
        let base = fingerprint(b"id\n1\n2\n", 100);
        assert_ne!(fingerprint(b"id\n1\n3\n", 100), base);
        assert_ne!(fingerprint(b"id\n1\n2\n2\n", 100), base);
        assert_eq!(fingerprint(b"other\n1\n2\n", 100), base);
    }

    #[test]
    fn sum_is_plain_wrapping_addition_of_xxh3() {
        let f = fingerprint(b"h\nabc\n", 100);
        assert_eq!(f.sum, format!("{:032x}", xxh3_128(b"abc")));
    }

    #[test]
    fn sha256_hex() {
        let mut s = Sha256Stage::new();
        s.feed(b"ab");
        s.feed(b"c");
        assert_eq!(
            s.finish(),
            ("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad".to_string(), 3)
        );
    }
}
