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
use std::time::Instant;

use bytes::Bytes;

use crate::catalog::{Table, read_data_catalog, read_target_catalog};
use crate::cmd::Outcome;
use crate::conn::session::{Purpose, Session, connect, server_info};
use crate::error::{Error, Result};
use crate::ident::TableName;
use crate::load::loader::{BlockSource, Loaded, Loader};
use crate::load::plan::{TableLoad, plan_load};
use crate::load::pool::TableStreamer;
use crate::load::read_ahead::{ReadAhead, TableBlocks};
use crate::load::report::TableDone;
use crate::load::{Incoming, Mode};
use crate::options::{CopyOptions, VerifyLevel};
use crate::progress::Progress;
use crate::stream::copy_out::CopyOutBlocks;
use crate::stream::stages::{StreamStages, StreamSummary, WireFormat};

/// Runs `copy`.
///
/// # Errors
/// Usage errors found before anything is written (exit 2), differences
/// found by `--verify` (exit 1, rolled back), connection, server and stream
/// errors naming the side and table (exit 3, rolled back), signals.
pub async fn run(plan: CopyOptions) -> Result<Outcome> {
    let started = Instant::now();
    let source = connect(&plan.source, Purpose::Data).await.map_err(|e| e.context("SOURCE"))?;
    let target = connect(&plan.target, Purpose::Data).await.map_err(|e| e.context("TARGET"))?;
    refuse_same_database(&source, &target).await?;

    let snapshot =
        crate::conn::snapshot::export_snapshot(&source).await.map_err(|e| e.context("SOURCE"))?;
    // Both catalogs are read at once, each on its own server session, and
    // the source's tables are locked as soon as its catalog is read, while
    // the target's may still be read (10,000 tables: 0.15 s of locking).
    let source_side = async {
        let catalog = read_data_catalog(&source).await?;
        let chosen = catalog.choose(&plan.selection)?;
        crate::conn::snapshot::lock_tables(
            &source,
            chosen.tables.iter().map(|t| &t.name),
            plan.options.lock_wait_timeout,
        )
        .await?;
        Ok::<_, crate::error::Error>(catalog)
    };
    let (source_catalog, target_catalog) =
        futures::join!(source_side, read_target_catalog(&target, plan.options.mode.stages()));
    let source_catalog = source_catalog.map_err(|e| e.context("SOURCE"))?;
    let chosen = source_catalog.choose(&plan.selection).map_err(|e| e.context("SOURCE"))?;
    let target_catalog = target_catalog.map_err(|e| e.context("TARGET"))?;
    let incoming: Vec<Incoming> = chosen
        .tables
        .iter()
        .map(|t| Incoming {
            name: t.name.clone(),
            columns: t.data_columns().map(|c| (c.name.clone(), c.type_name.clone())).collect(),
        })
        .collect();
    let load_plan = plan_load(&target_catalog, &incoming, &plan.options)?;
    if plan.dry_run {
        let formats: Vec<WireFormat> =
            load_plan.tables.iter().map(|t| wire_format(t, plan.verify)).collect();
        let estimates: Vec<Option<u64>> = load_plan
            .tables
            .iter()
            .map(|t| chosen.tables[t.index].estimated_rows.map(|r| r.max(0) as u64))
            .collect();
        crate::load::report::dry_run(
            &target,
            &load_plan,
            &plan.options,
            plan.per_table_commit,
            &estimates,
            &formats,
        )
        .await?;
        // Its snapshot's transaction ends with the session, as a client
        // ends one (not as a socket that vanishes, which the server logs).
        source.close().await;
        return Ok(Outcome::Ok);
    }

    // Read just before the load's transaction: what --cascade is about to empty.
    let emptied = crate::load::plan::count_rows(&target, &load_plan.cascaded).await?;
    let progress = Progress::new("copy", load_plan.tables.len(), plan.quiet);
    // Workers beyond the first: a source session in the same snapshot and a
    // target session each. The first uses the coordinator and the target.
    let mut sessions = Vec::new();
    for _ in 1..plan.jobs.min(load_plan.tables.len()) {
        let s = crate::conn::snapshot::join_snapshot(&plan.source, &snapshot)
            .await
            .map_err(|e| e.context("SOURCE"))?;
        let t = connect(&plan.target, Purpose::Data).await.map_err(|e| e.context("TARGET"))?;
        sessions.push((s, t));
    }
    // In one transaction the tables load in the plan's order, so the source
    // is read ahead in that order on the coordinator's session (which then
    // runs nothing else: --verify's source counts and --verify=deep's
    // sessions are read on demand, by the load).
    let ahead: Option<ReadAhead<()>> =
        (!plan.per_table_commit && plan.verify == VerifyLevel::None).then(ReadAhead::default);
    let context = |source| CopyContext {
        plan: &plan,
        source,
        snapshot: &snapshot,
        chosen: &chosen.tables,
        progress: &progress,
        ahead: ahead.as_ref(),
    };
    let mut workers = vec![(&target, context(&source))];
    workers.extend(sessions.iter().map(|(s, t)| (t, context(s))));
    let load =
        crate::load::pool::run_load(workers, &load_plan, &plan.options, plan.per_table_commit);
    let done = match &ahead {
        Some(ahead) => {
            let produce =
                read_source_ahead(ahead, &source, &load_plan.tables, &chosen.tables, plan.verify);
            crate::load::read_ahead::beside(load, produce).await?
        }
        None => load.await?,
    };
    drop(progress);
    let _ = source.batch_execute("COMMIT").await;
    // The workers' sessions end as a client ends (the server logs
    // "unexpected EOF ... with an open transaction" for one that vanishes
    // with the runtime).
    for (s, t) in sessions {
        s.close().await;
        t.close().await;
    }
    if plan.json {
        crate::load::report::print_json(
            &done,
            plan.options.mode,
            plan.per_table_commit,
            started.elapsed().as_secs_f64(),
            &checks(plan.verify),
            &emptied,
            serde_json::json!({
                "command": "copy",
                "source": plan.source.to_string(),
                "target": plan.target.to_string(),
            }),
        );
    } else if !plan.quiet {
        print_summary(&done, &plan, started.elapsed().as_secs_f64());
        crate::load::report::print_cascaded("also emptied", &emptied);
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

/// The source's `COPY ... TO STDOUT` of `t`'s columns, in `format`.
fn source_copy_sql(chosen: &[&Table], t: &TableLoad, format: WireFormat) -> String {
    let columns: Vec<&str> = t.columns.iter().map(String::as_str).collect();
    chosen[t.index].copy_columns_to_stdout_sql(&columns, format.copy_options())
}

/// Reads every table of a one-transaction load from the source, in load
/// order, into `ahead` (see [`crate::load::read_ahead`]).
async fn read_source_ahead(
    ahead: &ReadAhead<()>,
    source: &Session,
    tables: &[TableLoad],
    chosen: &[&Table],
    verify: VerifyLevel,
) {
    ahead
        .fill(tables, |t| async move {
            let sql = source_copy_sql(chosen, t, wire_format(t, verify));
            let table = &chosen[t.index].name;
            ahead.pass(&mut SourceBlocks { session: source, sql: &sql, blocks: None, table }).await
        })
        .await;
}

/// A table's COPY on the source, started when the first block is asked
/// for (by the loader, which awaits it together with the start of the
/// target's COPY, or by the read-ahead); errors named as the source's.
struct SourceBlocks<'a> {
    session: &'a Session,
    sql: &'a str,
    blocks: Option<CopyOutBlocks<'a>>,
    table: &'a TableName,
}

impl BlockSource for SourceBlocks<'_> {
    async fn next_block(&mut self) -> Result<Option<Bytes>> {
        let failed = |e: Error| e.context(format!("SOURCE: reading table {} failed", self.table));
        let blocks = match &mut self.blocks {
            Some(blocks) => blocks,
            None => self
                .blocks
                .insert(CopyOutBlocks::start(self.session, self.sql).await.map_err(failed)?),
        };
        blocks.next().await.map_err(failed)
    }
}

struct CopyContext<'a> {
    plan: &'a CopyOptions,
    source: &'a Session,
    /// The source's snapshot, which `--verify=deep` streams join.
    snapshot: &'a str,
    chosen: &'a [&'a Table],
    progress: &'a Progress,
    /// The source read ahead, when the load is one transaction.
    ahead: Option<&'a ReadAhead<()>>,
}

impl TableStreamer for CopyContext<'_> {
    fn wire_format(&self, t: &TableLoad) -> WireFormat {
        wire_format(t, self.plan.verify)
    }

    /// `--verify` counts the target's rows before and after each table.
    fn only_loads(&self) -> bool {
        self.plan.verify == VerifyLevel::None
    }

    async fn load(&mut self, loader: &Loader<'_>, t: &TableLoad) -> Result<TableDone> {
        self.copy_table(loader, t, wire_format(t, self.plan.verify)).await
    }
}

impl CopyContext<'_> {
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
        let sql = source_copy_sql(self.chosen, t, format);
        let before =
            if self.plan.verify != VerifyLevel::None && self.plan.options.mode != Mode::Truncate {
                Some(loader.count(t).await.map_err(|e| e.context("TARGET"))?)
            } else {
                None
            };
        // With --verify=deep the target's table is read back after the load,
        // and its largest row then fills the target connection's read
        // buffer. The source connection's buffer keeps the size of the
        // largest row it read for as long as the session lives, so the
        // stream runs on a session of its own, joined to the snapshot and
        // closed before that read: one row in memory at a time, not two.
        let own = if self.plan.verify == VerifyLevel::Deep {
            Some(
                crate::conn::snapshot::join_snapshot(&self.plan.source, self.snapshot)
                    .await
                    .map_err(|e| e.context("SOURCE"))?,
            )
        } else {
            None
        };
        let stream_session = own.as_ref().unwrap_or(self.source);
        let mut blocks = match self.ahead {
            Some(ahead) => TableBlocks::Ahead(ahead.table(t.index)),
            None => TableBlocks::OnDemand(SourceBlocks {
                session: stream_session,
                sql: &sql,
                blocks: None,
                table: &source_table.name,
            }),
        };
        let mut stages = StreamStages::new(format, self.plan.verify == VerifyLevel::Deep)
            .keep_int_max(&t.sequence_int_columns());
        let mut bar = self.progress.table(&name.to_string(), source_table.estimated_rows);
        let loaded = loader
            .load_table(t, format, &mut blocks, |block| {
                stages.feed(&block);
                bar.update(stages.rows(), stages.bytes());
                Ok(vec![block])
            })
            .await
            .map_err(|e| match e {
                Error::Context { .. } => e,
                e => e.context(format!("TARGET: loading table {name} failed")),
            })?;
        match blocks {
            TableBlocks::Ahead(queued) => queued.finish()?,
            // Its stream's buffers go before the session closes.
            TableBlocks::OnDemand(source) => drop(source),
        }
        if let Some(session) = own {
            session.close().await;
        }
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
        loader.advance_sequences(t, &HashMap::new(), stream.int_max.as_deref());
        Ok(TableDone {
            table: name.to_string(),
            format: Some(format),
            rows: stream.rows,
            bytes: stream.bytes,
            loaded,
            triggers: loader.triggers_fired(t),
            sequences: Vec::new(),
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
        let source_rows =
            source_table.count_rows(self.source).await.map_err(|e| e.context("SOURCE"))?;
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

fn print_summary(done: &[TableDone], plan: &CopyOptions, seconds: f64) {
    crate::load::report::print_summary(
        "copy",
        done,
        plan.options.mode,
        plan.per_table_commit,
        seconds,
        "streamed",
        "",
    );
    let checked = checks(plan.verify).join(", ");
    println!("{}", crate::wrap::stdout(&format!("  checked before commit: {checked}"), 2));
}

/// What a copy checks before it commits, at each `--verify` level.
fn checks(level: VerifyLevel) -> Vec<&'static str> {
    let mut v = vec!["stream row counts against the target's COPY counts"];
    if level != VerifyLevel::None {
        v.extend(["source snapshot counts", "target counts"]);
    }
    if level == VerifyLevel::Deep {
        v.push("content fingerprints");
    }
    v
}
