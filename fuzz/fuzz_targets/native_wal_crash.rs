//! Random operations and power losses against the native WAL, checked against a model.
//!
//! Each input byte pair is an operation: append a batch (synced: every successful
//! append is acknowledged), truncate a suffix, purge a prefix, or crash (a power loss
//! that drops unsynced bytes and tears pending writes at any byte) followed by a
//! reopen. After every reopen the log must hold exactly the acknowledged entries that
//! were not truncated, byte for byte, and nothing after them.
#![no_main]

use std::path::Path;
use std::sync::Arc;

use keeperkit_vfs::fault::{FaultConfig, FaultFs};
use keeperkit_vfs::FileSystem;
use keeperkit_wal::native::{NativeWal, NativeWalOptions, RecoveryMode, SyncPolicy};
use libfuzzer_sys::fuzz_target;

fn open(fs: &FaultFs) -> NativeWal {
    let shared: Arc<dyn FileSystem> = Arc::new(fs.clone());
    let mut opts = NativeWalOptions::new(Path::new("/wal"));
    opts.sync = SyncPolicy::Always;
    opts.recovery = RecoveryMode::TolerateTornTail;
    opts.segment_len = 4 << 10;
    opts.preallocate = true;
    opts.compress_threshold = Some(512);
    NativeWal::open(shared, opts).expect("a crash must never leave a log that does not open")
}

fn payload(index: u64, len: usize) -> Vec<u8> {
    (0..len).map(|i| (index as usize).wrapping_mul(31).wrapping_add(i) as u8).collect()
}

fuzz_target!(|data: &[u8]| {
    let fs = FaultFs::new(FaultConfig { torn_writes: true, ..FaultConfig::default() });
    let mut wal = open(&fs);
    // The model: acknowledged entries still in the log, as (index, payload length).
    let mut model: Vec<(u64, usize)> = Vec::new();
    let mut purged = 0u64;
    for (step, op) in data.chunks(2).take(200).enumerate() {
        let (kind, arg) = (op[0] % 8, usize::from(*op.get(1).unwrap_or(&0)));
        match kind {
            0..=3 => {
                let count = arg % 4 + 1;
                let next = wal.next_index();
                let payloads: Vec<Vec<u8>> =
                    (0..count).map(|i| payload(next + i as u64, (arg * 7 + i * 13) % 700)).collect();
                let refs: Vec<&[u8]> = payloads.iter().map(Vec::as_slice).collect();
                let range = wal.append_next(1, &refs).expect("append");
                for (i, p) in range.zip(payloads.iter()) {
                    model.push((i, p.len()));
                }
            }
            4 => {
                if let Some(&(first, _)) = model.first() {
                    let from = first + (arg as u64 % (model.len() as u64 + 1));
                    wal.truncate_suffix(from).expect("truncate");
                    model.retain(|&(i, _)| i < from);
                }
            }
            5 => {
                if let Some(&(first, _)) = model.first() {
                    let upto = first + (arg as u64 % model.len() as u64);
                    debug_assert!(upto > purged);
                    wal.purge(upto).expect("purge");
                    purged = purged.max(upto);
                    // Purged entries are no longer promised (whole segments go; the
                    // rest is hidden by the purge marker).
                    model.retain(|&(i, _)| i > upto);
                }
            }
            _ => {
                drop(wal);
                fs.crash(step as u64 ^ (arg as u64) << 32);
                wal = open(&fs);
                match model.last() {
                    Some(&(last, _)) => assert_eq!(
                        wal.last_index(),
                        Some(last),
                        "after a crash the log must end at the last acknowledged entry"
                    ),
                    None => assert!(
                        wal.last_index().is_none_or(|l| l <= purged),
                        "entries truncated before the crash came back"
                    ),
                }
                for &(i, len) in &model {
                    let e = wal.read(i).expect("acknowledged entry must survive");
                    assert_eq!(e.payload, payload(i, len), "entry {i} changed");
                }
            }
        }
    }
});
