//! The `verity` binary end to end: `dev-certs`, `serve` on HTTPS with the policies reloaded
//! when their files change, SIGTERM, and the `verify` / `validate` / `crds` commands.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;

#[path = "support/served.rs"]
mod served;

use served::{ServedVerity, VERITY};

fn verity(args: &[&str]) -> Output {
    Command::new(VERITY).args(args).output().unwrap()
}

const DENY_HUB: &str = r#"
apiVersion: policy.sigstore.dev/v1beta1
kind: ClusterImagePolicy
metadata: {name: deny-hub}
spec:
  images: [{glob: "index.docker.io/**"}]
  authorities: [{static: {action: fail, message: first version}}]
"#;

/// `verity serve` on one policy file (`deny-hub.yaml`) with no-match-policy allow.
struct Served {
    verity: ServedVerity,
    dir: tempfile::TempDir,
}

impl Served {
    fn policy_file(&self) -> PathBuf {
        self.dir.path().join("policies/deny-hub.yaml")
    }
}

async fn start() -> Served {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("policies")).unwrap();
    std::fs::write(dir.path().join("policies/deny-hub.yaml"), DENY_HUB).unwrap();
    let verity = ServedVerity::spawn(dir.path(), |command| {
        command
            .args(["--policy-reload-interval", "100ms"])
            .env("VERITY_POLICIES", dir.path().join("policies"))
            .env("VERITY_NO_MATCH_POLICY", "allow");
    });
    verity.wait_ready(Duration::from_secs(30)).await;
    Served { verity, dir }
}

async fn poll<F, Fut>(limit: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    while !check().await {
        assert!(
            Instant::now() < deadline,
            "condition not met within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn message(response: &Value) -> &str {
    response["status"]["message"].as_str().unwrap_or_default()
}

#[tokio::test]
async fn serves_reloads_policies_and_stops_on_sigterm() {
    let mut served = start().await;
    let response = served.verity.admit("busybox").await;
    assert_eq!(
        message(&response),
        "validation failed: failed policy: deny-hub: spec.containers[0].image\nbusybox disallowed by static policy: first version"
    );
    assert_eq!(
        served.verity.admit("quay.io/x/y").await["allowed"],
        true,
        "no-match-policy allow from the env twin"
    );

    // A change takes effect without a restart.
    std::fs::write(
        served.policy_file(),
        DENY_HUB.replace("first version", "second version"),
    )
    .unwrap();
    poll(Duration::from_secs(20), || async {
        message(&served.verity.admit("busybox").await).ends_with("second version")
    })
    .await;

    // A broken change is rejected: the previous policies stay, readiness stays, the error is counted.
    std::fs::write(
        served.policy_file(),
        DENY_HUB.replace("images: [{glob: \"index.docker.io/**\"}]", "images: 3"),
    )
    .unwrap();
    poll(Duration::from_secs(20), || async {
        served
            .verity
            .metrics()
            .await
            .contains(r#"verity_policy_load_errors_total{source="file"} 1"#)
    })
    .await;
    assert!(message(&served.verity.admit("busybox").await).ends_with("second version"));
    assert!(served.verity.ready().await);

    let pid = served.verity.process().id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = served.verity.process().try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "verity did not exit after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "exit status {status}");
}

#[test]
fn serve_refuses_to_start_with_invalid_policies() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, "apiVersion: policy.sigstore.dev/v1alpha1\nkind: ClusterImagePolicy\nmetadata: {name: empty}\nspec: {}\n").unwrap();
    let out = verity(&[
        "serve",
        "--tls-cert",
        "x",
        "--tls-key",
        "y",
        "--policies",
        bad.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("invalid policies, refusing to start"),
        "{stderr}"
    );
    assert!(
        stderr.contains(
            "ClusterImagePolicy empty is invalid: missing field(s): spec.authorities, spec.images"
        ),
        "{stderr}"
    );
}

fn policies_dir() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/policies"))
}

#[test]
fn verify_explains_the_example_policies() {
    let policies = policies_dir().to_str().unwrap();
    let out = verity(&[
        "verify",
        "--policies",
        policies,
        "docker.io/library/busybox",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("policy deny-docker-hub (mode enforce): FAILED"),
        "{text}"
    );
    assert!(text.contains("decision: denied"), "{text}");

    let out = verity(&[
        "verify",
        "--output",
        "json",
        "--policies",
        policies,
        "registry.k8s.io/pause:3.9",
    ]);
    assert_eq!(out.status.code(), Some(0));
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["allowed"], true);
    assert_eq!(
        json["images"][0]["policies"][0]["name"],
        "allow-kubernetes-images"
    );

    let out = verity(&["verify", "--policies", "/nonexistent", "busybox"]);
    assert_eq!(out.status.code(), Some(2));
    let out = verity(&["verify", "--policies", policies]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn verify_a_resource_uses_its_kind_and_labels() {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("p.yaml");
    std::fs::write(
        &policy,
        "apiVersion: policy.sigstore.dev/v1alpha1\nkind: ClusterImagePolicy\nmetadata: {name: deployments}\nspec:\n  images: [{glob: '**'}]\n  authorities: [{static: {action: pass}}]\n  match: [{group: apps, version: v1, resource: deployments, selector: {matchLabels: {app: web}}}]\n",
    )
    .unwrap();
    let review: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/deployment.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let resource = dir.path().join("deployment.json");
    std::fs::write(&resource, review["request"]["object"].to_string()).unwrap();
    let args = [
        "verify",
        "--policies",
        policy.to_str().unwrap(),
        "--resource",
        resource.to_str().unwrap(),
    ];
    let out = verity(&args);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // As a bare Pod the same image matches nothing.
    let out = verity(&["verify", "--policies", policy.to_str().unwrap(), "busybox"]);
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn validate_reports_reference_messages_and_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "apiVersion: policy.sigstore.dev/v1beta1\nkind: ClusterImagePolicy\nmetadata: {name: bad}\nspec:\n  mode: garbage\n  images: [{glob: '[' }]\n  authorities: [{static: {action: pass}}]\n",
    )
    .unwrap();
    let out = verity(&["validate", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("ClusterImagePolicy bad is invalid"),
        "{stderr}"
    );
    assert!(
        stderr.contains("glob is invalid: syntax error in pattern"),
        "{stderr}"
    );

    let mut files: Vec<String> = std::fs::read_dir(policies_dir())
        .unwrap()
        .map(|e| e.unwrap().path().display().to_string())
        .collect();
    files.sort();
    let mut args = vec!["validate"];
    args.extend(files.iter().map(String::as_str));
    let out = verity(&args);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "valid: 4 ClusterImagePolicies, 0 TrustRoots, 0 Secrets\n"
    );
}

#[test]
fn crds_prints_both_custom_resource_definitions() {
    let out = verity(&["crds"]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("clusterimagepolicies.policy.sigstore.dev"));
    assert!(text.contains("trustroots.policy.sigstore.dev"));
    assert_eq!(
        text.matches("\n---\n").count() + usize::from(text.starts_with("---\n")),
        2
    );
}

#[test]
fn committed_chart_crds_match_the_generated_ones() {
    let committed = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/charts/verity/crds/crds.yaml"
    ))
    .unwrap();
    let generated = String::from_utf8(verity(&["crds"]).stdout).unwrap();
    assert!(
        committed == generated,
        "charts/verity/crds/crds.yaml is stale: run `make crds` and commit the result"
    );
}
