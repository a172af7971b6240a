//! The byte layout of native snapshot files.
//!
//! `docs/FORMAT.md` ("Native snapshot") is the specification; this module follows it
//! field by field. Every offset is a named constant built from the previous one, and
//! the fixed sizes are pinned with compile-time assertions so that the code and the
//! document cannot drift apart. All integers are little-endian.
//!
//! ```text
//! header (32) | node chunk block ... | metadata block | footer block | trailer (32)
//! block = block header (32) + stored bytes (zstd frame or raw)
//! ```

use keeperkit_model::{limits, CorruptionKind, DecodeError};

/// Magic of a snapshot file's header: `\x89 K K S \r \n \x1a \n`. Like PNG's: a
/// non-ASCII first byte (no text file starts so), CR LF and LF to catch line-ending
/// conversions, and ^Z to stop `type` on DOS. The native WAL uses the same pattern
/// with `KKW`/`KKM`.
pub const SNAPSHOT_MAGIC: [u8; 8] = *b"\x89KKS\r\n\x1a\n";
/// Magic at the very end of a snapshot file (last 8 bytes of the trailer):
/// `\x89 K K E \r \n \x1a \n`.
pub const TRAILER_MAGIC: [u8; 8] = *b"\x89KKE\r\n\x1a\n";
/// The only format version this build writes and reads.
pub const FORMAT_VERSION: u16 = 1;
/// Header flags known to this version (none: v1 defines no flag).
pub const HEADER_FLAGS_KNOWN: u32 = 0;

// ---- File header (32 bytes) ----

/// Offset of the magic in the file header.
pub const HDR_MAGIC_OFFSET: usize = 0;
/// Offset of the format version (u16).
pub const HDR_VERSION_OFFSET: usize = HDR_MAGIC_OFFSET + 8;
/// Offset of the header length (u16, = [`HEADER_LEN`]).
pub const HDR_LEN_OFFSET: usize = HDR_VERSION_OFFSET + 2;
/// Offset of the flags (u32, 0 in v1).
pub const HDR_FLAGS_OFFSET: usize = HDR_LEN_OFFSET + 2;
/// Offset of the snapshot id (u64): random, repeated in the trailer.
pub const HDR_ID_OFFSET: usize = HDR_FLAGS_OFFSET + 4;
/// Offset of the reserved bytes (u32, zero).
pub const HDR_RESERVED_OFFSET: usize = HDR_ID_OFFSET + 8;
/// Offset of the header CRC (u32, CRC-32 over bytes `0..HDR_CRC_OFFSET`).
pub const HDR_CRC_OFFSET: usize = HDR_RESERVED_OFFSET + 4;
/// Length of the file header.
pub const HEADER_LEN: usize = HDR_CRC_OFFSET + 4;

const _: () = assert!(HEADER_LEN == 32);
/// [`HEADER_LEN`] as stored in the header.
const HEADER_LEN_U16: u16 = 32;
const _: () = assert!(HEADER_LEN_U16 as usize == HEADER_LEN);

// ---- Block header (32 bytes) ----

/// Offset of the block CRC (u32): CRC-32 over header bytes `4..32`, then the stored
/// bytes.
pub const BLK_CRC_OFFSET: usize = 0;
/// Offset of the block kind (u8, [`BlockKind`]).
pub const BLK_KIND_OFFSET: usize = BLK_CRC_OFFSET + 4;
/// Offset of the codec (u8, [`Codec`]).
pub const BLK_CODEC_OFFSET: usize = BLK_KIND_OFFSET + 1;
/// Offset of reserved bytes (u16, zero).
pub const BLK_RESERVED_OFFSET: usize = BLK_CODEC_OFFSET + 1;
/// Offset of the sequence number (u32): the chunk number of a node chunk, counting
/// from 0; 0 for the metadata and the footer.
pub const BLK_SEQ_OFFSET: usize = BLK_RESERVED_OFFSET + 2;
/// Offset of the node count (u32): nodes in a node chunk; 0 otherwise.
pub const BLK_NODES_OFFSET: usize = BLK_SEQ_OFFSET + 4;
/// Offset of the stored length (u32): bytes after this header.
pub const BLK_STORED_LEN_OFFSET: usize = BLK_NODES_OFFSET + 4;
/// Offset of the raw length (u32): bytes after decompression.
pub const BLK_RAW_LEN_OFFSET: usize = BLK_STORED_LEN_OFFSET + 4;
/// Offset of the raw CRC (u32): CRC-32 of the raw (decompressed) bytes.
pub const BLK_RAW_CRC_OFFSET: usize = BLK_RAW_LEN_OFFSET + 4;
/// Offset of the second reserved field (u32, zero).
pub const BLK_RESERVED2_OFFSET: usize = BLK_RAW_CRC_OFFSET + 4;
/// Length of a block header.
pub const BLOCK_HEADER_LEN: usize = BLK_RESERVED2_OFFSET + 4;

const _: () = assert!(BLOCK_HEADER_LEN == 32);

// ---- Trailer (32 bytes, the last bytes of the file) ----

/// Offset of the snapshot id (u64, equal to the header's).
pub const TRL_ID_OFFSET: usize = 0;
/// Offset of the footer block's file offset (u64).
pub const TRL_FOOTER_OFFSET_OFFSET: usize = TRL_ID_OFFSET + 8;
/// Offset of the footer block's length, header included (u32).
pub const TRL_FOOTER_LEN_OFFSET: usize = TRL_FOOTER_OFFSET_OFFSET + 8;
/// Offset of the trailer CRC (u32, CRC-32 over bytes `0..TRL_CRC_OFFSET`).
pub const TRL_CRC_OFFSET: usize = TRL_FOOTER_LEN_OFFSET + 4;
/// Offset of the trailer magic ([`TRAILER_MAGIC`]).
pub const TRL_MAGIC_OFFSET: usize = TRL_CRC_OFFSET + 4;
/// Length of the trailer.
pub const TRAILER_LEN: usize = TRL_MAGIC_OFFSET + 8;

const _: () = assert!(TRAILER_LEN == 32);

/// The smallest possible file: header, metadata block header, footer block header and
/// its fixed part, trailer (no chunk: a snapshot of an empty tree).
pub const FILE_LEN_MIN: u64 =
    (HEADER_LEN + BLOCK_HEADER_LEN + BLOCK_HEADER_LEN + FOOTER_FIXED_LEN + TRAILER_LEN) as u64;

// ---- Footer ----

/// Fixed part of the footer's raw bytes: metadata block offset (u64), metadata stored
/// length (u32), chunk count (u32).
pub const FOOTER_FIXED_LEN: usize = 16;
/// Fixed part of one footer entry: offset (u64), stored length (u32), raw length
/// (u32), node count (u32), codec (u8), flags (u8), first-path length (u16).
pub const FOOTER_ENTRY_FIXED_LEN: usize = 22;
/// At most this many bytes of a chunk's first path are kept in the footer (the path
/// is informational: for `inspect` and for finding the chunk that holds a path).
pub const FIRST_PATH_LEN_MAX: usize = 256;
/// Largest footer entry.
pub const FOOTER_ENTRY_LEN_MAX: usize = FOOTER_ENTRY_FIXED_LEN + FIRST_PATH_LEN_MAX;
/// Footer entry flag: the first path was cut to [`FIRST_PATH_LEN_MAX`] bytes.
pub const ENTRY_FLAG_PATH_CUT: u8 = 1;
/// Every footer entry flag v1 knows.
pub const ENTRY_FLAGS_KNOWN: u8 = ENTRY_FLAG_PATH_CUT;

const _: () = assert!(FIRST_PATH_LEN_MAX <= u16::MAX as usize);

// ---- Limits ----

/// Longest path (bytes): the model's limit, which every ZooKeeper-written path meets.
pub const PATH_LEN_MAX: usize = limits::PATH_LEN_MAX;

/// Largest node value (bytes): what a ZooKeeper reader accepts
/// (`jute.maxbuffer` + its extra size, about 2 MiB), so every value a ZooKeeper
/// snapshot can hold converts.
pub const DATA_LEN_MAX: usize = limits::JUTE_READ_LEN_MAX;

/// Largest encoding of one node's fixed fields: two path varints (10 + 10), flags (1),
/// data length (10), ACL id (10), ten stat varints (10 × 10).
pub const NODE_FIXED_LEN_MAX: usize = 10 + 10 + 1 + 10 + 10 + 10 * 10;

/// Smallest encoding of one node: two path varints, flags, ACL id and ten stat
/// varints of one byte each (a null value has no length varint). Bounds the node
/// count of a chunk by its raw length.
pub const NODE_RECORD_LEN_MIN: usize = 1 + 1 + 1 + 1 + 10;

/// Largest encoding of one node.
pub const NODE_RECORD_LEN_MAX: usize = PATH_LEN_MAX + DATA_LEN_MAX + NODE_FIXED_LEN_MAX;

/// Smallest chunk target a writer accepts (raw bytes).
pub const CHUNK_TARGET_LEN_MIN: usize = 4 << 10;
/// Largest chunk target a writer accepts (raw bytes).
pub const CHUNK_TARGET_LEN_MAX: usize = 16 << 20;
/// Default chunk target: 1 MiB of raw node records. Big enough for zstd to find the
/// repetition between thousands of neighbouring nodes, small enough that a 1M-node
/// tree makes dozens of chunks to spread over the cores.
pub const CHUNK_TARGET_LEN_DEFAULT: usize = 1 << 20;

/// Largest raw (decompressed) chunk: a writer closes a chunk as soon as it reaches its
/// target, so a chunk is at most the largest target plus one largest node (about 20
/// MiB). This is also the largest buffer a reader allocates for one chunk.
pub const CHUNK_RAW_LEN_MAX: usize = CHUNK_TARGET_LEN_MAX + NODE_RECORD_LEN_MAX;

const _: () = assert!(CHUNK_RAW_LEN_MAX <= u32::MAX as usize);

/// The sum of the full path lengths of a chunk's nodes is at most this many times the
/// chunk's raw length. Prefix compression makes a deep path cost a few bytes, so
/// without this bound a small chunk could make a reader (and its sink) handle
/// gigabytes of paths; a writer stops sharing prefixes (writes the full path) when a
/// node would break the bound, which keeps every chunk within it.
pub const PATH_EXPANSION_MAX: u64 = 64;

/// Most nodes in one snapshot: node ids of the tree are `u32`.
pub const NODE_COUNT_MAX: u64 = u32::MAX as u64;

/// Most live sessions in one snapshot (4M: far beyond what one ensemble serves).
pub const SESSION_COUNT_MAX: usize = 1 << 22;
/// Most auth ids recorded for one session.
pub const AUTH_IDS_MAX: usize = 1024;
/// Most distinct ACL lists in one snapshot.
pub const ACL_LIST_COUNT_MAX: usize = 1 << 22;
/// Most entries in one ACL list: what fits in one ZooKeeper request (an ACL takes at
/// least 12 bytes: perms and two string lengths).
pub const ACL_LEN_MAX: usize = limits::JUTE_READ_LEN_MAX / 12;
/// Longest ACL scheme or id string (bytes).
pub const ID_LEN_MAX: usize = limits::JUTE_READ_LEN_MAX;
/// Longest cluster configuration (bytes): a ZooKeeper dynamic config or a Raft
/// membership is a few KiB at most; this is ZooKeeper's read limit.
pub const CONFIG_LEN_MAX: usize = limits::JUTE_READ_LEN_MAX;
/// Largest raw metadata block: 256 MiB (4M sessions without auth ids take 64 MiB).
pub const META_RAW_LEN_MAX: usize = 256 << 20;
/// Largest footer block, header included: 1 GiB.
pub const FOOTER_LEN_MAX: usize = 1 << 30;
/// Most chunks in one snapshot: as many entries as fit in the largest footer.
pub const CHUNK_COUNT_MAX: usize =
    (FOOTER_LEN_MAX - BLOCK_HEADER_LEN - FOOTER_FIXED_LEN) / FOOTER_ENTRY_LEN_MAX;

const _: () = assert!(META_RAW_LEN_MAX <= u32::MAX as usize);
const _: () = assert!(FOOTER_LEN_MAX <= u32::MAX as usize);
const _: () = assert!(CHUNK_COUNT_MAX <= u32::MAX as usize);

// ---- Block kinds and codecs ----

/// What a block holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BlockKind {
    /// Node records (a chunk).
    Nodes,
    /// The metadata.
    Meta,
    /// The footer index.
    Footer,
}

impl BlockKind {
    /// The byte stored for this kind.
    pub fn code(self) -> u8 {
        match self {
            BlockKind::Nodes => 1,
            BlockKind::Meta => 2,
            BlockKind::Footer => 3,
        }
    }

    /// The kind of a stored byte.
    pub fn from_code(code: u8) -> Option<BlockKind> {
        match code {
            1 => Some(BlockKind::Nodes),
            2 => Some(BlockKind::Meta),
            3 => Some(BlockKind::Footer),
            _ => None,
        }
    }

    /// The largest raw length of a block of this kind.
    pub fn raw_len_max(self) -> usize {
        match self {
            BlockKind::Nodes => CHUNK_RAW_LEN_MAX,
            BlockKind::Meta => META_RAW_LEN_MAX,
            BlockKind::Footer => FOOTER_LEN_MAX - BLOCK_HEADER_LEN,
        }
    }
}

/// How a block's bytes are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Codec {
    /// As they are (stored length = raw length).
    Raw,
    /// One zstd frame (stored length < raw length).
    Zstd,
}

impl Codec {
    /// The byte stored for this codec.
    pub fn code(self) -> u8 {
        match self {
            Codec::Raw => 0,
            Codec::Zstd => 1,
        }
    }

    /// The codec of a stored byte.
    pub fn from_code(code: u8) -> Option<Codec> {
        match code {
            0 => Some(Codec::Raw),
            1 => Some(Codec::Zstd),
            _ => None,
        }
    }

    /// Name for reports.
    pub fn name(self) -> &'static str {
        match self {
            Codec::Raw => "raw",
            Codec::Zstd => "zstd",
        }
    }
}

// ---- Little-endian helpers ----

pub(crate) use keeperkit_model::le::{get_u16, get_u32, get_u64, len_u64};
use keeperkit_model::le::{put_u16, put_u32, put_u64};
use keeperkit_model::native_header::NativeHeader;

/// Where the file header keeps its magic, CRC and version.
pub const FILE_HEADER: NativeHeader = NativeHeader {
    magic: SNAPSHOT_MAGIC,
    magic_at: HDR_MAGIC_OFFSET,
    crc_at: HDR_CRC_OFFSET,
    version: Some((HDR_VERSION_OFFSET, FORMAT_VERSION)),
};

/// Where the trailer keeps its magic and CRC (it has no version).
pub const TRAILER: NativeHeader = NativeHeader {
    magic: TRAILER_MAGIC,
    magic_at: TRL_MAGIC_OFFSET,
    crc_at: TRL_CRC_OFFSET,
    version: None,
};

/// A length that is known to fit in `u32` (checked against a limit that does).
pub(crate) fn len_u32(n: usize) -> u32 {
    debug_assert!(u32::try_from(n).is_ok());
    u32::try_from(n).unwrap_or(u32::MAX)
}

fn at(offset: usize, kind: CorruptionKind) -> DecodeError {
    DecodeError::new(len_u64(offset), kind)
}

// ---- File header ----

/// The decoded file header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileHeader {
    /// Format version ([`FORMAT_VERSION`]).
    pub version: u16,
    /// Flags (0 in v1).
    pub flags: u32,
    /// Random id of this file, repeated in the trailer.
    pub snapshot_id: u64,
}

impl FileHeader {
    /// Encodes the header.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[HDR_MAGIC_OFFSET..HDR_MAGIC_OFFSET + 8].copy_from_slice(&SNAPSHOT_MAGIC);
        put_u16(&mut b, HDR_VERSION_OFFSET, self.version);
        put_u16(&mut b, HDR_LEN_OFFSET, HEADER_LEN_U16);
        put_u32(&mut b, HDR_FLAGS_OFFSET, self.flags);
        put_u64(&mut b, HDR_ID_OFFSET, self.snapshot_id);
        let crc = crc32fast::hash(&b[..HDR_CRC_OFFSET]);
        put_u32(&mut b, HDR_CRC_OFFSET, crc);
        b
    }

    /// Decodes and checks a header (offsets relative to the file start).
    pub fn decode(b: &[u8; HEADER_LEN]) -> Result<FileHeader, DecodeError> {
        FILE_HEADER.check(b)?;
        let version = get_u16(b, HDR_VERSION_OFFSET);
        let len = get_u16(b, HDR_LEN_OFFSET);
        if usize::from(len) != HEADER_LEN {
            return Err(at(
                HDR_LEN_OFFSET,
                CorruptionKind::inconsistent(format!("header length {len}, expected 32")),
            ));
        }
        let flags = get_u32(b, HDR_FLAGS_OFFSET);
        if flags & !HEADER_FLAGS_KNOWN != 0 {
            return Err(at(
                HDR_FLAGS_OFFSET,
                CorruptionKind::UnknownValue { field: "header flags", found: u64::from(flags) },
            ));
        }
        if get_u32(b, HDR_RESERVED_OFFSET) != 0 {
            return Err(at(
                HDR_RESERVED_OFFSET,
                CorruptionKind::NonZeroReserved { field: "reserved header bytes" },
            ));
        }
        Ok(FileHeader { version, flags, snapshot_id: get_u64(b, HDR_ID_OFFSET) })
    }
}

// ---- Trailer ----

/// The decoded trailer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Trailer {
    /// The snapshot id (equal to the header's).
    pub snapshot_id: u64,
    /// File offset of the footer block.
    pub footer_offset: u64,
    /// Length of the footer block, header included.
    pub footer_len: u32,
}

impl Trailer {
    /// Encodes the trailer.
    pub fn encode(&self) -> [u8; TRAILER_LEN] {
        let mut b = [0u8; TRAILER_LEN];
        put_u64(&mut b, TRL_ID_OFFSET, self.snapshot_id);
        put_u64(&mut b, TRL_FOOTER_OFFSET_OFFSET, self.footer_offset);
        put_u32(&mut b, TRL_FOOTER_LEN_OFFSET, self.footer_len);
        TRAILER.seal(&mut b);
        b
    }

    /// Decodes and checks a trailer (offsets relative to the trailer start).
    pub fn decode(b: &[u8; TRAILER_LEN]) -> Result<Trailer, DecodeError> {
        TRAILER.check(b)?;
        Ok(Trailer {
            snapshot_id: get_u64(b, TRL_ID_OFFSET),
            footer_offset: get_u64(b, TRL_FOOTER_OFFSET_OFFSET),
            footer_len: get_u32(b, TRL_FOOTER_LEN_OFFSET),
        })
    }
}

// ---- Block header ----

/// A decoded block header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockHeader {
    /// The stored CRC (over header bytes `4..32` and the stored bytes).
    pub crc: u32,
    /// What the block holds.
    pub kind: BlockKind,
    /// How its bytes are stored.
    pub codec: Codec,
    /// Chunk number (node chunks), else 0.
    pub seq: u32,
    /// Nodes in the chunk (node chunks), else 0.
    pub node_count: u32,
    /// Bytes stored after the header.
    pub stored_len: u32,
    /// Bytes after decompression.
    pub raw_len: u32,
    /// CRC-32 of the raw bytes.
    pub raw_crc: u32,
}

impl BlockHeader {
    /// Encodes the header; `crc` is computed from the header and `stored` (the field
    /// in `self` is ignored).
    pub fn encode(&self, stored: &[u8]) -> [u8; BLOCK_HEADER_LEN] {
        debug_assert_eq!(stored.len(), self.stored_len as usize);
        let mut b = [0u8; BLOCK_HEADER_LEN];
        b[BLK_KIND_OFFSET] = self.kind.code();
        b[BLK_CODEC_OFFSET] = self.codec.code();
        put_u32(&mut b, BLK_SEQ_OFFSET, self.seq);
        put_u32(&mut b, BLK_NODES_OFFSET, self.node_count);
        put_u32(&mut b, BLK_STORED_LEN_OFFSET, self.stored_len);
        put_u32(&mut b, BLK_RAW_LEN_OFFSET, self.raw_len);
        put_u32(&mut b, BLK_RAW_CRC_OFFSET, self.raw_crc);
        let crc = block_crc(&b, stored);
        put_u32(&mut b, BLK_CRC_OFFSET, crc);
        b
    }

    /// Decodes a block header and checks every field that does not need the stored
    /// bytes (offsets relative to the header start). The CRC is checked by
    /// [`BlockHeader::check_crc`] once the stored bytes are read.
    pub fn decode(b: &[u8; BLOCK_HEADER_LEN]) -> Result<BlockHeader, DecodeError> {
        let Some(kind) = BlockKind::from_code(b[BLK_KIND_OFFSET]) else {
            return Err(at(
                BLK_KIND_OFFSET,
                CorruptionKind::UnknownValue {
                    field: "block kind",
                    found: u64::from(b[BLK_KIND_OFFSET]),
                },
            ));
        };
        let Some(codec) = Codec::from_code(b[BLK_CODEC_OFFSET]) else {
            return Err(at(
                BLK_CODEC_OFFSET,
                CorruptionKind::UnknownValue {
                    field: "codec",
                    found: u64::from(b[BLK_CODEC_OFFSET]),
                },
            ));
        };
        if get_u16(b, BLK_RESERVED_OFFSET) != 0 || get_u32(b, BLK_RESERVED2_OFFSET) != 0 {
            return Err(at(
                BLK_RESERVED_OFFSET,
                CorruptionKind::NonZeroReserved { field: "reserved block header bytes" },
            ));
        }
        let h = BlockHeader {
            crc: get_u32(b, BLK_CRC_OFFSET),
            kind,
            codec,
            seq: get_u32(b, BLK_SEQ_OFFSET),
            node_count: get_u32(b, BLK_NODES_OFFSET),
            stored_len: get_u32(b, BLK_STORED_LEN_OFFSET),
            raw_len: get_u32(b, BLK_RAW_LEN_OFFSET),
            raw_crc: get_u32(b, BLK_RAW_CRC_OFFSET),
        };
        let raw_max = kind.raw_len_max();
        if h.raw_len as usize > raw_max {
            return Err(DecodeError::new(
                BLK_RAW_LEN_OFFSET as u64,
                CorruptionKind::LengthOutOfRange {
                    len: i64::from(h.raw_len),
                    max: len_u64(raw_max),
                },
            ));
        }
        let stored_ok = match codec {
            Codec::Raw => h.stored_len == h.raw_len,
            Codec::Zstd => h.stored_len < h.raw_len,
        };
        if !stored_ok {
            return Err(at(
                BLK_STORED_LEN_OFFSET,
                CorruptionKind::inconsistent(format!(
                    "stored length {} does not fit raw length {} with codec {}",
                    h.stored_len,
                    h.raw_len,
                    codec.name()
                )),
            ));
        }
        match kind {
            BlockKind::Nodes => {
                let max = h.raw_len as usize / NODE_RECORD_LEN_MIN;
                if h.node_count == 0 || h.node_count as usize > max {
                    return Err(at(
                        BLK_NODES_OFFSET,
                        CorruptionKind::inconsistent(format!(
                            "node count {} impossible in {} raw bytes (1..={max})",
                            h.node_count, h.raw_len
                        )),
                    ));
                }
            }
            BlockKind::Meta | BlockKind::Footer => {
                if h.seq != 0 || h.node_count != 0 {
                    return Err(at(
                        BLK_SEQ_OFFSET,
                        CorruptionKind::inconsistent("sequence and node count must be zero"),
                    ));
                }
            }
        }
        if kind == BlockKind::Footer && codec != Codec::Raw {
            return Err(at(
                BLK_CODEC_OFFSET,
                CorruptionKind::inconsistent("the footer must be stored raw"),
            ));
        }
        Ok(h)
    }

    /// Checks the stored CRC against the header bytes and the stored bytes; the error
    /// offset is that of the CRC field.
    pub fn check_crc(
        &self,
        header: &[u8; BLOCK_HEADER_LEN],
        stored: &[u8],
    ) -> Result<(), DecodeError> {
        let computed = block_crc(header, stored);
        if computed != self.crc {
            return Err(DecodeError::new(
                BLK_CRC_OFFSET as u64,
                CorruptionKind::ChecksumMismatch {
                    stored: u64::from(self.crc),
                    computed: u64::from(computed),
                },
            ));
        }
        Ok(())
    }

    /// Length of the whole block (header and stored bytes).
    pub fn block_len(&self) -> u64 {
        BLOCK_HEADER_LEN as u64 + u64::from(self.stored_len)
    }
}

/// CRC-32 over header bytes `4..32` and the stored bytes.
fn block_crc(header: &[u8; BLOCK_HEADER_LEN], stored: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&header[BLK_KIND_OFFSET..]);
    h.update(stored);
    h.finalize()
}

// ---- Varints and a bounds-checked decoder ----

/// Appends `v` as an unsigned LEB128 varint (1 to 10 bytes).
#[inline]
pub(crate) fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v & 0x7F) as u8 | 0x80);
        v >>= 7;
    }
    out.push((v & 0x7F) as u8);
}

/// Appends a signed value zigzag-encoded as a varint (small magnitudes are short).
#[inline]
pub(crate) fn put_zvarint(out: &mut Vec<u8>, v: i64) {
    put_varint(out, ((v << 1) ^ (v >> 63)) as u64);
}

/// The decoder of every native snapshot structure: the workspace's bounded
/// little-endian cursor; errors carry the offset relative to the slice start.
pub(crate) type Dec<'a> = keeperkit_model::le::Cursor<'a>;

/// Native-format reads on top of [`Dec`].
pub(crate) trait DecExt<'a> {
    /// A varint length checked against `max` (not against the bytes that remain: a
    /// short read after it is [`CorruptionKind::Truncated`]).
    fn varint_len(&mut self, max: usize) -> Result<usize, DecodeError>;
    /// A `u32` count checked against `max` and against the bytes that remain, given
    /// that each element takes at least `min_len` bytes.
    fn count(&mut self, max: usize, min_len: usize) -> Result<usize, DecodeError>;
    /// A `u32`-length-prefixed UTF-8 string of at most `max` bytes.
    fn string(&mut self, max: usize) -> Result<&'a str, DecodeError>;
}

impl<'a> DecExt<'a> for Dec<'a> {
    #[inline]
    fn varint_len(&mut self, max: usize) -> Result<usize, DecodeError> {
        let start = self.pos();
        let v = self.varint()?;
        match usize::try_from(v) {
            Ok(n) if n <= max => Ok(n),
            _ => Err(DecodeError::new(
                len_u64(start),
                CorruptionKind::LengthOutOfRange {
                    len: i64::try_from(v).unwrap_or(i64::MAX),
                    max: len_u64(max),
                },
            )),
        }
    }

    #[inline]
    fn count(&mut self, max: usize, min_len: usize) -> Result<usize, DecodeError> {
        self.count_u32(len_u64(max), min_len)
    }

    #[inline]
    fn string(&mut self, max: usize) -> Result<&'a str, DecodeError> {
        let start = self.pos();
        let n = self.u32()? as usize;
        if n > max {
            return Err(DecodeError::new(
                len_u64(start),
                CorruptionKind::LengthOutOfRange { len: i64::from(len_u32(n)), max: len_u64(max) },
            ));
        }
        let at = self.pos();
        let b = self.take(n)?;
        std::str::from_utf8(b)
            .map_err(|_| DecodeError::new(len_u64(at), CorruptionKind::InvalidUtf8))
    }
}

/// Appends a `u32`-length-prefixed string (the caller checked the length limit).
pub(crate) fn put_string(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&len_u32(s.len()).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_round_trip() {
        let values = [0u64, 1, 127, 128, 300, u64::from(u32::MAX), u64::MAX - 1, u64::MAX];
        for v in values {
            let mut b = Vec::new();
            put_varint(&mut b, v);
            assert!(b.len() <= 10);
            let mut d = Dec::new(&b);
            assert_eq!(d.varint(), Ok(v));
            assert!(d.is_empty());
        }
        for v in [0i64, -1, 1, i64::MIN, i64::MAX, -1_700_000_000_000, 0x1_0000_01b7] {
            let mut b = Vec::new();
            put_zvarint(&mut b, v);
            assert_eq!(Dec::new(&b).zvarint(), Ok(v));
        }
    }

    #[test]
    fn varint_rejects_overflow_and_truncation() {
        let too_long = [0xFFu8; 10];
        assert!(Dec::new(&too_long).varint().is_err());
        let overflow = [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x02];
        assert!(Dec::new(&overflow).varint().is_err());
        let max = [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01];
        assert_eq!(Dec::new(&max).varint(), Ok(u64::MAX));
        let cut = [0x80u8, 0x80];
        assert!(matches!(
            Dec::new(&cut).varint(),
            Err(DecodeError { kind: CorruptionKind::Truncated { .. }, .. })
        ));
    }

    #[test]
    fn header_trailer_block_round_trip() {
        let h = FileHeader { version: FORMAT_VERSION, flags: 0, snapshot_id: 0xDEAD_BEEF };
        assert_eq!(FileHeader::decode(&h.encode()), Ok(h));
        let mut bad = h.encode();
        bad[HDR_ID_OFFSET] ^= 1;
        assert!(FileHeader::decode(&bad).is_err());

        let t = Trailer { snapshot_id: 7, footer_offset: 1234, footer_len: 56 };
        assert_eq!(Trailer::decode(&t.encode()), Ok(t));

        let stored = b"hello world, hello";
        let b = BlockHeader {
            crc: 0,
            kind: BlockKind::Nodes,
            codec: Codec::Raw,
            seq: 3,
            node_count: 1,
            stored_len: 18,
            raw_len: 18,
            raw_crc: crc32fast::hash(stored),
        };
        let enc = b.encode(stored);
        let dec = BlockHeader::decode(&enc).expect("valid header");
        assert_eq!(dec.check_crc(&enc, stored), Ok(()));
        assert!(dec.check_crc(&enc, b"hello world, hellp").is_err());
        assert_eq!(dec.seq, 3);
    }
}
