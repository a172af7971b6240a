//! The lost-quorum recipe of docs/OPERATIONS.md, as processes on 127.0.0.1: three
//! `keeperkit serve` replicas, writes, two of them lost for good (SIGKILL, one data
//! directory deleted), the survivor stopped; `keeperkit replicas` on what is left,
//! `keeperkit recover --force-new-cluster` on the survivor, which then serves alone with
//! every acknowledged write; a lost member started again with its usual command on an
//! empty data directory is rebuilt from it and becomes a voter; the other lost member is
//! removed (`keeperkit members remove`) and a new machine joins (`serve --join`).
//!
//! Guards against: recover writing under a running server or on a directory that is
//! not a replica's; the survivor losing entries or not electing itself; a lost member
//! with its old data mistaken for a member of the new cluster; a new member not
//! joining. Bounded in time (two minutes at most).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{run, s};
use keeperkit_model::Acl;
use keeperkit_server::client::{Client, ConnectOptions};
use keeperkit_server::proto::{create_mode, CreateRequest, Request};

const BASE: u16 = 24500;

fn peers() -> String {
    (1..=3u16)
        .map(|i| format!("{i}=127.0.0.1:{}:{}", BASE + i, BASE + 10 + i))
        .collect::<Vec<_>>()
        .join(",")
}

fn client_addr(id: u16) -> String {
    format!("127.0.0.1:{}", BASE + 10 + id)
}

fn http_port(id: u16) -> u16 {
    BASE + 20 + id
}

struct Node {
    child: Child,
}

impl Node {
    /// `keeperkit serve DIR --id N --peers ... --bootstrap`: the same command every time.
    fn start(dir: &Path, id: u16, logs: &Path) -> Node {
        let log = std::fs::File::create(logs.join(format!("n{id}-{}.log", now_ms()))).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_keeperkit"))
            .args(["serve", s(dir), "--id", &id.to_string(), "--peers", &peers(), "--bootstrap"])
            .args(["--http-port", &http_port(id).to_string(), "--heartbeat-ms", "50"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        Node { child }
    }

    fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn now_ms() -> u128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis()
}

/// `/status` of node `id`, parsed (`Null` while it does not answer).
fn status(id: u16) -> serde_json::Value {
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", http_port(id))) else {
        return serde_json::Value::Null;
    };
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    if s.write_all(b"GET /status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").is_err() {
        return serde_json::Value::Null;
    }
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    let body = out.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or_default();
    serde_json::from_str(body).unwrap_or(serde_json::Value::Null)
}

/// Waits (up to `secs`) until `pred` holds of node `id`'s status.
fn wait_status(id: u16, secs: u64, what: &str, pred: impl Fn(&serde_json::Value) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let st = status(id);
        if pred(&st) {
            return;
        }
        assert!(Instant::now() < deadline, "node {id}: {what} within {secs} s; status: {st}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn leading(st: &serde_json::Value) -> bool {
    st["state"] == "leader" && st["ready"] == true
}

fn create(path: &str) -> Request {
    Request::Create(CreateRequest {
        path: path.into(),
        data: Some(path.as_bytes().to_vec()),
        acl: Acl::open_unsafe(),
        flags: create_mode::PERSISTENT,
        ttl: None,
    })
}

/// Every path exists on node `id` (after a sync).
async fn all_there(id: u16, paths: &[String]) {
    let mut c = Client::connect(&client_addr(id), &ConnectOptions::default()).await.unwrap();
    let r = c.call(&Request::Sync { path: "/".into() }).await.unwrap();
    assert_eq!(r.header.err, 0);
    for p in paths {
        let r = c.call(&Request::Exists { path: p.clone(), watch: false }).await.unwrap();
        assert_eq!(r.header.err, 0, "{p} is missing on node {id}");
    }
    c.close().await.unwrap();
}

#[test]
fn lost_quorum_force_new_cluster_keeps_every_acknowledged_write_and_a_member_rejoins() {
    let started = Instant::now();
    let t = tempfile::tempdir().unwrap();
    let logs = t.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    let dirs: Vec<PathBuf> = (1..=3).map(|i| t.path().join(format!("kk{i}"))).collect();
    let dir = |id: u16| dirs[usize::from(id) - 1].clone();
    let mut nodes: Vec<Option<Node>> =
        (1..=3).map(|i| Some(Node::start(&dir(i), i, &logs))).collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    let lead = loop {
        if let Some(l) = (1..=3u16).find(|&i| leading(&status(i))) {
            break l;
        }
        assert!(Instant::now() < deadline, "no leader within 30 s");
        std::thread::sleep(Duration::from_millis(100));
    };
    // The survivor is a follower; the writes go through it, so each is applied there
    // before it is acknowledged.
    let survivor = (1..=3u16).find(|&i| i != lead).unwrap();
    let lost: Vec<u16> = (1..=3u16).filter(|&i| i != survivor).collect();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let acked: Vec<String> = rt.block_on(async {
        let mut c =
            Client::connect(&client_addr(survivor), &ConnectOptions::default()).await.unwrap();
        let mut acked = Vec::new();
        for i in 0..300 {
            c.send(&create(&format!("/k{i:03}"))).await.unwrap();
        }
        for i in 0..300 {
            let r = c.recv().await.unwrap();
            assert_eq!(r.header.err, 0);
            acked.push(format!("/k{i:03}"));
        }
        c.close().await.unwrap();
        acked
    });

    // A running server's directory is refused.
    let r = run(&["recover", "--force-new-cluster", s(&dir(survivor))]);
    assert_eq!(r.code, Some(2), "{}", r.stderr);
    assert!(r.stderr.contains("in use"), "{}", r.stderr);

    // Two replicas lost for good, then the survivor stops (it has no quorum).
    for &i in &lost {
        nodes[usize::from(i) - 1].take().unwrap().kill();
    }
    nodes[usize::from(survivor) - 1].take().unwrap().kill();

    // Compare what is left: the logs agree (the survivor is at least as advanced).
    let all: Vec<&str> = (1..=3u16).map(|i| s(&dirs[usize::from(i) - 1])).collect();
    let mut args = vec!["replicas"];
    args.extend(&all);
    args.push("--json");
    let r = run(&args);
    assert_eq!(r.code, Some(0), "{}\n{}", r.stdout, r.stderr);
    let cmp: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let last = |i: u16| cmp["replicas"][usize::from(i) - 1]["last_index"].as_u64().unwrap();
    // (300 writes take fewer entries: the leader proposes each batch of its committer
    // as one; every acknowledged write is checked in the tree below.)
    assert!((1..=3u16).all(|i| last(survivor) >= last(i)), "{cmp}");
    assert_eq!(cmp["digests_agree"], true, "{cmp}");

    // Not a replica's directory: refused.
    let empty = t.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let r = run(&["recover", "--force-new-cluster", s(&empty)]);
    assert_eq!(r.code, Some(2), "{}", r.stderr);
    // Without --force-new-cluster: a usage error.
    let r = run(&["recover", s(&dir(survivor))]);
    assert_eq!(r.code, Some(2), "{}", r.stderr);

    // The text report, on a copy.
    let copy = t.path().join("copy");
    common::copy_dir(&dir(survivor), &copy);
    let r = run(&["recover", "--force-new-cluster", s(&copy)]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    for want in [
        format!("node {survivor} is now the only voter of cluster"),
        "new membership epoch: entry".to_string(),
        "it held: last index".to_string(),
        "may be lost:".to_string(),
        "keeperkit replicas".to_string(),
    ] {
        assert!(r.stdout.contains(&want), "{want:?} not in:\n{}", r.stdout);
    }

    let r = run(&["recover", "--force-new-cluster", s(&dir(survivor)), "--json"]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let rep: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(rep["node"], u64::from(survivor));
    assert_eq!(rep["voters"], serde_json::json!([survivor]));
    assert_eq!(rep["learners"], serde_json::json!(lost));
    assert_eq!(rep["last_index"].as_u64(), Some(last(survivor)));
    assert_eq!(rep["membership_index"].as_u64(), Some(last(survivor) + 1));
    assert!(rep["membership_term"].as_u64() > rep["last_term"].as_u64(), "{rep}");
    assert_ne!(rep["cluster"], rep["old_cluster"]);
    assert!(rep["commit_index"].as_u64() <= rep["last_index"].as_u64());
    assert_eq!(
        rep["uncertain_count"].as_u64().unwrap(),
        rep["last_index"].as_u64().unwrap() - rep["commit_index"].as_u64().unwrap()
    );

    // Every key it prints is in docs/CLI.md.
    let doc = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/CLI.md"))
        .unwrap();
    for k in rep.as_object().unwrap().keys() {
        assert!(doc.contains(&format!("`{k}`")), "recover --json key {k} is not in docs/CLI.md");
    }

    // The survivor serves alone, with every acknowledged write.
    nodes[usize::from(survivor) - 1] = Some(Node::start(&dir(survivor), survivor, &logs));
    wait_status(survivor, 30, "leads alone", leading);
    let st = status(survivor);
    assert_eq!(st["voters"], serde_json::json!([survivor]), "{st}");
    assert_eq!(st["cluster"], rep["cluster"], "{st}");
    rt.block_on(async {
        all_there(survivor, &acked).await;
        let mut c =
            Client::connect(&client_addr(survivor), &ConnectOptions::default()).await.unwrap();
        let r = c.call(&create("/after")).await.unwrap();
        assert_eq!(r.header.err, 0);
        c.close().await.unwrap();
    });

    // A lost member's old data belongs to the old cluster, and its membership is the
    // old one.
    let r = run(&["replicas", s(&dir(survivor)), s(&dir(lost[1]))]);
    assert_eq!(r.code, Some(3), "{}\n{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("different clusters"), "{}", r.stdout);
    let r = run(&["replicas", s(&dir(survivor)), s(&dir(lost[1])), "--json"]);
    assert_eq!(r.code, Some(3), "{}\n{}", r.stdout, r.stderr);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(
        v["replicas"][0]["membership"],
        serde_json::json!({
            "index": rep["membership_index"],
            "term": rep["membership_term"],
            "voters": [survivor],
            "learners": lost,
        }),
        "{v}"
    );
    assert_eq!(v["replicas"][1]["membership"]["voters"], serde_json::json!([1, 2, 3]), "{v}");
    assert_eq!(v["replicas"][0]["cluster_id"], rep["cluster"]);
    assert_eq!(v["replicas"][1]["cluster_id"], rep["old_cluster"]);

    // A lost member comes back on an empty data directory, with its usual command: it is
    // rebuilt from the survivor and becomes a voter.
    let back = lost[0];
    std::fs::remove_dir_all(dir(back)).unwrap();
    nodes[usize::from(back) - 1] = Some(Node::start(&dir(back), back, &logs));
    wait_status(survivor, 60, &format!("node {back} a voter"), |st| {
        st["voters"].as_array().is_some_and(|v| v.contains(&serde_json::json!(back)))
    });
    wait_status(back, 30, "ready, rebuilt", |st| st["ready"] == true && st["rebuilding"] == false);
    assert_eq!(status(back)["cluster"], rep["cluster"]);
    let mut with_after = acked.clone();
    with_after.push("/after".into());
    rt.block_on(all_there(back, &with_after));

    // The other lost member is not coming back: it is removed (it was a learner of the
    // new cluster), and a new machine joins in its place with `serve --join`.
    let gone = lost[1];
    let http = format!("127.0.0.1:{}", http_port(survivor));
    let members = |extra: &[&str]| {
        let mut a = vec!["members", "--server", http.as_str(), "--json"];
        a.extend_from_slice(extra);
        run(&a)
    };
    let r = members(&[]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let listing: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let version = listing["version"].as_u64().unwrap().to_string();
    let r = members(&["remove", &gone.to_string(), "--expect-version", &version]);
    assert_eq!(r.code, Some(0), "{}\n{}", r.stdout, r.stderr);
    wait_status(survivor, 30, &format!("node {gone} removed"), |st| {
        st["learners"].as_array().is_some_and(|l| !l.contains(&serde_json::json!(gone)))
            && st["voters"].as_array().is_some_and(|v| !v.contains(&serde_json::json!(gone)))
    });
    let new_id = 4u16;
    let new_dir = t.path().join("kk4");
    let log = std::fs::File::create(logs.join("n4.log")).unwrap();
    let joined = Node {
        child: Command::new(env!("CARGO_BIN_EXE_keeperkit"))
            .args(["serve", s(&new_dir), "--id", "4"])
            .args(["--peers", &format!("4=127.0.0.1:{}:{}", BASE + new_id, BASE + 10 + new_id)])
            .args(["--join", &http, "--http-port", &http_port(new_id).to_string()])
            .args(["--heartbeat-ms", "50"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    };
    wait_status(new_id, 60, "a ready voter", |st| st["ready"] == true);
    let st = status(survivor);
    assert_eq!(
        st["voters"],
        serde_json::json!([survivor.min(back), survivor.max(back), new_id]),
        "{st}"
    );
    assert_eq!(status(new_id)["cluster"], rep["cluster"]);
    rt.block_on(all_there(new_id, &with_after));
    nodes.push(Some(joined));
    for n in nodes.into_iter().flatten() {
        n.kill();
    }
    assert!(started.elapsed() < Duration::from_secs(120), "took {:?}", started.elapsed());
}
