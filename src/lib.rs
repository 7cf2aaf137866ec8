//! pgbarge: move PostgreSQL table data through the COPY protocol — verified CSV
//! backups, database-to-database copies, selective restores.
//!
//! Dependencies point one way: `cmd` → `catalog`, `connect` → `select`,
//! `order`, `conninfo`, `error`. The lower modules know nothing of commands.

pub mod catalog;
pub mod cli;
pub mod cmd;
pub mod connect;
pub mod conninfo;
pub mod error;
pub mod order;
pub mod progress;
pub mod redact;
pub mod select;
