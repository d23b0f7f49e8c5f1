//! Combining per-image results into one decision: policies are AND-ed, authorities OR-ed,
//! `mode: warn` turns a policy's failure into a warning, and `no-match-policy` handles images no
//! policy covers.
//!
//! Unlike the reference, errors and warnings are kept apart per policy (its shared flags let a
//! warn-mode failure downgrade an enforce-mode one), and every failure — including a policy with
//! no authorities or one that failed to compile — denies.

use super::images::ContainerImage;
use crate::field_error::{FieldError, FieldErrors, Level};
use crate::policy::compiled::Mode;
use crate::policy::index::NoMatchPolicy;
use crate::verify::AuthorityOutcome;

/// One image against one matching policy.
#[derive(Clone, Debug)]
pub struct PolicyResult {
    pub policy: String,
    pub mode: Mode,
    pub outcome: PolicyOutcome,
}

#[derive(Clone, Debug)]
pub enum PolicyOutcome {
    /// At least one authority passed (the others may not have been evaluated).
    Passed(Vec<AuthorityOutcome>),
    /// Every authority failed; their outcomes in authority order.
    Failed(Vec<AuthorityOutcome>),
    /// The policy has no authorities, so nothing can satisfy it.
    NoAuthorities,
    /// The policy failed to compile; images it covers are denied with the reason.
    Broken(String),
}

impl PolicyResult {
    pub fn passed(&self) -> bool {
        matches!(self.outcome, PolicyOutcome::Passed(_))
    }

    /// The authority texts, joined as the reference joins them: by single spaces.
    fn failure_text(&self) -> String {
        match &self.outcome {
            PolicyOutcome::Passed(_) => String::new(),
            PolicyOutcome::Failed(outcomes) => outcomes
                .iter()
                .filter_map(|o| o.result.as_ref().err().map(|f| f.message.as_str()))
                .collect::<Vec<_>>()
                .join(" "),
            PolicyOutcome::NoAuthorities => format!(
                "policy {} has no authorities, so no image it matches can satisfy it",
                self.policy
            ),
            PolicyOutcome::Broken(error) => format!(
                "policy {} is invalid and denies every image it matches: {error}",
                self.policy
            ),
        }
    }

    /// Whether the failure came from infrastructure (registry, timeout) rather than a definite
    /// answer.
    fn transient(&self) -> bool {
        match &self.outcome {
            PolicyOutcome::Failed(outcomes) => outcomes
                .iter()
                .any(|o| o.result.as_ref().err().is_some_and(|f| f.transient)),
            _ => false,
        }
    }
}

/// What happened to one image.
#[derive(Clone, Debug)]
pub enum ImageVerdict {
    /// No policy matched.
    NoMatch,
    /// The reference could not be parsed.
    Unparsable,
    /// Matching could not be decided (e.g. the digest was needed and could not be resolved).
    Error { message: String },
    /// Every matching policy's result, in policy name order.
    Checked(Vec<PolicyResult>),
}

#[derive(Clone, Debug)]
pub struct ImageResult {
    pub image: ContainerImage,
    pub verdict: ImageVerdict,
}

/// The answer to one admission request.
#[derive(Clone, Debug, Default)]
pub struct Decision {
    pub allowed: bool,
    /// Enforced failures (Level::Error).
    pub errors: FieldErrors,
    /// Warn-mode failures and no-match warnings (Level::Warning).
    pub warnings: FieldErrors,
    /// A bounded label for metrics and logs.
    pub reason: &'static str,
}

impl Decision {
    /// Admit without looking (delete, status update, scale-down...).
    pub fn skipped() -> Self {
        Decision {
            allowed: true,
            reason: "skipped",
            ..Decision::default()
        }
    }

    /// Deny with one error not tied to an image (malformed object).
    pub fn invalid(error: FieldError) -> Self {
        Decision {
            allowed: false,
            errors: error.into(),
            warnings: FieldErrors::new(),
            reason: "invalid_object",
        }
    }
}

/// Combines the images' results.
pub fn decide(results: &[ImageResult], no_match: NoMatchPolicy) -> Decision {
    let mut errors = FieldErrors::new();
    let mut warnings = FieldErrors::new();
    // The most significant reason wins: infrastructure errors, then policy failures, ...
    let mut reason = "allowed";
    let mut note = |candidate: &'static str| {
        let rank = |r: &str| match r {
            "error" => 5,
            "invalid_image" => 4,
            "policy" => 3,
            "no_match" => 2,
            "warn" => 1,
            _ => 0,
        };
        if rank(candidate) > rank(reason) {
            reason = candidate;
        }
    };
    for result in results {
        let path = result.image.path.clone();
        let image = &result.image.image;
        match &result.verdict {
            ImageVerdict::NoMatch => match no_match {
                NoMatchPolicy::Deny => {
                    errors.push(
                        FieldError::new("no matching policies", vec![path])
                            .with_details(image.clone()),
                    );
                    note("no_match");
                }
                NoMatchPolicy::Warn => {
                    warnings.push(
                        FieldError::new("no matching policies", vec![path])
                            .with_details(image.clone())
                            .at_level(Level::Warning),
                    );
                    note("warn");
                }
                NoMatchPolicy::Allow => {}
            },
            ImageVerdict::Unparsable => {
                errors.push(FieldError::new(
                    format!("could not parse reference: {image}"),
                    vec![path],
                ));
                note("invalid_image");
            }
            ImageVerdict::Error { message } => {
                errors.push(
                    FieldError::new("failed to check image", vec![path])
                        .with_details(format!("{image} {message}")),
                );
                note("error");
            }
            ImageVerdict::Checked(policies) => {
                for policy in policies.iter().filter(|p| !p.passed()) {
                    let error = FieldError::new(
                        format!("failed policy: {}", policy.policy),
                        vec![path.clone()],
                    )
                    .with_details(format!("{image} {}", policy.failure_text()));
                    let enforced = policy.mode == Mode::Enforce
                        || matches!(policy.outcome, PolicyOutcome::Broken(_));
                    if enforced {
                        errors.push(error);
                        note(if policy.transient() {
                            "error"
                        } else {
                            "policy"
                        });
                    } else {
                        warnings.push(error.at_level(Level::Warning));
                        note("warn");
                    }
                }
            }
        }
    }
    Decision {
        allowed: errors.is_empty(),
        errors,
        warnings,
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::{Evidence, Failure};

    fn image(path: &str, image: &str) -> ContainerImage {
        ContainerImage {
            path: path.to_string(),
            pointer: String::new(),
            image: image.to_string(),
        }
    }

    fn outcome(name: &str, result: Result<&str, &str>) -> AuthorityOutcome {
        AuthorityOutcome {
            authority: name.to_string(),
            kind: "static",
            result: result
                .map(|d| Evidence {
                    description: d.to_string(),
                })
                .map_err(Failure::definite),
        }
    }

    fn failed(policy: &str, mode: Mode, messages: &[&str]) -> PolicyResult {
        PolicyResult {
            policy: policy.to_string(),
            mode,
            outcome: PolicyOutcome::Failed(
                messages
                    .iter()
                    .enumerate()
                    .map(|(i, m)| outcome(&format!("authority-{i}"), Err(m)))
                    .collect(),
            ),
        }
    }

    fn passed(policy: &str) -> PolicyResult {
        PolicyResult {
            policy: policy.to_string(),
            mode: Mode::Enforce,
            outcome: PolicyOutcome::Passed(vec![outcome("authority-0", Ok("static pass"))]),
        }
    }

    #[test]
    fn and_across_policies_with_reference_details() {
        let results = [ImageResult {
            image: image("spec.containers[0].image", "busybox"),
            verdict: ImageVerdict::Checked(vec![
                passed("allow-all"),
                failed(
                    "deny-hub",
                    Mode::Enforce,
                    &["disallowed by static policy: nope", "second"],
                ),
            ]),
        }];
        let decision = decide(&results, NoMatchPolicy::Deny);
        assert!(!decision.allowed);
        assert_eq!(decision.reason, "policy");
        assert_eq!(
            decision.errors.to_string(),
            "failed policy: deny-hub: spec.containers[0].image\nbusybox disallowed by static policy: nope second"
        );
    }

    #[test]
    fn warn_mode_never_downgrades_enforced_failures() {
        let results = [ImageResult {
            image: image("spec.containers[0].image", "busybox"),
            verdict: ImageVerdict::Checked(vec![
                failed("a-warn", Mode::Warn, &["w"]),
                failed("b-enforce", Mode::Enforce, &["e"]),
                failed("c-warn", Mode::Warn, &["w2"]),
            ]),
        }];
        let decision = decide(&results, NoMatchPolicy::Deny);
        assert!(!decision.allowed);
        assert_eq!(
            decision.errors.to_string(),
            "failed policy: b-enforce: spec.containers[0].image\nbusybox e"
        );
        assert_eq!(decision.warnings.merged().len(), 2);
    }

    #[test]
    fn warn_only_failures_admit_with_warnings() {
        let results = [ImageResult {
            image: image("spec.containers[0].image", "busybox"),
            verdict: ImageVerdict::Checked(vec![failed("audit", Mode::Warn, &["w"])]),
        }];
        let decision = decide(&results, NoMatchPolicy::Deny);
        assert!(decision.allowed);
        assert_eq!(decision.reason, "warn");
        assert!(decision.errors.is_empty());
        assert_eq!(
            decision.warnings.merged()[0].message,
            "failed policy: audit"
        );
    }

    #[test]
    fn no_match_in_all_three_settings() {
        let results = [ImageResult {
            image: image("spec.containers[0].image", "nginx"),
            verdict: ImageVerdict::NoMatch,
        }];
        let deny = decide(&results, NoMatchPolicy::Deny);
        assert!(!deny.allowed);
        assert_eq!(
            deny.errors.to_string(),
            "no matching policies: spec.containers[0].image\nnginx"
        );
        let warn = decide(&results, NoMatchPolicy::Warn);
        assert!(warn.allowed && warn.errors.is_empty());
        assert_eq!(warn.warnings.merged().len(), 1);
        let allow = decide(&results, NoMatchPolicy::Allow);
        assert!(allow.allowed && allow.warnings.is_empty());
    }

    #[test]
    fn broken_and_empty_policies_deny_even_in_warn_mode() {
        let results = [ImageResult {
            image: image("spec.containers[0].image", "nginx"),
            verdict: ImageVerdict::Checked(vec![
                PolicyResult {
                    policy: "broken".into(),
                    mode: Mode::Warn,
                    outcome: PolicyOutcome::Broken("bad key".into()),
                },
                PolicyResult {
                    policy: "empty".into(),
                    mode: Mode::Enforce,
                    outcome: PolicyOutcome::NoAuthorities,
                },
            ]),
        }];
        let decision = decide(&results, NoMatchPolicy::Allow);
        assert!(!decision.allowed);
        assert_eq!(
            decision.errors.to_string(),
            "failed policy: broken: spec.containers[0].image\nnginx policy broken is invalid and denies every image it matches: bad key\n\
             failed policy: empty: spec.containers[0].image\nnginx policy empty has no authorities, so no image it matches can satisfy it"
        );
    }

    #[test]
    fn same_failure_on_two_paths_merges() {
        let verdict = || ImageVerdict::Checked(vec![failed("p", Mode::Enforce, &["bad"])]);
        let results = [
            ImageResult {
                image: image("spec.initContainers[0].image", "x"),
                verdict: verdict(),
            },
            ImageResult {
                image: image("spec.containers[0].image", "x"),
                verdict: verdict(),
            },
        ];
        assert_eq!(
            decide(&results, NoMatchPolicy::Deny).errors.to_string(),
            "failed policy: p: spec.containers[0].image, spec.initContainers[0].image\nx bad"
        );
    }

    #[test]
    fn unparsable_images_deny() {
        let results = [ImageResult {
            image: image("spec.containers[0].image", "Bad!"),
            verdict: ImageVerdict::Unparsable,
        }];
        let decision = decide(&results, NoMatchPolicy::Allow);
        assert!(!decision.allowed);
        assert_eq!(
            decision.errors.to_string(),
            "could not parse reference: Bad!: spec.containers[0].image"
        );
    }
}
