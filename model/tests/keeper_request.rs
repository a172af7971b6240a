//! Keeper request payloads (`app_log` blobs): guards against an envelope or body that
//! Keeper could not parse, and against a decode/encode pair that changes bytes.

use keeperkit_model::keeper::{
    opnum, CreateRequest, KeeperLogEntry, KeeperRequest, KeeperTrailer, ZxidDigest,
};
use keeperkit_model::{Acl, CorruptionKind, Id, Perms};

fn hex(s: &str) -> Vec<u8> {
    let s: String = s.split_whitespace().collect();
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex")).collect()
}

/// The changelog spec's TV3: a Create of `/hello_1` by session 1, as Keeper's gtests
/// build it, with the current envelope (time 0, zxid 0, digest version 0, value 0).
const TV3_BLOB: &str = "
    0100000000000000 00000020 00000000 00000001
    00000008 2f68656c6c6f5f31 00000000 00000000 00000000
    0000000000000000 0000000000000000 00 0000000000000000";

#[test]
fn tv3_create_decodes_and_reencodes_byte_for_byte() {
    let blob = hex(TV3_BLOB);
    assert_eq!(blob.len(), 69);
    let e = KeeperLogEntry::decode(&blob).expect("TV3 decodes");
    assert_eq!(e.session_id, 1);
    assert_eq!(e.xid(), 0);
    assert_eq!(
        e.request,
        KeeperRequest::Create(CreateRequest {
            path: "/hello_1".into(),
            data: vec![],
            acls: vec![],
            flags: 0
        })
    );
    assert_eq!(e.trailer.time_ms, Some(0));
    assert_eq!(
        e.trailer.zxid_digest,
        Some(ZxidDigest { zxid: 0, digest_version: 0, digest: Some(0) })
    );
    assert_eq!(e.trailer.xid_high, None);
    assert_eq!(e.trailer.serialization_version(), 2);
    assert_eq!(e.encode(), blob);
    // The constructor builds exactly what current Keeper writes.
    let built = KeeperLogEntry::new(1, 0, e.request.clone(), 0);
    assert_eq!(built.encode(), blob);
}

fn acl(perms: i32, scheme: &str, id: &str) -> Acl {
    Acl { perms: Perms(perms), id: Id { scheme: scheme.into(), id: id.into() } }
}

fn every_request() -> Vec<KeeperRequest> {
    let create = CreateRequest {
        path: "/a/b-".into(),
        data: b"\x00\xffdata".to_vec(),
        acls: vec![acl(31, "world", "anyone"), acl(1, "digest", "u:abc=")],
        flags: 3,
    };
    vec![
        KeeperRequest::Close,
        KeeperRequest::Create(create.clone()),
        KeeperRequest::CreateIfNotExists(create.clone()),
        KeeperRequest::Remove { path: "/a".into(), version: -1 },
        KeeperRequest::Exists { path: "/a".into(), watch: true },
        KeeperRequest::Get { path: "/a".into(), watch: false },
        KeeperRequest::Set { path: "/a".into(), data: b"v".to_vec(), version: 7 },
        KeeperRequest::GetAcl { path: "/a".into() },
        KeeperRequest::SetAcl {
            path: "/a".into(),
            acls: vec![acl(3, "ip", "10.0.0.1")],
            version: 2,
        },
        KeeperRequest::SimpleList { path: "/".into(), watch: true },
        KeeperRequest::Sync { path: "/".into() },
        KeeperRequest::Heartbeat,
        KeeperRequest::List { path: "/x".into(), watch: false },
        KeeperRequest::Check { path: "/a".into(), version: 4 },
        KeeperRequest::CheckNotExists { path: "/z".into(), version: -1 },
        KeeperRequest::Multi(vec![
            KeeperRequest::Create(create),
            KeeperRequest::Remove { path: "/r".into(), version: 1 },
            KeeperRequest::RemoveRecursive { path: "/rr".into(), remove_nodes_limit: 100 },
            KeeperRequest::Set { path: "/s".into(), data: vec![], version: -1 },
            KeeperRequest::Check { path: "/c".into(), version: 0 },
            KeeperRequest::CheckNotExists { path: "/n".into(), version: -1 },
        ]),
        KeeperRequest::Multi(vec![]),
        KeeperRequest::MultiRead(vec![
            KeeperRequest::Get { path: "/g".into(), watch: false },
            KeeperRequest::Exists { path: "/e".into(), watch: false },
            KeeperRequest::SimpleList { path: "/l".into(), watch: false },
            KeeperRequest::FilteredList { path: "/f".into(), watch: false, list_type: 2 },
        ]),
        KeeperRequest::Reconfig {
            joining: "server.4=h:9234".into(),
            leaving: "2".into(),
            new_members: String::new(),
            version: -1,
        },
        KeeperRequest::Auth { auth_type: 0, scheme: "digest".into(), data: b"u:p".to_vec() },
        KeeperRequest::FilteredList { path: "/".into(), watch: true, list_type: 1 },
        KeeperRequest::RemoveRecursive { path: "/t".into(), remove_nodes_limit: u32::MAX },
        KeeperRequest::SessionId { internal_id: 5, session_timeout_ms: 30_000, server_id: 1 },
    ]
}

fn trailers() -> Vec<KeeperTrailer> {
    vec![
        // 2021: no trailer at all.
        KeeperTrailer::default(),
        // 2021–2022: time only.
        KeeperTrailer { time_ms: Some(1_700_000_000_123), ..Default::default() },
        // 2022: zxid and a zero digest version, no digest value.
        KeeperTrailer {
            time_ms: Some(5),
            zxid_digest: Some(ZxidDigest { zxid: 9, digest_version: 0, digest: None }),
            ..Default::default()
        },
        // Leader-patched with a real digest.
        KeeperTrailer {
            time_ms: Some(5),
            zxid_digest: Some(ZxidDigest { zxid: 10, digest_version: 4, digest: Some(u64::MAX) }),
            ..Default::default()
        },
        // 64-bit xid.
        KeeperTrailer {
            time_ms: Some(5),
            zxid_digest: Some(ZxidDigest { zxid: 0, digest_version: 0, digest: Some(0) }),
            xid_high: Some(1),
            tracing_context: None,
        },
        // Tracing context.
        KeeperTrailer {
            time_ms: Some(5),
            zxid_digest: Some(ZxidDigest { zxid: 0, digest_version: 0, digest: Some(0) }),
            xid_high: Some(0),
            tracing_context: Some(b"0-1-2\n42\n\n1\n".to_vec()),
        },
    ]
}

#[test]
fn every_opnum_and_trailer_round_trips() {
    for req in every_request() {
        for trailer in trailers() {
            let e = KeeperLogEntry {
                session_id: -7,
                xid_low: 0xDEAD_BEEF,
                request: req.clone(),
                trailer,
            };
            let bytes = e.encode();
            let back = KeeperLogEntry::decode(&bytes)
                .unwrap_or_else(|err| panic!("{:?} does not decode: {err}", e.request));
            assert_eq!(back, e);
            assert_eq!(back.encode(), bytes);
        }
    }
}

#[test]
fn length_field_covers_xid_opnum_and_body() {
    let e = KeeperLogEntry::new(3, 9, KeeperRequest::Sync { path: "/ab".into() }, 1);
    let b = e.encode();
    // session 8, then L = 4 + 4 + (4 + 3).
    assert_eq!(&b[8..12], &15i32.to_be_bytes());
    assert_eq!(b.len(), 8 + 4 + 15 + 8 + 17);
}

#[test]
fn unknown_and_misplaced_opnums_are_errors() {
    for op in [15i32, 17, 19, 21, 504, 505, 506, 507, 12345] {
        let mut b = 1i64.to_le_bytes().to_vec();
        b.extend_from_slice(&8i32.to_be_bytes());
        b.extend_from_slice(&0i32.to_be_bytes());
        b.extend_from_slice(&op.to_be_bytes());
        let err = KeeperLogEntry::decode(&b).expect_err("unknown opnum");
        assert_eq!(err.kind, CorruptionKind::UnknownTxnType(op));
    }
    // A Get inside a write multi is refused, as is a multi inside a multi.
    for (outer, inner) in [(opnum::MULTI, opnum::GET), (opnum::MULTI, opnum::MULTI)] {
        let mut body = Vec::new();
        body.extend_from_slice(&inner.to_be_bytes());
        body.push(0);
        body.extend_from_slice(&(-1i32).to_be_bytes());
        body.extend_from_slice(&[0, 0, 0, 1, b'/', 0]);
        let mut b = 1i64.to_le_bytes().to_vec();
        b.extend_from_slice(&(i32::try_from(body.len()).expect("small") + 8).to_be_bytes());
        b.extend_from_slice(&0i32.to_be_bytes());
        b.extend_from_slice(&outer.to_be_bytes());
        b.extend_from_slice(&body);
        let err = KeeperLogEntry::decode(&b).expect_err("misplaced");
        assert_eq!(err.kind.code(), "bad_request", "{err}");
    }
}

#[test]
fn truncations_are_errors_not_panics() {
    let e = KeeperLogEntry::new(
        1,
        2,
        KeeperRequest::Multi(vec![KeeperRequest::Remove { path: "/x".into(), version: 1 }]),
        3,
    );
    let b = e.encode();
    for n in 0..b.len() {
        // Cuts inside the request are errors; cuts inside the trailer are either errors
        // or an older trailer version.
        if let Ok(short) = KeeperLogEntry::decode(&b[..n]) {
            assert!(n >= 8 + 4 + 8, "cut at {n} decoded");
            assert_eq!(short.request, e.request);
        }
    }
}

#[test]
fn names_and_paths_for_log_listings() {
    let reqs = every_request();
    assert_eq!(reqs[1].name(), "Create");
    assert_eq!(reqs[1].paths(), vec!["/a/b-"]);
    let multi = reqs.iter().find(|r| r.opnum() == opnum::MULTI).expect("multi");
    assert_eq!(multi.paths(), vec!["/a/b-", "/r", "/rr", "/s", "/c", "/n"]);
    assert!(reqs.iter().all(|r| !r.name().is_empty()));
    assert!(KeeperRequest::Close.paths().is_empty());
}
