//! ClusterImagePolicy and TrustRoot: types, validation, compilation, matching. No network I/O.

pub mod compiled;
pub mod crd;
pub mod glob;
pub mod index;
pub mod source;
pub mod trust_roots;
pub mod validate;
