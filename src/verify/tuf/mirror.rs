//! `remote.mirror`: TUF metadata and targets over HTTP(S), as a tough [`Transport`].
//!
//! verity's own transport rather than tough's `http` feature: it uses verity's reqwest (rustls
//! with aws-lc-rs, the system roots plus `--tuf-mirror-ca`), bounds every request by a timeout
//! and every body by [`MAX_BODY_BYTES`], and reports failures with their cause. TUF does not rely
//! on the transport for integrity (everything is signed and hashed), so plain `http://` mirrors
//! are allowed, as in the reference.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::stream;
use tough::{Transport, TransportError, TransportErrorKind, TransportStream};
use url::Url;

use super::TufError;

/// Most bytes one response may carry (tough's own limits are lower for metadata; targets are
/// bounded by their signed length).
pub const MAX_BODY_BYTES: usize = 32 * 1024 * 1024;

/// HTTP(S) access to TUF mirrors.
#[derive(Clone, Debug)]
pub struct MirrorClient {
    http: reqwest::Client,
    timeout: Duration,
}

impl MirrorClient {
    /// `timeout` bounds each request, body included; `extra_roots_pem` are CA certificates
    /// trusted besides the system roots.
    pub fn new(timeout: Duration, extra_roots_pem: Option<&[u8]>) -> Result<Self, TufError> {
        let mut builder = reqwest::Client::builder()
            .user_agent(format!("verity/{}", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::limited(5))
            .connect_timeout(timeout)
            .timeout(timeout);
        if let Some(pem) = extra_roots_pem {
            let roots =
                reqwest::Certificate::from_pem_bundle(pem).map_err(|e| TufError::Client {
                    cause: format!("the TUF mirror CA bundle is not PEM certificates: {e}"),
                })?;
            if roots.is_empty() {
                return Err(TufError::Client {
                    cause: "the TUF mirror CA bundle holds no certificates".to_string(),
                });
            }
            builder = builder.tls_certs_merge(roots);
        }
        let http = builder.build().map_err(|e| TufError::Client {
            cause: format!("cannot build the HTTP client: {e}"),
        })?;
        Ok(MirrorClient { http, timeout })
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    async fn get(&self, url: &Url) -> Result<Bytes, (TransportErrorKind, String)> {
        let mut response = self
            .http
            .get(url.clone())
            .send()
            .await
            .map_err(|e| (TransportErrorKind::Other, self.cause(&e)))?;
        let status = response.status();
        if matches!(status.as_u16(), 403 | 404 | 410) {
            // 403: object stores answer it for files that do not exist.
            return Err((
                TransportErrorKind::FileNotFound,
                format!("HTTP status {status}"),
            ));
        }
        if !status.is_success() {
            return Err((TransportErrorKind::Other, format!("HTTP status {status}")));
        }
        if response
            .content_length()
            .is_some_and(|length| length > MAX_BODY_BYTES as u64)
        {
            return Err((TransportErrorKind::Other, too_large()));
        }
        let mut body = BytesMut::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| (TransportErrorKind::Other, self.cause(&e)))?
        {
            if body.len() + chunk.len() > MAX_BODY_BYTES {
                return Err((TransportErrorKind::Other, too_large()));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body.freeze())
    }

    fn cause(&self, error: &reqwest::Error) -> String {
        if error.is_timeout() {
            return format!("no answer within {}s", self.timeout.as_secs_f64());
        }
        let causes = crate::registry::error_causes(error);
        match crate::registry::find_rustls_error(error) {
            Some(rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer)) => {
                format!(
                    "{causes} (the mirror's certificate is not issued by a trusted CA; give its CA with --tuf-mirror-ca)"
                )
            }
            _ => causes,
        }
    }
}

fn too_large() -> String {
    format!("the response is larger than {MAX_BODY_BYTES} bytes")
}

#[tough::async_trait]
impl Transport for MirrorClient {
    async fn fetch(&self, url: Url) -> Result<TransportStream, TransportError> {
        if !matches!(url.scheme(), "https" | "http") {
            return Err(TransportError::new(
                TransportErrorKind::UnsupportedUrlScheme,
                url,
            ));
        }
        match self.get(&url).await {
            Ok(body) => {
                let chunk: Result<Bytes, TransportError> = Ok(body);
                Ok(Box::pin(stream::iter([chunk])))
            }
            Err((kind, cause)) => Err(TransportError::new_with_cause(kind, url, cause)),
        }
    }
}
