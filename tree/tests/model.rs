//! Random txn sequences applied to the tree and to a naive `BTreeMap` reference model
//! of ZooKeeper's replay rules, compared in full after every step: every field of the
//! client stat, stored stat and seq, data, ACL, children, sessions, ephemerals, the
//! txn results, and the digest three ways (running, recomputed, reference). Guards
//! against any divergence from ZooKeeper's semantics or any internal bookkeeping
//! drift (digest, ACL refcounts, ephemeral index, free list, children chunks) that a
//! hand-written case would miss.
#![allow(clippy::unwrap_used, clippy::cast_possible_truncation)]

mod common;

use common::reference::{random_txn, Reference, SESSIONS};
use common::{check, full_dump, Rng};
use keeperkit_model::SessionId;
use keeperkit_tree::DataTree;

fn run(seed: u64, steps: usize) {
    let mut rng = Rng::new(seed);
    let mut tree = DataTree::new();
    let mut model = Reference::new();
    let mut zxid = 0i64;
    for step in 0..steps {
        // Mostly increasing zxids, sometimes a repeat or an older one (replay over a
        // fuzzy snapshot), which must not lower lastProcessedZxid.
        zxid += match rng.below(20) {
            0 => 0,
            1 => -3,
            _ => 1,
        };
        match rng.below(200) {
            0 => {
                let got = tree.remove_orphan_ephemerals();
                assert_eq!(got, model.remove_orphans(), "seed {seed} step {step}");
            }
            1 => {
                let id = *rng.pick(SESSIONS);
                tree.add_session(SessionId(id), 5000);
                model.sessions.insert(id, 5000);
            }
            2 => {
                let id = *rng.pick(SESSIONS);
                assert_eq!(
                    tree.remove_session(SessionId(id)),
                    model.sessions.remove(&id).is_some()
                );
            }
            _ => {
                let t = random_txn(&mut rng, &model, zxid);
                let got = tree.apply(&t);
                let want = model.apply(&t);
                assert_eq!(got, want, "seed {seed} step {step}: result of {t:?}");
            }
        }
        let (got, want) = (full_dump(&tree), model.dump());
        if got != want {
            for (g, w) in got.nodes.iter().zip(&want.nodes) {
                assert_eq!(g, w, "seed {seed} step {step}: first differing node");
            }
            assert_eq!(got, want, "seed {seed} step {step}");
        }
        assert_eq!(tree.digest(), tree.compute_digest(), "seed {seed} step {step}");
        if step % 16 == 0 {
            check(&tree);
        }
    }
    check(&tree);
}

#[test]
fn random_txns_match_the_reference_model() {
    for seed in 1..=12 {
        run(seed, 1500);
    }
}
