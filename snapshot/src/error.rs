//! The error type of this crate.

use std::path::PathBuf;

use keeperkit_model::Corruption;

/// Everything that can go wrong while reading or writing a snapshot, in every dialect.
///
/// I/O failures and corruption are kept apart: [`SnapshotError::Io`] says the file could
/// not be read, [`SnapshotError::Corrupt`] says its bytes are wrong and names the file
/// and the byte offset. The other variants are a writer's refusals: a version it does
/// not write, nodes the version cannot hold, a source that failed.
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
    /// A snapshot version this writer does not produce.
    #[error("snapshot version V{version} cannot be written ({writable} can)")]
    VersionNotWritable {
        /// The version asked for.
        version: u8,
        /// The versions that can be written, for the message ("V6, V7 and V8").
        writable: &'static str,
    },
    /// Nodes the asked version cannot hold (TTL nodes before ClickHouse V8, sequence
    /// counters above i32 before V7, ACL ids above u32 from V7 on), with the reason.
    #[error(
        "{} node(s) cannot be stored in V{version}: {reason} (first: {})",
        paths.len(),
        paths.first().map_or("", String::as_str)
    )]
    Unrepresentable {
        /// The target version.
        version: u8,
        /// What the version cannot hold.
        reason: String,
        /// The nodes concerned.
        paths: Vec<String>,
    },
    /// What a writer was given cannot be written: a limit it would exceed (a path or
    /// value longer than the format can say, too many chunks), a negative zxid, a first
    /// node that is not the root, a count the source did not keep. Checked before the
    /// bytes concerned are written; the final file name is never touched.
    #[error("refused to write {path}: {reason}")]
    Refused {
        /// The file that was to be written.
        path: PathBuf,
        /// What is wrong with the input.
        reason: String,
    },
    /// The source being written disagrees with itself (counts and visits differ), or
    /// failed.
    #[error("snapshot source: {0}")]
    Source(String),
}

impl SnapshotError {
    /// The corruption this error reports, if it is one.
    pub fn corruption(&self) -> Option<&Corruption> {
        match self {
            SnapshotError::Corrupt(c) => Some(c),
            _ => None,
        }
    }

    /// Wraps an I/O error with the path it happened on.
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> SnapshotError {
        SnapshotError::Io { path: path.into(), source }
    }
}
