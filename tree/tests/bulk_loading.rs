//! [`BulkLoader`] against loading node by node into the tree: for snapshot-like
//! sequences (pre-order, children in scrambled order, sets larger than a chunk, names
//! that share long prefixes or prefix one another) and for damaged ones (repeated
//! names, nodes away from the previous node's ancestors, missing parents, the root
//! again), every call returns the same result and the finished trees are identical
//! and consistent. Guards against the gathered children of a node being lost, left
//! unsorted, or letting a duplicate name through.
#![allow(clippy::unwrap_used, clippy::cast_possible_truncation)]

mod common;

use common::{anyone, check, full_dump, Rng};
use keeperkit_model::{Acl, SessionId, Stat, StatPersisted};
use keeperkit_tree::{BulkLoader, DataTree};

/// One loader call.
#[derive(Clone, Debug)]
struct Rec {
    path: String,
    data: Option<Vec<u8>>,
    acl: u8,
    cversion: i32,
}

/// A name from a small alphabet of shapes: short, long with a shared prefix, and
/// prefixes of one another.
fn name(rng: &mut Rng) -> String {
    match rng.below(5) {
        0 => format!("n{}", rng.below(3000)),
        1 => format!("sharedprefix-{:04}", rng.below(3000)),
        2 => "abcdefgh".chars().take(1 + rng.below(8)).collect(),
        3 => format!("abcdefgh{}", rng.below(40)),
        _ => format!("{:08}", rng.below(100_000)),
    }
}

/// A random tree of about `nodes` nodes listed in pre-order (each node followed by its
/// subtree), each node's children in scrambled order.
fn snapshot(rng: &mut Rng, nodes: usize) -> Vec<Rec> {
    let mut out = vec![Rec { path: String::new(), data: Some(vec![]), acl: 0, cversion: 3 }];
    subtree(rng, "", 0, nodes, &mut out);
    out
}

fn subtree(rng: &mut Rng, parent: &str, depth: usize, nodes: usize, out: &mut Vec<Rec>) {
    let fanout = match (depth, rng.below(4)) {
        (0, _) => 3 + rng.below(4),
        (_, 0) => 600 + rng.below(1200),
        (_, 1) => rng.below(30),
        _ => rng.below(4),
    };
    let mut names: Vec<String> = (0..fanout).map(|_| name(rng)).collect();
    names.sort();
    names.dedup();
    // Scrambled, as ZooKeeper's hash order is.
    for i in (1..names.len()).rev() {
        names.swap(i, rng.below(i + 1));
    }
    for n in names {
        if out.len() >= nodes {
            return;
        }
        let path = format!("{parent}/{n}");
        out.push(Rec {
            path: path.clone(),
            data: (rng.below(8) != 0).then(|| path.as_bytes().to_vec()),
            acl: rng.below(3) as u8,
            cversion: rng.below(50) as i32,
        });
        if depth < 4 && rng.below(5) == 0 {
            subtree(rng, &path, depth + 1, nodes, out);
        }
    }
}

/// Damages a sequence: repeats, moves, orphans and root re-inserts.
fn damage(rng: &mut Rng, recs: &mut Vec<Rec>) {
    for _ in 0..1 + rng.below(6) {
        let n = recs.len();
        let i = 1 + rng.below(n - 1);
        match rng.below(4) {
            // The same path again, later (a duplicate name).
            0 => {
                let r = recs[i].clone();
                let at = i + 1 + rng.below(n - i);
                recs.insert(at.min(recs.len()), r);
            }
            // A node moved later: its parent is off the chain when it comes.
            1 => {
                let r = recs.remove(i);
                let at = i + rng.below(n - i);
                recs.insert(at.min(recs.len()), r);
            }
            // A node whose parent does not exist.
            2 => {
                let p = format!("{}/missing/x", recs[i].path);
                recs.insert(i, Rec { path: p, ..recs[i].clone() });
            }
            // The root again.
            _ => recs.insert(i, Rec { path: "/".into(), ..recs[0].clone() }),
        }
    }
}

fn acl(i: u8) -> Vec<Acl> {
    match i {
        0 => Acl::open_unsafe(),
        1 => anyone(1),
        _ => anyone(31),
    }
}

fn stat(r: &Rec) -> StatPersisted {
    StatPersisted { czxid: 5, mzxid: 6, cversion: r.cversion, ..StatPersisted::default() }
}

fn client_stat(r: &Rec) -> Stat {
    Stat { czxid: 5, mzxid: 6, cversion: r.cversion, ..Stat::default() }
}

/// Loads `recs` both ways (`full`: the client-stat loader), comparing every result
/// and the trees.
fn compare(recs: &[Rec], full: bool) -> usize {
    let mut one = DataTree::empty();
    let mut bulk = BulkLoader::new(DataTree::empty());
    let mut errors = 0;
    for r in recs {
        let a = acl(r.acl);
        let (x, y) = if full {
            let s = client_stat(r);
            (
                one.insert_loaded_full(&r.path, r.data.as_deref(), &a, &s, r.cversion, 0),
                bulk.insert_loaded_full(&r.path, r.data.as_deref(), &a, &s, r.cversion, 0),
            )
        } else {
            (
                one.insert_loaded(&r.path, r.data.as_deref(), &a, stat(r)),
                bulk.insert_loaded(&r.path, r.data.as_deref(), &a, stat(r)),
            )
        };
        assert_eq!(format!("{x:?}"), format!("{y:?}"), "loading {}", r.path);
        errors += usize::from(x.is_err());
        assert_eq!(one.node_count(), bulk.node_count());
    }
    one.add_session(SessionId(7), 3000);
    bulk.add_session(SessionId(7), 3000);
    let bulk = bulk.finish();
    assert_eq!(full_dump(&one), full_dump(&bulk));
    if one.get("/").is_some() {
        bulk.check_consistency(!full).unwrap();
        if !full {
            check(&bulk);
        }
    }
    errors
}

#[test]
fn snapshot_order_loads_identically() {
    for seed in 0..24 {
        let mut rng = Rng::new(seed);
        let n = 2000 + rng.below(4000);
        let recs = snapshot(&mut rng, n);
        assert_eq!(compare(&recs, false), 0, "seed {seed}");
        assert_eq!(compare(&recs, true), 0, "seed {seed}");
    }
}

#[test]
fn damaged_snapshots_fail_and_continue_identically() {
    let mut errors = 0;
    for seed in 100..160 {
        let mut rng = Rng::new(seed);
        let n = 500 + rng.below(3000);
        let mut recs = snapshot(&mut rng, n);
        damage(&mut rng, &mut recs);
        errors += compare(&recs, false);
        errors += compare(&recs, rng.below(2) == 0);
    }
    assert!(errors > 0, "no damage was refused");
}

#[test]
fn a_repeated_name_is_refused_at_its_node() {
    let open = Acl::open_unsafe();
    let s = StatPersisted::default();
    let mut b = BulkLoader::new(DataTree::empty());
    b.insert_loaded("", Some(b""), &open, s).unwrap();
    for i in 0..1500 {
        b.insert_loaded(&format!("/a{}", (i * 7919) % 1500), None, &open, s).unwrap();
    }
    let err = b.insert_loaded("/a77", None, &open, s).unwrap_err();
    assert_eq!(err.to_string(), "/a77 already exists");
    // After the check, the set is sorted and loading goes on.
    b.insert_loaded("/a1500", None, &open, s).unwrap();
    b.insert_loaded("/a1500/x", None, &open, s).unwrap();
    let t = b.finish();
    let kids = t.children("/").unwrap();
    assert_eq!(kids.len(), 1501);
    assert!(kids.windows(2).all(|w| w[0] < w[1]));
    assert_eq!(t.get("/").unwrap().stat().num_children, 1501);
    check(&t);
}
