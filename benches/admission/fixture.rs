//! What the benchmarks admit: AdmissionReview bodies made from the test fixtures, policies, and
//! signed images pushed into the test registry with the signing toolkit.

use std::sync::Arc;

use futures::StreamExt as _;
use serde_json::{Value, json};
use verity::image::Digest;
use verity::policy::index::{NoMatchPolicy, PolicyIndex, Settings};
use verity::policy::source::{Documents, LoadOptions, RemoteTrust, build_snapshot};
use verity::policy::validate::ValidationOptions;
use verity::verify::trust::TrustMaterial;

use crate::support::registry::{OCI_CONFIG, OCI_LAYER_TAR, OCI_MANIFEST, TestRegistry};
use crate::support::signing::fulcio::TEST_OIDC_ISSUER;
use crate::support::signing::{
    FulcioLeaf, Hash, KeyKind, KeyPair, LeafSpec, SignatureLayer, TestCtLog, TestFulcio, TestRekor,
    push_legacy_signatures, simple_signing_payload, trusted_root_json, unix_now,
};

/// Repository (under the registry host) of the images each benchmark signs.
pub const KEY_REPO: &str = "bench/key/cold";
pub const KEYLESS_REPO: &str = "bench/keyless/cold";
pub const CACHED_REPO: &str = "bench/key/cached";
pub const FILL_REPO: &str = "bench/key/fill";
pub const BURST_REPO: &str = "bench/key/burst";
/// An image only a `static: pass` policy covers: admitted without any registry access.
pub const STATIC_IMAGE: &str = "static.bench.example/app:v1";
/// The keyless identity every benchmark leaf carries.
pub const KEYLESS_SUBJECT: &str = "bench@example.com";

/// The object kinds of `tests/fixtures`.
#[derive(Clone, Copy, Debug)]
pub enum Kind {
    Pod,
    Deployment,
    ReplicaSet,
}

impl Kind {
    fn fixture(self) -> &'static str {
        match self {
            Kind::Pod => include_str!("../../tests/fixtures/pod.json"),
            Kind::Deployment => include_str!("../../tests/fixtures/deployment.json"),
            Kind::ReplicaSet => include_str!("../../tests/fixtures/replicaset.json"),
        }
    }
}

/// An AdmissionReview (CREATE) of a `kind` fixture whose only container runs `image`.
pub fn review(kind: Kind, uid: &str, image: &str) -> Vec<u8> {
    let mut review: Value = serde_json::from_str(kind.fixture()).expect("fixture is JSON");
    review["request"]["uid"] = json!(uid);
    let object = &mut review["request"]["object"];
    let spec = match kind {
        Kind::Pod => &mut object["spec"],
        Kind::Deployment | Kind::ReplicaSet => &mut object["spec"]["template"]["spec"],
    };
    let spec = spec.as_object_mut().expect("fixture has a pod spec");
    spec.remove("initContainers");
    spec.remove("ephemeralContainers");
    spec.insert(
        "containers".to_string(),
        json!([{"name": "app", "image": image}]),
    );
    serde_json::to_vec(&review).expect("serializable")
}

/// The key policy (`HOST/bench/key/**`), the keyless policy (`HOST/bench/keyless/**`) and a
/// static-pass policy (`static.bench.example/**`).
pub fn policies_yaml(host: &str, key: &KeyPair) -> String {
    let key_pem = key.public_pem().trim_end().replace('\n', "\n          ");
    format!(
        r#"apiVersion: policy.sigstore.dev/v1alpha1
kind: ClusterImagePolicy
metadata: {{name: bench-key}}
spec:
  images: [{{glob: "{host}/bench/key/**"}}]
  authorities:
  - name: bench-key
    key:
      data: |
          {key_pem}
---
apiVersion: policy.sigstore.dev/v1alpha1
kind: ClusterImagePolicy
metadata: {{name: bench-keyless}}
spec:
  images: [{{glob: "{host}/bench/keyless/**"}}]
  authorities:
  - name: bench-keyless
    keyless:
      url: https://fulcio.test
      identities: [{{issuer: "{TEST_OIDC_ISSUER}", subject: "{KEYLESS_SUBJECT}"}}]
---
apiVersion: policy.sigstore.dev/v1alpha1
kind: ClusterImagePolicy
metadata: {{name: bench-static}}
spec:
  images: [{{glob: "static.bench.example/**"}}]
  authorities: [{{static: {{action: pass}}}}]
"#
    )
}

/// The signing material of one run: a P-256 key, and a test Fulcio and Rekor with one leaf (an
/// SCT of a test CT log embedded) for [`KEYLESS_SUBJECT`].
pub struct Signers {
    pub key: KeyPair,
    pub fulcio: TestFulcio,
    pub rekor: TestRekor,
    pub leaf: FulcioLeaf,
    /// A Rekor integrated time inside the leaf's validity.
    pub signed_at: i64,
    /// `trusted_root.json` for the Fulcio, Rekor and CT log above (`--trust-root`).
    pub trusted_root_json: String,
}

impl Signers {
    pub fn new() -> Self {
        let fulcio = TestFulcio::new();
        let rekor = TestRekor::new();
        let ct = TestCtLog::new();
        let issued = unix_now() - 60;
        let leaf = fulcio.issue(&LeafSpec {
            sct: Some(&ct),
            ..LeafSpec::email(KEYLESS_SUBJECT, issued)
        });
        let trusted_root_json = trusted_root_json(&fulcio, &rekor, Some(&ct));
        Signers {
            key: KeyPair::generate(KeyKind::EcdsaP256),
            fulcio,
            rekor,
            leaf,
            signed_at: issued + 30,
            trusted_root_json,
        }
    }

    /// The policies of [`policies_yaml`] compiled with this run's trust root as the default.
    pub fn index(&self, host: &str) -> Arc<PolicyIndex> {
        let mut documents = Documents::default();
        documents
            .add_yaml("bench.yaml", &policies_yaml(host, &self.key))
            .expect("bench policies parse");
        let load = LoadOptions {
            settings: Settings {
                no_match: NoMatchPolicy::Deny,
            },
            validation: ValidationOptions::default(),
            default_trust: Arc::new(
                TrustMaterial::from_trusted_root_json(self.trusted_root_json.as_bytes())
                    .expect("test trust root"),
            ),
            remote_trust: RemoteTrust::Unfetched,
        };
        let (snapshot, _) = build_snapshot(&documents, &load, 1).expect("bench policies compile");
        Arc::new(PolicyIndex::new(snapshot))
    }
}

/// How an image is signed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signing {
    /// `cosign sign --key` (legacy `.sig`, ECDSA P-256, openssl), no Rekor entry.
    Key,
    /// Keyless `cosign sign` (legacy `.sig`: Fulcio leaf with SCT, chain, Rekor SET), openssl.
    Keyless,
    /// Like [`Signing::Key`], signed by aws-lc-rs instead of an openssl process (fast, for
    /// thousands of images).
    KeyNative,
}

/// One pushed, signed image.
#[derive(Clone, Debug)]
pub struct SignedImage {
    pub repo: String,
    pub tag: String,
    pub digest: Digest,
    /// `HOST/repo:tag`
    pub reference: String,
}

/// Pushes `count` distinct images `repo:<prefix><i>` (one shared config and layer; each
/// manifest differs by an annotation, so each has its own digest) and their signatures,
/// `parallel` pushes at a time.
pub async fn push_signed_images(
    registry: &TestRegistry,
    signers: &Signers,
    repo: &str,
    prefix: &str,
    count: usize,
    signing: Signing,
    parallel: usize,
) -> Vec<SignedImage> {
    let host = registry.host().to_string();
    let layer = crate::support::registry::tar_with_file("bench.txt", repo.as_bytes());
    let config = json!({
        "architecture": "amd64",
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [Digest::sha256_of(&layer).to_string()]},
    })
    .to_string();
    let config_digest = registry.push_blob(repo, config.as_bytes()).await;
    let layer_digest = registry.push_blob(repo, &layer).await;
    let base_manifest = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": config_digest.to_string(), "size": config.len()},
        "layers": [{"mediaType": OCI_LAYER_TAR, "digest": layer_digest.to_string(), "size": layer.len()}],
    });
    let pushes = (0..count).map(|index| {
        let mut manifest = base_manifest.clone();
        let tag = format!("{prefix}{index}");
        manifest["annotations"] = json!({"dev.verity.bench.image": format!("{repo}:{tag}")});
        let host = host.clone();
        async move {
            let bytes = manifest.to_string().into_bytes();
            let digest = registry
                .push_manifest(repo, &tag, OCI_MANIFEST, &bytes)
                .await;
            let payload = simple_signing_payload(&format!("{host}/{repo}"), &digest, None);
            let layer = sign(signers, &payload, signing, index as i64).await;
            push_legacy_signatures(registry, repo, &digest, "", &[layer]).await;
            SignedImage {
                repo: repo.to_string(),
                reference: format!("{host}/{repo}:{tag}"),
                tag,
                digest,
            }
        }
    });
    let mut images: Vec<(usize, SignedImage)> = futures::stream::iter(pushes.enumerate())
        .map(|(index, push)| async move { (index, push.await) })
        .buffer_unordered(parallel.max(1))
        .collect()
        .await;
    images.sort_by_key(|(index, _)| *index);
    images.into_iter().map(|(_, image)| image).collect()
}

async fn sign(
    signers: &Signers,
    payload: &[u8],
    signing: Signing,
    log_index: i64,
) -> SignatureLayer {
    match signing {
        Signing::KeyNative => SignatureLayer::new(
            payload.to_vec(),
            signers.key.sign_native(payload, Hash::Sha256),
        ),
        // openssl runs as a child process: keep it off the async workers.
        Signing::Key | Signing::Keyless => {
            let payload = payload.to_vec();
            tokio::task::block_in_place(|| match signing {
                Signing::Keyless => SignatureLayer::keyless(
                    &payload,
                    &signers.leaf,
                    &signers.fulcio,
                    &signers.rekor,
                    signers.signed_at,
                    log_index,
                ),
                _ => SignatureLayer::keyed(&payload, &signers.key, None),
            })
        }
    }
}
