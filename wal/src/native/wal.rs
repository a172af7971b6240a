//! The writer and reader of a live native log.

use std::borrow::Cow;
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

use keeperkit_model::{Corruption, CorruptionKind};
use keeperkit_vfs::{File, FileSystem, OpenMode};

use super::format::{
    align_up, entry_slots, push_entry, record_crc, DurableMark, MetaRecord, RecordHeader,
    SegmentHeader, ENTRY_HEADER_LEN, ENTRY_LEN_MAX, FLAG_ZSTD, RECORD_ALIGN, RECORD_ENTRIES_MAX,
    RECORD_HEADER_LEN, RECORD_LEN_MAX, SEGMENT_HEADER_LEN, SEGMENT_LEN_MAX, SEGMENT_LEN_MIN,
};
use super::scan::{analyze, decode_payload, Bytes, RecordLoc, ScannedSegment};
use super::{
    segment_file_name, Entry, EntryRef, HardState, NativeWalOptions, RecoveryMode, RecoveryReport,
    Result, SyncPolicy, TornTailCut, WalError, META_FILE_NAME, TEMP_SUFFIX,
};

/// How far ahead of the last record the active segment is zero-filled (see
/// `write_batch`).
const ZERO_AHEAD_LEN: u64 = 1 << 20;

/// Under `SyncPolicy::Never`, appended records are collected up to this many bytes
/// and handed to the OS in one write.
const WRITE_BUFFER_LEN: usize = 256 << 10;

/// A batch encoded outside the writer lock.
struct Encoded {
    /// Header placeholder, payload, zero padding.
    buf: Vec<u8>,
    stored_len: u32,
    raw_len: u32,
    count: u32,
    flags: u16,
    last_term: u64,
    /// CRC state over the payload.
    payload_crc: crc32fast::Hasher,
}

/// Writes `len` zero bytes at `offset`.
fn write_zeros(f: &dyn File, offset: u64, len: u64) -> std::io::Result<()> {
    static ZEROS: [u8; 64 << 10] = [0; 64 << 10];
    let mut off = offset;
    let end = offset + len;
    while off < end {
        let n = usize::try_from((end - off).min(ZEROS.len() as u64)).unwrap_or(ZEROS.len());
        f.write_all_at(&ZEROS[..n], off)?;
        off += n as u64;
    }
    Ok(())
}

/// One segment of the live log.
struct Segment {
    seq: u64,
    path: PathBuf,
    header: SegmentHeader,
    header_crc: u32,
    file: Arc<dyn File>,
    /// A read-only map, for sealed segments.
    map: Option<Bytes>,
    records: Vec<RecordLoc>,
    /// End of the last record.
    end: u64,
    /// Whether this is the active (appendable) segment.
    active: bool,
    /// The active segment is known to hold written zeros (not holes) up to here.
    zeroed_until: u64,
    /// Log sequence number of byte 0 of this segment (see `LogState::written_lsn`).
    base_lsn: u64,
}

impl Segment {
    fn next_index(&self) -> u64 {
        self.records.last().map_or(self.header.first_index, |r| r.last_index() + 1)
    }

    fn last_term(&self) -> u64 {
        self.records.last().map_or(self.header.prev_term, |r| r.term)
    }

    /// Position of the record holding `index`.
    fn record_of(&self, index: u64) -> Option<usize> {
        let i = self.records.partition_point(|r| r.last_index() < index);
        (i < self.records.len() && self.records[i].contains(index)).then_some(i)
    }
}

struct LogState {
    segments: Vec<Segment>,
    /// Every index up to and including this one is purged.
    purged: u64,
    /// While a purge writes its marker (without this lock held): the index it purges
    /// up to, so that a truncation below it is refused as one below `purged` is.
    purging: u64,
    next_index: u64,
    /// Term of entry `next_index - 1` (0 if unknown).
    last_term: u64,
    /// Sequence number for the next segment.
    next_seq: u64,
    /// Monotonic byte counter: the log sequence number of the end of the active
    /// segment's records. Never decreases (truncations move `base_lsn` forward).
    written_lsn: u64,
    /// In the active segment, bytes up to this offset may hold garbage from a failed
    /// write past `end`; the next append zeroes them.
    dirty_until: u64,
    /// Why the writer is poisoned.
    poison: Option<String>,
    /// Under `SyncPolicy::Never`: records appended but not yet handed to the OS.
    /// They belong at `pending_off` of the active segment (whose `end` counts them).
    pending: Vec<u8>,
    pending_off: u64,
}

struct SyncState {
    synced_lsn: u64,
    leader: bool,
}

/// An open native log. Share it between threads with an `Arc`; every method takes
/// `&self`.
pub struct NativeWal {
    fs: Arc<dyn FileSystem>,
    dir: PathBuf,
    opts: NativeWalOptions,
    log_id: u64,
    state: RwLock<LogState>,
    sync: Mutex<SyncState>,
    synced_cv: Condvar,
    /// Mirror of `SyncState::synced_lsn`, read when stamping durable marks.
    synced_lsn: AtomicU64,
    poisoned: AtomicBool,
    meta: Mutex<MetaRecord>,
    /// Serializes purges (taken before `state` or `meta`, never while holding them).
    purge_lock: Mutex<()>,
    report: RecoveryReport,
}

impl std::fmt::Debug for NativeWal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NativeWal").field("dir", &self.dir).field("log_id", &self.log_id).finish()
    }
}

impl Drop for NativeWal {
    fn drop(&mut self) {
        // Hand buffered records (SyncPolicy::Never) to the OS; without a sync they are
        // not durable, as that policy says.
        let st = self.state.get_mut().unwrap_or_else(|e| e.into_inner());
        if st.poison.is_some() {
            return;
        }
        let mut mark = None;
        if let Some(seg) = st.segments.last() {
            if !st.pending.is_empty() {
                let _ = seg.file.write_all_at(&st.pending, st.pending_off);
            }
            // Best effort: zero what a failed write left after the end, so that a
            // reopen does not find a record whose append reported an error.
            if st.dirty_until > seg.end {
                let _ = write_zeros(seg.file.as_ref(), seg.end, st.dirty_until - seg.end);
            }
            // Record how much of the newest segment is durable, so that a reader can
            // tell damage to those bytes from a torn write (best effort: without it,
            // the mark stays where it was, which is still true).
            let synced = self.synced_lsn.load(Ordering::Acquire);
            let end = synced.saturating_sub(seg.base_lsn).min(seg.end);
            if end >= SEGMENT_HEADER_LEN as u64 {
                mark = Some(DurableMark { seq: seg.seq, end });
            }
        }
        if let Some(mark) = mark {
            let m = lock(&self.meta);
            if m.durable.is_none_or(|d| d < mark) {
                // Without the directory fsync: a close does not wait for it, and a
                // mark lost in a crash only leaves less evidence.
                let next = MetaRecord { durable: Some(mark), ..*m };
                let _ = write_meta(self.fs.as_ref(), &self.dir, &next, DirSync::No);
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Poisoning only follows a panic, which is a bug; the data is still consistent
    // because every critical section restores invariants before it can panic.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn random_log_id() -> u64 {
    let mut h = RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.write_u32(std::process::id());
    h.finish()
}

fn is_sync_error(e: &WalError) -> bool {
    matches!(e, WalError::Io { .. })
}

/// How [`write_meta`] ends.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum DirSync {
    /// Fsync the directory: the new metadata is durable when the call returns.
    Yes,
    /// Leave the rename to the directory's next sync (a crash keeps the old file).
    No,
}

/// Replaces the metadata file in `dir` (temp name, write, fsync, rename, and the
/// directory fsync unless told otherwise).
pub(crate) fn write_meta(
    fs: &dyn FileSystem,
    dir: &Path,
    meta: &MetaRecord,
    sync: DirSync,
) -> Result<()> {
    let path = dir.join(META_FILE_NAME);
    let tmp = dir.join(format!("{META_FILE_NAME}{TEMP_SUFFIX}"));
    let bytes = meta.encode();
    match sync {
        DirSync::Yes => keeperkit_vfs::write_atomically_bytes(fs, &path, &tmp, &bytes),
        DirSync::No => keeperkit_vfs::write_renamed_bytes(fs, &path, &tmp, &bytes),
    }
    .map_err(|e| WalError::io(e.path, e.source))
}

/// Cuts a torn tail: truncates `path` to `new_len` and fsyncs. Shared by open and
/// repair.
pub(crate) fn cut_torn_tail(fs: &dyn FileSystem, path: &Path, new_len: u64) -> Result<()> {
    let f = fs.open(path, OpenMode::ReadWrite).map_err(|e| WalError::io(path, e))?;
    f.set_len(new_len).map_err(|e| WalError::io(path, e))?;
    f.sync_all().map_err(|e| WalError::io(path, e))
}

/// How many leading segments hold only entries up to `upto` (none with a sequence
/// number at or past `below_seq`).
fn purged_prefix(segments: &[Segment], upto: u64, below_seq: u64) -> usize {
    segments
        .iter()
        .take_while(|seg| {
            let last = seg.records.last().map(RecordLoc::last_index);
            seg.seq < below_seq
                && super::scan::is_purged_segment(seg.header.first_index, last, upto)
        })
        .count()
}

impl NativeWal {
    /// Opens (or creates) the log in `opts.dir`, recovering as `opts.recovery` says.
    pub fn open(fs: Arc<dyn FileSystem>, opts: NativeWalOptions) -> Result<NativeWal> {
        check_options(&opts)?;
        let dir = opts.dir.clone();
        let mut report = RecoveryReport::default();
        if !fs.exists(&dir) {
            // Create the missing directories and make each one's entry durable in its
            // parent, top-down.
            let missing: Vec<PathBuf> =
                dir.ancestors().take_while(|d| !fs.exists(d)).map(Path::to_path_buf).collect();
            fs.create_dir_all(&dir).map_err(|e| WalError::io(&dir, e))?;
            for d in missing.iter().rev() {
                let parent = d.parent().map_or_else(|| PathBuf::from("/"), Path::to_path_buf);
                let parent =
                    if parent.as_os_str().is_empty() { PathBuf::from(".") } else { parent };
                fs.sync_dir(&parent).map_err(|e| WalError::io(&parent, e))?;
            }
        }
        let mut a = analyze(fs.as_ref(), &dir, false)?;

        // Temp files are never part of the log: each was either renamed into place or
        // abandoned by a crash.
        for t in std::mem::take(&mut a.temp_files) {
            fs.remove_file(&t).map_err(|e| WalError::io(&t, e))?;
            report.removed_temp_files.push(t);
        }
        if !report.removed_temp_files.is_empty() {
            fs.sync_dir(&dir).map_err(|e| WalError::io(&dir, e))?;
        }

        let meta = match a.meta {
            Some(m) => m,
            None if !a.meta_present && a.segments.is_empty() => {
                let m = MetaRecord {
                    log_id: random_log_id(),
                    term: 0,
                    vote: None,
                    purged: 0,
                    durable: None,
                };
                write_meta(fs.as_ref(), &dir, &m, DirSync::Yes)?;
                report.created = true;
                m
            }
            None => {
                // `analyze` reported why (missing or bad metadata file).
                let p =
                    a.problems.into_iter().next().ok_or_else(|| {
                        WalError::InvalidArgument("metadata file unreadable".into())
                    })?;
                return Err(p.into_error());
            }
        };

        // Everything but a torn tail of the newest segment is fatal in both modes.
        let mut torn = None;
        for p in std::mem::take(&mut a.problems) {
            if p.is_torn_tail() && torn.is_none() {
                torn = Some(p);
            } else {
                return Err(p.into_error());
            }
        }
        if let Some(p) = torn {
            if opts.recovery == RecoveryMode::Strict {
                return Err(p.into_error());
            }
            let last_good_index = a.segments.iter().rev().find_map(|s| s.scan.last_index());
            let Some(last) = a.segments.last_mut() else {
                return Err(p.into_error());
            };
            let super::ProblemKind::TornTail { valid_end, file_len, cause } = p.kind else {
                return Err(WalError::InvalidArgument("torn tail without details".into()));
            };
            // Drop our map before truncating the file under it.
            last.bytes = Arc::new(Vec::new());
            cut_torn_tail(fs.as_ref(), &last.scan.path, valid_end)?;
            last.scan.file_len = valid_end;
            last.scan.tail = super::scan::Tail::Clean;
            report.torn_tail = Some(TornTailCut {
                path: last.scan.path.clone(),
                old_len: file_len,
                new_len: valid_end,
                first_bad_offset: p.offset,
                last_good_index,
                cause,
            });
        }

        // Finish an interrupted purge. (A newest segment whose torn tail was just cut
        // may now turn out to hold only purged entries, too.)
        let mut leftovers = std::mem::take(&mut a.purged_leftovers);
        if let Some(last) = a.segments.last() {
            let i = a.segments.len() - 1;
            if let Some(first) = last.scan.first_index() {
                if !leftovers.contains(&i)
                    && super::scan::is_purged_segment(first, last.scan.last_index(), meta.purged)
                {
                    leftovers.push(i);
                }
            }
        }
        let mut segs: Vec<ScannedSegment> = Vec::new();
        for (i, s) in std::mem::take(&mut a.segments).into_iter().enumerate() {
            if leftovers.contains(&i) {
                drop(s.bytes);
                fs.remove_file(&s.scan.path).map_err(|e| WalError::io(&s.scan.path, e))?;
                report.removed_purged_segments.push(s.scan.path);
            } else {
                segs.push(s);
            }
        }
        if !report.removed_purged_segments.is_empty() {
            fs.sync_dir(&dir).map_err(|e| WalError::io(&dir, e))?;
        }

        let last_seq = segs.last().map(|s| s.scan.seq).or_else(|| {
            report.removed_purged_segments.last().and_then(|p| {
                p.file_name().and_then(|n| n.to_str()).and_then(super::parse_segment_file_name)
            })
        });
        let n = segs.len();
        let mut segments = Vec::with_capacity(n);
        let mut lsn = 0u64;
        for (i, s) in segs.into_iter().enumerate() {
            let newest = i + 1 == n;
            let Ok((header, header_crc)) = s.scan.header else {
                return Err(WalError::InvalidArgument("unchecked segment header".into()));
            };
            let path = s.scan.path.clone();
            let (file, map) = if newest {
                drop(s.bytes);
                let f = fs.open(&path, OpenMode::ReadWrite).map_err(|e| WalError::io(&path, e))?;
                (f, None)
            } else {
                let f = fs.open(&path, OpenMode::Read).map_err(|e| WalError::io(&path, e))?;
                (f, Some(s.bytes))
            };
            segments.push(Segment {
                seq: s.scan.seq,
                path,
                header,
                header_crc,
                file,
                map,
                records: s.scan.records,
                end: s.scan.data_end,
                active: newest,
                zeroed_until: s.scan.data_end,
                base_lsn: lsn,
            });
            lsn += s.scan.data_end;
        }
        let purged = meta.purged;
        let (next_index, last_term) = match segments.last() {
            Some(s) => (s.next_index().max(purged + 1), s.last_term()),
            None => (purged + 1, 0),
        };
        let written_lsn = segments.last().map_or(lsn, |s| s.base_lsn + s.end);
        let wal = NativeWal {
            fs,
            dir,
            log_id: meta.log_id,
            state: RwLock::new(LogState {
                segments,
                purged,
                purging: purged,
                next_index,
                last_term,
                next_seq: last_seq.map_or(1, |s| s + 1),
                written_lsn,
                dirty_until: 0,
                poison: None,
                pending: Vec::new(),
                pending_off: 0,
            }),
            sync: Mutex::new(SyncState { synced_lsn: written_lsn, leader: false }),
            synced_cv: Condvar::new(),
            synced_lsn: AtomicU64::new(written_lsn),
            poisoned: AtomicBool::new(false),
            meta: Mutex::new(meta),
            purge_lock: Mutex::new(()),
            report,
            opts,
        };
        // What we found is what we serve, so it must be durable: a process crash (as
        // opposed to a power loss) leaves unsynced bytes and directory entries in the
        // page cache, where this process reads them. Sync the newest segment (sealed
        // ones were synced before their successor was created) and the directory.
        // Also give the active segment its preallocation back (it was cut, or written
        // by a configuration without preallocation).
        {
            let mut st = wal.write_state();
            if let Some(seg) = st.segments.last_mut() {
                if wal.opts.preallocate {
                    let len = seg.file.len().map_err(|e| WalError::io(&seg.path, e))?;
                    if len < wal.opts.segment_len {
                        // Best effort: without space, appends grow the file instead.
                        let _ = seg.file.set_len(wal.opts.segment_len);
                    }
                }
                seg.file.sync_all().map_err(|e| WalError::io(&seg.path, e))?;
            }
        }
        wal.fs.sync_dir(&wal.dir).map_err(|e| WalError::io(&wal.dir, e))?;
        // Everything found is durable now: record it, before any append. This also
        // drops a mark on a segment that is gone (removed as purged), so that a
        // segment created later under the same sequence number never meets it.
        let mark = {
            let st = wal.read_state();
            st.segments.last().map(|s| DurableMark { seq: s.seq, end: s.end })
        };
        {
            let mut m = lock(&wal.meta);
            if m.durable != mark {
                let next = MetaRecord { durable: mark, ..*m };
                write_meta(wal.fs.as_ref(), &wal.dir, &next, DirSync::Yes)?;
                *m = next;
            }
        }
        Ok(wal)
    }

    /// Before bytes from `end` of segment `seq` on are removed (every later segment
    /// too): lowers the metadata file's durable mark to that point, durably, so that
    /// it never claims bytes that are gone or rewritten.
    fn lower_durable_mark(&self, seq: u64, end: u64) -> Result<()> {
        let mut m = lock(&self.meta);
        let Some(d) = m.durable else { return Ok(()) };
        if d.seq < seq || (d.seq == seq && d.end <= end) {
            return Ok(());
        }
        // The segment `seq` was complete and synced up to `end` when the mark was
        // past it (an older segment is synced before its successor is created).
        let end = if d.seq == seq { d.end.min(end) } else { end };
        let durable = (end >= SEGMENT_HEADER_LEN as u64).then_some(DurableMark { seq, end });
        let next = MetaRecord { durable, ..*m };
        write_meta(self.fs.as_ref(), &self.dir, &next, DirSync::Yes)?;
        *m = next;
        Ok(())
    }

    /// Whether an earlier failure (a failed fsync) poisoned the writer: appends,
    /// truncations and purges fail until the log is reopened. Reads still work.
    pub fn is_poisoned(&self) -> bool {
        self.poisoned.load(Ordering::Acquire)
    }

    /// What opening changed on disk.
    pub fn recovery_report(&self) -> &RecoveryReport {
        &self.report
    }

    /// The log directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The options the log was opened with.
    pub fn options(&self) -> &NativeWalOptions {
        &self.opts
    }

    /// The random id of this log (in the metadata file and every segment header).
    pub fn log_id(&self) -> u64 {
        self.log_id
    }

    fn read_state(&self) -> RwLockReadGuard<'_, LogState> {
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write_state(&self) -> RwLockWriteGuard<'_, LogState> {
        self.state.write().unwrap_or_else(|e| e.into_inner())
    }

    /// First index that can still be read, if the log holds any entry.
    pub fn first_index(&self) -> Option<u64> {
        let st = self.read_state();
        let first = st.segments.first().map(|s| s.header.first_index.max(st.purged + 1))?;
        (first < st.next_index).then_some(first)
    }

    /// Last index in the log, if it holds any entry.
    pub fn last_index(&self) -> Option<u64> {
        let st = self.read_state();
        let first = st.segments.first().map(|s| s.header.first_index.max(st.purged + 1))?;
        (first < st.next_index).then(|| st.next_index - 1)
    }

    /// The index the next append must start with.
    pub fn next_index(&self) -> u64 {
        self.read_state().next_index
    }

    /// Every index up to and including this one is purged (0: none).
    pub fn purged_index(&self) -> u64 {
        self.read_state().purged
    }

    /// Term of the last entry (0 if unknown: empty log after a purge of everything).
    pub fn last_term(&self) -> u64 {
        self.read_state().last_term
    }

    /// The persisted term and vote.
    pub fn hard_state(&self) -> HardState {
        let m = lock(&self.meta);
        HardState { term: m.term, vote: m.vote }
    }

    /// Persists term and vote (atomically: temp file, fsync, rename, directory
    /// fsync). Returns when durable.
    pub fn set_hard_state(&self, hs: HardState) -> Result<()> {
        let mut m = lock(&self.meta);
        let next = MetaRecord { term: hs.term, vote: hs.vote, ..*m };
        write_meta(self.fs.as_ref(), &self.dir, &next, DirSync::Yes)?;
        *m = next;
        Ok(())
    }

    fn check_poison(&self, st: &LogState) -> Result<()> {
        match &st.poison {
            Some(cause) => Err(WalError::Poisoned { cause: cause.clone() }),
            None => Ok(()),
        }
    }

    /// Appends a batch of entries: the first must have index [`NativeWal::next_index`],
    /// the others follow without gaps. Limits are checked before anything is written.
    /// Under [`SyncPolicy::Always`] and [`SyncPolicy::GroupCommit`] the call returns
    /// once the batch is durable. An empty batch does nothing.
    pub fn append(&self, entries: &[EntryRef<'_>]) -> Result<()> {
        let Some(first) = entries.first() else {
            return Ok(());
        };
        for (i, e) in entries.iter().enumerate() {
            let expected = first.index.checked_add(i as u64);
            if expected != Some(e.index) {
                return Err(WalError::NotContiguous {
                    expected: expected.unwrap_or(u64::MAX),
                    found: e.index,
                });
            }
        }
        let (_, lsn) = self.write_batch(Some(first.index), entries.len(), |i| {
            (entries[i].term, entries[i].payload)
        })?;
        self.after_write(lsn)
    }

    /// Appends payloads as entries of `term` at the next indexes, assigned under the
    /// writer lock, and returns the indexes they got. This is how several threads
    /// append concurrently (and share syncs) without coordinating indexes themselves.
    pub fn append_next(&self, term: u64, payloads: &[&[u8]]) -> Result<Range<u64>> {
        if payloads.is_empty() {
            let n = self.next_index();
            return Ok(n..n);
        }
        let (first, lsn) = self.write_batch(None, payloads.len(), |i| (term, payloads[i]))?;
        self.after_write(lsn)?;
        Ok(first..first + payloads.len() as u64)
    }

    fn after_write(&self, lsn: u64) -> Result<()> {
        match self.opts.sync {
            SyncPolicy::Never => Ok(()),
            SyncPolicy::Always | SyncPolicy::GroupCommit { .. } => self.wait_durable(lsn),
        }
    }

    /// Makes everything appended so far durable.
    pub fn sync(&self) -> Result<()> {
        let lsn = {
            let mut st = self.write_state();
            self.check_poison(&st)?;
            self.flush_pending(&mut st)?;
            st.written_lsn
        };
        self.wait_durable(lsn)
    }

    /// Hands buffered records (`SyncPolicy::Never`) to the OS. On failure they stay
    /// buffered (and readable) for the next attempt.
    fn flush_pending(&self, st: &mut LogState) -> Result<()> {
        if st.pending.is_empty() {
            return Ok(());
        }
        let Some(seg) = st.segments.last() else {
            st.pending.clear();
            return Ok(());
        };
        debug_assert_eq!(st.pending_off + st.pending.len() as u64, seg.end);
        seg.file
            .write_all_at(&st.pending, st.pending_off)
            .map_err(|e| WalError::io(&seg.path, e))?;
        let end = seg.end;
        if st.dirty_until > end {
            write_zeros(seg.file.as_ref(), end, st.dirty_until - end)
                .map_err(|e| WalError::io(&seg.path, e))?;
            st.dirty_until = 0;
        }
        st.pending.clear();
        Ok(())
    }

    fn check_batch<'a>(&self, n: usize, get: &impl Fn(usize) -> (u64, &'a [u8])) -> Result<usize> {
        let limits = &self.opts.limits;
        if n > limits.batch_entries_max {
            return Err(WalError::LimitExceeded {
                what: "batch entry count",
                len: n as u64,
                max: limits.batch_entries_max as u64,
            });
        }
        let mut raw_len = 0usize;
        for i in 0..n {
            let payload = get(i).1;
            if payload.len() > limits.entry_len_max {
                return Err(WalError::LimitExceeded {
                    what: "entry payload",
                    len: payload.len() as u64,
                    max: limits.entry_len_max as u64,
                });
            }
            raw_len = raw_len.saturating_add(ENTRY_HEADER_LEN + payload.len());
        }
        if raw_len > limits.batch_len_max {
            return Err(WalError::LimitExceeded {
                what: "encoded batch",
                len: raw_len as u64,
                max: limits.batch_len_max as u64,
            });
        }
        Ok(raw_len)
    }

    /// Encodes a batch outside the writer lock: the record header is left for later
    /// (it needs the index and the durable mark), the payload (the entry table,
    /// compressed if that pays) and its padding are final, and their CRC is computed.
    fn encode_batch<'a>(
        &self,
        n: usize,
        get: &impl Fn(usize) -> (u64, &'a [u8]),
    ) -> Result<Encoded> {
        let raw_len = self.check_batch(n, get)?;
        let count = u32::try_from(n).map_err(|_| WalError::LimitExceeded {
            what: "batch entry count",
            len: n as u64,
            max: RECORD_ENTRIES_MAX as u64,
        })?;
        let too_big = |len: usize| WalError::LimitExceeded {
            what: "record",
            len: len as u64,
            max: RECORD_LEN_MAX as u64,
        };
        // Both lengths are bounded by the batch limit, itself at most RECORD_LEN_MAX.
        let raw_len32 = u32::try_from(raw_len).map_err(|_| too_big(raw_len))?;
        let mut buf = Vec::with_capacity(RECORD_HEADER_LEN + raw_len + RECORD_ALIGN);
        buf.resize(RECORD_HEADER_LEN, 0);
        for i in 0..n {
            let (term, payload) = get(i);
            push_entry(&mut buf, term, payload);
        }
        debug_assert_eq!(buf.len(), RECORD_HEADER_LEN + raw_len);
        let mut flags = 0;
        if let Some(t) = self.opts.compress_threshold {
            if raw_len >= t {
                let raw = &buf[RECORD_HEADER_LEN..];
                if let Ok(c) = zstd::bulk::compress(raw, self.opts.zstd_level) {
                    if c.len() < raw.len() {
                        buf.truncate(RECORD_HEADER_LEN);
                        buf.extend_from_slice(&c);
                        flags = FLAG_ZSTD;
                    }
                }
            }
        }
        let stored = buf.len() - RECORD_HEADER_LEN;
        let stored_len = u32::try_from(stored).map_err(|_| too_big(stored))?;
        let mut payload_crc = crc32fast::Hasher::new();
        payload_crc.update(&buf[RECORD_HEADER_LEN..]);
        let span = align_up(RECORD_HEADER_LEN as u64 + u64::from(stored_len));
        buf.resize(usize::try_from(span).map_err(|_| too_big(stored))?, 0);
        Ok(Encoded {
            buf,
            stored_len,
            raw_len: raw_len32,
            count,
            flags,
            last_term: get(n - 1).0,
            payload_crc,
        })
    }

    /// Writes a batch of `n >= 1` entries (`get(i)` gives term and payload) to the OS
    /// at `first_index` (or the next index if `None`); returns the first index and the
    /// log sequence number that must be durable for the batch to be.
    fn write_batch<'a>(
        &self,
        first_index: Option<u64>,
        n: usize,
        get: impl Fn(usize) -> (u64, &'a [u8]),
    ) -> Result<(u64, u64)> {
        assert!(n >= 1, "callers handle empty batches");
        let mut enc = self.encode_batch(n, &get)?;
        let span = enc.buf.len() as u64;
        let mut guard = self.write_state();
        let st = &mut *guard;
        self.check_poison(st)?;
        let first_index = first_index.unwrap_or(st.next_index);
        if first_index != st.next_index {
            return Err(WalError::NotContiguous { expected: st.next_index, found: first_index });
        }
        self.ensure_room(st, span)?;
        let synced_lsn = self.synced_lsn.load(Ordering::Acquire);
        let dirty_until = st.dirty_until;
        let segment_len = self.opts.segment_len;
        let buffered = self.opts.sync == SyncPolicy::Never;
        // Zero-filling ahead only pays when appends are fdatasync'ed.
        let zero_fill = self.opts.preallocate && !buffered;
        if buffered && !st.pending.is_empty() && st.pending.len() + enc.buf.len() > WRITE_BUFFER_LEN
        {
            self.flush_pending(st)?;
        }
        let buffer_this = buffered && enc.buf.len() < WRITE_BUFFER_LEN;
        let Some(seg) = st.segments.last_mut() else {
            return Err(WalError::InvalidArgument("no active segment".into()));
        };
        debug_assert!(seg.active);
        debug_assert_eq!(seg.next_index(), first_index, "active segment continues the log");
        let offset = seg.end;
        let synced_off =
            synced_lsn.saturating_sub(seg.base_lsn).clamp(SEGMENT_HEADER_LEN as u64, offset);
        let header = RecordHeader {
            crc: 0,
            stored_len: enc.stored_len,
            raw_len: enc.raw_len,
            count: enc.count,
            first_index,
            term: enc.last_term,
            // Segment offsets fit in u32 (SEGMENT_FILE_LEN_MAX is checked).
            synced: u32::try_from(synced_off).unwrap_or(u32::MAX),
            flags: enc.flags,
        };
        header.encode_header_into(&mut enc.buf[..RECORD_HEADER_LEN], &enc.payload_crc);
        debug_assert_eq!(
            RecordHeader::decode_unchecked(&enc.buf).crc,
            record_crc(
                &enc.buf[..RECORD_HEADER_LEN],
                &enc.buf[RECORD_HEADER_LEN..RECORD_HEADER_LEN + enc.stored_len as usize]
            )
        );
        let end = offset + span;
        if buffer_this {
            if st.pending.is_empty() {
                st.pending_off = offset;
            }
            st.pending.extend_from_slice(&enc.buf);
            seg.records.push(RecordLoc {
                offset,
                first_index,
                count: enc.count,
                term: enc.last_term,
                stored_len: enc.stored_len,
                raw_len: enc.raw_len,
                flags: enc.flags,
            });
            seg.end = end;
            st.written_lsn = seg.base_lsn + seg.end;
            st.next_index = first_index + u64::from(enc.count);
            st.last_term = enc.last_term;
            return Ok((first_index, st.written_lsn));
        }
        debug_assert!(st.pending.is_empty());
        let mut r = seg.file.write_all_at(&enc.buf, offset);
        // Zero what a failed write may have left after us, and (with preallocation)
        // zero-fill ahead in chunks: overwriting written blocks lets fdatasync flush
        // data only, instead of committing block allocations every time.
        let mut zero_to = dirty_until;
        if zero_fill && end > seg.zeroed_until {
            zero_to = zero_to.max((end + ZERO_AHEAD_LEN).min(segment_len.max(end)));
        }
        if r.is_ok() && zero_to > end {
            r = write_zeros(seg.file.as_ref(), end, zero_to - end);
        }
        match r {
            Ok(()) => {
                seg.zeroed_until = seg.zeroed_until.max(zero_to).max(end);
                seg.records.push(RecordLoc {
                    offset,
                    first_index,
                    count: enc.count,
                    term: enc.last_term,
                    stored_len: enc.stored_len,
                    raw_len: enc.raw_len,
                    flags: enc.flags,
                });
                seg.end = end;
                st.written_lsn = seg.base_lsn + seg.end;
                st.next_index = first_index + u64::from(enc.count);
                st.last_term = enc.last_term;
                st.dirty_until = 0;
                Ok((first_index, st.written_lsn))
            }
            Err(e) => {
                // Nothing was acknowledged; the bytes may be partly there. The next
                // append overwrites them and zeroes what it does not cover.
                st.dirty_until = st.dirty_until.max(zero_to).max(end);
                Err(WalError::io(&seg.path, e))
            }
        }
    }

    /// Makes sure the active segment has room for `span` more bytes, rotating (or
    /// creating the first segment) if needed.
    fn ensure_room(&self, st: &mut LogState, span: u64) -> Result<()> {
        let needs_new = match st.segments.last() {
            None => true,
            Some(seg) => {
                debug_assert!(seg.active);
                !seg.records.is_empty() && seg.end + span > self.opts.segment_len
            }
        };
        if needs_new {
            self.rotate(st)?;
        }
        Ok(())
    }

    /// Seals the active segment (if any) and creates the next one.
    ///
    /// Order, each step durable before the next: (1) cut the active segment to the
    /// end of its last record (dropping preallocated zeros, and any bytes a failed
    /// write left after the end, which could otherwise form a valid-looking record)
    /// and fsync it, so that only the newest segment can ever have a torn tail;
    /// (2) write the new segment under a temp name, fsync it, rename it into place,
    /// fsync the directory. If (2) fails, the old segment stays active (it just
    /// grows instead of using preallocated space).
    fn rotate(&self, st: &mut LogState) -> Result<()> {
        self.flush_pending(st)?;
        if let Some(old) = st.segments.last_mut() {
            let end = old.end;
            let sealed = old.file.set_len(end).and_then(|()| old.file.sync_all());
            if let Err(e) = sealed {
                let err = WalError::io(&old.path, e);
                self.poison_locked(st, &err);
                return Err(err);
            }
            old.zeroed_until = end;
            st.dirty_until = 0;
            self.mark_synced(st.written_lsn);
        }
        let seq = st.next_seq;
        let (prev_term, prev_header_crc) = match st.segments.last() {
            Some(s) => (s.last_term(), s.header_crc),
            None => (st.last_term, 0),
        };
        let header = SegmentHeader {
            log_id: self.log_id,
            seq,
            first_index: st.next_index,
            prev_term,
            prev_header_crc,
        };
        let (file, path, header_crc) = match self.create_segment(&header) {
            Ok(v) => v,
            Err((e, synced_failed)) => {
                if synced_failed {
                    self.poison_locked(st, &e);
                }
                return Err(e);
            }
        };
        st.next_seq = seq + 1;
        if let Some(old) = st.segments.last_mut() {
            old.active = false;
            old.map = old.file.map().ok().flatten();
        }
        let base = st.written_lsn;
        st.segments.push(Segment {
            seq,
            path,
            header,
            header_crc,
            file,
            map: None,
            records: Vec::new(),
            end: SEGMENT_HEADER_LEN as u64,
            active: true,
            zeroed_until: SEGMENT_HEADER_LEN as u64,
            base_lsn: base,
        });
        st.written_lsn = base + SEGMENT_HEADER_LEN as u64;
        st.dirty_until = 0;
        // The header is durable and nothing else was written since the sync.
        self.mark_synced(st.written_lsn);
        Ok(())
    }

    /// Creates a segment file durably. On error, says whether an fsync failed.
    #[allow(clippy::type_complexity)]
    fn create_segment(
        &self,
        header: &SegmentHeader,
    ) -> std::result::Result<(Arc<dyn File>, PathBuf, u32), (WalError, bool)> {
        let name = segment_file_name(header.seq);
        let path = self.dir.join(&name);
        let tmp = self.dir.join(format!("{name}{TEMP_SUFFIX}"));
        let fs = self.fs.as_ref();
        let bytes = header.encode();
        let crc = crc32fast::hash(&bytes[..super::format::SEG_CRC_OFFSET]);
        let cleanup = |e: WalError, synced: bool| {
            let _ = fs.remove_file(&tmp);
            (e, synced)
        };
        let f =
            fs.open(&tmp, OpenMode::CreateTruncate).map_err(|e| (WalError::io(&tmp, e), false))?;
        if self.opts.preallocate {
            f.set_len(self.opts.segment_len).map_err(|e| cleanup(WalError::io(&tmp, e), false))?;
        }
        f.write_all_at(&bytes, 0).map_err(|e| cleanup(WalError::io(&tmp, e), false))?;
        f.sync_all().map_err(|e| cleanup(WalError::io(&tmp, e), true))?;
        fs.rename(&tmp, &path).map_err(|e| cleanup(WalError::io(&path, e), false))?;
        fs.sync_dir(&self.dir).map_err(|e| (WalError::io(&self.dir, e), true))?;
        Ok((f, path, crc))
    }

    fn mark_synced(&self, lsn: u64) {
        let mut s = lock(&self.sync);
        if lsn > s.synced_lsn {
            s.synced_lsn = lsn;
            self.synced_lsn.store(lsn, Ordering::Release);
        }
        drop(s);
        self.synced_cv.notify_all();
    }

    /// Waits until `lsn` is durable, leading a sync if nobody else is.
    fn wait_durable(&self, lsn: u64) -> Result<()> {
        let mut s = lock(&self.sync);
        loop {
            if s.synced_lsn >= lsn {
                return Ok(());
            }
            if self.poisoned.load(Ordering::Acquire) {
                drop(s);
                let st = self.read_state();
                return Err(WalError::Poisoned {
                    cause: st.poison.clone().unwrap_or_else(|| "unknown".into()),
                });
            }
            if s.leader {
                s = self.synced_cv.wait(s).unwrap_or_else(|e| e.into_inner());
                continue;
            }
            s.leader = true;
            drop(s);
            if let SyncPolicy::GroupCommit { max_delay } = self.opts.sync {
                if !max_delay.is_zero() {
                    std::thread::sleep(max_delay);
                }
            }
            let (target, file, path) = {
                let st = self.read_state();
                match st.segments.last() {
                    Some(seg) => (st.written_lsn, Some(Arc::clone(&seg.file)), seg.path.clone()),
                    None => (st.written_lsn, None, self.dir.clone()),
                }
            };
            let r = match &file {
                Some(f) => f.sync_data(),
                None => Ok(()),
            };
            s = lock(&self.sync);
            s.leader = false;
            match r {
                Ok(()) if self.poisoned.load(Ordering::Acquire) => {
                    // The tail may have been cut under us; do not acknowledge it.
                    self.synced_cv.notify_all();
                }
                Ok(()) => {
                    if target > s.synced_lsn {
                        s.synced_lsn = target;
                        self.synced_lsn.store(target, Ordering::Release);
                    }
                    self.synced_cv.notify_all();
                }
                Err(e) => {
                    drop(s);
                    let err = WalError::io(&path, e);
                    {
                        let mut st = self.write_state();
                        self.poison_locked(&mut st, &err);
                    }
                    self.synced_cv.notify_all();
                    return Err(err);
                }
            }
        }
    }

    /// Poisons the writer after a failed fsync, and cuts the active segment back to
    /// its last durable record: the kernel may have dropped the unsynced pages, so a
    /// reopen must not find them (nothing past that point was acknowledged).
    fn poison_locked(&self, st: &mut LogState, err: &WalError) {
        if st.poison.is_none() {
            st.poison = Some(err.to_string());
        }
        // Set the flag under the sync lock: a sync leader finishing concurrently either
        // advanced `synced_lsn` before (and we keep its bytes) or sees the flag and does
        // not advance it (and its waiters fail).
        let synced = {
            let s = lock(&self.sync);
            self.poisoned.store(true, Ordering::Release);
            s.synced_lsn
        };
        // Buffered records are past the durable point: cut below with the rest.
        st.pending.clear();
        let Some(seg) = st.segments.last_mut() else { return };
        if !seg.active {
            return;
        }
        let durable = synced.saturating_sub(seg.base_lsn).max(SEGMENT_HEADER_LEN as u64);
        // Cut even when every record is durable: a failed write may have left a
        // complete record after the end, in pages the kernel may now have dropped.
        let keep = seg.records.partition_point(|r| r.end() <= durable);
        let cut = seg.records.get(keep).map_or(seg.end, |r| r.offset);
        seg.records.truncate(keep);
        seg.end = cut;
        seg.zeroed_until = cut;
        st.dirty_until = 0;
        st.written_lsn = seg.base_lsn + cut;
        st.next_index = seg.next_index();
        st.last_term = seg.last_term();
        // Best effort: if this fails too, recovery will see a torn tail at worst.
        if seg.file.set_len(cut).is_ok() {
            let _ = seg.file.sync_all();
        }
    }

    /// Removes every entry with index `from` or higher (conflicting entries). The
    /// removal is durable when the call returns. `from` must be above the purged
    /// prefix; `from >= next_index()` does nothing.
    pub fn truncate_suffix(&self, from: u64) -> Result<()> {
        let mut guard = self.write_state();
        let st = &mut *guard;
        self.check_poison(st)?;
        if from <= st.purged.max(st.purging) {
            return Err(WalError::InvalidArgument(format!(
                "cannot truncate from {from}: entries up to {} are purged",
                st.purged.max(st.purging)
            )));
        }
        // A failed write may have left a complete record after the end; a truncation
        // at (or past) the end must scrub it, or a reopen would serve it.
        let dirty = st.segments.last().is_some_and(|s| st.dirty_until > s.end);
        if (from >= st.next_index && !dirty) || st.segments.is_empty() {
            return Ok(());
        }
        let from = from.min(st.next_index);
        self.flush_pending(st)?;
        let r = self.truncate_locked(st, from);
        if let Err(e) = &r {
            if is_sync_error(e) {
                self.poison_locked(st, e);
            }
        }
        r
    }

    fn truncate_locked(&self, st: &mut LogState, from: u64) -> Result<()> {
        let fs = self.fs.as_ref();
        // The segment that will hold `from - 1` last: the last one starting at or
        // before `from`. The first segment starts at or before `purged + 1 <= from`.
        let si = st.segments.partition_point(|s| s.header.first_index <= from).saturating_sub(1);
        {
            // What stays unchanged: the bytes before the first record that is cut or
            // rewritten.
            let seg = &st.segments[si];
            let ri = seg.records.partition_point(|r| r.last_index() < from);
            let keep = seg.records.get(ri).map_or(seg.end, |r| r.offset);
            self.lower_durable_mark(seg.seq, keep)?;
        }
        // Unlink later segments, newest first, each durably, so a crash never leaves a
        // gap in the middle.
        while st.segments.len() > si + 1 {
            let Some(seg) = st.segments.pop() else { break };
            let path = seg.path.clone();
            drop(seg);
            fs.remove_file(&path).map_err(|e| WalError::io(&path, e))?;
            fs.sync_dir(&self.dir).map_err(|e| WalError::io(&self.dir, e))?;
        }
        st.next_seq = st.segments.last().map_or(st.next_seq, |s| s.seq + 1);
        let seg_len = self.opts.segment_len;
        let preallocate = self.opts.preallocate;
        let seg = &mut st.segments[si];
        let ri = seg.records.partition_point(|r| r.last_index() < from);
        let split = seg.records.get(ri).filter(|r| r.first_index < from).copied();
        seg.map = None;
        if !seg.active {
            seg.file =
                fs.open(&seg.path, OpenMode::ReadWrite).map_err(|e| WalError::io(&seg.path, e))?;
        }
        let new_end = match split {
            None => {
                let cut = seg.records.get(ri).map_or(seg.end, |r| r.offset);
                let f = &seg.file;
                f.set_len(cut).map_err(|e| WalError::io(&seg.path, e))?;
                if preallocate && cut < seg_len {
                    // Best effort; without space, appends grow the file instead.
                    let _ = f.set_len(seg_len);
                }
                f.sync_all().map_err(|e| WalError::io(&seg.path, e))?;
                seg.records.truncate(ri);
                cut
            }
            Some(rec) => {
                // `from` falls inside a multi-entry record: rewrite the segment under a
                // temp name with the record's first entries re-encoded, then rename it
                // over the old one. Overwriting the record in place could tear synced
                // bytes.
                let entries = read_record_entries(seg, &rec, None)?;
                let keep: Vec<&Entry> = entries.iter().filter(|e| e.index < from).collect();
                let mut raw = Vec::new();
                for e in &keep {
                    push_entry(&mut raw, e.term, &e.payload);
                }
                let last_term = keep.last().map_or(0, |e| e.term);
                let raw_len = u32::try_from(raw.len())
                    .map_err(|_| WalError::InvalidArgument("record too large to split".into()))?;
                let count = u32::try_from(keep.len())
                    .map_err(|_| WalError::InvalidArgument("record too large to split".into()))?;
                let header = RecordHeader {
                    crc: 0,
                    stored_len: raw_len,
                    raw_len,
                    count,
                    first_index: rec.first_index,
                    term: last_term,
                    synced: u32::try_from(rec.offset).unwrap_or(u32::MAX),
                    flags: 0,
                };
                let mut rbuf = vec![0u8; RECORD_HEADER_LEN];
                header.encode_into(&mut rbuf, &raw);
                rbuf.extend_from_slice(&raw);
                let span = align_up(rbuf.len() as u64);
                rbuf.resize(usize::try_from(span).unwrap_or(rbuf.len()), 0);
                let tmp = PathBuf::from(format!("{}{TEMP_SUFFIX}", seg.path.display()));
                let t =
                    fs.open(&tmp, OpenMode::CreateTruncate).map_err(|e| WalError::io(&tmp, e))?;
                let io_tmp = |e| WalError::io(&tmp, e);
                copy_range(seg.file.as_ref(), t.as_ref(), rec.offset).map_err(io_tmp)?;
                t.write_all_at(&rbuf, rec.offset).map_err(io_tmp)?;
                let end = rec.offset + span;
                if preallocate && end < seg_len {
                    let _ = t.set_len(seg_len);
                }
                t.sync_all().map_err(io_tmp)?;
                fs.rename(&tmp, &seg.path).map_err(|e| WalError::io(&seg.path, e))?;
                fs.sync_dir(&self.dir).map_err(|e| WalError::io(&self.dir, e))?;
                seg.file = t;
                seg.records.truncate(ri);
                seg.records.push(RecordLoc {
                    offset: rec.offset,
                    first_index: rec.first_index,
                    count,
                    term: last_term,
                    stored_len: raw_len,
                    raw_len,
                    flags: 0,
                });
                end
            }
        };
        seg.end = new_end;
        seg.zeroed_until = new_end;
        seg.active = true;
        seg.base_lsn = st.written_lsn;
        st.written_lsn = seg.base_lsn + seg.end;
        st.next_index = from;
        st.last_term = seg.last_term();
        st.dirty_until = 0;
        self.mark_synced(st.written_lsn);
        Ok(())
    }

    /// Purges every entry up to and including `upto` (after a snapshot): the purge
    /// marker is written durably first, then whole segments holding only purged
    /// entries are unlinked (the directory fsynced). Entries of a segment that also
    /// holds later ones stay on disk but are no longer served. If `upto` is at or past
    /// the last index, the log becomes empty and the next append must be `upto + 1`.
    ///
    /// Appends and syncs go on while the marker and the directory are fsynced: the
    /// writer lock is only held to decide what goes and to publish it, never across an
    /// fsync or an unlink (a purge at the end of every snapshot would otherwise stall
    /// every write for the length of three fsyncs).
    pub fn purge(&self, upto: u64) -> Result<()> {
        let _purging = lock(&self.purge_lock);
        self.purge_held(upto)
    }

    /// Makes the log what installing a snapshot that ends at `index` (of `term`) asks
    /// for: the entries after it stay when the log holds that entry with that term
    /// (they continue the snapshot), else every entry goes; then every index up to
    /// `index` is purged. Purges are held off meanwhile, so that one running at the same
    /// time (after a snapshot of the node's own) cannot move the log's start between
    /// the decision and the removal. Durable when it returns.
    pub fn reset_to_snapshot(&self, index: u64, term: u64) -> Result<()> {
        let _purging = lock(&self.purge_lock);
        let matching = index > 0
            && self.first_index().is_some_and(|f| f <= index)
            && self.next_index() > index
            && self.read(index)?.term == term;
        if !matching {
            // No purge is under way (the lock is held): the first index not purged is
            // above every purge point, so the truncation is allowed.
            self.truncate_suffix(self.purged_index() + 1)?;
        }
        self.purge_held(index)
    }

    /// [`NativeWal::purge`], the caller holding `purge_lock`.
    fn purge_held(&self, upto: u64) -> Result<()> {
        // What goes: the leading segments that hold only purged entries.
        let mut st = self.write_state();
        self.check_poison(&st)?;
        if upto <= st.purged {
            return Ok(());
        }
        self.flush_pending(&mut st)?;
        let kept = st.segments.get(purged_prefix(&st.segments, upto, u64::MAX)).map(|s| s.seq);
        st.purging = upto;
        // A purge of every entry (installing a snapshot) keeps the lock: an append
        // meanwhile would take an index at or below `upto` and be purged with the rest.
        // Otherwise appends only add entries after `upto`.
        let held = if upto.saturating_add(1) >= st.next_index {
            Some(st)
        } else {
            drop(st);
            None
        };
        let marked = {
            let mut m = lock(&self.meta);
            // A mark on a segment that goes would speak of a file that is not there.
            let durable = m.durable.filter(|d| kept.is_some_and(|k| d.seq >= k));
            let next = MetaRecord { purged: upto, durable, ..*m };
            let r = write_meta(self.fs.as_ref(), &self.dir, &next, DirSync::Yes);
            if r.is_ok() {
                *m = next;
            }
            r
        };
        // Publish. Appends meanwhile only added records at the end: a segment that
        // was wholly purged may have received later entries since (then it stays), and
        // no segment at or after `kept` goes (the marker dropped no mark on it).
        let gone: Vec<Segment> = {
            let mut st = held.unwrap_or_else(|| self.write_state());
            if let Err(e) = marked {
                st.purging = st.purged;
                return Err(e);
            }
            let removed = purged_prefix(&st.segments, upto, kept.unwrap_or(u64::MAX));
            st.purged = upto;
            if upto >= st.next_index {
                st.next_index = upto + 1;
                st.last_term = 0;
            }
            let gone = st.segments.drain(..removed).collect();
            if st.segments.is_empty() {
                // Nothing left to sync; wake anybody waiting for bytes that are gone.
                self.mark_synced(st.written_lsn);
            }
            gone
        };
        let removed = gone.len();
        let mut result = Ok(());
        for seg in gone {
            let path = seg.path.clone();
            drop(seg);
            if let Err(e) = self.fs.remove_file(&path) {
                result = Err(WalError::io(&path, e));
                break;
            }
        }
        if removed > 0 {
            if let Err(e) = self.fs.sync_dir(&self.dir) {
                result = result.and(Err(WalError::io(&self.dir, e)));
            }
        }
        // A failed unlink leaves a leftover that the next open removes.
        result
    }

    /// Reads one entry.
    pub fn read(&self, index: u64) -> Result<Entry> {
        let mut v = self.read_range(index..index.saturating_add(1))?;
        v.pop().ok_or(WalError::OutOfRange { index, first: 0, next: 0 })
    }

    /// Reads the entries with indexes in `range` (which must lie within
    /// `first_index()..next_index()`). Every record read is checked against its CRC.
    pub fn read_range(&self, range: Range<u64>) -> Result<Vec<Entry>> {
        let mut out = Vec::new();
        self.read_range_with(range, |e| {
            out.push(e);
            true
        })?;
        Ok(out)
    }

    /// Like [`NativeWal::read_range`], handing entries to `f` until it returns false.
    pub fn read_range_with(
        &self,
        range: Range<u64>,
        mut f: impl FnMut(Entry) -> bool,
    ) -> Result<()> {
        if range.is_empty() {
            return Ok(());
        }
        let st = self.read_state();
        let first =
            st.segments.first().map_or(st.next_index, |s| s.header.first_index.max(st.purged + 1));
        for index in [range.start, range.end - 1] {
            if index < first || index >= st.next_index {
                return Err(WalError::OutOfRange { index, first, next: st.next_index });
            }
        }
        let mut si =
            st.segments.partition_point(|s| s.header.first_index <= range.start).saturating_sub(1);
        let mut index = range.start;
        while index < range.end {
            let Some(seg) = st.segments.get(si) else { break };
            let Some(mut ri) = seg.record_of(index) else {
                si += 1;
                continue;
            };
            while ri < seg.records.len() && index < range.end {
                let rec = seg.records[ri];
                let pending = (seg.active && !st.pending.is_empty())
                    .then_some((&st.pending[..], st.pending_off));
                for e in read_record_entries(seg, &rec, pending)? {
                    if e.index >= index && e.index < range.end {
                        index = e.index + 1;
                        if !f(e) {
                            return Ok(());
                        }
                    }
                }
                ri += 1;
            }
            si += 1;
        }
        Ok(())
    }
}

/// Copies `len` bytes from the start of `from` to the start of `to`, in 1 MiB
/// chunks.
fn copy_range(from: &dyn File, to: &dyn File, len: u64) -> std::io::Result<()> {
    let mut buf = vec![0u8; 1 << 20];
    let mut off = 0u64;
    while off < len {
        let n = usize::try_from((len - off).min(buf.len() as u64)).unwrap_or(buf.len());
        from.read_exact_at(&mut buf[..n], off)?;
        to.write_all_at(&buf[..n], off)?;
        off += n as u64;
    }
    Ok(())
}

/// Reads, checks and decodes the entries of one record.
/// `pending` holds the active segment's buffered bytes and their offset.
fn read_record_entries(
    seg: &Segment,
    rec: &RecordLoc,
    pending: Option<(&[u8], u64)>,
) -> Result<Vec<Entry>> {
    let total = RECORD_HEADER_LEN + rec.stored_len as usize;
    let corrupt = |offset: u64, kind: CorruptionKind| {
        WalError::Corrupt(Corruption::new(&seg.path, offset, kind).with_index(rec.first_index))
    };
    let buffered = pending.filter(|(_, off)| rec.offset >= *off).and_then(|(b, off)| {
        let start = usize::try_from(rec.offset - off).ok()?;
        b.get(start..start.checked_add(total)?)
    });
    let bytes: Cow<'_, [u8]> = match (&seg.map, buffered) {
        (_, Some(b)) => Cow::Borrowed(b),
        (Some(m), None) => {
            let all = (**m).as_ref();
            let start = usize::try_from(rec.offset).unwrap_or(usize::MAX);
            match all.get(start..start.saturating_add(total)) {
                Some(b) => Cow::Borrowed(b),
                None => {
                    return Err(corrupt(
                        rec.offset,
                        CorruptionKind::Truncated { needed: total as u64, available: 0 },
                    ))
                }
            }
        }
        (None, None) => {
            let mut b = vec![0u8; total];
            seg.file.read_exact_at(&mut b, rec.offset).map_err(|e| WalError::io(&seg.path, e))?;
            Cow::Owned(b)
        }
    };
    let (hb, payload) = bytes.split_at(RECORD_HEADER_LEN);
    let h = RecordHeader::decode_unchecked(hb);
    let computed = record_crc(hb, payload);
    if h.crc != computed
        || h.first_index != rec.first_index
        || h.count != rec.count
        || h.stored_len != rec.stored_len
    {
        return Err(corrupt(
            rec.offset,
            CorruptionKind::ChecksumMismatch {
                stored: u64::from(h.crc),
                computed: u64::from(computed),
            },
        ));
    }
    let raw = decode_payload(h.flags, h.raw_len, payload)
        .map_err(|(off, kind)| corrupt(rec.offset + RECORD_HEADER_LEN as u64 + off, kind))?;
    let slots = entry_slots(&raw, h.count)
        .map_err(|(off, kind)| corrupt(rec.offset + RECORD_HEADER_LEN as u64 + off, kind))?;
    let mut out = Vec::with_capacity(slots.len());
    for (i, s) in slots.iter().enumerate() {
        out.push(Entry {
            index: rec.first_index + i as u64,
            term: s.term,
            payload: raw[s.start..s.end].to_vec(),
        });
    }
    Ok(out)
}

fn check_options(o: &NativeWalOptions) -> Result<()> {
    let bad = |m: String| Err(WalError::InvalidArgument(m));
    if !(SEGMENT_LEN_MIN..=SEGMENT_LEN_MAX).contains(&o.segment_len) {
        return bad(format!(
            "segment length {} outside {SEGMENT_LEN_MIN}..={SEGMENT_LEN_MAX}",
            o.segment_len
        ));
    }
    let l = &o.limits;
    if l.entry_len_max > ENTRY_LEN_MAX {
        return bad(format!("entry_len_max {} above {ENTRY_LEN_MAX}", l.entry_len_max));
    }
    if l.batch_len_max > RECORD_LEN_MAX {
        return bad(format!("batch_len_max {} above {RECORD_LEN_MAX}", l.batch_len_max));
    }
    if l.batch_entries_max == 0 || l.batch_entries_max > RECORD_ENTRIES_MAX {
        return bad(format!(
            "batch_entries_max {} outside 1..={RECORD_ENTRIES_MAX}",
            l.batch_entries_max
        ));
    }
    Ok(())
}
