//! verity's validating webhook as `serve` builds it (router, [`Admission`], an online
//! [`Verifier`] with a real registry client) over policies given as YAML, for tests that admit
//! images whose signatures live in a [`super::registry::TestRegistry`] or a stub.
//!
//! ```text
//! let webhook = TestWebhook::start(&policies, WebhookConfig::for_registry(registry.host())
//!     .trusted_root_json(&trusted_root_json(&fulcio, &rekor, Some(&ct))));
//! let answer = webhook.admit_pod(&[&format!("{}/app@{digest}", registry.host())]).await;
//! answer.assert_allowed();
//! let text = answer.authority_failure("signature keyless validation failed for authority ci for ");
//! ```
//!
//! The default trust root is what `--trust-root` would give (`LoadOptions.default_trust`); TrustRoot
//! documents in the YAML are loaded as in file mode.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use http::Request;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

use verity::admission::Admission;
use verity::metrics::Metrics;
use verity::policy::index::{NoMatchPolicy, PolicyIndex, Settings};
use verity::policy::source::{
    Documents, LoadError, LoadOptions, RemoteTrust, build_snapshot, pull_credentials,
};
use verity::policy::validate::ValidationOptions;
use verity::registry::{Keychain, RegistryClient, RegistryConfig};

use verity::server::webhook::{WebhookSettings, router};
use verity::verify::trust::TrustMaterial;
use verity::verify::{CacheSettings, Verifier, VerifierConfig};

/// How the webhook reaches registries and what it trusts.
#[derive(Clone, Debug)]
pub struct WebhookConfig {
    /// Trust material for authorities without `trustRootRef` (`--trust-root`).
    pub default_trust: TrustMaterial,
    /// How registries are reached (`--insecure-registry`, `--registry-ca`, `--registry-timeout`).
    pub registry: RegistryConfig,
    /// `--docker-config` credentials.
    pub docker_config: Keychain,
    /// Limits of the webhook endpoints (`--request-timeout`, `--max-in-flight`).
    pub webhook: WebhookSettings,
    /// What an image no policy matches gets.
    pub no_match: NoMatchPolicy,
    /// The apiserver's `?timeout=` of every review (verity answers within it).
    pub review_timeout: Duration,
}

impl WebhookConfig {
    /// Plain HTTP to `host`, the embedded production trust root, no-match deny, registry
    /// timeout 5 s, reviews with a 10 s apiserver timeout.
    pub fn for_registry(host: &str) -> Self {
        Self::with_registry_config(RegistryConfig {
            insecure_registries: vec![host.to_string()],
            request_timeout: Duration::from_secs(5),
            ..RegistryConfig::default()
        })
    }

    /// Registries reached as `registry` says (e.g. `TestRegistry::client_config()`, which
    /// trusts a TLS registry's CA).
    pub fn with_registry_config(registry: RegistryConfig) -> Self {
        WebhookConfig {
            default_trust: TrustMaterial::production().unwrap(),
            registry,
            docker_config: Keychain::anonymous(),
            webhook: WebhookSettings::default(),
            no_match: NoMatchPolicy::Deny,
            review_timeout: Duration::from_secs(10),
        }
    }

    pub fn default_trust(mut self, trust: TrustMaterial) -> Self {
        self.default_trust = trust;
        self
    }

    pub fn docker_config(mut self, keychain: Keychain) -> Self {
        self.docker_config = keychain;
        self
    }

    pub fn webhook(mut self, settings: WebhookSettings) -> Self {
        self.webhook = settings;
        self
    }

    pub fn no_match(mut self, no_match: NoMatchPolicy) -> Self {
        self.no_match = no_match;
        self
    }

    /// The default trust root from a `trusted_root.json`, as `--trust-root FILE` reads it.
    pub fn trusted_root_json(mut self, json: &str) -> Self {
        self.default_trust = TrustMaterial::from_trusted_root_json(json.as_bytes())
            .unwrap_or_else(|e| panic!("the test trusted_root.json does not load: {e}\n{json}"));
        self
    }

    pub fn registry_timeout(mut self, timeout: Duration) -> Self {
        self.registry.request_timeout = timeout;
        self
    }

    pub fn review_timeout(mut self, timeout: Duration) -> Self {
        self.review_timeout = timeout;
        self
    }
}

/// The webhook router over one policy snapshot, with a fresh verifier (and so empty caches).
pub struct TestWebhook {
    router: axum::Router,
    review_timeout: Duration,
    /// The load warnings (`verity validate` prints the same), one line each.
    pub warnings: Vec<String>,
    pub metrics: Metrics,
}

impl TestWebhook {
    /// Loads `policies` (ClusterImagePolicy, TrustRoot and Secret documents); panics with the
    /// load errors when they do not load.
    pub fn start(policies: &str, config: WebhookConfig) -> Self {
        Self::try_start(policies, config)
            .unwrap_or_else(|e| panic!("the test policies do not load: {e}\n{policies}"))
    }

    /// [`TestWebhook::start`], returning the load errors.
    pub fn try_start(policies: &str, config: WebhookConfig) -> Result<Self, LoadError> {
        let mut documents = Documents::default();
        documents.add_yaml("test-policies.yaml", policies)?;
        let load = LoadOptions {
            settings: Settings {
                no_match: config.no_match,
            },
            validation: ValidationOptions::default(),
            default_trust: Arc::new(config.default_trust),
            remote_trust: RemoteTrust::Unfetched,
        };
        let (snapshot, warnings) = build_snapshot(&documents, &load, 1)?;
        let credentials = pull_credentials(&documents)?;
        let metrics = Metrics::unregistered().unwrap();
        let client = RegistryClient::new(config.registry, Some(metrics.clone())).unwrap();
        let verifier = Verifier::new(VerifierConfig {
            registry: client,
            docker_config: config.docker_config,
            credentials: Arc::new(credentials),
            cache: CacheSettings::default(),
            metrics: metrics.clone(),
        });
        let admission = Admission::new(
            Arc::new(PolicyIndex::new(snapshot)),
            verifier,
            metrics.clone(),
        );
        Ok(TestWebhook {
            router: router(admission, config.webhook, metrics.clone()),
            review_timeout: config.review_timeout,
            warnings: warnings.iter().map(ToString::to_string).collect(),
            metrics,
        })
    }

    /// POSTs `review` to `/validate` and returns the AdmissionReview's `response`.
    pub async fn review(&self, review: &Value) -> Value {
        self.post("validate", review, self.review_timeout).await
    }

    /// As [`TestWebhook::review`], with the apiserver's `?timeout=` set to `timeout`.
    pub async fn review_with_timeout(&self, review: &Value, timeout: Duration) -> Value {
        self.post("validate", review, timeout).await
    }

    /// POSTs `review` to `/mutate` and returns the AdmissionReview's `response`.
    pub async fn mutate(&self, review: &Value) -> Value {
        self.post("mutate", review, self.review_timeout).await
    }

    async fn post(&self, endpoint: &str, review: &Value, timeout: Duration) -> Value {
        let request = Request::post(format!("/{endpoint}?timeout={}ms", timeout.as_millis()))
            .header("content-type", "application/json")
            .body(Body::from(serde_json::to_vec(review).unwrap()))
            .unwrap();
        let response = self.router.clone().oneshot(request).await.unwrap();
        assert_eq!(response.status(), 200, "the webhook answers in-band");
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let answer: Value = serde_json::from_slice(&body).unwrap();
        answer["response"].clone()
    }

    /// Admits a Pod `web` in namespace `default` running `images`; also reports how long the
    /// answer took.
    pub async fn admit_pod(&self, images: &[&str]) -> Admitted {
        let started = Instant::now();
        let response = self.review(&pod_review(images)).await;
        Admitted {
            allowed: response["allowed"].as_bool().unwrap_or_else(|| {
                panic!("the answer has no boolean allowed: {response}");
            }),
            message: response["status"]["message"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            elapsed: started.elapsed(),
            response,
        }
    }
}

/// An AdmissionReview (admission.k8s.io/v1) creating Pod `default/web` with one container per
/// image (`c0`, `c1`, …).
pub fn pod_review(images: &[&str]) -> Value {
    let containers: Vec<Value> = images
        .iter()
        .enumerate()
        .map(|(i, image)| json!({"name": format!("c{i}"), "image": image}))
        .collect();
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "00000000-0000-0000-0000-0000000000aa",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "requestKind": {"group": "", "version": "v1", "kind": "Pod"},
            "requestResource": {"group": "", "version": "v1", "resource": "pods"},
            "name": "web",
            "namespace": "default",
            "operation": "CREATE",
            "userInfo": {"username": "kubernetes-admin", "groups": ["system:masters"]},
            "object": {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
                "spec": {"containers": containers},
            },
            "oldObject": null,
            "dryRun": false,
        },
    })
}

/// A ClusterImagePolicy document (with its leading `---`): `spec` is YAML indented as the body
/// of `spec:` would be at column 0.
pub fn cluster_image_policy(name: &str, spec: &str) -> String {
    let body: Vec<String> = spec.lines().map(|line| format!("  {line}")).collect();
    format!(
        "---\napiVersion: policy.sigstore.dev/v1alpha1\nkind: ClusterImagePolicy\nmetadata: {{name: {name}}}\nspec:\n{}\n",
        body.join("\n")
    )
}

/// The webhook's answer to one review.
#[derive(Clone, Debug)]
pub struct Admitted {
    pub allowed: bool,
    /// `status.message` (empty when allowed).
    pub message: String,
    pub elapsed: Duration,
    /// The whole AdmissionReview `response`.
    pub response: Value,
}

impl Admitted {
    #[track_caller]
    pub fn assert_allowed(&self) {
        assert!(
            self.allowed,
            "expected allowed, got denied: {}",
            self.message
        );
    }

    /// Asserts a denial and returns its message.
    #[track_caller]
    pub fn denied(&self) -> &str {
        assert!(
            !self.allowed,
            "expected a denial, got allowed: {}",
            self.response
        );
        &self.message
    }

    /// Asserts a denial and returns the part of its message from `prefix` (an authority's
    /// failure opening, e.g. `signature keyless validation failed for authority ci for …: `) to
    /// the end of that line.
    #[track_caller]
    pub fn authority_failure(&self, prefix: &str) -> &str {
        let message = self.denied();
        let start = message
            .find(prefix)
            .unwrap_or_else(|| panic!("the denial does not contain {prefix:?}: {message}"));
        let rest = &message[start..];
        rest.split('\n').next().unwrap_or(rest)
    }
}
