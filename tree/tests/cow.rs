//! Copy-on-write views: a clone taken at any point must stay exactly as it was (every
//! node, stat, ACL, session, ephemeral, digest) while the original applies thousands
//! more txns, and the original must still follow ZooKeeper's rules. Guards against
//! shared structure being mutated in place (a node chunk, a children chunk, the chunk
//! index, the ACL table, the session or ephemeral index) and against views being torn.
#![allow(clippy::unwrap_used, clippy::cast_possible_truncation)]

mod common;

use common::reference::{random_txn, Reference};
use common::{check, create, full_dump, txn, Rng};
use keeperkit_model::TxnBody;
use keeperkit_tree::{DataTree, TxnResult};

#[test]
fn views_stay_unchanged_while_the_original_moves_on() {
    let mut rng = Rng::new(77);
    let mut tree = DataTree::new();
    let mut model = Reference::new();
    let mut zxid = 0;
    for _ in 0..1500 {
        zxid += 1;
        let t = random_txn(&mut rng, &model, zxid);
        assert_eq!(tree.apply(&t), model.apply(&t));
    }
    // Several views at several points; each must keep its own state.
    let mut views = Vec::new();
    for round in 0..4 {
        let view = tree.clone();
        let before = full_dump(&view);
        assert_eq!(before, model.dump());
        views.push((view, before));
        for _ in 0..2500 {
            zxid += 1;
            let t = random_txn(&mut rng, &model, zxid);
            assert_eq!(tree.apply(&t), model.apply(&t), "round {round}");
        }
        assert_eq!(full_dump(&tree), model.dump(), "round {round}");
        check(&tree);
    }
    for (i, (view, before)) in views.iter().enumerate() {
        assert_eq!(&full_dump(view), before, "view {i} changed");
        check(view);
    }
}

#[test]
fn a_view_of_a_large_directory_survives_heavy_changes() {
    // 3000 children: several children chunks, several node store chunks.
    let mut tree = DataTree::new();
    let mut zxid = 0;
    tree.apply(&txn(1, 1, TxnBody::Create(create("/big", Some(b"d"), false, -1))));
    for i in 0..3000 {
        zxid = 2 + i;
        let path = format!("/big/n{:05}", (i * 7919) % 3000);
        let body = TxnBody::Create(create(&path, Some(path.as_bytes()), i % 3 == 0, -1));
        assert_eq!(tree.apply(&txn(zxid, 0x10 + i % 5, body)), TxnResult::Ok);
    }
    let view = tree.clone();
    let before = full_dump(&view);
    // Delete every other child, rewrite the rest, close sessions, add new nodes.
    for i in (0..3000).step_by(2) {
        zxid += 1;
        let t = txn(zxid, 0, TxnBody::Delete { path: format!("/big/n{i:05}") });
        assert_eq!(tree.apply(&t), TxnResult::Ok);
    }
    for i in (1..3000).step_by(2) {
        zxid += 1;
        let body = TxnBody::SetData(keeperkit_model::txn::SetDataTxn {
            path: format!("/big/n{i:05}"),
            data: None,
            version: 7,
        });
        assert_eq!(tree.apply(&txn(zxid, 0, body)), TxnResult::Ok);
    }
    for s in 0..5 {
        zxid += 1;
        tree.apply(&txn(zxid, 0x10 + s, TxnBody::CloseSession { paths: None }));
    }
    for i in 0..500 {
        zxid += 1;
        let body = TxnBody::Create(create(&format!("/big/m{i}"), None, false, -1));
        assert_eq!(tree.apply(&txn(zxid, 0, body)), TxnResult::Ok);
    }
    check(&tree);
    assert_eq!(full_dump(&view), before);
    check(&view);
    assert_eq!(view.children("/big").unwrap().len(), 3000);
    // 1500 odd children left, a third of them ephemeral (closed), 500 new.
    assert_eq!(tree.children("/big").unwrap().len(), 1500 - 500 + 500);
    assert!(tree.sessions().is_empty());
}
