//! ZooKeeper snapshot reading, on the real ZooKeeper 3.8.0 fixtures and damaged copies.
//!
//! Guards against: misreading any snapshot ZooKeeper writes (plain, gzip, snappy), both
//! Adler-32 seals going unchecked, nodes arriving out of order, and any damaged,
//! truncated or garbage file being loaded, panicking, or reported without its file and
//! offset.
#![allow(clippy::unwrap_used)]

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use keeperkit_model::jute::Writer;
use keeperkit_model::{Acl, AclList, CorruptionKind, Id, Perms, SessionId, StatPersisted, Zxid};
use keeperkit_snapshot::zookeeper::{
    decompress, list_snapshots, quick_valid, read_snapshot, read_snapshot_to_vec, Compression,
    SnapshotDigest, SnapshotNode, SnapshotSink, SNAP_MAGIC,
};
use keeperkit_snapshot::SnapshotError;
use keeperkit_vfs::StdFs;

/// The fixture sets the tests require; every other set found in the directory is
/// checked too.
const REQUIRED_FIXTURES: [&str; 6] = ["basic", "crash", "big-values", "gz", "snappy", "quorum"];

/// Every fixture set in `testdata/zookeeper-3.8.0` (each with a `data/version-2`).
fn fixtures() -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/zookeeper-3.8.0");
    let mut sets: Vec<String> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.path().join("data/version-2").is_dir())
        .map(|e| e.file_name().into_string().unwrap())
        .collect();
    sets.sort();
    for required in REQUIRED_FIXTURES {
        assert!(sets.iter().any(|s| s == required), "fixture set {required} is missing");
    }
    sets
}

fn fixture_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../testdata/zookeeper-3.8.0")
        .join(name)
        .join("data/version-2")
}

fn corruption(err: SnapshotError) -> keeperkit_model::Corruption {
    match err {
        SnapshotError::Corrupt(c) => c,
        other => panic!("expected corruption, got {other}"),
    }
}

/// The parent path of a stored node path (`""` for top-level nodes).
fn parent(path: &str) -> &str {
    &path[..path.rfind('/').unwrap()]
}

#[test]
fn every_fixture_snapshot_parses_with_both_seals() {
    let mut compressions = HashSet::new();
    for fixture in fixtures() {
        let snaps = list_snapshots(&StdFs, &fixture_dir(&fixture)).unwrap();
        assert!(snaps.len() >= 4, "{fixture}");
        for (zxid, compression, path) in snaps {
            compressions.insert(compression);
            assert!(quick_valid(&StdFs, &path).unwrap(), "{}", path.display());
            let (info, sessions, acls, nodes) = read_snapshot_to_vec(&StdFs, &path)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert_eq!(info.header_magic, SNAP_MAGIC);
            assert_eq!(info.version, 2);
            assert_eq!(info.dbid, -1);
            assert_eq!(info.compression, compression);
            assert_eq!(info.file_len, std::fs::metadata(&path).unwrap().len());
            assert_eq!(info.session_count, u64::try_from(sessions.len()).unwrap());
            assert_eq!(info.acl_count, u64::try_from(acls.len()).unwrap());
            assert_eq!(info.node_count, u64::try_from(nodes.len()).unwrap());
            assert!(info.node_count >= 4);
            assert!(info.checksum <= u64::from(u32::MAX));
            // 3.8 always writes the digest trailer; its zxid is never before the name's.
            let digest = info.digest.unwrap();
            assert_eq!(digest.version, 2);
            assert!(digest.zxid >= zxid, "{}: digest {:?}", path.display(), digest);
            assert!(info.digest_checksum.unwrap() <= u64::from(u32::MAX));

            let stream = decompress(&StdFs, &path, compression).unwrap();
            assert_eq!(info.stream_len, u64::try_from(stream.len()).unwrap());
            if compression == Compression::None {
                assert_eq!(stream, std::fs::read(&path).unwrap());
            }
            // The seals are where the format puts them.
            let n = stream.len();
            assert_eq!(&stream[n - 5..], b"\0\0\0\x01/");
            let c2 = u64::from_be_bytes(stream[n - 13..n - 5].try_into().unwrap());
            assert_eq!(Some(c2), info.digest_checksum);
            assert_eq!(c2, u64::from(adler2::adler32_slice(&stream[..n - 13])));
            let c1_at = n - 46;
            let c1 = u64::from_be_bytes(stream[c1_at..c1_at + 8].try_into().unwrap());
            assert_eq!(c1, info.checksum);
            assert_eq!(c1, u64::from(adler2::adler32_slice(&stream[..c1_at])));

            // Root first, stored as "", then parents before children, no duplicates.
            assert_eq!(nodes[0].path, "");
            let mut seen = HashSet::new();
            seen.insert(String::new());
            for node in &nodes[1..] {
                assert!(node.path.starts_with('/') && node.path != "/", "{:?}", node.path);
                assert!(
                    seen.contains(parent(&node.path)),
                    "{}: orphan {}",
                    path.display(),
                    node.path
                );
                assert!(seen.insert(node.path.clone()), "duplicate {}", node.path);
            }
            assert!(seen.contains("/zookeeper") && seen.contains("/zookeeper/quota"));
            // Every ACL id used is -1 or in the map.
            let ids: HashSet<i64> = acls.iter().map(|(id, _)| *id).collect();
            assert!(nodes.iter().all(|n| n.acl_id == -1 || ids.contains(&n.acl_id)));
            assert!(acls.iter().all(|(_, list)| !list.is_empty()));
            if zxid.0 != 0 {
                assert!(!sessions.is_empty(), "{}", path.display());
                assert!(sessions.iter().all(|(_, t)| *t > 0));
            }
        }
    }
    assert_eq!(compressions.len(), 3);
}

#[test]
fn big_values_survive() {
    let (_, _, _, nodes) =
        read_snapshot_to_vec(&StdFs, &fixture_dir("big-values").join("snapshot.f2")).unwrap();
    let biggest = nodes.iter().filter_map(|n| n.data.as_ref().map(Vec::len)).max().unwrap();
    assert!(biggest >= 1_000_000, "{biggest}");
    // Null data stays null, distinct from empty.
    let (_, _, _, nodes) =
        read_snapshot_to_vec(&StdFs, &fixture_dir("basic").join("snapshot.545")).unwrap();
    assert!(nodes.iter().any(|n| n.data.is_none()));
    assert!(nodes.iter().any(|n| n.data.as_deref() == Some(&b""[..])));
}

/// The exact bytes of a fresh ZooKeeper 3.8 server's `snapshot.0` (docs/formats/zookeeper.md, "Snapshot").
fn expected_snapshot0() -> Vec<u8> {
    let mut w = Writer::new();
    w.i32(SNAP_MAGIC);
    w.i32(2);
    w.i64(-1);
    w.i32(0); // no sessions
    w.i32(1); // one ACL list
    w.i64(1);
    Acl::encode_list(&[Acl { perms: Perms::READ, id: Id::anyone() }], &mut w);
    for (path, acl, aversion) in [
        ("", -1, 0),
        ("/zookeeper", -1, 0),
        ("/zookeeper/config", 1, -1),
        ("/zookeeper/quota", -1, 0),
    ] {
        w.ustring(Some(path));
        w.buffer(Some(b""));
        w.i64(acl);
        StatPersisted { aversion, ..StatPersisted::default() }.encode_into(&mut w);
    }
    w.ustring(Some("/"));
    let c1 = adler2::adler32_slice(w.as_slice());
    w.i64(i64::from(c1));
    w.ustring(Some("/"));
    w.i64(0); // digest zxid
    w.i32(2);
    w.i64(0);
    let c2 = adler2::adler32_slice(w.as_slice());
    w.i64(i64::from(c2));
    w.ustring(Some("/"));
    w.into_inner()
}

#[test]
fn basic_snapshot0_is_exactly_the_documented_file() {
    let path = fixture_dir("basic").join("snapshot.0");
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(bytes.len(), 457);
    assert_eq!(bytes, expected_snapshot0());

    let (info, sessions, acls, nodes) = read_snapshot_to_vec(&StdFs, &path).unwrap();
    assert!(sessions.is_empty());
    let read_only: AclList = vec![Acl { perms: Perms::READ, id: Id::anyone() }];
    assert_eq!(acls, vec![(1, read_only)]);
    let paths: Vec<&str> = nodes.iter().map(|n| n.path.as_str()).collect();
    assert_eq!(paths, ["", "/zookeeper", "/zookeeper/config", "/zookeeper/quota"]);
    assert_eq!(
        nodes[2],
        SnapshotNode {
            path: "/zookeeper/config".into(),
            data: Some(Vec::new()),
            acl_id: 1,
            stat: StatPersisted { aversion: -1, ..StatPersisted::default() },
        }
    );
    assert_eq!(info.digest, Some(SnapshotDigest { zxid: Zxid(0), version: 2, digest: 0 }));
    assert_eq!(info.stream_len, 457);
    assert_eq!(info.node_count, 4);

    // The compressed fixtures' snapshot.0 hold the same stream.
    for p in
        [fixture_dir("gz").join("snapshot.0.gz"), fixture_dir("snappy").join("snapshot.0.snappy")]
    {
        let (_, c) = keeperkit_snapshot::zookeeper::parse_snapshot_name(
            p.file_name().unwrap().to_str().unwrap(),
        )
        .unwrap();
        assert_eq!(decompress(&StdFs, &p, c).unwrap(), bytes, "{}", p.display());
    }
}

#[test]
fn list_snapshots_sorts_by_zxid() {
    let snaps = list_snapshots(&StdFs, &fixture_dir("basic")).unwrap();
    let zxids: Vec<i64> = snaps.iter().map(|s| s.0 .0).collect();
    assert_eq!(zxids, [0, 0xf8, 0x177, 0x22c, 0x545]);
    let gz = list_snapshots(&StdFs, &fixture_dir("gz")).unwrap();
    assert!(gz.iter().all(|s| s.1 == Compression::Gzip));
    assert_eq!(gz[1].2.file_name().unwrap(), "snapshot.b9.gz");
    // quorum: epoch files and logs are not snapshots.
    let q = list_snapshots(&StdFs, &fixture_dir("quorum")).unwrap();
    assert_eq!(q.len(), 7);
    assert_eq!(q.last().unwrap().0, Zxid(0x1_0000_03a4));
    let err = list_snapshots(&StdFs, Path::new("/nonexistent/kk")).unwrap_err();
    assert!(err.corruption().is_none());
}

/// A sink that refuses a node whose parent it has not seen (what the storage layer does).
#[derive(Default)]
struct ParentCheckingSink {
    seen: HashSet<String>,
    sessions: Vec<(SessionId, i32)>,
}

impl SnapshotSink for ParentCheckingSink {
    fn session(&mut self, id: SessionId, timeout_ms: i32) {
        self.sessions.push((id, timeout_ms));
    }
    fn acl_list(&mut self, _id: i64, _acl: AclList) {}
    fn node(&mut self, node: SnapshotNode) -> Result<(), String> {
        if !node.path.is_empty() && !self.seen.contains(parent(&node.path)) {
            return Err(format!("parent of {} not found", node.path));
        }
        self.seen.insert(node.path);
        Ok(())
    }
}

#[test]
fn a_sink_error_aborts_at_the_node() {
    // Swap the order of /zookeeper and /zookeeper/config in snapshot.0 (and fix the
    // seals), so that a child comes before its parent.
    let good = expected_snapshot0();
    let node_zk = 135..221; // "" ends at 135; "/zookeeper" is 4 + 10 + 4 + 8 + 60 bytes
    let node_cfg = 221..314;
    assert_eq!(&good[node_zk.start + 4..node_zk.start + 14], b"/zookeeper");
    assert_eq!(&good[node_cfg.start + 4..node_cfg.start + 21], b"/zookeeper/config");
    let mut bad = good[..135].to_vec();
    bad.extend_from_slice(&good[node_cfg.clone()]);
    bad.extend_from_slice(&good[node_zk]);
    let seal1 = good.len() - 46 - 5;
    bad.extend_from_slice(&good[node_cfg.end..seal1 + 5]);
    let c1 = adler2::adler32_slice(&bad);
    bad.extend_from_slice(&i64::from(c1).to_be_bytes());
    bad.extend_from_slice(&good[seal1 + 13..good.len() - 13]);
    let c2 = adler2::adler32_slice(&bad);
    bad.extend_from_slice(&i64::from(c2).to_be_bytes());
    bad.extend_from_slice(b"\0\0\0\x01/");
    assert_eq!(bad.len(), good.len());

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("snapshot.0");
    std::fs::write(&path, &bad).unwrap();
    // Without the parent check the file is fine.
    assert_eq!(read_snapshot_to_vec(&StdFs, &path).unwrap().3.len(), 4);
    let c =
        corruption(read_snapshot(&StdFs, &path, &mut ParentCheckingSink::default()).unwrap_err());
    assert_eq!(c.file, path);
    assert_eq!(c.offset, 135);
    assert_eq!(c.kind, CorruptionKind::bad_tree("parent of /zookeeper/config not found"));

    let mut sink = ParentCheckingSink::default();
    read_snapshot(&StdFs, &fixture_dir("basic").join("snapshot.545"), &mut sink).unwrap();
    assert_eq!(sink.seen.len(), 976);
    assert_eq!(sink.sessions.len(), 3);
}

fn write_copy(dir: &tempfile::TempDir, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

#[test]
fn every_single_bit_flip_of_snapshot0_is_detected() {
    let good = expected_snapshot0();
    let dir = tempfile::tempdir().unwrap();
    for at in 0..good.len() {
        for bit in [0x01u8, 0x80] {
            let mut bad = good.clone();
            bad[at] ^= bit;
            let path = write_copy(&dir, "snapshot.0", &bad);
            let err = read_snapshot_to_vec(&StdFs, &path).unwrap_err();
            let c = corruption(err);
            assert_eq!(c.file, path);
            assert!(c.offset <= 457, "flip at {at}: {c}");
        }
    }
}

#[test]
fn flipped_bit_in_node_data_is_a_checksum_mismatch_at_checksum1() {
    let src = fixture_dir("basic").join("snapshot.545");
    let mut bytes = std::fs::read(&src).unwrap();
    let n = bytes.len();
    let (info, _, _, nodes) = read_snapshot_to_vec(&StdFs, &src).unwrap();
    // Find a node with data in the middle of the file: its length-prefixed path, then
    // the data's length field, then the data.
    let node = nodes
        .iter()
        .skip(nodes.len() / 2)
        .find(|n| n.data.as_ref().is_some_and(|d| d.len() >= 8))
        .unwrap();
    let mut needle = u32::try_from(node.path.len()).unwrap().to_be_bytes().to_vec();
    needle.extend_from_slice(node.path.as_bytes());
    let path_at = bytes.windows(needle.len()).position(|w| w == needle).unwrap();
    let data_at = path_at + needle.len() + 4;
    assert_eq!(&bytes[data_at..data_at + 8], &node.data.as_ref().unwrap()[..8]);
    bytes[data_at + 3] ^= 0x04;
    let dir = tempfile::tempdir().unwrap();
    let path = write_copy(&dir, "snapshot.545", &bytes);
    let c = corruption(read_snapshot_to_vec(&StdFs, &path).unwrap_err());
    assert_eq!(c.file, path);
    assert_eq!(c.offset, u64::try_from(n - 46).unwrap());
    let CorruptionKind::ChecksumMismatch { stored, computed } = c.kind else {
        panic!("expected a checksum mismatch: {c}")
    };
    assert_eq!(stored, info.checksum);
    assert_ne!(computed, stored);
    // A flip in the digest is caught by checksum2.
    let mut bytes = std::fs::read(&src).unwrap();
    bytes[n - 20] ^= 0x01;
    let path = write_copy(&dir, "snapshot.545", &bytes);
    let c = corruption(read_snapshot_to_vec(&StdFs, &path).unwrap_err());
    assert_eq!(c.offset, u64::try_from(n - 13).unwrap());
    assert!(matches!(c.kind, CorruptionKind::ChecksumMismatch { .. }), "{c}");
    assert!(c.to_string().contains("snapshot.545"));
}

#[test]
fn truncated_snapshots_are_errors() {
    let good = expected_snapshot0();
    let dir = tempfile::tempdir().unwrap();
    // A pre-3.6 snapshot ends after the first seal: that cut is a valid file.
    let pre36 = good.len() - 33;
    for cut in 0..good.len() {
        let path = write_copy(&dir, "snapshot.0", &good[..cut]);
        let result = read_snapshot_to_vec(&StdFs, &path);
        if cut == pre36 {
            let (info, ..) = result.unwrap();
            assert_eq!(info.digest, None);
            assert_eq!(info.digest_checksum, None);
            assert_eq!(info.node_count, 4);
        } else {
            let c = corruption(result.unwrap_err());
            assert_eq!(c.file, path);
            assert!(c.offset <= u64::try_from(cut).unwrap(), "cut {cut}: {c}");
        }
        // ZooKeeper's quick test only looks at the last 5 bytes: it also passes a file
        // cut right after the end-of-tree "/" (which then fails to load).
        let end_of_tree = good.len() - 46;
        if quick_valid(&StdFs, &path).unwrap() {
            assert!(cut == pre36 || cut == end_of_tree, "cut {cut}");
        }
    }
    let big = std::fs::read(fixture_dir("basic").join("snapshot.545")).unwrap();
    for cut in [1, 7, 16, 100, 1000, big.len() / 3, big.len() / 2, big.len() - 47, big.len() - 1] {
        let path = write_copy(&dir, "snapshot.545", &big[..cut]);
        let c = corruption(read_snapshot_to_vec(&StdFs, &path).unwrap_err());
        assert!(matches!(c.kind, CorruptionKind::Truncated { .. }), "cut {cut}: {c}");
    }
}

#[test]
fn empty_and_garbage_files_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["snapshot.1", "snapshot.1.gz", "snapshot.1.snappy"] {
        let path = write_copy(&dir, name, b"");
        assert!(read_snapshot_to_vec(&StdFs, &path).unwrap_err().corruption().is_some());
        assert!(!quick_valid(&StdFs, &path).unwrap());
        let garbage: Vec<u8> =
            (0..5000u32).map(|i| i.wrapping_mul(2_654_435_761).to_be_bytes()[1]).collect();
        let path = write_copy(&dir, name, &garbage);
        let c = corruption(read_snapshot_to_vec(&StdFs, &path).unwrap_err());
        assert_eq!(c.file, path);
        assert!(!quick_valid(&StdFs, &path).unwrap());
    }
    // A log is not a snapshot.
    let log = std::fs::read(fixture_dir("basic").join("log.1")).unwrap();
    let path = write_copy(&dir, "snapshot.1", &log);
    let c = corruption(read_snapshot_to_vec(&StdFs, &path).unwrap_err());
    assert_eq!(c.offset, 0);
    assert_eq!(c.kind, CorruptionKind::BadMagic { expected: 0x5A4B_534E, found: 0x5A4B_4C47 });
    // A wrong version.
    let mut v = expected_snapshot0();
    v[7] = 3;
    let path = write_copy(&dir, "snapshot.1", &v);
    let c = corruption(read_snapshot_to_vec(&StdFs, &path).unwrap_err());
    assert_eq!((c.offset, c.kind), (4, CorruptionKind::UnsupportedVersion { found: 3 }));
    // Trailing bytes after the last seal.
    let mut t = expected_snapshot0();
    t.push(0);
    let path = write_copy(&dir, "snapshot.1", &t);
    let c = corruption(read_snapshot_to_vec(&StdFs, &path).unwrap_err());
    assert_eq!(c.offset, 457);
    // A missing file is an I/O error naming it.
    let err = read_snapshot_to_vec(&StdFs, Path::new("/nonexistent/snapshot.1")).unwrap_err();
    assert!(
        matches!(err, SnapshotError::Io { ref path, .. } if path == Path::new("/nonexistent/snapshot.1"))
    );
}

#[test]
fn huge_counts_are_refused_without_allocating() {
    let dir = tempfile::tempdir().unwrap();
    for (at, value) in
        [(16usize, 0x7FFF_FFFFu32), (16, 0x8000_0000), (20, 0x7FFF_FFFF), (20, 0xFFFF_FFFF)]
    {
        let mut b = expected_snapshot0();
        b[at..at + 4].copy_from_slice(&value.to_be_bytes());
        let path = write_copy(&dir, "snapshot.0", &b);
        let started = std::time::Instant::now();
        let c = corruption(read_snapshot_to_vec(&StdFs, &path).unwrap_err());
        assert!(started.elapsed() < std::time::Duration::from_secs(2));
        assert_eq!(c.offset, u64::try_from(at).unwrap());
        assert!(
            matches!(
                c.kind,
                CorruptionKind::Truncated { .. } | CorruptionKind::LengthOutOfRange { .. }
            ),
            "{c}"
        );
    }
}

#[test]
fn damaged_gz_and_snappy_files_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    // Skip the bytes no reader checks: the gzip header's mtime, extra flags and OS
    // (bytes 4..10), snappy-java's version and compatible version (bytes 8..16).
    for (fixture, name, first) in
        [("gz", "snapshot.2de.gz", 10), ("snappy", "snapshot.414.snappy", 16)]
    {
        let good = std::fs::read(fixture_dir(fixture).join(name)).unwrap();
        let n = good.len();
        let mut positions: Vec<usize> = (0..40).map(|i| first + i * (n - 20) / 40).collect();
        positions.extend([0, 1, n - 1, n - 5]);
        for at in positions {
            let mut bad = good.clone();
            bad[at] ^= 0x20;
            let path = write_copy(&dir, name, &bad);
            let c = corruption(read_snapshot_to_vec(&StdFs, &path).unwrap_err());
            assert_eq!(c.file, path, "flip at {at}");
        }
        for cut in [0, 1, 8, 12, 17, 20, n / 2, n - 4, n - 1] {
            let path = write_copy(&dir, name, &good[..cut]);
            let c = corruption(read_snapshot_to_vec(&StdFs, &path).unwrap_err());
            assert_eq!(c.file, path, "cut at {cut}");
        }
    }
    // The compression is taken from the name only: a gzip file named as plain is not a
    // snapshot.
    let gz = std::fs::read(fixture_dir("gz").join("snapshot.0.gz")).unwrap();
    let path = write_copy(&dir, "snapshot.0", &gz);
    assert!(matches!(
        corruption(read_snapshot_to_vec(&StdFs, &path).unwrap_err()).kind,
        CorruptionKind::BadMagic { .. }
    ));
    let path = write_copy(&dir, "snapshot.0.GZ", &gz);
    assert_eq!(read_snapshot_to_vec(&StdFs, &path).unwrap().3.len(), 4);
}
