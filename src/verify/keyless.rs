//! `keyless` authorities: does one of the discovered signatures carry a Fulcio certificate for an
//! expected identity, with everything bound together?
//!
//! A signature counts only when, on that same signature:
//! 1. the signed payload names the image digest (simple-signing, or the in-toto subject);
//! 2. a Rekor entry verifies with a trusted log key *by its SET*, which makes its integrated time
//!    the trusted signing time (Fulcio leaves expire within minutes, so never "now");
//! 3. the leaf chains to a trusted Fulcio CA (or the policy's `ca-cert`) at that time, with the
//!    code-signing usage, the CA valid then too;
//! 4. the signature verifies over the exact signed bytes (payload, or the DSSE PAE) with the
//!    leaf's key;
//! 5. the Rekor entry records exactly this payload, signature and certificate;
//! 6. the leaf carries an SCT from a trusted CT log, unless the policy has `insecureIgnoreSCT`;
//! 7. the certificate's issuer and subject match one of the expected identities;
//! 8. every annotation the authority requires is in the signed content.
//!
//! The sigstore crate's keyless constraints skip 4 and 5 and let different layers satisfy
//! different constraints; nothing here relies on them.

use std::collections::BTreeMap;

use super::bundle::{self, BundleContent, VerificationMaterial};
use super::cert::{self, CertificateIdentity, VerifiedLeaf};
use super::discovery::{BundleSignature, Discovered, LegacySignature, SignatureVerdict};
use super::key::{HashAlgorithm, KeyAlgorithm, PublicKey};
use super::keyed::{check_dsse_statement, signature_rejection};

use super::rekor::{RekorBundle, VerifiedTlogEntry, verify_tlog_entry};
use super::simple_signing::{self, missing_annotation};
use crate::image::Digest;
use crate::policy::compiled::KeylessAuthority;

/// Checks the discovered signatures of `digest` against `authority`.
pub fn check(
    authority: &KeylessAuthority,
    digest: &Digest,
    discovered: &Discovered,
) -> SignatureVerdict {
    discovered.judge(
        |signature| check_legacy(authority, digest, signature).map_err(|r| r.to_string()),
        |signature| check_bundle(authority, digest, signature).map_err(|r| r.to_string()),
    )
}

/// Why one signature was not accepted, with who its certificate names once that was readable:
/// a denial lists every signature's subjects and issuer, whatever check it failed.
#[derive(Debug)]
struct Rejection {
    reason: String,
    /// The reason already names the certificate's subjects and issuer (an identity mismatch).
    names_signer: bool,
    /// `subjects [...] with issuer ...` of the certificate, read without trusting it.
    signer: Option<String>,
}

impl Rejection {
    /// A reason that itself says who the certificate names.
    fn naming_signer(reason: String) -> Self {
        Rejection {
            reason,
            names_signer: true,
            signer: None,
        }
    }

    fn signed_by(mut self, signer: Option<String>) -> Self {
        if self.signer.is_none() {
            self.signer = signer;
        }
        self
    }
}

impl From<String> for Rejection {
    fn from(reason: String) -> Self {
        Rejection {
            reason,
            names_signer: false,
            signer: None,
        }
    }
}

impl From<&str> for Rejection {
    fn from(reason: &str) -> Self {
        Rejection::from(reason.to_string())
    }
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.reason)?;
        match &self.signer {
            Some(signer) if !self.names_signer => write!(f, " (certificate for {signer})"),
            _ => Ok(()),
        }
    }
}

/// Who a certificate names, for messages; `None` when it does not parse.
fn signer_of(leaf_der: &[u8]) -> Option<String> {
    cert::identity_of(leaf_der)
        .ok()
        .map(|identity| describe(&identity))
}

/// The hash cosign uses with a certificate's key: the key's natural one.
fn default_hash(key: &PublicKey) -> HashAlgorithm {
    match key.algorithm() {
        KeyAlgorithm::EcdsaP384 => HashAlgorithm::Sha384,
        KeyAlgorithm::EcdsaP521 => HashAlgorithm::Sha512,
        _ => HashAlgorithm::Sha256,
    }
}

fn check_legacy(
    authority: &KeylessAuthority,
    digest: &Digest,
    signature: &LegacySignature,
) -> Result<String, Rejection> {
    let certificate_pem = signature
        .certificate_pem
        .as_deref()
        .ok_or("no certificate (dev.sigstore.cosign/certificate): not a keyless signature")?;
    let leaf_der = single_certificate(certificate_pem)?;
    verify_legacy(authority, digest, signature, &leaf_der)
        .map_err(|rejection| rejection.signed_by(signer_of(&leaf_der)))
}

/// [`check_legacy`] once the certificate is known.
fn verify_legacy(
    authority: &KeylessAuthority,
    digest: &Digest,
    signature: &LegacySignature,
    leaf_der: &[u8],
) -> Result<String, Rejection> {
    let raw_signature = signature.signature.as_ref().map_err(Clone::clone)?;
    let payload = simple_signing::parse(&signature.payload)?;
    if &payload.manifest_digest != digest {
        return Err(format!(
            "payload is for {}, not {digest} (a signature of another image)",
            payload.manifest_digest
        )
        .into());
    }
    let presented = match signature.chain_pem.as_deref() {
        Some(chain) => {
            cert::certificates_from_pem(chain).map_err(|e| format!("certificate chain: {e}"))?
        }
        None => Vec::new(),
    };
    let annotation = signature
        .rekor_bundle
        .as_deref()
        .ok_or("no transparency log entry (dev.sigstore.cosign/bundle), so there is no trusted signing time")?;
    let entry = RekorBundle::from_annotation(annotation)
        .map_err(|e| format!("transparency log entry: {e}"))?
        .to_tlog_entry();
    let (tlog, signed_at) = trusted_entry(authority, &[entry])?;
    let leaf = trusted_leaf(authority, leaf_der, &presented, signed_at)?;
    let key = leaf_key(&leaf)?;
    key.verify(&signature.payload, raw_signature, default_hash(&key))
        .map_err(|e| signature_rejection(&e, &format!("certificate's {} key", key.algorithm())))?;
    tlog.body
        .check_binds_simple_signature(&signature.payload, raw_signature, leaf_der)
        .map_err(|e| format!("transparency log entry does not record this signature: {e}"))?;
    finish(
        authority,
        &leaf,
        leaf_der,
        &tlog,
        signed_at,
        &payload.annotations,
        &signature.location,
    )
}

fn check_bundle(
    authority: &KeylessAuthority,
    digest: &Digest,
    signature: &BundleSignature,
) -> Result<String, Rejection> {
    let bundle = bundle::parse_bundle(&signature.bytes).map_err(|e| format!("bundle: {e}"))?;
    let (leaf_der, presented) = match &bundle.verification_material {
        VerificationMaterial::Certificate(der) => (der.clone(), Vec::new()),
        VerificationMaterial::CertificateChain(chain) => match chain.split_first() {
            Some((leaf, rest)) => (leaf.clone(), rest.to_vec()),
            None => return Err("bundle has an empty certificate chain".into()),
        },
        VerificationMaterial::PublicKey { .. } => {
            return Err(
                "bundle is signed with a key, not a certificate: not a keyless signature".into(),
            );
        }
    };
    verify_bundle(authority, digest, signature, &bundle, &leaf_der, &presented)
        .map_err(|rejection| rejection.signed_by(signer_of(&leaf_der)))
}

/// [`check_bundle`] once the certificate is known.
fn verify_bundle(
    authority: &KeylessAuthority,
    digest: &Digest,
    signature: &BundleSignature,
    bundle: &bundle::SigstoreBundle,
    leaf_der: &[u8],
    presented: &[Vec<u8>],
) -> Result<String, Rejection> {
    let BundleContent::Dsse(envelope) = &bundle.content else {
        return Err("bundle signs a message digest, not an image statement (DSSE)".into());
    };
    let annotations = check_dsse_statement(envelope, digest)?;
    let (tlog, signed_at) = trusted_entry(authority, &bundle.tlog_entries)?;
    let leaf = trusted_leaf(authority, leaf_der, presented, signed_at)?;
    let key = leaf_key(&leaf)?;
    let pae = envelope.pae();
    let verified_signature = envelope
        .signatures
        .iter()
        .find(|s| key.verify(&pae, &s.sig, default_hash(&key)).is_ok())
        .ok_or_else(|| {
            format!(
                "none of the {} DSSE signature(s) verifies with the certificate's {} key",
                envelope.signatures.len(),
                key.algorithm()
            )
        })?;
    tlog.body
        .check_binds_dsse(envelope, &verified_signature.sig, leaf_der)
        .map_err(|e| format!("transparency log entry does not record this signature: {e}"))?;
    finish(
        authority,
        &leaf,
        leaf_der,
        &tlog,
        signed_at,
        &annotations,
        &signature.location,
    )
}

/// The first entry whose SET verifies with the authority's Rekor keys; its integrated time is
/// the signing time.
fn trusted_entry(
    authority: &KeylessAuthority,
    entries: &[super::rekor::TlogEntry],
) -> Result<(VerifiedTlogEntry, i64), String> {
    if entries.is_empty() {
        return Err("no transparency log entry, so there is no trusted signing time".to_string());
    }
    let mut problems = Vec::new();
    for entry in entries {
        match verify_tlog_entry(entry, &authority.tlog.logs, true) {
            Ok(verified) => match verified.integrated_time {
                Some(at) => return Ok((verified, at)),
                None => problems.push(
                    "the entry's integrated time is not covered by a verified SET".to_string(),
                ),
            },
            Err(err) => problems.push(err.to_string()),
        }
    }
    Err(format!("transparency log entry: {}", problems.join("; ")))
}

fn trusted_leaf(
    authority: &KeylessAuthority,
    leaf_der: &[u8],
    presented: &[Vec<u8>],
    signed_at: i64,
) -> Result<VerifiedLeaf, String> {
    cert::verify_leaf(
        leaf_der,
        presented,
        &authority.trust.material.certificate_authorities,
        &authority.extra_roots,
        signed_at,
    )
    .map_err(|err| format!("certificate is not trusted: {err}"))
}

fn leaf_key(leaf: &VerifiedLeaf) -> Result<PublicKey, String> {
    PublicKey::from_spki_der(&leaf.public_key_spki_der)
        .map_err(|e| format!("the certificate's public key is unusable: {e}"))
}

/// SCT, identity and annotations, then the evidence text.
fn finish(
    authority: &KeylessAuthority,
    leaf: &VerifiedLeaf,
    leaf_der: &[u8],
    tlog: &VerifiedTlogEntry,
    signed_at: i64,
    annotations: &BTreeMap<String, String>,
    location: &str,
) -> Result<String, Rejection> {
    if authority.require_sct {
        cert::verify_embedded_sct(leaf_der, &leaf.issuer_der, &authority.trust.material.ctlogs)
            .map_err(|e| {
                let hint = match e {
                    cert::CertError::SctMissing => {
                        "insecureIgnoreSCT: true accepts certificates without one: private CAs \
                         without a CT log, and Fulcio certificates from 2021, before Fulcio \
                         embedded SCTs"
                    }
                    _ => {
                        "the SCT must come from a CT log of the trust root; set insecureIgnoreSCT \
                         only for private CAs without a CT log"
                    }
                };
                format!("certificate transparency: {e} ({hint})")
            })?;
    }
    if !identity_matches(authority, &leaf.identity) {
        return Err(Rejection::naming_signer(format!(
            "none of the expected identities matched what was in the certificate, got subjects [{}] with issuer {} (expected {})",
            leaf.identity.subjects.join(", "),
            issuer_text(&leaf.identity),
            expected_identities(authority)
        )));
    }
    if let Some(missing) = missing_annotation(&authority.annotations, annotations) {
        return Err(missing.into());
    }
    Ok(format!(
        "signature in {location} by {}, certificate from {}, rekor entry {} in {} at {}",
        describe(&leaf.identity),
        leaf.authority_uri,
        tlog.log_index,
        tlog.log_base_url,
        jiff::Timestamp::from_second(signed_at)
            .map(|t| t.to_string())
            .unwrap_or_else(|_| signed_at.to_string())
    ))
}

/// Identities are OR-ed; both fields of an entry must match. An absent issuer (2021 Fulcio
/// leaves) is the empty string, as cosign treats it.
fn identity_matches(authority: &KeylessAuthority, identity: &CertificateIdentity) -> bool {
    let issuer = identity.issuer.as_deref().unwrap_or_default();
    authority.identities.iter().any(|expected| {
        expected.issuer.matches(issuer)
            && identity
                .subjects
                .iter()
                .any(|subject| expected.subject.matches(subject))
    })
}

fn expected_identities(authority: &KeylessAuthority) -> String {
    authority
        .identities
        .iter()
        .map(|i| format!("subject {} with issuer {}", i.subject, i.issuer))
        .collect::<Vec<_>>()
        .join(" or ")
}

fn describe(identity: &CertificateIdentity) -> String {
    format!(
        "subjects [{}] with issuer {}",
        identity.subjects.join(", "),
        issuer_text(identity)
    )
}

/// The certificate's OIDC issuer, or `(none)` for leaves without the extension (2021 Fulcio),
/// which identities match as the empty string.
fn issuer_text(identity: &CertificateIdentity) -> &str {
    identity.issuer.as_deref().unwrap_or("(none)")
}

fn single_certificate(pem: &str) -> Result<Vec<u8>, String> {
    let mut certificates =
        cert::certificates_from_pem(pem).map_err(|e| format!("certificate: {e}"))?;
    match certificates.len() {
        1 => Ok(certificates.remove(0)),
        n => Err(format!(
            "certificate annotation holds {n} certificates; expected the leaf only"
        )),
    }
}
