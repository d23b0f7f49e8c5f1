//! Cluster mode against a real kube-apiserver (kube-local, v1.20.2): the policy source, status
//! on the policies, `verity serve --kubeconfig`, the cluster credential source, and
//! `/validate-policy` behind a real ValidatingWebhookConfiguration.
//!
//! One apiserver serves every scenario (it takes seconds to start), so the scenarios run in
//! order inside one test, each on its own object names.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod kube_local;
mod support;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, ServiceAccount};
use kube::Client;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams,
};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use serde_json::{Value, json};

use kube_local::{KubeLocal, create_namespace, install_crds};
use support::poll_until;
use support::served::{ServedVerity, VERITY, pod_review};
use support::tuf::{TufContent, TufKeys, TufMirror, TufRepository};
use verity::metrics::Metrics;
use verity::policy::compiled::ResourceRef;
use verity::policy::index::{NoMatchPolicy, PolicyEntry, PolicyIndex, Settings};
use verity::policy::source::kube::{KubeSource, SharedReferences};
use verity::policy::source::{LoadOptions, RemoteTrust};
use verity::registry::{ClusterCredentials, CredentialSource, WorkloadCredentials};
use verity::server::admin::{Admin, Readiness};
use verity::server::policy_webhook::{self, PolicyReferences};
use verity::server::webhook::WebhookSettings;
use verity::server::{Server, ServerConfig};
use verity::verify::tuf::{TufRoots, TufSettings};

const NAMESPACE: &str = "verity-system";
const WAIT: Duration = Duration::from_secs(30);
const PEM: &str = include_str!("fixtures/policies/pem/ec-p256.pub.pem");
const PRODUCTION_ROOT: &str = include_str!("../src/verify/trusted_root.sigstore-prod.json");

struct Env {
    cluster: KubeLocal,
    client: Client,
    index: Arc<PolicyIndex>,
    readiness: Readiness,
    metrics: Metrics,
    references: SharedReferences,
    /// The source's TUF fetcher (remote TrustRoots), and the mirror it trusts.
    tuf: TufRoots,
    mirror: TufMirror,
}

fn cip_api(client: &Client, version: &str) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("policy.sigstore.dev", version, "ClusterImagePolicy");
    Api::all_with(
        client.clone(),
        &ApiResource::from_gvk_with_plural(&gvk, "clusterimagepolicies"),
    )
}

fn trust_root_api(client: &Client) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("policy.sigstore.dev", "v1alpha1", "TrustRoot");
    Api::all_with(
        client.clone(),
        &ApiResource::from_gvk_with_plural(&gvk, "trustroots"),
    )
}

/// Server-side applies a ClusterImagePolicy written as `version`.
async fn apply_cip(client: &Client, version: &str, name: &str, spec: Value) {
    let object = json!({
        "apiVersion": format!("policy.sigstore.dev/{version}"),
        "kind": "ClusterImagePolicy",
        "metadata": {"name": name},
        "spec": spec,
    });
    cip_api(client, version)
        .patch(
            name,
            &PatchParams::apply("verity-test").force(),
            &Patch::Apply(&object),
        )
        .await
        .unwrap_or_else(|e| panic!("applying ClusterImagePolicy {name}: {e}"));
}

async fn apply_trust_root(client: &Client, name: &str, spec: Value) {
    let object = json!({
        "apiVersion": "policy.sigstore.dev/v1alpha1",
        "kind": "TrustRoot",
        "metadata": {"name": name},
        "spec": spec,
    });
    trust_root_api(client)
        .patch(
            name,
            &PatchParams::apply("verity-test").force(),
            &Patch::Apply(&object),
        )
        .await
        .unwrap_or_else(|e| panic!("applying TrustRoot {name}: {e}"));
}

async fn apply_secret(client: &Client, namespace: &str, secret: Value) {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let name = secret["metadata"]["name"].as_str().unwrap().to_string();
    secrets
        .patch(
            &name,
            &PatchParams::apply("verity-test").force(),
            &Patch::Apply(&secret),
        )
        .await
        .unwrap_or_else(|e| panic!("applying Secret {name}: {e}"));
}

async fn apply_config(client: &Client, data: Value) {
    let configs: Api<ConfigMap> = Api::namespaced(client.clone(), NAMESPACE);
    let config = json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "config-policy-controller", "namespace": NAMESPACE},
        "data": data,
    });
    configs
        .patch(
            "config-policy-controller",
            &PatchParams::apply("verity-test").force(),
            &Patch::Apply(&config),
        )
        .await
        .unwrap();
}

fn entry(index: &PolicyIndex, name: &str) -> Option<Arc<PolicyEntry>> {
    index
        .snapshot()
        .policies()
        .iter()
        .find(|e| e.name() == name)
        .cloned()
}

async fn wait_entry(
    index: &PolicyIndex,
    name: &str,
    what: &str,
    check: impl Fn(&PolicyEntry) -> bool,
) -> Arc<PolicyEntry> {
    poll_until(WAIT, &format!("{name}: {what}"), || {
        let found = entry(index, name).filter(|e| check(e));
        async move { found }
    })
    .await
}

fn is_ready(entry: &PolicyEntry) -> bool {
    matches!(entry, PolicyEntry::Ready(_))
}

fn broken_error(entry: &PolicyEntry) -> Option<&str> {
    match entry {
        PolicyEntry::Broken { error, .. } => Some(error),
        PolicyEntry::Ready(_) => None,
    }
}

/// The `Ready` condition and `observedGeneration` of an object, as stored.
#[derive(Debug, Clone, PartialEq)]
struct Ready {
    status: String,
    reason: String,
    message: String,
    observed_generation: i64,
}

fn ready_of(object: &DynamicObject) -> Option<Ready> {
    let status = object.data.get("status")?;
    let condition = status
        .get("conditions")?
        .as_array()?
        .iter()
        .find(|c| c["type"] == "Ready")?;
    Some(Ready {
        status: condition["status"].as_str()?.to_string(),
        reason: condition["reason"].as_str()?.to_string(),
        message: condition["message"].as_str()?.to_string(),
        observed_generation: status.get("observedGeneration")?.as_i64()?,
    })
}

async fn wait_status(api: &Api<DynamicObject>, name: &str, status: &str, reason: &str) -> Ready {
    poll_until(
        WAIT,
        &format!("{name} status Ready={status} ({reason})"),
        || {
            let api = api.clone();
            let name = name.to_string();
            async move {
                let object = api.get(&name).await.ok()?;
                ready_of(&object).filter(|r| r.status == status && r.reason == reason)
            }
        },
    )
    .await
}

fn kube_load_errors(metrics: &Metrics) -> u64 {
    metrics
        .policy_load_errors
        .with_label_values(&["kube"])
        .get()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_mode_against_a_real_apiserver() {
    let cluster = KubeLocal::up();
    let client = cluster.client().await;
    create_namespace(&client, NAMESPACE).await;

    let mut env = readiness_waits_for_every_watch(cluster, client).await;
    both_versions_appear_and_updates_and_deletes_follow(&env).await;
    broken_policy_is_kept_and_heals_when_its_secret_appears(&env).await;
    config_map_changes_the_settings(&env).await;
    trust_roots_break_and_heal_the_policies_naming_them(&env).await;
    remote_trust_roots_arrive_from_their_mirror(&mut env).await;
    serve_binary_in_cluster_mode(&env).await;
    cluster_credentials_follow_service_accounts_and_pull_secrets(&env).await;
    validate_policy_behind_a_real_webhook_configuration(&env).await;
}

/// The source starts before the CRDs exist: its ClusterImagePolicy watch fails, so it is not
/// ready; once the CRDs are installed the watch recovers and readiness turns on.
async fn readiness_waits_for_every_watch(cluster: KubeLocal, client: Client) -> Env {
    let index = Arc::new(PolicyIndex::default());
    let readiness = Readiness::new();
    let metrics = Metrics::unregistered().unwrap();
    let mirror = TufMirror::down();
    let tuf = TufRoots::new(TufSettings {
        retry_initial: Duration::from_millis(100),
        retry_max: Duration::from_millis(500),
        mirror_ca_pem: Some(mirror.ca_pem().as_bytes().to_vec()),
        ..TufSettings::default()
    })
    .unwrap();
    let mut load = LoadOptions::with_production_trust(Settings::default()).unwrap();
    load.remote_trust = RemoteTrust::Fetch(tuf.clone());
    let source = KubeSource::new(
        client.clone(),
        NAMESPACE,
        load,
        Arc::clone(&index),
        readiness.clone(),
        metrics.clone(),
    );
    let references = source.references();
    tokio::spawn(source.run());

    poll_until(WAIT, "a failed watch to be counted", || {
        let errors = kube_load_errors(&metrics);
        async move { (errors > 0).then_some(()) }
    })
    .await;
    assert!(
        !readiness.is_ready(),
        "ready although the ClusterImagePolicy watch has not listed"
    );
    assert_eq!(index.snapshot().generation(), 0, "nothing published yet");

    install_crds(&client).await;
    poll_until(
        Duration::from_secs(60),
        "readiness after the CRDs appear",
        || {
            let ready = readiness.is_ready();
            async move { ready.then_some(()) }
        },
    )
    .await;
    let snapshot = index.snapshot();
    assert!(snapshot.is_empty());
    assert!(snapshot.generation() >= 1);
    Env {
        cluster,
        client,
        index,
        readiness,
        metrics,
        references,
        tuf,
        mirror,
    }
}

/// v1alpha1 is the stored version with conversion None: one v1alpha1 watch sees objects written
/// as either version. Updates recompile, deletes remove, status carries observedGeneration, and
/// `kubectl get cip` (which asks for v1beta1) shows READY and MODE.
async fn both_versions_appear_and_updates_and_deletes_follow(env: &Env) {
    let client = &env.client;
    apply_cip(
        client,
        "v1alpha1",
        "alpha",
        json!({"images": [{"glob": "quay.io/alpha/**"}], "mode": "warn",
               "authorities": [{"static": {"action": "pass"}}]}),
    )
    .await;
    apply_cip(
        client,
        "v1beta1",
        "beta",
        json!({"images": [{"glob": "ghcr.io/beta/**"}], "mode": "enforce",
               "authorities": [{"static": {"action": "fail", "message": "first"}}]}),
    )
    .await;
    wait_entry(&env.index, "alpha", "compiled", is_ready).await;
    wait_entry(&env.index, "beta", "compiled", is_ready).await;
    assert!(env.readiness.is_ready());
    assert_eq!(env.metrics.policies_loaded.get(), 2);

    let alpha_api = cip_api(client, "v1alpha1");
    let ready = wait_status(&alpha_api, "beta", "True", "Compiled").await;
    assert_eq!(ready.message, "compiled");
    assert_eq!(ready.observed_generation, 1);

    // `kubectl get cip` reads v1beta1: the printer columns show the Ready status and the mode.
    let output = env.cluster.kubectl(&["get", "cip", "beta"], "");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{output:?}");
    let mut lines = stdout.lines();
    let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["NAME", "READY", "MODE", "AGE"], "{stdout}");
    let row: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(&row[..3], ["beta", "True", "enforce"], "{stdout}");

    // An update recompiles, and the status follows the generation.
    apply_cip(
        client,
        "v1beta1",
        "beta",
        json!({"images": [{"glob": "ghcr.io/renamed/**"}], "mode": "enforce",
               "authorities": [{"static": {"action": "fail", "message": "second"}}]}),
    )
    .await;
    poll_until(WAIT, "beta's new glob", || {
        let snapshot = env.index.snapshot();
        let matched = snapshot.matching(
            &["ghcr.io/renamed/app:v1".to_string()],
            &ResourceRef::pods(),
            &BTreeMap::new(),
        );
        async move { matched.iter().any(|e| e.name() == "beta").then_some(()) }
    })
    .await;
    poll_until(WAIT, "observedGeneration 2", || {
        let api = alpha_api.clone();
        async move {
            let ready = ready_of(&api.get("beta").await.ok()?)?;
            (ready.observed_generation == 2).then_some(())
        }
    })
    .await;

    // A delete removes it.
    alpha_api
        .delete("alpha", &DeleteParams::default())
        .await
        .unwrap();
    poll_until(WAIT, "alpha removed", || {
        let gone = entry(&env.index, "alpha").is_none();
        async move { gone.then_some(()) }
    })
    .await;
    assert_eq!(env.metrics.policies_loaded.get(), 1);
}

/// A policy whose Secret does not exist is in the index as Broken (its images are denied with
/// the error) and has Ready=False; the Secret's arrival heals it. Each change writes the status
/// exactly once, and unrelated events write nothing.
async fn broken_policy_is_kept_and_heals_when_its_secret_appears(env: &Env) {
    let client = &env.client;
    let api = cip_api(client, "v1alpha1");

    // Every event of `keyed`, from before it exists.
    let seen: Arc<Mutex<Vec<Option<Ready>>>> = Arc::default();
    let (listed_tx, listed_rx) = tokio::sync::oneshot::channel();
    let watching = {
        let seen = Arc::clone(&seen);
        let mut listed_tx = Some(listed_tx);
        let events = watcher::watcher(
            api.clone(),
            watcher::Config::default().fields("metadata.name=keyed"),
        )
        .default_backoff();
        tokio::spawn(async move {
            let mut events = std::pin::pin!(events);
            while let Some(event) = events.next().await {
                match event {
                    Ok(Event::InitDone) => {
                        if let Some(tx) = listed_tx.take() {
                            let _ = tx.send(());
                        }
                    }
                    Ok(Event::Apply(object)) => seen.lock().unwrap().push(ready_of(&object)),
                    _ => {}
                }
            }
        })
    };
    listed_rx.await.unwrap();

    apply_cip(
        client,
        "v1alpha1",
        "keyed",
        json!({"images": [{"glob": "registry.example.com/keyed/*"}],
               "authorities": [{"key": {"secretRef": {"name": "cosign-key"}}}]}),
    )
    .await;
    let broken = wait_entry(&env.index, "keyed", "broken", |e| !is_ready(e)).await;
    let expected = "invalid value: cosign-key: spec.authorities[0].key.secretRef.name\nsecret \"cosign-key\" not found";
    assert_eq!(broken_error(&broken), Some(expected));
    // Its glob is kept, so the images it covers are denied rather than falling through.
    let matched = env.index.snapshot().matching(
        &["registry.example.com/keyed/app:v1".to_string()],
        &ResourceRef::pods(),
        &BTreeMap::new(),
    );
    assert_eq!(matched.len(), 1);
    let status = wait_status(&api, "keyed", "False", "SecretMissing").await;
    assert_eq!(status.message, expected);

    apply_secret(
        client,
        NAMESPACE,
        json!({"apiVersion": "v1", "kind": "Secret",
               "metadata": {"name": "cosign-key", "namespace": NAMESPACE},
               "stringData": {"cosign.pub": PEM}}),
    )
    .await;
    wait_entry(&env.index, "keyed", "healed", is_ready).await;
    wait_status(&api, "keyed", "True", "Compiled").await;

    // Unrelated changes, then proof that the loop handled them: `later` is compiled and its
    // status written. `keyed` must not have been written again.
    apply_secret(
        client,
        NAMESPACE,
        json!({"apiVersion": "v1", "kind": "Secret",
               "metadata": {"name": "unrelated", "namespace": NAMESPACE},
               "stringData": {"x": "y"}}),
    )
    .await;
    apply_cip(
        client,
        "v1beta1",
        "later",
        json!({"images": [{"glob": "later.example/**"}],
               "authorities": [{"static": {"action": "pass"}}]}),
    )
    .await;
    wait_status(&api, "later", "True", "Compiled").await;
    watching.abort();
    let seen = seen.lock().unwrap().clone();
    let statuses: Vec<Option<(String, String)>> = seen
        .iter()
        .map(|r| r.as_ref().map(|r| (r.status.clone(), r.reason.clone())))
        .collect();
    assert_eq!(
        statuses,
        [
            None,
            Some(("False".to_string(), "SecretMissing".to_string())),
            Some(("True".to_string(), "Compiled".to_string())),
        ],
        "keyed must change exactly three times: created, status False, status True"
    );
}

/// `config-policy-controller`: no-match-policy changes the snapshot's settings, and
/// fail-on-empty-authorities recompiles the policies it affects.
async fn config_map_changes_the_settings(env: &Env) {
    let client = &env.client;
    assert_eq!(
        env.index.snapshot().settings().no_match,
        NoMatchPolicy::Deny
    );
    apply_cip(
        client,
        "v1alpha1",
        "no-authorities",
        json!({"images": [{"glob": "empty.example/**"}]}),
    )
    .await;
    let broken = wait_entry(&env.index, "no-authorities", "broken", |e| !is_ready(e)).await;
    assert_eq!(
        broken_error(&broken),
        Some("missing field(s): spec.authorities")
    );

    apply_config(
        client,
        json!({"no-match-policy": "allow", "enable-oci11": "true",
               "_example": "no-match-policy: warn\n"}),
    )
    .await;
    poll_until(WAIT, "no-match-policy allow", || {
        let no_match = env.index.snapshot().settings().no_match;
        async move { (no_match == NoMatchPolicy::Allow).then_some(()) }
    })
    .await;
    apply_config(
        client,
        json!({"no-match-policy": "warn", "fail-on-empty-authorities": "false"}),
    )
    .await;
    wait_entry(
        &env.index,
        "no-authorities",
        "loaded without authorities",
        is_ready,
    )
    .await;
    assert_eq!(
        env.index.snapshot().settings().no_match,
        NoMatchPolicy::Warn
    );
    // The admission endpoint sees the same setting.
    assert!(!env.references.load().validation.fail_on_empty_authorities);
    assert_eq!(
        env.references.load().validation.system_namespace.as_deref(),
        Some(NAMESPACE)
    );
}

/// A TrustRoot that cannot be used makes the policies naming it broken (TrustRootInvalid), and
/// gets Ready=False itself; fixing it heals them; deleting it breaks them again.
async fn trust_roots_break_and_heal_the_policies_naming_them(env: &Env) {
    let client = &env.client;
    let cips = cip_api(client, "v1alpha1");
    let trust_roots = trust_root_api(client);
    apply_trust_root(client, "corp", json!({})).await;
    apply_cip(
        client,
        "v1beta1",
        "corp-keyless",
        json!({"images": [{"glob": "corp.example/**"}],
               "authorities": [{"keyless": {"trustRootRef": "corp",
                   "identities": [{"issuer": "https://issuer.corp.example", "subject": "builder"}]}}]}),
    )
    .await;
    let status = wait_status(&cips, "corp-keyless", "False", "TrustRootInvalid").await;
    assert!(
        status
            .message
            .contains("TrustRoot corp is unusable: invalid: expected exactly one, got neither"),
        "{}",
        status.message
    );
    let trust_status = wait_status(&trust_roots, "corp", "False", "Invalid").await;
    assert!(
        trust_status
            .message
            .starts_with("expected exactly one, got neither"),
        "{}",
        trust_status.message
    );

    apply_trust_root(client, "corp", json!({"trustedRootJSON": PRODUCTION_ROOT})).await;
    wait_entry(&env.index, "corp-keyless", "healed", is_ready).await;
    wait_status(&trust_roots, "corp", "True", "Compiled").await;
    wait_status(&cips, "corp-keyless", "True", "Compiled").await;

    trust_roots
        .delete("corp", &DeleteParams::default())
        .await
        .unwrap();
    let status = wait_status(&cips, "corp-keyless", "False", "TrustRootMissing").await;
    assert!(
        status.message.contains("trustRootRef corp not found"),
        "{}",
        status.message
    );
}

/// A `remote` TrustRoot whose mirror is down: the TrustRoot is Ready=False (Fetching) with the
/// fetch error, the policy naming it broken; the mirror comes up and both turn Ready without any
/// change to the objects. Deleting the TrustRoot stops the fetching.
async fn remote_trust_roots_arrive_from_their_mirror(env: &mut Env) {
    let client = &env.client;
    let cips = cip_api(client, "v1alpha1");
    let trust_roots = trust_root_api(client);
    let repository = TufRepository::build(
        &TufKeys::generate(),
        &TufContent::trusted_root(PRODUCTION_ROOT),
    );
    env.mirror.publish(&repository);
    apply_trust_root(
        client,
        "tuf-corp",
        json!({"remote": {"root": support::signing::b64(repository.root_json()), "mirror": env.mirror.url()}}),
    )
    .await;
    apply_cip(
        client,
        "v1alpha1",
        "tuf-keyless",
        json!({"images": [{"glob": "tuf.example/**"}],
               "authorities": [{"keyless": {"trustRootRef": "tuf-corp",
                   "identities": [{"issuer": "https://issuer.corp.example", "subject": "builder"}]}}]}),
    )
    .await;
    let fetching = format!(
        "fetching the TUF repository from {}: attempt ",
        env.mirror.url()
    );
    let status = poll_until(WAIT, "tuf-corp Fetching with a failed attempt", || {
        let trust_roots = trust_roots.clone();
        let fetching = fetching.clone();
        async move {
            let object = trust_roots.get("tuf-corp").await.ok()?;
            ready_of(&object).filter(|r| r.reason == "Fetching" && r.message.starts_with(&fetching))
        }
    })
    .await;
    assert_eq!(status.status, "False");
    assert!(
        status.message.contains("connection refused"),
        "{}",
        status.message
    );
    let policy = wait_status(&cips, "tuf-keyless", "False", "TrustRootInvalid").await;
    assert!(
        policy
            .message
            .contains("TrustRoot tuf-corp is unusable: fetching the TUF repository"),
        "{}",
        policy.message
    );
    let broken = wait_entry(&env.index, "tuf-keyless", "broken", |e| !is_ready(e)).await;
    assert!(broken_error(&broken).unwrap().contains(&fetching));

    env.mirror.up().await;
    wait_entry(
        &env.index,
        "tuf-keyless",
        "ready once the mirror is up",
        is_ready,
    )
    .await;
    wait_status(&trust_roots, "tuf-corp", "True", "Compiled").await;
    wait_status(&cips, "tuf-keyless", "True", "Compiled").await;
    assert_eq!(env.tuf.following(), 1);

    trust_roots
        .delete("tuf-corp", &DeleteParams::default())
        .await
        .unwrap();
    wait_status(&cips, "tuf-keyless", "False", "TrustRootMissing").await;
    poll_until(WAIT, "the fetcher to stop following tuf-corp", || {
        let following = env.tuf.following();
        async move { (following == 0).then_some(()) }
    })
    .await;
    cips.delete("tuf-keyless", &DeleteParams::default())
        .await
        .unwrap();
}

/// `verity serve --kubeconfig`: ready after the sync, admission decided from the cluster's
/// policies (a broken one denies its images), `/validate-policy` mounted; without any policy
/// source it refuses to start.
async fn serve_binary_in_cluster_mode(env: &Env) {
    let neither = std::process::Command::new(VERITY)
        .args(["serve", "--tls-cert", "c", "--tls-key", "k"])
        .env_remove("VERITY_POLICIES")
        .env_remove("VERITY_KUBECONFIG")
        .env_remove("KUBERNETES_SERVICE_HOST")
        .output()
        .unwrap();
    assert_eq!(neither.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&neither.stderr)
            .contains("error: no policy source: give --policies"),
        "{neither:?}"
    );

    let dir = tempfile::tempdir().unwrap();
    let served = ServedVerity::spawn(dir.path(), |command| {
        command
            .args(["--namespace", NAMESPACE])
            .env("VERITY_KUBECONFIG", env.cluster.kubeconfig())
            .env_remove("VERITY_POLICIES");
    });
    served.wait_ready(WAIT).await;
    let metrics = served.metrics().await;
    assert!(metrics.contains("verity_policies_loaded "), "{metrics}");
    let post = |path: &'static str, review: Value| {
        let served = &served;
        async move { served.post(path, &review).await }
    };

    let denied = post("/validate", pod_review("ghcr.io/renamed/app:v1")).await;
    assert_eq!(
        denied["status"]["message"],
        "validation failed: failed policy: beta: spec.containers[0].image\nghcr.io/renamed/app:v1 disallowed by static policy: second"
    );
    let broken = post("/validate", pod_review("corp.example/app:v1")).await;
    assert_eq!(broken["allowed"], false);
    assert!(
        broken["status"]["message"]
            .as_str()
            .unwrap()
            .contains("policy corp-keyless is invalid and denies every image it matches"),
        "{broken}"
    );
    // config-policy-controller says warn for images no policy matches.
    let unmatched = post("/validate", pod_review("quay.io/nobody/app:v1")).await;
    assert_eq!(unmatched["allowed"], true, "{unmatched}");

    let mut policy_review = pod_review("x");
    policy_review["request"]["kind"] =
        json!({"group": "policy.sigstore.dev", "version": "v1beta1", "kind": "ClusterImagePolicy"});
    policy_review["request"]["object"] = json!({
        "apiVersion": "policy.sigstore.dev/v1beta1", "kind": "ClusterImagePolicy",
        "metadata": {"name": "x"},
        "spec": {"images": [{"glob": "x/**"}], "authorities": [{"key": {"secretRef": {"name": "cosign-key"}}}]}
    });
    let admitted = post("/validate-policy", policy_review).await;
    assert_eq!(admitted["allowed"], true, "{admitted}");
    assert!(admitted.get("warnings").is_none(), "{admitted}");
}

/// The cluster CredentialSource: pod imagePullSecrets before the service account's, both
/// secret types, Opaque secrets ignored, later changes seen through the watch.
async fn cluster_credentials_follow_service_accounts_and_pull_secrets(env: &Env) {
    let client = &env.client;
    create_namespace(client, "apps").await;
    let config_json = |registry: &str, user: &str| {
        json!({"auths": {registry: {"username": user, "password": "pw"}}}).to_string()
    };
    let secret = |name: &str, secret_type: &str, key: &str, document: String| {
        json!({"apiVersion": "v1", "kind": "Secret", "type": secret_type,
               "metadata": {"name": name, "namespace": "apps"},
               "stringData": {key: document}})
    };
    apply_secret(
        client,
        "apps",
        secret(
            "pod-secret",
            "kubernetes.io/dockerconfigjson",
            ".dockerconfigjson",
            config_json("registry.a.example", "pod"),
        ),
    )
    .await;
    apply_secret(
        client,
        "apps",
        secret(
            "sa-secret",
            "kubernetes.io/dockerconfigjson",
            ".dockerconfigjson",
            json!({"auths": {
                "registry.a.example": {"username": "sa", "password": "pw"},
                "registry.b.example": {"username": "sa", "password": "pw"}}})
            .to_string(),
        ),
    )
    .await;
    apply_secret(
        client,
        "apps",
        secret(
            "legacy",
            "kubernetes.io/dockercfg",
            ".dockercfg",
            json!({"quay.io": {"username": "legacy", "password": "pw"}}).to_string(),
        ),
    )
    .await;
    apply_secret(
        client,
        "apps",
        secret(
            "opaque",
            "Opaque",
            ".dockerconfigjson",
            config_json("opaque.example", "opaque"),
        ),
    )
    .await;
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), "apps");
    let account: ServiceAccount = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "ServiceAccount",
        "metadata": {"name": "builder", "namespace": "apps"},
        "imagePullSecrets": [{"name": "sa-secret"}, {"name": "legacy"}, {"name": "opaque"}]
    }))
    .unwrap();
    accounts
        .create(&PostParams::default(), &account)
        .await
        .unwrap();

    let (credentials, driver) = ClusterCredentials::watch(client.clone());
    let driving = tokio::spawn(driver);
    tokio::time::timeout(WAIT, credentials.wait_synced())
        .await
        .expect("credential watches did not sync")
        .unwrap();

    let workload = WorkloadCredentials {
        namespace: Some("apps".into()),
        service_account: Some("builder".into()),
        image_pull_secrets: vec!["missing".into(), "pod-secret".into()],
    };
    let username =
        |keychain: &verity::registry::Keychain, registry: &str| match keychain.lookup(registry) {
            verity::registry::Credential::Basic { username, .. } => Some(username.clone()),
            _ => None,
        };
    let keychain = credentials.workload_keychain(&workload);
    assert_eq!(
        username(&keychain, "registry.a.example").as_deref(),
        Some("pod")
    );
    assert_eq!(
        username(&keychain, "registry.b.example").as_deref(),
        Some("sa")
    );
    assert_eq!(username(&keychain, "quay.io").as_deref(), Some("legacy"));
    assert_eq!(
        username(&keychain, "opaque.example"),
        None,
        "only dockerconfigjson and dockercfg secrets count"
    );
    // Named secrets (signaturePullSecrets) are read from the workload's namespace only.
    let named = credentials.named_keychain(Some("apps"), &["sa-secret".to_string()]);
    assert_eq!(
        username(&named, "registry.a.example").as_deref(),
        Some("sa")
    );
    assert!(
        credentials
            .named_keychain(Some("default"), &["sa-secret".to_string()])
            .is_empty()
    );

    // A secret created later is seen without any request-time GET.
    apply_secret(
        client,
        "apps",
        secret(
            "late",
            "kubernetes.io/dockerconfigjson",
            ".dockerconfigjson",
            config_json("late.example", "late"),
        ),
    )
    .await;
    poll_until(WAIT, "the late pull secret", || {
        let keychain = credentials.named_keychain(Some("apps"), &["late".to_string()]);
        let found = username(&keychain, "late.example");
        async move { found }
    })
    .await;
    driving.abort();
}

/// `/validate-policy` served by verity's own server, registered with the apiserver: real
/// AdmissionReviews, denials in the reference format as kubectl shows them, warnings for
/// references that do not exist yet.
async fn validate_policy_behind_a_real_webhook_configuration(env: &Env) {
    let (cert, key) = env.cluster.cert("verity", &["IP:127.0.0.1"]);
    let metrics = Metrics::unregistered().unwrap();
    let router = policy_webhook::router(
        PolicyReferences::Cluster(Arc::clone(&env.references)),
        WebhookSettings::default(),
        metrics.clone(),
    );
    let localhost: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let config = ServerConfig {
        addr: localhost,
        admin_addr: localhost,
        ..ServerConfig::new(cert, key)
    };
    let admin = Admin {
        readiness: Readiness::new(),
        metrics,
    };
    let server = Server::bind(config, router, admin).await.unwrap();
    let port = server.webhook_addr().port();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(server.run(async move {
        let _ = stopped.await;
    }));

    let webhook = format!(
        r#"apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata: {{name: validating.clusterimagepolicy.sigstore.dev}}
webhooks:
- name: validating.clusterimagepolicy.sigstore.dev
  clientConfig: {{url: "https://127.0.0.1:{port}/validate-policy", caBundle: "{ca}"}}
  rules:
  - {{apiGroups: [policy.sigstore.dev], apiVersions: [v1alpha1, v1beta1], operations: [CREATE, UPDATE], resources: [clusterimagepolicies, trustroots]}}
  failurePolicy: Fail
  sideEffects: None
  admissionReviewVersions: [v1]
  timeoutSeconds: 10
"#,
        ca = env.cluster.ca_bundle()
    );
    let output = env.cluster.kubectl(&["apply", "-f", "-"], &webhook);
    assert!(output.status.success(), "{output:?}");

    let bad = r#"apiVersion: policy.sigstore.dev/v1beta1
kind: ClusterImagePolicy
metadata: {name: garbage-mode}
spec:
  images: [{glob: "ghcr.io/**"}]
  mode: garbage
  authorities: [{static: {action: pass}}]
"#;
    // The apiserver picks the configuration up through an informer: poll until it applies.
    let denied = poll_until(WAIT, "the webhook configuration to take effect", || {
        let output = env.cluster.kubectl(&["apply", "-f", "-"], bad);
        async move {
            let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
            stderr
                .contains("denied the request")
                .then_some((output, stderr))
        }
    })
    .await;
    let (output, stderr) = denied;
    assert!(!output.status.success());
    assert!(
        stderr.contains(
            "Error from server (BadRequest): error when creating \"STDIN\": admission webhook \"validating.clusterimagepolicy.sigstore.dev\" denied the request: validation failed: invalid value: garbage: spec.mode\nunsupported mode"
        ),
        "{stderr}"
    );

    // A Secret that does not exist yet: admitted, with a one-line warning saying what happens.
    let ahead = r#"apiVersion: policy.sigstore.dev/v1alpha1
kind: ClusterImagePolicy
metadata: {name: ahead-of-its-secret}
spec:
  images: [{glob: "ahead.example/**"}]
  authorities: [{key: {secretRef: {name: not-yet}}}]
"#;
    let output = env.cluster.kubectl(&["apply", "-f", "-"], ahead);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{output:?}");
    assert!(
        stderr.contains(
            "Warning: invalid value: not-yet: spec.authorities[0].key.secretRef.name secret \"not-yet\" not found; the policy is admitted, but until this resolves it loads as broken and denies every image it matches"
        ),
        "{stderr}"
    );
    // It loads as broken, exactly as the endpoint said.
    wait_entry(&env.index, "ahead-of-its-secret", "broken", |e| {
        !is_ready(e)
    })
    .await;

    // The secret it names exists now: admitted without warnings. A secretRef in another
    // namespace is the reference's error.
    let keyed = r#"apiVersion: policy.sigstore.dev/v1alpha1
kind: ClusterImagePolicy
metadata: {name: keyed}
spec:
  images: [{glob: "registry.example.com/keyed/*"}]
  authorities: [{key: {secretRef: {name: cosign-key}}}]
"#;
    let output = env.cluster.kubectl(&["apply", "-f", "-"], keyed);
    assert!(output.status.success(), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("Warning: invalid"), "{stderr}");

    // A TrustRoot with none of its sources.
    let trust_root = r#"apiVersion: policy.sigstore.dev/v1alpha1
kind: TrustRoot
metadata: {name: empty}
spec: {}
"#;
    let output = env.cluster.kubectl(&["apply", "-f", "-"], trust_root);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains("denied the request: validation failed: expected exactly one, got neither: spec.remote, spec.repository, spec.sigstoreKeys"),
        "{stderr}"
    );

    // Deletes are not judged.
    let output = env
        .cluster
        .kubectl(&["delete", "cip", "ahead-of-its-secret"], "");
    assert!(output.status.success(), "{output:?}");

    let _ = stop.send(());
    serving.await.unwrap().unwrap();
}
