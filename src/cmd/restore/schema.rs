//! `--schema`: the backup's schema files, checked against the manifest and
//! run around the rows as pg_restore orders them: pre-data (tables, types,
//! functions) before, post-data (indexes, constraints, triggers) after.

use super::clean::CleanPlan;
use crate::catalog::read_data_catalog;
use crate::conn::session::{Session, repin};
use crate::error::{Error, Result};
use crate::format::encryption::Identities;
use crate::options::RestoreOptions;
use crate::storage::manifest::Manifest;

/// A schema file of the backup, read and checked: (its name, its SQL).
pub(super) type SchemaSql = (&'static str, String);

/// Reads every schema file of the backup and checks each against the
/// manifest, before anything runs.
///
/// # Errors
/// A backup without schema files (exit 2); a file missing or changed (exit 1).
pub(super) async fn read_schema_files(
    plan: &RestoreOptions,
    manifest: &Manifest,
    keys: Option<&Identities>,
) -> Result<Vec<SchemaSql>> {
    let files = manifest.schema_files();
    if files.is_empty() {
        return Err(Error::usage_hint(
            format!("{} was taken without --schema: it holds no schema", plan.dir),
            "create the tables first (pg_dump --schema-only of the source, or your DDL files), then restore without --schema",
        ));
    }
    let mut sql = Vec::new();
    for (file, want) in files {
        sql.push((file, read_schema_file(plan, manifest, keys, file, want).await?));
    }
    Ok(sql)
}

/// Runs the first schema file (pre-data, or a format 1 backup's whole
/// `schema.sql`) into an empty target — or, with `clean`, into a target
/// whose user schemas it first drops — inside the transaction the data then
/// loads in (the load's own BEGIN only warns), so a failure undoes all of
/// it. Returns the post-data section, which runs after the rows (indexes,
/// constraints, triggers), as pg_restore orders them.
pub(super) async fn run_schema(
    plan: &RestoreOptions,
    sql: Vec<SchemaSql>,
    target: &Session,
    clean: Option<&CleanPlan>,
) -> Result<Option<SchemaSql>> {
    if clean.is_none() {
        let catalog = read_data_catalog(target).await.map_err(|e| e.context("TARGET"))?;
        if !catalog.tables.is_empty() {
            return Err(Error::usage_hint(
                format!(
                    "--schema needs an empty target database; it has {} table{} (for example {})",
                    catalog.tables.len(),
                    if catalog.tables.len() == 1 { "" } else { "s" },
                    catalog.tables[0].name
                ),
                "restore into a new database (createdb), restore without --schema into the existing tables, or put the whole database back with --clean",
            ));
        }
    }
    let mut sql = sql.into_iter();
    let (first, first_sql) = sql.next().expect("at least one schema file");
    target.execute("BEGIN", "TARGET: cannot start the transaction").await?;
    if let Some(clean) = clean {
        clean.drop_all(target, plan.options.lock_wait_timeout).await?;
    }
    target.execute(&first_sql, format!("TARGET: running {first} failed")).await?;
    if plan.per_table_commit && !plan.dry_run {
        // Other workers' sessions must see the tables.
        target.execute("COMMIT", format!("TARGET: committing {first} failed")).await?;
    }
    // pg_dump's output sets its own search_path and more; pin ours again.
    repin(target).await?;
    Ok(sql.next())
}

/// Runs the post-data section on `target` inside its open transaction.
pub(super) async fn run_post_data(target: &Session, (file, sql): &SchemaSql) -> Result<()> {
    target.execute(sql, format!("TARGET: running {file} failed")).await?;
    repin(target).await
}

/// One schema file's SQL, checked against its recorded sha256, with the
/// lines only psql understands taken out.
async fn read_schema_file(
    plan: &RestoreOptions,
    manifest: &Manifest,
    keys: Option<&Identities>,
    file: &str,
    want: Option<&str>,
) -> Result<String> {
    let stored = manifest.stored_name(file);
    let path = plan.dir.path(&stored);
    let text = plan.dir.read(&stored).await?.ok_or_else(|| {
        Error::difference(format!(
            "{}: missing (the manifest says the backup has one)",
            path.display()
        ))
    })?;
    let text = match (&manifest.encryption, keys) {
        (Some(_), Some(keys)) => keys
            .open_bytes(&text)
            .map_err(|e| Error::difference(format!("{}: does not decrypt: {e}", path.display())))?,
        _ => text,
    };
    if let Some(want) = want {
        let got = crate::format::digest::sha256_hex(&text);
        if got != want {
            return Err(Error::difference(format!(
                "{}: sha256 is {got}, the manifest records {want}; the schema file was changed",
                path.display()
            )));
        }
    }
    let text = String::from_utf8(text)
        .map_err(|_| Error::difference(format!("{} is not UTF-8 text", path.display())))?;
    strip_restrict_lines(&text).map_err(|line| {
        Error::usage(format!(
            "{} line {line}: a psql meta-command; {file} must be plain SQL",
            path.display()
        ))
    })
}

/// pg_dump 17.6, 16.10 and later wrap plain output in `\restrict KEY` and
/// `\unrestrict KEY` lines, which only psql understands; they carry no SQL.
/// Any other meta-command line is refused (its 1-based line number).
fn strip_restrict_lines(sql: &str) -> std::result::Result<String, usize> {
    let mut out = String::with_capacity(sql.len());
    for (n, line) in sql.lines().enumerate() {
        if line.starts_with("\\restrict ") || line.starts_with("\\unrestrict ") {
            continue;
        }
        if line.starts_with('\\') {
            return Err(n + 1);
        }
        out.push_str(line);
        out.push('\n');
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restrict_lines_are_dropped_and_other_meta_commands_refused() {
        assert_eq!(
            strip_restrict_lines("\\restrict abc\nCREATE TABLE t ();\n\\unrestrict abc\n").unwrap(),
            "CREATE TABLE t ();\n"
        );
        assert_eq!(strip_restrict_lines("SELECT 1;\n\\connect other\n"), Err(2));
    }
}
