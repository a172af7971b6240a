//! ClickHouse Keeper changelog files and directories: guards against files Keeper
//! could not read or append to, round trips that change bytes, and startup/repair
//! decisions that differ from Keeper's (docs/formats/clickhouse.md, "Startup rules").

use std::path::{Path, PathBuf};

use keeperkit_model::keeper::{KeeperLogEntry, KeeperRequest};
use keeperkit_model::CorruptionKind;
use keeperkit_vfs::{FileSystem, StdFs};
use keeperkit_wal::clickhouse::startup::{
    apply_repair, plan_repair, plan_startup, verify_dir, ProblemKind, RepairAction, Resume,
};
use keeperkit_wal::clickhouse::zstd_stream::FRAME_TERMINATOR;
use keeperkit_wal::clickhouse::{
    encode_like, list_changelogs, read_file, ChangelogFile, ChangelogRecord, ChangelogWriter,
    ReadOptions, WriterOptions, VALUE_TYPE_APP_LOG,
};
use keeperkit_wal::WalError;

fn rec(index: u64, term: u64) -> ChangelogRecord {
    let e = KeeperLogEntry::new(
        index as i64,
        index as i64,
        KeeperRequest::Set {
            path: format!("/n{index}"),
            data: vec![b'x'; (index % 50) as usize],
            version: -1,
        },
        1_700_000_000_000 + index as i64,
    );
    ChangelogRecord::new(index, term, VALUE_TYPE_APP_LOG, e.encode())
}

fn write_dir(
    fs: &dyn FileSystem,
    dir: &Path,
    range: std::ops::RangeInclusive<u64>,
    opts: WriterOptions,
) -> Vec<PathBuf> {
    let mut w = ChangelogWriter::new(fs, dir, opts);
    for i in range {
        w.append(&rec(i, 1)).expect("append");
    }
    w.finish().expect("finish")
}

fn read_all(fs: &dyn FileSystem, dir: &Path) -> Vec<ChangelogFile> {
    list_changelogs(fs, dir)
        .expect("list")
        .files
        .iter()
        .map(|f| read_file(fs, &f.path, ReadOptions::default()).expect("read"))
        .collect()
}

fn opts(compress: bool) -> WriterOptions {
    WriterOptions { rotate_interval: 10, compress, sync: false }
}

#[test]
fn written_directories_read_back_and_reencode_identically() {
    for compress in [false, true] {
        let tmp = tempfile::tempdir().expect("tmp");
        let fs = StdFs;
        let files = write_dir(&fs, tmp.path(), 1..=25, opts(compress));
        let ext = if compress { ".bin.zstd" } else { ".bin" };
        let names: Vec<String> = files
            .iter()
            .map(|p| p.file_name().unwrap_or_default().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            vec![
                format!("changelog_1_10{ext}"),
                format!("changelog_11_20{ext}"),
                format!("changelog_21_30{ext}")
            ]
        );
        let read = read_all(&fs, tmp.path());
        let mut next = 1;
        for f in &read {
            assert!(f.broken.is_none(), "{:?}", f.broken);
            for r in &f.records {
                assert_eq!(r.record, rec(next, 1));
                next += 1;
            }
            let bytes = fs.read_all(&f.path).expect("bytes");
            assert_eq!(encode_like(f).expect("encode"), bytes, "{}", f.path.display());
            if compress {
                assert_eq!(&bytes[..4], &[0x28, 0xB5, 0x2F, 0xFD]);
                assert_eq!(&bytes[bytes.len() - 3..], &FRAME_TERMINATOR);
                let z = f.zstd.as_ref().expect("zstd layout");
                assert_eq!(z.frames.len(), 1);
                assert!(z.frames[0].terminated && z.frames[0].ends_with_empty_block);
            }
        }
        assert_eq!(next, 26);
        let plan = plan_startup(&read, 0, 100_000, compress).expect("starts");
        assert_eq!(plan.first_index(), Some(1));
        assert_eq!(plan.last_index(), Some(25));
        assert_eq!(plan.resume, Resume::AppendTo(2));
        assert!(plan.detach.is_empty());
    }
}

/// A writer that crashed leaves an unterminated frame; Keeper appends `01 00 00` and a
/// new frame; the whole file reads back.
#[test]
fn keeper_style_append_after_an_unterminated_frame() {
    let tmp = tempfile::tempdir().expect("tmp");
    let fs = StdFs;
    let files = write_dir(&fs, tmp.path(), 1..=4, opts(true));
    let path = files[0].clone();
    // Simulate a crash before finalize: drop the terminator.
    let bytes = fs.read_all(&path).expect("bytes");
    let f = fs.open(&path, keeperkit_vfs::OpenMode::ReadWrite).expect("open");
    f.set_len(bytes.len() as u64 - 3).expect("cut");
    let read = read_file(&fs, &path, ReadOptions::default()).expect("read");
    assert!(read.broken.is_none());
    assert_eq!(read.records.len(), 4);
    assert!(read.zstd.as_ref().expect("zstd").frames.iter().all(|f| !f.terminated));
    let report =
        verify_dir(&fs, tmp.path(), 0, 100_000, true, ReadOptions::default()).expect("verify");
    assert!(report.problems.iter().any(|p| p.kind == ProblemKind::UnterminatedFrame));
    assert!(!report.has_errors());

    let mut w = ChangelogWriter::continue_file(&fs, &path, 4, opts(true)).expect("continue");
    for i in 5..=7 {
        w.append(&rec(i, 2)).expect("append");
    }
    w.finish().expect("finish");
    let read = read_file(&fs, &path, ReadOptions::default()).expect("read");
    assert!(read.broken.is_none());
    let idx: Vec<u64> = read.records.iter().map(|r| r.record.index).collect();
    assert_eq!(idx, vec![1, 2, 3, 4, 5, 6, 7]);
    let z = read.zstd.as_ref().expect("zstd");
    assert_eq!(z.frames.len(), 2);
    assert!(z.frames.iter().all(|f| f.terminated));
    // Re-encoding reproduces the two-frame file exactly.
    assert_eq!(encode_like(&read).expect("encode"), fs.read_all(&path).expect("bytes"));
}

/// Keeper's `writeAt` appends rewritten indexes: 1 2 3 4 5 3' 4' reads as 1 2 3' 4'.
#[test]
fn repeated_indexes_last_wins_and_truncates_after() {
    for compress in [false, true] {
        let tmp = tempfile::tempdir().expect("tmp");
        let fs = StdFs;
        let mut w = ChangelogWriter::new(&fs, tmp.path(), opts(compress));
        for i in 1..=5 {
            w.append(&rec(i, 1)).expect("append");
        }
        for i in 3..=4 {
            w.append(&rec(i, 2)).expect("append");
        }
        w.finish().expect("finish");
        let read = read_all(&fs, tmp.path());
        assert_eq!(read[0].records.len(), 7);
        let plan = plan_startup(&read, 0, 100_000, compress).expect("starts");
        let got: Vec<(u64, u64)> = plan
            .entries
            .iter()
            .map(|(i, loc)| (*i, read[loc.file].records[loc.record].record.term))
            .collect();
        assert_eq!(got, vec![(1, 1), (2, 1), (3, 2), (4, 2)]);
        assert_eq!(plan.resume, Resume::AppendTo(0));
    }
}

#[test]
fn torn_plain_tail_is_keepers_outcome_and_repairs_with_a_backup() {
    let tmp = tempfile::tempdir().expect("tmp");
    let fs = StdFs;
    let files = write_dir(&fs, tmp.path(), 1..=15, opts(false));
    let last = &files[1];
    let len = fs.metadata(last).expect("meta").len;
    let f = fs.open(last, keeperkit_vfs::OpenMode::ReadWrite).expect("open");
    f.set_len(len - 5).expect("tear");
    let report =
        verify_dir(&fs, tmp.path(), 0, 100_000, false, ReadOptions::default()).expect("verify");
    let broken = report
        .problems
        .iter()
        .find(|p| matches!(p.kind, ProblemKind::Broken(CorruptionKind::Truncated { .. })))
        .expect("torn tail reported");
    assert_eq!(broken.file, *last);
    assert_eq!(broken.index, Some(15));
    let plan = report.plan.as_ref().expect("Keeper starts");
    assert_eq!(plan.last_index(), Some(14));
    assert_eq!(plan.broken_file, Some(1));
    assert_eq!(plan.resume, Resume::NewFile { from: 15 });

    let repair = plan_repair(&report);
    assert!(repair.refusals.is_empty(), "{:?}", repair.refusals);
    assert!(matches!(repair.actions[..], [RepairAction::CutTail { last_index: Some(14), .. }]));
    let backup = tmp.path().join("backup");
    let log = apply_repair(&fs, &repair, &backup).expect("repair");
    assert_eq!(log.len(), 1);
    let after =
        verify_dir(&fs, tmp.path(), 0, 100_000, false, ReadOptions::default()).expect("verify");
    assert!(!after.has_errors(), "{:?}", after.problems);
    assert_eq!(after.plan.expect("starts").last_index(), Some(14));
    assert!(fs.read_dir(&backup).expect("backup").iter().any(|e| e.name.contains(".tail-")));
}

#[test]
fn bit_flip_mid_log_breaks_the_file_and_sets_later_files_aside() {
    let tmp = tempfile::tempdir().expect("tmp");
    let fs = StdFs;
    let files = write_dir(&fs, tmp.path(), 1..=25, opts(false));
    let first = &files[0];
    let mut bytes = fs.read_all(first).expect("bytes");
    let at = bytes.len() / 2;
    bytes[at] ^= 0x10;
    let f = fs.open(first, keeperkit_vfs::OpenMode::ReadWrite).expect("open");
    f.write_all_at(&bytes, 0).expect("flip");
    let report =
        verify_dir(&fs, tmp.path(), 0, 100_000, false, ReadOptions::default()).expect("verify");
    let broken = report.files[0].broken.as_ref().expect("broken");
    assert!(matches!(broken.kind, CorruptionKind::ChecksumMismatch { .. }), "{broken}");
    assert!(broken.index.is_some());
    assert!(broken.to_string().contains("changelog_1_10.bin"), "{broken}");
    let plan = report.plan.as_ref().expect("Keeper starts (and re-fetches from the leader)");
    assert_eq!(plan.detach, vec![1, 2]);
    assert!(plan.last_index().expect("some") < 10);
    let repair = plan_repair(&report);
    assert!(repair
        .actions
        .iter()
        .any(|a| matches!(a, RepairAction::SetAside { entries_lost: 15, .. })));
}

#[test]
fn version_above_two_is_fatal_with_file_offset_and_index() {
    let tmp = tempfile::tempdir().expect("tmp");
    let fs = StdFs;
    let files = write_dir(&fs, tmp.path(), 1..=3, opts(false));
    let mut bytes = fs.read_all(&files[0]).expect("bytes");
    let second = rec(1, 1).encoded_len();
    bytes[second + 8] = 3;
    let f = fs.open(&files[0], keeperkit_vfs::OpenMode::ReadWrite).expect("open");
    f.write_all_at(&bytes, 0).expect("write");
    let err = read_file(&fs, &files[0], ReadOptions::default()).expect_err("fatal");
    let WalError::Corrupt(c) = err else { panic!("not corruption: {err}") };
    assert_eq!(c.kind, CorruptionKind::UnsupportedVersion { found: 3 });
    assert_eq!(c.offset, second as u64 + 8);
    assert_eq!(c.index, Some(2));
}

#[test]
fn gaps_are_refused_unless_the_snapshot_covers_them() {
    let tmp = tempfile::tempdir().expect("tmp");
    let fs = StdFs;
    write_dir(&fs, tmp.path(), 1..=30, opts(false));
    fs.remove_file(&tmp.path().join("changelog_11_20.bin")).expect("rm");
    let read = read_all(&fs, tmp.path());
    let err = plan_startup(&read, 0, 100_000, false).expect_err("gap");
    assert!(err.to_string().contains("Some records were lost"), "{err}");
    assert_eq!(err.index, Some(21));
    // A snapshot at 25 covers the gap: the first file is set aside.
    let plan = plan_startup(&read, 25, 100_000, false).expect("covered");
    assert_eq!(plan.detach, vec![0]);
    assert_eq!(plan.first_index(), Some(21));
    // A first file after the snapshot + 1 is refused.
    let err = plan_startup(&read[1..], 5, 100_000, false).expect_err("late first file");
    assert!(err.to_string().contains("smallest available log index on disk 21"), "{err}");
}

#[test]
fn torn_zstd_block_is_cut_at_a_record_boundary_and_terminated() {
    let tmp = tempfile::tempdir().expect("tmp");
    let fs = StdFs;
    let files = write_dir(&fs, tmp.path(), 1..=8, opts(true));
    let path = &files[0];
    let bytes = fs.read_all(path).expect("bytes");
    let f = fs.open(path, keeperkit_vfs::OpenMode::ReadWrite).expect("open");
    f.set_len(bytes.len() as u64 - 6).expect("tear inside the last record's block");
    let report =
        verify_dir(&fs, tmp.path(), 0, 100_000, true, ReadOptions::default()).expect("verify");
    assert!(report.problems.iter().any(|p| p.kind == ProblemKind::TornZstdBlock));
    assert_eq!(report.plan.as_ref().expect("starts").last_index(), Some(7));
    let repair = plan_repair(&report);
    assert!(repair.refusals.is_empty(), "{:?}", repair.refusals);
    apply_repair(&fs, &repair, &tmp.path().join("bk")).expect("repair");
    let read = read_file(&fs, path, ReadOptions::default()).expect("read");
    assert!(read.broken.is_none());
    assert_eq!(read.records.len(), 7);
    let z = read.zstd.as_ref().expect("zstd");
    assert!(z.stop.is_none() && z.frames.iter().all(|f| f.terminated));
}

/// An entry whose request Keeper cannot parse is named by file, offset and index.
#[test]
fn undecodable_payloads_name_file_offset_and_index() {
    let tmp = tempfile::tempdir().expect("tmp");
    let fs = StdFs;
    let mut blob = 1i64.to_le_bytes().to_vec();
    blob.extend_from_slice(&8i32.to_be_bytes());
    blob.extend_from_slice(&0i32.to_be_bytes());
    blob.extend_from_slice(&19i32.to_be_bytes()); // CreateContainer: encoding unknown
    let mut w = ChangelogWriter::new(&fs, tmp.path(), opts(false));
    w.append(&rec(1, 1)).expect("append");
    w.append(&ChangelogRecord::new(2, 1, VALUE_TYPE_APP_LOG, blob)).expect("append");
    let files = w.finish().expect("finish");
    let f = read_file(&fs, &files[0], ReadOptions::default()).expect("read");
    assert!(f.records[0].payload_in(&f.path).is_ok());
    let err = f.records[1].payload_in(&f.path).expect_err("unknown opnum");
    assert_eq!(err.kind, CorruptionKind::UnknownTxnType(19));
    assert_eq!(err.index, Some(2));
    assert_eq!(err.offset, f.records[1].offset + 37 + 20);
    assert!(err.to_string().contains("(index 2)"), "{err}");
}

/// `tmp_X` next to `X` marks an incomplete copy: Keeper deletes both without reading X.
#[test]
fn tmp_markers_hide_their_partner_and_are_set_aside() {
    let tmp = tempfile::tempdir().expect("tmp");
    let fs = StdFs;
    write_dir(&fs, tmp.path(), 1..=15, opts(false));
    let partner = tmp.path().join("changelog_11_20.bin");
    fs.open(&tmp.path().join("tmp_changelog_11_20.bin"), keeperkit_vfs::OpenMode::CreateNew)
        .expect("marker");
    let report =
        verify_dir(&fs, tmp.path(), 0, 100_000, false, ReadOptions::default()).expect("verify");
    assert!(report
        .problems
        .iter()
        .any(|p| p.kind == ProblemKind::IncompleteCopy && p.file == partner));
    assert_eq!(report.files.len(), 1);
    assert_eq!(report.plan.as_ref().expect("starts").last_index(), Some(10));
    let repair = plan_repair(&report);
    assert!(repair.refusals.is_empty(), "{:?}", repair.refusals);
    apply_repair(&fs, &repair, &tmp.path().join("bk")).expect("repair");
    let after =
        verify_dir(&fs, tmp.path(), 0, 100_000, false, ReadOptions::default()).expect("verify");
    assert!(!after.has_errors(), "{:?}", after.problems);
    assert!(!fs.exists(&partner));
}

/// A bit flip inside a compressed file: the decoder or the record checksum stops the
/// file there (Keeper's "read finished with error"), and later files are set aside.
#[test]
fn bit_flip_inside_a_zstd_file_breaks_it_there() {
    let tmp = tempfile::tempdir().expect("tmp");
    let fs = StdFs;
    let files = write_dir(&fs, tmp.path(), 1..=25, opts(true));
    let first = &files[0];
    let mut bytes = fs.read_all(first).expect("bytes");
    let at = bytes.len() / 2;
    bytes[at] ^= 0x04;
    let f = fs.open(first, keeperkit_vfs::OpenMode::ReadWrite).expect("open");
    f.write_all_at(&bytes, 0).expect("flip");
    let report =
        verify_dir(&fs, tmp.path(), 0, 100_000, true, ReadOptions::default()).expect("verify");
    let broken = report.files[0].broken.as_ref().expect("broken");
    assert!(
        matches!(
            broken.kind,
            CorruptionKind::ChecksumMismatch { .. }
                | CorruptionKind::Decompression(_)
                | CorruptionKind::Truncated { .. }
        ),
        "{broken}"
    );
    let plan = report.plan.as_ref().expect("Keeper starts");
    assert!(plan.last_index().unwrap_or(0) < 10);
    assert_eq!(plan.detach, vec![1, 2]);
    assert_eq!(plan.broken_file, Some(0));
}
