//! Running a planned load: the whole plan in one transaction, or, with
//! per-table commits, tables (and the tables emptied with them) shared out to
//! `-j` workers, parents first.

use std::collections::{HashMap, HashSet};

use super::loader::Loader;
use super::plan::{LoadPlan, TableLoad};
use super::report::per_table_report;
use super::{LoadOptions, Mode};
use crate::conn::session::Session;
use crate::error::{Error, Result};
use crate::ident::TableName;

/// Loads one table's data into a loader's transaction: what copy and
/// restore each provide to [`run_load`].
pub trait TableStreamer {
    type Done;
    /// Streams `t` into `loader` and runs the checks due before commit.
    fn load(
        &mut self,
        loader: &Loader<'_>,
        t: &TableLoad,
    ) -> impl std::future::Future<Output = Result<Self::Done>>;

    /// Runs, in the one transaction, after every table is loaded and checked
    /// and before the commit (restore's post-data schema section).
    fn before_commit(
        &mut self,
        _target: &Session,
    ) -> impl std::future::Future<Output = Result<()>> {
        async { Ok(()) }
    }
}

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
) -> Result<Vec<S::Done>> {
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
        state: std::cell::RefCell::new(PoolState {
            pending: (0..plan.tables.len()).collect(),
            done: HashSet::new(),
            results: (0..plan.tables.len()).map(|_| None).collect(),
            committed: Vec::new(),
            emptied: Vec::new(),
            failed: None,
        }),
        changed: tokio::sync::Notify::new(),
        plan,
        opts: &per_table,
        families,
    };
    futures::future::join_all(
        workers.into_iter().map(|(target, streamer)| pool.work(target, streamer)),
    )
    .await;
    let state = pool.state.into_inner();
    if let Some(e) = state.failed {
        return Err(e.context(per_table_report(plan, &state.committed, &state.emptied)));
    }
    Ok(state.results.into_iter().map(|r| r.expect("every table loaded")).collect())
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
) -> Result<Vec<S::Done>> {
    let loader = Loader::begin_emptying(target, tables, also_empty, defer_constraints, opts)
        .await
        .map_err(target_err)?;
    let mut done = Vec::with_capacity(tables.len());
    let loaded: Result<()> = async {
        for t in tables {
            done.push(streamer.load(&loader, t).await?);
        }
        for t in tables {
            loader.check_kept_references(t).await?;
        }
        streamer.before_commit(target).await
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

/// Per-table loads shared by workers on one thread.
struct Pool<'a, D> {
    state: std::cell::RefCell<PoolState<D>>,
    /// Signalled whenever a table commits or a worker fails.
    changed: tokio::sync::Notify,
    plan: &'a LoadPlan,
    opts: &'a LoadOptions,
    /// See [`families`]; empty unless each table is truncated on its own.
    families: Vec<Vec<usize>>,
}

struct PoolState<D> {
    /// Indexes into the plan's tables, in load order.
    pending: Vec<usize>,
    done: HashSet<TableName>,
    results: Vec<Option<D>>,
    committed: Vec<String>,
    /// (table, the committed table it was emptied with), in commit order.
    emptied: Vec<(String, String)>,
    failed: Option<Error>,
}

enum Pick {
    Table(usize),
    Wait,
    Stop,
}

impl<D> Pool<'_, D> {
    /// The first pending table whose referenced tables have all committed.
    fn pick(&self) -> Pick {
        let mut st = self.state.borrow_mut();
        if st.failed.is_some() || st.pending.is_empty() {
            return Pick::Stop;
        }
        let ready = st
            .pending
            .iter()
            .position(|&i| self.plan.parents[i].iter().all(|p| st.done.contains(p)));
        match ready {
            Some(k) => Pick::Table(st.pending.remove(k)),
            None => Pick::Wait,
        }
    }

    async fn work<S: TableStreamer<Done = D>>(&self, target: &Session, mut streamer: S) {
        loop {
            let notified = self.changed.notified();
            let mut notified = std::pin::pin!(notified);
            // Registered before looking, so no commit in between is missed.
            notified.as_mut().enable();
            let i = match self.pick() {
                Pick::Stop => return,
                Pick::Wait => {
                    notified.await;
                    continue;
                }
                Pick::Table(i) => i,
            };
            let t = &self.plan.tables[i];
            let result = self.load_committed(target, &mut streamer, t).await;
            let mut st = self.state.borrow_mut();
            match result {
                Ok(d) => {
                    st.results[i] = Some(d);
                    st.done.insert(t.target.name.clone());
                    st.committed.push(t.target.name.to_string());
                    for &j in self.families.get(i).into_iter().flatten() {
                        let name = self.plan.tables[j].target.name.to_string();
                        st.emptied.push((name, t.target.name.to_string()));
                    }
                }
                Err(e) => {
                    if st.failed.is_none() {
                        st.failed = Some(e);
                    }
                }
            }
            drop(st);
            self.changed.notify_waiters();
        }
    }

    async fn load_committed<S: TableStreamer<Done = D>>(
        &self,
        target: &Session,
        streamer: &mut S,
        t: &TableLoad,
    ) -> Result<D> {
        let index = self.plan.tables.iter().position(|x| std::ptr::eq(x, t));
        let family: Vec<&TableLoad> = index
            .and_then(|i| self.families.get(i))
            .into_iter()
            .flatten()
            .map(|&j| &self.plan.tables[j])
            .collect();
        let mut done = load_in_one_transaction(
            target,
            streamer,
            &[t],
            &family,
            self.plan.defer_constraints,
            self.opts,
        )
        .await?;
        Ok(done.pop().expect("one table, one result"))
    }
}
