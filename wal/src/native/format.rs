//! The byte layout of native segments, records and the metadata file.
//!
//! `docs/FORMAT.md` ("Native WAL") is the specification; this module follows it field
//! by field. Every offset is a named constant built from the previous one, and the
//! total sizes are pinned with compile-time assertions so that the code and the
//! document cannot drift apart. All integers are little-endian.

use keeperkit_model::CorruptionKind;

/// Magic of a segment file: `\x89 K K W \r \n \x1a \n` (see FORMAT.md for why).
pub const SEGMENT_MAGIC: [u8; 8] = *b"\x89KKW\r\n\x1a\n";
/// Magic of the metadata file: `\x89 K K M \r \n \x1a \n`.
pub const META_MAGIC: [u8; 8] = *b"\x89KKM\r\n\x1a\n";
/// The only segment format version this build writes and reads.
pub const FORMAT_VERSION: u16 = 1;
/// The metadata file version this build writes. Version 1 (the same layout with the
/// durable mark's bytes reserved, zero) is still read.
pub const META_VERSION: u16 = 2;

// ---- Segment header (64 bytes) ----

/// Offset of the magic in the segment header.
pub const SEG_MAGIC_OFFSET: usize = 0;
/// Offset of the format version (u16).
pub const SEG_VERSION_OFFSET: usize = SEG_MAGIC_OFFSET + 8;
/// Offset of the header length (u16).
pub const SEG_HEADER_LEN_OFFSET: usize = SEG_VERSION_OFFSET + 2;
/// Offset of the flags (u32, must be 0 in v1).
pub const SEG_FLAGS_OFFSET: usize = SEG_HEADER_LEN_OFFSET + 2;
/// Offset of the log id (u64): random, shared by every segment and the metadata file.
pub const SEG_LOG_ID_OFFSET: usize = SEG_FLAGS_OFFSET + 4;
/// Offset of the segment sequence number (u64, matches the file name).
pub const SEG_SEQ_OFFSET: usize = SEG_LOG_ID_OFFSET + 8;
/// Offset of the index of the segment's first entry (u64).
pub const SEG_FIRST_INDEX_OFFSET: usize = SEG_SEQ_OFFSET + 8;
/// Offset of the term of entry `first_index - 1` (u64; 0 if unknown).
pub const SEG_PREV_TERM_OFFSET: usize = SEG_FIRST_INDEX_OFFSET + 8;
/// Offset of the CRC of the previous segment's header (u32; 0 if none).
pub const SEG_PREV_CRC_OFFSET: usize = SEG_PREV_TERM_OFFSET + 8;
/// Offset of the reserved bytes (8, zero).
pub const SEG_RESERVED_OFFSET: usize = SEG_PREV_CRC_OFFSET + 4;
/// Offset of the header CRC (u32, over bytes `0..SEG_CRC_OFFSET`).
pub const SEG_CRC_OFFSET: usize = SEG_RESERVED_OFFSET + 8;
/// Length of the segment header.
pub const SEGMENT_HEADER_LEN: usize = SEG_CRC_OFFSET + 4;

const _: () = assert!(SEGMENT_HEADER_LEN == 64);

/// [`SEGMENT_HEADER_LEN`] as stored in the header's `header_len` field.
const SEGMENT_HEADER_LEN_U16: u16 = 64;
const _: () = assert!(SEGMENT_HEADER_LEN_U16 as usize == SEGMENT_HEADER_LEN);
const _: () = assert!(SEGMENT_HEADER_LEN & (RECORD_ALIGN - 1) == 0);

// ---- Record header (40 bytes) ----

/// Offset of the record CRC (u32): CRC-32 over header bytes `4..40` and the payload.
pub const REC_CRC_OFFSET: usize = 0;
/// Offset of the stored payload length (u32, bytes on disk after the header).
pub const REC_STORED_LEN_OFFSET: usize = REC_CRC_OFFSET + 4;
/// Offset of the raw (decompressed) payload length (u32).
pub const REC_RAW_LEN_OFFSET: usize = REC_STORED_LEN_OFFSET + 4;
/// Offset of the entry count (u32, at least 1).
pub const REC_COUNT_OFFSET: usize = REC_RAW_LEN_OFFSET + 4;
/// Offset of the index of the first entry (u64).
pub const REC_FIRST_INDEX_OFFSET: usize = REC_COUNT_OFFSET + 4;
/// Offset of the term of the last entry (u64).
pub const REC_TERM_OFFSET: usize = REC_FIRST_INDEX_OFFSET + 8;
/// Offset of the durable mark (u32): how many bytes of this segment the writer knew
/// to be durable (fdatasync'ed) when it wrote this record.
pub const REC_SYNCED_OFFSET: usize = REC_TERM_OFFSET + 8;
/// Offset of the flags (u16).
pub const REC_FLAGS_OFFSET: usize = REC_SYNCED_OFFSET + 4;
/// Offset of the reserved bytes (u16, zero).
pub const REC_RESERVED_OFFSET: usize = REC_FLAGS_OFFSET + 2;
/// Length of the record header.
pub const RECORD_HEADER_LEN: usize = REC_RESERVED_OFFSET + 2;

const _: () = assert!(RECORD_HEADER_LEN == 40);
const _: () = assert!(RECORD_HEADER_LEN & (RECORD_ALIGN - 1) == 0);

/// Records start at multiples of this many bytes; the gap after a record is zero.
pub const RECORD_ALIGN: usize = 8;

/// Record flag: the payload is one zstd frame holding the raw entry table.
pub const FLAG_ZSTD: u16 = 1;
/// Every flag bit v1 knows.
pub const FLAGS_KNOWN: u16 = FLAG_ZSTD;

// ---- Entry header inside a record payload (12 bytes) ----

/// Length of the per-entry header in the raw payload: term (u64), length (u32).
pub const ENTRY_HEADER_LEN: usize = 12;

// ---- Metadata file (64 bytes) ----

/// Offset of the magic in the metadata file.
pub const META_MAGIC_OFFSET: usize = 0;
/// Offset of the format version (u16).
pub const META_VERSION_OFFSET: usize = META_MAGIC_OFFSET + 8;
/// Offset of the file length (u16).
pub const META_LEN_OFFSET: usize = META_VERSION_OFFSET + 2;
/// Offset of the flags (u32; bit 0: a vote is set).
pub const META_FLAGS_OFFSET: usize = META_LEN_OFFSET + 2;
/// Offset of the log id (u64).
pub const META_LOG_ID_OFFSET: usize = META_FLAGS_OFFSET + 4;
/// Offset of the current term (u64).
pub const META_TERM_OFFSET: usize = META_LOG_ID_OFFSET + 8;
/// Offset of the vote (u64; meaningful when flag bit 0 is set, else zero).
pub const META_VOTE_OFFSET: usize = META_TERM_OFFSET + 8;
/// Offset of the purge marker (u64): every index up to and including it is purged.
pub const META_PURGED_OFFSET: usize = META_VOTE_OFFSET + 8;
/// Offset of the durable mark's segment sequence number (u64; 0: no mark). Version 1
/// reserved these bytes (zero).
pub const META_DURABLE_SEQ_OFFSET: usize = META_PURGED_OFFSET + 8;
/// Offset of the durable mark's end (u32): bytes `0..end` of segment `seq` are durable.
pub const META_DURABLE_END_OFFSET: usize = META_DURABLE_SEQ_OFFSET + 8;
/// Offset of the CRC (u32, over bytes `0..META_CRC_OFFSET`).
pub const META_CRC_OFFSET: usize = META_DURABLE_END_OFFSET + 4;
/// Length of the metadata file.
pub const META_LEN: usize = META_CRC_OFFSET + 4;

const _: () = assert!(META_LEN == 64);

/// [`META_LEN`] as stored in the metadata's `len` field.
const META_LEN_U16: u16 = 64;
const _: () = assert!(META_LEN_U16 as usize == META_LEN);

/// Metadata flag: a vote is recorded.
pub const META_FLAG_VOTE: u32 = 1;

// ---- Limits ----

/// Largest payload of one entry we accept: 64 MiB. ZooKeeper's requests are bounded
/// by `jute.maxbuffer` (1 MiB by default); 64x that leaves room for large Keeper
/// multi-ops and snapshot chunks shipped through the log, and still keeps one entry
/// far below [`SEGMENT_LEN_MAX`].
pub const ENTRY_LEN_MAX: usize = 64 << 20;

/// Largest stored or raw payload of one record (one append batch): 128 MiB, that is
/// two maximal entries, or a million 100-byte entries. A `u32` holds it.
pub const RECORD_LEN_MAX: usize = 128 << 20;

/// Most entries in one record: one per 12-byte entry header of a maximal record.
pub const RECORD_ENTRIES_MAX: usize = RECORD_LEN_MAX / ENTRY_HEADER_LEN;

/// Largest segment size target: 1 GiB. A segment file may exceed its target by one
/// record, so the largest segment file is [`SEGMENT_FILE_LEN_MAX`].
pub const SEGMENT_LEN_MAX: u64 = 1 << 30;

/// Smallest segment size target: 4 KiB (tests use tiny segments to rotate often).
pub const SEGMENT_LEN_MIN: u64 = 4 << 10;

/// Largest segment file we read: the target maximum plus one maximal record with its
/// header and padding. It fits in the 32-bit durable mark of record headers.
pub const SEGMENT_FILE_LEN_MAX: u64 = SEGMENT_LEN_MAX
    + SEGMENT_HEADER_LEN as u64
    + RECORD_HEADER_LEN as u64
    + RECORD_LEN_MAX as u64
    + RECORD_ALIGN as u64;

const _: () = assert!(SEGMENT_FILE_LEN_MAX <= u32::MAX as u64);
const _: () = assert!((RECORD_LEN_MAX as u64) <= u32::MAX as u64);
const _: () = assert!(ENTRY_LEN_MAX + ENTRY_HEADER_LEN <= RECORD_LEN_MAX);

// ---- Little-endian helpers ----

pub use keeperkit_model::le::{get_u16, get_u32, get_u64};
use keeperkit_model::le::{put_u16, put_u32, put_u64};
use keeperkit_model::native_header::NativeHeader;

/// Where a segment header keeps its magic, CRC and version.
pub const SEGMENT_HEADER: NativeHeader = NativeHeader {
    magic: SEGMENT_MAGIC,
    magic_at: SEG_MAGIC_OFFSET,
    crc_at: SEG_CRC_OFFSET,
    version: Some((SEG_VERSION_OFFSET, FORMAT_VERSION)),
};

/// Where the metadata file keeps its magic and CRC (its version, 1 or 2, is checked
/// by [`MetaRecord::decode`]).
pub const META_HEADER: NativeHeader = NativeHeader {
    magic: META_MAGIC,
    magic_at: META_MAGIC_OFFSET,
    crc_at: META_CRC_OFFSET,
    version: None,
};

/// Rounds `n` up to a multiple of [`RECORD_ALIGN`].
pub const fn align_up(n: u64) -> u64 {
    n.div_ceil(RECORD_ALIGN as u64) * RECORD_ALIGN as u64
}

/// Whether every byte is zero (fast path on 8-byte words).
pub fn all_zero(b: &[u8]) -> bool {
    let (chunks, rest) = b.as_chunks::<8>();
    chunks.iter().all(|c| u64::from_le_bytes(*c) == 0) && rest.iter().all(|&x| x == 0)
}

/// Offset of the first non-zero byte, if any.
pub fn first_non_zero(b: &[u8]) -> Option<usize> {
    let (chunks, _) = b.as_chunks::<8>();
    let start = chunks.iter().position(|c| u64::from_le_bytes(*c) != 0).unwrap_or(chunks.len());
    b[start * 8..].iter().position(|&x| x != 0).map(|p| start * 8 + p)
}

// ---- Segment header ----

/// The decoded header of a segment file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmentHeader {
    /// Random id of the log this segment belongs to.
    pub log_id: u64,
    /// Sequence number of the segment (file name `seg-<seq as 16 hex digits>.wal`).
    pub seq: u64,
    /// Index of the segment's first entry.
    pub first_index: u64,
    /// Term of entry `first_index - 1`, or 0 if unknown (first segment, or after a
    /// purge of everything).
    pub prev_term: u64,
    /// CRC of the previous segment's header bytes, or 0 if there is none.
    pub prev_header_crc: u32,
}

impl SegmentHeader {
    /// Encodes the header.
    pub fn encode(&self) -> [u8; SEGMENT_HEADER_LEN] {
        let mut b = [0u8; SEGMENT_HEADER_LEN];
        put_u16(&mut b, SEG_HEADER_LEN_OFFSET, SEGMENT_HEADER_LEN_U16);
        put_u32(&mut b, SEG_FLAGS_OFFSET, 0);
        put_u64(&mut b, SEG_LOG_ID_OFFSET, self.log_id);
        put_u64(&mut b, SEG_SEQ_OFFSET, self.seq);
        put_u64(&mut b, SEG_FIRST_INDEX_OFFSET, self.first_index);
        put_u64(&mut b, SEG_PREV_TERM_OFFSET, self.prev_term);
        put_u32(&mut b, SEG_PREV_CRC_OFFSET, self.prev_header_crc);
        SEGMENT_HEADER.seal(&mut b);
        debug_assert_eq!(SegmentHeader::decode(&b).map(|(h, _)| h), Ok(*self));
        b
    }

    /// Decodes and checks a header; returns it with its CRC (the link value the next
    /// segment stores). Errors carry the offset of the bad field.
    pub fn decode(b: &[u8]) -> Result<(SegmentHeader, u32), (u64, CorruptionKind)> {
        if b.len() < SEGMENT_HEADER_LEN {
            return Err((
                0,
                CorruptionKind::Truncated {
                    needed: SEGMENT_HEADER_LEN as u64,
                    available: b.len() as u64,
                },
            ));
        }
        let stored = SEGMENT_HEADER.check(b).map_err(|e| (e.offset, e.kind))?;
        let header_len = get_u16(b, SEG_HEADER_LEN_OFFSET);
        if usize::from(header_len) != SEGMENT_HEADER_LEN {
            return Err((
                SEG_HEADER_LEN_OFFSET as u64,
                CorruptionKind::inconsistent(format!(
                    "segment header length {header_len}, v1 requires {SEGMENT_HEADER_LEN}"
                )),
            ));
        }
        if get_u32(b, SEG_FLAGS_OFFSET) != 0 || get_u64(b, SEG_RESERVED_OFFSET) != 0 {
            return Err((
                SEG_FLAGS_OFFSET as u64,
                CorruptionKind::NonZeroReserved {
                    field: "segment header flags and reserved bytes",
                },
            ));
        }
        let h = SegmentHeader {
            log_id: get_u64(b, SEG_LOG_ID_OFFSET),
            seq: get_u64(b, SEG_SEQ_OFFSET),
            first_index: get_u64(b, SEG_FIRST_INDEX_OFFSET),
            prev_term: get_u64(b, SEG_PREV_TERM_OFFSET),
            prev_header_crc: get_u32(b, SEG_PREV_CRC_OFFSET),
        };
        if h.first_index == 0 {
            return Err((
                SEG_FIRST_INDEX_OFFSET as u64,
                CorruptionKind::sequence_break("segment first index 0 (indexes start at 1)"),
            ));
        }
        Ok((h, stored))
    }
}

// ---- Record header ----

/// The decoded header of a record (one append batch).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordHeader {
    /// CRC-32 stored in the record.
    pub crc: u32,
    /// Payload bytes on disk.
    pub stored_len: u32,
    /// Payload bytes after decompression (equal to `stored_len` when not compressed).
    pub raw_len: u32,
    /// Number of entries, at least 1.
    pub count: u32,
    /// Index of the first entry.
    pub first_index: u64,
    /// Term of the last entry.
    pub term: u64,
    /// Bytes of the segment known durable when the record was written.
    pub synced: u32,
    /// Flag bits.
    pub flags: u16,
}

impl RecordHeader {
    /// Encodes the header into `b[..RECORD_HEADER_LEN]` with the CRC over the header
    /// and `payload`.
    pub fn encode_into(&self, b: &mut [u8], payload: &[u8]) {
        put_u32(b, REC_STORED_LEN_OFFSET, self.stored_len);
        put_u32(b, REC_RAW_LEN_OFFSET, self.raw_len);
        put_u32(b, REC_COUNT_OFFSET, self.count);
        put_u64(b, REC_FIRST_INDEX_OFFSET, self.first_index);
        put_u64(b, REC_TERM_OFFSET, self.term);
        put_u32(b, REC_SYNCED_OFFSET, self.synced);
        put_u16(b, REC_FLAGS_OFFSET, self.flags);
        put_u16(b, REC_RESERVED_OFFSET, 0);
        let crc = record_crc(&b[..RECORD_HEADER_LEN], payload);
        put_u32(b, REC_CRC_OFFSET, crc);
    }

    /// Like [`RecordHeader::encode_into`], with the payload's CRC state computed
    /// beforehand (CRC-32 is combinable, so the payload need not be rehashed).
    pub fn encode_header_into(&self, b: &mut [u8], payload_crc: &crc32fast::Hasher) {
        put_u32(b, REC_STORED_LEN_OFFSET, self.stored_len);
        put_u32(b, REC_RAW_LEN_OFFSET, self.raw_len);
        put_u32(b, REC_COUNT_OFFSET, self.count);
        put_u64(b, REC_FIRST_INDEX_OFFSET, self.first_index);
        put_u64(b, REC_TERM_OFFSET, self.term);
        put_u32(b, REC_SYNCED_OFFSET, self.synced);
        put_u16(b, REC_FLAGS_OFFSET, self.flags);
        put_u16(b, REC_RESERVED_OFFSET, 0);
        let mut h = crc32fast::Hasher::new();
        h.update(&b[REC_CRC_OFFSET + 4..RECORD_HEADER_LEN]);
        h.combine(payload_crc);
        put_u32(b, REC_CRC_OFFSET, h.finalize());
    }

    /// Decodes the fields of a header without checking anything but its length.
    pub fn decode_unchecked(b: &[u8]) -> RecordHeader {
        RecordHeader {
            crc: get_u32(b, REC_CRC_OFFSET),
            stored_len: get_u32(b, REC_STORED_LEN_OFFSET),
            raw_len: get_u32(b, REC_RAW_LEN_OFFSET),
            count: get_u32(b, REC_COUNT_OFFSET),
            first_index: get_u64(b, REC_FIRST_INDEX_OFFSET),
            term: get_u64(b, REC_TERM_OFFSET),
            synced: get_u32(b, REC_SYNCED_OFFSET),
            flags: get_u16(b, REC_FLAGS_OFFSET),
        }
    }

    /// The checks that need no payload: counts, lengths against limits, flags,
    /// reserved bytes. Returns the offending field's offset within the header.
    pub fn check_fields(&self, b: &[u8]) -> Result<(), (u64, CorruptionKind)> {
        if self.count == 0 || self.count as usize > RECORD_ENTRIES_MAX {
            return Err((
                REC_COUNT_OFFSET as u64,
                CorruptionKind::LengthOutOfRange {
                    len: i64::from(self.count),
                    max: RECORD_ENTRIES_MAX as u64,
                },
            ));
        }
        for (off, v) in
            [(REC_STORED_LEN_OFFSET, self.stored_len), (REC_RAW_LEN_OFFSET, self.raw_len)]
        {
            if v as usize > RECORD_LEN_MAX {
                return Err((
                    off as u64,
                    CorruptionKind::LengthOutOfRange {
                        len: i64::from(v),
                        max: RECORD_LEN_MAX as u64,
                    },
                ));
            }
        }
        if self.flags & !FLAGS_KNOWN != 0 || get_u16(b, REC_RESERVED_OFFSET) != 0 {
            return Err((
                REC_FLAGS_OFFSET as u64,
                CorruptionKind::UnknownValue {
                    field: "record flags (or reserved bytes)",
                    found: u64::from(self.flags),
                },
            ));
        }
        if self.flags & FLAG_ZSTD == 0 && self.raw_len != self.stored_len {
            return Err((
                REC_RAW_LEN_OFFSET as u64,
                CorruptionKind::inconsistent(
                    "uncompressed record with raw length != stored length",
                ),
            ));
        }
        let min_raw = u64::from(self.count) * ENTRY_HEADER_LEN as u64;
        if u64::from(self.raw_len) < min_raw {
            return Err((
                REC_RAW_LEN_OFFSET as u64,
                CorruptionKind::inconsistent(format!(
                    "raw length {} too small for {} entries",
                    self.raw_len, self.count
                )),
            ));
        }
        if self.first_index == 0 || self.first_index.checked_add(u64::from(self.count)).is_none() {
            return Err((
                REC_FIRST_INDEX_OFFSET as u64,
                CorruptionKind::sequence_break(format!(
                    "record index {} out of range",
                    self.first_index
                )),
            ));
        }
        Ok(())
    }

    /// Bytes the record takes in the segment, padding included.
    pub fn span(&self) -> u64 {
        align_up(RECORD_HEADER_LEN as u64 + u64::from(self.stored_len))
    }

    /// Index of the last entry.
    pub fn last_index(&self) -> u64 {
        self.first_index + u64::from(self.count) - 1
    }
}

/// The record CRC: CRC-32 (IEEE, as computed by crc32fast) over header bytes `4..40`
/// followed by the stored payload.
pub fn record_crc(header: &[u8], payload: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&header[REC_CRC_OFFSET + 4..RECORD_HEADER_LEN]);
    h.update(payload);
    h.finalize()
}

/// One entry of a decoded raw payload: term and the byte range of its payload
/// within the raw payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EntrySlot {
    /// The entry's term.
    pub term: u64,
    /// Start of its payload in the raw record payload.
    pub start: usize,
    /// End of its payload.
    pub end: usize,
}

/// Walks the entry table of a raw payload holding `count` entries. Fails (with the
/// offset in the raw payload) if the table does not exactly fill it.
pub fn entry_slots(raw: &[u8], count: u32) -> Result<Vec<EntrySlot>, (u64, CorruptionKind)> {
    // `count` was checked against the raw length (12 bytes per entry), so this
    // allocation is bounded by the bytes we hold.
    let mut out = Vec::with_capacity(usize::try_from(count).unwrap_or(0).min(raw.len() / 12));
    let mut pos = 0usize;
    for _ in 0..count {
        if raw.len() - pos < ENTRY_HEADER_LEN {
            return Err((
                pos as u64,
                CorruptionKind::Truncated {
                    needed: ENTRY_HEADER_LEN as u64,
                    available: (raw.len() - pos) as u64,
                },
            ));
        }
        let term = get_u64(raw, pos);
        let len = get_u32(raw, pos + 8) as usize;
        let start = pos + ENTRY_HEADER_LEN;
        if len > ENTRY_LEN_MAX || len > raw.len() - start {
            return Err((
                (pos + 8) as u64,
                CorruptionKind::LengthOutOfRange {
                    len: len as i64,
                    max: (raw.len() - start).min(ENTRY_LEN_MAX) as u64,
                },
            ));
        }
        out.push(EntrySlot { term, start, end: start + len });
        pos = start + len;
    }
    if pos != raw.len() {
        return Err((
            pos as u64,
            CorruptionKind::TrailingBytes {
                after: "last entry of the record",
                count: (raw.len() - pos) as u64,
            },
        ));
    }
    Ok(out)
}

/// Appends one entry header and payload to a raw payload.
/// The caller has checked the payload against [`ENTRY_LEN_MAX`] (which fits a u32).
pub fn push_entry(raw: &mut Vec<u8>, term: u64, payload: &[u8]) {
    assert!(payload.len() <= ENTRY_LEN_MAX, "entry length is checked before encoding");
    let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
    raw.extend_from_slice(&term.to_le_bytes());
    raw.extend_from_slice(&len.to_le_bytes());
    raw.extend_from_slice(payload);
}

// ---- Metadata ----

/// The decoded metadata file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MetaRecord {
    /// Random id of the log.
    pub log_id: u64,
    /// Current term.
    pub term: u64,
    /// Vote in the current term.
    pub vote: Option<u64>,
    /// Every index up to and including this one is purged (0: nothing purged).
    pub purged: u64,
    /// What the writer last recorded as durable in a segment (`None`: nothing yet, or
    /// a version 1 file).
    pub durable: Option<DurableMark>,
}

/// The metadata file's durable mark: bytes `0..end` of segment `seq` were durable
/// (fdatasync'ed) when it was written. The writer records it when it knows it
/// (opening, closing) and lowers it before a truncation removes those bytes, so a
/// bad spot or an end of records before `end` in that segment is damage, never a
/// torn tail.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct DurableMark {
    /// Sequence number of the segment (>= 1).
    pub seq: u64,
    /// Durable length of that segment, at least the header.
    pub end: u64,
}

impl MetaRecord {
    /// Encodes the metadata file.
    pub fn encode(&self) -> [u8; META_LEN] {
        let mut b = [0u8; META_LEN];
        put_u16(&mut b, META_LEN_OFFSET, META_LEN_U16);
        put_u32(&mut b, META_FLAGS_OFFSET, if self.vote.is_some() { META_FLAG_VOTE } else { 0 });
        put_u64(&mut b, META_LOG_ID_OFFSET, self.log_id);
        put_u64(&mut b, META_TERM_OFFSET, self.term);
        put_u64(&mut b, META_VOTE_OFFSET, self.vote.unwrap_or(0));
        put_u64(&mut b, META_PURGED_OFFSET, self.purged);
        if let Some(d) = self.durable {
            debug_assert!(d.seq >= 1 && d.end >= SEGMENT_HEADER_LEN as u64);
            put_u64(&mut b, META_DURABLE_SEQ_OFFSET, d.seq);
            // Segment offsets fit in u32 (SEGMENT_FILE_LEN_MAX).
            put_u32(&mut b, META_DURABLE_END_OFFSET, u32::try_from(d.end).unwrap_or(u32::MAX));
        }
        put_u16(&mut b, META_VERSION_OFFSET, META_VERSION);
        META_HEADER.seal(&mut b);
        debug_assert_eq!(MetaRecord::decode(&b), Ok(*self));
        b
    }

    /// Decodes and checks the metadata file.
    pub fn decode(b: &[u8]) -> Result<MetaRecord, (u64, CorruptionKind)> {
        if b.len() != META_LEN {
            return Err((
                0,
                CorruptionKind::LengthOutOfRange { len: b.len() as i64, max: META_LEN as u64 },
            ));
        }
        META_HEADER.check(b).map_err(|e| (e.offset, e.kind))?;
        let version = get_u16(b, META_VERSION_OFFSET);
        if version != 1 && version != META_VERSION {
            return Err((
                META_VERSION_OFFSET as u64,
                CorruptionKind::UnsupportedVersion { found: i64::from(version) },
            ));
        }
        let flags = get_u32(b, META_FLAGS_OFFSET);
        if usize::from(get_u16(b, META_LEN_OFFSET)) != META_LEN
            || flags & !META_FLAG_VOTE != 0
            || (version == 1 && !all_zero(&b[META_DURABLE_SEQ_OFFSET..META_CRC_OFFSET]))
        {
            return Err((
                META_LEN_OFFSET as u64,
                CorruptionKind::inconsistent("bad length, flags or reserved bytes in metadata"),
            ));
        }
        let vote_raw = get_u64(b, META_VOTE_OFFSET);
        let vote = if flags & META_FLAG_VOTE != 0 { Some(vote_raw) } else { None };
        if vote.is_none() && vote_raw != 0 {
            return Err((
                META_VOTE_OFFSET as u64,
                CorruptionKind::inconsistent("vote bytes set without the vote flag"),
            ));
        }
        let seq = get_u64(b, META_DURABLE_SEQ_OFFSET);
        let end = u64::from(get_u32(b, META_DURABLE_END_OFFSET));
        let durable = match (seq, end) {
            (0, 0) => None,
            (1.., e) if e >= SEGMENT_HEADER_LEN as u64 => Some(DurableMark { seq, end }),
            _ => {
                return Err((
                    META_DURABLE_SEQ_OFFSET as u64,
                    CorruptionKind::inconsistent(format!(
                        "durable mark (segment {seq}, byte {end}) is not a segment position"
                    )),
                ))
            }
        };
        Ok(MetaRecord {
            log_id: get_u64(b, META_LOG_ID_OFFSET),
            term: get_u64(b, META_TERM_OFFSET),
            vote,
            purged: get_u64(b, META_PURGED_OFFSET),
            durable,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::cast_possible_truncation)]

    use super::*;

    #[test]
    fn segment_header_roundtrip_and_every_bit_flip_is_caught() {
        let h = SegmentHeader {
            log_id: 0x1234_5678_9abc_def0,
            seq: 7,
            first_index: 1000,
            prev_term: 3,
            prev_header_crc: 0xdead_beef,
        };
        let b = h.encode();
        assert_eq!(SegmentHeader::decode(&b).unwrap().0, h);
        for byte in 0..SEGMENT_HEADER_LEN {
            for bit in 0..8 {
                let mut c = b;
                c[byte] ^= 1 << bit;
                assert!(SegmentHeader::decode(&c).is_err(), "flip at {byte}.{bit}");
            }
        }
        assert!(SegmentHeader::decode(&b[..63]).is_err());
    }

    #[test]
    fn meta_version_1_is_read_and_unknown_versions_are_refused() {
        let m = MetaRecord { log_id: 7, term: 2, vote: None, purged: 5, durable: None };
        let mut b = m.encode();
        put_u16(&mut b, META_VERSION_OFFSET, 1);
        META_HEADER.seal(&mut b);
        assert_eq!(MetaRecord::decode(&b).unwrap(), m);
        // Version 1 reserved the mark's bytes: set there, they are corruption.
        put_u64(&mut b, META_DURABLE_SEQ_OFFSET, 1);
        put_u32(&mut b, META_DURABLE_END_OFFSET, 64);
        META_HEADER.seal(&mut b);
        assert!(MetaRecord::decode(&b).is_err());
        let mut b = m.encode();
        put_u16(&mut b, META_VERSION_OFFSET, 3);
        META_HEADER.seal(&mut b);
        assert!(matches!(
            MetaRecord::decode(&b),
            Err((_, CorruptionKind::UnsupportedVersion { found: 3 }))
        ));
        // A mark inside the segment header is not a position the writer records.
        let mut b = m.encode();
        put_u64(&mut b, META_DURABLE_SEQ_OFFSET, 1);
        put_u32(&mut b, META_DURABLE_END_OFFSET, 10);
        META_HEADER.seal(&mut b);
        assert!(MetaRecord::decode(&b).is_err());
    }

    #[test]
    fn meta_roundtrip_and_bit_flips() {
        for m in [
            MetaRecord { log_id: 1, term: 5, vote: Some(0), purged: 0, durable: None },
            MetaRecord {
                log_id: u64::MAX,
                term: 0,
                vote: None,
                purged: 99,
                durable: Some(DurableMark { seq: 3, end: 4096 }),
            },
        ] {
            let b = m.encode();
            assert_eq!(MetaRecord::decode(&b).unwrap(), m);
            for byte in 0..META_LEN {
                let mut c = b;
                c[byte] ^= 0x10;
                assert!(MetaRecord::decode(&c).is_err());
            }
        }
    }

    #[test]
    fn record_header_layout_and_checks() {
        let mut raw = Vec::new();
        push_entry(&mut raw, 4, b"abc");
        push_entry(&mut raw, 5, b"");
        let h = RecordHeader {
            crc: 0,
            stored_len: raw.len() as u32,
            raw_len: raw.len() as u32,
            count: 2,
            first_index: 10,
            term: 5,
            synced: 64,
            flags: 0,
        };
        let mut b = [0u8; RECORD_HEADER_LEN];
        h.encode_into(&mut b, &raw);
        let d = RecordHeader::decode_unchecked(&b);
        assert_eq!(d.crc, record_crc(&b, &raw));
        assert_eq!(RecordHeader { crc: 0, ..d }, h);
        d.check_fields(&b).unwrap();
        assert_eq!(d.last_index(), 11);
        assert_eq!(d.span(), align_up(40 + 27));
        let slots = entry_slots(&raw, 2).unwrap();
        assert_eq!(slots[0], EntrySlot { term: 4, start: 12, end: 15 });
        assert_eq!(slots[1], EntrySlot { term: 5, start: 27, end: 27 });
        assert!(entry_slots(&raw, 1).is_err());
        assert!(entry_slots(&raw, 3).is_err());
        let mut bad = d;
        bad.count = 0;
        assert!(bad.check_fields(&b).is_err());
        let mut bad = d;
        bad.stored_len = u32::MAX;
        assert!(bad.check_fields(&b).is_err());
    }

    #[test]
    fn zero_helpers() {
        let mut v = vec![0u8; 100];
        assert!(all_zero(&v));
        assert_eq!(first_non_zero(&v), None);
        v[77] = 1;
        assert!(!all_zero(&v));
        assert_eq!(first_non_zero(&v), Some(77));
        v[3] = 1;
        assert_eq!(first_non_zero(&v), Some(3));
    }
}
