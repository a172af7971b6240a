//! The storage traits a Keeper server programs against (DESIGN.md, "The storage trait").
//!
//! Three facets, each its own trait, and [`Storage`] = all three plus the report of
//! what opening did:
//!
//! - [`LogStore`]: the replicated log — append a batch of `(index, term, payload)`
//!   entries (durable when the call returns, as the engine's sync policy says), read a
//!   range, first/last index, truncate a conflicting suffix, purge a prefix after a
//!   snapshot, persist the term and vote.
//! - [`StateMachine`]: apply a committed entry to the znode tree and get the ZooKeeper
//!   result back; read queries (get, children, exists/stat, ACL) on the live tree; an
//!   O(1) copy-on-write view of it.
//! - [`SnapshotStore`]: start a snapshot in O(1) (a view) that is serialized in the
//!   background while writes continue; list; read one (to send to a peer); install one
//!   received from a peer; keep the newest N.
//!
//! # Design choice: object safe, `&self` everywhere
//!
//! Every method takes `&self` and no generic parameters, so `Arc<dyn Storage>` works:
//! a server (or the openraft adapter of issue 7) can hold one storage handle, share it
//! between its log task, its apply task and its snapshot task, and tests can swap in
//! another implementation. The engines synchronise internally (a log writer lock, a
//! tree lock held only for one apply or one O(1) clone, a snapshot lock). The cost is
//! one virtual call per batch, which is nothing next to an fsync. openraft's own
//! traits are `async` and take `&mut self`; its adapter wraps an `Arc<dyn Storage>` (or
//! is generic over `S: Storage`, both work) and runs the blocking calls on a blocking
//! thread.
//!
//! # Entry payloads
//!
//! The payload of a log entry is one ZooKeeper txn in its jute encoding
//! ([`keeperkit_model::Txn::to_bytes`]): header (session, cxid, zxid, time, type),
//! body, optional digest. The zxid travels inside the txn; the log index and term are
//! the log's own. An empty payload is a no-op entry (a Raft leader's blank entry or a
//! membership change the server keeps elsewhere): applying it only advances the
//! applied index.

use std::io::Read;
use std::ops::Range;
use std::path::PathBuf;

use keeperkit_model::{Acl, Stat, Zxid};
use keeperkit_tree::{DataTree, TxnResult};

pub use keeperkit_wal::native::{Entry, EntryRef, HardState};

use crate::engine::OpenReport;
use crate::StorageError;

/// A position in the log: index and term of an entry (0/0 before the first).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LogPosition {
    /// Log index.
    pub index: u64,
    /// Term of the entry at that index.
    pub term: u64,
}

/// The replicated log.
pub trait LogStore: Send + Sync {
    /// Appends a batch: the first entry must have index [`LogStore::next_index`] and
    /// the batch must be contiguous. Durable when the call returns under the engine's
    /// sync policy (`Always`, `GroupCommit`); limits are checked before anything is
    /// written.
    fn append(&self, entries: &[EntryRef<'_>]) -> Result<(), StorageError>;
    /// The entries with indexes in `range` (within `first_index()..next_index()`).
    fn read_range(&self, range: Range<u64>) -> Result<Vec<Entry>, StorageError>;
    /// First index still in the log, if any.
    fn first_index(&self) -> Option<u64>;
    /// Last index in the log, if any.
    fn last_index(&self) -> Option<u64>;
    /// The index the next append must start with.
    fn next_index(&self) -> u64;
    /// Removes every entry at or after `from` (conflicting entries), durably.
    fn truncate_suffix(&self, from: u64) -> Result<(), StorageError>;
    /// Purges every entry up to and including `upto`, durably. Purging at or past the
    /// last index empties the log, which then continues at `upto + 1`.
    fn purge_prefix(&self, upto: u64) -> Result<(), StorageError>;
    /// The persisted term and vote.
    fn hard_state(&self) -> HardState;
    /// Persists term and vote; durable when the call returns.
    fn set_hard_state(&self, hs: HardState) -> Result<(), StorageError>;
    /// Makes every appended entry durable (for the `Never` sync policy).
    fn sync(&self) -> Result<(), StorageError>;
}

/// A node as a read returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeData {
    /// The data (`None`: ZooKeeper's null value).
    pub data: Option<Vec<u8>>,
    /// The stat as a client sees it.
    pub stat: Stat,
}

/// The znode tree, fed by committed entries.
pub trait StateMachine: Send + Sync {
    /// Applies one committed entry: its index must be the applied index + 1. Its
    /// payload is a jute txn (or empty: a no-op). Returns ZooKeeper's result. The
    /// entry must already be in the log (the engine does not log it again).
    fn apply(&self, entry: EntryRef<'_>) -> Result<TxnResult, StorageError>;
    /// Index and term of the last applied entry.
    fn applied(&self) -> LogPosition;
    /// The last zxid applied (`lastProcessedZxid`).
    fn last_zxid(&self) -> Zxid;
    /// `getData`: data and stat.
    fn get(&self, path: &str) -> Option<NodeData>;
    /// `getChildren`: child names, sorted.
    fn children(&self, path: &str) -> Option<Vec<String>>;
    /// `exists`: the stat, if the node exists.
    fn exists(&self, path: &str) -> Option<Stat>;
    /// `getACL`: the ACL list and the stat.
    fn acl(&self, path: &str) -> Option<(Vec<Acl>, Stat)>;
    /// An O(1) copy-on-write view of the live tree and the position it reflects; it
    /// stays consistent however long it is held.
    fn view(&self) -> (DataTree, LogPosition);
}

/// A snapshot file the store holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotInfo {
    /// The file.
    pub path: PathBuf,
    /// Index and term of the last entry it covers.
    pub position: LogPosition,
    /// The zxid of the tree in it.
    pub zxid: Zxid,
    /// Nodes in it.
    pub node_count: u64,
    /// File length in bytes.
    pub file_len: u64,
}

/// A snapshot being serialized in the background ([`SnapshotStore::start_snapshot`]).
#[derive(Debug)]
pub struct SnapshotTicket {
    /// The position the snapshot holds (taken in O(1) when it started).
    pub position: LogPosition,
    pub(crate) handle: Option<std::thread::JoinHandle<Result<SnapshotInfo, StorageError>>>,
    pub(crate) ready: Option<SnapshotInfo>,
}

impl SnapshotTicket {
    /// Whether the background work is over (the result is then available at once).
    pub fn is_finished(&self) -> bool {
        self.handle.as_ref().is_none_or(|h| h.is_finished())
    }

    /// Waits for the snapshot to be durable (and older ones retired) and returns it.
    pub fn wait(mut self) -> Result<SnapshotInfo, StorageError> {
        if let Some(info) = self.ready.take() {
            return Ok(info);
        }
        match self.handle.take() {
            Some(h) => h.join().unwrap_or_else(|_| {
                Err(StorageError::Usage("the snapshot thread panicked".into()))
            }),
            None => Err(StorageError::Usage("the snapshot result was already taken".into())),
        }
    }
}

/// Snapshots of the state machine.
pub trait SnapshotStore: Send + Sync {
    /// Takes an O(1) view of the tree at the applied position and serializes it on a
    /// background thread while writes continue. When the snapshot is durable, older
    /// ones beyond the newest [`SnapshotStore::keep_snapshots`] are removed and (when
    /// the engine is set to) the log prefix the oldest kept snapshot covers is purged.
    fn start_snapshot(&self) -> Result<SnapshotTicket, StorageError>;
    /// The snapshots on disk, oldest first (by name; not verified).
    fn list_snapshots(&self) -> Result<Vec<SnapshotInfo>, StorageError>;
    /// The bytes of the snapshot covering `index` (to send to a peer).
    fn snapshot_bytes(&self, index: u64) -> Result<Vec<u8>, StorageError>;
    /// Installs a snapshot received from a peer: the bytes are written to a temporary
    /// file, fsynced and validated (every checksum, node count, digest) before being
    /// published atomically; then the live tree is replaced and the log reset so that
    /// it continues after the snapshot (Raft's rule: a log entry matching the
    /// snapshot's last index and term keeps the entries after it).
    fn install_snapshot(&self, bytes: &mut dyn Read) -> Result<SnapshotInfo, StorageError>;
    /// How many snapshots are kept.
    fn keep_snapshots(&self) -> usize;
}

/// The whole storage: log, state machine and snapshots, and what opening it did.
pub trait Storage: LogStore + StateMachine + SnapshotStore {
    /// What recovery did when the store was opened.
    fn open_report(&self) -> &OpenReport;
}
