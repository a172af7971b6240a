//! What `keeperkit inspect` shows of ZooKeeper data: every snapshot and log, their
//! zxid ranges and the gaps between them.

use std::fmt;
use std::path::Path;

use keeperkit_model::Zxid;
use keeperkit_snapshot::zookeeper::Compression;
use keeperkit_wal::zookeeper::LogEnd;
use serde::Serialize;

use keeperkit_vfs::FileSystem;

use super::scan::{DirScan, LogScan, SnapshotScan};
use super::ZkLayout;
use crate::report::{InspectDetails, Inspection};
use crate::{Dialect, StorageError};

/// Inspects ZooKeeper data: a directory (`layout`) or a single file.
pub(crate) fn inspect(
    fs: &dyn FileSystem,
    path: &Path,
    layout: Option<&ZkLayout>,
) -> Result<Inspection, StorageError> {
    let scan = super::check::scan_source(fs, path, layout)?;
    let findings = super::check::check_scan(&scan);
    let j = inspect_json(path, &scan);
    let ok = j.checksums_ok && j.gaps.is_empty();
    Ok(Inspection::new(
        Dialect::ZooKeeper,
        path,
        InspectDetails::ZooKeeper(Box::new(j)),
        ok,
        findings,
    ))
}

/// A snapshot as `inspect --json` reports it.
#[derive(Debug, Serialize)]
pub struct JsonSnapshot {
    /// The file.
    pub file: String,
    /// The zxid.
    pub zxid: i64,
    /// The zxid, in hex.
    pub zxid_hex: String,
    /// Compression (from the name).
    pub compression: &'static str,
    /// Length of the file in bytes.
    pub file_len: u64,
    /// Whether it passes ZooKeeper's quick validity test.
    pub quick_valid: bool,
    /// Whether every checksum is right.
    pub checksums_ok: bool,
    /// Why the file could not be read, if it could not.
    pub error: Option<String>,
    /// Length of the (decompressed) record stream.
    pub stream_len: Option<u64>,
    /// Nodes in the tree.
    pub nodes: Option<u64>,
    /// Sessions.
    pub sessions: Option<u64>,
    /// ACL lists.
    pub acl_lists: Option<u64>,
    /// The zxid of the stored digest, in hex.
    pub digest_zxid_hex: Option<String>,
    /// The tree digest, in hex.
    pub digest: Option<String>,
    /// The highest czxid or mzxid of its nodes, in hex.
    pub max_node_zxid_hex: String,
}

/// A log as `inspect --json` reports it.
#[derive(Debug, Serialize)]
pub struct JsonLog {
    /// The file.
    pub file: String,
    /// The zxid in the file name, in hex.
    pub name_zxid_hex: String,
    /// First zxid, in hex.
    pub first_zxid_hex: Option<String>,
    /// Last zxid, in hex.
    pub last_zxid_hex: Option<String>,
    /// Records read.
    pub records: u64,
    /// Records carrying a digest.
    pub records_with_digest: u64,
    /// Length of the file in bytes.
    pub file_len: u64,
    /// Bytes up to the end of the last good record.
    pub data_len: u64,
    /// File format version.
    pub format_version: Option<i32>,
    /// How the log ends.
    pub end: Option<String>,
    /// Whether every checksum is right.
    pub checksums_ok: bool,
    /// Why the file could not be read, if it could not.
    pub error: Option<String>,
}

/// A gap between logs.
#[derive(Debug, Serialize)]
pub struct JsonGap {
    /// The last zxid before the gap, in hex.
    pub after_hex: String,
    /// The next zxid found, in hex.
    pub next_hex: String,
    /// The file.
    pub file: String,
}

/// `inspect --json` of a directory.
#[derive(Debug, Serialize)]
pub struct ZkInspect {
    /// The path given.
    #[serde(skip)]
    pub path: String,
    /// The snapshot directory.
    pub snapshot_dir: String,
    /// The log directory.
    pub log_dir: String,
    /// `acceptedEpoch` (quorum mode).
    pub accepted_epoch: Option<String>,
    /// `currentEpoch` (quorum mode).
    pub current_epoch: Option<String>,
    /// The snapshots, oldest first.
    pub snapshots: Vec<JsonSnapshot>,
    /// The logs, oldest first.
    pub logs: Vec<JsonLog>,
    /// Gaps in the zxid sequence between logs.
    pub gaps: Vec<JsonGap>,
    /// The lowest and highest zxid of the logs, in hex.
    pub zxid_range_hex: Option<(String, String)>,
    /// Whether every checksum is right.
    #[serde(skip)]
    pub checksums_ok: bool,
}

fn compression_name(c: Compression) -> &'static str {
    match c {
        Compression::None => "none",
        Compression::Gzip => "gzip",
        Compression::Snappy => "snappy",
    }
}

/// Describes how a log ended.
pub fn describe_end(end: &LogEnd) -> String {
    match end {
        LogEnd::Eof { offset } => format!("physical end of file at byte {offset}"),
        LogEnd::ZeroLength { offset } => format!("zero padding from byte {offset}"),
        LogEnd::Torn { offset, reason } => {
            format!("partial record at byte {offset} ({})", super::dir::torn_reason_text(reason))
        }
    }
}

fn hex(z: Zxid) -> String {
    format!("{:#x}", z.0)
}

fn snapshot_json(s: &SnapshotScan) -> JsonSnapshot {
    let info = s.result.as_ref().ok();
    JsonSnapshot {
        file: s.path.display().to_string(),
        zxid: s.zxid.0,
        zxid_hex: hex(s.zxid),
        compression: compression_name(s.compression),
        file_len: s.file_len,
        quick_valid: s.quick_valid,
        checksums_ok: s.result.is_ok(),
        error: s.result.as_ref().err().cloned(),
        stream_len: info.map(|i| i.stream_len),
        nodes: info.map(|i| i.node_count),
        sessions: info.map(|i| i.session_count),
        acl_lists: info.map(|i| i.acl_count),
        digest_zxid_hex: info.and_then(|i| i.digest).map(|d| hex(d.zxid)),
        digest: info.and_then(|i| i.digest).map(|d| format!("{:#x}", d.digest as u64)),
        max_node_zxid_hex: hex(s.max_node_zxid),
    }
}

fn log_json(l: &LogScan) -> JsonLog {
    JsonLog {
        file: l.path.display().to_string(),
        name_zxid_hex: hex(l.name_zxid),
        first_zxid_hex: l.zxids.map(|z| hex(z.0)),
        last_zxid_hex: l.zxids.map(|z| hex(z.1)),
        records: l.records,
        records_with_digest: l.digests,
        file_len: l.file_len,
        data_len: l.data_len,
        format_version: l.header.map(|h| h.version),
        end: l.end.as_ref().map(describe_end),
        checksums_ok: l.error.is_none(),
        error: l.error.clone(),
    }
}

/// Builds the JSON report of a scanned directory.
pub(crate) fn inspect_json(path: &Path, scan: &DirScan) -> ZkInspect {
    let mut lo: Option<Zxid> = None;
    let mut hi: Option<Zxid> = None;
    for l in &scan.logs {
        if let Some((a, b)) = l.zxids {
            lo = Some(lo.map_or(a, |x| x.min(a)));
            hi = Some(hi.map_or(b, |x| x.max(b)));
        }
    }
    ZkInspect {
        path: path.display().to_string(),
        snapshot_dir: scan.layout.snap_dir.display().to_string(),
        log_dir: scan.layout.log_dir.display().to_string(),
        accepted_epoch: scan.layout.accepted_epoch.clone(),
        current_epoch: scan.layout.current_epoch.clone(),
        snapshots: scan.snapshots.iter().map(snapshot_json).collect(),
        logs: scan.logs.iter().map(log_json).collect(),
        gaps: scan
            .gaps
            .iter()
            .map(|(a, n, f)| JsonGap {
                after_hex: hex(*a),
                next_hex: hex(*n),
                file: f.display().to_string(),
            })
            .collect(),
        zxid_range_hex: lo.zip(hi).map(|(a, b)| (hex(a), hex(b))),
        checksums_ok: scan.snapshots.iter().all(|s| s.result.is_ok())
            && scan.logs.iter().all(|l| l.error.is_none()),
    }
}

impl fmt::Display for ZkInspect {
    fn fmt(&self, out: &mut fmt::Formatter<'_>) -> fmt::Result {
        let j = self;
        writeln!(out, "dialect:      ZooKeeper ({})", j.path)?;
        writeln!(out, "snapshot dir: {}", j.snapshot_dir)?;
        if j.log_dir != j.snapshot_dir {
            writeln!(out, "log dir:      {}", j.log_dir)?;
        }
        if let (Some(a), Some(c)) = (&j.accepted_epoch, &j.current_epoch) {
            writeln!(out, "epochs:       accepted {a}, current {c} (quorum mode)")?;
        }
        if let Some((a, b)) = &j.zxid_range_hex {
            writeln!(out, "log zxids:    {a} .. {b}")?;
        }
        writeln!(out, "\nsnapshots ({}):", j.snapshots.len())?;
        for s in &j.snapshots {
            let name =
                Path::new(&s.file).file_name().map(|n| n.to_string_lossy()).unwrap_or_default();
            match &s.error {
                None => writeln!(
                    out,
                    "  {name:<28} {:>10} B  {:<6} {:>8} nodes {:>4} sessions  digest@{}  ok",
                    s.file_len,
                    s.compression,
                    s.nodes.unwrap_or(0),
                    s.sessions.unwrap_or(0),
                    s.digest_zxid_hex.as_deref().unwrap_or("-"),
                )?,
                Some(e) => writeln!(out, "  {name:<28} {:>10} B  DAMAGED: {e}", s.file_len)?,
            }
        }
        writeln!(out, "\nlogs ({}):", j.logs.len())?;
        for l in &j.logs {
            let name =
                Path::new(&l.file).file_name().map(|n| n.to_string_lossy()).unwrap_or_default();
            let range = match (&l.first_zxid_hex, &l.last_zxid_hex) {
                (Some(a), Some(b)) => format!("{a} .. {b}"),
                _ => "empty".to_string(),
            };
            writeln!(
                out,
                "  {name:<28} {:>10} B  {:>7} txns  {range:<26} {}",
                l.file_len,
                l.records,
                match &l.error {
                    None => l.end.clone().unwrap_or_default(),
                    Some(e) => format!("DAMAGED: {e}"),
                }
            )?;
        }
        for g in &j.gaps {
            writeln!(
                out,
                "\nGAP: nothing between {} and {} (before {})",
                g.after_hex, g.next_hex, g.file
            )?;
        }
        Ok(())
    }
}
