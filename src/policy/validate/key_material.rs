//! PEM public keys and certificates in policies: do they parse, and can verity use them?
//!
//! Each check returns the reason as text, which becomes the details of the field error.

use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_ASN1, ECDSA_P384_SHA384_ASN1, ECDSA_P521_SHA512_ASN1, ED25519,
    ParsedPublicKey, VerificationAlgorithm,
};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use x509_cert::Certificate;
use x509_cert::der::Decode as _;
use x509_cert::ext::pkix::BasicConstraints;
use x509_cert::spki::SubjectPublicKeyInfoRef;

const OID_EC_PUBLIC_KEY: &str = "1.2.840.10045.2.1";
const OID_RSA_ENCRYPTION: &str = "1.2.840.113549.1.1.1";
const OID_ED25519: &str = "1.3.101.112";
const OID_P256: &str = "1.2.840.10045.3.1.7";
const OID_P384: &str = "1.3.132.0.34";
const OID_P521: &str = "1.3.132.0.35";

const MIN_RSA_BITS: usize = 2048;
const MAX_RSA_BITS: usize = 8192;
const SUPPORTED_KEYS: &str =
    "verity supports ECDSA P-256, P-384 and P-521, RSA of 2048 to 8192 bits, and Ed25519";

/// A public key algorithm verity verifies signatures with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PublicKeyAlgorithm {
    EcdsaP256,
    EcdsaP384,
    EcdsaP521,
    Rsa { bits: usize },
    Ed25519,
}

/// One `-----BEGIN <label>-----` … `-----END <label>-----` block.
struct PemBlock {
    label: String,
    der: Vec<u8>,
}

/// Every PEM block in `text`; text around the blocks is ignored, as Go's `pem.Decode` does.
fn pem_blocks(text: &str) -> Result<Vec<PemBlock>, String> {
    const BEGIN: &str = "-----BEGIN ";
    let mut blocks = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find(BEGIN) {
        let after_begin = &rest[start + BEGIN.len()..];
        let Some(label_end) = after_begin.find("-----") else {
            return Err("PEM BEGIN line is not closed with \"-----\"".to_string());
        };
        let label = &after_begin[..label_end];
        let body_and_rest = &after_begin[label_end + "-----".len()..];
        let end_line = format!("-----END {label}-----");
        let Some(body_end) = body_and_rest.find(&end_line) else {
            return Err(format!("PEM block {label:?} has no {end_line:?} line"));
        };
        let body: String = body_and_rest[..body_end]
            .chars()
            .filter(|c| !c.is_ascii_whitespace())
            .collect();
        let der = STANDARD
            .decode(body.as_bytes())
            .map_err(|err| format!("PEM block {label:?} is not valid base64: {err}"))?;
        blocks.push(PemBlock {
            label: label.to_string(),
            der,
        });
        rest = &body_and_rest[body_end + end_line.len()..];
    }
    Ok(blocks)
}

/// A single PEM public key (`PUBLIC KEY`, or PKCS#1 `RSA PUBLIC KEY`) of an algorithm verity
/// supports.
pub(crate) fn check_public_key_pem(text: &str) -> Result<PublicKeyAlgorithm, String> {
    let blocks = pem_blocks(text)?;
    let block = match blocks.as_slice() {
        [] => return Err("no PEM block found; expected a \"PUBLIC KEY\" block".to_string()),
        [block] => block,
        more => {
            return Err(format!(
                "found {} PEM blocks; expected exactly one public key",
                more.len()
            ));
        }
    };
    match block.label.as_str() {
        "PUBLIC KEY" => check_subject_public_key_info(&block.der),
        "RSA PUBLIC KEY" => check_rsa_key(&block.der),
        other => Err(format!(
            "PEM block is {other:?}; expected \"PUBLIC KEY\" or \"RSA PUBLIC KEY\""
        )),
    }
}

/// A DER SubjectPublicKeyInfo, as in the `PUBLIC KEY` PEM block and in certificates.
pub(crate) fn check_subject_public_key_info(der: &[u8]) -> Result<PublicKeyAlgorithm, String> {
    let spki = SubjectPublicKeyInfoRef::from_der(der)
        .map_err(|err| format!("not a DER SubjectPublicKeyInfo: {err}"))?;
    let algorithm = spki.algorithm.oid.to_string();
    match algorithm.as_str() {
        OID_EC_PUBLIC_KEY => {
            let curve = spki
                .algorithm
                .parameters_oid()
                .map_err(|err| format!("EC key without a named curve: {err}"))?
                .to_string();
            let (name, verification, parsed): (_, &'static dyn VerificationAlgorithm, _) =
                match curve.as_str() {
                    OID_P256 => (
                        "P-256",
                        &ECDSA_P256_SHA256_ASN1,
                        PublicKeyAlgorithm::EcdsaP256,
                    ),
                    OID_P384 => (
                        "P-384",
                        &ECDSA_P384_SHA384_ASN1,
                        PublicKeyAlgorithm::EcdsaP384,
                    ),
                    OID_P521 => (
                        "P-521",
                        &ECDSA_P521_SHA512_ASN1,
                        PublicKeyAlgorithm::EcdsaP521,
                    ),
                    other => {
                        return Err(format!(
                            "unsupported elliptic curve {}; {SUPPORTED_KEYS}",
                            curve_name(other)
                        ));
                    }
                };
            ParsedPublicKey::new(verification, der)
                .map_err(|err| format!("invalid {name} public key: {err}"))?;
            Ok(parsed)
        }
        OID_RSA_ENCRYPTION => check_rsa_key(der),
        OID_ED25519 => {
            ParsedPublicKey::new(&ED25519, der)
                .map_err(|err| format!("invalid Ed25519 public key: {err}"))?;
            Ok(PublicKeyAlgorithm::Ed25519)
        }
        other => Err(format!(
            "unsupported public key algorithm {}; {SUPPORTED_KEYS}",
            algorithm_name(other)
        )),
    }
}

/// An RSA key, PKCS#1 or SubjectPublicKeyInfo, of a size verity accepts.
fn check_rsa_key(der: &[u8]) -> Result<PublicKeyAlgorithm, String> {
    let key = aws_lc_rs::rsa::PublicKey::from_der(der)
        .map_err(|err| format!("invalid RSA public key: {err}"))?;
    let modulus = key.modulus();
    let modulus = modulus.big_endian_without_leading_zero();
    let bits = match modulus.first() {
        Some(first) => (modulus.len() - 1) * 8 + (8 - first.leading_zeros() as usize),
        None => 0,
    };
    if bits < MIN_RSA_BITS {
        return Err(format!(
            "RSA key of {bits} bits is too small; verity requires at least {MIN_RSA_BITS} bits"
        ));
    }
    if bits > MAX_RSA_BITS {
        return Err(format!(
            "RSA key of {bits} bits is too large; verity accepts at most {MAX_RSA_BITS} bits"
        ));
    }
    Ok(PublicKeyAlgorithm::Rsa { bits })
}

fn curve_name(oid: &str) -> String {
    match oid {
        "1.3.132.0.10" => format!("secp256k1 ({oid})"),
        "1.2.840.10045.3.1.1" => format!("P-192 ({oid})"),
        "1.3.132.0.33" => format!("P-224 ({oid})"),
        _ => oid.to_string(),
    }
}

fn algorithm_name(oid: &str) -> String {
    match oid {
        "1.3.101.113" => format!("Ed448 ({oid})"),
        "1.3.101.110" => format!("X25519 ({oid})"),
        "1.3.101.111" => format!("X448 ({oid})"),
        "1.2.840.10040.4.1" => format!("DSA ({oid})"),
        "1.2.840.113549.1.1.10" => format!("RSASSA-PSS ({oid})"),
        _ => oid.to_string(),
    }
}

/// What validation needs to know about one certificate of a chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct CertificateFacts {
    /// The basic constraints extension says `cA: true`.
    pub is_ca: bool,
}

/// One or more PEM `CERTIFICATE` blocks, every one of which parses.
pub(crate) fn check_certificates_pem(text: &str) -> Result<Vec<CertificateFacts>, String> {
    let blocks = pem_blocks(text)?;
    if blocks.is_empty() {
        return Err("no PEM block found; expected a \"CERTIFICATE\" block".to_string());
    }
    blocks
        .iter()
        .enumerate()
        .map(|(index, block)| {
            if block.label != "CERTIFICATE" {
                return Err(format!(
                    "PEM block {index} is {:?}; expected \"CERTIFICATE\"",
                    block.label
                ));
            }
            certificate_facts(&block.der)
                .map_err(|err| format!("certificate {index} does not parse: {err}"))
        })
        .collect()
}

/// The reference's chain split (sigstore `UnmarshalCertificatesFromPEM`): every block must be
/// a certificate; any undecodable PEM gives its text, `error during PEM decoding`.
pub(crate) fn split_certificate_chain(pem: &[u8]) -> Result<Vec<CertificateFacts>, String> {
    const PEM_DECODING: &str = "error during PEM decoding";
    let text = std::str::from_utf8(pem).map_err(|_| PEM_DECODING.to_string())?;
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Ok(Vec::new());
    }
    let blocks = pem_blocks(trimmed).map_err(|_| PEM_DECODING.to_string())?;
    if blocks.is_empty() || !trimmed.ends_with("-----") {
        return Err(PEM_DECODING.to_string());
    }
    blocks
        .iter()
        .map(|block| certificate_facts(&block.der).map_err(|err| format!("x509: {err}")))
        .collect()
}

fn certificate_facts(der: &[u8]) -> Result<CertificateFacts, String> {
    let certificate = Certificate::from_der(der).map_err(|err| err.to_string())?;
    let is_ca = certificate
        .tbs_certificate()
        .get_extension::<BasicConstraints>()
        .map_err(|err| format!("invalid basic constraints: {err}"))?
        .is_some_and(|(_critical, constraints)| constraints.ca);
    Ok(CertificateFacts { is_ca })
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/policies/pem");

    fn fixture(name: &str) -> String {
        std::fs::read_to_string(format!("{FIXTURES}/{name}")).unwrap()
    }

    #[test]
    fn supported_public_keys() {
        let cases = [
            ("ec-p256.pub.pem", PublicKeyAlgorithm::EcdsaP256),
            ("ec-p384.pub.pem", PublicKeyAlgorithm::EcdsaP384),
            ("ec-p521.pub.pem", PublicKeyAlgorithm::EcdsaP521),
            ("rsa-2048.pub.pem", PublicKeyAlgorithm::Rsa { bits: 2048 }),
            (
                "rsa-2048.pkcs1.pub.pem",
                PublicKeyAlgorithm::Rsa { bits: 2048 },
            ),
            ("ed25519.pub.pem", PublicKeyAlgorithm::Ed25519),
        ];
        for (file, expected) in cases {
            assert_eq!(check_public_key_pem(&fixture(file)), Ok(expected), "{file}");
        }
    }

    #[test]
    fn rejected_public_keys() {
        let cases = [
            (
                fixture("rsa-1024.pub.pem"),
                "RSA key of 1024 bits is too small; verity requires at least 2048 bits",
            ),
            (
                fixture("ec-secp256k1.pub.pem"),
                "unsupported elliptic curve secp256k1 (1.3.132.0.10); verity supports ECDSA P-256, P-384 and P-521, RSA of 2048 to 8192 bits, and Ed25519",
            ),
            (
                fixture("ed448.pub.pem"),
                "unsupported public key algorithm Ed448 (1.3.101.113); verity supports ECDSA P-256, P-384 and P-521, RSA of 2048 to 8192 bits, and Ed25519",
            ),
            (
                fixture("root-ca.cert.pem"),
                "PEM block is \"CERTIFICATE\"; expected \"PUBLIC KEY\" or \"RSA PUBLIC KEY\"",
            ),
            (
                "---some key data----".to_string(),
                "no PEM block found; expected a \"PUBLIC KEY\" block",
            ),
            (
                format!(
                    "{}{}",
                    fixture("ec-p256.pub.pem"),
                    fixture("ed25519.pub.pem")
                ),
                "found 2 PEM blocks; expected exactly one public key",
            ),
            (
                "-----BEGIN PUBLIC KEY-----\nnot*base64\n-----END PUBLIC KEY-----\n".to_string(),
                "PEM block \"PUBLIC KEY\" is not valid base64: Invalid symbol 42, offset 3.",
            ),
            (
                "-----BEGIN PUBLIC KEY-----\nAAAA\n".to_string(),
                "PEM block \"PUBLIC KEY\" has no \"-----END PUBLIC KEY-----\" line",
            ),
            (
                "-----BEGIN PUBLIC KEY-----\nMAA=\n-----END PUBLIC KEY-----\n".to_string(),
                "not a DER SubjectPublicKeyInfo: ASN.1 DER message is incomplete: expected 3, actual 2 at DER byte 2",
            ),
        ];
        for (pem, expected) in cases {
            assert_eq!(
                check_public_key_pem(&pem),
                Err(expected.to_string()),
                "{pem}"
            );
        }
    }

    #[test]
    fn ec_point_must_be_on_the_curve() {
        // The P-256 fixture with the last byte of the point changed.
        let der = STANDARD
            .decode(
                fixture("ec-p256.pub.pem")
                    .lines()
                    .filter(|line| !line.starts_with("-----"))
                    .collect::<String>(),
            )
            .unwrap();
        let mut broken = der.clone();
        let last = broken.len() - 1;
        broken[last] ^= 0x01;
        assert_eq!(
            check_subject_public_key_info(&der),
            Ok(PublicKeyAlgorithm::EcdsaP256)
        );
        assert_eq!(
            check_subject_public_key_info(&broken),
            Err("invalid P-256 public key: InvalidEncoding".to_string())
        );
    }

    #[test]
    fn certificates() {
        let chain = format!(
            "{}{}",
            fixture("intermediate-ca.cert.pem"),
            fixture("root-ca.cert.pem")
        );
        assert_eq!(
            check_certificates_pem(&chain),
            Ok(vec![CertificateFacts { is_ca: true }; 2])
        );
        assert_eq!(
            check_certificates_pem(&fixture("tsa-leaf-1.cert.pem")),
            Ok(vec![CertificateFacts { is_ca: false }])
        );
        assert_eq!(
            check_certificates_pem(&fixture("ec-p256.pub.pem")),
            Err("PEM block 0 is \"PUBLIC KEY\"; expected \"CERTIFICATE\"".to_string())
        );
        assert_eq!(
            check_certificates_pem("nothing here"),
            Err("no PEM block found; expected a \"CERTIFICATE\" block".to_string())
        );
        assert_eq!(
            check_certificates_pem(
                "-----BEGIN CERTIFICATE-----\nMAA=\n-----END CERTIFICATE-----\n"
            ),
            Err(
                "certificate 0 does not parse: ASN.1 DER message is incomplete: expected 3, actual 2 at DER byte 2"
                    .to_string()
            )
        );
    }

    #[test]
    fn reference_chain_split() {
        assert_eq!(
            split_certificate_chain(b"INVALID"),
            Err("error during PEM decoding".to_string())
        );
        assert_eq!(split_certificate_chain(b"  \n"), Ok(Vec::new()));
        let chain = format!(
            "{}{}{}",
            fixture("tsa-leaf-1.cert.pem"),
            fixture("intermediate-ca.cert.pem"),
            fixture("root-ca.cert.pem")
        );
        assert_eq!(
            split_certificate_chain(chain.as_bytes()),
            Ok(vec![
                CertificateFacts { is_ca: false },
                CertificateFacts { is_ca: true },
                CertificateFacts { is_ca: true }
            ])
        );
    }
}
