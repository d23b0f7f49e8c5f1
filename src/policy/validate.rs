//! Placeholder until the validation slice lands: defaulting and the few rules compile needs.

use crate::field_error::{FieldError, FieldErrors};
use crate::policy::crd::{ClusterImagePolicySpec, TrustRootSpec};

#[derive(Clone, Debug)]
pub struct ValidationOptions {
    pub fail_on_empty_authorities: bool,
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

pub fn set_defaults(spec: &mut ClusterImagePolicySpec) {
    for (index, authority) in spec.authorities.iter_mut().enumerate() {
        if authority.name.as_deref().unwrap_or_default().is_empty() {
            authority.name = Some(format!("authority-{index}"));
        }
    }
    if spec.mode.as_deref().unwrap_or_default().is_empty() {
        spec.mode = Some("enforce".to_string());
    }
}

pub fn validate_cluster_image_policy(
    spec: &ClusterImagePolicySpec,
    options: &ValidationOptions,
) -> FieldErrors {
    let mut errors = FieldErrors::new();
    let mut missing = Vec::new();
    if spec.authorities.is_empty() && options.fail_on_empty_authorities {
        missing.push("spec.authorities");
    }
    if spec.images.is_empty() {
        missing.push("spec.images");
    }
    if !missing.is_empty() {
        errors.push(FieldError::missing_field(missing));
    }
    errors
}

pub fn set_trust_root_defaults(_spec: &mut TrustRootSpec) {}

pub fn validate_trust_root(_spec: &TrustRootSpec) -> FieldErrors {
    FieldErrors::new()
}
