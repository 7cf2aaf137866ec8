//! Connection parameters as libpq resolves them: a connection string's
//! explicit settings (parsed in [`super::conn_string`]), its service's, the
//! `PG*` environment, defaults, and the password file.
//!
//! This module only turns text into a resolved [`ConnInfo`]; it does no network
//! I/O and knows nothing of tokio-postgres (see `session.rs`). Its display form
//! never holds the password.

use super::conn_string::{parse_conn_string, service_params};
use super::pgpass::password_from_file;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use crate::error::{Error, Result};

/// Debian's libpq default socket directory (`DEFAULT_PGSOCKET_DIR`).
pub const DEFAULT_SOCKET_DIR: &str = "/var/run/postgresql";

/// How long to wait for a connection when the user set no `connect_timeout`.
/// libpq waits forever; an engineer with a wrong security group should not.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// libpq's `sslmode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "disable" => SslMode::Disable,
            // libpq's `allow` tries without TLS first; treated as prefer here.
            "allow" | "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            other => {
                return Err(Error::usage_hint(
                    format!("invalid sslmode value: \"{other}\""),
                    "use one of disable, prefer, require, verify-ca, verify-full",
                ));
            }
        })
    }

    /// The libpq name of the mode.
    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }
}

/// Where the password came from; reported, never the password itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasswordSource {
    None,
    ConnString,
    Environment,
    PassFile,
}

/// Fully resolved connection parameters.
#[derive(Clone)]
pub struct ConnInfo {
    /// A host name, an IP address, or a unix-socket directory (starts with `/`).
    /// With `hostaddr`, the name TLS verifies and `.pgpass` matches, as in libpq.
    pub host: String,
    /// The address to connect to without a name lookup (libpq's `hostaddr`).
    pub hostaddr: Option<std::net::IpAddr>,
    pub port: u16,
    pub user: String,
    pub dbname: String,
    password: Option<String>,
    pub password_source: PasswordSource,
    pub sslmode: SslMode,
    pub sslrootcert: Option<PathBuf>,
    pub connect_timeout: Duration,
    /// Set by the user (conninfo or PGAPPNAME); pgbarge's own name otherwise.
    pub application_name: Option<String>,
    /// The bastion to tunnel through (`--ssh`); `host` and `port` stay the
    /// database's own, as the bastion reaches it.
    pub ssh: Option<super::tunnel::Bastion>,
}

impl ConnInfo {
    /// The password, for the connector only. Never print it.
    pub fn password(&self) -> Option<&str> {
        self.password.as_deref()
    }

    /// Whether the host is a unix-socket directory (a `hostaddr` overrides it).
    pub fn is_unix_socket(&self) -> bool {
        self.hostaddr.is_none() && self.host.starts_with('/')
    }

    /// The server's socket file in the unix-socket directory `host`, for `port`.
    pub fn unix_socket_path(&self, port: u16) -> std::path::PathBuf {
        std::path::Path::new(&self.host).join(format!(".s.PGSQL.{port}"))
    }

    /// The effective sslmode: libpq ignores TLS on unix sockets, and `require`
    /// with a root certificate behaves like `verify-ca`.
    pub fn effective_sslmode(&self) -> SslMode {
        if self.is_unix_socket() {
            SslMode::Disable
        } else if self.sslmode == SslMode::Require && self.sslrootcert.is_some() {
            SslMode::VerifyCa
        } else {
            self.sslmode
        }
    }
}

const HOST_ENCODE: &AsciiSet = &NON_ALPHANUMERIC.remove(b'.').remove(b'-').remove(b'_');

impl fmt::Display for ConnInfo {
    /// `postgresql://user@host:port/db`, socket directories percent-encoded, no password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let host: String = if self.is_unix_socket() {
            utf8_percent_encode(&self.host, HOST_ENCODE).to_string()
        } else if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        write!(
            f,
            "postgresql://{}@{}:{}/{}",
            utf8_percent_encode(&self.user, HOST_ENCODE),
            host,
            self.port,
            utf8_percent_encode(&self.dbname, HOST_ENCODE)
        )?;
        match self.hostaddr {
            Some(a) if a.to_string() != self.host => write!(f, "?hostaddr={a}"),
            _ => Ok(()),
        }
    }
}

impl fmt::Debug for ConnInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnInfo")
            .field("url", &self.to_string())
            .field("password", &self.password.as_ref().map(|_| "********"))
            .field("sslmode", &self.sslmode)
            .field("sslrootcert", &self.sslrootcert)
            .field("ssh", &self.ssh.as_ref().map(ToString::to_string))
            .finish()
    }
}

/// Where environment variables come from; a function so tests can pass a map.
pub type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

/// The process environment, with empty values treated as unset (as libpq does).
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// Resolves a connection string against the environment, the defaults and the
/// password file.
///
/// # Errors
/// A usage error for malformed parameters (port, sslmode, timeout).
pub fn resolve(conn_string: &str, env: Env<'_>) -> Result<ConnInfo> {
    let mut explicit = parse_conn_string(conn_string)?;
    // A service's settings come after the connection string's and before
    // the environment's, as in libpq.
    if let Some(service) = explicit.get("service").cloned().or_else(|| env("PGSERVICE")) {
        for (k, v) in service_params(&service, env)? {
            explicit.entry(k).or_insert(v);
        }
    }
    let get = |key: &str, var: &str| explicit.get(key).cloned().or_else(|| env(var));

    // libpq: `hostaddr` is where to connect, with no name lookup; `host`
    // stays the name that TLS verifies and `.pgpass` matches, and defaults
    // to the address when only that is given.
    let hostaddr = match get("hostaddr", "PGHOSTADDR").filter(|a| !a.is_empty()) {
        Some(a) => Some(a.trim().parse::<std::net::IpAddr>().map_err(|_| {
            Error::usage(format!("invalid hostaddr \"{a}\": not a numeric IPv4 or IPv6 address"))
        })?),
        None => None,
    };
    let host = get("host", "PGHOST")
        .filter(|h| !h.is_empty())
        .or_else(|| hostaddr.map(|a| a.to_string()))
        .unwrap_or_else(|| DEFAULT_SOCKET_DIR.to_string());
    if host.contains(',') {
        return Err(Error::usage("connection strings with several hosts are not supported"));
    }
    let port = match get("port", "PGPORT") {
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| Error::usage(format!("invalid port number: \"{p}\"")))?,
        None => 5432,
    };
    let user = get("user", "PGUSER").unwrap_or_else(os_user_name);
    let dbname = get("dbname", "PGDATABASE").unwrap_or_else(|| user.clone());
    let sslmode = match get("sslmode", "PGSSLMODE") {
        Some(m) => SslMode::parse(&m)?,
        None => SslMode::Prefer,
    };
    let sslrootcert = get("sslrootcert", "PGSSLROOTCERT").map(PathBuf::from);
    let connect_timeout = match get("connect_timeout", "PGCONNECT_TIMEOUT") {
        Some(t) => {
            let secs: i64 = t
                .trim()
                .parse()
                .map_err(|_| Error::usage(format!("invalid connect_timeout value: \"{t}\"")))?;
            // libpq: zero or negative means wait forever; 1 is raised to 2.
            if secs <= 0 {
                Duration::from_secs(u32::MAX as u64)
            } else {
                Duration::from_secs(secs.max(2) as u64)
            }
        }
        None => DEFAULT_CONNECT_TIMEOUT,
    };
    let application_name = get("application_name", "PGAPPNAME");

    let (password, password_source) = if let Some(p) = explicit.get("password") {
        (Some(p.clone()), PasswordSource::ConnString)
    } else if let Some(p) = env("PGPASSWORD") {
        (Some(p), PasswordSource::Environment)
    } else {
        let passfile = explicit
            .get("passfile")
            .cloned()
            .or_else(|| env("PGPASSFILE"))
            .map(PathBuf::from)
            .or_else(|| env("HOME").map(|h| Path::new(&h).join(".pgpass")));
        match passfile.and_then(|f| password_from_file(&f, &host, port, &dbname, &user)) {
            Some(p) => (Some(p), PasswordSource::PassFile),
            None => (None, PasswordSource::None),
        }
    };
    if let Some(p) = &password {
        crate::redact::register(p);
    }
    Ok(ConnInfo {
        host,
        hostaddr,
        port,
        user,
        dbname,
        password,
        password_source,
        sslmode,
        sslrootcert,
        connect_timeout,
        application_name,
        ssh: None,
    })
}

fn os_user_name() -> String {
    // SAFETY: getpwuid returns a pointer into static storage or NULL; we copy
    // the name out immediately and do not keep the pointer.
    unsafe {
        let pw = libc::getpwuid(libc::geteuid());
        if !pw.is_null()
            && !(*pw).pw_name.is_null()
            && let Ok(name) = std::ffi::CStr::from_ptr((*pw).pw_name).to_str()
        {
            return name.to_string();
        }
    }
    std::env::var("USER").unwrap_or_else(|_| "postgres".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn service_file_settings_sit_between_the_string_and_the_environment() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("services.conf");
        std::fs::write(
            &file,
            "# comment\n[other]\nport=1\n[prod]\nhost=db.example.com\nport=6432\ndbname=erp\n",
        )
        .unwrap();
        let f = file.to_str().unwrap().to_string();
        let env_of = |vars: Vec<(&'static str, String)>| {
            move |k: &str| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone())
        };
        let env = env_of(vec![
            ("PGSERVICEFILE", f.clone()),
            ("PGPORT", "7000".into()),
            ("PGUSER", "app".into()),
        ]);
        let info = resolve("service=prod dbname=other", &env).unwrap();
        assert_eq!(
            (info.host.as_str(), info.port, info.dbname.as_str(), info.user.as_str()),
            ("db.example.com", 6432, "other", "app")
        );
        let env = env_of(vec![
            ("PGSERVICEFILE", f),
            ("PGSERVICE", "prod".into()),
            ("PGSYSCONFDIR", "/nonexistent".into()),
        ]);
        assert_eq!(resolve("", &env).unwrap().dbname, "erp");
        let e = resolve("service=nope", &env).unwrap_err();
        assert!(crate::error::render(&e).contains("definition of service \"nope\" not found"));
    }

    #[test]
    fn environment_fills_gaps_and_explicit_wins() {
        let env = |k: &str| match k {
            "PGHOST" => Some("db.example.com".to_string()),
            "PGPORT" => Some("6543".to_string()),
            "PGUSER" => Some("envuser".to_string()),
            "PGSSLMODE" => Some("require".to_string()),
            "PGAPPNAME" => Some("runbook".to_string()),
            _ => None,
        };
        let c = resolve("dbname=app user=me", &env).unwrap();
        assert_eq!(c.host, "db.example.com");
        assert_eq!(c.port, 6543);
        assert_eq!(c.user, "me");
        assert_eq!(c.dbname, "app");
        assert_eq!(c.sslmode, SslMode::Require);
        assert_eq!(c.application_name.as_deref(), Some("runbook"));
        assert_eq!(c.to_string(), "postgresql://me@db.example.com:6543/app");
    }

    #[test]
    fn display_never_holds_password() {
        let c = resolve("postgresql://u:hunter2secret@h/d", &no_env).unwrap();
        assert_eq!(c.to_string(), "postgresql://u@h:5432/d");
        assert!(!format!("{c:?}").contains("hunter2secret"));
        assert_eq!(c.password(), Some("hunter2secret"));
    }

    #[test]
    fn require_with_rootcert_is_verify_ca_and_socket_disables_tls() {
        let c = resolve("host=h sslmode=require sslrootcert=/ca.pem", &no_env).unwrap();
        assert_eq!(c.effective_sslmode(), SslMode::VerifyCa);
        let c = resolve("host=/tmp sslmode=require", &no_env).unwrap();
        assert_eq!(c.effective_sslmode(), SslMode::Disable);
    }

    #[test]
    fn hostaddr_is_where_to_connect_and_host_the_name() {
        let c = resolve("host=db.example.com hostaddr=10.1.2.3 port=5433", &no_env).unwrap();
        assert_eq!((c.host.as_str(), c.hostaddr), ("db.example.com", Some([10, 1, 2, 3].into())));
        assert_eq!(
            c.to_string(),
            "postgresql://".to_string()
                + &c.user
                + "@db.example.com:5433/"
                + &c.dbname
                + "?hostaddr=10.1.2.3"
        );
        let c = resolve("hostaddr=::1", &no_env).unwrap();
        assert_eq!(c.host, "::1");
        assert!(!c.is_unix_socket());
        let env = |k: &str| (k == "PGHOSTADDR").then(|| "127.0.0.1".to_string());
        assert_eq!(resolve("host=h", &env).unwrap().hostaddr, Some([127, 0, 0, 1].into()));
        let e = resolve("hostaddr=db.example.com", &no_env).unwrap_err();
        assert!(e.to_string().contains("not a numeric"), "{e}");
    }

    #[test]
    fn rejects_bad_values() {
        assert!(resolve("sslmode=verify", &no_env).is_err());
        assert!(resolve("port=abc", &no_env).is_err());
        assert!(resolve("connect_timeout=x", &no_env).is_err());
    }

    fn pgpass(content: &str, mode: u32) -> tempfile::TempDir {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("pgpass");
        std::fs::write(&f, content).unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(mode)).unwrap();
        dir
    }

    #[test]
    fn pgpass_first_match_wildcards_and_escapes() {
        let dir = pgpass(
            "# comment\nother:*:*:*:nope\nh\\:x:5432:app:me:first\\:pw\n*:*:*:me:second\n",
            0o600,
        );
        let f = dir.path().join("pgpass");
        assert_eq!(password_from_file(&f, "h:x", 5432, "app", "me").as_deref(), Some("first:pw"));
        assert_eq!(password_from_file(&f, "h:x", 5433, "app", "me").as_deref(), Some("second"));
        assert_eq!(password_from_file(&f, "h", 5432, "app", "you"), None);
    }

    #[test]
    fn pgpass_localhost_matches_default_socket_and_star_is_literal_when_escaped() {
        let dir = pgpass("localhost:5432:*:me:sock\n\\*:5432:*:you:lit\n", 0o600);
        let f = dir.path().join("pgpass");
        assert_eq!(
            password_from_file(&f, DEFAULT_SOCKET_DIR, 5432, "d", "me").as_deref(),
            Some("sock")
        );
        assert_eq!(password_from_file(&f, "/tmp/other", 5432, "d", "me"), None);
        assert_eq!(password_from_file(&f, "*", 5432, "d", "you").as_deref(), Some("lit"));
        assert_eq!(password_from_file(&f, "h", 5432, "d", "you"), None);
    }

    #[test]
    fn pgpass_ignored_when_group_readable() {
        let dir = pgpass("*:*:*:*:pw\n", 0o640);
        let f = dir.path().join("pgpass");
        assert_eq!(password_from_file(&f, "h", 5432, "d", "u"), None);
    }
}
