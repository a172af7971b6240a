//! ClickHouse Keeper changelogs (`changelog_<from>_<to>.bin[.zstd]`).
//!
//! Format (docs/formats/clickhouse.md, "Changelog records", `src/Coordination/Changelog.{h,cpp}`): a plain file is a
//! bare concatenation of records; a `.bin.zstd` file is a zstd stream (one or more
//! frames, the last possibly unterminated) whose decompressed bytes are the same
//! concatenation. A record is
//!
//! ```text
//! u64 LE  checksum    SipHash-2-4, key (0, 0), over every following byte of the record
//! u8      version     0, 1 or 2 (read identically; > 2 is fatal); writers write 1
//! u64 LE  index       Raft log index
//! u64 LE  term
//! i32 LE  value_type  1 app_log (a Keeper request, `keeperkit_model::keeper`), 2 conf
//! u64 LE  blob_size
//! ...     blob
//! ```
//!
//! - [`read_file`] reads one file the way Keeper's `ChangelogReader` does: records
//!   until the end or the first unreadable one (short, bad checksum, zstd error), which
//!   marks the file as broken there; only a version > 2 is an error.
//! - [`ChangelogWriter`] writes files Keeper can append to (names by rotation interval,
//!   version-1 records, zstd: one frame per writer session, a flush per record, frames
//!   ended with `01 00 00`); [`encode_like`] re-encodes a file read with [`read_file`]
//!   with the same framing (byte-identical for files written by this crate).
//! - [`startup::plan_startup`] applies Keeper's startup rules (docs/formats/clickhouse.md, "Startup rules") to a directory:
//!   which entries it loads, which files it would move to `detached/`, where it would
//!   resume writing, or why it refuses to start; [`startup::verify_dir`] lists every
//!   problem with file, offset and index; [`startup::plan_repair`] builds a repair that
//!   only does what Keeper itself would, and [`startup::apply_repair`] carries it out
//!   with a backup.
//!
//! Offsets: record offsets and corruption offsets of `.zstd` files are offsets in the
//! decompressed stream (as Keeper records them); zstd framing problems carry file
//! offsets (see [`zstd_stream`]).

use std::path::{Path, PathBuf};

use keeperkit_model::{Corruption, CorruptionKind};
use keeperkit_vfs::{FileSystem, OpenMode};

use crate::error::WalError;

mod record;
pub mod startup;
mod write;
pub mod zstd_stream;

pub use record::{
    decode_record, record_checksum, ChangelogRecord, RecordError, RecordPayload, RECORD_HEADER_LEN,
    RECORD_VERSION_MAX, RECORD_VERSION_WRITTEN, VALUE_TYPE_APP_LOG, VALUE_TYPE_CONF,
};
pub use write::{encode_like, ChangelogWriter, WriterOptions};

/// Prefix of every changelog file name.
pub const CHANGELOG_PREFIX: &str = "changelog";

/// Keeper's default `rotate_log_storage_interval`: entries per file.
pub const ROTATE_INTERVAL_DEFAULT: u64 = 100_000;

/// Keeper's default `reserved_log_items`.
pub const RESERVED_LOG_ITEMS_DEFAULT: u64 = 100_000;

/// Largest decompressed stream of one `.zstd` file we decode: 16 GiB (a Keeper file is
/// normally ≤ 50 MiB plus one record). The cap only stops a decompression bomb.
pub const STREAM_LEN_MAX: u64 = 16 << 30;

/// Longest record kept while a `.zstd` stream is decompressed (header and blob): a
/// record header claiming more is where reading stops, so that such a claim cannot
/// make the reader hold gigabytes of stream. Keeper's own entries are bounded by its
/// request size limit, far below this.
pub const RECORD_LEN_MAX: u64 = 256 << 20;

/// Name of the subdirectory Keeper moves set-aside files to.
pub const DETACHED_DIR: &str = "detached";

/// Prefix of Keeper's temporary copy markers.
pub const TMP_PREFIX: &str = "tmp_";

/// A parsed changelog file name (`getChangelogFileDescription`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ChangelogName {
    /// The part before the first `_` (`changelog` for every writer).
    pub prefix: String,
    /// First index the file is named for.
    pub from: u64,
    /// Last index the file is named for (inclusive).
    pub to: u64,
    /// Everything after the first `.` (`bin` or `bin.zstd`).
    pub extension: String,
}

impl ChangelogName {
    /// Parses a file name the way current Keeper does: cut at the first `.`, split the
    /// stem on `_`, at least 3 parts, parts 1 and 2 decimal u64. `None` when it does not
    /// parse (Keeper throws for a name that starts with `changelog` but does not parse;
    /// [`list_changelogs`] reports those).
    pub fn parse(name: &str) -> Option<ChangelogName> {
        let (stem, extension) = name.split_once('.')?;
        let mut parts = stem.split('_');
        let prefix = parts.next()?;
        let from = parts.next()?.parse().ok()?;
        let to = parts.next()?.parse().ok()?;
        Some(ChangelogName { prefix: prefix.into(), from, to, extension: extension.into() })
    }

    /// The file name for a range: `changelog_<from>_<to>.bin[.zstd]`.
    pub fn new(from: u64, to: u64, compressed: bool) -> ChangelogName {
        let extension = if compressed { "bin.zstd" } else { "bin" };
        ChangelogName { prefix: CHANGELOG_PREFIX.into(), from, to, extension: extension.into() }
    }

    /// Whether Keeper reads the file as zstd: the text after the last `.` of the name,
    /// lower-cased, is `zstd` or `zst` (`chooseCompressionMethod`). Other compressions
    /// Keeper's generic reader would accept (gz, xz, ...) are never written by Keeper
    /// and are read here as plain files, which fails their checksums.
    pub fn is_compressed(&self) -> bool {
        let last = self.extension.rsplit('.').next().unwrap_or_default().to_ascii_lowercase();
        last == "zstd" || last == "zst"
    }

    /// Number of entries the name covers.
    pub fn range_len(&self) -> u64 {
        self.to.saturating_sub(self.from).saturating_add(1)
    }

    /// The file name.
    pub fn file_name(&self) -> String {
        format!("{}_{}_{}.{}", self.prefix, self.from, self.to, self.extension)
    }
}

/// One changelog file of a directory listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedFile {
    /// Full path.
    pub path: PathBuf,
    /// Parsed name.
    pub name: ChangelogName,
    /// Length in bytes.
    pub len: u64,
}

/// What [`list_changelogs`] found in a log directory.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Listing {
    /// Changelog files sorted by `from` (ties by name; Keeper keeps the later one).
    pub files: Vec<ListedFile>,
    /// Names starting with `changelog` that do not parse (Keeper refuses to start).
    pub bad_names: Vec<String>,
    /// `tmp_` markers (Keeper deletes them and, with their partner, the partner too).
    pub tmp_markers: Vec<String>,
    /// Other names (Keeper warns "Unknown file found in log directory").
    pub unknown: Vec<String>,
}

/// Lists a Keeper log directory (`Changelog` constructor): `detached/` is skipped,
/// `tmp_` markers and unknown names are reported apart.
pub fn list_changelogs(fs: &dyn FileSystem, dir: &Path) -> Result<Listing, WalError> {
    let entries = fs.read_dir(dir).map_err(|e| WalError::io(dir, e))?;
    let mut out = Listing::default();
    for e in entries {
        if e.is_dir {
            if e.name != DETACHED_DIR {
                out.unknown.push(e.name);
            }
            continue;
        }
        if e.name.starts_with(TMP_PREFIX) {
            out.tmp_markers.push(e.name);
        } else if e.name.starts_with(CHANGELOG_PREFIX) {
            match ChangelogName::parse(&e.name) {
                Some(name) => {
                    out.files.push(ListedFile { path: dir.join(&e.name), name, len: e.len })
                }
                None => out.bad_names.push(e.name),
            }
        } else {
            out.unknown.push(e.name);
        }
    }
    out.files.sort_by(|a, b| a.name.from.cmp(&b.name.from).then_with(|| a.path.cmp(&b.path)));
    Ok(out)
}

/// A record and where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordAt {
    /// Offset of the record in the (decompressed) stream.
    pub offset: u64,
    /// The record.
    pub record: ChangelogRecord,
}

impl RecordAt {
    /// Decodes the record's payload ([`ChangelogRecord::payload`]); an error becomes a
    /// [`Corruption`] naming `file`, the stream offset of the bad byte and the record's
    /// index (e.g. an unknown opnum: Keeper aborts at "Failed to preprocess stored log
    /// at index ...").
    pub fn payload_in(&self, file: &Path) -> Result<RecordPayload, Corruption> {
        self.record.payload().map_err(|e| {
            e.in_file(file, self.offset + RECORD_HEADER_LEN as u64, None)
                .with_index(self.record.index)
        })
    }
}

/// The zstd framing of a `.bin.zstd` file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZstdLayout {
    /// The frames in file order.
    pub frames: Vec<zstd_stream::ZstdFrame>,
    /// Every block end (file offset, stream offset).
    pub block_ends: Vec<zstd_stream::BlockEnd>,
    /// Why decoding stopped before the end of the file, if it did.
    pub stop: Option<zstd_stream::ZstdStop>,
}

impl ZstdLayout {
    /// Whether the last frame lacks its last block (a writer that did not finalize).
    pub fn last_frame_unterminated(&self) -> bool {
        self.frames.last().is_some_and(|f| !f.terminated)
    }
}

/// One changelog file as Keeper's reader sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangelogFile {
    /// Path of the file.
    pub path: PathBuf,
    /// Whether it was read as zstd.
    pub compressed: bool,
    /// Length of the file in bytes.
    pub file_len: u64,
    /// Length of the decompressed stream (the file length for plain files).
    pub stream_len: u64,
    /// Every record read, in stream order (repeated indexes included).
    pub records: Vec<RecordAt>,
    /// Where and why reading stopped early (Keeper's "read finished with error"):
    /// offset in the stream, index of the bad record when its header was readable.
    pub broken: Option<Corruption>,
    /// The zstd framing, for `.zstd` files.
    pub zstd: Option<ZstdLayout>,
}

impl ChangelogFile {
    /// Stream offset just past the last good record.
    pub fn good_len(&self) -> u64 {
        self.records.last().map_or(0, |r| r.offset + r.record.encoded_len() as u64)
    }
}

/// Options of [`read_file`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadOptions {
    /// Cap on the decompressed stream of a `.zstd` file (default [`STREAM_LEN_MAX`]).
    pub stream_len_max: u64,
}

impl Default for ReadOptions {
    fn default() -> Self {
        ReadOptions { stream_len_max: STREAM_LEN_MAX }
    }
}

/// Reads one changelog file. Compression comes from the name
/// ([`ChangelogName::is_compressed`]; a name that does not parse is read as plain).
///
/// Errors: I/O, and a record version > 2 ([`keeperkit_model::CorruptionKind::
/// UnsupportedVersion`] with the stream offset and index), which Keeper treats as
/// fatal. Every other problem ends reading and is reported in
/// [`ChangelogFile::broken`].
pub fn read_file(
    fs: &dyn FileSystem,
    path: &Path,
    opts: ReadOptions,
) -> Result<ChangelogFile, WalError> {
    let name = path.file_name().and_then(|n| n.to_str()).and_then(ChangelogName::parse);
    let compressed = name.as_ref().is_some_and(ChangelogName::is_compressed);
    let file = fs.open(path, OpenMode::Read).map_err(|e| WalError::io(path, e))?;
    let len = file.len().map_err(|e| WalError::io(path, e))?;
    let len_usize = usize::try_from(len).map_err(|_| {
        WalError::io(path, std::io::Error::other("file too large for this platform"))
    })?;
    let mut bytes = vec![0u8; len_usize];
    file.read_exact_at(&mut bytes, 0).map_err(|e| WalError::io(path, e))?;
    read_bytes(path, &bytes, compressed, opts)
}

/// Reads changelog bytes already in memory (see [`read_file`]); `path` only names the
/// file in errors.
pub fn read_bytes(
    path: &Path,
    bytes: &[u8],
    compressed: bool,
    opts: ReadOptions,
) -> Result<ChangelogFile, WalError> {
    let (decoded, zstd, stream_len);
    let stream: &[u8] = if compressed {
        let cap = usize::try_from(opts.stream_len_max).unwrap_or(usize::MAX);
        // Keep decompressed bytes only while they hold records: after the first bad
        // record (or one longer than RECORD_LEN_MAX) nothing more is read by Keeper,
        // and a bomb costs a scan, not its size.
        let mut scanned = 0usize;
        let mut keep = |stream: &[u8]| loop {
            match decode_record(&stream[scanned..]) {
                Ok((_, n)) => scanned += n,
                Err(e) => {
                    break matches!(e.kind, CorruptionKind::Truncated { needed, .. }
                        if needed <= RECORD_LEN_MAX)
                }
            }
        };
        decoded =
            zstd_stream::decode_while(bytes, cap, &mut keep).map_err(|e| WalError::io(path, e))?;
        zstd = Some(ZstdLayout {
            frames: decoded.frames.clone(),
            block_ends: decoded.block_ends.clone(),
            stop: decoded.stop.clone(),
        });
        stream_len = decoded.stream_len;
        &decoded.stream
    } else {
        zstd = None;
        stream_len = bytes.len() as u64;
        bytes
    };
    let mut records = Vec::new();
    let mut broken = None;
    let mut pos = 0usize;
    while pos < stream.len() {
        match decode_record(&stream[pos..]) {
            Ok((record, n)) => {
                records.push(RecordAt { offset: pos as u64, record });
                pos += n;
            }
            Err(e) => {
                let mut c = Corruption::new(path, pos as u64 + e.offset, e.kind.clone());
                if let Some(i) = e.index {
                    c = c.with_index(i);
                }
                if e.is_fatal() {
                    return Err(WalError::Corrupt(c));
                }
                broken = Some(c);
                break;
            }
        }
    }
    if broken.is_none() {
        // The records read cleanly to the end of what decoded; a zstd error (not a
        // mere end of input inside a block) is where Keeper's decoder would throw.
        if let Some(stop) = zstd.as_ref().and_then(|z| z.stop.as_ref()).filter(|s| !s.at_eof) {
            broken = Some(Corruption::new(
                path,
                pos as u64,
                keeperkit_model::CorruptionKind::Decompression(format!(
                    "{} (file offset {})",
                    stop.message, stop.file_offset
                )),
            ));
        }
    }
    Ok(ChangelogFile {
        path: path.to_path_buf(),
        compressed,
        file_len: bytes.len() as u64,
        stream_len,
        records,
        broken,
        zstd,
    })
}
