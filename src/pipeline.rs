//! The one streaming pipeline: COPY stream → blocks → stages (record count,
//! sha256, fingerprint) → a sink, bounded, with backpressure.
//!
//! tokio-postgres yields one item per CopyData message, which is one row; per
//! item work would be paid millions of times (PERF-NOTES.md), so items are
//! gathered into blocks of [`BLOCK_SIZE`] before any stage sees them. The
//! COPY connection and this consumer run on one current-thread runtime; the
//! sink (compression, disk) runs on its own thread behind a bounded queue.

use bytes::{Bytes, BytesMut};
use futures::StreamExt;

use crate::csvfmt::RecordScanner;
use crate::digest::{Fingerprint, Fingerprinter, Sha256Stage};
use crate::error::{Error, Result};

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

/// The stages every CSV stream goes through: record counter, sha256 and,
/// when asked, the fingerprint. Feed blocks, then `finish`.
pub struct CsvStages {
    scanner: RecordScanner,
    sha: Sha256Stage,
    fingerprint: Option<Fingerprinter>,
}

impl CsvStages {
    pub fn new(with_fingerprint: bool) -> Self {
        CsvStages {
            scanner: RecordScanner::new(),
            sha: Sha256Stage::new(),
            fingerprint: with_fingerprint.then(Fingerprinter::new),
        }
    }

    /// Runs every stage over one block.
    pub fn feed(&mut self, block: &[u8]) {
        self.sha.feed(block);
        match &mut self.fingerprint {
            Some(f) => self.scanner.feed_with(block, |piece, ends| f.piece(piece, ends)),
            None => self.scanner.feed(block),
        }
    }

    /// Records so far, the header included (for progress).
    pub fn records(&self) -> u64 {
        self.scanner.records()
    }

    /// Bytes so far.
    pub fn bytes(&self) -> u64 {
        self.sha.bytes()
    }

    /// Checks the stream's shape and returns the summary.
    ///
    /// # Errors
    /// The CSV ends inside quotes or mid-record, or has no header.
    pub fn finish(self) -> std::result::Result<CsvSummary, crate::csvfmt::CsvShapeError> {
        let rows = self.scanner.finish()?;
        let (csv_sha256, csv_bytes) = self.sha.finish();
        Ok(CsvSummary {
            rows,
            csv_bytes,
            csv_sha256,
            fingerprint: self.fingerprint.map(Fingerprinter::finish),
        })
    }
}

/// Gathers small items into blocks of about [`BLOCK_SIZE`] bytes.
#[derive(Default)]
pub struct BlockGatherer {
    buf: BytesMut,
}

impl BlockGatherer {
    pub fn new() -> Self {
        BlockGatherer { buf: BytesMut::with_capacity(BLOCK_SIZE) }
    }

    /// Adds an item; returns a full block when there is one.
    pub fn push(&mut self, item: &[u8]) -> Option<Bytes> {
        self.buf.extend_from_slice(item);
        if self.buf.len() >= BLOCK_SIZE {
            let block = self.buf.split().freeze();
            self.buf.reserve(BLOCK_SIZE);
            Some(block)
        } else {
            None
        }
    }

    /// The last, partial block.
    pub fn flush(&mut self) -> Option<Bytes> {
        (!self.buf.is_empty()).then(|| self.buf.split().freeze())
    }
}

/// Runs `COPY ... TO STDOUT` and passes each block through `stages` and then
/// to `on_block` (the sink). Races the stream against cancellation.
///
/// # Errors
/// The server's error (with `what` as context), the sink's error, or
/// `Interrupted` when a signal arrived.
pub async fn copy_out(
    session: &crate::connect::Session,
    copy_sql: &str,
    stages: &mut CsvStages,
    mut on_block: impl FnMut(Bytes, &CsvStages) -> Result<()>,
) -> Result<()> {
    let stream = tokio::select! {
        s = session.client.copy_out(copy_sql) => match s {
            Ok(s) => s,
            Err(e) => return Err(session.db_error("COPY TO STDOUT failed", e).await),
        },
        signal = crate::cancel::cancelled() => return Err(Error::Interrupted { signal }),
    };
    let mut stream = std::pin::pin!(stream);
    let mut gather = BlockGatherer::new();
    let cancelled = crate::cancel::cancelled();
    let mut cancelled = std::pin::pin!(cancelled);
    loop {
        // The stream first: while rows are ready, cancellation costs nothing per
        // row (it is checked once per block below); when the stream waits on the
        // server, both are awaited, so a stalled COPY still stops on a signal.
        let item = tokio::select! {
            biased;
            item = stream.next() => item,
            signal = &mut cancelled => return Err(Error::Interrupted { signal }),
        };
        match item {
            Some(Ok(bytes)) => {
                if let Some(block) = gather.push(&bytes) {
                    if let Some(signal) = crate::cancel::reason() {
                        return Err(Error::Interrupted { signal });
                    }
                    stages.feed(&block);
                    on_block(block, stages)?;
                }
            }
            Some(Err(e)) => return Err(session.db_error("the COPY stream broke", e).await),
            None => break,
        }
    }
    if let Some(block) = gather.flush() {
        stages.feed(&block);
        on_block(block, stages)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gatherer_makes_blocks_and_keeps_bytes() {
        let mut g = BlockGatherer::new();
        let item = vec![b'x'; 1000];
        let mut out = Vec::new();
        for _ in 0..600 {
            if let Some(b) = g.push(&item) {
                assert!(b.len() >= BLOCK_SIZE);
                out.extend_from_slice(&b);
            }
        }
        out.extend_from_slice(&g.flush().unwrap());
        assert_eq!(out.len(), 600_000);
        assert!(g.flush().is_none());
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
}
