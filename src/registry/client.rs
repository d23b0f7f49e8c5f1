//! [`RegistryClient`]: the OCI distribution API calls verity needs, with per-registry TLS, size
//! limits enforced while reading, per-call timeouts, the Docker token flow and a token cache.

use std::collections::{HashMap, HashSet};
use std::error::Error as _;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::{Bytes, BytesMut};
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, LOCATION, WWW_AUTHENTICATE};
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use reqwest::Url;
use serde::Deserialize;
use tokio::time::Instant;

use super::auth::{AuthState, Scheme, parse_challenges};
use super::error::{RegistryError, status_reason};
use super::keychain::{Credential, Keychain};
use super::manifest::{Descriptor, MANIFEST_ACCEPT, Manifest, OCI_INDEX, body_media_type};
use crate::image::{Digest, DigestAlgorithm, ImageRef, Repository};
use crate::metrics::Metrics;

/// How the client talks to registries.
#[derive(Clone, Debug)]
pub struct RegistryConfig {
    /// Registries (`HOST[:PORT]`, exactly as `ImageRef::registry()` spells them) reached over
    /// plain HTTP. Every other registry is HTTPS only.
    pub insecure_registries: Vec<String>,
    /// Extra PEM CA bundles trusted for one registry (`HOST[:PORT]`), in addition to the system
    /// roots. Also used for redirects and token endpoints on that host.
    pub registry_cas: Vec<(String, Vec<u8>)>,
    /// Bound on one HTTP exchange: connect, headers and body.
    pub request_timeout: Duration,
    /// Largest manifest (or index, or referrers response) read.
    pub manifest_size_limit: usize,
    /// Largest blob read (signature payloads, bundles).
    pub blob_size_limit: usize,
    pub user_agent: String,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        RegistryConfig {
            insecure_registries: Vec::new(),
            registry_cas: Vec::new(),
            request_timeout: Duration::from_secs(5),
            manifest_size_limit: 4 * 1024 * 1024,
            blob_size_limit: 1024 * 1024,
            user_agent: format!("verity/{}", env!("CARGO_PKG_VERSION")),
        }
    }
}

/// A cheap-to-clone handle (one shared inner state) to talk to registries.
///
/// Connections are pooled per TLS configuration: one HTTP client for the system roots and one
/// per registry that has an extra CA. Tokens and the authentication scheme of each registry are
/// remembered across calls, so a Bearer registry costs one token request per scope and lifetime,
/// not a 401 round trip per call.
#[derive(Clone)]
pub struct RegistryClient {
    inner: Arc<Inner>,
}

struct Inner {
    default_http: reqwest::Client,
    per_host_http: HashMap<String, reqwest::Client>,
    insecure: HashSet<String>,
    request_timeout: Duration,
    manifest_limit: usize,
    blob_limit: usize,
    metrics: Option<Metrics>,
    auth: AuthState,
    /// Registries whose referrers API answered 404 (unsupported, per the OCI spec), and when:
    /// for a while they go straight to the tag-schema fallback, saving a round trip per lookup.
    without_referrers_api: std::sync::Mutex<HashMap<String, std::time::Instant>>,
}

/// How long a registry's missing referrers API is remembered.
const REFERRERS_API_MEMORY: Duration = Duration::from_secs(600);

impl fmt::Debug for RegistryClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut insecure: Vec<_> = self.inner.insecure.iter().collect();
        insecure.sort();
        let mut with_ca: Vec<_> = self.inner.per_host_http.keys().collect();
        with_ca.sort();
        f.debug_struct("RegistryClient")
            .field("insecure_registries", &insecure)
            .field("registries_with_ca", &with_ca)
            .field("request_timeout", &self.inner.request_timeout)
            .finish_non_exhaustive()
    }
}

/// The operation label of `verity_registry_requests_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Operation {
    Resolve,
    Manifest,
    Blob,
    Referrers,
    Token,
}

impl Operation {
    fn as_str(self) -> &'static str {
        match self {
            Operation::Resolve => "resolve",
            Operation::Manifest => "manifest",
            Operation::Blob => "blob",
            Operation::Referrers => "referrers",
            Operation::Token => "token",
        }
    }
}

/// Most pages of a paginated referrers answer read.
const MAX_REFERRER_PAGES: usize = 20;
/// Most redirects followed for one call.
const MAX_REDIRECTS: usize = 5;
/// How much of an error response is read for its message.
const ERROR_BODY_LIMIT: usize = 64 * 1024;
/// Largest token endpoint response read.
const TOKEN_BODY_LIMIT: usize = 256 * 1024;
/// Token lifetime when the token endpoint does not say (docker token spec).
const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(60);
/// Longest registry-supplied text kept in an error message.
const MESSAGE_LIMIT: usize = 300;
/// Statuses of a HEAD that mean "ask again with GET" rather than "failed".
const HEAD_REFUSED: [StatusCode; 5] = [
    StatusCode::BAD_REQUEST,
    StatusCode::FORBIDDEN,
    StatusCode::METHOD_NOT_ALLOWED,
    StatusCode::NOT_ACCEPTABLE,
    StatusCode::NOT_IMPLEMENTED,
];

/// Who is asking, for what: drives credentials, scope and metrics.
struct Target<'a> {
    op: Operation,
    registry: &'a str,
    repository: &'a str,
    keychain: &'a Keychain,
}

#[derive(Clone, Copy)]
struct Limit {
    bytes: usize,
    what: &'static str,
}

/// One HTTP exchange to perform.
struct Exchange<'a> {
    op: Operation,
    method: Method,
    url: &'a Url,
    authorization: Option<&'a HeaderValue>,
    accept: &'a str,
    form: Option<String>,
    limit: Limit,
    /// Appended to the request label in errors (`(token for host)`).
    annotation: &'a str,
    /// Hide the query in errors (pre-signed storage URLs carry credentials there).
    redact_query: bool,
}

/// A response with its body read (within limits).
struct Reply {
    request: String,
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl RegistryClient {
    pub fn new(config: RegistryConfig, metrics: Option<Metrics>) -> Result<Self, RegistryError> {
        let default_http = build_http(&config, Vec::new())?;
        let mut bundles: HashMap<String, Vec<reqwest::Certificate>> = HashMap::new();
        for (host, pem) in &config.registry_cas {
            let host = host.trim().to_ascii_lowercase();
            let certs = reqwest::Certificate::from_pem_bundle(pem).map_err(|e| {
                RegistryError::Config(format!("the CA bundle for {host} is not valid PEM: {e}"))
            })?;
            if certs.is_empty() {
                return Err(RegistryError::Config(format!(
                    "the CA bundle for {host} contains no certificate"
                )));
            }
            bundles.entry(host).or_default().extend(certs);
        }
        let per_host_http = bundles
            .into_iter()
            .map(|(host, certs)| Ok((host, build_http(&config, certs)?)))
            .collect::<Result<_, RegistryError>>()?;
        Ok(RegistryClient {
            inner: Arc::new(Inner {
                default_http,
                per_host_http,
                insecure: config
                    .insecure_registries
                    .iter()
                    .map(|h| h.trim().to_ascii_lowercase())
                    .collect(),
                request_timeout: config.request_timeout,
                manifest_limit: config.manifest_size_limit,
                blob_limit: config.blob_size_limit,
                metrics,
                auth: AuthState::default(),
                without_referrers_api: std::sync::Mutex::new(HashMap::new()),
            }),
        })
    }

    /// Tag → digest. A reference that already has a digest returns it without any request.
    ///
    /// HEAD on the manifest, reading `Docker-Content-Digest`; when the registry refuses HEAD or
    /// leaves the header out, GET and hash the body. An index resolves to the index digest,
    /// which is what cosign signs.
    pub async fn resolve_digest(
        &self,
        image: &ImageRef,
        keychain: &Keychain,
    ) -> Result<Digest, RegistryError> {
        if let Some(digest) = image.digest() {
            return Ok(digest.clone());
        }
        let tag = image.tag().unwrap_or("latest");
        let repo = Repository::from(image);
        let target = Target {
            op: Operation::Resolve,
            registry: repo.registry(),
            repository: repo.repository(),
            keychain,
        };
        let url = self.url(&repo, "manifests", tag)?;
        let reply = self
            .execute(
                &target,
                Method::HEAD,
                url,
                MANIFEST_ACCEPT,
                self.manifest_limit(),
            )
            .await?;
        if reply.status.is_success() {
            if let Some(digest) = header_digest(&reply.headers) {
                return Ok(digest);
            }
        } else if !HEAD_REFUSED.contains(&reply.status) {
            return Err(status_error(reply));
        }
        let manifest = self.fetch_manifest(&target, &repo, tag).await?;
        Ok(manifest.digest)
    }

    /// A manifest by tag or digest. By digest, the body must hash to it; by tag, the digest is
    /// computed from the body (and must agree with `Docker-Content-Digest` when sent).
    pub async fn manifest(
        &self,
        repo: &Repository,
        reference: &str,
        keychain: &Keychain,
    ) -> Result<Manifest, RegistryError> {
        let target = Target {
            op: Operation::Manifest,
            registry: repo.registry(),
            repository: repo.repository(),
            keychain,
        };
        self.fetch_manifest(&target, repo, reference).await
    }

    /// A blob, at most `blob_size_limit` bytes, checked against its digest. Redirects to storage
    /// are followed; credentials are not sent to another host.
    pub async fn blob(
        &self,
        repo: &Repository,
        digest: &Digest,
        keychain: &Keychain,
    ) -> Result<Bytes, RegistryError> {
        let target = Target {
            op: Operation::Blob,
            registry: repo.registry(),
            repository: repo.repository(),
            keychain,
        };
        let url = self.url(repo, "blobs", &digest.to_string())?;
        let limit = Limit {
            bytes: self.inner.blob_limit,
            what: "blob",
        };
        let reply = self
            .execute(&target, Method::GET, url, "*/*", limit)
            .await?;
        if !reply.status.is_success() {
            return Err(status_error(reply));
        }
        verify_digest(&reply.request, digest, &reply.body)?;
        Ok(reply.body)
    }

    /// The manifests that refer to `subject` (OCI 1.1), optionally only those of one artifact
    /// type.
    ///
    /// Uses the referrers API; when the registry does not have it (404), the referrers tag
    /// schema: the index under the tag `sha256-<hex>`. No such tag means no referrers. The
    /// artifact type is filtered here too, whatever the registry did with the query.
    pub async fn referrers(
        &self,
        repo: &Repository,
        subject: &Digest,
        artifact_type: Option<&str>,
        keychain: &Keychain,
    ) -> Result<Vec<Descriptor>, RegistryError> {
        let target = Target {
            op: Operation::Referrers,
            registry: repo.registry(),
            repository: repo.repository(),
            keychain,
        };
        let mut url = self.url(repo, "referrers", &subject.to_string())?;
        if let Some(artifact_type) = artifact_type {
            url.query_pairs_mut()
                .append_pair("artifactType", artifact_type);
        }
        let limit = Limit {
            bytes: self.inner.manifest_limit,
            what: "referrers index",
        };
        let origin = url.origin();
        if self.lacks_referrers_api(repo.registry()) {
            return self
                .referrers_by_tag(&target, repo, subject, artifact_type)
                .await;
        }
        let reply = self
            .execute(&target, Method::GET, url.clone(), OCI_INDEX, limit)
            .await?;
        let descriptors = if reply.status.is_success() {
            // Large answers are paginated with `Link: <next>; rel="next"`.
            let mut descriptors = Vec::new();
            let mut page = reply;
            let mut page_url = url;
            let mut pages = 1;
            loop {
                descriptors.extend(referrers_page(&page)?);
                let Some(next) = next_link(&page, &page_url)? else {
                    break;
                };
                if next.origin() != origin {
                    return Err(RegistryError::InvalidResponse {
                        request: page.request,
                        cause: "referrers pagination leads to another host".to_string(),
                    });
                }
                pages += 1;
                if pages > MAX_REFERRER_PAGES {
                    return Err(RegistryError::InvalidResponse {
                        request: page.request,
                        cause: format!("more than {MAX_REFERRER_PAGES} pages of referrers"),
                    });
                }
                page = self
                    .execute(&target, Method::GET, next.clone(), OCI_INDEX, limit)
                    .await?;
                if !page.status.is_success() {
                    return Err(status_error(page));
                }
                page_url = next;
            }
            descriptors
        } else if reply.status == StatusCode::NOT_FOUND {
            self.remember_no_referrers_api(repo.registry());
            return self
                .referrers_by_tag(&target, repo, subject, artifact_type)
                .await;
        } else {
            return Err(status_error(reply));
        };
        self.filter_referrers(&target, repo, descriptors, artifact_type)
            .await
    }

    /// The referrers tag schema: the index under `sha256-<hex>`; no such tag means none.
    async fn referrers_by_tag(
        &self,
        target: &Target<'_>,
        repo: &Repository,
        subject: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<Vec<Descriptor>, RegistryError> {
        let descriptors = match self.fetch_manifest(target, repo, &subject.tag_stem()).await {
            Ok(manifest) => manifest.index()?.manifests,
            Err(e) if e.is_not_found() => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        self.filter_referrers(target, repo, descriptors, artifact_type)
            .await
    }

    fn lacks_referrers_api(&self, registry: &str) -> bool {
        let known = match self.inner.without_referrers_api.lock() {
            Ok(known) => known,
            Err(poisoned) => poisoned.into_inner(),
        };
        known
            .get(registry)
            .is_some_and(|since| since.elapsed() < REFERRERS_API_MEMORY)
    }

    fn remember_no_referrers_api(&self, registry: &str) {
        let mut known = match self.inner.without_referrers_api.lock() {
            Ok(known) => known,
            Err(poisoned) => poisoned.into_inner(),
        };
        known.insert(registry.to_string(), std::time::Instant::now());
    }

    /// Keeps the descriptors of `artifact_type` (all when `None`); registries may ignore the
    /// query filter, and old tag-schema indexes leave the type out.
    async fn filter_referrers(
        &self,
        target: &Target<'_>,
        repo: &Repository,
        descriptors: Vec<Descriptor>,
        artifact_type: Option<&str>,
    ) -> Result<Vec<Descriptor>, RegistryError> {
        let Some(wanted) = artifact_type else {
            return Ok(descriptors);
        };
        let mut matching = Vec::new();
        for mut descriptor in descriptors {
            if descriptor.artifact_type.is_none() {
                // Older tag-schema indexes leave the type out: read it from the manifest.
                let manifest = self
                    .fetch_manifest(target, repo, &descriptor.digest.to_string())
                    .await?;
                descriptor.artifact_type = manifest
                    .image_manifest()?
                    .effective_artifact_type()
                    .map(str::to_string);
            }
            if descriptor.artifact_type.as_deref() == Some(wanted) {
                matching.push(descriptor);
            }
        }
        Ok(matching)
    }

    fn manifest_limit(&self) -> Limit {
        Limit {
            bytes: self.inner.manifest_limit,
            what: "manifest",
        }
    }

    async fn fetch_manifest(
        &self,
        target: &Target<'_>,
        repo: &Repository,
        reference: &str,
    ) -> Result<Manifest, RegistryError> {
        let expected = Digest::parse(reference).ok();
        if expected.is_none() && !valid_tag(reference) {
            return Err(RegistryError::InvalidReference(reference.to_string()));
        }
        let url = self.url(repo, "manifests", reference)?;
        let reply = self
            .execute(
                target,
                Method::GET,
                url,
                MANIFEST_ACCEPT,
                self.manifest_limit(),
            )
            .await?;
        if !reply.status.is_success() {
            return Err(status_error(reply));
        }
        let digest = match expected {
            Some(expected) => {
                verify_digest(&reply.request, &expected, &reply.body)?;
                expected
            }
            None => {
                let actual = Digest::sha256_of(&reply.body);
                if let Some(announced) = header_digest(&reply.headers)
                    && announced.algorithm() == DigestAlgorithm::Sha256
                    && announced != actual
                {
                    return Err(RegistryError::DigestMismatch {
                        request: reply.request,
                        expected: announced,
                        actual,
                    });
                }
                actual
            }
        };
        let media_type = content_type(&reply.headers)
            .filter(|t| !matches!(*t, "" | "application/json" | "application/octet-stream"))
            .map(str::to_string)
            .or_else(|| body_media_type(&reply.body))
            .or_else(|| content_type(&reply.headers).map(str::to_string))
            .unwrap_or_default();
        Ok(Manifest {
            digest,
            media_type,
            bytes: reply.body,
        })
    }

    fn scheme(&self, host: &str) -> &'static str {
        if self.inner.insecure.contains(host) {
            "http"
        } else {
            "https"
        }
    }

    fn url(&self, repo: &Repository, kind: &str, reference: &str) -> Result<Url, RegistryError> {
        let registry = repo.registry();
        let url = format!(
            "{}://{registry}/v2/{}/{kind}/{reference}",
            self.scheme(registry),
            repo.repository()
        );
        Url::parse(&url).map_err(|e| RegistryError::Config(format!("bad registry url {url}: {e}")))
    }

    fn http_for(&self, host: &str) -> &reqwest::Client {
        self.inner
            .per_host_http
            .get(host)
            .unwrap_or(&self.inner.default_http)
    }

    fn record(&self, op: Operation, result: &str) {
        if let Some(metrics) = &self.inner.metrics {
            metrics
                .registry_requests
                .with_label_values(&[op.as_str(), result])
                .inc();
        }
    }

    /// One call against the registry: credentials up front when the registry's scheme is known,
    /// one retry after a 401 challenge, redirects (without credentials across origins).
    /// Returns the final reply whatever its status, except that a final 401 becomes
    /// [`RegistryError::Unauthorized`] with the reason spelled out.
    async fn execute(
        &self,
        target: &Target<'_>,
        method: Method,
        url: Url,
        accept: &str,
        limit: Limit,
    ) -> Result<Reply, RegistryError> {
        let credential = target.keychain.lookup(target.registry);
        let scope = format!("repository:{}:pull", target.repository);
        let mut authorization = self.preauthorize(target, &scope, credential).await?;
        let origin = url.origin();
        let mut current = url;
        let mut method = method;
        let mut challenged = false;
        let mut redirects = 0;
        loop {
            let same_origin = current.origin() == origin;
            let exchange = Exchange {
                op: target.op,
                method: method.clone(),
                url: &current,
                authorization: authorization.as_ref().filter(|_| same_origin),
                accept,
                form: None,
                limit,
                annotation: "",
                redact_query: !same_origin,
            };
            let reply = self.roundtrip(&exchange).await?;
            if is_redirect(reply.status) {
                redirects += 1;
                if redirects > MAX_REDIRECTS {
                    return Err(RegistryError::InvalidResponse {
                        request: reply.request,
                        cause: format!("more than {MAX_REDIRECTS} redirects"),
                    });
                }
                current = redirect_target(&reply, &current)?;
                if reply.status == StatusCode::SEE_OTHER && method != Method::HEAD {
                    method = Method::GET;
                }
                continue;
            }
            if reply.status != StatusCode::UNAUTHORIZED {
                return Ok(reply);
            }
            if !same_origin {
                return Err(unauthorized(
                    reply,
                    format!(
                        "storage outside {} refused the redirected request",
                        target.registry
                    ),
                ));
            }
            if challenged {
                let insufficient_scope = parse_challenges(
                    reply
                        .headers
                        .get_all(WWW_AUTHENTICATE)
                        .iter()
                        .filter_map(|v| v.to_str().ok()),
                )
                .iter()
                .any(|c| c.scheme == "bearer" && c.param("error") == Some("insufficient_scope"));
                let hint = match credential {
                    Credential::Anonymous => {
                        format!("no credentials are configured for {}", target.registry)
                    }
                    other if insufficient_scope => format!(
                        "the token issued for the {} configured for {} does not grant {scope}",
                        other.kind(),
                        target.registry
                    ),
                    other => format!(
                        "the {} configured for {} was not accepted",
                        other.kind(),
                        target.registry
                    ),
                };
                return Err(unauthorized(reply, hint));
            }
            challenged = true;
            authorization = Some(self.authorize(target, &scope, credential, reply).await?);
        }
    }

    /// The Authorization header to send before any challenge, from what the registry asked for
    /// last time.
    async fn preauthorize(
        &self,
        target: &Target<'_>,
        scope: &str,
        credential: &Credential,
    ) -> Result<Option<HeaderValue>, RegistryError> {
        match self.inner.auth.scheme(target.registry) {
            None => Ok(None),
            Some(Scheme::Basic) => match credential {
                Credential::Basic { username, password } => {
                    Ok(Some(basic_header(username, password)))
                }
                _ => Ok(None),
            },
            Some(Scheme::Bearer { realm, service }) => {
                if let Credential::RegistryToken(token) = credential {
                    return bearer_header(token, "registry token").map(Some);
                }
                if let Some(token) = self.inner.auth.token(target.registry, scope, credential) {
                    return bearer_header(&token, "cached token").map(Some);
                }
                let token = self
                    .fetch_token(target, &realm, service.as_deref(), scope, scope, credential)
                    .await?;
                Ok(Some(token))
            }
        }
    }

    /// Answers the challenge of a 401 reply: remembers the scheme and returns the header to
    /// retry with, or the reason the call cannot be authorised.
    async fn authorize(
        &self,
        target: &Target<'_>,
        scope: &str,
        credential: &Credential,
        reply: Reply,
    ) -> Result<HeaderValue, RegistryError> {
        let challenges = parse_challenges(
            reply
                .headers
                .get_all(WWW_AUTHENTICATE)
                .iter()
                .filter_map(|v| v.to_str().ok()),
        );
        if let Some(bearer) = challenges.iter().find(|c| c.scheme == "bearer") {
            let Some(realm) = bearer.param("realm").map(str::to_string) else {
                return Err(RegistryError::InvalidResponse {
                    request: reply.request,
                    cause: "bearer challenge without a realm".to_string(),
                });
            };
            let service = bearer.param("service").map(str::to_string);
            self.inner.auth.remember_scheme(
                target.registry,
                Scheme::Bearer {
                    realm: realm.clone(),
                    service: service.clone(),
                },
            );
            if let Credential::RegistryToken(token) = credential {
                return bearer_header(token, "registry token");
            }
            self.inner
                .auth
                .forget_token(target.registry, scope, credential);
            let requested_scope = bearer.param("scope").unwrap_or(scope).to_string();
            return self
                .fetch_token(
                    target,
                    &realm,
                    service.as_deref(),
                    &requested_scope,
                    scope,
                    credential,
                )
                .await;
        }
        if challenges.iter().any(|c| c.scheme == "basic") {
            self.inner
                .auth
                .remember_scheme(target.registry, Scheme::Basic);
            return match credential {
                Credential::Basic { username, password } => Ok(basic_header(username, password)),
                Credential::Anonymous => Err(unauthorized(
                    reply,
                    format!("no credentials are configured for {}", target.registry),
                )),
                other => Err(unauthorized(
                    reply,
                    format!(
                        "the registry asks for basic authentication but the credential configured for {} is an {}",
                        target.registry,
                        other.kind()
                    ),
                )),
            };
        }
        let hint = if challenges.is_empty() {
            "the registry sent no authentication challenge".to_string()
        } else {
            let schemes: Vec<_> = challenges.iter().map(|c| c.scheme.as_str()).collect();
            format!("unsupported authentication scheme {}", schemes.join(", "))
        };
        Err(unauthorized(reply, hint))
    }

    /// Gets a bearer token for `scope` from the realm (docker token spec; OAuth2 refresh-token
    /// grant for identity tokens), caches it under `cache_scope`, and returns the header.
    async fn fetch_token(
        &self,
        target: &Target<'_>,
        realm: &str,
        service: Option<&str>,
        scope: &str,
        cache_scope: &str,
        credential: &Credential,
    ) -> Result<HeaderValue, RegistryError> {
        let registry = target.registry;
        let annotation = format!(" (token for {registry})");
        let invalid_realm = |cause: String| RegistryError::InvalidResponse {
            request: format!("bearer challenge of {registry}"),
            cause,
        };
        let mut url =
            Url::parse(realm).map_err(|e| invalid_realm(format!("realm {realm:?}: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(invalid_realm(format!(
                "realm {realm:?} is not an http(s) url"
            )));
        }
        if url.scheme() == "http" && self.scheme(registry) == "https" && !credential.is_anonymous()
        {
            return Err(invalid_realm(format!(
                "refusing to send the credentials for {registry} to the plain-http token endpoint {}",
                url.origin().ascii_serialization()
            )));
        }
        let (method, form, authorization) = match credential {
            Credential::IdentityToken(refresh_token) => {
                let mut form =
                    Url::parse("http://form.invalid/").map_err(|e| invalid_realm(e.to_string()))?;
                {
                    let mut pairs = form.query_pairs_mut();
                    pairs.append_pair("grant_type", "refresh_token");
                    if let Some(service) = service {
                        pairs.append_pair("service", service);
                    }
                    pairs.append_pair("scope", scope);
                    pairs.append_pair("client_id", "verity");
                    pairs.append_pair("refresh_token", refresh_token);
                }
                (Method::POST, form.query().map(str::to_string), None)
            }
            Credential::Basic { username, password } => {
                add_token_query(&mut url, service, scope);
                (Method::GET, None, Some(basic_header(username, password)))
            }
            Credential::Anonymous | Credential::RegistryToken(_) => {
                add_token_query(&mut url, service, scope);
                (Method::GET, None, None)
            }
        };
        let exchange = Exchange {
            op: Operation::Token,
            method,
            url: &url,
            authorization: authorization.as_ref(),
            accept: "application/json",
            form,
            limit: Limit {
                bytes: TOKEN_BODY_LIMIT,
                what: "token response",
            },
            annotation: &annotation,
            redact_query: false,
        };
        let reply = self.roundtrip(&exchange).await?;
        match reply.status {
            status if status.is_success() => {}
            StatusCode::UNAUTHORIZED => {
                let hint = match credential {
                    Credential::Anonymous => {
                        format!("no credentials are configured for {registry}")
                    }
                    other => format!(
                        "the token endpoint rejected the {} configured for {registry}",
                        other.kind()
                    ),
                };
                return Err(unauthorized(reply, hint));
            }
            _ => return Err(status_error(reply)),
        }
        #[derive(Deserialize)]
        struct TokenResponse {
            #[serde(default)]
            token: Option<String>,
            #[serde(default)]
            access_token: Option<String>,
            #[serde(default)]
            expires_in: Option<serde_json::Number>,
        }
        let parsed: TokenResponse =
            serde_json::from_slice(&reply.body).map_err(|e| RegistryError::InvalidResponse {
                request: reply.request.clone(),
                cause: format!("token response is not json: {e}"),
            })?;
        let token = parsed
            .token
            .filter(|t| !t.is_empty())
            .or(parsed.access_token.filter(|t| !t.is_empty()))
            .ok_or_else(|| RegistryError::InvalidResponse {
                request: reply.request.clone(),
                cause: "token response has neither token nor access_token".to_string(),
            })?;
        let lifetime = parsed
            .expires_in
            .and_then(|n| n.as_f64())
            .filter(|secs| secs.is_finite() && *secs >= 0.0)
            .map_or(DEFAULT_TOKEN_LIFETIME, Duration::from_secs_f64);
        let header =
            bearer_header(&token, "token").map_err(|_| RegistryError::InvalidResponse {
                request: reply.request.clone(),
                cause: "token contains characters not allowed in a header".to_string(),
            })?;
        self.inner
            .auth
            .store_token(registry, cache_scope, credential, &token, lifetime);
        Ok(header)
    }

    /// One HTTP exchange, bounded by the request timeout, counted in the metrics.
    async fn roundtrip(&self, exchange: &Exchange<'_>) -> Result<Reply, RegistryError> {
        let shown = match exchange.url.query() {
            Some(_) if exchange.redact_query => {
                let mut without = exchange.url.clone();
                without.set_query(None);
                format!("{without}?<redacted>")
            }
            _ => exchange.url.to_string(),
        };
        let request = format!("{} {shown}{}", exchange.method, exchange.annotation);
        let result = self.roundtrip_inner(exchange, request).await;
        let label = match &result {
            Ok(reply) => status_reason(reply.status),
            Err(e) => e.reason(),
        };
        self.record(exchange.op, label);
        result
    }

    async fn roundtrip_inner(
        &self,
        exchange: &Exchange<'_>,
        request: String,
    ) -> Result<Reply, RegistryError> {
        let host = url_host(exchange.url);
        let timeout = self.inner.request_timeout;
        let deadline = Instant::now() + timeout;
        let mut builder = self
            .http_for(&host)
            .request(exchange.method.clone(), exchange.url.clone())
            .header(ACCEPT, exchange.accept);
        if let Some(authorization) = exchange.authorization {
            builder = builder.header(AUTHORIZATION, authorization.clone());
        }
        if let Some(form) = &exchange.form {
            builder = builder
                .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(form.clone());
        }
        let response = match tokio::time::timeout_at(deadline, builder.send()).await {
            Err(_) => {
                return Err(RegistryError::Timeout {
                    request,
                    after: timeout,
                });
            }
            Ok(Err(e)) => return Err(transport_error(&e, request, host, timeout)),
            Ok(Ok(response)) => response,
        };
        let status = response.status();
        let headers = response.headers().clone();
        let body = if exchange.method == Method::HEAD {
            Bytes::new()
        } else {
            let (limit, strict) = if status.is_success() {
                (exchange.limit.bytes, true)
            } else {
                (ERROR_BODY_LIMIT, false)
            };
            match tokio::time::timeout_at(deadline, read_body(response, limit, strict)).await {
                Err(_) => {
                    return Err(RegistryError::Timeout {
                        request,
                        after: timeout,
                    });
                }
                Ok(Err(BodyError::TooLarge)) => {
                    return Err(RegistryError::TooLarge {
                        request,
                        what: exchange.limit.what,
                        limit,
                    });
                }
                Ok(Err(BodyError::Transport(e))) => {
                    return Err(transport_error(&e, request, host, timeout));
                }
                Ok(Ok(body)) => body,
            }
        };
        Ok(Reply {
            request,
            status,
            headers,
            body,
        })
    }
}

fn build_http(
    config: &RegistryConfig,
    extra_roots: Vec<reqwest::Certificate>,
) -> Result<reqwest::Client, RegistryError> {
    let mut builder = reqwest::Client::builder()
        .user_agent(config.user_agent.as_str())
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(config.request_timeout)
        .pool_idle_timeout(Duration::from_secs(90))
        .tcp_nodelay(true);
    if !extra_roots.is_empty() {
        builder = builder.tls_certs_merge(extra_roots);
    }
    builder
        .build()
        .map_err(|e| RegistryError::Config(format!("cannot build the http client: {e}")))
}

enum BodyError {
    TooLarge,
    Transport(reqwest::Error),
}

/// Reads at most `limit` bytes. `strict`: more is an error (checked against Content-Length
/// before reading); otherwise the rest is dropped.
async fn read_body(
    mut response: reqwest::Response,
    limit: usize,
    strict: bool,
) -> Result<Bytes, BodyError> {
    if strict
        && response
            .content_length()
            .is_some_and(|length| length > limit as u64)
    {
        return Err(BodyError::TooLarge);
    }
    let mut body = BytesMut::new();
    while let Some(chunk) = response.chunk().await.map_err(BodyError::Transport)? {
        if body.len() + chunk.len() > limit {
            if strict {
                return Err(BodyError::TooLarge);
            }
            body.extend_from_slice(&chunk[..limit - body.len()]);
            break;
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

fn transport_error(
    err: &reqwest::Error,
    request: String,
    host: String,
    timeout: Duration,
) -> RegistryError {
    if err.is_timeout() {
        return RegistryError::Timeout {
            request,
            after: timeout,
        };
    }
    if let Some(tls) = find_rustls_error(err) {
        let cause = match tls_hint(tls, &host) {
            Some(hint) => format!("{tls} ({hint})"),
            None => tls.to_string(),
        };
        return RegistryError::Tls {
            request,
            host,
            cause,
        };
    }
    RegistryError::Connect {
        request,
        host,
        cause: error_causes(err),
    }
}

pub(crate) fn find_rustls_error<'a>(
    err: &'a (dyn std::error::Error + 'static),
) -> Option<&'a rustls::Error> {
    let mut current = Some(err);
    while let Some(mut e) = current {
        // io::Error::source() skips the error it wraps (and io errors wrap io errors), so
        // unwrap those by hand.
        while let Some(inner) = e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            e = inner;
        }
        if let Some(tls) = e.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        current = e.source();
    }
    None
}

/// What to do about the usual TLS failures.
fn tls_hint(err: &rustls::Error, host: &str) -> Option<String> {
    use rustls::{CertificateError, Error, InvalidMessage};
    match err {
        Error::InvalidCertificate(CertificateError::UnknownIssuer) => Some(format!(
            "the certificate is not issued by a trusted CA; configure the CA of {host} if it uses a private one"
        )),
        Error::InvalidCertificate(
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
        ) => Some(format!("the certificate is not valid for {host}")),
        Error::InvalidMessage(InvalidMessage::InvalidContentType) => Some(format!(
            "{host} does not seem to speak tls; a plain-http registry must be configured as insecure"
        )),
        _ => None,
    }
}

/// The causes under a reqwest error (whose own message repeats the URL), most general first,
/// without hyper's generic wrappers.
pub(crate) fn error_causes(err: &reqwest::Error) -> String {
    let mut causes: Vec<String> = Vec::new();
    let mut current = err.source();
    while let Some(e) = current {
        let text = e.to_string();
        let generic = text.starts_with("client error (");
        if !generic && !causes.iter().any(|c| c.contains(&text)) {
            causes.push(lower_first(&text));
        }
        current = e.source();
    }
    if causes.is_empty() {
        err.to_string()
    } else {
        causes.join(": ")
    }
}

fn lower_first(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// The descriptors of one referrers API answer.
fn referrers_page(reply: &Reply) -> Result<Vec<Descriptor>, RegistryError> {
    let index = Manifest {
        digest: Digest::sha256_of(&reply.body),
        media_type: OCI_INDEX.to_string(),
        bytes: reply.body.clone(),
    };
    index
        .index()
        .map(|index| index.manifests)
        .map_err(|e| RegistryError::InvalidResponse {
            request: reply.request.clone(),
            cause: format!("not an image index: {e}"),
        })
}

/// The `rel="next"` target of a `Link` header, resolved against `current`.
fn next_link(reply: &Reply, current: &Url) -> Result<Option<Url>, RegistryError> {
    for value in reply.headers.get_all(http::header::LINK) {
        let Ok(value) = value.to_str() else { continue };
        for link in value.split(',') {
            let mut parts = link.split(';');
            let target = parts.next().unwrap_or_default().trim();
            let is_next = parts.any(|param| {
                let param = param.trim().replace(' ', "");
                param == "rel=\"next\"" || param == "rel=next"
            });
            let Some(target) = target.strip_prefix('<').and_then(|t| t.strip_suffix('>')) else {
                continue;
            };
            if is_next {
                return current.join(target).map(Some).map_err(|e| {
                    RegistryError::InvalidResponse {
                        request: reply.request.clone(),
                        cause: format!("invalid link to the next page: {e}"),
                    }
                });
            }
        }
    }
    Ok(None)
}

fn is_redirect(status: StatusCode) -> bool {
    matches!(status.as_u16(), 301 | 302 | 303 | 307 | 308)
}

fn redirect_target(reply: &Reply, current: &Url) -> Result<Url, RegistryError> {
    let invalid = |cause: String| RegistryError::InvalidResponse {
        request: reply.request.clone(),
        cause,
    };
    let location = reply
        .headers
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| invalid("redirect without a location".to_string()))?;
    let next = current
        .join(location)
        .map_err(|e| invalid(format!("redirect to an invalid location: {e}")))?;
    match (current.scheme(), next.scheme()) {
        ("https", "https") | ("http", "http" | "https") => Ok(next),
        ("https", "http") => Err(invalid(format!(
            "refusing to follow a redirect from https to plain http ({})",
            next.origin().ascii_serialization()
        ))),
        (_, other) => Err(invalid(format!("redirect to unsupported scheme {other:?}"))),
    }
}

/// `host[:port]` of a URL, in `ImageRef::registry()` form.
fn url_host(url: &Url) -> String {
    let host = url.host_str().unwrap_or_default();
    match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_string(),
    }
}

fn add_token_query(url: &mut Url, service: Option<&str>, scope: &str) {
    let mut pairs = url.query_pairs_mut();
    if let Some(service) = service {
        pairs.append_pair("service", service);
    }
    pairs.append_pair("scope", scope);
}

fn basic_header(username: &str, password: &str) -> HeaderValue {
    let encoded = STANDARD.encode(format!("{username}:{password}"));
    // Base64 is always a valid header value.
    let mut value = HeaderValue::from_str(&format!("Basic {encoded}"))
        .unwrap_or_else(|_| HeaderValue::from_static("Basic"));
    value.set_sensitive(true);
    value
}

fn bearer_header(token: &str, what: &str) -> Result<HeaderValue, RegistryError> {
    let mut value = HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| {
        RegistryError::Config(format!(
            "the {what} contains characters not allowed in a header"
        ))
    })?;
    value.set_sensitive(true);
    Ok(value)
}

fn header_digest(headers: &HeaderMap) -> Option<Digest> {
    headers
        .get("docker-content-digest")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| Digest::parse(v.trim()).ok())
}

fn content_type(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or_default().trim())
}

fn digest_of(algorithm: DigestAlgorithm, bytes: &[u8]) -> Option<Digest> {
    use sha2::Digest as _;
    match algorithm {
        DigestAlgorithm::Sha256 => Some(Digest::sha256_of(bytes)),
        DigestAlgorithm::Sha512 => Digest::parse(&format!(
            "sha512:{}",
            hex::encode(sha2::Sha512::digest(bytes))
        ))
        .ok(),
    }
}

fn verify_digest(request: &str, expected: &Digest, bytes: &[u8]) -> Result<(), RegistryError> {
    if expected.matches(bytes) {
        return Ok(());
    }
    match digest_of(expected.algorithm(), bytes) {
        Some(actual) => Err(RegistryError::DigestMismatch {
            request: request.to_string(),
            expected: expected.clone(),
            actual,
        }),
        None => Err(RegistryError::InvalidResponse {
            request: request.to_string(),
            cause: format!("content does not match {expected}"),
        }),
    }
}

fn valid_tag(tag: &str) -> bool {
    let mut bytes = tag.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphanumeric() || b == b'_')
        && tag.len() <= 128
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

fn unauthorized(reply: Reply, hint: String) -> RegistryError {
    let (_, message) = registry_message(&reply.body);
    let message = match message {
        Some(message) => format!("{message}; {hint}"),
        None => hint,
    };
    RegistryError::Unauthorized {
        request: reply.request,
        message,
    }
}

/// The error for a non-success reply.
fn status_error(reply: Reply) -> RegistryError {
    let (code, message) = registry_message(&reply.body);
    let message = message.unwrap_or_else(|| "no error details".to_string());
    match reply.status {
        StatusCode::NOT_FOUND => RegistryError::NotFound {
            request: reply.request,
            code,
            message,
        },
        StatusCode::UNAUTHORIZED => RegistryError::Unauthorized {
            request: reply.request,
            message,
        },
        StatusCode::FORBIDDEN => RegistryError::Denied {
            request: reply.request,
            message,
        },
        status => RegistryError::Status {
            request: reply.request,
            status,
            message: match &code {
                Some(code) => format!("{code}: {message}"),
                None => message,
            },
            code,
        },
    }
}

/// The code and message of a registry error body (`{"errors":[{"code","message"}]}`), or the
/// start of a plain-text body. Registry text ends up in admission denials: control characters
/// are replaced and the length is bounded.
fn registry_message(body: &[u8]) -> (Option<String>, Option<String>) {
    #[derive(Deserialize)]
    struct Errors {
        errors: Vec<ErrorEntry>,
    }
    #[derive(Deserialize)]
    struct ErrorEntry {
        #[serde(default)]
        code: Option<String>,
        #[serde(default)]
        message: Option<String>,
    }
    if let Ok(parsed) = serde_json::from_slice::<Errors>(body)
        && !parsed.errors.is_empty()
    {
        let code = parsed.errors.iter().find_map(|e| e.code.clone());
        let messages: Vec<String> = parsed
            .errors
            .iter()
            .filter_map(|e| {
                e.message
                    .clone()
                    .filter(|m| !m.is_empty())
                    .or_else(|| e.code.as_ref().map(|c| c.to_lowercase().replace('_', " ")))
            })
            .collect();
        let message = Some(messages.join("; ")).filter(|m| !m.is_empty());
        return (code.map(|c| sanitize(&c)), message.map(|m| sanitize(&m)));
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    (None, Some(sanitize(text)).filter(|t| !t.is_empty()))
}

fn sanitize(text: &str) -> String {
    let mut out: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(MESSAGE_LIMIT)
        .collect();
    if text.chars().count() > MESSAGE_LIMIT {
        out.push('…');
    }
    out.trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_messages() {
        let (code, message) = registry_message(
            br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":{"Tag":"v9"}}]}"#,
        );
        assert_eq!(code.as_deref(), Some("MANIFEST_UNKNOWN"));
        assert_eq!(message.as_deref(), Some("manifest unknown"));

        let (code, message) = registry_message(br#"{"errors":[{"code":"DENIED"}]}"#);
        assert_eq!(code.as_deref(), Some("DENIED"));
        assert_eq!(message.as_deref(), Some("denied"));

        let (code, message) = registry_message(b"404 page not found\n");
        assert_eq!(code, None);
        assert_eq!(message.as_deref(), Some("404 page not found"));

        let (_, message) = registry_message(b"evil\r\nInjected: header");
        assert_eq!(message.as_deref(), Some("evil  Injected: header"));

        let long = "x".repeat(1000);
        let (_, message) = registry_message(long.as_bytes());
        assert_eq!(message.unwrap().chars().count(), MESSAGE_LIMIT + 1);

        assert_eq!(registry_message(b""), (None, None));
    }

    #[test]
    fn redirects_never_downgrade_to_http() {
        let reply = |location: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(LOCATION, HeaderValue::from_str(location).unwrap());
            Reply {
                request: "GET https://r.example/v2/a/blobs/x".to_string(),
                status: StatusCode::TEMPORARY_REDIRECT,
                headers,
                body: Bytes::new(),
            }
        };
        let https = Url::parse("https://r.example/v2/a/blobs/x").unwrap();
        let http = Url::parse("http://r.example/v2/a/blobs/x").unwrap();
        assert_eq!(
            redirect_target(&reply("/storage/x?sig=1"), &https)
                .unwrap()
                .as_str(),
            "https://r.example/storage/x?sig=1"
        );
        let err = redirect_target(&reply("http://s3.example/x"), &https).unwrap_err();
        assert_eq!(
            err.to_string(),
            "GET https://r.example/v2/a/blobs/x: invalid response: refusing to follow a redirect from https to plain http (http://s3.example)"
        );
        assert!(redirect_target(&reply("https://s3.example/x"), &http).is_ok());
        assert!(redirect_target(&reply("ftp://s3.example/x"), &https).is_err());
    }

    #[test]
    fn next_page_links() {
        let current = Url::parse("https://r.example/v2/a/referrers/sha256:x").unwrap();
        let reply = |link: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(http::header::LINK, HeaderValue::from_str(link).unwrap());
            Reply {
                request: "GET x".to_string(),
                status: StatusCode::OK,
                headers,
                body: Bytes::new(),
            }
        };
        let next = |link: &str| next_link(&reply(link), &current).unwrap();
        assert_eq!(
            next(r#"</v2/a/referrers/sha256:x?n=2&last=b>; rel="next""#)
                .unwrap()
                .as_str(),
            "https://r.example/v2/a/referrers/sha256:x?n=2&last=b"
        );
        assert_eq!(
            next(r#"<https://r.example/prev>; rel="prev", <https://r.example/p2>; rel=next"#)
                .unwrap()
                .as_str(),
            "https://r.example/p2"
        );
        assert_eq!(next(r#"<https://r.example/prev>; rel="prev""#), None);
    }

    #[test]
    fn tags_and_hosts() {
        assert!(valid_tag("v1.2-rc_3"));
        assert!(valid_tag("sha256-abc.sig"));
        assert!(!valid_tag("../x"));
        assert!(!valid_tag(".hidden"));
        assert!(!valid_tag(""));
        assert_eq!(
            url_host(&Url::parse("https://127.0.0.1:5443/v2/").unwrap()),
            "127.0.0.1:5443"
        );
        assert_eq!(
            url_host(&Url::parse("https://ghcr.io:443/v2/").unwrap()),
            "ghcr.io"
        );
    }

    #[test]
    fn sha512_digests_are_checked_too() {
        let d = digest_of(DigestAlgorithm::Sha512, b"abc").unwrap();
        assert!(verify_digest("GET x", &d, b"abc").is_ok());
        let err = verify_digest("GET x", &d, b"abd").unwrap_err();
        assert_eq!(err.reason(), "digest_mismatch");
        assert!(err.to_string().contains("got sha512:"), "{err}");
    }
}
