//! Comparing two databases' definitions (see [`crate::catalog::definitions`]):
//! which objects only one side has, and which attributes of a shared object
//! differ. Pure code: no database, no printing.
//!
//! Each difference has a stable one-line key, the text a plan's `allow`
//! list repeats:
//!
//! - `only in source: KIND NAME`
//! - `only in target: KIND NAME`
//! - `differs: KIND NAME: ATTRIBUTE`
//!
//! `KIND` is [`ObjectKind::as_str`] (`column`, `foreign key`, ...), `NAME`
//! the object's server-quoted name (`public."Role"."legacyCode"`) — for
//! constraints and indexes, unless names are compared, the table and the
//! definition without the name — and `ATTRIBUTE` what differs (`type`,
//! `nullability`, `default`, `definition`, ...).
//!
//! A table only one side has is one difference: its columns, constraints,
//! indexes, triggers, policies and partitions go with it, unlisted.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::catalog::definitions::{Definition, ObjectKind};
use crate::catalog::select::Selection;
use crate::ident::TableName;

/// What the comparison takes into account beyond definitions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CompareOptions {
    /// Match constraints and indexes by name (else by table and definition).
    pub names: bool,
    /// Compare columns' physical order.
    pub column_order: bool,
    /// Compare extension versions.
    pub versions: bool,
    pub owners: bool,
    pub privileges: bool,
    pub comments: bool,
}

impl CompareOptions {
    /// Whether an attribute counts under these options.
    fn counts(&self, attribute: &str) -> bool {
        match attribute {
            "owner" => self.owners,
            "privileges" => self.privileges,
            "comment" => self.comments,
            "position" => self.column_order,
            "version" => self.versions,
            _ => true,
        }
    }
}

/// Where a difference lies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    OnlyInSource,
    OnlyInTarget,
    Differs,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::OnlyInSource => "only in source",
            Status::OnlyInTarget => "only in target",
            Status::Differs => "differs",
        }
    }
}

/// One difference between the two databases.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Difference {
    /// The stable one-line key (see the module's documentation).
    pub key: String,
    pub status: Status,
    pub kind: &'static str,
    pub object: String,
    /// What differs (`differs` only).
    pub attribute: Option<String>,
    /// The source's side: the attribute's text (`differs`; `None` when the
    /// source has no value for it), or every attribute of an object only the
    /// source has.
    pub source: Option<Side>,
    pub target: Option<Side>,
    /// Sorting: the table (or object) it belongs to, then kind and name.
    #[serde(skip)]
    group: (String, ObjectKind, String),
    /// The table it belongs to (a table: itself, unless it is a partition).
    #[serde(skip)]
    table: Option<TableName>,
}

/// One side of a difference.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Side {
    Value(String),
    Object(BTreeMap<String, String>),
}

/// How many objects of one kind each side has.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KindCount {
    pub kind: &'static str,
    pub plural: &'static str,
    pub source: usize,
    pub target: usize,
}

/// The whole comparison.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Comparison {
    pub counts: Vec<KindCount>,
    pub differences: Vec<Difference>,
}

impl Comparison {
    /// `tables 13 = 13, columns 80 != 79, ...` (kinds present on either side).
    pub fn counts_line(&self) -> String {
        self.counts
            .iter()
            .map(|c| {
                let op = if c.source == c.target { "=" } else { "!=" };
                format!("{} {} {op} {}", c.plural, c.source, c.target)
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Keeps the definitions a selection and a schema list pick: objects of a
/// table only when `-t`/`-T` pick the table, objects of any kind only in the
/// `schemas` given (all user schemas when empty).
pub fn filter(defs: Vec<Definition>, selection: &Selection, schemas: &[String]) -> Vec<Definition> {
    defs.into_iter()
        .filter(|d| schemas.is_empty() || schemas.contains(&d.schema))
        .filter(|d| d.table.as_ref().is_none_or(|t| selection.picks(t)))
        .collect()
}

/// Compares `source` with `target`.
pub fn compare(
    source: &[Definition],
    target: &[Definition],
    options: &CompareOptions,
) -> Comparison {
    let (s, t) = (keyed(source, options), keyed(target, options));
    let counts = ObjectKind::ALL
        .into_iter()
        .map(|k| KindCount {
            kind: k.as_str(),
            plural: k.plural(),
            source: source.iter().filter(|d| d.kind == k).count(),
            target: target.iter().filter(|d| d.kind == k).count(),
        })
        .filter(|c| c.source + c.target > 0)
        .collect();
    let mut differences = Vec::new();
    let all: BTreeSet<&(ObjectKind, String)> = s.keys().chain(t.keys()).collect();
    for id @ (kind, name) in all {
        let object = |status: Status, attribute: Option<String>, src, tgt, def: &Definition| {
            let mut key = format!("{}: {} {name}", status.as_str(), kind.as_str());
            if let Some(a) = &attribute {
                key.push_str(&format!(": {a}"));
            }
            let group = def.table.as_ref().map(|t| t.pretty()).unwrap_or_else(|| def.name.clone());
            Difference {
                key,
                status,
                kind: kind.as_str(),
                object: name.clone(),
                attribute,
                source: src,
                target: tgt,
                group: (group, *kind, name.clone()),
                table: def.table.clone(),
            }
        };
        match (s.get(id), t.get(id)) {
            (Some(a), None) => differences.push(object(
                Status::OnlyInSource,
                None,
                Some(Side::Object(counted(a, options))),
                None,
                a,
            )),
            (None, Some(b)) => differences.push(object(
                Status::OnlyInTarget,
                None,
                None,
                Some(Side::Object(counted(b, options))),
                b,
            )),
            (Some(a), Some(b)) => {
                let (ca, cb) = (counted(a, options), counted(b, options));
                let names: BTreeSet<&String> = ca.keys().chain(cb.keys()).collect();
                for attr in names {
                    let (va, vb) = (ca.get(attr), cb.get(attr));
                    if va != vb {
                        differences.push(object(
                            Status::Differs,
                            Some(attr.clone()),
                            va.cloned().map(Side::Value),
                            vb.cloned().map(Side::Value),
                            a,
                        ));
                    }
                }
            }
            (None, None) => unreachable!("the key came from one side"),
        }
    }
    // A table only one side has stands for everything in it.
    let whole: BTreeSet<(Status, TableName)> = differences
        .iter()
        .filter(|d| d.kind == ObjectKind::Table.as_str() && d.status != Status::Differs)
        .filter(|d| !side_has(d, "partition of"))
        .filter_map(|d| d.table.clone().map(|t| (d.status, t)))
        .collect();
    differences.retain(|d| {
        let is_whole_table = d.kind == ObjectKind::Table.as_str() && !side_has(d, "partition of");
        is_whole_table
            || d.status == Status::Differs
            || d.table.as_ref().is_none_or(|t| !whole.contains(&(d.status, t.clone())))
    });
    differences.sort_by(|a, b| (&a.group, a.status).cmp(&(&b.group, b.status)));
    Comparison { counts, differences }
}

/// Whether the side an object is only on has this attribute.
fn side_has(d: &Difference, attribute: &str) -> bool {
    [&d.source, &d.target]
        .into_iter()
        .any(|s| matches!(s, Some(Side::Object(a)) if a.contains_key(attribute)))
}

/// The attributes that count under `options`.
fn counted(d: &Definition, options: &CompareOptions) -> BTreeMap<String, String> {
    d.attributes
        .iter()
        .filter(|(k, _)| options.counts(k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// Each definition under the name it is matched by; a second object with the
/// same definition on one table (two identical CHECKs) gets ` (2)`.
fn keyed<'a>(
    defs: &'a [Definition],
    options: &CompareOptions,
) -> BTreeMap<(ObjectKind, String), &'a Definition> {
    let mut out = BTreeMap::new();
    let mut sorted: Vec<&Definition> = defs.iter().collect();
    sorted.sort_by(|a, b| (a.kind, &a.name).cmp(&(b.kind, &b.name)));
    for d in sorted {
        let base = match (&d.unnamed, options.names || !d.kind.is_matched_by_definition()) {
            (Some(u), false) => u.clone(),
            _ => d.name.clone(),
        };
        let mut name = base.clone();
        let mut n = 1;
        while out.contains_key(&(d.kind, name.clone())) {
            n += 1;
            name = format!("{base} ({n})");
        }
        out.insert((d.kind, name), d);
    }
    out
}

/// Splits differences into those `allow` lists and the rest, and names the
/// `allow` entries that match no difference.
pub fn apply_allow<'a>(
    differences: &'a [Difference],
    allow: &[String],
) -> (Vec<&'a Difference>, Vec<&'a Difference>, Vec<String>) {
    let (allowed, rest): (Vec<&Difference>, Vec<&Difference>) =
        differences.iter().partition(|d| allow.iter().any(|a| a.trim() == d.key));
    let unmatched =
        allow.iter().filter(|a| !differences.iter().any(|d| d.key == a.trim())).cloned().collect();
    (allowed, rest, unmatched)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn def(
        kind: ObjectKind,
        name: &str,
        unnamed: Option<&str>,
        attrs: &[(&str, &str)],
    ) -> Definition {
        Definition {
            kind,
            schema: "public".into(),
            table: Some(TableName::new("public", "T")),
            name: name.into(),
            unnamed: unnamed.map(String::from),
            attributes: attrs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        }
    }

    fn keys(c: &Comparison) -> Vec<&str> {
        c.differences.iter().map(|d| d.key.as_str()).collect()
    }

    #[test]
    fn identical_sides_have_no_difference_and_equal_counts() {
        let a = vec![def(ObjectKind::Column, "public.\"T\".a", None, &[("type", "integer")])];
        let c = compare(&a, &a.clone(), &CompareOptions::default());
        assert!(c.differences.is_empty());
        assert_eq!(c.counts_line(), "columns 1 = 1");
    }

    #[test]
    fn only_in_and_differs_get_one_line_keys() {
        let s = vec![
            def(ObjectKind::Table, "public.\"T\"", None, &[("kind", "table")]),
            def(
                ObjectKind::Column,
                "public.\"T\".a",
                None,
                &[("type", "integer"), ("nullability", "not null")],
            ),
        ];
        let t = vec![
            def(ObjectKind::Table, "public.\"T\"", None, &[("kind", "table")]),
            def(
                ObjectKind::Column,
                "public.\"T\".a",
                None,
                &[("type", "bigint"), ("nullability", "not null")],
            ),
            def(ObjectKind::Column, "public.\"T\".b", None, &[("type", "text")]),
        ];
        let c = compare(&s, &t, &CompareOptions::default());
        assert_eq!(
            keys(&c),
            vec!["differs: column public.\"T\".a: type", "only in target: column public.\"T\".b"]
        );
        assert_eq!(c.counts_line(), "tables 1 = 1, columns 1 != 2");
        assert_eq!(c.differences[0].source, Some(Side::Value("integer".into())));
    }

    #[test]
    fn a_table_only_one_side_has_stands_for_its_columns_and_partitions() {
        let mut part =
            def(ObjectKind::Table, "public.\"T_1\"", None, &[("partition of", "public.\"T\"")]);
        part.table = Some(TableName::new("public", "T"));
        let s = vec![
            def(ObjectKind::Table, "public.\"T\"", None, &[("kind", "table")]),
            def(ObjectKind::Column, "public.\"T\".a", None, &[]),
            def(ObjectKind::Check, "public.\"T\".c", Some("public.\"T\" CHECK (a > 0)"), &[]),
            part,
        ];
        let c = compare(&s, &[], &CompareOptions::default());
        assert_eq!(keys(&c), vec!["only in source: table public.\"T\""]);
        assert_eq!(c.counts_line(), "tables 2 != 0, columns 1 != 0, check constraints 1 != 0");
    }

    #[test]
    fn constraints_match_by_definition_unless_names_count() {
        let s = vec![def(
            ObjectKind::Check,
            "public.\"T\".a_check",
            Some("public.\"T\" CHECK ((a > 0))"),
            &[],
        )];
        let t = vec![def(
            ObjectKind::Check,
            "public.\"T\".renamed",
            Some("public.\"T\" CHECK ((a > 0))"),
            &[],
        )];
        assert!(compare(&s, &t, &CompareOptions::default()).differences.is_empty());
        let named = compare(&s, &t, &CompareOptions { names: true, ..Default::default() });
        assert_eq!(
            keys(&named),
            vec![
                "only in source: check public.\"T\".a_check",
                "only in target: check public.\"T\".renamed"
            ]
        );
    }

    #[test]
    fn owners_comments_and_order_count_only_when_asked() {
        let s = vec![def(
            ObjectKind::Column,
            "c",
            None,
            &[("position", "1"), ("comment", "x"), ("owner", "a")],
        )];
        let t = vec![def(ObjectKind::Column, "c", None, &[("position", "2"), ("owner", "b")])];
        assert!(compare(&s, &t, &CompareOptions::default()).differences.is_empty());
        let all = CompareOptions {
            column_order: true,
            comments: true,
            owners: true,
            ..Default::default()
        };
        assert_eq!(
            keys(&compare(&s, &t, &all)),
            vec![
                "differs: column c: comment",
                "differs: column c: owner",
                "differs: column c: position"
            ]
        );
    }

    #[test]
    fn allow_splits_and_reports_unmatched_entries() {
        let s = vec![def(ObjectKind::Column, "c", None, &[])];
        let c = compare(&s, &[], &CompareOptions::default());
        let allow =
            vec!["only in source: column c".to_string(), "differs: column d: type".to_string()];
        let (allowed, rest, unmatched) = apply_allow(&c.differences, &allow);
        assert_eq!(allowed.len(), 1);
        assert!(rest.is_empty());
        assert_eq!(unmatched, vec!["differs: column d: type".to_string()]);
    }

    #[test]
    fn filter_keeps_selected_tables_and_schemas() {
        let mut other = def(ObjectKind::Column, "public.\"U\".a", None, &[]);
        other.table = Some(TableName::new("public", "U"));
        let mut func = def(ObjectKind::Function, "audit.f()", None, &[]);
        func.table = None;
        func.schema = "audit".into();
        let defs = vec![def(ObjectKind::Column, "public.\"T\".a", None, &[]), other, func];
        let sel = Selection::parse(&["T".into()], &[]).unwrap();
        let kept = filter(defs.clone(), &sel, &[]);
        assert_eq!(
            kept.iter().map(|d| d.name.as_str()).collect::<Vec<_>>(),
            vec!["public.\"T\".a", "audit.f()"]
        );
        let kept = filter(defs, &Selection::default(), &["audit".into()]);
        assert_eq!(kept.len(), 1);
    }
}
