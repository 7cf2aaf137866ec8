//! The first failing table stops its siblings at once, even one waiting on
//! its server (a stalled scan, a trigger that sleeps): the error is reported
//! within seconds, not when the slowest sibling would have finished.

use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::common::{cluster, copy_backend_pid, pgbarge, pgbarge_cmd};

/// Waits for `child` at most `limit`; on timeout runs `unstick`, kills the
/// child and fails the test.
fn wait_within(mut child: Child, limit: Duration, unstick: impl Fn()) -> (Output, Duration) {
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > limit {
            unstick();
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "still running after {limit:?}; stderr:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let waited = start.elapsed();
    (child.wait_with_output().unwrap(), waited)
}

fn signal(pid: &str, sig: &str) {
    let ok = Command::new("kill").args([sig, pid]).status().unwrap().success();
    assert!(ok, "kill {sig} {pid}");
}

#[test]
fn a_backup_table_failing_stops_a_sibling_whose_server_has_stalled() {
    let c = cluster();
    let db = c.create_db("stop_backup_sibling");
    c.psql(
        &db,
        "CREATE TABLE big AS SELECT i, md5(i::text) AS t FROM generate_series(1, 1000000) i; \
         CREATE TABLE victim AS SELECT i, md5(i::text) AS t FROM generate_series(1, 900000) i; \
         ANALYZE;",
    );
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("b");
    let child = pgbarge_cmd()
        .args(["backup", "-d", &c.conn(&db), "-o", dir.to_str().unwrap(), "-j", "4"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Both streams run; `big`'s server process is frozen mid-stream (it will
    // send nothing more until continued), then `victim`'s is cancelled.
    let big = copy_backend_pid(&db, "big");
    let victim = copy_backend_pid(&db, "victim");
    signal(&big, "-STOP");
    let cancelled = c.psql(&db, &format!("SELECT pg_cancel_backend({victim})"));
    assert_eq!(cancelled.trim(), "t");
    let (out, waited) = wait_within(child, Duration::from_secs(20), || signal(&big, "-CONT"));
    signal(&big, "-CONT");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("backup of table public.victim failed")
            && stderr.contains("canceling statement due to user request"),
        "{stderr}"
    );
    assert!(!stderr.contains("another part of the backup failed"), "{stderr}");
    assert!(waited < Duration::from_secs(10), "took {waited:?}");
    assert!(!dir.join("manifest.json").exists());
}

#[test]
fn a_per_table_load_failing_stops_a_sibling_stuck_in_a_trigger() {
    let c = cluster();
    let source = c.create_db("stop_load_sibling_src");
    let target = c.create_db("stop_load_sibling_dst");
    let schema = "CREATE TABLE slow (i int); CREATE TABLE victim (i int);";
    c.psql(
        &source,
        &format!(
            "{schema} INSERT INTO slow SELECT generate_series(1, 1000); \
             INSERT INTO victim SELECT generate_series(1, 10);"
        ),
    );
    // On the target, `slow`'s first row sleeps in a trigger for an hour and
    // `victim`'s first row raises.
    c.psql(
        &target,
        &format!(
            "{schema} \
             CREATE FUNCTION nap() RETURNS trigger LANGUAGE plpgsql AS \
               $$ BEGIN PERFORM pg_sleep(3600); RETURN NEW; END $$; \
             CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS \
               $$ BEGIN RAISE EXCEPTION 'victim refuses row %', NEW.i; END $$; \
             CREATE TRIGGER nap BEFORE INSERT ON slow FOR EACH ROW EXECUTE FUNCTION nap(); \
             CREATE TRIGGER refuse BEFORE INSERT ON victim FOR EACH ROW EXECUTE FUNCTION refuse();"
        ),
    );
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("b");
    pgbarge(&["backup", "-d", &c.conn(&source), "-o", dir.to_str().unwrap(), "-q"], &[])
        .expect_code(0);
    let child = pgbarge_cmd()
        .args([
            "restore",
            dir.to_str().unwrap(),
            "-d",
            &c.conn(&target),
            "--per-table-commit",
            "-j",
            "2",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (out, waited) = wait_within(child, Duration::from_secs(30), || {
        c.psql(
            &target,
            "SELECT pg_cancel_backend(pid) FROM pg_stat_activity \
             WHERE datname = current_database() AND pid <> pg_backend_pid()",
        );
    });
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("victim refuses row 1"), "{stderr}");
    assert!(waited < Duration::from_secs(15), "took {waited:?}");
    // Nothing of either table committed; no session is left behind.
    assert_eq!(c.psql(&target, "SELECT count(*) FROM slow").trim(), "0");
    assert_eq!(c.psql(&target, "SELECT count(*) FROM victim").trim(), "0");
    let left = c.psql(
        &target,
        "SELECT count(*) FROM pg_stat_activity \
         WHERE datname = current_database() AND pid <> pg_backend_pid()",
    );
    assert_eq!(left.trim(), "0");
}
