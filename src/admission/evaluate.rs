//! Evaluating images against the policy snapshot: match, resolve only when needed, verify.
//!
//! Registry work is avoided where it cannot change the outcome:
//! - identical image strings in one object are evaluated once;
//! - a policy with a passing `static` authority passes without touching the network;
//! - a tag is resolved to a digest only when a matched authority needs it or a digest glob of
//!   another policy could match it, and at most once per image;
//! - authorities of a policy run concurrently and the first pass ends the policy's evaluation.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use futures::stream::{FuturesUnordered, StreamExt};
use tokio::sync::OnceCell;

use super::decision::{ImageResult, ImageVerdict, PolicyOutcome, PolicyResult};
use super::images::ContainerImage;
use crate::image::{Digest, ImageRef};
use crate::policy::compiled::{AuthorityKind, CompiledAuthority, CompiledPolicy, ResourceRef};
use crate::policy::index::{PolicyEntry, PolicySnapshot};
use crate::verify::{AuthorityOutcome, Failure, RequestContext, ResolveError, Verifier};

/// Verification gives up this long before an answer is due, so its own timeout (which names the
/// registry it was waiting for) reports the cause rather than the evaluation's last-resort guard.
pub const VERIFICATION_GRACE: std::time::Duration = std::time::Duration::from_millis(200);

/// What one evaluation looks at.
pub struct Evaluation<'a> {
    pub snapshot: &'a PolicySnapshot,
    pub verifier: &'a Verifier,
    pub resource: &'a ResourceRef,
    /// The admitted object's own labels (for `match[].selector`).
    pub labels: &'a BTreeMap<String, String>,
    pub context: &'a RequestContext,
    /// Evaluate every authority even after one passed (for `verity verify` explanations).
    pub exhaustive: bool,
}

impl Evaluation<'_> {
    /// Results for every image, in the order given.
    pub async fn images(&self, images: &[ContainerImage]) -> Vec<ImageResult> {
        let mut unique: Vec<&str> = Vec::new();
        for image in images {
            if !unique.contains(&image.image.as_str()) {
                unique.push(&image.image);
            }
        }
        let deadline = tokio::time::Instant::from_std(self.context.deadline + VERIFICATION_GRACE);
        let verdicts = futures::future::join_all(unique.iter().map(|image| async move {
            let verdict = match tokio::time::timeout_at(deadline, self.image(image)).await {
                Ok(verdict) => verdict,
                Err(_) => ImageVerdict::Error {
                    message: "verification did not finish before the request deadline; the registry or a signature source is too slow"
                        .to_string(),
                },
            };
            (image.to_string(), verdict)
        }))
        .await;
        let by_image: HashMap<String, ImageVerdict> = verdicts.into_iter().collect();
        images
            .iter()
            .map(|image| ImageResult {
                image: image.clone(),
                verdict: by_image
                    .get(&image.image)
                    .cloned()
                    .unwrap_or(ImageVerdict::Error {
                        message: "internal error: image was not evaluated".to_string(),
                    }),
            })
            .collect()
    }

    async fn image(&self, written: &str) -> ImageVerdict {
        let Ok(image) = ImageRef::parse(written) else {
            return ImageVerdict::Unparsable;
        };
        let digest = DigestCell::new(&image);
        let forms: Vec<String> = image
            .tag_form()
            .into_iter()
            .chain(image.digest_form())
            .collect();
        let mut matched = self.snapshot.matching(&forms, self.resource, self.labels);
        if image.digest().is_none()
            && self.snapshot.digest_could_match_more(
                &image.name(),
                &matched,
                self.resource,
                self.labels,
            )
        {
            // A digest glob of some policy might match: the digest decides which policies apply.
            match digest.get(self.verifier, self.context).await {
                Ok(resolved) => {
                    let pinned = image.with_digest(resolved.clone());
                    let forms: Vec<String> = pinned
                        .tag_form()
                        .into_iter()
                        .chain(pinned.digest_form())
                        .collect();
                    matched = self.snapshot.matching(&forms, self.resource, self.labels);
                }
                Err(err) => {
                    return ImageVerdict::Error {
                        message: format!(
                            "failed to resolve the digest needed to decide which policies apply: {err}"
                        ),
                    };
                }
            }
        }
        if matched.is_empty() {
            return ImageVerdict::NoMatch;
        }
        let results = futures::future::join_all(
            matched
                .iter()
                .map(|entry| self.policy(entry, &image, &digest)),
        )
        .await;
        ImageVerdict::Checked(results)
    }

    async fn policy(
        &self,
        entry: &PolicyEntry,
        image: &ImageRef,
        digest: &DigestCell,
    ) -> PolicyResult {
        let policy = match entry {
            PolicyEntry::Ready(policy) => policy,
            PolicyEntry::Broken { name, error, .. } => {
                return PolicyResult {
                    policy: name.clone(),
                    mode: crate::policy::compiled::Mode::Enforce,
                    outcome: PolicyOutcome::Broken(error.clone()),
                };
            }
        };
        PolicyResult {
            policy: policy.name.clone(),
            mode: policy.mode,
            outcome: self.authorities(policy, image, digest).await,
        }
    }

    async fn authorities(
        &self,
        policy: &CompiledPolicy,
        image: &ImageRef,
        digest: &DigestCell,
    ) -> PolicyOutcome {
        if policy.authorities.is_empty() {
            return PolicyOutcome::NoAuthorities;
        }
        if !self.exhaustive {
            // A static pass needs no network, so it decides before anything is fetched.
            if let Some(pass) = policy
                .authorities
                .iter()
                .find(|a| matches!(a.kind, AuthorityKind::Static { pass: true, .. }))
            {
                let outcome = self.verifier.verify(image, pass, self.context).await;
                return PolicyOutcome::Passed(vec![outcome]);
            }
        }
        let mut pending: FuturesUnordered<_> = policy
            .authorities
            .iter()
            .enumerate()
            .map(|(index, authority)| async move {
                (index, self.authority(authority, image, digest).await)
            })
            .collect();
        let mut outcomes: Vec<(usize, AuthorityOutcome)> =
            Vec::with_capacity(policy.authorities.len());
        while let Some((index, outcome)) = pending.next().await {
            let passed = outcome.passed();
            outcomes.push((index, outcome));
            if passed && !self.exhaustive {
                break;
            }
        }
        outcomes.sort_by_key(|(index, _)| *index);
        let any_passed = outcomes.iter().any(|(_, o)| o.passed());
        let outcomes = outcomes.into_iter().map(|(_, o)| o).collect();
        if any_passed {
            PolicyOutcome::Passed(outcomes)
        } else {
            PolicyOutcome::Failed(outcomes)
        }
    }

    async fn authority(
        &self,
        authority: &CompiledAuthority,
        image: &ImageRef,
        digest: &DigestCell,
    ) -> AuthorityOutcome {
        if !Verifier::needs_digest(authority) {
            return self.verifier.verify(image, authority, self.context).await;
        }
        match digest.get(self.verifier, self.context).await {
            Ok(resolved) => {
                self.verifier
                    .verify(
                        &image.with_digest(resolved.clone()),
                        authority,
                        self.context,
                    )
                    .await
            }
            Err(err) => AuthorityOutcome {
                authority: authority.name.clone(),
                kind: authority.kind.label(),
                result: Err(Failure::transient(format!(
                    "{}: failed to resolve digest: {err}",
                    crate::verify::failure_prefix(authority, image)
                ))),
            },
        }
    }
}

/// The image's digest, resolved at most once and shared by every policy and authority.
struct DigestCell {
    image: ImageRef,
    cell: OnceCell<Result<Digest, Arc<ResolveError>>>,
}

impl DigestCell {
    fn new(image: &ImageRef) -> Self {
        let cell = OnceCell::new();
        if let Some(digest) = image.digest() {
            let _ = cell.set(Ok(digest.clone()));
        }
        DigestCell {
            image: image.clone(),
            cell,
        }
    }

    async fn get(
        &self,
        verifier: &Verifier,
        context: &RequestContext,
    ) -> Result<&Digest, Arc<ResolveError>> {
        self.cell
            .get_or_init(|| async {
                verifier
                    .resolve_digest(&self.image, context)
                    .await
                    .map_err(Arc::new)
            })
            .await
            .as_ref()
            .map_err(Arc::clone)
    }
}
