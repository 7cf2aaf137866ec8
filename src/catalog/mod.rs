//! What the database holds: user tables, their columns, keys, foreign keys,
//! triggers, the sequences that feed their columns, and a parent-first load order;
//! every user object's definition (`definitions`) and how two sets of them differ
//! (`compare`, pure).
//!
//! Queries are plain SQL over `pg_catalog`, with identifiers quoted by the server
//! (`format('%I.%I', ...)`). This module reads the catalog; it never changes it.

pub mod compare;
pub mod definitions;
pub mod objects;
pub mod order;
pub mod select;
pub mod sequences;

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use crate::catalog::order::{LoadOrder, order_tables};
use crate::catalog::select::Selection;
use crate::conn::session::Session;
use crate::error::{Error, Result};
use crate::ident::{TableName, sql_ident};

/// How a column is an identity column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Identity {
    Always,
    ByDefault,
}

/// One column of a table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Column {
    pub name: String,
    /// `format_type()`, schema-qualified for user types.
    pub type_name: String,
    pub not_null: bool,
    /// It has a default expression. Only whether, not which: reading the
    /// expression (`pg_get_expr`) locks the table, and would wait on any
    /// session holding it exclusively, selected or not.
    #[serde(default)]
    pub has_default: bool,
    /// A stored generated column: never copied, the target regenerates it.
    #[serde(default)]
    pub generated: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<Identity>,
    /// The type is PostgreSQL's own (in `pg_catalog`): its binary COPY form
    /// is the same in every database, unlike user types whose OIDs differ.
    #[serde(default)]
    pub builtin_type: bool,
}

/// A primary key or a unique index usable by `ON CONFLICT`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Key {
    pub name: String,
    pub columns: Vec<String>,
    pub is_primary: bool,
}

/// A foreign key from `child` to `parent`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForeignKey {
    pub name: String,
    pub child: TableName,
    pub columns: Vec<String>,
    pub parent: TableName,
    pub parent_columns: Vec<String>,
    pub deferrable: bool,
}

/// A sequence that feeds a column: owned (serial, identity) or named in the
/// column default's `nextval(...)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SequenceUse {
    pub column: String,
    /// Server-quoted `schema.sequence`.
    pub sequence: String,
    pub owned: bool,
}

/// What kind of table this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TableKind {
    Plain,
    /// Declarative partitioning: read through the parent, loaded through it.
    Partitioned,
    /// A legacy-inheritance parent: read with `ONLY` so children are not read twice.
    InheritanceParent,
}

/// A user table as the catalog describes it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Table {
    pub oid: u32,
    pub name: TableName,
    pub kind: TableKind,
    /// Leaf partitions (declarative partitioning only).
    pub partitions: Vec<TableName>,
    /// The planner's estimate; `None` when the table was never analyzed.
    pub estimated_rows: Option<i64>,
    pub estimated_bytes: i64,
    pub columns: Vec<Column>,
    pub keys: Vec<Key>,
    pub sequences: Vec<SequenceUse>,
    /// User triggers (not internal ones such as FK checks).
    pub triggers: Vec<String>,
}

impl Table {
    /// The columns that are read and written: all but generated ones.
    pub fn data_columns(&self) -> impl Iterator<Item = &Column> {
        self.columns.iter().filter(|c| !c.generated)
    }

    /// The COPY statement that reads this table as backup and copy read it:
    /// explicit columns (generated ones left out).
    pub fn copy_to_stdout_sql(&self) -> String {
        let cols: Vec<&str> = self.data_columns().map(|c| c.name.as_str()).collect();
        self.copy_columns_to_stdout_sql(&cols, "FORMAT csv, HEADER")
    }

    /// The COPY statement that reads `columns` of this table: a partitioned
    /// table through its parent, so rows of every partition come out; plain
    /// `COPY table TO` otherwise, which reads only the table itself — the
    /// `ONLY` a legacy-inheritance parent needs.
    /// `options` are COPY's, such as `FORMAT csv, HEADER`.
    pub fn copy_columns_to_stdout_sql(&self, columns: &[&str], options: &str) -> String {
        let cols: Vec<String> = columns.iter().map(|c| sql_ident(c)).collect();
        let cols = cols.join(", ");
        match self.kind {
            TableKind::Partitioned => {
                format!("COPY (SELECT {cols} FROM {}) TO STDOUT ({options})", self.name.sql())
            }
            TableKind::Plain | TableKind::InheritanceParent if cols.is_empty() => {
                format!("COPY {} TO STDOUT ({options})", self.name.sql())
            }
            TableKind::Plain | TableKind::InheritanceParent => {
                format!("COPY {} ({cols}) TO STDOUT ({options})", self.name.sql())
            }
        }
    }

    /// `count(*)` over the same rows COPY reads: all partitions of a
    /// partitioned table, only the parent's own rows of an inheritance parent.
    pub fn count_sql(&self) -> String {
        let only = if self.kind == TableKind::InheritanceParent { "ONLY " } else { "" };
        format!("SELECT count(*) FROM {only}{}", self.name.sql())
    }

    /// Its row count as COPY reads it (see [`Table::count_sql`]).
    ///
    /// # Errors
    /// Server errors, or a signal.
    pub async fn count_rows(&self, session: &Session) -> Result<u64> {
        let n: i64 = session
            .query_value(&self.count_sql(), format!("cannot count the rows of {}", self.name))
            .await?;
        Ok(n as u64)
    }

    /// The primary key, or else the first unique key.
    pub fn best_key(&self) -> Option<&Key> {
        self.keys.iter().find(|k| k.is_primary).or_else(|| self.keys.first())
    }
}

/// The user tables of one database, with their foreign keys.
#[derive(Debug, Clone)]
pub struct Catalog {
    pub tables: Vec<Table>,
    pub foreign_keys: Vec<ForeignKey>,
    /// Partitions of every level, with the root they belong to; never listed as tables.
    pub partitions: Vec<(TableName, TableName)>,
    /// Each table's index in `tables`: a lookup per table of a 10,000-table
    /// load must not scan them all.
    by_name: HashMap<TableName, usize>,
}

/// The user tables: ordinary and partitioned, not partitions, not in system
/// schemas, not owned by an extension.
const USER_TABLES: &str = "
    SELECT c.oid
    FROM pg_class c
    JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind IN ('r', 'p')
      AND NOT c.relispartition
      AND n.nspname <> 'information_schema'
      AND n.nspname !~ '^pg_'
      AND NOT EXISTS (SELECT 1 FROM pg_depend d
                      WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
                        AND d.deptype = 'e')";

/// Reads the whole catalog of user tables. No query here locks a table
/// (no `pg_get_expr`, `pg_table_size` or `pg_partition_tree`), so a session
/// holding any table exclusively cannot make it wait.
///
/// # Errors
/// A server error if a catalog query fails.
pub async fn read_catalog(session: &Session) -> Result<Catalog> {
    session.without_jit(read_catalog_queries(session, Extras { keys: true, triggers: true })).await
}

/// As [`read_catalog`], for the target of a load: the tables' unique keys
/// are read only when `keys` (the modes that stage rows and resolve
/// conflicts on a key); left empty otherwise, their query is not run.
///
/// # Errors
/// A server error if a catalog query fails.
pub async fn read_target_catalog(session: &Session, keys: bool) -> Result<Catalog> {
    session.without_jit(read_catalog_queries(session, Extras { keys, triggers: true })).await
}

/// As [`read_catalog`], for a side that only reads table data (backup,
/// copy's source): the tables' unique keys and triggers, which only a load
/// uses, are left empty, and their queries are not run.
///
/// # Errors
/// A server error if a catalog query fails.
pub async fn read_data_catalog(session: &Session) -> Result<Catalog> {
    session
        .without_jit(read_catalog_queries(session, Extras { keys: false, triggers: false }))
        .await
}

/// Which of the queries that only some readers need are run.
#[derive(Debug, Clone, Copy)]
struct Extras {
    /// Each table's unique keys (`skip` and `upsert`, `list`).
    keys: bool,
    /// Each table's own triggers (a load reports and may disable them).
    triggers: bool,
}

/// Each table's columns, in order. The type's schema comes from a join, not
/// a subquery run per column (43 ms -> 30 ms for 6,000 columns).
const COLUMNS_SQL: &str =
    "SELECT a.attrelid, a.attname::text, format_type(a.atttypid, a.atttypmod), a.attnotnull,
                d.adbin IS NOT NULL, a.attgenerated::text, a.attidentity::text,
                t.typnamespace = 'pg_catalog'::regnamespace AS builtin_type
         FROM pg_attribute a
         LEFT JOIN pg_type t ON t.oid = a.atttypid
         LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
         WHERE a.attrelid = ANY($1::oid[]) AND a.attnum > 0 AND NOT a.attisdropped
         ORDER BY a.attrelid, a.attnum";

/// Each table's unique keys usable as conflict targets, primary first.
const KEYS_SQL: &str = "SELECT i.indrelid, ic.relname::text, i.indisprimary,
                array(SELECT a.attname::text
                      FROM unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)
                      JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
                      WHERE k.ord <= i.indnkeyatts
                      ORDER BY k.ord)
         FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid
         WHERE i.indrelid = ANY($1::oid[])
           AND i.indisunique AND i.indisvalid AND i.indpred IS NULL AND i.indexprs IS NULL
         ORDER BY i.indrelid, NOT i.indisprimary, ic.relname";

/// Every foreign key, partitioned tables' named by their roots.
const FOREIGN_KEYS_SQL: &str = "SELECT con.conname::text,
                coalesce(pg_partition_root(con.conrelid), con.conrelid::regclass)::oid,
                coalesce(pg_partition_root(con.confrelid), con.confrelid::regclass)::oid,
                con.condeferrable,
                array(SELECT a.attname::text FROM unnest(con.conkey) WITH ORDINALITY AS k(attnum, ord)
                      JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.attnum
                      ORDER BY k.ord),
                array(SELECT a.attname::text FROM unnest(con.confkey) WITH ORDINALITY AS k(attnum, ord)
                      JOIN pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.attnum
                      ORDER BY k.ord)
         FROM pg_constraint con
         WHERE con.contype = 'f' AND con.conparentid = 0
         ORDER BY con.conrelid, con.conname";

/// The sequences feeding each table's columns: owned ones (serial, identity) and those named in a default.
const SEQUENCES_SQL: &str =
    "SELECT d.refobjid, a.attname::text, format('%I.%I', sn.nspname, s.relname), true
         FROM pg_depend d
         JOIN pg_class s ON s.oid = d.objid AND s.relkind = 'S'
         JOIN pg_namespace sn ON sn.oid = s.relnamespace
         JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
         WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass
           AND d.deptype IN ('a', 'i') AND d.refobjsubid > 0
           AND d.refobjid = ANY($1::oid[])
         UNION ALL
         SELECT ad.adrelid, a.attname::text, format('%I.%I', sn.nspname, s.relname), false
         FROM pg_attrdef ad
         JOIN pg_depend d ON d.classid = 'pg_attrdef'::regclass AND d.objid = ad.oid
                         AND d.refclassid = 'pg_class'::regclass
         JOIN pg_class s ON s.oid = d.refobjid AND s.relkind = 'S'
         JOIN pg_namespace sn ON sn.oid = s.relnamespace
         JOIN pg_attribute a ON a.attrelid = ad.adrelid AND a.attnum = ad.adnum
         WHERE ad.adrelid = ANY($1::oid[])";

/// Each table's own triggers.
const TRIGGERS_SQL: &str = "SELECT tgrelid, tgname::text FROM pg_trigger
         WHERE NOT tgisinternal AND tgparentid = 0 AND tgrelid = ANY($1::oid[])
         ORDER BY tgrelid, tgname";

/// Every partition and the root of its tree.
const PARTITIONS_SQL: &str =
    "SELECT c.oid, n.nspname::text, c.relname::text, pg_partition_root(c.oid)::oid, c.relkind::text
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE c.relispartition AND c.relkind IN ('r', 'p')
         ORDER BY n.nspname, c.relname";

/// One catalog query's rows; `oids` is its `$1`, when it has one.
async fn catalog_query(
    session: &Session,
    sql: &str,
    oids: Option<&Vec<u32>>,
) -> Result<Vec<tokio_postgres::Row>> {
    let rows = match oids {
        Some(oids) => session.query(sql, &[oids]).await,
        None => session.query(sql, &[]).await,
    };
    rows.map_err(|e| Error::db(format!("cannot read the catalog of {}", session.info), e))
}

/// [`catalog_query`]'s rows when `wanted`, else none (nothing is sent).
async fn catalog_query_if(
    wanted: bool,
    session: &Session,
    sql: &str,
    oids: Option<&Vec<u32>>,
) -> Result<Vec<tokio_postgres::Row>> {
    if wanted { catalog_query(session, sql, oids).await } else { Ok(Vec::new()) }
}

async fn read_catalog_queries(session: &Session, extras: Extras) -> Result<Catalog> {
    // The later queries name the tables the first one found by oid, rather
    // than each evaluating the user-table filter (a join with pg_depend)
    // again: 15-20 ms less each on 1,000 tables.
    // A partitioned table's estimates are its partitions' sums, read for
    // every partition tree at once (a subquery per table in the select list
    // cost half a second on 10,000 plain tables, though never run for them).
    let table_rows = catalog_query(
        session,
        &format!(
        "WITH RECURSIVE tree(root, relid) AS (
             SELECT p.oid, p.oid FROM pg_class p WHERE p.relkind = 'p' AND NOT p.relispartition
             UNION ALL
             SELECT tree.root, i.inhrelid FROM pg_inherits i JOIN tree ON i.inhparent = tree.relid),
         parts AS (
             SELECT t.root,
                    sum(l.reltuples) FILTER (WHERE l.relkind <> 'p' AND l.reltuples >= 0)::float8 AS est_rows,
                    coalesce(sum(l.relpages) FILTER (WHERE l.relkind <> 'p'), 0) AS pages
               FROM tree t JOIN pg_class l ON l.oid = t.relid
              GROUP BY t.root)
         SELECT c.oid, n.nspname::text, c.relname::text, c.relkind::text,
                EXISTS (SELECT 1 FROM pg_inherits i WHERE i.inhparent = c.oid) AS has_children,
                CASE WHEN c.relkind = 'p' THEN parts.est_rows
                ELSE coalesce(nullif(c.reltuples, -1)::float8,
                              -- What pg_stat_all_tables.n_live_tup reads, without
                              -- building that view for every table.
                              pg_stat_get_live_tuples(c.oid)::float8)
                END AS est_rows,
                -- From relpages, not pg_table_size(): that would take a lock and
                -- hang on a table another session holds exclusively.
                (CASE WHEN c.relkind = 'p' THEN parts.pages ELSE c.relpages END)::int8
                    * current_setting('block_size')::int8 AS est_bytes
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
              LEFT JOIN parts ON parts.root = c.oid
         WHERE c.oid IN ({USER_TABLES})
         ORDER BY n.nspname, c.relname"
        ),
        None,
    )
    .await?;

    let mut tables: Vec<Table> = Vec::with_capacity(table_rows.len());
    let mut index: HashMap<u32, usize> = HashMap::new();
    for r in &table_rows {
        let oid: u32 = r.get(0);
        let relkind: String = r.get(3);
        let kind = if relkind == "p" {
            TableKind::Partitioned
        } else if r.get::<_, bool>(4) {
            TableKind::InheritanceParent
        } else {
            TableKind::Plain
        };
        index.insert(oid, tables.len());
        tables.push(Table {
            oid,
            name: TableName::new(r.get::<_, String>(1), r.get::<_, String>(2)),
            kind,
            partitions: Vec::new(),
            estimated_rows: r.get::<_, Option<f64>>(5).map(|v| v.round() as i64),
            estimated_bytes: r.get(6),
            columns: Vec::new(),
            keys: Vec::new(),
            sequences: Vec::new(),
            triggers: Vec::new(),
        });
    }

    let oids: Vec<u32> = tables.iter().map(|t| t.oid).collect();
    // The other queries are sent together (pipelined on the session): the
    // server runs each as soon as it ended the one before, while the rows
    // of that one are read here, instead of waiting a round trip and this
    // side's work between queries.
    let (column_rows, key_rows, fk_rows, sequence_rows, trigger_rows, partition_rows) = futures::try_join!(
        catalog_query(session, COLUMNS_SQL, Some(&oids)),
        catalog_query_if(extras.keys, session, KEYS_SQL, Some(&oids)),
        catalog_query(session, FOREIGN_KEYS_SQL, None),
        catalog_query(session, SEQUENCES_SQL, Some(&oids)),
        catalog_query_if(extras.triggers, session, TRIGGERS_SQL, Some(&oids)),
        catalog_query(session, PARTITIONS_SQL, None),
    )?;
    for r in column_rows {
        let Some(&i) = index.get(&r.get::<_, u32>(0)) else { continue };
        let generated: String = r.get(5);
        let identity: String = r.get(6);
        let is_generated = !generated.is_empty();
        tables[i].columns.push(Column {
            name: r.get(1),
            type_name: r.get(2),
            not_null: r.get(3),
            has_default: !is_generated && r.get::<_, bool>(4),
            generated: is_generated,
            identity: match identity.as_str() {
                "a" => Some(Identity::Always),
                "d" => Some(Identity::ByDefault),
                _ => None,
            },
            builtin_type: r.get(7),
        });
    }

    for r in key_rows {
        let Some(&i) = index.get(&r.get::<_, u32>(0)) else { continue };
        tables[i].keys.push(Key { name: r.get(1), is_primary: r.get(2), columns: r.get(3) });
    }

    let mut foreign_keys = Vec::new();
    for r in fk_rows {
        let (Some(&c), Some(&p)) = (index.get(&r.get::<_, u32>(1)), index.get(&r.get::<_, u32>(2)))
        else {
            continue;
        };
        foreign_keys.push(ForeignKey {
            name: r.get(0),
            child: tables[c].name.clone(),
            parent: tables[p].name.clone(),
            deferrable: r.get(3),
            columns: r.get(4),
            parent_columns: r.get(5),
        });
    }

    let mut seqs: BTreeMap<(u32, String, String), bool> = BTreeMap::new();
    for r in sequence_rows {
        let owned: bool = r.get(3);
        let e = seqs.entry((r.get(0), r.get(1), r.get(2))).or_insert(false);
        *e |= owned;
    }
    for ((oid, column, sequence), owned) in seqs {
        if let Some(&i) = index.get(&oid) {
            tables[i].sequences.push(SequenceUse { column, sequence, owned });
        }
    }

    for r in trigger_rows {
        if let Some(&i) = index.get(&r.get::<_, u32>(0)) {
            tables[i].triggers.push(r.get(1));
        }
    }

    let mut partitions = Vec::new();
    for r in partition_rows {
        let root: Option<u32> = r.get(3);
        let Some(&i) = root.and_then(|o| index.get(&o)) else { continue };
        let name = TableName::new(r.get::<_, String>(1), r.get::<_, String>(2));
        if r.get::<_, String>(4) == "r" {
            tables[i].partitions.push(name.clone());
        }
        partitions.push((name, tables[i].name.clone()));
    }

    let by_name = tables.iter().enumerate().map(|(i, t)| (t.name.clone(), i)).collect();
    Ok(Catalog { tables, foreign_keys, partitions, by_name })
}

/// Replaces the page-count size estimates of `tables` with their sizes on
/// disk (see [`read_sizes`]).
///
/// # Errors
/// A server error, such as a lock timeout.
pub async fn refresh_sizes(session: &Session, tables: &mut [Table]) -> Result<()> {
    let sizes = read_sizes(session, &tables.iter().collect::<Vec<_>>()).await?;
    for (t, bytes) in tables.iter_mut().zip(sizes) {
        t.estimated_bytes = bytes;
    }
    Ok(())
}

/// Each table's heap and TOAST table size (`pg_relation_size` of each: half
/// the time of `pg_table_size`, which also reads the free-space and
/// visibility maps' sizes, and the same order of tables), in the order of
/// `tables`; a table the server no longer knows keeps its estimate. That
/// takes an `ACCESS SHARE` lock per table, so call it when the locks are
/// already held (backup) or under a short `lock_timeout` (list).
///
/// # Errors
/// A server error, such as a lock timeout.
pub async fn read_sizes(session: &Session, tables: &[&Table]) -> Result<Vec<i64>> {
    let oids: Vec<u32> = tables.iter().map(|t| t.oid).collect();
    let rows = session
        .without_jit(async {
            session
                .query(
                    "SELECT c.oid,
                    CASE WHEN c.relkind = 'p' THEN
                        (SELECT coalesce(sum(pg_relation_size(t.relid)
                                             + coalesce(pg_relation_size(nullif(l.reltoastrelid, 0)), 0)), 0)
                         FROM pg_partition_tree(c.oid) t JOIN pg_class l ON l.oid = t.relid
                         WHERE t.isleaf)
                    ELSE coalesce(pg_relation_size(c.oid)
                                  + coalesce(pg_relation_size(nullif(c.reltoastrelid, 0)), 0), 0) END::int8
             FROM pg_class c WHERE c.oid = ANY($1::oid[])",
                    &[&oids],
                )
                .await
                .map_err(|e| Error::db("cannot read table sizes", e))
        })
        .await?;
    let sizes: HashMap<u32, i64> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    Ok(tables.iter().map(|t| sizes.get(&t.oid).copied().unwrap_or(t.estimated_bytes)).collect())
}

/// The tables a selection picks, in load order (parents first), with the
/// foreign-key cycles among them.
#[derive(Debug)]
pub struct Chosen<'a> {
    pub tables: Vec<&'a Table>,
    pub cycles: Vec<Vec<TableName>>,
}

impl Catalog {
    /// The tables `selection` picks, ordered parents first.
    ///
    /// # Errors
    /// A usage error when a pattern matches nothing.
    pub fn choose(&self, selection: &Selection) -> Result<Chosen<'_>> {
        let names: Vec<TableName> = self.tables.iter().map(|t| t.name.clone()).collect();
        let picked = selection.choose(&names, &self.partitions, "in the database")?;
        let by_name: HashMap<&TableName, &Table> =
            self.tables.iter().map(|t| (&t.name, t)).collect();
        let picked: Vec<&Table> = picked.iter().filter_map(|n| by_name.get(*n).copied()).collect();
        let order = self.load_order(&picked);
        Ok(Chosen {
            tables: order.order.iter().filter_map(|n| by_name.get(n).copied()).collect(),
            cycles: order.cycles,
        })
    }

    /// The table with this exact name.
    pub fn find(&self, name: &TableName) -> Option<&Table> {
        self.by_name.get(name).map(|&i| &self.tables[i])
    }

    /// The parents (by FK) of a table, excluding itself.
    pub fn parents_of(&self, name: &TableName) -> Vec<&TableName> {
        let mut v: Vec<&TableName> = self
            .foreign_keys
            .iter()
            .filter(|fk| &fk.child == name && &fk.parent != name)
            .map(|fk| &fk.parent)
            .collect();
        v.sort();
        v.dedup();
        v
    }

    /// Orders the chosen tables parents first, with the cycles among them.
    pub fn load_order(&self, chosen: &[&Table]) -> LoadOrder<TableName> {
        let names: Vec<TableName> = chosen.iter().map(|t| t.name.clone()).collect();
        let edges: Vec<(TableName, TableName)> =
            self.foreign_keys.iter().map(|fk| (fk.child.clone(), fk.parent.clone())).collect();
        order_tables(&names, &edges)
    }
}
