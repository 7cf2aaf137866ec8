//! Running a planned load: the whole plan in one transaction, or, with
//! per-table commits, tables (and the tables emptied with them) shared out to
//! `-j` workers, parents first.

use std::cell::RefCell;
use std::collections::HashMap;

use super::loader::Loader;
use super::plan::{LoadPlan, TableLoad};
use super::report::{TableDone, per_table_report};
use super::{LoadOptions, Mode};
use crate::conn::session::Session;
use crate::error::{Error, Result};
use crate::ident::TableName;
use crate::jobs::JobQueue;
use crate::stream::stages::WireFormat;

/// Loads one table's data into a loader's transaction: what copy and
/// restore each provide to [`run_load`].
pub trait TableStreamer {
    /// Streams `t` into `loader`, runs the checks due before commit and asks
    /// for its sequences to be advanced ([`Loader::advance_sequences`]; the
    /// moves are filled into the result when they are sent).
    fn load(
        &mut self,
        loader: &Loader<'_>,
        t: &TableLoad,
    ) -> impl std::future::Future<Output = Result<TableDone>>;

    /// The format `t`'s rows will reach the target in, known before its
    /// load starts (so its COPY can be prepared beside the table before).
    fn wire_format(&self, t: &TableLoad) -> WireFormat;

    /// Whether [`TableStreamer::load`] sends nothing to the target but
    /// [`Loader::load_table`], so that the next table's COPY may start as
    /// soon as this one's ends (see [`Loader::prepare_copies`]).
    fn only_loads(&self) -> bool;

    /// Runs, in the one transaction, after every table is loaded and checked
    /// and before the commit (restore's post-data schema section).
    fn before_commit(
        &mut self,
        _target: &Session,
    ) -> impl std::future::Future<Output = Result<()>> {
        async { Ok(()) }
    }
}

/// How many tables ahead of the one loading have their COPY prepared: two
/// at least, so that the next one's is ready when a table's COPY ends even
/// while the one after is being prepared behind an early-started COPY.
const PREPARED_AHEAD: usize = 8;

/// Runs the whole load: by default every table in one transaction, committed
/// after the last table and its checks; with `per_table_commit` a transaction
/// per table, after a first one in which `fail` checks every table and
/// `truncate` empties them all (so the per-table loads only add rows), on as
/// many workers as given (each a target session and a streamer), a table
/// starting once the tables it references have committed. On any error the
/// open transactions are rolled back.
///
/// # Errors
/// The first error; with `per_table_commit` it says which tables committed.
pub async fn run_load<S: TableStreamer>(
    workers: Vec<(&Session, S)>,
    plan: &LoadPlan,
    opts: &LoadOptions,
    per_table_commit: bool,
) -> Result<Vec<TableDone>> {
    let all: Vec<&TableLoad> = plan.tables.iter().collect();
    let mut workers = workers;
    if !per_table_commit {
        let (target, streamer) = workers.first_mut().expect("at least one worker");
        return load_in_one_transaction(target, streamer, &all, &[], plan.defer_constraints, opts)
            .await
            .map_err(|e| {
                // A signal's own words say nothing of the target; these do.
                if e.class() == crate::error::Class::Interrupted {
                    e.context("the load was rolled back: nothing was committed")
                } else if e.is_connection_failure()
                    || e.sqlstate().is_some_and(|c| c.starts_with("57P") || c.starts_with("08"))
                {
                    // Unlike a backup worker's table, a load in one
                    // transaction cannot be retried on a new session. The
                    // session lost may be copy's source: the cause says which.
                    e.context(
                        "a session ended before the commit, so the load was rolled back: nothing was committed (a load in one transaction is not retried: run the command again)",
                    )
                } else {
                    e
                }
            });
    }
    let mut per_table = opts.clone();
    if matches!(opts.mode, Mode::Fail | Mode::Truncate) {
        // Everything `fail` and `truncate` can refuse (rows present, locks,
        // privileges, references kept) is found here, in a transaction that
        // is rolled back, before any table commits. Each table is then
        // emptied in its own transaction, with its load.
        let first = Loader::begin(workers[0].0, &all, false, opts).await.map_err(target_err)?;
        first.rollback().await;
        if opts.mode == Mode::Fail {
            per_table.mode = Mode::Append;
        }
    }
    let families = if per_table.mode == Mode::Truncate { families(plan) } else { Vec::new() };
    let pool = Pool {
        queue: JobQueue::new((0..plan.tables.len()).collect(), parent_indexes(plan)),
        done: RefCell::new(Done {
            results: (0..plan.tables.len()).map(|_| None).collect(),
            committed: Vec::new(),
            emptied: Vec::new(),
        }),
        plan,
        opts: &per_table,
        families,
    };
    futures::future::join_all(
        workers.into_iter().map(|(target, streamer)| pool.work(target, streamer)),
    )
    .await;
    let done = pool.done.into_inner();
    if let Err(e) = pool.queue.finish() {
        return Err(e.context(per_table_report(plan, &done.committed, &done.emptied)));
    }
    Ok(done.results.into_iter().map(|r| r.expect("every table loaded")).collect())
}

/// Per table (same index): the indexes of the tables of the load it
/// references, which commit before it starts.
fn parent_indexes(plan: &LoadPlan) -> Vec<Vec<usize>> {
    let index: HashMap<&TableName, usize> =
        plan.tables.iter().enumerate().map(|(i, t)| (&t.target.name, i)).collect();
    plan.parents
        .iter()
        .enumerate()
        .map(|(child, parents)| {
            parents.iter().filter_map(|p| index.get(p).copied()).filter(|&p| p != child).collect()
        })
        .collect()
}

/// Per table (same index): the tables of the load that reference it,
/// directly or through others. Under `--per-table-commit --mode truncate` a
/// table's transaction empties them with it; each loads later, once every
/// table it references has committed.
fn families(plan: &LoadPlan) -> Vec<Vec<usize>> {
    let index: HashMap<&TableName, usize> =
        plan.tables.iter().enumerate().map(|(i, t)| (&t.target.name, i)).collect();
    let mut children: Vec<Vec<usize>> = vec![Vec::new(); plan.tables.len()];
    for (child, parents) in plan.parents.iter().enumerate() {
        for p in parents {
            if let Some(&parent) = index.get(p)
                && parent != child
            {
                children[parent].push(child);
            }
        }
    }
    (0..plan.tables.len())
        .map(|root| {
            let mut seen = vec![false; plan.tables.len()];
            let mut stack = children[root].clone();
            let mut family = Vec::new();
            while let Some(i) = stack.pop() {
                if i == root || std::mem::replace(&mut seen[i], true) {
                    continue;
                }
                family.push(i);
                stack.extend(&children[i]);
            }
            family.sort_unstable();
            family
        })
        .collect()
}

/// Loads `tables` in one transaction on `target`: each streamed, then the
/// references kept into them checked, then committed; rolled back on any error.
///
/// # Errors
/// The first error, after the rollback.
async fn load_in_one_transaction<S: TableStreamer>(
    target: &Session,
    streamer: &mut S,
    tables: &[&TableLoad],
    also_empty: &[&TableLoad],
    defer_constraints: bool,
    opts: &LoadOptions,
) -> Result<Vec<TableDone>> {
    let loader = Loader::begin_emptying(target, tables, also_empty, defer_constraints, opts)
        .await
        .map_err(target_err)?;
    let mut done = Vec::with_capacity(tables.len());
    let loaded: Result<()> = async {
        // The COPY statements of the next few tables are prepared beside
        // each table's load, and sent before it (join! polls in order).
        let mut prepared_to = 1;
        for (i, t) in tables.iter().enumerate() {
            let upto = (i + 1 + PREPARED_AHEAD).min(tables.len());
            let next: Vec<(&TableLoad, WireFormat)> = tables[prepared_to.min(upto)..upto]
                .iter()
                .map(|n| (*n, streamer.wire_format(n)))
                .collect();
            prepared_to = upto;
            let prepare = loader.prepare_copies(&next, streamer.only_loads());
            let load = streamer.load(&loader, t);
            let ((), d) = futures::join!(prepare, load);
            done.push(d?);
        }
        loader.send_pending_sequences().await.map_err(target_err)?;
        for (d, t) in done.iter_mut().zip(tables) {
            d.sequences = loader.take_sequence_moves(&t.target.name);
        }
        for t in tables {
            loader.check_kept_references(t).await?;
        }
        let before = streamer.before_commit(target).await;
        loader.forget_search_path();
        before
    }
    .await;
    match loaded {
        Ok(()) => loader.commit().await.map(|()| done).map_err(target_err),
        Err(e) => {
            loader.rollback().await;
            Err(e)
        }
    }
}

fn target_err(e: Error) -> Error {
    match e {
        Error::Context { .. } => e,
        e => e.context("TARGET"),
    }
}

/// Per-table loads shared by workers on one thread: each takes the next
/// table whose parents have committed from the run's one [`JobQueue`].
struct Pool<'a> {
    queue: JobQueue,
    done: RefCell<Done>,
    plan: &'a LoadPlan,
    opts: &'a LoadOptions,
    /// See [`families`]; empty unless each table is truncated on its own.
    families: Vec<Vec<usize>>,
}

/// What the committed tables gave, for the results and the report.
struct Done {
    results: Vec<Option<TableDone>>,
    committed: Vec<String>,
    /// (table, the committed table it was emptied with), in commit order.
    emptied: Vec<(String, String)>,
}

impl Pool<'_> {
    async fn work<S: TableStreamer>(&self, target: &Session, mut streamer: S) {
        while let Some(i) = self.queue.next().await {
            let t = &self.plan.tables[i];
            // A table failing elsewhere stops this one at once: its statement
            // is cancelled on the server and its transaction rolled back.
            let loaded = target
                .until(self.load_committed(target, &mut streamer, i), self.queue.failure())
                .await;
            match loaded {
                Some(Ok(d)) => {
                    let mut done = self.done.borrow_mut();
                    done.results[i] = Some(d);
                    done.committed.push(t.target.name.to_string());
                    for &j in self.families.get(i).into_iter().flatten() {
                        let name = self.plan.tables[j].target.name.to_string();
                        done.emptied.push((name, t.target.name.to_string()));
                    }
                    drop(done);
                    self.queue.done(i);
                }
                Some(Err(e)) => return self.queue.fail(e),
                None => {
                    return self.queue.fail(Error::runtime(format!(
                        "the load of {} did not stop when cancelled",
                        t.target.name
                    )));
                }
            }
        }
    }

    async fn load_committed<S: TableStreamer>(
        &self,
        target: &Session,
        streamer: &mut S,
        i: usize,
    ) -> Result<TableDone> {
        let family: Vec<&TableLoad> =
            self.families.get(i).into_iter().flatten().map(|&j| &self.plan.tables[j]).collect();
        let mut done = load_in_one_transaction(
            target,
            streamer,
            &[&self.plan.tables[i]],
            &family,
            self.plan.defer_constraints,
            self.opts,
        )
        .await?;
        Ok(done.pop().expect("one table, one result"))
    }
}
