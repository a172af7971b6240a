//! Decompression bombs: a small snapshot file that decompresses to far more than its
//! content costs no more memory than a fixed bound, and fails at its first bad record.
//!
//! One test per binary, so that the process's peak resident size is this test's.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use std::io::Write;

use keeperkit_model::{AclList, SessionId};
use keeperkit_snapshot::zookeeper::{read_snapshot, SnapshotNode, SnapshotSink, SNAP_MAGIC};
use keeperkit_vfs::StdFs;

/// The process's peak resident set (VmHWM), in bytes.
fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    let kb: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kb * 1024
}

/// A sink that refuses a path it has already seen, as a tree does.
#[derive(Default)]
struct TreeLike(HashSet<String>);

impl SnapshotSink for TreeLike {
    fn session(&mut self, _: SessionId, _: i32) {}
    fn acl_list(&mut self, _: i64, _: AclList) {}
    fn node(&mut self, node: SnapshotNode) -> Result<(), String> {
        if self.0.insert(node.path.clone()) {
            Ok(())
        } else {
            Err(format!("{:?} already exists", node.path))
        }
    }
}

/// `prefix` then `zeros` zero bytes, gzip-compressed.
fn gzip_bomb(prefix: &[u8], zeros: usize) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(prefix).unwrap();
    let chunk = vec![0u8; 1 << 20];
    let mut left = zeros;
    while left > 0 {
        let n = left.min(chunk.len());
        gz.write_all(&chunk[..n]).unwrap();
        left -= n;
    }
    gz.finish().unwrap()
}

/// `prefix` then `zeros` zero bytes in snappy-java framing (32 KiB blocks).
fn snappy_bomb(prefix: &[u8], zeros: usize) -> Vec<u8> {
    let mut out = b"\x82SNAPPY\0".to_vec();
    out.extend_from_slice(&1i32.to_be_bytes());
    out.extend_from_slice(&1i32.to_be_bytes());
    let mut enc = snap::raw::Encoder::new();
    let mut push = |b: &[u8], out: &mut Vec<u8>| {
        let c = enc.compress_vec(b).unwrap();
        out.extend_from_slice(&i32::try_from(c.len()).unwrap().to_be_bytes());
        out.extend_from_slice(&c);
    };
    push(prefix, &mut out);
    let block = vec![0u8; 32 << 10];
    for _ in 0..zeros / block.len() {
        push(&block, &mut out);
    }
    out
}

#[test]
fn decompression_bombs_cost_a_bounded_amount_of_memory() {
    let dir = tempfile::tempdir().unwrap();
    // A valid header, no sessions, no ACLs; then zeros: the root (path "") with an
    // empty value and a zero stat, then the root again, which a tree refuses.
    let mut header = SNAP_MAGIC.to_be_bytes().to_vec();
    header.extend_from_slice(&2i32.to_be_bytes());
    header.extend_from_slice(&0i64.to_be_bytes());
    header.extend_from_slice(&0i32.to_be_bytes());
    header.extend_from_slice(&0i32.to_be_bytes());
    let gib = 1usize << 30;
    let cases: Vec<(&str, Vec<u8>, usize, &str)> = vec![
        ("snapshot.999.gz", gzip_bomb(&[], gib), gib, "bad_magic"),
        ("snapshot.99a.gz", gzip_bomb(&header, gib), gib, "bad_tree"),
        ("snapshot.99b.snappy", snappy_bomb(&header, 512 << 20), 512 << 20, "bad_tree"),
    ];
    let before = peak_rss();
    for (name, bytes, stream_len, code) in cases {
        assert!(bytes.len() * 20 < stream_len, "{name}: {} bytes is not a bomb", bytes.len());
        let path = dir.path().join(name);
        std::fs::write(&path, &bytes).unwrap();
        drop(bytes);
        let err = read_snapshot(&StdFs, &path, &mut TreeLike::default()).unwrap_err();
        let c = err.corruption().unwrap_or_else(|| panic!("{name}: {err}"));
        assert_eq!(c.kind.code(), code, "{name}: {err}");
        assert!(c.offset < 1024, "{name}: fails at its first bad record, not at {}", c.offset);
    }
    let grew = peak_rss().saturating_sub(before);
    assert!(grew < 128 << 20, "peak resident size grew by {} MiB", grew >> 20);
}
