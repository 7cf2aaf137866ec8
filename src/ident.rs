//! Table names and identifier quoting: the one place SQL names are built from
//! real (unquoted) names. Both the catalog and table patterns use
//! [`TableName`]; neither imports the other for it.
//!
//! SQL always quotes, through postgres-protocol's `escape_identifier` (what
//! the driver itself uses): no key word list can fall behind the server's.
//! People see the shorter form PostgreSQL's `quote_ident` gives
//! (`public."Role"`), which is only ever printed.

use serde::{Deserialize, Serialize};

/// A table's real (unquoted) schema and name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TableName {
    pub schema: String,
    pub name: String,
}

impl TableName {
    pub fn new(schema: impl Into<String>, name: impl Into<String>) -> Self {
        TableName { schema: schema.into(), name: name.into() }
    }

    /// The name as SQL: `"schema"."name"`, both parts always quoted.
    pub fn sql(&self) -> String {
        format!("{}.{}", sql_ident(&self.schema), sql_ident(&self.name))
    }

    /// The name for people, each part quoted only when needed, like
    /// `format('%I.%I')`: `public."Role"`. Never sent to the server.
    pub fn pretty(&self) -> String {
        format!("{}.{}", pretty_ident(&self.schema), pretty_ident(&self.name))
    }
}

impl std::fmt::Display for TableName {
    /// The [`TableName::pretty`] form.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.pretty())
    }
}

/// An identifier as SQL: always double-quoted, inner quotes doubled.
pub fn sql_ident(ident: &str) -> String {
    postgres_protocol::escape::escape_identifier(ident)
}

/// An identifier for people, quoted the way PostgreSQL's `quote_ident` does:
/// only when it is not a plain lower-case identifier. Key words are quoted
/// too, via a list of the reserved ones. For display only: SQL takes
/// [`sql_ident`].
pub fn pretty_ident(ident: &str) -> String {
    let plain = !ident.is_empty()
        && ident.chars().next().is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && ident
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '$')
        && !RESERVED.contains(&ident);
    if plain { ident.to_string() } else { format!("\"{}\"", ident.replace('"', "\"\"")) }
}

/// PostgreSQL's reserved key words (SQL key words appendix, "reserved" in the
/// PostgreSQL column, plus those that cannot be column or table names).
const RESERVED: &[&str] = &[
    "all",
    "analyse",
    "analyze",
    "and",
    "any",
    "array",
    "as",
    "asc",
    "asymmetric",
    "authorization",
    "between",
    "bigint",
    "binary",
    "bit",
    "boolean",
    "both",
    "case",
    "cast",
    "char",
    "character",
    "check",
    "coalesce",
    "collate",
    "collation",
    "column",
    "concurrently",
    "constraint",
    "create",
    "cross",
    "current_catalog",
    "current_date",
    "current_role",
    "current_schema",
    "current_time",
    "current_timestamp",
    "current_user",
    "dec",
    "decimal",
    "default",
    "deferrable",
    "desc",
    "distinct",
    "do",
    "else",
    "end",
    "except",
    "exists",
    "extract",
    "false",
    "fetch",
    "float",
    "for",
    "foreign",
    "freeze",
    "from",
    "full",
    "grant",
    "greatest",
    "group",
    "grouping",
    "having",
    "ilike",
    "in",
    "initially",
    "inner",
    "inout",
    "int",
    "integer",
    "intersect",
    "interval",
    "into",
    "is",
    "isnull",
    "join",
    "lateral",
    "leading",
    "least",
    "left",
    "like",
    "limit",
    "localtime",
    "localtimestamp",
    "national",
    "natural",
    "nchar",
    "none",
    "normalize",
    "not",
    "notnull",
    "null",
    "nullif",
    "numeric",
    "offset",
    "on",
    "only",
    "or",
    "order",
    "out",
    "outer",
    "overlaps",
    "overlay",
    "placing",
    "position",
    "precision",
    "primary",
    "real",
    "references",
    "returning",
    "right",
    "row",
    "select",
    "session_user",
    "setof",
    "similar",
    "smallint",
    "some",
    "substring",
    "symmetric",
    "system_user",
    "table",
    "tablesample",
    "then",
    "time",
    "timestamp",
    "to",
    "trailing",
    "treat",
    "trim",
    "true",
    "union",
    "unique",
    "user",
    "using",
    "values",
    "varchar",
    "variadic",
    "verbose",
    "when",
    "where",
    "window",
    "with",
    "xmlattributes",
    "xmlconcat",
    "xmlelement",
    "xmlexists",
    "xmlforest",
    "xmlnamespaces",
    "xmlparse",
    "xmlpi",
    "xmlroot",
    "xmlserialize",
    "xmltable",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pretty_like_quote_ident() {
        assert_eq!(pretty_ident("users"), "users");
        assert_eq!(pretty_ident("User"), "\"User\"");
        assert_eq!(pretty_ident("user"), "\"user\"");
        assert_eq!(pretty_ident("my.table"), "\"my.table\"");
        assert_eq!(pretty_ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(pretty_ident("1abc"), "\"1abc\"");
        assert_eq!(TableName::new("public", "Role").pretty(), "public.\"Role\"");
        assert_eq!(TableName::new("public", "Role").to_string(), "public.\"Role\"");
    }

    #[test]
    fn sql_always_quotes() {
        assert_eq!(sql_ident("users"), "\"users\"");
        assert_eq!(sql_ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(sql_ident(""), "\"\"");
        assert_eq!(TableName::new("public", "Role").sql(), "\"public\".\"Role\"");
    }
}
