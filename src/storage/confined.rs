//! Opening a backup's files without leaving its folder: every component below
//! the folder is opened with `O_NOFOLLOW` relative to its parent (`openat`),
//! so no symbolic link — a data file, `data/` itself, the manifest — is
//! followed, and the last one with `O_NONBLOCK`, so a FIFO or a device in a
//! file's place cannot block the open. Only a regular file is returned.
//!
//! The folder the user named may itself be a link: that is their choice.
//! What lies inside it is not trusted. This module opens; it reads nothing.

use std::ffi::CString;
use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

use crate::error::{Error, Result};

/// Opens the regular file `name` (relative, `/`-separated) inside `dir`;
/// `None` when it, or a folder on its way, does not exist.
///
/// # Errors
/// A difference (exit 1) naming the path when something on the way is a
/// symbolic link, or the file is not a regular file (a FIFO, a socket, a
/// device, a folder); an I/O error for anything else.
pub fn open_file(dir: &Path, name: &str) -> Result<Option<File>> {
    let shown = dir.join(name);
    let root = File::open(dir).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Error::usage(format!("{}: no such folder", dir.display())),
        _ => Error::io("cannot open folder", dir, e),
    })?;
    let parts: Vec<&str> = name.split('/').filter(|p| !p.is_empty()).collect();
    let mut current: OwnedFd = root.into();
    for (i, part) in parts.iter().enumerate() {
        let is_last = i + 1 == parts.len();
        if *part == "." || *part == ".." {
            return Err(refused(&shown, "a path that leaves the backup folder"));
        }
        let c = CString::new(part.as_bytes()).map_err(|_| {
            Error::difference(format!("{}: a NUL byte in the name", shown.display()))
        })?;
        let flags = libc::O_RDONLY
            | libc::O_CLOEXEC
            | libc::O_NOFOLLOW
            | if is_last { libc::O_NONBLOCK } else { libc::O_DIRECTORY };
        // SAFETY: `current` is an open descriptor and `c` a NUL-terminated name.
        let fd = unsafe { libc::openat(current.as_raw_fd(), c.as_ptr(), flags) };
        if fd < 0 {
            let err = std::io::Error::last_os_error();
            let at = dir.join(parts[..=i].join("/"));
            return match err.raw_os_error() {
                Some(libc::ENOENT) => Ok(None),
                // With O_NOFOLLOW a link fails as ELOOP, or as ENOTDIR where a
                // folder was asked for; look at what is there to say which.
                Some(libc::ELOOP) | Some(libc::ENOTDIR) => {
                    let what = if is_symlink_at(&current, &c) {
                        "a symbolic link"
                    } else {
                        "not a folder"
                    };
                    Err(refused(&at, what))
                }
                _ => Err(Error::io("cannot open", at, err)),
            };
        }
        // SAFETY: `fd` was just returned by openat and is owned by nobody else.
        current = unsafe { OwnedFd::from_raw_fd(fd) };
    }
    let file = File::from(current);
    let meta = file.metadata().map_err(|e| Error::io("cannot read", &shown, e))?;
    if !meta.is_file() {
        return Err(refused(&shown, &format!("{}, not a regular file", kind_of(&meta))));
    }
    // A regular file reads the same blocking or not; clear the flag anyway
    // so the descriptor behaves as an ordinary open file for its readers.
    // SAFETY: fcntl on a descriptor we own.
    unsafe {
        let flags = libc::fcntl(file.as_raw_fd(), libc::F_GETFL);
        if flags >= 0 {
            libc::fcntl(file.as_raw_fd(), libc::F_SETFL, flags & !libc::O_NONBLOCK);
        }
    }
    Ok(Some(file))
}

/// Reads the regular file `name` inside `dir` whole; `None` when it is not there.
///
/// # Errors
/// As [`open_file`], and read errors.
pub fn read_file(dir: &Path, name: &str) -> Result<Option<Vec<u8>>> {
    use std::io::Read;
    let Some(mut file) = open_file(dir, name)? else {
        return Ok(None);
    };
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).map_err(|e| Error::io("cannot read", dir.join(name), e))?;
    Ok(Some(bytes))
}

/// Whether `name` in the folder `parent` is a symbolic link (not followed).
fn is_symlink_at(parent: &OwnedFd, name: &CString) -> bool {
    // SAFETY: an all-zero `stat` is a valid value to be overwritten.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: valid descriptor, NUL-terminated name, and a `stat` to fill.
    let rc = unsafe {
        libc::fstatat(parent.as_raw_fd(), name.as_ptr(), &mut st, libc::AT_SYMLINK_NOFOLLOW)
    };
    rc == 0 && (st.st_mode & libc::S_IFMT) == libc::S_IFLNK
}

/// `what` is how the path is wrong: "a symbolic link", "a FIFO (named pipe),
/// not a regular file".
fn refused(path: &Path, what: &str) -> Error {
    Error::Difference {
        msg: format!("{} is {what}: pgbarge reads only the backup's own files", path.display()),
        hint: Some(
            "a backup's files are regular files inside its folder and no link is followed out of it; \
             someone changed this backup: take a new one, or put the real files back"
                .into(),
        ),
    }
}

fn kind_of(meta: &std::fs::Metadata) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    let t = meta.file_type();
    if t.is_dir() {
        "a folder"
    } else if t.is_fifo() {
        "a FIFO (named pipe)"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_block_device() || t.is_char_device() {
        "a device"
    } else {
        "not a regular file"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Class;
    use std::os::unix::ffi::OsStrExt;

    fn c_path(p: &Path) -> CString {
        CString::new(p.as_os_str().as_bytes()).unwrap()
    }

    fn backup_dir() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("data")).unwrap();
        std::fs::write(d.path().join("data/0001.t.csv"), b"x\n1\n").unwrap();
        std::fs::write(d.path().join("manifest.json"), b"{}").unwrap();
        d
    }

    #[test]
    fn regular_files_open_and_missing_ones_are_none() {
        let d = backup_dir();
        assert_eq!(read_file(d.path(), "data/0001.t.csv").unwrap().unwrap(), b"x\n1\n");
        assert!(read_file(d.path(), "data/0002.t.csv").unwrap().is_none());
        assert!(read_file(d.path(), "nothere/0002.t.csv").unwrap().is_none());
    }

    #[test]
    fn links_fifos_and_folders_are_refused_as_damage() {
        let d = backup_dir();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("evil.csv"), b"x\n9\n").unwrap();
        std::fs::create_dir(outside.path().join("data")).unwrap();
        std::os::unix::fs::symlink(outside.path().join("evil.csv"), d.path().join("data/l.csv"))
            .unwrap();
        std::os::unix::fs::symlink(outside.path().join("evil.csv"), d.path().join("m.json"))
            .unwrap();
        // SAFETY: mkfifo with a valid path.
        assert_eq!(
            unsafe { libc::mkfifo(c_path(&d.path().join("data/f.csv")).as_ptr(), 0o600) },
            0
        );
        let cases = [
            ("data/l.csv", "data/l.csv is a symbolic link"),
            ("m.json", "m.json is a symbolic link"),
            ("data/f.csv", "is a FIFO (named pipe), not a regular file"),
            ("data", "is a folder, not a regular file"),
            ("manifest.json/x", "manifest.json is not a folder"),
        ];
        for (name, want) in cases {
            let err = open_file(d.path(), name).unwrap_err();
            assert_eq!(err.class(), Class::Difference, "{name}");
            assert!(err.to_string().contains(want), "{name}: {err}");
        }
        // A linked data/ folder is not entered.
        let linked = tempfile::tempdir().unwrap();
        std::fs::create_dir(outside.path().join("data2")).unwrap();
        std::fs::write(outside.path().join("data2/0001.t.csv"), b"x\n").unwrap();
        std::os::unix::fs::symlink(outside.path().join("data2"), linked.path().join("data"))
            .unwrap();
        let err = open_file(linked.path(), "data/0001.t.csv").unwrap_err();
        assert!(err.to_string().contains("data is a symbolic link"), "{err}");
    }
}
