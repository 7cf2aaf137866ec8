//! The error type shared by every command, and the reporter that prints it.
//!
//! An error carries its class (which decides the exit code), what failed, where
//! (side, table, file, line) through context layers, its cause, and a hint at what
//! to do. The reporter prints the whole chain once, including the server's
//! message, DETAIL, HINT and SQLSTATE that tokio-postgres only exposes through
//! `as_db_error()`. This module must not print anything itself except in
//! [`report`], and must never print a password (see [`crate::redact`]).

use std::fmt::Write as _;
use std::path::PathBuf;

/// The result type of the library.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What kind of failure this is; decides the process exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// A check found a difference (exit 1).
    Difference,
    /// Bad usage or input: flags, patterns, files (exit 2).
    Usage,
    /// The work could not be done: connection, I/O, server errors (exit 3).
    Runtime,
    /// The user interrupted the run (Ctrl-C, SIGTERM); exit 3 as well.
    Interrupted,
}

impl Class {
    /// The process exit code for this class (DESIGN.md: 1, 2, 3).
    pub fn exit_code(self) -> i32 {
        match self {
            Class::Difference => 1,
            Class::Usage => 2,
            Class::Runtime | Class::Interrupted => 3,
        }
    }
}

/// Every failure pgbarge reports.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad flags, patterns, or input files.
    #[error("{msg}")]
    Usage { msg: String, hint: Option<String> },

    /// A check found a difference (verify, expected counts, checksums).
    #[error("{msg}")]
    Difference { msg: String, hint: Option<String> },

    /// Could not connect to a server.
    #[error("cannot connect to {conn}")]
    Connect {
        conn: String,
        /// The server's error (a `tokio_postgres::Error`), or what failed
        /// before the server answered (the socket, TLS set-up).
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
        hint: Option<String>,
    },

    /// A statement or COPY failed on the server (or the connection broke).
    #[error("{what}")]
    Db {
        what: String,
        #[source]
        source: tokio_postgres::Error,
    },

    /// A file system operation failed.
    #[error("{what} {}", path.display())]
    Io {
        what: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// Any other runtime failure, with its own words.
    #[error("{msg}")]
    Runtime { msg: String, hint: Option<String> },

    /// The run was interrupted by a signal.
    /// What the interruption left behind is said by the command, as context.
    #[error("interrupted by {signal}")]
    Interrupted { signal: &'static str },

    /// Where an inner error happened: `SOURCE table "public"."User"`, a file, a step.
    #[error("{ctx}")]
    Context {
        ctx: String,
        #[source]
        source: Box<Error>,
    },
}

impl Error {
    /// A usage error (exit 2).
    pub fn usage(msg: impl Into<String>) -> Self {
        Error::Usage { msg: msg.into(), hint: None }
    }

    /// A usage error with a hint.
    pub fn usage_hint(msg: impl Into<String>, hint: impl Into<String>) -> Self {
        Error::Usage { msg: msg.into(), hint: Some(hint.into()) }
    }

    /// A difference found by a check (exit 1).
    pub fn difference(msg: impl Into<String>) -> Self {
        Error::Difference { msg: msg.into(), hint: None }
    }

    /// A runtime failure (exit 3).
    pub fn runtime(msg: impl Into<String>) -> Self {
        Error::Runtime { msg: msg.into(), hint: None }
    }

    /// A runtime failure with a hint.
    pub fn runtime_hint(msg: impl Into<String>, hint: impl Into<String>) -> Self {
        Error::Runtime { msg: msg.into(), hint: Some(hint.into()) }
    }

    /// A server-side failure of `what`.
    pub fn db(what: impl Into<String>, source: tokio_postgres::Error) -> Self {
        Error::Db { what: what.into(), source }
    }

    /// A file system failure of `what` on `path`.
    pub fn io(what: impl Into<String>, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { what: what.into(), path: path.into(), source }
    }

    /// Wraps the error with where it happened.
    pub fn context(self, ctx: impl Into<String>) -> Self {
        Error::Context { ctx: ctx.into(), source: Box::new(self) }
    }

    /// The class of the innermost pgbarge error.
    pub fn class(&self) -> Class {
        match self {
            Error::Usage { .. } => Class::Usage,
            Error::Difference { .. } => Class::Difference,
            Error::Interrupted { .. } => Class::Interrupted,
            Error::Context { source, .. } => source.class(),
            Error::Connect { .. } | Error::Db { .. } | Error::Io { .. } | Error::Runtime { .. } => {
                Class::Runtime
            }
        }
    }

    /// The SQLSTATE of the server error inside, if any.
    pub fn sqlstate(&self) -> Option<&str> {
        match self {
            Error::Db { source, .. } => source.code().map(|c| c.code()),
            Error::Connect { source, .. } => source
                .downcast_ref::<tokio_postgres::Error>()
                .and_then(tokio_postgres::Error::code)
                .map(|c| c.code()),
            Error::Context { source, .. } => source.sqlstate(),
            _ => None,
        }
    }

    /// Whether the failure is of the connection class (SQLSTATE 08, a broken socket),
    /// the only kind worth retrying.
    pub fn is_connection_failure(&self) -> bool {
        match self {
            Error::Connect { .. } => true,
            Error::Db { source, .. } => {
                is_session_lost(source) || source.code().is_some_and(|c| c.code().starts_with("08"))
            }
            Error::Context { source, .. } => source.is_connection_failure(),
            _ => false,
        }
    }

    fn own_hint(&self) -> Option<String> {
        match self {
            Error::Usage { hint, .. }
            | Error::Difference { hint, .. }
            | Error::Runtime { hint, .. }
            | Error::Connect { hint, .. } => hint.clone(),
            Error::Db { source, .. } => db_hint(source),
            Error::Io { source, .. } => io_hint(source),
            Error::Interrupted { .. } => None,
            Error::Context { source, .. } => source.own_hint(),
        }
    }
}

/// Whether the session itself is gone (closed, or the socket failed) rather
/// than a statement having failed on a live session.
fn is_session_lost(e: &tokio_postgres::Error) -> bool {
    e.is_closed()
        || (e.as_db_error().is_none()
            && std::error::Error::source(e)
                .is_some_and(|s| s.downcast_ref::<std::io::Error>().is_some()))
}

fn db_hint(e: &tokio_postgres::Error) -> Option<String> {
    let Some(code) = e.code().map(|c| c.code()) else {
        return is_session_lost(e).then(|| {
            "the server ended the session: the backend was terminated (pg_terminate_backend), \
             the server restarted, or the network broke; retry when it is back"
                .to_string()
        });
    };
    let hint = match code {
        "42P01" => "check the table name, or run the DDL that creates it",
        "42703" => "check the column names; the target's schema may need a migration",
        "42501" => "the role lacks a privilege; connect as the table owner or grant it",
        "23505" => "a key already exists in the target; use --mode skip, upsert or truncate",
        "23503" => {
            "a referenced row is missing; select the parent table too, or use --disable-triggers"
        }
        "57014" => "the statement was cancelled (statement_timeout or a user cancel)",
        "57P01" | "57P02" | "57P03" => {
            "the server shut down or the backend was terminated; retry when it is back"
        }
        "53100" => "the server's disk is full; free space and retry",
        c if c.starts_with("08") => "the connection broke; check the network and retry",
        _ => return None,
    };
    Some(hint.to_string())
}

fn io_hint(e: &std::io::Error) -> Option<String> {
    match e.raw_os_error() {
        Some(libc::ENOSPC) => Some("the disk is full; free space or choose another folder".into()),
        Some(libc::EDQUOT) => Some("the disk quota is exceeded".into()),
        Some(libc::EFBIG) => Some("the file size limit (ulimit -f) was reached".into()),
        Some(libc::EACCES) | Some(libc::EPERM) => {
            Some("check the folder's permissions and owner".into())
        }
        _ => None,
    }
}

/// Renders the whole error chain the way the user sees it: what failed, each
/// cause (the server's message with DETAIL, HINT, SQLSTATE and position), and a
/// hint. Passwords registered with [`crate::redact`] are masked.
pub fn render(err: &Error) -> String {
    format!("error: {}", render_body(err))
}

/// [`render`] without the leading `error: `, for an error quoted inside
/// another message (a dry run's list of problems).
pub fn render_body(err: &Error) -> String {
    let mut out = String::new();
    let _ = write!(out, "{err}");
    let mut cause: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(err);
    while let Some(c) = cause {
        if let Some(pg) = c.downcast_ref::<tokio_postgres::Error>() {
            if let Some(db) = pg.as_db_error() {
                let _ = write!(
                    out,
                    "\n  server: {}: {} (SQLSTATE {})",
                    db.severity(),
                    db.message(),
                    db.code().code()
                );
                if let Some(d) = db.detail() {
                    let _ = write!(out, "\n  DETAIL: {d}");
                }
                if let Some(h) = db.hint() {
                    let _ = write!(out, "\n  HINT: {h}");
                }
                if let Some(w) = db.where_() {
                    let _ = write!(out, "\n  CONTEXT: {}", w.replace('\n', "\n    "));
                }
                break;
            }
            let _ = write!(out, "\n  caused by: {pg}");
        } else if c.downcast_ref::<Error>().is_some() {
            let _ = write!(out, "\n  {c}");
        } else {
            let _ = write!(out, "\n  caused by: {c}");
        }
        cause = c.source();
    }
    if let Some(h) = err.own_hint() {
        let _ = write!(out, "\n  hint: {h}");
    }
    crate::redact::redact(&out)
}

/// Prints the error once, on stderr.
pub fn report(err: &Error) {
    eprintln!("{}", crate::wrap::stderr_lines(&render(err), 2));
}
