//! `run --dry-run`: connect, resolve table patterns and have the server parse
//! every statement and check query, changing nothing.

use std::collections::BTreeMap;

use super::{PlanConnection, RunPlan, plural};
use crate::catalog::select::Selection;
use crate::cmd::{Outcome, backup, sql};
use crate::conn::session::{Purpose, connect};
use crate::error::{Error, Result};
use crate::runbook::plan::StepKind;

/// Everything that can be checked without changing anything.
pub(super) async fn dry_run(plan: &RunPlan) -> Result<Outcome> {
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
                        names.iter().all(|n| backup::output::BACKUP_NAMES.contains(&n.as_str()));
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
            StepKind::Diff { .. } => {
                // Both sides' catalogs read and the patterns resolved, as the step will.
                if unreachable.is_empty() {
                    match super::step::diff_options(plan, &step.kind) {
                        Err(e) => note(quoted(&e)),
                        Ok(o) => {
                            if let Err(e) = crate::cmd::diff::compare_databases(&o).await {
                                note(quoted(&e));
                            }
                        }
                    }
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
                StepKind::Diff { .. } => "both catalogs read, table patterns",
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
            let line = format!("step {} {label} ({}): {status}", i + 1, step.kind.kind());
            println!("{}", crate::wrap::stdout(&line, 2));
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

pub(super) async fn check_patterns(
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
pub(super) async fn parse_check(
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
