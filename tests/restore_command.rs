//! `pgbarge restore` against real backups and databases: the runbook's
//! rollback of two damaged tables, a whole restore with --schema, checks on
//! the way that abort and roll back, and bad input refused before writing.

use std::path::{Path, PathBuf};

use crate::common::{cluster, db_with, digest_of, fixtures, pgbarge};

fn backup_of(db: &str, args: &[&str]) -> (tempfile::TempDir, PathBuf) {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("b");
    let conn = cluster().conn(db);
    let mut a = vec!["backup", "-q", "-d", &conn, "-o", dir.to_str().unwrap()];
    a.extend(args);
    pgbarge(&a, &[]).expect_code(0);
    (t, dir)
}

fn restore(dir: &Path, db: &str, extra: &[&str]) -> crate::common::Run {
    let conn = cluster().conn(db);
    let mut a = vec!["restore", dir.to_str().unwrap(), "-d", &conn];
    a.extend(extra);
    pgbarge(&a, &[])
}

fn count(db: &str, table: &str) -> i64 {
    cluster().psql(db, &format!("SELECT count(*) FROM {table}")).parse().unwrap()
}

/// The ERP target after its migration and the role copy: every table has rows.
pub(crate) fn migrated_target(name: &str) -> String {
    let c = cluster();
    let src = db_with(&format!("{name}_src"), "erp/source.sql");
    let tgt = db_with(name, "erp/target.sql");
    let mut files: Vec<_> = std::fs::read_dir(fixtures().join("erp/migrations"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    for f in files.iter().take(6) {
        c.psql_file(&tgt, f);
    }
    let (s, t) = (c.conn(&src), c.conn(&tgt));
    pgbarge(
        &[
            &["copy", "-q", "--source", &s, "--target", &t][..],
            &crate::copy_command::ROLE_TABLES[..],
        ]
        .concat(),
        &[],
    )
    .expect_code(0);
    tgt
}

#[test]
fn rollback_of_two_damaged_tables_leaves_the_others_alone() {
    let c = cluster();
    let db = migrated_target("rs_rollback");
    let (_t, dir) = backup_of(&db, &[]);
    c.psql(&db, "DELETE FROM \"Role\" WHERE name = (SELECT min(name) FROM \"Role\")");
    c.psql(&db, "TRUNCATE \"UserPermission\"");
    c.psql(&db, "UPDATE \"Customer\" SET name = 'damaged'");
    c.psql(&db, "DELETE FROM \"TimeEntry\" WHERE id > 40");
    let others = |db: &str| -> String {
        digest_of(db)
            .split(',')
            .filter(|t| !t.starts_with("Role:") && !t.starts_with("UserPermission:"))
            .collect::<Vec<_>>()
            .join(",")
    };
    let before = others(&db);

    // Role is referenced by tables that are not restored: their rows are
    // kept (Role is emptied with DELETE, triggers off) and checked afterwards.
    let r = restore(
        &dir,
        &db,
        &["-t", "Role", "-t", "UserPermission", "--mode", "truncate", "--disable-triggers"],
    );
    r.expect_code(0);
    assert!(r.stdout.contains("restore complete: 2 tables"), "{}", r.stdout);
    let conn = c.conn(&db);
    let v = pgbarge(
        &[
            "verify",
            dir.to_str().unwrap(),
            "-d",
            &conn,
            "-t",
            "Role",
            "-t",
            "UserPermission",
            "--deep",
        ],
        &[],
    );
    v.expect_code(0);
    assert!(v.stdout.contains("matches the database"), "{}", v.stdout);
    // The other tables are as the damage left them, audit log included.
    assert_eq!(others(&db), before, "a table outside the restore changed");
    assert_eq!(c.psql(&db, "SELECT DISTINCT name FROM \"Customer\""), "damaged");

    // Without --disable-triggers, truncating Role alone is refused before writing.
    let r = restore(&dir, &db, &["-t", "Role", "--mode", "truncate"]);
    r.expect_code(2);
    assert!(r.stderr.contains("TRUNCATE cannot empty it alone"), "{}", r.stderr);

    // A kept row whose parent the backup does not hold: rolled back, exit 1.
    c.psql(&db, "INSERT INTO \"Role\" (id, name) VALUES ('20000000-0000-4000-8000-0000000000ff', 'new role');
        INSERT INTO \"RolePermission\" (\"roleId\", \"permissionCode\") SELECT '20000000-0000-4000-8000-0000000000ff', min(code) FROM \"Permission\"");
    let r = restore(&dir, &db, &["-t", "Role", "--mode", "truncate", "--disable-triggers"]);
    r.expect_code(1);
    assert!(
        r.stderr.contains(
            "1 rows of public.\"RolePermission\" would reference rows of public.\"Role\""
        ),
        "{}",
        r.stderr
    );
    assert_eq!(count(&db, "\"Role\" WHERE name = 'new role'"), 1);
    let v = pgbarge(&["verify", dir.to_str().unwrap(), "-d", &conn, "--deep"], &[]);
    v.expect_code(1);
}

#[test]
fn whole_restore_with_schema_into_an_empty_database() {
    let c = cluster();
    let db = migrated_target("rs_schema");
    let (_t, dir) = backup_of(&db, &["--schema"]);
    let fresh = c.create_db("rs_schema_fresh");
    let r = restore(&dir, &fresh, &["--schema", "--dry-run"]);
    r.expect_code(0);
    assert_eq!(c.psql(&fresh, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"), "0");
    // Triggers off, or the audit trigger would log the restore's own inserts.
    let r = restore(&dir, &fresh, &["--schema", "--disable-triggers"]);
    r.expect_code(0);
    assert_eq!(digest_of(&fresh), digest_of(&db));
    let conn = c.conn(&fresh);
    pgbarge(&["verify", dir.to_str().unwrap(), "-d", &conn, "--deep"], &[]).expect_code(0);
    // Sequences are where the source had them: the next id follows the restored ones.
    let max: i64 = c.psql(&fresh, "SELECT max(id) FROM \"TimeEntry\"").parse().unwrap();
    let next: i64 = c.psql(&fresh, "SELECT nextval('\"TimeEntry_id_seq\"')").parse().unwrap();
    assert!(next > max, "{next} <= {max}");
    // In parallel, a transaction per table, parents before children.
    let par = c.create_db("rs_schema_parallel");
    restore(&dir, &par, &["--schema", "--disable-triggers", "--per-table-commit", "-j", "3"])
        .expect_code(0);
    assert_eq!(digest_of(&par), digest_of(&db));
    // --schema refuses a database that has tables.
    let r = restore(&dir, &fresh, &["--schema"]);
    r.expect_code(2);
    assert!(r.stderr.contains("--schema needs an empty target database"), "{}", r.stderr);
}

#[test]
fn awkward_values_restore_whole() {
    let c = cluster();
    let db = c.create_db("rs_awkward");
    c.psql(&db, crate::backup_command::AWKWARD);
    let (_t, dir) = backup_of(&db, &["--schema"]);
    let fresh = c.create_db("rs_awkward_fresh");
    restore(&dir, &fresh, &["--schema"]).expect_code(0);
    assert_eq!(
        c.psql(&fresh, "SELECT t FROM texts WHERE id = 5"),
        c.psql(&db, "SELECT t FROM texts WHERE id = 5")
    );
    assert_eq!(count(&fresh, "parts"), 200);
    assert_eq!(count(&fresh, "nocols"), 3);
    let conn = c.conn(&fresh);
    pgbarge(&["verify", dir.to_str().unwrap(), "-d", &conn, "--deep"], &[]).expect_code(0);
}

/// Damages a copy of a backup in place.
type Damage<'a> = Box<dyn Fn(&Path) + 'a>;

#[test]
fn damaged_files_abort_and_roll_back() {
    let c = cluster();
    let db = migrated_target("rs_damage");
    let (_t, good) = backup_of(&db, &[]);
    let m = pgbarge::storage::manifest::Manifest::read(&good).unwrap();
    let te = m.tables.iter().find(|t| t.name == "TimeEntry").unwrap().file.clone();
    let tgt = c.create_db("rs_damage_tgt");
    c.psql_file(&tgt, &fixtures().join("erp/target.sql"));
    let before = digest_of(&tgt);
    let cases: Vec<(&str, Damage<'_>, &str)> = vec![
        (
            "flipped byte",
            Box::new(|d: &Path| {
                let p = d.join(&te);
                let mut b = std::fs::read(&p).unwrap();
                let mid = b.len() / 2;
                b[mid] ^= 0x10;
                std::fs::write(&p, b).unwrap();
            }),
            "does not decompress",
        ),
        (
            "truncated",
            Box::new(|d: &Path| {
                let p = d.join(&te);
                let b = std::fs::read(&p).unwrap();
                std::fs::write(&p, &b[..b.len() - 7]).unwrap();
            }),
            // Refused before anything is read: the size differs.
            "bytes, the manifest records",
        ),
        (
            "other data",
            Box::new(|d: &Path| {
                // Other CSV, padded with a zstd skippable frame to the recorded
                // size, so only reading it shows the difference.
                let size = std::fs::metadata(d.join(&te)).unwrap().len() as usize;
                let mut b = zstd::encode_all(&b"id\n1\n"[..], 3).unwrap();
                let pad = size - b.len() - 8;
                b.extend_from_slice(&[0x50, 0x2A, 0x4D, 0x18]);
                b.extend_from_slice(&(pad as u32).to_le_bytes());
                b.resize(size, 0);
                std::fs::write(d.join(&te), b).unwrap();
            }),
            "header is `id`",
        ),
    ];
    for (case, damage, needle) in cases {
        let t = tempfile::tempdir().unwrap();
        let d = t.path().join("copy");
        assert!(
            std::process::Command::new("cp")
                .arg("-a")
                .arg(&good)
                .arg(&d)
                .status()
                .unwrap()
                .success()
        );
        damage(&d);
        let r = restore(
            &d,
            &tgt,
            &["-t", "TimeEntry", "-t", "Customer", "--mode", "truncate", "--cascade"],
        );
        r.expect_code(1);
        assert!(r.stderr.contains(needle), "{case}: {}", r.stderr);
        assert!(r.stderr.contains(&te), "{case}: {}", r.stderr);
        assert_eq!(digest_of(&tgt), before, "{case}: the target changed");
    }
}

#[test]
fn bad_input_is_refused_before_writing() {
    let c = cluster();
    let db = db_with("rs_bad", "erp/target.sql");
    let (_t, good) = backup_of(&db, &[]);

    // Rows under --mode fail.
    let r = restore(&good, &db, &["-t", "User"]);
    r.expect_code(2);
    assert!(
        r.stderr.contains("--mode fail: target table is not empty: public.\"User\""),
        "{}",
        r.stderr
    );

    // A pattern matching nothing in the backup names the close ones.
    let r = restore(&good, &db, &["-t", "user"]);
    r.expect_code(2);
    assert!(r.stderr.contains("did you mean 'public.\"User\"'"), "{}", r.stderr);

    // A target missing a table, or a column.
    let other = c.create_db("rs_bad_other");
    c.psql(&other, "CREATE TABLE \"Customer\" (code text PRIMARY KEY, name text)");
    let r = restore(&good, &other, &["-t", "Customer", "-t", "Job"]);
    r.expect_code(2);
    assert!(r.stderr.contains("the target has no table public.\"Job\""), "{}", r.stderr);
    assert!(
        r.stderr.contains("column \"billingAddress\" is not in the target table"),
        "{}",
        r.stderr
    );
    assert_eq!(count(&other, "\"Customer\""), 0);

    // A manifest from a newer pgbarge, and no manifest at all.
    let t = tempfile::tempdir().unwrap();
    let d = t.path().join("copy");
    assert!(
        std::process::Command::new("cp").arg("-a").arg(&good).arg(&d).status().unwrap().success()
    );
    let text = std::fs::read_to_string(d.join("manifest.json")).unwrap();
    std::fs::write(
        d.join("manifest.json"),
        text.replace("\"format_version\": 2", "\"format_version\": 7"),
    )
    .unwrap();
    let r = restore(&d, &other, &[]);
    r.expect_code(2);
    assert!(r.stderr.contains("format version 7"), "{}", r.stderr);
    std::fs::remove_file(d.join("manifest.json")).unwrap();
    let r = restore(&d, &other, &[]);
    r.expect_code(1);
    assert!(r.stderr.contains("the backup is incomplete"), "{}", r.stderr);
}

/// Issue: `restore --schema` ran the whole schema before the rows, so a table
/// whose rows violate a `CHECK ... NOT VALID` constraint (pg_dump puts it in
/// post-data) could not be restored.
#[test]
fn schema_restore_runs_post_data_after_the_rows() {
    let c = cluster();
    let db = c.create_db("rs_sections");
    c.psql(
        &db,
        "CREATE TABLE pos (id int PRIMARY KEY, x int);
         INSERT INTO pos VALUES (1, -1), (2, 5);
         ALTER TABLE pos ADD CONSTRAINT nv_pos CHECK (x > 0) NOT VALID;
         CREATE TABLE log (n int);
         CREATE FUNCTION log_it() RETURNS trigger LANGUAGE plpgsql AS
           $$ BEGIN INSERT INTO log VALUES (NEW.id); RETURN NEW; END $$;
         CREATE TRIGGER pos_log AFTER INSERT ON pos FOR EACH ROW EXECUTE FUNCTION log_it();",
    );
    let (_t, dir) = backup_of(&db, &["--schema"]);
    for f in ["schema-pre.sql", "schema-post.sql"] {
        assert!(dir.join(f).is_file(), "{f}");
    }
    assert!(!dir.join("schema.sql").exists());
    let pre = std::fs::read_to_string(dir.join("schema-pre.sql")).unwrap();
    assert!(pre.contains("CREATE TABLE public.pos") && !pre.contains("nv_pos"), "{pre}");
    pgbarge(&["verify", "-q", dir.to_str().unwrap()], &[]).expect_code(0);

    let fresh = c.create_db("rs_sections_fresh");
    // No --disable-triggers: triggers are post-data, created after the rows.
    restore(&dir, &fresh, &["--schema", "-q"]).expect_code(0);
    assert_eq!(digest_of(&fresh), digest_of(&db));
    assert_eq!(
        c.psql(&fresh, "SELECT convalidated FROM pg_constraint WHERE conname = 'nv_pos'"),
        "f"
    );
    assert_eq!(c.psql(&fresh, "SELECT count(*) FROM pg_trigger WHERE tgname = 'pos_log'"), "1");
    assert_eq!(
        c.psql(&fresh, "SELECT count(*) FROM pg_index WHERE indrelid = 'pos'::regclass"),
        "1"
    );

    // A post-data failure rolls everything back, the pre-data too.
    let broken = c.create_db("rs_sections_broken");
    c.psql(&broken, "CREATE ROLE rs_sections_gone");
    let post = dir.join("schema-post.sql");
    let mut text = std::fs::read_to_string(&post).unwrap();
    text.push_str("\nALTER TABLE public.pos VALIDATE CONSTRAINT nv_pos;\n");
    std::fs::write(&post, &text).unwrap();
    let m = dir.join("manifest.json");
    let manifest = std::fs::read_to_string(&m).unwrap();
    let parsed = pgbarge::storage::manifest::Manifest::read(&dir).unwrap();
    let old = parsed.schema_post_sha256.clone().unwrap();
    let new = pgbarge::format::digest::sha256_hex(text.as_bytes());
    std::fs::write(&m, manifest.replace(&old, &new)).unwrap();
    let r = restore(&dir, &broken, &["--schema"]);
    r.expect_code(3);
    assert!(r.stderr.contains("schema-post.sql failed"), "{}", r.stderr);
    assert!(r.stderr.contains("nv_pos"), "{}", r.stderr);
    assert_eq!(c.psql(&broken, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"), "0");
}

/// Backups taken before the schema was split hold one `schema.sql`
/// (manifest format 1); they still restore.
#[test]
fn format_1_backups_with_one_schema_file_still_restore() {
    let c = cluster();
    let db = c.create_db("rs_format1");
    c.psql(
        &db,
        "CREATE TABLE t (id serial PRIMARY KEY, v text); INSERT INTO t (v) VALUES ('a'), ('b')",
    );
    let (_t, dir) = backup_of(&db, &["--schema"]);
    // Rewrite it as format 1 left it: schema.sql, schema_sha256.
    let out = c.pg_dump_cmd(&db).arg("--schema-only").output().unwrap();
    assert!(out.status.success());
    std::fs::write(dir.join("schema.sql"), &out.stdout).unwrap();
    std::fs::remove_file(dir.join("schema-pre.sql")).unwrap();
    std::fs::remove_file(dir.join("schema-post.sql")).unwrap();
    let m = dir.join("manifest.json");
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&m).unwrap()).unwrap();
    let o = v.as_object_mut().unwrap();
    o.remove("schema_pre_sha256");
    o.remove("schema_post_sha256");
    o.insert("format_version".into(), 1.into());
    o.insert("schema_sha256".into(), pgbarge::format::digest::sha256_hex(&out.stdout).into());
    std::fs::write(&m, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
    pgbarge(&["verify", "-q", dir.to_str().unwrap()], &[]).expect_code(0);
    let fresh = c.create_db("rs_format1_fresh");
    restore(&dir, &fresh, &["--schema", "-q"]).expect_code(0);
    assert_eq!(digest_of(&fresh), digest_of(&db));
}

/// The thread reading files ahead stops when the load fails: here the first
/// table's key clash fails the load while the thread waits for room with a
/// later table's megabytes (more than the read-ahead holds). The restore
/// ends at once with the server's error, naming the table, and loads
/// nothing; a damaged file further on is not what is reported.
#[test]
fn a_load_failing_stops_the_files_read_ahead() {
    let c = cluster();
    let schema = "CREATE TABLE parent (id int PRIMARY KEY);
                  CREATE TABLE child (id int PRIMARY KEY, parent int REFERENCES parent, pad text);
                  CREATE TABLE later (id int PRIMARY KEY, parent int REFERENCES parent);";
    let db = c.create_db("rs_ahead_stop");
    c.psql(&db, schema);
    c.psql(
        &db,
        "INSERT INTO parent VALUES (1);
         INSERT INTO child SELECT g, 1, repeat(md5(g::text), 4) FROM generate_series(1, 40000) g;
         INSERT INTO later VALUES (1, 1);",
    );
    let (_t, dir) = backup_of(&db, &[]);
    let m = pgbarge::storage::manifest::Manifest::read(&dir).unwrap();
    let later = dir.join(&m.tables.iter().find(|t| t.name == "later").unwrap().file);
    let mut b = std::fs::read(&later).unwrap();
    let mid = b.len() / 2;
    b[mid] ^= 0x10;
    std::fs::write(&later, b).unwrap();

    let tgt = c.create_db("rs_ahead_stop_tgt");
    c.psql(&tgt, schema);
    c.psql(&tgt, "INSERT INTO parent VALUES (1)");
    let conn = c.conn(&tgt);
    let (r, _) = crate::common::pgbarge_within(
        &["restore", dir.to_str().unwrap(), "-d", &conn, "--mode", "append"],
        std::time::Duration::from_secs(60),
    );
    r.expect_code(3);
    assert!(r.stderr.contains("parent"), "{}", r.stderr);
    assert!(r.stderr.contains("duplicate key"), "{}", r.stderr);
    assert!(!r.stderr.contains("does not decompress"), "{}", r.stderr);
    assert_eq!(count(&tgt, "child"), 0);
    assert_eq!(count(&tgt, "later"), 0);
    assert_eq!(count(&tgt, "parent"), 1);
}

/// The backup is checked while the target connects: a damaged backup is
/// still what is reported when the target cannot be reached, and at once
/// when the target's connection hangs, not after its timeout.
#[test]
fn a_damaged_backup_is_reported_before_the_targets_connection() {
    let db = db_with("rs_damaged_first", "erp/source.sql");
    let (_t, dir) = backup_of(&db, &[]);
    let m = pgbarge::storage::manifest::Manifest::read(&dir).unwrap();
    let file = dir.join(&m.tables[0].file);
    let bytes = std::fs::read(&file).unwrap();
    std::fs::write(&file, &bytes[..bytes.len() - 1]).unwrap();
    let expect_damage = |r: &crate::common::Run| {
        r.expect_code(1);
        assert!(r.stderr.contains("bytes, the manifest records"), "{}", r.stderr);
        assert!(r.stderr.contains("nothing was restored"), "{}", r.stderr);
    };

    // Nothing listens: the connection fails first, the backup's error is reported.
    let refused = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let conn = format!("host=127.0.0.1 port={refused} dbname=x connect_timeout=30");
    let r = pgbarge(&["restore", dir.to_str().unwrap(), "-d", &conn], &[]);
    expect_damage(&r);

    // A listener that never answers: the connection would wait out its
    // 30 s; the damaged backup ends the run well before.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let conn = format!("host=127.0.0.1 port={port} dbname=x connect_timeout=30");
    let (r, took) = crate::common::pgbarge_within(
        &["restore", dir.to_str().unwrap(), "-d", &conn],
        std::time::Duration::from_secs(20),
    );
    expect_damage(&r);
    assert!(took < std::time::Duration::from_secs(10), "took {took:?}");
    drop(silent);
}
