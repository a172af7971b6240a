//! Sizes that break naive structures: hundreds of thousands of children under one
//! parent (sequential and random names, inserts and deletes, a view held meanwhile)
//! and a very deep chain (every walk must be iterative). Guards against quadratic
//! children sets, whole-set copies after a clone, and stack overflows.
#![allow(clippy::unwrap_used, clippy::cast_possible_truncation)]

mod common;

use std::time::Instant;

use common::{check, txn, Rng};
use keeperkit_model::{Acl, StatPersisted, TxnBody};
use keeperkit_tree::{DataTree, TxnResult};

fn create(path: String, pcv: i32) -> TxnBody {
    TxnBody::Create2(common::create(&path, None, false, pcv))
}

#[test]
fn two_hundred_thousand_children_under_one_parent() {
    let n = 200_000;
    let start = Instant::now();
    let mut t = DataTree::new();
    t.apply(&txn(1, 1, create("/q".into(), -1)));
    // Sequential nodes, as a queue makes them.
    for i in 0..n {
        let zxid = 2 + i64::from(i);
        let r = t.apply(&txn(zxid, 1, create(format!("/q/item-{i:010}"), i + 1)));
        assert_eq!(r, TxnResult::Ok);
    }
    let inserted = start.elapsed();
    let q = t.get("/q").unwrap();
    assert_eq!(q.num_children(), 200_000);
    assert_eq!((q.seq(), q.stat().cversion), (n, n));
    // A view, then consume the first half of the queue.
    let view = t.clone();
    let mut zxid = 2 + i64::from(n);
    for i in 0..n / 2 {
        zxid += 1;
        let r = t.apply(&txn(zxid, 1, TxnBody::Delete { path: format!("/q/item-{i:010}") }));
        assert_eq!(r, TxnResult::Ok);
    }
    let elapsed = start.elapsed();
    assert_eq!(t.get("/q").unwrap().num_children(), 100_000);
    assert_eq!(view.get("/q").unwrap().num_children(), 200_000);
    assert!(view.get("/q/item-0000000000").is_some());
    assert!(t.get("/q/item-0000000000").is_none());
    assert!(t.get("/q/item-0000199999").is_some());
    println!("200k sequential creates: {inserted:?}; + 100k deletes: {elapsed:?}");
    assert!(elapsed.as_secs_f64() < 2.0, "too slow: {elapsed:?}");
    assert_eq!(t.digest(), t.compute_digest());
}

#[test]
fn random_names_in_a_large_directory() {
    let n = 60_000usize;
    let mut rng = Rng::new(5);
    let mut t = DataTree::new();
    t.apply(&txn(1, 1, create("/d".into(), -1)));
    let names: Vec<String> = (0..n).map(|_| format!("k{:016x}", rng.next())).collect();
    let start = Instant::now();
    for (i, name) in names.iter().enumerate() {
        t.apply(&txn(2 + i as i64, 1, create(format!("/d/{name}"), -1)));
    }
    for (i, name) in names.iter().enumerate().step_by(3) {
        t.apply(&txn(100_000 + i as i64, 1, TxnBody::Delete { path: format!("/d/{name}") }));
    }
    println!("60k random creates + 20k deletes: {:?}", start.elapsed());
    let mut want: Vec<&String> =
        names.iter().enumerate().filter(|(i, _)| i % 3 != 0).map(|(_, s)| s).collect();
    want.sort();
    let got = t.children("/d").unwrap();
    assert_eq!(got.len(), want.len());
    assert!(got.iter().zip(want).all(|(g, w)| g == w));
    check(&t);
}

#[test]
fn a_very_deep_chain_needs_no_recursion() {
    let depth = 20_000;
    let open = Acl::open_unsafe();
    let mut t = DataTree::new();
    let mut path = String::new();
    for _ in 0..depth {
        path.push_str("/d");
        t.insert_loaded(&path, Some(b"x"), &open, StatPersisted::default()).unwrap();
    }
    assert_eq!(t.node_count(), 4 + depth);
    let mut count = 0;
    t.for_each_sorted(|_, _| count += 1);
    assert_eq!(count, 4 + depth);
    t.for_each_preorder(|_, _| count += 1);
    assert_eq!(t.digest(), t.compute_digest());
    check(&t);
    // Deleting the top removes the whole chain (fuzzy-replay subtree delete).
    assert_eq!(t.apply(&txn(1, 1, TxnBody::Delete { path: "/d".into() })), TxnResult::Ok);
    assert_eq!(t.node_count(), 4);
    check(&t);
}
