//! keeperkit's native snapshot format: independently zstd-compressed, CRC-checked
//! chunks of node records, a metadata block, a footer index and a fixed trailer.
//!
//! ```text
//! header (32) | chunk 0 | chunk 1 | ... | metadata block | footer block | trailer (32)
//! ```
//!
//! `docs/FORMAT.md` ("Native snapshot") documents every byte; [`format`] follows it
//! field by field.
//!
//! - Nodes are stored in pre-order (parents before children), each as its full path
//!   prefix-compressed against the previous node of the same chunk, its data (or a
//!   null flag), its ACL id and the full stat: czxid, mzxid, pzxid, ctime, mtime,
//!   version, client cversion, aversion, the stored ephemeral owner and the sequence
//!   counter. A chunk never refers to another chunk, so chunks are compressed and
//!   decompressed in parallel on every core.
//! - Each block (chunk, metadata, footer) has a 32-byte header with a CRC-32 over the
//!   header and the stored bytes, and a CRC-32 of the decompressed bytes, so both a
//!   damaged file and a decompressor mismatch are caught.
//! - The metadata holds the last log index and term, the zxid, the node count, the
//!   tree digest, the cluster configuration bytes, the sessions (with timeouts and
//!   auth ids) and the ACL table.
//! - The footer lists every chunk (offset, lengths, node count, first path) and the
//!   metadata block; the trailer at the very end points at the footer, so a reader
//!   finds everything from the end and a truncated file is detected at once.
//!
//! # API
//!
//! - [`write_snapshot`] serializes a [`NodeSource`] and a [`SnapshotMeta`] into
//!   `<dir>/<name>.tmp`, fsyncs it, renames it to `<dir>/<name>` and fsyncs the
//!   directory. A producer (the calling thread) walks the source and fills chunk
//!   buffers, worker threads compress them, a writer thread writes them in order.
//! - [`read_snapshot`] checks the trailer, footer and metadata, then streams the
//!   chunks into a [`NodeSink`] in order, decompressing them in parallel; memory is
//!   bounded by a few chunks, not by the file.
//! - [`verify_snapshot`] reads everything and lists every [`Corruption`](keeperkit_model::Corruption) (file, offset,
//!   chunk); [`inspect_snapshot`] returns the header, metadata and chunk table.
//!
//! This crate knows nothing of trees: `keeperkit-storage` adapts its `DataTree` to
//! [`NodeSource`] and [`NodeSink`].
//!
//! # Guarantees
//!
//! - Every limit in [`format`] (path and value length, node count, sessions, ACLs,
//!   configuration, chunk size) is checked before the bytes it concerns are written;
//!   a snapshot that breaks one is never renamed into place.
//! - Every length read from a file is checked against its limit and against the bytes
//!   that remain before anything is allocated for it; no input makes a reader panic.
//! - A crash at any instant leaves either the previous file under the final name or
//!   the complete new one; a leftover `.tmp` is never read ([`remove_temp_files`]
//!   cleans it up).

use std::path::{Path, PathBuf};

use keeperkit_model::{AclList, Id, SessionId, Zxid};

use crate::error::SnapshotError;

mod codec;
pub mod format;
mod reader;
mod verify;
mod writer;

pub use reader::{read_snapshot, read_snapshot_with, ReadOptions};
pub use verify::{inspect_snapshot, verify_snapshot, ChunkInfo, NativeSnapshotInfo};
pub use writer::{write_snapshot, WriteOptions, WrittenSnapshot, WRITE_BEHIND_DEFAULT};

/// Suffix of the temporary file a snapshot is written to before the rename.
pub const TEMP_SUFFIX: &str = ".tmp";

/// Suffix of native snapshot file names.
pub const FILE_SUFFIX: &str = ".kks";

/// The conventional file name of the snapshot covering the log up to `last_index`:
/// `snap-<index as 16 hex digits>.kks`, so that names sort by index.
pub fn snapshot_file_name(last_index: u64) -> String {
    format!("snap-{last_index:016x}{FILE_SUFFIX}")
}

/// The index in a name made by [`snapshot_file_name`], if `name` is one.
pub fn parse_snapshot_file_name(name: &str) -> Option<u64> {
    let hex = name.strip_prefix("snap-")?.strip_suffix(FILE_SUFFIX)?;
    if hex.len() != 16 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u64::from_str_radix(hex, 16).ok()
}

/// Whether the first bytes of a file are a native snapshot's magic.
pub fn has_magic(head: &[u8]) -> bool {
    head.starts_with(&format::SNAPSHOT_MAGIC)
}

/// Removes every `*.kks.tmp` file of `dir` (what a crash during
/// [`write_snapshot`] leaves behind) and fsyncs the directory if it removed any.
/// Returns the paths removed.
pub fn remove_temp_files(
    fs: &dyn keeperkit_vfs::FileSystem,
    dir: &Path,
) -> Result<Vec<PathBuf>, SnapshotError> {
    let entries = fs.read_dir(dir).map_err(|e| SnapshotError::io(dir, e))?;
    let suffix = format!("{FILE_SUFFIX}{TEMP_SUFFIX}");
    let mut removed = Vec::new();
    for e in entries.iter().filter(|e| !e.is_dir && e.name.ends_with(&suffix)) {
        let p = dir.join(&e.name);
        fs.remove_file(&p).map_err(|err| SnapshotError::io(&p, err))?;
        removed.push(p);
    }
    if !removed.is_empty() {
        fs.sync_dir(dir).map_err(|e| SnapshotError::io(dir, e))?;
    }
    Ok(removed)
}

/// Every stat field of a node, as the native format stores it.
///
/// `cversion` is the client-visible child version (what `getData` returns), `seq`
/// ZooKeeper's stored cversion (the per-parent sequence counter), and `owner` the
/// stored ephemeral owner in ZooKeeper's encoding (session id, `i64::MIN` for a
/// container, `0xFF << 56 | ttl` for a TTL node). `dataLength` and `numChildren` are
/// not stored: they follow from the data and the tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct NodeStat {
    /// Zxid of the create.
    pub czxid: i64,
    /// Zxid of the last data change.
    pub mzxid: i64,
    /// Zxid of the last change to the children list.
    pub pzxid: i64,
    /// Create time, ms since the epoch.
    pub ctime: i64,
    /// Last data change time, ms since the epoch.
    pub mtime: i64,
    /// Data version.
    pub version: i32,
    /// Child version as clients see it.
    pub cversion: i32,
    /// ACL version.
    pub aversion: i32,
    /// Stored ephemeral owner (raw encoding).
    pub owner: i64,
    /// Stored child-creation counter (next sequential suffix).
    pub seq: i32,
}

/// One node, borrowed: what a [`NodeSource`] yields and a [`NodeSink`] receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeRecord<'a> {
    /// Full path: `/` for the root, `/a/b` for the others.
    pub path: &'a str,
    /// The value; `None` when null (distinct from empty).
    pub data: Option<&'a [u8]>,
    /// Key of the node's ACL list in [`SnapshotMeta::acls`].
    pub acl_id: u64,
    /// The stat.
    pub stat: NodeStat,
}

/// One node, owned (for tests and small sources).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedNode {
    /// Full path.
    pub path: String,
    /// The value; `None` when null.
    pub data: Option<Vec<u8>>,
    /// ACL id.
    pub acl_id: u64,
    /// The stat.
    pub stat: NodeStat,
}

impl OwnedNode {
    /// A borrowed view.
    pub fn as_record(&self) -> NodeRecord<'_> {
        NodeRecord {
            path: &self.path,
            data: self.data.as_deref(),
            acl_id: self.acl_id,
            stat: self.stat,
        }
    }
}

impl From<NodeRecord<'_>> for OwnedNode {
    fn from(r: NodeRecord<'_>) -> OwnedNode {
        OwnedNode {
            path: r.path.to_owned(),
            data: r.data.map(<[u8]>::to_vec),
            acl_id: r.acl_id,
            stat: r.stat,
        }
    }
}

/// A live session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    /// The session id.
    pub id: SessionId,
    /// Negotiated timeout in ms.
    pub timeout_ms: i32,
    /// Authenticated identities (may be empty: ZooKeeper does not persist them).
    pub auth: Vec<Id>,
}

/// One entry of the ACL table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AclEntry {
    /// The id nodes refer to.
    pub id: u64,
    /// The list (order matters, as in ZooKeeper).
    pub acl: AclList,
}

/// Everything a snapshot holds besides the nodes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SnapshotMeta {
    /// Index of the last log entry the snapshot covers.
    pub last_index: u64,
    /// Term of that entry.
    pub last_term: u64,
    /// The last zxid applied to the tree (`lastProcessedZxid`).
    pub zxid: Zxid,
    /// Number of nodes; [`write_snapshot`] checks the source yields exactly this many.
    pub node_count: u64,
    /// The tree digest (ZooKeeper's, see `keeperkit-tree`), stored as given.
    pub digest: u64,
    /// Cluster configuration, opaque bytes (a ZooKeeper dynamic config, a Raft
    /// membership).
    pub cluster_config: Vec<u8>,
    /// Live sessions, unique ids.
    pub sessions: Vec<SessionRecord>,
    /// The ACL table, unique ids; every node's `acl_id` is one of them.
    pub acls: Vec<AclEntry>,
}

/// Where [`write_snapshot`] takes its nodes from.
pub trait NodeSource {
    /// Calls `f` for every node, parents before children (pre-order), the root (`/`)
    /// first. Stops at the first `Err` of `f` and returns it (a source that cannot stop
    /// early may keep calling; every later call returns the same error).
    fn for_each_node(
        &self,
        f: &mut dyn FnMut(NodeRecord<'_>) -> Result<(), SnapshotError>,
    ) -> Result<(), SnapshotError>;
}

impl NodeSource for [OwnedNode] {
    fn for_each_node(
        &self,
        f: &mut dyn FnMut(NodeRecord<'_>) -> Result<(), SnapshotError>,
    ) -> Result<(), SnapshotError> {
        self.iter().try_for_each(|n| f(n.as_record()))
    }
}

impl NodeSource for Vec<OwnedNode> {
    fn for_each_node(
        &self,
        f: &mut dyn FnMut(NodeRecord<'_>) -> Result<(), SnapshotError>,
    ) -> Result<(), SnapshotError> {
        self.as_slice().for_each_node(f)
    }
}

/// Receives what [`read_snapshot`] decodes, in file order.
pub trait NodeSink {
    /// The metadata (sessions, ACL table, ...), once, before any node. An `Err` aborts
    /// reading with [`SnapshotError::Corrupt`] carrying the message.
    fn begin(&mut self, meta: &SnapshotMeta) -> Result<(), String>;

    /// One node, parents before children. An `Err` aborts reading with
    /// [`SnapshotError::Corrupt`] naming the chunk and the node.
    fn node(&mut self, node: NodeRecord<'_>) -> Result<(), String>;
}

/// A sink that collects every node (for tests and small snapshots).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CollectSink {
    /// The metadata given to `begin`.
    pub meta: Option<SnapshotMeta>,
    /// The nodes, in file order.
    pub nodes: Vec<OwnedNode>,
}

impl NodeSink for CollectSink {
    fn begin(&mut self, meta: &SnapshotMeta) -> Result<(), String> {
        self.meta = Some(meta.clone());
        Ok(())
    }

    fn node(&mut self, node: NodeRecord<'_>) -> Result<(), String> {
        self.nodes.push(node.into());
        Ok(())
    }
}

/// A sink that drops everything (reading still checks every byte).
#[derive(Debug, Clone, Copy, Default)]
pub struct NullSink;

impl NodeSink for NullSink {
    fn begin(&mut self, _meta: &SnapshotMeta) -> Result<(), String> {
        Ok(())
    }

    fn node(&mut self, _node: NodeRecord<'_>) -> Result<(), String> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names() {
        assert_eq!(snapshot_file_name(0x1cb), "snap-00000000000001cb.kks");
        assert_eq!(parse_snapshot_file_name("snap-00000000000001cb.kks"), Some(0x1cb));
        assert_eq!(parse_snapshot_file_name("snap-1cb.kks"), None);
        assert_eq!(parse_snapshot_file_name("snap-00000000000001cb.kks.tmp"), None);
    }
}
