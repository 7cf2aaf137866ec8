//! Encryption of backup files as age files (age-encryption.org/v1), which
//! the standard `age` tool reads: the public keys a backup is encrypted to
//! ([`Recipients`]), the secret keys it is read with ([`Identities`]), and
//! the writer and reader stages that seal and open a stream of bytes.
//!
//! Encryption is a stage after compression: CSV → zstd frames → age → file.
//! age encrypts in 64 KiB chunks, each authenticated, so a stream of any
//! size is sealed and opened in bounded memory, and a changed or cut file
//! fails to open (age's authentication) rather than yield other data.
//!
//! No secret is ever formatted: [`Identities`] prints only where its keys
//! came from, and parse errors name a line number, never its text.

use std::io::{self, BufRead, Read, Write};
use std::sync::Arc;

use crate::error::{Error, Result};

/// The file name suffix of an encrypted file, after the compression's.
pub const SUFFIX: &str = ".age";

/// One public key a backup is encrypted to.
#[derive(Clone)]
pub enum Recipient {
    /// `age1...`
    X25519(age::x25519::Recipient),
    /// `ssh-ed25519 ...` or `ssh-rsa ...`
    Ssh(age::ssh::Recipient),
}

impl Recipient {
    /// Parses an `age1...` key or an `ssh-ed25519` / `ssh-rsa` public key
    /// (a trailing comment, as in `id_ed25519.pub`, is dropped).
    ///
    /// # Errors
    /// A usage error saying which forms are accepted.
    pub fn parse(text: &str) -> Result<Recipient> {
        let text = text.trim();
        let bad = |why: &str| {
            Error::usage_hint(
                format!("invalid recipient \"{text}\": {why}"),
                "give an age public key (age1...), an SSH public key (ssh-ed25519 ... or ssh-rsa ...), or @FILE with one per line",
            )
        };
        if text.starts_with("age1") {
            return text.parse().map(Recipient::X25519).map_err(|e: &str| bad(e));
        }
        if text.starts_with("ssh-") {
            // Key type and key; a comment after them is not part of the key.
            let key: Vec<&str> = text.split_whitespace().take(2).collect();
            return key.join(" ").parse().map(Recipient::Ssh).map_err(|e| bad(&format!("{e:?}")));
        }
        Err(bad("not an age or SSH public key"))
    }

    fn as_age(&self) -> &dyn age::Recipient {
        match self {
            Recipient::X25519(r) => r,
            Recipient::Ssh(r) => r,
        }
    }
}

impl std::fmt::Debug for Recipient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Recipient({self})")
    }
}

impl std::fmt::Display for Recipient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Recipient::X25519(r) => write!(f, "{r}"),
            Recipient::Ssh(r) => write!(f, "{r}"),
        }
    }
}

/// The public keys every file of a backup is encrypted to; any one of
/// their secret keys opens every file. In passphrase mode the one recipient
/// is a key made for the backup, kept in the backup as an identity file
/// sealed with the passphrase (see [`Recipients::for_passphrase`]).
#[derive(Clone)]
pub struct Recipients(Arc<Vec<Recipient>>, Option<Arc<Vec<u8>>>);

impl std::fmt::Debug for Recipients {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.public_keys()).finish()
    }
}

impl Recipients {
    /// # Errors
    /// A usage error when there is none.
    pub fn new(recipients: Vec<Recipient>) -> Result<Recipients> {
        if recipients.is_empty() {
            return Err(Error::usage("--encrypt-to names no recipient"));
        }
        Ok(Recipients(Arc::new(recipients), None))
    }

    /// Passphrase mode: a fresh x25519 key for one backup, every file
    /// encrypted to it, and its identity file sealed with `passphrase`
    /// (age's scrypt passphrase encryption, about a second of work, once per
    /// backup rather than once per file). `age -d -i key.age FILE` opens any
    /// file of the backup after asking for the passphrase.
    ///
    /// # Errors
    /// A usage error for an empty passphrase.
    pub fn for_passphrase(passphrase: &str, source: &str) -> Result<Recipients> {
        use age::secrecy::ExposeSecret;
        let pass = passphrase.lines().next().unwrap_or_default();
        if pass.is_empty() {
            return Err(Error::usage(format!("{source} holds an empty passphrase")));
        }
        let key = age::x25519::Identity::generate();
        let file = format!("# pgbarge backup key\n{}\n", key.to_string().expose_secret());
        let encryptor = age::Encryptor::with_user_passphrase(pass.to_string().into());
        let sealed = (|| {
            let mut w = encryptor.wrap_output(Vec::new())?;
            w.write_all(file.as_bytes())?;
            w.finish()
        })()
        .map_err(|e| Error::runtime(format!("cannot encrypt the backup key: {e}")))?;
        Ok(Recipients(Arc::new(vec![Recipient::X25519(key.to_public())]), Some(Arc::new(sealed))))
    }

    /// In passphrase mode, the backup's key sealed with the passphrase.
    pub fn passphrase_key(&self) -> Option<&[u8]> {
        self.1.as_deref().map(Vec::as_slice)
    }

    /// The recipients of a recipients file: one per line, blank lines and
    /// lines starting with `#` skipped (age's `-R` format).
    ///
    /// # Errors
    /// A usage error naming `source` and the line.
    pub fn parse_lines(text: &str, source: &str) -> Result<Vec<Recipient>> {
        text.lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
            .map(|(n, l)| {
                Recipient::parse(l).map_err(|e| e.context(format!("{source} line {}", n + 1)))
            })
            .collect()
    }

    /// The public keys as text, as `age -r` takes them.
    pub fn public_keys(&self) -> Vec<String> {
        self.0.iter().map(ToString::to_string).collect()
    }

    /// Starts an age file to these recipients on `output` (a fresh file key
    /// each time). Must call [`Sealer::finish`].
    ///
    /// # Errors
    /// The header cannot be written.
    pub fn seal<W: Write>(&self, output: W) -> io::Result<Sealer<W>> {
        let encryptor = age::Encryptor::with_recipients(self.0.iter().map(Recipient::as_age))
            .map_err(|e| io::Error::other(format!("cannot encrypt: {e}")))?;
        Ok(Sealer::Age(encryptor.wrap_output(output)?))
    }
}

/// A writer that encrypts what goes through it, or passes it on unchanged.
/// Nothing is finished on drop: without [`Sealer::finish`] an age file
/// lacks its last chunk and never opens, so an error cannot leave a file
/// that looks whole.
pub enum Sealer<W: Write> {
    Plain(W),
    Age(age::stream::StreamWriter<W>),
}

impl<W: Write> Sealer<W> {
    /// Encrypts to `recipients`, or passes bytes through when `None`.
    ///
    /// # Errors
    /// The age header cannot be written.
    pub fn new(output: W, recipients: Option<&Recipients>) -> io::Result<Sealer<W>> {
        match recipients {
            Some(r) => r.seal(output),
            None => Ok(Sealer::Plain(output)),
        }
    }

    /// Writes the last chunk and returns the writer.
    ///
    /// # Errors
    /// The writer's error.
    pub fn finish(self) -> io::Result<W> {
        match self {
            Sealer::Plain(w) => Ok(w),
            Sealer::Age(w) => w.finish(),
        }
    }
}

impl<W: Write> Write for Sealer<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Sealer::Plain(w) => w.write(buf),
            Sealer::Age(w) => w.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Sealer::Plain(w) => w.flush(),
            Sealer::Age(w) => w.flush(),
        }
    }
}

/// A small file sealed whole in memory (the manifest, a schema section).
///
/// # Errors
/// age's error.
pub fn seal_bytes(recipients: &Recipients, data: &[u8]) -> io::Result<Vec<u8>> {
    let mut sealer = recipients.seal(Vec::with_capacity(data.len() + 256))?;
    sealer.write_all(data)?;
    sealer.finish()
}

/// One secret key.
#[derive(Clone)]
enum Key {
    X25519(age::x25519::Identity),
    Ssh(age::ssh::Identity),
    Passphrase(age::secrecy::SecretString),
}

/// The secret keys a backup is read with: age identity files, unencrypted
/// SSH private keys, or a passphrase. `Debug` names where they came from,
/// never a key.
#[derive(Clone)]
pub struct Identities {
    keys: Arc<Vec<Key>>,
    sources: Vec<String>,
}

impl std::fmt::Debug for Identities {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Identities({} from {})", self.keys.len(), self.sources.join(", "))
    }
}

/// Why an age file did not open.
#[derive(Debug)]
pub enum OpenError {
    /// None of the keys is one the file was encrypted to.
    NoMatchingKey,
    /// Not an age file, or its header was changed.
    Damaged(String),
    /// Reading the file failed.
    Io(io::Error),
}

impl std::fmt::Display for OpenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OpenError::NoMatchingKey => f.write_str("none of the keys given opens it"),
            OpenError::Damaged(why) => f.write_str(why),
            OpenError::Io(e) => write!(f, "{e}"),
        }
    }
}

impl Identities {
    /// Keys read from files: `(text, source)` each, an age identity file
    /// (`AGE-SECRET-KEY-1...` lines, `#` comments) or an SSH private key
    /// (`-----BEGIN OPENSSH PRIVATE KEY-----`, not passphrase-protected).
    ///
    /// # Errors
    /// A usage error naming the file and the line, never its text.
    pub fn from_files(files: Vec<(Vec<u8>, String)>) -> Result<Identities> {
        let mut keys = Vec::new();
        let mut sources = Vec::new();
        for (text, source) in files {
            let before = keys.len();
            parse_key_file(&text, &source, &mut keys)?;
            if keys.len() == before {
                return Err(Error::usage(format!("{source} holds no age identity or SSH key")));
            }
            sources.push(source);
        }
        Ok(Identities { keys: Arc::new(keys), sources })
    }

    /// A passphrase (its first line), from `source` (a file, or the environment).
    ///
    /// # Errors
    /// A usage error for an empty passphrase.
    pub fn passphrase(text: &str, source: &str) -> Result<Identities> {
        let pass = text.lines().next().unwrap_or_default();
        if pass.is_empty() {
            return Err(Error::usage(format!("{source} holds an empty passphrase")));
        }
        Ok(Identities {
            keys: Arc::new(vec![Key::Passphrase(pass.to_string().into())]),
            sources: vec![source.to_string()],
        })
    }

    /// Where the keys came from, for messages.
    pub fn sources(&self) -> &[String] {
        &self.sources
    }

    /// Whether a passphrase is among the keys.
    pub fn has_passphrase(&self) -> bool {
        self.keys.iter().any(|k| matches!(k, Key::Passphrase(_)))
    }

    /// Opens a passphrase-protected backup's key file (`key.age`) with these
    /// keys and adds the key it holds.
    ///
    /// # Errors
    /// As [`Identities::open_bytes`]; a key file that holds no key is damaged.
    pub fn unlock(
        &self,
        sealed_key: &[u8],
        name: &str,
    ) -> std::result::Result<Identities, OpenError> {
        let text = self.open_bytes(sealed_key)?;
        let mut keys: Vec<Key> = self.keys.as_ref().clone();
        let before = keys.len();
        parse_key_file(&text, name, &mut keys)
            .map_err(|_| OpenError::Damaged(format!("{name} does not hold an age identity")))?;
        if keys.len() == before {
            return Err(OpenError::Damaged(format!("{name} does not hold an age identity")));
        }
        let mut sources = self.sources.clone();
        sources.push(name.to_string());
        Ok(Identities { keys: Arc::new(keys), sources })
    }

    /// Opens an age file read from `input`, returning its plaintext reader.
    ///
    /// # Errors
    /// No key matches, the header is not age's or was changed, or reading failed.
    pub fn open<R: Read>(&self, input: R) -> std::result::Result<impl Read + use<R>, OpenError> {
        let map = |e: age::DecryptError| match e {
            age::DecryptError::NoMatchingKeys => OpenError::NoMatchingKey,
            age::DecryptError::Io(io) if io.kind() != io::ErrorKind::UnexpectedEof => {
                OpenError::Io(io)
            }
            other => OpenError::Damaged(other.to_string()),
        };
        let decryptor = age::Decryptor::new(input).map_err(map)?;
        let scrypt: Vec<age::scrypt::Identity> = self
            .keys
            .iter()
            .filter_map(|k| match k {
                Key::Passphrase(p) => Some(age::scrypt::Identity::new(p.clone())),
                _ => None,
            })
            .collect();
        let mut ids: Vec<&dyn age::Identity> = Vec::new();
        for k in self.keys.iter() {
            match k {
                Key::X25519(i) => ids.push(i),
                Key::Ssh(i) => ids.push(i),
                Key::Passphrase(_) => {}
            }
        }
        ids.extend(scrypt.iter().map(|i| i as &dyn age::Identity));
        // A wrong passphrase fails to unwrap the file key: no key matches.
        decryptor.decrypt(ids.into_iter()).map_err(|e| match e {
            age::DecryptError::DecryptionFailed => OpenError::NoMatchingKey,
            e => map(e),
        })
    }

    /// A small sealed file opened whole.
    ///
    /// # Errors
    /// As [`Identities::open`]; a damaged chunk is [`OpenError::Damaged`].
    pub fn open_bytes(&self, data: &[u8]) -> std::result::Result<Vec<u8>, OpenError> {
        let mut out = Vec::new();
        self.open(data)?
            .read_to_end(&mut out)
            .map_err(|e| OpenError::Damaged(format!("{e} (age's authentication failed)")))?;
        Ok(out)
    }
}

/// Adds the keys of one file to `keys`.
fn parse_key_file(text: &[u8], source: &str, keys: &mut Vec<Key>) -> Result<()> {
    let s = std::str::from_utf8(text)
        .map_err(|_| Error::usage(format!("{source} is not a text key file")))?;
    if s.trim_start().starts_with("-----BEGIN") {
        let id = age::ssh::Identity::from_buffer(io::BufReader::new(text), Some(source.into()))
            .map_err(|_| Error::usage(format!("{source}: not an SSH private key age can use")))?;
        return match id {
            age::ssh::Identity::Unencrypted(_) => {
                keys.push(Key::Ssh(id));
                Ok(())
            }
            age::ssh::Identity::Encrypted(_) => Err(Error::usage_hint(
                format!("{source} is a passphrase-protected SSH key"),
                "use an unprotected copy of the key, or an age identity file (age-keygen)",
            )),
            age::ssh::Identity::Unsupported(_) => {
                Err(Error::usage(format!("{source}: this kind of SSH key is not supported by age")))
            }
        };
    }
    for (n, line) in io::BufReader::new(text).lines().enumerate() {
        let line = line.map_err(|e| Error::io("cannot read", source, e))?;
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let key = line.parse::<age::x25519::Identity>().map_err(|_| {
            Error::usage_hint(
                format!("{source} line {}: not an age identity (AGE-SECRET-KEY-1...)", n + 1),
                "--identity takes a file written by age-keygen, or an SSH private key",
            )
        })?;
        keys.push(Key::X25519(key));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use age::secrecy::ExposeSecret;

    fn pair() -> (age::x25519::Identity, Recipients) {
        let id = age::x25519::Identity::generate();
        let r = Recipients::new(vec![Recipient::X25519(id.to_public())]).unwrap();
        (id, r)
    }

    fn identities(id: &age::x25519::Identity) -> Identities {
        let text = format!("# a comment\n{}\n", id.to_string().expose_secret());
        Identities::from_files(vec![(text.into_bytes(), "key.txt".into())]).unwrap()
    }

    #[test]
    fn sealed_streams_open_with_the_key_only() {
        let (id, r) = pair();
        let data: Vec<u8> = (0..200_000u32).flat_map(|i| i.to_le_bytes()).collect();
        let mut s = Sealer::new(Vec::new(), Some(&r)).unwrap();
        for piece in data.chunks(7777) {
            s.write_all(piece).unwrap();
        }
        let sealed = s.finish().unwrap();
        assert_eq!(identities(&id).open_bytes(&sealed).unwrap(), data);
        let other = identities(&age::x25519::Identity::generate());
        assert!(matches!(other.open_bytes(&sealed), Err(OpenError::NoMatchingKey)));
    }

    #[test]
    fn a_changed_byte_fails_authentication() {
        let (id, r) = pair();
        let mut sealed = seal_bytes(&r, &[b'x'; 100_000]).unwrap();
        let n = sealed.len();
        sealed[n - 10] ^= 1;
        assert!(matches!(identities(&id).open_bytes(&sealed), Err(OpenError::Damaged(_))));
        let mut cut = seal_bytes(&r, &[b'x'; 100_000]).unwrap();
        cut.truncate(cut.len() - 1000);
        assert!(matches!(identities(&id).open_bytes(&cut), Err(OpenError::Damaged(_))));
        assert!(matches!(identities(&id).open_bytes(b"plain text"), Err(OpenError::Damaged(_))));
    }

    #[test]
    fn recipients_parse_and_print_as_given() {
        let (_, r) = pair();
        let key = r.public_keys()[0].clone();
        assert_eq!(Recipient::parse(&key).unwrap().to_string(), key);
        let ssh = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHsKLqeplhpW+uObz5dvMgjz1OxfM/XXUB+VHtZ6isGN alice@rust";
        assert_eq!(Recipient::parse(ssh).unwrap().to_string(), ssh.rsplit_once(' ').unwrap().0);
        let lines = format!("# team\n\n{key}\n{ssh}\n");
        assert_eq!(Recipients::parse_lines(&lines, "f").unwrap().len(), 2);
        assert!(Recipient::parse("age1nope").is_err());
        assert!(Recipient::parse("hunter2").is_err());
        let e = Recipients::parse_lines("x\n", "team.txt").unwrap_err();
        assert!(crate::error::render(&e).contains("team.txt line 1"), "{e}");
    }

    #[test]
    fn bad_key_files_never_show_their_text() {
        let e =
            Identities::from_files(vec![(b"AGE-SECRET-KEY-1SECRETSTUFF\n".to_vec(), "k".into())])
                .unwrap_err();
        let shown = crate::error::render(&e);
        assert!(shown.contains("k line 1") && !shown.contains("SECRETSTUFF"), "{shown}");
        assert!(Identities::from_files(vec![(b"# empty\n".to_vec(), "k".into())]).is_err());
        let (id, _) = pair();
        assert!(!format!("{:?}", identities(&id)).contains("AGE-SECRET"));
    }

    #[test]
    fn a_passphrase_unlocks_the_backup_key() {
        let r = Recipients::for_passphrase("correct horse\n", "f").unwrap();
        let sealed = seal_bytes(&r, b"id\n1\n").unwrap();
        let pass = Identities::passphrase("correct horse", "f").unwrap();
        assert!(matches!(pass.open_bytes(&sealed), Err(OpenError::NoMatchingKey)));
        let keys = pass.unlock(r.passphrase_key().unwrap(), "key.age").unwrap();
        assert_eq!(keys.open_bytes(&sealed).unwrap(), b"id\n1\n");
        let wrong = Identities::passphrase("wrong", "f").unwrap();
        assert!(matches!(
            wrong.unlock(r.passphrase_key().unwrap(), "key.age"),
            Err(OpenError::NoMatchingKey)
        ));
        assert!(Recipients::for_passphrase("\n", "f").is_err());
    }

    #[test]
    fn a_passphrase_opens_what_it_sealed() {
        let pass: age::secrecy::SecretString = "correct horse".to_string().into();
        let mut rec = age::scrypt::Recipient::new(pass);
        rec.set_work_factor(2);
        let enc =
            age::Encryptor::with_recipients(std::iter::once(&rec as &dyn age::Recipient)).unwrap();
        let mut w = enc.wrap_output(Vec::new()).unwrap();
        w.write_all(b"id\n1\n").unwrap();
        let sealed = w.finish().unwrap();
        let ids = Identities::passphrase("correct horse\n", "PGBARGE_PASSPHRASE").unwrap();
        assert_eq!(ids.open_bytes(&sealed).unwrap(), b"id\n1\n");
        let wrong = Identities::passphrase("wrong", "f").unwrap();
        assert!(wrong.open_bytes(&sealed).is_err());
    }
}
