//! `--json` of backup, copy, restore, sql and run: one JSON document on
//! stdout saying what the human summary says, parsed here.

use serde_json::Value;

use crate::common::{Run, cluster, copy_dbs, pgbarge};

fn parse(r: &Run) -> Value {
    r.expect_code(0);
    serde_json::from_str(&r.stdout)
        .unwrap_or_else(|e| panic!("not one JSON document ({e}):\n{}", r.stdout))
}

const TABLES: &str = "CREATE TABLE parent (id int PRIMARY KEY, name text);
    CREATE TABLE child (id int PRIMARY KEY, parent_id int REFERENCES parent);";

fn source(test: &str) -> String {
    let c = cluster();
    let db = c.create_db(test);
    c.psql(&db, TABLES);
    c.psql(&db, "INSERT INTO parent SELECT g, 'p' || g FROM generate_series(1, 30) g");
    c.psql(&db, "INSERT INTO child SELECT g, 1 + g % 30 FROM generate_series(1, 70) g");
    db
}

fn empty_copy(test: &str) -> String {
    let c = cluster();
    let db = c.create_db(test);
    c.psql(&db, TABLES);
    db
}

fn table<'a>(doc: &'a Value, name: &str) -> &'a Value {
    doc["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["table"].as_str().unwrap().ends_with(name))
        .unwrap_or_else(|| panic!("no {name} in {doc}"))
}

#[test]
fn backup_and_restore_json() {
    let c = cluster();
    let src = source("json_backup");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("b");
    let dir = dir.to_str().unwrap();
    let doc = parse(&pgbarge(&["backup", "-d", &c.conn(&src), "-o", dir, "--json"], &[]));
    assert_eq!(doc["command"], "backup");
    assert_eq!(doc["outcome"], "ok");
    assert_eq!(doc["table_count"], 2);
    assert_eq!(doc["rows"], 100);
    assert_eq!(table(&doc, "child")["rows"], 70);
    assert!(doc["file_bytes"].as_u64().unwrap() > 0);
    assert!(doc["seconds"].as_f64().is_some());
    assert!(doc["snapshot"].as_str().is_some_and(|s| !s.is_empty()));

    let target = empty_copy("json_restore");
    let doc = parse(&pgbarge(&["restore", dir, "-d", &c.conn(&target), "--json"], &[]));
    assert_eq!(doc["command"], "restore");
    assert_eq!(doc["rows"], 100);
    assert_eq!(doc["committed"], "in one transaction");
    assert_eq!(doc["mode"], "fail");
    assert_eq!(table(&doc, "parent")["rows"], 30);
    assert!(doc["checked"].as_array().unwrap().iter().any(|c| c == "record count"));
    assert_eq!(c.psql(&target, "SELECT count(*) FROM child"), "70");

    let r = pgbarge(&["restore", dir, "-d", &c.conn(&target), "--json", "--dry-run"], &[]);
    r.expect_code(2);
}

#[test]
fn copy_json() {
    let src = source("json_copy_src");
    let target = empty_copy("json_copy_target");
    let doc = parse(&copy_dbs(&src, &target, &["--json", "--verify"]));
    assert_eq!(doc["command"], "copy");
    assert_eq!(doc["table_count"], 2);
    assert_eq!(doc["rows"], 100);
    assert_eq!(table(&doc, "child")["rows"], 70);
    assert_eq!(table(&doc, "child")["loaded"]["inserted"], 70);
    assert!(doc["checked"].as_array().unwrap().iter().any(|c| c == "source snapshot counts"));
    assert!(doc["target"].as_str().unwrap().contains(&target));
}

#[test]
fn sql_json_holds_files_rows_and_notices() {
    let c = cluster();
    let db = c.create_db("json_sql");
    let tmp = tempfile::tempdir().unwrap();
    let f = tmp.path().join("a.sql");
    std::fs::write(
        &f,
        "CREATE TABLE t (id int, v text);\nINSERT INTO t VALUES (1, 'one'), (2, NULL);\n\
         SELECT id, v FROM t ORDER BY id;\nDO $$BEGIN RAISE NOTICE 'hello'; END$$;\n",
    )
    .unwrap();
    let doc = parse(&pgbarge(&["sql", "-d", &c.conn(&db), f.to_str().unwrap(), "--json"], &[]));
    assert_eq!(doc["command"], "sql");
    assert_eq!(doc["statements"], 4);
    let file = &doc["files"][0];
    assert_eq!(file["statements"], 4);
    assert_eq!(file["results"][0]["line"], 3);
    assert_eq!(file["results"][0]["columns"], serde_json::json!(["id", "v"]));
    assert_eq!(file["results"][0]["rows"], serde_json::json!([["1", "one"], ["2", null]]));
    assert_eq!(file["notices"][0]["message"], "hello");
}

#[test]
fn run_json_is_the_log_with_the_rollback_command() {
    let c = cluster();
    let tmp = tempfile::tempdir().unwrap();
    let db = source("json_run");
    let sql = tmp.path().join("add.sql");
    std::fs::write(&sql, "ALTER TABLE parent ADD COLUMN note text;\n").unwrap();
    let plan = tmp.path().join("plan.toml");
    std::fs::write(
        &plan,
        format!(
            "name = \"json\"\nlog_dir = \"{w}/runs\"\nrollback = \"backup\"\n[connections]\n\
             target = {{ env = \"JSON_TARGET\" }}\n\
             [[steps]]\nname = \"backup\"\nkind = \"backup\"\ndb = \"target\"\noutput = \"{w}/b\"\n\
             [[steps]]\nname = \"ddl\"\nkind = \"sql\"\ndb = \"target\"\nfiles = [\"add.sql\"]\n",
            w = tmp.path().display()
        ),
    )
    .unwrap();
    let conn = c.conn(&db);
    let doc =
        parse(&pgbarge(&["run", plan.to_str().unwrap(), "--json"], &[("JSON_TARGET", &conn)]));
    assert_eq!(doc["command"], "run");
    assert_eq!(doc["outcome"], "ok");
    assert_eq!(doc["steps"].as_array().unwrap().len(), 2);
    assert_eq!(doc["steps"][0]["outcome"], "ok");
    assert_eq!(doc["steps"][0]["details"]["rows"], 100);
    assert!(doc["rollback"].as_str().unwrap().contains("pgbarge restore"), "{doc}");
    assert!(std::path::Path::new(doc["log_folder"].as_str().unwrap()).join("run.json").exists());
}
