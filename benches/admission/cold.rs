//! Cold verification latency: one AdmissionReview of a never-seen image digest through the whole
//! in-process admission path (webhook router → admission → policy match → tag resolution →
//! signature discovery → verification → decision), against the registry floor: the same
//! HEAD manifest + GET `.sig` manifest + GET signature blob done by a plain HTTP client.
//!
//! Every series runs on the same images in the same loop, in rotating order, so drift and noise
//! of the shared machine hit them alike. A breakdown pass then times the pieces of one cold
//! verification separately: tag resolution, discovery (verity's registry client), and the
//! signature checks alone (CPU only).

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use bytes::Bytes;
use http::Request;
use http_body_util::BodyExt as _;
use serde_json::Value;
use tower::ServiceExt as _;
use verity::admission::{Admission, review};
use verity::image::{Digest, ImageRef, Repository};
use verity::metrics::Metrics;
use verity::policy::compiled::AuthorityKind;
use verity::policy::index::{PolicyEntry, PolicyIndex};
use verity::registry::{DocumentCredentials, Keychain, RegistryClient, RegistryConfig};
use verity::server::webhook::{WebhookSettings, router};
use verity::verify::discovery::SignatureSite;
use verity::verify::discovery::{Discovered, SignatureVerdict};
use verity::verify::keyed;
use verity::verify::keyless;
use verity::verify::{CacheSettings, Verifier, VerifierConfig};

use crate::fixture::{self, Kind, SignedImage};
use crate::metric;
use crate::stats::Samples;

/// Accept header of a tag → digest HEAD, as registry clients send it.
const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

/// The results of one kind of signature (key or keyless).
pub struct ColdResult {
    /// HEAD + GET `.sig` manifest + GET blob, plain client.
    pub floor: Samples,
    /// A full admission of a never-seen digest.
    pub verity: Samples,
    /// The same admission again right after (every cache warm).
    pub cached: Samples,
    /// Decoding its AdmissionReview alone (part of `cached`; the null webhook does it too).
    pub decode: Samples,
    /// Breakdown: verity's registry client resolving the tag (HEAD).
    pub resolve: Samples,
    /// Breakdown: verity's signature discovery (`.sig` manifest, then blob).
    pub discover: Samples,
    /// Breakdown: the signature checks on what discovery returned, CPU only.
    pub judge: Samples,
    /// Registry requests per cold admission, by verity's own metric, by operation.
    pub requests_per_admission: Vec<(String, f64)>,
    /// Size of the `.sig` manifest and of the signature blob (bytes).
    pub manifest_bytes: usize,
    pub blob_bytes: usize,
}

/// The in-process admission stack and the clients the series use.
pub struct Cold {
    router: Router,
    metrics: Metrics,
    index: Arc<PolicyIndex>,
    /// verity's registry client for the breakdown (its own connection pool, no metrics).
    client: RegistryClient,
    /// The plain HTTP client of the floor.
    http: reqwest::Client,
    base_url: String,
    host: String,
}

impl Cold {
    pub fn new(host: &str, index: Arc<PolicyIndex>) -> Self {
        let metrics = Metrics::unregistered().expect("metrics");
        let config = || RegistryConfig {
            insecure_registries: vec![host.to_string()],
            request_timeout: Duration::from_secs(15),
            ..RegistryConfig::default()
        };
        let verifier = Verifier::new(VerifierConfig {
            registry: RegistryClient::new(config(), Some(metrics.clone())).expect("client"),
            docker_config: Keychain::anonymous(),
            credentials: Arc::new(DocumentCredentials::default()),
            cache: CacheSettings::default(),
            metrics: metrics.clone(),
        });
        let admission = Admission::new(Arc::clone(&index), verifier, metrics.clone());
        Cold {
            router: router(admission, WebhookSettings::default(), metrics.clone()),
            metrics,
            index,
            client: RegistryClient::new(config(), None).expect("client"),
            http: reqwest::Client::new(),
            base_url: format!("http://{host}"),
            host: host.to_string(),
        }
    }

    /// Runs every series over `images`; the first `warmup` are measured but not recorded.
    pub async fn run(&self, images: &[SignedImage], warmup: usize, policy: &str) -> ColdResult {
        let bodies: Vec<Bytes> = images
            .iter()
            .enumerate()
            .map(|(i, image)| {
                Bytes::from(fixture::review(
                    Kind::Pod,
                    &format!("cold-{i}"),
                    &image.reference,
                ))
            })
            .collect();
        let mut result = ColdResult {
            floor: Samples::default(),
            verity: Samples::default(),
            cached: Samples::default(),
            decode: Samples::default(),
            resolve: Samples::default(),
            discover: Samples::default(),
            judge: Samples::default(),
            requests_per_admission: Vec::new(),
            manifest_bytes: 0,
            blob_bytes: 0,
        };
        let before = metric::parse(&self.metrics.render());
        let mut admissions = 0usize;
        for (i, (image, body)) in images.iter().zip(&bodies).enumerate() {
            let record = i >= warmup;
            // Rotate the order so that no series always runs first (or after another warmed the
            // registry's file cache for this image).
            for step in 0..2 {
                match (i + step) % 2 {
                    0 => {
                        let elapsed = self.floor(image).await;
                        if record {
                            result.floor.push(elapsed);
                        }
                    }
                    _ => {
                        let elapsed = admit(&self.router, body.clone()).await;
                        admissions += 1;
                        // The same admission again at once, while its tag → digest entry (30 s)
                        // is surely alive: every cache warm.
                        let again = admit(&self.router, body.clone()).await;
                        let started = Instant::now();
                        std::hint::black_box(review::decode(body).expect("AdmissionReview"));
                        let decoding = started.elapsed();
                        if record {
                            result.verity.push(elapsed);
                            result.cached.push(again);
                            result.decode.push(decoding);
                        }
                    }
                }
            }
        }
        let after = metric::parse(&self.metrics.render());
        result.requests_per_admission = metric::delta_by_label(
            &before,
            &after,
            "verity_registry_requests_total",
            "operation",
        )
        .into_iter()
        .map(|(operation, count)| (operation, count / admissions as f64))
        .collect();
        let misses = metric::delta(
            &before,
            &after,
            "verity_cache_requests_total",
            &[("cache", "verification"), ("result", "miss")],
        );
        assert_eq!(
            misses as usize, admissions,
            "every cold admission must be a verification cache miss"
        );

        // Breakdown of one cold verification, piece by piece.
        let authority = self.authority(policy);
        let keychain = Keychain::anonymous();
        for (i, image) in images.iter().enumerate() {
            let record = i >= warmup;
            let reference = ImageRef::parse(&image.reference).expect("image reference");
            let started = Instant::now();
            let digest = self
                .client
                .resolve_digest(&reference, &keychain)
                .await
                .expect("resolve");
            let resolved = started.elapsed();
            assert_eq!(digest, image.digest);
            let site = SignatureSite {
                repository: Repository::parse(&format!("{}/{}", self.host, image.repo))
                    .expect("repository"),
                tag_prefix: String::new(),
            };
            let started = Instant::now();
            // What a cold verification reads when a legacy signature passes (referrers are
            // listed only when none does).
            let discovered = Discovered::legacy(&self.client, &site, &digest, &keychain)
                .await
                .expect("discover");
            let discovering = started.elapsed();
            let started = Instant::now();
            let accepted = match &authority {
                AuthorityKind::Key(key) => {
                    matches!(
                        keyed::check(key, &digest, &discovered),
                        SignatureVerdict::Accepted(_)
                    )
                }
                AuthorityKind::Keyless(keyless) => matches!(
                    keyless::check(keyless, &digest, &discovered),
                    SignatureVerdict::Accepted(_)
                ),
                AuthorityKind::Static { .. } => false,
            };
            let judging = started.elapsed();
            assert!(accepted, "the signature of {} must verify", image.reference);
            if record {
                result.resolve.push(resolved);
                result.discover.push(discovering);
                result.judge.push(judging);
            }
        }
        if let Some(image) = images.first() {
            let (manifest, blob) = self.sizes(image).await;
            result.manifest_bytes = manifest;
            result.blob_bytes = blob;
        }
        result
    }

    /// The single authority of the policy named `name`.
    fn authority(&self, name: &str) -> AuthorityKind {
        let snapshot = self.index.snapshot();
        for entry in snapshot.policies() {
            if let PolicyEntry::Ready(policy) = entry.as_ref()
                && policy.name == name
            {
                return policy.authorities[0].kind.clone();
            }
        }
        panic!("no policy {name}");
    }

    /// The floor: what any verifier must fetch, one request after the other.
    async fn floor(&self, image: &SignedImage) -> Duration {
        let started = Instant::now();
        let base = format!("{}/v2/{}", self.base_url, image.repo);
        let head = self
            .http
            .head(format!("{base}/manifests/{}", image.tag))
            .header("accept", MANIFEST_ACCEPT)
            .send()
            .await
            .expect("HEAD manifest");
        assert!(head.status().is_success(), "HEAD: {}", head.status());
        let digest = Digest::parse(
            head.headers()
                .get("docker-content-digest")
                .and_then(|v| v.to_str().ok())
                .expect("Docker-Content-Digest"),
        )
        .expect("digest");
        let signatures = async {
            let manifest = self
                .http
                .get(format!("{base}/manifests/{}.sig", digest.tag_stem()))
                .header("accept", OCI_MANIFEST)
                .send()
                .await
                .expect("GET .sig manifest")
                .bytes()
                .await
                .expect(".sig manifest body");
            let manifest: Value = serde_json::from_slice(&manifest).expect(".sig manifest JSON");
            let layer = manifest["layers"][0]["digest"]
                .as_str()
                .expect("signature layer");
            let blob = self
                .http
                .get(format!("{base}/blobs/{layer}"))
                .send()
                .await
                .expect("GET blob")
                .bytes()
                .await
                .expect("blob body");
            assert!(!blob.is_empty());
        };
        signatures.await;
        started.elapsed()
    }

    async fn sizes(&self, image: &SignedImage) -> (usize, usize) {
        let base = format!("{}/v2/{}", self.base_url, image.repo);
        let manifest = self
            .http
            .get(format!("{base}/manifests/{}.sig", image.digest.tag_stem()))
            .header("accept", OCI_MANIFEST)
            .send()
            .await
            .expect("GET .sig")
            .bytes()
            .await
            .expect("body");
        let parsed: Value = serde_json::from_slice(&manifest).expect("JSON");
        let blob = parsed["layers"][0]["size"].as_u64().unwrap_or_default() as usize;
        (manifest.len(), blob)
    }
}

/// One AdmissionReview through the webhook router; the time until the answer's body is read.
pub async fn admit(router: &Router, body: Bytes) -> Duration {
    let request = Request::post("/validate?timeout=10s")
        .header("content-type", "application/json")
        .body(Body::from(body))
        .expect("request");
    let started = Instant::now();
    let response = router.clone().oneshot(request).await.expect("infallible");
    let status = response.status();
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    let elapsed = started.elapsed();
    assert_eq!(status, 200);
    let answer: Value = serde_json::from_slice(&bytes).expect("AdmissionReview JSON");
    assert_eq!(
        answer["response"]["allowed"], true,
        "the benchmark image must be admitted: {answer}"
    );
    elapsed
}
