//! ClickHouse Keeper log entries executed on the tree: every request type's happy and
//! error paths with exact stats, tied to the rules of `KeeperStorage.cpp` (2024–2025)
//! listed in the `keeper` module docs; multi rollback; sessions and auth; the running
//! Keeper digest against a full recomputation and the spec's derived vectors.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::cast_possible_truncation)]

mod common;

use common::{full_dump, FullDump, Rng};
use keeperkit_model::acl::Perms;
use keeperkit_model::keeper::{
    digest_version, CreateRequest, KeeperLogEntry, KeeperRequest, ZxidDigest,
    CREATE_FLAG_EPHEMERAL, CREATE_FLAG_SEQUENTIAL,
};
use keeperkit_model::{Acl, AclList, ErrorCode, Id, SessionId, Stat, Zxid};
use keeperkit_tree::{
    keeper_digest_id, DataTree, DigestCheck, KeeperApplyError, KeeperExecOptions, KeeperOutcome,
    KeeperResponse,
};

const S1: i64 = 1;
const S2: i64 = 2;

fn open() -> AclList {
    vec![Acl { perms: Perms::ALL, id: Id::anyone() }]
}

/// A Keeper without a snapshot: `/` with zeroed stats (no `/keeper`: a Keeper tree
/// keeps it apart), sessions 1 and 2, the Keeper digest on.
fn fresh() -> DataTree {
    let mut t = DataTree::empty();
    t.insert_loaded_full("/", Some(b""), &open(), &Stat::default(), 0, 0).unwrap();
    t.add_session(SessionId(S1), 30_000);
    t.add_session(SessionId(S2), 30_000);
    t.set_session_id_counter(3);
    t.enable_keeper_digest();
    t
}

/// An entry at zxid `zxid` (time = zxid * 10), as the leader patches it.
fn entry(session: i64, zxid: i64, request: KeeperRequest) -> KeeperLogEntry {
    let mut e = KeeperLogEntry::new(session, zxid, request, zxid * 10);
    e.trailer.zxid_digest = Some(ZxidDigest { zxid, digest_version: 0, digest: Some(0) });
    e
}

/// Everything observable, Keeper state included.
#[derive(Debug, PartialEq, Eq)]
struct State {
    dump: FullDump,
    keeper_digest: Option<u64>,
    counter: i64,
    auths: Vec<(i64, Vec<Id>)>,
}

fn state(t: &DataTree) -> State {
    State {
        dump: full_dump(t),
        keeper_digest: t.keeper_digest(),
        counter: t.session_id_counter(),
        auths: t.sessions().iter().map(|s| (s.id.0, t.session_auths(s.id))).collect(),
    }
}

fn check(t: &DataTree) {
    t.check_consistency(false).unwrap();
    let v = t.keeper_digest_version().unwrap();
    assert_eq!(t.keeper_digest(), Some(t.compute_keeper_digest(v)));
}

struct K {
    t: DataTree,
    zxid: i64,
    opts: KeeperExecOptions,
}

impl K {
    fn new() -> K {
        K { t: fresh(), zxid: 0, opts: KeeperExecOptions::default() }
    }

    fn run(&mut self, session: i64, req: KeeperRequest) -> KeeperOutcome {
        self.zxid += 1;
        let e = entry(session, self.zxid, req);
        let out = self.t.apply_keeper_entry(&e, self.zxid as u64, &self.opts).unwrap();
        check(&self.t);
        out
    }

    fn ok(&mut self, session: i64, req: KeeperRequest) -> KeeperResponse {
        match self.run(session, req) {
            KeeperOutcome::Ok(r) => r,
            other => panic!("zxid {}: {other:?}", self.zxid),
        }
    }

    /// Runs a request that must fail with `code` and change nothing but the zxid.
    fn err(&mut self, session: i64, req: KeeperRequest, code: ErrorCode) {
        let before = state(&self.t);
        let out = self.run(session, req);
        assert_eq!(out, KeeperOutcome::Error(code), "zxid {}", self.zxid);
        let mut after = state(&self.t);
        assert_eq!(after.dump.last_zxid, Zxid(self.zxid));
        after.dump.last_zxid = before.dump.last_zxid;
        assert_eq!(after, before, "a failed request changed the tree");
    }

    fn stat(&self, path: &str) -> Stat {
        self.t.get(path).unwrap_or_else(|| panic!("{path} missing")).stat()
    }

    fn seq(&self, path: &str) -> i32 {
        self.t.get(path).unwrap().seq()
    }
}

fn create_req(path: &str, data: &[u8], flags: i32, acls: AclList) -> CreateRequest {
    CreateRequest { path: path.into(), data: data.to_vec(), acls, flags }
}

fn create(path: &str) -> KeeperRequest {
    KeeperRequest::Create(create_req(path, b"", 0, vec![]))
}

fn create_flags(path: &str, flags: i32) -> KeeperRequest {
    KeeperRequest::Create(create_req(path, b"", flags, vec![]))
}

fn remove(path: &str, version: i32) -> KeeperRequest {
    KeeperRequest::Remove { path: path.into(), version }
}

fn set(path: &str, data: &[u8], version: i32) -> KeeperRequest {
    KeeperRequest::Set { path: path.into(), data: data.to_vec(), version }
}

fn digest_acl(perms: Perms, id: &str) -> Acl {
    Acl { perms, id: Id { scheme: "digest".into(), id: id.into() } }
}

fn auth(creds: &str) -> KeeperRequest {
    KeeperRequest::Auth { auth_type: 0, scheme: "digest".into(), data: creds.as_bytes().to_vec() }
}

// ----- create ------------------------------------------------------------------------

#[test]
fn create_sets_the_node_and_parent_stats() {
    let mut k = K::new();
    assert_eq!(
        k.ok(S1, KeeperRequest::Create(create_req("/a", b"hi", 0, vec![]))),
        KeeperResponse::Created { path: "/a".into() }
    );
    let a = k.stat("/a");
    assert_eq!((a.czxid, a.mzxid, a.pzxid, a.ctime, a.mtime), (1, 1, 1, 10, 10));
    assert_eq!((a.version, a.cversion, a.aversion, a.ephemeral_owner), (0, 0, 0, 0));
    assert_eq!((a.data_length, a.num_children), (2, 0));
    assert_eq!(k.t.get("/a").unwrap().data(), Some(&b"hi"[..]));
    // Keeper stores no ACL for an empty list: the loader's "open" list.
    assert_eq!(k.t.get("/a").unwrap().acl(), &open());
    let root = k.stat("/");
    assert_eq!((root.cversion, root.pzxid, root.num_children, k.seq("/")), (1, 1, 1, 1));

    k.ok(S1, create("/a/b"));
    let a = k.stat("/a");
    assert_eq!((a.cversion, a.pzxid, a.num_children, a.mzxid), (1, 2, 1, 1));
    assert_eq!(k.seq("/a"), 1);
    assert_eq!(k.stat("/").pzxid, 1, "grandparent untouched");
}

#[test]
fn create_errors_in_keepers_order() {
    let mut k = K::new();
    k.err(S1, create("/x/y"), ErrorCode::NoNode);
    k.ok(S1, create("/a"));
    k.err(S1, create("/a"), ErrorCode::NodeExists);
    k.err(S1, create("/"), ErrorCode::NodeExists);
    k.ok(S1, create_flags("/e", CREATE_FLAG_EPHEMERAL));
    k.err(S1, create("/e/c"), ErrorCode::NoChildrenForEphemerals);
    // Writes inside /keeper (present in Keeper although not in the tree).
    k.err(S1, create("/keeper"), ErrorCode::BadArguments);
    k.err(S1, create("/keeper/x"), ErrorCode::BadArguments);
    k.err(S1, create("/keeper/api_version/x"), ErrorCode::BadArguments);
    k.err(S1, create("/keeper/none/x"), ErrorCode::NoNode);
    // A trailing slash without the sequential flag: an empty name.
    k.err(S1, create("/a/"), ErrorCode::BadArguments);
    // Not a path Keeper has: its "parent" is itself.
    k.err(S1, create("abc"), ErrorCode::NoNode);
    // A sequential CreateIfNotExists.
    k.err(
        S1,
        KeeperRequest::CreateIfNotExists(create_req("/a/s", b"", CREATE_FLAG_SEQUENTIAL, vec![])),
        ErrorCode::BadArguments,
    );
    // An ACL list with nothing Keeper keeps (ip) or a digest id without one ':'.
    let ip = Acl { perms: Perms::ALL, id: Id { scheme: "ip".into(), id: "10.0.0.1".into() } };
    k.err(S1, KeeperRequest::Create(create_req("/b", b"", 0, vec![ip])), ErrorCode::InvalidAcl);
    let bad = digest_acl(Perms::ALL, "nocolon");
    k.err(S1, KeeperRequest::Create(create_req("/b", b"", 0, vec![bad])), ErrorCode::InvalidAcl);
    // "auth" without any auth in the session.
    let a = Acl { perms: Perms::ALL, id: Id { scheme: "auth".into(), id: String::new() } };
    k.err(S1, KeeperRequest::Create(create_req("/b", b"", 0, vec![a])), ErrorCode::InvalidAcl);
}

#[test]
fn create_if_not_exists_of_an_existing_node_changes_nothing() {
    let mut k = K::new();
    k.ok(S1, create("/a"));
    let before = state(&k.t);
    let r = k.ok(S1, KeeperRequest::CreateIfNotExists(create_req("/a", b"x", 0, vec![])));
    assert_eq!(r, KeeperResponse::Created { path: "/a".into() });
    let mut after = state(&k.t);
    after.dump.last_zxid = before.dump.last_zxid;
    assert_eq!(after, before);
    k.ok(S1, KeeperRequest::CreateIfNotExists(create_req("/b", b"x", 0, vec![])));
    assert_eq!(k.t.get("/b").unwrap().data(), Some(&b"x"[..]));
}

#[test]
fn sequential_names_come_from_the_parent_counter_even_after_deletes() {
    let mut k = K::new();
    k.ok(S1, create("/q"));
    let seq = |k: &mut K| match k.ok(S1, create_flags("/q/n-", CREATE_FLAG_SEQUENTIAL)) {
        KeeperResponse::Created { path } => path,
        r => panic!("{r:?}"),
    };
    assert_eq!(seq(&mut k), "/q/n-0000000000");
    assert_eq!(seq(&mut k), "/q/n-0000000001");
    k.ok(S1, remove("/q/n-0000000001", -1));
    k.ok(S1, create("/q/plain"));
    assert_eq!(seq(&mut k), "/q/n-0000000003", "seq_num counts creates, not children");
    // Trailing slash + sequential: the name is the number alone.
    match k.ok(S1, create_flags("/q/", CREATE_FLAG_SEQUENTIAL)) {
        KeeperResponse::Created { path } => assert_eq!(path, "/q/0000000004"),
        r => panic!("{r:?}"),
    }
    let q = k.stat("/q");
    // 5 creates, 1 remove: cversion 6 (Keeper's own counter), 4 children.
    assert_eq!((q.cversion, q.num_children, k.seq("/q")), (6, 4, 5));
    // A sequential ephemeral.
    match k.ok(S2, create_flags("/q/e", CREATE_FLAG_SEQUENTIAL | CREATE_FLAG_EPHEMERAL)) {
        KeeperResponse::Created { path } => {
            assert_eq!(path, "/q/e0000000005");
            assert_eq!(k.stat(&path).ephemeral_owner, S2);
        }
        r => panic!("{r:?}"),
    }
}

#[test]
fn negative_sequence_counter_pads_before_the_sign() {
    let mut t = fresh();
    let st = Stat { cversion: 0, ..Stat::default() };
    t.insert_loaded_full("/q", Some(b""), &open(), &st, -3, 0).unwrap();
    t.enable_keeper_digest();
    let e = entry(S1, 1, create_flags("/q/n", CREATE_FLAG_SEQUENTIAL));
    let out = t.apply_keeper_entry(&e, 1, &KeeperExecOptions::default()).unwrap();
    assert_eq!(out, KeeperOutcome::Ok(KeeperResponse::Created { path: "/q/n00000000-3".into() }));
}

// ----- remove ------------------------------------------------------------------------

#[test]
fn remove_checks_version_and_children_and_leaves_pzxid() {
    let mut k = K::new();
    k.ok(S1, create("/a"));
    k.ok(S1, create("/a/b"));
    k.ok(S1, set("/a/b", b"v", -1));
    k.err(S1, remove("/a/c", -1), ErrorCode::NoNode);
    k.err(S1, remove("/a/b", 0), ErrorCode::BadVersion);
    k.err(S1, remove("/a", -1), ErrorCode::NotEmpty);
    k.err(S1, remove("/", -1), ErrorCode::NotEmpty);
    k.err(S1, remove("/keeper", -1), ErrorCode::BadArguments);
    k.err(S1, remove("/keeper/api_version", -1), ErrorCode::BadArguments);
    let before = k.stat("/a");
    k.ok(S1, remove("/a/b", 1));
    let a = k.stat("/a");
    assert_eq!(a.num_children, 0);
    assert_eq!(a.cversion, before.cversion + 1);
    assert_eq!(a.pzxid, before.pzxid, "Keeper does not raise pzxid on remove");
    assert_eq!(k.seq("/a"), 1);
    assert!(k.t.get("/a/b").is_none());
}

#[test]
fn remove_recursive_limit_acl_and_parent() {
    let mut k = K::new();
    for p in ["/r", "/r/a", "/r/a/x", "/r/a/y", "/r/b"] {
        k.ok(S1, create(p));
    }
    let rr =
        |limit| KeeperRequest::RemoveRecursive { path: "/r".into(), remove_nodes_limit: limit };
    k.err(S1, rr(4), ErrorCode::NotEmpty);
    k.err(
        S1,
        KeeperRequest::RemoveRecursive { path: "/nope".into(), remove_nodes_limit: 9 },
        ErrorCode::NoNode,
    );
    k.err(
        S1,
        KeeperRequest::RemoveRecursive { path: "/".into(), remove_nodes_limit: 99 },
        ErrorCode::BadArguments,
    );
    // A node inside that the session may not delete from.
    let locked = vec![digest_acl(Perms(Perms::ALL.0 & !Perms::DELETE.0), "u:x")];
    k.ok(S1, KeeperRequest::SetAcl { path: "/r/a".into(), acls: locked, version: -1 });
    k.err(S1, rr(5), ErrorCode::NoAuth);
    // Unlocking needs ADMIN, which only u:x has now.
    k.opts.check_acl = false;
    k.ok(S1, KeeperRequest::SetAcl { path: "/r/a".into(), acls: vec![], version: -1 });
    k.opts.check_acl = true;
    let root = k.stat("/");
    k.ok(S1, rr(5));
    assert!(k.t.get("/r").is_none() && k.t.get("/r/a/x").is_none());
    let now = k.stat("/");
    assert_eq!((now.cversion, now.pzxid, now.num_children), (root.cversion + 1, root.pzxid, 0));
    assert_eq!(k.t.node_count(), 1);
}

// ----- set / setACL / check -------------------------------------------------------------

#[test]
fn set_bumps_version_and_the_parents_cversion() {
    let mut k = K::new();
    k.ok(S1, create("/a"));
    k.ok(S1, create("/a/b"));
    let parent = k.stat("/a");
    k.ok(S1, set("/a/b", b"data", 0));
    let b = k.stat("/a/b");
    assert_eq!((b.version, b.mzxid, b.mtime, b.czxid, b.data_length), (1, 3, 30, 2, 4));
    let a = k.stat("/a");
    assert_eq!(a.cversion, parent.cversion + 1, "Keeper's Set raises the parent's cversion");
    assert_eq!((a.pzxid, a.mzxid, a.version), (parent.pzxid, parent.mzxid, parent.version));
    k.err(S1, set("/a/b", b"x", 0), ErrorCode::BadVersion);
    k.err(S1, set("/zz", b"x", -1), ErrorCode::NoNode);
    k.err(S1, set("/keeper/feature_flags", b"x", -1), ErrorCode::BadArguments);
    // The root: its own stats only (2026 rule; module docs).
    let root = k.stat("/");
    k.ok(S1, set("/", b"r", -1));
    let r = k.stat("/");
    assert_eq!((r.version, r.mzxid, r.cversion), (root.version + 1, k.zxid, root.cversion));
}

#[test]
fn set_acl_checks_aversion_and_fixes_up_the_list() {
    let mut k = K::new();
    k.ok(S1, create("/a"));
    k.err(
        S1,
        KeeperRequest::SetAcl { path: "/a".into(), acls: vec![], version: 3 },
        ErrorCode::BadVersion,
    );
    k.err(
        S1,
        KeeperRequest::SetAcl { path: "/x".into(), acls: vec![], version: -1 },
        ErrorCode::NoNode,
    );
    k.ok(S1, auth("alice:pw"));
    let id = keeper_digest_id(b"alice:pw").unwrap();
    let acls = vec![
        Acl { perms: Perms::READ, id: Id::anyone() },
        Acl { perms: Perms(Perms::ALL.0), id: Id { scheme: "auth".into(), id: String::new() } },
        Acl { perms: Perms::READ, id: Id { scheme: "ip".into(), id: "1.2.3.4".into() } },
    ];
    let before = k.stat("/a");
    k.ok(S1, KeeperRequest::SetAcl { path: "/a".into(), acls, version: 0 });
    let a = k.stat("/a");
    assert_eq!(a.aversion, 1);
    assert_eq!((a.mzxid, a.version, a.cversion), (before.mzxid, before.version, before.cversion));
    assert_eq!(k.t.get("/a").unwrap().acl(), &vec![digest_acl(Perms::ALL, &id)]);
    // world:anyone alone, whatever its permissions, is stored as no ACL.
    k.ok(
        S1,
        KeeperRequest::SetAcl {
            path: "/a".into(),
            acls: vec![Acl { perms: Perms::READ, id: Id::anyone() }],
            version: 1,
        },
    );
    assert_eq!(k.t.get("/a").unwrap().acl(), &open());
    assert_eq!(k.stat("/a").aversion, 2);
}

#[test]
fn check_and_check_not_exists() {
    let mut k = K::new();
    k.ok(S1, create("/a"));
    let check = |p: &str, v| KeeperRequest::Check { path: p.into(), version: v };
    let cne = |p: &str, v| KeeperRequest::CheckNotExists { path: p.into(), version: v };
    k.ok(S1, check("/a", 0));
    k.ok(S1, check("/a", -1));
    k.ok(S1, check("/keeper", 0));
    k.err(S1, check("/a", 1), ErrorCode::BadVersion);
    k.err(S1, check("/b", -1), ErrorCode::NoNode);
    k.ok(S1, cne("/b", -1));
    k.ok(S1, cne("/a", 5));
    k.err(S1, cne("/a", -1), ErrorCode::NodeExists);
    k.err(S1, cne("/a", 0), ErrorCode::NodeExists);
    k.err(S1, cne("/keeper/api_version", -1), ErrorCode::NodeExists);
}

// ----- multi ---------------------------------------------------------------------------

#[test]
fn multi_applies_in_order_each_seeing_the_previous() {
    let mut k = K::new();
    let r = k.ok(
        S1,
        KeeperRequest::Multi(vec![
            create("/m"),
            create_flags("/m/s", CREATE_FLAG_SEQUENTIAL),
            set("/m", b"x", 0),
            KeeperRequest::Check { path: "/m".into(), version: 1 },
            remove("/m/s0000000000", -1),
        ]),
    );
    let KeeperResponse::Multi(subs) = r else { panic!("{r:?}") };
    assert_eq!(subs.len(), 5);
    assert_eq!(
        subs[1],
        KeeperOutcome::Ok(KeeperResponse::Created { path: "/m/s0000000000".into() })
    );
    let m = k.stat("/m");
    // create + set + remove under /m: cversion 1 (child create) + 1 (remove) = 2; the
    // Set raised the root's cversion.
    assert_eq!((m.version, m.cversion, m.num_children, m.czxid, m.mzxid), (1, 2, 0, 1, 1));
    assert_eq!(k.stat("/").cversion, 2);
}

#[test]
fn failed_multi_is_bit_identical_and_reports_keepers_codes() {
    let mut k = K::new();
    k.ok(S1, create("/a"));
    k.ok(S2, create_flags("/a/e", CREATE_FLAG_EPHEMERAL));
    let snapshot = k.t.clone();
    let before = state(&k.t);
    k.zxid += 1;
    let e = entry(
        S1,
        k.zxid,
        KeeperRequest::Multi(vec![
            create("/a/b"),
            KeeperRequest::RemoveRecursive { path: "/a".into(), remove_nodes_limit: 100 },
            create("/c"),
            set("/nope", b"", -1),
            create("/d"),
        ]),
    );
    let out = k.t.apply_keeper_entry(&e, k.zxid as u64, &k.opts).unwrap();
    assert_eq!(
        out,
        KeeperOutcome::MultiFailed {
            multi_error: ErrorCode::Ok,
            results: vec![
                ErrorCode::Ok,
                ErrorCode::Ok,
                ErrorCode::Ok,
                ErrorCode::NoNode,
                ErrorCode::RuntimeInconsistency
            ],
        }
    );
    check(&k.t);
    let mut after = state(&k.t);
    assert_eq!(after.dump.last_zxid, Zxid(k.zxid));
    after.dump.last_zxid = before.dump.last_zxid;
    assert_eq!(after, before);
    assert_eq!(k.t.keeper_digest(), snapshot.keeper_digest());
    assert_eq!(k.t.digest(), snapshot.digest());
    assert_eq!(k.t.ephemerals(SessionId(S2)), vec!["/a/e".to_owned()]);
}

#[test]
fn multi_acl_failure_is_no_auth_with_every_sub_ok() {
    let mut k = K::new();
    let id = keeper_digest_id(b"u:p").unwrap();
    k.ok(
        S1,
        KeeperRequest::Create(create_req("/locked", b"", 0, vec![digest_acl(Perms::ALL, &id)])),
    );
    let before = state(&k.t);
    let out = k.run(S2, KeeperRequest::Multi(vec![create("/free"), set("/locked", b"x", -1)]));
    assert_eq!(
        out,
        KeeperOutcome::MultiFailed {
            multi_error: ErrorCode::NoAuth,
            results: vec![ErrorCode::Ok, ErrorCode::Ok]
        }
    );
    assert_eq!(state(&k.t).dump.nodes, before.dump.nodes);
    // MultiRead: each read on its own.
    let r = k.ok(
        S1,
        KeeperRequest::MultiRead(vec![
            KeeperRequest::Get { path: "/nope".into(), watch: false },
            KeeperRequest::Exists { path: "/locked".into(), watch: false },
        ]),
    );
    assert_eq!(
        r,
        KeeperResponse::Multi(vec![
            KeeperOutcome::Error(ErrorCode::NoNode),
            KeeperOutcome::Ok(KeeperResponse::Done)
        ])
    );
}

// ----- sessions ------------------------------------------------------------------------

#[test]
fn session_id_allocates_from_the_counter_without_a_zxid() {
    let mut k = K::new();
    k.ok(S1, create("/a"));
    let req = KeeperRequest::SessionId { internal_id: 7, session_timeout_ms: 10_000, server_id: 1 };
    let e = entry(-1, 2, req.clone());
    let out = k.t.apply_keeper_entry(&e, 2, &k.opts).unwrap();
    assert_eq!(out, KeeperOutcome::Ok(KeeperResponse::SessionCreated { session_id: 3 }));
    assert_eq!(k.t.session_id_counter(), 4);
    assert_eq!(k.t.session_timeout(SessionId(3)), Some(10_000));
    assert_eq!(k.t.last_processed_zxid(), Zxid(1), "SessionID does not reach the storage");
    // The next request may carry the same zxid (the leader did not consume one).
    let e = entry(3, 2, create_flags("/a/e", CREATE_FLAG_EPHEMERAL));
    assert!(k.t.apply_keeper_entry(&e, 3, &k.opts).unwrap().is_ok());
    let big =
        KeeperRequest::SessionId { internal_id: 0, session_timeout_ms: 1 << 40, server_id: 1 };
    assert!(matches!(
        k.t.apply_keeper_entry(&entry(-1, 3, big), 4, &k.opts),
        Err(KeeperApplyError::Unrepresentable(_))
    ));
    assert_eq!(k.t.session_id_counter(), 4);
}

#[test]
fn close_removes_ephemerals_session_and_auth() {
    let mut k = K::new();
    k.ok(S1, create("/a"));
    k.ok(S1, create("/b"));
    k.ok(S2, auth("bob:pw"));
    for p in ["/a/e1", "/a/e2", "/b/e3"] {
        k.ok(S2, create_flags(p, CREATE_FLAG_EPHEMERAL));
    }
    k.ok(S1, create_flags("/a/mine", CREATE_FLAG_EPHEMERAL));
    let (a, b) = (k.stat("/a"), k.stat("/b"));
    assert_eq!(k.t.session_auths(SessionId(S2)).len(), 1);
    k.ok(S2, KeeperRequest::Close);
    assert!(k.t.ephemerals(SessionId(S2)).is_empty());
    assert!(k.t.get("/a/e1").is_none() && k.t.get("/b/e3").is_none());
    assert!(k.t.get("/a/mine").is_some());
    let (a2, b2) = (k.stat("/a"), k.stat("/b"));
    assert_eq!((a2.cversion, a2.num_children, a2.pzxid), (a.cversion + 2, 1, a.pzxid));
    assert_eq!((b2.cversion, b2.num_children), (b.cversion + 1, 0));
    assert_eq!(k.t.session_timeout(SessionId(S2)), None);
    assert!(k.t.session_auths(SessionId(S2)).is_empty());
}

#[test]
fn unknown_sessions_are_registered_with_timeout_zero() {
    let mut k = K::new();
    k.ok(99, KeeperRequest::Heartbeat);
    assert_eq!(k.t.session_timeout(SessionId(99)), Some(0));
    k.ok(99, KeeperRequest::Close);
    assert_eq!(k.t.session_timeout(SessionId(99)), None);
    k.opts.register_unknown_sessions = false;
    k.ok(98, KeeperRequest::Sync { path: "/".into() });
    assert_eq!(k.t.session_timeout(SessionId(98)), None);
}

// ----- auth and ACLs -------------------------------------------------------------------

#[test]
fn auth_and_acl_checks() {
    let mut k = K::new();
    k.err(
        S1,
        KeeperRequest::Auth { auth_type: 0, scheme: "ip".into(), data: b"a:b".to_vec() },
        ErrorCode::AuthFailed,
    );
    k.err(S1, auth("a:b:c"), ErrorCode::AuthFailed);
    k.ok(S1, auth("alice:secret"));
    k.ok(S1, auth("alice:secret"));
    let alice = keeper_digest_id(b"alice:secret").unwrap();
    assert_eq!(
        k.t.session_auths(SessionId(S1)),
        vec![Id { scheme: "digest".into(), id: alice.clone() }],
        "added once"
    );
    let acl = vec![
        digest_acl(Perms(Perms::ALL.0 & !Perms::WRITE.0), &alice),
        Acl { perms: Perms::READ, id: Id::anyone() },
    ];
    k.ok(S1, KeeperRequest::Create(create_req("/p", b"", 0, acl.clone())));
    // world:anyone dropped, the digest entry kept.
    assert_eq!(k.t.get("/p").unwrap().acl(), &vec![acl[0].clone()]);
    k.err(S2, create("/p/c"), ErrorCode::NoAuth);
    k.err(S2, set("/p", b"x", -1), ErrorCode::NoAuth);
    k.err(S1, set("/p", b"x", -1), ErrorCode::NoAuth);
    // READ was only granted to world:anyone, which Keeper does not store.
    k.err(S2, KeeperRequest::Check { path: "/p".into(), version: -1 }, ErrorCode::NoAuth);
    k.ok(S1, create("/p/c"));
    // Missing nodes have no ACL to fail: the request fails on its own terms.
    k.err(S2, set("/p/zz", b"", -1), ErrorCode::NoNode);
    // Without ACL checks.
    k.opts.check_acl = false;
    k.ok(S2, set("/p", b"w", -1));
    k.opts.check_acl = true;
    // The super digest.
    k.opts.super_digest = keeper_digest_id(b"super:pw");
    k.ok(S2, auth("super:pw"));
    assert_eq!(
        k.t.session_auths(SessionId(S2)),
        vec![Id { scheme: "super".into(), id: String::new() }]
    );
    k.ok(S2, set("/p", b"x", -1));
    k.ok(S2, remove("/p/c", -1));
}

#[test]
fn auth_scheme_acl_expands_to_every_session_id() {
    let mut k = K::new();
    k.ok(S1, auth("a:1"));
    k.ok(S1, auth("b:2"));
    let auth_acl = Acl {
        perms: Perms(Perms::READ.0 | Perms::WRITE.0),
        id: Id { scheme: "auth".into(), id: String::new() },
    };
    k.ok(S1, KeeperRequest::Create(create_req("/x", b"", 0, vec![auth_acl])));
    let want: AclList = ["a:1", "b:2"]
        .iter()
        .map(|c| {
            digest_acl(
                Perms(Perms::READ.0 | Perms::WRITE.0),
                &keeper_digest_id(c.as_bytes()).unwrap(),
            )
        })
        .collect();
    assert_eq!(k.t.get("/x").unwrap().acl(), &want);
}

// ----- zxids ---------------------------------------------------------------------------

#[test]
fn zxid_comes_from_the_trailer_or_the_log_index() {
    let mut t = fresh();
    let opts = KeeperExecOptions::default();
    let mut e = KeeperLogEntry::new(S1, 1, create("/a"), 5);
    // The writer's placeholder zxid 0: the log index.
    assert!(t.apply_keeper_entry(&e, 17, &opts).unwrap().is_ok());
    assert_eq!(t.get("/a").unwrap().stat().czxid, 17);
    assert_eq!(t.last_processed_zxid(), Zxid(17));
    // No trailer at all: log index and the fallback time.
    e.request = create("/b");
    e.trailer = Default::default();
    let o = KeeperExecOptions { fallback_time_ms: 777, ..KeeperExecOptions::default() };
    assert!(t.apply_keeper_entry(&e, 18, &o).unwrap().is_ok());
    let b = t.get("/b").unwrap().stat();
    assert_eq!((b.czxid, b.ctime), (18, 777));
    // A failed request still moves the zxid.
    let e = entry(S1, 30, create("/b"));
    assert_eq!(
        t.apply_keeper_entry(&e, 19, &opts).unwrap(),
        KeeperOutcome::Error(ErrorCode::NodeExists)
    );
    assert_eq!(t.last_processed_zxid(), Zxid(30));
    // Going back is what Keeper aborts on; nothing changes.
    let before = full_dump(&t);
    for z in [30, 29] {
        let e = entry(S1, z, create("/c"));
        assert_eq!(
            t.apply_keeper_entry(&e, 20, &opts),
            Err(KeeperApplyError::ZxidNotIncreasing { zxid: z, last: 30 })
        );
    }
    assert_eq!(full_dump(&t), before);
    // Right after a snapshot load, the snapshot's zxid may come once more.
    t.set_last_processed_zxid(Zxid(30));
    assert!(t.apply_keeper_entry(&entry(S1, 30, create("/c")), 20, &opts).unwrap().is_ok());
    // Reconfig changes nothing, not even the zxid.
    let r = KeeperRequest::Reconfig {
        joining: String::new(),
        leaving: "3".into(),
        new_members: String::new(),
        version: -1,
    };
    assert!(t.apply_keeper_entry(&entry(S1, 31, r), 21, &opts).unwrap().is_ok());
    assert_eq!(t.last_processed_zxid(), Zxid(30));
}

#[test]
fn system_path_writes_can_be_refused_like_keepers_startup() {
    let mut t = fresh();
    let opts =
        KeeperExecOptions { refuse_system_path_writes: true, ..KeeperExecOptions::default() };
    let e = entry(S1, 1, create("/keeper/x"));
    assert_eq!(
        t.apply_keeper_entry(&e, 1, &opts),
        Err(KeeperApplyError::SystemPath { path: "/keeper/x".into() })
    );
    assert_eq!(t.last_processed_zxid(), Zxid(0));
}

// ----- digest --------------------------------------------------------------------------

#[test]
fn fresh_keeper_digest_matches_the_specs_derived_vectors() {
    // docs/formats/clickhouse.md, "Digests": `/` with numChildren 1 and an empty `/keeper`.
    let mut t = fresh();
    assert_eq!(t.keeper_digest_with_system_node(), Some(0xd0d7_6359_b5af_c751));
    t.enable_keeper_digest_version(digest_version::V5);
    assert_eq!(t.keeper_digest_with_system_node(), Some(0x7f0c_6b80_8c49_61b4));
    // The same with /keeper in the tree itself.
    let mut t = fresh();
    t.insert_loaded_full("/keeper", Some(b""), &open(), &Stat::default(), 0, 0).unwrap();
    t.enable_keeper_digest();
    assert_eq!(t.keeper_digest(), Some(0xd0d7_6359_b5af_c751));
    assert_eq!(t.keeper_digest_with_system_node(), Some(0xd0d7_6359_b5af_c751));
}

#[test]
fn entry_digests_are_compared_like_keepers_check_digest() {
    let mut t = fresh();
    let opts = KeeperExecOptions::default();
    let mut e = entry(S1, 1, create("/a"));
    t.apply_keeper_entry(&e, 1, &opts).unwrap();
    assert_eq!(t.check_entry_digest(&e), DigestCheck::NotChecked, "version 0");
    let d = t.keeper_digest_with_system_node().unwrap();
    e.trailer.zxid_digest = Some(ZxidDigest { zxid: 1, digest_version: 4, digest: Some(d) });
    assert_eq!(t.check_entry_digest(&e), DigestCheck::Match(d));
    e.trailer.zxid_digest = Some(ZxidDigest { zxid: 1, digest_version: 4, digest: Some(d ^ 1) });
    assert_eq!(t.check_entry_digest(&e), DigestCheck::Mismatch { stored: d ^ 1, computed: d });
    e.trailer.zxid_digest = Some(ZxidDigest { zxid: 1, digest_version: 5, digest: Some(d ^ 1) });
    assert_eq!(t.check_entry_digest(&e), DigestCheck::NotChecked, "other version");
    t.disable_keeper_digest();
    assert_eq!(t.keeper_digest(), None);
}

#[test]
fn ephemeral_and_ttl_nodes_hash_as_keeper_stores_them() {
    use keeperkit_model::keeper::{node_digest, KeeperStat};
    use keeperkit_model::EphemeralOwner;
    let mut t = fresh();
    let st = Stat { czxid: 3, mzxid: 4, ctime: 5, mtime: 6, pzxid: 7, ..Stat::default() };
    t.insert_loaded_full("/e", Some(b"d"), &open(), &st, 0, 9).unwrap();
    t.insert_loaded_full("/t", Some(b""), &open(), &st, 0, EphemeralOwner::Ttl(1000).encode())
        .unwrap();
    for v in [digest_version::V4, digest_version::V5] {
        t.enable_keeper_digest_version(v);
        let ks = KeeperStat {
            czxid: 3,
            mzxid: 4,
            ctime: 5,
            mtime: 6,
            pzxid: 7,
            ..KeeperStat::default()
        };
        let root = KeeperStat { num_children: 2, ..KeeperStat::default() };
        let want = node_digest(v, b"/", b"", &root, None)
            .wrapping_add(node_digest(
                v,
                b"/e",
                b"d",
                &KeeperStat { ephemeral_owner: 9, ..ks },
                None,
            ))
            .wrapping_add(node_digest(v, b"/t", b"", &ks, Some(1000)));
        assert_eq!(t.keeper_digest(), Some(want), "version {v}");
    }
}

#[test]
fn zookeeper_replay_keeps_an_enabled_keeper_digest_current() {
    use common::{create1, txn};
    let mut t = DataTree::new();
    t.enable_keeper_digest();
    for (z, p) in [(1, "/a"), (2, "/a/b"), (3, "/c")] {
        t.apply(&txn(z, S1, create1(p, -1)));
    }
    t.apply(&txn(4, S1, keeperkit_model::TxnBody::Delete { path: "/a/b".into() }));
    t.check_consistency(true).unwrap();
}

// ----- random --------------------------------------------------------------------------

/// A long seeded mix of every request type: after each one the tree is consistent and
/// the running digest equals a full recomputation; a failed request or multi leaves
/// everything but the zxid as it was.
#[test]
fn random_requests_keep_the_digest_exact() {
    let mut rng = Rng::new(0x4b45_4550);
    let mut k = K::new();
    k.opts.super_digest = keeper_digest_id(b"super:s");
    let names = ["a", "b", "c", "n-"];
    let sessions = [S1, S2, 5, 6];
    let creds = ["u:1", "v:2", "super:s"];
    let random_path = |rng: &mut Rng, t: &DataTree| -> String {
        let mut p = String::new();
        for _ in 0..=rng.below(3) {
            p.push('/');
            p.push_str(names[rng.below(names.len())]);
            if t.get(&p).is_none() || rng.pct(30) {
                break;
            }
        }
        p
    };
    let random_write = |rng: &mut Rng, t: &DataTree, in_multi: bool| -> KeeperRequest {
        let path = random_path(rng, t);
        let version = if rng.pct(70) { -1 } else { rng.below(3) as i32 };
        match rng.below(9) {
            0..=2 => {
                let flags = rng.below(4) as i32;
                let acls = match rng.below(4) {
                    0 => vec![digest_acl(Perms::ALL, &keeper_digest_id(b"u:1").unwrap())],
                    1 => vec![Acl {
                        perms: Perms::ALL,
                        id: Id { scheme: "auth".into(), id: String::new() },
                    }],
                    _ => vec![],
                };
                let c = create_req(&path, &[rng.below(256) as u8; 3], flags, acls);
                if rng.pct(20) {
                    KeeperRequest::CreateIfNotExists(c)
                } else {
                    KeeperRequest::Create(c)
                }
            }
            3 => remove(&path, version),
            4 => KeeperRequest::RemoveRecursive { path, remove_nodes_limit: rng.below(6) as u32 },
            5 => set(&path, &vec![7; rng.below(5)], version),
            6 => KeeperRequest::Check { path, version },
            7 => KeeperRequest::CheckNotExists { path, version },
            _ if in_multi => KeeperRequest::Check { path, version },
            _ => KeeperRequest::SetAcl { path, acls: vec![], version },
        }
    };
    let start = std::time::Instant::now();
    // Multi ok, multi failed, created, error, other ok.
    let mut seen = [0u32; 5];
    for i in 0..3000 {
        if start.elapsed().as_millis() > 1500 {
            break;
        }
        let session = *rng.pick(&sessions);
        let req = match rng.below(20) {
            0 => KeeperRequest::Close,
            1 => auth(creds[rng.below(creds.len())]),
            2 => {
                KeeperRequest::SessionId { internal_id: 0, session_timeout_ms: 5000, server_id: 1 }
            }
            3..=5 => KeeperRequest::Multi(
                (0..rng.below(4) + 1).map(|_| random_write(&mut rng, &k.t, true)).collect(),
            ),
            6 => KeeperRequest::Heartbeat,
            _ => random_write(&mut rng, &k.t, false),
        };
        let before = if i % 7 == 0 { Some(state(&k.t)) } else { None };
        let out = k.run(session, req);
        match &out {
            KeeperOutcome::Ok(KeeperResponse::Multi(_)) => seen[0] += 1,
            KeeperOutcome::MultiFailed { .. } => seen[1] += 1,
            KeeperOutcome::Ok(KeeperResponse::Created { .. }) => seen[2] += 1,
            KeeperOutcome::Error(_) => seen[3] += 1,
            KeeperOutcome::Ok(_) => seen[4] += 1,
        }
        if let (Some(before), KeeperOutcome::Error(_) | KeeperOutcome::MultiFailed { .. }) =
            (before, &out)
        {
            let mut after = state(&k.t);
            after.dump.last_zxid = before.dump.last_zxid;
            after.dump.sessions.retain(|s| before.dump.sessions.iter().any(|b| b.id == s.id));
            after.dump.ephemerals.retain(|s| before.dump.ephemerals.iter().any(|b| b.0 == s.0));
            after.auths.retain(|s| before.auths.iter().any(|b| b.0 == s.0));
            assert_eq!(after, before, "request {i} failed but changed something");
        }
    }
    assert!(k.t.node_count() > 1);
    assert!(seen.iter().all(|&n| n > 20), "a thin mix: {seen:?}");
    for v in [digest_version::V4, digest_version::V5] {
        let mut t = k.t.clone();
        t.enable_keeper_digest_version(v);
        assert_eq!(t.keeper_digest(), Some(t.compute_keeper_digest(v)));
    }
}
