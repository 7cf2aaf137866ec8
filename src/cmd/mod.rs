//! One module per command. Each takes its typed options (see
//! [`crate::options`]) and returns an outcome; none sees the command line.

pub mod backup;
pub mod copy;
pub mod diff;
pub mod list;
pub mod restore;
pub mod run;
pub mod sql;
pub mod verify;

use crate::error::Result;
use crate::options::Options;

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

/// Runs one command with its options.
///
/// # Errors
/// Whatever the command reports; the caller prints it and maps its class to
/// the exit code.
pub async fn run(options: Options) -> Result<Outcome> {
    match options {
        Options::List(o) => list::run(o).await,
        Options::Backup(o) => backup::run(o).await,
        Options::Verify(o) => verify::run(o).await,
        Options::Copy(o) => copy::run(o).await,
        Options::Restore(o) => restore::run(o).await,
        Options::Sql(o) => sql::run(o).await,
        Options::Diff(o) => diff::run(o).await,
        Options::Run(o) => run::run(run::plan(o)?).await,
    }
}
