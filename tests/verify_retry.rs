//! `verify -d` whose session is lost midway (its backend terminated): it
//! connects again, starts the live comparison over in a new transaction,
//! says so on stderr, and reports what an undisturbed run reports. A failure
//! that is not a lost session (a cancelled statement) is not retried.

use std::process::{Output, Stdio};

use crate::common::cluster::Cluster;
use crate::common::{cluster, pgbarge, pgbarge_cmd};

/// A database with a table big enough to catch its COPY running, and its backup.
fn backed_up(c: &Cluster, test: &str) -> (String, tempfile::TempDir) {
    let db = c.create_db(test);
    c.psql(
        &db,
        "CREATE TABLE big AS SELECT i, md5(i::text) AS t FROM generate_series(1, 1500000) i; \
         CREATE TABLE small (id int PRIMARY KEY); INSERT INTO small SELECT generate_series(1, 10); \
         ANALYZE;",
    );
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("b");
    pgbarge(&["backup", "-d", &c.conn(&db), "-o", dir.to_str().unwrap(), "-q"], &[]).expect_code(0);
    (db, t)
}

/// Runs `verify DIR -d CONN --deep`, applying `signal` (`pg_terminate_backend`
/// or `pg_cancel_backend`) to its backend once that backend's COPY of `big`
/// is running.
fn verify_disturbed(c: &Cluster, db: &str, dir: &str, signal: &str) -> Output {
    let child = pgbarge_cmd()
        .args(["verify", dir, "-d", &c.conn(db), "--deep"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = crate::common::copy_backend_pid(db, "big");
    c.psql(db, &format!("SELECT {signal}({pid})"));
    child.wait_with_output().unwrap()
}

#[test]
fn verify_whose_backend_is_terminated_starts_the_live_comparison_over() {
    let c = cluster();
    let (db, t) = backed_up(c, "verify_retry");
    let dir = t.path().join("b");
    let dir = dir.to_str().unwrap();
    let undisturbed = pgbarge(&["verify", dir, "-d", &c.conn(&db), "--deep"], &[]);
    undisturbed.expect_code(0);

    let out = verify_disturbed(c, &db, dir, "pg_terminate_backend");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "verify failed:\n{stdout}\n{stderr}");
    assert!(
        stderr.contains("warning: the session comparing with the database was lost")
            && stderr.contains("starting the comparison over (retry 1 of 2)"),
        "{stderr}"
    );
    assert!(!stderr.contains("retry 2 of 2"), "{stderr}");
    // The same table, problems and verdict; only the "checked ... in N s"
    // paragraph between them holds a timing.
    let verdict = |s: &str| -> String {
        let table = s.split("\nchecked ").next().unwrap_or_default();
        let end = s.find("\nOK: ").or_else(|| s.find("\nDIFFERENT: ")).unwrap_or(s.len());
        format!("{table}{}", &s[end..])
    };
    assert_eq!(verdict(&stdout), verdict(&undisturbed.stdout), "{stdout}");
    assert!(stdout.contains("OK: ") && stdout.contains("matches the database"), "{stdout}");
}

#[test]
fn verify_whose_copy_is_cancelled_fails_without_a_retry() {
    let c = cluster();
    let (db, t) = backed_up(c, "verify_no_retry");
    let dir = t.path().join("b");
    let out = verify_disturbed(c, &db, dir.to_str().unwrap(), "pg_cancel_backend");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(!stderr.contains("starting the comparison over"), "{stderr}");
    assert!(stderr.contains("57014"), "{stderr}");
}
