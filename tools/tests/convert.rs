//! `keeperkit convert`: every fixture converted keeps its state exactly, and a
//! conversion is atomic.
//!
//! Guards against: a stat field, an ACL, a session or a sequence counter lost on the
//! way to another dialect, and a failed conversion leaving a half-written directory.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

use keeperkit_storage::{open, OpenOptions, Point};
use keeperkit_tools::json::JsonNode;
use keeperkit_tree::DataTree;

fn fixture(set: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/zookeeper-3.8.0").join(set).join("data")
}

fn dump(tree: &DataTree) -> Vec<JsonNode> {
    let mut v = Vec::new();
    tree.for_each_sorted(|p, n| v.push(JsonNode::from_node(p, &n)));
    v
}

fn source_tree(set: &str) -> DataTree {
    let fs = keeperkit_vfs::std_fs();
    open(&*fs, &fixture(set), &OpenOptions::default()).unwrap().recover(Point::Latest).unwrap().tree
}

#[test]
fn every_fixture_converted_to_native_keeps_its_state() {
    for set in ["basic", "crash", "big-values", "gz", "snappy", "quorum", "seed7-small-snapcount"] {
        let tmp = tempfile::tempdir().unwrap();
        let dst = tmp.path().join("native");
        let out = Command::new(env!("CARGO_BIN_EXE_keeperkit"))
            .args([
                "convert",
                fixture(set).to_str().unwrap(),
                dst.to_str().unwrap(),
                "--to",
                "native",
            ])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{set}: {}", String::from_utf8_lossy(&out.stderr));
        let snaps: Vec<PathBuf> =
            std::fs::read_dir(dst.join("snapshots")).unwrap().map(|e| e.unwrap().path()).collect();
        assert_eq!(snaps.len(), 1);
        let fs = keeperkit_vfs::std_fs();
        let loaded = keeperkit_storage::native::snapshot::load_tree(&*fs, &snaps[0]).unwrap();
        let want = source_tree(set);
        assert_eq!(dump(&loaded.tree), dump(&want), "{set}: nodes differ");
        assert_eq!(loaded.tree.sessions(), want.sessions(), "{set}: sessions differ");
        assert_eq!(loaded.tree.digest(), want.digest(), "{set}: digest differs");
        assert_eq!(loaded.tree.last_processed_zxid(), want.last_processed_zxid());
        // The converted directory opens as a native data directory and dumps the same.
        let dumped = Command::new(env!("CARGO_BIN_EXE_keeperkit"))
            .args(["dump", dst.to_str().unwrap(), "--json"])
            .output()
            .unwrap();
        assert_eq!(
            dumped.status.code(),
            Some(0),
            "{set}: {}",
            String::from_utf8_lossy(&dumped.stderr)
        );
        let want_lines: Vec<String> =
            dump(&want).iter().map(|n| serde_json::to_string(n).unwrap()).collect();
        let got_lines: Vec<String> =
            String::from_utf8_lossy(&dumped.stdout).lines().map(str::to_string).collect();
        assert_eq!(got_lines, want_lines, "{set}: keeperkit dump of the native directory");
        // Sequence counters (stored cversion) survive.
        want.for_each_preorder(|p, n| {
            assert_eq!(loaded.tree.get(p).unwrap().seq(), n.seq(), "{set}: seq of {p}");
        });
    }
}

#[test]
fn a_failed_conversion_leaves_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    // A damaged source: nothing may be written.
    let src = tmp.path().join("src/version-2");
    std::fs::create_dir_all(&src).unwrap();
    for e in std::fs::read_dir(fixture("basic").join("version-2")).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), src.join(e.file_name())).unwrap();
    }
    let newest = src.join("log.560");
    let mut b = std::fs::read(&newest).unwrap();
    b[3000] ^= 1;
    std::fs::write(&newest, b).unwrap();
    let dst = tmp.path().join("out");
    let out = Command::new(env!("CARGO_BIN_EXE_keeperkit"))
        .args(["convert", src.to_str().unwrap(), dst.to_str().unwrap(), "--to", "native"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(!dst.exists());
    let left: Vec<_> =
        std::fs::read_dir(tmp.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(left, vec![std::ffi::OsString::from("src")], "no temporary directory is left");
    // An existing destination is refused.
    std::fs::create_dir(&dst).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_keeperkit"))
        .args([
            "convert",
            fixture("basic").to_str().unwrap(),
            dst.to_str().unwrap(),
            "--to",
            "native",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(std::fs::read_dir(&dst).unwrap().count(), 0);
}
