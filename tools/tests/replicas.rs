//! `keeperkit replicas DIR...`: replicas compared offline (native replicas written by
//! the engine as a replica's log would be, ClickHouse Keeper directories).
//!
//! Guards against: a replica that is only behind reported as divergent; the first
//! divergent index off by one or missed when the terms are the same and only the bytes
//! differ; replicas of two clusters reported as agreeing; damage or a directory that is
//! not a replica's mapped to the wrong exit code.
//!
//! `a_cut_off_leaders_unacknowledged_entries_diverge_from_the_new_leaders_log` makes a
//! real divergence with three `keeperkit serve` processes: the two followers are killed,
//! the leader appends writes it can never commit, it is killed, the followers restart
//! and elect a new leader that writes other entries at the same indexes; the report
//! names the first index the old leader holds alone. Bounded in time.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use common::{clickhouse_dir, create_txn, run, s};
use keeperkit_model::Acl;
use keeperkit_storage::engine::{NativeEngine, NativeEngineOptions};

/// A native replica `root/name` of `cluster`, node `node`, whose log holds `entries`
/// (term, path created), one per index from 1.
fn replica(
    root: &Path,
    name: &str,
    cluster: &str,
    node: u64,
    entries: &[(u64, String)],
) -> PathBuf {
    let dir = root.join(name);
    let e =
        NativeEngine::open(Arc::new(keeperkit_vfs::StdFs), NativeEngineOptions::new(&dir)).unwrap();
    for (i, (term, path)) in entries.iter().enumerate() {
        let t = create_txn(i64::try_from(i).unwrap() + 1, path);
        e.write(*term, &[&t]).unwrap();
    }
    drop(e);
    std::fs::write(dir.join("cluster-identity"), format!("cluster={cluster}\nnode={node}\n"))
        .unwrap();
    dir
}

fn history(n: usize) -> Vec<(u64, String)> {
    (0..n).map(|i| (1, format!("/n{i:02}"))).collect()
}

fn json(args: &[&str]) -> (Option<i32>, serde_json::Value, String) {
    let r = run(args);
    let v = serde_json::from_str(&r.stdout).unwrap_or(serde_json::Value::Null);
    (r.code, v, r.stderr)
}

#[test]
fn a_replica_behind_another_agrees_and_the_digest_is_compared_where_both_are() {
    let t = tempfile::tempdir().unwrap();
    let a = replica(t.path(), "a", "c1", 1, &history(10));
    let b = replica(t.path(), "b", "c1", 2, &history(7));
    let (code, v, err) = json(&["replicas", s(&a), s(&b), "--json"]);
    assert_eq!(code, Some(0), "{v} {err}");
    assert_eq!(v["agree"], true);
    assert_eq!(v["common_index"], 7);
    assert_eq!(v["digests_agree"], true);
    assert!(v["divergence"].is_null());
    let r = &v["replicas"];
    assert_eq!(r[0]["last_index"], 10);
    assert_eq!(r[0]["last_term"], 1);
    assert_eq!(r[0]["first_index"], 1);
    assert_eq!(r[1]["last_index"], 7);
    assert_eq!(r[0]["cluster_id"], "c1");
    assert_eq!(r[1]["node_id"], 2);
    assert_eq!(r[0]["dialect"], "native");
    assert_eq!(r[0]["digest"], r[1]["digest"]);
    assert!(r[0]["digest"].as_str().unwrap().len() == 16);
    // Text: a table and the verdict.
    let out = run(&["replicas", s(&a), s(&b)]);
    assert_eq!(out.code, Some(0));
    assert!(out.stdout.contains("digest@7"), "{}", out.stdout);
    assert!(out.stdout.contains("the 2 replicas agree"), "{}", out.stdout);
}

#[test]
fn the_first_divergent_index_by_term_and_by_bytes() {
    let t = tempfile::tempdir().unwrap();
    let a = replica(t.path(), "a", "c1", 1, &history(10));
    // Same first 6 entries; then a leader of term 2 wrote other entries.
    let mut other = history(6);
    other.extend((6..9).map(|i| (2, format!("/other{i}"))));
    let b = replica(t.path(), "b", "c1", 2, &other);
    // Same term, other bytes from index 8 on.
    let mut same_term = history(7);
    same_term.push((1, "/changed".into()));
    let c = replica(t.path(), "c", "c1", 3, &same_term);

    let (code, v, err) = json(&["replicas", s(&a), s(&b), "--json"]);
    assert_eq!(code, Some(3), "{v} {err}");
    assert_eq!(v["agree"], false);
    assert_eq!(v["divergence"]["index"], 7);
    assert_eq!(v["divergence"]["kind"], "term");
    assert_eq!(v["divergence"]["term_a"], 1);
    assert_eq!(v["divergence"]["term_b"], 2);
    assert_eq!(v["common_index"], 9);
    assert_eq!(v["digests_agree"], false);

    let (code, v, _) = json(&["replicas", s(&a), s(&c), "--json"]);
    assert_eq!(code, Some(3));
    assert_eq!(v["divergence"]["index"], 8);
    assert_eq!(v["divergence"]["kind"], "bytes");

    // Over three replicas: the lowest divergent index of every pair.
    let (code, v, _) = json(&["replicas", s(&a), s(&c), s(&b), "--json"]);
    assert_eq!(code, Some(3));
    assert_eq!(v["divergence"]["index"], 7);
    let out = run(&["replicas", s(&a), s(&b)]);
    assert_eq!(out.code, Some(3));
    assert!(out.stdout.contains("DIVERGED: the logs of"), "{}", out.stdout);
    assert!(out.stdout.contains("diverge at index 7"), "{}", out.stdout);
}

#[test]
fn replicas_of_two_clusters_disagree() {
    let t = tempfile::tempdir().unwrap();
    let a = replica(t.path(), "a", "c1", 1, &history(5));
    let b = replica(t.path(), "b", "c2", 2, &history(5));
    let (code, v, _) = json(&["replicas", s(&a), s(&b), "--json"]);
    assert_eq!(code, Some(3));
    assert!(v["divergence"].is_null());
    assert_eq!(v["digests_agree"], true);
    assert!(v["disagreements"][0].as_str().unwrap().contains("different clusters"), "{v}");
}

#[test]
fn damage_is_exit_1_and_a_directory_not_a_replicas_exit_2() {
    let t = tempfile::tempdir().unwrap();
    let a = replica(t.path(), "a", "c1", 1, &history(10));
    let b = replica(t.path(), "b", "c1", 2, &history(10));
    // Flip a byte in the middle of b's only segment.
    let seg = std::fs::read_dir(b.join("wal"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "wal"))
        .unwrap();
    let mut bytes = std::fs::read(&seg).unwrap();
    let used = bytes.iter().rposition(|&x| x != 0).unwrap();
    bytes[used / 2] ^= 0x40;
    std::fs::write(&seg, &bytes).unwrap();
    let (code, v, err) = json(&["replicas", s(&a), s(&b), "--json"]);
    assert_eq!(code, Some(1), "{v} {err}");
    assert!(!v["replicas"][1]["findings"].as_array().unwrap().is_empty(), "{v}");
    assert!(err.contains("error:"), "{err}");

    // A damaged cluster-identity is damage too, named with its file.
    let c = replica(t.path(), "c", "c1", 3, &history(10));
    std::fs::write(c.join("cluster-identity"), b"\x00\xffgarbage").unwrap();
    let (code, v, err) = json(&["replicas", s(&a), s(&c), "--json"]);
    assert_eq!(code, Some(1), "{v} {err}");
    let f = &v["replicas"][1]["findings"][0];
    assert!(f["file"].as_str().unwrap().ends_with("cluster-identity"), "{v}");
    assert!(v["replicas"][1]["cluster_id"].is_null());

    let empty = t.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let r = run(&["replicas", s(&a), s(&empty)]);
    assert_eq!(r.code, Some(2), "{}", r.stderr);
    let r = run(&["replicas", s(&a), s(&t.path().join("missing"))]);
    assert_eq!(r.code, Some(2), "{}", r.stderr);
}

#[test]
fn clickhouse_keeper_directories_are_compared_by_term_and_bytes() {
    let t = tempfile::tempdir().unwrap();
    let a = clickhouse_dir(t.path(), "a", false);
    let b = clickhouse_dir(t.path(), "b", true);
    let (code, v, err) = json(&["replicas", s(&a), s(&b), "--json"]);
    assert_eq!(code, Some(0), "{v} {err}");
    assert_eq!(v["replicas"][0]["dialect"], "clickhouse");
    assert_eq!(v["replicas"][0]["last_index"], 55);
    assert_eq!(v["replicas"][0]["last_term"], 1);
    assert_eq!(v["replicas"][1]["snapshot_index"], 40);
    assert!(v["replicas"][0]["commit_index"].is_null());
    assert_eq!(v["common_index"], 55);
    assert_eq!(v["digests_agree"], true);

    // A newer changelog rewrites the log from index 51 in term 2 (a new leader).
    let c = clickhouse_dir(t.path(), "c", false);
    let mut bytes = Vec::new();
    for i in 51..=53u64 {
        let r = keeperkit_wal::clickhouse::ChangelogRecord::new(
            i,
            2,
            keeperkit_wal::clickhouse::VALUE_TYPE_APP_LOG,
            common::ch_request_record(
                i,
                0x10,
                1000,
                keeperkit_model::keeper::KeeperRequest::Create(
                    keeperkit_model::keeper::CreateRequest {
                        path: format!("/new{i}"),
                        data: vec![],
                        acls: vec![],
                        flags: 0,
                    },
                ),
                1000,
                1000,
            )
            .blob,
        );
        r.encode_into(&mut bytes);
    }
    let name = keeperkit_wal::clickhouse::ChangelogName::new(51, 70, false).file_name();
    std::fs::write(c.join("logs").join(name), bytes).unwrap();
    let (code, v, err) = json(&["replicas", s(&a), s(&c), "--json"]);
    assert_eq!(code, Some(3), "{v} {err}");
    assert_eq!(v["divergence"]["index"], 51);
    assert_eq!(v["divergence"]["kind"], "term");
}

// ---------------------------------------------------------------- a real divergence

const BASE: u16 = 24540;

fn peers() -> String {
    (1..=3u16)
        .map(|i| format!("{i}=127.0.0.1:{}:{}", BASE + i, BASE + 10 + i))
        .collect::<Vec<_>>()
        .join(",")
}

fn spawn(dir: &Path, id: u16, logs: &Path) -> std::process::Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(logs.join(format!("n{id}.log")))
        .unwrap();
    std::process::Command::new(env!("CARGO_BIN_EXE_keeperkit"))
        .args(["serve", s(dir), "--id", &id.to_string(), "--peers", &peers(), "--bootstrap"])
        .args(["--http-port", &(BASE + 20 + id).to_string(), "--heartbeat-ms", "50"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap()
}

/// Kills every process it holds when dropped (a failing test leaves none behind).
struct Procs(Vec<std::process::Child>);

impl Drop for Procs {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn status(id: u16) -> serde_json::Value {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", BASE + 20 + id)) else {
        return serde_json::Value::Null;
    };
    s.set_read_timeout(Some(std::time::Duration::from_secs(2))).unwrap();
    if s.write_all(b"GET /status HTTP/1.1\r\nHost: x\r\n\r\n").is_err() {
        return serde_json::Value::Null;
    }
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    let body = out.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or_default();
    serde_json::from_str(body).unwrap_or(serde_json::Value::Null)
}

fn wait_leader(among: &[u16], secs: u64) -> u16 {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        for &i in among {
            let st = status(i);
            if st["state"] == "leader" && st["ready"] == true {
                return i;
            }
        }
        assert!(std::time::Instant::now() < deadline, "no leader among {among:?} in {secs} s");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

fn create_req(path: &str) -> keeperkit_server::proto::Request {
    keeperkit_server::proto::Request::Create(keeperkit_server::proto::CreateRequest {
        path: path.into(),
        data: Some(b"v".to_vec()),
        acl: Acl::open_unsafe(),
        flags: keeperkit_server::proto::create_mode::PERSISTENT,
        ttl: None,
    })
}

#[test]
fn a_cut_off_leaders_unacknowledged_entries_diverge_from_the_new_leaders_log() {
    use keeperkit_server::client::{Client, ConnectOptions};
    let started = std::time::Instant::now();
    let t = tempfile::tempdir().unwrap();
    let logs = t.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    let dirs: Vec<PathBuf> = (1..=3).map(|i| t.path().join(format!("kk{i}"))).collect();
    let mut procs = Procs((1..=3u16).map(|i| spawn(&dirs[usize::from(i) - 1], i, &logs)).collect());
    let nodes = &mut procs.0;
    let old = wait_leader(&[1, 2, 3], 30);
    let followers: Vec<u16> = (1..=3u16).filter(|&i| i != old).collect();
    let addr = |id: u16| format!("127.0.0.1:{}", BASE + 10 + id);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let mut c = Client::connect(&addr(old), &ConnectOptions::default()).await.unwrap();
        for i in 0..20 {
            assert_eq!(c.call(&create_req(&format!("/acked{i}"))).await.unwrap().header.err, 0);
        }
        c.close().await.unwrap();
    });
    // A session opened before (creating one is a txn the leader could not commit).
    let mut c = rt.block_on(Client::connect(&addr(old), &ConnectOptions::default())).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    let before = status(old);
    // The followers die (SIGKILL: a paused one would still find the leader's appends
    // in its socket when resumed); the leader appends what it can never commit.
    for &f in &followers {
        let n = &mut nodes[usize::from(f) - 1];
        n.kill().unwrap();
        n.wait().unwrap();
    }
    let committed = before["commit_index"].as_u64().unwrap();
    assert_eq!(before["last_log_index"], before["commit_index"], "{before}");
    rt.block_on(async {
        for i in 0..10 {
            c.send(&create_req(&format!("/lost{i}"))).await.unwrap();
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while status(old)["last_log_index"].as_u64().unwrap_or(0) <= committed {
            assert!(std::time::Instant::now() < deadline, "the leader did not append");
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        // Whatever else the leader appends meanwhile is its alone too.
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        drop(c);
    });
    let old_last = status(old)["last_log_index"].as_u64().unwrap();
    let old_node = &mut nodes[usize::from(old) - 1];
    old_node.kill().unwrap();
    old_node.wait().unwrap();
    // The followers come back with their usual command and elect a new leader.
    for &f in &followers {
        nodes[usize::from(f) - 1] = spawn(&dirs[usize::from(f) - 1], f, &logs);
    }
    let new = wait_leader(&followers, 30);
    rt.block_on(async {
        let mut c = Client::connect(&addr(new), &ConnectOptions::default()).await.unwrap();
        for i in 0..20 {
            assert_eq!(c.call(&create_req(&format!("/new{i}"))).await.unwrap().header.err, 0);
        }
        c.close().await.unwrap();
    });
    drop(procs);
    let (code, v, err) = json(&[
        "replicas",
        s(&dirs[usize::from(old) - 1]),
        s(&dirs[usize::from(new) - 1]),
        "--json",
    ]);
    assert_eq!(code, Some(3), "{v} {err}");
    let d = &v["divergence"];
    // openraft's indexes are the files' minus one. The entries past the old leader's
    // commit index are its alone.
    let first_alone = committed + 2;
    assert_eq!(d["index"].as_u64(), Some(first_alone), "{v}");
    assert_eq!(d["kind"], "term");
    assert!(d["term_a"].as_u64() < d["term_b"].as_u64(), "{v}");
    assert_eq!(v["replicas"][0]["last_index"].as_u64(), Some(old_last + 1), "{v}");
    assert_eq!(v["digests_agree"], false, "{v}");
    assert!(started.elapsed() < std::time::Duration::from_secs(120));
}
