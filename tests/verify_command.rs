//! `pgbarge verify` against real backups and a real server: a whole backup
//! passes offline and live; every kind of damage is reported with exit 1 and a
//! message naming the file and what is wrong; live differences are named per
//! table; bad input gets exit 2 and unreachable servers exit 3.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::{PW_PASSWORD, PW_USER, cluster, db_with, fixtures, pgbarge};

/// A backup of `db` in a fresh temp folder.
fn backup_of(db: &str, args: &[&str]) -> (tempfile::TempDir, PathBuf) {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("b");
    let conn = cluster().conn(db);
    let mut a = vec!["backup", "-q", "-d", &conn];
    a.extend(["-o", dir.to_str().unwrap()]);
    a.extend(args);
    pgbarge(&a, &[]).expect_code(0);
    (t, dir)
}

/// A copy of a backup folder, to damage without touching the original.
fn copy_of(dir: &Path) -> (tempfile::TempDir, PathBuf) {
    let t = tempfile::tempdir().unwrap();
    let to = t.path().join("copy");
    let ok = Command::new("cp").arg("-a").arg(dir).arg(&to).status().unwrap().success();
    assert!(ok);
    (t, to)
}

fn verify(dir: &Path, extra: &[&str]) -> crate::common::Run {
    let mut a = vec!["verify", dir.to_str().unwrap()];
    a.extend(extra);
    pgbarge(&a, &[])
}

fn manifest_json(dir: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap()
}

fn write_manifest(dir: &Path, v: &serde_json::Value) {
    std::fs::write(dir.join("manifest.json"), serde_json::to_vec_pretty(v).unwrap()).unwrap();
}

/// The manifest entry of table `name`.
fn table_entry<'a>(v: &'a mut serde_json::Value, name: &str) -> &'a mut serde_json::Value {
    v["tables"].as_array_mut().unwrap().iter_mut().find(|t| t["name"] == name).unwrap()
}

fn file_of(dir: &Path, name: &str) -> String {
    let mut v = manifest_json(dir);
    table_entry(&mut v, name)["file"].as_str().unwrap().to_string()
}

#[test]
fn whole_backup_verifies_offline_live_and_against_expected_counts() {
    let c = cluster();
    let db = db_with("vf_whole", "erp/target.sql");
    let (_t, dir) = backup_of(&db, &[]);
    let expect = fixtures().join("erp/expect-target.csv");
    for extra in [
        vec![],
        vec!["--deep"],
        vec!["-j", "1"],
        vec!["-d", &c.conn(&db)],
        vec!["-d", &c.conn(&db), "--deep", "-j", "3"],
        vec!["--expect", expect.to_str().unwrap()],
    ] {
        let r = verify(&dir, &extra);
        r.expect_code(0);
        assert!(r.stdout.contains("OK: "), "{extra:?}: {}", r.stdout);
        assert!(!r.stdout.contains("problems:"), "{}", r.stdout);
    }
    let r = verify(&dir, &["-d", &c.conn(&db), "--deep", "--expect", expect.to_str().unwrap()]);
    r.expect_code(0);
    let line = r.stdout.lines().find(|l| l.starts_with("public.\"User\"")).unwrap().to_string();
    let cells: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(cells, ["public.\"User\"", "9", "9", "9", "OK"], "{}", r.stdout);
    assert!(r.stdout.contains("live fingerprints"), "{}", r.stdout);

    let r = verify(&dir, &["--json", "-d", &c.conn(&db)]);
    r.expect_code(0);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["ok"], true);
    assert_eq!(v["tables"].as_array().unwrap().len(), 11);
    let te = v["tables"].as_array().unwrap().iter().find(|t| t["name"] == "TimeEntry").unwrap();
    assert_eq!(te["backup_rows"], 48);
    assert_eq!(te["live_rows"], 48);
    assert_eq!(te["status"].as_array().unwrap().len(), 0);

    // -t narrows the check, and a pattern matching nothing in the backup is bad usage.
    let r = verify(&dir, &["-t", "Role", "-d", &c.conn(&db)]);
    r.expect_code(0);
    assert!(r.stdout.contains("public.\"Role\""), "{}", r.stdout);
    assert!(!r.stdout.contains("public.\"User\""), "{}", r.stdout);
    let r = verify(&dir, &["-t", "role"]);
    r.expect_code(2);
    assert!(r.stderr.contains("did you mean 'public.\"Role\"'"), "{}", r.stderr);
    // The hint names what lists the backup's tables, not the database's.
    assert!(r.stderr.contains("`pgbarge verify DIR` lists the backup's tables"), "{}", r.stderr);
    assert!(!r.stderr.contains("pgbarge list"), "{}", r.stderr);
}

#[test]
fn expect_names_the_true_line_after_blank_lines() {
    let db = db_with("vf_expect_line", "erp/target.sql");
    let (t, dir) = backup_of(&db, &["-t", "User"]);
    let f = t.path().join("counts.csv");
    std::fs::write(&f, "table,count\n\n\nUser,nine\n").unwrap();
    let r = verify(&dir, &["--expect", f.to_str().unwrap()]);
    r.expect_code(2);
    assert!(r.stderr.contains("counts.csv line 4: count \"nine\""), "{}", r.stderr);
}

#[test]
fn awkward_tables_verify_deep_against_the_live_database() {
    let c = cluster();
    let db = c.create_db("vf_awkward");
    c.psql(&db, crate::backup_command::AWKWARD);
    let (_t, dir) = backup_of(&db, &["--compress", "none"]);
    verify(&dir, &["--deep", "-d", &c.conn(&db)]).expect_code(0);
    let (_t2, dir2) = backup_of(&db, &[]);
    verify(&dir2, &["--deep", "-d", &c.conn(&db)]).expect_code(0);
}

/// Damage, then expect exit 1 and each of `needles` in stdout.
fn expect_damage(dir: &Path, needles: &[&str]) {
    let r = verify(dir, &["--deep"]);
    r.expect_code(1);
    for n in needles {
        assert!(r.stdout.contains(n), "missing {n:?} in:\n{}\n{}", r.stdout, r.stderr);
    }
    assert!(r.stdout.contains("DIFFERENT: "), "{}", r.stdout);
    assert!(!r.stderr.contains("panicked"), "{}", r.stderr);
}

#[test]
fn every_kind_of_damage_is_named() {
    let db = db_with("vf_damage", "erp/target.sql");
    let (_t, good) = backup_of(&db, &[]);
    let te = file_of(&good, "TimeEntry");
    let user = file_of(&good, "User");

    // One flipped byte in the middle of a compressed file.
    let (_a, d) = copy_of(&good);
    let p = d.join(&te);
    let mut bytes = std::fs::read(&p).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    std::fs::write(&p, &bytes).unwrap();
    expect_damage(&d, &[&te, "DAMAGED", "file sha256 is"]);

    // Truncated.
    let (_b, d) = copy_of(&good);
    let p = d.join(&te);
    let bytes = std::fs::read(&p).unwrap();
    std::fs::write(&p, &bytes[..bytes.len() - 10]).unwrap();
    expect_damage(&d, &[&te, "bytes, the manifest records", "does not decompress"]);

    // Missing.
    let (_c, d) = copy_of(&good);
    std::fs::remove_file(d.join(&user)).unwrap();
    expect_damage(&d, &[&format!("{user}: missing"), "FILE MISSING"]);

    // An extra file, and a left-over temporary one.
    let (_d, d) = copy_of(&good);
    std::fs::write(d.join("data/9999.public.extra.csv"), "a\n1\n").unwrap();
    std::fs::write(d.join(format!("{user}.tmp")), "x").unwrap();
    expect_damage(
        &d,
        &["data/9999.public.extra.csv: not listed in the manifest", "left-over temporary file"],
    );

    // An edited manifest count.
    let (_e, d) = copy_of(&good);
    let mut v = manifest_json(&d);
    table_entry(&mut v, "User")["rows"] = 10.into();
    write_manifest(&d, &v);
    expect_damage(&d, &[&format!("{user}: holds 9 records, the manifest records 10")]);

    // An edited SHA256SUMS line.
    let (_f, d) = copy_of(&good);
    let sums = std::fs::read_to_string(d.join("SHA256SUMS")).unwrap();
    let edited: String = sums
        .lines()
        .map(|l| {
            if l.ends_with(&user) {
                format!("{}{}\n", "0".repeat(64), &l[64..])
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    std::fs::write(d.join("SHA256SUMS"), edited).unwrap();
    expect_damage(&d, &["SHA256SUMS line", &format!("{user} has sha256 0000")]);

    // A valid zstd frame holding other data, with the file's size and sha256
    // updated everywhere, so only the content checks can catch it.
    let (_g, d) = copy_of(&good);
    let other = zstd::encode_all(&b"\"id\",\"name\"\n1,x\n"[..], 3).unwrap();
    std::fs::write(d.join(&user), &other).unwrap();
    let mut v = manifest_json(&d);
    let e = table_entry(&mut v, "User");
    let old_sha = e["file_sha256"].as_str().unwrap().to_string();
    e["file_sha256"] = pgbarge::format::digest::sha256_hex(&other).into();
    e["file_bytes"] = other.len().into();
    write_manifest(&d, &v);
    let sums = std::fs::read_to_string(d.join("SHA256SUMS")).unwrap();
    std::fs::write(
        d.join("SHA256SUMS"),
        sums.replace(&old_sha, &pgbarge::format::digest::sha256_hex(&other)),
    )
    .unwrap();
    expect_damage(
        &d,
        &[
            &format!("{user}: header is"),
            "CSV sha256 is",
            "holds 1 records, the manifest records 9",
        ],
    );
    // sha256sum -c alone would have passed this one.
    let ok = Command::new("sha256sum")
        .args(["-c", "--quiet", "SHA256SUMS"])
        .current_dir(&d)
        .status()
        .unwrap()
        .success();
    assert!(ok);
}

#[test]
fn an_interrupted_backup_is_reported_incomplete() {
    let db = db_with("vf_incomplete", "erp/target.sql");
    let (_t, good) = backup_of(&db, &[]);
    let (_a, d) = copy_of(&good);
    std::fs::remove_file(d.join("manifest.json")).unwrap();
    let r = verify(&d, &[]);
    r.expect_code(1);
    assert!(r.stderr.contains("no manifest.json: the backup is incomplete"), "{}", r.stderr);

    let r = verify(Path::new("/nonexistent/backup"), &[]);
    r.expect_code(2);
    assert!(
        r.stderr.contains("/nonexistent/backup: no such backup (no such folder)"),
        "{}",
        r.stderr
    );

    // A manifest from a newer pgbarge is bad input, not damage.
    let (_b, d) = copy_of(&good);
    let mut v = manifest_json(&d);
    v["format_version"] = 99.into();
    write_manifest(&d, &v);
    let r = verify(&d, &[]);
    r.expect_code(2);
    assert!(r.stderr.contains("format version 99"), "{}", r.stderr);
}

#[test]
fn live_differences_are_named_per_table() {
    let c = cluster();
    let db = db_with("vf_live", "erp/target.sql");
    let (_t, dir) = backup_of(&db, &[]);
    c.psql(&db, "DELETE FROM \"TimeEntry\" WHERE id IN (SELECT id FROM \"TimeEntry\" LIMIT 3)");
    c.psql(&db, "UPDATE \"Customer\" SET name = name || ' (renamed)' WHERE code = (SELECT min(code) FROM \"Customer\")");
    c.psql(&db, "DROP TABLE \"AuditLog\"");
    c.psql(&db, "CREATE TABLE \"NewTable\" (id int); INSERT INTO \"NewTable\" VALUES (1), (2)");

    // Counts only: the renamed customer is not seen, the rest is.
    let r = verify(&dir, &["-d", &c.conn(&db)]);
    r.expect_code(1);
    let status = |out: &str, table: &str| -> String {
        out.lines().find(|l| l.starts_with(table)).unwrap_or_default().to_string()
    };
    assert!(status(&r.stdout, "public.\"TimeEntry\"").ends_with("ROWS DIFFER"), "{}", r.stdout);
    assert!(status(&r.stdout, "public.\"Customer\"").ends_with("OK"), "{}", r.stdout);
    assert!(
        status(&r.stdout, "public.\"AuditLog\"").ends_with("MISSING IN DATABASE"),
        "{}",
        r.stdout
    );
    assert!(status(&r.stdout, "public.\"NewTable\"").ends_with("NOT IN BACKUP"), "{}", r.stdout);
    assert!(r.stdout.contains("the backup holds 48 rows, the database 45"), "{}", r.stdout);

    // Deep: the changed value is found too.
    let r = verify(&dir, &["-d", &c.conn(&db), "--deep"]);
    r.expect_code(1);
    assert!(status(&r.stdout, "public.\"Customer\"").ends_with("CONTENT DIFFERS"), "{}", r.stdout);
    assert!(status(&r.stdout, "public.\"User\"").ends_with("OK"), "{}", r.stdout);

    // A per-table backup is not compared with tables it never meant to hold.
    let (_t2, role) = backup_of(&db, &["-t", "Role"]);
    verify(&role, &["-d", &c.conn(&db), "--deep"]).expect_code(0);
}

#[test]
fn expected_counts_are_checked() {
    let db = db_with("vf_expect", "erp/target.sql");
    let (_t, dir) = backup_of(&db, &[]);
    let f = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(f.path(), "table,count\n# users first\nUser,10\npublic.\"Role\",0\nGhost,1\n")
        .unwrap();
    let r = verify(&dir, &["--expect", f.path().to_str().unwrap()]);
    r.expect_code(1);
    assert!(r.stdout.contains("NOT AS EXPECTED"), "{}", r.stdout);
    assert!(r.stdout.contains("the backup holds 9 rows"), "{}", r.stdout);
    assert!(r.stdout.contains("line 3 expects 10"), "{}", r.stdout);
    assert!(r.stdout.contains("'Ghost', and the backup has no such table"), "{}", r.stdout);

    std::fs::write(f.path(), "name,rows\nUser,9\n").unwrap();
    let r = verify(&dir, &["--expect", f.path().to_str().unwrap()]);
    r.expect_code(2);
    assert!(r.stderr.contains("line 1: the header is `name,rows`"), "{}", r.stderr);
    std::fs::write(f.path(), "table,count\nUser,nine\n").unwrap();
    let r = verify(&dir, &["--expect", f.path().to_str().unwrap()]);
    r.expect_code(2);
    assert!(r.stderr.contains("line 2: count \"nine\""), "{}", r.stderr);
}

#[test]
fn unreachable_database_and_password_stay_clean() {
    let c = cluster();
    let db = db_with("vf_conn", "erp/target.sql");
    let (_t, dir) = backup_of(&db, &[]);
    let r = verify(&dir, &["-d", "host=127.0.0.1 port=1 dbname=x connect_timeout=2"]);
    r.expect_code(3);
    assert!(r.stderr.contains("cannot connect"), "{}", r.stderr);

    c.psql(&db, &format!("GRANT SELECT ON ALL TABLES IN SCHEMA public TO {PW_USER}"));
    let url =
        format!("postgresql://{PW_USER}:{PW_PASSWORD}@127.0.0.1:{}/{db}?sslmode=disable", c.port);
    verify(&dir, &["-d", &url, "--deep"]).expect_code(0).expect_no_password();
    let bad = format!(
        "postgresql://{PW_USER}:wrong-{PW_PASSWORD}@127.0.0.1:{}/{db}?sslmode=disable",
        c.port
    );
    let r = verify(&dir, &["-d", &bad]);
    r.expect_code(3).expect_no_password();
    assert!(r.stderr.contains("password authentication failed"), "{}", r.stderr);
}
