//! Writing a state as an Apache ZooKeeper 3.8 data directory.
//!
//! Layout (what ZooKeeper's `FileTxnSnapLog` expects under `dataDir`):
//!
//! ```text
//! DST/version-2/snapshot.<hex zxid>[.gz|.snappy]   the whole state (zxid = last processed)
//! DST/version-2/acceptedEpoch, currentEpoch        the zxid's epoch, only when it is > 0
//! ```
//!
//! No txn log is written: ZooKeeper starts from the newest valid snapshot and, with no
//! log after it, serves exactly that state. Every node keeps its stored stat
//! (stored cversion = the sequence counter, raw ephemeralOwner: sessions, containers,
//! TTL nodes), every live session its timeout, and the trailer carries the tree digest
//! ZooKeeper 3.6+ checks.
//!
//! Refused before anything is written ([`check`]): a path ZooKeeper would reject, a
//! value longer than `jute.maxbuffer` (ZooKeeper could load it but no client could read
//! it back), a zxid ZooKeeper cannot represent (negative, or a counter of `0xffffffff`,
//! after which the next txn would overflow into the epoch).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use keeperkit_model::{SessionId, Zxid};
use keeperkit_snapshot::zookeeper::{Compression, SnapshotDigest};
use keeperkit_snapshot::zookeeper_writer::{
    self as zkw, ZkNode, ZkSnapshotSource, ZkWriteOptions, ZkWrittenSnapshot, DIGEST_VERSION,
};
use keeperkit_snapshot::SnapshotError;
use keeperkit_tree::DataTree;
use keeperkit_vfs::{FileSystem, OpenMode};

use super::counted::{Counted, NodeCounter};
use crate::progress::{NoProgress, Progress};

use super::{ConvertOptions, ConvertReport, Mapping};
use crate::StorageError;

/// ZooKeeper's default `jute.maxbuffer` (0xfffff bytes): the largest packet a client
/// accepts, so the largest value a client can read back.
pub const JUTE_MAXBUFFER_DEFAULT: u64 = 0xFFFFF;

/// The directory ZooKeeper keeps its files in, under `dataDir`.
pub const VERSION_DIR: &str = "version-2";
/// The quorum peer's accepted epoch file (in [`VERSION_DIR`]).
pub const ACCEPTED_EPOCH_FILE: &str = "acceptedEpoch";
/// The quorum peer's current epoch file (in [`VERSION_DIR`]).
pub const CURRENT_EPOCH_FILE: &str = "currentEpoch";

/// A [`DataTree`] seen as a snapshot source: sessions by id, nodes in pre-order (siblings
/// by name), stored stats, and the trailer digest at the tree's last processed zxid
/// (the empty digest, zxid 0, for a tree at zxid 0, as ZooKeeper writes `snapshot.0`).
#[derive(Debug, Clone, Copy)]
pub struct TreeSource<'a>(pub &'a DataTree);

impl ZkSnapshotSource for TreeSource<'_> {
    fn sessions(&self) -> Vec<(SessionId, i32)> {
        self.0.sessions().into_iter().map(|s| (s.id, s.timeout_ms)).collect()
    }

    fn for_each_node(
        &self,
        f: &mut dyn FnMut(ZkNode<'_>) -> Result<(), SnapshotError>,
    ) -> Result<(), SnapshotError> {
        let mut result = Ok(());
        self.0.for_each_preorder(|path, node| {
            if result.is_ok() {
                result = f(ZkNode {
                    path,
                    data: node.data(),
                    acl: node.acl(),
                    stat: node.stored_stat(),
                });
            }
        });
        result
    }

    fn digest(&self) -> Option<SnapshotDigest> {
        let zxid = self.0.last_processed_zxid();
        Some(if zxid.0 == 0 {
            SnapshotDigest { zxid: Zxid(0), version: DIGEST_VERSION, digest: 0 }
        } else {
            SnapshotDigest { zxid, version: DIGEST_VERSION, digest: self.0.digest() as i64 }
        })
    }
}

/// Writes `tree` as `dir/snapshot.<hex last processed zxid>[suffix]` (atomically: a
/// temporary file, fsync, rename, directory fsync).
pub fn save_tree(
    fs: &dyn FileSystem,
    dir: &Path,
    tree: &DataTree,
    compression: Compression,
) -> Result<ZkWrittenSnapshot, StorageError> {
    save_tree_with_progress(fs, dir, tree, compression, &mut NoProgress)
}

/// [`save_tree`] reporting the nodes handed to the writer to `progress` (the writer
/// walks the tree twice: the ACL table, then the nodes).
pub fn save_tree_with_progress(
    fs: &dyn FileSystem,
    dir: &Path,
    tree: &DataTree,
    compression: Compression,
    progress: &mut dyn Progress,
) -> Result<ZkWrittenSnapshot, StorageError> {
    let counter = NodeCounter::new(progress, 2 * tree.node_count() as u64);
    Ok(zkw::write_snapshot(
        fs,
        dir,
        tree.last_processed_zxid(),
        &Counted { inner: &TreeSource(tree), counter: &counter },
        &ZkWriteOptions { compression },
    )?)
}

/// The compression asked for in `opts` (`None`/`""`/`"none"`, `"gz"`, `"snappy"`).
pub fn compression(opts: &ConvertOptions) -> Result<Compression, StorageError> {
    match opts.zookeeper_compression.as_deref().map(str::to_ascii_lowercase).as_deref() {
        None | Some("") | Some("none") => Ok(Compression::None),
        Some("gz") | Some("gzip") => Ok(Compression::Gzip),
        Some("snappy") => Ok(Compression::Snappy),
        Some(other) => Err(refused(format!(
            "unknown snapshot compression {other:?}: ZooKeeper reads gz, snappy or none"
        ))),
    }
}

fn refused(reason: String) -> StorageError {
    StorageError::Unreachable {
        what: "a ZooKeeper 3.8 data directory (nothing was written)".into(),
        reason,
    }
}

/// How many problems [`check`] lists before saying "and N more".
const PROBLEMS_LISTED_MAX: usize = 10;

/// Everything in `tree` that ZooKeeper 3.8 could not load or serve, as one error listing
/// the first problems (path, size and limit); `Ok` when the tree can be written, with
/// the mappings `--lossy` applies.
///
/// ZooKeeper stores one children counter per node, the sequence counter ("stored
/// cversion"), and shows clients `2 × counter − numChildren` as cversion. A tree from a
/// ClickHouse Keeper or native source keeps the client cversion and the counter apart;
/// a node where they do not follow ZooKeeper's relation cannot be written exactly: it is
/// refused, or with `lossy` written with its sequence counter (so sequential names
/// continue without a repeat) and reported with the cversion clients will see instead.
pub fn check(tree: &DataTree, opts: &ConvertOptions) -> Result<Vec<Mapping>, StorageError> {
    compression(opts)?;
    let mut problems: Vec<String> = Vec::new();
    let mut mappings: Vec<Mapping> = Vec::new();
    let zxid = tree.last_processed_zxid();
    if zxid.0 < 0 {
        problems.push(format!(
            "the last processed zxid {} is negative: ZooKeeper zxids are positive longs",
            zxid.0
        ));
    } else if zxid.counter() == u32::MAX {
        problems.push(format!(
            "the last processed zxid {zxid} has counter 0xffffffff: ZooKeeper's next txn \
             would overflow into the epoch (it forces a new election at this point)"
        ));
    }
    let max = opts.jute_maxbuffer.unwrap_or(JUTE_MAXBUFFER_DEFAULT);
    let mut count = 0usize;
    tree.for_each_preorder(|path, node| {
        let mut problem = None;
        if path != "/" {
            if let Err(why) = keeperkit_model::path::validate(path) {
                problem = Some(format!("path {path:?}: ZooKeeper rejects it ({why})"));
            }
        }
        let len = node.data().map_or(0, <[u8]>::len) as u64;
        if problem.is_none() && len > max {
            problem = Some(format!(
                "node {path:?} holds {len} bytes, more than jute.maxbuffer ({max} bytes): \
                 no ZooKeeper client could read it; raise the limit with \
                 --jute-maxbuffer BYTES and run ZooKeeper and its clients with \
                 -Djute.maxbuffer=BYTES"
            ));
        }
        let stat = node.stat();
        let derived = 2 * i64::from(node.seq()) - i64::from(stat.num_children);
        if problem.is_none() && derived != i64::from(stat.cversion) {
            let m = Mapping {
                what: path.to_owned(),
                change: format!(
                    "cversion {} read as {derived}: ZooKeeper derives it from the sequence \
                     counter {} and {} children",
                    stat.cversion,
                    node.seq(),
                    stat.num_children
                ),
            };
            if opts.lossy {
                mappings.push(m);
            } else {
                problem = Some(format!("node {path:?}: {} (pass --lossy to accept)", m.change));
            }
        }
        if let Some(p) = problem {
            count += 1;
            if problems.len() < PROBLEMS_LISTED_MAX {
                problems.push(p);
            }
        }
    });
    if problems.is_empty() {
        return Ok(mappings);
    }
    let listed = problems.len();
    let total = count + usize::from(zxid.0 < 0 || zxid.counter() == u32::MAX);
    let mut reason = problems.join("; ");
    if total > listed {
        reason.push_str(&format!("; and {} more", total - listed));
    }
    Err(refused(reason))
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StorageError + '_ {
    move |source| StorageError::Io { path: path.to_path_buf(), source }
}

fn write_small_file(fs: &dyn FileSystem, path: &Path, bytes: &[u8]) -> Result<(), StorageError> {
    let f = fs.open(path, OpenMode::CreateNew).map_err(io(path))?;
    f.write_all_at(bytes, 0).map_err(io(path))?;
    f.sync_all().map_err(io(path))
}

/// Writes `tree` into the (empty, temporary) directory `dir` as a ZooKeeper data
/// directory (see the module docs). Every file and directory written is fsynced.
pub fn write(
    fs: &Arc<dyn FileSystem>,
    tree: &DataTree,
    dir: &Path,
    opts: &ConvertOptions,
    progress: &mut dyn Progress,
) -> Result<ConvertReport, StorageError> {
    let mut mappings = check(tree, opts)?;
    let compression = compression(opts)?;
    let v2 = dir.join(VERSION_DIR);
    fs.create_dir_all(&v2).map_err(io(&v2))?;
    let written = save_tree_with_progress(&**fs, &v2, tree, compression, progress)?;
    let name = written.path.file_name().map(PathBuf::from).unwrap_or_default();
    let mut files = vec![Path::new(VERSION_DIR).join(name)];
    let epoch = tree.last_processed_zxid().epoch();
    if epoch > 0 {
        let text = epoch.to_string();
        for f in [ACCEPTED_EPOCH_FILE, CURRENT_EPOCH_FILE] {
            write_small_file(&**fs, &v2.join(f), text.as_bytes())?;
            files.push(Path::new(VERSION_DIR).join(f));
        }
    }
    fs.sync_dir(&v2).map_err(io(&v2))?;

    let mut ttl = 0u64;
    tree.for_each_preorder(|_, n| {
        if matches!(n.kind(), keeperkit_model::NodeKind::Ttl) {
            ttl += 1;
        }
    });
    if ttl > 0 {
        mappings.push(Mapping {
            what: format!("{ttl} TTL nodes"),
            change: "kept as TTL nodes; ZooKeeper must run with \
                     zookeeper.extendedTypesEnabled=true, or it takes them for ephemerals \
                     of a dead session and deletes them at startup"
                .into(),
        });
    }
    Ok(ConvertReport {
        dst: dir.to_path_buf(),
        files,
        nodes: written.node_count,
        sessions: written.session_count,
        mappings,
    })
}
