//! `restore --clean`: the ERP target migrated (DDL files, a copy, more
//! damage) and put back to its full backup — schema and rows exactly, in one
//! transaction, or not at all.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::common::{cluster, copy_dbs, db_with, pgbarge, pgbarge_cmd};

/// `pg_dump --schema-only`, without the lines that differ on every run.
pub fn schema_of(db: &str) -> String {
    let out = cluster().pg_dump_cmd(db).arg("--schema-only").output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with("\\restrict") && !l.starts_with("\\unrestrict"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every table's rows, in a stable order, as text.
fn rows_of(db: &str) -> String {
    cluster().psql(
        db,
        "SELECT string_agg(format('%s: %s', c.oid::regclass, \
                 (xpath('/row/c/text()', query_to_xml(format('SELECT md5(string_agg(t::text, ''|'' ORDER BY t::text)) AS c FROM %s t', c.oid::regclass), false, true, '')))[1]::text), \
                 E'\\n' ORDER BY c.oid::regclass::text) \
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
          WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema')",
    )
}

/// The ERP target backed up whole, then migrated to the source's schema
/// (the fixture's DDL files and a copy of the source's data) and damaged
/// more: a dropped column, a new function, a changed type, a deleted row,
/// a new schema.
fn migrated(test: &str) -> (String, tempfile::TempDir, String, String) {
    let c = cluster();
    let src = db_with(&format!("{test}_src"), "erp/source.sql");
    let tgt = db_with(&format!("{test}_tgt"), "erp/target.sql");
    c.psql(&tgt, "CREATE SCHEMA audit; CREATE TABLE audit.seen (id serial PRIMARY KEY, at text); INSERT INTO audit.seen (at) VALUES ('x'), ('y');");
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("full").to_str().unwrap().to_string();
    pgbarge(&["backup", "-d", &c.conn(&tgt), "-o", &dir, "--schema", "-q"], &[]).expect_code(0);
    let before = schema_of(&tgt);
    crate::common::run_erp_migrations(&tgt);
    let tables = ["Role", "Permission", "RolePermission", "RoleAssignment", "UserPermission"];
    let mut args = vec!["--mode", "truncate", "-q"];
    for t in &tables {
        args.extend(["-t", t]);
    }
    copy_dbs(&src, &tgt, &args).expect_code(0);
    c.psql(
        &tgt,
        "ALTER TABLE audit.seen DROP COLUMN at; \
         ALTER TABLE audit.seen ALTER COLUMN id TYPE bigint; \
         CREATE FUNCTION public.added(i integer) RETURNS integer LANGUAGE sql AS 'SELECT i'; \
         DELETE FROM audit.seen WHERE id = 1; \
         CREATE SCHEMA extra; CREATE TABLE extra.left_behind (x int);",
    );
    assert_ne!(schema_of(&tgt), before);
    (tgt, t, dir, before)
}

#[test]
fn clean_puts_the_migrated_database_back_exactly() {
    let c = cluster();
    let (tgt, _t, dir, before) = migrated("clean_exact");
    let run = pgbarge(&["restore", &dir, "-d", &c.conn(&tgt), "--clean"], &[]);
    run.expect_code(0);
    assert_eq!(schema_of(&tgt), before);
    // Every table's content equals the backup's fingerprints, counted and hashed.
    pgbarge(&["verify", &dir, "-d", &c.conn(&tgt), "--deep"], &[]).expect_code(0);
    assert_eq!(c.psql(&tgt, "SELECT count(*) FROM pg_namespace WHERE nspname = 'extra'"), "0");
    assert_eq!(c.psql(&tgt, "SELECT count(*) FROM pg_proc WHERE proname = 'added'"), "0");
    // The next insert gets a fresh value from the recreated sequence.
    assert_eq!(c.psql(&tgt, "INSERT INTO audit.seen (at) VALUES ('z') RETURNING id"), "3");
    assert!(run.stdout.contains("dropped"), "{}", run.stdout);
}

#[test]
fn clean_dry_run_lists_what_goes_and_writes_nothing() {
    let c = cluster();
    let (tgt, _t, dir, _) = migrated("clean_dry");
    let migrated_schema = schema_of(&tgt);
    let run = pgbarge(&["restore", &dir, "-d", &c.conn(&tgt), "--clean", "--dry-run"], &[]);
    run.expect_code(0);
    for want in [
        "dry run, nothing is written",
        "FUNCTION public.added(integer)",
        "TABLE extra.left_behind",
        "not recreated: schema extra",
        "Not touched: roles and memberships",
    ] {
        assert!(run.stdout.contains(want), "{want}:\n{}", run.stdout);
    }
    assert_eq!(schema_of(&tgt), migrated_schema);
}

#[test]
fn clean_failing_halfway_leaves_the_migrated_database_untouched() {
    let c = cluster();
    let (tgt, _t, dir, _) = migrated("clean_fail");
    let migrated_schema = schema_of(&tgt);
    let migrated_rows = rows_of(&tgt);
    // A data file damaged in the middle, its size kept: found while loading,
    // after the drop.
    let data = Path::new(&dir).join("data");
    let mut files: Vec<_> = std::fs::read_dir(&data).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort_by_key(|f| std::cmp::Reverse(std::fs::metadata(f).unwrap().len()));
    let mut bytes = std::fs::read(&files[0]).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x55;
    std::fs::write(&files[0], &bytes).unwrap();
    let run = pgbarge(&["restore", &dir, "-d", &c.conn(&tgt), "--clean"], &[]);
    assert_ne!(run.code, 0, "{}", run.all());
    assert_eq!(schema_of(&tgt), migrated_schema);
    assert_eq!(rows_of(&tgt), migrated_rows);
}

/// Starts `restore --clean` of a big table's whole backup over a migrated
/// database, does `stop` once the rows are loading, and returns the exit code
/// and stderr after checking the database is exactly as it was.
fn clean_stopped_midway(test: &str, stop: impl Fn(&std::process::Child, &str)) -> (i32, String) {
    let c = cluster();
    let (tgt, _t, _, _) = migrated(test);
    // A table big enough to be caught loading.
    let big = c.create_db(&format!("{test}_big"));
    c.psql(
        &big,
        "CREATE TABLE big AS SELECT i, md5(i::text) AS t FROM generate_series(1, 1500000) i",
    );
    let t = tempfile::tempdir().unwrap();
    let big_dir = t.path().join("big").to_str().unwrap().to_string();
    pgbarge(&["backup", "-d", &c.conn(&big), "-o", &big_dir, "--schema", "-q"], &[]).expect_code(0);
    let migrated_schema = schema_of(&tgt);
    let migrated_rows = rows_of(&tgt);
    let child = pgbarge_cmd()
        .args(["restore", &big_dir, "-d", &c.conn(&tgt), "--clean"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = crate::common::copy_backend_pid(&tgt, "big");
    stop(&child, &pid);
    let out = child.wait_with_output().unwrap();
    assert_eq!(schema_of(&tgt), migrated_schema);
    assert_eq!(rows_of(&tgt), migrated_rows);
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn clean_interrupted_leaves_the_migrated_database_untouched() {
    let (code, stderr) = clean_stopped_midway("clean_sigint", |child, _| {
        unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    });
    assert_eq!(code, 3, "{stderr}");
    assert!(stderr.contains("interrupted by SIGINT") && stderr.contains("rolled back"), "{stderr}");
}

#[test]
fn clean_whose_backend_is_killed_leaves_the_migrated_database_untouched() {
    let (code, stderr) = clean_stopped_midway("clean_killed", |_, pid| {
        cluster().psql("postgres", &format!("SELECT pg_terminate_backend({pid})"));
    });
    assert_eq!(code, 3, "{stderr}");
    assert!(
        stderr.contains("the load was rolled back: nothing was committed")
            && stderr.contains("not retried"),
        "{stderr}"
    );
}

#[test]
fn clean_refuses_what_cannot_put_the_whole_database_back() {
    let c = cluster();
    let db = c.create_db("clean_refuse");
    c.psql(&db, "CREATE TABLE a (i int); CREATE TABLE b (i int);");
    let t = tempfile::tempdir().unwrap();
    let some = t.path().join("some").to_str().unwrap().to_string();
    let whole = t.path().join("whole").to_str().unwrap().to_string();
    let data_only = t.path().join("data").to_str().unwrap().to_string();
    pgbarge(&["backup", "-d", &c.conn(&db), "-o", &some, "--schema", "-t", "a", "-q"], &[])
        .expect_code(0);
    pgbarge(&["backup", "-d", &c.conn(&db), "-o", &whole, "--schema", "-q"], &[]).expect_code(0);
    pgbarge(&["backup", "-d", &c.conn(&db), "-o", &data_only, "-q"], &[]).expect_code(0);
    let conn = c.conn(&db);
    for (args, says) in [
        (vec![some.as_str(), "--clean"], "holds only the tables chosen by -t a"),
        (vec![data_only.as_str(), "--clean"], "was taken without --schema"),
        (vec![whole.as_str(), "--clean", "-t", "a"], "it takes no -t or -T"),
        (vec![whole.as_str(), "--clean", "--per-table-commit"], "one transaction"),
        (vec![whole.as_str(), "--clean", "--mode", "truncate"], "--mode does not apply"),
    ] {
        let mut full = vec!["restore"];
        full.extend(&args);
        full.extend(["-d", conn.as_str()]);
        let run = pgbarge(&full, &[]);
        run.expect_code(2);
        assert!(run.stderr.contains(says), "{args:?}: {}", run.stderr);
    }
    assert_eq!(c.psql(&db, "SELECT count(*) FROM pg_class WHERE relname IN ('a', 'b')"), "2");
}

#[test]
fn clean_as_a_non_superuser_names_the_schemas_it_cannot_drop() {
    let c = cluster();
    let db = c.create_db("clean_owner");
    c.psql(
        &db,
        &format!(
            "DO $$ BEGIN \
               IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'clean_app') THEN \
                 CREATE ROLE clean_app LOGIN; END IF; \
               IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'clean_other') THEN \
                 CREATE ROLE clean_other; END IF; END $$; \
             ALTER DATABASE \"{db}\" OWNER TO clean_app; \
             SET ROLE clean_app; CREATE TABLE public.kept (i int); INSERT INTO public.kept VALUES (1); \
             RESET ROLE;"
        ),
    );
    let app = c.conn(&db).replace("user=postgres", "user=clean_app");
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("b").to_str().unwrap().to_string();
    pgbarge(&["backup", "-d", &app, "-o", &dir, "--schema", "-q"], &[]).expect_code(0);
    // Someone else's schema appears (as a migration run by another role might add).
    c.psql(&db, "CREATE SCHEMA theirs AUTHORIZATION clean_other; CREATE TABLE theirs.t (i int);");
    c.psql(&db, "DELETE FROM public.kept");
    let run = pgbarge(&["restore", &dir, "-d", &app, "--clean"], &[]);
    run.expect_code(3);
    assert!(
        run.stderr.contains("schema theirs (owner clean_other)")
            && run.stderr.contains("ALTER SCHEMA theirs OWNER TO clean_app")
            && run.stderr.contains("GRANT clean_other TO clean_app"),
        "{}",
        run.stderr
    );
    assert_eq!(c.psql(&db, "SELECT count(*) FROM public.kept"), "0");
    assert_eq!(c.psql(&db, "SELECT count(*) FROM theirs.t"), "0");
    // Done as the error says, the non-superuser puts the database back.
    c.psql(&db, "ALTER SCHEMA theirs OWNER TO clean_app");
    pgbarge(&["restore", &dir, "-d", &app, "--clean", "-q"], &[]).expect_code(0);
    assert_eq!(c.psql(&db, "SELECT count(*) FROM public.kept"), "1");
    assert_eq!(c.psql(&db, "SELECT count(*) FROM pg_namespace WHERE nspname = 'theirs'"), "0");
}

#[test]
fn clean_waits_no_longer_than_the_lock_timeout_and_names_the_session_in_the_way() {
    let c = cluster();
    let (tgt, _t, dir, _) = migrated("clean_lock");
    let migrated_schema = schema_of(&tgt);
    // Another session reads a table in an open transaction.
    let mut holder = c
        .psql_cmd(&tgt)
        .args(["-c", "BEGIN; LOCK TABLE audit.seen IN ACCESS SHARE MODE; SELECT pg_sleep(60);"])
        .env("PGAPPNAME", "report-job")
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while c.psql(&tgt, "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'report-job' AND wait_event = 'PgSleep'") != "1" {
        assert!(Instant::now() < deadline, "the lock holder never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    let started = Instant::now();
    let run = pgbarge(
        &["restore", &dir, "-d", &c.conn(&tgt), "--clean", "--lock-wait-timeout", "1"],
        &[],
    );
    let _ = holder.kill();
    let _ = holder.wait();
    run.expect_code(3);
    assert!(started.elapsed() < Duration::from_secs(20));
    assert!(
        run.stderr.contains("audit.seen") && run.stderr.contains("report-job"),
        "{}",
        run.stderr
    );
    assert_eq!(schema_of(&tgt), migrated_schema);
}

/// Two `restore --clean` runs of one backup racing on one database: the
/// second waits on the first's locks at most `--lock-wait-timeout`, then
/// either fails naming the wait (exit 3, nothing changed by it) or, if the
/// first committed in time, runs after it. Either way the database ends
/// exactly as the backup, never half of each.
#[test]
fn two_clean_restores_racing_end_as_the_backup() {
    let c = cluster();
    let (tgt, _t, dir, _) = migrated("clean_race");
    // Rows enough that the first run holds its locks for a while.
    c.psql(&tgt, "CREATE TABLE public.bulk AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 400000) g");
    let bulk_dir = format!("{dir}-bulk");
    pgbarge(&["backup", "-d", &c.conn(&tgt), "-o", &bulk_dir, "--schema", "-q"], &[])
        .expect_code(0);
    // The backup to race with is this one, with the bulk table.
    let before = schema_of(&tgt);
    let conn = c.conn(&tgt);
    let first = pgbarge_cmd()
        .args(["restore", &bulk_dir, "-d", &conn, "--clean", "-q"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The second starts once the first holds its locks (its backend waits or runs).
    let started = Instant::now();
    while c.psql(&tgt, "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid WHERE a.application_name LIKE 'pgbarge%' AND l.mode = 'AccessExclusiveLock'") == "0" {
        assert!(started.elapsed() < Duration::from_secs(30), "the first restore never locked");
        std::thread::sleep(Duration::from_millis(20));
    }
    let second_started = Instant::now();
    let second = pgbarge(
        &["restore", &bulk_dir, "-d", &conn, "--clean", "--lock-wait-timeout", "0.5", "-q"],
        &[],
    );
    let second_took = second_started.elapsed();
    let first = first.wait_with_output().unwrap();
    assert_eq!(first.status.code(), Some(0), "{}", String::from_utf8_lossy(&first.stderr));
    match second.code {
        // The first committed within the wait: the second ran after it.
        0 => {}
        // Refused within the wait (plus connecting and reading the catalog).
        3 => assert!(
            second_took < Duration::from_secs(10)
                && second.stderr.contains("lock")
                && second.stderr.contains("pgbarge"),
            "{second_took:?}: {}",
            second.stderr
        ),
        other => panic!("second restore: exit {other}: {}", second.stderr),
    }
    assert_eq!(schema_of(&tgt), before);
    pgbarge(&["verify", &bulk_dir, "-d", &conn, "--deep", "-q"], &[]).expect_code(0);
}
