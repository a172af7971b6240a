//! openraft's `RaftStateMachine` over the native engine's tree and snapshots.

use std::io::Cursor;
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};

use keeperkit_model::Txn;

use keeperkit_storage::engine::NativeEngine;
use keeperkit_storage::traits::{
    EntryRef, SnapshotInfo, SnapshotStore, SnapshotTicket, StateMachine,
};
use keeperkit_tree::TxnResult;
use openraft::storage::RaftStateMachine;
use openraft::{
    BasicNode, EntryPayload, LogId, OptionalSend, RaftSnapshotBuilder, Snapshot, SnapshotMeta,
    StorageIOError, StoredMembership,
};

use crate::codec::{self};
use crate::{blocking, engine_err, io_err, Entry, KeeperRaft, NodeId, StoreError};

/// openraft's state machine on a [`NativeEngine`] (see the crate docs).
#[derive(Clone)]
pub struct KeeperStateMachine {
    engine: NativeEngine,
    observer: Arc<Mutex<Option<Sender<Applied>>>>,
}

/// What the state machine tells its observer ([`KeeperStateMachine::observe`]), in
/// apply order, once the engine has applied it.
#[derive(Debug, Clone)]
pub enum Applied {
    /// The txns of the entry at Raft index `index`, applied in this order.
    Txns {
        /// The entry's Raft index.
        index: u64,
        /// The txns.
        txns: Vec<Txn>,
    },
    /// A blank or membership entry at Raft index `index`.
    Other {
        /// The entry's Raft index.
        index: u64,
    },
    /// A snapshot replaced the whole tree.
    Installed,
}

impl KeeperStateMachine {
    pub(crate) fn new(engine: NativeEngine) -> KeeperStateMachine {
        KeeperStateMachine { engine, observer: Arc::default() }
    }

    /// Sends every applied entry to `tx` from now on (one observer; a new one replaces
    /// it). A server mirrors the tree with it to fire watches and answer clients after
    /// their txn is applied.
    pub fn observe(&self, tx: Sender<Applied>) {
        *self.observer.lock().unwrap_or_else(|e| e.into_inner()) = Some(tx);
    }

    /// Stops telling the observer: its receiver sees the channel closed once it has
    /// taken what was sent (a server that stops waits for its applier this way).
    pub fn stop_observing(&self) {
        *self.observer.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    fn tell(&self, a: Applied) {
        let mut o = self.observer.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(tx) = o.as_ref() {
            if tx.send(a).is_err() {
                *o = None;
            }
        }
    }

    /// The engine underneath: reads (`get`, `children`, `exists`, `acl` of
    /// [`StateMachine`]) and views of the live tree.
    pub fn engine(&self) -> &NativeEngine {
        &self.engine
    }

    fn membership(config: &[u8]) -> Result<StoredMembership<NodeId, BasicNode>, StoreError> {
        codec::stored_membership(config).map_err(|e| io_err(StorageIOError::read_state_machine, e))
    }
}

/// The openraft snapshot of the engine's snapshot `info`: its bytes, and metadata
/// read from the file (last log id, membership). The id names the position and the
/// bytes (CRC-32), so two nodes holding the same file agree on it.
fn snapshot_of(
    engine: &NativeEngine,
    info: &SnapshotInfo,
) -> Result<Snapshot<KeeperRaft>, StoreError> {
    let read = |e| engine_err(StorageIOError::read)(e);
    let bytes = engine.snapshot_bytes(info.position.index).map_err(read)?;
    let config = engine.snapshot_cluster_config(info.position.index).map_err(read)?;
    let last_membership = KeeperStateMachine::membership(&config)?;
    let snapshot_id =
        format!("{}-{}-{:08x}", info.position.index, info.position.term, crc32fast::hash(&bytes));
    Ok(Snapshot {
        meta: SnapshotMeta {
            last_log_id: codec::log_id_of(info.position),
            last_membership,
            snapshot_id,
        },
        snapshot: Box::new(Cursor::new(bytes)),
    })
}

/// Builds a snapshot from the O(1) view taken when it was created
/// ([`RaftStateMachine::get_snapshot_builder`]); the file is written on the engine's
/// snapshot thread meanwhile.
pub struct KeeperSnapshotBuilder {
    engine: NativeEngine,
    ticket: Option<Result<SnapshotTicket, String>>,
}

impl RaftSnapshotBuilder<KeeperRaft> for KeeperSnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<KeeperRaft>, StoreError> {
        let ticket = self
            .ticket
            .take()
            .unwrap_or_else(|| Err("this builder already built its snapshot".into()))
            .map_err(|e| io_err(StorageIOError::write, e))?;
        let engine = self.engine.clone();
        blocking(move || {
            let info = ticket.wait().map_err(engine_err(StorageIOError::write))?;
            snapshot_of(&engine, &info)
        })
        .await
    }
}

impl RaftStateMachine<KeeperRaft> for KeeperStateMachine {
    type SnapshotBuilder = KeeperSnapshotBuilder;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<NodeId>>, StoredMembership<NodeId, BasicNode>), StoreError> {
        let (config, applied) = self.engine.cluster_config();
        Ok((codec::log_id_of(applied), Self::membership(&config)?))
    }

    /// Applies each entry to the tree (its txns, in order: one result each) or the
    /// cluster config (a membership); a blank entry only advances the applied log id. openraft's storage tests apply
    /// entries with gaps before them (a real cluster never does): the indexes skipped
    /// are applied as no-ops.
    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Vec<TxnResult>>, StoreError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut out = Vec::new();
        for entry in entries {
            let pos = codec::position_of(&entry.log_id);
            let applied = self.engine.applied().index;
            let log_id = entry.log_id;
            let fail = |e: keeperkit_storage::StorageError| -> StoreError {
                StorageIOError::apply(log_id, openraft::AnyError::new(&e)).into()
            };
            if pos.index <= applied {
                return Err(io_err(
                    StorageIOError::write_state_machine,
                    format!(
                        "entry {} is already applied (applied up to {})",
                        entry.log_id, applied
                    ),
                ));
            }
            for index in applied + 1..pos.index {
                self.engine
                    .apply(EntryRef { index, term: pos.term, payload: &[] })
                    .map_err(fail)?;
            }
            let payload = match &entry.payload {
                EntryPayload::Normal(_) | EntryPayload::Membership(_) => {
                    codec::encode_payload(&entry)
                }
                EntryPayload::Blank => Vec::new(),
            };
            let r = self
                .engine
                .apply_entry(EntryRef { index: pos.index, term: pos.term, payload: &payload })
                .map_err(fail)?;
            out.push(r);
            match entry.payload {
                EntryPayload::Normal(txns) => {
                    self.tell(Applied::Txns { index: log_id.index, txns })
                }
                _ => self.tell(Applied::Other { index: log_id.index }),
            }
        }
        Ok(out)
    }

    async fn get_snapshot_builder(&mut self) -> KeeperSnapshotBuilder {
        // The view is taken here, in O(1); the file is written in the background.
        let ticket = self.engine.start_snapshot().map_err(|e| e.to_string());
        KeeperSnapshotBuilder { engine: self.engine.clone(), ticket: Some(ticket) }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StoreError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    /// Writes the received bytes to a temporary file, validates every CRC, the node
    /// count and the digest, publishes the snapshot, replaces the tree and resets the
    /// log to continue after it (the engine's install), then checks that the snapshot
    /// is the one `meta` describes.
    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, BasicNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StoreError> {
        let engine = self.engine.clone();
        let bytes = snapshot.into_inner();
        let info = blocking(move || {
            engine
                .install_snapshot(&mut bytes.as_slice())
                .map_err(engine_err(StorageIOError::write_state_machine))
        })
        .await?;
        if codec::log_id_of(info.position) != meta.last_log_id {
            return Err(io_err(
                StorageIOError::write_state_machine,
                format!(
                    "the installed snapshot ends at {:?}, its metadata says {:?}",
                    codec::log_id_of(info.position),
                    meta.last_log_id
                ),
            ));
        }
        self.tell(Applied::Installed);
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<KeeperRaft>>, StoreError> {
        let engine = self.engine.clone();
        blocking(move || {
            let snaps = engine.list_snapshots().map_err(engine_err(StorageIOError::read))?;
            snaps.last().map(|info| snapshot_of(&engine, info)).transpose()
        })
        .await
    }
}
