//! Offline functions for the CLI: inspect, verify, repair, list entries.
//!
//! All of them read through [`analyze`], the same code [`NativeWal::open`] uses, so
//! that `verify` reports exactly what `open` would refuse and `repair` cuts exactly
//! what `open` with [`RecoveryMode::TolerateTornTail`] would cut.
//!
//! [`NativeWal::open`]: super::NativeWal::open
//! [`RecoveryMode::TolerateTornTail`]: super::RecoveryMode::TolerateTornTail

use std::collections::VecDeque;
use std::path::{Path, PathBuf};

use keeperkit_model::CorruptionKind;
use keeperkit_vfs::{FileSystem, OpenMode};

use super::format::{SegmentHeader, FLAG_ZSTD, RECORD_HEADER_LEN};
use super::scan::{analyze, decode_payload, Analysis, Problem, ProblemKind, RecordLoc};
use super::wal::cut_torn_tail;
use super::{Entry, Result, WalError};

/// The metadata file's contents.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MetaInfo {
    /// Random id of the log.
    pub log_id: u64,
    /// Persisted term.
    pub term: u64,
    /// Persisted vote.
    pub vote: Option<u64>,
    /// Every index up to and including this one is purged.
    pub purged: u64,
}

/// The health of one segment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SegmentStatus {
    /// Every record checks out and the segment links to its predecessor.
    Ok,
    /// The newest segment ends in a torn write at this offset (repairable).
    TornTail {
        /// End of the last valid record.
        valid_end: u64,
    },
    /// Corruption at this offset (see the problems for the details).
    Corrupt {
        /// Offset of the first problem.
        offset: u64,
    },
}

/// What one segment file holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentInfo {
    /// The file.
    pub path: PathBuf,
    /// Sequence number from the file name.
    pub seq: u64,
    /// File length (preallocated zeros included).
    pub file_len: u64,
    /// The decoded header, if valid.
    pub header: Option<SegmentHeader>,
    /// Index of the first entry (from the header).
    pub first_index: Option<u64>,
    /// Index of the last valid entry.
    pub last_index: Option<u64>,
    /// Valid records (append batches).
    pub records: u64,
    /// Entries in the valid records.
    pub entries: u64,
    /// Valid records stored zstd-compressed.
    pub compressed_records: u64,
    /// End of the last valid record.
    pub data_end: u64,
    /// Whether all its entries are purged (a leftover of an interrupted purge).
    pub purged: bool,
    /// Health.
    pub status: SegmentStatus,
}

/// What a native log directory holds: [`inspect`]'s answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NativeLogInfo {
    /// The directory.
    pub dir: PathBuf,
    /// The metadata file, if valid.
    pub meta: Option<MetaInfo>,
    /// Segments in sequence order.
    pub segments: Vec<SegmentInfo>,
    /// First index that is served (above the purge marker), if any.
    pub first_index: Option<u64>,
    /// Last valid index, if any.
    pub last_index: Option<u64>,
    /// Temporary files left by a crash (removed by the next open).
    pub temp_files: Vec<PathBuf>,
    /// Every problem found (the same list [`verify`] returns, without the deep
    /// payload checks).
    pub problems: Vec<Problem>,
}

fn segment_status(path: &Path, problems: &[Problem]) -> SegmentStatus {
    match problems.iter().find(|p| p.path == path) {
        None => SegmentStatus::Ok,
        Some(Problem { kind: ProblemKind::TornTail { valid_end, .. }, .. }) => {
            SegmentStatus::TornTail { valid_end: *valid_end }
        }
        Some(p) => SegmentStatus::Corrupt { offset: p.offset },
    }
}

fn served_range(a: &Analysis) -> (Option<u64>, Option<u64>) {
    let purged = a.purged();
    let live: Vec<_> = a
        .segments
        .iter()
        .enumerate()
        .filter(|(i, _)| !a.purged_leftovers.contains(i))
        .map(|(_, s)| &s.scan)
        .collect();
    let first = live.first().and_then(|s| s.first_index()).map(|f| f.max(purged + 1));
    let last = live.iter().rev().find_map(|s| s.last_index());
    match (first, last) {
        (Some(f), Some(l)) if f <= l => (Some(f), Some(l)),
        _ => (None, None),
    }
}

/// Describes a native log directory: metadata, segments, index ranges, problems.
/// Reads only.
pub fn inspect(fs: &dyn FileSystem, dir: &Path) -> Result<NativeLogInfo> {
    let a = analyze(fs, dir, false)?;
    Ok(info_from(&a))
}

fn info_from(a: &Analysis) -> NativeLogInfo {
    let segments = a
        .segments
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let sc = &s.scan;
            SegmentInfo {
                path: sc.path.clone(),
                seq: sc.seq,
                file_len: sc.file_len,
                header: sc.header.as_ref().ok().map(|(h, _)| *h),
                first_index: sc.first_index(),
                last_index: sc.last_index(),
                records: sc.records.len() as u64,
                entries: sc.entry_count(),
                compressed_records: sc.records.iter().filter(|r| r.flags & FLAG_ZSTD != 0).count()
                    as u64,
                data_end: sc.data_end,
                purged: a.purged_leftovers.contains(&i),
                status: segment_status(&sc.path, &a.problems),
            }
        })
        .collect();
    let (first_index, last_index) = served_range(a);
    NativeLogInfo {
        dir: a.dir.clone(),
        meta: a.meta.map(|m| MetaInfo {
            log_id: m.log_id,
            term: m.term,
            vote: m.vote,
            purged: m.purged,
        }),
        segments,
        first_index,
        last_index,
        temp_files: a.temp_files.clone(),
        problems: a.problems.clone(),
    }
}

/// Checks every CRC, every record's payload (decompressing and walking each entry
/// table), the padding, the segment headers and the links between segments, and
/// returns every problem (empty: the log is sound). Reads only.
pub fn verify(fs: &dyn FileSystem, dir: &Path) -> Result<Vec<Problem>> {
    Ok(analyze(fs, dir, true)?.problems)
}

/// One safe change [`repair`] makes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RepairAction {
    /// Cut the torn tail of the newest segment (after copying the whole segment into
    /// the backup directory).
    CutTornTail {
        /// The segment.
        path: PathBuf,
        /// Its length now.
        old_len: u64,
        /// Its length after the cut: the end of its last valid record.
        new_len: u64,
        /// First non-zero byte at or after the cut.
        first_bad_offset: u64,
        /// The last index that stays.
        last_good_index: Option<u64>,
        /// Why the bytes at the cut are not a record.
        cause: CorruptionKind,
    },
    /// Move a temporary file left by a crash into the backup directory.
    RemoveTempFile {
        /// The file.
        path: PathBuf,
    },
    /// Move a segment whose entries are all purged (left by a crash during a purge)
    /// into the backup directory.
    RemovePurgedSegment {
        /// The segment.
        path: PathBuf,
    },
}

impl std::fmt::Display for RepairAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RepairAction::CutTornTail {
                path, old_len, new_len, last_good_index, cause, ..
            } => {
                write!(
                    f,
                    "cut torn tail of {}: {old_len} -> {new_len} bytes ({cause})",
                    path.display()
                )?;
                match last_good_index {
                    Some(i) => write!(f, "; last index kept {i}"),
                    None => write!(f, "; the segment keeps no entry"),
                }
            }
            RepairAction::RemoveTempFile { path } => {
                write!(f, "move temporary file {} to the backup", path.display())
            }
            RepairAction::RemovePurgedSegment { path } => {
                write!(f, "move purged segment {} to the backup", path.display())
            }
        }
    }
}

/// What [`repair`] would do.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RepairPlan {
    /// Safe changes.
    pub actions: Vec<RepairAction>,
    /// Problems repair will not touch, each with the reason. If there is any,
    /// [`repair`] changes nothing at all.
    pub refused: Vec<(Problem, String)>,
}

/// What [`repair`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RepairReport {
    /// Changes made.
    pub performed: Vec<RepairAction>,
    /// Copies written into the backup directory.
    pub backups: Vec<PathBuf>,
    /// Problems refused (nothing was changed if this is not empty).
    pub refused: Vec<(Problem, String)>,
}

/// Plans a repair: only a torn tail of the newest segment, temp files and purged
/// leftovers are fixed; anything else is refused with an explanation. Reads only.
pub fn repair_plan(fs: &dyn FileSystem, dir: &Path) -> Result<RepairPlan> {
    let a = analyze(fs, dir, true)?;
    let mut plan = RepairPlan::default();
    for p in &a.problems {
        match &p.kind {
            ProblemKind::TornTail { valid_end, file_len, cause } => {
                let last_good_index = a
                    .segments
                    .iter()
                    .find(|s| s.scan.path == p.path)
                    .and_then(|s| s.scan.last_index())
                    .or_else(|| served_range(&a).1);
                plan.actions.push(RepairAction::CutTornTail {
                    path: p.path.clone(),
                    old_len: *file_len,
                    new_len: *valid_end,
                    first_bad_offset: p.offset,
                    last_good_index,
                    cause: cause.clone(),
                });
            }
            ProblemKind::Corrupt(_) => {
                plan.refused.push((
                    p.clone(),
                    "not a torn tail: these bytes were written and synced before (or sit \
                     between valid data), so cutting them could lose acknowledged entries; \
                     recomputing the checksum would serve bad bytes. Restore this segment \
                     from a replica or a backup."
                        .to_string(),
                ));
            }
        }
    }
    for t in &a.temp_files {
        plan.actions.push(RepairAction::RemoveTempFile { path: t.clone() });
    }
    for &i in &a.purged_leftovers {
        plan.actions
            .push(RepairAction::RemovePurgedSegment { path: a.segments[i].scan.path.clone() });
    }
    Ok(plan)
}

/// Copies `path` into `backup_dir` under a name that is not taken yet, durably.
fn backup_copy(fs: &dyn FileSystem, path: &Path, backup_dir: &Path) -> Result<PathBuf> {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let mut target = backup_dir.join(&name);
    let mut n = 1;
    while fs.exists(&target) {
        target = backup_dir.join(format!("{name}.{n}"));
        n += 1;
    }
    let src = fs.open(path, OpenMode::Read).map_err(|e| WalError::io(path, e))?;
    let dst = fs.open(&target, OpenMode::CreateNew).map_err(|e| WalError::io(&target, e))?;
    let len = src.len().map_err(|e| WalError::io(path, e))?;
    let mut buf = vec![0u8; 1 << 20];
    let mut off = 0u64;
    while off < len {
        let k = usize::try_from((len - off).min(buf.len() as u64)).unwrap_or(buf.len());
        src.read_exact_at(&mut buf[..k], off).map_err(|e| WalError::io(path, e))?;
        dst.write_all_at(&buf[..k], off).map_err(|e| WalError::io(&target, e))?;
        off += k as u64;
    }
    dst.sync_all().map_err(|e| WalError::io(&target, e))?;
    fs.sync_dir(backup_dir).map_err(|e| WalError::io(backup_dir, e))?;
    Ok(target)
}

/// Repairs what [`repair_plan`] says is safe, after copying every file it changes or
/// removes into `backup_dir` (created if missing) and fsyncing the copies. Never
/// recomputes a checksum. If the plan refuses anything, nothing is changed and the
/// report lists the refusals.
pub fn repair(fs: &dyn FileSystem, dir: &Path, backup_dir: &Path) -> Result<RepairReport> {
    let plan = repair_plan(fs, dir)?;
    let mut report = RepairReport { refused: plan.refused, ..RepairReport::default() };
    if !report.refused.is_empty() || plan.actions.is_empty() {
        return Ok(report);
    }
    if !fs.exists(backup_dir) {
        fs.create_dir_all(backup_dir).map_err(|e| WalError::io(backup_dir, e))?;
        if let Some(parent) = backup_dir.parent() {
            fs.sync_dir(parent).map_err(|e| WalError::io(parent, e))?;
        }
    }
    let mut removed = false;
    for action in plan.actions {
        match &action {
            RepairAction::CutTornTail { path, new_len, .. } => {
                report.backups.push(backup_copy(fs, path, backup_dir)?);
                cut_torn_tail(fs, path, *new_len)?;
            }
            RepairAction::RemoveTempFile { path } | RepairAction::RemovePurgedSegment { path } => {
                report.backups.push(backup_copy(fs, path, backup_dir)?);
                fs.remove_file(path).map_err(|e| WalError::io(path, e))?;
                removed = true;
            }
        }
        report.performed.push(action);
    }
    if removed {
        fs.sync_dir(dir).map_err(|e| WalError::io(dir, e))?;
    }
    Ok(report)
}

/// Iterator over the entries of a log directory, in index order; see
/// [`iter_entries`].
pub struct EntryIter {
    analysis: Analysis,
    /// Segments still to visit (positions in `analysis.segments`).
    seg: usize,
    rec: usize,
    from: u64,
    to: u64,
    /// The first problem: entries at or after it are not served.
    stop: Option<(usize, u64, Problem)>,
    pending: VecDeque<Entry>,
    done: bool,
}

impl std::fmt::Debug for EntryIter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EntryIter").field("seg", &self.seg).field("rec", &self.rec).finish()
    }
}

/// Lists the entries with indexes in `from..=to` of the log in `dir`, reading only.
/// Entries before the first problem are served; the problem itself is then yielded
/// as an error (a torn tail as [`WalError::TornTail`], anything else as
/// [`WalError::Corrupt`]) and the iteration ends: nothing past a gap or a bad
/// record is ever served.
pub fn iter_entries(fs: &dyn FileSystem, dir: &Path, from: u64, to: u64) -> Result<EntryIter> {
    let analysis = analyze(fs, dir, false)?;
    let purged = analysis.purged();
    let stop = analysis.problems.first().map(|p| {
        let seg = analysis.segments.iter().position(|s| s.scan.path == p.path).unwrap_or(0);
        let offset = match &p.kind {
            ProblemKind::TornTail { valid_end, .. } => *valid_end,
            ProblemKind::Corrupt(_) => p.offset,
        };
        (seg, offset, p.clone())
    });
    let seg = analysis.purged_leftovers.len();
    Ok(EntryIter {
        analysis,
        seg,
        rec: 0,
        from: from.max(purged + 1),
        to,
        stop,
        pending: VecDeque::new(),
        done: false,
    })
}

impl EntryIter {
    fn fail(&mut self) -> Option<Result<Entry>> {
        self.done = true;
        self.stop.take().map(|(_, _, p)| Err(p.into_error()))
    }
}

impl Iterator for EntryIter {
    type Item = Result<Entry>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(e) = self.pending.pop_front() {
                return Some(Ok(e));
            }
            if self.done {
                return None;
            }
            let Some(s) = self.analysis.segments.get(self.seg) else {
                return self.fail();
            };
            let Some(&rec) = s.scan.records.get(self.rec) else {
                self.seg += 1;
                self.rec = 0;
                continue;
            };
            if let Some((sseg, soff, _)) = &self.stop {
                if self.seg > *sseg || (self.seg == *sseg && rec.offset >= *soff) {
                    return self.fail();
                }
            }
            self.rec += 1;
            if rec.first_index > self.to {
                self.done = true;
                return None;
            }
            if rec.last_index() < self.from {
                continue;
            }
            match decode_record(&s.scan.path, (*s.bytes).as_ref(), &rec) {
                Ok(entries) => self.pending.extend(
                    entries.into_iter().filter(|e| e.index >= self.from && e.index <= self.to),
                ),
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            }
        }
    }
}

/// Decodes a record that the scan already checked (CRC included).
fn decode_record(path: &Path, bytes: &[u8], rec: &RecordLoc) -> Result<Vec<Entry>> {
    let start = usize::try_from(rec.offset).unwrap_or(usize::MAX);
    let corrupt = |off: u64, kind| {
        WalError::Corrupt(
            keeperkit_model::Corruption::new(path, off, kind).with_index(rec.first_index),
        )
    };
    let payload_start = start.saturating_add(RECORD_HEADER_LEN);
    let payload = bytes
        .get(payload_start..payload_start.saturating_add(rec.stored_len as usize))
        .ok_or_else(|| {
        corrupt(
            rec.offset,
            CorruptionKind::Truncated { needed: u64::from(rec.stored_len), available: 0 },
        )
    })?;
    let base = rec.offset + RECORD_HEADER_LEN as u64;
    let raw =
        decode_payload(rec.flags, rec.raw_len, payload).map_err(|(o, k)| corrupt(base + o, k))?;
    let slots =
        super::format::entry_slots(&raw, rec.count).map_err(|(o, k)| corrupt(base + o, k))?;
    Ok(slots
        .iter()
        .enumerate()
        .map(|(i, s)| Entry {
            index: rec.first_index + i as u64,
            term: s.term,
            payload: raw[s.start..s.end].to_vec(),
        })
        .collect())
}
