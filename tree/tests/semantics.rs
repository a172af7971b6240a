//! Hand-checked cases, each tied to a sentence of the ZooKeeper spec
//! (docs/formats/zookeeper.md: "Replay rules", "Stat views",
//! "Built-in nodes", "Tree digest"). Guards against semantic slips that a model test written
//! by the same hand could share: the client cversion formula, the type-1-only NodeExists
//! fix-up, pzxid on deletes of missing nodes, all-or-nothing multis, session closes,
//! container / TTL owners, the digest's `/zookeeper/` rule, path order.
#![allow(clippy::unwrap_used, clippy::cast_possible_truncation)]

mod common;

use common::{anyone, check, create, create1, dump_nodes, full_dump, txn};
use keeperkit_model::node::CONTAINER_OWNER;
use keeperkit_model::txn::SetDataTxn;
use keeperkit_model::{
    Acl, CreateTxn, EphemeralOwner, ErrorCode, NodeKind, Perms, SessionId, TxnBody, Zxid,
};
use keeperkit_tree::{DataTree, SessionInfo, TxnResult};

fn apply_ok(t: &mut DataTree, zxid: i64, session: i64, body: TxnBody) {
    let r = t.apply(&txn(zxid, session, body));
    assert_eq!(r, TxnResult::Ok, "zxid {zxid}");
}

fn set_data(path: &str, data: Option<&[u8]>, version: i32) -> TxnBody {
    TxnBody::SetData(SetDataTxn { path: path.into(), data: data.map(<[u8]>::to_vec), version })
}

#[test]
fn fresh_tree_has_the_built_in_nodes() {
    let t = DataTree::new();
    check(&t);
    assert_eq!(t.node_count(), 4);
    let paths: Vec<String> = dump_nodes(&t).into_iter().map(|d| d.path).collect();
    assert_eq!(paths, ["/", "/zookeeper", "/zookeeper/config", "/zookeeper/quota"]);
    // docs/formats/zookeeper.md, "Stat views": verified values: the root (stored 0, 1 child) reports -1; /zookeeper -2.
    let root = t.get("/").unwrap();
    assert_eq!(root.stat().cversion, -1);
    assert_eq!(root.stat().num_children, 1);
    assert_eq!(t.get("/zookeeper").unwrap().stat().cversion, -2);
    assert_eq!(t.get("").unwrap().stat(), root.stat());
    // docs/formats/zookeeper.md, "Built-in nodes": config has world:anyone READ and aversion -1; all data empty (not null).
    let config = t.get("/zookeeper/config").unwrap();
    assert_eq!(config.acl(), &vec![Acl { perms: Perms::READ, id: keeperkit_model::Id::anyone() }]);
    assert_eq!(config.stat().aversion, -1);
    assert_eq!(config.data(), Some(&b""[..]));
    assert_eq!(root.acl(), &Acl::open_unsafe());
    let quota = t.get("/zookeeper/quota").unwrap().stored_stat();
    assert_eq!(quota, keeperkit_model::StatPersisted::default());
    assert_eq!(t.acl_lists().len(), 2);
    assert!(DataTree::empty().get("/").is_none());
    assert_eq!(DataTree::empty().node_count(), 0);
}

#[test]
fn fresh_tree_digest_is_root_plus_zookeeper() {
    // docs/formats/zookeeper.md, "Tree digest": the root hashes as path "", /zookeeper counts, its children do not.
    let zeros = [0u8; 60];
    let root = crc32fast::hash(&zeros);
    let zk = crc32fast::hash(&[b"/zookeeper".as_slice(), &zeros].concat());
    let t = DataTree::new();
    assert_eq!(t.digest(), u64::from(root) + u64::from(zk));
    assert_eq!(t.compute_digest(), t.digest());
}

#[test]
fn client_cversion_is_twice_stored_minus_children() {
    // docs/formats/zookeeper.md, "Stat views", example: root with stored cversion 3 and 4 children reports 2.
    let mut t = DataTree::new();
    for (z, p) in [(1, "/a"), (2, "/b"), (3, "/c")] {
        apply_ok(&mut t, z, 1, create1(p, -1));
    }
    let root = t.get("/").unwrap();
    assert_eq!(root.seq(), 3);
    assert_eq!(root.stat().num_children, 4);
    assert_eq!(root.stat().cversion, 2);
    assert_eq!(root.stored_stat().cversion, 3);
    assert_eq!(root.stat().pzxid, 3);
    // A delete: stored unchanged, one child fewer, client +1, pzxid raised.
    apply_ok(&mut t, 4, 1, TxnBody::Delete { path: "/b".into() });
    let root = t.get("/").unwrap();
    assert_eq!(root.seq(), 3);
    assert_eq!(root.stat().cversion, 3);
    assert_eq!(root.stat().pzxid, 4);
    // Sequential-style parentCVersion given explicitly.
    apply_ok(&mut t, 5, 1, TxnBody::Create2(create("/a/x0000000000", None, false, 1)));
    let a = t.get("/a").unwrap();
    assert_eq!((a.seq(), a.stat().cversion, a.stat().pzxid), (1, 1, 5));
    check(&t);
}

#[test]
fn new_node_stat_comes_from_the_header() {
    let mut t = DataTree::new();
    let c = CreateTxn { acl: common::anyone(1), ..create("/n", Some(b"abc"), false, -1) };
    apply_ok(&mut t, 9, 5, TxnBody::Create(c));
    let n = t.get("/n").unwrap();
    let s = n.stat();
    assert_eq!((s.czxid, s.mzxid, s.pzxid), (9, 9, 9));
    assert_eq!((s.ctime, s.mtime), (9000, 9000));
    assert_eq!((s.version, s.cversion, s.aversion, s.ephemeral_owner), (0, 0, 0, 0));
    assert_eq!((s.data_length, s.num_children), (3, 0));
    assert_eq!(n.acl(), &common::anyone(1));
    assert_eq!(n.kind(), NodeKind::Persistent);
}

#[test]
fn parent_cversion_never_goes_down() {
    // docs/formats/zookeeper.md, "Replay rules": only raise parent seq / pzxid when the txn's value is greater.
    let mut t = DataTree::new();
    apply_ok(&mut t, 1, 1, create1("/p", 5));
    apply_ok(&mut t, 2, 1, create1("/p/a", 7));
    apply_ok(&mut t, 3, 1, create1("/p/b", 4)); // lower: child added, parent untouched
    let p = t.get("/p").unwrap();
    assert_eq!(p.seq(), 7);
    assert_eq!(p.stat().pzxid, 2);
    assert_eq!(p.stat().cversion, 2 * 7 - 2);
    assert_eq!(t.get("/").unwrap().seq(), 5);
    check(&t);
}

#[test]
fn node_exists_fix_up_is_for_create_type_1_only() {
    let mut t = DataTree::new();
    apply_ok(&mut t, 1, 1, create1("/p", -1));
    apply_ok(&mut t, 2, 1, create1("/p/a", 1));
    // create2 (15) hitting NodeExists: nothing changes.
    let before = full_dump(&t);
    let r = t.apply(&txn(3, 1, TxnBody::Create2(create("/p/a", None, false, 4))));
    assert_eq!(r, TxnResult::Err(ErrorCode::NodeExists));
    let mut after = full_dump(&t);
    assert_eq!(after.last_zxid, Zxid(3));
    after.last_zxid = before.last_zxid;
    assert_eq!(after, before);
    // create (1) hitting NodeExists: parent seq raised to parentCVersion, pzxid = zxid.
    let r = t.apply(&txn(4, 1, create1("/p/a", 4)));
    assert_eq!(r, TxnResult::Err(ErrorCode::NodeExists));
    let p = t.get("/p").unwrap();
    assert_eq!((p.seq(), p.stat().pzxid, p.stat().cversion), (4, 4, 7));
    // Not lowered by a smaller one; -1 means seq + 1.
    assert_eq!(t.apply(&txn(5, 1, create1("/p/a", 2))), TxnResult::Err(ErrorCode::NodeExists));
    assert_eq!(t.get("/p").unwrap().seq(), 4);
    assert_eq!(t.apply(&txn(6, 1, create1("/p/a", -1))), TxnResult::Err(ErrorCode::NodeExists));
    let p = t.get("/p").unwrap();
    assert_eq!((p.seq(), p.stat().pzxid), (5, 6));
    // Inside a multi, sub-type 1 gets the fix-up too; a sub create2 does not.
    let multi = TxnBody::Multi(vec![create1("/p/a", 9)]);
    assert_eq!(
        t.apply(&txn(7, 1, multi)),
        TxnResult::Multi(vec![TxnResult::Err(ErrorCode::NodeExists)])
    );
    let p = t.get("/p").unwrap();
    assert_eq!((p.seq(), p.stat().pzxid), (9, 7));
    let multi = TxnBody::Multi(vec![TxnBody::Create2(create("/p/a", None, false, 12))]);
    t.apply(&txn(8, 1, multi));
    assert_eq!(t.get("/p").unwrap().seq(), 9);
    check(&t);
}

#[test]
fn create_errors() {
    let mut t = DataTree::new();
    let before = full_dump(&t).nodes;
    assert_eq!(t.apply(&txn(1, 1, create1("/x/y", -1))), TxnResult::Err(ErrorCode::NoNode));
    assert_eq!(t.apply(&txn(2, 1, create1("/", -1))), TxnResult::Err(ErrorCode::BadArguments));
    assert_eq!(t.apply(&txn(3, 1, create1("x", -1))), TxnResult::Err(ErrorCode::BadArguments));
    assert_eq!(t.apply(&txn(4, 1, create1("/x/", -1))), TxnResult::Err(ErrorCode::BadArguments));
    assert_eq!(t.apply(&txn(5, 1, create1("/a//b", -1))), TxnResult::Err(ErrorCode::NoNode));
    let ttl0 = CreateTxn { ttl: Some(0), ..create("/t", None, false, -1) };
    assert_eq!(
        t.apply(&txn(6, 1, TxnBody::CreateTtl(ttl0))),
        TxnResult::Err(ErrorCode::BadArguments)
    );
    assert_eq!(full_dump(&t).nodes, before);
    assert_eq!(t.last_processed_zxid(), Zxid(6));
}

#[test]
fn delete_of_a_missing_node_still_raises_parent_pzxid() {
    let mut t = DataTree::new();
    apply_ok(&mut t, 1, 1, create1("/p", -1));
    apply_ok(&mut t, 2, 1, create1("/p/a", -1));
    let r = t.apply(&txn(10, 1, TxnBody::Delete { path: "/p/gone".into() }));
    assert_eq!(r, TxnResult::Err(ErrorCode::NoNode));
    let p = t.get("/p").unwrap();
    assert_eq!(p.stat().pzxid, 10);
    assert_eq!((p.seq(), p.stat().cversion), (1, 1));
    // Not lowered by an older zxid.
    t.apply(&txn(8, 1, TxnBody::Delete { path: "/p/gone".into() }));
    assert_eq!(t.get("/p").unwrap().stat().pzxid, 10);
    // Missing parent: NoNode, nothing changes.
    let before = full_dump(&t).nodes;
    let r = t.apply(&txn(11, 1, TxnBody::DeleteContainer { path: "/q/a".into() }));
    assert_eq!(r, TxnResult::Err(ErrorCode::NoNode));
    assert_eq!(full_dump(&t).nodes, before);
    assert_eq!(t.last_processed_zxid(), Zxid(11));
    check(&t);
}

#[test]
fn delete_of_a_node_with_children_takes_the_subtree() {
    // Only possible during fuzzy replay; ZooKeeper leaves unreachable nodes behind, we
    // drop them (see DataTree::apply docs).
    let mut t = DataTree::new();
    apply_ok(&mut t, 1, 1, create1("/p", -1));
    apply_ok(&mut t, 2, 7, TxnBody::Create(create("/p/e", None, true, -1)));
    apply_ok(&mut t, 3, 1, create1("/p/e/x", -1));
    apply_ok(&mut t, 4, 1, TxnBody::Delete { path: "/p".into() });
    assert_eq!(t.node_count(), 4);
    assert!(t.ephemerals(SessionId(7)).is_empty());
    check(&t);
}

#[test]
fn set_data_and_set_acl_take_absolute_versions() {
    let mut t = DataTree::new();
    apply_ok(&mut t, 1, 1, create1("/n", -1));
    apply_ok(&mut t, 2, 1, set_data("/n", Some(b"v"), 5));
    let s = t.get("/n").unwrap().stat();
    assert_eq!((s.version, s.mzxid, s.mtime, s.data_length, s.czxid), (5, 2, 2000, 1, 1));
    apply_ok(&mut t, 3, 1, set_data("/n", None, 6));
    let n = t.get("/n").unwrap();
    assert_eq!((n.data(), n.stat().data_length, n.stat().version), (None, 0, 6));
    apply_ok(&mut t, 4, 1, TxnBody::SetAcl { path: "/n".into(), acl: anyone(3), version: 9 });
    let n = t.get("/n").unwrap();
    assert_eq!((n.acl(), n.stat().aversion, n.stat().mzxid), (&anyone(3), 9, 3));
    // "/" is the root.
    apply_ok(&mut t, 5, 1, set_data("/", Some(b"root"), 1));
    assert_eq!(t.get("/").unwrap().data(), Some(&b"root"[..]));
    assert_eq!(
        t.apply(&txn(6, 1, set_data("/missing", None, 1))),
        TxnResult::Err(ErrorCode::NoNode)
    );
    // The ACL no longer used is dropped from the table.
    apply_ok(
        &mut t,
        7,
        1,
        TxnBody::SetAcl { path: "/n".into(), acl: Acl::open_unsafe(), version: 10 },
    );
    assert_eq!(t.acl_lists().len(), 2);
    check(&t);
}

#[test]
fn reconfig_updates_zookeeper_config() {
    let mut t = DataTree::new();
    let digest = t.digest();
    let body = TxnBody::Reconfig(SetDataTxn {
        path: "/zookeeper/config".into(),
        data: Some(b"server.1=a:1:2\nversion=100000005".to_vec()),
        version: -1,
    });
    apply_ok(&mut t, 0x1_0000_0005, 0, body);
    let c = t.get("/zookeeper/config").unwrap();
    assert_eq!(c.data(), Some(&b"server.1=a:1:2\nversion=100000005"[..]));
    assert_eq!((c.stat().version, c.stat().mzxid), (-1, 0x1_0000_0005));
    // Skipped by the digest.
    assert_eq!(t.digest(), digest);
    check(&t);
}

#[test]
fn failed_multi_changes_nothing() {
    let mut t = DataTree::new();
    apply_ok(&mut t, 1, 1, create1("/a", -1));
    let before = full_dump(&t);
    let multi = TxnBody::Multi(vec![
        create1("/a/b", -1),
        set_data("/a", Some(b"x"), 1),
        TxnBody::Error { err: ErrorCode::BadVersion },
        TxnBody::Error { err: ErrorCode::RuntimeInconsistency },
        TxnBody::Check { path: "/a".into(), version: 3 },
    ]);
    let r = t.apply(&txn(2, 1, multi));
    assert_eq!(
        r,
        TxnResult::Multi(vec![
            TxnResult::Ok,
            TxnResult::Ok,
            TxnResult::Err(ErrorCode::BadVersion),
            TxnResult::Err(ErrorCode::RuntimeInconsistency),
            TxnResult::Err(ErrorCode::RuntimeInconsistency),
        ])
    );
    let mut after = full_dump(&t);
    assert_eq!(after.last_zxid, Zxid(2));
    after.last_zxid = before.last_zxid;
    assert_eq!(after, before);
}

#[test]
fn multi_applies_in_order_with_the_outer_header() {
    let mut t = DataTree::new();
    let multi = TxnBody::Multi(vec![
        create1("/m", -1),
        TxnBody::Create(create("/m/e", Some(b"1"), true, -1)),
        TxnBody::Delete { path: "/nope".into() }, // fails alone; the rest still applies
        set_data("/m/e", Some(b"2"), 1),
        TxnBody::Check { path: "/m".into(), version: 0 },
    ]);
    let r = t.apply(&txn(5, 0x42, multi));
    assert_eq!(
        r,
        TxnResult::Multi(vec![
            TxnResult::Ok,
            TxnResult::Ok,
            TxnResult::Err(ErrorCode::NoNode),
            TxnResult::Ok,
            TxnResult::Ok
        ])
    );
    let e = t.get("/m/e").unwrap();
    assert_eq!((e.data(), e.stat().czxid, e.stat().mzxid), (Some(&b"2"[..]), 5, 5));
    assert_eq!(e.stat().ephemeral_owner, 0x42);
    assert_eq!(t.get("/").unwrap().stat().pzxid, 5);
    // A multi of checks only is logged and changes nothing.
    let before = full_dump(&t).nodes;
    let r =
        t.apply(&txn(6, 1, TxnBody::Multi(vec![TxnBody::Check { path: "/m".into(), version: 0 }])));
    assert_eq!(r, TxnResult::Multi(vec![TxnResult::Ok]));
    assert_eq!(full_dump(&t).nodes, before);
    // A sub-type processTxn does not accept in a multi ends it there.
    let multi = TxnBody::Multi(vec![
        create1("/s1", -1),
        TxnBody::SetAcl { path: "/m".into(), acl: anyone(1), version: 1 },
        create1("/s2", -1),
    ]);
    let r = t.apply(&txn(7, 1, multi));
    assert_eq!(r, TxnResult::Multi(vec![TxnResult::Ok, TxnResult::Err(ErrorCode::BadArguments)]));
    assert!(t.get("/s1").is_some());
    assert!(t.get("/s2").is_none());
    check(&t);
}

#[test]
fn error_and_check_txns_only_advance_the_zxid() {
    let mut t = DataTree::new();
    apply_ok(&mut t, 1, 1, create1("/a", -1));
    let before = full_dump(&t);
    let r = t.apply(&txn(2, 1, TxnBody::Error { err: ErrorCode::NodeExists }));
    assert_eq!(r, TxnResult::Err(ErrorCode::NodeExists));
    // Top-level check (3.8.0–3.8.4 bug, ZOOKEEPER-2623): a no-op.
    let r = t.apply(&txn(3, 1, TxnBody::Check { path: "/a".into(), version: 0 }));
    assert_eq!(r, TxnResult::Ok);
    let mut after = full_dump(&t);
    assert_eq!(after.last_zxid, Zxid(3));
    after.last_zxid = before.last_zxid;
    assert_eq!(after, before);
    // lastProcessedZxid = max: an older txn does not lower it.
    t.apply(&txn(2, 1, TxnBody::Error { err: ErrorCode::NoNode }));
    assert_eq!(t.last_processed_zxid(), Zxid(3));
    t.set_last_processed_zxid(Zxid(100));
    assert_eq!(t.last_processed_zxid(), Zxid(100));
}

#[test]
fn close_session_removes_listed_paths_then_remaining_ephemerals() {
    let (s1, s2) = (0x100_0000_0000_0001_i64, 0x100_0000_0000_0002_i64);
    let mut t = DataTree::new();
    apply_ok(&mut t, 1, s1, TxnBody::CreateSession { timeout_ms: 30000 });
    apply_ok(&mut t, 2, s2, TxnBody::CreateSession { timeout_ms: 40000 });
    apply_ok(&mut t, 3, 1, create1("/p", -1));
    apply_ok(&mut t, 4, 1, create1("/q", -1));
    for (z, p) in [(5, "/p/e1"), (6, "/p/e2"), (7, "/q/e3")] {
        apply_ok(&mut t, z, s1, TxnBody::Create(create(p, None, true, -1)));
    }
    apply_ok(&mut t, 8, s2, TxnBody::Create2(create("/p/f", None, true, -1)));
    apply_ok(&mut t, 9, s1, create1("/q/persistent", -1));
    assert_eq!(
        t.sessions(),
        vec![
            SessionInfo { id: SessionId(s1), timeout_ms: 30000, ephemerals: 3 },
            SessionInfo { id: SessionId(s2), timeout_ms: 40000, ephemerals: 1 },
        ]
    );
    assert_eq!(t.ephemerals(SessionId(s1)), ["/p/e1", "/p/e2", "/q/e3"]);
    assert_eq!(t.get("/p/e1").unwrap().kind(), NodeKind::Ephemeral);
    assert_eq!(t.get("/p/e1").unwrap().stat().ephemeral_owner, s1);
    // The txn lists one ephemeral, a persistent node and a missing one; the other
    // ephemerals of s1 go too; s2's stays.
    let paths = vec!["/p/e1".into(), "/q/persistent".into(), "/q/missing".into()];
    apply_ok(&mut t, 20, s1, TxnBody::CloseSession { paths: Some(paths) });
    assert!(t.get("/p/e1").is_none());
    assert!(t.get("/p/e2").is_none());
    assert!(t.get("/q/e3").is_none());
    assert!(t.get("/q/persistent").is_none());
    assert!(t.get("/p/f").is_some());
    assert_eq!(t.session_timeout(SessionId(s1)), None);
    assert_eq!(t.session_timeout(SessionId(s2)), Some(40000));
    assert!(t.ephemerals(SessionId(s1)).is_empty());
    // Every delete used the closeSession's zxid.
    assert_eq!(t.get("/p").unwrap().stat().pzxid, 20);
    assert_eq!(t.get("/q").unwrap().stat().pzxid, 20);
    // /q: stored 2 (e3, persistent), no children left.
    assert_eq!(t.get("/q").unwrap().stat().cversion, 4);
    // Old logs: no body, all ephemerals of the client go.
    apply_ok(&mut t, 21, s2, TxnBody::CloseSession { paths: None });
    assert!(t.get("/p/f").is_none());
    assert!(t.sessions().is_empty());
    check(&t);
}

#[test]
fn orphan_ephemerals_are_removed_after_restore() {
    let mut t = DataTree::new();
    apply_ok(&mut t, 1, 1, create1("/p", -1));
    apply_ok(&mut t, 2, 0x51, TxnBody::Create(create("/p/live", None, true, -1)));
    apply_ok(&mut t, 3, 0x52, TxnBody::Create(create("/p/dead", None, true, -1)));
    apply_ok(&mut t, 4, 0x52, TxnBody::Create(create("/dead2", None, true, -1)));
    t.add_session(SessionId(0x51), 1000);
    t.set_last_processed_zxid(Zxid(50));
    assert_eq!(t.remove_orphan_ephemerals(), ["/dead2", "/p/dead"]);
    assert!(t.get("/p/live").is_some());
    // killSession with lastProcessedZxid: parents' pzxid rise to it.
    assert_eq!(t.get("/p").unwrap().stat().pzxid, 50);
    assert_eq!(t.get("/").unwrap().stat().pzxid, 50);
    assert!(t.remove_orphan_ephemerals().is_empty());
    assert!(t.remove_session(SessionId(0x51)));
    assert!(!t.remove_session(SessionId(0x51)));
    assert_eq!(t.remove_orphan_ephemerals(), ["/p/live"]);
    check(&t);
}

#[test]
fn container_and_ttl_owners() {
    let mut t = DataTree::new();
    apply_ok(&mut t, 1, 0x77, TxnBody::CreateContainer(create("/c", None, false, -1)));
    let ttl = CreateTxn { ttl: Some(3_600_000), ..create("/t", None, false, -1) };
    apply_ok(&mut t, 2, 0x77, TxnBody::CreateTtl(ttl));
    let c = t.get("/c").unwrap();
    assert_eq!(c.kind(), NodeKind::Container);
    assert_eq!(c.stat().ephemeral_owner, 0);
    assert_eq!(c.stored_stat().ephemeral_owner, CONTAINER_OWNER);
    let tt = t.get("/t").unwrap();
    assert_eq!(tt.kind(), NodeKind::Ttl);
    assert_eq!(tt.owner(), EphemeralOwner::Ttl(3_600_000));
    assert_eq!(tt.stat().ephemeral_owner, 0);
    assert_eq!(tt.stored_stat().ephemeral_owner, 0xff00_0000_0036_ee80_u64 as i64);
    // Neither is an ephemeral of the creating session.
    assert!(t.ephemerals(SessionId(0x77)).is_empty());
    // The digest uses the stored owner.
    assert_eq!(t.digest(), t.compute_digest());
    apply_ok(&mut t, 3, 0, TxnBody::DeleteContainer { path: "/c".into() });
    apply_ok(&mut t, 4, 0, TxnBody::DeleteContainer { path: "/t".into() });
    assert_eq!(t.node_count(), 4);
    check(&t);
}

#[test]
fn digest_skips_zookeeper_children_but_not_zookeeper() {
    let mut t = DataTree::new();
    let d0 = t.digest();
    // A child of /zookeeper/quota: it and its parent are both skipped.
    apply_ok(&mut t, 1, 1, create1("/zookeeper/quota/app", -1));
    assert_eq!(t.digest(), d0);
    // A child of /zookeeper: skipped, but /zookeeper's stat changed, so the digest moves.
    apply_ok(&mut t, 2, 1, create1("/zookeeper/x", -1));
    assert_ne!(t.digest(), d0);
    assert_eq!(t.digest(), t.compute_digest());
    let d1 = t.digest();
    apply_ok(&mut t, 3, 1, set_data("/zookeeper/x", Some(b"zzz"), 1));
    assert_eq!(t.digest(), d1);
    apply_ok(&mut t, 4, 1, set_data("/zookeeper", Some(b"zzz"), 1));
    assert_ne!(t.digest(), d1);
    check(&t);
}

#[test]
fn sorted_iteration_is_full_path_byte_order() {
    let mut t = DataTree::new();
    let mut z = 0;
    for p in
        ["/a", "/a/b", "/a-b", "/a.b", "/a/b/c", "/a-b/x", "/a0", "/b", "/a/a", "/a/b-c", "/a/b.c"]
    {
        z += 1;
        apply_ok(&mut t, z, 1, create1(p, -1));
    }
    let mut sorted = Vec::new();
    t.for_each_sorted(|p, _| sorted.push(p.to_owned()));
    let mut want = sorted.clone();
    want.sort();
    assert_eq!(sorted, want);
    assert_eq!(
        sorted,
        [
            "/",
            "/a",
            "/a-b",
            "/a-b/x",
            "/a.b",
            "/a/a",
            "/a/b",
            "/a/b-c",
            "/a/b.c",
            "/a/b/c",
            "/a0",
            "/b",
            "/zookeeper",
            "/zookeeper/config",
            "/zookeeper/quota"
        ]
    );
    // Pre-order: every parent before its children, each node once.
    let mut pre = Vec::new();
    t.for_each_preorder(|p, _| pre.push(p.to_owned()));
    assert_eq!(pre.len(), sorted.len());
    for (i, p) in pre.iter().enumerate() {
        if let Some(parent) = keeperkit_model::path::parent(p) {
            assert!(pre[..i].iter().any(|q| q == parent), "{p} before its parent");
        }
    }
    assert_eq!(t.children("/a").unwrap(), ["a", "b", "b-c", "b.c"]);
    assert_eq!(t.children("/a/b/c").unwrap(), Vec::<String>::new());
    assert_eq!(t.children("/nope"), None);
}

#[test]
fn create_session_updates_the_timeout() {
    let mut t = DataTree::new();
    apply_ok(&mut t, 1, 9, TxnBody::CreateSession { timeout_ms: 100 });
    apply_ok(&mut t, 2, 9, TxnBody::CreateSession { timeout_ms: 200 });
    assert_eq!(t.session_timeout(SessionId(9)), Some(200));
    t.add_session(SessionId(3), 7);
    let ids: Vec<i64> = t.sessions().iter().map(|s| s.id.0).collect();
    assert_eq!(ids, [3, 9]);
}
