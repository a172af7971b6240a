//! `keeperkit bench snapshot`: a small synthetic tree saved, loaded back and checked.
//!
//! Guards against: the bench reporting rates without a round trip (the node count must
//! cover every leaf and its parents), leaving no snapshot behind (or one that
//! `keeperkit verify` rejects), and a second run overwriting the first.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Command, Output};

fn run(args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_keeperkit")).args(args).output().unwrap();
    assert_ne!(out.status.code(), Some(101), "panic: {}", String::from_utf8_lossy(&out.stderr));
    out
}

#[test]
fn saves_loads_verifies_and_refuses_a_second_run() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_str().unwrap();
    let out = run(&["bench", "snapshot", dir, "--nodes", "20000", "--json"]);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();

    // 20000 leaves, 20 buckets, /scale: at least 20021 znodes (the root and whatever
    // an empty tree holds come on top).
    let nodes = v["nodes"].as_u64().unwrap();
    assert!(nodes >= 20_021, "nodes {nodes}");
    assert_eq!(v["leaf_nodes"].as_u64(), Some(20_000));
    for key in ["save_znodes_per_s", "load_znodes_per_s", "bytes_per_znode", "save_seconds"] {
        assert!(v[key].as_f64().unwrap() > 0.0, "{key}: {}", v[key]);
    }
    assert!(v["cores"].as_u64().unwrap() >= 1);

    let file = v["file"].as_str().unwrap();
    let path = Path::new(file);
    assert!(path.starts_with(tmp.path().join("keeperkit-bench-snapshot")), "{file}");
    assert_eq!(std::fs::metadata(path).unwrap().len(), v["file_bytes"].as_u64().unwrap());
    // A lone .kks file is not detected by name (storage's `detect`): name the dialect.
    let verify = run(&["verify", file]);
    assert_eq!(
        verify.status.code(),
        Some(0),
        "verify: {}{}",
        String::from_utf8_lossy(&verify.stdout),
        String::from_utf8_lossy(&verify.stderr)
    );

    let again = run(&["bench", "snapshot", dir, "--nodes", "20000"]);
    assert_eq!(again.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&again.stderr).contains("exists"));
    assert_eq!(std::fs::metadata(path).unwrap().len(), v["file_bytes"].as_u64().unwrap());
}

#[test]
fn table_output() {
    let tmp = tempfile::tempdir().unwrap();
    let out = run(&["bench", "snapshot", tmp.path().to_str().unwrap(), "--nodes", "1500"]);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    for word in ["build", "save", "load", "bytes per znode", "cores"] {
        assert!(text.contains(word), "{word} missing:\n{text}");
    }
}
