//! A test Fulcio: an rcgen P-384 root and intermediate (like Fulcio's current chain) issuing
//! leaves of the keyless shape: empty subject, one critical e-mail or URI SAN, key usage
//! digitalSignature, extended key usage codeSigning, the OIDC issuer in both extensions
//! (`1.3.6.1.4.1.57264.1.1` raw, `…1.8` DER UTF8String), ten minutes of validity, and
//! optionally an embedded SCT from a [`TestCtLog`]. Leaf keys are made by openssl, so payloads
//! can be signed with either signer.

use rcgen::string::Ia5String;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair as RcgenKeyPair, KeyUsagePurpose, SanType, SerialNumber,
};
use verity::verify::trust::{CertificateAuthority, TimeRange};

use super::ct::{self, SctSpec, TestCtLog};
use super::keys::{KeyKind, KeyPair};

/// The URI of [`TestFulcio::new`] (the `uri` of its trust-root entry).
pub const TEST_FULCIO_URL: &str = "https://fulcio.test";
/// The OIDC issuer of [`LeafSpec::new`].
pub const TEST_OIDC_ISSUER: &str = "https://issuer.example.com";
/// Fulcio's leaf lifetime.
pub const LEAF_LIFETIME: i64 = 600;

const OID_ISSUER_V1: &[u64] = &[1, 3, 6, 1, 4, 1, 57264, 1, 1];
const OID_ISSUER_V2: &[u64] = &[1, 3, 6, 1, 4, 1, 57264, 1, 8];

/// The identity of a keyless leaf.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum San {
    /// An e-mail identity (`email:` SAN).
    Email(String),
    /// A workflow or SPIFFE identity (`URI:` SAN).
    Uri(String),
}

/// What leaf to issue.
#[derive(Clone)]
pub struct LeafSpec<'a> {
    pub subject: San,
    /// Written to both issuer extensions; `None`: neither (like 2021 leaves).
    pub issuer: Option<String>,
    /// Unix seconds.
    pub not_before: i64,
    /// notAfter = not_before + lifetime_secs.
    pub lifetime_secs: i64,
    /// Embed one SCT by this log, timestamped at `not_before`.
    pub sct: Option<&'a TestCtLog>,
    /// Extended key usage codeSigning; `false` gives serverAuth instead.
    pub code_signing: bool,
    pub key_kind: KeyKind,
}

impl LeafSpec<'_> {
    /// A current Fulcio leaf for `subject` from `not_before`: issuer [`TEST_OIDC_ISSUER`],
    /// [`LEAF_LIFETIME`], codeSigning, ECDSA P-256 key, no SCT.
    pub fn new(subject: San, not_before: i64) -> Self {
        LeafSpec {
            subject,
            issuer: Some(TEST_OIDC_ISSUER.to_string()),
            not_before,
            lifetime_secs: LEAF_LIFETIME,
            sct: None,
            code_signing: true,
            key_kind: KeyKind::EcdsaP256,
        }
    }

    /// [`LeafSpec::new`] with an e-mail identity.
    pub fn email(address: &str, not_before: i64) -> Self {
        Self::new(San::Email(address.to_string()), not_before)
    }

    /// [`LeafSpec::new`] with a URI identity.
    pub fn uri(uri: &str, not_before: i64) -> Self {
        Self::new(San::Uri(uri.to_string()), not_before)
    }

    /// The last second the leaf is valid (notAfter, inclusive).
    pub fn not_after(&self) -> i64 {
        self.not_before + self.lifetime_secs
    }
}

/// An issued leaf and its private key.
pub struct FulcioLeaf {
    pub cert_pem: String,
    pub cert_der: Vec<u8>,
    /// The leaf's key (openssl-made): sign payloads with it.
    pub key: KeyPair,
    /// The issuing intermediate, DER (what `verify_embedded_sct` needs).
    pub issuer_der: Vec<u8>,
}

struct Ca {
    issuer: Issuer<'static, RcgenKeyPair>,
    der: Vec<u8>,
    spki: Vec<u8>,
}

/// A Fulcio-like certificate authority: root and intermediate, both P-384, valid from
/// [`super::VALID_FROM`] to [`super::VALID_UNTIL`].
pub struct TestFulcio {
    root: Ca,
    intermediate: Ca,
    uri: String,
}

impl Default for TestFulcio {
    fn default() -> Self {
        Self::new()
    }
}

fn set_validity(params: &mut CertificateParams, from: i64, to: i64) {
    let epoch = rcgen::date_time_ymd(1970, 1, 1);
    params.not_before = epoch + std::time::Duration::from_secs(u64::try_from(from).unwrap());
    params.not_after = epoch + std::time::Duration::from_secs(u64::try_from(to).unwrap());
}

fn ca_params(common_name: &str) -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut name = DistinguishedName::new();
    name.push(DnType::OrganizationName, "test");
    name.push(DnType::CommonName, common_name);
    params.distinguished_name = name;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    set_validity(&mut params, super::VALID_FROM, super::VALID_UNTIL);
    params
}

fn random_serial() -> SerialNumber {
    let mut bytes = [0u8; 16];
    aws_lc_rs::rand::fill(&mut bytes).unwrap();
    bytes[0] &= 0x7f; // positive
    bytes[0] |= 0x01; // and no leading zero byte
    SerialNumber::from_slice(&bytes)
}

impl TestFulcio {
    /// A fresh root `O=test,CN=test-fulcio-root` and intermediate
    /// `O=test,CN=test-fulcio-intermediate` at [`TEST_FULCIO_URL`].
    pub fn new() -> Self {
        let root_key = RcgenKeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
        let root_params = ca_params("test-fulcio-root");
        let root_cert = root_params.self_signed(&root_key).unwrap();
        let root = Ca {
            der: root_cert.der().to_vec(),
            spki: rcgen::PublicKeyData::subject_public_key_info(&root_key),
            issuer: Issuer::new(root_params, root_key),
        };

        let key = RcgenKeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
        let mut params = ca_params("test-fulcio-intermediate");
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::CodeSigning];
        params.use_authority_key_identifier_extension = true;
        let cert = params.signed_by(&key, &root.issuer).unwrap();
        let intermediate = Ca {
            der: cert.der().to_vec(),
            spki: rcgen::PublicKeyData::subject_public_key_info(&key),
            issuer: Issuer::new(params, key),
        };
        TestFulcio {
            root,
            intermediate,
            uri: TEST_FULCIO_URL.to_string(),
        }
    }

    pub fn uri(&self) -> &str {
        &self.uri
    }

    pub fn root_der(&self) -> &[u8] {
        &self.root.der
    }

    pub fn root_pem(&self) -> String {
        super::pem("CERTIFICATE", &self.root.der)
    }

    pub fn intermediate_der(&self) -> &[u8] {
        &self.intermediate.der
    }

    pub fn intermediate_pem(&self) -> String {
        super::pem("CERTIFICATE", &self.intermediate.der)
    }

    /// Intermediate then root, PEM: the `dev.sigstore.cosign/chain` annotation.
    pub fn chain_pem(&self) -> String {
        self.intermediate_pem() + &self.root_pem()
    }

    /// Intermediate then root, DER.
    pub fn chain_der(&self) -> Vec<Vec<u8>> {
        vec![self.intermediate.der.clone(), self.root.der.clone()]
    }

    /// The authority as verity's trust material holds it, valid from [`super::VALID_FROM`].
    pub fn certificate_authority(&self) -> CertificateAuthority {
        CertificateAuthority {
            uri: self.uri.clone(),
            chain_der: self.chain_der(),
            valid_for: TimeRange {
                start: Some(super::VALID_FROM),
                end: None,
            },
        }
    }

    /// Issues a leaf for `spec` with a fresh openssl-made key.
    pub fn issue(&self, spec: &LeafSpec<'_>) -> FulcioLeaf {
        self.issue_for(spec, KeyPair::generate(spec.key_kind))
    }

    /// Issues a leaf for `spec` certifying `key` (whose kind overrides `spec.key_kind`).
    pub fn issue_for(&self, spec: &LeafSpec<'_>, key: KeyPair) -> FulcioLeaf {
        let public = RcgenKeyPair::from_pem(key.private_pem()).unwrap();
        let params = self.leaf_params(spec);
        let mut cert = params
            .signed_by(&public, &self.intermediate.issuer)
            .unwrap();
        if let Some(log) = spec.sct {
            // What was just issued is the precertificate; the final certificate is the same
            // TBS plus the SCT list extension.
            let sct = ct::make_sct(
                log,
                &SctSpec::at(u64::try_from(spec.not_before).unwrap() * 1000),
                &self.intermediate.spki,
                &ct::tbs_of(cert.der()),
            );
            let mut params = params;
            params
                .custom_extensions
                .insert(0, ct::sct_list_extension(&[sct]));
            cert = params
                .signed_by(&public, &self.intermediate.issuer)
                .unwrap();
        }
        FulcioLeaf {
            cert_pem: cert.pem(),
            cert_der: cert.der().to_vec(),
            key,
            issuer_der: self.intermediate.der.clone(),
        }
    }

    fn leaf_params(&self, spec: &LeafSpec<'_>) -> CertificateParams {
        let mut params = CertificateParams::default();
        // An empty subject makes rcgen mark the SAN extension critical, as Fulcio does.
        params.distinguished_name = DistinguishedName::new();
        params.serial_number = Some(random_serial());
        params.subject_alt_names = vec![match &spec.subject {
            San::Email(address) => {
                SanType::Rfc822Name(Ia5String::try_from(address.as_str()).unwrap())
            }
            San::Uri(uri) => SanType::URI(Ia5String::try_from(uri.as_str()).unwrap()),
        }];
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![if spec.code_signing {
            ExtendedKeyUsagePurpose::CodeSigning
        } else {
            ExtendedKeyUsagePurpose::ServerAuth
        }];
        params.use_authority_key_identifier_extension = true;
        set_validity(&mut params, spec.not_before, spec.not_after());
        if let Some(issuer) = &spec.issuer {
            params
                .custom_extensions
                .push(rcgen::CustomExtension::from_oid_content(
                    OID_ISSUER_V1,
                    issuer.as_bytes().to_vec(),
                ));
            params
                .custom_extensions
                .push(rcgen::CustomExtension::from_oid_content(
                    OID_ISSUER_V2,
                    ct::der_utf8_string(issuer),
                ));
        }
        params
    }
}
