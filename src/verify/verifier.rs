//! The verification entry point: one image against one authority.

use std::time::Instant;

use crate::image::{Digest, ImageRef};
use crate::policy::compiled::{AuthorityKind, CompiledAuthority};

use super::static_policy;

/// What verification needs to know about the request it serves.
#[derive(Clone, Debug)]
pub struct RequestContext {
    /// Namespace of the admitted object (pull secrets live there).
    pub namespace: Option<String>,
    /// Verification must give up by then, leaving time to answer the apiserver.
    pub deadline: Instant,
}

/// Why an authority was satisfied, for explanations.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Evidence {
    pub description: String,
}

/// Why an authority was not satisfied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// The text that goes into the denial, in the reference's wording plus what verity saw.
    pub message: String,
    /// An infrastructure problem (registry down, timeout) rather than a definite answer; such
    /// results are never cached.
    pub transient: bool,
}

impl Failure {
    pub fn definite(message: impl Into<String>) -> Self {
        Failure {
            message: message.into(),
            transient: false,
        }
    }

    pub fn transient(message: impl Into<String>) -> Self {
        Failure {
            message: message.into(),
            transient: true,
        }
    }
}

/// One authority's answer for one image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthorityOutcome {
    pub authority: String,
    pub kind: &'static str,
    pub result: Result<Evidence, Failure>,
}

impl AuthorityOutcome {
    pub fn passed(&self) -> bool {
        self.result.is_ok()
    }
}

/// Why a tag could not be resolved to a digest.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    #[error(
        "registry access is not available in this build, so {image} cannot be resolved to a digest"
    )]
    NoRegistry { image: String },
}

impl ResolveError {
    pub fn reason(&self) -> &'static str {
        match self {
            ResolveError::NoRegistry { .. } => "no_registry",
        }
    }
}

/// Verifies images against authorities.
#[derive(Clone, Debug, Default)]
pub struct Verifier {}

impl Verifier {
    /// A verifier without registry access: static authorities only.
    pub fn offline() -> Self {
        Verifier {}
    }

    /// Whether checking `authority` needs the image digest (and so possibly the registry).
    pub fn needs_digest(authority: &CompiledAuthority) -> bool {
        !matches!(authority.kind, AuthorityKind::Static { .. })
    }

    /// The digest `image` points at.
    pub async fn resolve_digest(
        &self,
        image: &ImageRef,
        _context: &RequestContext,
    ) -> Result<Digest, ResolveError> {
        match image.digest() {
            Some(digest) => Ok(digest.clone()),
            None => Err(ResolveError::NoRegistry {
                image: image.to_string(),
            }),
        }
    }

    /// Checks `image` (its digest resolved when the authority needs one) against `authority`.
    pub async fn verify(
        &self,
        image: &ImageRef,
        authority: &CompiledAuthority,
        _context: &RequestContext,
    ) -> AuthorityOutcome {
        let result = match &authority.kind {
            AuthorityKind::Static { pass, message } => static_policy::evaluate(*pass, message),
            AuthorityKind::Key(_) | AuthorityKind::Keyless(_) => Err(Failure::definite(format!(
                "{}: {} authorities are not supported by this build of verity yet",
                failure_prefix(authority, image),
                authority.kind.label()
            ))),
        };
        AuthorityOutcome {
            authority: authority.name.clone(),
            kind: authority.kind.label(),
            result,
        }
    }
}

/// How the reference names an image inside authority errors: `repo@digest`, without the tag.
pub fn signed_name(image: &ImageRef) -> String {
    image
        .digest_form()
        .or_else(|| image.tag_form())
        .unwrap_or_else(|| image.name())
}

/// The reference's opening of an authority failure:
/// `signature key validation failed for authority <name> for <repo@digest>`.
pub fn failure_prefix(authority: &CompiledAuthority, image: &ImageRef) -> String {
    let kind = match authority.kind {
        AuthorityKind::Keyless(_) => "keyless",
        _ => "key",
    };
    format!(
        "signature {kind} validation failed for authority {} for {}",
        authority.name,
        signed_name(image)
    )
}
