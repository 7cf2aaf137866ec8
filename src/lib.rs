//! pgbarge: move PostgreSQL table data through the COPY protocol — verified CSV
//! backups, database-to-database copies, selective restores, and a runbook
//! driver for plain SQL migrations.
//!
//! Dependencies point one way: `cmd` → `load`, `pipeline`, `manifest`,
//! `store`, `plan`, `snapshot`, `locks`, `catalog`, `connect` → `sink`, `source`,
//! `zstdframes`, `digest`, `csvfmt`, `binfmt`, `sqlfile`, `select`, `order`, `conninfo`. The
//! lower modules know nothing of tokio-postgres or commands.

pub mod binfmt;
pub mod cancel;
pub mod catalog;
pub mod cli;
pub mod cmd;
pub mod confined;
pub mod connect;
pub mod conninfo;
pub mod csvfmt;
pub mod digest;
pub mod error;
pub mod folder_lock;
pub mod limits;
pub mod load;
pub mod locks;
pub mod manifest;
pub mod order;
pub mod pipeline;
pub mod plan;
pub mod progress;
pub mod redact;
pub mod select;
pub mod sink;
pub mod snapshot;
pub mod source;
pub mod sqlfile;
pub mod store;
pub mod wrap;
pub mod zstdframes;
