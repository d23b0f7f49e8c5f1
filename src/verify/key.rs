//! Public keys and raw signature verification, with cosign/policy-controller semantics.
//!
//! ECDSA and RSA hash the message with the authority's `hashAlgorithm` whatever the key size
//! (policy-controller does; a P-384 key with sha256 is valid), ECDSA signatures are ASN.1 DER,
//! RSA accepts PKCS#1 v1.5 and PSS, Ed25519 signs the message itself (the hash is ignored).
//!
//! Supported (key, hash) pairs:
//!
//! | key | sha224 | sha256 | sha384 | sha512 |
//! |---|---|---|---|---|
//! | ECDSA P-256, P-384, P-521 | yes | yes | yes | yes |
//! | RSA 2048–8192, PKCS#1 v1.5 | no | yes | yes | yes |
//! | RSA 2048–8192, PSS (salt = hash length, or maximal) | no | yes | yes | yes |
//! | Ed25519 | (ignored) | (ignored) | (ignored) | (ignored) |
//!
//! RSA with sha224 is refused with a clear error: aws-lc-rs has no such verification algorithm.

use std::fmt;
use std::str::FromStr;

use aws_lc_rs::digest;
use aws_lc_rs::signature::{
    self as lc, EcdsaVerificationAlgorithm, ParsedPublicKey, RsaParameters, RsaPssSaltLength,
    UnparsedPublicKey, VerificationAlgorithm,
};
use sha2::{Digest as _, Sha256};
use x509_cert::der::asn1::BitString;
use x509_cert::der::{Any, Decode, Encode};
use x509_cert::spki::{
    AlgorithmIdentifierOwned, ObjectIdentifier, SubjectPublicKeyInfoOwned, SubjectPublicKeyInfoRef,
};

use super::pem::{self, PemError};

const ID_EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const SECP256R1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const SECP384R1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");
const SECP521R1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.35");
const RSA_ENCRYPTION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const ID_ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");

const RSA_MIN_BITS: u32 = 2048;
const RSA_MAX_BITS: u32 = 8192;
const SUPPORTED_KEYS: &str =
    "verity supports ECDSA P-256, P-384 and P-521, RSA of 2048 to 8192 bits, and Ed25519";

/// An OID with its common name when it is a key type or curve people try: `secp256k1 (1.3.132.0.10)`.
fn named_oid(oid: &str) -> String {
    let name = match oid {
        "1.3.132.0.10" => "secp256k1",
        "1.2.840.10045.3.1.1" => "P-192",
        "1.3.132.0.33" => "P-224",
        "1.3.101.113" => "Ed448",
        "1.3.101.110" => "X25519",
        "1.3.101.111" => "X448",
        "1.2.840.10040.4.1" => "DSA",
        "1.2.840.113549.1.1.10" => "RSASSA-PSS",
        _ => return oid.to_string(),
    };
    format!("{name} ({oid})")
}

// Go's rsa.PSSSaltLengthAuto (sigstore's default PSS signer) signs with the maximal salt;
// most other signers (openssl with `rsa_pss_saltlen:digest`, Java, KMSes) use the hash length.
static RSA_PSS_SHA256_MAX_SALT: RsaParameters =
    lc::RSA_PSS_2048_8192_SHA256.with_pss_salt_length(RsaPssSaltLength::Max);
static RSA_PSS_SHA384_MAX_SALT: RsaParameters =
    lc::RSA_PSS_2048_8192_SHA384.with_pss_salt_length(RsaPssSaltLength::Max);
static RSA_PSS_SHA512_MAX_SALT: RsaParameters =
    lc::RSA_PSS_2048_8192_SHA512.with_pss_salt_length(RsaPssSaltLength::Max);

/// The digest applied to the message before ECDSA or RSA signing (cosign `--hash-algorithm`,
/// policy-controller `hashAlgorithm`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum HashAlgorithm {
    Sha224,
    #[default]
    Sha256,
    Sha384,
    Sha512,
}

impl HashAlgorithm {
    pub const ALL: [HashAlgorithm; 4] = [
        HashAlgorithm::Sha224,
        HashAlgorithm::Sha256,
        HashAlgorithm::Sha384,
        HashAlgorithm::Sha512,
    ];

    /// The lower-case name used in policies: `sha256`.
    pub fn name(self) -> &'static str {
        match self {
            HashAlgorithm::Sha224 => "sha224",
            HashAlgorithm::Sha256 => "sha256",
            HashAlgorithm::Sha384 => "sha384",
            HashAlgorithm::Sha512 => "sha512",
        }
    }

    fn digest_algorithm(self) -> &'static digest::Algorithm {
        match self {
            HashAlgorithm::Sha224 => &digest::SHA224,
            HashAlgorithm::Sha256 => &digest::SHA256,
            HashAlgorithm::Sha384 => &digest::SHA384,
            HashAlgorithm::Sha512 => &digest::SHA512,
        }
    }

    /// The digest of `data`.
    pub fn digest(self, data: &[u8]) -> Vec<u8> {
        digest::digest(self.digest_algorithm(), data)
            .as_ref()
            .to_vec()
    }
}

impl fmt::Display for HashAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for HashAlgorithm {
    type Err = KeyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        HashAlgorithm::ALL
            .into_iter()
            .find(|hash| hash.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| KeyError::UnknownHashAlgorithm {
                found: s.to_string(),
            })
    }
}

/// The kind of a public key, for messages and for choosing the verification.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KeyAlgorithm {
    EcdsaP256,
    EcdsaP384,
    EcdsaP521,
    Rsa { bits: u32 },
    Ed25519,
}

impl fmt::Display for KeyAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyAlgorithm::EcdsaP256 => f.write_str("ECDSA P-256"),
            KeyAlgorithm::EcdsaP384 => f.write_str("ECDSA P-384"),
            KeyAlgorithm::EcdsaP521 => f.write_str("ECDSA P-521"),
            KeyAlgorithm::Rsa { bits } => write!(f, "RSA {bits}"),
            KeyAlgorithm::Ed25519 => f.write_str("Ed25519"),
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    #[error("invalid PEM public key: {0}")]
    Pem(#[from] PemError),
    #[error("expected a PEM block \"PUBLIC KEY\" or \"RSA PUBLIC KEY\", found \"{found}\"")]
    UnexpectedPemLabel { found: String },
    #[error("expected one PEM public key, found {count} PEM blocks")]
    MultiplePemBlocks { count: usize },
    #[error("invalid {what} DER: {cause}")]
    Der { what: &'static str, cause: String },
    #[error("unsupported public key algorithm {oid}; {SUPPORTED_KEYS}")]
    UnsupportedKeyType { oid: String },
    #[error("unsupported elliptic curve {curve}; {SUPPORTED_KEYS}")]
    UnsupportedCurve { curve: String },
    #[error("RSA key of {bits} bits is too small; verity requires at least {RSA_MIN_BITS} bits")]
    RsaKeyTooSmall { bits: u32 },
    #[error("RSA key of {bits} bits is too large; verity accepts at most {RSA_MAX_BITS} bits")]
    RsaKeyTooLarge { bits: u32 },
    #[error("invalid {algorithm} public key: {cause}")]
    InvalidKey {
        algorithm: KeyAlgorithm,
        cause: String,
    },
    #[error("unknown hash algorithm \"{found}\" (expected sha224, sha256, sha384 or sha512)")]
    UnknownHashAlgorithm { found: String },
}

impl KeyError {
    pub fn reason(&self) -> &'static str {
        match self {
            KeyError::Pem(_) => "key_pem",
            KeyError::UnexpectedPemLabel { .. } => "key_pem_label",
            KeyError::MultiplePemBlocks { .. } => "key_pem_multiple",
            KeyError::Der { .. } => "key_der",
            KeyError::UnsupportedKeyType { .. } => "key_unsupported_type",
            KeyError::UnsupportedCurve { .. } => "key_unsupported_curve",
            KeyError::RsaKeyTooSmall { .. } | KeyError::RsaKeyTooLarge { .. } => "key_rsa_size",
            KeyError::InvalidKey { .. } => "key_invalid",
            KeyError::UnknownHashAlgorithm { .. } => "key_unknown_hash",
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SignatureError {
    #[error("signature is empty")]
    Empty,
    #[error("{hash} is not supported with {algorithm} keys (supported: sha256, sha384, sha512)")]
    UnsupportedHash {
        algorithm: KeyAlgorithm,
        hash: HashAlgorithm,
    },
    #[error("signature does not verify with the {algorithm} key {fingerprint} ({how})")]
    Invalid {
        algorithm: KeyAlgorithm,
        /// The key's sha256 fingerprint, shortened.
        fingerprint: String,
        /// How the message was checked, e.g. "message hashed with sha256".
        how: String,
    },
}

impl SignatureError {
    pub fn reason(&self) -> &'static str {
        match self {
            SignatureError::Empty => "signature_empty",
            SignatureError::UnsupportedHash { .. } => "signature_unsupported_hash",
            SignatureError::Invalid { .. } => "signature_invalid",
        }
    }
}

/// A parsed, validated public key (SubjectPublicKeyInfo).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PublicKey {
    spki_der: Vec<u8>,
    algorithm: KeyAlgorithm,
}

impl PublicKey {
    /// A `PUBLIC KEY` (SPKI) or `RSA PUBLIC KEY` (PKCS#1) PEM block; whitespace around it is fine.
    pub fn from_pem(pem_text: &str) -> Result<Self, KeyError> {
        let blocks = pem::parse_blocks(pem_text)?;
        if blocks.len() != 1 {
            return Err(KeyError::MultiplePemBlocks {
                count: blocks.len(),
            });
        }
        let block = &blocks[0];
        match block.label.as_str() {
            "PUBLIC KEY" => Self::from_spki_der(&block.der),
            "RSA PUBLIC KEY" => Self::from_spki_der(&rsa_pkcs1_to_spki(&block.der)?),
            other => Err(KeyError::UnexpectedPemLabel {
                found: other.to_string(),
            }),
        }
    }

    /// A DER SubjectPublicKeyInfo. The key material is validated (point on the curve, RSA size).
    pub fn from_spki_der(der: &[u8]) -> Result<Self, KeyError> {
        let spki = SubjectPublicKeyInfoRef::from_der(der).map_err(|e| KeyError::Der {
            what: "SubjectPublicKeyInfo",
            cause: e.to_string(),
        })?;
        let key_bytes = spki
            .subject_public_key
            .as_bytes()
            .ok_or_else(|| KeyError::Der {
                what: "SubjectPublicKeyInfo",
                cause: "public key bit string has unused bits".to_string(),
            })?;
        let oid = spki.algorithm.oid;
        let algorithm = if oid == ID_EC_PUBLIC_KEY {
            let curve = spki.algorithm.parameters_oid().map_err(|e| KeyError::Der {
                what: "EC public key parameters",
                cause: e.to_string(),
            })?;
            match curve {
                c if c == SECP256R1 => KeyAlgorithm::EcdsaP256,
                c if c == SECP384R1 => KeyAlgorithm::EcdsaP384,
                c if c == SECP521R1 => KeyAlgorithm::EcdsaP521,
                other => {
                    return Err(KeyError::UnsupportedCurve {
                        curve: named_oid(&other.to_string()),
                    });
                }
            }
        } else if oid == RSA_ENCRYPTION {
            let bits = RsaParameters::public_modulus_len(key_bytes).map_err(|_| KeyError::Der {
                what: "RSA public key",
                cause: "not a PKCS#1 RSAPublicKey".to_string(),
            })?;
            if bits < RSA_MIN_BITS {
                return Err(KeyError::RsaKeyTooSmall { bits });
            }
            if bits > RSA_MAX_BITS {
                return Err(KeyError::RsaKeyTooLarge { bits });
            }
            KeyAlgorithm::Rsa { bits }
        } else if oid == ID_ED25519 {
            KeyAlgorithm::Ed25519
        } else {
            return Err(KeyError::UnsupportedKeyType {
                oid: named_oid(&oid.to_string()),
            });
        };
        // Parse once with aws-lc so that an invalid point or modulus fails here, at load time,
        // rather than as a confusing "signature does not verify" later.
        ParsedPublicKey::new(validation_algorithm(algorithm), der).map_err(|e| {
            KeyError::InvalidKey {
                algorithm,
                cause: e.to_string(),
            }
        })?;
        Ok(PublicKey {
            spki_der: der.to_vec(),
            algorithm,
        })
    }

    /// Verifies `signature` over `message`. ECDSA and RSA hash the message with `hash`;
    /// Ed25519 ignores it.
    pub fn verify(
        &self,
        message: &[u8],
        signature: &[u8],
        hash: HashAlgorithm,
    ) -> Result<(), SignatureError> {
        if signature.is_empty() {
            return Err(SignatureError::Empty);
        }
        let verified = match self.algorithm {
            KeyAlgorithm::EcdsaP256 | KeyAlgorithm::EcdsaP384 | KeyAlgorithm::EcdsaP521 => {
                self.verify_ecdsa(message, signature, hash)
            }
            KeyAlgorithm::Rsa { .. } => self.verify_rsa(message, signature, hash)?,
            KeyAlgorithm::Ed25519 => UnparsedPublicKey::new(&lc::ED25519, &self.spki_der)
                .verify(message, signature)
                .is_ok(),
        };
        if verified {
            return Ok(());
        }
        let how = match self.algorithm {
            KeyAlgorithm::Ed25519 => "Ed25519 signs the message itself".to_string(),
            KeyAlgorithm::Rsa { .. } => {
                format!("message hashed with {hash}, PKCS#1 v1.5 or PSS padding")
            }
            _ => format!("message hashed with {hash}"),
        };
        Err(SignatureError::Invalid {
            algorithm: self.algorithm,
            fingerprint: short_fingerprint(&self.fingerprint()),
            how,
        })
    }

    fn verify_ecdsa(&self, message: &[u8], signature: &[u8], hash: HashAlgorithm) -> bool {
        use HashAlgorithm::*;
        use KeyAlgorithm::*;
        let ready: Option<&'static EcdsaVerificationAlgorithm> = match (self.algorithm, hash) {
            (EcdsaP256, Sha256) => Some(&lc::ECDSA_P256_SHA256_ASN1),
            (EcdsaP256, Sha384) => Some(&lc::ECDSA_P256_SHA384_ASN1),
            (EcdsaP256, Sha512) => Some(&lc::ECDSA_P256_SHA512_ASN1),
            (EcdsaP384, Sha256) => Some(&lc::ECDSA_P384_SHA256_ASN1),
            (EcdsaP384, Sha384) => Some(&lc::ECDSA_P384_SHA384_ASN1),
            (EcdsaP384, Sha512) => Some(&lc::ECDSA_P384_SHA512_ASN1),
            (EcdsaP521, Sha224) => Some(&lc::ECDSA_P521_SHA224_ASN1),
            (EcdsaP521, Sha256) => Some(&lc::ECDSA_P521_SHA256_ASN1),
            (EcdsaP521, Sha384) => Some(&lc::ECDSA_P521_SHA384_ASN1),
            (EcdsaP521, Sha512) => Some(&lc::ECDSA_P521_SHA512_ASN1),
            _ => None,
        };
        if let Some(algorithm) = ready {
            return UnparsedPublicKey::new(algorithm, &self.spki_der)
                .verify(message, signature)
                .is_ok();
        }
        // sha224 on P-256/P-384 has no ready algorithm. ECDSA turns the digest into the integer
        // of its leftmost min(digest, order) bits; a 224-bit digest left-padded with zero bytes
        // to the curve's own digest size is the same integer, so verifying that padded value
        // as a sha256 (P-256) or sha384 (P-384) digest is exactly ECDSA with sha224.
        let (algorithm, carrier): (&'static EcdsaVerificationAlgorithm, _) = match self.algorithm {
            EcdsaP256 => (&lc::ECDSA_P256_SHA256_ASN1, &digest::SHA256),
            EcdsaP384 => (&lc::ECDSA_P384_SHA384_ASN1, &digest::SHA384),
            _ => return false,
        };
        let digest224 = hash.digest(message);
        let mut padded = vec![0u8; carrier.output_len() - digest224.len()];
        padded.extend_from_slice(&digest224);
        let Ok(carried) = digest::Digest::import_less_safe(&padded, carrier) else {
            return false;
        };
        UnparsedPublicKey::new(algorithm, &self.spki_der)
            .verify_digest(&carried, signature)
            .is_ok()
    }

    fn verify_rsa(
        &self,
        message: &[u8],
        signature: &[u8],
        hash: HashAlgorithm,
    ) -> Result<bool, SignatureError> {
        let candidates: [&'static RsaParameters; 3] = match hash {
            HashAlgorithm::Sha256 => [
                &lc::RSA_PKCS1_2048_8192_SHA256,
                &lc::RSA_PSS_2048_8192_SHA256,
                &RSA_PSS_SHA256_MAX_SALT,
            ],
            HashAlgorithm::Sha384 => [
                &lc::RSA_PKCS1_2048_8192_SHA384,
                &lc::RSA_PSS_2048_8192_SHA384,
                &RSA_PSS_SHA384_MAX_SALT,
            ],
            HashAlgorithm::Sha512 => [
                &lc::RSA_PKCS1_2048_8192_SHA512,
                &lc::RSA_PSS_2048_8192_SHA512,
                &RSA_PSS_SHA512_MAX_SALT,
            ],
            HashAlgorithm::Sha224 => {
                return Err(SignatureError::UnsupportedHash {
                    algorithm: self.algorithm,
                    hash,
                });
            }
        };
        Ok(candidates.into_iter().any(|params| {
            UnparsedPublicKey::new(params, &self.spki_der)
                .verify(message, signature)
                .is_ok()
        }))
    }

    /// The DER SubjectPublicKeyInfo.
    pub fn spki_der(&self) -> &[u8] {
        &self.spki_der
    }

    pub fn algorithm(&self) -> KeyAlgorithm {
        self.algorithm
    }

    /// Hex sha256 of the SPKI DER; for a Rekor key this is its log id.
    pub fn fingerprint(&self) -> String {
        hex::encode(Sha256::digest(&self.spki_der))
    }
}

/// Any algorithm that accepts the key type, to let aws-lc validate the key material.
fn validation_algorithm(algorithm: KeyAlgorithm) -> &'static dyn VerificationAlgorithm {
    match algorithm {
        KeyAlgorithm::EcdsaP256 => &lc::ECDSA_P256_SHA256_ASN1,
        KeyAlgorithm::EcdsaP384 => &lc::ECDSA_P384_SHA384_ASN1,
        KeyAlgorithm::EcdsaP521 => &lc::ECDSA_P521_SHA512_ASN1,
        KeyAlgorithm::Rsa { .. } => &lc::RSA_PKCS1_2048_8192_SHA256,
        KeyAlgorithm::Ed25519 => &lc::ED25519,
    }
}

/// Wraps a PKCS#1 RSAPublicKey into a SubjectPublicKeyInfo, so every key is held as SPKI.
fn rsa_pkcs1_to_spki(pkcs1_der: &[u8]) -> Result<Vec<u8>, KeyError> {
    let der_error = |e: x509_cert::der::Error| KeyError::Der {
        what: "RSA PUBLIC KEY",
        cause: e.to_string(),
    };
    let spki = SubjectPublicKeyInfoOwned {
        algorithm: AlgorithmIdentifierOwned {
            oid: RSA_ENCRYPTION,
            parameters: Some(Any::null()),
        },
        subject_public_key: BitString::from_bytes(pkcs1_der).map_err(der_error)?,
    };
    spki.to_der().map_err(der_error)
}

/// The first 16 hex digits of a fingerprint, enough to tell keys apart in a message.
pub(crate) fn short_fingerprint(fingerprint: &str) -> String {
    let head: String = fingerprint.chars().take(16).collect();
    format!("sha256:{head}…")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::{Path, PathBuf};
    use std::process::Command;
    use std::sync::OnceLock;

    /// Keys made once by the openssl CLI for all tests in this module.
    struct Keys {
        dir: tempfile::TempDir,
    }

    impl Keys {
        fn path(&self, name: &str) -> PathBuf {
            self.dir.path().join(name)
        }
    }

    fn openssl(args: &[&str]) -> std::process::Output {
        let output = Command::new("openssl")
            .args(args)
            .output()
            .unwrap_or_else(|e| {
                panic!("cannot run openssl ({e}); install it: apt-get install -y openssl")
            });
        assert!(
            output.status.success(),
            "openssl {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        output
    }

    fn p(path: &Path) -> &str {
        path.to_str().unwrap()
    }

    const KEY_SPECS: [(&str, &[&str]); 8] = [
        (
            "p256",
            &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
        ),
        (
            "p256b",
            &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
        ),
        (
            "p384",
            &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384"],
        ),
        (
            "p521",
            &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-521"],
        ),
        (
            "rsa",
            &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
        ),
        (
            "rsab",
            &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
        ),
        ("ed", &["-algorithm", "ed25519"]),
        ("edb", &["-algorithm", "ed25519"]),
    ];

    fn keys() -> &'static Keys {
        static KEYS: OnceLock<Keys> = OnceLock::new();
        KEYS.get_or_init(|| {
            let keys = Keys {
                dir: tempfile::tempdir().unwrap(),
            };
            for (name, algorithm) in KEY_SPECS {
                let key = keys.path(&format!("{name}.key"));
                let mut args = vec!["genpkey"];
                args.extend_from_slice(algorithm);
                args.extend_from_slice(&["-out", p(&key)]);
                openssl(&args);
                let public = keys.path(&format!("{name}.pub"));
                openssl(&["pkey", "-in", p(&key), "-pubout", "-out", p(&public)]);
            }
            let message = keys.path("message");
            std::fs::write(&message, MESSAGE).unwrap();
            keys
        })
    }

    const MESSAGE: &[u8] = br#"{"critical":{"identity":{"docker-reference":"127.0.0.1:5000/test/app"},"image":{"docker-manifest-digest":"sha256:0000000000000000000000000000000000000000000000000000000000000000"},"type":"cosign container image signature"},"optional":null}"#;

    fn public_key(name: &str) -> PublicKey {
        let pem = std::fs::read_to_string(keys().path(&format!("{name}.pub"))).unwrap();
        PublicKey::from_pem(&pem).unwrap()
    }

    /// `openssl dgst -<hash> -sign` over MESSAGE, with extra `-sigopt`s.
    fn sign_dgst(name: &str, hash: HashAlgorithm, sigopts: &[&str]) -> Vec<u8> {
        let keys = keys();
        let out = keys.path(&unique_name("sig"));
        let hash_flag = format!("-{hash}");
        let key = keys.path(&format!("{name}.key"));
        let message = keys.path("message");
        let mut args = vec!["dgst", hash_flag.as_str(), "-sign", p(&key)];
        for opt in sigopts {
            args.extend_from_slice(&["-sigopt", opt]);
        }
        args.extend_from_slice(&["-out", p(&out), p(&message)]);
        openssl(&args);
        std::fs::read(out).unwrap()
    }

    /// Tests run in parallel and share the key directory: every output gets its own file.
    fn unique_name(extension: &str) -> String {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        format!(
            "out-{}.{extension}",
            COUNTER.fetch_add(1, Ordering::Relaxed)
        )
    }

    fn sign_ed25519(name: &str) -> Vec<u8> {
        let keys = keys();
        let out = keys.path(&unique_name("edsig"));
        let key = keys.path(&format!("{name}.key"));
        let message = keys.path("message");
        openssl(&[
            "pkeyutl",
            "-sign",
            "-inkey",
            p(&key),
            "-rawin",
            "-in",
            p(&message),
            "-out",
            p(&out),
        ]);
        std::fs::read(out).unwrap()
    }

    fn tampered(bytes: &[u8], index: usize) -> Vec<u8> {
        let mut copy = bytes.to_vec();
        copy[index] ^= 0x01;
        copy
    }

    fn assert_invalid(result: Result<(), SignatureError>) {
        let err = result.unwrap_err();
        assert_eq!(err.reason(), "signature_invalid", "{err}");
        assert!(
            err.to_string()
                .starts_with("signature does not verify with the "),
            "{err}"
        );
    }

    #[test]
    fn hash_algorithm_names() {
        assert_eq!(HashAlgorithm::default(), HashAlgorithm::Sha256);
        assert_eq!("SHA384".parse::<HashAlgorithm>(), Ok(HashAlgorithm::Sha384));
        assert_eq!("sha224".parse::<HashAlgorithm>(), Ok(HashAlgorithm::Sha224));
        assert_eq!(HashAlgorithm::Sha512.to_string(), "sha512");
        let err = "md5".parse::<HashAlgorithm>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown hash algorithm \"md5\" (expected sha224, sha256, sha384 or sha512)"
        );
    }

    #[test]
    fn algorithms_are_recognised_and_named() {
        assert_eq!(public_key("p256").algorithm().to_string(), "ECDSA P-256");
        assert_eq!(public_key("p384").algorithm().to_string(), "ECDSA P-384");
        assert_eq!(public_key("p521").algorithm().to_string(), "ECDSA P-521");
        assert_eq!(public_key("rsa").algorithm().to_string(), "RSA 2048");
        assert_eq!(public_key("ed").algorithm().to_string(), "Ed25519");
    }

    #[test]
    fn fingerprint_is_sha256_of_the_spki_der_as_openssl_computes_it() {
        let keys = keys();
        let der = keys.path(&unique_name("der"));
        openssl(&[
            "pkey",
            "-pubin",
            "-in",
            p(&keys.path("p256.pub")),
            "-outform",
            "DER",
            "-out",
            p(&der),
        ]);
        let out = openssl(&["dgst", "-sha256", "-r", p(&der)]);
        let expected = String::from_utf8(out.stdout).unwrap();
        let expected = expected.split_whitespace().next().unwrap();
        let key = public_key("p256");
        assert_eq!(key.fingerprint(), expected);
        assert_eq!(key.spki_der(), std::fs::read(der).unwrap());
    }

    #[test]
    fn ecdsa_verifies_every_hash_on_every_curve() {
        for curve in ["p256", "p384", "p521"] {
            let key = public_key(curve);
            for hash in HashAlgorithm::ALL {
                let signature = sign_dgst(curve, hash, &[]);
                key.verify(MESSAGE, &signature, hash)
                    .unwrap_or_else(|e| panic!("{curve} {hash}: {e}"));
            }
        }
    }

    #[test]
    fn ecdsa_rejects_wrong_hash_key_message_and_signature() {
        for curve in ["p256", "p384", "p521"] {
            let key = public_key(curve);
            for hash in HashAlgorithm::ALL {
                let signature = sign_dgst(curve, hash, &[]);
                for other in HashAlgorithm::ALL.into_iter().filter(|h| *h != hash) {
                    assert_invalid(key.verify(MESSAGE, &signature, other));
                }
                assert_invalid(key.verify(&tampered(MESSAGE, 40), &signature, hash));
                let last = signature.len() - 1;
                assert_invalid(key.verify(MESSAGE, &tampered(&signature, last), hash));
            }
        }
        let signature = sign_dgst("p256", HashAlgorithm::Sha256, &[]);
        assert_invalid(public_key("p256b").verify(MESSAGE, &signature, HashAlgorithm::Sha256));
    }

    #[test]
    fn rsa_pkcs1_verifies_and_rejects() {
        let key = public_key("rsa");
        for hash in [
            HashAlgorithm::Sha256,
            HashAlgorithm::Sha384,
            HashAlgorithm::Sha512,
        ] {
            let signature = sign_dgst("rsa", hash, &[]);
            key.verify(MESSAGE, &signature, hash).unwrap();
            assert_invalid(key.verify(&tampered(MESSAGE, 0), &signature, hash));
            assert_invalid(key.verify(MESSAGE, &tampered(&signature, 7), hash));
            assert_invalid(public_key("rsab").verify(MESSAGE, &signature, hash));
        }
        let signature = sign_dgst("rsa", HashAlgorithm::Sha256, &[]);
        assert_invalid(key.verify(MESSAGE, &signature, HashAlgorithm::Sha512));
    }

    #[test]
    fn rsa_pss_verifies_with_hash_length_and_maximal_salt() {
        let key = public_key("rsa");
        for hash in [
            HashAlgorithm::Sha256,
            HashAlgorithm::Sha384,
            HashAlgorithm::Sha512,
        ] {
            for salt in ["rsa_pss_saltlen:digest", "rsa_pss_saltlen:max"] {
                let signature = sign_dgst("rsa", hash, &["rsa_padding_mode:pss", salt]);
                key.verify(MESSAGE, &signature, hash)
                    .unwrap_or_else(|e| panic!("{hash} {salt}: {e}"));
                assert_invalid(key.verify(&tampered(MESSAGE, 3), &signature, hash));
                assert_invalid(key.verify(MESSAGE, &tampered(&signature, 100), hash));
                assert_invalid(public_key("rsab").verify(MESSAGE, &signature, hash));
            }
        }
        let signature = sign_dgst(
            "rsa",
            HashAlgorithm::Sha256,
            &["rsa_padding_mode:pss", "rsa_pss_saltlen:digest"],
        );
        assert_invalid(key.verify(MESSAGE, &signature, HashAlgorithm::Sha384));
    }

    #[test]
    fn rsa_pss_with_another_salt_length_is_not_accepted() {
        // Documents the limit: only hash-length and maximal salts are tried.
        let signature = sign_dgst(
            "rsa",
            HashAlgorithm::Sha256,
            &["rsa_padding_mode:pss", "rsa_pss_saltlen:20"],
        );
        assert_invalid(public_key("rsa").verify(MESSAGE, &signature, HashAlgorithm::Sha256));
    }

    #[test]
    fn rsa_with_sha224_is_refused_clearly() {
        let signature = sign_dgst("rsa", HashAlgorithm::Sha224, &[]);
        let err = public_key("rsa")
            .verify(MESSAGE, &signature, HashAlgorithm::Sha224)
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "sha224 is not supported with RSA 2048 keys (supported: sha256, sha384, sha512)"
        );
    }

    #[test]
    fn ed25519_verifies_the_raw_message_whatever_the_hash() {
        let key = public_key("ed");
        let signature = sign_ed25519("ed");
        for hash in HashAlgorithm::ALL {
            key.verify(MESSAGE, &signature, hash).unwrap();
        }
        assert_invalid(key.verify(&tampered(MESSAGE, 9), &signature, HashAlgorithm::Sha256));
        assert_invalid(key.verify(MESSAGE, &tampered(&signature, 5), HashAlgorithm::Sha256));
        assert_invalid(public_key("edb").verify(MESSAGE, &signature, HashAlgorithm::Sha256));
        let err = key
            .verify(MESSAGE, &tampered(&signature, 5), HashAlgorithm::Sha256)
            .unwrap_err();
        assert!(
            err.to_string()
                .ends_with("(Ed25519 signs the message itself)"),
            "{err}"
        );
    }

    #[test]
    fn empty_signature_is_refused() {
        assert_eq!(
            public_key("p256").verify(MESSAGE, &[], HashAlgorithm::Sha256),
            Err(SignatureError::Empty)
        );
    }

    #[test]
    fn invalid_signature_message_names_key_and_hash() {
        let key = public_key("p256");
        let signature = sign_dgst("p256", HashAlgorithm::Sha256, &[]);
        let err = key
            .verify(MESSAGE, &signature, HashAlgorithm::Sha384)
            .unwrap_err();
        let fingerprint = &key.fingerprint()[..16];
        assert_eq!(
            err.to_string(),
            format!(
                "signature does not verify with the ECDSA P-256 key sha256:{fingerprint}… (message hashed with sha384)"
            )
        );
    }

    #[test]
    fn rsa_public_key_pkcs1_pem_is_the_same_key() {
        let keys = keys();
        let pkcs1 = keys.path(&unique_name("pkcs1"));
        openssl(&[
            "rsa",
            "-pubin",
            "-in",
            p(&keys.path("rsa.pub")),
            "-RSAPublicKey_out",
            "-out",
            p(&pkcs1),
        ]);
        let text = std::fs::read_to_string(&pkcs1).unwrap();
        assert!(text.starts_with("-----BEGIN RSA PUBLIC KEY-----"), "{text}");
        let from_pkcs1 = PublicKey::from_pem(&format!("\n  {text}\n\n")).unwrap();
        assert_eq!(from_pkcs1, public_key("rsa"));
        let signature = sign_dgst("rsa", HashAlgorithm::Sha256, &[]);
        from_pkcs1
            .verify(MESSAGE, &signature, HashAlgorithm::Sha256)
            .unwrap();
    }

    #[test]
    fn pem_errors_say_what_was_found() {
        let cert = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        assert_eq!(
            PublicKey::from_pem(cert).unwrap_err().to_string(),
            "expected a PEM block \"PUBLIC KEY\" or \"RSA PUBLIC KEY\", found \"CERTIFICATE\""
        );
        let one = std::fs::read_to_string(keys().path("p256.pub")).unwrap();
        let two = format!("{one}{one}");
        assert_eq!(
            PublicKey::from_pem(&two).unwrap_err().to_string(),
            "expected one PEM public key, found 2 PEM blocks"
        );
        assert_eq!(
            PublicKey::from_pem("not a key").unwrap_err().to_string(),
            "invalid PEM public key: no PEM block found (expected a line \"-----BEGIN <label>-----\")"
        );
        assert_eq!(
            PublicKey::from_pem("").unwrap_err().to_string(),
            "invalid PEM public key: no PEM block found (expected a line \"-----BEGIN <label>-----\")"
        );
        let garbage = "-----BEGIN PUBLIC KEY-----\nAAECAw==\n-----END PUBLIC KEY-----";
        let err = PublicKey::from_pem(garbage).unwrap_err();
        assert_eq!(err.reason(), "key_der");
        assert!(
            err.to_string()
                .starts_with("invalid SubjectPublicKeyInfo DER: "),
            "{err}"
        );
    }

    #[test]
    fn small_rsa_and_unsupported_curves_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let small = dir.path().join("small.key");
        openssl(&[
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:1024",
            "-out",
            p(&small),
        ]);
        let out = openssl(&["pkey", "-in", p(&small), "-pubout"]);
        let err = PublicKey::from_pem(&String::from_utf8(out.stdout).unwrap()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "RSA key of 1024 bits is too small; verity requires at least 2048 bits"
        );

        let k1 = dir.path().join("k1.key");
        openssl(&[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:secp256k1",
            "-out",
            p(&k1),
        ]);
        let out = openssl(&["pkey", "-in", p(&k1), "-pubout"]);
        let err = PublicKey::from_pem(&String::from_utf8(out.stdout).unwrap()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "unsupported elliptic curve secp256k1 (1.3.132.0.10); verity supports ECDSA P-256, P-384 and P-521, RSA of 2048 to 8192 bits, and Ed25519"
        );

        let x25519 = dir.path().join("x.key");
        openssl(&["genpkey", "-algorithm", "x25519", "-out", p(&x25519)]);
        let out = openssl(&["pkey", "-in", p(&x25519), "-pubout"]);
        let err = PublicKey::from_pem(&String::from_utf8(out.stdout).unwrap()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "unsupported public key algorithm X25519 (1.3.101.110); verity supports ECDSA P-256, P-384 and P-521, RSA of 2048 to 8192 bits, and Ed25519"
        );
    }

    #[test]
    fn point_not_on_the_curve_is_refused_at_load() {
        let mut der = public_key("p256").spki_der().to_vec();
        let last = der.len() - 1;
        der[last] ^= 0x01; // y no longer matches x
        let err = PublicKey::from_spki_der(&der).unwrap_err();
        assert_eq!(err.reason(), "key_invalid", "{err}");
        assert!(
            err.to_string()
                .starts_with("invalid ECDSA P-256 public key: "),
            "{err}"
        );
    }
}
