//! The backup folder: locked for the run, refused if it holds anything but a
//! previous backup (replaced only with `--force`), and every file of a failed
//! run removed.

use std::collections::BTreeSet;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::Path;

use crate::error::{Error, Result};
use crate::storage::folder_lock::FolderLock;
use crate::storage::location::Location;
use crate::storage::manifest::{
    DATA_DIR, DATA_TMP_DIR, MANIFEST_FILE, SCHEMA_FILE, SCHEMA_POST_FILE, SCHEMA_PRE_FILE,
    SUMS_FILE, remove_backup,
};
use crate::storage::sealed::{PASSPHRASE_KEY_FILE, SEALED_MANIFEST_FILE};

/// The backup folder: locked for the whole run, checked before anything is
/// touched, cleaned on failure.
pub(super) struct OutputDir {
    pub(super) location: Location,
    created: bool,
    /// Held until the run ends; `None` for an object store (see the README:
    /// a prefix has no lock).
    _lock: Option<FolderLock>,
}

/// The names a pgbarge backup consists of, at the top of its folder (with
/// the data folder of a run that did not finish).
pub(crate) const BACKUP_NAMES: [&str; 11] = [
    MANIFEST_FILE,
    SUMS_FILE,
    SCHEMA_FILE,
    SCHEMA_PRE_FILE,
    SCHEMA_POST_FILE,
    DATA_DIR,
    DATA_TMP_DIR,
    SEALED_MANIFEST_FILE,
    PASSPHRASE_KEY_FILE,
    "schema-pre.sql.age",
    "schema-post.sql.age",
];

impl OutputDir {
    /// Creates a local folder private (0700) when it is not there, locks it
    /// against every other writer, then refuses a non-empty folder or prefix
    /// (unless `force` and it holds a pgbarge backup, which is removed,
    /// manifest first) and creates the folder the data files are written in
    /// (`data.tmp/`, renamed to `data/` once they are all whole). A refusal
    /// removes nothing, not even a folder this run created: another run may
    /// be using it by then.
    pub(super) async fn prepare(location: &Location, force: bool) -> Result<OutputDir> {
        let (created, lock) = match location {
            Location::Local(dir) => {
                let created = create_folder(dir)?;
                (created, Some(FolderLock::exclusive(dir)?))
            }
            Location::S3(_) => (false, None),
        };
        let top: BTreeSet<String> = location
            .list()
            .await?
            .into_iter()
            .map(|(n, _)| n.split('/').next().unwrap_or_default().to_string())
            .collect();
        if !top.is_empty() {
            let is_backup = top.iter().all(|n| BACKUP_NAMES.contains(&n.as_str()));
            if !force || !is_backup {
                return Err(Error::usage_hint(
                    format!("output {location} is not empty"),
                    if is_backup {
                        "it holds a backup; choose a new folder or prefix, or pass --force to replace it"
                    } else {
                        "choose a new or empty folder or prefix; pgbarge never writes among other files"
                    },
                ));
            }
            remove_backup(location).await?;
        }
        if let Location::Local(dir) = location {
            std::fs::DirBuilder::new()
                .mode(0o700)
                .create(dir.join(DATA_TMP_DIR))
                .map_err(|e| Error::io("cannot create folder", dir.join(DATA_TMP_DIR), e))?;
        }
        Ok(OutputDir { location: location.clone(), created, _lock: lock })
    }

    /// Removes everything this run wrote (temp files and unfinished uploads
    /// are already gone), and the folder if the run created it. Runs while
    /// the lock is still held, so nothing here is another run's.
    pub(super) async fn remove_written(&self) {
        let _ = remove_backup(&self.location).await;
        if let Location::Local(dir) = &self.location
            && self.created
        {
            let _ = std::fs::remove_dir(dir);
        }
    }
}

/// Makes `dir` (and its parents) unless it exists; returns whether this call
/// created `dir` itself. The last step is one `mkdir`, so of two runs
/// starting at once exactly one learns it created the folder.
pub(super) fn create_folder(dir: &Path) -> Result<bool> {
    match std::fs::symlink_metadata(dir) {
        Ok(m) if m.is_dir() => return Ok(false),
        Ok(m) if m.file_type().is_symlink() && dir.is_dir() => return Ok(false),
        Ok(_) => {
            return Err(Error::usage(format!("{} exists and is not a folder", dir.display())));
        }
        Err(_) => {}
    }
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(parent)
            .map_err(|e| Error::io("cannot create folder", parent, e))?;
    }
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {
            // DirBuilder's mode is filtered by the umask; make it exact.
            let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
            Ok(true)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && dir.is_dir() => Ok(false),
        Err(e) => Err(Error::io("cannot create folder", dir, e)),
    }
}
