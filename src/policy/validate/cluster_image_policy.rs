//! ClusterImagePolicy rules: the reference's, in its order and words, then verity's own.
//!
//! Each check returns errors with paths relative to the field it checks; the caller adds the
//! field name, as knative's `ViaField` does, so the paths come out like the reference's.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use super::{ValidationOptions, go_url, key_material, kms, oci, regexp};
use crate::field_error::{FieldError, FieldErrors, Level};
use crate::image::Repository;
use crate::policy::crd::{
    Attestation, Authority, ClusterImagePolicySpec, ConfigMapReference, Identity, ImagePattern,
    KeyRef, KeylessRef, MatchResource, Policy, RemotePolicy, Source, StaticRef,
};
use crate::policy::glob::Glob;

const MODES: [&str; 2] = ["enforce", "warn"];
const RESOURCES: [&str; 7] = [
    "pods",
    "deployments",
    "replicasets",
    "statefulsets",
    "daemonsets",
    "jobs",
    "cronjobs",
];
const STATIC_ACTIONS: [&str; 2] = ["pass", "fail"];
const HASH_ALGORITHMS: [&str; 4] = ["sha224", "sha256", "sha384", "sha512"];
const POLICY_TYPES: [&str; 2] = ["cue", "rego"];
const SIGNATURE_FORMATS: [&str; 2] = ["legacy", "bundle"];
/// cosign's short predicate names, accepted by the reference with a deprecation warning.
const SHORT_PREDICATE_TYPES: [&str; 7] = [
    "custom",
    "slsaprovenance",
    "spdx",
    "spdxjson",
    "cyclonedx",
    "link",
    "vuln",
];
const LABEL_SELECTOR_OPERATORS: [&str; 4] = ["In", "NotIn", "Exists", "DoesNotExist"];

const DEPRECATED_PREDICATE_TYPE: &str = "deprecated value, please use RFC 3986 conformant values";
const FOREIGN_SECRET_NAMESPACE: &str = "secretref.namespace is invalid. If set, it should use the same namespace where the policy-controller was deployed";
const UNANCHORED_REGEX: &str = "regex is not anchored with ^...$, so it matches anywhere in the value (.*@example.com also matches x@example.com.evil)";

/// Where a `policy` sits: only the ClusterImagePolicy-level one may ask for extra input.
#[derive(Clone, Copy, PartialEq, Eq)]
enum PolicyLevel {
    ClusterImagePolicy,
    Attestation,
}

/// What a `KeyRef` holds: a signing key (`key`) or a root certificate (`keyless.ca-cert`).
#[derive(Clone, Copy, PartialEq, Eq)]
enum KeyRole {
    SigningKey,
    CaCert,
}

/// Every rule, with paths from `spec.`.
pub(super) fn check_spec(
    spec: &ClusterImagePolicySpec,
    options: &ValidationOptions,
) -> FieldErrors {
    let mut errors = FieldErrors::new();
    if spec.images.is_empty() {
        errors.push(FieldError::missing_field(["images"]));
    }
    for (index, image) in spec.images.iter().enumerate() {
        errors.extend(check_image(image).via_field_index("images", index));
    }
    if spec.authorities.is_empty() && options.fail_on_empty_authorities {
        errors.push(FieldError::missing_field(["authorities"]));
    }
    for (index, authority) in spec.authorities.iter().enumerate() {
        errors.extend(check_authority(authority, options).via_field_index("authorities", index));
    }
    if let Some(mode) = spec.mode.as_deref()
        && !mode.is_empty()
        && !MODES.contains(&mode)
    {
        errors.push(FieldError::invalid_value(mode, "mode").with_details("unsupported mode"));
    }
    for (index, match_resource) in spec.match_resources.iter().enumerate() {
        errors.extend(check_match(match_resource).via_field_index("match", index));
    }
    if let Some(policy) = &spec.policy {
        // The reference reports these without the `policy.` segment (`spec.type`); verity
        // names the field.
        errors.extend(check_policy(policy, PolicyLevel::ClusterImagePolicy).via_field("policy"));
        errors.push(unsupported_policy("policy"));
    }
    errors.via_field("spec")
}

fn check_image(image: &ImagePattern) -> FieldErrors {
    if image.glob.is_empty() {
        return FieldError::missing_field(["glob"]).into();
    }
    match Glob::compile(&image.glob) {
        Ok(_) => FieldErrors::new(),
        Err(err) => FieldError::invalid_value(&image.glob, "glob")
            .with_details(err.to_string())
            .into(),
    }
}

fn check_match(match_resource: &MatchResource) -> FieldErrors {
    let mut errors = FieldErrors::new();
    let resource = &match_resource.resource;
    if !resource.is_empty() && !RESOURCES.contains(&resource.as_str()) {
        errors.push(
            FieldError::invalid_value(resource, "resource")
                .with_details("unsupported resource name"),
        );
    }
    if let Some(selector) = &match_resource.selector {
        if resource.is_empty()
            && match_resource.version.is_empty()
            && match_resource.group.is_empty()
        {
            errors.push(
                FieldError::invalid_value(resource, "selector")
                    .with_details("selector requires a resource type to match the labels"),
            );
        }
        errors.extend(check_label_selector(selector).via_field("selector"));
    }
    errors
}

/// verity: a selector it could not evaluate would silently match nothing (or everything), so
/// expressions must be well formed, as the Kubernetes API requires elsewhere.
fn check_label_selector(selector: &LabelSelector) -> FieldErrors {
    let mut errors = FieldErrors::new();
    for (index, requirement) in selector.match_expressions.iter().flatten().enumerate() {
        let mut requirement_errors = FieldErrors::new();
        if requirement.key.is_empty() {
            requirement_errors.push(FieldError::missing_field(["key"]));
        }
        let operator = requirement.operator.as_str();
        let has_values = requirement.values.as_ref().is_some_and(|v| !v.is_empty());
        match operator {
            "In" | "NotIn" if !has_values => requirement_errors.push(
                FieldError::missing_field(["values"])
                    .with_details("must be specified when `operator` is 'In' or 'NotIn'"),
            ),
            "Exists" | "DoesNotExist" if has_values => {
                requirement_errors.push(FieldError::disallowed(["values"]).with_details(
                    "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
                ))
            }
            _ if !LABEL_SELECTOR_OPERATORS.contains(&operator) => requirement_errors.push(
                FieldError::invalid_value(operator, "operator").with_details(format!(
                    "{operator:?} is not a valid label selector operator"
                )),
            ),
            _ => {}
        }
        errors.extend(requirement_errors.via_field_index("matchExpressions", index));
    }
    errors
}

fn check_authority(authority: &Authority, options: &ValidationOptions) -> FieldErrors {
    let kinds = [
        authority.key.is_some(),
        authority.keyless.is_some(),
        authority.static_ref.is_some(),
    ];
    // Like the reference, stop here: the rest would only pile up noise.
    match kinds.iter().filter(|set| **set).count() {
        0 => return FieldError::missing_one_of(["key", "keyless", "static"]).into(),
        1 => {}
        _ => return FieldError::multiple_one_of(["key", "keyless", "static"]).into(),
    }

    let mut errors = FieldErrors::new();
    if let Some(key) = &authority.key {
        errors.extend(check_key_ref(key, KeyRole::SigningKey, options).via_field("key"));
    }
    if let Some(keyless) = &authority.keyless {
        errors.extend(check_keyless(keyless, options).via_field("keyless"));
    }
    if let Some(static_ref) = &authority.static_ref {
        errors.extend(check_static(static_ref).via_field("static"));
        // A static answer ignores everything that says how to find or check a signature.
        let combined = [
            ("attestations", !authority.attestations.is_empty()),
            ("source", !authority.sources.is_empty()),
            ("ctlog", authority.ctlog.is_some()),
            ("rfc3161timestamp", authority.rfc3161timestamp.is_some()),
            // verity: annotations are a signature requirement, meaningless here too.
            (
                "annotations",
                authority
                    .annotations
                    .as_ref()
                    .is_some_and(|a| !a.is_empty()),
            ),
        ];
        for (field, present) in combined {
            if present {
                errors.push(FieldError::multiple_one_of(["static", field]));
            }
        }
    }
    if authority.sources.len() > 1 {
        errors.push(
            FieldError::invalid_value("source", "source")
                .with_details("only single source is supported"),
        );
    } else {
        for (index, source) in authority.sources.iter().enumerate() {
            errors.extend(check_source(source).via_field_index("source", index));
        }
    }
    // The reference reports attestation errors without the index (`attestations.name`);
    // kept, since users see these texts in the reference's documentation and tests.
    for attestation in &authority.attestations {
        errors.extend(check_attestation(attestation).via_field("attestations"));
    }

    // verity's own rules.
    if !authority.attestations.is_empty() {
        errors.push(
            FieldError::new("attestations are not supported by verity yet", vec!["attestations".into()])
                .with_details("verity verifies image signatures only and does not load a policy it cannot enforce; remove attestations to require a signature from this authority instead"),
        );
    }
    for (index, attestation) in authority.attestations.iter().enumerate() {
        if attestation.policy.is_some() {
            errors.push(unsupported_policy(&format!("attestations[{index}].policy")));
        }
    }
    if authority.rfc3161timestamp.is_some() {
        errors.push(
            FieldError::new("rfc3161timestamp is not supported by verity yet", vec!["rfc3161timestamp".into()])
                .with_details("verity cannot verify RFC 3161 signed timestamps yet and does not load a policy it cannot enforce; remove rfc3161timestamp from this authority"),
        );
    }
    if let Some(format) = authority.signature_format.as_deref()
        && !format.is_empty()
        && !SIGNATURE_FORMATS.contains(&format)
    {
        errors.push(
            FieldError::invalid_value(format, "signatureFormat")
                .with_details("supported formats are legacy and bundle"),
        );
    }
    if authority
        .annotations
        .as_ref()
        .is_some_and(|annotations| annotations.keys().any(String::is_empty))
    {
        errors.push(FieldError::new(
            "annotation keys must not be empty",
            vec!["annotations".into()],
        ));
    }
    errors
}

fn check_static(static_ref: &StaticRef) -> FieldErrors {
    let action = static_ref.action.as_str();
    if action.is_empty() {
        FieldError::missing_field(["action"]).into()
    } else if !STATIC_ACTIONS.contains(&action) {
        FieldError::invalid_value(action, "action")
            .with_details("unsupported action")
            .into()
    } else {
        FieldErrors::new()
    }
}

fn check_key_ref(key: &KeyRef, role: KeyRole, options: &ValidationOptions) -> FieldErrors {
    let mut errors = FieldErrors::new();
    let data = key.data.as_deref().filter(|data| !data.is_empty());
    let kms = key.kms.as_deref().filter(|kms| !kms.is_empty());
    let secret_ref = key.secret_ref.as_ref();
    let one_of = ["data", "kms", "secretref"];
    if data.is_none() && kms.is_none() && secret_ref.is_none() {
        errors.push(FieldError::missing_one_of(one_of));
    }
    if let Some(hash_algorithm) = key.hash_algorithm.as_deref() {
        let normalized = hash_algorithm.trim().to_ascii_lowercase();
        if !normalized.is_empty() && !HASH_ALGORITHMS.contains(&normalized.as_str()) {
            errors.push(FieldError::invalid_value(hash_algorithm, "hashAlgorithm"));
        }
    }
    if let Some(data) = data {
        if kms.is_some() || secret_ref.is_some() {
            errors.push(FieldError::multiple_one_of(one_of));
        }
        let checked = match role {
            KeyRole::SigningKey => key_material::check_public_key_pem(data).map(|_| ()),
            KeyRole::CaCert => key_material::check_certificates_pem(data).map(|_| ()),
        };
        if let Err(reason) = checked {
            errors.push(FieldError::invalid_value(data, "data").with_details(reason));
        }
    } else if kms.is_some() && secret_ref.is_some() {
        errors.push(FieldError::multiple_one_of(one_of));
    }
    if let Some(kms) = kms {
        let details = match kms::check_reference(kms) {
            Err(reason) => reason,
            // verity: the reference is well formed, but verity cannot fetch it.
            Ok(()) => match role {
                KeyRole::SigningKey => "KMS keys are not supported by verity yet; inline the public key with key.data or reference a Secret with key.secretRef".to_string(),
                KeyRole::CaCert => "KMS is not supported by verity for keyless.ca-cert; inline the certificate with ca-cert.data or reference a Secret with ca-cert.secretRef".to_string(),
            },
        };
        errors.push(FieldError::invalid_value(kms, "kms").with_details(details));
    }
    if let Some(secret_ref) = secret_ref {
        // verity: the Secret is looked up by name; without one there is nothing to read.
        if secret_ref.name.as_deref().is_none_or(str::is_empty) {
            errors.push(FieldError::missing_field(["secretref.name"]));
        }
        if let (Some(system_namespace), Some(namespace)) =
            (&options.system_namespace, secret_ref.namespace.as_deref())
            && !namespace.is_empty()
            && namespace != system_namespace
        {
            errors.push(
                FieldError::invalid_value(namespace, "secretref.namespace")
                    .with_details(FOREIGN_SECRET_NAMESPACE),
            );
        }
    }
    errors
}

fn check_keyless(keyless: &KeylessRef, options: &ValidationOptions) -> FieldErrors {
    let mut errors = FieldErrors::new();
    match (&keyless.url, &keyless.ca_cert) {
        (None, None) => errors.push(FieldError::missing_one_of(["url", "ca-cert"])),
        (Some(_), Some(_)) => errors.push(FieldError::multiple_one_of(["url", "ca-cert"])),
        _ => {}
    }
    if let Some(ca_cert) = &keyless.ca_cert {
        errors.extend(check_key_ref(ca_cert, KeyRole::CaCert, options).via_field("ca-cert"));
    }
    if keyless.identities.is_empty() {
        errors.push(FieldError::missing_field(["identities"]));
    }
    for (index, identity) in keyless.identities.iter().enumerate() {
        errors.extend(check_identity(identity).via_field_index("identities", index));
    }
    errors
}

fn check_identity(identity: &Identity) -> FieldErrors {
    let issuer = non_empty(&identity.issuer);
    let issuer_regexp = non_empty(&identity.issuer_regexp);
    let subject = non_empty(&identity.subject);
    let subject_regexp = non_empty(&identity.subject_regexp);
    let mut errors = FieldErrors::new();
    if issuer.is_some() && issuer_regexp.is_some() {
        errors.push(FieldError::multiple_one_of(["issuer", "issuerRegExp"]));
    }
    if subject.is_some() && subject_regexp.is_some() {
        errors.push(FieldError::multiple_one_of(["subject", "subjectRegExp"]));
    }
    if let Some(pattern) = issuer_regexp {
        errors.extend(check_identity_regexp(pattern, "issuerRegExp"));
    }
    if let Some(pattern) = subject_regexp {
        errors.extend(check_identity_regexp(pattern, "subjectRegExp"));
    }
    if subject.is_none() && subject_regexp.is_none() {
        errors.push(FieldError::missing_field(["subject", "subjectRegExp"]));
    }
    if issuer.is_none() && issuer_regexp.is_none() {
        errors.push(FieldError::missing_field(["issuer", "issuerRegExp"]));
    }
    errors
}

fn non_empty(value: &Option<String>) -> Option<&str> {
    value.as_deref().filter(|v| !v.is_empty())
}

fn check_identity_regexp(pattern: &str, field: &str) -> FieldErrors {
    match regexp::check_regex(pattern) {
        Err(details) => FieldError::invalid_value(pattern, field)
            .with_details(details)
            .into(),
        // Matching is unanchored, as in the reference; say so where it is likely a mistake.
        Ok(()) if !regexp::is_anchored(pattern) => {
            FieldError::new(UNANCHORED_REGEX, vec![field.to_string()])
                .at_level(Level::Warning)
                .into()
        }
        Ok(()) => FieldErrors::new(),
    }
}

fn check_source(source: &Source) -> FieldErrors {
    let mut errors = FieldErrors::new();
    if let Some(oci) = source.oci.as_deref().filter(|oci| !oci.is_empty()) {
        let checked = oci::check_signature_repository(oci).and_then(|()| {
            // verity reads signatures from a repository; what it cannot parse it cannot read.
            Repository::parse(oci).map(|_| ()).map_err(|err| {
                format!("{err}; write the signature repository as <registry>/<repository>")
            })
        });
        if let Err(details) = checked {
            errors.push(FieldError::invalid_value(oci, "oci").with_details(details));
        }
    }
    for (index, secret) in source.signature_pull_secrets.iter().enumerate() {
        if secret.name.is_empty() {
            errors.extend(
                FieldErrors::from(FieldError::missing_field(["name"]))
                    .via_field_index("signaturePullSecrets", index),
            );
        }
    }
    errors
}

fn check_attestation(attestation: &Attestation) -> FieldErrors {
    let mut errors = FieldErrors::new();
    if attestation.name.is_empty() {
        errors.push(FieldError::missing_field(["name"]));
    }
    let predicate_type = attestation.predicate_type.as_str();
    let deprecated = SHORT_PREDICATE_TYPES.contains(&predicate_type)
        || go_url::parse_request_uri(predicate_type).is_none();
    if predicate_type.is_empty() {
        errors.push(FieldError::missing_field(["predicateType"]));
    } else if deprecated {
        errors.push(
            FieldError::invalid_value(predicate_type, "predicateType")
                .with_details(DEPRECATED_PREDICATE_TYPE)
                .at_level(Level::Warning),
        );
    }
    if let Some(policy) = &attestation.policy {
        errors.extend(check_policy(policy, PolicyLevel::Attestation).via_field("policy"));
    }
    errors
}

fn check_policy(policy: &Policy, level: PolicyLevel) -> FieldErrors {
    let mut errors = FieldErrors::new();
    if !POLICY_TYPES.contains(&policy.policy_type.as_str()) {
        errors.push(
            FieldError::invalid_value(&policy.policy_type, "type")
                .with_details("only [cue,rego] are supported at the moment"),
        );
    }
    let sources = [
        policy.data.as_deref().is_some_and(|data| !data.is_empty()),
        policy.config_map_ref.is_some(),
        policy.remote.is_some(),
    ];
    let one_of = ["data", "configMapRef", "remote"];
    match sources.iter().filter(|set| **set).count() {
        0 => errors.push(FieldError::missing_field(one_of)),
        1 => {}
        _ => errors.push(FieldError::multiple_one_of(one_of)),
    }
    if let Some(remote) = &policy.remote {
        errors.extend(check_remote_policy(remote).via_field("remote"));
    }
    if let Some(config_map_ref) = &policy.config_map_ref {
        errors.extend(check_config_map_ref(config_map_ref).via_field("configMapRef"));
    }
    if level == PolicyLevel::Attestation {
        let cluster_level_only = [
            ("fetchConfigFile", policy.fetch_config_file.is_some()),
            ("includeSpec", policy.include_spec.is_some()),
            ("includeObjectMeta", policy.include_object_meta.is_some()),
            ("includeTypeMeta", policy.include_type_meta.is_some()),
        ];
        for (field, set) in cluster_level_only {
            if set {
                errors.push(FieldError::disallowed([field]));
            }
        }
    }
    errors
}

fn check_remote_policy(remote: &RemotePolicy) -> FieldErrors {
    let mut errors = FieldErrors::new();
    let https_with_host =
        go_url::parse(&remote.url).is_some_and(|url| url.scheme == "https" && !url.host.is_empty());
    if !https_with_host {
        errors.push(
            FieldError::invalid_value(&remote.url, "url")
                .with_details("url valid is invalid. host and https scheme are expected"),
        );
    }
    if remote.sha256sum.is_empty() {
        errors.push(FieldError::missing_field(["sha256sum"]));
    }
    errors
}

fn check_config_map_ref(config_map_ref: &ConfigMapReference) -> FieldErrors {
    let mut errors = FieldErrors::new();
    if config_map_ref.name.is_empty() {
        errors.push(FieldError::missing_field(["name"]));
    }
    if config_map_ref.key.is_empty() {
        errors.push(FieldError::missing_field(["key"]));
    }
    errors
}

fn unsupported_policy(path: &str) -> FieldError {
    FieldError::new(
        "cue and rego policies are not supported by verity yet",
        vec![path.to_string()],
    )
    .with_details("verity does not evaluate policies and does not load a policy it cannot enforce; remove policy to enforce the authorities alone")
}
