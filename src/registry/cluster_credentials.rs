//! Registry credentials from the cluster: a [`CredentialSource`] backed by reflectors of
//! ServiceAccounts and of `kubernetes.io/dockerconfigjson` and `kubernetes.io/dockercfg` Secrets
//! (cluster-wide, narrowed by a field selector on `type`), so an admission never waits for the
//! apiserver.
//!
//! Like k8schain, the workload's keychain is its `imagePullSecrets`, then those of its service
//! account, all from the workload's namespace; the first credential for a registry wins. Secrets
//! or service accounts that are missing, of another type, or unparseable are skipped (logged at
//! debug): the registry then answers 401 and the denial says so.

use std::fmt;
use std::future::Future;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
use kube::api::Api;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use tracing::{debug, warn};

use super::credentials::{CredentialSource, WorkloadCredentials};
use super::keychain::Keychain;

pub const DOCKER_CONFIG_JSON: &str = "kubernetes.io/dockerconfigjson";
pub const DOCKERCFG: &str = "kubernetes.io/dockercfg";
const DEFAULT_SERVICE_ACCOUNT: &str = "default";

/// Why the credential watches cannot report ready.
#[derive(Debug, thiserror::Error)]
pub enum ClusterCredentialsError {
    #[error("the {0} watch stopped before its first list completed")]
    WatchStopped(&'static str),
}

impl ClusterCredentialsError {
    pub fn reason(&self) -> &'static str {
        match self {
            ClusterCredentialsError::WatchStopped(_) => "watch_stopped",
        }
    }
}

/// Pull secrets and service accounts as the cluster has them.
#[derive(Clone)]
pub struct ClusterCredentials {
    service_accounts: Store<ServiceAccount>,
    docker_config_json: Store<Secret>,
    dockercfg: Store<Secret>,
}

impl fmt::Debug for ClusterCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClusterCredentials")
            .field("service_accounts", &self.service_accounts.len())
            .field("docker_config_json", &self.docker_config_json.len())
            .field("dockercfg", &self.dockercfg.len())
            .finish()
    }
}

impl ClusterCredentials {
    /// The credential source and the future that drives its watches (spawn it; it runs until
    /// dropped, retrying failed watches with backoff).
    pub fn watch(client: Client) -> (Self, impl Future<Output = ()> + Send + 'static) {
        let (service_accounts, sa_writer) = reflector::store();
        let (docker_config_json, json_writer) = reflector::store();
        let (dockercfg, cfg_writer) = reflector::store();

        let sa_stream = reflector::reflector(
            sa_writer,
            watcher(
                Api::<ServiceAccount>::all(client.clone()),
                watcher::Config::default(),
            )
            .default_backoff()
            .modify(|sa: &mut ServiceAccount| {
                // Only imagePullSecrets is read; the rest is memory.
                sa.secrets = None;
                sa.metadata.managed_fields = None;
                sa.metadata.annotations = None;
                sa.metadata.labels = None;
            }),
        );
        let secret_stream = |writer, secret_type: &'static str| {
            reflector::reflector(
                writer,
                watcher(
                    Api::<Secret>::all(client.clone()),
                    watcher::Config::default().fields(&format!("type={secret_type}")),
                )
                .default_backoff()
                .modify(|secret: &mut Secret| {
                    secret.metadata.managed_fields = None;
                    // kubectl apply's annotation holds a second copy of the data.
                    secret.metadata.annotations = None;
                    secret.metadata.labels = None;
                    secret.string_data = None;
                }),
            )
        };
        let json_stream = secret_stream(json_writer, DOCKER_CONFIG_JSON);
        let cfg_stream = secret_stream(cfg_writer, DOCKERCFG);
        let driver = async move {
            futures::join!(
                drain("ServiceAccount", sa_stream),
                drain(DOCKER_CONFIG_JSON, json_stream),
                drain(DOCKERCFG, cfg_stream),
            );
        };
        (
            ClusterCredentials {
                service_accounts,
                docker_config_json,
                dockercfg,
            },
            driver,
        )
    }

    /// Resolves once every watch has listed once.
    pub async fn wait_synced(&self) -> Result<(), ClusterCredentialsError> {
        self.service_accounts
            .wait_until_ready()
            .await
            .map_err(|_| ClusterCredentialsError::WatchStopped("ServiceAccount"))?;
        self.docker_config_json
            .wait_until_ready()
            .await
            .map_err(|_| ClusterCredentialsError::WatchStopped(DOCKER_CONFIG_JSON))?;
        self.dockercfg
            .wait_until_ready()
            .await
            .map_err(|_| ClusterCredentialsError::WatchStopped(DOCKERCFG))?;
        Ok(())
    }
}

async fn drain<K, S>(kind: &'static str, stream: S)
where
    S: futures::Stream<Item = watcher::Result<watcher::Event<K>>>,
{
    let mut stream = std::pin::pin!(stream);
    while let Some(event) = stream.next().await {
        if let Err(error) = event {
            warn!(kind, %error, "credential watch failed; retrying with backoff");
        }
    }
}

/// What the keychain assembly needs from the cluster.
trait PullSecrets {
    /// The parsed pull secret `name` of `namespace`, if it exists and parses.
    fn keychain(&self, namespace: &str, name: &str) -> Option<Keychain>;
    /// The `imagePullSecrets` names of a service account, if it exists.
    fn service_account_secrets(&self, namespace: &str, name: &str) -> Option<Vec<String>>;
}

impl PullSecrets for ClusterCredentials {
    fn keychain(&self, namespace: &str, name: &str) -> Option<Keychain> {
        let key = ObjectRef::new(name).within(namespace);
        let secret = self
            .docker_config_json
            .get(&key)
            .or_else(|| self.dockercfg.get(&key))?;
        match keychain_of(&secret) {
            Ok(keychain) => Some(keychain),
            Err(problem) => {
                debug!(namespace, name, %problem, "skipping an unusable pull secret");
                None
            }
        }
    }

    fn service_account_secrets(&self, namespace: &str, name: &str) -> Option<Vec<String>> {
        let account = self
            .service_accounts
            .get(&ObjectRef::new(name).within(namespace))?;
        Some(
            account
                .image_pull_secrets
                .iter()
                .flatten()
                .map(|reference| reference.name.clone())
                .collect(),
        )
    }
}

/// The keychain of a `kubernetes.io/dockerconfigjson` or `kubernetes.io/dockercfg` Secret.
pub fn keychain_of(secret: &Secret) -> Result<Keychain, String> {
    let secret_type = secret.type_.as_deref().unwrap_or_default();
    let key = match secret_type {
        DOCKER_CONFIG_JSON => ".dockerconfigjson",
        DOCKERCFG => ".dockercfg",
        other => {
            return Err(format!(
                "secret type {other:?} holds no registry credentials"
            ));
        }
    };
    let document = secret
        .data
        .as_ref()
        .and_then(|data| data.get(key))
        .ok_or_else(|| format!("secret {} has no {key} entry", secret.name_any()))?;
    let parsed = if secret_type == DOCKERCFG {
        Keychain::from_dockercfg(&document.0)
    } else {
        Keychain::from_docker_config_json(&document.0)
    };
    parsed.map_err(|error| error.to_string())
}

fn named<P: PullSecrets>(secrets: &P, namespace: &str, names: &[String]) -> Vec<Keychain> {
    names
        .iter()
        .filter_map(|name| {
            let found = secrets.keychain(namespace, name);
            if found.is_none() {
                debug!(namespace, name = %name, "pull secret not found; skipped");
            }
            found
        })
        .collect()
}

/// The workload's imagePullSecrets, then its service account's, merged in that order.
fn workload_keychain<P: PullSecrets>(secrets: &P, workload: &WorkloadCredentials) -> Keychain {
    let Some(namespace) = workload.namespace.as_deref() else {
        return Keychain::anonymous();
    };
    let mut keychains = named(secrets, namespace, &workload.image_pull_secrets);
    let account = workload
        .service_account
        .as_deref()
        .filter(|name| !name.is_empty())
        .unwrap_or(DEFAULT_SERVICE_ACCOUNT);
    match secrets.service_account_secrets(namespace, account) {
        Some(names) => keychains.extend(named(secrets, namespace, &names)),
        None => debug!(
            namespace,
            service_account = account,
            "service account not found"
        ),
    }
    Keychain::merged(&keychains.iter().collect::<Vec<_>>())
}

impl CredentialSource for ClusterCredentials {
    fn workload_keychain(&self, workload: &WorkloadCredentials) -> Keychain {
        workload_keychain(self, workload)
    }

    fn named_keychain(&self, namespace: Option<&str>, names: &[String]) -> Keychain {
        let Some(namespace) = namespace else {
            return Keychain::anonymous();
        };
        let keychains = named(self, namespace, names);
        Keychain::merged(&keychains.iter().collect::<Vec<_>>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Credential;
    use k8s_openapi::ByteString;
    use std::collections::BTreeMap;

    #[derive(Default)]
    struct Fake {
        secrets: BTreeMap<(String, String), Keychain>,
        accounts: BTreeMap<(String, String), Vec<String>>,
    }

    impl PullSecrets for Fake {
        fn keychain(&self, namespace: &str, name: &str) -> Option<Keychain> {
            self.secrets
                .get(&(namespace.to_string(), name.to_string()))
                .cloned()
        }
        fn service_account_secrets(&self, namespace: &str, name: &str) -> Option<Vec<String>> {
            self.accounts
                .get(&(namespace.to_string(), name.to_string()))
                .cloned()
        }
    }

    fn basic(user: &str) -> Credential {
        Credential::Basic {
            username: user.into(),
            password: "pw".into(),
        }
    }

    fn keychain(entries: &[(&str, &str)]) -> Keychain {
        entries
            .iter()
            .fold(Keychain::anonymous(), |k, (registry, user)| {
                k.with_credential(registry, basic(user)).unwrap()
            })
    }

    fn fake() -> Fake {
        let mut fake = Fake::default();
        let key = |ns: &str, name: &str| (ns.to_string(), name.to_string());
        fake.secrets.insert(
            key("apps", "pod-secret"),
            keychain(&[("registry.a", "pod")]),
        );
        fake.secrets.insert(
            key("apps", "sa-secret"),
            keychain(&[("registry.a", "sa"), ("registry.b", "sa")]),
        );
        fake.secrets.insert(
            key("other", "pod-secret"),
            keychain(&[("registry.c", "elsewhere")]),
        );
        fake.accounts.insert(
            key("apps", "builder"),
            vec!["sa-secret".into(), "absent".into()],
        );
        fake.accounts
            .insert(key("apps", "default"), vec!["sa-secret".into()]);
        fake
    }

    #[test]
    fn pod_secrets_come_before_service_account_secrets() {
        let workload = WorkloadCredentials {
            namespace: Some("apps".into()),
            service_account: Some("builder".into()),
            image_pull_secrets: vec!["absent".into(), "pod-secret".into()],
        };
        let keychain = workload_keychain(&fake(), &workload);
        assert_eq!(keychain.lookup("registry.a"), &basic("pod"));
        assert_eq!(keychain.lookup("registry.b"), &basic("sa"));
        // Namespace-local: the same name in another namespace is not used.
        assert!(keychain.lookup("registry.c").is_anonymous());
    }

    #[test]
    fn default_service_account_and_missing_ones() {
        let workload = WorkloadCredentials {
            namespace: Some("apps".into()),
            service_account: None,
            image_pull_secrets: Vec::new(),
        };
        assert_eq!(
            workload_keychain(&fake(), &workload).lookup("registry.b"),
            &basic("sa")
        );
        let unknown = WorkloadCredentials {
            service_account: Some("ghost".into()),
            ..workload.clone()
        };
        assert!(workload_keychain(&fake(), &unknown).is_empty());
        let no_namespace = WorkloadCredentials {
            namespace: None,
            ..workload
        };
        assert!(workload_keychain(&fake(), &no_namespace).is_empty());
    }

    fn secret(secret_type: &str, key: &str, value: &str) -> Secret {
        Secret {
            type_: Some(secret_type.into()),
            data: Some(BTreeMap::from([(
                key.to_string(),
                ByteString(value.as_bytes().to_vec()),
            )])),
            ..Secret::default()
        }
    }

    #[test]
    fn both_secret_formats_parse() {
        let json = secret(
            DOCKER_CONFIG_JSON,
            ".dockerconfigjson",
            r#"{"auths":{"ghcr.io":{"username":"u","password":"p"}}}"#,
        );
        assert!(!keychain_of(&json).unwrap().lookup("ghcr.io").is_anonymous());
        let cfg = secret(
            DOCKERCFG,
            ".dockercfg",
            r#"{"quay.io":{"username":"u","password":"p"}}"#,
        );
        assert!(!keychain_of(&cfg).unwrap().lookup("quay.io").is_anonymous());
        let opaque = secret("Opaque", ".dockerconfigjson", "{}");
        assert_eq!(
            keychain_of(&opaque).unwrap_err(),
            r#"secret type "Opaque" holds no registry credentials"#
        );
        let wrong_key = secret(DOCKER_CONFIG_JSON, ".dockercfg", "{}");
        assert!(
            keychain_of(&wrong_key)
                .unwrap_err()
                .contains("no .dockerconfigjson entry")
        );
    }
}
