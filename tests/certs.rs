//! The X.509 checks of keyless verification (`verity::verify::cert`).
//!
//! Two sources of certificates:
//! - real production material from `../shared/vectors` (a 2026 GitHub Actions leaf with an SCT
//!   from ctfe.sigstore.dev/2022, a 2021 e-mail leaf directly under the first Fulcio root), which
//!   proves the formats, the SCT construction in particular;
//! - a test PKI made here with rcgen (a Fulcio-like P-384 root and intermediate issuing
//!   ten-minute leaves, and CT log keys that sign RFC 6962 SCTs embedded into leaves), for the
//!   must-deny matrix: each negative test tampers exactly one thing and names the expected reason.

// clippy.toml allows these inside #[test] functions only; the helpers here are test code too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::Duration;

use base64::Engine;
use rcgen::string::Ia5String;
use rcgen::{
    BasicConstraints, CertificateParams, CustomExtension, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, OtherNameValue, PublicKeyData,
    SanType, SerialNumber,
};
use serde_json::Value;
use verity::verify::cert::{
    CertError, CertificateIdentity, MAX_PRESENTED_INTERMEDIATES, POLICY_CA_CERT, VerifiedLeaf,
    certificates_from_pem, identity_of, verify_embedded_sct, verify_leaf,
};
use verity::verify::trust::{CertificateAuthority, LogKey, TimeRange};

// The SCT construction is shared with the signing toolkit's test Fulcio.
use support::signing::ct::{
    OID_SCT_LIST, SctSpec, TestCtLog as CtLog, der_octet_string, der_utf8_string, make_sct,
    sct_list_extension, tbs_of,
};

// ---------------------------------------------------------------------------------------------
// Production vectors
// ---------------------------------------------------------------------------------------------

const VECTORS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/vectors");

fn vector(name: &str) -> Value {
    let path = format!("{VECTORS}/{name}");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|err| {
        panic!(
            "test vector {path} is missing ({err}); the crate must sit next to shared/vectors \
             (../shared/vectors relative to the crate root)"
        )
    });
    serde_json::from_str(&text).unwrap_or_else(|err| panic!("test vector {path}: {err}"))
}

fn b64(text: &str) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .unwrap()
}

fn rfc3339(text: &str) -> i64 {
    text.parse::<jiff::Timestamp>().unwrap().as_second()
}

fn time_range(value: &Value) -> TimeRange {
    TimeRange {
        start: value["start"].as_str().map(rfc3339),
        end: value["end"].as_str().map(rfc3339),
    }
}

/// The Fulcio CAs of the production trusted root: [2021 root alone, 2022 intermediate + root].
fn prod_authorities() -> Vec<CertificateAuthority> {
    let root = vector("trusted_root.sigstore-prod.json");
    root["certificateAuthorities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|ca| CertificateAuthority {
            uri: ca["uri"].as_str().unwrap().to_string(),
            chain_der: ca["certChain"]["certificates"]
                .as_array()
                .unwrap()
                .iter()
                .map(|cert| b64(cert["rawBytes"].as_str().unwrap()))
                .collect(),
            valid_for: time_range(&ca["validFor"]),
        })
        .collect()
}

/// The CT logs of the production trusted root: [ctfe test, ctfe 2022].
fn prod_ct_logs() -> Vec<LogKey> {
    let root = vector("trusted_root.sigstore-prod.json");
    root["ctlogs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|log| LogKey {
            base_url: log["baseUrl"].as_str().unwrap().to_string(),
            log_id: b64(log["logId"]["keyId"].as_str().unwrap()),
            spki_der: b64(log["publicKey"]["rawBytes"].as_str().unwrap()),
            valid_for: time_range(&log["publicKey"]["validFor"]),
        })
        .collect()
}

struct ProdLeaf {
    vector: Value,
    leaf: Vec<u8>,
    integrated_time: i64,
}

/// The 2026 cosign v3 bundle: its leaf and the tlog entry's integratedTime.
fn prod_2026() -> ProdLeaf {
    let vector = vector("sigstore-rs-2026-cosign-v3-bundle-github-actions-dsse.json");
    let material = &vector["bundle"]["verificationMaterial"];
    let leaf = b64(material["certificate"]["rawBytes"].as_str().unwrap());
    let integrated_time = material["tlogEntries"][0]["integratedTime"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    ProdLeaf {
        vector,
        leaf,
        integrated_time,
    }
}

/// The 2021 legacy signature: its leaf and the bundle's integratedTime.
fn prod_2021() -> ProdLeaf {
    let vector = vector("sigstore-rs-2021-keyless-email-rekord.json");
    let leaf = certificates_from_pem(vector["cert_pem"].as_str().unwrap())
        .unwrap()
        .remove(0);
    let integrated_time = vector["bundle"]["Payload"]["integratedTime"]
        .as_i64()
        .unwrap();
    ProdLeaf {
        vector,
        leaf,
        integrated_time,
    }
}

fn now() -> i64 {
    jiff::Timestamp::now().as_second()
}

#[test]
fn prod_2026_github_leaf_verifies_at_integrated_time_with_its_sct() {
    let v = prod_2026();
    let authorities = prod_authorities();
    let verified = verify_leaf(&v.leaf, &[], &authorities, &[], v.integrated_time).unwrap();

    assert_eq!(verified.authority_uri, "https://fulcio.sigstore.dev");
    assert_eq!(
        verified.issuer_der, authorities[1].chain_der[0],
        "the intermediate"
    );
    assert_eq!(verified.not_before, rfc3339("2026-04-09T07:23:29Z"));
    assert_eq!(verified.not_after, rfc3339("2026-04-09T07:33:29Z"));
    assert_eq!(
        verified.identity.subjects,
        vec![v.vector["expected_subject"].as_str().unwrap().to_string()]
    );
    assert_eq!(
        verified.identity.issuer.as_deref(),
        Some("https://token.actions.githubusercontent.com")
    );
    // `openssl x509 -pubkey | openssl pkey -pubin -outform DER` of the leaf.
    assert_eq!(
        hex::encode(&verified.public_key_spki_der),
        "3059301306072a8648ce3d020106082a8648ce3d030107034200041564dd8a415f2591d8e5a8f47d3560\
         29d7c67fd951ab7e714c0ad841ae8d2f691d69e080af97b57f41b673317587b7d0a5d8cc945e70119cad1e\
         937c612e44db"
    );

    verify_embedded_sct(&v.leaf, &verified.issuer_der, &prod_ct_logs()).unwrap();
}

#[test]
fn prod_2026_github_leaf_claims() {
    let identity = identity_of(&prod_2026().leaf).unwrap();
    let claim = |name: &str| {
        identity
            .claims
            .iter()
            .find(|claim| claim.name == name)
            .map(|claim| claim.value.as_str())
    };
    // Deprecated raw-string claims.
    assert_eq!(claim("github-workflow-trigger"), Some("push"));
    assert_eq!(
        claim("github-workflow-sha"),
        Some("2a6b879b7a5ef59d7fb348d0b5d14314538ac0a6")
    );
    assert_eq!(claim("github-workflow-name"), Some("Release"));
    assert_eq!(
        claim("github-workflow-repository"),
        Some("kubewarden/kubewarden-controller")
    );
    assert_eq!(claim("github-workflow-ref"), Some("refs/tags/v1.34.0"));
    // Newer UTF8String claims.
    assert_eq!(claim("runner-environment"), Some("github-hosted"));
    assert_eq!(
        claim("source-repository-uri"),
        Some("https://github.com/kubewarden/kubewarden-controller")
    );
    assert_eq!(claim("source-repository-ref"), Some("refs/tags/v1.34.0"));
    assert_eq!(
        claim("source-repository-visibility-at-signing"),
        Some("public")
    );
    assert_eq!(identity.claims.len(), 19, "{:?}", identity.claims);
}

#[test]
fn prod_2026_leaf_at_now_is_expired() {
    let v = prod_2026();
    let err = verify_leaf(&v.leaf, &[], &prod_authorities(), &[], now()).unwrap_err();
    assert_eq!(err.reason(), "not_valid_at_signing_time");
    assert!(
        err.to_string()
            .contains("valid 2026-04-09T07:23:29Z–2026-04-09T07:33:29Z"),
        "{err}"
    );
}

#[test]
fn prod_2026_leaf_one_second_outside_its_validity_fails() {
    let v = prod_2026();
    let authorities = prod_authorities();
    for at in [
        rfc3339("2026-04-09T07:23:28Z"),
        rfc3339("2026-04-09T07:33:30Z"),
    ] {
        let err = verify_leaf(&v.leaf, &[], &authorities, &[], at).unwrap_err();
        assert_eq!(err.reason(), "not_valid_at_signing_time", "{err}");
    }
    for at in [
        rfc3339("2026-04-09T07:23:29Z"),
        rfc3339("2026-04-09T07:33:29Z"),
    ] {
        verify_leaf(&v.leaf, &[], &authorities, &[], at).unwrap();
    }
}

#[test]
fn prod_2026_leaf_with_its_chain_annotation_and_only_the_root_trusted() {
    // cosign's chain annotation (intermediate, root) supplies the intermediate; the presented
    // root is never an anchor, the trusted root is.
    let v = prod_2026();
    let chain = certificates_from_pem(v.vector["chain_pem"].as_str().unwrap()).unwrap();
    let prod = prod_authorities();
    assert_eq!(
        chain, prod[1].chain_der,
        "chain_pem = trusted intermediate + root"
    );
    let root_only = CertificateAuthority {
        chain_der: vec![prod[1].chain_der[1].clone()],
        ..prod[1].clone()
    };
    let verified = verify_leaf(
        &v.leaf,
        &chain,
        std::slice::from_ref(&root_only),
        &[],
        v.integrated_time,
    )
    .unwrap();
    assert_eq!(verified.issuer_der, chain[0]);

    // Without the presented intermediate there is no path.
    let err = verify_leaf(&v.leaf, &[], &[root_only], &[], v.integrated_time).unwrap_err();
    assert_eq!(err.reason(), "untrusted_chain");
    assert!(err.to_string().contains("unknown issuer"), "{err}");
}

#[test]
fn prod_2026_leaf_is_not_trusted_by_the_2021_authority_alone() {
    let v = prod_2026();
    let mut authorities = prod_authorities();
    authorities.truncate(1);
    let err = verify_leaf(&v.leaf, &[], &authorities, &[], v.integrated_time).unwrap_err();
    assert_eq!(err.reason(), "untrusted_chain");
    assert!(
        err.to_string().contains(
            "https://fulcio.sigstore.dev (authority 1): authority not valid at signing time: \
             valid 2021-03-07T03:20:29Z–2022-12-31T23:59:59Z"
        ),
        "{err}"
    );
}

#[test]
fn prod_2026_pem_matches_bundle_bytes() {
    let v = prod_2026();
    let from_pem = certificates_from_pem(v.vector["cert_pem"].as_str().unwrap()).unwrap();
    assert_eq!(from_pem, vec![v.leaf]);
}

#[test]
fn prod_2026_sct_from_unknown_log_fails() {
    let v = prod_2026();
    let issuer = &prod_authorities()[1].chain_der[0];
    let mut logs = prod_ct_logs();
    logs.retain(|log| log.base_url.ends_with("/test"));
    let err = verify_embedded_sct(&v.leaf, issuer, &logs).unwrap_err();
    assert_eq!(err.reason(), "sct_unverified");
    assert!(
        err.to_string().contains(
            "sct 1: from unknown log dd3d306ac6c7113263191e1c99673702a24a5eb8de3cadff878a72802f29ee8e"
        ),
        "{err}"
    );
}

#[test]
fn prod_2026_sct_log_not_valid_at_sct_time_fails() {
    let v = prod_2026();
    let issuer = &prod_authorities()[1].chain_der[0];
    let mut logs = prod_ct_logs();
    for log in &mut logs {
        log.valid_for.end = Some(rfc3339("2026-04-09T07:23:28Z"));
    }
    let err = verify_embedded_sct(&v.leaf, issuer, &logs).unwrap_err();
    assert_eq!(err.reason(), "sct_unverified");
    assert!(
        err.to_string().contains(
            "log https://ctfe.sigstore.dev/2022 (dd3d306ac6c7113263191e1c99673702a24a5eb8de3cadff878a72802f29ee8e) \
             was not valid at the sct time 2026-04-09T07:23:29Z"
        ),
        "{err}"
    );
}

#[test]
fn prod_2026_sct_with_the_wrong_issuer_fails() {
    // The issuer key hash is part of the signed data: the root is not the leaf's issuer.
    let v = prod_2026();
    let root = &prod_authorities()[1].chain_der[1];
    let err = verify_embedded_sct(&v.leaf, root, &prod_ct_logs()).unwrap_err();
    assert_eq!(err.reason(), "sct_unverified");
    assert!(
        err.to_string()
            .contains("log https://ctfe.sigstore.dev/2022: signature does not verify"),
        "{err}"
    );
}

#[test]
fn prod_2026_sct_over_a_modified_certificate_fails() {
    // Change one byte of the leaf's TBS outside the SCT (in the SAN URI: "v1.34.0" → "v1.35.0").
    // The leaf's own signature is not what this function checks; the SCT's must fail.
    let v = prod_2026();
    let needle = b"refs/tags/v1.34.0";
    let position = v
        .leaf
        .windows(needle.len())
        .position(|window| window == needle)
        .unwrap();
    let mut tampered = v.leaf.clone();
    tampered[position + needle.len() - 3] = b'5';
    let issuer = &prod_authorities()[1].chain_der[0];
    let err = verify_embedded_sct(&tampered, issuer, &prod_ct_logs()).unwrap_err();
    assert_eq!(err.reason(), "sct_unverified");
    assert!(err.to_string().contains("does not verify"), "{err}");
}

#[test]
fn prod_2021_email_leaf_verifies_at_integrated_time_under_the_first_root() {
    let v = prod_2021();
    let authorities = prod_authorities();
    let verified = verify_leaf(&v.leaf, &[], &authorities, &[], v.integrated_time).unwrap();
    assert_eq!(verified.authority_uri, "https://fulcio.sigstore.dev");
    assert_eq!(
        verified.issuer_der, authorities[0].chain_der[0],
        "the 2021 root"
    );
    assert_eq!(
        verified.identity,
        CertificateIdentity {
            issuer: None,
            subjects: vec!["flavio@castelli.me".to_string()],
            claims: vec![],
        }
    );
    assert_eq!(verified.not_before, rfc3339("2021-10-20T07:25:16Z"));
    assert_eq!(verified.not_after, rfc3339("2021-10-20T07:45:15Z"));

    // 2021 leaves carry no SCT.
    let err = verify_embedded_sct(&v.leaf, &verified.issuer_der, &prod_ct_logs()).unwrap_err();
    assert_eq!(err, CertError::SctMissing);
    assert_eq!(err.reason(), "sct_missing");
}

#[test]
fn prod_2021_leaf_fails_when_the_authority_validity_excludes_signing_time() {
    let v = prod_2021();
    let mut authorities = prod_authorities();
    authorities[0].valid_for.end = Some(v.integrated_time - 1);
    let err = verify_leaf(&v.leaf, &[], &authorities, &[], v.integrated_time).unwrap_err();
    assert_eq!(err.reason(), "untrusted_chain");
    let message = err.to_string();
    assert!(
        message.contains("(authority 1): authority not valid at signing time"),
        "{message}"
    );
    assert!(
        message.contains("(authority 2): authority not valid at signing time"),
        "{message}"
    );
}

#[test]
fn prod_2021_leaf_at_now_is_expired() {
    let v = prod_2021();
    let err = verify_leaf(&v.leaf, &[], &prod_authorities(), &[], now()).unwrap_err();
    assert_eq!(err.reason(), "not_valid_at_signing_time");
    assert!(
        err.to_string()
            .contains("valid 2021-10-20T07:25:16Z–2021-10-20T07:45:15Z"),
        "{err}"
    );
}

// ---------------------------------------------------------------------------------------------
// A Fulcio-like test PKI
// ---------------------------------------------------------------------------------------------

/// 2025-01-01T00:00:00Z: the test leaves' notBefore.
const BASE: i64 = 1_735_689_600;
/// The signing time used unless a test says otherwise.
const AT: i64 = BASE + 1;
const LEAF_LIFETIME: i64 = 600;
const YEAR: i64 = 365 * 24 * 3600;
const TEST_ISSUER: &str = "https://issuer.example.com";
const WORKFLOW: &str = "https://github.com/org/repo/.github/workflows/release.yml@refs/tags/v1";

const OID_ISSUER_V1: &[u64] = &[1, 3, 6, 1, 4, 1, 57264, 1, 1];
const OID_ISSUER_V2: &[u64] = &[1, 3, 6, 1, 4, 1, 57264, 1, 8];
const OID_USERNAME: &[u64] = &[1, 3, 6, 1, 4, 1, 57264, 1, 7];

fn set_validity(params: &mut CertificateParams, from: i64, to: i64) {
    let epoch = rcgen::date_time_ymd(1970, 1, 1);
    params.not_before = epoch + Duration::from_secs(from as u64);
    params.not_after = epoch + Duration::from_secs(to as u64);
}

fn name(cn: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "test");
    dn.push(DnType::CommonName, cn);
    dn
}

/// A certificate authority: its parameters, key and certificate.
struct Ca {
    params: CertificateParams,
    key: KeyPair,
    der: Vec<u8>,
}

impl Ca {
    fn issuer(&self) -> Issuer<'_, &KeyPair> {
        Issuer::from_params(&self.params, &self.key)
    }

    fn spki(&self) -> Vec<u8> {
        self.key.subject_public_key_info()
    }
}

fn ca_params(cn: &str, from: i64, to: i64) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = name(cn);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    set_validity(&mut params, from, to);
    params
}

fn root(cn: &str, from: i64, to: i64) -> Ca {
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
    let params = ca_params(cn, from, to);
    let der = params.self_signed(&key).unwrap().der().to_vec();
    Ca { params, key, der }
}

fn intermediate_with(params: CertificateParams, parent: &Ca) -> Ca {
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
    let der = params
        .signed_by(&key, &parent.issuer())
        .unwrap()
        .der()
        .to_vec();
    Ca { params, key, der }
}

fn intermediate(cn: &str, parent: &Ca) -> Ca {
    let mut params = ca_params(cn, BASE - YEAR / 2, BASE + 8 * YEAR);
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::CodeSigning];
    params.use_authority_key_identifier_extension = true;
    intermediate_with(params, parent)
}

/// Root + intermediate, like Fulcio's current chain.
struct Pki {
    root: Ca,
    intermediate: Ca,
}

impl Pki {
    fn new() -> Pki {
        Pki::named("test-fulcio-root", "test-fulcio-intermediate")
    }

    fn named(root_cn: &str, intermediate_cn: &str) -> Pki {
        let root = root(root_cn, BASE - YEAR, BASE + 9 * YEAR);
        let intermediate = intermediate(intermediate_cn, &root);
        Pki { root, intermediate }
    }

    fn authority(&self) -> CertificateAuthority {
        CertificateAuthority {
            uri: "https://fulcio.test".to_string(),
            chain_der: vec![self.intermediate.der.clone(), self.root.der.clone()],
            valid_for: TimeRange {
                start: Some(BASE - YEAR),
                end: None,
            },
        }
    }

    fn issue(&self, spec: &LeafSpec) -> Vec<u8> {
        issue(spec, &self.intermediate)
    }
}

/// What a test leaf looks like; the default is a Fulcio e-mail leaf with both issuer forms.
#[derive(Clone)]
struct LeafSpec {
    sans: Vec<SanType>,
    issuer_v1: Option<String>,
    issuer_v2: Option<String>,
    ekus: Vec<ExtendedKeyUsagePurpose>,
    is_ca: IsCa,
    not_before: i64,
    not_after: i64,
    extra_extensions: Vec<CustomExtension>,
    /// One fixed key per spec, so re-issuing (precertificate, then final) keeps the TBS.
    key_seed: u8,
}

impl Default for LeafSpec {
    fn default() -> Self {
        LeafSpec {
            sans: vec![email("dev@example.com")],
            issuer_v1: Some(TEST_ISSUER.to_string()),
            issuer_v2: Some(TEST_ISSUER.to_string()),
            ekus: vec![ExtendedKeyUsagePurpose::CodeSigning],
            is_ca: IsCa::ExplicitNoCa,
            not_before: BASE,
            not_after: BASE + LEAF_LIFETIME,
            extra_extensions: vec![],
            key_seed: 0,
        }
    }
}

fn email(address: &str) -> SanType {
    SanType::Rfc822Name(Ia5String::try_from(address).unwrap())
}

fn uri(uri: &str) -> SanType {
    SanType::URI(Ia5String::try_from(uri).unwrap())
}

/// Certificate parameters of a leaf; `extra` extensions go first, then the issuer extensions.
fn leaf_params(spec: &LeafSpec, extra: &[CustomExtension]) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params.serial_number = Some(SerialNumber::from_slice(&[
        0x5e,
        0x4f,
        0x8b,
        0xdf,
        spec.key_seed,
    ]));
    params.subject_alt_names = spec.sans.clone();
    params.is_ca = spec.is_ca;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = spec.ekus.clone();
    params.use_authority_key_identifier_extension = true;
    set_validity(&mut params, spec.not_before, spec.not_after);
    params.custom_extensions = extra.to_vec();
    if let Some(issuer) = &spec.issuer_v1 {
        params
            .custom_extensions
            .push(CustomExtension::from_oid_content(
                OID_ISSUER_V1,
                issuer.as_bytes().to_vec(),
            ));
    }
    if let Some(issuer) = &spec.issuer_v2 {
        params
            .custom_extensions
            .push(CustomExtension::from_oid_content(
                OID_ISSUER_V2,
                der_utf8_string(issuer),
            ));
    }
    params
        .custom_extensions
        .extend(spec.extra_extensions.iter().cloned());
    params
}

thread_local! {
    static LEAF_KEYS: std::cell::RefCell<Vec<(u8, std::rc::Rc<KeyPair>)>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

fn leaf_key(seed: u8) -> std::rc::Rc<KeyPair> {
    LEAF_KEYS.with(|keys| {
        let mut keys = keys.borrow_mut();
        if let Some((_, key)) = keys.iter().find(|(s, _)| *s == seed) {
            return key.clone();
        }
        let key = std::rc::Rc::new(KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap());
        keys.push((seed, key.clone()));
        key
    })
}

fn issue_with(spec: &LeafSpec, extra: &[CustomExtension], issuer: &Ca) -> Vec<u8> {
    let key = leaf_key(spec.key_seed);
    leaf_params(spec, extra)
        .signed_by(key.as_ref(), &issuer.issuer())
        .unwrap()
        .der()
        .to_vec()
}

fn issue(spec: &LeafSpec, issuer: &Ca) -> Vec<u8> {
    issue_with(spec, &[], issuer)
}

fn authorities(pki: &Pki) -> Vec<CertificateAuthority> {
    vec![pki.authority()]
}

fn assert_untrusted(err: &CertError, needle: &str) {
    assert_eq!(err.reason(), "untrusted_chain", "{err}");
    assert!(
        err.to_string().contains(needle),
        "{err}\nexpected: {needle}"
    );
}

// --- chain: must pass ------------------------------------------------------------------------

#[test]
fn test_leaf_verifies_at_signing_time() {
    let pki = Pki::new();
    let leaf = pki.issue(&LeafSpec::default());
    let verified: VerifiedLeaf = verify_leaf(&leaf, &[], &authorities(&pki), &[], AT).unwrap();
    assert_eq!(verified.authority_uri, "https://fulcio.test");
    assert_eq!(verified.issuer_der, pki.intermediate.der);
    assert_eq!(
        verified.public_key_spki_der,
        leaf_key(0).subject_public_key_info()
    );
    assert_eq!(
        (verified.not_before, verified.not_after),
        (BASE, BASE + LEAF_LIFETIME)
    );
    assert_eq!(verified.identity.subjects, vec!["dev@example.com"]);
    assert_eq!(verified.identity.issuer.as_deref(), Some(TEST_ISSUER));
}

#[test]
fn test_leaf_validity_ends_are_inclusive() {
    let pki = Pki::new();
    let leaf = pki.issue(&LeafSpec::default());
    for at in [BASE, BASE + LEAF_LIFETIME] {
        verify_leaf(&leaf, &[], &authorities(&pki), &[], at).unwrap();
    }
}

#[test]
fn presented_intermediate_completes_a_root_only_authority() {
    let pki = Pki::new();
    let leaf = pki.issue(&LeafSpec::default());
    let mut authority = pki.authority();
    authority.chain_der = vec![pki.root.der.clone()];
    // cosign's chain annotation carries intermediate and root; the root is just ignored.
    let presented = vec![pki.intermediate.der.clone(), pki.root.der.clone()];
    let verified = verify_leaf(&leaf, &presented, &[authority], &[], AT).unwrap();
    assert_eq!(verified.issuer_der, pki.intermediate.der);
}

#[test]
fn second_authority_is_tried_when_the_first_does_not_fit() {
    let pki = Pki::new();
    let other = Pki::named("other-root", "other-intermediate");
    let leaf = pki.issue(&LeafSpec::default());
    let mut first = other.authority();
    first.uri = "https://other.test".to_string();
    let verified = verify_leaf(&leaf, &[], &[first, pki.authority()], &[], AT).unwrap();
    assert_eq!(verified.authority_uri, "https://fulcio.test");
}

#[test]
fn extra_root_from_policy_ca_cert_passes() {
    let pki = Pki::new();
    let leaf = pki.issue(&LeafSpec::default());
    let verified = verify_leaf(
        &leaf,
        std::slice::from_ref(&pki.intermediate.der),
        &[],
        std::slice::from_ref(&pki.root.der),
        AT,
    )
    .unwrap();
    assert_eq!(verified.authority_uri, POLICY_CA_CERT);
    assert_eq!(verified.issuer_der, pki.intermediate.der);

    // A ca-cert holding the intermediate makes it an anchor by itself.
    let verified = verify_leaf(
        &leaf,
        &[],
        &[],
        std::slice::from_ref(&pki.intermediate.der),
        AT,
    )
    .unwrap();
    assert_eq!(verified.authority_uri, POLICY_CA_CERT);
    assert_eq!(verified.issuer_der, pki.intermediate.der);
}

#[test]
fn leaf_directly_under_a_root_reports_the_root_as_issuer() {
    let root = root("test-fulcio-v1", BASE - YEAR, BASE + YEAR);
    let leaf = issue(&LeafSpec::default(), &root);
    let authority = CertificateAuthority {
        uri: "https://fulcio.test".to_string(),
        chain_der: vec![root.der.clone()],
        valid_for: TimeRange::default(),
    };
    let verified = verify_leaf(&leaf, &[], &[authority], &[], AT).unwrap();
    assert_eq!(verified.issuer_der, root.der);
}

// --- chain: must deny ------------------------------------------------------------------------

#[test]
fn test_leaf_at_now_is_expired() {
    let pki = Pki::new();
    let leaf = pki.issue(&LeafSpec::default());
    let err = verify_leaf(&leaf, &[], &authorities(&pki), &[], now()).unwrap_err();
    assert_eq!(err.reason(), "not_valid_at_signing_time");
    assert!(
        err.to_string()
            .contains("valid 2025-01-01T00:00:00Z–2025-01-01T00:10:00Z"),
        "{err}"
    );
}

#[test]
fn signing_time_before_not_before_fails() {
    let pki = Pki::new();
    let leaf = pki.issue(&LeafSpec::default());
    let err = verify_leaf(&leaf, &[], &authorities(&pki), &[], BASE - 1).unwrap_err();
    assert_eq!(
        err.to_string(),
        "certificate was not valid at signing time 2024-12-31T23:59:59Z: \
         valid 2025-01-01T00:00:00Z–2025-01-01T00:10:00Z"
    );
}

#[test]
fn signing_time_after_not_after_fails() {
    let pki = Pki::new();
    let leaf = pki.issue(&LeafSpec::default());
    let err = verify_leaf(
        &leaf,
        &[],
        &authorities(&pki),
        &[],
        BASE + LEAF_LIFETIME + 1,
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "certificate was not valid at signing time 2025-01-01T00:10:01Z: \
         valid 2025-01-01T00:00:00Z–2025-01-01T00:10:00Z"
    );
    assert_eq!(err.reason(), "not_valid_at_signing_time");
}

#[test]
fn negative_signing_time_fails() {
    let pki = Pki::new();
    let leaf = pki.issue(&LeafSpec::default());
    let err = verify_leaf(&leaf, &[], &authorities(&pki), &[], -1).unwrap_err();
    assert_eq!(err, CertError::InvalidSigningTime(-1));
    assert_eq!(err.reason(), "invalid_signing_time");
}

#[test]
fn leaf_from_an_untrusted_ca_fails() {
    let trusted = Pki::new();
    let untrusted = Pki::named("evil-root", "evil-intermediate");
    let leaf = untrusted.issue(&LeafSpec::default());
    let err = verify_leaf(&leaf, &[], &authorities(&trusted), &[], AT).unwrap_err();
    assert_untrusted(
        &err,
        "certificate does not chain to a trusted certificate authority at signing time \
         2025-01-01T00:00:01Z: https://fulcio.test (authority 1): no valid path to root \
         CN=test-fulcio-root,O=test: issuer not found (unknown issuer)",
    );
}

#[test]
fn presented_chain_ending_in_an_untrusted_root_fails() {
    // The attacker's root and intermediate copy the trusted names exactly, and the attacker
    // presents both with the signature: neither may become an anchor.
    let trusted = Pki::new();
    let attacker = Pki::new();
    let leaf = attacker.issue(&LeafSpec::default());
    let presented = vec![attacker.intermediate.der.clone(), attacker.root.der.clone()];

    let err = verify_leaf(&leaf, &presented, &authorities(&trusted), &[], AT).unwrap_err();
    assert_untrusted(
        &err,
        "https://fulcio.test (authority 1): no valid path to root",
    );

    let mut root_only = trusted.authority();
    root_only.chain_der = vec![trusted.root.der.clone()];
    let err = verify_leaf(&leaf, &presented, &[root_only], &[], AT).unwrap_err();
    assert_untrusted(&err, "no valid path to root CN=test-fulcio-root,O=test");

    // Nor with a policy ca-cert.
    let err = verify_leaf(
        &leaf,
        &presented,
        &[],
        std::slice::from_ref(&trusted.root.der),
        AT,
    )
    .unwrap_err();
    assert_untrusted(&err, "policy ca-cert 1: no valid path to root");
}

#[test]
fn missing_intermediate_fails() {
    let pki = Pki::new();
    let leaf = pki.issue(&LeafSpec::default());
    let mut authority = pki.authority();
    authority.chain_der = vec![pki.root.der.clone()];
    let err = verify_leaf(&leaf, &[], &[authority], &[], AT).unwrap_err();
    assert_untrusted(&err, "issuer not found (unknown issuer)");
}

#[test]
fn intermediates_of_one_authority_never_combine_with_another_root() {
    // Authority A holds the real intermediate but under a foreign root; authority B holds the
    // intermediate's real root but not the intermediate. Pooled, they would make a path.
    let pki = Pki::new();
    let foreign = Pki::named("foreign-root", "foreign-intermediate");
    let leaf = pki.issue(&LeafSpec::default());
    let a = CertificateAuthority {
        uri: "https://a.test".to_string(),
        chain_der: vec![pki.intermediate.der.clone(), foreign.root.der.clone()],
        valid_for: TimeRange::default(),
    };
    let b = CertificateAuthority {
        uri: "https://b.test".to_string(),
        chain_der: vec![pki.root.der.clone()],
        valid_for: TimeRange::default(),
    };
    let err = verify_leaf(&leaf, &[], &[a, b], &[], AT).unwrap_err();
    assert_untrusted(&err, "https://a.test (authority 1): no valid path");
    assert_untrusted(&err, "https://b.test (authority 2): no valid path");
}

#[test]
fn authority_not_valid_at_signing_time_fails() {
    let pki = Pki::new();
    let leaf = pki.issue(&LeafSpec::default());
    let mut ended = pki.authority();
    ended.valid_for = TimeRange {
        start: Some(BASE - YEAR),
        end: Some(AT - 1),
    };
    let err = verify_leaf(&leaf, &[], &[ended], &[], AT).unwrap_err();
    assert_untrusted(
        &err,
        "https://fulcio.test (authority 1): authority not valid at signing time: \
         valid 2024-01-02T00:00:00Z–2025-01-01T00:00:00Z",
    );

    let mut not_started = pki.authority();
    not_started.valid_for = TimeRange {
        start: Some(AT + 1),
        end: None,
    };
    let err = verify_leaf(&leaf, &[], &[not_started], &[], AT).unwrap_err();
    assert_untrusted(
        &err,
        "authority not valid at signing time: valid from 2025-01-01T00:00:02Z",
    );
}

#[test]
fn root_not_valid_at_signing_time_fails() {
    // webpki does not look at an anchor's validity; verity does.
    let expired_root = root("test-fulcio-root", BASE - 2 * YEAR, AT - 1);
    let intermediate = intermediate("test-fulcio-intermediate", &expired_root);
    let leaf = issue(&LeafSpec::default(), &intermediate);
    let authority = CertificateAuthority {
        uri: "https://fulcio.test".to_string(),
        chain_der: vec![intermediate.der.clone(), expired_root.der.clone()],
        valid_for: TimeRange::default(),
    };
    let err = verify_leaf(&leaf, &[], &[authority], &[], AT).unwrap_err();
    assert_untrusted(
        &err,
        "root CN=test-fulcio-root,O=test not valid at signing time: \
         valid 2023-01-02T00:00:00Z–2025-01-01T00:00:00Z",
    );

    // The same for a policy ca-cert root.
    let err = verify_leaf(
        &leaf,
        std::slice::from_ref(&intermediate.der),
        &[],
        std::slice::from_ref(&expired_root.der),
        AT,
    )
    .unwrap_err();
    assert_untrusted(
        &err,
        "policy ca-cert 1: root CN=test-fulcio-root,O=test not valid",
    );
}

#[test]
fn intermediate_not_valid_at_signing_time_fails() {
    let root = root("test-fulcio-root", BASE - YEAR, BASE + YEAR);
    let mut params = ca_params("test-fulcio-intermediate", BASE - YEAR, AT - 1);
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::CodeSigning];
    let intermediate = intermediate_with(params, &root);
    let leaf = issue(&LeafSpec::default(), &intermediate);
    let authority = CertificateAuthority {
        uri: "https://fulcio.test".to_string(),
        chain_der: vec![intermediate.der.clone(), root.der.clone()],
        valid_for: TimeRange::default(),
    };
    let err = verify_leaf(&leaf, &[], &[authority], &[], AT).unwrap_err();
    assert_untrusted(
        &err,
        "an intermediate certificate expired at 2025-01-01T00:00:00Z",
    );
}

#[test]
fn leaf_without_code_signing_usage_fails() {
    let pki = Pki::new();
    let server_auth = pki.issue(&LeafSpec {
        ekus: vec![ExtendedKeyUsagePurpose::ServerAuth],
        ..LeafSpec::default()
    });
    let err = verify_leaf(&server_auth, &[], &authorities(&pki), &[], AT).unwrap_err();
    assert_eq!(
        err.to_string(),
        "certificate is not for code signing: extended key usage [1.3.6.1.5.5.7.3.1], \
         expected codeSigning (1.3.6.1.5.5.7.3.3)"
    );
    assert_eq!(err.reason(), "missing_code_signing");

    let no_eku = pki.issue(&LeafSpec {
        ekus: vec![],
        ..LeafSpec::default()
    });
    let err = verify_leaf(&no_eku, &[], &authorities(&pki), &[], AT).unwrap_err();
    assert_eq!(
        err,
        CertError::MissingCodeSigning {
            found: "absent".to_string()
        }
    );
}

#[test]
fn ca_leaf_fails() {
    let pki = Pki::new();
    let leaf = pki.issue(&LeafSpec {
        is_ca: IsCa::Ca(BasicConstraints::Unconstrained),
        ..LeafSpec::default()
    });
    let err = verify_leaf(&leaf, &[], &authorities(&pki), &[], AT).unwrap_err();
    assert_eq!(err, CertError::LeafIsCa);
    assert_eq!(err.reason(), "leaf_is_ca");
}

#[test]
fn intermediate_without_code_signing_usage_fails() {
    let root = root("test-fulcio-root", BASE - YEAR, BASE + YEAR);
    let mut params = ca_params("test-fulcio-intermediate", BASE - YEAR, BASE + YEAR);
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let intermediate = intermediate_with(params, &root);
    let leaf = issue(&LeafSpec::default(), &intermediate);
    let authority = CertificateAuthority {
        uri: "https://fulcio.test".to_string(),
        chain_der: vec![intermediate.der.clone(), root.der.clone()],
        valid_for: TimeRange::default(),
    };
    let err = verify_leaf(&leaf, &[], &[authority], &[], AT).unwrap_err();
    assert_untrusted(
        &err,
        "an intermediate certificate's extended key usage excludes code signing",
    );
}

#[test]
fn issuer_that_is_not_a_ca_fails() {
    let pki = Pki::new();
    let mut params = ca_params("not-a-ca", BASE - YEAR, BASE + YEAR);
    params.is_ca = IsCa::ExplicitNoCa;
    let not_a_ca = intermediate_with(params, &pki.root);
    let leaf = issue(&LeafSpec::default(), &not_a_ca);
    let err = verify_leaf(
        &leaf,
        std::slice::from_ref(&not_a_ca.der),
        &authorities(&pki),
        &[],
        AT,
    )
    .unwrap_err();
    assert_untrusted(
        &err,
        "an issuing certificate is not a certificate authority",
    );
}

#[test]
fn tampered_leaf_signature_fails() {
    let pki = Pki::new();
    let mut leaf = pki.issue(&LeafSpec::default());
    let last = leaf.len() - 1;
    leaf[last] ^= 0x01;
    let err = verify_leaf(&leaf, &[], &authorities(&pki), &[], AT).unwrap_err();
    assert_untrusted(&err, "a certificate signature does not verify");
}

#[test]
fn no_trusted_authority_fails() {
    let pki = Pki::new();
    let leaf = pki.issue(&LeafSpec::default());
    let err = verify_leaf(&leaf, &[], &[], &[], AT).unwrap_err();
    assert_eq!(err, CertError::NoTrustedAuthority);

    let empty = CertificateAuthority {
        uri: "https://empty.test".to_string(),
        chain_der: vec![],
        valid_for: TimeRange::default(),
    };
    let err = verify_leaf(&leaf, &[], &[empty], &[], AT).unwrap_err();
    assert_untrusted(
        &err,
        "https://empty.test (authority 1): has no certificates",
    );
}

#[test]
fn too_many_presented_intermediates_fail() {
    let pki = Pki::new();
    let leaf = pki.issue(&LeafSpec::default());
    let presented = vec![pki.intermediate.der.clone(); MAX_PRESENTED_INTERMEDIATES + 1];
    let err = verify_leaf(&leaf, &presented, &authorities(&pki), &[], AT).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "{} intermediate certificates presented with the signature, at most {} allowed",
            MAX_PRESENTED_INTERMEDIATES + 1,
            MAX_PRESENTED_INTERMEDIATES
        )
    );
    let presented = vec![pki.intermediate.der.clone(); MAX_PRESENTED_INTERMEDIATES];
    verify_leaf(&leaf, &presented, &authorities(&pki), &[], AT).unwrap();
}

// --- garbage in ------------------------------------------------------------------------------

#[test]
fn garbage_leaf_der_gives_a_clear_error() {
    let pki = Pki::new();
    for garbage in [&b"not a certificate"[..], &[], &[0x30, 0x03, 0x02, 0x01]] {
        let err = verify_leaf(garbage, &[], &authorities(&pki), &[], AT).unwrap_err();
        assert_eq!(err.reason(), "malformed_certificate");
        assert!(
            err.to_string()
                .starts_with("leaf certificate is not a valid x.509 certificate: "),
            "{err}"
        );
        assert_eq!(
            identity_of(garbage).unwrap_err().reason(),
            "malformed_certificate"
        );
        let err = verify_embedded_sct(garbage, &pki.intermediate.der, &[]).unwrap_err();
        assert!(
            err.to_string().starts_with("leaf certificate is not"),
            "{err}"
        );
    }
    let leaf = pki.issue(&LeafSpec::default());
    let truncated = &leaf[..leaf.len() - 10];
    let err = verify_leaf(truncated, &[], &authorities(&pki), &[], AT).unwrap_err();
    assert_eq!(err.reason(), "malformed_certificate");
    let err = verify_embedded_sct(&leaf, b"junk", &[]).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("issuer certificate is not a valid x.509 certificate"),
        "{err}"
    );
}

#[test]
fn garbage_presented_intermediate_gives_a_clear_error() {
    let pki = Pki::new();
    let leaf = pki.issue(&LeafSpec::default());
    let presented = vec![pki.intermediate.der.clone(), b"junk".to_vec()];
    let err = verify_leaf(&leaf, &presented, &authorities(&pki), &[], AT).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("presented intermediate certificate 2 is not a valid x.509 certificate"),
        "{err}"
    );
}

#[test]
fn garbage_authority_certificate_is_reported_per_authority() {
    let pki = Pki::new();
    let leaf = pki.issue(&LeafSpec::default());
    let broken = CertificateAuthority {
        uri: "https://broken.test".to_string(),
        chain_der: vec![b"junk".to_vec()],
        valid_for: TimeRange::default(),
    };
    let err = verify_leaf(&leaf, &[], std::slice::from_ref(&broken), &[], AT).unwrap_err();
    assert_untrusted(
        &err,
        "https://broken.test (authority 1): root is not a valid x.509 certificate",
    );
    // A broken authority does not hide a good one.
    verify_leaf(&leaf, &[], &[broken, pki.authority()], &[], AT).unwrap();
}

#[test]
fn pem_chain_decodes_in_order() {
    let pki = Pki::new();
    let pem = format!(
        "{}\n{}",
        pem_of(&pki.intermediate.der),
        pem_of(&pki.root.der)
    );
    assert_eq!(
        certificates_from_pem(&pem).unwrap(),
        vec![pki.intermediate.der.clone(), pki.root.der.clone()]
    );
}

fn pem_of(der: &[u8]) -> String {
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    let lines: Vec<&str> = body
        .as_bytes()
        .chunks(64)
        .map(|chunk| std::str::from_utf8(chunk).unwrap())
        .collect();
    format!(
        "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
        lines.join("\n")
    )
}

#[test]
fn garbage_pem_gives_clear_errors() {
    let err = certificates_from_pem("hello").unwrap_err();
    assert_eq!(err, CertError::NoCertificateInPem);
    assert_eq!(err.to_string(), "pem contains no certificate");

    let err =
        certificates_from_pem("-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n")
            .unwrap_err();
    assert_eq!(err.reason(), "malformed_pem");
    assert!(err.to_string().starts_with("invalid pem: "), "{err}");

    let err = certificates_from_pem("-----BEGIN CERTIFICATE-----\nMIIB\n").unwrap_err();
    assert_eq!(err.reason(), "malformed_pem");
    assert!(
        err.to_string().contains("missing section end marker"),
        "{err}"
    );

    let pki = Pki::new();
    let junk = pem_of(b"not der at all");
    let err = certificates_from_pem(&format!("{}{junk}", pem_of(&pki.root.der))).unwrap_err();
    assert_eq!(err.reason(), "malformed_certificate");
    assert!(
        err.to_string()
            .starts_with("pem certificate 2 is not a valid x.509 certificate"),
        "{err}"
    );
}

// --- identity --------------------------------------------------------------------------------

fn identity(spec: LeafSpec) -> Result<CertificateIdentity, CertError> {
    let pki = Pki::new();
    identity_of(&pki.issue(&spec))
}

#[test]
fn identity_email_san() {
    let id = identity(LeafSpec::default()).unwrap();
    assert_eq!(id.subjects, vec!["dev@example.com"]);
    assert_eq!(id.issuer.as_deref(), Some(TEST_ISSUER));
    assert!(id.claims.is_empty());
}

#[test]
fn identity_uri_san_github_workflow() {
    let raw = |arc: u64, value: &str| {
        CustomExtension::from_oid_content(
            &[1, 3, 6, 1, 4, 1, 57264, 1, arc],
            value.as_bytes().to_vec(),
        )
    };
    let utf8 = |arc: u64, value: &str| {
        CustomExtension::from_oid_content(
            &[1, 3, 6, 1, 4, 1, 57264, 1, arc],
            der_utf8_string(value),
        )
    };
    let id = identity(LeafSpec {
        sans: vec![uri(WORKFLOW)],
        issuer_v1: Some("https://token.actions.githubusercontent.com".to_string()),
        issuer_v2: Some("https://token.actions.githubusercontent.com".to_string()),
        extra_extensions: vec![
            raw(2, "push"),
            raw(6, "refs/tags/v1"),
            utf8(9, WORKFLOW),
            utf8(14, "refs/tags/v1"),
        ],
        ..LeafSpec::default()
    })
    .unwrap();
    assert_eq!(id.subjects, vec![WORKFLOW]);
    assert_eq!(
        id.issuer.as_deref(),
        Some("https://token.actions.githubusercontent.com")
    );
    let claims: Vec<(&str, &str, &str)> = id
        .claims
        .iter()
        .map(|claim| (claim.oid, claim.name, claim.value.as_str()))
        .collect();
    assert_eq!(
        claims,
        vec![
            ("1.3.6.1.4.1.57264.1.2", "github-workflow-trigger", "push"),
            (
                "1.3.6.1.4.1.57264.1.6",
                "github-workflow-ref",
                "refs/tags/v1"
            ),
            ("1.3.6.1.4.1.57264.1.9", "build-signer-uri", WORKFLOW),
            (
                "1.3.6.1.4.1.57264.1.14",
                "source-repository-ref",
                "refs/tags/v1"
            ),
        ]
    );
}

#[test]
fn identity_issuer_v1_only() {
    let id = identity(LeafSpec {
        issuer_v2: None,
        ..LeafSpec::default()
    })
    .unwrap();
    assert_eq!(id.issuer.as_deref(), Some(TEST_ISSUER));
}

#[test]
fn identity_issuer_v2_only() {
    let id = identity(LeafSpec {
        issuer_v1: None,
        ..LeafSpec::default()
    })
    .unwrap();
    assert_eq!(id.issuer.as_deref(), Some(TEST_ISSUER));
}

#[test]
fn identity_issuer_both_forms_agree() {
    let id = identity(LeafSpec::default()).unwrap();
    assert_eq!(id.issuer.as_deref(), Some(TEST_ISSUER));
}

#[test]
fn identity_issuer_none() {
    let id = identity(LeafSpec {
        issuer_v1: None,
        issuer_v2: None,
        ..LeafSpec::default()
    })
    .unwrap();
    assert_eq!(id.issuer, None);
    assert_eq!(id.subjects, vec!["dev@example.com"]);
}

#[test]
fn identity_issuer_forms_that_disagree_fail() {
    let spec = LeafSpec {
        issuer_v1: Some("https://accounts.google.com".to_string()),
        ..LeafSpec::default()
    };
    let err = identity(spec.clone()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "certificate oidc issuer extensions disagree: 1.3.6.1.4.1.57264.1.8 says \
         \"https://issuer.example.com\", 1.3.6.1.4.1.57264.1.1 says \"https://accounts.google.com\""
    );
    assert_eq!(err.reason(), "issuer_mismatch");
    // verify_leaf refuses such a leaf too.
    let pki = Pki::new();
    let err = verify_leaf(&pki.issue(&spec), &[], &authorities(&pki), &[], AT).unwrap_err();
    assert_eq!(err.reason(), "issuer_mismatch");
}

#[test]
fn identity_issuer_v2_must_be_a_der_utf8_string() {
    let err = identity(LeafSpec {
        issuer_v2: None,
        extra_extensions: vec![CustomExtension::from_oid_content(
            OID_ISSUER_V2,
            TEST_ISSUER.as_bytes().to_vec(),
        )],
        ..LeafSpec::default()
    })
    .unwrap_err();
    assert_eq!(err.reason(), "malformed_extension");
    assert!(
        err.to_string().starts_with(
            "certificate extension oidc issuer (1.3.6.1.4.1.57264.1.8) is malformed: \
             expected a der utf8string"
        ),
        "{err}"
    );
}

#[test]
fn identity_issuer_v1_must_be_utf8() {
    let err = identity(LeafSpec {
        issuer_v1: None,
        extra_extensions: vec![CustomExtension::from_oid_content(
            OID_ISSUER_V1,
            vec![0xff, 0xfe],
        )],
        ..LeafSpec::default()
    })
    .unwrap_err();
    assert_eq!(err.reason(), "malformed_extension");
    assert!(err.to_string().contains("not utf-8"), "{err}");
}

#[test]
fn identity_username_other_name_dns_and_every_san() {
    let id = identity(LeafSpec {
        sans: vec![
            SanType::OtherName((
                OID_USERNAME.to_vec(),
                OtherNameValue::Utf8String("alice".to_string()),
            )),
            SanType::DnsName(Ia5String::try_from("build.example.com").unwrap()),
            email("second@example.com"),
            SanType::OtherName((
                vec![1, 3, 6, 1, 4, 1, 311, 20, 2, 3],
                OtherNameValue::Utf8String("upn@example.com".to_string()),
            )),
            SanType::IpAddress("127.0.0.1".parse().unwrap()),
        ],
        ..LeafSpec::default()
    })
    .unwrap();
    // Other otherName types and IP addresses are not identities.
    assert_eq!(
        id.subjects,
        vec!["alice", "build.example.com", "second@example.com"]
    );
}

#[test]
fn identity_duplicate_extension_fails() {
    let err = identity(LeafSpec {
        extra_extensions: vec![CustomExtension::from_oid_content(
            OID_ISSUER_V2,
            der_utf8_string(TEST_ISSUER),
        )],
        ..LeafSpec::default()
    })
    .unwrap_err();
    assert_eq!(
        err,
        CertError::DuplicateExtension {
            oid: "1.3.6.1.4.1.57264.1.8".to_string()
        }
    );
    assert_eq!(
        err.to_string(),
        "certificate has extension 1.3.6.1.4.1.57264.1.8 more than once"
    );
}

#[test]
fn identity_of_production_leaves() {
    let id = identity_of(&prod_2026().leaf).unwrap();
    assert_eq!(
        id.subjects,
        vec![
            "https://github.com/kubewarden/kubewarden-controller/.github/workflows/release.yml@refs/tags/v1.34.0"
        ]
    );
    assert_eq!(
        id.issuer.as_deref(),
        Some("https://token.actions.githubusercontent.com")
    );
    let id = identity_of(&prod_2021().leaf).unwrap();
    assert_eq!(id.subjects, vec!["flavio@castelli.me"]);
    assert_eq!(id.issuer, None);
}

// ---------------------------------------------------------------------------------------------
// SCTs from test CT logs (the signing side of RFC 6962 lives in support::signing::ct)
// ---------------------------------------------------------------------------------------------

/// The SCT timestamp used unless a test says otherwise (ms).
const SCT_TIME_MS: u64 = (AT as u64) * 1000 + 615;

// `CtLog` and `SctSpec` are the toolkit's (same crate), given this file's defaults here.
impl CtLog {
    /// The log as trusted by these tests: valid from a year before [`BASE`].
    fn trusted(&self) -> LogKey {
        self.log_key_valid_for(TimeRange {
            start: Some(BASE - YEAR),
            end: None,
        })
    }
}

/// `Default` is a well-formed v1 SCT with ECDSA/SHA-256 at [`SCT_TIME_MS`].
impl Default for SctSpec {
    fn default() -> Self {
        SctSpec::at(SCT_TIME_MS)
    }
}

/// Issues `spec` twice, as a CA does: first without the SCT list (the precertificate TBS the
/// logs sign), then with the SCTs made over it by `make_scts`. The SCT list goes first among the
/// custom extensions, so verification has to remove it from the middle of the list.
fn leaf_with_scts(
    pki: &Pki,
    spec: &LeafSpec,
    make_scts: impl FnOnce(&[u8], &[u8]) -> Vec<Vec<u8>>,
) -> Vec<u8> {
    let precertificate = pki.issue(spec);
    let scts = make_scts(&tbs_of(&precertificate), &pki.intermediate.spki());
    issue_with(spec, &[sct_list_extension(&scts)], &pki.intermediate)
}

fn leaf_with_sct(pki: &Pki, log: &CtLog, sct: &SctSpec) -> Vec<u8> {
    leaf_with_scts(pki, &LeafSpec::default(), |tbs, issuer_spki| {
        vec![make_sct(log, sct, issuer_spki, tbs)]
    })
}

fn assert_sct_unverified(err: &CertError, needle: &str) {
    assert_eq!(err.reason(), "sct_unverified", "{err}");
    assert!(
        err.to_string().contains(needle),
        "{err}\nexpected: {needle}"
    );
}

#[test]
fn sct_from_a_trusted_log_verifies() {
    let pki = Pki::new();
    let log = CtLog::p256("https://ct.test");
    let leaf = leaf_with_sct(&pki, &log, &SctSpec::default());
    let verified = verify_leaf(&leaf, &[], &authorities(&pki), &[], AT).unwrap();
    verify_embedded_sct(&leaf, &verified.issuer_der, &[log.trusted()]).unwrap();
}

#[test]
fn sct_with_extensions_verifies() {
    let pki = Pki::new();
    let log = CtLog::p256("https://ct.test");
    let spec = SctSpec {
        extensions: vec![0, 0, 5, 1, 2, 3, 4, 5],
        ..SctSpec::default()
    };
    let leaf = leaf_with_sct(&pki, &log, &spec);
    verify_embedded_sct(&leaf, &pki.intermediate.der, &[log.trusted()]).unwrap();
}

#[test]
fn sct_from_an_rsa_log_verifies() {
    let pki = Pki::new();
    let log = CtLog::with_key(
        KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048).unwrap(),
        "https://rsa-ct.test",
    );
    let spec = SctSpec {
        signature_algorithm: 1,
        ..SctSpec::default()
    };
    let leaf = leaf_with_sct(&pki, &log, &spec);
    verify_embedded_sct(&leaf, &pki.intermediate.der, &[log.trusted()]).unwrap();
}

#[test]
fn one_valid_sct_among_several_suffices() {
    let pki = Pki::new();
    let unknown = CtLog::p256("https://unknown.test");
    let log = CtLog::p256("https://ct.test");
    let leaf = leaf_with_scts(&pki, &LeafSpec::default(), |tbs, issuer_spki| {
        vec![
            make_sct(&unknown, &SctSpec::default(), issuer_spki, tbs),
            make_sct(&log, &SctSpec::default(), issuer_spki, tbs),
        ]
    });
    verify_embedded_sct(&leaf, &pki.intermediate.der, &[log.trusted()]).unwrap();
    let err = verify_embedded_sct(&leaf, &pki.intermediate.der, &[]).unwrap_err();
    assert_sct_unverified(&err, "sct 1: from unknown log");
    assert_sct_unverified(&err, "; sct 2: from unknown log");
}

#[test]
fn sct_missing_fails() {
    let pki = Pki::new();
    let log = CtLog::p256("https://ct.test");
    let leaf = pki.issue(&LeafSpec::default());
    let err = verify_embedded_sct(&leaf, &pki.intermediate.der, &[log.trusted()]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "certificate has no embedded signed certificate timestamp \
         (extension 1.3.6.1.4.1.11129.2.4.2)"
    );
}

#[test]
fn sct_from_an_unknown_log_fails() {
    let pki = Pki::new();
    let trusted = CtLog::p256("https://ct.test");
    let unknown = CtLog::p256("https://unknown.test");
    let leaf = leaf_with_sct(&pki, &unknown, &SctSpec::default());
    let err = verify_embedded_sct(&leaf, &pki.intermediate.der, &[trusted.trusted()]).unwrap_err();
    assert_sct_unverified(
        &err,
        &format!("sct 1: from unknown log {}", hex::encode(unknown.log_id())),
    );
}

#[test]
fn sct_from_a_log_with_a_known_id_but_another_key_fails() {
    // The log id only selects the key; the signature is what counts.
    let pki = Pki::new();
    let signer = CtLog::p256("https://ct.test");
    let impostor = CtLog::p256("https://ct.test");
    let leaf = leaf_with_sct(&pki, &signer, &SctSpec::default());
    let mut trusted = impostor.trusted();
    trusted.log_id = signer.log_id();
    let err = verify_embedded_sct(&leaf, &pki.intermediate.der, &[trusted]).unwrap_err();
    assert_sct_unverified(&err, "log https://ct.test: signature does not verify");

    // Should a trust root list the id twice, the right key still counts.
    let mut impostor_entry = impostor.trusted();
    impostor_entry.log_id = signer.log_id();
    verify_embedded_sct(
        &leaf,
        &pki.intermediate.der,
        &[impostor_entry, signer.trusted()],
    )
    .unwrap();
}

#[test]
fn sct_with_a_tampered_signature_fails() {
    let pki = Pki::new();
    let log = CtLog::p256("https://ct.test");
    let leaf = leaf_with_scts(&pki, &LeafSpec::default(), |tbs, issuer_spki| {
        let mut sct = make_sct(&log, &SctSpec::default(), issuer_spki, tbs);
        let last = sct.len() - 1;
        sct[last] ^= 0x01; // the last byte of s: still DER, no longer a valid signature
        vec![sct]
    });
    let err = verify_embedded_sct(&leaf, &pki.intermediate.der, &[log.trusted()]).unwrap_err();
    assert_sct_unverified(
        &err,
        "sct 1: log https://ct.test: signature does not verify over this certificate and issuer",
    );
}

#[test]
fn sct_with_a_tampered_timestamp_fails() {
    let pki = Pki::new();
    let log = CtLog::p256("https://ct.test");
    let leaf = leaf_with_scts(&pki, &LeafSpec::default(), |tbs, issuer_spki| {
        let mut sct = make_sct(&log, &SctSpec::default(), issuer_spki, tbs);
        sct[1 + 32 + 7] ^= 0x01; // last byte of the timestamp
        vec![sct]
    });
    let err = verify_embedded_sct(&leaf, &pki.intermediate.der, &[log.trusted()]).unwrap_err();
    assert_sct_unverified(&err, "does not verify");
}

#[test]
fn sct_over_a_different_certificate_fails() {
    // A real SCT for one leaf, copied into another leaf (another identity) by the same CA.
    let pki = Pki::new();
    let log = CtLog::p256("https://ct.test");
    let victim = LeafSpec::default();
    let attacker = LeafSpec {
        sans: vec![email("attacker@example.com")],
        ..LeafSpec::default()
    };
    let victim_tbs = tbs_of(&pki.issue(&victim));
    let sct = make_sct(
        &log,
        &SctSpec::default(),
        &pki.intermediate.spki(),
        &victim_tbs,
    );
    let leaf = issue_with(&attacker, &[sct_list_extension(&[sct])], &pki.intermediate);
    verify_leaf(&leaf, &[], &authorities(&pki), &[], AT).unwrap();
    let err = verify_embedded_sct(&leaf, &pki.intermediate.der, &[log.trusted()]).unwrap_err();
    assert_sct_unverified(&err, "does not verify over this certificate and issuer");
}

#[test]
fn sct_checked_against_another_issuer_fails() {
    let pki = Pki::new();
    let log = CtLog::p256("https://ct.test");
    let leaf = leaf_with_sct(&pki, &log, &SctSpec::default());
    let err = verify_embedded_sct(&leaf, &pki.root.der, &[log.trusted()]).unwrap_err();
    assert_sct_unverified(&err, "does not verify over this certificate and issuer");
}

#[test]
fn sct_from_a_log_not_valid_at_the_sct_time_fails() {
    let pki = Pki::new();
    let log = CtLog::p256("https://ct.test");
    let leaf = leaf_with_sct(&pki, &log, &SctSpec::default());
    let mut trusted = log.trusted();
    trusted.valid_for = TimeRange {
        start: Some(AT + 1),
        end: None,
    };
    let err = verify_embedded_sct(&leaf, &pki.intermediate.der, &[trusted]).unwrap_err();
    assert_sct_unverified(&err, "was not valid at the sct time 2025-01-01T00:00:01Z");
}

#[test]
fn sct_with_a_signature_algorithm_that_does_not_fit_the_key_fails() {
    let pki = Pki::new();
    let log = CtLog::p256("https://ct.test");
    let spec = SctSpec {
        signature_algorithm: 1, // rsa, but the log key is ECDSA
        ..SctSpec::default()
    };
    let leaf = leaf_with_sct(&pki, &log, &spec);
    let err = verify_embedded_sct(&leaf, &pki.intermediate.der, &[log.trusted()]).unwrap_err();
    assert_sct_unverified(
        &err,
        "log https://ct.test: sct signature algorithm 1 does not fit the log key type 1.2.840.10045.2.1",
    );
}

#[test]
fn sct_claiming_ecdsa_from_an_rsa_log_fails() {
    // The signature is a genuine RSA signature by the trusted log, but the SCT says ECDSA.
    let pki = Pki::new();
    let log = CtLog::with_key(
        KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048).unwrap(),
        "https://rsa-ct.test",
    );
    let leaf = leaf_with_sct(&pki, &log, &SctSpec::default());
    let err = verify_embedded_sct(&leaf, &pki.intermediate.der, &[log.trusted()]).unwrap_err();
    assert_sct_unverified(
        &err,
        "log https://rsa-ct.test: sct signature algorithm 3 does not fit the log key type 1.2.840.113549.1.1.1",
    );
}

#[test]
fn sct_with_a_hash_other_than_sha256_fails() {
    let pki = Pki::new();
    let log = CtLog::p256("https://ct.test");
    let spec = SctSpec {
        hash_algorithm: 5,
        ..SctSpec::default()
    };
    let leaf = leaf_with_sct(&pki, &log, &spec);
    let err = verify_embedded_sct(&leaf, &pki.intermediate.der, &[log.trusted()]).unwrap_err();
    assert_sct_unverified(&err, "unsupported hash algorithm 5, expected sha256 (4)");
}

#[test]
fn sct_with_an_unknown_version_fails() {
    let pki = Pki::new();
    let log = CtLog::p256("https://ct.test");
    let spec = SctSpec {
        version: 1,
        ..SctSpec::default()
    };
    let leaf = leaf_with_sct(&pki, &log, &spec);
    let err = verify_embedded_sct(&leaf, &pki.intermediate.der, &[log.trusted()]).unwrap_err();
    assert_sct_unverified(&err, "sct 1: unsupported sct version 1, expected v1 (0)");
}

#[test]
fn malformed_sct_lists_give_clear_errors() {
    let pki = Pki::new();
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (vec![0x05, 0x00], "expected a der octet string"),
        (der_octet_string(&[0, 0]), "empty sct list"),
        (der_octet_string(&[0, 9, 0, 1]), "truncated sct list"),
        (der_octet_string(&[0, 2, 0, 0]), "empty serialized sct"),
        (der_octet_string(&[0, 3, 0, 1, 0]), "truncated sct log id"),
    ];
    for (content, needle) in cases {
        let leaf = issue_with(
            &LeafSpec::default(),
            &[CustomExtension::from_oid_content(OID_SCT_LIST, content)],
            &pki.intermediate,
        );
        let err = verify_embedded_sct(&leaf, &pki.intermediate.der, &[]).unwrap_err();
        assert!(
            err.to_string().contains(needle),
            "{err}\nexpected: {needle}"
        );
        assert!(
            matches!(err.reason(), "sct_malformed" | "sct_unverified"),
            "{err}"
        );
    }
}

#[test]
fn two_sct_list_extensions_fail() {
    let pki = Pki::new();
    let log = CtLog::p256("https://ct.test");
    let precertificate = pki.issue(&LeafSpec::default());
    let sct = make_sct(
        &log,
        &SctSpec::default(),
        &pki.intermediate.spki(),
        &tbs_of(&precertificate),
    );
    let leaf = issue_with(
        &LeafSpec::default(),
        &[
            sct_list_extension(std::slice::from_ref(&sct)),
            sct_list_extension(&[sct]),
        ],
        &pki.intermediate,
    );
    let err = verify_embedded_sct(&leaf, &pki.intermediate.der, &[log.trusted()]).unwrap_err();
    assert_eq!(err.reason(), "duplicate_extension");
}
