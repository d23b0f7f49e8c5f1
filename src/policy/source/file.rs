//! Policies from YAML files and directories, reloaded when their content changes.
//!
//! Directories are read non-recursively (`*.yaml`, `*.yml`), skipping hidden entries: a mounted
//! ConfigMap holds each file twice, once behind kubelet's `..data` symlink. Files are polled by
//! content, which also catches kubelet's atomic symlink swaps that inotify would miss.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest as _, Sha256};
use tracing::{error, info, warn};

use super::{
    Documents, LoadError, LoadOptions, LoadWarning, RemoteTrust, build_snapshot, pull_credentials,
};
use crate::metrics::Metrics;
use crate::policy::index::{PolicyIndex, PolicySnapshot};
use crate::registry::{DocumentCredentials, ReloadableCredentials};

/// The files behind `--policies` paths, with their content.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyFiles {
    pub files: Vec<(PathBuf, String)>,
}

impl PolicyFiles {
    /// Reads every policy file under `paths` (files, or directories of `*.yaml`/`*.yml`).
    pub fn read(paths: &[PathBuf]) -> Result<Self, LoadError> {
        let mut files = Vec::new();
        let mut problems = Vec::new();
        for path in paths {
            match std::fs::metadata(path) {
                Ok(meta) if meta.is_dir() => match yaml_files_in(path) {
                    Ok(found) => files.extend(found),
                    Err(e) => {
                        problems.push(format!("{}: cannot list directory: {e}", path.display()))
                    }
                },
                Ok(_) => files.push(path.clone()),
                Err(e) => problems.push(format!("{}: {e}", path.display())),
            }
        }
        let mut contents = Vec::with_capacity(files.len());
        for file in files {
            match std::fs::read_to_string(&file) {
                Ok(text) => contents.push((file, text)),
                Err(e) => problems.push(format!("{}: cannot read: {e}", file.display())),
            }
        }
        if problems.is_empty() {
            Ok(PolicyFiles { files: contents })
        } else {
            Err(LoadError { problems })
        }
    }

    /// sha256 over every path and content: a change to any file changes it.
    pub fn fingerprint(&self) -> String {
        let mut hasher = Sha256::new();
        for (path, text) in &self.files {
            hasher.update(path.to_string_lossy().as_bytes());
            hasher.update([0]);
            hasher.update(text.as_bytes());
            hasher.update([0]);
        }
        hex::encode(hasher.finalize())
    }

    pub fn documents(&self) -> Result<Documents, LoadError> {
        let mut documents = Documents::default();
        let mut problems = Vec::new();
        for (path, text) in &self.files {
            if let Err(err) = documents.add_yaml(&path.display().to_string(), text) {
                problems.extend(err.problems);
            }
        }
        if problems.is_empty() {
            Ok(documents)
        } else {
            Err(LoadError { problems })
        }
    }
}

fn yaml_files_in(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let hidden = path
            .file_name()
            .is_some_and(|name| name.to_string_lossy().starts_with('.'));
        let yaml = path
            .extension()
            .is_some_and(|ext| ext == "yaml" || ext == "yml");
        // metadata() follows symlinks, so ConfigMap entries (symlinks to files) count as files.
        if !hidden && yaml && std::fs::metadata(&path).is_ok_and(|m| m.is_file()) {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// What the files under `--policies` hold, compiled.
#[derive(Debug)]
pub struct Loaded {
    pub snapshot: PolicySnapshot,
    pub warnings: Vec<LoadWarning>,
    /// Pull secrets from dockerconfigjson Secret documents.
    pub credentials: DocumentCredentials,
    /// Content fingerprint of the files and of the TUF fetcher's state, to notice changes.
    pub fingerprint: String,
}

/// Reads, validates and compiles everything under `paths`.
pub fn load(paths: &[PathBuf], load: &LoadOptions, generation: u64) -> Result<Loaded, LoadError> {
    let files = PolicyFiles::read(paths)?;
    compile_files(&files, load, generation)
}

fn compile_files(
    files: &PolicyFiles,
    load: &LoadOptions,
    generation: u64,
) -> Result<Loaded, LoadError> {
    // Read before compiling: news that arrives while compiling makes the next poll rebuild.
    let fingerprint = fingerprint(files, load);
    let documents = files.documents()?;
    let credentials = pull_credentials(&documents)?;
    let (snapshot, warnings) = build_snapshot(&documents, load, generation)?;
    if let RemoteTrust::Fetch(tuf) = &load.remote_trust {
        // Stop fetching for TrustRoots that are gone (only once a new set is in force).
        tuf.retain(&documents.remote_repositories());
    }
    Ok(Loaded {
        snapshot,
        warnings,
        credentials,
        fingerprint,
    })
}

/// The files' content and, when TrustRoots come from TUF mirrors, the fetcher's version: a
/// TrustRoot that arrives (or a new fetch error) is a change too.
fn fingerprint(files: &PolicyFiles, load: &LoadOptions) -> String {
    match load.remote_trust.fetcher() {
        Some(tuf) => format!("{}/tuf-{}", files.fingerprint(), tuf.version()),
        None => files.fingerprint(),
    }
}

/// Keeps `index` in step with the files: polls every `interval` (and at once when the TUF
/// fetcher has news), and on a change swaps in a new snapshot, or keeps the current one and
/// reports why the change was rejected.
pub struct FileWatcher {
    pub paths: Vec<PathBuf>,
    pub load: LoadOptions,
    pub interval: Duration,
    pub index: Arc<PolicyIndex>,
    /// Updated together with the index.
    pub credentials: Arc<ReloadableCredentials>,
    pub metrics: Metrics,
}

impl FileWatcher {
    /// Runs until the task is dropped. `loaded` is the fingerprint of what `index` holds.
    pub async fn run(self, mut loaded: String) {
        let mut generation = self.index.snapshot().generation();
        let mut rejected: Option<String> = None;
        let mut ticker = tokio::time::interval(self.interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut tuf_changes = self.load.remote_trust.fetcher().map(|tuf| tuf.changes());
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                () = super::kube::next_tuf_change(&mut tuf_changes) => {}
            }
            let files = match PolicyFiles::read(&self.paths) {
                Ok(files) => files,
                Err(err) => {
                    self.reject(&mut rejected, err.to_string(), "");
                    continue;
                }
            };
            let fingerprint = fingerprint(&files, &self.load);
            if fingerprint == loaded || rejected.as_deref() == Some(fingerprint.as_str()) {
                continue;
            }
            match compile_files(&files, &self.load, generation + 1) {
                Ok(new) => {
                    for warning in &new.warnings {
                        warn!(%warning, "policy warning");
                    }
                    generation += 1;
                    self.metrics.policies_loaded.set(new.snapshot.len() as i64);
                    info!(
                        generation,
                        policies = new.snapshot.len(),
                        "policies reloaded"
                    );
                    self.credentials.replace(new.credentials);
                    self.index.replace(new.snapshot);
                    loaded = new.fingerprint;
                    rejected = None;
                }
                Err(err) => self.reject(&mut rejected, err.to_string(), &fingerprint),
            }
        }
    }

    /// Logs and counts a rejected change once per distinct content.
    fn reject(&self, rejected: &mut Option<String>, problem: String, fingerprint: &str) {
        let key = if fingerprint.is_empty() {
            format!("read:{problem}")
        } else {
            fingerprint.to_string()
        };
        if rejected.as_deref() == Some(key.as_str()) {
            return;
        }
        self.metrics
            .policy_load_errors
            .with_label_values(&["file"])
            .inc();
        error!(error = %problem, "policy change rejected; the previous policies stay in force");
        *rejected = Some(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directories_skip_hidden_and_non_yaml_entries() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("..2026_01");
        std::fs::create_dir(&data).unwrap();
        std::fs::write(data.join("p.yaml"), "a: 1").unwrap();
        std::os::unix::fs::symlink("..2026_01", dir.path().join("..data")).unwrap();
        std::os::unix::fs::symlink("..data/p.yaml", dir.path().join("p.yaml")).unwrap();
        std::fs::write(dir.path().join("notes.txt"), "x").unwrap();
        std::fs::write(dir.path().join("q.yml"), "b: 2").unwrap();
        let files = PolicyFiles::read(&[dir.path().to_path_buf()]).unwrap();
        let names: Vec<String> = files
            .files
            .iter()
            .map(|(p, _)| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["p.yaml", "q.yml"]);
    }

    #[test]
    fn missing_paths_are_named() {
        let err = PolicyFiles::read(&[PathBuf::from("/nonexistent/policies")]).unwrap_err();
        assert!(
            err.to_string().starts_with("/nonexistent/policies: "),
            "{err}"
        );
    }
}
