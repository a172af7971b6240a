//! The v1 byte layout, pinned: a file built byte by byte from docs/FORMAT.md reads as
//! the snapshot it describes, and the writer produces exactly those bytes (but for
//! the random snapshot id and the two CRCs that cover it).
//!
//! Guards against: a format change that the document (and every file already
//! written) does not follow.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::cast_possible_truncation)]

use std::path::Path;

use keeperkit_model::{Acl, Zxid};
use keeperkit_snapshot::native::format::{
    BlockHeader, BlockKind, Codec, FileHeader, Trailer, FORMAT_VERSION, HEADER_LEN,
};
use keeperkit_snapshot::native::{
    read_snapshot_with, write_snapshot, AclEntry, CollectSink, NodeStat, OwnedNode, ReadOptions,
    SnapshotMeta, WriteOptions,
};
use keeperkit_vfs::{FaultConfig, FaultFs, FileSystem, OpenMode};

/// Appends a raw block; returns its offset.
fn push_block(f: &mut Vec<u8>, kind: BlockKind, seq: u32, nodes: u32, raw: &[u8]) -> u64 {
    let offset = f.len() as u64;
    let len = raw.len() as u32;
    let h = BlockHeader {
        crc: 0,
        kind,
        codec: Codec::Raw,
        seq,
        node_count: nodes,
        stored_len: len,
        raw_len: len,
        raw_crc: crc32fast::hash(raw),
    };
    f.extend_from_slice(&h.encode(raw));
    f.extend_from_slice(raw);
    offset
}

/// The raw bytes of the nodes of `hand_built`, chunk by chunk.
fn chunks() -> Vec<Vec<u8>> {
    let chunk0 = [
        // "/": shared 0, suffix "/", data "" (flags 0, len 0), ACL 7, czxid 1,
        // mzxid-czxid 0, pzxid-czxid 2, ctime 1000, mtime-ctime 0, version 0,
        // cversion 1, aversion 0, owner 0, seq 1 (zigzag: v*2).
        &[0, 1, b'/', 0, 0, 7, 2, 0, 4, 0xD0, 0x0F, 0, 0, 2, 0, 0, 2][..],
        // "/a": shared 1, suffix "a", null data (flags 1), ACL 7, czxid 2, mzxid 3
        // (+1), pzxid 2 (+0), ctime 1001, mtime 999 (-2), version 1, cversion -1,
        // aversion 0, owner i64::MIN (zigzag: u64::MAX, 10 bytes), seq 0.
        &[
            1, 1, b'a', 1, 7, 4, 2, 0, 0xD2, 0x0F, 3, 2, 1, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
            0xFF, 0xFF, 0xFF, 0x01, 0,
        ][..],
    ]
    .concat();
    vec![chunk0]
}

fn nodes() -> Vec<OwnedNode> {
    vec![
        OwnedNode {
            path: "/".into(),
            data: Some(vec![]),
            acl_id: 7,
            stat: NodeStat {
                czxid: 1,
                mzxid: 1,
                pzxid: 3,
                ctime: 1000,
                mtime: 1000,
                cversion: 1,
                seq: 1,
                ..NodeStat::default()
            },
        },
        OwnedNode {
            path: "/a".into(),
            data: None,
            acl_id: 7,
            stat: NodeStat {
                czxid: 2,
                mzxid: 3,
                pzxid: 2,
                ctime: 1001,
                mtime: 999,
                version: 1,
                cversion: -1,
                aversion: 0,
                owner: i64::MIN,
                seq: 0,
            },
        },
    ]
}

fn meta() -> SnapshotMeta {
    SnapshotMeta {
        last_index: 5,
        last_term: 2,
        zxid: Zxid(3),
        node_count: 2,
        digest: 0xABCD,
        cluster_config: b"c".to_vec(),
        sessions: vec![],
        acls: vec![AclEntry { id: 7, acl: Acl::open_unsafe() }],
    }
}

/// The snapshot of `nodes()` and `meta()`, one chunk, every block raw, built from
/// docs/FORMAT.md.
fn hand_built(id: u64) -> Vec<u8> {
    let mut f = FileHeader { version: FORMAT_VERSION, flags: 0, snapshot_id: id }.encode().to_vec();
    assert_eq!(f.len(), HEADER_LEN);
    let mut entries = Vec::new();
    for (seq, raw) in chunks().iter().enumerate() {
        let off = push_block(&mut f, BlockKind::Nodes, seq as u32, 2, raw);
        entries.push((off, raw.len() as u32, b"/"));
    }
    let mut m = Vec::new();
    for v in [5u64, 2, 3, 2, 0xABCD] {
        m.extend_from_slice(&v.to_le_bytes());
    }
    m.extend_from_slice(&1u32.to_le_bytes());
    m.push(b'c');
    m.extend_from_slice(&0u32.to_le_bytes()); // sessions
    m.extend_from_slice(&1u32.to_le_bytes()); // ACL lists
    m.extend_from_slice(&7u64.to_le_bytes());
    m.extend_from_slice(&1u32.to_le_bytes());
    m.extend_from_slice(&31i32.to_le_bytes());
    for s in ["world", "anyone"] {
        m.extend_from_slice(&(s.len() as u32).to_le_bytes());
        m.extend_from_slice(s.as_bytes());
    }
    let meta_offset = push_block(&mut f, BlockKind::Meta, 0, 0, &m);
    let mut footer = meta_offset.to_le_bytes().to_vec();
    footer.extend_from_slice(&(m.len() as u32).to_le_bytes());
    footer.extend_from_slice(&(entries.len() as u32).to_le_bytes());
    for (off, len, first) in entries {
        footer.extend_from_slice(&off.to_le_bytes());
        footer.extend_from_slice(&len.to_le_bytes());
        footer.extend_from_slice(&len.to_le_bytes());
        footer.extend_from_slice(&2u32.to_le_bytes());
        footer.extend_from_slice(&[0, 0]);
        footer.extend_from_slice(&(first.len() as u16).to_le_bytes());
        footer.extend_from_slice(first);
    }
    let footer_offset = push_block(&mut f, BlockKind::Footer, 0, 0, &footer);
    let footer_len = (f.len() as u64 - footer_offset) as u32;
    f.extend_from_slice(&Trailer { snapshot_id: id, footer_offset, footer_len }.encode());
    f
}

fn fs() -> FaultFs {
    let fs = FaultFs::new(FaultConfig::default());
    fs.create_dir_all(Path::new("/g")).unwrap();
    fs
}

#[test]
fn a_file_built_from_the_spec_reads() {
    let fs = fs();
    let path = Path::new("/g/hand.kks");
    let f = fs.open(path, OpenMode::CreateNew).unwrap();
    f.write_all_at(&hand_built(0x1234), 0).unwrap();
    let mut sink = CollectSink::default();
    let meta = read_snapshot_with(&fs, path, &mut sink, &ReadOptions { threads: 1 }).unwrap();
    assert_eq!(meta, self::meta());
    assert_eq!(sink.nodes, nodes());
}

#[test]
fn the_writer_produces_the_spec_bytes() {
    let fs = fs();
    let opts = WriteOptions { level: None, threads: 1, ..WriteOptions::default() };
    let w = write_snapshot(&fs, Path::new("/g"), "w.kks", &meta(), &nodes(), &opts).unwrap();
    let written = fs.read_all(&w.path).unwrap();
    let id = FileHeader::decode(written[..HEADER_LEN].try_into().unwrap()).unwrap().snapshot_id;
    assert_eq!(written, hand_built(id));
}
