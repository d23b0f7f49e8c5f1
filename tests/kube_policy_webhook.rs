//! HTTP contract of `POST /validate-policy` through the router: AdmissionReview bodies shaped as
//! the apiserver sends them (objects as kubectl writes them), answers checked field by field.
//! References resolve against policy files here (file mode); tests/kube_cluster.rs covers the
//! cluster source and a real apiserver calling the endpoint.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use axum::body::Body;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

use verity::metrics::Metrics;
use verity::policy::index::Settings;
use verity::policy::source::LoadOptions;
use verity::server::policy_webhook::{PolicyReferences, router};
use verity::server::webhook::WebhookSettings;

const PEM: &str = include_str!("fixtures/policies/pem/ec-p256.pub.pem");
const PRODUCTION_ROOT: &str = include_str!("../src/verify/trusted_root.sigstore-prod.json");

struct Endpoint {
    router: axum::Router,
    metrics: Metrics,
    _dir: tempfile::TempDir,
}

/// The endpoint in file mode, with a Secret `cosign-key` and a TrustRoot `corp` in the files.
fn endpoint(settings: WebhookSettings) -> Endpoint {
    let dir = tempfile::tempdir().unwrap();
    let secret = json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "cosign-key", "namespace": "verity-system"},
        "stringData": {"cosign.pub": PEM},
    });
    let trust_root = json!({
        "apiVersion": "policy.sigstore.dev/v1alpha1", "kind": "TrustRoot",
        "metadata": {"name": "corp"},
        "spec": {"trustedRootJSON": PRODUCTION_ROOT},
    });
    std::fs::write(
        dir.path().join("references.yaml"),
        format!("{secret}\n---\n{trust_root}\n"),
    )
    .unwrap();
    let metrics = Metrics::unregistered().unwrap();
    let references = PolicyReferences::Files {
        paths: vec![dir.path().to_path_buf()],
        load: LoadOptions::with_production_trust(Settings::default()).unwrap(),
    };
    Endpoint {
        router: router(references, settings, metrics.clone()),
        metrics,
        _dir: dir,
    }
}

fn yaml(text: &str) -> Value {
    serde_saphyr::from_str(text).unwrap()
}

fn fixture(name: &str) -> Value {
    yaml(
        &std::fs::read_to_string(format!(
            "{}/tests/fixtures/policies/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap(),
    )
}

/// The AdmissionReview the apiserver sends for `object`.
fn review(operation: &str, object: &Value) -> Value {
    let api_version = object["apiVersion"].as_str().unwrap();
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let kind = object["kind"].as_str().unwrap();
    let resource = match kind {
        "ClusterImagePolicy" => "clusterimagepolicies".to_string(),
        "TrustRoot" => "trustroots".to_string(),
        other => format!("{}s", other.to_lowercase()),
    };
    let gvk = json!({"group": group, "version": version, "kind": kind});
    let gvr = json!({"group": group, "version": version, "resource": resource});
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "00000000-0000-0000-0000-00000000000a",
            "kind": gvk, "resource": gvr, "requestKind": gvk, "requestResource": gvr,
            "name": object["metadata"]["name"],
            "operation": operation,
            "userInfo": {"username": "kubernetes-admin", "groups": ["system:masters", "system:authenticated"]},
            "object": if operation == "DELETE" { Value::Null } else { object.clone() },
            "oldObject": if operation == "DELETE" { object.clone() } else { Value::Null },
            "dryRun": false,
            "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"}
        }
    })
}

async fn post(endpoint: &Endpoint, body: Vec<u8>) -> (StatusCode, Vec<u8>) {
    let request = Request::post("/validate-policy?timeout=10s")
        .header("content-type", "application/json")
        .body(Body::from(body))
        .unwrap();
    let response = endpoint.router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, bytes.to_vec())
}

async fn answer(endpoint: &Endpoint, review: &Value) -> Value {
    let (status, body) = post(endpoint, serde_json::to_vec(review).unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    let answer: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(answer["apiVersion"], "admission.k8s.io/v1");
    assert_eq!(answer["kind"], "AdmissionReview");
    assert_eq!(
        answer["response"]["uid"],
        "00000000-0000-0000-0000-00000000000a"
    );
    answer["response"].clone()
}

fn cip(version: &str, spec: &str) -> Value {
    let mut object = yaml(&format!(
        "apiVersion: policy.sigstore.dev/{version}\nkind: ClusterImagePolicy\nmetadata: {{name: p}}\nspec: {{}}\n"
    ));
    object["spec"] = yaml(spec);
    object
}

fn denial(response: &Value) -> &str {
    assert_eq!(response["allowed"], false, "{response}");
    assert_eq!(response["status"]["code"], 400);
    assert_eq!(response["status"]["reason"], "BadRequest");
    assert_eq!(response["status"]["status"], "Failure");
    response["status"]["message"].as_str().unwrap()
}

fn warnings(response: &Value) -> Vec<String> {
    response["warnings"]
        .as_array()
        .map(|w| w.iter().map(|l| l.as_str().unwrap().to_string()).collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn valid_policies_of_both_versions_are_admitted() {
    let endpoint = endpoint(WebhookSettings::default());
    for name in [
        "v1alpha1-keyless.yaml",
        "v1beta1-key.yaml",
        "v1beta1-static-fail.yaml",
    ] {
        let response = answer(&endpoint, &review("CREATE", &fixture(name))).await;
        assert_eq!(response["allowed"], true, "{name}: {response}");
        assert!(response.get("status").is_none(), "{name}: {response}");
        assert!(warnings(&response).is_empty(), "{name}: {response}");
    }
    // References that resolve: the Secret and the TrustRoot of the policy files.
    let keyed = cip(
        "v1beta1",
        "images: [{glob: 'ghcr.io/**'}]\nauthorities: [{key: {secretRef: {name: cosign-key}}}, {keyless: {trustRootRef: corp, identities: [{issuer: 'https://issuer', subject: me}]}}]",
    );
    let response = answer(&endpoint, &review("UPDATE", &keyed)).await;
    assert_eq!(response["allowed"], true, "{response}");
    assert!(warnings(&response).is_empty(), "{response}");
    let text = endpoint.metrics.render();
    assert!(
        text.contains(r#"verity_admission_requests_total{decision="allow",reason="valid"} 4"#),
        "{text}"
    );
}

#[tokio::test]
async fn invalid_policies_are_denied_with_the_reference_texts() {
    let endpoint = endpoint(WebhookSettings::default());
    let cases = [
        (
            "{}",
            "validation failed: missing field(s): spec.authorities, spec.images",
        ),
        (
            "images: [{glob: '['}]\nauthorities: [{static: {action: pass}}]",
            "validation failed: invalid value: [: spec.images[0].glob\nglob is invalid: syntax error in pattern",
        ),
        (
            "images: [{glob: 'ghcr.io/**'}]\nauthorities: [{static: {action: pass}}]\nmode: garbage",
            "validation failed: invalid value: garbage: spec.mode\nunsupported mode",
        ),
        (
            "images: [{glob: 'ghcr.io/**'}]\nauthorities: [{name: a}]",
            "validation failed: expected exactly one, got neither: spec.authorities[0].key, spec.authorities[0].keyless, spec.authorities[0].static",
        ),
        (
            "images: [{glob: 'ghcr.io/**'}]\nauthorities: [{static: {action: pass}}]\nmatch: [{resource: apple}]",
            "validation failed: invalid value: apple: spec.match[0].resource\nunsupported resource name",
        ),
    ];
    for (spec, expected) in cases {
        let response = answer(&endpoint, &review("CREATE", &cip("v1alpha1", spec))).await;
        assert_eq!(denial(&response), expected, "{spec}");
    }
    let text = endpoint.metrics.render();
    assert!(
        text.contains(r#"verity_admission_requests_total{decision="deny",reason="invalid"} 5"#),
        "{text}"
    );
}

#[tokio::test]
async fn warnings_are_single_lines() {
    let endpoint = endpoint(WebhookSettings::default());
    let unanchored = cip(
        "v1beta1",
        "images: [{glob: 'ghcr.io/**'}]\nauthorities: [{keyless: {identities: [{issuerRegExp: 'https://token.actions.githubusercontent.com', subjectRegExp: 'github.com/example/'}]}}]",
    );
    let response = answer(&endpoint, &review("CREATE", &unanchored)).await;
    assert_eq!(response["allowed"], true, "{response}");
    let lines = warnings(&response);
    assert!(!lines.is_empty(), "{response}");
    for line in &lines {
        assert!(!line.contains('\n'), "{line:?}");
    }
    assert!(
        lines
            .iter()
            .any(|l| l.contains("spec.authorities[0].keyless.identities[0].subjectRegExp")),
        "{lines:?}"
    );
}

#[tokio::test]
async fn references_that_do_not_exist_yet_are_warnings() {
    let endpoint = endpoint(WebhookSettings::default());
    let ahead = cip(
        "v1alpha1",
        "images: [{glob: 'ghcr.io/**'}]\nauthorities: [{key: {secretRef: {name: not-yet}}}, {keyless: {trustRootRef: later, identities: [{issuer: 'https://issuer', subject: me}]}}]",
    );
    let response = answer(&endpoint, &review("CREATE", &ahead)).await;
    assert_eq!(response["allowed"], true, "{response}");
    assert_eq!(
        warnings(&response),
        [
            "invalid value: later: spec.authorities[1].keyless.trustRootRef trustRootRef later not found (TrustRoots loaded: corp); the policy is admitted, but until this resolves it loads as broken and denies every image it matches",
            "invalid value: not-yet: spec.authorities[0].key.secretRef.name secret \"not-yet\" not found; the policy is admitted, but until this resolves it loads as broken and denies every image it matches",
        ]
    );
    // Its own errors still deny, and the denial names only what is wrong with the policy itself.
    let both = cip(
        "v1alpha1",
        "images: [{glob: 'ghcr.io/**'}]\nmode: garbage\nauthorities: [{key: {secretRef: {name: not-yet}}}]",
    );
    let response = answer(&endpoint, &review("CREATE", &both)).await;
    assert_eq!(
        denial(&response),
        "validation failed: invalid value: garbage: spec.mode\nunsupported mode"
    );
}

#[tokio::test]
async fn trust_roots_are_compiled_like_the_loader_does() {
    let endpoint = endpoint(WebhookSettings::default());
    let trust_root = |spec: Value| {
        json!({"apiVersion": "policy.sigstore.dev/v1alpha1", "kind": "TrustRoot",
               "metadata": {"name": "corp"}, "spec": spec})
    };
    let response = answer(
        &endpoint,
        &review(
            "CREATE",
            &trust_root(json!({"trustedRootJSON": PRODUCTION_ROOT})),
        ),
    )
    .await;
    assert_eq!(response["allowed"], true, "{response}");

    let response = answer(&endpoint, &review("CREATE", &trust_root(json!({})))).await;
    assert!(
        denial(&response)
            .starts_with("validation failed: expected exactly one, got neither: spec.remote, spec.repository, spec.sigstoreKeys"),
        "{response}"
    );
    // Valid by the reference's rules, but its root.json is no TUF root, so no fetch could ever
    // succeed: denied, saying why. (A remote TrustRoot with a real root is admitted with a
    // warning, its mirror fetched in the background: tests/tuf.rs.)
    let remote = trust_root(
        json!({"remote": {"root": "eyJzaWduYXR1cmVzIjpbXX0=", "mirror": "https://tuf.example"}}),
    );
    let response = answer(&endpoint, &review("CREATE", &remote)).await;
    let message = denial(&response);
    assert!(
        message.starts_with("validation failed: remote.root: the trusted root.json is unusable: not a TUF root.json: "),
        "{message}"
    );
}

#[tokio::test]
async fn deletes_status_updates_and_other_kinds() {
    let endpoint = endpoint(WebhookSettings::default());
    let broken = cip("v1alpha1", "{}");
    let response = answer(&endpoint, &review("DELETE", &broken)).await;
    assert_eq!(response["allowed"], true, "{response}");

    let mut status_update = review("UPDATE", &broken);
    status_update["request"]["subResource"] = json!("status");
    let response = answer(&endpoint, &status_update).await;
    assert_eq!(response["allowed"], true, "{response}");

    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web"}, "spec": {}});
    let response = answer(&endpoint, &review("CREATE", &pod)).await;
    assert!(
        denial(&response).contains("checks policy.sigstore.dev ClusterImagePolicy (v1alpha1, v1beta1) and TrustRoot (v1alpha1), not /v1 Pod"),
        "{response}"
    );
}

#[tokio::test]
async fn undecodable_and_oversized_bodies() {
    let endpoint = endpoint(WebhookSettings {
        body_limit: 4096,
        ..WebhookSettings::default()
    });
    let (status, body) = post(&endpoint, b"not json".to_vec()).await;
    assert_eq!(status, StatusCode::OK);
    let answer: Value = serde_json::from_slice(&body).unwrap();
    assert!(
        denial(&answer["response"])
            .starts_with("verity could not read the admission request: request body is not JSON"),
        "{answer}"
    );

    let mut large = review("CREATE", &fixture("v1beta1-key.yaml"));
    large["request"]["object"]["metadata"]["annotations"] = json!({"filler": "x".repeat(8192)});
    let (status, body) = post(&endpoint, serde_json::to_vec(&large).unwrap()).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        String::from_utf8_lossy(&body),
        "request body exceeds verity's limit of 4096 bytes"
    );
}

#[tokio::test]
async fn unreadable_policy_files_deny_with_the_cause() {
    let metrics = Metrics::unregistered().unwrap();
    let references = PolicyReferences::Files {
        paths: vec!["/nonexistent/verity-policies".into()],
        load: LoadOptions::with_production_trust(Settings::default()).unwrap(),
    };
    let endpoint = Endpoint {
        router: router(references, WebhookSettings::default(), metrics.clone()),
        metrics,
        _dir: tempfile::tempdir().unwrap(),
    };
    let response = answer(&endpoint, &review("CREATE", &fixture("v1beta1-key.yaml"))).await;
    assert!(
        denial(&response).starts_with(
            "verity cannot read its policy files to resolve references: /nonexistent/verity-policies: "
        ),
        "{response}"
    );
}
