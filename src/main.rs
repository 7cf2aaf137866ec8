//! The thin entry point: parse, dispatch, report the error chain once, and map
//! the outcome to an exit code (0 ok, 1 a check found a difference, 2 bad usage
//! or input, 3 runtime failure).

use clap::Parser;

fn main() {
    // clap prints its own usage errors and exits with 2.
    let cli = pgbarge::cli::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            std::process::exit(3);
        }
    };
    let result = runtime.block_on(pgbarge::cmd::run(cli.command));
    let code = match result {
        Ok(outcome) => outcome.exit_code(),
        Err(err) => {
            pgbarge::error::report(&err);
            err.class().exit_code()
        }
    };
    // Drop the runtime before exiting so spawned connection tasks close cleanly.
    drop(runtime);
    std::process::exit(code);
}
