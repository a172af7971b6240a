//! Damaged native snapshots: every flipped bit and every truncation is an error that
//! names the file (and the chunk and its offset when the damage is in a chunk), never
//! a panic, a hang or a huge allocation; `verify` lists every damaged chunk.
//!
//! Guards against: a byte that no checksum covers; a decompressor mismatch going
//! unnoticed (the raw CRC); a reader trusting a length from the file before checking
//! it; `verify` stopping at the first bad chunk; a truncated file read as a shorter
//! snapshot.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::cast_possible_truncation)]

use std::path::{Path, PathBuf};

use keeperkit_model::{Acl, Corruption, CorruptionKind, Zxid};
use keeperkit_snapshot::native::format::{
    BLK_CRC_OFFSET, BLK_RAW_CRC_OFFSET, BLOCK_HEADER_LEN, TRAILER_LEN, TRL_CRC_OFFSET,
    TRL_FOOTER_LEN_OFFSET,
};
use keeperkit_snapshot::native::{
    inspect_snapshot, read_snapshot, verify_snapshot, write_snapshot, AclEntry, CollectSink,
    NodeStat, NullSink, OwnedNode, SnapshotMeta, WriteOptions,
};
use keeperkit_snapshot::SnapshotError;
use keeperkit_vfs::{FaultConfig, FaultFs, FileSystem, OpenMode};

const DIR: &str = "/snap";

fn nodes(n: usize) -> Vec<OwnedNode> {
    let mut out = vec![OwnedNode {
        path: "/".into(),
        data: Some(vec![]),
        acl_id: 0,
        stat: NodeStat::default(),
    }];
    for i in 0..n {
        out.push(OwnedNode {
            path: format!("/n{i:05}"),
            data: Some(format!("value {i} {}", i * 7919).into_bytes()),
            acl_id: 0,
            stat: NodeStat {
                czxid: i as i64,
                mzxid: i as i64 + 3,
                ctime: 1_700_000_000_000 + i as i64,
                mtime: 1_700_000_000_500 + i as i64,
                version: (i % 5) as i32,
                ..NodeStat::default()
            },
        });
    }
    out
}

fn meta(nodes: &[OwnedNode]) -> SnapshotMeta {
    SnapshotMeta {
        last_index: 9,
        last_term: 2,
        zxid: Zxid(77),
        node_count: nodes.len() as u64,
        digest: 5,
        cluster_config: b"cfg".to_vec(),
        sessions: vec![],
        acls: vec![AclEntry { id: 0, acl: Acl::open_unsafe() }],
    }
}

/// A snapshot of `n` nodes in chunks of ~4 KiB; returns the file system, its path and
/// its bytes.
fn snapshot(n: usize) -> (FaultFs, PathBuf, Vec<u8>) {
    let fs = FaultFs::new(FaultConfig::default());
    fs.create_dir_all(Path::new(DIR)).unwrap();
    let ns = nodes(n);
    let opts = WriteOptions { chunk_len_target: 4096, ..WriteOptions::default() };
    let w = write_snapshot(&fs, Path::new(DIR), "s.kks", &meta(&ns), &ns, &opts).unwrap();
    let bytes = fs.read_all(&w.path).unwrap();
    (fs, w.path, bytes)
}

/// Replaces the file's bytes.
fn put(fs: &FaultFs, path: &Path, bytes: &[u8]) {
    let f = fs.open(path, OpenMode::CreateTruncate).unwrap();
    f.write_all_at(bytes, 0).unwrap();
}

/// Reading must fail with a corruption naming the file; verify must report it.
fn assert_detected(fs: &FaultFs, path: &Path, what: &str) -> Vec<Corruption> {
    let mut sink = CollectSink::default();
    match read_snapshot(fs, path, &mut sink) {
        Ok(_) => panic!("{what}: damaged file read without error"),
        Err(SnapshotError::Corrupt(c)) => assert_eq!(c.file, path, "{what}"),
        Err(e) => panic!("{what}: expected corruption, got {e}"),
    }
    let problems = verify_snapshot(fs, path).unwrap();
    assert!(!problems.is_empty(), "{what}: verify found nothing");
    for p in &problems {
        assert_eq!(p.file, path);
    }
    problems
}

#[test]
fn every_flipped_bit_is_detected() {
    let (fs, path, good) = snapshot(400);
    let info = inspect_snapshot(&fs, &path).unwrap();
    assert!(info.chunks.len() >= 3, "want several chunks, got {}", info.chunks.len());
    for off in 0..good.len() {
        let mut bad = good.clone();
        bad[off] ^= 1 << (off % 8);
        put(&fs, &path, &bad);
        let problems = assert_detected(&fs, &path, &format!("bit flip at {off}"));
        // Damage inside a chunk's block is pinned to that chunk.
        if let Some(c) = info.chunks.iter().find(|c| {
            off as u64 >= c.offset
                && (off as u64) < c.offset + BLOCK_HEADER_LEN as u64 + u64::from(c.stored_len)
        }) {
            assert!(
                problems.iter().any(|p| p.chunk == Some(c.index)),
                "flip at {off} in chunk {}: {problems:?}",
                c.index
            );
        }
    }
}

#[test]
fn a_flipped_bit_in_a_chunk_names_file_chunk_and_offset() {
    let (fs, path, good) = snapshot(400);
    let info = inspect_snapshot(&fs, &path).unwrap();
    let c = &info.chunks[2];
    let mut bad = good.clone();
    let off = c.offset as usize + BLOCK_HEADER_LEN + c.stored_len as usize / 2;
    bad[off] ^= 0x10;
    put(&fs, &path, &bad);

    let err = read_snapshot(&fs, &path, &mut NullSink).unwrap_err();
    let corruption = err.corruption().expect("a corruption").clone();
    assert_eq!(corruption.file, path);
    assert_eq!(corruption.offset, c.offset + BLK_CRC_OFFSET as u64);
    let msg = err.to_string();
    assert!(
        msg.contains("/snap/s.kks") && msg.contains("chunk 2") && msg.contains("checksum"),
        "{msg}"
    );
    assert!(msg.contains(&format!("byte {}", c.offset)), "{msg}");

    // verify names only that chunk and goes on with the others.
    let problems = verify_snapshot(&fs, &path).unwrap();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0].chunk, Some(2));
    assert_eq!(problems[0].offset, c.offset);
    assert!(matches!(problems[0].kind, CorruptionKind::ChecksumMismatch { .. }));
    let shown = problems[0].to_string();
    assert!(shown.contains("chunk 2") && shown.contains(&format!("byte {}", c.offset)), "{shown}");

    // Two damaged chunks: both listed.
    let d = &info.chunks[0];
    bad[d.offset as usize + BLOCK_HEADER_LEN + 3] ^= 1;
    put(&fs, &path, &bad);
    let problems = verify_snapshot(&fs, &path).unwrap();
    let chunks: Vec<_> = problems.iter().map(|p| p.chunk).collect();
    assert_eq!(chunks, vec![Some(0), Some(2)]);
}

#[test]
fn every_truncation_is_detected() {
    let (fs, path, good) = snapshot(150);
    for len in 0..good.len() {
        put(&fs, &path, &good[..len]);
        let problems = assert_detected(&fs, &path, &format!("cut at {len}"));
        let shown = problems[0].to_string();
        assert!(shown.contains("s.kks"), "{shown}");
    }
    // A cut file says so, and the scan still checks the chunks it can reach.
    put(&fs, &path, &good[..good.len() - 1]);
    let problems = verify_snapshot(&fs, &path).unwrap();
    assert!(problems[0].to_string().contains("truncated"), "{}", problems[0]);
}

#[test]
fn a_decompressor_mismatch_is_caught_by_the_raw_crc() {
    // Damage the raw CRC and recompute the block CRC over it: the stored bytes are
    // intact and decompress fine, but not to the bytes the writer compressed.
    let (fs, path, good) = snapshot(400);
    let info = inspect_snapshot(&fs, &path).unwrap();
    let c = &info.chunks[1];
    let start = c.offset as usize;
    let end = start + BLOCK_HEADER_LEN + c.stored_len as usize;
    let mut bad = good.clone();
    bad[start + BLK_RAW_CRC_OFFSET] ^= 0xFF;
    let crc = crc32fast::hash(&bad[start + 4..end]);
    bad[start..start + 4].copy_from_slice(&crc.to_le_bytes());
    put(&fs, &path, &bad);
    let problems = assert_detected(&fs, &path, "raw crc");
    assert_eq!(problems.len(), 1);
    assert_eq!(problems[0].chunk, Some(1));
    assert_eq!(problems[0].offset, c.offset + BLK_RAW_CRC_OFFSET as u64);
}

#[test]
fn absurd_lengths_are_refused_before_allocating() {
    // A trailer claiming a 2 GiB footer, with a valid CRC.
    let (fs, path, good) = snapshot(10);
    let mut bad = good.clone();
    let t = bad.len() - TRAILER_LEN;
    bad[t + TRL_FOOTER_LEN_OFFSET..t + TRL_FOOTER_LEN_OFFSET + 4]
        .copy_from_slice(&0x8000_0000u32.to_le_bytes());
    let crc = crc32fast::hash(&bad[t..t + TRL_CRC_OFFSET]);
    bad[t + TRL_CRC_OFFSET..t + TRL_CRC_OFFSET + 4].copy_from_slice(&crc.to_le_bytes());
    put(&fs, &path, &bad);
    assert_detected(&fs, &path, "2 GiB footer");

    // Garbage of every small size, and a valid header followed by garbage.
    let mut x = 0x1234_5678_9abc_def1u64;
    for len in [0usize, 1, 31, 32, 33, 100, 200, 1000] {
        let mut g: Vec<u8> = (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        put(&fs, &path, &g);
        assert_detected(&fs, &path, &format!("{len} bytes of garbage"));
        if len >= 32 {
            g[..32].copy_from_slice(&good[..32]);
            put(&fs, &path, &g);
            assert_detected(&fs, &path, &format!("header + {len} bytes of garbage"));
        }
    }
}

#[test]
fn the_previous_file_bytes_are_not_read_through_a_stale_trailer() {
    // Two snapshots glued together: the trailer of the second belongs to another id
    // than the header of the first.
    let (fs, path, a) = snapshot(20);
    let (_, _, b) = snapshot(20);
    let mut glued = a[..a.len() - TRAILER_LEN].to_vec();
    glued.extend_from_slice(&b[b.len() - TRAILER_LEN..]);
    put(&fs, &path, &glued);
    let problems = assert_detected(&fs, &path, "foreign trailer");
    assert!(problems[0].to_string().contains("belongs to snapshot"), "{}", problems[0]);
}
