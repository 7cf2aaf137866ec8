//! Table locks taken up front, each waited for at most `--lock-wait-timeout`
//! (DESIGN.md, "Never wait forever"), and the sessions in the way named when
//! one is not granted.
//!
//! Every lock is taken with `LOCK TABLE` inside the caller's open transaction,
//! one table at a time in the order given (parents first), under
//! `SET LOCAL lock_timeout`, which then also bounds every later lock the
//! transaction takes. This module takes locks; it never releases them (the
//! caller's COMMIT or ROLLBACK does).

use std::time::Duration;

use crate::conn::session::Session;
use crate::error::{Error, Result};
use crate::ident::TableName;

/// The lock modes pgbarge takes, weakest first (PostgreSQL docs, "Explicit
/// Locking", Table 13.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LockMode {
    /// Reading (`SELECT`, `COPY TO`).
    AccessShare,
    /// Writing rows (`COPY FROM`, `INSERT`, `DELETE`).
    RowExclusive,
    /// `ALTER TABLE ... DISABLE TRIGGER`.
    ShareRowExclusive,
    /// `TRUNCATE`.
    AccessExclusive,
}

impl LockMode {
    /// The mode as `LOCK TABLE ... IN <mode> MODE` spells it.
    pub fn as_sql(self) -> &'static str {
        match self {
            LockMode::AccessShare => "ACCESS SHARE",
            LockMode::RowExclusive => "ROW EXCLUSIVE",
            LockMode::ShareRowExclusive => "SHARE ROW EXCLUSIVE",
            LockMode::AccessExclusive => "ACCESS EXCLUSIVE",
        }
    }

    /// The modes (as `pg_locks.mode` names them) that conflict with this one.
    fn conflicts(self) -> &'static [&'static str] {
        const ALL: &[&str] = &[
            "AccessShareLock",
            "RowShareLock",
            "RowExclusiveLock",
            "ShareUpdateExclusiveLock",
            "ShareLock",
            "ShareRowExclusiveLock",
            "ExclusiveLock",
            "AccessExclusiveLock",
        ];
        match self {
            LockMode::AccessShare => &ALL[7..],
            LockMode::RowExclusive => &ALL[4..],
            LockMode::ShareRowExclusive => &ALL[2..],
            LockMode::AccessExclusive => ALL,
        }
    }
}

/// Parses `--lock-wait-timeout` (seconds), shared by every command that locks.
///
/// # Errors
/// A usage error unless it is above 0 and within PostgreSQL's `lock_timeout`.
pub fn parse_timeout(secs: f64) -> Result<Duration> {
    crate::limits::seconds("--lock-wait-timeout", secs, crate::limits::MAX_LOCK_WAIT_SECS)
}

/// Sets `lock_timeout` for the rest of the open transaction.
///
/// # Errors
/// Server errors.
pub async fn set_lock_timeout(session: &Session, timeout: Duration) -> Result<()> {
    session
        .execute(
            &format!("SET LOCAL lock_timeout = {}", timeout.as_millis().max(1)),
            "cannot set lock_timeout",
        )
        .await
}

/// Locks each table in `mode`, in the order given, inside the open
/// transaction, each waited for at most `timeout` (which stays the
/// transaction's `lock_timeout`). `LOCK TABLE` reaches partitions and
/// inheritance children too, as `TRUNCATE` and `COPY` into a parent do.
///
/// All tables are locked in one round trip (a thousand small tables must not
/// cost a thousand); only when that fails are they locked again one by one,
/// to name the table and the sessions in the way.
///
/// # Errors
/// A runtime error naming the table, the mode and the sessions holding or
/// awaiting a conflicting lock (pid, user, application, how long their
/// transaction has been open); `Interrupted` naming the tables when a signal
/// arrived during the wait (the wait is cancelled on the server).
pub async fn lock_tables(
    session: &Session,
    tables: &[(&TableName, LockMode)],
    timeout: Duration,
) -> Result<()> {
    set_lock_timeout(session, timeout).await?;
    if tables.is_empty() {
        return Ok(());
    }
    // A savepoint keeps the transaction usable after a failure, so the
    // sessions in the way can be read in this same session.
    let mut sql = String::from("SAVEPOINT pgbarge_lock;");
    for run in tables.chunk_by(|a, b| a.1 == b.1) {
        let names: Vec<String> = run.iter().map(|(n, _)| n.sql()).collect();
        sql.push_str(&format!(" LOCK TABLE {} IN {} MODE;", names.join(", "), run[0].1.as_sql()));
    }
    sql.push_str(" RELEASE SAVEPOINT pgbarge_lock");
    match session.cancellable(session.batch_execute(&sql)).await {
        Ok(Ok(())) => return Ok(()),
        Ok(Err(_)) => {}
        Err(signal) => {
            let names: Vec<String> = tables.iter().take(3).map(|(n, _)| n.to_string()).collect();
            let more = tables.len().saturating_sub(3);
            return Err(Error::Interrupted { signal }.context(format!(
                "while waiting to lock table{} {}{}",
                if tables.len() == 1 { "" } else { "s" },
                names.join(", "),
                if more > 0 { format!(" and {more} more") } else { String::new() }
            )));
        }
    }
    let _ = session.batch_execute("ROLLBACK TO SAVEPOINT pgbarge_lock").await;
    // The whole wait has passed: each table is now tried briefly, to find
    // the one in the way (or the error's table) and report it.
    set_lock_timeout(session, PROBE).await?;
    lock_one_by_one(session, tables, timeout).await?;
    set_lock_timeout(session, timeout).await
}

/// How long each table is waited for when finding which lock failed.
const PROBE: Duration = Duration::from_millis(200);

/// [`lock_tables`]'s slow path: one table at a time under the probe
/// timeout; `timeout` is the wait the error reports.
async fn lock_one_by_one(
    session: &Session,
    tables: &[(&TableName, LockMode)],
    timeout: Duration,
) -> Result<()> {
    for (name, mode) in tables {
        let sql = format!(
            "SAVEPOINT pgbarge_lock; LOCK TABLE {} IN {} MODE; RELEASE SAVEPOINT pgbarge_lock",
            name.sql(),
            mode.as_sql()
        );
        let locked = match session.cancellable(session.batch_execute(&sql)).await {
            Ok(r) => r,
            Err(signal) => {
                return Err(Error::Interrupted { signal }.context(format!(
                    "while waiting to lock table {name} in {} mode",
                    mode.as_sql()
                )));
            }
        };
        let Err(e) = locked else { continue };
        if e.code().map(|c| c.code()) != Some("55P03") {
            return Err(session.db_error(format!("cannot lock table {name}"), e).await);
        }
        let _ = session.batch_execute("ROLLBACK TO SAVEPOINT pgbarge_lock").await;
        let blockers = blockers(session, name, *mode).await;
        return Err(timeout_error(name, *mode, timeout, &blockers));
    }
    Ok(())
}

/// A session in the way of a lock.
#[derive(Debug, Clone, PartialEq)]
pub struct Blocker {
    pub pid: i32,
    pub user: String,
    pub application: String,
    /// Seconds its transaction has been open, when it has one.
    pub xact_seconds: Option<f64>,
    pub state: String,
    /// It holds the conflicting lock (else it waits for one, ahead of us).
    pub holds: bool,
}

/// The other sessions holding, or queued for, a lock on `name` (or one of
/// its partitions or children) that conflicts with `mode`: what
/// `pg_blocking_pids()` would have named while the wait lasted. Empty when
/// they cannot be read.
pub async fn blockers(session: &Session, name: &TableName, mode: LockMode) -> Vec<Blocker> {
    let conflicts: Vec<&str> = mode.conflicts().to_vec();
    let rows = session
        .query(
            "WITH RECURSIVE rels(oid) AS (
                 SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                 WHERE n.nspname = $1 AND c.relname = $2
                 UNION
                 SELECT i.inhrelid FROM pg_inherits i JOIN rels r ON i.inhparent = r.oid)
             SELECT DISTINCT ON (l.pid) l.pid, coalesce(a.usename::text, ''),
                    coalesce(a.application_name, ''),
                    extract(epoch FROM clock_timestamp() - a.xact_start)::float8,
                    coalesce(a.state, ''), l.granted
             FROM pg_locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid
             WHERE l.locktype = 'relation' AND l.relation IN (SELECT oid FROM rels)
               AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
               AND l.pid <> pg_backend_pid() AND l.mode = ANY($3::text[])
             ORDER BY l.pid, l.granted DESC",
            &[&name.schema, &name.name, &conflicts],
        )
        .await;
    rows.map(|rows| {
        rows.iter()
            .map(|r| Blocker {
                pid: r.get(0),
                user: r.get(1),
                application: r.get(2),
                xact_seconds: r.get(3),
                state: r.get(4),
                holds: r.get(5),
            })
            .collect()
    })
    .unwrap_or_default()
}

/// The error for a lock not granted within `timeout`.
pub fn timeout_error(
    name: &TableName,
    mode: LockMode,
    timeout: Duration,
    blockers: &[Blocker],
) -> Error {
    let mut msg = format!(
        "table {name} is locked by another session; waited {} s to lock it in {} mode",
        timeout.as_secs_f64(),
        mode.as_sql()
    );
    if blockers.is_empty() {
        msg.push_str(" (the session in the way has ended, or is a prepared transaction: see pg_prepared_xacts)");
    }
    for b in blockers {
        msg.push_str(&format!("\n  {}", describe(b)));
    }
    Error::Runtime {
        msg,
        hint: Some(
            "wait for those sessions to finish, or end them (SELECT pg_terminate_backend(PID)), or raise --lock-wait-timeout"
                .into(),
        ),
    }
}

fn describe(b: &Blocker) -> String {
    let open = match b.xact_seconds {
        Some(s) => format!("transaction open {}", human_duration(s)),
        None => "no open transaction".to_string(),
    };
    format!(
        "{} pid {} (user {}, application \"{}\"), {open}, {}",
        if b.holds { "held by" } else { "queued ahead by" },
        b.pid,
        if b.user.is_empty() { "?" } else { &b.user },
        b.application,
        if b.state.is_empty() { "state unknown" } else { &b.state }
    )
}

fn human_duration(secs: f64) -> String {
    let s = secs.max(0.0);
    if s < 60.0 {
        format!("{s:.1} s")
    } else if s < 3600.0 {
        format!("{} min {} s", (s / 60.0) as u64, (s % 60.0) as u64)
    } else {
        format!("{} h {} min", (s / 3600.0) as u64, ((s % 3600.0) / 60.0) as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stronger_modes_conflict_with_more() {
        assert_eq!(LockMode::AccessShare.conflicts(), &["AccessExclusiveLock"]);
        assert!(LockMode::RowExclusive.conflicts().contains(&"ShareLock"));
        assert!(!LockMode::RowExclusive.conflicts().contains(&"RowExclusiveLock"));
        assert!(LockMode::ShareRowExclusive.conflicts().contains(&"RowExclusiveLock"));
        assert_eq!(LockMode::AccessExclusive.conflicts().len(), 8);
    }

    #[test]
    fn timeout_is_validated_as_backup_did() {
        assert!(parse_timeout(0.0).is_err());
        assert!(parse_timeout(-1.0).is_err());
        assert!(parse_timeout(f64::NAN).is_err());
        assert_eq!(parse_timeout(1.5).unwrap(), Duration::from_millis(1500));
    }

    #[test]
    fn the_message_names_the_table_and_each_blocker() {
        let b = Blocker {
            pid: 4242,
            user: "report".into(),
            application: "psql".into(),
            xact_seconds: Some(125.0),
            state: "idle in transaction".into(),
            holds: true,
        };
        let e = timeout_error(
            &TableName::new("public", "Role"),
            LockMode::AccessExclusive,
            Duration::from_secs(1),
            &[b],
        );
        let text = crate::error::render(&e);
        assert!(text.contains("table public.\"Role\" is locked by another session"), "{text}");
        assert!(
            text.contains("held by pid 4242 (user report, application \"psql\"), transaction open 2 min 5 s, idle in transaction"),
            "{text}"
        );
        assert!(text.contains("--lock-wait-timeout"), "{text}");
    }
}
