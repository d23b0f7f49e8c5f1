//! The OCI registry client: tag → digest, manifests, blobs and referrers, with credentials and
//! per-registry TLS.
//!
//! verity does not use the sigstore crate's registry client: it needs size limits enforced while
//! reading, an extra CA per registry, precise errors, connection reuse and a token cache it
//! controls. Everything here returns an error when the registry misbehaves; "no signatures" is
//! only ever the verifier's reading of an empty, successful answer.
//!
//! - [`client`]: [`RegistryClient`] and [`RegistryConfig`]; the HTTP exchanges, the auth flow
//!   (Basic, Docker Bearer tokens, OAuth2 refresh tokens), redirects, limits, timeouts, metrics.
//! - [`keychain`]: [`Keychain`] and [`Credential`] from dockerconfigjson documents.
//! - [`manifest`]: [`Manifest`], [`Descriptor`] and the typed views of manifests and indexes.
//! - [`error`]: [`RegistryError`] with a bounded `reason()`.
//!
//! One call goes: credentials for the registry from the keychain → an `Authorization` header up
//! front if the registry asked for one before (a cached or freshly fetched bearer token, or
//! Basic) → the request → on 401, the `WWW-Authenticate` challenge is answered once → redirects
//! followed (credentials only to the registry's own origin, never https → http) → the body read
//! up to the limit within the request timeout → digest checked.

mod auth;
pub mod client;
pub mod cluster_credentials;
pub mod credentials;
pub mod error;
pub mod keychain;
pub mod manifest;

pub use client::{RegistryClient, RegistryConfig};
pub(crate) use client::{error_causes, find_rustls_error};
pub use cluster_credentials::ClusterCredentials;
pub use credentials::{
    CredentialSource, DocumentCredentials, ReloadableCredentials, WorkloadCredentials,
};
pub use error::RegistryError;
pub use keychain::{Credential, Keychain, normalize_registry};
pub use manifest::{
    DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, Descriptor, ImageIndex, ImageManifest, Manifest,
    OCI_EMPTY, OCI_INDEX, OCI_MANIFEST, Platform,
};
