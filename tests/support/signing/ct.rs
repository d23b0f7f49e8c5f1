//! Certificate transparency logs that sign RFC 6962 SCTs, and the pieces that embed them in a
//! leaf (moved here from `tests/certs.rs`, which uses them too).
//!
//! A CA embeds SCTs by issuing a leaf twice: first without the SCT list (the precertificate
//! TBSCertificate the logs sign), then with the SCTs made over that TBS. The signed data
//! (RFC 6962 §3.2) is `version ‖ 0 (certificate_timestamp) ‖ timestamp (ms, u64) ‖ 1
//! (precert_entry, u16) ‖ sha256(issuer SPKI) ‖ tbs (u24 length) ‖ extensions (u16 length)`.

use rcgen::{CustomExtension, KeyPair, PublicKeyData, SigningKey};
use sha2::{Digest, Sha256};
use verity::verify::trust::{LogKey, TimeRange};

/// RFC 6962 §3.3: the embedded SCT list extension.
pub const OID_SCT_LIST: &[u64] = &[1, 3, 6, 1, 4, 1, 11129, 2, 4, 2];

/// The base URL of [`TestCtLog::new`].
pub const TEST_CT_URL: &str = "https://ctfe.test";

/// A CT log key (rcgen: ECDSA P-256 by default, any rcgen key with
/// [`TestCtLog::with_key`]).
pub struct TestCtLog {
    key: KeyPair,
    url: String,
}

impl Default for TestCtLog {
    fn default() -> Self {
        Self::new()
    }
}

impl TestCtLog {
    /// An ECDSA P-256 log at [`TEST_CT_URL`].
    pub fn new() -> Self {
        Self::p256(TEST_CT_URL)
    }

    /// An ECDSA P-256 log at `url`.
    pub fn p256(url: &str) -> Self {
        Self::with_key(
            KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap(),
            url,
        )
    }

    /// A log with `key` (ECDSA or RSA; RSA logs sign PKCS#1 v1.5 with sha256).
    pub fn with_key(key: KeyPair, url: &str) -> Self {
        TestCtLog {
            key,
            url: url.to_string(),
        }
    }

    pub fn key(&self) -> &KeyPair {
        &self.key
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// SubjectPublicKeyInfo DER.
    pub fn spki(&self) -> Vec<u8> {
        self.key.subject_public_key_info()
    }

    pub fn public_key_pem(&self) -> String {
        super::pem("PUBLIC KEY", &self.spki())
    }

    /// sha256 of the SPKI DER.
    pub fn log_id(&self) -> Vec<u8> {
        Sha256::digest(self.spki()).to_vec()
    }

    /// The log as verity's trust material holds it, valid from [`super::VALID_FROM`].
    pub fn log_key(&self) -> LogKey {
        self.log_key_valid_for(TimeRange {
            start: Some(super::VALID_FROM),
            end: None,
        })
    }

    pub fn log_key_valid_for(&self, valid_for: TimeRange) -> LogKey {
        LogKey {
            base_url: self.url.clone(),
            log_id: self.log_id(),
            spki_der: self.spki(),
            valid_for,
        }
    }
}

/// Fields of an SCT to make. [`SctSpec::at`] is a well-formed v1 SCT with ECDSA/SHA-256.
#[derive(Clone)]
pub struct SctSpec {
    pub version: u8,
    pub timestamp_ms: u64,
    pub extensions: Vec<u8>,
    /// TLS HashAlgorithm (4 = sha256).
    pub hash_algorithm: u8,
    /// TLS SignatureAlgorithm (1 = rsa, 3 = ecdsa).
    pub signature_algorithm: u8,
}

impl SctSpec {
    /// A v1 ECDSA/SHA-256 SCT at `timestamp_ms` (Unix milliseconds) without extensions.
    pub fn at(timestamp_ms: u64) -> Self {
        SctSpec {
            version: 0,
            timestamp_ms,
            extensions: vec![],
            hash_algorithm: 4,
            signature_algorithm: 3,
        }
    }
}

/// The TBSCertificate of a DER certificate: the first element of the outer SEQUENCE.
pub fn tbs_of(cert: &[u8]) -> Vec<u8> {
    fn header(bytes: &[u8]) -> (usize, usize) {
        assert_eq!(bytes[0], 0x30, "expected a SEQUENCE");
        let first = bytes[1];
        if first < 0x80 {
            return (2, usize::from(first));
        }
        let count = usize::from(first & 0x7f);
        let len = bytes[2..2 + count]
            .iter()
            .fold(0usize, |len, byte| (len << 8) | usize::from(*byte));
        (2 + count, len)
    }
    let (outer_header, _) = header(cert);
    let inner = &cert[outer_header..];
    let (tbs_header, tbs_len) = header(inner);
    inner[..tbs_header + tbs_len].to_vec()
}

/// RFC 6962 §3.2 signed data for a precertificate entry.
pub fn sct_signed_data(spec: &SctSpec, issuer_spki: &[u8], tbs: &[u8]) -> Vec<u8> {
    let mut data = vec![spec.version, 0];
    data.extend(spec.timestamp_ms.to_be_bytes());
    data.extend([0, 1]);
    data.extend(Sha256::digest(issuer_spki));
    let len = tbs.len() as u32;
    data.extend(&len.to_be_bytes()[1..]);
    data.extend(tbs);
    data.extend((spec.extensions.len() as u16).to_be_bytes());
    data.extend(&spec.extensions);
    data
}

/// A serialized `SignedCertificateTimestamp` by `log` over `tbs` issued by `issuer_spki`.
pub fn make_sct(log: &TestCtLog, spec: &SctSpec, issuer_spki: &[u8], tbs: &[u8]) -> Vec<u8> {
    let signature = log
        .key
        .sign(&sct_signed_data(spec, issuer_spki, tbs))
        .unwrap();
    let mut sct = vec![spec.version];
    sct.extend(log.log_id());
    sct.extend(spec.timestamp_ms.to_be_bytes());
    sct.extend((spec.extensions.len() as u16).to_be_bytes());
    sct.extend(&spec.extensions);
    sct.extend([spec.hash_algorithm, spec.signature_algorithm]);
    sct.extend((signature.len() as u16).to_be_bytes());
    sct.extend(signature);
    sct
}

/// The embedded SCT list extension: DER OCTET STRING around `opaque<..2^16-1>` of
/// `opaque<..2^16-1>` SCTs.
pub fn sct_list_extension(scts: &[Vec<u8>]) -> CustomExtension {
    let mut list = Vec::new();
    for sct in scts {
        list.extend((sct.len() as u16).to_be_bytes());
        list.extend(sct);
    }
    let mut tls = (list.len() as u16).to_be_bytes().to_vec();
    tls.extend(list);
    CustomExtension::from_oid_content(OID_SCT_LIST, der_octet_string(&tls))
}

pub fn der_utf8_string(text: &str) -> Vec<u8> {
    let mut out = vec![0x0c];
    out.extend(der_length(text.len()));
    out.extend_from_slice(text.as_bytes());
    out
}

pub fn der_octet_string(bytes: &[u8]) -> Vec<u8> {
    let mut out = vec![0x04];
    out.extend(der_length(bytes.len()));
    out.extend_from_slice(bytes);
    out
}

pub fn der_length(len: usize) -> Vec<u8> {
    if len < 0x80 {
        vec![len as u8]
    } else if len < 0x100 {
        vec![0x81, len as u8]
    } else {
        vec![0x82, (len >> 8) as u8, len as u8]
    }
}
