//! Where a sequence stands: the queries that read `last_value` and
//! `is_called` — for a backup recording it (one, or one for all), and for a
//! load advancing it past what it loaded (read and moved in one).

use crate::conn::session::Session;
use crate::error::{Error, Result};

/// A sequence's position, as `SELECT last_value, is_called` gives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SequencePosition {
    pub last_value: i64,
    /// Whether `nextval` has returned `last_value` already.
    pub is_called: bool,
}

/// Reads `sequence`'s position in the session's transaction.
///
/// `sequence` is a name the server quoted (`format('%I.%I')` in the catalog
/// query); it is not quoted again. `what` is the error's message.
///
/// # Errors
/// The server's error (no such sequence, no privilege), under `what`.
pub async fn read_position(
    session: &Session,
    sequence: &str,
    what: impl FnOnce() -> String,
) -> Result<SequencePosition> {
    let row = session
        .query_one(&format!("SELECT last_value, is_called FROM {sequence}"), &[])
        .await
        .map_err(|e| Error::db(what(), e))?;
    Ok(SequencePosition { last_value: row.get(0), is_called: row.get(1) })
}

/// The positions of `sequences`, in order, read in one query per few
/// hundred (a backup of a thousand tables must not cost a thousand round
/// trips). Names as for [`read_position`].
///
/// # Errors
/// The server's error (no such sequence, no privilege), under `what`.
pub async fn read_positions(
    session: &Session,
    sequences: &[&str],
    what: impl Fn() -> String,
) -> Result<Vec<SequencePosition>> {
    let mut out = Vec::with_capacity(sequences.len());
    for chunk in sequences.chunks(500) {
        let sql: Vec<String> = chunk
            .iter()
            .enumerate()
            .map(|(i, s)| format!("SELECT {i} AS i, last_value, is_called FROM {s}"))
            .collect();
        let sql = format!("{} ORDER BY 1", sql.join(" UNION ALL "));
        let rows = session.query(sql.as_str(), &[]).await.map_err(|e| Error::db(what(), e))?;
        out.extend(
            rows.iter().map(|r| SequencePosition { last_value: r.get(1), is_called: r.get(2) }),
        );
    }
    Ok(out)
}

/// Moves `sequence` forward to the larger of `loaded_max` and `at_least`
/// (SQL expressions of type int8, NULL for none) when that is past its
/// position, never backwards, in one round trip. Returns its `last_value`
/// before, and where it was moved to, if it was.
///
/// # Errors
/// The server's error (no UPDATE privilege on the sequence).
pub async fn advance_past(
    session: &Session,
    sequence: &str,
    loaded_max: &str,
    at_least: &str,
) -> Result<(i64, Option<i64>)> {
    let sql = format!(
        "SELECT s.last_value,
                CASE WHEN w.wanted > s.last_value OR (w.wanted = s.last_value AND NOT s.is_called)
                     THEN pg_catalog.setval('{lit}'::pg_catalog.regclass, w.wanted, true) END
           FROM {sequence} s, (SELECT GREATEST({loaded_max}, {at_least}) AS wanted) w",
        lit = sequence.replace('\'', "''"),
    );
    let row = session
        .request(
            session.query_one(sql.as_str(), &[]),
            format!("cannot advance sequence {sequence}"),
        )
        .await?;
    Ok((row.get(0), row.get(1)))
}
