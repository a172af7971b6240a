//! `keeperkit_raft::offline::force_new_cluster` on directories written as a replica
//! writes them: a membership entry, txns in two terms, a commit hint behind the log.
//!
//! Guards against: entries past the commit hint dropped or not reported as uncertain;
//! the new membership not in a new term after the last one; the other members dropped
//! instead of kept as learners; the state (tree) not holding every entry once openraft
//! opens the store; writing into a locked directory or one that is not a replica's.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use keeperkit_model::txn::CreateTxn;
use keeperkit_model::{Acl, OpCode, SessionId, Txn, TxnBody, TxnHeader, Zxid};
use keeperkit_raft::codec::{self, RaftMeta};
use keeperkit_raft::offline::{force_new_cluster, ForceError};
use keeperkit_raft::{engine_options, Entry};
use keeperkit_storage::engine::NativeEngine;
use keeperkit_storage::traits::{EntryRef, LogPosition, LogStore, StateMachine};
use keeperkit_vfs::StdFs;
use openraft::{BasicNode, EntryPayload, Membership, Vote};

fn txn(zxid: i64, path: &str) -> Txn {
    Txn {
        header: TxnHeader {
            client_id: SessionId(0),
            cxid: 0,
            zxid: Zxid(zxid),
            time: zxid,
            op: OpCode::CREATE,
        },
        body: TxnBody::Create(CreateTxn {
            path: path.into(),
            data: Some(b"x".to_vec()),
            acl: Acl::open_unsafe(),
            ephemeral: false,
            parent_cversion: -1,
            ttl: None,
            v0: false,
        }),
        digest: None,
    }
}

/// A replica of node 2 in a 3-node cluster (plus learner 4): WAL 1 the membership
/// (term 1), 2..=5 txns of term 1, 6..=8 of term 2; vote term 2 for node 1; commit
/// hint at 5.
fn replica(dir: &Path) {
    let e = NativeEngine::open(Arc::new(StdFs), engine_options(dir)).unwrap();
    let nodes: BTreeMap<u64, BasicNode> =
        (1..=4).map(|i| (i, BasicNode::new(format!("127.0.0.1:{}", 24600 + i)))).collect();
    let m = Membership::new(vec![[1, 2, 3].into()], nodes);
    let first = Entry { log_id: codec::log_id(1, 0), payload: EntryPayload::Membership(m) };
    let mut payloads = vec![(1u64, codec::encode_payload(&first))];
    for i in 2..=8u64 {
        let t = Entry {
            log_id: codec::log_id(if i <= 5 { 1 } else { 2 }, i - 1),
            payload: EntryPayload::Normal(vec![txn(i64::try_from(i).unwrap(), &format!("/n{i}"))]),
        };
        payloads.push((t.log_id.leader_id.term, codec::encode_payload(&t)));
    }
    for (i, (term, p)) in payloads.iter().enumerate() {
        let index = u64::try_from(i).unwrap() + 1;
        e.append(&[EntryRef { index, term: *term, payload: p }]).unwrap();
    }
    e.sync().unwrap();
    let mut v = Vote::new(2, 1);
    v.commit();
    e.set_server_state(&RaftMeta { vote: Some(v), purged: None }.encode()).unwrap();
    e.set_commit_hint(LogPosition { index: 5, term: 1 }).unwrap();
    drop(e);
    std::fs::write(dir.join("cluster-identity"), "cluster=old\nnode=2\n").unwrap();
    std::fs::write(dir.join("rejoining"), "").unwrap();
}

#[test]
fn force_new_cluster_keeps_every_entry_and_reports_the_uncertain_ones() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("kk2");
    replica(&dir);
    let r = force_new_cluster(Arc::new(StdFs), &dir).unwrap();
    assert_eq!(r.node, 2);
    assert_eq!((r.last_index, r.last_term), (8, 2));
    assert_eq!(r.commit_index, 5);
    assert_eq!((r.uncertain_first, r.uncertain_last, r.uncertain_count), (Some(6), Some(8), 3));
    assert_eq!(r.uncertain_terms, vec![[6, 2]]);
    assert_eq!(r.old_voters, vec![1, 2, 3]);
    assert_eq!(r.old_learners, vec![4]);
    assert_eq!((r.membership_index, r.membership_term), (9, 3));
    assert_eq!(r.voters, vec![2]);
    assert_eq!(r.learners, vec![1, 3, 4]);
    assert!(r.was_rebuilding);
    assert!(!dir.join("rejoining").exists());
    assert_ne!(r.cluster, "old");
    let ident = std::fs::read_to_string(dir.join("cluster-identity")).unwrap();
    assert_eq!(ident, format!("cluster={}\nnode=2\n", r.cluster));

    // What openraft reads back: the vote in the new term, the new membership entry
    // last, the hint on it; replaying up to it gives every entry's znode.
    let e = NativeEngine::open(Arc::new(StdFs), engine_options(&dir)).unwrap();
    let meta = RaftMeta::decode(&e.server_state()).unwrap();
    assert_eq!(meta.vote, Some(Vote::new(3, 2)));
    assert_eq!(e.commit_hint(), Some(LogPosition { index: 9, term: 3 }));
    let last = e.read_range(9..10).unwrap();
    let entry = codec::decode_entry(9, last[0].term, &last[0].payload).unwrap();
    match entry.payload {
        EntryPayload::Membership(m) => {
            assert_eq!(m.voter_ids().collect::<Vec<_>>(), vec![2]);
            assert_eq!(m.learner_ids().collect::<Vec<_>>(), vec![1, 3, 4]);
            assert_eq!(m.get_node(&2).unwrap().addr, "127.0.0.1:24602");
        }
        p => panic!("entry 9 is {p:?}"),
    }
    for i in 1..=8u64 {
        let x = e.read_range(i..i + 1).unwrap();
        e.apply(EntryRef { index: i, term: x[0].term, payload: &x[0].payload }).unwrap();
    }
    for i in 2..=8u64 {
        assert!(e.exists(&format!("/n{i}")).is_some(), "/n{i}");
    }
    drop(e);

    // Again (a second lost quorum, or a crash before the identity was written): yet
    // another term after the last entry.
    let again = force_new_cluster(Arc::new(StdFs), &dir).unwrap();
    assert_eq!((again.membership_index, again.membership_term), (10, 4));
    assert_eq!(again.commit_index, 9);
    assert_eq!(again.uncertain_count, 0);
    assert_eq!(again.old_voters, vec![2]);
}

#[test]
fn refused_when_locked_or_not_a_replica() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("kk2");
    replica(&dir);
    let lock = keeperkit_storage::replicas::lock_data_dir(&dir).unwrap();
    let e = force_new_cluster(Arc::new(StdFs), &dir).unwrap_err();
    assert!(e.to_string().contains("in use"), "{e}");
    drop(lock);
    std::fs::remove_file(dir.join("cluster-identity")).unwrap();
    let e = force_new_cluster(Arc::new(StdFs), &dir).unwrap_err();
    assert!(matches!(e, ForceError::Refused(_)), "{e}");
    assert!(e.to_string().contains("cluster-identity"), "{e}");
    let plain = t.path().join("plain");
    std::fs::create_dir(&plain).unwrap();
    std::fs::write(plain.join("x"), "y").unwrap();
    assert!(force_new_cluster(Arc::new(StdFs), &plain).is_err());
    assert!(force_new_cluster(Arc::new(StdFs), &t.path().join("missing")).is_err());
    // Nothing was written into the plain directory.
    assert_eq!(std::fs::read_dir(&plain).unwrap().count(), 1);
}
