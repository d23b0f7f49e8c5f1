//! HTTP contract of `POST /validate`: real AdmissionReview bodies (objects made by kubectl, see
//! tests/fixtures/generate.sh) through the router, answers checked field by field.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use axum::body::Body;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

use verity::admission::Admission;
use verity::metrics::Metrics;
use verity::policy::index::{NoMatchPolicy, PolicyIndex, Settings};
use verity::policy::source::{Documents, LoadOptions, build_snapshot};
use verity::server::webhook::{WebhookSettings, router};
use verity::verify::Verifier;

fn cip(name: &str, spec: &str) -> String {
    format!(
        "---\napiVersion: policy.sigstore.dev/v1alpha1\nkind: ClusterImagePolicy\nmetadata: {{name: {name}}}\nspec:\n{}\n",
        spec.lines()
            .map(|l| format!("  {l}"))
            .collect::<Vec<_>>()
            .join("\n")
    )
}

struct Webhook {
    router: axum::Router,
    metrics: Metrics,
}

fn webhook(policies: &str, no_match: NoMatchPolicy) -> Webhook {
    webhook_with(policies, no_match, WebhookSettings::default())
}

fn webhook_with(policies: &str, no_match: NoMatchPolicy, settings: WebhookSettings) -> Webhook {
    let mut documents = Documents::default();
    documents.add_yaml("test.yaml", policies).unwrap();
    let (snapshot, _) = build_snapshot(
        &documents,
        &LoadOptions::with_production_trust(Settings { no_match }).unwrap(),
        1,
    )
    .unwrap();
    let metrics = Metrics::unregistered().unwrap();
    let admission = Admission::new(
        Arc::new(PolicyIndex::new(snapshot)),
        Verifier::offline(),
        metrics.clone(),
    );
    Webhook {
        router: router(admission, settings, metrics.clone()),
        metrics,
    }
}

fn fixture(name: &str) -> Value {
    let path = format!("{}/tests/fixtures/{name}.json", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Replaces every image in a fixture's object.
fn with_images(mut review: Value, images: &[&str]) -> Value {
    let object = &mut review["request"]["object"];
    let spec = if object["kind"] == "Pod" {
        &mut object["spec"]
    } else if object["kind"] == "CronJob" {
        &mut object["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    } else {
        &mut object["spec"]["template"]["spec"]
    };
    spec.as_object_mut().unwrap().remove("initContainers");
    spec["containers"] = Value::Array(
        images
            .iter()
            .enumerate()
            .map(|(i, image)| json!({"name": format!("c{i}"), "image": image}))
            .collect(),
    );
    review
}

async fn post_raw(webhook: &Webhook, body: Vec<u8>) -> (StatusCode, Vec<u8>) {
    let request = Request::post("/validate?timeout=10s")
        .header("content-type", "application/json")
        .body(Body::from(body))
        .unwrap();
    let response = webhook.router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes()
        .to_vec();
    (status, bytes)
}

/// Posts a review and returns its `response`.
async fn post(webhook: &Webhook, review: &Value) -> Value {
    let (status, body) = post_raw(webhook, serde_json::to_vec(review).unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    let answer: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(answer["apiVersion"], "admission.k8s.io/v1");
    assert_eq!(answer["kind"], "AdmissionReview");
    answer["response"].clone()
}

fn assert_denied(response: &Value, message: &str) {
    assert_eq!(response["allowed"], false, "{response}");
    assert_eq!(response["status"]["code"], 400);
    assert_eq!(response["status"]["reason"], "BadRequest");
    assert_eq!(response["status"]["message"], message);
}

const PASS_K8S: &str =
    "images: [{glob: 'registry.k8s.io/**'}]\nauthorities: [{static: {action: pass}}]";
const DENY_HUB: &str = "images: [{glob: 'index.docker.io/**'}]\nauthorities: [{static: {action: fail, message: mirror it}}]";

#[tokio::test]
async fn allows_when_every_image_passes() {
    let webhook = webhook(&cip("k8s", PASS_K8S), NoMatchPolicy::Deny);
    let review = with_images(
        fixture("pod"),
        &[
            "registry.k8s.io/pause:3.9",
            "registry.k8s.io/coredns/coredns:v1.11.1",
        ],
    );
    let response = post(&webhook, &review).await;
    assert_eq!(
        response,
        json!({"uid": "00000000-0000-0000-0000-000000000001", "allowed": true})
    );
    assert!(
        webhook
            .metrics
            .render()
            .contains(r#"verity_admission_requests_total{decision="allow",reason="allowed"} 1"#)
    );
}

#[tokio::test]
async fn static_fail_denies_with_reference_text_and_merged_paths() {
    let webhook = webhook(
        &format!("{}{}", cip("k8s", PASS_K8S), cip("deny-hub", DENY_HUB)),
        NoMatchPolicy::Deny,
    );
    // The fixture has the same busybox image as init container and container.
    let response = post(&webhook, &fixture("pod")).await;
    assert_eq!(response["uid"], "00000000-0000-0000-0000-000000000001");
    assert_denied(
        &response,
        "validation failed: failed policy: deny-hub: spec.containers[0].image, spec.initContainers[0].image\n\
         docker.io/library/busybox:1.36 disallowed by static policy: mirror it\n\
         no matching policies: spec.containers[1].image\n\
         ghcr.io/example-org/sidecar:v1",
    );
    assert!(
        webhook
            .metrics
            .render()
            .contains(r#"decision="deny",reason="policy""#)
    );
}

#[tokio::test]
async fn every_kind_is_checked_at_its_reference_path() {
    let webhook = webhook(&cip("deny-hub", DENY_HUB), NoMatchPolicy::Allow);
    for (name, path) in [
        ("pod", "spec.containers[0].image"),
        ("deployment", "spec.template.spec.containers[0].image"),
        ("replicaset", "spec.template.spec.containers[0].image"),
        ("statefulset", "spec.template.spec.containers[0].image"),
        ("daemonset", "spec.template.spec.containers[0].image"),
        (
            "replicationcontroller",
            "spec.template.spec.containers[0].image",
        ),
        ("job", "spec.template.spec.containers[0].image"),
        (
            "cronjob",
            "spec.jobTemplate.spec.template.spec.containers[0].image",
        ),
    ] {
        let review = with_images(fixture(name), &["busybox:1.36"]);
        let response = post(&webhook, &review).await;
        assert_denied(
            &response,
            &format!(
                "validation failed: failed policy: deny-hub: {path}\nbusybox:1.36 disallowed by static policy: mirror it"
            ),
        );
    }
    // kube-apiserver 1.20 sends CronJobs as batch/v1beta1.
    let mut old_cronjob = with_images(fixture("cronjob"), &["busybox"]);
    old_cronjob["request"]["kind"]["version"] = json!("v1beta1");
    old_cronjob["request"]["resource"]["version"] = json!("v1beta1");
    old_cronjob["request"]["object"]["apiVersion"] = json!("batch/v1beta1");
    assert_eq!(post(&webhook, &old_cronjob).await["allowed"], false);
}

#[tokio::test]
async fn no_match_in_all_three_settings() {
    let review = with_images(fixture("deployment"), &["quay.io/org/app:v1"]);
    let deny = post(
        &webhook(&cip("k8s", PASS_K8S), NoMatchPolicy::Deny),
        &review,
    )
    .await;
    assert_denied(
        &deny,
        "validation failed: no matching policies: spec.template.spec.containers[0].image\nquay.io/org/app:v1",
    );
    let warn = post(
        &webhook(&cip("k8s", PASS_K8S), NoMatchPolicy::Warn),
        &review,
    )
    .await;
    assert_eq!(warn["allowed"], true);
    assert_eq!(
        warn["warnings"],
        json!(["no matching policies: spec.template.spec.containers[0].image quay.io/org/app:v1"])
    );
    let allow = post(
        &webhook(&cip("k8s", PASS_K8S), NoMatchPolicy::Allow),
        &review,
    )
    .await;
    assert_eq!(
        allow,
        json!({"uid": "00000000-0000-0000-0000-000000000001", "allowed": true})
    );
}

#[tokio::test]
async fn warn_mode_admits_with_a_single_line_warning() {
    let audit = "mode: warn\nimages: [{glob: 'index.docker.io/**'}]\nauthorities: [{static: {action: fail, message: not yet signed}}]";
    let webhook = webhook(&cip("audit", audit), NoMatchPolicy::Deny);
    let response = post(&webhook, &with_images(fixture("pod"), &["nginx:1.25"])).await;
    assert_eq!(response["allowed"], true);
    assert!(response.get("status").is_none());
    assert_eq!(
        response["warnings"],
        json!([
            "failed policy: audit: spec.containers[0].image nginx:1.25 disallowed by static policy: not yet signed"
        ])
    );
}

#[tokio::test]
async fn enforce_and_warn_failures_on_one_image_deny() {
    let audit = "mode: warn\nimages: [{glob: 'index.docker.io/**'}]\nauthorities: [{static: {action: fail, message: audit}}]";
    let webhook = webhook(
        &format!("{}{}", cip("a-audit", audit), cip("b-deny", DENY_HUB)),
        NoMatchPolicy::Deny,
    );
    let response = post(&webhook, &with_images(fixture("pod"), &["nginx"])).await;
    assert_denied(
        &response,
        "validation failed: failed policy: b-deny: spec.containers[0].image\nnginx disallowed by static policy: mirror it",
    );
    assert_eq!(
        response["warnings"],
        json!([
            "failed policy: a-audit: spec.containers[0].image nginx disallowed by static policy: audit"
        ])
    );
}

#[tokio::test]
async fn policies_are_and_ed_and_authorities_or_ed() {
    let pass_hub =
        "images: [{glob: 'index.docker.io/library/*'}]\nauthorities: [{static: {action: pass}}]";
    let and = webhook(
        &format!("{}{}", cip("pass-hub", pass_hub), cip("deny-hub", DENY_HUB)),
        NoMatchPolicy::Deny,
    );
    assert_eq!(
        post(&and, &with_images(fixture("pod"), &["nginx"])).await["allowed"],
        false
    );

    let either = "images: [{glob: 'index.docker.io/**'}]\nauthorities:\n- {name: denier, static: {action: fail, message: x}}\n- {name: passer, static: {action: pass}}";
    let or = webhook(&cip("either", either), NoMatchPolicy::Deny);
    assert_eq!(
        post(&or, &with_images(fixture("pod"), &["nginx"])).await["allowed"],
        true
    );

    let neither = "images: [{glob: 'index.docker.io/**'}]\nauthorities:\n- {name: first, static: {action: fail, message: one}}\n- {name: second, static: {action: fail, message: two}}";
    let none = webhook(&cip("neither", neither), NoMatchPolicy::Deny);
    assert_denied(
        &post(&none, &with_images(fixture("pod"), &["nginx"])).await,
        "validation failed: failed policy: neither: spec.containers[0].image\nnginx disallowed by static policy: one disallowed by static policy: two",
    );
}

#[tokio::test]
async fn signature_authorities_fail_closed_without_registry_access() {
    let keyless = "images: [{glob: 'ghcr.io/**'}]\nauthorities: [{name: ci, keyless: {url: 'https://fulcio.sigstore.dev', identities: [{issuer: 'https://token.actions.githubusercontent.com', subject: 'x'}]}}]";
    let webhook = webhook(&cip("signed", keyless), NoMatchPolicy::Allow);
    let digest = format!("sha256:{}", "b".repeat(64));
    let response = post(
        &webhook,
        &with_images(fixture("pod"), &[&format!("ghcr.io/org/app@{digest}")]),
    )
    .await;
    assert_eq!(response["allowed"], false);
    let message = response["status"]["message"].as_str().unwrap();
    assert!(
        message.contains(&format!(
            "signature keyless validation failed for authority ci for ghcr.io/org/app@{digest}: "
        )),
        "{message}"
    );
}

#[tokio::test]
async fn tag_globs_match_tagged_images() {
    let tags = "images: [{glob: 'ghcr.io/org/app:v1.*'}]\nauthorities: [{static: {action: pass}}]";
    let webhook = webhook(&cip("release-tags", tags), NoMatchPolicy::Deny);
    assert_eq!(
        post(
            &webhook,
            &with_images(fixture("pod"), &["ghcr.io/org/app:v1.2"])
        )
        .await["allowed"],
        true
    );
    assert_eq!(
        post(
            &webhook,
            &with_images(fixture("pod"), &["ghcr.io/org/app:v2.0"])
        )
        .await["allowed"],
        false
    );
}

#[tokio::test]
async fn digest_globs_fail_closed_when_the_digest_cannot_be_learned() {
    let pinned =
        "images: [{glob: 'ghcr.io/org/app@sha256:*'}]\nauthorities: [{static: {action: pass}}]";
    let webhook = webhook(&cip("pinned", pinned), NoMatchPolicy::Allow);
    let response = post(
        &webhook,
        &with_images(fixture("pod"), &["ghcr.io/org/app:v1"]),
    )
    .await;
    assert_eq!(response["allowed"], false);
    let message = response["status"]["message"].as_str().unwrap();
    assert!(message.starts_with("validation failed: failed to check image: spec.containers[0].image\nghcr.io/org/app:v1 failed to resolve the digest needed to decide which policies apply"), "{message}");
    // The same image by digest needs no registry.
    let digest = format!("ghcr.io/org/app@sha256:{}", "c".repeat(64));
    assert_eq!(
        post(&webhook, &with_images(fixture("pod"), &[&digest])).await["allowed"],
        true
    );
}

#[tokio::test]
async fn match_selectors_use_the_objects_own_labels() {
    let team = "images: [{glob: '**'}]\nauthorities: [{static: {action: fail, message: team a}}]\nmatch: [{group: apps, version: v1, resource: deployments, selector: {matchLabels: {app: web}}}]";
    let webhook = webhook(&cip("team-a", team), NoMatchPolicy::Allow);
    let deployment = with_images(fixture("deployment"), &["nginx"]);
    assert_eq!(post(&webhook, &deployment).await["allowed"], false);
    let mut other = deployment.clone();
    other["request"]["object"]["metadata"]["labels"] = json!({"app": "api"});
    // The template's labels do not count: only the Deployment's own.
    other["request"]["object"]["spec"]["template"]["metadata"]["labels"] = json!({"app": "web"});
    assert_eq!(post(&webhook, &other).await["allowed"], true);
    // Another resource is not selected at all.
    assert_eq!(
        post(&webhook, &with_images(fixture("pod"), &["nginx"])).await["allowed"],
        true
    );
}

#[tokio::test]
async fn skip_rules() {
    let webhook = webhook(&cip("deny-hub", DENY_HUB), NoMatchPolicy::Deny);
    let base = with_images(fixture("deployment"), &["nginx"]);

    let mut delete = base.clone();
    delete["request"]["operation"] = json!("DELETE");
    assert_eq!(post(&webhook, &delete).await["allowed"], true);

    let mut deleting = base.clone();
    deleting["request"]["operation"] = json!("UPDATE");
    deleting["request"]["object"]["metadata"]["deletionTimestamp"] = json!("2026-11-22T00:00:00Z");
    assert_eq!(post(&webhook, &deleting).await["allowed"], true);

    let mut status = base.clone();
    status["request"]["operation"] = json!("UPDATE");
    status["request"]["subResource"] = json!("status");
    assert_eq!(post(&webhook, &status).await["allowed"], true);

    let scale = |from: i64, to: i64, new_image: &str| {
        let mut update = with_images(fixture("deployment"), &[new_image]);
        update["request"]["operation"] = json!("UPDATE");
        update["request"]["oldObject"] =
            with_images(fixture("deployment"), &["nginx"])["request"]["object"].clone();
        update["request"]["oldObject"]["spec"]["replicas"] = json!(from);
        update["request"]["object"]["spec"]["replicas"] = json!(to);
        update
    };
    assert_eq!(
        post(&webhook, &scale(3, 1, "nginx")).await["allowed"],
        true,
        "scale-down is exempt"
    );
    assert_eq!(
        post(&webhook, &scale(1, 3, "nginx")).await["allowed"],
        false,
        "scale-up is checked"
    );
    assert_eq!(
        post(&webhook, &scale(3, 1, "nginx:2")).await["allowed"],
        false,
        "a scale-down that also changes an image is checked"
    );

    let mut ephemeral = with_images(fixture("pod"), &["registry.example.com/ok"]);
    ephemeral["request"]["operation"] = json!("UPDATE");
    ephemeral["request"]["subResource"] = json!("ephemeralcontainers");
    ephemeral["request"]["object"]["spec"]["ephemeralContainers"] =
        json!([{"name": "debug", "image": "busybox"}]);
    let response = post(&webhook, &ephemeral).await;
    assert!(
        response["status"]["message"]
            .as_str()
            .unwrap()
            .contains("failed policy: deny-hub: spec.ephemeralContainers[0].image"),
        "{response}"
    );
}

#[tokio::test]
async fn bad_input_gets_a_clear_answer() {
    let webhook = webhook(&cip("k8s", PASS_K8S), NoMatchPolicy::Deny);

    let (status, body) = post_raw(&webhook, b"{not json".to_vec()).await;
    assert_eq!(status, StatusCode::OK);
    let answer: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(answer["response"]["allowed"], false);
    assert!(
        answer["response"]["status"]["message"]
            .as_str()
            .unwrap()
            .starts_with("verity could not read the admission request: request body is not JSON")
    );

    let mut wrong_version = fixture("pod");
    wrong_version["apiVersion"] = json!("admission.k8s.io/v1beta1");
    let response = post(&webhook, &wrong_version).await;
    assert_eq!(response["uid"], "00000000-0000-0000-0000-000000000001");
    assert!(
        response["status"]["message"]
            .as_str()
            .unwrap()
            .contains("unsupported AdmissionReview apiVersion")
    );

    let mut no_uid = fixture("pod");
    no_uid["request"].as_object_mut().unwrap().remove("uid");
    let response = post(&webhook, &no_uid).await;
    assert_eq!(response["allowed"], false);
    assert!(
        response["status"]["message"]
            .as_str()
            .unwrap()
            .ends_with("AdmissionReview request has no uid")
    );

    let unparsable = with_images(fixture("pod"), &["Not/A:Valid:Image"]);
    assert_denied(
        &post(&webhook, &unparsable).await,
        "validation failed: could not parse reference: Not/A:Valid:Image: spec.containers[0].image",
    );

    let mut malformed = fixture("pod");
    malformed["request"]["object"]["spec"]["containers"] = json!("nope");
    assert_denied(
        &post(&webhook, &malformed).await,
        "validation failed: malformed Pod object: spec.containers is not a list: spec.containers",
    );

    let huge = vec![b' '; 4 * 1024 * 1024];
    let (status, body) = post_raw(&webhook, huge).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        String::from_utf8(body).unwrap(),
        "request body exceeds verity's limit of 3145728 bytes"
    );

    let request = Request::get("/validate").body(Body::empty()).unwrap();
    let response = webhook.router.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
}
