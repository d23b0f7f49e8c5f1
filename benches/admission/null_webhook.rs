//! The null webhook: verity's server stack (`Server::bind`: rustls with the certificate
//! resolver, hyper's HTTP/1 + h2 connection handling, axum routing, the body limit) answering
//! every `POST /validate` with `allowed: true` after decoding the AdmissionReview with verity's
//! own decoder (the uid must be echoed). No policy match, no cache lookup, no metrics, no
//! tracing span: the floor of what any webhook on this stack costs.
//!
//! It runs as its own process (the benchmark binary started again with `--null-webhook CERT
//! KEY`), with the same Tokio runtime as `verity serve`, so it and verity meet the load
//! generator on equal terms and its memory can be read the same way. It prints
//! `webhook=ADDR admin=ADDR` once listening and serves until SIGTERM.

use std::io::Write as _;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::DefaultBodyLimit;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use verity::admission::review::{self, AdmissionResponse, AdmissionReviewResponse};
use verity::metrics::Metrics;
use verity::server::webhook::WebhookSettings;
use verity::server::{Admin, Readiness, Server, ServerConfig, shutdown_signal};

pub fn main(cert: &str, key: &str) -> ExitCode {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let metrics = Metrics::unregistered().expect("metrics");
        let readiness = Readiness::new();
        readiness.set_ready();
        let router = Router::new()
            .route("/validate", post(allow))
            .layer(DefaultBodyLimit::max(WebhookSettings::default().body_limit));
        let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
        let config = ServerConfig {
            addr: loopback,
            admin_addr: loopback,
            reload_interval: Duration::from_secs(2),
            drain_timeout: Duration::from_secs(1),
            ..ServerConfig::new(cert, key)
        };
        let server = Server::bind(config, router, Admin { readiness, metrics })
            .await
            .expect("bind the null webhook");
        let mut stdout = std::io::stdout();
        writeln!(
            stdout,
            "webhook={} admin={}",
            server.webhook_addr(),
            server.admin_addr()
        )
        .expect("stdout");
        stdout.flush().expect("stdout");
        server.run(shutdown_signal()).await.expect("serve");
    });
    ExitCode::SUCCESS
}

async fn allow(body: Bytes) -> Response {
    let uid = match review::decode(&body) {
        Ok(request) => request.uid,
        Err(err) => err.uid,
    };
    axum::Json(AdmissionReviewResponse::from(AdmissionResponse::allow(
        &uid,
    )))
    .into_response()
}
