//! State: the persisted record of what `ds` created (format, versioning, and backends with locking).
//!
//! It depends on no other `ds` crate and stores each resource's attributes as opaque JSON with its
//! provider, type and schema version. Nothing lives here yet: the planning issue adds the state file
//! format and the local backend.
