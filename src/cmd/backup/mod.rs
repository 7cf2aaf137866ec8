//! `pgbarge backup`: a consistent, checksummed CSV backup.
//!
//! A coordinator exports one snapshot and locks the chosen tables; `-j`
//! workers, each a thread with its own current-thread runtime and connection,
//! join the snapshot and stream tables largest first through the pipeline into
//! compressed files. `SHA256SUMS` and then `manifest.json` are written last. On
//! any failure or signal every file this run wrote is removed: there is never a
//! backup that looks whole but is not.

pub(crate) mod output;
mod schema;
mod workers;

use std::sync::Arc;

use self::output::OutputDir;
use self::schema::{dump_schema, find_usable_pg_dump};
use self::workers::run_workers;
use crate::catalog::sequences::{
    SequencePosition, read_called_positions, read_position, read_positions,
};
use crate::catalog::{Table, read_data_catalog};
use crate::cmd::Outcome;
use crate::conn::conninfo::ConnInfo;
use crate::conn::session::{Purpose, Session, connect, server_info};
use crate::error::{Class, Error, Result};
use crate::jobs::JobQueue;
use crate::options::BackupOptions;
use crate::progress::{Progress, human_bytes};
use crate::storage::location::Location;
use crate::storage::manifest::{
    DATA_DIR, FORMAT_NAME, FORMAT_VERSION, Manifest, ManifestColumn, ManifestSequence,
    ManifestTable, RecordedSelection, SCHEMA_POST_FILE, SCHEMA_PRE_FILE, SourceInfo,
    data_file_name, now_rfc3339,
};
use crate::storage::sealed::{ENCRYPTED_FORMAT_VERSION, Encryption, write_sealed};
use crate::storage::sink::FileSummary;
use crate::stream::stages::CsvSummary;

/// Runs `backup`.
///
/// # Errors
/// Usage errors (folder not empty, patterns), connection, server and file
/// errors naming the table; `Interrupted` on a signal. Nothing that looks
/// like a complete backup is left behind on error.
pub async fn run(plan: BackupOptions) -> Result<Outcome> {
    take(plan).await.map(|_| Outcome::Ok)
}

/// As [`run`], and returns the manifest written (a runbook step records it).
///
/// # Errors
/// As [`run`].
pub async fn take(plan: BackupOptions) -> Result<Manifest> {
    let output = OutputDir::prepare(&plan.dir, plan.force).await?;
    let result = take_backup(&plan, &output).await;
    match result {
        Ok((manifest, seconds)) => {
            if plan.json {
                print_json(&manifest, seconds, &plan.dir);
            } else if !plan.quiet {
                print_summary(&manifest, seconds, &plan.dir);
            }
            Ok(manifest)
        }
        Err(e) => {
            output.remove_written().await;
            if e.class() == Class::Interrupted {
                return Err(e.context(format!(
                    "backup stopped: no backup was written to {}; the files of this run were removed",
                    plan.dir
                )));
            }
            Err(e)
        }
    }
}

/// One table to back up, at its place in load order (which numbers its file).
#[derive(Debug)]
struct Job {
    table: Table,
    /// Relative to the backup folder.
    file: String,
}

/// What a worker produced for the job at `index`.
struct TableResult {
    index: usize,
    csv: CsvSummary,
    file: FileSummary,
}

fn print_summary(manifest: &Manifest, seconds: f64, dir: &Location) {
    let rows: u64 = manifest.tables.iter().map(|t| t.rows).sum();
    let csv_bytes: u64 = manifest.tables.iter().map(|t| t.csv_bytes).sum();
    let file_bytes: u64 = manifest.tables.iter().map(|t| t.file_bytes).sum();
    let ratio = csv_bytes as f64 / file_bytes.max(1) as f64;
    println!("backup complete: {dir}");
    println!(
        "  {}, {}, CSV {}, files {} ({ratio:.1}x), {seconds:.1} s, {}/s",
        crate::progress::counted(manifest.tables.len() as u64, "table", "tables"),
        crate::progress::counted(rows, "row", "rows"),
        human_bytes(csv_bytes),
        human_bytes(file_bytes),
        human_bytes((csv_bytes as f64 / seconds.max(0.001)) as u64),
    );
    let recorded = format!(
        "  recorded: row counts, sha256 of every CSV stream and file (SHA256SUMS), content fingerprints, sequence values{}; snapshot {}",
        if manifest.has_schema { ", the schema (pre-data, post-data)" } else { "" },
        manifest.snapshot
    );
    println!("{}", crate::wrap::stdout(&recorded, 2));
    if let Some(enc) = &manifest.encryption {
        let sealed = format!(
            "  encrypted (age) to {}; readable without a key: manifest.json (file names, sizes, sha256) and SHA256SUMS",
            enc.openers()
        );
        println!("{}", crate::wrap::stdout(&sealed, 2));
    }
}

/// `--json`: what the summary says, as one document (the manifest in the
/// folder holds the rest: columns, sequences, fingerprints).
fn print_json(manifest: &Manifest, seconds: f64, dir: &Location) {
    let tables: Vec<serde_json::Value> = manifest
        .tables
        .iter()
        .map(|t| {
            serde_json::json!({
                "table": format!("{}.{}", t.schema, t.name),
                "schema": t.schema,
                "name": t.name,
                "rows": t.rows,
                "csv_bytes": t.csv_bytes,
                "csv_sha256": t.csv_sha256,
                "file": t.file,
                "file_bytes": t.file_bytes,
                "file_sha256": t.file_sha256,
            })
        })
        .collect();
    let doc = serde_json::json!({
        "command": "backup",
        "outcome": "ok",
        "location": dir.to_string(),
        "tables": tables,
        "table_count": manifest.tables.len(),
        "rows": manifest.tables.iter().map(|t| t.rows).sum::<u64>(),
        "csv_bytes": manifest.tables.iter().map(|t| t.csv_bytes).sum::<u64>(),
        "file_bytes": manifest.tables.iter().map(|t| t.file_bytes).sum::<u64>(),
        "seconds": seconds,
        "snapshot": manifest.snapshot,
        "has_schema": manifest.has_schema,
        "started_at": manifest.started_at,
        "finished_at": manifest.finished_at,
        "recorded": ["row counts", "sha256 of every CSV stream and file", "content fingerprints", "sequence values"],
    });
    println!("{}", serde_json::to_string_pretty(&doc).expect("summary serializes"));
}

/// Takes the backup and returns its manifest (written) and the seconds it took.
async fn take_backup(plan: &BackupOptions, output: &OutputDir) -> Result<(Manifest, f64)> {
    let started = std::time::Instant::now();
    let started_at = now_rfc3339();
    let coordinator = connect(&plan.conn, Purpose::Data).await?;
    let server = server_info(&coordinator).await?;
    let snapshot = crate::conn::snapshot::export_snapshot(&coordinator).await?;
    let catalog = read_data_catalog(&coordinator).await?;
    let chosen = catalog.choose(&plan.selection)?;
    crate::conn::snapshot::lock_tables(
        &coordinator,
        chosen.tables.iter().map(|t| &t.name),
        plan.lock_wait_timeout,
    )
    .await?;
    let tables: Vec<Table> = chosen.tables.into_iter().cloned().collect();

    let jobs: Arc<Vec<Job>> = Arc::new(
        tables
            .into_iter()
            .enumerate()
            .map(|(i, table)| Job {
                file: format!(
                    "{DATA_DIR}/{}",
                    data_file_name(
                        i + 1,
                        &table.name.schema,
                        &table.name.name,
                        plan.compression,
                        plan.encrypt_to.is_some()
                    )
                ),
                table,
            })
            .collect(),
    );
    let progress = Arc::new(Progress::new("backup", jobs.len(), plan.quiet));
    // Sequence positions are read while the workers copy: they are not
    // transactional (pg_dump reads them during the dump too), and a restore
    // only moves a sequence forward to them.
    let job_tables: Vec<&Table> = jobs.iter().map(|j| &j.table).collect();
    // The largest tables go first, so the run ends evenly. The first are
    // chosen by the catalog's page counts; the sizes on disk (statistics can
    // be stale) reorder the rest once read, beside the workers (the locks
    // are held, so that read waits on no one): on a thousand small tables
    // it took a sixth of the backup's time.
    let (session, tables, conn) = (&coordinator, &job_tables, &plan.conn);
    let beside = move |queue: Arc<JobQueue>| async move {
        let sizes = crate::catalog::read_sizes(session, tables).await?;
        queue.reorder_largest_first(&sizes.iter().map(|&b| b.max(0) as u64).collect::<Vec<_>>());
        read_sequences(session, conn, tables).await
    };
    let (results, sequences) =
        run_workers(plan, &coordinator, &output.location, &snapshot, &jobs, &progress, beside)
            .await?;

    let mut stored_schema = Vec::new();
    let (schema_pre_sha256, schema_post_sha256) = if plan.schema {
        let pg_dump = find_usable_pg_dump(&server).await?;
        let mut sums = Vec::new();
        for (section, file) in [("pre-data", SCHEMA_PRE_FILE), ("post-data", SCHEMA_POST_FILE)] {
            let dumped = dump_schema(
                &pg_dump,
                &plan.conn,
                &snapshot,
                section,
                file,
                &output.location,
                plan.lock_wait_timeout,
                plan.encrypt_to.as_ref(),
            )
            .await?;
            sums.push(dumped.sql_sha256);
            stored_schema.extend(dumped.stored);
        }
        (sums.first().cloned(), sums.get(1).cloned())
    } else {
        (None, None)
    };
    // All data is read. The coordinator's COMMIT succeeding proves its
    // session, and so its locks, lasted the whole run: had it ended, a table
    // not yet read could have been truncated (TRUNCATE is not MVCC-safe) and
    // read back empty under the snapshot.
    if let Err(e) = coordinator.execute("COMMIT", "the coordinator's COMMIT failed").await {
        return Err(coordinator_lost(e));
    }

    let manifest_tables = jobs
        .iter()
        .zip(results)
        .zip(sequences)
        .map(|((job, res), sequences)| {
            let t = &job.table;
            ManifestTable {
                schema: t.name.schema.clone(),
                name: t.name.name.clone(),
                kind: t.kind,
                columns: t
                    .data_columns()
                    .map(|c| ManifestColumn {
                        name: c.name.clone(),
                        type_name: c.type_name.clone(),
                        not_null: c.not_null,
                    })
                    .collect(),
                rows: res.csv.rows,
                csv_bytes: res.csv.csv_bytes,
                csv_sha256: res.csv.csv_sha256,
                file: job.file.clone(),
                file_bytes: res.file.file_bytes,
                file_sha256: res.file.file_sha256,
                fingerprint: res.csv.fingerprint.expect("backup computes fingerprints"),
                sequences,
            }
        })
        .collect();
    let manifest = Manifest {
        format: FORMAT_NAME.into(),
        format_version: match plan.encrypt_to {
            Some(_) => ENCRYPTED_FORMAT_VERSION,
            None => FORMAT_VERSION,
        },
        tool_version: env!("CARGO_PKG_VERSION").into(),
        started_at,
        finished_at: now_rfc3339(),
        source: SourceInfo {
            host: plan.conn.host.clone(),
            port: plan.conn.port,
            database: server.database,
            user: plan.conn.user.clone(),
            server_version: server.server_version,
            server_version_num: server.server_version_num,
            system_identifier: server.system_identifier,
        },
        snapshot,
        compression: plan.compression,
        fingerprint_algorithm: crate::format::digest::FINGERPRINT_ALGORITHM.into(),
        has_schema: plan.schema,
        schema_sha256: None,
        schema_pre_sha256,
        schema_post_sha256,
        selection: RecordedSelection {
            include: plan.selection.include.iter().map(|p| p.text.clone()).collect(),
            exclude: plan.selection.exclude.iter().map(|p| p.text.clone()).collect(),
            whole_database: plan.schema
                && plan.selection.include.is_empty()
                && plan.selection.exclude.is_empty(),
        },
        tables: manifest_tables,
        encryption: plan.encrypt_to.as_ref().map(Encryption::age),
    };
    if let Some(signal) = crate::cancel::reason() {
        return Err(Error::Interrupted { signal });
    }
    // Every data file whole, in place and on disk before the files that say
    // the backup is whole.
    output.location.publish_data()?;
    output.location.sync_data().await?;
    match &plan.encrypt_to {
        Some(recipients) => {
            write_sealed(&manifest, &output.location, recipients, stored_schema).await?;
        }
        None => manifest.write(&output.location).await?,
    }
    // Clears the bars before the summary is printed.
    drop(progress);
    Ok((manifest, started.elapsed().as_secs_f64()))
}

/// The current values of the sequences feeding each table's columns: those
/// that handed out a value in one query on a session of its own
/// ([`called_positions`]); the others, and all of them when that fails, by
/// the coordinator ([`read_exactly`]).
async fn read_sequences(
    coordinator: &Session,
    conn: &Arc<ConnInfo>,
    tables: &[&Table],
) -> Result<Vec<Vec<ManifestSequence>>> {
    let feeding: Vec<(&str, &Table)> = tables
        .iter()
        .flat_map(|t| t.sequences.iter().map(move |s| (s.sequence.as_str(), *t)))
        .collect();
    let names: Vec<&str> = feeding.iter().map(|(s, _)| *s).collect();
    let called = called_positions(conn, &names).await?;
    let unread: Vec<(&str, &Table)> =
        feeding.iter().zip(&called).filter(|(_, p)| p.is_none()).map(|(f, _)| *f).collect();
    let mut read = read_exactly(coordinator, &unread).await?.into_iter();
    let mut positions = called.into_iter().map(|p| p.or_else(|| read.next()));
    let mut all = Vec::with_capacity(tables.len());
    for t in tables {
        let mut seqs = Vec::new();
        for s in &t.sequences {
            let at = positions
                .next()
                .flatten()
                .ok_or_else(|| Error::runtime(format!("sequence {} was not read", s.sequence)))?;
            seqs.push(ManifestSequence {
                column: s.column.clone(),
                sequence: s.sequence.clone(),
                owned: s.owned,
                last_value: at.last_value,
                is_called: at.is_called,
            });
        }
        all.push(seqs);
    }
    Ok(all)
}

/// [`read_called_positions`] on a session of its own, in its own short
/// transaction (the function's locks must not be held for the whole run),
/// closed after. All `None` when that fails for any reason but a signal:
/// the coordinator then reads them all, and reports what is wrong.
async fn called_positions(
    conn: &Arc<ConnInfo>,
    names: &[&str],
) -> Result<Vec<Option<SequencePosition>>> {
    let unread = || vec![None; names.len()];
    if names.is_empty() {
        return Ok(Vec::new());
    }
    let session = match connect(conn, Purpose::Data).await {
        Ok(s) => s,
        Err(e) if e.class() == Class::Interrupted => return Err(e),
        Err(_) => return Ok(unread()),
    };
    let read = read_called_positions(&session, names).await;
    session.close().await;
    if let Some(signal) = crate::cancel::reason() {
        return Err(Error::Interrupted { signal });
    }
    Ok(read.ok().filter(|p| p.len() == names.len()).unwrap_or_else(unread))
}

/// The positions of `sequences` (each with the table it feeds), read by the
/// coordinator in its transaction: in one message; when that fails, one by
/// one, to name the sequence.
async fn read_exactly(
    session: &Session,
    sequences: &[(&str, &Table)],
) -> Result<Vec<SequencePosition>> {
    if sequences.is_empty() {
        return Ok(Vec::new());
    }
    let names: Vec<&str> = sequences.iter().map(|(s, _)| *s).collect();
    // A savepoint keeps the transaction (and its snapshot) usable when the
    // one query fails.
    session.execute("SAVEPOINT pgbarge_seq", "cannot read the sequences").await?;
    match read_positions(session, &names, String::new).await {
        Ok(p) => {
            session.execute("RELEASE SAVEPOINT pgbarge_seq", "cannot read the sequences").await?;
            Ok(p)
        }
        Err(_) => {
            session
                .execute("ROLLBACK TO SAVEPOINT pgbarge_seq", "cannot read the sequences")
                .await?;
            let mut p = Vec::with_capacity(names.len());
            for (sequence, t) in sequences {
                p.push(
                    read_position(session, sequence, || {
                        format!("cannot read sequence {sequence} of table {}", t.name)
                    })
                    .await?,
                );
            }
            Ok(p)
        }
    }
}

/// The error for a coordinator session that ended before the backup did.
fn coordinator_lost(cause: Error) -> Error {
    if cause.class() == Class::Interrupted {
        return cause;
    }
    cause.context(
        "the coordinator session ended before the backup finished: it held the snapshot and the \
         ACCESS SHARE locks that keep tables not yet read from being truncated, dropped or \
         altered, so the backup cannot prove it read them as they were; take it again",
    )
}
