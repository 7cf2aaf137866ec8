//! A process-wide list of secrets (passwords) that must never be printed.
//!
//! Connection strings already display without their password; this is the
//! second line of defence: every error report and log line passes through
//! [`redact`], which masks any registered secret that slipped into a message
//! (for example one echoed back inside a server error).

use std::sync::Mutex;

static SECRETS: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Registers a secret to be masked in everything pgbarge prints.
pub fn register(secret: &str) {
    // Very short secrets would mask ordinary words; they are still never
    // printed by construction, this list is only the safety net.
    if secret.len() < 4 {
        return;
    }
    let mut secrets = SECRETS.lock().unwrap_or_else(|p| p.into_inner());
    if !secrets.iter().any(|s| s == secret) {
        secrets.push(secret.to_string());
    }
}

/// Returns `text` with every registered secret replaced by `********`.
pub fn redact(text: &str) -> String {
    let secrets = SECRETS.lock().unwrap_or_else(|p| p.into_inner());
    let mut out = text.to_string();
    for s in secrets.iter() {
        if out.contains(s.as_str()) {
            out = out.replace(s.as_str(), "********");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_registered_secret() {
        register("s3cr3t-pass");
        assert_eq!(redact("password s3cr3t-pass here"), "password ******** here");
        assert_eq!(redact("nothing"), "nothing");
    }
}
