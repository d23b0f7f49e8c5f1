//! The admin port: liveness, readiness and Prometheus metrics over plain HTTP.
//!
//! Kept off the webhook port so that scraping and probing never compete with admission
//! requests and never need the webhook's serving certificate.

use std::sync::Arc;

use arc_swap::ArcSwap;
use axum::{
    Router,
    extract::State,
    http::{StatusCode, header},
    response::IntoResponse,
    routing::get,
};

use crate::metrics::Metrics;

/// Content type of the Prometheus text exposition format.
pub const METRICS_CONTENT_TYPE: &str = prometheus::TEXT_FORMAT;

/// What the admin port serves: the readiness flag and the metric families.
#[derive(Clone)]
pub struct Admin {
    pub readiness: Readiness,
    pub metrics: Metrics,
}

impl Admin {
    /// `GET /livez`, `GET /readyz` and `GET /metrics`.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/livez", get(livez))
            .route("/readyz", get(readyz))
            .route("/metrics", get(metrics))
            .with_state(self.clone())
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum ReadinessState {
    Ready,
    NotReady(String),
}

/// Whether verity should receive admission requests; shared by cheap clones.
///
/// Starts not ready: the owner of the policy sync turns it ready once policies and trust roots
/// are loaded, and the server turns it back at shutdown so the endpoint is taken out of rotation.
#[derive(Clone, Debug)]
pub struct Readiness {
    state: Arc<ArcSwap<ReadinessState>>,
}

impl Default for Readiness {
    fn default() -> Self {
        Self::new()
    }
}

impl Readiness {
    /// A new flag, not ready with the reason `starting`.
    pub fn new() -> Self {
        Readiness {
            state: Arc::new(ArcSwap::from_pointee(ReadinessState::NotReady(
                "starting".to_owned(),
            ))),
        }
    }

    pub fn set_ready(&self) {
        self.state.store(Arc::new(ReadinessState::Ready));
    }

    /// Not ready, with a reason shown by `/readyz`.
    pub fn set_not_ready(&self, reason: impl Into<String>) {
        self.state
            .store(Arc::new(ReadinessState::NotReady(reason.into())));
    }

    pub fn is_ready(&self) -> bool {
        *self.state.load_full() == ReadinessState::Ready
    }

    /// Why the flag is not ready, or `None` when it is ready.
    pub fn not_ready_reason(&self) -> Option<String> {
        match &*self.state.load_full() {
            ReadinessState::Ready => None,
            ReadinessState::NotReady(reason) => Some(reason.clone()),
        }
    }
}

async fn livez() -> &'static str {
    "ok"
}

async fn readyz(State(admin): State<Admin>) -> (StatusCode, String) {
    match admin.readiness.not_ready_reason() {
        None => (StatusCode::OK, "ok".to_owned()),
        Some(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {reason}"),
        ),
    }
}

async fn metrics(State(admin): State<Admin>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, METRICS_CONTENT_TYPE)],
        admin.metrics.render(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readiness_starts_not_ready_and_follows_changes() {
        let readiness = Readiness::new();
        assert!(!readiness.is_ready());
        assert_eq!(readiness.not_ready_reason().as_deref(), Some("starting"));

        let shared = readiness.clone();
        shared.set_ready();
        assert!(readiness.is_ready());
        assert_eq!(readiness.not_ready_reason(), None);

        shared.set_not_ready("shutting down");
        assert!(!readiness.is_ready());
        assert_eq!(
            readiness.not_ready_reason().as_deref(),
            Some("shutting down")
        );
    }
}
