//! `keeperkit serve` over TCP, spoken to with the codec: operations and their error
//! codes, watches and their order, sessions across restarts and expiry, group commit,
//! container and TTL expiry, and hostile clients.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{create_req, Client, TestServer};
use keeperkit_model::acl::Perms;
use keeperkit_model::{Acl, ErrorCode, Id};
use keeperkit_server::proto::{
    create_mode, event_type, CreateRequest, OpResult, Request, Response,
};

fn stat_of(r: &Response) -> keeperkit_model::Stat {
    match r {
        Response::Stat(s)
        | Response::Create2 { stat: s, .. }
        | Response::GetData { stat: s, .. } => *s,
        other => panic!("no stat in {other:?}"),
    }
}

#[test]
fn operations_and_their_errors() {
    let dir = tempfile::tempdir().unwrap();
    let srv = TestServer::start(dir.path(), 22101, |c| {
        c.super_digest = Some("super:D/InIHSb7yEEbrWz8b9l71RjZJU=".into())
    });
    let mut c = Client::connect(srv.addr);
    assert_eq!(c.conn.session_id >> 56, 1, "session ids carry server id 1 in the top byte");
    assert_eq!(c.create("/a", b"v", 0), Ok(Response::Create { path: "/a".into() }));
    assert_eq!(c.create("/a", b"v", 0), Err(ErrorCode::NodeExists));
    assert_eq!(c.create("/no/child", b"", 0), Err(ErrorCode::NoNode));
    assert_eq!(c.create("a", b"", 0), Err(ErrorCode::BadArguments));
    assert_eq!(c.create("/a/", b"", 0), Err(ErrorCode::BadArguments));
    assert_eq!(c.create("/a/x", b"", 9), Err(ErrorCode::BadArguments));
    let mut no_acl = create_req("/a/y", b"", 0);
    no_acl.acl.clear();
    assert_eq!(c.call(Request::Create(no_acl)), Err(ErrorCode::InvalidAcl));
    // Sequential names follow the parent's stored cversion, failed creates included
    // (a type-1 create hitting NodeExists bumps it, as ZooKeeper's replay does).
    assert_eq!(
        c.create("/a/s-", b"", create_mode::PERSISTENT_SEQUENTIAL),
        Ok(Response::Create { path: "/a/s-0000000000".into() })
    );
    assert_eq!(
        c.create("/a/s-", b"", create_mode::EPHEMERAL_SEQUENTIAL),
        Ok(Response::Create { path: "/a/s-0000000001".into() })
    );
    assert_eq!(c.create("/a/s-0000000001/x", b"", 0), Err(ErrorCode::NoChildrenForEphemerals));
    let r = c.call(Request::Create2(create_req("/b", b"hello", 0))).unwrap();
    let st = stat_of(&r);
    assert_eq!((st.data_length, st.version, st.czxid), (5, 0, st.mzxid));
    let got = c.get("/b", false).unwrap();
    assert_eq!(got, Response::GetData { data: Some(b"hello".to_vec()), stat: st });
    assert_eq!(c.set("/b", b"x", 3), Err(ErrorCode::BadVersion));
    let s1 = stat_of(&c.set("/b", b"x", 0).unwrap());
    assert_eq!((s1.version, s1.data_length), (1, 1));
    assert!(s1.mzxid > st.mzxid);
    assert_eq!(c.delete("/a", -1), Err(ErrorCode::NotEmpty));
    assert_eq!(c.delete("/b", 0), Err(ErrorCode::BadVersion));
    assert_eq!(c.delete("/zookeeper", -1), Err(ErrorCode::BadArguments));
    assert_eq!(c.delete("/b", 1), Ok(Response::Empty));
    assert_eq!(c.get("/b", false), Err(ErrorCode::NoNode));
    assert_eq!(c.call(Request::Exists { path: "/b".into(), watch: false }), Err(ErrorCode::NoNode));
    match c.call(Request::GetChildren2 { path: "/a".into(), watch: false }).unwrap() {
        Response::Children2 { children, stat } => {
            assert_eq!(children, vec!["s-0000000000", "s-0000000001"]);
            assert_eq!(stat.num_children, 2);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        c.call(Request::GetAllChildrenNumber { path: "/a".into() }),
        Ok(Response::AllChildrenNumber(2))
    );
    assert_eq!(
        c.call(Request::GetEphemerals { prefix: "/".into() }),
        Ok(Response::Ephemerals(vec!["/a/s-0000000001".into()]))
    );
    assert_eq!(
        c.call(Request::Sync { path: "/a".into() }),
        Ok(Response::Sync { path: "/a".into() })
    );
    assert_eq!(
        c.call(Request::Check { path: "/a".into(), version: 5 }),
        Err(ErrorCode::BadVersion)
    );

    // multi: all or nothing, per-op results.
    let ok = c.call(Request::Multi(vec![
        Request::Create(create_req("/m", b"1", 0)),
        Request::Create2(create_req("/m/c", b"2", 0)),
        Request::SetData { path: "/m".into(), data: Some(b"3".to_vec()), version: 0 },
        Request::Check { path: "/m/c".into(), version: 0 },
    ]));
    match ok.unwrap() {
        Response::Multi(rs) => {
            assert_eq!(rs[0], OpResult::Create { path: "/m".into() });
            // ZooKeeper rebuilds a multi's creates from their flags: a create2 answers
            // as a create.
            assert_eq!(rs[1], OpResult::Create { path: "/m/c".into() });
            assert!(matches!(rs[2], OpResult::SetData(s) if s.version == 1));
            assert_eq!(rs[3], OpResult::Check);
        }
        other => panic!("{other:?}"),
    }
    let failed = c.call(Request::Multi(vec![
        Request::Create(create_req("/n", b"", 0)),
        Request::Delete { path: "/nope".into(), version: -1 },
        Request::Create(create_req("/n2", b"", 0)),
    ]));
    assert_eq!(
        failed,
        Ok(Response::Multi(vec![OpResult::Error(0), OpResult::Error(-101), OpResult::Error(-2)]))
    );
    assert_eq!(c.get("/n", false), Err(ErrorCode::NoNode));
    let mr = c.call(Request::MultiRead(vec![
        Request::GetData { path: "/m".into(), watch: false },
        Request::GetChildren { path: "/m".into(), watch: false },
        Request::GetData { path: "/nope".into(), watch: false },
    ]));
    match mr.unwrap() {
        Response::Multi(rs) => {
            assert!(matches!(&rs[0], OpResult::GetData { data: Some(d), .. } if d == b"3"));
            assert_eq!(rs[1], OpResult::GetChildren(vec!["c".into()]));
            assert_eq!(rs[2], OpResult::Error(-101));
        }
        other => panic!("{other:?}"),
    }

    // ACLs: digest, auth, NoAuth, redaction for readers without ADMIN, super.
    assert_eq!(
        c.call(Request::WhoAmI),
        Ok(Response::WhoAmI(vec![keeperkit_server::proto::ClientInfo {
            scheme: "ip".into(),
            user: "127.0.0.1".into()
        }]))
    );
    c.call(Request::Auth { auth_type: 0, scheme: "digest".into(), auth: b"u:p".to_vec() }).unwrap();
    let auth_acl =
        vec![Acl { perms: Perms::ALL, id: Id { scheme: "auth".into(), id: String::new() } }];
    let mut secret = create_req("/secret", b"s", 0);
    secret.acl = auth_acl;
    c.call(Request::Create(secret)).unwrap();
    match c.call(Request::GetAcl { path: "/secret".into() }).unwrap() {
        Response::GetAcl { acl, .. } => {
            // `auth` expands to the authenticated ids only (not the ip id).
            assert_eq!(acl.len(), 1, "{acl:?}");
            assert_eq!(
                (acl[0].id.scheme.as_str(), acl[0].id.id.as_str()),
                ("digest", "u:Jq7wMyA/w2Vd5WIDAKdu4OIIFEQ=")
            );
        }
        other => panic!("{other:?}"),
    }
    let mut d = Client::connect(srv.addr);
    // The ip id matches: restrict to digest only, then a stranger is refused.
    let digest_only = vec![Acl {
        perms: Perms(Perms::READ.0 | Perms::ADMIN.0 | Perms::WRITE.0),
        id: Id { scheme: "digest".into(), id: "u:Jq7wMyA/w2Vd5WIDAKdu4OIIFEQ=".into() },
    }];
    c.call(Request::SetAcl { path: "/secret".into(), acl: digest_only, version: 0 }).unwrap();
    assert_eq!(d.get("/secret", false), Err(ErrorCode::NoAuth));
    assert_eq!(d.set("/secret", b"", -1), Err(ErrorCode::NoAuth));
    assert_eq!(d.call(Request::GetAcl { path: "/secret".into() }), Err(ErrorCode::NoAuth));
    assert_eq!(
        c.call(Request::SetAcl { path: "/secret".into(), acl: vec![], version: 1 }),
        Err(ErrorCode::InvalidAcl)
    );
    d.call(Request::Auth { auth_type: 0, scheme: "digest".into(), auth: b"super:test".to_vec() })
        .unwrap();
    assert!(d.get("/secret", false).is_ok(), "super reads everything");
    assert_eq!(
        c.call(Request::Auth { auth_type: 0, scheme: "nope".into(), auth: vec![] }),
        Err(ErrorCode::AuthFailed)
    );
    assert!(c.frame().is_none(), "a failed auth closes the connection");

    // ClickHouse Keeper extensions.
    assert!(
        matches!(d.get("/keeper/feature_flags", false), Ok(Response::GetData { data: Some(f), .. }) if f == [0x1f])
    );
    let cine = Request::CreateIfNotExists(create_req("/m", b"", 0));
    assert_eq!(d.call(cine), Ok(Response::Create { path: "/m".into() }));
    assert_eq!(
        d.call(Request::CheckNotExists { path: "/m".into(), version: -1 }),
        Err(ErrorCode::NodeExists)
    );
    assert_eq!(
        d.call(Request::CheckNotExists { path: "/zz".into(), version: -1 }),
        Ok(Response::Empty)
    );
    d.create("/m/c/e", b"", create_mode::EPHEMERAL).unwrap();
    match d.call(Request::FilteredList { path: "/m/c".into(), watch: false, list_type: 2 }).unwrap()
    {
        Response::Children2 { children, .. } => assert_eq!(children, vec!["e"]),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        d.call(Request::RemoveRecursive { path: "/m".into(), limit: 2 }),
        Err(ErrorCode::NotEmpty)
    );
    assert_eq!(
        d.call(Request::RemoveRecursive { path: "/m".into(), limit: 100 }),
        Ok(Response::Empty)
    );
    assert_eq!(d.get("/m", false), Err(ErrorCode::NoNode));
    // TTL and container nodes.
    let ttl = CreateRequest {
        ttl: Some(60_000),
        ..create_req("/t", b"", create_mode::PERSISTENT_WITH_TTL)
    };
    assert!(d.call(Request::CreateTtl(ttl)).is_ok());
    let bad_ttl =
        CreateRequest { ttl: Some(0), ..create_req("/t2", b"", create_mode::PERSISTENT_WITH_TTL) };
    assert_eq!(d.call(Request::CreateTtl(bad_ttl)), Err(ErrorCode::BadArguments));
    assert!(d
        .call(Request::CreateContainer(create_req("/ctr", b"", create_mode::CONTAINER)))
        .is_ok());
    assert_eq!(
        d.call(Request::Reconfig {
            joining: None,
            leaving: None,
            new_members: None,
            cur_config_id: -1
        }),
        Err(ErrorCode::ReconfigDisabled)
    );
    d.close();
    srv.stop();
}

#[test]
fn watches_fire_once_and_before_the_data_they_announce() {
    let dir = tempfile::tempdir().unwrap();
    let srv = TestServer::start(dir.path(), 22102, |_| {});
    let mut a = Client::connect(srv.addr);
    let mut b = Client::connect(srv.addr);
    b.create("/w", b"0", 0).unwrap();
    a.get("/w", true).unwrap();
    assert_eq!(a.call(Request::Exists { path: "/x".into(), watch: true }), Err(ErrorCode::NoNode));
    a.call(Request::GetChildren { path: "/".into(), watch: true }).unwrap();
    a.call(Request::AddWatch { path: "/r".into(), mode: 1 }).unwrap();
    let set = stat_of(&b.set("/w", b"1", -1).unwrap());
    b.create("/x", b"", 0).unwrap();
    b.create("/r", b"", 0).unwrap();
    b.create("/r/deep", b"", 0).unwrap();
    // Events are only for connections that may read the node: none for this one.
    let mut hidden = create_req("/r/hidden", b"", 0);
    hidden.acl = vec![Acl { perms: Perms::ADMIN, id: Id::anyone() }];
    b.call(Request::Create(hidden)).unwrap();
    b.set("/w", b"2", -1).unwrap();
    // a's next reply shows /w = 2: every event must have arrived before it.
    assert!(
        matches!(a.get("/w", false).unwrap(), Response::GetData { data: Some(d), .. } if d == b"2")
    );
    let evs: Vec<(i32, String)> =
        a.events.iter().map(|(_, e)| (e.event_type, e.path.clone())).collect();
    assert_eq!(
        evs,
        vec![
            (event_type::NODE_DATA_CHANGED, "/w".into()),
            (event_type::NODE_CREATED, "/x".into()),
            (event_type::NODE_CHILDREN_CHANGED, "/".into()),
            (event_type::NODE_CREATED, "/r".into()),
            (event_type::NODE_CREATED, "/r/deep".into()),
        ],
        "one-shot watches fired once; the recursive one keeps firing"
    );
    assert_eq!(a.events[0].0, -1, "ZooKeeper 3.8 sends events with zxid -1");
    // setWatches after a reconnect: changes after relativeZxid fire at once.
    let mut a2 = Client::connect(srv.addr);
    a2.call(Request::SetWatches {
        relative_zxid: set.mzxid,
        data: vec!["/w".into(), "/gone".into()],
        exist: vec!["/x".into()],
        child: vec![],
    })
    .unwrap();
    let evs: Vec<(i32, String)> =
        a2.events.iter().map(|(_, e)| (e.event_type, e.path.clone())).collect();
    assert_eq!(
        evs,
        vec![
            (event_type::NODE_DATA_CHANGED, "/w".into()),
            (event_type::NODE_DELETED, "/gone".into()),
            (event_type::NODE_CREATED, "/x".into()),
        ]
    );
    assert_eq!(
        a2.call(Request::CheckWatches { path: "/w".into(), watcher_type: 2 }),
        Err(ErrorCode::NoWatcher)
    );
    a2.get("/w", true).unwrap();
    assert_eq!(
        a2.call(Request::CheckWatches { path: "/w".into(), watcher_type: 2 }),
        Ok(Response::Empty)
    );
    assert_eq!(
        a2.call(Request::RemoveWatches { path: "/w".into(), watcher_type: 3 }),
        Ok(Response::Empty)
    );
    // Ephemerals go with their session, and their watchers hear it.
    b.create("/e", b"", create_mode::EPHEMERAL).unwrap();
    a.get("/e", true).unwrap();
    let before = a.events.len();
    b.close();
    assert_eq!(a.call(Request::Exists { path: "/e".into(), watch: false }), Err(ErrorCode::NoNode));
    assert_eq!(a.events[before].1.event_type, event_type::NODE_DELETED);
    srv.stop();
}

/// A closing session's ephemerals go in the order of ZooKeeper's per-session
/// `HashSet`: here three of them created by one multi share a czxid, and /t/e19 and
/// /t/e0 share a bucket, where the one added first comes first. ZooKeeper 3.8 sent
/// these events in this order (kazoo, the same requests).
#[test]
fn closing_session_deletes_ephemerals_in_zookeeper_order() {
    let dir = tempfile::tempdir().unwrap();
    let srv = TestServer::start(dir.path(), 22113, |_| {});
    let mut a = Client::connect(srv.addr);
    let mut b = Client::connect(srv.addr);
    b.create("/t", b"", 0).unwrap();
    let eph = create_mode::EPHEMERAL;
    a.call(Request::Multi(vec![
        Request::Create(create_req("/t/e19", b"", eph)),
        Request::Create(create_req("/t/e0", b"", eph)),
        Request::Create(create_req("/t/e1", b"", eph)),
    ]))
    .unwrap();
    a.create("/t/e16", b"", eph).unwrap();
    for p in ["/t/e0", "/t/e1", "/t/e16", "/t/e19"] {
        b.call(Request::Exists { path: p.into(), watch: true }).unwrap();
    }
    a.close();
    // The events come before the reply to this read, which follows the close.
    assert_eq!(b.get("/t", false).map(|_| ()), Ok(()));
    let deleted: Vec<&str> = b
        .events
        .iter()
        .inspect(|(_, e)| assert_eq!(e.event_type, event_type::NODE_DELETED))
        .map(|(_, e)| e.path.as_str())
        .collect();
    assert_eq!(deleted, ["/t/e1", "/t/e16", "/t/e19", "/t/e0"]);
    srv.stop();
}

#[test]
fn sessions_survive_restarts_and_expire() {
    let dir = tempfile::tempdir().unwrap();
    let srv = TestServer::start(dir.path(), 22103, |_| {});
    let mut c = Client::connect(srv.addr);
    c.create("/e", b"", create_mode::EPHEMERAL).unwrap();
    c.create("/p", b"kept", 0).unwrap();
    let (sid, pw) = (c.conn.session_id, c.conn.passwd.clone());
    drop(c);
    srv.stop();
    let srv = TestServer::start(dir.path(), 22103, |_| {});
    assert!(
        Client::resume(srv.addr, sid, vec![1; 16], 5000).is_err(),
        "a wrong password is refused"
    );
    let mut c =
        Client::resume(srv.addr, sid, pw.clone(), 5000).expect("the session survived the restart");
    assert!(c.get("/e", false).is_ok());
    assert!(
        matches!(c.get("/p", false), Ok(Response::GetData { data: Some(d), .. }) if d == b"kept")
    );
    // Stop pinging: the session expires (timeout 400 ms), its ephemeral goes.
    let mut other = Client::connect(srv.addr);
    let timeout = Client::resume(srv.addr, sid, pw.clone(), 400).unwrap();
    drop(c);
    let start = Instant::now();
    loop {
        if other.call(Request::Exists { path: "/e".into(), watch: false }) == Err(ErrorCode::NoNode)
        {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "the session did not expire");
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(timeout);
    assert!(Client::resume(srv.addr, sid, pw, 5000).is_err(), "an expired session is refused");
    srv.stop();
}

#[test]
fn concurrent_writes_share_fsyncs() {
    let dir = tempfile::tempdir().unwrap();
    let srv = TestServer::start(dir.path(), 22104, |_| {});
    let addr = srv.addr;
    let threads: Vec<_> = (0..8)
        .map(|t| {
            std::thread::spawn(move || {
                let mut c = Client::connect(addr);
                let n = 40;
                for i in 0..n {
                    c.send(&Request::Create(create_req(&format!("/t{t}-{i}"), &[0; 64], 0)));
                }
                for _ in 0..n {
                    let (_, r) = c.reply();
                    assert!(r.is_ok(), "{r:?}");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let mntr = srv.word("mntr");
    let get = |k: &str| -> u64 {
        mntr.lines().find_map(|l| l.strip_prefix(&format!("{k}\t"))).unwrap().parse().unwrap()
    };
    let (syncs, txns) = (get("zk_fsync_count"), get("zk_txn_count"));
    assert!(txns >= 320, "{mntr}");
    assert!(syncs < txns / 2, "group commit shares fsyncs: {syncs} syncs for {txns} txns");
    srv.stop();
}

#[test]
fn hostile_clients_are_cut_off_and_the_server_carries_on() {
    let dir = tempfile::tempdir().unwrap();
    let srv = TestServer::start(dir.path(), 22105, |c| c.max_client_cnxns = 6);
    let eof = |s: &mut TcpStream| {
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut b = [0u8; 256];
        loop {
            match s.read(&mut b) {
                Ok(0) => return true,
                Ok(_) => continue,
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
                Err(_) => return false,
            }
        }
    };
    // An oversized length.
    let mut s = TcpStream::connect(srv.addr).unwrap();
    s.write_all(&0x7fff_fff0_i32.to_be_bytes()).unwrap();
    assert!(eof(&mut s));
    // A negative length after a good connect.
    let mut c = Client::connect(srv.addr);
    c.s.write_all(&(-5i32).to_be_bytes()).unwrap();
    assert!(c.frame().is_none());
    // Garbage that is a frame but no connect request.
    let mut s = TcpStream::connect(srv.addr).unwrap();
    s.write_all(&[0, 0, 0, 3, 1, 2, 3]).unwrap();
    assert!(eof(&mut s));
    // An unknown opcode: answered Unimplemented, then closed.
    let mut c = Client::connect(srv.addr);
    let mut f = Vec::new();
    f.extend_from_slice(&8i32.to_be_bytes());
    f.extend_from_slice(&7i32.to_be_bytes());
    f.extend_from_slice(&4242i32.to_be_bytes());
    c.s.write_all(&f).unwrap();
    let frame = c.frame().unwrap();
    assert_eq!(&frame[12..16], &ErrorCode::Unimplemented.as_i32().to_be_bytes());
    assert!(c.frame().is_none());
    // Slow loris: half a connect request, never finished: cut after the handshake time.
    let mut s = TcpStream::connect(srv.addr).unwrap();
    s.write_all(&[0, 0, 0, 44, 0]).unwrap();
    let t = Instant::now();
    assert!(eof(&mut s));
    assert!(t.elapsed() < Duration::from_secs(5));
    // Half-open: connected, then gone without a word; and too many connections.
    let held: Vec<Client> = (0..6).map(|_| Client::connect(srv.addr)).collect();
    let mut extra = TcpStream::connect(srv.addr).unwrap();
    assert!(eof(&mut extra), "the 7th connection from one address is refused");
    drop(held);
    std::thread::sleep(Duration::from_millis(100));
    // The server still serves.
    assert_eq!(srv.word("ruok"), "imok");
    let mut ok = Client::connect(srv.addr);
    assert!(ok.create("/alive", b"", 0).is_ok());
    srv.stop();
}

#[test]
fn a_client_that_does_not_read_is_held_back_and_others_are_served() {
    let dir = tempfile::tempdir().unwrap();
    let srv = TestServer::start(dir.path(), 22106, |_| {});
    let mut c = Client::connect(srv.addr);
    c.create("/big", &vec![7u8; 256 * 1024], 0).unwrap();
    // 60 reads of 256 KiB sent without reading a reply: 15 MiB of answers, beyond
    // what the server queues for one connection before it stops reading.
    let n = 60;
    for _ in 0..n {
        c.send(&Request::GetData { path: "/big".into(), watch: false });
    }
    std::thread::sleep(Duration::from_millis(300));
    let mut other = Client::connect(srv.addr);
    assert!(other.create("/other", b"", 0).is_ok(), "other clients are served meanwhile");
    for _ in 0..n {
        let (_, r) = c.reply();
        assert!(matches!(r, Ok(Response::GetData { data: Some(d), .. }) if d.len() == 256 * 1024));
    }
    assert!(c.get("/other", false).is_ok());
    srv.stop();
}

/// `globalOutstandingLimit`: clients flooding the server with pipelined writes are
/// throttled (their requests are not read while the limit's worth are in flight), so
/// what the server holds stays bounded; every request is still answered, in order,
/// and another client is served meanwhile.
#[test]
fn flooding_clients_are_throttled() {
    use keeperkit_server::proto::{decode_reply, encode_request, op, Reply, DEFAULT_MAX_FRAME};
    let limit = 8;
    let dir = tempfile::tempdir().unwrap();
    let srv = TestServer::start(dir.path(), 22116, |c| c.global_outstanding = limit);
    let n = 3000;
    let flooders: Vec<_> = (0..3)
        .map(|k| {
            let mut c = Client::connect(srv.addr);
            let path = format!("/flood{k}");
            c.create(&path, b"", 0).unwrap();
            let mut w = c.s.try_clone().unwrap();
            let writer = std::thread::spawn(move || {
                for x in 1..=n {
                    let req = Request::SetData {
                        path: path.clone(),
                        data: Some(vec![u8::try_from(k).unwrap(); 100]),
                        version: -1,
                    };
                    w.write_all(&encode_request(1000 + x, &req)).unwrap();
                }
            });
            let reader = std::thread::spawn(move || {
                let mut last = 0;
                for x in 1..=n {
                    let f = c.frame().expect("a reply");
                    match decode_reply(&f, DEFAULT_MAX_FRAME, |_| Some(op::SET_DATA)).unwrap() {
                        Reply::Response(h, Some(Response::Stat(st))) => {
                            assert_eq!((h.xid, h.err), (1000 + x, 0));
                            assert!(st.version > last, "versions grow");
                            last = st.version;
                        }
                        other => panic!("{other:?}"),
                    }
                }
                last
            });
            (writer, reader)
        })
        .collect();
    let outstanding = || {
        let m = srv.word("mntr");
        m.lines()
            .find_map(|l| l.strip_prefix("zk_outstanding_requests\t"))
            .expect("zk_outstanding_requests")
            .parse::<usize>()
            .unwrap()
    };
    let (mut max, mut samples) = (0, 0);
    let mut other = Client::connect(srv.addr);
    let mut served = None;
    while flooders.iter().any(|(_, r)| !r.is_finished()) {
        max = max.max(outstanding());
        samples += 1;
        if served.is_none() {
            let t = Instant::now();
            other.create("/other", b"", 0).unwrap();
            served = Some(t.elapsed());
        }
    }
    for (w, r) in flooders {
        w.join().unwrap();
        assert_eq!(r.join().unwrap(), n, "every setData answered once");
    }
    assert!(samples > 3, "the flood was sampled ({samples} times)");
    assert!(max <= limit, "{max} requests in flight, beyond the limit of {limit}");
    assert!(max > 0, "requests were seen in flight");
    assert!(served.unwrap() < Duration::from_secs(10), "another client waited {served:?}");
    assert_eq!(outstanding(), 0);
    srv.stop();
}

#[test]
fn http_endpoints() {
    let dir = tempfile::tempdir().unwrap();
    let srv = TestServer::start(dir.path(), 22107, |c| {
        c.http_listen = Some(std::net::SocketAddr::from(([127, 0, 0, 1], 22108)));
    });
    let get = |path: &str| -> String {
        let mut s = TcpStream::connect(("127.0.0.1", 22108)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    };
    let mut c = Client::connect(srv.addr);
    c.create("/e", b"", create_mode::EPHEMERAL).unwrap();
    c.get("/e", true).unwrap();
    assert!(get("/livez").starts_with("HTTP/1.1 200 OK"));
    let ready = get("/ready");
    assert!(ready.starts_with("HTTP/1.1 200 OK") && ready.contains("\"serving\":true"), "{ready}");
    let m = get("/metrics");
    for k in [
        "zk_znode_count 5",
        "zk_ephemerals_count 1",
        "zk_watch_count 1",
        "zk_num_alive_connections 1",
    ] {
        assert!(m.contains(k), "{k} missing in {m}");
    }
    assert!(m.contains("# TYPE zk_avg_latency gauge"));
    assert!(get("/nope").starts_with("HTTP/1.1 404"));
    // The four-letter words on the client port.
    assert_eq!(srv.word("ruok"), "imok");
    assert!(srv.word("srvr").contains("Mode: standalone"));
    assert!(srv.word("mntr").contains("zk_znode_count\t5"));
    assert!(srv.word("wchc").contains("\t/e"));
    assert!(srv.word("dump").contains("\t/e"));
    assert_eq!(srv.word("isro"), "rw");
    srv.stop();
}

#[test]
fn snapshots_in_the_background_and_a_restart_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let srv = TestServer::start(dir.path(), 22109, |c| c.snap_count = 50);
    let mut c = Client::connect(srv.addr);
    for i in 0..160 {
        c.create(&format!("/n{i}"), format!("v{i}").as_bytes(), 0).unwrap();
    }
    assert!(srv.word("csnp").trim().parse::<u64>().is_ok());
    c.close();
    let mntr = srv.word("mntr");
    srv.stop();
    assert!(mntr.contains("zk_snapshot_count\t"), "{mntr}");
    let snaps: Vec<_> = std::fs::read_dir(dir.path().join("snapshots"))
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".kks"))
        .collect();
    assert!(!snaps.is_empty(), "snapshots were written");
    let srv = TestServer::start(dir.path(), 22109, |_| {});
    let mut c = Client::connect(srv.addr);
    for i in [0, 77, 159] {
        let r = c.get(&format!("/n{i}"), false).unwrap();
        assert!(
            matches!(r, Response::GetData { data: Some(d), .. } if d == format!("v{i}").as_bytes())
        );
    }
    assert_eq!(
        c.call(Request::GetAllChildrenNumber { path: "/".into() }),
        Ok(Response::AllChildrenNumber(163))
    );
    srv.stop();
}

#[test]
fn empty_containers_and_expired_ttl_nodes_are_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let srv = TestServer::start(dir.path(), 22111, |c| c.container_check_ms = 100);
    let mut c = Client::connect(srv.addr);
    let container = |c: &mut Client, p: &str| {
        c.call(Request::CreateContainer(create_req(p, b"", create_mode::CONTAINER))).unwrap();
    };
    let ttl = |c: &mut Client, p: &str, ms: i64| {
        let r =
            CreateRequest { ttl: Some(ms), ..create_req(p, b"", create_mode::PERSISTENT_WITH_TTL) };
        c.call(Request::CreateTtl(r)).unwrap();
    };
    container(&mut c, "/emptied");
    c.create("/emptied/child", b"", 0).unwrap();
    container(&mut c, "/never-had-children");
    container(&mut c, "/still-full");
    c.create("/still-full/child", b"", 0).unwrap();
    ttl(&mut c, "/short", 300);
    ttl(&mut c, "/long", 3_600_000);
    ttl(&mut c, "/short-with-child", 300);
    c.create("/short-with-child/child", b"", 0).unwrap();
    // A watch on the container sees the server's own delete.
    assert!(c.get("/emptied", true).is_ok());
    c.delete("/emptied/child", -1).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while (c.get("/emptied", false).is_ok() || c.get("/short", false).is_ok())
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(c.get("/emptied", false), Err(ErrorCode::NoNode), "an emptied container goes");
    assert_eq!(c.get("/short", false), Err(ErrorCode::NoNode), "an expired TTL node goes");
    // Several check intervals later, the others are still there.
    std::thread::sleep(Duration::from_millis(500));
    for p in ["/never-had-children", "/still-full", "/long", "/short-with-child"] {
        assert!(c.get(p, false).is_ok(), "{p} stays");
    }
    assert!(
        c.events
            .iter()
            .any(|(_, e)| e.path == "/emptied" && e.event_type == event_type::NODE_DELETED),
        "{:?}",
        c.events
    );
    // A TTL node whose time is up goes as soon as its last child does.
    c.delete("/short-with-child/child", -1).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while c.get("/short-with-child", false).is_ok() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(c.get("/short-with-child", false), Err(ErrorCode::NoNode));
    srv.stop();
}

/// One connect with `read_only` as given; the response frame's payload.
fn connect_raw(addr: std::net::SocketAddr, read_only: Option<bool>) -> Vec<u8> {
    use keeperkit_server::proto::{encode_connect, ConnectRequest, FrameBuffer, DEFAULT_MAX_FRAME};
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let req = ConnectRequest {
        protocol_version: 0,
        last_zxid_seen: 0,
        timeout_ms: 5000,
        session_id: 0,
        passwd: vec![0; 16],
        read_only,
    };
    s.write_all(&encode_connect(&req)).unwrap();
    let mut fb = FrameBuffer::new(DEFAULT_MAX_FRAME);
    let mut buf = [0u8; 4096];
    loop {
        if let Some(f) = fb.next_frame().unwrap() {
            return f;
        }
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "a connect response");
        fb.extend(&buf[..n]);
    }
}

#[test]
fn the_connect_reply_and_half_open_connections() {
    let dir = tempfile::tempdir().unwrap();
    let srv = TestServer::start(dir.path(), 22112, |_| {});
    // ZooKeeper writes the read-only flag (false: a standalone server is never read-only)
    // only when the client sent one: 4 + 4 + 8 + (4 + 16) bytes, then 1 more.
    assert_eq!(connect_raw(srv.addr, None).len(), 36);
    for ro in [false, true] {
        let f = connect_raw(srv.addr, Some(ro));
        assert_eq!(f.len(), 37, "read-only {ro}");
        assert_eq!(f[36], 0, "a standalone server answers readOnly=false");
    }
    assert_eq!(srv.word("isro"), "rw");
    // Half-open: a client that connected, then closed its sending side. The server closes
    // the connection; the session lives on until it expires, and others are served.
    let mut c = Client::connect(srv.addr);
    c.create("/half", b"", create_mode::EPHEMERAL).unwrap();
    c.s.shutdown(std::net::Shutdown::Write).unwrap();
    assert!(c.frame().is_none(), "the server closes a connection whose client stopped sending");
    let mut other = Client::connect(srv.addr);
    assert!(other.get("/half", false).is_ok(), "the session outlives its connection");
    let deadline = Instant::now() + Duration::from_secs(20);
    while other.get("/half", false).is_ok() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(other.get("/half", false), Err(ErrorCode::NoNode), "and expires");
    srv.stop();
}
