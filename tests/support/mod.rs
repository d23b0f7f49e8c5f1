//! Shared support for verity's integration tests.
//!
//! Use it from a test crate with `mod support;`. Everything runs on 127.0.0.1 with random ports
//! and temporary directories, starts its servers as direct children or in-process tasks, and
//! stops them on `Drop`.
//!
//! - [`registry`]: a real `docker-registry` (plain HTTP, htpasswd Basic auth, TLS with a test CA,
//!   Bearer tokens from an in-test token server), push helpers over the registry HTTP API, a
//!   request-counting proxy and a stub for misbehaving registries.
//! - [`signing`]: the signing side of cosign and sigstore (keys and openssl signatures,
//!   simple-signing payloads, `.sig` manifests, a test Rekor, a test Fulcio and CT log, trust
//!   roots, v3 bundles as referrers, the production vectors, one-change forgeries).
//! - [`webhook`]: the validating webhook as `serve` builds it (router, admission, an online
//!   verifier) over YAML policies and a default trust root, answering AdmissionReviews.
//!
//! A test that needs a missing tool fails with the command that installs it ([`require_tool`]);
//! it never passes by skipping. Waiting is always polling with a deadline ([`poll_until`]).

// Each test crate uses a different part of the support code.
#![allow(dead_code)]
// Test-only code: failing loudly is the point. clippy.toml's allow-*-in-tests only covers
// `#[test]` functions, not the helpers of an integration-test crate.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod registry;
pub mod served;
pub mod signing;
pub mod tuf;
pub mod webhook;

use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

/// The path of `tool` on `PATH`, or a panic saying how to install it.
pub fn require_tool(tool: &str, package: &str) -> PathBuf {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(tool))
            .find(|candidate| candidate.is_file())
    });
    match found {
        Some(path) => path,
        None => panic!(
            "{tool} not found: install it with `apt-get install -y {package}` (or run `make test`)"
        ),
    }
}

/// Polls `check` every 20 ms until it returns `Some`, or panics with `what` after `timeout`.
pub async fn poll_until<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        if tokio::time::Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
