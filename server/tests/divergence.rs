//! Divergence detection and removed members of a replicated `keeperkit serve`, with the
//! replicas in one process (each on its own runtime), Raft over TCP and the HTTP routes
//! on 127.0.0.1. Bounded in time.
//!
//! `digests_agree_under_writes_snapshots_and_an_install`: writes through every server
//! with a small snapCount (snapshots and log purges all along), and a follower brought
//! back by a snapshot install: the replicas compare their tree digests at the same
//! indexes many times, and never find a mismatch.
//!
//! `a_replica_whose_log_applies_differently_is_found_and_not_ready`: a stopped
//! follower's log gets one entry rewritten (a setData with other data, through the
//! engine, so every checksum is right); restarted, it applies it and its tree differs
//! from the others'. The three find it at the next sample index: the damaged one says
//! it diverged (`/ready` 503 with the index, `/status`, `mntr` `zk_digest_diverged` 1),
//! the two others stay ready and name it.
//!
//! `a_node_removed_while_it_was_down_learns_it_and_stops_campaigning`: a follower is
//! stopped, removed from the membership, and restarted on its old directory (its log
//! still names it a voter): its vote requests are refused as a non-member's, it marks
//! itself removed (`/status`, `/ready`, the `removed` file), stops campaigning (the
//! leader and its term stay), and its directory does not start again.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{
    call, client_of, http_of, leader, members, mntr, replica_configs, start_replica, status,
    tracing, wait_for, ServerThread as Node,
};
use keeperkit_model::{Acl, Txn, TxnBody};
use keeperkit_raft::codec;
use keeperkit_server::client::{Client, ConnectOptions};
use keeperkit_server::proto::{create_mode, CreateRequest, Request, Response};
use keeperkit_server::replica::{http_call, PeerAddr};
use keeperkit_server::{Server, ServerConfig};
use keeperkit_storage::engine::NativeEngine;
use keeperkit_storage::traits::{EntryRef, LogStore, SnapshotStore};
use openraft::EntryPayload;
use serde_json::Value;

/// Member `id` of `peers` (HTTP on its client port + 10) with a snapCount of
/// `snap_count`.
fn start(dir: &Path, id: u64, peers: &BTreeMap<u64, PeerAddr>, snap_count: u64) -> Node {
    start_replica(dir, id, peers, |c, _| c.snap_count = snap_count)
}

/// `/ready`: the status code and the body.
fn ready(p: &PeerAddr) -> (u16, String) {
    http_call(&http_of(p), "GET", "/ready", Duration::from_secs(2)).unwrap_or((0, String::new()))
}

fn create(path: &str, data: &[u8]) -> Request {
    Request::Create(CreateRequest {
        path: path.into(),
        data: Some(data.to_vec()),
        acl: Acl::open_unsafe(),
        flags: create_mode::PERSISTENT,
        ttl: None,
    })
}

/// Sends `reqs` one at a time through a client of `addr`; every one acknowledged. One
/// at a time, each is a committer batch of its own, so one Raft entry: digest samples
/// and snapshots go by Raft index, and what these tests wait for counts on that.
fn write_all(rt: &tokio::runtime::Runtime, addr: &str, reqs: &[Request]) {
    rt.block_on(async {
        let mut c = Client::connect(addr, &ConnectOptions::default()).await.unwrap();
        for r in reqs {
            c.send(r).await.unwrap();
            let a = c.recv().await.unwrap();
            assert_eq!(a.header.err, 0, "{r:?}");
        }
        c.close().await.unwrap();
    });
}

/// The data of `path` on the server at `addr` (after a sync).
fn data_of(rt: &tokio::runtime::Runtime, addr: &str, path: &str) -> Option<Vec<u8>> {
    rt.block_on(async {
        let mut c = Client::connect(addr, &ConnectOptions::default()).await.unwrap();
        let r = c.call(&Request::Sync { path: "/".into() }).await.unwrap();
        assert_eq!(r.header.err, 0);
        let r = c.call(&Request::GetData { path: path.into(), watch: false }).await.unwrap();
        let _ = c.close().await;
        match r.body {
            Some(Response::GetData { data, .. }) if r.header.err == 0 => data,
            _ => None,
        }
    })
}

fn creates(prefix: &str, n: usize) -> Vec<Request> {
    (0..n).map(|i| create(&format!("/{prefix}{i:04}"), format!("v{i}").as_bytes())).collect()
}

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or(0)
}

fn is_set_data(t: &Txn) -> bool {
    matches!(t.body, TxnBody::SetData(_))
}

#[test]
fn digests_agree_under_writes_snapshots_and_an_install() {
    tracing();
    const BASE: u16 = 24510;
    let started = Instant::now();
    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let path = |i: u64| -> PathBuf { dirs[usize::try_from(i - 1).unwrap()].path().to_path_buf() };
    let peers: BTreeMap<u64, PeerAddr> = members(BASE, 3);
    let snap = 40;
    let mut nodes: BTreeMap<u64, Node> =
        (1..=3).map(|i| (i, start(&path(i), i, &peers, snap))).collect();
    let lead = leader(&peers, &[1, 2, 3]);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    // Writes through every server (followers forward them), with snapshots all along.
    for id in 1..=3u64 {
        write_all(&rt, &client_of(&peers[&id]), &creates(&format!("n{id}_"), 150));
    }
    wait_for("digests compared", 30, || {
        (1..=3).all(|i| u(&status(&peers[&i])["digest"]["checks"]) >= 5)
    });
    // A follower misses enough entries that the leader's log no longer holds them: it
    // comes back through a snapshot install.
    let down = (1..=3).find(|&i| i != lead).unwrap();
    nodes.remove(&down).unwrap().stop();
    write_all(&rt, &client_of(&peers[&lead]), &creates("gap", 300));
    nodes.insert(down, start(&path(down), down, &peers, snap));
    // Read before the writes: with one write at a time, the follower compares the
    // samples as they come, while the writes go on.
    let checks_before = u(&status(&peers[&down])["digest"]["checks"]);
    write_all(&rt, &client_of(&peers[&down]), &creates("after", 200));
    wait_for("the restarted follower compares again", 30, || {
        u(&status(&peers[&down])["digest"]["checks"]) >= checks_before + 3
    });
    for id in 1..=3u64 {
        let s = status(&peers[&id]);
        assert!(s["snapshot_index"].is_u64(), "node {id} took no snapshot: {s}");
        assert_eq!(s["digest"]["mismatches"], 0, "node {id}: {s}");
        assert_eq!(s["digest"]["diverged"], false, "node {id}: {s}");
        assert_eq!(s["ready"], true, "node {id}: {s}");
        let port = peers[&id].client_port;
        assert_eq!(mntr(port, "zk_digest_mismatches").as_deref(), Some("0"));
        assert_eq!(mntr(port, "zk_digest_diverged").as_deref(), Some("0"));
        assert!(mntr(port, "zk_digest_checks").is_some_and(|c| c != "0"));
    }
    for (_, n) in nodes {
        n.stop();
    }
    assert!(started.elapsed() < Duration::from_secs(120), "took {:?}", started.elapsed());
}

/// Rewrites the last setData txn of the log in `dir` (a stopped replica's) with other
/// data, every checksum right (in its entry, which may hold a batch of txns): returns
/// the entry's Raft index and the path.
fn rewrite_last_set_data(dir: &Path) -> (u64, String) {
    let engine =
        NativeEngine::open(keeperkit_vfs::std_fs(), keeperkit_raft::engine_options(dir)).unwrap();
    let first = engine.first_index().unwrap();
    let last = engine.last_index().unwrap();
    let after_snapshot = engine.list_snapshots().unwrap().last().map_or(0, |s| s.position.index);
    let entries = engine.read_range(first..last + 1).unwrap();
    let (at, mut entry) = entries
        .iter()
        .rev()
        .filter(|e| e.index > after_snapshot)
        .find_map(|e| {
            let entry = codec::decode_entry(e.index, e.term, &e.payload).ok()?;
            let EntryPayload::Normal(txns) = &entry.payload else { return None };
            txns.iter().any(is_set_data).then_some((e.index, entry))
        })
        .expect("a setData entry after the newest snapshot");
    let EntryPayload::Normal(txns) = &mut entry.payload else { unreachable!() };
    let txn = txns.iter_mut().rev().find(|t| is_set_data(t)).unwrap();
    let TxnBody::SetData(s) = &mut txn.body else { unreachable!() };
    s.data = Some(b"diverged".to_vec());
    let path = s.path.clone();
    let payload = codec::encode_payload(&entry);
    engine.truncate_suffix(at).unwrap();
    let mut again = Vec::new();
    for e in entries.iter().filter(|e| e.index >= at) {
        let p = if e.index == at { payload.as_slice() } else { e.payload.as_slice() };
        again.push(EntryRef { index: e.index, term: e.term, payload: p });
    }
    engine.append(&again).unwrap();
    engine.sync().unwrap();
    // WAL index i holds Raft index i - 1.
    (at - 1, path)
}

#[test]
fn a_replica_whose_log_applies_differently_is_found_and_not_ready() {
    tracing();
    const BASE: u16 = 24550;
    let started = Instant::now();
    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let path = |i: u64| -> PathBuf { dirs[usize::try_from(i - 1).unwrap()].path().to_path_buf() };
    let peers: BTreeMap<u64, PeerAddr> = members(BASE, 3);
    let snap = ServerConfig::default().snap_count;
    let mut nodes: BTreeMap<u64, Node> =
        (1..=3).map(|i| (i, start(&path(i), i, &peers, snap))).collect();
    let lead = leader(&peers, &[1, 2, 3]);
    let bad = (1..=3).find(|&i| i != lead).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let la = client_of(&peers[&lead]);
    write_all(&rt, &la, &creates("d", 100));
    let sets: Vec<Request> = (0..20)
        .map(|i| Request::SetData {
            path: format!("/d{i:04}"),
            data: Some(format!("set{i}").into_bytes()),
            version: -1,
        })
        .collect();
    write_all(&rt, &la, &sets);
    wait_for("the follower applied everything", 10, || {
        status(&peers[&bad])["applied_index"] == status(&peers[&lead])["applied_index"]
    });
    nodes.remove(&bad).unwrap().stop();
    let (index, node_path) = rewrite_last_set_data(&path(bad));
    nodes.insert(bad, start(&path(bad), bad, &peers, snap));
    // The damaged replica serves other data for that node.
    let ba = client_of(&peers[&bad]);
    assert_eq!(data_of(&rt, &ba, &node_path).as_deref(), Some(&b"diverged"[..]));
    assert_ne!(data_of(&rt, &la, &node_path).as_deref(), Some(&b"diverged"[..]));
    // More writes carry every replica past the next sample indexes.
    write_all(&rt, &la, &creates("e", 100));
    wait_for("the damaged replica says it diverged", 30, || {
        status(&peers[&bad])["digest"]["diverged"] == true
    });
    let s = status(&peers[&bad]);
    let at = u(&s["digest"]["diverged_at"]);
    assert!(at >= index, "diverged at {at}, the rewritten entry is {index}: {s}");
    assert_eq!(s["ready"], false, "{s}");
    let (code, body) = ready(&peers[&bad]);
    assert_eq!(code, 503, "{body}");
    assert!(body.contains("diverged") && body.contains(&format!("index {at}")), "{body}");
    let port = peers[&bad].client_port;
    assert_eq!(mntr(port, "zk_digest_diverged").as_deref(), Some("1"));
    assert!(mntr(port, "zk_digest_mismatches").is_some_and(|m| m != "0"));
    // The two others name it and stay ready.
    for id in (1..=3).filter(|&i| i != bad) {
        wait_for("a healthy replica names the diverged one", 30, || {
            status(&peers[&id])["digest"]["peers_diverged"]
                .as_array()
                .is_some_and(|p| p.iter().any(|x| x["id"] == bad))
        });
        let s = status(&peers[&id]);
        assert_eq!(s["digest"]["diverged"], false, "node {id}: {s}");
        assert_eq!(s["ready"], true, "node {id}: {s}");
        assert_eq!(ready(&peers[&id]).0, 200);
        assert_eq!(mntr(peers[&id].client_port, "zk_digest_diverged").as_deref(), Some("0"));
    }
    for (_, n) in nodes {
        n.stop();
    }
    assert!(started.elapsed() < Duration::from_secs(90), "took {:?}", started.elapsed());
}

#[test]
fn a_node_removed_while_it_was_down_learns_it_and_stops_campaigning() {
    tracing();
    const BASE: u16 = 24600;
    let started = Instant::now();
    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let path = |i: u64| -> PathBuf { dirs[usize::try_from(i - 1).unwrap()].path().to_path_buf() };
    let peers: BTreeMap<u64, PeerAddr> = members(BASE, 3);
    let snap = ServerConfig::default().snap_count;
    let mut nodes: BTreeMap<u64, Node> =
        (1..=3).map(|i| (i, start(&path(i), i, &peers, snap))).collect();
    let lead = leader(&peers, &[1, 2, 3]);
    let gone = (1..=3).find(|&i| i != lead).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    write_all(&rt, &client_of(&peers[&lead]), &creates("r", 50));
    nodes.remove(&gone).unwrap().stop();
    let (_, m) = call(&peers[&lead], "GET", "/members");
    let v = u(&m["version"]);
    let (s, r) = call(&peers[&lead], "POST", &format!("/members/remove?id={gone}&version={v}"));
    assert_eq!(s, 200, "{r}");
    let ls = status(&peers[&lead]);
    let term = ls["term"].clone();
    assert!(!ls["voters"].as_array().unwrap().contains(&Value::from(gone)), "{ls}");

    // Restarted on its old directory: its log still names it a voter.
    nodes.insert(gone, start(&path(gone), gone, &peers, snap));
    wait_for("the restarted node learns it was removed", 20, || {
        status(&peers[&gone])["removed"] == true
    });
    let (code, body) = ready(&peers[&gone]);
    assert_eq!(code, 503, "{body}");
    assert!(body.contains("removed from the cluster"), "{body}");
    assert!(path(gone).join(keeperkit_server::replica::REMOVED_FILE).exists());
    // It campaigns no more: several election timeouts later, the leader and term stay,
    // and so does its own term.
    let its_term = status(&peers[&gone])["term"].clone();
    std::thread::sleep(Duration::from_millis(3000));
    let ls = status(&peers[&lead]);
    assert_eq!((ls["state"].as_str(), &ls["term"]), (Some("leader"), &term), "{ls}");
    let gs = status(&peers[&gone]);
    assert_ne!(gs["state"], "leader", "{gs}");
    assert_eq!(gs["term"], its_term, "{gs}");
    // The two remaining serve writes.
    let other = (1..=3).find(|&i| i != lead && i != gone).unwrap();
    write_all(&rt, &client_of(&peers[&other]), &creates("s", 20));
    nodes.remove(&gone).unwrap().stop();
    // Its directory does not start again.
    let err = rt.block_on(async {
        Server::start_replicated(
            keeperkit_vfs::std_fs(),
            &path(gone),
            ServerConfig { snap_count: snap, ..replica_configs(gone, &peers).0 },
            replica_configs(gone, &peers).1,
        )
        .await
        .err()
        .expect("a removed node's directory started")
        .to_string()
    });
    assert!(err.contains("was removed"), "{err}");
    for (_, n) in nodes {
        n.stop();
    }
    assert!(started.elapsed() < Duration::from_secs(90), "took {:?}", started.elapsed());
}
