//! `POST /validate-policy`: the ValidatingWebhookConfiguration endpoint for ClusterImagePolicy
//! (v1alpha1 and v1beta1) and TrustRoot CREATE and UPDATE.
//!
//! It runs exactly what the loaders run, defaulting, validation and compilation against the
//! current Secrets and TrustRoots ([`assess_policy`], [`compile_trust_root`]), so what is
//! admitted loads. Denials use the reference's format (`validation failed: …`, code 400
//! BadRequest); validation warnings become admission warnings, one line each.
//!
//! A `secretRef` or `trustRootRef` whose object does not exist yet (or cannot be used) is a
//! warning, not a denial: GitOps tools apply objects in any order. The policy then loads as
//! broken and denies the images it matches until the reference resolves, and the warning says
//! so. DELETE is always allowed. Deadline and body limit are those of `/validate`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::Value;
use tracing::{debug, error, info};

use super::webhook::{WebhookSettings, body_rejected, budget};
use crate::admission::message::{denial_message, warning_lines};
use crate::admission::review::{
    self, AdmissionRequest, AdmissionResponse, AdmissionReviewResponse, Operation,
};
use crate::field_error::{FieldError, FieldErrors, Level};
use crate::metrics::Metrics;
use crate::policy::crd::{CIP_VERSIONS, ClusterImagePolicySpec, GROUP, TrustRootSpec};
use crate::policy::source::file::PolicyFiles;
use crate::policy::source::kube::{SharedReferences, assess_policy, malformed_policy};
use crate::policy::source::{
    LoadOptions, References, RemoteTrust, TrustRootError, compile_trust_root,
};
use crate::policy::validate::validate_trust_root;

/// Where the endpoint finds the Secrets and TrustRoots policies refer to.
#[derive(Clone)]
pub enum PolicyReferences {
    /// Cluster mode: what the cluster source compiles against right now.
    Cluster(SharedReferences),
    /// File mode: the Secret and TrustRoot documents of the policy files, read per request
    /// (policy admissions are rare, and this way they always see the files' current content).
    Files {
        paths: Vec<PathBuf>,
        load: LoadOptions,
    },
}

impl PolicyReferences {
    fn current(&self) -> Result<Arc<References>, String> {
        match self {
            PolicyReferences::Cluster(shared) => Ok(shared.load_full()),
            PolicyReferences::Files { paths, load } => PolicyFiles::read(paths)
                .and_then(|files| files.documents())
                .map(|documents| Arc::new(documents.references(load)))
                .map_err(|error| error.to_string()),
        }
    }
}

#[derive(Clone)]
struct PolicyWebhookState {
    references: PolicyReferences,
    settings: WebhookSettings,
    metrics: Metrics,
}

/// The router serving `POST /validate-policy`; merge it with [`super::webhook::router`].
pub fn router(references: PolicyReferences, settings: WebhookSettings, metrics: Metrics) -> Router {
    let state = PolicyWebhookState {
        references,
        metrics,
        settings: settings.clone(),
    };
    Router::new()
        .route("/validate-policy", post(validate_policy))
        .layer(DefaultBodyLimit::max(settings.body_limit))
        .with_state(state)
}

/// The answer to one policy admission, with a bounded reason for metrics.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyReview {
    pub response: AdmissionResponse,
    /// `valid`, `invalid`, `skipped`, `unsupported`, `bad_request`, `error`.
    pub reason: &'static str,
}

impl PolicyReview {
    fn allow(uid: &str, warnings: Vec<String>, reason: &'static str) -> Self {
        PolicyReview {
            response: AdmissionResponse::allow(uid).with_warnings(warnings),
            reason,
        }
    }

    fn deny(uid: &str, message: String, warnings: Vec<String>, reason: &'static str) -> Self {
        PolicyReview {
            response: AdmissionResponse::deny(uid, message).with_warnings(warnings),
            reason,
        }
    }
}

async fn validate_policy(
    State(state): State<PolicyWebhookState>,
    RawQuery(query): RawQuery,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let received = Instant::now();
    let body = match body {
        Ok(body) => body,
        Err(rejection) => {
            return body_rejected(&state.metrics, state.settings.body_limit, rejection);
        }
    };
    let deadline = received + budget(&state.settings, query.as_deref());
    let review = match review::decode(&body) {
        Err(err) => PolicyReview::deny(
            &err.uid,
            format!(
                "verity could not read the admission request: {}",
                err.message
            ),
            Vec::new(),
            "bad_request",
        ),
        Ok(request) => {
            let uid = request.uid.clone();
            let references = state.references.clone();
            let work = tokio::task::spawn_blocking(move || {
                let review = match references.current() {
                    Ok(references) => review_policy(&request, &references),
                    Err(problem) => PolicyReview::deny(
                        &request.uid,
                        format!(
                            "verity cannot read its policy files to resolve references: {problem}"
                        ),
                        Vec::new(),
                        "error",
                    ),
                };
                (request, review)
            });
            match tokio::time::timeout_at(tokio::time::Instant::from_std(deadline), work).await {
                Ok(Ok((request, review))) => {
                    log(&request, &review);
                    review
                }
                Ok(Err(join_error)) => {
                    error!(uid = %uid, error = %join_error, "policy validation failed unexpectedly");
                    return (
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "policy validation failed unexpectedly",
                    )
                        .into_response();
                }
                Err(_) => PolicyReview::deny(
                    &uid,
                    format!(
                        "verity could not validate the policy within {:.1}s",
                        deadline.saturating_duration_since(received).as_secs_f64()
                    ),
                    Vec::new(),
                    "timeout",
                ),
            }
        }
    };
    let decision = match (review.response.allowed, review.response.warnings.is_empty()) {
        (false, _) => "deny",
        (true, true) => "allow",
        (true, false) => "warn",
    };
    state
        .metrics
        .admission_requests
        .with_label_values(&[decision, review.reason])
        .inc();
    state
        .metrics
        .admission_duration
        .with_label_values(&["validate-policy", decision])
        .observe(received.elapsed().as_secs_f64());
    axum::Json(AdmissionReviewResponse::from(review.response)).into_response()
}

fn log(request: &AdmissionRequest, review: &PolicyReview) {
    let name = request.name.as_deref().unwrap_or_default();
    match &review.response.status {
        Some(status) => info!(
            uid = %request.uid, kind = %request.kind.kind, name, operation = ?request.operation,
            reason = review.reason, message = %status.message, "policy denied"
        ),
        None => debug!(
            uid = %request.uid, kind = %request.kind.kind, name, operation = ?request.operation,
            reason = review.reason, warnings = review.response.warnings.len(), "policy admitted"
        ),
    }
}

/// Judges one ClusterImagePolicy or TrustRoot admission against `references`.
pub fn review_policy(request: &AdmissionRequest, references: &References) -> PolicyReview {
    let uid = request.uid.as_str();
    if matches!(request.operation, Operation::Delete | Operation::Connect)
        || request
            .sub_resource
            .as_deref()
            .is_some_and(|sub| !sub.is_empty())
    {
        return PolicyReview::allow(uid, Vec::new(), "skipped");
    }
    let kind = &request.kind;
    let supported = kind.group == GROUP
        && match kind.kind.as_str() {
            "ClusterImagePolicy" => CIP_VERSIONS.contains(&kind.version.as_str()),
            "TrustRoot" => kind.version == "v1alpha1",
            _ => false,
        };
    if !supported {
        return PolicyReview::deny(
            uid,
            format!(
                "verity's /validate-policy checks {GROUP} ClusterImagePolicy (v1alpha1, v1beta1) and TrustRoot (v1alpha1), not {}/{} {}; fix the ValidatingWebhookConfiguration rules",
                kind.group, kind.version, kind.kind
            ),
            Vec::new(),
            "unsupported",
        );
    }
    let Some(object) = &request.object else {
        return PolicyReview::deny(
            uid,
            format!("the {} admission request has no object", kind.kind),
            Vec::new(),
            "bad_request",
        );
    };
    let name = object
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .or(request.name.as_deref())
        .unwrap_or_default();
    let spec = object
        .get("spec")
        .cloned()
        .unwrap_or_else(|| Value::Object(serde_json::Map::new()));
    if kind.kind == "TrustRoot" {
        review_trust_root(uid, name, spec)
    } else {
        review_cluster_image_policy(uid, name, spec, references)
    }
}

fn review_cluster_image_policy(
    uid: &str,
    name: &str,
    spec: Value,
    references: &References,
) -> PolicyReview {
    let spec: ClusterImagePolicySpec = match serde_json::from_value(spec) {
        Ok(spec) => spec,
        Err(error) => {
            let malformed = malformed_policy(name, &[], &error.to_string());
            return PolicyReview::deny(
                uid,
                denial_message(&malformed.errors),
                Vec::new(),
                "invalid",
            );
        }
    };
    let assessment = assess_policy(name, &spec, references);
    let mut warnings = warning_lines(&assessment.warnings);
    if !assessment.errors.is_empty() {
        return PolicyReview::deny(uid, denial_message(&assessment.errors), warnings, "invalid");
    }
    let unresolved: FieldErrors = assessment
        .reference_errors
        .iter()
        .map(|error| {
            error.clone().at_level(Level::Warning).with_details(format!(
                "{}; the policy is admitted, but until this resolves it loads as broken and denies every image it matches",
                error.details
            ))
        })
        .collect();
    warnings.extend(warning_lines(&unresolved));
    PolicyReview::allow(uid, warnings, "valid")
}

/// A TrustRoot is compiled as the sources compile it, except that a `remote` one (a TUF mirror)
/// is validated only: the fetch happens in the background once it is stored, so it is admitted
/// with a warning saying so. A `repository` one (air-gapped TUF) is verified in full.
fn review_trust_root(uid: &str, name: &str, spec: Value) -> PolicyReview {
    let spec: TrustRootSpec = match serde_json::from_value(spec) {
        Ok(spec) => spec,
        Err(error) => {
            let errors: FieldErrors = FieldError::new("malformed spec", vec!["spec".to_string()])
                .with_details(error.to_string())
                .into();
            return PolicyReview::deny(uid, denial_message(&errors), Vec::new(), "invalid");
        }
    };
    match compile_trust_root(name, &spec, &RemoteTrust::Unfetched) {
        Ok((_, warnings)) => PolicyReview::allow(uid, warning_lines(&warnings), "valid"),
        Err(TrustRootError::Pending(problem)) => {
            let mut warnings = validate_trust_root(&spec);
            warnings.push(
                FieldError::new(
                    "trust material not available yet",
                    vec!["spec.remote".to_string()],
                )
                .with_details(problem)
                .at_level(Level::Warning),
            );
            PolicyReview::allow(uid, warning_lines(&warnings), "valid")
        }
        Err(TrustRootError::Invalid(errors)) => {
            PolicyReview::deny(uid, denial_message(&errors), Vec::new(), "invalid")
        }
        Err(TrustRootError::Unusable(problem)) => {
            let errors: FieldErrors = FieldError::new(problem, Vec::new()).into();
            PolicyReview::deny(uid, denial_message(&errors), Vec::new(), "invalid")
        }
    }
}
