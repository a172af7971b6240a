//! Choosing the snapshot to start from, and the read-only recovery the tools use.

use std::path::{Path, PathBuf};

use keeperkit_model::{Corruption, CorruptionKind, Txn};
use keeperkit_tree::DataTree;
use keeperkit_vfs::FileSystem;
use keeperkit_wal::native::{iter_entries, ProblemKind};
use keeperkit_wal::WalError;

use super::layout::{snapshot_files, SNAPSHOT_DIR, WAL_DIR};
use crate::native::snapshot::load_tree;
use crate::progress::{NoProgress, Progress};
use crate::traits::{LogPosition, SnapshotInfo};
use crate::StorageError;

/// Bytes a log entry takes in a segment beside its payload (term and length), for
/// progress.
const ENTRY_OVERHEAD: u64 = 12;

/// A snapshot that was not used, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedSnapshot {
    /// The file.
    pub path: PathBuf,
    /// Why it was not used (the error, a full sentence).
    pub reason: String,
}

/// The tree a recovery starts from.
#[derive(Debug)]
pub(crate) struct Start {
    pub tree: DataTree,
    pub position: LogPosition,
    /// The snapshot's cluster configuration (empty for the initial tree).
    pub cluster_config: Vec<u8>,
    pub snapshot: Option<SnapshotInfo>,
    pub skipped: Vec<SkippedSnapshot>,
}

/// Length of the header of a cluster-config entry ([`config_entry`]).
pub const CONFIG_ENTRY_HEADER_LEN: usize = 32;
/// The value in the jute `type` field (bytes 28..32, big-endian) that marks a
/// cluster-config entry: ASCII `KKCF`. No ZooKeeper or Keeper txn has this type.
pub const CONFIG_ENTRY_TYPE: i32 = 0x4B4B_4346;
const CONFIG_ENTRY_MAGIC: &[u8; 4] = b"KKCF";

/// The WAL payload of a cluster-config entry: a 32-byte header shaped like a jute
/// `TxnHeader` (bytes 0..4 `KKCF`, bytes 4..28 zero, bytes 28..32 the type
/// [`CONFIG_ENTRY_TYPE`]) followed by the configuration bytes (opaque: a Raft
/// membership, a ZooKeeper dynamic config). Applying one replaces the engine's cluster
/// configuration (written into every snapshot) and leaves the tree alone.
pub fn config_entry(config: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(CONFIG_ENTRY_HEADER_LEN + config.len());
    out.extend_from_slice(CONFIG_ENTRY_MAGIC);
    out.resize(28, 0);
    out.extend_from_slice(&CONFIG_ENTRY_TYPE.to_be_bytes());
    out.extend_from_slice(config);
    out
}

/// The configuration bytes of a cluster-config entry, or `None` if `payload` is not
/// one (a jute txn, or empty).
pub fn parse_config_entry(payload: &[u8]) -> Option<&[u8]> {
    let header = payload.get(..CONFIG_ENTRY_HEADER_LEN)?;
    let is_config = header[..4] == CONFIG_ENTRY_MAGIC[..]
        && header[4..28].iter().all(|&b| b == 0)
        && header[28..] == CONFIG_ENTRY_TYPE.to_be_bytes();
    is_config.then(|| &payload[CONFIG_ENTRY_HEADER_LEN..])
}

/// The value in the jute `type` field (bytes 28..32, big-endian) that marks a batch
/// entry: ASCII `KKBT`. No ZooKeeper or Keeper txn has this type.
pub const BATCH_ENTRY_TYPE: i32 = 0x4B4B_4254;
const BATCH_ENTRY_MAGIC: &[u8; 4] = b"KKBT";

/// The WAL payload of a batch entry: several txns logged as one entry, applied in
/// order. A 32-byte header shaped like a jute `TxnHeader` (bytes 0..4 `KKBT`, bytes
/// 4..28 zero, bytes 28..32 the type [`BATCH_ENTRY_TYPE`]), the txn count (u32,
/// little-endian), then per txn its length (u32, little-endian) and its jute bytes.
pub fn batch_entry(txns: &[&[u8]]) -> Vec<u8> {
    let len = CONFIG_ENTRY_HEADER_LEN + 4 + txns.iter().map(|t| 4 + t.len()).sum::<usize>();
    let mut out = Vec::with_capacity(len);
    out.extend_from_slice(BATCH_ENTRY_MAGIC);
    out.resize(28, 0);
    out.extend_from_slice(&BATCH_ENTRY_TYPE.to_be_bytes());
    out.extend_from_slice(&u32::try_from(txns.len()).unwrap_or(u32::MAX).to_le_bytes());
    for t in txns {
        out.extend_from_slice(&u32::try_from(t.len()).unwrap_or(u32::MAX).to_le_bytes());
        out.extend_from_slice(t);
    }
    out
}

/// The txns (jute bytes each) of a batch entry ([`batch_entry`]); `None` if `payload`
/// is not one, an error (a full sentence) if its header says it is one and the rest
/// does not parse: a count or a length past the end, or bytes after the last txn.
pub fn parse_batch_entry(payload: &[u8]) -> Option<Result<Vec<&[u8]>, String>> {
    let header = payload.get(..CONFIG_ENTRY_HEADER_LEN)?;
    let is_batch = header[..4] == BATCH_ENTRY_MAGIC[..]
        && header[4..28].iter().all(|&b| b == 0)
        && header[28..] == BATCH_ENTRY_TYPE.to_be_bytes();
    if !is_batch {
        return None;
    }
    Some(parse_batch(&payload[CONFIG_ENTRY_HEADER_LEN..]))
}

/// The txns of a batch entry's bytes after its header (see [`parse_batch_entry`]).
fn parse_batch(rest: &[u8]) -> Result<Vec<&[u8]>, String> {
    let mut c = keeperkit_model::le::Cursor::new(rest);
    let count = c.u32().map_err(|e| format!("the batch entry's txn count: {e}"))?;
    let count = usize::try_from(count).map_err(|e| e.to_string())?;
    // Every txn takes at least its 4-byte length: a count larger than that allows is
    // refused before anything is allocated for it.
    if count > c.remaining() / 4 {
        return Err(format!("the batch entry counts {count} txns in {} bytes", c.remaining()));
    }
    let mut txns = Vec::with_capacity(count);
    for i in 0..count {
        let txn = c
            .u32()
            .and_then(|len| c.take(usize::try_from(len).unwrap_or(usize::MAX)))
            .map_err(|e| format!("txn {i} of the batch entry: {e}"))?;
        txns.push(txn);
    }
    if !c.is_empty() {
        return Err(format!("{} bytes follow the last txn of the batch entry", c.remaining()));
    }
    Ok(txns)
}

/// Whether falling back to the state at `fallback` after skipping damaged snapshots
/// loses nothing: the log must hold every entry from `fallback + 1` (not purged) up to
/// the newest skipped snapshot's index (`log_last`). Otherwise the error names the
/// snapshot that is needed.
fn check_fallback(
    snap_dir: &Path,
    skipped: &[(u64, SkippedSnapshot)],
    fallback: u64,
    log_purged: u64,
    log_last: Option<u64>,
) -> Result<(), StorageError> {
    let Some((needed, newest)) = skipped.iter().map(|(i, s)| (*i, s)).max_by_key(|(i, _)| *i)
    else {
        return Ok(());
    };
    if needed <= fallback {
        return Ok(());
    }
    let covered = log_purged <= fallback && log_last.is_some_and(|l| l >= needed);
    if covered {
        return Ok(());
    }
    Err(StorageError::SnapshotNeeded {
        dir: snap_dir.to_path_buf(),
        snapshot: newest.path.clone(),
        index: needed,
        reason: newest.reason.clone(),
        fallback,
        log: match log_last {
            Some(l) if l > log_purged => format!("holds indexes {} ..= {l}", log_purged + 1),
            _ => "holds no entries".to_string(),
        },
    })
}

/// Loads the newest snapshot that is intact (every checksum, node count and digest),
/// falling back to older ones; with no snapshot at all, the initial tree at index 0.
/// A fallback is taken only when the log holds every entry from the fallback's index
/// up to the damaged snapshot's ([`StorageError::SnapshotNeeded`] otherwise):
/// a damaged snapshot never turns into a smaller state.
pub(crate) fn choose_snapshot(
    fs: &dyn FileSystem,
    snap_dir: &Path,
    log_purged: u64,
    log_last: Option<u64>,
) -> Result<Start, StorageError> {
    let files = snapshot_files(fs, snap_dir)?;
    let mut damaged: Vec<(u64, SkippedSnapshot)> = Vec::new();
    for (index, path) in files.iter().rev() {
        match load_tree(fs, path) {
            Ok(loaded) => {
                check_fallback(snap_dir, &damaged, loaded.meta.last_index, log_purged, log_last)?;
                let skipped = damaged.into_iter().map(|d| d.1).collect();
                let file_len = fs.metadata(path).map(|m| m.len).unwrap_or(0);
                let position =
                    LogPosition { index: loaded.meta.last_index, term: loaded.meta.last_term };
                let info = SnapshotInfo {
                    path: path.clone(),
                    position,
                    zxid: loaded.meta.zxid,
                    node_count: loaded.meta.node_count,
                    file_len,
                };
                return Ok(Start {
                    tree: loaded.tree,
                    position,
                    cluster_config: loaded.meta.cluster_config,
                    snapshot: Some(info),
                    skipped,
                });
            }
            Err(e) => damaged
                .push((*index, SkippedSnapshot { path: path.clone(), reason: e.to_string() })),
        }
    }
    if log_purged > 0 {
        return Err(StorageError::NoUsableSnapshot {
            dir: snap_dir.to_path_buf(),
            tried: damaged.into_iter().map(|(_, s)| (s.path, s.reason)).collect(),
        });
    }
    check_fallback(snap_dir, &damaged, 0, log_purged, log_last)?;
    let skipped = damaged.into_iter().map(|d| d.1).collect();
    Ok(Start {
        tree: DataTree::new(),
        position: LogPosition::default(),
        cluster_config: Vec::new(),
        snapshot: None,
        skipped,
    })
}

/// Decodes and applies one logged entry: a txn to `tree`, each txn of a batch entry
/// in order, a cluster-config entry to `config`; an empty payload is a no-op. Returns
/// one result per txn applied (none for a no-op or a config entry). A batch entry that
/// does not parse, or holds a txn that does not decode, is corruption and nothing of it
/// is applied.
pub(crate) fn apply_payload(
    tree: &mut DataTree,
    config: &mut Vec<u8>,
    wal_dir: &Path,
    index: u64,
    payload: &[u8],
) -> Result<Vec<keeperkit_tree::TxnResult>, StorageError> {
    if payload.is_empty() {
        return Ok(Vec::new());
    }
    if let Some(c) = parse_config_entry(payload) {
        c.clone_into(config);
        return Ok(Vec::new());
    }
    let corrupt = |what: String| {
        StorageError::Corrupt(
            Corruption::new(wal_dir, 0, CorruptionKind::inconsistent(what)).with_index(index),
        )
    };
    let decode = |b: &[u8]| {
        Txn::decode_from(b)
            .map_err(|e| corrupt(format!("entry {index} is not a ZooKeeper txn: {e}")))
    };
    match parse_batch_entry(payload) {
        None => Ok(vec![tree.apply(&decode(payload)?)]),
        Some(Err(e)) => Err(corrupt(format!("entry {index}: {e}"))),
        Some(Ok(parts)) => {
            let txns = parts.into_iter().map(decode).collect::<Result<Vec<_>, _>>()?;
            Ok(txns.iter().map(|t| tree.apply(t)).collect())
        }
    }
}

/// How the log replay of a read-only recovery ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplayEnd {
    /// Every entry after the snapshot was applied.
    Complete,
    /// The newest segment ends in a torn write (never acknowledged); replay stopped
    /// before it. `NativeEngine::open` cuts it.
    TornTail {
        /// The segment.
        path: PathBuf,
        /// Where the valid bytes end.
        valid_end: u64,
    },
    /// Replay stopped at damage: the state is the one before it.
    Damaged(String),
    /// The log does not continue the snapshot.
    Gap {
        /// The index replay needed next.
        expected: u64,
        /// The index the log holds instead.
        found: u64,
    },
}

/// What [`recover_readonly`] found.
#[derive(Debug)]
pub struct ReadOnlyState {
    /// The recovered tree.
    pub tree: DataTree,
    /// The last entry applied.
    pub position: LogPosition,
    /// The snapshot used (`None`: the initial empty tree).
    pub snapshot: Option<SnapshotInfo>,
    /// Snapshots that were damaged and skipped.
    pub skipped: Vec<SkippedSnapshot>,
    /// Entries replayed from the log.
    pub replayed: u64,
    /// How replay ended.
    pub end: ReplayEnd,
}

/// Recovers the state of a native data directory without writing anything: the newest
/// intact snapshot, then the log entries after it, stopping (and saying so) at a torn
/// tail, damage or a gap. `upto` stops replay after that index.
pub fn recover_readonly(
    fs: &dyn FileSystem,
    dir: &Path,
    upto: Option<u64>,
) -> Result<ReadOnlyState, StorageError> {
    recover_readonly_in(fs, &dir.join(SNAPSHOT_DIR), &dir.join(WAL_DIR), upto)
}

/// [`recover_readonly`] with the snapshot and log directories given apart (a bare WAL
/// directory: a snapshot directory that does not exist).
pub fn recover_readonly_in(
    fs: &dyn FileSystem,
    snap_dir: &Path,
    wal_dir: &Path,
    upto: Option<u64>,
) -> Result<ReadOnlyState, StorageError> {
    recover_readonly_with(fs, snap_dir, wal_dir, upto, &mut NoProgress)
}

/// [`recover_readonly_in`] reporting progress: the snapshot's bytes, then the log's
/// entry bytes as they are replayed.
pub fn recover_readonly_with(
    fs: &dyn FileSystem,
    snap_dir: &Path,
    wal_dir: &Path,
    upto: Option<u64>,
    progress: &mut dyn Progress,
) -> Result<ReadOnlyState, StorageError> {
    let wal_dir = wal_dir.to_path_buf();
    progress.phase(&wal_dir.display().to_string());
    let (purged, last, log_bytes) = if fs.exists(&wal_dir) {
        let info = keeperkit_wal::native::inspect(fs, &wal_dir)?;
        let bytes = info.segments.iter().map(|s| s.data_end).sum::<u64>();
        (info.meta.map_or(0, |m| m.purged), info.last_index, bytes)
    } else {
        (0, None, 0)
    };
    progress.phase(&snap_dir.display().to_string());
    let Start { mut tree, mut position, mut cluster_config, snapshot, skipped } =
        choose_snapshot(fs, snap_dir, purged, last)?;
    let snap_bytes = snapshot.as_ref().map_or(0, |s| s.file_len);
    progress.set_total(snap_bytes + log_bytes);
    progress.advance(snap_bytes);
    progress.phase(&wal_dir.display().to_string());
    let mut replayed = 0;
    let mut end = ReplayEnd::Complete;
    let to = upto.unwrap_or(u64::MAX);
    if fs.exists(&wal_dir) && position.index < to {
        for r in iter_entries(fs, &wal_dir, position.index + 1, to)? {
            match r {
                Ok(e) => {
                    if e.index != position.index + 1 {
                        end = ReplayEnd::Gap { expected: position.index + 1, found: e.index };
                        break;
                    }
                    apply_payload(&mut tree, &mut cluster_config, &wal_dir, e.index, &e.payload)?;
                    progress.advance(e.payload.len() as u64 + ENTRY_OVERHEAD);
                    position = LogPosition { index: e.index, term: e.term };
                    replayed += 1;
                }
                Err(WalError::TornTail(p)) => {
                    let valid_end = match p.kind {
                        ProblemKind::TornTail { valid_end, .. } => valid_end,
                        ProblemKind::Corrupt(_) => p.offset,
                    };
                    end = ReplayEnd::TornTail { path: p.path, valid_end };
                    break;
                }
                Err(e) => {
                    end = ReplayEnd::Damaged(e.to_string());
                    break;
                }
            }
        }
    }
    Ok(ReadOnlyState { tree, position, snapshot, skipped, replayed, end })
}
