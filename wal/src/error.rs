//! The error type of this crate.

use std::path::PathBuf;

use keeperkit_model::Corruption;

/// Everything that can go wrong while reading or writing a log, in every dialect.
///
/// I/O failures and corruption are kept apart: an [`WalError::Io`] says the file could
/// not be read (retrying may help), a [`WalError::Corrupt`] says the bytes are wrong and
/// names the file, the byte offset and, where known, the zxid or index of the record.
/// The other variants are the native log's refusals: a torn tail under
/// [`RecoveryMode::Strict`](crate::native::RecoveryMode::Strict), a size limit, an
/// append out of order, a read out of range, a writer poisoned by a failed fsync, an
/// invalid option.
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
    /// The newest native segment ends in a torn write, and the recovery mode is strict.
    #[error("{0}; open with RecoveryMode::TolerateTornTail or run repair to cut it")]
    TornTail(crate::native::Problem),
    /// A size limit would be exceeded; nothing was written.
    #[error("{what} is {len} bytes or items, the limit is {max}")]
    LimitExceeded {
        /// What is too large.
        what: &'static str,
        /// Its size.
        len: u64,
        /// The limit.
        max: u64,
    },
    /// Appended indexes must continue the log without gaps.
    #[error("index {found} does not continue the log, expected {expected}")]
    NotContiguous {
        /// The index that was expected.
        expected: u64,
        /// The index given.
        found: u64,
    },
    /// The index is not in the log.
    #[error("index {index} is not in the log (first {first}, next {next})")]
    OutOfRange {
        /// The index asked for.
        index: u64,
        /// The first index still in the log.
        first: u64,
        /// The index the next append will get.
        next: u64,
    },
    /// An earlier fsync failed: the writer refuses to go on until reopened.
    #[error("the log is poisoned by an earlier failure ({cause}); reopen it")]
    Poisoned {
        /// What failed.
        cause: String,
    },
    /// An argument or option is invalid.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
}

impl WalError {
    /// The corruption this error reports, if it is one.
    pub fn corruption(&self) -> Option<&Corruption> {
        match self {
            WalError::Corrupt(c) => Some(c),
            _ => None,
        }
    }

    /// Whether the error means the bytes on disk are damaged: corruption, or a torn
    /// tail refused in strict mode.
    pub fn is_corruption(&self) -> bool {
        matches!(self, WalError::Corrupt(_) | WalError::TornTail(_))
    }

    /// Wraps an I/O error with the path it happened on.
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> WalError {
        WalError::Io { path: path.into(), source }
    }
}
