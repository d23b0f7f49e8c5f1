//! What one ClusterImagePolicy amounts to against the current references: its index entry
//! (compiled, or broken with the error), its warnings, and why it is not ready. The cluster
//! source and the policy admission endpoint both use [`assess_policy`], so what is admitted is
//! exactly what loads.

use std::collections::BTreeSet;

use crate::field_error::{FieldError, FieldErrors};
use crate::policy::compiled::{self, Compiled};
use crate::policy::crd::ClusterImagePolicySpec;
use crate::policy::glob::Glob;
use crate::policy::index::PolicyEntry;
use crate::policy::source::References;
use crate::policy::validate;

/// The `reason` of a policy's `Ready` condition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PolicyReason {
    /// Compiled; the policy is enforced.
    Compiled,
    /// The policy itself is wrong (validation, keys, regexps, selectors, malformed spec).
    Invalid,
    /// A `key.secretRef` names a Secret that is not in verity's namespace.
    SecretMissing,
    /// A referenced Secret exists but holds no usable public key.
    SecretInvalid,
    /// A `trustRootRef` names a TrustRoot that does not exist.
    TrustRootMissing,
    /// A referenced TrustRoot exists but cannot be used.
    TrustRootInvalid,
}

impl PolicyReason {
    pub fn as_str(self) -> &'static str {
        match self {
            PolicyReason::Compiled => "Compiled",
            PolicyReason::Invalid => "Invalid",
            PolicyReason::SecretMissing => "SecretMissing",
            PolicyReason::SecretInvalid => "SecretInvalid",
            PolicyReason::TrustRootMissing => "TrustRootMissing",
            PolicyReason::TrustRootInvalid => "TrustRootInvalid",
        }
    }
}

/// One policy, judged.
#[derive(Clone, Debug)]
pub struct PolicyAssessment {
    /// What the index holds for it: compiled, or broken (denying the images it matches).
    pub entry: PolicyEntry,
    /// Validation warnings (unanchored regexps, deprecated predicate types…).
    pub warnings: FieldErrors,
    /// Problems of the policy itself; the admission endpoint denies these.
    pub errors: FieldErrors,
    /// Problems of what it refers to (a Secret or TrustRoot missing or unusable); the admission
    /// endpoint admits the policy with these as warnings, since GitOps applies objects in any
    /// order.
    pub reference_errors: FieldErrors,
    pub reason: PolicyReason,
}

impl PolicyAssessment {
    pub fn is_ready(&self) -> bool {
        matches!(self.entry, PolicyEntry::Ready(_))
    }

    /// The `Ready` condition's message: `compiled` (with its warnings), or the compile error.
    pub fn message(&self) -> String {
        match &self.entry {
            PolicyEntry::Broken { error, .. } => error.clone(),
            PolicyEntry::Ready(_) if self.warnings.is_empty() => "compiled".to_string(),
            PolicyEntry::Ready(_) => format!(
                "compiled with warnings: {}",
                crate::admission::message::warning_lines(&self.warnings).join("; ")
            ),
        }
    }
}

/// Compiles `spec` against `references` (defaulting, validation, keys and trust roots) and
/// sorts any failure into the policy's own errors and its references' errors.
pub fn assess_policy(
    name: &str,
    spec: &ClusterImagePolicySpec,
    references: &References,
) -> PolicyAssessment {
    let failed = match compiled::compile(name, spec, &references.context()) {
        Ok(Compiled { policy, warnings }) => {
            return PolicyAssessment {
                entry: PolicyEntry::Ready(policy),
                warnings,
                errors: FieldErrors::new(),
                reference_errors: FieldErrors::new(),
                reason: PolicyReason::Compiled,
            };
        }
        Err(errors) => errors,
    };
    // compile() reports validation errors alone, before it looks at any reference.
    let report = validate::validate_cluster_image_policy(spec, &references.validation);
    let warnings = report.filter(crate::field_error::Level::Warning);
    let (errors, reference_errors): (Vec<FieldError>, Vec<FieldError>) = if report.has_errors() {
        (failed.iter().cloned().collect(), Vec::new())
    } else {
        failed.iter().cloned().partition(|e| !is_reference_error(e))
    };
    let errors: FieldErrors = errors.into_iter().collect();
    let reference_errors: FieldErrors = reference_errors.into_iter().collect();
    let reason = if !errors.is_empty() {
        PolicyReason::Invalid
    } else {
        reference_reason(spec, references)
    };
    PolicyAssessment {
        entry: PolicyEntry::Broken {
            name: name.to_string(),
            globs: compilable_globs(spec.images.iter().map(|i| i.glob.as_str())),
            error: failed.to_string(),
        },
        warnings,
        errors,
        reference_errors,
        reason,
    }
}

/// A policy whose spec does not even deserialize: broken, with whatever globs can be read from
/// the raw object, so the images it was meant for are still denied.
pub fn malformed_policy(name: &str, globs: &[String], error: &str) -> PolicyAssessment {
    let errors: FieldErrors = FieldError::new("malformed spec", vec!["spec".to_string()])
        .with_details(error)
        .into();
    PolicyAssessment {
        entry: PolicyEntry::Broken {
            name: name.to_string(),
            globs: compilable_globs(globs.iter().map(String::as_str)),
            error: errors.to_string(),
        },
        warnings: FieldErrors::new(),
        errors,
        reference_errors: FieldErrors::new(),
        reason: PolicyReason::Invalid,
    }
}

fn compilable_globs<'a>(globs: impl Iterator<Item = &'a str>) -> Vec<Glob> {
    globs.filter_map(|glob| Glob::compile(glob).ok()).collect()
}

/// Errors about a `secretRef` or a `trustRootRef` come from the referenced object (absent, or
/// unusable), not from the policy.
fn is_reference_error(error: &FieldError) -> bool {
    error
        .paths
        .iter()
        .any(|path| path.ends_with(".trustRootRef") || path.contains(".key.secretRef"))
}

/// Which kind of reference problem explains the failure (the first that applies, TrustRoots
/// before Secrets).
fn reference_reason(spec: &ClusterImagePolicySpec, references: &References) -> PolicyReason {
    let trust_roots = referenced_trust_roots(spec);
    if trust_roots
        .iter()
        .any(|name| references.trust_roots.broken(name).is_some())
    {
        return PolicyReason::TrustRootInvalid;
    }
    if trust_roots
        .iter()
        .any(|name| references.trust_roots.resolve(Some(name)).is_err())
    {
        return PolicyReason::TrustRootMissing;
    }
    if referenced_secrets(spec)
        .iter()
        .any(|name| references.secrets.get(name).is_none())
    {
        return PolicyReason::SecretMissing;
    }
    PolicyReason::SecretInvalid
}

/// The Secrets a policy names in `key.secretRef`.
pub fn referenced_secrets(spec: &ClusterImagePolicySpec) -> BTreeSet<String> {
    spec.authorities
        .iter()
        .filter_map(|a| a.key.as_ref()?.secret_ref.as_ref()?.name.clone())
        .filter(|name| !name.is_empty())
        .collect()
}

/// The TrustRoots a policy names in `keyless`, `ctlog` and `rfc3161timestamp`.
pub fn referenced_trust_roots(spec: &ClusterImagePolicySpec) -> BTreeSet<String> {
    spec.authorities
        .iter()
        .flat_map(|a| {
            [
                a.keyless.as_ref().and_then(|k| k.trust_root_ref.clone()),
                a.ctlog.as_ref().and_then(|c| c.trust_root_ref.clone()),
                a.rfc3161timestamp
                    .as_ref()
                    .and_then(|t| t.trust_root_ref.clone()),
            ]
        })
        .flatten()
        .filter(|name| !name.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::index::Settings;
    use crate::policy::source::LoadOptions;
    use crate::policy::validate::ValidationOptions;
    use std::collections::BTreeMap;

    const PEM: &str = include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/policies/pem/ec-p256.pub.pem"
    ));

    fn references() -> References {
        let mut load = LoadOptions::with_production_trust(Settings::default()).unwrap();
        load.validation = ValidationOptions {
            system_namespace: Some("verity-system".into()),
            ..ValidationOptions::default()
        };
        References::empty(&load)
    }

    fn spec(yaml: &str) -> ClusterImagePolicySpec {
        serde_saphyr::from_str(yaml).unwrap()
    }

    const SECRET_REF: &str =
        "images: [{glob: 'ghcr.io/**'}]\nauthorities: [{key: {secretRef: {name: cosign-key}}}]";

    #[test]
    fn compiled_policy_is_ready() {
        let assessment = assess_policy(
            "ok",
            &spec("images: [{glob: 'ghcr.io/**'}]\nauthorities: [{static: {action: pass}}]"),
            &references(),
        );
        assert!(assessment.is_ready());
        assert_eq!(assessment.reason, PolicyReason::Compiled);
        assert_eq!(assessment.message(), "compiled");
    }

    #[test]
    fn missing_secret_is_a_reference_error_and_its_arrival_heals() {
        let mut references = references();
        let assessment = assess_policy("keyed", &spec(SECRET_REF), &references);
        assert_eq!(assessment.reason, PolicyReason::SecretMissing);
        assert!(assessment.errors.is_empty());
        assert_eq!(
            assessment.reference_errors.to_string(),
            "invalid value: cosign-key: spec.authorities[0].key.secretRef.name\nsecret \"cosign-key\" not found"
        );
        let PolicyEntry::Broken { globs, error, .. } = &assessment.entry else {
            panic!("expected a broken entry");
        };
        assert_eq!(
            globs.len(),
            1,
            "the compilable globs stay, so its images are denied"
        );
        assert_eq!(error, &assessment.message());

        references.secrets.insert(
            "cosign-key",
            BTreeMap::from([("cosign.pub".to_string(), b"not a key".to_vec())]),
        );
        let assessment = assess_policy("keyed", &spec(SECRET_REF), &references);
        assert_eq!(assessment.reason, PolicyReason::SecretInvalid);

        references.secrets.insert(
            "cosign-key",
            BTreeMap::from([("cosign.pub".to_string(), PEM.as_bytes().to_vec())]),
        );
        assert!(assess_policy("keyed", &spec(SECRET_REF), &references).is_ready());
    }

    #[test]
    fn trust_root_references_missing_and_broken() {
        let mut references = references();
        let keyless = spec(
            "images: [{glob: 'ghcr.io/**'}]\nauthorities: [{keyless: {trustRootRef: corp, identities: [{issuer: 'https://issuer', subject: 'me'}]}}]",
        );
        let assessment = assess_policy("corp", &keyless, &references);
        assert_eq!(assessment.reason, PolicyReason::TrustRootMissing);
        assert!(assessment.errors.is_empty());
        references.trust_roots.insert_broken(
            "corp",
            "invalid: missing field(s): spec.sigstoreKeys".into(),
        );
        let assessment = assess_policy("corp", &keyless, &references);
        assert_eq!(assessment.reason, PolicyReason::TrustRootInvalid);
        assert!(
            assessment
                .message()
                .contains("TrustRoot corp is unusable: invalid: missing field(s)"),
            "{}",
            assessment.message()
        );
    }

    #[test]
    fn own_errors_win_over_reference_errors() {
        // Validation errors come alone: the reason is the policy's own.
        let invalid = spec(
            "images: [{glob: 'ghcr.io/**'}]\nmode: garbage\nauthorities: [{key: {secretRef: {name: absent}}}]",
        );
        let assessment = assess_policy("bad", &invalid, &references());
        assert_eq!(assessment.reason, PolicyReason::Invalid);
        assert!(assessment.reference_errors.is_empty());
        assert_eq!(
            assessment.errors.to_string(),
            "invalid value: garbage: spec.mode\nunsupported mode"
        );
        // A ctlog.url the default trust root has no log for, next to a missing Secret: both
        // reported, the policy's own error decides.
        let mut mixed = spec(
            "images: [{glob: 'ghcr.io/**'}]\nauthorities: [{key: {}, ctlog: {url: 'https://rekor.example'}}, {key: {secretRef: {name: absent}}}]",
        );
        mixed.authorities[0].key.as_mut().unwrap().data = Some(PEM.to_string());
        let assessment = assess_policy("mixed", &mixed, &references());
        assert_eq!(assessment.reason, PolicyReason::Invalid);
        assert_eq!(assessment.errors.iter().count(), 1);
        assert_eq!(assessment.reference_errors.iter().count(), 1);
    }

    #[test]
    fn warnings_are_in_the_ready_message() {
        let unanchored = spec(
            "images: [{glob: 'ghcr.io/**'}]\nauthorities: [{static: {action: pass}}, {keyless: {identities: [{issuerRegExp: 'https://issuer', subject: me}]}}]",
        );
        let assessment = assess_policy("warned", &unanchored, &references());
        assert!(assessment.is_ready(), "{}", assessment.message());
        assert!(!assessment.warnings.is_empty());
        assert!(
            assessment.message().starts_with("compiled with warnings: "),
            "{}",
            assessment.message()
        );
    }

    #[test]
    fn malformed_specs_keep_their_readable_globs() {
        let assessment = malformed_policy(
            "broken",
            &["ghcr.io/**".to_string(), "[".to_string()],
            "invalid type: integer `3`, expected a sequence",
        );
        let PolicyEntry::Broken { globs, error, .. } = &assessment.entry else {
            panic!("expected a broken entry");
        };
        assert_eq!(globs.len(), 1);
        assert_eq!(
            error,
            "malformed spec: spec\ninvalid type: integer `3`, expected a sequence"
        );
    }

    #[test]
    fn referenced_names() {
        let spec = spec(
            "images: [{glob: 'a'}]\nauthorities: [{key: {secretRef: {name: k}}, ctlog: {trustRootRef: logs}}, {keyless: {trustRootRef: corp}, rfc3161timestamp: {trustRootRef: tsa}}]",
        );
        assert_eq!(
            referenced_secrets(&spec).into_iter().collect::<Vec<_>>(),
            ["k"]
        );
        assert_eq!(
            referenced_trust_roots(&spec)
                .into_iter()
                .collect::<Vec<_>>(),
            ["corp", "logs", "tsa"]
        );
    }
}
