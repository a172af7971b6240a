//! ClickHouse compressed-block framing against real `clickhouse-compressor` output:
//! guards against a CityHash128 variant or header layout that ClickHouse would reject
//! ("Checksum doesn't match: corrupted data").

use keeperkit_model::CorruptionKind;
use keeperkit_snapshot::clickhouse::container::{
    block_checksum, decode, decode_blocks, encode_blocks, Container, CHECKSUM_LEN, METHOD_LZ4,
    METHOD_NONE, METHOD_ZSTD,
};

const DIR: &str =
    concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata/clickhouse/ch-compressed-framing");

fn file(name: &str) -> Vec<u8> {
    std::fs::read(format!("{DIR}/{name}")).expect("vector file")
}

fn decoded(name: &str) -> (Vec<u8>, Vec<keeperkit_snapshot::clickhouse::container::BlockInfo>) {
    let mut out = Vec::new();
    let blocks = decode_blocks(&file(name), &mut out, 1 << 30).expect("decodes");
    (out, blocks)
}

#[test]
fn every_vector_decodes_to_its_raw_input() {
    for (chblk, raw, method, nblocks) in [
        ("hello.none.chblk", "hello.raw", METHOD_NONE, 1),
        ("hello.lz4.chblk", "hello.raw", METHOD_LZ4, 1),
        ("hello.zstd.chblk", "hello.raw", METHOD_ZSTD, 1),
        ("multi_b4096.lz4.chblk", "multi.raw", METHOD_LZ4, 4),
        ("empty.lz4.chblk", "empty.raw", METHOD_LZ4, 0),
    ] {
        let (out, blocks) = decoded(chblk);
        assert_eq!(out, file(raw), "{chblk}");
        assert_eq!(blocks.len(), nblocks, "{chblk}");
        assert!(blocks.iter().all(|b| b.method == method), "{chblk}");
        let (out2, container) = decode(&file(chblk), 1 << 30).expect("container");
        assert_eq!(out2, out);
        if nblocks > 0 {
            assert_eq!(container, Container::Blocks(method));
        }
    }
}

/// The tool's per-block report: uncompressed size and compressed size (9-byte header
/// included).
#[test]
fn multi_block_sizes_match_the_tool_report() {
    let (_, blocks) = decoded("multi_b4096.lz4.chblk");
    let stat = std::fs::read_to_string(format!("{DIR}/multi_b4096.lz4.stat.txt")).expect("stat");
    let want: Vec<(u32, u32)> = stat
        .lines()
        .map(|l| {
            let mut it = l.split_whitespace().map(|x| x.parse::<u32>().expect("number"));
            (it.next().expect("u"), it.next().expect("c"))
        })
        .collect();
    let got: Vec<(u32, u32)> =
        blocks.iter().map(|b| (b.uncompressed_len, b.compressed_len)).collect();
    assert_eq!(got, want);
}

/// NONE blocks and every checksum re-encode byte for byte.
#[test]
fn none_blocks_and_checksums_reencode_byte_for_byte() {
    assert_eq!(encode_blocks(&file("hello.raw"), METHOD_NONE, 1 << 20), file("hello.none.chblk"));
    assert_eq!(encode_blocks(&[], METHOD_NONE, 1 << 20), file("empty.lz4.chblk"));
    for name in ["hello.none.chblk", "hello.lz4.chblk", "hello.zstd.chblk", "multi_b4096.lz4.chblk"]
    {
        let bytes = file(name);
        let mut pos = 0;
        while pos < bytes.len() {
            let csize =
                u32::from_le_bytes(bytes[pos + 17..pos + 21].try_into().expect("4 bytes")) as usize;
            let covered = &bytes[pos + CHECKSUM_LEN..pos + CHECKSUM_LEN + csize];
            assert_eq!(
                block_checksum(covered)[..],
                bytes[pos..pos + CHECKSUM_LEN],
                "{name} @{pos}"
            );
            pos += CHECKSUM_LEN + csize;
        }
    }
}

/// Our LZ4 and ZSTD blocks decode back (in ClickHouse's framing, with valid checksums).
#[test]
fn our_compressed_blocks_round_trip() {
    let raw = file("multi.raw");
    for method in [METHOD_NONE, METHOD_LZ4, METHOD_ZSTD] {
        let enc = encode_blocks(&raw, method, 4096);
        let mut out = Vec::new();
        let blocks = decode_blocks(&enc, &mut out, 1 << 30).expect("decodes");
        assert_eq!(out, raw);
        assert_eq!(blocks.len(), 4);
        assert_eq!(encode_blocks(&out, method, 4096), enc, "deterministic");
    }
}

#[test]
fn damage_is_reported_with_the_block_offset() {
    let mut bytes = file("multi_b4096.lz4.chblk");
    let second = 16 + 2279;
    bytes[second + 40] ^= 0x01;
    let mut out = Vec::new();
    let e = decode_blocks(&bytes, &mut out, 1 << 30).expect_err("bit flip");
    assert_eq!(e.offset, second as u64);
    assert!(matches!(e.kind, CorruptionKind::ChecksumMismatch { .. }));
    let good = file("multi_b4096.lz4.chblk");
    for cut in [1, 20, 24, 25, 100, good.len() - 1] {
        let mut out = Vec::new();
        assert!(decode_blocks(&good[..cut], &mut out, 1 << 30).is_err(), "cut {cut}");
    }
    // The cap stops before allocating.
    let mut out = Vec::new();
    let e = decode_blocks(&good, &mut out, 5000).expect_err("cap");
    assert!(matches!(e.kind, CorruptionKind::LengthOutOfRange { .. }));
}

/// ClickHouse's ZSTD codec (level 1, one-shot) and ours agree on this small input.
#[test]
fn zstd_block_matches_clickhouse_for_the_hello_vector() {
    assert_eq!(encode_blocks(&file("hello.raw"), METHOD_ZSTD, 1 << 20), file("hello.zstd.chblk"));
}
