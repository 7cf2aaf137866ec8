//! The pure stages a COPY stream's bytes pass through: blocks of
//! [`BLOCK_SIZE`], record or tuple counting, sha256 and the fingerprint.
//!
//! tokio-postgres yields one item per CopyData message, which is one row; per
//! item work would be paid millions of times (PERF-NOTES.md), so items are
//! gathered into blocks of [`BLOCK_SIZE`] before any stage sees them.
//!
//! Nothing here knows of a connection: the stages are fed bytes and unit-tested
//! alone; [`super::copy_out`] drives them from a server's stream.

use bytes::{Bytes, BytesMut};

use crate::format::binary::BinaryTupleCounter;
use crate::format::csv::RecordScanner;
use crate::format::digest::{Fingerprint, Fingerprinter, Sha256Stage};

/// Bytes gathered before the stages and the sink see them.
pub const BLOCK_SIZE: usize = 256 * 1024;

/// What the stages found in a CSV stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsvSummary {
    /// Data records, the header excluded.
    pub rows: u64,
    pub csv_bytes: u64,
    pub csv_sha256: String,
    pub fingerprint: Option<Fingerprint>,
}

/// The stages every CSV stream of a backup goes through: sha256 on top of
/// [`StreamStages`] (record counter and, when asked, the fingerprint).
/// Feed blocks, then `finish`.
pub struct CsvStages {
    sha: Sha256Stage,
    stream: StreamStages,
}

impl CsvStages {
    pub fn new(with_fingerprint: bool) -> Self {
        CsvStages {
            sha: Sha256Stage::new(),
            stream: StreamStages::new(WireFormat::Csv, with_fingerprint),
        }
    }

    /// Runs every stage over one block.
    pub fn feed(&mut self, block: &[u8]) {
        self.sha.feed(block);
        self.stream.feed(block);
    }

    /// Data records so far (for progress).
    pub fn rows(&self) -> u64 {
        self.stream.rows()
    }

    /// Bytes so far.
    pub fn bytes(&self) -> u64 {
        self.stream.bytes()
    }

    /// Checks the stream's shape and returns the summary.
    ///
    /// # Errors
    /// The CSV ends inside quotes or mid-record.
    pub fn finish(self) -> std::result::Result<CsvSummary, String> {
        let stream = self.stream.finish()?;
        let (csv_sha256, csv_bytes) = self.sha.finish();
        Ok(CsvSummary { rows: stream.rows, csv_bytes, csv_sha256, fingerprint: stream.fingerprint })
    }
}

/// Gathers small items into blocks of about [`BLOCK_SIZE`] bytes.
///
/// An item of [`BLOCK_SIZE`] or more is a block of its own, passed on
/// uncopied after what was gathered before it: a 100 MB row is one CopyData
/// message, already in memory once in tokio-postgres's read buffer, and
/// copying it into a growing buffer here would hold it twice (or more, while
/// the buffer doubles).
#[derive(Default)]
pub struct BlockGatherer {
    buf: BytesMut,
    /// A large item waiting behind the gathered block returned before it.
    pub(super) waiting: Option<Bytes>,
}

impl BlockGatherer {
    pub fn new() -> Self {
        BlockGatherer { buf: BytesMut::with_capacity(BLOCK_SIZE), waiting: None }
    }

    /// Adds an item; returns a block when there is one. After a `Some`, call
    /// [`BlockGatherer::take_waiting`] before pushing again: a large item that
    /// followed gathered bytes waits there.
    pub fn push(&mut self, item: Bytes) -> Option<Bytes> {
        debug_assert!(self.waiting.is_none(), "take_waiting before the next push");
        if item.len() >= BLOCK_SIZE {
            return match self.flush() {
                Some(gathered) => {
                    self.waiting = Some(item);
                    Some(gathered)
                }
                None => Some(item),
            };
        }
        self.buf.extend_from_slice(&item);
        if self.buf.len() >= BLOCK_SIZE {
            let block = self.buf.split().freeze();
            self.buf.reserve(BLOCK_SIZE);
            Some(block)
        } else {
            None
        }
    }

    /// The large item that followed the last gathered block, if any.
    pub fn take_waiting(&mut self) -> Option<Bytes> {
        self.waiting.take()
    }

    /// The last, partial block.
    pub fn flush(&mut self) -> Option<Bytes> {
        (!self.buf.is_empty()).then(|| self.buf.split().freeze())
    }
}

/// What [`copy_out`](super::copy_out::copy_out) runs each block through: [`CsvStages`] when a file is
/// written (its sha256 is recorded), [`StreamStages`] when only the count and
/// fingerprint are wanted.
pub trait Stages {
    fn feed(&mut self, block: &[u8]);
}

impl Stages for CsvStages {
    fn feed(&mut self, block: &[u8]) {
        CsvStages::feed(self, block);
    }
}

impl Stages for StreamStages {
    fn feed(&mut self, block: &[u8]) {
        StreamStages::feed(self, block);
    }
}

/// The format rows travel in between two servers (COPY's `FORMAT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WireFormat {
    /// What backups hold; the only format the fingerprint is defined on.
    Csv,
    /// COPY's text format: loads faster than CSV, and has no type dependence.
    Text,
    /// Fastest to load, but only between identical built-in column types.
    Binary,
}

impl WireFormat {
    /// The COPY options for this format (with a header for CSV, as backups have).
    pub fn copy_options(self) -> &'static str {
        match self {
            WireFormat::Csv => "FORMAT csv, HEADER",
            WireFormat::Text => "FORMAT text",
            WireFormat::Binary => "FORMAT binary",
        }
    }
}

/// What a copy counts (and, in CSV, fingerprints) on its stream. Lighter
/// than [`CsvStages`]: no sha256, because a copy writes no file.
pub struct StreamStages {
    counter: RowCounter,
    fingerprint: Option<Fingerprinter>,
    bytes: u64,
}

enum RowCounter {
    Csv(RecordScanner),
    /// Text format escapes newlines in values, so every row ends with the
    /// only unescaped `\n`; the count is of newlines, and the last byte.
    Text {
        rows: u64,
        last: Option<u8>,
    },
    Binary(BinaryTupleCounter),
}

/// What went through a copy's stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamSummary {
    pub rows: u64,
    pub bytes: u64,
    /// Only for CSV with the fingerprint asked for.
    pub fingerprint: Option<Fingerprint>,
    /// The largest value of each column asked for with
    /// [`StreamStages::keep_int_max`] (binary only; `None` when not every
    /// value was read).
    pub int_max: Option<Vec<(usize, Option<i64>)>>,
}

impl StreamStages {
    /// Stages for `format`; a fingerprint only exists for CSV.
    pub fn new(format: WireFormat, with_fingerprint: bool) -> Self {
        let counter = match format {
            WireFormat::Csv => RowCounter::Csv(RecordScanner::new()),
            WireFormat::Text => RowCounter::Text { rows: 0, last: None },
            WireFormat::Binary => RowCounter::Binary(BinaryTupleCounter::new()),
        };
        let fingerprint = (with_fingerprint && format == WireFormat::Csv).then(Fingerprinter::new);
        StreamStages { counter, fingerprint, bytes: 0 }
    }

    /// Also keeps the largest value of the integer `columns` (stream
    /// indexes), on a binary stream; other formats keep none.
    pub fn keep_int_max(mut self, columns: &[usize]) -> Self {
        if let RowCounter::Binary(_) = self.counter
            && !columns.is_empty()
        {
            self.counter = RowCounter::Binary(BinaryTupleCounter::with_int_max(columns));
        }
        self
    }

    pub fn feed(&mut self, block: &[u8]) {
        self.bytes += block.len() as u64;
        match (&mut self.counter, &mut self.fingerprint) {
            (RowCounter::Csv(s), Some(f)) => s.feed_with(block, |p, e| f.piece(p, e)),
            (RowCounter::Csv(s), None) => s.feed(block),
            (RowCounter::Text { rows, last }, _) => {
                *rows += memchr::memchr_iter(b'\n', block).count() as u64;
                if let Some(&b) = block.last() {
                    *last = Some(b);
                }
            }
            (RowCounter::Binary(c), _) => c.feed(block),
        }
    }

    /// Rows so far (for progress).
    pub fn rows(&self) -> u64 {
        match &self.counter {
            RowCounter::Csv(s) => s.records().saturating_sub(1),
            RowCounter::Text { rows, .. } => *rows,
            RowCounter::Binary(c) => c.tuples(),
        }
    }

    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Checks the stream's shape and returns what went through.
    ///
    /// # Errors
    /// The stream ended mid-row, inside quotes, or (binary) before its trailer.
    pub fn finish(self) -> std::result::Result<StreamSummary, String> {
        let rows = match &self.counter {
            RowCounter::Csv(s) => s.finish().map_err(|e| e.to_string())?,
            RowCounter::Text { rows, last } => {
                if last.is_some_and(|b| b != b'\n') {
                    return Err("the text COPY stream ends mid-row".into());
                }
                *rows
            }
            RowCounter::Binary(c) => c.finish().map_err(|e| e.to_string())?,
        };
        let int_max = match &self.counter {
            RowCounter::Binary(c) => c.int_max().and_then(crate::format::binary::IntMax::maxima),
            _ => None,
        };
        Ok(StreamSummary {
            rows,
            bytes: self.bytes,
            fingerprint: self.fingerprint.map(Fingerprinter::finish),
            int_max,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gatherer_makes_blocks_and_keeps_bytes() {
        let mut g = BlockGatherer::new();
        let item = Bytes::from(vec![b'x'; 1000]);
        let mut out = Vec::new();
        for _ in 0..600 {
            if let Some(b) = g.push(item.clone()) {
                assert!(b.len() >= BLOCK_SIZE);
                out.extend_from_slice(&b);
            }
        }
        out.extend_from_slice(&g.flush().unwrap());
        assert_eq!(out.len(), 600_000);
        assert!(g.flush().is_none());
    }

    #[test]
    fn large_items_pass_through_uncopied_after_what_was_gathered() {
        let mut g = BlockGatherer::new();
        assert!(g.push(Bytes::from_static(b"1,a\n")).is_none());
        let big = Bytes::from(vec![b'y'; BLOCK_SIZE * 3]);
        let first = g.push(big.clone()).unwrap();
        assert_eq!(&first[..], b"1,a\n");
        let second = g.take_waiting().unwrap();
        assert_eq!(second.as_ptr(), big.as_ptr(), "the large item is not copied");
        assert!(g.take_waiting().is_none());
        // With nothing gathered, it comes back at once.
        let again = g.push(big.clone()).unwrap();
        assert_eq!((again.as_ptr(), again.len()), (big.as_ptr(), big.len()));
        assert!(g.take_waiting().is_none() && g.flush().is_none());
    }

    #[test]
    fn stages_summarise() {
        let mut s = CsvStages::new(true);
        s.feed(b"id\n1\n");
        s.feed(b"2\n");
        let sum = s.finish().unwrap();
        assert_eq!(sum.rows, 2);
        assert_eq!(sum.csv_bytes, 7);
        assert_eq!(sum.fingerprint.unwrap().records, 2);
    }

    #[test]
    fn stream_stages_count_each_format() {
        let mut s = StreamStages::new(WireFormat::Text, true);
        s.feed(b"1\ta\\nb\n2\t");
        s.feed(b"\\N\n");
        let sum = s.finish().unwrap();
        assert_eq!((sum.rows, sum.bytes, sum.fingerprint), (2, 12, None));
        let mut s = StreamStages::new(WireFormat::Text, false);
        s.feed(b"1\n2");
        assert!(s.finish().is_err());
        let mut s = StreamStages::new(WireFormat::Csv, true);
        s.feed(b"id\n1\n");
        let sum = s.finish().unwrap();
        assert_eq!((sum.rows, sum.fingerprint.unwrap().records), (1, 1));
    }
}
