//! Providers: the boundary between the engine and real systems (PostgreSQL, Kafka Connect and Debezium, S3,
//! the merge scheduler).
//!
//! Each resource type is a [`ResourceKind`]: its name, provider, attribute schema version, and the *pure*
//! rules that decide, from the desired attributes and the recorded ones, whether a resource is left alone,
//! updated in place or replaced, and whether it holds data (and so may not be destroyed without consent).
//! Kinds a provider can act on also return a [`live::Live`]: async, idempotent `read` and `apply`.
//!
//! This crate must not depend on `planner` or `cli`, read environment variables, or print.

pub mod debezium;
pub mod kafka_connect;
pub mod kind;
pub mod live;
pub mod physical;
pub mod postgres;
pub mod s3;
pub mod scheduler;
pub mod types;

pub use kind::{Action, AttributeChange, Planned, ResourceKind, kind};
