//! Legacy cosign signatures: a `.sig` manifest under the tag `sha256-<hex>.sig` in the image's
//! repository, one layer per signature. Each layer is the payload blob (media type
//! `application/vnd.dev.cosign.simplesigning.v1+json`) with the signature and its evidence in
//! annotations:
//!
//! | annotation | content |
//! |---|---|
//! | `dev.cosignproject.cosign/signature` | base64 signature over the payload |
//! | `dev.sigstore.cosign/certificate` | PEM signing certificate |
//! | `dev.sigstore.cosign/chain` | PEM chain, intermediates then root |
//! | `dev.sigstore.cosign/bundle` | the Rekor entry ([`super::RekorEntry::cosign_annotation`]) |
//!
//! The config blob is an image config whose `rootfs.diff_ids` list the layer digests, as cosign
//! writes it.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use verity::image::Digest;

use super::fulcio::{FulcioLeaf, TestFulcio};
use super::keys::{Hash, KeyPair};
use super::rekor::TestRekor;
use crate::support::registry::{OCI_CONFIG, OCI_MANIFEST, TestRegistry};

pub const SIMPLE_SIGNING_MEDIA_TYPE: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
pub const CERTIFICATE_ANNOTATION: &str = "dev.sigstore.cosign/certificate";
pub const CHAIN_ANNOTATION: &str = "dev.sigstore.cosign/chain";
pub const BUNDLE_ANNOTATION: &str = "dev.sigstore.cosign/bundle";

/// One signature of a `.sig` manifest.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SignatureLayer {
    /// The signed payload, stored as the layer blob.
    pub payload: Vec<u8>,
    /// The raw signature (base64 in the annotation).
    pub signature: Vec<u8>,
    pub certificate_pem: Option<String>,
    pub chain_pem: Option<String>,
    /// The `dev.sigstore.cosign/bundle` annotation JSON.
    pub rekor_bundle: Option<String>,
    /// More annotations (override the ones above on a name clash).
    pub extra_annotations: BTreeMap<String, String>,
}

impl SignatureLayer {
    /// A signature with no certificate and no Rekor entry.
    pub fn new(payload: Vec<u8>, signature: Vec<u8>) -> Self {
        SignatureLayer {
            payload,
            signature,
            ..SignatureLayer::default()
        }
    }

    /// What `cosign sign --key` makes: `key`'s signature over `payload` (openssl, sha256) and,
    /// with `rekor` = (log, integrated time, log index), a `hashedrekord` entry recording the
    /// public key.
    pub fn keyed(payload: &[u8], key: &KeyPair, rekor: Option<(&TestRekor, i64, i64)>) -> Self {
        let signature = key.sign_openssl(payload, Hash::Sha256, false);
        let rekor_bundle = rekor.map(|(log, integrated_time, log_index)| {
            log.hashedrekord_entry(
                payload,
                &signature,
                key.public_pem(),
                integrated_time,
                log_index,
            )
            .cosign_annotation()
        });
        SignatureLayer {
            rekor_bundle,
            ..SignatureLayer::new(payload.to_vec(), signature)
        }
    }

    /// What keyless `cosign sign` makes: the leaf key's signature over `payload` (openssl,
    /// sha256), the certificate, the chain of `fulcio`, and a `hashedrekord` entry recording the
    /// certificate in `rekor` at `integrated_time`, `log_index`.
    pub fn keyless(
        payload: &[u8],
        leaf: &FulcioLeaf,
        fulcio: &TestFulcio,
        rekor: &TestRekor,
        integrated_time: i64,
        log_index: i64,
    ) -> Self {
        let signature = leaf.key.sign_openssl(payload, Hash::Sha256, false);
        let entry = rekor.hashedrekord_entry(
            payload,
            &signature,
            &leaf.cert_pem,
            integrated_time,
            log_index,
        );
        SignatureLayer {
            certificate_pem: Some(leaf.cert_pem.clone()),
            chain_pem: Some(fulcio.chain_pem()),
            rekor_bundle: Some(entry.cosign_annotation()),
            ..SignatureLayer::new(payload.to_vec(), signature)
        }
    }

    /// The layer's annotations.
    pub fn annotations(&self) -> BTreeMap<String, String> {
        let mut annotations = BTreeMap::new();
        annotations.insert(
            SIGNATURE_ANNOTATION.to_string(),
            super::b64(&self.signature),
        );
        let optional = [
            (CERTIFICATE_ANNOTATION, &self.certificate_pem),
            (CHAIN_ANNOTATION, &self.chain_pem),
            (BUNDLE_ANNOTATION, &self.rekor_bundle),
        ];
        for (name, value) in optional {
            if let Some(value) = value {
                annotations.insert(name.to_string(), value.clone());
            }
        }
        annotations.extend(self.extra_annotations.clone());
        annotations
    }
}

/// The signature tag of `digest`: `<prefix>sha256-<hex>.sig`.
pub fn sig_tag(prefix: &str, digest: &Digest) -> String {
    format!("{prefix}{}.sig", digest.tag_stem())
}

/// A `.sig` manifest and the blobs it needs, before pushing. Tests may edit `manifest` (or the
/// blobs) to make malformed ones; [`push_legacy_manifest`] pushes whatever is there.
#[derive(Clone, Debug, PartialEq)]
pub struct LegacyManifest {
    pub config: Vec<u8>,
    /// The layer blobs (payloads), in layer order.
    pub payloads: Vec<Vec<u8>>,
    pub manifest: Value,
}

impl LegacyManifest {
    /// The manifest of `signatures`, one layer each.
    pub fn of(signatures: &[SignatureLayer]) -> Self {
        let layers: Vec<(Vec<u8>, BTreeMap<String, String>)> = signatures
            .iter()
            .map(|s| (s.payload.clone(), s.annotations()))
            .collect();
        Self::from_layers(&layers)
    }

    /// The manifest of layers given as (payload, exact annotations).
    pub fn from_layers(layers: &[(Vec<u8>, BTreeMap<String, String>)]) -> Self {
        let diff_ids: Vec<String> = layers
            .iter()
            .map(|(payload, _)| Digest::sha256_of(payload).to_string())
            .collect();
        let config = json!({
            "architecture": "",
            "created": "0001-01-01T00:00:00Z",
            "history": diff_ids.iter().map(|_| json!({"created": "0001-01-01T00:00:00Z"})).collect::<Vec<_>>(),
            "os": "",
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
            "config": {},
        })
        .to_string()
        .into_bytes();
        let descriptors: Vec<Value> = layers
            .iter()
            .map(|(payload, annotations)| {
                json!({
                    "mediaType": SIMPLE_SIGNING_MEDIA_TYPE,
                    "size": payload.len(),
                    "digest": Digest::sha256_of(payload).to_string(),
                    "annotations": annotations,
                })
            })
            .collect();
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {
                "mediaType": OCI_CONFIG,
                "size": config.len(),
                "digest": Digest::sha256_of(&config).to_string(),
            },
            "layers": descriptors,
        });
        LegacyManifest {
            config,
            payloads: layers.iter().map(|(payload, _)| payload.clone()).collect(),
            manifest,
        }
    }

    /// The manifest bytes as pushed (compact JSON).
    pub fn bytes(&self) -> Vec<u8> {
        self.manifest.to_string().into_bytes()
    }

    /// The digest of [`LegacyManifest::bytes`].
    pub fn digest(&self) -> Digest {
        Digest::sha256_of(&self.bytes())
    }
}

/// Pushes the blobs of `manifest`, then the manifest under `tag`; returns its digest.
pub async fn push_legacy_manifest(
    registry: &TestRegistry,
    repo: &str,
    tag: &str,
    manifest: &LegacyManifest,
) -> Digest {
    let mut blobs = vec![manifest.config.clone()];
    blobs.extend(manifest.payloads.iter().cloned());
    push_raw_manifest(registry, repo, tag, &blobs, &manifest.bytes()).await
}

/// Pushes `signatures` as the `.sig` manifest of `image_digest` in `repo`, under
/// `<tag_prefix>sha256-<hex>.sig` (the prefix is normally empty); returns the manifest digest.
/// The image itself need not be in the registry.
pub async fn push_legacy_signatures(
    registry: &TestRegistry,
    repo: &str,
    image_digest: &Digest,
    tag_prefix: &str,
    signatures: &[SignatureLayer],
) -> Digest {
    push_legacy_manifest(
        registry,
        repo,
        &sig_tag(tag_prefix, image_digest),
        &LegacyManifest::of(signatures),
    )
    .await
}

/// Pushes `blobs`, then `manifest` (bytes as given; media type from its `mediaType`, else
/// OCI) under `reference`; returns the manifest digest. The registry refuses a manifest whose
/// config or layer blobs it does not hold.
pub async fn push_raw_manifest(
    registry: &TestRegistry,
    repo: &str,
    reference: &str,
    blobs: &[Vec<u8>],
    manifest: &[u8],
) -> Digest {
    for blob in blobs {
        registry.push_blob(repo, blob).await;
    }
    let media_type = serde_json::from_slice::<Value>(manifest)
        .ok()
        .and_then(|v| v["mediaType"].as_str().map(str::to_string))
        .unwrap_or_else(|| OCI_MANIFEST.to_string());
    registry
        .push_manifest(repo, reference, &media_type, manifest)
        .await
}
