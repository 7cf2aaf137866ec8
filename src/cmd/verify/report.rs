//! What verify found, table by table, and how it is printed.

use serde::Serialize;

use crate::ident::TableName;
use indicatif::HumanCount;

use crate::progress::human_bytes;
use crate::storage::manifest::ManifestTable;

/// What verify found wrong with a table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub(super) enum Status {
    FileMissing,
    Damaged,
    NotAsExpected,
    RowsDiffer,
    ContentDiffers,
    MissingInDatabase,
    NotInBackup,
}

impl Status {
    fn label(self) -> &'static str {
        match self {
            Status::FileMissing => "FILE MISSING",
            Status::Damaged => "DAMAGED",
            Status::NotAsExpected => "NOT AS EXPECTED",
            Status::RowsDiffer => "ROWS DIFFER",
            Status::ContentDiffers => "CONTENT DIFFERS",
            Status::MissingInDatabase => "MISSING IN DATABASE",
            Status::NotInBackup => "NOT IN BACKUP",
        }
    }
}

/// One table's line of the report.
#[derive(Debug, Clone, Serialize)]
pub(super) struct TableReport {
    pub(super) table: String,
    pub(super) schema: String,
    pub(super) name: String,
    /// `None` for a live table the backup does not hold.
    pub(super) file: Option<String>,
    pub(super) backup_rows: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) expected_rows: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) live_rows: Option<u64>,
    /// Empty when everything checked is as it should be.
    pub(super) status: Vec<Status>,
    pub(super) problems: Vec<String>,
}

impl TableReport {
    pub(super) fn new(t: &ManifestTable) -> Self {
        TableReport {
            table: TableName::new(&t.schema, &t.name).to_string(),
            schema: t.schema.clone(),
            name: t.name.clone(),
            file: Some(t.file.clone()),
            backup_rows: Some(t.rows),
            expected_rows: None,
            live_rows: None,
            status: Vec::new(),
            problems: Vec::new(),
        }
    }

    pub(super) fn flag(&mut self, status: Status, problem: String) {
        if !self.status.contains(&status) {
            self.status.push(status);
        }
        self.problems.push(problem);
    }

    fn status_text(&self) -> String {
        if self.status.is_empty() {
            "OK".into()
        } else {
            self.status.iter().map(|s| s.label()).collect::<Vec<_>>().join(", ")
        }
    }
}

/// The whole result, as printed and as `--json`.
#[derive(Debug, Serialize)]
pub(super) struct Report {
    pub(super) backup: String,
    pub(super) ok: bool,
    /// What was checked, in words.
    pub(super) checked: Vec<&'static str>,
    pub(super) tables: Vec<TableReport>,
    /// Problems of the backup as a whole: unlisted files, SHA256SUMS, schema.sql, --expect.
    pub(super) problems: Vec<String>,
    pub(super) rows: u64,
    pub(super) csv_bytes_read: u64,
    pub(super) seconds: f64,
}

pub(super) fn print_report(report: &Report, with_expected: bool, with_live: bool, quiet: bool) {
    let num = |v: Option<u64>| v.map_or_else(|| "-".to_string(), |n| HumanCount(n).to_string());
    let mut rows: Vec<Vec<String>> = Vec::new();
    let mut head = vec!["TABLE", "BACKUP ROWS"];
    if with_expected {
        head.push("EXPECTED");
    }
    if with_live {
        head.push("LIVE ROWS");
    }
    head.push("STATUS");
    rows.push(head.iter().map(|s| s.to_string()).collect());
    for t in &report.tables {
        let mut r = vec![t.table.clone(), num(t.backup_rows)];
        if with_expected {
            r.push(num(t.expected_rows));
        }
        if with_live {
            r.push(num(t.live_rows));
        }
        r.push(t.status_text());
        rows.push(r);
    }
    // Names and statuses read left-aligned, numbers right-aligned.
    let last = rows[0].len() - 1;
    crate::progress::print_columns(&rows, |c| c != 0 && c != last);
    let all: Vec<&String> =
        report.tables.iter().flat_map(|t| &t.problems).chain(&report.problems).collect();
    if !all.is_empty() {
        println!();
        println!("problems:");
        for p in &all {
            println!("{}", crate::wrap::stdout(&format!("  {p}"), 2));
        }
    }
    if !quiet {
        println!();
        let checked = format!(
            "checked {} ({}, {} of CSV read) in {:.1} s: {}",
            crate::progress::counted(
                report.tables.iter().filter(|t| t.file.is_some()).count() as u64,
                "table",
                "tables"
            ),
            crate::progress::counted(report.rows, "row", "rows"),
            human_bytes(report.csv_bytes_read),
            report.seconds,
            report.checked.join(", ")
        );
        println!("{}", crate::wrap::stdout(&checked, 2));
    }
    if report.ok {
        let ok = format!(
            "OK: {} is whole{}",
            report.backup,
            if with_live { " and matches the database" } else { "" }
        );
        println!("{}", crate::wrap::stdout(&ok, 2));
    } else if !all.is_empty() {
        println!("DIFFERENT: {} problem{} found", all.len(), if all.len() == 1 { "" } else { "s" });
    }
}
