//! Typed corruption errors that carry their position as data.
//!
//! Decoders in this crate work on byte slices and return a [`DecodeError`]: an offset
//! (relative to the start of what they were given) and a [`CorruptionKind`]. The format
//! crates turn that into a [`Corruption`], which adds the file, the absolute byte
//! offset and, where known, the zxid or log index of the record.

use std::fmt;
use std::path::PathBuf;

use crate::ids::Zxid;

/// What exactly is wrong with some bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CorruptionKind {
    /// A magic number did not match.
    BadMagic {
        /// The magic the format requires.
        expected: u64,
        /// The value found.
        found: u64,
    },
    /// A format version this build does not read.
    UnsupportedVersion {
        /// The version found.
        found: i64,
    },
    /// A checksum did not match the bytes it covers.
    ChecksumMismatch {
        /// The checksum stored in the file.
        stored: u64,
        /// The checksum computed over the bytes.
        computed: u64,
    },
    /// A length or count field is negative or larger than its limit.
    LengthOutOfRange {
        /// The value found.
        len: i64,
        /// The largest value accepted here.
        max: u64,
    },
    /// The bytes end before the structure does.
    Truncated {
        /// How many bytes were needed.
        needed: u64,
        /// How many were available.
        available: u64,
    },
    /// A string is not valid UTF-8.
    InvalidUtf8,
    /// A transaction type code this build does not know.
    UnknownTxnType(i32),
    /// A compressed stream could not be decompressed.
    Decompression(String),
    /// A structural rule of the format is broken (the text names the rule).
    Invalid(String),
}

impl fmt::Display for CorruptionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CorruptionKind::BadMagic { expected, found } => {
                write!(f, "bad magic: expected {expected:#x}, found {found:#x}")
            }
            CorruptionKind::UnsupportedVersion { found } => {
                write!(f, "unsupported format version {found}")
            }
            CorruptionKind::ChecksumMismatch { stored, computed } => {
                write!(f, "checksum mismatch: stored {stored:#x}, computed {computed:#x}")
            }
            CorruptionKind::LengthOutOfRange { len, max } => {
                write!(f, "length {len} out of range (0..={max})")
            }
            CorruptionKind::Truncated { needed, available } => {
                write!(f, "truncated: needed {needed} bytes, {available} available")
            }
            CorruptionKind::InvalidUtf8 => write!(f, "string is not valid UTF-8"),
            CorruptionKind::UnknownTxnType(t) => write!(f, "unknown transaction type {t}"),
            CorruptionKind::Decompression(msg) => write!(f, "decompression failed: {msg}"),
            CorruptionKind::Invalid(msg) => write!(f, "{msg}"),
        }
    }
}

/// A decoding failure inside a byte slice: where and what.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("at byte {offset}: {kind}")]
pub struct DecodeError {
    /// Offset relative to the start of the slice given to the decoder.
    pub offset: u64,
    /// What was wrong.
    pub kind: CorruptionKind,
}

impl DecodeError {
    /// Builds a decode error.
    pub fn new(offset: u64, kind: CorruptionKind) -> DecodeError {
        DecodeError { offset, kind }
    }

    /// The same error, with its offset moved by `base` (when a slice was cut out of a
    /// larger buffer).
    pub fn shifted(self, base: u64) -> DecodeError {
        DecodeError { offset: self.offset.saturating_add(base), kind: self.kind }
    }

    /// Attaches a file (and optionally a zxid) to make a [`Corruption`]; `base` is the
    /// file offset of the slice the decoder worked on.
    pub fn in_file(self, file: impl Into<PathBuf>, base: u64, zxid: Option<Zxid>) -> Corruption {
        Corruption {
            file: file.into(),
            offset: self.offset.saturating_add(base),
            zxid,
            index: None,
            kind: self.kind,
        }
    }
}

/// Corruption found in a file: which file, which byte, which record, what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Corruption {
    /// The file the bytes came from.
    pub file: PathBuf,
    /// Absolute byte offset in the file (for compressed files: in the decompressed
    /// stream, which the message says).
    pub offset: u64,
    /// The zxid of the record, when known.
    pub zxid: Option<Zxid>,
    /// The log index of the record, when known (Raft-style logs).
    pub index: Option<u64>,
    /// What is wrong.
    pub kind: CorruptionKind,
}

impl Corruption {
    /// Builds a corruption error for a file position.
    pub fn new(file: impl Into<PathBuf>, offset: u64, kind: CorruptionKind) -> Corruption {
        Corruption { file: file.into(), offset, zxid: None, index: None, kind }
    }

    /// Adds the zxid of the record.
    pub fn with_zxid(mut self, zxid: Zxid) -> Corruption {
        self.zxid = Some(zxid);
        self
    }

    /// Adds the log index of the record.
    pub fn with_index(mut self, index: u64) -> Corruption {
        self.index = Some(index);
        self
    }
}

impl fmt::Display for Corruption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: byte {}", self.file.display(), self.offset)?;
        if let Some(z) = self.zxid {
            write!(f, " (zxid {z})")?;
        }
        if let Some(i) = self.index {
            write!(f, " (index {i})")?;
        }
        write!(f, ": {}", self.kind)
    }
}

impl std::error::Error for Corruption {}
