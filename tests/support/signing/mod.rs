//! The signing side of cosign/sigstore, for verification tests: real, independently made
//! signatures pushed into a real registry ([`super::registry::TestRegistry`]).
//!
//! Independence is the point. Whatever verity's `verify` module accepts must have been made by
//! something else, so the signatures here come from the `openssl` CLI (and from aws-lc-rs through
//! a second code path, checked against openssl), and every format (payloads, Rekor bodies, SETs,
//! checkpoints, Merkle proofs, SCTs, bundles, manifests) is written from its specification, not
//! from verity's parsers.
//!
//! - [`keys`]: [`KeyPair`] made by `openssl genpkey` (ECDSA P-256/P-384, RSA 2048, Ed25519);
//!   [`KeyPair::sign_openssl`] (the independent signer) and [`KeyPair::sign_native`] (aws-lc-rs).
//! - [`payload`]: the simple-signing payload, the in-toto statement of `cosign sign` v3, DSSE
//!   envelopes.
//! - [`legacy`]: `.sig` manifests (one layer per signature, cosign annotations), pushed under
//!   `sha256-<hex>.sig`, and a raw variant for malformed manifests.
//! - [`rekor`]: [`TestRekor`], a transparency log with an openssl-held key: `hashedrekord`,
//!   `rekord` and `dsse` bodies, SETs, RFC 6962 inclusion proofs and signed checkpoints.
//! - [`ct`] and [`fulcio`]: [`TestFulcio`] (P-384 root and intermediate) issuing Fulcio-shaped
//!   leaves, optionally with an embedded SCT from a [`TestCtLog`].
//! - [`trust`]: a `trusted_root.json` and a TrustRoot resource for that material.
//! - [`bundle`]: Sigstore bundles v0.3 and their OCI referrers.
//! - [`vector`]: the production vectors of `../shared/vectors`, pushed into a test registry.
//! - [`forgery`]: one-change forgeries of all of the above.
//!
//! One call makes what `cosign sign` makes: [`SignatureLayer::keyed`] and
//! [`SignatureLayer::keyless`] (legacy `.sig` layers with their Rekor entry), [`keyed_bundle`]
//! and [`keyless_bundle`] (v3 bundles). A keyless test, end to end:
//!
//! ```text
//! let (fulcio, rekor, ct) = (TestFulcio::new(), TestRekor::new(), TestCtLog::new());
//! let trust = trusted_root_json(&fulcio, &rekor, Some(&ct));      // or trust_root_yaml(..)
//! let image = registry.push_image("test/app", "v1", "seed").await;
//! let leaf = fulcio.issue(&LeafSpec { sct: Some(&ct), ..LeafSpec::email("dev@example.com", t) });
//! let payload = simple_signing_payload(&format!("{}/test/app", registry.host()), &image, None);
//! let layer = SignatureLayer::keyless(&payload, &leaf, &fulcio, &rekor, t + 1, 0);
//! push_legacy_signatures(&registry, "test/app", &image, "", &[layer]).await;
//! // or: push_bundle_referrer(&registry, "test/app", &image,
//! //                          &keyless_bundle(&image, &leaf, &rekor, t + 1, 0)).await;
//! ```
//!
//! Times are Unix seconds. Certificate authorities and logs made here are valid from
//! [`VALID_FROM`] (2000-01-01) on, so any signing time after that works.

pub mod bundle;
pub mod ct;
pub mod forgery;
pub mod fulcio;
pub mod json;
pub mod keys;
pub mod legacy;
pub mod payload;
pub mod rekor;
pub mod trust;
pub mod vector;

// Each test crate uses some of these re-exports.
#[allow(unused_imports)]
pub use bundle::{
    BundleMaterial, bundle_v03, bundle_v03_json, keyed_bundle, keyless_bundle, push_bundle_referrer,
};
#[allow(unused_imports)]
pub use ct::{SctSpec, TestCtLog};
#[allow(unused_imports)]
pub use fulcio::{FulcioLeaf, LeafSpec, San, TestFulcio};
#[allow(unused_imports)]
pub use keys::{Hash, KeyKind, KeyPair, verify_openssl};
#[allow(unused_imports)]
pub use legacy::{
    LegacyManifest, SignatureLayer, push_legacy_manifest, push_legacy_signatures,
    push_raw_manifest, sig_tag,
};
#[allow(unused_imports)]
pub use payload::{Envelope, dsse_envelope, in_toto_statement, simple_signing_payload};
#[allow(unused_imports)]
pub use rekor::{RekorEntry, TestRekor};
#[allow(unused_imports)]
pub use trust::{trust_root_yaml, trusted_root_json};
#[allow(unused_imports)]
pub use vector::{Vector, push_vector};

/// 2000-01-01T00:00:00Z: the start of every validity window the toolkit writes (CA
/// certificates, trust-root `validFor` of CAs and logs).
pub const VALID_FROM: i64 = 946_684_800;

/// 2049-12-31T23:59:59Z: the end of the toolkit's CA certificates (the last UTCTime year).
pub const VALID_UNTIL: i64 = 2_524_607_999;

/// The current time in Unix seconds.
pub fn unix_now() -> i64 {
    jiff::Timestamp::now().as_second()
}

/// Standard base64, as every cosign and sigstore format uses it.
pub fn b64(bytes: impl AsRef<[u8]>) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Decodes standard base64, panicking with the input on error.
pub fn unb64(text: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .unwrap_or_else(|e| panic!("not base64 ({e}): {text:?}"))
}

/// Lower-case hex sha256.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// PEM text of one DER block (64-character lines, trailing newline), as openssl writes it.
pub fn pem(label: &str, der: &[u8]) -> String {
    let encoded = b64(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in encoded.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// The (label, DER) blocks of PEM text, in order. Written here rather than borrowed from
/// verity, which is what the toolkit's output is checked against.
pub fn pem_blocks(text: &str) -> Vec<(String, Vec<u8>)> {
    let mut blocks = Vec::new();
    let mut current: Option<(String, String)> = None;
    for line in text.lines().map(str::trim) {
        if let Some(label) = line
            .strip_prefix("-----BEGIN ")
            .and_then(|rest| rest.strip_suffix("-----"))
        {
            current = Some((label.to_string(), String::new()));
        } else if line.starts_with("-----END ") {
            let (label, body) = current.take().expect("PEM END without BEGIN");
            blocks.push((label, unb64(&body)));
        } else if let Some((_, body)) = current.as_mut() {
            body.push_str(line);
        }
    }
    assert!(current.is_none(), "PEM block without END: {text}");
    blocks
}

/// The DER of the only PEM block of `text`, which must carry `label`.
pub fn pem_der(text: &str, label: &str) -> Vec<u8> {
    let blocks = pem_blocks(text);
    assert_eq!(blocks.len(), 1, "expected one PEM block in {text}");
    assert_eq!(blocks[0].0, label, "unexpected PEM label in {text}");
    blocks[0].1.clone()
}

/// RFC 3339 text of Unix seconds (`2000-01-01T00:00:00Z`).
pub fn rfc3339(secs: i64) -> String {
    jiff::Timestamp::from_second(secs).unwrap().to_string()
}
