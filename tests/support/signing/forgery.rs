//! One-change forgeries: each function tampers exactly one thing of a genuine signature, so a
//! test that sees it rejected knows which check did it.
//!
//! | forgery | function |
//! |---|---|
//! | a `.sig` manifest copied unchanged onto another digest's tag | [`copy_sig_manifest`] |
//! | the payload's digest swapped, nothing re-signed | [`swap_payload_digest`] |
//! | a payload of the attacker's own, with a victim's certificate, chain and bundle | [`with_stolen_evidence`] |
//! | the Rekor bundle annotation removed | [`strip_bundle`] |
//! | `integratedTime` ± n in a bundle annotation or a Sigstore bundle | [`shift_annotation_time`], [`shift_bundle_time`] |
//! | a Sigstore bundle without its `tlogEntries` | [`strip_tlog_entries`] |
//! | a Sigstore bundle whose DSSE payload was replaced | [`replace_dsse_payload`] |
//! | a v3 bundle attached to another digest | [`super::push_bundle_referrer`] with that digest |

use serde_json::Value;
use verity::image::Digest;

use super::legacy::{SignatureLayer, sig_tag};
use crate::support::registry::TestRegistry;

/// Copies the `.sig` manifest of `from` byte for byte to the signature tag of `to` in `repo`
/// (the payload still names `from`). Returns the manifest digest (the same for both tags).
pub async fn copy_sig_manifest(
    registry: &TestRegistry,
    repo: &str,
    from: &Digest,
    to: &Digest,
) -> Digest {
    let (media_type, bytes) = registry
        .fetch_manifest(repo, &sig_tag("", from))
        .await
        .unwrap_or_else(|| panic!("{repo} has no signature manifest for {from}"));
    registry
        .push_manifest(repo, &sig_tag("", to), &media_type, &bytes)
        .await
}

/// `layer` with the payload's `docker-manifest-digest` replaced by `new` (the bytes otherwise
/// unchanged) and everything else kept: the signature no longer covers the payload.
pub fn swap_payload_digest(layer: &SignatureLayer, new: &Digest) -> SignatureLayer {
    let parsed: Value = serde_json::from_slice(&layer.payload).unwrap();
    let old = parsed["critical"]["image"]["docker-manifest-digest"]
        .as_str()
        .expect("a simple-signing payload names a digest")
        .to_string();
    let text = String::from_utf8(layer.payload.clone()).unwrap();
    assert_eq!(
        text.matches(&old).count(),
        1,
        "the payload must name its digest exactly once to swap it"
    );
    SignatureLayer {
        payload: text.replace(&old, &new.to_string()).into_bytes(),
        ..layer.clone()
    }
}

/// `own` (an attacker's payload and its valid signature) carrying the certificate, chain and
/// Rekor bundle of `victim` unchanged.
pub fn with_stolen_evidence(own: &SignatureLayer, victim: &SignatureLayer) -> SignatureLayer {
    SignatureLayer {
        certificate_pem: victim.certificate_pem.clone(),
        chain_pem: victim.chain_pem.clone(),
        rekor_bundle: victim.rekor_bundle.clone(),
        ..own.clone()
    }
}

/// `layer` without its `dev.sigstore.cosign/bundle` annotation.
pub fn strip_bundle(layer: &SignatureLayer) -> SignatureLayer {
    SignatureLayer {
        rekor_bundle: None,
        ..layer.clone()
    }
}

/// A `dev.sigstore.cosign/bundle` annotation with `Payload.integratedTime` moved by `delta`
/// (the SET unchanged).
pub fn shift_annotation_time(annotation: &str, delta: i64) -> String {
    let mut value: Value = serde_json::from_str(annotation).unwrap();
    let time = value["Payload"]["integratedTime"]
        .as_i64()
        .expect("the annotation has an integer Payload.integratedTime");
    value["Payload"]["integratedTime"] = (time + delta).into();
    value.to_string()
}

/// A Sigstore bundle with every `tlogEntries[].integratedTime` moved by `delta` (kept a string
/// or a number as it was; SETs unchanged).
pub fn shift_bundle_time(bundle: &[u8], delta: i64) -> Vec<u8> {
    let mut value: Value = serde_json::from_slice(bundle).unwrap();
    let entries = value["verificationMaterial"]["tlogEntries"]
        .as_array_mut()
        .expect("the bundle has tlogEntries");
    assert!(!entries.is_empty(), "the bundle has no tlog entry to shift");
    for entry in entries {
        let time = &mut entry["integratedTime"];
        *time = match time {
            Value::String(text) => {
                Value::String((text.parse::<i64>().unwrap() + delta).to_string())
            }
            Value::Number(n) => (n.as_i64().unwrap() + delta).into(),
            other => panic!("integratedTime is {other}"),
        };
    }
    value.to_string().into_bytes()
}

/// A Sigstore bundle without `verificationMaterial.tlogEntries`.
pub fn strip_tlog_entries(bundle: &[u8]) -> Vec<u8> {
    let mut value: Value = serde_json::from_slice(bundle).unwrap();
    value["verificationMaterial"]
        .as_object_mut()
        .expect("the bundle has verificationMaterial")
        .remove("tlogEntries");
    value.to_string().into_bytes()
}

/// A Sigstore bundle whose DSSE payload is `payload` (signatures unchanged).
pub fn replace_dsse_payload(bundle: &[u8], payload: &[u8]) -> Vec<u8> {
    let mut value: Value = serde_json::from_slice(bundle).unwrap();
    assert!(
        value["dsseEnvelope"].is_object(),
        "the bundle has no dsseEnvelope"
    );
    value["dsseEnvelope"]["payload"] = Value::String(super::b64(payload));
    value.to_string().into_bytes()
}
