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
use crate::conn::read_gate::{LARGE_ROW, LargeRows};
use crate::conn::session::Session;
use crate::error::{Error, Result};

/// The blocks of one `COPY ... TO STDOUT`: items gathered into blocks of
/// about [`BLOCK_SIZE`](super::stages::BLOCK_SIZE), each wait raced against cancellation.
///
/// A block must be let go of (dropped, or its bytes fully handed on) before
/// `next` is called again: the connection reads nothing past a row of
/// [`LARGE_ROW`] or more until then (see [`crate::conn::read_gate`]), so the
/// next large row is read into the buffer the last one left.
pub struct CopyOutBlocks<'a> {
    session: &'a Session,
    stream: Pin<Box<CopyOutStream>>,
    gather: BlockGatherer,
    ended: bool,
    /// The COPY's large rows, counted by the session's stream.
    large_rows: LargeRows,
    /// Large rows received and not yet released to the stream.
    large_received: usize,
}

impl<'a> CopyOutBlocks<'a> {
    /// Starts the COPY.
    ///
    /// # Errors
    /// The server refused the statement, or a signal arrived.
    pub async fn start(session: &'a Session, copy_sql: &str) -> Result<CopyOutBlocks<'a>> {
        // Counted from before the statement is sent, so every row is.
        let large_rows = session.count_large_rows();
        let stream = session.request(session.copy_out(copy_sql), "COPY TO STDOUT failed").await?;
        Ok(CopyOutBlocks {
            session,
            stream: Box::pin(stream),
            gather: BlockGatherer::new(),
            ended: false,
            large_rows,
            large_received: 0,
        })
    }

    /// The next block; `None` once the COPY ended.
    ///
    /// # Errors
    /// The stream broke (the server's reason when it sent one), or a signal arrived.
    pub async fn next(&mut self) -> Result<Option<Bytes>> {
        // The caller let go of the blocks returned so far: the large rows in
        // them are released, but not one still waiting in the gatherer.
        let waiting =
            usize::from(self.gather.waiting.as_ref().is_some_and(|b| b.len() >= LARGE_ROW));
        self.large_rows.release(self.large_received - waiting);
        self.large_received = waiting;
        if let Some(block) = self.gather.take_waiting() {
            return Ok(Some(block));
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
                    if item.len() >= LARGE_ROW {
                        self.large_received += 1;
                    }
                    if let Some(block) = self.gather.push(item) {
                        return Ok(Some(block));
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
