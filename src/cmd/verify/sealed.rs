//! `verify` of an encrypted backup without its key: what anyone holding the
//! folder can check. Every stored file `manifest.json` lists must be there,
//! a regular file of the recorded size and sha256; nothing else may be in
//! the folder; `SHA256SUMS` must agree. The content (tables, record counts,
//! headers, CSV sha256, fingerprints) is encrypted and needs `--identity`.

use std::collections::BTreeMap;
use std::time::Instant;

use serde::Serialize;

use super::files::{check_sums, stored_file};
use crate::cmd::Outcome;
use crate::error::{Class, Error, Result};
use crate::options::VerifyOptions;
use crate::progress::human_bytes;
use crate::storage::sealed::{PublicManifest, StoredEntry, needs_key};

/// What the keyless check found, as printed and as `--json`.
#[derive(Debug, Serialize)]
struct SealedReport {
    backup: String,
    ok: bool,
    encrypted: bool,
    recipients: Vec<String>,
    /// In passphrase mode, the file holding the backup's key.
    #[serde(skip_serializing_if = "Option::is_none")]
    passphrase_key: Option<String>,
    checked: Vec<&'static str>,
    files: usize,
    bytes: u64,
    problems: Vec<String>,
    not_checked: &'static str,
    seconds: f64,
}

const NOT_CHECKED: &str = "the content (tables, record counts, headers, CSV sha256, fingerprints) is encrypted: pass --identity FILE to check it";

/// Checks the stored files of an encrypted backup opened without a key.
///
/// # Errors
/// A usage error when a content check was asked for (`--deep`, `-d`,
/// `--expect`, `-t`/`-T`); a file that cannot be read (exit 3).
pub(super) async fn verify_stored_files(
    plan: &VerifyOptions,
    public: &PublicManifest,
) -> Result<Outcome> {
    let asked = [
        (plan.deep, "--deep"),
        (plan.conn.is_some(), "-d"),
        (plan.expect.is_some(), "--expect"),
        (!plan.selection.include.is_empty() || !plan.selection.exclude.is_empty(), "-t/-T"),
    ];
    if let Some((_, what)) = asked.iter().find(|(given, _)| *given) {
        return Err(needs_key(&plan.dir, public).context(format!("{what} checks the content")));
    }
    let started = Instant::now();
    let listing: BTreeMap<String, u64> = plan.dir.list().await?.into_iter().collect();
    let mut problems = public.unlisted_files(&listing);
    let files: Vec<StoredEntry> = public.files.clone();
    let dir = plan.dir.clone();
    let (found, failure) =
        tokio::task::spawn_blocking(move || check_stored(&dir, &listing, &files))
            .await
            .map_err(|e| Error::runtime(format!("a verify worker failed: {e}")))?;
    problems.extend(found);
    let expected: Vec<(&str, &str)> =
        public.files.iter().map(|f| (f.name.as_str(), f.sha256.as_str())).collect();
    problems.extend(check_sums(&plan.dir, &expected).await?);
    let report = SealedReport {
        backup: plan.dir.to_string(),
        ok: problems.is_empty() && failure.is_none(),
        encrypted: true,
        recipients: public.encryption.recipients.clone(),
        passphrase_key: public.encryption.passphrase_key.clone(),
        checked: vec!["files present", "sizes", "sha256", "SHA256SUMS", "unlisted files"],
        files: public.files.len(),
        bytes: public.files.iter().map(|f| f.bytes).sum(),
        problems,
        not_checked: NOT_CHECKED,
        seconds: started.elapsed().as_secs_f64(),
    };
    if plan.json {
        println!("{}", serde_json::to_string_pretty(&report).expect("report serializes"));
    } else {
        print_sealed(&report, plan.quiet);
    }
    if let Some(e) = failure {
        return Err(e.context("verify could not read every file"));
    }
    Ok(if report.problems.is_empty() { Outcome::Ok } else { Outcome::Differs })
}

/// Each listed file's presence, size and sha256 (read whole, on this
/// blocking thread); the first file that could not be read at all.
fn check_stored(
    dir: &crate::storage::location::Location,
    listing: &BTreeMap<String, u64>,
    files: &[StoredEntry],
) -> (Vec<String>, Option<Error>) {
    let mut problems = Vec::new();
    let mut failure = None;
    for f in files {
        if !listing.contains_key(&f.name) {
            problems.push(format!("{}: missing", f.name));
            continue;
        }
        match stored_file(dir, &f.name) {
            Ok(got) if got.file_bytes != f.bytes || got.file_sha256 != f.sha256 => {
                problems.push(format!(
                    "{}: sha256 is {} ({} bytes), manifest.json records {} ({} bytes)",
                    f.name, got.file_sha256, got.file_bytes, f.sha256, f.bytes
                ));
            }
            Ok(_) => {}
            Err(e) if e.class() == Class::Difference => problems.push(format!("{}: {e}", f.name)),
            Err(e) => {
                failure.get_or_insert(e);
            }
        }
    }
    (problems, failure)
}

fn print_sealed(r: &SealedReport, quiet: bool) {
    if !r.problems.is_empty() {
        println!("problems:");
        for p in &r.problems {
            println!("{}", crate::wrap::stdout(&format!("  {p}"), 2));
        }
        println!();
    }
    if !quiet {
        let checked = format!(
            "checked {} files ({}) of a backup encrypted with age to {}, in {:.1} s: {}",
            r.files,
            human_bytes(r.bytes),
            if r.passphrase_key.is_some() {
                "a passphrase".into()
            } else {
                r.recipients.join(", ")
            },
            r.seconds,
            r.checked.join(", ")
        );
        println!("{}", crate::wrap::stdout(&checked, 2));
        println!("{}", crate::wrap::stdout(&format!("not checked: {}", r.not_checked), 2));
    }
    if r.ok {
        let ok =
            format!("OK: the files of {} are whole (content not checked without a key)", r.backup);
        println!("{}", crate::wrap::stdout(&ok, 2));
    } else if !r.problems.is_empty() {
        let n = r.problems.len();
        println!("DIFFERENT: {n} problem{} found", if n == 1 { "" } else { "s" });
    }
}
