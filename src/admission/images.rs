//! The images of any pod-spec-able object, with their JSON field paths.
//!
//! Order follows the reference: `initContainers`, `containers`, `ephemeralContainers`, then image
//! volumes (`volumes[].image.reference`).

use serde_json::Value;

/// A kind verity checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WorkloadKind {
    Pod,
    Deployment,
    ReplicaSet,
    StatefulSet,
    DaemonSet,
    Job,
    CronJob,
    ReplicationController,
}

impl WorkloadKind {
    /// The kind of an admitted object, from its group and kind. CronJobs come as `batch/v1` or,
    /// from older apiservers, `batch/v1beta1`; the group is what matters.
    pub fn from_group_kind(group: &str, kind: &str) -> Option<Self> {
        match (group, kind) {
            ("", "Pod") => Some(WorkloadKind::Pod),
            ("apps", "Deployment") => Some(WorkloadKind::Deployment),
            ("apps", "ReplicaSet") => Some(WorkloadKind::ReplicaSet),
            ("apps", "StatefulSet") => Some(WorkloadKind::StatefulSet),
            ("apps", "DaemonSet") => Some(WorkloadKind::DaemonSet),
            ("batch", "Job") => Some(WorkloadKind::Job),
            ("batch", "CronJob") => Some(WorkloadKind::CronJob),
            ("", "ReplicationController") => Some(WorkloadKind::ReplicationController),
            _ => None,
        }
    }

    /// The path of the PodSpec inside the object.
    pub fn pod_spec_path(self) -> &'static [&'static str] {
        match self {
            WorkloadKind::Pod => &["spec"],
            WorkloadKind::CronJob => &["spec", "jobTemplate", "spec", "template", "spec"],
            _ => &["spec", "template", "spec"],
        }
    }

    /// The plural resource name, as `match[].resource` names it.
    pub fn resource(self) -> &'static str {
        match self {
            WorkloadKind::Pod => "pods",
            WorkloadKind::Deployment => "deployments",
            WorkloadKind::ReplicaSet => "replicasets",
            WorkloadKind::StatefulSet => "statefulsets",
            WorkloadKind::DaemonSet => "daemonsets",
            WorkloadKind::Job => "jobs",
            WorkloadKind::CronJob => "cronjobs",
            WorkloadKind::ReplicationController => "replicationcontrollers",
        }
    }

    /// Kinds whose scale-down the reference exempts from verification.
    pub fn scales_down(self) -> bool {
        matches!(
            self,
            WorkloadKind::Deployment | WorkloadKind::ReplicaSet | WorkloadKind::StatefulSet
        )
    }
}

/// One image reference in an object, as written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerImage {
    /// JSON field path, e.g. `spec.template.spec.containers[0].image`.
    pub path: String,
    /// JSON pointer to the same string, e.g. `/spec/template/spec/containers/0/image` (for
    /// patches; image volumes point at `…/image/reference`).
    pub pointer: String,
    pub image: String,
}

/// Why an object's images could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("malformed {kind:?} object: {path} {problem}")]
pub struct ImagesError {
    pub kind: WorkloadKind,
    pub path: String,
    pub problem: &'static str,
}

/// Every image of `object`, in the reference's order.
pub fn images_of(kind: WorkloadKind, object: &Value) -> Result<Vec<ContainerImage>, ImagesError> {
    let spec_path = kind.pod_spec_path().join(".");
    let malformed = |path: String, problem: &'static str| ImagesError {
        kind,
        path,
        problem,
    };
    let mut pod_spec = object;
    for (depth, segment) in kind.pod_spec_path().iter().enumerate() {
        pod_spec = match pod_spec.get(segment) {
            Some(value) if value.is_object() => value,
            Some(Value::Null) | None => return Ok(Vec::new()),
            Some(_) => {
                return Err(malformed(
                    kind.pod_spec_path()[..=depth].join("."),
                    "is not an object",
                ));
            }
        };
    }

    let spec_pointer: String = kind
        .pod_spec_path()
        .iter()
        .map(|s| format!("/{s}"))
        .collect();
    let mut images = Vec::new();
    for list in ["initContainers", "containers", "ephemeralContainers"] {
        for (index, container) in array_at(kind, pod_spec, list, &spec_path)?
            .iter()
            .enumerate()
        {
            let path = format!("{spec_path}.{list}[{index}].image");
            match container.get("image") {
                Some(Value::String(image)) => images.push(ContainerImage {
                    path,
                    pointer: format!("{spec_pointer}/{list}/{index}/image"),
                    image: image.clone(),
                }),
                // The apiserver rejects containers without an image after admission.
                None | Some(Value::Null) => {}
                Some(_) => return Err(malformed(path, "is not a string")),
            }
        }
    }
    for (index, volume) in array_at(kind, pod_spec, "volumes", &spec_path)?
        .iter()
        .enumerate()
    {
        let path = format!("{spec_path}.volumes[{index}].image");
        match volume.get("image").and_then(|image| image.get("reference")) {
            Some(Value::String(image)) => images.push(ContainerImage {
                path,
                pointer: format!("{spec_pointer}/volumes/{index}/image/reference"),
                image: image.clone(),
            }),
            None | Some(Value::Null) => {}
            Some(_) => return Err(malformed(path, "reference is not a string")),
        }
    }
    Ok(images)
}

fn array_at<'a>(
    kind: WorkloadKind,
    pod_spec: &'a Value,
    field: &str,
    spec_path: &str,
) -> Result<&'a [Value], ImagesError> {
    match pod_spec.get(field) {
        None | Some(Value::Null) => Ok(&[]),
        Some(Value::Array(items)) => Ok(items),
        Some(_) => Err(ImagesError {
            kind,
            path: format!("{spec_path}.{field}"),
            problem: "is not a list",
        }),
    }
}

/// The pod spec's service account and image pull secrets, for registry credentials.
pub fn workload_credentials(
    kind: WorkloadKind,
    object: &Value,
    namespace: Option<&str>,
) -> crate::registry::WorkloadCredentials {
    let pod_spec = kind
        .pod_spec_path()
        .iter()
        .try_fold(object, |value, segment| value.get(segment));
    let service_account = pod_spec.and_then(|spec| {
        spec.get("serviceAccountName")
            .or_else(|| spec.get("serviceAccount"))
            .and_then(Value::as_str)
            .filter(|name| !name.is_empty())
            .map(str::to_string)
    });
    let image_pull_secrets = pod_spec
        .and_then(|spec| spec.get("imagePullSecrets"))
        .and_then(Value::as_array)
        .map(|secrets| {
            secrets
                .iter()
                .filter_map(|s| s.get("name").and_then(Value::as_str))
                .filter(|name| !name.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    crate::registry::WorkloadCredentials {
        namespace: namespace.map(str::to_string),
        service_account,
        image_pull_secrets,
    }
}

/// The object's own `metadata.labels` (what `match[].selector` looks at).
pub fn labels_of(object: &Value) -> std::collections::BTreeMap<String, String> {
    object
        .pointer("/metadata/labels")
        .and_then(Value::as_object)
        .map(|labels| {
            labels
                .iter()
                .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

/// `spec.replicas` of an object, when it is a number.
pub fn replicas(object: &Value) -> Option<i64> {
    object.get("spec")?.get("replicas")?.as_i64()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fixture(name: &str) -> Value {
        let path = format!("{}/tests/fixtures/{name}.json", env!("CARGO_MANIFEST_DIR"));
        let review: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        review["request"]["object"].clone()
    }

    fn paths(images: &[ContainerImage]) -> Vec<&str> {
        images.iter().map(|i| i.path.as_str()).collect()
    }

    #[test]
    fn every_kind_with_reference_paths() {
        let template = [
            "spec.template.spec.initContainers[0].image",
            "spec.template.spec.containers[0].image",
            "spec.template.spec.containers[1].image",
        ];
        for (fixture_name, kind) in [
            ("deployment", WorkloadKind::Deployment),
            ("replicaset", WorkloadKind::ReplicaSet),
            ("statefulset", WorkloadKind::StatefulSet),
            ("daemonset", WorkloadKind::DaemonSet),
            ("replicationcontroller", WorkloadKind::ReplicationController),
        ] {
            let images = images_of(kind, &fixture(fixture_name)).unwrap();
            assert_eq!(paths(&images), template, "{fixture_name}");
            assert_eq!(images[2].image, "ghcr.io/example-org/sidecar:v1");
        }
        let pod = images_of(WorkloadKind::Pod, &fixture("pod")).unwrap();
        assert_eq!(
            paths(&pod),
            [
                "spec.initContainers[0].image",
                "spec.containers[0].image",
                "spec.containers[1].image"
            ]
        );
        let job = images_of(WorkloadKind::Job, &fixture("job")).unwrap();
        assert_eq!(paths(&job), ["spec.template.spec.containers[0].image"]);
        let cron = images_of(WorkloadKind::CronJob, &fixture("cronjob")).unwrap();
        assert_eq!(
            paths(&cron),
            ["spec.jobTemplate.spec.template.spec.containers[0].image"]
        );
        assert_eq!(cron[0].image, "docker.io/library/busybox:1.36");
    }

    #[test]
    fn ephemeral_containers_and_image_volumes() {
        let pod = json!({"spec": {
            "containers": [{"name": "a", "image": "a:1"}],
            "ephemeralContainers": [{"name": "debug", "image": "busybox"}],
            "volumes": [{"name": "cfg", "configMap": {"name": "x"}}, {"name": "data", "image": {"reference": "ghcr.io/org/data:v1"}}]
        }});
        let images = images_of(WorkloadKind::Pod, &pod).unwrap();
        assert_eq!(
            paths(&images),
            [
                "spec.containers[0].image",
                "spec.ephemeralContainers[0].image",
                "spec.volumes[1].image"
            ]
        );
        assert_eq!(images[2].image, "ghcr.io/org/data:v1");
        let pointers: Vec<&str> = images.iter().map(|i| i.pointer.as_str()).collect();
        assert_eq!(
            pointers,
            [
                "/spec/containers/0/image",
                "/spec/ephemeralContainers/0/image",
                "/spec/volumes/1/image/reference"
            ]
        );
        let cron = images_of(WorkloadKind::CronJob, &fixture("cronjob")).unwrap();
        assert_eq!(
            cron[0].pointer,
            "/spec/jobTemplate/spec/template/spec/containers/0/image"
        );
    }

    #[test]
    fn credentials_of_a_workload() {
        let deployment = json!({"spec": {"template": {"spec": {
            "serviceAccountName": "builder",
            "imagePullSecrets": [{"name": "regcred"}, {"name": ""}, {"name": "other"}],
            "containers": [{"image": "a"}]
        }}}});
        let credentials =
            workload_credentials(WorkloadKind::Deployment, &deployment, Some("team-a"));
        assert_eq!(credentials.namespace.as_deref(), Some("team-a"));
        assert_eq!(credentials.service_account.as_deref(), Some("builder"));
        assert_eq!(credentials.image_pull_secrets, ["regcred", "other"]);
        let bare = workload_credentials(WorkloadKind::Pod, &json!({"spec": {}}), None);
        assert_eq!(bare, crate::registry::WorkloadCredentials::default());
    }

    #[test]
    fn malformed_objects_are_errors_not_panics() {
        let err = images_of(
            WorkloadKind::Pod,
            &json!({"spec": {"containers": {"a": 1}}}),
        )
        .unwrap_err();
        assert_eq!(err.path, "spec.containers");
        let err = images_of(
            WorkloadKind::Pod,
            &json!({"spec": {"containers": [{"image": 5}]}}),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "malformed Pod object: spec.containers[0].image is not a string"
        );
        let err =
            images_of(WorkloadKind::Deployment, &json!({"spec": {"template": 3}})).unwrap_err();
        assert_eq!(err.path, "spec.template");
        assert!(images_of(WorkloadKind::Pod, &json!({})).unwrap().is_empty());
    }
}
