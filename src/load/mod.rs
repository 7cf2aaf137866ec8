//! What copy and restore share: the load side.
//!
//! Planning, before anything is written: tables matched by name in the
//! target, columns by name, keys for `skip`/`upsert`, parent-first order from
//! the target's foreign keys, cycles, and what `truncate` would reach. Then
//! the load itself inside the target's transaction: trigger handling, the
//! mode (emptiness check, `TRUNCATE`, staging table and `INSERT ... ON
//! CONFLICT`), `COPY ... FROM STDIN` fed block by block, sequences advanced,
//! and the checks made before commit. Nothing here knows where the blocks come
//! from (a source database or a backup file).

use std::collections::{HashMap, HashSet};

use bytes::Bytes;
use futures::SinkExt;

use crate::catalog::{Catalog, ForeignKey, Key, Table};
use crate::conn::locks::LockMode;
use crate::conn::session::Session;
use crate::error::{Error, Result};
use crate::format::digest::Fingerprint;
use crate::ident::{TableName, quote_ident};
use crate::stream::copy_out::copy_out;
use crate::stream::stages::{BLOCK_SIZE, StreamStages, WireFormat};

/// What to do with rows already in a target table (DESIGN.md's mode table).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Refuse a non-empty target table, before anything is written.
    Fail,
    /// Empty the table in the same transaction, then load.
    Truncate,
    /// Keep the rows; a key clash is an error and rolls back.
    Append,
    /// Keep the rows; incoming rows whose key exists are skipped.
    Skip,
    /// Keep the rows; incoming rows whose key exists replace them.
    Upsert,
}

impl Mode {
    /// Parses `--mode`.
    ///
    /// # Errors
    /// A usage error naming the valid modes.
    pub fn parse(s: &str) -> Result<Mode> {
        Ok(match s {
            "fail" => Mode::Fail,
            "truncate" => Mode::Truncate,
            "append" => Mode::Append,
            "skip" => Mode::Skip,
            "upsert" => Mode::Upsert,
            _ => {
                return Err(Error::usage_hint(
                    format!("invalid --mode \"{s}\""),
                    "use fail, truncate, append, skip or upsert",
                ));
            }
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Fail => "fail",
            Mode::Truncate => "truncate",
            Mode::Append => "append",
            Mode::Skip => "skip",
            Mode::Upsert => "upsert",
        }
    }

    /// Whether rows go through a staging table and `INSERT ... ON CONFLICT`.
    pub fn stages(self) -> bool {
        matches!(self, Mode::Skip | Mode::Upsert)
    }
}

/// How the load is done.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    pub mode: Mode,
    pub disable_triggers: bool,
    pub cascade: bool,
    /// The longest wait for any lock on the target (`--lock-wait-timeout`):
    /// the load transactions' `lock_timeout`.
    pub lock_wait_timeout: std::time::Duration,
}

/// A table as its data arrives: its name and columns in stream order.
#[derive(Debug, Clone)]
pub struct Incoming {
    pub name: TableName,
    /// (name, type) of each column in the stream.
    pub columns: Vec<(String, String)>,
}

/// Checks `-j` against `--per-table-commit`, shared by copy and restore.
///
/// # Errors
/// A usage error for 0, or more than 1 without per-table commits.
pub fn parse_jobs(jobs: Option<usize>, per_table_commit: bool) -> Result<usize> {
    let jobs = crate::limits::jobs(jobs)?.unwrap_or(1);
    if jobs > 1 && !per_table_commit {
        return Err(Error::usage_hint(
            "-j greater than 1 needs --per-table-commit",
            "one target transaction is one stream; parallel loads commit table by table",
        ));
    }
    Ok(jobs)
}

/// One table's load, decided before anything is written.
#[derive(Debug, Clone)]
pub struct TableLoad {
    /// Index into the `Incoming` list the plan was made from.
    pub index: usize,
    pub target: Table,
    /// The stream's columns, all present in the target.
    pub columns: Vec<String>,
    /// Target columns the stream lacks: they get their default or NULL.
    pub defaulted: Vec<String>,
    /// The key `skip` and `upsert` conflict on.
    pub key: Option<Key>,
    /// A `GENERATED ALWAYS` identity column is loaded: needs `OVERRIDING SYSTEM VALUE`.
    pub overriding: bool,
    /// Every column has the same built-in type on both sides, so the binary
    /// format can carry it.
    pub binary_ok: bool,
    /// Under `truncate` without `--cascade`: foreign keys of tables that are
    /// not loaded and reference this one. Their rows are kept, so the table
    /// is emptied with DELETE under `session_replication_role = replica` and
    /// every kept reference is checked after the load.
    pub kept_references: Vec<ForeignKey>,
}

impl TableLoad {
    fn column_list(&self) -> String {
        self.columns.iter().map(|c| quote_ident(c)).collect::<Vec<_>>().join(", ")
    }
}

/// Every table's load, parents first.
#[derive(Debug, Clone)]
pub struct LoadPlan {
    pub tables: Vec<TableLoad>,
    /// Deferrable foreign keys form a cycle among the tables: defer them.
    pub defer_constraints: bool,
    /// Per table (same index): the other loaded tables it references.
    pub parents: Vec<Vec<TableName>>,
    /// Tables not loaded that `TRUNCATE ... CASCADE` empties too (those
    /// referencing a loaded table, and so on), under `truncate --cascade`.
    pub cascaded: Vec<TableName>,
}

/// Plans the load of `incoming` into `target`. Every problem is collected and
/// reported at once, before anything is written.
///
/// # Errors
/// A usage error listing every table the target lacks, every column that
/// cannot be matched, every missing key, non-deferrable cycle, and table
/// `truncate` cannot empty without `--cascade`.
pub fn plan_load(target: &Catalog, incoming: &[Incoming], opts: &LoadOptions) -> Result<LoadPlan> {
    let mut problems = Vec::new();
    let mut loads: HashMap<TableName, TableLoad> = HashMap::new();
    for (index, inc) in incoming.iter().enumerate() {
        let Some(t) = target.find(&inc.name) else {
            problems.push(format!("the target has no table {}", inc.name));
            continue;
        };
        let by_name: HashMap<&str, &crate::catalog::Column> =
            t.columns.iter().map(|c| (c.name.as_str(), c)).collect();
        let mut binary_ok = true;
        let mut overriding = false;
        for (col, type_name) in &inc.columns {
            match by_name.get(col.as_str()) {
                None => problems.push(format!(
                    "table {}: column \"{col}\" is not in the target table",
                    inc.name
                )),
                Some(c) if c.generated => problems.push(format!(
                    "table {}: column \"{col}\" is generated in the target and cannot be loaded",
                    inc.name
                )),
                Some(c) => {
                    binary_ok &= c.builtin_type && &c.type_name == type_name;
                    overriding |= c.identity == Some(crate::catalog::Identity::Always);
                }
            }
        }
        let incoming_names: HashSet<&str> = inc.columns.iter().map(|(n, _)| n.as_str()).collect();
        let mut defaulted = Vec::new();
        for c in t.data_columns() {
            if incoming_names.contains(c.name.as_str()) {
                continue;
            }
            if c.not_null && !c.has_default && c.identity.is_none() {
                problems.push(format!(
                    "table {}: target column \"{}\" is NOT NULL without a default, and the data has no such column",
                    inc.name, c.name
                ));
            }
            defaulted.push(c.name.clone());
        }
        let key = if opts.mode.stages() {
            match t.best_key() {
                None => {
                    problems.push(format!(
                        "table {}: --mode {} needs a primary key or unique index, and the target table has none",
                        inc.name,
                        opts.mode.as_str()
                    ));
                    None
                }
                Some(k) if !k.columns.iter().all(|c| incoming_names.contains(c.as_str())) => {
                    problems.push(format!(
                        "table {}: the data lacks a column of key {}",
                        inc.name, k.name
                    ));
                    None
                }
                Some(k) => Some(k.clone()),
            }
        } else {
            None
        };
        loads.insert(
            t.name.clone(),
            TableLoad {
                index,
                target: t.clone(),
                columns: inc.columns.iter().map(|(n, _)| n.clone()).collect(),
                defaulted,
                key,
                overriding,
                binary_ok,
                kept_references: Vec::new(),
            },
        );
    }

    let chosen: Vec<&Table> = incoming.iter().filter_map(|i| target.find(&i.name)).collect();
    let order = target.load_order(&chosen);
    let selected: HashSet<&TableName> = chosen.iter().map(|t| &t.name).collect();
    let mut defer = false;
    for cycle in &order.cycles {
        let members: HashSet<&TableName> = cycle.iter().collect();
        let fks: Vec<_> = target
            .foreign_keys
            .iter()
            .filter(|fk| members.contains(&fk.child) && members.contains(&fk.parent))
            .collect();
        if fks.iter().all(|fk| fk.deferrable) {
            defer = true;
        } else if !opts.disable_triggers {
            let stiff: Vec<String> = fks
                .iter()
                .filter(|fk| !fk.deferrable)
                .map(|fk| format!("{} on {}", fk.name, fk.child))
                .collect();
            problems.push(format!(
                "tables {} reference each other in a cycle through foreign keys that are not deferrable ({}); no load order satisfies them",
                cycle.iter().map(|t| t.to_string()).collect::<Vec<_>>().join(", "),
                stiff.join(", ")
            ));
        }
    }
    if opts.mode == Mode::Truncate && !opts.cascade {
        for fk in &target.foreign_keys {
            if !selected.contains(&fk.parent) || selected.contains(&fk.child) {
                continue;
            }
            if opts.disable_triggers {
                if let Some(l) = loads.get_mut(&fk.parent) {
                    l.kept_references.push(fk.clone());
                }
            } else {
                problems.push(format!(
                    "table {} is referenced by {} (foreign key {}), which is not being loaded: TRUNCATE cannot empty it alone",
                    fk.parent, fk.child, fk.name
                ));
            }
        }
    }
    if !problems.is_empty() {
        problems.sort();
        problems.dedup();
        return Err(Error::usage_hint(
            format!("cannot load:\n  {}", problems.join("\n  ")),
            hint_for(&problems),
        ));
    }
    let tables: Vec<TableLoad> = order.order.iter().filter_map(|n| loads.remove(n)).collect();
    let parents = tables
        .iter()
        .map(|t| {
            target
                .parents_of(&t.target.name)
                .into_iter()
                .filter(|p| selected.contains(p))
                .cloned()
                .collect()
        })
        .collect();
    let cascaded = if opts.mode == Mode::Truncate && opts.cascade {
        cascaded_tables(target, &selected)
    } else {
        Vec::new()
    };
    Ok(LoadPlan { tables, defer_constraints: defer, parents, cascaded })
}

/// Every table outside `selected` that `TRUNCATE ... CASCADE` of the
/// selected tables empties: referencing tables, transitively, sorted.
fn cascaded_tables(target: &Catalog, selected: &HashSet<&TableName>) -> Vec<TableName> {
    let mut emptied: HashSet<TableName> = selected.iter().map(|t| (*t).clone()).collect();
    let mut extra = Vec::new();
    loop {
        let more: Vec<TableName> = target
            .foreign_keys
            .iter()
            .filter(|fk| emptied.contains(&fk.parent) && !emptied.contains(&fk.child))
            .map(|fk| fk.child.clone())
            .collect();
        if more.is_empty() {
            break;
        }
        for t in more {
            if emptied.insert(t.clone()) {
                extra.push(t);
            }
        }
    }
    extra.sort_by_key(|t| t.to_string());
    extra
}

/// The row count of each table, read just before a load that empties them
/// (`--cascade`), for the dry run and the summary.
///
/// # Errors
/// Server errors.
pub async fn count_rows(session: &Session, tables: &[TableName]) -> Result<Vec<(TableName, u64)>> {
    let mut counts = Vec::with_capacity(tables.len());
    for t in tables {
        let n: i64 = session
            .query_value(
                &format!("SELECT count(*) FROM {}", t.quoted()),
                format!("TARGET: cannot count the rows of {t}"),
            )
            .await?;
        counts.push((t.clone(), n.max(0) as u64));
    }
    Ok(counts)
}

/// `  --cascade also emptied: public."RolePermission" (15 rows), ...`: the
/// tables outside the selection that the load empties, with their rows.
pub fn print_cascaded(verb: &str, counts: &[(TableName, u64)]) {
    if counts.is_empty() {
        return;
    }
    println!("  --cascade {verb} tables outside the selection:");
    for (t, n) in counts {
        println!("    {t} ({})", crate::progress::counted(*n, "row", "rows"));
    }
}

fn hint_for(problems: &[String]) -> String {
    let mut hints = Vec::new();
    if problems.iter().any(|p| p.contains("is not in the target") || p.contains("has no table")) {
        hints.push("bring the target's schema up to date first (a DDL file run with psql or `pgbarge sql`), or leave the table out with -T");
    }
    if problems.iter().any(|p| p.contains("cycle")) {
        hints.push("make those foreign keys DEFERRABLE, or pass --disable-triggers (superuser: session_replication_role = replica)");
    }
    if problems.iter().any(|p| p.contains("TRUNCATE cannot empty it alone")) {
        hints.push("pass --disable-triggers to keep the referencing rows (the table is emptied with DELETE as superuser, and every kept reference is checked after the load), --cascade to empty the referencing tables too, or select them as well");
    }
    if hints.is_empty() {
        hints.push("nothing was written");
    }
    hints.join("; ")
}

/// What loading one table did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Loaded {
    /// Rows the server accepted from the stream (COPY's own count).
    pub copied: u64,
    /// Rows that ended up inserted (all of them unless skip/upsert).
    pub inserted: u64,
    /// Rows that replaced existing ones (upsert).
    pub updated: u64,
    /// Incoming rows left out because their key existed (skip).
    pub skipped: u64,
}

/// A sequence moved after the load.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SequenceMove {
    pub sequence: String,
    pub from: i64,
    pub to: i64,
}

/// Something that hands out blocks of one table's data.
pub trait BlockSource {
    /// The next block; `None` at the end.
    fn next_block(&mut self) -> impl std::future::Future<Output = Result<Option<Bytes>>>;
}

impl BlockSource for crate::storage::source::FileSource {
    async fn next_block(&mut self) -> Result<Option<Bytes>> {
        self.next_block_async().await.transpose()
    }
}

/// The target side of a load: one open transaction on `session`.
pub struct Loader<'a> {
    pub session: &'a Session,
    opts: LoadOptions,
    /// Tables whose user triggers were disabled with ALTER TABLE; enabled again before commit.
    altered: Vec<TableName>,
    /// `session_replication_role = replica` is on: no trigger fires, foreign-key ones included.
    replica: bool,
}

impl<'a> Loader<'a> {
    /// Opens the transaction and prepares it for `tables`: triggers, deferred
    /// constraints, the emptiness check of `fail`, the `TRUNCATE` of `truncate`.
    ///
    /// # Errors
    /// Non-empty tables under `fail` (a usage error naming them), trigger
    /// handling that is not allowed, server errors.
    pub async fn begin(
        session: &'a Session,
        tables: &[&TableLoad],
        defer_constraints: bool,
        opts: &LoadOptions,
    ) -> Result<Loader<'a>> {
        Self::begin_emptying(session, tables, &[], defer_constraints, opts).await
    }

    /// As [`Loader::begin`]; under `truncate`, `also_empty` is emptied in the
    /// same statement: with `--per-table-commit`, the tables of the load that
    /// reference `tables` (they load after them, each in its own
    /// transaction), since a table cannot be truncated under rows that
    /// reference it.
    ///
    /// # Errors
    /// As [`Loader::begin`].
    pub async fn begin_emptying(
        session: &'a Session,
        tables: &[&TableLoad],
        also_empty: &[&TableLoad],
        defer_constraints: bool,
        opts: &LoadOptions,
    ) -> Result<Loader<'a>> {
        let mut loader =
            Loader { session, opts: opts.clone(), altered: Vec::new(), replica: false };
        loader.exec("BEGIN", "cannot start the target transaction").await?;
        // Whatever fails from here on leaves no transaction open behind it.
        match loader.prepare(tables, also_empty, defer_constraints).await {
            Ok(()) => Ok(loader),
            Err(e) => {
                loader.rollback().await;
                Err(e)
            }
        }
    }

    async fn prepare(
        &mut self,
        tables: &[&TableLoad],
        also_empty: &[&TableLoad],
        defer_constraints: bool,
    ) -> Result<()> {
        let superuser = self.opts.disable_triggers && self.is_superuser().await?;
        if self.opts.disable_triggers && !superuser {
            self.refuse_unowned(tables).await?;
        }
        let emptied: Vec<&TableLoad> = tables.iter().chain(also_empty).copied().collect();
        let locked = if self.opts.mode == Mode::Truncate { &emptied[..] } else { tables };
        self.lock_tables(locked, superuser).await?;
        if self.opts.disable_triggers {
            self.disable_triggers(tables, superuser).await?;
        }
        if defer_constraints {
            self.exec("SET CONSTRAINTS ALL DEFERRED", "cannot defer constraints").await?;
        }
        match self.opts.mode {
            Mode::Fail => {
                let full = non_empty(self.session, tables).await?;
                if !full.is_empty() {
                    return Err(Error::usage_hint(
                        format!(
                            "--mode fail: target table{} not empty: {}",
                            if full.len() == 1 { " is" } else { "s are" },
                            full.iter().map(|t| t.to_string()).collect::<Vec<_>>().join(", ")
                        ),
                        "nothing was written; choose --mode truncate, append, skip or upsert to say what happens to the rows there",
                    ));
                }
            }
            Mode::Truncate if !tables.is_empty() => {
                // ON TRUNCATE and DELETE triggers are user code.
                self.as_application().await?;
                self.empty_tables(&emptied).await?;
                self.as_pgbarge().await?;
            }
            _ => {}
        }
        Ok(())
    }

    /// `--mode truncate`: empties `tables` inside the transaction.
    async fn empty_tables(&self, tables: &[&TableLoad]) -> Result<()> {
        // Tables others keep referencing are emptied row by row with
        // the foreign-key triggers off (no ON DELETE action fires);
        // TRUNCATE empties the rest at once.
        let (kept, whole): (Vec<&&TableLoad>, Vec<&&TableLoad>) =
            tables.iter().partition(|t| !t.kept_references.is_empty());
        for t in kept {
            if !self.replica {
                return Err(Error::usage_hint(
                    format!(
                        "--mode truncate of {} keeps the rows of tables referencing it, which needs session_replication_role = replica, and the target user is not superuser",
                        t.target.name
                    ),
                    "pass --cascade to empty the referencing tables too, or select them as well",
                ));
            }
            self.exec(
                &format!("DELETE FROM {}", t.target.name.quoted()),
                &format!("cannot empty {}", t.target.name),
            )
            .await?;
        }
        if !whole.is_empty() {
            let names: Vec<String> = whole.iter().map(|t| t.target.name.quoted()).collect();
            let cascade = if self.opts.cascade { " CASCADE" } else { "" };
            self.exec(
                &format!("TRUNCATE {}{cascade}", names.join(", ")),
                "cannot truncate the target tables",
            )
            .await?;
        }
        Ok(())
    }

    async fn exec(&self, sql: &str, what: &str) -> Result<()> {
        self.session.execute(sql, what).await
    }

    /// From here to [`Loader::as_pgbarge`] (or the transaction's end) the
    /// session searches the path the target database and role give ordinary
    /// clients: statements that fire user code (COPY FROM, the staging merge,
    /// TRUNCATE, a deferred trigger at COMMIT) run it as the application
    /// would, so a trigger that names `"AuditLog"` unqualified finds it.
    /// What pgbarge sends meanwhile names everything schema-qualified.
    /// `SET LOCAL`, so the session's pinned `pg_catalog` returns with the
    /// transaction's end, whatever way it ends.
    async fn as_application(&self) -> Result<()> {
        self.exec("SET LOCAL search_path TO DEFAULT", "cannot set the search path").await
    }

    /// Back to the pinned `search_path = pg_catalog` for pgbarge's own
    /// queries (counts, checks, sequences) inside the transaction.
    async fn as_pgbarge(&self) -> Result<()> {
        self.exec("SET LOCAL search_path = pg_catalog", "cannot set the search path").await
    }

    async fn is_superuser(&self) -> Result<bool> {
        self.session
            .query_value(
                "SELECT current_setting('is_superuser') = 'on'",
                "cannot read whether the target user is superuser",
            )
            .await
    }

    /// Takes every lock the load needs, parents first, before anything is
    /// written, each in the strongest mode the transaction will ask for
    /// (`TRUNCATE`: ACCESS EXCLUSIVE; `ALTER TABLE ... DISABLE TRIGGER`:
    /// SHARE ROW EXCLUSIVE; `DELETE` and `COPY`: ROW EXCLUSIVE), so a table
    /// another session holds fails the load here, naming that session, rather
    /// than halfway. `lock_timeout` then stays set for the transaction, so
    /// any lock taken later (a foreign key's parent, `TRUNCATE ... CASCADE`'s
    /// referencing tables) is bounded too.
    async fn lock_tables(&self, tables: &[&TableLoad], superuser: bool) -> Result<()> {
        let wanted: Vec<(&TableName, LockMode)> = tables
            .iter()
            .map(|t| {
                let mode = if self.opts.mode == Mode::Truncate && t.kept_references.is_empty() {
                    LockMode::AccessExclusive
                } else if self.opts.disable_triggers && !superuser && !t.target.triggers.is_empty()
                {
                    LockMode::ShareRowExclusive
                } else {
                    LockMode::RowExclusive
                };
                (&t.target.name, mode)
            })
            .collect();
        crate::conn::locks::lock_tables(self.session, &wanted, self.opts.lock_wait_timeout)
            .await
            .map_err(|e| e.context("TARGET: nothing was written"))
    }

    /// Without superuser, `--disable-triggers` needs to own every table with
    /// triggers; checked before the locks, since locking a table in SHARE
    /// ROW EXCLUSIVE mode needs a privilege a mere writer lacks.
    async fn refuse_unowned(&self, tables: &[&TableLoad]) -> Result<()> {
        for t in tables.iter().filter(|t| !t.target.triggers.is_empty()) {
            let name = &t.target.name;
            let owner = self
                .session
                .client
                .query_one(
                    "SELECT pg_has_role(current_user, c.relowner, 'USAGE') FROM pg_class c WHERE c.oid = $1",
                    &[&t.target.oid],
                )
                .await
                .map_err(|e| Error::db(format!("cannot read the owner of {name}"), e))?;
            if !owner.get::<_, bool>(0) {
                return Err(Error::usage_hint(
                    format!(
                        "--disable-triggers: the target user is neither superuser nor owner of {name}, which has triggers ({})",
                        t.target.triggers.join(", ")
                    ),
                    "connect as the table's owner (on RDS, the master user owns what it created), or load with the triggers firing",
                ));
            }
        }
        Ok(())
    }

    /// As superuser, `session_replication_role = replica` (every trigger,
    /// foreign-key checks included, is off for this transaction). Otherwise
    /// `ALTER TABLE ... DISABLE TRIGGER USER` on tables the user owns.
    async fn disable_triggers(&mut self, tables: &[&TableLoad], superuser: bool) -> Result<()> {
        // Owners were checked before the locks (see `refuse_unowned`).
        if superuser {
            self.exec(
                "SET LOCAL session_replication_role = replica",
                "cannot set session_replication_role",
            )
            .await?;
            self.replica = true;
            return Ok(());
        }
        for t in tables {
            if t.target.triggers.is_empty() {
                continue;
            }
            let name = &t.target.name;
            self.exec(
                &format!("ALTER TABLE {} DISABLE TRIGGER USER", name.quoted()),
                &format!("cannot disable the triggers of {name}"),
            )
            .await?;
            self.altered.push(name.clone());
        }
        Ok(())
    }

    /// Loads one table from `blocks` in `format`, calling `on_block` on each
    /// block before it is sent (counting, checking; an error there aborts the
    /// COPY). For skip and upsert, rows go through a staging table first.
    ///
    /// # Errors
    /// The server's error (a key clash, a bad value), the source's or
    /// `on_block`'s error, or a signal. The transaction is then unusable:
    /// the caller drops it, and nothing is committed.
    pub async fn load_table(
        &self,
        t: &TableLoad,
        format: WireFormat,
        blocks: &mut impl BlockSource,
        on_block: impl FnMut(&Bytes) -> Result<()>,
    ) -> Result<Loaded> {
        // Triggers, check constraints and defaults fire during the COPY and
        // the merge: they run with the application's search path.
        self.as_application().await?;
        let loaded = self.stream_table(t, format, blocks, on_block).await?;
        self.as_pgbarge().await?;
        Ok(loaded)
    }

    /// [`Loader::load_table`]'s work, under the application's search path:
    /// every name sent here is schema-qualified.
    async fn stream_table(
        &self,
        t: &TableLoad,
        format: WireFormat,
        blocks: &mut impl BlockSource,
        mut on_block: impl FnMut(&Bytes) -> Result<()>,
    ) -> Result<Loaded> {
        let name = &t.target.name;
        let stage = "pg_temp.pgbarge_stage";
        let dest = if self.opts.mode.stages() {
            self.exec(
                &format!(
                    "DROP TABLE IF EXISTS {stage}; CREATE TEMP TABLE pgbarge_stage AS SELECT {} FROM {} WITH NO DATA",
                    if t.columns.is_empty() { String::new() } else { t.column_list() },
                    name.quoted()
                ),
                &format!("cannot create a staging table for {name}"),
            )
            .await?;
            stage.to_string()
        } else {
            name.quoted()
        };
        let cols =
            if t.columns.is_empty() { String::new() } else { format!(" ({})", t.column_list()) };
        let sql = format!("COPY {dest}{cols} FROM STDIN ({})", format.copy_options());
        let sink = self
            .session
            .cancellable(self.session.client.copy_in::<_, Bytes>(sql.as_str()))
            .await
            .map_err(|signal| Error::Interrupted { signal })?;
        let sink = match sink {
            Ok(s) => s,
            Err(e) => {
                return Err(self.session.db_error(format!("COPY into {name} failed"), e).await);
            }
        };
        let mut sink = std::pin::pin!(sink);
        while let Some(block) = blocks.next_block().await? {
            on_block(&block)?;
            // A block holding a large row goes out in pieces: tokio-postgres
            // copies each CopyData message whole into its write buffer, which
            // keeps its size, so one 100 MB message would add 100 MB for the
            // rest of the run. CopyData need not follow row boundaries
            // (protocol-flow.html, "COPY Operations"). The flush waits until
            // the connection took the last piece, so the block is let go of
            // before the next is asked for.
            let is_large = block.len() > 2 * BLOCK_SIZE;
            let piece_size = if is_large { BLOCK_SIZE } else { block.len() };
            let mut rest = block;
            while !rest.is_empty() {
                let piece = rest.split_to(rest.len().min(piece_size));
                let sent = self
                    .session
                    .cancellable(sink.feed(piece))
                    .await
                    .map_err(|signal| Error::Interrupted { signal })?;
                if let Err(e) = sent {
                    return Err(self.session.db_error(format!("COPY into {name} failed"), e).await);
                }
            }
            if is_large {
                let flushed = self
                    .session
                    .cancellable(sink.flush())
                    .await
                    .map_err(|signal| Error::Interrupted { signal })?;
                if let Err(e) = flushed {
                    return Err(self.session.db_error(format!("COPY into {name} failed"), e).await);
                }
            }
        }
        let finished = self
            .session
            .cancellable(sink.as_mut().finish())
            .await
            .map_err(|signal| Error::Interrupted { signal })?;
        let copied = match finished {
            Ok(n) => n,
            Err(e) => {
                return Err(self.session.db_error(format!("COPY into {name} failed"), e).await);
            }
        };
        if !self.opts.mode.stages() {
            return Ok(Loaded { copied, inserted: copied, ..Loaded::default() });
        }
        let key = t.key.as_ref().expect("planned with a key");
        let key_cols: Vec<String> = key.columns.iter().map(|c| quote_ident(c)).collect();
        let conflict = match self.opts.mode {
            Mode::Upsert => {
                let set: Vec<String> =
                    t.columns
                        .iter()
                        .filter(|c| !key.columns.contains(c))
                        .filter(|c| {
                            // An always-identity column can only be set to DEFAULT.
                            t.target.columns.iter().find(|tc| &tc.name == *c).is_none_or(|tc| {
                                tc.identity != Some(crate::catalog::Identity::Always)
                            })
                        })
                        .map(|c| format!("{0} = EXCLUDED.{0}", quote_ident(c)))
                        .collect();
                if set.is_empty() {
                    "DO NOTHING".to_string()
                } else {
                    format!("DO UPDATE SET {}", set.join(", "))
                }
            }
            _ => "DO NOTHING".to_string(),
        };
        let overriding = if t.overriding { " OVERRIDING SYSTEM VALUE" } else { "" };
        // xmax = 0 marks a freshly inserted row; an updated one has the
        // updating transaction's id there.
        let sql = format!(
            "WITH merged AS (INSERT INTO {}{cols}{overriding} SELECT {} FROM {stage} ON CONFLICT ({}) {conflict} RETURNING (xmax OPERATOR(pg_catalog.=) 0) AS inserted)
             SELECT pg_catalog.count(*) FILTER (WHERE inserted), pg_catalog.count(*) FILTER (WHERE NOT inserted) FROM merged",
            name.quoted(),
            t.column_list(),
            key_cols.join(", ")
        );
        let row = self
            .session
            .cancellable(self.session.client.query_one(sql.as_str(), &[]))
            .await
            .map_err(|signal| Error::Interrupted { signal })?;
        let row = match row {
            Ok(r) => r,
            Err(e) => {
                return Err(self.session.db_error(format!("merging into {name} failed"), e).await);
            }
        };
        let inserted = row.get::<_, i64>(0) as u64;
        let updated = row.get::<_, i64>(1) as u64;
        self.exec(&format!("DROP TABLE {stage}"), "cannot drop the staging table").await?;
        Ok(Loaded { copied, inserted, updated, skipped: copied - inserted - updated })
    }

    /// Advances the sequences feeding the loaded columns of `t` past the
    /// loaded values, and to at least `at_least[sequence]` when given (restore's
    /// recorded values); never backwards.
    ///
    /// # Errors
    /// Server errors (no UPDATE privilege on a sequence).
    pub async fn advance_sequences(
        &self,
        t: &TableLoad,
        at_least: &HashMap<String, i64>,
    ) -> Result<Vec<SequenceMove>> {
        let mut moves = Vec::new();
        for s in &t.target.sequences {
            if !t.columns.contains(&s.column) {
                continue;
            }
            let col = t.target.columns.iter().find(|c| c.name == s.column);
            let integral = col
                .is_some_and(|c| matches!(c.type_name.as_str(), "smallint" | "integer" | "bigint"));
            let loaded_max: Option<i64> = if integral {
                let sql = format!(
                    "SELECT max({})::bigint FROM {}",
                    quote_ident(&s.column),
                    t.target.name.quoted()
                );
                self.session
                    .query_value(
                        &sql,
                        format!("cannot read the largest {} of {}", s.column, t.target.name),
                    )
                    .await?
            } else {
                None
            };
            let wanted = loaded_max.into_iter().chain(at_least.get(&s.sequence).copied()).max();
            let Some(wanted) = wanted else { continue };
            let row = self
                .session
                .client
                .query_one(&format!("SELECT last_value, is_called FROM {}", s.sequence), &[])
                .await
                .map_err(|e| Error::db(format!("cannot read sequence {}", s.sequence), e))?;
            let (last, called): (i64, bool) = (row.get(0), row.get(1));
            if wanted > last || (wanted == last && !called) {
                self.session
                    .client
                    .execute("SELECT setval($1::text::regclass, $2, true)", &[&s.sequence, &wanted])
                    .await
                    .map_err(|e| Error::db(format!("cannot advance sequence {}", s.sequence), e))?;
                moves.push(SequenceMove { sequence: s.sequence.clone(), from: last, to: wanted });
            }
        }
        Ok(moves)
    }

    /// The target table's row count, inside the transaction.
    ///
    /// # Errors
    /// Server errors.
    pub async fn count(&self, t: &TableLoad) -> Result<u64> {
        t.target.count_rows(self.session).await
    }

    /// The fingerprint of the loaded columns as the target now holds them,
    /// inside the transaction (the same COPY CSV code path backup uses).
    ///
    /// # Errors
    /// Server errors.
    pub async fn fingerprint(&self, t: &TableLoad) -> Result<Fingerprint> {
        let cols: Vec<&str> = t.columns.iter().map(String::as_str).collect();
        let sql = t.target.copy_columns_to_stdout_sql(&cols, WireFormat::Csv.copy_options());
        let mut stages = StreamStages::new(WireFormat::Csv, true);
        copy_out(self.session, &sql, &mut stages, |_, _| Ok(())).await?;
        let csv = stages.finish().map_err(|e| {
            Error::runtime(format!("the COPY output of {} is malformed: {e}", t.target.name))
        })?;
        Ok(csv.fingerprint.expect("stages compute the fingerprint"))
    }

    /// Checks that the rows kept in tables referencing `t` (see
    /// [`TableLoad::kept_references`]) still find their parent rows, since
    /// the foreign-key triggers were off while `t` was emptied and loaded.
    ///
    /// # Errors
    /// A difference naming the foreign key and how many rows lost their parent.
    pub async fn check_kept_references(&self, t: &TableLoad) -> Result<()> {
        for fk in &t.kept_references {
            let pairs: Vec<String> = fk
                .columns
                .iter()
                .zip(&fk.parent_columns)
                .map(|(c, p)| format!("p.{} = c.{}", quote_ident(p), quote_ident(c)))
                .collect();
            let not_null: Vec<String> =
                fk.columns.iter().map(|c| format!("c.{} IS NOT NULL", quote_ident(c))).collect();
            let sql = format!(
                "SELECT count(*) FROM {} c WHERE {} AND NOT EXISTS (SELECT 1 FROM {} p WHERE {})",
                fk.child.quoted(),
                not_null.join(" AND "),
                fk.parent.quoted(),
                pairs.join(" AND ")
            );
            let orphans: i64 = self
                .session
                .query_value(&sql, format!("cannot check foreign key {} of {}", fk.name, fk.child))
                .await?;
            if orphans > 0 {
                return Err(Error::Difference {
                    msg: format!(
                        "{orphans} rows of {} would reference rows of {} that the load did not bring back (foreign key {})",
                        fk.child, fk.parent, fk.name
                    ),
                    hint: Some("nothing was committed; restore the referencing table too, or pass --cascade to empty it".into()),
                });
            }
        }
        Ok(())
    }

    /// The user triggers of `t` that fire during its load (none when disabled).
    pub fn triggers_fired(&self, t: &TableLoad) -> Vec<String> {
        if self.opts.disable_triggers { Vec::new() } else { t.target.triggers.clone() }
    }

    /// Enables what was disabled and commits.
    ///
    /// # Errors
    /// Server errors (a deferred constraint failing at commit, for one).
    pub async fn commit(self) -> Result<()> {
        for name in &self.altered {
            self.exec(
                &format!("ALTER TABLE {} ENABLE TRIGGER USER", name.quoted()),
                &format!("cannot enable the triggers of {name} again"),
            )
            .await?;
        }
        // Deferred triggers and constraint triggers fire at COMMIT: user code.
        self.as_application().await?;
        self.exec("COMMIT", "COMMIT failed; nothing was loaded").await
    }

    /// Ends the transaction without keeping anything.
    pub async fn rollback(self) {
        let _ = self.session.client.batch_execute("ROLLBACK").await;
    }
}

/// The tables among `tables` that hold at least one row.
///
/// # Errors
/// Server errors.
pub async fn non_empty(session: &Session, tables: &[&TableLoad]) -> Result<Vec<TableName>> {
    let mut full = Vec::new();
    for t in tables {
        let sql = format!("SELECT EXISTS (SELECT 1 FROM {} LIMIT 1)", t.target.name.quoted());
        if session.query_value(&sql, format!("cannot read {}", t.target.name)).await? {
            full.push(t.target.name.clone());
        }
    }
    Ok(full)
}

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

/// What a per-table load that stopped left behind, table by table: what
/// committed, what was emptied with a table that committed and not loaded
/// again, and what was left as it was.
fn per_table_report(plan: &LoadPlan, committed: &[String], emptied: &[(String, String)]) -> String {
    let mut parts = Vec::new();
    if committed.is_empty() {
        parts.push("no table was committed".to_string());
    } else {
        parts.push(format!("committed before the failure: {}", committed.join(", ")));
    }
    let lost: Vec<String> = emptied
        .iter()
        .filter(|(t, _)| !committed.contains(t))
        .map(|(t, with)| format!("{t} (with {with})"))
        .collect();
    if !lost.is_empty() {
        parts.push(format!(
            "emptied when a table it references committed, and not loaded again: {}",
            lost.join(", ")
        ));
    }
    let untouched: Vec<String> = plan
        .tables
        .iter()
        .map(|t| t.target.name.to_string())
        .filter(|n| !committed.contains(n) && !emptied.iter().any(|(t, _)| t == n))
        .collect();
    if !untouched.is_empty() {
        parts.push(format!("left as they were: {}", untouched.join(", ")));
    }
    if !committed.is_empty() || !lost.is_empty() {
        parts.push("run the same command again to finish the rest".into());
    }
    parts.join("; ")
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

/// `--dry-run`: checks what reading can check on the target (privileges,
/// emptiness under `fail`) and prints the plan. `estimates` and `formats`
/// are per table of the plan.
///
/// # Errors
/// A usage error listing what would make the load fail.
pub async fn dry_run(
    target: &Session,
    plan: &LoadPlan,
    opts: &LoadOptions,
    per_table_commit: bool,
    estimates: &[Option<u64>],
    formats: &[WireFormat],
) -> Result<()> {
    let all: Vec<&TableLoad> = plan.tables.iter().collect();
    let with_rows = non_empty(target, &all).await.map_err(|e| e.context("TARGET"))?;
    let mut problems = Vec::new();
    for t in &all {
        let row = target
            .client
            .query_one(
                "SELECT has_table_privilege($1::text::regclass, 'INSERT'), has_table_privilege($1::text::regclass, 'TRUNCATE')",
                &[&t.target.name.quoted()],
            )
            .await
            .map_err(|e| Error::db(format!("TARGET: cannot read privileges on {}", t.target.name), e))?;
        if !row.get::<_, bool>(0) {
            problems.push(format!("no INSERT privilege on {}", t.target.name));
        }
        if opts.mode == Mode::Truncate && !row.get::<_, bool>(1) {
            problems.push(format!("no TRUNCATE privilege on {}", t.target.name));
        }
    }
    if opts.mode == Mode::Fail && !with_rows.is_empty() {
        problems.push(format!(
            "--mode fail: not empty: {}",
            with_rows.iter().map(|t| t.to_string()).collect::<Vec<_>>().join(", ")
        ));
    }
    println!(
        "load plan (dry run, nothing written): mode {}, {}{}",
        opts.mode.as_str(),
        if per_table_commit { "a transaction per table" } else { "one transaction" },
        if plan.defer_constraints { ", constraints deferred" } else { "" }
    );
    for ((t, format), estimate) in plan.tables.iter().zip(formats).zip(estimates) {
        let mut notes = Vec::new();
        if with_rows.contains(&t.target.name) {
            notes.push(
                match opts.mode {
                    Mode::Truncate => "has rows: would be emptied",
                    Mode::Skip => "has rows: existing keys skipped",
                    Mode::Upsert => "has rows: existing keys updated",
                    Mode::Append => "has rows: kept",
                    Mode::Fail => "has rows: refused",
                }
                .to_string(),
            );
        }
        if !t.defaulted.is_empty() {
            notes.push(format!("default/NULL for {}", t.defaulted.join(", ")));
        }
        if !t.target.triggers.is_empty() {
            notes.push(format!(
                "triggers {} {}",
                t.target.triggers.join(", "),
                if opts.disable_triggers { "disabled" } else { "fire" }
            ));
        }
        println!(
            "  {:<40} ~{:>10} rows  {:<6}  {}",
            t.target.name.to_string(),
            estimate.map_or("?".into(), crate::progress::human_count),
            format!("{format:?}").to_lowercase(),
            notes.join("; ")
        );
    }
    print_cascaded("would also empty", &count_rows(target, &plan.cascaded).await?);
    if problems.is_empty() {
        println!("OK: the load can run");
        Ok(())
    } else {
        Err(Error::usage(format!("the load would fail:\n  {}", problems.join("\n  "))))
    }
}

/// One loaded table's outcome, for the summaries of copy and restore.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TableDone {
    pub table: String,
    /// The wire format, when the command chooses one per table.
    pub format: Option<WireFormat>,
    pub rows: u64,
    /// Bytes that went through the stream (CSV bytes for restore).
    pub bytes: u64,
    pub loaded: Loaded,
    /// Triggers that fired (none when disabled).
    pub triggers: Vec<String>,
    pub sequences: Vec<SequenceMove>,
}

/// Prints the summary of a load: totals, then one line per table (format,
/// what the mode did, triggers that fired, sequences moved). `what` names
/// the command, `bytes_are` the bytes counted, `about` ends the first line.
pub fn print_summary(
    what: &str,
    done: &[TableDone],
    mode: Mode,
    per_table_commit: bool,
    seconds: f64,
    bytes_are: &str,
    about: &str,
) {
    use crate::progress::human_bytes;
    let rows: u64 = done.iter().map(|d| d.rows).sum();
    let bytes: u64 = done.iter().map(|d| d.bytes).sum();
    println!(
        "{what} complete: {}, {}, {} {bytes_are}, {seconds:.1} s, {}/s; committed {}{about}",
        crate::progress::counted(done.len() as u64, "table", "tables"),
        crate::progress::counted(rows, "row", "rows"),
        human_bytes(bytes),
        human_bytes((bytes as f64 / seconds.max(0.001)) as u64),
        if per_table_commit { "table by table" } else { "in one transaction" },
    );
    print_table_lines(done, mode);
}

fn print_table_lines(done: &[TableDone], mode: Mode) {
    for d in done {
        let mut notes = Vec::new();
        if let Some(f) = d.format {
            notes.push(format!("{f:?}").to_lowercase());
        }
        match mode {
            Mode::Skip => {
                notes.push(format!("{} inserted, {} skipped", d.loaded.inserted, d.loaded.skipped))
            }
            Mode::Upsert => {
                notes.push(format!("{} inserted, {} updated", d.loaded.inserted, d.loaded.updated))
            }
            _ => notes.push(format!("mode {}", mode.as_str())),
        }
        // A trigger fires per row: none loaded, none fired.
        if !d.triggers.is_empty() && d.loaded.inserted + d.loaded.updated > 0 {
            notes.push(format!("triggers fired: {}", d.triggers.join(", ")));
        }
        for s in &d.sequences {
            notes.push(format!("sequence {} {} -> {}", s.sequence, s.from, s.to));
        }
        println!(
            "  {:<40} {:>10} rows  {}",
            d.table,
            crate::progress::human_count(d.rows),
            notes.join("; ")
        );
    }
}
