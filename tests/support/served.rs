//! `verity serve` as a child process: dev certificates, free loopback ports, an HTTPS client
//! trusting them, readiness, AdmissionReviews and `/metrics`. Killed on drop.
//!
//! Self-contained (no other support module), so a test crate that needs only this can include
//! it alone with `#[path = "support/served.rs"] mod served;`.

#![allow(dead_code)]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

pub const VERITY: &str = env!("CARGO_BIN_EXE_verity");

pub struct ServedVerity {
    child: Child,
    webhook: String,
    admin: String,
    client: reqwest::Client,
}

impl Drop for ServedVerity {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl ServedVerity {
    /// Starts `verity serve` with a dev CA and serving certificate written to `dir/certs`, on
    /// free loopback ports (`VERITY_ADDR`, `VERITY_ADMIN_ADDR`, `VERITY_TLS_*`); `configure`
    /// adds the rest (arguments after `serve`, environment). Does not wait for readiness.
    pub fn spawn(dir: &Path, configure: impl FnOnce(&mut Command)) -> Self {
        let certs = dir.join("certs");
        let out = Command::new(VERITY)
            .args(["dev-certs", "--out", certs.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let (port, admin_port) = (free_port(), free_port());
        let mut command = Command::new(VERITY);
        command
            .arg("serve")
            .env("VERITY_ADDR", format!("127.0.0.1:{port}"))
            .env("VERITY_ADMIN_ADDR", format!("127.0.0.1:{admin_port}"))
            .env("VERITY_TLS_CERT", certs.join("tls.crt"))
            .env("VERITY_TLS_KEY", certs.join("tls.key"))
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        configure(&mut command);
        let child = command.spawn().unwrap();
        let ca = std::fs::read(certs.join("ca.crt")).unwrap();
        let client = reqwest::Client::builder()
            .tls_certs_only([reqwest::Certificate::from_pem(&ca).unwrap()])
            .build()
            .unwrap();
        ServedVerity {
            child,
            webhook: format!("https://localhost:{port}"),
            admin: format!("http://127.0.0.1:{admin_port}"),
            client,
        }
    }

    /// Waits until `/readyz` answers 200, failing the test after `limit`.
    pub async fn wait_ready(&self, limit: Duration) {
        let deadline = Instant::now() + limit;
        while !self.ready().await {
            assert!(
                Instant::now() < deadline,
                "verity serve not ready within {limit:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn ready(&self) -> bool {
        reqwest::get(format!("{}/readyz", self.admin))
            .await
            .is_ok_and(|r| r.status() == 200)
    }

    /// POSTs an AdmissionReview to `path` (with the apiserver's `?timeout=10s`) and returns its
    /// `response`; the HTTP status must be 200.
    pub async fn post(&self, path: &str, review: &Value) -> Value {
        let response = self
            .client
            .post(format!("{}{path}?timeout=10s", self.webhook))
            .json(review)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        response.json::<Value>().await.unwrap()["response"].clone()
    }

    /// The answer of `/validate` to the Pod fixture running `image`.
    pub async fn admit(&self, image: &str) -> Value {
        self.post("/validate", &pod_review(image)).await
    }

    /// The `/metrics` text.
    pub async fn metrics(&self) -> String {
        reqwest::get(format!("{}/metrics", self.admin))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// The value of one sample (`name` or `name{labels}`) of `/metrics`, if exported.
    pub async fn metric(&self, sample: &str) -> Option<f64> {
        self.metrics()
            .await
            .lines()
            .find_map(|line| line.strip_prefix(sample)?.strip_prefix(' ')?.parse().ok())
    }

    /// The process, for signals and exit status.
    pub fn process(&mut self) -> &mut Child {
        &mut self.child
    }
}

/// The Pod AdmissionReview fixture (`tests/fixtures/pod.json`) with one container running
/// `image`.
pub fn pod_review(image: &str) -> Value {
    let mut review: Value = serde_json::from_str(include_str!("../fixtures/pod.json")).unwrap();
    review["request"]["object"]["spec"] = json!({"containers": [{"name": "c", "image": image}]});
    review
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
