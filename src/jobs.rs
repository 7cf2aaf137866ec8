//! The one job runner every worker pool shares: jobs handed out in a given
//! order (largest first), a job waiting for the jobs it depends on, the first
//! failure stopping the others (their server requests cancelled, not waited
//! out) and reported as the run's root cause, and the bound on retries.
//!
//! Backup's workers (threads, each with its own runtime, on one snapshot),
//! verify's file checkers (threads) and the load's per-table pool (futures
//! on one thread, a table waiting for the tables it references) each take
//! jobs from a [`JobQueue`]; what runs a job stays with them. Backup's
//! workers and verify's live comparison retry a lost session at most
//! [`MAX_RETRIES`] times.

use std::collections::VecDeque;
use std::sync::Mutex;

use tokio::sync::{Notify, watch};

use crate::error::{Class, Error};

/// How many times work is started over after its session was lost (its
/// backend terminated, the network broken): a backup worker's table, or
/// verify's whole live comparison. A session lost once or twice is
/// survivable; a server that keeps ending sessions is an error to report.
pub const MAX_RETRIES: u32 = 2;

/// Workers when `-j` is not given, at most.
pub const DEFAULT_WORKERS: usize = 4;

/// How many workers run `jobs` jobs: `-j` or [`DEFAULT_WORKERS`], never more
/// than there are jobs, never none.
pub fn worker_count(requested: Option<usize>, jobs: usize) -> usize {
    requested.unwrap_or(DEFAULT_WORKERS).min(jobs).max(1)
}

/// Job indexes, largest first, so the longest job starts early and the run
/// ends evenly; jobs of equal size keep their order.
fn largest_first(sizes: impl IntoIterator<Item = u64>) -> Vec<usize> {
    let sizes: Vec<u64> = sizes.into_iter().collect();
    let mut order: Vec<usize> = (0..sizes.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(sizes[i]));
    order
}

/// The error a failed run reports: the first one, unless it only echoes a
/// stop (a worker interrupted because the run was stopping) and a real
/// cause comes after it.
#[derive(Debug, Default)]
struct RootCause(Option<Error>);

impl RootCause {
    /// Records a failure.
    pub fn record(&mut self, e: Error) {
        if self.0.as_ref().is_none_or(|kept| kept.class() == Class::Interrupted) {
            self.0 = Some(e);
        }
    }

    pub fn is_set(&self) -> bool {
        self.0.is_some()
    }

    /// The error to report, if any failed.
    pub fn into_error(self) -> Option<Error> {
        self.0
    }
}

/// The jobs of one run, shared by its workers (on any thread or runtime).
pub struct JobQueue {
    state: Mutex<QueueState>,
    /// Per job: the jobs that must be done before it starts.
    after: Vec<Vec<usize>>,
    /// Signalled when a job is done or the run fails.
    changed: Notify,
    /// Set once the run fails: the workers stop.
    failed: watch::Sender<bool>,
}

struct QueueState {
    pending: VecDeque<usize>,
    done: Vec<bool>,
    running: usize,
    failure: RootCause,
}

impl JobQueue {
    /// `order` lists job indexes in the order to hand them out; `after[i]`
    /// the jobs job `i` waits for (empty: none waits).
    pub fn new(order: Vec<usize>, after: Vec<Vec<usize>>) -> Self {
        let jobs = order.iter().map(|&i| i + 1).max().unwrap_or(0).max(after.len());
        JobQueue {
            state: Mutex::new(QueueState {
                pending: order.into(),
                done: vec![false; jobs],
                running: 0,
                failure: RootCause::default(),
            }),
            after,
            changed: Notify::new(),
            failed: watch::channel(false).0,
        }
    }

    /// Independent jobs, the largest first.
    pub fn largest_first(sizes: impl IntoIterator<Item = u64>) -> Self {
        Self::new(largest_first(sizes), Vec::new())
    }

    /// Hands out the jobs not yet started largest first by `sizes` (one per
    /// job, by index), equal sizes keeping their order: for sizes learnt
    /// once the run has started.
    pub fn reorder_largest_first(&self, sizes: &[u64]) {
        let mut st = self.lock();
        st.pending
            .make_contiguous()
            .sort_by_key(|&i| std::cmp::Reverse(sizes.get(i).copied().unwrap_or(0)));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, QueueState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The next job to run, once the jobs it waits for are done; `None` when
    /// none is left or the run is stopping (a failure or a signal).
    pub async fn next(&self) -> Option<usize> {
        loop {
            let notified = self.changed.notified();
            let mut notified = std::pin::pin!(notified);
            // Registered before looking, so nothing done in between is missed.
            notified.as_mut().enable();
            {
                let mut st = self.lock();
                if st.failure.is_set() || crate::cancel::reason().is_some() || st.pending.is_empty()
                {
                    return None;
                }
                let ready = st.pending.iter().position(|&i| {
                    self.after.get(i).into_iter().flatten().all(|&p| st.done.get(p) == Some(&true))
                });
                // With nothing running, nothing it waits for can get done
                // (a cycle): the first pending job goes, rather than none.
                let ready = ready.or((st.running == 0).then_some(0));
                if let Some(k) = ready {
                    st.running += 1;
                    return st.pending.remove(k);
                }
            }
            notified.await;
        }
    }

    /// [`JobQueue::next`] for a worker thread without a runtime.
    pub fn next_blocking(&self) -> Option<usize> {
        futures::executor::block_on(self.next())
    }

    /// Job `i` is done: the jobs waiting for it may start.
    pub fn done(&self, i: usize) {
        let mut st = self.lock();
        st.running = st.running.saturating_sub(1);
        if let Some(d) = st.done.get_mut(i) {
            *d = true;
        }
        drop(st);
        self.changed.notify_waiters();
    }

    /// A job (or the run around it) failed: `e` is kept unless a root cause
    /// is already known, and every worker is told to stop.
    pub fn fail(&self, e: Error) {
        let mut st = self.lock();
        st.running = st.running.saturating_sub(1);
        st.failure.record(e);
        drop(st);
        self.failed.send_replace(true);
        self.changed.notify_waiters();
    }

    /// Whether the run has failed (a worker stops at its next block).
    pub fn has_failed(&self) -> bool {
        *self.failed.borrow()
    }

    /// Resolves once the run has failed, so that a worker waiting on its
    /// server (a stream, a lock) can stop at once.
    pub async fn failure(&self) {
        let mut rx = self.failed.subscribe();
        let _ = rx.wait_for(|failed| *failed).await;
    }

    /// The run's outcome: its root cause, else the signal that stopped it.
    ///
    /// # Errors
    /// As said.
    pub fn finish(&self) -> Result<(), Error> {
        if let Some(e) = std::mem::take(&mut self.lock().failure).into_error() {
            return Err(e);
        }
        match crate::cancel::reason() {
            Some(signal) => Err(Error::Interrupted { signal }),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workers_and_order() {
        assert_eq!(worker_count(None, 10), 4);
        assert_eq!(worker_count(None, 2), 2);
        assert_eq!(worker_count(Some(8), 3), 3);
        assert_eq!(worker_count(Some(1), 0), 1);
        assert_eq!(largest_first([5, 9, 5, 1, 9]), vec![1, 4, 0, 2, 3]);
    }

    #[test]
    fn jobs_not_started_are_reordered_by_sizes_learnt_later() {
        // Estimates say 0 is largest; the real sizes, learnt after 0 started, say 3.
        let q = JobQueue::largest_first([90, 10, 20, 0]);
        assert_eq!(q.next_blocking(), Some(0));
        q.reorder_largest_first(&[90, 10, 10, 500]);
        assert_eq!(q.next_blocking(), Some(3));
        assert_eq!(q.next_blocking(), Some(2), "equal sizes keep their order");
        assert_eq!(q.next_blocking(), Some(1));
        assert_eq!(q.next_blocking(), None);
    }

    #[test]
    fn the_root_cause_outlives_echoes_of_the_stop() {
        let mut r = RootCause::default();
        r.record(Error::Interrupted { signal: "SIGINT" });
        r.record(Error::runtime("disk full"));
        r.record(Error::runtime("stopped: another part failed"));
        assert!(r.is_set());
        assert!(crate::error::render(&r.into_error().unwrap()).contains("disk full"));
    }

    #[test]
    fn a_job_waits_for_the_jobs_it_depends_on() {
        // Job 0 waits for 1; 2 is independent.
        let q = JobQueue::new(vec![0, 1, 2], vec![vec![1], vec![], vec![]]);
        assert_eq!(q.next_blocking(), Some(1));
        assert_eq!(q.next_blocking(), Some(2));
        q.done(1);
        assert_eq!(q.next_blocking(), Some(0));
        assert_eq!(q.next_blocking(), None);
        q.done(0);
        q.done(2);
        assert!(q.finish().is_ok());
    }

    #[test]
    fn a_cycle_does_not_leave_every_worker_waiting() {
        let q = JobQueue::new(vec![0, 1], vec![vec![1], vec![0]]);
        assert_eq!(q.next_blocking(), Some(0));
        q.done(0);
        assert_eq!(q.next_blocking(), Some(1));
    }

    #[test]
    fn a_failure_stops_the_queue_and_wakes_waiters() {
        let q = std::sync::Arc::new(JobQueue::new(vec![0, 1], vec![vec![], vec![0]]));
        assert_eq!(q.next_blocking(), Some(0));
        let waiter = {
            let q = q.clone();
            std::thread::spawn(move || q.next_blocking())
        };
        std::thread::sleep(std::time::Duration::from_millis(50));
        q.fail(Error::runtime("disk full"));
        assert_eq!(waiter.join().unwrap(), None);
        assert!(q.has_failed());
        futures::executor::block_on(q.failure());
        let e = q.finish().unwrap_err();
        assert!(crate::error::render(&e).contains("disk full"));
    }
}
