//! Compiled policies: what a ClusterImagePolicy becomes once, at load time, so requests never
//! parse globs, regexps, selectors or keys.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use sha2::{Digest as _, Sha256};

use super::crd::{Authority, ClusterImagePolicySpec, MatchResource};
use super::glob::Glob;
use super::validate::{self, ValidationOptions};
use crate::field_error::{FieldError, FieldErrors};

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
    Key(Arc<Authority>),
    /// `keyless`: Fulcio certificates with expected identities.
    Keyless(Arc<Authority>),
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

/// Defaults, validates and compiles a ClusterImagePolicy. Errors carry the reference's
/// validation texts; warnings are returned with the compiled policy.
pub fn compile(
    name: &str,
    spec: &ClusterImagePolicySpec,
    options: &ValidationOptions,
) -> Result<Compiled, FieldErrors> {
    let mut spec = spec.clone();
    validate::set_defaults(&mut spec);
    let report = validate::validate_cluster_image_policy(&spec, options);
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
        match compile_authority(index, authority) {
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

fn compile_authority(index: usize, authority: &Authority) -> Result<CompiledAuthority, FieldError> {
    let name = authority
        .name
        .clone()
        .unwrap_or_else(|| format!("authority-{index}"));
    let kind = if let Some(static_ref) = &authority.static_ref {
        AuthorityKind::Static {
            pass: static_ref.action == "pass",
            message: static_ref.message.clone().unwrap_or_default(),
        }
    } else if authority.key.is_some() {
        AuthorityKind::Key(Arc::new(authority.clone()))
    } else if authority.keyless.is_some() {
        AuthorityKind::Keyless(Arc::new(authority.clone()))
    } else {
        return Err(FieldError::missing_one_of([
            format!("spec.authorities[{index}].key"),
            format!("spec.authorities[{index}].keyless"),
            format!("spec.authorities[{index}].static"),
        ]));
    };
    Ok(CompiledAuthority {
        name,
        fingerprint: fingerprint(authority),
        kind,
    })
}

/// sha256 of the authority's canonical JSON without its name.
fn fingerprint(authority: &Authority) -> String {
    let mut content = authority.clone();
    content.name = None;
    // serde_json serialises struct fields in declaration order and maps sorted, so equal content
    // gives equal bytes.
    let bytes = serde_json::to_vec(&content).unwrap_or_default();
    hex::encode(Sha256::digest(&bytes))
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
        let compiled = compile(
            "deny-hub",
            &spec(
                "images: [{glob: 'index.docker.io/**'}]\nauthorities: [{static: {action: fail, message: mirror first}}]\n",
            ),
            &ValidationOptions::default(),
        )
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
        let errors = compile(
            "bad",
            &ClusterImagePolicySpec::default(),
            &ValidationOptions::default(),
        )
        .unwrap_err();
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
            fingerprint(&pass("a", "pass")),
            fingerprint(&pass("b", "pass"))
        );
        assert_ne!(
            fingerprint(&pass("a", "pass")),
            fingerprint(&pass("a", "fail"))
        );
        let _ = ImagePattern::default();
    }

    #[test]
    fn resource_matchers_and_selectors() {
        let policy = compile(
            "p",
            &spec(
                r#"
images: [{glob: '**'}]
authorities: [{static: {action: pass}}]
match:
- {group: apps, version: v1, resource: deployments, selector: {matchLabels: {team: a}}}
- {group: "", version: "*", resource: pods, selector: {matchExpressions: [{key: tier, operator: NotIn, values: [dev]}]}}
"#,
            ),
            &ValidationOptions::default(),
        )
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
