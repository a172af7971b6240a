//! `keeperkit replicas DIR...`: replicas compared offline (native replicas written by
//! the engine as a replica's log would be, ClickHouse Keeper directories).
//!
//! Guards against: a replica that is only behind reported as divergent; the first
//! divergent index off by one or missed when the terms are the same and only the bytes
//! differ; replicas of two clusters reported as agreeing; damage or a directory that is
//! not a replica's mapped to the wrong exit code.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use common::{clickhouse_dir, run, s};
use keeperkit_model::txn::CreateTxn;
use keeperkit_model::{Acl, OpCode, SessionId, Txn, TxnBody, TxnHeader, Zxid};
use keeperkit_storage::engine::{NativeEngine, NativeEngineOptions};

fn create(zxid: i64, path: &str) -> Vec<u8> {
    Txn {
        header: TxnHeader {
            client_id: SessionId(0),
            cxid: 0,
            zxid: Zxid(zxid),
            time: zxid,
            op: OpCode::CREATE,
        },
        body: TxnBody::Create(CreateTxn {
            path: path.into(),
            data: Some(format!("data of {path}").into_bytes()),
            acl: Acl::open_unsafe(),
            ephemeral: false,
            parent_cversion: -1,
            ttl: None,
            v0: false,
        }),
        digest: None,
    }
    .to_bytes()
}

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
        let t = create(i64::try_from(i).unwrap() + 1, path);
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
