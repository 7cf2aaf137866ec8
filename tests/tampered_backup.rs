//! A backup folder someone has changed: links, FIFOs, missing and unlisted
//! files. `verify` and `restore` must call the same things damaged, with the
//! same exit code, never read outside the folder, never hang, and `restore`
//! must write nothing.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::common::{Run, cluster, pgbarge, pgbarge_within};

/// A database with `t` (500 rows) and `u` (3 rows), backed up; returns the
/// database, the folder's owner and the folder.
fn backed_up(test: &str) -> (String, tempfile::TempDir, PathBuf) {
    let c = cluster();
    let db = c.create_db(test);
    c.psql(
        &db,
        "CREATE TABLE t (x int); INSERT INTO t SELECT generate_series(1, 500);
                 CREATE TABLE u (y text); INSERT INTO u VALUES ('a'), ('b'), ('c')",
    );
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("bk");
    pgbarge(&["backup", "-q", "-d", &c.conn(&db), "-o", dir.to_str().unwrap()], &[]).expect_code(0);
    (db, tmp, dir)
}

/// An empty target with the same tables.
fn empty_target(test: &str) -> String {
    let c = cluster();
    let db = c.create_db(test);
    c.psql(&db, "CREATE TABLE t (x int); CREATE TABLE u (y text)");
    db
}

fn data_file(dir: &Path, table: &str) -> PathBuf {
    let m = pgbarge::storage::manifest::Manifest::read(dir).unwrap();
    dir.join(&m.tables.iter().find(|t| t.name == table).unwrap().file)
}

/// Runs pgbarge, failing the test if it has not ended within 20 s (a hang).
fn run_bounded(args: &[&str]) -> (Run, Duration) {
    pgbarge_within(args, Duration::from_secs(20))
}

/// verify and restore both exit 1 naming `want`; the target stays empty.
fn both_refuse(dir: &Path, target: &str, want: &str) {
    let d = dir.to_str().unwrap();
    let (v, _) = run_bounded(&["verify", d]);
    v.expect_code(1);
    assert!(v.all().contains(want), "verify:\n{}", v.all());
    let conn = cluster().conn(target);
    let (r, _) = run_bounded(&["restore", d, "-d", &conn]);
    r.expect_code(1);
    assert!(r.all().contains(want), "restore:\n{}", r.all());
    for table in ["t", "u"] {
        assert_eq!(cluster().psql(target, &format!("SELECT count(*) FROM {table}")), "0");
    }
}

/// A check that fails after a table's COPY ended, while the next table's
/// COPY is already started on the target (restore starts it early): the
/// restore stops with the difference, rolls back, loads nothing, never hangs.
#[test]
fn a_check_failing_after_the_next_copy_started_rolls_back() {
    let (_db, _tmp, dir) = backed_up("tb_next_started");
    let target = empty_target("tb_next_started_tgt");
    let manifest = dir.join("manifest.json");
    let text = std::fs::read_to_string(&manifest).unwrap();
    let mut doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    let tables = doc["tables"].as_array_mut().unwrap();
    let t = tables.iter_mut().find(|t| t["name"] == "t").unwrap();
    assert_eq!(t["rows"], 500);
    t["rows"] = 499.into();
    std::fs::write(&manifest, serde_json::to_string_pretty(&doc).unwrap()).unwrap();
    let conn = cluster().conn(&target);
    let (r, _) = run_bounded(&["restore", dir.to_str().unwrap(), "-d", &conn]);
    r.expect_code(1);
    assert!(
        r.all().contains("the server loaded 500 rows, the manifest records 499"),
        "{}",
        r.all()
    );
    for table in ["t", "u"] {
        assert_eq!(cluster().psql(&target, &format!("SELECT count(*) FROM {table}")), "0");
    }
    // A backend ends just after its client: give it a moment.
    let left = || {
        cluster().psql(
            &target,
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pgbarge' AND datname = current_database()",
        )
    };
    for _ in 0..100 {
        if left() == "0" {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(left(), "0", "no pgbarge session left");
}

/// Issue: a symlinked data file was followed and `restore` loaded 500 rows
/// from a file outside the folder.
#[test]
fn symlinked_data_file_is_damage_not_data() {
    let (_db, _tmp, dir) = backed_up("tb_link_file");
    let target = empty_target("tb_link_file_tgt");
    let file = data_file(&dir, "t");
    let outside = dir.parent().unwrap().join("outside.csv.zst");
    std::fs::rename(&file, &outside).unwrap();
    std::os::unix::fs::symlink(&outside, &file).unwrap();
    both_refuse(&dir, &target, "0001.public.t.csv.zst is a symbolic link");
}

#[test]
fn symlinked_data_folder_is_damage() {
    let (_db, tmp, dir) = backed_up("tb_link_dir");
    let target = empty_target("tb_link_dir_tgt");
    let moved = tmp.path().join("elsewhere");
    std::fs::rename(dir.join("data"), &moved).unwrap();
    std::os::unix::fs::symlink(&moved, dir.join("data")).unwrap();
    both_refuse(&dir, &target, "data is a symbolic link");
}

#[test]
fn symlinked_manifest_is_damage() {
    let (_db, tmp, dir) = backed_up("tb_link_manifest");
    let target = empty_target("tb_link_manifest_tgt");
    let moved = tmp.path().join("manifest.json");
    std::fs::rename(dir.join("manifest.json"), &moved).unwrap();
    std::os::unix::fs::symlink(&moved, dir.join("manifest.json")).unwrap();
    both_refuse(&dir, &target, "manifest.json is a symbolic link");
}

/// Issue: a FIFO in place of a data file blocked `verify` and `restore` in
/// open() forever, deaf to SIGINT, with the target's tables locked.
#[test]
fn fifo_in_place_of_a_data_file_is_refused_at_once() {
    let (_db, _tmp, dir) = backed_up("tb_fifo");
    let target = empty_target("tb_fifo_tgt");
    let file = data_file(&dir, "t");
    std::fs::remove_file(&file).unwrap();
    assert!(Command::new("mkfifo").arg(&file).status().unwrap().success());
    both_refuse(&dir, &target, "is a FIFO (named pipe), not a regular file");
    // Even when the listing's size check is out of the way (the manifest is
    // edited to the FIFO's size), the open itself refuses without blocking.
    let m = dir.join("manifest.json");
    let text = std::fs::read_to_string(&m).unwrap();
    let t = pgbarge::storage::manifest::Manifest::read(&dir).unwrap();
    let bytes = t.tables.iter().find(|x| x.name == "t").unwrap().file_bytes;
    std::fs::write(&m, text.replace(&format!("\"file_bytes\": {bytes},"), "\"file_bytes\": 0,"))
        .unwrap();
    let conn = cluster().conn(&target);
    let (r, took) = run_bounded(&["restore", dir.to_str().unwrap(), "-d", &conn, "-t", "t"]);
    r.expect_code(1);
    assert!(r.stderr.contains("is a FIFO"), "{}", r.stderr);
    assert!(took < Duration::from_secs(10), "{took:?}");
}

/// Issue: a deleted data file was exit 1 in verify but 3 in restore.
#[test]
fn deleted_data_file_is_exit_1_in_verify_and_restore() {
    let (_db, _tmp, dir) = backed_up("tb_deleted");
    let target = empty_target("tb_deleted_tgt");
    let file = data_file(&dir, "u");
    std::fs::remove_file(&file).unwrap();
    both_refuse(&dir, &target, "missing");
    // Restoring only the intact table works.
    let conn = cluster().conn(&target);
    pgbarge(&["restore", "-q", dir.to_str().unwrap(), "-d", &conn, "-t", "t"], &[]).expect_code(0);
    assert_eq!(cluster().psql(&target, "SELECT count(*) FROM t"), "500");
}

#[test]
fn unlisted_file_refuses_restore_unless_ignored() {
    let (_db, _tmp, dir) = backed_up("tb_unlisted");
    let target = empty_target("tb_unlisted_tgt");
    std::fs::write(dir.join("data/9999.public.extra.csv.zst"), b"not ours").unwrap();
    both_refuse(&dir, &target, "data/9999.public.extra.csv.zst: not listed in the manifest");
    let conn = cluster().conn(&target);
    let d = dir.to_str().unwrap();
    let r = pgbarge(&["restore", d, "-d", &conn], &[]);
    assert!(r.stderr.contains("--ignore-unlisted"), "{}", r.stderr);
    pgbarge(&["restore", "-q", d, "-d", &conn, "--ignore-unlisted"], &[]).expect_code(0);
    assert_eq!(cluster().psql(&target, "SELECT count(*) FROM t"), "500");
}
