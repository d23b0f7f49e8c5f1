//! The `policy.sigstore.dev` custom resources, field for field as the reference defines them.
//!
//! ClusterImagePolicy v1alpha1 and v1beta1 have identical fields, so one Rust type serves both:
//! the CRD lists both versions with the same schema (v1alpha1 stored, conversion `None`), and
//! documents of either version deserialize into [`ClusterImagePolicySpec`].
//!
//! The OpenAPI schema stays as permissive as the reference's; every semantic rule lives in
//! [`super::validate`], which the file loader and the policy admission endpoint share.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub const GROUP: &str = "policy.sigstore.dev";
/// API versions under which ClusterImagePolicy documents are accepted.
pub const CIP_VERSIONS: [&str; 2] = ["v1alpha1", "v1beta1"];

/// ClusterImagePolicy defines the images that go through verification and the authorities used
/// for verification.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "policy.sigstore.dev",
    version = "v1alpha1",
    kind = "ClusterImagePolicy",
    shortname = "cip",
    category = "all",
    category = "sigstore",
    status = "PolicyStatus",
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Mode","type":"string","jsonPath":".spec.mode"}"#,
    printcolumn = r#"{"name":"Reason","type":"string","priority":1,"jsonPath":".status.conditions[?(@.type==\"Ready\")].reason"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct ClusterImagePolicySpec {
    /// Patterns of image names that are subject to this policy.
    #[serde(default)]
    pub images: Vec<ImagePattern>,
    /// Rules for discovering and validating signatures; any one of them suffices.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub authorities: Vec<Authority>,
    /// Policy applied to the successfully validated authorities (cue or rego).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<Policy>,
    /// `enforce` (default) rejects failing images; `warn` admits them with a warning.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// Resources this policy applies to; none means every checked kind.
    #[serde(default, rename = "match", skip_serializing_if = "Vec::is_empty")]
    pub match_resources: Vec<MatchResource>,
}

/// An image name pattern.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct ImagePattern {
    /// Glob: `*` matches within one path component, `**` across components.
    #[serde(default)]
    pub glob: String,
}

/// One way to satisfy a policy: a key, a keyless identity, or a static answer.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Authority {
    /// Defaults to `authority-<index>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<KeyRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keyless: Option<KeylessRef>,
    #[serde(default, rename = "static", skip_serializing_if = "Option::is_none")]
    pub static_ref: Option<StaticRef>,
    /// Where signatures are read from (at most one entry).
    #[serde(default, rename = "source", skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<Source>,
    /// Transparency log (Rekor) requirements.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ctlog: Option<TLog>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attestations: Vec<Attestation>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rfc3161timestamp: Option<Rfc3161Timestamp>,
    /// `legacy` (tag-based `.sig`) or `bundle` (Sigstore bundle via OCI referrers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature_format: Option<String>,
    /// verity extension: annotations (cosign `-a k=v`) a signature must carry, all of them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

/// A public key: exactly one of `data`, `secretRef`, `kms`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KeyRef {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<SecretReference>,
    /// Inline PEM public key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kms: Option<String>,
    /// sha224, sha256 (default), sha384 or sha512.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash_algorithm: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct SecretReference {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct LocalObjectReference {
    #[serde(default)]
    pub name: String,
}

/// Keyless (Fulcio certificate) verification.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KeylessRef {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub identities: Vec<Identity>,
    /// An extra trusted root CA (honoured by verity; ignored by the reference).
    #[serde(default, rename = "ca-cert", skip_serializing_if = "Option::is_none")]
    pub ca_cert: Option<KeyRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trust_root_ref: Option<String>,
    #[serde(
        default,
        rename = "insecureIgnoreSCT",
        skip_serializing_if = "Option::is_none"
    )]
    pub insecure_ignore_sct: Option<bool>,
}

/// An expected signer identity; `issuer`/`subject` match exactly, the `*RegExp` forms by regexp.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Identity {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    #[serde(
        default,
        rename = "issuerRegExp",
        skip_serializing_if = "Option::is_none"
    )]
    pub issuer_regexp: Option<String>,
    #[serde(
        default,
        rename = "subjectRegExp",
        skip_serializing_if = "Option::is_none"
    )]
    pub subject_regexp: Option<String>,
}

/// Admit (`pass`) or reject (`fail`) without looking at signatures.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct StaticRef {
    #[serde(default)]
    pub action: String,
    /// Used in the denial text for `fail`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// Where signatures live, when not next to the image.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Source {
    /// Repository holding the signatures (like `COSIGN_REPOSITORY`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oci: Option<String>,
    /// dockerconfigjson Secrets used to read signatures.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub signature_pull_secrets: Vec<LocalObjectReference>,
    /// Prefix of the cosign attachment tags.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag_prefix: Option<String>,
}

/// Transparency log settings.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TLog {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trust_root_ref: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Rfc3161Timestamp {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trust_root_ref: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Attestation {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub predicate_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<Policy>,
}

/// A cue or rego policy; exactly one of `data`, `remote`, `configMapRef`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Policy {
    #[serde(default, rename = "type")]
    pub policy_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote: Option<RemotePolicy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_map_ref: Option<ConfigMapReference>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fetch_config_file: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_spec: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_object_meta: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_type_meta: Option<bool>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct RemotePolicy {
    #[serde(default)]
    pub url: String,
    #[serde(default)]
    pub sha256sum: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct ConfigMapReference {
    #[serde(default)]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(default)]
    pub key: String,
}

/// Selects admitted resources by group/version/resource and the object's own labels.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct MatchResource {
    #[serde(default)]
    pub group: String,
    #[serde(default)]
    pub version: String,
    #[serde(default)]
    pub resource: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<LabelSelector>,
}

/// Status written by verity in cluster mode: a `Ready` condition.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PolicyStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    #[serde(rename = "type")]
    pub condition_type: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<String>,
}

/// TrustRoot: the keys and certificates trusted for verification; exactly one of `remote`,
/// `repository`, `sigstoreKeys` (or the newer `trustedRootJSON`).
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "policy.sigstore.dev",
    version = "v1alpha1",
    kind = "TrustRoot",
    category = "all",
    category = "sigstore",
    status = "PolicyStatus",
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct TrustRootSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote: Option<Remote>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository: Option<Repository>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sigstore_keys: Option<SigstoreKeys>,
    /// A serialized `trusted_root.json`.
    #[serde(
        default,
        rename = "trustedRootJSON",
        skip_serializing_if = "Option::is_none"
    )]
    pub trusted_root_json: Option<String>,
}

/// A TUF repository fetched from a mirror.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Remote {
    /// Base64 of the trusted initial `root.json`.
    #[serde(default)]
    pub root: String,
    #[serde(default)]
    pub mirror: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub targets: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trusted_root_target: Option<String>,
}

/// An air-gapped TUF repository.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Repository {
    /// Base64 of the trusted initial `root.json`.
    #[serde(default)]
    pub root: String,
    /// Base64 of a tar.gz of the repository (metadata and targets).
    #[serde(default, rename = "mirrorFS")]
    pub mirror_fs: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub targets: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trusted_root_target: Option<String>,
}

/// Bring-your-own keys and certificates.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SigstoreKeys {
    #[serde(default)]
    pub certificate_authorities: Vec<CertificateAuthority>,
    #[serde(default, rename = "tLogs", skip_serializing_if = "Vec::is_empty")]
    pub tlogs: Vec<TransparencyLogInstance>,
    #[serde(default, rename = "ctLogs", skip_serializing_if = "Vec::is_empty")]
    pub ctlogs: Vec<TransparencyLogInstance>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub timestamp_authorities: Vec<CertificateAuthority>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TransparencyLogInstance {
    #[serde(default, rename = "baseURL")]
    pub base_url: String,
    #[serde(default)]
    pub hash_algorithm: String,
    /// Base64 of the PEM public key.
    #[serde(default)]
    pub public_key: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CertificateAuthority {
    #[serde(default)]
    pub subject: DistinguishedName,
    #[serde(default)]
    pub uri: String,
    /// Base64 of the PEM chain, leaf-most first, root last.
    #[serde(default)]
    pub cert_chain: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DistinguishedName {
    #[serde(default)]
    pub organization: String,
    #[serde(default)]
    pub common_name: String,
}

/// The CRDs generated from these types: ClusterImagePolicy served as v1alpha1 (stored) and
/// v1beta1 with the same schema (conversion `None`, since the fields are identical), and
/// TrustRoot v1alpha1.
pub fn custom_resource_definitions()
-> Vec<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition>
{
    use kube::CustomResourceExt;
    let mut cip = without_defaults(ClusterImagePolicy::crd());
    if let Some(stored) = cip.spec.versions.first().cloned() {
        let mut beta = stored;
        beta.name = "v1beta1".to_string();
        beta.storage = false;
        beta.served = true;
        cip.spec.versions.push(beta);
    }
    vec![cip, without_defaults(TrustRoot::crd())]
}

type Crd =
    k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;

/// The schemas without `default`s. `#[serde(default)]` makes schemars emit `default: ""` and
/// `default: {…}`, which kube-apiserver 1.20 rejects ("in body must be of type string: null"),
/// and which would make the apiserver write values users never set. The reference's schema has
/// no defaults either; defaulting is verity's, in `validate::set_defaults`.
fn without_defaults(mut crd: Crd) -> Crd {
    for version in &mut crd.spec.versions {
        if let Some(schema) = version
            .schema
            .as_mut()
            .and_then(|s| s.open_api_v3_schema.as_mut())
        {
            strip_defaults(schema);
        }
    }
    crd
}

fn strip_defaults(
    schema: &mut k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::JSONSchemaProps,
) {
    schema.default = None;
    for child in schema.properties.iter_mut().flat_map(|p| p.values_mut()) {
        strip_defaults(child);
    }
    if let Some(items) = schema.items.as_mut() {
        use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::JSONSchemaPropsOrArray;
        match items {
            JSONSchemaPropsOrArray::Schema(item) => strip_defaults(item),
            JSONSchemaPropsOrArray::Schemas(list) => list.iter_mut().for_each(strip_defaults),
        }
    }
    if let Some(additional) = schema.additional_properties.as_mut() {
        use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::JSONSchemaPropsOrBool;
        if let JSONSchemaPropsOrBool::Schema(inner) = additional {
            strip_defaults(inner);
        }
    }
    for group in [&mut schema.all_of, &mut schema.any_of, &mut schema.one_of]
        .into_iter()
        .flatten()
    {
        group.iter_mut().for_each(strip_defaults);
    }
    if let Some(not) = schema.not.as_mut() {
        strip_defaults(not);
    }
}

/// The CRDs as a multi-document YAML stream (what `verity crds` prints).
pub fn custom_resource_definitions_yaml() -> Result<String, serde_saphyr::SerializeError> {
    let mut out = String::new();
    for crd in custom_resource_definitions() {
        out.push_str("---\n");
        out.push_str(&serde_saphyr::to_string(&crd)?);
    }
    Ok(out)
}

#[cfg(test)]
mod crd_tests {
    use super::*;

    #[test]
    fn both_versions_served_with_identical_schemas() {
        let crds = custom_resource_definitions();
        let cip = &crds[0];
        assert_eq!(
            cip.spec.names.short_names.as_deref(),
            Some(&["cip".to_string()][..])
        );
        assert_eq!(cip.spec.scope, "Cluster");
        let versions: Vec<(&str, bool, bool)> = cip
            .spec
            .versions
            .iter()
            .map(|v| (v.name.as_str(), v.served, v.storage))
            .collect();
        assert_eq!(
            versions,
            [("v1alpha1", true, true), ("v1beta1", true, false)]
        );
        assert_eq!(cip.spec.versions[0].schema, cip.spec.versions[1].schema);
        // `kubectl get cip` asks for v1beta1: the printer columns must be on both versions.
        assert_eq!(
            cip.spec.versions[0].additional_printer_columns,
            cip.spec.versions[1].additional_printer_columns
        );
        let columns: Vec<&str> = cip.spec.versions[1]
            .additional_printer_columns
            .iter()
            .flatten()
            .map(|c| c.name.as_str())
            .collect();
        assert_eq!(columns, ["Ready", "Mode", "Reason", "Age"]);
        assert_eq!(crds[1].spec.names.kind, "TrustRoot");
        // kube-apiserver 1.20 rejects `default: ""` in structural schemas.
        let json = serde_json::to_string(&crds).unwrap();
        assert!(!json.contains("\"default\""), "schemas carry defaults");
        let yaml = custom_resource_definitions_yaml().unwrap();
        assert!(yaml.contains("name: clusterimagepolicies.policy.sigstore.dev"));
        assert!(yaml.contains("name: trustroots.policy.sigstore.dev"));
    }
}
