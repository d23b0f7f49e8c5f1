//! Key authorities end to end: images and signatures in a real `docker-registry`, signatures
//! made by openssl (independent of verity), decisions through the admission router.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::Duration;

use serde_json::{Value, json};

use support::registry::{CountingProxy, StubRegistry, TestRegistry};
use support::signing::forgery::copy_sig_manifest;
use support::signing::{
    Hash, KeyKind, KeyPair, SignatureLayer, TestRekor, Vector, keyed_bundle, push_bundle_referrer,
    push_legacy_signatures, push_vector, simple_signing_payload, trusted_root_json,
};
use support::webhook::{TestWebhook, WebhookConfig, pod_review};
use verity::image::Digest;
use verity::registry::RegistryConfig;
use verity::server::webhook::WebhookSettings;
use verity::verify::trust::TrustMaterial;

fn config(registry: &TestRegistry) -> WebhookConfig {
    WebhookConfig::with_registry_config(registry.client_config())
}

fn verity(documents: &str, config: WebhookConfig) -> TestWebhook {
    TestWebhook::start(documents, config)
}

trait Admit {
    /// Admits a Pod running `image`; `Ok(())` when allowed, `Err(denial text)` otherwise.
    async fn admit(&self, image: &str) -> Result<(), String>;
}

impl Admit for TestWebhook {
    async fn admit(&self, image: &str) -> Result<(), String> {
        let answer = self.admit_pod(&[image]).await;
        if answer.allowed {
            Ok(())
        } else {
            Err(answer.message)
        }
    }
}

fn fixture(name: &str) -> Value {
    let path = format!("{}/tests/fixtures/{name}.json", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn indent(text: &str, spaces: usize) -> String {
    let pad = " ".repeat(spaces);
    text.trim_end()
        .lines()
        .map(|l| format!("{pad}{l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// A policy with one key authority for `glob`; `extra` is more YAML of the authority.
fn key_policy(name: &str, glob: &str, key: &KeyPair, extra: &str) -> String {
    format!(
        "---\napiVersion: policy.sigstore.dev/v1alpha1\nkind: ClusterImagePolicy\nmetadata: {{name: {name}}}\nspec:\n  images: [{{glob: \"{glob}\"}}]\n  authorities:\n  - name: release-key\n    key:\n      data: |\n{}\n{}\n",
        indent(key.public_pem(), 8),
        indent(extra, 4)
    )
}

/// Pushes an image and returns `(digest, reference by digest)`.
async fn image(registry: &TestRegistry, repo: &str, seed: &str) -> (Digest, String) {
    let digest = registry.push_image(repo, "v1", seed).await;
    (
        digest.clone(),
        format!("{}/{repo}@{digest}", registry.host()),
    )
}

fn payload(registry: &TestRegistry, repo: &str, digest: &Digest) -> Vec<u8> {
    simple_signing_payload(&format!("{}/{repo}", registry.host()), digest, None)
}

const PREFIX: &str = "validation failed: failed policy: signed: spec.containers[0].image\n";

#[tokio::test]
async fn every_key_type_verifies_an_openssl_signature() {
    let registry = TestRegistry::start().await;
    for (kind, pss) in [
        (KeyKind::EcdsaP256, false),
        (KeyKind::EcdsaP384, false),
        (KeyKind::Rsa2048, false),
        (KeyKind::Rsa2048, true),
        (KeyKind::Ed25519, false),
    ] {
        let repo = format!("keys/{kind:?}-{pss}").to_lowercase();
        let key = KeyPair::generate(kind);
        let (digest, reference) = image(&registry, &repo, &repo).await;
        let payload = payload(&registry, &repo, &digest);
        let signature = key.sign_openssl(&payload, Hash::Sha256, pss);
        push_legacy_signatures(
            &registry,
            &repo,
            &digest,
            "",
            &[SignatureLayer::new(payload, signature)],
        )
        .await;
        let verity = verity(&key_policy("signed", "**", &key, ""), config(&registry));
        assert_eq!(verity.admit(&reference).await, Ok(()), "{kind:?} pss={pss}");
    }
}

#[tokio::test]
async fn hash_algorithms_must_match_the_signature() {
    let registry = TestRegistry::start().await;
    let key = KeyPair::generate(KeyKind::EcdsaP256);
    for (hash, name) in [
        (Hash::Sha224, "sha224"),
        (Hash::Sha384, "sha384"),
        (Hash::Sha512, "sha512"),
    ] {
        let repo = format!("hash/{name}");
        let (digest, reference) = image(&registry, &repo, name).await;
        let payload = payload(&registry, &repo, &digest);
        let signature = key.sign_openssl(&payload, hash, false);
        push_legacy_signatures(
            &registry,
            &repo,
            &digest,
            "",
            &[SignatureLayer::new(payload, signature)],
        )
        .await;
        let matching = verity(
            &key_policy("signed", "**", &key, "").replace(
                "    key:\n",
                &format!("    key:\n      hashAlgorithm: {name}\n"),
            ),
            config(&registry),
        );
        assert_eq!(matching.admit(&reference).await, Ok(()), "{name}");
        // The default sha256 does not verify a signature over another digest.
        let denial = verity(&key_policy("signed", "**", &key, ""), config(&registry))
            .admit(&reference)
            .await
            .unwrap_err();
        assert!(
            denial.contains("signature does not verify with the ECDSA P-256 key from key.data"),
            "{denial}"
        );
        assert!(denial.contains("(message hashed with sha256)"), "{denial}");
    }
}

#[tokio::test]
async fn wrong_key_copied_signature_and_other_payload_are_denied() {
    let registry = TestRegistry::start().await;
    let key = KeyPair::generate(KeyKind::EcdsaP256);
    let other_key = KeyPair::generate(KeyKind::EcdsaP256);
    let (signed, signed_ref) = image(&registry, "app", "signed").await;
    let (unsigned, unsigned_ref) = image(&registry, "app", "unsigned").await;
    let payload = payload(&registry, "app", &signed);
    let signature = key.sign_openssl(&payload, Hash::Sha256, false);
    push_legacy_signatures(
        &registry,
        "app",
        &signed,
        "",
        &[SignatureLayer::new(payload.clone(), signature)],
    )
    .await;
    let digest_form = |d: &Digest| format!("{}/app@{d}", registry.host());

    let right = verity(&key_policy("signed", "**", &key, ""), config(&registry));
    assert_eq!(right.admit(&signed_ref).await, Ok(()));

    // Wrong key.
    let wrong = verity(
        &key_policy("signed", "**", &other_key, ""),
        config(&registry),
    );
    let denial = wrong.admit(&signed_ref).await.unwrap_err();
    assert!(
        denial.starts_with(&format!(
            "{PREFIX}{signed_ref} signature key validation failed for authority release-key for {}: no matching signatures: [layer 0 of {}:sha256-{}.sig] signature does not verify with the ECDSA P-256 key from key.data",
            digest_form(&signed),
            registry.repository("app"),
            signed.hex()
        )),
        "{denial}"
    );

    // The signature manifest copied, unchanged, onto another image.
    copy_sig_manifest(&registry, "app", &signed, &unsigned).await;
    let denial = right.admit(&unsigned_ref).await.unwrap_err();
    assert!(
        denial.contains(&format!(
            "payload is for {signed}, not {unsigned} (a signature of another image)"
        )),
        "{denial}"
    );

    // A payload naming the image, with a signature over other bytes.
    let (third, third_ref) = image(&registry, "app", "third").await;
    let honest_payload = self::payload(&registry, "app", &third);
    let foreign_signature = key.sign_openssl(&payload, Hash::Sha256, false);
    push_legacy_signatures(
        &registry,
        "app",
        &third,
        "",
        &[SignatureLayer::new(honest_payload, foreign_signature)],
    )
    .await;
    let denial = right.admit(&third_ref).await.unwrap_err();
    assert!(
        denial.contains("signature does not verify with the ECDSA P-256 key"),
        "{denial}"
    );

    // Nothing at all.
    let (none, none_ref) = image(&registry, "app", "none").await;
    let denial = right.admit(&none_ref).await.unwrap_err();
    assert!(
        denial.ends_with(&format!(
            "signature key validation failed for authority release-key for {}: no signatures found (looked in {}:sha256-{}.sig (not found) and the referrers of {} (0 sigstore bundle(s)))",
            digest_form(&none),
            registry.repository("app"),
            none.hex(),
            digest_form(&none)
        )),
        "{denial}"
    );
}

#[tokio::test]
async fn one_valid_layer_among_invalid_ones_is_enough_and_only_it_counts() {
    let registry = TestRegistry::start().await;
    let key = KeyPair::generate(KeyKind::EcdsaP256);
    let stranger = KeyPair::generate(KeyKind::EcdsaP256);
    let (digest, reference) = image(&registry, "app", "layers").await;
    let payload = payload(&registry, "app", &digest);
    let bad = SignatureLayer::new(
        payload.clone(),
        stranger.sign_openssl(&payload, Hash::Sha256, false),
    );
    let good = SignatureLayer::new(
        payload.clone(),
        key.sign_openssl(&payload, Hash::Sha256, false),
    );
    push_legacy_signatures(&registry, "app", &digest, "", &[bad, good]).await;
    let verity = verity(&key_policy("signed", "**", &key, ""), config(&registry));
    assert_eq!(verity.admit(&reference).await, Ok(()));
}

#[tokio::test]
async fn required_annotations_must_be_signed_on_the_same_layer() {
    let registry = TestRegistry::start().await;
    let key = KeyPair::generate(KeyKind::EcdsaP256);
    let annotated = std::collections::BTreeMap::from([(
        "imageRef".to_string(),
        "refs/tags/v1.2.3".to_string(),
    )]);
    let require = "annotations: {imageRef: refs/tags/v1.2.3}";

    let (digest, reference) = image(&registry, "annotated", "a").await;
    let with = simple_signing_payload(
        &format!("{}/annotated", registry.host()),
        &digest,
        Some(&annotated),
    );
    push_legacy_signatures(
        &registry,
        "annotated",
        &digest,
        "",
        &[SignatureLayer::new(
            with.clone(),
            key.sign_openssl(&with, Hash::Sha256, false),
        )],
    )
    .await;
    assert_eq!(
        verity(
            &key_policy("signed", "**", &key, require),
            config(&registry)
        )
        .admit(&reference)
        .await,
        Ok(())
    );
    let other = verity(
        &key_policy(
            "signed",
            "**",
            &key,
            "annotations: {imageRef: refs/tags/v2.0.0}",
        ),
        config(&registry),
    )
    .admit(&reference)
    .await
    .unwrap_err();
    assert!(
        other.contains(
            "annotation imageRef=refs/tags/v2.0.0 required, found imageRef=refs/tags/v1.2.3"
        ),
        "{other}"
    );

    // A valid signature without the annotation plus an unsigned layer that carries it.
    let (digest, reference) = image(&registry, "split", "b").await;
    let plain = payload(&registry, "split", &digest);
    let valid = SignatureLayer::new(plain.clone(), key.sign_openssl(&plain, Hash::Sha256, false));
    let carrying = simple_signing_payload(
        &format!("{}/split", registry.host()),
        &digest,
        Some(&annotated),
    );
    let unsigned = SignatureLayer::new(carrying, b"not a signature".to_vec());
    push_legacy_signatures(&registry, "split", &digest, "", &[valid, unsigned]).await;
    let denial = verity(
        &key_policy("signed", "**", &key, require),
        config(&registry),
    )
    .admit(&reference)
    .await
    .unwrap_err();
    assert!(
        denial.contains("[layer 0 of")
            && denial.contains("annotation imageRef=refs/tags/v1.2.3 required, not present"),
        "{denial}"
    );
    assert!(
        denial.contains("[layer 1 of") && denial.contains("signature does not verify"),
        "{denial}"
    );
}

#[tokio::test]
async fn signatures_in_another_repository_and_with_a_tag_prefix() {
    let registry = TestRegistry::start().await;
    let key = KeyPair::generate(KeyKind::EcdsaP256);
    let (digest, reference) = image(&registry, "app", "elsewhere").await;
    let payload = payload(&registry, "app", &digest);
    let layer = SignatureLayer::new(
        payload.clone(),
        key.sign_openssl(&payload, Hash::Sha256, false),
    );
    push_legacy_signatures(&registry, "signatures/app", &digest, "release-", &[layer]).await;
    let source = format!(
        "source: [{{oci: \"{}/signatures/app\", tagPrefix: release-}}]",
        registry.host()
    );
    assert_eq!(
        verity(
            &key_policy("signed", "**", &key, &source),
            config(&registry)
        )
        .admit(&reference)
        .await,
        Ok(())
    );
    let denial = verity(&key_policy("signed", "**", &key, ""), config(&registry))
        .admit(&reference)
        .await
        .unwrap_err();
    assert!(
        denial.contains(": no signatures found (looked in"),
        "{denial}"
    );
}

#[tokio::test]
async fn tags_resolve_to_the_digest_that_was_signed() {
    let registry = TestRegistry::start().await;
    let key = KeyPair::generate(KeyKind::EcdsaP256);
    registry.push_image("app", "v1", "old").await;
    let v2 = registry.push_image("app", "v2", "new").await;
    let payload = payload(&registry, "app", &v2);
    push_legacy_signatures(
        &registry,
        "app",
        &v2,
        "",
        &[SignatureLayer::new(
            payload.clone(),
            key.sign_openssl(&payload, Hash::Sha256, false),
        )],
    )
    .await;
    let verity = verity(&key_policy("signed", "**", &key, ""), config(&registry));
    assert_eq!(
        verity.admit(&format!("{}/app:v2", registry.host())).await,
        Ok(())
    );
    let denial = verity
        .admit(&format!("{}/app:v1", registry.host()))
        .await
        .unwrap_err();
    assert!(denial.contains(": no signatures found"), "{denial}");
}

#[tokio::test]
async fn private_registries_with_basic_auth_and_tls() {
    let key = KeyPair::generate(KeyKind::EcdsaP256);

    // Basic auth: signatures read with source.signaturePullSecrets from a dockerconfigjson Secret.
    let registry = TestRegistry::start_with_basic_auth("ci", "s3cret").await;
    let (digest, reference) = image(&registry, "private/app", "basic").await;
    let payload = payload(&registry, "private/app", &digest);
    push_legacy_signatures(
        &registry,
        "private/app",
        &digest,
        "",
        &[SignatureLayer::new(
            payload.clone(),
            key.sign_openssl(&payload, Hash::Sha256, false),
        )],
    )
    .await;
    let secret = format!(
        "---\napiVersion: v1\nkind: Secret\nmetadata: {{name: regcred}}\ntype: kubernetes.io/dockerconfigjson\nstringData:\n  .dockerconfigjson: '{}'\n",
        String::from_utf8(registry.docker_config_json()).unwrap()
    );
    let with_secret = format!(
        "{}{secret}",
        key_policy(
            "signed",
            "**",
            &key,
            "source: [{signaturePullSecrets: [{name: regcred}]}]"
        )
    );
    assert_eq!(
        verity(&with_secret, config(&registry))
            .admit(&reference)
            .await,
        Ok(())
    );
    let denial = verity(&key_policy("signed", "**", &key, ""), config(&registry))
        .admit(&reference)
        .await
        .unwrap_err();
    assert!(
        denial.contains("failed to read signatures") && denial.contains("401"),
        "{denial}"
    );
    assert!(!denial.contains("no signatures found"), "{denial}");
    // --docker-config credentials also reach tag resolution.
    let options = config(&registry).docker_config(registry.keychain());
    assert_eq!(
        verity(&key_policy("signed", "**", &key, ""), options)
            .admit(&format!("{}/private/app:v1", registry.host()))
            .await,
        Ok(())
    );

    // TLS with the registry's CA configured (--registry-ca), and without it.
    let registry = TestRegistry::start_tls().await;
    let (digest, reference) = image(&registry, "tls/app", "tls").await;
    let payload = self::payload(&registry, "tls/app", &digest);
    push_legacy_signatures(
        &registry,
        "tls/app",
        &digest,
        "",
        &[SignatureLayer::new(
            payload.clone(),
            key.sign_openssl(&payload, Hash::Sha256, false),
        )],
    )
    .await;
    assert_eq!(
        verity(&key_policy("signed", "**", &key, ""), config(&registry))
            .admit(&reference)
            .await,
        Ok(())
    );
    let no_ca = WebhookConfig::with_registry_config(RegistryConfig::default());
    let denial = verity(&key_policy("signed", "**", &key, ""), no_ca)
        .admit(&reference)
        .await
        .unwrap_err();
    assert!(
        denial.contains("failed to read signatures") && denial.contains("UnknownIssuer"),
        "{denial}"
    );
}

#[tokio::test]
async fn registry_failures_deny_naming_the_cause_within_the_deadline() {
    let key = KeyPair::generate(KeyKind::EcdsaP256);
    let digest = Digest::sha256_of(b"any image");
    for (stub, expected) in [
        (StubRegistry::server_error().await, "500"),
        (StubRegistry::unauthorized_without_challenge().await, "401"),
        (
            StubRegistry::oversized_manifest(8 * 1024 * 1024, true).await,
            "limit",
        ),
        (StubRegistry::hanging().await, "timed out"),
    ] {
        let host = stub.host();
        let options = WebhookConfig::with_registry_config(RegistryConfig {
            insecure_registries: vec![host.clone()],
            request_timeout: Duration::from_millis(500),
            ..RegistryConfig::default()
        })
        .webhook(WebhookSettings {
            request_timeout: Duration::from_secs(3),
            ..WebhookSettings::default()
        });
        let verity = verity(&key_policy("signed", "**", &key, ""), options);
        let reference = format!("{host}/app@{digest}");
        let denial = verity.admit(&reference).await.unwrap_err();
        assert!(
            denial.contains(&format!(
                "signature key validation failed for authority release-key for {reference}: "
            )),
            "{denial}"
        );
        assert!(denial.contains(expected), "{expected}: {denial}");
        assert!(
            !denial.contains("no signatures found"),
            "a registry error is never 'no signatures': {denial}"
        );
        assert!(
            verity
                .metrics
                .render()
                .contains(r#"verity_admission_requests_total{decision="deny",reason="error"} 1"#)
        );
    }
}

#[tokio::test]
async fn ctlog_requires_a_rekor_entry_bound_to_the_signature() {
    let registry = TestRegistry::start().await;
    let key = KeyPair::generate(KeyKind::EcdsaP256);
    let rekor = TestRekor::new();
    let impostor = TestRekor::new();
    let fulcio = support::signing::TestFulcio::new();
    let trust =
        TrustMaterial::from_trusted_root_json(trusted_root_json(&fulcio, &rekor, None).as_bytes())
            .unwrap();
    let options = || config(&registry).default_trust(trust.clone());
    let policy = key_policy("signed", "**", &key, "ctlog: {}");
    let now = 1_790_000_000;

    // Bound entry: allowed.
    let (digest, reference) = image(&registry, "logged", "logged").await;
    let payload = payload(&registry, "logged", &digest);
    let logged = SignatureLayer::keyed(&payload, &key, Some((&rekor, now, 42)));
    push_legacy_signatures(
        &registry,
        "logged",
        &digest,
        "",
        std::slice::from_ref(&logged),
    )
    .await;
    assert_eq!(verity(&policy, options()).admit(&reference).await, Ok(()));
    // Without ctlog the same image passes too; the entry is only required with ctlog.
    assert_eq!(
        verity(&key_policy("signed", "**", &key, ""), options())
            .admit(&reference)
            .await,
        Ok(())
    );

    // No entry.
    let (digest, reference) = image(&registry, "unlogged", "unlogged").await;
    let payload = self::payload(&registry, "unlogged", &digest);
    push_legacy_signatures(
        &registry,
        "unlogged",
        &digest,
        "",
        &[SignatureLayer::keyed(&payload, &key, None)],
    )
    .await;
    let denial = verity(&policy, options())
        .admit(&reference)
        .await
        .unwrap_err();
    assert!(denial.contains("no transparency log entry (dev.sigstore.cosign/bundle annotation), which the authority's ctlog requires"), "{denial}");
    assert_eq!(
        verity(&key_policy("signed", "**", &key, ""), options())
            .admit(&reference)
            .await,
        Ok(())
    );

    // An entry of another signature (the logged one's) on a valid signature of this image.
    let (digest, reference) = image(&registry, "borrowed", "borrowed").await;
    let payload = self::payload(&registry, "borrowed", &digest);
    let mut borrowed = SignatureLayer::keyed(&payload, &key, None);
    borrowed.rekor_bundle = logged.rekor_bundle.clone();
    push_legacy_signatures(&registry, "borrowed", &digest, "", &[borrowed]).await;
    let denial = verity(&policy, options())
        .admit(&reference)
        .await
        .unwrap_err();
    assert!(
        denial.contains("transparency log entry does not record this signature"),
        "{denial}"
    );

    // An entry from a log the trust root does not know.
    let (digest, reference) = image(&registry, "foreign-log", "foreign-log").await;
    let payload = self::payload(&registry, "foreign-log", &digest);
    push_legacy_signatures(
        &registry,
        "foreign-log",
        &digest,
        "",
        &[SignatureLayer::keyed(
            &payload,
            &key,
            Some((&impostor, now, 7)),
        )],
    )
    .await;
    let denial = verity(&policy, options())
        .admit(&reference)
        .await
        .unwrap_err();
    assert!(
        denial.contains("transparency log entry:") && denial.contains(&impostor.log_id_hex()),
        "{denial}"
    );
}

#[tokio::test]
async fn keyed_cosign_v3_bundles_found_through_referrers() {
    let registry = TestRegistry::start().await;
    let key = KeyPair::generate(KeyKind::EcdsaP256);
    let rekor = TestRekor::new();
    let fulcio = support::signing::TestFulcio::new();
    let trust =
        TrustMaterial::from_trusted_root_json(trusted_root_json(&fulcio, &rekor, None).as_bytes())
            .unwrap();
    let (digest, reference) = image(&registry, "v3", "bundle").await;
    push_bundle_referrer(
        &registry,
        "v3",
        &digest,
        &keyed_bundle(&digest, &key, &rekor, 1_790_000_000, 3),
    )
    .await;
    let options = || config(&registry).default_trust(trust.clone());
    assert_eq!(
        verity(&key_policy("signed", "**", &key, ""), options())
            .admit(&reference)
            .await,
        Ok(())
    );
    assert_eq!(
        verity(&key_policy("signed", "**", &key, "ctlog: {}"), options())
            .admit(&reference)
            .await,
        Ok(())
    );

    // The same bundle attached to another image: its statement names the first digest.
    let (other, other_ref) = image(&registry, "v3", "other").await;
    push_bundle_referrer(
        &registry,
        "v3",
        &other,
        &keyed_bundle(&digest, &key, &rekor, 1_790_000_000, 4),
    )
    .await;
    let denial = verity(&key_policy("signed", "**", &key, ""), options())
        .admit(&other_ref)
        .await
        .unwrap_err();
    assert!(
        denial.contains(&format!(
            "statement is for sha256:{}, not {other}",
            digest.hex()
        )),
        "{denial}"
    );
    let wrong = KeyPair::generate(KeyKind::EcdsaP256);
    let denial = verity(&key_policy("signed", "**", &wrong, ""), options())
        .admit(&reference)
        .await
        .unwrap_err();
    assert!(
        denial.contains("DSSE signature(s) verifies with the ECDSA P-256 key"),
        "{denial}"
    );
}

#[tokio::test]
async fn production_keyed_signature_verifies_through_the_registry() {
    let registry = TestRegistry::start().await;
    let vector = Vector::load("containers-image-2023-keyed-with-rekor");
    let digest = push_vector(&registry, "cosign-signed/key-1", &vector).await;
    let reference = format!("{}/cosign-signed/key-1@{digest}", registry.host());
    let key_policy = |pem: &str, extra: &str| {
        format!(
            "apiVersion: policy.sigstore.dev/v1alpha1\nkind: ClusterImagePolicy\nmetadata: {{name: signed}}\nspec:\n  images: [{{glob: \"**\"}}]\n  authorities:\n  - name: release-key\n    key:\n      data: |\n{}\n{}\n",
            indent(pem, 8),
            indent(extra, 4)
        )
    };
    let right = vector.public_key_pem.clone().unwrap();
    for extra in [
        "",
        "ctlog: {}",
        "ctlog: {url: \"https://rekor.sigstore.dev\"}",
    ] {
        let verity = verity(&key_policy(&right, extra), config(&registry));
        assert_eq!(verity.admit(&reference).await, Ok(()), "{extra}");
    }
    let wrong = vector.wrong_public_key_pem.clone().unwrap();
    let denial = verity(&key_policy(&wrong, "ctlog: {}"), config(&registry))
        .admit(&reference)
        .await
        .unwrap_err();
    assert!(
        denial.contains("no matching signatures: [layer 0 of")
            && denial.contains("signature does not verify"),
        "{denial}"
    );
}

/// A Deployment, its ReplicaSet and 50 Pods of the same tagged image: one verification and at
/// most 3 registry requests for the digest.
#[tokio::test]
async fn a_rollout_verifies_once() {
    let registry = TestRegistry::start().await;
    let proxy: CountingProxy = registry.counting_proxy().await;
    let host = proxy.host();
    let key = KeyPair::generate(KeyKind::EcdsaP256);
    let digest = registry.push_image("app", "v1", "rollout").await;
    let payload = simple_signing_payload(&format!("{host}/app"), &digest, None);
    push_legacy_signatures(
        &registry,
        "app",
        &digest,
        "",
        &[SignatureLayer::new(
            payload.clone(),
            key.sign_openssl(&payload, Hash::Sha256, false),
        )],
    )
    .await;
    proxy.reset();
    let options = WebhookConfig::for_registry(&host);
    let verity = verity(&key_policy("signed", "**", &key, ""), options);
    let image = format!("{host}/app:v1");
    let with_image = |name: &str| {
        let mut review = fixture(name);
        let object = &mut review["request"]["object"];
        let spec = if name == "pod" {
            &mut object["spec"]
        } else {
            &mut object["spec"]["template"]["spec"]
        };
        spec.as_object_mut().unwrap().remove("initContainers");
        spec["containers"] = json!([{"name": "app", "image": image}]);
        review
    };
    assert_eq!(
        verity.review(&with_image("deployment")).await["allowed"],
        true
    );
    assert_eq!(
        verity.review(&with_image("replicaset")).await["allowed"],
        true
    );
    let pod = with_image("pod");
    let pods = futures::future::join_all((0..50).map(|_| verity.review(&pod))).await;
    assert!(pods.iter().all(|p| p["allowed"] == true));
    let requests = proxy.request_lines();
    assert!(requests.len() <= 3, "{requests:?}");
    assert_eq!(
        requests,
        [
            "HEAD /v2/app/manifests/v1".to_string(),
            format!("GET /v2/app/manifests/sha256-{}.sig", digest.hex()),
            format!(
                "GET /v2/app/blobs/sha256:{}",
                Digest::sha256_of(&payload).hex()
            ),
        ]
    );
    let metrics = verity.metrics.render();
    assert!(
        metrics.contains(r#"verity_cache_requests_total{cache="verification",result="miss"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            r#"verity_verification_duration_seconds_count{authority_kind="key",result="pass"} 52"#
        ),
        "{metrics}"
    );
}

#[tokio::test]
async fn overload_is_denied_in_band_before_the_deadline() {
    let key = KeyPair::generate(KeyKind::EcdsaP256);
    let stub = StubRegistry::hanging().await;
    let options = WebhookConfig::with_registry_config(RegistryConfig {
        insecure_registries: vec![stub.host()],
        request_timeout: Duration::from_secs(30),
        ..RegistryConfig::default()
    })
    .webhook(WebhookSettings {
        request_timeout: Duration::from_secs(3),
        max_in_flight: 1,
        ..WebhookSettings::default()
    });
    let verity = verity(&key_policy("signed", "**", &key, ""), options);
    let first = pod_review(&[&format!("{}/a@{}", stub.host(), Digest::sha256_of(b"a"))]);
    let second = pod_review(&[&format!("{}/b@{}", stub.host(), Digest::sha256_of(b"b"))]);
    // The first holds the only slot for its whole 3 s budget; the second, with a shorter
    // apiserver timeout, gives up waiting and is answered before its own deadline.
    let started = std::time::Instant::now();
    let (a, b) = tokio::join!(
        verity.review_with_timeout(&first, Duration::from_secs(10)),
        async {
            tokio::task::yield_now().await;
            verity
                .review_with_timeout(&second, Duration::from_secs(2))
                .await
        }
    );
    let message = |r: &Value| r["status"]["message"].as_str().unwrap().to_string();
    assert!(message(&a).contains("timed out after"), "{}", message(&a));
    assert!(
        message(&a).contains(&stub.host()),
        "the timeout names the registry: {}",
        message(&a)
    );
    assert!(
        message(&b).starts_with(
            "verity is overloaded: all 1 verification slots (--max-in-flight) stayed busy for 1.5s"
        ),
        "{}",
        message(&b)
    );
    assert_eq!(b["allowed"], false);
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(
        verity
            .metrics
            .render()
            .contains("verity_overload_rejections_total 1")
    );
}

/// `key.secretRef` names a Secret like `cosign generate-key-pair k8s://ns/name` makes: three
/// entries, of which `cosign.pub` is the public key (the reference accepts one-entry Secrets only).
#[tokio::test]
async fn keys_from_a_cosign_generated_secret() {
    use base64::Engine as _;
    let registry = TestRegistry::start().await;
    let key = KeyPair::generate(KeyKind::EcdsaP256);
    let (digest, reference) = image(&registry, "app", "secret-key").await;
    let payload = payload(&registry, "app", &digest);
    push_legacy_signatures(
        &registry,
        "app",
        &digest,
        "",
        &[SignatureLayer::new(
            payload.clone(),
            key.sign_openssl(&payload, Hash::Sha256, false),
        )],
    )
    .await;
    let b64 = |text: &str| base64::engine::general_purpose::STANDARD.encode(text);
    let documents = format!(
        "apiVersion: policy.sigstore.dev/v1alpha1\nkind: ClusterImagePolicy\nmetadata: {{name: signed}}\nspec:\n  images: [{{glob: \"**\"}}]\n  authorities:\n  - name: release-key\n    key: {{secretRef: {{name: cosign-key}}}}\n---\napiVersion: v1\nkind: Secret\nmetadata: {{name: cosign-key, namespace: cosign-system}}\ndata:\n  cosign.key: {}\n  cosign.password: {}\n  cosign.pub: {}\n",
        b64(
            "-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\nnot used\n-----END ENCRYPTED SIGSTORE PRIVATE KEY-----\n"
        ),
        b64("hunter2"),
        b64(key.public_pem())
    );
    assert_eq!(
        verity(&documents, config(&registry))
            .admit(&reference)
            .await,
        Ok(())
    );
    // The wrong Secret contents: a clear load error naming the Secret.
    let broken = documents.replace("cosign.pub:", "other.pub:");
    let err = TestWebhook::try_start(&broken, config(&registry))
        .err()
        .unwrap();
    assert!(
        err.to_string().contains(r#"secret "cosign-key" has 3 entries (cosign.key, cosign.password, other.pub); expected a single public key entry or a cosign.pub entry"#),
        "{err}"
    );
}
