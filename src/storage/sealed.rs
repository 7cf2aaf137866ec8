//! An encrypted backup's manifests. Everything describing the content
//! (table names, columns, counts, checksums of the CSV, fingerprints,
//! sequence values, the source) is in `manifest.age`: the whole manifest,
//! encrypted to the backup's recipients. What stays readable without a key
//! is `manifest.json`, a [`PublicManifest`]: that the backup is encrypted,
//! to which public keys, and each stored file's name, size and sha256
//! (`SHA256SUMS` says the same), so the files can be checked by anyone.
//!
//! This module reads and writes them; it never sees a key's secret.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::format::encryption::{Identities, OpenError, Recipients, seal_bytes};
use crate::storage::location::Location;
use crate::storage::manifest::{FORMAT_NAME, MANIFEST_FILE, Manifest, SUMS_FILE};

/// The encrypted full manifest.
pub const SEALED_MANIFEST_FILE: &str = "manifest.age";
/// A passphrase-protected backup's key: an age identity file encrypted with
/// the passphrase.
pub const PASSPHRASE_KEY_FILE: &str = "key.age";
/// The format version of an encrypted backup's manifests (older pgbarge
/// refuses it as newer, rather than misread it).
pub const ENCRYPTED_FORMAT_VERSION: u32 = 3;

/// How a backup is encrypted: age, to these public keys.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Encryption {
    pub method: String,
    pub recipients: Vec<String>,
    /// In passphrase mode, the file holding the backup's key, encrypted
    /// with the passphrase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub passphrase_key: Option<String>,
}

impl Encryption {
    pub fn age(recipients: &Recipients) -> Encryption {
        Encryption {
            method: "age".into(),
            recipients: recipients.public_keys(),
            passphrase_key: recipients.passphrase_key().map(|_| PASSPHRASE_KEY_FILE.into()),
        }
    }

    /// Who can open the backup, in words.
    pub fn openers(&self) -> String {
        match &self.passphrase_key {
            Some(_) => "a passphrase".into(),
            None => self.recipients.join(", "),
        }
    }
}

/// A file as stored: name relative to the backup, size and sha256 of its
/// (encrypted) bytes.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct StoredEntry {
    pub name: String,
    pub bytes: u64,
    pub sha256: String,
}

/// `manifest.json` of an encrypted backup: nothing about the content.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PublicManifest {
    pub format: String,
    pub format_version: u32,
    pub tool_version: String,
    pub finished_at: String,
    pub encryption: Encryption,
    /// Every file of the backup but `manifest.json` and `SHA256SUMS`:
    /// data files, schema files, `manifest.age`.
    pub files: Vec<StoredEntry>,
}

impl PublicManifest {
    /// The `SHA256SUMS` text of the stored files.
    pub fn sha256sums(&self) -> String {
        self.files.iter().map(|f| format!("{}  {}\n", f.sha256, f.name)).collect()
    }

    /// The listed files as name → entry.
    pub fn by_name(&self) -> BTreeMap<&str, &StoredEntry> {
        self.files.iter().map(|f| (f.name.as_str(), f)).collect()
    }

    /// The entries of `listing` that are not part of this backup.
    pub fn unlisted_files(&self, listing: &BTreeMap<String, u64>) -> Vec<String> {
        let listed = self.by_name();
        listing
            .keys()
            .filter(|n| {
                !matches!(n.as_str(), MANIFEST_FILE | SUMS_FILE)
                    && !n.ends_with('/')
                    && !listed.contains_key(n.as_str())
            })
            .map(|n| format!("{n}: not listed in {MANIFEST_FILE}"))
            .collect()
    }
}

/// A backup's manifest as read: a plain backup's, or an encrypted one's
/// readable part with the full manifest when a key opened it.
/// `opened`, when a key was given: the full manifest and what opens the
/// files (with a passphrase, the backup's own key too).
#[derive(Debug)]
pub enum Opened {
    Plain(Manifest),
    Sealed { public: Box<PublicManifest>, opened: Option<(Manifest, Identities)> },
}

impl Opened {
    /// The full manifest and the keys that open the files (`None` for a
    /// plain backup).
    ///
    /// # Errors
    /// A usage error (exit 2) naming what is needed, for an encrypted
    /// backup opened without a key.
    pub fn full(self, place: &Location) -> Result<(Manifest, Option<Identities>)> {
        match self {
            Opened::Plain(m) => Ok((m, None)),
            Opened::Sealed { opened: Some((m, keys)), .. } => Ok((m, Some(keys))),
            Opened::Sealed { public, opened: None } => Err(needs_key(place, &public)),
        }
    }
}

/// The error for an encrypted backup read without a key.
pub fn needs_key(place: &Location, public: &PublicManifest) -> Error {
    Error::usage_hint(
        format!(
            "{place} is encrypted (age, to {}): reading its content needs a secret key",
            public.encryption.openers()
        ),
        "pass --identity FILE (an age identity file or SSH private key of one of those recipients), or --encrypt-passphrase-file FILE / PGBARGE_PASSPHRASE for a passphrase",
    )
}

/// Writes an encrypted backup's manifests: `manifest.age`, then
/// `SHA256SUMS` of every stored file, then `manifest.json` last (its
/// presence still means the backup is complete). `schema`: the stored
/// schema files.
///
/// # Errors
/// I/O or store errors naming the file.
pub async fn write_sealed(
    manifest: &Manifest,
    location: &Location,
    recipients: &Recipients,
    schema: Vec<StoredEntry>,
) -> Result<()> {
    let sealed = seal_bytes(recipients, &manifest.to_json())
        .map_err(|e| Error::runtime(format!("cannot encrypt {SEALED_MANIFEST_FILE}: {e}")))?;
    let mut files: Vec<StoredEntry> = manifest
        .tables
        .iter()
        .map(|t| StoredEntry {
            name: t.file.clone(),
            bytes: t.file_bytes,
            sha256: t.file_sha256.clone(),
        })
        .collect();
    files.extend(schema);
    if let Some(key) = recipients.passphrase_key() {
        location.write(PASSPHRASE_KEY_FILE, key).await?;
        files.push(StoredEntry {
            name: PASSPHRASE_KEY_FILE.into(),
            bytes: key.len() as u64,
            sha256: crate::format::digest::sha256_hex(key),
        });
    }
    files.push(StoredEntry {
        name: SEALED_MANIFEST_FILE.into(),
        bytes: sealed.len() as u64,
        sha256: crate::format::digest::sha256_hex(&sealed),
    });
    let public = PublicManifest {
        format: FORMAT_NAME.into(),
        format_version: ENCRYPTED_FORMAT_VERSION,
        tool_version: manifest.tool_version.clone(),
        finished_at: manifest.finished_at.clone(),
        encryption: Encryption::age(recipients),
        files,
    };
    location.write(SEALED_MANIFEST_FILE, &sealed).await?;
    location.write(SUMS_FILE, public.sha256sums().as_bytes()).await?;
    let mut json = serde_json::to_vec_pretty(&public).expect("manifest serializes");
    json.push(b'\n');
    location.write(MANIFEST_FILE, &json).await
}

/// Parses an encrypted backup's `manifest.json` read from `shown`.
pub(crate) fn parse_public(text: &[u8], shown: &str) -> Result<PublicManifest> {
    let public: PublicManifest = serde_json::from_slice(text).map_err(|e| Error::Difference {
        msg: format!("{shown} does not have the expected fields: {e}"),
        hint: None,
    })?;
    for f in &public.files {
        let p = std::path::Path::new(&f.name);
        if !p.components().all(|c| matches!(c, std::path::Component::Normal(_))) {
            return Err(Error::difference(format!(
                "{shown} names a file outside the backup: {}",
                f.name
            )));
        }
    }
    Ok(public)
}

/// A small stored file, checked against what `manifest.json` records.
async fn read_listed(location: &Location, public: &PublicManifest, name: &str) -> Result<Vec<u8>> {
    let shown = location.path(name).display().to_string();
    let bytes = location.read(name).await?.ok_or_else(|| {
        Error::difference(format!("{shown}: missing; the content of the backup cannot be read"))
    })?;
    let sha = crate::format::digest::sha256_hex(&bytes);
    match public.by_name().get(name) {
        Some(want) if want.sha256 == sha && want.bytes == bytes.len() as u64 => Ok(bytes),
        Some(want) => Err(Error::difference(format!(
            "{shown}: sha256 is {sha} ({} bytes), {MANIFEST_FILE} records {} ({} bytes)",
            bytes.len(),
            want.sha256,
            want.bytes
        ))),
        None => Err(Error::difference(format!("{shown}: not listed in {MANIFEST_FILE}"))),
    }
}

/// Opens `manifest.age` with `keys` (first unlocking the backup's own key
/// with a passphrase, in passphrase mode), after checking each file read is
/// the one `manifest.json` records. Returns the keys that open the files.
///
/// # Errors
/// A difference (exit 1) when a file is missing, changed or fails age's
/// authentication; a usage error (exit 2) when no key opens it.
pub(crate) async fn open_sealed(
    location: &Location,
    public: &PublicManifest,
    keys: &Identities,
) -> Result<(Manifest, Identities)> {
    let mut keys = keys.clone();
    if let Some(name) = &public.encryption.passphrase_key
        && keys.has_passphrase()
    {
        let sealed = read_listed(location, public, name).await?;
        let shown = location.path(name).display().to_string();
        keys = keys.unlock(&sealed, name).map_err(|e| match e {
            OpenError::NoMatchingKey => Error::usage_hint(
                format!("the passphrase ({}) does not open {shown}", keys.sources().join(", ")),
                "give the passphrase the backup was taken with (--encrypt-passphrase-file FILE or PGBARGE_PASSPHRASE)",
            ),
            OpenError::Damaged(why) => Error::difference(format!("{shown}: does not decrypt: {why}")),
            OpenError::Io(io) => Error::io("cannot read", &shown, io),
        })?;
    }
    let shown = location.path(SEALED_MANIFEST_FILE).display().to_string();
    let bytes = read_listed(location, public, SEALED_MANIFEST_FILE).await?;
    let text = keys.open_bytes(&bytes).map_err(|e| match e {
        OpenError::NoMatchingKey => Error::usage_hint(
            format!(
                "none of the keys given ({}) opens {location}: it is encrypted to {}",
                keys.sources().join(", "),
                public.encryption.openers()
            ),
            "pass --identity with the secret key of one of those recipients (or the passphrase it was encrypted with)",
        ),
        OpenError::Damaged(why) => Error::difference(format!("{shown}: does not decrypt: {why}")),
        OpenError::Io(io) => Error::io("cannot read", &shown, io),
    })?;
    let manifest = Manifest::parse(&text, &format!("{shown} (decrypted)"))?;
    if manifest.encryption.is_none() {
        return Err(Error::difference(format!(
            "{shown} holds the manifest of an unencrypted backup"
        )));
    }
    Ok((manifest, keys))
}
