//! Where bytes land: a file written under a temporary name (its own, or its
//! folder's: a backup's `data.tmp/`), compressed (and, for an encrypted
//! backup, encrypted) on its own thread, and made durable and renamed into
//! place only once finished.
//!
//! Nothing finishes on drop: dropping a sink (an error, a signal) removes its
//! temporary file, and that is the rollback path. The zstd encoder is finished
//! explicitly, never on drop, so its errors are seen; so is the age stream,
//! whose last chunk is written only by `finish`.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::thread::JoinHandle;

use bytes::Bytes;

use crate::error::{Error, Result};
use crate::format::compression::Compression;
use crate::format::digest::Sha256Stage;
use crate::format::encryption::{Recipients, Sealer};
use crate::format::zstd_frames::FrameEncoder;
use crate::stream::stages::BLOCK_SIZE;

/// A file created private (0600) under `NAME.tmp`, renamed to `NAME` by
/// [`AtomicFile::commit`] after `sync_all`; removed if dropped before. Or,
/// in a folder that is renamed into place only once all its files are whole
/// ([`AtomicFile::create_unpublished`]), written under `NAME` itself.
pub struct AtomicFile {
    /// Where the bytes are written: `NAME.tmp`, or `NAME` in an unpublished folder.
    tmp: PathBuf,
    path: PathBuf,
    file: Option<File>,
    /// Synced (file and folder) and renamed at commit; otherwise the caller
    /// makes the filesystem durable at once later ([`sync_filesystem`]),
    /// after renaming the folder into place and before anything that says
    /// the file is complete is written.
    sync_at_commit: bool,
}

impl AtomicFile {
    /// Creates `path.tmp` exclusively.
    ///
    /// # Errors
    /// The OS error, naming the file.
    pub fn create(path: &Path) -> Result<Self> {
        Self::open(path, true)
    }

    /// As [`AtomicFile::create`], for a file in a folder that is itself
    /// the temporary name: a backup's `data.tmp/`, renamed to `data/` once
    /// every file is whole, then made durable by one [`sync_filesystem`]
    /// before the manifest is written (a thousand small tables must not
    /// cost a thousand device flushes, nor a thousand renames; no manifest,
    /// no backup). Written under `path` itself, created exclusively; commit
    /// neither syncs nor renames.
    ///
    /// # Errors
    /// The OS error, naming the file.
    pub fn create_unpublished(path: &Path) -> Result<Self> {
        Self::open(path, false)
    }

    fn open(path: &Path, sync_at_commit: bool) -> Result<Self> {
        let mut tmp = path.as_os_str().to_owned();
        if sync_at_commit {
            tmp.push(".tmp");
        }
        let tmp = PathBuf::from(tmp);
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(|e| Error::io("cannot create", &tmp, e))?;
        Ok(AtomicFile { tmp, path: path.to_path_buf(), file: Some(file), sync_at_commit })
    }

    /// Flushes to disk, renames into place, and fsyncs the folder; for an
    /// unpublished file, only closes it (its folder is renamed and synced).
    ///
    /// # Errors
    /// The OS error of the sync or rename, naming the file.
    pub fn commit(mut self) -> Result<PathBuf> {
        let file = self.file.take().expect("file present until commit");
        if !self.sync_at_commit {
            return Ok(std::mem::take(&mut self.path));
        }
        file.sync_all().map_err(|e| Error::io("cannot sync", &self.tmp, e))?;
        drop(file);
        std::fs::rename(&self.tmp, &self.path)
            .map_err(|e| Error::io("cannot rename into place", &self.path, e))?;
        sync_dir(self.path.parent().unwrap_or(Path::new(".")))?;
        Ok(std::mem::take(&mut self.path))
    }
}

/// Where a sink's bytes go: written, then made durable and visible under
/// their final name only by [`Destination::commit`]; dropping one before
/// that removes (or aborts) what was written.
pub trait Destination: Write + Send {
    /// The final name, for messages and the summary.
    fn name(&self) -> PathBuf;

    /// Makes the bytes durable under the final name.
    ///
    /// # Errors
    /// The sync, rename or upload failed.
    fn commit(self: Box<Self>) -> Result<PathBuf>;
}

impl Destination for AtomicFile {
    fn name(&self) -> PathBuf {
        self.path.clone()
    }

    fn commit(self: Box<Self>) -> Result<PathBuf> {
        AtomicFile::commit(*self)
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.file.as_mut().expect("file present until commit").write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.as_mut().expect("file present until commit").flush()
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if self.file.is_some() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// fsyncs a folder so a rename in it is durable.
///
/// # Errors
/// The OS error, naming the folder.
pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(|e| Error::io("cannot sync folder", dir, e))
}

/// Makes everything written on the filesystem holding `dir` durable, files
/// and folder entries, with one `syncfs` (one device flush, where a file
/// each would cost one each). Reports the write-back errors of files
/// written without their own sync (a full disk among them).
///
/// # Errors
/// The OS error, naming the folder.
pub fn sync_filesystem(dir: &Path) -> Result<()> {
    use std::os::fd::AsRawFd;
    let d = File::open(dir).map_err(|e| Error::io("cannot open folder", dir, e))?;
    // SAFETY: syncfs takes an open descriptor, which `d` holds until after it.
    if unsafe { libc::syncfs(d.as_raw_fd()) } != 0 {
        return Err(Error::io("cannot sync the files of", dir, std::io::Error::last_os_error()));
    }
    Ok(())
}

/// Writes a whole small file atomically (temp, fsync, rename, fsync folder).
///
/// # Errors
/// The OS error, naming the file.
pub fn write_file_atomic(path: &Path, content: &[u8]) -> Result<()> {
    let mut f = AtomicFile::create(path)?;
    f.write_all(content).map_err(|e| Error::io("cannot write", path, e))?;
    f.commit()?;
    Ok(())
}

/// Counts and hashes the bytes that reach the file.
struct HashingWriter {
    file: Box<dyn Destination>,
    sha: Sha256Stage,
}

impl Write for HashingWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.file.write(buf)?;
        self.sha.feed(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

/// What a finished file sink wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSummary {
    pub path: PathBuf,
    pub file_bytes: u64,
    pub file_sha256: String,
}

enum Message {
    Block(Bytes),
    Finish,
}

/// Blocks waiting for all writer threads together: 6 MiB, more than one zstd
/// frame ([`crate::format::zstd_frames::FRAME_INPUT`]), so a lone COPY stream keeps
/// flowing while its writer compresses a frame. With a queue shorter than a
/// frame that stream stalls once per frame (the bench backup took 8.4 s
/// instead of 7.2 s). Several writers share it, which keeps `-j 4` inside the
/// memory budget; there the other streams fill a stalled one's CPU time.
const QUEUE_BUDGET_BLOCKS: usize = 24;

/// One writer's queue when `writers` run at once: its share of the budget,
/// never fewer than 4 blocks.
fn queue_blocks(writers: usize) -> usize {
    (QUEUE_BUDGET_BLOCKS / writers.max(1)).max(4)
}

/// The bytes one writer may hold (queued or being written): its share of
/// the budget in [`crate::stream::stages::BLOCK_SIZE`] blocks. Counted in bytes,
/// not blocks, because a block holding one large row can be 100 MB: a queue
/// of such blocks would hold several rows.
fn queue_bytes(writers: usize) -> usize {
    queue_blocks(writers) * crate::stream::stages::BLOCK_SIZE
}

/// Bytes a writer holds: blocks queued or being written.
#[derive(Default)]
struct Held {
    bytes: std::sync::Mutex<usize>,
    released: std::sync::Condvar,
}

impl Held {
    fn add(&self, n: usize) {
        *self.bytes.lock().unwrap_or_else(|p| p.into_inner()) += n;
    }

    fn release(&self, n: usize) {
        let mut held = self.bytes.lock().unwrap_or_else(|p| p.into_inner());
        *held = held.saturating_sub(n);
        self.released.notify_all();
    }

    /// Waits until at most `limit` bytes are held, or `writer` has stopped.
    fn wait_until_at_most(&self, limit: usize, writer: &JoinHandle<Result<FileSummary>>) {
        let mut held = self.bytes.lock().unwrap_or_else(|p| p.into_inner());
        while *held > limit && !writer.is_finished() {
            // The timeout only guards against a writer that ended without
            // releasing (an error): it is checked again above.
            held = self
                .released
                .wait_timeout(held, std::time::Duration::from_millis(100))
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }
}

/// How much lower than the rest of pgbarge a writer thread's priority is.
const WRITER_NICENESS: libc::c_int = 10;

/// Lowers the calling thread's CPU priority (Linux's nice value is per thread).
///
/// Why: on two cores the server's COPY backend, the thread receiving its
/// stream and the writer compete for CPU, and under a fair share the backend
/// gets two thirds of a core. The backend and the receiver are the critical
/// path; the writer has its queue to catch up from. Yielding to them took the
/// bench backup from 7.8 s to 7.2 s. Nothing is lost when the machine is
/// otherwise idle, and a failure (not permitted) only leaves the priority as
/// it was.
fn yield_to_copy_stream() {
    // SAFETY: nice() only changes the calling thread's scheduling priority.
    unsafe {
        libc::nice(WRITER_NICENESS);
    }
}

/// Writes blocks to a (compressed) file on its own OS thread, so compression
/// runs beside the COPY stream. Bounded queue: a slow disk pushes back.
/// Must call [`FileSink::finish`]; dropping aborts and removes the temp file.
pub struct FileSink {
    /// A local file whose writer has not started: see [`Unstarted`].
    unstarted: Option<Unstarted>,
    tx: Option<Sender<Message>>,
    handle: Option<JoinHandle<Result<FileSummary>>>,
    path: PathBuf,
    held: Arc<Held>,
    budget: usize,
}

impl FileSink {
    /// Creates `path` in a folder not yet renamed into place (see
    /// [`AtomicFile::create_unpublished`]); its writer starts with the data
    /// (see [`Unstarted`]). `writers` is how many sinks run at once (they
    /// share one queue budget). The caller renames the folder and makes it
    /// durable ([`sync_filesystem`]) before the manifest.
    ///
    /// # Errors
    /// The file cannot be created.
    pub fn create(
        path: &Path,
        compression: Compression,
        seal: Option<Recipients>,
        writers: usize,
    ) -> Result<Self> {
        let file = AtomicFile::create_unpublished(path)?;
        Ok(FileSink {
            unstarted: Some(Unstarted { file, compression, seal, first: None }),
            tx: None,
            handle: None,
            path: path.to_path_buf(),
            held: Arc::new(Held::default()),
            budget: queue_bytes(writers),
        })
    }

    /// Starts the writer thread, which first opens its destination with
    /// `open` (on that thread: an upload needs the thread's own runtime).
    /// With `seal`, the compressed bytes are encrypted to those recipients
    /// on the same thread, chunk by chunk, before they reach the file.
    ///
    /// # Errors
    /// The thread cannot be started; `open`'s error comes from `feed` or `finish`.
    pub fn start(
        name: PathBuf,
        compression: Compression,
        seal: Option<Recipients>,
        writers: usize,
        open: impl FnOnce() -> Result<Box<dyn Destination>> + Send + 'static,
    ) -> Result<Self> {
        let mut sink = FileSink {
            unstarted: None,
            tx: None,
            handle: None,
            path: name,
            held: Arc::new(Held::default()),
            budget: queue_bytes(writers),
        };
        sink.spawn_writer(compression, seal, open)?;
        Ok(sink)
    }

    fn spawn_writer(
        &mut self,
        compression: Compression,
        seal: Option<Recipients>,
        open: impl FnOnce() -> Result<Box<dyn Destination>> + Send + 'static,
    ) -> Result<()> {
        let (tx, rx) = channel();
        let writer_held = self.held.clone();
        let handle = std::thread::Builder::new()
            .name("pgbarge-writer".into())
            .spawn(move || {
                yield_to_copy_stream();
                write_blocks(open()?, compression, seal.as_ref(), rx, &writer_held)
            })
            .map_err(|e| Error::runtime(format!("cannot start a writer thread: {e}")))?;
        self.tx = Some(tx);
        self.handle = Some(handle);
        Ok(())
    }

    /// Starts the writer of an [`Unstarted`] sink, giving it the block held.
    fn start_unstarted(&mut self) -> Result<()> {
        let Some(Unstarted { file, compression, seal, first }) = self.unstarted.take() else {
            return Ok(());
        };
        self.spawn_writer(compression, seal, move || Ok(Box::new(file)))?;
        match first {
            Some(block) => self.send(block),
            None => Ok(()),
        }
    }

    /// Queues a block, then waits while the writer holds more than its
    /// budget. A block larger than the budget (one large row) is therefore
    /// written before `feed` returns, so the caller never holds the next row
    /// while the writer still holds this one.
    ///
    /// # Errors
    /// The writer failed (disk full, I/O error); its error is returned.
    pub fn feed(&mut self, block: Bytes) -> Result<()> {
        if let Some(unstarted) = &mut self.unstarted {
            if unstarted.first.is_none() && block.len() < BLOCK_SIZE {
                unstarted.first = Some(block);
                return Ok(());
            }
            self.start_unstarted()?;
        }
        self.send(block)
    }

    fn send(&mut self, block: Bytes) -> Result<()> {
        let tx = self.tx.as_ref().expect("sink open");
        let n = block.len();
        self.held.add(n);
        if tx.send(Message::Block(block)).is_err() {
            return Err(self.join_error());
        }
        self.held.wait_until_at_most(self.budget, self.handle.as_ref().expect("writer running"));
        Ok(())
    }

    fn join_error(&mut self) -> Error {
        self.tx = None;
        match self.handle.take().map(|h| h.join()) {
            Some(Ok(Err(e))) => e,
            Some(Ok(Ok(_))) => Error::runtime(format!(
                "writer of {} stopped before the end of the data",
                self.path.display()
            )),
            Some(Err(_)) => Error::runtime(format!("writer of {} panicked", self.path.display())),
            None => Error::runtime(format!("writer of {} already stopped", self.path.display())),
        }
    }

    /// Ends the compressed stream, fsyncs, renames into place.
    ///
    /// # Errors
    /// Any write, sync or rename error of the writer.
    pub fn finish(mut self) -> Result<FileSummary> {
        if let Some(Unstarted { file, compression, seal, first }) = self.unstarted.take() {
            return write_whole(Box::new(file), compression, seal.as_ref(), first.as_deref());
        }
        let tx = self.tx.take().expect("sink open");
        if tx.send(Message::Finish).is_err() {
            return Err(self.join_error());
        }
        drop(tx);
        match self.handle.take().expect("writer running").join() {
            Ok(r) => r,
            Err(_) => Err(Error::runtime(format!("writer of {} panicked", self.path.display()))),
        }
    }
}

impl Drop for FileSink {
    fn drop(&mut self) {
        // Closing the channel without Finish makes the writer drop its temp file.
        self.tx = None;
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// A local file sink before its writer thread starts. The writer starts with
/// the second block, or with a first block of [`BLOCK_SIZE`] or more; a file
/// whose whole data is one smaller block (a small table: every gathered
/// block but the last is [`BLOCK_SIZE`] or more) is compressed and written
/// by `finish` on the caller's thread. Why: a thousand small tables cost a
/// thread start each, and each `finish` waited for a writer that runs at a
/// lower priority, on two cores busy with the server and the other workers.
/// The block held is below [`BLOCK_SIZE`], so memory stays bounded.
struct Unstarted {
    file: AtomicFile,
    compression: Compression,
    seal: Option<Recipients>,
    first: Option<Bytes>,
}

/// The file's bytes, written whole on the calling thread (see [`Unstarted`]):
/// the same file, byte for byte, the writer thread makes of one block.
fn write_whole(
    file: Box<dyn Destination>,
    compression: Compression,
    seal: Option<&Recipients>,
    data: Option<&[u8]>,
) -> Result<FileSummary> {
    let path = file.name();
    let werr = |e: std::io::Error| Error::io("cannot write", &path, e);
    let mut writer = hashed(file, seal).map_err(werr)?;
    let data = data.unwrap_or_default();
    match compression {
        Compression::None => writer.write_all(data),
        Compression::Zstd { level } => crate::format::zstd_frames::compress_one_frame(data, level)
            .and_then(|frame| writer.write_all(&frame)),
    }
    .map_err(werr)?;
    commit_hashed(writer, &path)
}

/// The file's sha256 is of the bytes stored: encrypted ones when sealed.
fn hashed(
    file: Box<dyn Destination>,
    seal: Option<&Recipients>,
) -> std::io::Result<Sealer<HashingWriter>> {
    Sealer::new(HashingWriter { file, sha: Sha256Stage::new() }, seal)
}

/// Ends the sealed stream, then syncs (or leaves to the folder's sync) and
/// renames the file.
fn commit_hashed(writer: Sealer<HashingWriter>, path: &Path) -> Result<FileSummary> {
    let HashingWriter { file, sha } =
        writer.finish().map_err(|e| Error::io("cannot write", path, e))?;
    let (file_sha256, file_bytes) = sha.finish();
    let path = file.commit()?;
    Ok(FileSummary { path, file_bytes, file_sha256 })
}

fn write_blocks(
    file: Box<dyn Destination>,
    compression: Compression,
    seal: Option<&Recipients>,
    rx: Receiver<Message>,
    held: &Held,
) -> Result<FileSummary> {
    let path = file.name();
    let werr = |e: std::io::Error| Error::io("cannot write", &path, e);
    let writer = hashed(file, seal).map_err(werr)?;
    let finished = match compression {
        Compression::None => {
            let mut w = writer;
            if !pump(&rx, held, |b| w.write_all(b)).map_err(werr)? {
                return Err(aborted(&path));
            }
            w
        }
        Compression::Zstd { level } => {
            let mut enc = FrameEncoder::new(writer, level).map_err(werr)?;
            if !pump(&rx, held, |b| enc.write_all(b)).map_err(werr)? {
                return Err(aborted(&path));
            }
            enc.finish().map_err(werr)?
        }
    };
    commit_hashed(finished, &path)
}

fn aborted(path: &Path) -> Error {
    Error::runtime(format!("writing {} was aborted", path.display()))
}

/// Feeds received blocks to `write` until Finish (true) or the sender is
/// gone (false), releasing each block's bytes once written and dropped.
fn pump(
    rx: &Receiver<Message>,
    held: &Held,
    mut write: impl FnMut(&[u8]) -> std::io::Result<()>,
) -> std::io::Result<bool> {
    for msg in rx {
        match msg {
            Message::Block(b) => {
                let n = b.len();
                let written = write(&b);
                drop(b);
                held.release(n);
                written?;
            }
            Message::Finish => return Ok(true),
        }
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compressed_file_round_trips_and_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.csv.zst");
        let mut sink = FileSink::create(&path, Compression::Zstd { level: 3 }, None, 1).unwrap();
        sink.feed(Bytes::from_static(b"id\n1\n")).unwrap();
        sink.feed(Bytes::from_static(b"2\n")).unwrap();
        let s = sink.finish().unwrap();
        let raw = std::fs::read(&path).unwrap();
        assert_eq!(s.file_bytes, raw.len() as u64);
        assert_eq!(zstd::decode_all(&raw[..]).unwrap(), b"id\n1\n2\n");
        let mut sha = Sha256Stage::new();
        sha.feed(&raw);
        assert_eq!(sha.finish().0, s.file_sha256);
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        assert!(!dir.path().join("t.csv.zst.tmp").exists());
    }

    #[test]
    fn a_file_of_one_small_block_is_written_without_a_thread_to_the_same_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let block = Bytes::from_static(b"id,name\n1,\"a,b\"\n2,c\n");
        for compression in [Compression::Zstd { level: 3 }, Compression::None] {
            let (inline, threaded) = (dir.path().join("inline"), dir.path().join("threaded"));
            let mut sink = FileSink::create(&inline, compression, None, 1).unwrap();
            sink.feed(block.clone()).unwrap();
            assert!(sink.handle.is_none(), "no writer thread for one small block");
            let a = sink.finish().unwrap();
            let file = AtomicFile::create(&threaded).unwrap();
            let mut sink =
                FileSink::start(threaded.clone(), compression, None, 1, move || Ok(Box::new(file)))
                    .unwrap();
            sink.feed(block.clone()).unwrap();
            let b = sink.finish().unwrap();
            assert_eq!(std::fs::read(&inline).unwrap(), std::fs::read(&threaded).unwrap());
            assert_eq!((a.file_bytes, a.file_sha256), (b.file_bytes, b.file_sha256));
            std::fs::remove_file(&inline).unwrap();
            std::fs::remove_file(&threaded).unwrap();
        }
        // A first block of BLOCK_SIZE or more starts the writer at once.
        let path = dir.path().join("large");
        let mut sink = FileSink::create(&path, Compression::None, None, 1).unwrap();
        sink.feed(Bytes::from(vec![b'x'; BLOCK_SIZE])).unwrap();
        assert!(sink.handle.is_some());
        assert_eq!(sink.finish().unwrap().file_bytes, BLOCK_SIZE as u64);
    }

    #[test]
    fn an_unpublished_file_is_written_under_its_own_name_exclusively() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.csv");
        let mut f = AtomicFile::create_unpublished(&path).unwrap();
        f.write_all(b"x").unwrap();
        assert!(path.exists() && !dir.path().join("t.csv.tmp").exists());
        assert!(AtomicFile::create_unpublished(&path).is_err(), "created exclusively");
        assert_eq!(f.commit().unwrap(), path);
        assert_eq!(std::fs::read(&path).unwrap(), b"x");
        let other = dir.path().join("u.csv");
        drop(AtomicFile::create_unpublished(&other).unwrap());
        assert!(!other.exists(), "removed when dropped before commit");
    }

    #[test]
    fn dropped_sink_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.csv");
        let mut sink = FileSink::create(&path, Compression::None, None, 1).unwrap();
        sink.feed(Bytes::from_static(b"id\n1\n")).unwrap();
        drop(sink);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn writers_share_the_queue_budget() {
        assert_eq!(queue_blocks(1), QUEUE_BUDGET_BLOCKS);
        assert_eq!(queue_blocks(4), QUEUE_BUDGET_BLOCKS / 4);
        assert_eq!(queue_blocks(64), 4);
        assert_eq!(queue_blocks(0), QUEUE_BUDGET_BLOCKS);
    }

    #[test]
    fn a_block_larger_than_the_budget_is_written_before_feed_returns() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.csv.zst");
        let mut sink = FileSink::create(&path, Compression::Zstd { level: 1 }, None, 1).unwrap();
        let mut big = b"id\n".to_vec();
        big.resize(queue_bytes(1) * 3, b'7');
        big.push(b'\n');
        sink.feed(Bytes::from(big.clone())).unwrap();
        assert_eq!(*sink.held.bytes.lock().unwrap(), 0, "the writer let go of the block");
        sink.finish().unwrap();
        assert_eq!(zstd::decode_all(&std::fs::read(&path).unwrap()[..]).unwrap(), big);
    }

    #[test]
    fn the_writer_runs_at_a_lower_priority() {
        // SAFETY: getpriority only reads the calling thread's nice value.
        let ours = unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) };
        let (tx, rx) = std::sync::mpsc::channel();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.csv");
        let file = AtomicFile::create(&path).unwrap();
        let sink = FileSink::start(path.clone(), Compression::None, None, 1, move || {
            // SAFETY: as above, on the writer thread.
            tx.send(unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) }).unwrap();
            Ok(Box::new(file))
        })
        .unwrap();
        let writer = rx.recv().unwrap();
        sink.finish().unwrap();
        assert_eq!(writer, (ours + WRITER_NICENESS).min(19));
    }

    #[test]
    fn an_encrypted_file_opens_with_the_key_to_the_same_bytes() {
        use age::secrecy::ExposeSecret;
        let id = age::x25519::Identity::generate();
        let r = crate::format::encryption::Recipient::X25519(id.to_public());
        let seal = Recipients::new(vec![r]).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.csv.zst.age");
        let mut sink =
            FileSink::create(&path, Compression::Zstd { level: 3 }, Some(seal), 1).unwrap();
        sink.feed(Bytes::from_static(b"id\n1\n")).unwrap();
        let s = sink.finish().unwrap();
        let raw = std::fs::read(&path).unwrap();
        assert_eq!(s.file_bytes, raw.len() as u64);
        assert_eq!(crate::format::digest::sha256_hex(&raw), s.file_sha256);
        let key = id.to_string().expose_secret().as_bytes().to_vec();
        let ids =
            crate::format::encryption::Identities::from_files(vec![(key, "k".into())]).unwrap();
        let zst = ids.open_bytes(&raw).unwrap();
        assert_eq!(zstd::decode_all(&zst[..]).unwrap(), b"id\n1\n");
    }

    #[test]
    fn compression_values() {
        assert_eq!(Compression::parse("zstd").unwrap(), Compression::Zstd { level: 3 });
        assert_eq!(Compression::parse("zstd:9").unwrap(), Compression::Zstd { level: 9 });
        assert_eq!(Compression::parse("none").unwrap(), Compression::None);
        assert!(Compression::parse("gzip").is_err());
        assert!(Compression::parse("zstd:99").is_err());
    }
}
