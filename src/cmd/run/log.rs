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
        md.push_str(&parameters_markdown(&s.parameters));
        for (k, v) in &s.details {
            md.push_str(&detail_markdown(k, v));
        }
        if let Some(e) = &s.error {
            md.push_str(&format!("\n```\n{e}\n```\n"));
        }
    }
    md
}

/// A JSON scalar or list of scalars as Markdown text: strings in code
/// spans (paths, names), lists joined by commas; `None` for what needs more
/// than a line (objects, lists of objects).
fn inline(v: &serde_json::Value) -> Option<String> {
    use serde_json::Value;
    match v {
        Value::Null => Some("-".into()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) => Some(format!("`{}`", s.replace('`', "'"))),
        Value::Array(items) => {
            let parts: Option<Vec<String>> = items.iter().map(inline_scalar).collect();
            parts.map(|p| if p.is_empty() { "none".into() } else { p.join(", ") })
        }
        Value::Object(_) => None,
    }
}

fn inline_scalar(v: &serde_json::Value) -> Option<String> {
    if v.is_array() || v.is_object() { None } else { inline(v) }
}

/// The step's parameters as a nested list, fields left out of the plan
/// (null) not shown.
fn parameters_markdown(params: &serde_json::Value) -> String {
    let mut md = String::from("- parameters:\n");
    push_fields(&mut md, params, 1);
    md
}

fn push_fields(md: &mut String, v: &serde_json::Value, depth: usize) {
    let indent = "  ".repeat(depth);
    match v {
        serde_json::Value::Object(fields) => {
            for (k, v) in fields.iter().filter(|(_, v)| !v.is_null()) {
                match inline(v) {
                    Some(text) => md.push_str(&format!("{indent}- {k}: {text}\n")),
                    None => {
                        md.push_str(&format!("{indent}- {k}:\n"));
                        push_fields(md, v, depth + 1);
                    }
                }
            }
        }
        serde_json::Value::Array(items) => {
            for item in items {
                match inline(item) {
                    Some(text) => md.push_str(&format!("{indent}- {text}\n")),
                    None => push_fields(md, item, depth),
                }
            }
        }
        other => md.push_str(&format!("{indent}- {}\n", inline(other).unwrap_or_default())),
    }
}

/// One detail of a step: a line, or for a map (a backup's checksums per
/// table) a table of its entries.
fn detail_markdown(key: &str, v: &serde_json::Value) -> String {
    if let serde_json::Value::Object(entries) = v
        && !entries.is_empty()
        && entries.values().all(|e| inline_scalar(e).is_some())
    {
        let mut md = format!("\n| {key} | |\n|---|---|\n");
        for (name, e) in entries {
            let text = match e {
                serde_json::Value::String(s) => s.clone(),
                other => inline(other).unwrap_or_default(),
            };
            md.push_str(&format!("| `{name}` | {} |\n", text.replace('|', "\\|")));
        }
        return md + "\n";
    }
    match inline(v) {
        Some(text) => format!("- {key}: {text}\n"),
        None => {
            let mut md = format!("- {key}:\n");
            push_fields(&mut md, v, 1);
            md
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_and_details_read_as_markdown() {
        let params = serde_json::json!({
            "kind": "backup", "db": "target", "tables": ["User", "Job"], "jobs": null,
            "schema": true, "allow": [{"key": "a"}],
        });
        let md = parameters_markdown(&params);
        assert!(md.contains("  - db: `target`\n"), "{md}");
        assert!(md.contains("  - tables: `User`, `Job`\n"), "{md}");
        assert!(md.contains("  - schema: true\n"), "{md}");
        assert!(!md.contains("jobs"), "{md}");
        assert!(md.contains("  - allow:\n    - key: `a`\n"), "{md}");
        let sums = serde_json::json!({"public.User": "3 rows, file sha256 ab"});
        let md = detail_markdown("checksums", &sums);
        assert!(md.contains("| `public.User` | 3 rows, file sha256 ab |"), "{md}");
        assert_eq!(detail_markdown("rows", &serde_json::json!(12)), "- rows: 12\n");
    }
}
