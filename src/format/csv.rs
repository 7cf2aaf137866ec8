//! The COPY CSV dialect: the record scanner that counts records and cuts them
//! out for the fingerprint, and the header PostgreSQL writes. They must agree
//! with `COPY ... TO STDOUT (FORMAT csv, HEADER)` byte for byte.
//!
//! The scanner is a caller-driven state machine: one bit of state (inside
//! quotes or not), no allocation, correct for any chunking. It counts newlines
//! outside quotes; a doubled `""` toggles twice and cancels out. csv-core is not
//! used: it skips empty lines, and PostgreSQL writes an empty line for a row
//! whose only column is NULL and for every row of a zero-column table.
//! Nothing here does I/O.

use memchr::memchr2;

/// Counts CSV records and reports their byte ranges.
#[derive(Debug, Clone, Default)]
pub struct RecordScanner {
    in_quotes: bool,
    /// Complete records seen (header included).
    records: u64,
    /// Whether the last byte fed ended a record (or nothing was fed).
    at_record_start: bool,
    fed_any: bool,
}

/// A problem with the CSV stream's shape, found at `finish`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CsvShapeError {
    #[error("the data ends inside a quoted value (truncated or corrupted CSV)")]
    UnterminatedQuote,
    #[error("the data ends in the middle of a record (truncated CSV: no final newline)")]
    PartialRecord,
    #[error("the data is empty: not even a header line")]
    NoHeader,
}

impl RecordScanner {
    pub fn new() -> Self {
        RecordScanner { in_quotes: false, records: 0, at_record_start: true, fed_any: false }
    }

    /// Scans `chunk`, calling `on_piece(piece, ends_record)` for consecutive
    /// pieces that cover the chunk exactly: each piece is a record's bytes, or
    /// part of one when a record crosses chunk boundaries. The line terminator
    /// `\n` is not part of any piece.
    pub fn feed_with(&mut self, chunk: &[u8], mut on_piece: impl FnMut(&[u8], bool)) {
        if chunk.is_empty() {
            return;
        }
        self.fed_any = true;
        let mut start = 0;
        // 64 bytes at a time: bit masks of quotes and newlines, the quote mask's
        // prefix XOR says which bytes are inside quotes, and the newlines outside
        // are the record ends. No branch per byte, however dense the quotes.
        let whole = chunk.len() / 64 * 64;
        let mut carry: u64 = if self.in_quotes { !0 } else { 0 };
        for (k, block) in chunk[..whole].chunks_exact(64).enumerate() {
            let (quotes, newlines) = masks(block);
            let inside = prefix_xor(quotes) ^ carry;
            carry = if inside >> 63 == 1 { !0 } else { 0 };
            let mut ends = newlines & !inside;
            while ends != 0 {
                let pos = k * 64 + ends.trailing_zeros() as usize;
                on_piece(&chunk[start..pos], true);
                self.records += 1;
                start = pos + 1;
                ends &= ends - 1;
            }
        }
        self.in_quotes = carry != 0;
        let mut pos = whole;
        while let Some(off) = memchr2(b'"', b'\n', &chunk[pos..]) {
            let i = pos + off;
            if chunk[i] == b'"' {
                self.in_quotes = !self.in_quotes;
            } else if !self.in_quotes {
                on_piece(&chunk[start..i], true);
                self.records += 1;
                start = i + 1;
            }
            pos = i + 1;
        }
        if start < chunk.len() {
            on_piece(&chunk[start..], false);
            self.at_record_start = false;
        } else {
            self.at_record_start = true;
        }
    }

    /// Scans `chunk` for counting only.
    pub fn feed(&mut self, chunk: &[u8]) {
        self.feed_with(chunk, |_, _| {});
    }

    /// Complete records so far, header included.
    pub fn records(&self) -> u64 {
        self.records
    }

    /// Checks the stream ended cleanly and returns the number of data records
    /// (the header line excluded).
    ///
    /// # Errors
    /// The data ends inside quotes, mid-record, or holds no header.
    pub fn finish(&self) -> Result<u64, CsvShapeError> {
        if self.in_quotes {
            return Err(CsvShapeError::UnterminatedQuote);
        }
        if self.fed_any && !self.at_record_start {
            return Err(CsvShapeError::PartialRecord);
        }
        if self.records == 0 {
            return Err(CsvShapeError::NoHeader);
        }
        Ok(self.records - 1)
    }
}

/// Bit `i` set where `block[i]` (64 bytes) is a quote, and where it is a
/// newline: SSE2 compares and mask moves (every x86_64 CPU has SSE2).
#[cfg(target_arch = "x86_64")]
#[inline]
fn masks(block: &[u8]) -> (u64, u64) {
    use std::arch::x86_64::{
        __m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_set1_epi8,
    };
    assert!(block.len() >= 64);
    let mut quotes = 0u64;
    let mut newlines = 0u64;
    // SAFETY: SSE2 is part of the x86_64 baseline; the loads are unaligned
    // loads of 16 bytes within `block`, whose length is checked above.
    unsafe {
        let q = _mm_set1_epi8(b'"' as i8);
        let n = _mm_set1_epi8(b'\n' as i8);
        for k in 0..4 {
            let v = _mm_loadu_si128(block.as_ptr().add(k * 16) as *const __m128i);
            quotes |= (_mm_movemask_epi8(_mm_cmpeq_epi8(v, q)) as u16 as u64) << (k * 16);
            newlines |= (_mm_movemask_epi8(_mm_cmpeq_epi8(v, n)) as u16 as u64) << (k * 16);
        }
    }
    (quotes, newlines)
}

/// Bit `i` set where `block[i]` is a quote, and where it is a newline.
#[cfg(not(target_arch = "x86_64"))]
#[inline]
fn masks(block: &[u8]) -> (u64, u64) {
    let mut quotes = 0u64;
    let mut newlines = 0u64;
    for (i, &b) in block.iter().enumerate().take(64) {
        quotes |= ((b == b'"') as u64) << i;
        newlines |= ((b == b'\n') as u64) << i;
    }
    (quotes, newlines)
}

/// Bit `i` of the result is the XOR of bits `0..=i`: set where an odd number of
/// quotes has been seen, i.e. inside a quoted value (a newline is never a quote,
/// so for a newline this is the state before it).
#[inline]
fn prefix_xor(mut x: u64) -> u64 {
    x ^= x << 1;
    x ^= x << 2;
    x ^= x << 4;
    x ^= x << 8;
    x ^= x << 16;
    x ^= x << 32;
    x
}

/// The first record of a stream — the header — as written, without its `\n`.
/// Feed it the stream's blocks; it stops looking once the record is complete.
pub struct FirstRecord {
    scanner: RecordScanner,
    bytes: Vec<u8>,
    done: bool,
}

impl Default for FirstRecord {
    fn default() -> Self {
        Self::new()
    }
}

/// A header longer than this is not a COPY header (1600 quoted 63-byte names fit).
const MAX_HEADER: usize = 256 * 1024;

impl FirstRecord {
    pub fn new() -> Self {
        FirstRecord { scanner: RecordScanner::new(), bytes: Vec::new(), done: false }
    }

    pub fn feed(&mut self, chunk: &[u8]) {
        if self.done {
            return;
        }
        let (bytes, done) = (&mut self.bytes, &mut self.done);
        self.scanner.feed_with(chunk, |piece, ends| {
            if !*done {
                bytes.extend_from_slice(piece);
                *done = ends;
            }
        });
        if self.bytes.len() > MAX_HEADER {
            self.done = true;
        }
    }

    /// The record, once complete.
    pub fn get(&self) -> Option<&[u8]> {
        self.done.then_some(&self.bytes[..])
    }
}

/// One CSV field as PostgreSQL's `COPY ... CSV` writes it: quoted when it holds
/// the delimiter, the quote, a CR or LF, or is empty (so it is not read as
/// NULL); quotes doubled inside.
pub fn csv_field(value: &str) -> String {
    let needs_quotes = value.is_empty() || value.contains([',', '"', '\n', '\r']);
    if needs_quotes { format!("\"{}\"", value.replace('"', "\"\"")) } else { value.to_string() }
}

/// The header line COPY writes for these column names, without the newline.
/// A single column named `\.` is quoted too, as PostgreSQL does for a value
/// alone on a line that would read as end-of-data.
pub fn csv_header<'a>(columns: impl IntoIterator<Item = &'a str>) -> String {
    let names: Vec<&str> = columns.into_iter().collect();
    if names.len() == 1 && names[0] == "\\." {
        return "\"\\.\"".to_string();
    }
    names.iter().map(|n| csv_field(n)).collect::<Vec<_>>().join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_record_at_every_split() {
        let data = b"id,\"a\nb\",\"x\"\"y\"\n1,2,3\n";
        for cut in 0..data.len() {
            let mut f = FirstRecord::new();
            f.feed(&data[..cut]);
            f.feed(&data[cut..]);
            assert_eq!(f.get(), Some(&b"id,\"a\nb\",\"x\"\"y\""[..]), "cut {cut}");
        }
        let mut f = FirstRecord::new();
        f.feed(b"no newline");
        assert_eq!(f.get(), None);
    }

    /// Scans `data` cut at the given sizes; returns records and the joined pieces.
    fn scan_split(data: &[u8], cuts: &[usize]) -> (Result<u64, CsvShapeError>, Vec<Vec<u8>>) {
        let mut s = RecordScanner::new();
        let mut records: Vec<Vec<u8>> = Vec::new();
        let mut current = Vec::new();
        let mut prev = 0;
        for &cut in cuts.iter().chain(std::iter::once(&data.len())) {
            s.feed_with(&data[prev..cut], |piece, ends| {
                current.extend_from_slice(piece);
                if ends {
                    records.push(std::mem::take(&mut current));
                }
            });
            prev = cut;
        }
        (s.finish(), records)
    }

    const CASES: &[(&str, &[u8], u64)] = &[
        ("plain", b"id,name\n1,a\n2,b\n", 2),
        ("header only", b"id,name\n", 0),
        ("embedded newline", b"id,t\n1,\"a\nb\"\n2,c\n", 2),
        ("embedded CR and CRLF", b"id,t\n1,\"a\rb\"\n2,\"c\r\nd\"\n", 2),
        ("doubled quotes", b"id,t\n1,\"say \"\"hi\"\"\"\n2,\"\"\"\"\n", 2),
        ("backslash dot line", b"id,t\n1,\"x\n\\.\ny\"\n", 1),
        ("empty string vs null", b"id,t\n1,\"\"\n2,\n", 2),
        ("only null column", b"t\n\n\n\n", 3),
        ("zero columns", b"\n\n\n", 2),
        ("commas inside quotes", b"a\n\"x,y,z\"\n", 1),
        ("unicode", "a\n\"日本\n語\"\n🦀\n".as_bytes(), 2),
    ];

    #[test]
    fn every_case_whole_split_everywhere_and_byte_by_byte() {
        for (name, data, rows) in CASES {
            let (whole, whole_records) = scan_split(data, &[]);
            assert_eq!(whole, Ok(*rows), "{name}");
            assert_eq!(whole_records.len() as u64, rows + 1, "{name}");
            for cut in 0..=data.len() {
                let (r, recs) = scan_split(data, &[cut]);
                assert_eq!(r, Ok(*rows), "{name} cut at {cut}");
                assert_eq!(recs, whole_records, "{name} cut at {cut}");
            }
            let all: Vec<usize> = (1..data.len()).collect();
            let (r, recs) = scan_split(data, &all);
            assert_eq!(r, Ok(*rows), "{name} byte by byte");
            assert_eq!(recs, whole_records, "{name} byte by byte");
        }
    }

    /// A long CSV with dense quotes, newlines inside and outside them, so the
    /// 64-byte path and its carries across blocks are exercised.
    fn long_csv() -> Vec<u8> {
        let mut v = b"id,t\n".to_vec();
        for i in 0..300u32 {
            let field = match i % 5 {
                0 => "\"a\nb\"".to_string(),
                1 => "\"\"\"\"".to_string(),
                2 => "plain".to_string(),
                3 => format!("\"{}\"", "x\n\"\"".repeat((i % 23) as usize)),
                _ => String::new(),
            };
            v.extend_from_slice(format!("{i},{field}\n").as_bytes());
        }
        v
    }

    #[test]
    fn long_data_agrees_in_any_chunking() {
        let data = long_csv();
        let (whole, recs) = scan_split(&data, &[]);
        assert_eq!(whole, Ok(300));
        let all: Vec<usize> = (1..data.len()).collect();
        assert_eq!(scan_split(&data, &all), (Ok(300), recs.clone()), "byte by byte");
        for cut in (0..data.len()).step_by(7) {
            assert_eq!(scan_split(&data, &[cut]), (Ok(300), recs.clone()), "cut at {cut}");
        }
        for size in [63, 64, 65, 100, 128, 1000] {
            let cuts: Vec<usize> = (size..data.len()).step_by(size).collect();
            assert_eq!(scan_split(&data, &cuts), (Ok(300), recs.clone()), "blocks of {size}");
        }
    }

    #[test]
    fn record_pieces_exclude_the_newline() {
        let (_, recs) = scan_split(b"h\n\"a\nb\"\nc\n", &[3]);
        assert_eq!(recs, vec![b"h".to_vec(), b"\"a\nb\"".to_vec(), b"c".to_vec()]);
    }

    #[test]
    fn truncation_is_detected() {
        assert_eq!(scan_split(b"id,t\n1,\"open\n", &[]).0, Err(CsvShapeError::UnterminatedQuote));
        assert_eq!(scan_split(b"id,t\n1,a", &[]).0, Err(CsvShapeError::PartialRecord));
        assert_eq!(scan_split(b"", &[]).0, Err(CsvShapeError::NoHeader));
    }

    #[test]
    fn header_like_postgres() {
        assert_eq!(csv_header(["id", "name"]), "id,name");
        assert_eq!(
            csv_header(["a,b", "say \"x\"", "line\nbreak"]),
            "\"a,b\",\"say \"\"x\"\"\",\"line\nbreak\""
        );
        assert_eq!(csv_header(["Role Name", "ü"]), "Role Name,ü");
        assert_eq!(csv_header(Vec::<&str>::new()), "");
    }
}
