//! The signing toolkit (`tests/support/signing`) checked against independent verifiers: openssl
//! for signatures and certificate chains, the production Rekor entries of `../shared/vectors`
//! for body and SET formats, and verity's own parsers and checks for what verity will be shown.
//! Registry round trips use a real `docker-registry` and verity's `RegistryClient`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::collections::BTreeMap;

use serde_json::Value;

use support::registry::{OCI_CONFIG, OCI_MANIFEST, TestRegistry};
use support::signing::bundle::BUNDLE_V03_MEDIA_TYPE;
use support::signing::keys::openssl;
use support::signing::legacy::{
    BUNDLE_ANNOTATION, CERTIFICATE_ANNOTATION, CHAIN_ANNOTATION, SIGNATURE_ANNOTATION,
    SIMPLE_SIGNING_MEDIA_TYPE,
};
use support::signing::payload::{COSIGN_SIGN_PREDICATE, IN_TOTO_PAYLOAD_TYPE};
use support::signing::rekor::{dsse_body, hashedrekord_body, rekord_body, set_payload};
use support::signing::vector::{KEYED_2023, KEYLESS_2021, V3_BUNDLE_2026};
use support::signing::{
    BundleMaterial, Envelope, Hash, KeyKind, KeyPair, LeafSpec, LegacyManifest, SignatureLayer,
    TestCtLog, TestFulcio, TestRekor, Vector, bundle_v03, dsse_envelope, forgery,
    in_toto_statement, keyed_bundle, keyless_bundle, push_bundle_referrer, push_legacy_manifest,
    push_legacy_signatures, push_vector, sig_tag, simple_signing_payload, trust_root_yaml,
    trusted_root_json, unb64, verify_openssl,
};
use verity::image::{Digest, Repository};
use verity::policy::source::{Documents, trust_material_of};
use verity::registry::{Keychain, RegistryClient};
use verity::verify::bundle::{BundleContent, BundleVersion, VerificationMaterial, parse_bundle};
use verity::verify::cert::{identity_of, verify_embedded_sct, verify_leaf};
use verity::verify::key::{HashAlgorithm, PublicKey};
use verity::verify::rekor::{InclusionProof, RekorBody, RekorBundle, TlogEntry, verify_tlog_entry};
use verity::verify::trust::TrustMaterial;

/// 2025-06-01T00:00:00Z: when the test leaves are issued.
const ISSUED: i64 = 1_748_736_000;
/// The signing time (integrated time) of test entries: inside the leaves' ten minutes.
const SIGNED: i64 = ISSUED + 30;

fn verity_hash(hash: Hash) -> HashAlgorithm {
    match hash {
        Hash::Sha224 => HashAlgorithm::Sha224,
        Hash::Sha256 => HashAlgorithm::Sha256,
        Hash::Sha384 => HashAlgorithm::Sha384,
        Hash::Sha512 => HashAlgorithm::Sha512,
    }
}

fn client(registry: &TestRegistry) -> RegistryClient {
    RegistryClient::new(registry.client_config(), None).unwrap()
}

fn repository(registry: &TestRegistry, repo: &str) -> Repository {
    registry.repository(repo)
}

/// A vector's Rekor entry body (base64-decoded), from the legacy annotation or the bundle.
fn vector_body(vector: &Vector) -> Vec<u8> {
    if vector.is_v3_bundle() {
        unb64(
            vector.bundle["verificationMaterial"]["tlogEntries"][0]["canonicalizedBody"]
                .as_str()
                .unwrap(),
        )
    } else {
        unb64(vector.bundle["Payload"]["body"].as_str().unwrap())
    }
}

fn legacy_entry(annotation: &str) -> TlogEntry {
    RekorBundle::from_annotation(annotation)
        .unwrap()
        .to_tlog_entry()
}

// ---------------------------------------------------------------------------------------------
// Keys and signatures
// ---------------------------------------------------------------------------------------------

#[test]
fn openssl_and_native_signatures_verify_each_other() {
    let payload = br#"{"critical":{"identity":{"docker-reference":"127.0.0.1:5000/test/app"},"image":{"docker-manifest-digest":"sha256:2222222222222222222222222222222222222222222222222222222222222222"},"type":"cosign container image signature"},"optional":null}"#;
    let mut tampered = payload.to_vec();
    tampered[10] ^= 0x01;
    for kind in KeyKind::ALL {
        let key = KeyPair::generate(kind);
        assert!(key.private_pem().starts_with("-----BEGIN PRIVATE KEY-----"));
        assert!(key.public_pem().starts_with("-----BEGIN PUBLIC KEY-----"));
        let verity_key = PublicKey::from_pem(key.public_pem()).unwrap();
        let hashes: &[Hash] = match kind {
            KeyKind::Ed25519 => &[Hash::Sha256],
            KeyKind::Rsa2048 => &[Hash::Sha256, Hash::Sha384, Hash::Sha512],
            _ => &Hash::ALL,
        };
        for &hash in hashes {
            let by_openssl = key.sign_openssl(payload, hash, false);
            let by_native = key.sign_native(payload, hash);
            for (signer, signature) in [("openssl", &by_openssl), ("native", &by_native)] {
                let what = format!("{kind:?} {hash:?} signed by {signer}");
                assert!(
                    key.verify_openssl(payload, signature, hash, false),
                    "{what}: openssl refuses it"
                );
                assert!(
                    !key.verify_openssl(&tampered, signature, hash, false),
                    "{what}: openssl accepts a tampered payload"
                );
                verity_key
                    .verify(payload, signature, verity_hash(hash))
                    .unwrap_or_else(|e| panic!("{what}: verity refuses it: {e}"));
                if matches!(kind, KeyKind::EcdsaP256 | KeyKind::EcdsaP384) {
                    assert_eq!(signature[0], 0x30, "{what}: ECDSA signatures are DER");
                }
            }
            // Another hash than the one signed with does not verify.
            if kind != KeyKind::Ed25519 {
                let other = if hash == Hash::Sha256 {
                    Hash::Sha512
                } else {
                    Hash::Sha256
                };
                assert!(
                    !key.verify_openssl(payload, &by_native, other, false),
                    "{kind:?} {hash:?} verified as {other:?}"
                );
            }
        }
        if kind == KeyKind::Rsa2048 {
            // RSA keys also sign with sha224 (openssl only) and PSS.
            let sha224 = key.sign_openssl(payload, Hash::Sha224, false);
            assert!(key.verify_openssl(payload, &sha224, Hash::Sha224, false));
            let pss = key.sign_openssl(payload, Hash::Sha256, true);
            assert!(key.verify_openssl(payload, &pss, Hash::Sha256, true));
            assert!(
                !key.verify_openssl(payload, &pss, Hash::Sha256, false),
                "PSS is not PKCS#1 v1.5"
            );
            verity_key
                .verify(payload, &pss, HashAlgorithm::Sha256)
                .unwrap();
        }
    }
}

#[test]
fn a_key_from_pem_is_the_same_key() {
    let key = KeyPair::generate(KeyKind::EcdsaP256);
    let again = KeyPair::from_private_pem(KeyKind::EcdsaP256, key.private_pem());
    assert_eq!(again.public_pem(), key.public_pem());
    assert_eq!(again.fingerprint(), key.fingerprint());
    let signature = again.sign_native(b"x", Hash::Sha256);
    assert!(key.verify_openssl(b"x", &signature, Hash::Sha256, false));
    // The fingerprint is sha256 of the DER openssl writes for the public key.
    let der = openssl([
        "pkey".as_ref(),
        "-pubin".as_ref(),
        "-in".as_ref(),
        key.public_key_path().as_os_str(),
        "-outform".as_ref(),
        "DER".as_ref(),
    ]);
    assert_eq!(der, key.spki_der());
    assert_eq!(key.fingerprint(), support::signing::sha256_hex(&der));
}

// ---------------------------------------------------------------------------------------------
// Payloads, bodies and SETs against the production vectors
// ---------------------------------------------------------------------------------------------

#[test]
fn simple_signing_payloads_are_cosign_bytes() {
    for name in [KEYED_2023, KEYLESS_2021] {
        let vector = Vector::load(name);
        assert_eq!(
            String::from_utf8(simple_signing_payload(
                &vector.image,
                &vector.image_digest(),
                None
            ))
            .unwrap(),
            vector.payload,
            "{name}"
        );
    }
    let digest = Digest::sha256_of(b"image");
    let optional = BTreeMap::from([
        ("team".to_string(), "a \"quoted\" name".to_string()),
        ("env".to_string(), "prod".to_string()),
    ]);
    let payload = simple_signing_payload("127.0.0.1:5000/test/app", &digest, Some(&optional));
    assert_eq!(
        String::from_utf8(payload.clone()).unwrap(),
        format!(
            r#"{{"critical":{{"identity":{{"docker-reference":"127.0.0.1:5000/test/app"}},"image":{{"docker-manifest-digest":"{digest}"}},"type":"cosign container image signature"}},"optional":{{"env":"prod","team":"a \"quoted\" name"}}}}"#
        )
    );
    let parsed: Value = serde_json::from_slice(&payload).unwrap();
    assert_eq!(parsed["optional"]["team"], "a \"quoted\" name");
}

#[test]
fn in_toto_statement_envelope_and_dsse_body_match_cosign_v3() {
    let vector = Vector::load(V3_BUNDLE_2026);
    assert_eq!(
        String::from_utf8(in_toto_statement(&vector.image_digest())).unwrap(),
        vector.payload
    );
    let envelope = Envelope {
        payload: vector.payload_bytes(),
        payload_type: vector.payload_type.clone().unwrap(),
        signatures: vec![support::signing::payload::EnvelopeSignature {
            sig: vector.signature(),
            keyid: None,
        }],
    };
    assert_eq!(envelope.payload_type, IN_TOTO_PAYLOAD_TYPE);
    assert_eq!(
        envelope.pae(),
        verity::verify::bundle::pae(IN_TOTO_PAYLOAD_TYPE, &envelope.payload)
    );
    let prefix = format!(
        "DSSEv1 28 application/vnd.in-toto+json {} ",
        vector.payload.len()
    );
    assert!(envelope.pae().starts_with(prefix.as_bytes()));
    // The body Rekor recorded for this envelope, byte for byte: payload hash, envelope hash as
    // Rekor computed it, and the signature with the PEM certificate as verifier.
    let body = vector_body(&vector);
    assert_eq!(
        String::from_utf8(dsse_body(&envelope, vector.cert_pem.as_deref().unwrap())).unwrap(),
        String::from_utf8(body).unwrap()
    );
    // The signature is over the PAE, as openssl sees it.
    assert!(verify_openssl(
        vector.cert_pem.as_deref().unwrap(),
        &envelope.pae(),
        envelope.signature(),
        Hash::Sha256,
        false
    ));
}

#[test]
fn rekor_bodies_and_set_payloads_match_production_entries() {
    let keyed = Vector::load(KEYED_2023);
    let payload = keyed.payload_bytes();
    assert_eq!(
        hashedrekord_body(
            "sha256",
            &Hash::Sha256.digest(&payload),
            &keyed.signature(),
            keyed.public_key_pem.as_deref().unwrap()
        ),
        vector_body(&keyed)
    );
    let keyless = Vector::load(KEYLESS_2021);
    assert_eq!(
        rekord_body(
            &keyless.payload_bytes(),
            &keyless.signature(),
            keyless.cert_pem.as_deref().unwrap()
        ),
        vector_body(&keyless)
    );
    // The SET payload as composed here is what the production log signed: openssl verifies
    // the production SET over it with the production Rekor key.
    for vector in [&keyed, &keyless] {
        let bundle = &vector.bundle;
        let set = unb64(bundle["SignedEntryTimestamp"].as_str().unwrap());
        let payload = set_payload(
            &vector_body(vector),
            bundle["Payload"]["integratedTime"].as_i64().unwrap(),
            bundle["Payload"]["logID"].as_str().unwrap(),
            bundle["Payload"]["logIndex"].as_i64().unwrap(),
        );
        assert!(
            verify_openssl(
                &vector.rekor_public_key_pem,
                payload.as_bytes(),
                &set,
                Hash::Sha256,
                false
            ),
            "{}",
            vector.id
        );
    }
    let v3 = Vector::load(V3_BUNDLE_2026);
    let entry = &v3.bundle["verificationMaterial"]["tlogEntries"][0];
    let payload = set_payload(
        &vector_body(&v3),
        entry["integratedTime"].as_str().unwrap().parse().unwrap(),
        &v3.rekor_log_id,
        entry["logIndex"].as_str().unwrap().parse().unwrap(),
    );
    let set = unb64(
        entry["inclusionPromise"]["signedEntryTimestamp"]
            .as_str()
            .unwrap(),
    );
    assert!(verify_openssl(
        &v3.rekor_public_key_pem,
        payload.as_bytes(),
        &set,
        Hash::Sha256,
        false
    ));
}

// ---------------------------------------------------------------------------------------------
// The test Rekor
// ---------------------------------------------------------------------------------------------

#[test]
fn test_rekor_sets_made_by_openssl_verify_with_verity() {
    let rekor = TestRekor::new();
    // The log id is sha256 of the key's DER as openssl writes it.
    let der = openssl([
        "pkey".as_ref(),
        "-pubin".as_ref(),
        "-in".as_ref(),
        rekor.key().public_key_path().as_os_str(),
        "-outform".as_ref(),
        "DER".as_ref(),
    ]);
    assert_eq!(rekor.log_id_hex(), support::signing::sha256_hex(&der));
    assert_eq!(rekor.base_url(), "https://rekor.test");

    let signer = KeyPair::generate(KeyKind::EcdsaP256);
    let payload = simple_signing_payload(
        "127.0.0.1:5000/test/app",
        &Digest::sha256_of(b"image"),
        None,
    );
    let signature = signer.sign_openssl(&payload, Hash::Sha256, false);
    let entry = rekor.hashedrekord_entry(&payload, &signature, signer.public_pem(), SIGNED, 12);
    assert_eq!(
        (entry.kind.as_str(), entry.version.as_str()),
        ("hashedrekord", "0.0.1")
    );

    // The SET is openssl's signature over the documented payload.
    let set_text = set_payload(&entry.body, SIGNED, &rekor.log_id_hex(), 12);
    assert!(verify_openssl(
        rekor.public_key_pem(),
        set_text.as_bytes(),
        entry.set.as_ref().unwrap(),
        Hash::Sha256,
        false
    ));

    // verity reads the annotation, verifies the SET with the log key, and finds the body bound
    // to this payload, signature and key.
    let annotation = entry.cosign_annotation();
    let parsed: Value = serde_json::from_str(&annotation).unwrap();
    assert_eq!(parsed["Payload"]["logID"], rekor.log_id_hex());
    assert_eq!(parsed["Payload"]["integratedTime"], SIGNED);
    let verified = verify_tlog_entry(&legacy_entry(&annotation), &[rekor.log_key()], true).unwrap();
    assert_eq!(verified.integrated_time, Some(SIGNED));
    assert_eq!(verified.log_index, 12);
    assert_eq!(verified.log_base_url, "https://rekor.test");
    verified
        .body
        .check_binds_simple_signature(&payload, &signature, signer.spki_der())
        .unwrap();

    // One second either way, or another log's key, and the SET fails.
    for delta in [-1, 1] {
        let shifted = forgery::shift_annotation_time(&annotation, delta);
        let err = verify_tlog_entry(&legacy_entry(&shifted), &[rekor.log_key()], true).unwrap_err();
        assert_eq!(err.reason(), "rekor_set_invalid", "{err}");
        let err = verify_tlog_entry(
            &legacy_entry(
                &entry
                    .with_integrated_time_shifted(delta)
                    .cosign_annotation(),
            ),
            &[rekor.log_key()],
            true,
        )
        .unwrap_err();
        assert_eq!(err.reason(), "rekor_set_invalid", "{err}");
    }
    let other = TestRekor::new();
    let err = verify_tlog_entry(&legacy_entry(&annotation), &[other.log_key()], true).unwrap_err();
    assert_eq!(err.reason(), "rekor_unknown_log", "{err}");

    // rekord with a certificate verifier binds that certificate.
    let fulcio = TestFulcio::new();
    let leaf = fulcio.issue(&LeafSpec::email("dev@example.com", ISSUED));
    let signature = leaf.key.sign_openssl(&payload, Hash::Sha256, false);
    let entry = rekor.rekord_entry(&payload, &signature, &leaf.cert_pem, SIGNED, 13);
    let verified = verify_tlog_entry(
        &legacy_entry(&entry.cosign_annotation()),
        &[rekor.log_key()],
        true,
    )
    .unwrap();
    assert!(matches!(verified.body, RekorBody::Rekord { .. }));
    verified
        .body
        .check_binds_simple_signature(&payload, &signature, &leaf.cert_der)
        .unwrap();

    // hashedrekord of a sha384 digest.
    let signature = signer.sign_openssl(&payload, Hash::Sha384, false);
    let entry = rekor.hashedrekord_entry_for_digest(
        "sha384",
        &Hash::Sha384.digest(&payload),
        &signature,
        signer.public_pem(),
        SIGNED,
        14,
    );
    let verified = verify_tlog_entry(
        &legacy_entry(&entry.cosign_annotation()),
        &[rekor.log_key()],
        true,
    )
    .unwrap();
    verified
        .body
        .check_binds_simple_signature(&payload, &signature, signer.spki_der())
        .unwrap();
}

/// The entry as verity holds it, proof only.
fn proof_only(entry: &support::signing::RekorEntry) -> TlogEntry {
    let proof = entry.inclusion_proof.as_ref().unwrap();
    TlogEntry {
        log_index: entry.log_index,
        log_id: entry.log_id.clone(),
        integrated_time: entry.integrated_time,
        canonicalized_body: entry.body.clone(),
        signed_entry_timestamp: None,
        inclusion_proof: Some(InclusionProof {
            log_index: proof.log_index,
            root_hash: proof.root_hash.clone(),
            tree_size: proof.tree_size,
            hashes: proof.hashes.clone(),
            checkpoint: proof.checkpoint.clone(),
        }),
        kind_version: None,
    }
}

#[test]
fn inclusion_proofs_and_checkpoints_verify_with_verity() {
    let body = br#"{"apiVersion":"0.0.1","kind":"hashedrekord","spec":{}}"#.to_vec();
    for size in [1u64, 2, 3, 7, 8] {
        let rekor = TestRekor::new().tree_size(size);
        for log_index in 0..(size as i64 + 2) {
            let entry = rekor.entry(body.clone(), SIGNED, 1000 + log_index);
            let proof = entry.inclusion_proof.as_ref().unwrap();
            assert_eq!(proof.tree_size, size as i64);
            assert_eq!(proof.log_index, (1000 + log_index) % size as i64);
            assert_eq!(
                proof.hashes.is_empty(),
                size == 1,
                "size {size} index {log_index}"
            );
            assert!(proof.checkpoint.starts_with("rekor.test - "));
            // verity walks the path to the root and checks the checkpoint signature; the body
            // itself is not a valid entry, which the body parse reports last.
            let err =
                verify_tlog_entry(&proof_only(&entry), &[rekor.log_key()], false).unwrap_err();
            assert_eq!(
                err.reason(),
                "rekor_body_field",
                "size {size} index {log_index}: {err}"
            );
        }
    }

    let rekor = TestRekor::new();
    let signer = KeyPair::generate(KeyKind::EcdsaP256);
    let signature = signer.sign_native(b"payload", Hash::Sha256);
    let entry = rekor.hashedrekord_entry(b"payload", &signature, signer.public_pem(), SIGNED, 5);
    let verified = verify_tlog_entry(&proof_only(&entry), &[rekor.log_key()], false).unwrap();
    assert_eq!(
        verified.integrated_time, None,
        "a proof alone does not vouch for the time"
    );

    // The checkpoint text signed by another key under the log's name and hint.
    let mut forged = proof_only(&entry);
    let proof = forged.inclusion_proof.as_mut().unwrap();
    let text = proof.checkpoint.split_once("\n\n").unwrap().0.to_string() + "\n";
    proof.checkpoint = rekor.sign_note(&text, &KeyPair::generate(KeyKind::EcdsaP256));
    let err = verify_tlog_entry(&forged, &[rekor.log_key()], false).unwrap_err();
    assert_eq!(err.reason(), "rekor_checkpoint_invalid", "{err}");

    // One sibling hash flipped.
    let mut forged = proof_only(&entry);
    forged.inclusion_proof.as_mut().unwrap().hashes[0][0] ^= 1;
    let err = verify_tlog_entry(&forged, &[rekor.log_key()], false).unwrap_err();
    assert_eq!(err.reason(), "rekor_root_mismatch", "{err}");
}

// ---------------------------------------------------------------------------------------------
// The test Fulcio, CT log and trust roots
// ---------------------------------------------------------------------------------------------

fn trust(fulcio: &TestFulcio, rekor: &TestRekor, ct: Option<&TestCtLog>) -> TrustMaterial {
    TrustMaterial::from_trusted_root_json(trusted_root_json(fulcio, rekor, ct).as_bytes()).unwrap()
}

#[test]
fn fulcio_leaves_verify_at_signing_time_with_their_sct() {
    let fulcio = TestFulcio::new();
    let rekor = TestRekor::new();
    let ct = TestCtLog::new();
    let trust = trust(&fulcio, &rekor, Some(&ct));
    let leaf = fulcio.issue(&LeafSpec {
        sct: Some(&ct),
        ..LeafSpec::email("dev@example.com", ISSUED)
    });

    let verified = verify_leaf(
        &leaf.cert_der,
        &[],
        &trust.certificate_authorities,
        &[],
        SIGNED,
    )
    .unwrap();
    assert_eq!(verified.identity.subjects, ["dev@example.com"]);
    assert_eq!(
        verified.identity.issuer.as_deref(),
        Some("https://issuer.example.com")
    );
    assert_eq!(
        (verified.not_before, verified.not_after),
        (ISSUED, ISSUED + 600)
    );
    assert_eq!(verified.authority_uri, "https://fulcio.test");
    assert_eq!(verified.issuer_der, leaf.issuer_der);
    assert_eq!(verified.public_key_spki_der, leaf.key.spki_der());
    verify_embedded_sct(&leaf.cert_der, &verified.issuer_der, &trust.ctlogs).unwrap();
    // The presented chain annotation (intermediate, root) is usable too.
    let chain = verity::verify::cert::certificates_from_pem(&fulcio.chain_pem()).unwrap();
    assert_eq!(chain, fulcio.chain_der());
    verify_leaf(
        &leaf.cert_der,
        &chain,
        &trust.certificate_authorities,
        &[],
        SIGNED,
    )
    .unwrap();

    // Ends included, one second outside fails.
    for at in [ISSUED, ISSUED + 600] {
        verify_leaf(&leaf.cert_der, &[], &trust.certificate_authorities, &[], at).unwrap();
    }
    for at in [ISSUED - 1, ISSUED + 601] {
        let err =
            verify_leaf(&leaf.cert_der, &[], &trust.certificate_authorities, &[], at).unwrap_err();
        assert_eq!(err.reason(), "not_valid_at_signing_time", "{err}");
    }

    // openssl agrees about the chain at the signing time, and not after the leaf expired.
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.to_str().unwrap().to_string()
    };
    let (root, intermediate, cert) = (
        write("root.pem", &fulcio.root_pem()),
        write("intermediate.pem", &fulcio.intermediate_pem()),
        write("leaf.pem", &leaf.cert_pem),
    );
    let at = SIGNED.to_string();
    let out = openssl([
        "verify",
        "-attime",
        &at,
        "-CAfile",
        &root,
        "-untrusted",
        &intermediate,
        &cert,
    ]);
    assert!(String::from_utf8_lossy(&out).contains(": OK"));
    let expired = (ISSUED + 601).to_string();
    let output = std::process::Command::new("openssl")
        .args([
            "verify",
            "-attime",
            &expired,
            "-CAfile",
            &root,
            "-untrusted",
            &intermediate,
            &cert,
        ])
        .output()
        .unwrap();
    assert!(!output.status.success(), "openssl accepted an expired leaf");

    // The leaf's key signs payloads that verify with the certificate.
    let payload = b"payload";
    let signature = leaf.key.sign_openssl(payload, Hash::Sha256, false);
    assert!(verify_openssl(
        &leaf.cert_pem,
        payload,
        &signature,
        Hash::Sha256,
        false
    ));
    PublicKey::from_spki_der(&verified.public_key_spki_der)
        .unwrap()
        .verify(
            payload,
            &leaf.key.sign_native(payload, Hash::Sha256),
            HashAlgorithm::Sha256,
        )
        .unwrap();

    // Leaves for every key kind; their keys sign what the certificate verifies.
    for kind in KeyKind::ALL {
        let leaf = fulcio.issue(&LeafSpec {
            key_kind: kind,
            ..LeafSpec::email("dev@example.com", ISSUED)
        });
        assert_eq!(leaf.key.kind(), kind);
        verify_leaf(
            &leaf.cert_der,
            &[],
            &trust.certificate_authorities,
            &[],
            SIGNED,
        )
        .unwrap_or_else(|e| panic!("{kind:?}: {e}"));
        let signature = leaf.key.sign_openssl(payload, Hash::Sha256, false);
        assert!(
            verify_openssl(&leaf.cert_pem, payload, &signature, Hash::Sha256, false),
            "{kind:?}"
        );
    }

    // A URI identity without issuer extensions and without an SCT.
    let workflow = "https://github.com/org/repo/.github/workflows/release.yml@refs/tags/v1";
    let leaf = fulcio.issue(&LeafSpec {
        issuer: None,
        ..LeafSpec::uri(workflow, ISSUED)
    });
    let verified = verify_leaf(
        &leaf.cert_der,
        &[],
        &trust.certificate_authorities,
        &[],
        SIGNED,
    )
    .unwrap();
    assert_eq!(verified.identity.subjects, [workflow]);
    assert_eq!(verified.identity.issuer, None);
    let err = verify_embedded_sct(&leaf.cert_der, &verified.issuer_der, &trust.ctlogs).unwrap_err();
    assert_eq!(err.reason(), "sct_missing");

    // A leaf for another purpose is not a signing certificate.
    let leaf = fulcio.issue(&LeafSpec {
        code_signing: false,
        ..LeafSpec::email("dev@example.com", ISSUED)
    });
    let err = verify_leaf(
        &leaf.cert_der,
        &[],
        &trust.certificate_authorities,
        &[],
        SIGNED,
    )
    .unwrap_err();
    assert_eq!(err.reason(), "missing_code_signing", "{err}");

    // Another Fulcio's leaf does not chain; an SCT from an untrusted log does not verify.
    let other = TestFulcio::new();
    let other_ct = TestCtLog::new();
    let leaf = other.issue(&LeafSpec {
        sct: Some(&other_ct),
        ..LeafSpec::email("dev@example.com", ISSUED)
    });
    let err = verify_leaf(
        &leaf.cert_der,
        &[],
        &trust.certificate_authorities,
        &[],
        SIGNED,
    )
    .unwrap_err();
    assert_eq!(err.reason(), "untrusted_chain", "{err}");
    let err =
        verify_embedded_sct(&leaf.cert_der, other.intermediate_der(), &trust.ctlogs).unwrap_err();
    assert_eq!(err.reason(), "sct_unverified", "{err}");
    let identity = identity_of(&leaf.cert_der).unwrap();
    assert_eq!(identity.subjects, ["dev@example.com"]);
}

#[test]
fn trusted_root_json_and_trust_root_yaml_describe_the_same_material() {
    let fulcio = TestFulcio::new();
    let rekor = TestRekor::new();
    let ct = TestCtLog::new();
    let from_json = trust(&fulcio, &rekor, Some(&ct));
    assert_eq!(
        from_json.certificate_authorities,
        [fulcio.certificate_authority()]
    );
    assert_eq!(from_json.tlogs, [rekor.log_key()]);
    assert_eq!(from_json.ctlogs, [ct.log_key()]);
    assert!(from_json.timestamp_authorities.is_empty());
    let without_ct = trust(&fulcio, &rekor, None);
    assert!(without_ct.ctlogs.is_empty());

    let mut documents = Documents::default();
    documents
        .add_yaml(
            "trust-root.yaml",
            &trust_root_yaml("test", &fulcio, &rekor, Some(&ct)),
        )
        .unwrap();
    assert_eq!(documents.trust_roots.len(), 1);
    assert_eq!(documents.trust_roots[0].name, "test");
    let from_yaml = trust_material_of(&documents.trust_roots[0].spec).unwrap();
    // The resource has no validity windows; everything else is the same.
    let unbounded = |mut material: TrustMaterial| {
        for ca in &mut material.certificate_authorities {
            ca.valid_for = Default::default();
        }
        for log in material.tlogs.iter_mut().chain(material.ctlogs.iter_mut()) {
            log.valid_for = Default::default();
        }
        material
    };
    assert_eq!(from_yaml, unbounded(from_json));

    let mut documents = Documents::default();
    documents
        .add_yaml(
            "trust-root.yaml",
            &trust_root_yaml("no-ct", &fulcio, &rekor, None),
        )
        .unwrap();
    let from_yaml = trust_material_of(&documents.trust_roots[0].spec).unwrap();
    assert!(from_yaml.ctlogs.is_empty());
    assert_eq!(from_yaml.tlogs.len(), 1);
}

// ---------------------------------------------------------------------------------------------
// cosign v3 bundles
// ---------------------------------------------------------------------------------------------

#[test]
fn keyless_v3_bundles_parse_and_verify_with_verity() {
    let fulcio = TestFulcio::new();
    let rekor = TestRekor::new();
    let ct = TestCtLog::new();
    let trust = trust(&fulcio, &rekor, Some(&ct));
    let leaf = fulcio.issue(&LeafSpec {
        sct: Some(&ct),
        ..LeafSpec::email("dev@example.com", ISSUED)
    });
    let image = Digest::sha256_of(b"image");
    let envelope = dsse_envelope(&in_toto_statement(&image), &leaf.key);
    let entry = rekor.dsse_entry(&envelope, &leaf.cert_pem, SIGNED, 77);
    let bytes = bundle_v03(
        &envelope,
        &BundleMaterial::Certificate(leaf.cert_der.clone()),
        Some(&entry),
    );

    let bundle = parse_bundle(&bytes).unwrap();
    assert_eq!(bundle.version, BundleVersion::V0_3);
    assert_eq!(bundle.media_type, BUNDLE_V03_MEDIA_TYPE);
    assert_eq!(
        bundle.verification_material,
        VerificationMaterial::Certificate(leaf.cert_der.clone())
    );
    let BundleContent::Dsse(parsed_envelope) = &bundle.content else {
        panic!("expected a DSSE envelope, got {:?}", bundle.content);
    };
    assert_eq!(parsed_envelope.payload_type, IN_TOTO_PAYLOAD_TYPE);
    assert_eq!(
        parsed_envelope.rekor_envelope_hash(),
        hex::decode(envelope.rekor_hash_hex()).unwrap()
    );
    let statement = verity::verify::bundle::parse_statement(&parsed_envelope.payload).unwrap();
    assert_eq!(statement.predicate_type, COSIGN_SIGN_PREDICATE);
    assert_eq!(statement.subjects[0].digests["sha256"], image.hex());

    // The chain at the integrated time, the SCT, the signature over the PAE, the log entry
    // (SET and inclusion proof) and its binding to this envelope and certificate.
    let tlog = &bundle.tlog_entries[0];
    assert!(tlog.inclusion_proof.is_some() && tlog.signed_entry_timestamp.is_some());
    let verified_entry = verify_tlog_entry(tlog, &trust.tlogs, true).unwrap();
    assert_eq!(verified_entry.integrated_time, Some(SIGNED));
    let verified_leaf = verify_leaf(
        &leaf.cert_der,
        &[],
        &trust.certificate_authorities,
        &[],
        SIGNED,
    )
    .unwrap();
    verify_embedded_sct(&leaf.cert_der, &verified_leaf.issuer_der, &trust.ctlogs).unwrap();
    let signature = &parsed_envelope.signatures[0].sig;
    PublicKey::from_spki_der(&verified_leaf.public_key_spki_der)
        .unwrap()
        .verify(&parsed_envelope.pae(), signature, HashAlgorithm::Sha256)
        .unwrap();
    verified_entry
        .body
        .check_binds_dsse(parsed_envelope, signature, &leaf.cert_der)
        .unwrap();

    // Forgeries of the bundle, one change each.
    for delta in [-1, 1] {
        let shifted = parse_bundle(&forgery::shift_bundle_time(&bytes, delta)).unwrap();
        assert_eq!(shifted.tlog_entries[0].integrated_time, SIGNED + delta);
        let err = verify_tlog_entry(&shifted.tlog_entries[0], &trust.tlogs, true).unwrap_err();
        assert_eq!(err.reason(), "rekor_set_invalid", "{err}");
    }
    let stripped = parse_bundle(&forgery::strip_tlog_entries(&bytes)).unwrap();
    assert!(stripped.tlog_entries.is_empty());
    assert_eq!(stripped.content, bundle.content);
    let other_statement = in_toto_statement(&Digest::sha256_of(b"other image"));
    let tampered = parse_bundle(&forgery::replace_dsse_payload(&bytes, &other_statement)).unwrap();
    let BundleContent::Dsse(tampered_envelope) = &tampered.content else {
        panic!("expected a DSSE envelope");
    };
    assert_eq!(tampered_envelope.payload, other_statement);
    PublicKey::from_spki_der(&verified_leaf.public_key_spki_der)
        .unwrap()
        .verify(&tampered_envelope.pae(), signature, HashAlgorithm::Sha256)
        .unwrap_err();
}

#[test]
fn keyed_v3_bundles_name_their_key_by_hint() {
    let rekor = TestRekor::new();
    let key = KeyPair::generate(KeyKind::EcdsaP256);
    let image = Digest::sha256_of(b"image");
    let bundle = parse_bundle(&keyed_bundle(&image, &key, &rekor, SIGNED, 3)).unwrap();
    assert_eq!(
        bundle.verification_material,
        VerificationMaterial::PublicKey {
            hint: Some(key.fingerprint())
        }
    );
    let verified = verify_tlog_entry(&bundle.tlog_entries[0], &[rekor.log_key()], true).unwrap();
    assert_eq!(verified.integrated_time, Some(SIGNED));
    let BundleContent::Dsse(envelope) = &bundle.content else {
        panic!("expected a DSSE envelope");
    };
    assert_eq!(envelope.payload, in_toto_statement(&image));
    let signature = &envelope.signatures[0].sig;
    assert!(key.verify_openssl(&envelope.pae(), signature, Hash::Sha256, false));
    verified
        .body
        .check_binds_dsse(envelope, signature, key.spki_der())
        .unwrap();
    let bundle = parse_bundle(&bundle_v03(
        &dsse_envelope(b"{}", &key),
        &BundleMaterial::PublicKey { hint: None },
        None,
    ))
    .unwrap();
    assert_eq!(
        bundle.verification_material,
        VerificationMaterial::PublicKey { hint: None }
    );
    assert!(bundle.tlog_entries.is_empty());
}

// ---------------------------------------------------------------------------------------------
// The registry
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn legacy_signatures_read_back_through_the_registry_client() {
    let registry = TestRegistry::start().await;
    let client = client(&registry);
    let keychain = Keychain::anonymous();
    let repo = repository(&registry, "test/app");
    let image = registry.push_image("test/app", "v1", "legacy").await;
    let payload = simple_signing_payload(&format!("{}/test/app", registry.host()), &image, None);

    let rekor = TestRekor::new();
    let key = KeyPair::generate(KeyKind::EcdsaP256);
    let keyed = SignatureLayer::keyed(&payload, &key, Some((&rekor, SIGNED, 1)));
    assert!(key.verify_openssl(&payload, &keyed.signature, Hash::Sha256, false));
    assert_eq!(
        SignatureLayer::keyed(&payload, &key, None).rekor_bundle,
        None
    );
    let fulcio = TestFulcio::new();
    let leaf = fulcio.issue(&LeafSpec::email("dev@example.com", ISSUED));
    // By hand: a rekord entry, a native signature, one more annotation.
    let signature = leaf.key.sign_native(&payload, Hash::Sha256);
    let keyless = SignatureLayer {
        certificate_pem: Some(leaf.cert_pem.clone()),
        chain_pem: Some(fulcio.chain_pem()),
        rekor_bundle: Some(
            rekor
                .rekord_entry(&payload, &signature, &leaf.cert_pem, SIGNED, 2)
                .cosign_annotation(),
        ),
        extra_annotations: BTreeMap::from([("org.example/note".to_string(), "second".to_string())]),
        ..SignatureLayer::new(payload.clone(), signature)
    };
    let keyless_helper = SignatureLayer::keyless(&payload, &leaf, &fulcio, &rekor, SIGNED, 3);
    let verifiers = [
        key.spki_der().to_vec(),
        leaf.cert_der.clone(),
        leaf.cert_der.clone(),
    ];
    let layers = [keyed, keyless, keyless_helper];
    let pushed = push_legacy_signatures(&registry, "test/app", &image, "", &layers).await;

    let tag = sig_tag("", &image);
    assert_eq!(tag, format!("sha256-{}.sig", image.hex()));
    let signed_ref = registry.image("test/app", &tag);
    assert_eq!(
        client.resolve_digest(&signed_ref, &keychain).await.unwrap(),
        pushed
    );
    let manifest = client.manifest(&repo, &tag, &keychain).await.unwrap();
    assert_eq!(manifest.digest, pushed);
    assert_eq!(manifest.media_type, OCI_MANIFEST);
    let parsed = manifest.image_manifest().unwrap();
    assert_eq!(parsed.config.media_type, OCI_CONFIG);
    let config: Value = serde_json::from_slice(
        &client
            .blob(&repo, &parsed.config.digest, &keychain)
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        config["rootfs"]["diff_ids"][1],
        Digest::sha256_of(&payload).to_string()
    );
    assert_eq!(parsed.layers.len(), 3);
    for ((descriptor, layer), verifier) in parsed.layers.iter().zip(&layers).zip(&verifiers) {
        assert_eq!(descriptor.media_type, SIMPLE_SIGNING_MEDIA_TYPE);
        assert_eq!(descriptor.digest, Digest::sha256_of(&payload));
        assert_eq!(descriptor.size, payload.len() as u64);
        assert_eq!(descriptor.annotations, layer.annotations());
        assert_eq!(
            client
                .blob(&repo, &descriptor.digest, &keychain)
                .await
                .unwrap(),
            payload
        );
        assert_eq!(
            unb64(&descriptor.annotations[SIGNATURE_ANNOTATION]),
            layer.signature
        );
        let entry = legacy_entry(&descriptor.annotations[BUNDLE_ANNOTATION]);
        let verified = verify_tlog_entry(&entry, &[rekor.log_key()], true).unwrap();
        verified
            .body
            .check_binds_simple_signature(&payload, &layer.signature, verifier)
            .unwrap();
    }
    let keyless = &parsed.layers[1].annotations;
    assert_eq!(keyless[CERTIFICATE_ANNOTATION], leaf.cert_pem);
    assert_eq!(keyless[CHAIN_ANNOTATION], fulcio.chain_pem());
    assert_eq!(keyless["org.example/note"], "second");
    assert!(
        !parsed.layers[0]
            .annotations
            .contains_key(CERTIFICATE_ANNOTATION)
    );

    // A manifest built by hand (malformed on purpose) is stored as built.
    let mut raw = LegacyManifest::of(&layers[..1]);
    raw.manifest["layers"][0]["mediaType"] = "application/octet-stream".into();
    raw.manifest["layers"][0]["annotations"]
        .as_object_mut()
        .unwrap()
        .remove(SIGNATURE_ANNOTATION);
    let other = Digest::sha256_of(b"unsigned image");
    let digest = push_legacy_manifest(&registry, "test/app", &sig_tag("", &other), &raw).await;
    assert_eq!(digest, raw.digest());
    let fetched = client
        .manifest(&repo, &sig_tag("", &other), &keychain)
        .await
        .unwrap();
    assert_eq!(fetched.bytes, raw.bytes());
    let layer = &fetched.image_manifest().unwrap().layers[0];
    assert_eq!(layer.media_type, "application/octet-stream");
    assert!(!layer.annotations.contains_key(SIGNATURE_ANNOTATION));
}

#[tokio::test]
async fn bundle_referrers_read_back_through_the_registry_client() {
    let registry = TestRegistry::start().await;
    let client = client(&registry);
    let keychain = Keychain::anonymous();
    let repo = repository(&registry, "test/app");
    let image = registry.push_image("test/app", "v1", "v3").await;
    let (_, image_manifest) = registry.fetch_manifest("test/app", "v1").await.unwrap();

    let rekor = TestRekor::new();
    let key = KeyPair::generate(KeyKind::EcdsaP256);
    let fulcio = TestFulcio::new();
    let leaf = fulcio.issue(&LeafSpec::email("dev@example.com", ISSUED));
    let bundles = [
        keyed_bundle(&image, &key, &rekor, SIGNED, 0),
        keyless_bundle(&image, &leaf, &rekor, SIGNED, 1),
    ];
    let mut referrers = Vec::new();
    for bundle in &bundles {
        referrers.push(push_bundle_referrer(&registry, "test/app", &image, bundle).await);
    }

    let listed = client
        .referrers(&repo, &image, Some(BUNDLE_V03_MEDIA_TYPE), &keychain)
        .await
        .unwrap();
    assert_eq!(
        listed.iter().map(|d| d.digest.clone()).collect::<Vec<_>>(),
        referrers
    );
    for ((descriptor, bundle), digest) in listed.iter().zip(&bundles).zip(&referrers) {
        assert_eq!(
            descriptor.artifact_type.as_deref(),
            Some(BUNDLE_V03_MEDIA_TYPE)
        );
        let manifest = client
            .manifest(&repo, &digest.to_string(), &keychain)
            .await
            .unwrap();
        assert_eq!(descriptor.size, manifest.bytes.len() as u64);
        let parsed = manifest.image_manifest().unwrap();
        assert_eq!(parsed.artifact_type.as_deref(), Some(BUNDLE_V03_MEDIA_TYPE));
        assert_eq!(
            parsed.config.media_type,
            "application/vnd.oci.empty.v1+json"
        );
        assert_eq!(
            client
                .blob(&repo, &parsed.config.digest, &keychain)
                .await
                .unwrap()
                .as_ref(),
            b"{}"
        );
        let subject = parsed.subject.as_ref().unwrap();
        assert_eq!(subject.digest, image);
        assert_eq!(subject.size, image_manifest.len() as u64);
        assert_eq!(
            parsed.annotations["dev.sigstore.bundle.content"],
            "dsse-envelope"
        );
        assert_eq!(parsed.layers.len(), 1);
        assert_eq!(parsed.layers[0].media_type, BUNDLE_V03_MEDIA_TYPE);
        let blob = client
            .blob(&repo, &parsed.layers[0].digest, &keychain)
            .await
            .unwrap();
        assert_eq!(blob.as_ref(), bundle.as_slice());
        let parsed = parse_bundle(&blob).unwrap();
        verify_tlog_entry(&parsed.tlog_entries[0], &[rekor.log_key()], true).unwrap();
    }
}

const README_IMAGE_DIGESTS: [(&str, &str); 3] = [
    (
        KEYLESS_2021,
        "sha256:5f481572d088dc4023afb35fced9530ced3d9b03bf7299c6f492163cb9f0452e",
    ),
    (
        KEYED_2023,
        "sha256:0489474da8ea22426ece86ace6c1c0026ab2fd3cdfbbd62b7e94650266c37d9a",
    ),
    (
        V3_BUNDLE_2026,
        "sha256:c811d58de79c92f03214e63aa339484e488d694ae8a6283b5f3f17a9faf50172",
    ),
];

#[tokio::test]
async fn vectors_are_pushed_with_the_digests_the_readme_states() {
    let registry = TestRegistry::start().await;
    let client = client(&registry);
    let keychain = Keychain::anonymous();
    let repo = repository(&registry, "vectors");
    let production = TrustMaterial::production().unwrap();
    for (name, readme_digest) in README_IMAGE_DIGESTS {
        let vector = Vector::load(name);
        let image = push_vector(&registry, "vectors", &vector).await;
        assert_eq!(image.to_string(), readme_digest, "{name}");

        if vector.is_v3_bundle() {
            let listed = client
                .referrers(&repo, &image, Some(BUNDLE_V03_MEDIA_TYPE), &keychain)
                .await
                .unwrap();
            assert_eq!(listed.len(), 1, "{name}");
            let manifest = client
                .manifest(&repo, &listed[0].digest.to_string(), &keychain)
                .await
                .unwrap();
            let parsed = manifest.image_manifest().unwrap();
            assert_eq!(parsed.subject.unwrap().digest, image);
            let layer = &parsed.layers[0];
            assert_eq!(
                layer.digest.to_string(),
                "sha256:121ecb638da858178a0d57de5686709769f15b47d9fa5e3270dd7c64aea046d5"
            );
            let blob = client.blob(&repo, &layer.digest, &keychain).await.unwrap();
            let bundle = parse_bundle(&blob).unwrap();
            let verified =
                verify_tlog_entry(&bundle.tlog_entries[0], &production.tlogs, true).unwrap();
            assert_eq!(verified.integrated_time, Some(1_775_719_409));
            // The bytes are the vector's bundle, key order and all.
            let original: Value = serde_json::from_slice(&blob).unwrap();
            assert_eq!(original, vector.bundle);
            assert!(std::str::from_utf8(&blob).unwrap().starts_with(r#"{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json","verificationMaterial":{"certificate":"#));
        } else {
            let manifest = client
                .manifest(&repo, &sig_tag("", &image), &keychain)
                .await
                .unwrap();
            let parsed = manifest.image_manifest().unwrap();
            assert_eq!(parsed.layers.len(), 1, "{name}");
            let layer = &parsed.layers[0];
            let expected_layer = match name {
                KEYLESS_2021 => {
                    "sha256:e7801de935512e22b237c7b57e42ca4d20e2134bdf1b98f976c8f55d9cfe4067"
                        .to_string()
                }
                _ => format!(
                    "sha256:{}",
                    vector.checked["payload_sha256"].as_str().unwrap()
                ),
            };
            assert_eq!(layer.digest.to_string(), expected_layer, "{name}");
            assert_eq!(layer.media_type, SIMPLE_SIGNING_MEDIA_TYPE);
            assert_eq!(
                client.blob(&repo, &layer.digest, &keychain).await.unwrap(),
                vector.payload_bytes()
            );
            assert_eq!(
                layer.annotations[SIGNATURE_ANNOTATION],
                vector.signature_b64
            );
            if let Some(annotations) = &vector.annotations {
                assert_eq!(&layer.annotations, annotations, "{name}");
            } else {
                assert_eq!(
                    layer.annotations.get(CERTIFICATE_ANNOTATION),
                    vector.cert_pem.as_ref()
                );
                assert_eq!(
                    layer.annotations.get(CHAIN_ANNOTATION),
                    vector.chain_pem.as_ref()
                );
                // The bundle annotation is the vector's bundle as compact JSON in file order.
                assert_eq!(layer.annotations[BUNDLE_ANNOTATION], vector.bundle_compact);
                let annotation: Value =
                    serde_json::from_str(&layer.annotations[BUNDLE_ANNOTATION]).unwrap();
                assert_eq!(annotation, vector.bundle);
                assert!(
                    layer.annotations[BUNDLE_ANNOTATION].starts_with(r#"{"SignedEntryTimestamp":"#)
                );
            }
            let verified = verify_tlog_entry(
                &legacy_entry(&layer.annotations[BUNDLE_ANNOTATION]),
                &production.tlogs,
                true,
            )
            .unwrap();
            verified
                .body
                .check_binds_simple_signature(
                    &vector.payload_bytes(),
                    &vector.signature(),
                    &match &vector.cert_pem {
                        Some(cert) => support::signing::pem_der(cert, "CERTIFICATE"),
                        None => support::signing::pem_der(
                            vector.public_key_pem.as_deref().unwrap(),
                            "PUBLIC KEY",
                        ),
                    },
                )
                .unwrap();
        }
    }
    let keyed = Vector::load(KEYED_2023);
    assert_eq!(
        Digest::sha256_of(&unb64(keyed.manifest_json_b64.as_deref().unwrap())),
        keyed.image_digest()
    );
}

#[tokio::test]
async fn forgeries_change_exactly_one_thing() {
    let registry = TestRegistry::start().await;
    let client = client(&registry);
    let keychain = Keychain::anonymous();
    let repo = repository(&registry, "test/app");
    let victim = registry.push_image("test/app", "victim", "victim").await;
    let target = registry.push_image("test/app", "target", "target").await;
    let reference = format!("{}/test/app", registry.host());

    let rekor = TestRekor::new();
    let fulcio = TestFulcio::new();
    let leaf = fulcio.issue(&LeafSpec::email("victim@example.com", ISSUED));
    let payload = simple_signing_payload(&reference, &victim, None);
    let signature = leaf.key.sign_openssl(&payload, Hash::Sha256, false);
    let genuine = SignatureLayer {
        certificate_pem: Some(leaf.cert_pem.clone()),
        chain_pem: Some(fulcio.chain_pem()),
        rekor_bundle: Some(
            rekor
                .hashedrekord_entry(&payload, &signature, &leaf.cert_pem, SIGNED, 9)
                .cosign_annotation(),
        ),
        ..SignatureLayer::new(payload.clone(), signature.clone())
    };
    let pushed = push_legacy_signatures(
        &registry,
        "test/app",
        &victim,
        "",
        std::slice::from_ref(&genuine),
    )
    .await;

    // The .sig manifest copied unchanged onto the target's tag.
    let copied = forgery::copy_sig_manifest(&registry, "test/app", &victim, &target).await;
    assert_eq!(copied, pushed);
    let fetched = client
        .manifest(&repo, &sig_tag("", &target), &keychain)
        .await
        .unwrap();
    assert_eq!(fetched.digest, pushed);
    let layer = &fetched.image_manifest().unwrap().layers[0];
    let served: Value =
        serde_json::from_slice(&client.blob(&repo, &layer.digest, &keychain).await.unwrap())
            .unwrap();
    assert_eq!(
        served["critical"]["image"]["docker-manifest-digest"],
        victim.to_string()
    );

    // The payload's digest swapped: only the payload changed, and the signature no longer
    // covers it.
    let swapped = forgery::swap_payload_digest(&genuine, &target);
    assert_eq!(
        swapped.payload,
        simple_signing_payload(&reference, &target, None)
    );
    assert_eq!(
        SignatureLayer {
            payload: genuine.payload.clone(),
            ..swapped.clone()
        },
        genuine
    );
    assert!(verify_openssl(
        &leaf.cert_pem,
        &genuine.payload,
        &signature,
        Hash::Sha256,
        false
    ));
    assert!(!verify_openssl(
        &leaf.cert_pem,
        &swapped.payload,
        &swapped.signature,
        Hash::Sha256,
        false
    ));

    // An attacker's own valid signature over the target carrying the victim's evidence.
    let attacker = KeyPair::generate(KeyKind::EcdsaP256);
    let own_payload = simple_signing_payload(&reference, &target, None);
    let own = SignatureLayer::new(
        own_payload.clone(),
        attacker.sign_openssl(&own_payload, Hash::Sha256, false),
    );
    let stolen = forgery::with_stolen_evidence(&own, &genuine);
    assert_eq!(
        (&stolen.payload, &stolen.signature),
        (&own.payload, &own.signature)
    );
    assert_eq!(
        (
            &stolen.certificate_pem,
            &stolen.chain_pem,
            &stolen.rekor_bundle
        ),
        (
            &genuine.certificate_pem,
            &genuine.chain_pem,
            &genuine.rekor_bundle
        )
    );
    assert!(attacker.verify_openssl(&stolen.payload, &stolen.signature, Hash::Sha256, false));
    assert!(!verify_openssl(
        &leaf.cert_pem,
        &stolen.payload,
        &stolen.signature,
        Hash::Sha256,
        false
    ));
    let entry = verify_tlog_entry(
        &legacy_entry(stolen.rekor_bundle.as_ref().unwrap()),
        &[rekor.log_key()],
        true,
    )
    .unwrap();
    let err = entry
        .body
        .check_binds_simple_signature(&stolen.payload, &stolen.signature, &leaf.cert_der)
        .unwrap_err();
    assert_eq!(err.reason(), "rekor_hash_mismatch", "{err}");

    // The bundle annotation stripped: exactly one annotation fewer.
    let mut without = genuine.annotations();
    without.remove(BUNDLE_ANNOTATION);
    assert_eq!(forgery::strip_bundle(&genuine).annotations(), without);

    // integratedTime ± 1: the same annotation otherwise, and the SET fails.
    let annotation = genuine.rekor_bundle.as_ref().unwrap();
    for delta in [-1, 1] {
        let shifted: Value =
            serde_json::from_str(&forgery::shift_annotation_time(annotation, delta)).unwrap();
        let mut original: Value = serde_json::from_str(annotation).unwrap();
        original["Payload"]["integratedTime"] = (SIGNED + delta).into();
        assert_eq!(shifted, original);
    }

    // A v3 bundle for the victim attached to the target: listed there, but its statement names
    // the victim.
    let envelope = dsse_envelope(&in_toto_statement(&victim), &leaf.key);
    let entry = rekor.dsse_entry(&envelope, &leaf.cert_pem, SIGNED, 10);
    let bundle = bundle_v03(
        &envelope,
        &BundleMaterial::Certificate(leaf.cert_der.clone()),
        Some(&entry),
    );
    push_bundle_referrer(&registry, "test/app", &target, &bundle).await;
    let listed = client
        .referrers(&repo, &target, Some(BUNDLE_V03_MEDIA_TYPE), &keychain)
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
    assert!(
        client
            .referrers(&repo, &victim, None, &keychain)
            .await
            .unwrap()
            .is_empty()
    );
    let manifest = client
        .manifest(&repo, &listed[0].digest.to_string(), &keychain)
        .await
        .unwrap();
    let parsed = manifest.image_manifest().unwrap();
    let blob = client
        .blob(&repo, &parsed.layers[0].digest, &keychain)
        .await
        .unwrap();
    let BundleContent::Dsse(envelope) = parse_bundle(&blob).unwrap().content else {
        panic!("expected a DSSE envelope");
    };
    let statement = verity::verify::bundle::parse_statement(&envelope.payload).unwrap();
    assert_eq!(statement.subjects[0].digests["sha256"], victim.hex());
}
