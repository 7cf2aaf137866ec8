//! The offline checks: each data file read once and compared with the
//! manifest, the folder checked for strays, `SHA256SUMS` against the manifest.

use std::collections::BTreeMap;
use std::sync::Mutex;

use super::report::Status;
use crate::error::{Class, Error, Result};
use crate::format::csv::FirstRecord;
use crate::format::encryption::Identities;
use crate::jobs::JobQueue;
use crate::progress::Progress;
use crate::storage::location::Location;
use crate::storage::manifest::{MANIFEST_FILE, Manifest, ManifestTable, SUMS_FILE, StoredFile};
use crate::storage::sealed::PublicManifest;
use crate::stream::stages::CsvStages;

/// What checking one data file found.
#[derive(Default)]
pub(super) struct FileCheck {
    pub(super) problems: Vec<(Status, String)>,
    pub(super) csv_bytes: u64,
    /// The file exists but could not be read (not a difference: exit 3).
    pub(super) failure: Option<Error>,
}

/// Checks the chosen tables' files on `jobs` threads, largest first. Results
/// come back in `chosen` order. `keys`: an encrypted backup's.
#[allow(clippy::too_many_arguments)]
pub(super) fn check_files(
    dir: &Location,
    sizes: &BTreeMap<String, u64>,
    manifest: &Manifest,
    chosen: &[usize],
    deep: bool,
    jobs: Option<usize>,
    keys: Option<&Identities>,
    progress: &Progress,
) -> Result<Vec<FileCheck>> {
    let queue = JobQueue::largest_first(chosen.iter().map(|&i| manifest.tables[i].file_bytes));
    let results: Mutex<Vec<Option<Result<FileCheck>>>> =
        Mutex::new((0..chosen.len()).map(|_| None).collect());
    let workers = crate::jobs::worker_count(jobs, chosen.len());
    // A damaged file is a result, not a failure: every file is checked.
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| {
                while let Some(k) = queue.next_blocking() {
                    let table = &manifest.tables[chosen[k]];
                    let r = check_file(dir, sizes, table, manifest, deep, keys, progress);
                    results.lock().unwrap_or_else(|p| p.into_inner())[k] = Some(r);
                    queue.done(k);
                }
            });
        }
    });
    queue.finish()?;
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
pub(super) fn check_file(
    dir: &Location,
    listing: &BTreeMap<String, u64>,
    t: &ManifestTable,
    manifest: &Manifest,
    deep: bool,
    keys: Option<&Identities>,
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
            if !listing.contains_key(file) || dir.open(file, manifest.compression, keys).is_err() {
                return Ok(check);
            }
        }
    }
    let mut source = match dir.open(file, manifest.compression, keys) {
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
pub(super) fn stored_file(dir: &Location, name: &str) -> Result<crate::storage::sink::FileSummary> {
    let mut source = dir.open(name, crate::format::compression::Compression::None, None)?;
    while let Some(block) = source.next_block() {
        block?;
    }
    source.finish()
}

/// Problems of the folder as a whole: files the manifest does not list,
/// `SHA256SUMS` disagreeing with the manifest, a missing or changed schema
/// file. For an encrypted backup (`public`, opened with `keys`), the schema
/// files are decrypted first, `SHA256SUMS` is checked against
/// `manifest.json`, and `manifest.json` against the decrypted manifest.
///
/// # Errors
/// The folder cannot be listed.
pub(super) async fn check_folder(
    dir: &Location,
    listing: &BTreeMap<String, u64>,
    manifest: &Manifest,
    public: Option<&PublicManifest>,
    keys: Option<&Identities>,
) -> Result<Vec<String>> {
    let mut problems = manifest.unlisted_files(listing);
    for (logical, want) in manifest.schema_files() {
        let file = manifest.stored_name(logical);
        if !listing.contains_key(&file) {
            problems.push(format!("{file}: missing (the manifest says the backup has one)"));
            continue;
        }
        let stored = dir.read(&file).await?.unwrap_or_default();
        let sql = match (public, keys) {
            (Some(public), Some(keys)) => {
                problems.extend(stored_difference(public, &file, &stored));
                match keys.open_bytes(&stored) {
                    Ok(sql) => sql,
                    Err(e) => {
                        problems.push(format!("{file}: does not decrypt: {e}"));
                        continue;
                    }
                }
            }
            _ => stored,
        };
        if let Some(want) = want {
            let got = crate::format::digest::sha256_hex(&sql);
            if got != want {
                problems.push(format!("{file}: sha256 is {got}, the manifest records {want}"));
            }
        }
    }
    let expected: Vec<(&str, &str)> = match public {
        Some(p) => p.files.iter().map(|f| (f.name.as_str(), f.sha256.as_str())).collect(),
        None => manifest.tables.iter().map(|t| (t.file.as_str(), t.file_sha256.as_str())).collect(),
    };
    problems.extend(check_sums(dir, &expected).await?);
    if let Some(public) = public {
        let listed = public.by_name();
        for t in &manifest.tables {
            match listed.get(t.file.as_str()) {
                Some(f) if f.bytes == t.file_bytes && f.sha256 == t.file_sha256 => {}
                _ => problems.push(format!(
                    "{}: {MANIFEST_FILE} does not record it as the encrypted manifest does",
                    t.file
                )),
            }
        }
    }
    Ok(problems)
}

/// How a stored file differs from what `manifest.json` records.
fn stored_difference(public: &PublicManifest, file: &str, stored: &[u8]) -> Option<String> {
    let sha = crate::format::digest::sha256_hex(stored);
    match public.by_name().get(file) {
        None => Some(format!("{file}: not listed in {MANIFEST_FILE}")),
        Some(f) if f.sha256 != sha || f.bytes != stored.len() as u64 => Some(format!(
            "{file}: sha256 is {sha} ({} bytes), {MANIFEST_FILE} records {} ({} bytes)",
            stored.len(),
            f.sha256,
            f.bytes
        )),
        Some(_) => None,
    }
}

/// Compares `SHA256SUMS` line by line with the files and sha256 expected.
pub(super) async fn check_sums(dir: &Location, expected: &[(&str, &str)]) -> Result<Vec<String>> {
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
    for &(file, sha256) in expected {
        match lines.remove(file) {
            None => problems.push(format!("{SUMS_FILE}: no line for {file}")),
            Some((n, hash)) if !hash.eq_ignore_ascii_case(sha256) => {
                problems.push(format!(
                    "{SUMS_FILE} line {n}: {file} has sha256 {hash}, the manifest records {sha256}"
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
