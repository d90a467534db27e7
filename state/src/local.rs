//! The local backend: a state file, its backup and its lock file side by side in one directory.
//!
//! Files, for a state at `.ds/state.json`:
//! - `.ds/state.json`: the state; only ever replaced whole, by renaming a synced temporary file over it;
//! - `.ds/state.json.backup`: the state before the last write;
//! - `.ds/state.json.lock`: the lock, present while someone holds it;
//! - `*.tmp`: short-lived files of a write or lock change in progress (a crash may leave one behind; they
//!   are never read and can be deleted).

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use crate::backend::Backend;
use crate::error::{Stale, StateError};
use crate::format::{Encoded, FORMAT_VERSION, State, parse, parse_stored};
use crate::lock::{Lease, LockGuard, LockInfo, LockRequest};

/// How often `lock` retries when the lock vanishes or changes hands under it before giving up.
const LOCK_ATTEMPTS: usize = 8;

/// A state in a local file (by default `.ds/state.json`).
#[derive(Debug)]
pub struct LocalBackend {
    path: PathBuf,
    backup: PathBuf,
    lock: LockFile,
    /// Ids of the locks taken through this backend and not yet released: a write is refused while someone
    /// else's unexpired lock is in place, but not while one of these is.
    held: Arc<Mutex<BTreeSet<String>>>,
    /// One write at a time from this process, so that the read-compare-replace of `write` is not interleaved.
    writing: Mutex<()>,
    /// What this backend wrote last: lets the next write recognise the stored file without parsing it.
    last_write: Mutex<Option<LastWrite>>,
}

/// A document this backend wrote, with the lineage and serial it holds.
struct LastWrite {
    lineage: String,
    serial: u64,
    encoded: Encoded,
}

impl std::fmt::Debug for LastWrite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LastWrite")
            .field("lineage", &self.lineage)
            .field("serial", &self.serial)
            .finish_non_exhaustive()
    }
}

impl LocalBackend {
    /// The backend for the state file at `path` (which need not exist yet; its directory is created on the
    /// first write or lock).
    pub fn new(path: impl Into<PathBuf>) -> LocalBackend {
        let path = path.into();
        LocalBackend {
            backup: with_suffix(&path, ".backup"),
            lock: LockFile {
                path: with_suffix(&path, ".lock"),
                state: path.clone(),
            },
            path,
            held: Arc::default(),
            writing: Mutex::new(()),
            last_write: Mutex::new(None),
        }
    }

    /// The state file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The previous state, kept by every write: `<path>.backup`.
    pub fn backup_path(&self) -> &Path {
        &self.backup
    }

    /// The lock file: `<path>.lock`.
    pub fn lock_path(&self) -> &Path {
        &self.lock.path
    }

    fn dir(&self) -> PathBuf {
        parent(&self.path)
    }

    fn create_dir(&self) -> Result<(), StateError> {
        let dir = self.dir();
        fs::create_dir_all(&dir).map_err(StateError::io(dir, "create the state directory"))
    }

    /// Refuses while a lock that this backend did not take holds an unexpired lease.
    fn check_not_locked_by_others(&self) -> Result<(), StateError> {
        let Some(info) = self.lock.read()? else {
            return Ok(());
        };
        let ours = self
            .held
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(&info.id);
        if ours || info.is_expired(SystemTime::now()) {
            Ok(())
        } else {
            Err(StateError::Locked {
                path: self.path.clone(),
                info: Box::new(info),
            })
        }
    }

    /// Puts `parts` (concatenated) in place of the state file, keeping `previous` (the current content) as
    /// the backup.
    /// The error says whether the new file was already in place (only syncing its directory failed).
    fn replace(&self, parts: &[&[u8]], previous: Option<&[u8]>) -> Result<(), ReplaceError> {
        self.create_dir().map_err(ReplaceError::Before)?;
        let temp = temp_sibling(&self.path, "tmp");
        write_synced(&temp, parts).map_err(|e| {
            ReplaceError::Before(StateError::io(&temp, "write the new state to")(e))
        })?;
        let placed = previous
            .map_or(Ok(()), |previous| self.keep_backup(previous))
            .and_then(|()| {
                fs::rename(&temp, &self.path)
                    .map_err(StateError::io(&self.path, "replace the state file"))
            });
        if let Err(error) = placed {
            let _ = fs::remove_file(&temp);
            return Err(ReplaceError::Before(error));
        }
        let dir = self.dir();
        sync_dir(&dir)
            .map_err(|e| ReplaceError::After(StateError::io(dir, "sync the state directory")(e)))
    }

    /// Makes the current state file the backup. It becomes a second name for the current file (a hard
    /// link: no copy); where links are not supported, `previous` is written instead.
    fn keep_backup(&self, previous: &[u8]) -> Result<(), StateError> {
        let temp = temp_sibling(&self.backup, "tmp");
        if fs::hard_link(&self.path, &temp).is_err() {
            write_synced(&temp, &[previous]).map_err(StateError::io(&temp, "write the backup"))?;
        }
        fs::rename(&temp, &self.backup).map_err(|e| {
            let _ = fs::remove_file(&temp);
            StateError::io(&self.backup, "replace the backup")(e)
        })
    }
}

enum ReplaceError {
    /// Nothing changed: the stored state is the previous one.
    Before(StateError),
    /// The new state is in place, but syncing its directory failed.
    After(StateError),
}

impl Backend for LocalBackend {
    fn read(&self) -> Result<Option<State>, StateError> {
        match read_optional(&self.path)
            .map_err(StateError::io(&self.path, "read the state file"))?
        {
            None => Ok(None),
            Some(bytes) => parse(&bytes, &self.path).map(Some),
        }
    }

    fn write(&self, state: &mut State) -> Result<(), StateError> {
        let _writing = self.writing.lock().unwrap_or_else(PoisonError::into_inner);
        let path = &self.path;
        state
            .normalize()
            .map_err(|address| StateError::DuplicateAddress {
                path: path.clone(),
                address,
            })?;
        self.check_not_locked_by_others()?;
        let stored_bytes =
            read_optional(path).map_err(StateError::io(path, "read the state file"))?;
        let encoded = Encoded::new(state);
        let mut last = self
            .last_write
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(bytes) = &stored_bytes {
            if encoded.matches(bytes, state.serial) {
                // Byte for byte what would be written: same lineage, serial and content.
                state.version = FORMAT_VERSION;
                return Ok(());
            }
            // The stored lineage and serial: known without parsing when the file is this backend's last
            // write (the common case while applying), else parsed. A state that does not parse is never
            // overwritten: this returns its error first.
            let (lineage, serial, unchanged) =
                match last.as_ref().filter(|w| w.encoded.matches(bytes, w.serial)) {
                    // The bytes differ from the canonical encoding of `state`, so the content does.
                    Some(written) => (written.lineage.clone(), written.serial, false),
                    None => {
                        let (stored, version) = parse_stored(bytes, path)?;
                        let unchanged = version == FORMAT_VERSION
                            && stored.model == state.model
                            && stored.resources == state.resources;
                        (stored.lineage, stored.serial, unchanged)
                    }
                };
            if lineage != state.lineage {
                let reason = Stale::Lineage {
                    read: state.lineage.clone(),
                    stored: lineage,
                };
                return Err(StateError::Stale {
                    path: path.clone(),
                    reason,
                });
            }
            if serial != state.serial {
                let reason = Stale::Serial {
                    read: state.serial,
                    stored: serial,
                };
                return Err(StateError::Stale {
                    path: path.clone(),
                    reason,
                });
            }
            if unchanged {
                state.version = FORMAT_VERSION;
                return Ok(());
            }
        }
        let serial = state.serial + 1;
        let header = encoded.header(serial);
        // Once the new file is in place (even if syncing its directory then failed), `state` takes its serial.
        let synced = match self.replace(&[&header, encoded.body()], stored_bytes.as_deref()) {
            Err(ReplaceError::Before(error)) => return Err(error),
            Err(ReplaceError::After(error)) => Err(error),
            Ok(()) => Ok(()),
        };
        state.serial = serial;
        state.version = FORMAT_VERSION;
        *last = Some(LastWrite {
            lineage: state.lineage.clone(),
            serial,
            encoded,
        });
        synced
    }

    fn lock(&self, request: &LockRequest) -> Result<LockGuard, StateError> {
        self.create_dir()?;
        let info = LockInfo::new(request, SystemTime::now());
        let bytes = info.to_bytes();
        let locked = |info: LockInfo| StateError::Locked {
            path: self.path.clone(),
            info: Box::new(info),
        };
        let _changing = self.lock.changing()?;
        for _ in 0..LOCK_ATTEMPTS {
            let won = if self.lock.create(&bytes)? {
                true
            } else {
                match self.lock.read()? {
                    None => continue, // released meanwhile
                    Some(current) if !current.is_expired(SystemTime::now()) => {
                        return Err(locked(current));
                    }
                    Some(_) => {
                        // Expired: replace it whole (rename over it), then make sure no other process
                        // (one that could not serialise with us) replaced it at the same time.
                        self.lock.replace(&bytes)?;
                        match self.lock.read()? {
                            Some(current) if current.id == info.id => true,
                            Some(current) => return Err(locked(current)),
                            None => continue,
                        }
                    }
                }
            };
            if won {
                self.held
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(info.id.clone());
                let lease = LocalLease {
                    file: self.lock.clone(),
                    held: Arc::clone(&self.held),
                };
                return Ok(LockGuard::new(info, request.lease, Box::new(lease)));
            }
        }
        Err(StateError::LockContended {
            path: self.path.clone(),
        })
    }

    fn lock_info(&self) -> Result<Option<LockInfo>, StateError> {
        self.lock.read()
    }

    fn force_unlock(&self, id: Option<&str>) -> Result<Option<LockInfo>, StateError> {
        let _changing = self.lock.changing()?;
        let Some(bytes) = self.lock.read_bytes()? else {
            return Ok(None);
        };
        let found = self.lock.decode(&bytes);
        if let Some(id) = id {
            let current = found?;
            if current.id != id {
                return Err(StateError::LockMismatch {
                    path: self.path.clone(),
                    requested: id.to_owned(),
                    info: Box::new(current),
                });
            }
            self.lock.remove()?;
            return Ok(Some(current));
        }
        self.lock.remove()?;
        Ok(found.ok())
    }

    fn describe(&self) -> String {
        format!("local file {}", self.path.display())
    }
}

/// The lock file of one state, and the operations on it.
///
/// The file is always complete: it is created by linking a synced temporary file into place (which fails if
/// a lock exists) and replaced by renaming one over it. Every read-decide-change sequence (take, take over,
/// renew, release, break) runs under [`LockFile::changing`], so two processes never both take the lock.
#[derive(Debug, Clone)]
struct LockFile {
    path: PathBuf,
    /// The state it protects, for messages.
    state: PathBuf,
}

/// How long [`LockFile::changing`] waits for another process's change (a few file operations) to finish.
const CHANGE_WAIT: Duration = Duration::from_secs(10);

impl LockFile {
    /// Serialises changes of the lock file between processes: an advisory lock (`flock`) on the directory,
    /// held for the few file operations of one change and released when the returned handle is dropped (by
    /// the kernel, if the process dies). Where directories cannot be locked (not Unix, or a filesystem that
    /// refuses), `None`: changes then rely on exclusive creation and on re-reading after a replace.
    fn changing(&self) -> Result<Option<File>, StateError> {
        if !cfg!(unix) {
            return Ok(None);
        }
        let Ok(dir) = File::open(parent(&self.path)) else {
            return Ok(None);
        };
        let deadline = Instant::now() + CHANGE_WAIT;
        loop {
            match dir.try_lock() {
                Ok(()) => return Ok(Some(dir)),
                Err(TryLockError::WouldBlock) if Instant::now() < deadline => {
                    thread::sleep(Duration::from_millis(2));
                }
                Err(TryLockError::WouldBlock) => {
                    return Err(StateError::LockContended {
                        path: self.state.clone(),
                    });
                }
                Err(TryLockError::Error(_)) => return Ok(None),
            }
        }
    }

    fn read_bytes(&self) -> Result<Option<Vec<u8>>, StateError> {
        read_optional(&self.path).map_err(StateError::io(&self.path, "read the lock file"))
    }

    fn read(&self) -> Result<Option<LockInfo>, StateError> {
        self.read_bytes()?
            .map(|bytes| self.decode(&bytes))
            .transpose()
    }

    fn decode(&self, bytes: &[u8]) -> Result<LockInfo, StateError> {
        serde_json::from_slice(bytes).map_err(|e| StateError::LockCorrupt {
            path: self.path.clone(),
            message: e.to_string(),
        })
    }

    /// Creates the lock file with `bytes` unless one exists (`Ok(false)`).
    fn create(&self, bytes: &[u8]) -> Result<bool, StateError> {
        create_exclusive(&self.path, bytes)
            .map_err(StateError::io(&self.path, "create the lock file"))
    }

    /// Replaces the lock file whole with `bytes`.
    fn replace(&self, bytes: &[u8]) -> Result<(), StateError> {
        let temp = temp_sibling(&self.path, "tmp");
        write_synced(&temp, &[bytes]).map_err(StateError::io(&temp, "write the new lock to"))?;
        fs::rename(&temp, &self.path).map_err(|e| {
            let _ = fs::remove_file(&temp);
            StateError::io(&self.path, "replace the lock file")(e)
        })
    }

    fn remove(&self) -> Result<(), StateError> {
        match fs::remove_file(&self.path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                Err(StateError::io(&self.path, "remove the lock file")(e))
            }
            _ => Ok(()),
        }
    }
}

/// Renews and releases a lock taken through a [`LocalBackend`].
struct LocalLease {
    file: LockFile,
    held: Arc<Mutex<BTreeSet<String>>>,
}

impl Lease for LocalLease {
    fn renew(&self, info: &LockInfo) -> Result<(), StateError> {
        let lost = |holder: Option<LockInfo>| StateError::LockLost {
            path: self.file.state.clone(),
            id: info.id.clone(),
            holder: holder.map(Box::new),
        };
        let _changing = self.file.changing()?;
        match self.file.read()? {
            None => Err(lost(None)),
            Some(current) if current.id != info.id => Err(lost(Some(current))),
            Some(_) => self.file.replace(&info.to_bytes()),
        }
    }

    fn release(&self, id: &str) -> Result<(), StateError> {
        self.held
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(id);
        let _changing = self.file.changing()?;
        match self.file.read() {
            Ok(Some(current)) if current.id == id => self.file.remove(),
            // Gone, or someone else's now (it stays), or unreadable (not ours to judge).
            _ => Ok(()),
        }
    }
}

/// `path` with `suffix` appended to its file name.
fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = OsString::from(path.as_os_str());
    name.push(suffix);
    PathBuf::from(name)
}

/// A fresh, unique name next to `path`: `<path>.<random>.<kind>`.
fn temp_sibling(path: &Path, kind: &str) -> PathBuf {
    with_suffix(path, &format!(".{}.{kind}", uuid::Uuid::new_v4().simple()))
}

fn parent(path: &Path) -> PathBuf {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_owned(),
        _ => PathBuf::from("."),
    }
}

fn read_optional(path: &Path) -> io::Result<Option<Vec<u8>>> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Writes a new file (it must not exist) from `parts` and syncs it to disk; removes it again on failure.
fn write_synced(path: &Path, parts: &[&[u8]]) -> io::Result<()> {
    let mut file = OpenOptions::new().write(true).create_new(true).open(path)?;
    let written = parts
        .iter()
        .try_for_each(|part| file.write_all(part))
        .and_then(|()| file.sync_all());
    if written.is_err() {
        let _ = fs::remove_file(path);
    }
    written
}

/// Creates `target` with `bytes`, complete or not at all, unless it exists (`Ok(false)`).
fn create_exclusive(target: &Path, bytes: &[u8]) -> io::Result<bool> {
    let temp = temp_sibling(target, "tmp");
    write_synced(&temp, &[bytes])?;
    let linked = fs::hard_link(&temp, target);
    let _ = fs::remove_file(&temp);
    match linked {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
        // A filesystem without hard links: create exclusively and fill (a reader may briefly see it empty).
        Err(_) => match OpenOptions::new().write(true).create_new(true).open(target) {
            Ok(mut file) => file
                .write_all(bytes)
                .and_then(|()| file.sync_all())
                .map(|()| true),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(e),
        },
    }
}

/// Makes a rename in `dir` durable.
#[cfg(unix)]
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(not(unix))]
fn sync_dir(_dir: &Path) -> io::Result<()> {
    Ok(())
}
