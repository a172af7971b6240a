//! The committer: the write path behind a seam.
//!
//! One thread takes the queued [`Job`]s in batches. For each job in order it preps a
//! write into a txn against the tree of everything logged so far ([`crate::prep`]) and
//! appends it to a [`TxnLog`], or runs a queued read on that tree. Then the log is asked
//! to **commit** the whole batch at once, and only then the batch is **published**
//! (replies, watches, the published tree). Should the commit fail (a full disk), the
//! outcome of the batch's writes is unknown: their connections are closed without an
//! answer, and the committer is **blocked**: it refuses every write (`THROTTLEDOP`:
//! "not executed at all"; nothing is logged) and serves reads from the published tree
//! until a retried commit succeeds, which publishes what the failed batches did.
//!
//! [`TxnLog`] is the seam between the committer and where txns become durable:
//! [`LocalLog`] is the single-node server's (the native WAL, one `fdatasync` per batch:
//! group commit); the replicated server has its own.
//!
//! # Pipelining (a replica's leader)
//!
//! A log whose [`TxnLog::depth`] is above 1 (Raft's) does not make the committer wait
//! for each batch: the batch is **proposed** ([`TxnLog::propose`]) and the committer
//! preps the next one against the speculative tree (every txn proposed so far applied)
//! while the first replicates, up to `depth` batches in flight. Each proposal lands
//! ([`Job::Landed`]) once committed and applied locally; batches are **published in
//! order**, each only once it and every batch before it landed, so no client hears of
//! a write (nor reads a state) before it is committed and applied on its server. When
//! a batch fails (leadership lost, no quorum, a timeout), every batch proposed after
//! it fails too, whatever its own outcome: their txns were prepped on a tree holding
//! the failed one (zxids, versions, sequential names). Their connections are closed
//! without an answer, and the committer preps nothing more until every proposal in
//! flight has landed; then [`TxnLog::begin`] starts again from the committed tree. A
//! batch that registers watches or runs a watch operation is published before the
//! next batch is prepped (a watch must be in place before the applier applies a later
//! change).
//!
//! # Pipelined forwards (a replica's follower)
//!
//! A follower forwards each run of writes to the leader ([`TxnLog::forward_async`])
//! without waiting for the answer when nothing of the batch follows the run: up to
//! [`TxnLog::forward_depth`] runs are in flight, each a flight like a leader's batch,
//! answered in order once it and every run before it landed (answered by the leader
//! and applied here). Anything else (a read, a reply the connection decided, a run
//! followed by one) first waits until every run in flight landed, and is then handled
//! on the tree holding their writes, as before; so is a run to another leader than
//! the one the runs in flight went to. A failed run fails every run behind it
//! (their connections are closed without an answer).
//!
//! Each run carries its place in the follower's **stream** ([`Stream`]: incarnation,
//! epoch, sequence number; a new epoch after a failure or a leader change). The
//! leader hands a follower's runs to its committer in that order, and the committer
//! preps a run only if it is the next of its stream, or the first of a new one; a
//! run refused, dropped (this server no longer leads) or in a failed batch breaks its
//! stream. So the writes of a session reach the Raft log in their order, and none
//! of them commits past a write of it that was lost: a failed run's writes are
//! exactly those it carried plus those forwarded behind it, whose outcome is unknown
//! to their clients (connection closed) and which commit, if at all, after it.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{self as stdmpsc, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use keeperkit_model::acl::Perms;
use keeperkit_model::jute::Writer;
use keeperkit_model::{AclList, ErrorCode, Id, OpCode, SessionId, Txn, TxnBody, TxnHeader, Zxid};
use keeperkit_storage::engine::{NativeEngine, SnapshotPriority};
use keeperkit_storage::traits::{LogStore, SnapshotStore, SnapshotTicket, StateMachine};
use keeperkit_tree::{DataTree, TxnResult};
use tokio::sync::{mpsc, oneshot, Semaphore};
use tracing::{debug, error, info, warn};

use crate::prep::{self, Ctx, Prepared};
use crate::proto::{
    self, add_watch_mode, encode_event, op, watcher_type, xid, Request, Response, WatcherEvent,
};
use crate::read::{self, ReadCtx};
use crate::server::{lock, now_ms, reply_frame, Out, Outbox, Outgoing, Permit, Sess, Shared};
use crate::session;
use crate::watch::{ConnId, Mode, Table, Watches};

/// Where the committer's txns go and how they become durable.
pub(crate) trait TxnLog: Send + 'static {
    /// Runs `f` on the tree writes are prepped against: every txn appended so far
    /// applied.
    fn with_tree<R>(&self, f: impl FnOnce(&DataTree) -> R) -> R;
    /// The zxid of the last txn appended.
    fn last_zxid(&self) -> Zxid;
    /// Appends one txn (not yet durable) and applies it to the prep tree; its result,
    /// or `None` when the log refused it (logged here).
    fn append(&mut self, txn: &Txn) -> Option<TxnResult>;
    /// Makes every txn appended so far durable, in order. On an error their outcome is
    /// unknown.
    fn commit(&mut self) -> Result<(), String>;
    /// The tree with every committed txn applied: what the batch publishes.
    fn committed_tree(&self) -> DataTree;
    /// Starts a snapshot of the committed state: its ticket, or `None` when the
    /// snapshot is taken elsewhere (Raft's).
    fn start_snapshot(&mut self) -> Result<Option<SnapshotTicket>, String>;
    /// Called before each batch (`in_flight`: proposed batches have not all landed):
    /// whether this server preps the batch's writes itself, forwards them to the
    /// leader, or must first wait for the batches in flight.
    fn begin(&mut self, in_flight: bool) -> Begin {
        let _ = in_flight;
        Begin::Prep
    }
    /// How many batches may be proposed and not yet committed at once. At 1, each
    /// batch is committed ([`TxnLog::commit`]) before the next one is prepped.
    fn depth(&self) -> usize {
        1
    }
    /// Proposes every txn appended since the last proposal (and the confirmation a
    /// `sync` needs, [`TxnLog::commit_due`]) without waiting: `landing` is told the
    /// outcome, from any thread, once the batch is committed and applied on this
    /// server (`Ok`), or failed.
    fn propose(&mut self, landing: Landing) {
        landing.tell(self.commit());
    }
    /// A proposed batch failed: the speculative tree (and what was prepped on it) is
    /// forgotten; the next [`TxnLog::begin`] without batches in flight starts from the
    /// committed tree.
    fn failed(&mut self) {}
    /// Whether the committer fires watches, tracks sessions and publishes the tree
    /// (a single node), or the log's own applier does (a replica: it does so for every
    /// txn applied, whoever prepped it).
    fn publishes(&self) -> bool {
        true
    }
    /// A `sync` was answered in this batch: the commit must confirm that what it
    /// answered is current (a leader checks it still leads).
    fn note_sync(&mut self) {}
    /// Whether [`TxnLog::commit`] is due even with no txn appended.
    fn commit_due(&self) -> bool {
        false
    }
    /// In [`Begin::Forward`]: sends writes to the leader, waits until this server has
    /// applied everything the leader answered, and returns the answers in order.
    fn forward(&mut self, items: Vec<FwdItem>) -> Result<Vec<FwdAnswer>, String> {
        let _ = items;
        Err("this server has no leader to forward writes to".into())
    }
    /// How many forwarded runs of writes may be in flight at once (see
    /// [`TxnLog::forward_async`]). At 1, each run is forwarded by [`TxnLog::forward`]
    /// and answered before the next one is sent.
    fn forward_depth(&self) -> usize {
        1
    }
    /// Whether a run forwarded now goes to the leader the runs in flight went to (a
    /// run behind forwards to another leader waits until they all landed).
    fn forward_ready(&self) -> bool {
        true
    }
    /// In [`Begin::Forward`]: sends writes to the leader without waiting; `done` is
    /// told, from any thread, the answers in order once this server has applied
    /// everything the leader answered, or the failure. `in_flight`: earlier runs
    /// have not landed yet (the leader must then be theirs, or this run fails).
    fn forward_async(
        &mut self,
        items: Vec<FwdItem>,
        in_flight: bool,
        done: Landing<Vec<FwdAnswer>>,
    ) {
        let _ = in_flight;
        done.tell(self.forward(items));
    }
    /// In [`Begin::Forward`], once the runs in flight landed: the tree reads are
    /// answered from becomes the one clients see now (holding those runs' writes).
    fn refresh(&mut self) {}
}

/// Where a follower's forwarded run sits in the follower's stream of runs to the
/// leader: `nonce` names the follower's incarnation, `epoch` its stream (a new one
/// after a failed forward or a leader change), `seq` the run in it (from 0). The
/// leader preps a follower's runs only in that order, with no gap (see the module
/// docs), so a session's writes commit in their order or not past a lost one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stream {
    /// The follower.
    pub(crate) from: u64,
    /// The follower's incarnation.
    pub(crate) nonce: u64,
    /// The follower's stream.
    pub(crate) epoch: u64,
    /// The run's place in the stream.
    pub(crate) seq: u64,
}

/// What the leader's committer knows of a follower's stream: the next run it
/// accepts (`None`: a run of this stream was dropped or failed; only a new stream is
/// accepted).
#[derive(Debug, Clone, Copy)]
struct StreamState {
    nonce: u64,
    epoch: u64,
    next: Option<u64>,
}

/// The leader's view of its followers' streams of forwarded runs.
#[derive(Debug, Default)]
struct Streams(HashMap<u64, StreamState>);

impl Streams {
    /// Whether the leader preps this forwarded run: the next one of its follower's
    /// stream, or the first of a new stream. A refused run breaks its stream.
    fn admit(&mut self, s: &Stream) -> bool {
        let ok = match self.0.get(&s.from) {
            Some(st) if st.nonce == s.nonce && st.epoch == s.epoch => st.next == Some(s.seq),
            // A run of a stream the follower gave up: its newer stream goes on.
            Some(st) if st.nonce == s.nonce && st.epoch > s.epoch => return false,
            // Another incarnation of the follower: a late run of an earlier one is
            // refused and leaves the current stream alone.
            Some(st) if st.nonce != s.nonce && s.seq != 0 => return false,
            _ => s.seq == 0,
        };
        let next = if ok { Some(s.seq + 1) } else { None };
        self.0.insert(s.from, StreamState { nonce: s.nonce, epoch: s.epoch, next });
        ok
    }

    /// Run `s` failed or was dropped: no later run of its stream is prepped here.
    fn break_stream(&mut self, s: &Stream) {
        let newer = self.0.get(&s.from).is_some_and(|st| st.nonce == s.nonce && st.epoch > s.epoch);
        if !newer {
            self.0.insert(s.from, StreamState { nonce: s.nonce, epoch: s.epoch, next: None });
        }
    }
}

/// How a batch is handled ([`TxnLog::begin`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Begin {
    /// Writes are prepped and appended here.
    Prep,
    /// Writes go to the leader.
    Forward,
    /// The batches in flight must land first (leadership changed or a batch failed).
    Drain,
}

/// Tells whoever proposed a batch ([`TxnLog::propose`]) how it ended. Dropped untold
/// (a runtime stopping with the proposal's task), it tells a failure: a proposal in
/// flight is always answered.
/// A forward in flight ([`TxnLog::forward_async`]) is told its answers the same way.
pub(crate) struct Landing<T = ()> {
    tell: Option<Tell<T>>,
}

/// What a [`Landing`] calls with the outcome.
type Tell<T> = Box<dyn FnOnce(Result<T, String>) + Send>;

impl<T> Landing<T> {
    pub(crate) fn new(f: impl FnOnce(Result<T, String>) + Send + 'static) -> Landing<T> {
        Landing { tell: Some(Box::new(f)) }
    }

    /// Tells the outcome.
    pub(crate) fn tell(mut self, r: Result<T, String>) {
        if let Some(f) = self.tell.take() {
            f(r);
        }
    }
}

impl<T> Drop for Landing<T> {
    fn drop(&mut self) {
        if let Some(f) = self.tell.take() {
            f(Err("the proposal was dropped (the server is stopping)".into()));
        }
    }
}

/// A write a follower forwards to the leader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum FwdItem {
    /// A client request: its session, xid, authenticated ids and the request frame
    /// (as the client sent it).
    Request {
        /// The session.
        session: SessionId,
        /// The request id.
        xid: i32,
        /// The connection's authenticated ids.
        auths: Vec<Id>,
        /// The framed request.
        frame: Vec<u8>,
    },
    /// A write whose body could not be decoded (an error txn on the leader).
    Failed {
        /// The session.
        session: SessionId,
        /// The request id.
        xid: i32,
    },
    /// A new session.
    CreateSession {
        /// The negotiated timeout.
        timeout_ms: i32,
    },
}

/// The leader's answer to one [`FwdItem`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum FwdAnswer {
    /// The reply frame to send to the client.
    Frame(Vec<u8>),
    /// The new session (`None`: it could not be created).
    Session(Option<SessionId>),
}

/// The single-node log: the native engine's WAL, written without a sync per txn and
/// made durable by one `fdatasync` per batch.
pub(crate) struct LocalLog {
    engine: NativeEngine,
    /// The encoding of the txn being appended (kept: one allocation, not one per txn).
    buf: Vec<u8>,
}

impl LocalLog {
    pub(crate) fn new(engine: NativeEngine) -> LocalLog {
        LocalLog { engine, buf: Vec::new() }
    }
}

impl TxnLog for LocalLog {
    fn with_tree<R>(&self, f: impl FnOnce(&DataTree) -> R) -> R {
        self.engine.with_tree(f)
    }

    fn last_zxid(&self) -> Zxid {
        self.engine.last_zxid()
    }

    fn append(&mut self, txn: &Txn) -> Option<TxnResult> {
        let mut buf = std::mem::take(&mut self.buf);
        buf.clear();
        let mut w = Writer::from_vec(buf);
        txn.encode_into(&mut w);
        self.buf = w.into_inner();
        match self.engine.write(1, &[&self.buf]) {
            Ok(mut r) => r.pop(),
            Err(e) => {
                error!("appending txn {:#x} to the log failed: {e}", txn.header.zxid.0);
                None
            }
        }
    }

    fn commit(&mut self) -> Result<(), String> {
        self.engine.sync().map_err(|e| format!("fdatasync of the log failed: {e}"))
    }

    fn committed_tree(&self) -> DataTree {
        self.engine.view().0
    }

    /// The engine's snapshot thread lowers its own priority as it starts
    /// ([`SNAPSHOT_PRIORITY`], set at open): nothing but that thread's start is on the
    /// committer's path.
    fn start_snapshot(&mut self) -> Result<Option<SnapshotTicket>, String> {
        self.engine.start_snapshot().map(Some).map_err(|e| e.to_string())
    }
}

/// The priority of the thread writing a snapshot: the idle class, which gives a core up
/// the moment a committer or connection thread wakes there (a nice value does not: a
/// niced thread keeps its core to the end of its time slice, and clients wait that
/// long), and is raised to nice 10 if a snapshot has not been written after
/// [`IDLE_RAISE_AFTER`](keeperkit_storage::engine::priority::IDLE_RAISE_AFTER).
pub(crate) const SNAPSHOT_PRIORITY: SnapshotPriority =
    SnapshotPriority::Idle { raise_after: keeperkit_storage::engine::priority::IDLE_RAISE_AFTER };

/// Work for the committer.
pub(crate) enum Job {
    Request {
        conn: ConnId,
        session: SessionId,
        xid: i32,
        req: Request,
        auths: Arc<Vec<Id>>,
        out: Out,
        permit: Permit,
        started: Instant,
    },
    /// A write whose body could not be decoded: an error txn (MarshallingError), as
    /// ZooKeeper logs one, and that code answered.
    Failed {
        session: SessionId,
        xid: i32,
        out: Out,
        permit: Permit,
        started: Instant,
    },
    /// A frame to send in order (an error reply decided by the connection).
    Reply {
        out: Out,
        frame: Vec<u8>,
        close: bool,
        permit: Permit,
    },
    CreateSession {
        timeout_ms: i32,
        reply: oneshot::Sender<Option<SessionId>>,
    },
    Expire {
        session: SessionId,
    },
    /// The server's own request (deleteContainer of an empty container / expired TTL).
    Internal {
        req: Request,
    },
    Snapshot {
        reply: Option<oneshot::Sender<String>>,
    },
    /// Writes a follower forwarded (on the leader): answered with the last zxid after
    /// them and their answers in order. `stream`: the run's place in the follower's
    /// stream (`None`: a follower that sends one run at a time, unordered).
    Forwarded {
        stream: Option<Stream>,
        items: Vec<FwdItem>,
        reply: oneshot::Sender<(i64, Vec<FwdAnswer>)>,
    },
    /// A proposed batch ([`TxnLog::propose`]) landed: committed and applied here, or
    /// failed.
    Landed {
        seq: u64,
        result: Result<(), String>,
    },
    /// A forwarded run ([`TxnLog::forward_async`]) was answered and applied here, or
    /// failed.
    Answered {
        seq: u64,
        result: Result<Vec<FwdAnswer>, String>,
    },
    Stop,
}

/// Something to do once the batch is durable.
pub(crate) enum Publish {
    /// A reply; the permit (the connection's outstanding slot) is released once sent.
    Reply {
        conn: Option<ConnId>,
        out: Option<Out>,
        frame: Vec<u8>,
        close: bool,
        started: Option<Instant>,
        permit: Option<Permit>,
    },
    Changes {
        zxid: i64,
        changes: Vec<Change>,
    },
    Watch {
        conn: ConnId,
        table: Table,
        path: String,
    },
    WatchOp {
        conn: ConnId,
        xid: i32,
        req: Request,
        out: Out,
        started: Instant,
        permit: Permit,
    },
    SessionCreated {
        id: SessionId,
        timeout_ms: i32,
        reply: oneshot::Sender<Option<SessionId>>,
    },
    SessionClosed {
        id: SessionId,
    },
    /// The answers of a forwarded batch, collected once its replies are published;
    /// `zxid` is the last one after its writes (the follower applies up to it).
    Forwarded {
        stream: Option<Stream>,
        zxid: i64,
        kinds: Vec<bool>,
        frames: mpsc::UnboundedReceiver<Outgoing>,
        sessions: Vec<oneshot::Receiver<Option<SessionId>>>,
        reply: oneshot::Sender<(i64, Vec<FwdAnswer>)>,
    },
}

/// What a change did, for the watches it fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ChangeKind {
    Created,
    Deleted,
    Data,
}

/// A change that fires watches, with the ACLs that decide who hears of it: ZooKeeper
/// delivers an event only to connections that may READ the node it is about (the
/// parent, for NodeChildrenChanged).
#[derive(Debug, Clone)]
pub(crate) struct Change {
    kind: ChangeKind,
    path: String,
    acl: AclList,
    parent_acl: AclList,
}

pub(crate) struct Committer<L: TxnLog> {
    shared: Arc<Shared>,
    txns: L,
    since_snapshot: u64,
    snapshot: Option<SnapshotTicket>,
    ephemerals: session::EphemeralSets,
    /// Why the last commit failed; writes are refused while set.
    blocked: Option<String>,
    /// What the batches whose commit failed did (events, sessions), published once
    /// a retried commit succeeds.
    held: Vec<Publish>,
    /// The last publish list, emptied, for the next batch (see `run_serial`).
    spare: Vec<Publish>,
    /// Proposed batches that have not landed, oldest first (pipelining, see the module
    /// docs), and batches behind them waiting to be published in order.
    flight: std::collections::VecDeque<Flight>,
    /// The next batch's number.
    next_seq: u64,
    /// Jobs received while no batch could be prepped, in order.
    backlog: Vec<Job>,
    /// On the leader: each follower's stream of forwarded runs (see [`Stream`]).
    streams: Streams,
}

/// A batch prepped and proposed (or with nothing to propose) that is not published yet.
struct Flight {
    seq: u64,
    /// The outcome, once landed (at once for a batch with nothing to propose).
    result: Option<Result<(), String>>,
    /// What to do once it and every batch before it landed.
    pubs: Vec<Publish>,
    logged: u64,
    snapshot_replies: Vec<Option<oneshot::Sender<String>>>,
    /// Published before the next batch is prepped (it registers watches).
    barrier: bool,
    /// An earlier batch failed: its connections are closed already; it is dropped
    /// once its own proposal landed.
    doomed: bool,
    /// On a follower: the writes of a run forwarded to the leader, answered once it
    /// lands (with `answers`).
    fwd: Vec<Job>,
    /// The leader's answers to `fwd`, in order.
    answers: Option<Vec<FwdAnswer>>,
}

/// How often a blocked committer retries the commit.
const RETRY_COMMIT: Duration = Duration::from_millis(100);

impl<L: TxnLog> Committer<L> {
    pub(crate) fn new(shared: Arc<Shared>, txns: L) -> Committer<L> {
        let ephemerals = txns.with_tree(session::EphemeralSets::from_tree);
        Committer {
            shared,
            txns,
            since_snapshot: 0,
            snapshot: None,
            ephemerals,
            blocked: None,
            held: Vec::new(),
            spare: Vec::new(),
            flight: std::collections::VecDeque::new(),
            next_seq: 0,
            backlog: Vec::new(),
            streams: Streams::default(),
        }
    }

    pub(crate) fn run(mut self, rx: stdmpsc::Receiver<Job>) {
        if self.txns.depth() > 1 {
            self.run_pipelined(&rx);
        } else {
            self.run_serial(&rx);
        }
        // A clean stop leaves no snapshot being written into the directory (a restart
        // would find its files changing under it).
        if let Some(t) = self.snapshot.take() {
            match t.wait() {
                Ok(info) => info!(path = %info.path.display(), "snapshot written"),
                Err(e) => error!("snapshot failed: {e}"),
            }
        }
        info!("committer stopped");
    }

    /// Each batch is committed before the next is prepped (a single node).
    fn run_serial(&mut self, rx: &stdmpsc::Receiver<Job>) {
        let mut stop = false;
        let mut batch: Vec<Job> = Vec::new();
        while !stop {
            let first = if self.blocked.is_some() {
                let j = rx.recv_timeout(RETRY_COMMIT);
                self.retry_commit();
                match j {
                    Ok(j) => j,
                    Err(RecvTimeoutError::Timeout) => continue,
                    Err(RecvTimeoutError::Disconnected) => break,
                }
            } else {
                let Ok(j) = rx.recv() else { break };
                j
            };
            batch.push(first);
            while batch.len() < 8192 {
                match rx.try_recv() {
                    Ok(j) => batch.push(j),
                    Err(_) => break,
                }
            }
            if self.txns.begin(false) == Begin::Forward {
                stop = self.forward_batch(std::mem::take(&mut batch), None);
                continue;
            }
            // Both lists are reused from batch to batch: a fresh one per batch costs
            // the allocator fresh pages, and the committer their (huge) page faults.
            let mut pubs = std::mem::take(&mut self.spare);
            let mut logged = 0u64;
            let mut snapshot_replies = Vec::new();
            for job in batch.drain(..) {
                match job {
                    Job::Stop => stop = true,
                    Job::Snapshot { reply } => snapshot_replies.push(reply),
                    j => logged += self.job(j, &mut pubs),
                }
            }
            if logged > 0 || self.txns.commit_due() {
                if let Err(e) = self.txns.commit() {
                    self.stall(e, pubs);
                    for r in snapshot_replies.into_iter().flatten() {
                        let _ = r.send("the log cannot be written: no snapshot".into());
                    }
                    continue;
                }
                self.shared.stats.syncs.fetch_add(1, Ordering::Relaxed);
                self.shared.stats.txns.fetch_add(logged, Ordering::Relaxed);
            }
            self.publish(pubs);
            self.since_snapshot += logged;
            // A replica's snapshots are Raft's (its snapshot policy).
            let due = self.txns.publishes() && self.since_snapshot >= self.shared.cfg.snap_count;
            if self.blocked.is_some() {
                for r in snapshot_replies.into_iter().flatten() {
                    let _ = r.send("the log cannot be written: no snapshot".into());
                }
            } else if due || !snapshot_replies.is_empty() {
                self.take_snapshot(snapshot_replies);
            }
        }
    }

    /// Batches are proposed while earlier ones replicate, up to [`TxnLog::depth`] in
    /// flight, and published in order as they land (see the module docs).
    fn run_pipelined(&mut self, rx: &stdmpsc::Receiver<Job>) {
        let depth = self.txns.depth();
        let mut stop = false;
        while !stop {
            // Jobs in order: those held back, then those queued since.
            let mut jobs = std::mem::take(&mut self.backlog);
            if jobs.is_empty() {
                let Ok(j) = rx.recv() else { break };
                jobs.push(j);
            }
            while jobs.len() < 8192 {
                match rx.try_recv() {
                    Ok(j) => jobs.push(j),
                    Err(_) => break,
                }
            }
            let jobs = self.take_landed(jobs);
            if jobs.is_empty() {
                continue;
            }
            let room = if self.flight.back().is_some_and(|f| f.barrier) { 0 } else { depth - 1 };
            if self.flight.len() > room {
                self.backlog = jobs;
                if !self.wait_landed(rx, room) {
                    break;
                }
                continue;
            }
            match self.txns.begin(!self.flight.is_empty()) {
                Begin::Drain => {
                    self.backlog = jobs;
                    if !self.wait_landed(rx, 0) {
                        break;
                    }
                }
                Begin::Forward => stop = self.forward_batch(jobs, Some(rx)),
                Begin::Prep => stop = self.propose_batch(jobs),
            }
        }
        self.wait_landed(rx, 0);
        // Jobs never prepped (the stop came first, or the queue closed).
        for job in std::mem::take(&mut self.backlog) {
            abandon(job);
        }
    }

    /// Handles the [`Job::Landed`] among `jobs`; returns the others, in order.
    fn take_landed(&mut self, jobs: Vec<Job>) -> Vec<Job> {
        let mut rest = Vec::with_capacity(jobs.len());
        for job in jobs {
            match job {
                Job::Landed { seq, result } => self.landed(seq, result),
                Job::Answered { seq, result } => self.answered(seq, result),
                j => rest.push(j),
            }
        }
        rest
    }

    /// Waits until at most `n` batches are in flight, keeping the other jobs received
    /// meanwhile for later. False when the queue closed (what was in flight is
    /// abandoned: its connections are closed).
    fn wait_landed(&mut self, rx: &stdmpsc::Receiver<Job>, n: usize) -> bool {
        while self.flight.len() > n {
            match rx.recv() {
                Ok(Job::Landed { seq, result }) => self.landed(seq, result),
                Ok(Job::Answered { seq, result }) => self.answered(seq, result),
                Ok(j) => self.backlog.push(j),
                Err(_) => {
                    while let Some(f) = self.flight.pop_front() {
                        if !f.doomed {
                            self.stall("the server stopped".into(), f.pubs);
                            f.fwd.into_iter().for_each(abandon);
                        }
                    }
                    return false;
                }
            }
        }
        true
    }

    /// Preps a batch (the leader's) on the speculative tree and proposes it; returns
    /// whether it held the stop.
    fn propose_batch(&mut self, jobs: Vec<Job>) -> bool {
        let mut stop = false;
        let mut pubs = Vec::with_capacity(jobs.len());
        let mut logged = 0u64;
        let mut snapshot_replies = Vec::new();
        for job in jobs {
            match job {
                Job::Stop => stop = true,
                Job::Snapshot { reply } => snapshot_replies.push(reply),
                j => logged += self.job(j, &mut pubs),
            }
        }
        let barrier =
            pubs.iter().any(|p| matches!(p, Publish::Watch { .. } | Publish::WatchOp { .. }));
        let propose = logged > 0 || self.txns.commit_due();
        let seq = self.next_seq;
        self.next_seq += 1;
        self.flight.push_back(Flight {
            seq,
            result: if propose { None } else { Some(Ok(())) },
            pubs,
            logged,
            snapshot_replies,
            barrier,
            doomed: false,
            fwd: Vec::new(),
            answers: None,
        });
        if propose {
            let shared = Arc::downgrade(&self.shared);
            self.txns.propose(Landing::new(move |result| {
                if let Some(s) = shared.upgrade() {
                    s.submit(Job::Landed { seq, result });
                }
            }));
        } else {
            self.publish_landed();
        }
        stop
    }

    /// Batch `seq` landed: publishes every batch landed in order so far.
    fn landed(&mut self, seq: u64, result: Result<(), String>) {
        let Some(f) = self.flight.iter_mut().find(|f| f.seq == seq) else {
            error!("batch {seq} landed but is not in flight");
            return;
        };
        assert!(f.result.is_none(), "batch {seq} landed twice");
        f.result = Some(result);
        self.publish_landed();
    }

    /// A forwarded run (a flight on a follower) was answered, or failed.
    fn answered(&mut self, seq: u64, result: Result<Vec<FwdAnswer>, String>) {
        let result = match result {
            Ok(answers) => {
                if let Some(f) = self.flight.iter_mut().find(|f| f.seq == seq) {
                    f.answers = Some(answers);
                }
                Ok(())
            }
            Err(e) => Err(e),
        };
        self.landed(seq, result);
    }

    /// Publishes the landed batches at the front of the flight, in order. A failed one
    /// fails every batch behind it (prepped on a tree holding it; on a follower,
    /// forwarded behind it).
    fn publish_landed(&mut self) {
        while self.flight.front().is_some_and(|f| f.result.is_some()) {
            let Some(mut f) = self.flight.pop_front() else { break };
            if f.doomed {
                continue;
            }
            match f.result {
                Some(Ok(())) => {
                    if f.logged > 0 {
                        self.shared.stats.syncs.fetch_add(1, Ordering::Relaxed);
                        self.shared.stats.txns.fetch_add(f.logged, Ordering::Relaxed);
                    }
                    if !f.fwd.is_empty() {
                        let answers = f.answers.take().unwrap_or_default();
                        answer_writes(std::mem::take(&mut f.fwd), Ok(answers), &mut f.pubs);
                    }
                    self.publish(f.pubs);
                    if !f.snapshot_replies.is_empty() {
                        self.take_snapshot(f.snapshot_replies);
                    }
                }
                Some(Err(e)) => {
                    self.txns.failed();
                    self.poison(&f.pubs);
                    if f.fwd.is_empty() || !f.pubs.is_empty() {
                        self.stall(e.clone(), f.pubs);
                    }
                    if !f.fwd.is_empty() {
                        warn!(
                            "forwarding {} writes to the leader failed: {e}; closing their connections",
                            f.fwd.len()
                        );
                        f.fwd.into_iter().for_each(abandon);
                    }
                    let behind = format!("an earlier batch failed ({e})");
                    let mut doomed = Vec::new();
                    for later in self.flight.iter_mut().filter(|l| !l.doomed) {
                        later.doomed = true;
                        for r in later.snapshot_replies.drain(..).flatten() {
                            let _ = r.send("the log cannot be written: no snapshot".into());
                        }
                        doomed.push(std::mem::take(&mut later.pubs));
                        std::mem::take(&mut later.fwd).into_iter().for_each(abandon);
                    }
                    for pubs in doomed {
                        self.poison(&pubs);
                        stall_replica(&behind, pubs);
                    }
                    for r in f.snapshot_replies.into_iter().flatten() {
                        let _ = r.send("the log cannot be written: no snapshot".into());
                    }
                }
                None => unreachable!("only landed batches are published"),
            }
        }
    }

    /// A failed commit: the batch's replies are not sent (their outcome is unknown:
    /// the connections are closed, as on a connection loss), what else it did is held,
    /// and writes are refused until a commit succeeds.
    /// A replica's failed commit (leadership lost, no quorum) only closes the
    /// connections: what its log holds is Raft's to decide.
    fn stall(&mut self, e: String, pubs: Vec<Publish>) {
        if !self.txns.publishes() {
            stall_replica(&e, pubs);
            return;
        }
        error!("{e}; writes are refused until the log can be written again");
        for p in pubs {
            match p {
                Publish::Reply { out: Some(out), .. } | Publish::WatchOp { out, .. } => {
                    let _ = out.send(Outgoing::Close);
                }
                Publish::Reply { out: None, .. } => {}
                held => self.held.push(held),
            }
        }
        self.blocked = Some(e);
    }

    /// Retries the commit of a blocked committer; on success publishes what was held.
    fn retry_commit(&mut self) {
        match self.txns.commit() {
            Ok(()) => {
                info!("the log is written again: writes are accepted");
                self.blocked = None;
                self.shared.stats.syncs.fetch_add(1, Ordering::Relaxed);
                let held = std::mem::take(&mut self.held);
                self.publish(held);
            }
            Err(e) => debug!("the log still cannot be written: {e}"),
        }
    }

    /// The zxid of a refused request's reply: the last one clients can see.
    fn refused_zxid(&self) -> i64 {
        if self.blocked.is_some() {
            self.shared.last_zxid()
        } else {
            self.txns.last_zxid().0
        }
    }

    fn take_snapshot(&mut self, replies: Vec<Option<oneshot::Sender<String>>>) {
        if let Some(t) = &self.snapshot {
            if !t.is_finished() {
                for r in replies.into_iter().flatten() {
                    let _ = r.send("a snapshot is already being written".into());
                }
                return;
            }
        }
        if let Some(t) = self.snapshot.take() {
            match t.wait() {
                Ok(info) => {
                    info!(path = %info.path.display(), nodes = info.node_count, "snapshot written")
                }
                Err(e) => error!("snapshot failed: {e}"),
            }
        }
        self.since_snapshot = 0;
        match self.txns.start_snapshot() {
            Ok(None) => {
                info!("snapshot requested from Raft");
                self.shared.stats.snapshots.fetch_add(1, Ordering::Relaxed);
                for r in replies.into_iter().flatten() {
                    let _ = r.send("snapshot requested".into());
                }
            }
            Ok(Some(t)) => {
                let msg = format!("snapshot at index {} started", t.position.index);
                info!("{msg}");
                self.shared.stats.snapshots.fetch_add(1, Ordering::Relaxed);
                self.snapshot = Some(t);
                for r in replies.into_iter().flatten() {
                    let _ = r.send(msg.clone());
                }
            }
            Err(e) => {
                error!("starting a snapshot failed: {e}");
                for r in replies.into_iter().flatten() {
                    let _ = r.send(format!("snapshot failed: {e}"));
                }
            }
        }
    }

    /// Logs and applies one txn; returns its result, or `None` when the log refused it.
    fn log(&mut self, header: TxnHeader, body: TxnBody) -> Option<TxnResult> {
        if self.blocked.is_some() {
            return None;
        }
        let txn = Txn { header, body, digest: None };
        let r = self.txns.append(&txn);
        if r.as_ref().is_some_and(TxnResult::is_ok) {
            self.ephemerals.apply(txn.header.client_id, &txn.body);
        }
        r
    }

    fn header(&self, session: SessionId, xid: i32, opcode: OpCode) -> TxnHeader {
        let last = self.txns.last_zxid();
        TxnHeader {
            client_id: session,
            cxid: xid,
            zxid: Zxid(last.0 + 1),
            time: now_ms(),
            op: opcode,
        }
    }

    /// Handles one job; returns how many txns it logged.
    fn job(&mut self, job: Job, pubs: &mut Vec<Publish>) -> u64 {
        match job {
            Job::Request { conn, session, xid, req, auths, out, permit, started } => {
                if is_watch_op(&req) {
                    pubs.push(Publish::WatchOp { conn, xid, req, out, started, permit });
                    return 0;
                }
                if read::is_read(&req) {
                    if matches!(req, Request::Sync { .. }) {
                        self.txns.note_sync();
                    }
                    let rctx = ReadCtx { session, auths: &auths };
                    let run = |t: &DataTree| {
                        let (r, w) = read::read(t, &rctx, &req);
                        (r, w, t.last_processed_zxid().0)
                    };
                    // Blocked, the prep tree holds txns that are not durable.
                    let (resp, watch, zxid) = if self.blocked.is_some() {
                        run(&self.shared.published.read().unwrap_or_else(|e| e.into_inner()))
                    } else {
                        self.txns.with_tree(run)
                    };
                    if let Some((table, path)) = watch {
                        pubs.push(Publish::Watch { conn, table, path });
                    }
                    let x = if matches!(req, Request::Ping) { xid::PING } else { xid };
                    pubs.push(Publish::Reply {
                        conn: Some(conn),
                        out: Some(out),
                        frame: reply_frame(x, zxid, resp),
                        close: false,
                        started: Some(started),
                        permit: Some(permit),
                    });
                    return 0;
                }
                let ctx =
                    Ctx { session, auths: &auths, extended_types: self.shared.cfg.extended_types };
                let (n, zxid, resp) = self.write(&ctx, xid, &req, pubs);
                // A refused closeSession leaves the session open.
                let close = matches!(req, Request::CloseSession) && resp.is_ok();
                pubs.push(Publish::Reply {
                    conn: Some(conn),
                    out: Some(out),
                    frame: reply_frame(xid, zxid, resp),
                    close,
                    started: Some(started),
                    permit: Some(permit),
                });
                if close {
                    pubs.push(Publish::SessionClosed { id: session });
                }
                n
            }
            Job::Failed { session, xid, out, permit, started } => {
                let (n, zxid, resp) =
                    self.log_error(session, xid, OpCode::ERROR, ErrorCode::MarshallingError);
                pubs.push(Publish::Reply {
                    conn: None,
                    out: Some(out),
                    frame: reply_frame(xid, zxid, resp),
                    close: false,
                    started: Some(started),
                    permit: Some(permit),
                });
                n
            }
            Job::Reply { out, frame, close, permit } => {
                pubs.push(Publish::Reply {
                    conn: None,
                    out: Some(out),
                    frame,
                    close,
                    started: None,
                    permit: Some(permit),
                });
                0
            }
            Job::Internal { req } => {
                let ctx = Ctx { session: SessionId(0), auths: &[], extended_types: true };
                let (n, _, _) = self.write(&ctx, 0, &req, pubs);
                n
            }
            Job::CreateSession { timeout_ms, reply } => {
                let id = {
                    let mut ss = lock(&self.shared.sessions);
                    let id = ss.next_id;
                    ss.next_id += 1;
                    id
                };
                let h = self.header(SessionId(id), 0, OpCode::CREATE_SESSION);
                match self.log(h, TxnBody::CreateSession { timeout_ms }) {
                    Some(_) => {
                        pubs.push(Publish::SessionCreated { id: SessionId(id), timeout_ms, reply });
                        1
                    }
                    None => {
                        let _ = reply.send(None);
                        0
                    }
                }
            }
            Job::Expire { session } => {
                if self.txns.with_tree(|t| t.session_timeout(session)).is_none() {
                    pubs.push(Publish::SessionClosed { id: session });
                    return 0;
                }
                let ctx = Ctx { session, auths: &[], extended_types: true };
                let (n, _, r) = self.write(&ctx, 0, &Request::CloseSession, pubs);
                if r.is_ok() {
                    pubs.push(Publish::SessionClosed { id: session });
                } else if let Some(s) = lock(&self.shared.sessions).map.get_mut(&session.0) {
                    // Not logged (a full disk): expired again a tick later.
                    s.closing = false;
                    s.deadline = Instant::now() + self.shared.cfg.tick();
                }
                n
            }
            Job::Forwarded { stream, items, reply } => {
                if let Some(s) = stream {
                    if !self.streams.admit(&s) {
                        // The reply dropped: the follower's forward fails, and so does
                        // every run it sent behind it.
                        warn!(
                            "node {}: forwarded run {} of stream {} refused (a run before it was lost or failed)",
                            s.from, s.seq, s.epoch
                        );
                        return 0;
                    }
                }
                self.forwarded(stream, items, reply, pubs)
            }
            Job::Snapshot { .. } | Job::Stop | Job::Landed { .. } | Job::Answered { .. } => 0,
        }
    }

    /// Forwarded runs among `pubs` failed or were dropped: their streams are broken,
    /// so no later run of theirs commits past them.
    fn poison(&mut self, pubs: &[Publish]) {
        for p in pubs {
            if let Publish::Forwarded { stream: Some(s), .. } = p {
                self.streams.break_stream(s);
            }
        }
    }

    /// A follower's forwarded writes, handled as this server's own requests; their
    /// answers are collected when the batch is published.
    fn forwarded(
        &mut self,
        stream: Option<Stream>,
        items: Vec<FwdItem>,
        reply: oneshot::Sender<(i64, Vec<FwdAnswer>)>,
        pubs: &mut Vec<Publish>,
    ) -> u64 {
        let (out, frames) = Outbox::new();
        let slots = Arc::new(Semaphore::new(items.len().max(1)));
        let mut kinds = Vec::with_capacity(items.len());
        let mut sessions = Vec::new();
        let mut n = 0;
        let started = Instant::now();
        for item in items {
            let Ok(permit) = slots.clone().try_acquire_owned().map(Permit::from) else { break };
            match item {
                FwdItem::Request { session, xid, auths, frame } => {
                    kinds.push(false);
                    let body = frame.get(4..).unwrap_or_default();
                    let job = match proto::decode_request(body, self.shared.cfg.max_frame) {
                        Ok((_, req)) => Job::Request {
                            conn: 0,
                            session,
                            xid,
                            req,
                            auths: Arc::new(auths),
                            out: out.clone(),
                            permit,
                            started,
                        },
                        Err(_) => Job::Failed { session, xid, out: out.clone(), permit, started },
                    };
                    n += self.job(job, pubs);
                }
                FwdItem::Failed { session, xid } => {
                    kinds.push(false);
                    n += self
                        .job(Job::Failed { session, xid, out: out.clone(), permit, started }, pubs);
                }
                FwdItem::CreateSession { timeout_ms } => {
                    kinds.push(true);
                    let (tx, rx) = oneshot::channel();
                    sessions.push(rx);
                    n += self.job(Job::CreateSession { timeout_ms, reply: tx }, pubs);
                }
            }
        }
        let zxid = self.txns.last_zxid().0;
        pubs.push(Publish::Forwarded { stream, zxid, kinds, frames, sessions, reply });
        n
    }

    /// A follower's batch: runs of writes go to the leader (one call each), and what
    /// follows a run (reads, replies decided by the connection) waits until this
    /// server has applied the run, so every connection sees its own writes in its
    /// request order. Returns whether the batch held the stop.
    fn forward_batch(&mut self, batch: Vec<Job>, rx: Option<&stdmpsc::Receiver<Job>>) -> bool {
        let mut stop = false;
        let mut writes: Vec<Job> = Vec::new();
        let mut rest: Vec<Job> = Vec::new();
        let mut jobs = batch.into_iter();
        while let Some(job) = jobs.next() {
            let job = match job {
                Job::Stop => {
                    stop = true;
                    continue;
                }
                Job::Snapshot { reply } => {
                    if let Some(r) = reply {
                        let _ = r.send("a follower takes snapshots by Raft's policy".into());
                    }
                    continue;
                }
                // Only a leader expires sessions and deletes containers; forwarded
                // writes sent here while this server stopped leading are refused (the
                // follower closes its clients' connections; they reconnect).
                Job::Expire { .. } | Job::Internal { .. } => continue,
                Job::Forwarded { stream, .. } => {
                    if let Some(s) = stream {
                        self.streams.break_stream(&s);
                    }
                    continue;
                }
                j => j,
            };
            let is_write = match &job {
                Job::Request { req, .. } => {
                    matches!(req, Request::Sync { .. }) || !(read::is_read(req) || is_watch_op(req))
                }
                Job::Failed { .. } | Job::CreateSession { .. } => true,
                _ => false,
            };
            if is_write && !rest.is_empty() {
                let (w, r) = (std::mem::take(&mut writes), std::mem::take(&mut rest));
                if !self.forward_run(w, r, rx) {
                    jobs.for_each(abandon);
                    return true;
                }
            }
            if is_write {
                writes.push(job);
            } else {
                rest.push(job);
            }
        }
        if (!writes.is_empty() || !rest.is_empty()) && !self.forward_run(writes, rest, rx) {
            return true;
        }
        stop
    }

    /// One run of writes and what follows it. A run with nothing behind it is sent
    /// without waiting when the log pipelines forwards (`rx`: the committer's queue,
    /// to wait on for room); otherwise every run in flight lands first and this one is
    /// answered before the committer goes on. False when the queue closed.
    fn forward_run(
        &mut self,
        writes: Vec<Job>,
        rest: Vec<Job>,
        rx: Option<&stdmpsc::Receiver<Job>>,
    ) -> bool {
        let depth = self.txns.forward_depth();
        if let Some(rx) = rx {
            let pipelined = rest.is_empty() && !writes.is_empty() && depth > 1;
            // Room for one more run, to the same leader; or nothing in flight.
            let room = if !pipelined {
                0
            } else if self.flight.is_empty() || self.txns.forward_ready() {
                depth - 1
            } else {
                0
            };
            if self.flight.len() > room {
                if !self.wait_landed(rx, room) {
                    writes.into_iter().chain(rest).for_each(abandon);
                    return false;
                }
                // A read behind them sees the writes of the runs that landed.
                self.txns.refresh();
            }
            if pipelined {
                self.forward_pipelined(writes);
                return true;
            }
        }
        let mut pubs = Vec::with_capacity(writes.len() + rest.len());
        if !writes.is_empty() {
            let items = fwd_items(&writes);
            answer_writes(writes, self.txns.forward(items), &mut pubs);
        }
        for job in rest {
            self.job(job, &mut pubs);
        }
        self.publish(pubs);
        true
    }

    /// Sends a run of writes to the leader and keeps it in flight, answered in order
    /// once it and every run before it landed.
    fn forward_pipelined(&mut self, writes: Vec<Job>) {
        let items = fwd_items(&writes);
        let seq = self.next_seq;
        self.next_seq += 1;
        let in_flight = !self.flight.is_empty();
        self.flight.push_back(Flight {
            seq,
            result: None,
            pubs: Vec::new(),
            logged: 0,
            snapshot_replies: Vec::new(),
            barrier: false,
            doomed: false,
            fwd: writes,
            answers: None,
        });
        let shared = Arc::downgrade(&self.shared);
        self.txns.forward_async(
            items,
            in_flight,
            Landing::new(move |result| {
                if let Some(s) = shared.upgrade() {
                    s.submit(Job::Answered { seq, result });
                }
            }),
        );
    }
}

/// The items a run of writes is forwarded as.
fn fwd_items(writes: &[Job]) -> Vec<FwdItem> {
    writes
        .iter()
        .map(|j| match j {
            Job::Request { session, xid, req, auths, .. } => FwdItem::Request {
                session: *session,
                xid: *xid,
                auths: auths.as_ref().clone(),
                frame: proto::encode_request(*xid, req),
            },
            Job::Failed { session, xid, .. } => FwdItem::Failed { session: *session, xid: *xid },
            Job::CreateSession { timeout_ms, .. } => {
                FwdItem::CreateSession { timeout_ms: *timeout_ms }
            }
            _ => unreachable!("only writes are forwarded"),
        })
        .collect()
}

/// What answers a forwarded run of writes: the leader's answers, one per write in
/// order; or, when the forward failed or the answers do not match, the writes'
/// connections are closed (their outcome is unknown).
fn answer_writes(
    writes: Vec<Job>,
    answers: Result<Vec<FwdAnswer>, String>,
    pubs: &mut Vec<Publish>,
) {
    match answers {
        Ok(answers) if answers.len() == writes.len() => {
            for (job, answer) in writes.into_iter().zip(answers) {
                match (job, answer) {
                    (
                        Job::Request { conn, session, req, out, permit, started, .. },
                        FwdAnswer::Frame(frame),
                    ) => {
                        let close = matches!(req, Request::CloseSession);
                        pubs.push(Publish::Reply {
                            conn: Some(conn),
                            out: Some(out),
                            frame,
                            close,
                            started: Some(started),
                            permit: Some(permit),
                        });
                        if close {
                            pubs.push(Publish::SessionClosed { id: session });
                        }
                    }
                    (Job::Failed { out, permit, started, .. }, FwdAnswer::Frame(frame)) => {
                        pubs.push(Publish::Reply {
                            conn: None,
                            out: Some(out),
                            frame,
                            close: false,
                            started: Some(started),
                            permit: Some(permit),
                        });
                    }
                    (Job::CreateSession { timeout_ms, reply }, FwdAnswer::Session(Some(id))) => {
                        pubs.push(Publish::SessionCreated { id, timeout_ms, reply });
                    }
                    (job, _) => abandon(job),
                }
            }
        }
        Ok(answers) => {
            error!("the leader answered {} of {} forwarded writes", answers.len(), writes.len());
            writes.into_iter().for_each(abandon);
        }
        Err(e) => {
            warn!(
                "forwarding {} writes to the leader failed: {e}; closing their connections",
                writes.len()
            );
            writes.into_iter().for_each(abandon);
        }
    }
}

impl<L: TxnLog> Committer<L> {
    /// Preps, logs and applies a write; returns (txns logged, reply zxid, answer).
    fn write(
        &mut self,
        ctx: &Ctx<'_>,
        xid: i32,
        req: &Request,
        pubs: &mut Vec<Publish>,
    ) -> (u64, i64, Result<Response, ErrorCode>) {
        let session = ctx.session;
        if let Request::CloseSession = req {
            let paths = self.txns.with_tree(|t| self.ephemerals.close_order(session, t));
            let h = self.header(session, xid, OpCode::CLOSE_SESSION);
            let zxid = h.zxid.0;
            let dels: Vec<TxnBody> =
                paths.iter().map(|p| TxnBody::Delete { path: p.clone() }).collect();
            let pre = self.txns.with_tree(|t| pre_acls(t, &dels));
            return match self.log(h, TxnBody::CloseSession { paths: Some(paths.clone()) }) {
                Some(_) => {
                    let changes = self.txns.with_tree(|t| changes_of(&dels, &pre, t));
                    pubs.push(Publish::Changes { zxid, changes });
                    (1, zxid, Ok(Response::Empty))
                }
                None => (0, self.refused_zxid(), Err(ErrorCode::Throttled)),
            };
        }
        if let Request::Reconfig { .. } = req {
            return self.log_error(session, xid, OpCode(op::RECONFIG), ErrorCode::ReconfigDisabled);
        }
        let opcode = OpCode(req.op());
        let h = self.header(session, xid, opcode);
        let prepared = self.txns.with_tree(|t| match req {
            Request::Multi(ops) => prep::prep_multi(t, ctx, &h, ops),
            other => prep::prep_op(t, ctx, other).map(Prepared::Single),
        });
        match prepared {
            Err(e) => self.log_error(session, xid, opcode, e),
            Ok(Prepared::Single(op)) if op.txns.is_empty() => {
                let (zxid, resp) =
                    self.txns.with_tree(|t| (t.last_processed_zxid().0, prep::answer(t, &op)));
                (0, zxid, Ok(resp))
            }
            Ok(Prepared::Single(op)) => {
                let (mut h, body) = if op.txns.len() == 1 {
                    (h, op.txns[0].clone())
                } else {
                    (h, TxnBody::Multi(op.txns.clone()))
                };
                h.op = body.op();
                let zxid = h.zxid.0;
                let pre = self.txns.with_tree(|t| pre_acls(t, &op.txns));
                match self.log(h, body.clone()) {
                    Some(r) => {
                        if !r.is_ok() {
                            error!("a prepared txn failed to apply: {body:?} -> {r:?}");
                        }
                        let (resp, changes) = self
                            .txns
                            .with_tree(|t| (prep::answer(t, &op), changes_of(&op.txns, &pre, t)));
                        pubs.push(Publish::Changes { zxid, changes });
                        (1, zxid, Ok(resp))
                    }
                    None => (0, self.refused_zxid(), Err(ErrorCode::Throttled)),
                }
            }
            Ok(Prepared::Multi { body, results, ok }) => {
                let zxid = h.zxid.0;
                let subs: Vec<TxnBody> = match &body {
                    TxnBody::Multi(s) if ok => s.clone(),
                    _ => Vec::new(),
                };
                let pre = self.txns.with_tree(|t| pre_acls(t, &subs));
                match self.log(h, body.clone()) {
                    Some(_) => {
                        if ok {
                            let changes = self.txns.with_tree(|t| changes_of(&subs, &pre, t));
                            pubs.push(Publish::Changes { zxid, changes });
                        }
                        (1, zxid, Ok(Response::Multi(results)))
                    }
                    None => (0, self.refused_zxid(), Err(ErrorCode::Throttled)),
                }
            }
        }
    }

    /// A request that failed its checks: logged as an error txn (it takes a zxid, as in
    /// ZooKeeper), answered with the code.
    fn log_error(
        &mut self,
        session: SessionId,
        xid: i32,
        _op: OpCode,
        e: ErrorCode,
    ) -> (u64, i64, Result<Response, ErrorCode>) {
        let h = self.header(session, xid, OpCode::ERROR);
        let zxid = h.zxid.0;
        match self.log(h, TxnBody::Error { err: e }) {
            Some(_) => (1, zxid, Err(e)),
            None => (0, self.refused_zxid(), Err(ErrorCode::Throttled)),
        }
    }

    fn publish(&mut self, mut pubs: Vec<Publish>) {
        let own = self.txns.publishes();
        let blocked = self.blocked.is_some();
        let shared = &*self.shared;
        let mut published = shared.published.write().unwrap_or_else(|e| e.into_inner());
        let mut watches = lock(&shared.watches);
        let mut events: Vec<(ConnId, WatcherEvent)> = Vec::new();
        for p in pubs.drain(..) {
            match p {
                Publish::Changes { zxid, changes } => {
                    let _ = zxid;
                    if own {
                        fire(shared, &mut watches, changes, &mut events);
                    }
                }
                Publish::Forwarded { zxid, kinds, mut frames, sessions, reply, .. } => {
                    let mut answers = Vec::with_capacity(kinds.len());
                    let mut sessions = sessions.into_iter();
                    for is_session in kinds {
                        if is_session {
                            let id = sessions.next().and_then(|mut r| r.try_recv().ok()).flatten();
                            answers.push(FwdAnswer::Session(id));
                            continue;
                        }
                        loop {
                            match frames.try_recv() {
                                Ok(Outgoing::Frame(f)) => {
                                    answers.push(FwdAnswer::Frame(f));
                                    break;
                                }
                                Ok(Outgoing::Close) => continue,
                                Err(_) => {
                                    answers.push(FwdAnswer::Frame(Vec::new()));
                                    break;
                                }
                            }
                        }
                    }
                    let _ = reply.send((zxid, answers));
                }
                Publish::Reply { conn, out, frame, close, started, permit } => {
                    if let Some(out) = out {
                        let _ = out.send(Outgoing::Frame(frame));
                        shared.stats.packets_sent.fetch_add(1, Ordering::Relaxed);
                        if close {
                            let _ = out.send(Outgoing::Close);
                            if let Some(c) = conn.and_then(|c| lock(&shared.conns).get(&c).cloned())
                            {
                                c.close.notify_one();
                            }
                        }
                    }
                    if let Some(s) = started {
                        shared.stats.latency(s);
                    }
                    drop(permit);
                }
                Publish::Watch { conn, table, path } => {
                    if lock(&shared.conns).contains_key(&conn) {
                        watches.add(table, &path, conn, Mode::Standard);
                    }
                }
                Publish::WatchOp { conn, xid, req, out, started, permit } => {
                    let mut run = |t: &DataTree| {
                        let mut evs = Vec::new();
                        let r = watch_op(t, &mut watches, conn, &req, &mut evs);
                        for ev in evs {
                            let _ = out.send(Outgoing::Frame(encode_event(-1, &ev)));
                        }
                        (r, t.last_processed_zxid().0)
                    };
                    let (resp, zxid) =
                        if blocked { run(&published) } else { self.txns.with_tree(run) };
                    let _ = out.send(Outgoing::Frame(reply_frame(xid, zxid, resp)));
                    shared.stats.latency(started);
                    drop(permit);
                }
                Publish::SessionCreated { id, timeout_ms, reply } => {
                    lock(&shared.sessions).map.insert(
                        id.0,
                        Sess {
                            timeout_ms,
                            deadline: Instant::now()
                                + Duration::from_millis(u64::try_from(timeout_ms).unwrap_or(0)),
                            conn: None,
                            closing: false,
                        },
                    );
                    let _ = reply.send(Some(id));
                }
                Publish::SessionClosed { id } => {
                    let gone = lock(&shared.sessions).map.remove(&id.0);
                    if let Some(c) = gone.and_then(|s| s.conn) {
                        if let Some(ci) = lock(&shared.conns).get(&c) {
                            let _ = ci.out.send(Outgoing::Close);
                            ci.close.notify_one();
                        }
                    }
                }
            }
        }
        // Blocked, what the log holds is not all durable: the published tree stays.
        if own && !blocked {
            *published = self.txns.committed_tree();
        }
        drop(watches);
        drop(published);
        if pubs.capacity() > self.spare.capacity() {
            self.spare = pubs;
        }
    }
}

fn acl_at(t: &DataTree, p: &str) -> Option<AclList> {
    prep::node(t, p).map(|n| n.acl().clone())
}

fn parent_path(p: &str) -> &str {
    match p.rfind('/') {
        Some(0) | None => "/",
        Some(i) => &p[..i],
    }
}

/// ACLs before a txn's subs are applied: of the nodes it deletes or changes, and of
/// their parents.
pub(crate) fn pre_acls(t: &DataTree, subs: &[TxnBody]) -> HashMap<String, AclList> {
    let mut m = HashMap::new();
    for b in subs {
        if let Some(p) = b.path() {
            for q in [p, parent_path(p)] {
                if !m.contains_key(q) {
                    if let Some(a) = acl_at(t, q) {
                        m.insert(q.to_string(), a);
                    }
                }
            }
        }
    }
    m
}

/// The watch changes of applied subs, with their ACLs (`after`: the tree after them).
pub(crate) fn changes_of(
    subs: &[TxnBody],
    pre: &HashMap<String, AclList>,
    after: &DataTree,
) -> Vec<Change> {
    let mut created: HashMap<&str, &AclList> = HashMap::new();
    let mut out = Vec::new();
    for b in subs {
        let (kind, path) = match b {
            TxnBody::Create(c)
            | TxnBody::Create2(c)
            | TxnBody::CreateContainer(c)
            | TxnBody::CreateTtl(c) => {
                created.insert(&c.path, &c.acl);
                (ChangeKind::Created, c.path.as_str())
            }
            TxnBody::Delete { path } | TxnBody::DeleteContainer { path } => {
                (ChangeKind::Deleted, path.as_str())
            }
            TxnBody::SetData(s) => (ChangeKind::Data, s.path.as_str()),
            _ => continue,
        };
        let lookup = |p: &str, prefer_after: bool| -> AclList {
            let a = if prefer_after { acl_at(after, p) } else { None };
            a.or_else(|| created.get(p).map(|a| (*a).clone()))
                .or_else(|| pre.get(p).cloned())
                .or_else(|| acl_at(after, p))
                .unwrap_or_default()
        };
        let acl = match kind {
            ChangeKind::Deleted => lookup(path, false),
            _ => lookup(path, true),
        };
        let parent_acl = lookup(parent_path(path), true);
        out.push(Change { kind, path: path.to_string(), acl, parent_acl });
    }
    out
}

/// setWatches, setWatches2, addWatch, removeWatches, checkWatches on `tree`.
pub(crate) fn watch_op(
    tree: &DataTree,
    w: &mut Watches,
    conn: ConnId,
    req: &Request,
    events: &mut Vec<WatcherEvent>,
) -> Result<Response, ErrorCode> {
    use proto::event_type as et;
    let ev = |t: i32, p: &str| WatcherEvent {
        event_type: t,
        state: proto::keeper_state::SYNC_CONNECTED,
        path: p.to_string(),
    };
    match req {
        Request::SetWatches { relative_zxid, data, exist, child }
        | Request::SetWatches2 { relative_zxid, data, exist, child, .. } => {
            for p in data {
                match prep::node(tree, p) {
                    None => events.push(ev(et::NODE_DELETED, p)),
                    Some(n) if n.stat().mzxid > *relative_zxid => {
                        events.push(ev(et::NODE_DATA_CHANGED, p))
                    }
                    Some(_) => w.add(Table::Data, p, conn, Mode::Standard),
                }
            }
            for p in exist {
                match prep::node(tree, p) {
                    Some(_) => events.push(ev(et::NODE_CREATED, p)),
                    None => w.add(Table::Data, p, conn, Mode::Standard),
                }
            }
            for p in child {
                match prep::node(tree, p) {
                    None => events.push(ev(et::NODE_DELETED, p)),
                    Some(n) if n.stat().pzxid > *relative_zxid => {
                        events.push(ev(et::NODE_CHILDREN_CHANGED, p))
                    }
                    Some(_) => w.add(Table::Child, p, conn, Mode::Standard),
                }
            }
            if let Request::SetWatches2 { persistent, persistent_recursive, .. } = req {
                for p in persistent {
                    w.add(Table::Child, p, conn, Mode::Persistent);
                    w.add(Table::Data, p, conn, Mode::Persistent);
                }
                for p in persistent_recursive {
                    w.add(Table::Child, p, conn, Mode::PersistentRecursive);
                    w.add(Table::Data, p, conn, Mode::PersistentRecursive);
                }
            }
            Ok(Response::Empty)
        }
        Request::AddWatch { path, mode } => {
            // Both tables, whatever the mode (`DataTree.addWatch`); a bad mode is
            // WatcherMode.fromZooKeeperMode's IllegalArgumentException: MarshallingError.
            let m = match *mode {
                add_watch_mode::PERSISTENT => Mode::Persistent,
                add_watch_mode::PERSISTENT_RECURSIVE => Mode::PersistentRecursive,
                _ => return Err(ErrorCode::MarshallingError),
            };
            w.add(Table::Data, path, conn, m);
            w.add(Table::Child, path, conn, m);
            Ok(Response::Code(0))
        }
        Request::RemoveWatches { path, watcher_type: t }
        | Request::CheckWatches { path, watcher_type: t } => {
            // `DataTree.removeWatch`: this connection's watch, any mode, in the table(s)
            // named; `containsWatcher` (checkWatches): anybody's watch on the path, as
            // ZooKeeper 3.8.0 checks it. A type WatcherType.fromInt refuses is a
            // MarshallingError.
            let remove = matches!(req, Request::RemoveWatches { .. });
            let any = |_: Mode| true;
            let mut hit = |tab: Table| {
                if remove {
                    w.remove(tab, path, conn, any)
                } else {
                    w.any_on(tab, path)
                }
            };
            let found = match *t {
                watcher_type::CHILDREN => hit(Table::Child),
                watcher_type::DATA => hit(Table::Data),
                watcher_type::ANY => {
                    let a = hit(Table::Child);
                    let b = hit(Table::Data);
                    a || b
                }
                _ => return Err(ErrorCode::MarshallingError),
            };
            if found {
                Ok(Response::Empty)
            } else {
                Err(ErrorCode::NoWatcher)
            }
        }
        _ => Err(ErrorCode::BadArguments),
    }
}

/// Fires the watches of `changes` (events go only to connections that may READ the
/// node, the parent for NodeChildrenChanged). The caller holds the published tree's
/// write lock, so no read adds a watch in between.
pub(crate) fn fire(
    shared: &Shared,
    watches: &mut Watches,
    changes: Vec<Change>,
    events: &mut Vec<(ConnId, WatcherEvent)>,
) {
    for c in changes {
        match c.kind {
            ChangeKind::Created => watches.created(&c.path, events),
            ChangeKind::Deleted => watches.deleted(&c.path, events),
            ChangeKind::Data => watches.changed(&c.path, events),
        }
        if events.is_empty() {
            continue;
        }
        let conns = lock(&shared.conns);
        for (conn, ev) in events.drain(..) {
            let Some(ci) = conns.get(&conn) else { continue };
            let acl = if ev.path == c.path { &c.acl } else { &c.parent_acl };
            let auths = lock(&ci.auths).clone();
            if crate::acl::check(acl, Perms::READ, &auths).is_err() {
                continue;
            }
            // ZooKeeper 3.8 sends notifications with zxid -1.
            let _ = ci.out.send(Outgoing::Frame(encode_event(-1, &ev)));
            shared.stats.packets_sent.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// setWatches, setWatches2, addWatch, removeWatches, checkWatches.
pub(crate) fn is_watch_op(req: &Request) -> bool {
    matches!(
        req,
        Request::SetWatches { .. }
            | Request::SetWatches2 { .. }
            | Request::AddWatch { .. }
            | Request::RemoveWatches { .. }
            | Request::CheckWatches { .. }
    )
}

/// A replica's failed batch (leadership lost, no quorum, or an earlier batch in flight
/// failed): its connections are closed without an answer (the outcome is unknown);
/// what else it did is dropped, as what its log holds is Raft's to decide (a forwarded
/// batch's caller and a new session's waiter see their answer dropped).
fn stall_replica(e: &str, pubs: Vec<Publish>) {
    error!("{e}; closing the connections of {} jobs", pubs.len());
    for p in pubs {
        if let Publish::Reply { out: Some(out), .. } | Publish::WatchOp { out, .. } = p {
            let _ = out.send(Outgoing::Close);
        }
    }
}

/// A write whose outcome is unknown (the leader could not be reached or lost its
/// leadership meanwhile): its connection is closed without an answer, as after a
/// failed fdatasync; the client reconnects and its session goes on.
fn abandon(job: Job) {
    match job {
        Job::Request { out, .. } | Job::Failed { out, .. } => {
            let _ = out.send(Outgoing::Close);
        }
        Job::CreateSession { reply, .. } => {
            let _ = reply.send(None);
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::{Stream, Streams};

    fn run(from: u64, nonce: u64, epoch: u64, seq: u64) -> Stream {
        Stream { from, nonce, epoch, seq }
    }

    #[test]
    fn a_followers_runs_are_prepped_in_order_and_never_past_a_gap() {
        let mut s = Streams::default();
        // A stream starts at run 0; its runs follow one another.
        assert!(!s.admit(&run(2, 7, 0, 1)), "a stream must start at run 0");
        assert!(!s.admit(&run(2, 7, 0, 0)), "a refused run breaks its stream");
        assert!(s.admit(&run(2, 7, 1, 0)));
        assert!(s.admit(&run(2, 7, 1, 1)));
        // Another follower's stream is its own.
        assert!(s.admit(&run(3, 9, 1, 0)));
        // A gap (run 2 lost) breaks the stream: nothing of it is prepped any more.
        assert!(!s.admit(&run(2, 7, 1, 3)));
        assert!(!s.admit(&run(2, 7, 1, 2)), "a broken stream accepts no late run");
        // The follower starts a new stream, at run 0 only.
        assert!(!s.admit(&run(2, 7, 2, 1)));
        assert!(!s.admit(&run(2, 7, 2, 0)), "the refused run 1 broke stream 2 too");
        assert!(s.admit(&run(2, 7, 3, 0)));
        // A late run of a stream given up is refused and leaves the new one alone.
        assert!(!s.admit(&run(2, 7, 1, 2)));
        assert!(s.admit(&run(2, 7, 3, 1)));
        // A run that failed on the leader breaks its stream.
        s.break_stream(&run(2, 7, 3, 1));
        assert!(!s.admit(&run(2, 7, 3, 2)));
        assert!(s.admit(&run(2, 7, 4, 0)));
        // Breaking an older stream does not touch the newer one.
        s.break_stream(&run(2, 7, 3, 5));
        assert!(s.admit(&run(2, 7, 4, 1)));
        // A restarted follower (another incarnation) starts a stream at run 0, and a
        // late run of its previous incarnation does not break it.
        assert!(!s.admit(&run(3, 10, 1, 4)));
        assert!(s.admit(&run(3, 10, 1, 0)));
        assert!(!s.admit(&run(3, 9, 1, 1)));
        assert!(s.admit(&run(3, 10, 1, 1)));
    }
}
