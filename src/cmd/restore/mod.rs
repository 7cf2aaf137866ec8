//! `pgbarge restore`: load chosen tables from a backup, checked while they
//! load, all-or-nothing.
//!
//! Each selected data file is read once ([`checked_file`]: file size and
//! sha256, header, CSV sha256 and record count) and turned into the format
//! the server loads fastest ([`to_server`]) on its way into the target's
//! `COPY ... FROM STDIN`; every check must pass before the one target
//! transaction commits. In one transaction the files are read, checked and
//! converted ahead of the load on a thread of their own ([`files_ahead`]).
//! The load side is [`crate::load`], shared with copy.

mod checked_file;
mod clean;
mod files_ahead;
mod schema;
mod to_server;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use self::checked_file::{CheckedFile, FileChecked};
use self::clean::CleanPlan;
use self::files_ahead::{FileJob, FileQueue, FilesAhead};
use self::schema::{SchemaSql, read_schema_files, run_post_data, run_schema};
use self::to_server::ToServer;
use crate::catalog::read_target_catalog;
use crate::cmd::Outcome;
use crate::conn::session::{Purpose, Session, connect};
use crate::error::{Error, Result};
use crate::format::encryption::Identities;
use crate::ident::TableName;
use crate::load::Incoming;
use crate::load::loader::Loader;
use crate::load::plan::{TableLoad, plan_load};
use crate::load::pool::TableStreamer;
use crate::load::read_ahead::TableBlocks;
use crate::load::report::TableDone;
use crate::options::RestoreOptions;
use crate::progress::Progress;
use crate::storage::manifest::{Manifest, ManifestTable, StoredFile};
use crate::stream::stages::WireFormat;

/// Runs `restore`.
///
/// # Errors
/// An incomplete backup or a check failing on the way (exit 1, rolled back),
/// usage errors found before anything is written (exit 2), connection,
/// server and file errors (exit 3, rolled back), signals.
pub async fn run(plan: RestoreOptions) -> Result<Outcome> {
    let started = Instant::now();
    let plan = Arc::new(plan);
    let _reading = plan.dir.lock_for_reading()?;
    // The backup is read and checked on a thread of its own while the target
    // is connected and, when no SQL runs there first (--schema, --clean),
    // its catalog read: the server works on the catalog queries while the
    // manifest is parsed and every file is looked at. A backup found wrong
    // is reported at once, before a slow connection fails, and nothing is
    // sent to the target but those reads until it has passed.
    let early_catalog = !plan.schema && !plan.clean;
    let mut backup = tokio::task::spawn_blocking({
        let (plan, runtime) = (plan.clone(), tokio::runtime::Handle::current());
        move || runtime.block_on(read_backup(&plan))
    });
    let target_side = async {
        let target = connect(&plan.conn, Purpose::Data).await.map_err(|e| e.context("TARGET"))?;
        let catalog = match early_catalog {
            true => Some(read_load_catalog(&target, &plan).await?),
            false => None,
        };
        Ok::<_, Error>((target, catalog))
    };
    let mut target_side = std::pin::pin!(target_side);
    let (checked, target_side) = tokio::select! {
        biased;
        checked = &mut backup => (backup_read(checked)?, target_side.await),
        target = &mut target_side => (backup_read(backup.await)?, target),
    };
    let (target, early) = target_side?;
    let BackupRead { manifest, keys, chosen } = checked;
    let chosen: Vec<&ManifestTable> = chosen.iter().map(|&i| &manifest.tables[i]).collect();

    let schema_sql = if plan.schema || plan.clean {
        Some(read_schema_files(&plan, &manifest, keys.as_ref()).await?)
    } else {
        None
    };
    let cleaning = match (&schema_sql, plan.clean) {
        (Some(files), true) => {
            let texts: Vec<&str> = files.iter().map(|(_, sql)| sql.as_str()).collect();
            Some(CleanPlan::read(&target, &texts).await?)
        }
        _ => None,
    };
    if plan.dry_run
        && let Some(cleaning) = &cleaning
    {
        // Nothing is run, not even in a transaction rolled back: dropping
        // would lock every table of a live database.
        clean::print_dry_run(cleaning, &manifest, &plan.conn.to_string());
        return Ok(Outcome::Ok);
    }
    let post_data = match schema_sql {
        Some(files) => run_schema(&plan, files, &target, cleaning.as_ref()).await?,
        None => None,
    };
    let catalog = match early {
        Some(catalog) => catalog,
        None => read_load_catalog(&target, &plan).await?,
    };
    let incoming: Vec<Incoming> = chosen
        .iter()
        .map(|t| Incoming {
            name: TableName::new(&t.schema, &t.name),
            columns: t.columns.iter().map(|c| (c.name.clone(), c.type_name.clone())).collect(),
        })
        .collect();
    let load_plan = plan_load(&catalog, &incoming, &plan.options)?;

    if plan.dry_run {
        let estimates: Vec<Option<u64>> =
            load_plan.tables.iter().map(|t| Some(chosen[t.index].rows)).collect();
        let formats: Vec<WireFormat> =
            load_plan.tables.iter().map(|t| ToServer::wire_format(t, chosen[t.index])).collect();
        let r = crate::load::report::dry_run(
            &target,
            &load_plan,
            &plan.options,
            plan.per_table_commit,
            &estimates,
            &formats,
        )
        .await;
        // With --schema the schema ran inside the transaction: undo it.
        let _ = target.batch_execute("ROLLBACK").await;
        r?;
        return Ok(Outcome::Ok);
    }

    // Read just before the load's transaction: what --cascade is about to empty.
    let emptied = crate::load::plan::count_rows(&target, &load_plan.cascaded).await?;
    let progress = Progress::new("restore", load_plan.tables.len(), plan.quiet);
    let mut targets = Vec::new();
    for _ in 1..plan.jobs.min(load_plan.tables.len()) {
        targets.push(connect(&plan.conn, Purpose::Data).await.map_err(|e| e.context("TARGET"))?);
    }
    // In one transaction the tables load in the plan's order, so their
    // files are read ahead in that order, on a thread of their own.
    let ahead = if plan.per_table_commit {
        None
    } else {
        let jobs = load_plan
            .tables
            .iter()
            .map(|t| FileJob {
                index: t.index,
                table: chosen[t.index].clone(),
                to_server: ToServer::for_table(t, chosen[t.index]),
            })
            .collect();
        Some(FilesAhead::start(plan.dir.clone(), manifest.compression, keys.clone(), jobs)?)
    };
    let restorer = || Restorer {
        plan: &plan,
        manifest: &manifest,
        chosen: &chosen,
        keys: keys.as_ref(),
        progress: &progress,
        post_data: post_data.as_ref(),
        ahead: ahead.as_ref().map(FilesAhead::queue),
    };
    let mut workers = vec![(&target, restorer())];
    workers.extend(targets.iter().map(|t| (t, restorer())));
    let load =
        crate::load::pool::run_load(workers, &load_plan, &plan.options, plan.per_table_commit);
    let done = load.await;
    drop(ahead);
    drop(progress);
    let done = done?;
    if plan.per_table_commit
        && let Some(post) = &post_data
    {
        // Each table committed on its own; post-data gets its own transaction.
        target.execute("BEGIN", "TARGET: cannot start the transaction").await?;
        run_post_data(&target, post).await?;
        target.execute("COMMIT", format!("TARGET: committing {} failed", post.0)).await?;
    }
    if plan.json {
        crate::load::report::print_json(
            &done,
            plan.options.mode,
            plan.per_table_commit,
            started.elapsed().as_secs_f64(),
            &restore_checks(&manifest),
            &emptied,
            serde_json::json!({
                "command": "restore",
                "location": plan.dir.to_string(),
                "target": plan.conn.to_string(),
                "backup_of": manifest.source.database,
                "backup_taken": manifest.started_at,
                "schema": plan.schema,
                "clean": plan.clean,
            }),
        );
    } else if !plan.quiet {
        print_summary(&done, &plan, &manifest, started.elapsed().as_secs_f64());
        if let Some(cleaning) = &cleaning {
            cleaning.print_done();
        }
        crate::load::report::print_cascaded("also emptied", &emptied);
    }
    Ok(Outcome::Ok)
}

/// A backup read and checked before anything is written.
struct BackupRead {
    manifest: Manifest,
    /// What opens an encrypted backup's files.
    keys: Option<Identities>,
    /// The tables chosen, as indexes into the manifest's, in its order.
    chosen: Vec<usize>,
}

/// Reads the manifest, picks the tables the selection names and checks the
/// folder ([`check_folder`]).
///
/// # Errors
/// An incomplete or damaged backup, a selection naming no table in it.
async fn read_backup(plan: &RestoreOptions) -> Result<BackupRead> {
    let (manifest, keys) =
        Manifest::open_at(&plan.dir, plan.keys.as_ref()).await?.full(&plan.dir)?;
    if plan.clean {
        clean::check_usable(plan, &manifest)?;
    }
    let names: Vec<TableName> =
        manifest.tables.iter().map(|t| TableName::new(&t.schema, &t.name)).collect();
    let picked: HashSet<&TableName> =
        plan.selection.choose(&names, &[], "in the backup")?.into_iter().collect();
    let chosen: Vec<usize> = (0..names.len()).filter(|&i| picked.contains(&names[i])).collect();
    let tables: Vec<&ManifestTable> = chosen.iter().map(|&i| &manifest.tables[i]).collect();
    check_folder(plan, &manifest, &tables).await?;
    Ok(BackupRead { manifest, keys, chosen })
}

/// [`read_backup`]'s result from its thread.
fn backup_read(
    joined: std::result::Result<Result<BackupRead>, tokio::task::JoinError>,
) -> Result<BackupRead> {
    joined.map_err(|e| Error::runtime(format!("reading the backup failed: {e}")))?
}

/// The target's catalog, with the unique keys when the mode resolves
/// conflicts on them.
async fn read_load_catalog(
    target: &Session,
    plan: &RestoreOptions,
) -> Result<crate::catalog::Catalog> {
    read_target_catalog(target, plan.options.mode.stages()).await.map_err(|e| e.context("TARGET"))
}

/// Refuses, before anything is written, what `verify` would call damaged
/// without reading a file: a chosen table's file missing, of the wrong size,
/// or not a regular file inside the folder; and files the manifest does not
/// list (unless `--ignore-unlisted`), since a folder someone has changed must
/// not be loaded silently. The files' content is checked as they load.
///
/// # Errors
/// A difference (exit 1) listing every problem.
async fn check_folder(
    plan: &RestoreOptions,
    manifest: &Manifest,
    chosen: &[&ManifestTable],
) -> Result<()> {
    let listing: BTreeMap<String, u64> = plan.dir.list().await?.into_iter().collect();
    let mut problems: Vec<String> = chosen
        .iter()
        .filter_map(|t| match t.stored_file(&plan.dir, &listing) {
            StoredFile::Present => None,
            StoredFile::Missing => {
                Some(format!("{}: missing (table {}.{})", t.file, t.schema, t.name))
            }
            StoredFile::Damaged(what) => Some(what),
        })
        .collect();
    let unlisted =
        if plan.ignore_unlisted { Vec::new() } else { manifest.unlisted_files(&listing) };
    let has_unlisted = !unlisted.is_empty();
    problems.extend(unlisted);
    if problems.is_empty() {
        return Ok(());
    }
    Err(Error::Difference {
        msg: format!(
            "the backup at {} is not as its manifest records; nothing was restored:\n    {}",
            plan.dir,
            problems.join("\n    ")
        ),
        hint: Some(if has_unlisted {
            format!(
                "`pgbarge verify {}` reports on the whole backup; --ignore-unlisted restores despite files the manifest does not list",
                plan.dir
            )
        } else {
            format!("`pgbarge verify {}` reports on the whole backup", plan.dir)
        }),
    })
}

struct Restorer<'a> {
    plan: &'a RestoreOptions,
    manifest: &'a Manifest,
    chosen: &'a [&'a ManifestTable],
    /// What opens an encrypted backup's files.
    keys: Option<&'a Identities>,
    progress: &'a Progress,
    /// The schema's post-data section, run after every row is in and before
    /// the one transaction commits.
    post_data: Option<&'a SchemaSql>,
    /// The files read ahead, when the load is one transaction.
    ahead: Option<&'a FileQueue>,
}

impl TableStreamer for Restorer<'_> {
    fn wire_format(&self, t: &TableLoad) -> WireFormat {
        ToServer::wire_format(t, self.chosen[t.index])
    }

    fn only_loads(&self) -> bool {
        true
    }

    async fn before_commit(&mut self, target: &Session) -> Result<()> {
        match self.post_data {
            Some(post) if !self.plan.per_table_commit => run_post_data(target, post).await,
            _ => Ok(()),
        }
    }

    /// Streams one file into the table and checks, before the caller
    /// commits, that it was exactly the file the manifest describes.
    async fn load(&mut self, loader: &Loader<'_>, t: &TableLoad) -> Result<TableDone> {
        let m = self.chosen[t.index];
        let name = &t.target.name;
        let file = &m.file;
        let format = ToServer::wire_format(t, m);
        let mut source = match self.ahead {
            Some(ahead) => TableBlocks::Ahead(ahead.table(t.index)),
            None => TableBlocks::OnDemand(CheckedFile::open(
                &self.plan.dir,
                m.clone(),
                self.manifest.compression,
                self.keys,
                ToServer::for_table(t, m),
            )?),
        };
        let mut bar = self.progress.table(&name.to_string(), Some(m.rows as i64));
        // Each block arrives checked as the file's CSV and in the format the
        // server loads fastest.
        let loaded = loader
            .load_table(t, format, &mut source, |block| {
                bar.update(block.rows, block.csv_bytes);
                Ok(block.chunks)
            })
            .await
            .map_err(|e| match e.class() {
                crate::error::Class::Difference => e.context(format!(
                    "restore of table {name} stopped: {file} is not the file the manifest describes"
                )),
                _ => e.context(format!("restore of table {name} from {file} failed")),
            })?;
        bar.finish(self.progress);
        let checked: FileChecked = match source {
            TableBlocks::Ahead(queued) => queued.finish()?,
            TableBlocks::OnDemand(file) => file.finish()?,
        };
        let mut problems = checked.problems;
        if loaded.copied != m.rows {
            problems.push(format!(
                "the server loaded {} rows, the manifest records {}",
                loaded.copied, m.rows
            ));
        }
        if !problems.is_empty() {
            return Err(Error::Difference {
                msg: format!("{file} (table {name}): {}", problems.join("; ")),
                hint: Some("the restore was rolled back; nothing was committed".into()),
            });
        }
        // The recorded values, as `setval(v, true)` would leave them.
        let at_least: HashMap<String, i64> = m
            .sequences
            .iter()
            .filter(|s| s.is_called)
            .map(|s| (s.sequence.clone(), s.last_value))
            .collect();
        loader.advance_sequences(t, &at_least, checked.int_max.as_deref());
        Ok(TableDone {
            table: name.to_string(),
            format: Some(format),
            rows: m.rows,
            bytes: m.csv_bytes,
            loaded,
            triggers: loader.triggers_fired(t),
            sequences: Vec::new(),
        })
    }
}

/// What a restore checks while it loads.
/// What restore checks while it loads, as the summary and `--json` list them.
fn restore_checks(manifest: &Manifest) -> Vec<&'static str> {
    let mut checks = vec!["file size and sha256"];
    if manifest.encryption.is_some() {
        checks.push("age's authentication of every chunk");
    }
    checks.extend(["header", "CSV sha256", "record count", "the server's row count"]);
    checks
}

fn print_summary(done: &[TableDone], plan: &RestoreOptions, manifest: &Manifest, seconds: f64) {
    let about = format!(" (backup of {} taken {})", manifest.source.database, manifest.started_at);
    crate::load::report::print_summary(
        "restore",
        done,
        plan.options.mode,
        plan.per_table_commit,
        seconds,
        "of CSV",
        &about,
    );
    println!(
        "{}",
        crate::wrap::stdout(
            &format!("  checked while loading: {}", restore_checks(manifest).join(", ")),
            2
        )
    );
}
