//! PEM public keys and certificates in policies: do they parse, and can verity use them?
//!
//! Keys are parsed by [`crate::verify::key::PublicKey`] and PEM by [`crate::verify::pem`], the
//! very code verification uses, so a key that validates is a key verity can verify with.
//! Each check returns the reason as text, which becomes the details of the field error.

use x509_cert::Certificate;
use x509_cert::der::Decode as _;
use x509_cert::ext::pkix::BasicConstraints;

use crate::verify::key::{KeyAlgorithm, PublicKey};
use crate::verify::pem;

/// A single PEM public key (`PUBLIC KEY`, or PKCS#1 `RSA PUBLIC KEY`) of an algorithm verity
/// supports.
pub(crate) fn check_public_key_pem(text: &str) -> Result<KeyAlgorithm, String> {
    PublicKey::from_pem(text)
        .map(|key| key.algorithm())
        .map_err(|err| err.to_string())
}

/// What validation needs to know about a certificate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct CertificateFacts {
    pub is_ca: bool,
}

/// One or more PEM `CERTIFICATE` blocks that parse (a policy's `keyless.ca-cert.data`).
pub(crate) fn check_certificates_pem(text: &str) -> Result<Vec<CertificateFacts>, String> {
    let blocks = pem::parse_blocks(text).map_err(|err| err.to_string())?;
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

/// A TrustRoot `certChain` (PEM certificates), with the reference's error texts.
pub(crate) fn split_certificate_chain(pem_bytes: &[u8]) -> Result<Vec<CertificateFacts>, String> {
    const PEM_DECODING: &str = "error during PEM decoding";
    let text = std::str::from_utf8(pem_bytes).map_err(|_| PEM_DECODING.to_string())?;
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    let blocks = pem::parse_blocks(text).map_err(|_| PEM_DECODING.to_string())?;
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
            ("ec-p256.pub.pem", KeyAlgorithm::EcdsaP256),
            ("ec-p384.pub.pem", KeyAlgorithm::EcdsaP384),
            ("ec-p521.pub.pem", KeyAlgorithm::EcdsaP521),
            ("rsa-2048.pub.pem", KeyAlgorithm::Rsa { bits: 2048 }),
            ("rsa-2048.pkcs1.pub.pem", KeyAlgorithm::Rsa { bits: 2048 }),
            ("ed25519.pub.pem", KeyAlgorithm::Ed25519),
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
                "expected a PEM block \"PUBLIC KEY\" or \"RSA PUBLIC KEY\", found \"CERTIFICATE\"",
            ),
            (
                "---some key data----".to_string(),
                "invalid PEM public key: no PEM block found (expected a line \"-----BEGIN <label>-----\")",
            ),
            (
                format!(
                    "{}{}",
                    fixture("ec-p256.pub.pem"),
                    fixture("ed25519.pub.pem")
                ),
                "expected one PEM public key, found 2 PEM blocks",
            ),
            (
                "-----BEGIN PUBLIC KEY-----\nnot*base64\n-----END PUBLIC KEY-----\n".to_string(),
                "invalid PEM public key: PEM block \"PUBLIC KEY\" is not valid base64: Invalid symbol 42, offset 3.",
            ),
            (
                "-----BEGIN PUBLIC KEY-----\nAAAA\n".to_string(),
                "invalid PEM public key: PEM block \"PUBLIC KEY\" has no matching \"-----END PUBLIC KEY-----\" line",
            ),
            (
                "-----BEGIN PUBLIC KEY-----\nMAA=\n-----END PUBLIC KEY-----\n".to_string(),
                "invalid SubjectPublicKeyInfo DER: ASN.1 DER message is incomplete: expected 3, actual 2 at DER byte 2",
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
            Err("no PEM block found (expected a line \"-----BEGIN <label>-----\")".to_string())
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
