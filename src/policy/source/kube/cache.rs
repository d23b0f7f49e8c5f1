//! The cluster state the source works from, and compilation remembered per object.
//!
//! [`Mirror`] keeps the objects of one watch by name, replacing them whole when a (re)list
//! completes, so a watch that restarts never shows a half-listed set. [`PolicyCache`] and
//! [`TrustRootCache`] recompile an object only when its inputs changed: its spec, the validation
//! settings, and the Secrets and TrustRoots it refers to.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use kube::runtime::watcher::Event;

use super::assess::{
    PolicyAssessment, assess_policy, malformed_policy, referenced_secrets, referenced_trust_roots,
};
use crate::field_error::FieldErrors;
use crate::policy::crd::{ClusterImagePolicySpec, PolicyStatus, TrustRootSpec};
use crate::policy::source::{
    References, RemoteTrust, TrustRootError, compile_trust_root, remote_repository,
};
use crate::policy::validate::ValidationOptions;
use crate::verify::trust::TrustMaterial;
use crate::verify::tuf::RemoteRepository;

/// The objects of one watch, by name.
#[derive(Debug)]
pub struct Mirror<T> {
    objects: BTreeMap<String, T>,
    /// Objects of a (re)list in progress; they replace `objects` when it completes.
    listing: Option<BTreeMap<String, T>>,
    synced: bool,
    changed: bool,
}

impl<T> Default for Mirror<T> {
    fn default() -> Self {
        Mirror {
            objects: BTreeMap::new(),
            listing: None,
            synced: false,
            changed: false,
        }
    }
}

impl<T: PartialEq> Mirror<T> {
    /// Applies one watch event; `convert` turns an object into its name and what is kept of it.
    pub fn apply<K>(&mut self, event: Event<K>, convert: impl Fn(K) -> (String, T)) {
        match event {
            Event::Init => self.listing = Some(BTreeMap::new()),
            Event::InitApply(object) => {
                let (name, value) = convert(object);
                self.listing
                    .get_or_insert_with(BTreeMap::new)
                    .insert(name, value);
            }
            Event::InitDone => {
                let listed = self.listing.take().unwrap_or_default();
                if listed != self.objects {
                    self.objects = listed;
                    self.changed = true;
                }
                if !self.synced {
                    self.synced = true;
                    self.changed = true;
                }
            }
            Event::Apply(object) => {
                let (name, value) = convert(object);
                if self.objects.get(&name) != Some(&value) {
                    self.objects.insert(name, value);
                    self.changed = true;
                }
            }
            Event::Delete(object) => {
                let (name, _) = convert(object);
                if self.objects.remove(&name).is_some() {
                    self.changed = true;
                }
            }
        }
    }

    /// Whether the first list has completed.
    pub fn synced(&self) -> bool {
        self.synced
    }

    pub fn objects(&self) -> &BTreeMap<String, T> {
        &self.objects
    }

    /// Whether anything changed since the last call.
    pub fn take_changed(&mut self) -> bool {
        std::mem::take(&mut self.changed)
    }
}

/// A watched ClusterImagePolicy or TrustRoot: what compiling and status need.
#[derive(Clone, Debug, PartialEq)]
pub struct Watched<S> {
    pub generation: Option<i64>,
    /// The spec, or why it does not deserialize.
    pub spec: Result<S, String>,
    /// `spec.images[].glob` read from the raw object (for a spec that does not deserialize).
    pub raw_globs: Vec<String>,
    pub status: Option<PolicyStatus>,
}

/// How a referenced TrustRoot stands, as far as a policy's compile result depends on it.
#[derive(Clone, Debug, PartialEq, Eq)]
enum TrustRootInput {
    Usable {
        fingerprint: String,
    },
    Unusable(String),
    /// Absent; the message lists the TrustRoots that are loaded.
    Missing {
        loaded: Vec<String>,
    },
}

/// Everything a policy's compile result depends on.
#[derive(Clone, Debug, PartialEq)]
struct PolicyInputs {
    spec: Result<ClusterImagePolicySpec, String>,
    raw_globs: Vec<String>,
    validation: ValidationOptions,
    secrets: BTreeMap<String, Option<BTreeMap<String, Vec<u8>>>>,
    trust_roots: BTreeMap<String, TrustRootInput>,
}

impl PolicyInputs {
    fn of(watched: &Watched<ClusterImagePolicySpec>, references: &References) -> Self {
        let (secrets, trust_roots) = match &watched.spec {
            Ok(spec) => (
                referenced_secrets(spec)
                    .into_iter()
                    .map(|name| {
                        let data = references.secrets.get(&name).cloned();
                        (name, data)
                    })
                    .collect(),
                referenced_trust_roots(spec)
                    .into_iter()
                    .map(|name| {
                        let input = trust_root_input(&name, references);
                        (name, input)
                    })
                    .collect(),
            ),
            Err(_) => (BTreeMap::new(), BTreeMap::new()),
        };
        PolicyInputs {
            spec: watched.spec.clone(),
            raw_globs: watched.raw_globs.clone(),
            validation: references.validation.clone(),
            secrets,
            trust_roots,
        }
    }
}

fn trust_root_input(name: &str, references: &References) -> TrustRootInput {
    if let Some(error) = references.trust_roots.broken(name) {
        return TrustRootInput::Unusable(error.to_string());
    }
    match references.trust_roots.resolve(Some(name)) {
        Ok(trust) => TrustRootInput::Usable {
            fingerprint: trust.fingerprint.clone(),
        },
        Err(_) => TrustRootInput::Missing {
            loaded: references.trust_roots.names().map(str::to_string).collect(),
        },
    }
}

struct CachedPolicy {
    inputs: PolicyInputs,
    assessment: Arc<PolicyAssessment>,
}

/// Compiled policies by name, recompiled only when their inputs change.
#[derive(Default)]
pub struct PolicyCache {
    policies: BTreeMap<String, CachedPolicy>,
    compiles: u64,
}

/// What one [`PolicyCache::update`] did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct PolicyUpdate {
    /// Policies compiled in this update (new or changed inputs).
    pub compiled: Vec<String>,
    /// Policies no longer present.
    pub removed: Vec<String>,
}

impl PolicyUpdate {
    pub fn is_empty(&self) -> bool {
        self.compiled.is_empty() && self.removed.is_empty()
    }
}

impl PolicyCache {
    /// Brings the cache in line with `policies`, compiling those whose inputs changed.
    pub fn update(
        &mut self,
        policies: &BTreeMap<String, Watched<ClusterImagePolicySpec>>,
        references: &References,
    ) -> PolicyUpdate {
        let mut update = PolicyUpdate::default();
        let before: BTreeSet<String> = self.policies.keys().cloned().collect();
        for name in before {
            if !policies.contains_key(&name) {
                self.policies.remove(&name);
                update.removed.push(name);
            }
        }
        for (name, watched) in policies {
            let inputs = PolicyInputs::of(watched, references);
            if self
                .policies
                .get(name)
                .is_some_and(|cached| cached.inputs == inputs)
            {
                continue;
            }
            let assessment = match &inputs.spec {
                Ok(spec) => assess_policy(name, spec, references),
                Err(error) => malformed_policy(name, &inputs.raw_globs, error),
            };
            self.compiles += 1;
            self.policies.insert(
                name.clone(),
                CachedPolicy {
                    inputs,
                    assessment: Arc::new(assessment),
                },
            );
            update.compiled.push(name.clone());
        }
        update
    }

    pub fn get(&self, name: &str) -> Option<&Arc<PolicyAssessment>> {
        self.policies.get(name).map(|cached| &cached.assessment)
    }

    /// Every policy, by name.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &Arc<PolicyAssessment>)> {
        self.policies
            .iter()
            .map(|(name, cached)| (name, &cached.assessment))
    }

    /// How many compilations this cache has run (each policy at least once).
    pub fn compiles(&self) -> u64 {
        self.compiles
    }
}

/// A TrustRoot, compiled: its material and warnings, or why it cannot be used.
#[derive(Clone, Debug)]
pub struct TrustRootOutcome {
    pub result: Result<(TrustMaterial, FieldErrors), TrustRootError>,
}

impl TrustRootOutcome {
    /// The `Ready` condition's reason and message.
    pub fn condition(&self) -> (bool, &'static str, String) {
        match &self.result {
            Ok((_, warnings)) if warnings.is_empty() => (true, "Compiled", "compiled".to_string()),
            Ok((_, warnings)) => (
                true,
                "Compiled",
                format!(
                    "compiled with warnings: {}",
                    crate::admission::message::warning_lines(warnings).join("; ")
                ),
            ),
            Err(TrustRootError::Invalid(errors)) => (false, "Invalid", errors.to_string()),
            Err(error @ TrustRootError::Unusable(_)) => (false, "Unusable", error.to_string()),
            Err(error @ TrustRootError::Pending(_)) => (false, "Fetching", error.to_string()),
        }
    }
}

struct CachedTrustRoot {
    spec: Result<TrustRootSpec, String>,
    outcome: TrustRootOutcome,
}

/// Compiled TrustRoots by name, recompiled when their spec changes, and `remote` ones also when
/// the TUF fetcher has news ([`TrustRootCache::refresh_remote`]).
#[derive(Default)]
pub struct TrustRootCache {
    trust_roots: BTreeMap<String, CachedTrustRoot>,
}

impl TrustRootCache {
    /// Brings the cache in line with `trust_roots`; the names compiled (new or changed) and
    /// whether any was removed.
    pub fn update(
        &mut self,
        trust_roots: &BTreeMap<String, Watched<TrustRootSpec>>,
        remote: &RemoteTrust,
    ) -> (Vec<String>, bool) {
        let before = self.trust_roots.len();
        self.trust_roots
            .retain(|name, _| trust_roots.contains_key(name));
        let removed = self.trust_roots.len() != before;
        let mut compiled = Vec::new();
        for (name, watched) in trust_roots {
            if self
                .trust_roots
                .get(name)
                .is_some_and(|cached| cached.spec == watched.spec)
            {
                continue;
            }
            let result = match &watched.spec {
                Ok(spec) => compile_trust_root(name, spec, remote),
                Err(error) => Err(TrustRootError::Unusable(format!("malformed spec: {error}"))),
            };
            self.trust_roots.insert(
                name.clone(),
                CachedTrustRoot {
                    spec: watched.spec.clone(),
                    outcome: TrustRootOutcome { result },
                },
            );
            compiled.push(name.clone());
        }
        (compiled, removed)
    }

    /// Recompiles the `remote` TrustRoots against the fetcher's current state; the names whose
    /// outcome changed (material arrived or changed, or a new fetch error).
    pub fn refresh_remote(&mut self, remote: &RemoteTrust) -> Vec<String> {
        let mut changed = Vec::new();
        for (name, cached) in &mut self.trust_roots {
            let Ok(spec) = &cached.spec else {
                continue;
            };
            if spec.remote.is_none() {
                continue;
            }
            let result = compile_trust_root(name, spec, remote);
            if result != cached.outcome.result {
                cached.outcome = TrustRootOutcome { result };
                changed.push(name.clone());
            }
        }
        changed
    }

    /// The `remote` TrustRoots in the cache, as the fetcher follows them.
    pub fn remote_repositories(&self) -> BTreeSet<RemoteRepository> {
        self.trust_roots
            .iter()
            .filter_map(|(name, cached)| remote_repository(name, cached.spec.as_ref().ok()?))
            .collect()
    }

    pub fn get(&self, name: &str) -> Option<&TrustRootOutcome> {
        self.trust_roots.get(name).map(|cached| &cached.outcome)
    }

    /// Adds every TrustRoot to `references`: usable ones with their material, the others as
    /// broken with their error.
    pub fn fill(&self, references: &mut References) {
        for (name, cached) in &self.trust_roots {
            match &cached.outcome.result {
                Ok((material, _)) => references.trust_roots.insert(name, material.clone()),
                Err(error) => references
                    .trust_roots
                    .insert_broken(name, error.to_string()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::index::{PolicyEntry, Settings};
    use crate::policy::source::LoadOptions;

    const PEM: &str = include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/policies/pem/ec-p256.pub.pem"
    ));

    fn references() -> References {
        References::empty(&LoadOptions::with_production_trust(Settings::default()).unwrap())
    }

    fn watched<S: serde::de::DeserializeOwned>(yaml: &str) -> Watched<S> {
        Watched {
            generation: Some(1),
            spec: Ok(serde_saphyr::from_str(yaml).unwrap()),
            raw_globs: Vec::new(),
            status: None,
        }
    }

    fn policies(entries: &[(&str, &str)]) -> BTreeMap<String, Watched<ClusterImagePolicySpec>> {
        entries
            .iter()
            .map(|(name, yaml)| (name.to_string(), watched(yaml)))
            .collect()
    }

    const STATIC: &str = "images: [{glob: 'a/**'}]\nauthorities: [{static: {action: pass}}]";
    const KEYED: &str =
        "images: [{glob: 'b/**'}]\nauthorities: [{key: {secretRef: {name: cosign-key}}}]";
    const CORP: &str = "images: [{glob: 'c/**'}]\nauthorities: [{keyless: {trustRootRef: corp, identities: [{issuer: 'https://i', subject: s}]}}]";

    #[test]
    fn unchanged_inputs_are_not_recompiled() {
        let mut cache = PolicyCache::default();
        let mut references = references();
        let set = policies(&[("static", STATIC), ("keyed", KEYED), ("corp", CORP)]);
        let update = cache.update(&set, &references);
        assert_eq!(update.compiled, ["corp", "keyed", "static"]);
        assert_eq!(cache.compiles(), 3);

        // Same state again (e.g. a status-only event): nothing compiles.
        assert!(cache.update(&set, &references).is_empty());
        // A Secret nobody refers to: nothing compiles.
        references.secrets.insert("unrelated", BTreeMap::new());
        assert!(cache.update(&set, &references).is_empty());
        // A new status or generation alone is not an input.
        let mut restatused = set.clone();
        if let Some(policy) = restatused.get_mut("static") {
            policy.generation = Some(7);
            policy.status = Some(PolicyStatus::default());
        }
        assert!(cache.update(&restatused, &references).is_empty());
        assert_eq!(cache.compiles(), 3);

        // The referenced Secret appears: only its policy recompiles, and heals.
        assert!(!cache.get("keyed").unwrap().is_ready());
        references.secrets.insert(
            "cosign-key",
            BTreeMap::from([("cosign.pub".to_string(), PEM.as_bytes().to_vec())]),
        );
        assert_eq!(cache.update(&set, &references).compiled, ["keyed"]);
        assert!(cache.get("keyed").unwrap().is_ready());

        // The referenced TrustRoot appears: only its policy recompiles. Another TrustRoot
        // changes the "loaded" list of corp's error, so corp recompiles while it is missing.
        references
            .trust_roots
            .insert_broken("broken", "invalid: x".to_string());
        assert!(cache.update(&set, &references).is_empty());
        references
            .trust_roots
            .insert("other", TrustMaterial::production().unwrap());
        assert_eq!(cache.update(&set, &references).compiled, ["corp"]);
        references
            .trust_roots
            .insert("corp", TrustMaterial::production().unwrap());
        assert_eq!(cache.update(&set, &references).compiled, ["corp"]);

        // Settings that change validation recompile everything.
        references.validation.fail_on_empty_authorities = false;
        assert_eq!(cache.update(&set, &references).compiled.len(), 3);

        // A spec change recompiles that policy; a removal is reported.
        let mut changed = policies(&[("static", KEYED), ("keyed", KEYED)]);
        changed.get_mut("static").unwrap().spec = Ok(serde_saphyr::from_str(
            "images: [{glob: 'z/**'}]\nauthorities: [{static: {action: fail}}]",
        )
        .unwrap());
        let update = cache.update(&changed, &references);
        assert_eq!(update.compiled, ["static"]);
        assert_eq!(update.removed, ["corp"]);
    }

    #[test]
    fn malformed_specs_are_broken_not_dropped() {
        let mut cache = PolicyCache::default();
        let set = BTreeMap::from([(
            "odd".to_string(),
            Watched {
                generation: Some(1),
                spec: Err("invalid type: integer `3`, expected a sequence".to_string()),
                raw_globs: vec!["ghcr.io/**".to_string()],
                status: None,
            },
        )]);
        cache.update(&set, &references());
        let assessment = cache.get("odd").unwrap();
        let PolicyEntry::Broken { globs, .. } = &assessment.entry else {
            panic!("expected broken");
        };
        assert_eq!(globs.len(), 1);
    }

    #[test]
    fn trust_roots_compile_once_and_broken_ones_are_recorded() {
        let mut cache = TrustRootCache::default();
        let set: BTreeMap<String, Watched<TrustRootSpec>> = BTreeMap::from([
            ("empty".to_string(), watched("{}")),
            (
                "tuf".to_string(),
                watched("remote: {root: e30=, mirror: 'https://tuf.example'}"),
            ),
        ]);
        let (compiled, removed) = cache.update(&set, &RemoteTrust::Unfetched);
        assert_eq!(compiled, ["empty", "tuf"]);
        assert!(!removed);
        assert_eq!(
            cache.update(&set, &RemoteTrust::Unfetched),
            (Vec::new(), false)
        );
        let (ready, reason, message) = cache.get("empty").unwrap().condition();
        assert!(!ready);
        assert_eq!(reason, "Invalid");
        assert!(
            message.starts_with("expected exactly one, got neither"),
            "{message}"
        );
        let mut references = references();
        cache.fill(&mut references);
        assert!(references.trust_roots.broken("empty").is_some());
        assert!(references.trust_roots.broken("tuf").is_some());
        let (compiled, removed) = cache.update(&BTreeMap::new(), &RemoteTrust::Unfetched);
        assert!(compiled.is_empty() && removed);
    }

    #[test]
    fn mirror_replaces_on_relist_and_reports_changes() {
        let mut mirror: Mirror<u32> = Mirror::default();
        let convert = |(name, value): (&str, u32)| (name.to_string(), value);
        assert!(!mirror.synced());
        mirror.apply(Event::Init, convert);
        mirror.apply(Event::InitApply(("a", 1)), convert);
        assert!(
            mirror.objects().is_empty(),
            "a list in progress is not visible"
        );
        mirror.apply(Event::InitDone, convert);
        assert!(mirror.synced());
        assert!(mirror.take_changed());
        assert!(!mirror.take_changed());
        mirror.apply(Event::Apply(("a", 1)), convert);
        assert!(!mirror.take_changed(), "an identical object is no change");
        mirror.apply(Event::Apply(("b", 2)), convert);
        assert!(mirror.take_changed());
        // A relist after a lost watch: until it completes, the old objects stay.
        mirror.apply(Event::Init, convert);
        mirror.apply(Event::InitApply(("b", 2)), convert);
        assert_eq!(mirror.objects().len(), 2);
        mirror.apply(Event::InitDone, convert);
        assert_eq!(mirror.objects().keys().collect::<Vec<_>>(), ["b"]);
        assert!(mirror.take_changed());
        mirror.apply(Event::Delete(("b", 2)), convert);
        assert!(mirror.objects().is_empty());
        assert!(mirror.take_changed());
    }
}
