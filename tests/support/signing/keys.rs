//! Key pairs made by `openssl genpkey`, and two independent ways to sign with them:
//! - [`KeyPair::sign_openssl`]: the `openssl` CLI (`dgst -sign`, `pkeyutl -sign -rawin`), which
//!   is what cosign-compatible signatures are checked against;
//! - [`KeyPair::sign_native`]: aws-lc-rs in process, for tests that need many signatures.
//!
//! Both produce what cosign produces: ECDSA as ASN.1 DER over the hash of the message, RSA
//! PKCS#1 v1.5 (or PSS with a salt as long as the hash), Ed25519 over the message itself.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;

use aws_lc_rs::signature::{self as lc, KeyPair as _};
use sha2::Digest as _;
use tempfile::TempDir;

use crate::support::require_tool;

/// The key types cosign signs with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KeyKind {
    EcdsaP256,
    EcdsaP384,
    Rsa2048,
    Ed25519,
}

impl KeyKind {
    pub const ALL: [KeyKind; 4] = [
        KeyKind::EcdsaP256,
        KeyKind::EcdsaP384,
        KeyKind::Rsa2048,
        KeyKind::Ed25519,
    ];

    fn genpkey_args(self) -> &'static [&'static str] {
        match self {
            KeyKind::EcdsaP256 => &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
            KeyKind::EcdsaP384 => &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384"],
            KeyKind::Rsa2048 => &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
            KeyKind::Ed25519 => &["-algorithm", "ed25519"],
        }
    }

    /// The `keyDetails` of a sigstore trust root for a key of this kind, hashing with sha256
    /// where the scheme has a hash.
    pub fn trust_root_key_details(self) -> &'static str {
        match self {
            KeyKind::EcdsaP256 => "PKIX_ECDSA_P256_SHA_256",
            KeyKind::EcdsaP384 => "PKIX_ECDSA_P384_SHA_384",
            KeyKind::Rsa2048 => "PKIX_RSA_PKCS1V15_2048_SHA256",
            KeyKind::Ed25519 => "PKIX_ED25519",
        }
    }
}

/// The message digests of cosign's `--hash-algorithm` / policy-controller's `hashAlgorithm`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Hash {
    Sha224,
    #[default]
    Sha256,
    Sha384,
    Sha512,
}

impl Hash {
    pub const ALL: [Hash; 4] = [Hash::Sha224, Hash::Sha256, Hash::Sha384, Hash::Sha512];

    /// `sha256`: the openssl digest name and the policy spelling.
    pub fn name(self) -> &'static str {
        match self {
            Hash::Sha224 => "sha224",
            Hash::Sha256 => "sha256",
            Hash::Sha384 => "sha384",
            Hash::Sha512 => "sha512",
        }
    }

    pub fn digest(self, data: &[u8]) -> Vec<u8> {
        match self {
            Hash::Sha224 => sha2::Sha224::digest(data).to_vec(),
            Hash::Sha256 => sha2::Sha256::digest(data).to_vec(),
            Hash::Sha384 => sha2::Sha384::digest(data).to_vec(),
            Hash::Sha512 => sha2::Sha512::digest(data).to_vec(),
        }
    }
}

/// Runs `openssl` with `args`; panics with its stderr when it fails, and with the install line
/// when it is missing. Returns stdout.
pub fn openssl<I, S>(args: I) -> Vec<u8>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let args: Vec<std::ffi::OsString> = args.into_iter().map(|a| a.as_ref().to_owned()).collect();
    let output = run_openssl(&args);
    assert!(
        output.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

fn run_openssl(args: &[std::ffi::OsString]) -> std::process::Output {
    let binary = require_tool("openssl", "openssl");
    Command::new(binary)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run openssl {args:?}: {e}"))
}

/// A private key in a temporary directory (PKCS#8 PEM, as `openssl genpkey` writes it) and its
/// public key (PKIX `PUBLIC KEY` PEM). The directory lives as long as the value.
pub struct KeyPair {
    kind: KeyKind,
    dir: TempDir,
    private_pem: String,
    public_pem: String,
    spki_der: Vec<u8>,
}

impl std::fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KeyPair({:?}, {})", self.kind, &self.fingerprint()[..16])
    }
}

impl KeyPair {
    /// A fresh key made by `openssl genpkey`.
    pub fn generate(kind: KeyKind) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("verity-key-")
            .tempdir()
            .unwrap();
        let key_path = dir.path().join("key.pem");
        let mut args: Vec<&OsStr> = vec!["genpkey".as_ref()];
        args.extend(kind.genpkey_args().iter().map(OsStr::new));
        args.extend(["-out".as_ref(), key_path.as_os_str()]);
        openssl(&args);
        let private_pem = std::fs::read_to_string(&key_path).unwrap();
        Self::finish(kind, dir, private_pem)
    }

    /// A key given as PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`) of `kind`.
    pub fn from_private_pem(kind: KeyKind, private_pem: &str) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("verity-key-")
            .tempdir()
            .unwrap();
        std::fs::write(dir.path().join("key.pem"), private_pem).unwrap();
        Self::finish(kind, dir, private_pem.to_string())
    }

    fn finish(kind: KeyKind, dir: TempDir, private_pem: String) -> Self {
        let key_path = dir.path().join("key.pem");
        let public_pem = String::from_utf8(openssl([
            "pkey".as_ref(),
            "-in".as_ref(),
            key_path.as_os_str(),
            "-pubout".as_ref(),
        ]))
        .unwrap();
        std::fs::write(dir.path().join("pub.pem"), &public_pem).unwrap();
        let spki_der = super::pem_der(&public_pem, "PUBLIC KEY");
        KeyPair {
            kind,
            dir,
            private_pem,
            public_pem,
            spki_der,
        }
    }

    pub fn kind(&self) -> KeyKind {
        self.kind
    }

    /// PKCS#8 PEM, `-----BEGIN PRIVATE KEY-----`.
    pub fn private_pem(&self) -> &str {
        &self.private_pem
    }

    /// PKIX PEM, `-----BEGIN PUBLIC KEY-----`: what cosign writes to `cosign.pub`.
    pub fn public_pem(&self) -> &str {
        &self.public_pem
    }

    /// The SubjectPublicKeyInfo DER.
    pub fn spki_der(&self) -> &[u8] {
        &self.spki_der
    }

    /// Hex sha256 of the SubjectPublicKeyInfo DER (a Rekor log id, a cosign key id).
    pub fn fingerprint(&self) -> String {
        super::sha256_hex(&self.spki_der)
    }

    /// The private key file, for openssl commands of a test's own.
    pub fn private_key_path(&self) -> PathBuf {
        self.dir.path().join("key.pem")
    }

    /// The public key file.
    pub fn public_key_path(&self) -> PathBuf {
        self.dir.path().join("pub.pem")
    }

    /// Signs `payload` with the openssl CLI: `openssl dgst -<hash> -sign` for ECDSA and RSA
    /// (PKCS#1 v1.5, or PSS with `rsa_pss_saltlen:digest` when `rsa_pss`), `openssl pkeyutl
    /// -sign -rawin` for Ed25519 (which hashes nothing: `hash` is ignored).
    pub fn sign_openssl(&self, payload: &[u8], hash: Hash, rsa_pss: bool) -> Vec<u8> {
        assert!(
            !rsa_pss || self.kind == KeyKind::Rsa2048,
            "rsa_pss is for RSA keys, this one is {:?}",
            self.kind
        );
        let work = tempfile::tempdir().unwrap();
        let input = work.path().join("payload");
        std::fs::write(&input, payload).unwrap();
        let key = self.private_key_path();
        if self.kind == KeyKind::Ed25519 {
            return openssl([
                "pkeyutl".as_ref(),
                "-sign".as_ref(),
                "-rawin".as_ref(),
                "-inkey".as_ref(),
                key.as_os_str(),
                "-in".as_ref(),
                input.as_os_str(),
            ]);
        }
        let digest_flag = format!("-{}", hash.name());
        let mut args: Vec<&OsStr> = vec![
            "dgst".as_ref(),
            digest_flag.as_ref(),
            "-sign".as_ref(),
            key.as_os_str(),
        ];
        if rsa_pss {
            args.extend(PSS_OPTIONS.iter().map(OsStr::new));
        }
        args.push(input.as_os_str());
        openssl(&args)
    }

    /// Whether openssl accepts `signature` over `payload` with this key (see
    /// [`verify_openssl`]).
    pub fn verify_openssl(
        &self,
        payload: &[u8],
        signature: &[u8],
        hash: Hash,
        rsa_pss: bool,
    ) -> bool {
        verify_openssl(&self.public_pem, payload, signature, hash, rsa_pss)
    }

    /// Signs `payload` in process with aws-lc-rs: ECDSA (ASN.1 DER) over `hash` of the payload,
    /// RSA PKCS#1 v1.5 with `hash` (sha256, sha384 or sha512), Ed25519 over the payload
    /// (`hash` ignored). Much faster than [`KeyPair::sign_openssl`], and checked against it.
    pub fn sign_native(&self, payload: &[u8], hash: Hash) -> Vec<u8> {
        let pkcs8 = super::pem_der(&self.private_pem, "PRIVATE KEY");
        match self.kind {
            KeyKind::EcdsaP256 | KeyKind::EcdsaP384 => {
                let (algorithm, carrier, order_len) = if self.kind == KeyKind::EcdsaP256 {
                    (
                        &lc::ECDSA_P256_SHA256_ASN1_SIGNING,
                        &aws_lc_rs::digest::SHA256,
                        32,
                    )
                } else {
                    (
                        &lc::ECDSA_P384_SHA384_ASN1_SIGNING,
                        &aws_lc_rs::digest::SHA384,
                        48,
                    )
                };
                let key = lc::EcdsaKeyPair::from_pkcs8(algorithm, &pkcs8).unwrap();
                // ECDSA signs the integer made of the leftmost (order length) bits of the
                // digest. A longer digest is cut to the order's length, a shorter one (sha224)
                // is the same integer left-padded with zero bytes; either way it becomes a
                // digest of the curve's own size, which aws-lc signs as given.
                let digest = hash.digest(payload);
                let value = if digest.len() >= order_len {
                    digest[..order_len].to_vec()
                } else {
                    let mut padded = vec![0u8; order_len - digest.len()];
                    padded.extend_from_slice(&digest);
                    padded
                };
                let digest = aws_lc_rs::digest::Digest::import_less_safe(&value, carrier).unwrap();
                key.sign_digest(&digest).unwrap().as_ref().to_vec()
            }
            KeyKind::Rsa2048 => {
                let encoding: &'static dyn lc::RsaEncoding = match hash {
                    Hash::Sha256 => &lc::RSA_PKCS1_SHA256,
                    Hash::Sha384 => &lc::RSA_PKCS1_SHA384,
                    Hash::Sha512 => &lc::RSA_PKCS1_SHA512,
                    Hash::Sha224 => panic!("sign_native: no RSA with sha224; use sign_openssl"),
                };
                let key = lc::RsaKeyPair::from_pkcs8(&pkcs8).unwrap();
                let mut signature = vec![0u8; key.public_modulus_len()];
                key.sign(
                    encoding,
                    &aws_lc_rs::rand::SystemRandom::new(),
                    payload,
                    &mut signature,
                )
                .unwrap();
                signature
            }
            KeyKind::Ed25519 => {
                let key = lc::Ed25519KeyPair::from_pkcs8(&pkcs8).unwrap();
                assert_eq!(
                    key.public_key().as_ref(),
                    &self.spki_der[self.spki_der.len() - 32..],
                    "the Ed25519 key parsed by aws-lc-rs is not the one openssl made"
                );
                key.sign(payload).as_ref().to_vec()
            }
        }
    }
}

const PSS_OPTIONS: [&str; 4] = [
    "-sigopt",
    "rsa_padding_mode:pss",
    "-sigopt",
    "rsa_pss_saltlen:digest",
];

/// Whether `openssl` verifies `signature` over `payload` with the public key (or certificate)
/// in `public_pem`: `openssl dgst -<hash> -verify` (with PSS options when `rsa_pss`), or
/// `openssl pkeyutl -verify -rawin` for Ed25519 keys.
pub fn verify_openssl(
    public_pem: &str,
    payload: &[u8],
    signature: &[u8],
    hash: Hash,
    rsa_pss: bool,
) -> bool {
    let work = tempfile::tempdir().unwrap();
    let write = |name: &str, bytes: &[u8]| -> PathBuf {
        let path = work.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    };
    let key = if public_pem.contains("BEGIN CERTIFICATE") {
        // openssl dgst wants a key: take the certificate's.
        let cert = write("cert.pem", public_pem.as_bytes());
        let key = openssl([
            "x509".as_ref(),
            "-in".as_ref(),
            cert.as_os_str(),
            "-pubkey".as_ref(),
            "-noout".as_ref(),
        ]);
        write("pub.pem", &key)
    } else {
        write("pub.pem", public_pem.as_bytes())
    };
    let input = write("payload", payload);
    let sig = write("signature", signature);
    let is_ed25519 = is_ed25519_key(&key);
    let mut args: Vec<std::ffi::OsString> = Vec::new();
    if is_ed25519 {
        for arg in ["pkeyutl", "-verify", "-pubin", "-rawin", "-inkey"] {
            args.push(arg.into());
        }
        args.push(key.clone().into());
        args.push("-in".into());
        args.push(input.into());
        args.push("-sigfile".into());
        args.push(sig.into());
    } else {
        args.push("dgst".into());
        args.push(format!("-{}", hash.name()).into());
        args.push("-verify".into());
        args.push(key.clone().into());
        if rsa_pss {
            args.extend(PSS_OPTIONS.iter().map(Into::into));
        }
        args.push("-signature".into());
        args.push(sig.into());
        args.push(input.into());
    }
    let output = run_openssl(&args);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let verified =
        stdout.contains("Verified OK") || stdout.contains("Signature Verified Successfully");
    let refused = stdout.contains("Verification failure")
        || stdout.contains("Signature Verification Failure");
    match (output.status.success(), verified, refused) {
        (true, true, false) => true,
        (false, false, true) => false,
        _ => panic!(
            "openssl {args:?} gave no clear answer: {}, stdout {stdout:?}, stderr {stderr:?}",
            output.status
        ),
    }
}

/// Whether a PEM public key is Ed25519: its SPKI algorithm is id-Ed25519 (1.3.101.112).
fn is_ed25519_key(public_key_path: &Path) -> bool {
    let text = std::fs::read_to_string(public_key_path).unwrap();
    let der = super::pem_der(&text, "PUBLIC KEY");
    der.windows(5)
        .take(12)
        .any(|w| w == [0x06, 0x03, 0x2b, 0x65, 0x70])
}
