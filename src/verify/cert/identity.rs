//! Who a Fulcio certificate was issued to: SANs, the OIDC issuer and CI claims.

use std::collections::BTreeSet;

use x509_cert::Certificate;
use x509_cert::der::Decode;
use x509_cert::der::oid::ObjectIdentifier;
use x509_cert::ext::pkix::SubjectAltName;
use x509_cert::ext::pkix::name::GeneralName;

use super::{CertError, parse_certificate};

/// Subject Alternative Name, RFC 5280 §4.2.1.6.
pub(super) const SUBJECT_ALT_NAME: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.17");
/// Fulcio's OIDC issuer, deprecated form: the raw issuer string as the extension value.
const ISSUER_V1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.57264.1.1");
/// Fulcio's OIDC issuer: a DER UTF8String.
const ISSUER_V2: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.57264.1.8");
/// Fulcio's SAN otherName type for a username identity: a UTF8String.
const USERNAME_OTHER_NAME: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.57264.1.7");

/// Who a certificate was issued to. Read without any trust decision: only meaningful for a
/// leaf that [`super::verify_leaf`] accepted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CertificateIdentity {
    /// OIDC issuer: extension 1.3.6.1.4.1.57264.1.8 (DER UTF8String) or, when absent, the
    /// deprecated 1.3.6.1.4.1.57264.1.1 (raw string). `None` when neither is present (2021
    /// leaves). When both are present they must agree.
    pub issuer: Option<String>,
    /// Every SAN of these kinds, in certificate order: rfc822Name (e-mail), URI (e.g. a GitHub
    /// workflow), DNS name, and otherName of type 1.3.6.1.4.1.57264.1.7 (username).
    pub subjects: Vec<String>,
    /// Further Fulcio claims (1.3.6.1.4.1.57264.1.2–1.6 and 1.9–1.22), for messages only. A
    /// claim whose value does not decode is left out rather than failing the certificate.
    pub claims: Vec<FulcioClaim>,
}

/// One informational Fulcio extension, e.g. `source-repository-ref` = `refs/tags/v1.34.0`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FulcioClaim {
    /// The extension's OID, dotted.
    pub oid: &'static str,
    /// A stable kebab-case name for the claim.
    pub name: &'static str,
    pub value: String,
}

/// How a claim's value is encoded in its extension.
#[derive(Clone, Copy)]
enum ClaimEncoding {
    /// The deprecated GitHub extensions: the string bytes themselves.
    Raw,
    /// The newer extensions: a DER UTF8String.
    Utf8String,
}

const CLAIMS: &[(&str, &str, ClaimEncoding)] = &[
    (
        "1.3.6.1.4.1.57264.1.2",
        "github-workflow-trigger",
        ClaimEncoding::Raw,
    ),
    (
        "1.3.6.1.4.1.57264.1.3",
        "github-workflow-sha",
        ClaimEncoding::Raw,
    ),
    (
        "1.3.6.1.4.1.57264.1.4",
        "github-workflow-name",
        ClaimEncoding::Raw,
    ),
    (
        "1.3.6.1.4.1.57264.1.5",
        "github-workflow-repository",
        ClaimEncoding::Raw,
    ),
    (
        "1.3.6.1.4.1.57264.1.6",
        "github-workflow-ref",
        ClaimEncoding::Raw,
    ),
    (
        "1.3.6.1.4.1.57264.1.9",
        "build-signer-uri",
        ClaimEncoding::Utf8String,
    ),
    (
        "1.3.6.1.4.1.57264.1.10",
        "build-signer-digest",
        ClaimEncoding::Utf8String,
    ),
    (
        "1.3.6.1.4.1.57264.1.11",
        "runner-environment",
        ClaimEncoding::Utf8String,
    ),
    (
        "1.3.6.1.4.1.57264.1.12",
        "source-repository-uri",
        ClaimEncoding::Utf8String,
    ),
    (
        "1.3.6.1.4.1.57264.1.13",
        "source-repository-digest",
        ClaimEncoding::Utf8String,
    ),
    (
        "1.3.6.1.4.1.57264.1.14",
        "source-repository-ref",
        ClaimEncoding::Utf8String,
    ),
    (
        "1.3.6.1.4.1.57264.1.15",
        "source-repository-identifier",
        ClaimEncoding::Utf8String,
    ),
    (
        "1.3.6.1.4.1.57264.1.16",
        "source-repository-owner-uri",
        ClaimEncoding::Utf8String,
    ),
    (
        "1.3.6.1.4.1.57264.1.17",
        "source-repository-owner-identifier",
        ClaimEncoding::Utf8String,
    ),
    (
        "1.3.6.1.4.1.57264.1.18",
        "build-config-uri",
        ClaimEncoding::Utf8String,
    ),
    (
        "1.3.6.1.4.1.57264.1.19",
        "build-config-digest",
        ClaimEncoding::Utf8String,
    ),
    (
        "1.3.6.1.4.1.57264.1.20",
        "build-trigger",
        ClaimEncoding::Utf8String,
    ),
    (
        "1.3.6.1.4.1.57264.1.21",
        "run-invocation-uri",
        ClaimEncoding::Utf8String,
    ),
    (
        "1.3.6.1.4.1.57264.1.22",
        "source-repository-visibility-at-signing",
        ClaimEncoding::Utf8String,
    ),
];

/// The identity in `leaf_der`, with no trust decision (for explaining denials).
pub fn identity_of(leaf_der: &[u8]) -> Result<CertificateIdentity, CertError> {
    let leaf = parse_certificate(leaf_der, || "leaf certificate".to_string())?;
    identity_from(&leaf)
}

/// Rejects a certificate that repeats an extension (RFC 5280 §4.2: "MUST NOT include more than
/// one instance of a particular extension"), so no reader can pick a different instance.
pub(super) fn reject_duplicate_extensions(cert: &Certificate) -> Result<(), CertError> {
    let mut seen = BTreeSet::new();
    for ext in cert
        .tbs_certificate()
        .extensions()
        .map_or(&[][..], Vec::as_slice)
    {
        if !seen.insert(ext.extn_id) {
            return Err(CertError::DuplicateExtension {
                oid: ext.extn_id.to_string(),
            });
        }
    }
    Ok(())
}

pub(super) fn identity_from(cert: &Certificate) -> Result<CertificateIdentity, CertError> {
    reject_duplicate_extensions(cert)?;
    let mut issuer_v1 = None;
    let mut issuer_v2 = None;
    let mut identity = CertificateIdentity::default();
    for ext in cert
        .tbs_certificate()
        .extensions()
        .map_or(&[][..], Vec::as_slice)
    {
        let value = ext.extn_value.as_bytes();
        if ext.extn_id == SUBJECT_ALT_NAME {
            identity.subjects = subjects(value)?;
        } else if ext.extn_id == ISSUER_V1 {
            let issuer = String::from_utf8(value.to_vec()).map_err(|err| {
                malformed("oidc issuer (v1)", ISSUER_V1, format!("not utf-8: {err}"))
            })?;
            issuer_v1 = Some(issuer);
        } else if ext.extn_id == ISSUER_V2 {
            let issuer = String::from_der(value).map_err(|err| {
                malformed(
                    "oidc issuer",
                    ISSUER_V2,
                    format!("expected a der utf8string: {err}"),
                )
            })?;
            issuer_v2 = Some(issuer);
        } else if let Some(claim) = claim(ext.extn_id, value) {
            identity.claims.push(claim);
        }
    }
    identity.issuer = match (issuer_v1, issuer_v2) {
        (Some(v1), Some(v2)) if v1 != v2 => return Err(CertError::IssuerMismatch { v1, v2 }),
        (_, Some(v2)) => Some(v2),
        (v1, None) => v1,
    };
    Ok(identity)
}

fn subjects(san_der: &[u8]) -> Result<Vec<String>, CertError> {
    let san = SubjectAltName::from_der(san_der).map_err(|err| {
        malformed(
            "subject alternative name",
            SUBJECT_ALT_NAME,
            err.to_string(),
        )
    })?;
    let mut subjects = Vec::new();
    for name in san.0 {
        match name {
            GeneralName::Rfc822Name(name)
            | GeneralName::UniformResourceIdentifier(name)
            | GeneralName::DnsName(name) => subjects.push(name.to_string()),
            GeneralName::OtherName(other) if other.type_id == USERNAME_OTHER_NAME => {
                let username = other.value.decode_as::<String>().map_err(|err| {
                    malformed(
                        "subject alternative name",
                        SUBJECT_ALT_NAME,
                        format!("username otherName is not a utf8string: {err}"),
                    )
                })?;
                subjects.push(username);
            }
            _ => {}
        }
    }
    Ok(subjects)
}

fn claim(oid: ObjectIdentifier, value: &[u8]) -> Option<FulcioClaim> {
    let (dotted, name, encoding) = CLAIMS
        .iter()
        .find(|(dotted, _, _)| ObjectIdentifier::new(dotted).is_ok_and(|known| known == oid))?;
    let value = match encoding {
        ClaimEncoding::Raw => String::from_utf8(value.to_vec()).ok()?,
        ClaimEncoding::Utf8String => String::from_der(value).ok()?,
    };
    Some(FulcioClaim {
        oid: dotted,
        name,
        value,
    })
}

fn malformed(name: &'static str, oid: ObjectIdentifier, detail: String) -> CertError {
    CertError::MalformedExtension {
        name,
        oid: oid.to_string(),
        detail,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claim_table_oids_parse_and_names_are_unique() {
        let mut names = BTreeSet::new();
        for (dotted, name, _) in CLAIMS {
            assert!(ObjectIdentifier::new(dotted).is_ok(), "{dotted}");
            assert!(names.insert(*name), "{name}");
        }
    }

    #[test]
    fn claims_decode_by_encoding() {
        let trigger = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.57264.1.2");
        assert_eq!(
            claim(trigger, b"push").map(|c| (c.name, c.value)),
            Some(("github-workflow-trigger", "push".to_string()))
        );
        let runner = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.57264.1.11");
        let der = [&[0x0c, 13][..], b"github-hosted"].concat();
        assert_eq!(
            claim(runner, &der).map(|c| c.value),
            Some("github-hosted".to_string())
        );
        // Raw bytes where a UTF8String is expected: left out, not an error.
        assert_eq!(claim(runner, b"github-hosted"), None);
        assert_eq!(claim(ISSUER_V2, b"x"), None);
    }
}
