//! Native snapshots round-trip exactly, and the writer refuses what breaks a limit.
//!
//! Guards against: a field (any stat, null vs empty data, ACL ids, sessions with auth
//! ids, the cluster configuration, the digest) changing on the way through the file;
//! chunk boundaries, prefix compression or the parallel pipeline reordering or losing
//! nodes; the inline (one thread) and parallel paths writing different files; a
//! limit violation leaving a file (final or temporary) behind.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::cast_possible_truncation)]

use std::path::{Path, PathBuf};

use keeperkit_model::{Acl, Id, Perms, SessionId, Zxid};
use keeperkit_snapshot::native::format::{Codec, DATA_LEN_MAX, PATH_LEN_MAX};
use keeperkit_snapshot::native::{
    inspect_snapshot, read_snapshot, read_snapshot_with, verify_snapshot, write_snapshot, AclEntry,
    CollectSink, NodeStat, OwnedNode, ReadOptions, SessionRecord, SnapshotMeta, WriteOptions,
};
use keeperkit_snapshot::SnapshotError;
use keeperkit_vfs::{FaultConfig, FaultFs, FileSystem};

fn fs() -> FaultFs {
    let fs = FaultFs::new(FaultConfig::default());
    fs.create_dir_all(Path::new("/snap")).unwrap();
    fs
}

/// A small deterministic generator (xorshift).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn i64(&mut self) -> i64 {
        // Mix small and extreme values: varints must handle both.
        match self.below(4) {
            0 => 0,
            1 => (self.next() >> 40) as i64,
            2 => -((self.next() >> 20) as i64),
            _ => self.next() as i64,
        }
    }

    fn i32(&mut self) -> i32 {
        self.i64() as i32
    }
}

/// `buckets` × `per_bucket` nodes under `/scale`, plus the root and `/scale`, with
/// random stats, values (some null, some empty) and ACL ids among `acls`.
fn synthetic(buckets: usize, per_bucket: usize, acls: u64, seed: u64) -> Vec<OwnedNode> {
    let mut rng = Rng(seed | 1);
    let stat = |rng: &mut Rng| NodeStat {
        czxid: rng.i64(),
        mzxid: rng.i64(),
        pzxid: rng.i64(),
        ctime: 1_700_000_000_000 + rng.below(1 << 30) as i64,
        mtime: rng.i64(),
        version: rng.i32(),
        cversion: rng.i32(),
        aversion: rng.i32(),
        owner: rng.i64(),
        seq: rng.i32(),
    };
    let mut nodes = vec![
        OwnedNode { path: "/".into(), data: Some(vec![]), acl_id: 0, stat: stat(&mut rng) },
        OwnedNode { path: "/scale".into(), data: None, acl_id: 0, stat: stat(&mut rng) },
    ];
    for b in 0..buckets {
        nodes.push(OwnedNode {
            path: format!("/scale/b{b:04}"),
            data: Some(vec![]),
            acl_id: rng.below(acls),
            stat: stat(&mut rng),
        });
        for n in 0..per_bucket {
            let data = match rng.below(8) {
                0 => None,
                1 => Some(vec![]),
                _ => Some((0..rng.below(49)).map(|_| rng.next() as u8).collect()),
            };
            nodes.push(OwnedNode {
                path: format!("/scale/b{b:04}/n{n:07}"),
                data,
                acl_id: rng.below(acls),
                stat: stat(&mut rng),
            });
        }
    }
    nodes
}

fn meta_for(nodes: &[OwnedNode], acls: u64) -> SnapshotMeta {
    SnapshotMeta {
        last_index: 12345,
        last_term: 7,
        zxid: Zxid(0x1_0000_0590),
        node_count: nodes.len() as u64,
        digest: 0xDEAD_BEEF_0000_0001,
        cluster_config: b"server.1=127.0.0.1:2888:3888:participant;0.0.0.0:2181\nversion=100000000"
            .to_vec(),
        sessions: vec![
            SessionRecord {
                id: SessionId(0x0100_000b_08f2_0003),
                timeout_ms: 30_000,
                auth: vec![],
            },
            SessionRecord {
                id: SessionId(-1),
                timeout_ms: 4_000,
                auth: vec![Id { scheme: "digest".into(), id: "alice:x/yZ=".into() }],
            },
        ],
        acls: (0..acls)
            .map(|id| AclEntry {
                id: id * 1000,
                acl: if id == 0 {
                    Acl::open_unsafe()
                } else {
                    vec![
                        Acl { perms: Perms(id as i32 % 32), id: Id::anyone() },
                        Acl {
                            perms: Perms::ALL,
                            id: Id { scheme: "ip".into(), id: format!("10.0.0.{id}") },
                        },
                    ]
                },
            })
            .collect(),
    }
}

/// ACL ids in `synthetic` are indexes; the table uses `index * 1000`.
fn spread_acl_ids(nodes: &mut [OwnedNode]) {
    for n in nodes {
        n.acl_id *= 1000;
    }
}

fn write(
    fs: &dyn FileSystem,
    name: &str,
    meta: &SnapshotMeta,
    nodes: &[OwnedNode],
    opts: &WriteOptions,
) -> PathBuf {
    let w = write_snapshot(fs, Path::new("/snap"), name, meta, nodes, opts).expect("written");
    assert_eq!(w.node_count, nodes.len() as u64);
    assert_eq!(w.path, Path::new("/snap").join(name));
    assert_eq!(fs.metadata(&w.path).unwrap().len, w.file_len);
    w.path
}

fn read_all(fs: &dyn FileSystem, path: &Path, threads: usize) -> (SnapshotMeta, Vec<OwnedNode>) {
    let mut sink = CollectSink::default();
    let meta = read_snapshot_with(fs, path, &mut sink, &ReadOptions { threads }).expect("readable");
    assert_eq!(sink.meta.as_ref(), Some(&meta));
    (meta, sink.nodes)
}

#[test]
fn empty_snapshot_without_nodes() {
    let fs = fs();
    let meta = SnapshotMeta::default();
    let p = write(&fs, "empty.kks", &meta, &[], &WriteOptions::default());
    let (m, nodes) = read_all(&fs, &p, 0);
    assert_eq!(m, meta);
    assert!(nodes.is_empty());
    assert_eq!(verify_snapshot(&fs, &p).unwrap(), vec![]);
    let info = inspect_snapshot(&fs, &p).unwrap();
    assert!(info.chunks.is_empty());
    let min = keeperkit_snapshot::native::format::FILE_LEN_MIN;
    assert_eq!(info.file_len, min + u64::from(info.meta_stored_len));
}

#[test]
fn root_only_and_metadata_fields() {
    let fs = fs();
    let nodes = synthetic(0, 0, 1, 3)[..1].to_vec();
    let meta = meta_for(&nodes, 1);
    let p = write(&fs, "root.kks", &meta, &nodes, &WriteOptions::default());
    let (m, got) = read_all(&fs, &p, 1);
    assert_eq!(m, meta);
    assert_eq!(got, nodes);
}

#[test]
fn hundred_thousand_nodes_round_trip_in_many_chunks() {
    let fs = fs();
    let mut nodes = synthetic(100, 1000, 5, 42);
    spread_acl_ids(&mut nodes);
    let meta = meta_for(&nodes, 5);
    let opts = WriteOptions { chunk_len_target: 64 << 10, threads: 2, ..WriteOptions::default() };
    let p = write(&fs, "big.kks", &meta, &nodes, &opts);
    let info = inspect_snapshot(&fs, &p).unwrap();
    assert!(info.chunks.len() > 20, "{} chunks", info.chunks.len());
    assert_eq!(info.chunks.iter().map(|c| u64::from(c.node_count)).sum::<u64>(), 100_102);
    assert_eq!(info.chunks[0].first_path, "/");
    for c in &info.chunks {
        assert!(c.first_path.starts_with('/'));
    }
    for threads in [1, 2, 3] {
        let (m, got) = read_all(&fs, &p, threads);
        assert_eq!(m, meta);
        assert!(got == nodes, "nodes differ with {threads} threads");
    }
    assert_eq!(verify_snapshot(&fs, &p).unwrap(), vec![]);

    // The inline writer produces the same bytes but for the random snapshot id.
    let inline = WriteOptions { threads: 1, ..opts };
    let q = write(&fs, "big-inline.kks", &meta, &nodes, &inline);
    let a = fs.read_all(&p).unwrap();
    let b = fs.read_all(&q).unwrap();
    assert_eq!(a.len(), b.len());
    let differing = a.iter().zip(&b).filter(|(x, y)| x != y).count();
    // Snapshot id in the header and trailer, and the CRCs over them.
    assert!(differing <= 24, "{differing} bytes differ");
}

#[test]
fn uncompressed_snapshots_round_trip() {
    let fs = fs();
    let mut nodes = synthetic(3, 300, 2, 8);
    spread_acl_ids(&mut nodes);
    let meta = meta_for(&nodes, 2);
    let opts = WriteOptions { level: None, chunk_len_target: 8192, ..WriteOptions::default() };
    let p = write(&fs, "raw.kks", &meta, &nodes, &opts);
    let info = inspect_snapshot(&fs, &p).unwrap();
    assert!(info.chunks.len() > 2);
    assert!(info.chunks.iter().all(|c| c.codec == Codec::Raw && c.stored_len == c.raw_len));
    let (m, got) = read_all(&fs, &p, 2);
    assert_eq!(m, meta);
    assert!(got == nodes);
    assert_eq!(verify_snapshot(&fs, &p).unwrap(), vec![]);
    let bad = WriteOptions { level: Some(1000), ..WriteOptions::default() };
    assert!(write_snapshot(&fs, Path::new("/snap"), "bad.kks", &meta, &nodes, &bad).is_err());
}

#[test]
fn values_of_a_megabyte_and_the_largest_allowed() {
    let fs = fs();
    let mut nodes = synthetic(1, 3, 1, 9);
    let mut rng = Rng(77);
    nodes[2].data = Some((0..1 << 20).map(|_| rng.next() as u8).collect());
    nodes[3].data = Some(vec![0xAB; DATA_LEN_MAX]);
    nodes[4].data = Some(vec![]);
    let meta = meta_for(&nodes, 1);
    let p = write(&fs, "values.kks", &meta, &nodes, &WriteOptions::default());
    let (_, got) = read_all(&fs, &p, 0);
    assert!(got == nodes);
    let info = inspect_snapshot(&fs, &p).unwrap();
    // A value larger than the chunk target closes its chunk.
    assert!(info.chunks.len() >= 2);
}

#[test]
fn long_and_deep_paths() {
    let fs = fs();
    let stat = NodeStat::default();
    let mut nodes = vec![OwnedNode { path: "/".into(), data: Some(vec![]), acl_id: 0, stat }];
    let mut path = String::new();
    for i in 0..3000 {
        path.push_str(&format!("/dé{i}"));
        nodes.push(OwnedNode { path: path.clone(), data: None, acl_id: 0, stat });
    }
    // The first closes its chunk (longer than the target), the second starts one.
    for c in ["x", "y"] {
        let long = format!("/{}", c.repeat(PATH_LEN_MAX - 1));
        nodes.push(OwnedNode { path: long, data: Some(b"v".to_vec()), acl_id: 0, stat });
    }
    let meta = meta_for(&nodes, 1);
    let p = write(&fs, "deep.kks", &meta, &nodes, &WriteOptions::default());
    let (_, got) = read_all(&fs, &p, 0);
    assert!(got == nodes);
    let info = inspect_snapshot(&fs, &p).unwrap();
    assert!(info.chunks.iter().any(|c| c.first_path_cut));
}

fn assert_refused(fs: &FaultFs, name: &str, meta: &SnapshotMeta, nodes: &[OwnedNode], what: &str) {
    for threads in [1, 2] {
        let opts = WriteOptions { threads, ..WriteOptions::default() };
        let err = write_snapshot(fs, Path::new("/snap"), name, meta, nodes, &opts)
            .expect_err("must be refused");
        match &err {
            SnapshotError::Refused { reason, .. } => {
                assert!(reason.contains(what), "{err} should mention {what}");
            }
            other => panic!("unexpected error {other}"),
        }
        let left: Vec<_> = fs.read_dir(Path::new("/snap")).unwrap();
        assert!(left.iter().all(|e| !e.name.starts_with(name)), "left behind: {left:?}");
    }
}

#[test]
fn limits_are_checked_before_anything_is_published() {
    let fs = fs();
    let base = synthetic(2, 5, 1, 5);
    let meta = meta_for(&base, 1);

    let mut nodes = base.clone();
    nodes[5].data = Some(vec![0; DATA_LEN_MAX + 1]);
    assert_refused(&fs, "data.kks", &meta, &nodes, "DATA_LEN_MAX");

    let mut nodes = base.clone();
    nodes[5].path = format!("/{}", "p".repeat(PATH_LEN_MAX));
    assert_refused(&fs, "path.kks", &meta, &nodes, "PATH_LEN_MAX");

    let mut nodes = base.clone();
    nodes[3].acl_id = 99;
    assert_refused(&fs, "acl.kks", &meta, &nodes, "ACL id 99");

    let mut nodes = base.clone();
    nodes.remove(0);
    let m = SnapshotMeta { node_count: nodes.len() as u64, ..meta.clone() };
    assert_refused(&fs, "root.kks", &m, &nodes, "root");

    let m = SnapshotMeta { node_count: base.len() as u64 - 1, ..meta.clone() };
    assert_refused(&fs, "more.kks", &m, &base, "more nodes");
    let m = SnapshotMeta { node_count: base.len() as u64 + 1, ..meta.clone() };
    assert_refused(&fs, "fewer.kks", &m, &base, "yielded");

    let mut m = meta.clone();
    m.sessions.push(m.sessions[0].clone());
    assert_refused(&fs, "sessions.kks", &m, &base, "twice");
    let mut m = meta.clone();
    m.acls.push(m.acls[0].clone());
    assert_refused(&fs, "acls.kks", &m, &base, "twice");
    let m = SnapshotMeta { cluster_config: vec![0; 3 << 20], ..meta.clone() };
    assert_refused(&fs, "config.kks", &m, &base, "CONFIG_LEN_MAX");

    let opts = WriteOptions { chunk_len_target: 10, ..WriteOptions::default() };
    assert!(write_snapshot(&fs, Path::new("/snap"), "x.kks", &meta, &base, &opts).is_err());
    let opts = WriteOptions::default();
    assert!(write_snapshot(&fs, Path::new("/snap"), "x.kks.tmp", &meta, &base, &opts).is_err());
    assert!(write_snapshot(&fs, Path::new("/snap"), "a/b", &meta, &base, &opts).is_err());
}

#[test]
fn sink_errors_abort_reading_and_name_the_chunk() {
    struct Refuse(usize);
    impl keeperkit_snapshot::native::NodeSink for Refuse {
        fn begin(&mut self, _: &SnapshotMeta) -> Result<(), String> {
            Ok(())
        }
        fn node(&mut self, n: keeperkit_snapshot::native::NodeRecord<'_>) -> Result<(), String> {
            self.0 += 1;
            if n.path == "/scale/b0001/n0000002" {
                return Err("no thanks".into());
            }
            Ok(())
        }
    }
    let fs = fs();
    let nodes = synthetic(3, 100, 1, 11);
    let meta = meta_for(&nodes, 1);
    let opts = WriteOptions { chunk_len_target: 4096, ..WriteOptions::default() };
    let p = write(&fs, "s.kks", &meta, &nodes, &opts);
    let mut sink = Refuse(0);
    let err = read_snapshot(&fs, &p, &mut sink).expect_err("sink refused");
    let msg = err.to_string();
    assert!(msg.contains("no thanks") && msg.contains("chunk "), "{msg}");
    let pos = nodes.iter().position(|n| n.path == "/scale/b0001/n0000002").unwrap();
    assert_eq!(sink.0, pos + 1, "nodes after the refused one were fed");
}
