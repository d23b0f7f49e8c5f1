//! Chaining a signing certificate to a trusted certificate authority at the signing time.
//!
//! Path building and signature checks are rustls-webpki's. webpki checks the validity of the
//! leaf and of every intermediate at the given time, basic constraints (the leaf must not be a
//! CA, issuers must be), path length and name constraints, and the extended key usage of every
//! certificate in the path. It does not look at a trust anchor beyond its subject, key and name
//! constraints, so the anchor certificate's own validity and the authority's `valid_for` are
//! checked here. It has no revocation (and Fulcio publishes none).

use rustls_pki_types::{CertificateDer, TrustAnchor, UnixTime};
use rustls_webpki::{ALL_VERIFICATION_ALGS, EndEntityCert, KeyUsage, anchor_from_trusted_cert};
use x509_cert::Certificate;
use x509_cert::der::Encode;
use x509_cert::der::oid::ObjectIdentifier;
use x509_cert::ext::pkix::{BasicConstraints, ExtendedKeyUsage};

use super::identity::identity_from;
use super::{
    CertError, POLICY_CA_CERT, VerifiedLeaf, format_time, parse_certificate, validity_secs,
};
use crate::verify::trust::CertificateAuthority;

/// At most this many intermediates may come with a signature; a bound on path-building work.
pub const MAX_PRESENTED_INTERMEDIATES: usize = 10;

const BASIC_CONSTRAINTS: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.19");
const EXTENDED_KEY_USAGE: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.37");
const CODE_SIGNING: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.3.3");
/// The DER value bytes of 1.3.6.1.5.5.7.3.3, as webpki's `KeyUsage` wants them.
const CODE_SIGNING_OID_VALUE: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x03];

/// Chains `leaf_der` to one of `authorities`, or to one of `extra_roots_der`, at time `at`.
///
/// - `presented_intermediates`: certificates that came with the signature (cosign's
///   `dev.sigstore.cosign/chain` annotation, a bundle's chain); they are only candidates for
///   path building and never become anchors, so a presented root is ignored.
/// - `authorities`: each is tried on its own: the last certificate of its `chain_der` is its
///   trust anchor, the others are intermediates usable only with that anchor. The authority's
///   `valid_for` must contain `at`.
/// - `extra_roots_der`: anchors from a policy's `keyless.ca-cert` (no `valid_for` of their own),
///   each tried on its own, with the presented intermediates only.
/// - `at`: the signing time in Unix seconds (a verified Rekor `integratedTime`).
///
/// Checks: the leaf, every intermediate and the anchor certificate are valid at `at` (ends
/// included); the leaf has extended key usage codeSigning and is not a CA; every signature on the
/// path verifies; issuers are CAs within their path length.
pub fn verify_leaf(
    leaf_der: &[u8],
    presented_intermediates: &[Vec<u8>],
    authorities: &[CertificateAuthority],
    extra_roots_der: &[Vec<u8>],
    at: i64,
) -> Result<VerifiedLeaf, CertError> {
    let leaf = parse_certificate(leaf_der, || "leaf certificate".to_string())?;
    let identity = identity_from(&leaf)?;
    let (not_before, not_after) = validity_secs(&leaf);
    let time = u64::try_from(at)
        .map(|secs| UnixTime::since_unix_epoch(std::time::Duration::from_secs(secs)))
        .map_err(|_| CertError::InvalidSigningTime(at))?;
    if at < not_before || at > not_after {
        return Err(CertError::NotValidAtSigningTime {
            at: format_time(at),
            not_before: format_time(not_before),
            not_after: format_time(not_after),
        });
    }
    check_not_ca(&leaf)?;
    check_code_signing(&leaf)?;

    if presented_intermediates.len() > MAX_PRESENTED_INTERMEDIATES {
        return Err(CertError::TooManyIntermediates {
            found: presented_intermediates.len(),
            max: MAX_PRESENTED_INTERMEDIATES,
        });
    }
    for (index, der) in presented_intermediates.iter().enumerate() {
        parse_certificate(der, || {
            format!("presented intermediate certificate {}", index + 1)
        })?;
    }
    if authorities.is_empty() && extra_roots_der.is_empty() {
        return Err(CertError::NoTrustedAuthority);
    }

    let leaf_cert = CertificateDer::from(leaf_der);
    let end_entity = EndEntityCert::try_from(&leaf_cert).map_err(|err| CertError::Malformed {
        what: "leaf certificate".to_string(),
        detail: format!("{err:?}"),
    })?;
    let presented: Vec<CertificateDer<'_>> = presented_intermediates
        .iter()
        .map(|der| CertificateDer::from(der.as_slice()))
        .collect();

    let mut attempts = Vec::new();
    for (index, authority) in authorities.iter().enumerate() {
        let name = format!("{} (authority {})", authority.uri, index + 1);
        let Some((root_der, own_intermediates)) = authority.chain_der.split_last() else {
            attempts.push(format!("{name}: has no certificates"));
            continue;
        };
        if !authority.valid_for.contains(at) {
            attempts.push(format!(
                "{name}: authority not valid at signing time: valid {}",
                describe_range(authority.valid_for.start, authority.valid_for.end)
            ));
            continue;
        }
        let mut intermediates: Vec<CertificateDer<'_>> = own_intermediates
            .iter()
            .map(|der| CertificateDer::from(der.as_slice()))
            .collect();
        intermediates.extend(presented.iter().cloned());
        match chain_to(&end_entity, root_der, &intermediates, at, time) {
            Ok(issuer_der) => {
                return verified(
                    &leaf,
                    identity,
                    authority.uri.clone(),
                    issuer_der,
                    (not_before, not_after),
                );
            }
            Err(reason) => attempts.push(format!("{name}: {reason}")),
        }
    }
    for (index, root_der) in extra_roots_der.iter().enumerate() {
        match chain_to(&end_entity, root_der, &presented, at, time) {
            Ok(issuer_der) => {
                return verified(
                    &leaf,
                    identity,
                    POLICY_CA_CERT.to_string(),
                    issuer_der,
                    (not_before, not_after),
                );
            }
            Err(reason) => attempts.push(format!("{POLICY_CA_CERT} {}: {reason}", index + 1)),
        }
    }
    Err(CertError::UntrustedChain {
        at: format_time(at),
        attempts,
    })
}

fn verified(
    leaf: &Certificate,
    identity: super::CertificateIdentity,
    authority_uri: String,
    issuer_der: Vec<u8>,
    (not_before, not_after): (i64, i64),
) -> Result<VerifiedLeaf, CertError> {
    let public_key_spki_der = leaf
        .tbs_certificate()
        .subject_public_key_info()
        .to_der()
        .map_err(|err| CertError::Malformed {
            what: "leaf certificate".to_string(),
            detail: format!("could not encode its public key: {err}"),
        })?;
    Ok(VerifiedLeaf {
        identity,
        public_key_spki_der,
        not_before,
        not_after,
        authority_uri,
        issuer_der,
    })
}

/// One path-building attempt against a single anchor; returns the leaf's direct issuer.
fn chain_to(
    end_entity: &EndEntityCert<'_>,
    root_der: &[u8],
    intermediates: &[CertificateDer<'_>],
    at: i64,
    time: UnixTime,
) -> Result<Vec<u8>, String> {
    let root = parse_certificate(root_der, || "root".to_string()).map_err(|err| err.to_string())?;
    let subject = root.tbs_certificate().subject().to_string();
    let (not_before, not_after) = validity_secs(&root);
    if at < not_before || at > not_after {
        return Err(format!(
            "root {subject} not valid at signing time: valid {}–{}",
            format_time(not_before),
            format_time(not_after)
        ));
    }
    let root_cert = CertificateDer::from(root_der);
    let anchor: TrustAnchor<'_> = anchor_from_trusted_cert(&root_cert)
        .map_err(|err| format!("root {subject} is not usable as a trust anchor: {err:?}"))?;
    let anchors = [anchor];
    let path = end_entity
        .verify_for_usage(
            ALL_VERIFICATION_ALGS,
            &anchors,
            intermediates,
            time,
            KeyUsage::required(CODE_SIGNING_OID_VALUE),
            None,
            None,
        )
        .map_err(|err| format!("no valid path to root {subject}: {}", describe(&err)))?;
    let issuer = match path.intermediate_certificates().next() {
        Some(issuer) => issuer.der().to_vec(),
        None => root_der.to_vec(),
    };
    Ok(issuer)
}

/// webpki's errors in words. The leaf's own validity, CA flag and usage are checked before
/// path building, so time and usage errors here concern issuing certificates.
fn describe(err: &rustls_webpki::Error) -> String {
    use rustls_webpki::Error as E;
    match err {
        E::UnknownIssuer => "issuer not found (unknown issuer)".to_string(),
        E::InvalidSignatureForPublicKey => "a certificate signature does not verify".to_string(),
        E::CertExpired { not_after, .. } => format!(
            "an intermediate certificate expired at {}",
            format_time(unix(not_after))
        ),
        E::CertNotValidYet { not_before, .. } => format!(
            "an intermediate certificate is not valid before {}",
            format_time(unix(not_before))
        ),
        E::EndEntityUsedAsCa => "an issuing certificate is not a certificate authority".to_string(),
        E::CaUsedAsEndEntity => "the leaf is a certificate authority".to_string(),
        E::PathLenConstraintViolated => "path length constraint violated".to_string(),
        E::RequiredEkuNotFoundContext(_) => {
            "an intermediate certificate's extended key usage excludes code signing".to_string()
        }
        E::NameConstraintViolation => "name constraints violated".to_string(),
        other => format!("{other:?}"),
    }
}

fn unix(time: &UnixTime) -> i64 {
    i64::try_from(time.as_secs()).unwrap_or(i64::MAX)
}

fn describe_range(start: Option<i64>, end: Option<i64>) -> String {
    match (start, end) {
        (Some(start), Some(end)) => format!("{}–{}", format_time(start), format_time(end)),
        (Some(start), None) => format!("from {}", format_time(start)),
        (None, Some(end)) => format!("until {}", format_time(end)),
        (None, None) => "always".to_string(),
    }
}

fn check_not_ca(leaf: &Certificate) -> Result<(), CertError> {
    let constraints = leaf
        .tbs_certificate()
        .get_extension::<BasicConstraints>()
        .map_err(|err| CertError::MalformedExtension {
            name: "basic constraints",
            oid: BASIC_CONSTRAINTS.to_string(),
            detail: err.to_string(),
        })?;
    match constraints {
        Some((_, constraints)) if constraints.ca => Err(CertError::LeafIsCa),
        _ => Ok(()),
    }
}

fn check_code_signing(leaf: &Certificate) -> Result<(), CertError> {
    let usage = leaf
        .tbs_certificate()
        .get_extension::<ExtendedKeyUsage>()
        .map_err(|err| CertError::MalformedExtension {
            name: "extended key usage",
            oid: EXTENDED_KEY_USAGE.to_string(),
            detail: err.to_string(),
        })?;
    match usage {
        Some((_, usage)) if usage.0.contains(&CODE_SIGNING) => Ok(()),
        Some((_, usage)) => Err(CertError::MissingCodeSigning {
            found: format!(
                "[{}]",
                usage
                    .0
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }),
        None => Err(CertError::MissingCodeSigning {
            found: "absent".to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use x509_cert::der::Encode;

    #[test]
    fn code_signing_value_bytes_match_the_oid() {
        let der = CODE_SIGNING.to_der().unwrap();
        assert_eq!(&der[2..], CODE_SIGNING_OID_VALUE);
    }

    #[test]
    fn describe_range_covers_open_ends() {
        assert_eq!(describe_range(None, None), "always");
        assert_eq!(describe_range(Some(0), None), "from 1970-01-01T00:00:00Z");
        assert_eq!(describe_range(None, Some(0)), "until 1970-01-01T00:00:00Z");
    }
}
