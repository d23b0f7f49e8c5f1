//! Policies from the cluster: ClusterImagePolicies, TrustRoots, the Secrets of verity's namespace
//! (`key.secretRef`) and the ConfigMap `config-policy-controller`, each followed by a watch.
//!
//! One task owns the watched state. Every batch of watch events updates the [`Mirror`]s, then
//! [`KubeSource::run`] reconciles: settings from the ConfigMap, TrustRoots compiled, the
//! [`References`] rebuilt when what they hold changed, and policies recompiled only when their
//! inputs changed (spec, validation settings, the Secrets and TrustRoots they name). When any
//! entry changed, a whole new snapshot replaces the index. A policy that fails to compile stays
//! in the index as [`PolicyEntry::Broken`], denying the images it matches with the error; a
//! TrustRoot that fails makes the policies naming it broken.
//!
//! Readiness turns true once every watch has listed once (with [`KubeSource::with_credentials`],
//! the registry credential watches too) and the first snapshot is in place.
//! Watch errors are logged, counted in `verity_policy_load_errors_total{source="kube"}` (as are
//! policies and TrustRoots that fail to compile) and retried with backoff; until a relist
//! completes the previous objects stay, so a lost watch never empties the index.
//!
//! `status` (a `Ready` condition and `observedGeneration`) is written on ClusterImagePolicies
//! and TrustRoots when it changes, by a separate task (`status::StatusWriter`).
//!
//! ClusterImagePolicies are watched as v1alpha1, the stored version: with conversion `None`,
//! objects written as v1beta1 are served through the v1alpha1 watch as well (asserted against a
//! real apiserver in tests/kube_cluster.rs).

mod assess;
mod cache;
pub mod namespaces;
mod settings;
mod status;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use futures::stream::{self, BoxStream, StreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Api, ApiResource, DynamicObject};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Client, Resource};
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::sync::mpsc;
use tracing::{error, info, warn};

pub use assess::{PolicyAssessment, PolicyReason, assess_policy, malformed_policy};
pub use cache::{Mirror, PolicyCache, TrustRootCache, Watched};
pub use settings::{CONFIG_MAP, ClusterSettings, SettingsReport, settings_from};
pub use status::{ReadyCondition, StatusKind, StatusLedger, StatusWrite, desired_status};

use super::{LoadOptions, References, RemoteTrust, TrustRootError};
use crate::metrics::Metrics;
use crate::policy::crd::{ClusterImagePolicy, ClusterImagePolicySpec, TrustRoot, TrustRootSpec};
use crate::policy::index::{PolicyEntry, PolicyIndex, PolicySnapshot};
use crate::registry::ClusterCredentials;
use crate::server::admin::Readiness;

/// The namespace verity reads Secrets and its ConfigMap from when neither `--namespace` nor
/// `POD_NAMESPACE` says otherwise.
pub const DEFAULT_NAMESPACE: &str = "verity-system";

/// How long a failed status write waits before the next attempt.
const STATUS_RETRY: Duration = Duration::from_secs(5);

/// Watch events handled together (one reconcile per batch).
const BATCH: usize = 256;

/// The references the source currently compiles against; the policy admission endpoint reads
/// them too.
pub type SharedReferences = Arc<ArcSwap<References>>;

/// Why the Kubernetes client could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum KubeError {
    #[error("cannot read kubeconfig {path}: {source}")]
    Kubeconfig {
        path: PathBuf,
        source: kube::config::KubeconfigError,
    },
    #[error("cannot use the in-cluster service account: {0}")]
    InCluster(#[from] kube::config::InClusterError),
    #[error("cannot create the Kubernetes client: {0}")]
    Client(#[from] kube::Error),
}

impl KubeError {
    pub fn reason(&self) -> &'static str {
        match self {
            KubeError::Kubeconfig { .. } => "kubeconfig",
            KubeError::InCluster(_) => "in_cluster",
            KubeError::Client(_) => "client",
        }
    }
}

/// A client from `kubeconfig`, or from the in-cluster service account when there is none.
pub async fn client(kubeconfig: Option<&Path>) -> Result<Client, KubeError> {
    let config = match kubeconfig {
        Some(path) => {
            let kubeconfig = kube::config::Kubeconfig::read_from(path).map_err(|source| {
                KubeError::Kubeconfig {
                    path: path.to_path_buf(),
                    source,
                }
            })?;
            kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
                .await
                .map_err(|source| KubeError::Kubeconfig {
                    path: path.to_path_buf(),
                    source,
                })?
        }
        None => kube::Config::incluster()?,
    };
    Ok(Client::try_from(config)?)
}

/// Follows the cluster and keeps `index` in step with it.
pub struct KubeSource {
    client: Client,
    namespace: String,
    load: LoadOptions,
    index: Arc<PolicyIndex>,
    readiness: Readiness,
    metrics: Metrics,
    references: SharedReferences,
    credentials: Option<ClusterCredentials>,
}

impl KubeSource {
    /// `load` gives the defaults the ConfigMap may override (`--no-match-policy`,
    /// `--fail-on-empty-authorities`) and the default trust root; `namespace` is where Secrets
    /// for `key.secretRef` and `config-policy-controller` live.
    pub fn new(
        client: Client,
        namespace: impl Into<String>,
        mut load: LoadOptions,
        index: Arc<PolicyIndex>,
        readiness: Readiness,
        metrics: Metrics,
    ) -> Self {
        let namespace = namespace.into();
        // The reference requires key.secretRef.namespace, when set, to be its own namespace.
        load.validation.system_namespace = Some(namespace.clone());
        let references = Arc::new(ArcSwap::from_pointee(References::empty(&load)));
        KubeSource {
            client,
            namespace,
            load,
            index,
            readiness,
            metrics,
            references,
            credentials: None,
        }
    }

    /// Also waits for these credential watches to sync before turning readiness on (their
    /// driver runs elsewhere), so the first admissions already see the cluster's pull secrets.
    pub fn with_credentials(mut self, credentials: ClusterCredentials) -> Self {
        self.credentials = Some(credentials);
        self
    }

    /// What policies are compiled against right now, for the policy admission endpoint.
    pub fn references(&self) -> SharedReferences {
        Arc::clone(&self.references)
    }

    /// Watches and reconciles until the task is dropped.
    pub async fn run(self) {
        let policies_api: Api<DynamicObject> = Api::all_with(
            self.client.clone(),
            &ApiResource::erase::<ClusterImagePolicy>(&()),
        );
        let trust_roots_api: Api<DynamicObject> =
            Api::all_with(self.client.clone(), &ApiResource::erase::<TrustRoot>(&()));
        let secrets_api: Api<Secret> = Api::namespaced(self.client.clone(), &self.namespace);
        let config_api: Api<ConfigMap> = Api::namespaced(self.client.clone(), &self.namespace);

        let updates: Vec<BoxStream<'static, Update>> = vec![
            watcher::watcher(policies_api.clone(), watcher::Config::default())
                .default_backoff()
                .map(Update::Policy)
                .boxed(),
            watcher::watcher(trust_roots_api.clone(), watcher::Config::default())
                .default_backoff()
                .map(Update::TrustRoot)
                .boxed(),
            watcher::watcher(secrets_api, watcher::Config::default())
                .default_backoff()
                .map(Update::Secret)
                .boxed(),
            watcher::watcher(
                config_api,
                watcher::Config::default().fields(&format!("metadata.name={CONFIG_MAP}")),
            )
            .default_backoff()
            .map(Update::Config)
            .boxed(),
        ];
        let mut updates = stream::select_all(updates).ready_chunks(BATCH);

        let (writes, pending_writes) = mpsc::unbounded_channel();
        let (failed_writes, mut failures) = mpsc::unbounded_channel();
        let writer = status::StatusWriter {
            policies: policies_api,
            trust_roots: trust_roots_api,
        };
        // Ends when `writes` is dropped with this task.
        tokio::spawn(writer.run(pending_writes, failed_writes));

        let (credentials_synced, mut credentials_ready) =
            tokio::sync::watch::channel(self.credentials.is_none());
        if let Some(credentials) = self.credentials.clone() {
            tokio::spawn(async move {
                match credentials.wait_synced().await {
                    Ok(()) => {
                        let _ = credentials_synced.send(true);
                    }
                    Err(error) => error!(%error, "registry credentials never synced"),
                }
            });
        }

        let mut state = State::new(&self);
        let mut retry_at: Option<tokio::time::Instant> = None;
        let mut tuf_changes = self.load.remote_trust.fetcher().map(|tuf| tuf.changes());
        loop {
            tokio::select! {
                Ok(()) = credentials_ready.changed() => {}
                () = next_tuf_change(&mut tuf_changes) => {
                    state.tuf_changed = true;
                }
                batch = updates.next() => {
                    let Some(batch) = batch else {
                        error!("the cluster watches ended; policies stay as last loaded");
                        return;
                    };
                    for update in batch {
                        state.apply(update, &self.metrics);
                    }
                }
                Some(failed) = failures.recv() => {
                    state.ledger.failed(&failed);
                    retry_at.get_or_insert_with(|| tokio::time::Instant::now() + STATUS_RETRY);
                    continue;
                }
                () = sleep_until(retry_at) => {
                    retry_at = None;
                }
            }
            if !state.synced() {
                continue;
            }
            for write in state.reconcile(&self) {
                if writes.send(write).is_err() {
                    error!("the status writer stopped; statuses are no longer updated");
                }
            }
            if !self.readiness.is_ready() && state.published && *credentials_ready.borrow() {
                info!(
                    policies = state.policy_cache.iter().count(),
                    "policies synced from the cluster; ready"
                );
                self.readiness.set_ready();
            }
        }
    }
}

/// Resolves when the TUF fetcher has news; never without a fetcher (or once it is gone).
pub(super) async fn next_tuf_change(changes: &mut Option<tokio::sync::watch::Receiver<u64>>) {
    match changes {
        Some(receiver) => {
            if receiver.changed().await.is_err() {
                *changes = None;
                std::future::pending::<()>().await;
            }
        }
        None => std::future::pending().await,
    }
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

enum Update {
    Policy(watcher::Result<Event<DynamicObject>>),
    TrustRoot(watcher::Result<Event<DynamicObject>>),
    Secret(watcher::Result<Event<Secret>>),
    Config(watcher::Result<Event<ConfigMap>>),
}

/// Everything the reconcile loop owns.
struct State {
    policies: Mirror<Watched<ClusterImagePolicySpec>>,
    trust_roots: Mirror<Watched<TrustRootSpec>>,
    secrets: Mirror<BTreeMap<String, Vec<u8>>>,
    config: Mirror<BTreeMap<String, String>>,
    policy_cache: PolicyCache,
    trust_root_cache: TrustRootCache,
    defaults: ClusterSettings,
    settings: ClusterSettings,
    references: Arc<References>,
    ledger: StatusLedger,
    /// ConfigMap keys and problems already logged (each is logged once).
    reported: BTreeSet<String>,
    generation: u64,
    published: bool,
    /// The TUF fetcher has news for `remote` TrustRoots.
    tuf_changed: bool,
}

impl State {
    fn new(source: &KubeSource) -> Self {
        let defaults = ClusterSettings {
            settings: source.load.settings.clone(),
            fail_on_empty_authorities: source.load.validation.fail_on_empty_authorities,
        };
        State {
            policies: Mirror::default(),
            trust_roots: Mirror::default(),
            secrets: Mirror::default(),
            config: Mirror::default(),
            policy_cache: PolicyCache::default(),
            trust_root_cache: TrustRootCache::default(),
            settings: defaults.clone(),
            defaults,
            references: source.references.load_full(),
            ledger: StatusLedger::default(),
            reported: BTreeSet::new(),
            generation: source.index.snapshot().generation(),
            published: false,
            tuf_changed: false,
        }
    }

    fn synced(&self) -> bool {
        self.policies.synced()
            && self.trust_roots.synced()
            && self.secrets.synced()
            && self.config.synced()
    }

    fn apply(&mut self, update: Update, metrics: &Metrics) {
        let failed = |kind: &str, error: watcher::Error| {
            metrics
                .policy_load_errors
                .with_label_values(&["kube"])
                .inc();
            warn!(kind, %error, "watch failed; retrying with backoff (the loaded policies stay in force)");
        };
        match update {
            Update::Policy(Ok(event)) => self
                .policies
                .apply(event, watched::<ClusterImagePolicySpec>),
            Update::TrustRoot(Ok(event)) => self.trust_roots.apply(event, watched::<TrustRootSpec>),
            Update::Secret(Ok(event)) => self.secrets.apply(event, secret_data),
            Update::Config(Ok(event)) => self.config.apply(event, config_data),
            Update::Policy(Err(error)) => failed("ClusterImagePolicy", error),
            Update::TrustRoot(Err(error)) => failed("TrustRoot", error),
            Update::Secret(Err(error)) => failed("Secret", error),
            Update::Config(Err(error)) => failed("ConfigMap", error),
        }
    }

    /// Brings the index, the references and the statuses in line with the mirrors; returns the
    /// status writes needed.
    fn reconcile(&mut self, source: &KubeSource) -> Vec<StatusWrite> {
        let config_changed = self.config.take_changed();
        if config_changed {
            let report = settings_from(self.config.objects().get(CONFIG_MAP), &self.defaults);
            for key in &report.ignored {
                if self.reported.insert(format!("key:{key}")) {
                    info!(configmap = CONFIG_MAP, key = %key, "ignoring a key verity does not use");
                }
            }
            for problem in &report.problems {
                if self.reported.insert(format!("problem:{problem}")) {
                    warn!(configmap = CONFIG_MAP, "{problem}");
                }
            }
            if report.settings != self.settings {
                info!(
                    no_match = report.settings.settings.no_match.as_str(),
                    fail_on_empty_authorities = report.settings.fail_on_empty_authorities,
                    "settings changed"
                );
            }
            self.settings = report.settings;
        }

        let mut references_changed = config_changed;
        let remote = &source.load.remote_trust;
        let trust_roots_changed = self.trust_roots.take_changed();
        let tuf_changed = std::mem::take(&mut self.tuf_changed);
        if trust_roots_changed || tuf_changed {
            let (mut compiled, removed) = if trust_roots_changed {
                self.trust_root_cache
                    .update(self.trust_roots.objects(), remote)
            } else {
                (Vec::new(), false)
            };
            if tuf_changed {
                for name in self.trust_root_cache.refresh_remote(remote) {
                    if !compiled.contains(&name) {
                        compiled.push(name);
                    }
                }
            }
            if let RemoteTrust::Fetch(tuf) = remote {
                tuf.retain(&self.trust_root_cache.remote_repositories());
            }
            for name in &compiled {
                if let Some(outcome) = self.trust_root_cache.get(name) {
                    match &outcome.result {
                        Ok(_) => info!(name = %name, "TrustRoot loaded"),
                        Err(error @ TrustRootError::Pending(_)) => {
                            info!(name = %name, %error, "TrustRoot waits for its TUF repository; policies naming it deny their images until it arrives");
                        }
                        Err(error) => {
                            source
                                .metrics
                                .policy_load_errors
                                .with_label_values(&["kube"])
                                .inc();
                            warn!(name = %name, %error, "TrustRoot cannot be used; policies naming it deny their images");
                        }
                    }
                }
            }
            references_changed |= !compiled.is_empty() || removed;
        }
        references_changed |= self.secrets.take_changed();
        if references_changed {
            let mut references = References::empty(&source.load);
            references.validation.fail_on_empty_authorities =
                self.settings.fail_on_empty_authorities;
            self.trust_root_cache.fill(&mut references);
            for (name, data) in self.secrets.objects() {
                references.secrets.insert(name, data.clone());
            }
            let references = Arc::new(references);
            source.references.store(Arc::clone(&references));
            self.references = references;
        }

        let policies_changed = self.policies.take_changed();
        let update = if policies_changed || references_changed {
            self.policy_cache
                .update(self.policies.objects(), &self.references)
        } else {
            Default::default()
        };
        for name in &update.compiled {
            if let Some(assessment) = self.policy_cache.get(name) {
                if assessment.is_ready() {
                    info!(name = %name, "ClusterImagePolicy compiled");
                } else {
                    source
                        .metrics
                        .policy_load_errors
                        .with_label_values(&["kube"])
                        .inc();
                    warn!(name = %name, reason = assessment.reason.as_str(), error = %assessment.message(), "ClusterImagePolicy is broken; it denies the images it matches");
                }
            }
        }
        for name in &update.removed {
            info!(name = %name, "ClusterImagePolicy removed");
        }
        let no_match_changed = source.index.snapshot().settings() != &self.settings.settings;
        if !update.is_empty() || no_match_changed || !self.published {
            self.publish(source);
        }
        self.status_writes()
    }

    fn publish(&mut self, source: &KubeSource) {
        let entries: Vec<PolicyEntry> = self
            .policy_cache
            .iter()
            .map(|(_, assessment)| assessment.entry.clone())
            .collect();
        match PolicySnapshot::new(entries, self.settings.settings.clone(), self.generation + 1) {
            Ok(snapshot) => {
                self.generation += 1;
                source.metrics.policies_loaded.set(snapshot.len() as i64);
                info!(
                    generation = self.generation,
                    policies = snapshot.len(),
                    no_match = self.settings.settings.no_match.as_str(),
                    "policies updated"
                );
                source.index.replace(snapshot);
                self.published = true;
            }
            Err(error) => {
                source
                    .metrics
                    .policy_load_errors
                    .with_label_values(&["kube"])
                    .inc();
                error!(%error, "failed to build the glob index; the previous policies stay in force");
            }
        }
    }

    fn status_writes(&mut self) -> Vec<StatusWrite> {
        let now = now();
        let policies = self
            .policies
            .objects()
            .iter()
            .filter_map(|(name, watched)| {
                let assessment = self.policy_cache.get(name)?;
                let ready = ReadyCondition {
                    ready: assessment.is_ready(),
                    reason: assessment.reason.as_str(),
                    message: assessment.message(),
                };
                let target = (watched.status.as_ref(), watched.generation);
                Some((StatusKind::ClusterImagePolicy, name, target, ready))
            });
        let trust_roots = self
            .trust_roots
            .objects()
            .iter()
            .filter_map(|(name, watched)| {
                let (ready, reason, message) = self.trust_root_cache.get(name)?.condition();
                let ready = ReadyCondition {
                    ready,
                    reason,
                    message,
                };
                let target = (watched.status.as_ref(), watched.generation);
                Some((StatusKind::TrustRoot, name, target, ready))
            });
        let mut writes = Vec::new();
        for (kind, name, (current, generation), ready) in policies.chain(trust_roots) {
            let desired = desired_status(current, generation, &ready, &now);
            if self.ledger.needs_write(kind, name, current, &desired) {
                writes.push(StatusWrite {
                    kind,
                    name: name.clone(),
                    status: desired,
                });
            }
        }
        let (policies, trust_roots) = (self.policies.objects(), self.trust_roots.objects());
        self.ledger.retain(|kind, name| match kind {
            StatusKind::ClusterImagePolicy => policies.contains_key(name),
            StatusKind::TrustRoot => trust_roots.contains_key(name),
        });
        writes
    }
}

/// Now, to the second, as Kubernetes writes condition times.
fn now() -> String {
    let now = jiff::Timestamp::now();
    jiff::Timestamp::from_second(now.as_second())
        .unwrap_or(now)
        .to_string()
}

/// A ClusterImagePolicy or TrustRoot as the loop keeps it.
fn watched<S: DeserializeOwned>(object: DynamicObject) -> (String, Watched<S>) {
    let name = object.metadata.name.clone().unwrap_or_default();
    let spec = object
        .data
        .get("spec")
        .cloned()
        .unwrap_or_else(|| Value::Object(serde_json::Map::new()));
    let raw_globs = spec
        .get("images")
        .and_then(Value::as_array)
        .map(|images| {
            images
                .iter()
                .filter_map(|image| image.get("glob")?.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let status = object
        .data
        .get("status")
        .and_then(|status| serde_json::from_value(status.clone()).ok());
    let watched = Watched {
        generation: object.meta().generation,
        spec: serde_json::from_value(spec).map_err(|e| e.to_string()),
        raw_globs,
        status,
    };
    (name, watched)
}

/// A Secret's decoded data (what `key.secretRef` reads); nothing else is kept.
fn secret_data(secret: Secret) -> (String, BTreeMap<String, Vec<u8>>) {
    let name = secret.metadata.name.unwrap_or_default();
    let data = secret
        .data
        .unwrap_or_default()
        .into_iter()
        .map(|(key, value)| (key, value.0))
        .collect();
    (name, data)
}

fn config_data(config: ConfigMap) -> (String, BTreeMap<String, String>) {
    (
        config.metadata.name.unwrap_or_default(),
        config.data.unwrap_or_default(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watched_objects_keep_spec_globs_and_status() {
        let object: DynamicObject = serde_json::from_value(serde_json::json!({
            "apiVersion": "policy.sigstore.dev/v1alpha1",
            "kind": "ClusterImagePolicy",
            "metadata": {"name": "p", "generation": 3},
            "spec": {"images": [{"glob": "ghcr.io/**"}], "authorities": "not a list"},
            "status": {"observedGeneration": 2, "conditions": [{"type": "Ready", "status": "True"}]}
        }))
        .unwrap();
        let (name, watched) = watched::<ClusterImagePolicySpec>(object);
        assert_eq!(name, "p");
        assert_eq!(watched.generation, Some(3));
        assert!(watched.spec.is_err());
        assert_eq!(watched.raw_globs, ["ghcr.io/**"]);
        assert_eq!(watched.status.unwrap().observed_generation, Some(2));
    }

    #[test]
    fn condition_times_are_whole_seconds() {
        let now = now();
        assert!(now.ends_with('Z') && !now.contains('.'), "{now}");
    }
}
