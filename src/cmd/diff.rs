//! `pgbarge diff`: whether one database's schema matches another's, and
//! exactly how not. Reads both catalogs at once (one query per kind of object
//! on each side), compares definitions by the server's own text, prints each
//! difference under its one-line key and a summary of counts per kind.
//! It never writes DDL.

use std::time::Duration;

use serde::Serialize;

use crate::catalog::compare::{Comparison, Difference, Side, apply_allow, compare, filter};
use crate::catalog::definitions::{Definition, ObjectKind, read_definitions};
use crate::cmd::Outcome;
use crate::conn::session::{Purpose, Session, connect};
use crate::error::Result;
use crate::ident::TableName;
use crate::options::DiffOptions;

/// Compares the two databases `options` names.
///
/// # Errors
/// Connection and catalog failures (in the context `SOURCE` or `TARGET`); a
/// usage error when an include pattern matches no table on either side.
pub async fn compare_databases(options: &DiffOptions) -> Result<Comparison> {
    let (source, target) = tokio::join!(
        connect(&options.source, Purpose::Data),
        connect(&options.target, Purpose::Data)
    );
    let source = source.map_err(|e| e.context("SOURCE"))?;
    let target = target.map_err(|e| e.context("TARGET"))?;
    let wait = options.lock_wait_timeout;
    let (s, t) = tokio::join!(read(&source, "SOURCE", wait), read(&target, "TARGET", wait));
    let (s, t) = (s?, t?);
    source.close().await;
    target.close().await;
    let mut tables: Vec<TableName> = s
        .iter()
        .chain(&t)
        .filter(|d| d.kind == ObjectKind::Table)
        .filter_map(|d| d.table.clone())
        .collect();
    tables.sort();
    tables.dedup();
    options.selection.choose(&tables, &[], "in either database")?;
    let s = filter(s, &options.selection, &options.schemas);
    let t = filter(t, &options.selection, &options.schemas);
    Ok(compare(&s, &t, &options.compare))
}

async fn read(session: &Session, side: &str, wait: Duration) -> Result<Vec<Definition>> {
    read_definitions(session, wait).await.map_err(|e| {
        let e = if e.sqlstate() == Some("55P03") {
            e.context(format!(
                "another session holds a table exclusively (DDL running?) for longer than {} s; \
                 wait for it to end, or raise --lock-wait-timeout",
                wait.as_secs_f64()
            ))
        } else {
            e
        };
        e.context(side.to_string())
    })
}

#[derive(Serialize)]
struct Report<'a> {
    source: String,
    target: String,
    identical: bool,
    summary: String,
    #[serde(flatten)]
    comparison: &'a Comparison,
}

/// Runs `diff`: exit 0 when the schemas match, 1 when they differ.
///
/// # Errors
/// As [`compare_databases`].
pub async fn run(options: DiffOptions) -> Result<Outcome> {
    let comparison = compare_databases(&options).await?;
    let summary = summary_line(&comparison, 0);
    if options.json {
        let report = Report {
            source: options.source.to_string(),
            target: options.target.to_string(),
            identical: comparison.differences.is_empty(),
            summary,
            comparison: &comparison,
        };
        println!("{}", serde_json::to_string_pretty(&report).expect("report serializes"));
    } else {
        print_report(&comparison, &[], options.quiet);
    }
    Ok(if comparison.differences.is_empty() { Outcome::Ok } else { Outcome::Differs })
}

/// Prints every difference (each under its key; with both sides unless
/// `quiet`), marks those `allow` lists, names `allow` entries that matched
/// nothing, and ends with the summary. Returns the differences not allowed
/// and the unmatched `allow` entries.
pub fn print_report<'a>(
    comparison: &'a Comparison,
    allow: &[String],
    quiet: bool,
) -> (Vec<&'a Difference>, Vec<String>) {
    let (allowed, rest, unmatched) = apply_allow(&comparison.differences, allow);
    for d in &comparison.differences {
        println!("{}", d.key);
        if allowed.iter().any(|a| std::ptr::eq(*a, d)) {
            println!("  allowed by the plan");
        }
        if quiet || d.attribute.is_none() {
            continue;
        }
        for (label, side) in [("source", &d.source), ("target", &d.target)] {
            let text = match side {
                Some(Side::Value(v)) => v.clone(),
                Some(Side::Object(_)) => continue,
                None => "(none)".into(),
            };
            let mut lines = text.lines();
            println!("  {label}: {}", lines.next().unwrap_or(""));
            for l in lines {
                println!("    {l}");
            }
        }
    }
    for a in &unmatched {
        println!("warning: allowed but not found: {a}");
    }
    println!("{}", crate::wrap::stdout(&summary_line(comparison, allowed.len()), 2));
    (rest, unmatched)
}

/// `tables 13 = 13, columns 80 != 79: 2 differences (1 allowed)`.
pub fn summary_line(comparison: &Comparison, allowed: usize) -> String {
    let n = comparison.differences.len() as u64;
    let mut line = format!(
        "{}: {}",
        comparison.counts_line(),
        crate::progress::counted(n, "difference", "differences")
    );
    if allowed > 0 {
        line.push_str(&format!(" ({allowed} allowed)"));
    }
    line
}
