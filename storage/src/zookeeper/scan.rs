//! A full scan of every file of a ZooKeeper data directory, for `inspect` and
//! `verify`: each snapshot parsed with its seals checked, each log read to its end
//! with every checksum checked, and the zxid sequence checked within and across logs.

use std::path::PathBuf;

use keeperkit_model::{Corruption, Zxid};
use keeperkit_snapshot::zookeeper::{self as zksnap, Compression, SnapshotInfo, SnapshotNode};
use keeperkit_vfs::FileSystem;
use keeperkit_wal::zookeeper::{LogEnd, LogFileHeader, LogReader};

use crate::zookeeper::{is_successor, ZkLayout};
use crate::StorageError;

/// What a snapshot file turned out to be.
#[derive(Debug, Clone)]
pub struct SnapshotScan {
    /// The file.
    pub path: PathBuf,
    /// Name zxid.
    pub zxid: Zxid,
    /// Compression (from the name).
    pub compression: Compression,
    /// Size on disk (apparent).
    pub file_len: u64,
    /// Whether it passes ZooKeeper's quick validity test.
    pub quick_valid: bool,
    /// The parse result: facts, or why it failed.
    pub result: Result<SnapshotInfo, String>,
    /// The corruption, when the failure is one.
    pub corruption: Option<Corruption>,
    /// Highest czxid/mzxid among its nodes.
    pub max_node_zxid: Zxid,
}

/// What a log file turned out to be.
#[derive(Debug, Clone)]
pub struct LogScan {
    /// The file.
    pub path: PathBuf,
    /// Name zxid.
    pub name_zxid: Zxid,
    /// Apparent size.
    pub file_len: u64,
    /// File header.
    pub header: Option<LogFileHeader>,
    /// Records read.
    pub records: u64,
    /// First and last zxid.
    pub zxids: Option<(Zxid, Zxid)>,
    /// Bytes of records (up to the end of the last good one).
    pub data_len: u64,
    /// How it ended, when it was read to the end.
    pub end: Option<LogEnd>,
    /// The error that stopped reading, if any.
    pub error: Option<String>,
    /// The corruption, when the error is one.
    pub corruption: Option<Corruption>,
    /// Places inside the file where the zxid sequence breaks: (previous, next, offset).
    pub sequence_breaks: Vec<(Zxid, Zxid, u64)>,
    /// Records carrying a digest.
    pub digests: u64,
    /// Complete, checksum-valid records found after the point where the log ends (a
    /// zeroed length field in the middle of a log hides everything after it).
    pub after_end: Option<AfterEnd>,
}

/// Complete, checksum-valid records after the end of a log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AfterEnd {
    /// Where the log ends for ZooKeeper.
    pub end_offset: u64,
    /// How it ends there.
    pub end: String,
    /// Offset of the first valid record after it.
    pub first_offset: u64,
    /// Zxid of that record.
    pub first_zxid: Zxid,
    /// How many valid records follow, one after the other, from there.
    pub records: u64,
}

/// The most bytes after a log's end searched for valid records.
const AFTER_END_SEARCH_MAX: u64 = 256 << 20;

/// The bytes read at a time while looking for the end of a zero tail.
const AFTER_END_WINDOW: u64 = 1 << 20;

/// The index of the first byte of `b` that is not zero.
fn first_nonzero(b: &[u8]) -> Option<usize> {
    let mut seen = 0;
    for c in b.chunks(64) {
        // An OR over a fixed block compiles to wide loads, unlike a search.
        if c.iter().fold(0u8, |a, &x| a | x) != 0 {
            return c.iter().position(|&x| x != 0).map(|i| seen + i);
        }
        seen += c.len();
    }
    None
}

/// The valid record framed at `o` of `buf`, as (payload, end offset).
fn record_at(buf: &[u8], o: usize) -> Option<(&[u8], usize)> {
    let crc = u64::from_be_bytes(buf.get(o..o + 8)?.try_into().ok()?);
    if crc >> 32 != 0 {
        return None;
    }
    let len = i32::from_be_bytes(buf.get(o + 8..o + 12)?.try_into().ok()?);
    let len = usize::try_from(len).ok().filter(|&l| l >= keeperkit_model::TxnHeader::LEN)?;
    let payload = buf.get(o + 12..o.checked_add(12 + len)?)?;
    if *buf.get(o + 12 + len)? != 0x42 {
        return None;
    }
    (u64::from(adler2::adler32_slice(payload)) == crc).then_some((payload, o + 13 + len))
}

/// Searches the bytes after `end` for complete, checksum-valid records.
pub(crate) fn search_after_end(
    fs: &dyn FileSystem,
    path: &std::path::Path,
    end: &LogEnd,
) -> Option<AfterEnd> {
    let (end_offset, what) = match end {
        LogEnd::ZeroLength { offset } => (*offset, format!("zero length field at byte {offset}")),
        LogEnd::Torn { offset, reason } => {
            (*offset, format!("partial record: {}", super::dir::torn_reason_text(reason)))
        }
        LogEnd::Eof { .. } => return None,
    };
    let file = fs.open(path, keeperkit_vfs::OpenMode::Read).ok()?;
    let len = file.len().ok()?;
    let base = end_offset + 1;
    let rest = len.checked_sub(base)?.min(AFTER_END_SEARCH_MAX);
    // A preallocated tail is all zeros: find its first other byte a window at a time,
    // without a buffer of the tail's size (64 MiB per ZooKeeper log).
    let mut window = vec![0u8; usize::try_from(rest.min(AFTER_END_WINDOW)).ok()?];
    let mut at = 0u64;
    let nonzero = loop {
        let n = usize::try_from((rest - at).min(AFTER_END_WINDOW)).ok()?;
        if n == 0 {
            return None;
        }
        file.read_exact_at(&mut window[..n], base + at).ok()?;
        if let Some(i) = first_nonzero(&window[..n]) {
            break at + i as u64;
        }
        at += n as u64;
    };
    // A record may start up to 7 bytes before its first non-zero byte (its checksum's
    // first bytes can be zero): search from there to the end of the searched range.
    let from = nonzero.saturating_sub(7);
    let mut buf = vec![0u8; usize::try_from(rest - from).ok()?];
    file.read_exact_at(&mut buf, base + from).ok()?;
    // Skip runs of zeros fast: a record's checksum has its first four bytes zero and
    // some of its last four not.
    let mut o = 0;
    let start = loop {
        let nz = o + buf.get(o..)?.iter().position(|&b| b != 0)?;
        o = o.max(nz.saturating_sub(7));
        if record_at(&buf, o).is_some() {
            break o;
        }
        o += 1;
    };
    let (payload, mut next) = record_at(&buf, start)?;
    let first_zxid = keeperkit_model::Txn::decode_from(payload).ok()?.header.zxid;
    let mut records = 1;
    while let Some((_, n)) = record_at(&buf, next) {
        records += 1;
        next = n;
    }
    Some(AfterEnd {
        end_offset,
        end: what,
        first_offset: base + from + start as u64,
        first_zxid,
        records,
    })
}

/// A whole directory.
#[derive(Debug, Clone)]
pub struct DirScan {
    /// Where the files are.
    pub layout: ZkLayout,
    /// Snapshots, oldest first.
    pub snapshots: Vec<SnapshotScan>,
    /// Logs, oldest first.
    pub logs: Vec<LogScan>,
    /// Gaps between consecutive logs: (last zxid of one, first zxid of the next, file).
    pub gaps: Vec<(Zxid, Zxid, PathBuf)>,
}

struct Counting {
    max: i64,
}

impl zksnap::SnapshotSink for Counting {
    fn session(&mut self, _: keeperkit_model::SessionId, _: i32) {}
    fn acl_list(&mut self, _: i64, _: keeperkit_model::AclList) {}
    fn node(&mut self, n: SnapshotNode) -> Result<(), String> {
        self.max = self.max.max(n.stat.czxid).max(n.stat.mzxid);
        Ok(())
    }
}

/// Scans one snapshot file.
pub fn scan_snapshot(
    fs: &dyn FileSystem,
    zxid: Zxid,
    compression: Compression,
    path: &std::path::Path,
) -> SnapshotScan {
    let file_len = fs.metadata(path).map(|m| m.len).unwrap_or(0);
    let quick_valid = zksnap::quick_valid(fs, path).unwrap_or(false);
    let mut sink = Counting { max: 0 };
    let (result, corruption) = match zksnap::read_snapshot(fs, path, &mut sink) {
        Ok(info) => (Ok(info), None),
        Err(e) => {
            let c = e.corruption().cloned();
            (Err(e.to_string()), c)
        }
    };
    SnapshotScan {
        path: path.to_path_buf(),
        zxid,
        compression,
        file_len,
        quick_valid,
        result,
        corruption,
        max_node_zxid: Zxid(sink.max),
    }
}

/// Scans one log file.
pub fn scan_log(fs: &dyn FileSystem, name_zxid: Zxid, path: &std::path::Path) -> LogScan {
    let mut s = LogScan {
        path: path.to_path_buf(),
        name_zxid,
        file_len: fs.metadata(path).map(|m| m.len).unwrap_or(0),
        header: None,
        records: 0,
        zxids: None,
        data_len: 0,
        end: None,
        error: None,
        corruption: None,
        sequence_breaks: Vec::new(),
        digests: 0,
        after_end: None,
    };
    let mut reader = match LogReader::open(fs, path) {
        Ok(r) => r,
        Err(e) => {
            s.corruption = e.corruption().cloned();
            s.error = Some(e.to_string());
            return s;
        }
    };
    s.header = reader.header();
    loop {
        match reader.next_record() {
            Ok(Some(rec)) => {
                let z = rec.zxid();
                s.records += 1;
                s.data_len = rec.end_offset();
                if rec.txn.digest.is_some() {
                    s.digests += 1;
                }
                s.zxids = Some(match s.zxids {
                    None => (z, z),
                    Some((first, prev)) => {
                        if !is_successor(prev, z) {
                            s.sequence_breaks.push((prev, z, rec.offset));
                        }
                        (first, z)
                    }
                });
            }
            Ok(None) => {
                s.end = reader.end().cloned();
                s.after_end = s.end.as_ref().and_then(|e| search_after_end(fs, path, e));
                break;
            }
            Err(e) => {
                s.corruption = e.corruption().cloned();
                s.error = Some(e.to_string());
                break;
            }
        }
    }
    s
}

/// Scans every file of a directory.
pub fn scan(fs: &dyn FileSystem, layout: &ZkLayout) -> Result<DirScan, StorageError> {
    let snapshots = layout.snapshots.iter().map(|(z, c, p)| scan_snapshot(fs, *z, *c, p)).collect();
    let logs: Vec<LogScan> = layout.logs.iter().map(|(z, p)| scan_log(fs, *z, p)).collect();
    let mut gaps = Vec::new();
    let mut prev_last: Option<Zxid> = None;
    let mut prev_damaged = false;
    let newest = logs.last().map(|l| l.path.clone());
    for l in &logs {
        if l.zxids.is_none() && l.header.is_some() && Some(&l.path) != newest.as_ref() {
            // A log holding no txn, followed by a newer one: the txns from its name's
            // zxid on were cut away (ZooKeeper writes a log's header with its first txn).
            if prev_last.is_none() {
                prev_last = Some(Zxid(l.name_zxid.0.saturating_sub(1)));
            }
        }
        if let Some((first, last)) = l.zxids {
            if let Some(p) = prev_last {
                // Overlap (first <= p) is legal: ZooKeeper skips txns it already has.
                // After a damaged log the hole is the damage itself, reported already.
                if first > p && !is_successor(p, first) && !prev_damaged {
                    gaps.push((p, first, l.path.clone()));
                }
            }
            prev_last = Some(prev_last.map_or(last, |p| p.max(last)));
        }
        prev_damaged = l.error.is_some();
    }
    Ok(DirScan { layout: layout.clone(), snapshots, logs, gaps })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use keeperkit_model::{Acl, OpCode, SessionId, Txn, TxnBody, TxnHeader};

    #[test]
    fn first_nonzero_finds_the_first_byte_across_blocks() {
        assert_eq!(first_nonzero(&[]), None);
        assert_eq!(first_nonzero(&[0; 200]), None);
        for at in [0, 1, 63, 64, 65, 127, 199] {
            let mut b = vec![0u8; 200];
            b[at] = 1;
            b[199] = 9;
            assert_eq!(first_nonzero(&b), Some(at), "{at}");
        }
    }

    /// Records after megabytes of zeros (more than one window) are found, at their
    /// offset.
    #[test]
    fn records_past_a_long_zero_tail_are_found() {
        let header = TxnHeader {
            client_id: SessionId(1),
            cxid: 1,
            zxid: Zxid(0x500),
            time: 1,
            op: OpCode::CREATE,
        };
        let body = TxnBody::Create(keeperkit_model::txn::CreateTxn {
            path: "/a".into(),
            data: Some(b"x".to_vec()),
            acl: Acl::open_unsafe(),
            ephemeral: false,
            parent_cversion: 1,
            ttl: None,
            v0: false,
        });
        let payload = Txn { header, body, digest: None }.to_bytes();
        let mut record = u64::from(adler2::adler32_slice(&payload)).to_be_bytes().to_vec();
        record.extend_from_slice(&i32::try_from(payload.len()).unwrap().to_be_bytes());
        record.extend_from_slice(&payload);
        record.push(0x42);
        let at = 2 * usize::try_from(AFTER_END_WINDOW).unwrap() + 12_345;
        let mut file = vec![0u8; at];
        file.extend_from_slice(&record);
        file.extend_from_slice(&record);
        file.resize(file.len() + 4096, 0);
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("log.1");
        std::fs::write(&path, &file).unwrap();
        let fs = keeperkit_vfs::StdFs;
        let end = LogEnd::ZeroLength { offset: 100 };
        let a = search_after_end(&fs, &path, &end).unwrap();
        assert_eq!((a.first_offset, a.records, a.first_zxid), (at as u64, 2, Zxid(0x500)));
        // Only zeros after the end: nothing.
        std::fs::write(&path, vec![0u8; at]).unwrap();
        assert!(search_after_end(&fs, &path, &end).is_none());
    }
}
