//! Where a sequence stands: the queries that read `last_value` and
//! `is_called` — for a backup recording it (one, one statement each for
//! all, or one query for those that handed out a value), and for a load
//! advancing it past what it loaded (read and moved in one).

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

/// The positions of `sequences`, in order: one statement per sequence, a
/// few hundred sent as one message (a backup of a thousand tables must not
/// cost a thousand round trips; one `UNION ALL` of them plans far slower
/// than the same statements sent together). Names as for [`read_position`].
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
        let sql: Vec<String> =
            chunk.iter().map(|s| format!("SELECT last_value, is_called FROM {s}")).collect();
        let rows = simple_rows(session, &sql.join(";\n"), chunk.len(), what()).await?;
        for r in rows {
            let last_value = r.first().and_then(|v| v.as_deref()?.parse().ok());
            let is_called = r.get(1).and_then(|v| v.as_deref()).map(|v| v == "t");
            match (last_value, is_called) {
                (Some(last_value), Some(is_called)) => {
                    out.push(SequencePosition { last_value, is_called })
                }
                _ => return Err(Error::runtime(format!("{}: unreadable sequence row", what()))),
            }
        }
    }
    Ok(out)
}

/// The positions of the `sequences` that have handed out a value, in one
/// query (`pg_sequence_last_value`, one function call per sequence instead
/// of a statement each: a backup of 1,000 small tables spent a sixth of its
/// time reading them beside its workers, on two cores). `None` for one that
/// has not (`is_called` false): its `last_value` is not what the function
/// returns, and must be read with [`read_positions`]. Names as for
/// [`read_position`].
///
/// The function takes a `ROW EXCLUSIVE` lock on each sequence until the
/// transaction ends, which an `ALTER SEQUENCE` would wait for (and every
/// `nextval` queued behind it): run it in a transaction of its own, never
/// in one held for a whole run.
///
/// # Errors
/// The server's error (no privilege on a sequence, one dropped meanwhile).
pub async fn read_called_positions(
    session: &Session,
    sequences: &[&str],
) -> std::result::Result<Vec<Option<SequencePosition>>, tokio_postgres::Error> {
    let rows = session
        .query(
            "SELECT pg_catalog.pg_sequence_last_value(s::pg_catalog.regclass)
               FROM pg_catalog.unnest($1::pg_catalog.text[]) WITH ORDINALITY AS u(s, i)
              ORDER BY i",
            &[&sequences],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| {
            r.get::<_, Option<i64>>(0)
                .map(|last_value| SequencePosition { last_value, is_called: true })
        })
        .collect())
}

/// The rows of `sql`, statements sent as one simple-protocol message each
/// returning one row, as text (`None` for NULL); exactly `expected` of them.
async fn simple_rows(
    session: &Session,
    sql: &str,
    expected: usize,
    what: String,
) -> Result<Vec<Vec<Option<String>>>> {
    let messages = session.request(session.simple_query(sql), what.clone()).await?;
    let rows: Vec<Vec<Option<String>>> = messages
        .iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => {
                Some((0..r.len()).map(|i| r.get(i).map(str::to_string)).collect())
            }
            _ => None,
        })
        .collect();
    if rows.len() != expected {
        return Err(Error::runtime(format!(
            "{what}: {} rows came back for {expected} statements",
            rows.len()
        )));
    }
    Ok(rows)
}

/// Moves each `(sequence, loaded_max, at_least)` forward to the larger of
/// `loaded_max` and `at_least` (SQL expressions of type int8, NULL for none)
/// when that is past its position, never backwards: one statement per
/// sequence, a few hundred of them sent as one message (one round trip).
/// Returns, in order, each one's `last_value` before, and where it was moved
/// to, if it was.
///
/// # Errors
/// The server's error (no UPDATE privilege on a sequence).
pub async fn advance_past(
    session: &Session,
    sequences: &[(&str, &str, &str)],
) -> Result<Vec<(i64, Option<i64>)>> {
    let mut out = Vec::with_capacity(sequences.len());
    for chunk in sequences.chunks(500) {
        let statements: Vec<String> = chunk
            .iter()
            .map(|(sequence, loaded_max, at_least)| {
                format!(
                    "SELECT s.last_value,
                            CASE WHEN w.wanted > s.last_value OR (w.wanted = s.last_value AND NOT s.is_called)
                                 THEN pg_catalog.setval('{lit}'::pg_catalog.regclass, w.wanted, true) END
                       FROM {sequence} s, (SELECT GREATEST({loaded_max}, {at_least}) AS wanted) w",
                    lit = sequence.replace('\'', "''"),
                )
            })
            .collect();
        let names: Vec<&str> = chunk.iter().map(|(s, _, _)| *s).collect();
        let what = if names.len() == 1 {
            format!("cannot advance sequence {}", names[0])
        } else {
            format!("cannot advance the sequences {}", names.join(", "))
        };
        let rows = simple_rows(session, &statements.join(";\n"), chunk.len(), what).await?;
        let rows = rows.into_iter().map(|r| {
            let number = |i: usize| r.get(i).and_then(|v| v.as_deref()?.parse::<i64>().ok());
            (number(0).unwrap_or_default(), number(1))
        });
        out.extend(rows);
    }
    Ok(out)
}
