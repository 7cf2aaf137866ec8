//! `--schema`: `pg_dump --schema-only` of the same snapshot, pre-data and
//! post-data sections, with a pg_dump at least as new as the server.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::conn::conninfo::ConnInfo;
use crate::conn::session::ServerInfo;
use crate::error::{Error, Result};
use crate::format::encryption::{Recipients, seal_bytes};
use crate::storage::location::Location;
use crate::storage::sealed::StoredEntry;

/// A pg_dump at least as new as the server (pg_dump refuses older servers'
/// dumps otherwise... and a newer server's with an older pg_dump).
///
/// # Errors
/// None found that runs, or one older than the server.
pub(super) async fn find_usable_pg_dump(server: &ServerInfo) -> Result<PathBuf> {
    let server_major = server.server_version_num / 10000;
    let pg_dump = find_pg_dump(server_major);
    let version =
        tokio::process::Command::new(&pg_dump).arg("--version").output().await.map_err(|e| {
            Error::Runtime {
                msg: format!("cannot run {}: {e}", pg_dump.display()),
                hint: Some(
                    "--schema needs pg_dump (Debian: apt-get install postgresql-client)".into(),
                ),
            }
        })?;
    let text = String::from_utf8_lossy(&version.stdout);
    let major: i32 = text
        .split_whitespace()
        .find_map(|w| w.split('.').next().and_then(|m| m.parse().ok()))
        .unwrap_or(0);
    if major < server_major {
        return Err(Error::runtime_hint(
            format!(
                "{} is version {major}, older than the server ({})",
                pg_dump.display(),
                server.server_version
            ),
            format!("install pg_dump {server_major} or newer (postgresql-client-{server_major})"),
        ));
    }
    Ok(pg_dump)
}

/// A schema section as written.
pub(super) struct DumpedSchema {
    /// sha256 of the SQL (what the manifest records).
    pub(super) sql_sha256: String,
    /// The stored file, when it was encrypted (`file.age`).
    pub(super) stored: Option<StoredEntry>,
}

/// Writes one section of the schema (`pre-data` or `post-data`) to `file`
/// with `pg_dump --schema-only --section` of the same snapshot (encrypted to
/// `seal` as `file.age`, when given). The sections are what pg_restore runs
/// around the rows: tables before them, indexes, constraints (`NOT VALID`
/// ones among them) and triggers after.
#[allow(clippy::too_many_arguments)]
pub(super) async fn dump_schema(
    pg_dump: &Path,
    conn: &ConnInfo,
    snapshot: &str,
    section: &str,
    file: &str,
    dir: &Location,
    lock_wait_timeout: Duration,
    seal: Option<&Recipients>,
) -> Result<DumpedSchema> {
    let mut cmd = tokio::process::Command::new(pg_dump);
    cmd.arg("--schema-only")
        .arg(format!("--section={section}"))
        .arg(format!("--snapshot={snapshot}"))
        // pg_dump locks every table it dumps; it waits no longer than we do.
        .arg(format!("--lock-wait-timeout={}", lock_wait_timeout.as_millis().max(1)))
        .arg("--no-password")
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("PGHOST", &conn.host)
        .env("PGPORT", conn.port.to_string())
        .env("PGUSER", &conn.user)
        .env("PGDATABASE", &conn.dbname)
        .env("PGSSLMODE", conn.effective_sslmode().as_str())
        .env("PGAPPNAME", "pgbarge pg_dump");
    if let Some(p) = conn.password() {
        // The password travels in the child's environment, never its arguments.
        cmd.env("PGPASSWORD", p);
    }
    if let Some(ca) = &conn.sslrootcert {
        cmd.env("PGSSLROOTCERT", ca);
    }
    if let Some(addr) = conn.hostaddr {
        cmd.env("PGHOSTADDR", addr.to_string());
    }
    if let Some(local) = crate::conn::tunnel::endpoint(conn).await? {
        // Through the SSH tunnel; PGHOST stays the name TLS verifies.
        cmd.env("PGHOSTADDR", local.ip().to_string()).env("PGPORT", local.port().to_string());
    }
    let out = tokio::select! {
        o = cmd.kill_on_drop(true).output() => o.map_err(|e| Error::io("cannot run", pg_dump, e))?,
        signal = crate::cancel::cancelled() => return Err(Error::Interrupted { signal }),
    };
    if !out.status.success() {
        return Err(Error::runtime(format!(
            "pg_dump --schema-only --section={section} failed: {}",
            crate::redact::redact(String::from_utf8_lossy(&out.stderr).trim())
        )));
    }
    let sql_sha256 = crate::format::digest::sha256_hex(&out.stdout);
    // A schema is small next to the data; written like every other file.
    let Some(recipients) = seal else {
        dir.write(file, &out.stdout).await?;
        return Ok(DumpedSchema { sql_sha256, stored: None });
    };
    let sealed = seal_bytes(recipients, &out.stdout)
        .map_err(|e| Error::runtime(format!("cannot encrypt {file}: {e}")))?;
    let name = format!("{file}{}", crate::format::encryption::SUFFIX);
    dir.write(&name, &sealed).await?;
    let stored = StoredEntry {
        name,
        bytes: sealed.len() as u64,
        sha256: crate::format::digest::sha256_hex(&sealed),
    };
    Ok(DumpedSchema { sql_sha256, stored: Some(stored) })
}

/// `PGBARGE_PG_DUMP` when set; else pg_dump of the server's major version
/// when installed side by side (Debian's layout); else the one on PATH.
pub(super) fn find_pg_dump(server_major: i32) -> PathBuf {
    if let Some(p) = std::env::var_os("PGBARGE_PG_DUMP").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    let versioned = PathBuf::from(format!("/usr/lib/postgresql/{server_major}/bin/pg_dump"));
    if versioned.exists() { versioned } else { PathBuf::from("pg_dump") }
}
