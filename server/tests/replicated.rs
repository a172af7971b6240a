//! Three replicas of `keeperkit serve` in one process (each on its own runtime), talking
//! Raft over TCP on 127.0.0.1.
//!
//! `three_replicas_keep_sessions_and_writes_across_a_leader_stop`: a session opened on
//! a follower writes through it (forwarded to the leader) and reads its own writes
//! there at once; a watch set on another server fires; the leader is stopped; a new
//! one is elected; the session resumes on the surviving follower with its ephemeral,
//! every acknowledged write is on both survivors, and writes go on. Bounded in time.
//!
//! `a_wiped_replica_is_rebuilt_from_the_leader_and_votes_again`: a follower's data
//! directory is deleted while the leader's log is already purged behind a snapshot;
//! restarted with the same command (`--bootstrap` included) it does not create a
//! cluster: it is rebuilt from the leader's snapshot and log as a learner, without
//! an election, keeps the cluster's identity, holds every acknowledged write, and is a
//! voter again (the other two elect a leader without the old one).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{members, start_replica, ServerThread as Node};
use keeperkit_model::Acl;
use keeperkit_server::client::{Client, ConnectOptions};
use keeperkit_server::proto::{create_mode, CreateRequest, Request, Response};
use keeperkit_server::replica::PeerAddr;
use keeperkit_server::ServerConfig;

const BASE: u16 = 24300;

/// Member `id` of `peers` (HTTP on its client port + 10), heartbeats of 200 ms.
fn start(dir: &Path, id: u64, peers: &BTreeMap<u64, PeerAddr>) -> Node {
    start_with(dir, id, peers, ServerConfig::default().snap_count)
}

/// [`start`] with a snapCount of `snap_count`.
fn start_with(dir: &Path, id: u64, peers: &BTreeMap<u64, PeerAddr>, snap_count: u64) -> Node {
    start_replica(dir, id, peers, |c, r| {
        c.snap_count = snap_count;
        r.heartbeat_ms = 200;
    })
}

/// A four-letter word's answer.
fn word(port: u16, w: &str) -> String {
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return String::new();
    };
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    if s.write_all(w.as_bytes()).is_err() {
        return String::new();
    }
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

/// The body of an HTTP GET.
fn http_get(port: u16, path: &str) -> String {
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return String::new();
    };
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    if s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes()).is_err() {
        return String::new();
    }
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default()
}

/// A field of a flat JSON object, as its text (`"leader"` without the quotes).
fn field(json: &str, key: &str) -> Option<String> {
    let at = json.find(&format!("\"{key}\":"))? + key.len() + 3;
    let rest = &json[at..];
    let v = if let Some(r) = rest.strip_prefix('"') {
        &r[..r.find('"')?]
    } else if rest.starts_with('[') {
        &rest[..=rest.find(']')?]
    } else {
        &rest[..rest.find([',', '}'])?]
    };
    Some(v.to_string())
}

fn state(port: u16) -> String {
    word(port, "mntr")
        .lines()
        .find_map(|l| l.strip_prefix("zk_server_state\t").map(str::to_string))
        .unwrap_or_default()
}

/// The id of the node that leads (among `alive`), waiting up to 30 s.
fn leader(peers: &BTreeMap<u64, PeerAddr>, alive: &[u64]) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        for &id in alive {
            if state(peers[&id].client_port) == "leader"
                && word(peers[&id].client_port, "ruok") == "imok"
            {
                return id;
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("no leader among {alive:?} within 30 s");
}

fn create(path: &str, data: &[u8], flags: i32) -> Request {
    Request::Create(CreateRequest {
        path: path.into(),
        data: Some(data.to_vec()),
        acl: Acl::open_unsafe(),
        flags,
        ttl: None,
    })
}

async fn ok(c: &mut Client, r: &Request) -> Option<Response> {
    let a = c.call(r).await.unwrap();
    assert_eq!(a.header.err, 0, "{r:?} failed: {:?}", a.header);
    a.body
}

#[test]
fn three_replicas_keep_sessions_and_writes_across_a_leader_stop() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("warn,keeperkit_server=info"))
        .with_test_writer()
        .try_init();
    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let paths: BTreeMap<u64, PathBuf> = (1..=3u64)
        .map(|i| (i, dirs[usize::try_from(i - 1).unwrap()].path().to_path_buf()))
        .collect();
    let peers = members(BASE, 3);
    let mut nodes: BTreeMap<u64, Node> =
        (1..=3u64).map(|i| (i, start(&paths[&i], i, &peers))).collect();
    let started = Instant::now();
    let lead = leader(&peers, &[1, 2, 3]);
    let followers: Vec<u64> = (1..=3).filter(|&i| i != lead).collect();
    let (f1, f2) = (followers[0], followers[1]);
    let addr = |id: u64| format!("127.0.0.1:{}", peers[&id].client_port);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let (sid, passwd, acked) = rt.block_on(async {
        let opts = ConnectOptions { session_timeout_ms: 15_000, ..Default::default() };
        // A session created through a follower; writes forwarded; read-your-writes there.
        let mut a = Client::connect(&addr(f1), &opts).await.unwrap();
        ok(&mut a, &create("/r", b"0", create_mode::PERSISTENT)).await;
        let got = ok(&mut a, &Request::GetData { path: "/r".into(), watch: false }).await;
        assert!(matches!(got, Some(Response::GetData { data: Some(d), .. }) if d == b"0"));
        ok(&mut a, &create("/e", b"eph", create_mode::EPHEMERAL)).await;
        // A watch on the other follower fires after a write made through the first.
        let mut b = Client::connect(&addr(f2), &opts).await.unwrap();
        ok(&mut b, &Request::Sync { path: "/r".into() }).await;
        ok(&mut b, &Request::GetData { path: "/r".into(), watch: true }).await;
        ok(&mut a, &Request::SetData { path: "/r".into(), data: Some(b"1".to_vec()), version: -1 })
            .await;
        ok(&mut b, &Request::Sync { path: "/r".into() }).await;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            b.ping().await.unwrap();
            let (events, _) = b.take_events();
            if events.iter().any(|(_, e)| e.path == "/r") {
                break;
            }
            assert!(Instant::now() < deadline, "the data watch on node {f2} did not fire");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // Pipelined writes through the follower, all acknowledged.
        let mut acked = Vec::new();
        for i in 0..200 {
            acked.push(format!("/w{i:03}"));
            a.send(&create(&format!("/w{i:03}"), b"x", create_mode::PERSISTENT)).await.unwrap();
        }
        for _ in 0..200 {
            let r = a.recv().await.unwrap();
            assert_eq!(r.header.err, 0);
        }
        // dump: a follower lists every session of the service as a ZooKeeper learner
        // does (ascending, with its timeout); the leader, its expiry sets.
        let (lo, hi) = (a.session_id().min(b.session_id()), a.session_id().max(b.session_id()));
        let want = format!(
            "SessionTracker dump:\nGlobal Sessions(2):\n0x{lo:x}\t15000ms\n0x{hi:x}\t15000ms\n"
        );
        let got = word(peers[&f1].client_port, "dump");
        assert!(got.starts_with(&want), "the dump of follower {f1}: {got}");
        let got = word(peers[&lead].client_port, "dump");
        assert!(
            got.starts_with("SessionTracker dump:\nSession Sets ("),
            "the dump of leader {lead}: {got}"
        );
        b.close().await.unwrap();
        let sid = a.session_id();
        let passwd = a.password().to_vec();
        // The connection drops without closing the session (as a client losing it).
        drop(a);
        (sid, passwd, acked)
    });
    nodes.remove(&lead).unwrap().stop();
    let new_lead = leader(&peers, &followers);
    rt.block_on(async {
        // The session resumes on the other survivor, its ephemeral intact.
        let opts = ConnectOptions {
            session_timeout_ms: 15_000,
            resume: Some((sid, passwd)),
            ..Default::default()
        };
        let mut a = Client::connect(&addr(f2), &opts).await.unwrap();
        assert_eq!(a.session_id(), sid, "the session was not resumed");
        let got = ok(&mut a, &Request::GetData { path: "/e".into(), watch: false }).await;
        assert!(matches!(got, Some(Response::GetData { data: Some(d), .. }) if d == b"eph"));
        ok(&mut a, &create("/after", b"y", create_mode::PERSISTENT)).await;
        for id in &followers {
            let mut c = Client::connect(&addr(*id), &ConnectOptions::default()).await.unwrap();
            ok(&mut c, &Request::Sync { path: "/".into() }).await;
            for p in acked.iter().chain(std::iter::once(&"/after".to_string())) {
                let r = c.call(&Request::Exists { path: p.clone(), watch: false }).await.unwrap();
                assert_eq!(r.header.err, 0, "{p} missing on node {id}");
            }
            c.close().await.unwrap();
        }
        a.close().await.unwrap();
    });
    assert!(followers.contains(&new_lead));
    for (_, n) in nodes {
        n.stop();
    }
    assert!(started.elapsed() < Duration::from_secs(90), "took {:?}", started.elapsed());
}

/// Creates `paths` through one client, one at a time, every one acknowledged: each is a
/// committer batch of its own, so one Raft entry, and Raft's snapshots and log purges
/// (every `SNAP` entries) follow the count.
async fn create_all(c: &mut Client, paths: &[String]) {
    for p in paths {
        c.send(&create(p, b"x", create_mode::PERSISTENT)).await.unwrap();
        let r = c.recv().await.unwrap();
        assert_eq!(r.header.err, 0, "creating {p}");
    }
}

#[test]
fn a_wiped_replica_is_rebuilt_from_the_leader_and_votes_again() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("warn,keeperkit_server=info"))
        .with_test_writer()
        .try_init();
    const SNAP: u64 = 50;
    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let paths: BTreeMap<u64, PathBuf> = (1..=3u64)
        .map(|i| (i, dirs[usize::try_from(i - 1).unwrap()].path().join("data")))
        .collect();
    let peers = members(24400, 3);
    let http = |id: u64| peers[&id].client_port + 10;
    let status = |id: u64| http_get(http(id), "/status");
    let mut nodes: BTreeMap<u64, Node> =
        (1..=3u64).map(|i| (i, start_with(&paths[&i], i, &peers, SNAP))).collect();
    let started = Instant::now();
    let lead = leader(&peers, &[1, 2, 3]);
    let followers: Vec<u64> = (1..=3).filter(|&i| i != lead).collect();
    let (wiped, other) = (followers[0], followers[1]);
    let addr = |id: u64| format!("127.0.0.1:{}", peers[&id].client_port);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let before: Vec<String> = (0..300).map(|i| format!("/a{i:03}")).collect();
    let during: Vec<String> = (0..100).map(|i| format!("/b{i:03}")).collect();
    rt.block_on(async {
        let mut c = Client::connect(&addr(lead), &ConnectOptions::default()).await.unwrap();
        create_all(&mut c, &before).await;
        c.close().await.unwrap();
    });
    let identity = std::fs::read_to_string(paths[&wiped].join("cluster-identity")).unwrap();
    assert!(identity.contains(&format!("node={wiped}")), "{identity}");
    // The wiped follower's data directory goes; the cluster writes on without it.
    nodes.remove(&wiped).unwrap().stop();
    std::fs::remove_dir_all(&paths[&wiped]).unwrap();
    rt.block_on(async {
        let mut c = Client::connect(&addr(lead), &ConnectOptions::default()).await.unwrap();
        create_all(&mut c, &during).await;
        c.close().await.unwrap();
    });
    // The leader's log no longer starts at the beginning: only its snapshot can rebuild
    // an empty node.
    let deadline = Instant::now() + Duration::from_secs(10);
    let (term, purged) = loop {
        let s = status(lead);
        let purged: u64 = field(&s, "purged_index").and_then(|p| p.parse().ok()).unwrap_or(0);
        if purged > 0 {
            break (field(&s, "term").unwrap(), purged);
        }
        assert!(Instant::now() < deadline, "the leader did not purge its log: {s}");
        std::thread::sleep(Duration::from_millis(50));
    };
    // The same command as its first start (--bootstrap included).
    nodes.insert(wiped, start_with(&paths[&wiped], wiped, &peers, SNAP));
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut saw_rebuilding = false;
    loop {
        let s = status(wiped);
        saw_rebuilding |= field(&s, "rebuilding").as_deref() == Some("true");
        let voter = field(&s, "voters").is_some_and(|v| v.contains(&wiped.to_string()));
        if field(&s, "ready").as_deref() == Some("true") && voter {
            assert_eq!(field(&s, "rebuilding").as_deref(), Some("false"), "{s}");
            break;
        }
        assert!(Instant::now() < deadline, "node {wiped} was not rebuilt within 30 s: {s}");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(saw_rebuilding, "node {wiped} never reported its rebuild");
    // Rebuilt without an election: same leader, same term; same cluster identity.
    let s = status(lead);
    assert_eq!(field(&s, "state").as_deref(), Some("leader"), "{s}");
    assert_eq!(field(&s, "term"), Some(term.clone()), "the rebuild disturbed the leader: {s}");
    assert_eq!(field(&s, "voters").as_deref(), Some("[1,2,3]"), "{s}");
    assert_eq!(field(&s, "learners").as_deref(), Some("[]"), "{s}");
    assert_eq!(
        std::fs::read_to_string(paths[&wiped].join("cluster-identity")).unwrap(),
        identity,
        "the rebuilt node changed its cluster identity"
    );
    assert!(!paths[&wiped].join("rejoining").exists());
    let rebuilt = status(wiped);
    let snap: u64 = field(&rebuilt, "snapshot_index").and_then(|p| p.parse().ok()).unwrap_or(0);
    assert!(snap >= purged, "node {wiped} holds no snapshot past the purge ({purged}): {rebuilt}");
    // Every acknowledged write is on the rebuilt node.
    rt.block_on(async {
        let mut c = Client::connect(&addr(wiped), &ConnectOptions::default()).await.unwrap();
        ok(&mut c, &Request::Sync { path: "/".into() }).await;
        for p in before.iter().chain(&during) {
            let r = c.call(&Request::Exists { path: p.clone(), watch: false }).await.unwrap();
            assert_eq!(r.header.err, 0, "{p} missing on the rebuilt node {wiped}");
        }
        c.close().await.unwrap();
    });
    // It votes again: without the old leader, it and the other follower elect one.
    nodes.remove(&lead).unwrap().stop();
    let new_lead = leader(&peers, &[wiped, other]);
    rt.block_on(async {
        let mut c = Client::connect(&addr(wiped), &ConnectOptions::default()).await.unwrap();
        ok(&mut c, &create("/after", b"y", create_mode::PERSISTENT)).await;
        c.close().await.unwrap();
        let mut c = Client::connect(&addr(other), &ConnectOptions::default()).await.unwrap();
        ok(&mut c, &Request::Sync { path: "/".into() }).await;
        for p in before.iter().chain(&during).chain(std::iter::once(&"/after".to_string())) {
            let r = c.call(&Request::Exists { path: p.clone(), watch: false }).await.unwrap();
            assert_eq!(r.header.err, 0, "{p} missing on node {other}");
        }
        c.close().await.unwrap();
    });
    assert!(new_lead == wiped || new_lead == other);
    for (_, n) in nodes {
        n.stop();
    }
    assert!(started.elapsed() < Duration::from_secs(60), "took {:?}", started.elapsed());
}
