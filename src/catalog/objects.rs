//! What a database holds outside the system: its user schemas and the
//! objects in them, named the way pg_dump's table of contents names them
//! (`-- Name: f(integer); Type: FUNCTION; Schema: public`), so they can be
//! compared with a backup's schema files. `restore --clean` lists them,
//! checks it may drop them, and drops the schemas.

use std::collections::BTreeSet;

use crate::conn::session::Session;
use crate::error::Result;

/// One object: a schema, or something in one. Members of extensions are
/// left out (the extension stands for them), as are parts that go with
/// their table (indexes, constraints, sequences owned by a column are not;
/// they are listed as pg_dump lists them).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct DbObject {
    /// pg_dump's word for it: `SCHEMA`, `TABLE`, `VIEW`, `FUNCTION`, ...
    pub kind: String,
    /// The schema it lives in (a schema's own name for `SCHEMA`).
    pub schema: String,
    /// As pg_dump's table of contents writes it: a function with its
    /// argument types, a trigger as `table trigger`.
    pub name: String,
    pub owner: String,
    /// As a person reads it, names quoted as SQL needs: `public."Order"`,
    /// `public.f(integer)`, `"Order_touch" ON public."Order"`.
    pub display: String,
    /// Whether the current user may drop it: a member of its owner's role.
    pub may_drop: bool,
}

impl DbObject {
    /// `TABLE public.orders`, `SCHEMA audit`.
    pub fn label(&self) -> String {
        format!("{} {}", self.kind, self.display)
    }

    /// The key it is matched on against a backup's schema files.
    pub fn key(&self) -> (String, String, String) {
        (self.kind.clone(), self.schema.clone(), self.name.clone())
    }
}

/// Schemas the server itself owns: never dropped, never listed.
const SYSTEM_SCHEMAS: &str = "n.nspname NOT LIKE 'pg\\_%' AND n.nspname <> 'information_schema'";

/// Every user schema of the connected database and the objects in it,
/// ordered by schema, kind and name.
///
/// # Errors
/// The server's error.
pub async fn user_objects(session: &Session) -> Result<Vec<DbObject>> {
    let not_extension_member = |catalog: &str, oid: &str| {
        format!(
            "NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = '{catalog}'::regclass \
             AND d.objid = {oid} AND d.deptype = 'e')"
        )
    };
    let sql = format!(
        "WITH s AS (SELECT n.oid, n.nspname FROM pg_namespace n WHERE {SYSTEM_SCHEMAS}) \
         SELECT 'SCHEMA', n.nspname, n.nspname, n.nspowner::regrole::text, \
                pg_has_role(current_user, n.nspowner, 'MEMBER'), format('%I', n.nspname) \
           FROM pg_namespace n WHERE {SYSTEM_SCHEMAS} \
         UNION ALL \
         SELECT CASE c.relkind WHEN 'r' THEN 'TABLE' WHEN 'p' THEN 'TABLE' WHEN 'v' THEN 'VIEW' \
                  WHEN 'm' THEN 'MATERIALIZED VIEW' WHEN 'S' THEN 'SEQUENCE' \
                  WHEN 'f' THEN 'FOREIGN TABLE' ELSE 'TYPE' END, \
                s.nspname, c.relname, c.relowner::regrole::text, \
                pg_has_role(current_user, c.relowner, 'MEMBER'), format('%I.%I', s.nspname, c.relname) \
           FROM pg_class c JOIN s ON s.oid = c.relnamespace \
          WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f', 'c') AND {class} \
         UNION ALL \
         SELECT CASE p.prokind WHEN 'p' THEN 'PROCEDURE' WHEN 'a' THEN 'AGGREGATE' \
                  ELSE 'FUNCTION' END, \
                s.nspname, p.proname || '(' || oidvectortypes(p.proargtypes) || ')', \
                p.proowner::regrole::text, pg_has_role(current_user, p.proowner, 'MEMBER'), \
                format('%I.%I(%s)', s.nspname, p.proname, oidvectortypes(p.proargtypes)) \
           FROM pg_proc p JOIN s ON s.oid = p.pronamespace WHERE {proc} \
         UNION ALL \
         SELECT CASE t.typtype WHEN 'd' THEN 'DOMAIN' ELSE 'TYPE' END, s.nspname, t.typname, \
                t.typowner::regrole::text, pg_has_role(current_user, t.typowner, 'MEMBER'), \
                format('%I.%I', s.nspname, t.typname) \
           FROM pg_type t JOIN s ON s.oid = t.typnamespace \
          WHERE t.typtype IN ('e', 'd', 'r', 'b') AND t.typelem = 0 AND {typ} \
         UNION ALL \
         SELECT 'EXTENSION', s.nspname, e.extname, e.extowner::regrole::text, \
                pg_has_role(current_user, e.extowner, 'MEMBER'), format('%I', e.extname) \
           FROM pg_extension e JOIN s ON s.oid = e.extnamespace \
         UNION ALL \
         SELECT 'TRIGGER', s.nspname, c.relname || ' ' || g.tgname, c.relowner::regrole::text, \
                pg_has_role(current_user, c.relowner, 'MEMBER'), \
                format('%I ON %I.%I', g.tgname, s.nspname, c.relname) \
           FROM pg_trigger g JOIN pg_class c ON c.oid = g.tgrelid JOIN s ON s.oid = c.relnamespace \
          WHERE NOT g.tgisinternal AND {trigger} \
         ORDER BY 2, 1, 3",
        class = not_extension_member("pg_class", "c.oid"),
        proc = not_extension_member("pg_proc", "p.oid"),
        typ = not_extension_member("pg_type", "t.oid"),
        trigger = not_extension_member("pg_class", "c.oid"),
    );
    let rows = session
        .request(session.query(sql.as_str(), &[]), "cannot list the database's schemas")
        .await?;
    Ok(rows
        .iter()
        .map(|r| DbObject {
            kind: r.get(0),
            schema: r.get(1),
            name: r.get(2),
            owner: r.get(3),
            may_drop: r.get(4),
            display: r.get(5),
        })
        .collect())
}

/// The objects a pg_dump plain-format script creates, read from its table
/// of contents comments (`-- Name: X; Type: T; Schema: S; Owner: O`), as
/// `(type, schema, name)`; a schema's own entry has schema `-`, and is keyed
/// here by its name.
pub fn dumped_objects(sql: &str) -> BTreeSet<(String, String, String)> {
    let mut out = BTreeSet::new();
    for line in sql.lines() {
        let Some(rest) = line.strip_prefix("-- Name: ") else { continue };
        // The name comes first and may hold anything (a function's argument
        // list); the labelled fields follow it.
        let Some(at) = rest.find("; Type: ") else { continue };
        let name = rest[..at].to_string();
        let (mut kind, mut schema) = (None, None);
        for field in rest[at + 2..].split("; ") {
            if let Some(t) = field.strip_prefix("Type: ") {
                kind = Some(t.to_string());
            } else if let Some(s) = field.strip_prefix("Schema: ") {
                schema = Some(s.to_string());
            }
        }
        if let (Some(kind), Some(schema)) = (kind, schema) {
            let schema = if kind == "SCHEMA" { name.clone() } else { schema };
            out.insert((kind, schema, name));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dumped_objects_are_read_from_the_table_of_contents() {
        let sql = "--\n-- Name: audit; Type: SCHEMA; Schema: -; Owner: app\n--\n\
                   CREATE SCHEMA audit;\n\
                   -- Name: f(integer, text); Type: FUNCTION; Schema: public; Owner: app\n\
                   -- Name: t; Type: TABLE; Schema: audit; Owner: app\n\
                   -- Name: t t_touch; Type: TRIGGER; Schema: audit; Owner: app\n\
                   -- Name: -- not a TOC line\n";
        let got: Vec<_> = dumped_objects(sql).into_iter().collect();
        let k = |a: &str, b: &str, c: &str| (a.to_string(), b.to_string(), c.to_string());
        assert_eq!(
            got,
            vec![
                k("FUNCTION", "public", "f(integer, text)"),
                k("SCHEMA", "audit", "audit"),
                k("TABLE", "audit", "t"),
                k("TRIGGER", "audit", "t t_touch"),
            ]
        );
    }
}
