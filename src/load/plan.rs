//! Planning a load, before anything is written: tables matched by name in the
//! target, columns by name, keys for `skip`/`upsert`, parent-first order from
//! the target's foreign keys, cycles, and what `truncate` would reach.

use std::collections::{HashMap, HashSet};

use super::{Incoming, LoadOptions, Mode};
use crate::catalog::{Catalog, ForeignKey, Key, Table};
use crate::conn::session::Session;
use crate::error::{Error, Result};
use crate::ident::{TableName, sql_ident};

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
    pub(super) fn column_list(&self) -> String {
        self.columns.iter().map(|c| sql_ident(c)).collect::<Vec<_>>().join(", ")
    }

    /// ` (a, b)` after a table's name in a COPY; empty for a table without columns.
    pub(super) fn column_list_sql(&self) -> String {
        if self.columns.is_empty() { String::new() } else { format!(" ({})", self.column_list()) }
    }

    /// Whether `column` of the target table is a 2-, 4- or 8-byte integer
    /// (a sequence-fed column whose largest value can be read as a number).
    pub fn is_integer_column(&self, column: &str) -> bool {
        self.target.columns.iter().any(|c| {
            c.name == column && matches!(c.type_name.as_str(), "smallint" | "integer" | "bigint")
        })
    }

    /// The stream indexes of the integer columns that feed a sequence: what
    /// a streamer keeps the largest value of, for
    /// [`super::loader::Loader::advance_sequences`].
    pub fn sequence_int_columns(&self) -> Vec<usize> {
        self.target
            .sequences
            .iter()
            .filter(|s| self.is_integer_column(&s.column))
            .filter_map(|s| self.columns.iter().position(|c| c == &s.column))
            .collect()
    }

    /// Whether loading this table may run code that takes a sequence's
    /// next value: a user trigger that fires, a default or identity of a
    /// column the stream leaves out, or partitions and inheritance children
    /// (whose own triggers the catalog read of the parent does not list).
    pub fn may_run_user_code(&self, triggers_disabled: bool) -> bool {
        use crate::catalog::TableKind;
        (!triggers_disabled && !self.target.triggers.is_empty())
            || !matches!(self.target.kind, TableKind::Plain)
            || self.target.columns.iter().any(|c| {
                !c.generated
                    && (c.has_default || c.identity.is_some())
                    && !self.columns.contains(&c.name)
            })
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
                &format!("SELECT count(*) FROM {}", t.sql()),
                format!("TARGET: cannot count the rows of {t}"),
            )
            .await?;
        counts.push((t.clone(), n.max(0) as u64));
    }
    Ok(counts)
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
