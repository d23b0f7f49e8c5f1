//! X.509 checks of keyless (Fulcio) verification, over bytes, with no network.
//!
//! - [`verify_leaf`] chains a signing certificate to a trusted certificate authority at the
//!   signing time (a Rekor `integratedTime`, never "now": Fulcio leaves live about ten minutes)
//!   and checks that the leaf is a code-signing end-entity certificate.
//! - [`verify_embedded_sct`] checks that the leaf carries a signed certificate timestamp (RFC 6962
//!   §3.3, embedded in the final certificate) from a trusted certificate transparency log.
//! - [`identity_of`] reads who the certificate was issued to (SANs, OIDC issuer, CI claims)
//!   without any trust decision, for policy matching after verification and for explaining denials.
//! - [`certificates_from_pem`] decodes PEM chains (cosign's `dev.sigstore.cosign/chain`
//!   annotation, a policy's `keyless.ca-cert`).
//!
//! Nothing here trusts anything the signature brings along: presented intermediates are only
//! candidates for path building, and every path must end at an anchor taken from the trust
//! material or the policy.

mod chain;
mod identity;
mod sct;

pub use chain::{MAX_PRESENTED_INTERMEDIATES, verify_leaf};
pub use identity::{CertificateIdentity, FulcioClaim, identity_of};
pub use sct::verify_embedded_sct;

use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use x509_cert::Certificate;
use x509_cert::der::Decode;

/// A leaf certificate that chains to a trusted authority at the signing time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedLeaf {
    /// Who the certificate was issued to.
    pub identity: CertificateIdentity,
    /// The leaf's SubjectPublicKeyInfo (DER): the key the signature must verify with.
    pub public_key_spki_der: Vec<u8>,
    /// Validity of the leaf, Unix seconds.
    pub not_before: i64,
    pub not_after: i64,
    /// The trusted authority the leaf chained to: its `uri`, or [`POLICY_CA_CERT`].
    pub authority_uri: String,
    /// The leaf's direct issuer (DER), as needed by [`verify_embedded_sct`].
    pub issuer_der: Vec<u8>,
}

/// `VerifiedLeaf::authority_uri` of leaves that chained to a policy's `keyless.ca-cert`.
pub const POLICY_CA_CERT: &str = "policy ca-cert";

/// Why a certificate was not accepted.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CertError {
    #[error("{what} is not a valid x.509 certificate: {detail}")]
    Malformed { what: String, detail: String },
    #[error("invalid pem: {0}")]
    Pem(String),
    #[error("pem contains no certificate")]
    NoCertificateInPem,
    #[error("certificate has extension {oid} more than once")]
    DuplicateExtension { oid: String },
    #[error("certificate extension {name} ({oid}) is malformed: {detail}")]
    MalformedExtension {
        name: &'static str,
        oid: String,
        detail: String,
    },
    #[error(
        "certificate oidc issuer extensions disagree: 1.3.6.1.4.1.57264.1.8 says {v2:?}, \
         1.3.6.1.4.1.57264.1.1 says {v1:?}"
    )]
    IssuerMismatch { v1: String, v2: String },
    #[error("signing time {0} is not a valid time (unix seconds before 1970 or out of range)")]
    InvalidSigningTime(i64),
    #[error("certificate was not valid at signing time {at}: valid {not_before}–{not_after}")]
    NotValidAtSigningTime {
        at: String,
        not_before: String,
        not_after: String,
    },
    #[error(
        "certificate is a certificate authority (basic constraints ca:true), not a signing leaf"
    )]
    LeafIsCa,
    #[error(
        "certificate is not for code signing: extended key usage {found}, expected \
         codeSigning (1.3.6.1.5.5.7.3.3)"
    )]
    MissingCodeSigning { found: String },
    #[error(
        "{found} intermediate certificates presented with the signature, at most {max} allowed"
    )]
    TooManyIntermediates { found: usize, max: usize },
    #[error("no trusted certificate authority to verify the certificate against")]
    NoTrustedAuthority,
    #[error(
        "certificate does not chain to a trusted certificate authority at signing time {at}: {}",
        attempts.join("; ")
    )]
    UntrustedChain { at: String, attempts: Vec<String> },
    #[error(
        "certificate has no embedded signed certificate timestamp \
         (extension 1.3.6.1.4.1.11129.2.4.2)"
    )]
    SctMissing,
    #[error("embedded signed certificate timestamp list is malformed: {0}")]
    SctMalformed(String),
    #[error("no embedded signed certificate timestamp verified: {}", failures.join("; "))]
    SctUnverified { failures: Vec<String> },
}

impl CertError {
    /// A bounded label for metrics and logs.
    pub fn reason(&self) -> &'static str {
        match self {
            CertError::Malformed { .. } => "malformed_certificate",
            CertError::Pem(_) => "malformed_pem",
            CertError::NoCertificateInPem => "no_certificate_in_pem",
            CertError::DuplicateExtension { .. } => "duplicate_extension",
            CertError::MalformedExtension { .. } => "malformed_extension",
            CertError::IssuerMismatch { .. } => "issuer_mismatch",
            CertError::InvalidSigningTime(_) => "invalid_signing_time",
            CertError::NotValidAtSigningTime { .. } => "not_valid_at_signing_time",
            CertError::LeafIsCa => "leaf_is_ca",
            CertError::MissingCodeSigning { .. } => "missing_code_signing",
            CertError::TooManyIntermediates { .. } => "too_many_intermediates",
            CertError::NoTrustedAuthority => "no_trusted_authority",
            CertError::UntrustedChain { .. } => "untrusted_chain",
            CertError::SctMissing => "sct_missing",
            CertError::SctMalformed(_) => "sct_malformed",
            CertError::SctUnverified { .. } => "sct_unverified",
        }
    }
}

/// Decodes every `CERTIFICATE` block of `pem` into DER, in order. Other PEM blocks are ignored;
/// each certificate must parse as X.509.
pub fn certificates_from_pem(pem: &str) -> Result<Vec<Vec<u8>>, CertError> {
    let mut certificates = Vec::new();
    for (index, block) in CertificateDer::pem_slice_iter(pem.as_bytes()).enumerate() {
        let der = block.map_err(|err| CertError::Pem(err.to_string()))?;
        parse_certificate(&der, || format!("pem certificate {}", index + 1))?;
        certificates.push(der.to_vec());
    }
    if certificates.is_empty() {
        return Err(CertError::NoCertificateInPem);
    }
    Ok(certificates)
}

/// Parses DER as X.509, naming the certificate (`what`) in the error.
fn parse_certificate(der: &[u8], what: impl FnOnce() -> String) -> Result<Certificate, CertError> {
    Certificate::from_der(der).map_err(|err| CertError::Malformed {
        what: what(),
        detail: err.to_string(),
    })
}

/// RFC 3339 rendering of Unix seconds for messages.
fn format_time(secs: i64) -> String {
    match jiff::Timestamp::from_second(secs) {
        Ok(time) => time.to_string(),
        Err(_) => format!("{secs} (unix seconds)"),
    }
}

/// `notBefore`/`notAfter` of a certificate in Unix seconds.
fn validity_secs(cert: &Certificate) -> (i64, i64) {
    let validity = cert.tbs_certificate().validity();
    let secs = |time: x509_cert::time::Time| {
        i64::try_from(time.to_unix_duration().as_secs()).unwrap_or(i64::MAX)
    };
    (secs(validity.not_before), secs(validity.not_after))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_are_distinct_labels() {
        let errors = [
            CertError::Pem(String::new()),
            CertError::NoCertificateInPem,
            CertError::LeafIsCa,
            CertError::NoTrustedAuthority,
            CertError::SctMissing,
            CertError::SctMalformed(String::new()),
            CertError::InvalidSigningTime(-1),
        ];
        let mut reasons: Vec<_> = errors.iter().map(CertError::reason).collect();
        reasons.sort_unstable();
        reasons.dedup();
        assert_eq!(reasons.len(), errors.len());
        assert!(
            reasons
                .iter()
                .all(|r| r.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
        );
    }

    #[test]
    fn format_time_is_rfc3339() {
        assert_eq!(format_time(1775719409), "2026-04-09T07:23:29Z");
        assert_eq!(
            format_time(i64::MAX),
            format!("{} (unix seconds)", i64::MAX)
        );
    }

    #[test]
    fn pem_without_certificates_is_an_error() {
        assert_eq!(
            certificates_from_pem(""),
            Err(CertError::NoCertificateInPem)
        );
        let key_only = "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n";
        assert_eq!(
            certificates_from_pem(key_only),
            Err(CertError::NoCertificateInPem)
        );
    }
}
