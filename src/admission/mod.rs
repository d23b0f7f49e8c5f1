//! AdmissionReview in, decision out. No HTTP or TLS here: the server hands over the body and a
//! deadline, and gets an AdmissionReview answer back.

pub mod decision;
pub mod evaluate;
pub mod explain;
pub mod images;
pub mod message;
pub mod mutate;
pub mod review;

use std::sync::Arc;
use std::time::Instant;

use serde_json::Value;
use tracing::{Instrument, debug, info, info_span, warn};

use crate::field_error::FieldError;
use crate::metrics::Metrics;
use crate::policy::compiled::ResourceRef;
use crate::policy::index::PolicyIndex;
use crate::verify::{RequestContext, Verifier};
use decision::{Decision, decide};
use evaluate::Evaluation;
use images::{WorkloadKind, images_of, replicas};
use review::{AdmissionRequest, AdmissionResponse, AdmissionReviewResponse, Operation};

/// Answers admission requests from the current policy snapshot.
#[derive(Clone)]
pub struct Admission {
    index: Arc<PolicyIndex>,
    verifier: Verifier,
    metrics: Metrics,
    namespaces: Option<Arc<dyn mutate::NamespaceOptOut>>,
}

impl Admission {
    pub fn new(index: Arc<PolicyIndex>, verifier: Verifier, metrics: Metrics) -> Self {
        Admission {
            index,
            verifier,
            metrics,
            namespaces: None,
        }
    }

    /// Namespaces annotated `verity.dev/mutate: "false"` are never pinned.
    pub fn with_namespace_opt_out(mut self, namespaces: Arc<dyn mutate::NamespaceOptOut>) -> Self {
        self.namespaces = Some(namespaces);
        self
    }

    /// Decodes `body`, decides, and encodes the answer. Never fails: undecodable requests are
    /// denied with a message saying what was wrong.
    pub async fn review(&self, body: &[u8], deadline: Instant) -> AdmissionReviewResponse {
        let started = Instant::now();
        let request = match review::decode(body) {
            Ok(request) => request,
            Err(err) => {
                warn!(uid = %err.uid, error = %err.message, "undecodable admission request");
                self.record("deny", "bad_request", started);
                return AdmissionResponse::deny(
                    &err.uid,
                    format!(
                        "verity could not read the admission request: {}",
                        err.message
                    ),
                )
                .into();
            }
        };
        let span = info_span!(
            "admission",
            uid = %request.uid,
            kind = %request.kind.kind,
            namespace = request.namespace.as_deref().unwrap_or(""),
            name = request.name.as_deref().unwrap_or(""),
            operation = ?request.operation,
        );
        async {
            let decision = self.decide(&request, deadline).await;
            let warnings = message::warning_lines(&decision.warnings);
            let label = if !decision.allowed {
                "deny"
            } else if warnings.is_empty() {
                "allow"
            } else {
                "warn"
            };
            self.record(label, decision.reason, started);
            let response = if decision.allowed {
                debug!(decision = label, reason = decision.reason, "admitted");
                AdmissionResponse::allow(&request.uid)
            } else {
                let message = message::denial_message(&decision.errors);
                if decision.reason == "error" {
                    warn!(decision = label, reason = decision.reason, %message, "denied: verification could not complete");
                } else {
                    info!(decision = label, reason = decision.reason, %message, "denied");
                }
                AdmissionResponse::deny(&request.uid, message)
            };
            response.with_warnings(warnings).into()
        }
        .instrument(span)
        .await
    }

    fn record(&self, decision: &str, reason: &str, started: Instant) {
        self.record_for("validate", decision, reason, started);
    }

    fn record_for(&self, endpoint: &str, decision: &str, reason: &str, started: Instant) {
        self.metrics
            .admission_requests
            .with_label_values(&[decision, reason])
            .inc();
        self.metrics
            .admission_duration
            .with_label_values(&[endpoint, decision])
            .observe(started.elapsed().as_secs_f64());
    }

    /// Answers a mutating AdmissionReview with a digest-pinning patch (possibly empty). Always
    /// allows; undecodable requests are allowed unpatched, since validation reports them.
    pub async fn mutate_review(&self, body: &[u8], deadline: Instant) -> AdmissionReviewResponse {
        let started = Instant::now();
        let request = match review::decode(body) {
            Ok(request) => request,
            Err(err) => {
                warn!(uid = %err.uid, error = %err.message, "undecodable mutation request");
                self.record_for("mutate", "allow", "bad_request", started);
                return AdmissionResponse::allow(&err.uid).into();
            }
        };
        let snapshot = self.index.snapshot();
        let pinning = mutate::pin(
            &request,
            &snapshot,
            &self.verifier,
            self.namespaces.as_deref(),
            deadline,
        )
        .await;

        let decision = if pinning.operations.is_empty() {
            "allow"
        } else {
            "patch"
        };
        self.record_for("mutate", decision, "mutated", started);
        pinning.into_response(&request.uid).into()
    }

    /// The decision for one request.
    pub async fn decide(&self, request: &AdmissionRequest, deadline: Instant) -> Decision {
        if matches!(request.operation, Operation::Delete | Operation::Connect) {
            return Decision::skipped();
        }
        // Only pods/ephemeralcontainers among subresources carries images to check.
        let sub_resource = request.sub_resource.as_deref().unwrap_or_default();
        if !sub_resource.is_empty() && sub_resource != "ephemeralcontainers" {
            return Decision::skipped();
        }
        let Some(kind) = WorkloadKind::from_group_kind(&request.kind.group, &request.kind.kind)
        else {
            return Decision::skipped();
        };
        let Some(object) = request.object.as_ref() else {
            return Decision::invalid(FieldError::new(
                format!(
                    "{:?} request for {} carries no object",
                    request.operation, request.kind.kind
                ),
                Vec::new(),
            ));
        };
        if object
            .pointer("/metadata/deletionTimestamp")
            .is_some_and(|v| !v.is_null())
        {
            return Decision::skipped();
        }
        let images = match images_of(kind, object) {
            Ok(images) => images,
            Err(err) => {
                return Decision::invalid(FieldError::new(err.to_string(), vec![err.path]));
            }
        };
        if is_exempt_scale_down(request, kind, object, &images) {
            return Decision::skipped();
        }
        let snapshot = self.index.snapshot();
        let resource = ResourceRef::new(
            &request.resource.group,
            &request.resource.version,
            &request.resource.resource,
        );
        let labels = images::labels_of(object);
        let now = Instant::now();
        let context = RequestContext {
            workload: images::workload_credentials(kind, object, request.namespace.as_deref()),
            deadline: deadline
                .checked_sub(evaluate::VERIFICATION_GRACE)
                .filter(|d| *d > now)
                .unwrap_or(now),
        };
        let results = Evaluation {
            snapshot: &snapshot,
            verifier: &self.verifier,
            resource: &resource,
            labels: &labels,
            context: &context,
            exhaustive: false,
        }
        .images(&images)
        .await;
        decide(&results, snapshot.settings().no_match)
    }
}

/// The reference exempts scale-down of Deployments, ReplicaSets and StatefulSets so unsigned old
/// workloads can be wound down. verity exempts it only when no image changes at the same time,
/// so a scale-down cannot smuggle in a new image.
fn is_exempt_scale_down(
    request: &AdmissionRequest,
    kind: WorkloadKind,
    object: &Value,
    images: &[images::ContainerImage],
) -> bool {
    if request.operation != Operation::Update || !kind.scales_down() {
        return false;
    }
    let Some(old) = request.old_object.as_ref() else {
        return false;
    };
    let (Some(new_replicas), Some(old_replicas)) = (replicas(object), replicas(old)) else {
        return false;
    };
    new_replicas < old_replicas && images_of(kind, old).is_ok_and(|old_images| old_images == images)
}
