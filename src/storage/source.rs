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

use bytes::Bytes;
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
    reader: Reader,
    path: PathBuf,
}

enum Reader {
    /// A reader thread decrypting and decompressing ahead of the consumer.
    Thread {
        rx: mpsc::Receiver<Result<Bytes>>,
        /// `None` when the reader failed; its error went through the queue.
        handle: Option<JoinHandle<Option<FileSummary>>>,
        stop: Arc<AtomicBool>,
    },
    /// A small file read whole, decompressed block by block on the
    /// consumer's thread (see [`FileSource::read_small`]).
    InMemory(InMemory),
}

struct InMemory {
    /// The file's content; `None` once its end was reached or its error
    /// handed out.
    plain: Option<Box<dyn Read + Send>>,
    /// The file's size and sha256 (the whole file was read at once).
    summary: FileSummary,
    /// Every byte handed out, the end seen, no error.
    done: bool,
    /// What a block starts at: the content's size where it is known.
    capacity: usize,
}

/// Files up to this size on disk are read whole and decompressed on the
/// consumer's thread, without a reader thread of their own: a restore of a
/// thousand small tables started a thousand threads (a sixth of the
/// client's CPU), for files read in microseconds. The decompressed data is
/// still handed out a block at a time, so a small file that decompresses
/// to gigabytes holds no more memory than a large one.
pub const SMALL_FILE: u64 = 64 * 1024;

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
        Ok(FileSource { reader: Reader::Thread { rx, handle: Some(handle), stop }, path })
    }

    /// A small file's bytes, read whole (see [`SMALL_FILE`]), unencrypted:
    /// hashed at once, decompressed a block at a time by
    /// [`FileSource::next_block`] on the caller's thread. Errors are those of
    /// the reader thread, with the same words.
    ///
    /// # Errors
    /// zstd's decoder cannot start.
    pub fn read_small(
        path: PathBuf,
        compression: Compression,
        bytes: Vec<u8>,
    ) -> Result<FileSource> {
        let summary = FileSummary {
            path: path.clone(),
            file_bytes: bytes.len() as u64,
            file_sha256: crate::format::digest::sha256_hex(&bytes),
        };
        // The first frame's recorded size (a small file is one frame), or a
        // guess that read_block grows from if it is wrong.
        let capacity = match compression {
            Compression::None => bytes.len(),
            Compression::Zstd { .. } => zstd::zstd_safe::get_frame_content_size(&bytes)
                .ok()
                .flatten()
                .map_or(4 * bytes.len(), |n| usize::try_from(n).unwrap_or(BLOCK_SIZE)),
        }
        .max(1);
        let file = std::io::Cursor::new(bytes);
        let plain: Box<dyn Read + Send> = match compression {
            Compression::None => Box::new(file),
            // The decoder's own buffer is skipped: the bytes are in memory.
            Compression::Zstd { .. } => Box::new(
                zstd::stream::read::Decoder::with_buffer(file)
                    .map_err(|e| Error::io("cannot start decompressing", &path, e))?,
            ),
        };
        let reader = InMemory { plain: Some(plain), summary, done: false, capacity };
        Ok(FileSource { reader: Reader::InMemory(reader), path })
    }

    /// The next block of CSV, waiting for it; `None` at the end.
    /// For use outside an async runtime.
    ///
    /// # Errors
    /// The file cannot be read or does not decompress (see [`read_blocks`]).
    pub fn next_block(&mut self) -> Option<Result<Bytes>> {
        match &mut self.reader {
            Reader::Thread { rx, .. } => rx.blocking_recv(),
            Reader::InMemory(m) => m.next_block(),
        }
    }

    /// The next block of CSV, for async consumers.
    ///
    /// # Errors
    /// As [`FileSource::next_block`].
    pub async fn next_block_async(&mut self) -> Option<Result<Bytes>> {
        match &mut self.reader {
            Reader::Thread { rx, .. } => rx.recv().await,
            Reader::InMemory(m) => m.next_block(),
        }
    }

    /// The file's size and sha256, once every block was taken.
    ///
    /// # Errors
    /// The reader stopped early (its error was handed out as a block).
    pub fn finish(mut self) -> Result<FileSummary> {
        let handle = match &mut self.reader {
            Reader::Thread { handle, .. } => handle.take().expect("reader running"),
            Reader::InMemory(m) if m.done => return Ok(m.summary.clone()),
            Reader::InMemory(_) => {
                return Err(Error::runtime(format!(
                    "reading {} stopped before its end",
                    self.path.display()
                )));
            }
        };
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
        let Reader::Thread { rx, handle, stop } = &mut self.reader else { return };
        stop.store(true, Ordering::SeqCst);
        // Closing the queue unblocks a reader waiting to send.
        rx.close();
        if let Some(h) = handle.take() {
            let _ = h.join();
        }
    }
}

impl InMemory {
    /// As the reader thread's [`pump`]: blocks of [`BLOCK_SIZE`], the last
    /// one shorter; a decompression failure is a damaged file.
    fn next_block(&mut self) -> Option<Result<Bytes>> {
        let read = read_block(self.plain.as_mut()?, self.capacity);
        if !matches!(&read, Ok(Some(b)) if b.len() == BLOCK_SIZE) {
            self.done = read.is_ok();
            self.plain = None;
        }
        read.map_err(|e| Error::difference(format!("does not decompress: {e}"))).transpose()
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
        let Some(block) = read_block(r, BLOCK_SIZE)? else { return Ok(true) };
        let last = block.len() < BLOCK_SIZE;
        if stop.load(Ordering::Relaxed) || tx.blocking_send(Ok(block)).is_err() {
            return Ok(false);
        }
        if last {
            return Ok(true);
        }
    }
}

/// The next block read from `r`: [`BLOCK_SIZE`] bytes, fewer only at the
/// end; `None` when nothing was left. The block starts at `capacity` bytes
/// and grows as needed: a small file's only block would otherwise take (and
/// zero, and fault in) a whole `BLOCK_SIZE` for a few kilobytes, and keep
/// it while queued for the load.
fn read_block(r: &mut impl Read, capacity: usize) -> std::io::Result<Option<Bytes>> {
    let mut block = Vec::with_capacity(capacity.min(BLOCK_SIZE));
    // read_to_end retries on Interrupted.
    Read::take(&mut *r, BLOCK_SIZE as u64).read_to_end(&mut block)?;
    Ok((!block.is_empty()).then(|| Bytes::from(block)))
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
    use crate::storage::location::Location;

    fn read_all(path: &Path, c: Compression) -> (Result<Vec<u8>>, Option<Result<FileSummary>>) {
        let dir = Location::Local(path.parent().unwrap().to_path_buf());
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

    /// A file up to SMALL_FILE is read on the caller's thread: the same
    /// blocks, size and sha256 as the reader thread gives, a file that
    /// decompresses to many blocks still handed out a block at a time, and
    /// the same differences for a cut or extended file.
    #[test]
    fn small_files_read_without_a_thread_give_what_the_thread_gives() {
        let dir = tempfile::tempdir().unwrap();
        let zstd = Compression::Zstd { level: 3 };
        // 3 MiB of one repeated line: many blocks from a file of a few kB.
        let data: Vec<u8> = b"1,same\n".iter().copied().cycle().take(3 << 20).collect();
        let z = zstd::encode_all(&data[..], 3).unwrap();
        assert!(z.len() as u64 <= SMALL_FILE);
        let p = dir.path().join("s.csv.zst");
        std::fs::write(&p, &z).unwrap();
        let mut src =
            Location::Local(dir.path().to_path_buf()).open("s.csv.zst", zstd, None).unwrap();
        assert!(matches!(src.reader, Reader::InMemory(_)));
        let mut blocks = Vec::new();
        while let Some(b) = src.next_block() {
            blocks.push(b.unwrap());
        }
        assert!(blocks[..blocks.len() - 1].iter().all(|b| b.len() == BLOCK_SIZE));
        assert_eq!(blocks.concat(), data);
        let sum = src.finish().unwrap();
        assert_eq!((sum.file_bytes, sum.file_sha256), (z.len() as u64, sha(&z)));

        // A file not read to its end has no summary.
        let mut src =
            Location::Local(dir.path().to_path_buf()).open("s.csv.zst", zstd, None).unwrap();
        src.next_block().unwrap().unwrap();
        assert!(src.finish().is_err());

        for bad in [z[..z.len() / 2].to_vec(), [&z[..], b"trailing garbage"].concat()] {
            std::fs::write(&p, &bad).unwrap();
            let (out, _) = read_all(&p, zstd);
            let e = out.unwrap_err();
            assert_eq!(e.class(), crate::error::Class::Difference, "{e:?}");
            assert!(crate::error::render(&e).contains("does not decompress"), "{e:?}");
        }
        std::fs::write(&p, b"").unwrap();
        let (out, sum) = read_all(&p, Compression::None);
        assert_eq!(out.unwrap(), b"");
        assert_eq!(sum.unwrap().unwrap().file_sha256, sha(b""));
    }

    /// A small table's one block holds about its own size, not a whole
    /// BLOCK_SIZE: the read-ahead queues many such blocks, counted by length.
    #[test]
    fn a_small_files_block_is_the_size_of_its_content() {
        let dir = tempfile::tempdir().unwrap();
        let data: Vec<u8> = (0..100).flat_map(|i| format!("{i},name {i}\n").into_bytes()).collect();
        let zstd = Compression::Zstd { level: 3 };
        // As backup writes a small file (its size in the frame), as a
        // stream encoder writes one (no size), and uncompressed.
        let with_size = crate::format::zstd_frames::compress_one_frame(&data, 3).unwrap();
        let without_size = zstd::encode_all(&data[..], 3).unwrap();
        for (name, bytes, compression, exact) in [
            ("a.csv.zst", &with_size, zstd, true),
            ("b.csv.zst", &without_size, zstd, false),
            ("c.csv", &data, Compression::None, true),
        ] {
            std::fs::write(dir.path().join(name), bytes).unwrap();
            let mut src =
                Location::Local(dir.path().to_path_buf()).open(name, compression, None).unwrap();
            let block = src.next_block().unwrap().unwrap();
            assert!(src.next_block().is_none());
            assert_eq!(block, data);
            let held = Vec::from(block).capacity();
            if exact {
                assert_eq!(held, data.len(), "{name}");
            } else {
                assert!(held <= 2 * data.len().max(4 * bytes.len()), "{name}: {held}");
            }
        }
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
