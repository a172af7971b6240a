//! Errors of the storage layer.

use std::path::PathBuf;

use keeperkit_model::Corruption;
use keeperkit_snapshot::SnapshotError;
use keeperkit_wal::WalError;

/// Why a data directory could not be opened or recovered.
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
    /// A requested point in time cannot be reached.
    #[error("cannot recover to {what}: {reason}")]
    Unreachable {
        /// What was asked for.
        what: String,
        /// Why it cannot be reached.
        reason: String,
    },
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
        matches!(self, StorageError::Corrupt(_) | StorageError::NoUsableSnapshot { .. })
    }
}

impl From<WalError> for StorageError {
    fn from(e: WalError) -> Self {
        match e {
            WalError::Io { path, source } => StorageError::Io { path, source },
            WalError::Corrupt(c) => StorageError::Corrupt(c),
            other => StorageError::Io {
                path: PathBuf::new(),
                source: std::io::Error::other(other.to_string()),
            },
        }
    }
}

impl From<SnapshotError> for StorageError {
    fn from(e: SnapshotError) -> Self {
        match e {
            SnapshotError::Io { path, source } => StorageError::Io { path, source },
            SnapshotError::Corrupt(c) => StorageError::Corrupt(c),
            other => StorageError::Io {
                path: PathBuf::new(),
                source: std::io::Error::other(other.to_string()),
            },
        }
    }
}
