//! Criterion benches of the native WAL: append (1 KiB entries: synced with 1 and 4
//! writers, unsynced), read (a range from sealed, mapped segments and from the
//! active one), and recovery (opening a 64 MiB log).
//!
//! Data goes to `target/bench-tmp` (or `KEEPERKIT_BENCH_DIR`): a real disk, not
//! tmpfs. The side-by-side comparison with raft-engine is `wal_compare`.

#![allow(missing_docs)] // criterion_group! generates undocumented functions.

use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use keeperkit_benches::{
    bench_dir, keeperkit_append, keeperkit_fill, keeperkit_open, keeperkit_open_wal, ENTRY_LEN,
};
use keeperkit_wal::native::SyncPolicy;

fn append(c: &mut Criterion) {
    let mut g = c.benchmark_group("wal_append_1KiB");
    g.throughput(Throughput::Elements(1));
    g.sample_size(10).measurement_time(Duration::from_secs(3));
    for (name, sync, writers) in [
        ("synced_1_writer", SyncPolicy::Always, 1),
        ("synced_4_writers", SyncPolicy::Always, 4),
        ("unsynced", SyncPolicy::Never, 1),
    ] {
        let dir = bench_dir(&format!("crit-append-{name}")).expect("bench dir");
        let wal = Arc::new(keeperkit_open_wal(&dir, sync));
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                keeperkit_append(&wal, ENTRY_LEN, iters.max(writers), writers).elapsed
            })
        });
    }
    g.finish();
}

fn read(c: &mut Criterion) {
    let dir = bench_dir("crit-read").expect("bench dir");
    keeperkit_fill(&dir, 192 << 20);
    let wal = keeperkit_open_wal(&dir, SyncPolicy::Always);
    let last = wal.last_index().unwrap_or(1);
    let mut g = c.benchmark_group("wal_read_1KiB");
    g.sample_size(20);
    g.throughput(Throughput::Elements(1000));
    g.bench_function("range_1000_sealed_mmap", |b| {
        b.iter(|| wal.read_range(1000..2000).expect("read").len())
    });
    g.bench_function("range_1000_active_pread", |b| {
        b.iter(|| wal.read_range(last - 1000..last).expect("read").len())
    });
    g.finish();
}

fn recovery(c: &mut Criterion) {
    let dir = bench_dir("crit-recovery").expect("bench dir");
    keeperkit_fill(&dir, 64 << 20);
    let mut g = c.benchmark_group("wal_recovery");
    g.sample_size(10);
    g.throughput(Throughput::Bytes(64 << 20));
    g.bench_function("open_64MiB", |b| b.iter(|| keeperkit_open(&dir).1));
    g.finish();
}

criterion_group!(benches, append, read, recovery);
criterion_main!(benches);
