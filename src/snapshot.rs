//! One snapshot for all workers: a coordinator exports it from a
//! `REPEATABLE READ, READ ONLY` transaction and keeps it open; workers join it
//! with `SET TRANSACTION SNAPSHOT`, so every table is read as of one moment.

use std::sync::Arc;
use std::time::Duration;

use crate::catalog::Table;
use crate::connect::{Purpose, Session, connect};
use crate::conninfo::ConnInfo;
use crate::error::{Error, Result};

/// Starts the coordinator's transaction and exports its snapshot.
///
/// # Errors
/// Server errors; exporting needs a non-standby or a PostgreSQL 10+ standby.
pub async fn export_snapshot(session: &Session) -> Result<String> {
    session
        .client
        .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .await
        .map_err(|e| Error::db("cannot start the snapshot transaction", e))?;
    let row = session
        .client
        .query_one("SELECT pg_export_snapshot()", &[])
        .await
        .map_err(|e| Error::db("cannot export a snapshot", e))?;
    Ok(row.get(0))
}

/// Opens a worker session that reads as of `snapshot`.
///
/// # Errors
/// Connection errors, or the snapshot is gone (the coordinator ended).
pub async fn join_snapshot(info: &Arc<ConnInfo>, snapshot: &str) -> Result<Session> {
    let session = connect(info, Purpose::Data).await?;
    // The snapshot id comes from the server (hex digits and dashes); checked
    // anyway because SET TRANSACTION SNAPSHOT takes no parameters.
    if !snapshot.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
        return Err(Error::runtime(format!("unexpected snapshot id {snapshot:?}")));
    }
    session
        .client
        .batch_execute(&format!(
            "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY; SET TRANSACTION SNAPSHOT '{snapshot}'"
        ))
        .await
        .map_err(|e| Error::db(format!("cannot join snapshot {snapshot}"), e))?;
    Ok(session)
}

/// Takes `ACCESS SHARE` locks on the tables inside the coordinator's
/// transaction, as pg_dump does, so none can be dropped or altered while it
/// is read. Waits at most `timeout` per table.
///
/// # Errors
/// A runtime error naming the table that is locked or gone.
pub async fn lock_tables(session: &Session, tables: &[&Table], timeout: Duration) -> Result<()> {
    session
        .client
        .batch_execute(&format!("SET LOCAL lock_timeout = {}", timeout.as_millis().max(1)))
        .await
        .map_err(|e| Error::db("cannot set lock_timeout", e))?;
    for t in tables {
        let sql = format!("LOCK TABLE {} IN ACCESS SHARE MODE", t.name.quoted());
        let locked = tokio::select! {
            r = session.client.batch_execute(&sql) => r,
            signal = crate::cancel::cancelled() => return Err(Error::Interrupted { signal }),
        };
        if let Err(e) = locked {
            let err = if e.code().map(|c| c.code()) == Some("55P03") {
                Error::Runtime {
                    msg: format!(
                        "table {} is locked by another session; waited {} s",
                        t.name,
                        timeout.as_secs_f64()
                    ),
                    hint: Some(
                        "find the blocking session in pg_locks / pg_stat_activity, or raise --lock-wait-timeout"
                            .into(),
                    ),
                }
            } else {
                Error::db(format!("cannot lock table {}", t.name), e)
            };
            return Err(err);
        }
    }
    Ok(())
}
