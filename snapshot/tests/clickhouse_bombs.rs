//! Decompression bombs in ClickHouse Keeper snapshots: a small file whose body
//! decompresses to gigabytes costs no more memory than a fixed bound, in both
//! containers, and fails at its first bad record.
//!
//! One test per binary, so that the process's peak resident size is this test's.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;

use keeperkit_model::keeper::nuraft::{ClusterConfig, SnapshotMeta};
use keeperkit_model::AclList;
use keeperkit_snapshot::clickhouse::{
    read_snapshot, ClickHouseSnapshotSink, NodeRecord, ReadOptions, SessionRecord, SnapshotHeader,
};
use keeperkit_vfs::StdFs;

fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    let kb: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kb * 1024
}

/// A sink that refuses a path it has already seen, as a tree does.
#[derive(Default)]
struct TreeLike(std::collections::HashSet<String>);

impl ClickHouseSnapshotSink for TreeLike {
    fn header(&mut self, _: &SnapshotHeader) -> Result<(), String> {
        Ok(())
    }
    fn acl(&mut self, _: u64, _: AclList) -> Result<(), String> {
        Ok(())
    }
    fn node(&mut self, node: &NodeRecord<'_>) -> Result<(), String> {
        if self.0.insert(node.path.to_owned()) {
            Ok(())
        } else {
            Err(format!("{:?} already exists", node.path))
        }
    }
    fn session(&mut self, _: SessionRecord) -> Result<(), String> {
        Ok(())
    }
    fn cluster_config(&mut self, _: ClusterConfig) -> Result<(), String> {
        Ok(())
    }
}

/// A V6 body's start: version, metadata, zxid, no digest, the session counter, an
/// empty ACL map, then a node count of `nodes`; zeros follow.
fn body_prefix(nodes: u64) -> Vec<u8> {
    let meta = SnapshotMeta::new(2000, 1).encode();
    let mut b = vec![6u8, u8::try_from(meta.len()).unwrap()];
    b.extend_from_slice(&meta);
    b.extend_from_slice(&2000i64.to_le_bytes());
    b.push(0);
    b.extend_from_slice(&1i64.to_le_bytes());
    b.extend_from_slice(&0u64.to_le_bytes());
    b.extend_from_slice(&nodes.to_le_bytes());
    b
}

fn zstd_bomb(prefix: &[u8], zeros: usize) -> Vec<u8> {
    let mut enc = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
    enc.write_all(prefix).unwrap();
    let chunk = vec![0u8; 1 << 20];
    for _ in 0..zeros / chunk.len() {
        enc.write_all(&chunk).unwrap();
    }
    enc.finish().unwrap()
}

/// ClickHouse compressed blocks (ZSTD method) of 1 MiB each.
fn blocks_bomb(prefix: &[u8], zeros: usize) -> Vec<u8> {
    let mut body = prefix.to_vec();
    body.resize(prefix.len() + (4 << 20), 0);
    let head = keeperkit_snapshot::clickhouse::container::encode_blocks(
        &body,
        keeperkit_snapshot::clickhouse::container::METHOD_ZSTD,
        1 << 20,
    );
    // The last block of zeros, repeated: every block is checksummed on its own.
    let zero_block = keeperkit_snapshot::clickhouse::container::encode_blocks(
        &vec![0u8; 1 << 20],
        keeperkit_snapshot::clickhouse::container::METHOD_ZSTD,
        1 << 20,
    );
    let mut out = head;
    for _ in 0..zeros / (1 << 20) {
        out.extend_from_slice(&zero_block);
    }
    out
}

#[test]
fn snapshot_bombs_cost_a_bounded_amount_of_memory() {
    let dir = tempfile::tempdir().unwrap();
    let gib = 1usize << 30;
    let cases = [
        ("snapshot_2000.bin.zstd", zstd_bomb(&[], gib)),
        ("snapshot_2001.bin.zstd", zstd_bomb(&body_prefix(1 << 40), gib)),
        ("snapshot_2002.bin", blocks_bomb(&body_prefix(1 << 40), gib)),
    ];
    let before = peak_rss();
    for (name, bytes) in cases {
        assert!(bytes.len() * 50 < gib, "{name}: {} bytes is not a bomb", bytes.len());
        let path = dir.path().join(name);
        std::fs::write(&path, &bytes).unwrap();
        drop(bytes);
        let opts = ReadOptions::default();
        let err = read_snapshot(&StdFs, &path, &mut TreeLike::default(), opts).unwrap_err();
        let c = err.corruption().unwrap_or_else(|| panic!("{name}: {err}"));
        assert!(c.offset < 1 << 20, "{name}: fails at its first bad record, not at {}", c.offset);
    }
    let grew = peak_rss().saturating_sub(before);
    assert!(grew < 128 << 20, "peak resident size grew by {} MiB", grew >> 20);
}
