//! End-to-end matrix of keyless verification (issue 4) through the real registry path: images and
//! signatures pushed into a real `docker-registry`, ClusterImagePolicies with `keyless`
//! authorities, and AdmissionReviews answered by the webhook router with an online verifier.
//!
//! The signing side is the test toolkit (`support::signing`): a test Fulcio (root and
//! intermediate), a test Rekor (SETs, inclusion proofs, checkpoints, all signed by openssl) and a
//! test CT log, described by a `trusted_root.json` used as the default trust root (what
//! `--trust-root` does). The real production vectors of `../shared/vectors` go through the same
//! path with the embedded production trust root.
//!
//! Each must-deny case tampers exactly one thing of an otherwise valid signature and asserts the
//! reason in the denial, so that removing the check that catches it makes the test fail. Every
//! denial must start with the reference's opening
//! `signature keyless validation failed for authority ci for REPO@DIGEST: `.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::process::Output;
use std::time::Duration;

use http::StatusCode;
use serde_json::Value;
use verity::image::Digest;

use support::registry::{StubRegistry, StubResponse, TestRegistry};
use support::signing::forgery::{
    copy_sig_manifest, replace_dsse_payload, shift_annotation_time, shift_bundle_time,
    strip_bundle, strip_tlog_entries, with_stolen_evidence,
};
use support::signing::fulcio::TEST_OIDC_ISSUER;
use support::signing::rekor::set_payload;
use support::signing::vector::{KEYLESS_2021, V3_BUNDLE_2026};
use support::signing::{
    BundleMaterial, Envelope, FulcioLeaf, Hash, KeyKind, KeyPair, LeafSpec, SignatureLayer,
    TestCtLog, TestFulcio, TestRekor, Vector, b64, bundle_v03, dsse_envelope, in_toto_statement,
    keyless_bundle, push_bundle_referrer, push_legacy_signatures, push_vector,
    simple_signing_payload, trust_root_yaml, trusted_root_json,
};
use support::webhook::{TestWebhook, WebhookConfig, cluster_image_policy};

/// 2026-01-01T00:00:00Z: when the test leaves are issued (notBefore).
const ISSUED: i64 = 1_767_225_600;
/// The Rekor integrated time of the test signatures: one second into the leaf's validity.
const SIGNED: i64 = ISSUED + 1;
const EMAIL: &str = "dev@example.com";
const WORKFLOW: &str =
    "https://github.com/example/app/.github/workflows/release.yml@refs/tags/v1.0.0";

// ---------------------------------------------------------------------------------------------
// Set-up shared by the tests
// ---------------------------------------------------------------------------------------------

/// A test sigstore: Fulcio, Rekor and a CT log.
struct Pki {
    fulcio: TestFulcio,
    rekor: TestRekor,
    ct: TestCtLog,
}

impl Pki {
    fn new() -> Self {
        Pki {
            fulcio: TestFulcio::new(),
            rekor: TestRekor::new(),
            ct: TestCtLog::new(),
        }
    }

    /// The `trusted_root.json` of all three.
    fn trusted_root(&self) -> String {
        trusted_root_json(&self.fulcio, &self.rekor, Some(&self.ct))
    }

    /// A leaf for the e-mail `address` issued at [`ISSUED`] by the test OIDC issuer, with an
    /// SCT from the trusted CT log.
    fn email_spec(&self, address: &str) -> LeafSpec<'_> {
        LeafSpec {
            sct: Some(&self.ct),
            ..LeafSpec::email(address, ISSUED)
        }
    }

    fn uri_spec(&self, uri: &str) -> LeafSpec<'_> {
        LeafSpec {
            sct: Some(&self.ct),
            ..LeafSpec::uri(uri, ISSUED)
        }
    }

    fn issue(&self, spec: &LeafSpec<'_>) -> FulcioLeaf {
        self.fulcio.issue(spec)
    }

    fn email_leaf(&self, address: &str) -> FulcioLeaf {
        self.issue(&self.email_spec(address))
    }
}

/// A registry and a test sigstore.
struct World {
    registry: TestRegistry,
    pki: Pki,
}

impl World {
    async fn start() -> Self {
        World {
            registry: TestRegistry::start().await,
            pki: Pki::new(),
        }
    }

    fn host(&self) -> &str {
        self.registry.host()
    }

    /// `HOST/repo@digest`.
    fn image(&self, repo: &str, digest: &Digest) -> String {
        format!("{}/{repo}@{digest}", self.host())
    }

    /// Pushes a small image to `repo` (tagged `seed`); returns its digest.
    async fn push_image(&self, repo: &str, seed: &str) -> Digest {
        self.registry
            .push_image(repo, &seed.replace('/', "-"), seed)
            .await
    }

    /// What `cosign sign` signs for `repo@digest`.
    fn payload(&self, repo: &str, digest: &Digest) -> Vec<u8> {
        simple_signing_payload(&format!("{}/{repo}", self.host()), digest, None)
    }

    /// A genuine keyless `.sig` layer for `repo@digest` by `leaf`, logged at [`SIGNED`].
    fn keyless_layer(&self, repo: &str, digest: &Digest, leaf: &FulcioLeaf) -> SignatureLayer {
        SignatureLayer::keyless(
            &self.payload(repo, digest),
            leaf,
            &self.pki.fulcio,
            &self.pki.rekor,
            SIGNED,
            7,
        )
    }

    /// Pushes `layers` as the `.sig` manifest of `repo@digest`.
    async fn push_sig(&self, repo: &str, digest: &Digest, layers: &[SignatureLayer]) {
        push_legacy_signatures(&self.registry, repo, digest, "", layers).await;
    }

    /// An image in `repo` with a genuine keyless `.sig` by `leaf`; returns its digest.
    async fn signed_image(&self, repo: &str, leaf: &FulcioLeaf) -> Digest {
        let digest = self.push_image(repo, repo).await;
        self.push_sig(repo, &digest, &[self.keyless_layer(repo, &digest, leaf)])
            .await;
        digest
    }

    /// A webhook over `policies` with the test sigstore as the default trust root.
    fn webhook(&self, policies: &str) -> TestWebhook {
        TestWebhook::start(policies, self.config())
    }

    fn config(&self) -> WebhookConfig {
        WebhookConfig::for_registry(self.host()).trusted_root_json(&self.pki.trusted_root())
    }
}

/// `{issuer: 'I', subject: 'S'}`.
fn identity(issuer: &str, subject: &str) -> String {
    format!("{{issuer: '{issuer}', subject: '{subject}'}}")
}

/// The identity of [`Pki::email_leaf`] for [`EMAIL`].
fn dev_identity() -> String {
    identity(TEST_OIDC_ISSUER, EMAIL)
}

/// One ClusterImagePolicy for images matching `glob` with one authority named `ci`:
/// `keyless: {keyless}` plus any further authority fields (`extra`, YAML lines of the authority
/// map after `keyless`).
fn policy_for(glob: &str, keyless: &str, extra: &str) -> String {
    let name = format!(
        "p-{}",
        &support::signing::sha256_hex(format!("{glob}{keyless}{extra}").as_bytes())[..12]
    );
    let mut spec =
        format!("images: [{{glob: '{glob}'}}]\nauthorities:\n- name: ci\n  keyless: {keyless}");
    for line in extra.lines() {
        spec.push_str(&format!("\n  {line}"));
    }
    cluster_image_policy(&name, &spec)
}

/// The glob of the images of `HOST/repo`, by digest (globs match the whole reference).
fn repo_glob(world: &World, repo: &str) -> String {
    format!("{}/{repo}@*", world.host())
}

/// [`policy_for`] the images of `HOST/repo`.
fn policy(world: &World, repo: &str, keyless: &str) -> String {
    policy_for(&repo_glob(world, repo), keyless, "")
}

/// `{identities: [IDENTITIES]}`.
fn identities(list: &[String]) -> String {
    format!("{{identities: [{}]}}", list.join(", "))
}

/// The reference's opening of a keyless failure of authority `ci` for `image` (`HOST/repo@digest`).
fn prefix(image: &str) -> String {
    format!("signature keyless validation failed for authority ci for {image}: ")
}

/// Admits `image` and returns its keyless failure text (from [`prefix`] to the end of its line).
async fn denial(webhook: &TestWebhook, image: &str) -> String {
    webhook
        .admit_pod(&[image])
        .await
        .authority_failure(&prefix(image))
        .to_string()
}

/// Asserts that a failure text says `no matching signatures` and every one of `reasons`.
#[track_caller]
fn assert_reasons(text: &str, reasons: &[&str]) {
    assert!(
        text.contains(": no matching signatures: ["),
        "expected a rejected signature: {text}"
    );
    for reason in reasons {
        assert!(text.contains(reason), "expected {reason:?} in: {text}");
    }
}

/// Admits `image` and asserts its failure says `no matching signatures` and every one of
/// `reasons`; returns the failure text.
async fn expect_denied(webhook: &TestWebhook, image: &str, reasons: &[&str]) -> String {
    let text = denial(webhook, image).await;
    assert_reasons(&text, reasons);
    text
}

async fn expect_allowed(webhook: &TestWebhook, image: &str) {
    webhook.admit_pod(&[image]).await.assert_allowed();
}

/// A `dev.sigstore.cosign/bundle` annotation for `entry` (with whatever SET it carries).
fn annotation(entry: &support::signing::RekorEntry) -> String {
    entry.cosign_annotation()
}

/// A `.sig` layer with exactly the given parts.
fn layer_of(
    payload: Vec<u8>,
    signature: Vec<u8>,
    leaf: &FulcioLeaf,
    chain_pem: Option<String>,
    rekor_bundle: Option<String>,
) -> SignatureLayer {
    SignatureLayer {
        certificate_pem: Some(leaf.cert_pem.clone()),
        chain_pem,
        rekor_bundle,
        ..SignatureLayer::new(payload, signature)
    }
}

// ---------------------------------------------------------------------------------------------
// Must allow
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn legacy_sig_with_an_email_identity_and_exact_issuer_is_admitted() {
    let world = World::start().await;
    let leaf = world.pki.email_leaf(EMAIL);
    let signed = world.signed_image("team/app", &leaf).await;
    let unsigned = world.push_image("team/app", "unsigned").await;
    let webhook = world.webhook(&policy(&world, "team/app", &identities(&[dev_identity()])));

    expect_allowed(&webhook, &world.image("team/app", &signed)).await;

    // The same policy, an image without any signature: the reference's "no signatures found",
    // as the apiserver shows it (knative's field error: the policy and the field, then the image
    // and the authority's text).
    let image = world.image("team/app", &unsigned);
    let answer = webhook.admit_pod(&[&image]).await;
    let text = answer.authority_failure(&prefix(&image)).to_string();
    let message = answer.denied();
    assert!(
        message.starts_with("validation failed: failed policy: p-")
            && message.ends_with(&format!(": spec.containers[0].image\n{image} {text}")),
        "{message}"
    );
    assert_eq!(
        text,
        format!(
            "{}no signatures found (looked in {host}/team/app:sha256-{hex}.sig (not found) and the referrers of {host}/team/app@{unsigned} (0 sigstore bundle(s)))",
            prefix(&image),
            host = world.host(),
            hex = unsigned.hex()
        )
    );
}

#[tokio::test]
async fn workflow_uri_identity_matches_by_subject_and_issuer_regexps() {
    let world = World::start().await;
    let leaf = world.pki.issue(&world.pki.uri_spec(WORKFLOW));
    let digest = world.signed_image("ci/app", &leaf).await;
    let image = world.image("ci/app", &digest);

    let subject_regexp = format!(
        "{{identities: [{{issuer: '{TEST_OIDC_ISSUER}', subjectRegExp: '^https://github\\.com/example/app/\\.github/workflows/release\\.yml@refs/tags/v'}}]}}"
    );
    expect_allowed(
        &world.webhook(&policy(&world, "ci/app", &subject_regexp)),
        &image,
    )
    .await;

    let issuer_regexp = format!(
        "{{identities: [{{issuerRegExp: '^https://issuer\\.example\\.(com|org)$', subject: '{WORKFLOW}'}}]}}"
    );
    expect_allowed(
        &world.webhook(&policy(&world, "ci/app", &issuer_regexp)),
        &image,
    )
    .await;

    let both = "{identities: [{issuerRegExp: '^https://issuer\\.example\\.com$', subjectRegExp: '^https://github\\.com/example/'}]}";
    expect_allowed(&world.webhook(&policy(&world, "ci/app", both)), &image).await;
}

#[tokio::test]
async fn cosign_v3_keyless_bundle_referrer_is_admitted() {
    let world = World::start().await;
    let leaf = world.pki.email_leaf(EMAIL);
    let digest = world.push_image("v3/app", "v3").await;
    push_bundle_referrer(
        &world.registry,
        "v3/app",
        &digest,
        &keyless_bundle(&digest, &leaf, &world.pki.rekor, SIGNED, 11),
    )
    .await;
    let webhook = world.webhook(&policy(&world, "v3/app", &identities(&[dev_identity()])));
    expect_allowed(&webhook, &world.image("v3/app", &digest)).await;
}

#[tokio::test]
async fn signatures_in_another_repository_are_read_through_source_oci() {
    let world = World::start().await;
    let leaf = world.pki.email_leaf(EMAIL);
    let digest = world.push_image("apps/web", "web").await;
    let layer = world.keyless_layer("apps/web", &digest, &leaf);
    world.push_sig("signatures/web", &digest, &[layer]).await;
    let image = world.image("apps/web", &digest);

    let glob = repo_glob(&world, "apps/web");
    let source = format!("source: [{{oci: '{}/signatures/web'}}]", world.host());
    let keyless = identities(&[dev_identity()]);
    expect_allowed(
        &world.webhook(&policy_for(&glob, &keyless, &source)),
        &image,
    )
    .await;

    // Without `source` the image's own repository has nothing.
    let text = denial(&world.webhook(&policy_for(&glob, &keyless, "")), &image).await;
    assert!(text.contains(": no signatures found (looked in "), "{text}");
}

#[tokio::test]
async fn identities_are_ored_and_both_fields_of_one_entry_must_match() {
    let world = World::start().await;
    let leaf = world.pki.email_leaf(EMAIL);
    let digest = world.signed_image("or/app", &leaf).await;
    let image = world.image("or/app", &digest);

    let second_matches = identities(&[
        identity("https://accounts.google.com", "someone@example.com"),
        dev_identity(),
    ]);
    expect_allowed(
        &world.webhook(&policy(&world, "or/app", &second_matches)),
        &image,
    )
    .await;

    // The issuer of one entry and the subject of another: no single entry matches.
    let split = identities(&[
        identity(TEST_OIDC_ISSUER, "someone@example.com"),
        identity("https://accounts.google.com", EMAIL),
    ]);
    expect_denied(
        &world.webhook(&policy(&world, "or/app", &split)),
        &image,
        &[&format!(
            "none of the expected identities matched what was in the certificate, got subjects [{EMAIL}] with issuer {TEST_OIDC_ISSUER} (expected subject someone@example.com with issuer {TEST_OIDC_ISSUER} or subject {EMAIL} with issuer https://accounts.google.com)"
        )],
    )
    .await;
}

#[tokio::test]
async fn policy_ca_cert_is_honoured_as_the_only_trust_anchor() {
    let world = World::start().await;
    let leaf = world.pki.email_leaf(EMAIL);
    let digest = world.signed_image("private/app", &leaf).await;
    let image = world.image("private/app", &digest);

    // A trust root with the Rekor and CT log keys but no certificate authority at all.
    let mut root: Value = serde_json::from_str(&world.pki.trusted_root()).unwrap();
    root["certificateAuthorities"] = Value::Array(Vec::new());
    let config = WebhookConfig::for_registry(world.host()).trusted_root_json(&root.to_string());

    let with_ca = format!(
        "{{ca-cert: {{data: {}}}, identities: [{}]}}",
        serde_json::to_string(&world.pki.fulcio.root_pem()).unwrap(),
        dev_identity()
    );
    let webhook = TestWebhook::start(&policy(&world, "private/app", &with_ca), config.clone());
    expect_allowed(&webhook, &image).await;

    // The control: the same without ca-cert has nothing to chain to.
    let without = identities(&[dev_identity()]);
    let webhook = TestWebhook::start(&policy(&world, "private/app", &without), config);
    expect_denied(
        &webhook,
        &image,
        &[
            "certificate is not trusted",
            "no trusted certificate authority",
        ],
    )
    .await;
}

#[tokio::test]
async fn trust_root_ref_selects_a_trust_root_document_instead_of_the_default() {
    let world = World::start().await;
    let leaf = world.pki.email_leaf(EMAIL);
    let digest = world.signed_image("ref/app", &leaf).await;
    let image = world.image("ref/app", &digest);
    let trust_root = trust_root_yaml(
        "test-sigstore",
        &world.pki.fulcio,
        &world.pki.rekor,
        Some(&world.pki.ct),
    );
    // The default trust root is the production one, which knows nothing of the test sigstore.
    let production = WebhookConfig::for_registry(world.host());

    let referenced = format!(
        "{{trustRootRef: test-sigstore, identities: [{}]}}",
        dev_identity()
    );
    let policies = format!(
        "---\n{trust_root}{}",
        policy(&world, "ref/app", &referenced)
    );
    expect_allowed(&TestWebhook::start(&policies, production.clone()), &image).await;

    let unreferenced = identities(&[dev_identity()]);
    let policies = format!(
        "---\n{trust_root}{}",
        policy(&world, "ref/app", &unreferenced)
    );
    expect_denied(
        &TestWebhook::start(&policies, production),
        &image,
        &["is not in the trust root"],
    )
    .await;
}

#[tokio::test]
async fn annotations_required_by_the_authority_come_from_the_signed_payload() {
    let world = World::start().await;
    let leaf = world.pki.email_leaf(EMAIL);
    let digest = world.push_image("annotated/app", "annotated").await;
    let optional = [("env".to_string(), "prod".to_string())].into();
    let payload = simple_signing_payload(
        &format!("{}/annotated/app", world.host()),
        &digest,
        Some(&optional),
    );
    let layer = SignatureLayer::keyless(
        &payload,
        &leaf,
        &world.pki.fulcio,
        &world.pki.rekor,
        SIGNED,
        3,
    );
    world.push_sig("annotated/app", &digest, &[layer]).await;
    let image = world.image("annotated/app", &digest);
    let glob = repo_glob(&world, "annotated/app");
    let keyless = identities(&[dev_identity()]);

    let prod = policy_for(&glob, &keyless, "annotations: {env: prod}");
    expect_allowed(&world.webhook(&prod), &image).await;
    let staging = policy_for(&glob, &keyless, "annotations: {env: staging}");
    expect_denied(
        &world.webhook(&staging),
        &image,
        &["annotation env=staging required, found env=prod"],
    )
    .await;
}

// ---------------------------------------------------------------------------------------------
// Must deny: the signature and what it signs
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_signature_not_over_the_payload_is_denied() {
    let world = World::start().await;
    let leaf = world.pki.email_leaf(EMAIL);
    let rekor = &world.pki.rekor;

    // Legacy: the payload names the image, the signature (by the leaf key) is over other bytes,
    // and the log recorded exactly that pair (the test Rekor, unlike the real one, does not
    // check signatures), so only the signature check can object.
    let digest = world.push_image("nosig/legacy", "legacy").await;
    let payload = world.payload("nosig/legacy", &digest);
    let signature = leaf.key.sign_openssl(b"other bytes", Hash::Sha256, false);
    let entry = rekor.hashedrekord_entry(&payload, &signature, &leaf.cert_pem, SIGNED, 1);
    let layer = layer_of(
        payload,
        signature,
        &leaf,
        Some(world.pki.fulcio.chain_pem()),
        Some(annotation(&entry)),
    );
    world.push_sig("nosig/legacy", &digest, &[layer]).await;

    // v3: a DSSE signature over another PAE, recorded as such in a dsse entry.
    let bundle_digest = world.push_image("nosig/v3", "v3").await;
    let envelope = Envelope::signed_with(
        &in_toto_statement(&bundle_digest),
        "application/vnd.in-toto+json",
        |_| leaf.key.sign_openssl(b"other bytes", Hash::Sha256, false),
    );
    let entry = rekor.dsse_entry(&envelope, &leaf.cert_pem, SIGNED, 2);
    let bundle = bundle_v03(
        &envelope,
        &BundleMaterial::Certificate(leaf.cert_der.clone()),
        Some(&entry),
    );
    push_bundle_referrer(&world.registry, "nosig/v3", &bundle_digest, &bundle).await;

    // v3: a genuine bundle whose DSSE payload was replaced (names the same image, one byte more).
    let tampered_digest = world.push_image("nosig/tampered", "tampered").await;
    let genuine = keyless_bundle(&tampered_digest, &leaf, rekor, SIGNED, 3);
    let mut statement = in_toto_statement(&tampered_digest);
    statement.insert(1, b' ');
    push_bundle_referrer(
        &world.registry,
        "nosig/tampered",
        &tampered_digest,
        &replace_dsse_payload(&genuine, &statement),
    )
    .await;

    let glob = format!("{}/nosig/**", world.host());
    let webhook = world.webhook(&policy_for(&glob, &identities(&[dev_identity()]), ""));
    expect_denied(
        &webhook,
        &world.image("nosig/legacy", &digest),
        &["signature does not verify with the certificate's"],
    )
    .await;
    expect_denied(
        &webhook,
        &world.image("nosig/v3", &bundle_digest),
        &["none of the 1 DSSE signature(s) verifies with the certificate's"],
    )
    .await;
    expect_denied(
        &webhook,
        &world.image("nosig/tampered", &tampered_digest),
        &["none of the 1 DSSE signature(s) verifies with the certificate's"],
    )
    .await;
}

#[tokio::test]
async fn evidence_or_manifests_copied_onto_another_digest_are_denied() {
    let world = World::start().await;
    let leaf = world.pki.email_leaf(EMAIL);
    let victim = world.signed_image("copy/app", &leaf).await;
    let victim_layer = world.keyless_layer("copy/app", &victim, &leaf);
    let webhook = world.webhook(&policy(&world, "copy/app", &identities(&[dev_identity()])));
    expect_allowed(&webhook, &world.image("copy/app", &victim)).await;

    // The attacker's image: a payload naming it, validly signed by the attacker's own key, with
    // the victim's certificate, chain and Rekor bundle annotations copied on.
    let attacker = world.push_image("copy/app", "attacker").await;
    let own_key = KeyPair::generate(KeyKind::EcdsaP256);
    let own_payload = world.payload("copy/app", &attacker);
    let own = SignatureLayer::new(
        own_payload.clone(),
        own_key.sign_openssl(&own_payload, Hash::Sha256, false),
    );
    world
        .push_sig(
            "copy/app",
            &attacker,
            &[with_stolen_evidence(&own, &victim_layer)],
        )
        .await;
    expect_denied(
        &webhook,
        &world.image("copy/app", &attacker),
        &["signature does not verify with the certificate's"],
    )
    .await;

    // The victim's `.sig` manifest copied byte for byte to another image's signature tag.
    let other = world.push_image("copy/app", "other").await;
    copy_sig_manifest(&world.registry, "copy/app", &victim, &other).await;
    expect_denied(
        &webhook,
        &world.image("copy/app", &other),
        &[&format!(
            "payload is for {victim}, not {other} (a signature of another image)"
        )],
    )
    .await;
}

#[tokio::test]
async fn two_layers_where_one_has_the_identity_and_the_other_the_valid_signature_are_denied() {
    let world = World::start().await;
    let expected = world.pki.email_leaf(EMAIL);
    let other = world.pki.email_leaf("attacker@example.com");
    let digest = world.push_image("split/app", "split").await;
    let payload = world.payload("split/app", &digest);

    // Layer 0: the expected identity's certificate, a signature that does not verify (recorded
    // as it is by the log). Layer 1: a fully valid signature by another identity.
    let bad_signature = expected
        .key
        .sign_openssl(b"not the payload", Hash::Sha256, false);
    let entry =
        world
            .pki
            .rekor
            .hashedrekord_entry(&payload, &bad_signature, &expected.cert_pem, SIGNED, 4);
    let identity_layer = layer_of(
        payload,
        bad_signature,
        &expected,
        Some(world.pki.fulcio.chain_pem()),
        Some(annotation(&entry)),
    );
    let valid_layer = world.keyless_layer("split/app", &digest, &other);
    world
        .push_sig("split/app", &digest, &[identity_layer, valid_layer])
        .await;

    let webhook = world.webhook(&policy(&world, "split/app", &identities(&[dev_identity()])));
    let text = expect_denied(
        &webhook,
        &world.image("split/app", &digest),
        &[
            "[layer 0 of ",
            "signature does not verify with the certificate's",
            "[layer 1 of ",
            "none of the expected identities matched what was in the certificate, got subjects [attacker@example.com]",
            "(2 signature layer(s))",
        ],
    )
    .await;
    // Each rejected signature says who its certificate names, whatever check it failed.
    assert!(
        text.contains(&format!(
            "(message hashed with sha256) (certificate for subjects [{EMAIL}] with issuer {TEST_OIDC_ISSUER}); [layer 1 of "
        )),
        "{text}"
    );
}

// ---------------------------------------------------------------------------------------------
// Must deny: the certificate
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn leaves_from_an_untrusted_ca_or_without_code_signing_are_denied() {
    let world = World::start().await;
    let stranger = TestFulcio::new();
    let glob = format!("{}/cert/**", world.host());
    let webhook = world.webhook(&policy_for(&glob, &identities(&[dev_identity()]), ""));

    // Issued by another Fulcio (with its own chain annotation), logged and SCT'd by trusted logs.
    let untrusted_leaf = stranger.issue(&world.pki.email_spec(EMAIL));
    let digest = world.push_image("cert/untrusted", "untrusted").await;
    let layer = SignatureLayer::keyless(
        &world.payload("cert/untrusted", &digest),
        &untrusted_leaf,
        &stranger,
        &world.pki.rekor,
        SIGNED,
        5,
    );
    world.push_sig("cert/untrusted", &digest, &[layer]).await;
    expect_denied(
        &webhook,
        &world.image("cert/untrusted", &digest),
        &[
            "certificate is not trusted: certificate does not chain to a trusted certificate authority at signing time 2026-01-01T00:00:01Z",
            &format!("(certificate for subjects [{EMAIL}] with issuer {TEST_OIDC_ISSUER})"),
        ],
    )
    .await;

    // The trusted Fulcio, but extended key usage serverAuth instead of codeSigning.
    let server_leaf = world.pki.issue(&LeafSpec {
        code_signing: false,
        ..world.pki.email_spec(EMAIL)
    });
    let digest = world.signed_image("cert/serverauth", &server_leaf).await;
    expect_denied(
        &webhook,
        &world.image("cert/serverauth", &digest),
        &["certificate is not for code signing"],
    )
    .await;
}

#[tokio::test]
async fn a_missing_chain_is_denied_when_the_trust_root_lists_only_the_root() {
    let world = World::start().await;
    let leaf = world.pki.email_leaf(EMAIL);
    let mut root: Value = serde_json::from_str(&world.pki.trusted_root()).unwrap();
    root["certificateAuthorities"][0]["certChain"]["certificates"] =
        serde_json::json!([{"rawBytes": b64(world.pki.fulcio.root_der())}]);
    let config = WebhookConfig::for_registry(world.host()).trusted_root_json(&root.to_string());
    let glob = format!("{}/chain/**", world.host());
    let webhook = TestWebhook::start(
        &policy_for(&glob, &identities(&[dev_identity()]), ""),
        config,
    );

    // The control: the chain annotation brings the intermediate.
    let with_chain = world.signed_image("chain/with", &leaf).await;
    expect_allowed(&webhook, &world.image("chain/with", &with_chain)).await;

    let without_chain = world.push_image("chain/without", "without").await;
    let layer = SignatureLayer {
        chain_pem: None,
        ..world.keyless_layer("chain/without", &without_chain, &leaf)
    };
    world
        .push_sig("chain/without", &without_chain, &[layer])
        .await;
    expect_denied(
        &webhook,
        &world.image("chain/without", &without_chain),
        &[
            "certificate is not trusted",
            "no valid path to root CN=test-fulcio-root,O=test: issuer not found (unknown issuer)",
        ],
    )
    .await;
}

// ---------------------------------------------------------------------------------------------
// Must deny: the transparency log entry
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn an_integrated_time_outside_the_leaf_validity_is_denied_though_its_set_verifies() {
    let world = World::start().await;
    let spec = world.pki.email_spec(EMAIL);
    let leaf = world.pki.issue(&spec);
    let glob = format!("{}/time/**", world.host());
    let webhook = world.webhook(&policy_for(&glob, &identities(&[dev_identity()]), ""));

    // SETs made by the trusted log for these times: only the validity check can object.
    for (repo, time, allowed) in [
        ("time/at-not-after", spec.not_after(), true),
        ("time/after", spec.not_after() + 1, false),
        ("time/before", ISSUED - 1, false),
    ] {
        let digest = world.push_image(repo, repo).await;
        let layer = SignatureLayer::keyless(
            &world.payload(repo, &digest),
            &leaf,
            &world.pki.fulcio,
            &world.pki.rekor,
            time,
            8,
        );
        world.push_sig(repo, &digest, &[layer]).await;
        let image = world.image(repo, &digest);
        if allowed {
            expect_allowed(&webhook, &image).await;
        } else {
            expect_denied(
                &webhook,
                &image,
                &[&format!(
                    "certificate was not valid at signing time {}: valid 2026-01-01T00:00:00Z–2026-01-01T00:10:00Z",
                    support::signing::rfc3339(time)
                )],
            )
            .await;
        }
    }
}

#[tokio::test]
async fn an_integrated_time_moved_by_one_second_without_a_new_set_is_denied() {
    let world = World::start().await;
    let leaf = world.pki.email_leaf(EMAIL);
    let glob = format!("{}/shift/**", world.host());
    let webhook = world.webhook(&policy_for(&glob, &identities(&[dev_identity()]), ""));

    for (repo, delta) in [("shift/plus", 1), ("shift/minus", -1)] {
        let digest = world.push_image(repo, repo).await;
        let genuine = world.keyless_layer(repo, &digest, &leaf);
        let layer = SignatureLayer {
            rekor_bundle: Some(shift_annotation_time(
                genuine.rekor_bundle.as_deref().unwrap(),
                delta,
            )),
            ..genuine
        };
        world.push_sig(repo, &digest, &[layer]).await;
        expect_denied(
            &webhook,
            &world.image(repo, &digest),
            &[&format!(
                "rekor entry 7 signed entry timestamp (SET) does not verify with the key of https://rekor.test (integrated time {})",
                SIGNED + delta
            )],
        )
        .await;
    }

    let digest = world.push_image("shift/v3", "v3").await;
    let bundle = keyless_bundle(&digest, &leaf, &world.pki.rekor, SIGNED, 9);
    push_bundle_referrer(
        &world.registry,
        "shift/v3",
        &digest,
        &shift_bundle_time(&bundle, 1),
    )
    .await;
    expect_denied(
        &webhook,
        &world.image("shift/v3", &digest),
        &["rekor entry 9 signed entry timestamp (SET) does not verify"],
    )
    .await;
}

#[tokio::test]
async fn sets_and_checkpoints_by_an_unknown_or_a_wrong_key_are_denied() {
    let world = World::start().await;
    let leaf = world.pki.email_leaf(EMAIL);
    let rekor = &world.pki.rekor;
    let glob = format!("{}/logkey/**", world.host());
    let webhook = world.webhook(&policy_for(&glob, &identities(&[dev_identity()]), ""));
    let impostor = KeyPair::generate(KeyKind::EcdsaP256);

    // An entry of another log (same URL, its own key) that the trust root does not list.
    let unknown_log = TestRekor::new();
    let digest = world.push_image("logkey/unknown", "unknown").await;
    let layer = SignatureLayer::keyless(
        &world.payload("logkey/unknown", &digest),
        &leaf,
        &world.pki.fulcio,
        &unknown_log,
        SIGNED,
        7,
    );
    world.push_sig("logkey/unknown", &digest, &[layer]).await;
    expect_denied(
        &webhook,
        &world.image("logkey/unknown", &digest),
        &[&format!(
            "rekor entry log id {} is not in the trust root (known: {} (https://rekor.test))",
            unknown_log.log_id_hex(),
            rekor.log_id_hex()
        )],
    )
    .await;

    // The trusted log's id, a SET by another key.
    let digest = world.push_image("logkey/wrong-set", "wrong-set").await;
    let genuine = world.keyless_layer("logkey/wrong-set", &digest, &leaf);
    let mut entry = rekor.hashedrekord_entry(
        &genuine.payload,
        &genuine.signature,
        &leaf.cert_pem,
        SIGNED,
        7,
    );
    entry.set = Some(impostor.sign_openssl(
        set_payload(&entry.body, SIGNED, &rekor.log_id_hex(), 7).as_bytes(),
        Hash::Sha256,
        false,
    ));
    let layer = SignatureLayer {
        rekor_bundle: Some(annotation(&entry)),
        ..genuine
    };
    world.push_sig("logkey/wrong-set", &digest, &[layer]).await;
    expect_denied(
        &webhook,
        &world.image("logkey/wrong-set", &digest),
        &["rekor entry 7 signed entry timestamp (SET) does not verify with the key of https://rekor.test"],
    )
    .await;

    // v3: a valid SET, but the inclusion proof's checkpoint signed by another key under the
    // trusted log's name and key hint.
    let digest = world
        .push_image("logkey/wrong-checkpoint", "wrong-checkpoint")
        .await;
    let envelope = dsse_envelope(&in_toto_statement(&digest), &leaf.key);
    let mut entry = rekor.dsse_entry(&envelope, &leaf.cert_pem, SIGNED, 12);
    let proof = entry.inclusion_proof.as_mut().unwrap();
    let text = format!(
        "{}\n{}\n{}\n",
        rekor.origin(),
        proof.tree_size,
        b64(&proof.root_hash)
    );
    proof.checkpoint = rekor.sign_note(&text, &impostor);
    let bundle = bundle_v03(
        &envelope,
        &BundleMaterial::Certificate(leaf.cert_der.clone()),
        Some(&entry),
    );
    push_bundle_referrer(&world.registry, "logkey/wrong-checkpoint", &digest, &bundle).await;
    expect_denied(
        &webhook,
        &world.image("logkey/wrong-checkpoint", &digest),
        &["rekor checkpoint is invalid"],
    )
    .await;

    // v3: a SET by another key (the checkpoint genuine).
    let digest = world
        .push_image("logkey/wrong-promise", "wrong-promise")
        .await;
    let envelope = dsse_envelope(&in_toto_statement(&digest), &leaf.key);
    let mut entry = rekor.dsse_entry(&envelope, &leaf.cert_pem, SIGNED, 13);
    entry.set = Some(impostor.sign_openssl(
        set_payload(&entry.body, SIGNED, &rekor.log_id_hex(), 13).as_bytes(),
        Hash::Sha256,
        false,
    ));
    let bundle = bundle_v03(
        &envelope,
        &BundleMaterial::Certificate(leaf.cert_der.clone()),
        Some(&entry),
    );
    push_bundle_referrer(&world.registry, "logkey/wrong-promise", &digest, &bundle).await;
    expect_denied(
        &webhook,
        &world.image("logkey/wrong-promise", &digest),
        &["rekor entry 13 signed entry timestamp (SET) does not verify"],
    )
    .await;
}

#[tokio::test]
async fn a_rekor_body_recording_another_signature_is_denied() {
    let world = World::start().await;
    let spec = world.pki.email_spec(EMAIL);
    let leaf = world.pki.issue(&spec);
    let rekor = &world.pki.rekor;
    let glob = format!("{}/body/**", world.host());
    let webhook = world.webhook(&policy_for(&glob, &identities(&[dev_identity()]), ""));

    // Each layer is a valid signature with a valid certificate and a valid SET; only what the
    // body records differs.
    let same_key_other_cert = world.pki.fulcio.issue_for(
        &spec,
        KeyPair::from_private_pem(leaf.key.kind(), leaf.key.private_pem()),
    );
    let cases: [(&str, &str); 3] = [
        ("body/other-payload", "rekor entry records payload hash"),
        ("body/other-signature", "rekor entry records signature"),
        (
            "body/other-certificate",
            "rekor entry records verifier certificate",
        ),
    ];
    for (repo, reason) in cases {
        let digest = world.push_image(repo, repo).await;
        let genuine = world.keyless_layer(repo, &digest, &leaf);
        let entry = match repo {
            "body/other-payload" => {
                let other = b"another payload".to_vec();
                let signature = leaf.key.sign_openssl(&other, Hash::Sha256, false);
                rekor.hashedrekord_entry(&other, &signature, &leaf.cert_pem, SIGNED, 7)
            }
            // ECDSA signatures are randomised: a second, equally valid signature of the payload.
            "body/other-signature" => {
                let second = leaf.key.sign_openssl(&genuine.payload, Hash::Sha256, false);
                assert_ne!(second, genuine.signature);
                rekor.hashedrekord_entry(&genuine.payload, &second, &leaf.cert_pem, SIGNED, 7)
            }
            _ => rekor.hashedrekord_entry(
                &genuine.payload,
                &genuine.signature,
                &same_key_other_cert.cert_pem,
                SIGNED,
                7,
            ),
        };
        let layer = SignatureLayer {
            rekor_bundle: Some(annotation(&entry)),
            ..genuine
        };
        world.push_sig(repo, &digest, &[layer]).await;
        expect_denied(
            &webhook,
            &world.image(repo, &digest),
            &[
                "transparency log entry does not record this signature",
                reason,
            ],
        )
        .await;
    }

    // v3: the dsse entry of another envelope by the same leaf.
    let digest = world.push_image("body/dsse", "dsse").await;
    let envelope = dsse_envelope(&in_toto_statement(&digest), &leaf.key);
    let other = dsse_envelope(&in_toto_statement(&Digest::sha256_of(b"x")), &leaf.key);
    let entry = rekor.dsse_entry(&other, &leaf.cert_pem, SIGNED, 14);
    let bundle = bundle_v03(
        &envelope,
        &BundleMaterial::Certificate(leaf.cert_der.clone()),
        Some(&entry),
    );
    push_bundle_referrer(&world.registry, "body/dsse", &digest, &bundle).await;
    expect_denied(
        &webhook,
        &world.image("body/dsse", &digest),
        &[
            "transparency log entry does not record this signature",
            "rekor entry records DSSE payload hash",
        ],
    )
    .await;
}

#[tokio::test]
async fn without_a_transparency_log_entry_there_is_no_signing_time() {
    let world = World::start().await;
    let leaf = world.pki.email_leaf(EMAIL);
    let glob = format!("{}/notlog/**", world.host());
    let webhook = world.webhook(&policy_for(&glob, &identities(&[dev_identity()]), ""));

    let digest = world.push_image("notlog/legacy", "legacy").await;
    let layer = strip_bundle(&world.keyless_layer("notlog/legacy", &digest, &leaf));
    world.push_sig("notlog/legacy", &digest, &[layer]).await;
    expect_denied(
        &webhook,
        &world.image("notlog/legacy", &digest),
        &["no transparency log entry (dev.sigstore.cosign/bundle), so there is no trusted signing time"],
    )
    .await;

    let digest = world.push_image("notlog/v3", "v3").await;
    let bundle = keyless_bundle(&digest, &leaf, &world.pki.rekor, SIGNED, 15);
    push_bundle_referrer(
        &world.registry,
        "notlog/v3",
        &digest,
        &strip_tlog_entries(&bundle),
    )
    .await;
    expect_denied(
        &webhook,
        &world.image("notlog/v3", &digest),
        &["no transparency log entry, so there is no trusted signing time"],
    )
    .await;

    // v3: an entry with an inclusion proof and checkpoint but no SET (inclusion promise). The
    // proof shows the entry is in the log; only the SET vouches for its integrated time.
    let digest = world.push_image("notlog/no-promise", "no-promise").await;
    let envelope = dsse_envelope(&in_toto_statement(&digest), &leaf.key);
    let entry = world
        .pki
        .rekor
        .dsse_entry(&envelope, &leaf.cert_pem, SIGNED, 17)
        .without_set();
    let bundle = bundle_v03(
        &envelope,
        &BundleMaterial::Certificate(leaf.cert_der.clone()),
        Some(&entry),
    );
    push_bundle_referrer(&world.registry, "notlog/no-promise", &digest, &bundle).await;
    expect_denied(
        &webhook,
        &world.image("notlog/no-promise", &digest),
        &["rekor entry 17 has no signed entry timestamp (SET), and one is required"],
    )
    .await;
}

#[tokio::test]
async fn trust_root_validity_windows_apply_at_the_signing_time() {
    let world = World::start().await;
    let leaf = world.pki.email_leaf(EMAIL);
    let digest = world.signed_image("windows/app", &leaf).await;
    let image = world.image("windows/app", &digest);
    let policies = policy(&world, "windows/app", &identities(&[dev_identity()]));
    let with_root = |edit: &dyn Fn(&mut Value)| {
        let mut root: Value = serde_json::from_str(&world.pki.trusted_root()).unwrap();
        edit(&mut root);
        TestWebhook::start(
            &policies,
            WebhookConfig::for_registry(world.host()).trusted_root_json(&root.to_string()),
        )
    };
    let window = |end: i64| {
        serde_json::json!({
            "start": support::signing::rfc3339(support::signing::VALID_FROM),
            "end": support::signing::rfc3339(end),
        })
    };

    // Windows that ended long ago, but after the signing: the signature stays valid.
    let ended_later = with_root(&|root| {
        root["certificateAuthorities"][0]["validFor"] = window(SIGNED + 60);
        root["tlogs"][0]["publicKey"]["validFor"] = window(SIGNED + 60);
        root["ctlogs"][0]["publicKey"]["validFor"] = window(SIGNED + 60);
    });
    expect_allowed(&ended_later, &image).await;

    // Each ended just before it was needed.
    let ca_ended = with_root(&|root| {
        root["certificateAuthorities"][0]["validFor"] = window(SIGNED - 1);
    });
    expect_denied(
        &ca_ended,
        &image,
        &["https://fulcio.test (authority 1): authority not valid at signing time: valid 2000-01-01T00:00:00Z–2026-01-01T00:00:00Z"],
    )
    .await;
    let tlog_ended = with_root(&|root| {
        root["tlogs"][0]["publicKey"]["validFor"] = window(SIGNED - 1);
    });
    expect_denied(
        &tlog_ended,
        &image,
        &[&format!(
            "rekor log https://rekor.test key is valid for [2000-01-01T00:00:00Z, 2026-01-01T00:00:00Z], which does not contain 2026-01-01T00:00:01Z, the entry's integrated time {SIGNED}"
        )],
    )
    .await;
    let ctlog_ended = with_root(&|root| {
        root["ctlogs"][0]["publicKey"]["validFor"] = window(ISSUED - 1);
    });
    expect_denied(
        &ctlog_ended,
        &image,
        &["was not valid at the sct time 2026-01-01T00:00:00Z"],
    )
    .await;
}

#[tokio::test]
async fn ctlog_url_selects_which_rekor_keys_count() {
    let world = World::start().await;
    let leaf = world.pki.email_leaf(EMAIL);
    let digest = world.signed_image("tlog/app", &leaf).await;
    let image = world.image("tlog/app", &digest);
    // A trust root with a second log, which did not record the signature.
    let second = TestRekor::with_key(KeyPair::generate(KeyKind::EcdsaP256), "https://rekor2.test");
    let second_root: Value =
        serde_json::from_str(&trusted_root_json(&world.pki.fulcio, &second, None)).unwrap();
    let mut root: Value = serde_json::from_str(&world.pki.trusted_root()).unwrap();
    root["tlogs"]
        .as_array_mut()
        .unwrap()
        .push(second_root["tlogs"][0].clone());
    let config = WebhookConfig::for_registry(world.host()).trusted_root_json(&root.to_string());
    let glob = repo_glob(&world, "tlog/app");
    let keyless = identities(&[dev_identity()]);

    let first = policy_for(&glob, &keyless, "ctlog: {url: 'https://rekor.test'}");
    expect_allowed(&TestWebhook::start(&first, config.clone()), &image).await;
    let other = policy_for(&glob, &keyless, "ctlog: {url: 'https://rekor2.test/'}");
    expect_denied(
        &TestWebhook::start(&other, config.clone()),
        &image,
        &[&format!(
            "is not in the trust root (known: {} (https://rekor2.test))",
            second.log_id_hex()
        )],
    )
    .await;
    // A log the trust root does not have: the policy does not load.
    let unknown = policy_for(&glob, &keyless, "ctlog: {url: 'https://rekor.example.org'}");
    let error = TestWebhook::try_start(&unknown, config)
        .err()
        .unwrap()
        .to_string();
    assert!(
        error.contains("has no transparency log at https://rekor.example.org"),
        "{error}"
    );
}

// ---------------------------------------------------------------------------------------------
// Must deny (or allow when told): certificate transparency
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_missing_or_untrusted_sct_is_denied_unless_insecure_ignore_sct() {
    let world = World::start().await;
    let stranger_ct = TestCtLog::p256("https://ctfe.stranger.test");
    let no_sct = world.pki.issue(&LeafSpec {
        sct: None,
        ..world.pki.email_spec(EMAIL)
    });
    let stranger_sct = world.pki.issue(&LeafSpec {
        sct: Some(&stranger_ct),
        ..world.pki.email_spec(EMAIL)
    });
    let missing = world.signed_image("sct/missing", &no_sct).await;
    let untrusted = world.signed_image("sct/untrusted", &stranger_sct).await;
    let glob = format!("{}/sct/**", world.host());

    let strict = world.webhook(&policy_for(&glob, &identities(&[dev_identity()]), ""));
    expect_denied(
        &strict,
        &world.image("sct/missing", &missing),
        &["certificate transparency: certificate has no embedded signed certificate timestamp"],
    )
    .await;
    expect_denied(
        &strict,
        &world.image("sct/untrusted", &untrusted),
        &[
            "certificate transparency: no embedded signed certificate timestamp verified: sct 1: from unknown log",
            "(the SCT must come from a CT log of the trust root; set insecureIgnoreSCT only for private CAs without a CT log)",
        ],
    )
    .await;

    let lenient = world.webhook(&policy_for(
        &glob,
        &format!(
            "{{insecureIgnoreSCT: true, identities: [{}]}}",
            dev_identity()
        ),
        "",
    ));
    expect_allowed(&lenient, &world.image("sct/missing", &missing)).await;
    expect_allowed(&lenient, &world.image("sct/untrusted", &untrusted)).await;
}

// ---------------------------------------------------------------------------------------------
// Must deny: identities
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn issuer_subject_and_regexp_mismatches_are_denied_with_the_reference_message() {
    let world = World::start().await;
    let leaf = world.pki.email_leaf(EMAIL);
    let digest = world.signed_image("who/app", &leaf).await;
    let image = world.image("who/app", &digest);
    let got = format!(
        "none of the expected identities matched what was in the certificate, got subjects [{EMAIL}] with issuer {TEST_OIDC_ISSUER} (expected "
    );

    for (keyless, expected) in [
        (
            identities(&[identity("https://accounts.google.com", EMAIL)]),
            format!("subject {EMAIL} with issuer https://accounts.google.com)"),
        ),
        (
            identities(&[identity(TEST_OIDC_ISSUER, "ops@example.com")]),
            format!("subject ops@example.com with issuer {TEST_OIDC_ISSUER})"),
        ),
        (
            format!(
                "{{identities: [{{issuer: '{TEST_OIDC_ISSUER}', subjectRegExp: '^ops@example\\.com$'}}]}}"
            ),
            format!("subject /^ops@example\\.com$/ with issuer {TEST_OIDC_ISSUER})"),
        ),
        (
            format!(
                "{{identities: [{{issuerRegExp: '^https://accounts\\.', subject: '{EMAIL}'}}]}}"
            ),
            format!("subject {EMAIL} with issuer /^https://accounts\\./)"),
        ),
    ] {
        let webhook = world.webhook(&policy(&world, "who/app", &keyless));
        expect_denied(&webhook, &image, &[&format!("{got}{expected}")]).await;
    }
}

#[tokio::test]
async fn an_unanchored_subject_regexp_matches_anywhere_as_in_the_reference() {
    let world = World::start().await;
    let evil = world.pki.email_leaf("mallory@example.com.evil.test");
    let digest = world.signed_image("regexp/app", &evil).await;
    let image = world.image("regexp/app", &digest);

    // Go's MatchString semantics: `.*@example.com` is found inside the longer address. verity
    // keeps the reference's behaviour (a policy written for it must not change meaning) and
    // warns when the policy loads.
    let unanchored = format!(
        "{{identities: [{{issuer: '{TEST_OIDC_ISSUER}', subjectRegExp: '.*@example.com'}}]}}"
    );
    let webhook = world.webhook(&policy(&world, "regexp/app", &unanchored));
    assert!(
        webhook
            .warnings
            .iter()
            .any(|w| w.contains("subjectRegExp") && w.contains("anchor")),
        "expected an unanchored-regexp warning: {:?}",
        webhook.warnings
    );
    expect_allowed(&webhook, &image).await;

    let anchored = format!(
        "{{identities: [{{issuer: '{TEST_OIDC_ISSUER}', subjectRegExp: '^.*@example\\.com$'}}]}}"
    );
    let webhook = world.webhook(&policy(&world, "regexp/app", &anchored));
    assert!(webhook.warnings.is_empty(), "{:?}", webhook.warnings);
    expect_denied(
        &webhook,
        &image,
        &["got subjects [mallory@example.com.evil.test]"],
    )
    .await;
}

// ---------------------------------------------------------------------------------------------
// Must deny: bundles in the wrong place
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_v3_bundle_attached_to_another_digest_is_denied() {
    let world = World::start().await;
    let leaf = world.pki.email_leaf(EMAIL);
    let signed = world.push_image("elsewhere/app", "signed").await;
    let other = world.push_image("elsewhere/app", "other").await;
    let bundle = keyless_bundle(&signed, &leaf, &world.pki.rekor, SIGNED, 16);
    push_bundle_referrer(&world.registry, "elsewhere/app", &signed, &bundle).await;
    push_bundle_referrer(&world.registry, "elsewhere/app", &other, &bundle).await;
    let webhook = world.webhook(&policy(
        &world,
        "elsewhere/app",
        &identities(&[dev_identity()]),
    ));

    expect_allowed(&webhook, &world.image("elsewhere/app", &signed)).await;
    let text = expect_denied(
        &webhook,
        &world.image("elsewhere/app", &other),
        &[&format!(
            "statement is for {signed}, not {other} (a signature of another image)"
        )],
    )
    .await;
    assert!(text.contains("[referrer sha256:"), "{text}");
}

// ---------------------------------------------------------------------------------------------
// Must deny: registry failures are not "no signatures"
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn registry_errors_during_discovery_deny_with_the_cause() {
    let digest = Digest::sha256_of(b"an image the stub pretends to have");
    let keyless = identities(&[dev_identity()]);

    // 500 on the `.sig` manifest, nothing else there.
    let failing = StubRegistry::start(|request| {
        if request.path.contains("/manifests/sha256-") && request.path.ends_with(".sig") {
            StubResponse::registry_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "UNKNOWN",
                "storage backend unavailable",
            )
        } else {
            StubResponse::registry_error(StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN", "not here")
        }
    })
    .await;
    let image = format!("{}/app@{digest}", failing.host());
    let webhook = TestWebhook::start(
        &policy_for(&format!("{}/app@*", failing.host()), &keyless, ""),
        WebhookConfig::for_registry(&failing.host()),
    );
    let text = denial(&webhook, &image).await;
    assert!(text.contains("failed to read signatures"), "{text}");
    assert!(text.contains("500"), "{text}");
    assert!(text.contains("storage backend unavailable"), "{text}");
    assert!(!text.contains("no signatures"), "{text}");
    println!("{text}");

    // 500 on the referrers fallback tag (the referrers API answering 404), `.sig` not found.
    let failing_referrers = StubRegistry::start(|request| {
        if request.path.contains("/manifests/sha256-") && !request.path.ends_with(".sig") {
            StubResponse::registry_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "UNKNOWN",
                "index unavailable",
            )
        } else {
            StubResponse::registry_error(StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN", "not here")
        }
    })
    .await;
    let image = format!("{}/app@{digest}", failing_referrers.host());
    let webhook = TestWebhook::start(
        &policy_for(&format!("{}/app@*", failing_referrers.host()), &keyless, ""),
        WebhookConfig::for_registry(&failing_referrers.host()),
    );
    let text = denial(&webhook, &image).await;
    assert!(text.contains("failed to read signatures"), "{text}");
    assert!(text.contains("index unavailable"), "{text}");
    assert!(!text.contains("no signatures"), "{text}");
    println!("{text}");

    // A `.sig` manifest request that never answers.
    let hanging = StubRegistry::start(|request| {
        if request.path.ends_with(".sig") {
            StubResponse::hang()
        } else {
            StubResponse::registry_error(StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN", "not here")
        }
    })
    .await;
    let image = format!("{}/app@{digest}", hanging.host());
    let webhook = TestWebhook::start(
        &policy_for(&format!("{}/app@*", hanging.host()), &keyless, ""),
        WebhookConfig::for_registry(&hanging.host()).registry_timeout(Duration::from_secs(1)),
    );
    let answer = webhook.admit_pod(&[&image]).await;
    let text = answer.authority_failure(&prefix(&image));
    assert!(text.contains(".sig: timed out after 1s"), "{text}");
    assert!(!text.contains("no signatures"), "{text}");
    println!("{text}");
    assert!(
        answer.elapsed < Duration::from_secs(8),
        "{:?}",
        answer.elapsed
    );
}

// ---------------------------------------------------------------------------------------------
// The production vectors, through the registry, with the embedded trust root
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn keyless_2021_email_vector_through_the_registry() {
    let registry = TestRegistry::start().await;
    let host = registry.host().to_string();
    let vector = Vector::load(KEYLESS_2021);
    let digest = push_vector(&registry, "vectors/keyless-2021", &vector).await;
    let image = format!("{host}/vectors/keyless-2021@{digest}");
    let production = WebhookConfig::for_registry(&host);
    let webhook = |keyless: &str| {
        TestWebhook::start(
            &policy_for(&format!("{host}/vectors/**"), keyless, ""),
            production.clone(),
        )
    };
    let subject = "flavio@castelli.me";

    // No issuer in the leaf: only an issuer condition accepting "" matches. No SCT either (2021
    // Fulcio did not embed them): the policy must say insecureIgnoreSCT.
    let right = format!(
        "{{insecureIgnoreSCT: true, identities: [{{issuerRegExp: '.*', subject: '{subject}'}}]}}"
    );
    expect_allowed(&webhook(&right), &image).await;

    let text = expect_denied(
        &webhook(&format!(
            "{{identities: [{{issuerRegExp: '.*', subject: '{subject}'}}]}}"
        )),
        &image,
        &[
            "certificate transparency: certificate has no embedded signed certificate timestamp",
            "insecureIgnoreSCT",
            "(insecureIgnoreSCT: true accepts certificates without one: private CAs without a CT log, and Fulcio certificates from 2021, before Fulcio embedded SCTs)",
        ],
    )
    .await;
    println!("2021 vector without insecureIgnoreSCT: {text}");

    for wrong in [
        format!(
            "{{insecureIgnoreSCT: true, identities: [{{issuer: 'https://github.com/login/oauth', subject: '{subject}'}}]}}"
        ),
        format!(
            "{{insecureIgnoreSCT: true, identities: [{{issuer: 'https://accounts.google.com', subject: '{subject}'}}]}}"
        ),
        "{insecureIgnoreSCT: true, identities: [{issuerRegExp: '.*', subject: 'someone@castelli.me'}]}"
            .to_string(),
        "{insecureIgnoreSCT: true, identities: [{issuerRegExp: '.*', subjectRegExp: '^flavio@example\\.com$'}]}"
            .to_string(),
    ] {
        let text = expect_denied(
            &webhook(&wrong),
            &image,
            &[&format!(
                "none of the expected identities matched what was in the certificate, got subjects [{subject}] with issuer (none) (expected "
            )],
        )
        .await;
        println!("{text}");
    }

    // The README's negative variants, with the right policy.
    let accept = webhook(&right);
    let other = registry
        .push_image("vectors/keyless-2021", "other", "other")
        .await;
    copy_sig_manifest(&registry, "vectors/keyless-2021", &digest, &other).await;
    expect_denied(
        &accept,
        &format!("{host}/vectors/keyless-2021@{other}"),
        &[&format!("payload is for {digest}, not {other}")],
    )
    .await;

    let genuine = SignatureLayer {
        certificate_pem: vector.cert_pem.clone(),
        chain_pem: vector.chain_pem.clone(),
        rekor_bundle: Some(vector.bundle_compact.clone()),
        ..SignatureLayer::new(vector.payload_bytes(), vector.signature())
    };
    let attacker = registry
        .push_image("vectors/stolen", "attacker", "attacker")
        .await;
    let attacker_key = KeyPair::generate(KeyKind::EcdsaP256);
    let own_payload = simple_signing_payload(&format!("{host}/vectors/stolen"), &attacker, None);
    let own = SignatureLayer::new(
        own_payload.clone(),
        attacker_key.sign_openssl(&own_payload, Hash::Sha256, false),
    );
    push_legacy_signatures(
        &registry,
        "vectors/stolen",
        &attacker,
        "",
        &[with_stolen_evidence(&own, &genuine)],
    )
    .await;
    expect_denied(
        &accept,
        &format!("{host}/vectors/stolen@{attacker}"),
        &["signature does not verify with the certificate's"],
    )
    .await;

    for (repo, layer, reason) in [
        (
            "vectors/shifted",
            SignatureLayer {
                rekor_bundle: Some(shift_annotation_time(&vector.bundle_compact, 1)),
                ..genuine.clone()
            },
            "signed entry timestamp (SET) does not verify",
        ),
        (
            "vectors/stripped",
            strip_bundle(&genuine),
            "no transparency log entry",
        ),
    ] {
        push_legacy_signatures(&registry, repo, &digest, "", &[layer]).await;
        expect_denied(&accept, &format!("{host}/{repo}@{digest}"), &[reason]).await;
    }
}

#[tokio::test]
async fn github_actions_v3_bundle_vector_through_the_registry() {
    let registry = TestRegistry::start().await;
    let host = registry.host().to_string();
    let vector = Vector::load(V3_BUNDLE_2026);
    let digest = push_vector(&registry, "vectors/v3", &vector).await;
    let image = format!("{host}/vectors/v3@{digest}");
    let production = WebhookConfig::for_registry(&host);
    let webhook = |keyless: &str| {
        TestWebhook::start(
            &policy_for(&format!("{host}/vectors/**"), keyless, ""),
            production.clone(),
        )
    };
    let subject = "https://github.com/kubewarden/kubewarden-controller/.github/workflows/release.yml@refs/tags/v1.34.0";
    let issuer = "https://token.actions.githubusercontent.com";

    expect_allowed(&webhook(&identities(&[identity(issuer, subject)])), &image).await;
    let anchored = format!(
        "{{identities: [{{issuer: '{issuer}', subjectRegExp: '^https://github\\.com/kubewarden/kubewarden-controller/\\.github/workflows/release\\.yml@refs/tags/'}}]}}"
    );
    expect_allowed(&webhook(&anchored), &image).await;

    let got = format!(
        "none of the expected identities matched what was in the certificate, got subjects [{subject}] with issuer {issuer} (expected "
    );
    for wrong in [
        identity(issuer, &subject.replace("v1.34.0", "v1.33.0")),
        identity(
            issuer,
            &subject.replace("kubewarden-controller", "policy-server"),
        ),
        identity("https://accounts.google.com", subject),
        identity("https://github.com/login/oauth", subject),
        format!("{{issuer: '{issuer}', subjectRegExp: '^https://github\\.com/sigstore/'}}"),
    ] {
        let text = expect_denied(&webhook(&identities(&[wrong])), &image, &[&got]).await;
        println!("{text}");
    }

    // The README's negative variants, with the right policy.
    let accept = webhook(&identities(&[identity(issuer, subject)]));
    let bundle = vector.bundle_bytes();
    let other = registry.push_image("vectors/v3", "other", "other").await;
    push_bundle_referrer(&registry, "vectors/v3", &other, &bundle).await;
    expect_denied(
        &accept,
        &format!("{host}/vectors/v3@{other}"),
        &[&format!("statement is for {digest}, not {other}")],
    )
    .await;

    let mut statement = vector.payload_bytes();
    statement.push(b'\n');
    for (repo, forged, reason) in [
        (
            "vectors/v3-shifted",
            shift_bundle_time(&bundle, -1),
            "signed entry timestamp (SET) does not verify",
        ),
        (
            "vectors/v3-no-tlog",
            strip_tlog_entries(&bundle),
            "no transparency log entry, so there is no trusted signing time",
        ),
        (
            "vectors/v3-tampered",
            replace_dsse_payload(&bundle, &statement),
            "none of the 1 DSSE signature(s) verifies",
        ),
    ] {
        push_bundle_referrer(&registry, repo, &digest, &forged).await;
        expect_denied(&accept, &format!("{host}/{repo}@{digest}"), &[reason]).await;
    }
}

// ---------------------------------------------------------------------------------------------
// `verity verify`
// ---------------------------------------------------------------------------------------------

/// Runs the `verity` binary with `args`; returns its output.
async fn verity(args: &[&str]) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_verity"))
        .args(args)
        .output()
        .await
        .unwrap()
}

#[tokio::test]
async fn verity_verify_shows_the_evidence_of_accepted_keyless_signatures() {
    let world = World::start().await;
    let leaf = world.pki.email_leaf(EMAIL);
    let legacy = world.signed_image("cli/legacy", &leaf).await;
    let v3 = world.push_image("cli/v3", "v3").await;
    let referrer = push_bundle_referrer(
        &world.registry,
        "cli/v3",
        &v3,
        &keyless_bundle(&v3, &leaf, &world.pki.rekor, SIGNED, 21),
    )
    .await;

    let dir = tempfile::tempdir().unwrap();
    let policies = dir.path().join("policies.yaml");
    std::fs::write(
        &policies,
        policy_for(
            &format!("{}/cli/**", world.host()),
            &identities(&[dev_identity()]),
            "",
        ),
    )
    .unwrap();
    let trust_root = dir.path().join("trusted_root.json");
    std::fs::write(&trust_root, world.pki.trusted_root()).unwrap();
    let legacy_image = world.image("cli/legacy", &legacy);
    let v3_image = world.image("cli/v3", &v3);
    let common = [
        "verify",
        "--policies",
        policies.to_str().unwrap(),
        "--trust-root",
        trust_root.to_str().unwrap(),
        "--insecure-registry",
        world.host(),
    ];

    let legacy_evidence = format!(
        "signature in layer 0 of {host}/cli/legacy:sha256-{hex}.sig by subjects [{EMAIL}] with issuer {TEST_OIDC_ISSUER}, certificate from https://fulcio.test, rekor entry 7 in https://rekor.test at 2026-01-01T00:00:01Z",
        host = world.host(),
        hex = legacy.hex()
    );
    let v3_evidence = format!(
        "signature in referrer {referrer} of {host}/cli/v3@{v3} by subjects [{EMAIL}] with issuer {TEST_OIDC_ISSUER}, certificate from https://fulcio.test, rekor entry 21 in https://rekor.test at 2026-01-01T00:00:01Z",
        host = world.host(),
    );

    let mut args = common.to_vec();
    args.extend([legacy_image.as_str(), v3_image.as_str()]);
    let output = verity(&args).await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains(&format!(
            "authority ci (keyless): passed: {legacy_evidence}\n"
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("authority ci (keyless): passed: {v3_evidence}\n")),
        "{stdout}"
    );
    assert!(stdout.ends_with("decision: allowed\n"), "{stdout}");

    let mut args = common.to_vec();
    args.extend(["--output", "json", legacy_image.as_str(), v3_image.as_str()]);
    let output = verity(&args).await;
    assert!(output.status.success());
    let json: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(json["allowed"], true);
    for (index, evidence) in [&legacy_evidence, &v3_evidence].into_iter().enumerate() {
        let authority = &json["images"][index]["policies"][0]["authorities"][0];
        assert_eq!(authority["kind"], "keyless", "{json}");
        assert_eq!(authority["passed"], true, "{json}");
        assert_eq!(authority["detail"], evidence.as_str(), "{json}");
    }
}

#[tokio::test]
async fn verity_verify_names_each_rejected_signatures_identity() {
    let world = World::start().await;
    let alice = world.pki.email_leaf("alice@example.com");
    let bob = world.pki.issue(&world.pki.uri_spec(WORKFLOW));
    let carol = world.pki.email_leaf("carol@example.com");
    let digest = world.push_image("cli/rejected", "rejected").await;
    // Carol's layer fails before its identity is compared: its signature is not over the payload.
    let payload = world.payload("cli/rejected", &digest);
    let bad_signature = carol.key.sign_openssl(b"other bytes", Hash::Sha256, false);
    let entry =
        world
            .pki
            .rekor
            .hashedrekord_entry(&payload, &bad_signature, &carol.cert_pem, SIGNED, 7);
    let carol_layer = layer_of(
        payload,
        bad_signature,
        &carol,
        Some(world.pki.fulcio.chain_pem()),
        Some(annotation(&entry)),
    );
    world
        .push_sig(
            "cli/rejected",
            &digest,
            &[
                world.keyless_layer("cli/rejected", &digest, &alice),
                world.keyless_layer("cli/rejected", &digest, &bob),
                carol_layer,
            ],
        )
        .await;

    let dir = tempfile::tempdir().unwrap();
    let policies = dir.path().join("policies.yaml");
    std::fs::write(
        &policies,
        policy(&world, "cli/rejected", &identities(&[dev_identity()])),
    )
    .unwrap();
    let trust_root = dir.path().join("trusted_root.json");
    std::fs::write(&trust_root, world.pki.trusted_root()).unwrap();
    let image = world.image("cli/rejected", &digest);
    let output = verity(&[
        "verify",
        "--policies",
        policies.to_str().unwrap(),
        "--trust-root",
        trust_root.to_str().unwrap(),
        "--insecure-registry",
        world.host(),
        &image,
    ])
    .await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    for subject in ["alice@example.com", WORKFLOW] {
        assert!(
            stdout.contains(&format!(
                "none of the expected identities matched what was in the certificate, got subjects [{subject}] with issuer {TEST_OIDC_ISSUER}"
            )),
            "{stdout}"
        );
    }
    assert!(
        stdout.contains(&format!(
            "(message hashed with sha256) (certificate for subjects [carol@example.com] with issuer {TEST_OIDC_ISSUER})"
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "authority ci (keyless): failed: {}no matching signatures: [layer 0 of ",
            prefix(&image)
        )),
        "{stdout}"
    );
    assert!(stdout.contains("decision: denied\n"), "{stdout}");
}
