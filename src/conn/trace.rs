//! `-v/--verbose`: every SQL statement pgbarge sends, with its duration and
//! the connection it went to, on stderr. Secrets are masked: registered
//! passwords (see [`crate::redact`]) and the literal after `PASSWORD`.
//!
//! Sessions call [`traced`] around each statement; this module only decides
//! whether and how to print.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use crate::conn::conninfo::ConnInfo;

static VERBOSE: AtomicBool = AtomicBool::new(false);

/// Turns statement tracing on or off for the whole process.
pub fn set_verbose(on: bool) {
    VERBOSE.store(on, Ordering::Relaxed);
}

/// Whether statements are traced.
pub fn is_verbose() -> bool {
    VERBOSE.load(Ordering::Relaxed)
}

/// Awaits `fut`, the request sending `sql` to `info`, and prints the
/// statement with its duration when verbose (also when it fails).
pub async fn traced<F: Future>(info: &ConnInfo, sql: &str, fut: F) -> F::Output {
    if !is_verbose() {
        return fut.await;
    }
    let started = Instant::now();
    let out = fut.await;
    eprintln!("{}", line(info, sql, started.elapsed().as_secs_f64() * 1000.0));
    out
}

/// `-- 1.234 ms postgresql://user@host:port/db: SELECT ...`, whitespace
/// runs folded so each statement is one line.
fn line(info: &ConnInfo, sql: &str, ms: f64) -> String {
    let folded = sql.split_whitespace().collect::<Vec<_>>().join(" ");
    format!("-- {ms:.3} ms {info}: {}", mask_sql(&crate::redact::redact(&folded)))
}

/// Masks the quoted literal after each `PASSWORD` keyword outside quotes
/// (`CREATE ROLE ... PASSWORD '...'`, `ALTER USER ... WITH PASSWORD '...'`).
pub fn mask_sql(sql: &str) -> String {
    let bytes = sql.as_bytes();
    let is_word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let mut out = String::with_capacity(sql.len());
    let (mut i, mut copied, mut in_quote) = (0, 0, false);
    while i < bytes.len() {
        if bytes[i] == b'\'' {
            // A doubled quote toggles twice: still inside.
            in_quote = !in_quote;
            i += 1;
            continue;
        }
        let is_keyword = !in_quote
            && (i == 0 || !is_word(bytes[i - 1]))
            && bytes.len() >= i + 8
            && bytes[i..i + 8].eq_ignore_ascii_case(b"password")
            && bytes.get(i + 8).is_none_or(|&c| !is_word(c));
        if !is_keyword {
            i += 1;
            continue;
        }
        let mut j = i + 8;
        while j < bytes.len() && bytes[j].is_ascii_whitespace() {
            j += 1;
        }
        if bytes.get(j) != Some(&b'\'') {
            i = j;
            continue;
        }
        // The literal ends at a quote not doubled.
        let mut k = j + 1;
        while k < bytes.len() {
            if bytes[k] == b'\'' {
                if bytes.get(k + 1) == Some(&b'\'') {
                    k += 2;
                    continue;
                }
                break;
            }
            k += 1;
        }
        out.push_str(&sql[copied..j]);
        out.push_str("'********'");
        i = (k + 1).min(bytes.len());
        copied = i;
    }
    out.push_str(&sql[copied..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_literals_are_masked() {
        assert_eq!(
            mask_sql("CREATE ROLE a LOGIN PASSWORD 'it''s secret' VALID UNTIL 'x'"),
            "CREATE ROLE a LOGIN PASSWORD '********' VALID UNTIL 'x'"
        );
        assert_eq!(
            mask_sql("alter user b with password  'p'"),
            "alter user b with password  '********'"
        );
        assert_eq!(mask_sql("SELECT password_encryption"), "SELECT password_encryption");
        assert_eq!(mask_sql("PASSWORD '"), "PASSWORD '********'");
        // Inside a literal, or part of a longer word, it is no keyword.
        let quoted = "SELECT 'a PASSWORD ''x''' AS password, set_password('y')";
        assert_eq!(mask_sql(quoted), quoted);
    }
}
