use super::*;
use keeperkit_model::{Acl, Id, Perms, Stat};

fn stat(n: i64) -> Stat {
    Stat {
        czxid: n,
        mzxid: n + 1,
        ctime: n + 2,
        mtime: n + 3,
        version: 4,
        cversion: 5,
        aversion: 6,
        ephemeral_owner: n + 7,
        data_length: 8,
        num_children: 9,
        pzxid: n + 10,
    }
}

fn create(flags: i32, ttl: Option<i64>) -> CreateRequest {
    CreateRequest {
        path: "/a/b".into(),
        data: Some(b"xyz".to_vec()),
        acl: vec![Acl { perms: Perms::ALL, id: Id::anyone() }],
        flags,
        ttl,
    }
}

fn every_request() -> Vec<Request> {
    let p = || "/p".to_string();
    vec![
        Request::Create(create(0, None)),
        Request::Create2(create(3, None)),
        Request::CreateContainer(create(4, None)),
        Request::CreateTtl(create(5, Some(1000))),
        Request::CreateIfNotExists(create(0, None)),
        Request::Delete { path: p(), version: -1 },
        Request::DeleteContainer { path: p() },
        Request::Exists { path: p(), watch: true },
        Request::GetData { path: p(), watch: false },
        Request::SetData { path: p(), data: None, version: 3 },
        Request::GetAcl { path: p() },
        Request::SetAcl { path: p(), acl: Acl::open_unsafe(), version: 0 },
        Request::GetChildren { path: p(), watch: true },
        Request::GetChildren2 { path: p(), watch: false },
        Request::Sync { path: p() },
        Request::Ping,
        Request::Check { path: p(), version: 2 },
        Request::Multi(vec![
            Request::Create(create(1, None)),
            Request::Check { path: p(), version: 1 },
            Request::Delete { path: p(), version: 0 },
            Request::SetData { path: p(), data: Some(vec![1]), version: -1 },
        ]),
        Request::MultiRead(vec![
            Request::GetData { path: p(), watch: false },
            Request::GetChildren { path: p(), watch: false },
        ]),
        Request::Reconfig {
            joining: None,
            leaving: Some("2".into()),
            new_members: None,
            cur_config_id: -1,
        },
        Request::CheckWatches { path: p(), watcher_type: 3 },
        Request::RemoveWatches { path: p(), watcher_type: 1 },
        Request::Auth { auth_type: 0, scheme: "digest".into(), auth: b"u:p".to_vec() },
        Request::SetWatches {
            relative_zxid: 9,
            data: vec!["/a".into()],
            exist: vec![],
            child: vec!["/b".into(), "/c".into()],
        },
        Request::SetWatches2 {
            relative_zxid: 9,
            data: vec![],
            exist: vec!["/x".into()],
            child: vec![],
            persistent: vec!["/p".into()],
            persistent_recursive: vec!["/r".into()],
        },
        Request::Sasl { token: vec![1, 2] },
        Request::GetEphemerals { prefix: "/e".into() },
        Request::GetAllChildrenNumber { path: p() },
        Request::AddWatch { path: p(), mode: 1 },
        Request::WhoAmI,
        Request::CloseSession,
        Request::FilteredList { path: p(), watch: true, list_type: 2 },
        Request::CheckNotExists { path: p(), version: -1 },
        Request::RemoveRecursive { path: p(), limit: 100 },
    ]
}

#[test]
fn every_request_round_trips() {
    for (i, req) in every_request().into_iter().enumerate() {
        let bytes = encode_request(i32::try_from(i).unwrap(), &req);
        let mut fb = FrameBuffer::new(DEFAULT_MAX_FRAME);
        fb.extend(&bytes);
        let payload = fb.next_frame().unwrap().unwrap();
        let (hdr, back) = decode_request(&payload, DEFAULT_MAX_FRAME).unwrap();
        assert_eq!(hdr, RequestHeader { xid: i32::try_from(i).unwrap(), op: req.op() });
        assert_eq!(back, req);
        assert_eq!(fb.pending(), 0);
    }
}

#[test]
fn every_response_round_trips() {
    let cases = vec![
        (op::DELETE, Response::Empty),
        (op::CREATE, Response::Create { path: "/a0000000001".into() }),
        (op::CREATE2, Response::Create2 { path: "/a".into(), stat: stat(1) }),
        (op::CREATE_TTL, Response::Create2 { path: "/t".into(), stat: stat(2) }),
        (op::EXISTS, Response::Stat(stat(3))),
        (op::GET_DATA, Response::GetData { data: None, stat: stat(4) }),
        (op::GET_DATA, Response::GetData { data: Some(vec![0; 5]), stat: stat(4) }),
        (op::GET_ACL, Response::GetAcl { acl: Acl::open_unsafe(), stat: stat(5) }),
        (op::GET_CHILDREN, Response::Children(vec!["a".into(), "b".into()])),
        (op::GET_CHILDREN2, Response::Children2 { children: vec![], stat: stat(6) }),
        (op::SYNC, Response::Sync { path: "/".into() }),
        (
            op::MULTI,
            Response::Multi(vec![
                OpResult::Create { path: "/x".into() },
                OpResult::Create2 { path: "/y".into(), stat: stat(7) },
                OpResult::Delete,
                OpResult::Check,
                OpResult::SetData(stat(8)),
                OpResult::Error(-101),
            ]),
        ),
        (
            op::MULTI_READ,
            Response::Multi(vec![
                OpResult::GetData { data: Some(b"v".to_vec()), stat: stat(9) },
                OpResult::GetChildren(vec!["c".into()]),
                OpResult::Error(-101),
            ]),
        ),
        (op::GET_EPHEMERALS, Response::Ephemerals(vec!["/e/1".into()])),
        (op::GET_ALL_CHILDREN_NUMBER, Response::AllChildrenNumber(42)),
        (
            op::WHO_AM_I,
            Response::WhoAmI(vec![ClientInfo { scheme: "ip".into(), user: "127.0.0.1".into() }]),
        ),
    ];
    for (i, (opcode, resp)) in cases.into_iter().enumerate() {
        let x = i32::try_from(i).unwrap();
        let bytes = encode_reply(ReplyHeader { xid: x, zxid: 77, err: 0 }, Some(&resp));
        let reply = decode_reply(&bytes[4..], DEFAULT_MAX_FRAME, |got| {
            assert_eq!(got, x);
            Some(opcode)
        })
        .unwrap();
        assert_eq!(reply, Reply::Response(ReplyHeader { xid: x, zxid: 77, err: 0 }, Some(resp)));
    }
}

#[test]
fn events_errors_and_connects_round_trip() {
    let ev = WatcherEvent { event_type: event_type::NODE_DELETED, state: 3, path: "/w".into() };
    let bytes = encode_event(12, &ev);
    let r = decode_reply(&bytes[4..], DEFAULT_MAX_FRAME, |_| None).unwrap();
    assert_eq!(r, Reply::Event(ReplyHeader { xid: -1, zxid: 12, err: 0 }, ev));

    let bytes = encode_reply(ReplyHeader { xid: 5, zxid: 1, err: -101 }, None);
    let r = decode_reply(&bytes[4..], DEFAULT_MAX_FRAME, |_| Some(op::GET_DATA)).unwrap();
    assert_eq!(r, Reply::Response(ReplyHeader { xid: 5, zxid: 1, err: -101 }, None));

    let bytes = encode_reply(ReplyHeader { xid: xid::PING, zxid: 1, err: 0 }, None);
    let r = decode_reply(&bytes[4..], DEFAULT_MAX_FRAME, |_| None).unwrap();
    assert_eq!(r, Reply::Response(ReplyHeader { xid: -2, zxid: 1, err: 0 }, Some(Response::Empty)));

    for ro in [None, Some(false), Some(true)] {
        let c = ConnectRequest {
            protocol_version: 0,
            last_zxid_seen: 5,
            timeout_ms: 30_000,
            session_id: 0x100,
            passwd: vec![7; 16],
            read_only: ro,
        };
        let b = encode_connect(&c);
        assert_eq!(ConnectRequest::decode(&b[4..], DEFAULT_MAX_FRAME).unwrap(), c);
        let s = ConnectResponse {
            protocol_version: 0,
            timeout_ms: 4000,
            session_id: 0x100,
            passwd: vec![1; 16],
            read_only: ro,
        };
        let b = encode_connect_response(&s);
        assert_eq!(ConnectResponse::decode(&b[4..], DEFAULT_MAX_FRAME).unwrap(), s);
    }
}

#[test]
fn hostile_frames_are_errors() {
    let mut fb = FrameBuffer::new(100);
    fb.extend(&[0x7f, 0xff, 0xff, 0xff]);
    assert!(matches!(fb.next_frame(), Err(ProtoError::FrameLength { .. })));
    let mut fb = FrameBuffer::new(100);
    fb.extend(&[0xff, 0xff, 0xff, 0xff]);
    assert!(matches!(fb.next_frame(), Err(ProtoError::FrameLength { len: -1, .. })));
    let mut fb = FrameBuffer::new(100);
    fb.extend(&[0, 0, 0, 8, 1, 2]);
    assert_eq!(fb.next_frame().unwrap(), None);
    fb.extend(&[3, 4, 5, 6, 7, 8, 0, 0]);
    assert_eq!(fb.next_frame().unwrap(), Some(vec![1, 2, 3, 4, 5, 6, 7, 8]));
    assert_eq!(fb.next_frame().unwrap(), None);

    // Unknown opcode: the header survives so the server can answer the xid.
    let mut w = Writer::new();
    w.i32(9);
    w.i32(4242);
    let (hdr, e) = decode_request(w.as_slice(), 100).unwrap_err();
    assert_eq!(hdr, Some(RequestHeader { xid: 9, op: 4242 }));
    assert_eq!(e, ProtoError::UnknownOp(4242));

    // A vector count far beyond the bytes present is refused before allocating.
    let mut w = Writer::new();
    w.i32(1);
    w.i32(op::SET_WATCHES);
    w.i64(0);
    w.i32(0x0fff_ffff);
    assert!(decode_request(w.as_slice(), DEFAULT_MAX_FRAME).is_err());

    // A read op inside a write multi is refused.
    let mut w = Writer::new();
    w.i32(1);
    w.i32(op::MULTI);
    w.i32(op::GET_DATA);
    w.bool(false);
    w.i32(-1);
    let (_, e) = decode_request(w.as_slice(), DEFAULT_MAX_FRAME).unwrap_err();
    assert_eq!(e, ProtoError::NotInMulti { op: op::GET_DATA, outer: op::MULTI });

    // Every prefix of every request either decodes or is an error (no panic).
    for req in every_request() {
        let bytes = encode_request(1, &req);
        for n in 4..bytes.len() {
            let _ = decode_request(&bytes[4..n], DEFAULT_MAX_FRAME);
        }
    }
}
