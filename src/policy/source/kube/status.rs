//! `status` of ClusterImagePolicies and TrustRoots: the `Ready` condition and
//! `observedGeneration`, written through the status subresource only when they change.
//!
//! A written status comes back as a watch event; since status is not an input of compilation
//! and the desired status then equals the observed one, nothing is recompiled or rewritten.
//! [`StatusLedger`] also remembers writes in flight, so events that arrive before our own write
//! lands do not write the same status twice.

use std::collections::BTreeMap;

use kube::api::{Api, DynamicObject, Patch, PatchParams};
use tokio::sync::mpsc;
use tracing::{debug, warn};

use crate::policy::crd::{Condition, PolicyStatus};

pub const READY: &str = "Ready";

/// The `Ready` condition verity computes for one object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadyCondition {
    pub ready: bool,
    pub reason: &'static str,
    pub message: String,
}

/// The status to hold: `observedGeneration`, and `current`'s conditions with `Ready` replaced.
/// The transition time is kept while the condition's status stays the same, else it is `now`.
pub fn desired_status(
    current: Option<&PolicyStatus>,
    generation: Option<i64>,
    ready: &ReadyCondition,
    now: &str,
) -> PolicyStatus {
    let status = if ready.ready { "True" } else { "False" };
    let previous = current.and_then(|s| s.conditions.iter().find(|c| c.condition_type == READY));
    let last_transition_time = match previous {
        Some(previous) if previous.status == status => previous
            .last_transition_time
            .clone()
            .or_else(|| Some(now.to_string())),
        _ => Some(now.to_string()),
    };
    let condition = Condition {
        condition_type: READY.to_string(),
        status: status.to_string(),
        reason: Some(ready.reason.to_string()),
        message: Some(ready.message.clone()),
        last_transition_time,
    };
    let mut conditions: Vec<Condition> = current
        .map(|s| {
            s.conditions
                .iter()
                .filter(|c| c.condition_type != READY)
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    conditions.push(condition);
    conditions.sort_by(|a, b| a.condition_type.cmp(&b.condition_type));
    PolicyStatus {
        observed_generation: generation,
        conditions,
    }
}

/// Which resource a status belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum StatusKind {
    ClusterImagePolicy,
    TrustRoot,
}

impl StatusKind {
    pub fn as_str(self) -> &'static str {
        match self {
            StatusKind::ClusterImagePolicy => "ClusterImagePolicy",
            StatusKind::TrustRoot => "TrustRoot",
        }
    }
}

/// One status to write.
#[derive(Clone, Debug, PartialEq)]
pub struct StatusWrite {
    pub kind: StatusKind,
    pub name: String,
    pub status: PolicyStatus,
}

/// Statuses written and not yet seen back.
#[derive(Debug, Default)]
pub struct StatusLedger {
    in_flight: BTreeMap<(StatusKind, String), PolicyStatus>,
}

impl StatusLedger {
    /// Whether `desired` must be written for an object whose status is `current`.
    pub fn needs_write(
        &mut self,
        kind: StatusKind,
        name: &str,
        current: Option<&PolicyStatus>,
        desired: &PolicyStatus,
    ) -> bool {
        let key = (kind, name.to_string());
        if current == Some(desired) {
            // Our write landed (or nothing was needed): a later external change is rewritten.
            self.in_flight.remove(&key);
            return false;
        }
        if self.in_flight.get(&key) == Some(desired) {
            return false;
        }
        self.in_flight.insert(key, desired.clone());
        true
    }

    /// A write failed: the next reconcile writes it again.
    pub fn failed(&mut self, write: &StatusWrite) {
        let key = (write.kind, write.name.clone());
        if self.in_flight.get(&key) == Some(&write.status) {
            self.in_flight.remove(&key);
        }
    }

    /// Drops what is remembered about objects that are gone.
    pub fn retain(&mut self, mut exists: impl FnMut(StatusKind, &str) -> bool) {
        self.in_flight.retain(|(kind, name), _| exists(*kind, name));
    }
}

/// Writes statuses one at a time, in order, through the status subresource.
pub struct StatusWriter {
    pub policies: Api<DynamicObject>,
    pub trust_roots: Api<DynamicObject>,
}

impl StatusWriter {
    /// Runs until `writes` closes; failed writes go back on `failures`.
    pub async fn run(
        self,
        mut writes: mpsc::UnboundedReceiver<StatusWrite>,
        failures: mpsc::UnboundedSender<StatusWrite>,
    ) {
        while let Some(write) = writes.recv().await {
            let api = match write.kind {
                StatusKind::ClusterImagePolicy => &self.policies,
                StatusKind::TrustRoot => &self.trust_roots,
            };
            let patch = Patch::Merge(serde_json::json!({ "status": &write.status }));
            match api
                .patch_status(&write.name, &PatchParams::default(), &patch)
                .await
            {
                Ok(_) => debug!(kind = write.kind.as_str(), name = %write.name, "status written"),
                Err(kube::Error::Api(status)) if status.code == 404 => {
                    debug!(kind = write.kind.as_str(), name = %write.name, "object gone before its status was written");
                }
                Err(error) => {
                    warn!(kind = write.kind.as_str(), name = %write.name, %error, "failed to write status; will retry");
                    if failures.send(write).is_err() {
                        return;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn broken(message: &str) -> ReadyCondition {
        ReadyCondition {
            ready: false,
            reason: "SecretMissing",
            message: message.into(),
        }
    }

    fn compiled() -> ReadyCondition {
        ReadyCondition {
            ready: true,
            reason: "Compiled",
            message: "compiled".into(),
        }
    }

    #[test]
    fn condition_transitions_keep_time_until_the_status_flips() {
        let first = desired_status(None, Some(1), &broken("secret missing"), "T1");
        assert_eq!(first.observed_generation, Some(1));
        assert_eq!(first.conditions.len(), 1);
        let ready = &first.conditions[0];
        assert_eq!(
            (ready.condition_type.as_str(), ready.status.as_str()),
            ("Ready", "False")
        );
        assert_eq!(ready.reason.as_deref(), Some("SecretMissing"));
        assert_eq!(ready.message.as_deref(), Some("secret missing"));
        assert_eq!(ready.last_transition_time.as_deref(), Some("T1"));

        // Still false with another message: the time stays.
        let second = desired_status(Some(&first), Some(2), &broken("other"), "T2");
        assert_eq!(
            second.conditions[0].last_transition_time.as_deref(),
            Some("T1")
        );
        assert_eq!(second.observed_generation, Some(2));
        // Flips to true: the time moves.
        let third = desired_status(Some(&second), Some(2), &compiled(), "T3");
        assert_eq!(third.conditions[0].status, "True");
        assert_eq!(
            third.conditions[0].last_transition_time.as_deref(),
            Some("T3")
        );
        // Recomputed from itself: identical, so nothing to write.
        assert_eq!(
            desired_status(Some(&third), Some(2), &compiled(), "T4"),
            third
        );
    }

    #[test]
    fn other_conditions_are_kept() {
        let current = PolicyStatus {
            observed_generation: Some(1),
            conditions: vec![Condition {
                condition_type: "Audited".into(),
                status: "True".into(),
                reason: None,
                message: None,
                last_transition_time: None,
            }],
        };
        let desired = desired_status(Some(&current), Some(1), &compiled(), "T");
        let types: Vec<&str> = desired
            .conditions
            .iter()
            .map(|c| c.condition_type.as_str())
            .collect();
        assert_eq!(types, ["Audited", "Ready"]);
    }

    #[test]
    fn ledger_writes_each_change_once() {
        let mut ledger = StatusLedger::default();
        let kind = StatusKind::ClusterImagePolicy;
        let desired = desired_status(None, Some(1), &compiled(), "T");
        assert!(ledger.needs_write(kind, "p", None, &desired));
        // Events before our write lands: no second write.
        assert!(!ledger.needs_write(kind, "p", None, &desired));
        // It lands.
        assert!(!ledger.needs_write(kind, "p", Some(&desired), &desired));
        // Someone else changes it: written again.
        let other = desired_status(None, Some(1), &broken("x"), "T");
        assert!(ledger.needs_write(kind, "p", Some(&other), &desired));
        // A failed write is retried by the next reconcile.
        let write = StatusWrite {
            kind,
            name: "p".into(),
            status: desired.clone(),
        };
        ledger.failed(&write);
        assert!(ledger.needs_write(kind, "p", Some(&other), &desired));
        ledger.retain(|_, _| false);
        assert!(ledger.needs_write(kind, "p", Some(&other), &desired));
    }
}
