//! [`TufRoots`]: the trust material of `remote` TrustRoots, fetched from their TUF mirrors in the
//! background.
//!
//! A policy source asks for a TrustRoot's material with [`TufRoots::follow`] while it compiles.
//! The first call starts a task for it and answers "not yet" at once; compiling, start-up and
//! readiness never wait for a mirror. The task fetches and verifies the repository, retrying
//! with exponential backoff ([`TufSettings::retry_initial`] doubling up to
//! [`TufSettings::retry_max`]) until it has material, then refreshes it every
//! [`TufSettings::refresh_interval`]. A refresh that fails keeps the last good material (and is
//! retried with backoff); a refresh that brings different material replaces it.
//!
//! Every change a policy would see (material arrived or changed, or the error of a TrustRoot that
//! has none yet) bumps [`TufRoots::changes`], and the sources rebuild their snapshot then, so a
//! TrustRoot that arrives takes effect without waiting for an unrelated change. Sources drop the
//! TrustRoots they no longer have with [`TufRoots::retain`], which stops their tasks.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use tokio::runtime::Handle;
use tokio::sync::watch;
use tokio::task::AbortHandle;
use tracing::{info, warn};

use super::{MirrorClient, TufError, TufLocation, load_trusted_root};
use crate::metrics::Metrics;
use crate::verify::trust::TrustMaterial;

/// How TUF mirrors are fetched.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TufSettings {
    /// How often material that was fetched is fetched again (the reference: 24 h).
    pub refresh_interval: Duration,
    /// Wait after the first failed attempt; it doubles after each failure.
    pub retry_initial: Duration,
    /// Longest wait between attempts.
    pub retry_max: Duration,
    /// Longest wait for one HTTP request, body included.
    pub request_timeout: Duration,
    /// Longest time one attempt (all its requests) may take.
    pub attempt_timeout: Duration,
    /// PEM CA certificates trusted for mirrors besides the system roots.
    pub mirror_ca_pem: Option<Vec<u8>>,
}

impl Default for TufSettings {
    fn default() -> Self {
        TufSettings {
            refresh_interval: Duration::from_secs(24 * 60 * 60),
            retry_initial: Duration::from_secs(1),
            retry_max: Duration::from_secs(5 * 60),
            request_timeout: Duration::from_secs(10),
            attempt_timeout: Duration::from_secs(120),
            mirror_ca_pem: None,
        }
    }
}

/// A `remote` TrustRoot, defaulted: what to fetch, and for which TrustRoot.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RemoteRepository {
    /// The TrustRoot's name (for logs; two TrustRoots never share a task).
    pub name: String,
    /// The mirror URL.
    pub mirror: String,
    /// The trusted initial `root.json`.
    pub root: Vec<u8>,
    /// The targets directory under the mirror.
    pub targets: String,
    /// The target holding the `trusted_root.json`.
    pub trusted_root_target: String,
}

impl RemoteRepository {
    fn pending(&self, attempts: u32, last_error: Option<&str>) -> String {
        match last_error {
            Some(error) => format!(
                "fetching the TUF repository from {}: attempt {attempts} failed: {error}",
                self.mirror
            ),
            None => format!(
                "fetching the TUF repository from {}: first attempt in progress",
                self.mirror
            ),
        }
    }
}

/// The background fetcher of `remote` TrustRoots; cheap to clone (all clones share it).
#[derive(Clone)]
pub struct TufRoots {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for TufRoots {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<String> = self
            .inner
            .entries()
            .keys()
            .map(|key| key.name.clone())
            .collect();
        f.debug_struct("TufRoots")
            .field("settings", &self.inner.settings)
            .field("following", &names)
            .finish()
    }
}

struct Inner {
    settings: TufSettings,
    client: MirrorClient,
    runtime: Handle,
    entries: Mutex<BTreeMap<RemoteRepository, Entry>>,
    changes: watch::Sender<u64>,
    metrics: Option<Metrics>,
}

struct Entry {
    state: State,
    task: AbortHandle,
    /// tough's metadata datastore, kept between refreshes so a mirror that serves older metadata
    /// than it did before (a rollback) is refused.
    _datastore: Option<tempfile::TempDir>,
}

#[derive(Clone)]
enum State {
    Fetching {
        attempts: u32,
        last_error: Option<String>,
    },
    Ready {
        material: TrustMaterial,
        fingerprint: String,
    },
}

impl Inner {
    fn entries(&self) -> MutexGuard<'_, BTreeMap<RemoteRepository, Entry>> {
        // Nothing panics while holding the lock; a poisoned map is still consistent.
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn changed(&self) {
        self.changes.send_modify(|version| *version += 1);
    }

    /// Publishes how many followed repositories have no material (after any change to the map).
    fn count_unusable(&self, entries: &BTreeMap<RemoteRepository, Entry>) {
        if let Some(metrics) = &self.metrics {
            let unusable = entries
                .values()
                .filter(|entry| matches!(entry.state, State::Fetching { .. }))
                .count();
            metrics
                .tuf_trust_roots_unusable
                .set(i64::try_from(unusable).unwrap_or(i64::MAX));
        }
    }

    fn count_fetch(&self, result: &str) {
        if let Some(metrics) = &self.metrics {
            metrics.tuf_fetches.with_label_values(&[result]).inc();
        }
    }

    /// Records the outcome of one attempt; false when the repository is no longer followed.
    fn record(
        &self,
        repository: &RemoteRepository,
        attempt: u32,
        outcome: Result<TrustMaterial, TufError>,
    ) -> bool {
        let mut entries = self.entries();
        let Some(entry) = entries.get_mut(repository) else {
            return false;
        };
        let (name, mirror) = (&repository.name, &repository.mirror);
        if let Err(error) = &outcome {
            self.count_fetch(error.reason());
        }
        match (outcome, &entry.state) {
            (Ok(material), previous) => {
                let fingerprint = material.fingerprint();
                let changed = match previous {
                    State::Ready {
                        fingerprint: before,
                        ..
                    } => *before != fingerprint,
                    State::Fetching { .. } => true,
                };
                self.count_fetch(if changed { "updated" } else { "unchanged" });
                if changed {
                    info!(
trust_root = %name, %mirror, attempt, "TUF repository fetched; its trusted root is in use");
                    entry.state = State::Ready {
                        material,
                        fingerprint,
                    };
                    self.count_unusable(&entries);
                    drop(entries);
                    self.changed();
                } else {
                    info!(trust_root = %name, %mirror, "TUF repository refreshed; its trusted root is unchanged");
                }
            }
            (Err(error), State::Ready { .. }) => {
                warn!(trust_root = %name, %mirror, attempt, reason = error.reason(), %error, "TUF repository refresh failed; the last good trusted root stays in use");
            }
            (Err(error), State::Fetching { .. }) => {
                warn!(trust_root = %name, %mirror, attempt, reason = error.reason(), %error, "TUF repository fetch failed; policies naming this TrustRoot deny their images until it succeeds");
                entry.state = State::Fetching {
                    attempts: attempt,
                    last_error: Some(error.to_string()),
                };
                drop(entries);
                self.changed();
            }
        }
        true
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        let entries = self
            .entries
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner);
        for entry in entries.values() {
            entry.task.abort();
        }
    }
}

impl TufRoots {
    /// A fetcher whose tasks run on the current tokio runtime.
    pub fn new(settings: TufSettings) -> Result<Self, TufError> {
        Self::build(settings, None)
    }

    /// As [`TufRoots::new`], counting fetches and unusable TrustRoots in `metrics`.
    pub fn observed(settings: TufSettings, metrics: &Metrics) -> Result<Self, TufError> {
        Self::build(settings, Some(metrics.clone()))
    }

    fn build(settings: TufSettings, metrics: Option<Metrics>) -> Result<Self, TufError> {
        let runtime = Handle::try_current().map_err(|e| TufError::Client {
            cause: format!("no async runtime to fetch TUF repositories on: {e}"),
        })?;
        let client =
            MirrorClient::new(settings.request_timeout, settings.mirror_ca_pem.as_deref())?;
        Ok(TufRoots {
            inner: Arc::new(Inner {
                settings,
                client,
                runtime,
                entries: Mutex::new(BTreeMap::new()),
                changes: watch::channel(0).0,
                metrics,
            }),
        })
    }

    /// The material of `repository` if it has been fetched, else why not; never starts a fetch.
    pub fn lookup(&self, repository: &RemoteRepository) -> Result<TrustMaterial, String> {
        match self.inner.entries().get(repository) {
            Some(entry) => state_result(repository, &entry.state),
            None => Err(format!(
                "the TUF repository at {} has not been fetched yet",
                repository.mirror
            )),
        }
    }

    /// As [`TufRoots::lookup`], and starts following `repository` (fetching it in the
    /// background, then refreshing it) when it is new.
    pub fn follow(&self, repository: &RemoteRepository) -> Result<TrustMaterial, String> {
        let mut entries = self.inner.entries();
        if let Some(entry) = entries.get(repository) {
            return state_result(repository, &entry.state);
        }
        let datastore = match tempfile::Builder::new().prefix("verity-tuf-").tempdir() {
            Ok(dir) => Some(dir),
            Err(error) => {
                warn!(trust_root = %repository.name, %error, "cannot create a TUF datastore directory; each fetch starts from the trusted root alone");
                None
            }
        };
        let task = self
            .inner
            .runtime
            .spawn(follow(
                Arc::downgrade(&self.inner),
                repository.clone(),
                datastore.as_ref().map(|dir| dir.path().to_path_buf()),
            ))
            .abort_handle();
        let state = State::Fetching {
            attempts: 0,
            last_error: None,
        };
        let result = state_result(repository, &state);
        entries.insert(
            repository.clone(),
            Entry {
                state,
                task,
                _datastore: datastore,
            },
        );
        self.inner.count_unusable(&entries);
        info!(trust_root = %repository.name, mirror = %repository.mirror, "following a TUF repository");
        result
    }

    /// Stops following every repository not in `keep`.
    pub fn retain(&self, keep: &BTreeSet<RemoteRepository>) {
        let mut entries = self.inner.entries();
        entries.retain(|repository, entry| {
            let kept = keep.contains(repository);
            if !kept {
                entry.task.abort();
                info!(trust_root = %repository.name, mirror = %repository.mirror, "no longer following a TUF repository");
            }
            kept
        });
        self.inner.count_unusable(&entries);
    }

    /// Bumped whenever what [`TufRoots::lookup`] answers for a repository changes.
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.inner.changes.subscribe()
    }

    /// How many repositories are followed.
    pub fn following(&self) -> usize {
        self.inner.entries().len()
    }

    /// The current value of [`TufRoots::changes`].
    pub fn version(&self) -> u64 {
        *self.inner.changes.borrow()
    }

    /// Waits until every followed repository has material or has failed at least once (for
    /// one-shot commands, which fetch before they load).
    pub async fn first_attempts(&self) {
        let mut changes = self.changes();
        loop {
            let settled = self
                .inner
                .entries()
                .values()
                .all(|entry| !matches!(entry.state, State::Fetching { attempts: 0, .. }));
            if settled || changes.changed().await.is_err() {
                return;
            }
        }
    }

    pub fn settings(&self) -> &TufSettings {
        &self.inner.settings
    }
}

fn state_result(repository: &RemoteRepository, state: &State) -> Result<TrustMaterial, String> {
    match state {
        State::Ready { material, .. } => Ok(material.clone()),
        State::Fetching {
            attempts,
            last_error,
        } => Err(repository.pending(*attempts, last_error.as_deref())),
    }
}

/// One repository's task: fetch until it works, then refresh; ends when the fetcher is dropped
/// (or the task is aborted).
async fn follow(inner: Weak<Inner>, repository: RemoteRepository, datastore: Option<PathBuf>) {
    let (settings, client) = match inner.upgrade() {
        Some(inner) => (inner.settings.clone(), inner.client.clone()),
        None => return,
    };
    let mut attempt: u32 = 0;
    let mut backoff = settings.retry_initial;
    loop {
        attempt = attempt.saturating_add(1);
        let outcome = fetch(&client, &repository, &settings, datastore.as_deref()).await;
        let succeeded = outcome.is_ok();
        let Some(strong) = inner.upgrade() else {
            return;
        };
        if !strong.record(&repository, attempt, outcome) {
            // No longer followed (retain raced with this attempt).
            return;
        }
        drop(strong);
        let wait = if succeeded {
            attempt = 0;
            backoff = settings.retry_initial;
            settings.refresh_interval
        } else {
            let wait = backoff;
            backoff = backoff.saturating_mul(2).min(settings.retry_max);
            wait
        };
        tokio::time::sleep(wait).await;
    }
}

/// One attempt: the whole TUF client workflow against the mirror, bounded in time.
async fn fetch(
    client: &MirrorClient,
    repository: &RemoteRepository,
    settings: &TufSettings,
    datastore: Option<&Path>,
) -> Result<TrustMaterial, TufError> {
    let location = TufLocation::new(
        &repository.mirror,
        &repository.targets,
        &repository.trusted_root_target,
    )?;
    tokio::time::timeout(
        settings.attempt_timeout,
        load_trusted_root(&repository.root, &location, client.clone(), datastore),
    )
    .await
    .unwrap_or(Err(TufError::Timeout {
        seconds: settings.attempt_timeout.as_secs(),
    }))
}
