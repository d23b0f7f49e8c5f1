//! The serving certificate, re-read when its files change.
//!
//! Handshakes take the current [`CertifiedKey`] from an [`ArcSwap`]; the [`CertificateReloader`]
//! polls the certificate and key files and swaps in a new pair when their content changes.
//! Polling content (rather than watching inodes) follows kubelet's Secret volumes, where
//! `tls.crt -> ..data/tls.crt` and `..data` is atomically re-pointed at a new directory.
//! A new pair that does not parse or whose key does not match is rejected and the previous one
//! stays in force. Established connections keep the certificate they were made with.

use std::{
    io,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use arc_swap::ArcSwap;
use prometheus::IntCounterVec;
use rustls::{
    InconsistentKeys,
    crypto::CryptoProvider,
    server::{ClientHello, ResolvesServerCert},
    sign::CertifiedKey,
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
use tokio::time::MissedTickBehavior;
use tracing::{error, info};

/// Protocols offered through ALPN, preferred first.
pub const ALPN_PROTOCOLS: [&[u8]; 2] = [b"h2", b"http/1.1"];

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("failed to read {what} file {path}: {source}")]
    Read {
        what: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("invalid PEM in certificate file {path}: {source}")]
    CertificatePem {
        path: PathBuf,
        source: rustls_pki_types::pem::Error,
    },
    #[error("no certificate found in {path}: expected PEM `CERTIFICATE` blocks")]
    NoCertificate { path: PathBuf },
    #[error("invalid certificate in {path}: {source}")]
    InvalidCertificate {
        path: PathBuf,
        source: rustls::Error,
    },
    #[error(
        "no private key found in {path}: expected a PEM `PRIVATE KEY`, `EC PRIVATE KEY` or `RSA PRIVATE KEY` block"
    )]
    NoPrivateKey { path: PathBuf },
    #[error("invalid PEM in private key file {path}: {source}")]
    PrivateKeyPem {
        path: PathBuf,
        source: rustls_pki_types::pem::Error,
    },
    #[error("unsupported private key in {path}: {source}")]
    UnsupportedPrivateKey {
        path: PathBuf,
        source: rustls::Error,
    },
    #[error("private key {key} does not match the certificate in {cert}")]
    KeyMismatch { cert: PathBuf, key: PathBuf },
    #[error("cannot check that private key {key} belongs to the certificate in {cert}")]
    KeyUnverifiable { cert: PathBuf, key: PathBuf },
    #[error("failed to build the TLS server configuration: {0}")]
    Config(rustls::Error),
}

impl TlsError {
    pub fn reason(&self) -> &'static str {
        match self {
            TlsError::Read { .. } => "read",
            TlsError::CertificatePem { .. } => "certificate_pem",
            TlsError::NoCertificate { .. } => "no_certificate",
            TlsError::InvalidCertificate { .. } => "invalid_certificate",
            TlsError::NoPrivateKey { .. } => "no_private_key",
            TlsError::PrivateKeyPem { .. } => "private_key_pem",
            TlsError::UnsupportedPrivateKey { .. } => "unsupported_private_key",
            TlsError::KeyMismatch { .. } => "key_mismatch",
            TlsError::KeyUnverifiable { .. } => "key_unverifiable",
            TlsError::Config(_) => "config",
        }
    }
}

/// Where the serving certificate chain (leaf first) and its private key live, both PEM.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertificateFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Hands every new handshake the certificate currently in force.
#[derive(Debug)]
pub struct CertificateResolver {
    current: ArcSwap<CertifiedKey>,
}

impl CertificateResolver {
    /// The certificate new handshakes get.
    pub fn current(&self) -> Arc<CertifiedKey> {
        self.current.load_full()
    }
}

impl ResolvesServerCert for CertificateResolver {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}

/// A rustls server configuration that takes its certificate from `resolver` and offers h2 and
/// HTTP/1.1. The crypto provider is passed in, so nothing depends on a process-wide default.
pub fn server_config(
    resolver: Arc<CertificateResolver>,
    provider: Arc<CryptoProvider>,
) -> Result<rustls::ServerConfig, TlsError> {
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(TlsError::Config)?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    config.alpn_protocols = ALPN_PROTOCOLS.iter().map(|p| p.to_vec()).collect();
    Ok(config)
}

/// What one look at the files found.
#[derive(Debug)]
pub enum ReloadOutcome {
    /// The content is what was last looked at (served or rejected).
    Unchanged,
    /// A new pair is now served.
    Reloaded,
    /// The new content was rejected; the previous pair is still served.
    Rejected(TlsError),
}

/// The content last looked at, so a rejected pair is reported once, not on every poll.
#[derive(PartialEq, Eq)]
enum Seen {
    Contents { cert: Vec<u8>, key: Vec<u8> },
    ReadFailure(String),
}

/// Polls the certificate files and swaps a new pair into the [`CertificateResolver`].
pub struct CertificateReloader {
    files: CertificateFiles,
    provider: Arc<CryptoProvider>,
    resolver: Arc<CertificateResolver>,
    reloads: IntCounterVec,
    last_seen: Seen,
}

impl CertificateReloader {
    /// Reads the pair once; a missing or bad pair at start-up is an error.
    ///
    /// `reloads` is the `tls_reloads` family (label `result`: `success` or `error`).
    pub fn load(
        files: CertificateFiles,
        provider: Arc<CryptoProvider>,
        reloads: IntCounterVec,
    ) -> Result<Self, TlsError> {
        let cert = read_file("certificate", &files.cert)?;
        let key = read_file("private key", &files.key)?;
        let certified = certified_key(&cert, &key, &files, &provider)?;
        // Both series exist from the start, so dashboards and alerts see 0 rather than nothing.
        reloads.with_label_values(&["success"]);
        reloads.with_label_values(&["error"]);
        Ok(CertificateReloader {
            resolver: Arc::new(CertificateResolver {
                current: ArcSwap::from_pointee(certified),
            }),
            files,
            provider,
            reloads,
            last_seen: Seen::Contents { cert, key },
        })
    }

    pub fn resolver(&self) -> Arc<CertificateResolver> {
        Arc::clone(&self.resolver)
    }

    pub fn provider(&self) -> Arc<CryptoProvider> {
        Arc::clone(&self.provider)
    }

    pub fn files(&self) -> &CertificateFiles {
        &self.files
    }

    /// Reads both files and, when their content changed, validates and swaps in the new pair.
    /// Logs and counts the outcome.
    pub async fn reload_if_changed(&mut self) -> ReloadOutcome {
        let contents = match self.read_pair().await {
            Ok((cert, key)) => Seen::Contents { cert, key },
            Err(error) => {
                let seen = Seen::ReadFailure(error.to_string());
                if seen == self.last_seen {
                    return ReloadOutcome::Unchanged;
                }
                self.last_seen = seen;
                return self.reject(error);
            }
        };
        if contents == self.last_seen {
            return ReloadOutcome::Unchanged;
        }
        let parsed = match &contents {
            Seen::Contents { cert, key } => certified_key(cert, key, &self.files, &self.provider),
            // Built just above from a successful read.
            Seen::ReadFailure(_) => return ReloadOutcome::Unchanged,
        };
        self.last_seen = contents;
        match parsed {
            Ok(certified) => {
                self.resolver.current.store(Arc::new(certified));
                self.reloads.with_label_values(&["success"]).inc();
                info!(
                    cert = %self.files.cert.display(),
                    key = %self.files.key.display(),
                    "serving certificate reloaded"
                );
                ReloadOutcome::Reloaded
            }
            Err(error) => self.reject(error),
        }
    }

    /// Checks the files every `interval`, forever.
    pub async fn run(mut self, interval: Duration) {
        let mut ticks = tokio::time::interval(interval);
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        // The first tick completes at once; the pair was just loaded.
        ticks.tick().await;
        loop {
            ticks.tick().await;
            self.reload_if_changed().await;
        }
    }

    fn reject(&self, error: TlsError) -> ReloadOutcome {
        self.reloads.with_label_values(&["error"]).inc();
        error!(
            reason = error.reason(),
            error = %error,
            "rejected new serving certificate; still serving the previous one"
        );
        ReloadOutcome::Rejected(error)
    }

    async fn read_pair(&self) -> Result<(Vec<u8>, Vec<u8>), TlsError> {
        let cert = read_file_async("certificate", &self.files.cert).await?;
        let key = read_file_async("private key", &self.files.key).await?;
        Ok((cert, key))
    }
}

fn read_file(what: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        what,
        path: path.to_owned(),
        source,
    })
}

async fn read_file_async(what: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    tokio::fs::read(path)
        .await
        .map_err(|source| TlsError::Read {
            what,
            path: path.to_owned(),
            source,
        })
}

/// Parses a PEM certificate chain and private key (PKCS#8, SEC1 or PKCS#1) and checks that the
/// key belongs to the first certificate.
pub fn certified_key(
    cert_pem: &[u8],
    key_pem: &[u8],
    files: &CertificateFiles,
    provider: &CryptoProvider,
) -> Result<CertifiedKey, TlsError> {
    let chain = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| TlsError::CertificatePem {
            path: files.cert.clone(),
            source,
        })?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate {
            path: files.cert.clone(),
        });
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|source| match source {
        rustls_pki_types::pem::Error::NoItemsFound => TlsError::NoPrivateKey {
            path: files.key.clone(),
        },
        source => TlsError::PrivateKeyPem {
            path: files.key.clone(),
            source,
        },
    })?;
    let signing_key = provider
        .key_provider
        .load_private_key(key)
        .map_err(|source| TlsError::UnsupportedPrivateKey {
            path: files.key.clone(),
            source,
        })?;
    let certified = CertifiedKey::new(chain, signing_key);
    // Strict: every key type of the aws-lc-rs provider can report its public key, so an
    // "unknown" answer means something is off and is rejected too.
    match certified.keys_match() {
        Ok(()) => Ok(certified),
        Err(rustls::Error::InconsistentKeys(InconsistentKeys::KeyMismatch)) => {
            Err(TlsError::KeyMismatch {
                cert: files.cert.clone(),
                key: files.key.clone(),
            })
        }
        Err(rustls::Error::InconsistentKeys(_)) => Err(TlsError::KeyUnverifiable {
            cert: files.cert.clone(),
            key: files.key.clone(),
        }),
        Err(source) => Err(TlsError::InvalidCertificate {
            path: files.cert.clone(),
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devcert::CertificateAuthority;
    use rcgen::{CertificateParams, KeyPair, PKCS_RSA_SHA256, RsaKeySize};

    fn provider() -> Arc<CryptoProvider> {
        Arc::new(rustls::crypto::aws_lc_rs::default_provider())
    }

    fn files() -> CertificateFiles {
        CertificateFiles {
            cert: PathBuf::from("/certs/tls.crt"),
            key: PathBuf::from("/certs/tls.key"),
        }
    }

    fn issued() -> (String, String) {
        let ca = CertificateAuthority::new().unwrap();
        let pair = ca.issue(&["localhost".to_owned()]).unwrap();
        (pair.cert_pem, pair.key_pem)
    }

    /// Re-encodes a PKCS#8 EC key as SEC1 (`EC PRIVATE KEY`), the form `openssl ecparam` writes.
    fn sec1_pem(pkcs8_pem: &str) -> String {
        let der = PrivateKeyDer::from_pem_slice(pkcs8_pem.as_bytes()).unwrap();
        let key = aws_lc_rs::signature::EcdsaKeyPair::from_pkcs8(
            &aws_lc_rs::signature::ECDSA_P256_SHA256_ASN1_SIGNING,
            der.secret_der(),
        )
        .unwrap();
        let sec1: aws_lc_rs::encoding::EcPrivateKeyRfc5915Der<'_> =
            aws_lc_rs::encoding::AsDer::as_der(&key.private_key()).unwrap();
        pem_block("EC PRIVATE KEY", sec1.as_ref())
    }

    fn pem_block(label: &str, der: &[u8]) -> String {
        use base64::Engine as _;
        let body = base64::engine::general_purpose::STANDARD.encode(der);
        let lines: Vec<&str> = body
            .as_bytes()
            .chunks(64)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect();
        format!(
            "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
            lines.join("\n")
        )
    }

    #[test]
    fn accepts_pkcs8_key_matching_the_certificate() {
        let (cert, key) = issued();
        let certified =
            certified_key(cert.as_bytes(), key.as_bytes(), &files(), &provider()).unwrap();
        assert_eq!(certified.cert.len(), 1);
    }

    #[test]
    fn accepts_sec1_key() {
        let (cert, key) = issued();
        let sec1 = sec1_pem(&key);
        assert!(sec1.starts_with("-----BEGIN EC PRIVATE KEY-----"));
        certified_key(cert.as_bytes(), sec1.as_bytes(), &files(), &provider()).unwrap();
    }

    /// The RSAPrivateKey inside a PKCS#8 PrivateKeyInfo, which is what a PKCS#1 file holds.
    fn pkcs1_from_pkcs8(pkcs8: &[u8]) -> Vec<u8> {
        use x509_cert::der::{Reader, SliceReader, asn1::AnyRef, asn1::OctetString};
        let mut reader = SliceReader::new(pkcs8).unwrap();
        reader
            .sequence(|inner| {
                let _version: u8 = inner.decode()?;
                let _algorithm: AnyRef<'_> = inner.decode()?;
                let key: OctetString = inner.decode()?;
                Ok::<_, x509_cert::der::Error>(key.as_bytes().to_vec())
            })
            .unwrap()
    }

    #[test]
    fn accepts_pkcs1_rsa_key() {
        let key = KeyPair::generate_rsa_for(&PKCS_RSA_SHA256, RsaKeySize::_2048).unwrap();
        let cert = CertificateParams::new(vec!["localhost".to_owned()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let pkcs1_pem = pem_block("RSA PRIVATE KEY", &pkcs1_from_pkcs8(&key.serialize_der()));
        certified_key(
            cert.pem().as_bytes(),
            pkcs1_pem.as_bytes(),
            &files(),
            &provider(),
        )
        .unwrap();
    }

    #[test]
    fn rejects_a_key_of_another_certificate() {
        let (cert, _) = issued();
        let (_, other_key) = issued();
        let error = certified_key(cert.as_bytes(), other_key.as_bytes(), &files(), &provider())
            .unwrap_err();
        assert_eq!(error.reason(), "key_mismatch");
        assert_eq!(
            error.to_string(),
            "private key /certs/tls.key does not match the certificate in /certs/tls.crt"
        );
    }

    #[test]
    fn rejects_files_without_pem_blocks() {
        let (cert, key) = issued();
        let error = certified_key(b"not pem", key.as_bytes(), &files(), &provider()).unwrap_err();
        assert_eq!(error.reason(), "no_certificate");
        assert_eq!(
            error.to_string(),
            "no certificate found in /certs/tls.crt: expected PEM `CERTIFICATE` blocks"
        );

        let error = certified_key(cert.as_bytes(), b"", &files(), &provider()).unwrap_err();
        assert_eq!(error.reason(), "no_private_key");
        assert!(
            error
                .to_string()
                .starts_with("no private key found in /certs/tls.key"),
            "{error}"
        );
    }

    #[test]
    fn rejects_garbage_inside_a_certificate_block() {
        let (_, key) = issued();
        let garbage = pem_block("CERTIFICATE", b"definitely not DER");
        let error =
            certified_key(garbage.as_bytes(), key.as_bytes(), &files(), &provider()).unwrap_err();
        assert_eq!(error.reason(), "invalid_certificate");
        assert!(
            error
                .to_string()
                .starts_with("invalid certificate in /certs/tls.crt: "),
            "{error}"
        );
    }

    #[test]
    fn rejects_truncated_pem() {
        let (cert, key) = issued();
        let truncated = &cert[..cert.len() / 2];
        let error =
            certified_key(truncated.as_bytes(), key.as_bytes(), &files(), &provider()).unwrap_err();
        assert_eq!(error.reason(), "certificate_pem");
        assert!(
            error
                .to_string()
                .starts_with("invalid PEM in certificate file /certs/tls.crt: "),
            "{error}"
        );
    }

    #[test]
    fn missing_file_at_start_up_names_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let files = CertificateFiles {
            cert: dir.path().join("tls.crt"),
            key: dir.path().join("tls.key"),
        };
        let reloads = crate::metrics::Metrics::unregistered().unwrap().tls_reloads;
        let error = CertificateReloader::load(files.clone(), provider(), reloads)
            .err()
            .unwrap();
        assert_eq!(error.reason(), "read");
        assert!(
            error.to_string().starts_with(&format!(
                "failed to read certificate file {}: ",
                files.cert.display()
            )),
            "{error}"
        );
    }

    #[tokio::test]
    async fn reports_a_rejected_pair_once_then_recovers() {
        let dir = tempfile::tempdir().unwrap();
        let files = CertificateFiles {
            cert: dir.path().join("tls.crt"),
            key: dir.path().join("tls.key"),
        };
        let (cert, key) = issued();
        std::fs::write(&files.cert, &cert).unwrap();
        std::fs::write(&files.key, &key).unwrap();
        let reloads = crate::metrics::Metrics::unregistered().unwrap().tls_reloads;
        let mut reloader =
            CertificateReloader::load(files.clone(), provider(), reloads.clone()).unwrap();
        let first = reloader.resolver().current();
        assert!(matches!(
            reloader.reload_if_changed().await,
            ReloadOutcome::Unchanged
        ));

        std::fs::write(&files.cert, b"garbage").unwrap();
        assert!(matches!(
            reloader.reload_if_changed().await,
            ReloadOutcome::Rejected(TlsError::NoCertificate { .. })
        ));
        assert!(matches!(
            reloader.reload_if_changed().await,
            ReloadOutcome::Unchanged
        ));
        assert_eq!(reloads.with_label_values(&["error"]).get(), 1);
        assert_eq!(reloader.resolver().current().cert, first.cert);

        std::fs::remove_file(&files.key).unwrap();
        assert!(matches!(
            reloader.reload_if_changed().await,
            ReloadOutcome::Rejected(TlsError::Read { .. })
        ));
        assert!(matches!(
            reloader.reload_if_changed().await,
            ReloadOutcome::Unchanged
        ));
        assert_eq!(reloads.with_label_values(&["error"]).get(), 2);

        let (new_cert, new_key) = issued();
        std::fs::write(&files.cert, &new_cert).unwrap();
        std::fs::write(&files.key, &new_key).unwrap();
        assert!(matches!(
            reloader.reload_if_changed().await,
            ReloadOutcome::Reloaded
        ));
        assert_eq!(reloads.with_label_values(&["success"]).get(), 1);
        assert_ne!(reloader.resolver().current().cert, first.cert);
    }
}
