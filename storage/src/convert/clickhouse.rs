//! Writing a state as a ClickHouse Keeper coordination directory.
//!
//! Layout (Keeper's `storage_path`, `<path>/coordination` inside clickhouse-server):
//!
//! ```text
//! DST/snapshots/snapshot_<N>.bin.zstd   the whole state (V6 by default), N = last log index
//! DST/logs/                             empty: Keeper starts a changelog at N + 1
//! ```
//!
//! The snapshot is what Keeper itself writes: the nodes (root first, then `/keeper`,
//! empty, with `/`'s numChildren counting it; Keeper regenerates `/keeper`'s children
//! at startup), ACL map with ids from 1 (id 0 = `world:anyone` with every
//! permission), the live sessions with their timeouts and auth ids, a session id
//! counter above every session id, and digest version 4 (5 with V8) computed from the
//! records. Stats are the ones clients see (Keeper stores the client cversion) and
//! the per-parent sequence counter is kept, so sequential names continue where the
//! source left off.
//!
//! What a Keeper snapshot cannot hold is refused before anything is written, with the
//! list of nodes ([`check`]), unless `--lossy`, which applies this mapping and reports
//! each node:
//!
//! | source | Keeper V6–V7 | Keeper V8 |
//! |---|---|---|
//! | null value | empty value | empty value |
//! | container node | persistent node | persistent node |
//! | TTL node | persistent node | TTL node (kept), unless it has children or a sequence counter: persistent |
//! | a node at `/keeper` or under it | dropped (Keeper's system subtree) | dropped |
//!
//! The position written: the source's last log index and term when it has them
//! (ClickHouse, native), else what `clickhouse keeper-converter` writes for a ZooKeeper
//! source: index = the last zxid, term 1, so that Keeper's log continues after it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use keeperkit_model::keeper::nuraft::{ClusterConfig, SnapshotMeta};
use keeperkit_model::keeper::{digest_version, KeeperStat};
use keeperkit_model::{AclList, EphemeralOwner, NodeKind};
use keeperkit_snapshot::clickhouse::body::{AclVisitor, NodeVisitor, SessionVisitor};
use keeperkit_snapshot::clickhouse::{
    self as ch, ClickHouseSnapshotSource, Container, NodeRecord, SessionRecord, SnapshotHeader,
    WriteOptions,
};
use keeperkit_snapshot::SnapshotError;
use keeperkit_tree::DataTree;
use keeperkit_vfs::FileSystem;

use super::counted::{Counted, NodeCounter};
use super::{ConvertOptions, ConvertReport, Mapping};
use crate::clickhouse::snapshot::{is_open_acl, KEEPER_SYSTEM_NODE};
use crate::progress::Progress;
use crate::StorageError;

/// Keeper's log directory under its storage path.
pub const LOGS_DIR: &str = "logs";
/// Keeper's snapshot directory under its storage path.
pub const SNAPSHOTS_DIR: &str = "snapshots";

/// Where the state sits in a Raft log.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChPosition {
    /// Last log index the state contains.
    pub last_log_idx: u64,
    /// Its term.
    pub last_log_term: u64,
    /// The cluster config to store, when known.
    pub cluster_config: Option<ClusterConfig>,
}

impl ChPosition {
    /// What `clickhouse keeper-converter` writes for a ZooKeeper source: index = the
    /// last zxid, term 1.
    pub fn from_zookeeper(tree: &DataTree) -> ChPosition {
        ChPosition {
            last_log_idx: u64::try_from(tree.last_processed_zxid().0).unwrap_or(0),
            last_log_term: 1,
            ..ChPosition::default()
        }
    }
}

fn version_of(opts: &ConvertOptions) -> Result<u8, StorageError> {
    let v = opts.clickhouse_version.unwrap_or(ch::VERSION_DEFAULT);
    if !(6..=ch::VERSION_MAX).contains(&v) {
        return Err(StorageError::Unreachable {
            what: format!("a ClickHouse Keeper snapshot V{v}"),
            reason: "keeperkit writes V6 (the default, read by every Keeper since 2024), V7 \
                     and V8 (needed for TTL nodes)"
                .into(),
        });
    }
    Ok(v)
}

/// How many nodes a refusal names before saying "and N more".
const PROBLEMS_LISTED_MAX: usize = 20;

/// What a node becomes in the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    Keep,
    Drop,
}

/// Lists what version `opts.clickhouse_version` cannot hold. Without `lossy` any such
/// node is an error naming them all (before anything is written); with it, the list is
/// the mapping applied.
pub fn check(tree: &DataTree, opts: &ConvertOptions) -> Result<Vec<Mapping>, StorageError> {
    let version = version_of(opts)?;
    let mut problems: Vec<Mapping> = Vec::new();
    tree.for_each_preorder(|path, node| {
        if path == KEEPER_SYSTEM_NODE || path.starts_with("/keeper/") {
            problems.push(Mapping {
                what: path.to_owned(),
                change: "dropped: /keeper is ClickHouse Keeper's system subtree".into(),
            });
            return;
        }
        if node.data().is_none() {
            problems.push(Mapping {
                what: path.to_owned(),
                change: "null value stored as an empty value (Keeper has no null)".into(),
            });
        }
        match node.kind() {
            NodeKind::Container => problems.push(Mapping {
                what: path.to_owned(),
                change: format!(
                    "container stored as a persistent node (snapshot V{version} has no containers)"
                ),
            }),
            NodeKind::Ttl if version >= 8 && (node.num_children() > 0 || node.seq() != 0) => {
                problems.push(Mapping {
                    what: path.to_owned(),
                    change: "TTL node stored as a persistent node (a Keeper TTL node keeps its \
                             TTL where the sequence counter goes: it can have no children and \
                             no sequence counter)"
                        .into(),
                })
            }
            NodeKind::Ttl if version < 8 => problems.push(Mapping {
                what: path.to_owned(),
                change: format!(
                    "TTL node stored as a persistent node (TTL needs --clickhouse-version 8, \
                     not V{version})"
                ),
            }),
            _ => {}
        }
    });
    if !problems.is_empty() && !opts.lossy {
        let mut list: Vec<String> = problems
            .iter()
            .take(PROBLEMS_LISTED_MAX)
            .map(|m| format!("{} ({})", m.what, m.change))
            .collect();
        if problems.len() > PROBLEMS_LISTED_MAX {
            list.push(format!("and {} more", problems.len() - PROBLEMS_LISTED_MAX));
        }
        let ttl_hint = problems.iter().any(|m| m.change.contains("needs --clickhouse-version 8"));
        return Err(StorageError::Unreachable {
            what: format!(
                "a ClickHouse Keeper V{version} coordination directory (nothing was written)"
            ),
            reason: format!(
                "{} node(s) cannot be stored exactly: {}; pass --lossy to apply that mapping \
                 (the JSON report lists every node){}",
                problems.len(),
                list.join("; "),
                if ttl_hint { ", or --clickhouse-version 8 to keep TTL nodes" } else { "" }
            ),
        });
    }
    Ok(problems)
}

/// A [`DataTree`] as a Keeper snapshot source (module docs).
pub struct TreeChSource<'a> {
    tree: &'a DataTree,
    header: SnapshotHeader,
    version: u8,
    /// Tree ACL id → map id.
    acl_ids: Vec<u64>,
    acl_lists: Vec<(u64, AclList)>,
    sessions: Vec<SessionRecord>,
    node_count: u64,
    cluster_config: Option<ClusterConfig>,
}

impl<'a> TreeChSource<'a> {
    /// Prepares the source; `version` decides TTL handling (only V8 keeps them).
    ///
    /// ACL map ids are given by the lists' order (1, 2, ... for the sorted lists; 0 for
    /// "open"), so that they do not depend on the history of the tree: a snapshot read
    /// back and written again gets the same ids. No pass over the nodes is made here.
    pub fn new(tree: &'a DataTree, pos: &ChPosition, version: u8) -> TreeChSource<'a> {
        let table = tree.acl_table();
        let mut lists: Vec<&AclList> =
            table.iter().map(|&(_, l)| l).filter(|l| !is_open_acl(l)).collect();
        lists.sort_unstable();
        lists.dedup();
        let map_len = table.last().map_or(0, |&(id, _)| id as usize + 1);
        let mut acl_ids = vec![0u64; map_len];
        for &(id, l) in &table {
            if !is_open_acl(l) {
                let rank = lists.binary_search(&l).map_or(0, |r| r as u64 + 1);
                acl_ids[id as usize] = rank;
            }
        }
        let acl_lists: Vec<(u64, AclList)> =
            lists.iter().enumerate().map(|(i, l)| (i as u64 + 1, (*l).clone())).collect();
        // Every node but Keeper's system subtree, plus the /keeper record.
        let dropped = subtree_size(tree, KEEPER_SYSTEM_NODE);
        let node_count = (tree.node_count() - dropped) as u64 + 1;
        let sessions: Vec<SessionRecord> = tree
            .sessions()
            .into_iter()
            .map(|s| SessionRecord {
                id: s.id.0,
                timeout_ms: i64::from(s.timeout_ms),
                auths: tree.session_auths(s.id),
            })
            .collect();
        let max_session = sessions.iter().map(|s| s.id).max().unwrap_or(0);
        // Keeper hands out ids from the counter: it must exceed every id in use, and a
        // Keeper source keeps its own (ids of closed sessions are never reused).
        let counter = tree.session_id_counter().max(max_session.saturating_add(1)).max(1);
        let zxid = tree.last_processed_zxid().0;
        let mut meta = SnapshotMeta::new(pos.last_log_idx, pos.last_log_term);
        if let Some(c) = &pos.cluster_config {
            meta.config = c.clone();
        }
        let header = SnapshotHeader {
            version,
            meta,
            zxid: Some(zxid),
            digest_version: if version >= 8 { digest_version::V5 } else { digest_version::V4 },
            digest: Some(0),
            session_id_counter: counter,
        };
        TreeChSource {
            tree,
            header,
            version,
            acl_ids,
            acl_lists,
            sessions,
            node_count,
            cluster_config: pos.cluster_config.clone(),
        }
    }
}

/// Whether a TTL node is stored as one: V8, no children, no sequence counter.
fn ttl_storable(version: u8, node: &keeperkit_tree::NodeRef<'_>) -> bool {
    version >= 8 && node.num_children() == 0 && node.seq() == 0
}

/// Number of nodes at `path` and below (0 when absent).
fn subtree_size(tree: &DataTree, path: &str) -> usize {
    let mut stack = vec![path.to_owned()];
    let mut n = 0;
    while let Some(p) = stack.pop() {
        if tree.get(&p).is_none() {
            continue;
        }
        n += 1;
        for c in tree.children(&p).unwrap_or_default() {
            stack.push(format!("{p}/{c}"));
        }
    }
    n
}

fn node_fate(path: &str) -> Fate {
    if path == KEEPER_SYSTEM_NODE || path.starts_with("/keeper/") {
        Fate::Drop
    } else {
        Fate::Keep
    }
}

impl ClickHouseSnapshotSource for TreeChSource<'_> {
    fn header(&self) -> SnapshotHeader {
        self.header.clone()
    }

    fn acl_count(&self) -> u64 {
        self.acl_lists.len() as u64
    }

    fn visit_acls(&self, f: &mut AclVisitor<'_>) -> Result<(), String> {
        self.acl_lists.iter().try_for_each(|(id, l)| f(*id, l))
    }

    fn node_count(&self) -> u64 {
        self.node_count
    }

    fn visit_nodes(&self, f: &mut NodeVisitor<'_>) -> Result<(), String> {
        let mut result = Ok(());
        let mut wrote_system = false;
        self.tree.for_each_preorder(|path, node| {
            if result.is_err() || node_fate(path) == Fate::Drop {
                return;
            }
            let s = node.stat();
            let (owner, ttl_ms) = match node.owner() {
                EphemeralOwner::Session(id) => (id, None),
                EphemeralOwner::Ttl(ttl) if ttl_storable(self.version, &node) => (0, Some(ttl)),
                _ => (0, None),
            };
            let ephemeral = owner != 0;
            let mut num_children = if ephemeral { 0 } else { s.num_children };
            if path == "/" {
                // Keeper's /keeper counts among the root's children.
                num_children = num_children.saturating_add(1);
            }
            let record = NodeRecord {
                path: if path.is_empty() { "/" } else { path },
                data: node.data().unwrap_or(b""),
                acl_id: self.acl_ids.get(node.acl_id() as usize).copied().unwrap_or(0),
                stat: KeeperStat {
                    czxid: s.czxid,
                    mzxid: s.mzxid,
                    ctime: s.ctime,
                    mtime: s.mtime,
                    version: s.version,
                    cversion: s.cversion,
                    aversion: s.aversion,
                    ephemeral_owner: owner,
                    num_children,
                    pzxid: s.pzxid,
                },
                seq_num: if ephemeral || ttl_ms.is_some() { 0 } else { i64::from(node.seq()) },
                ttl_ms,
            };
            result = f(&record);
            if result.is_ok() && path == "/" && !wrote_system {
                wrote_system = true;
                result = f(&NodeRecord {
                    path: KEEPER_SYSTEM_NODE,
                    data: b"",
                    acl_id: 0,
                    stat: KeeperStat::default(),
                    seq_num: 0,
                    ttl_ms: None,
                });
            }
        });
        result
    }

    fn session_count(&self) -> u64 {
        self.sessions.len() as u64
    }

    fn visit_sessions(&self, f: &mut SessionVisitor<'_>) -> Result<(), String> {
        self.sessions.iter().try_for_each(f)
    }

    fn cluster_config(&self) -> Option<ClusterConfig> {
        self.cluster_config.clone()
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StorageError + '_ {
    move |source| StorageError::Io { path: path.to_path_buf(), source }
}

/// Writes `tree` into the (empty, temporary) directory `dir` as a Keeper coordination
/// directory, after [`check`] (whose mappings are reported). Every file and directory
/// written is fsynced.
pub fn write(
    fs: &Arc<dyn FileSystem>,
    tree: &DataTree,
    pos: &ChPosition,
    dir: &Path,
    opts: &ConvertOptions,
    progress: &mut dyn Progress,
) -> Result<ConvertReport, StorageError> {
    let mappings = check(tree, opts)?;
    write_checked(fs, tree, pos, dir, opts, mappings, progress)
}

/// [`write`] for a caller that already ran [`check`] with the same `opts` (to refuse
/// before creating anything) and passes its mappings on.
pub fn write_checked(
    fs: &Arc<dyn FileSystem>,
    tree: &DataTree,
    pos: &ChPosition,
    dir: &Path,
    opts: &ConvertOptions,
    mappings: Vec<Mapping>,
    progress: &mut dyn Progress,
) -> Result<ConvertReport, StorageError> {
    let version = version_of(opts)?;
    let logs = dir.join(LOGS_DIR);
    fs.create_dir_all(&logs).map_err(io(&logs))?;
    fs.sync_dir(&logs).map_err(io(&logs))?;
    let snaps = dir.join(SNAPSHOTS_DIR);
    fs.create_dir_all(&snaps).map_err(io(&snaps))?;
    let source = TreeChSource::new(tree, pos, version);
    let digest = source.header.digest_version;
    let counter = NodeCounter::new(progress, source.node_count);
    let written = ch::write_snapshot(
        &**fs,
        &snaps,
        &Counted { inner: &source, counter: &counter },
        WriteOptions {
            version,
            container: Container::Zstd,
            compute_digest: Some(digest),
            sync: true,
        },
    )
    .map_err(|e| match e {
        SnapshotError::Io { .. } | SnapshotError::Corrupt(_) => StorageError::from(e),
        refusal => StorageError::Unreachable {
            what: format!("a ClickHouse Keeper V{version} snapshot"),
            reason: refusal.to_string(),
        },
    })?;
    fs.sync_dir(&snaps).map_err(io(&snaps))?;
    let name = written.file_name().map(PathBuf::from).unwrap_or_default();
    Ok(ConvertReport {
        dst: dir.to_path_buf(),
        files: vec![Path::new(SNAPSHOTS_DIR).join(name), PathBuf::from(LOGS_DIR)],
        // /keeper is Keeper's own node: not counted.
        nodes: source.node_count - 1,
        sessions: source.sessions.len() as u64,
        mappings,
    })
}
