//! The real production signatures of `../shared/vectors` (see its README), loaded and pushed
//! into a test registry in the form their signers published them.
//!
//! The signed images are not part of the vectors, so the artefacts are pushed for the image
//! digest alone (a `.sig` tag or a referrer does not need the image in the registry) and the
//! image is addressed by digest.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;
use serde_json::Value;
use verity::image::Digest;

use super::json::OrderedJson;
use super::legacy::{
    BUNDLE_ANNOTATION, CERTIFICATE_ANNOTATION, CHAIN_ANNOTATION, LegacyManifest,
    SIGNATURE_ANNOTATION, push_legacy_manifest, sig_tag,
};
use crate::support::registry::TestRegistry;

/// Keyless, e-mail identity, 2021, `.sig` with a `rekord` entry.
pub const KEYLESS_2021: &str = "sigstore-rs-2021-keyless-email-rekord";
/// Key-based ECDSA P-256, 2023, `.sig` with a `hashedrekord` entry.
pub const KEYED_2023: &str = "containers-image-2023-keyed-with-rekor";
/// Keyless GitHub Actions, 2026, cosign v3 bundle (DSSE) as a referrer.
pub const V3_BUNDLE_2026: &str = "sigstore-rs-2026-cosign-v3-bundle-github-actions-dsse";

/// The vectors folder, `../shared/vectors` next to the crate (the CI layout).
pub fn vectors_dir() -> PathBuf {
    let dir = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/vectors"));
    assert!(
        dir.is_dir(),
        "the test vectors folder {} is missing: the crate expects ../shared/vectors next to it (the CI layout)",
        dir.display()
    );
    dir
}

/// One vector file (fields as its README describes them).
#[derive(Clone, Debug, Deserialize)]
pub struct Vector {
    pub id: String,
    pub format: String,
    pub image: String,
    pub manifest_digest: String,
    #[serde(default)]
    pub manifest_json_b64: Option<String>,
    #[serde(default)]
    pub signature_layer_digest: Option<String>,
    #[serde(default)]
    pub referrer_layer_digest: Option<String>,
    pub payload: String,
    #[serde(default)]
    pub payload_type: Option<String>,
    pub signature_b64: String,
    #[serde(default)]
    pub cert_pem: Option<String>,
    #[serde(default)]
    pub chain_pem: Option<String>,
    pub bundle: Value,
    #[serde(default)]
    pub annotations: Option<BTreeMap<String, String>>,
    #[serde(default)]
    pub public_key_pem: Option<String>,
    #[serde(default)]
    pub wrong_public_key_pem: Option<String>,
    pub rekor_public_key_pem: String,
    pub rekor_log_id: String,
    #[serde(default)]
    pub expected_subject: Option<String>,
    #[serde(default)]
    pub expected_issuer: Option<String>,
    #[serde(default)]
    pub subject_type: Option<String>,
    #[serde(default)]
    pub checked: Value,
    /// `bundle` as compact JSON with keys in file order (not a file field).
    #[serde(skip)]
    pub bundle_compact: String,
}

impl Vector {
    /// Loads `<name>` or `<name>.json` from [`vectors_dir`].
    pub fn load(name: &str) -> Self {
        let file = if name.ends_with(".json") {
            name.to_string()
        } else {
            format!("{name}.json")
        };
        let path = vectors_dir().join(&file);
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("cannot read vector {}: {e}", path.display()));
        let mut vector: Vector = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("vector {} does not parse: {e}", path.display()));
        vector.bundle_compact = OrderedJson::parse(&text)
            .get("bundle")
            .unwrap_or_else(|| panic!("vector {} has no bundle", path.display()))
            .compact();
        vector
    }

    /// The three signature vectors.
    pub fn all() -> Vec<Vector> {
        [KEYLESS_2021, KEYED_2023, V3_BUNDLE_2026]
            .into_iter()
            .map(Vector::load)
            .collect()
    }

    /// The signed image digest.
    pub fn image_digest(&self) -> Digest {
        Digest::parse(&self.manifest_digest).unwrap()
    }

    /// A cosign v3 bundle (a referrer) rather than a legacy `.sig` signature.
    pub fn is_v3_bundle(&self) -> bool {
        self.bundle.get("mediaType").is_some()
    }

    pub fn payload_bytes(&self) -> Vec<u8> {
        self.payload.as_bytes().to_vec()
    }

    pub fn signature(&self) -> Vec<u8> {
        super::unb64(&self.signature_b64)
    }

    /// The exact annotations of the `.sig` layer: the vector's `annotations` where the original
    /// manifest had them, otherwise those its README prescribes (signature, certificate, chain,
    /// bundle as compact JSON in file order).
    pub fn legacy_annotations(&self) -> BTreeMap<String, String> {
        assert!(
            !self.is_v3_bundle(),
            "{} is a v3 bundle, not a .sig",
            self.id
        );
        if let Some(annotations) = &self.annotations {
            return annotations.clone();
        }
        let mut annotations = BTreeMap::new();
        annotations.insert(SIGNATURE_ANNOTATION.to_string(), self.signature_b64.clone());
        if let Some(cert) = &self.cert_pem {
            annotations.insert(CERTIFICATE_ANNOTATION.to_string(), cert.clone());
        }
        if let Some(chain) = &self.chain_pem {
            annotations.insert(CHAIN_ANNOTATION.to_string(), chain.clone());
        }
        annotations.insert(BUNDLE_ANNOTATION.to_string(), self.bundle_compact.clone());
        annotations
    }

    /// The `.sig` manifest of a legacy vector.
    pub fn legacy_manifest(&self) -> LegacyManifest {
        LegacyManifest::from_layers(&[(self.payload_bytes(), self.legacy_annotations())])
    }

    /// The bundle bytes of a v3 vector: their digest is `referrer_layer_digest`.
    pub fn bundle_bytes(&self) -> Vec<u8> {
        assert!(self.is_v3_bundle(), "{} is not a v3 bundle", self.id);
        self.bundle_compact.as_bytes().to_vec()
    }
}

/// Pushes the signature of `vector` into `repo`: a `.sig` manifest under the image digest's
/// signature tag (legacy vectors) or a bundle referrer (v3). Returns the signed image digest.
/// Panics if the pushed layer's digest is not the one the vector states.
pub async fn push_vector(registry: &TestRegistry, repo: &str, vector: &Vector) -> Digest {
    let image = vector.image_digest();
    if vector.is_v3_bundle() {
        let bundle = vector.bundle_bytes();
        let expected = vector
            .referrer_layer_digest
            .as_deref()
            .expect("a v3 vector states its referrer layer digest");
        assert_eq!(
            Digest::sha256_of(&bundle).to_string(),
            expected,
            "the compact bundle of {} does not have the stated digest",
            vector.id
        );
        super::bundle::push_bundle_referrer(registry, repo, &image, &bundle).await;
    } else {
        let manifest = vector.legacy_manifest();
        if let Some(expected) = &vector.signature_layer_digest {
            assert_eq!(
                &Digest::sha256_of(&manifest.payloads[0]).to_string(),
                expected,
                "the payload of {} does not have the stated layer digest",
                vector.id
            );
        }
        push_legacy_manifest(registry, repo, &sig_tag("", &image), &manifest).await;
    }
    image
}
