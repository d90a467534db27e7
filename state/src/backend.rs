//! Where a state lives, and the contract every place keeps.

use crate::error::StateError;
use crate::format::State;
use crate::lock::{LockGuard, LockInfo, LockRequest};

/// A place that stores one state and its lock.
///
/// Flow: `lock` → `read` → (work, calling `write` after each change and `LockGuard::renew` before the lease
/// runs out) → drop the guard. Reading needs no lock (`plan` may read while another process applies).
///
/// Guarantees every backend keeps:
/// - a write is all or nothing: a reader sees the previous state or the new one, never a mixture;
/// - a state that does not read is never overwritten (`write` reads and parses the stored state first);
/// - a write never loses another writer's work: it is refused (`StateError::Stale`) unless the stored state
///   is the one the writer read (same lineage and serial);
/// - a lock is a lease: it names its holder and an expiry, and an expired lock is taken over, not obeyed
///   forever.
pub trait Backend: Send + Sync {
    /// The stored state, upgraded to the current format; `None` when no state exists yet.
    ///
    /// Errors: I/O, and every reading error of [`crate::parse`] (corrupt, truncated, newer version, ...).
    fn read(&self) -> Result<Option<State>, StateError>;

    /// Stores `state` if its content (model and resources) differs from what is stored, or the stored
    /// document has an older format version; then `state.serial` is incremented, and the state is written
    /// with it. An unchanged state writes nothing and keeps its serial.
    ///
    /// `state.serial` and `state.lineage` must be those of the state this writer read (or of
    /// [`State::new`], when nothing was stored). The invariants of [`State`] are restored first (sorting).
    ///
    /// Errors: [`StateError::Stale`] when the stored state has another lineage or serial (nothing is
    /// written; `state` is unchanged); [`StateError::Locked`] when another holder's unexpired lock is in
    /// place; [`StateError::DuplicateAddress`]; every reading error of the stored state; I/O.
    fn write(&self, state: &mut State) -> Result<(), StateError>;

    /// Takes the lock for `request`: creates it when there is none, takes it over when its lease has
    /// expired.
    ///
    /// Errors: [`StateError::Locked`] naming the holder when an unexpired lock is in place;
    /// [`StateError::LockCorrupt`] when the lock in place cannot be read; I/O.
    fn lock(&self, request: &LockRequest) -> Result<LockGuard, StateError>;

    /// The lock in place, expired or not; `None` when there is none. For `ds state unlock` and messages.
    fn lock_info(&self) -> Result<Option<LockInfo>, StateError>;

    /// Breaks the lock: with `Some(id)` only the lock with that id ([`StateError::LockMismatch`] otherwise),
    /// with `None` any lock, even one that cannot be read. Returns the lock removed (`None` when there was
    /// none, or it could not be read).
    fn force_unlock(&self, id: Option<&str>) -> Result<Option<LockInfo>, StateError>;

    /// Where the state lives, for messages: "local file .ds/state.json".
    fn describe(&self) -> String;
}
