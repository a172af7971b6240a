//! ZooKeeper txn log reading, on the real ZooKeeper 3.8.0 fixtures and damaged copies.
//!
//! Guards against: misreading any record ZooKeeper writes (every record must decode and
//! re-encode byte for byte with a matching Adler-32), mistaking a torn tail for
//! corruption or corruption for a torn tail (the end-of-file decisions must be exactly
//! ZooKeeper's), and allocating or reading more than the file justifies.
#![allow(clippy::unwrap_used)]

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use keeperkit_model::jute::Writer;
use keeperkit_model::{CorruptionKind, OpCode, SessionId, Txn, TxnBody, TxnHeader, Zxid};
use keeperkit_vfs::{DirEntry, File, FileSystem, Metadata, OpenMode, StdFs};
use keeperkit_wal::zookeeper::{
    list_logs, read_all, LogEnd, LogFileHeader, LogReader, LogRecord, TornReason, END_OF_RECORD,
    TXNLOG_MAGIC, TXNLOG_VERSION,
};
use keeperkit_wal::WalError;

/// The fixture sets the tests require; every other set found in the directory is
/// checked too.
const REQUIRED_FIXTURES: [&str; 6] = ["basic", "crash", "big-values", "gz", "snappy", "quorum"];

/// Every fixture set in `testdata/zookeeper-3.8.0` (each with a `data/version-2`).
fn fixtures() -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/zookeeper-3.8.0");
    let mut sets: Vec<String> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.path().join("data/version-2").is_dir())
        .map(|e| e.file_name().into_string().unwrap())
        .collect();
    sets.sort();
    for required in REQUIRED_FIXTURES {
        assert!(sets.iter().any(|s| s == required), "fixture set {required} is missing");
    }
    sets
}

fn fixture_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../testdata/zookeeper-3.8.0")
        .join(name)
        .join("data/version-2")
}

fn records_of(path: &Path) -> (Option<LogFileHeader>, Vec<LogRecord>, LogEnd) {
    read_all(&StdFs, path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A damaged copy of a fixture log in a temp dir.
fn damaged_copy(dir: &tempfile::TempDir, src: &Path, edit: impl FnOnce(&mut Vec<u8>)) -> PathBuf {
    let mut bytes = std::fs::read(src).unwrap();
    edit(&mut bytes);
    let path = dir.path().join(src.file_name().unwrap());
    std::fs::write(&path, &bytes).unwrap();
    path
}

fn corruption(err: WalError) -> keeperkit_model::Corruption {
    match err {
        WalError::Corrupt(c) => c,
        other => panic!("expected corruption, got {other}"),
    }
}

/// Reads records until the first error, returning the records and the error.
fn read_until_error(path: &Path) -> (Vec<LogRecord>, WalError) {
    let mut r = LogReader::open(&StdFs, path).unwrap();
    let mut records = Vec::new();
    loop {
        match r.next_record() {
            Ok(Some(rec)) => records.push(rec),
            Ok(None) => panic!("{}: expected an error, got end {:?}", path.display(), r.end()),
            Err(e) => return (records, e),
        }
    }
}

#[test]
fn every_fixture_log_decodes_and_reencodes_exactly() {
    let mut total = 0usize;
    for fixture in fixtures() {
        let dir = fixture_dir(&fixture);
        let logs = list_logs(&StdFs, &dir).unwrap();
        assert!(logs.len() >= 5, "{fixture}: {} logs", logs.len());
        let mut prev_last: Option<Zxid> = None;
        for (name_zxid, path) in &logs {
            let bytes = std::fs::read(path).unwrap();
            let (header, records, end) = records_of(path);
            assert_eq!(
                header,
                Some(LogFileHeader { magic: TXNLOG_MAGIC, version: TXNLOG_VERSION, dbid: 0 })
            );
            assert!(!records.is_empty(), "{}", path.display());
            // The file is named after its first txn.
            assert_eq!(records[0].zxid(), *name_zxid, "{}", path.display());
            assert_eq!(records[0].offset, 16);
            for pair in records.windows(2) {
                assert_eq!(pair[1].offset, pair[0].end_offset());
                assert_eq!(pair[1].zxid().0, pair[0].zxid().0 + 1, "{}", path.display());
            }
            // Logs continue one another.
            if let Some(prev) = prev_last {
                assert_eq!(records[0].zxid().0, prev.0 + 1, "{}", path.display());
            }
            prev_last = Some(records.last().unwrap().zxid());

            for rec in &records {
                let start = usize::try_from(rec.offset).unwrap() + 12;
                let len = usize::try_from(rec.payload_len).unwrap();
                let raw = &bytes[start..start + len];
                assert_eq!(bytes[start + len], END_OF_RECORD);
                let mut w = Writer::new();
                rec.txn.encode_into(&mut w);
                assert_eq!(w.as_slice(), raw, "{} zxid {}", path.display(), rec.zxid());
                assert_eq!(u64::from(adler2::adler32_slice(w.as_slice())), rec.checksum);
                assert_eq!(rec.txn.header.op, rec.txn.body.op());
            }
            // Every file ends in ZooKeeper's preallocated zeros.
            let last_end = records.last().unwrap().end_offset();
            assert_eq!(end, LogEnd::ZeroLength { offset: last_end }, "{}", path.display());
            assert_eq!(end.offset(), last_end);
            let tail = &bytes[usize::try_from(last_end).unwrap()..];
            assert!(tail.iter().all(|b| *b == 0), "{}: non-zero tail", path.display());
            total += records.len();
        }
    }
    assert!(total > 5000, "{total} records");
}

#[test]
fn fixtures_hold_every_txn_type() {
    let mut seen = std::collections::BTreeSet::new();
    for fixture in fixtures() {
        for (_, path) in list_logs(&StdFs, &fixture_dir(&fixture)).unwrap() {
            for rec in records_of(&path).1 {
                seen.insert(rec.txn.header.op.0);
                if let TxnBody::Multi(subs) = &rec.txn.body {
                    for s in subs {
                        seen.insert(1000 + s.op().0);
                    }
                }
            }
        }
    }
    for op in [1, 2, 5, 7, 14, 15, 16, 19, 20, 21, -1, -10, -11] {
        assert!(seen.contains(&op), "no txn of type {op} in the fixtures: {seen:?}");
    }
    for sub in [1, 2, 5, 13, -1] {
        assert!(seen.contains(&(1000 + sub)), "no multi member of type {sub}: {seen:?}");
    }
}

#[test]
fn list_logs_sorts_by_zxid_and_ignores_other_files() {
    let logs = list_logs(&StdFs, &fixture_dir("basic")).unwrap();
    let names: Vec<_> =
        logs.iter().map(|(_, p)| p.file_name().unwrap().to_str().unwrap().to_owned()).collect();
    // Lexical order would put log.fa last.
    assert_eq!(names, ["log.1", "log.fa", "log.1cb", "log.254", "log.355", "log.45a", "log.560"]);
    let zxids: Vec<i64> = logs.iter().map(|(z, _)| z.0).collect();
    assert_eq!(zxids, [0x1, 0xfa, 0x1cb, 0x254, 0x355, 0x45a, 0x560]);

    let quorum = list_logs(&StdFs, &fixture_dir("quorum")).unwrap();
    assert_eq!(quorum.len(), 7);
    assert_eq!(quorum[0].0, Zxid(0x1_0000_0001));
    assert_eq!(quorum[0].0.epoch(), 1);

    let err = list_logs(&StdFs, Path::new("/nonexistent/keeperkit")).unwrap_err();
    assert!(
        matches!(err, WalError::Io { ref path, .. } if path == Path::new("/nonexistent/keeperkit"))
    );
}

fn basic_log() -> PathBuf {
    fixture_dir("basic").join("log.1cb")
}

#[test]
fn last_record_cut_at_every_offset_is_a_torn_tail() {
    let src = basic_log();
    let (_, records, _) = records_of(&src);
    let last = records.last().unwrap().clone();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log.1cb");
    let bytes = std::fs::read(&src).unwrap();
    for cut in last.offset..=last.end_offset() {
        std::fs::write(&path, &bytes[..usize::try_from(cut).unwrap()]).unwrap();
        let (header, got, end) = read_all(&StdFs, &path).unwrap();
        assert!(header.is_some());
        let at = cut - last.offset;
        if cut == last.end_offset() {
            assert_eq!(got.len(), records.len());
            assert_eq!(end, LogEnd::Eof { offset: cut });
            continue;
        }
        assert_eq!(got.len(), records.len() - 1, "cut at {cut}");
        assert_eq!(got.last().unwrap().zxid(), records[records.len() - 2].zxid());
        let expected = if at == 0 {
            LogEnd::Eof { offset: last.offset }
        } else if at < 12 {
            LogEnd::Torn {
                offset: last.offset,
                reason: TornReason::TruncatedHeader { available: at },
            }
        } else {
            LogEnd::Torn {
                offset: last.offset,
                reason: TornReason::TruncatedPayload { len: last.payload_len, available: at - 12 },
            }
        };
        assert_eq!(end, expected, "cut at {cut}");
        assert_eq!(end.offset(), last.offset);
    }
}

#[test]
fn flipped_payload_bit_is_a_checksum_mismatch_naming_the_record() {
    let src = basic_log();
    let (_, records, _) = records_of(&src);
    let mid = records[records.len() / 2].clone();
    assert!(mid.payload_len > 40);
    let dir = tempfile::tempdir().unwrap();
    let byte = usize::try_from(mid.offset).unwrap() + 12 + 36;
    let path = damaged_copy(&dir, &src, |b| b[byte] ^= 0x10);

    let (before, err) = read_until_error(&path);
    assert_eq!(before.len(), records.len() / 2);
    let c = corruption(err);
    assert_eq!(c.file, path);
    assert_eq!(c.offset, mid.offset);
    assert_eq!(c.zxid, Some(mid.zxid()));
    let CorruptionKind::ChecksumMismatch { stored, computed } = c.kind else {
        panic!("expected a checksum mismatch, got {:?}", c.kind)
    };
    assert_eq!(stored, mid.checksum);
    assert_ne!(computed, stored);
    let msg = c.to_string();
    assert!(msg.contains("log.1cb") && msg.contains("checksum"), "{msg}");
}

#[test]
fn flipped_bit_in_the_last_record_is_also_corruption() {
    let src = basic_log();
    let (_, records, _) = records_of(&src);
    let last = records.last().unwrap().clone();
    let dir = tempfile::tempdir().unwrap();
    let byte = usize::try_from(last.end_offset()).unwrap() - 2;
    let path = damaged_copy(&dir, &src, |b| b[byte] ^= 0x01);
    let (before, err) = read_until_error(&path);
    assert_eq!(before.len(), records.len() - 1);
    let c = corruption(err);
    assert_eq!(c.offset, last.offset);
    assert_eq!(c.zxid, Some(last.zxid()));
}

#[test]
fn checksum_with_upper_bits_set_is_a_mismatch() {
    let src = basic_log();
    let (_, records, _) = records_of(&src);
    let rec = records[3].clone();
    let dir = tempfile::tempdir().unwrap();
    let at = usize::try_from(rec.offset).unwrap();
    let path = damaged_copy(&dir, &src, |b| b[at] = 0x01);
    let c = corruption(read_until_error(&path).1);
    assert_eq!(c.offset, rec.offset);
    assert_eq!(
        c.kind,
        CorruptionKind::ChecksumMismatch { stored: rec.checksum | 1 << 56, computed: rec.checksum }
    );
}

#[test]
fn huge_lengths_are_refused_without_allocating() {
    let src = basic_log();
    let (_, records, _) = records_of(&src);
    let mid = records[records.len() / 2].clone();
    let dir = tempfile::tempdir().unwrap();
    for (raw, len) in
        [(0x7FFF_FFFFu32, 0x7FFF_FFFFi64), (0x8000_0000, -0x8000_0000), (0xFFFF_FFFF, -1)]
    {
        let at = usize::try_from(mid.offset).unwrap() + 8;
        let path = damaged_copy(&dir, &src, |b| b[at..at + 4].copy_from_slice(&raw.to_be_bytes()));
        let started = Instant::now();
        let (before, err) = read_until_error(&path);
        assert!(started.elapsed() < Duration::from_secs(2));
        assert_eq!(before.len(), records.len() / 2);
        let c = corruption(err);
        assert_eq!(c.file, path);
        assert_eq!(c.offset, mid.offset + 8);
        assert_eq!(c.zxid, None);
        assert_eq!(
            c.kind,
            CorruptionKind::LengthOutOfRange {
                len,
                max: u64::try_from(keeperkit_model::limits::JUTE_READ_LEN_MAX).unwrap()
            }
        );
    }
}

#[test]
fn length_within_limits_but_past_the_file_end_is_a_torn_tail() {
    // ZooKeeper reads this as EOF inside the payload: the end of the file.
    let src = basic_log();
    let (_, records, _) = records_of(&src);
    let mid = records[records.len() / 2].clone();
    let dir = tempfile::tempdir().unwrap();
    let at = usize::try_from(mid.offset).unwrap() + 8;
    let path =
        damaged_copy(&dir, &src, |b| b[at..at + 4].copy_from_slice(&0x001F_0000u32.to_be_bytes()));
    let (_, got, end) = read_all(&StdFs, &path).unwrap();
    assert_eq!(got.len(), records.len() / 2);
    let available = 65552 - mid.offset - 12;
    assert_eq!(
        end,
        LogEnd::Torn {
            offset: mid.offset,
            reason: TornReason::TruncatedPayload { len: 0x001F_0000, available }
        }
    );
}

#[test]
fn bad_marker_ends_the_file() {
    let src = basic_log();
    let (_, records, _) = records_of(&src);
    let mid = records[records.len() / 2].clone();
    let dir = tempfile::tempdir().unwrap();
    let at = usize::try_from(mid.end_offset()).unwrap() - 1;
    let path = damaged_copy(&dir, &src, |b| b[at] = 0x00);
    let (_, got, end) = read_all(&StdFs, &path).unwrap();
    assert_eq!(got.len(), records.len() / 2);
    assert_eq!(
        end,
        LogEnd::Torn { offset: mid.offset, reason: TornReason::BadMarker { found: 0 } }
    );
}

#[test]
fn zero_length_and_short_files_have_no_records() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log.5");
    std::fs::write(&path, b"").unwrap();
    let mut r = LogReader::open(&StdFs, &path).unwrap();
    assert_eq!(r.header(), None);
    assert_eq!(r.file_len(), 0);
    assert_eq!(r.path(), path);
    assert!(r.next_record().unwrap().is_none());
    assert_eq!(r.end(), Some(&LogEnd::Eof { offset: 0 }));
    assert!(r.next_record().unwrap().is_none());

    let header = std::fs::read(basic_log()).unwrap()[..16].to_vec();
    for n in 1..16 {
        std::fs::write(&path, &header[..n]).unwrap();
        let (h, recs, end) = read_all(&StdFs, &path).unwrap();
        assert_eq!(h, None);
        assert!(recs.is_empty());
        let available = u64::try_from(n).unwrap();
        assert_eq!(
            end,
            LogEnd::Torn { offset: 0, reason: TornReason::TruncatedHeader { available } }
        );
    }
    std::fs::write(&path, &header).unwrap();
    let (h, recs, end) = read_all(&StdFs, &path).unwrap();
    assert_eq!(h.map(|h| h.magic), Some(TXNLOG_MAGIC));
    assert!(recs.is_empty());
    assert_eq!(end, LogEnd::Eof { offset: 16 });
}

#[test]
fn bad_magic_is_corruption_at_offset_zero() {
    let dir = tempfile::tempdir().unwrap();
    let path = damaged_copy(&dir, &basic_log(), |b| b[0] = b'X');
    let c = corruption(LogReader::open(&StdFs, &path).unwrap_err());
    assert_eq!(c.file, path);
    assert_eq!(c.offset, 0);
    assert_eq!(c.kind, CorruptionKind::BadMagic { expected: 0x5A4B_4C47, found: 0x584B_4C47 });
    // A header of zeros (the preallocated file's first flush never happened).
    let path = damaged_copy(&dir, &basic_log(), |b| b[..16].fill(0));
    let c = corruption(LogReader::open(&StdFs, &path).unwrap_err());
    assert_eq!(c.kind, CorruptionKind::BadMagic { expected: 0x5A4B_4C47, found: 0 });
}

#[test]
fn missing_file_is_an_io_error_naming_it() {
    let err = LogReader::open(&StdFs, Path::new("/nonexistent/log.1")).unwrap_err();
    assert!(err.corruption().is_none());
    let WalError::Io { path, source } = err else { panic!("expected Io") };
    assert_eq!(path, Path::new("/nonexistent/log.1"));
    assert_eq!(source.kind(), io::ErrorKind::NotFound);
}

/// Builds a log file from payloads, with correct checksums and markers.
fn synthetic_log(payloads: &[Vec<u8>]) -> Vec<u8> {
    let mut w = Writer::new();
    w.i32(TXNLOG_MAGIC);
    w.i32(TXNLOG_VERSION);
    w.i64(0);
    for p in payloads {
        w.i64(i64::from(adler2::adler32_slice(p)));
        w.i32(i32::try_from(p.len()).unwrap());
        w.raw(p);
        w.u8(END_OF_RECORD);
    }
    w.into_inner()
}

fn txn(zxid: i64, body: TxnBody) -> Txn {
    Txn {
        header: TxnHeader {
            client_id: SessionId(1),
            cxid: 1,
            zxid: Zxid(zxid),
            time: 1_700_000_000_000,
            op: body.op(),
        },
        body,
        digest: None,
    }
}

#[test]
fn undecodable_payload_with_a_good_checksum_names_the_byte_and_zxid() {
    let good = txn(5, TxnBody::Delete { path: "/a".into() }).to_bytes();
    let mut unknown = txn(6, TxnBody::Delete { path: "/b".into() }).to_bytes();
    unknown[28..32].copy_from_slice(&99i32.to_be_bytes());
    let short = vec![0u8; 10];
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log.5");
    std::fs::write(&path, synthetic_log(&[good.clone(), unknown])).unwrap();

    let (before, err) = read_until_error(&path);
    assert_eq!(before.len(), 1);
    assert_eq!(before[0].txn, Txn::decode_from(&good).unwrap());
    let c = corruption(err);
    let second = before[0].end_offset();
    assert_eq!(c.offset, second + 12 + 32);
    assert_eq!(c.zxid, Some(Zxid(6)));
    assert_eq!(c.kind, CorruptionKind::UnknownTxnType(99));

    // Too short for a header: no zxid to name.
    std::fs::write(&path, synthetic_log(&[short])).unwrap();
    let c = corruption(read_until_error(&path).1);
    // The clientId (8 bytes) is there, the cxid is not.
    assert_eq!(c.offset, 16 + 12 + 8);
    assert_eq!(c.zxid, None);
    assert!(matches!(c.kind, CorruptionKind::Truncated { .. }), "{:?}", c.kind);
}

#[test]
fn errors_repeat_and_chopped_files_end_at_eof() {
    let a = txn(1, TxnBody::CreateSession { timeout_ms: 30_000 }).to_bytes();
    let b = txn(2, TxnBody::Check { path: "/x".into(), version: 1 }).to_bytes();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log.1");
    let bytes = synthetic_log(&[a, b]);
    std::fs::write(&path, &bytes).unwrap();
    // Top-level check records (ZOOKEEPER-2623) decode.
    let (_, recs, end) = read_all(&StdFs, &path).unwrap();
    assert_eq!(recs.len(), 2);
    assert_eq!(recs[1].txn.header.op, OpCode::CHECK);
    assert_eq!(end, LogEnd::Eof { offset: u64::try_from(bytes.len()).unwrap() });

    let mut bad = bytes.clone();
    let last = bad.len() - 2;
    bad[last] ^= 0xFF;
    std::fs::write(&path, &bad).unwrap();
    let mut r = LogReader::open(&StdFs, &path).unwrap();
    assert!(r.next_record().unwrap().is_some());
    let first = corruption(r.next_record().unwrap_err());
    let again = corruption(r.next_record().unwrap_err());
    assert_eq!(first, again);
    assert_eq!(r.end(), None);
}

/// A file system that counts the bytes read through it.
#[derive(Debug, Default)]
struct CountingFs {
    read: Arc<AtomicU64>,
}

#[derive(Debug)]
struct CountingFile {
    inner: Arc<dyn File>,
    read: Arc<AtomicU64>,
}

impl File for CountingFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let n = self.inner.read_at(buf, offset)?;
        self.read.fetch_add(u64::try_from(n).unwrap(), Ordering::Relaxed);
        Ok(n)
    }
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.inner.write_all_at(buf, offset)
    }
    fn len(&self) -> io::Result<u64> {
        self.inner.len()
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.inner.set_len(len)
    }
    fn sync_data(&self) -> io::Result<()> {
        self.inner.sync_data()
    }
    fn sync_all(&self) -> io::Result<()> {
        self.inner.sync_all()
    }
}

impl FileSystem for CountingFs {
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Arc<dyn File>> {
        Ok(Arc::new(CountingFile { inner: StdFs.open(path, mode)?, read: self.read.clone() }))
    }
    fn read_dir(&self, path: &Path) -> io::Result<Vec<DirEntry>> {
        StdFs.read_dir(path)
    }
    fn metadata(&self, path: &Path) -> io::Result<Metadata> {
        StdFs.metadata(path)
    }
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        StdFs.create_dir_all(path)
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        StdFs.rename(from, to)
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        StdFs.remove_file(path)
    }
    fn remove_dir(&self, path: &Path) -> io::Result<()> {
        StdFs.remove_dir(path)
    }
    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        StdFs.sync_dir(path)
    }
}

#[test]
fn a_64_mib_preallocated_log_is_streamed_not_slurped() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log.1cb");
    std::fs::copy(basic_log(), &path).unwrap();
    // ZooKeeper's default preallocation: 64 MiB + 16 bytes, a sparse tail of zeros.
    std::fs::OpenOptions::new().write(true).open(&path).unwrap().set_len((64 << 20) + 16).unwrap();
    let fs = CountingFs::default();
    let (_, recs, end) = read_all(&fs, &path).unwrap();
    assert_eq!(recs.len(), records_of(&basic_log()).1.len());
    assert!(matches!(end, LogEnd::ZeroLength { .. }));
    let read = fs.read.load(Ordering::Relaxed);
    assert!(read <= 512 * 1024, "read {read} bytes of a 64 MiB file");
}
