//! One writer per backup folder: an exclusive `flock` on the folder itself,
//! held for the whole run and released when the process ends, however it ends
//! (the kernel drops the lock with the last descriptor, so a kill -9 leaves no
//! stale lock behind).
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

/// An exclusive lock on a backup folder; released on drop.
#[derive(Debug)]
pub struct FolderLock {
    /// Kept open: closing it releases the lock.
    _dir: File,
}

impl FolderLock {
    /// Locks `dir` (which must exist) for writing, without waiting.
    ///
    /// # Errors
    /// A usage error naming the process that holds the folder (exit 2); an
    /// I/O error when the folder cannot be opened; a runtime error when the
    /// folder was replaced while it was being locked.
    pub fn exclusive(dir: &Path) -> Result<FolderLock> {
        let file = File::open(dir).map_err(|e| Error::io("cannot open folder", dir, e))?;
        // SAFETY: flock on a descriptor we own; no memory is passed.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc != 0 {
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
                let holder = file.metadata().ok().and_then(|m| lock_holder(&m)).map_or_else(
                    || "another process".to_string(),
                    |pid| format!("process {pid}{}", process_name(pid)),
                );
                return Err(Error::usage_hint(
                    format!("{} is being written by another pgbarge run ({holder})", dir.display()),
                    "wait for that run to end, or choose another folder; a folder has one writer at a time, --force included",
                ));
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

/// The pid holding a `flock` on the file `meta` describes, from `/proc/locks`
/// (lines like `1: FLOCK  ADVISORY  WRITE 4242 08:01:1234567 0 EOF`, the
/// device as hexadecimal major:minor).
fn lock_holder(meta: &std::fs::Metadata) -> Option<u32> {
    let text = std::fs::read_to_string("/proc/locks").ok()?;
    let dev = meta.dev();
    let want = format!("{:02x}:{:02x}:{}", libc::major(dev), libc::minor(dev), meta.ino());
    text.lines().find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let at = fields.iter().position(|f| *f == "FLOCK")?;
        let (pid, id) = (fields.get(at + 3)?, fields.get(at + 4)?);
        (*id == want).then(|| pid.parse().ok()).flatten()
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
        drop(first);
        FolderLock::exclusive(dir.path()).unwrap();
    }
}
