//! Rekor transparency-log entries, checked offline: the log key, the signed entry timestamp
//! (SET), the inclusion proof and its signed checkpoint, and what the entry body records.
//!
//! Two carriers hold entries: the legacy cosign layer annotation `dev.sigstore.cosign/bundle`
//! ([`RekorBundle`]) and the `tlogEntries` of a Sigstore bundle (see `bundle.rs`); both become a
//! [`TlogEntry`].

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest as _, Sha256};
use x509_cert::Certificate;
use x509_cert::der::{Decode, Encode};

use super::bundle::DsseEnvelope;
use super::checkpoint::{Checkpoint, CheckpointError};
use super::key::{HashAlgorithm, KeyError, SignatureError, short_fingerprint};
use super::merkle::{self, MerkleError};
use super::pem;
use super::trust::{LogKey, TimeRange};

/// The legacy cosign layer annotation `dev.sigstore.cosign/bundle`:
/// `{"SignedEntryTimestamp": b64, "Payload": {"body": b64, "integratedTime": N, "logIndex": N, "logID": hex}}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RekorBundle {
    pub signed_entry_timestamp: Vec<u8>,
    pub body: Vec<u8>,
    pub integrated_time: i64,
    pub log_index: i64,
    pub log_id: Vec<u8>,
}

impl RekorBundle {
    pub fn from_annotation(json: &str) -> Result<Self, RekorError> {
        #[derive(Deserialize)]
        #[serde(rename_all = "PascalCase")]
        struct Annotation {
            signed_entry_timestamp: Option<String>,
            payload: Option<Payload>,
        }
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Payload {
            body: Option<String>,
            integrated_time: Option<i64>,
            log_index: Option<i64>,
            #[serde(rename = "logID")]
            log_id: Option<String>,
        }
        let field = |name: &'static str| RekorError::BundleField {
            field: name,
            problem: "is missing",
        };
        let annotation: Annotation =
            serde_json::from_str(json).map_err(|e| RekorError::BundleJson {
                cause: e.to_string(),
            })?;
        let set = annotation
            .signed_entry_timestamp
            .ok_or_else(|| field("SignedEntryTimestamp"))?;
        let payload = annotation.payload.ok_or_else(|| field("Payload"))?;
        let body = payload.body.ok_or_else(|| field("Payload.body"))?;
        let log_id = payload.log_id.ok_or_else(|| field("Payload.logID"))?;
        let invalid = |name: &'static str, problem: &'static str| RekorError::BundleField {
            field: name,
            problem,
        };
        Ok(RekorBundle {
            signed_entry_timestamp: STANDARD
                .decode(set.as_bytes())
                .map_err(|_| invalid("SignedEntryTimestamp", "is not base64"))?,
            body: STANDARD
                .decode(body.as_bytes())
                .map_err(|_| invalid("Payload.body", "is not base64"))?,
            integrated_time: payload
                .integrated_time
                .ok_or_else(|| field("Payload.integratedTime"))?,
            log_index: payload.log_index.ok_or_else(|| field("Payload.logIndex"))?,
            log_id: hex::decode(&log_id).map_err(|_| invalid("Payload.logID", "is not hex"))?,
        })
    }

    pub fn to_tlog_entry(&self) -> TlogEntry {
        TlogEntry {
            log_index: self.log_index,
            log_id: self.log_id.clone(),
            integrated_time: self.integrated_time,
            canonicalized_body: self.body.clone(),
            signed_entry_timestamp: Some(self.signed_entry_timestamp.clone()),
            inclusion_proof: None,
            kind_version: None,
        }
    }
}

/// One log entry as both carriers hold it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlogEntry {
    /// The log-wide index the SET covers.
    pub log_index: i64,
    pub log_id: Vec<u8>,
    /// Claimed by the entry; authenticated only by the SET.
    pub integrated_time: i64,
    pub canonicalized_body: Vec<u8>,
    pub signed_entry_timestamp: Option<Vec<u8>>,
    pub inclusion_proof: Option<InclusionProof>,
    /// The bundle's `kindVersion`, when it has one; must agree with the body.
    pub kind_version: Option<KindVersion>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KindVersion {
    pub kind: String,
    pub version: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InclusionProof {
    /// The index inside the tree the proof is for. Rekor v1 shards its log, so this differs
    /// from the entry's log-wide index.
    pub log_index: i64,
    pub root_hash: Vec<u8>,
    pub tree_size: i64,
    pub hashes: Vec<Vec<u8>>,
    /// The signed note text of the checkpoint.
    pub checkpoint: String,
}

/// An entry whose signatures verified against a trusted log key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedTlogEntry {
    pub log_index: i64,
    /// The integrated time, present only when the SET verified: an inclusion proof does not
    /// cover it, so without a SET the entry's claim is not evidence of the signing time.
    pub integrated_time: Option<i64>,
    pub log_base_url: String,
    pub body: RekorBody,
}

/// What a Rekor entry records (the `spec` of its canonicalized body). Verifiers are the DER
/// of the PEM certificate or public key the body holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RekorBody {
    HashedRekord {
        digest_algorithm: String,
        digest: Vec<u8>,
        signature: Vec<u8>,
        verifier: Vec<u8>,
    },
    Rekord {
        data_hash: Vec<u8>,
        signature: Vec<u8>,
        verifier: Vec<u8>,
    },
    Dsse {
        payload_hash: Vec<u8>,
        envelope_hash: Vec<u8>,
        /// (signature, verifier DER) pairs.
        signatures: Vec<(Vec<u8>, Vec<u8>)>,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum RekorError {
    #[error("invalid cosign bundle annotation JSON: {cause}")]
    BundleJson { cause: String },
    #[error("cosign bundle annotation field {field} {problem}")]
    BundleField {
        field: &'static str,
        problem: &'static str,
    },
    #[error("rekor entry log id {found} is not in the trust root (known: {known})")]
    UnknownLog { found: String, known: String },
    #[error(
        "rekor log {log} key is valid for {valid_for}, which does not contain {}, the entry's integrated time {integrated_time}",
        rfc3339(*integrated_time)
    )]
    LogKeyNotValidAt {
        log: String,
        valid_for: TimeRange,
        integrated_time: i64,
    },
    #[error("rekor log {log} key in the trust root is unusable: {source}")]
    LogKey { log: String, source: KeyError },
    #[error("rekor entry {log_index} has no signed entry timestamp (SET), and one is required")]
    SetMissing { log_index: i64 },
    #[error(
        "rekor entry {log_index} has neither a signed entry timestamp (SET) nor an inclusion proof"
    )]
    NoProof { log_index: i64 },
    #[error(
        "rekor entry {log_index} signed entry timestamp (SET) does not verify with the key of {log} (integrated time {integrated_time}): {source}"
    )]
    SetInvalid {
        log_index: i64,
        integrated_time: i64,
        log: String,
        source: SignatureError,
    },
    #[error("rekor entry inclusion proof {field} is {found} (expected {expected})")]
    ProofField {
        field: &'static str,
        found: String,
        expected: &'static str,
    },
    #[error("rekor entry inclusion proof is malformed: {0}")]
    Proof(#[from] MerkleError),
    #[error(
        "rekor entry inclusion proof computes root hash {computed}, but the proof claims {claimed}"
    )]
    RootMismatch { computed: String, claimed: String },
    #[error("rekor checkpoint is invalid: {0}")]
    Checkpoint(#[from] CheckpointError),
    #[error("rekor checkpoint is for {found}, but the inclusion proof is for {expected}")]
    CheckpointMismatch { found: String, expected: String },
    #[error("rekor entry body is not valid JSON: {cause}")]
    BodyJson { cause: String },
    #[error("rekor entry body field {path} {problem}")]
    BodyField { path: String, problem: String },
    #[error(
        "unsupported rekor entry kind {kind} version {version} (supported: hashedrekord, rekord and dsse 0.0.1)"
    )]
    UnsupportedKind { kind: String, version: String },
    #[error("rekor entry body is {found}, but the bundle's kindVersion says {expected}")]
    KindVersionMismatch { found: String, expected: String },
    #[error("rekor entry records a {found} signature, expected {expected}")]
    WrongKind {
        found: &'static str,
        expected: &'static str,
    },
    #[error("rekor entry records {what} {recorded}, but the signature's is {computed}")]
    HashMismatch {
        what: &'static str,
        recorded: String,
        computed: String,
    },
    #[error("rekor entry records hash algorithm \"{found}\" (expected sha256, sha384 or sha512)")]
    HashAlgorithm { found: String },
    #[error("rekor entry records signature {recorded}, not the verified signature {given}")]
    SignatureMismatch { recorded: String, given: String },
    #[error("the verified signature {given} is not one of the DSSE envelope's signatures")]
    NotInEnvelope { given: String },
    #[error("rekor entry records verifier {recorded}, not the signer's {given}")]
    VerifierMismatch { recorded: String, given: String },
}

impl RekorError {
    pub fn reason(&self) -> &'static str {
        match self {
            RekorError::BundleJson { .. } => "rekor_bundle_json",
            RekorError::BundleField { .. } => "rekor_bundle_field",
            RekorError::UnknownLog { .. } => "rekor_unknown_log",
            RekorError::LogKeyNotValidAt { .. } => "rekor_log_key_not_valid",
            RekorError::LogKey { .. } => "rekor_log_key_unusable",
            RekorError::SetMissing { .. } => "rekor_set_missing",
            RekorError::NoProof { .. } => "rekor_no_proof",
            RekorError::SetInvalid { .. } => "rekor_set_invalid",
            RekorError::ProofField { .. } => "rekor_proof_field",
            RekorError::Proof(_) => "rekor_proof_malformed",
            RekorError::RootMismatch { .. } => "rekor_root_mismatch",
            RekorError::Checkpoint(_) => "rekor_checkpoint_invalid",
            RekorError::CheckpointMismatch { .. } => "rekor_checkpoint_mismatch",
            RekorError::BodyJson { .. } => "rekor_body_json",
            RekorError::BodyField { .. } => "rekor_body_field",
            RekorError::UnsupportedKind { .. } => "rekor_unsupported_kind",
            RekorError::KindVersionMismatch { .. } => "rekor_kind_version_mismatch",
            RekorError::WrongKind { .. } => "rekor_wrong_kind",
            RekorError::HashMismatch { .. } => "rekor_hash_mismatch",
            RekorError::HashAlgorithm { .. } => "rekor_hash_algorithm",
            RekorError::SignatureMismatch { .. } => "rekor_signature_mismatch",
            RekorError::NotInEnvelope { .. } => "rekor_signature_not_in_envelope",
            RekorError::VerifierMismatch { .. } => "rekor_verifier_mismatch",
        }
    }
}

/// RFC 3339 text of Unix seconds for messages (the number itself when out of range).
fn rfc3339(secs: i64) -> String {
    jiff::Timestamp::from_second(secs)
        .map(|t| t.to_string())
        .unwrap_or_else(|_| secs.to_string())
}

/// The JSON a Rekor v1 SET signs: keys sorted, no whitespace. Every value is a number, hex or
/// standard base64, so no string needs escaping.
pub fn set_payload(entry: &TlogEntry) -> String {
    format!(
        r#"{{"body":"{}","integratedTime":{},"logID":"{}","logIndex":{}}}"#,
        STANDARD.encode(&entry.canonicalized_body),
        entry.integrated_time,
        hex::encode(&entry.log_id),
        entry.log_index
    )
}

/// Checks an entry against the trusted logs:
/// 1. its log id names a trusted log key; 2. that key was valid at the integrated time;
/// 3. the SET, if present, is the key's signature over [`set_payload`];
/// 4. the inclusion proof, if present, leads from the body's leaf hash to its root hash, and
///    the checkpoint for that root and size is signed by the key;
/// 5. `require_set` demands a SET, and one of SET or proof is always needed; 6. the body parses.
pub fn verify_tlog_entry(
    entry: &TlogEntry,
    logs: &[LogKey],
    require_set: bool,
) -> Result<VerifiedTlogEntry, RekorError> {
    let log = logs
        .iter()
        .find(|log| log.log_id == entry.log_id)
        .ok_or_else(|| RekorError::UnknownLog {
            found: hex::encode(&entry.log_id),
            known: if logs.is_empty() {
                "none".to_string()
            } else {
                logs.iter()
                    .map(|log| format!("{} ({})", hex::encode(&log.log_id), log.base_url))
                    .collect::<Vec<_>>()
                    .join(", ")
            },
        })?;
    if !log.valid_for.contains(entry.integrated_time) {
        return Err(RekorError::LogKeyNotValidAt {
            log: log.base_url.clone(),
            valid_for: log.valid_for,
            integrated_time: entry.integrated_time,
        });
    }
    let key = log.public_key().map_err(|source| RekorError::LogKey {
        log: log.base_url.clone(),
        source,
    })?;
    if require_set && entry.signed_entry_timestamp.is_none() {
        return Err(RekorError::SetMissing {
            log_index: entry.log_index,
        });
    }
    if entry.signed_entry_timestamp.is_none() && entry.inclusion_proof.is_none() {
        return Err(RekorError::NoProof {
            log_index: entry.log_index,
        });
    }

    if let Some(set) = &entry.signed_entry_timestamp {
        key.verify(set_payload(entry).as_bytes(), set, HashAlgorithm::Sha256)
            .map_err(|source| RekorError::SetInvalid {
                log_index: entry.log_index,
                integrated_time: entry.integrated_time,
                log: log.base_url.clone(),
                source,
            })?;
    }

    if let Some(proof) = &entry.inclusion_proof {
        verify_inclusion(entry, proof, log, &key)?;
    }

    let body = RekorBody::parse(&entry.canonicalized_body)?;
    if let Some(expected) = &entry.kind_version {
        let (kind, version) = body.kind_version();
        if expected.kind != kind || expected.version != version {
            return Err(RekorError::KindVersionMismatch {
                found: format!("{kind} {version}"),
                expected: format!("{} {}", expected.kind, expected.version),
            });
        }
    }
    Ok(VerifiedTlogEntry {
        log_index: entry.log_index,
        integrated_time: entry
            .signed_entry_timestamp
            .is_some()
            .then_some(entry.integrated_time),
        log_base_url: log.base_url.clone(),
        body,
    })
}

fn verify_inclusion(
    entry: &TlogEntry,
    proof: &InclusionProof,
    log: &LogKey,
    key: &super::key::PublicKey,
) -> Result<(), RekorError> {
    let index = u64::try_from(proof.log_index).map_err(|_| RekorError::ProofField {
        field: "logIndex",
        found: proof.log_index.to_string(),
        expected: "a non-negative index",
    })?;
    let size = u64::try_from(proof.tree_size).map_err(|_| RekorError::ProofField {
        field: "treeSize",
        found: proof.tree_size.to_string(),
        expected: "a positive size",
    })?;
    let claimed_root: [u8; merkle::HASH_LEN] =
        proof
            .root_hash
            .as_slice()
            .try_into()
            .map_err(|_| RekorError::ProofField {
                field: "rootHash",
                found: format!("{} bytes", proof.root_hash.len()),
                expected: "32 bytes",
            })?;
    let leaf = merkle::leaf_hash(&entry.canonicalized_body);
    let computed = merkle::root_from_inclusion_proof(index, size, &leaf, &proof.hashes)?;
    if computed != claimed_root {
        return Err(RekorError::RootMismatch {
            computed: hex::encode(computed),
            claimed: hex::encode(claimed_root),
        });
    }

    let checkpoint = Checkpoint::parse(&proof.checkpoint)?;
    if checkpoint.tree_size != size || checkpoint.root_hash != claimed_root {
        return Err(RekorError::CheckpointMismatch {
            found: format!(
                "tree size {} root {}",
                checkpoint.tree_size,
                hex::encode(&checkpoint.root_hash)
            ),
            expected: format!("tree size {size} root {}", hex::encode(claimed_root)),
        });
    }
    // Rekor's key hint is the first 4 bytes of its key id (the log id).
    let mut key_hint = [0u8; 4];
    let hint_len = log.log_id.len().min(4);
    key_hint[..hint_len].copy_from_slice(&log.log_id[..hint_len]);
    checkpoint.verify(key, key_hint)?;
    Ok(())
}

impl RekorBody {
    /// Parses a canonicalized body: `{"apiVersion", "kind", "spec"}`.
    pub fn parse(body: &[u8]) -> Result<Self, RekorError> {
        let json: Value = serde_json::from_slice(body).map_err(|e| RekorError::BodyJson {
            cause: e.to_string(),
        })?;
        let kind = string_at(&json, &["kind"])?;
        let version = string_at(&json, &["apiVersion"])?;
        match (kind, version) {
            ("hashedrekord", "0.0.1") => Ok(RekorBody::HashedRekord {
                digest_algorithm: string_at(&json, &["spec", "data", "hash", "algorithm"])?
                    .to_string(),
                digest: hex_at(&json, &["spec", "data", "hash", "value"])?,
                signature: base64_at(&json, &["spec", "signature", "content"])?,
                verifier: verifier_at(&json, &["spec", "signature", "publicKey", "content"])?,
            }),
            ("rekord", "0.0.1") => {
                let format = string_at(&json, &["spec", "signature", "format"])?;
                if format != "x509" {
                    return Err(RekorError::BodyField {
                        path: "spec.signature.format".into(),
                        problem: format!("is \"{format}\" (expected \"x509\")"),
                    });
                }
                let algorithm = string_at(&json, &["spec", "data", "hash", "algorithm"])?;
                if algorithm != "sha256" {
                    return Err(RekorError::HashAlgorithm {
                        found: algorithm.to_string(),
                    });
                }
                Ok(RekorBody::Rekord {
                    data_hash: hex_at(&json, &["spec", "data", "hash", "value"])?,
                    signature: base64_at(&json, &["spec", "signature", "content"])?,
                    verifier: verifier_at(&json, &["spec", "signature", "publicKey", "content"])?,
                })
            }
            ("dsse", "0.0.1") => {
                for field in ["payloadHash", "envelopeHash"] {
                    let algorithm = string_at(&json, &["spec", field, "algorithm"])?;
                    if algorithm != "sha256" {
                        return Err(RekorError::HashAlgorithm {
                            found: algorithm.to_string(),
                        });
                    }
                }
                let list = value_at(&json, &["spec", "signatures"])?
                    .as_array()
                    .filter(|list| !list.is_empty())
                    .ok_or_else(|| RekorError::BodyField {
                        path: "spec.signatures".into(),
                        problem: "is not a non-empty list".into(),
                    })?;
                let mut signatures = Vec::with_capacity(list.len());
                for (i, item) in list.iter().enumerate() {
                    let inside = |e: RekorError| match e {
                        RekorError::BodyField { path, problem } => RekorError::BodyField {
                            path: format!("spec.signatures[{i}].{path}"),
                            problem,
                        },
                        other => other,
                    };
                    signatures.push((
                        base64_at(item, &["signature"]).map_err(inside)?,
                        verifier_at(item, &["verifier"]).map_err(inside)?,
                    ));
                }
                Ok(RekorBody::Dsse {
                    payload_hash: hex_at(&json, &["spec", "payloadHash", "value"])?,
                    envelope_hash: hex_at(&json, &["spec", "envelopeHash", "value"])?,
                    signatures,
                })
            }
            (kind, version) => Err(RekorError::UnsupportedKind {
                kind: kind.to_string(),
                version: version.to_string(),
            }),
        }
    }

    /// `(kind, apiVersion)` of the body.
    pub fn kind_version(&self) -> (&'static str, &'static str) {
        match self {
            RekorBody::HashedRekord { .. } => ("hashedrekord", "0.0.1"),
            RekorBody::Rekord { .. } => ("rekord", "0.0.1"),
            RekorBody::Dsse { .. } => ("dsse", "0.0.1"),
        }
    }

    /// The entry records exactly this signature: the hash of `signed_payload`, the same
    /// signature bytes and the same verifier (see [`verifier_matches`]).
    pub fn check_binds_simple_signature(
        &self,
        signed_payload: &[u8],
        signature: &[u8],
        verifier_der: &[u8],
    ) -> Result<(), RekorError> {
        let (recorded_hash, computed_hash, recorded_signature, recorded_verifier) = match self {
            RekorBody::HashedRekord {
                digest_algorithm,
                digest,
                signature,
                verifier,
            } => {
                let algorithm = match digest_algorithm.as_str() {
                    "sha256" => HashAlgorithm::Sha256,
                    "sha384" => HashAlgorithm::Sha384,
                    "sha512" => HashAlgorithm::Sha512,
                    other => {
                        return Err(RekorError::HashAlgorithm {
                            found: other.to_string(),
                        });
                    }
                };
                (
                    digest,
                    algorithm.digest(signed_payload),
                    signature,
                    verifier,
                )
            }
            RekorBody::Rekord {
                data_hash,
                signature,
                verifier,
            } => (
                data_hash,
                Sha256::digest(signed_payload).to_vec(),
                signature,
                verifier,
            ),
            RekorBody::Dsse { .. } => {
                return Err(RekorError::WrongKind {
                    found: "dsse",
                    expected: "hashedrekord or rekord",
                });
            }
        };
        if *recorded_hash != computed_hash {
            return Err(RekorError::HashMismatch {
                what: "payload hash",
                recorded: hex::encode(recorded_hash),
                computed: hex::encode(computed_hash),
            });
        }
        if recorded_signature.as_slice() != signature {
            return Err(signature_mismatch(recorded_signature, signature));
        }
        if !verifier_matches(recorded_verifier, verifier_der) {
            return Err(RekorError::VerifierMismatch {
                recorded: describe_verifier(recorded_verifier),
                given: describe_verifier(verifier_der),
            });
        }
        Ok(())
    }

    /// The entry records this DSSE envelope: payload hash = sha256 of the payload, envelope
    /// hash as Rekor computed it (see [`DsseEnvelope::rekor_envelope_hash`]), and one recorded
    /// signature equal to `signature` with the signer's verifier.
    pub fn check_binds_dsse(
        &self,
        envelope: &DsseEnvelope,
        signature: &[u8],
        verifier_der: &[u8],
    ) -> Result<(), RekorError> {
        let RekorBody::Dsse {
            payload_hash,
            envelope_hash,
            signatures,
        } = self
        else {
            return Err(RekorError::WrongKind {
                found: self.kind_version().0,
                expected: "dsse",
            });
        };
        let computed = Sha256::digest(&envelope.payload).to_vec();
        if *payload_hash != computed {
            return Err(RekorError::HashMismatch {
                what: "DSSE payload hash",
                recorded: hex::encode(payload_hash),
                computed: hex::encode(computed),
            });
        }
        let computed = envelope.rekor_envelope_hash();
        if *envelope_hash != computed {
            return Err(RekorError::HashMismatch {
                what: "DSSE envelope hash",
                recorded: hex::encode(envelope_hash),
                computed: hex::encode(computed),
            });
        }
        if !envelope.signatures.iter().any(|s| s.sig == signature) {
            return Err(RekorError::NotInEnvelope {
                given: short_hex(signature),
            });
        }
        let same_signature: Vec<&Vec<u8>> = signatures
            .iter()
            .filter(|(recorded, _)| recorded.as_slice() == signature)
            .map(|(_, verifier)| verifier)
            .collect();
        if same_signature.is_empty() {
            let recorded: Vec<String> = signatures.iter().map(|(s, _)| short_hex(s)).collect();
            return Err(RekorError::SignatureMismatch {
                recorded: recorded.join(", "),
                given: short_hex(signature),
            });
        }
        if same_signature
            .iter()
            .any(|verifier| verifier_matches(verifier, verifier_der))
        {
            Ok(())
        } else {
            Err(RekorError::VerifierMismatch {
                recorded: describe_verifier(same_signature[0]),
                given: describe_verifier(verifier_der),
            })
        }
    }
}

/// Whether the verifier recorded in the log is the signer's: the same certificate, the same
/// public key, or, for a signer known only by its key (a key authority), a recorded
/// certificate for that key. A certificate signer must find its very certificate recorded.
pub fn verifier_matches(recorded_der: &[u8], signer_der: &[u8]) -> bool {
    if recorded_der == signer_der {
        return true;
    }
    // Only a recorded certificate can stand for a bare key; a recorded key never stands for a
    // certificate (the signer's identity is in the certificate the log must have seen).
    Certificate::from_der(recorded_der)
        .ok()
        .and_then(|cert| {
            cert.tbs_certificate()
                .subject_public_key_info()
                .to_der()
                .ok()
        })
        .is_some_and(|spki| spki == signer_der)
}

fn describe_verifier(der: &[u8]) -> String {
    let kind = if Certificate::from_der(der).is_ok() {
        "certificate"
    } else {
        "public key"
    };
    format!(
        "{kind} {}",
        short_fingerprint(&hex::encode(Sha256::digest(der)))
    )
}

fn short_hex(bytes: &[u8]) -> String {
    short_fingerprint(&hex::encode(Sha256::digest(bytes)))
}

fn signature_mismatch(recorded: &[u8], given: &[u8]) -> RekorError {
    RekorError::SignatureMismatch {
        recorded: short_hex(recorded),
        given: short_hex(given),
    }
}

fn path_text(path: &[&str]) -> String {
    path.join(".")
}

fn value_at<'a>(json: &'a Value, path: &[&str]) -> Result<&'a Value, RekorError> {
    let mut value = json;
    for depth in 0..path.len() {
        value = value
            .get(path[depth])
            .ok_or_else(|| RekorError::BodyField {
                path: path_text(&path[..=depth]),
                problem: "is missing".to_string(),
            })?;
    }
    Ok(value)
}

fn string_at<'a>(json: &'a Value, path: &[&str]) -> Result<&'a str, RekorError> {
    value_at(json, path)?
        .as_str()
        .ok_or_else(|| RekorError::BodyField {
            path: path_text(path),
            problem: "is not a string".to_string(),
        })
}

fn hex_at(json: &Value, path: &[&str]) -> Result<Vec<u8>, RekorError> {
    hex::decode(string_at(json, path)?).map_err(|_| RekorError::BodyField {
        path: path_text(path),
        problem: "is not hex".to_string(),
    })
}

fn base64_at(json: &Value, path: &[&str]) -> Result<Vec<u8>, RekorError> {
    STANDARD
        .decode(string_at(json, path)?)
        .map_err(|_| RekorError::BodyField {
            path: path_text(path),
            problem: "is not base64".to_string(),
        })
}

/// Base64 of one PEM `CERTIFICATE` or `PUBLIC KEY` block → its DER.
fn verifier_at(json: &Value, path: &[&str]) -> Result<Vec<u8>, RekorError> {
    let invalid = |problem: String| RekorError::BodyField {
        path: path_text(path),
        problem,
    };
    let text = String::from_utf8(base64_at(json, path)?)
        .map_err(|_| invalid("is not base64 of PEM text".to_string()))?;
    let blocks = pem::parse_blocks(&text).map_err(|e| invalid(format!("is not PEM: {e}")))?;
    match blocks.as_slice() {
        [block] if block.label == "CERTIFICATE" || block.label == "PUBLIC KEY" => {
            Ok(block.der.clone())
        }
        [block] => Err(invalid(format!(
            "holds a PEM block \"{}\" (expected \"CERTIFICATE\" or \"PUBLIC KEY\")",
            block.label
        ))),
        blocks => Err(invalid(format!(
            "holds {} PEM blocks (expected one)",
            blocks.len()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(json: &str) -> Result<RekorBody, RekorError> {
        RekorBody::parse(json.as_bytes())
    }

    fn b64(text: &str) -> String {
        STANDARD.encode(text)
    }

    const KEY_PEM: &str = "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEwOkOF9xpfG8ghueIhnZ66ooujwt1\n+ReV3HupgKnGFYnEh3Hh1YTg5L6kN1Yakkt5WltRoav8/R3hpCtUO3Rldw==\n-----END PUBLIC KEY-----\n";

    fn hashedrekord(algorithm: &str, verifier_pem: &str) -> String {
        format!(
            r#"{{"apiVersion":"0.0.1","kind":"hashedrekord","spec":{{"data":{{"hash":{{"algorithm":"{algorithm}","value":"{}"}}}},"signature":{{"content":"{}","publicKey":{{"content":"{}"}}}}}}}}"#,
            hex::encode(HashAlgorithm::Sha256.digest(b"payload")),
            STANDARD.encode(b"sig"),
            b64(verifier_pem)
        )
    }

    #[test]
    fn body_errors_name_the_field() {
        assert_eq!(
            body(r#"{"apiVersion":"0.0.2","kind":"hashedrekord","spec":{}}"#)
                .unwrap_err()
                .to_string(),
            "unsupported rekor entry kind hashedrekord version 0.0.2 (supported: hashedrekord, rekord and dsse 0.0.1)"
        );
        assert_eq!(
            body(r#"{"apiVersion":"0.0.2","kind":"intoto","spec":{}}"#)
                .unwrap_err()
                .reason(),
            "rekor_unsupported_kind"
        );
        assert_eq!(
            body(r#"{"apiVersion":"0.0.1","spec":{}}"#)
                .unwrap_err()
                .to_string(),
            "rekor entry body field kind is missing"
        );
        assert_eq!(
            body(r#"{"apiVersion":"0.0.1","kind":"hashedrekord","spec":{"data":{}}}"#)
                .unwrap_err()
                .to_string(),
            "rekor entry body field spec.data.hash is missing"
        );
        let err = body("not json").unwrap_err();
        assert_eq!(err.reason(), "rekor_body_json");
        let wrong_label = hashedrekord("sha256", &KEY_PEM.replace("PUBLIC KEY", "PRIVATE KEY"));
        assert_eq!(
            body(&wrong_label).unwrap_err().to_string(),
            "rekor entry body field spec.signature.publicKey.content holds a PEM block \"PRIVATE KEY\" (expected \"CERTIFICATE\" or \"PUBLIC KEY\")"
        );
        let dsse = format!(
            r#"{{"apiVersion":"0.0.1","kind":"dsse","spec":{{"envelopeHash":{{"algorithm":"sha256","value":"00"}},"payloadHash":{{"algorithm":"sha256","value":"00"}},"signatures":[{{"signature":"c2ln","verifier":"{}"}},{{"signature":"c2ln"}}]}}}}"#,
            b64(KEY_PEM)
        );
        assert_eq!(
            body(&dsse).unwrap_err().to_string(),
            "rekor entry body field spec.signatures[1].verifier is missing"
        );
    }

    #[test]
    fn hashedrekord_with_an_unknown_algorithm_does_not_bind() {
        let parsed = body(&hashedrekord("md5", KEY_PEM)).unwrap();
        let key_der = pem::parse_single(KEY_PEM).unwrap().der;
        assert_eq!(
            parsed
                .check_binds_simple_signature(b"payload", b"sig", &key_der)
                .unwrap_err()
                .to_string(),
            "rekor entry records hash algorithm \"md5\" (expected sha256, sha384 or sha512)"
        );
        body(&hashedrekord("sha256", KEY_PEM))
            .unwrap()
            .check_binds_simple_signature(b"payload", b"sig", &key_der)
            .unwrap();
    }

    #[test]
    fn set_payload_is_canonical_json() {
        let entry = TlogEntry {
            log_index: 7,
            log_id: vec![0xc0, 0xd2],
            integrated_time: 1_634_714_717,
            canonicalized_body: b"{}".to_vec(),
            signed_entry_timestamp: None,
            inclusion_proof: None,
            kind_version: None,
        };
        assert_eq!(
            set_payload(&entry),
            r#"{"body":"e30=","integratedTime":1634714717,"logID":"c0d2","logIndex":7}"#
        );
    }

    #[test]
    fn annotation_errors_name_the_field() {
        let err = RekorBundle::from_annotation(r#"{"SignedEntryTimestamp":"AA==","Payload":{"body":"e30=","integratedTime":1,"logIndex":2}}"#)
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "cosign bundle annotation field Payload.logID is missing"
        );
        let err = RekorBundle::from_annotation(r#"{"SignedEntryTimestamp":"AA==","Payload":{"body":"e30=","integratedTime":1,"logIndex":2,"logID":"zz"}}"#)
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "cosign bundle annotation field Payload.logID is not hex"
        );
        let err = RekorBundle::from_annotation("[]").unwrap_err();
        assert_eq!(err.reason(), "rekor_bundle_json");
    }
}
