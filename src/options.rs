//! Typed options per command: what a command needs, resolved — connections,
//! table selections, locations, modes, levels and durations, never raw
//! strings. The command line (`cli`) and a runbook's plan steps
//! (`cmd::run`) both build them, so a command cannot tell which one called it.
//!
//! This is the one home of every default: a flag or plan field left out takes
//! its value here ([`Mode::default`], [`Compression::default`],
//! [`DEFAULT_LOCK_WAIT`]), and nowhere else.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::catalog::compare::CompareOptions;
use crate::catalog::select::Selection;
use crate::conn::conninfo::ConnInfo;
use crate::error::{Error, Result};
use crate::format::compression::Compression;
use crate::format::encryption::{Identities, Recipient, Recipients};
use crate::load::{LoadOptions, Mode};
use crate::storage::location::Location;

/// How long any lock is waited for when `--lock-wait-timeout` (or a plan
/// step's `lock_wait_timeout`) is not given, like pg_dump's option.
pub const DEFAULT_LOCK_WAIT: Duration = Duration::from_secs(30);

impl Default for Mode {
    /// `fail`: a non-empty target table is refused before anything is written.
    fn default() -> Self {
        Mode::Fail
    }
}

impl Default for Compression {
    /// `zstd` at level 3.
    fn default() -> Self {
        Compression::Zstd { level: 3 }
    }
}

/// `--mode`, or its default.
///
/// # Errors
/// A usage error naming the valid modes.
pub fn mode(text: Option<&str>) -> Result<Mode> {
    text.map(Mode::parse).transpose().map(Option::unwrap_or_default)
}

/// `--compress`, or its default.
///
/// # Errors
/// A usage error for an unknown method or a level outside 1..=19.
pub fn compression(text: Option<&str>) -> Result<Compression> {
    text.map(Compression::parse).transpose().map(Option::unwrap_or_default)
}

/// `--lock-wait-timeout` in seconds, or its default.
///
/// # Errors
/// A usage error unless it is above 0 and within PostgreSQL's `lock_timeout`.
pub fn lock_wait(secs: Option<f64>) -> Result<Duration> {
    secs.map_or(Ok(DEFAULT_LOCK_WAIT), crate::conn::locks::parse_timeout)
}

/// `--encrypt-to` values: public keys, or `@FILE` naming a file of them
/// (one a line); `None` when there are none (a plain backup).
///
/// # Errors
/// A usage error naming the key or the file and line.
pub fn recipients(values: &[String]) -> Result<Option<Recipients>> {
    if values.is_empty() {
        return Ok(None);
    }
    let mut all = Vec::new();
    for v in values {
        match v.strip_prefix('@') {
            Some(file) => {
                let text = std::fs::read_to_string(file)
                    .map_err(|e| Error::io("cannot read the recipients file", file, e))?;
                let found = Recipients::parse_lines(&text, file)?;
                if found.is_empty() {
                    return Err(Error::usage(format!("{file} names no recipient")));
                }
                all.extend(found);
            }
            None => all.push(Recipient::parse(v)?),
        }
    }
    Recipients::new(all).map(Some)
}

/// The environment variable a passphrase may come from.
pub const PASSPHRASE_ENV: &str = "PGBARGE_PASSPHRASE";

/// What a backup is encrypted to: `--encrypt-to` recipients, else a
/// passphrase from `--encrypt-passphrase-file` or [`PASSPHRASE_ENV`] (the
/// backup's own key, sealed with it); `None` for a plain backup.
///
/// # Errors
/// A usage error for a bad recipient, an unreadable or empty passphrase
/// file, or recipients and a passphrase file together (age encrypts a file
/// to one or the other).
pub fn encryption(
    values: &[String],
    passphrase_file: Option<&std::path::Path>,
) -> Result<Option<Recipients>> {
    if let Some(f) = passphrase_file {
        if !values.is_empty() {
            return Err(Error::usage_hint(
                "--encrypt-to and --encrypt-passphrase-file cannot be used together",
                "encrypt to recipients' keys, or to a passphrase",
            ));
        }
        let text = std::fs::read_to_string(f)
            .map_err(|e| Error::io("cannot read the passphrase file", f, e))?;
        return Recipients::for_passphrase(&text, &f.display().to_string()).map(Some);
    }
    if values.is_empty() {
        return match std::env::var(PASSPHRASE_ENV) {
            Ok(p) if !p.is_empty() => Recipients::for_passphrase(&p, PASSPHRASE_ENV).map(Some),
            _ => Ok(None),
        };
    }
    recipients(values)
}

/// The keys an encrypted backup is read with: `--identity` files (age
/// identity files or SSH private keys), else a passphrase from
/// `--encrypt-passphrase-file` or [`PASSPHRASE_ENV`]; `None` when none is given.
///
/// # Errors
/// A usage error naming a file that cannot be read or holds no key.
pub fn identities(
    files: &[PathBuf],
    passphrase_file: Option<&std::path::Path>,
) -> Result<Option<Identities>> {
    if !files.is_empty() {
        let mut read = Vec::new();
        for f in files {
            let text =
                std::fs::read(f).map_err(|e| Error::io("cannot read the identity file", f, e))?;
            read.push((text, f.display().to_string()));
        }
        return Identities::from_files(read).map(Some);
    }
    if let Some(f) = passphrase_file {
        let text = std::fs::read_to_string(f)
            .map_err(|e| Error::io("cannot read the passphrase file", f, e))?;
        return Identities::passphrase(&text, &f.display().to_string()).map(Some);
    }
    match std::env::var(PASSPHRASE_ENV) {
        Ok(p) if !p.is_empty() => Identities::passphrase(&p, PASSPHRASE_ENV).map(Some),
        _ => Ok(None),
    }
}

/// What `copy --verify` compares before commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum VerifyLevel {
    /// No `--verify`.
    #[default]
    None,
    /// Source snapshot counts against the target's.
    Count,
    /// Also the stream's fingerprint against the target table's.
    Deep,
}

impl VerifyLevel {
    /// `--verify` (`count`), `--verify=deep`, or none.
    ///
    /// # Errors
    /// A usage error for another level, or `deep` with a mode that keeps
    /// rows (only `fail` and `truncate` leave exactly the source's rows).
    pub fn parse(text: Option<&str>, mode: Mode) -> Result<VerifyLevel> {
        let level = match text {
            None => VerifyLevel::None,
            Some("count") => VerifyLevel::Count,
            Some("deep") => VerifyLevel::Deep,
            Some(other) => {
                return Err(Error::usage(format!(
                    "invalid --verify level \"{other}\"; use --verify or --verify=deep"
                )));
            }
        };
        if level == VerifyLevel::Deep && !matches!(mode, Mode::Fail | Mode::Truncate) {
            return Err(Error::usage_hint(
                format!("--verify=deep needs --mode fail or truncate, not {}", mode.as_str()),
                "only then does each target table hold exactly the source's rows; use --verify to compare counts",
            ));
        }
        Ok(level)
    }
}

/// `list`.
#[derive(Debug)]
pub struct ListOptions {
    pub conn: Arc<ConnInfo>,
    pub selection: Selection,
    pub json: bool,
}

/// `backup`.
#[derive(Debug)]
pub struct BackupOptions {
    pub conn: Arc<ConnInfo>,
    pub selection: Selection,
    pub dir: Location,
    /// Workers; `None` is the smaller of 4 and the number of tables.
    pub jobs: Option<usize>,
    pub compression: Compression,
    pub schema: bool,
    pub force: bool,
    pub lock_wait_timeout: Duration,
    /// Encrypt every file to these recipients (`--encrypt-to`).
    pub encrypt_to: Option<Recipients>,
    /// Print one JSON document instead of the summary (and no progress).
    pub json: bool,
    pub quiet: bool,
}

/// `verify`.
#[derive(Debug)]
pub struct VerifyOptions {
    pub dir: Location,
    /// Compare with this database too.
    pub conn: Option<Arc<ConnInfo>>,
    pub selection: Selection,
    /// Workers; `None` is the smaller of 4 and the number of tables.
    pub jobs: Option<usize>,
    pub deep: bool,
    /// The `--expect` file (expected row counts), read when verify starts.
    pub expect: Option<PathBuf>,
    /// The keys of an encrypted backup; without them only its files are checked.
    pub keys: Option<Identities>,
    pub json: bool,
    pub quiet: bool,
    /// Print nothing, not even the results: a runbook step under `run -q`
    /// (a difference still fails the step, on stderr).
    pub silent: bool,
}

/// `copy`.
#[derive(Debug)]
pub struct CopyOptions {
    pub source: Arc<ConnInfo>,
    pub target: Arc<ConnInfo>,
    pub selection: Selection,
    pub options: LoadOptions,
    pub jobs: usize,
    pub per_table_commit: bool,
    pub dry_run: bool,
    pub verify: VerifyLevel,
    /// Print one JSON document instead of the summary (and no progress).
    pub json: bool,
    pub quiet: bool,
}

/// `restore`.
#[derive(Debug)]
pub struct RestoreOptions {
    pub dir: Location,
    pub conn: Arc<ConnInfo>,
    pub selection: Selection,
    pub options: LoadOptions,
    pub per_table_commit: bool,
    pub ignore_unlisted: bool,
    pub jobs: usize,
    pub schema: bool,
    /// Drop the target's user schemas first, and restore schema and rows.
    pub clean: bool,
    /// The keys of an encrypted backup.
    pub keys: Option<Identities>,
    pub dry_run: bool,
    /// Print one JSON document instead of the summary (and no progress).
    pub json: bool,
    pub quiet: bool,
}

/// `sql`.
#[derive(Debug)]
pub struct SqlOptions {
    pub conn: Arc<ConnInfo>,
    /// The files, run in this order (read and checked before connecting).
    pub files: Vec<String>,
    pub single_transaction: bool,
    /// Print one JSON document (files, statements, result rows) instead.
    pub json: bool,
    pub quiet: bool,
}

/// `diff`.
#[derive(Debug)]
pub struct DiffOptions {
    pub source: Arc<ConnInfo>,
    pub target: Arc<ConnInfo>,
    /// Restricts table-level objects (tables, columns, constraints, indexes,
    /// triggers, policies); an include pattern must match a table on either side.
    pub selection: Selection,
    /// Only objects in these schemas; every user schema when empty.
    pub schemas: Vec<String>,
    /// What counts beyond definitions: names, column order, versions,
    /// owners, privileges, comments (all off by default).
    pub compare: CompareOptions,
    /// How long a table another session holds exclusively is waited for
    /// (printing a default expression opens its table).
    pub lock_wait_timeout: Duration,
    pub json: bool,
    pub quiet: bool,
}

/// `run`.
#[derive(Debug)]
pub struct RunOptions {
    pub plan: PathBuf,
    pub dry_run: bool,
    /// The step to start at: its name or number.
    pub from: Option<String>,
    /// Print the run's log (run.json's content) as one JSON document instead.
    pub json: bool,
    pub quiet: bool,
}

/// One command's options.
#[derive(Debug)]
pub enum Options {
    List(ListOptions),
    Backup(BackupOptions),
    Verify(VerifyOptions),
    Copy(CopyOptions),
    Restore(RestoreOptions),
    Sql(SqlOptions),
    Diff(DiffOptions),
    Run(RunOptions),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn left_out_means_the_default() {
        assert_eq!(mode(None).unwrap(), Mode::Fail);
        assert_eq!(compression(None).unwrap(), Compression::Zstd { level: 3 });
        assert_eq!(compression(Some("zstd")).unwrap(), Compression::default());
        assert_eq!(lock_wait(None).unwrap(), Duration::from_secs(30));
        assert_eq!(VerifyLevel::parse(None, Mode::default()).unwrap(), VerifyLevel::None);
    }

    #[test]
    fn given_values_are_typed_and_checked() {
        assert_eq!(mode(Some("upsert")).unwrap(), Mode::Upsert);
        assert!(mode(Some("merge")).is_err());
        assert_eq!(compression(Some("none")).unwrap(), Compression::None);
        assert_eq!(lock_wait(Some(1.5)).unwrap(), Duration::from_millis(1500));
        assert!(lock_wait(Some(0.0)).is_err());
        assert_eq!(VerifyLevel::parse(Some("deep"), Mode::Truncate).unwrap(), VerifyLevel::Deep);
        assert!(VerifyLevel::parse(Some("deep"), Mode::Append).is_err());
        assert!(VerifyLevel::parse(Some("rows"), Mode::Fail).is_err());
    }
}
