//! `verify`, `repair`, `inspect` and `iter_entries` on damaged native logs.
//!
//! Guards against silent corruption (a flipped bit anywhere in a log that `verify`
//! does not name with its segment and offset), a repair that loses acknowledged data
//! or leaves no backup, a repair that "fixes" mid-log corruption by cutting or
//! re-checksumming it, and stale or misplaced segments going unnoticed.

#![allow(clippy::unwrap_used, clippy::cast_possible_truncation)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use keeperkit_vfs::{FaultFs, FileSystem, OpenMode, StdFs};
use keeperkit_wal::native::{
    inspect, iter_entries, repair, repair_plan, verify, Entry, NativeWal, NativeWalOptions,
    ProblemKind, RecoveryMode, RepairAction, SegmentStatus,
};
use keeperkit_wal::WalError;

fn payload(index: u64) -> Vec<u8> {
    (0..(50 + index % 13 * 20))
        .map(|i| (index as u8).wrapping_mul(7).wrapping_add(i as u8))
        .collect()
}

fn build(fs: &Arc<dyn FileSystem>, dir: &Path, n: u64) -> NativeWalOptions {
    let mut o = NativeWalOptions::new(dir);
    o.segment_len = 4096;
    let wal = NativeWal::open(Arc::clone(fs), o.clone()).unwrap();
    let mut i = 1;
    while i <= n {
        // Mostly single entries, some batches, one compressed batch.
        let k = if i % 10 == 0 { 3.min(n - i + 1) } else { 1 };
        let es: Vec<Entry> =
            (i..i + k).map(|j| Entry { index: j, term: 1 + j / 40, payload: payload(j) }).collect();
        let refs: Vec<_> = es.iter().map(Entry::as_ref).collect();
        wal.append(&refs).unwrap();
        i += k;
    }
    o
}

fn files(fs: &dyn FileSystem, dir: &Path) -> Vec<(PathBuf, u64)> {
    fs.read_dir(dir).unwrap().into_iter().map(|e| (dir.join(e.name), e.len)).collect()
}

fn check_all(entries: impl Iterator<Item = Result<Entry, WalError>>) -> (u64, Option<WalError>) {
    let mut n = 0;
    for e in entries {
        match e {
            Ok(e) => {
                assert_eq!(e.payload, payload(e.index));
                n += 1;
            }
            Err(err) => return (n, Some(err)),
        }
    }
    (n, None)
}

#[test]
fn every_flipped_bit_is_named_by_verify() {
    let fault = FaultFs::default();
    let fs: Arc<dyn FileSystem> = Arc::new(fault.clone());
    let dir = PathBuf::from("/log");
    build(&fs, &dir, 120);
    assert!(verify(fs.as_ref(), &dir).unwrap().is_empty());
    let all = files(fs.as_ref(), &dir);
    assert!(all.len() >= 4, "{all:?}");
    let mut checked = 0;
    for (path, len) in &all {
        // Every byte of every file (segments, preallocated zeros, metadata), one bit
        // each, cycling through the bit positions.
        let offsets = 0..*len;
        for off in offsets {
            let bit = (off % 8) as u8;
            fault.flip_bit(path, off, bit).unwrap();
            let problems = verify(fs.as_ref(), &dir).unwrap();
            let hit = problems.iter().find(|p| &p.path == path);
            let Some(p) = hit else {
                panic!("flip at {}:{off} bit {bit} not reported: {problems:?}", path.display());
            };
            assert!(
                p.offset <= off,
                "{}:{off}: reported offset {} is after the flip",
                path.display(),
                p.offset
            );
            assert!(
                off - p.offset < 4096,
                "{}:{off}: reported offset {} too far",
                path.display(),
                p.offset
            );
            // The same damage makes a strict open fail, naming the file.
            let mut o = NativeWalOptions::new(&dir);
            o.segment_len = 4096;
            o.recovery = RecoveryMode::Strict;
            let err = NativeWal::open(Arc::clone(&fs), o).unwrap_err();
            assert!(err.to_string().contains(path.to_str().unwrap()), "{err}");
            fault.flip_bit(path, off, bit).unwrap();
            checked += 1;
        }
    }
    assert!(verify(fs.as_ref(), &dir).unwrap().is_empty());
    println!("native_verify: {checked} flips checked");
}

#[test]
fn torn_tail_repair_keeps_a_backup() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    let backup = tmp.path().join("backup");
    let fs: Arc<dyn FileSystem> = Arc::new(StdFs);
    let opts = build(&fs, &dir, 60);
    let info = inspect(fs.as_ref(), &dir).unwrap();
    let newest = info.segments.last().unwrap().clone();
    assert_eq!(newest.status, SegmentStatus::Ok);
    assert_eq!(info.last_index, Some(60));
    // A torn write: the first 30 bytes of a record header and some payload bytes.
    let f = fs.open(&newest.path, OpenMode::ReadWrite).unwrap();
    let mut torn = vec![0u8; 90];
    torn[..8].copy_from_slice(&[0xde, 0xad, 0xbe, 0xef, 0x40, 0, 0, 0]);
    torn[40..90].fill(0x5a);
    f.write_all_at(&torn, newest.data_end).unwrap();
    drop(f);
    let before = std::fs::read(&newest.path).unwrap();

    let problems = verify(fs.as_ref(), &dir).unwrap();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0].is_torn_tail());
    assert_eq!(problems[0].path, newest.path);
    assert_eq!(problems[0].offset, newest.data_end);
    assert_eq!(problems[0].index, Some(61));

    // Strict open refuses, naming the segment.
    let mut strict = opts.clone();
    strict.recovery = RecoveryMode::Strict;
    match NativeWal::open(Arc::clone(&fs), strict.clone()) {
        Err(WalError::TornTail(p)) => assert_eq!(p.path, newest.path),
        other => panic!("expected a torn tail error, got {other:?}"),
    }
    // Listing serves everything before the tear, then reports it.
    let (n, err) = check_all(iter_entries(fs.as_ref(), &dir, 0, u64::MAX).unwrap());
    assert_eq!(n, 60);
    assert!(matches!(err, Some(WalError::TornTail(_))), "{err:?}");

    let plan = repair_plan(fs.as_ref(), &dir).unwrap();
    assert!(plan.refused.is_empty());
    assert_eq!(plan.actions.len(), 1);
    match &plan.actions[0] {
        RepairAction::CutTornTail { path, new_len, last_good_index, .. } => {
            assert_eq!(path, &newest.path);
            assert_eq!(*new_len, newest.data_end);
            assert_eq!(*last_good_index, Some(60));
        }
        a => panic!("unexpected action {a:?}"),
    }
    let report = repair(fs.as_ref(), &dir, &backup).unwrap();
    assert_eq!(report.performed, plan.actions);
    assert_eq!(report.backups.len(), 1);
    assert_eq!(std::fs::read(&report.backups[0]).unwrap(), before, "backup holds the original");
    assert!(verify(fs.as_ref(), &dir).unwrap().is_empty());
    let wal = NativeWal::open(Arc::clone(&fs), strict).unwrap();
    assert_eq!(wal.last_index(), Some(60));
    for e in wal.read_range(1..61).unwrap() {
        assert_eq!(e.payload, payload(e.index));
    }
    // Nothing left to do.
    drop(wal);
    let again = repair(fs.as_ref(), &dir, &backup).unwrap();
    assert!(again.performed.is_empty() && again.refused.is_empty());
}

#[test]
fn tolerant_open_cuts_and_reports_the_torn_tail() {
    let fault = FaultFs::default();
    let fs: Arc<dyn FileSystem> = Arc::new(fault.clone());
    let dir = PathBuf::from("/log");
    let opts = build(&fs, &dir, 30);
    let info = inspect(fs.as_ref(), &dir).unwrap();
    let newest = info.segments.last().unwrap().clone();
    let f = fs.open(&newest.path, OpenMode::ReadWrite).unwrap();
    f.write_all_at(&[7u8; 20], newest.data_end).unwrap();
    f.sync_data().unwrap();
    let wal = NativeWal::open(Arc::clone(&fs), opts).unwrap();
    let cut = wal.recovery_report().torn_tail.clone().unwrap();
    assert_eq!(cut.path, newest.path);
    assert_eq!(cut.new_len, newest.data_end);
    assert_eq!(cut.old_len, newest.file_len);
    assert_eq!(cut.last_good_index, Some(30));
    assert_eq!(wal.last_index(), Some(30));
}

#[test]
fn mid_log_corruption_is_refused_not_repaired() {
    let fault = FaultFs::default();
    let fs: Arc<dyn FileSystem> = Arc::new(fault.clone());
    let dir = PathBuf::from("/log");
    let opts = build(&fs, &dir, 120);
    let info = inspect(fs.as_ref(), &dir).unwrap();
    let second = &info.segments[1];
    // Damage a record in the middle of a sealed segment.
    let off = second.data_end / 2;
    fault.flip_bit(&second.path, off, 1).unwrap();
    let before = fault.durable_contents(&second.path).unwrap();
    let plan = repair_plan(fs.as_ref(), &dir).unwrap();
    assert!(plan.actions.is_empty());
    assert_eq!(plan.refused.len(), 1);
    assert_eq!(plan.refused[0].0.path, second.path);
    assert!(matches!(plan.refused[0].0.kind, ProblemKind::Corrupt(_)));
    assert!(plan.refused[0].1.contains("not a torn tail"));
    let report = repair(fs.as_ref(), &dir, Path::new("/backup")).unwrap();
    assert!(report.performed.is_empty());
    assert_eq!(report.refused.len(), 1);
    assert_eq!(fault.durable_contents(&second.path).unwrap(), before, "nothing was changed");
    assert!(!fs.exists(Path::new("/backup")));
    // Neither recovery mode opens it.
    let err = NativeWal::open(Arc::clone(&fs), opts).unwrap_err();
    let c = err.corruption().unwrap();
    assert_eq!(c.file, second.path);
    assert!(c.index.is_some());
    // Listing stops before the damage and reports it.
    let (n, err) = check_all(iter_entries(fs.as_ref(), &dir, 0, u64::MAX).unwrap());
    assert!(n >= info.segments[0].entries && n < 120, "{n}");
    assert!(matches!(err, Some(WalError::Corrupt(_))));
}

#[test]
fn damage_in_the_newest_segment_before_a_synced_record_is_corruption() {
    // Every append below was synced, so each record's durable mark covers the ones
    // before it: a bad record followed by a good one is damage, not a torn write.
    let fault = FaultFs::default();
    let fs: Arc<dyn FileSystem> = Arc::new(fault.clone());
    let dir = PathBuf::from("/log");
    build(&fs, &dir, 10);
    let info = inspect(fs.as_ref(), &dir).unwrap();
    let seg = &info.segments[0];
    assert_eq!(info.segments.len(), 1);
    fault.flip_bit(&seg.path, 64 + 45, 0).unwrap(); // payload of the first record
    let problems = verify(fs.as_ref(), &dir).unwrap();
    assert_eq!(problems.len(), 1);
    assert!(matches!(problems[0].kind, ProblemKind::Corrupt(_)), "{problems:?}");
    assert_eq!(problems[0].offset, 64);
    assert_eq!(problems[0].index, Some(1));
}

#[test]
fn stale_missing_and_foreign_segments_are_detected() {
    let fault = FaultFs::default();
    let fs: Arc<dyn FileSystem> = Arc::new(fault.clone());
    let dir = PathBuf::from("/log");
    build(&fs, &dir, 120);
    let info = inspect(fs.as_ref(), &dir).unwrap();
    assert!(info.segments.len() >= 4);

    // A segment from another log dropped in place of ours.
    let other = PathBuf::from("/other");
    build(&fs, &other, 120);
    let victim = info.segments[2].path.clone();
    let saved = fs.read_all(&victim).unwrap();
    let foreign = fs.read_all(&other.join(victim.file_name().unwrap())).unwrap();
    let f = fs.open(&victim, OpenMode::CreateTruncate).unwrap();
    f.write_all_at(&foreign, 0).unwrap();
    let problems = verify(fs.as_ref(), &dir).unwrap();
    assert!(
        problems
            .iter()
            .any(|p| p.path == victim
                && p.to_corruption().kind.to_string().contains("belongs to log")),
        "{problems:?}"
    );
    f.set_len(0).unwrap();
    f.write_all_at(&saved, 0).unwrap();
    drop(f);
    assert!(verify(fs.as_ref(), &dir).unwrap().is_empty());

    // A missing segment in the middle.
    let mid = info.segments[1].path.clone();
    let mid_bytes = fs.read_all(&mid).unwrap();
    fs.remove_file(&mid).unwrap();
    let problems = verify(fs.as_ref(), &dir).unwrap();
    assert!(
        problems.iter().any(|p| p.to_corruption().kind.to_string().contains("missing")),
        "{problems:?}"
    );
    fs.open(&mid, OpenMode::CreateNew).unwrap().write_all_at(&mid_bytes, 0).unwrap();

    // A stale segment: an old copy of the newest segment's successor position.
    // Renaming segment 3 to segment 2's name breaks the sequence/link checks.
    let s2 = info.segments[1].path.clone();
    let s3 = info.segments[2].path.clone();
    let s2_bytes = fs.read_all(&s2).unwrap();
    fs.rename(&s3, &s2).unwrap();
    let problems = verify(fs.as_ref(), &dir).unwrap();
    assert!(!problems.is_empty());
    assert!(problems.iter().all(|p| !p.is_torn_tail()), "{problems:?}");
    let _ = s2_bytes;
}
