//! Prometheus metric families, registered on a [`prometheus::Registry`] passed in (no globals).
//!
//! Labels are bounded: no image, namespace or policy names.

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
    TextEncoder,
};

/// Every metric family verity exports.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    /// Admission requests by decision (`allow`, `deny`, `warn`) and reason.
    pub admission_requests: IntCounterVec,
    /// Admission handling time by endpoint and decision.
    pub admission_duration: HistogramVec,
    /// Policies in the current snapshot (broken ones included).
    pub policies_loaded: IntGauge,
    /// Policy (re)loads that were rejected, by source.
    pub policy_load_errors: IntCounterVec,
    /// Registry calls by operation and result.
    pub registry_requests: IntCounterVec,
    /// Time spent verifying one image against one authority, by authority kind and result.
    pub verification_duration: HistogramVec,
    /// Cache lookups by cache (`verification`, `digest`) and result (`hit`, `miss`, `shared`).
    pub cache_requests: IntCounterVec,
    /// Serving-certificate reloads by result.
    pub tls_reloads: IntCounterVec,
    /// Requests refused because the concurrency limit stayed full until the deadline.
    pub overload_rejections: IntCounter,
    /// Attempts to fetch a `remote` TrustRoot's TUF repository, by result (`updated`,
    /// `unchanged`, or the failure reason).
    pub tuf_fetches: IntCounterVec,
    /// `remote` TrustRoots followed that have no usable trusted root yet (their policies deny).
    pub tuf_trust_roots_unusable: IntGauge,
}

const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

impl Metrics {
    pub fn new(registry: Registry) -> Result<Self, prometheus::Error> {
        let admission_requests = IntCounterVec::new(
            Opts::new(
                "verity_admission_requests_total",
                "Admission requests by decision and reason.",
            ),
            &["decision", "reason"],
        )?;
        let admission_duration = HistogramVec::new(
            HistogramOpts::new(
                "verity_admission_duration_seconds",
                "Time to answer an admission request.",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["endpoint", "decision"],
        )?;
        let policies_loaded = IntGauge::new(
            "verity_policies_loaded",
            "ClusterImagePolicies in the active snapshot.",
        )?;
        let policy_load_errors = IntCounterVec::new(
            Opts::new(
                "verity_policy_load_errors_total",
                "Policy loads rejected (the previous snapshot stays in force).",
            ),
            &["source"],
        )?;
        let registry_requests = IntCounterVec::new(
            Opts::new(
                "verity_registry_requests_total",
                "Registry requests by operation and result.",
            ),
            &["operation", "result"],
        )?;
        let verification_duration = HistogramVec::new(
            HistogramOpts::new(
                "verity_verification_duration_seconds",
                "Time to verify one image digest against one authority.",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["authority_kind", "result"],
        )?;
        let cache_requests = IntCounterVec::new(
            Opts::new(
                "verity_cache_requests_total",
                "Cache lookups by cache and result.",
            ),
            &["cache", "result"],
        )?;
        let tls_reloads = IntCounterVec::new(
            Opts::new(
                "verity_tls_reloads_total",
                "Serving certificate reloads by result.",
            ),
            &["result"],
        )?;
        let overload_rejections = IntCounter::new(
            "verity_overload_rejections_total",
            "Admission requests denied because no verification slot freed up before the deadline.",
        )?;
        registry.register(Box::new(admission_requests.clone()))?;
        registry.register(Box::new(admission_duration.clone()))?;
        registry.register(Box::new(policies_loaded.clone()))?;
        registry.register(Box::new(policy_load_errors.clone()))?;
        registry.register(Box::new(registry_requests.clone()))?;
        registry.register(Box::new(verification_duration.clone()))?;
        registry.register(Box::new(cache_requests.clone()))?;
        registry.register(Box::new(tls_reloads.clone()))?;
        let tuf_fetches = IntCounterVec::new(
            Opts::new(
                "verity_tuf_fetches_total",
                "Fetches of remote TrustRoots' TUF repositories by result (updated, unchanged or the failure reason).",
            ),
            &["result"],
        )?;
        let tuf_trust_roots_unusable = IntGauge::new(
            "verity_tuf_trust_roots_unusable",
            "Remote TrustRoots without a usable trusted root yet (policies naming them deny).",
        )?;
        registry.register(Box::new(overload_rejections.clone()))?;
        registry.register(Box::new(tuf_fetches.clone()))?;
        registry.register(Box::new(tuf_trust_roots_unusable.clone()))?;
        Ok(Metrics {
            registry,
            admission_requests,
            admission_duration,
            policies_loaded,
            policy_load_errors,
            registry_requests,
            verification_duration,
            cache_requests,
            tls_reloads,
            overload_rejections,
            tuf_fetches,
            tuf_trust_roots_unusable,
        })
    }

    /// Metrics on a fresh registry of their own (tests, CLI commands).
    pub fn unregistered() -> Result<Self, prometheus::Error> {
        Self::new(Registry::new())
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The Prometheus text exposition of every family.
    pub fn render(&self) -> String {
        let mut buffer = Vec::new();
        let encoder = TextEncoder::new();
        if encoder
            .encode(&self.registry.gather(), &mut buffer)
            .is_err()
        {
            return String::new();
        }
        String::from_utf8(buffer).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_registered_families() {
        let metrics = Metrics::unregistered().unwrap();
        metrics
            .admission_requests
            .with_label_values(&["deny", "policy"])
            .inc();
        metrics.policies_loaded.set(3);
        let text = metrics.render();
        assert!(
            text.contains(r#"verity_admission_requests_total{decision="deny",reason="policy"} 1"#)
        );
        assert!(text.contains("verity_policies_loaded 3"));
    }
}
