//! One step of a plan run through the code its command uses, and the checks
//! a step may hold.

use std::collections::BTreeMap;

use super::{RunPlan, as_step_hint, conn, keys, tables, user_session};
use crate::catalog::compare::CompareOptions;
use crate::cmd::{Outcome, backup, copy, diff, restore, sql, verify};
use crate::error::{Error, Result};
use crate::load::{LoadOptions, parse_jobs};
use crate::options::{
    self, BackupOptions, CopyOptions, DiffOptions, RestoreOptions, VerifyLevel, VerifyOptions,
};
use crate::runbook::plan::{Step, StepKind};
use crate::storage::location::Location;

/// Runs one step through the command it names; returns details for the log.
pub(super) async fn run_step(
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
            encrypt_to,
        } => {
            let dir = plan.plan.resolve(output);
            // `@FILE` is relative to the plan, as every path in it.
            let recipients: Vec<String> = encrypt_to
                .iter()
                .map(|r| match r.strip_prefix('@') {
                    Some(f) => format!("@{}", plan.plan.resolve(f).display()),
                    None => r.clone(),
                })
                .collect();
            // In range: read_plan checked it.
            let jobs = jobs.and_then(|j| usize::try_from(j).ok());
            crate::limits::jobs(jobs)?;
            let m = backup::take(BackupOptions {
                conn: conn(plan, db),
                selection: tables(t, exclude)?,
                dir: Location::parse(&dir.display().to_string())?,
                jobs,
                compression: options::compression(compress.as_deref())?,
                schema: *schema,
                force: *force,
                lock_wait_timeout: options::lock_wait(*lock_wait_timeout)?,
                encrypt_to: options::encryption(&recipients, None)?,
                json: false,
                quiet,
            })
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
        StepKind::Verify { backup, db, tables: t, exclude, jobs, deep, expect, identity } => {
            let dir = plan.plan.backup_dir(backup);
            details.insert("folder".into(), dir.display().to_string().into());
            crate::limits::jobs(*jobs)?;
            verify::run(VerifyOptions {
                dir: Location::parse(&dir.display().to_string())?,
                conn: db.as_ref().map(|d| conn(plan, d)),
                selection: tables(t, exclude)?,
                jobs: *jobs,
                deep: *deep,
                expect: expect.as_ref().map(|e| plan.plan.resolve(e)),
                keys: keys(plan, identity)?,
                json: false,
                quiet,
                // `run -q` prints nothing but errors.
                silent: quiet,
            })
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
            lock_wait_timeout,
        } => {
            let mode = options::mode(mode.as_deref())?;
            let verify = VerifyLevel::parse(verify.as_deref(), mode)?;
            copy::run(CopyOptions {
                jobs: parse_jobs(*jobs, *per_table_commit)?,
                source: conn(plan, source),
                target: conn(plan, target),
                selection: tables(t, exclude)?,
                options: LoadOptions {
                    mode,
                    disable_triggers: *disable_triggers,
                    cascade: *cascade,
                    lock_wait_timeout: options::lock_wait(*lock_wait_timeout)?,
                },
                per_table_commit: *per_table_commit,
                dry_run: false,
                verify,
                json: false,
                quiet,
            })
            .await?
        }
        StepKind::Restore {
            backup,
            db,
            tables: t,
            exclude,
            mode,
            schema,
            clean,
            disable_triggers,
            cascade,
            per_table_commit,
            jobs,
            ignore_unlisted,
            lock_wait_timeout,
            identity,
        } => {
            let dir = plan.plan.backup_dir(backup);
            details.insert("folder".into(), dir.display().to_string().into());
            restore::run(RestoreOptions {
                jobs: parse_jobs(*jobs, *per_table_commit)?,
                dir: Location::parse(&dir.display().to_string())?,
                conn: conn(plan, db),
                selection: tables(t, exclude)?,
                options: LoadOptions {
                    mode: options::mode(mode.as_deref())?,
                    disable_triggers: *disable_triggers,
                    cascade: *cascade,
                    lock_wait_timeout: options::lock_wait(*lock_wait_timeout)?,
                },
                per_table_commit: *per_table_commit,
                ignore_unlisted: *ignore_unlisted,
                schema: *schema,
                clean: *clean,
                keys: keys(plan, identity)?,
                dry_run: false,
                json: false,
                quiet,
            })
            .await?
        }
        StepKind::Diff { allow, .. } => {
            let options = diff_options(plan, &step.kind)?;
            let comparison = diff::compare_databases(&options).await?;
            if !quiet {
                diff::print_report(&comparison, allow, false);
            }
            let (allowed, rest, unmatched) =
                crate::catalog::compare::apply_allow(&comparison.differences, allow);
            let keys = |v: &[&crate::catalog::compare::Difference]| -> Vec<String> {
                v.iter().map(|d| d.key.clone()).collect()
            };
            details.insert("summary".into(), diff::summary_line(&comparison, allowed.len()).into());
            details.insert("differences".into(), keys(&rest).into());
            details.insert("allowed".into(), keys(&allowed).into());
            if !unmatched.is_empty() {
                details.insert(
                    "warning".into(),
                    format!(
                        "allowed but not found (the target may already match there): {}",
                        unmatched.join("; ")
                    )
                    .into(),
                );
            }
            if rest.is_empty() { Outcome::Ok } else { Outcome::Differs }
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

/// The options a diff step stands for: the same the command line builds.
///
/// # Errors
/// A usage error for a malformed table pattern.
pub(super) fn diff_options(plan: &RunPlan, kind: &StepKind) -> Result<DiffOptions> {
    let StepKind::Diff {
        source,
        target,
        tables: t,
        exclude,
        schemas,
        names,
        column_order,
        versions,
        owners,
        privileges,
        comments,
        lock_wait_timeout,
        ..
    } = kind
    else {
        unreachable!("called for diff steps only")
    };
    Ok(DiffOptions {
        source: conn(plan, source),
        target: conn(plan, target),
        selection: tables(t, exclude)?,
        schemas: schemas.clone(),
        compare: CompareOptions {
            names: *names,
            column_order: *column_order,
            versions: *versions,
            owners: *owners,
            privileges: *privileges,
            comments: *comments,
        },
        lock_wait_timeout: options::lock_wait(*lock_wait_timeout)?,
        json: false,
        quiet: plan.quiet,
    })
}

/// The single value a check query returns, as text.
pub(super) async fn check_value(
    session: &crate::conn::session::Session,
    query: &str,
) -> Result<String> {
    let rows = session
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
pub(super) fn compare_values(value: &str, op: &str, expect: &str) -> Result<bool> {
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
