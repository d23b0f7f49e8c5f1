//! Sigstore bundles (`application/vnd.dev.sigstore.bundle+json;version=0.1|0.2|0.3`,
//! `application/vnd.dev.sigstore.bundle.v0.3+json`), DSSE envelopes and in-toto statements.
//!
//! Bundles are protobuf JSON: camelCase names, bytes as base64, int64 as strings (numbers are
//! accepted too), zero values omitted. Parsing only checks shape; every signature, proof and
//! binding is checked by the caller with `key`, `rekor` and `cert`.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use serde_json::{Map, Value};
use sha2::{Digest as _, Sha256};
use x509_cert::Certificate;
use x509_cert::der::Decode;

use super::rekor::{InclusionProof, KindVersion, TlogEntry};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum BundleVersion {
    V0_1,
    V0_2,
    V0_3,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SigstoreBundle {
    pub media_type: String,
    pub version: BundleVersion,
    pub verification_material: VerificationMaterial,
    pub tlog_entries: Vec<TlogEntry>,
    /// DER RFC 3161 timestamp responses, unverified.
    pub rfc3161_timestamps: Vec<Vec<u8>>,
    pub content: BundleContent,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VerificationMaterial {
    /// The DER leaf certificate (v0.3).
    Certificate(Vec<u8>),
    /// DER certificates, leaf first (v0.1, v0.2).
    CertificateChain(Vec<Vec<u8>>),
    /// A key known to the verifier, named by an optional hint.
    PublicKey { hint: Option<String> },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BundleContent {
    MessageSignature {
        /// The protobuf enum name, e.g. `SHA2_256`.
        digest_algorithm: String,
        digest: Vec<u8>,
        signature: Vec<u8>,
    },
    Dsse(DsseEnvelope),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DsseEnvelope {
    pub payload: Vec<u8>,
    pub payload_type: String,
    pub signatures: Vec<DsseSignature>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DsseSignature {
    pub sig: Vec<u8>,
    pub keyid: Option<String>,
}

impl DsseEnvelope {
    /// The bytes a DSSE signature covers.
    pub fn pae(&self) -> Vec<u8> {
        pae(&self.payload_type, &self.payload)
    }

    /// The envelope as cosign submits it to Rekor and Rekor hashes it (`envelopeHash`):
    /// compact JSON, keys sorted, `keyid` only when not empty.
    pub fn rekor_envelope_json(&self) -> String {
        let signatures: Vec<Value> = self
            .signatures
            .iter()
            .map(|signature| {
                let mut object = Map::new();
                if let Some(keyid) = signature.keyid.as_ref().filter(|k| !k.is_empty()) {
                    object.insert("keyid".into(), Value::String(keyid.clone()));
                }
                object.insert("sig".into(), Value::String(STANDARD.encode(&signature.sig)));
                Value::Object(object)
            })
            .collect();
        let mut envelope = Map::new();
        envelope.insert(
            "payload".into(),
            Value::String(STANDARD.encode(&self.payload)),
        );
        envelope.insert(
            "payloadType".into(),
            Value::String(self.payload_type.clone()),
        );
        envelope.insert("signatures".into(), Value::Array(signatures));
        // Keys are inserted in sorted order, so the output is sorted whether or not serde_json's
        // `preserve_order` feature is on somewhere in the build.
        Value::Object(envelope).to_string()
    }

    /// sha256 of [`Self::rekor_envelope_json`].
    pub fn rekor_envelope_hash(&self) -> Vec<u8> {
        Sha256::digest(self.rekor_envelope_json().as_bytes()).to_vec()
    }
}

/// DSSE pre-authentication encoding: `DSSEv1 <len> <type> <len> <payload>` (lengths in bytes,
/// decimal).
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "DSSEv1 {} {} {} ",
        payload_type.len(),
        payload_type,
        payload.len()
    )
    .into_bytes();
    out.extend_from_slice(payload);
    out
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InTotoStatement {
    pub statement_type: String,
    pub predicate_type: String,
    pub subjects: Vec<Subject>,
    pub predicate: Option<Value>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subject {
    pub name: Option<String>,
    /// Algorithm (`sha256`) → lower-case hex digest, as the statement gives it.
    pub digests: BTreeMap<String, String>,
    /// String annotations of the subject (cosign v3 `sign -a k=v`).
    pub annotations: BTreeMap<String, String>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BundleError {
    #[error("{what} is not valid JSON: {cause}")]
    Json { what: &'static str, cause: String },
    #[error("{what} field {path} {problem}")]
    Field {
        what: &'static str,
        path: String,
        problem: String,
    },
    #[error(
        "unsupported sigstore bundle media type \"{found}\" (expected application/vnd.dev.sigstore.bundle+json;version=0.1, 0.2 or 0.3, or application/vnd.dev.sigstore.bundle.v0.3+json)"
    )]
    MediaType { found: String },
    #[error("sigstore bundle {version} field {path} {problem}")]
    Version {
        version: &'static str,
        path: String,
        problem: &'static str,
    },
}

impl BundleError {
    pub fn reason(&self) -> &'static str {
        match self {
            BundleError::Json { .. } => "bundle_json",
            BundleError::Field { .. } => "bundle_field",
            BundleError::MediaType { .. } => "bundle_media_type",
            BundleError::Version { .. } => "bundle_version_rule",
        }
    }
}

const BUNDLE: &str = "sigstore bundle";
const STATEMENT: &str = "in-toto statement";

/// A JSON object and where it is, for errors that name the field.
#[derive(Clone, Copy)]
struct Node<'a> {
    what: &'static str,
    path: &'a str,
    value: &'a Value,
}

impl<'a> Node<'a> {
    fn error(&self, field: &str, problem: impl Into<String>) -> BundleError {
        BundleError::Field {
            what: self.what,
            path: self.child_path(field),
            problem: problem.into(),
        }
    }

    fn child_path(&self, field: &str) -> String {
        match (self.path.is_empty(), field.is_empty()) {
            (true, _) => field.to_string(),
            (false, true) => self.path.to_string(),
            (false, false) if field.starts_with('[') => format!("{}{field}", self.path),
            (false, false) => format!("{}.{field}", self.path),
        }
    }

    fn optional(&self, field: &str) -> Option<&'a Value> {
        self.value.get(field).filter(|v| !v.is_null())
    }

    fn required(&self, field: &str) -> Result<&'a Value, BundleError> {
        self.optional(field)
            .ok_or_else(|| self.error(field, "is missing"))
    }

    fn string(&self, field: &str) -> Result<&'a str, BundleError> {
        self.required(field)?
            .as_str()
            .ok_or_else(|| self.error(field, "is not a string"))
    }

    fn optional_string(&self, field: &str) -> Result<Option<&'a str>, BundleError> {
        self.optional(field)
            .map(|v| {
                v.as_str()
                    .ok_or_else(|| self.error(field, "is not a string"))
            })
            .transpose()
    }

    fn bytes(&self, field: &str) -> Result<Vec<u8>, BundleError> {
        let text = self.string(field)?;
        let bytes = decode_proto_bytes(text).ok_or_else(|| self.error(field, "is not base64"))?;
        if bytes.is_empty() {
            return Err(self.error(field, "is empty"));
        }
        Ok(bytes)
    }

    /// proto3 int64: a decimal string or a JSON integer; absent means 0.
    fn int64(&self, field: &str) -> Result<i64, BundleError> {
        match self.optional(field) {
            None => Ok(0),
            Some(Value::String(text)) => text
                .parse::<i64>()
                .map_err(|_| self.error(field, format!("\"{text}\" is not an int64"))),
            Some(Value::Number(number)) => number
                .as_i64()
                .ok_or_else(|| self.error(field, format!("{number} is not an int64"))),
            Some(_) => Err(self.error(field, "is not an int64")),
        }
    }

    fn child(&self, field: &str, path: &'a str) -> Result<Node<'a>, BundleError> {
        let value = self.required(field)?;
        if !value.is_object() {
            return Err(self.error(field, "is not an object"));
        }
        Ok(Node {
            what: self.what,
            path,
            value,
        })
    }

    /// The items of a list field (absent = empty), with their paths.
    fn list(&self, field: &str) -> Result<Vec<(String, &'a Value)>, BundleError> {
        match self.optional(field) {
            None => Ok(Vec::new()),
            Some(Value::Array(items)) => Ok(items
                .iter()
                .enumerate()
                .map(|(i, item)| (format!("{}[{i}]", self.child_path(field)), item))
                .collect()),
            Some(_) => Err(self.error(field, "is not a list")),
        }
    }
}

fn node<'a>(what: &'static str, path: &'a str, value: &'a Value) -> Result<Node<'a>, BundleError> {
    if !value.is_object() {
        return Err(BundleError::Field {
            what,
            path: if path.is_empty() {
                "(top level)".into()
            } else {
                path.into()
            },
            problem: "is not an object".into(),
        });
    }
    Ok(Node { what, path, value })
}

/// protobuf JSON accepts standard and URL-safe base64, padded or not.
fn decode_proto_bytes(text: &str) -> Option<Vec<u8>> {
    [&STANDARD, &URL_SAFE, &STANDARD_NO_PAD, &URL_SAFE_NO_PAD]
        .into_iter()
        .find_map(|engine| engine.decode(text).ok())
}

fn media_type_version(media_type: &str) -> Option<BundleVersion> {
    match media_type {
        "application/vnd.dev.sigstore.bundle+json;version=0.1" => Some(BundleVersion::V0_1),
        "application/vnd.dev.sigstore.bundle+json;version=0.2" => Some(BundleVersion::V0_2),
        "application/vnd.dev.sigstore.bundle+json;version=0.3"
        | "application/vnd.dev.sigstore.bundle.v0.3+json" => Some(BundleVersion::V0_3),
        _ => None,
    }
}

fn version_name(version: BundleVersion) -> &'static str {
    match version {
        BundleVersion::V0_1 => "v0.1",
        BundleVersion::V0_2 => "v0.2",
        BundleVersion::V0_3 => "v0.3",
    }
}

/// Parses a Sigstore bundle (protobuf JSON). Version rules: v0.1 entries carry a SET, v0.2+
/// entries an inclusion proof, v0.3 a single certificate rather than a chain.
pub fn parse_bundle(bytes: &[u8]) -> Result<SigstoreBundle, BundleError> {
    let json: Value = serde_json::from_slice(bytes).map_err(|e| BundleError::Json {
        what: BUNDLE,
        cause: e.to_string(),
    })?;
    let top = node(BUNDLE, "", &json)?;
    let media_type = top.string("mediaType")?.to_string();
    let version = media_type_version(&media_type).ok_or_else(|| BundleError::MediaType {
        found: media_type.clone(),
    })?;
    let version_rule = |path: String, problem: &'static str| BundleError::Version {
        version: version_name(version),
        path,
        problem,
    };

    let material = top.child("verificationMaterial", "verificationMaterial")?;
    let verification_material = parse_material(&material)?;
    if version >= BundleVersion::V0_3
        && matches!(
            verification_material,
            VerificationMaterial::CertificateChain(_)
        )
    {
        return Err(version_rule(
            "verificationMaterial.x509CertificateChain".into(),
            "is not allowed (use certificate)",
        ));
    }

    let mut tlog_entries = Vec::new();
    for (path, value) in material.list("tlogEntries")? {
        let entry = parse_tlog_entry(&node(BUNDLE, &path, value)?)?;
        if version == BundleVersion::V0_1 && entry.signed_entry_timestamp.is_none() {
            return Err(version_rule(
                format!("{path}.inclusionPromise"),
                "is missing",
            ));
        }
        if version >= BundleVersion::V0_2 && entry.inclusion_proof.is_none() {
            return Err(version_rule(format!("{path}.inclusionProof"), "is missing"));
        }
        tlog_entries.push(entry);
    }

    let mut rfc3161_timestamps = Vec::new();
    if material.optional("timestampVerificationData").is_some() {
        let data = material.child(
            "timestampVerificationData",
            "verificationMaterial.timestampVerificationData",
        )?;
        for (path, value) in data.list("rfc3161Timestamps")? {
            rfc3161_timestamps.push(node(BUNDLE, &path, value)?.bytes("signedTimestamp")?);
        }
    }

    let content = match (
        top.optional("messageSignature"),
        top.optional("dsseEnvelope"),
    ) {
        (Some(_), None) => {
            let signature = top.child("messageSignature", "messageSignature")?;
            let digest = signature.child("messageDigest", "messageSignature.messageDigest")?;
            BundleContent::MessageSignature {
                digest_algorithm: digest.string("algorithm")?.to_string(),
                digest: digest.bytes("digest")?,
                signature: signature.bytes("signature")?,
            }
        }
        (None, Some(_)) => {
            BundleContent::Dsse(parse_envelope(&top.child("dsseEnvelope", "dsseEnvelope")?)?)
        }
        (Some(_), Some(_)) => {
            return Err(top
                .error(
                    "",
                    "has both messageSignature and dsseEnvelope (expected one)",
                )
                .with_path("(top level)"));
        }
        (None, None) => {
            return Err(top
                .error("", "has neither messageSignature nor dsseEnvelope")
                .with_path("(top level)"));
        }
    };

    Ok(SigstoreBundle {
        media_type,
        version,
        verification_material,
        tlog_entries,
        rfc3161_timestamps,
        content,
    })
}

impl BundleError {
    fn with_path(self, new_path: &str) -> Self {
        match self {
            BundleError::Field { what, problem, .. } => BundleError::Field {
                what,
                path: new_path.to_string(),
                problem,
            },
            other => other,
        }
    }
}

fn parse_material(material: &Node<'_>) -> Result<VerificationMaterial, BundleError> {
    let present: Vec<&str> = ["certificate", "x509CertificateChain", "publicKey"]
        .into_iter()
        .filter(|field| material.optional(field).is_some())
        .collect();
    match present.as_slice() {
        ["certificate"] => {
            let cert = material.child("certificate", "verificationMaterial.certificate")?;
            Ok(VerificationMaterial::Certificate(certificate_bytes(&cert)?))
        }
        ["x509CertificateChain"] => {
            let chain = material.child(
                "x509CertificateChain",
                "verificationMaterial.x509CertificateChain",
            )?;
            let mut certificates = Vec::new();
            for (path, value) in chain.list("certificates")? {
                certificates.push(certificate_bytes(&node(BUNDLE, &path, value)?)?);
            }
            if certificates.is_empty() {
                return Err(chain.error("certificates", "is empty"));
            }
            Ok(VerificationMaterial::CertificateChain(certificates))
        }
        ["publicKey"] => {
            let key = material.child("publicKey", "verificationMaterial.publicKey")?;
            Ok(VerificationMaterial::PublicKey {
                hint: key.optional_string("hint")?.map(str::to_string),
            })
        }
        [] => Err(material.error(
            "",
            "has none of certificate, x509CertificateChain, publicKey",
        )),
        several => Err(material.error("", format!("has {} (expected one)", several.join(" and ")))),
    }
}

fn certificate_bytes(cert: &Node<'_>) -> Result<Vec<u8>, BundleError> {
    let der = cert.bytes("rawBytes")?;
    Certificate::from_der(&der)
        .map_err(|e| cert.error("rawBytes", format!("is not a DER X.509 certificate: {e}")))?;
    Ok(der)
}

fn parse_tlog_entry(entry: &Node<'_>) -> Result<TlogEntry, BundleError> {
    let log_id_path = entry.child_path("logId");
    let kind_path = entry.child_path("kindVersion");
    let log_id = entry.child("logId", &log_id_path)?.bytes("keyId")?;
    let kind_version = entry.child("kindVersion", &kind_path)?;
    let kind_version = KindVersion {
        kind: kind_version.string("kind")?.to_string(),
        version: kind_version.string("version")?.to_string(),
    };
    let promise_path = entry.child_path("inclusionPromise");
    let signed_entry_timestamp = match entry.optional("inclusionPromise") {
        None => None,
        Some(_) => Some(
            entry
                .child("inclusionPromise", &promise_path)?
                .bytes("signedEntryTimestamp")?,
        ),
    };
    let proof_path = entry.child_path("inclusionProof");
    let inclusion_proof = match entry.optional("inclusionProof") {
        None => None,
        Some(_) => {
            let proof = entry.child("inclusionProof", &proof_path)?;
            let mut hashes = Vec::new();
            for (path, value) in proof.list("hashes")? {
                let text = value.as_str().ok_or_else(|| BundleError::Field {
                    what: BUNDLE,
                    path: path.clone(),
                    problem: "is not a string".into(),
                })?;
                hashes.push(decode_proto_bytes(text).ok_or_else(|| BundleError::Field {
                    what: BUNDLE,
                    path,
                    problem: "is not base64".into(),
                })?);
            }
            let checkpoint_path = proof.child_path("checkpoint");
            Some(InclusionProof {
                log_index: proof.int64("logIndex")?,
                root_hash: proof.bytes("rootHash")?,
                tree_size: proof.int64("treeSize")?,
                hashes,
                checkpoint: proof
                    .child("checkpoint", &checkpoint_path)?
                    .string("envelope")?
                    .to_string(),
            })
        }
    };
    Ok(TlogEntry {
        log_index: entry.int64("logIndex")?,
        log_id,
        integrated_time: entry.int64("integratedTime")?,
        canonicalized_body: entry.bytes("canonicalizedBody")?,
        signed_entry_timestamp,
        inclusion_proof,
        kind_version: Some(kind_version),
    })
}

fn parse_envelope(envelope: &Node<'_>) -> Result<DsseEnvelope, BundleError> {
    let payload_type = envelope.string("payloadType")?.to_string();
    let payload = envelope.bytes("payload")?;
    let mut signatures = Vec::new();
    for (path, value) in envelope.list("signatures")? {
        let signature = node(BUNDLE, &path, value)?;
        signatures.push(DsseSignature {
            sig: signature.bytes("sig")?,
            keyid: signature.optional_string("keyid")?.map(str::to_string),
        });
    }
    if signatures.is_empty() {
        return Err(envelope.error("signatures", "is empty"));
    }
    Ok(DsseEnvelope {
        payload,
        payload_type,
        signatures,
    })
}

/// Parses an in-toto statement (v0.1 or v1): `_type`, `predicateType`, `subject[]` with
/// `digest` maps; `name` and `predicate` are optional.
pub fn parse_statement(payload: &[u8]) -> Result<InTotoStatement, BundleError> {
    let json: Value = serde_json::from_slice(payload).map_err(|e| BundleError::Json {
        what: STATEMENT,
        cause: e.to_string(),
    })?;
    let top = node(STATEMENT, "", &json)?;
    let mut subjects = Vec::new();
    for (path, value) in top.list("subject")? {
        let subject = node(STATEMENT, &path, value)?;
        let digest = subject
            .required("digest")?
            .as_object()
            .ok_or_else(|| subject.error("digest", "is not an object"))?;
        let mut digests = BTreeMap::new();
        for (algorithm, value) in digest {
            let hex = value
                .as_str()
                .ok_or_else(|| subject.error(&format!("digest.{algorithm}"), "is not a string"))?;
            digests.insert(algorithm.clone(), hex.to_string());
        }
        // cosign v3 puts `cosign sign -a k=v` annotations on the subject.
        let mut annotations = BTreeMap::new();
        if let Some(found) = subject.optional("annotations") {
            let found = found
                .as_object()
                .ok_or_else(|| subject.error("annotations", "is not an object"))?;
            for (key, value) in found {
                let text = value.as_str().ok_or_else(|| {
                    subject.error(&format!("annotations.{key}"), "is not a string")
                })?;
                annotations.insert(key.clone(), text.to_string());
            }
        }
        subjects.push(Subject {
            name: subject.optional_string("name")?.map(str::to_string),
            digests,
            annotations,
        });
    }
    if top.optional("subject").is_none() {
        return Err(top.error("subject", "is missing"));
    }
    Ok(InTotoStatement {
        statement_type: top.string("_type")?.to_string(),
        predicate_type: top.string("predicateType")?.to_string(),
        subjects,
        predicate: top.optional("predicate").cloned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pae_matches_the_dsse_spec_example() {
        // From the DSSE protocol description: type "http://example.com/HelloWorld", body "hello world".
        assert_eq!(
            pae("http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world".to_vec()
        );
        assert_eq!(pae("", b""), b"DSSEv1 0  0 ".to_vec());
        // Lengths are bytes, not characters.
        assert_eq!(pae("é", b"\xff"), b"DSSEv1 2 \xc3\xa9 1 \xff".to_vec());
    }

    #[test]
    fn rekor_envelope_json_is_sorted_and_compact() {
        let envelope = DsseEnvelope {
            payload: b"{}".to_vec(),
            payload_type: "application/vnd.in-toto+json".into(),
            signatures: vec![
                DsseSignature {
                    sig: vec![1, 2],
                    keyid: None,
                },
                DsseSignature {
                    sig: vec![3],
                    keyid: Some("k\"1".into()),
                },
                DsseSignature {
                    sig: vec![4],
                    keyid: Some(String::new()),
                },
            ],
        };
        assert_eq!(
            envelope.rekor_envelope_json(),
            r#"{"payload":"e30=","payloadType":"application/vnd.in-toto+json","signatures":[{"sig":"AQI="},{"keyid":"k\"1","sig":"Aw=="},{"sig":"BA=="}]}"#
        );
    }

    fn minimal_bundle() -> Value {
        json!({
            "mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
            "verificationMaterial": {
                "publicKey": {"hint": "my-key"},
                "tlogEntries": [{
                    "logIndex": "5",
                    "logId": {"keyId": "wNI9atQGlz+VWfO6LRygH4QUfY/8W4RFwiT5i5WRgB0="},
                    "kindVersion": {"kind": "hashedrekord", "version": "0.0.1"},
                    "integratedTime": 1700000000,
                    "inclusionProof": {
                        "logIndex": "5", "rootHash": "AAAA", "treeSize": "6",
                        "hashes": ["AQ=="], "checkpoint": {"envelope": "note"}
                    },
                    "canonicalizedBody": "e30="
                }]
            },
            "messageSignature": {
                "messageDigest": {"algorithm": "SHA2_256", "digest": "AAEC"},
                "signature": "MEUC"
            }
        })
    }

    fn parse(json: &Value) -> Result<SigstoreBundle, BundleError> {
        parse_bundle(json.to_string().as_bytes())
    }

    #[test]
    fn parses_a_key_based_message_signature_bundle() {
        let bundle = parse(&minimal_bundle()).unwrap();
        assert_eq!(bundle.version, BundleVersion::V0_3);
        assert_eq!(
            bundle.verification_material,
            VerificationMaterial::PublicKey {
                hint: Some("my-key".into())
            }
        );
        let entry = &bundle.tlog_entries[0];
        assert_eq!(entry.log_index, 5);
        assert_eq!(entry.integrated_time, 1_700_000_000);
        assert_eq!(entry.canonicalized_body, b"{}");
        assert_eq!(entry.signed_entry_timestamp, None);
        let proof = entry.inclusion_proof.as_ref().unwrap();
        assert_eq!((proof.log_index, proof.tree_size), (5, 6));
        assert_eq!(proof.hashes, vec![vec![1]]);
        assert_eq!(proof.checkpoint, "note");
        assert_eq!(
            bundle.content,
            BundleContent::MessageSignature {
                digest_algorithm: "SHA2_256".into(),
                digest: vec![0, 1, 2],
                signature: vec![0x30, 0x45, 0x02],
            }
        );
    }

    #[test]
    fn malformed_bundles_name_the_field() {
        type Mutation = Box<dyn Fn(&mut Value)>;
        let cases: Vec<(Mutation, &str)> = vec![
            (
                Box::new(|b| b["mediaType"] = "application/json".into()),
                "unsupported sigstore bundle media type \"application/json\"",
            ),
            (
                Box::new(|b| {
                    b.as_object_mut().unwrap().remove("mediaType");
                }),
                "sigstore bundle field mediaType is missing",
            ),
            (
                Box::new(|b| b["verificationMaterial"]["tlogEntries"][0]["logIndex"] = "x1".into()),
                "sigstore bundle field verificationMaterial.tlogEntries[0].logIndex \"x1\" is not an int64",
            ),
            (
                Box::new(|b| {
                    b["verificationMaterial"]["tlogEntries"][0]
                        .as_object_mut()
                        .unwrap()
                        .remove("canonicalizedBody");
                }),
                "sigstore bundle field verificationMaterial.tlogEntries[0].canonicalizedBody is missing",
            ),
            (
                Box::new(|b| {
                    b["verificationMaterial"]["tlogEntries"][0]["logId"]["keyId"] = "***".into()
                }),
                "sigstore bundle field verificationMaterial.tlogEntries[0].logId.keyId is not base64",
            ),
            (
                Box::new(|b| {
                    b["verificationMaterial"]["tlogEntries"][0]
                        .as_object_mut()
                        .unwrap()
                        .remove("inclusionProof");
                }),
                "sigstore bundle v0.3 field verificationMaterial.tlogEntries[0].inclusionProof is missing",
            ),
            (
                Box::new(|b| {
                    b["verificationMaterial"]["tlogEntries"][0]["inclusionProof"]["hashes"][0] =
                        7.into()
                }),
                "sigstore bundle field verificationMaterial.tlogEntries[0].inclusionProof.hashes[0] is not a string",
            ),
            (
                Box::new(|b| {
                    b["verificationMaterial"]
                        .as_object_mut()
                        .unwrap()
                        .remove("publicKey");
                }),
                "sigstore bundle field verificationMaterial has none of certificate, x509CertificateChain, publicKey",
            ),
            (
                Box::new(|b| {
                    b["verificationMaterial"]["certificate"] = json!({"rawBytes": "AAEC"})
                }),
                "sigstore bundle field verificationMaterial has certificate and publicKey (expected one)",
            ),
            (
                Box::new(|b| {
                    b["verificationMaterial"]
                        .as_object_mut()
                        .unwrap()
                        .remove("publicKey");
                    b["verificationMaterial"]["certificate"] = json!({"rawBytes": "AAEC"});
                }),
                "sigstore bundle field verificationMaterial.certificate.rawBytes is not a DER X.509 certificate",
            ),
            (
                Box::new(|b| b["dsseEnvelope"] = json!({})),
                "sigstore bundle field (top level) has both messageSignature and dsseEnvelope (expected one)",
            ),
            (
                Box::new(|b| {
                    b.as_object_mut().unwrap().remove("messageSignature");
                }),
                "sigstore bundle field (top level) has neither messageSignature nor dsseEnvelope",
            ),
            (
                Box::new(|b| b["messageSignature"]["signature"] = "".into()),
                "sigstore bundle field messageSignature.signature is empty",
            ),
        ];
        for (mutate, message) in cases {
            let mut bundle = minimal_bundle();
            mutate(&mut bundle);
            let err = parse(&bundle).unwrap_err().to_string();
            assert!(err.starts_with(message), "got: {err}\nwant: {message}");
        }
        let err = parse_bundle(b"{").unwrap_err();
        assert_eq!(err.reason(), "bundle_json");
        assert!(
            err.to_string()
                .starts_with("sigstore bundle is not valid JSON: ")
        );
    }

    #[test]
    fn version_rules() {
        let mut v01 = minimal_bundle();
        v01["mediaType"] = "application/vnd.dev.sigstore.bundle+json;version=0.1".into();
        let err = parse(&v01).unwrap_err();
        assert_eq!(
            err.to_string(),
            "sigstore bundle v0.1 field verificationMaterial.tlogEntries[0].inclusionPromise is missing"
        );
        v01["verificationMaterial"]["tlogEntries"][0]["inclusionPromise"] =
            json!({"signedEntryTimestamp": "AAEC"});
        assert_eq!(parse(&v01).unwrap().version, BundleVersion::V0_1);

        let mut v02 = minimal_bundle();
        v02["mediaType"] = "application/vnd.dev.sigstore.bundle+json;version=0.2".into();
        assert_eq!(parse(&v02).unwrap().version, BundleVersion::V0_2);
    }

    #[test]
    fn dsse_envelope_parses_and_needs_signatures() {
        let mut bundle = minimal_bundle();
        bundle.as_object_mut().unwrap().remove("messageSignature");
        bundle["dsseEnvelope"] = json!({
            "payload": "e30", "payloadType": "text/plain",
            "signatures": [{"sig": "AQ", "keyid": ""}]
        });
        let parsed = parse(&bundle).unwrap();
        assert_eq!(
            parsed.content,
            BundleContent::Dsse(DsseEnvelope {
                payload: b"{}".to_vec(),
                payload_type: "text/plain".into(),
                signatures: vec![DsseSignature {
                    sig: vec![1],
                    keyid: Some(String::new())
                }],
            })
        );
        bundle["dsseEnvelope"]["signatures"] = json!([]);
        assert_eq!(
            parse(&bundle).unwrap_err().to_string(),
            "sigstore bundle field dsseEnvelope.signatures is empty"
        );
    }

    #[test]
    fn statements_parse_and_errors_name_the_field() {
        let statement = parse_statement(
            br#"{"_type":"https://in-toto.io/Statement/v1","subject":[{"name":"img","digest":{"sha256":"ab"}},{"digest":{}}],"predicateType":"p","predicate":{"a":1}}"#,
        )
        .unwrap();
        assert_eq!(statement.statement_type, "https://in-toto.io/Statement/v1");
        assert_eq!(statement.predicate_type, "p");
        assert_eq!(statement.subjects.len(), 2);
        assert_eq!(statement.subjects[0].name.as_deref(), Some("img"));
        assert_eq!(statement.subjects[0].digests["sha256"], "ab");
        assert_eq!(statement.subjects[1].name, None);
        assert_eq!(statement.predicate, Some(json!({"a": 1})));

        let cases: [(&[u8], &str); 5] = [
            (
                br#"{"subject":[],"predicateType":"p"}"#,
                "in-toto statement field _type is missing",
            ),
            (
                br#"{"_type":"t","predicateType":"p"}"#,
                "in-toto statement field subject is missing",
            ),
            (
                br#"{"_type":"t","subject":[{}],"predicateType":"p"}"#,
                "in-toto statement field subject[0].digest is missing",
            ),
            (
                br#"{"_type":"t","subject":[{"digest":{"sha256":1}}],"predicateType":"p"}"#,
                "in-toto statement field subject[0].digest.sha256 is not a string",
            ),
            (
                b"[]",
                "in-toto statement field (top level) is not an object",
            ),
        ];
        for (payload, message) in cases {
            assert_eq!(parse_statement(payload).unwrap_err().to_string(), message);
        }
        assert_eq!(
            parse_statement(b"nope").unwrap_err().reason(),
            "bundle_json"
        );
    }
}
