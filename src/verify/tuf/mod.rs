//! TUF-backed trust roots: the `trusted_root.json` target of a TUF repository, verified with the
//! `tough` client and turned into [`TrustMaterial`].
//!
//! A TrustRoot names its repository in one of two ways:
//! - `repository`: an air-gapped copy, `mirrorFS` (a tar.gz of the repository) next to the trusted
//!   `root.json`. It is unpacked into memory ([`archive`]) and served to tough from there, as the
//!   reference does; nothing is written to disk but tough's own metadata datastore.
//! - `remote`: a mirror URL, fetched over HTTP(S) ([`mirror`]). [`fetcher::TufRoots`] does that in
//!   the background, with retries and a periodic refresh, never on an admission.
//!
//! Either way tough walks the TUF client workflow from the trusted root (root rotation, then
//! timestamp, snapshot and targets, each checked against its signers, versions, lengths and
//! hashes) with expiration enforced (`ExpirationEnforcement::Safe`), and the target's length and
//! sha256 are checked against the signed targets metadata before its bytes are used.

pub mod archive;
pub mod fetcher;
pub mod mirror;

use std::path::Path;

use tough::{ExpirationEnforcement, IntoVec as _, RepositoryLoader, TargetName};
use url::Url;

use super::trust::{TrustError, TrustMaterial};

pub use archive::RepositoryArchive;
pub use fetcher::{RemoteRepository, TufRoots, TufSettings};
pub use mirror::MirrorClient;

/// The largest trusted root target verity reads (the public-good one is about 10 KiB).
pub const MAX_TARGET_BYTES: u64 = 4 * 1024 * 1024;

/// What one TUF repository holds for verity: where its metadata and targets are, and which
/// target is the trusted root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TufLocation {
    /// Base URL of the metadata (`root.json`, `timestamp.json`, …), ending in `/`.
    pub metadata: Url,
    /// Base URL of the targets, ending in `/`.
    pub targets: Url,
    /// The target holding the `trusted_root.json`.
    pub trusted_root_target: String,
}

impl TufLocation {
    /// `targets` is the targets directory relative to `metadata` (the TrustRoot's `targets`).
    pub fn new(metadata: &str, targets: &str, trusted_root_target: &str) -> Result<Self, TufError> {
        let metadata = directory_url(metadata).map_err(|cause| TufError::Url {
            url: metadata.to_string(),
            cause,
        })?;
        let targets_dir = format!("{}/", targets.trim_matches('/'));
        let targets = metadata.join(&targets_dir).map_err(|e| TufError::Url {
            url: format!("{metadata}{targets_dir}"),
            cause: e.to_string(),
        })?;
        Ok(TufLocation {
            metadata,
            targets,
            trusted_root_target: trusted_root_target.to_string(),
        })
    }
}

fn directory_url(text: &str) -> Result<Url, String> {
    let mut url = Url::parse(text).map_err(|e| e.to_string())?;
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    Ok(url)
}

/// Why a TUF repository did not yield trust material. Messages name the archive entry, URL,
/// role or target at fault.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TufError {
    #[error("mirrorFS is not a gzip-compressed tar archive: {cause}")]
    Archive { cause: String },
    #[error(
        "mirrorFS entry {path:?} escapes the repository (an absolute path or a `..` component)"
    )]
    PathTraversal { path: String },
    #[error("mirrorFS entry {path:?} is a {kind}; only files and directories are allowed")]
    EntryType { path: String, kind: String },
    #[error("mirrorFS is too large: {what} exceeds {limit}")]
    TooLarge { what: String, limit: String },
    #[error("mirrorFS holds no TUF metadata: no root.json under repository/ or at the top")]
    NoMetadata,
    #[error("the trusted root.json is unusable: {cause}")]
    Root { cause: String },
    #[error("invalid TUF URL {url}: {cause}")]
    Url { url: String, cause: String },
    #[error("cannot set up the TUF client: {cause}")]
    Client { cause: String },
    /// tough refused the repository: fetch failures, signatures, versions, expiry, hashes.
    #[error("{cause}")]
    Metadata { cause: String },
    #[error("the TUF targets metadata lists no target {target} (it lists: {listed})")]
    TargetMissing { target: String, listed: String },
    #[error("target {target} is {length} bytes, more than verity reads ({limit})")]
    TargetTooLarge {
        target: String,
        length: u64,
        limit: u64,
    },
    #[error("cannot read target {target}: {cause}")]
    Target { target: String, cause: String },
    #[error("target {target} is not a usable trusted root: {cause}")]
    TrustedRoot { target: String, cause: String },
    #[error("no answer within {seconds}s")]
    Timeout { seconds: u64 },
}

impl TufError {
    pub fn reason(&self) -> &'static str {
        match self {
            TufError::Archive { .. } => "tuf_archive",
            TufError::PathTraversal { .. } => "tuf_path_traversal",
            TufError::EntryType { .. } => "tuf_entry_type",
            TufError::TooLarge { .. } => "tuf_too_large",
            TufError::NoMetadata => "tuf_no_metadata",
            TufError::Root { .. } => "tuf_root",
            TufError::Url { .. } => "tuf_url",
            TufError::Client { .. } => "tuf_client",
            TufError::Metadata { .. } => "tuf_metadata",
            TufError::TargetMissing { .. } => "tuf_target_missing",
            TufError::TargetTooLarge { .. } => "tuf_target_too_large",
            TufError::Target { .. } => "tuf_target",
            TufError::TrustedRoot { .. } => "tuf_trusted_root",
            TufError::Timeout { .. } => "tuf_timeout",
        }
    }
}

/// Loads the repository at `location` through `transport`, starting from the trusted `root`
/// (`root.json` bytes), and parses its trusted root target. `datastore` keeps the newest
/// metadata seen between loads (rollback protection); `None` uses a fresh temporary directory.
pub async fn load_trusted_root<T>(
    root: &[u8],
    location: &TufLocation,
    transport: T,
    datastore: Option<&Path>,
) -> Result<TrustMaterial, TufError>
where
    T: tough::Transport + Send + Sync + 'static,
{
    let target = TargetName::new(location.trusted_root_target.as_str()).map_err(|e| {
        TufError::TargetMissing {
            target: location.trusted_root_target.clone(),
            listed: format!("(the name is not a valid target name: {})", describe(&e)),
        }
    })?;
    let mut loader =
        RepositoryLoader::new(&root, location.metadata.clone(), location.targets.clone())
            .transport(transport)
            .expiration_enforcement(ExpirationEnforcement::Safe);
    if let Some(datastore) = datastore {
        loader = loader.datastore(datastore);
    }
    let repository = loader.load().await.map_err(|e| TufError::Metadata {
        cause: describe(&e),
    })?;
    let listed = repository
        .all_targets()
        .find(|(name, _)| name.resolved() == target.resolved())
        .map(|(_, listed)| listed.length);
    let Some(length) = listed else {
        let mut names: Vec<&str> = repository
            .all_targets()
            .map(|(name, _)| name.raw())
            .collect();
        names.sort_unstable();
        return Err(TufError::TargetMissing {
            target: location.trusted_root_target.clone(),
            listed: if names.is_empty() {
                "nothing".to_string()
            } else {
                names.join(", ")
            },
        });
    };
    if length > MAX_TARGET_BYTES {
        return Err(TufError::TargetTooLarge {
            target: location.trusted_root_target.clone(),
            length,
            limit: MAX_TARGET_BYTES,
        });
    }
    let target_error = |cause: String| TufError::Target {
        target: location.trusted_root_target.clone(),
        cause,
    };
    // The stream checks the length and sha256 the signed targets metadata gives.
    let bytes = match repository.read_target(&target).await {
        Ok(Some(stream)) => stream
            .into_vec()
            .await
            .map_err(|e| target_error(describe(&e)))?,
        Ok(None) => {
            return Err(target_error(
                "not listed in the targets metadata".to_string(),
            ));
        }
        Err(e) => return Err(target_error(describe(&e))),
    };
    TrustMaterial::from_trusted_root_json(&bytes).map_err(|e: TrustError| TufError::TrustedRoot {
        target: location.trusted_root_target.clone(),
        cause: e.to_string(),
    })
}

/// Checks that `root` is a TUF `root.json` signed by a threshold of its own root keys, as the
/// trusted root a client starts from must be (offline, so admission can refuse a TrustRoot
/// that could never load).
pub fn check_root(root: &[u8]) -> Result<(), TufError> {
    let signed: tough::schema::Signed<tough::schema::Root> =
        serde_json::from_slice(root).map_err(|e| TufError::Root {
            cause: format!("not a TUF root.json: {e}"),
        })?;
    signed
        .signed
        .verify_role(&signed)
        .map_err(|e| TufError::Root {
            cause: lower_first(&e.to_string()),
        })
}

/// Checks that `mirror` is an absolute `https://` or `http://` URL (TUF metadata is signed, so
/// plain HTTP is allowed, as in the reference).
pub fn check_mirror(mirror: &str) -> Result<(), TufError> {
    let url = Url::parse(mirror).map_err(|e| TufError::Url {
        url: mirror.to_string(),
        cause: e.to_string(),
    })?;
    if !matches!(url.scheme(), "https" | "http") || !url.has_host() {
        return Err(TufError::Url {
            url: mirror.to_string(),
            cause: "a TUF mirror is an https:// (or http://) URL".to_string(),
        });
    }
    Ok(())
}

/// Verifies an air-gapped repository (`repository`: the trusted `root.json` and the tar.gz of
/// `mirrorFS`) and parses its trusted root target. Offline and bounded by the archive limits, so
/// it runs where it is called: on a thread of its own with a single-threaded runtime for tough,
/// which works from synchronous code and from inside an async task alike.
pub fn trusted_root_from_archive(
    root: &[u8],
    gzipped_tar: &[u8],
    targets: &str,
    trusted_root_target: &str,
) -> Result<TrustMaterial, TufError> {
    let archive = RepositoryArchive::unpack(gzipped_tar)?;
    let location = archive.location(targets, trusted_root_target)?;
    let transport = archive.transport();
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| TufError::Client {
                        cause: format!("cannot start a runtime for tough: {e}"),
                    })?;
                runtime.block_on(load_trusted_root(root, &location, transport, None))
            })
            .join()
            .unwrap_or_else(|_| {
                Err(TufError::Client {
                    cause: "the TUF verification thread failed".to_string(),
                })
            })
    })
}

/// tough's error as a lower-case message; a failed fetch shows the URL and the transport's own
/// cause once (tough's wrapper repeats the URL).
fn describe(error: &tough::error::Error) -> String {
    if let tough::error::Error::Transport { url, source, .. } = error {
        let cause = std::error::Error::source(source);
        // A target's stream reports hash and length failures as transport errors.
        if let Some(inner) = cause.and_then(|c| c.downcast_ref::<tough::error::Error>()) {
            return describe(inner);
        }
        let cause = cause
            .map(ToString::to_string)
            .unwrap_or_else(|| source.kind().to_string());
        return format!("cannot fetch {url}: {cause}");
    }
    lower_first(&error.to_string())
}

fn lower_first(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_join_the_targets_directory() {
        let location =
            TufLocation::new("https://tuf.example/prefix", "targets", "trusted_root.json").unwrap();
        assert_eq!(location.metadata.as_str(), "https://tuf.example/prefix/");
        assert_eq!(
            location.targets.as_str(),
            "https://tuf.example/prefix/targets/"
        );
        let location = TufLocation::new("https://tuf.example/", "/t/", "x").unwrap();
        assert_eq!(location.targets.as_str(), "https://tuf.example/t/");
        let err = TufLocation::new("not a url", "targets", "x").unwrap_err();
        assert_eq!(err.reason(), "tuf_url");
        assert!(
            err.to_string().starts_with("invalid TUF URL not a url: "),
            "{err}"
        );
    }

    #[test]
    fn mirrors_are_http_urls_and_roots_self_signed_tuf_roots() {
        assert!(check_mirror("https://tuf-repo-cdn.sigstore.dev").is_ok());
        assert!(check_mirror("http://10.0.0.1:8080/tuf/").is_ok());
        assert_eq!(
            check_mirror("file:///etc").unwrap_err().to_string(),
            "invalid TUF URL file:///etc: a TUF mirror is an https:// (or http://) URL"
        );
        assert_eq!(check_mirror("tuf.example").unwrap_err().reason(), "tuf_url");
        let err = check_root(br#"{"signatures": []}"#).unwrap_err();
        assert!(
            err.to_string().starts_with(
                "the trusted root.json is unusable: not a TUF root.json: missing field `signed`"
            ),
            "{err}"
        );
    }

    #[test]
    fn messages_start_lower_case() {
        assert_eq!(
            lower_first("Timestamp metadata is expired"),
            "timestamp metadata is expired"
        );
        assert_eq!(lower_first(""), "");
    }
}
