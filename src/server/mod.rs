//! The HTTPS webhook listener, the plain-HTTP admin listener, certificate reload and shutdown.
//!
//! [`Server::bind`] loads the serving certificate and binds both ports (so tests can bind port 0
//! and read the addresses back); [`Server::run`] serves until `shutdown` resolves, then:
//! readiness turns false, the webhook listener is closed (new connections are refused),
//! in-flight requests get up to `drain_timeout` to finish while idle keep-alive connections are
//! closed, then the admin listener is drained the same way and `run` returns. The admin port
//! keeps answering during the webhook drain, so probes see `/readyz` fail rather than a refusal.
//!
//! Every connection runs in its own task; a TLS handshake that fails or stalls affects only its
//! own connection. Per-request limits (deadline, concurrency, body size) belong to the router.

pub mod admin;
pub mod policy_webhook;
pub mod tls;
pub mod webhook;

use std::{
    future::Future,
    io,
    net::{Ipv4Addr, SocketAddr, SocketAddrV4},
    path::PathBuf,
    sync::Arc,
    time::Duration,
};

use axum::{Router, extract::ConnectInfo};
use hyper::{Request, body::Incoming};
use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    server::conn::auto,
    service::TowerToHyperService,
};
use tokio::{
    net::{TcpListener, TcpStream},
    sync::watch,
    task::JoinSet,
};
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;
use tracing::{debug, error, info, warn};

pub use admin::{Admin, Readiness};
pub use tls::{CertificateFiles, CertificateReloader, CertificateResolver, TlsError};

/// Longest a client may take to complete the TLS handshake.
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Pause after a failed `accept` (e.g. out of file descriptors) so the loop does not spin.
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(100);

/// Where and how to serve.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerConfig {
    /// HTTPS webhook listener.
    pub addr: SocketAddr,
    /// Plain-HTTP `/livez`, `/readyz`, `/metrics`.
    pub admin_addr: SocketAddr,
    /// PEM certificate chain, leaf first.
    pub tls_cert: PathBuf,
    /// PEM private key: PKCS#8, SEC1 or PKCS#1.
    pub tls_key: PathBuf,
    /// How often the certificate and key files are checked for new content.
    pub reload_interval: Duration,
    /// Longest wait for in-flight requests at shutdown.
    pub drain_timeout: Duration,
}

impl ServerConfig {
    pub const DEFAULT_ADDR: SocketAddr =
        SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 8443));
    pub const DEFAULT_ADMIN_ADDR: SocketAddr =
        SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 9090));
    pub const DEFAULT_RELOAD_INTERVAL: Duration = Duration::from_secs(10);
    /// Under Kubernetes' default 30 s termination grace period.
    pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(25);

    /// The defaults, serving the given certificate and key.
    pub fn new(tls_cert: impl Into<PathBuf>, tls_key: impl Into<PathBuf>) -> Self {
        ServerConfig {
            addr: Self::DEFAULT_ADDR,
            admin_addr: Self::DEFAULT_ADMIN_ADDR,
            tls_cert: tls_cert.into(),
            tls_key: tls_key.into(),
            reload_interval: Self::DEFAULT_RELOAD_INTERVAL,
            drain_timeout: Self::DEFAULT_DRAIN_TIMEOUT,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("failed to bind the {listener} listener to {addr}: {source}")]
    Bind {
        listener: &'static str,
        addr: SocketAddr,
        source: io::Error,
    },
    #[error("failed to read the bound address of the {listener} listener: {source}")]
    LocalAddr {
        listener: &'static str,
        source: io::Error,
    },
    #[error("failed to load the serving certificate: {0}")]
    Tls(#[from] TlsError),
}

impl ServerError {
    pub fn reason(&self) -> &'static str {
        match self {
            ServerError::Bind { .. } => "bind",
            ServerError::LocalAddr { .. } => "local_addr",
            ServerError::Tls(error) => error.reason(),
        }
    }
}

/// Both listeners bound and the certificate loaded; [`Server::run`] serves them.
pub struct Server {
    webhook_listener: TcpListener,
    webhook_addr: SocketAddr,
    admin_listener: TcpListener,
    admin_addr: SocketAddr,
    tls_acceptor: TlsAcceptor,
    reloader: CertificateReloader,
    webhook: Router,
    admin: Admin,
    reload_interval: Duration,
    drain_timeout: Duration,
}

impl Server {
    /// Loads the serving certificate and binds both listeners.
    ///
    /// The webhook router receives the peer address as an `axum::extract::ConnectInfo<SocketAddr>`
    /// extension.
    pub async fn bind(
        config: ServerConfig,
        webhook: Router,
        admin: Admin,
    ) -> Result<Self, ServerError> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let files = CertificateFiles {
            cert: config.tls_cert.clone(),
            key: config.tls_key.clone(),
        };
        let reloader = CertificateReloader::load(
            files,
            Arc::clone(&provider),
            admin.metrics.tls_reloads.clone(),
        )?;
        let tls_config = tls::server_config(reloader.resolver(), provider)?;
        let (webhook_listener, webhook_addr) = bind("webhook", config.addr).await?;
        let (admin_listener, admin_addr) = bind("admin", config.admin_addr).await?;
        info!(webhook = %webhook_addr, admin = %admin_addr, "listening");
        Ok(Server {
            webhook_listener,
            webhook_addr,
            admin_listener,
            admin_addr,
            tls_acceptor: TlsAcceptor::from(Arc::new(tls_config)),
            reloader,
            webhook,
            admin,
            reload_interval: config.reload_interval,
            drain_timeout: config.drain_timeout,
        })
    }

    /// The address the HTTPS webhook listener is bound to.
    pub fn webhook_addr(&self) -> SocketAddr {
        self.webhook_addr
    }

    /// The address the plain-HTTP admin listener is bound to.
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin_addr
    }

    /// Serves until `shutdown` resolves, then drains as described in the module docs.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServerError> {
        let Server {
            webhook_listener,
            admin_listener,
            tls_acceptor,
            reloader,
            webhook,
            admin,
            reload_interval,
            drain_timeout,
            ..
        } = self;
        let (stop_webhook, webhook_stopping) = watch::channel(false);
        let (stop_admin, admin_stopping) = watch::channel(false);
        let readiness = admin.readiness.clone();

        let trigger = async move {
            shutdown.await;
            readiness.set_not_ready("shutting down");
            info!("shutdown requested: not ready, draining webhook connections");
            let _ = stop_webhook.send(true);
        };
        let webhook = async move {
            let transport = Transport::Tls(tls_acceptor);
            serve_listener(
                "webhook",
                webhook_listener,
                transport,
                webhook,
                webhook_stopping,
                drain_timeout,
            )
            .await;
            // The admin port outlives the webhook drain so probes keep seeing `/readyz` fail.
            let _ = stop_admin.send(true);
        };
        let admin = serve_listener(
            "admin",
            admin_listener,
            Transport::Plain,
            admin.router(),
            admin_stopping,
            drain_timeout,
        );
        tokio::select! {
            () = reloader.run(reload_interval) => {}
            ((), (), ()) = async { tokio::join!(trigger, webhook, admin) } => {}
        }
        info!("server stopped");
        Ok(())
    }
}

/// Binds both listeners and serves until `shutdown` resolves (see [`Server`]).
pub async fn serve(
    config: ServerConfig,
    webhook: Router,
    admin: Admin,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    Server::bind(config, webhook, admin)
        .await?
        .run(shutdown)
        .await
}

/// Resolves on the first SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    ShutdownSignal::register().recv().await;
}

/// SIGTERM and SIGINT handlers, registered up front so a signal arriving before anyone waits
/// is not lost.
pub struct ShutdownSignal {
    terminate: Option<tokio::signal::unix::Signal>,
    interrupt: Option<tokio::signal::unix::Signal>,
}

impl ShutdownSignal {
    /// Registers the handlers. Must be called within a Tokio runtime.
    ///
    /// A handler that cannot be registered is logged and skipped; that signal then keeps its
    /// default action (terminating the process), which is the best remaining behaviour.
    pub fn register() -> Self {
        use tokio::signal::unix::{SignalKind, signal};
        let register = |kind: SignalKind, name: &str| match signal(kind) {
            Ok(stream) => Some(stream),
            Err(error) => {
                error!(signal = name, %error, "failed to register signal handler");
                None
            }
        };
        ShutdownSignal {
            terminate: register(SignalKind::terminate(), "SIGTERM"),
            interrupt: register(SignalKind::interrupt(), "SIGINT"),
        }
    }

    /// Waits for either signal; returns its name.
    pub async fn recv(mut self) -> &'static str {
        async fn next(stream: &mut Option<tokio::signal::unix::Signal>) {
            match stream {
                Some(stream) => {
                    stream.recv().await;
                }
                None => std::future::pending().await,
            }
        }
        let name = tokio::select! {
            () = next(&mut self.terminate) => "SIGTERM",
            () = next(&mut self.interrupt) => "SIGINT",
        };
        info!(signal = name, "received shutdown signal");
        name
    }
}

async fn bind(
    listener: &'static str,
    addr: SocketAddr,
) -> Result<(TcpListener, SocketAddr), ServerError> {
    let bound = TcpListener::bind(addr)
        .await
        .map_err(|source| ServerError::Bind {
            listener,
            addr,
            source,
        })?;
    let local = bound
        .local_addr()
        .map_err(|source| ServerError::LocalAddr { listener, source })?;
    Ok((bound, local))
}

#[derive(Clone)]
enum Transport {
    Plain,
    Tls(TlsAcceptor),
}

/// Accepts connections until `stopping` turns true, then closes the listener and waits up to
/// `drain_timeout` for the connections to finish, aborting those that do not.
async fn serve_listener(
    name: &'static str,
    listener: TcpListener,
    transport: Transport,
    router: Router,
    mut stopping: watch::Receiver<bool>,
    drain_timeout: Duration,
) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            () = stopped(&mut stopping) => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    connections.spawn(serve_connection(
                        name,
                        stream,
                        peer,
                        transport.clone(),
                        router.clone(),
                        stopping.clone(),
                    ));
                }
                Err(error) => {
                    warn!(listener = name, %error, "failed to accept a connection");
                    tokio::time::sleep(ACCEPT_ERROR_BACKOFF).await;
                }
            },
            Some(joined) = connections.join_next(), if !connections.is_empty() => {
                report_join(name, joined);
            }
        }
    }
    // Closing the socket makes new connection attempts fail fast instead of queueing.
    drop(listener);
    info!(
        listener = name,
        connections = connections.len(),
        "stopped accepting; draining connections"
    );
    let drain = async {
        while let Some(joined) = connections.join_next().await {
            report_join(name, joined);
        }
    };
    if tokio::time::timeout(drain_timeout, drain).await.is_err() {
        warn!(
            listener = name,
            connections = connections.len(),
            timeout = ?drain_timeout,
            "drain timeout reached; closing remaining connections"
        );
        connections.shutdown().await;
    }
}

fn report_join(listener: &'static str, joined: Result<(), tokio::task::JoinError>) {
    if let Err(error) = joined
        && error.is_panic()
    {
        error!(listener, %error, "connection task panicked");
    }
}

async fn stopped(stopping: &mut watch::Receiver<bool>) {
    // An error means the sender is gone, which only happens once shutdown is under way.
    let _ = stopping.wait_for(|stop| *stop).await;
}

async fn serve_connection(
    listener: &'static str,
    stream: TcpStream,
    peer: SocketAddr,
    transport: Transport,
    router: Router,
    mut stopping: watch::Receiver<bool>,
) {
    match transport {
        Transport::Plain => serve_http(listener, stream, peer, router, stopping).await,
        Transport::Tls(acceptor) => {
            let handshake = tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream));
            let tls_stream = tokio::select! {
                handshake = handshake => match handshake {
                    Ok(Ok(tls_stream)) => tls_stream,
                    Ok(Err(error)) => {
                        debug!(listener, %peer, %error, "TLS handshake failed");
                        return;
                    }
                    Err(_) => {
                        debug!(listener, %peer, timeout = ?TLS_HANDSHAKE_TIMEOUT, "TLS handshake timed out");
                        return;
                    }
                },
                // Nothing was asked yet, so nothing is lost by dropping it.
                () = stopped(&mut stopping) => return,
            };
            serve_http(listener, tls_stream, peer, router, stopping).await;
        }
    }
}

/// Serves HTTP/1.1 or h2 on one connection until the client closes it, or, once `stopping`
/// turns true, until its in-flight requests are answered.
async fn serve_http<S>(
    listener: &'static str,
    stream: S,
    peer: SocketAddr,
    router: Router,
    mut stopping: watch::Receiver<bool>,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    let service = router.map_request(move |mut request: Request<Incoming>| {
        request.extensions_mut().insert(ConnectInfo(peer));
        request
    });
    let service = TowerToHyperService::new(service);
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // The timer lets hyper enforce its header read timeout on HTTP/1.
    builder.http1().timer(TokioTimer::new());
    builder.http2().timer(TokioTimer::new());
    let connection = builder.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(connection);
    let result = tokio::select! {
        result = connection.as_mut() => result,
        () = stopped(&mut stopping) => {
            // Finishes in-flight requests, then closes: HTTP/1 stops keep-alive, h2 sends GOAWAY.
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(error) = result {
        debug!(listener, %peer, %error, "connection ended with an error");
    }
}
