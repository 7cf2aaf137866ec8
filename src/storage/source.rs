//! Where bytes come from when they are read back: a backup data file,
//! decrypted (an encrypted backup's) and decompressed on its own thread into
//! blocks of CSV.
//!
//! The mirror of [`crate::storage::sink::FileSink`]: a reader thread hashes the file's
//! bytes as they are read (the file sha256), decompresses them and hands out
//! blocks of [`BLOCK_SIZE`] through a bounded queue, so decompression runs
//! beside whatever consumes the CSV (the record counter and sha256 of verify,
//! the COPY of restore) and memory stays bounded. Each file is read once.
//! Nothing here interprets the CSV.

use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

use bytes::{Bytes, BytesMut};
use tokio::sync::mpsc;

use crate::error::{Error, Result};
use crate::format::compression::Compression;
use crate::format::digest::Sha256Stage;
use crate::format::encryption::{Identities, OpenError};
use crate::storage::sink::FileSummary;
use crate::stream::stages::BLOCK_SIZE;

/// Blocks decompressed ahead of the consumer.
const QUEUE_BLOCKS: usize = 4;

/// A data file being read. Take blocks with [`FileSource::next_block`] (or
/// its async twin) until `None`, then call [`FileSource::finish`] for the
/// file's size and sha256. Dropping it stops the reader thread.
pub struct FileSource {
    rx: mpsc::Receiver<Result<Bytes>>,
    /// `None` when the reader failed; its error went through the queue.
    handle: Option<JoinHandle<Option<FileSummary>>>,
    stop: Arc<AtomicBool>,
    path: PathBuf,
}

impl FileSource {
    /// Starts the reader thread, which first opens its bytes with `open` (on
    /// that thread: a download needs the thread's own runtime). With `keys`,
    /// the file is an age file, opened with them before it is decompressed.
    ///
    /// # Errors
    /// The thread cannot be started; `open`'s error arrives as the first block.
    pub fn start(
        path: PathBuf,
        compression: Compression,
        keys: Option<Identities>,
        open: impl FnOnce() -> Result<Box<dyn Read + Send>> + Send + 'static,
    ) -> Result<FileSource> {
        let (tx, rx) = mpsc::channel(QUEUE_BLOCKS);
        let stop = Arc::new(AtomicBool::new(false));
        let (p, s) = (path.clone(), stop.clone());
        let handle = std::thread::Builder::new()
            .name("pgbarge-reader".into())
            .spawn(move || {
                match open()
                    .and_then(|file| read_blocks(file, &p, compression, keys.as_ref(), &tx, &s))
                {
                    Ok(summary) => Some(summary),
                    Err(e) => {
                        // The consumer sees the error as its next block.
                        let _ = tx.blocking_send(Err(e));
                        None
                    }
                }
            })
            .map_err(|e| Error::runtime(format!("cannot start a reader thread: {e}")))?;
        Ok(FileSource { rx, handle: Some(handle), stop, path })
    }

    /// The next block of CSV, waiting for it; `None` at the end.
    /// For use outside an async runtime.
    ///
    /// # Errors
    /// The file cannot be read or does not decompress (see [`read_blocks`]).
    pub fn next_block(&mut self) -> Option<Result<Bytes>> {
        self.rx.blocking_recv()
    }

    /// The next block of CSV, for async consumers.
    ///
    /// # Errors
    /// As [`FileSource::next_block`].
    pub async fn next_block_async(&mut self) -> Option<Result<Bytes>> {
        self.rx.recv().await
    }

    /// The file's size and sha256, once every block was taken.
    ///
    /// # Errors
    /// The reader stopped early (its error was handed out as a block).
    pub fn finish(mut self) -> Result<FileSummary> {
        let handle = self.handle.take().expect("reader running");
        match handle.join() {
            Ok(Some(summary)) => Ok(summary),
            Ok(None) => Err(Error::runtime(format!(
                "reading {} stopped before its end",
                self.path.display()
            ))),
            Err(_) => Err(Error::runtime(format!("reader of {} panicked", self.path.display()))),
        }
    }
}

impl Drop for FileSource {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Closing the queue unblocks a reader waiting to send.
        self.rx.close();
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// Reads the whole file, hashing every byte, and sends its decrypted and
/// decompressed content in blocks. A decryption or decompression failure is
/// a damaged file (`Error::Difference`, without the path: the caller adds
/// it); a failing read is an I/O error.
fn read_blocks(
    file: Box<dyn Read + Send>,
    path: &Path,
    compression: Compression,
    keys: Option<&Identities>,
    tx: &mpsc::Sender<Result<Bytes>>,
    stop: &AtomicBool,
) -> Result<FileSummary> {
    let mut hashing = HashingReader { inner: file, sha: Sha256Stage::new(), failed: None };
    let outcome = {
        let mut plain: Box<dyn Read + '_> = match keys {
            None => Box::new(&mut hashing),
            Some(keys) => match keys.open(BufReader::new(&mut hashing)) {
                Ok(r) => Box::new(r),
                Err(OpenError::Io(e)) => return Err(Error::io("cannot read", path, e)),
                Err(OpenError::NoMatchingKey) => {
                    // The manifest opened with these keys, so this file was
                    // encrypted to someone else: it is not the backup's.
                    return Err(Error::difference(
                        "is not encrypted to the backup's recipients (none of the keys given opens it)",
                    ));
                }
                Err(OpenError::Damaged(e)) => {
                    return Err(Error::difference(format!("is not a readable age file: {e}")));
                }
            },
        };
        match compression {
            Compression::None => pump(&mut plain, tx, stop),
            Compression::Zstd { .. } => {
                let mut decoder = match zstd::stream::read::Decoder::new(plain) {
                    Ok(d) => d,
                    Err(e) => return Err(Error::io("cannot start decompressing", path, e)),
                };
                let r = pump(&mut decoder, tx, stop);
                drop(decoder);
                r
            }
        }
    };
    match outcome {
        Ok(true) => {}
        // The consumer went away; nothing to report.
        Ok(false) => return Err(Error::runtime(format!("reading {} stopped", path.display()))),
        Err(e) => {
            return Err(match hashing.failed.take() {
                Some(io) => Error::io("cannot read", path, io),
                // The caller names the file; this says what is wrong with it.
                // age reports a chunk that fails its authentication as
                // invalid data; zstd's own errors are of another kind.
                None if keys.is_some()
                    && matches!(
                        e.kind(),
                        std::io::ErrorKind::InvalidData | std::io::ErrorKind::UnexpectedEof
                    ) =>
                {
                    Error::difference(format!(
                        "does not decrypt: {e} (age's authentication failed: the file was changed or cut short)"
                    ))
                }
                None => Error::difference(format!("does not decompress: {e}")),
            });
        }
    }
    // zstd stops at the end of its last frame; hash anything after it too,
    // so the file sha256 covers every byte on disk.
    std::io::copy(&mut hashing, &mut std::io::sink())
        .map_err(|e| Error::io("cannot read", path, e))?;
    let (file_sha256, file_bytes) = hashing.sha.finish();
    Ok(FileSummary { path: path.to_path_buf(), file_bytes, file_sha256 })
}

/// Sends `BLOCK_SIZE` blocks read from `r` until its end (true), or until the
/// consumer is gone or asked to stop (false).
fn pump(
    r: &mut impl Read,
    tx: &mpsc::Sender<Result<Bytes>>,
    stop: &AtomicBool,
) -> std::io::Result<bool> {
    loop {
        let mut block = BytesMut::zeroed(BLOCK_SIZE);
        let mut filled = 0;
        while filled < BLOCK_SIZE {
            match r.read(&mut block[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if filled == 0 {
            return Ok(true);
        }
        block.truncate(filled);
        if stop.load(Ordering::Relaxed) || tx.blocking_send(Ok(block.freeze())).is_err() {
            return Ok(false);
        }
        if filled < BLOCK_SIZE {
            return Ok(true);
        }
    }
}

/// Hashes what is read through it and remembers an I/O failure of the file
/// itself, so it is not mistaken for damaged compressed data.
struct HashingReader {
    inner: Box<dyn Read + Send>,
    sha: Sha256Stage,
    failed: Option<std::io::Error>,
}

impl Read for HashingReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self.inner.read(buf) {
            Ok(n) => {
                self.sha.feed(&buf[..n]);
                Ok(n)
            }
            Err(e) => {
                let kind = e.kind();
                let msg = e.to_string();
                self.failed = Some(e);
                Err(std::io::Error::new(kind, msg))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::digest::sha256_hex as sha;

    fn read_all(path: &Path, c: Compression) -> (Result<Vec<u8>>, Option<Result<FileSummary>>) {
        let dir = crate::storage::location::Location::Local(path.parent().unwrap().to_path_buf());
        let name = path.file_name().unwrap().to_str().unwrap();
        let mut src = match dir.open(name, c, None) {
            Ok(s) => s,
            Err(e) => return (Err(e), None),
        };
        let mut out = Vec::new();
        while let Some(b) = src.next_block() {
            match b {
                Ok(b) => out.extend_from_slice(&b),
                Err(e) => return (Err(e), None),
            }
        }
        (Ok(out), Some(src.finish()))
    }

    #[test]
    fn decompresses_and_hashes_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let data: Vec<u8> =
            (0..1_000_000u32).flat_map(|i| format!("{i},x\n").into_bytes()).collect();
        let z = zstd::encode_all(&data[..], 3).unwrap();
        let p = dir.path().join("f.csv.zst");
        std::fs::write(&p, &z).unwrap();
        let (out, sum) = read_all(&p, Compression::Zstd { level: 3 });
        assert_eq!(out.unwrap(), data);
        let sum = sum.unwrap().unwrap();
        assert_eq!(sum.file_bytes, z.len() as u64);
        assert_eq!(sum.file_sha256, sha(&z));

        let p = dir.path().join("f.csv");
        std::fs::write(&p, &data).unwrap();
        let (out, sum) = read_all(&p, Compression::None);
        assert_eq!(out.unwrap(), data);
        assert_eq!(sum.unwrap().unwrap().file_sha256, sha(&data));
    }

    #[test]
    fn truncated_and_damaged_files_are_differences() {
        let dir = tempfile::tempdir().unwrap();
        let data: Vec<u8> = (0..100_000u32).flat_map(|i| format!("{i},y\n").into_bytes()).collect();
        let z = zstd::encode_all(&data[..], 3).unwrap();
        let p = dir.path().join("t.csv.zst");
        std::fs::write(&p, &z[..z.len() / 2]).unwrap();
        let (out, _) = read_all(&p, Compression::Zstd { level: 3 });
        let e = out.unwrap_err();
        assert_eq!(e.class(), crate::error::Class::Difference, "{e:?}");
        assert!(crate::error::render(&e).contains("does not decompress"), "{e:?}");

        let mut bad = z.clone();
        bad.extend_from_slice(b"trailing garbage");
        std::fs::write(&p, &bad).unwrap();
        let (out, _) = read_all(&p, Compression::Zstd { level: 3 });
        assert_eq!(out.unwrap_err().class(), crate::error::Class::Difference);
    }

    #[test]
    fn missing_file_is_a_difference_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let (out, _) = read_all(&dir.path().join("x.csv"), Compression::None);
        let e = out.unwrap_err();
        assert_eq!(e.class(), crate::error::Class::Difference);
        assert!(crate::error::render(&e).contains("x.csv: missing"), "{e}");
    }
}
