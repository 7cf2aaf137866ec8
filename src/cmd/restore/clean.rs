//! `restore --clean`: the target's user schemas dropped, with everything in
//! them (what a migration added included), inside the transaction that then
//! recreates the backup's schema and loads its rows, so a failure anywhere
//! leaves the database as it was.
//!
//! Dropping schemas rather than listed objects is what makes it exact: no
//! kind of object can be missed. `public` is recreated at once as it was
//! (owner, privileges, comment), since pg_dump assumes it exists; the other
//! schemas come back from the backup's pre-data.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::catalog::objects::{DbObject, dumped_objects, user_objects};
use crate::conn::locks::{LockMode, lock_tables};
use crate::conn::session::Session;
use crate::error::{Error, Result};
use crate::ident::TableName;
use crate::options::RestoreOptions;
use crate::storage::manifest::Manifest;

/// What `--clean` leaves alone, in the README's words too.
pub(super) const NOT_TOUCHED: &str = "roles and memberships, database settings \
     (ALTER DATABASE ... SET), other databases, large objects, publications, \
     event triggers and foreign servers";

/// Refuses, before anything is read from the target, a `--clean` that could
/// not put the whole database back: a backup of chosen tables or without
/// its schema, or options that choose tables or split the transaction.
///
/// # Errors
/// A usage error (exit 2) with the reason.
pub(super) fn check_usable(plan: &RestoreOptions, manifest: &Manifest) -> Result<()> {
    let refuse = |msg: String, hint: &str| Err(Error::usage_hint(msg, hint));
    if !plan.selection.include.is_empty() || !plan.selection.exclude.is_empty() {
        return refuse(
            "--clean puts back the whole database; it takes no -t or -T".into(),
            "without --clean, restore loads chosen tables into the existing schema",
        );
    }
    if plan.per_table_commit {
        return refuse(
            "--clean runs in one transaction; it takes no --per-table-commit".into(),
            "drop --per-table-commit",
        );
    }
    if plan.options.mode != crate::load::Mode::Fail {
        return refuse(
            "--clean recreates every table empty before loading it; --mode does not apply".into(),
            "drop --mode",
        );
    }
    if manifest.schema_files().is_empty() || !manifest.selection.whole_database {
        let what = if manifest.schema_files().is_empty() {
            "was taken without --schema".to_string()
        } else if manifest.selection.include.is_empty() && manifest.selection.exclude.is_empty() {
            "does not record that it covers every table (taken by an older pgbarge)".to_string()
        } else {
            let mut chosen: Vec<String> =
                manifest.selection.include.iter().map(|p| format!("-t {p}")).collect();
            chosen.extend(manifest.selection.exclude.iter().map(|p| format!("-T {p}")));
            format!("holds only the tables chosen by {}", chosen.join(" "))
        };
        return refuse(
            format!(
                "--clean needs a backup of the whole database with its schema; {} {what}",
                plan.dir
            ),
            "take one with `pgbarge backup -d CONN --schema -o DIR` (no -t or -T)",
        );
    }
    Ok(())
}

/// The target's user schemas and objects, and which of them the backup's
/// schema files do not hold (what a migration added).
pub(super) struct CleanPlan {
    pub(super) objects: Vec<DbObject>,
    in_backup: BTreeSet<(String, String, String)>,
}

impl CleanPlan {
    /// Reads the target's objects and checks that the current user may drop
    /// every schema (a schema's owner may drop it with all it holds).
    ///
    /// # Errors
    /// The schemas it may not drop, each with the `ALTER SCHEMA ... OWNER`
    /// or `GRANT` that would allow it; the server's errors.
    pub(super) async fn read(target: &Session, schema_sql: &[&str]) -> Result<Self> {
        let objects = user_objects(target).await.map_err(|e| e.context("TARGET"))?;
        let refused: Vec<&DbObject> =
            objects.iter().filter(|o| o.kind == "SCHEMA" && !o.may_drop).collect();
        if !refused.is_empty() {
            let user = target
                .query_value::<String>("SELECT current_user::text", "cannot read the user name")
                .await?;
            let list: Vec<String> = refused
                .iter()
                .map(|o| {
                    format!(
                        "schema {} (owner {}): ALTER SCHEMA {} OWNER TO {user};  or  GRANT {} TO {user};",
                        o.display,
                        o.owner,
                        o.display,
                        o.owner
                    )
                })
                .collect();
            return Err(Error::runtime_hint(
                format!(
                    "--clean cannot drop {} of the target's schemas: {user} is not a member of the owner's role; nothing was changed:\n    {}",
                    refused.len(),
                    list.join("\n    ")
                ),
                "run one of the statements shown as the owner or a superuser, or restore as a user that owns these schemas",
            ));
        }
        let mut in_backup = BTreeSet::new();
        for sql in schema_sql {
            in_backup.extend(dumped_objects(sql));
        }
        Ok(CleanPlan { objects, in_backup })
    }

    /// The schemas that will be dropped.
    pub(super) fn schemas(&self) -> impl Iterator<Item = &DbObject> {
        self.objects.iter().filter(|o| o.kind == "SCHEMA")
    }

    /// Objects of the target that the backup does not hold: dropped and not
    /// recreated.
    pub(super) fn not_in_backup(&self) -> Vec<&DbObject> {
        self.objects.iter().filter(|o| !self.in_backup.contains(&o.key())).collect()
    }

    /// Drops every user schema with all it holds, and recreates `public` as
    /// it was, inside the caller's open transaction.
    ///
    /// # Errors
    /// The server's error (a lock not granted in time among them).
    pub(super) async fn drop_all(&self, target: &Session, lock_wait: Duration) -> Result<()> {
        // Every table the user may lock (one whose owner's role it is in) is
        // locked first, each waited for at most `lock_wait`, so a session in
        // the way is named; the drop waits no longer for the others (the
        // timeout stays the transaction's).
        let tables: Vec<TableName> = self
            .objects
            .iter()
            .filter(|o| matches!(o.kind.as_str(), "TABLE" | "MATERIALIZED VIEW" | "VIEW"))
            .filter(|o| o.may_drop)
            .map(|o| TableName::new(&o.schema, &o.name))
            .collect();
        let locks: Vec<(&TableName, LockMode)> =
            tables.iter().map(|t| (t, LockMode::AccessExclusive)).collect();
        lock_tables(target, &locks, lock_wait).await.map_err(|e| e.context("TARGET"))?;
        let mut sql = String::new();
        for s in self.schemas() {
            if s.name == "public" {
                let recreate: String = target
                    .query_value(RECREATE_PUBLIC, "TARGET: cannot read the public schema")
                    .await?;
                sql.push_str("DROP SCHEMA public CASCADE;\n");
                sql.push_str(&recreate);
            } else {
                sql.push_str(&format!(
                    "DROP SCHEMA {} CASCADE;\n",
                    crate::ident::sql_ident(&s.name)
                ));
            }
        }
        target.execute(&sql, "TARGET: dropping the schemas failed").await
    }
}

impl CleanPlan {
    /// The summary's line on what was dropped.
    pub(super) fn print_done(&self) {
        let schemas: Vec<&str> = self.schemas().map(|s| s.display.as_str()).collect();
        let gone = self.not_in_backup().into_iter().filter(|o| o.kind != "SCHEMA").count();
        let line = format!(
            "  first dropped {} ({}) with everything in them, in the same transaction; {} the backup did not hold {} gone",
            crate::progress::counted(schemas.len() as u64, "schema", "schemas"),
            schemas.join(", "),
            crate::progress::counted(gone as u64, "object", "objects"),
            if gone == 1 { "is" } else { "are" },
        );
        println!("{}", crate::wrap::stdout(&line, 2));
    }
}

/// The statements that recreate `public` as it is now: owner, privileges
/// (the default when none were ever changed) and comment.
const RECREATE_PUBLIC: &str = "\
SELECT format('CREATE SCHEMA public AUTHORIZATION %s;', n.nspowner::regrole) || E'\\n' \
    || CASE WHEN n.nspacl IS NULL THEN '' ELSE \
         format('REVOKE ALL ON SCHEMA public FROM %s;', n.nspowner::regrole) || E'\\n' \
         || coalesce((SELECT string_agg(format('GRANT %s ON SCHEMA public TO %s%s;', a.privilege_type, \
                CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE a.grantee::regrole::text END, \
                CASE WHEN a.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END), E'\\n') \
              FROM aclexplode(n.nspacl) a), '') || E'\\n' END \
    || coalesce(format('COMMENT ON SCHEMA public IS %L;', obj_description(n.oid, 'pg_namespace')) || E'\\n', '') \
  FROM pg_namespace n WHERE n.nspname = 'public'";

/// Prints what `--clean` would drop and what it would recreate and load.
pub(super) fn print_dry_run(plan: &CleanPlan, manifest: &Manifest, target: &str) {
    let out = |s: String| println!("{}", crate::wrap::stdout(&s, 4));
    println!("restore --clean into {target}: dry run, nothing is written");
    println!();
    println!("Would drop, in one transaction (rolled back on any failure):");
    let schemas: Vec<String> = plan
        .schemas()
        .map(|s| {
            if s.name == "public" {
                "public (recreated empty at once, with its owner, privileges and comment)".into()
            } else {
                s.display.clone()
            }
        })
        .collect();
    out(format!("  {} schema{}: {}", schemas.len(), plural(schemas.len()), schemas.join(", ")));
    let extra = plan.not_in_backup();
    let extra: Vec<&DbObject> = extra.into_iter().filter(|o| o.kind != "SCHEMA").collect();
    if extra.is_empty() {
        println!("  and in them, nothing the backup does not hold");
    } else {
        let mut kinds: Vec<(&str, usize)> = Vec::new();
        for o in &extra {
            match kinds.iter_mut().find(|(k, _)| *k == o.kind) {
                Some((_, n)) => *n += 1,
                None => kinds.push((&o.kind, 1)),
            }
        }
        let counted: Vec<String> = kinds
            .iter()
            .map(|(k, n)| {
                let one = k.to_lowercase();
                crate::progress::counted(*n as u64, &one, &format!("{one}s"))
            })
            .collect();
        out(format!(
            "  and in them {} object{} the backup does not hold ({}):",
            extra.len(),
            plural(extra.len()),
            counted.join(", ")
        ));
        for o in extra {
            println!("    {}", o.label());
        }
    }
    let dropped_schemas: Vec<&str> = plan
        .schemas()
        .filter(|s| !plan.in_backup.contains(&s.key()) && s.name != "public")
        .map(|s| s.display.as_str())
        .collect();
    if !dropped_schemas.is_empty() {
        out(format!(
            "  (not in the backup, so not recreated: schema {})",
            dropped_schemas.join(", ")
        ));
    }
    println!();
    let rows: u64 = manifest.tables.iter().map(|t| t.rows).sum();
    let sequences: usize = manifest.tables.iter().map(|t| t.sequences.len()).sum();
    out(format!(
        "Would then recreate the backup's schema ({}), load {} ({}, each checked as it loads), run post-data (indexes, constraints, triggers), set {} to the recorded values, check every count, and commit.",
        crate::progress::counted(plan.in_backup.len() as u64, "object", "objects"),
        crate::progress::counted(manifest.tables.len() as u64, "table", "tables"),
        crate::progress::counted(rows, "row", "rows"),
        crate::progress::counted(sequences as u64, "sequence", "sequences"),
    ));
    out(format!("Not touched: {NOT_TOUCHED}."));
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}
