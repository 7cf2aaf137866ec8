//! `pgbarge copy`: stream chosen tables from one database into another,
//! all-or-nothing.
//!
//! The source is read as backup reads it: one exported snapshot, tables
//! locked, explicit columns, partitioned tables through the parent. Each
//! table's COPY stream goes block by block into the target's `COPY ... FROM
//! STDIN` — never to disk — while its rows are counted (and, for
//! `--verify=deep`, fingerprinted). The load side is [`crate::load`], shared
//! with restore: one target transaction by default, committed only when every
//! table loaded and every check passed.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde::Serialize;

use crate::catalog::{Table, TableName, read_catalog};
use crate::cli::CopyArgs;
use crate::cmd::{Outcome, resolve_conn_str};
use crate::connect::{Purpose, Session, connect, server_info};
use crate::conninfo::ConnInfo;
use crate::error::{Error, Result};
use crate::load::{
    BlockSource, Incoming, LoadOptions, LoadPlan, Loaded, Loader, Mode, SequenceMove, TableLoad,
    non_empty, plan_load,
};
use crate::pipeline::{CopyOutBlocks, StreamStages, StreamSummary, WireFormat};
use crate::progress::{Progress, human_bytes, human_count};
use crate::select::Selection;

/// What `--verify` compares before commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerifyLevel {
    None,
    /// Source snapshot counts against the target's.
    Count,
    /// Also the stream's fingerprint against the target table's.
    Deep,
}

/// What `copy` needs, resolved.
#[derive(Debug)]
pub struct CopyPlan {
    pub source: Arc<ConnInfo>,
    pub target: Arc<ConnInfo>,
    pub selection: Selection,
    pub options: LoadOptions,
    pub jobs: usize,
    pub per_table_commit: bool,
    pub dry_run: bool,
    pub verify: VerifyLevel,
    pub quiet: bool,
}

/// Resolves the arguments.
///
/// # Errors
/// Usage errors: connections, patterns, mode, verify level, jobs.
pub fn plan(args: CopyArgs) -> Result<CopyPlan> {
    let mode = Mode::parse(&args.mode)?;
    let verify = match args.verify.as_deref() {
        None => VerifyLevel::None,
        Some("count") => VerifyLevel::Count,
        Some("deep") => VerifyLevel::Deep,
        Some(other) => {
            return Err(Error::usage(format!(
                "invalid --verify level \"{other}\"; use --verify or --verify=deep"
            )));
        }
    };
    if verify == VerifyLevel::Deep && !matches!(mode, Mode::Fail | Mode::Truncate) {
        return Err(Error::usage_hint(
            format!("--verify=deep needs --mode fail or truncate, not {}", mode.as_str()),
            "only then does each target table hold exactly the source's rows; use --verify to compare counts",
        ));
    }
    let jobs = args.jobs.unwrap_or(1);
    if jobs == 0 {
        return Err(Error::usage("-j/--jobs must be at least 1"));
    }
    if jobs > 1 && !args.per_table_commit {
        return Err(Error::usage_hint(
            "-j greater than 1 needs --per-table-commit",
            "one target transaction is one stream; parallel loads commit table by table",
        ));
    }
    Ok(CopyPlan {
        source: resolve_conn_str(&args.source).map_err(|e| e.context("--source"))?,
        target: resolve_conn_str(&args.target).map_err(|e| e.context("--target"))?,
        selection: Selection::parse(&args.tables.include, &args.tables.exclude)?,
        options: LoadOptions {
            mode,
            disable_triggers: args.disable_triggers,
            cascade: args.cascade,
        },
        jobs,
        per_table_commit: args.per_table_commit,
        dry_run: args.dry_run,
        verify,
        quiet: args.quiet,
    })
}

/// One table's outcome, for the summary.
#[derive(Debug, Serialize)]
struct TableDone {
    table: String,
    format: WireFormat,
    rows: u64,
    bytes: u64,
    loaded: Loaded,
    triggers: Vec<String>,
    sequences: Vec<SequenceMove>,
}

/// Runs `copy`.
///
/// # Errors
/// Usage errors found before anything is written (exit 2), differences
/// found by `--verify` (exit 1, rolled back), connection, server and stream
/// errors naming the side and table (exit 3, rolled back), signals.
pub async fn run(plan: CopyPlan) -> Result<Outcome> {
    let started = Instant::now();
    let source = connect(&plan.source, Purpose::Data).await.map_err(|e| e.context("SOURCE"))?;
    let target = connect(&plan.target, Purpose::Data).await.map_err(|e| e.context("TARGET"))?;
    refuse_same_database(&source, &target).await?;

    let _snapshot =
        crate::snapshot::export_snapshot(&source).await.map_err(|e| e.context("SOURCE"))?;
    let source_catalog = read_catalog(&source).await.map_err(|e| e.context("SOURCE"))?;
    let chosen = source_catalog.choose(&plan.selection).map_err(|e| e.context("SOURCE"))?;
    crate::snapshot::lock_tables(&source, &chosen.tables, Duration::from_secs(30))
        .await
        .map_err(|e| e.context("SOURCE"))?;
    let target_catalog = read_catalog(&target).await.map_err(|e| e.context("TARGET"))?;
    let incoming: Vec<Incoming> = chosen
        .tables
        .iter()
        .map(|t| Incoming {
            name: t.name.clone(),
            columns: t.data_columns().map(|c| (c.name.clone(), c.type_name.clone())).collect(),
        })
        .collect();
    let load_plan = plan_load(&target_catalog, &incoming, &plan.options)?;
    let formats: Vec<WireFormat> =
        load_plan.tables.iter().map(|t| wire_format(t, plan.verify)).collect();

    if plan.dry_run {
        return dry_run(&plan, &target, &load_plan, &chosen.tables, &formats).await;
    }

    let progress = Progress::new("copy", load_plan.tables.len(), plan.quiet);
    let ctx =
        CopyContext { plan: &plan, source: &source, chosen: &chosen.tables, progress: &progress };
    let done = if plan.per_table_commit {
        ctx.per_table(&target, &load_plan, &formats).await?
    } else {
        ctx.one_transaction(&target, &load_plan, &formats).await?
    };
    drop(progress);
    let _ = source.client.batch_execute("COMMIT").await;
    if !plan.quiet {
        print_summary(&done, &plan, started.elapsed().as_secs_f64());
    }
    Ok(Outcome::Ok)
}

/// Binary when both sides have the same built-in types; CSV when the
/// fingerprint is wanted (it is defined on CSV); text otherwise.
fn wire_format(t: &TableLoad, verify: VerifyLevel) -> WireFormat {
    if verify == VerifyLevel::Deep {
        WireFormat::Csv
    } else if t.binary_ok {
        WireFormat::Binary
    } else {
        WireFormat::Text
    }
}

/// The target must not be the source: loading a table into itself under
/// `truncate` would empty it.
async fn refuse_same_database(source: &Session, target: &Session) -> Result<()> {
    let s = server_info(source).await.map_err(|e| e.context("SOURCE"))?;
    let t = server_info(target).await.map_err(|e| e.context("TARGET"))?;
    let same_server = match (&s.system_identifier, &t.system_identifier) {
        (Some(a), Some(b)) => a == b,
        // Without the identifier, the connection parameters decide.
        _ => source.info.host == target.info.host && source.info.port == target.info.port,
    };
    if same_server && s.database == t.database {
        return Err(Error::usage_hint(
            format!("the source and the target are the same database ({})", s.database),
            "copy needs two different databases",
        ));
    }
    Ok(())
}

/// Errors from the source side of a copy, named as such.
struct SourceBlocks<'a> {
    blocks: CopyOutBlocks<'a>,
    table: &'a TableName,
}

impl BlockSource for SourceBlocks<'_> {
    async fn next_block(&mut self) -> Result<Option<Bytes>> {
        self.blocks
            .next()
            .await
            .map_err(|e| e.context(format!("SOURCE: reading table {} failed", self.table)))
    }
}

struct CopyContext<'a> {
    plan: &'a CopyPlan,
    source: &'a Session,
    chosen: &'a [&'a Table],
    progress: &'a Progress,
}

impl CopyContext<'_> {
    /// Every table in one target transaction, committed after the last check.
    async fn one_transaction(
        &self,
        target: &Session,
        load_plan: &LoadPlan,
        formats: &[WireFormat],
    ) -> Result<Vec<TableDone>> {
        let all: Vec<&TableLoad> = load_plan.tables.iter().collect();
        let loader = Loader::begin(target, &all, load_plan.defer_constraints, &self.plan.options)
            .await
            .map_err(|e| e.context("TARGET"))?;
        let mut done = Vec::new();
        for (t, &format) in load_plan.tables.iter().zip(formats) {
            match self.copy_table(&loader, t, format).await {
                Ok(d) => done.push(d),
                Err(e) => {
                    loader.rollback().await;
                    return Err(e);
                }
            }
        }
        loader.commit().await.map_err(|e| e.context("TARGET"))?;
        Ok(done)
    }

    /// A transaction per table. `fail` checks every table first and
    /// `truncate` empties them all in a first transaction, so the per-table
    /// loads only add rows.
    async fn per_table(
        &self,
        target: &Session,
        load_plan: &LoadPlan,
        formats: &[WireFormat],
    ) -> Result<Vec<TableDone>> {
        let all: Vec<&TableLoad> = load_plan.tables.iter().collect();
        let mut options = self.plan.options.clone();
        match options.mode {
            Mode::Fail | Mode::Truncate => {
                let first = Loader::begin(target, &all, false, &options)
                    .await
                    .map_err(|e| e.context("TARGET"))?;
                first.commit().await.map_err(|e| e.context("TARGET"))?;
                options.mode = Mode::Append;
            }
            _ => {}
        }
        let mut done = Vec::new();
        for (t, &format) in load_plan.tables.iter().zip(formats) {
            let loader = Loader::begin(target, &[t], load_plan.defer_constraints, &options)
                .await
                .map_err(|e| e.context("TARGET"))?;
            match self.copy_table(&loader, t, format).await {
                Ok(d) => {
                    loader
                        .commit()
                        .await
                        .map_err(|e| e.context(format!("TARGET: table {}", t.target.name)))?;
                    done.push(d);
                }
                Err(e) => {
                    loader.rollback().await;
                    let committed: Vec<String> = done.iter().map(|d| d.table.clone()).collect();
                    return Err(e.context(if committed.is_empty() {
                        "no table was committed".to_string()
                    } else {
                        format!(
                            "committed before the failure: {} (rerun with --mode skip to finish the rest)",
                            committed.join(", ")
                        )
                    }));
                }
            }
        }
        Ok(done)
    }

    /// Streams one table from the source into the loader's transaction and
    /// runs the checks asked for, before the caller commits.
    async fn copy_table(
        &self,
        loader: &Loader<'_>,
        t: &TableLoad,
        format: WireFormat,
    ) -> Result<TableDone> {
        let name = &t.target.name;
        let source_table = self.chosen[t.index];
        let columns: Vec<&str> = t.columns.iter().map(String::as_str).collect();
        let sql = source_table.copy_columns_to_stdout_sql(&columns, format.copy_options());
        let before =
            if self.plan.verify != VerifyLevel::None && self.plan.options.mode != Mode::Truncate {
                Some(loader.count(t).await.map_err(|e| e.context("TARGET"))?)
            } else {
                None
            };
        let blocks = CopyOutBlocks::start(self.source, &sql).await.map_err(|e| {
            e.context(format!("SOURCE: reading table {} failed", source_table.name))
        })?;
        let mut blocks = SourceBlocks { blocks, table: &source_table.name };
        let mut stages = StreamStages::new(format, self.plan.verify == VerifyLevel::Deep);
        let mut bar = self.progress.table(&name.to_string(), source_table.estimated_rows);
        let loaded = loader
            .load_table(t, format, &mut blocks, |block| {
                stages.feed(block);
                bar.update(stages.rows(), stages.bytes());
                Ok(())
            })
            .await
            .map_err(|e| match e {
                Error::Context { .. } => e,
                e => e.context(format!("TARGET: loading table {name} failed")),
            })?;
        bar.finish(self.progress);
        let stream: StreamSummary = stages
            .finish()
            .map_err(|e| Error::runtime(format!("the COPY stream of {name} is malformed: {e}")))?;
        if stream.rows != loaded.copied {
            return Err(Error::difference(format!(
                "table {name}: {} rows went through the stream, the target's COPY reports {}",
                stream.rows, loaded.copied
            )));
        }
        if self.plan.verify != VerifyLevel::None {
            self.verify_table(loader, t, &stream, &loaded, before).await?;
        }
        let sequences =
            loader.advance_sequences(t, &HashMap::new()).await.map_err(|e| e.context("TARGET"))?;
        Ok(TableDone {
            table: name.to_string(),
            format,
            rows: stream.rows,
            bytes: stream.bytes,
            loaded,
            triggers: if self.plan.options.disable_triggers {
                Vec::new()
            } else {
                t.target.triggers.clone()
            },
            sequences,
        })
    }

    /// The checks of `--verify`: the source snapshot's count is what went
    /// through the stream, and the target now holds what it should; with
    /// `deep`, the same content.
    async fn verify_table(
        &self,
        loader: &Loader<'_>,
        t: &TableLoad,
        stream: &StreamSummary,
        loaded: &Loaded,
        before: Option<u64>,
    ) -> Result<()> {
        let name = &t.target.name;
        let source_table = self.chosen[t.index];
        let row =
            self.source.client.query_one(&source_table.count_sql(), &[]).await.map_err(|e| {
                Error::db(format!("SOURCE: cannot count the rows of {}", source_table.name), e)
            })?;
        let source_rows = row.get::<_, i64>(0) as u64;
        let mut problems = Vec::new();
        if source_rows != stream.rows {
            problems.push(format!(
                "the source holds {source_rows} rows, {} went through the stream",
                stream.rows
            ));
        }
        let target_rows = loader.count(t).await.map_err(|e| e.context("TARGET"))?;
        let expected = before.unwrap_or(0) + loaded.inserted;
        if target_rows != expected {
            problems.push(format!(
                "the target holds {target_rows} rows, {expected} expected ({} before, {} inserted)",
                before.unwrap_or(0),
                loaded.inserted
            ));
        }
        if self.plan.verify == VerifyLevel::Deep && problems.is_empty() {
            let target_fp = loader.fingerprint(t).await.map_err(|e| e.context("TARGET"))?;
            let stream_fp =
                stream.fingerprint.as_ref().expect("deep verify fingerprints the stream");
            if &target_fp != stream_fp {
                problems.push(format!(
                    "content differs: fingerprint {} on the stream, {} in the target",
                    stream_fp.sum, target_fp.sum
                ));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(Error::Difference {
                msg: format!("--verify: table {name}: {}", problems.join("; ")),
                hint: Some("the copy was rolled back; nothing was committed".into()),
            })
        }
    }
}

/// `--dry-run`: what would happen, checked as far as reading can check it.
async fn dry_run(
    plan: &CopyPlan,
    target: &Session,
    load_plan: &LoadPlan,
    chosen: &[&Table],
    formats: &[WireFormat],
) -> Result<Outcome> {
    let all: Vec<&TableLoad> = load_plan.tables.iter().collect();
    let with_rows = non_empty(target, &all).await.map_err(|e| e.context("TARGET"))?;
    let mut problems = Vec::new();
    for t in &all {
        let row = target
            .client
            .query_one(
                "SELECT has_table_privilege($1, 'INSERT'), has_table_privilege($1, 'TRUNCATE')",
                &[&t.target.name.quoted()],
            )
            .await
            .map_err(|e| {
                Error::db(format!("TARGET: cannot read privileges on {}", t.target.name), e)
            })?;
        if !row.get::<_, bool>(0) {
            problems.push(format!("no INSERT privilege on {}", t.target.name));
        }
        if plan.options.mode == Mode::Truncate && !row.get::<_, bool>(1) {
            problems.push(format!("no TRUNCATE privilege on {}", t.target.name));
        }
    }
    if plan.options.mode == Mode::Fail && !with_rows.is_empty() {
        problems.push(format!(
            "--mode fail: not empty: {}",
            with_rows.iter().map(|t| t.to_string()).collect::<Vec<_>>().join(", ")
        ));
    }
    println!(
        "copy plan (dry run, nothing written): mode {}, {}{}",
        plan.options.mode.as_str(),
        if plan.per_table_commit { "a transaction per table" } else { "one transaction" },
        if load_plan.defer_constraints { ", constraints deferred" } else { "" }
    );
    for (t, format) in load_plan.tables.iter().zip(formats) {
        let src = chosen[t.index];
        let mut notes = Vec::new();
        if with_rows.contains(&t.target.name) {
            notes.push(match plan.options.mode {
                Mode::Truncate => "has rows: would be emptied".to_string(),
                Mode::Skip => "has rows: existing keys skipped".to_string(),
                Mode::Upsert => "has rows: existing keys updated".to_string(),
                Mode::Append => "has rows: kept".to_string(),
                Mode::Fail => "has rows: refused".to_string(),
            });
        }
        if !t.defaulted.is_empty() {
            notes.push(format!("default/NULL for {}", t.defaulted.join(", ")));
        }
        if !t.target.triggers.is_empty() {
            notes.push(format!(
                "triggers {} {}",
                t.target.triggers.join(", "),
                if plan.options.disable_triggers { "disabled" } else { "fire" }
            ));
        }
        println!(
            "  {:<40} ~{:>10} rows  {:?}  {}",
            t.target.name.to_string(),
            src.estimated_rows.map_or("?".into(), |r| human_count(r.max(0) as u64)),
            format,
            notes.join("; ")
        );
    }
    if problems.is_empty() {
        println!("OK: the copy can run");
        Ok(Outcome::Ok)
    } else {
        Err(Error::usage(format!("the copy would fail:\n  {}", problems.join("\n  "))))
    }
}

fn print_summary(done: &[TableDone], plan: &CopyPlan, seconds: f64) {
    let rows: u64 = done.iter().map(|d| d.rows).sum();
    let bytes: u64 = done.iter().map(|d| d.bytes).sum();
    println!(
        "copy complete: {} tables, {} rows, {} streamed, {seconds:.1} s, {}/s; {}",
        done.len(),
        human_count(rows),
        human_bytes(bytes),
        human_bytes((bytes as f64 / seconds.max(0.001)) as u64),
        if plan.per_table_commit {
            "committed table by table"
        } else {
            "committed in one transaction"
        }
    );
    for d in done {
        let mut notes = vec![format!("{:?}", d.format).to_lowercase()];
        match plan.options.mode {
            Mode::Skip => {
                notes.push(format!("{} inserted, {} skipped", d.loaded.inserted, d.loaded.skipped))
            }
            Mode::Upsert => {
                notes.push(format!("{} inserted, {} updated", d.loaded.inserted, d.loaded.updated))
            }
            _ => {}
        }
        if !d.triggers.is_empty() {
            notes.push(format!("triggers fired: {}", d.triggers.join(", ")));
        }
        for s in &d.sequences {
            notes.push(format!("sequence {} {} -> {}", s.sequence, s.from, s.to));
        }
        println!("  {:<40} {:>10} rows  {}", d.table, human_count(d.rows), notes.join("; "));
    }
    let checked = match plan.verify {
        VerifyLevel::None => "stream row counts against the target's COPY counts",
        VerifyLevel::Count => {
            "stream row counts against the target's COPY counts, source snapshot counts, target counts"
        }
        VerifyLevel::Deep => {
            "stream row counts, source snapshot counts, target counts, content fingerprints"
        }
    };
    println!("  checked before commit: {checked}");
}
