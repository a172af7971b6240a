//! A ClickHouse Keeper changelog file on arbitrary bytes, through `read_file`,
//! `verify_dir`, `plan_startup` and `plan_repair`: never panics or over-allocates
//! (zstd bombs stop at a 64 MiB cap). Byte 0: bit 0 picks `.bin` or `.bin.zstd`; bit 1
//! (plain files) rewrites the checksum of every well-framed record first, so that
//! payload decoding is reached. Records are back to back; the payload decoders never
//! panic; re-encoding the records read gives a file that reads back to the same
//! records.
#![no_main]

use std::path::Path;

use keeperkit_fuzz::MemFs;
use keeperkit_wal::clickhouse::startup::{plan_repair, verify_dir};
use keeperkit_wal::clickhouse::{
    encode_like, read_bytes, read_file, record_checksum, ReadOptions, RECORD_HEADER_LEN,
};
use libfuzzer_sys::fuzz_target;

const CAP: ReadOptions = ReadOptions { stream_len_max: 64 << 20 };

fn fix_checksums(b: &mut [u8]) {
    let mut pos = 0usize;
    while pos + RECORD_HEADER_LEN <= b.len() {
        let h = &b[pos..pos + RECORD_HEADER_LEN];
        let le = |r: std::ops::Range<usize>| {
            let mut a = [0u8; 8];
            a.copy_from_slice(&h[r]);
            u64::from_le_bytes(a)
        };
        let (index, term, len) = (le(9..17), le(17..25), le(29..37));
        let vt = i32::from_le_bytes([h[25], h[26], h[27], h[28]]);
        let version = h[8];
        let Ok(len) = usize::try_from(len) else { return };
        let Some(end) = (pos + RECORD_HEADER_LEN).checked_add(len).filter(|&e| e <= b.len()) else {
            return;
        };
        let sum = record_checksum(version, index, term, vt, &b[pos + RECORD_HEADER_LEN..end]);
        b[pos..pos + 8].copy_from_slice(&sum.to_le_bytes());
        pos = end;
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, file)) = data.split_first() else { return };
    let compressed = mode & 1 == 1;
    let mut file = file.to_vec();
    if !compressed && mode & 2 == 2 {
        fix_checksums(&mut file);
    }
    let name = if compressed { "changelog_1_100.bin.zstd" } else { "changelog_1_100.bin" };
    let fs = MemFs::new(name, file.clone());
    let path = fs.path();
    let read = match read_file(&fs, &path, CAP) {
        Ok(r) => r,
        Err(e) => {
            assert!(e.corruption().is_some(), "MemFs never fails a read: {e}");
            return;
        }
    };
    assert_eq!(read.compressed, compressed);
    assert_eq!(read.file_len, file.len() as u64);
    let mut at = 0;
    for r in &read.records {
        assert_eq!(r.offset, at);
        at += r.record.encoded_len() as u64;
        let _ = r.record.payload();
    }
    assert_eq!(read.good_len(), at);
    assert!(at <= read.stream_len);
    if read.broken.is_none() && !compressed {
        assert_eq!(at, read.stream_len);
    }
    let again = encode_like(&read).expect("in-memory zstd works");
    let back = read_bytes(Path::new(name), &again, compressed, CAP).expect("our encoding reads");
    assert!(back.broken.is_none());
    let a: Vec<_> = read.records.iter().map(|r| &r.record).collect();
    let b: Vec<_> = back.records.iter().map(|r| &r.record).collect();
    assert_eq!(a, b);
    let report = verify_dir(&fs, Path::new(keeperkit_fuzz::DIR), 0, 100_000, compressed, CAP)
        .expect("read once already");
    let _ = plan_repair(&report);
});
