//! One writer per backup folder, and no writer while it is read: an `flock`
//! on the folder itself — exclusive for a backup, shared for `verify` and
//! `restore` — held for the whole run and released when the process ends,
//! however it ends (the kernel drops the lock with the last descriptor, so a
//! kill -9 leaves no stale lock behind).
//!
//! The lock is on the folder's own descriptor, not on a lock file inside it,
//! so a finished backup holds nothing but its own files. A refused run names
//! the process that holds the lock, found in `/proc/locks`; it never prints
//! that process's command line, which may hold a connection string.
//!
//! This module only locks; it neither creates nor removes anything.

use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::os::unix::io::AsRawFd;
use std::path::Path;

use crate::error::{Error, Result};

/// A lock on a backup folder; released on drop.
#[derive(Debug)]
pub struct FolderLock {
    /// Kept open: closing it releases the lock.
    _dir: File,
}

impl FolderLock {
    /// Locks `dir` (which must exist) for writing, without waiting.
    ///
    /// # Errors
    /// A usage error naming the process that writes or reads the folder
    /// (exit 2); an I/O error when the folder cannot be opened; a runtime
    /// error when the folder was replaced while it was being locked.
    pub fn exclusive(dir: &Path) -> Result<FolderLock> {
        Self::lock(dir, libc::LOCK_EX)
    }

    /// Locks `dir` for reading, without waiting: readers share the folder,
    /// a writer (a backup, `--force` included) is refused while they read.
    ///
    /// # Errors
    /// As [`FolderLock::exclusive`], when a backup is writing the folder.
    pub fn shared(dir: &Path) -> Result<FolderLock> {
        Self::lock(dir, libc::LOCK_SH)
    }

    fn lock(dir: &Path, operation: libc::c_int) -> Result<FolderLock> {
        let file = File::open(dir).map_err(|e| Error::io("cannot open folder", dir, e))?;
        // SAFETY: flock on a descriptor we own; no memory is passed.
        let rc = unsafe { libc::flock(file.as_raw_fd(), operation | libc::LOCK_NB) };
        if rc != 0 {
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
                return Err(refused(dir, &file, operation));
            }
            return Err(Error::io("cannot lock folder", dir, err));
        }
        // The folder may have been removed (a failed run cleaning up) or
        // replaced between open and flock: the lock must be on what the
        // path names now.
        let same = match (file.metadata(), std::fs::metadata(dir)) {
            (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
            _ => false,
        };
        if !same {
            return Err(Error::runtime_hint(
                format!("{} was removed or replaced while it was being locked", dir.display()),
                "another run was using the folder; run again",
            ));
        }
        Ok(FolderLock { _dir: file })
    }
}

/// The refusal when another process holds a conflicting lock on `dir`.
fn refused(dir: &Path, file: &File, operation: libc::c_int) -> Error {
    let holder = file.metadata().ok().and_then(|m| lock_holder(&m));
    let who = holder.as_ref().map_or_else(
        || "another process".to_string(),
        |(pid, _)| format!("process {pid}{}", process_name(*pid)),
    );
    let writing = operation == libc::LOCK_SH || holder.is_some_and(|(_, w)| w);
    if writing {
        Error::usage_hint(
            format!("{} is being written by another pgbarge run ({who})", dir.display()),
            "wait for that run to end, or choose another folder; a folder has one writer at a time, --force included, and is not read while it is written",
        )
    } else {
        Error::usage_hint(
            format!("{} is being read by another pgbarge run ({who})", dir.display()),
            "wait for that verify or restore to end; a backup folder is not written while it is read",
        )
    }
}

/// A process holding a `flock` on the file `meta` describes, and whether its
/// lock is exclusive (a writer), from `/proc/locks` (lines like
/// `1: FLOCK  ADVISORY  WRITE 4242 08:01:1234567 0 EOF`, the device as
/// hexadecimal major:minor).
fn lock_holder(meta: &std::fs::Metadata) -> Option<(u32, bool)> {
    let text = std::fs::read_to_string("/proc/locks").ok()?;
    let dev = meta.dev();
    let want = format!("{:02x}:{:02x}:{}", libc::major(dev), libc::minor(dev), meta.ino());
    text.lines().find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let at = fields.iter().position(|f| *f == "FLOCK")?;
        let (mode, pid, id) = (fields.get(at + 2)?, fields.get(at + 3)?, fields.get(at + 4)?);
        (*id == want).then(|| pid.parse().ok().map(|p| (p, *mode == "WRITE"))).flatten()
    })
}

/// `" (pgbarge)"`: the process's short name from `/proc/PID/comm`, never its
/// arguments.
fn process_name(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .map(|n| format!(" ({})", n.trim()))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_is_refused_naming_this_process() {
        let dir = tempfile::tempdir().unwrap();
        let first = FolderLock::exclusive(dir.path()).unwrap();
        let err = FolderLock::exclusive(dir.path()).unwrap_err();
        assert_eq!(err.class(), crate::error::Class::Usage);
        let text = err.to_string();
        assert!(text.contains(&format!("process {}", std::process::id())), "{text}");
        assert!(text.contains("being written by another pgbarge run"), "{text}");
        // Readers share; a writer waits for none of them and is refused.
        let err = FolderLock::shared(dir.path()).unwrap_err();
        assert!(err.to_string().contains("being written"), "{err}");
        drop(first);
        let (r1, r2) = (FolderLock::shared(dir.path()).unwrap(), FolderLock::shared(dir.path()));
        assert!(r2.is_ok());
        let err = FolderLock::exclusive(dir.path()).unwrap_err();
        assert!(
            err.to_string().contains("is being read by another pgbarge run (process "),
            "{err}"
        );
        drop((r1, r2));
        FolderLock::exclusive(dir.path()).unwrap();
    }
}
