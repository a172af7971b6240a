//! A ClickHouse Keeper snapshot loaded into a [`DataTree`], the way Keeper's
//! `KeeperStorageSnapshot::deserialize` loads it.
//!
//! Mapping (docs/FORMAT.md, "ClickHouse Keeper state in the tree"):
//! - Keeper stores the client-visible cversion and a separate per-parent sequence
//!   counter (`seq_num`): both are kept ([`DataTree::insert_loaded_full`]), except
//!   that an ephemeral node's stored `seq_num` is ignored (0), as Keeper ignores it.
//! - ACL id 0 (and `u64::MAX`, ZooKeeper's "open ACL unsafe" id −1 that Keeper reads
//!   as 0) means "no ACL": every permission for everyone, which is what a ZooKeeper
//!   client calls `OPEN_ACL_UNSAFE` (`world:anyone`, perms 31).
//! - Keeper has no null value: every node's data is a (possibly empty) value.
//! - A TTL node (V8 `ttl_ms`) becomes ZooKeeper's TTL owner encoding; a container
//!   (V9 `ephemeralOwner = i64::MIN`) is ZooKeeper's container encoding already.
//! - `/keeper` is a system node Keeper regenerates at startup: it is not put into the
//!   tree (its record must be empty, as Keeper requires); `/keeper/*` records, which
//!   Keeper never writes, are skipped with a note (Keeper refuses them unless
//!   `ignore_system_path_on_startup` is set).
//! - Nodes may come in any order (Keeper writes its hash table's list order): a node
//!   whose parent has not been seen yet waits until the end, where the waiting nodes
//!   are inserted parents first.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use keeperkit_model::acl::Perms;
use keeperkit_model::keeper::nuraft::ClusterConfig;
use keeperkit_model::{
    Acl, AclList, Corruption, CorruptionKind, EphemeralOwner, Id, SessionId, Stat,
};
use keeperkit_snapshot::clickhouse::{
    self as ch, ClickHouseSnapshotSink, Container, NodeRecord, ReadOptions, SessionRecord,
    SnapshotHeader,
};
use keeperkit_tree::DataTree;
use keeperkit_vfs::FileSystem;

use crate::StorageError;

/// The system node Keeper keeps (empty in snapshots, children regenerated at startup).
pub const KEEPER_SYSTEM_NODE: &str = "/keeper";

/// `OPEN_ACL_UNSAFE`: what Keeper's ACL id 0 grants.
pub fn open_acl() -> AclList {
    vec![Acl { perms: Perms(Perms::ALL.0), id: Id { scheme: "world".into(), id: "anyone".into() } }]
}

/// Whether an ACL list is the one Keeper stores as id 0.
pub fn is_open_acl(acl: &[Acl]) -> bool {
    acl.is_empty()
        || (acl.len() == 1
            && acl[0].perms.0 == Perms::ALL.0
            && acl[0].id.scheme == "world"
            && acl[0].id.id == "anyone")
}

/// A node whose parent had not been seen when it was read.
struct Waiting {
    path: String,
    data: Vec<u8>,
    acl: AclList,
    stat: Stat,
    seq: i32,
    owner: i64,
}

/// A [`ClickHouseSnapshotSink`] that builds a [`DataTree`] (module docs).
pub struct TreeSink {
    tree: DataTree,
    header: Option<SnapshotHeader>,
    acls: HashMap<u64, AclList>,
    waiting: Vec<Waiting>,
    /// The paths in `waiting`: a path repeated while it waits is refused at once, so
    /// that waiting costs what distinct nodes cost (a bomb repeating one record would
    /// otherwise queue it millions of times).
    waiting_paths: HashSet<String>,
    sessions: Vec<SessionRecord>,
    cluster_config: Option<ClusterConfig>,
    /// Sum of the stored numChildren of non-ephemeral nodes (`/keeper` excluded):
    /// compared with the real count once every node is in.
    stored_children: i64,
    notes: Vec<String>,
    saw_root: bool,
}

impl Default for TreeSink {
    fn default() -> Self {
        TreeSink::new()
    }
}

impl TreeSink {
    /// An empty sink.
    pub fn new() -> TreeSink {
        TreeSink {
            tree: DataTree::empty(),
            header: None,
            acls: HashMap::new(),
            waiting: Vec::new(),
            waiting_paths: HashSet::new(),
            sessions: Vec::new(),
            cluster_config: None,
            stored_children: 0,
            notes: Vec::new(),
            saw_root: false,
        }
    }

    fn insert(&mut self, w: Waiting) -> Result<(), String> {
        self.tree
            .insert_loaded_full(&w.path, Some(&w.data), &w.acl, &w.stat, w.seq, w.owner)
            .map_err(|e| format!("node {}: {e}", w.path))
    }

    /// Inserts the nodes that waited for their parents, registers the sessions and
    /// checks the children counters. `file` names the snapshot in errors.
    pub fn finish(mut self, file: &Path) -> Result<LoadedChSnapshot, StorageError> {
        let bad = |msg: String| {
            StorageError::Corrupt(Corruption::new(file, 0, CorruptionKind::bad_tree(msg)))
        };
        if !self.saw_root {
            return Err(bad("the snapshot has no \"/\" record (Keeper rejects it)".into()));
        }
        let mut waiting = std::mem::take(&mut self.waiting);
        // Component-wise order puts every parent before its children.
        waiting.sort_unstable_by(|a, b| a.path.split('/').cmp(b.path.split('/')));
        for w in waiting {
            let parent = keeperkit_model::path::parent(&w.path).unwrap_or("/");
            if self.tree.get(parent).is_none() {
                return Err(bad(format!(
                    "node {} has no parent {parent} in the snapshot (Keeper refuses orphans)",
                    w.path
                )));
            }
            self.insert(w).map_err(bad)?;
        }
        let real: i64 = i64::try_from(self.tree.node_count()).unwrap_or(i64::MAX) - 1;
        // The root's stored count includes /keeper, which is not in the tree.
        let real_with_system = real + 1;
        if self.stored_children != real_with_system {
            self.notes.push(format!(
                "the numChildren stored in the snapshot add up to {} but the nodes present \
                 give {real_with_system} (Keeper logs \"Children counter in stat.numChildren \
                 ... is different from actual children size\" and uses the real count)",
                self.stored_children
            ));
        }
        let header = self.header.ok_or_else(|| bad("no header".into()))?;
        for s in &self.sessions {
            let timeout = i32::try_from(s.timeout_ms).map_err(|_| {
                bad(format!("session {:#x} has a timeout of {} ms", s.id, s.timeout_ms))
            })?;
            self.tree.add_session(SessionId(s.id), timeout);
            for a in &s.auths {
                self.tree.add_session_auth(SessionId(s.id), a.clone());
            }
        }
        if let Some(z) = header.zxid {
            self.tree.set_last_processed_zxid(keeperkit_model::Zxid(z));
        } else {
            let idx = i64::try_from(header.meta.last_log_idx).unwrap_or(i64::MAX);
            self.tree.set_last_processed_zxid(keeperkit_model::Zxid(idx));
        }
        Ok(LoadedChSnapshot {
            tree: self.tree,
            header,
            sessions: self.sessions,
            cluster_config: self.cluster_config,
            notes: self.notes,
            file: file.to_path_buf(),
            container: None,
            computed_digest: None,
        })
    }
}

impl ClickHouseSnapshotSink for TreeSink {
    fn header(&mut self, header: &SnapshotHeader) -> Result<(), String> {
        self.header = Some(header.clone());
        Ok(())
    }

    fn acl(&mut self, id: u64, acls: AclList) -> Result<(), String> {
        self.acls.insert(id, acls);
        Ok(())
    }

    fn node(&mut self, n: &NodeRecord<'_>) -> Result<(), String> {
        let path = n.path;
        if path == KEEPER_SYSTEM_NODE {
            if !n.data.is_empty() || n.stat.mzxid != 0 {
                self.notes.push(
                    "the /keeper record is not empty; Keeper resets it (or refuses it in 2026 \
                     builds); it is not part of the loaded tree"
                        .into(),
                );
            }
            self.stored_children += i64::from(n.stat.num_children);
            return Ok(());
        }
        if path.starts_with("/keeper/") {
            self.notes.push(format!(
                "record {path} skipped: /keeper/* are system nodes Keeper regenerates (Keeper \
                 refuses such a record unless ignore_system_path_on_startup is set)"
            ));
            return Ok(());
        }
        let acl = match n.acl_id {
            0 | u64::MAX => open_acl(),
            id => self
                .acls
                .get(&id)
                .cloned()
                .ok_or_else(|| format!("node {path}: ACL with id {id} does not exist"))?,
        };
        let owner = match n.ttl_ms {
            Some(ttl) => EphemeralOwner::Ttl(ttl).encode(),
            None => n.stat.ephemeral_owner,
        };
        // Keeper ignores the stored seq_num of an ephemeral node (it has none).
        let seq = if matches!(EphemeralOwner::decode(owner), EphemeralOwner::Session(_)) {
            0
        } else {
            i32::try_from(n.seq_num).map_err(|_| {
                format!("node {path}: sequence counter {} does not fit the tree's i32", n.seq_num)
            })?
        };
        let k = &n.stat;
        let stat = Stat {
            czxid: k.czxid,
            mzxid: k.mzxid,
            ctime: k.ctime,
            mtime: k.mtime,
            version: k.version,
            cversion: k.cversion,
            aversion: k.aversion,
            ephemeral_owner: owner,
            data_length: 0,
            num_children: 0,
            pzxid: k.pzxid,
        };
        if k.ephemeral_owner == 0 || k.ephemeral_owner == i64::MIN {
            self.stored_children += i64::from(k.num_children);
        }
        let w = Waiting { path: path.to_owned(), data: n.data.to_vec(), acl, stat, seq, owner };
        if path == "/" {
            self.saw_root = true;
            return self.insert(w);
        }
        let parent = keeperkit_model::path::parent(path).unwrap_or("/");
        if self.saw_root && self.tree.get(parent).is_some() {
            self.insert(w)
        } else {
            if !self.waiting_paths.insert(w.path.clone()) {
                return Err(format!("node {path} appears twice in the snapshot"));
            }
            self.waiting.push(w);
            Ok(())
        }
    }

    fn session(&mut self, session: SessionRecord) -> Result<(), String> {
        self.sessions.push(session);
        Ok(())
    }

    fn cluster_config(&mut self, config: ClusterConfig) -> Result<(), String> {
        self.cluster_config = Some(config);
        Ok(())
    }
}

/// A snapshot loaded into a tree.
pub struct LoadedChSnapshot {
    /// The tree (no `/keeper`), sessions registered with their auth ids, last zxid = the
    /// header's.
    pub tree: DataTree,
    /// The header.
    pub header: SnapshotHeader,
    /// Sessions as stored (timeouts and auth ids).
    pub sessions: Vec<SessionRecord>,
    /// The trailer's cluster config.
    pub cluster_config: Option<ClusterConfig>,
    /// What the user should know (each a sentence).
    pub notes: Vec<String>,
    /// The file.
    pub file: PathBuf,
    /// The container, when read from a file.
    pub container: Option<Container>,
    /// The digest recomputed from the records (digest versions 4 and 5).
    pub computed_digest: Option<u64>,
}

impl std::fmt::Debug for LoadedChSnapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedChSnapshot")
            .field("file", &self.file)
            .field("header", &self.header)
            .field("nodes", &self.tree.node_count())
            .field("sessions", &self.sessions.len())
            .finish()
    }
}

impl LoadedChSnapshot {
    /// Whether the header's digest matches the records (`None` when there is none to
    /// compare).
    pub fn digest_matches(&self) -> Option<bool> {
        match (self.header.digest_version, self.header.digest, self.computed_digest) {
            (v, Some(stored), Some(computed)) if v != 0 => Some(stored == computed),
            _ => None,
        }
    }
}

/// Reads one snapshot file into a tree, recomputing the digest. A digest mismatch is
/// not an error here (see [`LoadedChSnapshot::digest_matches`]): Keeper only logs it.
pub fn load_snapshot(fs: &dyn FileSystem, path: &Path) -> Result<LoadedChSnapshot, StorageError> {
    let mut sink = TreeSink::new();
    let info = ch::read_snapshot(
        fs,
        path,
        &mut sink,
        ReadOptions { compute_digest: true, ..ReadOptions::default() },
    )?;
    let mut loaded = sink.finish(path)?;
    loaded.container = Some(info.container);
    loaded.computed_digest = info.counts.computed_digest;
    Ok(loaded)
}
