//! Connection strings as libpq writes them: `postgresql://` URLs, keyword/value
//! strings, a bare database name, and the service file a `service` names.
//!
//! This module only turns text into the parameters it sets explicitly; the
//! environment, defaults and password file are [`super::conninfo::resolve`]'s.
//! No message may echo a part that could be a password.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use percent_encoding::percent_decode_str;

use crate::conn::conninfo::Env;
use crate::error::{Error, Result};

/// The keywords pgbarge accepts, as libpq spells them.
const KEYWORDS: &[&str] = &[
    "host",
    "hostaddr",
    "port",
    "dbname",
    "user",
    "password",
    "passfile",
    "sslmode",
    "sslrootcert",
    "connect_timeout",
    "application_name",
    "service",
];

/// Parses a connection string (URL, keyword/value, or a bare database name) into
/// the parameters it sets explicitly.
///
/// # Errors
/// A usage error naming the problem (unknown keyword, bad quoting, bad URL).
pub fn parse_conn_string(s: &str) -> Result<BTreeMap<String, String>> {
    let trimmed = s.trim();
    let params = if trimmed.starts_with("postgresql://") || trimmed.starts_with("postgres://") {
        parse_url(trimmed)?
    } else if trimmed.is_empty() {
        BTreeMap::new()
    } else if !trimmed.contains('=') {
        // libpq: a string without `=` is a database name.
        BTreeMap::from([("dbname".to_string(), trimmed.to_string())])
    } else {
        parse_keywords(trimmed)?
    };
    for key in params.keys() {
        if !KEYWORDS.contains(&key.as_str()) {
            return Err(Error::usage_hint(
                format!("invalid connection option \"{key}\""),
                format!("pgbarge understands: {}", KEYWORDS.join(", ")),
            ));
        }
    }
    Ok(params)
}

/// Decodes one percent-encoded part of a URL. A `%` not followed by two hex
/// digits is an error (percent-encoding's decoder would keep it as text and
/// the mistake would surface later as an unknown host or a wrong password).
/// The message names the part, never its text: it may be a password.
fn decode(s: &str, what: &str) -> Result<String> {
    let bytes = s.as_bytes();
    let malformed = bytes.iter().enumerate().any(|(i, &b)| {
        b == b'%'
            && !(bytes.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                && bytes.get(i + 2).is_some_and(u8::is_ascii_hexdigit))
    });
    let invalid = || {
        Error::usage_hint(
            format!("invalid percent-encoding in the connection URL's {what}"),
            "write a literal % as %25; every % must be followed by two hex digits",
        )
    };
    if malformed {
        return Err(invalid());
    }
    percent_decode_str(s).decode_utf8().map(|c| c.into_owned()).map_err(|_| invalid())
}

/// The hint for a URL whose parts did not land where they belong, which is
/// what an unencoded reserved character in a password does.
const URL_RESERVED_HINT: &str = "if the user name or password holds '/', '@', ':', '?' or '#', percent-encode it (%2F, %40, %3A, %3F, %23), or pass the password in PGPASSWORD or ~/.pgpass";

fn parse_url(url: &str) -> Result<BTreeMap<String, String>> {
    let mut params = BTreeMap::new();
    let rest = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
    let (rest, query) = match rest.split_once('?') {
        Some((r, q)) => (r, Some(q)),
        None => (rest, None),
    };
    let (authority, path) = match rest.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (rest, None),
    };
    if !authority.contains('@') && path.is_some_and(|p| p.contains('@')) {
        // `postgresql://app:se/cret@host/db`: the password's `/` ended the
        // authority early. Said without echoing any of it.
        return Err(Error::usage_hint(
            "the connection URL has an '@' after the host part: the user name or password holds an unencoded '/'",
            URL_RESERVED_HINT,
        ));
    }
    let hostport = match authority.rsplit_once('@') {
        Some((userinfo, hp)) => {
            let (user, password) = match userinfo.split_once(':') {
                Some((u, p)) => (u, Some(p)),
                None => (userinfo, None),
            };
            if !user.is_empty() {
                params.insert("user".into(), decode(user, "user")?);
            }
            if let Some(p) = password {
                params.insert("password".into(), decode(p, "password")?);
            }
            hp
        }
        None => authority,
    };
    if hostport.contains(',') {
        return Err(Error::usage("connection URLs with several hosts are not supported"));
    }
    let (host, port) = if let Some(inner) = hostport.strip_prefix('[') {
        let (h, after) = inner
            .split_once(']')
            .ok_or_else(|| Error::usage("invalid IPv6 host in connection URL: missing \"]\""))?;
        (h.to_string(), after.strip_prefix(':').map(str::to_string))
    } else {
        match hostport.rsplit_once(':') {
            Some((h, p)) => (decode(h, "host")?, Some(p.to_string())),
            None => (decode(hostport, "host")?, None),
        }
    };
    if !host.is_empty() {
        params.insert("host".into(), host);
    }
    if let Some(p) = port.filter(|p| !p.is_empty()) {
        if !p.bytes().all(|b| b.is_ascii_digit()) {
            // Without an '@', `app:secret` reads as host `app`, port `secret`:
            // the text after ':' may be a password, so it is not shown.
            return Err(Error::usage_hint(
                "invalid port number in the connection URL (not shown: it may be a password)",
                URL_RESERVED_HINT,
            ));
        }
        params.insert("port".into(), p);
    }
    if let Some(db) = path.filter(|p| !p.is_empty()) {
        params.insert("dbname".into(), decode(db, "database")?);
    }
    if let Some(q) = query {
        for pair in q.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').ok_or_else(|| {
                Error::usage(format!("invalid URL query parameter \"{}\": missing \"=\"", pair))
            })?;
            params.insert(decode(k, "parameter")?, decode(v, "parameter")?);
        }
    }
    Ok(params)
}

/// The settings of `service` from the per-user service file (`PGSERVICEFILE`,
/// default `~/.pg_service.conf`), else the system one (`PGSYSCONFDIR`,
/// default `/etc/postgresql-common`, `pg_service.conf`): INI sections of
/// `key=value` lines, as libpq reads them.
///
/// # Errors
/// A usage error when no file defines the service.
pub(crate) fn service_params(service: &str, env: Env<'_>) -> Result<BTreeMap<String, String>> {
    let user_file = env("PGSERVICEFILE")
        .map(PathBuf::from)
        .or_else(|| env("HOME").map(|h| Path::new(&h).join(".pg_service.conf")));
    let system_file =
        Path::new(&env("PGSYSCONFDIR").unwrap_or_else(|| "/etc/postgresql-common".into()))
            .join("pg_service.conf");
    for file in user_file.into_iter().chain([system_file]) {
        let Ok(text) = std::fs::read_to_string(&file) else { continue };
        if let Some(pairs) = crate::format::ini::ini_section(&text, service) {
            let mut params: BTreeMap<String, String> = pairs.into_iter().collect();
            params.remove("service");
            if let Some(k) = params.keys().find(|k| !KEYWORDS.contains(&k.as_str())) {
                return Err(Error::usage(format!(
                    "{}: service \"{service}\" sets unknown option \"{k}\"",
                    file.display()
                )));
            }
            return Ok(params);
        }
    }
    Err(Error::usage_hint(
        format!("definition of service \"{service}\" not found"),
        "define it in ~/.pg_service.conf (or the file PGSERVICEFILE names) as [name] followed by key=value lines",
    ))
}

fn parse_keywords(s: &str) -> Result<BTreeMap<String, String>> {
    let mut params = BTreeMap::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.peek().is_none() {
            break;
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c.is_whitespace() {
                break;
            }
            key.push(c);
            chars.next();
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.next() != Some('=') {
            return Err(Error::usage(format!(
                "missing \"=\" after \"{key}\" in connection string"
            )));
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let mut value = String::new();
        if chars.peek() == Some(&'\'') {
            chars.next();
            let mut closed = false;
            while let Some(c) = chars.next() {
                match c {
                    '\\' => {
                        if let Some(n) = chars.next() {
                            value.push(n);
                        }
                    }
                    '\'' => {
                        closed = true;
                        break;
                    }
                    c => value.push(c),
                }
            }
            if !closed {
                return Err(Error::usage("unterminated quoted string in connection string"));
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                chars.next();
                if c == '\\' {
                    if let Some(n) = chars.next() {
                        value.push(n);
                    }
                } else {
                    value.push(c);
                }
            }
        }
        params.insert(key, value);
    }
    Ok(params)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_url_with_socket_host_and_params() {
        let p = parse_conn_string(
            "postgresql://app%40x:pa%3Ass@%2Ftmp%2Fsock:5433/my%20db?sslmode=verify-full&sslrootcert=ca.pem",
        )
        .unwrap();
        assert_eq!(p["user"], "app@x");
        assert_eq!(p["password"], "pa:ss");
        assert_eq!(p["host"], "/tmp/sock");
        assert_eq!(p["port"], "5433");
        assert_eq!(p["dbname"], "my db");
        assert_eq!(p["sslmode"], "verify-full");
        assert_eq!(p["sslrootcert"], "ca.pem");
    }

    #[test]
    fn parses_ipv6_url() {
        let p = parse_conn_string("postgres://u@[::1]:6000/d").unwrap();
        assert_eq!(p["host"], "::1");
        assert_eq!(p["port"], "6000");
    }

    #[test]
    fn parses_keywords_with_quotes_and_escapes() {
        let p =
            parse_conn_string(r"host=/tmp port = 5432 dbname='my db' password='it\'s' user=a\ b")
                .unwrap();
        assert_eq!(p["host"], "/tmp");
        assert_eq!(p["port"], "5432");
        assert_eq!(p["dbname"], "my db");
        assert_eq!(p["password"], "it's");
        assert_eq!(p["user"], "a b");
    }

    #[test]
    fn bare_word_is_dbname() {
        let p = parse_conn_string("appdb").unwrap();
        assert_eq!(p["dbname"], "appdb");
    }

    #[test]
    fn rejects_unknown_keyword_and_bad_quotes() {
        assert!(parse_conn_string("hots=x").is_err());
        assert!(parse_conn_string("host='x").is_err());
        assert!(parse_conn_string("host").is_ok()); // a database named host
    }

    #[test]
    fn url_with_unencoded_password_never_echoes_it() {
        for url in [
            "postgresql://app:secret/x@host/db",
            "postgresql://app:secret/db",
            "postgresql://app:secret",
            "postgresql://app:sec%zzret@host/db",
        ] {
            let err = parse_conn_string(url).unwrap_err();
            let text = crate::error::render(&err);
            assert_eq!(err.class(), crate::error::Class::Usage, "{url}: {text}");
            for part in ["secret", "sec", "ret", "x@host"] {
                assert!(!text.contains(part), "{url} echoes {part}: {text}");
            }
        }
    }

    #[test]
    fn malformed_percent_escape_is_bad_usage() {
        for url in
            ["postgresql://h%zz/db", "postgresql://u@host/d%2", "postgresql://u@h/db?sslmode=%q1"]
        {
            let err = parse_conn_string(url).unwrap_err();
            assert_eq!(err.class(), crate::error::Class::Usage, "{url}: {err}");
            assert!(err.to_string().contains("percent-encoding"), "{url}: {err}");
        }
        let ok = parse_conn_string("postgresql://u:p%2Fw%40d@h/db%25x").unwrap();
        assert_eq!((ok["password"].as_str(), ok["dbname"].as_str()), ("p/w@d", "db%x"));
    }
}
