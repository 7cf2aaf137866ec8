//! `pgbarge verify`: prove a backup is whole, and compare it with a live database.
//!
//! Offline, each selected data file is read once, through [`FileSource`]
//! (file size and sha256, decompression) and the stages backup used (record
//! count, CSV sha256, fingerprint), and every result is compared with the
//! manifest; the folder is checked for files the manifest does not list, and
//! `SHA256SUMS` against the manifest. With `-d`, each table's backup row count
//! is compared with the live table's, or with `--deep` its fingerprint with one
//! computed from the live table's COPY stream — the code path backup uses.
//! Every difference is collected and reported; none hides another.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde::Serialize;

use crate::catalog::read_catalog;
use crate::catalog::select::{Pattern, Selection};
use crate::cli::VerifyArgs;
use crate::cmd::{Outcome, resolve_conn};
use crate::conn::conninfo::ConnInfo;
use crate::conn::session::{Purpose, Session, connect};
use crate::error::{Class, Error, Result};
use crate::format::csv::FirstRecord;
use crate::ident::TableName;
use crate::progress::{Progress, human_bytes, human_count};
use crate::storage::manifest::{Manifest, ManifestTable, SUMS_FILE, StoredFile};
use crate::storage::store::Location;
use crate::stream::copy_out::copy_out;
use crate::stream::stages::{CsvStages, StreamStages, WireFormat};

/// What `verify` needs, resolved.
#[derive(Debug)]
pub struct VerifyPlan {
    pub dir: Location,
    /// Compare with this database too.
    pub conn: Option<Arc<ConnInfo>>,
    pub selection: Selection,
    pub jobs: Option<usize>,
    pub deep: bool,
    pub expect: Option<Expectations>,
    pub json: bool,
    pub quiet: bool,
}

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

/// Resolves the arguments and reads the expectations file.
///
/// # Errors
/// Usage errors: connection string, patterns, jobs, an unreadable or
/// malformed expectations file (naming its line).
pub fn plan(args: VerifyArgs) -> Result<VerifyPlan> {
    crate::limits::jobs(args.jobs)?;
    let conn = match &args.conn.conn {
        Some(_) => Some(resolve_conn(&args.conn)?),
        None => None,
    };
    Ok(VerifyPlan {
        dir: Location::parse(&args.dir)?,
        conn,
        selection: Selection::parse(&args.tables.include, &args.tables.exclude)?,
        jobs: args.jobs,
        deep: args.deep,
        expect: args.expect.as_deref().map(|f| read_expectations(Path::new(f))).transpose()?,
        json: args.json,
        quiet: args.quiet,
    })
}

/// Reads `table,count` lines (a header line first; `#` starts a comment).
fn read_expectations(file: &Path) -> Result<Expectations> {
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

/// What verify found wrong with a table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
enum Status {
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
#[derive(Debug, Serialize)]
struct TableReport {
    table: String,
    schema: String,
    name: String,
    /// `None` for a live table the backup does not hold.
    file: Option<String>,
    backup_rows: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    expected_rows: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    live_rows: Option<u64>,
    /// Empty when everything checked is as it should be.
    status: Vec<Status>,
    problems: Vec<String>,
}

impl TableReport {
    fn new(t: &ManifestTable) -> Self {
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

    fn flag(&mut self, status: Status, problem: String) {
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
struct Report {
    backup: String,
    ok: bool,
    /// What was checked, in words.
    checked: Vec<&'static str>,
    tables: Vec<TableReport>,
    /// Problems of the backup as a whole: unlisted files, SHA256SUMS, schema.sql, --expect.
    problems: Vec<String>,
    rows: u64,
    csv_bytes_read: u64,
    seconds: f64,
}

/// Runs `verify`.
///
/// # Errors
/// A missing manifest (the backup is incomplete: exit 1), a newer or foreign
/// manifest (exit 2), patterns matching nothing, a file that cannot be read
/// or a database that cannot be reached (exit 3), a signal.
pub async fn run(plan: VerifyPlan) -> Result<Outcome> {
    let started = Instant::now();
    let manifest = Arc::new(Manifest::read_at(&plan.dir).await?);
    let names: Vec<TableName> =
        manifest.tables.iter().map(|t| TableName::new(&t.schema, &t.name)).collect();
    let picked: HashSet<&TableName> =
        plan.selection.choose(&names, &[], "in the backup")?.into_iter().collect();
    let chosen: Vec<usize> = (0..names.len()).filter(|&i| picked.contains(&names[i])).collect();
    // Fail fast on a database that cannot be reached, before reading gigabytes.
    let live = match &plan.conn {
        Some(conn) => Some(connect(conn, Purpose::Data).await?),
        None => None,
    };

    let mut tables: Vec<TableReport> =
        chosen.iter().map(|&i| TableReport::new(&manifest.tables[i])).collect();
    let mut problems = Vec::new();
    let mut checked = vec![
        "file sizes and sha256",
        "decompression",
        "CSV sha256",
        "record counts",
        "headers",
        "SHA256SUMS",
        "unlisted files",
    ];
    if plan.deep {
        checked.push("fingerprints");
    }

    let progress = Arc::new(Progress::new("verify", chosen.len(), plan.quiet));
    // One listing gives every file's size and what does not belong.
    let listing: BTreeMap<String, u64> = plan.dir.list().await?.into_iter().collect();
    let files = {
        let (dir, manifest, chosen, progress) =
            (plan.dir.clone(), manifest.clone(), chosen.clone(), progress.clone());
        let (deep, jobs, sizes) = (plan.deep, plan.jobs, listing.clone());
        tokio::task::spawn_blocking(move || {
            check_files(&dir, &sizes, &manifest, &chosen, deep, jobs, &progress)
        })
        .await
        .map_err(|e| Error::runtime(format!("a verify worker failed: {e}")))??
    };
    let mut failures = Vec::new();
    let mut csv_bytes_read = 0;
    for (report, check) in tables.iter_mut().zip(files) {
        csv_bytes_read += check.csv_bytes;
        for (status, problem) in check.problems {
            report.flag(status, problem);
        }
        failures.extend(check.failure);
    }
    problems.extend(check_folder(&plan.dir, &listing, &manifest).await?);
    if let Some(exp) = &plan.expect {
        checked.push("expected counts");
        problems.extend(apply_expectations(exp, &manifest, &chosen, &mut tables)?);
    }
    if let Some(session) = &live {
        checked.push(if plan.deep { "live fingerprints" } else { "live row counts" });
        compare_live(session, &manifest, &chosen, &plan, &progress, &mut tables).await?;
    }
    drop(progress);

    let differs = !problems.is_empty() || tables.iter().any(|t| !t.status.is_empty());
    let report = Report {
        backup: plan.dir.to_string(),
        ok: !differs && failures.is_empty(),
        checked,
        rows: tables.iter().filter_map(|t| t.file.as_ref().and(t.backup_rows)).sum(),
        tables,
        problems,
        csv_bytes_read,
        seconds: started.elapsed().as_secs_f64(),
    };
    if plan.json {
        println!("{}", serde_json::to_string_pretty(&report).expect("report serializes"));
    } else {
        print_report(&report, plan.expect.is_some(), live.is_some(), plan.quiet);
    }
    if let Some(first) = failures.into_iter().next() {
        // A file that could not be read at all is not a difference: exit 3.
        return Err(first.context("verify could not read every file"));
    }
    Ok(if differs { Outcome::Differs } else { Outcome::Ok })
}

/// What checking one data file found.
#[derive(Default)]
struct FileCheck {
    problems: Vec<(Status, String)>,
    csv_bytes: u64,
    /// The file exists but could not be read (not a difference: exit 3).
    failure: Option<Error>,
}

/// Checks the chosen tables' files on `jobs` threads, largest first. Results
/// come back in `chosen` order.
fn check_files(
    dir: &Location,
    sizes: &BTreeMap<String, u64>,
    manifest: &Manifest,
    chosen: &[usize],
    deep: bool,
    jobs: Option<usize>,
    progress: &Progress,
) -> Result<Vec<FileCheck>> {
    let mut order: Vec<usize> = (0..chosen.len()).collect();
    order.sort_by_key(|&k| std::cmp::Reverse(manifest.tables[chosen[k]].file_bytes));
    let results: Mutex<Vec<Option<Result<FileCheck>>>> =
        Mutex::new((0..chosen.len()).map(|_| None).collect());
    let next = AtomicUsize::new(0);
    let workers = jobs.unwrap_or(4).min(chosen.len()).max(1);
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| {
                while crate::cancel::reason().is_none() {
                    let Some(&k) = order.get(next.fetch_add(1, Ordering::SeqCst)) else {
                        return;
                    };
                    let table = &manifest.tables[chosen[k]];
                    let r = check_file(dir, sizes, table, manifest, deep, progress);
                    results.lock().unwrap_or_else(|p| p.into_inner())[k] = Some(r);
                }
            });
        }
    });
    if let Some(signal) = crate::cancel::reason() {
        return Err(Error::Interrupted { signal });
    }
    results
        .into_inner()
        .unwrap_or_else(|p| p.into_inner())
        .into_iter()
        .map(|r| r.unwrap_or_else(|| Err(Error::runtime("a data file was not checked"))))
        .collect()
}

/// Reads one data file once and compares everything about it with the manifest.
///
/// # Errors
/// Only `Interrupted`; everything else is part of the result.
fn check_file(
    dir: &Location,
    listing: &BTreeMap<String, u64>,
    t: &ManifestTable,
    manifest: &Manifest,
    deep: bool,
    progress: &Progress,
) -> Result<FileCheck> {
    let mut check = FileCheck::default();
    let file = &t.file;
    let damaged = |check: &mut FileCheck, what: String| {
        check.problems.push((Status::Damaged, format!("{file}: {what}")));
    };
    match t.stored_file(dir, listing) {
        StoredFile::Present => {}
        StoredFile::Missing => {
            check.problems.push((Status::FileMissing, format!("{file}: missing")));
            return Ok(check);
        }
        StoredFile::Damaged(what) => {
            check.problems.push((Status::Damaged, what));
            // A file of the wrong size is still read, to say what it holds;
            // a link or a FIFO is not opened at all.
            if !listing.contains_key(file) || dir.open(file, manifest.compression).is_err() {
                return Ok(check);
            }
        }
    }
    let mut source = match dir.open(file, manifest.compression) {
        Ok(s) => s,
        Err(e) if e.class() == Class::Difference => {
            // A link, a FIFO, a device where the file should be.
            damaged(&mut check, e.to_string());
            return Ok(check);
        }
        Err(e) => {
            check.failure = Some(e);
            return Ok(check);
        }
    };
    let mut stages = CsvStages::new(deep);
    let mut header = FirstRecord::new();
    let mut bar = progress.table(&format!("{}.{}", t.schema, t.name), Some(t.rows as i64));
    while let Some(block) = source.next_block() {
        if let Some(signal) = crate::cancel::reason() {
            return Err(Error::Interrupted { signal });
        }
        match block {
            Ok(b) => {
                header.feed(&b);
                stages.feed(&b);
                bar.update(stages.rows(), stages.bytes());
            }
            Err(e) if e.class() == Class::Difference => {
                damaged(&mut check, e.to_string());
                // The reader stopped at the damage; hash the whole file to say
                // whether it is the file the manifest describes.
                if let Some(d) = stored_file(dir, file).ok().and_then(|f| t.file_difference(&f)) {
                    damaged(&mut check, d);
                }
                check.csv_bytes = stages.bytes();
                bar.finish(progress);
                return Ok(check);
            }
            Err(e) => {
                check.failure = Some(e);
                return Ok(check);
            }
        }
    }
    bar.finish(progress);
    check.csv_bytes = stages.bytes();
    match source.finish() {
        Ok(f) => t.file_difference(&f).into_iter().for_each(|d| damaged(&mut check, d)),
        Err(e) => check.failure = Some(e),
    }
    if let Some(d) = t.header_difference(header.get(), stages.bytes()) {
        damaged(&mut check, d);
    }
    match stages.finish() {
        Err(shape) => damaged(&mut check, format!("CSV is cut short: {shape}")),
        Ok(csv) => t.csv_differences(&csv).into_iter().for_each(|d| damaged(&mut check, d)),
    }
    Ok(check)
}

/// A file's size and sha256 as stored, read whole (on a worker thread: it blocks).
fn stored_file(dir: &Location, name: &str) -> Result<crate::storage::sink::FileSummary> {
    let mut source = dir.open(name, crate::format::compression::Compression::None)?;
    while let Some(block) = source.next_block() {
        block?;
    }
    source.finish()
}

/// Problems of the folder as a whole: files the manifest does not list,
/// `SHA256SUMS` disagreeing with the manifest, a missing or changed `schema.sql`.
///
/// # Errors
/// The folder cannot be listed.
async fn check_folder(
    dir: &Location,
    listing: &BTreeMap<String, u64>,
    manifest: &Manifest,
) -> Result<Vec<String>> {
    let mut problems = manifest.unlisted_files(listing);
    for (file, want) in manifest.schema_files() {
        if !listing.contains_key(file) {
            problems.push(format!("{file}: missing (the manifest says the backup has one)"));
        } else if let Some(want) = want {
            let got = crate::format::digest::sha256_hex(&dir.read(file).await?.unwrap_or_default());
            if got != want {
                problems.push(format!("{file}: sha256 is {got}, the manifest records {want}"));
            }
        }
    }
    problems.extend(check_sums(dir, manifest).await?);
    Ok(problems)
}

/// Compares `SHA256SUMS` line by line with the manifest.
async fn check_sums(dir: &Location, manifest: &Manifest) -> Result<Vec<String>> {
    let Some(bytes) = dir.read(SUMS_FILE).await? else {
        return Ok(vec![format!("{SUMS_FILE}: missing")]);
    };
    let Ok(text) = String::from_utf8(bytes) else {
        return Ok(vec![format!("{SUMS_FILE}: not text")]);
    };
    let mut problems = Vec::new();
    // path → (line number, sha256)
    let mut lines: BTreeMap<&str, (usize, &str)> = BTreeMap::new();
    for (n, line) in text.lines().enumerate().map(|(n, l)| (n + 1, l)) {
        // `sha256sum` writes "HASH  PATH" (text mode) or "HASH *PATH" (binary mode).
        let parsed = line.split_once(' ').and_then(|(hash, rest)| {
            let file = rest.strip_prefix(' ').or_else(|| rest.strip_prefix('*'))?;
            let hex = hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit());
            hex.then_some((hash, file))
        });
        match parsed {
            None => problems.push(format!("{SUMS_FILE} line {n}: not `sha256  file`: {line:?}")),
            Some((hash, file)) => {
                if lines.insert(file, (n, hash)).is_some() {
                    problems.push(format!("{SUMS_FILE} line {n}: {file} is listed twice"));
                }
            }
        }
    }
    for t in &manifest.tables {
        match lines.remove(t.file.as_str()) {
            None => problems.push(format!("{SUMS_FILE}: no line for {}", t.file)),
            Some((n, hash)) if !hash.eq_ignore_ascii_case(&t.file_sha256) => {
                problems.push(format!(
                    "{SUMS_FILE} line {n}: {} has sha256 {hash}, the manifest records {}",
                    t.file, t.file_sha256
                ));
            }
            Some(_) => {}
        }
    }
    for (file, (n, _)) in lines {
        problems.push(format!("{SUMS_FILE} line {n}: lists {file}, which the manifest does not"));
    }
    Ok(problems)
}

/// Checks expected row counts against the backup's (already verified) counts.
/// Lines naming a backup table outside the selection are skipped; lines
/// naming no table of the backup are problems.
///
/// # Errors
/// A usage error for a line whose pattern names more than one table.
fn apply_expectations(
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

/// Compares the chosen tables with the live database, all read in one
/// `REPEATABLE READ` transaction; adds the live tables the backup should
/// hold (by its recorded patterns and the `-t`/`-T` given) but does not.
async fn compare_live(
    session: &Session,
    manifest: &Manifest,
    chosen: &[usize],
    plan: &VerifyPlan,
    progress: &Progress,
    tables: &mut Vec<TableReport>,
) -> Result<()> {
    session
        .execute(
            "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY",
            "cannot start a read-only transaction",
        )
        .await?;
    let catalog = read_catalog(session).await?;
    for (report, &i) in tables.iter_mut().zip(chosen) {
        let t = &manifest.tables[i];
        let name = TableName::new(&t.schema, &t.name);
        let Some(live) = catalog.find(&name) else {
            report.flag(Status::MissingInDatabase, format!("{name}: not in the database"));
            continue;
        };
        let live_columns: HashSet<&str> = live.data_columns().map(|c| c.name.as_str()).collect();
        let missing: Vec<&str> = t
            .columns
            .iter()
            .map(|c| c.name.as_str())
            .filter(|c| !live_columns.contains(c))
            .collect();
        // The rows, and with --deep the fingerprint of the backup's columns
        // (in its order, so extra live columns do not count); a table that
        // lacks some of them can only be counted.
        let (live_rows, live_fingerprint) = if plan.deep && missing.is_empty() {
            let columns: Vec<&str> = t.columns.iter().map(|c| c.name.as_str()).collect();
            let mut stages = StreamStages::new(WireFormat::Csv, true);
            let mut bar = progress.table(&format!("{name} (live)"), Some(t.rows as i64));
            copy_out(
                session,
                &live.copy_columns_to_stdout_sql(&columns, WireFormat::Csv.copy_options()),
                &mut stages,
                |_, st| {
                    bar.update(st.rows(), st.bytes());
                    Ok(())
                },
            )
            .await
            .map_err(|e| e.context(format!("reading table {name} failed")))?;
            bar.finish(progress);
            let read = stages.finish().map_err(|e| {
                Error::runtime(format!("the COPY output of {name} is malformed: {e}"))
            })?;
            (read.rows, read.fingerprint)
        } else {
            (live.count_rows(session).await?, None)
        };
        report.live_rows = Some(live_rows);
        if live_rows != t.rows {
            report.flag(
                Status::RowsDiffer,
                format!("{name}: the backup holds {} rows, the database {live_rows}", t.rows),
            );
        }
        if plan.deep && !missing.is_empty() {
            report.flag(
                Status::ContentDiffers,
                format!(
                    "{name}: the database table lacks the backup's column{} {}",
                    if missing.len() == 1 { "" } else { "s" },
                    missing.iter().map(|c| format!("\"{c}\"")).collect::<Vec<_>>().join(", ")
                ),
            );
        } else if let Some(fp) = live_fingerprint
            && live_rows == t.rows
            && fp.sum != t.fingerprint.sum
        {
            report.flag(
                Status::ContentDiffers,
                format!(
                    "{name}: same row count, different content (fingerprint {} in the backup, {} in the database)",
                    t.fingerprint.sum, fp.sum
                ),
            );
        }
    }

    let recorded = Selection::parse(&manifest.selection.include, &manifest.selection.exclude)?;
    let in_backup: HashSet<TableName> =
        manifest.tables.iter().map(|t| TableName::new(&t.schema, &t.name)).collect();
    for live in &catalog.tables {
        if in_backup.contains(&live.name)
            || !recorded.picks(&live.name)
            || !plan.selection.picks(&live.name)
        {
            continue;
        }
        let rows = live.count_rows(session).await?;
        tables.push(TableReport {
            table: live.name.to_string(),
            schema: live.name.schema.clone(),
            name: live.name.name.clone(),
            file: None,
            backup_rows: None,
            expected_rows: None,
            live_rows: Some(rows),
            status: vec![Status::NotInBackup],
            problems: vec![format!(
                "{}: in the database ({rows} rows) but not in the backup",
                live.name
            )],
        });
    }
    let _ = session.client.batch_execute("COMMIT").await;
    Ok(())
}

fn print_report(report: &Report, with_expected: bool, with_live: bool, quiet: bool) {
    let num = |v: Option<u64>| v.map_or_else(|| "-".to_string(), human_count);
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
            println!("  {p}");
        }
    }
    if !quiet {
        println!();
        println!(
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
    }
    if report.ok {
        println!(
            "OK: {} is whole{}",
            report.backup,
            if with_live { " and matches the database" } else { "" }
        );
    } else if !all.is_empty() {
        println!("DIFFERENT: {} problem{} found", all.len(), if all.len() == 1 { "" } else { "s" });
    }
}
