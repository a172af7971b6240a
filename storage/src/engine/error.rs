//! Errors of the native engine.

use std::path::PathBuf;

use keeperkit_model::Corruption;
use keeperkit_snapshot::SnapshotError;
use keeperkit_wal::native::NativeWalError;

use crate::StorageError;

/// Why an engine operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// An I/O error on a path.
    #[error("I/O error on {path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// Corrupt bytes in a file (names file, offset and what was expected).
    #[error("{0}")]
    Corrupt(Corruption),
    /// The log failed (I/O, limits, ordering, poisoned after a failed fsync).
    #[error("log: {0}")]
    Wal(NativeWalError),
    /// A storage-level failure (snapshot loading, no usable snapshot, ...).
    #[error("{0}")]
    Storage(StorageError),
    /// The log does not continue the snapshot: entries between them are missing.
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
    /// A caller broke the API's contract (an entry out of order, ...).
    #[error("invalid: {0}")]
    Invalid(String),
}

impl EngineError {
    /// Whether the error means data on disk is damaged.
    pub fn is_corruption(&self) -> bool {
        match self {
            EngineError::Corrupt(_) | EngineError::Gap { .. } => true,
            EngineError::Wal(e) => {
                e.corruption().is_some() || matches!(e, NativeWalError::TornTail(_))
            }
            EngineError::Storage(e) => e.is_corruption(),
            _ => false,
        }
    }
}

impl From<NativeWalError> for EngineError {
    fn from(e: NativeWalError) -> Self {
        EngineError::Wal(e)
    }
}

impl From<StorageError> for EngineError {
    fn from(e: StorageError) -> Self {
        match e {
            StorageError::Corrupt(c) => EngineError::Corrupt(c),
            other => EngineError::Storage(other),
        }
    }
}

impl From<SnapshotError> for EngineError {
    fn from(e: SnapshotError) -> Self {
        StorageError::from(e).into()
    }
}
