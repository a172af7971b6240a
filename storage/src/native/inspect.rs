//! What `keeperkit inspect` shows of native data: the snapshots (metadata and chunk
//! table, from the footer) and the WAL (metadata, segments).

use std::fmt;
use std::path::Path;

use keeperkit_vfs::FileSystem;
use keeperkit_wal::native::{self, NativeLogInfo, SegmentStatus};
use serde::Serialize;

use super::check::wal_finding;
use crate::findings::{Code, Finding, Severity};
use crate::report::{show, InspectDetails, Inspection};
use crate::{Dialect, StorageError};

/// A native snapshot as `inspect --json` shows it.
#[derive(Debug, Serialize)]
pub struct NativeSnapshotJson {
    /// The file.
    pub file: String,
    /// Its length in bytes.
    pub file_len: Option<u64>,
    /// Format version.
    pub version: Option<u16>,
    /// The last log index the snapshot covers.
    pub last_index: Option<u64>,
    /// The term of that entry.
    pub last_term: Option<u64>,
    /// `lastProcessedZxid` of the tree, in hex.
    pub zxid_hex: Option<String>,
    /// Nodes in the tree.
    pub nodes: Option<u64>,
    /// The tree digest, in hex.
    pub digest_hex: Option<String>,
    /// Sessions.
    pub sessions: Option<usize>,
    /// ACL lists.
    pub acls: Option<usize>,
    /// Chunks.
    pub chunks: Option<usize>,
    /// The compression of the chunks.
    pub compression: Option<&'static str>,
    /// Bytes of the chunks before compression.
    pub raw_bytes: Option<u64>,
    /// Bytes of the chunks as stored.
    pub stored_bytes: Option<u64>,
    /// Why the file could not be read.
    pub error: Option<String>,
}

/// A WAL segment as `inspect --json` shows it.
#[derive(Debug, Serialize)]
pub struct NativeSegmentJson {
    /// The file.
    pub file: String,
    /// Its sequence number.
    pub seq: u64,
    /// Its length in bytes.
    pub file_len: u64,
    /// Where its valid records end.
    pub data_end: u64,
    /// First index in it.
    pub first_index: Option<u64>,
    /// Last index in it.
    pub last_index: Option<u64>,
    /// Records (entries and control records).
    pub records: u64,
    /// Log entries.
    pub entries: u64,
    /// Records stored compressed.
    pub compressed_records: u64,
    /// The segment format version.
    pub format_version: Option<u16>,
    /// Whether it lies entirely below the purge marker (a leftover).
    pub purged: bool,
    /// `ok`, `torn tail at N` or `CORRUPT at byte N`.
    pub status: String,
}

/// `inspect` of native data.
#[derive(Debug, Serialize)]
pub struct NativeInspect {
    /// The WAL directory.
    pub wal_dir: String,
    /// The log id of the WAL metadata, in hex.
    pub log_id: Option<String>,
    /// The stored term.
    pub term: Option<u64>,
    /// The stored vote.
    pub vote: Option<u64>,
    /// Entries up to this index are purged.
    pub purged_up_to: Option<u64>,
    /// The first index served.
    pub first_index: Option<u64>,
    /// The last index.
    pub last_index: Option<u64>,
    /// The segments, in order.
    pub segments: Vec<NativeSegmentJson>,
    /// Temporary files a crash left.
    pub temp_files: Vec<String>,
    /// The snapshots, oldest first.
    pub snapshots: Vec<NativeSnapshotJson>,
}

fn snapshot_json(fs: &dyn FileSystem, f: &Path) -> (NativeSnapshotJson, Option<Finding>) {
    match keeperkit_snapshot::native::inspect_snapshot(fs, f) {
        Ok(i) => (
            NativeSnapshotJson {
                file: show(f),
                file_len: Some(i.file_len),
                version: Some(i.version),
                last_index: Some(i.meta.last_index),
                last_term: Some(i.meta.last_term),
                zxid_hex: Some(format!("{:#x}", i.meta.zxid.0)),
                nodes: Some(i.meta.node_count),
                digest_hex: Some(format!("{:#018x}", i.meta.digest)),
                sessions: Some(i.meta.sessions.len()),
                acls: Some(i.meta.acls.len()),
                chunks: Some(i.chunks.len()),
                compression: i.chunks.first().map(|c| c.codec.name()),
                raw_bytes: Some(i.chunks.iter().map(|c| u64::from(c.raw_len)).sum()),
                stored_bytes: Some(i.chunks.iter().map(|c| u64::from(c.stored_len)).sum()),
                error: None,
            },
            None,
        ),
        Err(e) => {
            let finding = match e.corruption() {
                Some(c) => Finding::corruption(c, "damaged snapshot"),
                None => Finding::new(Severity::Error, Code::Unreadable, e.to_string()).file(f),
            };
            (
                NativeSnapshotJson {
                    file: show(f),
                    file_len: None,
                    version: None,
                    last_index: None,
                    last_term: None,
                    zxid_hex: None,
                    nodes: None,
                    digest_hex: None,
                    sessions: None,
                    acls: None,
                    chunks: None,
                    compression: None,
                    raw_bytes: None,
                    stored_bytes: None,
                    error: Some(e.to_string()),
                },
                Some(finding),
            )
        }
    }
}

fn segments_json(info: &NativeLogInfo) -> Vec<NativeSegmentJson> {
    info.segments
        .iter()
        .map(|s| NativeSegmentJson {
            file: show(&s.path),
            seq: s.seq,
            file_len: s.file_len,
            data_end: s.data_end,
            first_index: s.first_index,
            last_index: s.last_index,
            records: s.records,
            entries: s.entries,
            compressed_records: s.compressed_records,
            format_version: s.header.map(|_| native::format::FORMAT_VERSION),
            purged: s.purged,
            status: match &s.status {
                SegmentStatus::Ok => "ok".to_string(),
                SegmentStatus::TornTail { valid_end } => format!("torn tail at {valid_end}"),
                SegmentStatus::Corrupt { offset } => format!("CORRUPT at byte {offset}"),
            },
        })
        .collect()
}

/// Inspects native data: `files` are the snapshot files to describe, `wal_dir` the
/// WAL (none for a single snapshot file).
pub(crate) fn inspect(
    fs: &dyn FileSystem,
    path: &Path,
    files: &[std::path::PathBuf],
    wal_dir: Option<&Path>,
) -> Result<Inspection, StorageError> {
    let mut findings = Vec::new();
    let mut snapshots = Vec::new();
    for f in files {
        let (j, finding) = snapshot_json(fs, f);
        snapshots.push(j);
        findings.extend(finding);
    }
    let mut j = NativeInspect {
        wal_dir: wal_dir.map(show).unwrap_or_default(),
        log_id: None,
        term: None,
        vote: None,
        purged_up_to: None,
        first_index: None,
        last_index: None,
        segments: Vec::new(),
        temp_files: Vec::new(),
        snapshots,
    };
    if let Some(dir) = wal_dir {
        let info = native::inspect(fs, dir)?;
        j.log_id = info.meta.map(|m| format!("{:#018x}", m.log_id));
        j.term = info.meta.map(|m| m.term);
        j.vote = info.meta.and_then(|m| m.vote);
        j.purged_up_to = info.meta.map(|m| m.purged);
        j.first_index = info.first_index;
        j.last_index = info.last_index;
        j.segments = segments_json(&info);
        j.temp_files = info.temp_files.iter().map(|p| show(p)).collect();
        findings.extend(info.problems.iter().map(wal_finding));
    }
    let ok = !crate::findings::has_errors(&findings);
    Ok(Inspection::new(Dialect::Native, path, InspectDetails::Native(Box::new(j)), ok, findings))
}

impl fmt::Display for NativeInspect {
    fn fmt(&self, out: &mut fmt::Formatter<'_>) -> fmt::Result {
        let j = self;
        writeln!(out, "snapshots ({}):", j.snapshots.len())?;
        for s in &j.snapshots {
            if let Some(e) = &s.error {
                writeln!(out, "  {}  UNREADABLE: {e}", s.file)?;
                continue;
            }
            writeln!(
                out,
                "  {}  index {} term {} zxid {} nodes {} chunks {} ({}) {} B",
                s.file,
                s.last_index.unwrap_or(0),
                s.last_term.unwrap_or(0),
                s.zxid_hex.as_deref().unwrap_or_default(),
                s.nodes.unwrap_or(0),
                s.chunks.unwrap_or(0),
                s.compression.unwrap_or("-"),
                s.file_len.unwrap_or(0),
            )?;
        }
        if j.wal_dir.is_empty() {
            return Ok(());
        }
        writeln!(out, "\ndialect:  keeperkit native WAL ({})", j.wal_dir)?;
        writeln!(
            out,
            "log id:   {}   term {}   vote {}   purged up to {}",
            j.log_id.as_deref().unwrap_or("-"),
            j.term.map_or("-".into(), |t| t.to_string()),
            j.vote.map_or("-".into(), |t| t.to_string()),
            j.purged_up_to.map_or("-".into(), |t| t.to_string()),
        )?;
        match (j.first_index, j.last_index) {
            (Some(a), Some(b)) => writeln!(out, "indexes:  {a} .. {b}")?,
            _ => writeln!(out, "indexes:  none")?,
        }
        writeln!(out, "\nsegments ({}):", j.segments.len())?;
        for s in &j.segments {
            let name =
                Path::new(&s.file).file_name().map(|n| n.to_string_lossy()).unwrap_or_default();
            let range = match (s.first_index, s.last_index) {
                (Some(a), Some(b)) => format!("{a} .. {b}"),
                (Some(a), None) => format!("{a} .. (empty)"),
                _ => "-".into(),
            };
            writeln!(
                out,
                "  {name:<28} {:>12} B ({:>12} used) {:>8} entries  {range:<24} {}{}",
                s.file_len,
                s.data_end,
                s.entries,
                s.status,
                if s.purged { " (purged leftover)" } else { "" }
            )?;
        }
        for t in &j.temp_files {
            writeln!(out, "  leftover temporary file {t}")?;
        }
        Ok(())
    }
}
