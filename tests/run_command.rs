//! `pgbarge run` with the ERP plan on real databases: the whole runbook,
//! a failing DDL step that stops with the data intact and a rollback command,
//! a resumed run, a dry run that changes nothing, and plans refused before
//! any step runs.

use std::path::{Path, PathBuf};

use crate::common::{PW_PASSWORD, PW_USER, cluster, db_with, fixtures, pgbarge};

/// The ERP fixture folder copied to a temp dir (so plans can be edited), with
/// databases and the environment the plan reads.
struct Scenario {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    work: PathBuf,
    target: String,
    env: Vec<(String, String)>,
}

fn scenario(name: &str) -> Scenario {
    let c = cluster();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("erp");
    let ok = std::process::Command::new("cp")
        .arg("-a")
        .arg(fixtures().join("erp"))
        .arg(&dir)
        .status()
        .unwrap();
    assert!(ok.success());
    let work = tmp.path().join("work");
    let source = db_with(&format!("{name}_src"), "erp/source.sql");
    let target = db_with(name, "erp/target.sql");
    let env = vec![
        ("ERP_SOURCE".to_string(), c.conn(&source)),
        ("ERP_TARGET".to_string(), c.conn(&target)),
        ("ERP_WORK".to_string(), work.display().to_string()),
    ];
    Scenario { _tmp: tmp, dir, work, target, env }
}

impl Scenario {
    fn run(&self, args: &[&str]) -> crate::common::Run {
        let plan = self.dir.join("plan.toml");
        let mut a = vec!["run", plan.to_str().unwrap()];
        a.extend(args);
        let env: Vec<(&str, &str)> =
            self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        pgbarge(&a, &env)
    }

    fn logs(&self) -> Vec<PathBuf> {
        let runs = self.work.join("runs");
        let mut v: Vec<PathBuf> = match std::fs::read_dir(&runs) {
            Ok(d) => d.map(|e| e.unwrap().path()).collect(),
            Err(_) => vec![],
        };
        v.sort();
        v
    }
}

fn count(db: &str, table: &str) -> String {
    cluster().psql(db, &format!("SELECT count(*) FROM {table}"))
}

#[test]
fn the_erp_plan_runs_end_to_end() {
    let s = scenario("rn_whole");
    let r = s.run(&[]);
    r.expect_code(0);
    assert!(r.stdout.contains("run complete: 13 steps"), "{}", r.stdout);
    assert_eq!(count(&s.target, "\"Role\""), "4");
    assert_eq!(count(&s.target, "pg_tables WHERE schemaname = 'public'"), "13");
    let logs = s.logs();
    assert_eq!(logs.len(), 1);
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(logs[0].join("run.json")).unwrap()).unwrap();
    assert_eq!(json["outcome"], "ok");
    assert_eq!(json["steps"].as_array().unwrap().len(), 13);
    assert_eq!(json["steps"][0]["details"]["rows"], 70);
    assert!(
        json["steps"][0]["details"]["checksums"]["public.User"]
            .as_str()
            .unwrap()
            .contains("file sha256")
    );
    let md = std::fs::read_to_string(logs[0].join("run.md")).unwrap();
    assert!(md.contains("| 5 | ddl | sql | ok |"), "{md}");
    // A completed run still says how to undo it.
    let rollback =
        format!("pgbarge restore {}/backups/full -d \"$ERP_TARGET\" --clean", s.work.display());
    assert!(md.contains(&rollback), "{md}");
    assert!(s.work.join("backups/full/manifest.json").exists());
}

#[test]
fn a_failing_ddl_step_stops_with_data_intact_and_a_rollback_command_then_resumes() {
    let s = scenario("rn_fail");
    let plan = s.dir.join("plan.toml");
    let text = std::fs::read_to_string(&plan).unwrap();
    std::fs::write(&plan, text.replace("files = [\n", "files = [\n    \"broken.sql\",\n")).unwrap();
    std::fs::write(
        s.dir.join("broken.sql"),
        "-- a typo in a table name\nALTER TABLE \"Usr\" ADD COLUMN x int;\n",
    )
    .unwrap();
    let r = s.run(&[]);
    r.expect_code(3);
    assert!(
        r.stderr.contains("step 5 (ddl) failed; completed before it, and not undone: "),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("broken.sql:2:1: statement failed"), "{}", r.stderr);
    assert!(!r.stderr.contains("nothing was committed"), "{}", r.stderr);
    let restore = format!("pgbarge restore {}/backups/full -d \"$ERP_TARGET\"", s.work.display());
    assert!(r.stderr.contains(&restore), "{}", r.stderr);
    assert_eq!(count(&s.target, "\"TimeEntry\""), "48");
    assert_eq!(count(&s.target, "pg_tables WHERE schemaname = 'public'"), "11");
    let md = std::fs::read_to_string(s.logs()[0].join("run.md")).unwrap();
    assert!(md.contains(&restore), "{md}");
    assert!(md.contains("| 5 | ddl | sql | failed |"), "{md}");
    assert!(md.contains("| 6 | tables-after-ddl | check | not run |"), "{md}");

    // The fix changes no schema, so the final diff step still passes.
    std::fs::write(s.dir.join("broken.sql"), "COMMENT ON TABLE \"User\" IS 'fixed';\n").unwrap();
    let r = s.run(&["--from", "ddl"]);
    r.expect_code(0);
    assert_eq!(count(&s.target, "\"Role\""), "4");
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(s.logs()[1].join("run.json")).unwrap()).unwrap();
    assert_eq!(json["steps"][0]["outcome"], "skipped");
    assert_eq!(json["outcome"], "ok");
}

#[test]
fn dry_run_changes_nothing_and_finds_syntax_errors() {
    let s = scenario("rn_dry");
    let r = s.run(&["--dry-run"]);
    r.expect_code(0);
    assert!(r.stdout.contains("nothing was changed"), "{}", r.stdout);
    assert!(!s.work.join("backups").exists());
    assert_eq!(count(&s.target, "pg_tables WHERE schemaname = 'public'"), "11");

    let f = s.dir.join("migrations/04-alter-columns.sql");
    let text = std::fs::read_to_string(&f).unwrap();
    std::fs::write(&f, format!("{text}\nALTER TABL \"User\" ADD COLUMN y int;\n")).unwrap();
    let r = s.run(&["--dry-run"]);
    r.expect_code(2);
    assert!(r.stderr.contains("04-alter-columns.sql:"), "{}", r.stderr);
    assert!(r.stderr.contains("syntax error at or near \"TABL\""), "{}", r.stderr);
}

fn refused(
    s: &Scenario,
    edit: impl Fn(&str) -> String,
    env: &[(&str, Option<&str>)],
    needle: &str,
) {
    let plan = s.dir.join("plan.toml");
    let original = std::fs::read_to_string(&plan).unwrap();
    std::fs::write(&plan, edit(&original)).unwrap();
    let mut c = crate::common::pgbarge_cmd();
    c.args(["run", plan.to_str().unwrap()]);
    for (k, v) in &s.env {
        c.env(k, v);
    }
    for (k, v) in env {
        match v {
            Some(v) => c.env(k, v),
            None => c.env_remove(k),
        };
    }
    let out = c.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{needle}: {stderr}");
    assert!(stderr.contains(needle), "{needle}: {stderr}");
    assert!(stderr.contains("no step ran") || stderr.contains("step kinds are"), "{stderr}");
    assert!(!s.work.join("backups").exists(), "a step ran");
    assert!(!s.work.join("runs").exists(), "a log was written");
    std::fs::write(&plan, original).unwrap();
}

#[test]
fn bad_plans_are_refused_before_any_step() {
    let s = scenario("rn_refused");
    let c = cluster();
    let url = format!("postgresql://{PW_USER}:{PW_PASSWORD}@127.0.0.1:{}/x", c.port);
    refused(
        &s,
        |t| {
            t.replace(
                "target = { env = \"ERP_TARGET\" }",
                &format!("target = {{ env = \"ERP_TARGET\", url = \"{url}\" }}"),
            )
        },
        &[],
        "a connection string with a password written into the plan",
    );
    refused(&s, |t| t.replacen("kind = \"check\"", "kind = \"vacuum\"", 1), &[], "vacuum");
    refused(
        &s,
        |t| t.replace("06-sequences.sql", "06-missing.sql"),
        &[],
        "06-missing.sql does not exist",
    );
    refused(
        &s,
        |t| t.to_string(),
        &[("ERP_TARGET", None)],
        "environment variable ERP_TARGET is not set",
    );
    refused(
        &s,
        |t| t.to_string(),
        &[("ERP_TARGET", Some("host=/tmp port=notaport"))],
        "invalid port number",
    );
}

#[test]
fn passwords_stay_out_of_logs_and_output() {
    let c = cluster();
    let t = tempfile::tempdir().unwrap();
    let plan = t.path().join("p.toml");
    std::fs::write(
        &plan,
        "name = \"pw\"\nlog_dir = \"runs\"\n[connections]\ndb = { env = \"PW_DB\" }\n\
         [[steps]]\nkind = \"check\"\ndb = \"db\"\nquery = \"SELECT 1\"\nexpect = \"2\"\n",
    )
    .unwrap();
    let url = format!(
        "postgresql://{PW_USER}:{PW_PASSWORD}@127.0.0.1:{}/postgres?sslmode=disable",
        c.port
    );
    let r = pgbarge(&["run", plan.to_str().unwrap()], &[("PW_DB", &url)]);
    r.expect_code(1).expect_no_password();
    assert!(r.stderr.contains("the query returned 1, expected = 2"), "{}", r.stderr);
    let runs: Vec<PathBuf> =
        std::fs::read_dir(t.path().join("runs")).unwrap().map(|e| e.unwrap().path()).collect();
    for f in ["run.md", "run.json"] {
        let text = std::fs::read_to_string(runs[0].join(f)).unwrap();
        assert!(!text.contains(PW_PASSWORD), "{f}: {text}");
        assert!(text.contains(PW_USER), "{f}: {text}");
    }
    let _ = Path::new("");
}

#[test]
fn service_connections_and_restore_steps() {
    let c = cluster();
    let db = db_with("rn_service", "erp/target.sql");
    let t = tempfile::tempdir().unwrap();
    let services = t.path().join("services.conf");
    std::fs::write(
        &services,
        format!("[erp]\nhost={}\nport={}\nuser=postgres\ndbname={db}\n", c.dir.display(), c.port),
    )
    .unwrap();
    let plan = t.path().join("p.toml");
    std::fs::write(
        &plan,
        "name = \"service\"\nlog_dir = \"runs\"\n[connections]\nerp = { service = \"erp\" }\n\
         [[steps]]\nname = \"before\"\nkind = \"backup\"\ndb = \"erp\"\noutput = \"b\"\ntables = [\"Customer\"]\n\
         [[steps]]\nkind = \"sql\"\ndb = \"erp\"\nfiles = [\"damage.sql\"]\n\
         [[steps]]\nkind = \"restore\"\nbackup = \"before\"\ndb = \"erp\"\nmode = \"truncate\"\ndisable_triggers = true\n\
         [[steps]]\nkind = \"verify\"\nbackup = \"before\"\ndb = \"erp\"\ndeep = true\n",
    )
    .unwrap();
    std::fs::write(t.path().join("damage.sql"), "UPDATE \"Customer\" SET name = 'x';\n").unwrap();
    let r =
        pgbarge(&["run", plan.to_str().unwrap()], &[("PGSERVICEFILE", services.to_str().unwrap())]);
    r.expect_code(0);
    assert!(r.stdout.contains("restore complete: 1 table,"), "{}", r.stdout);
    assert!(r.stdout.contains("matches the database"), "{}", r.stdout);
    assert_eq!(cluster().psql(&db, "SELECT count(*) FROM \"Customer\" WHERE name = 'x'"), "0");
    // Job references Customer; its rows were kept, not cascaded away.
    assert_eq!(cluster().psql(&db, "SELECT count(*) FROM \"Job\""), "8");

    let r = pgbarge(&["run", plan.to_str().unwrap()], &[("PGSERVICEFILE", "/nonexistent")]);
    r.expect_code(2);
    assert!(r.stderr.contains("definition of service \"erp\" not found"), "{}", r.stderr);
}

/// A plan of `dir` with one connection, `db`, read from `MY_DB`.
fn write_plan(dir: &Path, steps: &str) -> PathBuf {
    let plan = dir.join("plan.toml");
    std::fs::write(
        &plan,
        format!(
            "name = \"p\"\nlog_dir = \"runs\"\n[connections]\ndb = {{ env = \"MY_DB\" }}\n{steps}"
        ),
    )
    .unwrap();
    plan
}

/// Issue 16: the rollback command of a plan that backed up only `Role` and
/// `UserPermission` emptied `RolePermission` and `RoleAssignment` through
/// `--cascade`. Pasted as printed, it now restores exactly the backup's tables.
#[test]
fn the_rollback_command_touches_only_the_backups_tables() {
    let c = cluster();
    let db = crate::restore_command::migrated_target("rn_rollback_only");
    let t = tempfile::tempdir().unwrap();
    let plan = write_plan(
        t.path(),
        "[[steps]]\nname = \"bk\"\nkind = \"backup\"\ndb = \"db\"\noutput = \"out/bk\"\n\
         tables = [\"Role\", \"UserPermission\"]\n\
         [[steps]]\nname = \"ddl\"\nkind = \"sql\"\ndb = \"db\"\nfiles = [\"bad.sql\"]\n",
    );
    std::fs::write(
        t.path().join("bad.sql"),
        "UPDATE \"Role\" SET description = 'oops';\nDELETE FROM \"UserPermission\";\nSELECT 1/0;\n",
    )
    .unwrap();
    let conn = c.conn(&db);
    let r = pgbarge(&["run", plan.to_str().unwrap()], &[("MY_DB", &conn)]);
    r.expect_code(3);
    let command = r
        .stderr
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("pgbarge restore"))
        .unwrap_or_else(|| panic!("no rollback command: {}", r.stderr))
        .to_string();
    assert!(!command.contains("--cascade"), "{command}");
    let runs: Vec<PathBuf> =
        std::fs::read_dir(t.path().join("runs")).unwrap().map(|e| e.unwrap().path()).collect();
    let md = std::fs::read_to_string(runs[0].join("run.md")).unwrap();
    assert!(md.contains(&command), "{md}");
    assert!(!md.contains("--cascade"), "{md}");
    assert_eq!(count(&db, "\"UserPermission\""), "0");

    // Pasted as written, in a shell where MY_DB is set.
    let bin = Path::new(env!("CARGO_BIN_EXE_pgbarge")).parent().unwrap().to_path_buf();
    let out = crate::common::pgbarge_cmd_shell(&command, &bin, &[("MY_DB", &conn)]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert_eq!(count(&db, "\"UserPermission\""), "6");
    assert_eq!(count(&db, "\"Role\" WHERE description = 'oops'"), "0");
    assert_eq!(count(&db, "\"RolePermission\""), "15");
    assert_eq!(count(&db, "\"RoleAssignment\""), "11");
}

/// Issue 16: backup steps rejected `force = true`; a plan that failed must
/// run again from the top once fixed, without deleting folders by hand.
/// Every step also takes its command's options (exclude on verify/restore).
#[test]
fn a_plan_runs_again_from_the_top() {
    let c = cluster();
    let db = db_with("rn_again", "erp/target.sql");
    let t = tempfile::tempdir().unwrap();
    let plan = write_plan(
        t.path(),
        "[[steps]]\nname = \"bk\"\nkind = \"backup\"\ndb = \"db\"\noutput = \"out/bk\"\nforce = true\n\
         tables = [\"Customer\", \"Job\"]\nexclude = [\"public.*_old\"]\nlock_wait_timeout = 5\n\
         [[steps]]\nkind = \"verify\"\nbackup = \"bk\"\ndb = \"db\"\nexclude = [\"Job\"]\njobs = 1\n\
         [[steps]]\nkind = \"sql\"\ndb = \"db\"\nfiles = [\"change.sql\"]\n\
         [[steps]]\nkind = \"restore\"\nbackup = \"bk\"\ndb = \"db\"\nexclude = [\"Job\"]\n\
         mode = \"truncate\"\ndisable_triggers = true\nper_table_commit = true\njobs = 1\n",
    );
    std::fs::write(
        t.path().join("change.sql"),
        "SELECT 1/0;\nUPDATE \"Customer\" SET name = 'x';\n",
    )
    .unwrap();
    let conn = c.conn(&db);
    let r = pgbarge(&["run", plan.to_str().unwrap()], &[("MY_DB", &conn)]);
    r.expect_code(3);
    std::fs::write(t.path().join("change.sql"), "UPDATE \"Customer\" SET name = 'x';\n").unwrap();
    // The first run's backup is in the folder; force = true replaces it.
    let r = pgbarge(&["run", plan.to_str().unwrap()], &[("MY_DB", &conn)]);
    r.expect_code(0);
    assert!(r.stdout.contains("run complete: 4 steps"), "{}", r.stdout);
    assert_eq!(count(&db, "\"Customer\" WHERE name = 'x'"), "0");
    assert_eq!(count(&db, "\"Job\""), "8");
    let r = pgbarge(&["run", plan.to_str().unwrap()], &[("MY_DB", &conn)]);
    r.expect_code(0);

    // Without force, the refusal names the step's field, not a flag.
    let text = std::fs::read_to_string(&plan).unwrap().replace("force = true\n", "");
    std::fs::write(&plan, text).unwrap();
    let r = pgbarge(&["run", plan.to_str().unwrap()], &[("MY_DB", &conn)]);
    r.expect_code(2);
    assert!(r.stderr.contains("set force = true on the backup step"), "{}", r.stderr);
    assert!(!r.stderr.contains("pass --force"), "{}", r.stderr);
}

/// Issue 16: a dry run said "checked" for steps whose connection failed,
/// and quoted the connection error with a second `error:`.
#[test]
fn dry_run_says_checked_only_for_what_was_checked() {
    let t = tempfile::tempdir().unwrap();
    let plan = write_plan(
        t.path(),
        "[[steps]]\nkind = \"check\"\ndb = \"db\"\nquery = \"SELECT 1\"\nexpect = \"1\"\n",
    );
    let r = pgbarge(
        &["run", plan.to_str().unwrap(), "--dry-run"],
        &[("MY_DB", "host=/nonexistent-socket-dir port=1 dbname=x connect_timeout=2")],
    );
    r.expect_code(2);
    assert!(
        r.stdout.contains("step 1 1-check (check): not checked: cannot connect to \"db\""),
        "{}",
        r.stdout
    );
    assert!(!r.stdout.contains("): checked"), "{}", r.stdout);
    assert!(r.stderr.contains("cannot connect"), "{}", r.stderr);
    assert_eq!(r.stderr.matches("error:").count(), 1, "{}", r.stderr);
}

/// Issue 18: a run that fails after its DDL files ran prints the exact
/// rollback; pasted as printed, it puts schema and rows back as backed up.
#[test]
fn a_failed_migration_is_rolled_back_exactly_by_the_printed_command() {
    let s = scenario("rn_clean");
    let before = crate::restore_clean::schema_of(&s.target);
    let plan = s.dir.join("plan.toml");
    let text = std::fs::read_to_string(&plan).unwrap();
    let text = text.replace(
        "    \"migrations/06-sequences.sql\",\n",
        "    \"migrations/06-sequences.sql\",\n    \"broken.sql\",\n",
    );
    std::fs::write(&plan, text).unwrap();
    std::fs::write(s.dir.join("broken.sql"), "ALTER TABLE \"Usr\" ADD COLUMN x int;\n").unwrap();
    let r = s.run(&[]);
    r.expect_code(3);
    assert_ne!(crate::restore_clean::schema_of(&s.target), before);
    let command = r
        .stderr
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("pgbarge restore"))
        .unwrap_or_else(|| panic!("no rollback command: {}", r.stderr))
        .to_string();
    let dir = format!("{}/backups/full", s.work.display());
    assert_eq!(command, format!("pgbarge restore {dir} -d \"$ERP_TARGET\" --clean"));
    let md = std::fs::read_to_string(s.logs()[0].join("run.md")).unwrap();
    assert!(md.contains(&command), "{md}");

    let bin = Path::new(env!("CARGO_BIN_EXE_pgbarge")).parent().unwrap().to_path_buf();
    let env: Vec<(&str, &str)> = s.env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let out = crate::common::pgbarge_cmd_shell(&command, &bin, &env);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert_eq!(crate::restore_clean::schema_of(&s.target), before);
    let target = cluster().conn(&s.target);
    pgbarge(&["verify", &dir, "-d", &target, "--deep"], &[]).expect_code(0);
}

#[test]
fn quiet_run_prints_nothing_and_the_log_reads_as_markdown() {
    let s = scenario("rn_quiet");
    let r = s.run(&["-q"]);
    r.expect_code(0);
    assert_eq!(r.stdout, "", "run -q prints nothing on success");
    assert_eq!(r.stderr, "", "nor on stderr");
    let md = std::fs::read_to_string(s.logs()[0].join("run.md")).unwrap();
    // Parameters as a list, checksums as a table: no JSON in run.md.
    assert!(md.contains("- parameters:\n  - db: `target`\n"), "{md}");
    assert!(md.contains("| checksums | |\n|---|---|\n"), "{md}");
    assert!(md.contains("file sha256 "), "{md}");
    assert!(!md.contains("{\""), "{md}");
}
