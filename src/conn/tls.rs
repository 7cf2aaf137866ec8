//! TLS per libpq's `sslmode`: the rustls configuration each mode gets, the
//! root certificates (`sslrootcert`), and the verifier that checks the chain
//! and, for `verify-full`, the host name. The session uses it to connect.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};

use crate::conn::conninfo::{ConnInfo, SslMode};
use crate::error::{Error, Result};

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Builds the rustls configuration for `mode` (never `Disable`).
pub(super) fn tls_config(info: &ConnInfo, mode: SslMode) -> Result<rustls::ClientConfig> {
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::runtime(format!("cannot set up TLS: {e}")))?;
    let config = match mode {
        SslMode::Prefer | SslMode::Require => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(LibpqVerifier {
                chain: None,
                provider: provider(),
            }))
            .with_no_client_auth(),
        SslMode::VerifyCa | SslMode::VerifyFull => {
            let roots = load_roots(info)?;
            let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider())
                .build()
                .map_err(|e| Error::runtime(format!("cannot set up TLS verification: {e}")))?;
            if mode == SslMode::VerifyFull {
                builder.with_webpki_verifier(webpki).with_no_client_auth()
            } else {
                builder
                    .dangerous()
                    .with_custom_certificate_verifier(Arc::new(LibpqVerifier {
                        chain: Some(webpki),
                        provider: provider(),
                    }))
                    .with_no_client_auth()
            }
        }
        SslMode::Disable => unreachable!("TLS is not configured for sslmode=disable"),
    };
    Ok(config)
}

fn root_cert_path(info: &ConnInfo) -> PathBuf {
    match &info.sslrootcert {
        Some(p) => p.clone(),
        None => {
            let home = std::env::var("HOME").unwrap_or_default();
            Path::new(&home).join(".postgresql/root.crt")
        }
    }
}

fn load_roots(info: &ConnInfo) -> Result<RootCertStore> {
    let path = root_cert_path(info);
    let hint = || {
        format!(
            "sslmode={} needs the CA certificate that signed the server's (for AWS RDS, the region's bundle); set sslrootcert=PATH",
            info.effective_sslmode().as_str()
        )
    };
    let bytes = std::fs::read(&path).map_err(|e| Error::Usage {
        msg: format!("cannot read root certificate file \"{}\": {e}", path.display()),
        hint: Some(hint()),
    })?;
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&bytes) {
        let cert = cert.map_err(|e| Error::Usage {
            msg: format!("invalid PEM in root certificate file \"{}\": {e}", path.display()),
            hint: Some(hint()),
        })?;
        roots.add(cert).map_err(|e| Error::Usage {
            msg: format!("invalid certificate in \"{}\": {e}", path.display()),
            hint: Some(hint()),
        })?;
    }
    if roots.is_empty() {
        return Err(Error::Usage {
            msg: format!("no certificate found in root certificate file \"{}\"", path.display()),
            hint: Some(hint()),
        });
    }
    Ok(roots)
}

/// The two sslmodes rustls has no verifier for. `prefer` and `require`
/// (`chain: None`): encrypt, but accept any certificate, as libpq does.
/// `verify-ca` (`chain: Some`): the chain must lead to a trusted root, the
/// host name is not checked (needed behind an SSH tunnel to localhost).
/// Handshake signatures are always checked, so the session key is sound.
#[derive(Debug)]
struct LibpqVerifier {
    chain: Option<Arc<WebPkiServerVerifier>>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for LibpqVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        let Some(chain) = &self.chain else { return Ok(ServerCertVerified::assertion()) };
        match chain.verify_server_cert(end_entity, intermediates, server_name, ocsp, now) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}
