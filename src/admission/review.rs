//! `admission.k8s.io/v1` AdmissionReview decoding and encoding.

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub const API_VERSION: &str = "admission.k8s.io/v1";
const KIND: &str = "AdmissionReview";

#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct GroupVersionKind {
    #[serde(default)]
    pub group: String,
    #[serde(default)]
    pub version: String,
    #[serde(default)]
    pub kind: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct GroupVersionResource {
    #[serde(default)]
    pub group: String,
    #[serde(default)]
    pub version: String,
    #[serde(default)]
    pub resource: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Operation {
    Create,
    Update,
    Delete,
    Connect,
}

/// The part of an AdmissionReview request verity reads.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AdmissionRequest {
    pub uid: String,
    pub kind: GroupVersionKind,
    pub resource: GroupVersionResource,
    #[serde(default)]
    pub sub_resource: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub namespace: Option<String>,
    pub operation: Operation,
    #[serde(default)]
    pub object: Option<Value>,
    #[serde(default)]
    pub old_object: Option<Value>,
    #[serde(default)]
    pub dry_run: Option<bool>,
}

/// Why a request body is not a usable AdmissionReview. The uid is kept when it could be read,
/// so the answer still reaches the right request.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ReviewError {
    pub uid: String,
    pub message: String,
}

impl ReviewError {
    fn new(uid: &str, message: impl Into<String>) -> Self {
        ReviewError {
            uid: uid.to_string(),
            message: message.into(),
        }
    }
}

/// Decodes an AdmissionReview body.
pub fn decode(body: &[u8]) -> Result<AdmissionRequest, ReviewError> {
    let review: Value = serde_json::from_slice(body)
        .map_err(|e| ReviewError::new("", format!("request body is not JSON: {e}")))?;
    let uid = review
        .pointer("/request/uid")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let api_version = review
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or("");
    if api_version != API_VERSION {
        return Err(ReviewError::new(
            uid,
            format!(
                "unsupported AdmissionReview apiVersion {api_version:?}: verity speaks {API_VERSION} (set admissionReviewVersions: [v1])"
            ),
        ));
    }
    let kind = review.get("kind").and_then(Value::as_str).unwrap_or("");
    if kind != KIND {
        return Err(ReviewError::new(
            uid,
            format!("expected kind {KIND}, got {kind:?}"),
        ));
    }
    let Some(request) = review.get("request") else {
        return Err(ReviewError::new(uid, "AdmissionReview has no request"));
    };
    if uid.is_empty() {
        return Err(ReviewError::new(uid, "AdmissionReview request has no uid"));
    }
    AdmissionRequest::deserialize(request)
        .map_err(|e| ReviewError::new(uid, format!("malformed AdmissionReview request: {e}")))
}

/// `metav1.Status` as the reference sends it with a denial.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Status {
    pub metadata: serde_json::Map<String, Value>,
    pub status: &'static str,
    pub message: String,
    pub reason: &'static str,
    pub code: u16,
}

impl Status {
    /// `code 400, reason BadRequest`, as knative's webhook answers denials.
    pub fn bad_request(message: String) -> Self {
        Status {
            metadata: serde_json::Map::new(),
            status: "Failure",
            message,
            reason: "BadRequest",
            code: 400,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AdmissionResponse {
    pub uid: String,
    pub allowed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<Status>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patch_type: Option<&'static str>,
    /// Base64 of a JSONPatch document.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patch: Option<String>,
}

impl AdmissionResponse {
    pub fn allow(uid: &str) -> Self {
        AdmissionResponse {
            uid: uid.to_string(),
            allowed: true,
            status: None,
            warnings: Vec::new(),
            patch_type: None,
            patch: None,
        }
    }

    pub fn deny(uid: &str, message: String) -> Self {
        AdmissionResponse {
            allowed: false,
            status: Some(Status::bad_request(message)),
            ..Self::allow(uid)
        }
    }

    pub fn with_warnings(mut self, warnings: Vec<String>) -> Self {
        self.warnings = warnings;
        self
    }
}

/// The whole AdmissionReview answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AdmissionReviewResponse {
    pub api_version: &'static str,
    pub kind: &'static str,
    pub response: AdmissionResponse,
}

impl From<AdmissionResponse> for AdmissionReviewResponse {
    fn from(response: AdmissionResponse) -> Self {
        AdmissionReviewResponse {
            api_version: API_VERSION,
            kind: KIND,
            response,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_fixture() {
        let body = std::fs::read(format!(
            "{}/tests/fixtures/deployment.json",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap();
        let request = decode(&body).unwrap();
        assert_eq!(request.uid, "00000000-0000-0000-0000-000000000001");
        assert_eq!(request.kind.kind, "Deployment");
        assert_eq!(request.resource.resource, "deployments");
        assert_eq!(request.operation, Operation::Create);
        assert!(request.object.is_some());
    }

    #[test]
    fn bad_input_gives_clear_errors() {
        assert!(
            decode(b"not json")
                .unwrap_err()
                .message
                .starts_with("request body is not JSON")
        );
        let wrong = decode(br#"{"apiVersion":"admission.k8s.io/v1beta1","kind":"AdmissionReview","request":{"uid":"u1"}}"#)
            .unwrap_err();
        assert_eq!(wrong.uid, "u1");
        assert!(
            wrong
                .message
                .contains(r#"unsupported AdmissionReview apiVersion "admission.k8s.io/v1beta1""#)
        );
        let no_uid = decode(br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"operation":"CREATE"}}"#)
            .unwrap_err();
        assert_eq!(no_uid.message, "AdmissionReview request has no uid");
        let no_request =
            decode(br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}"#)
                .unwrap_err();
        assert_eq!(no_request.message, "AdmissionReview has no request");
        let bad_op = decode(br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u","kind":{},"resource":{},"operation":"PATCH"}}"#)
            .unwrap_err();
        assert_eq!(bad_op.uid, "u");
        assert!(
            bad_op
                .message
                .starts_with("malformed AdmissionReview request: unknown variant `PATCH`")
        );
    }

    #[test]
    fn encodes_denial_like_the_reference() {
        let review = AdmissionReviewResponse::from(AdmissionResponse::deny(
            "u",
            "validation failed: x".into(),
        ));
        let json = serde_json::to_value(&review).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                "response": {"uid": "u", "allowed": false, "status": {
                    "metadata": {}, "status": "Failure", "message": "validation failed: x",
                    "reason": "BadRequest", "code": 400}}
            })
        );
    }
}
