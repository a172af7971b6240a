//! Offline changes to a stopped replica's data directory.
//!
//! [`force_new_cluster`] is the way out of a lost quorum (as etcd's
//! `--force-new-cluster`): it makes a surviving replica a one-node cluster that keeps
//! every entry it holds. Nothing is dropped; what the replica cannot know is which of
//! its last entries a majority had (the entries past the commit index it recorded):
//! they become committed in the new cluster, and entries that only the lost replicas
//! had are gone. Hence: run it on the most advanced survivor (compare them first with
//! `keeperkit replicas`).
//!
//! What it writes, in this order (each step durable before the next):
//!
//! 1. A membership entry after the last entry, in a new term (one more than the highest
//!    term the directory knows: its vote's and its last entry's): voters = this node
//!    alone; every other member of the last membership it holds stays as a non-voting
//!    learner, with its address, so that a replacement started with the same command
//!    and an empty data directory is rebuilt into the new cluster (learner, then voter)
//!    by the ordinary rebuild path. Its log id is the new **membership epoch**.
//! 2. The vote: this node voted for itself in the new term (not a leader yet: it is
//!    elected when it starts, alone).
//! 3. The commit hint: the new entry, so that every entry before it is applied when
//!    the server starts.
//! 4. `cluster-identity` with a **new cluster id**: the lost members (should one come
//!    back with its old data) belong to the old cluster, and every Raft connection
//!    between the two is refused at the hello; they can never vote in the new one or
//!    replicate their entries into it.
//! 5. The `rejoining` marker is removed (a replica being rebuilt when the quorum was
//!    lost keeps what it had received: its log is a prefix of its leader's).
//!
//! A crash before step 4 leaves the old cluster id: run the command again (it appends
//! another membership entry in yet another term).
//!
//! Indexes in the [`ForceReport`] are log indexes as the files hold them (WAL indexes,
//! `keeperkit log` and `keeperkit replicas`: openraft's index plus one).

// openraft's StorageError (the error of opening the store) is large.
#![allow(clippy::result_large_err)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;

use keeperkit_storage::engine::{parse_config_entry, NativeEngine};
use keeperkit_storage::replicas::{
    lock_data_dir, read_identity, write_identity, IDENTITY_FILE, REJOIN_FILE,
};
use keeperkit_storage::traits::{EntryRef, LogPosition, LogStore};
use keeperkit_vfs::FileSystem;
use openraft::{BasicNode, EntryPayload, Membership, Vote};
use serde::Serialize;

use crate::codec::{self, RaftMeta};
use crate::{Entry, NodeId};

/// What [`force_new_cluster`] found and did.
#[derive(Debug, Clone, Serialize)]
pub struct ForceReport {
    /// The data directory.
    pub dir: String,
    /// This node's id.
    pub node: u64,
    /// The cluster id before.
    pub old_cluster: String,
    /// The new cluster id.
    pub cluster: String,
    /// The last log index the replica held, and its term.
    pub last_index: u64,
    /// The term of `last_index`.
    pub last_term: u64,
    /// The highest index the replica knew to be committed (its commit hint or its
    /// snapshot, whichever is higher; a lower bound: the hint is written lazily).
    pub commit_index: u64,
    /// The newest snapshot's index (0: none).
    pub snapshot_index: u64,
    /// Entries after `commit_index` that it keeps without knowing whether a majority
    /// had them (they are committed now): first index, last index, count, and the
    /// term of each run of entries (`[index, term]` where a term starts).
    pub uncertain_first: Option<u64>,
    /// Last of those entries.
    pub uncertain_last: Option<u64>,
    /// How many.
    pub uncertain_count: u64,
    /// Where each term starts among them: `[index, term]`.
    pub uncertain_terms: Vec<[u64; 2]>,
    /// The voters of the last membership it held.
    pub old_voters: Vec<u64>,
    /// Its learners.
    pub old_learners: Vec<u64>,
    /// The new membership entry: index and term (the new membership epoch).
    pub membership_index: u64,
    /// Its term (the new term).
    pub membership_term: u64,
    /// The voters now (this node).
    pub voters: Vec<u64>,
    /// The learners now (the other members, kept so that they can be rebuilt).
    pub learners: Vec<u64>,
    /// A rebuild was in progress (its marker was removed).
    pub was_rebuilding: bool,
}

/// Why [`force_new_cluster`] refused or failed.
#[derive(Debug)]
pub enum ForceError {
    /// The directory is not a replica's, is in use, or its state cannot be used.
    Refused(String),
    /// Reading or writing failed.
    Storage(keeperkit_storage::StorageError),
}

impl std::fmt::Display for ForceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ForceError::Refused(m) => f.write_str(m),
            ForceError::Storage(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for ForceError {}

impl From<keeperkit_storage::StorageError> for ForceError {
    fn from(e: keeperkit_storage::StorageError) -> Self {
        ForceError::Storage(e)
    }
}

fn refused(m: impl Into<String>) -> ForceError {
    ForceError::Refused(m.into())
}

/// The new cluster id: a hash (FNV-1a, 64 bits) of the old one, the node, the new
/// epoch and the time.
fn new_cluster_id(old: &str, node: u64, index: u64, term: u64) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in format!("{old}/force-new-cluster/{node}/{index}/{term}/{nanos}").bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// Makes the stopped replica in `dir` a one-node cluster keeping every entry it holds
/// (see the module docs). Refused when the directory is not a replica's (no native
/// marker or no `cluster-identity`), holds no Raft state, or is locked by a running
/// server.
pub fn force_new_cluster(fs: Arc<dyn FileSystem>, dir: &Path) -> Result<ForceReport, ForceError> {
    if !dir.is_dir() {
        return Err(refused(format!("{}: not a directory", dir.display())));
    }
    let _lock = lock_data_dir(dir)?;
    if !keeperkit_storage::engine::layout::is_native_data_dir(&*fs, dir) {
        return Err(refused(format!(
            "{} is not a keeperkit data directory (no KEEPERKIT marker)",
            dir.display()
        )));
    }
    let (old_cluster, node) = read_identity(&*fs, dir)?.ok_or_else(|| {
        refused(format!(
            "{} has no {IDENTITY_FILE}: it is not a replica's data directory",
            dir.display()
        ))
    })?;
    let engine = NativeEngine::open(fs.clone(), crate::engine_options(dir))?;
    let meta = RaftMeta::decode(&engine.server_state())
        .map_err(|e| refused(format!("{}: {e}", dir.display())))?;
    let (snap_config, snap) = engine.cluster_config();
    let purged = meta.purged.map(|p| codec::position_of(&p));
    // The last entry, as the log store sees it.
    let last = match engine.last_index() {
        Some(w) if purged.is_none_or(|p| w > p.index) => {
            LogPosition { index: w, term: engine.wal().last_term() }
        }
        _ => purged.filter(|p| p.index >= snap.index).unwrap_or(snap),
    };
    if last.index == 0 && meta.vote.is_none() {
        return Err(refused(format!(
            "{} holds no Raft state (a replica that never joined its cluster): nothing to \
             keep",
            dir.display()
        )));
    }
    if engine.next_index() != last.index + 1 {
        return Err(refused(format!(
            "{}: the log continues at index {}, not after its last entry {}",
            dir.display(),
            engine.next_index(),
            last.index
        )));
    }
    // The committed index it knows: the commit hint checked against the log (the
    // entry there must have the hint's term), or the snapshot.
    let mut commit = snap.index;
    if let Some(h) = engine.commit_hint() {
        let w = h.index.min(last.index);
        if w > commit && engine.first_index().is_some_and(|f| w >= f) {
            let e = engine.read_range(w..w + 1)?;
            if e.first().is_some_and(|x| w != h.index || x.term == h.term) {
                commit = w;
            }
        }
    }
    // The last membership it holds: the newest config entry in the log, else the
    // snapshot's.
    let mut config = snap_config;
    let first = engine.first_index().unwrap_or(last.index + 1).max(snap.index + 1);
    let mut uncertain_terms: Vec<[u64; 2]> = Vec::new();
    if first <= last.index {
        for e in engine.read_range(first..last.index + 1)? {
            if let Some(c) = parse_config_entry(&e.payload) {
                config = c.to_vec();
            }
            if e.index > commit && uncertain_terms.last().is_none_or(|t| t[1] != e.term) {
                uncertain_terms.push([e.index, e.term]);
            }
        }
    }
    let old = codec::stored_membership(&config)
        .map_err(|e| refused(format!("{}: its membership: {e}", dir.display())))?;
    let old_m = old.membership();
    let old_voters: Vec<u64> = old_m.voter_ids().collect();
    let old_learners: Vec<u64> = old_m.learner_ids().collect();
    let nodes: BTreeMap<NodeId, BasicNode> =
        old_m.nodes().map(|(id, n)| (*id, n.clone())).collect();
    if !nodes.contains_key(&node) {
        return Err(refused(format!(
            "node {node} is not in the last membership {} holds ({:?}): it cannot lead it",
            dir.display(),
            nodes.keys().collect::<Vec<_>>()
        )));
    }
    let voters: BTreeSet<NodeId> = [node].into();
    let learners: Vec<u64> = nodes.keys().copied().filter(|n| *n != node).collect();
    let new_m = Membership::new(vec![voters.clone()], nodes);

    let term = meta.vote.map_or(0, |v| v.leader_id.term).max(last.term) + 1;
    let index = last.index + 1;
    let entry =
        Entry { log_id: codec::log_id(term, index - 1), payload: EntryPayload::Membership(new_m) };
    let payload = codec::encode_payload(&entry);
    engine.append(&[EntryRef { index, term, payload: &payload }])?;
    engine.sync()?;
    let vote = Vote::new(term, node);
    engine.set_server_state(&RaftMeta { vote: Some(vote), purged: meta.purged }.encode())?;
    engine.set_commit_hint(LogPosition { index, term })?;
    let cluster = new_cluster_id(&old_cluster, node, index, term);
    write_identity(&*fs, dir, &cluster, node)?;
    let marker = dir.join(REJOIN_FILE);
    let was_rebuilding = marker.exists();
    if was_rebuilding {
        std::fs::remove_file(&marker)
            .and_then(|_| std::fs::File::open(dir)?.sync_all())
            .map_err(|source| keeperkit_storage::StorageError::Io { path: marker, source })?;
    }
    let uncertain_count = last.index.saturating_sub(commit);
    Ok(ForceReport {
        dir: dir.display().to_string(),
        node,
        old_cluster,
        cluster,
        last_index: last.index,
        last_term: last.term,
        commit_index: commit,
        snapshot_index: snap.index,
        uncertain_first: (uncertain_count > 0).then_some(commit + 1),
        uncertain_last: (uncertain_count > 0).then_some(last.index),
        uncertain_count,
        uncertain_terms,
        old_voters,
        old_learners,
        membership_index: index,
        membership_term: term,
        voters: voters.into_iter().collect(),
        learners,
        was_rebuilding,
    })
}

/// The membership in a replica's cluster-config bytes (the engine's cluster config or
/// a config entry's payload), for `keeperkit_storage::replicas::compare_with`: the
/// epoch as the files index it (openraft's index plus one), voters and learners.
pub fn describe_membership(config: &[u8]) -> Option<keeperkit_storage::replicas::Membership> {
    let (id, m) = codec::decode_membership(config).ok()?;
    let id = id?;
    Some(keeperkit_storage::replicas::Membership {
        index: id.index + 1,
        term: id.leader_id.term,
        voters: m.voter_ids().collect(),
        learners: m.learner_ids().collect(),
    })
}
