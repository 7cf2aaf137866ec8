//! The catalog queries behind [`super::read_definitions`]: one per kind of
//! object, each returning rows of the same shape:
//!
//! `kind, schema, table_schema, table_name, name, unnamed, attributes`
//!
//! where `name` and `unnamed` are quoted by the server (`format('%I.%I')`),
//! `table_*` is the table a `-t` pattern is matched against (NULL outside
//! tables), and `attributes` is a JSON object of text values (NULL when a
//! value does not apply). Every column and function used exists in
//! PostgreSQL 13 to 17 (`pg_trigger.tgparentid` is the newest, from 13).

/// A user schema: not the server's own.
const USER_SCHEMA: &str = "n.nspname <> 'information_schema' AND n.nspname !~ '^pg_'";

/// The object `oid` in `catalog` is no member of an extension.
fn not_in_extension(catalog: &str, oid: &str) -> String {
    format!(
        "NOT EXISTS (SELECT 1 FROM pg_depend e WHERE e.classid = '{catalog}'::regclass \
         AND e.objid = {oid} AND e.deptype = 'e')"
    )
}

/// A user table `c` (ordinary or partitioned, partitions included) in schema
/// `n`, with `rn.nspname, r.relname` its partition tree's root (itself
/// when it is none).
fn user_table_join(relkinds: &str) -> String {
    format!(
        "JOIN pg_namespace n ON n.oid = c.relnamespace
         JOIN pg_class r ON r.oid = coalesce(pg_partition_root(c.oid), c.oid)
         JOIN pg_namespace rn ON rn.oid = r.relnamespace
         WHERE c.relkind IN ({relkinds}) AND {USER_SCHEMA} AND {ext}",
        ext = not_in_extension("pg_class", "c.oid")
    )
}

/// The owner, privileges and comment of an object, as JSON pairs.
fn common(owner: &str, acl: &str, oid: &str, catalog: &str) -> String {
    format!(
        "'owner', pg_get_userbyid({owner}), 'privileges', {acl}::text, \
         'comment', obj_description({oid}, '{catalog}')"
    )
}

fn schemas() -> String {
    format!(
        "SELECT 'schema', n.nspname::text, NULL::text, NULL::text, format('%I', n.nspname), NULL::text,
                jsonb_build_object({c})::text
         FROM pg_namespace n
         WHERE {USER_SCHEMA} AND {ext}",
        c = common("n.nspowner", "n.nspacl", "n.oid", "pg_namespace"),
        ext = not_in_extension("pg_namespace", "n.oid")
    )
}

fn extensions() -> String {
    "SELECT 'extension', n.nspname::text, NULL::text, NULL::text, format('%I', x.extname), NULL::text,
            jsonb_build_object('version', x.extversion, 'schema', format('%I', n.nspname),
                               'owner', pg_get_userbyid(x.extowner))::text
     FROM pg_extension x JOIN pg_namespace n ON n.oid = x.extnamespace"
        .to_string()
}

fn tables() -> String {
    format!(
        "SELECT 'table', n.nspname::text, rn.nspname::text, r.relname::text,
                format('%I.%I', n.nspname, c.relname), NULL::text,
                jsonb_build_object(
                  'kind', CASE c.relkind WHEN 'p' THEN 'partitioned table' ELSE 'table' END,
                  'persistence', CASE c.relpersistence WHEN 'u' THEN 'unlogged' ELSE 'logged' END,
                  'partition key', CASE WHEN c.relkind = 'p' THEN pg_get_partkeydef(c.oid) END,
                  'partition of', CASE WHEN c.relispartition THEN
                      (SELECT i.inhparent::regclass::text FROM pg_inherits i WHERE i.inhrelid = c.oid) END,
                  'partition bound', CASE WHEN c.relispartition THEN pg_get_expr(c.relpartbound, c.oid) END,
                  'inherits', CASE WHEN NOT c.relispartition THEN
                      (SELECT string_agg(i.inhparent::regclass::text, ', ' ORDER BY i.inhseqno)
                       FROM pg_inherits i WHERE i.inhrelid = c.oid) END,
                  'row level security', CASE WHEN NOT c.relrowsecurity THEN 'disabled'
                      WHEN c.relforcerowsecurity THEN 'enabled, forced' ELSE 'enabled' END,
                  'options', array_to_string(c.reloptions, ', '),
                  {c})::text
         FROM pg_class c {join}",
        c = common("c.relowner", "c.relacl", "c.oid", "pg_class"),
        join = user_table_join("'r', 'p'")
    )
}

fn columns() -> String {
    format!(
        "SELECT 'column', n.nspname::text, rn.nspname::text, r.relname::text,
                format('%I.%I.%I', n.nspname, c.relname, a.attname), NULL::text,
                jsonb_build_object(
                  'type', format_type(a.atttypid, a.atttypmod),
                  'nullability', CASE WHEN a.attnotnull THEN 'not null' ELSE 'nullable' END,
                  'default', CASE WHEN a.attgenerated = '' THEN pg_get_expr(d.adbin, d.adrelid) END,
                  'generated', CASE WHEN a.attgenerated <> '' THEN pg_get_expr(d.adbin, d.adrelid) END,
                  'identity', CASE a.attidentity WHEN 'a' THEN 'always' WHEN 'd' THEN 'by default' END,
                  'collation', CASE WHEN a.attcollation <> t.typcollation THEN
                      (SELECT format('%I.%I', cn.nspname, co.collname) FROM pg_collation co
                       JOIN pg_namespace cn ON cn.oid = co.collnamespace WHERE co.oid = a.attcollation) END,
                  'position', (row_number() OVER (PARTITION BY a.attrelid ORDER BY a.attnum))::text,
                  'privileges', a.attacl::text,
                  'comment', col_description(a.attrelid, a.attnum))::text
         FROM pg_attribute a
         JOIN pg_class c ON c.oid = a.attrelid
         JOIN pg_type t ON t.oid = a.atttypid
         LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
         {join} AND NOT c.relispartition AND a.attnum > 0 AND NOT a.attisdropped",
        join = user_table_join("'r', 'p'")
    )
}

fn constraints() -> String {
    format!(
        "SELECT CASE k.contype WHEN 'p' THEN 'primary key' WHEN 'u' THEN 'unique'
                  WHEN 'f' THEN 'foreign key' WHEN 'c' THEN 'check' ELSE 'exclusion' END,
                n.nspname::text, rn.nspname::text, r.relname::text,
                format('%I.%I.%I', n.nspname, c.relname, k.conname),
                format('%I.%I', n.nspname, c.relname) || ' ' || pg_get_constraintdef(k.oid),
                jsonb_build_object('definition', pg_get_constraintdef(k.oid),
                                   'comment', obj_description(k.oid, 'pg_constraint'))::text
         FROM pg_constraint k
         JOIN pg_class c ON c.oid = k.conrelid
         {join} AND k.contype IN ('p', 'u', 'f', 'c', 'x') AND k.conparentid = 0",
        join = user_table_join("'r', 'p'")
    )
}

/// Indexes that no constraint owns (those go with their constraint), not
/// the partitions of a partitioned index. The name is cut out of
/// `pg_get_indexdef` (`CREATE INDEX ON ...`) so that, unless names count,
/// indexes are matched by what they index.
fn indexes() -> String {
    format!(
        "SELECT 'index', n.nspname::text, rn.nspname::text, r.relname::text,
                format('%I.%I', n.nspname, ic.relname), u.def,
                jsonb_build_object('definition', u.def,
                                   'validity', CASE WHEN NOT i.indisvalid THEN 'invalid' END,
                                   'comment', obj_description(ic.oid, 'pg_class'))::text
         FROM pg_index i
         JOIN pg_class ic ON ic.oid = i.indexrelid
         JOIN pg_class c ON c.oid = i.indrelid
         CROSS JOIN LATERAL (SELECT replace(pg_get_indexdef(i.indexrelid),
                                            'INDEX ' || quote_ident(ic.relname) || ' ON ',
                                            'INDEX ON ') AS def) u
         {join} AND NOT ic.relispartition
           AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid
                           AND k.conrelid = i.indrelid AND k.contype IN ('p', 'u', 'x'))",
        join = user_table_join("'r', 'p', 'm'")
    )
}

fn triggers() -> String {
    format!(
        "SELECT 'trigger', n.nspname::text, rn.nspname::text, r.relname::text,
                format('%I.%I.%I', n.nspname, c.relname, g.tgname), NULL::text,
                jsonb_build_object('definition', pg_get_triggerdef(g.oid),
                                   'enabled', CASE g.tgenabled WHEN 'O' THEN 'enabled'
                                       WHEN 'D' THEN 'disabled' WHEN 'R' THEN 'enabled on replica only'
                                       ELSE 'enabled always' END,
                                   'comment', obj_description(g.oid, 'pg_trigger'))::text
         FROM pg_trigger g
         JOIN pg_class c ON c.oid = g.tgrelid
         {join} AND NOT g.tgisinternal AND g.tgparentid = 0",
        join = user_table_join("'r', 'p', 'v', 'm', 'f'")
    )
}

fn policies() -> String {
    format!(
        "SELECT 'policy', n.nspname::text, rn.nspname::text, r.relname::text,
                format('%I.%I.%I', n.nspname, c.relname, p.polname), NULL::text,
                jsonb_build_object(
                  'command', CASE p.polcmd WHEN 'r' THEN 'SELECT' WHEN 'a' THEN 'INSERT'
                      WHEN 'w' THEN 'UPDATE' WHEN 'd' THEN 'DELETE' ELSE 'ALL' END,
                  'permissive', CASE WHEN p.polpermissive THEN 'permissive' ELSE 'restrictive' END,
                  'roles', (SELECT string_agg(x.role, ', ' ORDER BY x.role) FROM
                      (SELECT CASE WHEN o = 0 THEN 'public' ELSE quote_ident(pg_get_userbyid(o)) END
                       FROM unnest(p.polroles) o) x(role)),
                  'using', pg_get_expr(p.polqual, p.polrelid),
                  'with check', pg_get_expr(p.polwithcheck, p.polrelid),
                  'comment', obj_description(p.oid, 'pg_policy'))::text
         FROM pg_policy p
         JOIN pg_class c ON c.oid = p.polrelid
         {join}",
        join = user_table_join("'r', 'p'")
    )
}

/// Sequences with their parameters and owning column, not their position.
fn sequences() -> String {
    format!(
        "SELECT 'sequence', n.nspname::text, NULL::text, NULL::text,
                format('%I.%I', n.nspname, c.relname), NULL::text,
                jsonb_build_object(
                  'type', format_type(s.seqtypid, NULL),
                  'start', s.seqstart::text, 'increment', s.seqincrement::text,
                  'minimum', s.seqmin::text, 'maximum', s.seqmax::text, 'cache', s.seqcache::text,
                  'cycle', CASE WHEN s.seqcycle THEN 'cycle' ELSE 'no cycle' END,
                  'owned by', (SELECT format('%s.%I', d.refobjid::regclass, a.attname)
                      FROM pg_depend d JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
                      WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
                        AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i')
                        AND d.refobjsubid > 0 LIMIT 1),
                  {c})::text
         FROM pg_sequence s
         JOIN pg_class c ON c.oid = s.seqrelid
         JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE {USER_SCHEMA} AND {ext}",
        c = common("c.relowner", "c.relacl", "c.oid", "pg_class"),
        ext = not_in_extension("pg_class", "c.oid")
    )
}

fn views() -> String {
    format!(
        "SELECT CASE c.relkind WHEN 'v' THEN 'view' ELSE 'materialized view' END,
                n.nspname::text, NULL::text, NULL::text, format('%I.%I', n.nspname, c.relname), NULL::text,
                jsonb_build_object('definition', pg_get_viewdef(c.oid),
                                   'options', array_to_string(c.reloptions, ', '), {c})::text
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE c.relkind IN ('v', 'm') AND {USER_SCHEMA} AND {ext}",
        c = common("c.relowner", "c.relacl", "c.oid", "pg_class"),
        ext = not_in_extension("pg_class", "c.oid")
    )
}

/// Functions and procedures (not aggregates): `pg_get_functiondef` holds the
/// signature, result, language, volatility, strictness, security definer,
/// settings and body.
fn functions() -> String {
    format!(
        "SELECT CASE p.prokind WHEN 'p' THEN 'procedure' ELSE 'function' END,
                n.nspname::text, NULL::text, NULL::text,
                format('%I.%I(%s)', n.nspname, p.proname, pg_get_function_identity_arguments(p.oid)),
                NULL::text,
                jsonb_build_object('definition', pg_get_functiondef(p.oid), {c})::text
         FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
         WHERE p.prokind IN ('f', 'p', 'w') AND {USER_SCHEMA} AND {ext}",
        c = common("p.proowner", "p.proacl", "p.oid", "pg_proc"),
        ext = not_in_extension("pg_proc", "p.oid")
    )
}

/// Enums (labels in order), domains (base type, nullability, default, check
/// constraints) and composite types (attributes in order).
fn types() -> String {
    format!(
        "SELECT CASE t.typtype WHEN 'e' THEN 'enum' WHEN 'd' THEN 'domain' ELSE 'composite type' END,
                n.nspname::text, NULL::text, NULL::text, format('%I.%I', n.nspname, t.typname), NULL::text,
                jsonb_build_object(
                  'labels', CASE WHEN t.typtype = 'e' THEN
                      (SELECT string_agg(quote_literal(e.enumlabel), ', ' ORDER BY e.enumsortorder)
                       FROM pg_enum e WHERE e.enumtypid = t.oid) END,
                  'base type', CASE WHEN t.typtype = 'd' THEN format_type(t.typbasetype, t.typtypmod) END,
                  'nullability', CASE WHEN t.typtype = 'd' THEN
                      CASE WHEN t.typnotnull THEN 'not null' ELSE 'nullable' END END,
                  'default', CASE WHEN t.typtype = 'd' THEN pg_get_expr(t.typdefaultbin, 0) END,
                  'constraints', CASE WHEN t.typtype = 'd' THEN
                      (SELECT string_agg(x.def, ', ' ORDER BY x.def) FROM
                         (SELECT pg_get_constraintdef(k.oid) FROM pg_constraint k
                          WHERE k.contypid = t.oid AND k.contype = 'c') x(def)) END,
                  'attributes', CASE WHEN t.typtype = 'c' THEN
                      (SELECT string_agg(format('%I %s', a.attname, format_type(a.atttypid, a.atttypmod)),
                                         ', ' ORDER BY a.attnum)
                       FROM pg_attribute a WHERE a.attrelid = t.typrelid AND a.attnum > 0
                         AND NOT a.attisdropped) END,
                  {c})::text
         FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
         WHERE (t.typtype IN ('e', 'd')
                OR (t.typtype = 'c' AND EXISTS (SELECT 1 FROM pg_class tc
                                                WHERE tc.oid = t.typrelid AND tc.relkind = 'c')))
           AND {USER_SCHEMA} AND {ext}",
        c = common("t.typowner", "t.typacl", "t.oid", "pg_type"),
        ext = not_in_extension("pg_type", "t.oid")
    )
}

/// Every query, with what it reads (for error messages).
pub fn all() -> Vec<(&'static str, String)> {
    vec![
        ("schemas", schemas()),
        ("extensions", extensions()),
        ("tables", tables()),
        ("columns", columns()),
        ("constraints", constraints()),
        ("indexes", indexes()),
        ("triggers", triggers()),
        ("policies", policies()),
        ("sequences", sequences()),
        ("views", views()),
        ("functions", functions()),
        ("types", types()),
    ]
}
