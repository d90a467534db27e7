//! State: the persisted record of what `ds` created (format, versioning, and backends with locking).
//!
//! It owns the state document ([`State`]: lineage, serial, the model it was applied from, and per resource
//! its address, type, provider, schema version, opaque attributes, dependencies and secret fingerprints),
//! reading it with upgrades from older format versions ([`parse`]), its on-disk layout ([`to_bytes`]), and
//! the [`Backend`]s that store it: atomic writes that refuse to overwrite someone else's work, and locks
//! that are leases ([`LockInfo`], [`LockGuard`]). `docs/state-format.md` documents the format.
//!
//! It must not depend on another `ds` crate, print, or read environment variables (the CLI passes in who
//! is locking). Secrets never enter the state: only their fingerprints.

mod backend;
mod error;
mod format;
mod local;
mod lock;
mod postgres;
mod s3;

pub use backend::Backend;
pub use error::{Stale, StateError};
pub use format::{FORMAT_VERSION, ModelInfo, ResourceState, State, parse, to_bytes};
pub use local::LocalBackend;
pub use lock::{DEFAULT_LEASE, Lease, LockGuard, LockInfo, LockRequest};
pub use postgres::{PostgresBackend, PostgresTarget};
pub use s3::{S3Backend, S3Target};
/// The S3 pieces the `s3_bucket` provider shares with the s3 backend: one client configuration, one way
/// to name an endpoint and to say what a failed call means.
pub mod s3_shared {
    pub use crate::s3::{client_config, describe_error, error_code, redacted};
}
