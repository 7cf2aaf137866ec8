//! Table patterns (`-t` / `-T`): parsing, matching, and choosing tables.
//!
//! A pattern is `schema.table` or `table` (any schema), matched case-sensitively
//! against the real names; `*` and `?` are wildcards. The pattern is split at
//! dots outside double quotes, and a double-quoted part is literal (wildcards and
//! dots included, `""` is one quote). Pure code: no database here.

use crate::error::{Error, Result};
use crate::ident::TableName;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Literal(char),
    /// `*`: any run of characters, possibly empty.
    Any,
    /// `?`: exactly one character.
    One,
}

/// One part (schema or table) of a pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Part(Vec<Token>);

impl Part {
    fn matches(&self, text: &str) -> bool {
        let chars: Vec<char> = text.chars().collect();
        wildcard_match(&self.0, &chars)
    }

    fn is_literal(&self) -> bool {
        self.0.iter().all(|t| matches!(t, Token::Literal(_)))
    }
}

/// Iterative wildcard matching with single backtracking point (linear for
/// patterns with one `*`, never exponential).
fn wildcard_match(pattern: &[Token], text: &[char]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(Token::Literal(c)) if *c == text[t] => {
                p += 1;
                t += 1;
            }
            Some(Token::One) => {
                p += 1;
                t += 1;
            }
            Some(Token::Any) => {
                star = Some((p, t));
                p += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    p = sp + 1;
                    t = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|t| *t == Token::Any)
}

/// A parsed table pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    /// The text the user wrote, for messages.
    pub text: String,
    schema: Option<Part>,
    table: Part,
}

impl Pattern {
    /// Parses a pattern.
    ///
    /// # Errors
    /// A usage error for an unterminated quote, an empty part, or more than two parts.
    pub fn parse(text: &str) -> Result<Pattern> {
        let bad = |why: &str| {
            Error::usage_hint(
                format!("invalid table pattern '{text}': {why}"),
                "write schema.table or table; double-quote a part to take it literally, e.g. public.\"my.table\"",
            )
        };
        let mut parts: Vec<Vec<Token>> = vec![Vec::new()];
        let mut chars = text.chars().peekable();
        let mut in_quotes = false;
        let mut part_has_content = false;
        let mut contents = vec![false];
        while let Some(c) = chars.next() {
            if in_quotes {
                if c == '"' {
                    if chars.peek() == Some(&'"') {
                        chars.next();
                        parts.last_mut().expect("one part").push(Token::Literal('"'));
                    } else {
                        in_quotes = false;
                    }
                } else {
                    parts.last_mut().expect("one part").push(Token::Literal(c));
                }
                continue;
            }
            match c {
                '"' => in_quotes = true,
                '.' => {
                    *contents.last_mut().expect("one part") = part_has_content;
                    parts.push(Vec::new());
                    contents.push(false);
                    part_has_content = false;
                    continue;
                }
                '*' => parts.last_mut().expect("one part").push(Token::Any),
                '?' => parts.last_mut().expect("one part").push(Token::One),
                c => parts.last_mut().expect("one part").push(Token::Literal(c)),
            }
            part_has_content = true;
        }
        *contents.last_mut().expect("one part") = part_has_content;
        if in_quotes {
            return Err(bad("unterminated double quote"));
        }
        if parts.len() > 2 {
            return Err(bad(
                "more than one dot outside double quotes (database.schema.table is not supported)",
            ));
        }
        if contents.iter().any(|c| !c) {
            return Err(bad("empty name"));
        }
        let table = Part(parts.pop().expect("one part"));
        let schema = parts.pop().map(Part);
        Ok(Pattern { text: text.to_string(), schema, table })
    }

    /// Whether the pattern matches this table's real names.
    pub fn matches(&self, name: &TableName) -> bool {
        self.schema.as_ref().is_none_or(|s| s.matches(&name.schema))
            && self.table.matches(&name.name)
    }

    /// Whether the pattern matches when case is ignored (for the "did you mean" hint).
    fn matches_ignoring_case(&self, name: &TableName) -> bool {
        let lower = |p: &Part| {
            Part(
                p.0.iter()
                    .map(|t| match t {
                        Token::Literal(c) => Token::Literal(c.to_lowercase().next().unwrap_or(*c)),
                        t => t.clone(),
                    })
                    .collect(),
            )
        };
        let schema_ok =
            self.schema.as_ref().is_none_or(|s| lower(s).matches(&name.schema.to_lowercase()));
        schema_ok && lower(&self.table).matches(&name.name.to_lowercase())
    }

    /// Whether the pattern names exactly one table (no wildcards).
    pub fn is_literal(&self) -> bool {
        self.table.is_literal() && self.schema.as_ref().is_none_or(Part::is_literal)
    }
}

/// Include and exclude patterns, parsed.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    pub include: Vec<Pattern>,
    pub exclude: Vec<Pattern>,
}

impl Selection {
    /// Parses `-t` and `-T` values.
    ///
    /// # Errors
    /// A usage error for the first invalid pattern.
    pub fn parse(include: &[String], exclude: &[String]) -> Result<Selection> {
        Ok(Selection {
            include: include.iter().map(|p| Pattern::parse(p)).collect::<Result<_>>()?,
            exclude: exclude.iter().map(|p| Pattern::parse(p)).collect::<Result<_>>()?,
        })
    }

    /// Chooses among `names` (in their order): those matched by any include
    /// pattern (all when there is none) and by no exclude pattern.
    ///
    /// `partitions` lists `(partition, root)` so that a pattern naming a
    /// partition gets a hint to select its parent instead.
    ///
    /// # Errors
    /// A usage error when any include pattern matches nothing, naming every
    /// such pattern, with a case-insensitive suggestion where one exists. An
    /// exclude pattern that matches nothing is fine, as with pg_dump's
    /// `--exclude-table`: there is nothing to leave out.
    pub fn choose<'a>(
        &self,
        names: &'a [TableName],
        partitions: &[(TableName, TableName)],
        what: &str,
    ) -> Result<Vec<&'a TableName>> {
        let mut problems = Vec::new();
        for p in &self.include {
            if !names.iter().any(|n| p.matches(n)) {
                problems.push(no_match_message(p, names, partitions, what));
            }
        }
        if !problems.is_empty() {
            let shows = if what == "in the backup" {
                "`pgbarge verify DIR` lists the backup's tables (so does its manifest.json)"
            } else {
                "`pgbarge list -d CONN` lists the database's tables"
            };
            return Err(Error::usage_hint(
                problems.join("\n  "),
                format!(
                    "patterns are schema.table or table, matched case-sensitively against the real names; {shows}"
                ),
            ));
        }
        Ok(names.iter().filter(|n| self.picks(n)).collect())
    }

    /// Whether the selection picks this name: matched by an include pattern
    /// (or there is none) and by no exclude pattern.
    pub fn picks(&self, name: &TableName) -> bool {
        (self.include.is_empty() || self.include.iter().any(|p| p.matches(name)))
            && !self.exclude.iter().any(|p| p.matches(name))
    }
}

fn no_match_message(
    p: &Pattern,
    names: &[TableName],
    partitions: &[(TableName, TableName)],
    what: &str,
) -> String {
    let mut msg = format!("no table {what} matches pattern '{}'", p.text);
    let similar: Vec<String> = names
        .iter()
        .filter(|n| p.matches_ignoring_case(n))
        .take(5)
        .map(|n| n.to_string())
        .collect();
    if !similar.is_empty() {
        msg.push_str(&format!(
            "; names are case-sensitive: did you mean {}?",
            similar.iter().map(|s| format!("'{s}'")).collect::<Vec<_>>().join(", ")
        ));
        return msg;
    }
    if let Some((part, root)) = partitions.iter().find(|(part, _)| p.matches(part)) {
        msg.push_str(&format!(
            "; {part} is a partition of {root}: select the partitioned table, its rows include every partition's"
        ));
    }
    msg
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str, n: &str) -> TableName {
        TableName::new(s, n)
    }

    fn m(pattern: &str, s: &str, n: &str) -> bool {
        Pattern::parse(pattern).unwrap().matches(&t(s, n))
    }

    #[test]
    fn plain_and_schema_qualified() {
        assert!(m("Role", "public", "Role"));
        assert!(m("Role", "other", "Role"));
        assert!(!m("role", "public", "Role"));
        assert!(m("public.Role", "public", "Role"));
        assert!(!m("app.Role", "public", "Role"));
        assert!(m("\"Role\"", "public", "Role"));
        assert!(m("\"public\".\"Role\"", "public", "Role"));
    }

    #[test]
    fn wildcards() {
        assert!(m("Role*", "public", "RolePermission"));
        assert!(m("Role*", "public", "Role"));
        assert!(m("*.User?ermission", "x", "UserPermission"));
        assert!(!m("Role?", "public", "Role"));
        assert!(m("*", "public", "anything"));
        assert!(m("a*b*c", "s", "aXXbYYc"));
        assert!(!m("a*b*c", "s", "aXXbYY"));
    }

    #[test]
    fn quoted_parts_are_literal() {
        assert!(m("public.\"my.table\"", "public", "my.table"));
        assert!(Pattern::parse("public.my.table").is_err());
        assert!(m("\"a*b\"", "s", "a*b"));
        assert!(!m("\"a*b\"", "s", "aXb"));
        assert!(m("\"say \"\"hi\"\"\"", "s", "say \"hi\""));
        assert!(m("\"my.schema\".t", "my.schema", "t"));
        assert!(m("x\"Y.z\"*", "s", "xY.zzz"));
    }

    #[test]
    fn names_with_spaces_commas_unicode_and_63_bytes() {
        assert!(m("\"with space\"", "public", "with space"));
        assert!(m("with space", "public", "with space"));
        assert!(m("a,b", "public", "a,b"));
        assert!(m("Überstunden", "public", "Überstunden"));
        assert!(m("日本?", "public", "日本語"));
        let long = "x".repeat(63);
        assert!(m(&long, "public", &long));
        assert!(!m(&long, "public", &"x".repeat(62)));
    }

    #[test]
    fn invalid_patterns() {
        assert!(Pattern::parse("\"open").is_err());
        assert!(Pattern::parse("a.b.c").is_err());
        assert!(Pattern::parse(".t").is_err());
        assert!(Pattern::parse("s.").is_err());
        assert!(Pattern::parse("").is_err());
        assert!(Pattern::parse("\"\"").is_ok());
    }

    #[test]
    fn choose_includes_excludes_and_reports_no_match_with_suggestion() {
        let names = vec![t("public", "Role"), t("public", "RolePermission"), t("public", "User")];
        let s = Selection::parse(&["Role*".into()], &["RolePermission".into()]).unwrap();
        let chosen = s.choose(&names, &[], "in the database").unwrap();
        assert_eq!(chosen, vec![&names[0]]);

        let s = Selection::parse(&["role".into()], &[]).unwrap();
        let err = s.choose(&names, &[], "in the database").unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("'role'"), "{msg}");
        assert!(msg.contains("case-sensitive"), "{msg}");
        assert!(msg.contains("public.\"Role\""), "{msg}");
        assert_eq!(err.class(), crate::error::Class::Usage);

        let all = Selection::default().choose(&names, &[], "x").unwrap();
        assert_eq!(all.len(), 3);
    }

    #[test]
    fn an_exclude_that_matches_nothing_is_fine_an_include_is_not() {
        let names = vec![t("public", "Role"), t("public", "User")];
        let s = Selection::parse(&[], &["public.*_old".into()]).unwrap();
        assert_eq!(s.choose(&names, &[], "in the database").unwrap().len(), 2);
        let s = Selection::parse(&["Nope".into()], &[]).unwrap();
        assert!(s.choose(&names, &[], "in the database").is_err());
    }

    #[test]
    fn partition_pattern_hints_at_parent() {
        let names = vec![t("public", "events")];
        let parts = vec![(t("public", "events_2024"), t("public", "events"))];
        let s = Selection::parse(&["events_2024".into()], &[]).unwrap();
        let msg = s.choose(&names, &parts, "in the database").unwrap_err().to_string();
        assert!(msg.contains("partition of public.events"), "{msg}");
    }
}
