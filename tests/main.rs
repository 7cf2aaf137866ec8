//! The integration test binary: every test runs against a real PostgreSQL
//! cluster started once for this binary (see `common::cluster`), each in its
//! own database.

mod common;

mod application_search_path;
mod backup_command;
mod catalog_read;
mod completions_man;
mod connections;
mod copy_command;
mod diff_command;
mod encrypted_backup;
mod erp_fixture;
mod json_output;
mod large_rows;
mod list_command;
mod lock_waits;
mod numeric_input;
mod readme_examples;
mod restore_clean;
mod restore_command;
mod restore_transcode;
mod run_command;
mod s3_store;
mod sql_command;
mod ssh_tunnel;
mod tampered_backup;
mod terminal_progress;
mod verbose_trace;
mod verify_command;
mod verify_retry;
mod worker_retry;
mod worker_stop;
