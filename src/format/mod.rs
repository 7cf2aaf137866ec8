//! Bytes only: the COPY CSV dialect's record counter, COPY's binary format,
//! sha256 and the fingerprint, zstd frames, the compression setting, age
//! encryption, and the INI files libpq's services and AWS's profiles are written in.
//!
//! Nothing here knows of tokio-postgres, tokio or clap (a test below holds
//! every file of this folder to that): each piece is a caller-driven state
//! machine, unit-tested and benchmarked alone.

pub mod binary;
pub mod compression;
pub mod csv;
pub mod csv_fields;
pub mod csv_to_binary;
pub mod csv_to_text;
pub mod digest;
pub mod encryption;
pub mod ini;
pub mod zstd_frames;

#[cfg(test)]
mod tests {
    /// The layer's promise, checked on its sources: a file of `src/format/`
    /// whose code (comments and its own tests aside) names one of these
    /// crates has taken on a higher layer's work.
    #[test]
    fn format_knows_no_driver_runtime_or_cli() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/format");
        let mut checked = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            let code = text.split("#[cfg(test)]").next().unwrap_or_default();
            let text: String = code
                .lines()
                .filter(|l| !l.trim_start().starts_with("//"))
                .collect::<Vec<_>>()
                .join("\n");
            for word in ["tokio_postgres", "tokio", "clap"] {
                let found = text.match_indices(word).any(|(i, _)| {
                    let before = text[..i].chars().next_back();
                    let after = text[i + word.len()..].chars().next();
                    let is_ident =
                        |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_');
                    !is_ident(before) && !is_ident(after)
                });
                assert!(!found, "{} mentions {word}", path.display());
            }
            checked += 1;
        }
        assert!(checked >= 5, "only {checked} files checked in {}", dir.display());
    }
}
