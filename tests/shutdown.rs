//! Graceful shutdown on real listeners, the admin endpoints, and the shutdown signal.

// Test-crate helpers are not `#[test]` functions, so clippy.toml's test allowance misses them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::{future::Future, io::ErrorKind, net::SocketAddr, sync::Arc, time::Duration};

use axum::{
    Router,
    body::Body,
    http::{Request, StatusCode, header},
    routing::{get, post},
};
use http_body_util::BodyExt;
use tokio::{
    sync::{Notify, oneshot},
    task::JoinHandle,
};
use tower::ServiceExt;
use verity::{
    devcert::{self, DevCertPaths},
    metrics::Metrics,
    server::{Admin, Readiness, Server, ServerConfig, ServerError, ShutdownSignal},
};

const DEADLINE: Duration = Duration::from_secs(15);

/// A webhook whose `POST /validate` waits until the test releases it.
#[derive(Clone, Default)]
struct BlockingWebhook {
    started: Arc<Notify>,
    release: Arc<Notify>,
}

impl BlockingWebhook {
    fn router(&self) -> Router {
        let webhook = self.clone();
        Router::new()
            .route(
                "/validate",
                post(move || {
                    let webhook = webhook.clone();
                    async move {
                        webhook.started.notify_one();
                        webhook.release.notified().await;
                        "done"
                    }
                }),
            )
            .route("/hello", get(|| async { "hello" }))
    }
}

struct Running {
    webhook: SocketAddr,
    admin: SocketAddr,
    readiness: Readiness,
    certs: DevCertPaths,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), ServerError>>,
    _dir: tempfile::TempDir,
}

async fn start(router: Router, drain_timeout: Duration) -> Running {
    let dir = tempfile::tempdir().unwrap();
    let certs = devcert::generate(dir.path(), &[]).unwrap();
    let readiness = Readiness::new();
    let admin = Admin {
        readiness: readiness.clone(),
        metrics: Metrics::unregistered().unwrap(),
    };
    let config = ServerConfig {
        addr: "127.0.0.1:0".parse().unwrap(),
        admin_addr: "127.0.0.1:0".parse().unwrap(),
        drain_timeout,
        ..ServerConfig::new(&certs.cert, &certs.key)
    };
    let server = Server::bind(config, router, admin).await.unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let webhook = server.webhook_addr();
    let admin = server.admin_addr();
    let task = tokio::spawn(server.run(async move {
        let _ = stopped.await;
    }));
    readiness.set_ready();
    Running {
        webhook,
        admin,
        readiness,
        certs,
        stop: Some(stop),
        task,
        _dir: dir,
    }
}

impl Running {
    fn trigger_shutdown(&mut self) {
        self.stop
            .take()
            .expect("shutdown triggered once")
            .send(())
            .unwrap();
    }

    fn client(&self) -> reqwest::Client {
        let ca = std::fs::read(&self.certs.ca_cert).unwrap();
        reqwest::Client::builder()
            .tls_certs_only([reqwest::Certificate::from_pem(&ca).unwrap()])
            .no_proxy()
            .build()
            .unwrap()
    }

    fn webhook_url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{path}", self.webhook.port())
    }

    fn admin_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.admin)
    }

    async fn wait_for_exit(self) -> Result<(), ServerError> {
        tokio::time::timeout(DEADLINE, self.task)
            .await
            .expect("run did not return before the deadline")
            .unwrap()
    }
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

async fn refused(addr: SocketAddr) -> bool {
    matches!(
        tokio::net::TcpStream::connect(addr).await,
        Err(error) if error.kind() == ErrorKind::ConnectionRefused
    )
}

async fn within_deadline<F: Future>(what: &str, future: F) -> F::Output {
    tokio::time::timeout(DEADLINE, future)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

#[tokio::test]
async fn in_flight_requests_finish_while_new_connections_are_refused() {
    let webhook = BlockingWebhook::default();
    let mut server = start(webhook.router(), Duration::from_secs(60)).await;
    let admin = reqwest::Client::builder().no_proxy().build().unwrap();
    let readyz = admin.get(server.admin_url("/readyz")).send().await.unwrap();
    assert_eq!(readyz.status(), StatusCode::OK);

    let client = server.client();
    let in_flight = tokio::spawn(
        client
            .post(server.webhook_url("/validate?timeout=10s"))
            .body("{}")
            .send(),
    );
    within_deadline(
        "the request to reach the handler",
        webhook.started.notified(),
    )
    .await;

    server.trigger_shutdown();
    poll_until("readiness turns false", || async {
        !server.readiness.is_ready()
    })
    .await;
    // The admin port still answers during the drain, so probes see the change.
    let readyz = admin.get(server.admin_url("/readyz")).send().await.unwrap();
    assert_eq!(readyz.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(readyz.text().await.unwrap(), "not ready: shutting down");
    poll_until("the webhook port refuses new connections", || {
        refused(server.webhook)
    })
    .await;
    assert!(!server.task.is_finished(), "run returned before the drain");

    webhook.release.notify_one();
    let response = within_deadline("the in-flight response", in_flight)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.text().await.unwrap(), "done");

    let admin_addr = server.admin;
    server.wait_for_exit().await.unwrap();
    assert!(refused(admin_addr).await, "admin port still open after run");
}

#[tokio::test]
async fn idle_keep_alive_connections_do_not_hold_up_shutdown() {
    let mut server = start(
        BlockingWebhook::default().router(),
        Duration::from_secs(600),
    )
    .await;
    let webhook = server.client();
    let http1 = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(
            &std::fs::read(&server.certs.ca_cert).unwrap(),
        )
        .unwrap()])
        .http1_only()
        .no_proxy()
        .build()
        .unwrap();
    let admin = reqwest::Client::builder().no_proxy().build().unwrap();
    // Each client keeps its connection open in its pool after these.
    for client in [&webhook, &http1] {
        let response = client
            .get(server.webhook_url("/hello"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.text().await.unwrap(), "hello");
    }
    let response = admin.get(server.admin_url("/livez")).send().await.unwrap();
    assert_eq!(response.text().await.unwrap(), "ok");

    server.trigger_shutdown();
    // The drain timeout is 10 minutes: returning within the deadline means idle connections
    // were closed rather than waited for.
    server.wait_for_exit().await.unwrap();
}

#[tokio::test]
async fn the_drain_timeout_bounds_the_wait_for_stuck_requests() {
    let webhook = BlockingWebhook::default();
    let mut server = start(webhook.router(), Duration::from_millis(200)).await;
    let client = server.client();
    let stuck = tokio::spawn(client.post(server.webhook_url("/validate")).send());
    within_deadline(
        "the request to reach the handler",
        webhook.started.notified(),
    )
    .await;

    server.trigger_shutdown();
    server.wait_for_exit().await.unwrap();
    let outcome = within_deadline("the stuck request to end", stuck)
        .await
        .unwrap();
    assert!(outcome.is_err(), "{outcome:?}");
}

#[tokio::test]
async fn binding_a_taken_port_names_the_address() {
    let dir = tempfile::tempdir().unwrap();
    let certs = devcert::generate(dir.path(), &[]).unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken_addr = taken.local_addr().unwrap();
    let config = ServerConfig {
        addr: "127.0.0.1:0".parse().unwrap(),
        admin_addr: taken_addr,
        ..ServerConfig::new(&certs.cert, &certs.key)
    };
    let admin = Admin {
        readiness: Readiness::new(),
        metrics: Metrics::unregistered().unwrap(),
    };
    let error = Server::bind(config, Router::new(), admin)
        .await
        .err()
        .expect("the port is taken");
    assert_eq!(error.reason(), "bind");
    let message = error.to_string();
    assert!(
        message.starts_with(&format!(
            "failed to bind the admin listener to {taken_addr}: "
        )),
        "{message}"
    );
}

#[tokio::test]
async fn shutdown_signal_resolves_on_sigterm_and_sigint() {
    for (flag, name) in [("-TERM", "SIGTERM"), ("-INT", "SIGINT")] {
        // Registered before the signal is sent, so it cannot be missed (or kill the test).
        let signal = ShutdownSignal::register();
        let status = std::process::Command::new("sh")
            .args(["-c", &format!("kill {flag} {}", std::process::id())])
            .status()
            .expect("`sh` runs (install dash or bash if missing)");
        assert!(status.success());
        assert_eq!(within_deadline(name, signal.recv()).await, name);
    }
}

async fn admin_get(admin: &Admin, path: &str) -> (StatusCode, Option<String>, String) {
    let response = admin
        .router()
        .oneshot(Request::get(path).body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .map(|value| value.to_str().unwrap().to_owned());
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        content_type,
        String::from_utf8(body.to_vec()).unwrap(),
    )
}

#[tokio::test]
async fn admin_endpoints_report_liveness_readiness_and_metrics() {
    let metrics = Metrics::unregistered().unwrap();
    metrics.tls_reloads.with_label_values(&["success"]).inc();
    let admin = Admin {
        readiness: Readiness::new(),
        metrics,
    };

    let (status, _, body) = admin_get(&admin, "/livez").await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "ok"));

    let (status, _, body) = admin_get(&admin, "/readyz").await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, "not ready: starting")
    );
    admin.readiness.set_ready();
    let (status, _, body) = admin_get(&admin, "/readyz").await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "ok"));
    admin.readiness.set_not_ready("trust root not loaded");
    let (status, _, body) = admin_get(&admin, "/readyz").await;
    assert_eq!(
        (status, body.as_str()),
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: trust root not loaded"
        )
    );

    let (status, content_type, body) = admin_get(&admin, "/metrics").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(content_type.as_deref(), Some("text/plain; version=0.0.4"));
    assert!(
        body.contains("# TYPE verity_tls_reloads_total counter"),
        "{body}"
    );
    assert!(
        body.contains(r#"verity_tls_reloads_total{result="success"} 1"#),
        "{body}"
    );

    let (status, _, _) = admin_get(&admin, "/validate").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}
