//! Three replicas of `keeperkit serve` in one process (each on its own runtime), talking
//! Raft over TCP on 127.0.0.1.
//!
//! `three_replicas_keep_sessions_and_writes_across_a_leader_stop`: a session opened on
//! a follower writes through it (forwarded to the leader) and reads its own writes
//! there at once; a watch set on another server fires; the leader is stopped; a new
//! one is elected; the session resumes on the surviving follower with its ephemeral,
//! every acknowledged write is on both survivors, and writes go on. Bounded in time.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use keeperkit_model::Acl;
use keeperkit_server::client::{Client, ConnectOptions};
use keeperkit_server::proto::{create_mode, CreateRequest, Request, Response};
use keeperkit_server::replica::{PeerAddr, ReplicaConfig};
use keeperkit_server::{Server, ServerConfig};

const BASE: u16 = 24300;

struct Node {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Node {
    fn start(dir: &Path, id: u64, peers: &BTreeMap<u64, PeerAddr>) -> Node {
        let cfg = ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], peers[&id].client_port)),
            tick_time_ms: 200,
            min_session_timeout_ms: Some(1000),
            max_session_timeout_ms: Some(20_000),
            four_letter_words: vec!["*".into()],
            ..Default::default()
        };
        let rc = ReplicaConfig {
            id,
            peers: peers.clone(),
            bootstrap: true,
            raft_bind: "127.0.0.1".parse().unwrap(),
            heartbeat_ms: 200,
        };
        let (atx, arx) = std::sync::mpsc::channel();
        let (stx, srx) = tokio::sync::oneshot::channel::<()>();
        let d = dir.to_path_buf();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let s =
                    Server::start_replicated(keeperkit_vfs::std_fs(), &d, cfg, rc).await.unwrap();
                atx.send(()).unwrap();
                s.serve(async {
                    let _ = srx.await;
                })
                .await
                .unwrap();
            });
        });
        arx.recv_timeout(Duration::from_secs(30)).expect("the replica started");
        Node { stop: Some(stx), thread: Some(thread) }
    }

    fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
    }
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
    let peers: BTreeMap<u64, PeerAddr> = (1..=3u64)
        .map(|i| {
            let i16 = u16::try_from(i).unwrap();
            (
                i,
                PeerAddr {
                    host: "127.0.0.1".into(),
                    raft_port: BASE + i16,
                    client_port: BASE + 10 + i16,
                },
            )
        })
        .collect();
    let mut nodes: BTreeMap<u64, Node> =
        (1..=3u64).map(|i| (i, Node::start(&paths[&i], i, &peers))).collect();
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
