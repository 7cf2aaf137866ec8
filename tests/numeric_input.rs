//! Issue: `--lock-wait-timeout 1e20` and `PGBARGE_PROGRESS_SECS=1e20`
//! panicked (exit 101). Every number from the command line, the environment
//! or a plan file is range-checked: extreme values are bad usage (exit 2)
//! with a message naming the setting, never a panic.

use crate::common::{Run, cluster, pgbarge};

const EXTREMES: [&str; 7] =
    ["1e20", "-1", "NaN", "inf", "0", "99999999999999999999", "-99999999999999999999"];

fn assert_refused(r: &Run, what: &str, value: &str, names: &str) {
    assert_eq!(r.code, 2, "{what} {value}: exit {}\n{}", r.code, r.all());
    assert!(!r.all().contains("panicked"), "{what} {value}:\n{}", r.all());
    assert!(r.all().contains(names), "{what} {value}: should name {names}:\n{}", r.all());
}

#[test]
fn extreme_numbers_are_bad_usage_everywhere() {
    let c = cluster();
    let db = c.create_db("num_extremes");
    c.psql(&db, "CREATE TABLE t (x int); INSERT INTO t VALUES (1)");
    let conn = c.conn(&db);
    let tmp = tempfile::tempdir().unwrap();
    let bk = tmp.path().join("bk");
    let b = bk.to_str().unwrap();
    pgbarge(&["backup", "-q", "-d", &conn, "-o", b], &[]).expect_code(0);
    let out = tmp.path().join("new");
    let o = out.to_str().unwrap();

    for v in EXTREMES {
        let flag = format!("--lock-wait-timeout={v}");
        for args in [
            vec!["backup", "-d", &conn, "-o", o, &flag],
            vec!["copy", "--source", &conn, "--target", &conn, &flag, "--dry-run"],
            vec!["restore", b, "-d", &conn, &flag, "--dry-run"],
        ] {
            assert_refused(&pgbarge(&args, &[]), args[0], v, "--lock-wait-timeout");
        }
        let jobs = format!("--jobs={v}");
        for args in [
            vec!["backup", "-d", &conn, "-o", o, &jobs],
            vec!["verify", b, &jobs],
            vec!["copy", "--source", &conn, "--target", &conn, &jobs, "--per-table-commit"],
            vec!["restore", b, "-d", &conn, &jobs, "--per-table-commit"],
        ] {
            assert_refused(&pgbarge(&args, &[]), args[0], v, "--jobs");
        }
        let level = format!("--compress=zstd:{v}");
        assert_refused(
            &pgbarge(&["backup", "-d", &conn, "-o", o, &level], &[]),
            "compress",
            v,
            "--compress",
        );
        let r = pgbarge(&["verify", b], &[("PGBARGE_PROGRESS_SECS", v)]);
        assert_refused(&r, "PGBARGE_PROGRESS_SECS", v, "PGBARGE_PROGRESS_SECS");
        let port = format!("{conn} port={v}");
        assert_refused(&pgbarge(&["list", "-d", &port], &[]), "port", v, "port");
        if v != "-1" && v != "0" {
            // libpq: zero or a negative connect_timeout means wait forever.
            let timeout = format!("{conn} connect_timeout={v}");
            assert_refused(
                &pgbarge(&["list", "-d", &timeout], &[]),
                "connect_timeout",
                v,
                "connect_timeout",
            );
        }
    }
    // Above the largest lock_timeout PostgreSQL takes, and above MAX_JOBS.
    let r = pgbarge(&["backup", "-d", &conn, "-o", o, "--lock-wait-timeout", "2147484"], &[]);
    assert_refused(&r, "backup", "2147484", "--lock-wait-timeout");
    let r = pgbarge(&["verify", b, "-j", "100000"], &[]);
    assert_refused(&r, "verify", "100000", "-j/--jobs must be from 1 to 256");
    assert!(!out.exists(), "a refused backup created its folder");
}

#[test]
fn extreme_numbers_in_a_plan_are_refused_before_any_step() {
    let tmp = tempfile::tempdir().unwrap();
    for v in ["0", "-1", "99999999999999999999", "100000", "1e20"] {
        let plan = tmp.path().join("plan.toml");
        std::fs::write(
            &plan,
            format!(
                "name = \"n\"\nlog_dir = \"runs\"\n[connections]\nsrc = {{ env = \"NUM_SRC\" }}\n\n[[steps]]\nkind = \"backup\"\ndb = \"src\"\noutput = \"out\"\njobs = {v}\n"
            ),
        )
        .unwrap();
        let r = pgbarge(&["run", plan.to_str().unwrap()], &[("NUM_SRC", "dbname=x")]);
        assert_eq!(r.code, 2, "jobs = {v}: {}", r.all());
        assert!(!r.all().contains("panicked"), "{}", r.all());
        // TOML's own integers stop at i64; beyond that the parser names the line.
        let names = match v {
            "99999999999999999999" => "line 10",
            "1e20" => "expected i64",
            _ => "jobs must be from 1 to 256",
        };
        assert!(r.all().contains(names), "jobs = {v}: {}", r.all());
        assert!(!tmp.path().join("out").exists());
    }
}

#[test]
fn lock_wait_timeouts_of_every_step_kind_are_checked_before_any_step() {
    let tmp = tempfile::tempdir().unwrap();
    for (kind, fields) in [
        ("backup", "db = \"src\"\noutput = \"out\""),
        ("copy", "source = \"src\"\ntarget = \"tgt\""),
        ("restore", "backup = \"out\"\ndb = \"tgt\""),
        ("diff", "source = \"src\"\ntarget = \"tgt\""),
    ] {
        for v in ["-1", "nan", "inf", "1e20", "0.0"] {
            let plan = tmp.path().join("plan.toml");
            std::fs::create_dir_all(tmp.path().join("out")).unwrap();
            std::fs::write(
                &plan,
                format!(
                    "name = \"n\"\nlog_dir = \"runs\"\n[connections]\nsrc = {{ env = \"NUM_SRC\" }}\ntgt = {{ env = \"NUM_SRC\" }}\n\n[[steps]]\nkind = \"{kind}\"\n{fields}\nlock_wait_timeout = {v}\n"
                ),
            )
            .unwrap();
            let r = pgbarge(&["run", plan.to_str().unwrap()], &[("NUM_SRC", "dbname=x")]);
            assert_eq!(r.code, 2, "{kind} {v}: {}", r.all());
            assert!(r.all().contains("--lock-wait-timeout must be"), "{kind} {v}: {}", r.all());
            assert!(!r.all().contains("panicked"), "{}", r.all());
        }
    }
}
