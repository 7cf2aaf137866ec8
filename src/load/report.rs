//! What a load prints: the dry run's findings, the per-table report of a
//! load that stopped, the tables `--cascade` empties, and the summary.

use super::loader::{Loaded, SequenceMove, non_empty};
use super::plan::{LoadPlan, TableLoad, count_rows};
use super::{LoadOptions, Mode};
use crate::conn::session::Session;
use crate::error::{Error, Result};
use crate::ident::TableName;
use crate::stream::stages::WireFormat;
use indicatif::HumanCount;

/// How many tables an error names before it counts the rest.
const NAMED_IN_ERRORS: usize = 20;

/// Tables named in one line of an error: the first [`NAMED_IN_ERRORS`],
/// then how many more (a thousand non-empty tables must not make an error
/// of 15 KB).
pub fn some_of(tables: &[TableName]) -> String {
    let shown = NAMED_IN_ERRORS;
    let mut line = tables.iter().take(shown).map(|t| t.to_string()).collect::<Vec<_>>().join(", ");
    if tables.len() > shown {
        line.push_str(&format!(" and {} more", tables.len() - shown));
    }
    line
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

/// What a per-table load that stopped left behind, table by table: what
/// committed, what was emptied with a table that committed and not loaded
/// again, and what was left as it was.
pub(super) fn per_table_report(
    plan: &LoadPlan,
    committed: &[String],
    emptied: &[(String, String)],
) -> String {
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
    // Every table's privileges in one query, by oid, in the plan's order.
    let oids: Vec<u32> = all.iter().map(|t| t.target.oid).collect();
    let rows = target
        .query(
            "SELECT has_table_privilege(u.oid, 'INSERT'), has_table_privilege(u.oid, 'TRUNCATE')
               FROM unnest($1::pg_catalog.oid[]) WITH ORDINALITY AS u(oid, n) ORDER BY u.n",
            &[&oids],
        )
        .await
        .map_err(|e| Error::db("TARGET: cannot read privileges on the tables", e))?;
    for (t, row) in all.iter().zip(&rows) {
        // NULL: the table was dropped since the catalog was read.
        if row.get::<_, Option<bool>>(0) != Some(true) {
            problems.push(format!("no INSERT privilege on {}", t.target.name));
        }
        if opts.mode == Mode::Truncate && row.get::<_, Option<bool>>(1) != Some(true) {
            problems.push(format!("no TRUNCATE privilege on {}", t.target.name));
        }
    }
    if opts.mode == Mode::Fail && !with_rows.is_empty() {
        problems.push(format!("--mode fail: not empty: {}", some_of(&with_rows)));
    }
    println!(
        "load plan (dry run, nothing written): mode {}, {}{}",
        opts.mode.as_str(),
        if per_table_commit { "a transaction per table" } else { "one transaction" },
        if plan.defer_constraints { ", constraints deferred" } else { "" }
    );
    let pad = plan.tables.iter().map(|t| t.target.name.to_string().chars().count()).max();
    let pad = pad.unwrap_or(0).min(40);
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
        let line = format!(
            "  {:<pad$} ~{:>8} rows  {:<6}  {}",
            t.target.name.to_string(),
            estimate.map_or("?".into(), |n| HumanCount(n).to_string()),
            format!("{format:?}").to_lowercase(),
            notes.join("; ")
        );
        println!("{}", crate::wrap::stdout(&line, 2));
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

/// `--json` of copy and restore: what [`print_summary`] says, as one
/// document; `checked` names the checks done, `extra` adds the command's
/// own fields (its name among them).
pub fn print_json(
    done: &[TableDone],
    mode: Mode,
    per_table_commit: bool,
    seconds: f64,
    checked: &[&str],
    cascaded: &[(TableName, u64)],
    extra: serde_json::Value,
) {
    let mut doc = serde_json::json!({
        "outcome": "ok",
        "mode": mode.as_str(),
        "committed": if per_table_commit { "table by table" } else { "in one transaction" },
        "tables": done,
        "table_count": done.len(),
        "rows": done.iter().map(|d| d.rows).sum::<u64>(),
        "bytes": done.iter().map(|d| d.bytes).sum::<u64>(),
        "seconds": seconds,
        "checked": checked,
        "cascade_emptied": cascaded
            .iter()
            .map(|(t, n)| serde_json::json!({ "table": t.to_string(), "rows": n }))
            .collect::<Vec<_>>(),
    });
    if let (Some(doc), serde_json::Value::Object(extra)) = (doc.as_object_mut(), extra) {
        doc.extend(extra);
    }
    println!("{}", serde_json::to_string_pretty(&doc).expect("summary serializes"));
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
    let line = format!(
        "{what} complete: {}, {}, {} {bytes_are}, {seconds:.1} s, {}/s; committed {}{about}",
        crate::progress::counted(done.len() as u64, "table", "tables"),
        crate::progress::counted(rows, "row", "rows"),
        human_bytes(bytes),
        human_bytes((bytes as f64 / seconds.max(0.001)) as u64),
        if per_table_commit { "table by table" } else { "in one transaction" },
    );
    println!("{}", crate::wrap::stdout(&line, 2));
    print_table_lines(done, mode);
}

fn print_table_lines(done: &[TableDone], mode: Mode) {
    // Names padded to the longest (at most 40), so a narrow terminal keeps
    // the counts beside them.
    let pad = done.iter().map(|d| d.table.chars().count()).max().unwrap_or(0).min(40);
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
        // HumanCount writes its digits unpadded: the width applies to its string.
        let line = format!(
            "  {:<pad$} {:>8} rows  {}",
            d.table,
            HumanCount(d.rows).to_string(),
            notes.join("; ")
        );
        println!("{}", crate::wrap::stdout(&line, 2));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_names_some_tables_and_counts_the_rest() {
        let tables: Vec<TableName> =
            (1..=22).map(|i| TableName::new("public", format!("t{i}"))).collect();
        assert_eq!(some_of(&tables[..2]), "public.t1, public.t2");
        let line = some_of(&tables);
        assert!(
            line.starts_with("public.t1, public.t2, ") && line.ends_with("public.t20 and 2 more")
        );
        assert_eq!(some_of(&[TableName::new("public", "B")]), "public.\"B\"");
    }
}
