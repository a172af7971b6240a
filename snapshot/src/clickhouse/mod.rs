//! ClickHouse Keeper snapshots (`snapshot_<N>.bin[.zstd]`).
//!
//! A file is a compression container ([`container`]: one zstd stream, or ClickHouse
//! compressed blocks with CityHash128 v1.0.2 checksums) around a little-endian body
//! ([`body`], versions V0–V8):
//!
//! ```text
//! u8 version | varuint len + NuRaft snapshot meta | V5+: i64 zxid, u8 digest_version
//! [u64 digest] | i64 session_id_counter | V1+: ACL map | u64 n × node | u64 n × session
//! [varuint len + NuRaft cluster_config]
//! ```
//!
//! [`read_snapshot`] hands the content to a [`ClickHouseSnapshotSink`];
//! [`write_snapshot`] writes from a [`ClickHouseSnapshotSource`] (V6 by default, V7/V8
//! on request; V8 is needed for TTL nodes). [`SnapshotContents`] is an owned
//! implementation of both, with which read → write gives identical bytes for V6–V8
//! files in either container (LZ4/ZSTD blocks: identical for files this crate wrote).
//!
//! Offsets in errors: container errors carry file offsets; body errors carry offsets
//! in the decompressed body (for NONE blocks these differ from file offsets by the
//! block headers).

use std::path::{Path, PathBuf};

use keeperkit_model::keeper::nuraft::ClusterConfig;
use keeperkit_model::{AclList, Corruption};
use keeperkit_vfs::{FileSystem, OpenMode};

use crate::error::SnapshotError;
use body::{read_body_from, Body};

pub mod body;
pub mod check;
pub mod container;

pub use body::{
    read_body, write_body, BodyCounts, ClickHouseSnapshotSink, ClickHouseSnapshotSource,
    NodeRecord, SessionRecord, SnapshotHeader, VERSION_DEFAULT, VERSION_MAX,
};
pub use check::{check_contents, ContentProblem, Severity};
pub use container::Container;

/// Largest decompressed body read: 64 GiB (the largest production snapshot reported
/// is ~27 GB uncompressed). The cap only stops a decompression bomb.
pub const BODY_LEN_MAX: u64 = 64 << 30;

/// Prefix of Keeper's temporary markers.
pub const TMP_PREFIX: &str = "tmp_";

/// The log index in a snapshot file name: `snapshot_<N>.bin[.zstd]` or the 2026
/// `snapshot_<N>_<16 hex>.bin[.zstd]` (`getLogIdxFromSnapshotPath`: strip the last
/// extension, split on `_` and `.`, the second token).
pub fn parse_snapshot_name(name: &str) -> Option<u64> {
    if !name.starts_with("snapshot_") {
        return None;
    }
    let stem = name.rsplit_once('.').map_or(name, |(s, _)| s);
    stem.split(['_', '.']).nth(1)?.parse().ok()
}

/// The file name Keeper writes for index `n` in a container.
pub fn snapshot_file_name(n: u64, container: Container) -> String {
    match container {
        Container::Zstd => format!("snapshot_{n}.bin.zstd"),
        Container::Blocks(_) => format!("snapshot_{n}.bin"),
    }
}

/// Snapshot files of a directory as `(index, path)`, and the names of `tmp_` markers.
pub type SnapshotListing = (Vec<(u64, PathBuf)>, Vec<String>);

/// The snapshot files of a directory, ascending by index (ties by name), and the
/// `tmp_` markers (a snapshot with a marker is incomplete: Keeper deletes both).
pub fn list_snapshots(fs: &dyn FileSystem, dir: &Path) -> Result<SnapshotListing, SnapshotError> {
    let entries = fs.read_dir(dir).map_err(|e| SnapshotError::io(dir, e))?;
    let mut files = Vec::new();
    let mut markers = Vec::new();
    for e in entries.into_iter().filter(|e| !e.is_dir) {
        if e.name.starts_with(TMP_PREFIX) {
            markers.push(e.name);
        } else if let Some(n) = parse_snapshot_name(&e.name) {
            files.push((n, dir.join(&e.name)));
        }
    }
    files.sort();
    Ok((files, markers))
}

/// Options of [`read_snapshot`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadOptions {
    /// Cap on the decompressed body.
    pub body_len_max: u64,
    /// Recompute the tree digest (digest versions 4 and 5) while reading.
    pub compute_digest: bool,
}

impl Default for ReadOptions {
    fn default() -> Self {
        ReadOptions { body_len_max: BODY_LEN_MAX, compute_digest: false }
    }
}

/// What [`read_snapshot`] learned besides the content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotInfo {
    /// The container.
    pub container: Container,
    /// File length.
    pub file_len: u64,
    /// Decompressed body length.
    pub body_len: u64,
    /// The header.
    pub header: SnapshotHeader,
    /// Counts (and the recomputed digest when asked).
    pub counts: BodyCounts,
}

/// Reads a snapshot file into `sink`.
pub fn read_snapshot(
    fs: &dyn FileSystem,
    path: &Path,
    sink: &mut dyn ClickHouseSnapshotSink,
    opts: ReadOptions,
) -> Result<SnapshotInfo, SnapshotError> {
    let bytes = fs.read_all(path).map_err(|e| SnapshotError::io(path, e))?;
    read_snapshot_bytes(path, &bytes, sink, opts)
}

/// Reads snapshot bytes already in memory; `path` names the file in errors.
///
/// The body is parsed as it is decompressed: memory follows what the sink keeps, not
/// the body's size (a decompression bomb fails at its first bad record).
pub fn read_snapshot_bytes(
    path: &Path,
    bytes: &[u8],
    sink: &mut dyn ClickHouseSnapshotSink,
    opts: ReadOptions,
) -> Result<SnapshotInfo, SnapshotError> {
    let cap = usize::try_from(opts.body_len_max).unwrap_or(usize::MAX);
    let (mut reader, container) = container::body_reader(bytes, cap);
    let mut body = Body::new(&mut *reader, None);
    let read = read_body_from(&mut body, sink, opts.compute_digest);
    let body_len = body.produced();
    let failed = body.failed.take();
    let (header, counts) = match (read, failed) {
        (Ok(v), _) => v,
        (Err(_), Some(e)) => {
            let e = container::reader_error(e, body_len);
            return Err(SnapshotError::Corrupt(Corruption::new(path, e.offset, e.kind)));
        }
        (Err(e), None) => return Err(SnapshotError::Corrupt(e.in_file(path, 0, None))),
    };
    Ok(SnapshotInfo { container, file_len: bytes.len() as u64, body_len, header, counts })
}

/// Options of [`write_snapshot`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriteOptions {
    /// Body version: 6 (default), 7 or 8.
    pub version: u8,
    /// Container (default zstd, Keeper's default).
    pub container: Container,
    /// Write this digest version with a digest computed from the nodes (4 or 5), or
    /// `None` to write the source header's digest fields as they are.
    pub compute_digest: Option<u8>,
    /// fsync the file and the directory.
    pub sync: bool,
}

impl Default for WriteOptions {
    fn default() -> Self {
        WriteOptions {
            version: VERSION_DEFAULT,
            container: Container::Zstd,
            compute_digest: None,
            sync: true,
        }
    }
}

/// Encodes a whole snapshot file (body in its container) in memory.
pub fn encode_snapshot(
    source: &dyn ClickHouseSnapshotSource,
    opts: WriteOptions,
) -> Result<Vec<u8>, SnapshotError> {
    let body = write_body(source, opts.version, opts.compute_digest)?;
    container::encode(&body, opts.container).map_err(|e| SnapshotError::io("<memory>", e))
}

/// Writes `snapshot_<last_log_idx>.bin[.zstd]` into `dir` the way Keeper does: an
/// empty `tmp_<name>` marker first, then the file, fsynced, then the marker removed
/// (a crash in between leaves a marker Keeper understands: it deletes both). An
/// existing file of the same name is refused.
pub fn write_snapshot(
    fs: &dyn FileSystem,
    dir: &Path,
    source: &dyn ClickHouseSnapshotSource,
    opts: WriteOptions,
) -> Result<PathBuf, SnapshotError> {
    let bytes = encode_snapshot(source, opts)?;
    let name = snapshot_file_name(source.header().meta.last_log_idx, opts.container);
    let path = dir.join(&name);
    let marker = dir.join(format!("{TMP_PREFIX}{name}"));
    let io = |p: &Path, e| SnapshotError::io(p, e);
    fs.open(&marker, OpenMode::CreateTruncate).map_err(|e| io(&marker, e))?;
    let f = fs.open(&path, OpenMode::CreateNew).map_err(|e| io(&path, e))?;
    f.write_all_at(&bytes, 0).map_err(|e| io(&path, e))?;
    if opts.sync {
        f.sync_all().map_err(|e| io(&path, e))?;
        fs.sync_dir(dir).map_err(|e| io(dir, e))?;
    }
    fs.remove_file(&marker).map_err(|e| io(&marker, e))?;
    if opts.sync {
        fs.sync_dir(dir).map_err(|e| io(dir, e))?;
    }
    Ok(path)
}

/// One node, owned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedNode {
    /// Path.
    pub path: String,
    /// Data.
    pub data: Vec<u8>,
    /// ACL map id.
    pub acl_id: u64,
    /// Stat.
    pub stat: keeperkit_model::keeper::KeeperStat,
    /// Sequence counter.
    pub seq_num: i64,
    /// TTL (V8).
    pub ttl_ms: Option<i64>,
}

impl OwnedNode {
    /// A borrowed view.
    pub fn as_record(&self) -> NodeRecord<'_> {
        NodeRecord {
            path: &self.path,
            data: &self.data,
            acl_id: self.acl_id,
            stat: self.stat,
            seq_num: self.seq_num,
            ttl_ms: self.ttl_ms,
        }
    }
}

/// A whole snapshot in memory, in file order: a sink that collects and a source that
/// writes back exactly what was collected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotContents {
    /// The header.
    pub header: SnapshotHeader,
    /// ACL map entries in file order.
    pub acls: Vec<(u64, AclList)>,
    /// Nodes in file order.
    pub nodes: Vec<OwnedNode>,
    /// Sessions in file order.
    pub sessions: Vec<SessionRecord>,
    /// Trailer config.
    pub cluster_config: Option<ClusterConfig>,
}

impl SnapshotContents {
    /// Empty contents with a header.
    pub fn new(header: SnapshotHeader) -> SnapshotContents {
        SnapshotContents {
            header,
            acls: Vec::new(),
            nodes: Vec::new(),
            sessions: Vec::new(),
            cluster_config: None,
        }
    }

    /// Reads a whole snapshot file into memory.
    pub fn read(
        fs: &dyn FileSystem,
        path: &Path,
    ) -> Result<(SnapshotContents, SnapshotInfo), SnapshotError> {
        let mut c = SnapshotContents::new(SnapshotHeader {
            version: 0,
            meta: Default::default(),
            zxid: None,
            digest_version: 0,
            digest: None,
            session_id_counter: 0,
        });
        let info = read_snapshot(fs, path, &mut c, ReadOptions::default())?;
        Ok((c, info))
    }
}

impl ClickHouseSnapshotSink for SnapshotContents {
    fn header(&mut self, header: &SnapshotHeader) -> Result<(), String> {
        self.header = header.clone();
        Ok(())
    }
    fn acl(&mut self, id: u64, acls: AclList) -> Result<(), String> {
        self.acls.push((id, acls));
        Ok(())
    }
    fn node(&mut self, n: &NodeRecord<'_>) -> Result<(), String> {
        self.nodes.push(OwnedNode {
            path: n.path.to_owned(),
            data: n.data.to_vec(),
            acl_id: n.acl_id,
            stat: n.stat,
            seq_num: n.seq_num,
            ttl_ms: n.ttl_ms,
        });
        Ok(())
    }
    fn session(&mut self, s: SessionRecord) -> Result<(), String> {
        self.sessions.push(s);
        Ok(())
    }
    fn cluster_config(&mut self, config: ClusterConfig) -> Result<(), String> {
        self.cluster_config = Some(config);
        Ok(())
    }
}

impl ClickHouseSnapshotSource for SnapshotContents {
    fn header(&self) -> SnapshotHeader {
        self.header.clone()
    }
    fn acl_count(&self) -> u64 {
        self.acls.len() as u64
    }
    fn visit_acls(&self, f: &mut body::AclVisitor<'_>) -> Result<(), String> {
        self.acls.iter().try_for_each(|(id, l)| f(*id, l))
    }
    fn node_count(&self) -> u64 {
        self.nodes.len() as u64
    }
    fn visit_nodes(&self, f: &mut body::NodeVisitor<'_>) -> Result<(), String> {
        self.nodes.iter().try_for_each(|n| f(&n.as_record()))
    }
    fn session_count(&self) -> u64 {
        self.sessions.len() as u64
    }
    fn visit_sessions(&self, f: &mut body::SessionVisitor<'_>) -> Result<(), String> {
        self.sessions.iter().try_for_each(f)
    }
    fn cluster_config(&self) -> Option<ClusterConfig> {
        self.cluster_config.clone()
    }
}
