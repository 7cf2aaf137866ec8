//! Where a backup lives: a local folder, or `s3://bucket/prefix` in any
//! S3-compatible store. The same operations on both: read and write the small
//! files (manifest, `SHA256SUMS`, `schema.sql`), list what is there, delete,
//! and open data files as a [`FileSink`] or a [`FileSource`].
//!
//! This module does the folder's side and dispatches; everything that speaks
//! to a store lives in [`crate::storage::s3`].

use std::io::Read;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::format::compression::Compression;
use crate::format::encryption::{Identities, Recipients};
use crate::storage::manifest::{DATA_DIR, DATA_TMP_DIR};
use crate::storage::s3::{S3Download, S3Place, S3Upload};
use crate::storage::sink::{Destination, FileSink};
use crate::storage::source::{FileSource, SMALL_FILE};

/// A backup's place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    Local(PathBuf),
    S3(S3Place),
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::Local(p) => write!(f, "{}", p.display()),
            Location::S3(s) if s.prefix.is_empty() => write!(f, "s3://{}", s.bucket),
            Location::S3(s) => write!(f, "s3://{}/{}", s.bucket, s.prefix),
        }
    }
}

impl Location {
    /// A folder, or `s3://bucket[/prefix]`.
    ///
    /// # Errors
    /// A usage error for an `s3://` address without a bucket.
    pub fn parse(s: &str) -> Result<Location> {
        let Some(rest) = s.strip_prefix("s3://") else {
            return Ok(Location::Local(PathBuf::from(s)));
        };
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(Error::usage(format!("{s}: no bucket; write s3://bucket/prefix")));
        }
        Ok(Location::S3(S3Place {
            bucket: bucket.to_string(),
            prefix: prefix.trim_matches('/').to_string(),
        }))
    }

    /// A shared lock on a local backup folder for as long as it is read, so
    /// no backup (`--force` included) writes into it meanwhile; `None` for a
    /// store, or a folder that is not there (reading it says so).
    ///
    /// # Errors
    /// A usage error when a backup is writing the folder.
    pub fn lock_for_reading(&self) -> Result<Option<crate::storage::folder_lock::FolderLock>> {
        match self {
            Location::Local(dir) if dir.is_dir() => {
                crate::storage::folder_lock::FolderLock::shared(dir).map(Some)
            }
            _ => Ok(None),
        }
    }

    /// The local path of `name` (for messages and local I/O).
    pub fn path(&self, name: &str) -> PathBuf {
        match self {
            Location::Local(dir) => dir.join(name),
            Location::S3(s) => PathBuf::from(format!("{}", Location::S3(s.clone()))).join(name),
        }
    }

    /// A small file's bytes; `None` when it is not there.
    ///
    /// # Errors
    /// I/O and store errors other than not-found.
    pub async fn read(&self, name: &str) -> Result<Option<Vec<u8>>> {
        match self {
            Location::Local(dir) => crate::storage::confined::read_file(dir, name),
            Location::S3(s) => s.read(name).await,
        }
    }

    /// Writes a small file whole: atomically on disk, one PUT in a store.
    ///
    /// # Errors
    /// I/O and store errors, naming the file.
    pub async fn write(&self, name: &str, bytes: &[u8]) -> Result<()> {
        match self {
            Location::Local(dir) => crate::storage::sink::write_file_atomic(&dir.join(name), bytes),
            Location::S3(s) => s.write(name, bytes).await,
        }
    }

    /// Every file under the location, as (relative name, size), sorted.
    ///
    /// # Errors
    /// The folder or bucket cannot be listed.
    pub async fn list(&self) -> Result<Vec<(String, u64)>> {
        let mut out = Vec::new();
        match self {
            Location::Local(dir) => {
                if dir.is_dir() {
                    list_local(dir, "", &mut out)?;
                }
            }
            Location::S3(s) => s.list(&mut out).await?,
        }
        out.sort();
        Ok(out)
    }

    /// Deletes files; missing ones are fine.
    ///
    /// # Errors
    /// The first deletion that fails.
    pub async fn delete(&self, names: &[String]) -> Result<()> {
        match self {
            Location::Local(dir) => {
                for n in names {
                    match std::fs::remove_file(dir.join(n)) {
                        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                            return Err(Error::io("cannot remove", dir.join(n), e));
                        }
                        _ => {}
                    }
                }
                Ok(())
            }
            Location::S3(s) => s.delete(names).await,
        }
    }

    /// Makes the data files written by [`Location::data_sink`] durable at
    /// once: one `syncfs` for a folder; nothing for a store, where an upload
    /// is durable once completed. Called before anything that says the
    /// backup is complete is written.
    ///
    /// # Errors
    /// The OS error (a write-back failure, a full disk).
    pub async fn sync_data(&self) -> Result<()> {
        match self {
            Location::Local(dir) => {
                let dir = dir.clone();
                tokio::task::spawn_blocking(move || crate::storage::sink::sync_filesystem(&dir))
                    .await
                    .map_err(|e| Error::runtime(format!("the folder sync stopped: {e}")))?
            }
            Location::S3(_) => Ok(()),
        }
    }

    /// Renames a local backup's `data.tmp/` to `data/`, every data file in
    /// it whole: one rename instead of one per file (a thousand renames in
    /// one folder, each holding its lock, cost a backup of 1,000 small
    /// tables 6 % of its time). Nothing to do in a store, where an upload
    /// appears only when finished.
    ///
    /// # Errors
    /// The OS error.
    pub fn publish_data(&self) -> Result<()> {
        match self {
            Location::Local(dir) => {
                let (from, to) = (dir.join(DATA_TMP_DIR), dir.join(DATA_DIR));
                std::fs::rename(&from, &to)
                    .map_err(|e| Error::io("cannot rename into place", &from, e))
            }
            Location::S3(_) => Ok(()),
        }
    }

    /// A data file's writer, `name` being its place in the backup
    /// (`data/NNNN...`): on disk the file is written under its own name in
    /// `data.tmp/`, the folder renamed into place by
    /// [`Location::publish_data`] once every file is whole, and made durable
    /// by [`Location::sync_data`]; a streamed multipart upload in a store,
    /// aborted unless finished. `writers`: how many data sinks run at once;
    /// `seal`: the recipients an encrypted backup's files are encrypted to.
    ///
    /// # Errors
    /// The file cannot be created (local).
    pub fn data_sink(
        &self,
        name: &str,
        compression: Compression,
        seal: Option<&Recipients>,
        writers: usize,
    ) -> Result<FileSink> {
        let seal = seal.cloned();
        match self {
            Location::Local(dir) => {
                let file = name.strip_prefix(DATA_DIR).and_then(|f| f.strip_prefix('/'));
                let file = file.ok_or_else(|| {
                    Error::runtime(format!("{name} is not a name in the data folder"))
                })?;
                FileSink::create(&dir.join(DATA_TMP_DIR).join(file), compression, seal, writers)
            }
            Location::S3(s) => {
                let (s, name) = (s.clone(), name.to_string());
                FileSink::start(self.path(&name), compression, seal, writers, move || {
                    Ok(Box::new(S3Upload::start(s, &name)?) as Box<dyn Destination>)
                })
            }
        }
    }

    /// A data file's reader, decrypting (with `keys`, for an encrypted
    /// backup) and decompressing on its own thread.
    ///
    /// # Errors
    /// The local file cannot be opened; store errors arrive as its first block.
    pub fn open(
        &self,
        name: &str,
        compression: Compression,
        keys: Option<&Identities>,
    ) -> Result<FileSource> {
        let keys = keys.cloned();
        match self {
            Location::Local(dir) => {
                let path = dir.join(name);
                let mut file = crate::storage::confined::open_file(dir, name)?
                    .ok_or_else(|| Error::difference(format!("{}: missing", path.display())))?;
                let size = file.metadata().map_err(|e| Error::io("cannot read", &path, e))?.len();
                if size <= SMALL_FILE && keys.is_none() {
                    let mut bytes = Vec::with_capacity(size as usize);
                    // A file grown since (being written over) is read no
                    // further than one byte past the limit: its size and
                    // sha256 then differ from the manifest's.
                    std::io::Read::read_to_end(
                        &mut std::io::Read::take(&mut file, SMALL_FILE + 1),
                        &mut bytes,
                    )
                    .map_err(|e| Error::io("cannot read", &path, e))?;
                    return FileSource::read_small(path, compression, bytes);
                }
                FileSource::start(path, compression, keys, move || Ok(Box::new(file)))
            }
            Location::S3(s) => {
                let (s, name) = (s.clone(), name.to_string());
                FileSource::start(self.path(&name), compression, keys, move || {
                    Ok(Box::new(S3Download::start(s, &name)?) as Box<dyn Read + Send>)
                })
            }
        }
    }
}

fn list_local(dir: &Path, rel: &str, out: &mut Vec<(String, u64)>) -> Result<()> {
    for e in std::fs::read_dir(dir).map_err(|e| Error::io("cannot list", dir, e))? {
        let e = e.map_err(|e| Error::io("cannot list", dir, e))?;
        let name = format!("{rel}{}", e.file_name().to_string_lossy());
        let meta = e.metadata().map_err(|err| Error::io("cannot read", e.path(), err))?;
        if meta.is_dir() {
            out.push((format!("{name}/"), 0));
            list_local(&e.path(), &format!("{name}/"), out)?;
        } else {
            out.push((name, meta.len()));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_locations() {
        assert_eq!(
            Location::parse("backups/x").unwrap(),
            Location::Local(PathBuf::from("backups/x"))
        );
        let s3 = Location::parse("s3://bkt/a/b/").unwrap();
        assert_eq!(s3, Location::S3(S3Place { bucket: "bkt".into(), prefix: "a/b".into() }));
        assert_eq!(s3.to_string(), "s3://bkt/a/b");
        assert_eq!(Location::parse("s3://bkt").unwrap().to_string(), "s3://bkt");
        assert!(Location::parse("s3:///x").is_err());
    }
}
