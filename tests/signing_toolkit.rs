//! The signing toolkit (`tests/support/signing`) checked against independent verifiers: openssl
//! for signatures and certificate chains, and verity's own parsers and checks for what verity
//! will be shown.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use serde_json::Value;

use support::signing::keys::openssl;
use support::signing::rekor::set_payload;
use support::signing::{
    Hash, KeyKind, KeyPair, LeafSpec, TestCtLog, TestFulcio, TestRekor, simple_signing_payload,
    trust_root_yaml, trusted_root_json, verify_openssl,
};
use verity::image::Digest;
use verity::policy::source::{Documents, trust_material_of};
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
