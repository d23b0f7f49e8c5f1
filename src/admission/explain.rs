//! Human and JSON explanations of an evaluation (what `verity verify` prints): which policies
//! matched which image, each authority's result, and the decision with the exact denial text.

use serde::Serialize;

use super::decision::{Decision, ImageResult, ImageVerdict, PolicyOutcome};
use super::message;
use crate::policy::index::NoMatchPolicy;

#[derive(Debug, Serialize)]
pub struct Explanation {
    pub allowed: bool,
    /// The denial `status.message` the apiserver would show, when denied.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    pub warnings: Vec<String>,
    pub images: Vec<ImageExplanation>,
}

#[derive(Debug, Serialize)]
pub struct ImageExplanation {
    pub path: String,
    pub image: String,
    /// `matched`, `no-match`, `unparsable` or `error`.
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub policies: Vec<PolicyExplanation>,
}

#[derive(Debug, Serialize)]
pub struct PolicyExplanation {
    pub name: String,
    pub mode: &'static str,
    pub passed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub authorities: Vec<AuthorityExplanation>,
}

#[derive(Debug, Serialize)]
pub struct AuthorityExplanation {
    pub name: String,
    pub kind: &'static str,
    pub passed: bool,
    /// Evidence when passed, the failure text otherwise.
    pub detail: String,
}

impl Explanation {
    pub fn new(results: &[ImageResult], decision: &Decision) -> Self {
        let images = results
            .iter()
            .map(|result| {
                let (status, error, policies) = match &result.verdict {
                    ImageVerdict::NoMatch => ("no-match", None, Vec::new()),
                    ImageVerdict::Unparsable => ("unparsable", None, Vec::new()),
                    ImageVerdict::Error { message } => ("error", Some(message.clone()), Vec::new()),
                    ImageVerdict::Checked(policies) => (
                        "matched",
                        None,
                        policies
                            .iter()
                            .map(|policy| {
                                let (authorities, error) = match &policy.outcome {
                                    PolicyOutcome::Passed(outcomes)
                                    | PolicyOutcome::Failed(outcomes) => (
                                        outcomes
                                            .iter()
                                            .map(|o| AuthorityExplanation {
                                                name: o.authority.clone(),
                                                kind: o.kind,
                                                passed: o.passed(),
                                                detail: match &o.result {
                                                    Ok(evidence) => evidence.description.clone(),
                                                    Err(failure) => failure.message.clone(),
                                                },
                                            })
                                            .collect(),
                                        None,
                                    ),
                                    PolicyOutcome::NoAuthorities => (
                                        Vec::new(),
                                        Some("the policy has no authorities".to_string()),
                                    ),
                                    PolicyOutcome::Broken(error) => {
                                        (Vec::new(), Some(error.clone()))
                                    }
                                };
                                PolicyExplanation {
                                    name: policy.policy.clone(),
                                    mode: policy.mode.as_str(),
                                    passed: policy.passed(),
                                    error,
                                    authorities,
                                }
                            })
                            .collect(),
                    ),
                };
                ImageExplanation {
                    path: result.image.path.clone(),
                    image: result.image.image.clone(),
                    status,
                    error,
                    policies,
                }
            })
            .collect();
        Explanation {
            allowed: decision.allowed,
            message: (!decision.allowed).then(|| message::denial_message(&decision.errors)),
            warnings: message::warning_lines(&decision.warnings),
            images,
        }
    }

    /// A readable account, one image after another.
    pub fn to_text(&self, no_match: NoMatchPolicy) -> String {
        let mut out = String::new();
        for image in &self.images {
            out.push_str(&format!("image {} ({})\n", image.image, image.path));
            match image.status {
                "no-match" => out.push_str(&format!(
                    "  no policy matches this image (no-match-policy: {})\n",
                    no_match.as_str()
                )),
                "unparsable" => out.push_str("  the reference cannot be parsed\n"),
                "error" => out.push_str(&format!(
                    "  could not be checked: {}\n",
                    image.error.as_deref().unwrap_or_default()
                )),
                _ => {}
            }
            for policy in &image.policies {
                out.push_str(&format!(
                    "  policy {} (mode {}): {}\n",
                    policy.name,
                    policy.mode,
                    if policy.passed { "passed" } else { "FAILED" }
                ));
                if let Some(error) = &policy.error {
                    out.push_str(&format!("    {error}\n"));
                }
                for authority in &policy.authorities {
                    out.push_str(&format!(
                        "    authority {} ({}): {}: {}\n",
                        authority.name,
                        authority.kind,
                        if authority.passed { "passed" } else { "failed" },
                        authority.detail
                    ));
                }
            }
        }
        out.push_str(if self.allowed {
            "decision: allowed\n"
        } else {
            "decision: denied\n"
        });
        if let Some(message) = &self.message {
            out.push_str(message);
            out.push('\n');
        }
        for warning in &self.warnings {
            out.push_str(&format!("Warning: {warning}\n"));
        }
        out
    }
}
