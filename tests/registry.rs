//! The registry client against a real `docker-registry` (and stubs for misbehaving ones).

// Helpers of an integration-test crate are test code too (clippy.toml only covers `#[test]`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use http::StatusCode;
use serde_json::json;

use support::registry::{
    CountingProxy, OCI_EMPTY, OCI_INDEX, OCI_MANIFEST, RegistryAuth, RegistryOptions, StubRegistry,
    StubResponse, TestCa, TestRegistry, TokenAuth,
};
use verity::image::{Digest, ImageRef, Repository};
use verity::metrics::Metrics;
use verity::registry::{Credential, Keychain, RegistryClient, RegistryConfig, RegistryError};

const BUNDLE_TYPE: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";
const SBOM_TYPE: &str = "application/spdx+json";

fn client(config: RegistryConfig) -> (RegistryClient, Metrics) {
    let metrics = Metrics::unregistered().unwrap();
    let client = RegistryClient::new(config, Some(metrics.clone())).unwrap();
    (client, metrics)
}

fn count(metrics: &Metrics, operation: &str, result: &str) -> u64 {
    metrics
        .registry_requests
        .with_label_values(&[operation, result])
        .get()
}

/// A plain-HTTP registry config reaching `host` (a proxy or stub in front of a registry).
fn insecure(host: &str) -> RegistryConfig {
    RegistryConfig {
        insecure_registries: vec![host.to_string()],
        request_timeout: Duration::from_secs(15),
        ..RegistryConfig::default()
    }
}

fn image(host: &str, repo: &str, tag: &str) -> ImageRef {
    ImageRef::parse(&format!("{host}/{repo}:{tag}")).unwrap()
}

fn repository(host: &str, repo: &str) -> Repository {
    Repository::parse(&format!("{host}/{repo}")).unwrap()
}

fn anonymous() -> Keychain {
    Keychain::anonymous()
}

fn basic(host: &str, username: &str, password: &str) -> Keychain {
    Keychain::anonymous()
        .with_credential(
            host,
            Credential::Basic {
                username: username.to_string(),
                password: password.to_string(),
            },
        )
        .unwrap()
}

// --- digests -----------------------------------------------------------------------------------

#[tokio::test]
async fn resolves_a_tag_with_one_head_request() {
    let registry = TestRegistry::start().await;
    let pushed = registry.push_image("test/app", "v1", "one").await;
    let proxy = registry.counting_proxy().await;
    let (client, metrics) = client(insecure(&proxy.host()));

    let digest = client
        .resolve_digest(&image(&proxy.host(), "test/app", "v1"), &anonymous())
        .await
        .unwrap();

    assert_eq!(digest, pushed);
    assert_eq!(proxy.request_lines(), ["HEAD /v2/test/app/manifests/v1"]);
    assert_eq!(count(&metrics, "resolve", "ok"), 1);
}

#[tokio::test]
async fn falls_back_to_get_when_head_is_refused() {
    let manifest = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[]}"#.to_vec();
    let stub = StubRegistry::rejecting_head(manifest.clone(), OCI_MANIFEST).await;
    let (client, metrics) = client(insecure(&stub.host()));

    let digest = client
        .resolve_digest(&image(&stub.host(), "test/app", "v1"), &anonymous())
        .await
        .unwrap();

    assert_eq!(digest, Digest::sha256_of(&manifest));
    let lines: Vec<_> = stub.requests().iter().map(|r| r.line()).collect();
    assert_eq!(
        lines,
        [
            "HEAD /v2/test/app/manifests/v1",
            "GET /v2/test/app/manifests/v1"
        ]
    );
    assert_eq!(count(&metrics, "resolve", "unexpected_status"), 1);
    assert_eq!(count(&metrics, "resolve", "ok"), 1);
}

#[tokio::test]
async fn falls_back_to_get_when_head_lacks_the_digest_header() {
    let manifest = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#.to_vec();
    let body = Bytes::from(manifest.clone());
    let stub = StubRegistry::start(move |request| {
        let response = StubResponse::new(StatusCode::OK).header("content-type", OCI_INDEX);
        if request.method == "HEAD" {
            response
        } else {
            response.body(body.clone())
        }
    })
    .await;
    let (client, _) = client(insecure(&stub.host()));

    let digest = client
        .resolve_digest(&image(&stub.host(), "test/app", "v1"), &anonymous())
        .await
        .unwrap();

    assert_eq!(digest, Digest::sha256_of(&manifest));
    assert_eq!(stub.request_count(), 2);
}

#[tokio::test]
async fn a_digest_pinned_reference_makes_no_request() {
    let stub = StubRegistry::server_error().await;
    let (client, metrics) = client(insecure(&stub.host()));
    let digest = Digest::sha256_of(b"pinned");
    let pinned = ImageRef::parse(&format!("{}/test/app:v1@{digest}", stub.host())).unwrap();

    let resolved = client.resolve_digest(&pinned, &anonymous()).await.unwrap();

    assert_eq!(resolved, digest);
    assert_eq!(stub.request_count(), 0);
    assert!(
        !metrics.render().contains("verity_registry_requests_total{"),
        "{}",
        metrics.render()
    );
}

#[tokio::test]
async fn a_multi_arch_index_resolves_to_the_index_digest() {
    let registry = TestRegistry::start().await;
    let amd64 = registry
        .push_image_for("test/multi", "amd64", "multi", "amd64")
        .await;
    let arm64 = registry
        .push_image_for("test/multi", "arm64", "multi", "arm64")
        .await;
    let index = registry
        .push_index("test/multi", "v1", &[amd64.clone(), arm64.clone()])
        .await;
    let (client, _) = client(registry.client_config());

    let digest = client
        .resolve_digest(&registry.image("test/multi", "v1"), &anonymous())
        .await
        .unwrap();
    assert_eq!(digest, index);

    let manifest = client
        .manifest(&registry.repository("test/multi"), "v1", &anonymous())
        .await
        .unwrap();
    assert_eq!(manifest.digest, index);
    assert_eq!(manifest.media_type, OCI_INDEX);
    assert!(manifest.is_index());
    let entries = manifest.index().unwrap().manifests;
    let platforms: Vec<_> = entries
        .iter()
        .map(|d| {
            (
                d.digest.clone(),
                d.platform.as_ref().unwrap().architecture.clone(),
            )
        })
        .collect();
    assert_eq!(
        platforms,
        [(amd64, "amd64".to_string()), (arm64, "arm64".to_string())]
    );
}

#[tokio::test]
async fn a_missing_tag_is_not_found() {
    let registry = TestRegistry::start().await;
    registry.push_image("test/app", "v1", "present").await;
    let (client, metrics) = client(registry.client_config());

    let err = client
        .resolve_digest(&registry.image("test/app", "nope"), &anonymous())
        .await
        .unwrap_err();
    assert!(err.is_not_found(), "{err}");
    assert_eq!(
        err.to_string(),
        format!(
            "HEAD http://{}/v2/test/app/manifests/nope: 404 not found: no error details",
            registry.host()
        )
    );

    let err = client
        .manifest(&registry.repository("test/app"), "nope", &anonymous())
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "GET http://{}/v2/test/app/manifests/nope: 404 not found: manifest unknown",
            registry.host()
        )
    );
    assert_eq!(count(&metrics, "resolve", "not_found"), 1);
    assert_eq!(count(&metrics, "manifest", "not_found"), 1);
}

// --- manifests and blobs -----------------------------------------------------------------------

#[tokio::test]
async fn fetches_manifests_and_blobs_verifying_digests() {
    let registry = TestRegistry::start().await;
    let digest = registry.push_image("test/app", "v1", "content").await;
    let (_, raw) = registry
        .fetch_manifest("test/app", &digest.to_string())
        .await
        .unwrap();
    let (client, metrics) = client(registry.client_config());
    let repo = registry.repository("test/app");

    let by_tag = client.manifest(&repo, "v1", &anonymous()).await.unwrap();
    assert_eq!(by_tag.digest, digest);
    assert_eq!(by_tag.media_type, OCI_MANIFEST);
    assert_eq!(by_tag.bytes, raw);

    let by_digest = client
        .manifest(&repo, &digest.to_string(), &anonymous())
        .await
        .unwrap();
    assert_eq!(by_digest, by_tag);

    let parsed = by_digest.image_manifest().unwrap();
    let config = client
        .blob(&repo, &parsed.config.digest, &anonymous())
        .await
        .unwrap();
    assert!(parsed.config.digest.matches(&config));
    let config: serde_json::Value = serde_json::from_slice(&config).unwrap();
    assert_eq!(
        config["config"]["Labels"]["dev.verity.test.seed"],
        "content"
    );
    assert_eq!(count(&metrics, "manifest", "ok"), 2);
    assert_eq!(count(&metrics, "blob", "ok"), 1);
}

#[tokio::test]
async fn a_tampered_blob_is_a_digest_mismatch() {
    let stub = StubRegistry::serving_blob(b"tampered payload".to_vec()).await;
    let (client, metrics) = client(insecure(&stub.host()));
    let expected = Digest::sha256_of(b"original payload");

    let err = client
        .blob(
            &repository(&stub.host(), "test/app"),
            &expected,
            &anonymous(),
        )
        .await
        .unwrap_err();

    assert_eq!(err.reason(), "digest_mismatch");
    assert_eq!(
        err.to_string(),
        format!(
            "GET http://{}/v2/test/app/blobs/{expected}: digest mismatch: expected {expected}, got {}",
            stub.host(),
            Digest::sha256_of(b"tampered payload")
        )
    );
    // The HTTP call itself succeeded; the mismatch is the client's verdict.
    assert_eq!(count(&metrics, "blob", "ok"), 1);
}

#[tokio::test]
async fn a_tampered_manifest_by_digest_is_a_digest_mismatch() {
    let stub = StubRegistry::rejecting_head(b"{\"schemaVersion\":2}".to_vec(), OCI_MANIFEST).await;
    let (client, _) = client(insecure(&stub.host()));
    let expected = Digest::sha256_of(b"the real manifest");

    let err = client
        .manifest(
            &repository(&stub.host(), "test/app"),
            &expected.to_string(),
            &anonymous(),
        )
        .await
        .unwrap_err();

    match err {
        RegistryError::DigestMismatch {
            expected: e,
            actual,
            ..
        } => {
            assert_eq!(e, expected);
            assert_eq!(actual, Digest::sha256_of(b"{\"schemaVersion\":2}"));
        }
        other => panic!("expected a digest mismatch, got {other}"),
    }
}

#[tokio::test]
async fn a_blob_larger_than_the_limit_is_too_large() {
    let registry = TestRegistry::start().await;
    let blob = vec![7u8; 4096];
    let digest = registry.push_blob("test/app", &blob).await;
    let (client, metrics) = client(RegistryConfig {
        blob_size_limit: 1024,
        ..registry.client_config()
    });

    let err = client
        .blob(&registry.repository("test/app"), &digest, &anonymous())
        .await
        .unwrap_err();

    assert_eq!(err.reason(), "too_large");
    assert_eq!(
        err.to_string(),
        format!(
            "GET http://{}/v2/test/app/blobs/{digest}: blob exceeds the 1024-byte limit",
            registry.host()
        )
    );
    assert_eq!(count(&metrics, "blob", "too_large"), 1);
}

#[tokio::test]
async fn an_oversized_streamed_manifest_is_too_large() {
    // No Content-Length: the limit must hold while reading.
    let stub = StubRegistry::oversized_manifest(8 * 1024 * 1024, false).await;
    let (client, _) = client(RegistryConfig {
        manifest_size_limit: 64 * 1024,
        ..insecure(&stub.host())
    });

    let err = client
        .manifest(&repository(&stub.host(), "test/app"), "v1", &anonymous())
        .await
        .unwrap_err();

    assert!(
        matches!(
            err,
            RegistryError::TooLarge {
                what: "manifest",
                limit: 65536,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains(&stub.host()), "{err}");
}

#[tokio::test]
async fn an_announced_oversized_manifest_is_too_large() {
    let stub = StubRegistry::oversized_manifest(256 * 1024, true).await;
    let (client, _) = client(RegistryConfig {
        manifest_size_limit: 64 * 1024,
        ..insecure(&stub.host())
    });

    let err = client
        .manifest(&repository(&stub.host(), "test/app"), "v1", &anonymous())
        .await
        .unwrap_err();

    assert_eq!(err.reason(), "too_large", "{err}");
}

#[tokio::test]
async fn blob_redirects_do_not_carry_credentials_to_another_host() {
    let content = b"signature payload".to_vec();
    let digest = Digest::sha256_of(&content);
    let body = Bytes::from(content.clone());
    let storage =
        StubRegistry::start(move |_| StubResponse::new(StatusCode::OK).body(body.clone())).await;
    let storage_url = format!("http://{}/bucket/blob?signature=presigned", storage.host());
    let registry = StubRegistry::start(move |request| {
        if !request.authorized {
            return StubResponse::registry_error(
                StatusCode::UNAUTHORIZED,
                "UNAUTHORIZED",
                "authentication required",
            )
            .header("www-authenticate", r#"Basic realm="stub""#);
        }
        StubResponse::new(StatusCode::TEMPORARY_REDIRECT).header("location", &storage_url)
    })
    .await;
    let (client, metrics) = client(insecure(&registry.host()));

    let fetched = client
        .blob(
            &repository(&registry.host(), "test/app"),
            &digest,
            &basic(&registry.host(), "user", "pass"),
        )
        .await
        .unwrap();

    assert_eq!(fetched, content);
    let seen: Vec<_> = registry.requests().iter().map(|r| r.authorized).collect();
    assert_eq!(seen, [false, true]);
    let at_storage = storage.requests();
    assert_eq!(at_storage.len(), 1);
    assert_eq!(at_storage[0].path, "/bucket/blob?signature=presigned");
    assert!(!at_storage[0].authorized, "credentials leaked to storage");
    assert_eq!(count(&metrics, "blob", "redirect"), 1);
}

// --- referrers ---------------------------------------------------------------------------------

#[tokio::test]
async fn referrers_fall_back_to_the_tag_schema_and_filter_by_artifact_type() {
    let registry = TestRegistry::start().await;
    let subject = registry.push_image("test/app", "v1", "signed").await;
    let bundle = registry
        .push_referrer(
            "test/app",
            &subject,
            BUNDLE_TYPE,
            BUNDLE_TYPE,
            b"{\"bundle\":1}",
        )
        .await;
    let sbom = registry
        .push_referrer("test/app", &subject, SBOM_TYPE, SBOM_TYPE, b"{\"sbom\":1}")
        .await;
    let proxy = registry.counting_proxy().await;
    let (client, metrics) = client(insecure(&proxy.host()));
    let repo = repository(&proxy.host(), "test/app");

    let all = client
        .referrers(&repo, &subject, None, &anonymous())
        .await
        .unwrap();
    let digests: Vec<_> = all.iter().map(|d| d.digest.clone()).collect();
    assert_eq!(digests, [bundle.clone(), sbom]);
    assert_eq!(
        proxy.request_lines(),
        [
            format!("GET /v2/test/app/referrers/{subject}"),
            format!("GET /v2/test/app/manifests/{}", subject.tag_stem()),
        ]
    );

    proxy.reset();
    let bundles = client
        .referrers(&repo, &subject, Some(BUNDLE_TYPE), &anonymous())
        .await
        .unwrap();
    // The registry's missing referrers API is remembered: straight to the tag schema.
    assert_eq!(
        proxy.request_lines(),
        [format!("GET /v2/test/app/manifests/{}", subject.tag_stem())]
    );
    assert_eq!(bundles.len(), 1);
    assert_eq!(bundles[0].digest, bundle);
    assert_eq!(bundles[0].artifact_type.as_deref(), Some(BUNDLE_TYPE));
    assert_eq!(bundles[0].media_type, OCI_MANIFEST);

    // The referrer itself is an ordinary manifest with the subject.
    let manifest = client
        .manifest(&repo, &bundle.to_string(), &anonymous())
        .await
        .unwrap()
        .image_manifest()
        .unwrap();
    assert_eq!(manifest.subject.unwrap().digest, subject);
    assert_eq!(manifest.config.media_type, OCI_EMPTY);
    assert_eq!(count(&metrics, "referrers", "not_found"), 1);
}

#[tokio::test]
async fn referrers_without_a_type_in_the_index_are_typed_from_their_manifest() {
    let registry = TestRegistry::start().await;
    let subject = registry.push_image("test/app", "v1", "old-style").await;
    let (manifest, digest) = registry
        .push_artifact_manifest("test/app", &subject, BUNDLE_TYPE, BUNDLE_TYPE, b"{}")
        .await;
    registry
        .append_to_referrers_tag(
            "test/app",
            &subject,
            json!({"mediaType": OCI_MANIFEST, "digest": digest.to_string(), "size": manifest.len()}),
        )
        .await;
    let (client, _) = client(registry.client_config());
    let repo = registry.repository("test/app");

    let found = client
        .referrers(&repo, &subject, Some(BUNDLE_TYPE), &anonymous())
        .await
        .unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].digest, digest);
    assert_eq!(found[0].artifact_type.as_deref(), Some(BUNDLE_TYPE));

    let none = client
        .referrers(&repo, &subject, Some(SBOM_TYPE), &anonymous())
        .await
        .unwrap();
    assert!(none.is_empty());
}

#[tokio::test]
async fn a_missing_referrers_tag_means_no_referrers() {
    let registry = TestRegistry::start().await;
    let subject = registry.push_image("test/app", "v1", "unsigned").await;
    let (client, _) = client(registry.client_config());

    let found = client
        .referrers(
            &registry.repository("test/app"),
            &subject,
            Some(BUNDLE_TYPE),
            &anonymous(),
        )
        .await
        .unwrap();

    assert!(found.is_empty());
}

#[tokio::test]
async fn the_referrers_api_is_used_when_the_registry_has_it() {
    let subject = Digest::sha256_of(b"subject");
    let wanted = Digest::sha256_of(b"bundle");
    let other = Digest::sha256_of(b"sbom");
    // Ignores the artifactType query, as registries may: the client filters anyway.
    let index = json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [
            {"mediaType": OCI_MANIFEST, "digest": wanted.to_string(), "size": 10, "artifactType": BUNDLE_TYPE},
            {"mediaType": OCI_MANIFEST, "digest": other.to_string(), "size": 10, "artifactType": SBOM_TYPE},
        ]
    })
    .to_string();
    let stub = StubRegistry::start(move |request| {
        if request.path.contains("/referrers/") {
            StubResponse::new(StatusCode::OK)
                .header("content-type", OCI_INDEX)
                .body(index.clone())
        } else {
            StubResponse::registry_error(StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN", "unknown")
        }
    })
    .await;
    let (client, _) = client(insecure(&stub.host()));

    let found = client
        .referrers(
            &repository(&stub.host(), "test/app"),
            &subject,
            Some(BUNDLE_TYPE),
            &anonymous(),
        )
        .await
        .unwrap();

    assert_eq!(found.len(), 1);
    assert_eq!(found[0].digest, wanted);
    let requests = stub.requests();
    assert_eq!(requests.len(), 1, "{requests:?}");
    assert_eq!(
        requests[0].path,
        format!(
            "/v2/test/app/referrers/{subject}?artifactType=application%2Fvnd.dev.sigstore.bundle.v0.3%2Bjson"
        )
    );
}

#[tokio::test]
async fn a_registry_error_on_referrers_is_an_error_not_an_empty_list() {
    let stub = StubRegistry::server_error().await;
    let (client, _) = client(insecure(&stub.host()));

    let err = client
        .referrers(
            &repository(&stub.host(), "test/app"),
            &Digest::sha256_of(b"s"),
            None,
            &anonymous(),
        )
        .await
        .unwrap_err();

    assert_eq!(err.reason(), "server_error");
}

// --- Basic auth --------------------------------------------------------------------------------

#[tokio::test]
async fn basic_auth_with_the_right_credentials() {
    let registry = TestRegistry::start_with_basic_auth("alice", "wonderland").await;
    let pushed = registry.push_image("test/app", "v1", "private").await;
    let proxy = registry.counting_proxy().await;
    let (client, metrics) = client(insecure(&proxy.host()));
    let keychain = basic(&proxy.host(), "alice", "wonderland");

    let digest = client
        .resolve_digest(&image(&proxy.host(), "test/app", "v1"), &keychain)
        .await
        .unwrap();
    assert_eq!(digest, pushed);
    let first: Vec<_> = proxy.requests().iter().map(|r| r.authorized).collect();
    assert_eq!(first, [false, true], "challenge, then credentials");
    assert_eq!(count(&metrics, "resolve", "unauthorized"), 1);
    assert_eq!(count(&metrics, "resolve", "ok"), 1);

    // The registry's scheme is remembered: credentials go up front from now on.
    proxy.reset();
    client
        .manifest(&repository(&proxy.host(), "test/app"), "v1", &keychain)
        .await
        .unwrap();
    let second: Vec<_> = proxy.requests().iter().map(|r| r.authorized).collect();
    assert_eq!(second, [true]);
}

#[tokio::test]
async fn basic_auth_with_wrong_credentials_is_unauthorized_naming_the_host() {
    let registry = TestRegistry::start_with_basic_auth("alice", "wonderland").await;
    registry.push_image("test/app", "v1", "private").await;
    let (client, _) = client(registry.client_config());
    let keychain = basic(registry.host(), "alice", "looking-glass");

    let err = client
        .manifest(&registry.repository("test/app"), "v1", &keychain)
        .await
        .unwrap_err();

    assert_eq!(err.reason(), "unauthorized");
    assert_eq!(
        err.to_string(),
        format!(
            "GET http://{host}/v2/test/app/manifests/v1: 401 unauthorized: authentication required; the username and password configured for {host} was not accepted",
            host = registry.host()
        )
    );
    assert!(!err.to_string().contains("looking-glass"));
}

#[tokio::test]
async fn basic_auth_without_credentials_says_none_are_configured() {
    let registry = TestRegistry::start_with_basic_auth("alice", "wonderland").await;
    registry.push_image("test/app", "v1", "private").await;
    let (client, _) = client(registry.client_config());
    // Credentials for another registry do not count.
    let keychain = basic("ghcr.io", "alice", "wonderland");

    let err = client
        .resolve_digest(&registry.image("test/app", "v1"), &keychain)
        .await
        .unwrap_err();

    assert_eq!(
        err.to_string(),
        format!(
            "HEAD http://{host}/v2/test/app/manifests/v1: 401 unauthorized: no credentials are configured for {host}",
            host = registry.host()
        )
    );
}

#[tokio::test]
async fn a_401_without_a_challenge_is_unauthorized_and_says_so() {
    let stub = StubRegistry::unauthorized_without_challenge().await;
    let (client, _) = client(insecure(&stub.host()));

    let err = client
        .manifest(
            &repository(&stub.host(), "test/app"),
            "v1",
            &basic(&stub.host(), "u", "p"),
        )
        .await
        .unwrap_err();

    assert_eq!(
        err.to_string(),
        format!(
            "GET http://{}/v2/test/app/manifests/v1: 401 unauthorized: authentication required; the registry sent no authentication challenge",
            stub.host()
        )
    );
}

// --- Bearer tokens -----------------------------------------------------------------------------

#[tokio::test]
async fn bearer_token_flow_with_a_cached_token() {
    let registry = TestRegistry::start_with_token_auth(TokenAuth::new("bob", "builder")).await;
    let pushed = registry.push_image("test/app", "v1", "token").await;
    let tokens = registry.token_server().unwrap();
    let proxy = registry.counting_proxy().await;
    let (client, metrics) = client(insecure(&proxy.host()));
    let keychain = basic(&proxy.host(), "bob", "builder");

    let digest = client
        .resolve_digest(&image(&proxy.host(), "test/app", "v1"), &keychain)
        .await
        .unwrap();
    assert_eq!(digest, pushed);
    assert_eq!(tokens.request_count(), 1);
    let request = &tokens.requests()[0];
    assert_eq!(request.account.as_deref(), Some("bob"));
    assert_eq!(request.scopes, ["repository:test/app:pull"]);
    assert_eq!(request.service.as_deref(), Some("test-registry"));
    assert_eq!(count(&metrics, "token", "ok"), 1);

    // Second and third calls: the cached token goes up front; no token request, no 401.
    proxy.reset();
    let repo = repository(&proxy.host(), "test/app");
    let manifest = client.manifest(&repo, "v1", &keychain).await.unwrap();
    client
        .blob(
            &repo,
            &manifest.image_manifest().unwrap().config.digest,
            &keychain,
        )
        .await
        .unwrap();
    assert_eq!(tokens.request_count(), 1);
    let authorized: Vec<_> = proxy.requests().iter().map(|r| r.authorized).collect();
    assert_eq!(authorized, [true, true]);

    // A clone shares the cache.
    client
        .clone()
        .resolve_digest(&image(&proxy.host(), "test/app", "v1"), &keychain)
        .await
        .unwrap();
    assert_eq!(tokens.request_count(), 1);
}

#[tokio::test]
async fn tokens_are_cached_per_repository_scope() {
    let registry = TestRegistry::start_with_token_auth(TokenAuth::new("bob", "builder")).await;
    registry.push_image("test/one", "v1", "1").await;
    registry.push_image("test/two", "v1", "2").await;
    let tokens = registry.token_server().unwrap();
    let (client, _) = client(registry.client_config());
    let keychain = registry.keychain();

    for _ in 0..2 {
        for repo in ["test/one", "test/two"] {
            client
                .resolve_digest(&registry.image(repo, "v1"), &keychain)
                .await
                .unwrap();
        }
    }

    let scopes: Vec<_> = tokens
        .requests()
        .into_iter()
        .flat_map(|r| r.scopes)
        .collect();
    assert_eq!(
        scopes,
        ["repository:test/one:pull", "repository:test/two:pull"]
    );
}

#[tokio::test]
async fn short_lived_tokens_are_fetched_again_but_up_front() {
    let registry =
        TestRegistry::start_with_token_auth(TokenAuth::new("bob", "builder").expires_in(2)).await;
    registry.push_image("test/app", "v1", "short").await;
    let tokens = registry.token_server().unwrap();
    let proxy = registry.counting_proxy().await;
    let (client, _) = client(insecure(&proxy.host()));
    let keychain = basic(&proxy.host(), "bob", "builder");
    let app = image(&proxy.host(), "test/app", "v1");

    client.resolve_digest(&app, &keychain).await.unwrap();
    proxy.reset();
    client.resolve_digest(&app, &keychain).await.unwrap();

    // Too short-lived to cache: a new token, fetched before the request, so no 401.
    assert_eq!(tokens.request_count(), 2);
    assert_eq!(proxy.request_lines(), ["HEAD /v2/test/app/manifests/v1"]);
    assert!(proxy.requests()[0].authorized);
}

#[tokio::test]
async fn bearer_with_wrong_credentials_names_the_registry() {
    let registry = TestRegistry::start_with_token_auth(TokenAuth::new("bob", "builder")).await;
    registry.push_image("test/app", "v1", "token").await;
    let tokens = registry.token_server().unwrap();
    let (client, metrics) = client(registry.client_config());

    let err = client
        .resolve_digest(
            &registry.image("test/app", "v1"),
            &basic(registry.host(), "bob", "wrong"),
        )
        .await
        .unwrap_err();

    assert_eq!(err.reason(), "unauthorized");
    assert_eq!(
        err.to_string(),
        format!(
            "GET {realm}?service=test-registry&scope=repository%3Atest%2Fapp%3Apull (token for {host}): 401 unauthorized: invalid username, password or token; the token endpoint rejected the username and password configured for {host}",
            realm = tokens.realm(),
            host = registry.host()
        )
    );
    assert_eq!(count(&metrics, "token", "unauthorized"), 1);
}

#[tokio::test]
async fn anonymous_bearer_pulls_public_repositories_only() {
    let registry = TestRegistry::start_with_token_auth(TokenAuth::new("bob", "builder")).await;
    let public = registry.push_image("public/app", "v1", "open").await;
    registry.push_image("test/app", "v1", "closed").await;
    let (client, _) = client(registry.client_config());

    let digest = client
        .resolve_digest(&registry.image("public/app", "v1"), &anonymous())
        .await
        .unwrap();
    assert_eq!(digest, public);

    let err = client
        .resolve_digest(&registry.image("test/app", "v1"), &anonymous())
        .await
        .unwrap_err();
    assert_eq!(err.reason(), "unauthorized");
    let message = err.to_string();
    assert!(
        message.starts_with(&format!(
            "HEAD http://{}/v2/test/app/manifests/v1: 401 unauthorized: ",
            registry.host()
        )),
        "{message}"
    );
    assert!(
        message.ends_with(&format!(
            "no credentials are configured for {}",
            registry.host()
        )),
        "{message}"
    );
}

#[tokio::test]
async fn identity_tokens_use_the_oauth2_refresh_grant() {
    let registry = TestRegistry::start_with_token_auth(
        TokenAuth::new("bob", "builder").identity_token("refresh-me"),
    )
    .await;
    let pushed = registry.push_image("test/app", "v1", "oauth").await;
    let tokens = registry.token_server().unwrap();
    let (client, _) = client(registry.client_config());
    let config = format!(
        r#"{{"auths": {{"http://{}/v2/": {{"identitytoken": "refresh-me"}}}}}}"#,
        registry.host()
    );
    let keychain = Keychain::from_docker_config_json(config.as_bytes()).unwrap();

    let digest = client
        .resolve_digest(&registry.image("test/app", "v1"), &keychain)
        .await
        .unwrap();

    assert_eq!(digest, pushed);
    let requests = tokens.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].method, "POST");
    assert_eq!(requests[0].account.as_deref(), Some("bob"));
}

// --- TLS and transport -------------------------------------------------------------------------

#[tokio::test]
async fn tls_registry_with_its_ca_configured() {
    let registry = TestRegistry::start_tls().await;
    let pushed = registry.push_image("test/app", "v1", "tls").await;
    let (client, _) = client(registry.client_config());
    assert!(registry.client_config().insecure_registries.is_empty());

    let digest = client
        .resolve_digest(&registry.image("test/app", "v1"), &anonymous())
        .await
        .unwrap();

    assert_eq!(digest, pushed);
}

#[tokio::test]
async fn tls_registry_without_its_ca_names_the_host_and_the_certificate_problem() {
    let registry = TestRegistry::start_tls().await;
    registry.push_image("test/app", "v1", "tls").await;
    // A CA configured for a different host does not help.
    let other_ca = TestCa::new("unrelated");
    let (client, metrics) = client(RegistryConfig {
        registry_cas: vec![(
            "registry.example.com".to_string(),
            registry.ca_pem().unwrap().as_bytes().to_vec(),
        )],
        request_timeout: Duration::from_secs(15),
        ..RegistryConfig::default()
    });
    let (wrong_ca_client, _) = client_with_ca(registry.host(), other_ca.cert_pem());

    for client in [client, wrong_ca_client] {
        let err = client
            .resolve_digest(&registry.image("test/app", "v1"), &anonymous())
            .await
            .unwrap_err();
        assert_eq!(err.reason(), "tls");
        let message = err.to_string();
        assert!(
            message.starts_with(&format!(
                "HEAD https://{host}/v2/test/app/manifests/v1: tls handshake with {host} failed: invalid peer certificate",
                host = registry.host()
            )),
            "{message}"
        );
        assert!(
            message.ends_with(&format!(
                "invalid peer certificate: UnknownIssuer (the certificate is not issued by a trusted CA; configure the CA of {} if it uses a private one)",
                registry.host()
            )),
            "{message}"
        );
    }
    assert_eq!(count(&metrics, "resolve", "tls"), 1);
}

fn client_with_ca(host: &str, pem: &str) -> (RegistryClient, Metrics) {
    client(RegistryConfig {
        registry_cas: vec![(host.to_string(), pem.as_bytes().to_vec())],
        request_timeout: Duration::from_secs(15),
        ..RegistryConfig::default()
    })
}

#[tokio::test]
async fn tls_registry_with_basic_auth_from_a_docker_config() {
    let registry = TestRegistry::start_with(RegistryOptions {
        tls: true,
        auth: RegistryAuth::Basic {
            username: "carol".to_string(),
            password: "tls-and-basic".to_string(),
        },
    })
    .await;
    let pushed = registry.push_image("test/app", "v1", "both").await;
    let keychain = Keychain::from_docker_config_json(&registry.docker_config_json()).unwrap();
    let (client, _) = client(registry.client_config());

    let digest = client
        .resolve_digest(&registry.image("test/app", "v1"), &keychain)
        .await
        .unwrap();

    assert_eq!(digest, pushed);
}

#[tokio::test]
async fn tls_registry_with_token_auth() {
    let registry = TestRegistry::start_with(RegistryOptions {
        tls: true,
        auth: RegistryAuth::Token(TokenAuth::new("dave", "tls-and-token")),
    })
    .await;
    let pushed = registry.push_image("test/app", "v1", "both").await;
    let (client, _) = client(registry.client_config());

    let digest = client
        .resolve_digest(&registry.image("test/app", "v1"), &registry.keychain())
        .await
        .unwrap();

    assert_eq!(digest, pushed);
    assert_eq!(registry.token_server().unwrap().request_count(), 1);
}

#[tokio::test]
async fn plain_http_is_used_only_for_registries_configured_insecure() {
    let registry = TestRegistry::start().await;
    let pushed = registry.push_image("test/app", "v1", "plain").await;
    let app = registry.image("test/app", "v1");

    let (https_only, _) = client(RegistryConfig {
        request_timeout: Duration::from_secs(15),
        ..RegistryConfig::default()
    });
    let err = https_only
        .resolve_digest(&app, &anonymous())
        .await
        .unwrap_err();
    assert_eq!(err.reason(), "tls", "{err}");
    assert_eq!(
        err.to_string(),
        format!(
            "HEAD https://{host}/v2/test/app/manifests/v1: tls handshake with {host} failed: received corrupt message of type InvalidContentType ({host} does not seem to speak tls; a plain-http registry must be configured as insecure)",
            host = registry.host()
        )
    );

    let (insecure_client, _) = client(registry.client_config());
    assert_eq!(
        insecure_client
            .resolve_digest(&app, &anonymous())
            .await
            .unwrap(),
        pushed
    );
}

#[tokio::test]
async fn a_refused_connection_is_a_connect_error() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let host = format!("127.0.0.1:{port}");
    let (client, _) = client(insecure(&host));

    let err = client
        .resolve_digest(&image(&host, "test/app", "v1"), &anonymous())
        .await
        .unwrap_err();

    assert_eq!(err.reason(), "connect", "{err}");
    // The errno differs between systems; the rest is ours.
    assert!(
        err.to_string().starts_with(&format!(
            "HEAD http://{host}/v2/test/app/manifests/v1: connection to {host} failed: tcp connect error: connection refused"
        )),
        "{err}"
    );
}

// --- misbehaving registries --------------------------------------------------------------------

#[tokio::test]
async fn a_500_is_a_status_error_with_host_and_status() {
    let stub = StubRegistry::server_error().await;
    let (client, metrics) = client(insecure(&stub.host()));

    let err = client
        .manifest(&repository(&stub.host(), "test/app"), "v1", &anonymous())
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "GET http://{}/v2/test/app/manifests/v1: 500 internal server error: UNKNOWN: storage backend unavailable",
            stub.host()
        )
    );
    match &err {
        RegistryError::Status { status, code, .. } => {
            assert_eq!(*status, StatusCode::INTERNAL_SERVER_ERROR);
            assert_eq!(code.as_deref(), Some("UNKNOWN"));
        }
        other => panic!("expected a status error, got {other:?}"),
    }
    assert!(err.is_transient());

    // HEAD gets no body, but still the status.
    let err = client
        .resolve_digest(&image(&stub.host(), "test/app", "v1"), &anonymous())
        .await
        .unwrap_err();
    assert_eq!(err.reason(), "server_error");
    assert!(
        err.to_string().contains("500 internal server error"),
        "{err}"
    );
    assert_eq!(count(&metrics, "manifest", "server_error"), 1);
    assert_eq!(count(&metrics, "resolve", "server_error"), 1);
}

#[tokio::test]
async fn a_hanging_registry_times_out() {
    let stub = StubRegistry::hanging().await;
    let (client, metrics) = client(stub.client_config(Duration::from_millis(300)));

    let err = client
        .resolve_digest(&image(&stub.host(), "test/app", "v1"), &anonymous())
        .await
        .unwrap_err();

    assert_eq!(err.reason(), "timeout");
    assert_eq!(
        err.to_string(),
        format!(
            "HEAD http://{}/v2/test/app/manifests/v1: timed out after 300ms",
            stub.host()
        )
    );
    assert_eq!(count(&metrics, "resolve", "timeout"), 1);
}

#[tokio::test]
async fn a_stalled_body_times_out() {
    let stub = StubRegistry::start(|_| {
        StubResponse::new(StatusCode::OK)
            .header("content-type", OCI_MANIFEST)
            .stalled()
    })
    .await;
    let (client, _) = client(stub.client_config(Duration::from_millis(300)));

    let err = client
        .manifest(&repository(&stub.host(), "test/app"), "v1", &anonymous())
        .await
        .unwrap_err();

    assert_eq!(err.reason(), "timeout", "{err}");
}

#[tokio::test]
async fn a_dropped_call_cancels_cleanly_and_the_client_stays_usable() {
    let stub = StubRegistry::hanging().await;
    let registry = TestRegistry::start().await;
    let pushed = registry.push_image("test/app", "v1", "after").await;
    let mut config = registry.client_config();
    config.insecure_registries.push(stub.host());
    config.request_timeout = Duration::from_secs(60);
    let (client, _) = client(config);

    // The caller's budget runs out long before the request timeout.
    let outcome = tokio::time::timeout(
        Duration::from_millis(200),
        client.resolve_digest(&image(&stub.host(), "test/app", "v1"), &anonymous()),
    )
    .await;
    assert!(
        outcome.is_err(),
        "the hanging call should not have returned"
    );

    let digest = client
        .resolve_digest(&registry.image("test/app", "v1"), &anonymous())
        .await
        .unwrap();
    assert_eq!(digest, pushed);
}

#[tokio::test]
async fn invalid_configuration_and_references_are_rejected() {
    let err = RegistryClient::new(
        RegistryConfig {
            registry_cas: vec![("r.example".to_string(), b"not a certificate".to_vec())],
            ..RegistryConfig::default()
        },
        None,
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid registry configuration: the CA bundle for r.example contains no certificate"
    );

    let stub = StubRegistry::server_error().await;
    let (client, _) = client(insecure(&stub.host()));
    let err = client
        .manifest(
            &repository(&stub.host(), "test/app"),
            "../../etc",
            &anonymous(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.reason(), "invalid_reference");
    assert_eq!(stub.request_count(), 0);
}

// --- the harness itself ------------------------------------------------------------------------

#[tokio::test]
async fn the_counting_proxy_sees_only_client_traffic() {
    let registry = TestRegistry::start().await;
    let proxy: CountingProxy = registry.counting_proxy().await;
    registry.push_image("test/app", "v1", "direct").await;
    assert_eq!(proxy.request_count(), 0, "harness pushes bypass the proxy");

    let (client, _) = client(insecure(&proxy.host()));
    client
        .manifest(&repository(&proxy.host(), "test/app"), "v1", &anonymous())
        .await
        .unwrap();
    assert_eq!(proxy.request_lines(), ["GET /v2/test/app/manifests/v1"]);
}

#[tokio::test]
async fn token_server_key_id_is_the_libtrust_form() {
    let id = support::registry::libtrust_key_id(b"any spki bytes");
    let groups: Vec<_> = id.split(':').collect();
    assert_eq!(groups.len(), 12, "{id}");
    assert!(groups.iter().all(|g| {
        g.len() == 4
            && g.bytes()
                .all(|b| b.is_ascii_uppercase() || (b'2'..=b'7').contains(&b))
    }));
}

// --- more edges --------------------------------------------------------------------------------

#[tokio::test]
async fn a_tag_whose_body_contradicts_its_digest_header_is_a_mismatch() {
    let announced = Digest::sha256_of(b"what the registry claims");
    let header = announced.to_string();
    let stub = StubRegistry::start(move |_| {
        StubResponse::new(StatusCode::OK)
            .header("content-type", OCI_MANIFEST)
            .header("docker-content-digest", &header)
            .body(r#"{"schemaVersion":2}"#)
    })
    .await;
    let (client, _) = client(insecure(&stub.host()));

    let err = client
        .manifest(&repository(&stub.host(), "test/app"), "v1", &anonymous())
        .await
        .unwrap_err();

    assert_eq!(
        err.to_string(),
        format!(
            "GET http://{}/v2/test/app/manifests/v1: digest mismatch: expected {announced}, got {}",
            stub.host(),
            Digest::sha256_of(br#"{"schemaVersion":2}"#)
        )
    );
}

#[tokio::test]
async fn errors_after_a_redirect_hide_the_presigned_query() {
    let storage =
        StubRegistry::start(|_| StubResponse::new(StatusCode::FORBIDDEN).body("signature expired"))
            .await;
    let storage_url = format!(
        "http://{}/bucket/blob?X-Amz-Signature=secret-signature",
        storage.host()
    );
    let registry = StubRegistry::start(move |_| {
        StubResponse::new(StatusCode::FOUND).header("location", &storage_url)
    })
    .await;
    let (client, _) = client(insecure(&registry.host()));

    let err = client
        .blob(
            &repository(&registry.host(), "test/app"),
            &Digest::sha256_of(b"x"),
            &anonymous(),
        )
        .await
        .unwrap_err();

    assert_eq!(err.reason(), "denied");
    assert_eq!(
        err.to_string(),
        format!(
            "GET http://{}/bucket/blob?<redacted>: 403 denied: signature expired",
            storage.host()
        )
    );
}

#[tokio::test]
async fn too_many_redirects_is_an_error() {
    let stub = StubRegistry::start(|request| {
        StubResponse::new(StatusCode::TEMPORARY_REDIRECT).header("location", &request.path)
    })
    .await;
    let (client, _) = client(insecure(&stub.host()));

    let err = client
        .blob(
            &repository(&stub.host(), "test/app"),
            &Digest::sha256_of(b"x"),
            &anonymous(),
        )
        .await
        .unwrap_err();

    assert_eq!(err.reason(), "invalid_response");
    assert!(err.to_string().ends_with("more than 5 redirects"), "{err}");
    assert_eq!(stub.request_count(), 6);
}

#[tokio::test]
async fn a_403_is_denied_with_the_registry_message() {
    let stub = StubRegistry::start(|_| {
        StubResponse::registry_error(
            StatusCode::FORBIDDEN,
            "DENIED",
            "requested access to the resource is denied",
        )
    })
    .await;
    let (client, metrics) = client(insecure(&stub.host()));

    let err = client
        .manifest(&repository(&stub.host(), "test/app"), "v1", &anonymous())
        .await
        .unwrap_err();

    assert_eq!(
        err.to_string(),
        format!(
            "GET http://{}/v2/test/app/manifests/v1: 403 denied: requested access to the resource is denied",
            stub.host()
        )
    );
    assert_eq!(count(&metrics, "manifest", "denied"), 1);
}

/// A stub that is its own token server: it accepts only the latest token it issued.
async fn rotating_token_registry(digest: Digest) -> (StubRegistry, Arc<AtomicUsize>) {
    let latest = Arc::new(AtomicUsize::new(0));
    let host = Arc::new(OnceLock::<String>::new());
    let (issuer, stub_host) = (latest.clone(), host.clone());
    let stub = StubRegistry::start(move |request| {
        if request.path.starts_with("/token") {
            let n = issuer.fetch_add(1, Ordering::SeqCst) + 1;
            return StubResponse::new(StatusCode::OK)
                .header("content-type", "application/json")
                .body(json!({"token": format!("t{n}"), "expires_in": 300}).to_string());
        }
        let valid = format!("Bearer t{}", issuer.load(Ordering::SeqCst));
        if request.authorization.as_deref() == Some(valid.as_str()) {
            return StubResponse::new(StatusCode::OK)
                .header("content-type", OCI_MANIFEST)
                .header("docker-content-digest", &digest.to_string());
        }
        let realm = format!("http://{}/token", stub_host.get().unwrap());
        StubResponse::registry_error(
            StatusCode::UNAUTHORIZED,
            "UNAUTHORIZED",
            "authentication required",
        )
        .header(
            "www-authenticate",
            &format!(r#"Bearer realm="{realm}",service="stub""#),
        )
    })
    .await;
    host.set(stub.host()).unwrap();
    (stub, latest)
}

#[tokio::test]
async fn a_revoked_cached_token_is_replaced_once() {
    let digest = Digest::sha256_of(b"rotating");
    let (stub, latest) = rotating_token_registry(digest.clone()).await;
    let (client, _) = client(insecure(&stub.host()));
    let app = image(&stub.host(), "test/app", "v1");

    assert_eq!(
        client.resolve_digest(&app, &anonymous()).await.unwrap(),
        digest
    );
    // Revoke t1: the registry now wants t2, which was never issued; the next one is t3.
    latest.store(2, Ordering::SeqCst);
    let revoked_at = stub.request_count();
    assert_eq!(
        client.resolve_digest(&app, &anonymous()).await.unwrap(),
        digest
    );

    let seen: Vec<_> = stub.requests()[revoked_at..]
        .iter()
        .map(|r| {
            format!(
                "{} {}",
                r.line(),
                r.authorization.clone().unwrap_or_default()
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            "HEAD /v2/test/app/manifests/v1 Bearer t1".to_string(),
            "GET /token?service=stub&scope=repository%3Atest%2Fapp%3Apull ".to_string(),
            "HEAD /v2/test/app/manifests/v1 Bearer t3".to_string(),
        ]
    );
}

#[tokio::test]
async fn registry_tokens_are_sent_as_bearer_without_a_token_request() {
    let digest = Digest::sha256_of(b"registry token");
    let header = digest.to_string();
    let stub = StubRegistry::start(move |request| {
        if request.authorization.as_deref() == Some("Bearer opaque-registry-token") {
            return StubResponse::new(StatusCode::OK).header("docker-content-digest", &header);
        }
        StubResponse::new(StatusCode::UNAUTHORIZED).header(
            "www-authenticate",
            r#"Bearer realm="http://127.0.0.1:9/token",service="s""#,
        )
    })
    .await;
    let (client, _) = client(insecure(&stub.host()));
    let keychain = Keychain::anonymous()
        .with_credential(
            &stub.host(),
            Credential::RegistryToken("opaque-registry-token".to_string()),
        )
        .unwrap();

    let resolved = client
        .resolve_digest(&image(&stub.host(), "test/app", "v1"), &keychain)
        .await
        .unwrap();

    assert_eq!(resolved, digest);
    assert!(
        stub.requests()
            .iter()
            .all(|r| !r.path.starts_with("/token"))
    );
}

#[tokio::test]
async fn credentials_never_go_to_a_plain_http_token_endpoint_of_an_https_registry() {
    let ca = TestCa::new("stub CA");
    let leaf = ca.leaf(&["127.0.0.1"]);
    let token_endpoint = StubRegistry::start(|_| StubResponse::new(StatusCode::OK)).await;
    let realm = format!("http://{}/token", token_endpoint.host());
    let stub = StubRegistry::start_tls(&leaf, move |_| {
        StubResponse::new(StatusCode::UNAUTHORIZED).header(
            "www-authenticate",
            &format!(r#"Bearer realm="{realm}",service="s""#),
        )
    })
    .await;
    let (client, _) = client_with_ca(&stub.host(), ca.cert_pem());

    let err = client
        .resolve_digest(
            &image(&stub.host(), "test/app", "v1"),
            &basic(&stub.host(), "user", "secret"),
        )
        .await
        .unwrap_err();

    assert_eq!(
        err.to_string(),
        format!(
            "bearer challenge of {host}: invalid response: refusing to send the credentials for {host} to the plain-http token endpoint http://{token}",
            host = stub.host(),
            token = token_endpoint.host()
        )
    );
    assert_eq!(token_endpoint.request_count(), 0);
}

#[tokio::test]
async fn a_basic_challenge_with_a_token_credential_explains_the_mismatch() {
    let registry = TestRegistry::start_with_basic_auth("alice", "wonderland").await;
    registry.push_image("test/app", "v1", "basic").await;
    let (client, _) = client(registry.client_config());
    let keychain = Keychain::anonymous()
        .with_credential(
            registry.host(),
            Credential::IdentityToken("refresh".to_string()),
        )
        .unwrap();

    let err = client
        .resolve_digest(&registry.image("test/app", "v1"), &keychain)
        .await
        .unwrap_err();

    assert_eq!(
        err.to_string(),
        format!(
            "HEAD http://{host}/v2/test/app/manifests/v1: 401 unauthorized: the registry asks for basic authentication but the credential configured for {host} is an identity token",
            host = registry.host()
        )
    );
}

#[tokio::test]
async fn insufficient_scope_names_the_scope() {
    let registry =
        TestRegistry::start_with_token_auth(TokenAuth::new("bob", "builder").user_prefix("team/"))
            .await;
    registry.push_image("test/app", "v1", "elsewhere").await;
    let (client, _) = client(registry.client_config());

    let err = client
        .manifest(&registry.repository("test/app"), "v1", &registry.keychain())
        .await
        .unwrap_err();

    let message = err.to_string();
    assert!(
        message.ends_with(&format!(
            "; the token issued for the username and password configured for {} does not grant repository:test/app:pull",
            registry.host()
        )),
        "{message}"
    );
}

#[tokio::test]
async fn a_certificate_for_another_name_says_so() {
    let ca = TestCa::new("stub CA");
    let stub = StubRegistry::start_tls(&ca.leaf(&["localhost"]), |_| {
        StubResponse::new(StatusCode::OK)
    })
    .await;
    let (client, _) = client_with_ca(&stub.host(), ca.cert_pem());

    let err = client
        .resolve_digest(&image(&stub.host(), "test/app", "v1"), &anonymous())
        .await
        .unwrap_err();

    assert_eq!(err.reason(), "tls");
    assert!(
        err.to_string().ends_with(&format!(
            "(the certificate is not valid for {})",
            stub.host()
        )),
        "{err}"
    );
}

#[tokio::test]
async fn paginated_referrers_are_all_read() {
    let subject = Digest::sha256_of(b"subject");
    let (first, second) = (Digest::sha256_of(b"first"), Digest::sha256_of(b"second"));
    let page = |d: &Digest| {
        json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
            {"mediaType": OCI_MANIFEST, "digest": d.to_string(), "size": 1, "artifactType": BUNDLE_TYPE}
        ]})
        .to_string()
    };
    let (page1, page2) = (page(&first), page(&second));
    let next = format!("</v2/test/app/referrers/{subject}?last=first>; rel=\"next\"");
    let stub = StubRegistry::start(move |request| {
        let response = StubResponse::new(StatusCode::OK).header("content-type", OCI_INDEX);
        if request.path.ends_with("?last=first") {
            response.body(page2.clone())
        } else {
            response.header("link", &next).body(page1.clone())
        }
    })
    .await;
    let (client, _) = client(insecure(&stub.host()));

    let found = client
        .referrers(
            &repository(&stub.host(), "test/app"),
            &subject,
            None,
            &anonymous(),
        )
        .await
        .unwrap();

    let digests: Vec<_> = found.into_iter().map(|d| d.digest).collect();
    assert_eq!(digests, [first, second]);
    assert_eq!(stub.request_count(), 2);
}

#[tokio::test]
async fn a_failing_referrers_tag_fetch_is_an_error_not_an_empty_list() {
    let stub = StubRegistry::start(|request| {
        if request.path.contains("/referrers/") {
            StubResponse::new(StatusCode::NOT_FOUND).body("404 page not found")
        } else {
            StubResponse::registry_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "UNAVAILABLE",
                "try later",
            )
        }
    })
    .await;
    let (client, _) = client(insecure(&stub.host()));
    let subject = Digest::sha256_of(b"s");

    let err = client
        .referrers(
            &repository(&stub.host(), "test/app"),
            &subject,
            None,
            &anonymous(),
        )
        .await
        .unwrap_err();

    assert_eq!(
        err.to_string(),
        format!(
            "GET http://{}/v2/test/app/manifests/{}: 503 service unavailable: UNAVAILABLE: try later",
            stub.host(),
            subject.tag_stem()
        )
    );
}

#[tokio::test]
async fn one_client_serves_concurrent_spawned_calls() {
    fn assert_send_sync<T: Send + Sync + Clone + 'static>(_: &T) {}
    let registry = TestRegistry::start_with_token_auth(TokenAuth::new("bob", "builder")).await;
    let mut pushed = Vec::new();
    for i in 0..4 {
        pushed.push(
            registry
                .push_image("test/app", &format!("v{i}"), &format!("seed-{i}"))
                .await,
        );
    }
    let (client, _) = client(registry.client_config());
    assert_send_sync(&client);
    let keychain = registry.keychain();
    // Warm the scheme and token so the concurrent calls below reuse them.
    client
        .resolve_digest(&registry.image("test/app", "v0"), &keychain)
        .await
        .unwrap();

    let tasks: Vec<_> = (0..4)
        .map(|i| {
            let (client, keychain, image) = (
                client.clone(),
                keychain.clone(),
                registry.image("test/app", &format!("v{i}")),
            );
            tokio::spawn(async move { client.resolve_digest(&image, &keychain).await })
        })
        .collect();
    let mut resolved = Vec::new();
    for task in tasks {
        resolved.push(task.await.unwrap().unwrap());
    }

    assert_eq!(resolved, pushed);
    assert_eq!(registry.token_server().unwrap().request_count(), 1);
}
