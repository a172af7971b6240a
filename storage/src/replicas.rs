//! Replicas' data directories, offline: what each holds, where two of them diverge, and
//! the lock a running server holds on its data directory.
//!
//! [`compare`] reads each directory (native replicas of `keeperkit serve --id`, ClickHouse
//! Keeper coordination directories; any mix) without writing anything and reports, for
//! each: its log's first and last index and the last term, the commit index when the
//! directory records one (native: the commit hint; Keeper keeps none), the newest
//! snapshot's index, and the cluster and node ids of a native replica. Then:
//!
//! - **Divergence of the logs.** For every pair, the first log index both hold where the
//!   entries differ: another term, or (same dialect) other bytes. A replica that is only
//!   behind another is not divergent.
//! - **Digest at a common index.** Each replica is recovered to the highest index all of
//!   them hold, and the trees' digests (ZooKeeper's digest, `DataTree::digest`) are
//!   compared. This covers what the logs no longer hold (entries already in a snapshot).
//! - **Cluster ids.** Native replicas naming different clusters do not belong together.
//!
//! Log indexes are those the files hold, as `keeperkit log` shows them (1-based; a native
//! replica's WAL index is openraft's index plus one, so `/status` shows each index one
//! lower).
//!
//! ```no_run
//! # fn main() -> Result<(), keeperkit_storage::StorageError> {
//! let fs = keeperkit_vfs::std_fs();
//! let c = keeperkit_storage::replicas::compare(
//!     &*fs,
//!     &["/var/lib/kk1".into(), "/var/lib/kk2".into()],
//! )?;
//! if let Some(d) = &c.divergence {
//!     println!("{} and {} diverge at index {}", d.a, d.b, d.index);
//! }
//! # Ok(())
//! # }
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use keeperkit_vfs::FileSystem;
use serde::Serialize;

use crate::datadir::Source;
use crate::engine::layout::{snapshot_files, MARKER_FILE};
use crate::findings::{Code, Finding, Severity};
use crate::{open, OpenOptions, Point, StorageError};

/// The file of a replica's data directory naming its cluster and node
/// (`cluster=ID` and `node=N` lines).
pub const IDENTITY_FILE: &str = "cluster-identity";

/// The largest `cluster-identity` read.
const IDENTITY_LEN_MAX: u64 = 4096;

/// The file marking a replica being rebuilt from its leader.
pub const REJOIN_FILE: &str = "rejoining";

/// Reads `cluster-identity` of `dir`: (cluster id, node id), `None` when absent.
pub fn read_identity(
    fs: &dyn FileSystem,
    dir: &Path,
) -> Result<Option<(String, u64)>, StorageError> {
    let p = dir.join(IDENTITY_FILE);
    if !fs.exists(&p) {
        return Ok(None);
    }
    let io = |source| StorageError::Io { path: p.clone(), source };
    let len = fs.open(&p, keeperkit_vfs::OpenMode::Read).and_then(|f| f.len()).map_err(io)?;
    if len > IDENTITY_LEN_MAX {
        return Err(StorageError::Usage(format!(
            "{}: damaged ({len} bytes; it holds two short lines)",
            p.display()
        )));
    }
    let bytes = fs.read_all(&p).map_err(io)?;
    let text = String::from_utf8_lossy(&bytes);
    let (mut cluster, mut node) = (None, None);
    for line in text.lines() {
        match line.split_once('=') {
            Some(("cluster", v)) if !v.is_empty() => cluster = Some(v.to_string()),
            Some(("node", v)) => node = v.parse::<u64>().ok(),
            _ => {}
        }
    }
    match (cluster, node) {
        (Some(c), Some(n)) => Ok(Some((c, n))),
        _ => Err(StorageError::Usage(format!(
            "{}: damaged (expected cluster=... and node=... lines)",
            p.display()
        ))),
    }
}

/// Writes `cluster-identity` of `dir` durably (`dir` and its missing parents created,
/// then the file replaced atomically), in the format [`read_identity`] reads.
pub fn write_identity(
    fs: &dyn FileSystem,
    dir: &Path,
    cluster: &str,
    node: u64,
) -> Result<(), StorageError> {
    let io = |e: keeperkit_vfs::PathError| StorageError::Io { path: e.path, source: e.source };
    keeperkit_vfs::create_dir_all_durable(fs, dir).map_err(io)?;
    let (path, tmp) = (dir.join(IDENTITY_FILE), dir.join(format!("{IDENTITY_FILE}.tmp")));
    let text = format!("cluster={cluster}\nnode={node}\n");
    keeperkit_vfs::write_atomically_bytes(fs, &path, &tmp, text.as_bytes()).map_err(io)
}

/// The lock a server holds on its data directory while it runs (an exclusive `flock`
/// on the directory itself, released when the process ends, however it ends). Offline
/// tools that write to a replica's directory take it too, so that they never write
/// under a running server.
#[derive(Debug)]
pub struct DirLock {
    _file: std::fs::File,
}

/// Takes the lock of the data directory `dir` (created, with its parent synced, if
/// missing). Refused with [`StorageError::Usage`] when another process (or another
/// open of the directory in this process) holds it.
pub fn lock_data_dir(dir: &Path) -> Result<DirLock, StorageError> {
    let io = |source| StorageError::Io { path: dir.to_path_buf(), source };
    if !dir.exists() {
        std::fs::create_dir_all(dir).map_err(io)?;
        let parent = dir.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        std::fs::File::open(parent).and_then(|d| d.sync_all()).map_err(io)?;
    }
    let file = std::fs::File::open(dir).map_err(io)?;
    match file.try_lock() {
        Ok(()) => Ok(DirLock { _file: file }),
        Err(std::fs::TryLockError::WouldBlock) => Err(StorageError::Usage(format!(
            "{} is in use: a running server holds its lock (stop it first)",
            dir.display()
        ))),
        Err(std::fs::TryLockError::Error(e)) => Err(io(e)),
    }
}

/// The last membership a replica holds, as a describer given to [`compare_with`] reads
/// it from the engine's cluster-config bytes (`keeperkit_raft::offline::describe_membership`
/// for `keeperkit serve` replicas).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Membership {
    /// The log index of the membership's entry (its epoch; as the files index it).
    pub index: u64,
    /// The term of that entry.
    pub term: u64,
    /// Voting members.
    pub voters: Vec<u64>,
    /// Non-voting members.
    pub learners: Vec<u64>,
}

/// Reads a membership from cluster-config bytes (`None` when it cannot).
pub type DescribeConfig<'a> = &'a dyn Fn(&[u8]) -> Option<Membership>;

/// What one replica's directory holds.
#[derive(Debug, Clone, Serialize)]
pub struct ReplicaInfo {
    /// The directory.
    pub path: String,
    /// `native` or `clickhouse`.
    pub dialect: &'static str,
    /// The cluster id (`cluster-identity`; native replicas).
    pub cluster_id: Option<String>,
    /// The node id (`cluster-identity`; native replicas).
    pub node_id: Option<u64>,
    /// A rebuild from the leader was in progress (a `rejoining` file).
    pub rebuilding: bool,
    /// First log index the log holds.
    pub first_index: Option<u64>,
    /// Last log index: the log's last entry, or the newest snapshot's when the log holds
    /// nothing after it.
    pub last_index: Option<u64>,
    /// The term of the last index.
    pub last_term: Option<u64>,
    /// The commit index the directory records (native: the commit hint, a lower bound;
    /// `null` when none, and always for ClickHouse Keeper, which records none).
    pub commit_index: Option<u64>,
    /// The newest snapshot's index.
    pub snapshot_index: Option<u64>,
    /// The last membership it holds (native replicas, with a describer; [`compare_with`]).
    pub membership: Option<Membership>,
    /// The tree digest at the common index (hex), when the replica could be recovered
    /// to it.
    pub digest: Option<String>,
    /// Why there is no digest at the common index.
    pub digest_error: Option<String>,
    /// What reading found (a torn tail, damage that stopped the reading).
    pub findings: Vec<Finding>,
}

/// The first index where two replicas' logs differ.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Divergence {
    /// The log index.
    pub index: u64,
    /// The first replica's path.
    pub a: String,
    /// The second replica's path.
    pub b: String,
    /// The entry's term in `a`.
    pub term_a: u64,
    /// The entry's term in `b`.
    pub term_b: u64,
    /// `term` (different terms) or `bytes` (same term, different entry bytes).
    pub kind: &'static str,
}

/// The comparison of replicas ([`compare`]).
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    /// Each replica, in the order given.
    pub replicas: Vec<ReplicaInfo>,
    /// The highest log index every replica holds (where digests are compared).
    pub common_index: Option<u64>,
    /// Whether every digest at the common index is the same (`null` when fewer than two
    /// could be computed).
    pub digests_agree: Option<bool>,
    /// The lowest index where two logs differ, over every pair.
    pub divergence: Option<Divergence>,
    /// Every disagreement, one sentence each (diverging logs, digests, cluster ids).
    pub disagreements: Vec<String>,
    /// No disagreement.
    pub agree: bool,
}

impl Comparison {
    /// Whether the replicas disagree (their histories diverge or belong to different
    /// clusters).
    pub fn diverged(&self) -> bool {
        !self.disagreements.is_empty()
    }

    /// Every finding of every replica.
    pub fn findings(&self) -> impl Iterator<Item = &Finding> {
        self.replicas.iter().flat_map(|r| r.findings.iter())
    }
}

/// One log entry reduced to what comparing needs: (index, term, hash of its bytes).
type Mark = (u64, u64, u64);

/// FNV-1a, 64 bits.
fn hash(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

struct Read {
    info: ReplicaInfo,
    marks: Vec<Mark>,
}

/// The entries of a native log; `config` gets the payload of the last cluster-config
/// entry.
fn native_marks(
    fs: &dyn FileSystem,
    wal_dir: &Path,
    findings: &mut Vec<Finding>,
    config: &mut Option<Vec<u8>>,
) -> Result<Vec<Mark>, StorageError> {
    let mut out = Vec::new();
    if !fs.exists(wal_dir) {
        return Ok(out);
    }
    let context = "damaged WAL: the log is compared up to the damage";
    findings.extend(crate::native::log::walk_entries(
        fs,
        wal_dir,
        0,
        u64::MAX,
        context,
        &mut |e| {
            if let Some(c) = crate::engine::parse_config_entry(&e.payload) {
                *config = Some(c.to_vec());
            }
            out.push((e.index, e.term, hash(&e.payload)));
            std::ops::ControlFlow::Continue(())
        },
    )?);
    Ok(out)
}

/// Keeper's changelogs in name order; a later file's record replaces an earlier one at
/// the same index (Keeper rewrites from a truncation point in a new file).
fn clickhouse_marks(
    fs: &dyn FileSystem,
    log_dir: &Path,
    findings: &mut Vec<Finding>,
) -> Result<Vec<Mark>, StorageError> {
    use keeperkit_wal::clickhouse::{list_changelogs, read_file, ReadOptions};
    let listing = list_changelogs(fs, log_dir)?;
    let mut by_index: BTreeMap<u64, (u64, u64)> = BTreeMap::new();
    for f in listing.files {
        if !matches!(f.name.extension.as_str(), "bin" | "bin.zstd") {
            continue;
        }
        if listing.tmp_markers.iter().any(|m| m.ends_with(&f.name.file_name())) {
            continue;
        }
        let file = read_file(fs, &f.path, ReadOptions::default())?;
        if let Some(c) = &file.broken {
            findings.push(Finding::corruption(c, "damaged changelog: compared up to the damage"));
        }
        let mut first = true;
        for r in &file.records {
            if first {
                by_index.split_off(&r.record.index);
                first = false;
            }
            by_index.insert(r.record.index, (r.record.term, hash(&r.record.blob)));
        }
    }
    Ok(by_index.into_iter().map(|(i, (t, h))| (i, t, h)).collect())
}

fn read_replica(
    fs: &dyn FileSystem,
    path: &Path,
    describe: DescribeConfig<'_>,
) -> Result<Read, StorageError> {
    let dir = open(fs, path, &OpenOptions::default())?;
    let mut findings = Vec::new();
    let mut info = ReplicaInfo {
        path: path.display().to_string(),
        dialect: "native",
        cluster_id: None,
        node_id: None,
        rebuilding: false,
        first_index: None,
        last_index: None,
        last_term: None,
        commit_index: None,
        snapshot_index: None,
        membership: None,
        digest: None,
        digest_error: None,
        findings: Vec::new(),
    };
    let marks = match &dir.source {
        Source::NativeDir { snap_dir, wal_dir } => {
            let root = snap_dir.parent().unwrap_or(path).to_path_buf();
            if !fs.exists(&root.join(MARKER_FILE)) {
                return Err(not_replica(path));
            }
            match read_identity(fs, &root) {
                Ok(Some((c, n))) => {
                    info.cluster_id = Some(c);
                    info.node_id = Some(n);
                }
                Ok(None) => {}
                Err(StorageError::Usage(m)) => findings.push(
                    Finding::new(Severity::Error, Code::Unreadable, m)
                        .file(root.join(IDENTITY_FILE)),
                ),
                Err(e) => return Err(e),
            }
            info.rebuilding = fs.exists(&root.join(REJOIN_FILE));
            info.commit_index = crate::engine::server_state::read_hint(fs, &root)
                .map(|h| h.index)
                .filter(|&i| i > 0);
            let snap = snapshot_files(fs, snap_dir)?.last().map(|(_, p)| p.clone());
            let mut config = None;
            if let Some(p) = snap {
                match keeperkit_snapshot::native::inspect_snapshot(fs, &p) {
                    Ok(s) => {
                        info.snapshot_index = Some(s.meta.last_index);
                        info.last_index = Some(s.meta.last_index);
                        info.last_term = Some(s.meta.last_term);
                        config = Some(s.meta.cluster_config);
                    }
                    Err(e) => {
                        let e = StorageError::from(e);
                        match e.corruption() {
                            Some(c) => findings.push(Finding::corruption(c, "damaged snapshot")),
                            None => return Err(e),
                        }
                    }
                }
            }
            let marks = native_marks(fs, wal_dir, &mut findings, &mut config)?;
            info.membership = config.filter(|c| !c.is_empty()).and_then(|c| describe(&c));
            marks
        }
        Source::ClickHouse(layout) if !layout.is_single_file() => {
            info.dialect = "clickhouse";
            if let Some(sd) = &layout.snapshot_dir {
                let newest = fs
                    .read_dir(sd)
                    .map_err(|source| StorageError::Io { path: sd.clone(), source })?
                    .into_iter()
                    .filter_map(|e| keeperkit_snapshot::clickhouse::parse_snapshot_name(&e.name))
                    .max();
                info.snapshot_index = newest;
                info.last_index = newest;
            }
            match &layout.log_dir {
                Some(ld) => clickhouse_marks(fs, ld, &mut findings)?,
                None => Vec::new(),
            }
        }
        _ => return Err(not_replica(path)),
    };
    if let (Some(first), Some(last)) = (marks.first(), marks.last()) {
        info.first_index = Some(first.0);
        if info.last_index.is_none_or(|l| last.0 >= l) {
            info.last_index = Some(last.0);
            info.last_term = Some(last.1);
        }
    }
    if info.dialect == "clickhouse" && info.last_term.is_none() {
        // Only a snapshot: its term is in the file.
        if let Some(i) = info.last_index {
            info.last_term = marks.iter().find(|m| m.0 == i).map(|m| m.1);
        }
    }
    info.findings = findings;
    Ok(Read { info, marks })
}

fn not_replica(path: &Path) -> StorageError {
    StorageError::NotADataDir {
        path: path.to_path_buf(),
        what: "replica's data directory",
        reason: "give a native data directory (with its KEEPERKIT marker) or a ClickHouse \
                 Keeper coordination directory"
            .into(),
    }
}

/// The first index both hold where `a` and `b` differ (term, or bytes when
/// `same_dialect`). Both are sorted by index.
fn first_difference(a: &[Mark], b: &[Mark], same_dialect: bool) -> Option<(u64, u64, u64, bool)> {
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        match a[i].0.cmp(&b[j].0) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                let (x, y) = (a[i], b[j]);
                if x.1 != y.1 {
                    return Some((x.0, x.1, y.1, true));
                }
                if same_dialect && x.2 != y.2 {
                    return Some((x.0, x.1, y.1, false));
                }
                i += 1;
                j += 1;
            }
        }
    }
    None
}

/// Compares replicas' data directories (see the module docs). Reads only. Errors: a
/// path that is not a replica's directory, I/O; damage within a directory is a finding
/// of its [`ReplicaInfo`] and the comparison uses what precedes it. No membership is
/// read ([`compare_with`] reads it).
pub fn compare(fs: &dyn FileSystem, paths: &[PathBuf]) -> Result<Comparison, StorageError> {
    compare_with(fs, paths, &|_| None)
}

/// [`compare`], also reading each native replica's last membership with `describe`
/// (its cluster-config bytes are the Raft layer's: storage does not interpret them).
pub fn compare_with(
    fs: &dyn FileSystem,
    paths: &[PathBuf],
    describe: DescribeConfig<'_>,
) -> Result<Comparison, StorageError> {
    if paths.is_empty() {
        return Err(StorageError::Usage("give at least one data directory".into()));
    }
    let mut reads = Vec::with_capacity(paths.len());
    for p in paths {
        reads.push(read_replica(fs, p, describe)?);
    }
    let mut disagreements = Vec::new();

    // Cluster ids.
    let mut clusters: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for r in &reads {
        if let Some(c) = &r.info.cluster_id {
            clusters.entry(c).or_default().push(&r.info.path);
        }
    }
    if clusters.len() > 1 {
        let list: Vec<String> =
            clusters.iter().map(|(c, ps)| format!("{c} ({})", ps.join(", "))).collect();
        disagreements
            .push(format!("the replicas belong to different clusters: {}", list.join("; ")));
    }

    // The logs, pair by pair.
    let mut divergence: Option<Divergence> = None;
    for i in 0..reads.len() {
        for j in i + 1..reads.len() {
            let (a, b) = (&reads[i], &reads[j]);
            let same = a.info.dialect == b.info.dialect;
            if let Some((index, ta, tb, by_term)) = first_difference(&a.marks, &b.marks, same) {
                if divergence.as_ref().is_none_or(|d| index < d.index) {
                    divergence = Some(Divergence {
                        index,
                        a: a.info.path.clone(),
                        b: b.info.path.clone(),
                        term_a: ta,
                        term_b: tb,
                        kind: if by_term { "term" } else { "bytes" },
                    });
                }
            }
        }
    }
    if let Some(d) = &divergence {
        disagreements.push(if d.kind == "term" {
            format!(
                "the logs of {} and {} diverge at index {}: term {} there, term {}",
                d.a, d.b, d.index, d.term_a, d.term_b
            )
        } else {
            format!(
                "the logs of {} and {} diverge at index {}: same term {}, different entries",
                d.a, d.b, d.index, d.term_a
            )
        });
    }

    // Digests at the highest index every replica holds.
    let common = reads.iter().map(|r| r.info.last_index).collect::<Option<Vec<u64>>>();
    let common_index = common.and_then(|v| v.into_iter().min()).filter(|&i| i > 0);
    if let Some(at) = common_index {
        for r in reads.iter_mut() {
            let got = open(fs, Path::new(&r.info.path), &OpenOptions::default())
                .and_then(|d| d.recover(Point::Index(at)));
            match got {
                Ok(state) if state.report.has_errors() => {
                    let why: Vec<String> = state
                        .report
                        .findings
                        .iter()
                        .filter(|f| f.severity == Severity::Error)
                        .map(|f| f.message.clone())
                        .collect();
                    r.info.digest_error = Some(why.join("; "));
                }
                Ok(state) => r.info.digest = Some(format!("{:016x}", state.tree.digest())),
                Err(e) => r.info.digest_error = Some(e.to_string()),
            }
        }
    }
    let digests: Vec<(&str, &str)> = reads
        .iter()
        .filter_map(|r| r.info.digest.as_deref().map(|d| (r.info.path.as_str(), d)))
        .collect();
    let digests_agree = (digests.len() >= 2).then(|| digests.iter().all(|d| d.1 == digests[0].1));
    if digests_agree == Some(false) {
        let list: Vec<String> = digests.iter().map(|(p, d)| format!("{p} {d}")).collect();
        disagreements.push(format!(
            "the trees differ at index {}: digests {}",
            common_index.unwrap_or(0),
            list.join(", ")
        ));
    }
    let agree = disagreements.is_empty();
    Ok(Comparison {
        replicas: reads.into_iter().map(|r| r.info).collect(),
        common_index,
        digests_agree,
        divergence,
        disagreements,
        agree,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn first_difference_finds_term_and_bytes_and_ignores_lag() {
        let a = vec![(1, 1, 10), (2, 1, 20), (3, 2, 30)];
        let behind = vec![(1, 1, 10), (2, 1, 20)];
        assert_eq!(first_difference(&a, &behind, true), None);
        let purged = vec![(3, 2, 30), (4, 2, 40)];
        assert_eq!(first_difference(&a, &purged, true), None);
        let other_term = vec![(1, 1, 10), (2, 1, 20), (3, 3, 30)];
        assert_eq!(first_difference(&a, &other_term, true), Some((3, 2, 3, true)));
        let other_bytes = vec![(1, 1, 10), (2, 1, 21)];
        assert_eq!(first_difference(&a, &other_bytes, true), Some((2, 1, 1, false)));
        assert_eq!(first_difference(&a, &other_bytes, false), None);
    }

    #[test]
    fn the_lock_is_exclusive_and_released_on_drop() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("kk");
        let l = lock_data_dir(&dir).unwrap();
        assert!(dir.is_dir());
        let e = lock_data_dir(&dir).unwrap_err();
        assert!(e.to_string().contains("in use"), "{e}");
        drop(l);
        lock_data_dir(&dir).unwrap();
    }

    #[test]
    fn identity_is_read_and_damage_refused() {
        let fs = keeperkit_vfs::std_fs();
        let d = tempfile::tempdir().unwrap();
        assert_eq!(read_identity(&*fs, d.path()).unwrap(), None);
        std::fs::write(d.path().join(IDENTITY_FILE), "cluster=abc\nnode=2\n").unwrap();
        assert_eq!(read_identity(&*fs, d.path()).unwrap(), Some(("abc".into(), 2)));
        std::fs::write(d.path().join(IDENTITY_FILE), "garbage").unwrap();
        assert!(read_identity(&*fs, d.path()).is_err());
        let big = format!("cluster=abc\nnode=2\n{}", " ".repeat(5000));
        std::fs::write(d.path().join(IDENTITY_FILE), big).unwrap();
        assert!(read_identity(&*fs, d.path()).unwrap_err().to_string().contains("5019 bytes"));
        // Written over the damage, into a directory created on the way.
        write_identity(&*fs, d.path(), "def", 3).unwrap();
        assert_eq!(read_identity(&*fs, d.path()).unwrap(), Some(("def".into(), 3)));
        let sub = d.path().join("a/b");
        write_identity(&*fs, &sub, "ghi", 4).unwrap();
        assert_eq!(read_identity(&*fs, &sub).unwrap(), Some(("ghi".into(), 4)));
        assert!(!sub.join(format!("{IDENTITY_FILE}.tmp")).exists());
    }
}
