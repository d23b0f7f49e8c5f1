//! Where registry credentials come from for one admission: the workload's pull secrets and its
//! service account's (for the images), an authority's `signaturePullSecrets` (for signatures),
//! and verity's own docker config, merged like the reference's k8schain (without cloud
//! keychains). The Kubernetes source implements this from watched Secrets; file mode from
//! Secret documents in the policy files.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use arc_swap::ArcSwap;

use super::keychain::Keychain;

/// The credentials-relevant parts of an admitted workload.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WorkloadCredentials {
    pub namespace: Option<String>,
    /// `serviceAccountName` of the pod spec (`default` when unset, as the apiserver fills it).
    pub service_account: Option<String>,
    /// `imagePullSecrets[].name` of the pod spec.
    pub image_pull_secrets: Vec<String>,
}

/// Looks up dockerconfigjson Secrets.
pub trait CredentialSource: Send + Sync + fmt::Debug {
    /// Credentials for pulling the workload's images and their signatures: its
    /// imagePullSecrets, then its service account's imagePullSecrets.
    fn workload_keychain(&self, workload: &WorkloadCredentials) -> Keychain;

    /// Credentials from Secrets named by an authority's `signaturePullSecrets`, read from the
    /// workload's namespace.
    fn named_keychain(&self, namespace: Option<&str>, names: &[String]) -> Keychain;
}

/// File mode: `kubernetes.io/dockerconfigjson` Secret documents from the policy files, by name
/// (namespaces are not modelled; there is no cluster).
#[derive(Clone, Default)]
pub struct DocumentCredentials {
    by_name: BTreeMap<String, Keychain>,
}

impl fmt::Debug for DocumentCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DocumentCredentials")
            .field("secrets", &self.by_name.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl DocumentCredentials {
    pub fn insert(&mut self, name: &str, keychain: Keychain) {
        self.by_name.insert(name.to_string(), keychain);
    }

    fn keychain_of(&self, names: &[String]) -> Keychain {
        let found: Vec<&Keychain> = names.iter().filter_map(|n| self.by_name.get(n)).collect();
        Keychain::merged(&found)
    }
}

impl CredentialSource for DocumentCredentials {
    fn workload_keychain(&self, workload: &WorkloadCredentials) -> Keychain {
        self.keychain_of(&workload.image_pull_secrets)
    }

    fn named_keychain(&self, _namespace: Option<&str>, names: &[String]) -> Keychain {
        self.keychain_of(names)
    }
}

/// File mode credentials that follow policy-file reloads: the current [`DocumentCredentials`],
/// swapped whole.
#[derive(Debug, Default)]
pub struct ReloadableCredentials {
    current: ArcSwap<DocumentCredentials>,
}

impl ReloadableCredentials {
    pub fn new(initial: DocumentCredentials) -> Arc<Self> {
        Arc::new(ReloadableCredentials {
            current: ArcSwap::from_pointee(initial),
        })
    }

    pub fn replace(&self, credentials: DocumentCredentials) {
        self.current.store(Arc::new(credentials));
    }
}

impl CredentialSource for ReloadableCredentials {
    fn workload_keychain(&self, workload: &WorkloadCredentials) -> Keychain {
        self.current.load().workload_keychain(workload)
    }

    fn named_keychain(&self, namespace: Option<&str>, names: &[String]) -> Keychain {
        self.current.load().named_keychain(namespace, names)
    }
}
