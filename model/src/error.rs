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
///
/// Every kind has a stable snake_case [`code`](CorruptionKind::code), part of the
/// JSON contract of the tools; [`CorruptionKind::CODES`] lists them all.
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
    /// A compressed stream could not be decompressed (the text is the codec's).
    Decompression(String),
    /// A compressed stream decompresses to more than the limit for its kind of file:
    /// damage, or a decompression bomb. Nothing past the limit was produced.
    DecompressedTooLarge {
        /// The limit, in decompressed bytes.
        limit: u64,
    },
    /// A field holds a value the format does not define: an unknown flag, kind or
    /// codec, a boolean byte other than 0 or 1.
    UnknownValue {
        /// The field.
        field: &'static str,
        /// The value found.
        found: u64,
    },
    /// Bytes the format reserves or pads with are not zero.
    NonZeroReserved {
        /// Which reserved bytes.
        field: &'static str,
    },
    /// Bytes follow the end of a structure that must fill its space exactly.
    TrailingBytes {
        /// The structure.
        after: &'static str,
        /// How many bytes follow it.
        count: u64,
    },
    /// A terminator the format requires is missing (the NUL of a C string, the end
    /// marker of a multi request).
    MissingTerminator {
        /// What is not terminated.
        what: &'static str,
    },
    /// A variable-length integer is longer than 10 bytes or overflows its type.
    BadVarint {
        /// How many bits the value had to fit in.
        bits: u32,
    },
    /// A value that must be present is null.
    NullValue {
        /// The field.
        field: &'static str,
    },
    /// Two parts of the file disagree: a length field and the bytes it covers, a
    /// header and its trailer, a count and the items counted, an index and the block
    /// it points at.
    Inconsistent {
        /// What disagrees with what.
        detail: String,
    },
    /// Record ids (zxids, log indexes) break the order the format requires.
    SequenceBreak {
        /// Which ids, and what was expected.
        detail: String,
    },
    /// The tree a snapshot holds breaks a rule of trees: a node without its parent,
    /// no root, a second root, a malformed path.
    BadTree {
        /// The rule and the node.
        detail: String,
    },
    /// A Keeper request breaks a rule of its protocol (a multi inside a multi, an
    /// operation a multi may not hold).
    BadRequest {
        /// The rule and the values.
        detail: String,
    },
    /// The file ends without the structure that closes it (a trailer, a seal): it was
    /// cut short or never finished.
    Unfinished {
        /// What is missing.
        what: &'static str,
    },
    /// A fault inside a part of the file that is decoded on its own (a chunk, a
    /// decompressed block). Its code is the code of the inner fault.
    Inside {
        /// The part ("chunk 3", "metadata, byte 17 of its decompressed bytes").
        part: String,
        /// The fault.
        kind: Box<CorruptionKind>,
    },
}

impl CorruptionKind {
    /// Every code [`CorruptionKind::code`] returns, in declaration order.
    pub const CODES: &'static [&'static str] = &[
        "bad_magic",
        "unsupported_version",
        "checksum_mismatch",
        "length_out_of_range",
        "truncated",
        "invalid_utf8",
        "unknown_txn_type",
        "decompression",
        "decompressed_too_large",
        "unknown_value",
        "nonzero_reserved",
        "trailing_bytes",
        "missing_terminator",
        "bad_varint",
        "null_value",
        "inconsistent",
        "sequence_break",
        "bad_tree",
        "bad_request",
        "unfinished",
    ];

    /// The stable snake_case name of this kind of fault.
    pub fn code(&self) -> &'static str {
        match self {
            CorruptionKind::BadMagic { .. } => "bad_magic",
            CorruptionKind::UnsupportedVersion { .. } => "unsupported_version",
            CorruptionKind::ChecksumMismatch { .. } => "checksum_mismatch",
            CorruptionKind::LengthOutOfRange { .. } => "length_out_of_range",
            CorruptionKind::Truncated { .. } => "truncated",
            CorruptionKind::InvalidUtf8 => "invalid_utf8",
            CorruptionKind::UnknownTxnType(_) => "unknown_txn_type",
            CorruptionKind::Decompression(_) => "decompression",
            CorruptionKind::DecompressedTooLarge { .. } => "decompressed_too_large",
            CorruptionKind::UnknownValue { .. } => "unknown_value",
            CorruptionKind::NonZeroReserved { .. } => "nonzero_reserved",
            CorruptionKind::TrailingBytes { .. } => "trailing_bytes",
            CorruptionKind::MissingTerminator { .. } => "missing_terminator",
            CorruptionKind::BadVarint { .. } => "bad_varint",
            CorruptionKind::NullValue { .. } => "null_value",
            CorruptionKind::Inconsistent { .. } => "inconsistent",
            CorruptionKind::SequenceBreak { .. } => "sequence_break",
            CorruptionKind::BadTree { .. } => "bad_tree",
            CorruptionKind::BadRequest { .. } => "bad_request",
            CorruptionKind::Unfinished { .. } => "unfinished",
            CorruptionKind::Inside { kind, .. } => kind.code(),
        }
    }

    /// `kind`, inside `part` ([`CorruptionKind::Inside`]).
    pub fn inside(part: impl Into<String>, kind: CorruptionKind) -> CorruptionKind {
        CorruptionKind::Inside { part: part.into(), kind: Box::new(kind) }
    }

    /// The innermost kind (through [`CorruptionKind::Inside`]).
    pub fn innermost(&self) -> &CorruptionKind {
        match self {
            CorruptionKind::Inside { kind, .. } => kind.innermost(),
            k => k,
        }
    }

    /// Two parts of the file disagree ([`CorruptionKind::Inconsistent`]).
    pub fn inconsistent(detail: impl Into<String>) -> CorruptionKind {
        CorruptionKind::Inconsistent { detail: detail.into() }
    }

    /// Ids out of order ([`CorruptionKind::SequenceBreak`]).
    pub fn sequence_break(detail: impl Into<String>) -> CorruptionKind {
        CorruptionKind::SequenceBreak { detail: detail.into() }
    }

    /// A broken tree rule ([`CorruptionKind::BadTree`]).
    pub fn bad_tree(detail: impl Into<String>) -> CorruptionKind {
        CorruptionKind::BadTree { detail: detail.into() }
    }

    /// A broken request rule ([`CorruptionKind::BadRequest`]).
    pub fn bad_request(detail: impl Into<String>) -> CorruptionKind {
        CorruptionKind::BadRequest { detail: detail.into() }
    }
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
            CorruptionKind::DecompressedTooLarge { limit } => {
                write!(
                    f,
                    "decompresses to more than {limit} bytes (damage or a decompression bomb)"
                )
            }
            CorruptionKind::UnknownValue { field, found } => {
                write!(f, "unknown {field} {found:#x}")
            }
            CorruptionKind::NonZeroReserved { field } => write!(f, "{field} are not zero"),
            CorruptionKind::TrailingBytes { after, count } => {
                write!(f, "{count} bytes after the end of the {after}")
            }
            CorruptionKind::MissingTerminator { what } => write!(f, "{what} is not terminated"),
            CorruptionKind::BadVarint { bits } => {
                write!(f, "varint longer than 10 bytes or wider than {bits} bits")
            }
            CorruptionKind::NullValue { field } => write!(f, "{field} is null"),
            CorruptionKind::Inconsistent { detail }
            | CorruptionKind::SequenceBreak { detail }
            | CorruptionKind::BadTree { detail }
            | CorruptionKind::BadRequest { detail } => f.write_str(detail),
            CorruptionKind::Unfinished { what } => {
                write!(f, "no {what} at the end of the file: it is truncated or was never finished")
            }
            CorruptionKind::Inside { part, kind } => write!(f, "{part}: {kind}"),
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
            chunk: None,
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
    /// The chunk the bytes belong to, when the format is chunked (native snapshots).
    pub chunk: Option<u32>,
    /// What is wrong.
    pub kind: CorruptionKind,
}

impl Corruption {
    /// Builds a corruption error for a file position.
    pub fn new(file: impl Into<PathBuf>, offset: u64, kind: CorruptionKind) -> Corruption {
        Corruption { file: file.into(), offset, zxid: None, index: None, chunk: None, kind }
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

    /// Adds the chunk the bytes belong to.
    pub fn with_chunk(mut self, chunk: u32) -> Corruption {
        self.chunk = Some(chunk);
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
        if let Some(c) = self.chunk {
            write!(f, " (chunk {c})")?;
        }
        write!(f, ": {}", self.kind)
    }
}

impl std::error::Error for Corruption {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_a_listed_unique_snake_case_code() {
        let d = || String::from("x");
        let all = [
            CorruptionKind::BadMagic { expected: 1, found: 2 },
            CorruptionKind::UnsupportedVersion { found: 9 },
            CorruptionKind::ChecksumMismatch { stored: 1, computed: 2 },
            CorruptionKind::LengthOutOfRange { len: -1, max: 3 },
            CorruptionKind::Truncated { needed: 4, available: 1 },
            CorruptionKind::InvalidUtf8,
            CorruptionKind::UnknownTxnType(99),
            CorruptionKind::Decompression(d()),
            CorruptionKind::DecompressedTooLarge { limit: 1 },
            CorruptionKind::UnknownValue { field: "flag", found: 2 },
            CorruptionKind::NonZeroReserved { field: "reserved bytes" },
            CorruptionKind::TrailingBytes { after: "record", count: 3 },
            CorruptionKind::MissingTerminator { what: "C string" },
            CorruptionKind::BadVarint { bits: 64 },
            CorruptionKind::NullValue { field: "path" },
            CorruptionKind::inconsistent(d()),
            CorruptionKind::sequence_break(d()),
            CorruptionKind::bad_tree(d()),
            CorruptionKind::bad_request(d()),
            CorruptionKind::Unfinished { what: "trailer" },
        ];
        let codes: Vec<&str> = all.iter().map(CorruptionKind::code).collect();
        assert_eq!(codes, CorruptionKind::CODES, "CODES lists every kind in order");
        let mut sorted = codes.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), codes.len(), "codes are unique");
        for c in codes {
            assert!(c.bytes().all(|b| b.is_ascii_lowercase() || b == b'_' || b.is_ascii_digit()));
            assert!(!c.starts_with('_') && !c.ends_with('_'), "{c}");
        }
        for k in &all {
            assert!(!k.to_string().is_empty());
            let wrapped = CorruptionKind::inside("chunk 1", k.clone());
            assert_eq!(wrapped.code(), k.code(), "a wrapper keeps the inner code");
            assert_eq!(wrapped.innermost(), k);
        }
    }
}
