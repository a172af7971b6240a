//! The native engine: [`NativeEngine`] implements the [storage traits](crate::traits)
//! over a native WAL, native snapshots and a copy-on-write [`DataTree`], in a native
//! data directory ([`layout`]).
//!
//! # Open
//!
//! 1. The directory gets its marker file if it is new (a non-empty directory without
//!    one is refused); `snapshots/` is created; `*.kks.tmp` leftovers of a crash
//!    during a snapshot write or install are removed.
//! 2. The WAL is opened (its recovery cuts a torn tail of the newest segment and
//!    finishes an interrupted purge; see `keeperkit_wal::native`).
//! 3. The newest intact snapshot is loaded (every chunk CRC, the node count and the
//!    digest checked); damaged ones are skipped and reported, falling back to older
//!    ones (the log is only ever purged up to the *oldest* kept snapshot, so the
//!    entries after any kept snapshot are still there).
//! 4. The log is reconciled with the snapshot `S` (index, term): a log that ends
//!    before `S` is reset to continue at `S + 1`; a log whose entry `S` has another
//!    term (a crash during an install, before the log reset) loses its entries; a
//!    log starting after `S + 1` is a gap (error).
//! 5. Entries after `S` are replayed ([`Replay`]).
//!
//! # Snapshots
//!
//! [`SnapshotStore::start_snapshot`] clones the tree under the tree lock (O(1):
//! copy-on-write, writers are blocked for the length of one `Arc` clone) and returns;
//! a background thread writes `snapshots/snap-<index>.kks` (temporary name, fsync,
//! rename, directory fsync), and only when it is durable removes the snapshots beyond
//! the newest `keep` (directory fsync) and purges the log up to the oldest kept one.
//! Snapshot jobs, installs and retention are serialized by one lock. The file is
//! written by a thread of its own at [`NativeEngineOptions::snapshot_priority`]
//! (a server gives it the idle class); the retention that follows runs at the
//! priority of the thread that started the snapshot, so that the log locks a purge
//! takes are never held by a thread the scheduler leaves waiting.
//!
//! ARCHITECTURE.md ("Crash safety of the native engine") argues why a crash at any
//! instant leaves a directory that opens to a state holding every acknowledged entry.

use std::io::Read;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

use keeperkit_model::{Acl, Stat, Zxid};
use keeperkit_snapshot::native::{remove_temp_files, snapshot_file_name, WriteOptions};
use keeperkit_tree::{DataTree, TxnResult};
use keeperkit_vfs::{FileSystem, OpenMode};
use keeperkit_wal::native::{
    NativeWal, NativeWalOptions, RecoveryMode, RecoveryReport as WalRecoveryReport, SyncPolicy,
};

pub mod layout;
pub mod priority;
mod recover;
pub mod server_state;

pub use recover::{
    batch_entry, config_entry, parse_batch_entry, parse_config_entry, recover_readonly,
    recover_readonly_in, recover_readonly_with, ReadOnlyState, ReplayEnd, SkippedSnapshot,
    BATCH_ENTRY_TYPE, CONFIG_ENTRY_HEADER_LEN, CONFIG_ENTRY_TYPE,
};

use crate::native::snapshot::{load_tree, save_tree, SnapshotPosition};
use crate::traits::{
    Entry, EntryRef, HardState, LogPosition, LogStore, NodeData, SnapshotInfo, SnapshotStore,
    SnapshotTicket, StateMachine, Storage,
};
use crate::StorageError;
use layout::{
    io, snapshot_files, snapshot_info, INCOMING_FILE, MARKER_FILE, SNAPSHOT_DIR, WAL_DIR,
};
pub use priority::SnapshotPriority;

/// Which log entries opening replays on top of the snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replay {
    /// Every entry in the log (a log of committed entries: single node, tools, Zab
    /// servers logging only what they commit).
    All,
    /// Entries up to and including this index (a Raft server: its commit index).
    UpTo(u64),
    /// None: the state is the snapshot's; the server re-applies what it knows is
    /// committed.
    None,
}

/// How to open a native engine.
#[derive(Debug, Clone)]
pub struct NativeEngineOptions {
    /// The data directory.
    pub dir: PathBuf,
    /// When appends are durable.
    pub sync: SyncPolicy,
    /// What the WAL does with a torn tail.
    pub recovery: RecoveryMode,
    /// How many snapshots to keep (at least 1).
    pub keep_snapshots: usize,
    /// Purge the log up to the oldest kept snapshot after each snapshot.
    pub purge_after_snapshot: bool,
    /// What opening replays.
    pub replay: Replay,
    /// How snapshots are written.
    pub snapshot_write: WriteOptions,
    /// The CPU priority of the thread that writes a snapshot's file (see
    /// [`priority`]); the thread that asks for the snapshot (a server's committer)
    /// keeps its own.
    pub snapshot_priority: SnapshotPriority,
    /// WAL segment size in bytes.
    pub segment_len: u64,
    /// Preallocate WAL segments.
    pub preallocate: bool,
}

impl NativeEngineOptions {
    /// Defaults: sync every append, tolerate a torn tail, keep 3 snapshots, purge after
    /// each, replay everything, default snapshot and segment settings.
    pub fn new(dir: impl Into<PathBuf>) -> NativeEngineOptions {
        let dir = dir.into();
        let wal = NativeWalOptions::new(dir.join(WAL_DIR));
        NativeEngineOptions {
            dir,
            sync: wal.sync,
            recovery: wal.recovery,
            keep_snapshots: 3,
            purge_after_snapshot: true,
            replay: Replay::All,
            snapshot_write: WriteOptions::default(),
            snapshot_priority: SnapshotPriority::Inherit,
            segment_len: wal.segment_len,
            preallocate: wal.preallocate,
        }
    }

    fn wal_options(&self) -> NativeWalOptions {
        let mut w = NativeWalOptions::new(self.dir.join(WAL_DIR));
        w.sync = self.sync;
        w.recovery = self.recovery;
        w.segment_len = self.segment_len;
        w.preallocate = self.preallocate;
        w
    }
}

/// What opening did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OpenReport {
    /// A new data directory was created.
    pub created: bool,
    /// The snapshot the state starts from (`None`: the initial tree).
    pub snapshot: Option<SnapshotInfo>,
    /// Newer snapshots that were damaged and skipped.
    pub skipped_snapshots: Vec<SkippedSnapshot>,
    /// Temporary snapshot files left by a crash, removed.
    pub removed_temp_files: Vec<PathBuf>,
    /// What the WAL's own recovery did (torn tail cut, leftovers removed).
    pub wal: WalRecoveryReport,
    /// How the log was reconciled with the snapshot, if it had to be.
    pub log_reset: Option<String>,
    /// Entries replayed after the snapshot.
    pub replayed: u64,
    /// The position the state is at after opening.
    pub applied: LogPosition,
    /// A `server-state.tmp` left by a crash was removed.
    pub removed_server_state_tmp: bool,
}

struct Live {
    tree: DataTree,
    applied: LogPosition,
    /// The cluster configuration: the last config entry applied, or the snapshot's.
    config: Vec<u8>,
}

/// The commit hint and, once opened, its file.
type CommitHint = (Option<LogPosition>, Option<Arc<dyn keeperkit_vfs::File>>);

struct Inner {
    fs: Arc<dyn FileSystem>,
    dir: PathBuf,
    snap_dir: PathBuf,
    wal_dir: PathBuf,
    opts: NativeEngineOptions,
    wal: NativeWal,
    live: RwLock<Live>,
    /// Serializes snapshot writing, installing and retention.
    snap_lock: Mutex<()>,
    /// Serializes [`NativeEngine::write`] (append then apply, in index order).
    write_lock: Mutex<()>,
    /// The server state ([`server_state`]), serialized with its writes.
    server_state: Mutex<Vec<u8>>,
    /// The commit hint as read at open, then as last set; and its file once opened.
    commit_hint: Mutex<CommitHint>,
    report: OpenReport,
}

/// The native storage engine; cheap to clone (clones share the engine).
#[derive(Clone)]
pub struct NativeEngine {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for NativeEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NativeEngine").field("dir", &self.inner.dir).finish()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Inner {
    fn read(&self) -> RwLockReadGuard<'_, Live> {
        self.live.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Live> {
        self.live.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Writes the snapshot of `view` at `pos` (unless one with that index exists) on a
    /// thread at [`NativeEngineOptions::snapshot_priority`], then retires old
    /// snapshots on the calling thread. Called with `snap_lock` held.
    fn snapshot_and_retire(
        &self,
        view: &DataTree,
        pos: LogPosition,
        config: Vec<u8>,
    ) -> Result<SnapshotInfo, StorageError> {
        let info = match self.opts.snapshot_priority {
            SnapshotPriority::Inherit => self.write_snapshot(view, pos, config)?,
            p => self.write_snapshot_at(p, view, pos, config)?,
        };
        self.retire()?;
        Ok(info)
    }

    /// [`Inner::write_snapshot`] on a new thread that gives itself `p`; an idle-class
    /// one is raised after its `raise_after` (see [`SnapshotPriority::Idle`]).
    fn write_snapshot_at(
        &self,
        p: SnapshotPriority,
        view: &DataTree,
        pos: LogPosition,
        config: Vec<u8>,
    ) -> Result<SnapshotInfo, StorageError> {
        let (tid_tx, tid_rx) = std::sync::mpsc::channel();
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        std::thread::scope(|s| {
            std::thread::Builder::new()
                .name("keeperkit-snapshot-write".into())
                .spawn_scoped(s, move || {
                    // A refusal (a sandbox) leaves the thread at the priority it
                    // inherited: slower clients while it runs, nothing worse.
                    let _ = priority::lower_current(p);
                    let _ = tid_tx.send(priority::current_thread_id());
                    let _ = done_tx.send(self.write_snapshot(view, pos, config));
                })
                .map_err(io(&self.snap_dir))?;
            let panicked = || StorageError::Usage("the snapshot thread panicked".into());
            let SnapshotPriority::Idle { raise_after } = p else {
                return done_rx.recv().map_err(|_| panicked())?;
            };
            let tid = tid_rx.recv().map_err(|_| panicked())?;
            match done_rx.recv_timeout(raise_after) {
                Ok(r) => r,
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => Err(panicked()),
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                    // Starved: no core was ever idle for long enough. Without the
                    // privilege it stays idle (documented on the option).
                    let _ = priority::raise_from_idle(tid);
                    done_rx.recv().map_err(|_| panicked())?
                }
            }
        })
    }

    /// Writes the snapshot of `view` at `pos` unless one with that index exists.
    fn write_snapshot(
        &self,
        view: &DataTree,
        pos: LogPosition,
        config: Vec<u8>,
    ) -> Result<SnapshotInfo, StorageError> {
        let name = snapshot_file_name(pos.index);
        let path = self.snap_dir.join(&name);
        let info = match snapshot_info(&*self.fs, &path) {
            Ok(existing) if existing.position == pos => existing,
            _ => {
                let sp = SnapshotPosition {
                    last_index: pos.index,
                    last_term: pos.term,
                    cluster_config: config,
                };
                let w = save_tree(
                    &*self.fs,
                    &self.snap_dir,
                    &name,
                    view,
                    &sp,
                    &self.opts.snapshot_write,
                )?;
                SnapshotInfo {
                    path: w.path,
                    position: pos,
                    zxid: view.last_processed_zxid(),
                    node_count: w.node_count,
                    file_len: w.file_len,
                }
            }
        };
        Ok(info)
    }

    /// Keeps the newest `keep` snapshots (the newest is durable when this runs),
    /// removes the others (then fsyncs the directory), and purges the log up to the
    /// oldest kept one. Called with `snap_lock` held.
    fn retire(&self) -> Result<(), StorageError> {
        let files = snapshot_files(&*self.fs, &self.snap_dir)?;
        let keep = self.opts.keep_snapshots.max(1);
        let cut = files.len().saturating_sub(keep);
        for (_, p) in &files[..cut] {
            self.fs.remove_file(p).map_err(io(p))?;
        }
        if cut > 0 {
            self.fs.sync_dir(&self.snap_dir).map_err(io(&self.snap_dir))?;
        }
        if self.opts.purge_after_snapshot {
            if let Some((oldest, _)) = files.get(cut) {
                let upto = (*oldest).min(self.wal.next_index().saturating_sub(1));
                if upto > self.wal.purged_index() {
                    self.wal.purge(upto)?;
                }
            }
        }
        Ok(())
    }
}

impl NativeEngine {
    /// Opens (or creates) the native data directory `opts.dir`; see the module docs.
    pub fn open(
        fs: Arc<dyn FileSystem>,
        opts: NativeEngineOptions,
    ) -> Result<NativeEngine, StorageError> {
        if opts.keep_snapshots == 0 {
            return Err(StorageError::Usage("keep_snapshots must be at least 1".into()));
        }
        let dir = opts.dir.clone();
        let mut report = OpenReport::default();
        if !fs.exists(&dir) {
            fs.create_dir_all(&dir).map_err(io(&dir))?;
            let parent =
                dir.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
            fs.sync_dir(parent).map_err(io(parent))?;
        }
        if !fs.exists(&dir.join(MARKER_FILE)) {
            let entries = fs.read_dir(&dir).map_err(io(&dir))?;
            if !entries.is_empty() {
                return Err(StorageError::NotADataDir {
                    path: dir,
                    what: "keeperkit native data directory",
                    reason: format!("it is not empty and has no {MARKER_FILE} marker file"),
                });
            }
            layout::write_marker(&*fs, &dir)?;
            report.created = true;
        }
        let snap_dir = dir.join(SNAPSHOT_DIR);
        if !fs.exists(&snap_dir) {
            fs.create_dir_all(&snap_dir).map_err(io(&snap_dir))?;
            fs.sync_dir(&dir).map_err(io(&dir))?;
        }
        report.removed_temp_files = remove_temp_files(&*fs, &snap_dir)?;
        report.removed_server_state_tmp = server_state::remove_state_tmp(&*fs, &dir)?;
        let state = server_state::read_state(&*fs, &dir)?;
        let hint = server_state::read_hint(&*fs, &dir);

        let wal_dir = dir.join(WAL_DIR);
        let wal = NativeWal::open(fs.clone(), opts.wal_options())?;
        report.wal = wal.recovery_report().clone();

        let start =
            recover::choose_snapshot(&*fs, &snap_dir, wal.purged_index(), wal.last_index())?;
        let mut tree = start.tree;
        let mut config = start.cluster_config;
        let mut applied = start.position;
        report.snapshot = start.snapshot;
        report.skipped_snapshots = start.skipped;
        let snap_name = report
            .snapshot
            .as_ref()
            .map_or_else(|| "(initial tree)".to_string(), |s| s.path.display().to_string());

        // Reconcile the log with the snapshot.
        let s = applied.index;
        if wal.next_index() <= s {
            report.log_reset = Some(format!(
                "the log ended at index {} before the snapshot's {s}: it now continues at {}",
                wal.next_index().saturating_sub(1),
                s + 1
            ));
            wal.purge(s)?;
        } else if let Some(first) = wal.first_index() {
            if first > s + 1 {
                return Err(StorageError::Gap {
                    snapshot: snap_name,
                    snapshot_index: s,
                    log_first: first,
                });
            }
            if s > 0 && first <= s {
                let term = wal.read(s)?.term;
                if term != applied.term {
                    report.log_reset = Some(format!(
                        "log entry {s} has term {term}, the snapshot's has term {}: the log's \
                         entries from {first} on were from another history and were removed",
                        applied.term
                    ));
                    wal.truncate_suffix(first)?;
                    wal.purge(s)?;
                }
            }
        }
        let last = wal.next_index().saturating_sub(1);
        let to = match opts.replay {
            Replay::All => last,
            Replay::UpTo(n) => n.min(last),
            Replay::None => s,
        };
        if to > s {
            let mut failure = None;
            wal.read_range_with(s + 1..to + 1, |e| {
                match recover::apply_payload(&mut tree, &mut config, &wal_dir, e.index, &e.payload)
                {
                    Ok(_) => {
                        applied = LogPosition { index: e.index, term: e.term };
                        report.replayed += 1;
                        true
                    }
                    Err(err) => {
                        failure = Some(err);
                        false
                    }
                }
            })?;
            if let Some(err) = failure {
                return Err(err);
            }
        }
        report.applied = applied;
        Ok(NativeEngine {
            inner: Arc::new(Inner {
                fs,
                dir,
                snap_dir,
                wal_dir,
                opts,
                wal,
                live: RwLock::new(Live { tree, applied, config }),
                snap_lock: Mutex::new(()),
                write_lock: Mutex::new(()),
                server_state: Mutex::new(state),
                commit_hint: Mutex::new((hint, None)),
                report,
            }),
        })
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// The underlying log.
    pub fn wal(&self) -> &NativeWal {
        &self.inner.wal
    }

    /// Appends txns (jute bytes) as entries of `term` at the next indexes, durably
    /// (as the sync policy says), then applies them; returns one result per txn. For
    /// a server that logs only what it commits (single node, tests). Callers are
    /// serialized, so entries are applied in index order.
    pub fn write(&self, term: u64, payloads: &[&[u8]]) -> Result<Vec<TxnResult>, StorageError> {
        let _w = lock(&self.inner.write_lock);
        let range = self.inner.wal.append_next(term, payloads)?;
        let mut live = self.inner.write();
        if range.start != live.applied.index + 1 && !payloads.is_empty() {
            return Err(StorageError::Usage(format!(
                "the log continued at {} but the state is at {}; apply the entries in between first",
                range.start, live.applied.index
            )));
        }
        let mut out = Vec::with_capacity(payloads.len());
        for (index, p) in range.zip(payloads) {
            let live = &mut *live;
            let r = recover::apply_payload(
                &mut live.tree,
                &mut live.config,
                &self.inner.wal_dir,
                index,
                p,
            )?;
            out.push(r.last().cloned().unwrap_or(TxnResult::Ok));
            live.applied = LogPosition { index, term };
        }
        Ok(out)
    }

    /// The cluster configuration (the last [config entry](config_entry) applied, or
    /// the one of the snapshot the state comes from; empty if none) and the position
    /// the state is at, read together.
    pub fn cluster_config(&self) -> (Vec<u8>, LogPosition) {
        let live = self.inner.read();
        (live.config.clone(), live.applied)
    }

    /// The cluster configuration stored in the snapshot covering `index` (its
    /// metadata only is read).
    pub fn snapshot_cluster_config(&self, index: u64) -> Result<Vec<u8>, StorageError> {
        let p = self.inner.snap_dir.join(snapshot_file_name(index));
        Ok(keeperkit_snapshot::native::inspect_snapshot(&*self.inner.fs, &p)?.meta.cluster_config)
    }

    /// The server state: opaque bytes kept in `DIR/server-state` (empty if never
    /// set), e.g. a Raft vote.
    pub fn server_state(&self) -> Vec<u8> {
        lock(&self.inner.server_state).clone()
    }

    /// Replaces the server state atomically; durable when the call returns
    /// (temporary file, fsync, rename, directory fsync). Callers are serialized.
    pub fn set_server_state(&self, bytes: &[u8]) -> Result<(), StorageError> {
        let mut s = lock(&self.inner.server_state);
        server_state::write_state(&*self.inner.fs, &self.inner.dir, bytes)?;
        bytes.clone_into(&mut s);
        Ok(())
    }

    /// The commit hint: the last position given to [`NativeEngine::set_commit_hint`],
    /// or what `DIR/commit-hint` held at open. It is never synced, so after a crash it
    /// may be older than the last one set, or missing (`None`); it may also be ahead
    /// of the durable log (its write can reach the disk before the log's), so a
    /// reader checks it against the log.
    pub fn commit_hint(&self) -> Option<LogPosition> {
        lock(&self.inner.commit_hint).0
    }

    /// Records the commit position in `DIR/commit-hint` (one small in-place write,
    /// no fsync).
    pub fn set_commit_hint(&self, pos: LogPosition) -> Result<(), StorageError> {
        let mut h = lock(&self.inner.commit_hint);
        if h.1.is_none() {
            h.1 = Some(server_state::open_hint(&*self.inner.fs, &self.inner.dir)?);
        }
        if let Some(f) = &h.1 {
            server_state::write_hint(&**f, &self.inner.dir, pos)?;
        }
        h.0 = Some(pos);
        Ok(())
    }

    /// Runs `f` on the live tree under the read lock.
    pub fn with_tree<R>(&self, f: impl FnOnce(&DataTree) -> R) -> R {
        f(&self.inner.read().tree)
    }
}

impl LogStore for NativeEngine {
    fn append(&self, entries: &[EntryRef<'_>]) -> Result<(), StorageError> {
        Ok(self.inner.wal.append(entries)?)
    }

    fn read_range(&self, range: Range<u64>) -> Result<Vec<Entry>, StorageError> {
        Ok(self.inner.wal.read_range(range)?)
    }

    fn first_index(&self) -> Option<u64> {
        self.inner.wal.first_index()
    }

    fn last_index(&self) -> Option<u64> {
        self.inner.wal.last_index()
    }

    fn next_index(&self) -> u64 {
        self.inner.wal.next_index()
    }

    fn truncate_suffix(&self, from: u64) -> Result<(), StorageError> {
        let applied = self.inner.read().applied.index;
        if from <= applied {
            return Err(StorageError::Usage(format!(
                "cannot truncate from {from}: entries up to {applied} are applied (committed)"
            )));
        }
        Ok(self.inner.wal.truncate_suffix(from)?)
    }

    fn purge_prefix(&self, upto: u64) -> Result<(), StorageError> {
        Ok(self.inner.wal.purge(upto)?)
    }

    fn hard_state(&self) -> HardState {
        self.inner.wal.hard_state()
    }

    fn set_hard_state(&self, hs: HardState) -> Result<(), StorageError> {
        Ok(self.inner.wal.set_hard_state(hs)?)
    }

    fn sync(&self) -> Result<(), StorageError> {
        Ok(self.inner.wal.sync()?)
    }
}

impl NativeEngine {
    /// Applies the next entry, as [`StateMachine::apply`] does, and returns one result
    /// per txn it holds: one for a txn, one per txn of a [batch entry](batch_entry),
    /// none for a no-op or a config entry.
    pub fn apply_entry(&self, entry: EntryRef<'_>) -> Result<Vec<TxnResult>, StorageError> {
        let mut live = self.inner.write();
        if entry.index != live.applied.index + 1 {
            return Err(StorageError::Usage(format!(
                "entry {} applied after {}: entries must be applied in order, once",
                entry.index, live.applied.index
            )));
        }
        let live = &mut *live;
        let r = recover::apply_payload(
            &mut live.tree,
            &mut live.config,
            &self.inner.wal_dir,
            entry.index,
            entry.payload,
        )?;
        live.applied = LogPosition { index: entry.index, term: entry.term };
        Ok(r)
    }
}

impl StateMachine for NativeEngine {
    /// For a [batch entry](batch_entry), the last txn's result
    /// ([`NativeEngine::apply_entry`] gives each one).
    fn apply(&self, entry: EntryRef<'_>) -> Result<TxnResult, StorageError> {
        Ok(self.apply_entry(entry)?.pop().unwrap_or(TxnResult::Ok))
    }

    fn applied(&self) -> LogPosition {
        self.inner.read().applied
    }

    fn last_zxid(&self) -> Zxid {
        self.inner.read().tree.last_processed_zxid()
    }

    fn get(&self, path: &str) -> Option<NodeData> {
        let live = self.inner.read();
        let n = live.tree.get(path)?;
        Some(NodeData { data: n.data().map(<[u8]>::to_vec), stat: n.stat() })
    }

    fn children(&self, path: &str) -> Option<Vec<String>> {
        let mut c = self.inner.read().tree.children(path)?;
        c.sort();
        Some(c)
    }

    fn exists(&self, path: &str) -> Option<Stat> {
        self.inner.read().tree.get(path).map(|n| n.stat())
    }

    fn acl(&self, path: &str) -> Option<(Vec<Acl>, Stat)> {
        let live = self.inner.read();
        let n = live.tree.get(path)?;
        Some((n.acl().clone(), n.stat()))
    }

    fn view(&self) -> (DataTree, LogPosition) {
        let live = self.inner.read();
        (live.tree.clone(), live.applied)
    }
}

impl SnapshotStore for NativeEngine {
    fn start_snapshot(&self) -> Result<SnapshotTicket, StorageError> {
        let (view, pos, config) = {
            let live = self.inner.read();
            (live.tree.clone(), live.applied, live.config.clone())
        };
        let inner = self.inner.clone();
        let handle = std::thread::Builder::new()
            .name("keeperkit-snapshot".into())
            .spawn(move || {
                let _s = lock(&inner.snap_lock);
                inner.snapshot_and_retire(&view, pos, config)
            })
            .map_err(|e| StorageError::Io { path: self.inner.snap_dir.clone(), source: e })?;
        Ok(SnapshotTicket { position: pos, handle: Some(handle), ready: None })
    }

    fn list_snapshots(&self) -> Result<Vec<SnapshotInfo>, StorageError> {
        let files = snapshot_files(&*self.inner.fs, &self.inner.snap_dir)?;
        files.iter().map(|(_, p)| snapshot_info(&*self.inner.fs, p)).collect()
    }

    fn snapshot_bytes(&self, index: u64) -> Result<Vec<u8>, StorageError> {
        let p = self.inner.snap_dir.join(snapshot_file_name(index));
        self.inner.fs.read_all(&p).map_err(io(&p))
    }

    fn install_snapshot(&self, bytes: &mut dyn Read) -> Result<SnapshotInfo, StorageError> {
        let inner = &*self.inner;
        let _s = lock(&inner.snap_lock);
        let fs = &*inner.fs;
        let tmp = inner.snap_dir.join(INCOMING_FILE);
        let result = (|| {
            let f = fs.open(&tmp, OpenMode::CreateTruncate).map_err(io(&tmp))?;
            let mut buf = vec![0u8; 1 << 20];
            let mut off = 0u64;
            loop {
                let n = match bytes.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(StorageError::Io { path: tmp.clone(), source: e }),
                };
                f.write_all_at(&buf[..n], off).map_err(io(&tmp))?;
                off += n as u64;
            }
            f.sync_all().map_err(io(&tmp))?;
            drop(f);
            load_tree(fs, &tmp)
        })();
        let loaded = match result {
            Ok(l) => l,
            Err(e) => {
                let _ = fs.remove_file(&tmp);
                return Err(e);
            }
        };
        let pos = LogPosition { index: loaded.meta.last_index, term: loaded.meta.last_term };
        let applied = inner.read().applied;
        if pos.index < applied.index {
            let _ = fs.remove_file(&tmp);
            return Err(StorageError::Usage(format!(
                "the snapshot ends at index {}, before the applied index {}",
                pos.index, applied.index
            )));
        }
        // Publish: rename, then make the new name durable.
        let path = inner.snap_dir.join(snapshot_file_name(pos.index));
        fs.rename(&tmp, &path).map_err(io(&path))?;
        fs.sync_dir(&inner.snap_dir).map_err(io(&inner.snap_dir))?;
        let file_len = fs.metadata(&path).map(|m| m.len).unwrap_or(0);
        // Reset the log (Raft: keep the entries after a matching entry).
        inner.wal.reset_to_snapshot(pos.index, pos.term)?;
        {
            let mut live = inner.write();
            live.tree = loaded.tree;
            live.applied = pos;
            live.config = loaded.meta.cluster_config.clone();
        }
        inner.retire()?;
        Ok(SnapshotInfo {
            path,
            position: pos,
            zxid: loaded.meta.zxid,
            node_count: loaded.meta.node_count,
            file_len,
        })
    }

    fn keep_snapshots(&self) -> usize {
        self.inner.opts.keep_snapshots
    }
}

impl Storage for NativeEngine {
    fn open_report(&self) -> &OpenReport {
        &self.inner.report
    }
}
