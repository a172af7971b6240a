//! Inputs found by the `keeper_exec` fuzz target (fuzz/fuzz_targets/keeper_exec.rs),
//! kept as bytes so that they replay exactly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use keeperkit_model::acl::Perms;
use keeperkit_model::keeper::{KeeperLogEntry, KeeperRequest};
use keeperkit_model::{Acl, ErrorCode, Id, SessionId, Stat};
use keeperkit_tree::{DataTree, KeeperApplyError, KeeperExecOptions, KeeperOutcome};

fn fresh() -> DataTree {
    let mut t = DataTree::empty();
    let open = vec![Acl { perms: Perms::ALL, id: Id::anyone() }];
    t.insert_loaded_full("/", Some(b""), &open, &Stat::default(), 0, 0).unwrap();
    t.add_session(SessionId(1), 30_000);
    t.add_session(SessionId(2), 30_000);
    t.enable_keeper_digest();
    t
}

/// Session 2 creates the ephemeral `//ae`. Keeper's parent of `//ae` is `/` and it
/// keys the node by its full path, apart from `/ae`; the tree added `/`'s child `ae`
/// but hashed and indexed it as `//ae`, so its ZooKeeper digest, Keeper digest and
/// ephemeral index disagreed with its nodes. Now it is `Unrepresentable` and nothing
/// changes.
#[test]
fn create_of_double_slash_path_under_root_is_unrepresentable() {
    #[rustfmt::skip]
    let bytes: [u8; 88] = [
        0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x33, 0x00, 0x00,
        0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x04, 0x2f, 0x2f, 0x61, 0x65,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x1f, 0x00, 0x00,
        0x00, 0x05, 0x77, 0x6f, 0x72, 0x6c, 0x64, 0x00, 0x00, 0x00, 0x06, 0x61, 0x6e, 0x79,
        0x6f, 0x6e, 0x65, 0x00, 0x00, 0x00, 0x01, 0xe8, 0x03, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00,
    ];
    let e = KeeperLogEntry::decode(&bytes).unwrap();
    let KeeperRequest::Create(c) = &e.request else { panic!("{:?}", e.request) };
    assert_eq!((c.path.as_str(), c.is_ephemeral()), ("//ae", true));
    let opts = KeeperExecOptions { check_acl: false, ..KeeperExecOptions::default() };
    let mut t = fresh();
    let before = t.clone();
    let r = t.apply_keeper_entry(&e, 1, &opts);
    assert!(matches!(r, Err(KeeperApplyError::Unrepresentable(_))), "{r:?}");
    t.check_consistency(false).unwrap();
    assert_eq!(t.keeper_digest(), before.keeper_digest());
    assert_eq!(t.digest(), before.digest());
    assert_eq!(t.node_count(), 1);
    assert!(t.ephemerals(SessionId(2)).is_empty());

    // Keeper's earlier checks still answer first: an empty name, then the ACL.
    let with = |path: &str, flags: i32| {
        let mut e = e.clone();
        let KeeperRequest::Create(c) = &mut e.request else { unreachable!() };
        (c.path, c.flags) = (path.into(), flags);
        e
    };
    let r = t.apply_keeper_entry(&with("//", 0), 1, &opts).unwrap();
    assert_eq!(r, KeeperOutcome::Error(ErrorCode::BadArguments));
    // A sequential `//` names `//0000000000`: the same case.
    let r = t.apply_keeper_entry(&with("//", 2), 2, &opts);
    assert!(matches!(r, Err(KeeperApplyError::Unrepresentable(_))), "{r:?}");
    t.check_consistency(false).unwrap();
    assert_eq!(t.node_count(), 1);
}

/// Session 0 creates the sequential ephemeral `/e4`. Keeper writes ephemeralOwner 0
/// (a node that looks persistent) but lists it under session 0, to go on that
/// session's Close; the tree made a plain persistent node, outside the ephemeral
/// index. Now it is `Unrepresentable` and nothing changes.
#[test]
fn ephemeral_create_by_session_zero_is_unrepresentable() {
    #[rustfmt::skip]
    let bytes: [u8; 87] = [
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x32, 0x00, 0x00,
        0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x03, 0x2f, 0x65, 0x34, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x1f, 0x00, 0x00, 0x00,
        0x05, 0x77, 0x6f, 0x72, 0x6c, 0x64, 0x00, 0x00, 0x00, 0x06, 0x61, 0x6e, 0x79, 0x6f,
        0x6e, 0x65, 0x00, 0x00, 0x00, 0x03, 0xe8, 0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00,
    ];
    let e = KeeperLogEntry::decode(&bytes).unwrap();
    assert_eq!(e.session_id, 0);
    let mut t = fresh();
    let before = t.clone();
    let r = t.apply_keeper_entry(&e, 1, &KeeperExecOptions::default());
    assert!(matches!(r, Err(KeeperApplyError::Unrepresentable(_))), "{r:?}");
    t.check_consistency(false).unwrap();
    assert_eq!(t.keeper_digest(), before.keeper_digest());
    assert_eq!(t.node_count(), 1);
    assert_eq!(t.sessions(), before.sessions());
}
