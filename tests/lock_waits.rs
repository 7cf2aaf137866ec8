//! Never waiting forever (DESIGN.md): copy and restore behind another
//! session's lock fail after `--lock-wait-timeout`, naming the table and the
//! session in the way, with nothing written; Ctrl-C during any server-side
//! wait cancels it on the server; a lock on a table nobody selected stops
//! neither `list` nor `backup`.

use std::path::PathBuf;
use std::process::{Child, Output, Stdio};
use std::time::{Duration, Instant};

use crate::common::{cluster, digest_of, pgbarge, pgbarge_cmd};

/// Another session holding locks: psql running `BEGIN; <sql>; SELECT
/// pg_sleep(60)` as application "nightly report". Killed on drop.
struct Holder {
    child: Child,
    pid: String,
}

impl Holder {
    /// Starts it and waits until it holds a granted `mode` lock on `table`.
    fn start(db: &str, sql: &str, table: &str, mode: &str) -> Holder {
        let c = cluster();
        let mut holder = Holder {
            child: c
                .psql_cmd(db)
                .env("PGAPPNAME", "nightly report")
                .arg("-c")
                .arg(format!("BEGIN; {sql}; SELECT pg_sleep(60); COMMIT;"))
                .stdout(Stdio::null())
                .spawn()
                .unwrap(),
            pid: String::new(),
        };
        for _ in 0..400 {
            let pid = c.psql(
                db,
                &format!(
                    "SELECT l.pid FROM pg_locks l JOIN pg_class c ON c.oid = l.relation
                     JOIN pg_stat_activity a ON a.pid = l.pid
                     WHERE c.relname = '{table}' AND l.mode = '{mode}' AND l.granted
                       AND a.application_name = 'nightly report' LIMIT 1"
                ),
            );
            if !pid.is_empty() {
                holder.pid = pid;
                return holder;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        // Unwinding drops the holder, which kills psql.
        panic!("the holder never took its lock on {table}");
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A table `t` with three rows, in a new database.
fn db_with_t(name: &str) -> String {
    let c = cluster();
    let db = c.create_db(name);
    c.psql(&db, "CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t VALUES (1, 'a'), (2, 'b'), (3, 'c')");
    db
}

/// A backup of `db`'s table `t`.
fn backup_of_t(db: &str) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("b");
    pgbarge(
        &["backup", "-q", "-d", &cluster().conn(db), "-o", dir.to_str().unwrap(), "-t", "t"],
        &[],
    )
    .expect_code(0);
    (tmp, dir)
}

/// Waits for `child` at most `limit`, killing it (and failing) after that.
fn wait_at_most(mut child: Child, limit: Duration, what: &str) -> (Output, Duration) {
    let started = Instant::now();
    while started.elapsed() < limit {
        if child.try_wait().unwrap().is_some() {
            return (child.wait_with_output().unwrap(), started.elapsed());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    panic!("{what} still ran after {limit:?}; stderr:\n{}", String::from_utf8_lossy(&out.stderr));
}

/// Waits until a pgbarge backend on `db` waits on a lock.
fn wait_for_lock_wait(db: &str) {
    for _ in 0..400 {
        let n = cluster().psql(
            db,
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pgbarge'
             AND datname = current_database() AND wait_event_type = 'Lock'",
        );
        if n != "0" {
            return;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    panic!("no pgbarge backend ever waited on a lock in {db}");
}

/// pgbarge backends of `db` still running a statement, after a short grace
/// for the server to notice closed sessions.
fn active_pgbarge_backends(db: &str) -> String {
    let sql = "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pgbarge'
               AND datname = current_database() AND state <> 'idle'";
    for _ in 0..40 {
        let n = cluster().psql(db, sql);
        if n == "0" {
            return n;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    cluster().psql(db, sql)
}

fn assert_names_the_blocker(stderr: &str, holder: &Holder) {
    assert!(stderr.contains("table public.t is locked by another session"), "{stderr}");
    assert!(stderr.contains("ACCESS EXCLUSIVE"), "{stderr}");
    assert!(stderr.contains(&format!("held by pid {} (user postgres", holder.pid)), "{stderr}");
    assert!(stderr.contains("application \"nightly report\"), transaction open"), "{stderr}");
    assert!(stderr.contains("nothing was written"), "{stderr}");
    assert!(stderr.contains("--lock-wait-timeout"), "{stderr}");
}

#[test]
fn restore_truncate_behind_a_reader_no_longer_waits_forever() {
    let c = cluster();
    let db = db_with_t("lw_restore_reader");
    let (_tmp, dir) = backup_of_t(&db);
    c.psql(&db, "UPDATE t SET v = 'since the backup'");
    let before = digest_of(&db);
    let holder = Holder::start(&db, "SELECT count(*) FROM t", "t", "AccessShareLock");
    let started = Instant::now();
    let r = pgbarge(
        &[
            "restore",
            dir.to_str().unwrap(),
            "-d",
            &c.conn(&db),
            "--mode",
            "truncate",
            "--lock-wait-timeout",
            "1",
        ],
        &[],
    );
    let took = started.elapsed();
    r.expect_code(3);
    assert!(took < Duration::from_secs(10), "took {took:?}");
    assert_names_the_blocker(&r.stderr, &holder);
    drop(holder);
    assert_eq!(digest_of(&db), before);
}

#[test]
fn copy_truncate_behind_a_reader_no_longer_waits_forever() {
    let c = cluster();
    let src = db_with_t("lw_copy_reader_src");
    let tgt = c.create_db("lw_copy_reader_tgt");
    c.psql(&tgt, "CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t VALUES (9, 'kept')");
    let before = digest_of(&tgt);
    let holder = Holder::start(&tgt, "SELECT count(*) FROM t", "t", "AccessShareLock");
    let started = Instant::now();
    let r =
        crate::common::copy_dbs(&src, &tgt, &["--mode", "truncate", "--lock-wait-timeout", "1"]);
    let took = started.elapsed();
    r.expect_code(3);
    assert!(took < Duration::from_secs(10), "took {took:?}");
    assert_names_the_blocker(&r.stderr, &holder);
    assert!(r.stderr.contains("TARGET"), "{}", r.stderr);
    drop(holder);
    assert_eq!(digest_of(&tgt), before);
}

#[test]
fn lock_wait_timeout_is_validated_for_copy_and_restore() {
    for cmd in [
        &["copy", "--source", "host=/nowhere", "--target", "host=/nowhere"][..],
        &["restore", "/nowhere", "-d", "host=/nowhere"][..],
    ] {
        for bad in ["0", "-1", "nan"] {
            let flag = format!("--lock-wait-timeout={bad}");
            let r = pgbarge(&[cmd, &[flag.as_str()]].concat(), &[]);
            r.expect_code(2);
            assert!(r.stderr.contains("--lock-wait-timeout"), "{}", r.stderr);
        }
    }
}

#[test]
fn sigint_while_copy_or_restore_waits_on_a_lock_cancels_the_wait_on_the_server() {
    let c = cluster();
    for case in ["copy", "restore"] {
        let src = db_with_t(&format!("lw_sigint_{case}_src"));
        let (_tmp, dir) = backup_of_t(&src);
        let tgt = c.create_db(&format!("lw_sigint_{case}_tgt"));
        c.psql(
            &tgt,
            "CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t VALUES (9, 'kept')",
        );
        let before = digest_of(&tgt);
        let holder = Holder::start(&tgt, "SELECT count(*) FROM t", "t", "AccessShareLock");
        let (s, t) = (c.conn(&src), c.conn(&tgt));
        let args: Vec<&str> = if case == "copy" {
            vec!["copy", "--source", &s, "--target", &t]
        } else {
            vec!["restore", dir.to_str().unwrap(), "-d", &t]
        };
        let child = pgbarge_cmd()
            .args(&args)
            .args(["--mode", "truncate", "--lock-wait-timeout", "60"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        wait_for_lock_wait(&tgt);
        unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
        let (out, took) = wait_at_most(child, Duration::from_secs(5), case);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "{case}: {stderr}");
        assert!(took < Duration::from_secs(4), "{case}: took {took:?}");
        assert!(stderr.contains("interrupted by SIGINT"), "{case}: {stderr}");
        assert!(stderr.contains("waiting to lock table public.t"), "{case}: {stderr}");
        // The holder still holds its lock, so a backend left waiting would show.
        assert_eq!(active_pgbarge_backends(&tgt), "0", "{case}");
        drop(holder);
        assert_eq!(digest_of(&tgt), before, "{case}");
    }
}

#[test]
fn an_exclusive_lock_on_an_unselected_table_with_a_default_stops_neither_list_nor_backup() {
    let c = cluster();
    let db = c.create_db("lw_unselected");
    c.psql(
        &db,
        "CREATE TABLE \"User\" (id serial PRIMARY KEY, name text DEFAULT 'x');
         INSERT INTO \"User\" (name) VALUES ('ann'), ('bob');
         CREATE TABLE audit (id int, at timestamptz DEFAULT now());
         CREATE TABLE events (id int, day date NOT NULL DEFAULT current_date) PARTITION BY RANGE (day);
         CREATE TABLE events_2026 PARTITION OF events FOR VALUES FROM ('2026-01-01') TO ('2027-01-01')",
    );
    let holder = Holder::start(
        &db,
        "LOCK TABLE audit IN ACCESS EXCLUSIVE MODE; LOCK TABLE events_2026 IN ACCESS EXCLUSIVE MODE",
        "events_2026",
        "AccessExclusiveLock",
    );
    let conn = c.conn(&db);

    let list = pgbarge_cmd()
        .args(["list", "-d", &conn])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (out, _) = wait_at_most(list, Duration::from_secs(15), "list");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    for t in ["\"User\"", "audit", "events"] {
        assert!(stdout.contains(t), "{stdout}");
    }

    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("user");
    let backup = pgbarge_cmd()
        .args(["backup", "-q", "-d", &conn, "-o", dir.to_str().unwrap(), "-t", "User"])
        .args(["--lock-wait-timeout", "1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (out, _) = wait_at_most(backup, Duration::from_secs(15), "backup -t User");
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(dir.join("manifest.json").exists());

    // Selected, the locked table fails the backup after the timeout, named.
    let dir = tmp.path().join("all");
    let r = pgbarge(
        &["backup", "-q", "-d", &conn, "-o", dir.to_str().unwrap(), "--lock-wait-timeout", "1"],
        &[],
    );
    r.expect_code(3);
    assert!(r.stderr.contains("table public.audit is locked by another session"), "{}", r.stderr);
    assert!(r.stderr.contains(&format!("held by pid {}", holder.pid)), "{}", r.stderr);
    assert!(!dir.join("manifest.json").exists());
}

#[test]
fn sigint_during_a_long_sql_statement_cancels_it_on_the_server() {
    let c = cluster();
    let db = c.create_db("lw_sql_sigint");
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("slow.sql");
    std::fs::write(&file, "CREATE TABLE made (x int);\nSELECT pg_sleep(60);\n").unwrap();
    let child = pgbarge_cmd()
        .args(["sql", "-d", &c.conn(&db), "--single-transaction", file.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut seen = false;
    for _ in 0..400 {
        let n = c.psql(
            &db,
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pgbarge'
             AND datname = current_database() AND query LIKE 'SELECT pg_sleep(60)%' AND state = 'active'",
        );
        if n != "0" {
            seen = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    assert!(seen, "the statement never started");
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let (out, took) = wait_at_most(child, Duration::from_secs(5), "sql");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(took < Duration::from_secs(4), "took {took:?}");
    assert!(stderr.contains("interrupted by SIGINT"), "{stderr}");
    assert!(stderr.contains("slow.sql:2: statement cancelled on the server"), "{stderr}");
    assert_eq!(active_pgbarge_backends(&db), "0");
    assert_eq!(c.psql(&db, "SELECT to_regclass('made') IS NULL"), "t");
}
