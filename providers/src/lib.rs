//! Providers: the boundary between the engine and real systems (PostgreSQL, Kafka Connect and Debezium,
//! S3, the merge scheduler).
//!
//! This crate will own the provider trait (a typed side per resource kind with pure `validate` and `plan`
//! and async, idempotent `read` and `apply`, erased into one object-safe trait for the registry) and its
//! implementations. It must not depend on `planner` or `cli`, read environment variables, or print.
//! Nothing lives here yet: the planning issue adds the trait, the apply issue the first provider.
