//! Where policies come from: YAML files (standalone) or, later, a Kubernetes watch. Both turn
//! documents into a whole [`PolicySnapshot`](super::index::PolicySnapshot).

pub mod file;

use std::collections::BTreeMap;

use base64::Engine as _;
use serde_json::Value;

use std::sync::Arc;

use super::compiled::{self, CompileContext, Compiled};
use super::crd::{CIP_VERSIONS, ClusterImagePolicySpec, GROUP, TrustRootSpec};
use super::index::{PolicyEntry, PolicySnapshot, Settings};
use super::trust_roots::{Secrets, TrustRoots};
use super::validate::{self, ValidationOptions};
use crate::field_error::{FieldErrors, Level};
use crate::registry::{DocumentCredentials, Keychain};
use crate::verify::trust::{TrustError, TrustMaterial};

/// How documents become a snapshot.
#[derive(Clone, Debug)]
pub struct LoadOptions {
    pub settings: Settings,
    pub validation: ValidationOptions,
    /// Trust material for authorities without `trustRootRef`: the embedded public-good root or
    /// `--trust-root`.
    pub default_trust: Arc<TrustMaterial>,
}

impl LoadOptions {
    /// The given settings with reference validation and the embedded public-good trust root.
    pub fn with_production_trust(settings: Settings) -> Result<Self, TrustError> {
        Ok(LoadOptions {
            settings,
            validation: ValidationOptions::default(),
            default_trust: Arc::new(TrustMaterial::production()?),
        })
    }
}

/// Registry credentials from `kubernetes.io/dockerconfigjson` (and legacy `dockercfg`) Secret
/// documents, by Secret name; other Secrets (public keys for `key.secretRef`) are skipped.
pub fn pull_credentials(documents: &Documents) -> Result<DocumentCredentials, LoadError> {
    let mut credentials = DocumentCredentials::default();
    let mut problems = Vec::new();
    for secret in &documents.secrets {
        let parsed = match secret.secret_type.as_deref() {
            Some("kubernetes.io/dockerconfigjson") => secret
                .data
                .get(".dockerconfigjson")
                .map(|bytes| Keychain::from_docker_config_json(bytes)),
            Some("kubernetes.io/dockercfg") => secret
                .data
                .get(".dockercfg")
                .map(|bytes| Keychain::from_dockercfg(bytes)),
            _ => continue,
        };
        match parsed {
            Some(Ok(keychain)) => credentials.insert(&secret.name, keychain),
            Some(Err(err)) => {
                problems.push(format!("{}: Secret {}: {err}", secret.origin, secret.name))
            }
            None => problems.push(format!(
                "{}: Secret {} of type {} has no .dockerconfigjson/.dockercfg entry",
                secret.origin,
                secret.name,
                secret.secret_type.as_deref().unwrap_or_default()
            )),
        }
    }
    if problems.is_empty() {
        Ok(credentials)
    } else {
        Err(LoadError { problems })
    }
}

/// The trust material a TrustRoot document describes.
pub fn trust_material_of(spec: &TrustRootSpec) -> Result<TrustMaterial, String> {
    if let Some(keys) = &spec.sigstore_keys {
        return TrustMaterial::from_sigstore_keys(keys).map_err(|e| e.to_string());
    }
    if let Some(json) = &spec.trusted_root_json {
        return TrustMaterial::from_trusted_root_json(json.as_bytes()).map_err(|e| e.to_string());
    }
    if spec.remote.is_some() {
        return Err("TrustRoot remote (a TUF mirror) is not supported by verity yet; use sigstoreKeys or trustedRootJSON".to_string());
    }
    if spec.repository.is_some() {
        return Err("TrustRoot repository (an offline TUF repository) is not supported by verity yet; use sigstoreKeys or trustedRootJSON".to_string());
    }
    Err("TrustRoot has none of sigstoreKeys, trustedRootJSON, remote, repository".to_string())
}

/// Where a document came from, for messages: `policies/a.yaml (document 2)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Origin {
    pub file: String,
    /// 1-based position in a multi-document file.
    pub document: usize,
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (document {})", self.file, self.document)
    }
}

/// A ClusterImagePolicy document.
#[derive(Clone, Debug)]
pub struct PolicyDocument {
    pub name: String,
    pub spec: ClusterImagePolicySpec,
    pub origin: Origin,
}

/// A TrustRoot document.
#[derive(Clone, Debug)]
pub struct TrustRootDocument {
    pub name: String,
    pub spec: TrustRootSpec,
    pub origin: Origin,
}

/// A Secret document (keys for `key.secretRef`, dockerconfigjson for pull secrets).
#[derive(Clone, Debug)]
pub struct SecretDocument {
    pub name: String,
    pub namespace: Option<String>,
    pub secret_type: Option<String>,
    /// Decoded `data` merged with `stringData`.
    pub data: BTreeMap<String, Vec<u8>>,
    pub origin: Origin,
}

/// Every document read from the policy sources.
#[derive(Clone, Debug, Default)]
pub struct Documents {
    pub policies: Vec<PolicyDocument>,
    pub trust_roots: Vec<TrustRootDocument>,
    pub secrets: Vec<SecretDocument>,
}

/// Why documents could not be turned into a snapshot; each entry names its origin.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}", .problems.join("\n"))]
pub struct LoadError {
    pub problems: Vec<String>,
}

impl LoadError {
    pub fn single(problem: impl Into<String>) -> Self {
        LoadError {
            problems: vec![problem.into()],
        }
    }
}

/// A warning that does not stop a policy from loading.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadWarning {
    pub origin: Origin,
    pub object: String,
    pub warnings: FieldErrors,
}

impl std::fmt::Display for LoadWarning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}: {}", self.origin, self.object, self.warnings)
    }
}

impl Documents {
    /// Adds the documents of one YAML stream.
    pub fn add_yaml(&mut self, file: &str, text: &str) -> Result<(), LoadError> {
        let values: Vec<Value> = serde_saphyr::from_multiple(text)
            .map_err(|e| LoadError::single(format!("{file}: not valid YAML: {e}")))?;
        let mut problems = Vec::new();
        for (index, value) in values.into_iter().enumerate() {
            let origin = Origin {
                file: file.to_string(),
                document: index + 1,
            };
            if value.is_null() {
                continue;
            }
            if let Err(problem) = self.add_value(value, origin.clone()) {
                problems.push(format!("{origin}: {problem}"));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(LoadError { problems })
        }
    }

    fn add_value(&mut self, value: Value, origin: Origin) -> Result<(), String> {
        let api_version = value
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or("");
        let kind = value.get("kind").and_then(Value::as_str).unwrap_or("");
        let name = value
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
        match (group, kind) {
            (GROUP, "ClusterImagePolicy") if CIP_VERSIONS.contains(&version) => {
                let spec = spec_of(&value, kind, &name)?;
                self.policies.push(PolicyDocument {
                    name: required_name(name, kind)?,
                    spec,
                    origin,
                });
            }
            (GROUP, "TrustRoot") if version == "v1alpha1" => {
                let spec = spec_of(&value, kind, &name)?;
                self.trust_roots.push(TrustRootDocument {
                    name: required_name(name, kind)?,
                    spec,
                    origin,
                });
            }
            ("", "Secret") if version == "v1" => {
                let secret = secret_of(&value)?;
                self.secrets.push(SecretDocument {
                    name: required_name(name, kind)?,
                    namespace: value
                        .pointer("/metadata/namespace")
                        .and_then(Value::as_str)
                        .map(str::to_string),
                    secret_type: value
                        .get("type")
                        .and_then(Value::as_str)
                        .map(str::to_string),
                    data: secret,
                    origin,
                });
            }
            _ => {
                return Err(format!(
                    "unsupported document {api_version}/{kind}: expected {GROUP}/v1alpha1 or v1beta1 ClusterImagePolicy, {GROUP}/v1alpha1 TrustRoot, or v1 Secret"
                ));
            }
        }
        Ok(())
    }
}

fn required_name(name: String, kind: &str) -> Result<String, String> {
    if name.is_empty() {
        Err(format!("{kind} has no metadata.name"))
    } else {
        Ok(name)
    }
}

fn spec_of<T: serde::de::DeserializeOwned>(
    value: &Value,
    kind: &str,
    name: &str,
) -> Result<T, String> {
    let spec = value
        .get("spec")
        .cloned()
        .unwrap_or(Value::Object(serde_json::Map::new()));
    serde_json::from_value(spec).map_err(|e| format!("{kind} {name}: malformed spec: {e}"))
}

fn secret_of(value: &Value) -> Result<BTreeMap<String, Vec<u8>>, String> {
    let mut data = BTreeMap::new();
    if let Some(entries) = value.get("data").and_then(Value::as_object) {
        for (key, encoded) in entries {
            let encoded = encoded
                .as_str()
                .ok_or_else(|| format!("Secret data.{key} is not a string"))?;
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(encoded.trim())
                .map_err(|e| format!("Secret data.{key} is not base64: {e}"))?;
            data.insert(key.clone(), decoded);
        }
    }
    if let Some(entries) = value.get("stringData").and_then(Value::as_object) {
        for (key, text) in entries {
            let text = text
                .as_str()
                .ok_or_else(|| format!("Secret stringData.{key} is not a string"))?;
            data.insert(key.clone(), text.as_bytes().to_vec());
        }
    }
    Ok(data)
}

/// Validates and compiles every document into a snapshot. All-or-nothing: any error rejects the
/// whole set, so a half-applied change never reaches admission.
pub fn build_snapshot(
    documents: &Documents,
    load: &LoadOptions,
    generation: u64,
) -> Result<(PolicySnapshot, Vec<LoadWarning>), LoadError> {
    let mut problems = Vec::new();
    let mut warnings = Vec::new();

    let mut trust_roots = TrustRoots::new(TrustMaterial::clone(&load.default_trust));
    for document in &documents.trust_roots {
        let object = format!("TrustRoot {}", document.name);
        let mut spec = document.spec.clone();
        validate::set_trust_root_defaults(&mut spec);
        let report = validate::validate_trust_root(&spec);
        if report.has_errors() {
            problems.push(format!(
                "{}: {object} is invalid: {}",
                document.origin,
                report.filter(Level::Error)
            ));
            continue;
        }
        if !report.is_empty() {
            warnings.push(LoadWarning {
                origin: document.origin.clone(),
                object: object.clone(),
                warnings: report,
            });
        }
        match trust_material_of(&spec) {
            Ok(material) => trust_roots.insert(&document.name, material),
            Err(problem) => problems.push(format!("{}: {object}: {problem}", document.origin)),
        }
    }
    let mut secrets = Secrets::default();
    for document in &documents.secrets {
        secrets.insert(&document.name, document.data.clone());
    }
    let context = CompileContext {
        options: &load.validation,
        secrets: &secrets,
        trust_roots: &trust_roots,
    };

    let mut entries = Vec::new();
    let mut seen: BTreeMap<&str, &Origin> = BTreeMap::new();
    for document in &documents.policies {
        let object = format!("ClusterImagePolicy {}", document.name);
        if let Some(first) = seen.insert(&document.name, &document.origin) {
            problems.push(format!(
                "{}: {object} is defined twice (first in {first})",
                document.origin
            ));
            continue;
        }
        match compiled::compile(&document.name, &document.spec, &context) {
            Ok(Compiled {
                policy,
                warnings: found,
            }) => {
                if !found.is_empty() {
                    warnings.push(LoadWarning {
                        origin: document.origin.clone(),
                        object,
                        warnings: found,
                    });
                }
                entries.push(PolicyEntry::Ready(policy));
            }
            Err(errors) => problems.push(format!(
                "{}: {object} is invalid: {errors}",
                document.origin
            )),
        }
    }
    if !problems.is_empty() {
        return Err(LoadError { problems });
    }
    let snapshot = PolicySnapshot::new(entries, load.settings.clone(), generation)
        .map_err(|e| LoadError::single(format!("failed to build the glob index: {e}")))?;
    Ok((snapshot, warnings))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_options() -> LoadOptions {
        LoadOptions::with_production_trust(Settings::default()).unwrap()
    }

    const TWO: &str = r#"
apiVersion: policy.sigstore.dev/v1alpha1
kind: ClusterImagePolicy
metadata: {name: allow-k8s}
spec:
  images: [{glob: "registry.k8s.io/**"}]
  authorities: [{static: {action: pass}}]
---
apiVersion: policy.sigstore.dev/v1beta1
kind: ClusterImagePolicy
metadata: {name: deny-hub}
spec:
  images: [{glob: "index.docker.io/**"}]
  authorities: [{static: {action: fail, message: mirror it}}]
---
apiVersion: v1
kind: Secret
metadata: {name: cosign-key, namespace: cosign-system}
stringData: {cosign.pub: "pem"}
"#;

    #[test]
    fn reads_multi_document_yaml_of_both_versions() {
        let mut documents = Documents::default();
        documents.add_yaml("a.yaml", TWO).unwrap();
        assert_eq!(documents.policies.len(), 2);
        assert_eq!(
            documents.policies[1].origin.to_string(),
            "a.yaml (document 2)"
        );
        assert_eq!(documents.secrets[0].data["cosign.pub"], b"pem");
        let (snapshot, warnings) = build_snapshot(&documents, &load_options(), 1).unwrap();
        assert_eq!(snapshot.len(), 2);
        assert!(warnings.is_empty());
    }

    #[test]
    fn rejects_unknown_kinds_duplicates_and_invalid_policies_with_origins() {
        let mut documents = Documents::default();
        let err = documents
            .add_yaml(
                "b.yaml",
                "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n",
            )
            .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("b.yaml (document 1): unsupported document v1/ConfigMap")
        );

        let mut documents = Documents::default();
        documents.add_yaml("a.yaml", TWO).unwrap();
        documents.add_yaml("c.yaml", TWO).unwrap();
        documents
            .add_yaml(
                "d.yaml",
                "apiVersion: policy.sigstore.dev/v1alpha1\nkind: ClusterImagePolicy\nmetadata: {name: empty}\nspec: {}\n",
            )
            .unwrap();
        let err = build_snapshot(&documents, &load_options(), 1).unwrap_err();
        assert_eq!(
            err.problems,
            [
                "c.yaml (document 1): ClusterImagePolicy allow-k8s is defined twice (first in a.yaml (document 1))",
                "c.yaml (document 2): ClusterImagePolicy deny-hub is defined twice (first in a.yaml (document 2))",
                "d.yaml (document 1): ClusterImagePolicy empty is invalid: missing field(s): spec.authorities, spec.images",
            ]
        );
    }

    #[test]
    fn malformed_yaml_and_specs_are_clear_errors() {
        let mut documents = Documents::default();
        let err = documents.add_yaml("e.yaml", "kind: [unclosed").unwrap_err();
        assert!(
            err.to_string().starts_with("e.yaml: not valid YAML"),
            "{err}"
        );
        let err = documents
            .add_yaml(
                "f.yaml",
                "apiVersion: policy.sigstore.dev/v1alpha1\nkind: ClusterImagePolicy\nmetadata: {name: x}\nspec: {images: 3}\n",
            )
            .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("f.yaml (document 1): ClusterImagePolicy x: malformed spec"),
            "{err}"
        );
    }
}
