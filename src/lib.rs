//! verity: a Kubernetes admission controller that checks container images against
//! sigstore `ClusterImagePolicy` resources before they run.
//!
//! # Data flow of one admission request
//!
//! ```text
//! apiserver ─TLS─▶ server (rustls, certificate re-read on change)
//!   ▶ POST /validate  [deadline under the webhook timeout → concurrency limit → body limit]
//!   ▶ admission: decode AdmissionReview → images with JSON field paths → skip rules
//!   ▶ policy index snapshot → matching policies per image (globs on tag and digest forms)
//!   ▶ registry: tag → digest, only when a signature check or a digest glob needs it (cached)
//!   ▶ verify: authorities of a policy (OR), policies of an image (AND), concurrently, bounded
//!   ▶ decision → reference-format message → AdmissionReview response
//! ```
//!
//! # Modules
//!
//! - [`image`]: reference parsing and normalisation.
//! - [`policy`]: the CRD types, validation, glob compilation, compiled policies, the index
//!   snapshot and where policies come from. No network I/O.
//! - [`admission`]: AdmissionReview in, decision out; no HTTP or TLS types.
//! - [`registry`]: tag → digest, manifests, blobs, referrers, credentials, per-registry TLS.
//! - [`verify`]: whether a digest satisfies an authority; every security check lives here.
//! - [`cache`]: verification results with TTLs and single-flight.
//! - [`server`]: HTTPS webhook and plain-HTTP admin port, certificate reload, shutdown.
//! - [`metrics`], [`telemetry`]: Prometheus families and the tracing subscriber.

pub mod admission;
pub mod cache;
pub mod cli;
pub mod devcert;
pub mod field_error;
pub mod image;
pub mod metrics;
pub mod policy;
pub mod registry;
pub mod server;
pub mod telemetry;
pub mod verify;
