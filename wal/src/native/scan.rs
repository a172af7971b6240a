//! Reading a log directory without changing it: segment scans, cross-segment links,
//! and the classification of a bad spot as a torn tail or as corruption.
//!
//! [`NativeWal::open`](super::NativeWal::open), `inspect`, `verify`, `repair_plan` and
//! `iter_entries` all start from [`analyze`], so they agree on what is wrong.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use keeperkit_model::{Corruption, CorruptionKind};
use keeperkit_vfs::{File, FileSystem, OpenMode};

use super::format::{
    self, align_up, all_zero, entry_slots, first_non_zero, record_crc, MetaRecord, RecordHeader,
    SegmentHeader, FLAG_ZSTD, META_LEN, RECORD_ALIGN, RECORD_HEADER_LEN, REC_COUNT_OFFSET,
    REC_SYNCED_OFFSET, SEGMENT_FILE_LEN_MAX, SEGMENT_HEADER_LEN,
};
use super::{parse_segment_file_name, Result, WalError, META_FILE_NAME, TEMP_SUFFIX};

/// A problem found in a log directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// The file (segment or metadata) the problem is in.
    pub path: PathBuf,
    /// Byte offset in that file.
    pub offset: u64,
    /// The log index concerned, when known.
    pub index: Option<u64>,
    /// What is wrong.
    pub kind: ProblemKind,
}

/// The kind of a [`Problem`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProblemKind {
    /// The newest segment ends in an unfinished write: the bytes from `valid_end` on
    /// are not a complete record and no later record shows that they had been
    /// synced. Cutting them loses nothing that was acknowledged; [`super::repair`]
    /// does it.
    TornTail {
        /// End of the last valid record (where the cut goes).
        valid_end: u64,
        /// The file's length.
        file_len: u64,
        /// Why the bytes at `valid_end` are not a record.
        cause: CorruptionKind,
    },
    /// The bytes are wrong (a checksum, a length, a field, a link between segments),
    /// and they are not a torn tail: acknowledged data may be affected. Never
    /// repaired automatically.
    Corrupt(CorruptionKind),
}

impl Problem {
    /// Whether this is a repairable torn tail.
    pub fn is_torn_tail(&self) -> bool {
        matches!(self.kind, ProblemKind::TornTail { .. })
    }

    /// The problem as a [`Corruption`] (file, offset, index, kind).
    pub fn to_corruption(&self) -> Corruption {
        let kind = match &self.kind {
            ProblemKind::TornTail { cause, .. } => cause.clone(),
            ProblemKind::Corrupt(k) => k.clone(),
        };
        Corruption {
            file: self.path.clone(),
            offset: self.offset,
            zxid: None,
            index: self.index,
            chunk: None,
            kind,
        }
    }

    /// The matching error.
    pub fn into_error(self) -> WalError {
        if self.is_torn_tail() {
            WalError::TornTail(self)
        } else {
            WalError::Corrupt(self.to_corruption())
        }
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: byte {}", self.path.display(), self.offset)?;
        if let Some(i) = self.index {
            write!(f, " (index {i})")?;
        }
        match &self.kind {
            ProblemKind::TornTail { valid_end, file_len, cause } => write!(
                f,
                ": torn tail ({cause}); valid records end at byte {valid_end} of {file_len}"
            ),
            ProblemKind::Corrupt(k) => write!(f, ": {k}"),
        }
    }
}

/// Where a valid record is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RecordLoc {
    /// Offset of the record header in the segment.
    pub offset: u64,
    /// Index of the first entry.
    pub first_index: u64,
    /// Number of entries.
    pub count: u32,
    /// Term of the last entry.
    pub term: u64,
    /// Stored payload length.
    pub stored_len: u32,
    /// Raw payload length.
    pub raw_len: u32,
    /// Record flags.
    pub flags: u16,
}

impl RecordLoc {
    pub(crate) fn last_index(&self) -> u64 {
        self.first_index + u64::from(self.count) - 1
    }

    pub(crate) fn end(&self) -> u64 {
        self.offset + align_up(RECORD_HEADER_LEN as u64 + u64::from(self.stored_len))
    }

    pub(crate) fn contains(&self, index: u64) -> bool {
        index >= self.first_index && index <= self.last_index()
    }
}

/// How a segment's records end.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Tail {
    /// The records end at the end of the file, or only zeros follow.
    Clean,
    /// A bad spot at `at`; classified as torn tail or corruption by the caller's
    /// position (newest or not) and the durable marks.
    Bad {
        /// Offset of the bad record (the end of the valid ones).
        at: u64,
        /// First non-zero byte at or after `at`.
        first_bad: u64,
        /// Why it is bad.
        kind: CorruptionKind,
        /// A later valid record proves the bad spot had been synced.
        synced_later: bool,
    },
}

/// The bytes of a file, mapped or read.
pub(crate) type Bytes = Arc<dyn AsRef<[u8]> + Send + Sync>;

/// Maps a file, or reads it whole when the file system cannot map (after checking
/// its length against `len_max`).
pub(crate) fn file_bytes(file: &Arc<dyn File>, path: &Path, len_max: u64) -> Result<Bytes> {
    let len = file.len().map_err(|e| WalError::io(path, e))?;
    if len > len_max {
        return Err(WalError::Corrupt(Corruption::new(
            path,
            0,
            CorruptionKind::LengthOutOfRange {
                len: i64::try_from(len).unwrap_or(i64::MAX),
                max: len_max,
            },
        )));
    }
    if let Some(m) = file.map().map_err(|e| WalError::io(path, e))? {
        return Ok(m);
    }
    let n =
        usize::try_from(len).map_err(|_| WalError::io(path, io::Error::other("file too large")))?;
    let mut buf = vec![0u8; n];
    file.read_exact_at(&mut buf, 0).map_err(|e| WalError::io(path, e))?;
    Ok(Arc::new(buf))
}

/// The result of scanning one segment file.
#[derive(Debug)]
pub(crate) struct SegmentScan {
    pub path: PathBuf,
    /// Sequence number from the file name.
    pub seq: u64,
    pub file_len: u64,
    /// The header and its CRC, or where and why it is bad.
    pub header: std::result::Result<(SegmentHeader, u32), (u64, CorruptionKind)>,
    pub records: Vec<RecordLoc>,
    /// End of the last valid record (or of the header).
    pub data_end: u64,
    pub tail: Tail,
    /// Problems inside records found by a deep scan (decompression, entry tables),
    /// which do not stop the scan because the CRC matched.
    pub deep_problems: Vec<Problem>,
}

impl SegmentScan {
    /// Index of the first entry (from the header).
    pub fn first_index(&self) -> Option<u64> {
        self.header.as_ref().ok().map(|(h, _)| h.first_index)
    }

    /// Index of the last entry, if the segment has any.
    pub fn last_index(&self) -> Option<u64> {
        self.records.last().map(RecordLoc::last_index)
    }

    /// Index the entry after this segment's last one has: `first_index` if empty.
    pub fn next_index(&self) -> Option<u64> {
        match self.records.last() {
            Some(r) => Some(r.last_index() + 1),
            None => self.first_index(),
        }
    }

    /// Term of the last entry, or the header's link term if empty.
    pub fn last_term(&self) -> Option<u64> {
        match self.records.last() {
            Some(r) => Some(r.term),
            None => self.header.as_ref().ok().map(|(h, _)| h.prev_term),
        }
    }

    /// Number of entries.
    pub fn entry_count(&self) -> u64 {
        self.records.iter().map(|r| u64::from(r.count)).sum()
    }
}

/// Scans the records of a segment held in `bytes`. `deep` also decompresses every
/// compressed record and checks every entry table.
pub(crate) fn scan_segment(path: &Path, seq: u64, bytes: &[u8], deep: bool) -> SegmentScan {
    let file_len = bytes.len() as u64;
    let mut scan = SegmentScan {
        path: path.to_path_buf(),
        seq,
        file_len,
        header: SegmentHeader::decode(bytes),
        records: Vec::new(),
        data_end: 0,
        tail: Tail::Clean,
        deep_problems: Vec::new(),
    };
    let Ok((header, _)) = scan.header else {
        return scan;
    };
    let mut pos = SEGMENT_HEADER_LEN;
    let mut expected = header.first_index;
    let bad = loop {
        let rest = &bytes[pos..];
        if rest.is_empty() {
            break None;
        }
        if rest.len() < RECORD_HEADER_LEN {
            if all_zero(rest) {
                break None;
            }
            break Some(CorruptionKind::Truncated {
                needed: RECORD_HEADER_LEN as u64,
                available: rest.len() as u64,
            });
        }
        let hb = &rest[..RECORD_HEADER_LEN];
        if all_zero(hb) {
            if all_zero(rest) {
                break None;
            }
            break Some(CorruptionKind::NonZeroReserved {
                field: "bytes after a zero record header (zero padding)",
            });
        }
        let h = RecordHeader::decode_unchecked(hb);
        if let Err((_, kind)) = h.check_fields(hb) {
            break Some(kind);
        }
        let span = match usize::try_from(h.span()) {
            Ok(span) if span <= rest.len() => span,
            _ => {
                break Some(CorruptionKind::Truncated {
                    needed: h.span(),
                    available: rest.len() as u64,
                })
            }
        };
        // `span <= rest.len()`, so these fit in usize.
        let stored_end = RECORD_HEADER_LEN + h.stored_len as usize;
        let payload = &rest[RECORD_HEADER_LEN..stored_end];
        let computed = record_crc(hb, payload);
        if computed != h.crc {
            break Some(CorruptionKind::ChecksumMismatch {
                stored: u64::from(h.crc),
                computed: u64::from(computed),
            });
        }
        if h.first_index != expected {
            break Some(CorruptionKind::sequence_break(format!(
                "record has index {}, expected {expected}",
                h.first_index
            )));
        }
        if !all_zero(&rest[stored_end..span]) {
            break Some(CorruptionKind::NonZeroReserved { field: "padding bytes after a record" });
        }
        if deep {
            if let Err((off, kind)) = check_payload(&h, payload) {
                scan.deep_problems.push(Problem {
                    path: path.to_path_buf(),
                    offset: (pos + RECORD_HEADER_LEN) as u64 + off,
                    index: Some(h.first_index),
                    kind: ProblemKind::Corrupt(kind),
                });
            }
        }
        scan.records.push(RecordLoc {
            offset: pos as u64,
            first_index: h.first_index,
            count: h.count,
            term: h.term,
            stored_len: h.stored_len,
            raw_len: h.raw_len,
            flags: h.flags,
        });
        expected = h.last_index() + 1;
        pos += span;
    };
    scan.data_end = pos as u64;
    if let Some(kind) = bad {
        let first_bad = pos + first_non_zero(&bytes[pos..]).unwrap_or(0);
        scan.tail = Tail::Bad {
            at: pos as u64,
            first_bad: first_bad as u64,
            kind,
            synced_later: synced_record_after(bytes, pos),
        };
    }
    scan
}

/// Whether a valid record lies after `at` whose durable mark says the bytes at `at`
/// had already been synced when it was written. Only then is a bad spot at `at`
/// proven to be damage to synced data rather than a torn, never-acknowledged write.
fn synced_record_after(bytes: &[u8], at: usize) -> bool {
    let mut pos = (at + RECORD_ALIGN) & !(RECORD_ALIGN - 1);
    while pos + RECORD_HEADER_LEN <= bytes.len() {
        let hb = &bytes[pos..pos + RECORD_HEADER_LEN];
        let synced = format::get_u32(hb, REC_SYNCED_OFFSET) as usize;
        // Cheap filters first: a mark past `at` but not past itself, a sane count.
        if synced > at && synced <= pos && format::get_u32(hb, REC_COUNT_OFFSET) != 0 {
            let h = RecordHeader::decode_unchecked(hb);
            if h.check_fields(hb).is_ok() && h.span() <= (bytes.len() - pos) as u64 {
                let end = pos + RECORD_HEADER_LEN + h.stored_len as usize;
                if record_crc(hb, &bytes[pos + RECORD_HEADER_LEN..end]) == h.crc {
                    return true;
                }
            }
        }
        pos += RECORD_ALIGN;
    }
    false
}

/// Deep check of a record payload: decompress (bounded by the raw length from the
/// header) and walk the entry table.
pub(crate) fn check_payload(
    h: &RecordHeader,
    payload: &[u8],
) -> std::result::Result<(), (u64, CorruptionKind)> {
    let raw = decode_payload(h.flags, h.raw_len, payload)?;
    entry_slots(&raw, h.count).map(|_| ())
}

/// The raw payload of a record: the stored bytes, or their decompression. The
/// output buffer is allocated from `raw_len`, which was checked against
/// `RECORD_LEN_MAX`.
pub(crate) fn decode_payload(
    flags: u16,
    raw_len: u32,
    stored: &[u8],
) -> std::result::Result<std::borrow::Cow<'_, [u8]>, (u64, CorruptionKind)> {
    if flags & FLAG_ZSTD == 0 {
        return Ok(std::borrow::Cow::Borrowed(stored));
    }
    let raw_len = raw_len as usize;
    let mut out = vec![0u8; raw_len];
    match zstd::bulk::decompress_to_buffer(stored, &mut out[..]) {
        Ok(n) if n == raw_len => Ok(std::borrow::Cow::Owned(out)),
        Ok(n) => Err((
            0,
            CorruptionKind::Decompression(format!("{n} bytes decompressed, header says {raw_len}")),
        )),
        Err(e) => Err((0, CorruptionKind::Decompression(e.to_string()))),
    }
}

/// A segment file with its bytes and scan.
pub(crate) struct ScannedSegment {
    pub scan: SegmentScan,
    pub bytes: Bytes,
}

impl std::fmt::Debug for ScannedSegment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScannedSegment").field("scan", &self.scan).finish_non_exhaustive()
    }
}

/// Everything read from a log directory.
#[derive(Debug)]
pub(crate) struct Analysis {
    pub dir: PathBuf,
    /// The metadata file, if present and valid.
    pub meta: Option<MetaRecord>,
    /// Whether the metadata file exists.
    pub meta_present: bool,
    /// Segments in sequence order.
    pub segments: Vec<ScannedSegment>,
    /// Segments (by position in `segments`) whose entries are all purged.
    pub purged_leftovers: Vec<usize>,
    /// Temporary files.
    pub temp_files: Vec<PathBuf>,
    /// Every problem, in file order.
    pub problems: Vec<Problem>,
}

impl Analysis {
    /// The purge marker (0 if none).
    pub fn purged(&self) -> u64 {
        self.meta.map_or(0, |m| m.purged)
    }
}

/// Reads and checks a log directory. Changes nothing.
pub(crate) fn analyze(fs: &dyn FileSystem, dir: &Path, deep: bool) -> Result<Analysis> {
    let listing = fs.read_dir(dir).map_err(|e| WalError::io(dir, e))?;
    let mut a = Analysis {
        dir: dir.to_path_buf(),
        meta: None,
        meta_present: false,
        segments: Vec::new(),
        purged_leftovers: Vec::new(),
        temp_files: Vec::new(),
        problems: Vec::new(),
    };
    let mut seg_names = Vec::new();
    for e in &listing {
        if e.is_dir {
            continue;
        }
        if e.name.ends_with(TEMP_SUFFIX) {
            a.temp_files.push(dir.join(&e.name));
        } else if e.name == META_FILE_NAME {
            a.meta_present = true;
        } else if let Some(seq) = parse_segment_file_name(&e.name) {
            seg_names.push((seq, dir.join(&e.name)));
        }
    }
    seg_names.sort_unstable();

    let meta_path = dir.join(META_FILE_NAME);
    if a.meta_present {
        match read_meta(fs, &meta_path)? {
            Ok(m) => a.meta = Some(m),
            Err(p) => a.problems.push(p),
        }
    } else if !seg_names.is_empty() {
        a.problems.push(Problem {
            path: meta_path.clone(),
            offset: 0,
            index: None,
            kind: ProblemKind::Corrupt(CorruptionKind::inconsistent(
                "segment files without a metadata file (the metadata file is created first)",
            )),
        });
    }

    for (seq, path) in seg_names {
        let file = fs.open(&path, OpenMode::Read).map_err(|e| WalError::io(&path, e))?;
        let bytes = file_bytes(&file, &path, SEGMENT_FILE_LEN_MAX)?;
        let scan = scan_segment(&path, seq, (*bytes).as_ref(), deep);
        a.segments.push(ScannedSegment { scan, bytes });
    }
    check_segments(&mut a);
    Ok(a)
}

/// Reads the metadata file: `Ok(Err(problem))` if its bytes are bad.
pub(crate) fn read_meta(
    fs: &dyn FileSystem,
    path: &Path,
) -> Result<std::result::Result<MetaRecord, Problem>> {
    let md = fs.metadata(path).map_err(|e| WalError::io(path, e))?;
    if md.len != META_LEN as u64 {
        return Ok(Err(Problem {
            path: path.to_path_buf(),
            offset: 0,
            index: None,
            kind: ProblemKind::Corrupt(CorruptionKind::LengthOutOfRange {
                len: i64::try_from(md.len).unwrap_or(i64::MAX),
                max: META_LEN as u64,
            }),
        }));
    }
    let b = fs.read_all(path).map_err(|e| WalError::io(path, e))?;
    Ok(MetaRecord::decode(&b).map_err(|(offset, kind)| Problem {
        path: path.to_path_buf(),
        offset,
        index: None,
        kind: ProblemKind::Corrupt(kind),
    }))
}

/// Whether a segment holds only purged entries (and can go).
pub(crate) fn is_purged_segment(first_index: u64, last_index: Option<u64>, purged: u64) -> bool {
    match last_index {
        Some(last) => last <= purged,
        None => first_index <= purged,
    }
}

/// Per-segment problems (header, tail) and the links between segments.
fn check_segments(a: &mut Analysis) {
    let purged = a.purged();
    let n = a.segments.len();
    let log_id = a.meta.map(|m| m.log_id);
    // Purge leftovers: segments before the first one that holds an unpurged entry.
    // (A purge writes the marker first, then unlinks oldest first.)
    for (i, s) in a.segments.iter().enumerate() {
        let scan = &s.scan;
        match scan.first_index() {
            Some(first) if is_purged_segment(first, scan.last_index(), purged) && i + 1 < n => {
                a.purged_leftovers.push(i);
            }
            Some(first) if i + 1 == n && is_purged_segment(first, scan.last_index(), purged) => {
                if matches!(scan.tail, Tail::Clean) {
                    a.purged_leftovers.push(i);
                }
                break;
            }
            _ => break,
        }
    }
    let live_start = a.purged_leftovers.len();
    let durable = a.meta.and_then(|m| m.durable);
    let mut prev: Option<&SegmentScan> = None;
    for (i, s) in a.segments.iter().enumerate() {
        let scan = &s.scan;
        let newest = i + 1 == n;
        let problem = |offset: u64, index: Option<u64>, kind: CorruptionKind| Problem {
            path: scan.path.clone(),
            offset,
            index,
            kind: ProblemKind::Corrupt(kind),
        };
        let header = match &scan.header {
            Ok((h, _)) => *h,
            Err((off, kind)) => {
                a.problems.push(problem(*off, None, kind.clone()));
                prev = None;
                continue;
            }
        };
        if header.seq != scan.seq {
            a.problems.push(problem(
                format::SEG_SEQ_OFFSET as u64,
                None,
                CorruptionKind::inconsistent(format!(
                    "header sequence number {} does not match the file name ({})",
                    header.seq, scan.seq
                )),
            ));
        }
        if let Some(id) = log_id {
            if header.log_id != id {
                a.problems.push(problem(
                    format::SEG_LOG_ID_OFFSET as u64,
                    None,
                    CorruptionKind::inconsistent(format!(
                        "segment belongs to log {:#018x}, this log is {id:#018x}",
                        header.log_id
                    )),
                ));
            }
        }
        if i >= live_start {
            if let Some(p) = prev {
                check_link(p, scan, &header, &mut a.problems);
            } else if i == live_start && header.first_index > purged + 1 {
                a.problems.push(problem(
                    format::SEG_FIRST_INDEX_OFFSET as u64,
                    Some(purged + 1),
                    CorruptionKind::sequence_break(format!(
                        "first segment starts at index {}, but only indexes up to {purged} are \
                         purged: entries are missing",
                        header.first_index
                    )),
                ));
            }
        }
        // The metadata file's durable mark: bytes of this segment the writer recorded
        // as durable. Records that end before it, or a bad spot before it, are damage.
        let marked_end = durable.filter(|d| d.seq == scan.seq).map(|d| d.end);
        let below_mark = |at: u64| marked_end.is_some_and(|end| at < end);
        if matches!(scan.tail, Tail::Clean) && below_mark(scan.data_end) {
            a.problems.push(problem(
                scan.data_end,
                scan.next_index(),
                CorruptionKind::inconsistent(format!(
                    "the records end at byte {}, but the metadata file records bytes up to {} \
                     of this segment as durable: durable records are missing",
                    scan.data_end,
                    marked_end.unwrap_or(0)
                )),
            ));
        }
        if let Tail::Bad { at, first_bad, kind, synced_later } = &scan.tail {
            let index = scan.next_index();
            if below_mark(*at) {
                a.problems.push(problem(
                    *at,
                    index,
                    CorruptionKind::inside(
                        "bytes the metadata file records as durable",
                        kind.clone(),
                    ),
                ));
            } else if newest && !synced_later {
                a.problems.push(Problem {
                    path: scan.path.clone(),
                    offset: *first_bad,
                    index,
                    kind: ProblemKind::TornTail {
                        valid_end: *at,
                        file_len: scan.file_len,
                        cause: kind.clone(),
                    },
                });
            } else {
                let kind = if newest {
                    CorruptionKind::inside(
                        "bytes a later record shows had been synced",
                        kind.clone(),
                    )
                } else {
                    kind.clone()
                };
                a.problems.push(problem(*at, index, kind));
            }
        }
        a.problems.extend(scan.deep_problems.iter().cloned());
        prev = Some(scan);
    }
}

/// Checks that `next` continues `prev`.
fn check_link(prev: &SegmentScan, next: &SegmentScan, h: &SegmentHeader, out: &mut Vec<Problem>) {
    let mut bad = |offset: usize, msg: String| {
        out.push(Problem {
            path: next.path.clone(),
            offset: offset as u64,
            index: Some(h.first_index),
            kind: ProblemKind::Corrupt(CorruptionKind::sequence_break(msg)),
        });
    };
    if next.seq != prev.seq + 1 {
        bad(
            format::SEG_SEQ_OFFSET,
            format!("segment {} follows segment {}: a segment is missing", next.seq, prev.seq),
        );
        return;
    }
    let Ok((_, prev_crc)) = prev.header else { return };
    if h.prev_header_crc != prev_crc {
        bad(
            format::SEG_PREV_CRC_OFFSET,
            format!(
                "link to the previous segment's header is {:#010x}, that header's CRC is \
                 {prev_crc:#010x}: stale or misplaced segment",
                h.prev_header_crc
            ),
        );
        return;
    }
    if !matches!(prev.tail, Tail::Clean) {
        // The previous segment's records end early (reported there); its last index
        // and term are unknown, so continuity cannot be checked.
        return;
    }
    if let Some(expected) = prev.next_index() {
        if h.first_index != expected {
            bad(
                format::SEG_FIRST_INDEX_OFFSET,
                format!(
                    "segment starts at index {}, but the previous segment ends before index \
                     {expected}",
                    h.first_index
                ),
            );
            return;
        }
    }
    if let Some(t) = prev.last_term() {
        if h.prev_term != t {
            bad(
                format::SEG_PREV_TERM_OFFSET,
                format!(
                    "segment says entry {} has term {}, the previous segment says {t}: stale or \
                     misplaced segment",
                    h.first_index.saturating_sub(1),
                    h.prev_term
                ),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::cast_possible_truncation)]

    use super::*;
    use crate::native::format::push_entry;

    fn record(first: u64, term: u64, synced: u32, payloads: &[&[u8]]) -> Vec<u8> {
        let mut raw = Vec::new();
        for p in payloads {
            push_entry(&mut raw, term, p);
        }
        let h = RecordHeader {
            crc: 0,
            stored_len: raw.len() as u32,
            raw_len: raw.len() as u32,
            count: payloads.len() as u32,
            first_index: first,
            term,
            synced,
            flags: 0,
        };
        let mut out = vec![0u8; RECORD_HEADER_LEN];
        h.encode_into(&mut out, &raw);
        out.extend_from_slice(&raw);
        out.resize(align_up(out.len() as u64) as usize, 0);
        out
    }

    fn segment(records: &[Vec<u8>], zeros: usize) -> Vec<u8> {
        let h =
            SegmentHeader { log_id: 1, seq: 1, first_index: 1, prev_term: 0, prev_header_crc: 0 };
        let mut b = h.encode().to_vec();
        for r in records {
            b.extend_from_slice(r);
        }
        b.resize(b.len() + zeros, 0);
        b
    }

    #[test]
    fn clean_segment_with_zero_tail() {
        let r1 = record(1, 1, 64, &[b"a", b"bb"]);
        let r2 = record(3, 2, 64, &[b"ccc"]);
        let b = segment(&[r1.clone(), r2], 100);
        let s = scan_segment(Path::new("/x"), 1, &b, true);
        assert_eq!(s.tail, Tail::Clean);
        assert_eq!(s.records.len(), 2);
        assert_eq!(s.last_index(), Some(3));
        assert_eq!(s.last_term(), Some(2));
        assert_eq!(s.data_end, 64 + r1.len() as u64 + align_up(40 + 15));
        assert!(s.deep_problems.is_empty());
    }

    #[test]
    fn torn_record_without_synced_evidence_is_torn() {
        let r1 = record(1, 1, 64, &[b"a"]);
        let r2 = record(2, 1, 64, &[b"bbbbbbbb"]);
        let r3 = record(3, 1, 64, &[b"c"]);
        let mut b = segment(&[r1.clone(), r2, r3], 64);
        let at = 64 + r1.len();
        b[at + 45] ^= 1;
        let s = scan_segment(Path::new("/x"), 1, &b, false);
        match s.tail {
            Tail::Bad { at: got, synced_later, .. } => {
                assert_eq!(got, at as u64);
                assert!(!synced_later, "r3's mark (64) does not cover r2");
            }
            Tail::Clean => panic!("expected a bad tail"),
        }
    }

    #[test]
    fn bad_record_with_synced_evidence_is_corruption() {
        let r1 = record(1, 1, 64, &[b"a"]);
        let at = 64 + r1.len();
        let r2 = record(2, 1, at as u32, &[b"bbbbbbbb"]);
        let r2_end = at + r2.len();
        let r3 = record(3, 1, r2_end as u32, &[b"c"]);
        let mut b = segment(&[r1, r2, r3], 64);
        b[at + 45] ^= 1;
        let s = scan_segment(Path::new("/x"), 1, &b, false);
        assert!(matches!(s.tail, Tail::Bad { synced_later: true, .. }));
    }

    #[test]
    fn garbage_after_zeros_is_bad() {
        let r1 = record(1, 1, 64, &[b"a"]);
        let mut b = segment(std::slice::from_ref(&r1), 200);
        let n = b.len();
        b[n - 3] = 7;
        let s = scan_segment(Path::new("/x"), 1, &b, false);
        match s.tail {
            Tail::Bad { at, first_bad, .. } => {
                assert_eq!(at, 64 + r1.len() as u64);
                assert_eq!(first_bad, n as u64 - 3);
            }
            Tail::Clean => panic!("expected a bad tail"),
        }
    }
}
