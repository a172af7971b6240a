//! The native engine: how long writers are blocked when a snapshot starts.
//!
//! A snapshot starts by cloning the tree under the tree lock (copy-on-write, O(1)); that
//! clone is all the time a writer waits. Measured on a tree of `KEEPERKIT_BENCH_NODES`
//! znodes (default 200,000): `snapshot_start/view` (the clone under the lock),
//! `snapshot_start/start_snapshot` (clone + spawning the serializer thread, which is
//! joined outside the timing), and for scale `apply/write_unsynced` (one logged,
//! applied txn with `SyncPolicy::Never`).
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use keeperkit_model::txn::CreateTxn;
use keeperkit_model::{Acl, OpCode, SessionId, Txn, TxnBody, TxnHeader, Zxid};
use keeperkit_storage::engine::{NativeEngine, NativeEngineOptions};
use keeperkit_storage::traits::{SnapshotStore, StateMachine};
use keeperkit_wal::native::SyncPolicy;

fn create(zxid: i64, path: String) -> Vec<u8> {
    Txn {
        header: TxnHeader {
            client_id: SessionId(0),
            cxid: 0,
            zxid: Zxid(zxid),
            time: zxid,
            op: OpCode::CREATE,
        },
        body: TxnBody::Create(CreateTxn {
            path,
            data: Some(vec![b'x'; 32]),
            acl: Acl::open_unsafe(),
            ephemeral: false,
            parent_cversion: -1,
            ttl: None,
            v0: false,
        }),
        digest: None,
    }
    .to_bytes()
}

fn bench(c: &mut Criterion) {
    let nodes: usize =
        std::env::var("KEEPERKIT_BENCH_NODES").ok().and_then(|v| v.parse().ok()).unwrap_or(200_000);
    let tmp = tempfile::tempdir().unwrap();
    let mut o = NativeEngineOptions::new(tmp.path().join("data"));
    o.sync = SyncPolicy::Never;
    o.keep_snapshots = 1;
    let e = NativeEngine::open(Arc::new(keeperkit_vfs::StdFs), o).unwrap();
    let mut zxid = 0i64;
    let mut batch = Vec::new();
    for i in 0..nodes {
        zxid += 1;
        let parent = i / 1000;
        let path = if i % 1000 == 0 { format!("/p{parent}") } else { format!("/p{parent}/n{i}") };
        batch.push(create(zxid, path));
        if batch.len() == 1000 || i + 1 == nodes {
            let refs: Vec<&[u8]> = batch.iter().map(Vec::as_slice).collect();
            e.write(1, &refs).unwrap();
            batch.clear();
        }
    }
    let mut g = c.benchmark_group("snapshot_start");
    g.bench_function("view", |b| b.iter(|| std::hint::black_box(e.view())));
    g.bench_function("start_snapshot", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let t = Instant::now();
                let ticket = e.start_snapshot().unwrap();
                total += t.elapsed();
                ticket.wait().unwrap();
            }
            total
        })
    });
    g.finish();
    let mut g = c.benchmark_group("apply");
    g.bench_function("write_unsynced", |b| {
        b.iter(|| {
            zxid += 1;
            let t = create(zxid, format!("/q{zxid}"));
            e.write(1, &[&t]).unwrap()
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
