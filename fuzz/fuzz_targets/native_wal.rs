//! The native WAL's segment and record decoders on arbitrary bytes.
//!
//! The input becomes a log directory in an in-memory file system: a `meta` file and
//! one to three segment files, cut from the input at lengths it chooses. Every offline
//! entry point (`inspect`, `verify`, `repair_plan`, `iter_entries`) and `open` in both
//! recovery modes must return `Ok` or `Err`: never panic, never allocate more than the
//! input justifies, never loop.
#![no_main]

use std::path::Path;
use std::sync::Arc;

use keeperkit_vfs::fault::{FaultConfig, FaultFs};
use keeperkit_vfs::{FileSystem, OpenMode};
use keeperkit_wal::native::{self, NativeWal, NativeWalOptions, RecoveryMode, SyncPolicy};
use libfuzzer_sys::fuzz_target;

fn put(fs: &FaultFs, path: &Path, bytes: &[u8]) {
    let f = fs.open(path, OpenMode::CreateTruncate).expect("in-memory create");
    f.write_all_at(bytes, 0).expect("in-memory write");
    f.sync_all().expect("in-memory sync");
}

fuzz_target!(|data: &[u8]| {
    let fs = FaultFs::new(FaultConfig::default());
    let dir = Path::new("/log");
    fs.create_dir_all(dir).expect("mkdir");
    let (head, mut rest) = data.split_at(data.len().min(1));
    let segments = usize::from(head.first().copied().unwrap_or(0) % 3) + 1;
    let meta_len = rest.len().min(64);
    put(&fs, &dir.join(native::META_FILE_NAME), &rest[..meta_len]);
    rest = &rest[meta_len..];
    for seq in 0..segments {
        let take = if seq + 1 == segments {
            rest.len()
        } else {
            let want = rest.first().map_or(0, |b| usize::from(*b) * 64);
            rest = rest.get(1..).unwrap_or_default();
            want.min(rest.len())
        };
        put(&fs, &dir.join(native::segment_file_name(seq as u64 + 1)), &rest[..take]);
        rest = &rest[take..];
    }
    fs.sync_dir(dir).expect("sync dir");

    let _ = native::inspect(&fs, dir);
    let _ = native::verify(&fs, dir);
    let _ = native::repair_plan(&fs, dir);
    if let Ok(iter) = native::iter_entries(&fs, dir, 0, u64::MAX) {
        for (n, e) in iter.enumerate() {
            if e.is_err() || n > 1_000_000 {
                break;
            }
        }
    }
    for recovery in [RecoveryMode::Strict, RecoveryMode::TolerateTornTail] {
        let shared: Arc<dyn FileSystem> = Arc::new(fs.clone());
        let mut opts = NativeWalOptions::new(dir);
        opts.recovery = recovery;
        opts.sync = SyncPolicy::Never;
        opts.preallocate = false;
        if let Ok(wal) = NativeWal::open(shared, opts) {
            if let (Some(a), Some(b)) = (wal.first_index(), wal.last_index()) {
                let _ = wal.read_range(a..b.saturating_add(1).min(a.saturating_add(10_000)));
            }
        }
    }
});
