//! Trust material: the Fulcio CAs, Rekor (transparency log) keys, CT log keys and timestamp
//! authorities a signature may chain to, each with the time range in which it may be used.
//!
//! These are plain data types shared by the certificate, Rekor and key checks; parsing
//! (trusted_root.json, TrustRoot `sigstoreKeys`) and the embedded production root live here too.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;
use sha2::{Digest as _, Sha256};
use x509_cert::Certificate;
use x509_cert::der::Decode;

use super::key::{KeyError, PublicKey};
use super::pem::{self, PemError};
use crate::policy::crd::SigstoreKeys;

/// The production public-good Sigstore `trusted_root.json` (a copy of
/// `../shared/vectors/trusted_root.sigstore-prod.json`, from the sigstore 0.15.0 crate).
const PRODUCTION_TRUSTED_ROOT: &[u8] = include_bytes!("trusted_root.sigstore-prod.json");

/// A validity window in Unix seconds; an open end is unbounded.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct TimeRange {
    pub start: Option<i64>,
    pub end: Option<i64>,
}

impl TimeRange {
    /// True when `at` (Unix seconds) lies inside the window, ends included.
    pub fn contains(&self, at: i64) -> bool {
        self.start.is_none_or(|start| at >= start) && self.end.is_none_or(|end| at <= end)
    }
}

impl std::fmt::Display for TimeRange {
    /// `[start, end]` in RFC 3339, `…` for an open end.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let show = |at: Option<i64>| match at.map(jiff::Timestamp::from_second) {
            Some(Ok(ts)) => ts.to_string(),
            Some(Err(_)) => at.map(|s| s.to_string()).unwrap_or_default(),
            None => "…".to_string(),
        };
        write!(f, "[{}, {}]", show(self.start), show(self.end))
    }
}

/// A certificate authority (Fulcio, or a timestamp authority).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CertificateAuthority {
    /// Where the CA is reachable; used to name it in messages.
    pub uri: String,
    /// DER certificates: intermediates first, the self-signed root last.
    pub chain_der: Vec<Vec<u8>>,
    /// When leaves issued by this CA may be trusted (checked at signing time).
    pub valid_for: TimeRange,
}

/// A transparency log (Rekor) or certificate transparency log key.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct LogKey {
    pub base_url: String,
    /// The log id: sha256 of the key's SubjectPublicKeyInfo DER, unless the trust root says
    /// otherwise.
    pub log_id: Vec<u8>,
    /// DER SubjectPublicKeyInfo.
    pub spki_der: Vec<u8>,
    pub valid_for: TimeRange,
}

impl LogKey {
    /// The log's public key, parsed.
    pub fn public_key(&self) -> Result<PublicKey, KeyError> {
        PublicKey::from_spki_der(&self.spki_der)
    }
}

/// Everything a signature may be verified against.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct TrustMaterial {
    pub certificate_authorities: Vec<CertificateAuthority>,
    pub tlogs: Vec<LogKey>,
    pub ctlogs: Vec<LogKey>,
    pub timestamp_authorities: Vec<CertificateAuthority>,
}

#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    #[error("invalid trusted root JSON: {cause}")]
    Json { cause: String },
    #[error(
        "unsupported trusted root media type \"{found}\" (expected application/vnd.dev.sigstore.trustedroot+json;version=0.1 or application/vnd.dev.sigstore.trustedroot.v0.2+json)"
    )]
    MediaType { found: String },
    #[error("trust root field {path} is missing")]
    MissingField { path: String },
    #[error("trust root field {path} is not valid base64: {cause}")]
    Base64 { path: String, cause: String },
    #[error("trust root field {path} is not an RFC 3339 time: \"{found}\"")]
    Time { path: String, found: String },
    #[error("trust root field {path} is not a usable public key: {source}")]
    Key { path: String, source: KeyError },
    #[error("trust root field {path} is not a DER X.509 certificate: {cause}")]
    Certificate { path: String, cause: String },
    #[error("trust root field {path} holds no certificates")]
    EmptyChain { path: String },
    #[error("trust root field {path} is not valid PEM: {source}")]
    Pem { path: String, source: PemError },
    #[error("trust root field {path} holds a PEM block \"{found}\" (expected \"{expected}\")")]
    PemLabel {
        path: String,
        found: String,
        expected: &'static str,
    },
    #[error("trust root field {path} is not UTF-8 PEM text")]
    NotText { path: String },
}

impl TrustError {
    pub fn reason(&self) -> &'static str {
        match self {
            TrustError::Json { .. } => "trust_json",
            TrustError::MediaType { .. } => "trust_media_type",
            TrustError::MissingField { .. } => "trust_missing_field",
            TrustError::Base64 { .. } => "trust_base64",
            TrustError::Time { .. } => "trust_time",
            TrustError::Key { .. } => "trust_key",
            TrustError::Certificate { .. } => "trust_certificate",
            TrustError::EmptyChain { .. } => "trust_empty_chain",
            TrustError::Pem { .. } => "trust_pem",
            TrustError::PemLabel { .. } => "trust_pem_label",
            TrustError::NotText { .. } => "trust_not_text",
        }
    }
}

impl TrustMaterial {
    /// The production public-good Sigstore instance, from the embedded `trusted_root.json`.
    pub fn production() -> Result<Self, TrustError> {
        Self::from_trusted_root_json(PRODUCTION_TRUSTED_ROOT)
    }

    /// A `trusted_root.json` (`application/vnd.dev.sigstore.trustedroot+json;version=0.1`).
    /// Every key must parse and every certificate must be DER, so a broken root fails at load.
    pub fn from_trusted_root_json(bytes: &[u8]) -> Result<Self, TrustError> {
        let root: TrustedRootJson =
            serde_json::from_slice(bytes).map_err(|e| TrustError::Json {
                cause: e.to_string(),
            })?;
        let media_type = required(root.media_type, "mediaType")?;
        if !media_type.starts_with("application/vnd.dev.sigstore.trustedroot") {
            return Err(TrustError::MediaType { found: media_type });
        }
        Ok(TrustMaterial {
            certificate_authorities: convert_cas(
                root.certificate_authorities,
                "certificateAuthorities",
            )?,
            tlogs: convert_logs(root.tlogs, "tlogs")?,
            ctlogs: convert_logs(root.ctlogs, "ctlogs")?,
            timestamp_authorities: convert_cas(root.timestamp_authorities, "timestampAuthorities")?,
        })
    }

    /// The `sigstoreKeys` of a TrustRoot resource: base64 of PEM chains (leaf-most first,
    /// root last) and base64 of PEM public keys. Log ids are sha256 of the SPKI DER, and
    /// nothing has a validity window (the resource has none).
    pub fn from_sigstore_keys(keys: &SigstoreKeys) -> Result<Self, TrustError> {
        let cas = |list: &[crate::policy::crd::CertificateAuthority], field: &str| {
            list.iter()
                .enumerate()
                .map(|(i, ca)| {
                    let path = format!("sigstoreKeys.{field}[{i}].certChain");
                    Ok(CertificateAuthority {
                        uri: ca.uri.clone(),
                        chain_der: pem_certificates(&ca.cert_chain, &path)?,
                        valid_for: TimeRange::default(),
                    })
                })
                .collect::<Result<Vec<_>, TrustError>>()
        };
        let logs = |list: &[crate::policy::crd::TransparencyLogInstance], field: &str| {
            list.iter()
                .enumerate()
                .map(|(i, log)| {
                    let path = format!("sigstoreKeys.{field}[{i}].publicKey");
                    let text = base64_pem_text(&log.public_key, &path)?;
                    let key = PublicKey::from_pem(&text).map_err(|source| TrustError::Key {
                        path: path.clone(),
                        source,
                    })?;
                    Ok(LogKey {
                        base_url: log.base_url.clone(),
                        log_id: Sha256::digest(key.spki_der()).to_vec(),
                        spki_der: key.spki_der().to_vec(),
                        valid_for: TimeRange::default(),
                    })
                })
                .collect::<Result<Vec<_>, TrustError>>()
        };
        Ok(TrustMaterial {
            certificate_authorities: cas(&keys.certificate_authorities, "certificateAuthorities")?,
            tlogs: logs(&keys.tlogs, "tLogs")?,
            ctlogs: logs(&keys.ctlogs, "ctLogs")?,
            timestamp_authorities: cas(&keys.timestamp_authorities, "timestampAuthorities")?,
        })
    }

    /// A stable hash of the content (hex sha256 of an unambiguous, length-prefixed encoding of
    /// every field, in order); the "trust-root version" in cache keys.
    pub fn fingerprint(&self) -> String {
        let mut out = FingerprintEncoder(Sha256::new());
        for (section, cas) in [
            (b'C', &self.certificate_authorities),
            (b'A', &self.timestamp_authorities),
        ] {
            out.count(section, cas.len());
            for ca in cas {
                out.field(b'u', ca.uri.as_bytes());
                out.count(b'n', ca.chain_der.len());
                for der in &ca.chain_der {
                    out.field(b'd', der);
                }
                out.range(&ca.valid_for);
            }
        }
        for (section, logs) in [(b'R', &self.tlogs), (b'L', &self.ctlogs)] {
            out.count(section, logs.len());
            for log in logs {
                out.field(b'u', log.base_url.as_bytes());
                out.field(b'i', &log.log_id);
                out.field(b'k', &log.spki_der);
                out.range(&log.valid_for);
            }
        }
        hex::encode(out.0.finalize())
    }
}

/// Tag, length, bytes: no two different contents encode alike.
struct FingerprintEncoder(Sha256);

impl FingerprintEncoder {
    fn field(&mut self, tag: u8, bytes: &[u8]) {
        self.0.update([tag]);
        self.0.update((bytes.len() as u64).to_be_bytes());
        self.0.update(bytes);
    }

    fn count(&mut self, tag: u8, count: usize) {
        self.field(tag, &(count as u64).to_be_bytes());
    }

    fn range(&mut self, range: &TimeRange) {
        for bound in [range.start, range.end] {
            match bound {
                Some(at) => self.field(b'T', &at.to_be_bytes()),
                None => self.field(b'N', &[]),
            }
        }
    }
}

// ---- trusted_root.json (protobuf JSON of dev.sigstore.trustroot.v1.TrustedRoot) ----

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TrustedRootJson {
    media_type: Option<String>,
    #[serde(default)]
    tlogs: Vec<TransparencyLogJson>,
    #[serde(default)]
    certificate_authorities: Vec<CertificateAuthorityJson>,
    #[serde(default)]
    ctlogs: Vec<TransparencyLogJson>,
    #[serde(default)]
    timestamp_authorities: Vec<CertificateAuthorityJson>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TransparencyLogJson {
    base_url: Option<String>,
    public_key: Option<PublicKeyJson>,
    log_id: Option<LogIdJson>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PublicKeyJson {
    raw_bytes: Option<String>,
    valid_for: Option<TimeRangeJson>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LogIdJson {
    key_id: Option<String>,
}

#[derive(Deserialize)]
struct TimeRangeJson {
    start: Option<String>,
    end: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CertificateAuthorityJson {
    uri: Option<String>,
    cert_chain: Option<CertChainJson>,
    valid_for: Option<TimeRangeJson>,
}

#[derive(Deserialize)]
struct CertChainJson {
    #[serde(default)]
    certificates: Vec<RawBytesJson>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawBytesJson {
    raw_bytes: Option<String>,
}

fn required<T>(value: Option<T>, path: &str) -> Result<T, TrustError> {
    value.ok_or_else(|| TrustError::MissingField {
        path: path.to_string(),
    })
}

fn base64_field(value: Option<String>, path: &str) -> Result<Vec<u8>, TrustError> {
    let text = required(value, path)?;
    STANDARD
        .decode(text.as_bytes())
        .map_err(|e| TrustError::Base64 {
            path: path.to_string(),
            cause: e.to_string(),
        })
}

fn convert_logs(logs: Vec<TransparencyLogJson>, field: &str) -> Result<Vec<LogKey>, TrustError> {
    logs.into_iter()
        .enumerate()
        .map(|(i, log)| {
            let path = format!("{field}[{i}]");
            let public_key = required(log.public_key, &format!("{path}.publicKey"))?;
            let key_path = format!("{path}.publicKey.rawBytes");
            let spki_der = base64_field(public_key.raw_bytes, &key_path)?;
            PublicKey::from_spki_der(&spki_der).map_err(|source| TrustError::Key {
                path: key_path,
                source,
            })?;
            let log_id_path = format!("{path}.logId.keyId");
            let log_id = base64_field(
                required(log.log_id, &format!("{path}.logId"))?.key_id,
                &log_id_path,
            )?;
            Ok(LogKey {
                base_url: required(log.base_url, &format!("{path}.baseUrl"))?,
                log_id,
                spki_der,
                valid_for: convert_range(
                    public_key.valid_for,
                    &format!("{path}.publicKey.validFor"),
                )?,
            })
        })
        .collect()
}

fn convert_cas(
    cas: Vec<CertificateAuthorityJson>,
    field: &str,
) -> Result<Vec<CertificateAuthority>, TrustError> {
    cas.into_iter()
        .enumerate()
        .map(|(i, ca)| {
            let path = format!("{field}[{i}]");
            let chain_path = format!("{path}.certChain");
            let chain = required(ca.cert_chain, &chain_path)?;
            if chain.certificates.is_empty() {
                return Err(TrustError::EmptyChain { path: chain_path });
            }
            let chain_der = chain
                .certificates
                .into_iter()
                .enumerate()
                .map(|(j, cert)| {
                    let cert_path = format!("{chain_path}.certificates[{j}].rawBytes");
                    let der = base64_field(cert.raw_bytes, &cert_path)?;
                    check_certificate(&der, &cert_path)?;
                    Ok(der)
                })
                .collect::<Result<Vec<_>, TrustError>>()?;
            Ok(CertificateAuthority {
                uri: ca.uri.unwrap_or_default(),
                chain_der,
                valid_for: convert_range(ca.valid_for, &format!("{path}.validFor"))?,
            })
        })
        .collect()
}

/// RFC 3339 → Unix seconds. The start rounds up and the end down, so a window never grows.
fn convert_range(range: Option<TimeRangeJson>, path: &str) -> Result<TimeRange, TrustError> {
    let Some(range) = range else {
        return Ok(TimeRange::default());
    };
    let parse = |text: Option<String>, bound: &str, round_up: bool| {
        text.map(|text| {
            let ts: jiff::Timestamp = text.parse().map_err(|_| TrustError::Time {
                path: format!("{path}.{bound}"),
                found: text.clone(),
            })?;
            let fraction = i64::from(round_up && ts.subsec_nanosecond() > 0);
            Ok(ts.as_second() + fraction)
        })
        .transpose()
    };
    Ok(TimeRange {
        start: parse(range.start, "start", true)?,
        end: parse(range.end, "end", false)?,
    })
}

fn check_certificate(der: &[u8], path: &str) -> Result<(), TrustError> {
    Certificate::from_der(der)
        .map(|_| ())
        .map_err(|e| TrustError::Certificate {
            path: path.to_string(),
            cause: e.to_string(),
        })
}

/// A CRD `[]byte` field: base64 of PEM text.
fn base64_pem_text(value: &str, path: &str) -> Result<String, TrustError> {
    let bytes = STANDARD
        .decode(value.trim().as_bytes())
        .map_err(|e| TrustError::Base64 {
            path: path.to_string(),
            cause: e.to_string(),
        })?;
    String::from_utf8(bytes).map_err(|_| TrustError::NotText {
        path: path.to_string(),
    })
}

fn pem_certificates(value: &str, path: &str) -> Result<Vec<Vec<u8>>, TrustError> {
    let text = base64_pem_text(value, path)?;
    let blocks = pem::parse_blocks(&text).map_err(|source| TrustError::Pem {
        path: path.to_string(),
        source,
    })?;
    blocks
        .into_iter()
        .map(|block| {
            if block.label != "CERTIFICATE" {
                return Err(TrustError::PemLabel {
                    path: path.to_string(),
                    found: block.label,
                    expected: "CERTIFICATE",
                });
            }
            check_certificate(&block.der, path)?;
            Ok(block.der)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::crd::{self, TransparencyLogInstance};

    #[test]
    fn time_range_contains() {
        let range = TimeRange {
            start: Some(10),
            end: Some(20),
        };
        assert!(range.contains(10) && range.contains(20) && range.contains(15));
        assert!(!range.contains(9) && !range.contains(21));
        assert!(TimeRange::default().contains(i64::MIN));
        let open_end = TimeRange {
            start: Some(10),
            end: None,
        };
        assert!(open_end.contains(i64::MAX) && !open_end.contains(0));
    }

    #[test]
    fn time_range_display() {
        let range = TimeRange {
            start: Some(1_634_714_717),
            end: None,
        };
        assert_eq!(range.to_string(), "[2021-10-20T07:25:17Z, …]");
    }

    #[test]
    fn production_root_parses_with_the_expected_entries() {
        let root = TrustMaterial::production().unwrap();

        let tlog_ids: Vec<String> = root.tlogs.iter().map(|l| hex::encode(&l.log_id)).collect();
        assert_eq!(
            tlog_ids,
            [
                "c0d23d6ad406973f9559f3ba2d1ca01f84147d8ffc5b8445c224f98b9591801d",
                "cf1199155bddd051268d1f16ac5c0c75c009f6fb5a63f4177f8e18d7051e3fa0",
            ]
        );
        assert_eq!(root.tlogs[0].base_url, "https://rekor.sigstore.dev");
        // 2021-01-12T11:53:27Z
        assert_eq!(
            root.tlogs[0].valid_for,
            TimeRange {
                start: Some(1_610_452_407),
                end: None
            }
        );
        // The Rekor v1 log id is sha256 of its key; the v2 log's is not (taken from the file).
        let v1_key = root.tlogs[0].public_key().unwrap();
        assert_eq!(v1_key.fingerprint(), tlog_ids[0]);
        assert_eq!(
            root.tlogs[1].public_key().unwrap().algorithm().to_string(),
            "Ed25519"
        );

        assert_eq!(root.certificate_authorities.len(), 2);
        let v1 = &root.certificate_authorities[0];
        assert_eq!(v1.uri, "https://fulcio.sigstore.dev");
        assert_eq!(v1.chain_der.len(), 1);
        // 2021-03-07T03:20:29Z to 2022-12-31T23:59:59.999Z (the end rounds down).
        assert_eq!(
            v1.valid_for,
            TimeRange {
                start: Some(1_615_087_229),
                end: Some(1_672_531_199)
            }
        );
        let current = &root.certificate_authorities[1];
        assert_eq!(current.chain_der.len(), 2);
        assert_eq!(current.valid_for.start, Some(1_649_880_375));
        assert_eq!(current.valid_for.end, None);
        // Intermediates first, self-signed root last.
        let intermediate = Certificate::from_der(&current.chain_der[0]).unwrap();
        let root_cert = Certificate::from_der(&current.chain_der[1]).unwrap();
        assert_eq!(
            intermediate.tbs_certificate().subject().to_string(),
            "CN=sigstore-intermediate,O=sigstore.dev"
        );
        assert_ne!(
            intermediate.tbs_certificate().subject(),
            intermediate.tbs_certificate().issuer()
        );
        assert_eq!(
            root_cert.tbs_certificate().subject(),
            root_cert.tbs_certificate().issuer()
        );
        assert_eq!(
            intermediate.tbs_certificate().issuer(),
            root_cert.tbs_certificate().subject()
        );

        let ct_urls: Vec<&str> = root.ctlogs.iter().map(|l| l.base_url.as_str()).collect();
        assert_eq!(
            ct_urls,
            [
                "https://ctfe.sigstore.dev/test",
                "https://ctfe.sigstore.dev/2022"
            ]
        );
        assert_eq!(
            hex::encode(&root.ctlogs[1].log_id),
            "dd3d306ac6c7113263191e1c99673702a24a5eb8de3cadff878a72802f29ee8e"
        );
        assert_eq!(root.timestamp_authorities.len(), 1);
        assert_eq!(
            root.timestamp_authorities[0].uri,
            "https://timestamp.sigstore.dev/api/v1/timestamp"
        );
        assert_eq!(root.timestamp_authorities[0].chain_der.len(), 2);
    }

    #[test]
    fn fingerprint_is_stable_and_content_sensitive() {
        let root = TrustMaterial::production().unwrap();
        let fingerprint = root.fingerprint();
        assert_eq!(fingerprint.len(), 64);
        assert_eq!(
            TrustMaterial::production().unwrap().fingerprint(),
            fingerprint
        );
        assert_eq!(root.clone().fingerprint(), fingerprint);

        let mut changed = root.clone();
        changed.tlogs[0].valid_for.end = Some(1);
        assert_ne!(changed.fingerprint(), fingerprint);
        let mut changed = root.clone();
        changed.certificate_authorities[1].chain_der[0][10] ^= 1;
        assert_ne!(changed.fingerprint(), fingerprint);
        let mut changed = root.clone();
        changed.ctlogs.swap(0, 1);
        assert_ne!(changed.fingerprint(), fingerprint);
        let mut changed = root.clone();
        changed.timestamp_authorities[0].uri.push('/');
        assert_ne!(changed.fingerprint(), fingerprint);
        // Moving a CA between sections changes the fingerprint too.
        let mut changed = root.clone();
        let tsa = changed.timestamp_authorities.pop().unwrap();
        changed.certificate_authorities.push(tsa);
        assert_ne!(changed.fingerprint(), fingerprint);
        assert_ne!(TrustMaterial::default().fingerprint(), fingerprint);
    }

    fn production_json() -> serde_json::Value {
        serde_json::from_slice(PRODUCTION_TRUSTED_ROOT).unwrap()
    }

    fn parse_error(json: &serde_json::Value) -> String {
        TrustMaterial::from_trusted_root_json(json.to_string().as_bytes())
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn trusted_root_errors_name_the_entry() {
        let mut json = production_json();
        json["tlogs"][1]["publicKey"]["rawBytes"] = "AAAA".into();
        assert!(
            parse_error(&json).starts_with(
                "trust root field tlogs[1].publicKey.rawBytes is not a usable public key: invalid SubjectPublicKeyInfo DER"
            ),
            "{}",
            parse_error(&json)
        );

        let mut json = production_json();
        json["tlogs"][0]["logId"]
            .as_object_mut()
            .unwrap()
            .remove("keyId");
        assert_eq!(
            parse_error(&json),
            "trust root field tlogs[0].logId.keyId is missing"
        );

        let mut json = production_json();
        json["certificateAuthorities"][1]["certChain"]["certificates"][0]["rawBytes"] = "!!".into();
        assert!(
            parse_error(&json).starts_with(
                "trust root field certificateAuthorities[1].certChain.certificates[0].rawBytes is not valid base64"
            ),
            "{}",
            parse_error(&json)
        );

        let mut json = production_json();
        json["certificateAuthorities"][0]["certChain"]["certificates"][0]["rawBytes"] =
            "AAECAw==".into();
        assert!(
            parse_error(&json).starts_with(
                "trust root field certificateAuthorities[0].certChain.certificates[0].rawBytes is not a DER X.509 certificate"
            ),
            "{}",
            parse_error(&json)
        );

        let mut json = production_json();
        json["ctlogs"][0]["publicKey"]["validFor"]["end"] = "yesterday".into();
        assert_eq!(
            parse_error(&json),
            "trust root field ctlogs[0].publicKey.validFor.end is not an RFC 3339 time: \"yesterday\""
        );

        let mut json = production_json();
        json["timestampAuthorities"][0]["certChain"]["certificates"] = serde_json::json!([]);
        assert_eq!(
            parse_error(&json),
            "trust root field timestampAuthorities[0].certChain holds no certificates"
        );

        let mut json = production_json();
        json["mediaType"] = "application/json".into();
        assert!(
            parse_error(&json)
                .starts_with("unsupported trusted root media type \"application/json\"")
        );

        let err = TrustMaterial::from_trusted_root_json(b"{").unwrap_err();
        assert_eq!(err.reason(), "trust_json");
    }

    #[test]
    fn fractional_start_rounds_up() {
        let mut json = production_json();
        json["tlogs"][0]["publicKey"]["validFor"]["start"] = "2021-01-12T11:53:27.5Z".into();
        let root = TrustMaterial::from_trusted_root_json(json.to_string().as_bytes()).unwrap();
        assert_eq!(root.tlogs[0].valid_for.start, Some(1_610_452_408));
    }

    fn b64(text: &str) -> String {
        STANDARD.encode(text)
    }

    fn pem(label: &str, der: &[u8]) -> String {
        let body = STANDARD.encode(der);
        let lines: Vec<&str> = body
            .as_bytes()
            .chunks(64)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect();
        format!(
            "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
            lines.join("\n")
        )
    }

    #[test]
    fn sigstore_keys_convert_like_the_production_root() {
        let production = TrustMaterial::production().unwrap();
        let fulcio = &production.certificate_authorities[1];
        let chain_pem: String = fulcio
            .chain_der
            .iter()
            .map(|d| pem("CERTIFICATE", d))
            .collect();
        let rekor = &production.tlogs[0];
        let ctlog = &production.ctlogs[1];
        let keys = SigstoreKeys {
            certificate_authorities: vec![crd::CertificateAuthority {
                uri: "https://fulcio.example".into(),
                cert_chain: b64(&chain_pem),
                ..Default::default()
            }],
            tlogs: vec![TransparencyLogInstance {
                base_url: "https://rekor.example".into(),
                hash_algorithm: "sha256".into(),
                public_key: b64(&pem("PUBLIC KEY", &rekor.spki_der)),
            }],
            ctlogs: vec![TransparencyLogInstance {
                base_url: "https://ctfe.example".into(),
                hash_algorithm: "sha256".into(),
                public_key: b64(&pem("PUBLIC KEY", &ctlog.spki_der)),
            }],
            timestamp_authorities: vec![],
        };
        let material = TrustMaterial::from_sigstore_keys(&keys).unwrap();
        assert_eq!(
            material.certificate_authorities,
            vec![CertificateAuthority {
                uri: "https://fulcio.example".into(),
                chain_der: fulcio.chain_der.clone(),
                valid_for: TimeRange::default(),
            }]
        );
        assert_eq!(
            material.tlogs,
            vec![LogKey {
                base_url: "https://rekor.example".into(),
                log_id: rekor.log_id.clone(),
                spki_der: rekor.spki_der.clone(),
                valid_for: TimeRange::default(),
            }]
        );
        assert_eq!(material.ctlogs[0].log_id, ctlog.log_id);
        assert!(material.timestamp_authorities.is_empty());
    }

    #[test]
    fn sigstore_keys_errors_name_the_entry() {
        let production = TrustMaterial::production().unwrap();
        let rekor_pem = pem("PUBLIC KEY", &production.tlogs[0].spki_der);
        let mut keys = SigstoreKeys {
            tlogs: vec![
                TransparencyLogInstance {
                    public_key: b64(&rekor_pem),
                    ..Default::default()
                },
                TransparencyLogInstance {
                    public_key: rekor_pem.clone(), // PEM, not base64 of PEM
                    ..Default::default()
                },
            ],
            ..Default::default()
        };
        let err = TrustMaterial::from_sigstore_keys(&keys).unwrap_err();
        assert!(
            err.to_string().starts_with(
                "trust root field sigstoreKeys.tLogs[1].publicKey is not valid base64"
            ),
            "{err}"
        );

        keys.tlogs[1].public_key = b64(&pem("CERTIFICATE", &[1, 2, 3]));
        let err = TrustMaterial::from_sigstore_keys(&keys).unwrap_err();
        assert_eq!(
            err.to_string(),
            "trust root field sigstoreKeys.tLogs[1].publicKey is not a usable public key: expected a PEM block \"PUBLIC KEY\" or \"RSA PUBLIC KEY\", found \"CERTIFICATE\""
        );

        let keys = SigstoreKeys {
            certificate_authorities: vec![crd::CertificateAuthority {
                cert_chain: b64(&rekor_pem),
                ..Default::default()
            }],
            ..Default::default()
        };
        let err = TrustMaterial::from_sigstore_keys(&keys).unwrap_err();
        assert_eq!(
            err.to_string(),
            "trust root field sigstoreKeys.certificateAuthorities[0].certChain holds a PEM block \"PUBLIC KEY\" (expected \"CERTIFICATE\")"
        );

        let keys = SigstoreKeys {
            timestamp_authorities: vec![crd::CertificateAuthority {
                cert_chain: b64(&pem("CERTIFICATE", &[1, 2, 3])),
                ..Default::default()
            }],
            ..Default::default()
        };
        let err = TrustMaterial::from_sigstore_keys(&keys).unwrap_err();
        assert!(
            err.to_string().starts_with(
                "trust root field sigstoreKeys.timestampAuthorities[0].certChain is not a DER X.509 certificate"
            ),
            "{err}"
        );
    }
}
