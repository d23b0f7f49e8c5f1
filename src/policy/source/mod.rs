//! Where policies come from: YAML files (standalone) or a Kubernetes watch. Both turn
//! documents into a whole [`PolicySnapshot`] with the same
//! functions: [`compiled::compile`] for policies, [`compile_trust_root`] for TrustRoots, and
//! [`References`] for what policies refer to by name.

pub mod file;
pub mod kube;

use std::collections::{BTreeMap, BTreeSet};

use base64::Engine as _;
use serde_json::Value;

use std::sync::Arc;

use super::compiled::{self, CompileContext, Compiled};
use super::crd::{CIP_VERSIONS, ClusterImagePolicySpec, GROUP, TrustRootSpec};
use super::glob::Glob;
use super::index::{PolicyEntry, PolicySnapshot, Settings};
use super::trust_roots::{Secrets, TrustRoots};
use super::validate::{self, ValidationOptions};
use crate::field_error::{FieldError, FieldErrors, Level};
use crate::registry::{DocumentCredentials, Keychain};
use crate::verify::trust::{TrustError, TrustMaterial};
use crate::verify::tuf::{self, RemoteRepository, TufRoots};

/// How documents become a snapshot.
#[derive(Clone, Debug)]
pub struct LoadOptions {
    pub settings: Settings,
    pub validation: ValidationOptions,
    /// Trust material for authorities without `trustRootRef`: the embedded public-good root or
    /// `--trust-root`.
    pub default_trust: Arc<TrustMaterial>,
    /// Where `remote` TrustRoots (TUF mirrors) get their material.
    pub remote_trust: RemoteTrust,
}

/// How TrustRoots backed by a TUF mirror (`remote`) get their material. `repository`
/// TrustRoots (air-gapped TUF) need no network and are verified wherever they are compiled.
#[derive(Clone, Debug, Default)]
pub enum RemoteTrust {
    /// Never fetched (`verity validate`, the TrustRoot admission check): a `remote` TrustRoot is
    /// validated only, and policies naming it load as broken.
    #[default]
    Unfetched,
    /// Whatever the fetcher has, without starting a fetch (the policy admission endpoint).
    Lookup(TufRoots),
    /// Fetched in the background, starting when first compiled (the policy sources of `serve`).
    Fetch(TufRoots),
}

impl RemoteTrust {
    /// The fetcher, if there is one.
    pub fn fetcher(&self) -> Option<&TufRoots> {
        match self {
            RemoteTrust::Unfetched => None,
            RemoteTrust::Lookup(tuf) | RemoteTrust::Fetch(tuf) => Some(tuf),
        }
    }

    /// The same fetcher, consulted without starting fetches.
    pub fn lookup_only(&self) -> RemoteTrust {
        match self.fetcher() {
            Some(tuf) => RemoteTrust::Lookup(tuf.clone()),
            None => RemoteTrust::Unfetched,
        }
    }

    fn material(&self, repository: &RemoteRepository) -> Result<TrustMaterial, String> {
        match self {
            RemoteTrust::Unfetched => Err(format!(
                "the TUF repository at {} is not fetched here; verity serve fetches it in the background, and until it arrives the policies naming this TrustRoot deny their images",
                repository.mirror
            )),
            RemoteTrust::Lookup(tuf) => tuf.lookup(repository),
            RemoteTrust::Fetch(tuf) => tuf.follow(repository),
        }
    }
}

impl LoadOptions {
    /// The given settings with reference validation and the embedded public-good trust root.
    pub fn with_production_trust(settings: Settings) -> Result<Self, TrustError> {
        Ok(LoadOptions {
            settings,
            validation: ValidationOptions::default(),
            default_trust: Arc::new(TrustMaterial::production()?),
            remote_trust: RemoteTrust::Unfetched,
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

/// The trust material a TrustRoot document describes, for the kinds that need no network:
/// `sigstoreKeys`, `trustedRootJSON` and `repository` (an air-gapped TUF repository, verified
/// here). A `remote` one is fetched in the background by `serve` ([`compile_trust_root`]).
pub fn trust_material_of(spec: &TrustRootSpec) -> Result<TrustMaterial, String> {
    if let Some(keys) = &spec.sigstore_keys {
        return TrustMaterial::from_sigstore_keys(keys).map_err(|e| e.to_string());
    }
    if let Some(json) = &spec.trusted_root_json {
        return TrustMaterial::from_trusted_root_json(json.as_bytes()).map_err(|e| e.to_string());
    }
    if let Some(repository) = &spec.repository {
        let mut defaulted = spec.clone();
        validate::set_trust_root_defaults(&mut defaulted);
        let (targets, target) = defaulted
            .repository
            .map(|r| {
                (
                    r.targets.unwrap_or_default(),
                    r.trusted_root_target.unwrap_or_default(),
                )
            })
            .unwrap_or_default();
        let decode = |field: &str, text: &str| {
            base64::engine::general_purpose::STANDARD
                .decode(text.trim())
                .map_err(|e| format!("repository.{field} is not base64: {e}"))
        };
        let root = decode("root", &repository.root)?;
        let archive = decode("mirrorFS", &repository.mirror_fs)?;
        return tuf::trusted_root_from_archive(&root, &archive, &targets, &target).map_err(|e| {
            format!("the TUF repository in repository.mirrorFS does not verify: {e}")
        });
    }
    if let Some(remote) = &spec.remote {
        return Err(format!(
            "the TUF repository at {} is fetched from the network, by verity serve",
            remote.mirror
        ));
    }
    Err("TrustRoot has none of sigstoreKeys, trustedRootJSON, remote, repository".to_string())
}

/// What the fetcher needs to follow the `remote` TrustRoot `name`; `None` when the spec has no
/// usable `remote` (no remote, or a root that is not base64).
pub fn remote_repository(name: &str, spec: &TrustRootSpec) -> Option<RemoteRepository> {
    let mut spec = spec.clone();
    validate::set_trust_root_defaults(&mut spec);
    let remote = spec.remote?;
    let root = base64::engine::general_purpose::STANDARD
        .decode(remote.root.trim())
        .ok()?;
    Some(RemoteRepository {
        name: name.to_string(),
        mirror: remote.mirror,
        root,
        targets: remote.targets.unwrap_or_default(),
        trusted_root_target: remote.trusted_root_target.unwrap_or_default(),
    })
}

/// Why a TrustRoot cannot be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TrustRootError {
    /// It breaks the reference's validation rules.
    #[error("invalid: {0}")]
    Invalid(FieldErrors),
    /// It is valid but verity cannot use it (e.g. material that does not parse, or a TUF
    /// repository that does not verify).
    #[error("{0}")]
    Unusable(String),
    /// It is valid, and its material is fetched from a TUF mirror in the background but has not
    /// arrived (yet): policies naming it deny until it does.
    #[error("{0}")]
    Pending(String),
}

impl TrustRootError {
    pub fn reason(&self) -> &'static str {
        match self {
            TrustRootError::Invalid(_) => "invalid",
            TrustRootError::Unusable(_) => "unusable",
            TrustRootError::Pending(_) => "pending",
        }
    }
}

/// Defaults, validates and parses the TrustRoot `name`: its material and validation warnings.
/// The material of a `remote` one comes from `remote`.
pub fn compile_trust_root(
    name: &str,
    spec: &TrustRootSpec,
    remote: &RemoteTrust,
) -> Result<(TrustMaterial, FieldErrors), TrustRootError> {
    let mut spec = spec.clone();
    validate::set_trust_root_defaults(&mut spec);
    let report = validate::validate_trust_root(&spec);
    if report.has_errors() {
        return Err(TrustRootError::Invalid(report.filter(Level::Error)));
    }
    if spec.remote.is_some() {
        let repository = remote_repository(name, &spec)
            .ok_or_else(|| TrustRootError::Unusable("remote.root is not base64".to_string()))?;
        // What the mirror is fetched with must at least be a self-signed TUF root: refused now
        // rather than retried forever.
        tuf::check_root(&repository.root)
            .map_err(|e| TrustRootError::Unusable(format!("remote.root: {e}")))?;
        tuf::check_mirror(&repository.mirror)
            .map_err(|e| TrustRootError::Unusable(format!("remote.mirror: {e}")))?;
        let material = remote
            .material(&repository)
            .map_err(TrustRootError::Pending)?;
        return Ok((material, report));
    }
    let material = trust_material_of(&spec).map_err(TrustRootError::Unusable)?;
    Ok((material, report))
}

/// What policies refer to by name, and the rules they are compiled under: the state a policy is
/// compiled against, shared by the loaders and the policy admission endpoint.
#[derive(Clone, Debug)]
pub struct References {
    pub validation: ValidationOptions,
    /// Secrets in verity's namespace (`key.secretRef`).
    pub secrets: Secrets,
    /// The default trust root and every TrustRoot (broken ones with their error).
    pub trust_roots: TrustRoots,
}

impl References {
    /// Nothing loaded yet: the default trust root only.
    pub fn empty(load: &LoadOptions) -> Self {
        References {
            validation: load.validation.clone(),
            secrets: Secrets::default(),
            trust_roots: TrustRoots::new(TrustMaterial::clone(&load.default_trust)),
        }
    }

    pub fn context(&self) -> CompileContext<'_> {
        CompileContext {
            options: &self.validation,
            secrets: &self.secrets,
            trust_roots: &self.trust_roots,
        }
    }
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

impl Documents {
    /// The Secrets and TrustRoots of these documents as policies see them; a TrustRoot that does
    /// not compile is recorded as broken (the file loader rejects it separately).
    pub fn references(&self, load: &LoadOptions) -> References {
        let mut references = References::empty(load);
        for document in &self.trust_roots {
            match compile_trust_root(&document.name, &document.spec, &load.remote_trust) {
                Ok((material, _)) => references.trust_roots.insert(&document.name, material),
                Err(error) => references
                    .trust_roots
                    .insert_broken(&document.name, error.to_string()),
            }
        }
        for document in &self.secrets {
            references
                .secrets
                .insert(&document.name, document.data.clone());
        }
        references
    }

    /// The `remote` TrustRoots of these documents, as the fetcher follows them.
    pub fn remote_repositories(&self) -> BTreeSet<RemoteRepository> {
        self.trust_roots
            .iter()
            .filter_map(|document| remote_repository(&document.name, &document.spec))
            .collect()
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
/// whole set, so a half-applied change never reaches admission. The one exception is a `remote`
/// TrustRoot whose TUF repository has not arrived: it is a warning, and the policies naming it
/// (and nothing else that is wrong) load as broken, denying their images until it arrives.
pub fn build_snapshot(
    documents: &Documents,
    load: &LoadOptions,
    generation: u64,
) -> Result<(PolicySnapshot, Vec<LoadWarning>), LoadError> {
    let mut problems = Vec::new();
    let mut warnings = Vec::new();

    let mut references = References::empty(load);
    let mut pending = BTreeSet::new();
    for document in &documents.trust_roots {
        let object = format!("TrustRoot {}", document.name);
        match compile_trust_root(&document.name, &document.spec, &load.remote_trust) {
            Ok((material, report)) => {
                if !report.is_empty() {
                    warnings.push(LoadWarning {
                        origin: document.origin.clone(),
                        object: object.clone(),
                        warnings: report,
                    });
                }
                references.trust_roots.insert(&document.name, material);
            }
            Err(TrustRootError::Invalid(errors)) => problems.push(format!(
                "{}: {object} is invalid: {errors}",
                document.origin
            )),
            Err(TrustRootError::Unusable(problem)) => {
                problems.push(format!("{}: {object}: {problem}", document.origin))
            }
            Err(TrustRootError::Pending(problem)) => {
                warnings.push(LoadWarning {
                    origin: document.origin.clone(),
                    object,
                    warnings: FieldError::new(
                        "trust material not available yet",
                        vec!["spec.remote".to_string()],
                    )
                    .with_details(problem.clone())
                    .at_level(Level::Warning)
                    .into(),
                });
                references
                    .trust_roots
                    .insert_broken(&document.name, problem);
                pending.insert(document.name.clone());
            }
        }
    }
    for document in &documents.secrets {
        references
            .secrets
            .insert(&document.name, document.data.clone());
    }
    let context = references.context();

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
            Err(errors) if names_only_pending(&errors, &pending) => {
                warnings.push(LoadWarning {
                    origin: document.origin.clone(),
                    object,
                    warnings: errors
                        .iter()
                        .map(|error| {
                            error.clone().at_level(Level::Warning).with_details(format!(
                                "{}; the policy denies the images it matches until it is",
                                error.details
                            ))
                        })
                        .collect(),
                });
                entries.push(PolicyEntry::Broken {
                    name: document.name.clone(),
                    globs: document
                        .spec
                        .images
                        .iter()
                        .filter_map(|image| Glob::compile(&image.glob).ok())
                        .collect(),
                    error: errors.to_string(),
                });
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

/// Whether every error is a `trustRootRef` naming a TrustRoot in `pending`.
fn names_only_pending(errors: &FieldErrors, pending: &BTreeSet<String>) -> bool {
    !pending.is_empty()
        && errors.iter().all(|error| {
            error
                .paths
                .iter()
                .all(|path| path.ends_with(".trustRootRef"))
                && error
                    .message
                    .strip_prefix("invalid value: ")
                    .is_some_and(|name| pending.contains(name))
        })
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
