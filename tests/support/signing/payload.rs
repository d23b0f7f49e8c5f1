//! What gets signed: cosign's simple-signing payload (legacy `.sig` signatures) and, for cosign
//! v3, an in-toto statement inside a DSSE envelope.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use verity::image::Digest;

use super::keys::{Hash, KeyPair};

/// The `type` of a cosign simple-signing payload.
pub const SIMPLE_SIGNING_TYPE: &str = "cosign container image signature";
/// The DSSE payload type of in-toto statements.
pub const IN_TOTO_PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";
/// The in-toto statement type cosign v3 writes.
pub const IN_TOTO_STATEMENT_V1: &str = "https://in-toto.io/Statement/v1";
/// The predicate type of `cosign sign` v3 (a signature, no predicate body).
pub const COSIGN_SIGN_PREDICATE: &str = "https://sigstore.dev/cosign/sign/v1";

/// The payload cosign signs for `digest`, byte for byte as cosign writes it:
/// `{"critical":{"identity":{"docker-reference":R},"image":{"docker-manifest-digest":D},"type":"cosign container image signature"},"optional":O}`,
/// with `optional` `null` or the string map (keys sorted, as Go marshals maps).
pub fn simple_signing_payload(
    docker_reference: &str,
    digest: &Digest,
    optional: Option<&BTreeMap<String, String>>,
) -> Vec<u8> {
    let optional = match optional {
        None => "null".to_string(),
        Some(map) => {
            let members: Vec<String> = map
                .iter()
                .map(|(k, v)| format!("{}:{}", quote(k), quote(v)))
                .collect();
            format!("{{{}}}", members.join(","))
        }
    };
    format!(
        r#"{{"critical":{{"identity":{{"docker-reference":{}}},"image":{{"docker-manifest-digest":{}}},"type":{}}},"optional":{optional}}}"#,
        quote(docker_reference),
        quote(&digest.to_string()),
        quote(SIMPLE_SIGNING_TYPE),
    )
    .into_bytes()
}

fn quote(text: &str) -> String {
    serde_json::to_string(text).unwrap()
}

/// The in-toto Statement v1 of `cosign sign` v3 for `digest`, byte for byte as cosign writes
/// it: one subject with the sha256 digest and empty annotations, predicate type
/// [`COSIGN_SIGN_PREDICATE`], no predicate.
pub fn in_toto_statement(digest: &Digest) -> Vec<u8> {
    format!(
        r#"{{"_type":"{IN_TOTO_STATEMENT_V1}","subject":[{{"digest":{{"{}":"{}"}},"annotations":{{}}}}],"predicateType":"{COSIGN_SIGN_PREDICATE}"}}"#,
        digest.algorithm().as_str(),
        digest.hex()
    )
    .into_bytes()
}

/// DSSE pre-authentication encoding: `DSSEv1 <len(type)> <type> <len(payload)> <payload>`.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(b"DSSEv1 ");
    out.extend_from_slice(payload_type.len().to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload_type.as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload.len().to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload);
    out
}

/// One DSSE signature.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnvelopeSignature {
    pub sig: Vec<u8>,
    /// Written only when `Some` (cosign writes none).
    pub keyid: Option<String>,
}

/// A DSSE envelope.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Envelope {
    pub payload: Vec<u8>,
    pub payload_type: String,
    pub signatures: Vec<EnvelopeSignature>,
}

impl Envelope {
    /// An envelope over `payload` whose one signature `sign` makes over the PAE.
    pub fn signed_with(
        payload: &[u8],
        payload_type: &str,
        sign: impl FnOnce(&[u8]) -> Vec<u8>,
    ) -> Self {
        let sig = sign(&pae(payload_type, payload));
        Envelope {
            payload: payload.to_vec(),
            payload_type: payload_type.to_string(),
            signatures: vec![EnvelopeSignature { sig, keyid: None }],
        }
    }

    /// The bytes the signatures cover.
    pub fn pae(&self) -> Vec<u8> {
        pae(&self.payload_type, &self.payload)
    }

    /// The first signature.
    pub fn signature(&self) -> &[u8] {
        &self.signatures[0].sig
    }

    /// The envelope as a bundle's `dsseEnvelope` (protobuf JSON: bytes as base64).
    pub fn to_json(&self) -> Value {
        let signatures: Vec<Value> = self
            .signatures
            .iter()
            .map(|s| {
                let mut object = json!({"sig": super::b64(&s.sig)});
                if let Some(keyid) = &s.keyid {
                    object["keyid"] = Value::String(keyid.clone());
                }
                object
            })
            .collect();
        json!({
            "payload": super::b64(&self.payload),
            "payloadType": self.payload_type,
            "signatures": signatures,
        })
    }

    /// The envelope as Rekor hashes it for a `dsse` entry's `envelopeHash`: compact JSON with
    /// sorted keys, and `keyid` only when not empty (Go's `omitempty`).
    pub fn rekor_json(&self) -> String {
        let signatures: Vec<Value> = self
            .signatures
            .iter()
            .map(|s| match s.keyid.as_deref().filter(|k| !k.is_empty()) {
                Some(keyid) => json!({"keyid": keyid, "sig": super::b64(&s.sig)}),
                None => json!({"sig": super::b64(&s.sig)}),
            })
            .collect();
        super::json::canonical(&json!({
            "payload": super::b64(&self.payload),
            "payloadType": self.payload_type,
            "signatures": signatures,
        }))
    }

    /// Hex sha256 of [`Envelope::rekor_json`].
    pub fn rekor_hash_hex(&self) -> String {
        super::sha256_hex(self.rekor_json().as_bytes())
    }
}

/// An in-toto envelope over `statement`, signed over the PAE by `key` with the openssl CLI
/// (sha256 for ECDSA and RSA PKCS#1 v1.5), as `cosign sign` v3 does.
pub fn dsse_envelope(statement: &[u8], key: &KeyPair) -> Envelope {
    Envelope::signed_with(statement, IN_TOTO_PAYLOAD_TYPE, |pae| {
        key.sign_openssl(pae, Hash::Sha256, false)
    })
}
