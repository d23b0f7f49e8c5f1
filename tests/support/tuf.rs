//! TUF repositories for the TUF-backed TrustRoot tests, written from the TUF specification (not
//! with tough, which verity uses to read them): canonical JSON (OLPC: sorted keys, no
//! whitespace, only `"` and `\` escaped) signed by `openssl` with ECDSA P-256 keys
//! (`ecdsa-sha2-nistp256`, hex DER signatures, PEM public keys, key ids the sha256 of the
//! canonical key), as sigstore's own repository is.
//!
//! - [`TufRepository::build`]: root, targets, snapshot and timestamp metadata plus the targets, in
//!   the consistent-snapshot layout (`1.root.json`, `timestamp.json`, `1.snapshot.json`,
//!   `1.targets.json`, `targets/<sha256>.<name>`), one key per role, each role's expiry and
//!   version chosen by the test.
//! - [`TufRepository::mirror_fs`]: the tar.gz a `repository.mirrorFS` holds (`repository/…`),
//!   made by the `tar` CLI; [`hostile_tar_gz`] for archives the CLI would not write.
//! - [`TufMirror`]: an HTTPS mirror (a [`TestCa`] leaf for 127.0.0.1) that can be down (nothing
//!   listening on its port), come up, serve garbage, or serve a new repository.
//! - [`remote_trust_root_yaml`] and [`repository_trust_root_yaml`]: the TrustRoot documents.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::response::Response;
use http::StatusCode;
use serde_json::{Value, json};

use super::registry::{Leaf, ServerTask, TestCa};
use super::require_tool;
use super::signing::{Hash, KeyKind, KeyPair, b64, rfc3339, sha256_hex, unix_now};

/// OLPC canonical JSON of `value` (integers only, as TUF metadata has).
pub fn canonical_json(value: &Value) -> Vec<u8> {
    fn write(value: &Value, out: &mut Vec<u8>) {
        match value {
            Value::Null => out.extend_from_slice(b"null"),
            Value::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
            Value::Number(n) => {
                assert!(
                    n.is_i64() || n.is_u64(),
                    "canonical JSON has no floats: {n}"
                );
                out.extend_from_slice(n.to_string().as_bytes());
            }
            Value::String(s) => {
                out.push(b'"');
                for byte in s.bytes() {
                    if byte == b'"' || byte == b'\\' {
                        out.push(b'\\');
                    }
                    out.push(byte);
                }
                out.push(b'"');
            }
            Value::Array(items) => {
                out.push(b'[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    write(item, out);
                }
                out.push(b']');
            }
            Value::Object(map) => {
                let mut keys: Vec<&String> = map.keys().collect();
                keys.sort();
                out.push(b'{');
                for (i, key) in keys.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    write(&Value::String((*key).clone()), out);
                    out.push(b':');
                    write(&map[*key], out);
                }
                out.push(b'}');
            }
        }
    }
    let mut out = Vec::new();
    write(value, &mut out);
    out
}

/// A TUF signing key: an openssl-made ECDSA P-256 key and its TUF key object and id.
pub struct TufKey {
    pair: KeyPair,
}

impl TufKey {
    pub fn generate() -> Self {
        TufKey {
            pair: KeyPair::generate(KeyKind::EcdsaP256),
        }
    }

    /// `{"keytype": "ecdsa", "scheme": "ecdsa-sha2-nistp256", "keyval": {"public": PEM}}`.
    pub fn key_object(&self) -> Value {
        json!({
            "keytype": "ecdsa",
            "scheme": "ecdsa-sha2-nistp256",
            "keyval": {"public": self.pair.public_pem()},
        })
    }

    /// sha256 of the canonical key object, hex.
    pub fn key_id(&self) -> String {
        sha256_hex(&canonical_json(&self.key_object()))
    }

    /// `{"keyid": …, "sig": hex(DER ECDSA over the canonical signed part)}`.
    pub fn sign(&self, signed: &Value) -> Value {
        let signature = self
            .pair
            .sign_openssl(&canonical_json(signed), Hash::Sha256, false);
        json!({"keyid": self.key_id(), "sig": hex::encode(signature)})
    }
}

/// One key per top-level role.
pub struct TufKeys {
    pub root: TufKey,
    pub targets: TufKey,
    pub snapshot: TufKey,
    pub timestamp: TufKey,
}

impl TufKeys {
    pub fn generate() -> Self {
        TufKeys {
            root: TufKey::generate(),
            targets: TufKey::generate(),
            snapshot: TufKey::generate(),
            timestamp: TufKey::generate(),
        }
    }
}

/// What the metadata says: versions and expiry (Unix seconds) per role, and the targets.
#[derive(Clone, Debug)]
pub struct TufContent {
    pub targets: Vec<(String, Vec<u8>)>,
    pub root_expires: i64,
    pub targets_expires: i64,
    pub snapshot_expires: i64,
    pub timestamp_expires: i64,
    /// The version of targets, snapshot and timestamp metadata (root stays at 1).
    pub version: u64,
}

impl TufContent {
    /// `trusted_root.json` = `trusted_root`, every role valid for a year, version 1.
    pub fn trusted_root(trusted_root: &str) -> Self {
        let year = unix_now() + 365 * 24 * 60 * 60;
        TufContent {
            targets: vec![(
                "trusted_root.json".to_string(),
                trusted_root.as_bytes().to_vec(),
            )],
            root_expires: year,
            targets_expires: year,
            snapshot_expires: year,
            timestamp_expires: year,
            version: 1,
        }
    }
}

/// A signed repository: every file by its path relative to the repository directory.
#[derive(Clone, Debug)]
pub struct TufRepository {
    pub files: BTreeMap<String, Vec<u8>>,
}

fn signed_file(key: &TufKey, signed: Value) -> Vec<u8> {
    let signatures = vec![key.sign(&signed)];
    serde_json::to_vec_pretty(&json!({"signed": signed, "signatures": signatures})).unwrap()
}

fn file_meta(bytes: &[u8]) -> Value {
    json!({"length": bytes.len(), "hashes": {"sha256": sha256_hex(bytes)}})
}

impl TufRepository {
    pub fn build(keys: &TufKeys, content: &TufContent) -> Self {
        let role = |key: &TufKey| json!({"keyids": [key.key_id()], "threshold": 1});
        let root = json!({
            "_type": "root",
            "spec_version": "1.0.0",
            "version": 1,
            "expires": rfc3339(content.root_expires),
            "consistent_snapshot": true,
            "keys": {
                keys.root.key_id(): keys.root.key_object(),
                keys.targets.key_id(): keys.targets.key_object(),
                keys.snapshot.key_id(): keys.snapshot.key_object(),
                keys.timestamp.key_id(): keys.timestamp.key_object(),
            },
            "roles": {
                "root": role(&keys.root),
                "targets": role(&keys.targets),
                "snapshot": role(&keys.snapshot),
                "timestamp": role(&keys.timestamp),
            },
        });
        let version = content.version;
        let mut files = BTreeMap::new();
        let mut listed = serde_json::Map::new();
        for (name, bytes) in &content.targets {
            listed.insert(name.clone(), file_meta(bytes));
            files.insert(
                format!("targets/{}.{name}", sha256_hex(bytes)),
                bytes.clone(),
            );
        }
        let targets = signed_file(
            &keys.targets,
            json!({
                "_type": "targets",
                "spec_version": "1.0.0",
                "version": version,
                "expires": rfc3339(content.targets_expires),
                "targets": listed,
            }),
        );
        let snapshot = signed_file(
            &keys.snapshot,
            json!({
                "_type": "snapshot",
                "spec_version": "1.0.0",
                "version": version,
                "expires": rfc3339(content.snapshot_expires),
                "meta": {"targets.json": {"version": version}},
            }),
        );
        let mut snapshot_meta = file_meta(&snapshot);
        snapshot_meta["version"] = json!(version);
        let timestamp = signed_file(
            &keys.timestamp,
            json!({
                "_type": "timestamp",
                "spec_version": "1.0.0",
                "version": version,
                "expires": rfc3339(content.timestamp_expires),
                "meta": {"snapshot.json": snapshot_meta},
            }),
        );
        let root = signed_file(&keys.root, root);
        files.insert("1.root.json".to_string(), root.clone());
        files.insert("root.json".to_string(), root);
        files.insert(format!("{version}.targets.json"), targets);
        files.insert(format!("{version}.snapshot.json"), snapshot);
        files.insert("timestamp.json".to_string(), timestamp);
        TufRepository { files }
    }

    /// The trusted root a client starts from (`1.root.json`).
    pub fn root_json(&self) -> &[u8] {
        &self.files["1.root.json"]
    }

    /// The path of the target `name` (`targets/<sha256>.<name>`).
    pub fn target_path(&self, name: &str) -> String {
        self.files
            .keys()
            .find(|path| path.starts_with("targets/") && path.ends_with(&format!(".{name}")))
            .unwrap_or_else(|| panic!("no target {name} in {:?}", self.files.keys()))
            .clone()
    }

    /// A tar.gz of the repository under `repository/`, as `tar czf` writes it.
    pub fn mirror_fs(&self) -> Vec<u8> {
        let tar = require_tool("tar", "tar");
        let dir = tempfile::tempdir().unwrap();
        for (path, bytes) in &self.files {
            let file = dir.path().join("repository").join(path);
            std::fs::create_dir_all(file.parent().unwrap()).unwrap();
            std::fs::write(file, bytes).unwrap();
        }
        let out = std::process::Command::new(tar)
            .arg("-C")
            .arg(dir.path())
            .args(["-czf", "-", "repository"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "tar failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }
}

/// A tar.gz whose entries are written header by header, names as given (`..` and absolute
/// names included), each a regular file unless `symlink_to` is set.
pub fn hostile_tar_gz(entries: &[(&str, &[u8])], symlink_to: Option<&str>) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (path, content) in entries {
        let mut header = tar::Header::new_gnu();
        let name = &mut header.as_old_mut().name;
        name[..path.len()].copy_from_slice(path.as_bytes());
        header.set_mode(0o644);
        match symlink_to {
            Some(target) => {
                header.set_entry_type(tar::EntryType::Symlink);
                header.set_link_name(target).unwrap();
                header.set_size(0);
                header.set_cksum();
                builder.append(&header, std::io::empty()).unwrap();
            }
            None => {
                header.set_entry_type(tar::EntryType::Regular);
                header.set_size(content.len() as u64);
                header.set_cksum();
                builder.append(&header, *content).unwrap();
            }
        }
    }
    let tar = builder.into_inner().unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut gz, &tar).unwrap();
    gz.finish().unwrap()
}

/// A TrustRoot `name` with `repository` (root and mirrorFS), default targets and target.
pub fn repository_trust_root_yaml(name: &str, root_json: &[u8], mirror_fs: &[u8]) -> String {
    format!(
        "apiVersion: policy.sigstore.dev/v1alpha1\nkind: TrustRoot\nmetadata: {{name: {name}}}\nspec:\n  repository:\n    root: {}\n    mirrorFS: {}\n",
        b64(root_json),
        b64(mirror_fs)
    )
}

/// A TrustRoot `name` with `remote` (root and mirror), default targets and target.
pub fn remote_trust_root_yaml(name: &str, root_json: &[u8], mirror: &str) -> String {
    format!(
        "apiVersion: policy.sigstore.dev/v1alpha1\nkind: TrustRoot\nmetadata: {{name: {name}}}\nspec:\n  remote:\n    root: {}\n    mirror: {mirror}\n",
        b64(root_json)
    )
}

/// What a [`TufMirror`] answers.
#[derive(Clone, Debug)]
enum Serving {
    Files(BTreeMap<String, Vec<u8>>),
    /// 500 with a body, for every request.
    Failing,
}

/// An HTTPS TUF mirror on 127.0.0.1 with a test CA: down (nothing listens on its port) until
/// [`TufMirror::up`]. Records the paths it is asked for.
pub struct TufMirror {
    addr: SocketAddr,
    ca: TestCa,
    leaf: Leaf,
    serving: Arc<Mutex<Serving>>,
    requests: Arc<Mutex<Vec<String>>>,
    server: Option<ServerTask>,
}

impl TufMirror {
    /// A mirror whose port is reserved but closed: connections are refused.
    pub fn down() -> Self {
        let addr = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let ca = TestCa::new("test-tuf-mirror-ca");
        let leaf = ca.leaf(&["127.0.0.1"]);
        TufMirror {
            addr,
            ca,
            leaf,
            serving: Arc::new(Mutex::new(Serving::Files(BTreeMap::new()))),
            requests: Arc::new(Mutex::new(Vec::new())),
            server: None,
        }
    }

    /// A mirror serving `repository`.
    pub async fn serving(repository: &TufRepository) -> Self {
        let mut mirror = Self::down();
        mirror.publish(repository);
        mirror.up().await;
        mirror
    }

    /// `https://127.0.0.1:PORT/`.
    pub fn url(&self) -> String {
        format!("https://{}/", self.addr)
    }

    /// The CA a client must trust (`--tuf-mirror-ca`).
    pub fn ca_pem(&self) -> &str {
        self.ca.cert_pem()
    }

    /// Starts listening on the mirror's port.
    pub async fn up(&mut self) {
        let listener = tokio::net::TcpListener::bind(self.addr).await.unwrap();
        let (serving, requests) = (self.serving.clone(), self.requests.clone());
        let router = Router::new().fallback(move |request: Request| {
            let (serving, requests) = (serving.clone(), requests.clone());
            async move {
                let path = request.uri().path().trim_start_matches('/').to_string();
                requests.lock().unwrap().push(path.clone());
                let serving = serving.lock().unwrap().clone();
                let (status, body) = match serving {
                    Serving::Files(files) => match files.get(&path) {
                        Some(bytes) => (StatusCode::OK, bytes.clone()),
                        None => (StatusCode::NOT_FOUND, b"not found".to_vec()),
                    },
                    Serving::Failing => (StatusCode::INTERNAL_SERVER_ERROR, b"broken".to_vec()),
                };
                Response::builder()
                    .status(status)
                    .body(Body::from(body))
                    .unwrap()
            }
        });
        self.server = Some(ServerTask::spawn_on(
            listener,
            router,
            Some(self.leaf.server_config()),
        ));
    }

    /// Stops listening (connections are refused again).
    pub fn down_again(&mut self) {
        self.server = None;
    }

    /// Serves `repository` from now on.
    pub fn publish(&self, repository: &TufRepository) {
        *self.serving.lock().unwrap() = Serving::Files(repository.files.clone());
    }

    /// Answers every request with HTTP 500 from now on.
    pub fn fail(&self) {
        *self.serving.lock().unwrap() = Serving::Failing;
    }

    /// The paths asked for so far.
    pub fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}
