//! Every user object's definition, as the server itself writes it, for
//! comparing two databases' schemas (`pgbarge diff`).
//!
//! One catalog query per kind of object (see [`queries`]), never one per
//! object. Definitions come from the server's own functions (`format_type`,
//! `pg_get_expr`, `pg_get_constraintdef`, `pg_get_indexdef`,
//! `pg_get_triggerdef`, `pg_get_functiondef`, `pg_get_viewdef`) in a data
//! session, whose `search_path` is `pg_catalog` only: every name comes out
//! schema-qualified and the text is the same for the same object in any
//! database. No SQL is parsed here. System schemas and objects that belong to
//! an extension are left out. This module reads; comparing is
//! [`crate::catalog::compare`]'s.

pub mod queries;

use std::collections::BTreeMap;
use std::time::Duration;

use crate::conn::session::Session;
use crate::error::{Error, Result};
use crate::ident::TableName;

/// What kind of object a definition is, in the order reports list them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ObjectKind {
    Schema,
    Extension,
    Table,
    Column,
    PrimaryKey,
    Unique,
    ForeignKey,
    Check,
    Exclusion,
    Index,
    Trigger,
    Policy,
    Sequence,
    View,
    MaterializedView,
    Function,
    Procedure,
    Enum,
    Domain,
    CompositeType,
}

impl ObjectKind {
    /// Every kind, in report order.
    pub const ALL: [ObjectKind; 20] = [
        ObjectKind::Schema,
        ObjectKind::Extension,
        ObjectKind::Table,
        ObjectKind::Column,
        ObjectKind::PrimaryKey,
        ObjectKind::Unique,
        ObjectKind::ForeignKey,
        ObjectKind::Check,
        ObjectKind::Exclusion,
        ObjectKind::Index,
        ObjectKind::Trigger,
        ObjectKind::Policy,
        ObjectKind::Sequence,
        ObjectKind::View,
        ObjectKind::MaterializedView,
        ObjectKind::Function,
        ObjectKind::Procedure,
        ObjectKind::Enum,
        ObjectKind::Domain,
        ObjectKind::CompositeType,
    ];

    /// The word a difference's key uses: `column`, `foreign key`, ...
    pub fn as_str(self) -> &'static str {
        match self {
            ObjectKind::Schema => "schema",
            ObjectKind::Extension => "extension",
            ObjectKind::Table => "table",
            ObjectKind::Column => "column",
            ObjectKind::PrimaryKey => "primary key",
            ObjectKind::Unique => "unique",
            ObjectKind::ForeignKey => "foreign key",
            ObjectKind::Check => "check",
            ObjectKind::Exclusion => "exclusion",
            ObjectKind::Index => "index",
            ObjectKind::Trigger => "trigger",
            ObjectKind::Policy => "policy",
            ObjectKind::Sequence => "sequence",
            ObjectKind::View => "view",
            ObjectKind::MaterializedView => "materialized view",
            ObjectKind::Function => "function",
            ObjectKind::Procedure => "procedure",
            ObjectKind::Enum => "enum",
            ObjectKind::Domain => "domain",
            ObjectKind::CompositeType => "composite type",
        }
    }

    /// The summary's plural: `columns`, `foreign keys`, `check constraints`.
    pub fn plural(self) -> &'static str {
        match self {
            ObjectKind::Schema => "schemas",
            ObjectKind::Extension => "extensions",
            ObjectKind::Table => "tables",
            ObjectKind::Column => "columns",
            ObjectKind::PrimaryKey => "primary keys",
            ObjectKind::Unique => "unique constraints",
            ObjectKind::ForeignKey => "foreign keys",
            ObjectKind::Check => "check constraints",
            ObjectKind::Exclusion => "exclusion constraints",
            ObjectKind::Index => "indexes",
            ObjectKind::Trigger => "triggers",
            ObjectKind::Policy => "policies",
            ObjectKind::Sequence => "sequences",
            ObjectKind::View => "views",
            ObjectKind::MaterializedView => "materialized views",
            ObjectKind::Function => "functions",
            ObjectKind::Procedure => "procedures",
            ObjectKind::Enum => "enums",
            ObjectKind::Domain => "domains",
            ObjectKind::CompositeType => "composite types",
        }
    }

    /// The kind a catalog query names.
    pub fn parse(text: &str) -> Option<ObjectKind> {
        ObjectKind::ALL.into_iter().find(|k| k.as_str() == text)
    }

    /// Constraints and indexes: matched by definition unless names count.
    pub fn is_matched_by_definition(self) -> bool {
        matches!(
            self,
            ObjectKind::PrimaryKey
                | ObjectKind::Unique
                | ObjectKind::ForeignKey
                | ObjectKind::Check
                | ObjectKind::Exclusion
                | ObjectKind::Index
        )
    }
}

/// One object's definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Definition {
    pub kind: ObjectKind,
    /// The schema it lives in (an extension's: the schema it was installed in).
    pub schema: String,
    /// The table it belongs to, for `-t`/`-T`: its own name for a table, the
    /// root of a partition's tree, the table of a column, constraint, index,
    /// trigger or policy; `None` for objects outside tables.
    pub table: Option<TableName>,
    /// Its name, server-quoted and schema-qualified: `public."Role"."legacyCode"`,
    /// `public.f(integer)`.
    pub name: String,
    /// For constraints and indexes: the table and the definition without
    /// the object's own name, which is how they are matched unless names
    /// are compared (`public."T" CHECK ((hours > 0))`,
    /// `CREATE INDEX ON public."T" USING btree (a)`).
    pub unnamed: Option<String>,
    /// What is compared: attribute name to the server's text for it.
    /// `owner`, `privileges` and `comment` are always read; the comparison
    /// decides whether they count.
    pub attributes: BTreeMap<String, String>,
}

/// Reads every user object's definition, one query per kind, in one
/// read-only snapshot.
///
/// The session must be a data session (`search_path = pg_catalog`), or names
/// would come out unqualified. Some of the server's functions open the table
/// whose expression they print (`pg_get_expr` takes an `ACCESS SHARE` lock),
/// so a session holding a table exclusively is waited for at most
/// `lock_wait`.
///
/// # Errors
/// The server's error, naming the kind that could not be read (a lock
/// timeout among them).
pub async fn read_definitions(session: &Session, lock_wait: Duration) -> Result<Vec<Definition>> {
    session
        .execute(
            "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY",
            "cannot start a read-only transaction",
        )
        .await?;
    crate::conn::locks::set_lock_timeout(session, lock_wait).await?;
    let mut out = Vec::new();
    for (what, sql) in queries::all() {
        let rows = session
            .request(
                session.query(sql.as_str(), &[]),
                format!("cannot read the {what} of {}", session.info),
            )
            .await?;
        for r in &rows {
            out.push(definition_from(
                r.get(0),
                r.get(1),
                r.get(2),
                r.get(3),
                r.get(4),
                r.get(5),
                r.get(6),
            )?);
        }
    }
    session.execute("COMMIT", "cannot end the read-only transaction").await?;
    Ok(out)
}

/// Builds a definition from one query row (see [`queries`] for the shape).
///
/// # Errors
/// A runtime error for a kind or attribute text the queries never produce.
// The seven columns of a row, in the queries' order: a struct would only
// rename them.
#[allow(clippy::too_many_arguments)]
pub fn definition_from(
    kind: &str,
    schema: String,
    table_schema: Option<String>,
    table_name: Option<String>,
    name: String,
    unnamed: Option<String>,
    attributes: &str,
) -> Result<Definition> {
    let kind = ObjectKind::parse(kind)
        .ok_or_else(|| Error::runtime(format!("unknown object kind {kind:?} from the catalog")))?;
    let attributes: BTreeMap<String, Option<String>> = serde_json::from_str(attributes)
        .map_err(|e| Error::runtime(format!("unreadable attributes of {name}: {e}")))?;
    Ok(Definition {
        kind,
        schema,
        table: table_schema.zip(table_name).map(|(s, n)| TableName::new(s, n)),
        name,
        unnamed,
        attributes: attributes.into_iter().filter_map(|(k, v)| v.map(|v| (k, v))).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_and_nulls_are_dropped() {
        for k in ObjectKind::ALL {
            assert_eq!(ObjectKind::parse(k.as_str()), Some(k));
        }
        let d = definition_from(
            "column",
            "public".into(),
            Some("public".into()),
            Some("Role".into()),
            "public.\"Role\".id".into(),
            None,
            r#"{"type": "uuid", "default": null}"#,
        )
        .unwrap();
        assert_eq!(d.kind, ObjectKind::Column);
        assert_eq!(d.table, Some(TableName::new("public", "Role")));
        assert_eq!(d.attributes.len(), 1);
        assert!(definition_from("rule", "s".into(), None, None, "x".into(), None, "{}").is_err());
    }
}
