//! ClickHouse Keeper snapshot bodies V0–V8 in both containers: guards against a body
//! Keeper cannot load (wrong field order or width per version), a round trip that
//! changes bytes, and a digest Keeper would disagree with.

use keeperkit_model::keeper::nuraft::{ClusterConfig, ServerConfig, SnapshotMeta};
use keeperkit_model::keeper::{digest_version, KeeperStat};
use keeperkit_model::{Acl, CorruptionKind, Id, Perms};
use keeperkit_snapshot::clickhouse::container::{METHOD_LZ4, METHOD_NONE, METHOD_ZSTD};
use keeperkit_snapshot::clickhouse::{
    check_contents, encode_snapshot, list_snapshots, parse_snapshot_name, read_snapshot_bytes,
    write_body, write_snapshot, Container, OwnedNode, ReadOptions, SessionRecord, Severity,
    SnapshotContents, SnapshotHeader, WriteOptions,
};
use keeperkit_snapshot::SnapshotError;
use keeperkit_vfs::{FileSystem, StdFs};

fn hex(s: &str) -> Vec<u8> {
    let s: String = s.split_whitespace().collect();
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex")).collect()
}

fn node(path: &str, data: &[u8], acl_id: u64, stat: KeeperStat, seq: i64) -> OwnedNode {
    OwnedNode { path: path.into(), data: data.to_vec(), acl_id, stat, seq_num: seq, ttl_ms: None }
}

fn header(idx: u64) -> SnapshotHeader {
    SnapshotHeader {
        version: 6,
        meta: SnapshotMeta::new(idx, 1),
        zxid: Some(i64::try_from(idx).expect("small")),
        digest_version: 0,
        digest: None,
        session_id_counter: 1,
    }
}

/// The example of docs/formats/clickhouse.md, "Example snapshot": 257 bytes, V6, `/` and `/keeper` only.
#[test]
fn spec_v6_example_body_byte_for_byte() {
    let mut c = SnapshotContents::new(header(100));
    c.nodes.push(node("/", b"", 0, KeeperStat { num_children: 1, ..Default::default() }, 0));
    c.nodes.push(node("/keeper", b"", 0, KeeperStat::default(), 0));
    let mut want = hex("06 32 02 6400000000000000 0100000000000000 0000000000000000
         0000000000000000 0000000000000000 00 00000000 00000000
         6400000000000000 00 0100000000000000 0000000000000000 0200000000000000");
    for (path, children) in [("/", 1u8), ("/keeper", 0)] {
        want.push(u8::try_from(path.len()).expect("short"));
        want.extend_from_slice(path.as_bytes());
        want.push(0); // data
        want.extend_from_slice(&[0; 8]); // acl_id
        want.extend_from_slice(&[0; 32 + 12 + 8]);
        want.extend_from_slice(&[children, 0, 0, 0]);
        want.extend_from_slice(&[0; 8 + 4]);
    }
    want.extend_from_slice(&[0; 8]); // sessions
    assert_eq!(want.len(), 257);
    let body = write_body(&c, 6, None).expect("body");
    assert_eq!(body, want);
    let mut back = SnapshotContents::new(header(0));
    let file = encode_snapshot(&c, WriteOptions::default()).expect("file");
    assert_eq!(&file[..4], &[0x28, 0xB5, 0x2F, 0xFD]);
    let info =
        read_snapshot_bytes("s".as_ref(), &file, &mut back, ReadOptions::default()).expect("read");
    assert_eq!(info.body_len, 257);
    assert_eq!(back, c);
}

fn rich(version: u8) -> SnapshotContents {
    let mut c = SnapshotContents::new(SnapshotHeader {
        version,
        meta: SnapshotMeta {
            kind: 2,
            last_log_idx: 500,
            last_log_term: 7,
            size: 0,
            config: ClusterConfig {
                log_idx: 3,
                prev_log_idx: 1,
                async_replication: 1,
                user_ctx: vec![],
                servers: vec![ServerConfig {
                    id: 1,
                    dc_id: 0,
                    endpoint: "k1:9234".into(),
                    aux: String::new(),
                    flags: 0,
                    priority: 1,
                }],
            },
        },
        zxid: Some(480),
        digest_version: 0,
        digest: None,
        session_id_counter: 9,
    });
    let acl = |p: i32, s: &str, i: &str| Acl {
        perms: Perms(p),
        id: Id { scheme: s.into(), id: i.into() },
    };
    c.acls.push((1, vec![acl(31, "digest", "user1:XDkd2dsEuhc9ImU3q8pa8UOdtpI=")]));
    c.acls.push((2, vec![acl(1, "world", "anyone"), acl(29, "ip", "10.0.0.0/8")]));
    let st = |cz: i64, ch: i32, owner: i64| KeeperStat {
        czxid: cz,
        mzxid: cz + 1,
        ctime: 1_700_000_000_000 + cz,
        mtime: 1_700_000_000_500 + cz,
        version: 2,
        cversion: ch * 2,
        aversion: 1,
        ephemeral_owner: owner,
        num_children: ch,
        pzxid: cz + 3,
    };
    c.nodes.push(node("/", b"", 0, st(0, 3, 0), 0));
    c.nodes.push(node("/keeper", b"", 0, KeeperStat::default(), 0));
    c.nodes.push(node("/app", b"\x00\x01binary\xff", 1, st(10, 2, 0), 5));
    c.nodes.push(node("/app/lock-0000000004", b"", 2, st(20, 0, 7), 0));
    c.nodes.push(node("/app/conf", &vec![b'v'; 3000], 0, st(30, 0, 0), 0));
    c.nodes.push(node(
        "/big-seq",
        b"",
        0,
        st(40, 0, 0),
        if version >= 7 { 3_000_000_000 } else { 12 },
    ));
    if version >= 8 {
        let mut t = node("/ttl", b"t", 0, st(50, 0, 0), 0);
        t.ttl_ms = Some(60_000);
        c.nodes.push(t);
        c.nodes[0].stat.num_children = 4;
    }
    c.sessions.push(SessionRecord {
        id: 7,
        timeout_ms: 30_000,
        auths: vec![Id { scheme: "digest".into(), id: "user1:x".into() }],
    });
    c.sessions.push(SessionRecord { id: 8, timeout_ms: 10_000, auths: vec![] });
    c.cluster_config = Some(c.header.meta.config.clone());
    c
}

/// read → write → identical, for V6/V7/V8 in every container.
#[test]
fn round_trips_are_byte_exact_in_every_version_and_container() {
    for version in [6, 7, 8] {
        for container in [
            Container::Zstd,
            Container::Blocks(METHOD_NONE),
            Container::Blocks(METHOD_LZ4),
            Container::Blocks(METHOD_ZSTD),
        ] {
            let c = rich(version);
            let opts = WriteOptions { version, container, ..WriteOptions::default() };
            let bytes = encode_snapshot(&c, opts).expect("encode");
            let mut back = SnapshotContents::new(header(0));
            let info = read_snapshot_bytes("s".as_ref(), &bytes, &mut back, ReadOptions::default())
                .unwrap_or_else(|e| panic!("V{version} {container:?}: {e}"));
            assert_eq!(info.container, container);
            assert_eq!(info.header.version, version);
            assert_eq!(back, c, "V{version} {container:?}");
            assert_eq!(
                encode_snapshot(&back, opts).expect("again"),
                bytes,
                "V{version} {container:?}"
            );
            assert!(info.counts.has_cluster_config);
            assert_eq!(info.counts.nodes, c.nodes.len() as u64);
        }
    }
}

/// Encodes an old-version body by the spec's field lists (V0–V5), independently of
/// the crate's writer, to check the reader.
fn old_body(c: &SnapshotContents, version: u8) -> Vec<u8> {
    fn var(out: &mut Vec<u8>, mut v: u64) {
        loop {
            let b = u8::try_from(v & 0x7F).expect("7 bits");
            v >>= 7;
            if v == 0 {
                out.push(b);
                return;
            }
            out.push(b | 0x80);
        }
    }
    fn s(out: &mut Vec<u8>, b: &[u8]) {
        var(out, b.len() as u64);
        out.extend_from_slice(b);
    }
    let mut o = vec![version];
    let meta = c.header.meta.encode();
    s(&mut o, &meta);
    if version >= 5 {
        o.extend_from_slice(&c.header.zxid.unwrap_or(0).to_le_bytes());
        o.push(0);
    }
    o.extend_from_slice(&c.header.session_id_counter.to_le_bytes());
    let acls = |o: &mut Vec<u8>, l: &[Acl]| {
        o.extend_from_slice(&(l.len() as u64).to_le_bytes());
        for a in l {
            o.extend_from_slice(&a.perms.0.to_le_bytes());
            s(o, a.id.scheme.as_bytes());
            s(o, a.id.id.as_bytes());
        }
    };
    if version >= 1 {
        o.extend_from_slice(&(c.acls.len() as u64).to_le_bytes());
        for (id, l) in &c.acls {
            o.extend_from_slice(&id.to_le_bytes());
            acls(&mut o, l);
        }
    }
    o.extend_from_slice(&(c.nodes.len() as u64).to_le_bytes());
    for n in &c.nodes {
        s(&mut o, n.path.as_bytes());
        s(&mut o, &n.data);
        if version == 0 {
            let l = c
                .acls
                .iter()
                .find(|(id, _)| *id == n.acl_id)
                .map(|(_, l)| l.clone())
                .unwrap_or_default();
            acls(&mut o, &l);
        } else {
            o.extend_from_slice(&n.acl_id.to_le_bytes());
            o.push(u8::from(n.path.ends_with("0004")));
        }
        let st = &n.stat;
        for v in [st.czxid, st.mzxid, st.ctime, st.mtime] {
            o.extend_from_slice(&v.to_le_bytes());
        }
        for v in [st.version, st.cversion, st.aversion] {
            o.extend_from_slice(&v.to_le_bytes());
        }
        o.extend_from_slice(&st.ephemeral_owner.to_le_bytes());
        o.extend_from_slice(&i32::try_from(n.data.len()).expect("small").to_le_bytes());
        o.extend_from_slice(&st.num_children.to_le_bytes());
        o.extend_from_slice(&st.pzxid.to_le_bytes());
        o.extend_from_slice(&i32::try_from(n.seq_num).expect("small").to_le_bytes());
        if version >= 4 {
            o.extend_from_slice(&(100 + n.data.len() as u64).to_le_bytes());
        }
    }
    o.extend_from_slice(&(c.sessions.len() as u64).to_le_bytes());
    for se in &c.sessions {
        o.extend_from_slice(&se.id.to_le_bytes());
        o.extend_from_slice(&se.timeout_ms.to_le_bytes());
        if version >= 1 {
            o.extend_from_slice(&(se.auths.len() as u64).to_le_bytes());
            for a in &se.auths {
                s(&mut o, a.scheme.as_bytes());
                s(&mut o, a.id.as_bytes());
            }
        }
    }
    o
}

#[test]
fn versions_zero_to_five_read() {
    for version in 0..=5u8 {
        let mut c = rich(6);
        c.cluster_config = None;
        c.header.version = version;
        if version < 5 {
            c.header.zxid = None;
        }
        if version == 0 {
            for s in &mut c.sessions {
                s.auths.clear();
            }
        }
        let body = old_body(&c, version);
        let file =
            keeperkit_snapshot::clickhouse::container::encode_blocks(&body, METHOD_LZ4, 1 << 20);
        let mut back = SnapshotContents::new(header(0));
        let info = read_snapshot_bytes("s".as_ref(), &file, &mut back, ReadOptions::default())
            .unwrap_or_else(|e| panic!("V{version}: {e}"));
        assert_eq!(info.header.version, version);
        assert_eq!(back.nodes, c.nodes, "V{version}");
        assert_eq!(back.sessions, c.sessions, "V{version}");
        assert_eq!(back.header, c.header, "V{version}");
        // V0 interns inline ACL lists into ids 1, 2, ... in order of first use.
        assert_eq!(back.acls, c.acls, "V{version}");
        assert_eq!(back.cluster_config, None);
    }
}

#[test]
fn newer_versions_and_unrepresentable_nodes_are_clear_errors() {
    let mut body = write_body(&rich(8), 8, None).expect("body");
    body[0] = 9;
    let file = keeperkit_snapshot::clickhouse::container::encode_zstd(&body).expect("zstd");
    let mut back = SnapshotContents::new(header(0));
    let err = read_snapshot_bytes("snap".as_ref(), &file, &mut back, ReadOptions::default())
        .expect_err("V9");
    let c = err.corruption().expect("corruption");
    assert_eq!(c.kind, CorruptionKind::UnsupportedVersion { found: 9 });
    assert_eq!(c.offset, 0);

    match write_body(&rich(8), 6, None) {
        Err(SnapshotError::Unrepresentable { version: 6, paths, .. }) => {
            assert_eq!(paths, vec!["/ttl"])
        }
        other => panic!("TTL in V6: {other:?}"),
    }
    match write_body(&rich(7), 6, None) {
        Err(SnapshotError::Unrepresentable { paths, reason, .. }) => {
            assert_eq!(paths, vec!["/big-seq"]);
            assert!(reason.contains("V7"));
        }
        other => panic!("seq in V6: {other:?}"),
    }
    assert!(matches!(
        write_body(&rich(6), 5, None),
        Err(SnapshotError::VersionNotWritable { version: 5, .. })
    ));
}

#[test]
fn digest_is_computed_written_and_rechecked() {
    let mut c = SnapshotContents::new(header(100));
    c.nodes.push(node("/", b"", 0, KeeperStat { num_children: 1, ..Default::default() }, 0));
    c.nodes.push(node("/keeper", b"", 0, KeeperStat::default(), 0));
    for (v, want) in [
        (digest_version::V4, 0xd0d7_6359_b5af_c751_u64),
        (digest_version::V5, 0x7f0c_6b80_8c49_61b4),
    ] {
        let opts = WriteOptions { compute_digest: Some(v), ..WriteOptions::default() };
        let file = encode_snapshot(&c, opts).expect("file");
        let mut back = SnapshotContents::new(header(0));
        let info = read_snapshot_bytes(
            "s".as_ref(),
            &file,
            &mut back,
            ReadOptions { compute_digest: true, ..ReadOptions::default() },
        )
        .expect("read");
        assert_eq!(info.header.digest_version, v);
        assert_eq!(info.header.digest, Some(want));
        assert_eq!(info.counts.computed_digest, Some(want));
    }
}

#[test]
fn damaged_files_are_errors_never_panics() {
    let good = encode_snapshot(
        &rich(6),
        WriteOptions { container: Container::Blocks(METHOD_NONE), ..WriteOptions::default() },
    )
    .expect("file");
    for cut in 0..good.len() {
        let mut back = SnapshotContents::new(header(0));
        let r = read_snapshot_bytes("s".as_ref(), &good[..cut], &mut back, ReadOptions::default());
        assert!(matches!(r, Err(SnapshotError::Corrupt(_))), "cut at {cut}");
    }
    let body = write_body(&rich(6), 6, None).expect("body");
    for cut in 0..body.len() {
        let mut back = SnapshotContents::new(header(0));
        let file = keeperkit_snapshot::clickhouse::container::encode_blocks(
            &body[..cut],
            METHOD_NONE,
            1 << 20,
        );
        let r = read_snapshot_bytes("s".as_ref(), &file, &mut back, ReadOptions::default());
        // A body cut right after the sessions is a valid snapshot without trailer.
        if let Ok(info) = r {
            assert!(!info.counts.has_cluster_config, "cut at {cut}");
        }
    }
}

#[test]
fn files_are_written_and_listed_the_keeper_way() {
    let tmp = tempfile::tempdir().expect("tmp");
    let fs = StdFs;
    let c = rich(6);
    let path = write_snapshot(&fs, tmp.path(), &c, WriteOptions::default()).expect("write");
    assert_eq!(path.file_name().and_then(|n| n.to_str()), Some("snapshot_500.bin.zstd"));
    let blocks =
        WriteOptions { container: Container::Blocks(METHOD_LZ4), ..WriteOptions::default() };
    write_snapshot(&fs, tmp.path(), &c, blocks).expect("write blocks");
    assert!(matches!(
        write_snapshot(&fs, tmp.path(), &c, WriteOptions::default()),
        Err(SnapshotError::Io { .. })
    ));
    let (files, markers) = list_snapshots(&fs, tmp.path()).expect("list");
    // The refused third write left its marker, as a crashed Keeper write would.
    assert_eq!(markers, vec!["tmp_snapshot_500.bin.zstd".to_string()]);
    assert_eq!(files.len(), 2);
    assert!(files.iter().all(|(n, _)| *n == 500));
    let (back, info) = SnapshotContents::read(&fs, &path).expect("read");
    assert_eq!(back, c);
    assert_eq!(info.file_len, fs.metadata(&path).expect("meta").len);
    assert_eq!(parse_snapshot_name("snapshot_42.bin"), Some(42));
    assert_eq!(parse_snapshot_name("snapshot_42_0123456789abcdef.bin.zstd"), Some(42));
    assert_eq!(parse_snapshot_name("snapshot_x.bin"), None);
    assert_eq!(parse_snapshot_name("tmp_snapshot_1.bin"), None);
}

/// Keeper's load-time rules over the content: a clean tree passes; each broken rule is
/// reported with its node.
#[test]
fn content_checks_follow_keepers_load_rules() {
    let mut c = rich(8);
    c.header.digest_version = digest_version::V5;
    let problems = check_contents(&c);
    // Only the stored digest (none yet) is off.
    assert_eq!(problems.len(), 1, "{problems:?}");
    let file = encode_snapshot(
        &c,
        WriteOptions { version: 8, compute_digest: Some(5), ..WriteOptions::default() },
    )
    .expect("file");
    let mut back = SnapshotContents::new(header(0));
    read_snapshot_bytes("s".as_ref(), &file, &mut back, ReadOptions::default()).expect("read");
    assert!(check_contents(&back).is_empty(), "{:?}", check_contents(&back));

    let mut bad = back.clone();
    bad.nodes.push(node("/keeper/api_version", b"1", 0, KeeperStat::default(), 0));
    bad.nodes.push(node("/orphan/child", b"", 0, KeeperStat::default(), 0));
    bad.nodes.push(node("/acl", b"", 99, KeeperStat::default(), 0));
    bad.nodes[2].stat.num_children = 5;
    let problems = check_contents(&bad);
    let fatal: Vec<_> = problems
        .iter()
        .filter(|p| p.severity == Severity::Fatal)
        .filter_map(|p| p.path.as_deref())
        .collect();
    assert_eq!(fatal, vec!["/keeper/api_version", "/orphan/child", "/acl"]);
    assert!(problems
        .iter()
        .any(|p| p.path.as_deref() == Some("/app") && p.message.contains("numChildren")));
    assert!(problems.iter().any(|p| p.path.is_none() && p.message.contains("digest")));
}

/// The multithreaded zstd writer gives the same bytes whatever the number of worker
/// threads (so a snapshot rewritten on another machine is identical), one frame that
/// decodes to the body, with Keeper's level and content checksum.
#[test]
fn parallel_zstd_is_one_frame_and_the_same_for_any_worker_count() {
    use keeperkit_snapshot::clickhouse::container::{decode, encode_zstd_workers};
    // ~24 MiB of compressible, non-repeating text: several zstd jobs.
    let mut body = Vec::with_capacity(24 << 20);
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    while body.len() < 24 << 20 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        body.extend_from_slice(
            format!("/scale/b{:04}/n{:07} ", x % 1000, x % 9_999_999).as_bytes(),
        );
    }
    let one = encode_zstd_workers(&body, 1).expect("1 worker");
    for workers in [2, 3, 8] {
        let other = encode_zstd_workers(&body, workers).expect("workers");
        assert!(one == other, "{workers} workers gave other bytes than 1");
    }
    assert!(one.len() < body.len() / 2, "compressed: {} of {}", one.len(), body.len());
    let (back, container) = decode(&one, 64 << 20).expect("decodes");
    assert_eq!(container, keeperkit_snapshot::clickhouse::Container::Zstd);
    assert!(back == body);
    // One frame: the magic appears once at the start, and the frame header asks for a
    // content checksum (frame header descriptor bit 2).
    assert_eq!(&one[..4], &[0x28, 0xb5, 0x2f, 0xfd]);
    assert_ne!(one[4] & 0b100, 0, "content checksum flag");
}
