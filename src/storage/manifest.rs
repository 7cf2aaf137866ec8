//! The backup's manifest (`manifest.json`) and `SHA256SUMS`.
//!
//! The manifest is written last: its presence means the backup is complete.
//! It holds the true table names, columns, counts, checksums and fingerprints;
//! never a password. Data file names are derived here so that no table name
//! can place a file outside `data/`.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::catalog::TableKind;
use crate::error::{Error, Result};
use crate::format::compression::Compression;
use crate::format::digest::Fingerprint;
use crate::storage::location::Location;
use crate::storage::sealed::{
    ENCRYPTED_FORMAT_VERSION, Encryption, Opened, PASSPHRASE_KEY_FILE, SEALED_MANIFEST_FILE,
    open_sealed, parse_public,
};

/// The manifest format's name.
pub const FORMAT_NAME: &str = "pgbarge-backup";
/// The version this build writes and the newest it reads. Version 2 stores
/// the schema as pg_dump's pre-data and post-data sections; version 1 as
/// one `schema.sql`, which is still read.
pub const FORMAT_VERSION: u32 = 2;
pub const MANIFEST_FILE: &str = "manifest.json";
pub const SUMS_FILE: &str = "SHA256SUMS";
pub const DATA_DIR: &str = "data";
/// Where a local backup's data files are written: renamed to [`DATA_DIR`]
/// once every file is whole, before the manifest (see `Location::publish_data`).
pub const DATA_TMP_DIR: &str = "data.tmp";
/// The whole schema in one file: what format 1 backups hold.
pub const SCHEMA_FILE: &str = "schema.sql";
/// pg_dump's pre-data section (types, tables, functions): run before the rows.
pub const SCHEMA_PRE_FILE: &str = "schema-pre.sql";
/// pg_dump's post-data section (indexes, constraints, triggers): run after them.
pub const SCHEMA_POST_FILE: &str = "schema-post.sql";
/// Every schema file name a backup folder may hold, of any format.
pub const SCHEMA_FILES: [&str; 3] = [SCHEMA_FILE, SCHEMA_PRE_FILE, SCHEMA_POST_FILE];

/// Where the data came from. No password, ever.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SourceInfo {
    pub host: String,
    pub port: u16,
    pub database: String,
    pub user: String,
    pub server_version: String,
    pub server_version_num: i32,
    pub system_identifier: Option<String>,
}

/// A column as backed up.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ManifestColumn {
    pub name: String,
    #[serde(rename = "type")]
    pub type_name: String,
    pub not_null: bool,
}

/// A sequence feeding a column, with its value when the backup was taken.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ManifestSequence {
    pub column: String,
    pub sequence: String,
    pub owned: bool,
    pub last_value: i64,
    pub is_called: bool,
}

/// One table of the backup.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ManifestTable {
    pub schema: String,
    pub name: String,
    pub kind: TableKind,
    pub columns: Vec<ManifestColumn>,
    pub rows: u64,
    pub csv_bytes: u64,
    pub csv_sha256: String,
    /// Relative to the backup folder: `data/NNNN.schema.table.csv[.zst]`,
    /// or `data/NNNN.csv[.zst].age` when encrypted.
    pub file: String,
    pub file_bytes: u64,
    pub file_sha256: String,
    pub fingerprint: Fingerprint,
    pub sequences: Vec<ManifestSequence>,
}

/// Table patterns as the user gave them.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct RecordedSelection {
    pub include: Vec<String>,
    pub exclude: Vec<String>,
    /// Every table of the database was backed up, with the schema: what
    /// `restore --clean` needs. Absent (false) in older manifests.
    #[serde(default)]
    pub whole_database: bool,
}

/// How a table's data file stands in a folder listing, before it is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoredFile {
    /// Listed with the recorded size.
    Present,
    /// Not there.
    Missing,
    /// There, but not the file recorded: its size, or not a regular file.
    Damaged(String),
}

impl ManifestTable {
    /// How this table's file stands in `dir`, before it is read. A local file
    /// is opened the way it will be read (nothing followed, regular files
    /// only) and its size taken from what was opened; a stored object's size
    /// comes from `listing` (name → size).
    pub fn stored_file(&self, dir: &Location, listing: &BTreeMap<String, u64>) -> StoredFile {
        let size = match dir {
            Location::Local(root) => match crate::storage::confined::open_file(root, &self.file) {
                Err(e) => return StoredFile::Damaged(format!("{}: {e}", self.file)),
                Ok(None) => None,
                Ok(Some(f)) => f.metadata().ok().map(|m| m.len()),
            },
            Location::S3(_) => listing.get(&self.file).copied(),
        };
        match size {
            None => StoredFile::Missing,
            Some(n) if n != self.file_bytes => StoredFile::Damaged(format!(
                "{}: is {n} bytes, the manifest records {}",
                self.file, self.file_bytes
            )),
            Some(_) => StoredFile::Present,
        }
    }

    /// The header line COPY writes for the recorded columns, without `\n`.
    pub fn header(&self) -> String {
        crate::format::csv::csv_header(self.columns.iter().map(|c| c.name.as_str()))
    }

    /// What is wrong with the header read from the file (`None` when the
    /// first line never ended), if anything. `csv_bytes`: bytes read so far.
    pub fn header_difference(&self, got: Option<&[u8]>, csv_bytes: u64) -> Option<String> {
        let want = self.header();
        match got {
            None if csv_bytes == 0 => Some("holds no CSV, not even a header".into()),
            None => Some("its first line (the header) never ends".into()),
            Some(h) if h != want.as_bytes() => Some(format!(
                "header is `{}`, the manifest's columns give `{want}`",
                String::from_utf8_lossy(h)
            )),
            Some(_) => None,
        }
    }

    /// Whether the file read is the one recorded: size and sha256.
    pub fn file_difference(&self, file: &crate::storage::sink::FileSummary) -> Option<String> {
        (file.file_bytes != self.file_bytes || file.file_sha256 != self.file_sha256).then(|| {
            format!(
                "file sha256 is {} ({} bytes), the manifest records {} ({} bytes)",
                file.file_sha256, file.file_bytes, self.file_sha256, self.file_bytes
            )
        })
    }

    /// How the CSV read differs from the recorded one: record count, bytes,
    /// sha256, and the fingerprint when it was computed.
    pub fn csv_differences(&self, csv: &crate::stream::stages::CsvSummary) -> Vec<String> {
        let mut v = Vec::new();
        if csv.rows != self.rows {
            v.push(format!("holds {} records, the manifest records {}", csv.rows, self.rows));
        }
        if csv.csv_bytes != self.csv_bytes {
            v.push(format!(
                "holds {} bytes of CSV, the manifest records {}",
                csv.csv_bytes, self.csv_bytes
            ));
        }
        if csv.csv_sha256 != self.csv_sha256 {
            v.push(format!(
                "CSV sha256 is {}, the manifest records {}",
                csv.csv_sha256, self.csv_sha256
            ));
        }
        if let Some(fp) = &csv.fingerprint
            && fp != &self.fingerprint
        {
            v.push(format!(
                "fingerprint is {} over {} records, the manifest records {} over {}",
                fp.sum, fp.records, self.fingerprint.sum, self.fingerprint.records
            ));
        }
        v
    }
}

/// The whole manifest.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Manifest {
    pub format: String,
    pub format_version: u32,
    pub tool_version: String,
    pub started_at: String,
    pub finished_at: String,
    pub source: SourceInfo,
    pub snapshot: String,
    pub compression: Compression,
    pub fingerprint_algorithm: String,
    /// Whether the schema is part of the backup.
    pub has_schema: bool,
    /// sha256 of `schema.sql` (format 1 backups).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema_sha256: Option<String>,
    /// sha256 of `schema-pre.sql` (format 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema_pre_sha256: Option<String>,
    /// sha256 of `schema-post.sql` (format 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema_post_sha256: Option<String>,
    /// The `-t`/`-T` patterns the backup was taken with, so that verify can
    /// tell a table the backup should hold from one it never meant to.
    #[serde(default)]
    pub selection: RecordedSelection,
    /// In foreign-key load order (parents first).
    pub tables: Vec<ManifestTable>,
    /// How every file is encrypted; absent for a plain backup. Only the
    /// manifest inside `manifest.age` has it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption: Option<Encryption>,
}

/// `NNNN.<schema>.<table>.csv[.zst]` with every character outside
/// `[A-Za-z0-9_-]` replaced by `_`. The number keeps names unique even when
/// replacement or case makes two tables look alike. Encrypted, the name
/// must not tell the table: `NNNN.csv[.zst].age`.
pub fn data_file_name(
    number: usize,
    schema: &str,
    table: &str,
    compression: Compression,
    encrypted: bool,
) -> String {
    if encrypted {
        let age = crate::format::encryption::SUFFIX;
        return format!("{number:04}.csv{}{age}", compression.suffix());
    }
    let safe = |s: &str| -> String {
        s.chars()
            .map(|c| if c.is_ascii_alphanumeric() || c == '_' || c == '-' { c } else { '_' })
            .collect()
    };
    format!("{number:04}.{}.{}.csv{}", safe(schema), safe(table), compression.suffix())
}

impl Manifest {
    /// The `SHA256SUMS` text: `sha256  path` per data file, as `sha256sum -c` reads.
    pub fn sha256sums(&self) -> String {
        self.tables.iter().map(|t| format!("{}  {}\n", t.file_sha256, t.file)).collect()
    }

    /// The manifest as written: pretty JSON and a newline.
    pub fn to_json(&self) -> Vec<u8> {
        let mut json = serde_json::to_vec_pretty(self).expect("manifest serializes");
        json.push(b'\n');
        json
    }

    /// The schema files this backup holds, in the order they run around the
    /// data: (name, recorded sha256). Format 2 backups hold the pre-data and
    /// post-data sections; format 1 backups one `schema.sql`, run before the
    /// rows; a backup without `--schema`, none.
    pub fn schema_files(&self) -> Vec<(&'static str, Option<&str>)> {
        if !self.has_schema {
            Vec::new()
        } else if self.schema_pre_sha256.is_some() || self.schema_post_sha256.is_some() {
            vec![
                (SCHEMA_PRE_FILE, self.schema_pre_sha256.as_deref()),
                (SCHEMA_POST_FILE, self.schema_post_sha256.as_deref()),
            ]
        } else {
            vec![(SCHEMA_FILE, self.schema_sha256.as_deref())]
        }
    }

    /// The name a file of the backup is stored under: `name.age` when the
    /// backup is encrypted.
    pub fn stored_name(&self, name: &str) -> String {
        match self.encryption {
            Some(_) => format!("{name}{}", crate::format::encryption::SUFFIX),
            None => name.to_string(),
        }
    }

    /// The entries of `listing` (name → size; folders end in `/`) that are
    /// not part of this backup, each with why.
    pub fn unlisted_files(&self, listing: &BTreeMap<String, u64>) -> Vec<String> {
        let listed: std::collections::HashSet<&str> =
            self.tables.iter().map(|t| t.file.as_str()).collect();
        let data_prefix = format!("{DATA_DIR}/");
        let schema: Vec<String> =
            self.schema_files().into_iter().map(|(f, _)| self.stored_name(f)).collect();
        let sealed = self.encryption.is_some();
        listing
            .keys()
            .filter(|name| match name.as_str() {
                MANIFEST_FILE | SUMS_FILE => false,
                SEALED_MANIFEST_FILE if sealed => false,
                n if self.encryption.as_ref().and_then(|e| e.passphrase_key.as_deref()) == Some(n) => {
                    false
                }
                n if schema.iter().any(|f| f == n) => false,
                n if n == data_prefix => false,
                n => !listed.contains(n),
            })
            .map(|name| {
                if name.ends_with(".tmp") {
                    format!(
                        "{name}: a left-over temporary file (from an interrupted write), not part of the backup"
                    )
                } else {
                    format!("{name}: not listed in the manifest")
                }
            })
            .collect()
    }

    /// Writes `SHA256SUMS` then `manifest.json`, each whole, the manifest last.
    ///
    /// # Errors
    /// I/O or store errors naming the file.
    pub async fn write(&self, location: &Location) -> Result<()> {
        location.write(SUMS_FILE, self.sha256sums().as_bytes()).await?;
        location.write(MANIFEST_FILE, &self.to_json()).await
    }

    /// Reads and checks a local backup's manifest.
    ///
    /// # Errors
    /// As [`Manifest::read_at`].
    pub fn read(dir: &Path) -> Result<Manifest> {
        if !dir.is_dir() {
            return Err(no_such_backup(&dir.display().to_string(), "no such folder"));
        }
        let path = dir.join(MANIFEST_FILE);
        match crate::storage::confined::read_file(dir, MANIFEST_FILE)? {
            Some(t) => Self::parse(&t, &path.display().to_string()),
            None => Err(incomplete(&dir.display().to_string())),
        }
    }

    /// Reads and checks the manifest at a backup's location; an encrypted
    /// backup's is opened with `keys`, when given.
    ///
    /// # Errors
    /// As [`Manifest::read_at`]; for an encrypted backup, as
    /// [`crate::storage::sealed::open_sealed`].
    pub async fn open_at(
        location: &Location,
        keys: Option<&crate::format::encryption::Identities>,
    ) -> Result<Opened> {
        let (text, shown) = Self::read_text(location).await?;
        if Self::check_header(&text, &shown)?.encryption.is_none() {
            return Self::from_text(&text, &shown).map(Opened::Plain);
        }
        let public = parse_public(&text, &shown)?;
        let opened = match keys {
            Some(keys) => Some(open_sealed(location, &public, keys).await?),
            None => None,
        };
        Ok(Opened::Sealed { public: Box::new(public), opened })
    }

    /// Reads and checks the manifest at a backup's location.
    ///
    /// # Errors
    /// A difference when there is no manifest (an incomplete backup) or it
    /// does not parse; a usage error when a local folder does not exist or
    /// the manifest is another format or newer, or an encrypted backup's.
    pub async fn read_at(location: &Location) -> Result<Manifest> {
        let (text, shown) = Self::read_text(location).await?;
        Self::parse(&text, &shown)
    }

    /// `manifest.json`'s bytes and how to name it.
    async fn read_text(location: &Location) -> Result<(Vec<u8>, String)> {
        let shown = location.path(MANIFEST_FILE).display().to_string();
        match location {
            Location::Local(dir) => {
                if !dir.is_dir() {
                    return Err(no_such_backup(&dir.display().to_string(), "no such folder"));
                }
                match crate::storage::confined::read_file(dir, MANIFEST_FILE)? {
                    Some(t) => Ok((t, shown)),
                    None => Err(incomplete(&dir.display().to_string())),
                }
            }
            Location::S3(_) => match location.read(MANIFEST_FILE).await? {
                Some(t) => Ok((t, shown)),
                None => {
                    // A GET says only "not found"; a listing tells a missing
                    // bucket from a missing manifest.
                    if location.list().await?.is_empty() {
                        return Err(no_such_backup(
                            &location.to_string(),
                            "nothing at this prefix",
                        ));
                    }
                    Err(incomplete(&location.to_string()))
                }
            },
        }
    }

    /// Parses and checks manifest text read from `shown`.
    pub(crate) fn parse(text: &[u8], shown: &str) -> Result<Manifest> {
        let header = Self::check_header(text, shown)?;
        if header.encryption.is_some() && header.tables.is_none() {
            return Err(Error::usage_hint(
                format!("{shown} is an encrypted backup's manifest"),
                "pass --identity FILE with the secret key of one of its recipients",
            ));
        }
        Self::from_text(text, shown)
    }

    /// The manifest's header, checked to be a pgbarge manifest's of a
    /// version this build reads. The rest of the text is skipped, not built
    /// into a tree: the manifest is then read straight into its types (for
    /// a thousand tables, building a `serde_json::Value` first took most of
    /// restore's 40 ms before it connected).
    fn check_header(text: &[u8], shown: &str) -> Result<Header> {
        let header: Header = serde_json::from_slice(text).map_err(|e| Error::Difference {
            msg: format!("{shown} is not valid JSON: {e}"),
            hint: None,
        })?;
        if header.format.as_ref().and_then(|f| f.as_str()) != Some(FORMAT_NAME) {
            return Err(Error::usage(format!("{shown} is not a pgbarge backup manifest")));
        }
        let version = header.format_version.as_ref().and_then(|v| v.as_u64()).unwrap_or(0);
        if version > ENCRYPTED_FORMAT_VERSION as u64 {
            return Err(Error::usage_hint(
                format!(
                    "{shown} has format version {version}; this pgbarge reads version {ENCRYPTED_FORMAT_VERSION} and older"
                ),
                "use a newer pgbarge to read this backup",
            ));
        }
        Ok(header)
    }

    fn from_text(text: &[u8], shown: &str) -> Result<Manifest> {
        let manifest: Manifest = serde_json::from_slice(text).map_err(|e| Error::Difference {
            msg: format!("{shown} does not have the expected fields: {e}"),
            hint: None,
        })?;
        for t in &manifest.tables {
            let file = Path::new(&t.file);
            let inside = file.starts_with(DATA_DIR)
                && file.components().all(|c| matches!(c, std::path::Component::Normal(_)));
            if !inside {
                return Err(Error::Difference {
                    msg: format!("{shown} names a data file outside {DATA_DIR}/: {}", t.file),
                    hint: None,
                });
            }
        }
        Ok(manifest)
    }
}

/// What [`Manifest::check_header`] reads of a manifest before the rest; any
/// JSON type is accepted here, so that a wrong one is "not a pgbarge
/// manifest" rather than a parse error.
#[derive(Deserialize)]
struct Header {
    format: Option<serde_json::Value>,
    format_version: Option<serde_json::Value>,
    /// Present (not null) in an encrypted backup's manifest.
    encryption: Option<serde::de::IgnoredAny>,
    tables: Option<serde::de::IgnoredAny>,
}

/// A backup place that holds nothing at all: bad input (exit 2), the same
/// for a local folder and an object-store prefix.
fn no_such_backup(place: &str, why: &str) -> Error {
    Error::usage_hint(
        format!("{place}: no such backup ({why})"),
        "check the path or prefix; a backup folder holds manifest.json, SHA256SUMS and data/",
    )
}

fn incomplete(place: &str) -> Error {
    Error::Difference {
        msg: format!(
            "{place} has no {MANIFEST_FILE}: the backup is incomplete (interrupted or failed before it finished)"
        ),
        hint: Some("take the backup again; an incomplete backup cannot be trusted".into()),
    }
}

/// Removes a backup's files from `dir`: the manifest first, so a backup never
/// looks whole while it is being removed, then `SHA256SUMS`, the schema files
/// and `data/`. Files that are not there are fine; nothing else in `dir` is
/// touched.
///
/// # Errors
/// The first removal that fails, naming the file.
pub fn remove_backup_files(dir: &Path) -> Result<()> {
    let age = crate::format::encryption::SUFFIX;
    let sealed = SCHEMA_FILES.iter().map(|f| format!("{f}{age}"));
    let files = [MANIFEST_FILE, SUMS_FILE, SEALED_MANIFEST_FILE, PASSPHRASE_KEY_FILE]
        .into_iter()
        .map(String::from)
        .chain(SCHEMA_FILES.iter().map(|f| f.to_string()))
        .chain(sealed);
    for f in files {
        let p = dir.join(f);
        match std::fs::remove_file(&p) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(Error::io("cannot remove", &p, e));
            }
            _ => {}
        }
    }
    for folder in [DATA_DIR, DATA_TMP_DIR] {
        let data = dir.join(folder);
        match std::fs::remove_dir_all(&data) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(Error::io("cannot remove", &data, e));
            }
            _ => {}
        }
    }
    Ok(())
}

/// Removes a backup wherever it is: locally as [`remove_backup_files`] does;
/// in a store every object under the prefix, the manifest first.
///
/// # Errors
/// The listing or a removal failed.
pub async fn remove_backup(location: &Location) -> Result<()> {
    match location {
        Location::Local(dir) => remove_backup_files(dir),
        Location::S3(_) => {
            let mut names: Vec<String> =
                location.list().await?.into_iter().map(|(n, _)| n).collect();
            names.sort_by_key(|n| n != MANIFEST_FILE);
            location.delete(&names).await
        }
    }
}

/// Now as RFC 3339 UTC.
pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_are_safe_and_numbered() {
        let z = Compression::Zstd { level: 3 };
        assert_eq!(data_file_name(1, "public", "User", z, false), "0001.public.User.csv.zst");
        assert_eq!(data_file_name(2, "public", "../../x", z, false), "0002.public.______x.csv.zst");
        assert_eq!(
            data_file_name(3, "a/b", "my.table", Compression::None, false),
            "0003.a_b.my_table.csv"
        );
        assert_eq!(data_file_name(4, "s", "Überstunden", z, false), "0004.s._berstunden.csv.zst");
        let long = "x".repeat(63);
        assert!(data_file_name(9999, &long, &long, z, false).len() < 255);
        assert_eq!(data_file_name(7, "public", "User", z, true), "0007.csv.zst.age");
        assert_eq!(data_file_name(8, "public", "User", Compression::None, true), "0008.csv.age");
    }
}
