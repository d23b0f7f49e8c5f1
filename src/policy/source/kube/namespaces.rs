//! Namespaces that opted out of digest pinning (annotation `verity.dev/mutate: "false"`), from a
//! reflector of namespace metadata. Pinning is an optimisation, so a failing watch only means
//! pinning continues: it is logged, never fatal, and readiness does not wait for it.

use std::future::Future;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Namespace;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};
use tracing::warn;

use crate::admission::mutate::{NamespaceOptOut, OPT_OUT_ANNOTATION};

/// The cluster's namespaces, as far as pinning needs them.
#[derive(Clone)]
pub struct NamespaceWatch {
    store: Store<Namespace>,
}

impl std::fmt::Debug for NamespaceWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NamespaceWatch")
            .field("namespaces", &self.store.state().len())
            .finish()
    }
}

impl NamespaceWatch {
    /// The watch and the future that drives it (spawn it; it retries with backoff).
    pub fn watch(client: Client) -> (Self, impl Future<Output = ()> + Send + 'static) {
        let (store, writer) = reflector::store();
        let stream = reflector::reflector(
            writer,
            watcher(Api::<Namespace>::all(client), watcher::Config::default())
                .default_backoff()
                .modify(|namespace: &mut Namespace| {
                    // Only the opt-out annotation is read.
                    namespace.metadata.managed_fields = None;
                    namespace.metadata.labels = None;
                    namespace.spec = None;
                    namespace.status = None;
                    if let Some(annotations) = namespace.metadata.annotations.as_mut() {
                        annotations.retain(|key, _| key == OPT_OUT_ANNOTATION);
                    }
                }),
        );
        let driver = async move {
            let mut stream = std::pin::pin!(stream);
            while let Some(event) = stream.next().await {
                if let Err(error) = event {
                    warn!(%error, "namespace watch failed (namespace pinning opt-outs unknown); retrying with backoff");
                }
            }
        };
        (NamespaceWatch { store }, driver)
    }
}

impl NamespaceOptOut for NamespaceWatch {
    fn opted_out(&self, namespace: &str) -> bool {
        self.store
            .get(&ObjectRef::new(namespace))
            .and_then(|ns| {
                ns.metadata
                    .annotations
                    .as_ref()?
                    .get(OPT_OUT_ANNOTATION)
                    .cloned()
            })
            .is_some_and(|value| value.eq_ignore_ascii_case("false"))
    }
}
