//! A replica of a replicated Keeper service on openraft (`keeperkit serve --id N
//! --peers ...`).
//!
//! # The write path
//!
//! A client's write reaches the committer of the server it is connected to. On a
//! **follower** the committer forwards each run of writes to the leader in one call
//! (the request frames as the client sent them, with the session, xid and the
//! connection's authenticated ids), up to [`PIPELINE_DEPTH`] runs in flight, each
//! numbered in the follower's stream so the leader preps them in order and never
//! past a lost one (the committer's module docs say how). On the **leader** the committer preps every write
//! into a txn exactly as the single-node server does (zxid, time, session and ACL
//! checks, against a tree holding everything appended so far), and proposes the
//! batch's txns to Raft as **one entry** (one append to the leader's WAL, one
//! replication message per follower, one apply per node for the whole batch). It does
//! not wait for that entry before prepping the next batch: up to [`PIPELINE_DEPTH`]
//! batches are in flight, prepped against a tree holding every batch proposed so far,
//! and published in order as each is committed and applied (a failed one fails every
//! batch behind it; the committer's module docs say how). Raft replicates it; an entry is committed once a majority has it durable (each node's
//! log store acknowledges only after `fsync`). Every replica applies committed entries
//! in log order to its engine tree, the txns of an entry in their order; the replica's
//! **applier** mirrors each applied txn
//! to the tree clients read, fires the watches of its own connections, and tracks the
//! sessions. The answer goes to the client only when the server it is connected to
//! has applied the write: a client reads its own writes there, and every watch event
//! is queued before the reply that shows its change.
//!
//! So before a client hears that its write succeeded: the txn is durable in the WAL of
//! a majority of the replicas, and applied on the leader and on the client's server.
//!
//! # Sessions
//!
//! Creating, closing and expiring a session are txns the leader logs; every replica
//! applies them, so a client reconnecting to another server keeps its session and its
//! ephemerals. Followers report the sessions connected to them to the leader every
//! half tick; only the leader expires sessions (a new leader gives every session a
//! full timeout first, as ZooKeeper's does).
//!
//! # Identity
//!
//! Every data directory holds `cluster-identity` (the cluster id and this node's id).
//! A cluster exists only through an explicit `--bootstrap` on its first start; a node
//! started without it waits until a leader of a cluster contacts it, and takes that
//! cluster's id. Raft connections start with a hello naming the cluster and the node
//! called: a node of another cluster, or a caller that mistakes it for another node,
//! is refused. The membership and the log id of its entry (its epoch) are in the
//! engine's cluster config, which every snapshot carries.
//!
//! # A node that lost its data
//!
//! `--bootstrap` with an empty data directory does not create a cluster by itself:
//! the node first asks every other member whether a cluster already exists, and
//! creates it only when every one of them answers that it has never seen a leader.
//! If any member has, or when a member's data directory lost its Raft state (its
//! identity is there and its log is not, or it is started without `--bootstrap`),
//! the node is **rebuilt**: it forgot the term and the vote it may have given, on
//! which Raft's safety rests, so until the end of the rebuild it never votes and never
//! campaigns (elections are off; vote requests are refused on the wire). It asks the
//! leader to rebuild it: the leader turns it into a learner (a logged membership
//! change, committed by the other voters), brings it up to date (a snapshot and the
//! log after it), and makes it a voter again (another logged change). The file
//! `rejoining` in the data directory marks a rebuild in progress, so a crash during
//! it restarts it.

// Startup errors (once per process) carry openraft's and the engine's large errors.
#![allow(clippy::result_large_err)]
use std::collections::BTreeMap;
use std::io::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::mpsc as stdmpsc;
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

use keeperkit_model::{Id, SessionId, Txn, TxnBody, Zxid};
use keeperkit_raft::net::{self, Identity, Peers, Reader, Writer, APP};
use keeperkit_raft::{Applied, Raft};
use keeperkit_storage::engine::NativeEngine;
use keeperkit_storage::traits::{SnapshotTicket, StateMachine};
use keeperkit_tree::{DataTree, TxnResult};
use openraft::{BasicNode, ServerState};
use tokio::sync::{oneshot, watch};
use tracing::{error, info, warn};

use crate::commit::{self, Begin, FwdAnswer, FwdItem, Job, TxnLog};
use crate::server::{lock, now_ms, Outgoing, Sess, Shared};
use crate::session;

/// The file naming the cluster and the node a data directory belongs to.
pub use keeperkit_storage::replicas::IDENTITY_FILE;

/// The file marking a rebuild from the leader in progress (see the module docs).
pub use keeperkit_storage::replicas::REJOIN_FILE;

/// The file marking a node removed from its cluster (see [`members`]): it never
/// starts again on this directory.
pub const REMOVED_FILE: &str = "removed";

mod digest;
mod members;

/// One HTTP request to a member's `--http-port` (for `keeperkit members`).
pub use crate::http::call as http_call;

/// How long the leader may take to rebuild a node (turn it into a learner, bring it
/// up to date, make it a voter) before the node asks again.
const REJOIN_TIMEOUT: Duration = Duration::from_secs(120);

/// How long a stopping server waits for its applier to finish.
const APPLIER_STOP: Duration = Duration::from_secs(10);

/// How long a forwarded batch or a proposal may take before its clients' connections
/// are closed (outcome unknown).
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// How many of the leader's batches may be proposed and not yet committed at once
/// (see the committer's pipelining in `commit.rs`), and how many runs of writes a
/// follower may have forwarded and not yet answered.
const PIPELINE_DEPTH: usize = 3;

/// How long the leader holds a forwarded run that reached it before the run its
/// follower sent ahead of it (two calls on one connection run as separate tasks),
/// before handing it to the committer anyway (which refuses it: a gap).
const GATE_WAIT: Duration = Duration::from_secs(1);

/// A member as `--peers` and `server.N=` name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerAddr {
    /// Host name or address.
    pub host: String,
    /// The port Raft traffic goes to.
    pub raft_port: u16,
    /// The port clients connect to.
    pub client_port: u16,
}

impl PeerAddr {
    /// `host:raft_port`.
    pub fn raft_addr(&self) -> String {
        format!("{}:{}", self.host, self.raft_port)
    }

    /// The address a membership entry records: `HOST:RAFT_PORT;CLIENT_PORT` (the Raft
    /// layer dials what is before the `;`).
    pub fn node_addr(&self) -> String {
        format!("{}:{};{}", self.host, self.raft_port, self.client_port)
    }
}

/// How a replica runs.
#[derive(Debug, Clone)]
pub struct ReplicaConfig {
    /// This node's id (1..=255: it is the high byte of the session ids it creates).
    pub id: u64,
    /// Every member, this one included.
    pub peers: BTreeMap<u64, PeerAddr>,
    /// Create the cluster (first start of its first members only).
    pub bootstrap: bool,
    /// The address the Raft port binds.
    pub raft_bind: IpAddr,
    /// Raft heartbeat (ms); elections start after 6 to 12.5 of them without a leader
    /// (each member in its own window, by its id).
    pub heartbeat_ms: u64,
    /// `--join HOST:HTTP_PORT`: an empty node asks the cluster whose member answers
    /// HTTP there to add it (see [`members`]).
    pub join: Option<String>,
}

/// Parses one member: `HOST:RAFT_PORT:CLIENT_PORT`, or ZooKeeper's
/// `HOST:QUORUM_PORT:ELECTION_PORT[:ROLE];[ADDR:]CLIENT_PORT` (the quorum port
/// carries Raft).
pub fn parse_peer(spec: &str) -> Result<PeerAddr, String> {
    let port = |p: &str| p.trim().parse::<u16>().map_err(|_| format!("{spec:?}: bad port {p:?}"));
    let (left, client) = match spec.split_once(';') {
        Some((l, r)) => (l, Some(r.rsplit(':').next().unwrap_or(r))),
        None => (spec, None),
    };
    let parts: Vec<&str> = left.split(':').collect();
    if parts.len() < 3 || parts[0].is_empty() {
        return Err(format!("{spec:?}: expected HOST:RAFT_PORT:CLIENT_PORT"));
    }
    let raft_port = port(parts[1])?;
    let client_port = match client {
        Some(c) => port(c)?,
        None if parts.len() == 3 => port(parts[2])?,
        None => return Err(format!("{spec:?}: no client port")),
    };
    Ok(PeerAddr { host: parts[0].to_string(), raft_port, client_port })
}

/// Parses `--peers 1=HOST:RAFT:CLIENT,2=...`.
pub fn parse_peers(s: &str) -> Result<BTreeMap<u64, PeerAddr>, String> {
    let mut out = BTreeMap::new();
    for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let (id, spec) = item
            .split_once('=')
            .ok_or_else(|| format!("{item:?}: expected ID=HOST:RAFT:CLIENT"))?;
        let id = parse_id(id)?;
        if out.insert(id, parse_peer(spec)?).is_some() {
            return Err(format!("node {id} is named twice"));
        }
    }
    Ok(out)
}

/// The `server.N=` lines of a zoo.cfg-style file.
pub fn peers_from_config(text: &str) -> Result<BTreeMap<u64, PeerAddr>, String> {
    let mut out = BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        let Some((k, v)) = line.split_once('=') else { continue };
        let Some(id) = k.trim().strip_prefix("server.") else { continue };
        let id = parse_id(id).map_err(|e| format!("line {}: {e}", i + 1))?;
        let p = parse_peer(v.trim()).map_err(|e| format!("line {}: {e}", i + 1))?;
        if out.insert(id, p).is_some() {
            return Err(format!("line {}: node {id} is named twice", i + 1));
        }
    }
    Ok(out)
}

fn parse_id(s: &str) -> Result<u64, String> {
    match s.trim().parse::<u64>() {
        Ok(n) if (1..=255).contains(&n) => Ok(n),
        _ => Err(format!("{s:?}: a node id is 1..=255")),
    }
}

/// Reads `cluster-identity`: (cluster id, node id), `None` when absent.
pub fn read_identity(dir: &Path) -> Result<Option<(String, u64)>, String> {
    keeperkit_storage::replicas::read_identity(&keeperkit_vfs::StdFs, dir)
        .map_err(|e| e.to_string())
}

/// Writes `cluster-identity` durably (a temporary file, fsync, rename, fsync of the
/// directory).
pub fn write_identity(dir: &Path, cluster: &str, node: u64) -> Result<(), String> {
    let fs = keeperkit_vfs::StdFs;
    keeperkit_storage::replicas::write_identity(&fs, dir, cluster, node).map_err(|e| e.to_string())
}

/// The id of the cluster `--bootstrap` creates: a hash (FNV-1a, 64 bits) of its
/// members, so that every first member, started with the same `--peers`, names the same
/// cluster.
pub fn cluster_id_of(peers: &BTreeMap<u64, PeerAddr>) -> String {
    let canon: Vec<String> = peers
        .iter()
        .map(|(id, p)| format!("{id}={}:{}:{}", p.host, p.raft_port, p.client_port))
        .collect();
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in canon.join(",").bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// A replica's state shared by the server's tasks.
pub(crate) struct Replica {
    pub(crate) id: u64,
    pub(crate) raft: Raft,
    pub(crate) peers: Peers,
    pub(crate) members: BTreeMap<u64, PeerAddr>,
    pub(crate) ident: Arc<Identity>,
    rt: tokio::runtime::Handle,
    /// What the applier has applied: (Raft index, zxid).
    applied: watch::Sender<(u64, i64)>,
    shared: OnceLock<Weak<Shared>>,
    /// One membership change at a time (on the leader).
    changes: tokio::sync::Mutex<()>,
    /// On the leader: per follower, the stream (incarnation, epoch) of the last run
    /// it forwarded and the next run of it to hand to the committer (see
    /// [`FORWARD_RUN`]).
    fwd_gate: Mutex<BTreeMap<u64, (u64, u64, u64)>>,
    /// The data directory.
    dir: std::path::PathBuf,
    /// This node's incarnation while it is being rebuilt or joins (a random number
    /// written in `rejoining` when its Raft state started empty); 0 otherwise.
    nonce: u64,
    /// The membership state this replica keeps beyond openraft's (see [`members`]).
    pub(crate) mstate: members::State,
    /// Tree digest samples and what comparing them with the peers' found (see
    /// [`digest`]).
    pub(crate) digests: Arc<digest::Digests>,
    /// The state machine (to stop the applier's feed when the server stops).
    sm: keeperkit_raft::KeeperStateMachine,
    /// The applier thread, joined when the server stops: it holds the engine, which
    /// must be closed before `serve` returns (a caller may open the directory next).
    applier: Mutex<Option<std::thread::JoinHandle<()>>>,
}

/// openraft's metrics of this node.
pub(crate) type Metrics = openraft::RaftMetrics<u64, BasicNode>;

impl Replica {
    /// Hands a follower's forwarded run to the committer in its stream's order: the
    /// calls of one connection are served by separate tasks, so a run may get here
    /// before the one sent ahead of it; it waits for it (at most [`GATE_WAIT`]). The
    /// committer checks the order itself (it refuses a run after a gap).
    async fn gate(&self, s: commit::Stream, job: Job, shared: &Shared) {
        let until = Instant::now() + GATE_WAIT;
        loop {
            {
                let mut g = lock(&self.fwd_gate);
                let e = g.entry(s.from).or_insert((s.nonce, s.epoch, 0));
                let same = e.0 == s.nonce && e.1 == s.epoch;
                let stale = e.0 == s.nonce && e.1 > s.epoch;
                // A later run of this stream, or of a new one, whose predecessor has
                // not been handed over yet.
                let early = if same { s.seq > e.2 } else { !stale && s.seq > 0 };
                if !early || Instant::now() >= until {
                    if same {
                        e.2 = e.2.max(s.seq + 1);
                    } else if !stale {
                        *e = (s.nonce, s.epoch, s.seq + 1);
                    }
                    shared.submit(job);
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    /// After Raft stopped: ends the applier's feed and waits (at most `APPLIER_STOP`)
    /// until the applier has applied what it was sent and let go of the engine.
    pub(crate) async fn stop_applier(&self) {
        self.sm.stop_observing();
        let Some(h) = lock(&self.applier).take() else { return };
        let joined = tokio::task::spawn_blocking(move || h.join());
        match tokio::time::timeout(APPLIER_STOP, joined).await {
            Ok(Ok(Ok(()))) => {}
            Ok(_) => error!("the applier thread panicked"),
            Err(_) => error!("the applier did not stop within {APPLIER_STOP:?}"),
        }
    }

    pub(crate) fn metrics(&self) -> Metrics {
        self.raft.metrics().borrow().clone()
    }

    pub(crate) fn is_leader(&self) -> bool {
        let m = self.metrics();
        m.state == ServerState::Leader && m.current_leader == Some(self.id)
    }

    /// ZooKeeper's name of this node's state (`mntr`'s zk_server_state).
    pub(crate) fn state_name(&self) -> &'static str {
        match self.metrics().state {
            ServerState::Leader => "leader",
            ServerState::Follower => "follower",
            ServerState::Learner => "observer",
            ServerState::Candidate => "looking",
            ServerState::Shutdown => "shutdown",
        }
    }

    /// The leader and its Raft address, when one is known (and is not this node).
    fn leader(&self) -> Option<(u64, String)> {
        let m = self.metrics();
        let l = m.current_leader?;
        let node = m.membership_config.membership().get_node(&l)?;
        Some((l, node.addr.clone()))
    }

    /// The Raft index and zxid the applier has applied.
    pub(crate) fn applied(&self) -> (u64, i64) {
        *self.applied.borrow()
    }

    async fn wait_applied(&self, zxid: i64) -> Result<(), String> {
        let mut rx = self.applied.subscribe();
        let r = tokio::time::timeout(CALL_TIMEOUT, rx.wait_for(|(_, z)| *z >= zxid))
            .await
            .map(|w| w.map(|_| ()));
        match r {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(_)) => Err("the applier stopped".into()),
            Err(_) => Err(format!("zxid {zxid:#x} not applied here within {CALL_TIMEOUT:?}")),
        }
    }

    /// Followers (voters other than this node) and how many of them have every entry
    /// the leader has, when this node leads.
    pub(crate) fn followers(&self) -> Option<(usize, usize)> {
        self.replicas_of(true)
    }

    /// Learners (non-voting members) and how many of them have every entry the leader
    /// has, when this node leads.
    pub(crate) fn non_voting(&self) -> Option<(usize, usize)> {
        self.replicas_of(false)
    }

    fn replicas_of(&self, voters: bool) -> Option<(usize, usize)> {
        let m = self.metrics();
        if m.state != ServerState::Leader {
            return None;
        }
        let last = m.last_log_index;
        let rep = m.replication.as_ref()?;
        let mem = m.membership_config.membership();
        let mut total = 0;
        let mut synced = 0;
        for (id, matched) in rep.iter() {
            // Learners are no followers (ZooKeeper's observers are not counted either).
            if *id == self.id || mem.voter_ids().any(|v| v == *id) != voters {
                continue;
            }
            total += 1;
            if matched.map(|l| l.index) == last {
                synced += 1;
            }
        }
        Some((total, synced))
    }

    /// Whether this node is in a working quorum: it sees a leader that heard from a
    /// majority lately, and it has applied nearly everything committed. With the
    /// reason when not.
    pub(crate) fn ready(&self) -> (bool, String) {
        let m = self.metrics();
        if m.running_state.is_err() {
            return (false, "raft stopped".into());
        }
        if self.is_removed() {
            return (
                false,
                "removed from the cluster (it serves no writes and never campaigns)".into(),
            );
        }
        if let Some((_, why)) = self.digests.diverged() {
            return (false, format!("diverged: {why}"));
        }
        if self.rebuilding() {
            return (false, "being rebuilt from the leader (it does not vote)".into());
        }
        let Some(leader) = m.current_leader else { return (false, "no leader".into()) };
        if !m.membership_config.membership().voter_ids().any(|v| v == self.id) {
            return (false, "not a voting member".into());
        }
        if leader == self.id {
            let limit = self.election_ms() * 2;
            match m.millis_since_quorum_ack {
                Some(ms) if ms <= limit => {}
                Some(ms) => return (false, format!("no quorum heard from for {ms} ms")),
                None => return (false, "no quorum heard from yet".into()),
            }
        }
        let applied = m.last_applied.map_or(0, |l| l.index + 1);
        let last = m.last_log_index.map_or(0, |i| i + 1);
        let lag = last.saturating_sub(applied);
        if lag > 1000 {
            return (false, format!("{lag} entries behind"));
        }
        (true, format!("member of a quorum, leader {leader}"))
    }

    /// Whether this node is being rebuilt from the leader (it does not vote).
    pub(crate) fn rebuilding(&self) -> bool {
        !self.ident.votes()
    }

    fn cluster(&self) -> Option<String> {
        self.ident.cluster.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The longest election timeout of any member (12 heartbeats).
    fn election_ms(&self) -> u64 {
        self.raft.config().heartbeat_interval * 12
    }

    /// `/status`: JSON.
    pub(crate) fn status_json(&self) -> String {
        let m = self.metrics();
        let (ready, why) = self.ready();
        let mut followers = Vec::new();
        if let Some(rep) = &m.replication {
            for (id, matched) in rep.iter() {
                if *id == self.id {
                    continue;
                }
                let lag = match (m.last_log_index, matched) {
                    (Some(last), Some(l)) => last.saturating_sub(l.index),
                    (Some(last), None) => last + 1,
                    (None, _) => 0,
                };
                followers.push(format!(
                    "{{\"id\":{id},\"matched\":{},\"lag\":{lag}}}",
                    matched.map_or("null".to_string(), |l| l.index.to_string())
                ));
            }
        }
        let mem = m.membership_config.membership();
        let voters: Vec<String> = mem.voter_ids().map(|v| v.to_string()).collect();
        let learners: Vec<String> = mem.learner_ids().map(|v| v.to_string()).collect();
        let (_, zxid) = self.applied();
        let members: Vec<String> = self
            .members
            .iter()
            .map(|(id, p)| {
                format!(
                    "{{\"id\":{id},\"raft\":\"{}\",\"client_port\":{}}}",
                    p.raft_addr(),
                    p.client_port
                )
            })
            .collect();
        format!(
            "{{\"id\":{},\"cluster\":\"{}\",\"state\":\"{}\",\"term\":{},\"leader\":{},\"last_log_index\":{},\"commit_index\":{},\"applied_index\":{},\"applied_zxid\":\"{:#x}\",\"snapshot_index\":{},\"purged_index\":{},\"membership_log_id\":{},\"membership_version\":{},\"voters\":[{}],\"learners\":[{}],\"rebuilding\":{},\"removed\":{},\"digest\":{},\"ready\":{ready},\"reason\":\"{}\",\"followers\":[{}],\"members\":[{}]}}\n",
            self.id,
            self.cluster().unwrap_or_default(),
            self.state_name(),
            m.current_term,
            m.current_leader.map_or("null".into(), |l| l.to_string()),
            m.last_log_index.map_or("null".into(), |i| i.to_string()),
            m.last_applied.map_or("null".into(), |l| l.index.to_string()),
            m.last_applied.map_or("null".into(), |l| l.index.to_string()),
            zxid,
            m.snapshot.map_or("null".into(), |l| l.index.to_string()),
            m.purged.map_or("null".into(), |l| l.index.to_string()),
            m.membership_config.log_id().map_or("null".into(), |l| format!("\"{}-{}\"", l.leader_id.term, l.index)),
            members::version_of(&m),
            voters.join(","),
            learners.join(","),
            self.rebuilding(),
            self.is_removed(),
            self.digests.status(),
            why.replace('"', "'"),
            followers.join(","),
            members.join(","),
        )
    }
}

// ---------------------------------------------------------------- the log

/// The replicated [`TxnLog`]: on the leader, txns are prepped against a speculative
/// copy of the tree and each batch is proposed to Raft as one entry, up to
/// [`PIPELINE_DEPTH`] batches in flight; on a follower, writes are forwarded.
pub(crate) struct RaftLog {
    replica: Arc<Replica>,
    engine: NativeEngine,
    shared: Arc<Shared>,
    /// The tree writes are prepped against: the applied tree plus every batch in
    /// flight and what this batch appended.
    spec: DataTree,
    pending: Vec<Txn>,
    /// The term this node last led in, once its predecessors' entries are applied.
    led: Option<u64>,
    sync_due: bool,
    /// This follower's stream of forwarded runs (see [`commit::Stream`]).
    fwd: FwdStream,
}

/// A follower's stream of runs forwarded to the leader.
struct FwdStream {
    /// This process's incarnation.
    nonce: u64,
    /// The leader of the current stream (`None`: the next run starts a new stream).
    leader: Option<u64>,
    epoch: u64,
    seq: u64,
    /// Runs were forwarded without waiting since the committer last had nothing in
    /// flight.
    pipelined: bool,
}

impl RaftLog {
    pub(crate) fn new(replica: Arc<Replica>, engine: NativeEngine, shared: Arc<Shared>) -> RaftLog {
        let spec = engine.view().0;
        let fwd =
            FwdStream { nonce: new_nonce(), leader: None, epoch: 0, seq: 0, pipelined: false };
        RaftLog {
            replica,
            engine,
            shared,
            spec,
            pending: Vec::new(),
            led: None,
            sync_due: false,
            fwd,
        }
    }

    /// The leader to forward writes to (waiting a few election timeouts for one).
    fn forward_target(&self) -> Result<(u64, String), String> {
        if self.replica.is_removed() {
            return Err(format!(
                "node {} was removed from the cluster: it serves no writes",
                self.replica.id
            ));
        }
        let wait_until = Instant::now() + Duration::from_millis(self.replica.election_ms() * 3);
        let (leader, addr) = loop {
            match self.replica.leader() {
                Some(l) => break l,
                None if Instant::now() < wait_until => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                None => return Err("no leader".into()),
            }
        };
        if leader == self.replica.id {
            return Err("this node became the leader meanwhile".into());
        }
        Ok((leader, addr))
    }

    /// The place of the next run forwarded to `leader`: a new stream when the leader
    /// is not the one of the current stream (or the stream broke).
    fn next_run(&mut self, leader: u64) -> commit::Stream {
        if self.fwd.leader != Some(leader) {
            self.fwd.leader = Some(leader);
            self.fwd.epoch += 1;
            self.fwd.seq = 0;
        }
        let s = commit::Stream {
            from: self.replica.id,
            nonce: self.fwd.nonce,
            epoch: self.fwd.epoch,
            seq: self.fwd.seq,
        };
        self.fwd.seq += 1;
        s
    }

    /// Sends a run to the leader (queued on the connection in the committer's order)
    /// and returns the wait for its answers: the leader's answers, once this server
    /// has applied everything they answered.
    fn send_run(
        &mut self,
        items: &[FwdItem],
    ) -> Result<impl std::future::Future<Output = Result<Vec<FwdAnswer>, String>>, String> {
        let (leader, addr) = self.forward_target()?;
        let stream = self.next_run(leader);
        let mut msg = vec![FORWARD_RUN];
        msg.extend_from_slice(&encode_run(&stream, items));
        let replica = self.replica.clone();
        let call = self.replica.rt.block_on(replica.peers.send(leader, &addr, APP, &msg)).map_err(
            |e| {
                self.fwd.leader = None;
                format!("node {leader}: {e}")
            },
        )?;
        Ok(async move {
            let b = call.answer(CALL_TIMEOUT).await.map_err(|e| format!("node {leader}: {e}"))?;
            let (zxid, answers) = decode_answers(&b).map_err(|e| format!("node {leader}: {e}"))?;
            replica.wait_applied(zxid).await?;
            Ok::<_, String>(answers)
        })
    }

    /// Leadership just began (term `term`): everything committed before is applied,
    /// sessions get a full timeout, new session ids are this node's.
    fn take_lead(&mut self, term: u64) -> Result<(), String> {
        let raft = self.replica.raft.clone();
        self.replica
            .rt
            .block_on(async move {
                tokio::time::timeout(CALL_TIMEOUT, raft.ensure_linearizable()).await
            })
            .map_err(|_| "leadership not confirmed in time".to_string())?
            .map_err(|e| e.to_string())?;
        let tree = self.engine.view().0;
        let now = Instant::now();
        {
            let mut ss = lock(&self.shared.sessions);
            let mut max_id = 0i64;
            for s in tree.sessions() {
                max_id = max_id.max(s.id.0);
                let deadline =
                    now + Duration::from_millis(u64::try_from(s.timeout_ms).unwrap_or(0));
                ss.map
                    .entry(s.id.0)
                    .and_modify(|e| {
                        e.deadline = deadline;
                        e.closing = false;
                    })
                    .or_insert(Sess {
                        timeout_ms: s.timeout_ms,
                        deadline,
                        conn: None,
                        closing: false,
                    });
            }
            let id = u8::try_from(self.replica.id).unwrap_or(u8::MAX);
            ss.next_id =
                ss.next_id.max(session::first_session_id(id, now_ms(), max_id.saturating_add(1)));
        }
        info!(term, "leading: {} sessions carried over", tree.sessions().len());
        self.led = Some(term);
        Ok(())
    }
}

impl TxnLog for RaftLog {
    fn with_tree<R>(&self, f: impl FnOnce(&DataTree) -> R) -> R {
        f(&self.spec)
    }

    fn last_zxid(&self) -> Zxid {
        self.spec.last_processed_zxid()
    }

    fn append(&mut self, txn: &Txn) -> Option<TxnResult> {
        let r = self.spec.apply(txn);
        self.pending.push(txn.clone());
        Some(r)
    }

    /// Proposes and waits for the batch to land (the committer proposes through
    /// [`TxnLog::propose`] and does not wait; this is the same path, waited for).
    fn commit(&mut self) -> Result<(), String> {
        let (tx, rx) = stdmpsc::channel();
        self.propose(commit::Landing::new(move |r| {
            let _ = tx.send(r);
        }));
        let r = rx.recv().unwrap_or_else(|_| Err("the proposal was dropped".into()));
        if r.is_err() {
            self.failed();
        }
        r
    }

    fn depth(&self) -> usize {
        PIPELINE_DEPTH
    }

    /// The whole batch is one Raft entry (one append, one replication message, one
    /// apply per node for all of its txns). It is handed to Raft here, in the
    /// committer's order; a task waits for its commit and for the applier to have
    /// applied its last txn, and tells `landing`.
    fn propose(&mut self, landing: commit::Landing) {
        let txns = std::mem::take(&mut self.pending);
        let sync = std::mem::take(&mut self.sync_due);
        let raft = self.replica.raft.clone();
        let replica = self.replica.clone();
        let last = txns.last().map(|t| t.header.zxid.0);
        let answer = if txns.is_empty() {
            None
        } else {
            let raft = raft.clone();
            match self.replica.rt.block_on(async move { raft.client_write_ff(txns).await }) {
                Ok(a) => Some(a),
                Err(e) => return landing.tell(Err(e.to_string())),
            }
        };
        self.replica.rt.spawn(async move {
            let all = async {
                if let Some(a) = answer {
                    match a.await {
                        Ok(Ok(_)) => {}
                        Ok(Err(e)) => return Err(e.to_string()),
                        Err(_) => return Err("raft dropped the proposal".to_string()),
                    }
                }
                if sync && last.is_none() {
                    raft.ensure_linearizable().await.map_err(|e| e.to_string())?;
                }
                Ok(())
            };
            let r = async {
                tokio::time::timeout(CALL_TIMEOUT, all)
                    .await
                    .map_err(|_| format!("not committed within {CALL_TIMEOUT:?}"))??;
                if let Some(z) = last {
                    replica.wait_applied(z).await?;
                }
                Ok::<(), String>(())
            };
            landing.tell(r.await);
        });
    }

    /// What was proposed may still commit: the next batch starts over from what is
    /// applied once every proposal in flight has landed.
    fn failed(&mut self) {
        self.led = None;
        self.fwd.leader = None;
    }

    fn committed_tree(&self) -> DataTree {
        self.spec.clone()
    }

    /// Raft decides snapshots (every `snapCount` entries, and then purges the log);
    /// this asks it for one now.
    fn start_snapshot(&mut self) -> Result<Option<SnapshotTicket>, String> {
        let raft = self.replica.raft.clone();
        self.replica
            .rt
            .block_on(async move { raft.trigger().snapshot().await })
            .map_err(|e| e.to_string())?;
        Ok(None)
    }

    fn begin(&mut self, in_flight: bool) -> Begin {
        // A leadership transfer holds new proposals back for a moment, so that the new
        // leader's log is as long as this one's when it asks for votes.
        let held = Instant::now();
        while self.replica.mstate.transferring() && held.elapsed() < members::TRANSFER_HOLD {
            std::thread::sleep(Duration::from_millis(5));
        }
        let m = self.replica.metrics();
        let leads = m.state == ServerState::Leader && m.current_leader == Some(self.replica.id);
        if !in_flight {
            self.fwd.pipelined = false;
        } else if self.fwd.pipelined {
            // Runs forwarded are in flight: more go to the same leader; anything else
            // waits until they all landed.
            if !leads && self.forward_ready() {
                self.led = None;
                self.spec = self.shared.published.read().unwrap_or_else(|e| e.into_inner()).clone();
                return Begin::Forward;
            }
            return Begin::Drain;
        }
        // Batches in flight were prepped on the speculative tree of this term's
        // leadership: the next one goes on that tree, or, when the term ended or a
        // batch failed, after they all landed, from the committed tree.
        if in_flight && !(leads && self.led == Some(m.current_term)) {
            return Begin::Drain;
        }
        if leads {
            if self.led != Some(m.current_term) {
                if let Err(e) = self.take_lead(m.current_term) {
                    warn!("cannot lead yet: {e}");
                    self.led = None;
                    self.spec = self.engine.view().0;
                    return Begin::Forward;
                }
            }
            if !in_flight {
                self.spec = self.engine.view().0;
            }
            self.pending.clear();
            Begin::Prep
        } else {
            self.led = None;
            self.spec = self.shared.published.read().unwrap_or_else(|e| e.into_inner()).clone();
            Begin::Forward
        }
    }

    fn publishes(&self) -> bool {
        false
    }

    fn note_sync(&mut self) {
        self.sync_due = true;
    }

    fn commit_due(&self) -> bool {
        self.sync_due
    }

    fn forward(&mut self, items: Vec<FwdItem>) -> Result<Vec<FwdAnswer>, String> {
        let answers = self.send_run(&items).and_then(|wait| self.replica.rt.block_on(wait));
        if answers.is_err() {
            self.fwd.leader = None;
        }
        self.spec = self.shared.published.read().unwrap_or_else(|e| e.into_inner()).clone();
        answers
    }

    fn forward_depth(&self) -> usize {
        PIPELINE_DEPTH
    }

    fn refresh(&mut self) {
        self.spec = self.shared.published.read().unwrap_or_else(|e| e.into_inner()).clone();
    }

    fn forward_ready(&self) -> bool {
        self.fwd.leader.is_some() && self.replica.leader().map(|l| l.0) == self.fwd.leader
    }

    /// The run is queued on the connection to the leader here, in the committer's
    /// order; a task waits for its answers and for this server to apply them.
    fn forward_async(
        &mut self,
        items: Vec<FwdItem>,
        in_flight: bool,
        done: commit::Landing<Vec<FwdAnswer>>,
    ) {
        if in_flight && !self.forward_ready() {
            // Runs to another leader are in flight: this one must not overtake them.
            self.fwd.leader = None;
            return done.tell(Err("the leader changed while writes were forwarded".into()));
        }
        let wait = match self.send_run(&items) {
            Ok(w) => w,
            Err(e) => return done.tell(Err(e)),
        };
        self.fwd.pipelined = true;
        self.replica.rt.spawn(async move { done.tell(wait.await) });
    }
}

// ---------------------------------------------------------------- forwarding

/// An application call: forwarded writes (a follower sending one run at a time; the
/// format of earlier versions).
const FORWARD: u8 = 1;
/// An application call: a run of forwarded writes with its place in the follower's
/// stream ([`commit::Stream`]): the follower's incarnation, epoch and sequence
/// number, then the writes as [`FORWARD`] carries them.
const FORWARD_RUN: u8 = 10;
/// An application call: the sessions connected to a follower.
const TOUCH: u8 = 2;
/// An application call: has the callee ever seen a leader (answer `[1]`) or not
/// (`[0]`)? Asked by a node deciding whether to create the cluster.
const PROBE: u8 = 3;
/// An application call: rebuild the caller (it lost its Raft state); the body is its
/// Raft address. Answered, once it is a voter again, with the index (`u64`) of the
/// membership entry that made it one.
const REJOIN: u8 = 4;
/// An application call: a membership request forwarded to the leader (see
/// [`members`]).
const ADMIN: u8 = 5;
/// An application call from the leader: campaign now (a leadership transfer).
const ELECT: u8 = 6;
/// An application call from the leader: you were removed from the membership.
const REMOVED: u8 = 7;
/// An application call: this node's incarnation (`u64`, see [`Replica`]'s `nonce`).
const WHO: u8 = 8;
/// An application call: the callee's tree digest samples from a Raft index on (see
/// [`digest`]).
const DIGESTS: u8 = 9;

fn encode_forward(items: &[FwdItem]) -> Vec<u8> {
    let mut w = Writer::default();
    w.0.extend_from_slice(&u32::try_from(items.len()).unwrap_or(u32::MAX).to_le_bytes());
    for it in items {
        match it {
            FwdItem::Request { session, xid, auths, frame } => {
                w.u8(0);
                w.u64(session.0 as u64);
                w.u64(u64::from(*xid as u32));
                w.0.extend_from_slice(
                    &u32::try_from(auths.len()).unwrap_or(u32::MAX).to_le_bytes(),
                );
                for a in auths {
                    w.bytes(a.scheme.as_bytes());
                    w.bytes(a.id.as_bytes());
                }
                w.bytes(frame);
            }
            FwdItem::Failed { session, xid } => {
                w.u8(1);
                w.u64(session.0 as u64);
                w.u64(u64::from(*xid as u32));
            }
            FwdItem::CreateSession { timeout_ms } => {
                w.u8(2);
                w.u64(u64::from(*timeout_ms as u32));
            }
        }
    }
    w.0
}

fn encode_run(s: &commit::Stream, items: &[FwdItem]) -> Vec<u8> {
    let mut w = Writer::default();
    w.u64(s.nonce);
    w.u64(s.epoch);
    w.u64(s.seq);
    w.0.extend_from_slice(&encode_forward(items));
    w.0
}

/// A [`FORWARD_RUN`] call's body: the run's place (its follower is `from`) and the
/// writes.
fn decode_run(from: u64, b: &[u8]) -> Result<(commit::Stream, Vec<FwdItem>), String> {
    let mut r = Reader::new(b);
    let nonce = r.u64().map_err(|e| e.0)?;
    let epoch = r.u64().map_err(|e| e.0)?;
    let seq = r.u64().map_err(|e| e.0)?;
    let items = decode_forward(b.get(24..).unwrap_or_default())?;
    Ok((commit::Stream { from, nonce, epoch, seq }, items))
}

fn text(r: &mut Reader<'_>) -> Result<String, String> {
    let b = r.bytes().map_err(|e| e.0)?;
    String::from_utf8(b.to_vec()).map_err(|_| "a text is not UTF-8".to_string())
}

fn decode_forward(b: &[u8]) -> Result<Vec<FwdItem>, String> {
    let mut r = Reader::new(b);
    let n = r.count(9).map_err(|e| e.0)?;
    let mut out = Vec::with_capacity(n);
    let i32_of = |v: u64| -> Result<i32, String> {
        u32::try_from(v).map(|x| x as i32).map_err(|_| format!("{v} is not a 32-bit value"))
    };
    for _ in 0..n {
        let item = match r.u8().map_err(|e| e.0)? {
            0 => {
                let session = SessionId(r.u64().map_err(|e| e.0)? as i64);
                let xid = i32_of(r.u64().map_err(|e| e.0)?)?;
                let na = r.count(8).map_err(|e| e.0)?;
                let mut auths = Vec::with_capacity(na);
                for _ in 0..na {
                    let scheme = text(&mut r)?;
                    let id = text(&mut r)?;
                    auths.push(Id { scheme, id });
                }
                let frame = r.bytes().map_err(|e| e.0)?.to_vec();
                FwdItem::Request { session, xid, auths, frame }
            }
            1 => {
                let session = SessionId(r.u64().map_err(|e| e.0)? as i64);
                let xid = i32_of(r.u64().map_err(|e| e.0)?)?;
                FwdItem::Failed { session, xid }
            }
            2 => FwdItem::CreateSession { timeout_ms: i32_of(r.u64().map_err(|e| e.0)?)? },
            k => return Err(format!("unknown forwarded item kind {k}")),
        };
        out.push(item);
    }
    r.end().map_err(|e| e.0)?;
    Ok(out)
}

fn encode_answers(zxid: i64, answers: &[FwdAnswer]) -> Vec<u8> {
    let mut w = Writer::default();
    w.u64(zxid as u64);
    w.0.extend_from_slice(&u32::try_from(answers.len()).unwrap_or(u32::MAX).to_le_bytes());
    for a in answers {
        match a {
            FwdAnswer::Frame(f) => {
                w.u8(0);
                w.bytes(f);
            }
            FwdAnswer::Session(None) => w.u8(1),
            FwdAnswer::Session(Some(id)) => {
                w.u8(2);
                w.u64(id.0 as u64);
            }
        }
    }
    w.0
}

fn decode_answers(b: &[u8]) -> Result<(i64, Vec<FwdAnswer>), String> {
    let mut r = Reader::new(b);
    let zxid = r.u64().map_err(|e| e.0)? as i64;
    let n = r.count(1).map_err(|e| e.0)?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(match r.u8().map_err(|e| e.0)? {
            0 => FwdAnswer::Frame(r.bytes().map_err(|e| e.0)?.to_vec()),
            1 => FwdAnswer::Session(None),
            2 => FwdAnswer::Session(Some(SessionId(r.u64().map_err(|e| e.0)? as i64))),
            k => return Err(format!("unknown answer kind {k}")),
        });
    }
    r.end().map_err(|e| e.0)?;
    Ok((zxid, out))
}

/// The leader's side of the application calls.
async fn app_call(replica: Arc<Replica>, from: u64, body: Vec<u8>) -> Result<Vec<u8>, String> {
    let shared = replica.shared.get().and_then(Weak::upgrade).ok_or("the server is not running")?;
    let (kind, rest) = body.split_first().ok_or("empty call")?;
    match *kind {
        FORWARD => {
            if !replica.is_leader() {
                return Err(format!("node {} is not the leader", replica.id));
            }
            let items = decode_forward(rest)?;
            let (tx, rx) = oneshot::channel();
            shared.submit(Job::Forwarded { stream: None, items, reply: tx });
            let (zxid, answers) =
                rx.await.map_err(|_| "the writes could not be committed".to_string())?;
            Ok(encode_answers(zxid, &answers))
        }
        FORWARD_RUN => {
            if !replica.is_leader() {
                return Err(format!("node {} is not the leader", replica.id));
            }
            let (stream, items) = decode_run(from, rest)?;
            let (tx, rx) = oneshot::channel();
            replica
                .gate(stream, Job::Forwarded { stream: Some(stream), items, reply: tx }, &shared)
                .await;
            let (zxid, answers) =
                rx.await.map_err(|_| "the writes could not be committed".to_string())?;
            Ok(encode_answers(zxid, &answers))
        }
        TOUCH => {
            let mut r = Reader::new(rest);
            let n = r.count(8).map_err(|e| e.0)?;
            let now = Instant::now();
            let mut ss = lock(&shared.sessions);
            for _ in 0..n {
                let id = r.u64().map_err(|e| e.0)? as i64;
                if let Some(s) = ss.map.get_mut(&id) {
                    if !s.closing {
                        s.deadline =
                            now + Duration::from_millis(u64::try_from(s.timeout_ms).unwrap_or(0));
                    }
                }
            }
            let _ = from;
            Ok(Vec::new())
        }
        PROBE => {
            let m = replica.metrics();
            let seen = m.vote.is_committed()
                || m.current_leader.is_some()
                || m.last_log_index.is_some_and(|i| i > 0);
            Ok(vec![u8::from(seen)])
        }
        REJOIN => {
            let mut r = Reader::new(rest);
            let addr = text(&mut r)?;
            // The caller's incarnation (absent: unknown).
            let nonce = if r.end().is_ok() { 0 } else { r.u64().map_err(|e| e.0)? };
            r.end().map_err(|e| e.0)?;
            rebuild(&replica, from, addr, nonce).await
        }
        ADMIN => {
            let req = std::str::from_utf8(rest).map_err(|_| "a request is not UTF-8")?;
            let (status, body) = replica.admin_here(req).await;
            let mut out = status.to_le_bytes().to_vec();
            out.extend_from_slice(body.as_bytes());
            Ok(out)
        }
        ELECT => members::elect_call(&replica, from).await,
        REMOVED => members::removed_call(&replica, from),
        WHO => Ok(replica.nonce.to_le_bytes().to_vec()),
        DIGESTS => digest::answer(&replica, rest),
        k => Err(format!("unknown application call {k}")),
    }
}

/// The leader's side of a rebuild: node `node`, which lost its Raft state, becomes a
/// learner (a logged change committed by the other voters), is brought up to date,
/// and becomes a voter again. Returns the index of the membership entry that made it a
/// voter.
async fn rebuild(
    replica: &Replica,
    node: u64,
    addr: String,
    nonce: u64,
) -> Result<Vec<u8>, String> {
    let _one = replica.changes.lock().await;
    if !replica.is_leader() {
        return Err(format!("node {} is not the leader", replica.id));
    }
    let m = replica.metrics();
    let mem = m.membership_config.membership();
    if mem.get_node(&node).is_none() {
        return Err(format!("node {node} is not a member of this cluster"));
    }
    let voter = mem.voter_ids().any(|v| v == node);
    if voter && nonce != 0 && replica.mstate.promoted(node) == Some(nonce) {
        // This leader made it a voter in this very incarnation (an added node), and it
        // has not voted since: nothing was lost.
        let at = m.membership_config.log_id().map_or(0, |l| l.index);
        info!("node {node} was added as a voter in this incarnation: no rebuild needed");
        return Ok(at.to_le_bytes().to_vec());
    }
    let _flight = replica.mstate.flight(format!("rebuilding node {node}"));
    let raft = &replica.raft;
    let one: std::collections::BTreeSet<u64> = [node].into_iter().collect();
    if voter {
        info!("node {node} lost its Raft state: it is a learner until it has caught up");
        raft.change_membership(openraft::ChangeMembers::RemoveVoters(one.clone()), true)
            .await
            .map_err(|e| format!("making node {node} a learner: {e}"))?;
    }
    let t = Instant::now();
    raft.add_learner(node, BasicNode::new(addr), true)
        .await
        .map_err(|e| format!("bringing node {node} up to date: {e}"))?;
    let r = raft
        .change_membership(openraft::ChangeMembers::AddVoterIds(one), true)
        .await
        .map_err(|e| format!("making node {node} a voter again: {e}"))?;
    info!("node {node} rebuilt in {:?}: a voter again at index {}", t.elapsed(), r.log_id.index);
    Ok(r.log_id.index.to_le_bytes().to_vec())
}

/// An empty data directory started with `--bootstrap`: creates the cluster only when
/// every other member answers that it has never seen a leader; when one has, this
/// node is rebuilt from the leader instead.
async fn form(replica: Arc<Replica>, dir: std::path::PathBuf, cluster: String) {
    let me = replica.id;
    let mut said = Instant::now();
    loop {
        let mut all_new = true;
        let mut exists: Option<(String, bool)> = None;
        for (id, p) in replica.members.iter().filter(|(id, _)| **id != me) {
            let asked = replica
                .peers
                .call(*id, &p.raft_addr(), APP, &[PROBE], Duration::from_secs(2))
                .await;
            match asked {
                Ok(b) if b == [0] => {}
                Ok(_) => {
                    exists = Some((format!("node {id} has seen a leader"), true));
                    break;
                }
                Err(e) if e.to_string().contains("belongs to cluster") => {
                    exists = Some((format!("node {id}: {e}"), false));
                    break;
                }
                Err(e) => {
                    all_new = false;
                    if said.elapsed() > Duration::from_secs(5) {
                        info!("waiting for node {id} before creating cluster {cluster}: {e}");
                        said = Instant::now();
                    }
                }
            }
        }
        if let Some((why, same_id)) = exists {
            warn!("a cluster already exists ({why}): not creating one; this node is rebuilt from its leader");
            if let Err(e) = mark_rejoin(&dir) {
                error!("{e}");
            }
            if same_id {
                if let Err(e) = write_identity(&dir, &cluster, me) {
                    error!("{e}");
                }
            } else {
                // The cluster's id is not the one --peers gives (a cluster recovered with
                // `keeperkit recover --force-new-cluster`): take the one the member named
                // (waiting for a leader's call instead could adopt the id of another new
                // node's probe).
                let named = why
                    .split("belongs to cluster ")
                    .nth(1)
                    .and_then(|r| r.split(',').next())
                    .filter(|c| {
                        !c.is_empty()
                            && c.len() <= 64
                            && c.chars().all(|x| x.is_ascii_alphanumeric())
                    })
                    .map(str::to_string);
                if let Some(c) = &named {
                    if let Err(e) = write_identity(&dir, c, me) {
                        error!("{e}");
                    }
                }
                *replica.ident.cluster.lock().unwrap_or_else(|e| e.into_inner()) = named;
            }
            rejoin(replica, dir).await;
            return;
        }
        if all_new {
            if let Err(e) = write_identity(&dir, &cluster, me) {
                error!("creating cluster {cluster}: {e}");
                return;
            }
            info!("every member is new: bootstrapping cluster {cluster}");
            replica.ident.no_vote.store(false, std::sync::atomic::Ordering::SeqCst);
            replica.raft.runtime_config().elect(true);
            let members: BTreeMap<u64, BasicNode> = replica
                .members
                .iter()
                .map(|(id, p)| (*id, BasicNode::new(p.node_addr())))
                .collect();
            if let Err(e) = replica.raft.initialize(members).await {
                warn!("bootstrapping: {e}");
            }
            return;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// Asks the leader (or, while none is known, every member) to rebuild this node; once
/// it is a voter again, ends the rebuild (the `rejoining` file goes, votes and
/// elections come back).
async fn rejoin(replica: Arc<Replica>, dir: std::path::PathBuf) {
    let me = replica.id;
    let Some(my_addr) = replica.members.get(&me).map(PeerAddr::node_addr) else { return };
    let mut w = Writer::default();
    w.u8(REJOIN);
    w.bytes(my_addr.as_bytes());
    w.u64(replica.nonce);
    let mut said = Instant::now();
    let voter_at = 'rebuilt: loop {
        let voter_at = 'ask: loop {
            tokio::time::sleep(Duration::from_millis(300)).await;
            if replica.raft.metrics().borrow().running_state.is_err() {
                return;
            }
            if replica.cluster().is_none() {
                // Without a cluster id this node cannot call: a leader contacts it.
                continue;
            }
            let targets: Vec<(u64, String)> = match replica.leader() {
                Some(l) if l.0 != me => vec![l],
                _ => replica
                    .members
                    .iter()
                    .filter(|(id, _)| **id != me)
                    .map(|(id, p)| (*id, p.raft_addr()))
                    .collect(),
            };
            for (id, addr) in targets {
                match replica.peers.call(id, &addr, APP, &w.0, REJOIN_TIMEOUT).await {
                    Ok(b) if b.len() == 8 => {
                        let mut a = [0u8; 8];
                        a.copy_from_slice(&b);
                        break 'ask u64::from_le_bytes(a);
                    }
                    Ok(_) => warn!("node {id}: a bad answer to the rebuild request"),
                    Err(e) => {
                        if said.elapsed() > Duration::from_secs(5) {
                            info!("rebuild: node {id}: {e}");
                            said = Instant::now();
                        }
                    }
                }
            }
        };
        // This node's own log must hold the change that made it a voter.
        let mut rx = replica.raft.metrics();
        let held = tokio::time::timeout(
            CALL_TIMEOUT,
            rx.wait_for(|m| {
                m.membership_config.log_id().is_some_and(|l| l.index >= voter_at)
                    && m.membership_config.membership().voter_ids().any(|v| v == me)
            }),
        )
        .await
        .is_ok_and(|r| r.is_ok());
        if held {
            break 'rebuilt voter_at;
        }
        warn!("rebuild: the membership entry {voter_at} did not arrive here; asking again");
    };
    let marker = dir.join(REJOIN_FILE);
    let done = std::fs::remove_file(&marker)
        .or_else(|e| if e.kind() == std::io::ErrorKind::NotFound { Ok(()) } else { Err(e) })
        .and_then(|_| std::fs::File::open(&dir)?.sync_all());
    if let Err(e) = done {
        error!("{}: {e}; the rebuild ends at the next start", marker.display());
    }
    replica.ident.no_vote.store(false, std::sync::atomic::Ordering::SeqCst);
    replica.raft.runtime_config().elect(true);
    info!("rebuilt from the leader: a voter again (membership entry {voter_at})");
}

/// Writes the `rejoining` marker durably: it holds this incarnation's nonce (see
/// [`Replica`]).
fn mark_rejoin(dir: &Path) -> Result<(), String> {
    let p = dir.join(REJOIN_FILE);
    if p.exists() {
        return Ok(());
    }
    let io = |e: std::io::Error| format!("{}: {e}", p.display());
    std::fs::create_dir_all(dir).map_err(io)?;
    let mut f = std::fs::File::create(&p).map_err(io)?;
    f.write_all(format!("nonce={}\n", new_nonce()).as_bytes()).map_err(io)?;
    f.sync_all().map_err(io)?;
    std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(io)
}

/// The nonce in `rejoining` (0 when absent or unreadable: never matches).
fn read_nonce(dir: &Path) -> u64 {
    std::fs::read_to_string(dir.join(REJOIN_FILE))
        .ok()
        .and_then(|t| t.trim().strip_prefix("nonce=").and_then(|n| n.parse().ok()))
        .unwrap_or(0)
}

/// A number that differs between two incarnations of a node (the time and the
/// process id through a randomly keyed hash); not a secret.
fn new_nonce() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    h.write_u128(now.map_or(0, |d| d.as_nanos()));
    h.write_u32(std::process::id());
    h.finish() | 1
}

/// A follower reports the sessions connected to it to the leader, every half tick.
async fn touch_loop(replica: Arc<Replica>, shared: Weak<Shared>, period: Duration) {
    let mut iv = tokio::time::interval(period);
    loop {
        iv.tick().await;
        let Some(shared) = shared.upgrade() else { return };
        if replica.is_leader() {
            continue;
        }
        let Some((leader, addr)) = replica.leader() else { continue };
        let ids: Vec<i64> = lock(&shared.sessions)
            .map
            .iter()
            .filter(|(_, s)| s.conn.is_some())
            .map(|(id, _)| *id)
            .collect();
        drop(shared);
        if ids.is_empty() {
            continue;
        }
        let mut w = Writer::default();
        w.u8(TOUCH);
        w.0.extend_from_slice(&u32::try_from(ids.len()).unwrap_or(u32::MAX).to_le_bytes());
        for id in ids {
            w.u64(id as u64);
        }
        if let Err(e) = replica.peers.call(leader, &addr, APP, &w.0, period * 2).await {
            warn!("reporting sessions to node {leader}: {e}");
        }
    }
}

// ---------------------------------------------------------------- the applier

/// Mirrors every applied txn into the published tree, fires this server's watches,
/// tracks sessions; then tells who waits (`applied`).
fn applier(
    shared: Weak<Shared>,
    engine: NativeEngine,
    mut tree: DataTree,
    rx: stdmpsc::Receiver<Applied>,
    applied: watch::Sender<(u64, i64)>,
    digests: Arc<digest::Digests>,
) {
    let mut index = applied.borrow().0;
    // After a snapshot install, the entries the engine applied before the applier took
    // its view are in that view already: they are not applied twice.
    let mut skip_upto: Option<u64> = None;
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < 4096 {
            match rx.try_recv() {
                Ok(a) => batch.push(a),
                Err(_) => break,
            }
        }
        let Some(shared) = shared.upgrade() else { return };
        let mut changes = Vec::new();
        let mut created = Vec::new();
        let mut closed = Vec::new();
        let mut reset = false;
        for a in batch {
            match a {
                Applied::Txns { index: i, txns } => {
                    if skip_upto.is_some_and(|s| i <= s) {
                        continue;
                    }
                    index = i;
                    for txn in txns {
                        let subs: Vec<TxnBody> = match &txn.body {
                            TxnBody::Multi(s) => s.clone(),
                            TxnBody::CloseSession { paths } => paths
                                .iter()
                                .flatten()
                                .map(|p| TxnBody::Delete { path: p.clone() })
                                .collect(),
                            b => vec![b.clone()],
                        };
                        let pre = commit::pre_acls(&tree, &subs);
                        let r = tree.apply(&txn);
                        if !r.is_ok()
                            && !matches!(txn.body, TxnBody::Error { .. } | TxnBody::Multi(_))
                        {
                            error!("txn {:#x} applied with {r:?} on the mirror", txn.header.zxid.0);
                        }
                        changes.extend(commit::changes_of(&subs, &pre, &tree));
                        match &txn.body {
                            TxnBody::CreateSession { timeout_ms } => {
                                created.push((txn.header.client_id, *timeout_ms))
                            }
                            // An expiry (the server's own closeSession, xid 0) closes the
                            // session's connection here; a client's closeSession is answered
                            // first and then closed by its committer.
                            TxnBody::CloseSession { .. } => {
                                closed.push((txn.header.client_id, txn.header.cxid == 0))
                            }
                            _ => {}
                        }
                    }
                    digests.record(i, tree.digest());
                }
                Applied::Other { index: i } => {
                    if skip_upto.is_some_and(|s| i <= s) {
                        continue;
                    }
                    index = i;
                    digests.record(i, tree.digest());
                }
                Applied::Installed => {
                    let (t, pos) = engine.view();
                    tree = t;
                    index = pos.index.saturating_sub(1);
                    skip_upto = Some(index);
                    digests.reset();
                    reset = true;
                }
            }
        }
        {
            let mut published = shared.published.write().unwrap_or_else(|e| e.into_inner());
            let mut watches = lock(&shared.watches);
            let mut events = Vec::new();
            commit::fire(&shared, &mut watches, changes, &mut events);
            *published = tree.clone();
        }
        {
            let now = Instant::now();
            let mut ss = lock(&shared.sessions);
            if reset {
                let live: std::collections::HashSet<i64> =
                    tree.sessions().iter().map(|s| s.id.0).collect();
                ss.map.retain(|id, _| live.contains(id));
                for s in tree.sessions() {
                    ss.map.entry(s.id.0).or_insert(Sess {
                        timeout_ms: s.timeout_ms,
                        deadline: now
                            + Duration::from_millis(u64::try_from(s.timeout_ms).unwrap_or(0)),
                        conn: None,
                        closing: false,
                    });
                }
            }
            for (id, timeout_ms) in created {
                ss.map.entry(id.0).or_insert(Sess {
                    timeout_ms,
                    deadline: now + Duration::from_millis(u64::try_from(timeout_ms).unwrap_or(0)),
                    conn: None,
                    closing: false,
                });
            }
            for (id, expired) in closed {
                let conn = ss.map.remove(&id.0).and_then(|s| s.conn);
                if let Some(c) = conn.filter(|_| expired) {
                    if let Some(ci) = lock(&shared.conns).get(&c) {
                        let _ = ci.out.send(Outgoing::Close);
                        ci.close.notify_one();
                    }
                }
            }
        }
        applied.send_replace((index, tree.last_processed_zxid().0));
    }
}

// ---------------------------------------------------------------- starting

/// What [`open`] prepared: the replica, and what the server starts around it.
pub(crate) struct Opened {
    pub(crate) replica: Arc<Replica>,
    pub(crate) engine: NativeEngine,
    pub(crate) tree: DataTree,
    raft_listener: tokio::net::TcpListener,
    applied_rx: stdmpsc::Receiver<Applied>,
    /// The peers whose connection to the Raft port ended (see [`leader_gone`]).
    closed_rx: tokio::sync::mpsc::UnboundedReceiver<u64>,
    start: Start,
    dir: std::path::PathBuf,
    join: Option<String>,
}

/// How a replica starts.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Start {
    /// A member with its Raft state.
    Member,
    /// An empty directory with `--bootstrap`: the cluster (this id) is created only if
    /// no other member has seen a leader.
    Form(String),
    /// Rebuilt from the leader (see the module docs).
    Rejoin,
}

/// Why a replica could not start.
pub(crate) fn open_err(msg: impl Into<String>) -> crate::ServeError {
    crate::ServeError::Other(msg.into())
}

/// Opens the data directory as a Raft store, checks or creates its identity, starts
/// Raft and binds the Raft port.
pub(crate) async fn open(
    fs: Arc<dyn keeperkit_vfs::FileSystem>,
    dir: &Path,
    cfg: &crate::ServerConfig,
    rc: &ReplicaConfig,
) -> Result<Opened, crate::ServeError> {
    let me = rc
        .peers
        .get(&rc.id)
        .ok_or_else(|| open_err(format!("--peers does not name this node ({})", rc.id)))?;
    if let Some(why) = members::removed_marker(dir) {
        return Err(open_err(why));
    }
    let identity = read_identity(dir).map_err(open_err)?;
    let cluster = match &identity {
        Some((c, n)) if *n == rc.id => Some(c.clone()),
        Some((_, n)) => {
            return Err(open_err(format!(
                "{} belongs to node {n}, not node {} (--id)",
                dir.display(),
                rc.id
            )))
        }
        None => None,
    };
    let opts = keeperkit_raft::engine_options(dir);
    let (log, sm) = tokio::task::spawn_blocking(move || keeperkit_raft::open(fs, opts))
        .await
        .map_err(|e| open_err(e.to_string()))?
        .map_err(|e| crate::ServeError::Other(format!("opening {}: {e}", dir.display())))?;
    let engine = sm.engine().clone();
    let fresh = engine.server_state().is_empty() && engine.applied().index == 0;
    let rejoining = dir.join(REJOIN_FILE).exists();
    let (cluster, start) = match (cluster, rc.bootstrap) {
        (c, _) if rejoining => {
            info!("{} is being rebuilt from the leader (a {REJOIN_FILE} file is there)", dir.display());
            (c, Start::Rejoin)
        }
        (Some(c), _) if fresh => {
            warn!(
                "{} belongs to cluster {c} but holds no Raft state: rebuilding it from the leader",
                dir.display()
            );
            mark_rejoin(dir).map_err(open_err)?;
            (Some(c), Start::Rejoin)
        }
        (Some(c), true) => {
            info!("{} is already part of cluster {c}: --bootstrap ignored", dir.display());
            (Some(c), Start::Member)
        }
        (Some(c), false) => (Some(c), Start::Member),
        (None, true) if fresh => {
            let c = cluster_id_of(&rc.peers);
            info!("empty data directory: cluster {c} is created only if no other member has seen a leader");
            (Some(c.clone()), Start::Form(c))
        }
        (None, false) if fresh => {
            mark_rejoin(dir).map_err(open_err)?;
            match &rc.join {
                Some(j) => info!("no cluster yet: asking the cluster at {j} to add this node"),
                None => info!("no cluster yet: waiting for a leader to add this node (start the first members with --bootstrap, or this one with --join)"),
            }
            (None, Start::Rejoin)
        }
        (None, _) => {
            return Err(open_err(format!(
                "{} holds Raft state but no {IDENTITY_FILE}: refusing to bootstrap a new cluster over it",
                dir.display()
            )))
        }
    };
    let d2 = dir.to_path_buf();
    let node = rc.id;
    let (closed_tx, closed_rx) = tokio::sync::mpsc::unbounded_channel();
    let ident = Arc::new(Identity {
        node,
        cluster: Mutex::new(cluster),
        adopt: Box::new(move |c| {
            info!("joining cluster {c}");
            write_identity(&d2, c, node)
        }),
        no_vote: std::sync::atomic::AtomicBool::new(start != Start::Member),
        not_member: watch::channel(None).0,
        closed: Some(closed_tx),
    });
    let (atx, arx) = stdmpsc::channel();
    sm.observe(atx);
    let (tree, pos) = engine.view();
    let (election_min, election_max) = election_window(rc.id, rc.heartbeat_ms);
    let config = openraft::Config {
        cluster_name: "keeperkit".into(),
        heartbeat_interval: rc.heartbeat_ms,
        election_timeout_min: election_min,
        election_timeout_max: election_max,
        snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(cfg.snap_count),
        max_in_snapshot_log_to_keep: cfg.snap_count.min(1000),
        enable_elect: start == Start::Member,
        ..Default::default()
    }
    .validate()
    .map_err(|e| open_err(e.to_string()))?;
    let peers = Peers::new(ident.clone());
    let raft = Raft::new(rc.id, Arc::new(config), peers.clone(), log, sm.clone())
        .await
        .map_err(|e| open_err(format!("starting raft: {e}")))?;
    let raft_addr = SocketAddr::new(rc.raft_bind, me.raft_port);
    let raft_listener = tokio::net::TcpListener::bind(raft_addr)
        .await
        .map_err(|source| crate::ServeError::Bind { addr: raft_addr, source })?;
    let (applied, _) = watch::channel((pos.index.saturating_sub(1), tree.last_processed_zxid().0));
    let replica = Arc::new(Replica {
        id: rc.id,
        raft,
        peers,
        members: rc.peers.clone(),
        ident,
        rt: tokio::runtime::Handle::current(),
        applied,
        shared: OnceLock::new(),
        changes: tokio::sync::Mutex::new(()),
        fwd_gate: Mutex::new(BTreeMap::new()),
        dir: dir.to_path_buf(),
        nonce: read_nonce(dir),
        mstate: members::State::default(),
        digests: Arc::default(),
        sm,
        applier: Mutex::new(None),
    });
    Ok(Opened {
        replica,
        engine,
        tree,
        raft_listener,
        applied_rx: arx,
        closed_rx,
        start,
        dir: dir.to_path_buf(),
        join: rc.join.clone(),
    })
}

/// Campaigns at once when the leader's process is gone: its connection to this node's
/// Raft port ended and nothing listens on its Raft port any more ([`port_gone`]: a
/// killed process, or one that exited; a live leader whose connection broke answers,
/// and nothing happens). Without
/// this, followers wait for their election timeout (6 to 12.5 heartbeats), and a vote
/// is granted only once the voter's leader lease (its own longest timeout) has passed:
/// about two seconds with 100 ms heartbeats, where ZooKeeper's followers elect as soon
/// as the leader's socket closes.
///
/// Every follower that sees it campaigns at once: a campaign drops its own lease, so
/// it can grant a later one's vote. Those campaigns share a term and split the votes;
/// the surviving voter with the lowest id campaigns once more a heartbeat later, in a
/// new term the others (candidates now, no lease) grant if its log is as long as
/// theirs. When that fails (a longer log elsewhere, a peer that saw nothing), the
/// election timeouts decide as before. Only a voter that may vote campaigns: never a
/// node being rebuilt (it forgot its term and vote) or one removed from the cluster.
async fn leader_gone(replica: Arc<Replica>, mut closed: tokio::sync::mpsc::UnboundedReceiver<u64>) {
    let heartbeat = Duration::from_millis(replica.raft.config().heartbeat_interval);
    // The leader and term this node last campaigned after: a leader has several
    // connections to this node, and each one's end is told.
    let mut done: Option<(u64, u64)> = None;
    while let Some(from) = closed.recv().await {
        let m = replica.metrics();
        if done == Some((from, m.current_term)) {
            continue;
        }
        let voters: Vec<u64> = m.membership_config.membership().voter_ids().collect();
        let may_campaign = m.state == ServerState::Follower
            && m.current_leader == Some(from)
            && voters.contains(&replica.id)
            && replica.ident.votes()
            && !replica.rebuilding()
            && !replica.is_removed()
            && !replica.mstate.transferring();
        if !may_campaign {
            continue;
        }
        let Some(node) = m.membership_config.membership().get_node(&from) else { continue };
        let dial = node.addr.split(';').next().unwrap_or(&node.addr).to_string();
        if !port_gone(&dial, heartbeat).await {
            info!("the connection of leader node {from} ended; its Raft port {dial} answers");
            continue;
        }
        let term = m.current_term;
        done = Some((from, term));
        info!(
            term,
            "leader node {from} is gone (nothing listens on its Raft port {dial}): campaigning now"
        );
        if let Err(e) = replica.raft.trigger().elect().await {
            warn!("campaigning: {e}");
            continue;
        }
        let first = voters.iter().copied().filter(|&v| v != from).min();
        if first == Some(replica.id) {
            tokio::time::sleep(heartbeat).await;
            let m = replica.metrics();
            let leaderless = m.current_leader.is_none() || m.current_leader == Some(from);
            if m.state == ServerState::Candidate && leaderless && replica.ident.votes() {
                info!(term = m.current_term, "no leader yet: campaigning again in a new term");
                if let Err(e) = replica.raft.trigger().elect().await {
                    warn!("campaigning: {e}");
                }
            }
        }
    }
}

/// Whether nothing listens at `addr` any more: a connection is refused, or accepted and
/// then reset or closed within `wait` without a word (a process being torn down can
/// still hold its listening socket when its other connections already ended). A live
/// Raft port waits for the hello; no answer within `wait` either way is not "gone".
async fn port_gone(addr: &str, wait: Duration) -> bool {
    use std::io::ErrorKind;
    use tokio::io::AsyncReadExt as _;
    match tokio::time::timeout(wait, tokio::net::TcpStream::connect(addr)).await {
        Ok(Err(e)) => matches!(e.kind(), ErrorKind::ConnectionRefused | ErrorKind::ConnectionReset),
        Err(_) => false,
        Ok(Ok(mut s)) => {
            let mut b = [0u8; 1];
            matches!(tokio::time::timeout(wait, s.read(&mut b)).await, Ok(Ok(0) | Err(_)))
        }
    }
}

/// Member `id`'s election timeout window (ms): 6, 9 or 12 heartbeats by `(id - 1) % 3`,
/// plus up to half a heartbeat. openraft draws a member's timeout once, when it starts,
/// and checks it on its tick (every 1.5 heartbeats): two followers that lost their leader
/// at the same moment with timeouts in the same tick campaign in lockstep, each votes
/// for itself, and every vote is split until their clocks drift apart (seen after a
/// leader was killed: eight terms, 9 s without a leader, clients' writes failing). Three
/// windows two ticks apart never share a tick, so of any two of members 1 to 3 one
/// campaigns first and the other votes for it.
fn election_window(id: u64, heartbeat_ms: u64) -> (u64, u64) {
    let min = heartbeat_ms * (6 + 3 * (id.saturating_sub(1) % 3));
    (min, min + (heartbeat_ms / 2).max(1))
}

impl Opened {
    /// Starts the applier, the Raft port and the session reports, once the server's
    /// shared state exists.
    pub(crate) fn run(self, shared: &Arc<Shared>) -> Result<(), crate::ServeError> {
        let Opened {
            replica,
            engine,
            tree,
            raft_listener,
            applied_rx,
            closed_rx,
            start,
            dir,
            join,
        } = self;
        let _ = replica.shared.set(Arc::downgrade(shared));
        let weak = Arc::downgrade(shared);
        let applied = replica.applied.clone();
        let digests = replica.digests.clone();
        let thread = std::thread::Builder::new()
            .name("keeperkit-applier".into())
            .spawn(move || applier(weak, engine, tree, applied_rx, applied, digests))
            .map_err(|e| open_err(format!("starting the applier: {e}")))?;
        *lock(&replica.applier) = Some(thread);
        let r2 = replica.clone();
        let handler: net::AppHandler = Arc::new(move |from, body| {
            let r = r2.clone();
            Box::pin(app_call(r, from, body))
        });
        tokio::spawn(net::serve(
            raft_listener,
            replica.raft.clone(),
            replica.ident.clone(),
            handler,
        ));
        let period =
            (shared.cfg.tick() / 2).clamp(Duration::from_millis(50), Duration::from_millis(1000));
        tokio::spawn(touch_loop(replica.clone(), Arc::downgrade(shared), period));
        tokio::spawn(leader_gone(replica.clone(), closed_rx));
        tokio::spawn(members::watch_removal(replica.clone()));
        tokio::spawn(members::watch_refusals(replica.clone()));
        let every = digest::period(replica.raft.config().heartbeat_interval);
        tokio::spawn(digest::compare_loop(replica.clone(), every));
        match start {
            Start::Member => {}
            Start::Form(c) => {
                tokio::spawn(form(replica, dir, c));
            }
            Start::Rejoin => {
                if let Some(at) = join.filter(|_| replica.cluster().is_none()) {
                    tokio::spawn(members::join(replica.clone(), at));
                }
                tokio::spawn(rejoin(replica, dir));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_1_to_3_campaign_in_different_ticks() {
        for hb in [10, 100, 250] {
            let tick = hb * 3 / 2;
            let w: Vec<_> = (1..=3).map(|id| election_window(id, hb)).collect();
            assert!(w.iter().all(|&(lo, hi)| lo > hb && lo < hi), "{hb}: {w:?}");
            for p in w.windows(2) {
                // the latest the earlier window can fire (its end plus a tick) is at least
                // than a heartbeat before the next one's earliest
                assert!(p[0].1 + tick + hb <= p[1].0, "{hb}: {w:?}");
            }
            assert_eq!(election_window(4, hb), w[0]);
        }
    }

    #[test]
    fn peers_parse_both_forms() {
        let p = parse_peers("1=127.0.0.1:24001:24101, 2=h2:24002:24102").unwrap();
        assert_eq!(
            p[&1],
            PeerAddr { host: "127.0.0.1".into(), raft_port: 24001, client_port: 24101 }
        );
        assert_eq!(p[&2].raft_addr(), "h2:24002");
        let c = peers_from_config("tickTime=2000\nserver.3=zk3:2888:3888;2181\nserver.4=zk4:2889:3889:participant;0.0.0.0:2182\n").unwrap();
        assert_eq!(c[&3], PeerAddr { host: "zk3".into(), raft_port: 2888, client_port: 2181 });
        assert_eq!(c[&4].client_port, 2182);
        assert!(parse_peers("1=h:1").is_err());
        assert!(parse_peers("0=h:1:2").is_err());
        assert!(parse_peers("1=h:1:2,1=h:3:4").is_err());
        assert!(parse_peer("h:x:2").is_err());
    }

    #[test]
    fn forwarded_writes_round_trip_and_truncation_fails() {
        let items = vec![
            FwdItem::Request {
                session: SessionId(0x0100_0000_0000_0001),
                xid: -7,
                auths: vec![Id { scheme: "ip".into(), id: "127.0.0.1".into() }],
                frame: vec![0, 0, 0, 3, 1, 2, 3],
            },
            FwdItem::Failed { session: SessionId(5), xid: 9 },
            FwdItem::CreateSession { timeout_ms: 30000 },
        ];
        let b = encode_forward(&items);
        assert_eq!(decode_forward(&b).unwrap(), items);
        for cut in 0..b.len() {
            assert!(decode_forward(&b[..cut]).is_err(), "cut at {cut}");
        }
        let answers = vec![
            FwdAnswer::Frame(vec![1, 2]),
            FwdAnswer::Session(None),
            FwdAnswer::Session(Some(SessionId(-3))),
        ];
        let b = encode_answers(0x1_0000_0005, &answers);
        assert_eq!(decode_answers(&b).unwrap(), (0x1_0000_0005, answers));
        for cut in 0..b.len() {
            assert!(decode_answers(&b[..cut]).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn identity_round_trip() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(read_identity(d.path()).unwrap(), None);
        write_identity(d.path(), "abc", 2).unwrap();
        assert_eq!(read_identity(d.path()).unwrap(), Some(("abc".into(), 2)));
        std::fs::write(d.path().join(IDENTITY_FILE), "garbage").unwrap();
        assert!(read_identity(d.path()).is_err());
    }
}
