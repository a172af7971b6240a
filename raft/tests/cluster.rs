//! Three openraft nodes in one process, on keeperkit storage, talking through an
//! in-memory network.
//!
//! - `three_nodes_survive_restarts_and_leader_loss`: real files in temporary
//!   directories. 10,000 znodes written through the leader (pipelined); a follower is
//!   stopped (its files kept) while writes go on and the leader snapshots and purges
//!   its log, then restarted: it catches up by installing a snapshot. The leader is
//!   stopped: a new one is elected, nothing committed is lost; the old leader comes
//!   back. At the end the three trees are identical (digest and full dump).
//! - `crashes_at_random_points_lose_no_committed_write`: every node on its own
//!   fault-injecting file system; seeded runs crash random nodes (power loss: unsynced
//!   bytes lost or torn) at random points, some while writes are in flight, and
//!   restart them. Every write a client saw committed is in all three trees at the end.
//!
//! Every scenario runs under a timeout, so a stuck cluster fails instead of hanging.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::cast_possible_truncation)]
#![allow(clippy::result_large_err)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use keeperkit_model::txn::CreateTxn;
use keeperkit_model::{Acl, OpCode, SessionId, Stat, Txn, TxnBody, TxnHeader, Zxid};
use keeperkit_raft::{engine_options, open, KeeperRaft, KeeperStateMachine, NodeId, Raft};
use keeperkit_storage::engine::NativeEngine;
use keeperkit_storage::traits::{SnapshotStore, StateMachine};
use keeperkit_tree::TxnResult;
use keeperkit_vfs::fault::{FaultConfig, FaultFs};
use keeperkit_vfs::{FileSystem, StdFs};
use openraft::error::{InstallSnapshotError, RPCError, RaftError, RemoteError, Unreachable};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::{BasicNode, Config, SnapshotPolicy};

// ---------------------------------------------------------------- the network

/// The in-memory network: RPCs are calls on the target's `Raft` handle; a stopped
/// node is unreachable.
#[derive(Clone, Default)]
struct Router {
    nodes: Arc<Mutex<BTreeMap<NodeId, Raft>>>,
}

impl Router {
    fn get(&self, id: NodeId) -> Option<Raft> {
        self.nodes.lock().unwrap().get(&id).cloned()
    }
}

struct Conn {
    router: Router,
    target: NodeId,
}

fn unreachable<E: std::error::Error>(id: NodeId) -> RPCError<NodeId, BasicNode, E> {
    RPCError::Unreachable(Unreachable::new(&std::io::Error::other(format!("node {id} is down"))))
}

impl RaftNetworkFactory<KeeperRaft> for Router {
    type Network = Conn;
    async fn new_client(&mut self, target: NodeId, _node: &BasicNode) -> Conn {
        Conn { router: self.clone(), target }
    }
}

impl RaftNetwork<KeeperRaft> for Conn {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<KeeperRaft>,
        _option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        let raft = self.router.get(self.target).ok_or_else(|| unreachable(self.target))?;
        raft.append_entries(rpc).await.map_err(|e| RemoteError::new(self.target, e).into())
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<KeeperRaft>,
        _option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<NodeId>,
        RPCError<NodeId, BasicNode, RaftError<NodeId, InstallSnapshotError>>,
    > {
        let raft = self.router.get(self.target).ok_or_else(|| unreachable(self.target))?;
        raft.install_snapshot(rpc).await.map_err(|e| RemoteError::new(self.target, e).into())
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        _option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        let raft = self.router.get(self.target).ok_or_else(|| unreachable(self.target))?;
        raft.vote(rpc).await.map_err(|e| RemoteError::new(self.target, e).into())
    }
}

// ---------------------------------------------------------------- the cluster

struct Node {
    raft: Raft,
    sm: KeeperStateMachine,
}

struct Cluster {
    router: Router,
    config: Arc<Config>,
    dirs: BTreeMap<NodeId, PathBuf>,
    fss: BTreeMap<NodeId, Arc<dyn FileSystem>>,
    nodes: BTreeMap<NodeId, Node>,
}

const IDS: [NodeId; 3] = [1, 2, 3];

fn config(snapshot_every: u64) -> Arc<Config> {
    let c = Config {
        cluster_name: "keeperkit".into(),
        heartbeat_interval: 50,
        election_timeout_min: 300,
        election_timeout_max: 600,
        snapshot_policy: SnapshotPolicy::LogsSinceLast(snapshot_every),
        max_in_snapshot_log_to_keep: 50,
        purge_batch_size: 1,
        // Small chunks: a snapshot crosses the network in many pieces.
        snapshot_max_chunk_size: 16 << 10,
        max_payload_entries: 500,
        ..Default::default()
    };
    Arc::new(c.validate().unwrap())
}

impl Cluster {
    fn new(
        config: Arc<Config>,
        dirs: BTreeMap<NodeId, PathBuf>,
        fss: BTreeMap<NodeId, Arc<dyn FileSystem>>,
    ) -> Cluster {
        Cluster { router: Router::default(), config, dirs, fss, nodes: BTreeMap::new() }
    }

    async fn start(&mut self, id: NodeId) {
        let fs = self.fss[&id].clone();
        let mut opts = engine_options(&self.dirs[&id]);
        opts.segment_len = 1 << 20;
        opts.preallocate = false;
        let (log, sm) = tokio::task::spawn_blocking(move || open(fs, opts)).await.unwrap().unwrap();
        let raft =
            Raft::new(id, self.config.clone(), self.router.clone(), log, sm.clone()).await.unwrap();
        self.router.nodes.lock().unwrap().insert(id, raft.clone());
        self.nodes.insert(id, Node { raft, sm });
    }

    /// Stops a node; its files stay.
    async fn stop(&mut self, id: NodeId) {
        self.router.nodes.lock().unwrap().remove(&id);
        if let Some(n) = self.nodes.remove(&id) {
            let _ = n.raft.shutdown().await;
        }
    }

    async fn init(&mut self) {
        let members: BTreeMap<NodeId, BasicNode> =
            IDS.iter().map(|&i| (i, BasicNode::new(format!("node-{i}")))).collect();
        self.nodes[&1].raft.initialize(members).await.unwrap();
    }

    async fn leader(&self) -> NodeId {
        loop {
            for n in self.nodes.values() {
                let m = n.raft.metrics().borrow().clone();
                if let Some(l) = m.current_leader {
                    if l == m.id && m.running_state.is_ok() && self.nodes.contains_key(&l) {
                        return l;
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn engine(&self, id: NodeId) -> &NativeEngine {
        self.nodes[&id].sm.engine()
    }

    /// Waits until every running node has applied what the leader has.
    async fn converge(&self) {
        loop {
            let applied: BTreeSet<u64> =
                self.nodes.keys().map(|&i| self.engine(i).applied().index).collect();
            let leader = self.leader().await;
            let last = self.nodes[&leader].raft.metrics().borrow().last_log_index;
            if applied.len() == 1 && applied.first().copied() == last.map(|l| l + 1) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

// ---------------------------------------------------------------- the workload

fn create_txn(zxid: i64, path: String) -> Txn {
    Txn {
        header: TxnHeader {
            client_id: SessionId(0x77),
            cxid: zxid as i32,
            zxid: Zxid(zxid),
            time: zxid,
            op: OpCode::CREATE,
        },
        body: TxnBody::Create(CreateTxn {
            path,
            data: Some(format!("value {zxid}").into_bytes()),
            acl: Acl::open_unsafe(),
            ephemeral: false,
            parent_cversion: -1,
            ttl: None,
            v0: false,
        }),
        digest: None,
    }
}

fn znode(i: u64) -> String {
    format!("/w/n{i:06}")
}

/// The client: numbers writes, pipelines them to the leader, and records which were
/// acknowledged as committed.
struct Client {
    next: u64,
    acked: BTreeSet<String>,
}

impl Client {
    fn new() -> Client {
        Client { next: 1, acked: BTreeSet::new() }
    }

    /// Sends `n` creates (the first write ever creates the parent) to `raft` without
    /// waiting between them, then collects the answers. Returns how many were acked.
    async fn write(&mut self, raft: &Raft, n: u64) -> u64 {
        let mut pending = Vec::new();
        for _ in 0..n {
            let i = self.next;
            self.next += 1;
            let path = if i == 1 { "/w".to_string() } else { znode(i) };
            match raft.client_write_ff(vec![create_txn(i as i64, path.clone())]).await {
                Ok(rx) => pending.push((path, rx)),
                Err(_) => break,
            }
        }
        let mut ok = 0;
        for (path, rx) in pending {
            if let Ok(Ok(resp)) = rx.await {
                assert_eq!(resp.data, vec![TxnResult::Ok], "{path}");
                self.acked.insert(path);
                ok += 1;
            }
        }
        ok
    }
}

type Dump = (u64, Vec<(String, Option<Vec<u8>>, Stat, Vec<Acl>)>);

fn dump(e: &NativeEngine) -> Dump {
    e.with_tree(|t| {
        let mut nodes = Vec::new();
        t.for_each_preorder(|path, n| {
            nodes.push((path.to_owned(), n.data().map(<[u8]>::to_vec), n.stat(), n.acl().clone()));
        });
        assert_eq!(t.digest(), t.compute_digest(), "running digest");
        (t.digest(), nodes)
    })
}

/// The three trees are identical, and hold every acknowledged write.
fn check_identical(c: &Cluster, acked: &BTreeSet<String>) -> Dump {
    let dumps: Vec<Dump> = IDS.iter().map(|&i| dump(c.engine(i))).collect();
    for (i, d) in dumps.iter().enumerate().skip(1) {
        assert_eq!(d.0, dumps[0].0, "digest of node {} differs from node 1", IDS[i]);
        assert!(d.1 == dumps[0].1, "the dump of node {} differs from node 1", IDS[i]);
    }
    let paths: BTreeSet<&str> = dumps[0].1.iter().map(|n| n.0.as_str()).collect();
    for p in acked {
        assert!(paths.contains(p.as_str()), "the committed write {p} was lost");
    }
    dumps.into_iter().next().unwrap()
}

async fn with_timeout<F: std::future::Future<Output = ()>>(secs: u64, what: &str, f: F) {
    if tokio::time::timeout(Duration::from_secs(secs), f).await.is_err() {
        panic!("{what}: did not finish within {secs} s");
    }
}

// ---------------------------------------------------------------- scenario 1

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_survive_restarts_and_leader_loss() {
    with_timeout(150, "the 3-node scenario", async {
        let tmp = tempfile::tempdir().unwrap();
        let dirs = IDS.iter().map(|&i| (i, tmp.path().join(format!("node{i}")))).collect();
        let fs: Arc<dyn FileSystem> = Arc::new(StdFs);
        let fss = IDS.iter().map(|&i| (i, fs.clone())).collect();
        let mut c = Cluster::new(config(1000), dirs, fss);
        for id in IDS {
            c.start(id).await;
        }
        c.init().await;
        let mut client = Client::new();
        let leader = c.leader().await;
        // 1 (/w) + 3,999 znodes.
        for _ in 0..8 {
            assert_eq!(client.write(&c.nodes[&leader].raft, 500).await, 500);
        }
        c.converge().await;

        // A follower stops; writes go on, the leader snapshots and purges its log.
        let follower = IDS.into_iter().find(|&i| i != leader).unwrap();
        let follower_last = c.engine(follower).applied().index;
        c.stop(follower).await;
        for _ in 0..8 {
            assert_eq!(client.write(&c.nodes[&leader].raft, 500).await, 500);
        }
        let purged = c.nodes[&leader].raft.metrics().borrow().purged.map(|p| p.index);
        assert!(
            purged.is_some_and(|p| p + 1 > follower_last),
            "the leader's log must be purged past the follower's end ({purged:?}, {follower_last})"
        );

        // The follower restarts from its files and catches up by a snapshot install.
        c.start(follower).await;
        c.converge().await;
        let installed = c.engine(follower).list_snapshots().unwrap();
        assert!(
            installed.iter().any(|s| s.position.index > follower_last),
            "the follower caught up without a snapshot install: {installed:?}"
        );

        // The leader stops: a new one is elected and nothing committed is lost.
        c.stop(leader).await;
        let new_leader = c.leader().await;
        assert_ne!(new_leader, leader);
        for _ in 0..4 {
            assert_eq!(client.write(&c.nodes[&new_leader].raft, 500).await, 500);
        }
        c.start(leader).await;
        c.converge().await;
        let (_, nodes) = check_identical(&c, &client.acked);
        let under_w = nodes.iter().filter(|n| n.0.starts_with("/w/")).count();
        assert_eq!(under_w, 9_999, "znodes under /w");
        assert_eq!(client.acked.len(), 10_000);

        // Every node restarts from its files: the same state again.
        for id in IDS {
            c.stop(id).await;
        }
        for id in IDS {
            c.start(id).await;
        }
        c.converge().await;
        let leader = c.leader().await;
        assert_eq!(client.write(&c.nodes[&leader].raft, 1).await, 1);
        c.converge().await;
        check_identical(&c, &client.acked);
        for id in IDS {
            c.stop(id).await;
        }
    })
    .await;
}

// ---------------------------------------------------------------- scenario 2

/// xorshift64*, for reproducible choices.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n
    }
}

/// Power loss on one node: its disk stops taking writes, the node stops, and the
/// disk comes back with only what was synced (unsynced writes lost or torn).
async fn power_loss(c: &mut Cluster, faults: &BTreeMap<NodeId, FaultFs>, id: NodeId, seed: u64) {
    faults[&id].halt();
    c.stop(id).await;
    // Let the stopped node's threads hit the halted disk and end.
    tokio::time::sleep(Duration::from_millis(50)).await;
    faults[&id].crash(seed);
}

/// One seeded run; returns (crashes while writes were in flight, crashes in all,
/// writes acknowledged).
async fn crash_run(seed: u64) -> (u64, u64, usize) {
    let mut in_flight = 0;
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let faults: BTreeMap<NodeId, FaultFs> = IDS
        .iter()
        .map(|&i| {
            (i, FaultFs::new(FaultConfig { torn_writes: true, partial_write_on_enospc: false }))
        })
        .collect();
    let fss =
        faults.iter().map(|(&i, f)| (i, Arc::new(f.clone()) as Arc<dyn FileSystem>)).collect();
    let dirs = IDS.iter().map(|&i| (i, Path::new("/data").join(format!("node{i}")))).collect();
    let mut c = Cluster::new(config(200), dirs, fss);
    for id in IDS {
        c.start(id).await;
    }
    c.init().await;
    let mut client = Client::new();
    let mut down: Option<NodeId> = None;
    for round in 0..12 {
        let leader = c.leader().await;
        let raft = c.nodes[&leader].raft.clone();
        let n = 50 + rng.below(150);
        match rng.below(4) {
            // A crash while writes are in flight (the leader included).
            0 if down.is_none() => {
                let victim = IDS[rng.below(3) as usize];
                let writes = client.write(&raft, n);
                let delay = Duration::from_millis(rng.below(30));
                let disk = faults[&victim].clone();
                let crash = async {
                    tokio::time::sleep(delay).await;
                    disk.halt();
                };
                let (_, ()) = tokio::join!(writes, crash);
                in_flight += 1;
                power_loss(&mut c, &faults, victim, seed ^ round).await;
                down = Some(victim);
            }
            // A crash between writes.
            1 if down.is_none() => {
                client.write(&raft, n).await;
                let victim = IDS[rng.below(3) as usize];
                power_loss(&mut c, &faults, victim, seed ^ round).await;
                down = Some(victim);
            }
            // Bring the crashed node back.
            2 if down.is_some() => {
                c.start(down.take().unwrap()).await;
                client.write(&raft, n).await;
            }
            _ => {
                client.write(&raft, n).await;
            }
        }
    }
    if let Some(id) = down.take() {
        c.start(id).await;
    }
    // One more committed write in the current term, then everything converges.
    loop {
        let leader = c.leader().await;
        if client.write(&c.nodes[&leader].raft, 1).await == 1 {
            break;
        }
    }
    c.converge().await;
    check_identical(&c, &client.acked);
    assert!(
        client.acked.len() > 200,
        "seed {seed}: too few writes acknowledged ({})",
        client.acked.len()
    );
    // A full power loss of every node: still every acknowledged write.
    for id in IDS {
        power_loss(&mut c, &faults, id, seed + id).await;
    }
    for id in IDS {
        c.start(id).await;
    }
    loop {
        let leader = c.leader().await;
        if client.write(&c.nodes[&leader].raft, 1).await == 1 {
            break;
        }
    }
    c.converge().await;
    check_identical(&c, &client.acked);
    for id in IDS {
        c.stop(id).await;
    }
    let crashes = faults.values().map(|f| f.stats().crashes).sum();
    (in_flight, crashes, client.acked.len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crashes_at_random_points_lose_no_committed_write() {
    let mut in_flight = 0;
    for seed in [1, 2, 3, 4, 5, 6] {
        let r = tokio::time::timeout(Duration::from_secs(60), crash_run(seed)).await;
        let (f, crashes, acked) =
            r.unwrap_or_else(|_| panic!("crash run, seed {seed}: no end within 60 s"));
        eprintln!("seed {seed}: {crashes} power losses ({f} with writes in flight), {acked} writes acknowledged");
        in_flight += f;
    }
    assert!(in_flight > 0, "no run crashed a node while writes were in flight");
}
