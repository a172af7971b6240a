//! Hostile bytes in a native log directory: arbitrary segment and metadata contents,
//! mutated valid logs, huge length fields.
//!
//! Guards against decoders that panic, allocate what a length field claims instead of
//! what the file holds, or serve entries from damaged records. Every entry points
//! (open in both modes, inspect, verify, repair_plan, iter_entries) must return `Ok` or
//! `Err`; whatever `open` accepts must read back without errors.
//! Proptest prints the failing input (and persists its seed) on failure.

#![allow(clippy::unwrap_used, clippy::cast_possible_truncation)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use keeperkit_vfs::{FaultFs, FileSystem, OpenMode};
use keeperkit_wal::native::{
    inspect, iter_entries, repair_plan, verify, Entry, NativeWal, NativeWalOptions, RecoveryMode,
};
use proptest::prelude::*;

fn opts(dir: &Path, recovery: RecoveryMode) -> NativeWalOptions {
    let mut o = NativeWalOptions::new(dir);
    o.segment_len = 4096;
    o.recovery = recovery;
    o
}

/// A small valid log: returns the file system and its files' bytes.
fn valid_log() -> (FaultFs, Vec<(PathBuf, Vec<u8>)>) {
    let fault = FaultFs::default();
    let fs: Arc<dyn FileSystem> = Arc::new(fault.clone());
    let dir = PathBuf::from("/log");
    let mut o = opts(&dir, RecoveryMode::Strict);
    o.compress_threshold = Some(256);
    let wal = NativeWal::open(Arc::clone(&fs), o).unwrap();
    for i in 1..=40u64 {
        let es: Vec<Entry> = (0..1 + i % 3)
            .map(|k| Entry {
                index: 0,
                term: 1,
                payload: vec![(i + k) as u8; (i * 37 % 300) as usize],
            })
            .collect();
        let payloads: Vec<&[u8]> = es.iter().map(|e| &e.payload[..]).collect();
        wal.append_next(1 + i / 10, &payloads).unwrap();
    }
    drop(wal);
    let files = fs
        .read_dir(&dir)
        .unwrap()
        .into_iter()
        .map(|e| {
            let p = dir.join(&e.name);
            let b = fs.read_all(&p).unwrap();
            (p, b)
        })
        .collect();
    (fault, files)
}

fn write(fs: &dyn FileSystem, path: &Path, bytes: &[u8]) {
    let f = fs.open(path, OpenMode::CreateTruncate).unwrap();
    f.write_all_at(bytes, 0).unwrap();
}

/// Runs every entry point; none may panic, and an accepted log must read back.
fn exercise(fs: &Arc<dyn FileSystem>, dir: &Path) {
    let _ = inspect(fs.as_ref(), dir);
    let _ = verify(fs.as_ref(), dir);
    let _ = repair_plan(fs.as_ref(), dir);
    if let Ok(it) = iter_entries(fs.as_ref(), dir, 0, u64::MAX) {
        for e in it.take(10_000) {
            if e.is_err() {
                break;
            }
        }
    }
    for mode in [RecoveryMode::Strict, RecoveryMode::TolerateTornTail] {
        if let Ok(wal) = NativeWal::open(Arc::clone(fs), opts(dir, mode)) {
            if let (Some(f), Some(l)) = (wal.first_index(), wal.last_index()) {
                let r = wal.read_range(f..l + 1);
                assert!(r.is_ok(), "an opened log must read back: {r:?}");
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_segment_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..600), keep_meta in any::<bool>()) {
        let (fault, files) = valid_log();
        let fs: Arc<dyn FileSystem> = Arc::new(fault.clone());
        let dir = PathBuf::from("/log");
        // Replace the first segment by arbitrary bytes behind a valid-looking prefix
        // half of the time.
        let (seg, orig) = files.iter().find(|(p, _)| p.to_string_lossy().contains("seg-")).unwrap();
        let mut b = if bytes.len() % 2 == 0 { orig[..64.min(orig.len())].to_vec() } else { Vec::new() };
        b.extend_from_slice(&bytes);
        write(fs.as_ref(), seg, &b);
        if !keep_meta {
            write(fs.as_ref(), &dir.join("meta"), &bytes[..bytes.len().min(64)]);
        }
        exercise(&fs, &dir);
    }

    #[test]
    fn mutated_valid_log(edits in proptest::collection::vec((any::<u16>(), any::<u16>(), any::<u8>()), 1..8)) {
        let (fault, files) = valid_log();
        let fs: Arc<dyn FileSystem> = Arc::new(fault.clone());
        let dir = PathBuf::from("/log");
        for (file_pick, pos, val) in edits {
            let (path, orig) = &files[file_pick as usize % files.len()];
            let mut b = fs.read_all(path).unwrap_or_else(|_| orig.clone());
            if b.is_empty() {
                continue;
            }
            let at = pos as usize % b.len();
            match val % 4 {
                // Overwrite a byte.
                0 | 1 => b[at] = val,
                // Plant a huge length or count in a 4-byte field.
                2 => {
                    let end = (at + 4).min(b.len());
                    b[at..end].copy_from_slice(&[0xff, 0xff, 0xff, 0x7f][..end - at]);
                }
                // Truncate.
                _ => b.truncate(at),
            }
            write(fs.as_ref(), path, &b);
        }
        exercise(&fs, &dir);
    }
}
