//! Manifests, indexes and descriptors as the registry serves them.
//!
//! [`Manifest`] keeps the exact bytes (their digest is what gets signed); the typed views
//! ([`ImageManifest`], [`ImageIndex`]) are parsed on demand and never re-serialised.

use std::collections::BTreeMap;

use bytes::Bytes;
use serde::Deserialize;

use super::error::RegistryError;
use crate::image::Digest;

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// The config of artifacts that have none: the two bytes `{}`.
pub const OCI_EMPTY: &str = "application/vnd.oci.empty.v1+json";

/// The `Accept` header for manifest requests: images and indexes, OCI and Docker.
pub(crate) const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
     application/vnd.oci.image.manifest.v1+json, \
     application/vnd.docker.distribution.manifest.list.v2+json, \
     application/vnd.docker.distribution.manifest.v2+json";

/// A manifest as fetched: its digest, its media type and its exact bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Manifest {
    pub digest: Digest,
    pub media_type: String,
    pub bytes: Bytes,
}

impl Manifest {
    pub fn is_index(&self) -> bool {
        self.media_type == OCI_INDEX || self.media_type == DOCKER_MANIFEST_LIST
    }

    /// The manifest as an image manifest (config + layers).
    pub fn image_manifest(&self) -> Result<ImageManifest, RegistryError> {
        let raw: RawImageManifest = self.parse()?;
        Ok(ImageManifest {
            media_type: raw.media_type,
            artifact_type: raw.artifact_type,
            config: raw.config.into_descriptor().map_err(|e| self.invalid(e))?,
            layers: raw
                .layers
                .into_iter()
                .map(RawDescriptor::into_descriptor)
                .collect::<Result<_, _>>()
                .map_err(|e| self.invalid(e))?,
            subject: raw
                .subject
                .map(RawDescriptor::into_descriptor)
                .transpose()
                .map_err(|e| self.invalid(e))?,
            annotations: raw.annotations,
        })
    }

    /// The manifest as an index (a list of manifests).
    pub fn index(&self) -> Result<ImageIndex, RegistryError> {
        let raw: RawIndex = self.parse()?;
        Ok(ImageIndex {
            media_type: raw.media_type,
            manifests: raw
                .manifests
                .into_iter()
                .map(RawDescriptor::into_descriptor)
                .collect::<Result<_, _>>()
                .map_err(|e| self.invalid(e))?,
            annotations: raw.annotations,
        })
    }

    fn parse<'a, T: Deserialize<'a>>(&'a self) -> Result<T, RegistryError> {
        serde_json::from_slice(&self.bytes).map_err(|e| self.invalid(e.to_string()))
    }

    fn invalid(&self, cause: String) -> RegistryError {
        RegistryError::InvalidResponse {
            request: format!("manifest {}", self.digest),
            cause,
        }
    }
}

/// An OCI descriptor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Descriptor {
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    pub artifact_type: Option<String>,
    pub annotations: BTreeMap<String, String>,
    pub platform: Option<Platform>,
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct Platform {
    pub architecture: String,
    pub os: String,
    #[serde(default)]
    pub variant: Option<String>,
}

/// An image manifest (OCI or Docker schema 2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageManifest {
    pub media_type: Option<String>,
    pub artifact_type: Option<String>,
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
    pub subject: Option<Descriptor>,
    pub annotations: BTreeMap<String, String>,
}

impl ImageManifest {
    /// The artifact type as the referrers API defines it: `artifactType`, else the config media
    /// type unless that is the empty config.
    pub fn effective_artifact_type(&self) -> Option<&str> {
        self.artifact_type
            .as_deref()
            .or(Some(self.config.media_type.as_str()).filter(|t| *t != OCI_EMPTY))
    }
}

/// An image index / manifest list (also the shape of a referrers response).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageIndex {
    pub media_type: Option<String>,
    pub manifests: Vec<Descriptor>,
    pub annotations: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawDescriptor {
    media_type: String,
    digest: String,
    size: u64,
    #[serde(default)]
    artifact_type: Option<String>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
    #[serde(default)]
    platform: Option<Platform>,
}

impl RawDescriptor {
    fn into_descriptor(self) -> Result<Descriptor, String> {
        let digest = Digest::parse(&self.digest).map_err(|e| e.to_string())?;
        Ok(Descriptor {
            media_type: self.media_type,
            digest,
            size: self.size,
            artifact_type: self.artifact_type,
            annotations: self.annotations,
            platform: self.platform,
        })
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawImageManifest {
    #[serde(default)]
    media_type: Option<String>,
    #[serde(default)]
    artifact_type: Option<String>,
    config: RawDescriptor,
    #[serde(default)]
    layers: Vec<RawDescriptor>,
    #[serde(default)]
    subject: Option<RawDescriptor>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawIndex {
    #[serde(default)]
    media_type: Option<String>,
    #[serde(default)]
    manifests: Vec<RawDescriptor>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
}

/// The `mediaType` field of a manifest body, if it has one.
pub(crate) fn body_media_type(bytes: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Probe {
        media_type: Option<String>,
    }
    serde_json::from_slice::<Probe>(bytes).ok()?.media_type
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(body: &str, media_type: &str) -> Manifest {
        Manifest {
            digest: Digest::sha256_of(body.as_bytes()),
            media_type: media_type.to_string(),
            bytes: Bytes::from(body.to_string()),
        }
    }

    #[test]
    fn parses_artifact_manifest_with_subject() {
        let d = Digest::sha256_of(b"x");
        let body = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","artifactType":"application/vnd.dev.sigstore.bundle.v0.3+json",
            "config":{{"mediaType":"{OCI_EMPTY}","digest":"{d}","size":2}},
            "layers":[{{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json","digest":"{d}","size":1,"annotations":{{"a":"b"}}}}],
            "subject":{{"mediaType":"{OCI_MANIFEST}","digest":"{d}","size":3}}}}"#
        );
        let parsed = manifest(&body, OCI_MANIFEST).image_manifest().unwrap();
        assert_eq!(
            parsed.effective_artifact_type(),
            Some("application/vnd.dev.sigstore.bundle.v0.3+json")
        );
        assert_eq!(parsed.layers[0].annotations["a"], "b");
        assert_eq!(parsed.subject.unwrap().digest, d);
        assert_eq!(
            body_media_type(body.as_bytes()).as_deref(),
            Some(OCI_MANIFEST)
        );
    }

    #[test]
    fn artifact_type_falls_back_to_config_media_type() {
        let d = Digest::sha256_of(b"x");
        let body = format!(
            r#"{{"schemaVersion":2,"config":{{"mediaType":"application/vnd.example.config","digest":"{d}","size":2}},"layers":[]}}"#
        );
        let parsed = manifest(&body, OCI_MANIFEST).image_manifest().unwrap();
        assert_eq!(
            parsed.effective_artifact_type(),
            Some("application/vnd.example.config")
        );
    }

    #[test]
    fn invalid_descriptor_digest_is_an_invalid_response() {
        let body = r#"{"schemaVersion":2,"manifests":[{"mediaType":"x","digest":"sha256:nope","size":1}]}"#;
        let m = manifest(body, OCI_INDEX);
        assert!(m.is_index());
        let err = m.index().unwrap_err();
        assert_eq!(err.reason(), "invalid_response");
        assert!(err.to_string().contains("sha256:nope"), "{err}");
    }
}
