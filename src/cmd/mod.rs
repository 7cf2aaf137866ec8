//! One file per command. Each turns its clap arguments into a typed plan, then
//! runs it; `run` dispatches.

pub mod backup;
pub mod copy;
pub mod list;
pub mod restore;
pub mod run;
pub mod sql;
pub mod verify;

use std::sync::Arc;

use crate::cli::{Command, ConnArgs};
use crate::conn::conninfo::{ConnInfo, process_env, resolve};
use crate::error::Result;

/// How a command that ran to the end turned out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Everything done and every check passed.
    Ok,
    /// The command ran, and a check found a difference (exit 1).
    Differs,
}

impl Outcome {
    pub fn exit_code(self) -> i32 {
        match self {
            Outcome::Ok => 0,
            Outcome::Differs => 1,
        }
    }
}

/// Runs one command.
///
/// # Errors
/// Whatever the command reports; the caller prints it and maps its class to
/// the exit code.
pub async fn run(command: Command) -> Result<Outcome> {
    crate::progress::plain_interval()?;
    match command {
        Command::List(args) => list::run(list::plan(args)?).await,
        Command::Backup(args) => backup::run(backup::plan(args)?).await,
        Command::Verify(args) => verify::run(verify::plan(args)?).await,
        Command::Copy(args) => copy::run(copy::plan(args)?).await,
        Command::Restore(args) => restore::run(restore::plan(args)?).await,
        Command::Sql(args) => sql::run(sql::plan(args)?).await,
        Command::Run(args) => run::run(run::plan(args)?).await,
    }
}

/// Resolves `-d` (or the PG* environment alone) into connection parameters.
pub(crate) fn resolve_conn(args: &ConnArgs) -> Result<Arc<ConnInfo>> {
    resolve_conn_str(args.conn.as_deref().unwrap_or(""))
}

/// Resolves a connection string, falling back to the PG* environment.
pub(crate) fn resolve_conn_str(conn: &str) -> Result<Arc<ConnInfo>> {
    Ok(Arc::new(resolve(conn, &process_env)?))
}
