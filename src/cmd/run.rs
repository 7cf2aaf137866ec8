//! `pgbarge run PLAN.toml`: a whole migration runbook from one plan file.
//!
//! The plan is read and checked before any step runs (see [`crate::runbook::plan`]):
//! connections resolve from their environment variables or services, files
//! exist, names are known. `--dry-run` goes further without changing
//! anything: it connects, resolves table patterns, and has the server parse
//! every SQL statement and check query. A run executes the steps in order
//! through the same code the single commands use, writes a log folder
//! (`run.md` for people, `run.json` for machines), and stops at the first
//! failing step with the restore command that rolls back to this run's backup.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;

use crate::catalog::select::Selection;
use crate::cli::{BackupArgs, ConnArgs, CopyArgs, RestoreArgs, RunArgs, TableArgs, VerifyArgs};
use crate::cmd::{Outcome, backup, copy, restore, sql, verify};
use crate::conn::conninfo::{ConnInfo, process_env, resolve};
use crate::conn::session::{Purpose, connect};
use crate::error::{Error, Result};
use crate::runbook::plan::{LoadedPlan, Step, StepKind, read_plan};

/// What `run` needs, resolved.
#[derive(Debug)]
pub struct RunPlan {
    pub plan: LoadedPlan,
    /// Each connection's string (from its variable or `service=NAME`) and how
    /// the plan names it (`$ERP_TARGET`, `service=prod`) for logs and hints.
    pub connections: BTreeMap<String, PlanConnection>,
    pub dry_run: bool,
    pub from: usize,
    pub quiet: bool,
}

/// A plan's connection, resolved.
#[derive(Debug)]
pub struct PlanConnection {
    /// The connection string (from its variable, or `service=NAME`).
    pub conn: String,
    /// How the plan names it, for logs and hints: `"$ERP_TARGET"`, `service=prod`.
    pub shown: String,
    pub info: Arc<ConnInfo>,
}

/// Reads and checks the plan and its connections.
///
/// # Errors
/// Usage errors: the plan's own problems, an unset or unparsable connection
/// variable, an unknown `--from` step.
pub fn plan(args: RunArgs) -> Result<RunPlan> {
    let plan = read_plan(Path::new(&args.plan))?;
    let mut connections = BTreeMap::new();
    let mut problems = Vec::new();
    for (name, c) in &plan.plan.connections {
        let (conn, shown) = match (&c.env, &c.service) {
            (Some(var), _) => match std::env::var(var) {
                Ok(v) if !v.trim().is_empty() => (v, format!("\"${var}\"")),
                _ => {
                    problems.push(format!(
                        "connection \"{name}\": environment variable {var} is not set"
                    ));
                    continue;
                }
            },
            (None, Some(service)) => (format!("service={service}"), format!("service={service}")),
            (None, None) => unreachable!("read_plan checks"),
        };
        match resolve(&conn, &process_env) {
            Ok(info) => {
                connections
                    .insert(name.clone(), PlanConnection { conn, shown, info: Arc::new(info) });
            }
            Err(e) => {
                problems.push(format!("connection \"{name}\": {}", crate::error::render_body(&e)))
            }
        }
    }
    if !problems.is_empty() {
        return Err(Error::usage(format!(
            "{}: the plan is refused; no step ran:\n  {}",
            plan.path.display(),
            problems.join("\n  ")
        )));
    }
    let from = match &args.from {
        Some(f) => plan.step_index(f)?,
        None => 0,
    };
    Ok(RunPlan { plan, connections, dry_run: args.dry_run, from, quiet: args.quiet })
}

/// One step in the log.
#[derive(Debug, Serialize)]
struct StepLog {
    number: usize,
    name: String,
    kind: &'static str,
    /// The step as the plan gives it (connections by name only).
    parameters: serde_json::Value,
    /// The connections it used, without passwords.
    connections: BTreeMap<String, String>,
    started_at: Option<String>,
    finished_at: Option<String>,
    seconds: Option<f64>,
    /// `ok`, `differs`, `failed`, `skipped` or `not run`.
    outcome: &'static str,
    details: BTreeMap<String, serde_json::Value>,
    error: Option<String>,
}

/// The whole run's log.
#[derive(Debug, Serialize)]
struct RunLog {
    plan: String,
    name: String,
    started_at: String,
    finished_at: Option<String>,
    outcome: &'static str,
    steps: Vec<StepLog>,
    rollback: Option<String>,
}

/// Runs `run`.
///
/// # Errors
/// The failing step's error (its exit code), after the log is written.
pub async fn run(plan: RunPlan) -> Result<Outcome> {
    if plan.dry_run {
        return dry_run(&plan).await;
    }
    let started_at = crate::storage::manifest::now_rfc3339();
    let log_dir = log_folder(&plan)?;
    let mut log = RunLog {
        plan: plan.plan.path.display().to_string(),
        name: plan.plan.plan.name.clone(),
        started_at,
        finished_at: None,
        outcome: "running",
        steps: plan
            .plan
            .plan
            .steps
            .iter()
            .enumerate()
            .map(|(i, s)| step_log(&plan, i, s))
            .collect(),
        rollback: None,
    };
    if !plan.quiet {
        println!("run {} — log in {}", plan.plan.plan.name, log_dir.display());
    }
    let mut failure = None;
    let mut outcome = Outcome::Ok;
    for (i, step) in plan.plan.plan.steps.iter().enumerate() {
        if i < plan.from {
            log.steps[i].outcome = "skipped";
            continue;
        }
        let label = step.label(i);
        if !plan.quiet {
            println!(
                "\n== step {} of {}: {label} ({})",
                i + 1,
                plan.plan.plan.steps.len(),
                step.kind.kind()
            );
        }
        let start = Instant::now();
        log.steps[i].started_at = Some(crate::storage::manifest::now_rfc3339());
        let result = run_step(&plan, step).await;
        log.steps[i].finished_at = Some(crate::storage::manifest::now_rfc3339());
        log.steps[i].seconds = Some(start.elapsed().as_secs_f64());
        match result {
            Ok((Outcome::Ok, details)) => {
                log.steps[i].outcome = "ok";
                log.steps[i].details = details;
            }
            Ok((Outcome::Differs, details)) => {
                log.steps[i].outcome = "differs";
                log.steps[i].details = details;
                outcome = Outcome::Differs;
                failure = Some((i, Error::difference(format!("step {label} found differences"))));
                break;
            }
            Err(e) => {
                log.steps[i].outcome = "failed";
                log.steps[i].error = Some(crate::redact::redact(&crate::error::render(&e)));
                failure = Some((i, e));
                break;
            }
        }
        write_log(&log_dir, &log)?;
    }
    for s in log.steps.iter_mut().filter(|s| s.outcome == "pending") {
        s.outcome = "not run";
    }
    log.finished_at = Some(crate::storage::manifest::now_rfc3339());
    let Some((i, err)) = failure else {
        log.outcome = "ok";
        write_log(&log_dir, &log)?;
        if !plan.quiet {
            println!(
                "\nrun complete: {} {}; log {}",
                log.steps.len(),
                plural(log.steps.len(), "step", "steps"),
                log_dir.join("run.md").display()
            );
        }
        return Ok(outcome);
    };
    log.outcome = "failed";
    let hint = rollback_hint(&plan, i);
    log.rollback = Some(hint.clone());
    write_log(&log_dir, &log)?;
    crate::progress::clear_all();
    eprintln!(
        "\nstep {} ({}) failed; the run stopped. Log: {}\n{hint}",
        i + 1,
        plan.plan.plan.steps[i].label(i),
        log_dir.join("run.md").display()
    );
    Err(err.context(format!("step {} ({}) failed", i + 1, plan.plan.plan.steps[i].label(i))))
}

fn step_log(plan: &RunPlan, i: usize, s: &Step) -> StepLog {
    StepLog {
        number: i + 1,
        name: s.label(i),
        kind: s.kind.kind(),
        parameters: serde_json::to_value(&s.kind).unwrap_or_default(),
        connections: s
            .kind
            .connections()
            .into_iter()
            .filter_map(|c| plan.connections.get(c).map(|pc| (c.to_string(), pc.info.to_string())))
            .collect(),
        started_at: None,
        finished_at: None,
        seconds: None,
        outcome: "pending",
        details: BTreeMap::new(),
        error: None,
    }
}

/// `<log_dir>/<UTC time>-<plan name>/`, created private.
fn log_folder(plan: &RunPlan) -> Result<PathBuf> {
    let stamp = humantime::format_rfc3339_seconds(std::time::SystemTime::now())
        .to_string()
        .replace([':', '-'], "");
    let slug: String = plan
        .plan
        .plan
        .name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' })
        .collect();
    let mut dir = plan.plan.resolve(&plan.plan.plan.log_dir).join(format!("{stamp}-{slug}"));
    let mut n = 1;
    while dir.exists() {
        n += 1;
        dir = plan.plan.resolve(&plan.plan.plan.log_dir).join(format!("{stamp}-{slug}-{n}"));
    }
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .map_err(|e| Error::io("cannot create the log folder", &dir, e))?;
    Ok(dir)
}

fn write_log(dir: &Path, log: &RunLog) -> Result<()> {
    let mut json = serde_json::to_vec_pretty(log).expect("log serializes");
    json.push(b'\n');
    crate::storage::sink::write_file_atomic(
        &dir.join("run.json"),
        &crate::redact::redact(&String::from_utf8_lossy(&json)).into_bytes(),
    )?;
    crate::storage::sink::write_file_atomic(
        &dir.join("run.md"),
        crate::redact::redact(&markdown(log)).as_bytes(),
    )
}

fn markdown(log: &RunLog) -> String {
    let mut md = format!(
        "# {}\n\nPlan `{}`, started {}, finished {}: **{}**\n\n| # | step | kind | outcome | seconds |\n|---|---|---|---|---|\n",
        log.name,
        log.plan,
        log.started_at,
        log.finished_at.as_deref().unwrap_or("-"),
        log.outcome
    );
    for s in &log.steps {
        md.push_str(&format!(
            "| {} | {} | {} | {} | {} |\n",
            s.number,
            s.name,
            s.kind,
            s.outcome,
            s.seconds.map_or("-".into(), |v| format!("{v:.1}"))
        ));
    }
    if let Some(r) = &log.rollback {
        md.push_str(&format!("\n## Rollback\n\n{r}\n"));
    }
    for s in &log.steps {
        md.push_str(&format!("\n## {}. {} ({})\n\n", s.number, s.name, s.kind));
        md.push_str(&format!("- outcome: {}\n", s.outcome));
        if let Some(t) = &s.started_at {
            md.push_str(&format!(
                "- started {t}, finished {}\n",
                s.finished_at.as_deref().unwrap_or("-")
            ));
        }
        for (name, info) in &s.connections {
            md.push_str(&format!("- connection {name}: `{info}`\n"));
        }
        md.push_str(&format!(
            "- parameters: `{}`\n",
            serde_json::to_string(&s.parameters).unwrap_or_default()
        ));
        for (k, v) in &s.details {
            md.push_str(&format!("- {k}: {v}\n"));
        }
        if let Some(e) = &s.error {
            md.push_str(&format!("\n```\n{e}\n```\n"));
        }
    }
    md
}

/// How to put the data back: restore from the plan's rollback backup (or
/// the first backup step), if one ran before step `failed`.
fn rollback_hint(plan: &RunPlan, failed: usize) -> String {
    let steps = &plan.plan.plan.steps;
    let backup = steps.iter().enumerate().find(|(i, s)| {
        matches!(s.kind, StepKind::Backup { .. })
            && plan.plan.plan.rollback.as_ref().is_none_or(|r| &s.label(*i) == r)
    });
    match backup {
        Some((bi, s)) if bi < failed || plan.from > bi => {
            let StepKind::Backup { db, output, .. } = &s.kind else { unreachable!() };
            let dir = plan.plan.resolve(output);
            let conn = plan.connections.get(db).map(|pc| pc.shown.clone()).unwrap_or_default();
            format!(
                "To roll back the data, restore the backup step {} took:\n\n    pgbarge restore {} -d {conn} --mode truncate --disable-triggers\n\n(it restores exactly the backup's tables: rows of other tables that reference them are kept and checked; add -t TABLE to restore only some of them; schema changes made by sql steps are not undone by a data restore: revert them with your own DDL first, or restore with --schema into a new database)",
                s.label(bi),
                dir.display()
            )
        }
        _ => {
            "No backup step ran before the failure; nothing of this run's backups to restore from."
                .to_string()
        }
    }
}

/// A command's hint names its flag (`pass --force`); in a plan the same
/// choice is the step's field (`force = true`).
fn as_step_hint(e: Error) -> Error {
    match e {
        Error::Usage { msg, hint: Some(h) } if h.contains("pass --force") => Error::Usage {
            msg,
            hint: Some(h.replace("pass --force", "set force = true on the backup step")),
        },
        Error::Context { ctx, source } => {
            Error::Context { ctx, source: Box::new(as_step_hint(*source)) }
        }
        e => e,
    }
}

fn plural<'a>(n: usize, one: &'a str, many: &'a str) -> &'a str {
    if n == 1 { one } else { many }
}

fn conn_arg(plan: &RunPlan, name: &str) -> String {
    plan.connections[name].conn.clone()
}

/// A session on a plan's connection, for steps that run the user's SQL.
async fn user_session(plan: &RunPlan, name: &str) -> Result<crate::conn::session::Session> {
    connect(&plan.connections[name].info, Purpose::UserSql).await
}

fn tables(include: &[String], exclude: &[String]) -> TableArgs {
    TableArgs { include: include.to_vec(), exclude: exclude.to_vec() }
}

/// Runs one step through the command it names; returns details for the log.
async fn run_step(
    plan: &RunPlan,
    step: &Step,
) -> Result<(Outcome, BTreeMap<String, serde_json::Value>)> {
    let mut details = BTreeMap::new();
    let quiet = plan.quiet;
    let outcome = match &step.kind {
        StepKind::Backup {
            db,
            output,
            tables: t,
            exclude,
            schema,
            compress,
            jobs,
            force,
            lock_wait_timeout,
        } => {
            let dir = plan.plan.resolve(output);
            let m = backup::take(backup::plan(BackupArgs {
                conn: ConnArgs { conn: Some(conn_arg(plan, db)) },
                output: dir.display().to_string(),
                tables: tables(t, exclude),
                // In range: read_plan checked it.
                jobs: jobs.and_then(|j| usize::try_from(j).ok()),
                compress: compress.clone().unwrap_or_else(|| "zstd".into()),
                schema: *schema,
                force: *force,
                lock_wait_timeout: lock_wait_timeout.unwrap_or(30.0),
                quiet,
            })?)
            .await
            .map_err(as_step_hint)?;
            details.insert("folder".into(), dir.display().to_string().into());
            details.insert("tables".into(), m.tables.len().into());
            details.insert("rows".into(), m.tables.iter().map(|t| t.rows).sum::<u64>().into());
            let sums: serde_json::Map<String, serde_json::Value> = m
                .tables
                .iter()
                .map(|t| {
                    (
                        format!("{}.{}", t.schema, t.name),
                        format!("{} rows, file sha256 {}", t.rows, t.file_sha256).into(),
                    )
                })
                .collect();
            details.insert("checksums".into(), sums.into());
            Outcome::Ok
        }
        StepKind::Verify { backup, db, tables: t, exclude, jobs, deep, expect } => {
            let dir = plan.plan.backup_dir(backup);
            details.insert("folder".into(), dir.display().to_string().into());
            verify::run(verify::plan(VerifyArgs {
                dir: dir.display().to_string(),
                conn: ConnArgs { conn: db.as_ref().map(|d| conn_arg(plan, d)) },
                tables: tables(t, exclude),
                jobs: *jobs,
                deep: *deep,
                expect: expect.as_ref().map(|e| plan.plan.resolve(e).display().to_string()),
                json: false,
                quiet,
            })?)
            .await?
        }
        StepKind::Sql { db, files, single_transaction } => {
            let paths: Vec<String> =
                files.iter().map(|f| plan.plan.resolve(f).display().to_string()).collect();
            let files = sql::read_files(&paths, *single_transaction)?;
            let session = user_session(plan, db).await?;
            sql::run_files(&session, &files, *single_transaction, quiet).await?;
            details.insert("files".into(), paths.into());
            Outcome::Ok
        }
        StepKind::Copy {
            source,
            target,
            tables: t,
            exclude,
            mode,
            verify,
            disable_triggers,
            cascade,
            per_table_commit,
            jobs,
        } => {
            copy::run(copy::plan(CopyArgs {
                source: conn_arg(plan, source),
                target: conn_arg(plan, target),
                tables: tables(t, exclude),
                mode: mode.clone().unwrap_or_else(|| "fail".into()),
                jobs: *jobs,
                disable_triggers: *disable_triggers,
                cascade: *cascade,
                per_table_commit: *per_table_commit,
                dry_run: false,
                lock_wait_timeout: 30.0,
                verify: verify.clone(),
                quiet,
            })?)
            .await?
        }
        StepKind::Restore {
            backup,
            db,
            tables: t,
            exclude,
            mode,
            schema,
            disable_triggers,
            cascade,
            per_table_commit,
            jobs,
            ignore_unlisted,
        } => {
            let dir = plan.plan.backup_dir(backup);
            details.insert("folder".into(), dir.display().to_string().into());
            restore::run(restore::plan(RestoreArgs {
                dir: dir.display().to_string(),
                conn: ConnArgs { conn: Some(conn_arg(plan, db)) },
                tables: tables(t, exclude),
                mode: mode.clone().unwrap_or_else(|| "fail".into()),
                jobs: *jobs,
                schema: *schema,
                disable_triggers: *disable_triggers,
                cascade: *cascade,
                per_table_commit: *per_table_commit,
                ignore_unlisted: *ignore_unlisted,
                dry_run: false,
                lock_wait_timeout: 30.0,
                quiet,
            })?)
            .await?
        }
        StepKind::Check { db, query, expect, compare } => {
            let session = user_session(plan, db).await?;
            let value = check_value(&session, query).await?;
            details.insert("value".into(), value.clone().into());
            details.insert(
                "expected".into(),
                format!("{} {expect}", compare.as_deref().unwrap_or("=")).into(),
            );
            if compare_values(&value, compare.as_deref().unwrap_or("="), expect)? {
                if !quiet {
                    println!("check OK: {value} {} {expect}", compare.as_deref().unwrap_or("="));
                }
                Outcome::Ok
            } else {
                return Err(Error::Difference {
                    msg: format!(
                        "check failed: the query returned {value}, expected {} {expect}: {query}",
                        compare.as_deref().unwrap_or("=")
                    ),
                    hint: None,
                });
            }
        }
    };
    Ok((outcome, details))
}

/// The single value a check query returns, as text.
async fn check_value(session: &crate::conn::session::Session, query: &str) -> Result<String> {
    let rows = session
        .client
        .simple_query(query)
        .await
        .map_err(|e| Error::db(format!("check query failed: {query}"), e))?;
    let values: Vec<Option<String>> = rows
        .iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => Some(r.get(0).map(str::to_string)),
            _ => None,
        })
        .collect();
    match values.as_slice() {
        [v] => Ok(v.clone().unwrap_or_else(|| "NULL".into())),
        _ => Err(Error::usage(format!(
            "check query returned {} rows; it must return exactly one value: {query}",
            values.len()
        ))),
    }
}

/// Compares as numbers when both sides are numbers, else as text (= and != only).
fn compare_values(value: &str, op: &str, expect: &str) -> Result<bool> {
    let num = |s: &str| s.trim().parse::<f64>().ok();
    if let (Some(a), Some(b)) = (num(value), num(expect)) {
        return Ok(match op {
            "=" | "==" => a == b,
            "!=" | "<>" => a != b,
            "<" => a < b,
            "<=" => a <= b,
            ">" => a > b,
            ">=" => a >= b,
            _ => {
                return Err(Error::usage(format!(
                    "unknown compare \"{op}\"; use =, !=, <, <=, > or >="
                )));
            }
        });
    }
    match op {
        "=" | "==" => Ok(value == expect),
        "!=" | "<>" => Ok(value != expect),
        _ => Err(Error::usage(format!(
            "compare \"{op}\" needs numbers; got {value:?} and {expect:?}"
        ))),
    }
}

/// Everything that can be checked without changing anything.
async fn dry_run(plan: &RunPlan) -> Result<Outcome> {
    // A problem quoted inside the list: no second `error: `, its own
    // continuation lines indented under it.
    let quoted = |e: &Error| crate::error::render_body(e).replace('\n', "\n    ");
    let mut problems = Vec::new();
    let mut sessions = BTreeMap::new();
    for (name, PlanConnection { shown, info, .. }) in &plan.connections {
        match connect(info, Purpose::UserSql).await {
            Ok(s) => {
                sessions.insert(name.clone(), s);
            }
            Err(e) => problems.push(format!("connection \"{name}\" ({shown}): {}", quoted(&e))),
        }
    }
    for (i, step) in plan.plan.plan.steps.iter().enumerate().skip(plan.from) {
        let label = step.label(i);
        let before = problems.len();
        let unreachable: Vec<&str> =
            step.kind.connections().into_iter().filter(|c| !sessions.contains_key(*c)).collect();
        let mut note = |p: String| problems.push(format!("step {label}: {p}"));
        match &step.kind {
            StepKind::Backup { db, tables: t, exclude, .. }
            | StepKind::Copy { source: db, tables: t, exclude, .. } => {
                if let Some(s) = sessions.get(db)
                    && let Err(e) = check_patterns(s, t, exclude).await
                {
                    note(quoted(&e));
                }
                if let StepKind::Backup { output, force, .. } = &step.kind {
                    let dir = plan.plan.resolve(output);
                    let names: Vec<String> = dir
                        .read_dir()
                        .map(|d| {
                            d.filter_map(|e| e.ok())
                                .map(|e| e.file_name().to_string_lossy().into_owned())
                                .collect()
                        })
                        .unwrap_or_default();
                    let is_backup =
                        names.iter().all(|n| backup::BACKUP_NAMES.contains(&n.as_str()));
                    let replaced = *force && is_backup;
                    if !names.is_empty() && !replaced {
                        note(format!(
                            "{} is not empty; the backup would refuse it{}",
                            dir.display(),
                            if is_backup { " (set force = true to replace it)" } else { "" }
                        ));
                    }
                }
            }
            StepKind::Sql { db, files, single_transaction } => {
                let paths: Vec<String> =
                    files.iter().map(|f| plan.plan.resolve(f).display().to_string()).collect();
                match sql::read_files(&paths, *single_transaction) {
                    Err(e) => note(quoted(&e)),
                    Ok(files) => {
                        if let Some(s) = sessions.get(db) {
                            for p in parse_check(s, &files).await {
                                note(p);
                            }
                        }
                    }
                }
            }
            StepKind::Check { db, query, .. } => {
                if let Some(s) = sessions.get(db)
                    && let Err(e) = s.client.prepare(query).await
                    && e.code() == Some(&tokio_postgres::error::SqlState::SYNTAX_ERROR)
                {
                    note(format!("the query does not parse: {}", quoted(&Error::db("", e))));
                }
            }
            StepKind::Verify { .. } | StepKind::Restore { .. } => {}
        }
        if !plan.quiet {
            let found = problems.len() - before;
            let what = match &step.kind {
                StepKind::Backup { .. } => "table patterns, output folder",
                StepKind::Copy { .. } => "source table patterns",
                StepKind::Sql { .. } => "files read, statements parsed by the server",
                StepKind::Check { .. } => "query parsed by the server",
                StepKind::Verify { .. } | StepKind::Restore { .. } => {
                    "the backup it names (its contents exist only once the backup ran)"
                }
            };
            let status = if !unreachable.is_empty() {
                format!(
                    "not checked: cannot connect to {}",
                    unreachable.iter().map(|c| format!("\"{c}\"")).collect::<Vec<_>>().join(", ")
                )
            } else if found > 0 {
                format!("{found} {} found", plural(found, "problem", "problems"))
            } else {
                format!("checked ({what})")
            };
            println!("step {} {label} ({}): {status}", i + 1, step.kind.kind());
        }
    }
    if problems.is_empty() {
        println!(
            "OK: the plan can run ({} {}); nothing was changed",
            plan.plan.plan.steps.len() - plan.from,
            plural(plan.plan.plan.steps.len() - plan.from, "step", "steps")
        );
        Ok(Outcome::Ok)
    } else {
        Err(Error::usage(format!("the plan would fail:\n  {}", problems.join("\n  "))))
    }
}

async fn check_patterns(
    session: &crate::conn::session::Session,
    include: &[String],
    exclude: &[String],
) -> Result<()> {
    let catalog = crate::catalog::read_catalog(session).await?;
    catalog.choose(&Selection::parse(include, exclude)?)?;
    Ok(())
}

/// Has the server parse every statement (without running it): only syntax
/// errors count, since a statement may name objects an earlier one creates.
async fn parse_check(
    session: &crate::conn::session::Session,
    files: &[sql::SqlFile],
) -> Vec<String> {
    let mut problems = Vec::new();
    for f in files {
        for s in &f.statements {
            if let Err(e) = session.client.prepare(&s.text).await
                && e.code() == Some(&tokio_postgres::error::SqlState::SYNTAX_ERROR)
            {
                let (line, col) = sql::error_location(s, &e);
                let msg = e.as_db_error().map(|d| d.message().to_string()).unwrap_or_default();
                problems.push(format!("{}:{line}:{col}: {msg}", f.path.display()));
            }
        }
    }
    problems
}
