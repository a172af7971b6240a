//! Native snapshots: save and load of a synthetic tree in zkgen's scale shape
//! (`/scale/bXXXX/nXXXXXXX`, 1000 nodes per bucket, 0–48 random bytes each), in
//! znodes/s and bytes on disk, next to ClickHouse Keeper's design on the same tree:
//! every node serialized (its V6 node record) into one zstd stream at level 3.
//!
//! 1M nodes by default; `KEEPERKIT_BENCH_NODES` sets another count. Files go to
//! `KEEPERKIT_BENCH_DIR` (or `target/bench-tmp`); every save ends with fsync.
//!
//! ```sh
//! cargo bench -p keeperkit-benches --bench snapshot
//! KEEPERKIT_BENCH_NODES=5000000 cargo bench -p keeperkit-benches --bench snapshot
//! ```
//!
//! Before criterion runs, one timed pass of each case prints a summary (znodes/s,
//! bytes, the ratios the DESIGN targets are about).
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use keeperkit_model::{Acl, Stat, Zxid};
use keeperkit_snapshot::native::WriteOptions;
use keeperkit_storage::native::snapshot::{load_tree, save_tree, SnapshotPosition};
use keeperkit_tree::DataTree;
use keeperkit_vfs::StdFs;

const PER_BUCKET: usize = 1000;

fn node_count() -> usize {
    std::env::var("KEEPERKIT_BENCH_NODES").ok().and_then(|s| s.parse().ok()).unwrap_or(1_000_000)
}

/// The zkgen scale shape: `/scale/bXXXX/nXXXXXXX`, `n` leaves in buckets of 1000,
/// 0–48 random bytes each, increasing zxids and times.
fn scale_tree(n: usize) -> DataTree {
    let mut t = DataTree::new();
    let open = Acl::open_unsafe();
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let mut rand = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut zxid = 0x1_0000_0000i64;
    let mut stat = |cversion: i32| {
        zxid += 1;
        let time = 1_700_000_000_000 + zxid / 8;
        Stat {
            czxid: zxid,
            mzxid: zxid,
            ctime: time,
            mtime: time,
            cversion,
            pzxid: zxid,
            ..Stat::default()
        }
    };
    let buckets = n.div_ceil(PER_BUCKET);
    t.insert_loaded_full("/scale", Some(b""), &open, &stat(0), 0, 0).unwrap();
    let mut data = Vec::with_capacity(48);
    let mut left = n;
    for b in 0..buckets {
        let k = left.min(PER_BUCKET);
        left -= k;
        let bucket = format!("/scale/b{b:04}");
        let seq = i32::try_from(k).unwrap();
        t.insert_loaded_full(&bucket, Some(b""), &open, &stat(seq), seq, 0).unwrap();
        for i in 0..k {
            data.clear();
            let len = rand() % 49;
            data.extend((0..len).map(|_| rand().to_le_bytes()[3]));
            let path = format!("{bucket}/n{:07}", b * PER_BUCKET + i);
            t.insert_loaded_full(&path, Some(&data), &open, &stat(0), 0, 0).unwrap();
        }
    }
    t.set_last_processed_zxid(Zxid(zxid));
    t
}

/// ClickHouse Keeper's design: one zstd stream (level 3) of every node's record
/// (snapshot format V6: path and data as varint-length strings, ACL id u64, stat as
/// fixed little-endian fields with numChildren and the sequence counter), written to
/// one file and fsynced. Returns the file length.
fn single_stream_save(tree: &DataTree, path: &Path) -> u64 {
    let file = fs::File::create(path).unwrap();
    let mut z =
        zstd::stream::write::Encoder::new(BufWriter::with_capacity(1 << 20, file), 3).unwrap();
    let mut rec = Vec::with_capacity(256);
    let put_str = |rec: &mut Vec<u8>, b: &[u8]| {
        let mut n = b.len() as u64;
        while n >= 0x80 {
            rec.push((n & 0x7F) as u8 | 0x80);
            n >>= 7;
        }
        rec.push((n & 0x7F) as u8);
        rec.extend_from_slice(b);
    };
    tree.for_each_preorder(|p, n| {
        let s = n.stat();
        rec.clear();
        put_str(&mut rec, p.as_bytes());
        put_str(&mut rec, n.data().unwrap_or_default());
        rec.extend_from_slice(&0u64.to_le_bytes());
        rec.extend_from_slice(&s.czxid.to_le_bytes());
        rec.extend_from_slice(&s.mzxid.to_le_bytes());
        rec.extend_from_slice(&s.ctime.to_le_bytes());
        rec.extend_from_slice(&s.mtime.to_le_bytes());
        rec.extend_from_slice(&s.version.to_le_bytes());
        rec.extend_from_slice(&s.cversion.to_le_bytes());
        rec.extend_from_slice(&s.aversion.to_le_bytes());
        rec.extend_from_slice(&n.stored_stat().ephemeral_owner.to_le_bytes());
        rec.extend_from_slice(&s.num_children.to_le_bytes());
        rec.extend_from_slice(&s.pzxid.to_le_bytes());
        rec.extend_from_slice(&n.seq().to_le_bytes());
        z.write_all(&rec).unwrap();
    });
    let buf = z.finish().unwrap();
    let file = buf.into_inner().map_err(|e| e.into_error()).unwrap();
    file.sync_all().unwrap();
    file.metadata().unwrap().len()
}

fn native_save(tree: &DataTree, dir: &Path) -> u64 {
    let pos = SnapshotPosition { last_index: 1, last_term: 1, cluster_config: Vec::new() };
    let w = save_tree(&StdFs, dir, "bench.kks", tree, &pos, &WriteOptions::default()).unwrap();
    w.file_len
}

fn native_load(path: &Path) -> DataTree {
    load_tree(&StdFs, path).unwrap().tree
}

fn timed<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let start = Instant::now();
    let v = f();
    (v, start.elapsed())
}

fn per_sec(n: usize, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64().max(1e-9)
}

fn snapshot(c: &mut Criterion) {
    let n = node_count();
    let dir: PathBuf = keeperkit_benches::bench_dir("snapshot").unwrap();
    let (tree, build) = timed(|| scale_tree(n));
    let nodes = tree.node_count();
    let cores = std::thread::available_parallelism().map(|c| c.get()).unwrap_or(1);
    eprintln!(
        "snapshot: {nodes} znodes built in {build:.2?}; {cores} cores; files in {}",
        dir.display()
    );

    // One timed pass of each, for the summary.
    let (native_len, save) = timed(|| native_save(&tree, &dir));
    let native_path = dir.join("bench.kks");
    let (loaded, load) = timed(|| native_load(&native_path));
    assert_eq!(loaded.node_count(), nodes);
    assert_eq!(loaded.digest(), tree.digest());
    drop(loaded);
    let single_path = dir.join("single-stream.zst");
    let (single_len, single) = timed(|| single_stream_save(&tree, &single_path));
    eprintln!(
        "snapshot: native save {save:.2?} ({:.2}M znodes/s), load {load:.2?} ({:.2}M znodes/s), \
         {native_len} bytes",
        per_sec(nodes, save) / 1e6,
        per_sec(nodes, load) / 1e6
    );
    eprintln!(
        "snapshot: single zstd-3 stream save {single:.2?} ({:.2}M znodes/s), {single_len} bytes; \
         native is {:.2}x faster to write, {:.3}x its size",
        per_sec(nodes, single) / 1e6,
        single.as_secs_f64() / save.as_secs_f64(),
        native_len as f64 / single_len as f64
    );

    let mut g = c.benchmark_group("snapshot");
    g.throughput(Throughput::Elements(nodes as u64));
    if nodes > 100_000 {
        g.sample_size(10);
        g.warm_up_time(Duration::from_secs(1));
        g.measurement_time(Duration::from_secs(20));
    }
    g.bench_function("native_save", |b| b.iter(|| native_save(&tree, &dir)));
    // Dropping a 1M-node tree is not part of loading it.
    g.bench_function("native_load", |b| b.iter_with_large_drop(|| native_load(&native_path)));
    g.bench_function("single_stream_zstd3_save", |b| {
        b.iter(|| single_stream_save(&tree, &single_path))
    });
    g.finish();
    let _ = fs::remove_dir_all(&dir);
}

criterion_group!(benches, snapshot);
criterion_main!(benches);
