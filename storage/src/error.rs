//! Errors of the storage layer.

use std::path::PathBuf;

use keeperkit_model::Corruption;
use keeperkit_snapshot::SnapshotError;
use keeperkit_wal::WalError;

/// Why a data directory could not be opened, recovered, checked, repaired or converted,
/// or why the native engine failed: the one error type of the storage layer.
///
/// The lower layers' I/O failures and corruption arrive as [`StorageError::Io`] and
/// [`StorageError::Corrupt`] (file, byte offset, position), whichever crate found them;
/// [`StorageError::Wal`] and [`StorageError::Snapshot`] carry only those crates' other
/// refusals (a size limit, an append out of order, a poisoned log, a state a snapshot
/// version cannot hold).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// An I/O error on a path.
    #[error("I/O error on {path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// Corrupt bytes in a file.
    #[error("{0}")]
    Corrupt(Corruption),
    /// The path is not a data directory of the expected kind.
    #[error("{path} is not a {what}: {reason}")]
    NotADataDir {
        /// The path given.
        path: PathBuf,
        /// What was expected ("ZooKeeper data directory", ...).
        what: &'static str,
        /// Why not.
        reason: String,
    },
    /// Every snapshot was damaged (or there were none while logs exist).
    #[error("no usable snapshot in {dir}: {}", describe_tried(.tried))]
    NoUsableSnapshot {
        /// The snapshot directory.
        dir: PathBuf,
        /// Each snapshot tried and why it was refused.
        tried: Vec<(PathBuf, String)>,
    },
    /// A snapshot is damaged and no other start covers it: the older snapshot (or the
    /// empty tree) plus the log would give a smaller state than the files held.
    #[error(
        "snapshot {} (index {index}) is damaged ({reason}) and nothing replaces it: the \
         fallback starts at index {fallback} and the log {log}, so every entry up to index \
         {index} would be lost; restore the snapshot from another replica",
        .snapshot.display()
    )]
    SnapshotNeeded {
        /// The snapshot directory.
        dir: PathBuf,
        /// The damaged snapshot.
        snapshot: PathBuf,
        /// Its index.
        index: u64,
        /// Why it cannot be read.
        reason: String,
        /// Where the fallback starts (an older snapshot's index, or 0).
        fallback: u64,
        /// What the log holds.
        log: String,
    },
    /// Nothing exists at the path.
    #[error("{} does not exist", .0.display())]
    NotFound(PathBuf),
    /// No dialect's files are at the path.
    #[error(
        "cannot tell which kind of data {} holds: no ZooKeeper, ClickHouse Keeper or \
         keeperkit files found", .0.display()
    )]
    UnknownDialect(PathBuf),
    /// `--format` named a dialect whose files are not at the path.
    #[error("{} holds no {dialect} files (found: {})", .path.display(), describe_found(.found))]
    FormatNotThere {
        /// The path.
        path: PathBuf,
        /// The dialect asked for.
        dialect: crate::Dialect,
        /// The dialects whose files are there.
        found: Vec<crate::Dialect>,
    },
    /// A point of the wrong kind for the dialect (a zxid for a Raft log, an index for
    /// ZooKeeper).
    #[error("{dialect} data is addressed by {by}, not by {not}")]
    WrongPointKind {
        /// The dialect.
        dialect: crate::Dialect,
        /// How it is addressed ("log index", "zxid").
        by: &'static str,
        /// What was given.
        not: &'static str,
    },
    /// The requested point is after the last one the files hold.
    #[error("cannot recover to {requested}: the last point available is {last}")]
    PastEnd {
        /// What was asked for.
        requested: crate::findings::Position,
        /// The last point the files hold.
        last: crate::findings::Position,
    },
    /// What was asked cannot be done with what the path is (a point in time of a
    /// single snapshot file, a state from a log alone, ...).
    #[error("{0}")]
    Unsupported(String),
    /// The log refused an operation (a size limit, an append out of order, a read out
    /// of range, a writer poisoned by a failed fsync, a torn tail in strict mode).
    /// Never [`WalError::Io`] or [`WalError::Corrupt`]: those become
    /// [`StorageError::Io`] and [`StorageError::Corrupt`].
    #[error("log: {0}")]
    Wal(WalError),
    /// The snapshot layer refused an operation (a state the asked version cannot
    /// hold). Never [`SnapshotError::Io`] or [`SnapshotError::Corrupt`]: those become
    /// [`StorageError::Io`] and [`StorageError::Corrupt`].
    #[error("snapshot: {0}")]
    Snapshot(SnapshotError),
    /// The native log does not continue the native snapshot: entries between them are
    /// missing.
    #[error(
        "the log starts at index {log_first} but the snapshot {snapshot} ends at index \
         {snapshot_index}: entries in between are missing"
    )]
    Gap {
        /// The snapshot used.
        snapshot: String,
        /// Its last index.
        snapshot_index: u64,
        /// The first index in the log.
        log_first: u64,
    },
    /// A path is not the kind of file the layout needs there.
    #[error("{} is {found}, not {expected}", .path.display())]
    WrongKind {
        /// The path.
        path: PathBuf,
        /// What was expected there ("a directory").
        expected: &'static str,
        /// What it is.
        found: String,
    },
    /// The call makes no sense (contradictory or impossible arguments, an entry out
    /// of order given to the engine, ...).
    #[error("{0}")]
    Usage(String),
    /// A requested point in time cannot be reached.
    #[error("cannot recover to {what}: {reason}")]
    Unreachable {
        /// What was asked for.
        what: String,
        /// Why it cannot be reached.
        reason: String,
    },
}

fn describe_found(found: &[crate::Dialect]) -> String {
    if found.is_empty() {
        return "nothing recognisable".into();
    }
    found.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
}

fn describe_tried(tried: &[(PathBuf, String)]) -> String {
    if tried.is_empty() {
        return "there are no snapshot files".into();
    }
    tried.iter().map(|(p, why)| format!("{}: {why}", p.display())).collect::<Vec<_>>().join("; ")
}

impl StorageError {
    /// The corruption behind this error, if it is one.
    pub fn corruption(&self) -> Option<&Corruption> {
        match self {
            StorageError::Corrupt(c) => Some(c),
            _ => None,
        }
    }

    /// Whether this error means the data is damaged (as opposed to usage or I/O).
    pub fn is_corruption(&self) -> bool {
        match self {
            StorageError::Corrupt(_)
            | StorageError::NoUsableSnapshot { .. }
            | StorageError::SnapshotNeeded { .. }
            | StorageError::Gap { .. } => true,
            StorageError::Wal(e) => e.is_corruption(),
            _ => false,
        }
    }

    /// What the user can do next, when there is something to say.
    pub fn hint(&self) -> Option<String> {
        match self {
            StorageError::UnknownDialect(_) => Some(
                "point at the data directory (ZooKeeper dataDir, Keeper coordination dir) or \
                 force the dialect with --format"
                    .into(),
            ),
            StorageError::WrongPointKind { by: "zxid", .. } => Some("use --at ZXID".into()),
            StorageError::WrongPointKind { .. } => Some("use --at-index N".into()),
            StorageError::PastEnd { last, .. } => {
                Some(format!("ask for a point up to {last}, or omit it for the latest state"))
            }
            _ => None,
        }
    }
}

impl From<WalError> for StorageError {
    fn from(e: WalError) -> Self {
        match e {
            WalError::Io { path, source } => StorageError::Io { path, source },
            WalError::Corrupt(c) => StorageError::Corrupt(c),
            other => StorageError::Wal(other),
        }
    }
}

impl From<SnapshotError> for StorageError {
    fn from(e: SnapshotError) -> Self {
        match e {
            SnapshotError::Io { path, source } => StorageError::Io { path, source },
            SnapshotError::Corrupt(c) => StorageError::Corrupt(c),
            other => StorageError::Snapshot(other),
        }
    }
}
