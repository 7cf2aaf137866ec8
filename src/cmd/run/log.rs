//! The run's log folder: `run.md` for people, `run.json` for machines.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::RunPlan;
use crate::error::{Error, Result};

/// One step in the log.
#[derive(Debug, Serialize)]
pub(super) struct StepLog {
    pub(super) number: usize,
    pub(super) name: String,
    pub(super) kind: &'static str,
    /// The step as the plan gives it (connections by name only).
    pub(super) parameters: serde_json::Value,
    /// The connections it used, without passwords.
    pub(super) connections: BTreeMap<String, String>,
    pub(super) started_at: Option<String>,
    pub(super) finished_at: Option<String>,
    pub(super) seconds: Option<f64>,
    /// `ok`, `differs`, `failed`, `skipped` or `not run`.
    pub(super) outcome: &'static str,
    pub(super) details: BTreeMap<String, serde_json::Value>,
    pub(super) error: Option<String>,
}

/// The whole run's log.
#[derive(Debug, Serialize)]
pub(super) struct RunLog {
    pub(super) plan: String,
    pub(super) name: String,
    pub(super) started_at: String,
    pub(super) finished_at: Option<String>,
    pub(super) outcome: &'static str,
    pub(super) steps: Vec<StepLog>,
    pub(super) rollback: Option<String>,
}

/// `<log_dir>/<UTC time>-<plan name>/`, created private.
pub(super) fn log_folder(plan: &RunPlan) -> Result<PathBuf> {
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

pub(super) fn write_log(dir: &Path, log: &RunLog) -> Result<()> {
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

pub(super) fn markdown(log: &RunLog) -> String {
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
