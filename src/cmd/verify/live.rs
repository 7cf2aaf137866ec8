//! With `-d`: each table compared with the live database, by row count or,
//! with `--deep`, by fingerprint of its COPY stream; the whole comparison
//! started over on a new session when its session is lost.

use std::collections::HashSet;
use std::sync::Arc;

use super::report::{Status, TableReport};
use crate::catalog::read_catalog;
use crate::catalog::select::Selection;
use crate::conn::conninfo::ConnInfo;
use crate::conn::session::{Purpose, Session, connect, is_session_lost};
use crate::error::{Error, Result};
use crate::ident::TableName;
use crate::jobs::MAX_RETRIES;
use crate::options::VerifyOptions;
use crate::progress::Progress;
use crate::storage::manifest::Manifest;
use crate::stream::copy_out::copy_out;
use crate::stream::stages::{StreamStages, WireFormat};

/// [`compare_live`], started over from the beginning on a new session to
/// `conn` when `session` is lost midway (its backend terminated, the network
/// broken) and no signal is pending, at most [`MAX_RETRIES`] times, with a
/// warning on stderr each time. Only the whole comparison can be restarted:
/// the lost transaction's snapshot dies with its session and cannot be
/// joined again, and reading every table anew in one new transaction keeps
/// all the live counts and fingerprints from one moment. Each attempt works
/// on a fresh copy of `tables`, so a restart adds no row or problem twice;
/// `tables` takes the attempt that ends.
///
/// # Errors
/// As [`compare_live`]; a lost session past the retries, or a new session
/// that cannot be opened, with the loss named.
pub(super) async fn compare_live_retrying(
    conn: &Arc<ConnInfo>,
    session: &mut Session,
    manifest: &Manifest,
    chosen: &[usize],
    plan: &VerifyOptions,
    progress: &Progress,
    tables: &mut Vec<TableReport>,
) -> Result<()> {
    let mut retries = 0;
    loop {
        let mut attempt = tables.clone();
        let e = match compare_live(session, manifest, chosen, plan, progress, &mut attempt).await {
            Ok(()) => {
                *tables = attempt;
                return Ok(());
            }
            Err(e) => e,
        };
        if retries == MAX_RETRIES
            || crate::cancel::reason().is_some()
            || !is_session_lost(session, &e).await
        {
            return Err(e);
        }
        retries += 1;
        // The first line names the table being read; the server's words,
        // when it sent any, say why the session ended.
        let body = crate::error::render_body(&e);
        let first = body.lines().next().unwrap_or_default();
        let cause = match body.lines().find_map(|l| l.trim_start().strip_prefix("server: ")) {
            Some(server) => format!("{first}: {server}"),
            None => first.to_string(),
        };
        progress.note(&format!(
            "warning: the session comparing with the database was lost ({cause}); connecting \
             again and starting the comparison over (retry {retries} of {MAX_RETRIES})"
        ));
        *session = connect(conn, Purpose::Data).await.map_err(|again| {
            again.context(format!(
                "the session comparing with the database was lost ({cause}) and a new one could not be opened"
            ))
        })?;
    }
}

/// Compares the chosen tables with the live database, all read in one
/// `REPEATABLE READ` transaction; adds the live tables the backup should
/// hold (by its recorded patterns and the `-t`/`-T` given) but does not.
async fn compare_live(
    session: &Session,
    manifest: &Manifest,
    chosen: &[usize],
    plan: &VerifyOptions,
    progress: &Progress,
    tables: &mut Vec<TableReport>,
) -> Result<()> {
    session
        .execute(
            "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY",
            "cannot start a read-only transaction",
        )
        .await?;
    let catalog = read_catalog(session).await?;
    for (report, &i) in tables.iter_mut().zip(chosen) {
        let t = &manifest.tables[i];
        let name = TableName::new(&t.schema, &t.name);
        let Some(live) = catalog.find(&name) else {
            report.flag(Status::MissingInDatabase, format!("{name}: not in the database"));
            continue;
        };
        let live_columns: HashSet<&str> = live.data_columns().map(|c| c.name.as_str()).collect();
        let missing: Vec<&str> = t
            .columns
            .iter()
            .map(|c| c.name.as_str())
            .filter(|c| !live_columns.contains(c))
            .collect();
        // The rows, and with --deep the fingerprint of the backup's columns
        // (in its order, so extra live columns do not count); a table that
        // lacks some of them can only be counted.
        let (live_rows, live_fingerprint) = if plan.deep && missing.is_empty() {
            let columns: Vec<&str> = t.columns.iter().map(|c| c.name.as_str()).collect();
            let mut stages = StreamStages::new(WireFormat::Csv, true);
            let mut bar = progress.table(&format!("{name} (live)"), Some(t.rows as i64));
            copy_out(
                session,
                &live.copy_columns_to_stdout_sql(&columns, WireFormat::Csv.copy_options()),
                &mut stages,
                |_, st| {
                    bar.update(st.rows(), st.bytes());
                    Ok(())
                },
            )
            .await
            .map_err(|e| e.context(format!("reading table {name} failed")))?;
            bar.finish(progress);
            let read = stages.finish().map_err(|e| {
                Error::runtime(format!("the COPY output of {name} is malformed: {e}"))
            })?;
            (read.rows, read.fingerprint)
        } else {
            (live.count_rows(session).await?, None)
        };
        report.live_rows = Some(live_rows);
        if live_rows != t.rows {
            report.flag(
                Status::RowsDiffer,
                format!("{name}: the backup holds {} rows, the database {live_rows}", t.rows),
            );
        }
        if plan.deep && !missing.is_empty() {
            report.flag(
                Status::ContentDiffers,
                format!(
                    "{name}: the database table lacks the backup's column{} {}",
                    if missing.len() == 1 { "" } else { "s" },
                    missing.iter().map(|c| format!("\"{c}\"")).collect::<Vec<_>>().join(", ")
                ),
            );
        } else if let Some(fp) = live_fingerprint
            && live_rows == t.rows
            && fp.sum != t.fingerprint.sum
        {
            report.flag(
                Status::ContentDiffers,
                format!(
                    "{name}: same row count, different content (fingerprint {} in the backup, {} in the database)",
                    t.fingerprint.sum, fp.sum
                ),
            );
        }
    }

    let recorded = Selection::parse(&manifest.selection.include, &manifest.selection.exclude)?;
    let in_backup: HashSet<TableName> =
        manifest.tables.iter().map(|t| TableName::new(&t.schema, &t.name)).collect();
    for live in &catalog.tables {
        if in_backup.contains(&live.name)
            || !recorded.picks(&live.name)
            || !plan.selection.picks(&live.name)
        {
            continue;
        }
        let rows = live.count_rows(session).await?;
        tables.push(TableReport {
            table: live.name.to_string(),
            schema: live.name.schema.clone(),
            name: live.name.name.clone(),
            file: None,
            backup_rows: None,
            expected_rows: None,
            live_rows: Some(rows),
            status: vec![Status::NotInBackup],
            problems: vec![format!(
                "{}: in the database ({rows} rows) but not in the backup",
                live.name
            )],
        });
    }
    let _ = session.batch_execute("COMMIT").await;
    Ok(())
}
