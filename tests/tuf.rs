//! TUF-backed TrustRoots (issue 4): `repository` (an air-gapped TUF repository: a trusted
//! `root.json` and a tar.gz of the repository) and `remote` (a TUF mirror fetched in the
//! background).
//!
//! The repositories are real TUF metadata written by the test toolkit (`support::tuf`: canonical
//! JSON signed by openssl), holding a `trusted_root.json` for a test sigstore
//! (`support::signing`). Images are signed keylessly into a real registry and admitted through
//! the webhook router, or through the `verity` binary for start-up and readiness.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::process::{Command, Output};
use std::time::Duration;

use serde_json::{Value, json};
use verity::policy::source::{Documents, LoadOptions, trust_material_of};
use verity::verify::trust::TrustMaterial;
use verity::verify::tuf::{RemoteRepository, TufRoots, TufSettings};

use support::poll_until;
use support::registry::TestRegistry;
use support::served::{ServedVerity, VERITY};
use support::signing::{
    FulcioLeaf, LeafSpec, SignatureLayer, TestCtLog, TestFulcio, TestRekor, push_legacy_signatures,
    simple_signing_payload, trusted_root_json, unix_now,
};
use support::tuf::{
    TufContent, TufKeys, TufMirror, TufRepository, hostile_tar_gz, remote_trust_root_yaml,
    repository_trust_root_yaml,
};
use support::webhook::{TestWebhook, WebhookConfig, cluster_image_policy};

/// When the test leaves are issued (notBefore): 2026-01-01T00:00:00Z.
const ISSUED: i64 = 1_767_225_600;
const EMAIL: &str = "dev@example.com";
const ISSUER: &str = support::signing::fulcio::TEST_OIDC_ISSUER;

/// A test sigstore (Fulcio, Rekor, CT log) and its `trusted_root.json`.
struct Sigstore {
    fulcio: TestFulcio,
    rekor: TestRekor,
    ct: TestCtLog,
}

impl Sigstore {
    fn new() -> Self {
        Sigstore {
            fulcio: TestFulcio::new(),
            rekor: TestRekor::new(),
            ct: TestCtLog::new(),
        }
    }

    fn trusted_root(&self) -> String {
        trusted_root_json(&self.fulcio, &self.rekor, Some(&self.ct))
    }

    fn leaf(&self) -> FulcioLeaf {
        self.fulcio.issue(&LeafSpec {
            sct: Some(&self.ct),
            ..LeafSpec::email(EMAIL, ISSUED)
        })
    }
}

/// An image in `repo` of `registry`, signed keylessly by `sigstore`; `HOST/repo@digest`.
async fn signed_image(registry: &TestRegistry, sigstore: &Sigstore, repo: &str) -> String {
    let digest = registry.push_image(repo, "v1", repo).await;
    let payload = simple_signing_payload(&format!("{}/{repo}", registry.host()), &digest, None);
    let layer = SignatureLayer::keyless(
        &payload,
        &sigstore.leaf(),
        &sigstore.fulcio,
        &sigstore.rekor,
        ISSUED + 1,
        3,
    );
    push_legacy_signatures(registry, repo, &digest, "", &[layer]).await;
    format!("{}/{repo}@{digest}", registry.host())
}

/// A keyless policy `signed` for the images of `HOST/*`, trusting the TrustRoot `corp`.
fn corp_policy(host: &str) -> String {
    cluster_image_policy(
        "signed",
        &format!(
            "images: [{{glob: '{host}/**'}}]\nauthorities:\n- name: ci\n  keyless: {{trustRootRef: corp, identities: [{{issuer: '{ISSUER}', subject: '{EMAIL}'}}]}}"
        ),
    )
}

/// A repository whose `trusted_root.json` target is `trusted_root`.
fn repository(keys: &TufKeys, trusted_root: &str) -> TufRepository {
    TufRepository::build(keys, &TufContent::trusted_root(trusted_root))
}

/// The TrustRoot documents of `yaml` compiled as `verity validate` and the webhook do (offline).
fn material(yaml: &str) -> Result<TrustMaterial, String> {
    let mut documents = Documents::default();
    documents.add_yaml("trust-root.yaml", yaml).unwrap();
    trust_material_of(&documents.trust_roots[0].spec)
}

// ---------------------------------------------------------------------------------------------
// repository: air-gapped
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_keyless_policy_naming_a_repository_trust_root_admits_what_its_sigstore_signed() {
    let registry = TestRegistry::start().await;
    let (trusted, other) = (Sigstore::new(), Sigstore::new());
    let good = signed_image(&registry, &trusted, "app").await;
    let foreign = signed_image(&registry, &other, "foreign").await;
    let repo = repository(&TufKeys::generate(), &trusted.trusted_root());
    let policies = format!(
        "---\n{}{}",
        repository_trust_root_yaml("corp", repo.root_json(), &repo.mirror_fs()),
        corp_policy(registry.host())
    );
    // The default trust root (production) knows nothing of either test sigstore: only the
    // TUF-backed TrustRoot can make `good` pass.
    let webhook = TestWebhook::start(&policies, WebhookConfig::for_registry(registry.host()));
    webhook.admit_pod(&[&good]).await.assert_allowed();
    let denied = webhook.admit_pod(&[&foreign]).await;
    assert!(
        denied
            .denied()
            .contains("signature keyless validation failed for authority ci"),
        "{}",
        denied.message
    );
    // The material is exactly the target's.
    assert_eq!(
        material(&repository_trust_root_yaml(
            "corp",
            repo.root_json(),
            &repo.mirror_fs()
        ))
        .unwrap(),
        TrustMaterial::from_trusted_root_json(trusted.trusted_root().as_bytes()).unwrap()
    );
}

#[test]
fn tampered_targets_wrong_roots_expired_metadata_and_hostile_archives_are_clear_errors() {
    let sigstore = Sigstore::new();
    let keys = TufKeys::generate();
    let good = repository(&keys, &sigstore.trusted_root());
    let yaml = |repo: &TufRepository| {
        repository_trust_root_yaml("corp", good.root_json(), &repo.mirror_fs())
    };
    let error = |yaml: &str| material(yaml).unwrap_err();
    assert!(material(&yaml(&good)).is_ok());

    // The target's bytes changed, its metadata did not: the signed sha256 catches it.
    let mut tampered = good.clone();
    let path = tampered.target_path("trusted_root.json");
    let target = tampered.files.get_mut(&path).unwrap();
    let at = target.iter().position(|b| *b == b'"').unwrap();
    target[at] = b'\'';
    let message = error(&yaml(&tampered));
    assert!(
        message.starts_with(
            "the TUF repository in repository.mirrorFS does not verify: cannot read target trusted_root.json: "
        ) && message.contains("hash mismatch"),
        "{message}"
    );

    // The targets metadata edited after signing: its signature no longer verifies.
    let mut edited = good.clone();
    let targets = edited.files.get_mut("1.targets.json").unwrap();
    let text = String::from_utf8(targets.clone())
        .unwrap()
        .replace("\"length\": ", "\"length\": 1");
    *targets = text.into_bytes();
    let message = error(&yaml(&edited));
    assert!(
        message.contains("failed to verify targets metadata"),
        "{message}"
    );

    // A root of other keys: the repository's timestamp is not signed by its timestamp key.
    let stranger = repository(&TufKeys::generate(), &sigstore.trusted_root());
    let message = material(&repository_trust_root_yaml(
        "corp",
        stranger.root_json(),
        &good.mirror_fs(),
    ))
    .unwrap_err();
    assert!(
        message.ends_with(
            "failed to verify timestamp metadata: Signature threshold of 1 not met for role timestamp (0 valid signatures)"
        ),
        "{message}"
    );

    // Expired metadata: refused as tough's safe expiration enforcement does.
    for (role, content) in [
        (
            "timestamp",
            TufContent {
                timestamp_expires: unix_now() - 60,
                ..TufContent::trusted_root(&sigstore.trusted_root())
            },
        ),
        (
            "targets",
            TufContent {
                targets_expires: unix_now() - 60,
                ..TufContent::trusted_root(&sigstore.trusted_root())
            },
        ),
    ] {
        let expired = TufRepository::build(&keys, &content);
        let message = error(&yaml(&expired));
        assert!(
            message.contains(&format!("{role} metadata is expired")),
            "{role}: {message}"
        );
    }

    // The named target is not there: the error lists what is.
    let message = error(&yaml(&good).replace(
        "    root: ",
        "    trustedRootTarget: other.json\n    root: ",
    ));
    assert!(
        message.ends_with(
            "the TUF targets metadata lists no target other.json (it lists: trusted_root.json)"
        ),
        "{message}"
    );

    // A genuine target that is no trusted root.
    let not_a_root = repository(&keys, "{\"mediaType\": \"text/plain\"}");
    let message = error(&yaml(&not_a_root));
    assert!(
        message.contains("target trusted_root.json is not a usable trusted root: "),
        "{message}"
    );

    // Archives an extractor must not trust.
    let root = good.root_json();
    let traversal = hostile_tar_gz(&[("repository/../../etc/cron.d/x", b"x")], None);
    let message = error(&repository_trust_root_yaml("corp", root, &traversal));
    assert!(
        message.ends_with(
            "mirrorFS entry \"repository/../../etc/cron.d/x\" escapes the repository (an absolute path or a `..` component)"
        ),
        "{message}"
    );
    let absolute = hostile_tar_gz(&[("/repository/1.root.json", root)], None);
    assert!(
        error(&repository_trust_root_yaml("corp", root, &absolute))
            .contains("escapes the repository")
    );
    let link = hostile_tar_gz(&[("repository/1.root.json", b"")], Some("/etc/passwd"));
    let message = error(&repository_trust_root_yaml("corp", root, &link));
    assert!(message.contains("is a symbolic link"), "{message}");
}

#[test]
fn verity_validate_verifies_a_repository_offline_and_only_validates_a_remote_one() {
    let sigstore = Sigstore::new();
    let keys = TufKeys::generate();
    let good = repository(&keys, &sigstore.trusted_root());
    let dir = tempfile::tempdir().unwrap();
    let validate = |name: &str, trust_root: &str| -> Output {
        let file = dir.path().join(name);
        std::fs::write(
            &file,
            format!("---\n{trust_root}{}", corp_policy("registry.example")),
        )
        .unwrap();
        Command::new(VERITY)
            .arg("validate")
            .arg(&file)
            .output()
            .unwrap()
    };

    let out = validate(
        "repository.yaml",
        &repository_trust_root_yaml("corp", good.root_json(), &good.mirror_fs()),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "valid: 1 ClusterImagePolicies, 1 TrustRoots, 0 Secrets\n"
    );

    let expired = TufRepository::build(
        &keys,
        &TufContent {
            timestamp_expires: unix_now() - 60,
            ..TufContent::trusted_root(&sigstore.trusted_root())
        },
    );
    let out = validate(
        "expired.yaml",
        &repository_trust_root_yaml("corp", good.root_json(), &expired.mirror_fs()),
    );
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("TrustRoot corp: the TUF repository in repository.mirrorFS does not verify: timestamp metadata is expired"),
        "{stderr}"
    );

    // A remote one needs the network: validate checks it and says so, and the policy naming it
    // is valid too (it would deny until the repository arrives).
    let out = validate(
        "remote.yaml",
        &remote_trust_root_yaml("corp", good.root_json(), "https://127.0.0.1:9/"),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("TrustRoot corp: trust material not available yet: spec.remote")
            && stderr.contains("the TUF repository at https://127.0.0.1:9/ is not fetched here"),
        "{stderr}"
    );
    assert!(stderr.contains("ClusterImagePolicy signed: "), "{stderr}");
}

// ---------------------------------------------------------------------------------------------
// remote: fetched in the background
// ---------------------------------------------------------------------------------------------

/// `verity serve` over the policies in `dir/policies`, retrying TUF fetches quickly.
fn serve(dir: &std::path::Path, registry: &str, mirror_ca: &str) -> ServedVerity {
    std::fs::write(dir.join("mirror-ca.pem"), mirror_ca).unwrap();
    ServedVerity::spawn(dir, |command| {
        command
            .args([
                "--policy-reload-interval",
                "100ms",
                "--tuf-retry-max",
                "200ms",
            ])
            .env("VERITY_POLICIES", dir.join("policies"))
            .env("VERITY_INSECURE_REGISTRIES", registry)
            .env("VERITY_TUF_MIRROR_CA", dir.join("mirror-ca.pem"));
    })
}

#[tokio::test]
async fn a_mirror_down_at_start_never_blocks_readiness_and_its_policies_work_once_it_is_up() {
    let registry = TestRegistry::start().await;
    let sigstore = Sigstore::new();
    let image = signed_image(&registry, &sigstore, "app").await;
    let repo = repository(&TufKeys::generate(), &sigstore.trusted_root());
    let mut mirror = TufMirror::down();
    mirror.publish(&repo);

    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("policies")).unwrap();
    std::fs::write(
        dir.path().join("policies/policies.yaml"),
        format!(
            "---\n{}{}",
            remote_trust_root_yaml("corp", repo.root_json(), &mirror.url()),
            corp_policy(registry.host())
        ),
    )
    .unwrap();
    let served = serve(dir.path(), registry.host(), mirror.ca_pem());

    // Ready although the mirror cannot be reached.
    poll_until(Duration::from_secs(30), "verity ready", || async {
        served.ready().await.then_some(())
    })
    .await;
    // The policy naming the TrustRoot denies, saying why, once an attempt has failed.
    let expected = format!(
        "TrustRoot corp is unusable: fetching the TUF repository from {}: attempt ",
        mirror.url()
    );
    let message = poll_until(
        Duration::from_secs(30),
        "a failed attempt in the denial",
        || async {
            let response = served.admit(&image).await;
            assert_eq!(response["allowed"], false, "{response}");
            let message = response["status"]["message"].as_str().unwrap().to_string();
            message.contains(&expected).then_some(message)
        },
    )
    .await;
    // (tough takes a failed `2.root.json` for "no newer root"; the timestamp is what fails.)
    assert!(
        message.contains(&format!(
            "failed: cannot fetch {}timestamp.json: ",
            mirror.url()
        )) && message.contains("connection refused"),
        "{message}"
    );
    assert!(mirror.requests().is_empty());
    assert_eq!(
        served.metric("verity_tuf_trust_roots_unusable").await,
        Some(1.0)
    );
    let failures = served
        .metric("verity_tuf_fetches_total{result=\"tuf_metadata\"}")
        .await
        .unwrap_or_default();
    assert!(failures >= 1.0, "failed fetches counted: {failures}");

    // The mirror comes up: within the retries the policy admits the signed image.
    mirror.up().await;
    poll_until(Duration::from_secs(30), "the image admitted", || async {
        (served.admit(&image).await["allowed"] == true).then_some(())
    })
    .await;
    // `2.root.json` is not required: the mirror may come up between tough's root probe (which
    // then fails quietly) and its timestamp fetch.
    let asked = mirror.requests();
    for path in ["timestamp.json", "1.snapshot.json", "1.targets.json"] {
        assert!(asked.iter().any(|p| p == path), "{path} not in {asked:?}");
    }
    assert!(served.ready().await);
    assert_eq!(
        served.metric("verity_tuf_trust_roots_unusable").await,
        Some(0.0)
    );
    assert_eq!(
        served
            .metric("verity_tuf_fetches_total{result=\"updated\"}")
            .await,
        Some(1.0)
    );
}

#[tokio::test]
async fn verity_verify_fetches_a_remote_trust_root_once_before_evaluating() {
    let registry = TestRegistry::start().await;
    let sigstore = Sigstore::new();
    let image = signed_image(&registry, &sigstore, "app").await;
    let repo = repository(&TufKeys::generate(), &sigstore.trusted_root());
    let mirror = TufMirror::serving(&repo).await;
    let dir = tempfile::tempdir().unwrap();
    let policies = dir.path().join("policies.yaml");
    std::fs::write(
        &policies,
        format!(
            "---\n{}{}",
            remote_trust_root_yaml("corp", repo.root_json(), &mirror.url()),
            corp_policy(registry.host())
        ),
    )
    .unwrap();
    std::fs::write(dir.path().join("ca.pem"), mirror.ca_pem()).unwrap();
    let verify = |extra: &[&str]| {
        let mut command = tokio::process::Command::new(VERITY);
        command
            .arg("verify")
            .arg("--policies")
            .arg(&policies)
            .args(["--insecure-registry", registry.host()])
            .args(extra)
            .arg(&image);
        command.output()
    };
    let ca = dir.path().join("ca.pem");
    let out = verify(&["--tuf-mirror-ca", ca.to_str().unwrap()])
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("decision: allowed"), "{stdout}");

    // Without the mirror's CA the fetch fails: denied, with the TLS error and what to do.
    let out = verify(&["--tuf-timeout", "5s"]).await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains(&format!(
            "TrustRoot corp is unusable: fetching the TUF repository from {}: attempt 1 failed: cannot fetch {}timestamp.json: invalid peer certificate: UnknownIssuer (the mirror's certificate is not issued by a trusted CA; give its CA with --tuf-mirror-ca)",
            mirror.url(),
            mirror.url()
        )),
        "{stdout}"
    );
}

fn remote(name: &str, repo: &TufRepository, mirror: &TufMirror) -> RemoteRepository {
    RemoteRepository {
        name: name.to_string(),
        mirror: mirror.url(),
        root: repo.root_json().to_vec(),
        targets: "targets".to_string(),
        trusted_root_target: "trusted_root.json".to_string(),
    }
}

fn fast(mirror: &TufMirror) -> TufSettings {
    TufSettings {
        refresh_interval: Duration::from_millis(100),
        retry_initial: Duration::from_millis(50),
        retry_max: Duration::from_millis(100),
        request_timeout: Duration::from_secs(5),
        mirror_ca_pem: Some(mirror.ca_pem().as_bytes().to_vec()),
        ..TufSettings::default()
    }
}

#[tokio::test]
async fn a_failed_refresh_keeps_the_last_good_trust_root_and_a_new_one_replaces_it() {
    let keys = TufKeys::generate();
    let (first, second) = (Sigstore::new(), Sigstore::new());
    let v1 = repository(&keys, &first.trusted_root());
    let mirror = TufMirror::serving(&v1).await;
    let metrics = verity::metrics::Metrics::unregistered().unwrap();
    let tuf = TufRoots::observed(fast(&mirror), &metrics).unwrap();
    let corp = remote("corp", &v1, &mirror);
    let fetches = |result: &str| metrics.tuf_fetches.with_label_values(&[result]).get();
    let first_material =
        TrustMaterial::from_trusted_root_json(first.trusted_root().as_bytes()).unwrap();

    let pending = tuf.follow(&corp).unwrap_err();
    assert_eq!(
        pending,
        format!(
            "fetching the TUF repository from {}: first attempt in progress",
            mirror.url()
        )
    );
    poll_until(Duration::from_secs(20), "the first fetch", || async {
        tuf.lookup(&corp).ok()
    })
    .await;
    assert_eq!(tuf.lookup(&corp).unwrap(), first_material);
    assert_eq!(fetches("updated"), 1);
    assert_eq!(metrics.tuf_trust_roots_unusable.get(), 0);
    let version = tuf.version();

    // The mirror breaks: refreshes fail (several, counted at the mirror), the material stays.
    mirror.fail();
    let before = mirror.requests().len();
    poll_until(Duration::from_secs(20), "failed refreshes", || async {
        (mirror.requests().len() >= before + 3).then_some(())
    })
    .await;
    assert_eq!(tuf.lookup(&corp).unwrap(), first_material);
    assert_eq!(tuf.version(), version, "a failed refresh is no change");
    let rendered = metrics.render();
    let failed: f64 = rendered
        .lines()
        .filter(|line| line.starts_with("verity_tuf_fetches_total{result=\"tuf_"))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert!(failed >= 1.0, "failed refreshes counted: {rendered}");

    assert_eq!(
        metrics.tuf_trust_roots_unusable.get(),
        0,
        "the last good trusted root stays usable"
    );

    // The mirror publishes a new trusted root (version 2 metadata): it replaces the old one.
    let v2 = TufRepository::build(
        &keys,
        &TufContent {
            version: 2,
            ..TufContent::trusted_root(&second.trusted_root())
        },
    );
    mirror.publish(&v2);
    let second_material =
        TrustMaterial::from_trusted_root_json(second.trusted_root().as_bytes()).unwrap();
    poll_until(Duration::from_secs(20), "the new trusted root", || async {
        (tuf.lookup(&corp).ok()? == second_material).then_some(())
    })
    .await;
    assert!(tuf.version() > version);
    assert_eq!(fetches("updated"), 2);

    // Rolled back to version 1 (validly signed, but older than what was seen): refused, the
    // newer material stays.
    mirror.publish(&v1);
    let before = mirror.requests().len();
    poll_until(
        Duration::from_secs(20),
        "refreshes against the rolled-back mirror",
        || async { (mirror.requests().len() >= before + 6).then_some(()) },
    )
    .await;
    assert_eq!(tuf.lookup(&corp).unwrap(), second_material);

    // Dropped TrustRoots are no longer followed.
    tuf.retain(&Default::default());
    assert_eq!(
        tuf.lookup(&corp).unwrap_err(),
        format!(
            "the TUF repository at {} has not been fetched yet",
            mirror.url()
        )
    );
    assert_eq!(tuf.following(), 0);
}

#[tokio::test]
async fn the_policy_endpoint_admits_a_remote_trust_root_with_a_warning_and_denies_a_broken_repository()
 {
    use axum::body::Body;
    use http_body_util::BodyExt;
    use tower::ServiceExt;
    use verity::metrics::Metrics;
    use verity::policy::index::Settings;
    use verity::server::policy_webhook::{PolicyReferences, router};
    use verity::server::webhook::WebhookSettings;

    let sigstore = Sigstore::new();
    let keys = TufKeys::generate();
    let good = repository(&keys, &sigstore.trusted_root());
    let dir = tempfile::tempdir().unwrap();
    let endpoint = router(
        PolicyReferences::Files {
            paths: vec![dir.path().to_path_buf()],
            load: LoadOptions::with_production_trust(Settings::default()).unwrap(),
        },
        WebhookSettings::default(),
        Metrics::unregistered().unwrap(),
    );
    let admit = |yaml: String| {
        let endpoint = endpoint.clone();
        async move {
            let object: Value = serde_saphyr::from_str(&yaml).unwrap();
            let gvk =
                json!({"group": "policy.sigstore.dev", "version": "v1alpha1", "kind": "TrustRoot"});
            let gvr = json!({"group": "policy.sigstore.dev", "version": "v1alpha1", "resource": "trustroots"});
            let review = json!({
                "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                "request": {
                    "uid": "u", "kind": gvk, "resource": gvr, "requestKind": gvk, "requestResource": gvr,
                    "name": "corp", "operation": "CREATE", "userInfo": {"username": "admin"},
                    "object": object, "oldObject": null, "dryRun": false,
                }
            });
            let request = http::Request::post("/validate-policy?timeout=10s")
                .header("content-type", "application/json")
                .body(Body::from(serde_json::to_vec(&review).unwrap()))
                .unwrap();
            let response = endpoint.oneshot(request).await.unwrap();
            let body = response.into_body().collect().await.unwrap().to_bytes();
            serde_json::from_slice::<Value>(&body).unwrap()["response"].clone()
        }
    };

    let response = admit(remote_trust_root_yaml(
        "corp",
        good.root_json(),
        "https://tuf.example/",
    ))
    .await;
    assert_eq!(response["allowed"], true, "{response}");
    let warnings = response["warnings"].to_string();
    assert!(
        warnings.contains("the TUF repository at https://tuf.example/ is not fetched here"),
        "{warnings}"
    );

    let response = admit(repository_trust_root_yaml(
        "corp",
        good.root_json(),
        &good.mirror_fs(),
    ))
    .await;
    assert_eq!(response["allowed"], true, "{response}");

    let expired = TufRepository::build(
        &keys,
        &TufContent {
            snapshot_expires: unix_now() - 60,
            ..TufContent::trusted_root(&sigstore.trusted_root())
        },
    );
    let response = admit(repository_trust_root_yaml(
        "corp",
        good.root_json(),
        &expired.mirror_fs(),
    ))
    .await;
    assert_eq!(response["allowed"], false, "{response}");
    let message = response["status"]["message"].as_str().unwrap();
    assert!(
        message.contains("snapshot metadata is expired"),
        "{message}"
    );
}
