//! Shared workloads for keeperkit's benches and side-by-side comparisons.
//!
//! Every workload writes to a real directory (see [`bench_dir`]): the numbers are
//! about the disk, so a tmpfs `/tmp` would make them meaningless. Each function
//! returns the elapsed time and the operation count, so criterion benches and the
//! comparison table (`benches/wal_compare.rs`) report the same thing.
//!
//! Workloads, all with 1 KiB entries unless told otherwise:
//! - [`bare_write_fdatasync`]: the floor, an appending `pwrite` + `fdatasync` loop on
//!   one file, the way `pg_test_fsync` and etcd's `check perf` measure a disk;
//! - [`keeperkit_append`] and [`raft_engine_append`]: synced appends from 1 or more
//!   writer threads (group commit shares one fdatasync among concurrent writers), and
//!   unsynced appends;
//! - [`keeperkit_fill`]/[`keeperkit_open`] and [`raft_engine_fill`]/[`raft_engine_open`]:
//!   write a log of a given size, then time opening (recovering) it.

#![allow(
    clippy::cast_possible_truncation,
    reason = "workload generators: byte mixing and indexes modulo small pool sizes"
)]

use std::fs;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use keeperkit_vfs::{FileSystem, StdFs};
use keeperkit_wal::native::{EntryRef, NativeWal, NativeWalOptions, SyncPolicy};
use protobuf::well_known_types::BytesValue;
use protobuf::Message;

/// The entry size of the standard workloads.
pub const ENTRY_LEN: usize = 1024;

/// A directory for bench data on a real disk: `$KEEPERKIT_BENCH_DIR/<name>` if set,
/// else `<target dir>/bench-tmp/<name>`. Emptied first.
pub fn bench_dir(name: &str) -> io::Result<PathBuf> {
    let base = match std::env::var_os("KEEPERKIT_BENCH_DIR") {
        Some(d) => PathBuf::from(d),
        None => default_base(),
    };
    let dir = base.join(name);
    if dir.exists() {
        fs::remove_dir_all(&dir)?;
    }
    fs::create_dir_all(&dir)?;
    Ok(dir)
}

fn default_base() -> PathBuf {
    // `target/bench-tmp` next to the bench binary (target/release/deps/..).
    std::env::current_exe()
        .ok()
        .and_then(|p| p.ancestors().nth(3).map(|t| t.join("bench-tmp")))
        .unwrap_or_else(|| PathBuf::from("target/bench-tmp"))
}

/// A deterministic, poorly compressible payload.
pub fn payload(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// `count` distinct payloads of `len` bytes (so that batches do not compress
/// better than real data would).
pub fn payload_pool(len: usize, count: usize, seed: u64) -> Vec<Vec<u8>> {
    (0..count as u64).map(|i| payload(len, seed.wrapping_mul(1000).wrapping_add(i))).collect()
}

/// One measurement: `ops` operations in `elapsed`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Rate {
    /// Operations done.
    pub ops: u64,
    /// Time taken.
    pub elapsed: Duration,
}

impl Rate {
    /// Operations per second.
    pub fn per_sec(&self) -> f64 {
        self.ops as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// A bare `pwrite` + `fdatasync` loop on one file, run in slices (so that it can be
/// interleaved with the other cases and see the same disk conditions).
#[derive(Debug)]
pub struct BareLoop {
    file: fs::File,
    path: PathBuf,
    off: u64,
    buf: Vec<u8>,
}

impl BareLoop {
    /// A new file `name` in `dir`. With `prezero_len`, that many bytes of zeros are
    /// written and synced first: then fdatasync flushes data without committing
    /// block allocations, the fastest a WAL can be on this disk. Without, every
    /// write appends (the file grows), as in `pg_test_fsync` or etcd's `check perf`.
    pub fn new(
        dir: &Path,
        name: &str,
        len: usize,
        prezero_len: Option<u64>,
    ) -> io::Result<BareLoop> {
        let path = dir.join(name);
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(true)
            .read(true)
            .write(true)
            .open(&path)?;
        if let Some(total) = prezero_len {
            let zeros = vec![0u8; 1 << 20];
            let mut off = 0u64;
            while off < total {
                file.write_all_at(&zeros, off)?;
                off += zeros.len() as u64;
            }
            file.sync_all()?;
        }
        Ok(BareLoop { file, path, off: 0, buf: payload(len, 1) })
    }

    /// `n` more writes, each followed by `fdatasync`.
    pub fn run(&mut self, n: u64) -> io::Result<Rate> {
        let start = Instant::now();
        for _ in 0..n {
            self.file.write_all_at(&self.buf, self.off)?;
            self.file.sync_data()?;
            self.off += self.buf.len() as u64;
        }
        Ok(Rate { ops: n, elapsed: start.elapsed() })
    }
}

impl Drop for BareLoop {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

/// The floor: `n` appending writes of `len` bytes, each followed by `fdatasync`, on
/// a new file in `dir`.
pub fn bare_write_fdatasync(dir: &Path, len: usize, n: u64) -> io::Result<Rate> {
    BareLoop::new(dir, "bare.dat", len, None)?.run(n)
}

/// Like [`bare_write_fdatasync`], over a pre-zeroed file (see [`BareLoop::new`]).
pub fn bare_write_fdatasync_prezeroed(dir: &Path, len: usize, n: u64) -> io::Result<Rate> {
    BareLoop::new(dir, "bare-zeroed.dat", len, Some(len as u64 * n))?.run(n)
}

impl Rate {
    /// The sum of two measurements.
    pub fn plus(self, other: Rate) -> Rate {
        Rate { ops: self.ops + other.ops, elapsed: self.elapsed + other.elapsed }
    }
}

/// `KEEPERKIT_BENCH_PREALLOCATE=0` turns preallocation (and zero-filling) off.
pub fn keeperkit_options(dir: &Path, sync: SyncPolicy) -> NativeWalOptions {
    let mut o = NativeWalOptions::new(dir);
    o.sync = sync;
    if std::env::var("KEEPERKIT_BENCH_PREALLOCATE").is_ok_and(|v| v == "0") {
        o.preallocate = false;
    }
    o
}

/// Opens a keeperkit log on the real file system.
pub fn keeperkit_open_wal(dir: &Path, sync: SyncPolicy) -> NativeWal {
    let fs: Arc<dyn FileSystem> = Arc::new(StdFs);
    match NativeWal::open(fs, keeperkit_options(dir, sync)) {
        Ok(w) => w,
        Err(e) => panic!("opening {}: {e}", dir.display()),
    }
}

/// `n` appends of one `len`-byte entry each, spread over `writers` threads, on the
/// log `wal` (synced or not as it was opened).
pub fn keeperkit_append(wal: &Arc<NativeWal>, len: usize, n: u64, writers: u64) -> Rate {
    let per = n / writers;
    let start = Instant::now();
    std::thread::scope(|s| {
        for t in 0..writers {
            let wal = Arc::clone(wal);
            s.spawn(move || {
                let pool = payload_pool(len, 64, t + 1);
                for k in 0..per {
                    let p = &pool[k as usize % pool.len()];
                    if writers == 1 {
                        let index = wal.next_index();
                        if let Err(e) = wal.append(&[EntryRef { index, term: 1, payload: p }]) {
                            panic!("append: {e}");
                        }
                    } else if let Err(e) = wal.append_next(1, &[p]) {
                        panic!("append: {e}");
                    }
                }
            });
        }
    });
    Rate { ops: per * writers, elapsed: start.elapsed() }
}

/// Fills a new keeperkit log in `dir` with `bytes` of 1 KiB entries (unsynced, one
/// final sync) and closes it.
pub fn keeperkit_fill(dir: &Path, bytes: u64) {
    let wal = Arc::new(keeperkit_open_wal(dir, SyncPolicy::Never));
    let n = bytes / ENTRY_LEN as u64;
    let pool = payload_pool(ENTRY_LEN, 256, 9);
    let mut done = 0;
    while done < n {
        let k = (n - done).min(16) as usize;
        let batch: Vec<&[u8]> =
            (0..k).map(|j| &pool[(done as usize + j) % pool.len()][..]).collect();
        if let Err(e) = wal.append_next(1, &batch) {
            panic!("fill: {e}");
        }
        done += k as u64;
    }
    if let Err(e) = wal.sync() {
        panic!("fill sync: {e}");
    }
}

/// Times opening the keeperkit log in `dir`; returns the time and the entry count.
pub fn keeperkit_open(dir: &Path) -> (Duration, u64) {
    let start = Instant::now();
    let wal = keeperkit_open_wal(dir, SyncPolicy::Always);
    let elapsed = start.elapsed();
    let n = match (wal.first_index(), wal.last_index()) {
        (Some(f), Some(l)) => l - f + 1,
        _ => 0,
    };
    (elapsed, n)
}

/// The raft-engine message type of the benches: a protobuf `BytesValue` whose first
/// 8 bytes hold the entry index (raft-engine asks the entry for its index).
#[derive(Debug)]
pub struct BenchMessage;

impl raft_engine::MessageExt for BenchMessage {
    type Entry = BytesValue;

    fn index(e: &BytesValue) -> u64 {
        let mut b = [0u8; 8];
        if let Some(s) = e.value.get(..8) {
            b.copy_from_slice(s);
        }
        u64::from_le_bytes(b)
    }
}

fn raft_entry(index: u64, body: &[u8]) -> BytesValue {
    let mut value = Vec::with_capacity(8 + body.len());
    value.extend_from_slice(&index.to_le_bytes());
    value.extend_from_slice(body);
    let mut e = BytesValue::new();
    e.value = value;
    e
}

/// Opens raft-engine in `dir` with its default configuration.
pub fn raft_engine_open_engine(dir: &Path) -> raft_engine::Engine {
    let cfg = raft_engine::Config { dir: dir.to_string_lossy().into_owned(), ..Default::default() };
    match raft_engine::Engine::open(cfg) {
        Ok(e) => e,
        Err(e) => panic!("raft-engine open {}: {e}", dir.display()),
    }
}

/// `n` writes of one `len`-byte entry each (`len - 8` bytes of body after the index)
/// over `writers` threads, each thread its own region (raft-engine groups concurrent
/// writers into one write and one fdatasync).
pub fn raft_engine_append(
    engine: &Arc<raft_engine::Engine>,
    len: usize,
    n: u64,
    writers: u64,
    sync: bool,
) -> Rate {
    let per = n / writers;
    let start = Instant::now();
    std::thread::scope(|s| {
        for t in 0..writers {
            let engine = Arc::clone(engine);
            s.spawn(move || {
                let pool = payload_pool(len.saturating_sub(8), 64, t + 1);
                let region = t + 1;
                let first = engine.last_index(region).map_or(1, |i| i + 1);
                let mut batch = raft_engine::LogBatch::default();
                for (k, next) in (0..per).zip(first..) {
                    let e = raft_entry(next, &pool[k as usize % pool.len()]);
                    if let Err(err) = batch.add_entries::<BenchMessage>(region, &[e]) {
                        panic!("raft-engine add_entries: {err}");
                    }
                    if let Err(err) = engine.write(&mut batch, sync) {
                        panic!("raft-engine write: {err}");
                    }
                }
            });
        }
    });
    Rate { ops: per * writers, elapsed: start.elapsed() }
}

/// Fills a new raft-engine log in `dir` with `bytes` of 1 KiB entries (batches of 16,
/// unsynced, a final sync).
pub fn raft_engine_fill(dir: &Path, bytes: u64) {
    let engine = raft_engine_open_engine(dir);
    let n = bytes / ENTRY_LEN as u64;
    let pool = payload_pool(ENTRY_LEN - 8, 256, 9);
    let mut batch = raft_engine::LogBatch::default();
    let mut index = 1;
    while index <= n {
        let k = (n - index + 1).min(16);
        let es: Vec<BytesValue> =
            (index..index + k).map(|i| raft_entry(i, &pool[i as usize % pool.len()])).collect();
        if let Err(e) = batch.add_entries::<BenchMessage>(1, &es) {
            panic!("raft-engine add_entries: {e}");
        }
        if let Err(e) = engine.write(&mut batch, index + k > n) {
            panic!("raft-engine write: {e}");
        }
        index += k;
    }
}

/// Times opening raft-engine in `dir`; returns the time and the entry count of
/// region 1.
pub fn raft_engine_open(dir: &Path) -> (Duration, u64) {
    let start = Instant::now();
    let engine = raft_engine_open_engine(dir);
    let elapsed = start.elapsed();
    let n = match (engine.first_index(1), engine.last_index(1)) {
        (Some(f), Some(l)) => l - f + 1,
        _ => 0,
    };
    (elapsed, n)
}

/// Reads `count` entries starting at `from` from a raft-engine region (for checks).
pub fn raft_engine_read(engine: &raft_engine::Engine, region: u64, from: u64, count: u64) -> usize {
    let mut v = Vec::new();
    match engine.fetch_entries_to::<BenchMessage>(region, from, from + count, None, &mut v) {
        Ok(_) => v.iter().map(|e| e.compute_size() as usize).sum(),
        Err(e) => panic!("raft-engine fetch: {e}"),
    }
}

/// Bytes of all regular files under `dir` (to report log sizes).
pub fn dir_size(dir: &Path) -> u64 {
    fs::read_dir(dir)
        .map(|it| {
            it.filter_map(|e| e.ok())
                .filter_map(|e| e.metadata().ok())
                .filter(|m| m.is_file())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}
