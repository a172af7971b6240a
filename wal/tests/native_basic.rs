//! The native WAL's API contract: appends, reads, rotation, suffix truncation, prefix
//! purge, term/vote metadata, compression, limits and group commit, each checked
//! across a reopen. Guards against a log that works in memory but reads back
//! differently from disk, or accepts input it cannot store.

#![allow(clippy::unwrap_used, clippy::cast_possible_truncation)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use keeperkit_vfs::{FaultFs, FileSystem, StdFs};
use keeperkit_wal::native::{Entry, EntryRef, HardState, NativeWal, NativeWalOptions, SyncPolicy};
use keeperkit_wal::WalError;

fn payload(index: u64, len: usize) -> Vec<u8> {
    (0..len).map(|i| (index as usize * 31 + i) as u8).collect()
}

fn entry(index: u64, term: u64, len: usize) -> Entry {
    Entry { index, term, payload: payload(index, len) }
}

fn opts(dir: &Path) -> NativeWalOptions {
    let mut o = NativeWalOptions::new(dir);
    o.segment_len = 4096;
    o
}

fn append_range(wal: &NativeWal, range: std::ops::Range<u64>, term: u64, len: usize) {
    let entries: Vec<Entry> = range.map(|i| entry(i, term, len)).collect();
    let refs: Vec<EntryRef<'_>> = entries.iter().map(Entry::as_ref).collect();
    wal.append(&refs).unwrap();
}

fn check_range(wal: &NativeWal, range: std::ops::Range<u64>, term: u64, len: usize) {
    let got = wal.read_range(range.clone()).unwrap();
    assert_eq!(got.len() as u64, range.end - range.start);
    for (e, i) in got.iter().zip(range) {
        assert_eq!(*e, entry(i, term, len), "entry {i}");
    }
}

fn fault_fs() -> (Arc<dyn FileSystem>, PathBuf) {
    (Arc::new(FaultFs::default()), PathBuf::from("/log"))
}

#[test]
fn append_read_rotate_reopen() {
    let (fs, dir) = fault_fs();
    let wal = NativeWal::open(Arc::clone(&fs), opts(&dir)).unwrap();
    assert!(wal.recovery_report().created);
    assert_eq!((wal.first_index(), wal.last_index(), wal.next_index()), (None, None, 1));
    for i in 1..=200u64 {
        append_range(&wal, i..i + 1, 1 + i / 50, 100);
    }
    assert_eq!((wal.first_index(), wal.last_index()), (Some(1), Some(200)));
    let segs = fs.read_dir(&dir).unwrap().iter().filter(|e| e.name.starts_with("seg-")).count();
    assert!(segs > 3, "small segments rotate: {segs}");
    for i in [1u64, 37, 200] {
        assert_eq!(wal.read(i).unwrap(), entry(i, 1 + i / 50, 100));
    }
    drop(wal);
    let wal = NativeWal::open(Arc::clone(&fs), opts(&dir)).unwrap();
    assert_eq!(wal.recovery_report().torn_tail, None);
    assert_eq!((wal.first_index(), wal.last_index()), (Some(1), Some(200)));
    let all = wal.read_range(1..201).unwrap();
    for (k, e) in all.iter().enumerate() {
        let i = k as u64 + 1;
        assert_eq!(*e, entry(i, 1 + i / 50, 100));
    }
    assert_eq!(wal.last_term(), 5);
    assert!(keeperkit_wal::native::verify(fs.as_ref(), &dir).unwrap().is_empty());
}

#[test]
fn batches_split_truncation_and_compression() {
    let (fs, dir) = fault_fs();
    let mut o = opts(&dir);
    o.segment_len = 64 << 10;
    o.compress_threshold = Some(1024);
    let wal = NativeWal::open(Arc::clone(&fs), o.clone()).unwrap();
    append_range(&wal, 1..11, 1, 300); // compressible? payload pattern repeats: yes
    append_range(&wal, 11..21, 2, 10);
    let info = keeperkit_wal::native::inspect(fs.as_ref(), &dir).unwrap();
    assert_eq!(info.segments[0].records, 2);
    assert_eq!(info.segments[0].compressed_records, 1);
    // Truncate inside the first (compressed) batch: the segment is rewritten.
    wal.truncate_suffix(6).unwrap();
    assert_eq!(wal.last_index(), Some(5));
    check_range(&wal, 1..6, 1, 300);
    append_range(&wal, 6..9, 3, 7);
    drop(wal);
    let wal = NativeWal::open(Arc::clone(&fs), o).unwrap();
    check_range(&wal, 1..6, 1, 300);
    check_range(&wal, 6..9, 3, 7);
    assert_eq!(wal.last_term(), 3);
    assert!(keeperkit_wal::native::verify(fs.as_ref(), &dir).unwrap().is_empty());
}

#[test]
fn truncate_across_segments_and_at_boundaries() {
    let (fs, dir) = fault_fs();
    let wal = NativeWal::open(Arc::clone(&fs), opts(&dir)).unwrap();
    for i in 1..=100u64 {
        append_range(&wal, i..i + 1, 1, 200);
    }
    wal.truncate_suffix(150).unwrap(); // past the end: nothing
    assert_eq!(wal.last_index(), Some(100));
    wal.truncate_suffix(40).unwrap();
    assert_eq!(wal.last_index(), Some(39));
    assert!(wal.read(40).is_err());
    append_range(&wal, 40..60, 2, 50);
    drop(wal);
    let wal = NativeWal::open(Arc::clone(&fs), opts(&dir)).unwrap();
    check_range(&wal, 1..40, 1, 200);
    check_range(&wal, 40..60, 2, 50);
    // Truncate to the very first index: an empty log that continues at 1.
    wal.truncate_suffix(1).unwrap();
    assert_eq!((wal.first_index(), wal.last_index(), wal.next_index()), (None, None, 1));
    append_range(&wal, 1..3, 9, 5);
    drop(wal);
    let wal = NativeWal::open(Arc::clone(&fs), opts(&dir)).unwrap();
    check_range(&wal, 1..3, 9, 5);
    assert!(keeperkit_wal::native::verify(fs.as_ref(), &dir).unwrap().is_empty());
}

#[test]
fn purge_prefix_and_everything() {
    let (fs, dir) = fault_fs();
    let wal = NativeWal::open(Arc::clone(&fs), opts(&dir)).unwrap();
    for i in 1..=100u64 {
        append_range(&wal, i..i + 1, 1, 200);
    }
    let before = fs.read_dir(&dir).unwrap().len();
    wal.purge(50).unwrap();
    assert_eq!(wal.first_index(), Some(51));
    assert!(fs.read_dir(&dir).unwrap().len() < before, "whole segments are unlinked");
    assert!(matches!(wal.read(50), Err(WalError::OutOfRange { .. })));
    assert!(wal.truncate_suffix(50).is_err());
    check_range(&wal, 51..101, 1, 200);
    drop(wal);
    let wal = NativeWal::open(Arc::clone(&fs), opts(&dir)).unwrap();
    assert_eq!((wal.first_index(), wal.last_index()), (Some(51), Some(100)));
    // Purge past the end: empty, continues after the marker.
    wal.purge(1000).unwrap();
    assert_eq!((wal.first_index(), wal.last_index(), wal.next_index()), (None, None, 1001));
    let err = wal.append(&[EntryRef { index: 101, term: 1, payload: b"x" }]).unwrap_err();
    assert!(matches!(err, WalError::NotContiguous { expected: 1001, found: 101 }));
    append_range(&wal, 1001..1004, 4, 10);
    drop(wal);
    let wal = NativeWal::open(Arc::clone(&fs), opts(&dir)).unwrap();
    assert_eq!((wal.first_index(), wal.last_index()), (Some(1001), Some(1003)));
    check_range(&wal, 1001..1004, 4, 10);
}

#[test]
fn hard_state_persists() {
    let (fs, dir) = fault_fs();
    let wal = NativeWal::open(Arc::clone(&fs), opts(&dir)).unwrap();
    assert_eq!(wal.hard_state(), HardState::default());
    wal.set_hard_state(HardState { term: 7, vote: Some(3) }).unwrap();
    wal.purge(10).unwrap();
    drop(wal);
    let wal = NativeWal::open(Arc::clone(&fs), opts(&dir)).unwrap();
    assert_eq!(wal.hard_state(), HardState { term: 7, vote: Some(3) });
    assert_eq!(wal.purged_index(), 10);
    wal.set_hard_state(HardState { term: 8, vote: None }).unwrap();
    drop(wal);
    let wal = NativeWal::open(fs, opts(&dir)).unwrap();
    assert_eq!(wal.hard_state(), HardState { term: 8, vote: None });
}

#[test]
fn limits_are_checked_before_writing() {
    let (fs, dir) = fault_fs();
    let mut o = opts(&dir);
    o.limits.entry_len_max = 1000;
    o.limits.batch_len_max = 2000;
    o.limits.batch_entries_max = 3;
    let wal = NativeWal::open(Arc::clone(&fs), o).unwrap();
    let big = vec![0u8; 1001];
    let e = wal.append(&[EntryRef { index: 1, term: 1, payload: &big }]).unwrap_err();
    assert!(matches!(e, WalError::LimitExceeded { what: "entry payload", .. }), "{e}");
    let p = vec![0u8; 900];
    let three: Vec<EntryRef<'_>> =
        (1..=3).map(|i| EntryRef { index: i, term: 1, payload: &p }).collect();
    assert!(matches!(wal.append(&three), Err(WalError::LimitExceeded { .. })));
    let four: Vec<EntryRef<'_>> =
        (1..=4).map(|i| EntryRef { index: i, term: 1, payload: b"" }).collect();
    assert!(matches!(wal.append(&four), Err(WalError::LimitExceeded { .. })));
    let gap = [
        EntryRef { index: 1, term: 1, payload: b"" },
        EntryRef { index: 3, term: 1, payload: b"" },
    ];
    assert!(matches!(wal.append(&gap), Err(WalError::NotContiguous { .. })));
    assert_eq!(wal.next_index(), 1);
    // Nothing reached the disk: the only segment-less state is an empty directory
    // apart from the metadata file.
    let names: Vec<String> = fs.read_dir(&dir).unwrap().into_iter().map(|e| e.name).collect();
    assert_eq!(names, ["meta"]);
    // Bad options are refused.
    let mut o = opts(&dir);
    o.segment_len = 10;
    assert!(matches!(NativeWal::open(Arc::clone(&fs), o), Err(WalError::InvalidArgument(_))));
}

#[test]
fn concurrent_appenders_share_syncs() {
    let fault = FaultFs::default();
    let fs: Arc<dyn FileSystem> = Arc::new(fault.clone());
    let dir = PathBuf::from("/log");
    for policy in
        [SyncPolicy::Always, SyncPolicy::GroupCommit { max_delay: Duration::from_micros(200) }]
    {
        let d = dir.join(format!("{policy:?}").replace(['{', '}', ' ', ':'], "_"));
        let mut o = opts(&d);
        o.segment_len = 1 << 20;
        o.sync = policy;
        let wal = Arc::new(NativeWal::open(Arc::clone(&fs), o.clone()).unwrap());
        let syncs_before = fault.stats().file_syncs;
        let threads: Vec<_> = (0..4u8)
            .map(|t| {
                let wal = Arc::clone(&wal);
                std::thread::spawn(move || {
                    let mut got = Vec::new();
                    for k in 0..100u8 {
                        let p = [t, k];
                        got.push((wal.append_next(1, &[&p]).unwrap().start, p));
                    }
                    got
                })
            })
            .collect();
        let mut acked = Vec::new();
        for t in threads {
            acked.extend(t.join().unwrap());
        }
        assert_eq!(wal.last_index(), Some(400));
        let syncs = fault.stats().file_syncs - syncs_before;
        assert!(syncs <= 400, "{syncs} syncs for 400 appends");
        drop(wal);
        fault.crash(1);
        let wal = NativeWal::open(Arc::clone(&fs), o).unwrap();
        for (index, p) in acked {
            assert_eq!(wal.read(index).unwrap().payload, p);
        }
    }
}

#[test]
fn real_disk_roundtrip_with_mmap() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    let fs: Arc<dyn FileSystem> = Arc::new(StdFs);
    let mut o = NativeWalOptions::new(&dir);
    o.segment_len = 64 << 10;
    let wal = NativeWal::open(Arc::clone(&fs), o.clone()).unwrap();
    for i in 1..=300u64 {
        append_range(&wal, i..i + 1, 2, 500);
    }
    // Sealed segments are read through their maps, the active one with pread.
    check_range(&wal, 1..301, 2, 500);
    wal.truncate_suffix(100).unwrap();
    wal.purge(20).unwrap();
    drop(wal);
    let wal = NativeWal::open(Arc::clone(&fs), o).unwrap();
    assert_eq!((wal.first_index(), wal.last_index()), (Some(21), Some(99)));
    check_range(&wal, 21..100, 2, 500);
    assert!(keeperkit_wal::native::verify(fs.as_ref(), &dir).unwrap().is_empty());
}

/// A file system where, once armed, the next directory fsync waits until released
/// (a purge stuck in its marker's fsync); the others pass.
#[derive(Debug)]
struct GatedFs {
    inner: FaultFs,
    gate: std::sync::Mutex<Gate>,
    cv: std::sync::Condvar,
}

#[derive(Debug, Default)]
struct Gate {
    armed: bool,
    held: bool,
    released: bool,
}

impl GatedFs {
    fn new() -> GatedFs {
        GatedFs {
            inner: FaultFs::default(),
            gate: std::sync::Mutex::new(Gate::default()),
            cv: std::sync::Condvar::new(),
        }
    }

    /// Arms the gate: the next directory fsync waits until [`GatedFs::release`].
    fn arm(&self) {
        *self.gate.lock().unwrap() = Gate { armed: true, ..Gate::default() };
    }

    /// Waits until a directory fsync is held at the gate.
    fn wait_held(&self) {
        let mut g = self.gate.lock().unwrap();
        while !g.held {
            g = self.cv.wait(g).unwrap();
        }
    }

    fn release(&self) {
        self.gate.lock().unwrap().released = true;
        self.cv.notify_all();
    }
}

impl FileSystem for GatedFs {
    fn open(
        &self,
        path: &Path,
        mode: keeperkit_vfs::OpenMode,
    ) -> std::io::Result<Arc<dyn keeperkit_vfs::File>> {
        self.inner.open(path, mode)
    }
    fn read_dir(&self, path: &Path) -> std::io::Result<Vec<keeperkit_vfs::DirEntry>> {
        self.inner.read_dir(path)
    }
    fn metadata(&self, path: &Path) -> std::io::Result<keeperkit_vfs::Metadata> {
        self.inner.metadata(path)
    }
    fn create_dir_all(&self, path: &Path) -> std::io::Result<()> {
        self.inner.create_dir_all(path)
    }
    fn rename(&self, from: &Path, to: &Path) -> std::io::Result<()> {
        self.inner.rename(from, to)
    }
    fn remove_file(&self, path: &Path) -> std::io::Result<()> {
        self.inner.remove_file(path)
    }
    fn remove_dir(&self, path: &Path) -> std::io::Result<()> {
        self.inner.remove_dir(path)
    }
    fn sync_dir(&self, path: &Path) -> std::io::Result<()> {
        let mut g = self.gate.lock().unwrap();
        if g.armed {
            g.armed = false;
            g.held = true;
            self.cv.notify_all();
            while !g.released {
                g = self.cv.wait(g).unwrap();
            }
        }
        drop(g);
        self.inner.sync_dir(path)
    }
}

/// A log of entries 1..=100 whose purge up to 50 runs on another thread and is held
/// inside its directory fsync (until `fs.release()`).
#[allow(clippy::type_complexity)]
fn purge_held_in_its_fsync(
) -> (Arc<GatedFs>, PathBuf, Arc<NativeWal>, std::thread::JoinHandle<Result<(), WalError>>) {
    let fs = Arc::new(GatedFs::new());
    let dir = PathBuf::from("/log");
    let wal = Arc::new(NativeWal::open(fs.clone(), opts(&dir)).unwrap());
    for i in 1..=100u64 {
        append_range(&wal, i..i + 1, 1, 200);
    }
    fs.arm();
    let purger = {
        let wal = Arc::clone(&wal);
        std::thread::spawn(move || wal.purge(50))
    };
    fs.wait_held();
    (fs, dir, wal, purger)
}

/// A purge (after every snapshot) must not stall appends while its marker and the
/// directory are fsynced: appends and syncs go on, and what they wrote survives the
/// purge and a reopen.
#[test]
fn appends_go_on_while_a_purge_syncs() {
    let (fs, dir, wal, purger) = purge_held_in_its_fsync();
    // The purge is inside its fsync: appends (rotating into new segments) and syncs
    // must complete meanwhile.
    let (tx, rx) = std::sync::mpsc::channel();
    let appender = {
        let wal = Arc::clone(&wal);
        std::thread::spawn(move || {
            for i in 101..=110u64 {
                let p = payload(i, 200);
                let r = wal.append_next(1, &[&p]).and_then(|r| wal.sync().map(|()| r));
                if tx.send(r).is_err() {
                    return;
                }
            }
        })
    };
    let mut got = Vec::new();
    for _ in 101..=110u64 {
        match rx.recv_timeout(Duration::from_secs(10)) {
            Ok(r) => got.push(r.unwrap()),
            Err(_) => break,
        }
    }
    fs.release();
    appender.join().unwrap();
    purger.join().unwrap().unwrap();
    assert_eq!(got.len(), 10, "appends waited for the purge's fsync");
    assert_eq!(got.last(), Some(&(110..111)));
    assert_eq!((wal.first_index(), wal.last_index()), (Some(51), Some(110)));
    check_range(&wal, 51..111, 1, 200);
    let wal = Arc::into_inner(wal).unwrap();
    drop(wal);
    let wal = NativeWal::open(fs.clone(), opts(&dir)).unwrap();
    assert_eq!((wal.first_index(), wal.last_index()), (Some(51), Some(110)));
    check_range(&wal, 51..111, 1, 200);
    assert!(keeperkit_wal::native::verify(&*fs, &dir).unwrap().is_empty());
}

/// While a purge is under way, a truncation below its point is refused as one below
/// a finished purge is.
#[test]
fn truncation_below_a_purge_under_way_is_refused() {
    let (fs, _dir, wal, purger) = purge_held_in_its_fsync();
    let (tx, rx) = std::sync::mpsc::channel();
    let truncater = {
        let wal = Arc::clone(&wal);
        std::thread::spawn(move || {
            let _ = tx.send(wal.truncate_suffix(40));
        })
    };
    let r = rx.recv_timeout(Duration::from_secs(10));
    fs.release();
    truncater.join().unwrap();
    purger.join().unwrap().unwrap();
    let r = r.expect("the truncation waited for the purge's fsync");
    assert!(matches!(r, Err(WalError::InvalidArgument(_))), "{r:?}");
    check_range(&wal, 51..101, 1, 200);
}

/// Installing a snapshot resets the log while a purge (after a snapshot of the node's
/// own) is under way: the reset waits for the purge instead of trying to truncate
/// below it, then drops the entries that do not continue the snapshot, or keeps
/// those that do.
#[test]
fn a_snapshot_reset_waits_for_a_purge_under_way() {
    for (term, kept) in [(2, None), (1, Some(100))] {
        let (fs, _dir, wal, purger) = purge_held_in_its_fsync();
        let (tx, rx) = std::sync::mpsc::channel();
        let resetter = {
            let wal = Arc::clone(&wal);
            std::thread::spawn(move || {
                let _ = tx.send(wal.reset_to_snapshot(60, term));
            })
        };
        let early = rx.recv_timeout(Duration::from_millis(300));
        assert!(early.is_err(), "the reset did not wait for the purge: {early:?}");
        fs.release();
        purger.join().unwrap().unwrap();
        let r = rx.recv_timeout(Duration::from_secs(10)).expect("the reset finished");
        resetter.join().unwrap();
        r.unwrap();
        assert_eq!(wal.purged_index(), 60, "term {term}");
        assert_eq!(wal.next_index(), kept.map_or(61, |l| l + 1), "term {term}");
        assert_eq!(wal.last_index(), kept, "term {term}");
        if kept.is_some() {
            check_range(&wal, 61..101, 1, 200);
        }
    }
}
