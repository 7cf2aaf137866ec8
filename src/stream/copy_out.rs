//! `COPY ... TO STDOUT` as blocks: the server's stream gathered into blocks,
//! each wait raced against cancellation, each block run through the
//! [`super::stages`] and handed to a sink.
//!
//! The COPY connection and this consumer run on one current-thread runtime; the
//! sink (compression, disk) runs on its own thread behind a bounded queue.

use std::pin::Pin;

use bytes::Bytes;
use futures::StreamExt;
use tokio_postgres::CopyOutStream;

use super::stages::{BlockGatherer, Stages};
use crate::conn::session::{ReadPause, Session};
use crate::error::{Error, Result};

/// A row at least this large stops the connection from reading ahead while
/// its block is out. tokio-postgres reads whole messages ahead of its
/// consumer (up to three, each into a fresh buffer while the previous one is
/// still held): with 100 MB rows that is 400 MB. Paused, the server waits on
/// the socket instead, and the next row is read into the buffer the last one
/// left. Smaller rows keep the read-ahead, which overlaps reading and writing.
pub const LARGE_ITEM: usize = 8 << 20;

/// The blocks of one `COPY ... TO STDOUT`: items gathered into blocks of
/// about [`BLOCK_SIZE`](super::stages::BLOCK_SIZE), each wait raced against cancellation.
///
/// A block must be let go of (dropped, or its bytes fully handed on) before
/// `next` is called again: a block of [`LARGE_ITEM`] or more pauses the
/// session's reading until then.
pub struct CopyOutBlocks<'a> {
    session: &'a Session,
    stream: Pin<Box<CopyOutStream>>,
    gather: BlockGatherer,
    ended: bool,
    /// Set while a large block is out (see [`CopyOutBlocks::hold`]).
    paused: Option<ReadPause>,
}

impl<'a> CopyOutBlocks<'a> {
    /// Starts the COPY.
    ///
    /// # Errors
    /// The server refused the statement, or a signal arrived.
    pub async fn start(session: &'a Session, copy_sql: &str) -> Result<CopyOutBlocks<'a>> {
        let stream = session.request(session.copy_out(copy_sql), "COPY TO STDOUT failed").await?;
        Ok(CopyOutBlocks {
            session,
            stream: Box::pin(stream),
            gather: BlockGatherer::new(),
            ended: false,
            paused: None,
        })
    }

    /// The next block; `None` once the COPY ended.
    ///
    /// # Errors
    /// The stream broke (the server's reason when it sent one), or a signal arrived.
    pub async fn next(&mut self) -> Result<Option<Bytes>> {
        // The caller let go of the last block: the connection may read on.
        self.paused = None;
        if let Some(block) = self.gather.take_waiting() {
            return Ok(Some(self.hold(block)));
        }
        if self.ended {
            return Ok(None);
        }
        if let Some(signal) = crate::cancel::reason() {
            self.session.cancel_server().await;
            return Err(Error::Interrupted { signal });
        }
        let cancelled = crate::cancel::cancelled();
        let mut cancelled = std::pin::pin!(cancelled);
        loop {
            // The stream first: while rows are ready, cancellation costs nothing
            // per row (it is checked once per block above); when the stream
            // waits on the server, both are awaited, so a stalled COPY still
            // stops on a signal.
            let item = tokio::select! {
                biased;
                item = self.stream.next() => item,
                signal = &mut cancelled => {
                    self.session.cancel_server().await;
                    return Err(Error::Interrupted { signal });
                }
            };
            match item {
                Some(Ok(item)) => {
                    // Paused at once, before the item is gathered (a copy of
                    // it, for a row split over messages): meanwhile the
                    // connection, on another thread, would read on into a
                    // fresh buffer for the next large row.
                    if item.len() >= LARGE_ITEM && self.paused.is_none() {
                        self.paused = Some(self.session.pause_reading());
                    }
                    if let Some(block) = self.gather.push(item) {
                        return Ok(Some(self.hold(block)));
                    }
                }
                Some(Err(e)) => {
                    return Err(self.session.db_error("the COPY stream broke", e).await);
                }
                None => {
                    self.ended = true;
                    return Ok(self.gather.flush());
                }
            }
        }
    }

    /// Pauses the connection's reading while a block of [`LARGE_ITEM`] or
    /// more is out or waiting, until the next call to `next` (or drop).
    fn hold(&mut self, block: Bytes) -> Bytes {
        let waiting = self.gather.waiting.as_ref().map_or(0, Bytes::len);
        // Not paused again when already paused: replacing the pause would
        // drop the old one after the new one is set, and that drop resumes.
        if block.len().max(waiting) >= LARGE_ITEM && self.paused.is_none() {
            self.paused = Some(self.session.pause_reading());
        }
        block
    }
}

/// Runs `COPY ... TO STDOUT` and passes each block through `stages` and then
/// to `on_block` (the sink).
///
/// # Errors
/// The server's error, the sink's error, or `Interrupted` when a signal arrived.
pub async fn copy_out<S: Stages>(
    session: &Session,
    copy_sql: &str,
    stages: &mut S,
    mut on_block: impl FnMut(Bytes, &S) -> Result<()>,
) -> Result<()> {
    let mut blocks = CopyOutBlocks::start(session, copy_sql).await?;
    while let Some(block) = blocks.next().await? {
        stages.feed(&block);
        on_block(block, stages)?;
    }
    Ok(())
}
