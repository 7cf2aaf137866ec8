//! `pgbarge sql` against a real server: the ERP DDL files run in order;
//! failures name file, line and column and what completed; meta-commands are
//! refused before anything runs; --single-transaction is all-or-nothing.

use std::path::Path;

use crate::common::{cluster, db_with, fixtures, pgbarge};

fn sql(db: &str, args: &[&str]) -> crate::common::Run {
    let conn = cluster().conn(db);
    let mut a = vec!["sql", "-d", &conn];
    a.extend(args);
    pgbarge(&a, &[])
}

fn file(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

fn tables(db: &str) -> String {
    cluster().psql(db, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
}

#[test]
fn the_erp_ddl_files_run_in_order() {
    let db = db_with("sq_erp", "erp/target.sql");
    let m = fixtures().join("erp/migrations");
    let files: Vec<String> = (1..=7)
        .map(|n| {
            let name = std::fs::read_dir(&m)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .find(|f| f.starts_with(&format!("0{n}-")))
                .unwrap();
            m.join(name).display().to_string()
        })
        .collect();
    let args: Vec<&str> = files.iter().map(String::as_str).collect();
    let r = sql(&db, &args);
    r.expect_code(0);
    assert!(r.stdout.contains("04-alter-columns.sql: "), "{}", r.stdout);
    assert_eq!(tables(&db), "13");
}

#[test]
fn a_failing_statement_is_located_and_what_completed_is_named() {
    let db = cluster().create_db("sq_fail");
    let t = tempfile::tempdir().unwrap();
    let a = file(t.path(), "a.sql", "CREATE TABLE a (id int);\n");
    let b = file(
        t.path(),
        "b.sql",
        "-- b\nCREATE TABLE b1 (id int);\nCREATE TABLE b2 (\n    id int,\n    x nosuchtype\n);\nCREATE TABLE b3 (id int);\n",
    );
    let r = sql(&db, &[&a, &b]);
    r.expect_code(3);
    assert!(
        r.stderr.contains(&format!("{b}:5:7: statement failed: CREATE TABLE b2 (")),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("type \"nosuchtype\" does not exist"), "{}", r.stderr);
    assert!(r.stderr.contains("SQLSTATE 42704"), "{}", r.stderr);
    assert!(r.stderr.contains(&format!("completed: {a}")), "{}", r.stderr);
    // As psql would: the statements before the failing one took effect.
    assert_eq!(tables(&db), "2");
}

#[test]
fn bodies_comments_and_the_files_own_transactions_work() {
    let db = cluster().create_db("sq_bodies");
    let t = tempfile::tempdir().unwrap();
    let f = file(
        t.path(),
        "f.sql",
        "/* header; */\nBEGIN;\nCREATE TABLE t (id int, note text DEFAULT 'a;b');\n\
         CREATE FUNCTION f() RETURNS trigger LANGUAGE plpgsql AS $fn$\nBEGIN\n  NEW.note := 'x;y'; -- ;\n  RETURN NEW;\nEND\n$fn$;\n\
         CREATE TRIGGER t_f BEFORE INSERT ON t FOR EACH ROW EXECUTE FUNCTION f();\nCOMMIT;\n\
         DO $$ BEGIN INSERT INTO t (id) VALUES (1); END $$;\n",
    );
    sql(&db, &[&f]).expect_code(0);
    assert_eq!(cluster().psql(&db, "SELECT note FROM t"), "x;y");
}

#[test]
fn meta_commands_and_single_transaction() {
    let db = cluster().create_db("sq_meta");
    let t = tempfile::tempdir().unwrap();
    let ok = file(t.path(), "ok.sql", "CREATE TABLE ok (id int);\n");
    let meta = file(t.path(), "meta.sql", "SELECT 1;\n\\i other.sql\n");
    let r = sql(&db, &[&ok, &meta]);
    r.expect_code(2);
    assert!(
        r.stderr.contains(&format!("{meta}: line 2: psql meta-command `\\i` is not supported")),
        "{}",
        r.stderr
    );
    assert_eq!(tables(&db), "0", "something ran before the check");

    let bad = file(t.path(), "bad.sql", "CREATE TABLE two (id int);\nSELECT 1/0;\n");
    let r = sql(&db, &["--single-transaction", &ok, &bad]);
    r.expect_code(3);
    assert!(r.stderr.contains("division by zero"), "{}", r.stderr);
    assert!(r.stderr.contains("everything was rolled back"), "{}", r.stderr);
    assert_eq!(tables(&db), "0");

    let tx = file(t.path(), "tx.sql", "BEGIN;\nCREATE TABLE x (id int);\nCOMMIT;\n");
    let r = sql(&db, &["-1", &ok, &tx]);
    r.expect_code(2);
    assert!(
        r.stderr.contains(&format!("{tx}:1:1: `BEGIN` controls the transaction")),
        "{}",
        r.stderr
    );
    sql(&db, &["--single-transaction", &ok]).expect_code(0);
    assert_eq!(tables(&db), "1");

    let r = sql(&db, &["/nonexistent.sql"]);
    r.expect_code(2);
    assert!(r.stderr.contains("/nonexistent.sql: no such file"), "{}", r.stderr);
}

/// Issue 16: `sql` shows what psql shows: each statement's rows as an
/// aligned table with `(N rows)`, and the server's notices, unless `-q`.
#[test]
fn results_and_notices_show_as_in_psql() {
    let db = crate::restore_command::migrated_target("sq_psql_like");
    let validate = fixtures().join("erp/migrations/07-validate.sql");
    let r = sql(&db, &[validate.to_str().unwrap()]);
    r.expect_code(0);
    let out = &r.stdout;
    assert!(
        out.contains(" tables_in_public\n------------------\n               13\n(1 row)\n"),
        "{out}"
    );
    assert!(out.lines().any(|l| l.starts_with(" AuditLog  ") && l.ends_with(" | t")), "{out}");
    assert!(out.contains("(13 rows)"), "{out}");
    assert!(out.contains("07-validate.sql: 9 statements"), "{out}");

    let t = tempfile::tempdir().unwrap();
    let f = file(
        t.path(),
        "notice.sql",
        "DO $$ BEGIN RAISE NOTICE 'hello %', 'there'; RAISE WARNING 'careful'; END $$;\n",
    );
    let r = sql(&db, &[&f]);
    r.expect_code(0);
    assert!(r.stderr.contains("notice.sql:1: NOTICE:  hello there"), "{}", r.stderr);
    assert!(r.stderr.contains("notice.sql:1: WARNING:  careful"), "{}", r.stderr);

    let r = sql(&db, &["-q", &f, validate.to_str().unwrap()]);
    r.expect_code(0);
    assert_eq!(r.stdout, "");
    assert_eq!(r.stderr, "");
}
