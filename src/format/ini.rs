//! The INI dialect both libpq's service files (`pg_service.conf`) and AWS's
//! shared files (`~/.aws/credentials`, `~/.aws/config`) are written in:
//! `[section]` headers followed by `key=value` lines. Lines are trimmed, as
//! are keys, values and section names; empty lines and lines starting with
//! `#` are skipped; a line without `=` is ignored.

/// The `key=value` pairs of section `name`, in file order (a key given twice
/// appears twice; the caller decides which wins). `None` when no section of
/// that name exists; `Some` and empty for a section with no keys. Sections
/// of one name given twice are read as one.
pub fn ini_section(text: &str, name: &str) -> Option<Vec<(String, String)>> {
    let mut inside = false;
    let mut found = false;
    let mut pairs = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(header) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            inside = header.trim() == name;
            found |= inside;
        } else if inside && let Some((k, v)) = line.split_once('=') {
            pairs.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    found.then_some(pairs)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "\
# comment
[prod]
host = db.example.com
port=5432

[profile staging]
region = eu-west-1
# key = skipped
not a pair
[empty]
[prod]
dbname=app
";

    fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn reads_one_section() {
        assert_eq!(
            ini_section(TEXT, "prod"),
            Some(pairs(&[("host", "db.example.com"), ("port", "5432"), ("dbname", "app")]))
        );
        assert_eq!(ini_section(TEXT, "profile staging"), Some(pairs(&[("region", "eu-west-1")])));
    }

    #[test]
    fn missing_and_empty_sections_differ() {
        assert_eq!(ini_section(TEXT, "empty"), Some(Vec::new()));
        assert_eq!(ini_section(TEXT, "staging"), None);
        assert_eq!(ini_section("", "prod"), None);
    }
}
