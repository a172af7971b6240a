//! One changelog record: header, SipHash-2-4 checksum, blob.

use std::hash::Hasher;

use keeperkit_model::keeper::nuraft::ClusterConfig;
use keeperkit_model::keeper::KeeperLogEntry;
use keeperkit_model::{CorruptionKind, DecodeError};

/// Length of a record header: checksum u64, version u8, index u64, term u64,
/// value_type i32, blob_size u64.
pub const RECORD_HEADER_LEN: usize = 37;

/// Newest record version a reader accepts (`ChangelogVersion::V2`); a larger version
/// byte is fatal in Keeper (UNKNOWN_FORMAT_VERSION, startup aborts).
pub const RECORD_VERSION_MAX: u8 = 2;

/// The version byte every Keeper since 2022 writes (`V1`; nothing writes V2).
pub const RECORD_VERSION_WRITTEN: u8 = 1;

/// NuRaft `log_val_type::app_log`: a Keeper request.
pub const VALUE_TYPE_APP_LOG: i32 = 1;
/// NuRaft `log_val_type::conf`: a cluster config.
pub const VALUE_TYPE_CONF: i32 = 2;

/// One changelog record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangelogRecord {
    /// Record version byte (0, 1 or 2; all read identically).
    pub version: u8,
    /// Raft log index.
    pub index: u64,
    /// Raft term.
    pub term: u64,
    /// NuRaft value type: [`VALUE_TYPE_APP_LOG`] or [`VALUE_TYPE_CONF`] (others are
    /// kept as they are).
    pub value_type: i32,
    /// The NuRaft entry's buffer.
    pub blob: Vec<u8>,
}

/// A record's payload, decoded by value type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordPayload {
    /// An `app_log` entry: a Keeper request.
    Request(KeeperLogEntry),
    /// A `conf` entry: a NuRaft cluster config.
    Config(ClusterConfig),
    /// Any other value type, or an empty `app_log` blob (what Keeper's tests write),
    /// kept as bytes.
    Opaque,
}

/// The checksum Keeper stores for a record (`computeRecordChecksum`): SipHash-2-4 with
/// key (0, 0) over version, index, term, value_type, blob_size (little-endian) and the
/// blob, i.e. every byte of the record after the checksum field.
pub fn record_checksum(version: u8, index: u64, term: u64, value_type: i32, blob: &[u8]) -> u64 {
    let mut h = siphasher::sip::SipHasher24::new_with_keys(0, 0);
    h.write(&header_tail(version, index, term, value_type, blob.len() as u64));
    h.write(blob);
    h.finish()
}

fn header_tail(version: u8, index: u64, term: u64, value_type: i32, blob_len: u64) -> [u8; 29] {
    let mut b = [0u8; 29];
    b[0] = version;
    b[1..9].copy_from_slice(&index.to_le_bytes());
    b[9..17].copy_from_slice(&term.to_le_bytes());
    b[17..21].copy_from_slice(&value_type.to_le_bytes());
    b[21..29].copy_from_slice(&blob_len.to_le_bytes());
    b
}

impl ChangelogRecord {
    /// A record as current Keeper writes it (version 1).
    pub fn new(index: u64, term: u64, value_type: i32, blob: Vec<u8>) -> ChangelogRecord {
        ChangelogRecord { version: RECORD_VERSION_WRITTEN, index, term, value_type, blob }
    }

    /// The record's checksum.
    pub fn checksum(&self) -> u64 {
        record_checksum(self.version, self.index, self.term, self.value_type, &self.blob)
    }

    /// Length of the encoded record.
    pub fn encoded_len(&self) -> usize {
        RECORD_HEADER_LEN + self.blob.len()
    }

    /// Appends the encoded record (checksum first) to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.checksum().to_le_bytes());
        out.extend_from_slice(&header_tail(
            self.version,
            self.index,
            self.term,
            self.value_type,
            self.blob.len() as u64,
        ));
        out.extend_from_slice(&self.blob);
    }

    /// Decodes the payload by value type. An empty `app_log` blob and unknown value
    /// types are [`RecordPayload::Opaque`]. Errors carry offsets inside the blob.
    pub fn payload(&self) -> Result<RecordPayload, DecodeError> {
        match self.value_type {
            VALUE_TYPE_APP_LOG if !self.blob.is_empty() => {
                KeeperLogEntry::decode(&self.blob).map(RecordPayload::Request)
            }
            VALUE_TYPE_CONF => ClusterConfig::decode(&self.blob).map(RecordPayload::Config),
            _ => Ok(RecordPayload::Opaque),
        }
    }
}

/// Why a record could not be read at some stream offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordError {
    /// Offset of the problem relative to the record start.
    pub offset: u64,
    /// The record's index, when its header was readable.
    pub index: Option<u64>,
    /// What is wrong.
    pub kind: CorruptionKind,
}

impl RecordError {
    /// Whether Keeper treats this as fatal (a version it does not know) rather than
    /// as the end of the readable part of the file.
    pub fn is_fatal(&self) -> bool {
        matches!(self.kind, CorruptionKind::UnsupportedVersion { .. })
    }
}

fn le_u64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_le_bytes(a)
}

/// Decodes the record at the start of `buf`, returning it and its length, in the
/// order Keeper's `readChangelogRecord` checks (`Changelog.cpp`, read in the public
/// source, stored copies 57472005164 and 91248631): the whole 37-byte header first
/// (short ⇒ truncated, even when the version byte is already readable), then the
/// version (> 2 ⇒ fatal UNKNOWN_FORMAT_VERSION), then the blob (short ⇒ truncated),
/// then the checksum.
pub fn decode_record(buf: &[u8]) -> Result<(ChangelogRecord, usize), RecordError> {
    if buf.len() < RECORD_HEADER_LEN {
        let index = (buf.len() >= 17).then(|| le_u64(&buf[9..17]));
        return Err(RecordError {
            offset: 0,
            index,
            kind: CorruptionKind::Truncated {
                needed: RECORD_HEADER_LEN as u64,
                available: buf.len() as u64,
            },
        });
    }
    let version = buf[8];
    if version > RECORD_VERSION_MAX {
        return Err(RecordError {
            offset: 8,
            index: Some(le_u64(&buf[9..17])),
            kind: CorruptionKind::UnsupportedVersion { found: i64::from(version) },
        });
    }
    let stored = le_u64(&buf[0..8]);
    let index = le_u64(&buf[9..17]);
    let term = le_u64(&buf[17..25]);
    let value_type = i32::from_le_bytes([buf[25], buf[26], buf[27], buf[28]]);
    let blob_len = le_u64(&buf[29..37]);
    let available = (buf.len() - RECORD_HEADER_LEN) as u64;
    if blob_len > available {
        return Err(RecordError {
            offset: 29,
            index: Some(index),
            kind: CorruptionKind::Truncated {
                needed: blob_len.saturating_add(RECORD_HEADER_LEN as u64),
                available: buf.len() as u64,
            },
        });
    }
    // blob_len <= available, which is a usize.
    let end = RECORD_HEADER_LEN + usize::try_from(blob_len).unwrap_or(usize::MAX);
    let blob = &buf[RECORD_HEADER_LEN..end];
    let computed = record_checksum(version, index, term, value_type, blob);
    if computed != stored {
        return Err(RecordError {
            offset: 0,
            index: Some(index),
            kind: CorruptionKind::ChecksumMismatch { stored, computed },
        });
    }
    Ok((ChangelogRecord { version, index, term, value_type, blob: blob.to_vec() }, end))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_checks() {
        let r = ChangelogRecord::new(5, 2, VALUE_TYPE_APP_LOG, b"abc".to_vec());
        let mut b = Vec::new();
        r.encode_into(&mut b);
        assert_eq!(b.len(), r.encoded_len());
        assert_eq!(decode_record(&b), Ok((r.clone(), b.len())));
        let mut bad = b.clone();
        bad[8] = 3;
        assert!(decode_record(&bad).expect_err("v3").is_fatal());
        let mut flipped = b.clone();
        flipped[38] ^= 1;
        let e = decode_record(&flipped).expect_err("bit flip");
        assert!(matches!(e.kind, CorruptionKind::ChecksumMismatch { .. }));
        assert_eq!(e.index, Some(5));
        for n in 0..b.len() {
            assert!(!decode_record(&b[..n]).expect_err("short").is_fatal());
        }
        // A version > 2 in a header cut short is a torn tail for Keeper, not fatal.
        for n in 9..RECORD_HEADER_LEN {
            assert!(!decode_record(&bad[..n]).expect_err("short").is_fatal());
        }
    }
}
