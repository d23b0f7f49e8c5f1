//! Compiled policies: what a ClusterImagePolicy becomes once, at load time, so requests never
//! parse globs, regexps, selectors or keys.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use sha2::{Digest as _, Sha256};

use regex::Regex;

use super::crd::{Authority, ClusterImagePolicySpec, KeyRef, KeylessRef, MatchResource, TLog};
use super::glob::Glob;
use super::trust_roots::{NamedTrust, Secrets, TrustRoots};
use super::validate::{self, ValidationOptions};
use crate::field_error::{FieldError, FieldErrors};
use crate::image::Repository;
use crate::verify::cert::certificates_from_pem;
use crate::verify::key::{HashAlgorithm, PublicKey};
use crate::verify::trust::LogKey;

/// `mode` of a policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Failures deny the request.
    Enforce,
    /// Failures become AdmissionReview warnings.
    Warn,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Enforce => "enforce",
            Mode::Warn => "warn",
        }
    }
}

/// A policy ready for admission.
#[derive(Clone, Debug)]
pub struct CompiledPolicy {
    pub name: String,
    pub globs: Vec<Glob>,
    pub authorities: Vec<CompiledAuthority>,
    pub mode: Mode,
    /// Empty: applies to every checked kind.
    pub resources: Vec<ResourceMatcher>,
}

/// One authority; any passing authority satisfies its policy.
#[derive(Clone, Debug)]
pub struct CompiledAuthority {
    pub name: String,
    pub kind: AuthorityKind,
    /// sha256 over the authority's content (not its name) and resolved key material: the
    /// verification cache key, so renaming an authority or a policy keeps cached results and
    /// changing a key invalidates them.
    pub fingerprint: String,
}

#[derive(Clone, Debug)]
pub enum AuthorityKind {
    /// `static`: answered without any network access.
    Static { pass: bool, message: String },
    /// `key`: signatures by a public key.
    Key(Arc<KeyAuthority>),
    /// `keyless`: Fulcio certificates with expected identities.
    Keyless(Arc<KeylessAuthority>),
}

impl AuthorityKind {
    /// A bounded label for metrics and logs.
    pub fn label(&self) -> &'static str {
        match self {
            AuthorityKind::Static { .. } => "static",
            AuthorityKind::Key(_) => "key",
            AuthorityKind::Keyless(_) => "keyless",
        }
    }
}

/// Where an authority's signatures are read from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SignatureSource {
    /// `source[].oci`: signatures live in this repository instead of next to the image.
    pub repository: Option<Repository>,
    /// `source[].tagPrefix` of the cosign attachment tags.
    pub tag_prefix: String,
    /// `source[].signaturePullSecrets`, by name, in the workload's namespace.
    pub pull_secrets: Vec<String>,
}

/// Rekor entries a signature must carry, bound to it, and the log keys that vouch for them.
#[derive(Clone, Debug)]
pub struct TlogRequirement {
    pub trust: Arc<NamedTrust>,
    /// The transparency logs of `trust` that count (all, or those `ctlog.url` names).
    pub logs: Vec<LogKey>,
}

/// A compiled `key` authority.
#[derive(Clone, Debug)]
pub struct KeyAuthority {
    /// The public key (from `data` or `secretRef`).
    pub key: PublicKey,
    /// Where the key came from, for messages: `key.data`, `secret cosign-key`.
    pub key_origin: String,
    pub hash: HashAlgorithm,
    pub source: SignatureSource,
    /// Present when the authority has `ctlog`: a bound, SET-verified Rekor entry is required.
    pub tlog: Option<TlogRequirement>,
    /// verity extension: annotations every accepted signature must carry.
    pub annotations: BTreeMap<String, String>,
}

/// Matches an identity field exactly or by an unanchored regexp (Go's `MatchString`).
#[derive(Clone, Debug)]
pub enum TextMatcher {
    Exact(String),
    Pattern(Regex),
}

impl TextMatcher {
    pub fn matches(&self, value: &str) -> bool {
        match self {
            TextMatcher::Exact(expected) => expected == value,
            TextMatcher::Pattern(regex) => regex.is_match(value),
        }
    }
}

impl std::fmt::Display for TextMatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TextMatcher::Exact(expected) => write!(f, "{expected}"),
            TextMatcher::Pattern(regex) => write!(f, "/{}/", regex.as_str()),
        }
    }
}

/// One `identities[]` entry: both fields must match.
#[derive(Clone, Debug)]
pub struct IdentityMatcher {
    pub issuer: TextMatcher,
    pub subject: TextMatcher,
}

/// A compiled `keyless` authority.
#[derive(Clone, Debug)]
pub struct KeylessAuthority {
    pub identities: Vec<IdentityMatcher>,
    /// Fulcio CAs and CT log keys (`keyless.trustRootRef`, or the default trust root).
    pub trust: Arc<NamedTrust>,
    /// `keyless.ca-cert`: extra trusted roots (DER).
    pub extra_roots: Vec<Vec<u8>>,
    /// Rekor keys (`ctlog.trustRootRef`, else the keyless trust root); always required, since the
    /// Rekor integrated time is the only trusted signing time.
    pub tlog: TlogRequirement,
    /// False with `insecureIgnoreSCT: true`.
    pub require_sct: bool,
    pub source: SignatureSource,
    pub annotations: BTreeMap<String, String>,
}

/// One `match[]` entry.
#[derive(Clone, Debug)]
pub struct ResourceMatcher {
    group: String,
    version: String,
    resource: String,
    selector: Option<Selector>,
}

/// The resource being admitted, as the policy `match[]` sees it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ResourceRef {
    pub group: String,
    pub version: String,
    /// Plural resource name, e.g. `deployments`.
    pub resource: String,
}

impl ResourceRef {
    pub fn new(group: &str, version: &str, resource: &str) -> Self {
        ResourceRef {
            group: group.to_string(),
            version: version.to_string(),
            resource: resource.to_string(),
        }
    }

    /// A bare Pod, the default for `verity verify`.
    pub fn pods() -> Self {
        Self::new("", "v1", "pods")
    }
}

impl ResourceMatcher {
    fn compile(entry: &MatchResource) -> Result<Self, String> {
        Ok(ResourceMatcher {
            group: entry.group.clone(),
            version: entry.version.clone(),
            resource: entry.resource.clone(),
            selector: entry.selector.as_ref().map(Selector::compile).transpose()?,
        })
    }

    /// The reference's rule: resource and group equal, version equal or `*`, and the selector
    /// (if any) matches the admitted object's own labels. An empty resource never matches.
    pub fn matches(&self, resource: &ResourceRef, labels: &BTreeMap<String, String>) -> bool {
        !self.resource.is_empty()
            && self.resource == resource.resource
            && self.group == resource.group
            && (self.version == "*" || self.version == resource.version)
            && self.selector.as_ref().is_none_or(|s| s.matches(labels))
    }
}

/// A compiled `metav1.LabelSelector`.
#[derive(Clone, Debug)]
struct Selector {
    requirements: Vec<Requirement>,
}

#[derive(Clone, Debug)]
enum Requirement {
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    DoesNotExist(String),
}

impl Selector {
    fn compile(selector: &LabelSelector) -> Result<Self, String> {
        let mut requirements = Vec::new();
        for (key, value) in selector.match_labels.iter().flatten() {
            requirements.push(Requirement::In(key.clone(), vec![value.clone()]));
        }
        for expression in selector.match_expressions.iter().flatten() {
            let key = expression.key.clone();
            let values = expression.values.clone().unwrap_or_default();
            let requirement = match expression.operator.as_str() {
                "In" | "NotIn" if values.is_empty() => {
                    return Err(format!(
                        "selector operator {} on key {key:?} needs at least one value",
                        expression.operator
                    ));
                }
                "In" => Requirement::In(key, values),
                "NotIn" => Requirement::NotIn(key, values),
                "Exists" | "DoesNotExist" if !values.is_empty() => {
                    return Err(format!(
                        "selector operator {} on key {key:?} takes no values",
                        expression.operator
                    ));
                }
                "Exists" => Requirement::Exists(key),
                "DoesNotExist" => Requirement::DoesNotExist(key),
                other => {
                    return Err(format!(
                        "unsupported selector operator {other:?} (expected In, NotIn, Exists or DoesNotExist)"
                    ));
                }
            };
            requirements.push(requirement);
        }
        Ok(Selector { requirements })
    }

    fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.requirements
            .iter()
            .all(|requirement| match requirement {
                Requirement::In(key, values) => labels.get(key).is_some_and(|v| values.contains(v)),
                Requirement::NotIn(key, values) => {
                    labels.get(key).is_none_or(|v| !values.contains(v))
                }
                Requirement::Exists(key) => labels.contains_key(key),
                Requirement::DoesNotExist(key) => !labels.contains_key(key),
            })
    }
}

/// The outcome of compiling one policy document.
#[derive(Debug)]
pub struct Compiled {
    pub policy: CompiledPolicy,
    /// Validation warnings (e.g. unanchored regexps); the policy loads anyway.
    pub warnings: FieldErrors,
}

/// What compiling a policy may refer to.
#[derive(Clone, Copy, Debug)]
pub struct CompileContext<'a> {
    pub options: &'a ValidationOptions,
    pub secrets: &'a Secrets,
    pub trust_roots: &'a TrustRoots,
}

/// Defaults, validates and compiles a ClusterImagePolicy. Errors carry the reference's
/// validation texts; warnings are returned with the compiled policy.
pub fn compile(
    name: &str,
    spec: &ClusterImagePolicySpec,
    context: &CompileContext<'_>,
) -> Result<Compiled, FieldErrors> {
    let mut spec = spec.clone();
    validate::set_defaults(&mut spec);
    let report = validate::validate_cluster_image_policy(&spec, context.options);
    if report.has_errors() {
        return Err(report.filter(crate::field_error::Level::Error));
    }
    let warnings = report.filter(crate::field_error::Level::Warning);

    let mut errors = FieldErrors::new();
    let mut globs = Vec::with_capacity(spec.images.len());
    for (index, image) in spec.images.iter().enumerate() {
        match Glob::compile(&image.glob) {
            Ok(glob) => globs.push(glob),
            Err(err) => errors.push(
                FieldError::invalid_value(&image.glob, format!("spec.images[{index}].glob"))
                    .with_details(err.to_string()),
            ),
        }
    }
    let mut resources = Vec::with_capacity(spec.match_resources.len());
    for (index, entry) in spec.match_resources.iter().enumerate() {
        match ResourceMatcher::compile(entry) {
            Ok(matcher) => resources.push(matcher),
            Err(details) => errors.push(
                FieldError::invalid_value("selector", format!("spec.match[{index}].selector"))
                    .with_details(details),
            ),
        }
    }
    let mut authorities = Vec::with_capacity(spec.authorities.len());
    for (index, authority) in spec.authorities.iter().enumerate() {
        match compile_authority(index, authority, context) {
            Ok(compiled) => authorities.push(compiled),
            Err(error) => errors.push(error),
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let mode = match spec.mode.as_deref() {
        Some("warn") => Mode::Warn,
        _ => Mode::Enforce,
    };
    Ok(Compiled {
        policy: CompiledPolicy {
            name: name.to_string(),
            globs,
            authorities,
            mode,
            resources,
        },
        warnings,
    })
}

fn compile_authority(
    index: usize,
    authority: &Authority,
    context: &CompileContext<'_>,
) -> Result<CompiledAuthority, FieldError> {
    let name = authority
        .name
        .clone()
        .unwrap_or_else(|| format!("authority-{index}"));
    let path = format!("spec.authorities[{index}]");
    // Resolved material (keys, trust roots) is part of the fingerprint: changing a Secret or a
    // TrustRoot must not reuse results cached for the old content.
    let mut resolved = Vec::new();
    let kind = if let Some(static_ref) = &authority.static_ref {
        AuthorityKind::Static {
            pass: static_ref.action == "pass",
            message: static_ref.message.clone().unwrap_or_default(),
        }
    } else if let Some(key) = &authority.key {
        let compiled = compile_key(&path, authority, key, context)?;
        resolved.push(compiled.key.fingerprint());
        if let Some(tlog) = &compiled.tlog {
            resolved.push(tlog.trust.fingerprint.clone());
        }
        AuthorityKind::Key(Arc::new(compiled))
    } else if let Some(keyless) = &authority.keyless {
        let compiled = compile_keyless(&path, authority, keyless, context)?;
        resolved.push(compiled.trust.fingerprint.clone());
        resolved.push(compiled.tlog.trust.fingerprint.clone());
        AuthorityKind::Keyless(Arc::new(compiled))
    } else {
        return Err(FieldError::missing_one_of([
            format!("{path}.key"),
            format!("{path}.keyless"),
            format!("{path}.static"),
        ]));
    };
    Ok(CompiledAuthority {
        name,
        fingerprint: fingerprint(authority, &resolved),
        kind,
    })
}

fn compile_key(
    path: &str,
    authority: &Authority,
    key: &KeyRef,
    context: &CompileContext<'_>,
) -> Result<KeyAuthority, FieldError> {
    let (pem, key_origin, key_path) = if let Some(data) = &key.data {
        (
            data.clone(),
            "key.data".to_string(),
            format!("{path}.key.data"),
        )
    } else if let Some(secret) = &key.secret_ref {
        let name = secret.name.clone().unwrap_or_default();
        let pem = context.secrets.public_key_pem(&name).map_err(|details| {
            FieldError::invalid_value(&name, format!("{path}.key.secretRef.name"))
                .with_details(details)
        })?;
        (
            pem,
            format!("secret {name}"),
            format!("{path}.key.secretRef"),
        )
    } else {
        return Err(FieldError::invalid_value(
            key.kms.as_deref().unwrap_or_default(),
            format!("{path}.key.kms"),
        )
        .with_details("KMS keys are not supported by verity yet; inline the public key with key.data or reference a Secret with key.secretRef"));
    };
    let public_key = PublicKey::from_pem(&pem).map_err(|err| {
        FieldError::invalid_value(&key_origin, key_path).with_details(err.to_string())
    })?;
    let hash = match key.hash_algorithm.as_deref() {
        None | Some("") => HashAlgorithm::default(),
        Some(text) => text
            .trim()
            .parse()
            .map_err(|_| FieldError::invalid_value(text, format!("{path}.key.hashAlgorithm")))?,
    };
    let tlog = match &authority.ctlog {
        Some(ctlog) => Some(tlog_requirement(path, ctlog, None, context)?),
        None => None,
    };
    Ok(KeyAuthority {
        key: public_key,
        key_origin,
        hash,
        source: signature_source(authority),
        tlog,
        annotations: authority.annotations.clone().unwrap_or_default(),
    })
}

fn compile_keyless(
    path: &str,
    authority: &Authority,
    keyless: &KeylessRef,
    context: &CompileContext<'_>,
) -> Result<KeylessAuthority, FieldError> {
    let trust = context
        .trust_roots
        .resolve(keyless.trust_root_ref.as_deref())
        .map_err(|details| {
            FieldError::invalid_value(
                keyless.trust_root_ref.as_deref().unwrap_or_default(),
                format!("{path}.keyless.trustRootRef"),
            )
            .with_details(details)
        })?;
    let mut identities = Vec::with_capacity(keyless.identities.len());
    for (index, identity) in keyless.identities.iter().enumerate() {
        let field = |name: &str| format!("{path}.keyless.identities[{index}].{name}");
        identities.push(IdentityMatcher {
            issuer: text_matcher(
                identity.issuer.as_deref(),
                identity.issuer_regexp.as_deref(),
                &field("issuerRegExp"),
            )?,
            subject: text_matcher(
                identity.subject.as_deref(),
                identity.subject_regexp.as_deref(),
                &field("subjectRegExp"),
            )?,
        });
    }
    let extra_roots = match keyless.ca_cert.as_ref().and_then(|c| c.data.as_deref()) {
        Some(pem) => certificates_from_pem(pem).map_err(|err| {
            FieldError::invalid_value("ca-cert", format!("{path}.keyless.ca-cert.data"))
                .with_details(err.to_string())
        })?,
        None => Vec::new(),
    };
    let tlog_reference = authority.ctlog.clone().unwrap_or_default();
    Ok(KeylessAuthority {
        identities,
        tlog: tlog_requirement(path, &tlog_reference, Some(&trust), context)?,
        trust,
        extra_roots,
        require_sct: !keyless.insecure_ignore_sct.unwrap_or(false),
        source: signature_source(authority),
        annotations: authority.annotations.clone().unwrap_or_default(),
    })
}

/// The Rekor logs an authority accepts: `ctlog.trustRootRef`'s (else `fallback`, else the
/// default trust root's), narrowed to `ctlog.url` when given.
fn tlog_requirement(
    path: &str,
    ctlog: &TLog,
    fallback: Option<&Arc<NamedTrust>>,
    context: &CompileContext<'_>,
) -> Result<TlogRequirement, FieldError> {
    let trust = match (
        ctlog.trust_root_ref.as_deref().filter(|r| !r.is_empty()),
        fallback,
    ) {
        (None, Some(fallback)) => Arc::clone(fallback),
        (reference, _) => context.trust_roots.resolve(reference).map_err(|details| {
            FieldError::invalid_value(
                reference.unwrap_or_default(),
                format!("{path}.ctlog.trustRootRef"),
            )
            .with_details(details)
        })?,
    };
    let logs: Vec<LogKey> = match ctlog.url.as_deref().filter(|u| !u.is_empty()) {
        None => trust.material.tlogs.clone(),
        Some(url) => trust
            .material
            .tlogs
            .iter()
            .filter(|log| log.base_url.trim_end_matches('/') == url.trim_end_matches('/'))
            .cloned()
            .collect(),
    };
    if logs.is_empty() {
        let known: Vec<&str> = trust
            .material
            .tlogs
            .iter()
            .map(|l| l.base_url.as_str())
            .collect();
        return Err(FieldError::invalid_value(
            ctlog.url.as_deref().unwrap_or_default(),
            format!("{path}.ctlog.url"),
        )
        .with_details(format!(
            "{} has no transparency log{} (logs: {})",
            trust.label(),
            ctlog
                .url
                .as_deref()
                .map(|u| format!(" at {u}"))
                .unwrap_or_default(),
            if known.is_empty() {
                "none".to_string()
            } else {
                known.join(", ")
            }
        )));
    }
    Ok(TlogRequirement { trust, logs })
}

fn text_matcher(
    exact: Option<&str>,
    pattern: Option<&str>,
    path: &str,
) -> Result<TextMatcher, FieldError> {
    match (
        exact.filter(|e| !e.is_empty()),
        pattern.filter(|p| !p.is_empty()),
    ) {
        (Some(exact), _) => Ok(TextMatcher::Exact(exact.to_string())),
        (None, Some(pattern)) => Regex::new(pattern)
            .map(TextMatcher::Pattern)
            .map_err(|err| {
                FieldError::invalid_value(pattern, path)
                    .with_details(format!("regex is invalid: {err}"))
            }),
        // Validation requires one of the pair; an absent field matches only the empty string.
        (None, None) => Ok(TextMatcher::Exact(String::new())),
    }
}

fn signature_source(authority: &Authority) -> SignatureSource {
    let source = authority.sources.first();
    SignatureSource {
        repository: source
            .and_then(|s| s.oci.as_deref())
            .filter(|oci| !oci.is_empty())
            .and_then(|oci| Repository::parse(oci).ok()),
        tag_prefix: source
            .and_then(|s| s.tag_prefix.clone())
            .unwrap_or_default(),
        pull_secrets: source
            .map(|s| {
                s.signature_pull_secrets
                    .iter()
                    .map(|r| r.name.clone())
                    .collect()
            })
            .unwrap_or_default(),
    }
}

/// sha256 of the authority's canonical JSON without its name, plus resolved material.
fn fingerprint(authority: &Authority, resolved: &[String]) -> String {
    let mut content = authority.clone();
    content.name = None;
    // serde_json serialises struct fields in declaration order and maps sorted, so equal content
    // gives equal bytes.
    let mut hasher = Sha256::new();
    hasher.update(serde_json::to_vec(&content).unwrap_or_default());
    for item in resolved {
        hasher.update([0]);
        hasher.update(item.as_bytes());
    }
    hex::encode(hasher.finalize())
}

/// Compiles with reference validation, no Secrets and empty trust material (unit tests).
#[cfg(test)]
pub(crate) fn compile_for_test(
    name: &str,
    spec: &ClusterImagePolicySpec,
) -> Result<Compiled, FieldErrors> {
    let trust_roots = TrustRoots::new(crate::verify::trust::TrustMaterial::default());
    let context = CompileContext {
        options: &ValidationOptions::default(),
        secrets: &Secrets::default(),
        trust_roots: &trust_roots,
    };
    compile(name, spec, &context)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::crd::{ImagePattern, StaticRef};

    fn spec(yaml: &str) -> ClusterImagePolicySpec {
        serde_saphyr::from_str(yaml).unwrap()
    }

    #[test]
    fn compiles_static_policy_with_defaults() {
        let compiled = compile_for_test("deny-hub", &spec(
                "images: [{glob: 'index.docker.io/**'}]\nauthorities: [{static: {action: fail, message: mirror first}}]\n",
            ))
        .unwrap();
        let policy = compiled.policy;
        assert_eq!(policy.name, "deny-hub");
        assert_eq!(policy.mode, Mode::Enforce);
        assert_eq!(policy.authorities[0].name, "authority-0");
        assert!(matches!(
            &policy.authorities[0].kind,
            AuthorityKind::Static { pass: false, message } if message == "mirror first"
        ));
        assert!(policy.globs[0].is_match("index.docker.io/library/busybox:1"));
    }

    #[test]
    fn rejects_invalid_policy_with_reference_text() {
        let errors = compile_for_test("bad", &ClusterImagePolicySpec::default()).unwrap_err();
        assert_eq!(
            errors.to_string(),
            "missing field(s): spec.authorities, spec.images"
        );
    }

    #[test]
    fn fingerprint_ignores_name_but_not_content() {
        let pass = |name: &str, action: &str| Authority {
            name: Some(name.to_string()),
            static_ref: Some(StaticRef {
                action: action.to_string(),
                message: None,
            }),
            ..Authority::default()
        };
        assert_eq!(
            fingerprint(&pass("a", "pass"), &[]),
            fingerprint(&pass("b", "pass"), &[])
        );
        assert_ne!(
            fingerprint(&pass("a", "pass"), &[]),
            fingerprint(&pass("a", "fail"), &[])
        );
        let _ = ImagePattern::default();
    }

    #[test]
    fn resource_matchers_and_selectors() {
        let policy = compile_for_test("p", &spec(
                r#"
images: [{glob: '**'}]
authorities: [{static: {action: pass}}]
match:
- {group: apps, version: v1, resource: deployments, selector: {matchLabels: {team: a}}}
- {group: "", version: "*", resource: pods, selector: {matchExpressions: [{key: tier, operator: NotIn, values: [dev]}]}}
"#,
            ))
        .unwrap()
        .policy;
        let labels = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let deployments = ResourceRef::new("apps", "v1", "deployments");
        let pods = ResourceRef::pods();
        let matches = |r: &ResourceRef, l: &BTreeMap<String, String>| {
            policy.resources.iter().any(|m| m.matches(r, l))
        };
        assert!(matches(&deployments, &labels(&[("team", "a")])));
        assert!(!matches(&deployments, &labels(&[("team", "b")])));
        assert!(!matches(
            &ResourceRef::new("apps", "v1beta1", "deployments"),
            &labels(&[("team", "a")])
        ));
        assert!(matches(&pods, &labels(&[])));
        assert!(!matches(&pods, &labels(&[("tier", "dev")])));
        assert!(!matches(
            &ResourceRef::new("batch", "v1", "jobs"),
            &labels(&[])
        ));
    }
}
