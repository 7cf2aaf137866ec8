//! With `-d`: each table compared with the live database, by row count or,
//! with `--deep`, by fingerprint of its COPY stream.

use std::collections::HashSet;

use super::report::{Status, TableReport};
use crate::catalog::read_catalog;
use crate::catalog::select::Selection;
use crate::conn::session::Session;
use crate::error::{Error, Result};
use crate::ident::TableName;
use crate::options::VerifyOptions;
use crate::progress::Progress;
use crate::storage::manifest::Manifest;
use crate::stream::copy_out::copy_out;
use crate::stream::stages::{StreamStages, WireFormat};

/// Compares the chosen tables with the live database, all read in one
/// `REPEATABLE READ` transaction; adds the live tables the backup should
/// hold (by its recorded patterns and the `-t`/`-T` given) but does not.
pub(super) async fn compare_live(
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
    let _ = session.client.batch_execute("COMMIT").await;
    Ok(())
}
