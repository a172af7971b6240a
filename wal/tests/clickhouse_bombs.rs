//! Decompression bombs in `.bin.zstd` changelogs: a small file that decompresses to
//! gigabytes costs a scan, not its size, and reads as what it is (no record).
//!
//! One test per binary, so that the process's peak resident size is this test's.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;

use keeperkit_vfs::StdFs;
use keeperkit_wal::clickhouse::ChangelogRecord;
use keeperkit_wal::clickhouse::{read_file, ReadOptions, RECORD_LEN_MAX};

fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    let kb: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kb * 1024
}

/// `prefix` then `zeros` zero bytes in one zstd frame.
fn zstd_bomb(prefix: &[u8], zeros: usize) -> Vec<u8> {
    let mut enc = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
    enc.write_all(prefix).unwrap();
    let chunk = vec![0u8; 1 << 20];
    for _ in 0..zeros / chunk.len() {
        enc.write_all(&chunk).unwrap();
    }
    enc.finish().unwrap()
}

#[test]
fn zstd_bombs_cost_a_bounded_amount_of_memory() {
    let dir = tempfile::tempdir().unwrap();
    let gib = 1usize << 30;
    // A good record, then a header claiming a blob longer than RECORD_LEN_MAX.
    let mut good = Vec::new();
    ChangelogRecord::new(1, 1, 1, b"x".to_vec()).encode_into(&mut good);
    let mut claim = good.clone();
    let mut huge = vec![0u8; 37];
    huge[8] = 1;
    huge[9..17].copy_from_slice(&2u64.to_le_bytes());
    huge[29..37].copy_from_slice(&(RECORD_LEN_MAX + 1).to_le_bytes());
    claim.extend_from_slice(&huge);
    let cases = [
        ("changelog_1325_1424.bin.zstd", zstd_bomb(&[], gib), 0),
        ("changelog_1_100.bin.zstd", zstd_bomb(&good, gib), 1),
        ("changelog_101_200.bin.zstd", zstd_bomb(&claim, gib), 1),
    ];
    let before = peak_rss();
    for (name, bytes, records) in cases {
        assert!(bytes.len() * 1000 < gib, "{name}: {} bytes is not a bomb", bytes.len());
        let path = dir.path().join(name);
        std::fs::write(&path, &bytes).unwrap();
        let f = read_file(&StdFs, &path, ReadOptions::default()).unwrap();
        assert_eq!(f.records.len(), records, "{name}");
        assert!(f.broken.is_some(), "{name}: the zeros are not records");
        assert!(f.stream_len >= gib as u64, "{name}: the whole stream is walked");
    }
    let grew = peak_rss().saturating_sub(before);
    assert!(grew < 128 << 20, "peak resident size grew by {} MiB", grew >> 20);
}
