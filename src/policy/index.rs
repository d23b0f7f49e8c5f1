//! The policy index: an immutable snapshot of every compiled policy plus cluster settings,
//! swapped whole on every change so a request sees one consistent set of policies.

use std::collections::BTreeMap;
use std::sync::Arc;

use arc_swap::ArcSwap;
use regex::RegexSet;

use super::compiled::{CompiledPolicy, ResourceRef};
use super::glob::Glob;

/// What to do with an image that no policy matches (`config-policy-controller`
/// `no-match-policy`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum NoMatchPolicy {
    #[default]
    Deny,
    Warn,
    Allow,
}

impl NoMatchPolicy {
    /// The ConfigMap values; like the reference, anything unknown means deny.
    pub fn parse_lenient(value: &str) -> Self {
        match value {
            "warn" => NoMatchPolicy::Warn,
            "allow" => NoMatchPolicy::Allow,
            _ => NoMatchPolicy::Deny,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            NoMatchPolicy::Deny => "deny",
            NoMatchPolicy::Warn => "warn",
            NoMatchPolicy::Allow => "allow",
        }
    }
}

/// Settings that apply to every request of a snapshot.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Settings {
    pub no_match: NoMatchPolicy,
}

/// A policy in the index: compiled, or broken with the reason it failed to compile.
#[derive(Clone, Debug)]
pub enum PolicyEntry {
    Ready(CompiledPolicy),
    /// Kept so the images it covers are denied with the compile error instead of silently
    /// falling out of enforcement (the reference drops such policies).
    Broken {
        name: String,
        globs: Vec<Glob>,
        error: String,
    },
}

impl PolicyEntry {
    pub fn name(&self) -> &str {
        match self {
            PolicyEntry::Ready(policy) => &policy.name,
            PolicyEntry::Broken { name, .. } => name,
        }
    }

    pub fn globs(&self) -> &[Glob] {
        match self {
            PolicyEntry::Ready(policy) => &policy.globs,
            PolicyEntry::Broken { globs, .. } => globs,
        }
    }

    /// Whether `match[]` selects this resource; broken policies apply to every kind.
    fn applies_to(&self, resource: &ResourceRef, labels: &BTreeMap<String, String>) -> bool {
        match self {
            PolicyEntry::Ready(policy) => {
                policy.resources.is_empty()
                    || policy.resources.iter().any(|m| m.matches(resource, labels))
            }
            PolicyEntry::Broken { .. } => true,
        }
    }
}

/// One consistent set of policies and settings.
#[derive(Debug)]
pub struct PolicySnapshot {
    policies: Vec<Arc<PolicyEntry>>,
    /// Every glob of every policy, in one automaton.
    globs: RegexSet,
    /// `globs` index → `policies` index.
    glob_owner: Vec<usize>,
    settings: Settings,
    generation: u64,
}

impl PolicySnapshot {
    pub fn new(
        mut policies: Vec<PolicyEntry>,
        settings: Settings,
        generation: u64,
    ) -> Result<Self, regex::Error> {
        // A stable order keeps messages and explanations deterministic.
        policies.sort_by(|a, b| a.name().cmp(b.name()));
        let mut patterns = Vec::new();
        let mut glob_owner = Vec::new();
        for (index, policy) in policies.iter().enumerate() {
            for glob in policy.globs() {
                patterns.push(glob.regex().to_string());
                glob_owner.push(index);
            }
        }
        Ok(PolicySnapshot {
            globs: RegexSet::new(&patterns)?,
            glob_owner,
            policies: policies.into_iter().map(Arc::new).collect(),
            settings,
            generation,
        })
    }

    /// An empty snapshot (nothing loaded yet).
    pub fn empty() -> Self {
        PolicySnapshot {
            policies: Vec::new(),
            globs: RegexSet::empty(),
            glob_owner: Vec::new(),
            settings: Settings::default(),
            generation: 0,
        }
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    pub fn generation(&self) -> u64 {
        self.generation
    }

    pub fn policies(&self) -> &[Arc<PolicyEntry>] {
        &self.policies
    }

    pub fn len(&self) -> usize {
        self.policies.len()
    }

    pub fn is_empty(&self) -> bool {
        self.policies.is_empty()
    }

    /// Policies whose `match[]` selects the resource and one of whose globs matches one of the
    /// image's normalised forms, in name order.
    pub fn matching(
        &self,
        forms: &[String],
        resource: &ResourceRef,
        labels: &BTreeMap<String, String>,
    ) -> Vec<Arc<PolicyEntry>> {
        let mut hit = vec![false; self.policies.len()];
        for form in forms {
            for glob_index in self.globs.matches(form).iter() {
                if let Some(&owner) = self.glob_owner.get(glob_index) {
                    hit[owner] = true;
                }
            }
        }
        self.policies
            .iter()
            .zip(hit)
            .filter(|(policy, hit)| *hit && policy.applies_to(resource, labels))
            .map(|(policy, _)| Arc::clone(policy))
            .collect()
    }

    /// Whether learning the digest of `name` (`registry/repo`) could add a policy beyond
    /// `already_matched`: some other applicable policy has a glob that matches a digest form.
    pub fn digest_could_match_more(
        &self,
        name: &str,
        already_matched: &[Arc<PolicyEntry>],
        resource: &ResourceRef,
        labels: &BTreeMap<String, String>,
    ) -> bool {
        self.policies.iter().any(|policy| {
            !already_matched.iter().any(|m| Arc::ptr_eq(m, policy))
                && policy.applies_to(resource, labels)
                && policy
                    .globs()
                    .iter()
                    .any(|glob| glob.may_match_some_digest_of(name))
        })
    }
}

/// The shared, atomically swapped current snapshot.
#[derive(Debug)]
pub struct PolicyIndex {
    current: ArcSwap<PolicySnapshot>,
}

impl Default for PolicyIndex {
    fn default() -> Self {
        PolicyIndex {
            current: ArcSwap::from_pointee(PolicySnapshot::empty()),
        }
    }
}

impl PolicyIndex {
    pub fn new(snapshot: PolicySnapshot) -> Self {
        PolicyIndex {
            current: ArcSwap::from_pointee(snapshot),
        }
    }

    /// The snapshot a request should use from start to end.
    pub fn snapshot(&self) -> Arc<PolicySnapshot> {
        self.current.load_full()
    }

    /// Replaces the whole snapshot at once.
    pub fn replace(&self, snapshot: PolicySnapshot) {
        self.current.store(Arc::new(snapshot));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::compiled::compile_for_test;

    fn policy(name: &str, yaml: &str) -> PolicyEntry {
        let spec = serde_saphyr::from_str(yaml).unwrap();
        PolicyEntry::Ready(compile_for_test(name, &spec).unwrap().policy)
    }

    fn snapshot() -> PolicySnapshot {
        PolicySnapshot::new(
            vec![
                policy("tags", "images: [{glob: 'ghcr.io/org/*:v*'}]\nauthorities: [{static: {action: pass}}]"),
                policy("pinned", "images: [{glob: 'ghcr.io/org/app@sha256:*'}]\nauthorities: [{static: {action: pass}}]"),
                policy(
                    "deployments-only",
                    "images: [{glob: 'ghcr.io/**'}]\nauthorities: [{static: {action: fail}}]\nmatch: [{group: apps, version: v1, resource: deployments}]",
                ),
            ],
            Settings::default(),
            1,
        )
        .unwrap()
    }

    fn names(entries: &[Arc<PolicyEntry>]) -> Vec<&str> {
        entries.iter().map(|e| e.name()).collect()
    }

    #[test]
    fn matches_tag_and_digest_forms_with_resource_filter() {
        let snapshot = snapshot();
        let pods = ResourceRef::pods();
        let none = BTreeMap::new();
        let tag = vec!["ghcr.io/org/app:v1".to_string()];
        assert_eq!(names(&snapshot.matching(&tag, &pods, &none)), ["tags"]);
        let deployments = ResourceRef::new("apps", "v1", "deployments");
        assert_eq!(
            names(&snapshot.matching(&tag, &deployments, &none)),
            ["deployments-only", "tags"]
        );
        let both = vec![
            "ghcr.io/org/app:v1".to_string(),
            format!("ghcr.io/org/app@sha256:{}", "a".repeat(64)),
        ];
        assert_eq!(
            names(&snapshot.matching(&both, &pods, &none)),
            ["pinned", "tags"]
        );
    }

    #[test]
    fn digest_needed_only_when_a_digest_glob_could_add_a_policy() {
        let snapshot = snapshot();
        let pods = ResourceRef::pods();
        let none = BTreeMap::new();
        let matched = snapshot.matching(&["ghcr.io/org/app:v1".to_string()], &pods, &none);
        assert!(snapshot.digest_could_match_more("ghcr.io/org/app", &matched, &pods, &none));
        assert!(!snapshot.digest_could_match_more("ghcr.io/org/other", &matched, &pods, &none));
        assert!(!snapshot.digest_could_match_more("quay.io/x/y", &[], &pods, &none));
    }

    #[test]
    fn index_swaps_whole_snapshots() {
        let index = PolicyIndex::default();
        let before = index.snapshot();
        assert!(before.is_empty());
        index.replace(snapshot());
        assert_eq!(before.len(), 0, "a held snapshot never changes");
        assert_eq!(index.snapshot().len(), 3);
        assert_eq!(index.snapshot().generation(), 1);
    }
}
