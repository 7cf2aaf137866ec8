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

mod dry_run;
mod log;
mod step;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use self::dry_run::dry_run;
use self::log::{RunLog, StepLog, log_folder, write_log};
use self::step::run_step;
use crate::catalog::select::Selection;
use crate::cmd::Outcome;
use crate::conn::conninfo::{ConnInfo, process_env, resolve};
use crate::conn::session::{Purpose, connect};
use crate::error::{Error, Result};
use crate::options::RunOptions;
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
    /// Print the log as one JSON document on stdout when the run ends.
    pub json: bool,
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
pub fn plan(args: RunOptions) -> Result<RunPlan> {
    if args.json && args.dry_run {
        return Err(Error::usage(
            "--json and --dry-run cannot be combined: a dry run's findings are printed for people",
        ));
    }
    let plan = read_plan(&args.plan)?;
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
        let bastion = match &c.ssh {
            Some(b) => match crate::conn::tunnel::Bastion::parse(b, c.ssh_key.as_deref()) {
                Ok(b) => Some(b),
                Err(e) => {
                    problems.push(format!("connection \"{name}\": {e}"));
                    continue;
                }
            },
            None => None,
        };
        match resolve(&conn, &process_env).map(|mut info| {
            info.ssh = bastion;
            info
        }) {
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
    Ok(RunPlan {
        plan,
        connections,
        dry_run: args.dry_run,
        from,
        json: args.json,
        quiet: args.quiet,
    })
}

/// A connection as the log shows it: no password, and the bastion it goes
/// through, if any.
fn shown_with_bastion(info: &ConnInfo) -> String {
    match &info.ssh {
        Some(b) => format!("{info} (via ssh {b})"),
        None => info.to_string(),
    }
}

/// `--json`: the log as run.json holds it, with the command and the log
/// folder, on stdout (passwords masked as in the file).
fn print_json(log: &RunLog, log_dir: &std::path::Path) {
    let mut doc = serde_json::json!({
        "command": "run",
        "log_folder": log_dir.display().to_string(),
    });
    if let (Some(doc), Ok(serde_json::Value::Object(log))) =
        (doc.as_object_mut(), serde_json::to_value(log))
    {
        doc.extend(log);
    }
    let text = serde_json::to_string_pretty(&doc).expect("log serializes");
    println!("{}", crate::redact::redact(&text));
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
        // A migration found wrong later is undone the same way: the log says how.
        log.rollback = rollback_command(&plan, log.steps.len());
        write_log(&log_dir, &log)?;
        if plan.json {
            print_json(&log, &log_dir);
        } else if !plan.quiet {
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
    let hint = rollback_command(&plan, i).unwrap_or_else(|| {
        "No backup step ran before the failure; nothing of this run's backups to restore from."
            .to_string()
    });
    log.rollback = Some(hint.clone());
    write_log(&log_dir, &log)?;
    if plan.json {
        print_json(&log, &log_dir);
    }
    crate::progress::clear_all();
    eprintln!(
        "\nstep {} ({}) failed; the run stopped. Log: {}\n{hint}",
        i + 1,
        plan.plan.plan.steps[i].label(i),
        log_dir.join("run.md").display()
    );
    // What the steps before it did stays done: say which, so nobody reads the
    // failing step's "rolled back" as the whole run's.
    let done: Vec<String> = log
        .steps
        .iter()
        .enumerate()
        .filter(|(_, s)| s.outcome == "ok")
        .map(|(k, _)| plan.plan.plan.steps[k].label(k))
        .collect();
    let earlier = if done.is_empty() {
        String::new()
    } else {
        format!("; completed before it, and not undone: {}", done.join(", "))
    };
    Err(err.context(format!(
        "step {} ({}) failed{earlier}",
        i + 1,
        plan.plan.plan.steps[i].label(i)
    )))
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
            .filter_map(|c| {
                plan.connections.get(c).map(|pc| (c.to_string(), shown_with_bastion(&pc.info)))
            })
            .collect(),
        started_at: None,
        finished_at: None,
        seconds: None,
        outcome: "pending",
        details: BTreeMap::new(),
        error: None,
    }
}

/// How to undo the run: restore from the plan's rollback backup (or the
/// first backup step), if one ran before step `failed` (the step count for
/// a run that completed) — the whole database with `--clean` when that
/// backup holds it with its schema, else the backup's tables.
fn rollback_command(plan: &RunPlan, failed: usize) -> Option<String> {
    let steps = &plan.plan.plan.steps;
    let backup = steps.iter().enumerate().find(|(i, s)| {
        matches!(s.kind, StepKind::Backup { .. })
            && plan.plan.plan.rollback.as_ref().is_none_or(|r| &s.label(*i) == r)
    });
    match backup {
        Some((bi, s)) if bi < failed || plan.from > bi => {
            let StepKind::Backup { db, output, tables, exclude, schema, encrypt_to, .. } = &s.kind
            else {
                unreachable!()
            };
            // An encrypted backup opens only with a key: the command says where it goes.
            let key = if encrypt_to.is_empty() { "" } else { " --identity KEY_FILE" };
            let dir = format!("{}{key}", plan.plan.resolve(output).display());
            let conn = plan.connections.get(db).map(|pc| pc.shown.clone()).unwrap_or_default();
            if *schema && tables.is_empty() && exclude.is_empty() {
                // A whole backup with its schema: the exact rollback.
                return Some(format!(
                    "To roll back, put the database back to the backup step {} took, schema and rows, in one transaction:\n\n    pgbarge restore {} -d {conn} --clean\n\n(it drops every user schema of the database, what this run created included, recreates the backup's schema and loads every table; roles, database settings and large objects are not touched; add --dry-run first to see what it would drop)",
                    s.label(bi),
                    dir
                ));
            }
            Some(format!(
                "To roll back the data, restore the backup step {} took:\n\n    pgbarge restore {} -d {conn} --mode truncate --disable-triggers\n\n(it restores exactly the backup's tables: rows of other tables that reference them are kept and checked; add -t TABLE to restore only some of them; schema changes made by sql steps are not undone by a data restore: revert them with your own DDL first, or restore with --schema into a new database)",
                s.label(bi),
                dir
            ))
        }
        _ => None,
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

/// A plan's connection, resolved when the plan was read.
fn conn(plan: &RunPlan, name: &str) -> Arc<ConnInfo> {
    Arc::clone(&plan.connections[name].info)
}

/// A session on a plan's connection, for steps that run the user's SQL.
async fn user_session(plan: &RunPlan, name: &str) -> Result<crate::conn::session::Session> {
    connect(&plan.connections[name].info, Purpose::UserSql).await
}

/// A step's `tables` and `exclude` as a selection.
fn tables(include: &[String], exclude: &[String]) -> Result<Selection> {
    Selection::parse(include, exclude)
}

/// A step's `identity` key files, relative to the plan; without any, the
/// passphrase environment as on the command line.
fn keys(
    plan: &RunPlan,
    identity: &[String],
) -> Result<Option<crate::format::encryption::Identities>> {
    let files: Vec<std::path::PathBuf> = identity.iter().map(|f| plan.plan.resolve(f)).collect();
    crate::options::identities(&files, None)
}
