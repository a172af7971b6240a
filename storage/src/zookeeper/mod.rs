//! Recovering a ZooKeeper data directory the way ZooKeeper 3.8 does
//! (`FileTxnSnapLog.restore`), offline.
//!
//! 1. Locate the snapshot directory (`dataDir[/version-2]`) and the log directory
//!    (`dataLogDir[/version-2]`, by default the same).
//! 2. Try the snapshots newest first (at most 100, like `FileSnap.findNValidSnapshots`):
//!    the quick validity test, then a full parse with both Adler-32 seals. A damaged
//!    one is skipped and reported; the next older one is tried.
//! 3. Replay the logs from the snapshot's zxid + 1: the newest log that starts at or
//!    before that zxid plus every newer one, oldest first, each until its end (zero
//!    padding, physical EOF, or a torn record). Records not newer than the snapshot are
//!    skipped until the first one that is applied.
//! 4. Check the digests ZooKeeper 3.6+ stores: the snapshot's trailer digest when the
//!    replay reaches its zxid, then every txn's digest after it. A mismatch exactly at
//!    the snapshot's digest zxid that the following txn digests contradict is the
//!    known benign race of fuzzy snapshots and is reported as such.
//! 5. Drop ephemeral nodes whose session is not in the session map (`ZKDatabase`
//!    after restore), so the result is what a restarted server serves.
//!
//! Unlike ZooKeeper, replay never crosses a gap in the zxid sequence: it stops before
//! the gap and reports it, so a deleted log is never a silent hole.

pub(crate) mod check;
pub mod dir;
pub mod inspect;
pub(crate) mod log;
pub mod scan;

use std::path::{Path, PathBuf};

use keeperkit_model::{AclList, SessionId, Txn, Zxid};
use keeperkit_snapshot::zookeeper::{self as zksnap, Compression, SnapshotDigest, SnapshotNode};
use keeperkit_tree::{BulkLoader, DataTree, TxnResult};
use keeperkit_vfs::FileSystem;
use keeperkit_wal::zookeeper::{self as zklog, LogEnd, LogReader};

use crate::error::StorageError;

/// How many snapshots ZooKeeper considers before giving up (`findNValidSnapshots(100)`).
pub const SNAPSHOTS_TRIED_MAX: usize = 100;

/// Where a ZooKeeper data directory's files are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZkLayout {
    /// Directory holding `snapshot.*` files.
    pub snap_dir: PathBuf,
    /// Directory holding `log.*` files.
    pub log_dir: PathBuf,
    /// Snapshots, oldest first: (name zxid, compression, path).
    pub snapshots: Vec<(Zxid, Compression, PathBuf)>,
    /// Logs, oldest first: (name zxid, path).
    pub logs: Vec<(Zxid, PathBuf)>,
    /// `acceptedEpoch` file contents (quorum mode), if present.
    pub accepted_epoch: Option<String>,
    /// `currentEpoch` file contents (quorum mode), if present.
    pub current_epoch: Option<String>,
    /// What locating found wrong: files with extra name parts, directories named like
    /// data files. Such entries are not used.
    pub findings: Vec<crate::findings::Finding>,
}

/// Whether `name` is exactly a data file name: `snapshot.<hex>[.gz|.snappy]` or
/// `log.<hex>`, with no other part.
fn exact_name(name: &str) -> bool {
    let hex = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_hexdigit());
    match name.split('.').collect::<Vec<_>>().as_slice() {
        ["log", z] | ["snapshot", z] => hex(z),
        ["snapshot", z, "gz" | "snappy"] => hex(z),
        _ => false,
    }
}

/// Drops listed files whose names have extra parts (a stray `snapshot.600.bak` would
/// otherwise be taken for the snapshot of zxid 0x600, as ZooKeeper takes it) and
/// reports them, with directories named like data files.
fn sift<T>(
    fs: &dyn FileSystem,
    dir: &Path,
    files: Vec<T>,
    path_of: impl Fn(&T) -> &Path,
    findings: &mut Vec<crate::findings::Finding>,
) -> Vec<T> {
    use crate::findings::{Code, Finding, Severity};
    let mut kept = Vec::new();
    for f in files {
        let p = path_of(&f);
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        if exact_name(name) {
            kept.push(f);
        } else {
            findings.push(
                Finding::new(
                    Severity::Error,
                    Code::BadName,
                    format!(
                        "{name} has parts after its zxid: a stray copy, not used here; \
                         ZooKeeper takes it for a data file of that zxid (a stray snapshot \
                         becomes the newest one and the state starts from it): move it out of \
                         the directory"
                    ),
                )
                .file(p),
            );
        }
    }
    if let Ok(entries) = fs.read_dir(dir) {
        for e in entries.iter().filter(|e| e.is_dir) {
            let data_like = keeperkit_wal::zookeeper::parse_log_name(&e.name).is_some()
                || zksnap::parse_snapshot_name(&e.name).is_some();
            let p = dir.join(&e.name);
            if data_like && !findings.iter().any(|f| f.file.as_deref() == Some(p.as_path())) {
                findings.push(
                    Finding::new(
                        Severity::Error,
                        Code::WrongKind,
                        format!(
                            "{} is a directory named like a data file: ZooKeeper fails on it; \
                             move it out of the directory",
                            e.name
                        ),
                    )
                    .file(p),
                );
            }
        }
    }
    kept
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> StorageError + '_ {
    move |source| StorageError::Io { path: path.to_path_buf(), source }
}

/// Resolves `dir` the way ZooKeeper resolves `dataDir`: the files live in
/// `dir/version-2`, or directly in `dir` when it has no `version-2` (or is it).
fn resolve_version_dir(fs: &dyn FileSystem, dir: &Path) -> Result<PathBuf, StorageError> {
    let md = fs.metadata(dir).map_err(io_err(dir))?;
    if !md.is_dir {
        return Err(StorageError::NotADataDir {
            path: dir.to_path_buf(),
            what: "ZooKeeper data directory",
            reason: "it is a file".into(),
        });
    }
    crate::dialect::check_subdirs(fs, dir, &["version-2"])?;
    let v2 = dir.join("version-2");
    if fs.metadata(&v2).map(|m| m.is_dir).unwrap_or(false) {
        return Ok(v2);
    }
    if let Ok(data) = fs.metadata(&dir.join("data")) {
        if data.is_dir && fs.exists(&dir.join("data").join("version-2")) {
            return Ok(dir.join("data").join("version-2"));
        }
    }
    Ok(dir.to_path_buf())
}

fn read_small_text(fs: &dyn FileSystem, path: &Path) -> Option<String> {
    let md = fs.metadata(path).ok()?;
    if md.len > 64 {
        return None;
    }
    fs.read_all(path).ok().map(|b| String::from_utf8_lossy(&b).trim().to_string())
}

impl ZkLayout {
    /// Locates the files of a ZooKeeper data directory. `data_dir` is `dataDir` (or its
    /// `version-2`, or a directory holding the files directly); `log_dir` is
    /// `dataLogDir` when it is separate.
    pub fn locate(
        fs: &dyn FileSystem,
        data_dir: &Path,
        log_dir: Option<&Path>,
    ) -> Result<ZkLayout, StorageError> {
        let snap_dir = resolve_version_dir(fs, data_dir)?;
        let log_dir_given = log_dir;
        let log_dir = match log_dir {
            Some(d) => resolve_version_dir(fs, d)?,
            None => snap_dir.clone(),
        };
        let mut findings = Vec::new();
        let snapshots =
            sift(fs, &snap_dir, zksnap::list_snapshots(fs, &snap_dir)?, |s| &s.2, &mut findings);
        let logs = sift(fs, &log_dir, zklog::list_logs(fs, &log_dir)?, |l| &l.1, &mut findings);
        if let (Some(given), true) = (log_dir_given, logs.is_empty()) {
            return Err(StorageError::NotADataDir {
                path: given.to_path_buf(),
                what: "ZooKeeper log directory (dataLogDir)",
                reason: "no log.* files found".into(),
            });
        }
        if snapshots.is_empty() && logs.is_empty() {
            return Err(StorageError::NotADataDir {
                path: data_dir.to_path_buf(),
                what: "ZooKeeper data directory",
                reason: "no snapshot.* or log.* files found".into(),
            });
        }
        Ok(ZkLayout {
            accepted_epoch: read_small_text(fs, &snap_dir.join("acceptedEpoch")),
            current_epoch: read_small_text(fs, &snap_dir.join("currentEpoch")),
            snap_dir,
            log_dir,
            snapshots,
            logs,
            findings,
        })
    }
}

/// What to recover.
#[derive(Debug, Clone, Default)]
pub struct RecoverOptions {
    /// Stop after the last txn with zxid ≤ this (point-in-time recovery).
    pub at: Option<Zxid>,
    /// Start from this snapshot file instead of choosing one.
    pub snapshot: Option<PathBuf>,
    /// Keep ephemeral nodes of sessions that are not in the session map (ZooKeeper
    /// drops them at startup; this keeps the raw replayed state).
    pub keep_orphan_ephemerals: bool,
    /// When a log needed for replay is damaged (a checksum mismatch, an impossible
    /// length), stop before the damage and return the state up to the last good txn,
    /// with the damage in [`RecoveryReport::damage`], instead of failing. ZooKeeper
    /// refuses to start in that case.
    pub stop_at_damage: bool,
}

/// One snapshot that was tried and not used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedSnapshot {
    /// The file.
    pub path: PathBuf,
    /// Why it was not used.
    pub reason: String,
    /// Whether it was skipped because it is damaged (as opposed to: newer than `--at` /
    /// `--at-index`, or incomplete with a ClickHouse `tmp_` marker).
    pub damaged: bool,
}

/// How one log file was read during replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogReplay {
    /// The file.
    pub path: PathBuf,
    /// Records read from it.
    pub records: u64,
    /// Records applied (not skipped as already in the snapshot, not past `--at`).
    pub applied: u64,
    /// First and last zxid read.
    pub zxids: Option<(Zxid, Zxid)>,
    /// How the file ended (`None` when replay stopped inside it).
    pub end: Option<LogEnd>,
}

/// A hole in the zxid sequence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gap {
    /// Last zxid before the hole (the snapshot's zxid if nothing was replayed yet).
    pub after: Zxid,
    /// First zxid after the hole.
    pub next: Zxid,
    /// File holding `next`.
    pub file: PathBuf,
}

/// A digest comparison that failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DigestMismatch {
    /// Zxid after which the digests were compared.
    pub zxid: Zxid,
    /// Digest stored in the file.
    pub stored: u64,
    /// Digest of the replayed tree.
    pub computed: u64,
    /// Where the stored digest came from (a snapshot or a log file).
    pub file: PathBuf,
    /// The benign race of fuzzy snapshots (spec: a mismatch exactly at the snapshot's
    /// digest zxid that later txn digests show to be harmless).
    pub benign: bool,
}

/// Everything recovery did.
#[derive(Debug, Clone, Default)]
pub struct RecoveryReport {
    /// The snapshot the state was built from.
    pub snapshot: Option<PathBuf>,
    /// Its name zxid.
    pub snapshot_zxid: Zxid,
    /// Its trailer digest, if any.
    pub snapshot_digest: Option<SnapshotDigest>,
    /// Snapshots tried and not used, newest first.
    pub skipped_snapshots: Vec<SkippedSnapshot>,
    /// Logs read, oldest first.
    pub logs: Vec<LogReplay>,
    /// Txns applied on top of the snapshot.
    pub txns_applied: u64,
    /// Zxid of the last txn applied (the snapshot's zxid if none).
    pub last_zxid: Zxid,
    /// The gap replay stopped at, if any.
    pub gap: Option<Gap>,
    /// Number of digests compared.
    pub digests_checked: u64,
    /// Digest comparisons that failed.
    pub digest_mismatches: Vec<DigestMismatch>,
    /// Ephemeral nodes dropped because their session is not live.
    pub orphan_ephemerals_removed: Vec<String>,
    /// Whether replay stopped because of `--at`.
    pub stopped_at: Option<Zxid>,
    /// The damage replay stopped at (only with [`RecoverOptions::stop_at_damage`]).
    pub damage: Option<keeperkit_model::Corruption>,
}

impl RecoveryReport {
    /// Digest mismatches that are not the benign race.
    pub fn real_digest_mismatches(&self) -> impl Iterator<Item = &DigestMismatch> {
        self.digest_mismatches.iter().filter(|m| !m.benign)
    }
}

/// A recovered state.
#[derive(Debug, Clone)]
pub struct Recovered {
    /// The tree (with sessions).
    pub tree: DataTree,
    /// What recovery did.
    pub report: RecoveryReport,
}

pub use crate::progress::{NoProgress, Progress};

/// Loads snapshot records into a tree, resolving ACL ids through the snapshot's map.
struct TreeSink {
    tree: BulkLoader,
    acls: std::collections::HashMap<i64, AclList>,
    max_zxid: i64,
}

impl zksnap::SnapshotSink for TreeSink {
    fn session(&mut self, id: SessionId, timeout_ms: i32) {
        self.tree.add_session(id, timeout_ms);
    }

    fn acl_list(&mut self, id: i64, acl: AclList) {
        self.acls.insert(id, acl);
    }

    fn node(&mut self, node: SnapshotNode) -> Result<(), String> {
        let open;
        let acl: &[keeperkit_model::Acl] = if node.acl_id == -1 {
            open = keeperkit_model::Acl::open_unsafe();
            &open
        } else {
            match self.acls.get(&node.acl_id) {
                Some(a) => a,
                None => {
                    return Err(format!(
                        "node {:?} refers to ACL id {} which the ACL map does not hold",
                        node.path, node.acl_id
                    ))
                }
            }
        };
        self.max_zxid = self.max_zxid.max(node.stat.czxid).max(node.stat.mzxid);
        self.tree
            .insert_loaded(&node.path, node.data.as_deref(), acl, node.stat)
            .map_err(|e| e.to_string())
    }
}

/// A parsed snapshot as a tree.
#[derive(Debug, Clone)]
pub struct LoadedSnapshot {
    /// The tree and its sessions.
    pub tree: DataTree,
    /// File-level facts (`None` for the implicit initial tree of a directory without
    /// snapshots).
    pub info: Option<zksnap::SnapshotInfo>,
    /// Name zxid.
    pub zxid: Zxid,
    /// Highest czxid/mzxid found in the nodes (what SnapshotFormatter calls "Last
    /// zxid" together with the name).
    pub max_node_zxid: Zxid,
}

/// Loads one snapshot file into a tree (no log replay).
pub fn load_snapshot(fs: &dyn FileSystem, path: &Path) -> Result<LoadedSnapshot, StorageError> {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    let Some((zxid, _)) = zksnap::parse_snapshot_name(name) else {
        return Err(StorageError::NotADataDir {
            path: path.to_path_buf(),
            what: "ZooKeeper snapshot",
            reason: "the name is not snapshot.<hex zxid>[.gz|.snappy]".into(),
        });
    };
    let mut sink = TreeSink {
        tree: BulkLoader::new(DataTree::empty()),
        acls: Default::default(),
        max_zxid: 0,
    };
    let info = zksnap::read_snapshot(fs, path, &mut sink)?;
    let mut tree = sink.tree.finish();
    if tree.get("/").is_none() {
        return Err(StorageError::Corrupt(keeperkit_model::Corruption::new(
            path,
            0,
            keeperkit_model::CorruptionKind::bad_tree("snapshot holds no root node"),
        )));
    }
    tree.set_last_processed_zxid(zxid);
    // DataTree.deserialize ends with setupQuota: quota stats recounted from the tree.
    tree.setup_quota();
    Ok(LoadedSnapshot { tree, info: Some(info), zxid, max_node_zxid: Zxid(sink.max_zxid) })
}

/// Whether `next` directly follows `prev` in ZooKeeper's zxid sequence: the next
/// counter in the same epoch, or the first txn of a later epoch.
pub fn is_successor(prev: Zxid, next: Zxid) -> bool {
    next.0 == prev.0.wrapping_add(1) || (next.epoch() > prev.epoch() && next.counter() <= 1)
}

/// The logs ZooKeeper reads to replay from `snap_zxid` (`FileTxnIterator.init`): the
/// newest log starting at or before `snap_zxid + 1`, and every newer one.
pub fn logs_to_replay(logs: &[(Zxid, PathBuf)], snap_zxid: Zxid) -> &[(Zxid, PathBuf)] {
    let first_needed = snap_zxid.next();
    let start = logs.iter().rposition(|(z, _)| *z <= first_needed).unwrap_or(0);
    &logs[start..]
}

fn choose_snapshot(
    fs: &dyn FileSystem,
    layout: &ZkLayout,
    opts: &RecoverOptions,
    report: &mut RecoveryReport,
    progress: &mut dyn Progress,
) -> Result<LoadedSnapshot, StorageError> {
    if let Some(p) = &opts.snapshot {
        progress.phase(&p.display().to_string());
        return load_snapshot(fs, p);
    }
    let mut tried = Vec::new();
    for (zxid, _, path) in layout.snapshots.iter().rev().take(SNAPSHOTS_TRIED_MAX) {
        if let Some(at) = opts.at {
            if *zxid > at {
                report.skipped_snapshots.push(SkippedSnapshot {
                    path: path.clone(),
                    reason: format!("newer than the requested zxid {at}"),
                    damaged: false,
                });
                continue;
            }
        }
        match zksnap::quick_valid(fs, path) {
            Ok(true) => {}
            Ok(false) => {
                let reason = "fails ZooKeeper's quick validity test (truncated or not a snapshot)"
                    .to_string();
                tried.push((path.clone(), reason.clone()));
                report.skipped_snapshots.push(SkippedSnapshot {
                    path: path.clone(),
                    reason,
                    damaged: true,
                });
                continue;
            }
            Err(e) => {
                tried.push((path.clone(), e.to_string()));
                report.skipped_snapshots.push(SkippedSnapshot {
                    path: path.clone(),
                    reason: e.to_string(),
                    damaged: true,
                });
                continue;
            }
        }
        progress.phase(&path.display().to_string());
        match load_snapshot(fs, path) {
            Ok(loaded) => {
                if let Some(at) = opts.at {
                    // A fuzzy snapshot may hold txns up to its digest zxid + 1 (and,
                    // without a digest, anything newer than its name): it can only be
                    // the base of a point-in-time state it does not overshoot.
                    let content_max = loaded
                        .info
                        .as_ref()
                        .and_then(|i| i.digest)
                        .filter(|d| d.zxid.0 != 0)
                        .map(|d| Zxid(d.zxid.0.saturating_add(1)))
                        .unwrap_or(Zxid::ZERO)
                        .max(loaded.max_node_zxid);
                    if content_max > at {
                        report.skipped_snapshots.push(SkippedSnapshot {
                            path: path.clone(),
                            reason: format!(
                                "fuzzy: holds changes up to {content_max}, past the requested \
                                 zxid {at}"
                            ),
                            damaged: false,
                        });
                        continue;
                    }
                }
                return Ok(loaded);
            }
            Err(e) => {
                tried.push((path.clone(), e.to_string()));
                report.skipped_snapshots.push(SkippedSnapshot {
                    path: path.clone(),
                    reason: e.to_string(),
                    damaged: true,
                });
            }
        }
    }
    if layout.snapshots.is_empty() {
        // ZooKeeper refuses logs without a snapshot unless told to trust an empty one;
        // offline we start from the initial tree, which is what snapshot.0 holds.
        let mut tree = DataTree::new();
        tree.set_last_processed_zxid(Zxid::ZERO);
        return Ok(LoadedSnapshot {
            tree,
            info: None,
            zxid: Zxid::ZERO,
            max_node_zxid: Zxid::ZERO,
        });
    }
    if let Some(at) = opts.at {
        if tried.is_empty() {
            return Err(StorageError::Unreachable {
                what: format!("zxid {at}"),
                reason: "every snapshot is newer than it (or holds later changes); \
                         ZooKeeper keeps no older state"
                    .into(),
            });
        }
    }
    Err(StorageError::NoUsableSnapshot { dir: layout.snap_dir.clone(), tried })
}

/// Recovers the state of a ZooKeeper data directory.
pub fn recover(
    fs: &dyn FileSystem,
    layout: &ZkLayout,
    opts: &RecoverOptions,
    progress: &mut dyn Progress,
) -> Result<Recovered, StorageError> {
    let mut report = RecoveryReport::default();
    let total: u64 = layout
        .logs
        .iter()
        .filter_map(|(_, p)| fs.metadata(p).ok().map(|m| m.len.min(1 << 20)))
        .sum();
    progress.set_total(total);

    let loaded = choose_snapshot(fs, layout, opts, &mut report, progress)?;
    let snap_path =
        layout.snapshots.iter().find(|(z, _, _)| *z == loaded.zxid).map(|(_, _, p)| p.clone());
    report.snapshot = opts.snapshot.clone().or(snap_path.clone());
    report.snapshot_zxid = loaded.zxid;
    report.snapshot_digest = loaded.info.as_ref().and_then(|i| i.digest);
    let snap_file = report.snapshot.clone().unwrap_or_default();
    let mut tree = loaded.tree;

    // The snapshot digest is compared once the replay has reached its zxid; ZooKeeper
    // ignores an empty one (zxid 0) and one older than the snapshot's name.
    let mut pending_snap_digest = report
        .snapshot_digest
        .filter(|d| d.zxid.0 != 0 && d.zxid >= loaded.zxid)
        .map(|d| (d.zxid, d.digest as u64));
    // Without a snapshot digest the snapshot's fuzziness is unbounded, so per-txn
    // digests can only be trusted when replaying from the initial empty snapshot.
    let mut check_txn_digests = pending_snap_digest.is_none() && loaded.zxid == Zxid::ZERO;
    let mut last = loaded.zxid;
    let mut skipping = true;

    'files: for (_, path) in logs_to_replay(&layout.logs, loaded.zxid) {
        progress.phase(&path.display().to_string());
        let mut reader = match LogReader::open(fs, path) {
            Ok(r) => r,
            Err(e) if opts.stop_at_damage && e.corruption().is_some() => {
                report.damage = e.corruption().cloned();
                break 'files;
            }
            Err(e) => return Err(e.into()),
        };
        let mut lr =
            LogReplay { path: path.clone(), records: 0, applied: 0, zxids: None, end: None };
        loop {
            let next = match reader.next_record() {
                Err(e) if opts.stop_at_damage && e.corruption().is_some() => {
                    report.damage = e.corruption().cloned();
                    report.logs.push(lr);
                    break 'files;
                }
                other => other?,
            };
            let rec = match next {
                Some(r) => r,
                None => {
                    lr.end = reader.end().cloned();
                    break;
                }
            };
            progress.advance(rec.end_offset() - rec.offset);
            lr.records += 1;
            let zxid = rec.zxid();
            lr.zxids = Some(match lr.zxids {
                None => (zxid, zxid),
                Some((first, _)) => (first, zxid),
            });
            if skipping && zxid <= loaded.zxid {
                continue;
            }
            if let Some(at) = opts.at {
                if zxid > at {
                    report.stopped_at = Some(at);
                    report.logs.push(lr);
                    break 'files;
                }
            }
            if !is_successor(last, zxid) {
                report.gap = Some(Gap { after: last, next: zxid, file: path.clone() });
                report.logs.push(lr);
                break 'files;
            }
            skipping = false;
            apply_checked(&mut tree, &rec.txn, path, &mut report, &mut check_txn_digests);
            lr.applied += 1;
            report.txns_applied += 1;
            last = zxid;
            if let Some((dz, stored)) = pending_snap_digest {
                if zxid == dz {
                    pending_snap_digest = None;
                    check_txn_digests = true;
                    report.digests_checked += 1;
                    let computed = tree.digest();
                    if computed != stored {
                        report.digest_mismatches.push(DigestMismatch {
                            zxid,
                            stored,
                            computed,
                            file: snap_file.clone(),
                            benign: false,
                        });
                    }
                } else if zxid > dz {
                    pending_snap_digest = None;
                    check_txn_digests = true;
                }
            }
        }
        report.logs.push(lr);
    }
    if let Some((dz, stored)) = pending_snap_digest {
        // Nothing was replayed past the snapshot: compare right away if the snapshot
        // claims exactly the state we stopped at.
        if dz == last {
            report.digests_checked += 1;
            let computed = tree.digest();
            if computed != stored {
                report.digest_mismatches.push(DigestMismatch {
                    zxid: dz,
                    stored,
                    computed,
                    file: snap_file.clone(),
                    benign: false,
                });
            }
        }
    }
    classify_benign(&mut report, &snap_file);
    report.last_zxid = last;
    tree.set_last_processed_zxid(last.max(tree.last_processed_zxid()));
    if !opts.keep_orphan_ephemerals {
        report.orphan_ephemerals_removed = tree.remove_orphan_ephemerals();
    }
    Ok(Recovered { tree, report })
}

fn apply_checked(
    tree: &mut DataTree,
    txn: &Txn,
    file: &Path,
    report: &mut RecoveryReport,
    check_txn_digests: &mut bool,
) -> TxnResult {
    let result = tree.apply(txn);
    if *check_txn_digests {
        if let Some(d) = txn.digest {
            report.digests_checked += 1;
            let computed = tree.digest();
            let stored = d.tree_digest as u64;
            if computed != stored {
                report.digest_mismatches.push(DigestMismatch {
                    zxid: txn.header.zxid,
                    stored,
                    computed,
                    file: file.to_path_buf(),
                    benign: false,
                });
            }
        }
    }
    result
}

/// A mismatch exactly at the snapshot's digest zxid, with no mismatch after it, is
/// the fuzzy-snapshot race ZooKeeper itself logs and forgets (docs/formats/zookeeper.md, "Replay rules").
fn classify_benign(report: &mut RecoveryReport, snap_file: &Path) {
    let Some(d) = report.snapshot_digest else { return };
    let later_bad = report.digest_mismatches.iter().any(|m| m.zxid > d.zxid);
    for m in &mut report.digest_mismatches {
        if m.zxid == d.zxid && m.file == snap_file && !later_bad {
            m.benign = true;
        }
    }
}
