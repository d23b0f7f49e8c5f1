//! Image references: parsing and normalisation.
//!
//! Follows go-containerregistry's `name` package (what the reference policy-controller uses) with
//! one deliberate departure: a first path component equal to `localhost` names the registry
//! `localhost`, as container runtimes do, instead of a Docker Hub repository.
//!
//! - The first component is a registry only when it contains `.` or `:` or is `localhost`;
//!   otherwise the registry is `index.docker.io`, and `docker.io` is rewritten to it.
//! - Single-component Docker Hub repositories get `library/` in front.
//! - A reference with neither tag nor digest gets the tag `latest`.

use std::fmt;

/// The registry Docker Hub references normalise to.
pub const DOCKER_HUB: &str = "index.docker.io";
const DEFAULT_TAG: &str = "latest";

/// A content digest such as `sha256:<64 hex>`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    algorithm: DigestAlgorithm,
    hex: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DigestAlgorithm {
    Sha256,
    Sha512,
}

impl DigestAlgorithm {
    pub fn as_str(self) -> &'static str {
        match self {
            DigestAlgorithm::Sha256 => "sha256",
            DigestAlgorithm::Sha512 => "sha512",
        }
    }

    fn hex_len(self) -> usize {
        match self {
            DigestAlgorithm::Sha256 => 64,
            DigestAlgorithm::Sha512 => 128,
        }
    }
}

impl Digest {
    /// Parses `algorithm:hex`; only sha256 and sha512 with lower-case hex of the right length.
    pub fn parse(s: &str) -> Result<Self, ImageError> {
        let bad = || ImageError::InvalidDigest(s.to_string());
        let (algorithm, hex) = s.split_once(':').ok_or_else(bad)?;
        let algorithm = match algorithm {
            "sha256" => DigestAlgorithm::Sha256,
            "sha512" => DigestAlgorithm::Sha512,
            _ => return Err(bad()),
        };
        let valid_hex = hex.len() == algorithm.hex_len()
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if !valid_hex {
            return Err(bad());
        }
        Ok(Digest {
            algorithm,
            hex: hex.to_string(),
        })
    }

    /// The sha256 digest of `bytes`.
    pub fn sha256_of(bytes: &[u8]) -> Self {
        use sha2::Digest as _;
        Digest {
            algorithm: DigestAlgorithm::Sha256,
            hex: hex::encode(sha2::Sha256::digest(bytes)),
        }
    }

    pub fn algorithm(&self) -> DigestAlgorithm {
        self.algorithm
    }

    pub fn hex(&self) -> &str {
        &self.hex
    }

    /// True when `bytes` hash to this digest.
    pub fn matches(&self, bytes: &[u8]) -> bool {
        use sha2::Digest as _;
        let actual = match self.algorithm {
            DigestAlgorithm::Sha256 => hex::encode(sha2::Sha256::digest(bytes)),
            DigestAlgorithm::Sha512 => hex::encode(sha2::Sha512::digest(bytes)),
        };
        actual == self.hex
    }

    /// The cosign attachment tag stem: `sha256-<hex>`.
    pub fn tag_stem(&self) -> String {
        format!("{}-{}", self.algorithm.as_str(), self.hex)
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.algorithm.as_str(), self.hex)
    }
}

/// Why a reference could not be parsed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ImageError {
    #[error("could not parse reference: {0}")]
    InvalidReference(String),
    #[error("invalid digest {0:?}: expected sha256:<64 hex> or sha512:<128 hex>")]
    InvalidDigest(String),
}

/// A parsed, normalised image reference.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ImageRef {
    registry: String,
    repository: String,
    tag: Option<String>,
    digest: Option<Digest>,
}

impl ImageRef {
    /// Parses an image reference as written in a pod spec.
    pub fn parse(input: &str) -> Result<Self, ImageError> {
        let invalid = || ImageError::InvalidReference(input.to_string());
        if input.is_empty() || input.len() > 4096 || input.trim() != input {
            return Err(invalid());
        }
        let (name_and_tag, digest) = match input.split_once('@') {
            Some((rest, digest)) => (rest, Some(Digest::parse(digest).map_err(|_| invalid())?)),
            None => (input, None),
        };
        // A tag follows the last ':' that comes after the last '/', so a registry port is not
        // mistaken for one.
        let last_slash = name_and_tag.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match name_and_tag[last_slash..].rfind(':') {
            Some(i) => {
                let split = last_slash + i;
                (
                    &name_and_tag[..split],
                    Some(name_and_tag[split + 1..].to_string()),
                )
            }
            None => (name_and_tag, None),
        };
        if tag.as_deref().is_some_and(|tag| !valid_tag(tag)) {
            return Err(invalid());
        }
        let (registry, repository) = split_registry(name);
        if !valid_registry(&registry) || !valid_repository(&repository) {
            return Err(invalid());
        }
        let tag = if tag.is_none() && digest.is_none() {
            Some(DEFAULT_TAG.to_string())
        } else {
            tag
        };
        Ok(ImageRef {
            registry,
            repository,
            tag,
            digest,
        })
    }

    /// The registry host, with port when it has one (`index.docker.io`, `127.0.0.1:5000`).
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// The repository path within the registry (`library/busybox`).
    pub fn repository(&self) -> &str {
        &self.repository
    }

    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// `registry/repository`, without tag or digest.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// `registry/repository:tag` when the reference has a tag (including the implied `latest`).
    pub fn tag_form(&self) -> Option<String> {
        self.tag
            .as_ref()
            .map(|tag| format!("{}/{}:{}", self.registry, self.repository, tag))
    }

    /// `registry/repository@digest` when the digest is known.
    pub fn digest_form(&self) -> Option<String> {
        self.digest
            .as_ref()
            .map(|digest| format!("{}/{}@{}", self.registry, self.repository, digest))
    }

    /// The same reference pinned to `digest` (the tag, if any, is kept).
    pub fn with_digest(&self, digest: Digest) -> ImageRef {
        ImageRef {
            digest: Some(digest),
            ..self.clone()
        }
    }

    /// The same repository under another tag and no digest (signature tags, for example).
    pub fn with_tag(&self, tag: &str) -> ImageRef {
        ImageRef {
            tag: Some(tag.to_string()),
            digest: None,
            ..self.clone()
        }
    }
}

impl fmt::Display for ImageRef {
    /// Fully normalised: `registry/repo:tag@digest`, with whichever parts are present.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

/// A repository without tag or digest, such as a `source.oci` signature repository.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Repository {
    registry: String,
    repository: String,
}

impl Repository {
    /// Parses `registry/path` or a Docker Hub name; tags and digests are not allowed.
    pub fn parse(input: &str) -> Result<Self, ImageError> {
        let invalid = || ImageError::InvalidReference(input.to_string());
        if input.contains('@') {
            return Err(invalid());
        }
        let last_slash = input.rfind('/').map_or(0, |i| i + 1);
        if input[last_slash..].contains(':') {
            return Err(invalid());
        }
        let (registry, repository) = split_registry(input);
        if !valid_registry(&registry) || !valid_repository(&repository) {
            return Err(invalid());
        }
        Ok(Repository {
            registry,
            repository,
        })
    }

    pub fn registry(&self) -> &str {
        &self.registry
    }

    pub fn repository(&self) -> &str {
        &self.repository
    }

    /// A reference to `tag` in this repository.
    pub fn tag(&self, tag: &str) -> ImageRef {
        ImageRef {
            registry: self.registry.clone(),
            repository: self.repository.clone(),
            tag: Some(tag.to_string()),
            digest: None,
        }
    }
}

impl From<&ImageRef> for Repository {
    fn from(image: &ImageRef) -> Self {
        Repository {
            registry: image.registry.clone(),
            repository: image.repository.clone(),
        }
    }
}

impl fmt::Display for Repository {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)
    }
}

fn split_registry(name: &str) -> (String, String) {
    let (first, rest) = match name.split_once('/') {
        Some((first, rest)) => (first, Some(rest)),
        None => (name, None),
    };
    match rest {
        Some(rest) if first.contains('.') || first.contains(':') || first == "localhost" => {
            let registry = if first == "docker.io" {
                DOCKER_HUB
            } else {
                first
            };
            let repository = if registry == DOCKER_HUB && !rest.contains('/') {
                format!("library/{rest}")
            } else {
                rest.to_string()
            };
            (registry.to_string(), repository)
        }
        Some(_) => (DOCKER_HUB.to_string(), name.to_string()),
        None => (DOCKER_HUB.to_string(), format!("library/{name}")),
    }
}

fn valid_tag(tag: &str) -> bool {
    let mut bytes = tag.bytes();
    match bytes.next() {
        Some(b) if b.is_ascii_alphanumeric() || b == b'_' => {}
        _ => return false,
    }
    tag.len() <= 128 && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

fn valid_repository(repository: &str) -> bool {
    !repository.is_empty()
        && repository.len() <= 255
        && repository.split('/').all(|component| {
            !component.is_empty()
                && component.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'-' | b'.')
                })
        })
}

fn valid_registry(registry: &str) -> bool {
    let (host, port) = match registry.rsplit_once(':') {
        // An IPv6 literal in brackets may itself contain ':'.
        Some((host, port)) if !port.contains(']') => (host, Some(port)),
        _ => (registry, None),
    };
    if port.is_some_and(|port| {
        port.is_empty() || port.len() > 5 || !port.bytes().all(|b| b.is_ascii_digit())
    }) {
        return false;
    }
    if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return inner.parse::<std::net::Ipv6Addr>().is_ok();
    }
    !host.is_empty()
        && host.split('.').all(|label| {
            !label.is_empty()
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "be5d77c62dbe7fedfb0a4e5ec2f91078080800ab1f18358e5f31fcc8faa023c4";

    #[test]
    fn normalisation_table() {
        // (input, registry, repository, tag, tag form)
        let cases = [
            ("busybox", DOCKER_HUB, "library/busybox", Some("latest")),
            ("busybox:1.36", DOCKER_HUB, "library/busybox", Some("1.36")),
            (
                "library/busybox",
                DOCKER_HUB,
                "library/busybox",
                Some("latest"),
            ),
            (
                "docker.io/busybox",
                DOCKER_HUB,
                "library/busybox",
                Some("latest"),
            ),
            (
                "docker.io/library/busybox:1",
                DOCKER_HUB,
                "library/busybox",
                Some("1"),
            ),
            (
                "index.docker.io/busybox",
                DOCKER_HUB,
                "library/busybox",
                Some("latest"),
            ),
            (
                "myproject/nginx",
                DOCKER_HUB,
                "myproject/nginx",
                Some("latest"),
            ),
            (
                "docker.io/myproject/nginx",
                DOCKER_HUB,
                "myproject/nginx",
                Some("latest"),
            ),
            ("ghcr.io/org/app:v1", "ghcr.io", "org/app", Some("v1")),
            (
                "gcr.io/distroless/static:nonroot",
                "gcr.io",
                "distroless/static",
                Some("nonroot"),
            ),
            (
                "localhost:5000/app",
                "localhost:5000",
                "app",
                Some("latest"),
            ),
            (
                "127.0.0.1:5000/test/app:v1",
                "127.0.0.1:5000",
                "test/app",
                Some("v1"),
            ),
            // Departure from the reference: localhost is a registry, as the runtime treats it.
            ("localhost/app", "localhost", "app", Some("latest")),
            ("quay.io/a/b/c/d:x", "quay.io", "a/b/c/d", Some("x")),
            (
                "registry.cn-hangzhou.aliyuncs.com/fckc/sigstore-test",
                "registry.cn-hangzhou.aliyuncs.com",
                "fckc/sigstore-test",
                Some("latest"),
            ),
            (
                "harborhub.com:442/repo/alpine",
                "harborhub.com:442",
                "repo/alpine",
                Some("latest"),
            ),
        ];
        for (input, registry, repository, tag) in cases {
            let image = ImageRef::parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(image.registry(), registry, "{input}");
            assert_eq!(image.repository(), repository, "{input}");
            assert_eq!(image.tag(), tag, "{input}");
            assert_eq!(image.digest(), None, "{input}");
            assert_eq!(
                image.tag_form(),
                Some(format!(
                    "{registry}/{repository}:{}",
                    tag.unwrap_or_default()
                )),
                "{input}"
            );
        }
    }

    #[test]
    fn digest_references() {
        let image = ImageRef::parse(&format!("gcr.io/distroless/static@sha256:{HEX}")).unwrap();
        assert_eq!(image.tag(), None);
        assert_eq!(image.tag_form(), None);
        assert_eq!(
            image.digest_form().unwrap(),
            format!("gcr.io/distroless/static@sha256:{HEX}")
        );

        let both =
            ImageRef::parse(&format!("gcr.io/distroless/static:nonroot@sha256:{HEX}")).unwrap();
        assert_eq!(both.tag(), Some("nonroot"));
        assert_eq!(both.tag_form().unwrap(), "gcr.io/distroless/static:nonroot");
        assert_eq!(
            both.digest_form().unwrap(),
            format!("gcr.io/distroless/static@sha256:{HEX}")
        );
        assert_eq!(
            both.to_string(),
            format!("gcr.io/distroless/static:nonroot@sha256:{HEX}")
        );

        let hub = ImageRef::parse(&format!("nginx@sha256:{HEX}")).unwrap();
        assert_eq!(
            hub.digest_form().unwrap(),
            format!("index.docker.io/library/nginx@sha256:{HEX}")
        );
    }

    #[test]
    fn with_digest_keeps_tag() {
        let image = ImageRef::parse("nginx:1.25").unwrap();
        let digest = Digest::parse(&format!("sha256:{HEX}")).unwrap();
        let pinned = image.with_digest(digest);
        assert_eq!(
            pinned.to_string(),
            format!("index.docker.io/library/nginx:1.25@sha256:{HEX}")
        );
    }

    #[test]
    fn rejects_invalid_references() {
        for input in [
            "",
            " busybox",
            "busybox ",
            "BusyBox",
            "ghcr.io/Org/app",
            "busybox:",
            "busybox:-tag",
            "busybox@sha256:abc",
            &format!("busybox@sha256:{}", HEX.to_uppercase()),
            &format!("busybox@md5:{HEX}"),
            "ghcr.io//app",
            "ghcr.io/app/",
            "/app",
            "host:port/app",
            "ghcr.io/app:tag:more",
            "ghcr.io/a b",
            "$FOO/app",
        ] {
            assert!(
                ImageRef::parse(input).is_err(),
                "{input:?} should be rejected"
            );
        }
    }

    #[test]
    fn digest_parsing_and_matching() {
        let digest = Digest::sha256_of(b"hello");
        assert_eq!(
            digest.to_string(),
            "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
        );
        assert!(digest.matches(b"hello"));
        assert!(!digest.matches(b"hello!"));
        assert_eq!(Digest::parse(&digest.to_string()).unwrap(), digest);
        assert_eq!(
            digest.tag_stem(),
            "sha256-2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
        );
        assert!(Digest::parse("sha256").is_err());
    }

    #[test]
    fn repositories() {
        let repo = Repository::parse("registry.example.com/signatures/app").unwrap();
        assert_eq!(repo.registry(), "registry.example.com");
        assert_eq!(repo.repository(), "signatures/app");
        assert_eq!(
            repo.tag("sha256-abc.sig").to_string(),
            "registry.example.com/signatures/app:sha256-abc.sig"
        );
        assert_eq!(
            Repository::parse("nginx").unwrap().to_string(),
            "index.docker.io/library/nginx"
        );
        assert!(Repository::parse("registry.example.com/repo/*").is_err());
        assert!(Repository::parse("registry.example.com/repo:tag").is_err());
        assert!(Repository::parse("localhost:5000/repo").is_ok());
    }
}
