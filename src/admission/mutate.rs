//! Digest pinning (`POST /mutate`): rewrite `name:tag` to `name:tag@sha256:…` so the kubelet runs
//! the digest that was verified, using the same cached resolution as validation.
//!
//! Only images covered by a policy with a signature authority (key or keyless) are pinned:
//! images no policy covers, and images only static policies cover, cost no registry call and are
//! left alone. An object annotated `verity.dev/mutate: "false"` (a GitOps opt-out: the tag in
//! git stays the tag in the cluster) is never patched. Mutation never denies; validation does
//! not depend on it having run.

use std::collections::BTreeMap;
use std::time::Instant;

use base64::Engine as _;
use serde_json::{Value, json};
use tracing::{debug, warn};

use super::images::{ContainerImage, WorkloadKind, images_of, labels_of, workload_credentials};
use super::review::{AdmissionRequest, AdmissionResponse, Operation};
use crate::image::ImageRef;
use crate::policy::compiled::ResourceRef;
use crate::policy::index::{PolicyEntry, PolicySnapshot};
use crate::verify::{RequestContext, Verifier};

/// The annotation that turns pinning off for an object or a whole namespace (value `"false"`).
pub const OPT_OUT_ANNOTATION: &str = "verity.dev/mutate";

/// Which namespaces opted out of pinning (cluster mode watches them; file mode has none).
pub trait NamespaceOptOut: Send + Sync + std::fmt::Debug {
    fn opted_out(&self, namespace: &str) -> bool;
}

/// The patch for one request, and warnings about images that could not be pinned.
#[derive(Debug, Default, PartialEq)]
pub struct Pinning {
    /// JSONPatch operations.
    pub operations: Vec<Value>,
    pub warnings: Vec<String>,
}

impl Pinning {
    /// The AdmissionReview answer: always allowed, with the patch when there is one.
    pub fn into_response(self, uid: &str) -> AdmissionResponse {
        let mut response = AdmissionResponse::allow(uid).with_warnings(self.warnings);
        if !self.operations.is_empty() {
            let patch = Value::Array(self.operations).to_string();
            response.patch_type = Some("JSONPatch");
            response.patch = Some(base64::engine::general_purpose::STANDARD.encode(patch));
        }
        response
    }
}

/// Whether `object` opted out of pinning.
pub fn opted_out(object: &Value) -> bool {
    object
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(OPT_OUT_ANNOTATION))
        .and_then(Value::as_str)
        .is_some_and(|v| v.eq_ignore_ascii_case("false"))
}

/// The pinning patch for one request.
pub async fn pin(
    request: &AdmissionRequest,
    snapshot: &PolicySnapshot,
    verifier: &Verifier,
    namespaces: Option<&dyn NamespaceOptOut>,
    deadline: Instant,
) -> Pinning {
    let namespace_opted_out = request
        .namespace
        .as_deref()
        .zip(namespaces)
        .is_some_and(|(namespace, opt_out)| opt_out.opted_out(namespace));
    if namespace_opted_out {
        return Pinning::default();
    }

    if matches!(request.operation, Operation::Delete | Operation::Connect) {
        return Pinning::default();
    }
    let sub_resource = request.sub_resource.as_deref().unwrap_or_default();
    if !sub_resource.is_empty() && sub_resource != "ephemeralcontainers" {
        return Pinning::default();
    }
    let (Some(kind), Some(object)) = (
        WorkloadKind::from_group_kind(&request.kind.group, &request.kind.kind),
        request.object.as_ref(),
    ) else {
        return Pinning::default();
    };
    if opted_out(object)
        || object
            .pointer("/metadata/deletionTimestamp")
            .is_some_and(|v| !v.is_null())
    {
        return Pinning::default();
    }
    let Ok(images) = images_of(kind, object) else {
        // Validation reports malformed objects.
        return Pinning::default();
    };
    let resource = ResourceRef::new(
        &request.resource.group,
        &request.resource.version,
        &request.resource.resource,
    );
    let labels: BTreeMap<String, String> = labels_of(object);
    let context = RequestContext {
        workload: workload_credentials(kind, object, request.namespace.as_deref()),
        deadline,
    };
    let pins = futures::future::join_all(
        images
            .iter()
            .map(|image| pin_one(image, snapshot, verifier, &resource, &labels, &context)),
    )
    .await;
    let mut pinning = Pinning::default();
    for (image, pin) in images.iter().zip(pins) {
        match pin {
            Some(Ok(pinned)) => pinning.operations.push(json!({
                "op": "replace",
                "path": image.pointer,
                "value": pinned,
            })),
            Some(Err(problem)) => {
                warn!(image = %image.image, path = %image.path, %problem, "could not pin image to a digest");
                pinning.warnings.push(format!(
                    "verity could not pin {} ({}) to a digest: {problem}",
                    image.image, image.path
                ));
            }
            None => {}
        }
    }
    debug!(patches = pinning.operations.len(), "pinning done");
    pinning
}

/// `Some(Ok(pinned))` to pin, `Some(Err(why))` when pinning was wanted but failed, `None` when
/// the image is left alone.
async fn pin_one(
    image: &ContainerImage,
    snapshot: &PolicySnapshot,
    verifier: &Verifier,
    resource: &ResourceRef,
    labels: &BTreeMap<String, String>,
    context: &RequestContext,
) -> Option<Result<String, String>> {
    let parsed = ImageRef::parse(&image.image).ok()?;
    if parsed.digest().is_some() {
        return None;
    }
    let matched = snapshot.matching(
        &parsed.tag_form().into_iter().collect::<Vec<_>>(),
        resource,
        labels,
    );
    let could_match_more =
        snapshot.digest_could_match_more(&parsed.name(), &matched, resource, labels);
    if !needs_signature(&matched) && !could_match_more {
        return None;
    }
    let digest = match verifier.resolve_digest(&parsed, context).await {
        Ok(digest) => digest,
        Err(err) => return Some(Err(err.to_string())),
    };
    if !needs_signature(&matched) {
        // Only a digest glob could bring in a signature policy: check with the digest known.
        let pinned = parsed.with_digest(digest.clone());
        let forms: Vec<String> = pinned
            .tag_form()
            .into_iter()
            .chain(pinned.digest_form())
            .collect();
        if !needs_signature(&snapshot.matching(&forms, resource, labels)) {
            return None;
        }
    }
    // The tag stays as written; an implied `latest` is spelt out so the reference keeps it.
    let tag_part = if written_has_tag(&image.image) {
        ""
    } else {
        ":latest"
    };
    Some(Ok(format!("{}{tag_part}@{digest}", image.image)))
}

/// Whether the written reference already names a tag (a `:` after the last `/`).
fn written_has_tag(written: &str) -> bool {
    let last = written.rsplit('/').next().unwrap_or(written);
    last.contains(':')
}

fn needs_signature(policies: &[std::sync::Arc<PolicyEntry>]) -> bool {
    policies.iter().any(|policy| match policy.as_ref() {
        PolicyEntry::Ready(policy) => policy.authorities.iter().any(Verifier::needs_digest),
        PolicyEntry::Broken { .. } => false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opt_out_annotation() {
        assert!(opted_out(
            &json!({"metadata": {"annotations": {"verity.dev/mutate": "false"}}})
        ));
        assert!(!opted_out(
            &json!({"metadata": {"annotations": {"verity.dev/mutate": "true"}}})
        ));
        assert!(!opted_out(&json!({"metadata": {}})));
    }

    #[derive(Debug)]
    struct OptedOut(&'static str);

    impl NamespaceOptOut for OptedOut {
        fn opted_out(&self, namespace: &str) -> bool {
            namespace == self.0
        }
    }

    #[tokio::test]
    async fn opted_out_namespaces_are_never_pinned() {
        use crate::policy::index::{PolicySnapshot, Settings};
        let review = br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{
            "uid":"u","kind":{"group":"","version":"v1","kind":"Pod"},
            "resource":{"group":"","version":"v1","resource":"pods"},"namespace":"team-a","operation":"CREATE",
            "object":{"metadata":{"name":"p"},"spec":{"containers":[{"name":"c","image":"ghcr.io/org/app:v1"}]}}}}"#;
        let request = super::super::review::decode(review).unwrap();
        let snapshot = PolicySnapshot::new(Vec::new(), Settings::default(), 1).unwrap();
        // Opted out: nothing is even looked at (no verifier call would be possible here).
        let pinning = pin(
            &request,
            &snapshot,
            &Verifier::offline(),
            Some(&OptedOut("team-a")),
            Instant::now(),
        )
        .await;
        assert_eq!(pinning, Pinning::default());
        assert!(!OptedOut("team-a").opted_out("team-b"));
    }

    #[test]
    fn written_tags() {
        assert!(written_has_tag("nginx:1.25"));
        assert!(written_has_tag("localhost:5000/app:v1"));
        assert!(!written_has_tag("localhost:5000/app"));
        assert!(!written_has_tag("nginx"));
    }

    #[test]
    fn response_carries_a_base64_json_patch() {
        let pinning = Pinning {
            operations: vec![
                json!({"op": "replace", "path": "/spec/containers/0/image", "value": "a:1@sha256:x"}),
            ],
            warnings: vec![],
        };
        let response = pinning.into_response("u");
        assert_eq!(response.patch_type, Some("JSONPatch"));
        let patch = base64::engine::general_purpose::STANDARD
            .decode(response.patch.unwrap())
            .unwrap();
        assert_eq!(
            String::from_utf8(patch).unwrap(),
            r#"[{"op":"replace","path":"/spec/containers/0/image","value":"a:1@sha256:x"}]"#
        );
        assert!(Pinning::default().into_response("u").patch.is_none());
    }
}
