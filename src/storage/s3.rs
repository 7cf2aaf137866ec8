//! The S3 side of a backup's [`Location`]: `s3://bucket/prefix` in any
//! S3-compatible store. Small files are one GET or PUT; data files stream as a
//! multipart upload ([`S3Upload`]) or a download ([`S3Download`]), each on its
//! reader or writer thread's own runtime.
//!
//! S3 settings come from the usual environment (`AWS_ENDPOINT_URL`,
//! `AWS_REGION`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
//! `AWS_SESSION_TOKEN`; `AWS_PROFILE` through `~/.aws/credentials`). Secrets
//! are registered with [`crate::redact`], so no message can carry them.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::path::Path as Key;
use object_store::{ClientOptions, MultipartUpload, ObjectStore, PutPayload, RetryConfig};

use crate::error::{Error, Result};
use crate::storage::location::Location;
use crate::storage::sink::Destination;

/// Bytes gathered before a part is uploaded (S3 needs 5 MiB but for the last).
const PART_SIZE: usize = 8 * 1024 * 1024;

/// `s3://bucket/prefix`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Place {
    pub bucket: String,
    /// Without leading or trailing slashes; may be empty.
    pub prefix: String,
}

impl S3Place {
    /// A small file's bytes; `None` when it is not there.
    pub(crate) async fn read(&self, name: &str) -> Result<Option<Vec<u8>>> {
        let store = self.store()?;
        match store.get(&self.key(name)).await {
            Ok(r) => {
                Ok(Some(r.bytes().await.map_err(|e| self.error("cannot read", name, e))?.to_vec()))
            }
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.error("cannot read", name, e)),
        }
    }

    /// Writes a small file whole, in one PUT.
    pub(crate) async fn write(&self, name: &str, bytes: &[u8]) -> Result<()> {
        let store = self.store()?;
        store
            .put(&self.key(name), PutPayload::from(bytes.to_vec()))
            .await
            .map(|_| ())
            .map_err(|e| self.error("cannot upload", name, e))
    }

    /// Appends every object under the prefix to `out`, as (name relative to
    /// the prefix, size), unsorted.
    pub(crate) async fn list(&self, out: &mut Vec<(String, u64)>) -> Result<()> {
        let store = self.store()?;
        let prefix = (!self.prefix.is_empty()).then(|| Key::from(self.prefix.as_str()));
        let mut objects = store.list(prefix.as_ref());
        while let Some(o) = objects.next().await {
            let o = o.map_err(|e| self.error("cannot list", "", e))?;
            let full = o.location.to_string();
            let rel = if self.prefix.is_empty() {
                full
            } else {
                full.strip_prefix(&format!("{}/", self.prefix)).unwrap_or(&full).to_string()
            };
            out.push((rel, o.size));
        }
        Ok(())
    }

    /// Deletes objects; missing ones are fine.
    pub(crate) async fn delete(&self, names: &[String]) -> Result<()> {
        let store = self.store()?;
        for n in names {
            match store.delete(&self.key(n)).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(self.error("cannot delete", n, e)),
            }
        }
        Ok(())
    }

    fn key(&self, name: &str) -> Key {
        if self.prefix.is_empty() {
            Key::from(name)
        } else {
            Key::from(format!("{}/{name}", self.prefix))
        }
    }

    /// A client for this bucket, configured from the environment. Made on
    /// the runtime that will use it, since its connections live there.
    ///
    /// # Errors
    /// A usage error when the configuration is incomplete.
    pub fn store(&self) -> Result<Arc<dyn ObjectStore>> {
        let mut b = AmazonS3Builder::from_env().with_bucket_name(&self.bucket);
        if let Some(profile) = std::env::var("AWS_PROFILE").ok().filter(|p| !p.is_empty()) {
            b = with_profile(b, &profile)?;
        }
        for var in ["AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"] {
            if let Ok(v) = std::env::var(var) {
                crate::redact::register(&v);
            }
        }
        let endpoint = std::env::var("AWS_ENDPOINT_URL").or_else(|_| std::env::var("AWS_ENDPOINT"));
        if let Ok(e) = &endpoint {
            b = b.with_endpoint(e);
        }
        // Fail fast on an unreachable or wrong endpoint instead of retrying
        // for minutes; bounded retries still cover a passing hiccup.
        let retry = RetryConfig {
            max_retries: 2,
            retry_timeout: Duration::from_secs(15),
            ..RetryConfig::default()
        };
        let options = ClientOptions::new()
            .with_allow_http(endpoint.as_deref().is_ok_and(|e| e.starts_with("http://")))
            .with_connect_timeout(Duration::from_secs(10))
            .with_timeout(Duration::from_secs(300));
        let store = b.with_retry(retry).with_client_options(options).build().map_err(|e| {
            Error::usage_hint(
                format!("cannot use s3://{}: {}", self.bucket, clean(&e)),
                "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE), AWS_REGION, and AWS_ENDPOINT_URL for a store other than AWS",
            )
        })?;
        Ok(Arc::new(store))
    }

    fn error(&self, what: &str, name: &str, e: object_store::Error) -> Error {
        let place = Location::S3(self.clone());
        let target = if name.is_empty() { place.to_string() } else { format!("{place}/{name}") };
        // object_store folds most S3 answers into one generic error; the
        // S3 error code in its text says what to do.
        let text = e.to_string();
        let hint = if matches!(
            e,
            object_store::Error::PermissionDenied { .. }
                | object_store::Error::Unauthenticated { .. }
        ) || [
            "SignatureDoesNotMatch",
            "InvalidAccessKeyId",
            "AccessDenied",
            "403 Forbidden",
        ]
        .iter()
        .any(|c| text.contains(c))
        {
            "the store refused the credentials: check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE)"
        } else if text.contains("NoSuchBucket") {
            "the bucket does not exist: check its name, or create it first"
        } else if text.contains("error sending request") || text.contains("connect") {
            "the store cannot be reached: check AWS_ENDPOINT_URL (and the network)"
        } else {
            "check AWS_ENDPOINT_URL and AWS_REGION, the bucket's name, and the credentials"
        };
        Error::Runtime { msg: format!("{what} {target}: {}", clean(&e)), hint: Some(hint.into()) }
    }
}

/// The error's words, secrets masked.
fn clean(e: &dyn std::fmt::Display) -> String {
    crate::redact::redact(&e.to_string())
}

/// `AWS_PROFILE`'s keys and region from `~/.aws/credentials` and `~/.aws/config`.
fn with_profile(mut b: AmazonS3Builder, profile: &str) -> Result<AmazonS3Builder> {
    let home = std::env::var("HOME").unwrap_or_default();
    let creds = std::env::var("AWS_SHARED_CREDENTIALS_FILE")
        .unwrap_or_else(|_| format!("{home}/.aws/credentials"));
    let config = std::env::var("AWS_CONFIG_FILE").unwrap_or_else(|_| format!("{home}/.aws/config"));
    let section = |file: &str, name: &str| -> Vec<(String, String)> {
        let Ok(text) = std::fs::read_to_string(file) else { return Vec::new() };
        crate::format::ini::ini_section(&text, name).unwrap_or_default()
    };
    let keys = section(&creds, profile);
    if keys.is_empty() {
        return Err(Error::usage(format!("AWS_PROFILE={profile}: no such profile in {creds}")));
    }
    let config_name =
        if profile == "default" { "default".to_string() } else { format!("profile {profile}") };
    for (k, v) in keys.into_iter().chain(section(&config, &config_name)) {
        b = match k.as_str() {
            "aws_access_key_id" => b.with_access_key_id(v),
            "aws_secret_access_key" => {
                crate::redact::register(&v);
                b.with_secret_access_key(v)
            }
            "aws_session_token" => {
                crate::redact::register(&v);
                b.with_token(v)
            }
            "region" if std::env::var("AWS_REGION").is_err() => b.with_region(v),
            _ => b,
        };
    }
    Ok(b)
}

/// A current-thread runtime for a reader or writer thread's store calls.
fn thread_runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::runtime(format!("cannot start a runtime: {e}")))
}

/// A streamed multipart upload: parts of [`PART_SIZE`] are uploaded as they
/// fill, so memory stays bounded; [`Destination::commit`] completes it, and
/// dropping it first aborts it, so no half-written object remains.
pub(crate) struct S3Upload {
    rt: tokio::runtime::Runtime,
    upload: Option<Box<dyn MultipartUpload>>,
    buf: Vec<u8>,
    place: S3Place,
    name: String,
}

impl S3Upload {
    pub(crate) fn start(place: S3Place, name: &str) -> Result<S3Upload> {
        let rt = thread_runtime()?;
        let store = rt.block_on(async { place.store() })?;
        let upload = rt
            .block_on(store.put_multipart(&place.key(name)))
            .map_err(|e| place.error("cannot start uploading", name, e))?;
        Ok(S3Upload {
            rt,
            upload: Some(upload),
            buf: Vec::with_capacity(PART_SIZE),
            place,
            name: name.into(),
        })
    }

    fn send_part(&mut self) -> std::io::Result<()> {
        let part = std::mem::replace(&mut self.buf, Vec::with_capacity(PART_SIZE));
        let upload = self.upload.as_mut().expect("upload open");
        let fut = upload.put_part(PutPayload::from(part));
        self.rt.block_on(fut).map_err(|e| {
            std::io::Error::other(crate::error::render(&self.place.error(
                "cannot upload",
                &self.name,
                e,
            )))
        })
    }
}

impl Write for S3Upload {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        let n = data.len().min(PART_SIZE - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == PART_SIZE {
            self.send_part()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Destination for S3Upload {
    fn name(&self) -> PathBuf {
        Location::S3(self.place.clone()).path(&self.name)
    }

    fn commit(mut self: Box<Self>) -> Result<PathBuf> {
        let name = self.name();
        if !self.buf.is_empty() {
            self.send_part().map_err(|e| Error::runtime(e.to_string()))?;
        }
        let mut upload = self.upload.take().expect("upload open");
        self.rt
            .block_on(upload.complete())
            .map_err(|e| self.place.error("cannot complete the upload of", &self.name, e))?;
        Ok(name)
    }
}

impl Drop for S3Upload {
    fn drop(&mut self) {
        if let Some(mut upload) = self.upload.take() {
            let _ = self.rt.block_on(upload.abort());
        }
    }
}

/// A streamed download as a `Read`, on its reader thread's own runtime.
pub(crate) struct S3Download {
    rt: tokio::runtime::Runtime,
    stream: futures::stream::BoxStream<'static, object_store::Result<Bytes>>,
    current: Bytes,
    place: S3Place,
    name: String,
}

impl S3Download {
    pub(crate) fn start(place: S3Place, name: &str) -> Result<S3Download> {
        let rt = thread_runtime()?;
        let store = rt.block_on(async { place.store() })?;
        let result = rt.block_on(store.get(&place.key(name))).map_err(|e| match e {
            object_store::Error::NotFound { .. } => Error::Io {
                what: "cannot open".into(),
                path: Location::S3(place.clone()).path(name),
                source: std::io::Error::from(std::io::ErrorKind::NotFound),
            },
            e => place.error("cannot download", name, e),
        })?;
        Ok(S3Download {
            rt,
            stream: result.into_stream(),
            current: Bytes::new(),
            place,
            name: name.into(),
        })
    }
}

impl Read for S3Download {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            match self.rt.block_on(self.stream.next()) {
                None => return Ok(0),
                Some(Ok(b)) => self.current = b,
                Some(Err(e)) => {
                    let err = self.place.error("cannot download", &self.name, e);
                    return Err(std::io::Error::other(crate::error::render(&err)));
                }
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current[..n]);
        let _ = self.current.split_to(n);
        Ok(n)
    }
}
