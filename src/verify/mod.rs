//! Does an image digest satisfy an authority? Every security check lives here, asserted on one
//! signature at a time.

pub mod bundle;
pub mod cert;
pub mod checkpoint;
pub mod discovery;
pub mod key;
pub mod keyed;
pub mod keyless;
pub mod merkle;
pub mod pem;
pub mod rekor;
pub mod simple_signing;
pub mod static_policy;
pub mod trust;
pub mod tuf;
mod verifier;

pub use verifier::{
    AuthorityOutcome, CacheSettings, Evidence, Failure, RequestContext, ResolveError, Verifier,
    VerifierConfig, failure_prefix, signed_name,
};
