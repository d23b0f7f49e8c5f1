//! `POST /mutate` against a real registry: tags covered by a signature policy are pinned to the
//! registry's digest (the tag kept), everything else is left alone without a registry call.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use base64::Engine as _;
use serde_json::{Value, json};

use support::registry::TestRegistry;
use support::webhook::{TestWebhook, WebhookConfig};
use verity::policy::index::NoMatchPolicy;

const KEY: &str = "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEgvFzV6ef86LdqyCJ19sEmfAq4qnu\nZq+ruq+X/k0cEHLbq640ioO16We9L31qsxmP6W6OD2V54yI9+q9qrMJ2Pw==\n-----END PUBLIC KEY-----";

fn policies(host: &str) -> String {
    let key = KEY.replace('\n', "\n          ");
    format!(
        r#"
apiVersion: policy.sigstore.dev/v1alpha1
kind: ClusterImagePolicy
metadata: {{name: signed}}
spec:
  images: [{{glob: "{host}/signed/**"}}]
  authorities:
  - key:
      data: |
          {key}
---
apiVersion: policy.sigstore.dev/v1alpha1
kind: ClusterImagePolicy
metadata: {{name: static-only}}
spec:
  images: [{{glob: "{host}/static/**"}}]
  authorities: [{{static: {{action: pass}}}}]
"#
    )
}

struct Setup {
    webhook: TestWebhook,
    registry: TestRegistry,
    proxy: support::registry::CountingProxy,
}

async fn setup() -> (Setup, String) {
    let registry = TestRegistry::start().await;
    let proxy = registry.counting_proxy().await;
    let host = proxy.host();
    let webhook = TestWebhook::start(
        &policies(&host),
        WebhookConfig::for_registry(&host).no_match(NoMatchPolicy::Allow),
    );
    (
        Setup {
            webhook,
            registry,
            proxy,
        },
        host,
    )
}

fn review(images: &[&str], annotations: Value) -> Value {
    let mut review: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/deployment.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let spec = &mut review["request"]["object"]["spec"]["template"]["spec"];
    spec.as_object_mut().unwrap().remove("initContainers");
    spec["containers"] = Value::Array(
        images
            .iter()
            .enumerate()
            .map(|(i, image)| json!({"name": format!("c{i}"), "image": image}))
            .collect(),
    );
    review["request"]["object"]["metadata"]["annotations"] = annotations;
    review
}

async fn mutate(setup: &Setup, review: &Value) -> (Value, Option<Value>) {
    let response = setup.webhook.mutate(review).await;
    assert_eq!(
        response["allowed"], true,
        "mutation never denies: {response}"
    );
    let patch = response["patch"].as_str().map(|encoded| {
        assert_eq!(response["patchType"], "JSONPatch");
        serde_json::from_slice(
            &base64::engine::general_purpose::STANDARD
                .decode(encoded)
                .unwrap(),
        )
        .unwrap()
    });
    (response, patch)
}

#[tokio::test]
async fn pins_only_images_a_signature_policy_covers() {
    let (setup, host) = setup().await;
    let signed = setup.registry.push_image("signed/app", "v1", "one").await;
    setup.registry.push_image("static/app", "v1", "two").await;
    setup.proxy.reset();

    let images = [
        format!("{host}/signed/app:v1"),
        format!("{host}/static/app:v1"),
        "quay.io/uncovered/app:v1".to_string(),
        format!("{host}/signed/app@{signed}"),
    ];
    let refs: Vec<&str> = images.iter().map(String::as_str).collect();
    let (_, patch) = mutate(&setup, &review(&refs, json!({}))).await;
    assert_eq!(
        patch.unwrap(),
        json!([{
            "op": "replace",
            "path": "/spec/template/spec/containers/0/image",
            "value": format!("{host}/signed/app:v1@{signed}"),
        }])
    );
    // One HEAD for the covered tag; nothing for the static-only, uncovered and pinned images.
    assert_eq!(
        setup.proxy.request_lines(),
        ["HEAD /v2/signed/app/manifests/v1".to_string()]
    );

    // The resolution is cached: the same image again makes no registry call.
    let (_, patch) = mutate(&setup, &review(&refs[..1], json!({}))).await;
    assert!(patch.is_some());
    assert_eq!(setup.proxy.request_count(), 1);
}

#[tokio::test]
async fn an_implied_latest_tag_is_spelt_out() {
    let (setup, host) = setup().await;
    let digest = setup
        .registry
        .push_image("signed/app", "latest", "latest")
        .await;
    let image = format!("{host}/signed/app");
    let (_, patch) = mutate(&setup, &review(&[&image], json!({}))).await;
    assert_eq!(
        patch.unwrap()[0]["value"],
        format!("{host}/signed/app:latest@{digest}")
    );
}

#[tokio::test]
async fn the_opt_out_annotation_and_unknown_tags_leave_the_object_alone() {
    let (setup, host) = setup().await;
    setup.registry.push_image("signed/app", "v1", "one").await;
    let image = format!("{host}/signed/app:v1");
    let (_, patch) = mutate(
        &setup,
        &review(&[&image], json!({"verity.dev/mutate": "false"})),
    )
    .await;
    assert_eq!(patch, None);

    let missing = format!("{host}/signed/app:does-not-exist");
    let (response, patch) = mutate(&setup, &review(&[&missing], json!({}))).await;
    assert_eq!(patch, None);
    let warning = response["warnings"][0].as_str().unwrap();
    assert!(
        warning.starts_with(&format!(
            "verity could not pin {missing} (spec.template.spec.containers[0].image) to a digest: "
        )),
        "{warning}"
    );
    assert!(warning.contains("404"), "{warning}");
}
