//! What every worker pool shares: the order jobs are handed out in, how many
//! workers start, and which error a failed run reports.
//!
//! Backup's workers (threads on one snapshot, the first failure stopping the
//! rest) and verify's file checkers (threads, every result collected) take
//! their order and their number from here, and backup its reported error;
//! backup's workers and verify's live comparison their retry bound.
//! Each pool keeps its own loop, because what they share out differs; the
//! load's per-table pool (one thread, a table waiting for the tables it
//! references to commit) does not use these yet: it reports the first error
//! as it comes, a signal's included.

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
pub fn largest_first(sizes: impl IntoIterator<Item = u64>) -> Vec<usize> {
    let sizes: Vec<u64> = sizes.into_iter().collect();
    let mut order: Vec<usize> = (0..sizes.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(sizes[i]));
    order
}

/// The error a failed run reports: the first one, unless it only echoes a
/// stop (a worker interrupted because the run was stopping) and a real
/// cause comes after it.
#[derive(Debug, Default)]
pub struct RootCause(Option<Error>);

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
    fn the_root_cause_outlives_echoes_of_the_stop() {
        let mut r = RootCause::default();
        r.record(Error::Interrupted { signal: "SIGINT" });
        r.record(Error::runtime("disk full"));
        r.record(Error::runtime("stopped: another part failed"));
        assert!(r.is_set());
        assert!(crate::error::render(&r.into_error().unwrap()).contains("disk full"));
    }
}
