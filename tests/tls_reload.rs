//! Serving-certificate hot reload through a kubelet-style Secret volume, on a real listener.
//!
//! Kubelet mounts a Secret as `dir/..<timestamp>/tls.crt`, `dir/..data -> ..<timestamp>` and
//! `dir/tls.crt -> ..data/tls.crt`, and updates it by writing a new timestamped directory and
//! renaming a fresh `..data` symlink over the old one. The tests do exactly that.

// Test-crate helpers are not `#[test]` functions, so clippy.toml's test allowance misses them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::{
    future::Future,
    net::SocketAddr,
    path::{Path, PathBuf},
    time::Duration,
};

use axum::{Router, routing::get};
use rustls_pki_types::{CertificateDer, pem::PemObject};
use tokio::{io::AsyncWriteExt, sync::oneshot, task::JoinHandle};
use verity::{
    devcert::{CertificateAuthority, ServingCertificate},
    metrics::Metrics,
    server::{Admin, Readiness, Server, ServerConfig, ServerError},
};

const DEADLINE: Duration = Duration::from_secs(15);

/// A Secret volume laid out and updated the way kubelet does it.
struct SecretVolume {
    dir: PathBuf,
}

impl SecretVolume {
    fn new(dir: &Path, version: &str, pair: &ServingCertificate) -> Self {
        let volume = SecretVolume {
            dir: dir.to_owned(),
        };
        volume.write_version(version, pair);
        std::os::unix::fs::symlink(version, dir.join("..data")).unwrap();
        for name in ["tls.crt", "tls.key"] {
            std::os::unix::fs::symlink(format!("..data/{name}"), dir.join(name)).unwrap();
        }
        volume
    }

    fn write_version(&self, version: &str, pair: &ServingCertificate) {
        self.write_raw(version, pair.cert_pem.as_bytes(), pair.key_pem.as_bytes());
    }

    fn write_raw(&self, version: &str, cert: &[u8], key: &[u8]) {
        let version_dir = self.dir.join(version);
        std::fs::create_dir(&version_dir).unwrap();
        std::fs::write(version_dir.join("tls.crt"), cert).unwrap();
        std::fs::write(version_dir.join("tls.key"), key).unwrap();
    }

    /// Points `..data` at `version` atomically: new symlink, then rename over the old one.
    fn activate(&self, version: &str) {
        let temporary = self.dir.join("..data_tmp");
        std::os::unix::fs::symlink(version, &temporary).unwrap();
        std::fs::rename(&temporary, self.dir.join("..data")).unwrap();
    }

    fn cert(&self) -> PathBuf {
        self.dir.join("tls.crt")
    }

    fn key(&self) -> PathBuf {
        self.dir.join("tls.key")
    }
}

fn der(pair: &ServingCertificate) -> Vec<u8> {
    CertificateDer::from_pem_slice(pair.cert_pem.as_bytes())
        .unwrap()
        .to_vec()
}

struct Running {
    webhook: SocketAddr,
    admin: SocketAddr,
    metrics: Metrics,
    stop: oneshot::Sender<()>,
    task: JoinHandle<Result<(), ServerError>>,
}

impl Running {
    async fn start(cert: PathBuf, key: PathBuf) -> Running {
        let metrics = Metrics::unregistered().unwrap();
        let admin = Admin {
            readiness: Readiness::new(),
            metrics: metrics.clone(),
        };
        let config = ServerConfig {
            addr: "127.0.0.1:0".parse().unwrap(),
            admin_addr: "127.0.0.1:0".parse().unwrap(),
            tls_cert: cert,
            tls_key: key,
            reload_interval: Duration::from_millis(50),
            drain_timeout: Duration::from_secs(5),
        };
        let webhook_router = Router::new().route("/hello", get(|| async { "hello" }));
        let server = Server::bind(config, webhook_router, admin).await.unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let webhook = server.webhook_addr();
        let admin = server.admin_addr();
        let task = tokio::spawn(server.run(async move {
            let _ = stopped.await;
        }));
        Running {
            webhook,
            admin,
            metrics,
            stop,
            task,
        }
    }

    async fn shut_down(self) {
        self.stop.send(()).unwrap();
        tokio::time::timeout(DEADLINE, self.task)
            .await
            .expect("server did not stop before the deadline")
            .unwrap()
            .unwrap();
    }

    fn url(&self) -> String {
        format!("https://127.0.0.1:{}/hello", self.webhook.port())
    }
}

/// A client trusting only `ca`, reporting the peer certificate of each response.
fn client(ca: &CertificateAuthority) -> reqwest::Client {
    reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(ca.cert_pem().as_bytes()).unwrap()])
        .tls_info(true)
        .no_proxy()
        .build()
        .unwrap()
}

/// GET `url` and return the status, body and DER of the certificate the server presented.
async fn get_with_peer(client: &reqwest::Client, url: &str) -> (u16, String, Vec<u8>) {
    let response = client.get(url).send().await.unwrap();
    let peer = response
        .extensions()
        .get::<reqwest::tls::TlsInfo>()
        .and_then(|info| info.peer_certificate())
        .expect("response carries the peer certificate")
        .to_vec();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap(), peer)
}

/// The certificate a brand-new connection is given.
async fn fresh_peer(ca: &CertificateAuthority, url: &str) -> Vec<u8> {
    get_with_peer(&client(ca), url).await.2
}

async fn poll_until<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn reload_count(metrics: &Metrics, result: &str) -> u64 {
    metrics.tls_reloads.with_label_values(&[result]).get()
}

#[tokio::test]
async fn new_connections_get_the_swapped_certificate_and_old_ones_keep_working() {
    let dir = tempfile::tempdir().unwrap();
    let ca = CertificateAuthority::new().unwrap();
    let first = ca.issue(&[]).unwrap();
    let second = ca.issue(&[]).unwrap();
    let volume = SecretVolume::new(dir.path(), "..2026_a", &first);
    let server = Running::start(volume.cert(), volume.key()).await;
    let url = server.url();

    let kept_alive = client(&ca);
    let (status, body, peer) = get_with_peer(&kept_alive, &url).await;
    assert_eq!((status, body.as_str()), (200, "hello"));
    assert_eq!(peer, der(&first));

    volume.write_version("..2026_b", &second);
    volume.activate("..2026_b");
    poll_until("a new connection presents the new certificate", || async {
        fresh_peer(&ca, &url).await == der(&second)
    })
    .await;
    assert_eq!(reload_count(&server.metrics, "success"), 1);
    assert_eq!(reload_count(&server.metrics, "error"), 0);

    // The connection made before the swap still serves, with the certificate it was made with
    // (which also shows it is the same connection: new ones get the second certificate).
    let (status, body, peer) = get_with_peer(&kept_alive, &url).await;
    assert_eq!((status, body.as_str()), (200, "hello"));
    assert_eq!(peer, der(&first));

    server.shut_down().await;
}

#[tokio::test]
async fn a_broken_pair_is_rejected_and_the_old_certificate_stays() {
    let dir = tempfile::tempdir().unwrap();
    let ca = CertificateAuthority::new().unwrap();
    let first = ca.issue(&[]).unwrap();
    let other = ca.issue(&[]).unwrap();
    let volume = SecretVolume::new(dir.path(), "..2026_a", &first);
    let server = Running::start(volume.cert(), volume.key()).await;
    let url = server.url();
    assert_eq!(fresh_peer(&ca, &url).await, der(&first));

    // A certificate with somebody else's key.
    volume.write_raw(
        "..2026_b",
        other.cert_pem.as_bytes(),
        first.key_pem.as_bytes(),
    );
    volume.activate("..2026_b");
    let admin_metrics = format!("http://{}/metrics", server.admin);
    let plain = reqwest::Client::builder().no_proxy().build().unwrap();
    poll_until("the admin port reports the rejected reload", || async {
        let text = plain
            .get(&admin_metrics)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.contains(r#"verity_tls_reloads_total{result="error"} 1"#)
    })
    .await;
    assert_eq!(fresh_peer(&ca, &url).await, der(&first));

    // Unparsable content is rejected the same way.
    volume.write_raw("..2026_c", b"not a certificate", b"not a key");
    volume.activate("..2026_c");
    poll_until("the second rejection is counted", || async {
        reload_count(&server.metrics, "error") == 2
    })
    .await;
    assert_eq!(fresh_peer(&ca, &url).await, der(&first));
    assert_eq!(reload_count(&server.metrics, "success"), 0);

    // A good pair afterwards is picked up.
    volume.write_version("..2026_d", &other);
    volume.activate("..2026_d");
    poll_until("the repaired pair is served", || async {
        fresh_peer(&ca, &url).await == der(&other)
    })
    .await;
    assert_eq!(reload_count(&server.metrics, "success"), 1);

    server.shut_down().await;
}

#[tokio::test]
async fn failed_and_stalled_handshakes_do_not_disturb_other_clients() {
    let dir = tempfile::tempdir().unwrap();
    let ca = CertificateAuthority::new().unwrap();
    let pair = ca.issue(&[]).unwrap();
    let volume = SecretVolume::new(dir.path(), "..2026_a", &pair);
    let server = Running::start(volume.cert(), volume.key()).await;
    let url = server.url();

    // Connected but silent: its handshake never starts.
    let _stalled = tokio::net::TcpStream::connect(server.webhook)
        .await
        .unwrap();
    // Not TLS at all.
    let mut garbage = tokio::net::TcpStream::connect(server.webhook)
        .await
        .unwrap();
    garbage
        .write_all(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    // A client that does not trust the server's CA.
    let stranger = CertificateAuthority::new().unwrap();
    let refused = client(&stranger).get(&url).send().await;
    assert!(refused.is_err(), "{refused:?}");

    let (status, body, _) = get_with_peer(&client(&ca), &url).await;
    assert_eq!((status, body.as_str()), (200, "hello"));

    server.shut_down().await;
}

#[tokio::test]
async fn alpn_offers_h2_and_http1() {
    let dir = tempfile::tempdir().unwrap();
    let ca = CertificateAuthority::new().unwrap();
    let pair = ca.issue(&[]).unwrap();
    let volume = SecretVolume::new(dir.path(), "..2026_a", &pair);
    let server = Running::start(volume.cert(), volume.key()).await;
    let url = server.url();

    let response = client(&ca).get(&url).send().await.unwrap();
    assert_eq!(response.version(), reqwest::Version::HTTP_2);
    assert_eq!(response.text().await.unwrap(), "hello");

    let http1 = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(ca.cert_pem().as_bytes()).unwrap()])
        .http1_only()
        .no_proxy()
        .build()
        .unwrap();
    let response = http1.get(&url).send().await.unwrap();
    assert_eq!(response.version(), reqwest::Version::HTTP_11);
    assert_eq!(response.text().await.unwrap(), "hello");

    server.shut_down().await;
}

#[tokio::test]
async fn a_missing_certificate_at_start_up_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let config = ServerConfig {
        addr: "127.0.0.1:0".parse().unwrap(),
        admin_addr: "127.0.0.1:0".parse().unwrap(),
        ..ServerConfig::new(dir.path().join("tls.crt"), dir.path().join("tls.key"))
    };
    let admin = Admin {
        readiness: Readiness::new(),
        metrics: Metrics::unregistered().unwrap(),
    };
    let error = Server::bind(config, Router::new(), admin)
        .await
        .err()
        .expect("binding without a certificate fails");
    assert_eq!(error.reason(), "read");
    let message = error.to_string();
    let expected = format!(
        "failed to load the serving certificate: failed to read certificate file {}: ",
        dir.path().join("tls.crt").display()
    );
    assert!(message.starts_with(&expected), "{message}");
}
