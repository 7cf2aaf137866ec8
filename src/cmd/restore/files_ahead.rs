//! The thread that reads a one-transaction restore's files ahead of the
//! load, in load order: each file opened, checked and converted
//! ([`CheckedFile`]) into a [`ReadAhead`] queue the load takes from.
//!
//! The target loads a small table in about a millisecond, and between one
//! table's end and the next one's first row it waits for the client. Read
//! ahead on the load's own thread, a file's opening, decompression, checks
//! and conversion still ran in that gap whenever the next COPY's start
//! arrived while they ran; on a thread of their own they overlap the
//! target's work, and the load's thread only sends.

use std::sync::Arc;
use std::thread::JoinHandle;

use super::checked_file::{CheckedFile, FileChecked, WireBlock};
use super::to_server::ToServer;
use crate::error::{Error, Result};
use crate::format::compression::Compression;
use crate::format::encryption::Identities;
use crate::load::read_ahead::ReadAhead;
use crate::storage::location::Location;
use crate::storage::manifest::ManifestTable;

/// The queue the load takes blocks from.
pub type FileQueue = ReadAhead<FileChecked, WireBlock>;

/// One table's file to read: `index` is the table's index in the load plan.
pub struct FileJob {
    pub index: usize,
    pub table: ManifestTable,
    pub to_server: ToServer,
}

/// The reading thread; dropping it stops and joins the thread.
pub struct FilesAhead {
    queue: Arc<FileQueue>,
    thread: Option<JoinHandle<()>>,
}

impl FilesAhead {
    /// Starts reading `jobs`, in order, from `dir`.
    ///
    /// # Errors
    /// The thread cannot be started.
    pub fn start(
        dir: Location,
        compression: Compression,
        keys: Option<Identities>,
        jobs: Vec<FileJob>,
    ) -> Result<FilesAhead> {
        let queue = Arc::new(FileQueue::default());
        let q = queue.clone();
        let thread = std::thread::Builder::new()
            .name("pgbarge-files".into())
            .spawn(move || {
                // Closes the queue however the thread ends, a panic
                // included: the load then fails at the table that did not
                // come instead of waiting for it.
                let _closing = Closing(&q);
                for job in jobs {
                    let result =
                        read_file(&q, &dir, compression, keys.as_ref(), job.table, job.to_server);
                    let failed = result.is_err();
                    q.end(job.index, result);
                    if failed {
                        break;
                    }
                }
            })
            .map_err(|e| Error::runtime(format!("cannot start the thread reading files: {e}")))?;
        Ok(FilesAhead { queue, thread: Some(thread) })
    }

    pub fn queue(&self) -> &FileQueue {
        &self.queue
    }
}

impl Drop for FilesAhead {
    fn drop(&mut self) {
        // A thread waiting for room stops at once; one reading a block
        // stops after it.
        self.queue.stop();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

struct Closing<'a>(&'a FileQueue);

impl Drop for Closing<'_> {
    fn drop(&mut self) {
        self.0.close();
    }
}

/// Queues one file's blocks as they are read, waiting for room.
fn read_file(
    queue: &FileQueue,
    dir: &Location,
    compression: Compression,
    keys: Option<&Identities>,
    table: ManifestTable,
    to_server: ToServer,
) -> Result<FileChecked> {
    let mut file = CheckedFile::open(dir, table, compression, keys, to_server)?;
    while let Some(block) = file.next_block_blocking()? {
        queue.pass_blocking(block)?;
    }
    file.finish()
}
