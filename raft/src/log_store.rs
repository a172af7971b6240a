//! openraft's `RaftLogStorage` over the native engine's log.

use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;

use keeperkit_storage::engine::NativeEngine;
use keeperkit_storage::traits::{EntryRef, LogStore, SnapshotStore};
use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{LogId, LogState, OptionalSend, RaftLogReader, StorageIOError, Vote};

use crate::codec::{self, RaftMeta};
use crate::{blocking, engine_err, io_err, Entry, KeeperRaft, NodeId, StoreError};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// State shared by the log store and its readers.
struct Shared {
    engine: NativeEngine,
    /// The vote and the purge point, as last persisted.
    meta: Mutex<RaftMeta>,
}

impl Shared {
    fn purged(&self) -> Option<LogId<NodeId>> {
        lock(&self.meta).purged
    }

    /// The entries with Raft indexes in `range` that are still in the log (purged
    /// ones excluded), in order.
    fn entries(&self, range: impl RangeBounds<u64>) -> Result<Vec<Entry>, StoreError> {
        let start = match range.start_bound() {
            Bound::Included(&s) => s,
            Bound::Excluded(&s) => s.saturating_add(1),
            Bound::Unbounded => 0,
        };
        let end = match range.end_bound() {
            Bound::Included(&e) => e.saturating_add(1),
            Bound::Excluded(&e) => e,
            Bound::Unbounded => u64::MAX,
        };
        let e = &self.engine;
        let Some(first_w) = e.first_index() else {
            return Ok(Vec::new());
        };
        // Raft index r is WAL index r + 1.
        let mut lo = start.max(first_w - 1);
        if let Some(p) = self.purged() {
            lo = lo.max(p.index + 1);
        }
        let hi = end.min(e.next_index() - 1);
        if lo >= hi {
            return Ok(Vec::new());
        }
        let read = e.read_range(lo + 1..hi + 1).map_err(engine_err(StorageIOError::read_logs))?;
        read.iter()
            .map(|x| {
                codec::decode_entry(x.index, x.term, &x.payload)
                    .map_err(|d| io_err(StorageIOError::read_logs, d))
            })
            .collect()
    }
}

/// A reader of the log, for openraft's replication tasks.
#[derive(Clone)]
pub struct KeeperLogReader {
    shared: Arc<Shared>,
}

impl RaftLogReader<KeeperRaft> for KeeperLogReader {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StoreError> {
        self.shared.entries(range)
    }
}

enum FlushMsg {
    /// Call back once everything written so far is durable.
    Flushed(LogFlushed<KeeperRaft>),
    /// Answer once every earlier message is done.
    Barrier(tokio::sync::oneshot::Sender<()>),
}

/// The thread that makes appended entries durable and acknowledges them: it takes
/// every request queued, runs one `sync` for all of them (the WAL's group commit),
/// and calls the callbacks in order.
struct Flusher {
    tx: Option<mpsc::Sender<FlushMsg>>,
    thread: Option<JoinHandle<()>>,
}

impl Flusher {
    fn start(engine: NativeEngine) -> Result<Flusher, StoreError> {
        let (tx, rx) = mpsc::channel::<FlushMsg>();
        let thread = std::thread::Builder::new()
            .name("keeperkit-raft-flush".into())
            .spawn(move || {
                while let Ok(first) = rx.recv() {
                    let mut batch = vec![first];
                    batch.extend(rx.try_iter());
                    let needs_sync = batch.iter().any(|m| matches!(m, FlushMsg::Flushed(_)));
                    let result =
                        if needs_sync { engine.sync().map_err(|e| e.to_string()) } else { Ok(()) };
                    for m in batch {
                        match m {
                            FlushMsg::Flushed(cb) => {
                                cb.log_io_completed(result.clone().map_err(std::io::Error::other))
                            }
                            FlushMsg::Barrier(tx) => {
                                let _ = tx.send(());
                            }
                        }
                    }
                }
            })
            .map_err(|e| {
                io_err(StorageIOError::write_logs, format!("cannot start the flusher: {e}"))
            })?;
        Ok(Flusher { tx: Some(tx), thread: Some(thread) })
    }

    fn send(&self, m: FlushMsg) -> Result<(), StoreError> {
        self.tx
            .as_ref()
            .and_then(|tx| tx.send(m).ok())
            .ok_or_else(|| io_err(StorageIOError::write_logs, "the flusher has stopped"))
    }

    /// Waits until every append before this call is durable and acknowledged (openraft
    /// requires log writes, votes included, to complete in order).
    async fn barrier(&self) -> Result<(), StoreError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.send(FlushMsg::Barrier(tx))?;
        rx.await.map_err(|_| io_err(StorageIOError::write_logs, "the flusher has stopped"))
    }
}

impl Drop for Flusher {
    fn drop(&mut self) {
        self.tx.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// openraft's log storage on a [`NativeEngine`] (see the crate docs).
pub struct KeeperLogStore {
    shared: Arc<Shared>,
    flusher: Flusher,
}

impl KeeperLogStore {
    /// The log store of an opened engine. Reconciles the recorded purge point with
    /// the engine: after a crash between a snapshot install (which resets the log)
    /// and recording the purge, or when the engine fell back to an older snapshot, the
    /// purge point becomes the snapshot the state starts from.
    pub(crate) fn new(engine: NativeEngine) -> Result<KeeperLogStore, StoreError> {
        let mut meta = RaftMeta::decode(&engine.server_state())
            .map_err(|e| io_err(StorageIOError::read_vote, e))?;
        let (_, applied) = engine.cluster_config();
        let snapshot = codec::log_id_of(applied);
        let physical = engine.wal().purged_index(); // WAL entries up to it are gone
        let below_physical = physical > 0 && meta.purged.is_none_or(|p| p.index + 1 < physical);
        let beyond_state = meta.purged.is_some_and(|p| Some(p) > snapshot);
        if below_physical || beyond_state {
            meta.purged = snapshot;
            engine.set_server_state(&meta.encode()).map_err(engine_err(StorageIOError::write))?;
        }
        let flusher = Flusher::start(engine.clone())?;
        Ok(KeeperLogStore { shared: Arc::new(Shared { engine, meta: Mutex::new(meta) }), flusher })
    }

    /// The engine underneath (shared with the state machine).
    pub fn engine(&self) -> &NativeEngine {
        &self.shared.engine
    }

    async fn persist(&self, meta: RaftMeta) -> Result<(), StoreError> {
        let shared = self.shared.clone();
        blocking(move || {
            shared
                .engine
                .set_server_state(&meta.encode())
                .map_err(engine_err(StorageIOError::write_vote))?;
            *lock(&shared.meta) = meta;
            Ok(())
        })
        .await
    }
}

impl RaftLogReader<KeeperRaft> for KeeperLogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StoreError> {
        self.shared.entries(range)
    }
}

impl RaftLogStorage<KeeperRaft> for KeeperLogStore {
    type LogReader = KeeperLogReader;

    async fn get_log_state(&mut self) -> Result<LogState<KeeperRaft>, StoreError> {
        let e = &self.shared.engine;
        let purged = self.shared.purged();
        let last = match e.last_index() {
            Some(w) if purged.is_none_or(|p| w - 1 > p.index) => {
                Some(codec::log_id(e.wal().last_term(), w - 1))
            }
            _ => purged,
        };
        Ok(LogState { last_purged_log_id: purged, last_log_id: last })
    }

    async fn get_log_reader(&mut self) -> KeeperLogReader {
        KeeperLogReader { shared: self.shared.clone() }
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<(), StoreError> {
        self.flusher.barrier().await?;
        let meta = RaftMeta { vote: Some(*vote), ..*lock(&self.shared.meta) };
        self.persist(meta).await
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, StoreError> {
        Ok(lock(&self.shared.meta).vote)
    }

    /// Recorded in the engine's commit hint: one small write, never synced.
    async fn save_committed(&mut self, committed: Option<LogId<NodeId>>) -> Result<(), StoreError> {
        match committed {
            Some(c) => self
                .shared
                .engine
                .set_commit_hint(codec::position_of(&c))
                .map_err(engine_err(StorageIOError::write)),
            None => Ok(()),
        }
    }

    /// The commit hint, checked against the log: the hint may be stale (fine: a lower
    /// committed index is still committed) or, after a crash, ahead of the durable log
    /// (its write reached the disk, the entries' did not). Entries of the log at or
    /// below a committed index are the committed ones (a committed entry is never
    /// truncated and truncations are durable), so the answer is the log's entry at
    /// `min(hint, last index)`, if its term matches the hint's where they coincide.
    async fn read_committed(&mut self) -> Result<Option<LogId<NodeId>>, StoreError> {
        let e = &self.shared.engine;
        let (Some(h), Some(first), Some(last)) = (e.commit_hint(), e.first_index(), e.last_index())
        else {
            return Ok(None);
        };
        let w = h.index.min(last);
        if w < first || self.shared.purged().is_some_and(|p| w - 1 <= p.index) {
            return Ok(None);
        }
        let entry = e.read_range(w..w + 1).map_err(engine_err(StorageIOError::read_logs))?;
        Ok(entry
            .first()
            .filter(|x| w != h.index || x.term == h.term)
            .map(|x| codec::log_id(x.term, w - 1)))
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<KeeperRaft>,
    ) -> Result<(), StoreError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let batch: Vec<(u64, u64, Vec<u8>)> = entries
            .into_iter()
            .map(|x| {
                let pos = codec::position_of(&x.log_id);
                (pos.index, pos.term, codec::encode_payload(&x))
            })
            .collect();
        if !batch.is_empty() {
            let shared = self.shared.clone();
            blocking(move || {
                let e = &shared.engine;
                let first = batch[0].0;
                let next = e.next_index();
                if first > next {
                    // Appending past the end: only onto a log whose every entry is
                    // purged (after a snapshot install; openraft's own tests also start
                    // logs at any index). The WAL then continues at `first`.
                    let purged = shared.purged();
                    let all_purged =
                        e.last_index().is_none_or(|l| purged.is_some_and(|p| l - 1 <= p.index));
                    if !all_purged {
                        return Err(io_err(
                            StorageIOError::write_logs,
                            format!(
                                "entry {} would leave a hole after entry {}",
                                first - 1,
                                next - 2
                            ),
                        ));
                    }
                    e.purge_prefix(first - 1).map_err(engine_err(StorageIOError::write_logs))?;
                }
                let refs: Vec<EntryRef<'_>> = batch
                    .iter()
                    .map(|(index, term, payload)| EntryRef { index: *index, term: *term, payload })
                    .collect();
                e.append(&refs).map_err(engine_err(StorageIOError::write_logs))
            })
            .await?;
        }
        self.flusher.send(FlushMsg::Flushed(callback))
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> Result<(), StoreError> {
        self.flusher.barrier().await?;
        let shared = self.shared.clone();
        blocking(move || {
            shared
                .engine
                .truncate_suffix(log_id.index + 1)
                .map_err(engine_err(StorageIOError::write_logs))
        })
        .await
    }

    /// Records the purge point durably; the WAL itself is purged only up to the oldest
    /// snapshot the engine keeps (so that the engine can fall back to it), the rest
    /// when later snapshots retire it.
    async fn purge(&mut self, log_id: LogId<NodeId>) -> Result<(), StoreError> {
        if self.shared.purged() >= Some(log_id) {
            return Ok(());
        }
        self.flusher.barrier().await?;
        let meta = RaftMeta { purged: Some(log_id), ..*lock(&self.shared.meta) };
        self.persist(meta).await?;
        let shared = self.shared.clone();
        blocking(move || {
            let e = &shared.engine;
            let snaps = e.list_snapshots().map_err(engine_err(StorageIOError::read))?;
            let oldest = snaps.first().map_or(0, |s| s.position.index);
            let target = (log_id.index + 1).min(oldest);
            if target > e.wal().purged_index() {
                e.purge_prefix(target).map_err(engine_err(StorageIOError::write_logs))?;
            }
            Ok(())
        })
        .await
    }
}
