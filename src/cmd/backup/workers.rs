//! The workers: threads joining the coordinator's snapshot, tables handed out
//! largest first, the first failure stopping the rest, a lost session retried.

use std::sync::Arc;

use tokio::sync::mpsc;

use super::{Job, TableResult, coordinator_lost};
use crate::conn::conninfo::ConnInfo;
use crate::conn::session::{Session, is_session_lost};
use crate::error::{Error, Result};
use crate::format::compression::Compression;
use crate::format::encryption::Recipients;
use crate::jobs::{JobQueue, MAX_RETRIES};
use crate::options::BackupOptions;
use crate::progress::{Progress, TableProgress};
use crate::storage::location::Location;
use crate::stream::copy_out::copy_out;
use crate::stream::stages::CsvStages;

/// Runs the workers, which take the jobs largest first by their estimated
/// sizes, and collects one result per job, in job order, with `beside` (the
/// coordinator's own reads, given the queue to reorder) running meanwhile. The first error,
/// `beside`'s included, stops the others and is returned; so does the
/// coordinator's session ending, since from then on no lock keeps the unread
/// tables as they were.
pub(super) async fn run_workers<T, F>(
    plan: &BackupOptions,
    coordinator: &Session,
    dir: &Location,
    snapshot: &str,
    jobs: &Arc<Vec<Job>>,
    progress: &Arc<Progress>,
    beside: impl FnOnce(Arc<JobQueue>) -> F,
) -> Result<(Vec<TableResult>, T)>
where
    F: std::future::Future<Output = Result<T>>,
{
    // Estimated sizes are never negative (pg_relation_size).
    let queue = Arc::new(JobQueue::largest_first(
        jobs.iter().map(|j| j.table.estimated_bytes.max(0) as u64),
    ));
    let beside = beside(queue.clone());
    if jobs.is_empty() {
        return Ok((Vec::new(), beside.await?));
    }
    let workers = crate::jobs::worker_count(plan.jobs, jobs.len());
    let (tx, mut rx) = mpsc::unbounded_channel::<TableResult>();
    let mut handles = Vec::new();
    for w in 0..workers {
        let ctx = WorkerContext {
            conn: plan.conn.clone(),
            snapshot: snapshot.to_string(),
            dir: dir.clone(),
            compression: plan.compression,
            seal: plan.encrypt_to.clone(),
            workers,
            jobs: jobs.clone(),
            queue: queue.clone(),
            progress: progress.clone(),
            results: tx.clone(),
        };
        let handle = std::thread::Builder::new()
            .name(format!("pgbarge-worker-{w}"))
            .spawn(move || ctx.run());
        match handle {
            Ok(h) => handles.push(h),
            Err(e) => queue.fail(Error::runtime(format!("cannot start a worker thread: {e}"))),
        }
    }
    drop(tx);

    let mut results: Vec<Option<TableResult>> = (0..jobs.len()).map(|_| None).collect();
    let mut watching = true;
    let mut beside = std::pin::pin!(beside);
    // Some once `beside` ended: its value, or None when it failed (its
    // error then went to the queue, which reports it).
    let mut beside_ended: Option<Option<T>> = None;
    loop {
        tokio::select! {
            r = rx.recv() => match r {
                Some(res) => {
                    let i = res.index;
                    results[i] = Some(res);
                }
                None => break,
            },
            lost = coordinator.ended(), if watching => {
                watching = false;
                queue.fail(coordinator_lost(lost));
            }
            r = &mut beside, if beside_ended.is_none() => match r {
                Ok(v) => beside_ended = Some(Some(v)),
                Err(e) => {
                    queue.fail(e);
                    beside_ended = Some(None);
                }
            },
        }
    }
    for h in handles {
        let _ = tokio::task::spawn_blocking(move || h.join()).await;
    }
    queue.finish()?;
    let beside = match beside_ended {
        Some(Some(v)) => v,
        Some(None) => return Err(Error::runtime("the coordinator's reads failed")),
        None => beside.await?,
    };
    let results = results
        .into_iter()
        .zip(jobs.iter())
        .map(|(r, job)| {
            r.ok_or_else(|| Error::runtime(format!("table {} was not backed up", job.table.name)))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok((results, beside))
}

pub(super) struct WorkerContext {
    conn: Arc<ConnInfo>,
    snapshot: String,
    dir: Location,
    compression: Compression,
    /// The recipients of an encrypted backup.
    seal: Option<Recipients>,
    /// How many workers run at once (their writers share one queue budget).
    workers: usize,
    jobs: Arc<Vec<Job>>,
    /// Indexes into `jobs`, largest table first; the first failure stops all.
    queue: Arc<JobQueue>,
    progress: Arc<Progress>,
    results: mpsc::UnboundedSender<TableResult>,
}

impl WorkerContext {
    /// A worker thread: its own current-thread runtime, so the COPY connection
    /// and the stream's consumer share one thread (PERF-NOTES.md).
    fn run(self) {
        let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
            Ok(rt) => rt,
            Err(e) => {
                self.queue.fail(Error::runtime(format!("cannot start a worker runtime: {e}")));
                return;
            }
        };
        rt.block_on(self.work());
    }

    async fn work(&self) {
        let mut session =
            match crate::conn::snapshot::join_snapshot(&self.conn, &self.snapshot).await {
                Ok(s) => s,
                Err(e) => return self.queue.fail(e),
            };
        while let Some(index) = self.queue.next().await {
            let job = &self.jobs[index];
            match self.backup_table_retrying(&mut session, index, job).await {
                Ok(Some(r)) => {
                    self.queue.done(index);
                    let _ = self.results.send(r);
                }
                // Stopped by a failure already recorded (a signal among
                // them): this worker adds no cause, which would hide it.
                Ok(None) => return,
                Err(e) => {
                    self.queue
                        .fail(e.context(format!("backup of table {} failed", job.table.name)));
                    return;
                }
            }
        }
        // Ended as a client ends, not by the runtime dropping the socket:
        // the server logs "unexpected EOF on client connection with an open
        // transaction" for each session that just disappears.
        session.close().await;
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
    ) -> Result<Option<TableResult>> {
        let mut bar = self.progress.table(&job.table.name.to_string(), job.table.estimated_rows);
        let mut retries = 0;
        loop {
            let e = match self.backup_table(session, index, job, &mut bar).await {
                Ok(Some(r)) => {
                    bar.finish(&self.progress);
                    return Ok(Some(r));
                }
                Ok(None) => return Ok(None),
                Err(e) => e,
            };
            if retries == MAX_RETRIES
                || self.queue.has_failed()
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
    ) -> Result<Option<TableResult>> {
        let mut sink =
            self.dir.data_sink(&job.file, self.compression, self.seal.as_ref(), self.workers)?;
        let mut stages = CsvStages::new(true);
        let sql = job.table.copy_to_stdout_sql();
        let copied = copy_out(session, &sql, &mut stages, |block, stages| {
            if self.queue.has_failed() {
                return Err(stopped());
            }
            bar.update(stages.rows(), stages.bytes());
            sink.feed(block)
        });
        // When the run fails elsewhere while this table waits on its server
        // (a lock, a stalled scan), it stops there too, rather than report
        // the failure only once this table is done.
        match session.until(copied, self.queue.failure()).await {
            Some(Ok(())) if !self.queue.has_failed() => {}
            Some(Err(e)) if !self.queue.has_failed() => return Err(e),
            // The run failed elsewhere: `None`, for that failure is the one
            // reported (the stop below, or this table's own error then, is
            // only its echo).
            _ => return Ok(None),
        }
        let csv = stages.finish().map_err(|e| {
            Error::runtime(format!("the COPY output of {} is malformed: {e}", job.table.name))
        })?;
        let file = sink.finish()?;
        bar.update(csv.rows, csv.csv_bytes);
        Ok(Some(TableResult { index, csv, file }))
    }
}

/// What stops a table's COPY when the run already failed elsewhere (never
/// reported: see [`WorkerContext::backup_table`]).
fn stopped() -> Error {
    Error::runtime("stopped: another part of the backup failed")
}
