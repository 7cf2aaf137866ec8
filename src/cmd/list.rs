//! `pgbarge list`: the tables a selection picks, in load order, with what a
//! backup or copy will need to know about them.

use serde::Serialize;

use crate::catalog::{Table, TableKind, read_catalog};
use crate::cmd::Outcome;
use crate::conn::session::{Purpose, connect};
use crate::error::Result;
use crate::options::ListOptions;
use indicatif::HumanCount;

use crate::progress::{human_bytes, print_columns};

#[derive(Serialize)]
struct ListedTable<'a> {
    schema: &'a str,
    name: &'a str,
    qualified: String,
    kind: TableKind,
    estimated_rows: Option<i64>,
    estimated_bytes: i64,
    columns: usize,
    key: Option<&'a [String]>,
    fk_parents: Vec<String>,
    partitions: Vec<String>,
    triggers: &'a [String],
}

#[derive(Serialize)]
struct Listing<'a> {
    database: String,
    tables: Vec<ListedTable<'a>>,
    cycles: Vec<Vec<String>>,
}

/// Runs `list`.
///
/// # Errors
/// Connection and catalog failures; a pattern that matches nothing.
pub async fn run(plan: ListOptions) -> Result<Outcome> {
    let session = connect(&plan.conn, Purpose::Data).await?;
    let catalog = read_catalog(&session).await?;
    let chosen = catalog.choose(&plan.selection)?;
    let mut tables: Vec<Table> = chosen.tables.into_iter().cloned().collect();
    // Exact sizes need a brief lock per table; a table another session holds
    // exclusively keeps its page-count estimate rather than making list wait.
    let _ = session.batch_execute("SET lock_timeout = '500ms'").await;
    let _ = crate::catalog::refresh_sizes(&session, &mut tables).await;
    let listing = Listing {
        database: plan.conn.to_string(),
        tables: tables
            .iter()
            .map(|t| ListedTable {
                schema: &t.name.schema,
                name: &t.name.name,
                qualified: t.name.pretty(),
                kind: t.kind,
                estimated_rows: t.estimated_rows,
                estimated_bytes: t.estimated_bytes,
                columns: t.data_columns().count(),
                key: t.best_key().map(|k| k.columns.as_slice()),
                fk_parents: catalog.parents_of(&t.name).iter().map(|n| n.to_string()).collect(),
                partitions: t.partitions.iter().map(|n| n.to_string()).collect(),
                triggers: &t.triggers,
            })
            .collect(),
        cycles: chosen.cycles.iter().map(|c| c.iter().map(|n| n.to_string()).collect()).collect(),
    };
    if plan.json {
        println!("{}", serde_json::to_string_pretty(&listing).expect("listing serializes"));
    } else {
        print_table(&listing);
    }
    Ok(Outcome::Ok)
}

fn print_table(listing: &Listing<'_>) {
    let headers = ["TABLE", "EST. ROWS", "SIZE", "COLS", "KEY", "FK PARENTS", "KIND"];
    let mut rows: Vec<Vec<String>> = vec![headers.map(String::from).to_vec()];
    rows.extend(listing.tables.iter().map(|t| {
        vec![
            t.qualified.clone(),
            t.estimated_rows
                .map(|r| HumanCount(r.max(0) as u64).to_string())
                .unwrap_or_else(|| "?".into()),
            human_bytes(t.estimated_bytes.max(0) as u64),
            t.columns.to_string(),
            t.key.map(|k| format!("({})", k.join(", "))).unwrap_or_else(|| "-".into()),
            if t.fk_parents.is_empty() { "-".into() } else { t.fk_parents.join(", ") },
            match t.kind {
                TableKind::Plain => "table".into(),
                TableKind::Partitioned => {
                    format!(
                        "partitioned ({})",
                        crate::progress::counted(
                            t.partitions.len() as u64,
                            "partition",
                            "partitions"
                        )
                    )
                }
                TableKind::InheritanceParent => "inheritance parent".into(),
            },
        ]
    }));
    let width = crate::wrap::width(crate::wrap::Stream::Stdout);
    if width.is_some_and(|w| crate::progress::columns_width(&rows) > w) {
        // Too wide for the terminal: the foreign-key parents go on a line of
        // their own under each table, so the names keep their one line.
        const PARENTS: usize = 5;
        let parents: Vec<String> = rows.iter_mut().map(|r| r.remove(PARENTS)).collect();
        let lines = crate::progress::column_lines(&rows, &|_| false, width);
        for (i, (row, parents)) in lines.iter().zip(&parents).enumerate() {
            for l in row {
                println!("{l}");
            }
            if i > 0 && parents != "-" {
                let line = format!("    references {parents}");
                println!("{}", crate::wrap::fit(&line, width, 2));
            }
        }
    } else {
        print_columns(&rows, |_| false);
    }
    let total_bytes: i64 = listing.tables.iter().map(|t| t.estimated_bytes.max(0)).sum();
    let total = format!(
        "{}, {} on disk, from {}",
        crate::progress::counted(listing.tables.len() as u64, "table", "tables"),
        human_bytes(total_bytes as u64),
        listing.database
    );
    println!("{}", crate::wrap::stdout(&total, 2));
    for c in &listing.cycles {
        println!("foreign-key cycle: {}", c.join(" -> "));
    }
}
