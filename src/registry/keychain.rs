//! Registry credentials: docker config documents in, a [`Credential`] per registry out.
//!
//! Accepts the `~/.docker/config.json` / `kubernetes.io/dockerconfigjson` format (`{"auths": {...}}`)
//! and the legacy `kubernetes.io/dockercfg` format (the `auths` map at the top level). Server keys
//! are normalised to the form of [`crate::image::ImageRef::registry`]: scheme and path dropped,
//! host lower-cased, Docker Hub spellings mapped to `index.docker.io`. A host label may be a glob
//! (`*.gcr.io`, as the kubelet allows); exact keys win over globs.
//!
//! `credsStore` and `credHelpers` are ignored: an admission controller cannot run helper binaries.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use serde::Deserialize;

use super::error::RegistryError;
use crate::image::DOCKER_HUB;

/// How to authenticate to one registry.
#[derive(Clone, PartialEq, Eq, Default)]
pub enum Credential {
    #[default]
    Anonymous,
    /// Username and password: sent as Basic auth, or to the token endpoint of a Bearer registry.
    Basic { username: String, password: String },
    /// An OAuth2 refresh token (`identitytoken`), exchanged at the token endpoint.
    IdentityToken(String),
    /// A bearer token for the registry itself (`registrytoken`), sent as is.
    RegistryToken(String),
}

impl Credential {
    /// A bounded name of the kind of credential, for messages and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Credential::Anonymous => "anonymous",
            Credential::Basic { .. } => "username and password",
            Credential::IdentityToken(_) => "identity token",
            Credential::RegistryToken(_) => "registry token",
        }
    }

    pub fn is_anonymous(&self) -> bool {
        matches!(self, Credential::Anonymous)
    }
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credential::Anonymous => f.write_str("Anonymous"),
            Credential::Basic { username, .. } => f
                .debug_struct("Basic")
                .field("username", username)
                .field("password", &"<redacted>")
                .finish(),
            Credential::IdentityToken(_) => f.write_str("IdentityToken(<redacted>)"),
            Credential::RegistryToken(_) => f.write_str("RegistryToken(<redacted>)"),
        }
    }
}

static ANONYMOUS: Credential = Credential::Anonymous;

/// Credentials by registry. Entries keep their order; [`Keychain::lookup`] takes the first exact
/// match, then the first glob match, else [`Credential::Anonymous`].
#[derive(Clone, Default)]
pub struct Keychain {
    entries: Vec<(String, Credential)>,
}

impl Keychain {
    /// No credentials at all.
    pub fn anonymous() -> Self {
        Keychain::default()
    }

    /// Parses a docker config document: `{"auths": {"<server>": {...}}}`.
    pub fn from_docker_config_json(document: &[u8]) -> Result<Self, RegistryError> {
        let config: DockerConfig = serde_json::from_slice(document)
            .map_err(|e| RegistryError::DockerConfig(e.to_string()))?;
        Self::from_auths(config.auths)
    }

    /// Parses a legacy `.dockercfg` document: `{"<server>": {...}}`.
    pub fn from_dockercfg(document: &[u8]) -> Result<Self, RegistryError> {
        let auths: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(document)
            .map_err(|e| RegistryError::DockerConfig(e.to_string()))?;
        Self::from_auths(auths)
    }

    fn from_auths(
        auths: serde_json::Map<String, serde_json::Value>,
    ) -> Result<Self, RegistryError> {
        let mut keychain = Keychain::default();
        for (server, value) in auths {
            let registry = normalize_registry(&server).ok_or_else(|| {
                RegistryError::DockerConfig(format!("invalid registry key {server:?}"))
            })?;
            let entry: AuthEntry = serde_json::from_value(value)
                .map_err(|e| RegistryError::DockerConfig(format!("auths[{server:?}]: {e}")))?;
            if let Some(credential) = entry.credential(&server)? {
                keychain.entries.push((registry, credential));
            }
        }
        Ok(keychain)
    }

    /// Adds a credential for `registry` (normalised as docker config keys are), after the
    /// existing entries.
    pub fn with_credential(
        mut self,
        registry: &str,
        credential: Credential,
    ) -> Result<Self, RegistryError> {
        let key = normalize_registry(registry).ok_or_else(|| {
            RegistryError::DockerConfig(format!("invalid registry key {registry:?}"))
        })?;
        self.entries.push((key, credential));
        Ok(self)
    }

    /// The entries of `keychains` in order (first match wins, so put the most specific first,
    /// e.g. a pod's imagePullSecrets before the service account's).
    pub fn merged(keychains: &[&Keychain]) -> Self {
        Keychain {
            entries: keychains
                .iter()
                .flat_map(|k| k.entries.iter().cloned())
                .collect(),
        }
    }

    /// The credential for `registry` in [`crate::image::ImageRef::registry`] form.
    pub fn lookup(&self, registry: &str) -> &Credential {
        let registry = registry.to_ascii_lowercase();
        let registry = match registry.as_str() {
            "docker.io" | "registry-1.docker.io" => DOCKER_HUB,
            other => other,
        };
        self.entries
            .iter()
            .find(|(key, _)| key == registry)
            .or_else(|| {
                self.entries
                    .iter()
                    .find(|(key, _)| key.contains('*') && host_glob_matches(key, registry))
            })
            .map_or(&ANONYMOUS, |(_, credential)| credential)
    }

    /// The registries that have a credential, in order.
    pub fn registries(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|(key, _)| key.as_str())
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl fmt::Debug for Keychain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.entries.iter().map(|(k, c)| (k, c)))
            .finish()
    }
}

/// Normalises a docker config server key (`https://index.docker.io/v1/`, `docker.io`,
/// `https://host:5000/v2/`, `HOST:5000`) to the `ImageRef::registry()` form. `None` when nothing
/// usable is left.
pub fn normalize_registry(server: &str) -> Option<String> {
    let server = server.trim();
    let without_scheme = server
        .strip_prefix("https://")
        .or_else(|| server.strip_prefix("http://"))
        .unwrap_or(server);
    let host = without_scheme
        .split('/')
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    if host.is_empty()
        || !host.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']' | b'*')
        })
    {
        return None;
    }
    Some(match host.as_str() {
        "docker.io" | "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => {
            DOCKER_HUB.to_string()
        }
        _ => host,
    })
}

/// `*.gcr.io` matches `us.gcr.io`; each label is matched on its own (`*` never crosses a dot),
/// and ports must be equal.
fn host_glob_matches(pattern: &str, host: &str) -> bool {
    let (pattern_host, pattern_port) = split_port(pattern);
    let (host, port) = split_port(host);
    if pattern_port != port {
        return false;
    }
    let pattern_labels: Vec<&str> = pattern_host.split('.').collect();
    let labels: Vec<&str> = host.split('.').collect();
    pattern_labels.len() == labels.len()
        && pattern_labels
            .iter()
            .zip(&labels)
            .all(|(p, l)| label_glob_matches(p.as_bytes(), l.as_bytes()))
}

fn split_port(host: &str) -> (&str, Option<&str>) {
    match host.rsplit_once(':') {
        Some((h, p)) if !p.contains(']') => (h, Some(p)),
        _ => (host, None),
    }
}

fn label_glob_matches(pattern: &[u8], label: &[u8]) -> bool {
    match pattern.split_first() {
        None => label.is_empty(),
        Some((b'*', rest)) => (0..=label.len()).any(|i| label_glob_matches(rest, &label[i..])),
        Some((c, rest)) => label
            .split_first()
            .is_some_and(|(l, label_rest)| l == c && label_glob_matches(rest, label_rest)),
    }
}

#[derive(Deserialize)]
struct DockerConfig {
    #[serde(default)]
    auths: serde_json::Map<String, serde_json::Value>,
}

#[derive(Deserialize, Default)]
struct AuthEntry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default, alias = "identityToken")]
    identitytoken: Option<String>,
    #[serde(default, alias = "registryToken")]
    registrytoken: Option<String>,
}

impl AuthEntry {
    fn credential(self, server: &str) -> Result<Option<Credential>, RegistryError> {
        let present = |v: &Option<String>| v.as_deref().is_some_and(|s| !s.is_empty());
        if present(&self.registrytoken) {
            return Ok(self.registrytoken.map(Credential::RegistryToken));
        }
        if present(&self.identitytoken) {
            return Ok(self.identitytoken.map(Credential::IdentityToken));
        }
        if let Some(auth) = self.auth.as_deref().filter(|a| !a.trim().is_empty()) {
            let bad = || {
                RegistryError::DockerConfig(format!(
                    "auths[{server:?}].auth is not base64 of username:password"
                ))
            };
            let compact: String = auth.chars().filter(|c| !c.is_whitespace()).collect();
            let decoded = STANDARD
                .decode(&compact)
                .or_else(|_| STANDARD_NO_PAD.decode(&compact))
                .map_err(|_| bad())?;
            let decoded = String::from_utf8(decoded).map_err(|_| bad())?;
            let (username, password) = decoded.split_once(':').ok_or_else(bad)?;
            return Ok(Some(Credential::Basic {
                username: username.to_string(),
                password: password.to_string(),
            }));
        }
        if present(&self.username) {
            return Ok(Some(Credential::Basic {
                username: self.username.unwrap_or_default(),
                password: self.password.unwrap_or_default(),
            }));
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(username: &str, password: &str) -> Credential {
        Credential::Basic {
            username: username.to_string(),
            password: password.to_string(),
        }
    }

    fn b64(s: &str) -> String {
        STANDARD.encode(s)
    }

    #[test]
    fn server_key_normalisation_table() {
        let cases = [
            ("https://index.docker.io/v1/", "index.docker.io"),
            ("index.docker.io", "index.docker.io"),
            ("docker.io", "index.docker.io"),
            ("https://docker.io", "index.docker.io"),
            ("registry-1.docker.io", "index.docker.io"),
            ("registry.hub.docker.com", "index.docker.io"),
            ("ghcr.io", "ghcr.io"),
            ("https://ghcr.io", "ghcr.io"),
            ("GHCR.io", "ghcr.io"),
            ("127.0.0.1:5000", "127.0.0.1:5000"),
            ("http://127.0.0.1:5000/v2/", "127.0.0.1:5000"),
            (
                "https://registry.example.com:8443/some/path",
                "registry.example.com:8443",
            ),
            ("localhost:5000", "localhost:5000"),
            ("*.gcr.io", "*.gcr.io"),
            (" quay.io ", "quay.io"),
        ];
        for (key, expected) in cases {
            assert_eq!(normalize_registry(key).as_deref(), Some(expected), "{key}");
        }
        for key in ["", "https://", "/v2/", "bad host", "a\"b"] {
            assert_eq!(normalize_registry(key), None, "{key:?}");
        }
    }

    #[test]
    fn parses_every_credential_form() {
        let document = format!(
            r#"{{"auths": {{
                "https://index.docker.io/v1/": {{"auth": "{hub}", "email": "me@example.com"}},
                "127.0.0.1:5000": {{"username": "alice", "password": "s3cret"}},
                "https://registry.example.com/v2/": {{"identitytoken": "refresh-me"}},
                "tokens.example.com": {{"registrytoken": "bearer-me"}},
                "pass-with-colon.example.com": {{"auth": "{colon}"}},
                "empty.example.com": {{}}
            }}, "credsStore": "desktop"}}"#,
            hub = b64("hubuser:hubpass"),
            colon = b64("bob:pa:ss"),
        );
        let keychain = Keychain::from_docker_config_json(document.as_bytes()).unwrap();
        assert_eq!(
            keychain.lookup("index.docker.io"),
            &basic("hubuser", "hubpass")
        );
        assert_eq!(keychain.lookup("docker.io"), &basic("hubuser", "hubpass"));
        assert_eq!(keychain.lookup("127.0.0.1:5000"), &basic("alice", "s3cret"));
        assert_eq!(
            keychain.lookup("registry.example.com"),
            &Credential::IdentityToken("refresh-me".to_string())
        );
        assert_eq!(
            keychain.lookup("tokens.example.com"),
            &Credential::RegistryToken("bearer-me".to_string())
        );
        assert_eq!(
            keychain.lookup("pass-with-colon.example.com"),
            &basic("bob", "pa:ss")
        );
        assert_eq!(keychain.lookup("empty.example.com"), &Credential::Anonymous);
        // A port is part of the registry identity.
        assert_eq!(keychain.lookup("127.0.0.1:5001"), &Credential::Anonymous);
        assert_eq!(keychain.lookup("127.0.0.1"), &Credential::Anonymous);
        assert_eq!(keychain.lookup("ghcr.io"), &Credential::Anonymous);
    }

    #[test]
    fn auth_field_tolerates_missing_padding_and_wins_over_username() {
        let unpadded = STANDARD_NO_PAD.encode("u:p1");
        let document = format!(
            r#"{{"auths": {{"r.example.com": {{"auth": "{unpadded}", "username": "x", "password": "y"}}}}}}"#
        );
        let keychain = Keychain::from_docker_config_json(document.as_bytes()).unwrap();
        assert_eq!(keychain.lookup("r.example.com"), &basic("u", "p1"));
    }

    #[test]
    fn legacy_dockercfg() {
        let document = format!(r#"{{"quay.io": {{"auth": "{}"}}}}"#, b64("q:w"));
        let keychain = Keychain::from_dockercfg(document.as_bytes()).unwrap();
        assert_eq!(keychain.lookup("quay.io"), &basic("q", "w"));
    }

    #[test]
    fn malformed_documents_are_errors_without_secrets() {
        let err =
            Keychain::from_docker_config_json(br#"{"auths": {"r.io": {"auth": "!!!not-base64"}}}"#)
                .unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"invalid docker config: auths["r.io"].auth is not base64 of username:password"#
        );
        assert_eq!(err.reason(), "docker_config");

        let no_colon = format!(
            r#"{{"auths": {{"r.io": {{"auth": "{}"}}}}}}"#,
            b64("secretonly")
        );
        let err = Keychain::from_docker_config_json(no_colon.as_bytes()).unwrap_err();
        assert!(!err.to_string().contains("secretonly"), "{err}");

        let err = Keychain::from_docker_config_json(b"not json").unwrap_err();
        assert!(
            err.to_string().starts_with("invalid docker config: "),
            "{err}"
        );

        let err = Keychain::from_docker_config_json(br#"{"auths": {"bad key": {}}}"#).unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"invalid docker config: invalid registry key "bad key""#
        );
    }

    #[test]
    fn globs_and_precedence() {
        let document = format!(
            r#"{{"auths": {{"*.gcr.io": {{"auth": "{}"}}, "eu.gcr.io": {{"auth": "{}"}}}}}}"#,
            b64("glob:1"),
            b64("exact:2")
        );
        let keychain = Keychain::from_docker_config_json(document.as_bytes()).unwrap();
        assert_eq!(keychain.lookup("us.gcr.io"), &basic("glob", "1"));
        assert_eq!(keychain.lookup("eu.gcr.io"), &basic("exact", "2"));
        assert_eq!(keychain.lookup("gcr.io"), &Credential::Anonymous);
        assert_eq!(keychain.lookup("a.b.gcr.io"), &Credential::Anonymous);
        assert_eq!(keychain.lookup("us.gcr.io:443"), &Credential::Anonymous);
    }

    #[test]
    fn merged_keychains_first_match_wins() {
        let pod = Keychain::anonymous()
            .with_credential("https://ghcr.io", basic("pod", "1"))
            .unwrap();
        let service_account = Keychain::anonymous()
            .with_credential("ghcr.io", basic("sa", "2"))
            .unwrap()
            .with_credential("docker.io", basic("sa-hub", "3"))
            .unwrap();
        let merged = Keychain::merged(&[&pod, &service_account]);
        assert_eq!(merged.lookup("ghcr.io"), &basic("pod", "1"));
        assert_eq!(merged.lookup("index.docker.io"), &basic("sa-hub", "3"));
        assert_eq!(
            merged.registries().collect::<Vec<_>>(),
            ["ghcr.io", "ghcr.io", "index.docker.io"]
        );
        assert!(Keychain::anonymous().is_empty());
    }

    #[test]
    fn debug_redacts_secrets() {
        let keychain = Keychain::anonymous()
            .with_credential("a.io", basic("alice", "hunter2"))
            .unwrap()
            .with_credential("b.io", Credential::IdentityToken("refresh-secret".into()))
            .unwrap()
            .with_credential("c.io", Credential::RegistryToken("bearer-secret".into()))
            .unwrap();
        let debug = format!("{keychain:?}");
        assert!(debug.contains("alice"), "{debug}");
        assert!(debug.contains("<redacted>"), "{debug}");
        for secret in ["hunter2", "refresh-secret", "bearer-secret"] {
            assert!(!debug.contains(secret), "{debug}");
        }
        assert_eq!(
            format!("{:?}", basic("u", "p")),
            r#"Basic { username: "u", password: "<redacted>" }"#
        );
    }
}
