//! What copy and restore share: the load side.
//!
//! Planning, before anything is written: tables matched by name in the
//! target, columns by name, keys for `skip`/`upsert`, parent-first order from
//! the target's foreign keys, cycles, and what `truncate` would reach. Then
//! the load itself inside the target's transaction: trigger handling, the
//! mode (emptiness check, `TRUNCATE`, staging table and `INSERT ... ON
//! CONFLICT`), `COPY ... FROM STDIN` fed block by block, sequences advanced,
//! and the checks made before commit. Nothing here knows where the blocks come
//! from (a source database or a backup file).
//!
//! [`plan`] decides, [`loader`] loads inside a transaction, [`pool`] runs a
//! plan on one or more sessions, [`read_ahead`] reads a one-transaction
//! load's sources ahead of the target, [`report`] prints what happened.

pub mod loader;
pub mod plan;
pub mod pool;
pub mod read_ahead;
pub mod report;

use crate::error::{Error, Result};
use crate::ident::TableName;

/// What to do with rows already in a target table (DESIGN.md's mode table).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Refuse a non-empty target table, before anything is written.
    Fail,
    /// Empty the table in the same transaction, then load.
    Truncate,
    /// Keep the rows; a key clash is an error and rolls back.
    Append,
    /// Keep the rows; incoming rows whose key exists are skipped.
    Skip,
    /// Keep the rows; incoming rows whose key exists replace them.
    Upsert,
}

impl Mode {
    /// Parses `--mode`.
    ///
    /// # Errors
    /// A usage error naming the valid modes.
    pub fn parse(s: &str) -> Result<Mode> {
        Ok(match s {
            "fail" => Mode::Fail,
            "truncate" => Mode::Truncate,
            "append" => Mode::Append,
            "skip" => Mode::Skip,
            "upsert" => Mode::Upsert,
            _ => {
                return Err(Error::usage_hint(
                    format!("invalid --mode \"{s}\""),
                    "use fail, truncate, append, skip or upsert",
                ));
            }
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Fail => "fail",
            Mode::Truncate => "truncate",
            Mode::Append => "append",
            Mode::Skip => "skip",
            Mode::Upsert => "upsert",
        }
    }

    /// Whether rows go through a staging table and `INSERT ... ON CONFLICT`.
    pub fn stages(self) -> bool {
        matches!(self, Mode::Skip | Mode::Upsert)
    }
}

/// How the load is done.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    pub mode: Mode,
    pub disable_triggers: bool,
    pub cascade: bool,
    /// The longest wait for any lock on the target (`--lock-wait-timeout`):
    /// the load transactions' `lock_timeout`.
    pub lock_wait_timeout: std::time::Duration,
}

/// A table as its data arrives: its name and columns in stream order.
#[derive(Debug, Clone)]
pub struct Incoming {
    pub name: TableName,
    /// (name, type) of each column in the stream.
    pub columns: Vec<(String, String)>,
}

/// Checks `-j` against `--per-table-commit`, shared by copy and restore.
///
/// # Errors
/// A usage error for 0, or more than 1 without per-table commits.
pub fn parse_jobs(jobs: Option<usize>, per_table_commit: bool) -> Result<usize> {
    let jobs = crate::limits::jobs(jobs)?.unwrap_or(1);
    if jobs > 1 && !per_table_commit {
        return Err(Error::usage_hint(
            "-j greater than 1 needs --per-table-commit",
            "one target transaction is one stream; parallel loads commit table by table",
        ));
    }
    Ok(jobs)
}
