//! The one error type of the crate.

use std::fmt;
use std::io;
use std::path::PathBuf;

use crate::lock::LockInfo;

/// What went wrong with a state or its lock. Every variant names the file (for other backends: the
/// location) and says what to do. The cause is either in the message or returned by `source()`, never both.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StateError {
    /// Reading, writing, renaming or syncing a file failed; the cause is the `source()`.
    #[error("cannot {action} `{path}`")]
    Io {
        path: PathBuf,
        /// What was being done, as a verb phrase: "read the state file".
        action: &'static str,
        #[source]
        source: io::Error,
    },

    /// The text is not JSON.
    #[error(
        "`{path}` is not valid JSON ({message} at line {line}, column {column}): repair it, or restore the \
         previous state from its backup"
    )]
    Syntax {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },

    /// The text ends in the middle of the document (an interrupted copy or an empty file).
    #[error(
        "`{path}` ends early, at line {line}, column {column}: it is truncated; restore the previous state \
         from its backup"
    )]
    Truncated {
        path: PathBuf,
        line: usize,
        column: usize,
    },

    /// The text is JSON but not a state document: a field is missing or has the wrong type.
    #[error(
        "`{path}` is not a valid state file ({message}{}): repair it, or restore the previous state from its \
         backup",
        position(*.line, *.column)
    )]
    Invalid {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },

    /// The document has no `version`.
    #[error("`{path}` has no `version` field, so it is not a ds state file: check the path")]
    MissingVersion { path: PathBuf },

    /// The `version` is not one any ds wrote (0, negative, not a number).
    #[error(
        "`{path}` has state format version {found}, which no ds release writes (the first is {first}): check \
         the path, or restore the previous state from its backup"
    )]
    UnknownVersion {
        path: PathBuf,
        found: String,
        first: u32,
    },

    /// The document was written by a newer ds.
    #[error(
        "`{path}` was written by a newer ds (state format version {version}; this ds reads versions up to \
         {supported}): upgrade ds"
    )]
    NewerVersion {
        path: PathBuf,
        version: u64,
        supported: u32,
    },

    /// An upgrade step from an older format failed.
    #[error(
        "cannot upgrade `{path}` from state format version {from}: {message}; the file is unchanged: report \
         this as a ds bug"
    )]
    Upgrade {
        path: PathBuf,
        from: u32,
        message: String,
    },

    /// Two resources share an address.
    #[error("the state in `{path}` records `{address}` twice: keep one of the two entries")]
    DuplicateAddress { path: PathBuf, address: String },

    /// The stored state is not the one the writer read: nothing was written.
    #[error(
        "`{path}` changed since it was read ({reason}); nothing was written: run the command again"
    )]
    Stale { path: PathBuf, reason: Stale },

    /// Someone else holds an unexpired lock.
    #[error(
        "`{path}` is locked by {info}: wait, or run `ds state unlock {id}` if that process is gone",
        id = .info.id
    )]
    Locked { path: PathBuf, info: Box<LockInfo> },

    /// The lock this process took is no longer in place (its lease expired and someone took it over, or it
    /// was broken with `ds state unlock`).
    #[error("lost the lock on `{path}` (id {id}): {}: stop, and run the command again", lost(.holder))]
    LockLost {
        path: PathBuf,
        id: String,
        holder: Option<Box<LockInfo>>,
    },

    /// `force_unlock` was given an id that is not the current lock's.
    #[error(
        "`{path}` is locked with id {}, not {requested}: nothing was unlocked; check the id (the lock is held \
         by {info})",
        .info.id
    )]
    LockMismatch {
        path: PathBuf,
        requested: String,
        info: Box<LockInfo>,
    },

    /// The lock file is not a lock document.
    #[error(
        "lock file `{path}` is not valid ({message}): if no ds is using the state, remove it with \
         `ds state unlock`"
    )]
    LockCorrupt { path: PathBuf, message: String },

    /// The lock kept changing hands while this process tried to take it.
    #[error(
        "could not lock `{path}`: other processes kept taking and releasing the lock: run the command again"
    )]
    LockContended { path: PathBuf },
}

/// Why a write was refused as stale.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Stale {
    /// The stored state is a different one (another lineage).
    Lineage { read: String, stored: String },
    /// The stored state was written since it was read.
    Serial { read: u64, stored: u64 },
}

impl fmt::Display for Stale {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Stale::Lineage { read, stored } => {
                write!(
                    f,
                    "it now holds another state: lineage {stored}, not {read}"
                )
            }
            Stale::Serial { read, stored } => {
                write!(
                    f,
                    "another ds wrote serial {stored}; serial {read} was read"
                )
            }
        }
    }
}

fn position(line: usize, column: usize) -> String {
    if line == 0 {
        String::new()
    } else {
        format!(" at line {line}, column {column}")
    }
}

fn lost(holder: &Option<Box<LockInfo>>) -> String {
    match holder {
        Some(info) => format!("it is now held by {info}"),
        None => "the lock was removed (`ds state unlock`?)".to_owned(),
    }
}

impl StateError {
    pub(crate) fn io(
        path: impl Into<PathBuf>,
        action: &'static str,
    ) -> impl FnOnce(io::Error) -> StateError {
        let path = path.into();
        move |source| StateError::Io {
            path,
            action,
            source,
        }
    }

    /// Classifies a `serde_json` error on a state document.
    pub(crate) fn json(path: impl Into<PathBuf>, error: &serde_json::Error) -> StateError {
        use serde_json::error::Category;
        let path = path.into();
        let (line, column) = (error.line(), error.column());
        match error.classify() {
            Category::Eof => StateError::Truncated { path, line, column },
            Category::Syntax => StateError::Syntax {
                path,
                line,
                column,
                message: bare_message(error),
            },
            Category::Data | Category::Io => StateError::Invalid {
                path,
                line,
                column,
                message: bare_message(error),
            },
        }
    }
}

/// `serde_json`'s message without the " at line L column C" it appends (the variants place it themselves).
pub(crate) fn bare_message(error: &serde_json::Error) -> String {
    let text = error.to_string();
    let suffix = format!(" at line {} column {}", error.line(), error.column());
    match text.strip_suffix(&suffix) {
        Some(bare) => bare.to_owned(),
        None => text,
    }
}
