//! The libpq password file (`PGPASSFILE`, default `~/.pgpass`): a password
//! looked up by host, port, database and user, with libpq's matching rules.

use std::path::Path;

use crate::conn::conninfo::DEFAULT_SOCKET_DIR;

/// Looks the password up in a libpq password file (`hostname:port:database:username:password`).
///
/// libpq's rules: `*` matches any value, `\` escapes `:` and `\`, the first
/// matching line wins, and a file readable by group or others is ignored with a
/// warning. `localhost` matches a connection through the default socket directory.
pub fn password_from_file(
    path: &Path,
    host: &str,
    port: u16,
    dbname: &str,
    user: &str,
) -> Option<String> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).ok()?;
    if !meta.is_file() {
        eprintln!("WARNING: password file \"{}\" is not a plain file", path.display());
        return None;
    }
    if meta.permissions().mode() & 0o077 != 0 {
        eprintln!(
            "WARNING: password file \"{}\" has group or world access; permissions should be u=rw (0600) or less",
            path.display()
        );
        return None;
    }
    let text = std::fs::read_to_string(path).ok()?;
    let match_host = if host == DEFAULT_SOCKET_DIR { "localhost" } else { host };
    let port = port.to_string();
    for line in text.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let fields = split_pgpass_line(line);
        if fields.len() < 5 {
            continue;
        }
        let matches = |field: &(String, bool), value: &str| field.1 || field.0 == value;
        if matches(&fields[0], match_host)
            && matches(&fields[1], &port)
            && matches(&fields[2], dbname)
            && matches(&fields[3], user)
        {
            return Some(fields[4].0.clone());
        }
    }
    None
}

/// Splits a password-file line into four fields and the password, unescaping
/// `\:` and `\\`. Each field comes with whether it is the `*` wildcard.
fn split_pgpass_line(line: &str) -> Vec<(String, bool)> {
    let mut fields = Vec::with_capacity(5);
    let mut current = String::new();
    let mut is_star = true;
    let mut raw_len = 0;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if fields.len() == 4 {
            // The password is the rest of the line, with escapes removed.
            if c == '\\' {
                if let Some(n) = chars.next() {
                    current.push(n);
                }
            } else {
                current.push(c);
            }
            continue;
        }
        match c {
            '\\' => {
                if let Some(n) = chars.next() {
                    current.push(n);
                }
                is_star = false;
                raw_len += 2;
            }
            ':' => {
                let star = is_star && raw_len == 1 && current == "*";
                fields.push((std::mem::take(&mut current), star));
                is_star = true;
                raw_len = 0;
            }
            c => {
                current.push(c);
                raw_len += 1;
            }
        }
    }
    fields.push((current, false));
    fields
}
