//! One snapshot for all workers: a coordinator exports it from a
//! `REPEATABLE READ, READ ONLY` transaction and keeps it open; workers join it
//! with `SET TRANSACTION SNAPSHOT`, so every table is read as of one moment.

use std::sync::Arc;
use std::time::Duration;

use crate::conn::conninfo::ConnInfo;
use crate::conn::locks::LockMode;
use crate::conn::session::{Purpose, Session, connect};
use crate::error::{Error, Result};
use crate::ident::TableName;

/// Starts the coordinator's transaction and exports its snapshot.
///
/// # Errors
/// Server errors; exporting needs a non-standby or a PostgreSQL 10+ standby.
pub async fn export_snapshot(session: &Session) -> Result<String> {
    session
        .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .await
        .map_err(|e| Error::db("cannot start the snapshot transaction", e))?;
    let row = session
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
        .batch_execute(&format!(
            "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY; SET TRANSACTION SNAPSHOT '{snapshot}'"
        ))
        .await
        .map_err(|e| Error::db(format!("cannot join snapshot {snapshot}"), e))?;
    Ok(session)
}

/// Takes `ACCESS SHARE` locks on the tables inside the coordinator's
/// transaction, as pg_dump does, so none can be dropped or altered while it
/// is read. Waits at most `timeout` per table; a signal cancels the wait on
/// the server.
///
/// # Errors
/// A runtime error naming the table that is locked and the sessions in the
/// way, or the server's error for a table that is gone.
pub async fn lock_tables<'a>(
    session: &Session,
    tables: impl IntoIterator<Item = &'a TableName>,
    timeout: Duration,
) -> Result<()> {
    let wanted: Vec<(&TableName, LockMode)> =
        tables.into_iter().map(|name| (name, LockMode::AccessShare)).collect();
    crate::conn::locks::lock_tables(session, &wanted, timeout).await
}
