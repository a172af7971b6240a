//! A `DataTree` saved as a native snapshot and loaded back is the same tree: every
//! field of every node (client stat, stored stat, sequence counter, raw owner, data
//! with null kept apart from empty, ACL), the sessions, the zxid and the digest.
//!
//! Guards against: the adapter mixing up the client cversion and the stored sequence
//! counter, or the raw and the client ephemeral owner (containers, TTL nodes); ACL ids
//! pointing at the wrong list; a view saved while the original changes showing those
//! changes; a snapshot whose nodes disagree with its digest loading silently.
//! Checked on every snapshot of every real ZooKeeper 3.8.0 fixture set and on the state
//! recovered from each set.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::cast_possible_truncation)]

use std::path::{Path, PathBuf};

use keeperkit_model::{Acl, AclList, Id, Perms, SessionId, Stat, StatPersisted, Zxid};
use keeperkit_snapshot::native::{inspect_snapshot, verify_snapshot, ReadOptions, WriteOptions};
use keeperkit_storage::native::snapshot::{
    load_tree, load_tree_with, save_tree, tree_meta, SnapshotPosition,
};
use keeperkit_storage::zookeeper::{load_snapshot, recover, NoProgress, RecoverOptions, ZkLayout};
use keeperkit_tree::DataTree;
use keeperkit_vfs::{FileSystem, StdFs};

/// Everything observable about one node.
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
    assert_eq!(a.node_count(), b.node_count(), "{what}: node count");
    let (na, nb) = (nodes(a), nodes(b));
    for (x, y) in na.iter().zip(&nb) {
        assert_eq!(x, y, "{what}: first differing node");
    }
    assert_eq!(a.sessions(), b.sessions(), "{what}: sessions");
    assert_eq!(a.digest(), b.digest(), "{what}: digest");
    assert_eq!(a.last_processed_zxid(), b.last_processed_zxid(), "{what}: zxid");
    assert_eq!(b.digest(), b.compute_digest(), "{what}: running digest");
    let mut la = a.acl_lists();
    let mut lb = b.acl_lists();
    la.sort();
    lb.sort();
    assert_eq!(la, lb, "{what}: ACL lists");
}

/// Saves `tree`, checks the file, loads it back (with one and with several threads)
/// and compares.
fn round_trip(tree: &DataTree, dir: &Path, name: &str, what: &str) {
    let fs = StdFs;
    let pos = SnapshotPosition {
        last_index: 42,
        last_term: 3,
        cluster_config: b"server.1=localhost:2888:3888".to_vec(),
    };
    let opts = WriteOptions { chunk_len_target: 16 << 10, ..WriteOptions::default() };
    let w = save_tree(&fs, dir, name, tree, &pos, &opts).expect("saved");
    assert_eq!(w.node_count, tree.node_count() as u64);
    assert_eq!(verify_snapshot(&fs, &w.path).unwrap(), vec![], "{what}");
    let info = inspect_snapshot(&fs, &w.path).unwrap();
    assert_eq!(info.meta, tree_meta(tree, &pos));
    for threads in [1, 0] {
        let loaded = load_tree_with(&fs, &w.path, &ReadOptions { threads }).expect("loaded");
        assert_eq!(loaded.meta.last_index, 42);
        assert_eq!(loaded.meta.last_term, 3);
        assert_eq!(loaded.meta.cluster_config, pos.cluster_config);
        assert_same_tree(tree, &loaded.tree, what);
        loaded.tree.check_consistency(false).unwrap();
    }
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
fn every_zookeeper_fixture_round_trips_through_a_native_snapshot() {
    let tmp = tempfile::tempdir().unwrap();
    let fs = StdFs;
    for set in fixture_sets() {
        let name = set.file_name().unwrap().to_string_lossy().into_owned();
        let layout = ZkLayout::locate(&fs, &set.join("data"), None).unwrap();
        // The recovered state (snapshot + log replay, orphans dropped).
        let recovered = recover(&fs, &layout, &RecoverOptions::default(), &mut NoProgress)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(recovered.tree.node_count() > 4, "{name}: a real tree");
        round_trip(&recovered.tree, tmp.path(), &format!("{name}.kks"), &name);
        // Every snapshot file as it is (fuzzy, with its own sessions and ACL map).
        for (zxid, _, path) in &layout.snapshots {
            let loaded = load_snapshot(&fs, path).unwrap();
            let what = format!("{name} {}", path.display());
            round_trip(&loaded.tree, tmp.path(), &format!("{name}-{zxid}.kks"), &what);
        }
    }
}

/// A tree with every node kind and odd values, built with the full loader.
fn odd_tree() -> DataTree {
    let mut t = DataTree::empty();
    let open = Acl::open_unsafe();
    let digest_acl = vec![
        Acl { perms: Perms::READ, id: Id::anyone() },
        Acl { perms: Perms::ALL, id: Id { scheme: "digest".into(), id: "u:h=".into() } },
    ];
    let stat = |cversion: i32| Stat {
        czxid: 5,
        mzxid: 9,
        ctime: 1_700_000_000_000,
        mtime: 1_700_000_000_123,
        version: 2,
        cversion,
        aversion: -1,
        ephemeral_owner: 0,
        data_length: 0,
        num_children: 0,
        pzxid: 11,
    };
    // (path, data, ACL, client cversion, seq, raw owner)
    type Row<'a> = (&'a str, Option<&'a [u8]>, &'a AclList, i32, i32, i64);
    let nodes: [Row<'_>; 7] = [
        ("/", Some(b""), &open, 3, 2, 0),
        ("/null", None, &open, 0, 0, 0),
        ("/ephemeral", Some(b"e"), &digest_acl, 0, 0, 0x0100_000b_08f2_0003),
        ("/container", Some(b""), &open, 7, 4, i64::MIN),
        ("/container/ttl", Some(&[0, 0xFF]), &digest_acl, -5, 9, 0xFF00_0000_0036_EE80u64 as i64),
        ("/container/seq0000000003", Some(b"s"), &open, 0, 0, 0),
        ("/z\u{e9}", Some(b"unicode"), &open, 0, 0, 0),
    ];
    for (path, data, acl, cversion, seq, owner) in nodes {
        t.insert_loaded_full(path, data, acl, &stat(cversion), seq, owner).unwrap();
    }
    t.add_session(SessionId(0x0100_000b_08f2_0003), 30_000);
    t.add_session(SessionId(-7), 4_000);
    t.set_last_processed_zxid(Zxid(0x2_0000_0001));
    t
}

#[test]
fn every_node_kind_and_field_round_trips() {
    let tmp = tempfile::tempdir().unwrap();
    round_trip(&odd_tree(), tmp.path(), "odd.kks", "odd tree");
    round_trip(&DataTree::new(), tmp.path(), "new.kks", "fresh tree");
    // A tree without any node (not even the root).
    let fs = StdFs;
    let empty = DataTree::empty();
    let w = save_tree(
        &fs,
        tmp.path(),
        "empty.kks",
        &empty,
        &SnapshotPosition::default(),
        &WriteOptions::default(),
    )
    .unwrap();
    let loaded = load_tree(&fs, &w.path).unwrap();
    assert_eq!(loaded.tree.node_count(), 0);
}

#[test]
fn a_view_saved_while_the_original_changes_keeps_its_state() {
    let tmp = tempfile::tempdir().unwrap();
    let mut live = odd_tree();
    let view = live.clone();
    let before = nodes(&view);
    live.insert_loaded_full("/later", Some(b"x"), &Acl::open_unsafe(), &Stat::default(), 0, 0)
        .unwrap();
    live.add_session(SessionId(99), 1);
    round_trip(&view, tmp.path(), "view.kks", "view");
    assert_eq!(nodes(&load_tree(&StdFs, &tmp.path().join("view.kks")).unwrap().tree), before);
}

#[test]
fn a_digest_that_disagrees_with_the_nodes_is_refused() {
    // Rewrite the digest in the metadata of a snapshot by saving a tree and a forged
    // metadata through the snapshot crate directly.
    use keeperkit_snapshot::native::write_snapshot;
    use keeperkit_storage::native::snapshot::TreeSource;
    let tmp = tempfile::tempdir().unwrap();
    let tree = odd_tree();
    let mut meta = tree_meta(&tree, &SnapshotPosition::default());
    meta.digest ^= 1;
    let source = TreeSource::new(&tree, &meta);
    let fs = StdFs;
    write_snapshot(&fs, tmp.path(), "forged.kks", &meta, &source, &WriteOptions::default())
        .unwrap();
    let err = load_tree(&fs, &tmp.path().join("forged.kks")).unwrap_err();
    assert!(err.is_corruption(), "{err}");
    assert!(err.to_string().contains("digest mismatch"), "{err}");
    assert!(fs.exists(&tmp.path().join("forged.kks")));
}

#[test]
fn session_auth_ids_round_trip() {
    let tmp = tempfile::tempdir().unwrap();
    let fs = StdFs;
    let mut tree = odd_tree();
    let alice = Id { scheme: "digest".into(), id: "alice:XDkd2dsEuhc9ImU3q8pa8UOdtpI=".into() };
    let ip = Id { scheme: "ip".into(), id: "127.0.0.1".into() };
    tree.add_session(SessionId(0x77), 5_000);
    tree.add_session_auth(SessionId(0x77), alice.clone());
    tree.add_session_auth(SessionId(0x77), ip.clone());
    let w = save_tree(
        &fs,
        tmp.path(),
        "auth.kks",
        &tree,
        &SnapshotPosition::default(),
        &WriteOptions::default(),
    )
    .unwrap();
    let loaded = load_tree(&fs, &w.path).unwrap();
    assert_eq!(loaded.tree.session_auths(SessionId(0x77)), vec![alice, ip]);
    assert_same_tree(&tree, &loaded.tree, "with auth ids");
}
