//! Locks as leases: who holds the state, for what, and until when.

use std::fmt;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::error::StateError;

/// The lease a [`LockRequest::new`] asks for. A holder renews it (every third of the lease is a good pace)
/// for as long as it works; a lock left by a dead process can be taken over once its lease expires.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(15 * 60);

/// What a lock records about its holder; the content of a local lock file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockInfo {
    /// A UUID (v4) naming this lock; `ds state unlock <id>` breaks exactly this lock.
    pub id: String,
    /// The command holding it: "plan", "apply", "state rm", ...
    pub operation: String,
    /// Who holds it, as the CLI passed it in: "user@host".
    pub who: String,
    /// The holder's process id.
    pub pid: u32,
    /// When the lock was taken.
    #[serde(with = "rfc3339")]
    pub created: SystemTime,
    /// When the lease runs out unless renewed; after that anyone may take the lock over.
    #[serde(with = "rfc3339")]
    pub expires: SystemTime,
}

impl LockInfo {
    /// A new lock (fresh id) for `request`, taken at `now` (to the millisecond, as stored).
    pub fn new(request: &LockRequest, now: SystemTime) -> LockInfo {
        let now = to_millis(now);
        LockInfo {
            id: uuid::Uuid::new_v4().to_string(),
            operation: request.operation.clone(),
            who: request.who.clone(),
            pid: request.pid,
            created: now,
            expires: to_millis(now + request.lease),
        }
    }

    /// Whether the lease has run out at `now`.
    pub fn is_expired(&self, now: SystemTime) -> bool {
        now >= self.expires
    }

    /// The lock file text: pretty JSON and a newline.
    pub(crate) fn to_bytes(&self) -> Vec<u8> {
        let mut bytes = serde_json::to_vec_pretty(self).expect("a lock serialises");
        bytes.push(b'\n');
        bytes
    }
}

/// `time` without its sub-millisecond part: what a lock file can hold.
fn to_millis(time: SystemTime) -> SystemTime {
    match time.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(since) => SystemTime::UNIX_EPOCH + Duration::from_millis(since.as_millis() as u64),
        Err(_) => time,
    }
}

/// "alice@host (ds apply, pid 4242) since 2026-11-28T21:40:00Z; the lease expires at 2026-11-28T21:55:00Z"
impl fmt::Display for LockInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} (ds {}, pid {}) since {}; the lease expires at {}",
            self.who,
            self.operation,
            self.pid,
            humantime::format_rfc3339_seconds(self.created),
            humantime::format_rfc3339_seconds(self.expires),
        )
    }
}

/// What a caller asks for when it locks the state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockRequest {
    /// The command: "plan", "apply", "state rm", ...
    pub operation: String,
    /// Who asks, "user@host"; the CLI works it out (this crate reads no environment).
    pub who: String,
    /// The process id to record.
    pub pid: u32,
    /// How long the lock holds without renewal.
    pub lease: Duration,
}

impl LockRequest {
    /// A request from this process with the [`DEFAULT_LEASE`].
    pub fn new(operation: impl Into<String>, who: impl Into<String>) -> LockRequest {
        LockRequest {
            operation: operation.into(),
            who: who.into(),
            pid: std::process::id(),
            lease: DEFAULT_LEASE,
        }
    }

    /// The same request with another lease.
    pub fn with_lease(self, lease: Duration) -> LockRequest {
        LockRequest { lease, ..self }
    }
}

/// How a backend renews and releases one lock it granted; the part of a [`LockGuard`] that differs by
/// backend.
pub trait Lease: Send + Sync {
    /// Replaces the stored lock with `info` (same id, a later `expires`).
    ///
    /// Errors: [`StateError::LockLost`] when the stored lock is gone or has another id (the lease expired and
    /// someone took it over, or it was broken); the stored lock is then left alone.
    fn renew(&self, info: &LockInfo) -> Result<(), StateError>;

    /// Removes the stored lock if it still has id `id`. Succeeds, changing nothing, when it is gone or has
    /// another id.
    fn release(&self, id: &str) -> Result<(), StateError>;
}

/// A held lock. Dropping it releases the lock (errors are ignored then; call [`LockGuard::release`] to see
/// them). Long operations call [`LockGuard::renew`] before the lease runs out, e.g. every third of it.
pub struct LockGuard {
    info: Mutex<LockInfo>,
    lease: Duration,
    handle: Option<Box<dyn Lease>>,
}

impl LockGuard {
    /// A guard for the lock `info`, granted for `lease`, renewed and released through `handle`. For backend
    /// implementations.
    pub fn new(info: LockInfo, lease: Duration, handle: Box<dyn Lease>) -> LockGuard {
        LockGuard {
            info: Mutex::new(info),
            lease,
            handle: Some(handle),
        }
    }

    /// The lock as last written (after the last renewal).
    pub fn info(&self) -> LockInfo {
        self.info
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The lock's id.
    pub fn id(&self) -> String {
        self.info
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .id
            .clone()
    }

    /// The lease granted on every renewal.
    pub fn lease(&self) -> Duration {
        self.lease
    }

    /// Extends the lease to a full lease from now and returns the renewed lock.
    ///
    /// Errors: [`StateError::LockLost`] when the lock is no longer this guard's: stop working on the state.
    pub fn renew(&self) -> Result<LockInfo, StateError> {
        let mut info = self.info.lock().unwrap_or_else(PoisonError::into_inner);
        let renewed = LockInfo {
            expires: to_millis(SystemTime::now() + self.lease),
            ..info.clone()
        };
        if let Some(handle) = &self.handle {
            handle.renew(&renewed)?;
        }
        *info = renewed.clone();
        Ok(renewed)
    }

    /// Releases the lock now, reporting any error.
    pub fn release(mut self) -> Result<(), StateError> {
        match self.handle.take() {
            Some(handle) => handle.release(&self.id()),
            None => Ok(()),
        }
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        if let Some(handle) = self.handle.take() {
            // Nothing to report to: a lock that could not be removed expires with its lease.
            let _ = handle.release(&self.id());
        }
    }
}

impl fmt::Debug for LockGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LockGuard")
            .field("info", &self.info())
            .field("lease", &self.lease)
            .finish_non_exhaustive()
    }
}

/// RFC 3339 UTC times with milliseconds ("2026-11-28T21:40:00.123Z"): short leases need sub-second precision.
mod rfc3339 {
    use std::time::SystemTime;

    use serde::{Deserialize, Deserializer, Serializer, de::Error as _};

    pub(super) fn serialize<S: Serializer>(
        time: &SystemTime,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&humantime::format_rfc3339_millis(*time))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<SystemTime, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        humantime::parse_rfc3339_weak(&text)
            .map_err(|e| D::Error::custom(format_args!("`{text}` is not an RFC 3339 time: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info() -> LockInfo {
        let created = humantime::parse_rfc3339("2026-11-28T21:40:00Z").unwrap();
        let request = LockRequest {
            operation: "apply".into(),
            who: "alice@host".into(),
            pid: 4242,
            lease: DEFAULT_LEASE,
        };
        LockInfo::new(&request, created)
    }

    #[test]
    fn display_names_holder_operation_pid_and_times() {
        assert_eq!(
            info().to_string(),
            "alice@host (ds apply, pid 4242) since 2026-11-28T21:40:00Z; the lease expires at 2026-11-28T21:55:00Z"
        );
    }

    #[test]
    fn lock_file_text() {
        let mut info = info();
        info.id = "7d3f".into();
        info.expires += Duration::from_millis(5);
        let text = String::from_utf8(info.to_bytes()).unwrap();
        assert_eq!(
            text,
            "{\n  \"id\": \"7d3f\",\n  \"operation\": \"apply\",\n  \"who\": \"alice@host\",\n  \"pid\": 4242,\n  \
             \"created\": \"2026-11-28T21:40:00.000Z\",\n  \"expires\": \"2026-11-28T21:55:00.005Z\"\n}\n"
        );
        let back: LockInfo = serde_json::from_str(&text).unwrap();
        assert_eq!(back, info);
    }

    #[test]
    fn bad_time_is_an_error() {
        let text = r#"{"id": "x", "operation": "plan", "who": "w", "pid": 1, "created": "yesterday",
            "expires": "2026-11-28T21:55:00Z"}"#;
        let error = serde_json::from_str::<LockInfo>(text)
            .unwrap_err()
            .to_string();
        assert!(
            error.starts_with("`yesterday` is not an RFC 3339 time"),
            "{error}"
        );
    }

    #[test]
    fn expiry() {
        let info = info();
        assert!(!info.is_expired(info.created));
        assert!(info.is_expired(info.expires));
    }
}
