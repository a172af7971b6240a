//! Native snapshots of a [`DataTree`]: the adapter between `keeperkit-tree` and the
//! native format of `keeperkit-snapshot` (which knows nothing of trees).
//!
//! - [`save_tree`] walks the tree in pre-order ([`DataTree::for_each_preorder`]) as a
//!   [`NodeSource`] and writes every node with its full stat (client cversion, stored
//!   sequence counter, raw ephemeral owner), the sessions, the ACL table (one id per
//!   distinct list, [`DataTree::acl_lists`]), the last processed zxid and the digest.
//!   The tree may be a copy-on-write view ([`DataTree::clone`]) taken while writes
//!   continue on the original.
//! - [`load_tree`] reads it back with [`DataTree::insert_loaded_full`] and
//!   [`DataTree::add_session`], then checks the node count and that the tree's digest
//!   equals the stored one.
//!
//! The round trip is exact: every field of every node, the sessions with their auth ids
//! (kept by the tree for ClickHouse Keeper sessions) and the digest.

use std::cell::Cell;
use std::collections::HashMap;
use std::path::Path;

use keeperkit_model::{Acl, AclList, Corruption, CorruptionKind, Stat};
use keeperkit_snapshot::native::{
    read_snapshot_with, write_snapshot, AclEntry, NodeRecord, NodeSink, NodeSource, NodeStat,
    ReadOptions, SessionRecord, SnapshotMeta, WriteOptions, WrittenSnapshot,
};
use keeperkit_snapshot::SnapshotError;
use keeperkit_tree::{DataTree, NodeRef};
use keeperkit_vfs::FileSystem;

use crate::error::StorageError;

/// What a snapshot records besides the tree itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SnapshotPosition {
    /// Index of the last log entry the tree contains.
    pub last_index: u64,
    /// Term of that entry.
    pub last_term: u64,
    /// Cluster configuration bytes (opaque).
    pub cluster_config: Vec<u8>,
}

/// The metadata [`save_tree`] writes for `tree`: its zxid, node count, digest,
/// sessions and ACL table (ids = positions in [`DataTree::acl_lists`]).
pub fn tree_meta(tree: &DataTree, pos: &SnapshotPosition) -> SnapshotMeta {
    SnapshotMeta {
        last_index: pos.last_index,
        last_term: pos.last_term,
        zxid: tree.last_processed_zxid(),
        node_count: u64::try_from(tree.node_count()).unwrap_or(u64::MAX),
        digest: tree.digest(),
        cluster_config: pos.cluster_config.clone(),
        sessions: tree
            .sessions()
            .into_iter()
            .map(|s| SessionRecord {
                id: s.id,
                timeout_ms: s.timeout_ms,
                auth: tree.session_auths(s.id),
            })
            .collect(),
        acls: tree
            .acl_lists()
            .into_iter()
            .zip(0u64..)
            .map(|(acl, id)| AclEntry { id, acl })
            .collect(),
    }
}

/// Writes `tree` as the native snapshot `dir/name` (temporary file, fsync, rename,
/// directory fsync; see [`write_snapshot`]).
pub fn save_tree(
    fs: &dyn FileSystem,
    dir: &Path,
    name: &str,
    tree: &DataTree,
    pos: &SnapshotPosition,
    opts: &WriteOptions,
) -> Result<WrittenSnapshot, StorageError> {
    save_tree_with_progress(fs, dir, name, tree, pos, opts, &mut crate::progress::NoProgress)
}

/// [`save_tree`] reporting the nodes written to `progress`.
pub fn save_tree_with_progress(
    fs: &dyn FileSystem,
    dir: &Path,
    name: &str,
    tree: &DataTree,
    pos: &SnapshotPosition,
    opts: &WriteOptions,
    progress: &mut dyn crate::progress::Progress,
) -> Result<WrittenSnapshot, StorageError> {
    let meta = tree_meta(tree, pos);
    let source = TreeSource::new(tree, &meta);
    let counter = crate::convert::counted::NodeCounter::new(progress, tree.node_count() as u64);
    let counted = crate::convert::counted::Counted { inner: &source, counter: &counter };
    Ok(write_snapshot(fs, dir, name, &meta, &counted, opts)?)
}

/// A tree loaded from a native snapshot.
#[derive(Debug, Clone)]
pub struct LoadedTree {
    /// The tree, with its sessions and `lastProcessedZxid` set to the snapshot's zxid.
    pub tree: DataTree,
    /// The snapshot's metadata.
    pub meta: SnapshotMeta,
}

/// Loads a native snapshot into a new tree. Checks what the format cannot: that the
/// nodes form a tree (parents first, no duplicates: [`DataTree::insert_loaded_full`]),
/// and that the tree's digest equals the stored one.
pub fn load_tree(fs: &dyn FileSystem, path: &Path) -> Result<LoadedTree, StorageError> {
    load_tree_with(fs, path, &ReadOptions::default())
}

/// [`load_tree`] with reader options.
pub fn load_tree_with(
    fs: &dyn FileSystem,
    path: &Path,
    opts: &ReadOptions,
) -> Result<LoadedTree, StorageError> {
    let mut sink = TreeSink::default();
    let meta = read_snapshot_with(fs, path, &mut sink, opts)?;
    let mut tree = sink.tree;
    tree.set_last_processed_zxid(meta.zxid);
    let corrupt = |msg: String| {
        StorageError::Corrupt(Corruption::new(path, 0, CorruptionKind::inconsistent(msg)))
    };
    let count = u64::try_from(tree.node_count()).unwrap_or(u64::MAX);
    if count != meta.node_count {
        return Err(corrupt(format!(
            "the snapshot lists {} nodes, the tree built from them has {count}",
            meta.node_count
        )));
    }
    if tree.digest() != meta.digest {
        return Err(corrupt(format!(
            "tree digest mismatch: the snapshot says {:#018x}, its nodes give {:#018x}",
            meta.digest,
            tree.digest()
        )));
    }
    Ok(LoadedTree { tree, meta })
}

/// A tree as a [`NodeSource`].
pub struct TreeSource<'a> {
    tree: &'a DataTree,
    /// ACL list contents → id (the ids of [`tree_meta`]).
    by_content: HashMap<&'a [Acl], u64>,
    /// The list (by address: the tree interns lists, so one address per list) and id
    /// of the previous node; consecutive nodes mostly share their list.
    last: Cell<Option<(*const AclList, u64)>>,
}

impl std::fmt::Debug for TreeSource<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TreeSource").field("tree", self.tree).finish()
    }
}

impl<'a> TreeSource<'a> {
    /// A source for `tree` whose ACL ids are those of `meta.acls` (as built by
    /// [`tree_meta`]).
    pub fn new(tree: &'a DataTree, meta: &'a SnapshotMeta) -> TreeSource<'a> {
        let by_content = meta.acls.iter().map(|e| (e.acl.as_slice(), e.id)).collect();
        TreeSource { tree, by_content, last: Cell::new(None) }
    }

    fn acl_id(&self, acl: &AclList) -> Result<u64, SnapshotError> {
        let ptr: *const AclList = acl;
        if let Some((p, id)) = self.last.get() {
            if p == ptr {
                return Ok(id);
            }
        }
        let Some(&id) = self.by_content.get(acl.as_slice()) else {
            return Err(SnapshotError::Source(
                "a node's ACL list is not in the tree's ACL table".into(),
            ));
        };
        self.last.set(Some((ptr, id)));
        Ok(id)
    }
}

/// The native record of a tree node.
fn record<'n>(path: &'n str, n: &NodeRef<'n>, acl_id: u64) -> NodeRecord<'n> {
    let s = n.stored_stat();
    NodeRecord {
        path,
        data: n.data(),
        acl_id,
        stat: NodeStat {
            czxid: s.czxid,
            mzxid: s.mzxid,
            pzxid: s.pzxid,
            ctime: s.ctime,
            mtime: s.mtime,
            version: s.version,
            cversion: n.stat().cversion,
            aversion: s.aversion,
            owner: s.ephemeral_owner,
            seq: s.cversion,
        },
    }
}

impl NodeSource for TreeSource<'_> {
    fn for_each_node(
        &self,
        f: &mut dyn FnMut(NodeRecord<'_>) -> Result<(), SnapshotError>,
    ) -> Result<(), SnapshotError> {
        let mut result = Ok(());
        // The walk cannot stop early: after an error the remaining nodes are skipped.
        self.tree.for_each_preorder(|path, n| {
            if result.is_err() {
                return;
            }
            result = self.acl_id(n.acl()).and_then(|id| f(record(path, &n, id)));
        });
        result
    }
}

/// Builds a tree from what the reader decodes.
#[derive(Debug)]
struct TreeSink {
    tree: DataTree,
    /// ACL id → position in `lists`.
    acls: HashMap<u64, usize>,
    lists: Vec<AclList>,
    /// The previous node's ACL id and list position (consecutive nodes mostly share).
    last: Option<(u64, usize)>,
}

impl Default for TreeSink {
    fn default() -> TreeSink {
        TreeSink { tree: DataTree::empty(), acls: HashMap::new(), lists: Vec::new(), last: None }
    }
}

impl NodeSink for TreeSink {
    fn begin(&mut self, meta: &SnapshotMeta) -> Result<(), String> {
        self.lists = meta.acls.iter().map(|e| e.acl.clone()).collect();
        self.acls = meta.acls.iter().zip(0..).map(|(e, i)| (e.id, i)).collect();
        for s in &meta.sessions {
            self.tree.add_session(s.id, s.timeout_ms);
            for a in &s.auth {
                self.tree.add_session_auth(s.id, a.clone());
            }
        }
        Ok(())
    }

    fn node(&mut self, rec: NodeRecord<'_>) -> Result<(), String> {
        let at = match self.last {
            Some((id, at)) if id == rec.acl_id => at,
            _ => match self.acls.get(&rec.acl_id) {
                Some(&at) => {
                    self.last = Some((rec.acl_id, at));
                    at
                }
                None => return Err(format!("ACL id {} is not in the ACL table", rec.acl_id)),
            },
        };
        let acl = &self.lists[at];
        let s = &rec.stat;
        let stat = Stat {
            czxid: s.czxid,
            mzxid: s.mzxid,
            ctime: s.ctime,
            mtime: s.mtime,
            version: s.version,
            cversion: s.cversion,
            aversion: s.aversion,
            ephemeral_owner: 0,
            data_length: 0,
            num_children: 0,
            pzxid: s.pzxid,
        };
        self.tree
            .insert_loaded_full(rec.path, rec.data, acl, &stat, s.seq, s.owner)
            .map_err(|e| e.to_string())
    }
}
