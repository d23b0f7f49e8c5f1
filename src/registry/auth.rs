//! Authentication state: `WWW-Authenticate` challenges, what each registry asked for last time,
//! and bearer tokens cached per (registry, scope, credential).
//!
//! Tokens are secrets: they live only in this cache and in request headers marked sensitive.
//! Cache keys hold a sha256 fingerprint of the credential, never the credential itself.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use sha2::Digest as _;
use tokio::time::Instant;

use super::keychain::Credential;

/// One challenge of a `WWW-Authenticate` header: a scheme (lower-cased) and its parameters
/// (names lower-cased).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Challenge {
    pub scheme: String,
    pub params: Vec<(String, String)>,
}

impl Challenge {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Parses the challenges of one or more `WWW-Authenticate` values
/// (`Bearer realm="https://auth/token",service="reg",scope="repository:a:pull"`).
pub(crate) fn parse_challenges<'a>(values: impl IntoIterator<Item = &'a str>) -> Vec<Challenge> {
    let mut challenges = Vec::new();
    for value in values {
        let mut parser = Parser {
            input: value.as_bytes(),
            pos: 0,
        };
        while let Some(challenge) = parser.challenge() {
            challenges.push(challenge);
        }
    }
    challenges
}

struct Parser<'a> {
    input: &'a [u8],
    pos: usize,
}

impl Parser<'_> {
    fn skip(&mut self, chars: &[u8]) {
        while self.pos < self.input.len() && chars.contains(&self.input[self.pos]) {
            self.pos += 1;
        }
    }

    fn token(&mut self) -> String {
        let start = self.pos;
        while self.pos < self.input.len()
            && !matches!(self.input[self.pos], b' ' | b'\t' | b',' | b'=' | b'"')
        {
            self.pos += 1;
        }
        String::from_utf8_lossy(&self.input[start..self.pos]).into_owned()
    }

    fn peek(&self) -> Option<u8> {
        self.input.get(self.pos).copied()
    }

    fn quoted(&mut self) -> String {
        // Called on the opening quote.
        self.pos += 1;
        let mut out = Vec::new();
        while let Some(c) = self.peek() {
            self.pos += 1;
            match c {
                b'"' => break,
                b'\\' => {
                    if let Some(escaped) = self.peek() {
                        out.push(escaped);
                        self.pos += 1;
                    }
                }
                _ => out.push(c),
            }
        }
        String::from_utf8_lossy(&out).into_owned()
    }

    fn challenge(&mut self) -> Option<Challenge> {
        self.skip(b" \t,");
        let scheme = self.token();
        if scheme.is_empty() {
            return None;
        }
        let mut challenge = Challenge {
            scheme: scheme.to_ascii_lowercase(),
            params: Vec::new(),
        };
        loop {
            let save = self.pos;
            self.skip(b" \t,");
            let name = self.token();
            self.skip(b" \t");
            if name.is_empty() || self.peek() != Some(b'=') {
                // The next scheme (or the end): give the token back.
                self.pos = save;
                break;
            }
            self.pos += 1;
            self.skip(b" \t");
            let value = if self.peek() == Some(b'"') {
                self.quoted()
            } else {
                self.token()
            };
            challenge.params.push((name.to_ascii_lowercase(), value));
        }
        Some(challenge)
    }
}

/// What a registry asked for in its last challenge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Scheme {
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
    },
}

#[derive(Clone, PartialEq, Eq, Hash)]
struct TokenKey {
    registry: String,
    scope: String,
    credential: [u8; 32],
}

struct CachedToken {
    token: String,
    refresh_at: Instant,
}

/// Most entries a cache holds before expired ones are swept.
const SWEEP_ABOVE: usize = 1024;

/// Per-client authentication memory, shared by all clones of a client.
#[derive(Default)]
pub(crate) struct AuthState {
    schemes: Mutex<HashMap<String, Scheme>>,
    tokens: Mutex<HashMap<TokenKey, CachedToken>>,
}

impl AuthState {
    pub fn scheme(&self, registry: &str) -> Option<Scheme> {
        lock(&self.schemes).get(registry).cloned()
    }

    pub fn remember_scheme(&self, registry: &str, scheme: Scheme) {
        lock(&self.schemes).insert(registry.to_string(), scheme);
    }

    /// A cached token still comfortably inside its lifetime.
    pub fn token(&self, registry: &str, scope: &str, credential: &Credential) -> Option<String> {
        let key = key(registry, scope, credential);
        let tokens = lock(&self.tokens);
        tokens
            .get(&key)
            .filter(|t| Instant::now() < t.refresh_at)
            .map(|t| t.token.clone())
    }

    /// Caches `token`, valid for `lifetime` from now, until shortly before it expires
    /// (a tenth of its lifetime early, at least 5 s). Tokens too short-lived for that are not
    /// cached.
    pub fn store_token(
        &self,
        registry: &str,
        scope: &str,
        credential: &Credential,
        token: &str,
        lifetime: Duration,
    ) {
        let key = key(registry, scope, credential);
        let margin = (lifetime / 10).max(Duration::from_secs(5));
        let mut tokens = lock(&self.tokens);
        let Some(usable) = lifetime.checked_sub(margin).filter(|d| !d.is_zero()) else {
            tokens.remove(&key);
            return;
        };
        let now = Instant::now();
        if tokens.len() >= SWEEP_ABOVE {
            tokens.retain(|_, t| now < t.refresh_at);
        }
        tokens.insert(
            key,
            CachedToken {
                token: token.to_string(),
                refresh_at: now + usable,
            },
        );
    }

    pub fn forget_token(&self, registry: &str, scope: &str, credential: &Credential) {
        lock(&self.tokens).remove(&key(registry, scope, credential));
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // The maps stay consistent even if a holder panicked: every critical section is one call.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn key(registry: &str, scope: &str, credential: &Credential) -> TokenKey {
    TokenKey {
        registry: registry.to_string(),
        scope: scope.to_string(),
        credential: fingerprint(credential),
    }
}

/// sha256 over a tagged, length-prefixed encoding of the credential.
fn fingerprint(credential: &Credential) -> [u8; 32] {
    let mut hasher = sha2::Sha256::new();
    let mut field = |bytes: &[u8]| {
        hasher.update((bytes.len() as u64).to_be_bytes());
        hasher.update(bytes);
    };
    match credential {
        Credential::Anonymous => field(b"anonymous"),
        Credential::Basic { username, password } => {
            field(b"basic");
            field(username.as_bytes());
            field(password.as_bytes());
        }
        Credential::IdentityToken(token) => {
            field(b"identity");
            field(token.as_bytes());
        }
        Credential::RegistryToken(token) => {
            field(b"registry");
            field(token.as_bytes());
        }
    }
    hasher.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bearer_challenge() {
        let challenges = parse_challenges([
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull""#,
        ]);
        assert_eq!(challenges.len(), 1);
        let c = &challenges[0];
        assert_eq!(c.scheme, "bearer");
        assert_eq!(c.param("realm"), Some("https://auth.docker.io/token"));
        assert_eq!(c.param("service"), Some("registry.docker.io"));
        assert_eq!(c.param("scope"), Some("repository:library/busybox:pull"));
    }

    #[test]
    fn parses_several_challenges_odd_spacing_and_escapes() {
        let challenges = parse_challenges([
            r#"Basic realm="test \"registry\"" , BEARER Realm = "http://t/token", error=insufficient_scope"#,
            "Negotiate",
        ]);
        assert_eq!(challenges.len(), 3);
        assert_eq!(challenges[0].scheme, "basic");
        assert_eq!(challenges[0].param("realm"), Some(r#"test "registry""#));
        assert_eq!(challenges[1].scheme, "bearer");
        assert_eq!(challenges[1].param("realm"), Some("http://t/token"));
        assert_eq!(challenges[1].param("error"), Some("insufficient_scope"));
        assert_eq!(challenges[2].scheme, "negotiate");
        assert!(challenges[2].params.is_empty());
        assert!(parse_challenges([""]).is_empty());
    }

    #[test]
    fn token_cache_is_keyed_by_credential_and_respects_lifetime() {
        let state = AuthState::default();
        let alice = Credential::Basic {
            username: "alice".into(),
            password: "1".into(),
        };
        let mallory = Credential::Basic {
            username: "alice".into(),
            password: "2".into(),
        };
        state.store_token("r", "s", &alice, "t1", Duration::from_secs(300));
        assert_eq!(state.token("r", "s", &alice).as_deref(), Some("t1"));
        assert_eq!(state.token("r", "s", &mallory), None);
        assert_eq!(state.token("r", "other", &alice), None);
        assert_eq!(state.token("r2", "s", &alice), None);

        // Too short-lived to be worth caching: dropped, and the old one with it.
        state.store_token("r", "s", &alice, "t2", Duration::from_secs(5));
        assert_eq!(state.token("r", "s", &alice), None);

        state.store_token("r", "s", &alice, "t3", Duration::from_secs(60));
        state.forget_token("r", "s", &alice);
        assert_eq!(state.token("r", "s", &alice), None);
    }
}
