//! `pgbarge sql`: run plain SQL files (the user's DDL) in order.
//!
//! Every file is read and split into statements before anything runs, so a
//! psql meta-command or an unterminated quote anywhere is reported first.
//! Statements then run one at a time, as psql runs them (each in its own
//! transaction unless the file opens one), or all inside one transaction with
//! `--single-transaction`. A failure names the file, line and column (from the
//! server's error position), the server's words, and what already completed.

use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::cmd::Outcome;
use crate::conn::session::{Purpose, Session, connect};
use crate::error::{Error, Result};
use crate::options::SqlOptions;
use crate::runbook::sqlfile::{Statement, split};

/// A file, read and split.
#[derive(Debug, Clone)]
pub struct SqlFile {
    pub path: PathBuf,
    pub statements: Vec<Statement>,
}

/// Reads and splits files, checking each can run.
///
/// # Errors
/// Usage errors: a missing or unreadable file, a meta-command, an
/// unterminated quote, transaction control under `--single-transaction`.
pub fn read_files(paths: &[String], single_transaction: bool) -> Result<Vec<SqlFile>> {
    let mut files = Vec::new();
    for p in paths {
        let path = PathBuf::from(p);
        let text = std::fs::read_to_string(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => {
                Error::usage(format!("{}: no such file", path.display()))
            }
            _ => Error::usage(format!("{}: cannot read: {e}", path.display())),
        })?;
        let statements =
            split(&text).map_err(|e| Error::usage(format!("{}: {e}", path.display())))?;
        if single_transaction
            && let Some(s) = statements.iter().find(|s| s.is_transaction_control())
        {
            return Err(Error::usage_hint(
                format!(
                    "{}:{}:{}: `{}` controls the transaction, which --single-transaction owns",
                    path.display(),
                    s.line,
                    s.column,
                    s.keyword()
                ),
                "remove the file's BEGIN/COMMIT, or run without --single-transaction",
            ));
        }
        files.push(SqlFile { path, statements });
    }
    Ok(files)
}

/// Runs `sql`.
///
/// # Errors
/// The first failing statement (exit 3), naming file, line and column and
/// what completed; connection errors; signals.
pub async fn run(plan: SqlOptions) -> Result<Outcome> {
    let files = read_files(&plan.files, plan.single_transaction)?;
    let session = connect(&plan.conn, Purpose::UserSql).await?;
    let started = Instant::now();
    let done = run_files(&session, &files, plan.single_transaction, plan.quiet).await?;
    if plan.json {
        let doc = serde_json::json!({
            "command": "sql",
            "outcome": "ok",
            "database": plan.conn.to_string(),
            "single_transaction": plan.single_transaction,
            "committed": if plan.single_transaction {
                "every file, in one transaction"
            } else {
                "statement by statement, as psql (unless a file opens its own transaction)"
            },
            "files": done,
            "statements": done.iter().map(|f| f.statements).sum::<usize>(),
            "seconds": started.elapsed().as_secs_f64(),
        });
        println!("{}", serde_json::to_string_pretty(&doc).expect("summary serializes"));
    }
    Ok(Outcome::Ok)
}

/// A file that ran to its end: what `--json` reports of it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FileDone {
    pub file: String,
    pub statements: usize,
    pub seconds: f64,
    /// The rows the statements returned, statement by statement.
    pub results: Vec<ResultRows>,
    /// The server's NOTICE, WARNING and INFO messages.
    pub notices: Vec<Notice>,
}

/// The rows one statement returned (NULL as `null`).
#[derive(Debug, Clone, serde::Serialize)]
pub struct ResultRows {
    pub line: usize,
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Option<String>>>,
}

/// A message the server sent while a statement ran.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Notice {
    pub line: usize,
    pub severity: String,
    pub message: String,
}

/// Runs the files on `session`; shared with `run`'s sql steps.
///
/// # Errors
/// As [`run`].
pub async fn run_files(
    session: &Session,
    files: &[SqlFile],
    single_transaction: bool,
    quiet: bool,
) -> Result<Vec<FileDone>> {
    let mut done = Vec::new();
    if single_transaction {
        exec(session, "BEGIN").await.map_err(|e| Error::db("cannot start the transaction", e))?;
    }
    let mut completed: Vec<String> = Vec::new();
    for f in files {
        let started = Instant::now();
        let mut results = Vec::new();
        let mut notices = Vec::new();
        for s in &f.statements {
            let r = match session.cancellable(session.simple_query(&s.text)).await {
                Ok(r) => r,
                Err(signal) => {
                    // The statement was cancelled on the server; end whatever
                    // transaction it was in.
                    let _ = exec(session, "ROLLBACK").await;
                    let (file, line) = (f.path.display(), s.line);
                    return Err(Error::Interrupted { signal }.context(format!(
                        "{file}:{line}: statement cancelled on the server and its transaction rolled back{}",
                        if single_transaction {
                            "; no file took effect (--single-transaction)".to_string()
                        } else if completed.is_empty() {
                            "; no file completed".to_string()
                        } else {
                            format!("; completed: {}", completed.join(", "))
                        }
                    )));
                }
            };
            // Notices came before the statement's end; show them first, as psql does.
            for n in session.take_notices() {
                if !quiet {
                    eprintln!("{}", notice_line(&f.path, s.line, &n));
                }
                notices.push(Notice {
                    line: s.line,
                    severity: n.severity().to_string(),
                    message: n.message().to_string(),
                });
            }
            if let Ok(messages) = &r {
                for set in result_sets(messages, s.line) {
                    if !quiet {
                        print!("{}", format_table(&set.columns, &set.rows));
                    }
                    results.push(set);
                }
            }
            if let Err(e) = r {
                let err = session.db_error(where_failed(&f.path, s, &e), e).await;
                if single_transaction {
                    let _ = exec(session, "ROLLBACK").await;
                    return Err(err.context(
                        "--single-transaction: everything was rolled back; no file took effect",
                    ));
                }
                let _ = exec(session, "ROLLBACK").await;
                return Err(err.context(format!(
                    "{}; statements of {} before line {} ran, each committed unless the file's own transaction was still open (it was rolled back)",
                    if completed.is_empty() {
                        "no file completed".to_string()
                    } else {
                        format!("completed: {}", completed.join(", "))
                    },
                    f.path.display(),
                    s.line
                )));
            }
        }
        if !quiet {
            println!(
                "{}: {}, {:.2} s",
                f.path.display(),
                crate::progress::counted(f.statements.len() as u64, "statement", "statements"),
                started.elapsed().as_secs_f64()
            );
        }
        completed.push(f.path.display().to_string());
        done.push(FileDone {
            file: f.path.display().to_string(),
            statements: f.statements.len(),
            seconds: started.elapsed().as_secs_f64(),
            results,
            notices,
        });
    }
    if single_transaction {
        exec(session, "COMMIT")
            .await
            .map_err(|e| Error::db("COMMIT failed; no file took effect", e))?;
    }
    Ok(done)
}

/// `FILE:LINE: NOTICE:  message` on stderr, as psql prints a notice of a
/// file it runs, with DETAIL and HINT on lines of their own.
fn notice_line(path: &Path, line: usize, n: &tokio_postgres::error::DbError) -> String {
    let mut out = format!("{}:{line}: {}:  {}", path.display(), n.severity(), n.message());
    if let Some(d) = n.detail() {
        out.push_str(&format!("\nDETAIL:  {d}"));
    }
    if let Some(h) = n.hint() {
        out.push_str(&format!("\nHINT:  {h}"));
    }
    out
}

/// The row sets a statement's results hold: column names and rows, one per
/// result that has a row description (DDL and DML have none), printed as
/// psql's aligned format does by [`format_table`].
fn result_sets(messages: &[tokio_postgres::SimpleQueryMessage], line: usize) -> Vec<ResultRows> {
    use tokio_postgres::SimpleQueryMessage as M;
    let mut out = Vec::new();
    let mut columns: Option<Vec<String>> = None;
    let mut rows: Vec<Vec<Option<String>>> = Vec::new();
    for m in messages {
        match m {
            M::RowDescription(cols) => {
                columns = Some(cols.iter().map(|c| c.name().to_string()).collect());
                rows.clear();
            }
            M::Row(r) => rows.push((0..r.len()).map(|i| r.get(i).map(str::to_string)).collect()),
            M::CommandComplete(_) => {
                if let Some(cols) = columns.take() {
                    out.push(ResultRows { line, columns: cols, rows: std::mem::take(&mut rows) });
                }
                rows.clear();
            }
            _ => {}
        }
    }
    out
}

/// psql's aligned table: column names centred, cells padded, numbers right
/// aligned, NULL empty, `(1 row)` / `(N rows)`, a blank line after.
pub(crate) fn format_table(columns: &[String], rows: &[Vec<Option<String>>]) -> String {
    // A newline inside a value would break the grid; psql wraps it, here it
    // is shown as `\n`.
    let cell =
        |v: &Option<String>| v.as_deref().unwrap_or("").replace('\r', "\\r").replace('\n', "\\n");
    let cells: Vec<Vec<String>> = rows.iter().map(|r| r.iter().map(cell).collect()).collect();
    let width = |c: usize| {
        cells
            .iter()
            .map(|r| r[c].chars().count())
            .chain([columns[c].chars().count()])
            .max()
            .unwrap_or(0)
    };
    let widths: Vec<usize> = (0..columns.len()).map(width).collect();
    let numeric: Vec<bool> = (0..columns.len())
        .map(|c| {
            let mut values = rows.iter().filter_map(|r| r[c].as_deref()).peekable();
            values.peek().is_some() && values.all(|v| v.parse::<f64>().is_ok())
        })
        .collect();
    let mut out = String::new();
    let header: Vec<String> = columns
        .iter()
        .zip(&widths)
        .map(|(name, w)| {
            let pad = w - name.chars().count();
            format!(" {}{name}{} ", " ".repeat(pad / 2), " ".repeat(pad - pad / 2))
        })
        .collect();
    out.push_str(header.join("|").trim_end());
    out.push('\n');
    out.push_str(&widths.iter().map(|w| "-".repeat(w + 2)).collect::<Vec<_>>().join("+"));
    out.push('\n');
    for r in &cells {
        let mut line_parts = Vec::with_capacity(r.len());
        for (c, v) in r.iter().enumerate() {
            let pad = " ".repeat(widths[c] - v.chars().count());
            line_parts.push(if numeric[c] { format!(" {pad}{v} ") } else { format!(" {v}{pad} ") });
        }
        let text = line_parts.join("|");
        out.push_str(text.trim_end());
        out.push('\n');
    }
    out.push_str(&format!("({})\n\n", crate::progress::counted(rows.len() as u64, "row", "rows")));
    out
}

async fn exec(session: &Session, sql: &str) -> std::result::Result<(), tokio_postgres::Error> {
    session.batch_execute(sql).await
}

/// The line and column of `s` that the server's error points at, else the
/// statement's start.
pub(crate) fn error_location(s: &Statement, e: &tokio_postgres::Error) -> (usize, usize) {
    match e.as_db_error().and_then(|d| d.position()) {
        Some(tokio_postgres::error::ErrorPosition::Original(p)) => s.locate(*p as usize),
        _ => (s.line, s.column),
    }
}

/// `FILE:LINE:COLUMN: statement failed`, the position from the server's
/// error when it gives one, else the statement's start.
fn where_failed(path: &Path, s: &Statement, e: &tokio_postgres::Error) -> String {
    let (line, column) = error_location(s, e);
    let first_line = s.text.lines().next().unwrap_or("");
    let shown: String = first_line.chars().take(60).collect();
    format!(
        "{}:{line}:{column}: statement failed: {shown}{}",
        path.display(),
        if shown.len() < s.text.len() { " ..." } else { "" }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_print_as_psql_aligns_them() {
        let cols = vec!["table_name".to_string(), "n".to_string()];
        let rows = vec![
            vec![Some("User".to_string()), Some("9".to_string())],
            vec![Some("TimeEntry".to_string()), Some("48".to_string())],
            vec![None, None],
        ];
        assert_eq!(
            format_table(&cols, &rows),
            " table_name | n\n------------+----\n User       |  9\n TimeEntry  | 48\n            |\n(3 rows)\n\n"
        );
        assert!(format_table(&cols, &rows[..1]).ends_with("(1 row)\n\n"));
    }
}
