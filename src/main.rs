//! The thin entry point: parse, dispatch, report the error chain once, and map
//! the outcome to an exit code (0 ok, 1 a check found a difference, 2 bad usage
//! or input, 3 runtime failure).

use clap::Parser;

fn main() {
    // A file size limit (ulimit -f) must fail the write with EFBIG, reported
    // and cleaned up, instead of killing the process mid-file.
    // SAFETY: setting a signal's disposition to SIG_IGN has no preconditions.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
    // clap prints its own usage errors and exits with 2.
    let cli = pgbarge::cli::Cli::parse();
    pgbarge::conn::trace::set_verbose(cli.verbose);
    // completions and man only print what clap knows; nothing to run.
    if let Some(written) = cli.command.write_docs() {
        std::process::exit(match written {
            Ok(()) => 0,
            Err(e) => {
                pgbarge::error::report(&e);
                e.class().exit_code()
            }
        });
    }
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            std::process::exit(3);
        }
    };
    let result = runtime.block_on(async {
        if let Err(e) = pgbarge::cancel::install_signal_handlers() {
            eprintln!("warning: cannot install signal handlers: {e}");
        }
        pgbarge::progress::plain_interval()?;
        let options = cli.command.into_options()?;
        pgbarge::cmd::run(options).await
    });
    let code = match result {
        Ok(outcome) => outcome.exit_code(),
        Err(err) => {
            let err = pgbarge::conn::tunnel::explain(err);
            // No bar may stay above the error, whoever still holds one.
            pgbarge::progress::clear_all();
            pgbarge::error::report(&err);
            err.class().exit_code()
        }
    };
    // Drop the runtime before exiting so spawned connection tasks close cleanly.
    drop(runtime);
    // exit runs no destructors: the SSH tunnels are closed here.
    pgbarge::conn::tunnel::close_all();
    std::process::exit(code);
}
