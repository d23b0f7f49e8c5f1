//! A real OCI registry for tests, and what goes around it.
//!
//! - [`TestRegistry`]: Debian's `docker-registry` (distribution 2.8) as a direct child process in
//!   its own temporary directory, on `127.0.0.1:<random port>`, killed and reaped on `Drop`.
//!   Variants: plain HTTP ([`TestRegistry::start`]), htpasswd Basic auth
//!   ([`TestRegistry::start_with_basic_auth`]), TLS with a test CA and a leaf for
//!   `127.0.0.1`/`localhost` ([`TestRegistry::start_tls`]), Bearer tokens from an in-process
//!   [`TokenServer`] ([`TestRegistry::start_with_token_auth`]); [`TestRegistry::start_with`]
//!   combines them (TLS + Basic, TLS + token...).
//! - Push helpers over the registry HTTP API, authenticated with the harness's own credentials:
//!   [`TestRegistry::push_blob`], [`TestRegistry::push_manifest`], [`TestRegistry::push_image`],
//!   [`TestRegistry::push_index`], [`TestRegistry::push_referrer`] (with the referrers tag-schema
//!   index, since distribution 2.8 has no referrers API).
//! - [`CountingProxy`]: a plain-HTTP reverse proxy that records every request it forwards
//!   (`at most N registry requests` assertions). Point the client under test at
//!   [`CountingProxy::host`]; harness pushes go to the registry directly and are not counted.
//! - [`StubRegistry`]: an in-process server answering whatever a closure says, for registries
//!   that misbehave (5xx, 401 without challenge, hanging, oversized or tampered content,
//!   refusing HEAD). Canned constructors cover the usual cases.
//! - [`TestCa`]: a CA and leaves made with rcgen (rustls refuses a self-signed end-entity
//!   certificate, so tests always use a CA plus a leaf).
//!
//! Registry, proxy and stub hosts are `127.0.0.1:<port>`, the form `ImageRef::registry()` uses,
//! so `format!("{}/test/app:v1", registry.host())` is a valid image reference.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::response::Response;
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::task::JoinHandle;

use verity::image::{Digest, ImageRef, Repository};
use verity::registry::{Credential, Keychain, RegistryConfig};

use super::require_tool;

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
pub const OCI_EMPTY: &str = "application/vnd.oci.empty.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";

/// The realm of htpasswd registries, as it appears in their `WWW-Authenticate` challenge.
pub const BASIC_REALM: &str = "test-registry";
/// The `service` of token registries (the `aud` of their tokens).
pub const TOKEN_SERVICE: &str = "test-registry";
/// The `iss` of tokens minted by [`TokenServer`].
pub const TOKEN_ISSUER: &str = "test-token-issuer";

/// How long to wait for a process or server to come up.
const STARTUP: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------------------------
// TLS material
// ---------------------------------------------------------------------------------------------

/// A test certificate authority (ECDSA P-256) that issues server leaves.
pub struct TestCa {
    cert_pem: String,
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
}

/// A leaf certificate and its key, PEM and DER.
pub struct Leaf {
    pub cert_pem: String,
    pub key_pem: String,
    pub cert_der: Vec<u8>,
    pub key_der: Vec<u8>,
}

impl TestCa {
    pub fn new(common_name: &str) -> Self {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, common_name);
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
            rcgen::KeyUsagePurpose::DigitalSignature,
        ];
        let cert = params.self_signed(&key).unwrap();
        TestCa {
            cert_pem: cert.pem(),
            issuer: rcgen::Issuer::new(params, key),
        }
    }

    /// The CA certificate, PEM: what a client must trust.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// A server leaf for `names` (IP addresses become IP SANs, the rest DNS SANs).
    pub fn leaf(&self, names: &[&str]) -> Leaf {
        let key = rcgen::KeyPair::generate().unwrap();
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = rcgen::CertificateParams::new(names.clone()).unwrap();
        params.distinguished_name.push(
            rcgen::DnType::CommonName,
            names.first().cloned().unwrap_or_default(),
        );
        params.is_ca = rcgen::IsCa::ExplicitNoCa;
        params.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Leaf {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            cert_der: cert.der().to_vec(),
            key_der: key.serialize_der(),
        }
    }
}

impl Leaf {
    /// A rustls server configuration serving this leaf (HTTP/2 and HTTP/1.1 by ALPN).
    pub fn server_config(&self) -> Arc<rustls::ServerConfig> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![rustls_pki_types::CertificateDer::from(
                    self.cert_der.clone(),
                )],
                rustls_pki_types::PrivateKeyDer::Pkcs8(rustls_pki_types::PrivatePkcs8KeyDer::from(
                    self.key_der.clone(),
                )),
            )
            .unwrap();
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Arc::new(config)
    }
}

// ---------------------------------------------------------------------------------------------
// In-process HTTP servers
// ---------------------------------------------------------------------------------------------

/// A task serving `router` on 127.0.0.1:0, over TLS when `tls` is given. Aborted on drop.
pub(crate) struct ServerTask {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl ServerTask {
    async fn spawn(router: Router, tls: Option<Arc<rustls::ServerConfig>>) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        Self::spawn_on(listener, router, tls)
    }

    /// Serves `router` on `listener` (for a server that must come up on a known address).
    pub(crate) fn spawn_on(
        listener: tokio::net::TcpListener,
        router: Router,
        tls: Option<Arc<rustls::ServerConfig>>,
    ) -> Self {
        let addr = listener.local_addr().unwrap();
        let task = match tls {
            None => tokio::spawn(async move {
                let _ = axum::serve(listener, router).await;
            }),
            Some(config) => tokio::spawn(async move {
                let acceptor = tokio_rustls::TlsAcceptor::from(config);
                loop {
                    let Ok((tcp, _)) = listener.accept().await else {
                        continue;
                    };
                    let acceptor = acceptor.clone();
                    let router = router.clone();
                    tokio::spawn(async move {
                        // Handshake failures are what some tests provoke: ignore them.
                        let Ok(stream) = acceptor.accept(tcp).await else {
                            return;
                        };
                        let service = hyper_util::service::TowerToHyperService::new(router);
                        let _ = hyper_util::server::conn::auto::Builder::new(
                            hyper_util::rt::TokioExecutor::new(),
                        )
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                    });
                }
            }),
        };
        ServerTask { addr, task }
    }

    pub(crate) fn host(&self) -> String {
        self.addr.to_string()
    }
}

impl Drop for ServerTask {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

// ---------------------------------------------------------------------------------------------
// Token server
// ---------------------------------------------------------------------------------------------

/// Who may get tokens from a [`TokenServer`], and for how long they live.
#[derive(Clone, Debug)]
pub struct TokenAuth {
    pub username: String,
    pub password: String,
    /// `expires_in` of issued tokens, in seconds (default 300).
    pub expires_in: u64,
    /// Anonymous clients get `pull` on repositories under this prefix (default `public/`).
    pub anonymous_pull_prefix: Option<String>,
    /// An OAuth2 refresh token accepted by `POST /token` (`grant_type=refresh_token`) on
    /// behalf of `username`.
    pub identity_token: Option<String>,
    /// When set, the authenticated user is granted access only to repositories under this
    /// prefix (others get a token without access, as real token servers do).
    pub user_prefix: Option<String>,
}

impl TokenAuth {
    pub fn new(username: &str, password: &str) -> Self {
        TokenAuth {
            username: username.to_string(),
            password: password.to_string(),
            expires_in: 300,
            anonymous_pull_prefix: Some("public/".to_string()),
            identity_token: None,
            user_prefix: None,
        }
    }

    pub fn user_prefix(mut self, prefix: &str) -> Self {
        self.user_prefix = Some(prefix.to_string());
        self
    }

    pub fn expires_in(mut self, seconds: u64) -> Self {
        self.expires_in = seconds;
        self
    }

    pub fn identity_token(mut self, token: &str) -> Self {
        self.identity_token = Some(token.to_string());
        self
    }
}

/// One request the token server answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenRequest {
    /// `GET` (docker token spec) or `POST` (OAuth2).
    pub method: String,
    pub service: Option<String>,
    pub scopes: Vec<String>,
    /// The authenticated user, `None` for anonymous requests.
    pub account: Option<String>,
    /// What the response was: 200 with a token, or 401 for bad credentials.
    pub status: u16,
}

struct TokenState {
    key: aws_lc_rs::signature::EcdsaKeyPair,
    kid: String,
    auth: TokenAuth,
    requests: Mutex<Vec<TokenRequest>>,
    serial: AtomicU64,
}

/// An in-process token issuer for distribution's `auth.token`: ES256 JWTs signed by a key whose
/// self-signed certificate is the registry's `rootcertbundle`, with the libtrust key id as `kid`.
pub struct TokenServer {
    server: ServerTask,
    scheme: &'static str,
    state: Arc<TokenState>,
    cert_pem: String,
}

impl TokenServer {
    /// Starts the issuer on 127.0.0.1:0, over TLS with `tls` when given.
    pub async fn start(auth: TokenAuth, tls: Option<&Leaf>) -> Self {
        let rcgen_key = rcgen::KeyPair::generate().unwrap();
        let key = aws_lc_rs::signature::EcdsaKeyPair::from_pkcs8(
            &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            &rcgen_key.serialize_der(),
        )
        .unwrap();
        let spki = rcgen::PublicKeyData::subject_public_key_info(&rcgen_key);
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "token-issuer");
        let cert_pem = params.self_signed(&rcgen_key).unwrap().pem();
        let state = Arc::new(TokenState {
            key,
            kid: libtrust_key_id(&spki),
            auth,
            requests: Mutex::new(Vec::new()),
            serial: AtomicU64::new(0),
        });
        let handler_state = state.clone();
        let router = Router::new().fallback(move |request: Request| {
            let state = handler_state.clone();
            async move { token_endpoint(&state, request).await }
        });
        let server = ServerTask::spawn(router, tls.map(Leaf::server_config)).await;
        TokenServer {
            server,
            scheme: if tls.is_some() { "https" } else { "http" },
            state,
            cert_pem,
        }
    }

    pub fn host(&self) -> String {
        self.server.host()
    }

    /// The `realm` to configure in the registry: `http(s)://127.0.0.1:PORT/token`.
    pub fn realm(&self) -> String {
        format!("{}://{}/token", self.scheme, self.server.host())
    }

    /// The PEM certificate of the signing key (the registry's `rootcertbundle`).
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The libtrust key id in the `kid` header of every token.
    pub fn kid(&self) -> &str {
        &self.state.kid
    }

    pub fn requests(&self) -> Vec<TokenRequest> {
        lock(&self.state.requests).clone()
    }

    /// How many token requests were made (whatever their outcome).
    pub fn request_count(&self) -> usize {
        lock(&self.state.requests).len()
    }

    /// Mints a token directly (not counted): for the harness's own pushes.
    pub fn mint(&self, account: &str, access: &[(String, Vec<String>)]) -> String {
        self.state.mint(account, access)
    }
}

impl TokenState {
    fn mint(&self, account: &str, access: &[(String, Vec<String>)]) -> String {
        let now = unix_now();
        let header = json!({"typ": "JWT", "alg": "ES256", "kid": self.kid});
        let claims = json!({
            "iss": TOKEN_ISSUER,
            "sub": account,
            "aud": TOKEN_SERVICE,
            "exp": now + self.auth.expires_in.max(1),
            "nbf": now.saturating_sub(5),
            "iat": now,
            "jti": format!("jti-{}", self.serial.fetch_add(1, Ordering::Relaxed)),
            "access": access
                .iter()
                .map(|(name, actions)| json!({"type": "repository", "name": name, "actions": actions}))
                .collect::<Vec<_>>(),
        });
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let rng = aws_lc_rs::rand::SystemRandom::new();
        // FIXED signing: the raw r‖s (64 bytes) that JWS ES256 wants, not DER.
        let signature = self.key.sign(&rng, signing_input.as_bytes()).unwrap();
        format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(signature.as_ref())
        )
    }

    /// What `account` (None: anonymous) may do with the requested scopes.
    fn grant(&self, account: Option<&str>, scopes: &[String]) -> Vec<(String, Vec<String>)> {
        let mut granted = Vec::new();
        for scope in scopes {
            let Some((kind, rest)) = scope.split_once(':') else {
                continue;
            };
            let Some((name, actions)) = rest.rsplit_once(':') else {
                continue;
            };
            if kind != "repository" || name.is_empty() {
                continue;
            }
            let actions: Vec<String> = actions
                .split(',')
                .filter(|action| match account {
                    Some(_) => {
                        matches!(*action, "pull" | "push" | "delete" | "*")
                            && self
                                .auth
                                .user_prefix
                                .as_deref()
                                .is_none_or(|prefix| name.starts_with(prefix))
                    }
                    None => {
                        *action == "pull"
                            && self
                                .auth
                                .anonymous_pull_prefix
                                .as_deref()
                                .is_some_and(|prefix| name.starts_with(prefix))
                    }
                })
                .map(str::to_string)
                .collect();
            if !actions.is_empty() {
                granted.push((name.to_string(), actions));
            }
        }
        granted
    }
}

async fn token_endpoint(state: &TokenState, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, 64 * 1024)
        .await
        .unwrap_or_default();
    let mut params: Vec<(String, String)> = query_pairs(parts.uri.query().unwrap_or_default());
    if parts.method == Method::POST {
        params.extend(query_pairs(&String::from_utf8_lossy(&body)));
    }
    let param = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let scopes: Vec<String> = params
        .iter()
        .filter(|(k, _)| k == "scope")
        .flat_map(|(_, v)| v.split(' ').map(str::to_string).collect::<Vec<_>>())
        .filter(|s| !s.is_empty())
        .collect();
    let auth = &state.auth;
    // None: anonymous; Some(Ok(user)): authenticated; Some(Err(())): bad credentials.
    let account: Option<Result<String, ()>> = if parts.method == Method::POST {
        match param("grant_type").as_deref() {
            Some("refresh_token") => Some(
                (auth.identity_token.is_some() && param("refresh_token") == auth.identity_token)
                    .then(|| auth.username.clone())
                    .ok_or(()),
            ),
            Some("password") => Some(
                (param("username").as_deref() == Some(&auth.username)
                    && param("password").as_deref() == Some(&auth.password))
                .then(|| auth.username.clone())
                .ok_or(()),
            ),
            _ => Some(Err(())),
        }
    } else {
        parts.headers.get(http::header::AUTHORIZATION).map(|value| {
            let decoded = value
                .to_str()
                .ok()
                .and_then(|v| v.strip_prefix("Basic "))
                .and_then(|b| STANDARD.decode(b).ok())
                .and_then(|d| String::from_utf8(d).ok())
                .unwrap_or_default();
            match decoded.split_once(':') {
                Some((user, pass)) if user == auth.username && pass == auth.password => {
                    Ok(user.to_string())
                }
                _ => Err(()),
            }
        })
    };
    let record = |account: Option<String>, status: u16| {
        lock(&state.requests).push(TokenRequest {
            method: parts.method.to_string(),
            service: param("service"),
            scopes: scopes.clone(),
            account,
            status,
        });
    };
    let account = match account {
        Some(Err(())) => {
            record(None, 401);
            return json_response(
                StatusCode::UNAUTHORIZED,
                &json!({"errors": [{"code": "UNAUTHORIZED", "message": "invalid username, password or token"}]}),
            );
        }
        Some(Ok(user)) => Some(user),
        None => None,
    };
    record(account.clone(), 200);
    let access = state.grant(account.as_deref(), &scopes);
    let token = state.mint(account.as_deref().unwrap_or(""), &access);
    json_response(
        StatusCode::OK,
        &json!({
            "token": token,
            "access_token": token,
            "expires_in": auth.expires_in,
            "issued_at": "2024-01-01T00:00:00Z",
        }),
    )
}

fn query_pairs(query: &str) -> Vec<(String, String)> {
    reqwest::Url::parse(&format!("http://query.invalid/?{query}"))
        .map(|url| url.query_pairs().into_owned().collect())
        .unwrap_or_default()
}

fn json_response(status: StatusCode, value: &Value) -> Response {
    Response::builder()
        .status(status)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Body::from(value.to_string()))
        .unwrap()
}

/// The libtrust key id distribution matches a JWT `kid` against: sha256 of the SPKI DER, first
/// 30 bytes, base32 (RFC 4648, no padding), in groups of 4 joined by ':'.
pub fn libtrust_key_id(spki_der: &[u8]) -> String {
    use sha2::Digest as _;
    let hash = sha2::Sha256::digest(spki_der);
    let encoded = base32(&hash[..30]);
    encoded
        .as_bytes()
        .chunks(4)
        .map(|chunk| String::from_utf8_lossy(chunk).into_owned())
        .collect::<Vec<_>>()
        .join(":")
}

fn base32(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::new();
    let mut buffer: u32 = 0;
    let mut bits = 0;
    for &byte in bytes {
        buffer = (buffer << 8) | u32::from(byte);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(ALPHABET[((buffer >> bits) & 31) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(ALPHABET[((buffer << (5 - bits)) & 31) as usize] as char);
    }
    out
}

// ---------------------------------------------------------------------------------------------
// The registry process
// ---------------------------------------------------------------------------------------------

/// `docker-registry serve` as a direct child; killed and reaped on drop.
struct RegistryProcess {
    child: Child,
    log: PathBuf,
}

impl RegistryProcess {
    async fn start(dir: &Path, config: &Path) -> (Self, String) {
        let binary = require_tool("docker-registry", "docker-registry");
        let log = dir.join("registry.log");
        let mut child = Command::new(binary)
            .arg("serve")
            .arg(config)
            .current_dir(dir)
            .env("REGISTRY_HTTP_ADDR", "127.0.0.1:0")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<String>();
        let log_path = log.clone();
        // Drains stderr into the log file for the life of the process, so the child never
        // blocks on a full pipe, and reports the address from the "listening on" line.
        std::thread::spawn(move || {
            let mut file = std::fs::File::create(&log_path).unwrap();
            let mut tx = Some(tx);
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let _ = writeln!(file, "{line}");
                if let Some(rest) = line.split("listening on ").nth(1) {
                    let addr: String = rest
                        .chars()
                        .take_while(|c| c.is_ascii_digit() || *c == '.' || *c == ':')
                        .collect();
                    if let Some(tx) = tx.take() {
                        let _ = tx.send(addr);
                    }
                }
            }
        });
        let mut process = RegistryProcess { child, log };
        let addr = match tokio::time::timeout(STARTUP, rx).await {
            Ok(Ok(addr)) if !addr.is_empty() => addr,
            outcome => {
                let status = process.child.try_wait().ok().flatten();
                panic!(
                    "docker-registry did not report its address ({}; exit status {status:?}); log:\n{}",
                    if outcome.is_err() {
                        "timed out"
                    } else {
                        "stderr closed"
                    },
                    process.log_text()
                );
            }
        };
        (process, addr)
    }

    fn log_text(&mut self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for RegistryProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// How a [`TestRegistry`] authenticates clients.
#[derive(Clone, Debug, Default)]
pub enum RegistryAuth {
    #[default]
    None,
    /// htpasswd (bcrypt) with one user.
    Basic { username: String, password: String },
    /// distribution `auth.token` with a [`TokenServer`].
    Token(TokenAuth),
}

/// What kind of [`TestRegistry`] to start.
#[derive(Clone, Debug, Default)]
pub struct RegistryOptions {
    /// Serve HTTPS with a leaf from a fresh [`TestCa`] (the token server, if any, too).
    pub tls: bool,
    pub auth: RegistryAuth,
}

/// A real `docker-registry` on 127.0.0.1 with a random port.
pub struct TestRegistry {
    // Field order is drop order: the process dies before its directory goes.
    process: RegistryProcess,
    token_server: Option<TokenServer>,
    host: String,
    scheme: &'static str,
    auth: RegistryAuth,
    ca: Option<TestCa>,
    http: reqwest::Client,
    dir: TempDir,
}

impl TestRegistry {
    /// Plain HTTP, no authentication.
    pub async fn start() -> Self {
        Self::start_with(RegistryOptions::default()).await
    }

    /// Plain HTTP with htpasswd Basic auth for one user.
    pub async fn start_with_basic_auth(username: &str, password: &str) -> Self {
        Self::start_with(RegistryOptions {
            tls: false,
            auth: RegistryAuth::Basic {
                username: username.to_string(),
                password: password.to_string(),
            },
        })
        .await
    }

    /// HTTPS with a leaf for 127.0.0.1 and localhost issued by a fresh test CA
    /// ([`TestRegistry::ca_pem`]); no authentication.
    pub async fn start_tls() -> Self {
        Self::start_with(RegistryOptions {
            tls: true,
            auth: RegistryAuth::None,
        })
        .await
    }

    /// Plain HTTP with Bearer tokens from an in-process [`TokenServer`].
    pub async fn start_with_token_auth(auth: TokenAuth) -> Self {
        Self::start_with(RegistryOptions {
            tls: false,
            auth: RegistryAuth::Token(auth),
        })
        .await
    }

    pub async fn start_with(options: RegistryOptions) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("verity-registry-")
            .tempdir()
            .unwrap();
        let path = dir.path();
        let mut config = format!(
            "version: 0.1\n\
             log:\n  level: info\n  accesslog:\n    disabled: true\n\
             storage:\n  filesystem:\n    rootdirectory: {data}\n  delete:\n    enabled: true\n\
             http:\n  addr: 127.0.0.1:0\n  secret: test-only\n",
            data = path.join("data").display()
        );
        let ca = options.tls.then(|| TestCa::new("verity test registry CA"));
        let leaf = ca.as_ref().map(|ca| ca.leaf(&["127.0.0.1", "localhost"]));
        if let Some(leaf) = &leaf {
            std::fs::write(path.join("leaf.crt"), &leaf.cert_pem).unwrap();
            std::fs::write(path.join("leaf.key"), &leaf.key_pem).unwrap();
            config.push_str(&format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                path.join("leaf.crt").display(),
                path.join("leaf.key").display()
            ));
        }
        let mut token_server = None;
        match &options.auth {
            RegistryAuth::None => {}
            RegistryAuth::Basic { username, password } => {
                let htpasswd = require_tool("htpasswd", "apache2-utils");
                let output = Command::new(htpasswd)
                    .args(["-Bbn", username, password])
                    .output()
                    .unwrap();
                assert!(output.status.success(), "htpasswd failed: {output:?}");
                std::fs::write(path.join("htpasswd"), &output.stdout).unwrap();
                config.push_str(&format!(
                    "auth:\n  htpasswd:\n    realm: {BASIC_REALM}\n    path: {}\n",
                    path.join("htpasswd").display()
                ));
            }
            RegistryAuth::Token(auth) => {
                let server = TokenServer::start(auth.clone(), leaf.as_ref()).await;
                std::fs::write(path.join("token.crt"), server.cert_pem()).unwrap();
                config.push_str(&format!(
                    "auth:\n  token:\n    realm: {}\n    service: {TOKEN_SERVICE}\n    issuer: {TOKEN_ISSUER}\n    rootcertbundle: {}\n",
                    server.realm(),
                    path.join("token.crt").display()
                ));
                token_server = Some(server);
            }
        }
        let config_path = path.join("config.yml");
        std::fs::write(&config_path, &config).unwrap();

        let (process, host) = RegistryProcess::start(path, &config_path).await;
        let mut http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none());
        if let Some(ca) = &ca {
            http = http.tls_certs_only(
                reqwest::Certificate::from_pem_bundle(ca.cert_pem().as_bytes()).unwrap(),
            );
        }
        let registry = TestRegistry {
            process,
            token_server,
            host,
            scheme: if options.tls { "https" } else { "http" },
            auth: options.auth,
            ca,
            http: http.build().unwrap(),
            dir,
        };
        let url = format!("{}/v2/", registry.base_url());
        let client = registry.http.clone();
        super::poll_until(STARTUP, "the registry to answer /v2/", || {
            let (client, url) = (client.clone(), url.clone());
            async move {
                let response = client.get(&url).send().await.ok()?;
                matches!(response.status().as_u16(), 200 | 401).then_some(())
            }
        })
        .await;
        registry
    }

    /// `127.0.0.1:PORT`: the registry part of image references.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// `http://127.0.0.1:PORT` or `https://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        format!("{}://{}", self.scheme, self.host)
    }

    pub fn is_tls(&self) -> bool {
        self.scheme == "https"
    }

    /// The CA certificate (PEM) that issued the registry's leaf, for TLS registries.
    pub fn ca_pem(&self) -> Option<&str> {
        self.ca.as_ref().map(TestCa::cert_pem)
    }

    /// The CA, to issue more leaves (other servers the same clients should trust).
    pub fn ca(&self) -> Option<&TestCa> {
        self.ca.as_ref()
    }

    pub fn token_server(&self) -> Option<&TokenServer> {
        self.token_server.as_ref()
    }

    /// The username and password the registry (or its token server) accepts.
    pub fn credentials(&self) -> Option<(&str, &str)> {
        match &self.auth {
            RegistryAuth::None => None,
            RegistryAuth::Basic { username, password } => Some((username, password)),
            RegistryAuth::Token(auth) => Some((&auth.username, &auth.password)),
        }
    }

    /// The registry's stderr so far (logrus text), for failure messages.
    pub fn log(&mut self) -> String {
        self.process.log_text()
    }

    /// The temporary directory of this registry (config, storage, certificates, log).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// `HOST/repo:tag` parsed.
    pub fn image(&self, repo: &str, tag: &str) -> ImageRef {
        ImageRef::parse(&format!("{}/{repo}:{tag}", self.host)).unwrap()
    }

    /// `HOST/repo` parsed.
    pub fn repository(&self, repo: &str) -> Repository {
        Repository::parse(&format!("{}/{repo}", self.host)).unwrap()
    }

    /// A client configuration that reaches this registry: insecure (plain HTTP) or trusting its
    /// CA; a generous timeout for slow CI machines.
    pub fn client_config(&self) -> RegistryConfig {
        let mut config = RegistryConfig {
            request_timeout: Duration::from_secs(15),
            ..RegistryConfig::default()
        };
        match self.ca_pem() {
            Some(pem) => {
                config
                    .registry_cas
                    .push((self.host.clone(), pem.as_bytes().to_vec()));
                if let Some(token_server) = &self.token_server {
                    config
                        .registry_cas
                        .push((token_server.host(), pem.as_bytes().to_vec()));
                }
            }
            None => config.insecure_registries.push(self.host.clone()),
        }
        config
    }

    /// A keychain with the harness credentials for [`TestRegistry::host`] (anonymous if none).
    pub fn keychain(&self) -> Keychain {
        match self.credentials() {
            None => Keychain::anonymous(),
            Some((username, password)) => Keychain::anonymous()
                .with_credential(
                    &self.host,
                    Credential::Basic {
                        username: username.to_string(),
                        password: password.to_string(),
                    },
                )
                .unwrap(),
        }
    }

    /// A `kubernetes.io/dockerconfigjson` document with the harness credentials.
    pub fn docker_config_json(&self) -> Vec<u8> {
        let mut auths = serde_json::Map::new();
        if let Some((username, password)) = self.credentials() {
            auths.insert(
                self.host.clone(),
                json!({"auth": STANDARD.encode(format!("{username}:{password}"))}),
            );
        }
        json!({"auths": auths}).to_string().into_bytes()
    }

    /// A counting proxy in front of this registry.
    pub async fn counting_proxy(&self) -> CountingProxy {
        CountingProxy::start(&self.base_url(), self.ca_pem()).await
    }

    // -- pushing ------------------------------------------------------------------------------

    /// The Authorization header for harness requests on `repo` (pull, push and delete).
    fn authorization(&self, repo: &str) -> Option<String> {
        match &self.auth {
            RegistryAuth::None => None,
            RegistryAuth::Basic { username, password } => Some(format!(
                "Basic {}",
                STANDARD.encode(format!("{username}:{password}"))
            )),
            RegistryAuth::Token(auth) => {
                let server = self.token_server.as_ref()?;
                let actions = ["pull", "push", "delete"].map(str::to_string).to_vec();
                Some(format!(
                    "Bearer {}",
                    server.mint(&auth.username, &[(repo.to_string(), actions)])
                ))
            }
        }
    }

    fn request(&self, method: Method, repo: &str, url: &str) -> reqwest::RequestBuilder {
        let builder = self.http.request(method, url);
        match self.authorization(repo) {
            Some(value) => builder.header(http::header::AUTHORIZATION, value),
            None => builder,
        }
    }

    /// Uploads a blob (POST then PUT with the digest) and returns its digest.
    pub async fn push_blob(&self, repo: &str, bytes: &[u8]) -> Digest {
        let digest = Digest::sha256_of(bytes);
        let start = self
            .request(
                Method::POST,
                repo,
                &format!("{}/v2/{repo}/blobs/uploads/", self.base_url()),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(
            start.status(),
            StatusCode::ACCEPTED,
            "starting a blob upload to {repo}: {}",
            start.text().await.unwrap_or_default()
        );
        let location = start
            .headers()
            .get(http::header::LOCATION)
            .unwrap()
            .to_str()
            .unwrap()
            .to_string();
        let mut url = reqwest::Url::parse(&self.base_url())
            .unwrap()
            .join(&location)
            .unwrap();
        url.query_pairs_mut()
            .append_pair("digest", &digest.to_string());
        let put = self
            .request(Method::PUT, repo, url.as_str())
            .header(http::header::CONTENT_TYPE, "application/octet-stream")
            .body(bytes.to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(
            put.status(),
            StatusCode::CREATED,
            "finishing a blob upload to {repo}: {}",
            put.text().await.unwrap_or_default()
        );
        digest
    }

    /// PUTs a manifest under `reference` (tag or digest) and returns its digest, checked against
    /// the registry's `Docker-Content-Digest`.
    pub async fn push_manifest(
        &self,
        repo: &str,
        reference: &str,
        media_type: &str,
        bytes: &[u8],
    ) -> Digest {
        let digest = Digest::sha256_of(bytes);
        let response = self
            .request(
                Method::PUT,
                repo,
                &format!("{}/v2/{repo}/manifests/{reference}", self.base_url()),
            )
            .header(http::header::CONTENT_TYPE, media_type)
            .body(bytes.to_vec())
            .send()
            .await
            .unwrap();
        let status = response.status();
        let announced = response
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        assert_eq!(
            status,
            StatusCode::CREATED,
            "pushing manifest {repo}:{reference}: {}",
            response.text().await.unwrap_or_default()
        );
        assert_eq!(announced, Some(digest.to_string()));
        digest
    }

    /// A small valid OCI image (config + one uncompressed tar layer holding `seed.txt`) tagged
    /// `tag`; different seeds give different digests. Returns the manifest digest.
    pub async fn push_image(&self, repo: &str, tag: &str, seed: &str) -> Digest {
        self.push_image_for(repo, tag, seed, "amd64").await
    }

    /// [`TestRegistry::push_image`] for one architecture (linux).
    pub async fn push_image_for(&self, repo: &str, tag: &str, seed: &str, arch: &str) -> Digest {
        let layer = tar_with_file("seed.txt", seed.as_bytes());
        let config = json!({
            "architecture": arch,
            "os": "linux",
            "config": {"Labels": {"dev.verity.test.seed": seed}},
            "rootfs": {"type": "layers", "diff_ids": [Digest::sha256_of(&layer).to_string()]},
        })
        .to_string();
        let config_digest = self.push_blob(repo, config.as_bytes()).await;
        let layer_digest = self.push_blob(repo, &layer).await;
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": config_digest.to_string(), "size": config.len()},
            "layers": [{"mediaType": OCI_LAYER_TAR, "digest": layer_digest.to_string(), "size": layer.len()}],
        })
        .to_string();
        self.push_manifest(repo, tag, OCI_MANIFEST, manifest.as_bytes())
            .await
    }

    /// An OCI index over `manifests` (already in `repo`), tagged `tag`. Platforms are read from
    /// each image's config (architecture, os). Returns the index digest.
    pub async fn push_index(&self, repo: &str, tag: &str, manifests: &[Digest]) -> Digest {
        let mut entries = Vec::new();
        for digest in manifests {
            let (media_type, bytes) = self
                .fetch_manifest(repo, &digest.to_string())
                .await
                .unwrap_or_else(|| panic!("push_index: {digest} is not in {repo}"));
            let manifest: Value = serde_json::from_slice(&bytes).unwrap();
            let config_digest =
                Digest::parse(manifest["config"]["digest"].as_str().unwrap()).unwrap();
            let config: Value =
                serde_json::from_slice(&self.fetch_blob(repo, &config_digest).await.unwrap())
                    .unwrap();
            entries.push(json!({
                "mediaType": media_type,
                "digest": digest.to_string(),
                "size": bytes.len(),
                "platform": {"architecture": config["architecture"], "os": config["os"]},
            }));
        }
        let index =
            json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}).to_string();
        self.push_manifest(repo, tag, OCI_INDEX, index.as_bytes())
            .await
    }

    /// An OCI 1.1 artifact referring to `subject`: a manifest with `subject` and `artifactType`,
    /// the empty config `{}` and one layer, pushed by digest and listed (with its
    /// `artifactType`) in the referrers tag-schema index `sha256-<hex>` (created or appended to).
    /// Returns the artifact manifest digest.
    pub async fn push_referrer(
        &self,
        repo: &str,
        subject: &Digest,
        artifact_type: &str,
        layer_media_type: &str,
        layer: &[u8],
    ) -> Digest {
        let (manifest, digest) = self
            .push_artifact_manifest(repo, subject, artifact_type, layer_media_type, layer)
            .await;
        self.append_to_referrers_tag(
            repo,
            subject,
            json!({
                "mediaType": OCI_MANIFEST,
                "digest": digest.to_string(),
                "size": manifest.len(),
                "artifactType": artifact_type,
            }),
        )
        .await;
        digest
    }

    /// The artifact manifest of [`TestRegistry::push_referrer`] without touching the
    /// referrers tag; returns its bytes and digest.
    pub async fn push_artifact_manifest(
        &self,
        repo: &str,
        subject: &Digest,
        artifact_type: &str,
        layer_media_type: &str,
        layer: &[u8],
    ) -> (Vec<u8>, Digest) {
        let config_digest = self.push_blob(repo, b"{}").await;
        let layer_digest = self.push_blob(repo, layer).await;
        let (subject_media_type, subject_size) = self
            .fetch_manifest(repo, &subject.to_string())
            .await
            .map_or((OCI_MANIFEST.to_string(), 0), |(t, b)| (t, b.len()));
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": artifact_type,
            "config": {"mediaType": OCI_EMPTY, "digest": config_digest.to_string(), "size": 2},
            "layers": [{"mediaType": layer_media_type, "digest": layer_digest.to_string(), "size": layer.len()}],
            "subject": {"mediaType": subject_media_type, "digest": subject.to_string(), "size": subject_size},
        })
        .to_string()
        .into_bytes();
        let digest = Digest::sha256_of(&manifest);
        self.push_manifest(repo, &digest.to_string(), OCI_MANIFEST, &manifest)
            .await;
        (manifest, digest)
    }

    /// Adds `descriptor` to the referrers tag-schema index of `subject` (tag `sha256-<hex>`),
    /// creating the index if needed; a descriptor with the same digest is replaced.
    pub async fn append_to_referrers_tag(&self, repo: &str, subject: &Digest, descriptor: Value) {
        let tag = subject.tag_stem();
        let mut index = match self.fetch_manifest(repo, &tag).await {
            Some((_, bytes)) => serde_json::from_slice::<Value>(&bytes).unwrap(),
            None => json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}),
        };
        let manifests = index["manifests"].as_array_mut().unwrap();
        manifests.retain(|m| m["digest"] != descriptor["digest"]);
        manifests.push(descriptor);
        self.push_manifest(repo, &tag, OCI_INDEX, index.to_string().as_bytes())
            .await;
    }

    /// The media type and exact bytes of a manifest, `None` if the registry says 404.
    pub async fn fetch_manifest(&self, repo: &str, reference: &str) -> Option<(String, Vec<u8>)> {
        let response = self
            .request(
                Method::GET,
                repo,
                &format!("{}/v2/{repo}/manifests/{reference}", self.base_url()),
            )
            .header(
                http::header::ACCEPT,
                format!("{OCI_MANIFEST}, {OCI_INDEX}, {DOCKER_MANIFEST}"),
            )
            .send()
            .await
            .unwrap();
        if response.status() == StatusCode::NOT_FOUND {
            return None;
        }
        assert_eq!(
            response.status(),
            StatusCode::OK,
            "GET manifest {repo}:{reference}"
        );
        let media_type = response
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        Some((media_type, response.bytes().await.unwrap().to_vec()))
    }

    /// A blob's bytes, `None` on 404.
    pub async fn fetch_blob(&self, repo: &str, digest: &Digest) -> Option<Vec<u8>> {
        let response = self
            .request(
                Method::GET,
                repo,
                &format!("{}/v2/{repo}/blobs/{digest}", self.base_url()),
            )
            .send()
            .await
            .unwrap();
        if response.status() == StatusCode::NOT_FOUND {
            return None;
        }
        assert_eq!(
            response.status(),
            StatusCode::OK,
            "GET blob {repo}@{digest}"
        );
        Some(response.bytes().await.unwrap().to_vec())
    }

    /// Deletes a manifest by digest (signature removal).
    pub async fn delete_manifest(&self, repo: &str, digest: &Digest) {
        let response = self
            .request(
                Method::DELETE,
                repo,
                &format!("{}/v2/{repo}/manifests/{digest}", self.base_url()),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            StatusCode::ACCEPTED,
            "DELETE {repo}@{digest}"
        );
    }
}

/// A tar archive holding one regular file (ustar, mtime 0, root-owned): a valid image layer.
pub fn tar_with_file(name: &str, content: &[u8]) -> Vec<u8> {
    assert!(name.len() < 100, "tar_with_file: name too long");
    let mut header = [0u8; 512];
    header[..name.len()].copy_from_slice(name.as_bytes());
    let octal = |field: &mut [u8], value: u64| {
        let text = format!("{:0width$o}\0", value, width = field.len() - 1);
        field.copy_from_slice(text.as_bytes());
    };
    octal(&mut header[100..108], 0o644);
    octal(&mut header[108..116], 0);
    octal(&mut header[116..124], 0);
    octal(&mut header[124..136], content.len() as u64);
    octal(&mut header[136..148], 0);
    header[148..156].fill(b' ');
    header[156] = b'0';
    header[257..263].copy_from_slice(b"ustar\0");
    header[263..265].copy_from_slice(b"00");
    let checksum: u32 = header.iter().map(|b| u32::from(*b)).sum();
    header[148..156].copy_from_slice(format!("{checksum:06o}\0 ").as_bytes());
    let mut tar = header.to_vec();
    tar.extend_from_slice(content);
    tar.resize(tar.len().div_ceil(512) * 512, 0);
    tar.extend_from_slice(&[0u8; 1024]);
    tar
}

// ---------------------------------------------------------------------------------------------
// Counting proxy
// ---------------------------------------------------------------------------------------------

/// One request seen by a [`CountingProxy`] or a [`StubRegistry`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordedRequest {
    pub method: String,
    /// Path and query, e.g. `/v2/test/app/manifests/v1`.
    pub path: String,
    /// Whether an `Authorization` header was sent.
    pub authorized: bool,
    /// The `Authorization` header itself (test credentials only; never print real ones).
    pub authorization: Option<String>,
}

impl RecordedRequest {
    /// `"HEAD /v2/test/app/manifests/v1"`.
    pub fn line(&self) -> String {
        format!("{} {}", self.method, self.path)
    }
}

/// A plain-HTTP reverse proxy that forwards every request to an upstream registry and records
/// it. Bodies are buffered (fine for test-sized content). `X-Forwarded-Host`/`-Proto` make the
/// registry build its absolute URLs with the proxy's address.
pub struct CountingProxy {
    server: ServerTask,
    requests: Arc<Mutex<Vec<RecordedRequest>>>,
}

const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

impl CountingProxy {
    /// Forwards to `upstream` (`http(s)://host:port`), trusting `ca_pem` for HTTPS upstreams.
    pub async fn start(upstream: &str, ca_pem: Option<&str>) -> Self {
        let mut client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none());
        if let Some(pem) = ca_pem {
            client = client
                .tls_certs_only(reqwest::Certificate::from_pem_bundle(pem.as_bytes()).unwrap());
        }
        let client = client.build().unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let recorded = requests.clone();
        let upstream = upstream.trim_end_matches('/').to_string();
        let router = Router::new().fallback(move |request: Request| {
            let (client, recorded, upstream) = (client.clone(), recorded.clone(), upstream.clone());
            async move { forward(&client, &recorded, &upstream, request).await }
        });
        CountingProxy {
            server: ServerTask::spawn(router, None).await,
            requests,
        }
    }

    /// `127.0.0.1:PORT`: use it as the registry of image references.
    pub fn host(&self) -> String {
        self.server.host()
    }

    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.requests).clone()
    }

    pub fn request_count(&self) -> usize {
        lock(&self.requests).len()
    }

    /// `"METHOD /path"` of every request, in order.
    pub fn request_lines(&self) -> Vec<String> {
        self.requests().iter().map(RecordedRequest::line).collect()
    }

    /// Forgets the requests seen so far.
    pub fn reset(&self) {
        lock(&self.requests).clear();
    }
}

async fn forward(
    client: &reqwest::Client,
    recorded: &Mutex<Vec<RecordedRequest>>,
    upstream: &str,
    request: Request,
) -> Response {
    let (parts, body) = request.into_parts();
    let path = parts
        .uri
        .path_and_query()
        .map_or("/".to_string(), |p| p.to_string());
    lock(recorded).push(RecordedRequest {
        method: parts.method.to_string(),
        path: path.clone(),
        authorized: parts.headers.contains_key(http::header::AUTHORIZATION),
        authorization: header_text(&parts.headers, http::header::AUTHORIZATION),
    });
    let proxy_host = parts
        .headers
        .get(http::header::HOST)
        .cloned()
        .unwrap_or_else(|| HeaderValue::from_static("localhost"));
    let body = axum::body::to_bytes(body, 256 * 1024 * 1024)
        .await
        .unwrap_or_default();
    let mut headers = HeaderMap::new();
    for (name, value) in &parts.headers {
        if name != http::header::HOST
            && name != http::header::CONTENT_LENGTH
            && !HOP_BY_HOP.contains(&name.as_str())
        {
            headers.append(name, value.clone());
        }
    }
    headers.insert("x-forwarded-host", proxy_host);
    headers.insert("x-forwarded-proto", HeaderValue::from_static("http"));
    let upstream_response = client
        .request(parts.method.clone(), format!("{upstream}{path}"))
        .headers(headers)
        .body(body)
        .send()
        .await;
    let upstream_response = match upstream_response {
        Ok(response) => response,
        Err(e) => {
            return Response::builder()
                .status(StatusCode::BAD_GATEWAY)
                .body(Body::from(format!("counting proxy: upstream failed: {e}")))
                .unwrap();
        }
    };
    let mut response = Response::builder().status(upstream_response.status());
    for (name, value) in upstream_response.headers() {
        let keep_length = parts.method == Method::HEAD;
        if !HOP_BY_HOP.contains(&name.as_str())
            && (keep_length || name != http::header::CONTENT_LENGTH)
        {
            response = response.header(name, value);
        }
    }
    let bytes = upstream_response.bytes().await.unwrap_or_default();
    response.body(Body::from(bytes)).unwrap()
}

// ---------------------------------------------------------------------------------------------
// Stub registry
// ---------------------------------------------------------------------------------------------

/// The body of a [`StubResponse`].
#[derive(Clone, Debug)]
pub enum StubBody {
    Empty,
    Bytes(Bytes),
    /// `len` bytes of `byte`, streamed in 64 KiB chunks without Content-Length.
    Stream {
        byte: u8,
        len: usize,
    },
    /// Headers sent, then one chunk, then nothing ever again.
    Stall,
}

/// What the stub answers; [`StubResponse::hang`] never answers at all.
#[derive(Clone, Debug)]
pub struct StubResponse {
    pub status: StatusCode,
    pub headers: Vec<(String, String)>,
    pub body: StubBody,
    /// Never send anything (a future that never completes).
    pub hang: bool,
}

impl StubResponse {
    pub fn new(status: StatusCode) -> Self {
        StubResponse {
            status,
            headers: Vec::new(),
            body: StubBody::Empty,
            hang: false,
        }
    }

    /// A response that never comes.
    pub fn hang() -> Self {
        StubResponse {
            hang: true,
            ..StubResponse::new(StatusCode::OK)
        }
    }

    /// `{"errors":[{"code","message"}]}` with `status`.
    pub fn registry_error(status: StatusCode, code: &str, message: &str) -> Self {
        StubResponse::new(status)
            .header("content-type", "application/json")
            .body(json!({"errors": [{"code": code, "message": message}]}).to_string())
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    pub fn body(mut self, body: impl Into<Bytes>) -> Self {
        self.body = StubBody::Bytes(body.into());
        self
    }

    pub fn streamed(mut self, byte: u8, len: usize) -> Self {
        self.body = StubBody::Stream { byte, len };
        self
    }

    pub fn stalled(mut self) -> Self {
        self.body = StubBody::Stall;
        self
    }
}

type StubHandler = dyn Fn(&RecordedRequest) -> StubResponse + Send + Sync;

/// An in-process HTTP(S) server that answers every request with what a closure decides, and
/// records the requests. For registries that misbehave.
pub struct StubRegistry {
    server: ServerTask,
    requests: Arc<Mutex<Vec<RecordedRequest>>>,
}

impl StubRegistry {
    /// Plain HTTP.
    pub async fn start(
        handler: impl Fn(&RecordedRequest) -> StubResponse + Send + Sync + 'static,
    ) -> Self {
        Self::start_inner(Arc::new(handler), None).await
    }

    /// HTTPS with `leaf`.
    pub async fn start_tls(
        leaf: &Leaf,
        handler: impl Fn(&RecordedRequest) -> StubResponse + Send + Sync + 'static,
    ) -> Self {
        Self::start_inner(Arc::new(handler), Some(leaf.server_config())).await
    }

    async fn start_inner(
        handler: Arc<StubHandler>,
        tls: Option<Arc<rustls::ServerConfig>>,
    ) -> Self {
        let requests = Arc::new(Mutex::new(Vec::new()));
        let recorded = requests.clone();
        let router = Router::new().fallback(move |request: Request| {
            let (handler, recorded) = (handler.clone(), recorded.clone());
            async move {
                let seen = RecordedRequest {
                    method: request.method().to_string(),
                    path: request
                        .uri()
                        .path_and_query()
                        .map_or("/".to_string(), |p| p.to_string()),
                    authorized: request.headers().contains_key(http::header::AUTHORIZATION),
                    authorization: header_text(request.headers(), http::header::AUTHORIZATION),
                };
                lock(&recorded).push(seen.clone());
                let reply = handler(&seen);
                if reply.hang {
                    std::future::pending::<()>().await;
                }
                let mut response = Response::builder().status(reply.status);
                for (name, value) in &reply.headers {
                    response = response.header(name, value);
                }
                let body = match reply.body {
                    StubBody::Empty => Body::empty(),
                    StubBody::Bytes(bytes) => Body::from(bytes),
                    StubBody::Stream { byte, len } => {
                        const CHUNK: usize = 64 * 1024;
                        let chunks = (0..len.div_ceil(CHUNK)).map(move |i| {
                            let size = CHUNK.min(len - i * CHUNK);
                            Ok::<_, std::io::Error>(Bytes::from(vec![byte; size]))
                        });
                        Body::from_stream(futures::stream::iter(chunks))
                    }
                    StubBody::Stall => {
                        let first = futures::stream::once(async {
                            Ok::<_, std::io::Error>(Bytes::from_static(b"{"))
                        });
                        Body::from_stream(futures::StreamExt::chain(
                            first,
                            futures::stream::pending(),
                        ))
                    }
                };
                response.body(body).unwrap()
            }
        });
        StubRegistry {
            server: ServerTask::spawn(router, tls).await,
            requests,
        }
    }

    /// 500 with a registry JSON error on every request.
    pub async fn server_error() -> Self {
        Self::start(|_| {
            StubResponse::registry_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "UNKNOWN",
                "storage backend unavailable",
            )
        })
        .await
    }

    /// 401 without a `WWW-Authenticate` challenge on every request.
    pub async fn unauthorized_without_challenge() -> Self {
        Self::start(|_| {
            StubResponse::registry_error(
                StatusCode::UNAUTHORIZED,
                "UNAUTHORIZED",
                "authentication required",
            )
        })
        .await
    }

    /// Accepts connections and never answers.
    pub async fn hanging() -> Self {
        Self::start(|_| StubResponse::hang()).await
    }

    /// Manifests of `len` bytes of JSON-ish filler: streamed without Content-Length, or with a
    /// Content-Length announcing the size.
    pub async fn oversized_manifest(len: usize, with_content_length: bool) -> Self {
        Self::start(move |_| {
            let response = StubResponse::new(StatusCode::OK)
                .header("content-type", OCI_MANIFEST)
                .header(
                    "docker-content-digest",
                    &Digest::sha256_of(b"oversized").to_string(),
                );
            if with_content_length {
                response.body(vec![b' '; len])
            } else {
                response.streamed(b' ', len)
            }
        })
        .await
    }

    /// Refuses HEAD with 405 and serves `manifest` (as `media_type`) on GET of any manifest.
    pub async fn rejecting_head(manifest: Vec<u8>, media_type: &str) -> Self {
        let media_type = media_type.to_string();
        let manifest = Bytes::from(manifest);
        Self::start(move |request| {
            if request.method == "HEAD" {
                return StubResponse::new(StatusCode::METHOD_NOT_ALLOWED);
            }
            if request.path.contains("/manifests/") {
                return StubResponse::new(StatusCode::OK)
                    .header("content-type", &media_type)
                    .body(manifest.clone());
            }
            StubResponse::registry_error(StatusCode::NOT_FOUND, "NOT_FOUND", "not here")
        })
        .await
    }

    /// Serves `content` for every blob GET, whatever digest was asked for.
    pub async fn serving_blob(content: Vec<u8>) -> Self {
        let content = Bytes::from(content);
        Self::start(move |request| {
            if request.path.contains("/blobs/") {
                StubResponse::new(StatusCode::OK)
                    .header("content-type", "application/octet-stream")
                    .body(content.clone())
            } else {
                StubResponse::registry_error(StatusCode::NOT_FOUND, "NOT_FOUND", "not here")
            }
        })
        .await
    }

    pub fn host(&self) -> String {
        self.server.host()
    }

    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.requests).clone()
    }

    pub fn request_count(&self) -> usize {
        lock(&self.requests).len()
    }

    /// A client configuration reaching this stub over plain HTTP, with a short timeout.
    pub fn client_config(&self, request_timeout: Duration) -> RegistryConfig {
        RegistryConfig {
            insecure_registries: vec![self.host()],
            request_timeout,
            ..RegistryConfig::default()
        }
    }
}

fn header_text(headers: &HeaderMap, name: http::header::HeaderName) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// Annotations as a JSON object, for descriptors built by tests.
pub fn annotations(pairs: &[(&str, &str)]) -> Value {
    Value::Object(
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), Value::String(v.to_string())))
            .collect::<serde_json::Map<_, _>>(),
    )
}

/// Sorted (method, path) counts, handy for assertions on a proxy's traffic.
pub fn tally(requests: &[RecordedRequest]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for request in requests {
        *counts.entry(request.line()).or_default() += 1;
    }
    counts
}
