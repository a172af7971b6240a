//! keeperkit and real ZooKeeper 3.8.0 on the same damaged copies.
//!
//! `testdata/zookeeper-3.8.0/damage-matrix.json` records what a real ZooKeeper 3.8.0 did
//! with each damaged copy of the `basic` fixture (made by `scripts/zk-damage-matrix.sh`;
//! the table is in docs/ZOOKEEPER-BEHAVIOUR.md). This test re-applies each recorded
//! damage byte for byte and checks keeperkit against ZooKeeper's recorded outcome:
//!
//! - where ZooKeeper starts, `keeperkit dump` serves the same number of nodes, except
//!   where ZooKeeper silently replays across a missing log (keeperkit stops before the
//!   hole and exits 1: never a silent hole);
//! - where ZooKeeper refuses to start, `keeperkit verify` exits 1;
//! - a torn last record is never an error for either.
//!
//! Guards against keeperkit drifting from ZooKeeper's end-of-log and fallback decisions.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/zookeeper-3.8.0")
}

fn apply(dir: &Path, d: &Value) {
    let path = dir.join(d["file"].as_str().unwrap());
    match d["action"].as_str().unwrap() {
        "truncate" => {
            let mut b = std::fs::read(&path).unwrap();
            b.truncate(usize::try_from(d["size"].as_u64().unwrap()).unwrap());
            std::fs::write(&path, b).unwrap();
        }
        "flip_bit" => {
            let mut b = std::fs::read(&path).unwrap();
            let off = usize::try_from(d["offset"].as_u64().unwrap()).unwrap();
            b[off] ^= 1 << d["bit"].as_u64().unwrap();
            std::fs::write(&path, b).unwrap();
        }
        "delete" => std::fs::remove_file(&path).unwrap(),
        "create_empty" => std::fs::write(&path, b"").unwrap(),
        "garbage" => {
            let pattern = d["pattern"].as_str().unwrap().as_bytes();
            let size = usize::try_from(d["size"].as_u64().unwrap()).unwrap();
            let b: Vec<u8> = pattern.iter().copied().cycle().take(size).collect();
            std::fs::write(&path, b).unwrap();
        }
        "write" => {
            let mut b = std::fs::read(&path).unwrap();
            let off = usize::try_from(d["offset"].as_u64().unwrap()).unwrap();
            let hex = d["bytes_hex"].as_str().unwrap();
            for i in 0..hex.len() / 2 {
                b[off + i] = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap();
            }
            std::fs::write(&path, b).unwrap();
        }
        other => panic!("unknown damage action {other}"),
    }
}

#[test]
fn keeperkit_matches_zookeeper_on_every_recorded_damage() {
    let matrix: Value = serde_json::from_str(
        &std::fs::read_to_string(testdata().join("damage-matrix.json")).unwrap(),
    )
    .unwrap();
    let cases = matrix["cases"].as_array().unwrap();
    assert!(cases.len() >= 15);
    for case in cases {
        let id = case["id"].as_str().unwrap();
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("version-2");
        std::fs::create_dir_all(&dir).unwrap();
        for e in std::fs::read_dir(testdata().join("basic/data/version-2")).unwrap() {
            let e = e.unwrap();
            std::fs::copy(e.path(), dir.join(e.file_name())).unwrap();
        }
        for d in case["damage"].as_array().unwrap() {
            apply(&dir, d);
        }
        let bin = env!("CARGO_BIN_EXE_keeperkit");
        let d = dir.to_str().unwrap();
        let verify = Command::new(bin).args(["verify", d]).output().unwrap();
        let dump = Command::new(bin).args(["dump", d, "--json"]).output().unwrap();
        let nodes = String::from_utf8_lossy(&dump.stdout).lines().count() as u64;
        let zk = &case["zookeeper"];
        if zk["starts"].as_bool().unwrap() {
            let zk_nodes = zk["node_count"].as_u64().unwrap();
            let crossed_a_hole = id.starts_with("c2");
            if crossed_a_hole {
                assert_eq!(dump.status.code(), Some(1), "{id}: a hole in replay must exit 1");
                assert!(nodes < zk_nodes, "{id}: keeperkit must stop before the hole");
            } else {
                assert_eq!(
                    dump.status.code(),
                    Some(0),
                    "{id}: ZooKeeper starts, dump must succeed"
                );
                assert_eq!(nodes, zk_nodes, "{id}: ZooKeeper serves {zk_nodes} nodes");
            }
        } else {
            assert_eq!(
                verify.status.code(),
                Some(1),
                "{id}: ZooKeeper refuses to start; verify must fail"
            );
        }
        if id.starts_with('a') {
            assert_eq!(verify.status.code(), Some(0), "{id}: a torn last record is not an error");
        }
        assert!(verify.status.code().is_some() && verify.status.code() != Some(101));
    }
}
