//! A real kube-apiserver for integration tests: `kube-local` (kube-apiserver v1.20.2 and etcd on
//! 127.0.0.1, see ../shared/spec/test-infrastructure.md §6), started in a temporary directory
//! and stopped with `down --purge` on drop.
//!
//! A missing `kube-local` or `kubectl` fails the test with what to do; nothing is skipped.

// Each test crate uses a different part of this.
#![allow(dead_code)]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use base64::Engine as _;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Client;
use kube::api::{Api, PostParams};

/// Where kube-local lives: `$KUBE_LOCAL` if set, the shared tools directory, or `PATH`.
fn kube_local_tool() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let candidates = std::env::var_os("KUBE_LOCAL")
        .map(PathBuf::from)
        .into_iter()
        .chain([
            PathBuf::from("/work/shared/tools/kube-local"),
            manifest.join("../shared/tools/kube-local"),
            manifest.join("../../shared/tools/kube-local"),
        ])
        .chain(
            std::env::var_os("PATH")
                .map(|paths| {
                    std::env::split_paths(&paths)
                        .map(|dir| dir.join("kube-local"))
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default(),
        );
    for candidate in candidates {
        if candidate.is_file() {
            return candidate;
        }
    }
    panic!(
        "kube-local not found: it is ../shared/tools/kube-local next to the crate (or set KUBE_LOCAL=/path/to/kube-local); \
         build its kube-apiserver once with `kube-local build` (about 7 minutes), or run `make test`"
    );
}

/// A running kube-local control plane.
pub struct KubeLocal {
    tool: PathBuf,
    dir: PathBuf,
    _parent: tempfile::TempDir,
}

impl KubeLocal {
    /// Starts etcd and kube-apiserver (a few seconds).
    pub fn up() -> Self {
        let tool = kube_local_tool();
        let parent = tempfile::tempdir().unwrap();
        let dir = parent.path().join("cluster");
        let output = Command::new(&tool)
            .args(["up", "--dir"])
            .arg(&dir)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", tool.display()));
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            let _ = Command::new(&tool)
                .args(["down", "--purge", "--dir"])
                .arg(&dir)
                .output();
            panic!(
                "`kube-local up` failed ({}); if kube-apiserver is not built yet, run `{} build` once (about 7 minutes):\n{stderr}",
                output.status,
                tool.display()
            );
        }
        KubeLocal {
            tool,
            dir,
            _parent: parent,
        }
    }

    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.join("kubeconfig")
    }

    /// A client as `verity serve --kubeconfig` builds it.
    pub async fn client(&self) -> Client {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        verity::policy::source::kube::client(Some(&self.kubeconfig()))
            .await
            .unwrap()
    }

    /// Runs kubectl against this cluster with `stdin` as its input.
    pub fn kubectl(&self, args: &[&str], stdin: &str) -> Output {
        use std::io::Write as _;
        let kubectl = crate::support::require_tool("kubectl", "kubernetes-client");
        let mut child = Command::new(kubectl)
            .args(args)
            .env("KUBECONFIG", self.kubeconfig())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    }

    /// A serving certificate signed by the cluster CA: (cert, key) paths.
    pub fn cert(&self, name: &str, sans: &[&str]) -> (PathBuf, PathBuf) {
        let output = Command::new(&self.tool)
            .args(["cert", "--dir"])
            .arg(&self.dir)
            .arg(name)
            .args(sans)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "kube-local cert failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        (
            self.dir.join(format!("{name}.crt")),
            self.dir.join(format!("{name}.key")),
        )
    }

    /// `caBundle` for webhook configurations.
    pub fn ca_bundle(&self) -> String {
        base64::engine::general_purpose::STANDARD
            .encode(std::fs::read(self.dir.join("ca.crt")).unwrap())
    }
}

impl Drop for KubeLocal {
    fn drop(&mut self) {
        let _ = Command::new(&self.tool)
            .args(["down", "--purge", "--dir"])
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// Creates verity's CRDs and waits until they are established.
pub async fn install_crds(client: &Client) {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in verity::policy::crd::custom_resource_definitions() {
        let name = crd.metadata.name.clone().unwrap();
        crds.create(&PostParams::default(), &crd)
            .await
            .unwrap_or_else(|e| panic!("creating CRD {name}: {e}"));
        crate::support::poll_until(Duration::from_secs(30), "CRD established", || {
            let crds = crds.clone();
            let name = name.clone();
            async move {
                let crd = crds.get(&name).await.ok()?;
                crd.status?
                    .conditions?
                    .iter()
                    .any(|c| c.type_ == "Established" && c.status == "True")
                    .then_some(())
            }
        })
        .await;
    }
}

pub async fn create_namespace(client: &Client, name: &str) {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let namespace: Namespace = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}
    }))
    .unwrap();
    namespaces
        .create(&PostParams::default(), &namespace)
        .await
        .unwrap();
}
