//! keeperkit as an [openraft](https://docs.rs/openraft/0.9) store.
//!
//! [`open`] opens a native data directory ([`NativeEngine`]) and returns the two halves
//! openraft 0.9's storage API (`storage-v2`) asks for:
//!
//! - [`KeeperLogStore`] (`RaftLogStorage`): entries go to the native WAL, the vote and
//!   the purge point to the engine's durable `server-state` file, the committed log id
//!   to its unsynced `commit-hint` file (checked against the log when read back).
//!   `append` writes the batch and returns; a flusher thread makes it durable (one
//!   `fsync` for every batch written meanwhile: group commit) and only then calls
//!   openraft's callback.
//! - [`KeeperStateMachine`] (`RaftStateMachine`): committed entries are applied to the
//!   engine's copy-on-write znode tree (the ZooKeeper txns of a `Normal` entry, in
//!   order; membership entries become the engine's cluster config). Snapshots are native snapshots taken
//!   from an O(1) view of the tree and written in the background; they carry the last
//!   applied log id and the membership. Snapshots are sent and received as the bytes
//!   of the snapshot file (openraft streams them in chunks); an installed snapshot is
//!   validated (every CRC, node count, digest) before it replaces anything.
//!
//! The type configuration is [`KeeperRaft`]: `D` = `Vec<`[`Txn`]`>` (a batch of
//! ZooKeeper txns, one entry for all: a server proposes each batch of its committer as
//! one entry), `R` = `Vec<`[`TxnResult`]`>` (one per txn), node ids `u64`, [`BasicNode`], and
//! openraft's `single-term-leader` feature (standard Raft log ids `(term, index)`,
//! exactly what a WAL entry records). [`codec`] documents every stored byte.
//!
//! The state machine is not persisted on apply: opening starts from the newest
//! snapshot ([`Replay::None`]) and openraft re-applies the committed entries after it
//! (up to the committed log id read back from the commit hint), which is openraft's
//! "persistent snapshot" mode.

// openraft's `StorageError` (what every storage trait method returns) is large; the
// helpers here return it too.
#![allow(clippy::result_large_err)]

use std::io::Cursor;
use std::sync::Arc;

use keeperkit_model::Txn;
use keeperkit_storage::engine::{NativeEngine, NativeEngineOptions, Replay};
use keeperkit_tree::TxnResult;
use keeperkit_vfs::FileSystem;
use keeperkit_wal::native::SyncPolicy;
use openraft::{AnyError, BasicNode, StorageError, StorageIOError};

pub mod codec;
mod log_store;
pub mod net;
pub mod offline;
mod state_machine;

pub use log_store::{KeeperLogReader, KeeperLogStore};
pub use state_machine::{Applied, KeeperSnapshotBuilder, KeeperStateMachine};

openraft::declare_raft_types!(
    /// openraft's type configuration for a Keeper server on keeperkit storage.
    pub KeeperRaft:
        D = Vec<Txn>,
        R = Vec<TxnResult>,
        NodeId = u64,
        Node = BasicNode,
        Entry = openraft::Entry<KeeperRaft>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

/// Node ids.
pub type NodeId = u64;
/// A Raft log entry.
pub type Entry = openraft::Entry<KeeperRaft>;
/// A running Raft node.
pub type Raft = openraft::Raft<KeeperRaft>;
/// openraft's storage error.
pub type StoreError = StorageError<NodeId>;

/// Engine options for a Raft store in `dir`: appends are written without waiting
/// ([`SyncPolicy::Never`]; the log store's flusher syncs before it acknowledges), no
/// replay on open (openraft re-applies committed entries), the log purged only when
/// openraft asks, 2 snapshots kept. Other fields keep the engine's defaults.
pub fn engine_options(dir: impl Into<std::path::PathBuf>) -> NativeEngineOptions {
    let mut o = NativeEngineOptions::new(dir);
    o.sync = SyncPolicy::Never;
    o.replay = Replay::None;
    o.purge_after_snapshot = false;
    o.keep_snapshots = 2;
    o
}

/// Opens (or creates) the data directory `opts.dir` and returns the log store and the
/// state machine to give to `openraft::Raft::new`. `opts.replay` must be
/// [`Replay::None`] (openraft decides what is committed). Blocking: call it before the
/// node starts, or from `spawn_blocking`.
pub fn open(
    fs: Arc<dyn FileSystem>,
    opts: NativeEngineOptions,
) -> Result<(KeeperLogStore, KeeperStateMachine), StoreError> {
    if opts.replay != Replay::None {
        return Err(io_err(
            StorageIOError::read,
            "a Raft store must be opened with Replay::None: only openraft knows what is committed",
        ));
    }
    let engine = NativeEngine::open(fs, opts).map_err(engine_err(StorageIOError::read))?;
    let log = KeeperLogStore::new(engine.clone())?;
    Ok((log, KeeperStateMachine::new(engine)))
}

/// Maps an engine error into an openraft storage error of the given kind.
pub(crate) fn engine_err(
    kind: fn(AnyError) -> StorageIOError<NodeId>,
) -> impl Fn(keeperkit_storage::StorageError) -> StoreError {
    move |e| kind(AnyError::new(&e)).into()
}

/// An openraft storage error of the given kind with a message.
pub(crate) fn io_err(
    kind: fn(AnyError) -> StorageIOError<NodeId>,
    msg: impl ToString,
) -> StoreError {
    kind(AnyError::error(msg)).into()
}

/// Runs blocking engine work (fsyncs) off the async threads.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| Err(io_err(StorageIOError::write, format!("storage task failed: {e}"))))
}
