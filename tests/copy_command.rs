//! `pgbarge copy` between real databases: the ERP runbook's copy (failing on
//! the missing column, then succeeding after the DDL file), every mode,
//! columns by name, triggers, sequences, cycles, the checks before commit,
//! and failures that leave the target exactly as it was.

use std::process::Stdio;

use crate::common::{PW_PASSWORD, PW_USER, cluster, db_with, digest_of, fixtures, pgbarge};

pub(crate) const ROLE_TABLES: [&str; 12] = [
    "-t",
    "Role",
    "-t",
    "Permission",
    "-t",
    "RolePermission",
    "-t",
    "RoleAssignment",
    "-t",
    "UserPermission",
    "-t",
    "TimeEntryRejectionNote",
];

use crate::common::copy_dbs as copy;

fn count(db: &str, table: &str) -> i64 {
    cluster().psql(db, &format!("SELECT count(*) FROM {table}")).parse().unwrap()
}

fn migrate(db: &str, upto: u32) {
    let c = cluster();
    let mut files: Vec<_> = std::fs::read_dir(fixtures().join("erp/migrations"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    for f in files.iter().take(upto as usize) {
        c.psql_file(db, f);
    }
}

#[test]
fn erp_copy_fails_on_the_missing_column_then_succeeds_after_the_ddl() {
    let c = cluster();
    let src = db_with("cp_erp_src", "erp/source.sql");
    let tgt = db_with("cp_erp_tgt", "erp/target.sql");
    let before = digest_of(&tgt);
    let r = copy(&src, &tgt, &ROLE_TABLES);
    r.expect_code(2);
    assert!(
        r.stderr.contains("table public.\"TimeEntryRejectionNote\": column \"resolvedAt\" is not in the target table"),
        "{}",
        r.stderr
    );
    assert_eq!(digest_of(&tgt), before, "the target changed");

    migrate(&tgt, 6);
    let audit_before = count(&tgt, "\"AuditLog\"");
    let mut args = ROLE_TABLES.to_vec();
    args.push("--verify=deep");
    let r = copy(&src, &tgt, &args);
    r.expect_code(0);
    assert!(r.stdout.contains("copy complete: 6 tables, 52 rows"), "{}", r.stdout);
    assert!(r.stdout.contains("triggers fired: Role_audit"), "{}", r.stdout);
    for (t, n) in [
        ("Role", 4),
        ("Permission", 10),
        ("RolePermission", 15),
        ("RoleAssignment", 11),
        ("UserPermission", 6),
        ("TimeEntryRejectionNote", 6),
    ] {
        assert_eq!(count(&tgt, &format!("\"{t}\"")), n, "{t}");
    }
    // The target's extra nullable column loads as NULL; the audit trigger wrote its rows.
    assert_eq!(count(&tgt, "\"Role\" WHERE \"legacyCode\" IS NULL"), 4);
    assert_eq!(count(&tgt, "\"AuditLog\""), audit_before + 10);
    // The same content as the source, by a query independent of pgbarge.
    let digest = |db: &str| {
        c.psql(
            db,
            "SELECT md5(string_agg(t::text, '|' ORDER BY t::text)) FROM \"UserPermission\" t",
        )
    };
    assert_eq!(digest(&src), digest(&tgt));
}

#[test]
fn modes_fail_truncate_append_skip_upsert() {
    let c = cluster();
    let src = c.create_db("cp_modes_src");
    let tgt = c.create_db("cp_modes_tgt");
    let schema = "CREATE TABLE item (id int PRIMARY KEY, name text NOT NULL, note text);";
    c.psql(&src, schema);
    c.psql(&tgt, schema);
    c.psql(&src, "INSERT INTO item SELECT g, 'src ' || g, NULL FROM generate_series(1, 5) g");
    c.psql(&tgt, "INSERT INTO item VALUES (4, 'tgt 4', 'kept'), (9, 'tgt 9', 'kept')");

    let r = copy(&src, &tgt, &["-t", "item"]);
    r.expect_code(2);
    assert!(
        r.stderr.contains("--mode fail: target table is not empty: public.item"),
        "{}",
        r.stderr
    );
    assert_eq!(count(&tgt, "item"), 2);

    let r = copy(&src, &tgt, &["-t", "item", "--mode", "append"]);
    r.expect_code(3);
    assert!(r.stderr.contains("duplicate key value violates unique constraint"), "{}", r.stderr);
    assert!(r.stderr.contains("TARGET"), "{}", r.stderr);
    assert_eq!(c.psql(&tgt, "SELECT string_agg(id::text, ',' ORDER BY id) FROM item"), "4,9");

    let r = copy(&src, &tgt, &["-t", "item", "--mode", "skip", "--verify"]);
    r.expect_code(0);
    assert!(r.stdout.contains("4 inserted, 1 skipped"), "{}", r.stdout);
    assert_eq!(c.psql(&tgt, "SELECT name FROM item WHERE id = 4"), "tgt 4");
    assert_eq!(count(&tgt, "item"), 6);

    let r = copy(&src, &tgt, &["-t", "item", "--mode", "upsert", "--verify"]);
    r.expect_code(0);
    assert!(r.stdout.contains("0 inserted, 5 updated"), "{}", r.stdout);
    assert_eq!(
        c.psql(&tgt, "SELECT name || '/' || coalesce(note, 'null') FROM item WHERE id = 4"),
        "src 4/null"
    );
    assert_eq!(c.psql(&tgt, "SELECT note FROM item WHERE id = 9"), "kept");

    let r = copy(&src, &tgt, &["-t", "item", "--mode", "truncate", "--verify=deep"]);
    r.expect_code(0);
    assert_eq!(c.psql(&tgt, "SELECT string_agg(id::text, ',' ORDER BY id) FROM item"), "1,2,3,4,5");

    // skip and upsert need a key; deep verification needs fail or truncate.
    c.psql(&src, "CREATE TABLE nokey (v int); INSERT INTO nokey VALUES (1)");
    c.psql(&tgt, "CREATE TABLE nokey (v int)");
    let r = copy(&src, &tgt, &["-t", "nokey", "--mode", "skip"]);
    r.expect_code(2);
    assert!(r.stderr.contains("--mode skip needs a primary key or unique index"), "{}", r.stderr);
    let r = copy(&src, &tgt, &["-t", "nokey", "--mode", "append", "--verify=deep"]);
    r.expect_code(2);
    assert!(r.stderr.contains("--verify=deep needs --mode fail or truncate"), "{}", r.stderr);
}

#[test]
fn truncate_of_a_referenced_table_needs_cascade() {
    let c = cluster();
    let src = c.create_db("cp_casc_src");
    let tgt = c.create_db("cp_casc_tgt");
    let schema = "CREATE TABLE parent (id int PRIMARY KEY); CREATE TABLE child (id int PRIMARY KEY, p int REFERENCES parent);";
    c.psql(&src, schema);
    c.psql(&tgt, schema);
    c.psql(&src, "INSERT INTO parent VALUES (1), (2)");
    c.psql(&tgt, "INSERT INTO parent VALUES (7); INSERT INTO child VALUES (1, 7)");
    let r = copy(&src, &tgt, &["-t", "parent", "--mode", "truncate"]);
    r.expect_code(2);
    assert!(r.stderr.contains("referenced by public.child"), "{}", r.stderr);
    assert!(r.stderr.contains("--cascade"), "{}", r.stderr);
    assert_eq!(count(&tgt, "child"), 1);
    copy(&src, &tgt, &["-t", "parent", "--mode", "truncate", "--cascade"]).expect_code(0);
    assert_eq!(count(&tgt, "child"), 0);
    assert_eq!(count(&tgt, "parent"), 2);
}

/// Issue 16: `--cascade` empties tables outside the selection; the dry run
/// and the summary name each one with the rows it held.
#[test]
fn cascade_names_every_extra_table_it_empties_with_its_rows() {
    let src = crate::common::db_with("cp_casc_erp_src", "erp/source.sql");
    let tgt = crate::restore_command::migrated_target("cp_casc_erp");
    let args = ["-t", "Role", "--mode", "truncate", "--cascade"];
    let r = copy(&src, &tgt, &[&args[..], &["--dry-run"]].concat());
    r.expect_code(0);
    assert!(
        r.stdout.contains("--cascade would also empty tables outside the selection:"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("    public.\"RoleAssignment\" (11 rows)"), "{}", r.stdout);
    assert!(r.stdout.contains("    public.\"RolePermission\" (15 rows)"), "{}", r.stdout);
    assert_eq!(count(&tgt, "\"RolePermission\""), 15);

    let r = copy(&src, &tgt, &args);
    r.expect_code(0);
    assert!(
        r.stdout.contains("--cascade also emptied tables outside the selection:"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("    public.\"RoleAssignment\" (11 rows)"), "{}", r.stdout);
    assert!(r.stdout.contains("    public.\"RolePermission\" (15 rows)"), "{}", r.stdout);
    assert_eq!(count(&tgt, "\"RolePermission\""), 0);
    assert_eq!(count(&tgt, "\"Role\""), 4);
}

#[test]
fn cycles_are_deferred_or_refused_and_self_references_load() {
    let c = cluster();
    let src = c.create_db("cp_cyc_src");
    let tgt = c.create_db("cp_cyc_tgt");
    let schema = |deferrable: &str| {
        format!(
            "CREATE TABLE a (id int PRIMARY KEY, b_id int);
             CREATE TABLE b (id int PRIMARY KEY, a_id int REFERENCES a {deferrable});
             ALTER TABLE a ADD CONSTRAINT a_b FOREIGN KEY (b_id) REFERENCES b {deferrable};
             CREATE TABLE tree (id int PRIMARY KEY, parent int REFERENCES tree);"
        )
    };
    c.psql(&src, &schema(""));
    c.psql(&src, "BEGIN; SET CONSTRAINTS ALL IMMEDIATE; INSERT INTO a VALUES (1, NULL); INSERT INTO b VALUES (1, 1); UPDATE a SET b_id = 1; COMMIT;");
    c.psql(&src, "INSERT INTO tree VALUES (1, NULL), (2, 1), (3, 2); UPDATE tree SET parent = 3 WHERE id = 1");
    c.psql(&tgt, &schema(""));
    let r = copy(&src, &tgt, &[]);
    r.expect_code(2);
    assert!(r.stderr.contains("reference each other in a cycle"), "{}", r.stderr);
    assert!(r.stderr.contains("--disable-triggers"), "{}", r.stderr);
    // As superuser, --disable-triggers loads them (FK checks are triggers too).
    copy(&src, &tgt, &["--disable-triggers"]).expect_code(0);
    assert_eq!(count(&tgt, "a"), 1);

    let tgt2 = c.create_db("cp_cyc_tgt2");
    c.psql(&tgt2, &schema("DEFERRABLE"));
    copy(&src, &tgt2, &["--verify=deep"]).expect_code(0);
    assert_eq!(count(&tgt2, "b"), 1);
    assert_eq!(count(&tgt2, "tree"), 3);
}

#[test]
fn triggers_fire_or_are_disabled_by_owner_or_refused() {
    let c = cluster();
    let src = db_with("cp_trig_src", "erp/source.sql");
    let tgt = db_with("cp_trig_tgt", "erp/target.sql");
    migrate(&tgt, 6);
    let audit = count(&tgt, "\"AuditLog\"");
    copy(&src, &tgt, &["-t", "Role", "-t", "Permission", "--disable-triggers"]).expect_code(0);
    assert_eq!(count(&tgt, "\"AuditLog\""), audit, "triggers fired");

    // A non-superuser who owns the tables: ALTER TABLE ... DISABLE TRIGGER USER.
    let own = c.create_db("cp_trig_own");
    c.psql(&own, &format!("GRANT CREATE ON SCHEMA public TO {PW_USER}"));
    let sql = format!(
        "SET ROLE {PW_USER}; CREATE TABLE t (id int PRIMARY KEY); CREATE TABLE log (n int);
         CREATE FUNCTION f() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN INSERT INTO log VALUES (NEW.id); RETURN NEW; END$$;
         CREATE TRIGGER t_log AFTER INSERT ON t FOR EACH ROW EXECUTE FUNCTION f();"
    );
    c.psql(&own, &sql);
    let s2 = c.create_db("cp_trig_s2");
    c.psql(&s2, "CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t SELECT generate_series(1, 3)");
    let target =
        format!("postgresql://{PW_USER}:{PW_PASSWORD}@127.0.0.1:{}/{own}?sslmode=disable", c.port);
    let r = pgbarge(
        &["copy", "--source", &c.conn(&s2), "--target", &target, "-t", "t", "--disable-triggers"],
        &[],
    );
    r.expect_code(0).expect_no_password();
    assert_eq!(count(&own, "t"), 3);
    assert_eq!(count(&own, "log"), 0);
    assert_eq!(c.psql(&own, "SELECT tgenabled FROM pg_trigger WHERE tgname = 't_log'"), "O");

    // Not the owner and not superuser: refused before anything is written.
    c.psql(&own, "CREATE TABLE u (id int); CREATE TRIGGER u_log AFTER INSERT ON u FOR EACH ROW EXECUTE FUNCTION f();");
    c.psql(&own, &format!("GRANT INSERT, SELECT ON u TO {PW_USER}"));
    c.psql(&s2, "CREATE TABLE u (id int); INSERT INTO u VALUES (1)");
    let r = pgbarge(
        &["copy", "--source", &c.conn(&s2), "--target", &target, "-t", "u", "--disable-triggers"],
        &[],
    );
    r.expect_code(2).expect_no_password();
    assert!(r.stderr.contains("neither superuser nor owner of public.u"), "{}", r.stderr);
    assert_eq!(count(&own, "u"), 0);
}

#[test]
fn sequences_advance_and_formats_follow_the_types() {
    let c = cluster();
    let src = c.create_db("cp_seq_src");
    let tgt = c.create_db("cp_seq_tgt");
    c.psql(&src, "CREATE TYPE mood AS ENUM ('ok', 'sad');
        CREATE TABLE s (id serial PRIMARY KEY, n int, m mood, g int GENERATED ALWAYS AS (n * 2) STORED);
        CREATE TABLE i (id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY, v text);
        INSERT INTO s (n, m) SELECT g, 'ok' FROM generate_series(1, 50) g;
        INSERT INTO i (v) SELECT 'v' || g FROM generate_series(1, 20) g;");
    c.psql(&tgt, "CREATE TYPE mood AS ENUM ('ok', 'sad');
        CREATE TABLE s (id serial PRIMARY KEY, n bigint, m mood, g int GENERATED ALWAYS AS (n * 2) STORED);
        CREATE TABLE i (id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY, v text);");
    let r = copy(&src, &tgt, &["--verify"]);
    r.expect_code(0);
    // A user type and a changed column type travel as text; identical built-in types as binary.
    let line =
        |t: &str| r.stdout.lines().find(|l| l.trim_start().starts_with(t)).unwrap().to_string();
    assert!(line("public.s").contains("text"), "{}", r.stdout);
    assert!(line("public.i").contains("binary"), "{}", r.stdout);
    assert!(r.stdout.contains("sequence public.s_id_seq"), "{}", r.stdout);
    c.psql(&tgt, "INSERT INTO s (n) VALUES (1); INSERT INTO i (v) VALUES ('new')");
    assert_eq!(c.psql(&tgt, "SELECT max(id) FROM s"), "51");
    assert_eq!(c.psql(&tgt, "SELECT max(id) FROM i"), "21");
    assert_eq!(c.psql(&tgt, "SELECT sum(g) FROM s WHERE id <= 50"), "2550");
    // upsert of an always-identity table uses OVERRIDING SYSTEM VALUE.
    c.psql(&src, "UPDATE i SET v = 'changed' WHERE id = 3");
    copy(&src, &tgt, &["-t", "i", "--mode", "upsert"]).expect_code(0);
    assert_eq!(c.psql(&tgt, "SELECT v FROM i WHERE id = 3"), "changed");
}

#[test]
fn deep_verify_rolls_back_on_changed_content() {
    let c = cluster();
    let src = c.create_db("cp_deep_src");
    let tgt = c.create_db("cp_deep_tgt");
    c.psql(&src, "CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 100) g");
    c.psql(&tgt, "CREATE TABLE t (id int PRIMARY KEY, v text);
        CREATE FUNCTION up() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN NEW.v := upper(NEW.v); RETURN NEW; END$$;
        CREATE TRIGGER t_up BEFORE INSERT ON t FOR EACH ROW EXECUTE FUNCTION up();");
    copy(&src, &tgt, &["--verify"]).expect_code(0);
    let r = copy(&src, &tgt, &["--mode", "truncate", "--verify=deep"]);
    r.expect_code(1);
    assert!(r.stderr.contains("content differs: fingerprint"), "{}", r.stderr);
    assert!(r.stderr.contains("rolled back"), "{}", r.stderr);
    assert_eq!(count(&tgt, "t"), 100);
}

#[test]
fn same_database_is_refused_and_dry_run_writes_nothing() {
    let src = db_with("cp_same", "erp/source.sql");
    let r = copy(&src, &src, &["-t", "Role"]);
    r.expect_code(2);
    assert!(r.stderr.contains("the source and the target are the same database"), "{}", r.stderr);

    let tgt = db_with("cp_dry_tgt", "erp/target.sql");
    migrate(&tgt, 6);
    let before = digest_of(&tgt);
    let mut args = ROLE_TABLES.to_vec();
    args.push("--dry-run");
    let r = copy(&src, &tgt, &args);
    r.expect_code(0);
    assert!(r.stdout.contains("dry run, nothing written"), "{}", r.stdout);
    assert!(r.stdout.contains("triggers Role_audit fire"), "{}", r.stdout);
    assert!(r.stdout.contains("default/NULL for legacyCode"), "{}", r.stdout);
    assert_eq!(digest_of(&tgt), before);
    let r = copy(&src, &tgt, &["-t", "User", "--dry-run"]);
    r.expect_code(2);
    assert!(r.stderr.contains("--mode fail: not empty: public.\"User\""), "{}", r.stderr);
}

#[test]
fn per_table_commit_keeps_what_committed_and_skip_finishes() {
    let c = cluster();
    let src = c.create_db("cp_ptc_src");
    let tgt = c.create_db("cp_ptc_tgt");
    c.psql(&src, "CREATE TABLE a1 (id int PRIMARY KEY); CREATE TABLE a2 (id int PRIMARY KEY);
        INSERT INTO a1 SELECT generate_series(1, 10); INSERT INTO a2 SELECT generate_series(1, 10);");
    c.psql(&tgt, "CREATE TABLE a1 (id int PRIMARY KEY); CREATE TABLE a2 (id int PRIMARY KEY CHECK (id < 10));");
    let r = copy(&src, &tgt, &["--per-table-commit"]);
    r.expect_code(3);
    assert!(r.stderr.contains("committed before the failure: public.a1"), "{}", r.stderr);
    assert_eq!(count(&tgt, "a1"), 10);
    assert_eq!(count(&tgt, "a2"), 0);
    c.psql(&tgt, "ALTER TABLE a2 DROP CONSTRAINT a2_id_check");
    copy(&src, &tgt, &["--per-table-commit", "--mode", "skip", "-j", "2"]).expect_code(0);
    assert_eq!(count(&tgt, "a2"), 10);
    let r = copy(&src, &tgt, &["-j", "2"]);
    r.expect_code(2);
    assert!(r.stderr.contains("needs --per-table-commit"), "{}", r.stderr);
}

fn big_pair(name: &str) -> (String, String) {
    let c = cluster();
    let src = c.create_db(&format!("{name}_src"));
    let tgt = c.create_db(&format!("{name}_tgt"));
    c.psql(&src, "CREATE TABLE big (id int PRIMARY KEY, v text); INSERT INTO big SELECT g, repeat('x', 200) FROM generate_series(1, 600000) g;
        CREATE TABLE small (id int); INSERT INTO small VALUES (1)");
    c.psql(
        &tgt,
        "CREATE TABLE big (id int PRIMARY KEY, v text); INSERT INTO big VALUES (-1, 'old');
        CREATE TABLE small (id int)",
    );
    (src, tgt)
}

/// Starts a copy in the background and waits for its COPY on `db`.
fn start_copy(src: &str, tgt: &str, query_like: &str, on: &str) -> (std::process::Child, String) {
    let c = cluster();
    let mut child = crate::common::pgbarge_cmd()
        .args(["copy", "--source", &c.conn(src), "--target", &c.conn(tgt), "--mode", "append"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    for _ in 0..400 {
        let pid = c.psql(
            on,
            &format!("SELECT pid FROM pg_stat_activity WHERE application_name = 'pgbarge' AND datname = current_database() AND query LIKE '{query_like}' LIMIT 1"),
        );
        if !pid.is_empty() {
            return (child, pid);
        }
        std::thread::sleep(std::time::Duration::from_millis(25));
    }
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    panic!("the copy never started: {}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn killed_backends_and_signals_leave_the_target_unchanged() {
    let c = cluster();
    for (case, query_like, side) in [
        ("source", "COPY%big%TO STDOUT%", "src"),
        ("target", "COPY%big%FROM STDIN%", "tgt"),
        ("sigint", "COPY%big%FROM STDIN%", "tgt"),
    ] {
        let (src, tgt) = big_pair(&format!("cp_kill_{case}"));
        let before = c.psql(&tgt, "SELECT count(*) || ':' || sum(id) FROM big");
        let on = if side == "src" { &src } else { &tgt };
        let (child, pid) = start_copy(&src, &tgt, query_like, on);
        if case == "sigint" {
            unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
        } else {
            c.psql(on, &format!("SELECT pg_terminate_backend({pid})"));
        }
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "{case}: {stderr}");
        match case {
            "source" => {
                assert!(stderr.contains("SOURCE: reading table public.big failed"), "{stderr}")
            }
            "target" => assert!(stderr.contains("TARGET"), "{stderr}"),
            _ => assert!(stderr.contains("interrupted by SIGINT"), "{stderr}"),
        }
        assert_eq!(c.psql(&tgt, "SELECT count(*) || ':' || sum(id) FROM big"), before, "{case}");
        assert_eq!(count(&tgt, "small"), 0, "{case}");
    }
}

/// The source is read ahead of the target: its session lost while the
/// target is still busy with an earlier table (a trigger sleeping) fails the
/// table being read ahead, by name, and nothing is committed.
#[test]
fn a_source_session_lost_while_reading_ahead_fails_that_table_and_commits_nothing() {
    let c = cluster();
    let src = c.create_db("cp_ahead_src");
    let tgt = c.create_db("cp_ahead_tgt");
    let tables = "CREATE TABLE first (id int); CREATE TABLE second_big (id int, v text);";
    c.psql(&src, tables);
    c.psql(&tgt, tables);
    // second_big is many times the read-ahead's budget, so its COPY is still
    // open on the source while the target sleeps in first's trigger.
    c.psql(
        &src,
        "INSERT INTO first VALUES (1);
        INSERT INTO second_big SELECT g, repeat('x', 1000) FROM generate_series(1, 20000) g",
    );
    c.psql(
        &tgt,
        "CREATE FUNCTION slow() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_sleep(3); RETURN NULL; END $$;
        CREATE TRIGGER slow AFTER INSERT ON first FOR EACH STATEMENT EXECUTE FUNCTION slow();",
    );
    let (child, pid) = start_copy(&src, &tgt, "COPY%second_big%TO STDOUT%", &src);
    let sleeping = c.psql(
        &tgt,
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pgbarge' AND wait_event = 'PgSleep'",
    );
    c.psql(&src, &format!("SELECT pg_terminate_backend({pid})"));
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("SOURCE: reading table public.second_big failed"), "{stderr}");
    assert!(stderr.contains("nothing was committed"), "{stderr}");
    assert!(!stderr.contains("TARGET"), "the target did not fail: {stderr}");
    assert_eq!(sleeping, "1", "the target was still on the first table");
    assert_eq!(count(&tgt, "first"), 0);
    assert_eq!(count(&tgt, "second_big"), 0);
}

/// The next table's COPY starts as the previous one's ends (before its
/// answer): when that start is refused, the error names the table and
/// nothing is committed.
#[test]
fn a_refused_copy_started_early_names_its_table_and_commits_nothing() {
    let c = cluster();
    let src = c.create_db("cp_early_src");
    let own = c.create_db("cp_early_tgt");
    let ddl = "CREATE TABLE a1 (id int); CREATE TABLE a2 (id int); CREATE TABLE a3 (id int)";
    c.psql(
        &src,
        &format!(
            "{ddl}; INSERT INTO a1 VALUES (1); INSERT INTO a2 VALUES (2); INSERT INTO a3 VALUES (3)"
        ),
    );
    c.psql(&own, ddl);
    // The locks are granted; the server refuses only the COPY itself.
    c.psql(
        &own,
        &format!(
            "GRANT INSERT, SELECT ON a1, a2, a3 TO {PW_USER}; ALTER TABLE a2 ENABLE ROW LEVEL SECURITY"
        ),
    );
    let target =
        format!("postgresql://{PW_USER}:{PW_PASSWORD}@127.0.0.1:{}/{own}?sslmode=disable", c.port);
    let r = pgbarge(&["copy", "--source", &c.conn(&src), "--target", &target], &[]);
    r.expect_code(3).expect_no_password();
    assert!(r.stderr.contains("COPY into public.a2 failed"), "{}", r.stderr);
    assert!(r.stderr.contains("row-level security"), "{}", r.stderr);
    for t in ["a1", "a2", "a3"] {
        assert_eq!(count(&own, t), 0, "{t}");
    }
}

/// Issue: with `--mode truncate --per-table-commit` every table was emptied
/// and committed first, so a table whose load failed later stayed empty
/// while the message named only what had committed.
#[test]
fn per_table_truncate_empties_each_table_with_its_own_load() {
    let c = cluster();
    let src = c.create_db("cp_ptt_src");
    let tgt = c.create_db("cp_ptt_tgt");
    c.psql(&src, "CREATE TABLE a1 (id int PRIMARY KEY); CREATE TABLE a2 (id int PRIMARY KEY);
        INSERT INTO a1 SELECT generate_series(1, 10); INSERT INTO a2 SELECT generate_series(1, 10);");
    c.psql(&tgt, "CREATE TABLE a1 (id int PRIMARY KEY); CREATE TABLE a2 (id int PRIMARY KEY CHECK (id < 10));
        INSERT INTO a1 VALUES (100), (101); INSERT INTO a2 VALUES (1), (2), (3);");
    let r = copy(&src, &tgt, &["--per-table-commit", "--mode", "truncate", "-t", "a1", "-t", "a2"]);
    r.expect_code(3);
    assert!(r.stderr.contains("committed before the failure: public.a1"), "{}", r.stderr);
    assert!(r.stderr.contains("left as they were: public.a2"), "{}", r.stderr);
    assert!(!r.stderr.contains("nothing was committed"), "{}", r.stderr);
    assert_eq!(count(&tgt, "a1"), 10);
    // The failed table keeps its rows: its TRUNCATE was rolled back with its load.
    assert_eq!(c.psql(&tgt, "SELECT string_agg(id::text, ',' ORDER BY id) FROM a2"), "1,2,3");

    // A table referenced by another of the load is emptied with it (it cannot
    // be truncated under rows that reference it), and the report says so.
    let src = c.create_db("cp_ptf_src");
    let tgt = c.create_db("cp_ptf_tgt");
    let ddl = "CREATE TABLE p (id int PRIMARY KEY); CREATE TABLE ch (id int PRIMARY KEY, p int REFERENCES p)";
    c.psql(&src, &format!("{ddl}; INSERT INTO p SELECT generate_series(1, 5); INSERT INTO ch SELECT g, g FROM generate_series(1, 5) g"));
    c.psql(&tgt, &format!("{ddl}; ALTER TABLE ch ADD CHECK (id < 4); INSERT INTO p VALUES (7), (8); INSERT INTO ch VALUES (1, 7)"));
    let r = copy(&src, &tgt, &["--per-table-commit", "--mode", "truncate", "-t", "p", "-t", "ch"]);
    r.expect_code(3);
    assert!(r.stderr.contains("committed before the failure: public.p"), "{}", r.stderr);
    assert!(
        r.stderr.contains("emptied when a table it references committed, and not loaded again: public.ch (with public.p)"),
        "{}",
        r.stderr
    );
    assert_eq!((count(&tgt, "p"), count(&tgt, "ch")), (5, 0));
    // Run again once the cause is fixed: it finishes.
    c.psql(&tgt, "ALTER TABLE ch DROP CONSTRAINT ch_id_check");
    copy(
        &src,
        &tgt,
        &["--per-table-commit", "--mode", "truncate", "-t", "p", "-t", "ch", "-j", "2"],
    )
    .expect_code(0);
    assert_eq!((count(&tgt, "p"), count(&tgt, "ch")), (5, 5));
}

/// "nothing was committed" is said only when true: a single-transaction
/// load interrupted says so; a per-table one names what committed.
#[test]
fn interrupted_loads_say_what_was_committed() {
    let c = cluster();
    let (src, tgt) = big_pair("cp_int_said");
    // One transaction: rolled back.
    let (child, _) = start_copy(&src, &tgt, "COPY%big%FROM STDIN%", &tgt);
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("the load was rolled back: nothing was committed"), "{stderr}");
    assert!(stderr.contains("interrupted by SIGINT"), "{stderr}");
    assert_eq!(c.psql(&tgt, "SELECT count(*) FROM big"), "1");
}

/// "triggers fired" is said only when rows were loaded: a trigger fires per
/// row, so an empty table's copy fires none.
#[test]
fn triggers_fired_is_said_only_when_rows_were_loaded() {
    let c = cluster();
    let src = c.create_db("cp_trig_none_src");
    let tgt = c.create_db("cp_trig_none_tgt");
    let ddl = "CREATE TABLE e (id int PRIMARY KEY); CREATE TABLE f (id int PRIMARY KEY)";
    c.psql(&src, &format!("{ddl}; INSERT INTO f VALUES (1)"));
    c.psql(
        &tgt,
        &format!(
            "{ddl}; CREATE TABLE log (n int);
             CREATE FUNCTION note() RETURNS trigger LANGUAGE plpgsql AS
               $$ BEGIN INSERT INTO log VALUES (NEW.id); RETURN NEW; END $$;
             CREATE TRIGGER e_note AFTER INSERT ON e FOR EACH ROW EXECUTE FUNCTION note();
             CREATE TRIGGER f_note AFTER INSERT ON f FOR EACH ROW EXECUTE FUNCTION note();"
        ),
    );
    let r = copy(&src, &tgt, &["-t", "e", "-t", "f"]);
    r.expect_code(0);
    assert!(r.stdout.contains("triggers fired: f_note"), "{}", r.stdout);
    assert!(!r.stdout.contains("e_note"), "{}", r.stdout);
    assert_eq!(count(&tgt, "log"), 1);
}

/// Sequences of a load are moved together after the tables; but a trigger
/// firing in a later table's load that takes a value from an earlier table's
/// sequence gets one past that table's loaded rows, as if each had been
/// moved right after its own load.
#[test]
fn a_trigger_taking_an_earlier_tables_sequence_value_gets_a_fresh_one() {
    let c = cluster();
    let src = c.create_db("cp_seq_trig_src");
    let tgt = c.create_db("cp_seq_trig_tgt");
    let ddl = "CREATE TABLE a (id serial PRIMARY KEY, what text);
               CREATE TABLE b (id int PRIMARY KEY, a_id int REFERENCES a (id))";
    c.psql(
        &src,
        &format!(
            "{ddl}; INSERT INTO a (what) SELECT 'row ' || g FROM generate_series(1, 5) g;
             INSERT INTO b VALUES (1, 2)"
        ),
    );
    c.psql(
        &tgt,
        &format!(
            "{ddl}; CREATE FUNCTION note() RETURNS trigger LANGUAGE plpgsql AS
               $$ BEGIN INSERT INTO a (what) VALUES ('from b ' || NEW.id); RETURN NEW; END $$;
             CREATE TRIGGER b_note AFTER INSERT ON b FOR EACH ROW EXECUTE FUNCTION note();"
        ),
    );
    let r = copy(&src, &tgt, &["-t", "a", "-t", "b"]);
    r.expect_code(0);
    assert!(r.stdout.contains("sequence public.a_id_seq"), "{}", r.stdout);
    assert_eq!(c.psql(&tgt, "SELECT id FROM a WHERE what = 'from b 1'"), "6");
    c.psql(&tgt, "INSERT INTO a (what) VALUES ('after')");
    assert_eq!(c.psql(&tgt, "SELECT id FROM a WHERE what = 'after'"), "7");
}

/// `--mode fail` reads emptiness from the file size for plain tables and
/// probes the others: a table whose rows were all deleted (pages left, no
/// rows) is empty; one row in a table among many is found and named.
#[test]
fn mode_fail_finds_the_one_table_with_a_row_among_many() {
    let c = cluster();
    let src = c.create_db("cp_empty_many_src");
    let tgt = c.create_db("cp_empty_many_tgt");
    let ddl: String =
        (1..=30).map(|i| format!("CREATE TABLE t{i} (id serial PRIMARY KEY, v text);")).collect();
    c.psql(&src, &ddl);
    c.psql(&src, "INSERT INTO t7 (v) VALUES ('x'); INSERT INTO t20 (v) VALUES ('y')");
    c.psql(&tgt, &ddl);
    c.psql(&tgt, "INSERT INTO t3 (v) SELECT 'gone' FROM generate_series(1, 500); DELETE FROM t3");
    c.psql(&tgt, "INSERT INTO t25 (v) VALUES ('kept')");
    let r = copy(&src, &tgt, &[]);
    r.expect_code(2);
    assert!(
        r.stderr.contains("--mode fail: target table is not empty: public.t25"),
        "{}",
        r.stderr
    );
    assert_eq!(count(&tgt, "t7"), 0);
    c.psql(&tgt, "DELETE FROM t25");
    let r = copy(&src, &tgt, &[]);
    r.expect_code(0);
    assert_eq!(count(&tgt, "t7") + count(&tgt, "t20"), 2);
    c.psql(&tgt, "INSERT INTO t7 (v) VALUES ('next')");
    assert_eq!(c.psql(&tgt, "SELECT max(id) FROM t7"), "2");
    // Every table holding rows: the error names twenty and counts the rest.
    let fill: String = (1..=30).map(|i| format!("INSERT INTO t{i} (v) VALUES ('r');")).collect();
    c.psql(&tgt, &fill);
    for extra in [&[][..], &["--dry-run"][..]] {
        let r = copy(&src, &tgt, extra);
        r.expect_code(2);
        assert!(r.stderr.contains("not empty: public.t1, public.t10, "), "{}", r.stderr);
        assert!(r.stderr.contains(" and 10 more"), "{}", r.stderr);
        assert!(!r.stderr.contains("public.t9"), "{}", r.stderr);
    }
}

/// A sequence the target user may not move fails the load at its batched
/// move, naming the sequence, and nothing is committed.
#[test]
fn a_sequence_the_user_may_not_move_rolls_the_load_back() {
    let c = cluster();
    let src = c.create_db("cp_seq_priv_src");
    let own = c.create_db("cp_seq_priv_tgt");
    let ddl = "CREATE TABLE p (id serial PRIMARY KEY); CREATE TABLE q (id serial PRIMARY KEY)";
    c.psql(&src, &format!("{ddl}; INSERT INTO p SELECT generate_series(1, 3); INSERT INTO q SELECT generate_series(1, 4)"));
    c.psql(&own, ddl);
    c.psql(&own, &format!("GRANT INSERT, SELECT ON p, q TO {PW_USER}; GRANT USAGE, SELECT, UPDATE ON p_id_seq TO {PW_USER}; GRANT SELECT ON q_id_seq TO {PW_USER}"));
    let target =
        format!("postgresql://{PW_USER}:{PW_PASSWORD}@127.0.0.1:{}/{own}?sslmode=disable", c.port);
    let r = pgbarge(&["copy", "--source", &c.conn(&src), "--target", &target], &[]);
    r.expect_code(3).expect_no_password();
    assert!(r.stderr.contains("permission denied for sequence q_id_seq"), "{}", r.stderr);
    assert!(r.stderr.contains("public.q_id_seq"), "{}", r.stderr);
    assert_eq!(count(&own, "p") + count(&own, "q"), 0);
}

/// The sequence moves past the largest loaded id read off the stream (ids
/// out of order, NULLs, negatives); where a trigger may change the rows, past
/// the largest id the table holds, read by the server.
#[test]
fn sequences_move_past_the_largest_id_whether_read_off_the_stream_or_the_table() {
    let c = cluster();
    let src = c.create_db("cp_seq_max_src");
    let tgt = c.create_db("cp_seq_max_tgt");
    let ddl = "CREATE SEQUENCE plain_ids; CREATE TABLE plain (id bigint DEFAULT nextval('plain_ids'), v text);
               CREATE TABLE shifted (id serial PRIMARY KEY, v text)";
    c.psql(
        &src,
        &format!(
            "{ddl}; INSERT INTO plain VALUES (5, 'a'), (900, 'b'), (-7, 'c'), (NULL, 'd'), (3, 'e');
             INSERT INTO shifted VALUES (1, 'x'), (2, 'y')"
        ),
    );
    c.psql(
        &tgt,
        &format!(
            "{ddl}; CREATE FUNCTION shift() RETURNS trigger LANGUAGE plpgsql AS
               $$ BEGIN NEW.id := NEW.id + 1000; RETURN NEW; END $$;
             CREATE TRIGGER shift BEFORE INSERT ON shifted FOR EACH ROW EXECUTE FUNCTION shift();"
        ),
    );
    copy(&src, &tgt, &[]).expect_code(0);
    c.psql(&tgt, "INSERT INTO plain (v) VALUES ('next'); INSERT INTO shifted (v) VALUES ('next')");
    assert_eq!(c.psql(&tgt, "SELECT id FROM plain WHERE v = 'next'"), "901");
    // The trigger moved the loaded ids to 1001 and 1002; the new row's 1003 + 1000.
    assert_eq!(c.psql(&tgt, "SELECT id FROM shifted WHERE v = 'next'"), "2003");
}
