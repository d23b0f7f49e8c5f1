//! Trust roots for the test material: a sigstore `trusted_root.json` and a TrustRoot resource
//! (`sigstoreKeys`) describing a [`TestFulcio`], a [`TestRekor`] and optionally a
//! [`TestCtLog`].

use serde_json::{Value, json};

use super::ct::TestCtLog;
use super::fulcio::TestFulcio;
use super::rekor::TestRekor;

/// The media type of `trusted_root.json` v0.1.
pub const TRUSTED_ROOT_MEDIA_TYPE: &str =
    "application/vnd.dev.sigstore.trustedroot+json;version=0.1";

/// A `trusted_root.json` (protobuf JSON of `dev.sigstore.trustroot.v1.TrustedRoot`) trusting
/// `fulcio`'s chain, `rekor`'s key and, when given, `ctlog`'s key, all valid from
/// [`super::VALID_FROM`] with no end.
pub fn trusted_root_json(
    fulcio: &TestFulcio,
    rekor: &TestRekor,
    ctlog: Option<&TestCtLog>,
) -> String {
    let valid_for = json!({"start": super::rfc3339(super::VALID_FROM)});
    let log = |base_url: &str, spki: &[u8], key_details: &str, log_id: &[u8]| -> Value {
        json!({
            "baseUrl": base_url,
            "hashAlgorithm": "SHA2_256",
            "publicKey": {
                "rawBytes": super::b64(spki),
                "keyDetails": key_details,
                "validFor": valid_for,
            },
            "logId": {"keyId": super::b64(log_id)},
        })
    };
    let ctlogs: Vec<Value> = ctlog
        .map(|ct| {
            let details = if ct.key().algorithm() == &rcgen::PKCS_ECDSA_P256_SHA256 {
                "PKIX_ECDSA_P256_SHA_256"
            } else {
                "PKIX_RSA_PKCS1V15_2048_SHA256"
            };
            log(ct.url(), &ct.spki(), details, &ct.log_id())
        })
        .into_iter()
        .collect();
    let root = json!({
        "mediaType": TRUSTED_ROOT_MEDIA_TYPE,
        "tlogs": [log(
            rekor.base_url(),
            rekor.public_key_der(),
            rekor.key().kind().trust_root_key_details(),
            rekor.log_id(),
        )],
        "certificateAuthorities": [{
            "subject": {"organization": "test", "commonName": "test-fulcio-root"},
            "uri": fulcio.uri(),
            "certChain": {
                "certificates": fulcio
                    .chain_der()
                    .iter()
                    .map(|der| json!({"rawBytes": super::b64(der)}))
                    .collect::<Vec<_>>(),
            },
            "validFor": valid_for,
        }],
        "ctlogs": ctlogs,
        "timestampAuthorities": [],
    });
    serde_json::to_string_pretty(&root).unwrap()
}

/// A `policy.sigstore.dev/v1alpha1` TrustRoot named `name` with `sigstoreKeys` for the same
/// material as [`trusted_root_json`]: base64 of the PEM chain (intermediate, then root) and of
/// the PEM public keys.
pub fn trust_root_yaml(
    name: &str,
    fulcio: &TestFulcio,
    rekor: &TestRekor,
    ctlog: Option<&TestCtLog>,
) -> String {
    let mut yaml = format!(
        "apiVersion: policy.sigstore.dev/v1alpha1\n\
         kind: TrustRoot\n\
         metadata:\n  name: {name}\n\
         spec:\n  sigstoreKeys:\n    certificateAuthorities:\n\
         \x20   - subject:\n          organization: test\n          commonName: test-fulcio-root\n\
         \x20     uri: {uri}\n      certChain: {chain}\n\
         \x20   tLogs:\n    - baseURL: {rekor_url}\n      hashAlgorithm: sha-256\n      publicKey: {rekor_key}\n",
        uri = fulcio.uri(),
        chain = super::b64(fulcio.chain_pem()),
        rekor_url = rekor.base_url(),
        rekor_key = super::b64(rekor.public_key_pem()),
    );
    if let Some(ct) = ctlog {
        yaml.push_str(&format!(
            "    ctLogs:\n    - baseURL: {}\n      hashAlgorithm: sha-256\n      publicKey: {}\n",
            ct.url(),
            super::b64(ct.public_key_pem())
        ));
    }
    yaml
}
