//! `pgbarge verify`: prove a backup is whole, and compare it with a live database.
//!
//! Offline, each selected data file is read once, through [`FileSource`]
//! (file size and sha256, decompression) and the stages backup used (record
//! count, CSV sha256, fingerprint), and every result is compared with the
//! manifest; the folder is checked for files the manifest does not list, and
//! `SHA256SUMS` against the manifest. With `-d`, each table's backup row count
//! is compared with the live table's, or with `--deep` its fingerprint with one
//! computed from the live table's COPY stream — the code path backup uses; a
//! lost session starts that comparison over on a new one, a bounded number of
//! times. Every difference is collected and reported; none hides another.

pub mod expect;
mod files;
mod live;
mod report;
mod sealed;

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use self::expect::{apply_expectations, read_expectations};
use self::files::{check_files, check_folder};
use self::live::compare_live_retrying;
use self::report::{Report, TableReport, print_report};
use crate::cmd::Outcome;
use crate::conn::session::{Purpose, connect};
use crate::error::{Error, Result};
use crate::ident::TableName;
use crate::options::VerifyOptions;
use crate::progress::Progress;
use crate::storage::manifest::Manifest;
use crate::storage::sealed::Opened;

/// Runs `verify`.
///
/// # Errors
/// A missing manifest (the backup is incomplete: exit 1), a newer or foreign
/// manifest (exit 2), patterns matching nothing, a file that cannot be read
/// or a database that cannot be reached (exit 3), a signal.
pub async fn run(plan: VerifyOptions) -> Result<Outcome> {
    let started = Instant::now();
    let expect = plan.expect.as_deref().map(read_expectations).transpose()?;
    let _reading = plan.dir.lock_for_reading()?;
    let (manifest, public, keys) = match Manifest::open_at(&plan.dir, plan.keys.as_ref()).await? {
        Opened::Plain(m) => (m, None, None),
        Opened::Sealed { public, opened: Some((m, keys)) } => (m, Some(public), Some(keys)),
        Opened::Sealed { public, opened: None } => {
            return sealed::verify_stored_files(&plan, &public).await;
        }
    };
    let manifest = Arc::new(manifest);
    let names: Vec<TableName> =
        manifest.tables.iter().map(|t| TableName::new(&t.schema, &t.name)).collect();
    let picked: HashSet<&TableName> =
        plan.selection.choose(&names, &[], "in the backup")?.into_iter().collect();
    let chosen: Vec<usize> = (0..names.len()).filter(|&i| picked.contains(&names[i])).collect();
    // Fail fast on a database that cannot be reached, before reading gigabytes.
    let mut live = match &plan.conn {
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
        let (deep, jobs, sizes, keys) = (plan.deep, plan.jobs, listing.clone(), keys.clone());
        tokio::task::spawn_blocking(move || {
            check_files(&dir, &sizes, &manifest, &chosen, deep, jobs, keys.as_ref(), &progress)
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
    problems.extend(
        check_folder(&plan.dir, &listing, &manifest, public.as_deref(), keys.as_ref()).await?,
    );
    if public.is_some() {
        checked.push("decryption");
    }
    if let Some(exp) = &expect {
        checked.push("expected counts");
        problems.extend(apply_expectations(exp, &manifest, &chosen, &mut tables)?);
    }
    if let (Some(session), Some(conn)) = (&mut live, &plan.conn) {
        checked.push(if plan.deep { "live fingerprints" } else { "live row counts" });
        compare_live_retrying(conn, session, &manifest, &chosen, &plan, &progress, &mut tables)
            .await?;
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
    } else if !plan.silent {
        print_report(&report, expect.is_some(), live.is_some(), plan.quiet);
    }
    if let Some(first) = failures.into_iter().next() {
        // A file that could not be read at all is not a difference: exit 3.
        return Err(first.context("verify could not read every file"));
    }
    Ok(if differs { Outcome::Differs } else { Outcome::Ok })
}
