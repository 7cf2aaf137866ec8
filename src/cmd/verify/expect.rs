//! `--expect FILE`: expected row counts per table pattern, read and applied to
//! the report.

use std::path::{Path, PathBuf};

use super::report::{Status, TableReport};
use crate::catalog::select::Pattern;
use crate::error::{Error, Result};
use crate::ident::TableName;
use crate::storage::manifest::Manifest;

/// Expected row counts from `--expect FILE`.
#[derive(Debug)]
pub struct Expectations {
    pub file: PathBuf,
    pub lines: Vec<Expectation>,
}

/// One line of the expectations file.
#[derive(Debug)]
pub struct Expectation {
    pub pattern: Pattern,
    pub count: u64,
    /// Line number in the file, for messages.
    pub line: u64,
}

/// Reads `table,count` lines (a header line first; `#` starts a comment).
pub(super) fn read_expectations(file: &Path) -> Result<Expectations> {
    let bad = |line: u64, what: String| {
        Error::usage_hint(
            format!("{} line {line}: {what}", file.display()),
            "the file is CSV with the header `table,count`, then one `table,count` line per table, for example `User,9` or `public.\"Role\",4`",
        )
    };
    let text = std::fs::read(file).map_err(|e| Error::io("cannot read", file, e))?;
    // Comments are skipped here rather than by the csv crate, whose record
    // positions would then point at the comment instead of the record.
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(&text[..]);
    let header = reader.headers().map_err(|e| bad(1, e.to_string()))?.clone();
    let names: Vec<String> = header.iter().map(str::to_ascii_lowercase).collect();
    if names != ["table", "count"] {
        return Err(bad(1, format!("the header is `{}`, not `table,count`", names.join(","))));
    }
    // The line from the byte offset, past the blank lines the csv crate
    // skips before a record (its own line number does not count them, and
    // its offset points before them).
    let line_at = |p: Option<&csv::Position>| {
        p.map_or(0, |p| {
            let mut end = (p.byte() as usize).min(text.len());
            while end < text.len() && matches!(text[end], b'\n' | b'\r') {
                end += 1;
            }
            memchr::memchr_iter(b'\n', &text[..end]).count() as u64 + 1
        })
    };
    let mut lines = Vec::new();
    for record in reader.records() {
        let record = record
            .map_err(|e| bad(line_at(e.position()), format!("not a `table,count` line: {e}")))?;
        let line = line_at(record.position());
        if record.get(0).is_some_and(|f| f.starts_with('#')) {
            continue;
        }
        if record.len() != 2 {
            return Err(bad(line, format!("{} fields, not `table,count`", record.len())));
        }
        let pattern = Pattern::parse(&record[0]).map_err(|e| bad(line, e.to_string()))?;
        let count = record[1]
            .parse::<u64>()
            .map_err(|_| bad(line, format!("count \"{}\" is not a whole number", &record[1])))?;
        lines.push(Expectation { pattern, count, line });
    }
    Ok(Expectations { file: file.to_path_buf(), lines })
}

/// Checks expected row counts against the backup's (already verified) counts.
/// Lines naming a backup table outside the selection are skipped; lines
/// naming no table of the backup are problems.
///
/// # Errors
/// A usage error for a line whose pattern names more than one table.
pub(super) fn apply_expectations(
    exp: &Expectations,
    manifest: &Manifest,
    chosen: &[usize],
    tables: &mut [TableReport],
) -> Result<Vec<String>> {
    let mut problems = Vec::new();
    let file = exp.file.display();
    for e in &exp.lines {
        let matches: Vec<usize> = (0..manifest.tables.len())
            .filter(|&i| {
                let t = &manifest.tables[i];
                e.pattern.matches(&TableName::new(&t.schema, &t.name))
            })
            .collect();
        match matches[..] {
            [] => problems.push(format!(
                "{file} line {}: expects {} rows in '{}', and the backup has no such table",
                e.line, e.count, e.pattern.text
            )),
            [i] => {
                let Some(k) = chosen.iter().position(|&c| c == i) else { continue };
                let report = &mut tables[k];
                report.expected_rows = Some(e.count);
                let rows = manifest.tables[i].rows;
                if rows != e.count {
                    report.flag(
                        Status::NotAsExpected,
                        format!(
                            "{}: the backup holds {rows} rows, {file} line {} expects {}",
                            report.table, e.line, e.count
                        ),
                    );
                }
            }
            _ => {
                return Err(Error::usage_hint(
                    format!(
                        "{file} line {}: '{}' matches {} tables of the backup",
                        e.line,
                        e.pattern.text,
                        matches.len()
                    ),
                    "name one table per line, with its schema when the name is in several",
                ));
            }
        }
    }
    Ok(problems)
}
