//! The command line: clap structs holding plain data, and the one step that
//! turns them into typed [`Options`] (connections, patterns, locations,
//! modes). Commands never see these structs; defaults live in
//! [`crate::options`], so a flag left out here means "the default" there.

use std::path::PathBuf;
use std::sync::Arc;

use clap::{Args, Parser, Subcommand};

mod into_options;

pub use self::into_options::resolve_with_bastion;

use crate::catalog::select::Selection;
use crate::conn::conninfo::{ConnInfo, process_env, resolve};
use crate::conn::tunnel::Bastion;
use crate::error::{Error, Result};
use crate::load::{LoadOptions, parse_jobs};
use crate::options::{
    self, BackupOptions, CopyOptions, DiffOptions, ListOptions, Options, RestoreOptions,
    RunOptions, SqlOptions, VerifyLevel, VerifyOptions,
};
use crate::storage::location::Location;

/// Move PostgreSQL table data through COPY: verified CSV backups, database to
/// database copies, selective restores.
#[derive(Debug, Parser)]
#[command(name = "pgbarge", version, about, max_term_width = 100)]
pub struct Cli {
    /// Print every SQL statement sent, with its duration and connection, on stderr (passwords
    /// masked).
    #[arg(short, long, global = true)]
    pub verbose: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// List the tables a selection picks, in foreign-key load order.
    List(ListArgs),
    /// Back up tables to checksummed CSV files (one snapshot, zstd, manifest last).
    Backup(BackupArgs),
    /// Prove a backup is whole (checksums, record counts, headers) and, with -d,
    /// compare it with a live database.
    Verify(VerifyArgs),
    /// Stream tables from one database into another, in one target transaction.
    Copy(CopyArgs),
    /// Load chosen tables from a backup, checked while they load, all-or-nothing.
    Restore(RestoreArgs),
    /// Run plain SQL files (DDL) in order; a failure names file, line and column.
    Sql(SqlArgs),
    /// Compare two databases' schemas object by object; exit 1 when they differ.
    Diff(DiffArgs),
    /// Run a migration runbook from a plan file, with a log and a rollback command.
    Run(RunArgs),
    /// Print a shell completion script: `pgbarge completions bash > /etc/bash_completion.d/pgbarge`.
    Completions(CompletionsArgs),
    /// Print the manual page (roff): `pgbarge man | man -l -`, or `pgbarge man backup`.
    Man(ManArgs),
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell: bash, zsh, fish (also elvish, powershell).
    #[arg(value_name = "SHELL")]
    pub shell: clap_complete::Shell,
}

#[derive(Debug, Args)]
pub struct ManArgs {
    /// A command's own page (`pgbarge-backup`); the main page without it.
    #[arg(value_name = "COMMAND")]
    pub command: Option<String>,
}

/// A database connection: URL or keyword string; missing parts come from the
/// PG* environment and ~/.pgpass, as with libpq.
#[derive(Debug, Args, Clone, Default)]
pub struct ConnArgs {
    /// Connection: `postgresql://user@host:5432/db?sslmode=verify-full` or `host=/tmp dbname=app`
    #[arg(short = 'd', long = "dbname", value_name = "CONN")]
    pub conn: Option<String>,
    #[command(flatten)]
    pub ssh: SshArgs,
}

/// A bastion to reach the database through (an SSH tunnel with the system's ssh).
#[derive(Debug, Args, Clone, Default)]
pub struct SshArgs {
    /// Reach the database through an SSH tunnel via this bastion: `[USER@]HOST[:PORT]`, HOST may
    /// be a Host alias of ~/.ssh/config; the connection's host and port stay the database's own.
    #[arg(long = "ssh", value_name = "[USER@]HOST[:PORT]")]
    pub ssh: Option<String>,
    /// The identity file ssh offers to the bastion (default: ssh's own choice).
    #[arg(long = "ssh-key", value_name = "FILE", requires = "ssh")]
    pub ssh_key: Option<String>,
}

impl SshArgs {
    /// The bastion, if one is given.
    ///
    /// # Errors
    /// A usage error for a malformed `[USER@]HOST[:PORT]`.
    pub fn bastion(&self) -> Result<Option<Bastion>> {
        bastion(self.ssh.as_deref(), self.ssh_key.as_deref())
    }
}

fn bastion(ssh: Option<&str>, key: Option<&str>) -> Result<Option<Bastion>> {
    ssh.map(|s| Bastion::parse(s, key)).transpose()
}

/// Which tables: include and exclude patterns.
#[derive(Debug, Args, Clone, Default)]
pub struct TableArgs {
    /// Include tables matching PATTERN (`schema.table` or `table`, `*` and `?` wildcards,
    /// case-sensitive; double-quote a part to take it literally). Repeatable.
    #[arg(short = 't', long = "table", value_name = "PATTERN")]
    pub include: Vec<String>,
    /// Exclude tables matching PATTERN. Repeatable.
    #[arg(short = 'T', long = "exclude-table", value_name = "PATTERN")]
    pub exclude: Vec<String>,
}

/// The keys of an encrypted backup.
#[derive(Debug, Args, Clone, Default)]
pub struct KeyArgs {
    /// An age identity file (age-keygen) or SSH private key to open an encrypted backup with.
    /// Repeatable.
    #[arg(long = "identity", value_name = "FILE")]
    pub identity: Vec<PathBuf>,
    /// A file whose first line is the passphrase an encrypted backup was taken with (or set
    /// PGBARGE_PASSPHRASE).
    #[arg(long = "encrypt-passphrase-file", value_name = "FILE")]
    pub passphrase_file: Option<PathBuf>,
}

/// Bastions for a command with two connections.
#[derive(Debug, Args, Clone, Default)]
pub struct BastionArgs {
    /// Reach --source through an SSH tunnel via this bastion (see `--ssh` of backup).
    #[arg(long, value_name = "[USER@]HOST[:PORT]")]
    pub source_ssh: Option<String>,
    /// The identity file ssh offers to --source-ssh.
    #[arg(long, value_name = "FILE", requires = "source_ssh")]
    pub source_ssh_key: Option<String>,
    /// Reach --target through an SSH tunnel via this bastion.
    #[arg(long, value_name = "[USER@]HOST[:PORT]")]
    pub target_ssh: Option<String>,
    /// The identity file ssh offers to --target-ssh.
    #[arg(long, value_name = "FILE", requires = "target_ssh")]
    pub target_ssh_key: Option<String>,
}

impl BastionArgs {
    /// `--source` and `--target` resolved, each with its bastion.
    fn resolve(&self, source: &str, target: &str) -> Result<(Arc<ConnInfo>, Arc<ConnInfo>)> {
        let source = resolve_with_bastion(
            source,
            bastion(self.source_ssh.as_deref(), self.source_ssh_key.as_deref())?,
        )
        .map_err(|e| e.context("--source"))?;
        let target = resolve_with_bastion(
            target,
            bastion(self.target_ssh.as_deref(), self.target_ssh_key.as_deref())?,
        )
        .map_err(|e| e.context("--target"))?;
        Ok((source, target))
    }
}

#[derive(Debug, Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub conn: ConnArgs,
    #[command(flatten)]
    pub tables: TableArgs,
    /// Print machine-readable JSON.
    #[arg(long)]
    pub json: bool,
    /// Print nothing but results.
    #[arg(short, long)]
    pub quiet: bool,
}

#[derive(Debug, Args)]
pub struct BackupArgs {
    #[command(flatten)]
    pub conn: ConnArgs,
    /// The backup folder; must be new or empty (see --force).
    #[arg(short = 'o', long = "output", value_name = "DIR")]
    pub output: String,
    #[command(flatten)]
    pub tables: TableArgs,
    /// Parallel workers (default: the smaller of 4 and the number of tables).
    #[arg(short = 'j', long = "jobs", value_name = "N")]
    pub jobs: Option<usize>,
    /// `zstd` (level 3, the default), `zstd:LEVEL` (1-19) or `none`.
    #[arg(long, value_name = "METHOD")]
    pub compress: Option<String>,
    /// Also write schema.sql: `pg_dump --schema-only` of the same snapshot.
    #[arg(long)]
    pub schema: bool,
    /// Replace a previous pgbarge backup in DIR (its manifest is removed first).
    #[arg(long)]
    pub force: bool,
    /// Encrypt every file with age to RECIPIENT: an age public key (age1...), an SSH public key
    /// (ssh-ed25519 or ssh-rsa), or @FILE with one per line. Repeatable.
    #[arg(long = "encrypt-to", value_name = "RECIPIENT")]
    pub encrypt_to: Vec<String>,
    /// Encrypt every file with age to the passphrase on FILE's first line (PGBARGE_PASSPHRASE
    /// in the environment does the same), for those without keys.
    #[arg(long = "encrypt-passphrase-file", value_name = "FILE")]
    pub encrypt_passphrase_file: Option<PathBuf>,
    /// Seconds to wait for each table's lock before failing, naming the sessions in the way
    /// (like pg_dump's option; default 30).
    #[arg(long, value_name = "SECS")]
    pub lock_wait_timeout: Option<f64>,
    /// Print one JSON document on stdout instead of the summary (no progress).
    #[arg(long)]
    pub json: bool,
    /// No progress and no summary; errors only.
    #[arg(short, long)]
    pub quiet: bool,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The backup folder.
    #[arg(value_name = "DIR")]
    pub dir: String,
    /// Also compare with this database: row counts, or fingerprints with --deep.
    #[command(flatten)]
    pub conn: ConnArgs,
    #[command(flatten)]
    pub tables: TableArgs,
    /// Files checked in parallel (default: the smaller of 4 and the number of tables).
    #[arg(short = 'j', long = "jobs", value_name = "N")]
    pub jobs: Option<usize>,
    /// Also recompute every table's content fingerprint (and, with -d, the live one).
    #[arg(long)]
    pub deep: bool,
    /// Expected row counts: a CSV file with the header `table,count`.
    #[arg(long, value_name = "FILE")]
    pub expect: Option<String>,
    #[command(flatten)]
    pub keys: KeyArgs,
    /// Print machine-readable JSON.
    #[arg(long)]
    pub json: bool,
    /// No progress and no summary; results and errors only.
    #[arg(short, long)]
    pub quiet: bool,
}

#[derive(Debug, Args)]
pub struct CopyArgs {
    /// The database to read (one snapshot).
    #[arg(long, value_name = "CONN")]
    pub source: String,
    /// The database to load.
    #[arg(long, value_name = "CONN")]
    pub target: String,
    #[command(flatten)]
    pub bastions: BastionArgs,
    #[command(flatten)]
    pub tables: TableArgs,
    #[command(flatten)]
    pub load: LoadArgs,
    /// Before commit, compare counts (`--verify`) or content fingerprints (`--verify=deep`).
    #[arg(long, value_name = "LEVEL", num_args = 0..=1, require_equals = true, default_missing_value = "count")]
    pub verify: Option<String>,
    /// Print one JSON document on stdout instead of the summary (no progress).
    #[arg(long)]
    pub json: bool,
    /// No progress and no summary; errors only.
    #[arg(short, long)]
    pub quiet: bool,
}

/// The flags of the load that copy and restore share.
#[derive(Debug, Args)]
pub struct LoadArgs {
    /// What happens to rows already in a target table: fail (the default), truncate, append,
    /// skip, upsert.
    #[arg(long, value_name = "MODE")]
    pub mode: Option<String>,
    /// Tables loaded in parallel; needs --per-table-commit (one transaction is one stream).
    #[arg(short = 'j', long = "jobs", value_name = "N")]
    pub jobs: Option<usize>,
    /// Load with the target's user triggers off (superuser: session_replication_role = replica;
    /// otherwise ALTER TABLE ... DISABLE TRIGGER USER on tables the user owns).
    #[arg(long)]
    pub disable_triggers: bool,
    /// Let --mode truncate empty tables that reference the chosen ones too.
    #[arg(long)]
    pub cascade: bool,
    /// Commit table by table instead of once for the whole load.
    #[arg(long)]
    pub per_table_commit: bool,
    /// Check everything and print the plan; write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Seconds to wait for each lock on a target table before failing, naming the sessions in the
    /// way (default 30).
    #[arg(long, value_name = "SECS")]
    pub lock_wait_timeout: Option<f64>,
}

#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// The backup folder.
    #[arg(value_name = "DIR")]
    pub dir: String,
    #[command(flatten)]
    pub conn: ConnArgs,
    #[command(flatten)]
    pub tables: TableArgs,
    #[command(flatten)]
    pub load: LoadArgs,
    /// First run the backup's schema.sql into the (empty) target database.
    #[arg(long)]
    pub schema: bool,
    /// Put the whole database back to a full backup with schema: drop every user schema (what
    /// a migration added too), recreate the schema, load every table; one transaction.
    #[arg(long)]
    pub clean: bool,
    /// Restore even though the folder holds files the manifest does not list.
    #[arg(long)]
    pub ignore_unlisted: bool,
    #[command(flatten)]
    pub keys: KeyArgs,
    /// Print one JSON document on stdout instead of the summary (no progress).
    #[arg(long)]
    pub json: bool,
    /// No progress and no summary; errors only.
    #[arg(short, long)]
    pub quiet: bool,
}

#[derive(Debug, Args)]
pub struct SqlArgs {
    #[command(flatten)]
    pub conn: ConnArgs,
    /// The files, run in the order given.
    #[arg(value_name = "FILE")]
    pub files: Vec<String>,
    /// Run every file inside one transaction (files must not hold BEGIN/COMMIT).
    #[arg(long, short = '1')]
    pub single_transaction: bool,
    /// Print one JSON document on stdout instead of the summary (no progress).
    #[arg(long)]
    pub json: bool,
    /// Errors only.
    #[arg(short, long)]
    pub quiet: bool,
}

#[derive(Debug, Args)]
pub struct DiffArgs {
    /// The database whose schema is wanted (the local one).
    #[arg(long, value_name = "CONN")]
    pub source: String,
    /// The database checked against it (production).
    #[arg(long, value_name = "CONN")]
    pub target: String,
    #[command(flatten)]
    pub bastions: BastionArgs,
    /// -t/-T restrict the table-level objects: tables, columns, constraints, indexes, triggers,
    /// policies.
    #[command(flatten)]
    pub tables: TableArgs,
    /// Only objects in this schema. Repeatable.
    #[arg(long = "schema", value_name = "NAME")]
    pub schemas: Vec<String>,
    /// Match constraints and indexes by name too (default: by table and definition).
    #[arg(long)]
    pub names: bool,
    /// Report columns' physical order.
    #[arg(long)]
    pub column_order: bool,
    /// Compare extension versions.
    #[arg(long)]
    pub versions: bool,
    /// Compare owners.
    #[arg(long)]
    pub owners: bool,
    /// Compare privileges (grants).
    #[arg(long)]
    pub privileges: bool,
    /// Compare comments.
    #[arg(long)]
    pub comments: bool,
    /// Seconds to wait for a table another session holds exclusively (reading a default
    /// expression opens its table; default 30).
    #[arg(long, value_name = "SECS")]
    pub lock_wait_timeout: Option<f64>,
    /// Print machine-readable JSON.
    #[arg(long)]
    pub json: bool,
    /// Print only the differences' keys and the summary.
    #[arg(short, long)]
    pub quiet: bool,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The plan file (TOML).
    #[arg(value_name = "PLAN.toml")]
    pub plan: String,
    /// Check everything that can be checked without changing anything.
    #[arg(long)]
    pub dry_run: bool,
    /// Start at this step (its name or number); earlier steps are skipped.
    #[arg(long, value_name = "STEP")]
    pub from: Option<String>,
    /// Print one JSON document on stdout instead of the summary (no progress).
    #[arg(long)]
    pub json: bool,
    /// Steps print no progress or summaries; errors only.
    #[arg(short, long)]
    pub quiet: bool,
}
