//! The one streaming pipeline: COPY stream → blocks → stages (record count,
//! sha256, fingerprint) → a sink, bounded, with backpressure.
//!
//! tokio-postgres yields one item per CopyData message, which is one row; per
//! item work would be paid millions of times (PERF-NOTES.md), so items are
//! gathered into blocks of [`BLOCK_SIZE`](stages::BLOCK_SIZE) before any stage sees them. The
//! COPY connection and this consumer run on one current-thread runtime; the
//! sink (compression, disk) runs on its own thread behind a bounded queue.
//!
//! [`stages`] is pure (bytes in, counts and digests out); [`copy_out`] drives
//! the stages from a server's COPY stream.

pub mod copy_out;
pub mod stages;
