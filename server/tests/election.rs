//! Leader loss in a replicated `keeperkit serve`, with the replicas in one process (each
//! on its own runtime), Raft over TCP on 127.0.0.1. Bounded in time.
//!
//! `a_follower_campaigns_at_once_when_the_leader_is_gone`: with heartbeats of 800 ms, an
//! election by timeout cannot end before 6 heartbeats after a follower last heard from
//! its leader, so no sooner than 4 s after the leader begins to stop. The leader is
//! stopped (its process gone, as far as the others can tell: its connections end and
//! nothing listens on its Raft port); the followers see it at once, campaign, and one of
//! them leads within 3 heartbeats (2.4 s) of the stop, in a later term; it then takes
//! writes. Without the early election this takes at least 4 s, and the test fails.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::{client_of, members, start_replica, status, tracing, ServerThread};
use keeperkit_model::Acl;
use keeperkit_server::client::{Client, ConnectOptions};
use keeperkit_server::proto::{create_mode, CreateRequest, Request};

const HEARTBEAT_MS: u64 = 800;

fn create(path: &str) -> Request {
    Request::Create(CreateRequest {
        path: path.into(),
        data: Some(b"v".to_vec()),
        acl: Acl::open_unsafe(),
        flags: create_mode::PERSISTENT,
        ttl: None,
    })
}

/// One create through `addr`, acknowledged.
fn write(rt: &tokio::runtime::Runtime, addr: &str, path: &str) {
    rt.block_on(async {
        let mut c = Client::connect(addr, &ConnectOptions::default()).await.unwrap();
        let r = c.call(&create(path)).await.unwrap();
        assert_eq!(r.header.err, 0, "create {path} through {addr}");
    });
}

#[test]
fn a_follower_campaigns_at_once_when_the_leader_is_gone() {
    tracing();
    const BASE: u16 = 23400;
    let started = Instant::now();
    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let path = |i: u64| -> PathBuf { dirs[usize::try_from(i - 1).unwrap()].path().to_path_buf() };
    let peers = members(BASE, 3);
    let mut nodes: BTreeMap<u64, ServerThread> = (1..=3u64)
        .map(|i| (i, start_replica(&path(i), i, &peers, |_, r| r.heartbeat_ms = HEARTBEAT_MS)))
        .collect();
    let lead = common::leader(&peers, &[1, 2, 3]);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    write(&rt, &client_of(&peers[&lead]), "/before");
    let term = status(&peers[&lead])["term"].as_u64().unwrap();
    let followers: Vec<u64> = (1..=3).filter(|&i| i != lead).collect();
    // Both followers know the leader (only then does its end tell them it is gone).
    common::wait_for("both followers to follow the leader", 30, || {
        followers.iter().all(|&f| {
            let s = status(&peers[&f]);
            s["state"] == "follower" && s["leader"].as_u64() == Some(lead)
        })
    });

    let stopping = Instant::now();
    nodes.remove(&lead).unwrap().stop();
    let stopped_in = stopping.elapsed();
    let (new, new_term) = loop {
        let found = followers.iter().find_map(|&f| {
            let s = status(&peers[&f]);
            (s["state"] == "leader").then(|| (f, s["term"].as_u64().unwrap()))
        });
        if let Some(l) = found {
            break l;
        }
        assert!(
            stopping.elapsed() < Duration::from_secs(30),
            "no new leader within 30 s of the stop"
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    let took = stopping.elapsed();
    assert!(new_term > term, "the new leader's term {new_term} follows {term}");
    assert!(
        took < Duration::from_millis(3 * HEARTBEAT_MS),
        "node {new} leads {took:?} after the leader began to stop (the stop took \
         {stopped_in:?}); an election by timeout takes at least {} ms",
        5 * HEARTBEAT_MS
    );
    // The new leader takes writes, through the other follower too.
    write(&rt, &client_of(&peers[&new]), "/after");
    let other = followers.iter().copied().find(|&f| f != new).unwrap();
    write(&rt, &client_of(&peers[&other]), "/after-other");
    for (_, n) in nodes {
        n.stop();
    }
    assert!(started.elapsed() < Duration::from_secs(90), "took {:?}", started.elapsed());
}
