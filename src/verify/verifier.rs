//! The verification entry point: one image against one authority, with the registry, the
//! credentials and the caches behind it.
//!
//! Results are cached by (signature repository, image digest, authority fingerprint), where the
//! fingerprint covers the authority's content and the keys and trust roots it resolved to:
//! positive results for a long TTL, definite negatives for a short one, transient failures
//! (registry errors, timeouts) never. Concurrent requests for the same key share one
//! verification; tag → digest resolutions are cached briefly and shared the same way.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::cache::{Cache, Lookup};
use crate::image::{Digest, ImageRef, Repository};
use crate::metrics::Metrics;
use crate::policy::compiled::{AuthorityKind, CompiledAuthority, SignatureSource};
use crate::registry::{
    CredentialSource, Keychain, RegistryClient, RegistryError, WorkloadCredentials,
};

use super::discovery::{self, SignatureSite, SignatureVerdict};
use super::keyed;
use super::keyless;
use super::static_policy;

/// What verification needs to know about the request it serves.
#[derive(Clone, Debug)]
pub struct RequestContext {
    /// The admitted workload's namespace, service account and pull secrets.
    pub workload: WorkloadCredentials,
    /// Verification must give up by then, leaving time to answer the apiserver.
    pub deadline: Instant,
}

impl RequestContext {
    /// A context with no workload credentials (the CLI, tests).
    pub fn standalone(deadline: Instant) -> Self {
        RequestContext {
            workload: WorkloadCredentials::default(),
            deadline,
        }
    }
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
#[derive(Clone, Debug, thiserror::Error)]
pub enum ResolveError {
    #[error("registry access is not configured, so {image} cannot be resolved to a digest")]
    NoRegistry { image: String },
    #[error("{0}")]
    Registry(RegistryError),
    #[error("resolving {image} timed out at the request deadline")]
    Timeout { image: String },
    #[error("resolving {image} was interrupted")]
    Interrupted { image: String },
}

impl ResolveError {
    pub fn reason(&self) -> &'static str {
        match self {
            ResolveError::NoRegistry { .. } => "no_registry",
            ResolveError::Registry(err) => err.reason(),
            ResolveError::Timeout { .. } => "timeout",
            ResolveError::Interrupted { .. } => "interrupted",
        }
    }
}

/// How long results are kept, and how many.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CacheSettings {
    pub positive_ttl: Duration,
    pub negative_ttl: Duration,
    pub digest_ttl: Duration,
    pub capacity: usize,
}

impl Default for CacheSettings {
    fn default() -> Self {
        CacheSettings {
            positive_ttl: Duration::from_secs(600),
            negative_ttl: Duration::from_secs(30),
            digest_ttl: Duration::from_secs(30),
            capacity: 10_000,
        }
    }
}

/// Everything an online verifier needs.
pub struct VerifierConfig {
    pub registry: RegistryClient,
    /// Credentials of `--docker-config`, used after the workload's.
    pub docker_config: Keychain,
    pub credentials: Arc<dyn CredentialSource>,
    pub cache: CacheSettings,
    pub metrics: Metrics,
}

type Outcome = Result<Evidence, Failure>;

struct Online {
    registry: RegistryClient,
    docker_config: Keychain,
    credentials: Arc<dyn CredentialSource>,
    settings: CacheSettings,
    results: Arc<Cache<String, Outcome>>,
    digests: Arc<Cache<String, Result<Digest, ResolveError>>>,
    metrics: Metrics,
}

/// Verifies images against authorities.
#[derive(Clone, Default)]
pub struct Verifier {
    online: Option<Arc<Online>>,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("online", &self.online.is_some())
            .finish()
    }
}

impl Verifier {
    /// A verifier without registry access: static authorities only; signature authorities fail
    /// closed.
    pub fn offline() -> Self {
        Verifier { online: None }
    }

    pub fn new(config: VerifierConfig) -> Self {
        Verifier {
            online: Some(Arc::new(Online {
                results: Cache::new(config.cache.capacity),
                digests: Cache::new(config.cache.capacity),
                registry: config.registry,
                docker_config: config.docker_config,
                credentials: config.credentials,
                settings: config.cache,
                metrics: config.metrics,
            })),
        }
    }

    /// Whether checking `authority` needs the image digest (and so possibly the registry).
    pub fn needs_digest(authority: &CompiledAuthority) -> bool {
        !matches!(authority.kind, AuthorityKind::Static { .. })
    }

    /// The digest `image` points at: its own, or the registry's answer for its tag (cached).
    pub async fn resolve_digest(
        &self,
        image: &ImageRef,
        context: &RequestContext,
    ) -> Result<Digest, ResolveError> {
        if let Some(digest) = image.digest() {
            return Ok(digest.clone());
        }
        let Some(online) = &self.online else {
            return Err(ResolveError::NoRegistry {
                image: image.to_string(),
            });
        };
        let keychain = online.image_keychain(&context.workload);
        let registry = online.registry.clone();
        let target = image.clone();
        let ttl = online.settings.digest_ttl;
        let deadline = tokio::time::Instant::from_std(context.deadline);
        let (result, lookup) = online
            .digests
            .get_or_compute(image.to_string(), move || async move {
                let result = match tokio::time::timeout_at(
                    deadline,
                    registry.resolve_digest(&target, &keychain),
                )
                .await
                {
                    Ok(Ok(digest)) => Ok(digest),
                    Ok(Err(err)) => Err(ResolveError::Registry(err)),
                    Err(_) => Err(ResolveError::Timeout {
                        image: target.to_string(),
                    }),
                };
                let keep = result.is_ok().then_some(ttl);
                (result, keep)
            })
            .await;
        online.count_cache("digest", lookup);
        result.unwrap_or_else(|| {
            Err(ResolveError::Interrupted {
                image: image.to_string(),
            })
        })
    }

    /// Checks `image` (pinned to its digest when the authority needs one) against `authority`.
    pub async fn verify(
        &self,
        image: &ImageRef,
        authority: &CompiledAuthority,
        context: &RequestContext,
    ) -> AuthorityOutcome {
        let started = Instant::now();
        let result = match &authority.kind {
            AuthorityKind::Static { pass, message } => static_policy::evaluate(*pass, message),
            AuthorityKind::Key(_) | AuthorityKind::Keyless(_) => {
                self.verify_signatures(image, authority, context).await
            }
        };
        if let Some(online) = &self.online {
            let label = match &result {
                Ok(_) => "pass",
                Err(f) if f.transient => "error",
                Err(_) => "fail",
            };
            online
                .metrics
                .verification_duration
                .with_label_values(&[authority.kind.label(), label])
                .observe(started.elapsed().as_secs_f64());
        }
        AuthorityOutcome {
            authority: authority.name.clone(),
            kind: authority.kind.label(),
            result,
        }
    }

    async fn verify_signatures(
        &self,
        image: &ImageRef,
        authority: &CompiledAuthority,
        context: &RequestContext,
    ) -> Outcome {
        let prefix = failure_prefix(authority, image);
        let Some(online) = &self.online else {
            return Err(Failure::definite(format!(
                "{prefix}: registry access is not configured, so signatures cannot be read"
            )));
        };
        let Some(digest) = image.digest().cloned() else {
            return Err(Failure::transient(format!(
                "{prefix}: the image digest is unknown"
            )));
        };
        let source = match &authority.kind {
            AuthorityKind::Key(key) => &key.source,
            AuthorityKind::Keyless(keyless) => &keyless.source,
            AuthorityKind::Static { .. } => return static_policy::evaluate(false, ""),
        };
        let site = signature_site(image, source);
        let key = format!("{}|{digest}|{}", site.repository, authority.fingerprint);
        let keychain = Keychain::merged(&[
            &online
                .credentials
                .named_keychain(context.workload.namespace.as_deref(), &source.pull_secrets),
            &online.image_keychain(&context.workload),
        ]);
        let registry = online.registry.clone();
        let authority = authority.clone();
        let settings = online.settings;
        let deadline = tokio::time::Instant::from_std(context.deadline);
        let computation_prefix = prefix.clone();
        let (result, lookup) = online
            .results
            .get_or_compute(key, move || async move {
                let budget = deadline.saturating_duration_since(tokio::time::Instant::now());
                let checked = tokio::time::timeout_at(
                    deadline,
                    discover_and_judge(
                        &registry,
                        &site,
                        &digest,
                        &keychain,
                        &authority,
                        &computation_prefix,
                    ),
                )
                .await;
                let outcome = checked.unwrap_or_else(|_| {
                    Err(Failure::transient(format!(
                        "{computation_prefix}: timed out after {:.1}s reading signatures from {}",
                        budget.as_secs_f64(),
                        site.repository.registry()
                    )))
                });
                let ttl = match &outcome {
                    Ok(_) => Some(settings.positive_ttl),
                    Err(failure) if !failure.transient => Some(settings.negative_ttl),
                    Err(_) => None,
                };
                (outcome, ttl)
            })
            .await;
        online.count_cache("verification", lookup);
        result.unwrap_or_else(|| {
            Err(Failure::transient(format!(
                "{prefix}: verification was interrupted"
            )))
        })
    }
}

impl Online {
    /// The workload's pull secrets, then its service account's, then `--docker-config`.
    fn image_keychain(&self, workload: &WorkloadCredentials) -> Keychain {
        Keychain::merged(&[
            &self.credentials.workload_keychain(workload),
            &self.docker_config,
        ])
    }

    fn count_cache(&self, cache: &str, lookup: Lookup) {
        self.metrics
            .cache_requests
            .with_label_values(&[cache, lookup.as_str()])
            .inc();
    }
}

/// Where `authority` reads the signatures of `image`: `source.oci` or the image's repository.
fn signature_site(image: &ImageRef, source: &SignatureSource) -> SignatureSite {
    SignatureSite {
        repository: source
            .repository
            .clone()
            .unwrap_or_else(|| Repository::from(image)),
        tag_prefix: source.tag_prefix.clone(),
    }
}

/// Reads the legacy signatures and judges them; lists the referrers only if none passed, which
/// spares two registry calls for the common case.
async fn discover_and_judge(
    registry: &RegistryClient,
    site: &SignatureSite,
    digest: &Digest,
    keychain: &Keychain,
    authority: &CompiledAuthority,
    prefix: &str,
) -> Outcome {
    let read_error = |err: RegistryError| {
        Failure::transient(format!("{prefix}: failed to read signatures: {err}"))
    };
    let mut discovered = discovery::Discovered::legacy(registry, site, digest, keychain)
        .await
        .map_err(read_error)?;
    if !discovered.legacy.is_empty()
        && let Ok(evidence) = judge(authority, digest, &discovered, prefix)
    {
        return Ok(evidence);
    }
    discovered
        .add_bundles(registry, site, digest, keychain)
        .await
        .map_err(read_error)?;
    judge(authority, digest, &discovered, prefix)
}

/// Turns what was found into the authority's answer, with the reference's texts first.
fn judge(
    authority: &CompiledAuthority,
    digest: &Digest,
    discovered: &discovery::Discovered,
    prefix: &str,
) -> Outcome {
    let verdict = match &authority.kind {
        AuthorityKind::Key(key) => keyed::check(key, digest, discovered),
        AuthorityKind::Keyless(keyless) => keyless::check(keyless, digest, discovered),
        AuthorityKind::Static { pass, message } => return static_policy::evaluate(*pass, message),
    };
    match verdict {
        SignatureVerdict::Accepted(description) => Ok(Evidence { description }),
        SignatureVerdict::NoSignatures => Err(Failure::definite(format!(
            "{prefix}: no signatures found ({})",
            discovered.summary()
        ))),
        SignatureVerdict::NoneMatched(rejections) => Err(Failure::definite(format!(
            "{prefix}: no matching signatures: {} ({})",
            rejections.join("; "),
            discovered.summary()
        ))),
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
