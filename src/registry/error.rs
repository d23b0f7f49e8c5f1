//! The registry error type.
//!
//! Every variant names the request that failed (`GET https://host/v2/...`, which carries the
//! registry host) and the cause, in lower case. Secrets never appear: credentials travel in
//! headers, which are never rendered, and token URLs carry only `service` and `scope`.

use std::time::Duration;

use http::StatusCode;

use crate::image::Digest;

/// Why a registry operation failed.
///
/// A registry error is an error, never "no signatures": only a missing referrers tag (the
/// tag-schema fallback) means "nothing attached", and that is not an error.
/// Clone, so one failure can be handed to every waiter of a shared (single-flight) lookup.
#[derive(Clone, Debug, thiserror::Error)]
pub enum RegistryError {
    /// 404: the repository, manifest, tag or blob does not exist.
    #[error("{request}: 404 not found: {message}")]
    NotFound {
        request: String,
        /// The registry error code, such as `MANIFEST_UNKNOWN` or `NAME_UNKNOWN`.
        code: Option<String>,
        message: String,
    },

    /// 401 after the authentication flow ran its course; `message` says why (no credentials
    /// configured for the host, credentials rejected, no challenge...).
    #[error("{request}: 401 unauthorized: {message}")]
    Unauthorized { request: String, message: String },

    /// 403: authenticated but not allowed.
    #[error("{request}: 403 denied: {message}")]
    Denied { request: String, message: String },

    /// Any other unexpected HTTP status (5xx, 429, 405 ...).
    #[error("{request}: {}: {message}", status_line(*.status))]
    Status {
        request: String,
        status: StatusCode,
        code: Option<String>,
        message: String,
    },

    /// One HTTP exchange (connect, headers and body) took longer than the request timeout.
    #[error("{request}: timed out after {after:?}")]
    Timeout { request: String, after: Duration },

    /// The response body exceeds the configured limit; it was not read past the limit.
    #[error("{request}: {what} exceeds the {limit}-byte limit")]
    TooLarge {
        request: String,
        what: &'static str,
        limit: usize,
    },

    /// The content does not hash to the digest it was requested by (or announced with).
    #[error("{request}: digest mismatch: expected {expected}, got {actual}")]
    DigestMismatch {
        request: String,
        expected: Digest,
        actual: Digest,
    },

    /// The TCP connection could not be made or broke.
    #[error("{request}: connection to {host} failed: {cause}")]
    Connect {
        request: String,
        host: String,
        cause: String,
    },

    /// The TLS handshake failed (unknown issuer, wrong name, not TLS at all...).
    #[error("{request}: tls handshake with {host} failed: {cause}")]
    Tls {
        request: String,
        host: String,
        cause: String,
    },

    /// The registry answered something that does not follow the protocol.
    #[error("{request}: invalid response: {cause}")]
    InvalidResponse { request: String, cause: String },

    /// A tag or digest that cannot be put in a registry URL.
    #[error("invalid manifest reference {0:?}: expected a tag or a digest")]
    InvalidReference(String),

    /// The client configuration is unusable (bad CA bundle...).
    #[error("invalid registry configuration: {0}")]
    Config(String),

    /// A docker config (`~/.docker/config.json`, `kubernetes.io/dockerconfigjson`) is malformed.
    #[error("invalid docker config: {0}")]
    DockerConfig(String),
}

impl RegistryError {
    /// A bounded label for metrics and logs.
    pub fn reason(&self) -> &'static str {
        match self {
            RegistryError::NotFound { .. } => "not_found",
            RegistryError::Unauthorized { .. } => "unauthorized",
            RegistryError::Denied { .. } => "denied",
            RegistryError::Status { status, .. } => status_reason(*status),
            RegistryError::Timeout { .. } => "timeout",
            RegistryError::TooLarge { .. } => "too_large",
            RegistryError::DigestMismatch { .. } => "digest_mismatch",
            RegistryError::Connect { .. } => "connect",
            RegistryError::Tls { .. } => "tls",
            RegistryError::InvalidResponse { .. } => "invalid_response",
            RegistryError::InvalidReference(_) => "invalid_reference",
            RegistryError::Config(_) => "config",
            RegistryError::DockerConfig(_) => "docker_config",
        }
    }

    pub fn is_not_found(&self) -> bool {
        matches!(self, RegistryError::NotFound { .. })
    }

    /// True for failures that may go away on retry (timeouts, connection problems, 5xx, 429).
    pub fn is_transient(&self) -> bool {
        match self {
            RegistryError::Timeout { .. } | RegistryError::Connect { .. } => true,
            RegistryError::Status { status, .. } => {
                status.is_server_error() || *status == StatusCode::TOO_MANY_REQUESTS
            }
            _ => false,
        }
    }
}

/// `404 not found`, `500 internal server error`.
pub(crate) fn status_line(status: StatusCode) -> String {
    match status.canonical_reason() {
        Some(reason) => format!("{} {}", status.as_u16(), reason.to_lowercase()),
        None => status.as_u16().to_string(),
    }
}

/// The metric label of an HTTP status.
pub(crate) fn status_reason(status: StatusCode) -> &'static str {
    match status.as_u16() {
        200..=299 => "ok",
        300..=399 => "redirect",
        401 => "unauthorized",
        403 => "denied",
        404 => "not_found",
        429 => "rate_limited",
        500..=599 => "server_error",
        _ => "unexpected_status",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_request_status_and_cause() {
        let err = RegistryError::Status {
            request: "GET https://127.0.0.1:5443/v2/test/app/manifests/v1".to_string(),
            status: StatusCode::INTERNAL_SERVER_ERROR,
            code: Some("UNKNOWN".to_string()),
            message: "UNKNOWN: storage is on fire".to_string(),
        };
        assert_eq!(
            err.to_string(),
            "GET https://127.0.0.1:5443/v2/test/app/manifests/v1: 500 internal server error: UNKNOWN: storage is on fire"
        );
        assert_eq!(err.reason(), "server_error");
        assert!(err.is_transient());

        let err = RegistryError::Timeout {
            request: "HEAD http://h/v2/a/manifests/b".to_string(),
            after: Duration::from_millis(250),
        };
        assert_eq!(
            err.to_string(),
            "HEAD http://h/v2/a/manifests/b: timed out after 250ms"
        );
        assert_eq!(err.reason(), "timeout");
    }

    #[test]
    fn status_reasons_are_bounded() {
        assert_eq!(status_reason(StatusCode::OK), "ok");
        assert_eq!(status_reason(StatusCode::TOO_MANY_REQUESTS), "rate_limited");
        assert_eq!(status_reason(StatusCode::BAD_GATEWAY), "server_error");
        assert_eq!(
            status_reason(StatusCode::METHOD_NOT_ALLOWED),
            "unexpected_status"
        );
        assert_eq!(status_line(StatusCode::NOT_FOUND), "404 not found");
    }
}
