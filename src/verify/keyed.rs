//! `key` authorities: does one of the discovered signatures satisfy the key?
//!
//! A signature counts only when, on that same signature:
//! 1. the signed payload names the image digest (simple-signing `docker-manifest-digest`, or the
//!    in-toto subject of a v3 bundle);
//! 2. the signature verifies over the exact signed bytes (payload, or the DSSE PAE) with the key
//!    and the authority's hash algorithm;
//! 3. every annotation the authority requires is in the signed content;
//! 4. when the authority has `ctlog`: a Rekor entry is present, verifies with a trusted log key
//!    (SET for legacy signatures; SET or inclusion proof for bundles), and records exactly this
//!    payload, signature and key.

use super::bundle::{self, BundleContent, DsseEnvelope, SigstoreBundle, VerificationMaterial};
use super::discovery::{BundleSignature, Discovered, LegacySignature, SignatureVerdict};
use super::key::SignatureError;

use super::rekor::{RekorBundle, verify_tlog_entry};
use super::simple_signing::{self, missing_annotation};
use crate::image::Digest;
use crate::policy::compiled::KeyAuthority;

/// Why a signature was rejected by `signer` (e.g. "ECDSA P-256 key from key.data (sha256:…)"),
/// said once: the key error already names the key, the caller knows where it came from.
pub fn signature_rejection(err: &SignatureError, signer: &str) -> String {
    match err {
        SignatureError::Invalid { how, .. } => {
            format!("signature does not verify with the {signer} ({how})")
        }
        other => format!("cannot check the signature with the {signer}: {other}"),
    }
}

/// The in-toto predicate type cosign v3 uses for image signatures.
pub const COSIGN_SIGN_PREDICATE: &str = "https://sigstore.dev/cosign/sign/v1";
pub const IN_TOTO_PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";

/// Checks the discovered signatures of `digest` against `authority`.
pub fn check(
    authority: &KeyAuthority,
    digest: &Digest,
    discovered: &Discovered,
) -> SignatureVerdict {
    discovered.judge(
        |signature| check_legacy(authority, digest, signature),
        |signature| check_bundle(authority, digest, signature),
    )
}

fn key_description(authority: &KeyAuthority) -> String {
    let fingerprint = authority.key.fingerprint();
    format!(
        "{} key from {} (sha256:{}…)",
        authority.key.algorithm(),
        authority.key_origin,
        &fingerprint[..fingerprint.len().min(12)]
    )
}

fn check_legacy(
    authority: &KeyAuthority,
    digest: &Digest,
    signature: &LegacySignature,
) -> Result<String, String> {
    let raw_signature = signature.signature.as_ref().map_err(Clone::clone)?;
    let payload = simple_signing::parse(&signature.payload)?;
    if &payload.manifest_digest != digest {
        return Err(format!(
            "payload is for {}, not {digest} (a signature of another image)",
            payload.manifest_digest
        ));
    }
    authority
        .key
        .verify(&signature.payload, raw_signature, authority.hash)
        .map_err(|err| signature_rejection(&err, &key_description(authority)))?;
    if let Some(missing) = missing_annotation(&authority.annotations, &payload.annotations) {
        return Err(missing);
    }
    let mut evidence = format!(
        "signature in {} verified with the {}",
        signature.location,
        key_description(authority)
    );
    if let Some(requirement) = &authority.tlog {
        let annotation = signature.rekor_bundle.as_deref().ok_or(
            "no transparency log entry (dev.sigstore.cosign/bundle annotation), which the authority's ctlog requires",
        )?;
        let entry = RekorBundle::from_annotation(annotation)
            .map_err(|e| format!("transparency log entry: {e}"))?
            .to_tlog_entry();
        let verified = verify_tlog_entry(&entry, &requirement.logs, true)
            .map_err(|e| format!("transparency log entry: {e}"))?;
        verified
            .body
            .check_binds_simple_signature(
                &signature.payload,
                raw_signature,
                authority.key.spki_der(),
            )
            .map_err(|e| format!("transparency log entry does not record this signature: {e}"))?;
        evidence.push_str(&format!(
            "; rekor entry {} in {}",
            verified.log_index, verified.log_base_url
        ));
    }
    Ok(evidence)
}

fn check_bundle(
    authority: &KeyAuthority,
    digest: &Digest,
    signature: &BundleSignature,
) -> Result<String, String> {
    let bundle = bundle::parse_bundle(&signature.bytes).map_err(|e| format!("bundle: {e}"))?;
    if !matches!(
        bundle.verification_material,
        VerificationMaterial::PublicKey { .. }
    ) {
        return Err("bundle is signed with a certificate (keyless), not a key".to_string());
    }
    let BundleContent::Dsse(envelope) = &bundle.content else {
        return Err("bundle signs a message digest, not an image statement (DSSE)".to_string());
    };
    let annotations = check_dsse_statement(envelope, digest)?;
    let verified_signature = envelope
        .signatures
        .iter()
        .find(|s| {
            authority
                .key
                .verify(&envelope.pae(), &s.sig, authority.hash)
                .is_ok()
        })
        .ok_or_else(|| {
            format!(
                "none of the {} DSSE signature(s) verifies with the {} ({} hash)",
                envelope.signatures.len(),
                key_description(authority),
                authority.hash
            )
        })?;
    if let Some(missing) = missing_annotation(&authority.annotations, &annotations) {
        return Err(missing);
    }
    let mut evidence = format!(
        "sigstore bundle {} verified with the {}",
        signature.location,
        key_description(authority)
    );
    if let Some(requirement) = &authority.tlog {
        let index = bound_tlog_entry(
            &bundle,
            envelope,
            &verified_signature.sig,
            authority.key.spki_der(),
            &requirement.logs,
        )?;
        evidence.push_str(&format!("; rekor entry {index}"));
    }
    Ok(evidence)
}

/// The statement inside a DSSE envelope must be a cosign image signature naming `digest`.
/// Returns the annotations of the subject that names it.
pub fn check_dsse_statement(
    envelope: &DsseEnvelope,
    digest: &Digest,
) -> Result<std::collections::BTreeMap<String, String>, String> {
    if envelope.payload_type != IN_TOTO_PAYLOAD_TYPE {
        return Err(format!(
            "DSSE payload type is {:?}, not {IN_TOTO_PAYLOAD_TYPE}",
            envelope.payload_type
        ));
    }
    if envelope.signatures.is_empty() {
        return Err("the DSSE envelope has no signatures".to_string());
    }
    let statement = bundle::parse_statement(&envelope.payload).map_err(|e| e.to_string())?;
    if statement.predicate_type != COSIGN_SIGN_PREDICATE {
        return Err(format!(
            "statement predicate type is {:?}, not {COSIGN_SIGN_PREDICATE} (an attestation, not a signature)",
            statement.predicate_type
        ));
    }
    let algorithm = digest.algorithm().as_str();
    let subject = statement
        .subjects
        .iter()
        .find(|s| {
            s.digests
                .get(algorithm)
                .is_some_and(|hex| hex.eq_ignore_ascii_case(digest.hex()))
        })
        .ok_or_else(|| {
            let named: Vec<String> = statement
                .subjects
                .iter()
                .flat_map(|s| s.digests.iter().map(|(a, h)| format!("{a}:{h}")))
                .collect();
            format!(
                "statement is for {}, not {digest} (a signature of another image)",
                if named.is_empty() {
                    "no digest".to_string()
                } else {
                    named.join(", ")
                }
            )
        })?;
    Ok(subject.annotations.clone())
}

/// A tlog entry of the bundle that verifies with `logs` and records this envelope, signature and
/// verifier; returns its log index.
pub fn bound_tlog_entry(
    bundle: &SigstoreBundle,
    envelope: &DsseEnvelope,
    signature: &[u8],
    verifier_der: &[u8],
    logs: &[crate::verify::trust::LogKey],
) -> Result<i64, String> {
    if bundle.tlog_entries.is_empty() {
        return Err(
            "bundle has no transparency log entry, which the authority's ctlog requires"
                .to_string(),
        );
    }
    let mut problems = Vec::new();
    for entry in &bundle.tlog_entries {
        let checked = verify_tlog_entry(entry, logs, false)
            .map_err(|e| e.to_string())
            .and_then(|verified| {
                verified
                    .body
                    .check_binds_dsse(envelope, signature, verifier_der)
                    .map_err(|e| format!("does not record this signature: {e}"))
                    .map(|()| verified.log_index)
            });
        match checked {
            Ok(index) => return Ok(index),
            Err(problem) => problems.push(problem),
        }
    }
    Err(format!("transparency log entry: {}", problems.join("; ")))
}
