//! A backup worker whose session is lost midway (its backend terminated)
//! while the coordinator still holds the snapshot: the worker joins the
//! snapshot again, starts the table over, says so on stderr, and the backup
//! is the one an undisturbed run takes.

use std::process::Stdio;

use pgbarge::storage::manifest::Manifest;

use crate::common::{cluster, pgbarge, pgbarge_cmd};

#[test]
fn a_backup_worker_whose_backend_is_terminated_restarts_its_table_on_the_snapshot() {
    let c = cluster();
    let db = c.create_db("worker_retry");
    c.psql(
        &db,
        "CREATE TABLE big AS SELECT i, md5(i::text) AS t FROM generate_series(1, 1500000) i; \
         CREATE TABLE small (id int PRIMARY KEY); INSERT INTO small SELECT generate_series(1, 10); \
         ANALYZE;",
    );
    let t = tempfile::tempdir().unwrap();
    let undisturbed = t.path().join("a");
    pgbarge(&["backup", "-d", &c.conn(&db), "-o", undisturbed.to_str().unwrap(), "-q"], &[])
        .expect_code(0);

    let disturbed = t.path().join("b");
    let child = pgbarge_cmd()
        .args(["backup", "-d", &c.conn(&db), "-o", disturbed.to_str().unwrap(), "-j", "2"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The worker's COPY of `big`, once it runs; never the coordinator, which
    // sits idle in its transaction.
    let pid = crate::common::copy_backend_pid(&db, "big");
    c.psql(&db, &format!("SELECT pg_terminate_backend({pid})"));
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "backup failed:\n{stderr}");
    assert!(
        stderr.contains("the session reading public.big was lost")
            && stderr.contains("starting the table over (retry 1 of 2)"),
        "{stderr}"
    );

    let a = Manifest::read(&undisturbed).unwrap();
    let b = Manifest::read(&disturbed).unwrap();
    assert_eq!(a.tables.len(), 2);
    for (x, y) in a.tables.iter().zip(&b.tables) {
        assert_eq!((&x.schema, &x.name, x.rows), (&y.schema, &y.name, y.rows));
        assert_eq!(x.csv_sha256, y.csv_sha256, "{}", x.name);
        assert_eq!(x.fingerprint, y.fingerprint, "{}", x.name);
        assert_eq!(x.file_sha256, y.file_sha256, "{}", x.name);
    }
    assert_eq!(b.tables.iter().find(|t| t.name == "big").unwrap().rows, 1_500_000);
    pgbarge(&["verify", disturbed.to_str().unwrap()], &[]).expect_code(0);
}

/// The same with rows of 32 MiB, each of which holds the session's socket
/// until its worker has handled it (`src/conn/read_gate.rs`): the lost
/// session is still noticed, the table starts over on a new one, and the
/// backup holds every row.
#[test]
fn a_backup_worker_whose_backend_is_terminated_amid_large_rows_restarts_its_table() {
    let c = cluster();
    let db = c.create_db("worker_retry_large");
    c.psql(
        &db,
        "CREATE TABLE wide (id int PRIMARY KEY, v text); \
         INSERT INTO wide SELECT i, repeat(md5(i::text), 1048576) FROM generate_series(1, 10) i;",
    );
    let t = tempfile::tempdir().unwrap();
    let out_dir = t.path().join("b");
    let child = pgbarge_cmd()
        .args(["backup", "-d", &c.conn(&db), "-o", out_dir.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = crate::common::copy_backend_pid(&db, "wide");
    c.psql(&db, &format!("SELECT pg_terminate_backend({pid})"));
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "backup failed:\n{stderr}");
    assert!(
        stderr.contains("the session reading public.wide was lost")
            && stderr.contains("starting the table over (retry 1 of 2)"),
        "{stderr}"
    );
    let m = Manifest::read(&out_dir).unwrap();
    assert_eq!(m.tables[0].rows, 10);
    pgbarge(&["verify", out_dir.to_str().unwrap(), "-d", &c.conn(&db)], &[]).expect_code(0);
}
