//! Command line: `serve`, `verify`, `validate`, `dev-certs`, `crds`. Wiring only.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand, ValueEnum};
use serde_json::Value;

use std::sync::Arc;

use tracing::{info, warn};

use crate::admission::Admission;
use crate::admission::decision::decide;
use crate::admission::evaluate::Evaluation;
use crate::admission::explain::Explanation;
use crate::admission::images::{ContainerImage, WorkloadKind, images_of};
use crate::admission::mutate::NamespaceOptOut;
use crate::devcert;
use crate::metrics::Metrics;
use crate::policy::compiled::ResourceRef;
use crate::policy::index::{NoMatchPolicy, PolicyIndex, Settings};
use crate::policy::source::file::{self, FileWatcher};
use crate::policy::source::kube::namespaces::NamespaceWatch;
use crate::policy::source::kube::{self as kube_source, KubeSource};
use crate::policy::source::{Documents, LoadOptions, RemoteTrust, build_snapshot};
use crate::policy::validate::ValidationOptions;
use crate::registry::{
    ClusterCredentials, CredentialSource, DocumentCredentials, Keychain, RegistryClient,
    RegistryConfig, ReloadableCredentials,
};
use crate::server::admin::{Admin, Readiness};
use crate::server::policy_webhook::{self, PolicyReferences};
use crate::server::webhook::{self, WebhookSettings, parse_go_duration};
use crate::server::{Server, ServerConfig, ShutdownSignal};
use crate::telemetry::{self, LogFormat};
use crate::verify::trust::TrustMaterial;
use crate::verify::tuf::{TufRoots, TufSettings};
use crate::verify::{CacheSettings, RequestContext, Verifier, VerifierConfig};

#[derive(Debug, Parser)]
#[command(
    name = "verity",
    version,
    about = "Kubernetes admission controller for sigstore ClusterImagePolicies"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the admission webhook (HTTPS) and the admin server (HTTP).
    Serve(Box<ServeArgs>),
    /// Evaluate images as an admission would and explain the outcome (exit 0 allowed, 1 denied,
    /// 2 usage or invalid policies).
    Verify(Box<VerifyArgs>),
    /// Validate ClusterImagePolicy and TrustRoot documents (exit 1 on errors).
    Validate(ValidateArgs),
    /// Write a development CA and a serving certificate signed by it.
    DevCerts(DevCertsArgs),
    /// Print the CustomResourceDefinitions generated from verity's types.
    Crds,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum NoMatchArg {
    Deny,
    Warn,
    Allow,
}

impl From<LogFormatArg> for LogFormat {
    fn from(value: LogFormatArg) -> Self {
        match value {
            LogFormatArg::Plain => LogFormat::Plain,
            LogFormatArg::Json => LogFormat::Json,
        }
    }
}

impl From<NoMatchArg> for NoMatchPolicy {
    fn from(value: NoMatchArg) -> Self {
        match value {
            NoMatchArg::Deny => NoMatchPolicy::Deny,
            NoMatchArg::Warn => NoMatchPolicy::Warn,
            NoMatchArg::Allow => NoMatchPolicy::Allow,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum LogFormatArg {
    Plain,
    Json,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum OutputFormat {
    Text,
    Json,
}

/// How policies are judged (where they come from is per command).
#[derive(Debug, Args)]
struct PolicyArgs {
    /// What to do with an image no policy matches (in cluster mode, config-policy-controller's
    /// no-match-policy overrides it).
    #[arg(
        long,
        env = "VERITY_NO_MATCH_POLICY",
        value_enum,
        default_value = "deny"
    )]
    no_match_policy: NoMatchArg,
    /// Reject policies without authorities (in cluster mode, config-policy-controller's
    /// fail-on-empty-authorities overrides it).
    #[arg(long, env = "VERITY_FAIL_ON_EMPTY_AUTHORITIES", default_value_t = true, action = clap::ArgAction::Set)]
    fail_on_empty_authorities: bool,
    /// A trusted_root.json replacing the embedded public-good Sigstore trust root (Fulcio CAs,
    /// Rekor and CT log keys) for authorities without trustRootRef.
    #[arg(long, env = "VERITY_TRUST_ROOT")]
    trust_root: Option<PathBuf>,
}

impl PolicyArgs {
    fn load_options(&self) -> anyhow::Result<LoadOptions> {
        let default_trust = match &self.trust_root {
            Some(path) => {
                let bytes = std::fs::read(path)
                    .with_context(|| format!("cannot read --trust-root {}", path.display()))?;
                TrustMaterial::from_trusted_root_json(&bytes)
                    .with_context(|| format!("invalid --trust-root {}", path.display()))?
            }
            None => TrustMaterial::production().context("the embedded trust root is invalid")?,
        };
        Ok(LoadOptions {
            settings: Settings {
                no_match: self.no_match_policy.into(),
            },
            validation: ValidationOptions {
                fail_on_empty_authorities: self.fail_on_empty_authorities,
                ..ValidationOptions::default()
            },
            default_trust: Arc::new(default_trust),
            remote_trust: RemoteTrust::Unfetched,
        })
    }
}

/// How `remote` TrustRoots (TUF mirrors) are fetched.
#[derive(Debug, Args)]
struct TufArgs {
    /// How often the TUF repository of each remote TrustRoot is fetched again once it has been
    /// fetched (failures are retried sooner, with backoff, keeping the last good trust root).
    #[arg(long, env = "VERITY_TUF_REFRESH_INTERVAL", default_value = "24h", value_parser = duration)]
    tuf_refresh_interval: Duration,
    /// Longest wait between two attempts to fetch a TUF repository that failed (the wait starts
    /// at 1s, or this when shorter, and doubles after each failure).
    #[arg(long, env = "VERITY_TUF_RETRY_MAX", default_value = "5m", value_parser = duration)]
    tuf_retry_max: Duration,
    /// Longest wait for one request to a TUF mirror.
    #[arg(long, env = "VERITY_TUF_TIMEOUT", default_value = "10s", value_parser = duration)]
    tuf_timeout: Duration,
    /// A PEM CA bundle trusted for TUF mirrors besides the system roots.
    #[arg(long, env = "VERITY_TUF_MIRROR_CA")]
    tuf_mirror_ca: Option<PathBuf>,
}

impl TufArgs {
    /// The background fetcher of remote TrustRoots (on the current runtime), counting its
    /// fetches in `metrics` when given.
    fn fetcher(&self, metrics: Option<&Metrics>) -> anyhow::Result<TufRoots> {
        let mirror_ca_pem = match &self.tuf_mirror_ca {
            Some(path) => Some(
                std::fs::read(path)
                    .with_context(|| format!("cannot read --tuf-mirror-ca {}", path.display()))?,
            ),
            None => None,
        };
        let defaults = TufSettings::default();
        let settings = TufSettings {
            refresh_interval: self.tuf_refresh_interval,
            retry_initial: defaults.retry_initial.min(self.tuf_retry_max),
            retry_max: self.tuf_retry_max,
            request_timeout: self.tuf_timeout,
            mirror_ca_pem,
            ..defaults
        };
        match metrics {
            Some(metrics) => TufRoots::observed(settings, metrics),
            None => TufRoots::new(settings),
        }
        .context("cannot set up the TUF client")
    }
}

/// How registries are reached and results cached.
#[derive(Debug, Args)]
struct RegistryArgs {
    /// A docker config.json whose credentials are used after the workload's pull secrets.
    #[arg(long, env = "VERITY_DOCKER_CONFIG")]
    docker_config: Option<PathBuf>,
    /// HOST[:PORT]=FILE: a PEM CA bundle trusted (besides the system roots) for that registry;
    /// repeatable.
    #[arg(
        long = "registry-ca",
        env = "VERITY_REGISTRY_CA",
        value_delimiter = ',',
        value_name = "HOST=FILE"
    )]
    registry_ca: Vec<String>,
    /// HOST[:PORT] reached over plain HTTP (test registries); repeatable.
    #[arg(
        long = "insecure-registry",
        env = "VERITY_INSECURE_REGISTRIES",
        value_delimiter = ',',
        value_name = "HOST"
    )]
    insecure_registry: Vec<String>,
    /// Longest wait for one registry call.
    #[arg(long, env = "VERITY_REGISTRY_TIMEOUT", default_value = "5s", value_parser = duration)]
    registry_timeout: Duration,
    /// How long a passed verification is reused.
    #[arg(long, env = "VERITY_CACHE_TTL", default_value = "10m", value_parser = duration)]
    cache_ttl: Duration,
    /// How long a definite failure (no or invalid signatures) is reused; registry errors never are.
    #[arg(long, env = "VERITY_NEGATIVE_CACHE_TTL", default_value = "30s", value_parser = duration)]
    negative_cache_ttl: Duration,
    /// How long a tag → digest resolution is reused.
    #[arg(long, env = "VERITY_DIGEST_CACHE_TTL", default_value = "30s", value_parser = duration)]
    digest_cache_ttl: Duration,
    /// Most results kept in each cache.
    #[arg(long, env = "VERITY_CACHE_SIZE", default_value_t = 10_000)]
    cache_size: usize,
}

impl RegistryArgs {
    fn verifier(
        &self,
        metrics: &Metrics,
        credentials: Arc<dyn CredentialSource>,
    ) -> anyhow::Result<Verifier> {
        let mut registry_cas = Vec::with_capacity(self.registry_ca.len());
        for entry in &self.registry_ca {
            let (host, file) = entry
                .split_once('=')
                .with_context(|| format!("--registry-ca {entry:?}: expected HOST=FILE"))?;
            let pem = std::fs::read(file)
                .with_context(|| format!("--registry-ca {host}: cannot read {file}"))?;
            registry_cas.push((host.to_string(), pem));
        }
        let registry = RegistryClient::new(
            RegistryConfig {
                insecure_registries: self.insecure_registry.clone(),
                registry_cas,
                request_timeout: self.registry_timeout,
                ..RegistryConfig::default()
            },
            Some(metrics.clone()),
        )?;
        let docker_config = match &self.docker_config {
            Some(path) => {
                let bytes = std::fs::read(path)
                    .with_context(|| format!("cannot read --docker-config {}", path.display()))?;
                Keychain::from_docker_config_json(&bytes)
                    .with_context(|| format!("invalid --docker-config {}", path.display()))?
            }
            None => Keychain::anonymous(),
        };
        Ok(Verifier::new(VerifierConfig {
            registry,
            docker_config,
            credentials,
            cache: CacheSettings {
                positive_ttl: self.cache_ttl,
                negative_ttl: self.negative_cache_ttl,
                digest_ttl: self.digest_cache_ttl,
                capacity: self.cache_size,
            },
            metrics: metrics.clone(),
        }))
    }
}

fn duration(text: &str) -> Result<Duration, String> {
    parse_go_duration(text)
        .ok_or_else(|| format!("invalid duration {text:?} (examples: 9s, 500ms, 1m)"))
}

#[derive(Debug, Args)]
struct ServeArgs {
    /// HTTPS address of the webhook.
    #[arg(long, env = "VERITY_ADDR", default_value = "0.0.0.0:8443")]
    addr: SocketAddr,
    /// Plain-HTTP address of /livez, /readyz and /metrics.
    #[arg(long, env = "VERITY_ADMIN_ADDR", default_value = "0.0.0.0:9090")]
    admin_addr: SocketAddr,
    /// PEM serving certificate (re-read when it changes).
    #[arg(long, env = "VERITY_TLS_CERT")]
    tls_cert: PathBuf,
    /// PEM private key of the serving certificate.
    #[arg(long, env = "VERITY_TLS_KEY")]
    tls_key: PathBuf,
    /// Policies from files: a YAML file or a directory of *.yaml/*.yml files (multi-document);
    /// repeatable. Without it, policies come from the cluster.
    #[arg(long = "policies", env = "VERITY_POLICIES", value_delimiter = ',')]
    policies: Vec<PathBuf>,
    /// Policies from the cluster this kubeconfig points at. In a pod (KUBERNETES_SERVICE_HOST
    /// set) without --policies, the in-cluster service account is used instead.
    #[arg(long, env = "VERITY_KUBECONFIG", conflicts_with = "policies")]
    kubeconfig: Option<PathBuf>,
    /// Namespace of the Secrets for key.secretRef and of config-policy-controller (cluster
    /// mode); defaults to POD_NAMESPACE, else verity-system.
    #[arg(long, env = "VERITY_NAMESPACE")]
    namespace: Option<String>,
    /// Cluster mode: use the pull secrets of admitted workloads (their imagePullSecrets and their
    /// ServiceAccount's) and signaturePullSecrets, watched in every namespace (needs list and
    /// watch on ServiceAccounts and Secrets cluster-wide). false: only verity's own credentials.
    #[arg(long, env = "VERITY_CLUSTER_PULL_SECRETS", default_value_t = true, action = clap::ArgAction::Set)]
    cluster_pull_secrets: bool,
    #[command(flatten)]
    policy: PolicyArgs,
    #[command(flatten)]
    tuf: TufArgs,
    #[command(flatten)]
    registry: RegistryArgs,
    #[arg(long, env = "VERITY_LOG_FORMAT", value_enum, default_value = "plain")]
    log_format: LogFormatArg,
    /// Log filter, e.g. `info` or `verity=debug,info`.
    #[arg(long, env = "VERITY_LOG_LEVEL", default_value = "info")]
    log_level: String,
    /// Longest time to answer one request; keep it under the webhook's timeoutSeconds.
    #[arg(long, env = "VERITY_REQUEST_TIMEOUT", default_value = "9s", value_parser = duration)]
    request_timeout: Duration,
    /// Requests verified at once; more wait for a slot until their deadline.
    #[arg(long, env = "VERITY_MAX_IN_FLIGHT", default_value_t = 64)]
    max_in_flight: usize,
    /// How often policy files are checked for changes.
    #[arg(long, env = "VERITY_POLICY_RELOAD_INTERVAL", default_value = "2s", value_parser = duration)]
    policy_reload_interval: Duration,
    /// How often the certificate files are checked for changes.
    #[arg(long, env = "VERITY_CERT_RELOAD_INTERVAL", default_value = "2s", value_parser = duration)]
    cert_reload_interval: Duration,
    /// Longest wait for in-flight requests at shutdown.
    #[arg(long, env = "VERITY_DRAIN_TIMEOUT", default_value = "25s", value_parser = duration)]
    drain_timeout: Duration,
}

#[derive(Debug, Args)]
struct VerifyArgs {
    /// A YAML file or a directory of *.yaml/*.yml files (multi-document); repeatable.
    #[arg(
        long = "policies",
        env = "VERITY_POLICIES",
        value_delimiter = ',',
        required = true
    )]
    policies: Vec<PathBuf>,
    #[command(flatten)]
    policy: PolicyArgs,
    #[command(flatten)]
    tuf: TufArgs,
    #[command(flatten)]
    registry: RegistryArgs,
    /// A Kubernetes object (YAML or JSON) to admit; its kind, labels and images are used.
    /// IMAGE arguments, when given, replace its containers' images.
    #[arg(long)]
    resource: Option<PathBuf>,
    #[arg(long, value_enum, default_value = "text")]
    output: OutputFormat,
    /// Give up verifying after this long.
    #[arg(long, default_value = "30s", value_parser = duration)]
    timeout: Duration,
    /// Images to check, as a Pod's containers would reference them.
    #[arg(value_name = "IMAGE")]
    images: Vec<String>,
}

#[derive(Debug, Args)]
struct ValidateArgs {
    /// YAML files with ClusterImagePolicy, TrustRoot and Secret documents.
    #[arg(value_name = "FILE", required = true)]
    files: Vec<PathBuf>,
    /// Accept policies without authorities.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    fail_on_empty_authorities: bool,
}

#[derive(Debug, Args)]
struct DevCertsArgs {
    /// Directory for ca.crt, tls.crt and tls.key.
    #[arg(long)]
    out: PathBuf,
    /// Extra subject alternative names (DNS names or IP addresses); localhost and 127.0.0.1 are
    /// always included.
    #[arg(long = "san")]
    sans: Vec<String>,
}

/// Parses the command line and runs it.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::from(2);
        }
    };
    runtime.block_on(run(cli))
}

async fn run(cli: Cli) -> ExitCode {
    let result = match cli.command {
        Command::Serve(args) => serve(*args).await.map(|()| ExitCode::SUCCESS),
        Command::Verify(args) => return verify(*args).await,
        Command::Validate(args) => Ok(validate(args)),
        Command::DevCerts(args) => dev_certs(args),
        Command::Crds => crds(),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(2)
        }
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    // Registered first, so a SIGTERM during start-up is not lost.
    let signal = ShutdownSignal::register();
    telemetry::init(args.log_format.into(), &args.log_level)?;
    let metrics = Metrics::new(prometheus::Registry::new()).context("cannot register metrics")?;
    let readiness = Readiness::new();

    let source = PolicySource::choose(
        &args.policies,
        args.kubeconfig.as_deref(),
        std::env::var_os("KUBERNETES_SERVICE_HOST").is_some(),
    )?;
    let mut load = args.policy.load_options()?;
    // remote TrustRoots are fetched in the background: never before serving, never on an
    // admission; policies naming one deny their images until it arrives.
    load.remote_trust = RemoteTrust::Fetch(args.tuf.fetcher(Some(&metrics))?);
    let index = Arc::new(PolicyIndex::default());
    // Files are loaded before binding (invalid files refuse to start); the cluster source
    // starts once the server is bound and turns readiness on after its first full sync.
    // Cluster mode: namespaces annotated verity.dev/mutate=false are never pinned.
    let mut namespace_opt_out: Option<Arc<dyn NamespaceOptOut>> = None;
    let (policy_references, credentials, source_task) = match source {
        PolicySource::Files(paths) => {
            let loaded = file::load(&paths, &load, 1)
                .map_err(|err| anyhow::anyhow!("invalid policies, refusing to start:\n{err}"))?;
            let credentials = ReloadableCredentials::new(loaded.credentials);
            for warning in &loaded.warnings {
                warn!(%warning, "policy warning");
            }
            metrics.policies_loaded.set(loaded.snapshot.len() as i64);
            info!(
                policies = loaded.snapshot.len(),
                no_match = load.settings.no_match.as_str(),
                "policies loaded"
            );
            index.replace(loaded.snapshot);
            let references = PolicyReferences::Files {
                paths: paths.clone(),
                load: LoadOptions {
                    remote_trust: load.remote_trust.lookup_only(),
                    ..load.clone()
                },
            };
            let watcher = FileWatcher {
                paths,
                load,
                interval: args.policy_reload_interval,
                index: Arc::clone(&index),
                credentials: Arc::clone(&credentials),
                metrics: metrics.clone(),
            };
            (
                references,
                credentials as Arc<dyn CredentialSource>,
                SourceTask::Files(watcher, loaded.fingerprint),
            )
        }
        PolicySource::Cluster(kubeconfig) => {
            let client = kube_source::client(kubeconfig.as_deref()).await?;
            let namespace = args
                .namespace
                .clone()
                .or_else(|| {
                    std::env::var("POD_NAMESPACE")
                        .ok()
                        .filter(|n| !n.is_empty())
                })
                .unwrap_or_else(|| kube_source::DEFAULT_NAMESPACE.to_string());
            info!(
                namespace = %namespace,
                kubeconfig = kubeconfig.as_deref().map(|p| p.display().to_string()).unwrap_or_else(|| "in-cluster".to_string()),
                "policies come from the cluster"
            );
            let mut source = KubeSource::new(
                client.clone(),
                namespace,
                load,
                Arc::clone(&index),
                readiness.clone(),
                metrics.clone(),
            );
            let (namespaces, namespace_watch) = NamespaceWatch::watch(client.clone());
            namespace_opt_out = Some(Arc::new(namespaces));
            let mut watches = vec![tokio::spawn(namespace_watch)];
            let credentials: Arc<dyn CredentialSource> = if args.cluster_pull_secrets {
                let (credentials, driver) = ClusterCredentials::watch(client);
                source = source.with_credentials(credentials.clone());
                watches.push(tokio::spawn(driver));
                Arc::new(credentials)
            } else {
                info!("cluster pull secrets off: only verity's own registry credentials are used");
                Arc::new(DocumentCredentials::default())
            };
            (
                PolicyReferences::Cluster(source.references()),
                credentials,
                SourceTask::Cluster(source, watches),
            )
        }
    };

    let verifier = args.registry.verifier(&metrics, credentials)?;
    let mut admission = Admission::new(Arc::clone(&index), verifier, metrics.clone());
    if let Some(namespaces) = namespace_opt_out {
        admission = admission.with_namespace_opt_out(namespaces);
    }
    let webhook_settings = WebhookSettings {
        request_timeout: args.request_timeout,
        max_in_flight: args.max_in_flight,
        ..WebhookSettings::default()
    };
    let webhook = webhook::router(admission, webhook_settings.clone(), metrics.clone()).merge(
        policy_webhook::router(policy_references, webhook_settings, metrics.clone()),
    );
    let config = ServerConfig {
        addr: args.addr,
        admin_addr: args.admin_addr,
        tls_cert: args.tls_cert,
        tls_key: args.tls_key,
        reload_interval: args.cert_reload_interval,
        drain_timeout: args.drain_timeout,
    };
    let admin = Admin {
        readiness: readiness.clone(),
        metrics: metrics.clone(),
    };
    let server = Server::bind(config, webhook, admin).await?;

    let watching = match source_task {
        SourceTask::Files(watcher, fingerprint) => {
            let watching = tokio::spawn(watcher.run(fingerprint));
            readiness.set_ready();
            vec![watching]
        }
        SourceTask::Cluster(source, watches) => std::iter::once(tokio::spawn(source.run()))
            .chain(watches)
            .collect(),
    };
    server
        .run(async move {
            let name = signal.recv().await;
            info!(signal = name, "shutting down");
        })
        .await?;
    for task in watching {
        task.abort();
    }
    Ok(())
}

/// Where `serve` reads policies from: exactly one of files and the cluster.
#[derive(Debug, PartialEq, Eq)]
enum PolicySource {
    Files(Vec<PathBuf>),
    /// A kubeconfig, or the in-cluster service account (`None`).
    Cluster(Option<PathBuf>),
}

impl PolicySource {
    fn choose(
        policies: &[PathBuf],
        kubeconfig: Option<&std::path::Path>,
        in_cluster: bool,
    ) -> anyhow::Result<Self> {
        match (policies.is_empty(), kubeconfig) {
            (false, Some(_)) => {
                anyhow::bail!("give either --policies (files) or --kubeconfig (cluster), not both")
            }
            (false, None) => Ok(PolicySource::Files(policies.to_vec())),
            (true, Some(path)) => Ok(PolicySource::Cluster(Some(path.to_path_buf()))),
            (true, None) if in_cluster => Ok(PolicySource::Cluster(None)),
            (true, None) => anyhow::bail!(
                "no policy source: give --policies FILE|DIR for policy files, or --kubeconfig PATH for a cluster (in a pod, the in-cluster service account is used)"
            ),
        }
    }
}

/// What keeps the index current once the server is bound.
enum SourceTask {
    Files(FileWatcher, String),
    /// The source, and the already running namespace and registry credential watches.
    Cluster(KubeSource, Vec<tokio::task::JoinHandle<()>>),
}

fn dev_certs(args: DevCertsArgs) -> anyhow::Result<ExitCode> {
    let paths = devcert::generate(&args.out, &args.sans)?;
    println!(
        "wrote {} (CA), {} and {}",
        paths.ca_cert.display(),
        paths.cert.display(),
        paths.key.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn crds() -> anyhow::Result<ExitCode> {
    let yaml = crate::policy::crd::custom_resource_definitions_yaml()
        .context("cannot render the CRDs as YAML")?;
    print!("{yaml}");
    Ok(ExitCode::SUCCESS)
}

fn validate(args: ValidateArgs) -> ExitCode {
    let mut documents = Documents::default();
    let mut problems = Vec::new();
    for path in &args.files {
        match std::fs::read_to_string(path) {
            Ok(text) => {
                if let Err(err) = documents.add_yaml(&path.display().to_string(), &text) {
                    problems.extend(err.problems);
                }
            }
            Err(err) => problems.push(format!("{}: cannot read: {err}", path.display())),
        }
    }
    let load = match TrustMaterial::production() {
        Ok(trust) => LoadOptions {
            settings: Settings::default(),
            validation: ValidationOptions {
                fail_on_empty_authorities: args.fail_on_empty_authorities,
                ..ValidationOptions::default()
            },
            default_trust: Arc::new(trust),
            // validate never uses the network: remote TrustRoots are validated, not fetched.
            remote_trust: RemoteTrust::Unfetched,
        },
        Err(err) => {
            eprintln!("error: the embedded trust root is invalid: {err}");
            return ExitCode::from(2);
        }
    };
    match build_snapshot(&documents, &load, 0) {
        Ok((_, warnings)) => {
            for warning in warnings {
                eprintln!("warning: {warning}");
            }
        }
        Err(err) => problems.extend(err.problems),
    }
    if problems.is_empty() {
        println!(
            "valid: {} ClusterImagePolicies, {} TrustRoots, {} Secrets",
            documents.policies.len(),
            documents.trust_roots.len(),
            documents.secrets.len()
        );
        ExitCode::SUCCESS
    } else {
        for problem in problems {
            eprintln!("error: {problem}");
        }
        ExitCode::from(1)
    }
}

async fn verify(args: VerifyArgs) -> ExitCode {
    let loaded = match verify_load(&args).await {
        Ok(loaded) => loaded,
        Err(err) => {
            eprintln!("error: invalid policies:\n{err:#}");
            return ExitCode::from(2);
        }
    };
    for warning in &loaded.warnings {
        eprintln!("warning: {warning}");
    }
    let target = match Target::from_args(args.resource.as_deref(), &args.images) {
        Ok(target) => target,
        Err(err) => {
            eprintln!("error: {err:#}");
            return ExitCode::from(2);
        }
    };
    let snapshot = loaded.snapshot;
    let credentials: Arc<dyn CredentialSource> = Arc::new(loaded.credentials);
    let verifier = match Metrics::unregistered()
        .map_err(anyhow::Error::from)
        .and_then(|metrics| args.registry.verifier(&metrics, credentials))
    {
        Ok(verifier) => verifier,
        Err(err) => {
            eprintln!("error: {err:#}");
            return ExitCode::from(2);
        }
    };
    let context = RequestContext::standalone(Instant::now() + args.timeout);
    let results = Evaluation {
        snapshot: &snapshot,
        verifier: &verifier,
        resource: &target.resource,
        labels: &target.labels,
        context: &context,
        exhaustive: true,
    }
    .images(&target.images)
    .await;
    let decision = decide(&results, snapshot.settings().no_match);
    let explanation = Explanation::new(&results, &decision);
    let rendered = match args.output {
        OutputFormat::Text => explanation.to_text(snapshot.settings().no_match),
        OutputFormat::Json => match serde_json::to_string_pretty(&explanation) {
            Ok(json) => json + "\n",
            Err(err) => {
                eprintln!("error: cannot render JSON: {err}");
                return ExitCode::from(2);
            }
        },
    };
    let mut stdout = std::io::stdout();
    if stdout.write_all(rendered.as_bytes()).is_err() {
        return ExitCode::from(2);
    }
    if decision.allowed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// The policies of `verity verify`. remote TrustRoots are fetched once, before loading (a
/// one-shot command has nothing to wait in the background for), within `--timeout`.
async fn verify_load(args: &VerifyArgs) -> anyhow::Result<file::Loaded> {
    let mut load = args.policy.load_options()?;
    let tuf = args.tuf.fetcher(None)?;

    load.remote_trust = RemoteTrust::Fetch(tuf.clone());
    let first = file::load(&args.policies, &load, 1).map_err(|e| anyhow::anyhow!("{e}"))?;
    if tuf.following() == 0 {
        return Ok(first);
    }
    if tokio::time::timeout(args.timeout, tuf.first_attempts())
        .await
        .is_err()
    {
        warn!("TUF repositories did not answer within --timeout");
    }
    file::load(&args.policies, &load, 1).map_err(|e| anyhow::anyhow!("{e}"))
}

/// What `verity verify` admits: a Pod with the given images, or a given object.
struct Target {
    resource: ResourceRef,
    labels: BTreeMap<String, String>,
    images: Vec<ContainerImage>,
}

impl Target {
    fn from_args(resource: Option<&std::path::Path>, images: &[String]) -> anyhow::Result<Self> {
        let Some(path) = resource else {
            if images.is_empty() {
                anyhow::bail!("give at least one IMAGE, or --resource FILE");
            }
            return Ok(Target {
                resource: ResourceRef::pods(),
                labels: BTreeMap::new(),
                images: as_containers("spec", images),
            });
        };
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let object: Value = serde_saphyr::from_str(&text)
            .with_context(|| format!("{} is not YAML or JSON", path.display()))?;
        let api_version = object
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let kind = object
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
        let workload = WorkloadKind::from_group_kind(group, kind).with_context(|| {
            format!(
                "{}: verity does not check {api_version} {kind} objects",
                path.display()
            )
        })?;
        let labels = crate::admission::images::labels_of(&object);
        let images = if images.is_empty() {
            images_of(workload, &object)?
        } else {
            as_containers(&workload.pod_spec_path().join("."), images)
        };
        Ok(Target {
            resource: ResourceRef::new(group, version, workload.resource()),
            labels,
            images,
        })
    }
}

fn as_containers(spec_path: &str, images: &[String]) -> Vec<ContainerImage> {
    images
        .iter()
        .enumerate()
        .map(|(index, image)| ContainerImage {
            path: format!("{spec_path}.containers[{index}].image"),
            pointer: format!("/{}/containers/{index}/image", spec_path.replace('.', "/")),
            image: image.clone(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exactly_one_policy_source() {
        let files = [PathBuf::from("policies")];
        let kubeconfig = std::path::Path::new("kubeconfig");
        assert_eq!(
            PolicySource::choose(&files, None, true).unwrap(),
            PolicySource::Files(files.to_vec()),
            "explicit files win over the in-cluster default"
        );
        assert_eq!(
            PolicySource::choose(&[], Some(kubeconfig), false).unwrap(),
            PolicySource::Cluster(Some(kubeconfig.to_path_buf()))
        );
        assert_eq!(
            PolicySource::choose(&[], None, true).unwrap(),
            PolicySource::Cluster(None)
        );
        let both = PolicySource::choose(&files, Some(kubeconfig), true).unwrap_err();
        assert!(both.to_string().contains("not both"), "{both}");
        let neither = PolicySource::choose(&[], None, false).unwrap_err();
        assert!(
            neither
                .to_string()
                .starts_with("no policy source: give --policies"),
            "{neither}"
        );
    }

    #[test]
    fn serve_takes_cluster_flags_and_verify_still_needs_policies() {
        let cli = Cli::try_parse_from([
            "verity",
            "serve",
            "--tls-cert",
            "c",
            "--tls-key",
            "k",
            "--kubeconfig",
            "/tmp/kubeconfig",
            "--namespace",
            "sigstore",
        ])
        .unwrap();
        let Command::Serve(args) = cli.command else {
            panic!("expected serve");
        };
        assert!(args.policies.is_empty());
        assert_eq!(args.kubeconfig, Some(PathBuf::from("/tmp/kubeconfig")));
        assert_eq!(args.namespace.as_deref(), Some("sigstore"));
        assert!(args.cluster_pull_secrets, "on by default");
        let cli = Cli::try_parse_from([
            "verity",
            "serve",
            "--tls-cert",
            "c",
            "--tls-key",
            "k",
            "--cluster-pull-secrets",
            "false",
        ])
        .unwrap();
        let Command::Serve(args) = cli.command else {
            panic!("expected serve");
        };
        assert!(!args.cluster_pull_secrets);
        let conflict = Cli::try_parse_from([
            "verity",
            "serve",
            "--tls-cert",
            "c",
            "--tls-key",
            "k",
            "--kubeconfig",
            "x",
            "--policies",
            "p",
        ]);
        assert!(conflict.is_err());
        assert!(Cli::try_parse_from(["verity", "verify", "nginx"]).is_err());
    }
}
