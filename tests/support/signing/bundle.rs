//! cosign v3 signatures: a Sigstore bundle v0.3 (protobuf JSON) holding a DSSE envelope, its
//! verification material and transparency-log entries, attached to the image as an OCI 1.1
//! referrer as cosign's `specs/BUNDLE_SPEC.md` describes: a manifest with `artifactType`
//! [`BUNDLE_V03_MEDIA_TYPE`], the empty config, one layer holding the bundle JSON and
//! `subject` = the image, listed in the referrers tag-schema index `sha256-<hex>` (distribution
//! 2.8 has no referrers API).

use serde_json::{Value, json};
use verity::image::Digest;

use super::fulcio::FulcioLeaf;
use super::keys::KeyPair;
use super::payload::{COSIGN_SIGN_PREDICATE, Envelope, dsse_envelope, in_toto_statement};
use super::rekor::{RekorEntry, TestRekor};
use crate::support::registry::{OCI_EMPTY, OCI_MANIFEST, TestRegistry};

/// The bundle media type cosign v3 writes, also the referrer's `artifactType`.
pub const BUNDLE_V03_MEDIA_TYPE: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";

/// Who signed, as the bundle's `verificationMaterial` says it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BundleMaterial {
    /// The DER leaf certificate (keyless).
    Certificate(Vec<u8>),
    /// A key the verifier knows, named by an optional hint (keyed).
    PublicKey { hint: Option<String> },
}

/// The bundle as JSON: `mediaType`, `verificationMaterial` (the material and `tlogEntries`),
/// `dsseEnvelope`. Tests may edit it before serialising.
pub fn bundle_v03_json(
    envelope: &Envelope,
    material: &BundleMaterial,
    tlog_entries: &[&RekorEntry],
) -> Value {
    let mut verification_material = match material {
        BundleMaterial::Certificate(der) => json!({"certificate": {"rawBytes": super::b64(der)}}),
        BundleMaterial::PublicKey { hint: Some(hint) } => json!({"publicKey": {"hint": hint}}),
        BundleMaterial::PublicKey { hint: None } => json!({"publicKey": {}}),
    };
    verification_material["tlogEntries"] =
        Value::Array(tlog_entries.iter().map(|e| e.bundle_json()).collect());
    json!({
        "mediaType": BUNDLE_V03_MEDIA_TYPE,
        "verificationMaterial": verification_material,
        "dsseEnvelope": envelope.to_json(),
    })
}

/// [`bundle_v03_json`] with at most one entry, as compact JSON bytes.
pub fn bundle_v03(
    envelope: &Envelope,
    material: &BundleMaterial,
    tlog_entry: Option<&RekorEntry>,
) -> Vec<u8> {
    let entries: Vec<&RekorEntry> = tlog_entry.into_iter().collect();
    bundle_v03_json(envelope, material, &entries)
        .to_string()
        .into_bytes()
}

/// What keyless `cosign sign` v3 makes for `image`: the statement signed by the leaf key in a
/// DSSE envelope, the leaf certificate, and a `dsse` entry in `rekor` at `integrated_time`,
/// `log_index` (SET and inclusion proof).
pub fn keyless_bundle(
    image: &Digest,
    leaf: &FulcioLeaf,
    rekor: &TestRekor,
    integrated_time: i64,
    log_index: i64,
) -> Vec<u8> {
    let envelope = dsse_envelope(&in_toto_statement(image), &leaf.key);
    let entry = rekor.dsse_entry(&envelope, &leaf.cert_pem, integrated_time, log_index);
    bundle_v03(
        &envelope,
        &BundleMaterial::Certificate(leaf.cert_der.clone()),
        Some(&entry),
    )
}

/// What `cosign sign --key` v3 makes for `image`: the statement signed by `key`, a public-key
/// hint (the key's fingerprint), and a `dsse` entry in `rekor` recording the public key.
pub fn keyed_bundle(
    image: &Digest,
    key: &KeyPair,
    rekor: &TestRekor,
    integrated_time: i64,
    log_index: i64,
) -> Vec<u8> {
    let envelope = dsse_envelope(&in_toto_statement(image), key);
    let entry = rekor.dsse_entry(&envelope, key.public_pem(), integrated_time, log_index);
    let hint = Some(key.fingerprint());
    bundle_v03(&envelope, &BundleMaterial::PublicKey { hint }, Some(&entry))
}

/// Attaches `bundle` (bytes as given) to `image_digest` in `repo` as cosign v3 does; returns
/// the referrer manifest's digest. The image need not be in the registry; when it is, the
/// `subject` descriptor carries its media type and size, otherwise an OCI manifest of size 0.
/// The referrers-index descriptor has no annotations (cosign's own fallback may omit them,
/// sigstore/cosign#4641), so a verifier cannot lean on them.
pub async fn push_bundle_referrer(
    registry: &TestRegistry,
    repo: &str,
    image_digest: &Digest,
    bundle: &[u8],
) -> Digest {
    let config = registry.push_blob(repo, b"{}").await;
    let layer = registry.push_blob(repo, bundle).await;
    let (subject_media_type, subject_size) = registry
        .fetch_manifest(repo, &image_digest.to_string())
        .await
        .map_or((OCI_MANIFEST.to_string(), 0), |(media_type, bytes)| {
            (media_type, bytes.len())
        });
    let content = serde_json::from_slice::<Value>(bundle)
        .ok()
        .filter(|b| b.get("messageSignature").is_some())
        .map_or("dsse-envelope", |_| "message-signature");
    let mut manifest = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": BUNDLE_V03_MEDIA_TYPE,
        "config": {"mediaType": OCI_EMPTY, "digest": config.to_string(), "size": 2},
        "layers": [{
            "mediaType": BUNDLE_V03_MEDIA_TYPE,
            "digest": layer.to_string(),
            "size": bundle.len(),
            "annotations": {"org.opencontainers.image.title": format!("{}.sigstore.json", layer.tag_stem())},
        }],
        "subject": {"mediaType": subject_media_type, "digest": image_digest.to_string(), "size": subject_size},
        "annotations": {
            "dev.sigstore.bundle.content": content,
            "org.opencontainers.image.created": "2026-01-01T00:00:00Z",
        },
    });
    if content == "dsse-envelope" {
        manifest["annotations"]["dev.sigstore.bundle.predicateType"] = COSIGN_SIGN_PREDICATE.into();
    }
    let manifest = manifest.to_string().into_bytes();
    let digest = registry
        .push_manifest(
            repo,
            &Digest::sha256_of(&manifest).to_string(),
            OCI_MANIFEST,
            &manifest,
        )
        .await;
    registry
        .append_to_referrers_tag(
            repo,
            image_digest,
            json!({
                "mediaType": OCI_MANIFEST,
                "digest": digest.to_string(),
                "size": manifest.len(),
                "artifactType": BUNDLE_V03_MEDIA_TYPE,
            }),
        )
        .await;
    digest
}
