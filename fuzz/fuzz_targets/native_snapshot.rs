//! keeperkit's native snapshot reader over an arbitrary file: `read_snapshot`,
//! `verify_snapshot` and `inspect_snapshot` never panic, hang or over-allocate, and
//! they agree: a file that reads has no problem for `verify` and an inspectable chunk
//! table adding up to the node count; a file that does not read has at least one.
//!
//! Byte 0 is the mode, the rest is the file. Mode bit 0: every CRC the fuzzer could
//! not guess is recomputed first (header, each block reachable by walking the blocks
//! from the header, with the raw CRC of raw blocks, and the trailer), so that the
//! lengths, the footer, the metadata and the node records are reached. Mode bit 1:
//! read with two threads instead of one.
//!
//! The `init` block makes the main thread wait on channels and reads a hand-built
//! two-chunk snapshot with two threads before fuzzing starts, so that the main
//! thread's one-time thread-local allocation (the blocking-wait context of
//! `std::sync::mpsc`, freed only at thread exit) is not reported by LeakSanitizer as a
//! leak of whichever input first takes the threaded path (the first run's finding).
#![no_main]

use keeperkit_fuzz::MemFs;
use keeperkit_snapshot::native::format::{
    BlockHeader, BlockKind, Codec, FileHeader, Trailer, BLK_CODEC_OFFSET, BLK_KIND_OFFSET,
    BLK_RAW_CRC_OFFSET, BLK_STORED_LEN_OFFSET, BLOCK_HEADER_LEN, FORMAT_VERSION, HDR_CRC_OFFSET,
    HEADER_LEN, TRAILER_LEN, TRL_CRC_OFFSET,
};
use keeperkit_snapshot::native::{
    inspect_snapshot, read_snapshot_with, verify_snapshot, NodeRecord, NodeSink, ReadOptions,
    SnapshotMeta,
};
use libfuzzer_sys::fuzz_target;

#[derive(Default)]
struct Counter {
    began: bool,
    nodes: u64,
    path_bytes: u64,
}

impl NodeSink for Counter {
    fn begin(&mut self, _meta: &SnapshotMeta) -> Result<(), String> {
        assert!(!self.began, "begin called twice");
        self.began = true;
        Ok(())
    }

    fn node(&mut self, node: NodeRecord<'_>) -> Result<(), String> {
        assert!(self.began, "a node before begin");
        assert!(node.path.starts_with('/'));
        self.nodes += 1;
        self.path_bytes += node.path.len() as u64;
        Ok(())
    }
}

/// CRC-32 (IEEE, as crc32fast computes it), bitwise: the fuzz crate keeps its
/// dependencies to the decoders it tests.
fn crc32(parts: &[&[u8]]) -> u32 {
    let mut c = !0u32;
    for part in parts {
        for &byte in *part {
            c ^= u32::from(byte);
            for _ in 0..8 {
                c = if c & 1 != 0 { (c >> 1) ^ 0xEDB8_8320 } else { c >> 1 };
            }
        }
    }
    !c
}

fn u32_at(b: &[u8], off: usize) -> Option<u32> {
    let s = b.get(off..off.checked_add(4)?)?;
    Some(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

fn put_u32(b: &mut [u8], off: usize, v: u32) {
    if let Some(s) = b.get_mut(off..off + 4) {
        s.copy_from_slice(&v.to_le_bytes());
    }
}

/// Recomputes the CRCs of the header, of every block reachable by walking from the
/// header (raw blocks: the raw CRC too) and of the trailer.
fn fix_crcs(b: &mut [u8]) {
    if b.len() < HEADER_LEN + TRAILER_LEN {
        return;
    }
    let crc = crc32(&[&b[..HDR_CRC_OFFSET]]);
    put_u32(b, HDR_CRC_OFFSET, crc);
    let end = b.len() - TRAILER_LEN;
    let mut off = HEADER_LEN;
    while off + BLOCK_HEADER_LEN <= end {
        let Some(stored_len) = u32_at(b, off + BLK_STORED_LEN_OFFSET) else {
            break;
        };
        let stored_at = off + BLOCK_HEADER_LEN;
        let Some(stored_end) = stored_at.checked_add(stored_len as usize) else { break };
        if stored_end > end || b[off + BLK_KIND_OFFSET] == 0 {
            break;
        }
        if b[off + BLK_CODEC_OFFSET] == 0 {
            let raw = crc32(&[&b[stored_at..stored_end]]);
            put_u32(b, off + BLK_RAW_CRC_OFFSET, raw);
        }
        let crc = crc32(&[&b[off + 4..stored_end]]);
        put_u32(b, off, crc);
        off = stored_end;
    }
    let crc = crc32(&[&b[end..end + TRL_CRC_OFFSET]]);
    put_u32(b, end + TRL_CRC_OFFSET, crc);
}

/// Appends a raw block of `kind` holding `raw`; returns its offset.
fn push_block(file: &mut Vec<u8>, kind: BlockKind, seq: u32, nodes: u32, raw: &[u8]) -> u64 {
    let offset = file.len() as u64;
    let len = u32::try_from(raw.len()).expect("small");
    let header = BlockHeader {
        crc: 0,
        kind,
        codec: Codec::Raw,
        seq,
        node_count: nodes,
        stored_len: len,
        raw_len: len,
        raw_crc: crc32(&[raw]),
    };
    file.extend_from_slice(&header.encode(raw));
    file.extend_from_slice(raw);
    offset
}

/// A valid snapshot of `/` and `/a`, one node per chunk, built byte by byte from
/// docs/FORMAT.md.
fn two_chunk_snapshot() -> Vec<u8> {
    let id = 0x5EED;
    let mut f = FileHeader { version: FORMAT_VERSION, flags: 0, snapshot_id: id }.encode().to_vec();
    let mut entries = Vec::new();
    for (seq, path) in [(0u32, &b"/"[..]), (1, &b"/a"[..])] {
        // shared 0, suffix, null data, ACL id 0, ten zero stat fields.
        let mut raw = vec![0, path.len() as u8];
        raw.extend_from_slice(path);
        raw.extend_from_slice(&[1, 0]);
        raw.extend_from_slice(&[0; 10]);
        let offset = push_block(&mut f, BlockKind::Nodes, seq, 1, &raw);
        entries.push((offset, raw.len() as u32));
    }
    // last index, term, zxid, node count 2, digest; no config, no sessions; one ACL
    // list (id 0, empty).
    let mut meta = vec![0u8; 24];
    meta.extend_from_slice(&2u64.to_le_bytes());
    meta.extend_from_slice(&[0; 8 + 4 + 4]);
    meta.extend_from_slice(&1u32.to_le_bytes());
    meta.extend_from_slice(&[0; 8 + 4]);
    let meta_offset = push_block(&mut f, BlockKind::Meta, 0, 0, &meta);
    let mut footer = meta_offset.to_le_bytes().to_vec();
    footer.extend_from_slice(&(meta.len() as u32).to_le_bytes());
    footer.extend_from_slice(&2u32.to_le_bytes());
    for (offset, len) in entries {
        footer.extend_from_slice(&offset.to_le_bytes());
        footer.extend_from_slice(&len.to_le_bytes());
        footer.extend_from_slice(&len.to_le_bytes());
        footer.extend_from_slice(&1u32.to_le_bytes());
        footer.extend_from_slice(&[0, 0, 0, 0]);
    }
    let footer_offset = push_block(&mut f, BlockKind::Footer, 0, 0, &footer);
    let footer_len = (f.len() as u64 - footer_offset) as u32;
    f.extend_from_slice(&Trailer { snapshot_id: id, footer_offset, footer_len }.encode());
    f
}

fuzz_target!(init: {
    // Block the main thread on a receive and on a rendezvous send once: the first
    // blocking wait of a thread allocates its wait context (a thread-local freed only
    // when the thread exits).
    let pause = std::time::Duration::from_millis(20);
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    std::thread::scope(|s| {
        s.spawn(move || {
            std::thread::sleep(pause);
            let _ = tx.send(());
        });
        let _ = rx.recv();
    });
    let (tx, rx) = std::sync::mpsc::sync_channel::<()>(0);
    std::thread::scope(|s| {
        s.spawn(move || {
            std::thread::sleep(pause);
            let _ = rx.recv();
        });
        let _ = tx.send(());
    });
    let fs = MemFs::new("warm.kks", two_chunk_snapshot());
    for _ in 0..10 {
        let mut sink = Counter::default();
        let read = read_snapshot_with(&fs, &fs.path(), &mut sink, &ReadOptions { threads: 2 });
        assert_eq!(read.expect("the hand-built snapshot reads").node_count, 2);
    }
}, |data: &[u8]| {
    let Some((&mode, file)) = data.split_first() else { return };
    let mut file = file.to_vec();
    if mode & 1 != 0 {
        fix_crcs(&mut file);
    }
    let threads = if mode & 2 != 0 { 2 } else { 1 };
    let fs = MemFs::new("snap.kks", file);
    let path = fs.path();
    let mut sink = Counter::default();
    let read = read_snapshot_with(&fs, &path, &mut sink, &ReadOptions { threads });
    let problems = verify_snapshot(&fs, &path).expect("MemFs never fails a read");
    match read {
        Ok(meta) => {
            assert!(sink.began);
            assert_eq!(meta.node_count, sink.nodes);
            assert!(problems.is_empty(), "read fine, verify found {problems:?}");
            let info = inspect_snapshot(&fs, &path).expect("a readable file inspects");
            assert_eq!(info.meta, meta);
            let total: u64 = info.chunks.iter().map(|c| u64::from(c.node_count)).sum();
            assert_eq!(total, meta.node_count);
        }
        Err(e) => {
            let c = e.corruption().unwrap_or_else(|| panic!("MemFs never fails a read: {e}"));
            assert_eq!(c.file, path);
            assert!(!problems.is_empty(), "read failed ({e}), verify found nothing");
            for p in &problems {
                assert_eq!(p.file, path);
            }
        }
    }
});
