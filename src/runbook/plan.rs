//! The runbook plan (`PLAN.toml`) as data: connections named by environment
//! variable or libpq service — never an inline connection string or password —
//! and steps of known kinds. Parsing and the checks that need no server live
//! here; running the steps is `cmd::run`'s.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// A whole plan file.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Plan {
    pub name: String,
    /// Where run logs go, relative to the plan's folder (default `pgbarge-runs`).
    #[serde(default = "default_log_dir")]
    pub log_dir: String,
    /// The backup step a failed run's rollback hint restores from (default:
    /// the first backup step).
    #[serde(default)]
    pub rollback: Option<String>,
    pub connections: BTreeMap<String, Connection>,
    pub steps: Vec<Step>,
}

fn default_log_dir() -> String {
    "pgbarge-runs".into()
}

/// How a plan names a database: by environment variable holding a
/// connection string, or by libpq service name.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Connection {
    #[serde(default)]
    pub env: Option<String>,
    #[serde(default)]
    pub service: Option<String>,
    /// A bastion to tunnel through: `[USER@]HOST[:PORT]`, as `--ssh`.
    #[serde(default)]
    pub ssh: Option<String>,
    /// The identity file ssh offers to the bastion, as `--ssh-key`.
    #[serde(default)]
    pub ssh_key: Option<String>,
}

/// One step. `name` is how other steps, `--from` and the log refer to it.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Step {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(flatten)]
    pub kind: StepKind,
}

/// What a step does; the fields mirror the command's flags.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum StepKind {
    Backup {
        db: String,
        output: String,
        #[serde(default)]
        tables: Vec<String>,
        #[serde(default)]
        exclude: Vec<String>,
        #[serde(default)]
        schema: bool,
        #[serde(default)]
        compress: Option<String>,
        /// Signed, so a negative value is reported as out of range by name
        /// (see `read_plan`) rather than as a type error.
        #[serde(default)]
        jobs: Option<i64>,
        /// Replace a previous pgbarge backup in the folder, so a plan can be
        /// run again from the top.
        #[serde(default)]
        force: bool,
        #[serde(default)]
        lock_wait_timeout: Option<f64>,
        /// Encrypt to these recipients (public keys, or `@FILE` relative to
        /// the plan), as `--encrypt-to`.
        #[serde(default)]
        encrypt_to: Vec<String>,
    },
    Verify {
        /// A backup step's name, or a folder.
        backup: String,
        #[serde(default)]
        db: Option<String>,
        #[serde(default)]
        tables: Vec<String>,
        #[serde(default)]
        exclude: Vec<String>,
        #[serde(default)]
        jobs: Option<usize>,
        #[serde(default)]
        deep: bool,
        #[serde(default)]
        expect: Option<String>,
        /// Key files of an encrypted backup (relative to the plan), as `--identity`.
        #[serde(default)]
        identity: Vec<String>,
    },
    Sql {
        db: String,
        files: Vec<String>,
        #[serde(default)]
        single_transaction: bool,
    },
    Copy {
        source: String,
        target: String,
        #[serde(default)]
        tables: Vec<String>,
        #[serde(default)]
        exclude: Vec<String>,
        #[serde(default)]
        mode: Option<String>,
        #[serde(default)]
        verify: Option<String>,
        #[serde(default)]
        disable_triggers: bool,
        #[serde(default)]
        cascade: bool,
        #[serde(default)]
        per_table_commit: bool,
        #[serde(default)]
        jobs: Option<usize>,
        #[serde(default)]
        lock_wait_timeout: Option<f64>,
    },
    Restore {
        /// A backup step's name, or a folder.
        backup: String,
        db: String,
        #[serde(default)]
        tables: Vec<String>,
        #[serde(default)]
        exclude: Vec<String>,
        #[serde(default)]
        mode: Option<String>,
        #[serde(default)]
        schema: bool,
        #[serde(default)]
        clean: bool,
        #[serde(default)]
        disable_triggers: bool,
        #[serde(default)]
        cascade: bool,
        #[serde(default)]
        per_table_commit: bool,
        #[serde(default)]
        jobs: Option<usize>,
        #[serde(default)]
        ignore_unlisted: bool,
        #[serde(default)]
        lock_wait_timeout: Option<f64>,
        /// Key files of an encrypted backup (relative to the plan), as `--identity`.
        #[serde(default)]
        identity: Vec<String>,
    },
    Check {
        db: String,
        /// One SQL query returning one value.
        query: String,
        /// The value it must return (compared as text, or as numbers with `compare`).
        expect: String,
        /// `=` (default), `!=`, `<`, `<=`, `>`, `>=`.
        #[serde(default)]
        compare: Option<String>,
    },
    /// `pgbarge diff` between two connections; the differences in `allow`
    /// (each written as diff prints its key) are expected and do not fail
    /// the step.
    Diff {
        source: String,
        target: String,
        #[serde(default)]
        tables: Vec<String>,
        #[serde(default)]
        exclude: Vec<String>,
        #[serde(default)]
        schemas: Vec<String>,
        #[serde(default)]
        allow: Vec<String>,
        #[serde(default)]
        names: bool,
        #[serde(default)]
        column_order: bool,
        #[serde(default)]
        versions: bool,
        #[serde(default)]
        owners: bool,
        #[serde(default)]
        privileges: bool,
        #[serde(default)]
        comments: bool,
        #[serde(default)]
        lock_wait_timeout: Option<f64>,
    },
}

impl StepKind {
    pub fn kind(&self) -> &'static str {
        match self {
            StepKind::Backup { .. } => "backup",
            StepKind::Verify { .. } => "verify",
            StepKind::Sql { .. } => "sql",
            StepKind::Copy { .. } => "copy",
            StepKind::Restore { .. } => "restore",
            StepKind::Check { .. } => "check",
            StepKind::Diff { .. } => "diff",
        }
    }

    /// The connection names the step uses.
    pub fn connections(&self) -> Vec<&str> {
        match self {
            StepKind::Backup { db, .. }
            | StepKind::Sql { db, .. }
            | StepKind::Restore { db, .. }
            | StepKind::Check { db, .. } => vec![db],
            StepKind::Verify { db, .. } => db.iter().map(String::as_str).collect(),
            StepKind::Copy { source, target, .. } | StepKind::Diff { source, target, .. } => {
                vec![source, target]
            }
        }
    }
}

impl Step {
    /// The name the log and `--from` use: the given one, else `N-kind`.
    pub fn label(&self, index: usize) -> String {
        self.name.clone().unwrap_or_else(|| format!("{}-{}", index + 1, self.kind.kind()))
    }
}

/// A plan read from disk, with the folder its relative paths start from.
#[derive(Debug, Clone)]
pub struct LoadedPlan {
    pub plan: Plan,
    pub path: PathBuf,
    pub base: PathBuf,
}

impl LoadedPlan {
    /// A path of the plan, `${VAR}` expanded, relative to the plan's folder
    /// unless absolute.
    pub fn resolve(&self, p: &str) -> PathBuf {
        let expanded = expand(p).unwrap_or_else(|_| p.to_string());
        if expanded.starts_with("s3://") {
            return PathBuf::from(expanded);
        }
        let p = Path::new(&expanded);
        if p.is_absolute() { p.to_path_buf() } else { self.base.join(p) }
    }

    /// The folder a verify or restore step's `backup` names: an earlier
    /// backup step's output, or a path.
    pub fn backup_dir(&self, backup: &str) -> PathBuf {
        for (i, s) in self.plan.steps.iter().enumerate() {
            if let StepKind::Backup { output, .. } = &s.kind
                && s.label(i) == backup
            {
                return self.resolve(output);
            }
        }
        self.resolve(backup)
    }

    /// The step index `--from` names (a step name or a 1-based number).
    ///
    /// # Errors
    /// A usage error when no step has that name or number.
    pub fn step_index(&self, from: &str) -> Result<usize> {
        if let Some(i) = self.plan.steps.iter().enumerate().position(|(i, s)| s.label(i) == from) {
            return Ok(i);
        }
        match from.parse::<usize>() {
            Ok(n) if (1..=self.plan.steps.len()).contains(&n) => Ok(n - 1),
            _ => Err(Error::usage(format!(
                "--from {from}: no such step; the steps are {}",
                self.plan
                    .steps
                    .iter()
                    .enumerate()
                    .map(|(i, s)| s.label(i))
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
        }
    }
}

/// Reads and checks a plan: everything that needs no server.
///
/// # Errors
/// A usage error listing every problem: TOML errors (unknown step kinds and
/// fields included), inline connection strings or passwords, unknown
/// connection names, duplicate step names, files that do not exist, `verify`
/// or `restore` naming no earlier backup step or folder.
pub fn read_plan(path: &Path) -> Result<LoadedPlan> {
    let text = std::fs::read_to_string(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => {
            Error::usage(format!("{}: no such plan file", path.display()))
        }
        _ => Error::usage(format!("{}: cannot read: {e}", path.display())),
    })?;
    let raw: toml::Value = toml::from_str(&text)
        .map_err(|e| Error::usage(format!("{}: not valid TOML: {e}", path.display())))?;
    let mut problems = inline_secrets(&raw);
    if !problems.is_empty() {
        return Err(refused(path, problems));
    }
    let plan: Plan = toml::from_str(&text).map_err(|e| {
        Error::usage_hint(
            format!("{}: {e}", path.display()),
            "step kinds are backup, verify, sql, copy, restore, check and diff; see the README for each one's fields",
        )
    })?;
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let base = if base.as_os_str().is_empty() { PathBuf::from(".") } else { base };
    let loaded = LoadedPlan { plan, path: path.to_path_buf(), base };
    let plan = &loaded.plan;

    for p in paths_of(plan) {
        if let Err(e) = expand(p) {
            problems.push(e);
        }
    }
    if !problems.is_empty() {
        return Err(refused(path, problems));
    }
    for (name, c) in &plan.connections {
        match (&c.env, &c.service) {
            (Some(_), None) | (None, Some(_)) => {}
            _ => problems.push(format!(
                "connection \"{name}\": give exactly one of env = \"VARIABLE\" or service = \"NAME\""
            )),
        }
        match (&c.ssh, &c.ssh_key) {
            (None, Some(_)) => problems
                .push(format!("connection \"{name}\": ssh_key needs ssh = \"[USER@]HOST[:PORT]\"")),
            (Some(b), key) => {
                if let Err(e) = crate::conn::tunnel::Bastion::parse(b, key.as_deref()) {
                    problems.push(format!("connection \"{name}\": {e}"));
                }
            }
            (None, None) => {}
        }
    }
    let mut names = HashSet::new();
    let mut backups_so_far: HashSet<String> = HashSet::new();
    for (i, s) in plan.steps.iter().enumerate() {
        let label = s.label(i);
        if !names.insert(label.clone()) {
            problems.push(format!("step {}: the name \"{label}\" is used twice", i + 1));
        }
        for c in s.kind.connections() {
            if !plan.connections.contains_key(c) {
                problems.push(format!("step {label}: no connection named \"{c}\""));
            }
        }
        let missing = |f: &str| {
            let p = loaded.resolve(f);
            (!p.is_file()).then(|| format!("step {label}: {} does not exist", p.display()))
        };
        let jobs = match &s.kind {
            StepKind::Verify { jobs, .. }
            | StepKind::Copy { jobs, .. }
            | StepKind::Restore { jobs, .. } => *jobs,
            _ => None,
        };
        if let Err(e) = crate::limits::jobs(jobs) {
            problems.push(format!("step {label}: {e}"));
        }
        let lock_wait = match &s.kind {
            StepKind::Backup { lock_wait_timeout, .. }
            | StepKind::Copy { lock_wait_timeout, .. }
            | StepKind::Restore { lock_wait_timeout, .. }
            | StepKind::Diff { lock_wait_timeout, .. } => *lock_wait_timeout,
            _ => None,
        };
        if let Some(Err(e)) = lock_wait.map(crate::conn::locks::parse_timeout) {
            problems.push(format!("step {label}: {e}"));
        }
        match &s.kind {
            StepKind::Sql { files, .. } => {
                if files.is_empty() {
                    problems.push(format!("step {label}: no files"));
                }
                problems.extend(files.iter().filter_map(|f| missing(f)));
            }
            StepKind::Verify { backup, .. } | StepKind::Restore { backup, .. } => {
                if let StepKind::Verify { expect, .. } = &s.kind {
                    problems.extend(expect.as_deref().and_then(missing));
                }
                if !backups_so_far.contains(backup) && !is_backup_place(&loaded, backup) {
                    problems.push(format!(
                        "step {label}: backup \"{backup}\" is neither an earlier backup step nor a folder"
                    ));
                }
            }
            StepKind::Backup { jobs, compress, .. } => {
                // Numbers and formats are checked here, before any step runs.
                if let Some(j) = jobs
                    && !(1..=crate::limits::MAX_JOBS as i64).contains(j)
                {
                    problems.push(format!(
                        "step {label}: jobs must be from 1 to {}, not {j}",
                        crate::limits::MAX_JOBS
                    ));
                }
                if let Some(Err(e)) =
                    compress.as_deref().map(crate::format::compression::Compression::parse)
                {
                    problems.push(format!("step {label}: {e}"));
                }
                backups_so_far.insert(label.clone());
            }
            StepKind::Copy { .. } | StepKind::Check { .. } | StepKind::Diff { .. } => {}
        }
    }
    // Every backup step's label is in backups_so_far by now.
    if let Some(r) = &plan.rollback
        && !backups_so_far.contains(r)
    {
        problems.push(format!("rollback = \"{r}\" names no backup step"));
    }
    if problems.is_empty() { Ok(loaded) } else { Err(refused(path, problems)) }
}

/// Expands `${VAR}` from the environment in a path.
///
/// # Errors
/// The name of a variable that is not set, or an unclosed `${`.
pub fn expand(p: &str) -> std::result::Result<String, String> {
    let mut out = String::new();
    let mut rest = p;
    while let Some(i) = rest.find("${") {
        out.push_str(&rest[..i]);
        let Some(end) = rest[i..].find('}') else { return Err(format!("unclosed ${{ in {p}")) };
        let name = &rest[i + 2..i + end];
        match std::env::var(name) {
            Ok(v) if !v.is_empty() => out.push_str(&v),
            _ => return Err(format!("environment variable {name} (in {p}) is not set")),
        }
        rest = &rest[i + end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Every path the plan names, for the `${VAR}` check.
fn paths_of(plan: &Plan) -> Vec<&str> {
    let mut v = vec![plan.log_dir.as_str()];
    for s in &plan.steps {
        match &s.kind {
            StepKind::Backup { output, .. } => v.push(output),
            StepKind::Verify { backup, expect, .. } => {
                v.push(backup);
                v.extend(expect.as_deref());
            }
            StepKind::Sql { files, .. } => v.extend(files.iter().map(String::as_str)),
            StepKind::Restore { backup, .. } => v.push(backup),
            StepKind::Copy { .. } | StepKind::Check { .. } | StepKind::Diff { .. } => {}
        }
    }
    v
}

/// A folder that exists, or an object-store address (checked when used).
fn is_backup_place(plan: &LoadedPlan, backup: &str) -> bool {
    backup.starts_with("s3://") || plan.resolve(backup).is_dir()
}

fn refused(path: &Path, problems: Vec<String>) -> Error {
    Error::usage_hint(
        format!(
            "{}: the plan is refused; no step ran:\n  {}",
            path.display(),
            problems.join("\n  ")
        ),
        "connections are named by environment variable (env = \"ERP_TARGET\") or libpq service (service = \"prod\"), never written into the plan",
    )
}

/// Connection strings or passwords written into the plan itself.
fn inline_secrets(v: &toml::Value) -> Vec<String> {
    let mut found = Vec::new();
    walk(v, "", &mut found);
    found
}

fn walk(v: &toml::Value, at: &str, found: &mut Vec<String>) {
    match v {
        toml::Value::Table(t) => {
            for (k, v) in t {
                let here = if at.is_empty() { k.clone() } else { format!("{at}.{k}") };
                if k.eq_ignore_ascii_case("password") || k.eq_ignore_ascii_case("passwd") {
                    found.push(format!("{here}: a password written into the plan"));
                    continue;
                }
                walk(v, &here, found);
            }
        }
        toml::Value::Array(a) => {
            for (i, v) in a.iter().enumerate() {
                walk(v, &format!("{at}[{i}]"), found);
            }
        }
        toml::Value::String(s) => {
            let lower = s.to_ascii_lowercase();
            let url_password = (lower.starts_with("postgresql://")
                || lower.starts_with("postgres://"))
                && s.split_once("://")
                    .and_then(|(_, rest)| rest.split_once('@'))
                    .is_some_and(|(userinfo, _)| userinfo.contains(':'));
            if url_password || lower.contains("password=") {
                found.push(format!(
                    "{at}: a connection string with a password written into the plan"
                ));
            } else if lower.starts_with("postgresql://")
                || lower.starts_with("postgres://")
                || lower.contains("host=")
            {
                found.push(format!("{at}: an inline connection string; name it by env or service"));
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, text: &str) -> PathBuf {
        let p = dir.join("plan.toml");
        std::fs::write(&p, text).unwrap();
        p
    }

    const GOOD: &str = r#"
name = "t"
[connections]
target = { env = "T" }
[[steps]]
name = "full"
kind = "backup"
db = "target"
output = "b/full"
[[steps]]
kind = "verify"
backup = "full"
[[steps]]
kind = "check"
db = "target"
query = "SELECT 1"
expect = "1"
"#;

    #[test]
    fn a_good_plan_reads() {
        let d = tempfile::tempdir().unwrap();
        let p = read_plan(&write(d.path(), GOOD)).unwrap();
        assert_eq!(p.plan.steps.len(), 3);
        assert_eq!(p.plan.steps[1].label(1), "2-verify");
        assert_eq!(p.backup_dir("full"), d.path().join("b/full"));
        assert_eq!(p.step_index("2-verify").unwrap(), 1);
        assert_eq!(p.step_index("3").unwrap(), 2);
        assert!(p.step_index("nope").is_err());
    }

    #[test]
    fn secrets_kinds_and_names_are_checked() {
        let d = tempfile::tempdir().unwrap();
        let render =
            |text: &str| crate::error::render(&read_plan(&write(d.path(), text)).unwrap_err());
        let e = render(&GOOD.replace("{ env = \"T\" }", "{ env = \"T\", password = \"x\" }"));
        assert!(e.contains("a password written into the plan"), "{e}");
        let e = render(&GOOD.replace("query = \"SELECT 1\"", "query = \"postgresql://u:pw@h/db\""));
        assert!(e.contains("with a password"), "{e}");
        let e = render(&GOOD.replace("kind = \"check\"", "kind = \"vacuum\""));
        assert!(e.contains("vacuum"), "{e}");
        let e = render(&GOOD.replace("db = \"target\"\nquery", "db = \"prod\"\nquery"));
        assert!(e.contains("no connection named \"prod\""), "{e}");
        let e = render(&GOOD.replace("backup = \"full\"", "backup = \"missing\""));
        assert!(e.contains("neither an earlier backup step nor a folder"), "{e}");
    }
}
