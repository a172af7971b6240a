//! Membership, leadership transfer and the quorum check of a replicated `keeperkit
//! serve`, with the replicas in one process (each on its own runtime), Raft over TCP
//! and the HTTP routes on 127.0.0.1. Bounded in time.
//!
//! `a_fourth_node_joins_then_is_removed_and_a_stale_version_is_refused`: a change
//! against an old membership version is refused (409 `stale_version`) and changes
//! nothing; a fourth node started on an empty directory with `--join` (through a
//! follower's HTTP port: forwarded to the leader) becomes a learner, catches up and
//! becomes a voter, without an election, holding every acknowledged write; it is
//! removed again: it says so (`/ready`, `/status`), never campaigns (the leader and
//! its term stay), the three others keep serving writes, and its directory refuses
//! to start again.
//!
//! `leadership_moves_on_request_and_can_stop_counts_the_quorum`: `can-stop` says yes
//! for every member of a healthy three-node cluster; a transfer to a follower returns
//! once that follower leads; with one voter stopped, `can-stop` says no for another
//! voter (naming the stopped one) and yes for the stopped one.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{
    call, http_of, leader, members, mntr, peer, replica_configs, start_replica, status, tracing,
    wait_for, ServerThread as Node,
};
use keeperkit_model::Acl;
use keeperkit_server::client::{Client, ConnectOptions};
use keeperkit_server::proto::{create_mode, CreateRequest, Request};
use keeperkit_server::replica::{http_call, PeerAddr};
use keeperkit_server::Server;
use serde_json::Value;

/// Member `id` of `peers` (HTTP on its client port + 10); with `join`, it joins the
/// cluster through that HTTP address instead of bootstrapping it.
fn start(dir: &Path, id: u64, peers: &BTreeMap<u64, PeerAddr>, join: Option<String>) -> Node {
    start_replica(dir, id, peers, |_, r| {
        r.bootstrap = join.is_none();
        r.join = join;
    })
}

fn ids(v: &Value) -> Vec<u64> {
    v.as_array().unwrap().iter().map(|n| n["id"].as_u64().unwrap()).collect()
}

fn create(path: &str) -> Request {
    Request::Create(CreateRequest {
        path: path.into(),
        data: Some(b"x".to_vec()),
        acl: Acl::open_unsafe(),
        flags: create_mode::PERSISTENT,
        ttl: None,
    })
}

/// Creates `paths` through a client of `addr`; every one acknowledged.
fn write_all(rt: &tokio::runtime::Runtime, addr: &str, paths: &[String]) {
    rt.block_on(async {
        let mut c = Client::connect(addr, &ConnectOptions::default()).await.unwrap();
        for p in paths {
            c.send(&create(p)).await.unwrap();
        }
        for p in paths {
            let r = c.recv().await.unwrap();
            assert_eq!(r.header.err, 0, "{p}");
        }
        c.close().await.unwrap();
    });
}

/// Whether every path is on the server at `addr` (after a sync).
fn holds_all(rt: &tokio::runtime::Runtime, addr: &str, paths: &[String]) -> bool {
    rt.block_on(async {
        let mut c = Client::connect(addr, &ConnectOptions::default()).await.unwrap();
        let r = c.call(&Request::Sync { path: "/".into() }).await.unwrap();
        assert_eq!(r.header.err, 0);
        for p in paths {
            let r = c.call(&Request::Exists { path: p.clone(), watch: false }).await.unwrap();
            if r.header.err != 0 {
                return false;
            }
        }
        c.close().await.unwrap();
        true
    })
}

#[test]
fn a_fourth_node_joins_then_is_removed_and_a_stale_version_is_refused() {
    tracing();
    const BASE: u16 = 24100;
    let started = Instant::now();
    let dirs: Vec<tempfile::TempDir> = (0..4).map(|_| tempfile::tempdir().unwrap()).collect();
    let path = |i: u64| -> PathBuf { dirs[usize::try_from(i - 1).unwrap()].path().to_path_buf() };
    let peers: BTreeMap<u64, PeerAddr> = members(BASE, 3);
    let mut nodes: BTreeMap<u64, Node> =
        (1..=3).map(|i| (i, start(&path(i), i, &peers, None))).collect();
    let lead = leader(&peers, &[1, 2, 3]);
    let term = status(&peers[&lead])["term"].clone();
    let follower = (1..=3).find(|&i| i != lead).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let first: Vec<String> = (0..300).map(|i| format!("/a{i:03}")).collect();
    write_all(&rt, &format!("127.0.0.1:{}", peers[&follower].client_port), &first);

    // The membership, read through a follower (answered by the leader).
    let (s, m) = call(&peers[&follower], "GET", "/members");
    assert_eq!(s, 200, "{m}");
    assert_eq!(ids(&m["voters"]), vec![1, 2, 3]);
    assert_eq!(m["learners"], serde_json::json!([]));
    assert_eq!(m["leader"], lead);
    assert_eq!(m["change_in_flight"], Value::Null);
    assert_eq!(m["voters"][0]["client_port"], BASE + 11);
    // The bootstrap's membership entry is the log's first (index 0).
    let v0 = m["version"].as_u64().unwrap();

    // A change decided against another version is refused, and changes nothing.
    let (s, r) = call(
        &peers[&follower],
        "POST",
        &format!("/members/add?id=4&addr=127.0.0.1:{}:{}&version={}", BASE + 4, BASE + 14, v0 + 1),
    );
    assert_eq!(s, 409, "{r}");
    assert_eq!(r["code"], "stale_version");
    assert_eq!(r["version"], v0);
    let (s, r) =
        call(&peers[&lead], "POST", &format!("/members/remove?id={follower}&version={}", v0 + 7));
    assert_eq!((s, r["code"].as_str()), (409, Some("stale_version")), "{r}");
    assert_eq!(call(&peers[&lead], "GET", "/members").1["version"], v0);
    // Bad requests.
    let (s, r) = call(&peers[&lead], "POST", &format!("/members/remove?id={lead}&version={v0}"));
    assert_eq!((s, r["code"].as_str()), (422, Some("refused")), "{r}");
    let (s, _) = call(&peers[&lead], "POST", "/members/remove?id=9");
    assert_eq!(s, 400);

    // A fourth node joins through a follower's HTTP port.
    let mut all = peers.clone();
    all.insert(4, peer(BASE, 4));
    let own: BTreeMap<u64, PeerAddr> = [(4, peer(BASE, 4))].into_iter().collect();
    nodes.insert(4, start(&path(4), 4, &own, Some(http_of(&peers[&follower]))));
    wait_for("node 4 a voter", 60, || {
        let s = status(&all[&4]);
        s["rebuilding"] == false && s["state"] == "follower" && s["ready"] == true
    });
    let (_, m) = call(&peers[&lead], "GET", "/members");
    assert_eq!(ids(&m["voters"]), vec![1, 2, 3, 4], "{m}");
    assert_eq!(m["change_in_flight"], Value::Null, "{m}");
    let v1 = m["version"].as_u64().unwrap();
    assert!(v1 > v0);
    let four = m["voters"].as_array().unwrap().iter().find(|n| n["id"] == 4).unwrap().clone();
    assert_eq!(four["raft"], format!("127.0.0.1:{}", BASE + 4));
    assert_eq!(four["client_port"], BASE + 14);
    // It took the cluster's identity, holds every acknowledged write, and the leader
    // kept leading.
    assert_eq!(status(&all[&4])["cluster"], status(&peers[&lead])["cluster"]);
    assert!(holds_all(&rt, &format!("127.0.0.1:{}", BASE + 14), &first));
    assert_eq!(status(&peers[&lead])["term"], term);
    assert_eq!(status(&peers[&lead])["state"], "leader");
    // mntr on the leader counts the new voter among its followers.
    let lp = peers[&lead].client_port;
    wait_for("three synced followers", 10, || {
        mntr(lp, "zk_synced_followers").as_deref() == Some("3")
    });
    assert_eq!(mntr(lp, "zk_followers").as_deref(), Some("3"));
    assert_eq!(mntr(lp, "zk_learners").as_deref(), Some("3"));
    assert_eq!(mntr(lp, "zk_synced_non_voting_followers").as_deref(), Some("0"));

    // Removed again, against the current version.
    let (s, r) = call(&peers[&follower], "POST", &format!("/members/remove?id=4&version={v1}"));
    assert_eq!(s, 200, "{r}");
    assert_eq!(r["done"], "removed");
    assert_eq!(ids(&r["voters"]), vec![1, 2, 3]);
    assert!(r["version"].as_u64().unwrap() > v1);
    wait_for("node 4 says it was removed", 10, || status(&all[&4])["removed"] == true);
    let (_, ready) =
        http_call(&http_of(&all[&4]), "GET", "/ready", Duration::from_secs(2)).unwrap();
    assert!(ready.contains("removed from the cluster"), "{ready}");
    // It never campaigns: three election timeouts later the leader and term are the same.
    std::thread::sleep(Duration::from_millis(3600));
    let ls = status(&peers[&lead]);
    assert_eq!((ls["state"].as_str(), &ls["term"]), (Some("leader"), &term), "{ls}");
    // The three go on; node 4 refuses writes.
    let second: Vec<String> = (0..50).map(|i| format!("/b{i:03}")).collect();
    write_all(&rt, &format!("127.0.0.1:{}", peers[&follower].client_port), &second);
    let refused = rt.block_on(async {
        let addr = format!("127.0.0.1:{}", BASE + 14);
        match Client::connect(&addr, &ConnectOptions::default()).await {
            Ok(mut c) => c.call(&create("/on4")).await.map_or(true, |r| r.header.err != 0),
            Err(_) => true,
        }
    });
    assert!(refused, "a removed node took a write");
    nodes.remove(&4).unwrap().stop();
    // Its directory does not start again.
    let err = rt.block_on(async {
        let (cfg, mut rc) = replica_configs(4, &own);
        rc.bootstrap = false;
        rc.join = Some(http_of(&peers[&lead]));
        Server::start_replicated(keeperkit_vfs::std_fs(), &path(4), cfg, rc)
            .await
            .err()
            .expect("a removed node's directory started")
            .to_string()
    });
    assert!(err.contains("was removed"), "{err}");
    for id in [1, 2, 3] {
        assert!(holds_all(&rt, &format!("127.0.0.1:{}", peers[&id].client_port), &second));
    }
    for (_, n) in nodes {
        n.stop();
    }
    assert!(started.elapsed() < Duration::from_secs(120), "took {:?}", started.elapsed());
}

#[test]
fn leadership_moves_on_request_and_can_stop_counts_the_quorum() {
    tracing();
    const BASE: u16 = 24150;
    let started = Instant::now();
    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let peers: BTreeMap<u64, PeerAddr> = members(BASE, 3);
    let mut nodes: BTreeMap<u64, Node> = (1..=3u64)
        .map(|i| (i, start(dirs[usize::try_from(i - 1).unwrap()].path(), i, &peers, None)))
        .collect();
    let lead = leader(&peers, &[1, 2, 3]);
    // Every follower reported in the leader's replication state.
    wait_for("followers matched", 10, || {
        status(&peers[&lead])["followers"]
            .as_array()
            .is_some_and(|f| f.len() == 2 && f.iter().all(|x| x["lag"] == 0))
    });
    for id in 1..=3 {
        let (s, r) = call(&peers[&lead], "GET", &format!("/members/can-stop?id={id}"));
        assert_eq!(s, 200, "{r}");
        assert_eq!(r["safe"], true, "node {id}: {r}");
        assert_eq!(r["quorum"], 2);
        assert_eq!(r["healthy_after"], 2);
    }
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let first: Vec<String> = (0..100).map(|i| format!("/t{i:03}")).collect();
    write_all(&rt, &format!("127.0.0.1:{}", peers[&lead].client_port), &first);

    // The leadership moves to a follower, asked through the other follower.
    let target = (1..=3).find(|&i| i != lead).unwrap();
    let other = (1..=3).find(|&i| i != lead && i != target).unwrap();
    let term = status(&peers[&lead])["term"].as_u64().unwrap();
    let (s, r) = call(&peers[&other], "POST", &format!("/members/transfer?to={target}"));
    assert_eq!(s, 200, "{r}");
    assert_eq!(r["leader"], target);
    assert_eq!(r["moved"], true);
    assert!(r["term"].as_u64().unwrap() > term);
    assert_eq!(leader(&peers, &[1, 2, 3]), target);
    // Moving it to the leader itself is a no-op.
    let (s, r) = call(&peers[&lead], "POST", &format!("/members/transfer?to={target}"));
    assert_eq!((s, &r["moved"]), (200, &Value::Bool(false)), "{r}");
    write_all(&rt, &format!("127.0.0.1:{}", peers[&lead].client_port), &["/after".to_string()]);

    // One voter down: stopping another would lose the quorum; stopping it would not.
    let down = other;
    nodes.remove(&down).unwrap().stop();
    let (s, r) = call(&peers[&target], "GET", &format!("/members/can-stop?id={lead}"));
    assert_eq!(s, 200, "{r}");
    assert_eq!(r["safe"], false, "{r}");
    assert_eq!(r["healthy_after"], 1);
    let reason = r["reason"].as_str().unwrap();
    assert!(reason.contains(&format!("node {down} does not answer")), "{reason}");
    let (_, r) = call(&peers[&lead], "GET", &format!("/members/can-stop?id={target}"));
    assert_eq!(r["safe"], false, "{r}");
    assert_eq!(r["leader"], true);
    let (_, r) = call(&peers[&target], "GET", &format!("/members/can-stop?id={down}"));
    assert_eq!(r["safe"], true, "{r}");
    for (_, n) in nodes {
        n.stop();
    }
    assert!(started.elapsed() < Duration::from_secs(90), "took {:?}", started.elapsed());
}
