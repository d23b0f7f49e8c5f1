//! Finding the signatures of an image digest: the legacy cosign tag `sha256-<hex>.sig` (one
//! simple-signing layer per signature) and cosign v3 Sigstore bundles attached as OCI referrers.
//! Both are always looked for. A registry error is returned as an error, never read as "no
//! signatures"; only a missing `.sig` tag (404) means there are none there.

use bytes::Bytes;
use futures::future::try_join_all;

use crate::image::{Digest, Repository};
use crate::registry::{Descriptor, Keychain, RegistryClient, RegistryError};

pub const SIMPLE_SIGNING_MEDIA_TYPE: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
pub const BUNDLE_MEDIA_TYPE: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
pub const CERTIFICATE_ANNOTATION: &str = "dev.sigstore.cosign/certificate";
pub const CHAIN_ANNOTATION: &str = "dev.sigstore.cosign/chain";
pub const REKOR_BUNDLE_ANNOTATION: &str = "dev.sigstore.cosign/bundle";
/// Referrers with a bundle from older cosign v3 releases may announce it with a versioned
/// media type instead of the v0.3 name.
const BUNDLE_MEDIA_TYPE_PREFIX: &str = "application/vnd.dev.sigstore.bundle";

/// Where an authority's signatures are stored for one image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignatureSite {
    pub repository: Repository,
    pub tag_prefix: String,
}

impl SignatureSite {
    /// The cosign attachment tag of `digest`: `<prefix>sha256-<hex>.sig`.
    pub fn legacy_tag(&self, digest: &Digest) -> String {
        format!("{}{}.sig", self.tag_prefix, digest.tag_stem())
    }
}

/// One signature layer of a `.sig` manifest.
#[derive(Clone, Debug)]
pub struct LegacySignature {
    /// For messages: `layer 0 of ghcr.io/org/app:sha256-….sig`.
    pub location: String,
    /// The exact signed bytes.
    pub payload: Bytes,
    /// `dev.cosignproject.cosign/signature`, base64-decoded; the error says what was wrong.
    pub signature: Result<Vec<u8>, String>,
    pub certificate_pem: Option<String>,
    pub chain_pem: Option<String>,
    /// `dev.sigstore.cosign/bundle`: the Rekor entry as JSON.
    pub rekor_bundle: Option<String>,
}

/// A Sigstore bundle attached as a referrer.
#[derive(Clone, Debug)]
pub struct BundleSignature {
    /// For messages: `referrer sha256:…`.
    pub location: String,
    pub bytes: Bytes,
}

/// Everything found for one digest.
#[derive(Clone, Debug)]
pub struct Discovered {
    /// The full `.sig` reference looked up.
    pub legacy_reference: String,
    /// Whether the `.sig` tag exists.
    pub legacy_found: bool,
    pub legacy: Vec<LegacySignature>,
    /// `repo@digest` whose referrers were listed.
    pub referrers_of: String,
    pub bundles: Vec<BundleSignature>,
}

/// One authority's answer over everything discovered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SignatureVerdict {
    /// The evidence of the first signature that satisfies the authority.
    Accepted(String),
    /// No signature at all was found.
    NoSignatures,
    /// Signatures were found and none satisfies the authority: one line per signature, saying
    /// where it was and why it was rejected.
    NoneMatched(Vec<String>),
}

impl Discovered {
    /// Checks the legacy signatures, then the bundles, each on its own; the first accepted wins.
    pub fn judge(
        &self,
        legacy: impl Fn(&LegacySignature) -> Result<String, String>,
        bundle: impl Fn(&BundleSignature) -> Result<String, String>,
    ) -> SignatureVerdict {
        if self.is_empty() {
            return SignatureVerdict::NoSignatures;
        }
        let mut rejections = Vec::new();
        for signature in &self.legacy {
            match legacy(signature) {
                Ok(evidence) => return SignatureVerdict::Accepted(evidence),
                Err(reason) => rejections.push(format!("[{}] {reason}", signature.location)),
            }
        }
        for signature in &self.bundles {
            match bundle(signature) {
                Ok(evidence) => return SignatureVerdict::Accepted(evidence),
                Err(reason) => rejections.push(format!("[{}] {reason}", signature.location)),
            }
        }
        SignatureVerdict::NoneMatched(rejections)
    }

    pub fn is_empty(&self) -> bool {
        self.legacy.is_empty() && self.bundles.is_empty()
    }

    /// Where verity looked and what it found, for denials.
    pub fn summary(&self) -> String {
        let legacy = if self.legacy_found {
            format!("{} signature layer(s)", self.legacy.len())
        } else {
            "not found".to_string()
        };
        format!(
            "looked in {} ({legacy}) and the referrers of {} ({} sigstore bundle(s))",
            self.legacy_reference,
            self.referrers_of,
            self.bundles.len()
        )
    }
}

impl Discovered {
    /// The legacy signatures of `digest` at `site`; referrers are listed later, only if needed
    /// (see [`Discovered::add_bundles`]).
    pub async fn legacy(
        client: &RegistryClient,
        site: &SignatureSite,
        digest: &Digest,
        keychain: &Keychain,
    ) -> Result<Self, RegistryError> {
        let (legacy_found, legacy) = legacy_signatures(client, site, digest, keychain).await?;
        Ok(Discovered {
            legacy_reference: format!("{}:{}", site.repository, site.legacy_tag(digest)),
            legacy_found,
            legacy,
            referrers_of: format!("{}@{digest}", site.repository),
            bundles: Vec::new(),
        })
    }

    /// Adds the Sigstore bundles attached to `digest` as referrers.
    pub async fn add_bundles(
        &mut self,
        client: &RegistryClient,
        site: &SignatureSite,
        digest: &Digest,
        keychain: &Keychain,
    ) -> Result<(), RegistryError> {
        self.bundles = bundle_signatures(client, &site.repository, digest, keychain).await?;
        Ok(())
    }
}

async fn legacy_signatures(
    client: &RegistryClient,
    site: &SignatureSite,
    digest: &Digest,
    keychain: &Keychain,
) -> Result<(bool, Vec<LegacySignature>), RegistryError> {
    let tag = site.legacy_tag(digest);
    let manifest = match client.manifest(&site.repository, &tag, keychain).await {
        Ok(manifest) => manifest,
        Err(err) if err.is_not_found() => return Ok((false, Vec::new())),
        Err(err) => return Err(err),
    };
    let layers: Vec<(usize, Descriptor)> = manifest
        .image_manifest()?
        .layers
        .into_iter()
        .enumerate()
        .filter(|(_, layer)| layer.media_type == SIMPLE_SIGNING_MEDIA_TYPE)
        .collect();
    let reference = format!("{}:{tag}", site.repository);
    let signatures = try_join_all(layers.into_iter().map(|(index, layer)| {
        let reference = reference.clone();
        async move {
            let payload = client
                .blob(&site.repository, &layer.digest, keychain)
                .await?;
            let annotation = |name: &str| layer.annotations.get(name).cloned();
            Ok::<_, RegistryError>(LegacySignature {
                location: format!("layer {index} of {reference}"),
                payload,
                signature: decode_signature(annotation(SIGNATURE_ANNOTATION)),
                certificate_pem: annotation(CERTIFICATE_ANNOTATION).filter(|c| !c.is_empty()),
                chain_pem: annotation(CHAIN_ANNOTATION).filter(|c| !c.is_empty()),
                rekor_bundle: annotation(REKOR_BUNDLE_ANNOTATION).filter(|b| !b.is_empty()),
            })
        }
    }))
    .await?;
    Ok((true, signatures))
}

fn decode_signature(annotation: Option<String>) -> Result<Vec<u8>, String> {
    use base64::Engine as _;
    let text =
        annotation.ok_or_else(|| format!("the layer has no {SIGNATURE_ANNOTATION} annotation"))?;
    // cosign wraps nothing, but some tools insert line breaks in long base64.
    let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    base64::engine::general_purpose::STANDARD
        .decode(compact)
        .map_err(|e| format!("the {SIGNATURE_ANNOTATION} annotation is not base64: {e}"))
}

async fn bundle_signatures(
    client: &RegistryClient,
    repository: &Repository,
    digest: &Digest,
    keychain: &Keychain,
) -> Result<Vec<BundleSignature>, RegistryError> {
    // No server-side filter: some cosign releases used versioned bundle media types.
    let referrers = client.referrers(repository, digest, None, keychain).await?;
    let candidates = referrers.into_iter().filter(|r| {
        r.artifact_type
            .as_deref()
            .is_some_and(|t| t.starts_with(BUNDLE_MEDIA_TYPE_PREFIX))
    });
    let bundles = try_join_all(candidates.map(|referrer| async move {
        let manifest = client
            .manifest(repository, &referrer.digest.to_string(), keychain)
            .await?
            .image_manifest()?;
        let mut found = Vec::new();
        for layer in manifest
            .layers
            .iter()
            .filter(|l| l.media_type.starts_with(BUNDLE_MEDIA_TYPE_PREFIX))
        {
            let bytes = client.blob(repository, &layer.digest, keychain).await?;
            found.push(BundleSignature {
                location: format!("referrer {} of {repository}@{digest}", referrer.digest),
                bytes,
            });
        }
        Ok::<_, RegistryError>(found)
    }))
    .await?;
    Ok(bundles.into_iter().flatten().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_tags_and_summary() {
        let site = SignatureSite {
            repository: Repository::parse("ghcr.io/org/app").unwrap(),
            tag_prefix: String::new(),
        };
        let digest = Digest::sha256_of(b"image");
        assert_eq!(
            site.legacy_tag(&digest),
            format!("sha256-{}.sig", digest.hex())
        );
        let prefixed = SignatureSite {
            tag_prefix: "release-".into(),
            ..site.clone()
        };
        assert_eq!(
            prefixed.legacy_tag(&digest),
            format!("release-sha256-{}.sig", digest.hex())
        );
        let discovered = Discovered {
            legacy_reference: format!("ghcr.io/org/app:{}", site.legacy_tag(&digest)),
            legacy_found: false,
            legacy: Vec::new(),
            referrers_of: format!("ghcr.io/org/app@{digest}"),
            bundles: Vec::new(),
        };
        assert!(discovered.is_empty());
        assert_eq!(
            discovered.summary(),
            format!(
                "looked in ghcr.io/org/app:sha256-{hex}.sig (not found) and the referrers of ghcr.io/org/app@sha256:{hex} (0 sigstore bundle(s))",
                hex = digest.hex()
            )
        );
    }

    #[test]
    fn signature_annotations_decode_or_explain() {
        assert_eq!(decode_signature(Some("aGk=".into())).unwrap(), b"hi");
        assert_eq!(decode_signature(Some("aG\nk=".into())).unwrap(), b"hi");
        assert!(
            decode_signature(None)
                .unwrap_err()
                .contains("has no dev.cosignproject.cosign/signature")
        );
        assert!(
            decode_signature(Some("!!".into()))
                .unwrap_err()
                .contains("is not base64")
        );
    }
}
