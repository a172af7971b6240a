//! Opening (recovering) a ZooKeeper data directory: newest snapshot + log replay, as
//! `keeperkit dump` does. Reports znodes/s.
//!
//! By default it opens the bundled `basic` fixture. Point `KEEPERKIT_ZK_DIR` at a big
//! directory (e.g. the 1M-znode one made by `scripts/make-1m.sh`) for the figure the
//! README compares with ZooKeeper's own startup time:
//!
//! ```sh
//! KEEPERKIT_ZK_DIR=/work/scratch/zk1m/data cargo bench -p keeperkit-benches --bench zk_open
//! ```
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use keeperkit_storage::zookeeper::{recover, NoProgress, RecoverOptions, ZkLayout};

fn dir() -> PathBuf {
    std::env::var_os("KEEPERKIT_ZK_DIR").map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../testdata/zookeeper-3.8.0/basic/data")
    })
}

fn open(c: &mut Criterion) {
    let fs = keeperkit_vfs::std_fs();
    let dir = dir();
    let layout = ZkLayout::locate(&*fs, &dir, None).expect("a ZooKeeper data directory");
    let opts = RecoverOptions::default();
    let first = recover(&*fs, &layout, &opts, &mut NoProgress).expect("recoverable");
    let nodes = first.tree.node_count() as u64;
    eprintln!(
        "zk_open: {} ({} znodes, {} txns replayed after {})",
        dir.display(),
        nodes,
        first.report.txns_applied,
        first.report.snapshot.as_ref().map(|p| p.display().to_string()).unwrap_or_default()
    );
    drop(first);
    let mut g = c.benchmark_group("zk_open");
    g.throughput(Throughput::Elements(nodes));
    if nodes > 100_000 {
        g.sample_size(10);
        g.measurement_time(Duration::from_secs(30));
    }
    g.bench_function("recover", |b| {
        b.iter(|| recover(&*fs, &layout, &opts, &mut NoProgress).expect("recoverable"))
    });
    g.finish();
}

criterion_group!(benches, open);
criterion_main!(benches);
