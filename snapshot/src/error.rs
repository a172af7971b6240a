//! The error type of this crate.

use std::path::PathBuf;

use keeperkit_model::Corruption;

/// Everything that can go wrong while reading or writing a snapshot.
///
/// I/O failures and corruption are kept apart: [`SnapshotError::Io`] says the file could
/// not be read, [`SnapshotError::Corrupt`] says its bytes are wrong and names the file
/// and the byte offset.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SnapshotError {
    /// The file system reported an error.
    #[error("I/O error on {path}: {source}")]
    Io {
        /// The file or directory the operation was on.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The bytes of a file are not a valid snapshot.
    #[error("{0}")]
    Corrupt(#[from] Corruption),
}

impl SnapshotError {
    /// The corruption this error reports, if it is one.
    pub fn corruption(&self) -> Option<&Corruption> {
        match self {
            SnapshotError::Corrupt(c) => Some(c),
            SnapshotError::Io { .. } => None,
        }
    }

    /// Wraps an I/O error with the path it happened on.
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> SnapshotError {
        SnapshotError::Io { path: path.into(), source }
    }
}
