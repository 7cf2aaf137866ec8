//! `pgbarge list`: selection rules end to end, table and JSON output.

use crate::common::{cluster, pgbarge};

fn names_db(test: &str) -> (String, String) {
    let c = cluster();
    let db = c.create_db(test);
    c.psql(
        &db,
        r#"CREATE TABLE "Role" (id int PRIMARY KEY);
           CREATE TABLE "RolePermission" (role_id int REFERENCES "Role"(id), p text, PRIMARY KEY (role_id, p));
           CREATE TABLE "my.table" (x int);
           CREATE TABLE my (x int);
           CREATE SCHEMA other;
           CREATE TABLE other."Role" (id int);
           CREATE TABLE "role" (id int);
           CREATE TABLE measurements (id int, at date) PARTITION BY RANGE (at);
           CREATE TABLE measurements_2024 PARTITION OF measurements FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');"#,
    );
    let conn = c.conn(&db);
    (db, conn)
}

#[test]
fn table_pattern_is_case_sensitive_and_exact() {
    let c = cluster();
    let db = c.create_db("role_only");
    c.psql(
        &db,
        r#"CREATE TABLE "Role" (id int PRIMARY KEY); CREATE TABLE "RolePermission" (id int);"#,
    );
    let r = pgbarge(&["list", "-d", &c.conn(&db), "-t", "Role", "--json"], &[]);
    r.expect_code(0);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let names: Vec<&str> =
        v["tables"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(names, vec!["Role"]);

    let r = pgbarge(&["list", "-d", &c.conn(&db), "-t", "role"], &[]);
    r.expect_code(2);
    assert!(r.stderr.contains("no table in the database matches pattern 'role'"), "{}", r.stderr);
    assert!(r.stderr.contains("case-sensitive"), "{}", r.stderr);
    assert!(r.stderr.contains("did you mean 'public.\"Role\"'"), "{}", r.stderr);
}

#[test]
fn quoted_dotted_name_selects_only_that_table() {
    let (_db, conn) = names_db("dotted");
    let r = pgbarge(&["list", "-d", &conn, "-t", "public.\"my.table\"", "--json"], &[]);
    r.expect_code(0);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let t = v["tables"].as_array().unwrap();
    assert_eq!(t.len(), 1);
    assert_eq!(t[0]["name"], "my.table");
    assert_eq!(t[0]["qualified"], "public.\"my.table\"");
}

#[test]
fn schema_less_pattern_matches_every_schema_and_excludes_apply() {
    let (_db, conn) = names_db("schemas");
    let r = pgbarge(&["list", "-d", &conn, "-t", "Role*", "-T", "other.*", "--json"], &[]);
    r.expect_code(0);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let q: Vec<&str> =
        v["tables"].as_array().unwrap().iter().map(|t| t["qualified"].as_str().unwrap()).collect();
    assert_eq!(q, vec!["public.\"Role\"", "public.\"RolePermission\""]);
    let r = pgbarge(&["list", "-d", &conn, "-t", "\"Role\""], &[]);
    r.expect_code(0);
    assert!(r.stdout.contains("other.\"Role\""));
    assert!(r.stdout.contains("public.\"Role\""));
    assert!(!r.stdout.contains("public.role"));
}

#[test]
fn no_match_is_an_error_naming_every_pattern_and_partitions_hint_parent() {
    let (_db, conn) = names_db("nomatch");
    let r = pgbarge(
        &["list", "-d", &conn, "-t", "nothing_here", "-t", "measurements_2024", "-T", "zzz"],
        &[],
    );
    r.expect_code(2);
    assert!(r.stderr.contains("'nothing_here'"), "{}", r.stderr);
    // An exclude that matches nothing leaves nothing out; it is no error.
    assert!(!r.stderr.contains("'zzz'"), "{}", r.stderr);
    assert!(r.stderr.contains("partition of public.measurements"), "{}", r.stderr);
    assert!(r.stderr.contains("`pgbarge list -d CONN` lists"), "{}", r.stderr);
}

#[test]
fn an_exclude_matching_nothing_is_not_an_error() {
    let (_db, conn) = names_db("exclude_nothing");
    let r = pgbarge(&["list", "-d", &conn, "-T", "public.*_old"], &[]);
    r.expect_code(0);
    assert!(r.stdout.contains("public.\"Role\""), "{}", r.stdout);
}

#[test]
fn lists_in_load_order_with_details() {
    let (_db, conn) = names_db("details");
    let r = pgbarge(&["list", "-d", &conn], &[]);
    r.expect_code(0);
    let out = &r.stdout;
    assert!(out.starts_with("TABLE"), "{out}");
    let role = out.find("public.\"Role\" ").unwrap();
    let rp = out.find("public.\"RolePermission\"").unwrap();
    assert!(role < rp, "{out}");
    assert!(out.contains("partitioned (1 partition)"), "{out}");
    assert!(!out.contains("measurements_2024"), "{out}");
    assert!(out.contains("(role_id, p)"), "{out}");
    assert!(out.contains("7 tables"), "{out}");
}
