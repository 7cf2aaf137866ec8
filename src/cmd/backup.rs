//! `pgbarge backup`: a consistent, checksummed CSV backup.
//!
//! A coordinator exports one snapshot and locks the chosen tables; `-j`
//! workers, each a thread with its own current-thread runtime and connection,
//! join the snapshot and stream tables largest first through the pipeline into
//! compressed files. `SHA256SUMS` and then `manifest.json` are written last. On
//! any failure or signal every file this run wrote is removed: there is never a
//! backup that looks whole but is not.

use std::collections::{BTreeSet, VecDeque};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;

use crate::catalog::sequences::read_position;
use crate::catalog::{Table, read_catalog};
use crate::cmd::Outcome;
use crate::conn::conninfo::ConnInfo;
use crate::conn::session::{Purpose, ServerInfo, Session, connect, server_info};
use crate::error::{Class, Error, Result};
use crate::format::compression::Compression;
use crate::options::BackupOptions;
use crate::progress::{Progress, TableProgress, human_bytes};
use crate::storage::folder_lock::FolderLock;
use crate::storage::manifest::{
    DATA_DIR, FORMAT_NAME, FORMAT_VERSION, MANIFEST_FILE, Manifest, ManifestColumn,
    ManifestSequence, ManifestTable, RecordedSelection, SCHEMA_FILE, SCHEMA_POST_FILE,
    SCHEMA_PRE_FILE, SUMS_FILE, SourceInfo, data_file_name, now_rfc3339, remove_backup,
};
use crate::storage::sink::FileSummary;
use crate::storage::store::Location;
use crate::stream::copy_out::copy_out;
use crate::stream::stages::{CsvStages, CsvSummary};

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
            if !plan.quiet {
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

/// The backup folder: locked for the whole run, checked before anything is
/// touched, cleaned on failure.
struct OutputDir {
    location: Location,
    created: bool,
    /// Held until the run ends; `None` for an object store (see the README:
    /// a prefix has no lock).
    _lock: Option<FolderLock>,
}

/// The names a pgbarge backup consists of, at the top of its folder.
pub(crate) const BACKUP_NAMES: [&str; 6] =
    [MANIFEST_FILE, SUMS_FILE, SCHEMA_FILE, SCHEMA_PRE_FILE, SCHEMA_POST_FILE, DATA_DIR];

impl OutputDir {
    /// Creates a local folder private (0700) when it is not there, locks it
    /// against every other writer, then refuses a non-empty folder or prefix
    /// (unless `force` and it holds a pgbarge backup, which is removed,
    /// manifest first) and creates `data/`. A refusal removes nothing, not
    /// even a folder this run created: another run may be using it by then.
    async fn prepare(location: &Location, force: bool) -> Result<OutputDir> {
        let (created, lock) = match location {
            Location::Local(dir) => {
                let created = create_folder(dir)?;
                (created, Some(FolderLock::exclusive(dir)?))
            }
            Location::S3(_) => (false, None),
        };
        let top: BTreeSet<String> = location
            .list()
            .await?
            .into_iter()
            .map(|(n, _)| n.split('/').next().unwrap_or_default().to_string())
            .collect();
        if !top.is_empty() {
            let is_backup = top.iter().all(|n| BACKUP_NAMES.contains(&n.as_str()));
            if !force || !is_backup {
                return Err(Error::usage_hint(
                    format!("output {location} is not empty"),
                    if is_backup {
                        "it holds a backup; choose a new folder or prefix, or pass --force to replace it"
                    } else {
                        "choose a new or empty folder or prefix; pgbarge never writes among other files"
                    },
                ));
            }
            remove_backup(location).await?;
        }
        if let Location::Local(dir) = location {
            std::fs::DirBuilder::new()
                .mode(0o700)
                .create(dir.join(DATA_DIR))
                .map_err(|e| Error::io("cannot create folder", dir.join(DATA_DIR), e))?;
        }
        Ok(OutputDir { location: location.clone(), created, _lock: lock })
    }

    /// Removes everything this run wrote (temp files and unfinished uploads
    /// are already gone), and the folder if the run created it. Runs while
    /// the lock is still held, so nothing here is another run's.
    async fn remove_written(&self) {
        let _ = remove_backup(&self.location).await;
        if let Location::Local(dir) = &self.location
            && self.created
        {
            let _ = std::fs::remove_dir(dir);
        }
    }
}

/// Makes `dir` (and its parents) unless it exists; returns whether this call
/// created `dir` itself. The last step is one `mkdir`, so of two runs
/// starting at once exactly one learns it created the folder.
fn create_folder(dir: &Path) -> Result<bool> {
    match std::fs::symlink_metadata(dir) {
        Ok(m) if m.is_dir() => return Ok(false),
        Ok(m) if m.file_type().is_symlink() && dir.is_dir() => return Ok(false),
        Ok(_) => {
            return Err(Error::usage(format!("{} exists and is not a folder", dir.display())));
        }
        Err(_) => {}
    }
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(parent)
            .map_err(|e| Error::io("cannot create folder", parent, e))?;
    }
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {
            // DirBuilder's mode is filtered by the umask; make it exact.
            let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
            Ok(true)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && dir.is_dir() => Ok(false),
        Err(e) => Err(Error::io("cannot create folder", dir, e)),
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
    println!(
        "  recorded: row counts, sha256 of every CSV stream and file (SHA256SUMS),\n  content fingerprints, sequence values{}; snapshot {}",
        if manifest.has_schema { ", the schema (pre-data, post-data)" } else { "" },
        manifest.snapshot
    );
}

/// Takes the backup and returns its manifest (written) and the seconds it took.
async fn take_backup(plan: &BackupOptions, output: &OutputDir) -> Result<(Manifest, f64)> {
    let started = std::time::Instant::now();
    let started_at = now_rfc3339();
    let coordinator = connect(&plan.conn, Purpose::Data).await?;
    let server = server_info(&coordinator).await?;
    let snapshot = crate::conn::snapshot::export_snapshot(&coordinator).await?;
    let catalog = read_catalog(&coordinator).await?;
    let chosen = catalog.choose(&plan.selection)?;
    crate::conn::snapshot::lock_tables(
        &coordinator,
        chosen.tables.iter().map(|t| &t.name),
        plan.lock_wait_timeout,
    )
    .await?;
    let sequences = read_sequences(&coordinator, &chosen.tables).await?;
    let mut tables: Vec<Table> = chosen.tables.into_iter().cloned().collect();
    // The locks are held now, so exact sizes cannot wait on anyone.
    crate::catalog::refresh_sizes(&coordinator, &mut tables).await?;

    let jobs: Arc<Vec<Job>> = Arc::new(
        tables
            .into_iter()
            .enumerate()
            .map(|(i, table)| Job {
                file: format!(
                    "{DATA_DIR}/{}",
                    data_file_name(i + 1, &table.name.schema, &table.name.name, plan.compression)
                ),
                table,
            })
            .collect(),
    );
    let progress = Arc::new(Progress::new("backup", jobs.len(), plan.quiet));
    let results =
        run_workers(plan, &coordinator, &output.location, &snapshot, &jobs, &progress).await?;

    let (schema_pre_sha256, schema_post_sha256) = if plan.schema {
        let pg_dump = find_usable_pg_dump(&server).await?;
        let mut sums = Vec::new();
        for (section, file) in [("pre-data", SCHEMA_PRE_FILE), ("post-data", SCHEMA_POST_FILE)] {
            sums.push(
                dump_schema(
                    &pg_dump,
                    &plan.conn,
                    &snapshot,
                    section,
                    file,
                    &output.location,
                    plan.lock_wait_timeout,
                )
                .await?,
            );
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
        format_version: FORMAT_VERSION,
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
        },
        tables: manifest_tables,
    };
    if let Some(signal) = crate::cancel::reason() {
        return Err(Error::Interrupted { signal });
    }
    manifest.write(&output.location).await?;
    // Clears the bars before the summary is printed.
    drop(progress);
    Ok((manifest, started.elapsed().as_secs_f64()))
}

/// The current values of the sequences feeding each table's columns.
async fn read_sequences(
    session: &Session,
    tables: &[&Table],
) -> Result<Vec<Vec<ManifestSequence>>> {
    let mut all = Vec::with_capacity(tables.len());
    for t in tables {
        let mut seqs = Vec::new();
        for s in &t.sequences {
            let at = read_position(session, &s.sequence, || {
                format!("cannot read sequence {} of table {}", s.sequence, t.name)
            })
            .await?;
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

/// Runs the workers and collects one result per job, in job order. The first
/// error stops the others and is returned; so does the coordinator's session
/// ending, since from then on no lock keeps the unread tables as they were.
async fn run_workers(
    plan: &BackupOptions,
    coordinator: &Session,
    dir: &Location,
    snapshot: &str,
    jobs: &Arc<Vec<Job>>,
    progress: &Arc<Progress>,
) -> Result<Vec<TableResult>> {
    if jobs.is_empty() {
        return Ok(Vec::new());
    }
    let workers = crate::jobs::worker_count(plan.jobs, jobs.len());
    // Estimated sizes are never negative (pg_relation_size).
    let order =
        crate::jobs::largest_first(jobs.iter().map(|j| j.table.estimated_bytes.max(0) as u64));
    let queue = Arc::new(Mutex::new(VecDeque::from(order)));
    let stop = Arc::new(AtomicBool::new(false));
    let (tx, mut rx) = mpsc::unbounded_channel::<Result<TableResult>>();
    let mut handles = Vec::new();
    for w in 0..workers {
        let ctx = WorkerContext {
            conn: plan.conn.clone(),
            snapshot: snapshot.to_string(),
            dir: dir.clone(),
            compression: plan.compression,
            workers,
            jobs: jobs.clone(),
            queue: queue.clone(),
            stop: stop.clone(),
            progress: progress.clone(),
            results: tx.clone(),
        };
        let handle = std::thread::Builder::new()
            .name(format!("pgbarge-worker-{w}"))
            .spawn(move || ctx.run())
            .map_err(|e| Error::runtime(format!("cannot start a worker thread: {e}")))?;
        handles.push(handle);
    }
    drop(tx);

    let mut results: Vec<Option<TableResult>> = (0..jobs.len()).map(|_| None).collect();
    let mut first_error = crate::jobs::RootCause::default();
    let mut watching = true;
    loop {
        let r = tokio::select! {
            r = rx.recv() => match r {
                Some(r) => r,
                None => break,
            },
            lost = coordinator.ended(), if watching => {
                watching = false;
                Err(coordinator_lost(lost))
            }
        };
        match r {
            Ok(res) => {
                let i = res.index;
                results[i] = Some(res);
            }
            Err(e) => {
                stop.store(true, Ordering::SeqCst);
                first_error.record(e);
            }
        }
    }
    for h in handles {
        let _ = tokio::task::spawn_blocking(move || h.join()).await;
    }
    if let Some(e) = first_error.into_error() {
        return Err(e);
    }
    if let Some(signal) = crate::cancel::reason() {
        return Err(Error::Interrupted { signal });
    }
    results
        .into_iter()
        .zip(jobs.iter())
        .map(|(r, job)| {
            r.ok_or_else(|| Error::runtime(format!("table {} was not backed up", job.table.name)))
        })
        .collect()
}

struct WorkerContext {
    conn: Arc<ConnInfo>,
    snapshot: String,
    dir: Location,
    compression: Compression,
    /// How many workers run at once (their writers share one queue budget).
    workers: usize,
    jobs: Arc<Vec<Job>>,
    /// Indexes into `jobs`, largest table first.
    queue: Arc<Mutex<VecDeque<usize>>>,
    stop: Arc<AtomicBool>,
    progress: Arc<Progress>,
    results: mpsc::UnboundedSender<Result<TableResult>>,
}

impl WorkerContext {
    /// A worker thread: its own current-thread runtime, so the COPY connection
    /// and the stream's consumer share one thread (PERF-NOTES.md).
    fn run(self) {
        let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
            Ok(rt) => rt,
            Err(e) => {
                let _ = self
                    .results
                    .send(Err(Error::runtime(format!("cannot start a worker runtime: {e}"))));
                return;
            }
        };
        rt.block_on(self.work());
    }

    async fn work(&self) {
        let mut session =
            match crate::conn::snapshot::join_snapshot(&self.conn, &self.snapshot).await {
                Ok(s) => s,
                Err(e) => {
                    let _ = self.results.send(Err(e));
                    return;
                }
            };
        while !self.stop.load(Ordering::SeqCst) {
            let Some(index) = self.queue.lock().unwrap_or_else(|p| p.into_inner()).pop_front()
            else {
                return;
            };
            let job = &self.jobs[index];
            let r = self
                .backup_table_retrying(&mut session, index, job)
                .await
                .map_err(|e| e.context(format!("backup of table {} failed", job.table.name)));
            let failed = r.is_err();
            let _ = self.results.send(r);
            if failed {
                return;
            }
        }
    }

    /// Backs up one table; when the worker's session is lost midway (its
    /// backend terminated, the network broken) while the run goes on, joins
    /// the snapshot again on a new session and starts the table over, at most
    /// [`MAX_TABLE_RETRIES`] times. The snapshot outlives a worker: the
    /// coordinator holds it (and the table locks), so the restarted table is
    /// read as of the same moment; if the coordinator is gone too, joining
    /// fails and that is the error.
    async fn backup_table_retrying(
        &self,
        session: &mut Session,
        index: usize,
        job: &Job,
    ) -> Result<TableResult> {
        let mut bar = self.progress.table(&job.table.name.to_string(), job.table.estimated_rows);
        let mut retries = 0;
        loop {
            let e = match self.backup_table(session, index, job, &mut bar).await {
                Ok(r) => {
                    bar.finish(&self.progress);
                    return Ok(r);
                }
                Err(e) => e,
            };
            if retries == MAX_TABLE_RETRIES
                || self.stop.load(Ordering::SeqCst)
                || crate::cancel::reason().is_some()
                || !is_session_lost(session, &e).await
            {
                return Err(e);
            }
            retries += 1;
            self.progress.note(&format!(
                "warning: the session reading {} was lost ({}); joining the snapshot again \
                 and starting the table over (retry {retries} of {MAX_TABLE_RETRIES})",
                job.table.name,
                crate::error::render_body(&e).lines().next().unwrap_or_default(),
            ));
            bar.restart();
            *session = crate::conn::snapshot::join_snapshot(&self.conn, &self.snapshot)
                .await
                .map_err(|rejoin| {
                    rejoin.context(format!(
                        "the session reading {} was lost ({}) and the snapshot could not be joined again",
                        job.table.name,
                        crate::error::render_body(&e).lines().next().unwrap_or_default()
                    ))
                })?;
        }
    }

    async fn backup_table(
        &self,
        session: &Session,
        index: usize,
        job: &Job,
        bar: &mut TableProgress,
    ) -> Result<TableResult> {
        let mut sink = self.dir.data_sink(&job.file, self.compression, self.workers)?;
        let mut stages = CsvStages::new(true);
        copy_out(session, &job.table.copy_to_stdout_sql(), &mut stages, |block, stages| {
            if self.stop.load(Ordering::Relaxed) {
                // The run already failed elsewhere (its error is the one
                // reported); finishing this table would only delay that.
                return Err(Error::runtime("stopped: another part of the backup failed"));
            }
            bar.update(stages.rows(), stages.bytes());
            sink.feed(block)
        })
        .await?;
        let csv = stages.finish().map_err(|e| {
            Error::runtime(format!("the COPY output of {} is malformed: {e}", job.table.name))
        })?;
        let file = sink.finish()?;
        bar.update(csv.rows, csv.csv_bytes);
        Ok(TableResult { index, csv, file })
    }
}

/// How many times one table is started over after its worker's session was
/// lost: a backend terminated once or twice is survivable; a server that
/// keeps ending sessions is an error to report.
const MAX_TABLE_RETRIES: u32 = 2;

/// Whether `e` came from `session` having ended (the retryable case), not from
/// the table, the files or a signal. A terminated backend sends its FATAL
/// (SQLSTATE 57P01) before it closes, so the session's end is awaited a moment.
async fn is_session_lost(session: &Session, e: &Error) -> bool {
    let may_be = e.is_connection_failure() || e.sqlstate().is_some_and(|c| c.starts_with("57P"));
    may_be && tokio::time::timeout(Duration::from_secs(1), session.ended()).await.is_ok()
}

/// A pg_dump at least as new as the server (pg_dump refuses older servers'
/// dumps otherwise... and a newer server's with an older pg_dump).
///
/// # Errors
/// None found that runs, or one older than the server.
async fn find_usable_pg_dump(server: &ServerInfo) -> Result<PathBuf> {
    let server_major = server.server_version_num / 10000;
    let pg_dump = find_pg_dump(server_major);
    let version =
        tokio::process::Command::new(&pg_dump).arg("--version").output().await.map_err(|e| {
            Error::Runtime {
                msg: format!("cannot run {}: {e}", pg_dump.display()),
                hint: Some(
                    "--schema needs pg_dump (Debian: apt-get install postgresql-client)".into(),
                ),
            }
        })?;
    let text = String::from_utf8_lossy(&version.stdout);
    let major: i32 = text
        .split_whitespace()
        .find_map(|w| w.split('.').next().and_then(|m| m.parse().ok()))
        .unwrap_or(0);
    if major < server_major {
        return Err(Error::runtime_hint(
            format!(
                "{} is version {major}, older than the server ({})",
                pg_dump.display(),
                server.server_version
            ),
            format!("install pg_dump {server_major} or newer (postgresql-client-{server_major})"),
        ));
    }
    Ok(pg_dump)
}

/// Writes one section of the schema (`pre-data` or `post-data`) to `file`
/// with `pg_dump --schema-only --section` of the same snapshot; returns its
/// sha256. The sections are what pg_restore runs around the rows: tables
/// before them, indexes, constraints (`NOT VALID` ones among them) and
/// triggers after.
async fn dump_schema(
    pg_dump: &Path,
    conn: &ConnInfo,
    snapshot: &str,
    section: &str,
    file: &str,
    dir: &Location,
    lock_wait_timeout: Duration,
) -> Result<String> {
    let mut cmd = tokio::process::Command::new(pg_dump);
    cmd.arg("--schema-only")
        .arg(format!("--section={section}"))
        .arg(format!("--snapshot={snapshot}"))
        // pg_dump locks every table it dumps; it waits no longer than we do.
        .arg(format!("--lock-wait-timeout={}", lock_wait_timeout.as_millis().max(1)))
        .arg("--no-password")
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("PGHOST", &conn.host)
        .env("PGPORT", conn.port.to_string())
        .env("PGUSER", &conn.user)
        .env("PGDATABASE", &conn.dbname)
        .env("PGSSLMODE", conn.effective_sslmode().as_str())
        .env("PGAPPNAME", "pgbarge pg_dump");
    if let Some(p) = conn.password() {
        // The password travels in the child's environment, never its arguments.
        cmd.env("PGPASSWORD", p);
    }
    if let Some(ca) = &conn.sslrootcert {
        cmd.env("PGSSLROOTCERT", ca);
    }
    if let Some(addr) = conn.hostaddr {
        cmd.env("PGHOSTADDR", addr.to_string());
    }
    let out = tokio::select! {
        o = cmd.kill_on_drop(true).output() => o.map_err(|e| Error::io("cannot run", pg_dump, e))?,
        signal = crate::cancel::cancelled() => return Err(Error::Interrupted { signal }),
    };
    if !out.status.success() {
        return Err(Error::runtime(format!(
            "pg_dump --schema-only --section={section} failed: {}",
            crate::redact::redact(String::from_utf8_lossy(&out.stderr).trim())
        )));
    }
    // A schema is small next to the data; written like every other file.
    dir.write(file, &out.stdout).await?;
    Ok(crate::format::digest::sha256_hex(&out.stdout))
}

/// `PGBARGE_PG_DUMP` when set; else pg_dump of the server's major version
/// when installed side by side (Debian's layout); else the one on PATH.
fn find_pg_dump(server_major: i32) -> PathBuf {
    if let Some(p) = std::env::var_os("PGBARGE_PG_DUMP").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    let versioned = PathBuf::from(format!("/usr/lib/postgresql/{server_major}/bin/pg_dump"));
    if versioned.exists() { versioned } else { PathBuf::from("pg_dump") }
}
