//! Defaulting and validation of ClusterImagePolicy and TrustRoot specs, shared by the file
//! loader and the policy admission endpoint.
//!
//! The rules and messages are the reference's (policy-controller's defaulting and validating
//! webhooks), because users keep their policies and read these texts. Where verity departs:
//!
//! - A policy verity cannot enforce as written does not load: KMS keys, attestations, cue/rego
//!   policies and `rfc3161timestamp` are rejected with a message saying what to do.
//! - Keys, certificates and regexps must be usable by verity: `key.data` a supported public
//!   key, `keyless.ca-cert.data` certificates (verity honours them), identity regexps that the
//!   `regex` crate compiles; unanchored identity regexps get a warning.
//! - `signatureFormat` is checked (`legacy` or `bundle`, for key and keyless alike),
//!   `secretRef.name` is required, annotation keys must be non-empty, label selectors must be
//!   well formed, and `source.oci` must parse as a repository.
//! - Nested TrustRoot errors accumulate instead of overwriting each other, and paths name the
//!   real fields where the reference's do not.

mod cluster_image_policy;
mod go_url;
mod key_material;
mod kms;
mod oci;
mod regexp;
mod trust_root;

#[cfg(test)]
mod tests;

use crate::field_error::FieldErrors;
use crate::policy::crd::{ClusterImagePolicySpec, TrustRootSpec};

/// The Fulcio a keyless authority uses when it names neither `url` nor `ca-cert`.
pub const DEFAULT_FULCIO_URL: &str = "https://fulcio.sigstore.dev";
const DEFAULT_MODE: &str = "enforce";
const DEFAULT_TUF_TARGETS: &str = "targets";
const DEFAULT_TRUSTED_ROOT_TARGET: &str = "trusted_root.json";

/// Settings that change what validation accepts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidationOptions {
    /// config-policy-controller `fail-on-empty-authorities`; default true.
    pub fail_on_empty_authorities: bool,
    /// In cluster mode, `key.secretRef.namespace` must equal this (the reference's system
    /// namespace). None in file mode.
    pub system_namespace: Option<String>,
}

impl Default for ValidationOptions {
    fn default() -> Self {
        ValidationOptions {
            fail_on_empty_authorities: true,
            system_namespace: None,
        }
    }
}

/// The reference's defaulting webhook: `mode: enforce`, authority names `authority-<i>`, and
/// `keyless.url: https://fulcio.sigstore.dev` for a keyless authority with neither `url` nor
/// `ca-cert`. Idempotent.
pub fn set_defaults(spec: &mut ClusterImagePolicySpec) {
    if spec.mode.as_deref().is_none_or(str::is_empty) {
        spec.mode = Some(DEFAULT_MODE.to_string());
    }
    for (index, authority) in spec.authorities.iter_mut().enumerate() {
        if authority.name.as_deref().is_none_or(str::is_empty) {
            authority.name = Some(format!("authority-{index}"));
        }
        if authority.key.is_none()
            && authority.static_ref.is_none()
            && let Some(keyless) = &mut authority.keyless
            && keyless.url.is_none()
            && keyless.ca_cert.is_none()
        {
            keyless.url = Some(DEFAULT_FULCIO_URL.to_string());
        }
    }
}

/// Every rule, applied to the spec after defaulting (a defaulted copy is checked, so callers
/// may pass either); errors and warnings (`Level::Warning`) in one set, paths from `spec.`.
pub fn validate_cluster_image_policy(
    spec: &ClusterImagePolicySpec,
    options: &ValidationOptions,
) -> FieldErrors {
    let mut defaulted = spec.clone();
    set_defaults(&mut defaulted);
    cluster_image_policy::check_spec(&defaulted, options)
}

/// The reference's TrustRoot defaulting: `targets: targets` and
/// `trustedRootTarget: trusted_root.json` for `remote` and `repository`. Idempotent.
pub fn set_trust_root_defaults(spec: &mut TrustRootSpec) {
    let fields = [
        spec.remote
            .as_mut()
            .map(|remote| (&mut remote.targets, &mut remote.trusted_root_target)),
        spec.repository
            .as_mut()
            .map(|repository| (&mut repository.targets, &mut repository.trusted_root_target)),
    ];
    for (targets, trusted_root_target) in fields.into_iter().flatten() {
        if targets.as_deref().is_none_or(str::is_empty) {
            *targets = Some(DEFAULT_TUF_TARGETS.to_string());
        }
        if trusted_root_target.as_deref().is_none_or(str::is_empty) {
            *trusted_root_target = Some(DEFAULT_TRUSTED_ROOT_TARGET.to_string());
        }
    }
}

/// Every TrustRoot rule, applied after defaulting (like [`validate_cluster_image_policy`]);
/// paths from `spec.`.
pub fn validate_trust_root(spec: &TrustRootSpec) -> FieldErrors {
    let mut defaulted = spec.clone();
    set_trust_root_defaults(&mut defaulted);
    trust_root::check_spec(&defaulted)
}
