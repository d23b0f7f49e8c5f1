//! `repository.mirrorFS`: a tar.gz of a TUF repository, unpacked into memory and served to tough
//! as `file:///` URLs.
//!
//! The reference unpacks into an in-memory file system too, stripping the `repository/` prefix
//! that `CompressFS` (and `cosign initialize`-style tooling) writes. verity additionally rejects
//! what an extractor would have to guard against: absolute names and `..` components, links and
//! device entries, and archives that unpack to more than [`MAX_UNPACKED_BYTES`] or hold more than
//! [`MAX_ENTRIES`] entries (a gzip bomb is stopped while it inflates).

use std::collections::BTreeMap;
use std::io::Read;

use bytes::Bytes;
use futures::stream;
use tough::{SafeUrlPath as _, Transport, TransportError, TransportErrorKind, TransportStream};
use url::Url;

use super::{TufError, TufLocation};

/// The directory inside mirrorFS that holds the repository; stripped when present.
pub const REPOSITORY_PREFIX: &str = "repository";

/// Most bytes the archive may inflate to (metadata plus targets).
pub const MAX_UNPACKED_BYTES: u64 = 64 * 1024 * 1024;

/// Most entries the archive may hold.
pub const MAX_ENTRIES: usize = 10_000;

/// The URL the unpacked repository is served under.
const BASE: &str = "file:///";

/// The files of an unpacked mirrorFS, by path relative to the repository directory.
#[derive(Clone, Debug, Default)]
pub struct RepositoryArchive {
    files: BTreeMap<String, Bytes>,
}

impl RepositoryArchive {
    /// Unpacks a tar.gz (the base64-decoded `mirrorFS`).
    pub fn unpack(gzipped_tar: &[u8]) -> Result<Self, TufError> {
        Self::unpack_at_most(gzipped_tar, MAX_UNPACKED_BYTES)
    }

    fn unpack_at_most(gzipped_tar: &[u8], limit: u64) -> Result<Self, TufError> {
        let mut inflated = Capped {
            inner: flate2::read::GzDecoder::new(gzipped_tar),
            remaining: limit,
            exceeded: false,
        };
        let result = unpack_tar(&mut inflated);
        if inflated.exceeded {
            return Err(TufError::TooLarge {
                what: "its unpacked size".to_string(),
                limit: format!("{limit} bytes"),
            });
        }
        let files = result?;
        if !files.contains_key("root.json") && !files.keys().any(|k| k.ends_with(".root.json")) {
            return Err(TufError::NoMetadata);
        }
        Ok(RepositoryArchive { files })
    }

    /// Where tough finds the unpacked metadata and targets.
    pub fn location(
        &self,
        targets: &str,
        trusted_root_target: &str,
    ) -> Result<TufLocation, TufError> {
        TufLocation::new(BASE, targets, trusted_root_target)
    }

    /// A transport serving the unpacked files.
    pub fn transport(&self) -> ArchiveTransport {
        ArchiveTransport {
            files: self.files.clone(),
        }
    }

    /// The paths of the unpacked files.
    pub fn paths(&self) -> impl Iterator<Item = &str> {
        self.files.keys().map(String::as_str)
    }
}

fn unpack_tar(inflated: &mut impl Read) -> Result<BTreeMap<String, Bytes>, TufError> {
    let archive_error = |e: std::io::Error| TufError::Archive {
        cause: e.to_string(),
    };
    let mut archive = tar::Archive::new(inflated);
    let mut files = BTreeMap::new();
    for (index, entry) in archive.entries().map_err(archive_error)?.enumerate() {
        if index >= MAX_ENTRIES {
            return Err(TufError::TooLarge {
                what: "its number of entries".to_string(),
                limit: MAX_ENTRIES.to_string(),
            });
        }
        let mut entry = entry.map_err(archive_error)?;
        let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let kind = entry.header().entry_type();
        if kind.is_pax_global_extensions() || kind.is_dir() {
            continue;
        }
        let path = relative_path(&raw)?;
        if !kind.is_file() && !kind.is_contiguous() {
            return Err(TufError::EntryType {
                path: raw,
                kind: entry_kind(kind).to_string(),
            });
        }
        let mut content = Vec::new();
        entry.read_to_end(&mut content).map_err(archive_error)?;
        if let Some(path) = path {
            files.insert(path, Bytes::from(content));
        }
    }
    Ok(files)
}

/// The path of an entry inside the repository: `./` and empty components dropped, the
/// `repository/` prefix stripped. `None` for the repository directory itself.
fn relative_path(raw: &str) -> Result<Option<String>, TufError> {
    if raw.starts_with('/') {
        return Err(TufError::PathTraversal {
            path: raw.to_string(),
        });
    }
    let mut components = Vec::new();
    for component in raw.split('/') {
        match component {
            "" | "." => {}
            ".." => {
                return Err(TufError::PathTraversal {
                    path: raw.to_string(),
                });
            }
            other => components.push(other),
        }
    }
    if components.first() == Some(&REPOSITORY_PREFIX) {
        components.remove(0);
    }
    Ok((!components.is_empty()).then(|| components.join("/")))
}

fn entry_kind(kind: tar::EntryType) -> &'static str {
    match kind {
        tar::EntryType::Symlink => "symbolic link",
        tar::EntryType::Link => "hard link",
        tar::EntryType::Char => "character device",
        tar::EntryType::Block => "block device",
        tar::EntryType::Fifo => "named pipe",
        tar::EntryType::GNUSparse => "sparse file",
        _ => "special entry",
    }
}

/// A reader that fails once more than `remaining` bytes came through.
struct Capped<R> {
    inner: R,
    remaining: u64,
    exceeded: bool,
}

impl<R: Read> Read for Capped<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let read = self.inner.read(buf)?;
        match self.remaining.checked_sub(read as u64) {
            Some(left) => {
                self.remaining = left;
                Ok(read)
            }
            None => {
                self.exceeded = true;
                Err(std::io::Error::other("mirrorFS unpacks to too many bytes"))
            }
        }
    }
}

/// Serves an unpacked mirrorFS to tough: `file:///PATH` is the file at PATH.
#[derive(Clone, Debug)]
pub struct ArchiveTransport {
    files: BTreeMap<String, Bytes>,
}

#[tough::async_trait]
impl Transport for ArchiveTransport {
    async fn fetch(&self, url: Url) -> Result<TransportStream, TransportError> {
        if url.scheme() != "file" {
            return Err(TransportError::new(
                TransportErrorKind::UnsupportedUrlScheme,
                url,
            ));
        }
        let path = url.safe_url_filepath();
        let key = path.to_string_lossy();
        let key = key.trim_start_matches('/');
        match self.files.get(key) {
            Some(content) => {
                let chunk: Result<Bytes, TransportError> = Ok(content.clone());
                Ok(Box::pin(stream::iter([chunk])))
            }
            None => Err(TransportError::new_with_cause(
                TransportErrorKind::FileNotFound,
                url,
                format!("mirrorFS has no file {key}"),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar_gz(entries: &[(&str, tar::EntryType, &[u8])]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for (path, kind, content) in entries {
            let mut header = tar::Header::new_gnu();
            header.set_entry_type(*kind);
            header.set_size(content.len() as u64);
            header.set_mode(0o644);
            // set_path refuses `..`; write the name bytes directly, as a hostile archive would.
            let name = &mut header.as_old_mut().name;
            name[..path.len()].copy_from_slice(path.as_bytes());
            header.set_cksum();
            builder.append(&header, *content).unwrap();
        }
        let tar = builder.into_inner().unwrap();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, &tar).unwrap();
        gz.finish().unwrap()
    }

    use tar::EntryType::{Directory, Regular, Symlink};

    #[test]
    fn strips_the_repository_prefix() {
        let archive = RepositoryArchive::unpack(&tar_gz(&[
            ("repository/", Directory, b""),
            ("repository/root.json", Regular, b"{}"),
            ("./repository/targets/a.json", Regular, b"a"),
        ]))
        .unwrap();
        assert_eq!(
            archive.paths().collect::<Vec<_>>(),
            ["root.json", "targets/a.json"]
        );
        let top = RepositoryArchive::unpack(&tar_gz(&[("1.root.json", Regular, b"{}")])).unwrap();
        assert_eq!(top.paths().collect::<Vec<_>>(), ["1.root.json"]);
    }

    #[test]
    fn rejects_traversal_links_and_non_repositories() {
        for path in ["repository/../../etc/passwd", "/etc/passwd", "a/../../b"] {
            let err = RepositoryArchive::unpack(&tar_gz(&[(path, Regular, b"x")])).unwrap_err();
            assert_eq!(err, TufError::PathTraversal { path: path.into() }, "{path}");
        }
        let err = RepositoryArchive::unpack(&tar_gz(&[("repository/root.json", Symlink, b"")]))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "mirrorFS entry \"repository/root.json\" is a symbolic link; only files and directories are allowed"
        );
        let err =
            RepositoryArchive::unpack(&tar_gz(&[("repository/x", Regular, b"x")])).unwrap_err();
        assert_eq!(err, TufError::NoMetadata);
        let err = RepositoryArchive::unpack(b"\x1f\x8bnot really").unwrap_err();
        assert_eq!(err.reason(), "tuf_archive");
    }

    #[test]
    fn stops_gzip_bombs_while_inflating() {
        // One entry of 4 MiB of zeros: a few KiB compressed.
        let size = 4 * 1024 * 1024;
        let mut header = tar::Header::new_gnu();
        header.set_path("repository/root.json").unwrap();
        header.set_size(size);
        header.set_cksum();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        std::io::Write::write_all(&mut gz, header.as_bytes()).unwrap();
        std::io::Write::write_all(&mut gz, &vec![0u8; size as usize]).unwrap();
        let bomb = gz.finish().unwrap();
        assert!(bomb.len() < 64 * 1024, "{} bytes", bomb.len());
        let err = RepositoryArchive::unpack_at_most(&bomb, 1024 * 1024).unwrap_err();
        assert_eq!(
            err.to_string(),
            "mirrorFS is too large: its unpacked size exceeds 1048576 bytes"
        );
        assert!(RepositoryArchive::unpack_at_most(&bomb, 2 * size).is_ok());
    }

    #[tokio::test]
    async fn serves_files_and_reports_missing_ones_as_not_found() {
        let archive =
            RepositoryArchive::unpack(&tar_gz(&[("repository/root.json", Regular, b"{}")]))
                .unwrap();
        let transport = archive.transport();
        let found = transport
            .fetch(Url::parse("file:///root.json").unwrap())
            .await
            .unwrap();
        let bytes = tough::IntoVec::into_vec(found).await.unwrap();
        assert_eq!(bytes, b"{}");
        let missing = transport
            .fetch(Url::parse("file:///2.root.json").unwrap())
            .await
            .err()
            .unwrap();
        assert_eq!(missing.kind(), TransportErrorKind::FileNotFound);
    }
}
