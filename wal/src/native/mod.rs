//! keeperkit's native write-ahead log: segmented, CRC32-checked, group-committed.
//!
//! A log is a directory holding a metadata file (`meta`: log id, term, vote, purge
//! marker) and segment files `seg-<seq as 16 hex digits>.wal`. Each segment starts
//! with a 64-byte header (magic, version, log id, sequence number, first index, and a
//! link to the previous segment: the term of the entry before its first one and the
//! CRC of the previous segment's header). Records follow, one per append batch: a
//! 40-byte header (CRC-32, lengths, entry count, first index, term, a durable mark,
//! flags) and a payload of entries (term, length, bytes), zstd-compressed above a
//! size threshold. `docs/FORMAT.md` ("Native WAL") documents every byte.
//!
//! # Guarantees
//!
//! - An append returns only when its bytes are durable under [`SyncPolicy::Always`]
//!   and [`SyncPolicy::GroupCommit`]; concurrent appenders share one `fdatasync`
//!   (a leader syncs for everyone who wrote before it started).
//! - A crash at any instant loses no acknowledged entry, and the log opens again with
//!   [`RecoveryMode::TolerateTornTail`]: only a torn tail of the newest segment is cut
//!   (reported in [`RecoveryReport`]); anything else wrong is an error naming the
//!   segment, the byte offset and the index ([`WalError::Corrupt`]).
//! - A torn tail is told apart from corruption in the middle: every record carries a
//!   *durable mark*, the number of bytes of its segment that were known durable when
//!   it was written. A bad record followed by a valid record whose mark covers the bad
//!   one was damaged after it had been synced: corruption, never cut silently.
//! - Every create, rename, truncation and unlink is followed by the fsyncs that make
//!   it durable, the directory's included.
//! - Limits ([`Limits`], and the hard caps in [`format`](mod@format)) are checked before anything
//!   is written; every length read from disk is checked before anything is allocated.
//! - A failed fsync poisons the writer: every later append fails with
//!   [`WalError::Poisoned`] until the log is reopened. The unsynced tail is cut
//!   back to the last durable record first, so that a reopen without a reboot does
//!   not serve bytes the kernel may have dropped (Linux "fsyncgate").
//! - `ENOSPC` fails the append and changes nothing that was acknowledged; the log
//!   stays readable and appendable once space comes back.
//!
//! Sealed segments are read through a read-only memory map ([`keeperkit_vfs::File::map`]);
//! the active one with positional reads. A mapped file truncated by *another* process
//! would raise `SIGBUS`: the data directory belongs to one process.
//!
//! The offline functions [`inspect`], [`verify`], [`repair_plan`], [`repair`] and
//! [`iter_entries`] never modify anything except `repair`, and share the scanning and
//! torn-tail code with [`NativeWal::open`].

use std::path::PathBuf;
use std::time::Duration;

use keeperkit_model::CorruptionKind;

use crate::WalError;

pub mod format;
mod scan;
mod tools;
mod wal;

pub use scan::{Problem, ProblemKind};
pub use tools::{
    inspect, iter_entries, repair, repair_plan, verify, EntryIter, MetaInfo, NativeLogInfo,
    RepairAction, RepairPlan, RepairReport, SegmentInfo, SegmentStatus,
};
pub use wal::NativeWal;

/// Name of the metadata file in a log directory.
pub const META_FILE_NAME: &str = "meta";

/// Suffix of temporary files (written, fsynced, then renamed into place).
pub const TEMP_SUFFIX: &str = ".tmp";

/// The file name of the segment with sequence number `seq`.
pub fn segment_file_name(seq: u64) -> String {
    format!("seg-{seq:016x}.wal")
}

/// The sequence number in a segment file name, if `name` is one.
pub fn parse_segment_file_name(name: &str) -> Option<u64> {
    let hex = name.strip_prefix("seg-")?.strip_suffix(".wal")?;
    if hex.len() != 16 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u64::from_str_radix(hex, 16).ok()
}

/// One log entry, owned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Log index (starts at 1; contiguous).
    pub index: u64,
    /// Raft term (or Zab epoch) of the entry.
    pub term: u64,
    /// Opaque payload.
    pub payload: Vec<u8>,
}

impl Entry {
    /// A borrowed view, for [`NativeWal::append`].
    pub fn as_ref(&self) -> EntryRef<'_> {
        EntryRef { index: self.index, term: self.term, payload: &self.payload }
    }
}

/// One log entry to append, borrowed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EntryRef<'a> {
    /// Log index: the first entry of a batch must be [`NativeWal::next_index`], and
    /// the batch contiguous.
    pub index: u64,
    /// Raft term (or Zab epoch).
    pub term: u64,
    /// Opaque payload, at most [`Limits::entry_len_max`] bytes.
    pub payload: &'a [u8],
}

/// Term and vote, persisted in the metadata file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HardState {
    /// Current term.
    pub term: u64,
    /// Node voted for in the current term.
    pub vote: Option<u64>,
}

/// When appends are made durable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncPolicy {
    /// Every append returns after an `fdatasync` covering it. Concurrent appenders
    /// share syncs: whoever finds no sync running leads one for everybody.
    Always,
    /// Like `Always`, but a sync leader first waits `max_delay` so that more appenders
    /// join its sync; an append returns after at most about `max_delay` plus one sync.
    GroupCommit {
        /// How long a leader waits before syncing.
        max_delay: Duration,
    },
    /// Appends return once written to the OS; only [`NativeWal::sync`], segment
    /// rotation, truncation and purges sync.
    Never,
}

/// What to do with problems found when opening.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecoveryMode {
    /// Any problem, a torn tail included, is an error.
    Strict,
    /// Cut a torn tail of the newest segment (then fsync, and report it in
    /// [`NativeWal::recovery_report`]); anything else is an error.
    TolerateTornTail,
}

/// Size limits, checked before anything is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest payload of one entry (at most [`format::ENTRY_LEN_MAX`]).
    pub entry_len_max: usize,
    /// Largest encoded batch: the sum of (12 + payload length) over its entries (at
    /// most [`format::RECORD_LEN_MAX`]).
    pub batch_len_max: usize,
    /// Most entries in one batch (at most [`format::RECORD_ENTRIES_MAX`]).
    pub batch_entries_max: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { entry_len_max: 16 << 20, batch_len_max: 64 << 20, batch_entries_max: 1 << 20 }
    }
}

/// How to open a native log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NativeWalOptions {
    /// The log directory (created if missing).
    pub dir: PathBuf,
    /// When appends become durable.
    pub sync: SyncPolicy,
    /// What to do with a torn tail.
    pub recovery: RecoveryMode,
    /// Target size of a segment file in bytes (between [`format::SEGMENT_LEN_MIN`]
    /// and [`format::SEGMENT_LEN_MAX`]); a segment exceeds it by at most one record.
    pub segment_len: u64,
    /// Extend new segments to `segment_len` with zeros when they are created, so
    /// appends do not grow the file.
    pub preallocate: bool,
    /// Compress a batch with zstd when its raw size is at least this many bytes
    /// (and compression makes it smaller); `None` never compresses.
    pub compress_threshold: Option<usize>,
    /// zstd level used for compressed batches.
    pub zstd_level: i32,
    /// Size limits.
    pub limits: Limits,
}

impl NativeWalOptions {
    /// Defaults: sync every append, tolerate a torn tail, 64 MiB preallocated
    /// segments, zstd level 1 for batches of 64 KiB or more.
    pub fn new(dir: impl Into<PathBuf>) -> NativeWalOptions {
        NativeWalOptions {
            dir: dir.into(),
            sync: SyncPolicy::Always,
            recovery: RecoveryMode::TolerateTornTail,
            segment_len: 64 << 20,
            preallocate: true,
            compress_threshold: Some(64 << 10),
            zstd_level: 1,
            limits: Limits::default(),
        }
    }
}

/// A torn tail cut when opening (or by [`repair`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TornTailCut {
    /// The segment that was cut.
    pub path: PathBuf,
    /// Its length before (preallocated zeros included).
    pub old_len: u64,
    /// Its length after: the end of its last valid record.
    pub new_len: u64,
    /// The first byte that was not zero at or after the cut.
    pub first_bad_offset: u64,
    /// The last index kept in the log, if any.
    pub last_good_index: Option<u64>,
    /// Why the bytes at the cut were not a valid record.
    pub cause: CorruptionKind,
}

/// What [`NativeWal::open`] changed on disk.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Whether the directory was empty and a new log was created.
    pub created: bool,
    /// The torn tail that was cut, if any.
    pub torn_tail: Option<TornTailCut>,
    /// Temporary files left by a crash, removed.
    pub removed_temp_files: Vec<PathBuf>,
    /// Segments whose entries were all purged, left by a crash during a purge,
    /// removed.
    pub removed_purged_segments: Vec<PathBuf>,
}

/// Result type of this module.
pub type Result<T, E = WalError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::path::{Path, PathBuf};
    use std::sync::Arc;

    use keeperkit_vfs::{FileSystem, StdFs};

    use super::*;

    fn append(wal: &NativeWal, range: std::ops::Range<u64>) {
        for i in range {
            let payload = vec![u8::try_from(i % 251).unwrap(); 60];
            wal.append(&[EntryRef { index: i, term: 1, payload: &payload }]).unwrap();
        }
    }

    fn meta(dir: &Path) -> format::MetaRecord {
        format::MetaRecord::decode(&std::fs::read(dir.join(META_FILE_NAME)).unwrap()).unwrap()
    }

    fn newest(dir: &Path) -> PathBuf {
        let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.to_str().unwrap().ends_with(".wal"))
            .collect();
        v.sort();
        v.pop().unwrap()
    }

    /// A log directory in a fresh temporary directory (kept alive by the first value),
    /// with 4 KiB segments.
    fn small_segments() -> (tempfile::TempDir, Arc<dyn FileSystem>, NativeWalOptions) {
        let tmp = tempfile::tempdir().unwrap();
        let mut o = NativeWalOptions::new(tmp.path().join("log"));
        o.segment_len = 4096;
        (tmp, Arc::new(StdFs), o)
    }

    #[test]
    fn the_metadata_durable_mark_turns_zeroed_synced_records_into_damage() {
        let (_tmp, fs, o) = small_segments();
        let dir = o.dir.clone();
        let wal = NativeWal::open(fs.clone(), o.clone()).unwrap();
        append(&wal, 1..41);
        drop(wal);
        let seg = newest(&dir);
        let seq = parse_segment_file_name(seg.file_name().unwrap().to_str().unwrap()).unwrap();
        let bytes = std::fs::read(&seg).unwrap();
        let a = scan::analyze(fs.as_ref(), &dir, false).unwrap();
        let end = a.segments.last().unwrap().scan.data_end;
        assert_eq!(meta(&dir).durable, Some(format::DurableMark { seq, end }), "closing marks");
        let records = &a.segments.last().unwrap().scan.records;
        assert!(records.len() >= 3);
        // Zeros from inside the first record of the newest segment to its end: no
        // record header is left to show the bytes had been synced.
        let from = usize::try_from(records[0].offset).unwrap() + 50;
        let mut z = bytes.clone();
        z[from..].fill(0);
        std::fs::write(&seg, &z).unwrap();
        let problems = verify(fs.as_ref(), &dir).unwrap();
        assert!(!problems.is_empty() && problems.iter().all(|p| !p.is_torn_tail()), "{problems:?}");
        assert!(matches!(NativeWal::open(fs.clone(), o.clone()), Err(WalError::Corrupt(_))));
        // Cut at a record boundary: records missing below the mark.
        std::fs::write(&seg, &bytes[..usize::try_from(records[1].offset).unwrap()]).unwrap();
        let problems = verify(fs.as_ref(), &dir).unwrap();
        assert!(!problems.is_empty() && problems.iter().all(|p| !p.is_torn_tail()), "{problems:?}");
        // Damage past the mark is still a torn tail: a record appended after the mark.
        std::fs::write(&seg, &bytes).unwrap();
        let mut m = meta(&dir);
        m.durable = Some(format::DurableMark { seq, end: records[1].offset });
        std::fs::write(dir.join(META_FILE_NAME), m.encode()).unwrap();
        let mut t = bytes.clone();
        t[usize::try_from(end).unwrap() - 3] ^= 1;
        std::fs::write(&seg, &t).unwrap();
        let problems = verify(fs.as_ref(), &dir).unwrap();
        assert!(problems.len() == 1 && problems[0].is_torn_tail(), "{problems:?}");
        std::fs::write(&seg, &bytes).unwrap();
        // Opening raises the mark back to the segment's end.
        drop(NativeWal::open(fs.clone(), o.clone()).unwrap());
        assert_eq!(meta(&dir).durable, Some(format::DurableMark { seq, end }));
    }

    #[test]
    fn truncation_lowers_the_mark_and_purging_its_segment_clears_it() {
        let (_tmp, fs, o) = small_segments();
        let dir = o.dir.clone();
        let wal = NativeWal::open(fs.clone(), o.clone()).unwrap();
        append(&wal, 1..81);
        drop(wal);
        let before = meta(&dir).durable.unwrap();
        let wal = NativeWal::open(fs.clone(), o.clone()).unwrap();
        // Back into an older segment: the mark follows, before anything is removed.
        wal.truncate_suffix(10).unwrap();
        let after = meta(&dir).durable.unwrap();
        assert!(after < before && after.seq == 1, "{before:?} -> {after:?}");
        append(&wal, 10..30);
        drop(wal);
        assert!(verify(fs.as_ref(), &dir).unwrap().is_empty());
        let wal = NativeWal::open(fs.clone(), o.clone()).unwrap();
        assert_eq!(wal.next_index(), 30);
        wal.purge(29).unwrap();
        assert_eq!(meta(&dir).durable, None, "every segment went");
        append(&wal, 30..35);
        drop(wal);
        assert!(verify(fs.as_ref(), &dir).unwrap().is_empty());
        let wal = NativeWal::open(fs, o).unwrap();
        assert_eq!(wal.next_index(), 35);
    }

    #[test]
    fn segment_names_roundtrip() {
        assert_eq!(segment_file_name(26), "seg-000000000000001a.wal");
        assert_eq!(parse_segment_file_name("seg-000000000000001a.wal"), Some(26));
        assert_eq!(parse_segment_file_name("seg-000000000000001a.wal.tmp"), None);
        assert_eq!(parse_segment_file_name("seg-1a.wal"), None);
        assert_eq!(parse_segment_file_name("meta"), None);
    }
}
