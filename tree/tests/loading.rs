//! Snapshot loading (`DataTree::empty` + `insert_loaded` / `insert_loaded_full`):
//! stored ZooKeeper stats become the right client stats (cversion derived from the
//! stored value as children arrive), other dialects' client stats are kept as they
//! are, ephemerals are indexed, malformed or misplaced paths are refused with the right
//! error. Guards against a snapshot loading into a tree that serves different stats
//! than the server that wrote it, or a hostile snapshot corrupting the tree.
#![allow(clippy::unwrap_used, clippy::cast_possible_truncation)]

mod common;

use common::{anyone, check, create1, full_dump, txn};
use keeperkit_model::node::CONTAINER_OWNER;
use keeperkit_model::{limits, Acl, NodeKind, SessionId, Stat, StatPersisted, Zxid};
use keeperkit_tree::{DataTree, TreeError, TxnResult};

fn stored(czxid: i64, cversion: i32, owner: i64) -> StatPersisted {
    StatPersisted {
        czxid,
        mzxid: czxid + 1,
        ctime: 100,
        mtime: 200,
        version: 2,
        cversion,
        aversion: 1,
        ephemeral_owner: owner,
        pzxid: czxid + 2,
    }
}

#[test]
fn zookeeper_snapshot_round_trips_through_the_stored_stat() {
    let open = Acl::open_unsafe();
    let mut t = DataTree::empty();
    t.insert_loaded("", Some(b""), &open, stored(0, 3, 0)).unwrap();
    for (p, cv) in [("/a", 5), ("/b", 0), ("/c", 0), ("/zookeeper", 0)] {
        t.insert_loaded(p, None, &anyone(1), stored(10, cv, 0)).unwrap();
    }
    t.insert_loaded("/a/e", Some(b"x"), &open, stored(11, 0, 0x55)).unwrap();
    // docs/formats/zookeeper.md, "Stat views": stored 3 with 4 children reports 2.
    let root = t.get("/").unwrap();
    assert_eq!((root.seq(), root.stat().cversion, root.stat().num_children), (3, 2, 4));
    let a = t.get("/a").unwrap();
    assert_eq!((a.seq(), a.stat().cversion), (5, 9));
    assert_eq!(a.stored_stat(), stored(10, 5, 0));
    assert_eq!(a.data(), None);
    let e = t.get("/a/e").unwrap();
    assert_eq!(e.stored_stat(), stored(11, 0, 0x55));
    assert_eq!(e.kind(), NodeKind::Ephemeral);
    assert_eq!(t.ephemerals(SessionId(0x55)), ["/a/e"]);
    assert_eq!(t.acl_lists().len(), 2);
    check(&t);

    // Replaying a txn on the loaded tree keeps the relation.
    assert_eq!(t.apply(&txn(20, 1, create1("/a/f", -1))), TxnResult::Ok);
    let a = t.get("/a").unwrap();
    assert_eq!((a.seq(), a.stat().cversion), (6, 10));
    check(&t);

    // Loading the same tree through the stored stats gives an identical tree.
    let mut copy = DataTree::empty();
    t.for_each_preorder(|p, n| {
        copy.insert_loaded(p, n.data(), n.acl(), n.stored_stat()).unwrap();
    });
    copy.set_last_processed_zxid(t.last_processed_zxid());
    assert_eq!(full_dump(&copy), full_dump(&t));
}

#[test]
fn root_reinsert_replaces_data_stat_and_acl() {
    let mut t = DataTree::new();
    let d = t.get("/").unwrap().stored_stat();
    t.insert_loaded("/", Some(b"r"), &anyone(3), stored(0, 7, 0)).unwrap();
    let root = t.get("/").unwrap();
    assert_eq!(root.data(), Some(&b"r"[..]));
    assert_eq!(root.acl(), &anyone(3));
    assert_eq!(root.stored_stat(), stored(0, 7, 0));
    assert_ne!(root.stored_stat(), d);
    assert_eq!(root.stat().cversion, 2 * 7 - 1);
    assert_eq!(t.children("/").unwrap(), ["zookeeper"]);
    check(&t);
}

#[test]
fn other_dialects_keep_client_cversion_and_seq_apart() {
    let mut t = DataTree::empty();
    let stat = Stat { cversion: 11, czxid: 1, pzxid: 9, ephemeral_owner: 12345, ..Stat::default() };
    t.insert_loaded_full("/", None, &Acl::open_unsafe(), &stat, 40, 0).unwrap();
    t.insert_loaded_full("/c", None, &Acl::open_unsafe(), &stat, 0, CONTAINER_OWNER).unwrap();
    t.insert_loaded_full("/c/x", None, &Acl::open_unsafe(), &stat, 2, 0x99).unwrap();
    let root = t.get("/").unwrap();
    assert_eq!((root.stat().cversion, root.seq(), root.stat().num_children), (11, 40, 1));
    assert_eq!(root.stat().ephemeral_owner, 0); // owner_raw wins over the client field
    let c = t.get("/c").unwrap();
    assert_eq!((c.kind(), c.stat().ephemeral_owner), (NodeKind::Container, 0));
    assert_eq!(c.stored_stat().ephemeral_owner, CONTAINER_OWNER);
    assert_eq!(c.stat().cversion, 11);
    assert_eq!(t.get("/c/x").unwrap().stat().ephemeral_owner, 0x99);
    t.check_consistency(false).unwrap();
    assert!(t.check_consistency(true).is_err());
    assert_eq!(t.digest(), t.compute_digest());
}

#[test]
fn bad_paths_are_refused() {
    let open = Acl::open_unsafe();
    let s = StatPersisted::default();
    let mut t = DataTree::empty();
    assert!(matches!(t.insert_loaded("/a", None, &open, s), Err(TreeError::NoParent { .. })));
    t.insert_loaded("/", None, &open, s).unwrap();
    t.insert_loaded("/a", None, &open, s).unwrap();
    assert!(matches!(t.insert_loaded("/a", None, &open, s), Err(TreeError::Exists { .. })));
    for bad in ["a", "/a/", "/a//b", "//"] {
        let r = t.insert_loaded(bad, None, &open, s);
        assert!(matches!(r, Err(TreeError::InvalidPath { .. })), "{bad}: {r:?}");
    }
    assert!(matches!(t.insert_loaded("/x/y", None, &open, s), Err(TreeError::NoParent { .. })));
    // Path characters ZooKeeper's PathUtils would refuse are loaded as they are.
    t.insert_loaded("/a/\u{1}weird", None, &open, s).unwrap();
    let too_deep = "/a".repeat(limits::TREE_DEPTH_MAX + 1);
    assert!(matches!(t.insert_loaded(&too_deep, None, &open, s), Err(TreeError::TooDeep { .. })));
    let too_long = format!("/{}", "x".repeat(limits::PATH_LEN_MAX));
    assert!(matches!(
        t.insert_loaded(&too_long, None, &open, s),
        Err(TreeError::InvalidPath { .. })
    ));
    let msg = t.insert_loaded("/a/", None, &open, s).unwrap_err().to_string();
    assert_eq!(msg, "invalid path \"/a/\": path must not end with /");
    assert_eq!(t.node_count(), 3);
    check(&t);
}

#[test]
fn sessions_and_orphans_after_loading() {
    let open = Acl::open_unsafe();
    let mut t = DataTree::empty();
    t.insert_loaded("/", None, &open, StatPersisted::default()).unwrap();
    for (p, owner) in [("/e1", 7), ("/e2", 7), ("/e3", 8), ("/p", 0)] {
        t.insert_loaded(p, None, &open, stored(3, 0, owner)).unwrap();
    }
    t.add_session(SessionId(8), 3000);
    t.set_last_processed_zxid(Zxid(0x40));
    assert_eq!(t.sessions().len(), 1);
    assert_eq!(t.sessions()[0].ephemerals, 1);
    assert_eq!(t.ephemerals(SessionId(7)), ["/e1", "/e2"]);
    assert_eq!(t.remove_orphan_ephemerals(), ["/e1", "/e2"]);
    assert_eq!(t.children("/").unwrap(), ["e3", "p"]);
    assert_eq!(t.get("/").unwrap().stat().pzxid, 0x40);
    check(&t);
}
