//! `keeperkit dump | inspect | verify | stats | diff` on a native data directory
//! written by the engine (snapshots + WAL).
//!
//! Guards against: the tools showing the snapshot without the log entries after it,
//! verify checking only the WAL (a flipped bit in a snapshot chunk must exit 1 and name
//! the file and the chunk), inspect not listing the snapshots.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;

use common::create_txn;
use keeperkit_storage::engine::{NativeEngine, NativeEngineOptions};
use keeperkit_storage::traits::SnapshotStore;

fn run(args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_keeperkit")).args(args).output().unwrap();
    assert_ne!(out.status.code(), Some(101), "panic: {}", String::from_utf8_lossy(&out.stderr));
    out
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// 300 nodes in a snapshot at index 300, then 20 more in the log only.
fn make_dir(dir: &Path) -> std::path::PathBuf {
    let mut o = NativeEngineOptions::new(dir);
    o.snapshot_write.chunk_len_target = 4 << 10;
    let e = NativeEngine::open(Arc::new(keeperkit_vfs::StdFs), o).unwrap();
    let mut z = 0;
    let mut next = |p: String| {
        z += 1;
        create_txn(z, &p)
    };
    let t = next("/a".into());
    e.write(1, &[&t]).unwrap();
    for i in 1..300 {
        let t = next(format!("/a/n{i:04}"));
        e.write(1, &[&t]).unwrap();
    }
    let snap = e.start_snapshot().unwrap().wait().unwrap();
    for i in 0..20 {
        let t = next(format!("/b{i:02}"));
        e.write(1, &[&t]).unwrap();
    }
    snap.path
}

#[test]
fn dump_inspect_verify_stats_diff_on_a_native_data_dir() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let snap = make_dir(&dir);
    let d = dir.to_str().unwrap();

    let o = run(&["dump", d, "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    let lines: Vec<serde_json::Value> =
        stdout(&o).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    // "/", "/zookeeper", "/zookeeper/quota" and friends, 300 under /a, 20 in the log.
    assert!(lines.iter().any(|v| v["path"] == "/b19"), "the log after the snapshot is replayed");
    assert!(lines.iter().any(|v| v["path"] == "/a/n0299"));
    let o = run(&["dump", d, "--json", "--at-index", "305"]);
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    let s = stdout(&o);
    assert!(s.contains("\"/b04\"") && !s.contains("\"/b05\""), "stops at index 305");

    let o = run(&["inspect", d, "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["snapshots"][0]["last_index"], 300);
    assert_eq!(v["last_index"], 320);

    let o = run(&["verify", d]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    let o = run(&["stats", d]);
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    let o = run(&["diff", d, d]);
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    let o = run(&["dump", snap.to_str().unwrap(), "--format", "native", "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(!stdout(&o).contains("\"/b00\""), "the snapshot alone lacks the logged nodes");

    // A flipped bit in a chunk: verify exits 1 naming the file and the chunk.
    let info = keeperkit_snapshot::native::inspect_snapshot(&keeperkit_vfs::StdFs, &snap).unwrap();
    assert!(info.chunks.len() > 2);
    let c = &info.chunks[1];
    let mut bytes = std::fs::read(&snap).unwrap();
    let at = usize::try_from(c.offset).unwrap() + 32 + usize::try_from(c.stored_len / 2).unwrap();
    bytes[at] ^= 0x04;
    std::fs::write(&snap, bytes).unwrap();
    let o = run(&["verify", d]);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    let s = stdout(&o);
    assert!(s.contains(&snap.display().to_string()) && s.contains("chunk 1"), "{s}");
    let o = run(&["verify", d, "--json"]);
    assert_eq!(o.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["ok"], false);
    assert!(v["findings"][0]["message"].as_str().unwrap().contains("chunk 1"), "{v}");
}
