//! A `DataTree` written as a ZooKeeper snapshot and read back by our reader is the same
//! tree: every node (client stat, stored stat, sequence counter, raw owner, data with
//! null kept apart from empty, ACL), the sessions with their timeouts, the zxid and the
//! digest. Writing the re-read tree again gives the same bytes; a fresh tree gives
//! exactly ZooKeeper's own `snapshot.0`.
//!
//! Checked on the state recovered from every real ZooKeeper 3.8.0 fixture set (and on
//! every snapshot file of each set as it is), plain, gzip and snappy.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::cast_possible_truncation)]

use std::path::{Path, PathBuf};

use keeperkit_model::{AclList, Stat, StatPersisted};
use keeperkit_snapshot::zookeeper::{read_snapshot, Compression, SnapshotSink};
use keeperkit_storage::convert::zookeeper::{save_tree, TreeSource};
use keeperkit_storage::zookeeper::{load_snapshot, recover, NoProgress, RecoverOptions, ZkLayout};
use keeperkit_tree::DataTree;
use keeperkit_vfs::StdFs;

#[derive(Debug, PartialEq, Eq)]
struct NodeView {
    path: String,
    data: Option<Vec<u8>>,
    stat: Stat,
    stored: StatPersisted,
    seq: i32,
    acl: AclList,
}

fn nodes(tree: &DataTree) -> Vec<NodeView> {
    let mut out = Vec::with_capacity(tree.node_count());
    tree.for_each_preorder(|path, n| {
        out.push(NodeView {
            path: path.to_owned(),
            data: n.data().map(<[u8]>::to_vec),
            stat: n.stat(),
            stored: n.stored_stat(),
            seq: n.seq(),
            acl: n.acl().clone(),
        })
    });
    out
}

fn assert_same_tree(a: &DataTree, b: &DataTree, what: &str) {
    let (na, nb) = (nodes(a), nodes(b));
    for (x, y) in na.iter().zip(&nb) {
        assert_eq!(x, y, "{what}: first differing node");
    }
    assert_eq!(a.node_count(), b.node_count(), "{what}: node count");
    assert_eq!(a.sessions(), b.sessions(), "{what}: sessions");
    assert_eq!(a.digest(), b.digest(), "{what}: digest");
    assert_eq!(a.last_processed_zxid(), b.last_processed_zxid(), "{what}: zxid");
    assert_eq!(b.digest(), b.compute_digest(), "{what}: running digest");
}

struct Ignore;
impl SnapshotSink for Ignore {
    fn session(&mut self, _: keeperkit_model::SessionId, _: i32) {}
    fn acl_list(&mut self, _: i64, _: AclList) {}
    fn node(&mut self, _: keeperkit_snapshot::zookeeper::SnapshotNode) -> Result<(), String> {
        Ok(())
    }
}

/// Writes `tree` in every compression into `dir`, reads each back and compares; the
/// plain file written again from the re-read tree is byte-identical.
fn round_trip(tree: &DataTree, dir: &Path, what: &str) {
    let fs = StdFs;
    std::fs::create_dir_all(dir).unwrap();
    let mut plain = None;
    for c in [Compression::None, Compression::Gzip, Compression::Snappy] {
        let w = save_tree(&fs, dir, tree, c).expect("written");
        assert_eq!(w.node_count, tree.node_count() as u64, "{what}");
        assert_eq!(w.file_len, std::fs::metadata(&w.path).unwrap().len(), "{what}");
        let info = read_snapshot(&fs, &w.path, &mut Ignore).unwrap();
        assert_eq!(info.stream_len, w.stream_len, "{what}");
        let digest = info.digest.expect("a digest trailer");
        assert_eq!(digest.version, 2);
        if tree.last_processed_zxid().0 != 0 {
            assert_eq!(digest.zxid, tree.last_processed_zxid(), "{what}");
            assert_eq!(digest.digest as u64, tree.digest(), "{what}: trailer digest");
        }
        let loaded = load_snapshot(&fs, &w.path).unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_same_tree(tree, &loaded.tree, &format!("{what} {c:?}"));
        loaded.tree.check_consistency(true).unwrap();
        if c == Compression::None {
            plain = Some((std::fs::read(&w.path).unwrap(), loaded.tree));
        }
        std::fs::remove_file(&w.path).unwrap();
    }
    let (bytes, reread) = plain.unwrap();
    let again = keeperkit_snapshot::zookeeper_writer::encode_snapshot(
        &TreeSource(&reread),
        Compression::None,
    )
    .unwrap();
    assert!(bytes == again, "{what}: rewriting the re-read tree changed the bytes");
}

fn fixture_sets() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/zookeeper-3.8.0");
    let mut sets: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("data/version-2").is_dir())
        .collect();
    sets.sort();
    for required in ["basic", "crash", "big-values", "gz", "snappy", "quorum"] {
        assert!(sets.iter().any(|s| s.ends_with(required)), "fixture set {required} is missing");
    }
    sets
}

#[test]
fn every_zookeeper_fixture_round_trips_through_our_writer() {
    let tmp = tempfile::tempdir().unwrap();
    let fs = StdFs;
    for set in fixture_sets() {
        let name = set.file_name().unwrap().to_string_lossy().into_owned();
        let layout = ZkLayout::locate(&fs, &set.join("data"), None).unwrap();
        let recovered = recover(&fs, &layout, &RecoverOptions::default(), &mut NoProgress)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(recovered.tree.node_count() > 4, "{name}: a real tree");
        round_trip(&recovered.tree, &tmp.path().join(&name), &name);
        for (zxid, _, path) in &layout.snapshots {
            let loaded = load_snapshot(&fs, path).unwrap();
            let what = format!("{name} {}", path.display());
            round_trip(&loaded.tree, &tmp.path().join(format!("{name}-{zxid}")), &what);
        }
    }
}

#[test]
fn a_fresh_tree_is_zookeepers_own_snapshot_0() {
    let fs = StdFs;
    let tmp = tempfile::tempdir().unwrap();
    let zk = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../testdata/zookeeper-3.8.0/basic/data/version-2/snapshot.0");
    let theirs = std::fs::read(&zk).unwrap();
    // From the tree ZooKeeper's snapshot.0 loads into...
    let loaded = load_snapshot(&fs, &zk).unwrap();
    let w = save_tree(&fs, tmp.path(), &loaded.tree, Compression::None).unwrap();
    assert_eq!(w.path.file_name().unwrap(), "snapshot.0");
    assert!(std::fs::read(&w.path).unwrap() == theirs, "snapshot.0 differs from ZooKeeper's");
    // ...and from a new tree.
    let fresh = DataTree::new();
    let ours = keeperkit_snapshot::zookeeper_writer::encode_snapshot(
        &TreeSource(&fresh),
        Compression::None,
    )
    .unwrap();
    assert_eq!(ours.len(), 457);
    assert!(ours == theirs, "a new tree's snapshot differs from ZooKeeper's snapshot.0");
}
