//! Shared test helpers: the cluster, running the pgbarge binary, fixtures.

pub mod cluster;
pub mod s3;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

pub use cluster::{PW_PASSWORD, PW_USER, cluster};

/// What a pgbarge run produced.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Both streams, for "never prints X" assertions.
    pub fn all(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }

    /// Asserts the exit code, showing the output when it differs.
    pub fn expect_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code, code,
            "exit code\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }

    /// Asserts the password never appears in any output.
    pub fn expect_no_password(&self) -> &Self {
        assert!(!self.all().contains(PW_PASSWORD), "password leaked:\n{}", self.all());
        self
    }
}

/// A pgbarge command with a clean environment: no PG* variables and a HOME
/// without a password file, so only what the test sets counts.
pub fn pgbarge_cmd() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_pgbarge"));
    for (k, _) in std::env::vars() {
        if k.starts_with("PG") {
            c.env_remove(&k);
        }
    }
    c.env("HOME", empty_home()).stdin(Stdio::null());
    c
}

/// Runs pgbarge with `args` and the given extra environment.
pub fn pgbarge(args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut c = pgbarge_cmd();
    c.args(args);
    for (k, v) in env {
        c.env(k, v);
    }
    let out = c.output().expect("run pgbarge");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Runs pgbarge with `args`, killing it and failing the test if it has not
/// ended within `limit` (a hang); returns the run and how long it took.
pub fn pgbarge_within(args: &[&str], limit: std::time::Duration) -> (Run, std::time::Duration) {
    let started = std::time::Instant::now();
    let mut child =
        pgbarge_cmd().args(args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > limit {
            let _ = child.kill();
            panic!("pgbarge {args:?} hung");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    let run = Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    (run, started.elapsed())
}

/// `pgbarge copy` from the database `source` to `target` of the test cluster,
/// with `extra` arguments.
pub fn copy_dbs(source: &str, target: &str, extra: &[&str]) -> Run {
    let (s, t) = (cluster().conn(source), cluster().conn(target));
    let mut a = vec!["copy", "--source", &s, "--target", &t];
    a.extend(extra);
    pgbarge(&a, &[])
}

/// A HOME inside the cluster's folder, so it is removed with the cluster.
fn empty_home() -> PathBuf {
    let p = cluster().dir.join("home");
    let _ = std::fs::create_dir_all(&p);
    p
}

/// The repository's `fixtures/` folder.
pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

/// The pid of the backend running a COPY that mentions `table` in `db`,
/// once one runs (waited for at most a minute).
pub fn copy_backend_pid(db: &str, table: &str) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let pid = cluster().psql(
            db,
            &format!(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() \
                 AND pid <> pg_backend_pid() AND state = 'active' AND query LIKE 'COPY%{table}%'"
            ),
        );
        if !pid.trim().is_empty() {
            return pid.trim().to_string();
        }
        assert!(std::time::Instant::now() < deadline, "no COPY of {table} showed");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// Runs the ERP fixture's migration DDL files on `db`, in order, as psql.
pub fn run_erp_migrations(db: &str) {
    let mut files: Vec<_> = std::fs::read_dir(fixtures().join("erp/migrations"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    for f in &files {
        cluster().psql_file(db, f);
    }
}

/// A database loaded with a fixture SQL file (relative to `fixtures/`).
pub fn db_with(test: &str, fixture: &str) -> String {
    let c = cluster();
    let db = c.create_db(test);
    c.psql_file(&db, &fixtures().join(fixture));
    db
}

/// A current-thread runtime for tests that call the library directly.
pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime").block_on(f)
}

/// A digest of every public table's rows (an md5 of the rows in order, per
/// table), to prove a database unchanged or equal to another.
pub fn digest_of(db: &str) -> String {
    cluster().psql(
        db,
        "SELECT string_agg(format('%s:%s', c.relname,
                (xpath('/row/c/text()', query_to_xml(format('SELECT md5(coalesce(string_agg(t::text, ''|'' ORDER BY t::text), '''')) AS c FROM %I.%I t', n.nspname, c.relname), false, true, '')))[1]::text), ',' ORDER BY c.relname)
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE c.relkind = 'r' AND n.nspname = 'public'",
    )
}

/// Runs `command` in `bash -c`, as a user pastes it, with `bin` (the folder
/// of the pgbarge binary) first on PATH, no PG* variables, and `env` set.
pub fn pgbarge_cmd_shell(command: &str, bin: &Path, env: &[(&str, &str)]) -> Run {
    pgbarge_shell_in(command, bin, env, None)
}

/// As [`pgbarge_cmd_shell`], in the folder `cwd`.
pub fn pgbarge_shell_in(
    command: &str,
    bin: &Path,
    env: &[(&str, &str)],
    cwd: Option<&Path>,
) -> Run {
    let mut c = Command::new("bash");
    c.arg("-c").arg(command);
    for (k, _) in std::env::vars() {
        if k.starts_with("PG") {
            c.env_remove(&k);
        }
    }
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    c.env("PATH", path).env("HOME", empty_home()).stdin(Stdio::null());
    for (k, v) in env {
        c.env(k, v);
    }
    if let Some(d) = cwd {
        c.current_dir(d);
    }
    let out = c.output().expect("run bash");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}
