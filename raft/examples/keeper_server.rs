//! How a Keeper server wires openraft and keeperkit together: three nodes in one
//! process (a real server sends these RPCs over its own transport), a few ZooKeeper
//! writes through the leader, a read from a follower's tree.
//!
//! `cargo run -p keeperkit-raft --example keeper_server`
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::result_large_err)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use keeperkit_model::txn::CreateTxn;
use keeperkit_model::{Acl, OpCode, SessionId, Txn, TxnBody, TxnHeader, Zxid};
use keeperkit_raft::{engine_options, open, KeeperRaft, NodeId, Raft};
use keeperkit_storage::traits::StateMachine;
use keeperkit_vfs::{FileSystem, StdFs};
use openraft::error::{InstallSnapshotError, RPCError, RaftError, RemoteError, Unreachable};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::*;
use openraft::{BasicNode, Config};

/// The transport: here, direct calls on the other nodes' `Raft` handles.
#[derive(Clone, Default)]
struct Net(Arc<Mutex<BTreeMap<NodeId, Raft>>>);
struct Peer(Net, NodeId);
type RpcResult<T, E = openraft::error::Infallible> =
    Result<T, RPCError<NodeId, BasicNode, RaftError<NodeId, E>>>;

impl Peer {
    fn raft(&self) -> Result<Raft, Unreachable> {
        let down = || Unreachable::new(&std::io::Error::other("node down"));
        self.0 .0.lock().unwrap().get(&self.1).cloned().ok_or_else(down)
    }
}
impl RaftNetworkFactory<KeeperRaft> for Net {
    type Network = Peer;
    async fn new_client(&mut self, target: NodeId, _: &BasicNode) -> Peer {
        Peer(self.clone(), target)
    }
}
impl RaftNetwork<KeeperRaft> for Peer {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<KeeperRaft>,
        _: RPCOption,
    ) -> RpcResult<AppendEntriesResponse<NodeId>> {
        self.raft()?.append_entries(rpc).await.map_err(|e| RemoteError::new(self.1, e).into())
    }
    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<KeeperRaft>,
        _: RPCOption,
    ) -> RpcResult<InstallSnapshotResponse<NodeId>, InstallSnapshotError> {
        self.raft()?.install_snapshot(rpc).await.map_err(|e| RemoteError::new(self.1, e).into())
    }
    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        _: RPCOption,
    ) -> RpcResult<VoteResponse<NodeId>> {
        self.raft()?.vote(rpc).await.map_err(|e| RemoteError::new(self.1, e).into())
    }
}

fn create(zxid: i64, path: &str, data: &str) -> Txn {
    let header = TxnHeader {
        client_id: SessionId(1),
        cxid: 0,
        zxid: Zxid(zxid),
        time: 0,
        op: OpCode::CREATE,
    };
    let acl = Acl::open_unsafe();
    let body = CreateTxn {
        path: path.into(),
        data: Some(data.into()),
        acl,
        ephemeral: false,
        parent_cversion: -1,
        ttl: None,
        v0: false,
    };
    Txn { header, body: TxnBody::Create(body), digest: None }
}

#[tokio::main]
async fn main() {
    let tmp = tempfile::tempdir().unwrap();
    let fs: Arc<dyn FileSystem> = Arc::new(StdFs);
    let config =
        Arc::new(Config { heartbeat_interval: 100, ..Default::default() }.validate().unwrap());
    let net = Net::default();
    let mut machines = BTreeMap::new();
    for id in [1, 2, 3] {
        // One keeperkit data directory per node: native WAL + snapshots + znode tree.
        let (log, sm) =
            open(fs.clone(), engine_options(tmp.path().join(format!("node{id}")))).unwrap();
        let raft = Raft::new(id, config.clone(), net.clone(), log, sm.clone()).await.unwrap();
        net.0.lock().unwrap().insert(id, raft);
        machines.insert(id, sm);
    }
    let raft = |id| net.0.lock().unwrap()[&id].clone();
    let members: BTreeMap<_, _> =
        (1..=3).map(|i| (i, BasicNode::new(format!("127.0.0.1:918{i}")))).collect();
    raft(1).initialize(members).await.unwrap();
    let leader = raft(1)
        .wait(None)
        .metrics(|m| m.current_leader.is_some(), "leader")
        .await
        .unwrap()
        .current_leader
        .unwrap();

    // A Keeper server turns each client request into a txn (zxid assigned by the
    // leader) and answers the client with the result once it is committed and applied.
    let mut last = 0;
    for (zxid, path) in [(1, "/app"), (2, "/app/config"), (3, "/app/lock")] {
        let resp = raft(leader).client_write(vec![create(zxid, path, "hello")]).await.unwrap();
        last = resp.log_id.index;
        println!("{path}: {:?} at log index {}", resp.data, resp.log_id.index);
    }
    // Reads are served from any node's live tree (here once it has applied the writes).
    let follower = if leader == 1 { 2 } else { 1 };
    raft(follower).wait(None).applied_index_at_least(Some(last), "applied").await.unwrap();
    let node = machines[&follower].engine().get("/app/config").unwrap();
    println!(
        "node {follower} reads /app/config = {:?}",
        String::from_utf8_lossy(&node.data.unwrap())
    );
    for id in [1, 2, 3] {
        raft(id).shutdown().await.unwrap();
    }
}
