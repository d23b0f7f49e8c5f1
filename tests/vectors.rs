//! The real production signatures in `../shared/vectors` verify offline with the production
//! trust root, and forgeries derived from them (one thing tampered per test) do not. Transparency
//! log entries, SETs and checkpoints made by the `openssl` CLI check the same code against an
//! independent signer.

// Test helpers live outside #[test] functions, where clippy.toml's test allowances do not reach.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;
use sha2::{Digest, Sha256};
use x509_cert::Certificate;
use x509_cert::der::{Decode, Encode};

use verity::verify::bundle::{
    self, BundleContent, BundleVersion, DsseEnvelope, VerificationMaterial, parse_bundle,
    parse_statement,
};
use verity::verify::key::{HashAlgorithm, PublicKey};
use verity::verify::pem;
use verity::verify::rekor::{
    InclusionProof, RekorBody, RekorBundle, RekorError, TlogEntry, verify_tlog_entry,
};
use verity::verify::trust::{LogKey, TimeRange, TrustMaterial};

// ---------------------------------------------------------------- helpers

fn vectors_dir() -> PathBuf {
    let dir = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/vectors")).to_path_buf();
    assert!(
        dir.is_dir(),
        "the test vectors folder {} is missing: the crate expects ../shared/vectors next to it (the CI layout)",
        dir.display()
    );
    dir
}

fn vector(name: &str) -> Value {
    let path = vectors_dir().join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read vector {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

const KEYED: &str = "containers-image-2023-keyed-with-rekor.json";
const KEYLESS_2021: &str = "sigstore-rs-2021-keyless-email-rekord.json";
const V3_DSSE: &str = "sigstore-rs-2026-cosign-v3-bundle-github-actions-dsse.json";

fn text<'a>(vector: &'a Value, field: &str) -> &'a str {
    vector[field]
        .as_str()
        .unwrap_or_else(|| panic!("vector field {field} is not a string"))
}

fn b64(text: &str) -> Vec<u8> {
    STANDARD.decode(text).unwrap()
}

fn production_logs() -> Vec<LogKey> {
    TrustMaterial::production().unwrap().tlogs
}

fn single_pem_der(text: &str) -> Vec<u8> {
    pem::parse_single(text).unwrap().der
}

fn certificate_spki(cert_der: &[u8]) -> Vec<u8> {
    Certificate::from_der(cert_der)
        .unwrap()
        .tbs_certificate()
        .subject_public_key_info()
        .to_der()
        .unwrap()
}

/// The legacy annotation entry of a `.sig` vector.
fn legacy_entry(name: &str) -> TlogEntry {
    let vector = vector(name);
    let annotation = match vector["annotations"]["dev.sigstore.cosign/bundle"].as_str() {
        Some(annotation) => annotation.to_string(),
        None => vector["bundle"].to_string(),
    };
    RekorBundle::from_annotation(&annotation)
        .unwrap()
        .to_tlog_entry()
}

fn v3_bundle() -> bundle::SigstoreBundle {
    parse_bundle(vector(V3_DSSE)["bundle"].to_string().as_bytes()).unwrap()
}

fn v3_entry() -> TlogEntry {
    v3_bundle().tlog_entries.remove(0)
}

fn v3_envelope() -> DsseEnvelope {
    match v3_bundle().content {
        BundleContent::Dsse(envelope) => envelope,
        other => panic!("expected a DSSE envelope, got {other:?}"),
    }
}

fn expect_err(result: Result<impl std::fmt::Debug, RekorError>, reason: &str) -> String {
    let err = result.unwrap_err();
    assert_eq!(err.reason(), reason, "unexpected error: {err}");
    err.to_string()
}

fn flip(bytes: &mut [u8], index: usize) {
    bytes[index] ^= 0x01;
}

// ---------------------------------------------------------------- the three real vectors verify

#[test]
fn keyed_2023_hashedrekord_verifies_end_to_end() {
    let vector = vector(KEYED);
    let payload = text(&vector, "payload").as_bytes();
    let signature = b64(text(&vector, "signature_b64"));
    let key = PublicKey::from_pem(text(&vector, "public_key_pem")).unwrap();
    key.verify(payload, &signature, HashAlgorithm::Sha256)
        .unwrap();

    let verified = verify_tlog_entry(&legacy_entry(KEYED), &production_logs(), true).unwrap();
    assert_eq!(verified.log_index, 11_608_800);
    assert_eq!(verified.integrated_time, Some(1_674_251_859));
    assert_eq!(verified.log_base_url, "https://rekor.sigstore.dev");
    assert!(matches!(
        &verified.body,
        RekorBody::HashedRekord { digest_algorithm, .. } if digest_algorithm == "sha256"
    ));
    verified
        .body
        .check_binds_simple_signature(payload, &signature, key.spki_der())
        .unwrap();
}

#[test]
fn keyed_2023_wrong_key_neither_verifies_nor_binds() {
    let vector = vector(KEYED);
    let payload = text(&vector, "payload").as_bytes();
    let signature = b64(text(&vector, "signature_b64"));
    let wrong = PublicKey::from_pem(text(&vector, "wrong_public_key_pem")).unwrap();
    let err = wrong
        .verify(payload, &signature, HashAlgorithm::Sha256)
        .unwrap_err();
    assert_eq!(err.reason(), "signature_invalid");

    let verified = verify_tlog_entry(&legacy_entry(KEYED), &production_logs(), true).unwrap();
    let message = expect_err(
        verified
            .body
            .check_binds_simple_signature(payload, &signature, wrong.spki_der()),
        "rekor_verifier_mismatch",
    );
    assert!(
        message.starts_with("rekor entry records verifier public key sha256:"),
        "{message}"
    );
}

#[test]
fn keyless_2021_rekord_verifies_end_to_end() {
    let vector = vector(KEYLESS_2021);
    let payload = text(&vector, "payload").as_bytes();
    let signature = b64(text(&vector, "signature_b64"));
    let cert_der = single_pem_der(text(&vector, "cert_pem"));
    let leaf_key = PublicKey::from_spki_der(&certificate_spki(&cert_der)).unwrap();
    leaf_key
        .verify(payload, &signature, HashAlgorithm::Sha256)
        .unwrap();

    let verified =
        verify_tlog_entry(&legacy_entry(KEYLESS_2021), &production_logs(), true).unwrap();
    assert_eq!(verified.log_index, 783_607);
    assert_eq!(verified.integrated_time, Some(1_634_714_717));
    assert!(matches!(verified.body, RekorBody::Rekord { .. }));
    verified
        .body
        .check_binds_simple_signature(payload, &signature, &cert_der)
        .unwrap();
    // A key authority holding the certificate's key also binds (the log recorded that key's
    // certificate).
    verified
        .body
        .check_binds_simple_signature(payload, &signature, leaf_key.spki_der())
        .unwrap();
}

#[test]
fn v3_dsse_bundle_verifies_end_to_end() {
    let vector = vector(V3_DSSE);
    let bundle = v3_bundle();
    let VerificationMaterial::Certificate(cert_der) = &bundle.verification_material else {
        panic!(
            "expected a certificate, got {:?}",
            bundle.verification_material
        );
    };
    let envelope = v3_envelope();
    let signature = &envelope.signatures[0].sig;

    let leaf_key = PublicKey::from_spki_der(&certificate_spki(cert_der)).unwrap();
    leaf_key
        .verify(&envelope.pae(), signature, HashAlgorithm::Sha256)
        .unwrap();

    let entry = &bundle.tlog_entries[0];
    assert!(entry.signed_entry_timestamp.is_some() && entry.inclusion_proof.is_some());
    let verified = verify_tlog_entry(entry, &production_logs(), true).unwrap();
    assert_eq!(verified.log_index, 1_261_105_807);
    assert_eq!(verified.integrated_time, Some(1_775_719_409));
    verified
        .body
        .check_binds_dsse(&envelope, signature, cert_der)
        .unwrap();

    let statement = parse_statement(&envelope.payload).unwrap();
    let image_digest = text(&vector, "manifest_digest")
        .strip_prefix("sha256:")
        .unwrap();
    assert_eq!(statement.subjects.len(), 1);
    assert_eq!(statement.subjects[0].digests["sha256"], image_digest);
    assert_eq!(
        statement.predicate_type,
        "https://sigstore.dev/cosign/sign/v1"
    );
    assert_eq!(statement.statement_type, "https://in-toto.io/Statement/v1");
}

// ---------------------------------------------------------------- bundle parsing of the v3 vector

#[test]
fn v3_bundle_parses_every_field() {
    let vector = vector(V3_DSSE);
    let bundle = v3_bundle();
    assert_eq!(
        bundle.media_type,
        "application/vnd.dev.sigstore.bundle.v0.3+json"
    );
    assert_eq!(bundle.version, BundleVersion::V0_3);
    assert_eq!(
        bundle.verification_material,
        VerificationMaterial::Certificate(single_pem_der(text(&vector, "cert_pem")))
    );
    assert_eq!(bundle.rfc3161_timestamps.len(), 1);
    assert_eq!(bundle.rfc3161_timestamps[0][0], 0x30, "DER SEQUENCE");

    let entry = &bundle.tlog_entries[0];
    assert_eq!(entry.log_index, 1_261_105_807);
    assert_eq!(hex::encode(&entry.log_id), text(&vector, "rekor_log_id"));
    assert_eq!(entry.integrated_time, 1_775_719_409);
    let kind = entry.kind_version.as_ref().unwrap();
    assert_eq!(
        (kind.kind.as_str(), kind.version.as_str()),
        ("dsse", "0.0.1")
    );
    let proof = entry.inclusion_proof.as_ref().unwrap();
    assert_eq!(proof.log_index, 1_139_201_545);
    assert_eq!(proof.tree_size, 1_139_201_557);
    assert_eq!(proof.hashes.len(), 18);
    assert!(
        proof
            .checkpoint
            .starts_with("rekor.sigstore.dev - 1193050959916656506\n")
    );

    let envelope = v3_envelope();
    assert_eq!(envelope.payload, text(&vector, "payload").as_bytes());
    assert_eq!(envelope.payload_type, "application/vnd.in-toto+json");
    assert_eq!(envelope.signatures.len(), 1);
    assert_eq!(
        envelope.signatures[0].sig,
        b64(text(&vector, "signature_b64"))
    );
    assert_eq!(envelope.signatures[0].keyid, None);
}

#[test]
fn v3_pae_bytes() {
    let envelope = v3_envelope();
    let mut expected = format!(
        "DSSEv1 28 application/vnd.in-toto+json {} ",
        envelope.payload.len()
    )
    .into_bytes();
    expected.extend_from_slice(&envelope.payload);
    assert_eq!(envelope.pae(), expected);
    assert_eq!(
        bundle::pae(&envelope.payload_type, &envelope.payload),
        expected
    );
}

#[test]
fn v3_envelope_hash_equals_the_rekor_body() {
    let envelope = v3_envelope();
    let RekorBody::Dsse {
        envelope_hash,
        payload_hash,
        ..
    } = RekorBody::parse(&v3_entry().canonicalized_body).unwrap()
    else {
        panic!("expected a dsse body");
    };
    assert_eq!(
        hex::encode(&envelope_hash),
        "d46849f99a73583ccd6b360aa93354af5a1959df828193bcf40c3c882aa603a0"
    );
    assert_eq!(envelope.rekor_envelope_hash(), envelope_hash);
    assert_eq!(Sha256::digest(&envelope.payload).to_vec(), payload_hash);
}

#[test]
fn v3_signature_does_not_verify_over_a_tampered_payload() {
    let bundle = v3_bundle();
    let VerificationMaterial::Certificate(cert_der) = &bundle.verification_material else {
        panic!("expected a certificate");
    };
    let mut envelope = v3_envelope();
    let leaf_key = PublicKey::from_spki_der(&certificate_spki(cert_der)).unwrap();
    flip(&mut envelope.payload, 100);
    let err = leaf_key
        .verify(
            &envelope.pae(),
            &envelope.signatures[0].sig.clone(),
            HashAlgorithm::Sha256,
        )
        .unwrap_err();
    assert_eq!(err.reason(), "signature_invalid");
}

// ---------------------------------------------------------------- SET: one change breaks it

fn all_legacy_and_v3_entries() -> Vec<(&'static str, TlogEntry)> {
    vec![
        (KEYED, legacy_entry(KEYED)),
        (KEYLESS_2021, legacy_entry(KEYLESS_2021)),
        (V3_DSSE, v3_entry()),
    ]
}

#[test]
fn integrated_time_plus_or_minus_one_fails_the_set() {
    for (name, entry) in all_legacy_and_v3_entries() {
        for delta in [-1, 1] {
            let mut shifted = entry.clone();
            shifted.integrated_time += delta;
            let message = expect_err(
                verify_tlog_entry(&shifted, &production_logs(), true),
                "rekor_set_invalid",
            );
            assert!(
                message.contains("signed entry timestamp (SET) does not verify with the key of https://rekor.sigstore.dev"),
                "{name}: {message}"
            );
        }
    }
}

#[test]
fn log_index_body_or_set_changes_fail_the_set() {
    for (name, entry) in all_legacy_and_v3_entries() {
        let mut other_index = entry.clone();
        other_index.log_index += 1;
        expect_err(
            verify_tlog_entry(&other_index, &production_logs(), true),
            "rekor_set_invalid",
        );

        let mut other_set = entry.clone();
        let set = other_set.signed_entry_timestamp.as_mut().unwrap();
        let last = set.len() - 1;
        flip(set, last);
        expect_err(
            verify_tlog_entry(&other_set, &production_logs(), true),
            "rekor_set_invalid",
        );

        // Another real entry's body under this entry's SET. For v3 the body change is caught by
        // the SET before the inclusion proof is looked at.
        let mut other_body = entry.clone();
        other_body.canonicalized_body =
            legacy_entry(if name == KEYED { KEYLESS_2021 } else { KEYED }).canonicalized_body;
        expect_err(
            verify_tlog_entry(&other_body, &production_logs(), true),
            "rekor_set_invalid",
        );
    }
}

#[test]
fn unknown_log_id_is_rejected_and_named() {
    let mut entry = legacy_entry(KEYED);
    entry.log_id[0] ^= 0xff;
    let message = expect_err(
        verify_tlog_entry(&entry, &production_logs(), true),
        "rekor_unknown_log",
    );
    assert_eq!(
        message,
        format!(
            "rekor entry log id {} is not in the trust root (known: c0d23d6ad406973f9559f3ba2d1ca01f84147d8ffc5b8445c224f98b9591801d (https://rekor.sigstore.dev), cf1199155bddd051268d1f16ac5c0c75c009f6fb5a63f4177f8e18d7051e3fa0 (https://log2025-1.rekor.sigstore.dev))",
            hex::encode(&entry.log_id)
        )
    );
    let message = expect_err(
        verify_tlog_entry(&legacy_entry(KEYED), &[], true),
        "rekor_unknown_log",
    );
    assert!(message.ends_with("(known: none)"), "{message}");
}

#[test]
fn log_key_outside_its_validity_at_integrated_time_is_rejected() {
    let entry = legacy_entry(KEYLESS_2021);
    let at = entry.integrated_time;
    for valid_for in [
        TimeRange {
            start: Some(at + 1),
            end: None,
        },
        TimeRange {
            start: None,
            end: Some(at - 1),
        },
    ] {
        let mut logs = production_logs();
        logs[0].valid_for = valid_for;
        let message = expect_err(
            verify_tlog_entry(&entry, &logs, true),
            "rekor_log_key_not_valid",
        );
        assert!(
            message.starts_with("rekor log https://rekor.sigstore.dev key is valid for ["),
            "{message}"
        );
        assert!(message.ends_with("integrated time 1634714717"), "{message}");
    }
    // The edges themselves are inside.
    let mut logs = production_logs();
    logs[0].valid_for = TimeRange {
        start: Some(at),
        end: Some(at),
    };
    verify_tlog_entry(&entry, &logs, true).unwrap();
}

#[test]
fn set_or_proof_requirements() {
    let mut no_set = v3_entry();
    no_set.signed_entry_timestamp = None;
    let message = expect_err(
        verify_tlog_entry(&no_set, &production_logs(), true),
        "rekor_set_missing",
    );
    assert_eq!(
        message,
        "rekor entry 1261105807 has no signed entry timestamp (SET), and one is required"
    );
    // With the proof alone the entry verifies, but its integrated time is not vouched for.
    let verified = verify_tlog_entry(&no_set, &production_logs(), false).unwrap();
    assert_eq!(verified.integrated_time, None);

    let mut neither = no_set.clone();
    neither.inclusion_proof = None;
    let message = expect_err(
        verify_tlog_entry(&neither, &production_logs(), false),
        "rekor_no_proof",
    );
    assert_eq!(
        message,
        "rekor entry 1261105807 has neither a signed entry timestamp (SET) nor an inclusion proof"
    );
}

// ---------------------------------------------------------------- inclusion proof and checkpoint

fn v3_proof_only() -> TlogEntry {
    // Without the SET, so that only the proof and checkpoint stand between a change and success.
    let mut entry = v3_entry();
    entry.signed_entry_timestamp = None;
    verify_tlog_entry(&entry, &production_logs(), false).unwrap();
    entry
}

fn proof_of(entry: &mut TlogEntry) -> &mut InclusionProof {
    entry.inclusion_proof.as_mut().unwrap()
}

#[test]
fn inclusion_proof_with_one_hash_byte_flipped_fails() {
    for position in [0, 9, 17] {
        let mut entry = v3_proof_only();
        flip(&mut proof_of(&mut entry).hashes[position], 31);
        let message = expect_err(
            verify_tlog_entry(&entry, &production_logs(), false),
            "rekor_root_mismatch",
        );
        assert!(
            message.ends_with(
                "but the proof claims e532f4331be7af7c88cf109b3e9a930602f8de81ebc3ff5a18f0963b00449d7b"
            ),
            "{message}"
        );
    }
    // The SET does not cover the proof: with both present, the proof is still checked.
    let mut entry = v3_entry();
    flip(&mut proof_of(&mut entry).hashes[3], 0);
    expect_err(
        verify_tlog_entry(&entry, &production_logs(), true),
        "rekor_root_mismatch",
    );
}

#[test]
fn body_change_fails_the_inclusion_proof() {
    let mut entry = v3_proof_only();
    entry.canonicalized_body.push(b' ');
    expect_err(
        verify_tlog_entry(&entry, &production_logs(), false),
        "rekor_root_mismatch",
    );
}

#[test]
fn root_hash_mismatch_fails() {
    let mut entry = v3_proof_only();
    flip(&mut proof_of(&mut entry).root_hash, 0);
    expect_err(
        verify_tlog_entry(&entry, &production_logs(), false),
        "rekor_root_mismatch",
    );
}

#[test]
fn proof_index_or_size_change_fails() {
    let mut entry = v3_proof_only();
    proof_of(&mut entry).log_index += 1;
    expect_err(
        verify_tlog_entry(&entry, &production_logs(), false),
        "rekor_root_mismatch",
    );
    let mut entry = v3_proof_only();
    proof_of(&mut entry).tree_size *= 4;
    expect_err(
        verify_tlog_entry(&entry, &production_logs(), false),
        "rekor_proof_malformed",
    );
    let mut entry = v3_proof_only();
    proof_of(&mut entry).log_index = -1;
    let message = expect_err(
        verify_tlog_entry(&entry, &production_logs(), false),
        "rekor_proof_field",
    );
    assert_eq!(
        message,
        "rekor entry inclusion proof logIndex is -1 (expected a non-negative index)"
    );
}

#[test]
fn checkpoint_signature_tampered_fails() {
    let mut entry = v3_proof_only();
    let checkpoint = &mut proof_of(&mut entry).checkpoint;
    let (text, signature_line) = checkpoint.split_once("\n\n").unwrap();
    let (prefix, encoded) = signature_line.trim_end().rsplit_once(' ').unwrap();
    let mut bytes = b64(encoded);
    let last = bytes.len() - 1;
    flip(&mut bytes, last);
    *checkpoint = format!("{text}\n\n{prefix} {}\n", STANDARD.encode(bytes));
    let message = expect_err(
        verify_tlog_entry(&entry, &production_logs(), false),
        "rekor_checkpoint_invalid",
    );
    assert!(
        message.starts_with(
            "rekor checkpoint is invalid: checkpoint signature by \"rekor.sigstore.dev\" (key hint c0d23d6a) does not verify"
        ),
        "{message}"
    );
}

#[test]
fn checkpoint_origin_change_fails_its_signature() {
    let mut entry = v3_proof_only();
    let checkpoint = &mut proof_of(&mut entry).checkpoint;
    *checkpoint = checkpoint.replacen("rekor.sigstore.dev - ", "rekor.sigstore.dev -  ", 1);
    expect_err(
        verify_tlog_entry(&entry, &production_logs(), false),
        "rekor_checkpoint_invalid",
    );
}

#[test]
fn checkpoint_without_a_signature_by_the_log_fails() {
    let mut entry = v3_proof_only();
    let checkpoint = &mut proof_of(&mut entry).checkpoint;
    *checkpoint = checkpoint.replacen(" wNI9", " AAAA", 1);
    let message = expect_err(
        verify_tlog_entry(&entry, &production_logs(), false),
        "rekor_checkpoint_invalid",
    );
    assert!(
        message.contains("checkpoint has no signature with key hint c0d23d6a (found: rekor.sigstore.dev 0000006a)"),
        "{message}"
    );
}

#[test]
fn kind_version_must_agree_with_the_body() {
    let mut entry = v3_entry();
    entry.kind_version.as_mut().unwrap().kind = "hashedrekord".into();
    let message = expect_err(
        verify_tlog_entry(&entry, &production_logs(), true),
        "rekor_kind_version_mismatch",
    );
    assert_eq!(
        message,
        "rekor entry body is dsse 0.0.1, but the bundle's kindVersion says hashedrekord 0.0.1"
    );
}

// ---------------------------------------------------------------- body binding: one change each

#[test]
fn simple_signature_binding_rejects_another_payload_signature_or_verifier() {
    for name in [KEYED, KEYLESS_2021] {
        let vector = vector(name);
        let payload = text(&vector, "payload").as_bytes();
        let signature = b64(text(&vector, "signature_b64"));
        let verifier = match vector["public_key_pem"].as_str() {
            Some(key) => PublicKey::from_pem(key).unwrap().spki_der().to_vec(),
            None => single_pem_der(text(&vector, "cert_pem")),
        };
        let body = verify_tlog_entry(&legacy_entry(name), &production_logs(), true)
            .unwrap()
            .body;
        body.check_binds_simple_signature(payload, &signature, &verifier)
            .unwrap();

        let mut other_payload = payload.to_vec();
        flip(&mut other_payload, 60);
        let message = expect_err(
            body.check_binds_simple_signature(&other_payload, &signature, &verifier),
            "rekor_hash_mismatch",
        );
        assert!(
            message.starts_with("rekor entry records payload hash "),
            "{message}"
        );

        let mut other_signature = signature.clone();
        flip(&mut other_signature, 10);
        expect_err(
            body.check_binds_simple_signature(payload, &other_signature, &verifier),
            "rekor_signature_mismatch",
        );

        let other_verifier =
            PublicKey::from_pem(text(&self::vector(KEYED), "wrong_public_key_pem"))
                .unwrap()
                .spki_der()
                .to_vec();
        expect_err(
            body.check_binds_simple_signature(payload, &signature, &other_verifier),
            "rekor_verifier_mismatch",
        );

        let wrong_kind = RekorBody::parse(&v3_entry().canonicalized_body).unwrap();
        let message = expect_err(
            wrong_kind.check_binds_simple_signature(payload, &signature, &verifier),
            "rekor_wrong_kind",
        );
        assert_eq!(
            message,
            "rekor entry records a dsse signature, expected hashedrekord or rekord"
        );
    }
}

#[test]
fn certificates_other_than_the_recorded_verifier_do_not_bind() {
    // The keyed entry records a bare key; a certificate does not bind to it (see also
    // openssl_verifier_forms_key_and_certificate, where the key is the same).
    let vector = vector(KEYED);
    let payload = text(&vector, "payload").as_bytes();
    let signature = b64(text(&vector, "signature_b64"));
    let body = RekorBody::parse(&legacy_entry(KEYED).canonicalized_body).unwrap();
    let cert = single_pem_der(text(&self::vector(KEYLESS_2021), "cert_pem"));
    expect_err(
        body.check_binds_simple_signature(payload, &signature, &cert),
        "rekor_verifier_mismatch",
    );

    // The 2021 entry records a certificate: a different certificate does not bind.
    let keyless = self::vector(KEYLESS_2021);
    let body = RekorBody::parse(&legacy_entry(KEYLESS_2021).canonicalized_body).unwrap();
    let other_cert = single_pem_der(text(&self::vector(V3_DSSE), "cert_pem"));
    let message = expect_err(
        body.check_binds_simple_signature(
            text(&keyless, "payload").as_bytes(),
            &b64(text(&keyless, "signature_b64")),
            &other_cert,
        ),
        "rekor_verifier_mismatch",
    );
    assert!(
        message.starts_with("rekor entry records verifier certificate sha256:")
            && message.contains(", not the signer's certificate sha256:"),
        "{message}"
    );
}

#[test]
fn dsse_binding_rejects_another_payload_type_signature_or_certificate() {
    let bundle = v3_bundle();
    let VerificationMaterial::Certificate(cert_der) = &bundle.verification_material else {
        panic!("expected a certificate");
    };
    let envelope = v3_envelope();
    let signature = envelope.signatures[0].sig.clone();
    let body = RekorBody::parse(&v3_entry().canonicalized_body).unwrap();
    body.check_binds_dsse(&envelope, &signature, cert_der)
        .unwrap();

    let mut other_payload = envelope.clone();
    flip(&mut other_payload.payload, 20);
    let message = expect_err(
        body.check_binds_dsse(&other_payload, &signature, cert_der),
        "rekor_hash_mismatch",
    );
    assert!(
        message.starts_with("rekor entry records DSSE payload hash 736c85e4"),
        "{message}"
    );

    let mut other_type = envelope.clone();
    other_type.payload_type = "text/plain".into();
    let message = expect_err(
        body.check_binds_dsse(&other_type, &signature, cert_der),
        "rekor_hash_mismatch",
    );
    assert!(
        message.starts_with("rekor entry records DSSE envelope hash d46849f9"),
        "{message}"
    );

    // Another signature both in the envelope and as the one claimed: the log recorded another.
    let mut other_signature = envelope.clone();
    flip(&mut other_signature.signatures[0].sig, 12);
    let claimed = other_signature.signatures[0].sig.clone();
    // The envelope hash changes with the signature, so compare against a body re-pointed at it.
    let RekorBody::Dsse {
        payload_hash,
        signatures,
        ..
    } = body.clone()
    else {
        panic!("expected a dsse body");
    };
    let same_envelope_body = RekorBody::Dsse {
        payload_hash,
        envelope_hash: other_signature.rekor_envelope_hash(),
        signatures,
    };
    expect_err(
        same_envelope_body.check_binds_dsse(&other_signature, &claimed, cert_der),
        "rekor_signature_mismatch",
    );
    // A claimed signature the log did record, but which is not in this envelope.
    let recorded_claimed = RekorBody::Dsse {
        payload_hash: Sha256::digest(&envelope.payload).to_vec(),
        envelope_hash: envelope.rekor_envelope_hash(),
        signatures: vec![(claimed.clone(), cert_der.clone())],
    };
    let message = expect_err(
        recorded_claimed.check_binds_dsse(&envelope, &claimed, cert_der),
        "rekor_signature_not_in_envelope",
    );
    assert!(
        message.starts_with("the verified signature sha256:")
            && message.ends_with("is not one of the DSSE envelope's signatures"),
        "{message}"
    );

    let other_cert = single_pem_der(text(&vector(KEYLESS_2021), "cert_pem"));
    expect_err(
        body.check_binds_dsse(&envelope, &signature, &other_cert),
        "rekor_verifier_mismatch",
    );

    let simple = RekorBody::parse(&legacy_entry(KEYED).canonicalized_body).unwrap();
    expect_err(
        simple.check_binds_dsse(&envelope, &signature, cert_der),
        "rekor_wrong_kind",
    );
}

// ---------------------------------------------------------------- independent signer: openssl

struct OpensslLog {
    dir: tempfile::TempDir,
}

fn openssl(args: &[&str]) -> Vec<u8> {
    let output = Command::new("openssl")
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run openssl ({e}); install it: apt-get install -y openssl")
        });
    assert!(
        output.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

impl OpensslLog {
    /// A log key (`algorithm`: "EC" P-256 or "ed25519") and a separate artifact signing key.
    fn new(algorithm: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let log = Self { dir };
        let key_args: &[&str] = if algorithm == "EC" {
            &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"]
        } else {
            &["-algorithm", "ed25519"]
        };
        for name in ["log", "other-log"] {
            let mut args = vec!["genpkey"];
            args.extend_from_slice(key_args);
            let key = log.path(&format!("{name}.key"));
            args.extend_from_slice(&["-out", &key]);
            openssl(&args);
        }
        openssl(&[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
            &log.path("signer.key"),
        ]);
        log
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).to_str().unwrap().to_string()
    }

    fn public_der(&self, name: &str) -> Vec<u8> {
        openssl(&[
            "pkey",
            "-in",
            &self.path(&format!("{name}.key")),
            "-pubout",
            "-outform",
            "DER",
        ])
    }

    fn public_pem(&self, name: &str) -> String {
        String::from_utf8(openssl(&[
            "pkey",
            "-in",
            &self.path(&format!("{name}.key")),
            "-pubout",
        ]))
        .unwrap()
    }

    /// The log id as openssl computes it: sha256 of the SPKI DER.
    fn log_id(&self) -> Vec<u8> {
        let der = self.path("log.pub.der");
        std::fs::write(&der, self.public_der("log")).unwrap();
        let out = String::from_utf8(openssl(&["dgst", "-sha256", "-r", &der])).unwrap();
        hex::decode(out.split_whitespace().next().unwrap()).unwrap()
    }

    fn log_key(&self) -> LogKey {
        LogKey {
            base_url: "https://rekor.test".into(),
            log_id: self.log_id(),
            spki_der: self.public_der("log"),
            valid_for: TimeRange {
                start: Some(1_700_000_000),
                end: None,
            },
        }
    }

    /// Signs `message` with key `name`: sha256 + ECDSA for EC keys, raw for Ed25519.
    fn sign(&self, name: &str, message: &[u8]) -> Vec<u8> {
        let input = self.path("message.bin");
        std::fs::write(&input, message).unwrap();
        let key = self.path(&format!("{name}.key"));
        let text =
            String::from_utf8(openssl(&["pkey", "-in", &key, "-text_pub", "-noout"])).unwrap();
        if text.starts_with("ED25519") {
            openssl(&["pkeyutl", "-sign", "-inkey", &key, "-rawin", "-in", &input])
        } else {
            openssl(&["dgst", "-sha256", "-sign", &key, &input])
        }
    }
}

const INTEGRATED_TIME: i64 = 1_700_000_123;
const PAYLOAD: &[u8] = br#"{"critical":{"identity":{"docker-reference":"127.0.0.1:5000/test/app"},"image":{"docker-manifest-digest":"sha256:1111111111111111111111111111111111111111111111111111111111111111"},"type":"cosign container image signature"},"optional":null}"#;

/// A hashedrekord body for PAYLOAD signed by the openssl "signer" key, and that signature.
fn openssl_hashedrekord(log: &OpensslLog) -> (Vec<u8>, Vec<u8>) {
    let signature = log.sign("signer", PAYLOAD);
    let body = format!(
        r#"{{"apiVersion":"0.0.1","kind":"hashedrekord","spec":{{"data":{{"hash":{{"algorithm":"sha256","value":"{}"}}}},"signature":{{"content":"{}","publicKey":{{"content":"{}"}}}}}}}}"#,
        hex::encode(Sha256::digest(PAYLOAD)),
        STANDARD.encode(&signature),
        STANDARD.encode(log.public_pem("signer"))
    );
    (body.into_bytes(), signature)
}

/// The SET as the documented format says, composed here and signed by openssl.
fn openssl_set(
    log: &OpensslLog,
    key: &str,
    body: &[u8],
    integrated_time: i64,
    log_index: i64,
) -> Vec<u8> {
    let canonical = format!(
        r#"{{"body":"{}","integratedTime":{integrated_time},"logID":"{}","logIndex":{log_index}}}"#,
        STANDARD.encode(body),
        hex::encode(log.log_id()),
    );
    log.sign(key, canonical.as_bytes())
}

#[test]
fn openssl_signed_set_verifies_and_binds() {
    let log = OpensslLog::new("EC");
    let (body, signature) = openssl_hashedrekord(&log);
    let set = openssl_set(&log, "log", &body, INTEGRATED_TIME, 42);
    let annotation = serde_json::json!({
        "SignedEntryTimestamp": STANDARD.encode(&set),
        "Payload": {
            "body": STANDARD.encode(&body),
            "integratedTime": INTEGRATED_TIME,
            "logIndex": 42,
            "logID": hex::encode(log.log_id()),
        }
    });
    let entry = RekorBundle::from_annotation(&annotation.to_string())
        .unwrap()
        .to_tlog_entry();
    let verified = verify_tlog_entry(&entry, &[log.log_key()], true).unwrap();
    assert_eq!(verified.integrated_time, Some(INTEGRATED_TIME));
    assert_eq!(verified.log_base_url, "https://rekor.test");
    let signer = PublicKey::from_pem(&log.public_pem("signer")).unwrap();
    signer
        .verify(PAYLOAD, &signature, HashAlgorithm::Sha256)
        .unwrap();
    verified
        .body
        .check_binds_simple_signature(PAYLOAD, &signature, signer.spki_der())
        .unwrap();

    for delta in [-1, 1] {
        let mut shifted = entry.clone();
        shifted.integrated_time += delta;
        expect_err(
            verify_tlog_entry(&shifted, &[log.log_key()], true),
            "rekor_set_invalid",
        );
    }
    // A SET by another key under this log's id.
    let mut forged = entry.clone();
    forged.signed_entry_timestamp =
        Some(openssl_set(&log, "other-log", &body, INTEGRATED_TIME, 42));
    expect_err(
        verify_tlog_entry(&forged, &[log.log_key()], true),
        "rekor_set_invalid",
    );
}

// RFC 6962 tree hashing, written here independently of the crate.
fn leaf_hash(leaf: &[u8]) -> Vec<u8> {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(leaf);
    h.finalize().to_vec()
}

fn node_hash(left: &[u8], right: &[u8]) -> Vec<u8> {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(left);
    h.update(right);
    h.finalize().to_vec()
}

fn split(n: usize) -> usize {
    let mut k = 1;
    while k * 2 < n {
        k *= 2;
    }
    k
}

fn tree_hash(leaves: &[Vec<u8>]) -> Vec<u8> {
    if leaves.len() == 1 {
        return leaf_hash(&leaves[0]);
    }
    let k = split(leaves.len());
    node_hash(&tree_hash(&leaves[..k]), &tree_hash(&leaves[k..]))
}

fn audit_path(m: usize, leaves: &[Vec<u8>]) -> Vec<Vec<u8>> {
    if leaves.len() <= 1 {
        return Vec::new();
    }
    let k = split(leaves.len());
    let (mut path, sibling) = if m < k {
        (audit_path(m, &leaves[..k]), tree_hash(&leaves[k..]))
    } else {
        (audit_path(m - k, &leaves[k..]), tree_hash(&leaves[..k]))
    };
    path.push(sibling);
    path
}

/// A signed note line: `— <name> base64(key hint || signature)`.
fn note(log: &OpensslLog, signing_key: &str, hint: &[u8], text: &str) -> String {
    let signature = log.sign(signing_key, text.as_bytes());
    let mut blob = hint[..4].to_vec();
    blob.extend_from_slice(&signature);
    format!("{text}\n\u{2014} rekor.test {}\n", STANDARD.encode(blob))
}

/// A 7-leaf tree with the entry body at index 5, and a checkpoint for it signed by openssl.
fn openssl_proof_entry(log: &OpensslLog) -> TlogEntry {
    let (body, _) = openssl_hashedrekord(log);
    let mut leaves: Vec<Vec<u8>> = (0..7).map(|i| format!("leaf {i}").into_bytes()).collect();
    leaves[5] = body.clone();
    let root = tree_hash(&leaves);
    let text = format!("rekor.test - 99\n7\n{}\n", STANDARD.encode(&root));
    TlogEntry {
        log_index: 1005,
        log_id: log.log_id(),
        integrated_time: INTEGRATED_TIME,
        canonicalized_body: body,
        signed_entry_timestamp: None,
        inclusion_proof: Some(InclusionProof {
            log_index: 5,
            root_hash: root,
            tree_size: 7,
            hashes: audit_path(5, &leaves),
            checkpoint: note(log, "log", &log.log_id(), &text),
        }),
        kind_version: None,
    }
}

#[test]
fn openssl_signed_checkpoint_and_proof_verify() {
    for algorithm in ["EC", "ed25519"] {
        let log = OpensslLog::new(algorithm);
        let entry = openssl_proof_entry(&log);
        let verified = verify_tlog_entry(&entry, &[log.log_key()], false)
            .unwrap_or_else(|e| panic!("{algorithm}: {e}"));
        assert_eq!(verified.integrated_time, None);

        // The same checkpoint text signed by another key under the log's hint.
        let mut forged = entry.clone();
        let proof = forged.inclusion_proof.as_mut().unwrap();
        let text = proof.checkpoint.split_once("\n\n").unwrap().0.to_string() + "\n";
        proof.checkpoint = note(&log, "other-log", &log.log_id(), &text);
        expect_err(
            verify_tlog_entry(&forged, &[log.log_key()], false),
            "rekor_checkpoint_invalid",
        );
    }
}

#[test]
fn openssl_checkpoint_for_another_tree_fails() {
    let log = OpensslLog::new("EC");
    let entry = openssl_proof_entry(&log);
    let proof = entry.inclusion_proof.clone().unwrap();

    // Validly signed, but for another size.
    let mut other_size = entry.clone();
    let text = format!(
        "rekor.test - 99\n8\n{}\n",
        STANDARD.encode(&proof.root_hash)
    );
    other_size.inclusion_proof.as_mut().unwrap().checkpoint =
        note(&log, "log", &log.log_id(), &text);
    let message = expect_err(
        verify_tlog_entry(&other_size, &[log.log_key()], false),
        "rekor_checkpoint_mismatch",
    );
    assert!(
        message.starts_with("rekor checkpoint is for tree size 8 root "),
        "{message}"
    );

    // Validly signed, but for another root.
    let mut other_root = entry.clone();
    let text = format!("rekor.test - 99\n7\n{}\n", STANDARD.encode([7u8; 32]));
    other_root.inclusion_proof.as_mut().unwrap().checkpoint =
        note(&log, "log", &log.log_id(), &text);
    expect_err(
        verify_tlog_entry(&other_root, &[log.log_key()], false),
        "rekor_checkpoint_mismatch",
    );
}

#[test]
fn openssl_set_and_proof_together_verify() {
    let log = OpensslLog::new("EC");
    let mut entry = openssl_proof_entry(&log);
    entry.signed_entry_timestamp = Some(openssl_set(
        &log,
        "log",
        &entry.canonicalized_body,
        entry.integrated_time,
        entry.log_index,
    ));
    let verified = verify_tlog_entry(&entry, &[log.log_key()], true).unwrap();
    assert_eq!(verified.integrated_time, Some(INTEGRATED_TIME));
}

#[test]
fn openssl_verifier_forms_key_and_certificate() {
    let log = OpensslLog::new("EC");
    let signer_spki = log.public_der("signer");
    let certificate = |serial: &str| {
        openssl(&[
            "req",
            "-x509",
            "-new",
            "-key",
            &log.path("signer.key"),
            "-subj",
            "/CN=signer",
            "-days",
            "1",
            "-set_serial",
            serial,
            "-outform",
            "DER",
        ])
    };
    let cert = certificate("1");
    let other_cert_same_key = certificate("2");
    assert_eq!(certificate_spki(&cert), signer_spki);

    // The log recorded the bare key: a key signer binds, a certificate signer does not.
    let (key_body, signature) = openssl_hashedrekord(&log);
    let key_body = RekorBody::parse(&key_body).unwrap();
    key_body
        .check_binds_simple_signature(PAYLOAD, &signature, &signer_spki)
        .unwrap();
    expect_err(
        key_body.check_binds_simple_signature(PAYLOAD, &signature, &cert),
        "rekor_verifier_mismatch",
    );

    // The log recorded a certificate: that certificate binds, and so does its bare key; another
    // certificate for the same key does not.
    let cert_pem = format!(
        "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
        STANDARD.encode(&cert)
    );
    let cert_body = format!(
        r#"{{"apiVersion":"0.0.1","kind":"hashedrekord","spec":{{"data":{{"hash":{{"algorithm":"sha256","value":"{}"}}}},"signature":{{"content":"{}","publicKey":{{"content":"{}"}}}}}}}}"#,
        hex::encode(Sha256::digest(PAYLOAD)),
        STANDARD.encode(&signature),
        STANDARD.encode(cert_pem)
    );
    let cert_body = RekorBody::parse(cert_body.as_bytes()).unwrap();
    cert_body
        .check_binds_simple_signature(PAYLOAD, &signature, &cert)
        .unwrap();
    cert_body
        .check_binds_simple_signature(PAYLOAD, &signature, &signer_spki)
        .unwrap();
    expect_err(
        cert_body.check_binds_simple_signature(PAYLOAD, &signature, &other_cert_same_key),
        "rekor_verifier_mismatch",
    );
}
