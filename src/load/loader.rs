//! The load inside one target transaction: trigger handling, the mode
//! (emptiness check, `TRUNCATE`, staging table and `INSERT ... ON CONFLICT`),
//! `COPY ... FROM STDIN` fed block by block, sequences advanced, and the
//! checks made before commit.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;

use bytes::Bytes;
use futures::SinkExt;

use super::plan::TableLoad;
use super::{LoadOptions, Mode};
use crate::catalog::sequences::advance_past;
use crate::conn::locks::LockMode;
use crate::conn::session::Session;
use crate::error::{Error, Result};
use crate::format::digest::Fingerprint;
use crate::ident::{TableName, sql_ident};
use crate::stream::copy_out::copy_out;
use crate::stream::stages::{BLOCK_SIZE, StreamStages, WireFormat};

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
pub trait BlockSource<B = Bytes> {
    /// The next block; `None` at the end.
    fn next_block(&mut self) -> impl std::future::Future<Output = Result<Option<B>>>;
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
    /// The search path the transaction is on now, so that it is switched
    /// only when the next statement needs the other one: a thousand small
    /// tables loaded back to back must not cost two round trips each.
    path: Cell<SearchPath>,
    /// Sequence moves asked for and not sent yet (see [`Loader::advance_sequences`]).
    pending: RefCell<Vec<PendingAdvance>>,
    /// Moves made, per table, for [`Loader::take_sequence_moves`].
    moved: RefCell<HashMap<TableName, Vec<SequenceMove>>>,
    /// The `COPY ... FROM STDIN` of the next tables, in load order,
    /// prepared while earlier tables loaded (see [`Loader::prepare_copies`]).
    copies: RefCell<std::collections::VecDeque<NextCopy>>,
    /// The next table's COPY, started beside the end of the one before (see
    /// [`Loader::prepare_copies`]): its SQL and its sink or the server's error.
    /// While a sink waits here the session is in COPY mode, so nothing else
    /// may be sent: [`Loader::as_pgbarge`], the commit and the rollback
    /// abandon it first.
    started: RefCell<Option<(String, Result<CopyIn>)>>,
}

type CopyIn = tokio_postgres::CopyInSink<Bytes>;

/// A later table's `COPY ... FROM STDIN`, prepared: its SQL and the
/// statement or the server's error.
struct NextCopy {
    table: TableName,
    sql: String,
    statement: Result<tokio_postgres::Statement>,
    /// Whether it may be started as soon as the current table's COPY ends.
    start_early: bool,
}

/// Which `search_path` the load's transaction is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SearchPath {
    /// The session's pinned `pg_catalog`: pgbarge's own statements.
    Pgbarge,
    /// The database's and role's default: statements that fire user code.
    Application,
    /// Set by SQL pgbarge did not write (restore's post-data section).
    Unknown,
}

/// One sequence to move past a loaded table's values.
struct PendingAdvance {
    table: TableName,
    sequence: String,
    /// SQL expressions of type int8 (see [`advance_past`]).
    loaded_max: String,
    at_least: String,
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
        let mut loader = Loader {
            session,
            opts: opts.clone(),
            altered: Vec::new(),
            replica: false,
            path: Cell::new(SearchPath::Pgbarge),
            pending: RefCell::new(Vec::new()),
            moved: RefCell::new(HashMap::new()),
            copies: RefCell::new(std::collections::VecDeque::new()),
            started: RefCell::new(None),
        };
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
                            super::report::some_of(&full)
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
                &format!("DELETE FROM {}", t.target.name.sql()),
                &format!("cannot empty {}", t.target.name),
            )
            .await?;
        }
        if !whole.is_empty() {
            let names: Vec<String> = whole.iter().map(|t| t.target.name.sql()).collect();
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
    /// transaction's end, whatever way it ends. Sent only when the
    /// transaction is on another path.
    async fn as_application(&self) -> Result<()> {
        if self.path.get() != SearchPath::Application {
            // As in as_pgbarge: nothing may wait behind a COPY started early.
            self.abandon_started();
            self.exec("SET LOCAL search_path TO DEFAULT", "cannot set the search path").await?;
            self.path.set(SearchPath::Application);
        }
        Ok(())
    }

    /// Back to the pinned `search_path = pg_catalog` for pgbarge's own
    /// queries (counts, checks, sequences) inside the transaction. Every
    /// method sending pgbarge's own SQL calls it first.
    async fn as_pgbarge(&self) -> Result<()> {
        // Only the next table's load may follow a COPY started early; were
        // anything else sent, it would wait behind that COPY for ever.
        self.abandon_started();
        if self.path.get() != SearchPath::Pgbarge {
            self.exec("SET LOCAL search_path = pg_catalog", "cannot set the search path").await?;
            self.path.set(SearchPath::Pgbarge);
        }
        Ok(())
    }

    /// Says that SQL pgbarge did not write ran in the transaction (it may
    /// have set the search path), so the next statement sets it again.
    pub fn forget_search_path(&self) {
        self.path.set(SearchPath::Unknown);
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
                &format!("ALTER TABLE {} DISABLE TRIGGER USER", name.sql()),
                &format!("cannot disable the triggers of {name}"),
            )
            .await?;
            self.altered.push(name.clone());
        }
        Ok(())
    }

    /// Loads one table from `blocks`, calling `on_block` on each block before
    /// it is sent (counting, checking, progress; an error there aborts the
    /// COPY); the chunks it returns are sent, in `format`.
    /// For skip and upsert, rows go through a staging table first.
    ///
    /// # Errors
    /// The server's error (a key clash, a bad value), the source's or
    /// `on_block`'s error, or a signal. The transaction is then unusable:
    /// the caller drops it, and nothing is committed.
    pub async fn load_table<B>(
        &self,
        t: &TableLoad,
        format: WireFormat,
        blocks: &mut impl BlockSource<B>,
        on_block: impl FnMut(B) -> Result<Vec<Bytes>>,
    ) -> Result<Loaded> {
        // Sequences moved for earlier tables are sent before user code can
        // take a value from them.
        if t.may_run_user_code(self.opts.disable_triggers) {
            self.send_pending_sequences().await?;
        }
        // Triggers, check constraints and defaults fire during the COPY and
        // the merge: they run with the application's search path, which
        // stays on until pgbarge's own next statement needs its own.
        self.as_application().await?;
        self.stream_table(t, format, blocks, on_block).await
    }

    /// Prepares the `COPY ... FROM STDIN` of `next` (tables with their
    /// formats, in load order, after those prepared before), for the
    /// [`Loader::load_table`]s that follow: sent beside the load of an
    /// earlier table, their parse round trips ride with that table's instead
    /// of adding one per table. Not for staging modes (their COPY goes into a
    /// table created per load). A failure is kept and returned by that
    /// table's load.
    ///
    /// With `start_early` (the caller sends nothing to the target between
    /// two loads), a table whose load runs no user code (so nothing precedes
    /// its COPY) has its COPY started as the table before it ends (see
    /// [`Loader::finish_copy`]), which takes another round trip per table off.
    pub async fn prepare_copies(&self, next: &[(&TableLoad, WireFormat)], start_early: bool) {
        if self.opts.mode.stages() || next.is_empty() {
            return;
        }
        let session = self.session;
        let copies: Vec<(&TableLoad, String)> = next
            .iter()
            .map(|(t, format)| (*t, copy_from_stdin_sql(&t.target.name.sql(), t, *format)))
            .collect();
        // join_all polls in order: the statements are sent in load order.
        let statements = futures::future::join_all(copies.iter().map(|(t, sql)| {
            session.request(session.prepare(sql), format!("COPY into {} failed", t.target.name))
        }))
        .await;
        let mut queue = self.copies.borrow_mut();
        for ((t, sql), statement) in copies.into_iter().zip(statements) {
            queue.push_back(NextCopy {
                table: t.target.name.clone(),
                sql,
                statement,
                start_early: start_early && !t.may_run_user_code(self.opts.disable_triggers),
            });
        }
    }

    /// Ends the current table's COPY (`sink`) and, when the next table's
    /// COPY is prepared to start early, starts it beside: tokio-postgres
    /// sends its start right after this COPY's end, without waiting for the
    /// server's answer in between.
    async fn finish_copy(&self, sink: std::pin::Pin<&mut CopyIn>, name: &TableName) -> Result<u64> {
        let session = self.session;
        let finish = session.request(sink.finish(), format!("COPY into {name} failed"));
        let early = {
            let mut queue = self.copies.borrow_mut();
            match queue.front() {
                Some(NextCopy { statement: Ok(_), start_early: true, .. }) => {
                    let next = queue.pop_front().expect("front present");
                    Some((next.table, next.sql, next.statement.expect("prepared")))
                }
                _ => None,
            }
        };
        let Some((table, sql, statement)) = early else { return finish.await };
        let start = session.request(
            session.copy_in_prepared(&sql, &statement),
            format!("COPY into {table} failed"),
        );
        let (copied, started) = futures::join!(finish, start);
        *self.started.borrow_mut() = Some((sql, started));
        copied
    }

    /// Drops a COPY started early and not taken (the load stopped before the
    /// next table): its sink's drop ends it with CopyFail, so the server
    /// leaves COPY mode and the session can run the next statement.
    fn abandon_started(&self) {
        drop(self.started.borrow_mut().take());
    }

    /// [`Loader::load_table`]'s work, under the application's search path:
    /// every name sent here is schema-qualified.
    async fn stream_table<B>(
        &self,
        t: &TableLoad,
        format: WireFormat,
        blocks: &mut impl BlockSource<B>,
        mut on_block: impl FnMut(B) -> Result<Vec<Bytes>>,
    ) -> Result<Loaded> {
        let name = &t.target.name;
        let stage = "pg_temp.pgbarge_stage";
        let dest = if self.opts.mode.stages() {
            self.exec(
                &format!(
                    "DROP TABLE IF EXISTS {stage}; CREATE TEMP TABLE pgbarge_stage AS SELECT {} FROM {} WITH NO DATA",
                    if t.columns.is_empty() { String::new() } else { t.column_list() },
                    name.sql()
                ),
                &format!("cannot create a staging table for {name}"),
            )
            .await?;
            stage.to_string()
        } else {
            name.sql()
        };
        let cols = t.column_list_sql();
        let sql = copy_from_stdin_sql(&dest, t, format);
        let failed = || format!("COPY into {name} failed");
        let session = self.session;
        let started = match self.started.borrow_mut().take() {
            Some((s, started)) if s == sql => Some(started?),
            Some((s, _)) => {
                return Err(Error::runtime(format!(
                    "the COPY started for the next table ({s}) is not this one's ({sql})"
                )));
            }
            None => None,
        };
        let prepared = {
            let mut queue = self.copies.borrow_mut();
            match queue.front() {
                Some(next) if started.is_none() && next.sql == sql => {
                    Some(queue.pop_front().expect("front present").statement?)
                }
                _ => None,
            }
        };
        let start = async {
            match (started, &prepared) {
                (Some(sink), _) => Ok(sink),
                (None, Some(statement)) => session.copy_in_prepared(&sql, statement).await,
                (None, None) => session.copy_in(&sql).await,
            }
        };
        // The target's COPY and the source's first block are awaited
        // together: with many small tables, the round trips that start each
        // side's COPY are paid once, not one after the other.
        let (sink, first) = futures::join!(session.request(start, failed()), blocks.next_block());
        let mut sink = std::pin::pin!(sink?);
        let mut next = first?;
        while let Some(block) = next {
            for block in on_block(block)? {
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
                    session.request(sink.feed(piece), failed()).await?;
                }
                if is_large {
                    session.request(sink.flush(), failed()).await?;
                }
            }
            next = blocks.next_block().await?;
        }
        let copied = self.finish_copy(sink.as_mut(), name).await?;
        if !self.opts.mode.stages() {
            return Ok(Loaded { copied, inserted: copied, ..Loaded::default() });
        }
        let key = t.key.as_ref().expect("planned with a key");
        let key_cols: Vec<String> = key.columns.iter().map(|c| sql_ident(c)).collect();
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
                        .map(|c| format!("{0} = EXCLUDED.{0}", sql_ident(c)))
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
            name.sql(),
            t.column_list(),
            key_cols.join(", ")
        );
        let row = session
            .request(session.query_one(sql.as_str(), &[]), format!("merging into {name} failed"))
            .await?;
        let inserted = row.get::<_, i64>(0) as u64;
        let updated = row.get::<_, i64>(1) as u64;
        self.exec(&format!("DROP TABLE {stage}"), "cannot drop the staging table").await?;
        Ok(Loaded { copied, inserted, updated, skipped: copied - inserted - updated })
    }

    /// Asks for the sequences feeding the loaded columns of `t` to be
    /// advanced past the loaded values, and to at least `at_least[sequence]`
    /// when given (restore's recorded values); never backwards.
    ///
    /// The moves are sent together, in one round trip per few hundred
    /// sequences, before anything that could take a value from them: the
    /// load of a table whose triggers or defaults run user code, and the
    /// commit ([`Loader::send_pending_sequences`]).
    ///
    /// `stream_max` is the largest value of integer columns as they went
    /// through the stream (see [`TableLoad::sequence_int_columns`]), by stream index.
    /// It stands for the table's `max()` when the table was empty before
    /// and no user code ran in its load (modes `fail` and `truncate`, no
    /// trigger or default at work): then the rows hold exactly what was
    /// sent, and no query per table is needed.
    pub fn advance_sequences(
        &self,
        t: &TableLoad,
        at_least: &HashMap<String, i64>,
        stream_max: Option<&[(usize, Option<i64>)]>,
    ) {
        let was_empty = matches!(self.opts.mode, Mode::Fail | Mode::Truncate);
        let stream_max =
            stream_max.filter(|_| was_empty && !t.may_run_user_code(self.opts.disable_triggers));
        for s in &t.target.sequences {
            let Some(position) = t.columns.iter().position(|c| c == &s.column) else {
                continue;
            };
            let integral = t.is_integer_column(&s.column);
            let known = stream_max
                .filter(|_| integral)
                .and_then(|m| m.iter().find(|(i, _)| *i == position))
                .map(|(_, max)| *max);
            let loaded_max = if let Some(known) = known {
                known.map_or("NULL::pg_catalog.int8".to_string(), |v| {
                    format!("{v}::pg_catalog.int8")
                })
            } else if integral {
                format!(
                    "(SELECT pg_catalog.max({})::pg_catalog.int8 FROM {})",
                    sql_ident(&s.column),
                    t.target.name.sql()
                )
            } else {
                "NULL::pg_catalog.int8".to_string()
            };
            let at_least = at_least
                .get(&s.sequence)
                .map_or("NULL::pg_catalog.int8".to_string(), |v| format!("{v}::pg_catalog.int8"));
            self.pending.borrow_mut().push(PendingAdvance {
                table: t.target.name.clone(),
                sequence: s.sequence.clone(),
                loaded_max,
                at_least,
            });
        }
    }

    /// Sends the sequence moves asked for so far.
    ///
    /// # Errors
    /// Server errors (no UPDATE privilege on a sequence).
    pub async fn send_pending_sequences(&self) -> Result<()> {
        let pending = std::mem::take(&mut *self.pending.borrow_mut());
        if pending.is_empty() {
            return Ok(());
        }
        self.as_pgbarge().await?;
        let wanted: Vec<(&str, &str, &str)> = pending
            .iter()
            .map(|p| (p.sequence.as_str(), p.loaded_max.as_str(), p.at_least.as_str()))
            .collect();
        let positions = advance_past(self.session, &wanted).await?;
        let mut moved = self.moved.borrow_mut();
        for (p, (from, to)) in pending.into_iter().zip(positions) {
            if let Some(to) = to {
                moved.entry(p.table).or_default().push(SequenceMove {
                    sequence: p.sequence,
                    from,
                    to,
                });
            }
        }
        Ok(())
    }

    /// The sequence moves sent for `table` (see [`Loader::advance_sequences`]).
    pub fn take_sequence_moves(&self, table: &TableName) -> Vec<SequenceMove> {
        self.moved.borrow_mut().remove(table).unwrap_or_default()
    }

    /// The target table's row count, inside the transaction.
    ///
    /// # Errors
    /// Server errors.
    pub async fn count(&self, t: &TableLoad) -> Result<u64> {
        self.as_pgbarge().await?;
        t.target.count_rows(self.session).await
    }

    /// The fingerprint of the loaded columns as the target now holds them,
    /// inside the transaction (the same COPY CSV code path backup uses).
    ///
    /// # Errors
    /// Server errors.
    pub async fn fingerprint(&self, t: &TableLoad) -> Result<Fingerprint> {
        self.as_pgbarge().await?;
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
        if !t.kept_references.is_empty() {
            self.as_pgbarge().await?;
        }
        for fk in &t.kept_references {
            let pairs: Vec<String> = fk
                .columns
                .iter()
                .zip(&fk.parent_columns)
                .map(|(c, p)| format!("p.{} = c.{}", sql_ident(p), sql_ident(c)))
                .collect();
            let not_null: Vec<String> =
                fk.columns.iter().map(|c| format!("c.{} IS NOT NULL", sql_ident(c))).collect();
            let sql = format!(
                "SELECT count(*) FROM {} c WHERE {} AND NOT EXISTS (SELECT 1 FROM {} p WHERE {})",
                fk.child.sql(),
                not_null.join(" AND "),
                fk.parent.sql(),
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
        self.abandon_started();
        self.send_pending_sequences().await?;
        for name in &self.altered {
            self.exec(
                &format!("ALTER TABLE {} ENABLE TRIGGER USER", name.sql()),
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
        self.abandon_started();
        let _ = self.session.batch_execute("ROLLBACK").await;
    }
}

/// The `COPY ... FROM STDIN` of `t`'s columns into `dest` (the table itself,
/// or its staging table), in `format`.
fn copy_from_stdin_sql(dest: &str, t: &TableLoad, format: WireFormat) -> String {
    format!("COPY {dest}{} FROM STDIN ({})", t.column_list_sql(), format.copy_options())
}

/// The tables among `tables` that hold at least one row.
///
/// A heap table whose main fork has no pages holds no row, which one query
/// reads for every plain table from the file sizes; only the others (with
/// pages, another access method, partitioned, inheritance parents) are
/// probed for a row, in one query per few hundred tables.
///
/// # Errors
/// Server errors.
pub async fn non_empty(session: &Session, tables: &[&TableLoad]) -> Result<Vec<TableName>> {
    use crate::catalog::TableKind;
    let what = || {
        format!(
            "cannot read {} and the tables loaded with it",
            tables.first().map(|t| t.target.name.to_string()).unwrap_or_default()
        )
    };
    let plain: Vec<u32> =
        tables.iter().filter(|t| t.target.kind == TableKind::Plain).map(|t| t.target.oid).collect();
    let with_pages: std::collections::HashSet<u32> = if plain.is_empty() {
        Default::default()
    } else {
        let rows = session
            .request(
                session.query(
                    "SELECT c.oid FROM pg_catalog.pg_class c
                      WHERE c.oid OPERATOR(pg_catalog.=) ANY ($1::pg_catalog.oid[])
                        AND (c.relam OPERATOR(pg_catalog.<>) (SELECT a.oid FROM pg_catalog.pg_am a WHERE a.amname OPERATOR(pg_catalog.=) 'heap')
                             OR pg_catalog.pg_relation_size(c.oid) OPERATOR(pg_catalog.>) 0)",
                    &[&plain],
                ),
                what(),
            )
            .await?;
        rows.iter().map(|r| r.get::<_, u32>(0)).collect()
    };
    let probed: Vec<&TableLoad> = tables
        .iter()
        .copied()
        .filter(|t| t.target.kind != TableKind::Plain || with_pages.contains(&t.target.oid))
        .collect();
    let mut full = Vec::new();
    for chunk in probed.chunks(500) {
        let probes: Vec<String> = chunk
            .iter()
            .enumerate()
            .map(|(i, t)| {
                format!(
                    "SELECT {i} AS i WHERE EXISTS (SELECT FROM {} LIMIT 1)",
                    t.target.name.sql()
                )
            })
            .collect();
        let sql = probes.join(" UNION ALL ");
        let rows = session.request(session.query(sql.as_str(), &[]), what()).await?;
        let mut found: Vec<usize> = rows.iter().map(|r| r.get::<_, i32>(0) as usize).collect();
        found.sort_unstable();
        full.extend(found.into_iter().map(|i| chunk[i].target.name.clone()));
    }
    // `probed` keeps the order given, chunk by chunk: so does `full`.
    Ok(full)
}
