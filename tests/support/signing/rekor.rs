//! A test Rekor (v1) transparency log: its key is an openssl-made ECDSA P-256 key and every
//! signature it makes (SETs, checkpoints) comes from the `openssl` CLI.
//!
//! - Bodies ([`hashedrekord_body`], [`rekord_body`], [`dsse_body`]) are Rekor's canonical JSON
//!   (keys sorted, compact) of the 0.0.1 kinds; verifiers are base64 of the PEM public key or
//!   certificate, as Rekor stores them.
//! - The SET (SignedEntryTimestamp, inclusion promise) is ECDSA-SHA256 over
//!   `{"body":"<b64 body>","integratedTime":N,"logID":"<hex>","logIndex":N}`.
//! - Inclusion proofs are RFC 6962 audit paths in a small tree ([`TestRekor::tree_size`] leaves,
//!   7 by default) holding the entry at `log_index % tree_size` among filler leaves, so the path
//!   is never empty; the checkpoint is a signed note (`<origin>\n<size>\n<b64 root>\n`, then
//!   `— <name> <b64(key hint ‖ signature)>`) whose key hint is the first 4 bytes of the log id.

use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};
use verity::verify::trust::{LogKey, TimeRange};

use super::keys::{Hash, KeyKind, KeyPair};
use super::payload::Envelope;

/// The base URL of [`TestRekor::new`].
pub const TEST_REKOR_URL: &str = "https://rekor.test";

/// A test transparency log.
pub struct TestRekor {
    key: KeyPair,
    log_id: Vec<u8>,
    base_url: String,
    /// The checkpoint origin line: `<host> - <tree id>`.
    origin: String,
    tree_size: u64,
}

/// An RFC 6962 inclusion proof with its signed checkpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InclusionProof {
    /// The entry's index inside the tree (not the log-wide index).
    pub log_index: i64,
    pub tree_size: i64,
    pub root_hash: Vec<u8>,
    /// Sibling hashes from the leaf up.
    pub hashes: Vec<Vec<u8>>,
    /// The signed note.
    pub checkpoint: String,
}

/// One entry of a [`TestRekor`], with everything a verifier may be shown.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RekorEntry {
    /// The canonicalized body (JSON bytes).
    pub body: Vec<u8>,
    pub kind: String,
    pub version: String,
    pub integrated_time: i64,
    pub log_index: i64,
    /// sha256 of the log's SubjectPublicKeyInfo DER.
    pub log_id: Vec<u8>,
    /// The SignedEntryTimestamp; `None` once stripped.
    pub set: Option<Vec<u8>>,
    /// `None` once stripped.
    pub inclusion_proof: Option<InclusionProof>,
}

impl Default for TestRekor {
    fn default() -> Self {
        Self::new()
    }
}

impl TestRekor {
    /// A log at [`TEST_REKOR_URL`] with a fresh ECDSA P-256 key.
    pub fn new() -> Self {
        Self::with_key(KeyPair::generate(KeyKind::EcdsaP256), TEST_REKOR_URL)
    }

    /// A log with `key` (ECDSA signs with sha256, Ed25519 the message itself) at `base_url`.
    pub fn with_key(key: KeyPair, base_url: &str) -> Self {
        let log_id = Sha256::digest(key.spki_der()).to_vec();
        let host = base_url
            .split_once("://")
            .map_or(base_url, |(_, rest)| rest)
            .trim_end_matches('/');
        // Rekor's origin is "<hostname> - <tree id>"; the id only has to be stable per log.
        let tree_id = u64::from_be_bytes(log_id[..8].try_into().unwrap()) >> 1;
        TestRekor {
            origin: format!("{host} - {tree_id}"),
            key,
            log_id,
            base_url: base_url.to_string(),
            tree_size: 7,
        }
    }

    /// Changes the size of the tree inclusion proofs are made in (at least 1).
    pub fn tree_size(mut self, size: u64) -> Self {
        assert!(size >= 1, "a tree has at least one leaf");
        self.tree_size = size;
        self
    }

    pub fn key(&self) -> &KeyPair {
        &self.key
    }

    pub fn public_key_pem(&self) -> &str {
        self.key.public_pem()
    }

    pub fn public_key_der(&self) -> &[u8] {
        self.key.spki_der()
    }

    pub fn log_id(&self) -> &[u8] {
        &self.log_id
    }

    /// Hex sha256 of the SPKI DER: the `logID` of cosign's bundle annotation.
    pub fn log_id_hex(&self) -> String {
        hex::encode(&self.log_id)
    }

    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The checkpoint origin line.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The log as verity's trust material holds it, valid from [`super::VALID_FROM`].
    pub fn log_key(&self) -> LogKey {
        LogKey {
            base_url: self.base_url.clone(),
            log_id: self.log_id.clone(),
            spki_der: self.key.spki_der().to_vec(),
            valid_for: TimeRange {
                start: Some(super::VALID_FROM),
                end: None,
            },
        }
    }

    /// A `hashedrekord` entry for a signature over `payload` (sha256 of it is recorded).
    /// `verifier_pem` is the signer's PEM public key or certificate.
    pub fn hashedrekord_entry(
        &self,
        payload: &[u8],
        signature: &[u8],
        verifier_pem: &str,
        integrated_time: i64,
        log_index: i64,
    ) -> RekorEntry {
        let body = hashedrekord_body("sha256", &Sha256::digest(payload), signature, verifier_pem);
        self.entry(body, integrated_time, log_index)
    }

    /// A `hashedrekord` entry recording `digest` made with `algorithm` (`sha256`, `sha384`,
    /// `sha512`) rather than hashing a payload here.
    pub fn hashedrekord_entry_for_digest(
        &self,
        algorithm: &str,
        digest: &[u8],
        signature: &[u8],
        verifier_pem: &str,
        integrated_time: i64,
        log_index: i64,
    ) -> RekorEntry {
        let body = hashedrekord_body(algorithm, digest, signature, verifier_pem);
        self.entry(body, integrated_time, log_index)
    }

    /// A `rekord` entry (x509 format) for a signature over `payload`.
    pub fn rekord_entry(
        &self,
        payload: &[u8],
        signature: &[u8],
        verifier_pem: &str,
        integrated_time: i64,
        log_index: i64,
    ) -> RekorEntry {
        self.entry(
            rekord_body(payload, signature, verifier_pem),
            integrated_time,
            log_index,
        )
    }

    /// A `dsse` entry for `envelope`, every signature recorded with `verifier_pem`.
    pub fn dsse_entry(
        &self,
        envelope: &Envelope,
        verifier_pem: &str,
        integrated_time: i64,
        log_index: i64,
    ) -> RekorEntry {
        self.entry(
            dsse_body(envelope, verifier_pem),
            integrated_time,
            log_index,
        )
    }

    /// Logs any body (kind and version are read from it when it is JSON that has them): with
    /// a SET and an inclusion proof.
    pub fn entry(&self, body: Vec<u8>, integrated_time: i64, log_index: i64) -> RekorEntry {
        assert!(log_index >= 0, "log indexes are not negative");
        let parsed: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let field = |name: &str| parsed[name].as_str().unwrap_or_default().to_string();
        let set = self.sign_set(&body, integrated_time, log_index);
        let inclusion_proof = self.inclusion_proof(&body, log_index);
        RekorEntry {
            kind: field("kind"),
            version: field("apiVersion"),
            integrated_time,
            log_index,
            log_id: self.log_id.clone(),
            set: Some(set),
            inclusion_proof: Some(inclusion_proof),
            body,
        }
    }

    /// The SignedEntryTimestamp over `body` at `integrated_time` and `log_index`, made by
    /// openssl with the log key.
    pub fn sign_set(&self, body: &[u8], integrated_time: i64, log_index: i64) -> Vec<u8> {
        let payload = set_payload(body, integrated_time, &self.log_id_hex(), log_index);
        self.key
            .sign_openssl(payload.as_bytes(), Hash::Sha256, false)
    }

    /// An inclusion proof for `body` in a tree of [`TestRekor::tree_size`] leaves, with a
    /// checkpoint signed by openssl.
    pub fn inclusion_proof(&self, body: &[u8], log_index: i64) -> InclusionProof {
        let size = usize::try_from(self.tree_size).unwrap();
        let index = usize::try_from(log_index).unwrap() % size;
        let leaves: Vec<Vec<u8>> = (0..size)
            .map(|i| {
                if i == index {
                    body.to_vec()
                } else {
                    format!("{} filler leaf {i}", self.origin).into_bytes()
                }
            })
            .collect();
        let root = tree_hash(&leaves);
        InclusionProof {
            log_index: i64::try_from(index).unwrap(),
            tree_size: i64::try_from(size).unwrap(),
            hashes: audit_path(index, &leaves),
            checkpoint: self.checkpoint(self.tree_size, &root),
            root_hash: root.to_vec(),
        }
    }

    /// A checkpoint for a tree of `tree_size` with `root`, signed by the log.
    pub fn checkpoint(&self, tree_size: u64, root: &[u8]) -> String {
        let text = format!("{}\n{tree_size}\n{}\n", self.origin, super::b64(root));
        self.sign_note(&text, &self.key)
    }

    /// `text` (ending in a newline) as a signed note: a signature line by `key` under this
    /// log's name and key hint. Another key makes a forged note that claims to be the log's.
    pub fn sign_note(&self, text: &str, key: &KeyPair) -> String {
        assert!(text.ends_with('\n'), "a note text ends with a newline");
        let mut signature = self.log_id[..4].to_vec();
        signature.extend(key.sign_openssl(text.as_bytes(), Hash::Sha256, false));
        let name = self.origin.split(' ').next().unwrap();
        format!("{text}\n\u{2014} {name} {}\n", super::b64(signature))
    }
}

/// The JSON a SET signs (keys sorted, no whitespace; every value needs no escaping).
pub fn set_payload(body: &[u8], integrated_time: i64, log_id_hex: &str, log_index: i64) -> String {
    format!(
        r#"{{"body":"{}","integratedTime":{integrated_time},"logID":"{log_id_hex}","logIndex":{log_index}}}"#,
        super::b64(body)
    )
}

/// A `hashedrekord` 0.0.1 body.
pub fn hashedrekord_body(
    algorithm: &str,
    digest: &[u8],
    signature: &[u8],
    verifier_pem: &str,
) -> Vec<u8> {
    super::json::canonical(&json!({
        "apiVersion": "0.0.1",
        "kind": "hashedrekord",
        "spec": {
            "data": {"hash": {"algorithm": algorithm, "value": hex::encode(digest)}},
            "signature": {
                "content": super::b64(signature),
                "publicKey": {"content": super::b64(verifier_pem)},
            },
        },
    }))
    .into_bytes()
}

/// A `rekord` 0.0.1 body (x509 format: the verifier is a PEM key or certificate).
pub fn rekord_body(payload: &[u8], signature: &[u8], verifier_pem: &str) -> Vec<u8> {
    super::json::canonical(&json!({
        "apiVersion": "0.0.1",
        "kind": "rekord",
        "spec": {
            "data": {"hash": {"algorithm": "sha256", "value": super::sha256_hex(payload)}},
            "signature": {
                "content": super::b64(signature),
                "format": "x509",
                "publicKey": {"content": super::b64(verifier_pem)},
            },
        },
    }))
    .into_bytes()
}

/// A `dsse` 0.0.1 body: sha256 of the payload, the envelope hash as Rekor computes it
/// ([`Envelope::rekor_hash_hex`]), and each signature with `verifier_pem`.
pub fn dsse_body(envelope: &Envelope, verifier_pem: &str) -> Vec<u8> {
    let signatures: Vec<Value> = envelope
        .signatures
        .iter()
        .map(|s| {
            json!({
                "signature": super::b64(&s.sig),
                "verifier": super::b64(verifier_pem),
            })
        })
        .collect();
    super::json::canonical(&json!({
        "apiVersion": "0.0.1",
        "kind": "dsse",
        "spec": {
            "envelopeHash": {"algorithm": "sha256", "value": envelope.rekor_hash_hex()},
            "payloadHash": {"algorithm": "sha256", "value": super::sha256_hex(&envelope.payload)},
            "signatures": signatures,
        },
    }))
    .into_bytes()
}

impl RekorEntry {
    /// The `dev.sigstore.cosign/bundle` annotation:
    /// `{"SignedEntryTimestamp":B64,"Payload":{"body":B64,"integratedTime":N,"logIndex":N,"logID":HEX}}`
    /// (keys in cosign's order). Panics when the SET was stripped: the annotation has no form
    /// without one.
    pub fn cosign_annotation(&self) -> String {
        let set = self
            .set
            .as_ref()
            .expect("the cosign bundle annotation needs a SET");
        format!(
            r#"{{"SignedEntryTimestamp":"{}","Payload":{{"body":"{}","integratedTime":{},"logIndex":{},"logID":"{}"}}}}"#,
            super::b64(set),
            super::b64(&self.body),
            self.integrated_time,
            self.log_index,
            hex::encode(&self.log_id)
        )
    }

    /// The entry as a Sigstore bundle's `tlogEntries[]` item (protobuf JSON: int64 as strings,
    /// bytes as base64).
    pub fn bundle_json(&self) -> Value {
        let mut entry = json!({
            "logIndex": self.log_index.to_string(),
            "logId": {"keyId": super::b64(&self.log_id)},
            "kindVersion": {"kind": self.kind, "version": self.version},
            "integratedTime": self.integrated_time.to_string(),
            "canonicalizedBody": super::b64(&self.body),
        });
        if let Some(set) = &self.set {
            entry["inclusionPromise"] = json!({"signedEntryTimestamp": super::b64(set)});
        }
        if let Some(proof) = &self.inclusion_proof {
            entry["inclusionProof"] = json!({
                "logIndex": proof.log_index.to_string(),
                "rootHash": super::b64(&proof.root_hash),
                "treeSize": proof.tree_size.to_string(),
                "hashes": proof.hashes.iter().map(super::b64).collect::<Vec<_>>(),
                "checkpoint": {"envelope": proof.checkpoint},
            });
        }
        entry
    }

    /// A copy whose integrated time moved by `delta` seconds, SET unchanged (so it no longer
    /// verifies).
    pub fn with_integrated_time_shifted(&self, delta: i64) -> Self {
        RekorEntry {
            integrated_time: self.integrated_time + delta,
            ..self.clone()
        }
    }

    /// A copy without the SET.
    pub fn without_set(&self) -> Self {
        RekorEntry {
            set: None,
            ..self.clone()
        }
    }

    /// A copy without the inclusion proof.
    pub fn without_inclusion_proof(&self) -> Self {
        RekorEntry {
            inclusion_proof: None,
            ..self.clone()
        }
    }
}

// RFC 6962 §2.1 Merkle tree hashing, written here independently of verity's `merkle`.

fn leaf_hash(leaf: &[u8]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update([0x00]);
    hasher.update(leaf);
    hasher.finalize().into()
}

fn node_hash(left: &[u8], right: &[u8]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update([0x01]);
    hasher.update(left);
    hasher.update(right);
    hasher.finalize().into()
}

/// The largest power of two smaller than `n` (n ≥ 2).
fn split_point(n: usize) -> usize {
    let mut k = 1;
    while k << 1 < n {
        k <<= 1;
    }
    k
}

/// MTH(D[n]) for n ≥ 1.
pub fn tree_hash(leaves: &[Vec<u8>]) -> [u8; 32] {
    match leaves {
        [] => panic!("tree_hash of no leaves"),
        [leaf] => leaf_hash(leaf),
        _ => {
            let k = split_point(leaves.len());
            node_hash(&tree_hash(&leaves[..k]), &tree_hash(&leaves[k..]))
        }
    }
}

/// PATH(m, D[n]): the audit path of leaf `m`, from the leaf's sibling up.
pub fn audit_path(m: usize, leaves: &[Vec<u8>]) -> Vec<Vec<u8>> {
    if leaves.len() <= 1 {
        return Vec::new();
    }
    let k = split_point(leaves.len());
    let (mut path, sibling) = if m < k {
        (audit_path(m, &leaves[..k]), tree_hash(&leaves[k..]))
    } else {
        (audit_path(m - k, &leaves[k..]), tree_hash(&leaves[..k]))
    };
    path.push(sibling.to_vec());
    path
}
