//! How data files are compressed: the `--compress` value, its file suffix and
//! its name in the manifest. The compressing itself is
//! [`super::zstd_frames`]'s.

use crate::error::{Error, Result};

/// How data files are compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case", tag = "method")]
pub enum Compression {
    None,
    Zstd { level: i32 },
}

impl Compression {
    /// Parses `zstd`, `zstd:LEVEL` or `none`.
    ///
    /// # Errors
    /// A usage error for anything else or a level outside 1..=19.
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "none" => Ok(Compression::None),
            "zstd" => Ok(Compression::default()),
            _ => {
                let level = s
                    .strip_prefix("zstd:")
                    .and_then(|l| l.parse::<i32>().ok())
                    .filter(|l| (1..=19).contains(l))
                    .ok_or_else(|| {
                        Error::usage_hint(
                            format!("invalid --compress value \"{s}\""),
                            "use zstd, zstd:LEVEL (1 to 19) or none",
                        )
                    })?;
                Ok(Compression::Zstd { level })
            }
        }
    }

    /// The file name suffix after `.csv`.
    pub fn suffix(self) -> &'static str {
        match self {
            Compression::None => "",
            Compression::Zstd { .. } => ".zst",
        }
    }
}

impl std::fmt::Display for Compression {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Compression::None => f.write_str("none"),
            Compression::Zstd { level } => write!(f, "zstd:{level}"),
        }
    }
}
