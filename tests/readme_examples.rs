//! The README is true to the letter: every `pgbarge` command of its ```sh
//! blocks runs, in the README's order, against databases loaded from
//! `fixtures/erp/`, and must exit 0. A wrong example fails CI.
//!
//! Each block runs as one bash script (so a `cd` in it carries to the next
//! lines) in a folder holding a copy of `fixtures/`, with the binary first on
//! PATH. Placeholders are bound to connection strings:
//!
//! - `$PROD` and `$RDS`: one production database (`erp/target.sql`), backed up
//!   before the migration, migrated by the `sql` examples, loaded by `copy`;
//! - `$LOCAL`: the development database (`erp/source.sql`);
//! - `$NEW_DB`: an empty database (the whole restore with `--schema`);
//! - `$ERP_TARGET`, `$ERP_SOURCE`, `$ERP_WORK`: a fresh pair for the runbook
//!   (the README's own `export` lines name hosts the test cannot reach).
//!
//! Lines that are not pgbarge commands run only if they are `cd` (and what
//! follows it with `&&`, as `sha256sum -c`); the rest (`export`, `psql`,
//! `scripts/...`) are skipped. Literal connection examples for a local
//! server are pointed at the test cluster by [`LOCAL_SERVER`].

use std::path::Path;

use crate::common::{cluster, db_with, fixtures, pgbarge_shell_in};

/// Commands skipped on purpose, each with its reason. A command is skipped
/// when it contains one of these strings.
const SKIPPED: &[(&str, &str)] = &[
    // A remote host (db.example.com, RDS): no test can reach it.
    ("@db.example.com", "a remote server"),
    ("rds.amazonaws.com", "a remote server"),
    // Object storage needs an S3 server; tests/s3_store.rs covers these flows.
    ("s3://", "an S3 bucket"),
];

/// Literal local-server examples, rewritten to the test cluster:
/// (text in the README, what stands for it). `erp` becomes the production
/// database, the socket folder the cluster's; PGPORT and PGUSER are set.
const LOCAL_SERVER: &[(&str, &str)] = &[
    ("host=/var/run/postgresql dbname=erp", "host={SOCKET} dbname={PROD}"),
    ("PGHOST=/tmp PGDATABASE=erp", "PGHOST={SOCKET} PGDATABASE={PROD}"),
];

/// The ```sh blocks of the README, each as its lines with `\` continuations
/// joined.
fn sh_blocks(readme: &str) -> Vec<Vec<String>> {
    let mut blocks = Vec::new();
    let mut current: Option<Vec<String>> = None;
    let mut pending = String::new();
    for line in readme.lines() {
        match &mut current {
            None if line.trim_start().starts_with("```sh") => current = Some(Vec::new()),
            None => {}
            Some(_) if line.trim_start().starts_with("```") => {
                blocks.push(current.take().unwrap());
            }
            Some(lines) => {
                if let Some(head) = line.strip_suffix('\\') {
                    pending.push_str(head);
                    continue;
                }
                pending.push_str(line);
                lines.push(std::mem::take(&mut pending));
            }
        }
    }
    blocks
}

/// Whether a line runs pgbarge (after any `VAR=value` prefixes).
fn is_pgbarge(line: &str) -> bool {
    line.split_whitespace().find(|w| !w.contains('=')) == Some("pgbarge")
}

#[test]
fn readme_examples() {
    let c = cluster();
    let prod = db_with("readme_prod", "erp/target.sql");
    let local = db_with("readme_local", "erp/source.sql");
    let new_db = c.create_db("readme_new");
    let erp_target = db_with("readme_erp_target", "erp/target.sql");
    let erp_source = db_with("readme_erp_source", "erp/source.sql");

    let work = tempfile::tempdir().unwrap();
    let ok = std::process::Command::new("cp")
        .arg("-a")
        .arg(fixtures())
        .arg(work.path().join("fixtures"))
        .status()
        .unwrap();
    assert!(ok.success());
    std::fs::copy(fixtures().join("erp/expect-target.csv"), work.path().join("counts.csv"))
        .unwrap();

    let socket = c.dir.display().to_string();
    let port = c.port.to_string();
    let erp_work = work.path().join("erp-work").display().to_string();
    let env: Vec<(&str, String)> = vec![
        ("PROD", c.conn(&prod)),
        ("RDS", c.conn(&prod)),
        ("LOCAL", c.conn(&local)),
        ("NEW_DB", c.conn(&new_db)),
        ("ERP_TARGET", c.conn(&erp_target)),
        ("ERP_SOURCE", c.conn(&erp_source)),
        ("ERP_WORK", erp_work),
        ("PGPORT", port),
        ("PGUSER", "postgres".into()),
    ];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let bin = Path::new(env!("CARGO_BIN_EXE_pgbarge")).parent().unwrap().to_path_buf();

    let readme = std::fs::read_to_string(fixtures().join("../README.md")).unwrap();
    let mut ran = 0;
    for block in sh_blocks(&readme) {
        let mut script = String::from("set -e\n");
        for line in &block {
            let trimmed = line.trim_start();
            if let Some((_, why)) = SKIPPED.iter().find(|(s, _)| line.contains(s)) {
                eprintln!("skipped ({why}): {trimmed}");
                continue;
            }
            let runs = is_pgbarge(trimmed) || trimmed.starts_with("cd ");
            if !runs {
                continue;
            }
            let mut line = trimmed.to_string();
            for (from, to) in LOCAL_SERVER {
                line =
                    line.replace(from, &to.replace("{SOCKET}", &socket).replace("{PROD}", &prod));
            }
            if is_pgbarge(trimmed) {
                ran += 1;
            }
            let shown = trimmed.replace('\'', "'\\''");
            script.push_str(&format!("echo '+ {shown}' >&2\n{line}\n"));
        }
        let r = pgbarge_shell_in(&script, &bin, &env, Some(work.path()));
        assert_eq!(
            r.code, 0,
            "a README example failed (the last `+` line):\nstdout:\n{}\nstderr:\n{}",
            r.stdout, r.stderr
        );
    }
    assert!(ran >= 20, "only {ran} README commands ran");
    // The examples did what they say: the runbook ran, the copy landed, and
    // the restore section's --clean put production back as backed up, before
    // the migration (its 11 tables; RolePermission empty again).
    assert_eq!(c.psql(&prod, "SELECT count(*) FROM \"RolePermission\""), "0");
    assert_eq!(c.psql(&prod, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"), "11");
    assert_eq!(c.psql(&erp_target, "SELECT count(*) FROM \"Role\""), "4");
    assert_eq!(c.psql(&new_db, "SELECT count(*) FROM \"TimeEntry\""), "48");
}
