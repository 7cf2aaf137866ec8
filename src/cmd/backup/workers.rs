//! The workers: threads joining the coordinator's snapshot, tables handed out
//! largest first, the first failure stopping the rest, a lost session retried.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;

use super::{Job, TableResult, coordinator_lost};
use crate::conn::conninfo::ConnInfo;
use crate::conn::session::{Session, is_session_lost};
use crate::error::{Error, Result};
use crate::format::compression::Compression;
use crate::jobs::MAX_RETRIES;
use crate::options::BackupOptions;
use crate::progress::{Progress, TableProgress};
use crate::storage::location::Location;
use crate::stream::copy_out::copy_out;
use crate::stream::stages::CsvStages;

/// Runs the workers and collects one result per job, in job order. The first
/// error stops the others and is returned; so does the coordinator's session
/// ending, since from then on no lock keeps the unread tables as they were.
pub(super) async fn run_workers(
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

pub(super) struct WorkerContext {
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
    /// [`MAX_RETRIES`] times. The snapshot outlives a worker: the
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
            if retries == MAX_RETRIES
                || self.stop.load(Ordering::SeqCst)
                || crate::cancel::reason().is_some()
                || !is_session_lost(session, &e).await
            {
                return Err(e);
            }
            retries += 1;
            self.progress.note(&format!(
                "warning: the session reading {} was lost ({}); joining the snapshot again \
                 and starting the table over (retry {retries} of {MAX_RETRIES})",
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
