//! ClickHouse Keeper execution on the tree: a sequence of Keeper log entries run with
//! `DataTree::apply_keeper_entry` on a small tree with the running Keeper digest on.
//!
//! Input: byte 0 = options (bit 0 ACL checks off, bit 1 digest V5 instead of V4, bit 2
//! a `super_digest` (`super:pw`), bit 3 do not register unknown sessions, bit 4
//! refuse writes inside `/keeper`, bit 5 start from `DataTree::new()` (with
//! `/zookeeper`) instead of Keeper's fresh root); byte 1 = entry rewriting (bit 0 keep
//! the decoded session ids, else map each onto sessions 1–4 so that ephemerals, Close,
//! Auth and ACLs of one session meet; bit 1 keep the decoded zxids, else the zxid
//! comes from the log index). Then up to 64 entries, each a u16 LE length and that
//! many bytes decoded with `KeeperLogEntry::decode` (undecodable ones skipped).
//!
//! Checks: no panic; an `Err` changes nothing at all; a failed outcome (`Error`,
//! `MultiFailed`) and a read change nothing but the last processed zxid and the
//! session's registration (timeout 0); after every entry `check_consistency` passes
//! and the running Keeper digest equals `compute_keeper_digest`; a successful
//! sequential create makes a node that did not exist (and sequential creates of one
//! multi without removes get distinct names); Close leaves the session without
//! ephemerals; Auth adds the id.
#![no_main]

use keeperkit_model::keeper::{digest_version, KeeperLogEntry, KeeperRequest};
use keeperkit_model::{Acl, Id, NodeKind, Perms, SessionId, Stat, StatPersisted, Zxid};
use keeperkit_tree::{
    keeper_digest_id, DataTree, KeeperApplyError, KeeperExecOptions, KeeperOutcome, KeeperResponse,
    SessionInfo,
};
use libfuzzer_sys::fuzz_target;

const ENTRIES_MAX: usize = 64;
const INPUT_MAX: usize = 1 << 16;

#[derive(Debug, PartialEq, Eq)]
struct Node {
    path: String,
    data: Option<Vec<u8>>,
    stat: Stat,
    stored: StatPersisted,
    seq: i32,
    acl: Vec<Acl>,
    kind: NodeKind,
}

/// Everything observable, split into what a failed request may change (zxid,
/// sessions) and what it may not (the rest).
#[derive(Debug, PartialEq, Eq)]
struct Dump {
    nodes: Vec<Node>,
    digest: u64,
    keeper_digest: Option<u64>,
    counter: i64,
    auths: Vec<(i64, Vec<Id>)>,
    ephemerals: Vec<(i64, Vec<String>)>,
}

fn dump(t: &DataTree, ids: &[i64]) -> Dump {
    let mut nodes = Vec::new();
    t.for_each_sorted(|p, n| {
        nodes.push(Node {
            path: p.to_owned(),
            data: n.data().map(<[u8]>::to_vec),
            stat: n.stat(),
            stored: n.stored_stat(),
            seq: n.seq(),
            acl: n.acl().clone(),
            kind: n.kind(),
        })
    });
    let mut sids: Vec<i64> =
        t.sessions().iter().map(|s| s.id.0).chain(ids.iter().copied()).collect();
    sids.sort_unstable();
    sids.dedup();
    Dump {
        nodes,
        digest: t.digest(),
        keeper_digest: t.keeper_digest(),
        counter: t.session_id_counter(),
        auths: sids.iter().map(|&s| (s, t.session_auths(SessionId(s)))).collect(),
        ephemerals: sids.iter().map(|&s| (s, t.ephemerals(SessionId(s)))).collect(),
    }
}

fn sessions(t: &DataTree) -> Vec<SessionInfo> {
    t.sessions()
}

/// Keeper's fresh state: `/` with zeroed stats, sessions 1 and 2, counter 3.
fn start(opts: u8) -> DataTree {
    let mut t = if opts & 32 != 0 {
        DataTree::new()
    } else {
        let mut t = DataTree::empty();
        let open = vec![Acl { perms: Perms::ALL, id: Id::anyone() }];
        t.insert_loaded_full("/", Some(b""), &open, &Stat::default(), 0, 0)
            .expect("a root goes into an empty tree");
        t
    };
    t.add_session(SessionId(1), 30_000);
    t.add_session(SessionId(2), 30_000);
    t.set_session_id_counter(3);
    let v = if opts & 2 != 0 { digest_version::V5 } else { digest_version::V4 };
    t.enable_keeper_digest_version(v);
    t
}

fn is_noop(req: &KeeperRequest) -> bool {
    req.is_read()
        || matches!(
            req,
            KeeperRequest::Check { .. }
                | KeeperRequest::CheckNotExists { .. }
                | KeeperRequest::Sync { .. }
                | KeeperRequest::Heartbeat
                | KeeperRequest::MultiRead(_)
                | KeeperRequest::Exists { .. }
                | KeeperRequest::Get { .. }
                | KeeperRequest::GetAcl { .. }
                | KeeperRequest::List { .. }
                | KeeperRequest::SimpleList { .. }
                | KeeperRequest::FilteredList { .. }
        )
}

fn entries(mut data: &[u8]) -> Vec<KeeperLogEntry> {
    let mut out = Vec::new();
    while out.len() < ENTRIES_MAX && data.len() >= 2 {
        let len = usize::from(u16::from_le_bytes([data[0], data[1]]));
        let end = (2 + len).min(data.len());
        if let Ok(e) = KeeperLogEntry::decode(&data[2..end]) {
            out.push(e);
        }
        data = &data[end..];
    }
    out
}

fn check_tree(t: &DataTree) {
    if let Err(e) = t.check_consistency(false) {
        panic!("inconsistent tree: {e}");
    }
    let v = t.keeper_digest_version().expect("the Keeper digest stays on");
    assert_eq!(t.keeper_digest(), Some(t.compute_keeper_digest(v)), "running Keeper digest");
    let _ = t.keeper_digest_with_system_node();
}

fuzz_target!(|data: &[u8]| {
    if data.len() > INPUT_MAX {
        return;
    }
    let [o, rewrite, rest @ ..] = data else { return };
    let (o, rewrite) = (*o, *rewrite);
    let opts = KeeperExecOptions {
        check_acl: o & 1 == 0,
        super_digest: (o & 4 != 0).then(|| keeper_digest_id(b"super:pw").expect("UTF-8")),
        register_unknown_sessions: o & 8 == 0,
        refuse_system_path_writes: o & 16 != 0,
        ..KeeperExecOptions::default()
    };
    let mut tree = start(o);
    check_tree(&tree);
    let mut ids: Vec<i64> = vec![1, 2, 3, 4];
    for (i, mut e) in entries(rest).into_iter().enumerate() {
        if rewrite & 1 == 0 {
            e.session_id = e.session_id.wrapping_sub(1).rem_euclid(4) + 1;
        } else if ids.len() < 16 && !ids.contains(&e.session_id) {
            ids.push(e.session_id);
        }
        if rewrite & 2 == 0 {
            if let Some(zd) = e.trailer.zxid_digest.as_mut() {
                zd.zxid = 0;
            }
        }
        let log_index = i as u64 + 1;
        let before = tree.clone();
        let result = tree.apply_keeper_entry(&e, log_index, &opts);
        let _ = tree.check_entry_digest(&e);
        check_tree(&tree);
        let req = &e.request;
        let outcome = match result {
            Err(err) => {
                assert_eq!(dump(&tree, &ids), dump(&before, &ids), "{err} changed the tree");
                assert_eq!(sessions(&tree), sessions(&before), "{err} changed the sessions");
                assert_eq!(tree.last_processed_zxid(), before.last_processed_zxid());
                if let KeeperApplyError::ZxidNotIncreasing { .. } = err {
                    assert!(rewrite & 2 != 0, "log indexes always increase");
                }
                continue;
            }
            Ok(o) => o,
        };
        let failed = matches!(outcome, KeeperOutcome::Error(_) | KeeperOutcome::MultiFailed { .. });
        let session_request =
            matches!(req, KeeperRequest::SessionId { .. } | KeeperRequest::Reconfig { .. });
        if failed || is_noop(req) || session_request {
            if !matches!(req, KeeperRequest::SessionId { .. }) {
                assert_eq!(dump(&tree, &ids), dump(&before, &ids), "{outcome:?} changed the tree");
            }
            if !session_request {
                // Only the session's registration (timeout 0) may be new.
                let mut expected = sessions(&before);
                if opts.register_unknown_sessions
                    && before.session_timeout(SessionId(e.session_id)).is_none()
                {
                    expected.push(SessionInfo {
                        id: SessionId(e.session_id),
                        timeout_ms: 0,
                        ephemerals: 0,
                    });
                    expected.sort_by_key(|s| s.id);
                }
                assert_eq!(sessions(&tree), expected, "{outcome:?} changed other sessions");
            }
        }
        if session_request {
            assert_eq!(tree.last_processed_zxid(), before.last_processed_zxid());
        } else {
            let z = e.zxid().filter(|&z| z != 0).unwrap_or(log_index as i64);
            assert_eq!(tree.last_processed_zxid(), Zxid(z));
        }
        match (req, &outcome) {
            (KeeperRequest::Create(c), KeeperOutcome::Ok(KeeperResponse::Created { path })) => {
                assert!(before.get(path).is_none(), "{path} existed before its create");
                assert!(tree.get(path).is_some(), "{path} created but missing");
                if c.is_sequential() {
                    assert_eq!(path.len(), c.path.len() + 10);
                    assert!(path.starts_with(&c.path));
                }
                if c.is_ephemeral() {
                    assert!(tree.ephemerals(SessionId(e.session_id)).contains(path));
                }
            }
            (KeeperRequest::Multi(subs), KeeperOutcome::Ok(KeeperResponse::Multi(rs))) => {
                assert_eq!(subs.len(), rs.len());
                let removes = subs.iter().any(|s| {
                    matches!(
                        s,
                        KeeperRequest::Remove { .. } | KeeperRequest::RemoveRecursive { .. }
                    )
                });
                let mut seq_names = Vec::new();
                for (s, r) in subs.iter().zip(rs) {
                    assert!(r.is_ok(), "a successful multi with a failed sub: {r:?}");
                    if let (
                        KeeperRequest::Create(c),
                        KeeperOutcome::Ok(KeeperResponse::Created { path }),
                    ) = (s, r)
                    {
                        if c.is_sequential() {
                            assert!(path.starts_with(&c.path) && path.len() == c.path.len() + 10);
                            seq_names.push(path.clone());
                        }
                    }
                }
                if !removes {
                    let n = seq_names.len();
                    seq_names.sort_unstable();
                    seq_names.dedup();
                    assert_eq!(seq_names.len(), n, "sequential names collided in one multi");
                }
            }
            (KeeperRequest::Multi(subs), KeeperOutcome::MultiFailed { results, .. }) => {
                assert_eq!(subs.len(), results.len());
            }
            (KeeperRequest::Close, KeeperOutcome::Ok(_)) => {
                assert!(tree.ephemerals(SessionId(e.session_id)).is_empty());
                assert!(tree.session_timeout(SessionId(e.session_id)).is_none());
                assert!(tree.session_auths(SessionId(e.session_id)).is_empty());
            }
            (KeeperRequest::Auth { .. }, KeeperOutcome::Ok(_)) => {
                assert!(!tree.session_auths(SessionId(e.session_id)).is_empty());
            }
            (KeeperRequest::SessionId { session_timeout_ms, .. }, KeeperOutcome::Ok(r)) => {
                let KeeperResponse::SessionCreated { session_id } = r else {
                    panic!("SessionID answered {r:?}");
                };
                assert_eq!(*session_id, before.session_id_counter());
                assert_eq!(tree.session_id_counter(), session_id + 1);
                let had = before.session_timeout(SessionId(*session_id));
                let expected = had.unwrap_or(*session_timeout_ms as i32);
                assert_eq!(tree.session_timeout(SessionId(*session_id)), Some(expected));
            }
            _ => {}
        }
    }
});
