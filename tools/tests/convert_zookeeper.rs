//! `keeperkit convert --to zookeeper`: every fixture converted to a ZooKeeper dataDir
//! keeps its state exactly (nodes, stored stats and sequence counters, ACLs, sessions
//! with their timeouts, digest, zxid), quorum sources get their epoch files, and bad
//! input is refused before anything is written, with the reason.
//!
//! Guards against: a snapshot our own reader (hence ZooKeeper) reads differently from
//! the source; a quorum directory a ZooKeeper peer refuses for a missing epoch; a value
//! no client could read, a path ZooKeeper rejects, or an unrepresentable zxid silently
//! written.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use keeperkit_model::{Acl, StatPersisted, Zxid};
use keeperkit_storage::convert::zookeeper::check;
use keeperkit_storage::convert::ConvertOptions;
use keeperkit_storage::{open, OpenOptions, Point};
use keeperkit_tools::json::JsonNode;
use keeperkit_tree::DataTree;

const SETS: [&str; 8] = [
    "basic",
    "crash",
    "crash-seed8",
    "big-values",
    "gz",
    "snappy",
    "quorum",
    "seed7-small-snapcount",
];

fn fixture(set: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/zookeeper-3.8.0").join(set).join("data")
}

fn dump(tree: &DataTree) -> Vec<JsonNode> {
    let mut v = Vec::new();
    tree.for_each_sorted(|p, n| v.push(JsonNode::from_node(p, &n)));
    v
}

fn load(dir: &Path) -> DataTree {
    let fs = keeperkit_vfs::std_fs();
    open(&*fs, dir, &OpenOptions::default()).unwrap().recover(Point::Latest).unwrap().tree
}

fn convert(src: &Path, dst: &Path, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_keeperkit"))
        .args(["convert", src.to_str().unwrap(), dst.to_str().unwrap(), "--to", "zookeeper"])
        .args(extra)
        .output()
        .unwrap()
}

fn assert_same_state(got: &DataTree, want: &DataTree, what: &str) {
    let (g, w) = (dump(got), dump(want));
    for (a, b) in g.iter().zip(&w) {
        assert_eq!(a, b, "{what}: first differing node");
    }
    assert_eq!(g.len(), w.len(), "{what}: node count");
    assert_eq!(got.sessions(), want.sessions(), "{what}: sessions differ");
    assert_eq!(got.digest(), want.digest(), "{what}: digest differs");
    assert_eq!(got.last_processed_zxid(), want.last_processed_zxid(), "{what}: zxid");
    want.for_each_preorder(|p, n| {
        let g = got.get(p).unwrap();
        assert_eq!(g.seq(), n.seq(), "{what}: seq of {p}");
        assert_eq!(g.stored_stat(), n.stored_stat(), "{what}: stored stat of {p}");
    });
}

#[test]
fn every_fixture_converted_to_zookeeper_keeps_its_state() {
    for (i, set) in SETS.iter().enumerate() {
        let tmp = tempfile::tempdir().unwrap();
        let dst = tmp.path().join("zk");
        let compression = ["none", "gz", "snappy"][i % 3];
        let out = convert(&fixture(set), &dst, &["--compression", compression, "--json"]);
        assert_eq!(out.status.code(), Some(0), "{set}: {}", String::from_utf8_lossy(&out.stderr));
        let want = load(&fixture(set));
        let zxid = want.last_processed_zxid();
        let suffix = match compression {
            "gz" => ".gz",
            "snappy" => ".snappy",
            _ => "",
        };
        let v2 = dst.join("version-2");
        let mut names: Vec<String> = std::fs::read_dir(&v2)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        let snap = format!("snapshot.{:x}{suffix}", zxid.0);
        if zxid.epoch() > 0 {
            assert_eq!(names, ["acceptedEpoch", "currentEpoch", snap.as_str()], "{set}");
            for f in ["acceptedEpoch", "currentEpoch"] {
                let text = std::fs::read_to_string(v2.join(f)).unwrap();
                assert_eq!(text, zxid.epoch().to_string(), "{set}: {f}");
            }
        } else {
            assert_eq!(names, [snap.as_str()], "{set}");
        }
        assert_same_state(&load(&dst), &want, set);
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(json["to"], "zookeeper");
    }
}

#[test]
fn zookeeper_to_zookeeper_is_a_fixed_point() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    assert_eq!(convert(&fixture("basic"), &a, &[]).status.code(), Some(0));
    assert_eq!(convert(&a, &b, &[]).status.code(), Some(0));
    let name = format!("snapshot.{:x}", load(&fixture("basic")).last_processed_zxid().0);
    let (x, y) = (
        std::fs::read(a.join("version-2").join(&name)).unwrap(),
        std::fs::read(b.join("version-2").join(&name)).unwrap(),
    );
    assert!(x == y, "compacting a compacted directory changed the snapshot");
}

fn assert_nothing_written(tmp: &Path, dst: &Path) {
    assert!(!dst.exists());
    let names: Vec<_> = std::fs::read_dir(tmp).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert!(names.is_empty(), "left behind: {names:?}");
}

#[test]
fn a_value_over_jute_maxbuffer_is_refused_with_the_option_to_raise_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dst = tmp.path().join("zk");
    let out = convert(&fixture("big-values"), &dst, &["--jute-maxbuffer", "100000"]);
    assert_ne!(out.status.code(), Some(0));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("jute.maxbuffer") && err.contains("--jute-maxbuffer"), "{err}");
    assert!(err.contains("node \"/"), "names the node: {err}");
    assert_nothing_written(tmp.path(), &dst);
    // The default limit accepts what ZooKeeper itself accepted.
    assert_eq!(convert(&fixture("big-values"), &dst, &[]).status.code(), Some(0));
}

#[test]
fn an_unknown_compression_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dst = tmp.path().join("zk");
    let out = convert(&fixture("basic"), &dst, &["--compression", "zstd"]);
    assert_ne!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stderr).contains("zstd"));
    assert_nothing_written(tmp.path(), &dst);
}

#[test]
fn bad_paths_and_zxids_are_refused_with_the_reason() {
    let opts = ConvertOptions::default();
    let mut t = DataTree::new();
    t.set_last_processed_zxid(Zxid(5));
    check(&t, &opts).unwrap();

    let stat = StatPersisted { czxid: 3, mzxid: 3, pzxid: 3, ..StatPersisted::default() };
    let mut bad = t.clone();
    bad.insert_loaded("/a", Some(b"x"), &Acl::open_unsafe(), stat).unwrap();
    bad.insert_loaded("/a/.", Some(b""), &Acl::open_unsafe(), stat).unwrap();
    let err = check(&bad, &opts).unwrap_err().to_string();
    assert!(err.contains("\"/a/.\"") && err.contains("rejects"), "{err}");

    for z in [-1i64, 0x1_ffff_ffff, 0xffff_ffff] {
        let mut t2 = t.clone();
        t2.set_last_processed_zxid(Zxid(z));
        let err = check(&t2, &opts).unwrap_err().to_string();
        assert!(err.contains("zxid"), "{z:#x}: {err}");
    }
    let mut t3 = t.clone();
    t3.set_last_processed_zxid(Zxid(0x1_ffff_fffe));
    check(&t3, &opts).unwrap();
}
