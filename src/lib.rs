//! pgbarge: move PostgreSQL table data through the COPY protocol — verified CSV
//! backups, database-to-database copies, selective restores, and a runbook
//! driver for plain SQL migrations.
//!
//! Each folder is a layer and imports point down only:
//!
//! - `cli` turns arguments into `options` (typed, every default in one place);
//! - `cmd`: one module per command, taking its options;
//! - `load` (what copy and restore share) and `runbook` (plan files);
//! - `stream` (COPY stream → stages → sink) and `storage` (folder or s3,
//!   sinks, readers, manifest);
//! - `catalog` (tables, patterns, FK order) and `conn` (conninfo, TLS,
//!   session, snapshot, locks, SSH tunnels);
//! - `format` (bytes only: CSV counter, binary walker, digests, zstd frames,
//!   compression, age encryption) and `ident` (table names, quoting).
//!
//! `error`, `redact`, `cancel`, `limits`, `progress` and `jobs` (what worker
//! pools share) serve every layer.
//! `format` and `stream::stages` know nothing of tokio-postgres, tokio or clap;
//! `storage` takes the block size and the CSV summary from `stream::stages`.

pub mod cancel;
pub mod catalog;
pub mod cli;
pub mod cmd;
pub mod conn;
pub mod error;
pub mod format;
pub mod ident;
pub mod jobs;
pub mod limits;
pub mod load;
pub mod options;
pub mod progress;
pub mod redact;
pub mod runbook;
pub mod storage;
pub mod stream;
pub mod wrap;
