//! The error type of this crate.

use std::path::PathBuf;

use keeperkit_model::Corruption;

/// Everything that can go wrong while reading or writing a log.
///
/// I/O failures and corruption are kept apart: an [`WalError::Io`] says the file could
/// not be read (retrying may help), a [`WalError::Corrupt`] says the bytes are wrong and
/// names the file, the byte offset and, where known, the zxid of the record.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WalError {
    /// The file system reported an error.
    #[error("I/O error on {path}: {source}")]
    Io {
        /// The file or directory the operation was on.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The bytes of a file are not a valid log.
    #[error("{0}")]
    Corrupt(#[from] Corruption),
}

impl WalError {
    /// The corruption this error reports, if it is one.
    pub fn corruption(&self) -> Option<&Corruption> {
        match self {
            WalError::Corrupt(c) => Some(c),
            WalError::Io { .. } => None,
        }
    }

    /// Wraps an I/O error with the path it happened on.
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> WalError {
        WalError::Io { path: path.into(), source }
    }
}
