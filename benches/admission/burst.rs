//! Registry requests per admission for a rollout: a Deployment, its ReplicaSet and 50 Pods of
//! the same image, counted at a [`CountingProxy`] in front of the registry. (The assertion that
//! this stays within bounds belongs to the test suite; this reports the count.)

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use verity::admission::Admission;
use verity::metrics::Metrics;
use verity::policy::index::PolicyIndex;
use verity::registry::{DocumentCredentials, Keychain, RegistryClient, RegistryConfig};
use verity::server::webhook::{WebhookSettings, router};
use verity::verify::{CacheSettings, Verifier, VerifierConfig};

use crate::cold::admit;
use crate::fixture::{Kind, review};
use crate::metric;
use crate::support::registry::CountingProxy;

/// One rollout scenario's counts.
pub struct BurstResult {
    pub scenario: &'static str,
    pub admissions: usize,
    /// Requests seen by the proxy, with how many times each `METHOD /path` was sent.
    pub requests: Vec<(String, usize)>,
    pub total_requests: usize,
    /// Verification cache lookups: computed (miss), joined an in-flight one (shared), hit.
    pub verification: [u64; 3],
    /// Tag → digest cache lookups, the same way.
    pub resolution: [u64; 3],
}

/// Runs both scenarios, each with a fresh verifier (empty caches) against `image` (`PROXY/...`).
pub async fn run(proxy: &CountingProxy, index: &Arc<PolicyIndex>, image: &str) -> Vec<BurstResult> {
    let mut results = Vec::new();
    for scenario in ["rollout", "all at once"] {
        proxy.reset();
        let metrics = Metrics::unregistered().expect("metrics");
        let verifier = Verifier::new(VerifierConfig {
            registry: RegistryClient::new(
                RegistryConfig {
                    insecure_registries: vec![proxy.host()],
                    request_timeout: Duration::from_secs(15),
                    ..RegistryConfig::default()
                },
                Some(metrics.clone()),
            )
            .expect("client"),
            docker_config: Keychain::anonymous(),
            credentials: Arc::new(DocumentCredentials::default()),
            cache: CacheSettings::default(),
            metrics: metrics.clone(),
        });
        let admission = Admission::new(Arc::clone(index), verifier, metrics.clone());
        let router = router(admission, WebhookSettings::default(), metrics.clone());
        let deployment = Bytes::from(review(Kind::Deployment, "deploy", image));
        let replica_set = Bytes::from(review(Kind::ReplicaSet, "rs", image));
        let pods: Vec<Bytes> = (0..50)
            .map(|i| Bytes::from(review(Kind::Pod, &format!("pod-{i}"), image)))
            .collect();
        if scenario == "rollout" {
            // As the controllers do it: the Deployment, then its ReplicaSet, then the Pods (in a
            // burst, all concurrently: the worst case for the cache).
            admit(&router, deployment).await;
            admit(&router, replica_set).await;
            futures::future::join_all(pods.into_iter().map(|pod| admit(&router, pod))).await;
        } else {
            let all = [deployment, replica_set].into_iter().chain(pods);
            futures::future::join_all(all.map(|body| admit(&router, body))).await;
        }
        let mut counts: BTreeMap<String, usize> = BTreeMap::new();
        for line in proxy.request_lines() {
            *counts.entry(line).or_default() += 1;
        }
        let samples = metric::parse(&metrics.render());
        let lookups = |cache: &str| {
            ["miss", "shared", "hit"].map(|result| {
                metric::sum(
                    &samples,
                    "verity_cache_requests_total",
                    &[("cache", cache), ("result", result)],
                ) as u64
            })
        };
        results.push(BurstResult {
            scenario,
            admissions: 52,
            total_requests: proxy.request_count(),
            requests: counts.into_iter().collect(),
            verification: lookups("verification"),
            resolution: lookups("digest"),
        });
    }
    results
}
