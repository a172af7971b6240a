//! Measurements behind `keeperkit bench`: what a disk gives a synced log (measured the
//! way etcd's `check perf` or PostgreSQL's `pg_test_fsync` do, next to keeperkit's own
//! log), and the save and load rates of a native snapshot of a synthetic tree.
//!
//! The functions write into a directory the caller chose and owns; they return plain
//! reports (serializable, the `--json` shapes of the command) and leave the rendering
//! to the caller.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use keeperkit_model::{Acl, Corruption, CorruptionKind, Stat, Zxid};
use keeperkit_snapshot::native::{snapshot_file_name, WriteOptions};
use keeperkit_tree::DataTree;
use keeperkit_vfs::{FileSystem, OpenMode};
use keeperkit_wal::native::{NativeWal, NativeWalOptions, SyncPolicy};
use serde::Serialize;

use crate::error::StorageError;
use crate::native::snapshot::{load_tree, save_tree, SnapshotPosition};

/// One measured case of [`wal`].
#[derive(Debug, Serialize, Clone)]
pub struct Case {
    /// What was measured.
    pub name: String,
    /// Operations (appends or write+sync pairs) per second.
    pub ops_per_s: f64,
    /// MiB of payload per second.
    pub mib_per_s: f64,
    /// Operations done.
    pub ops: u64,
    /// Seconds measured.
    pub seconds: f64,
    /// Ratio to the bare write+fdatasync loop.
    pub vs_bare_fdatasync: Option<f64>,
    /// Median latency of one operation, in microseconds.
    pub p50_us: f64,
    /// 99th percentile latency of one operation, in microseconds.
    pub p99_us: f64,
}

/// What [`wal`] measured (`bench wal --json`).
#[derive(Debug, Serialize)]
pub struct WalReport {
    /// Directory measured.
    pub dir: String,
    /// Entry size in bytes.
    pub entry_size: usize,
    /// Cases, in the order run.
    pub cases: Vec<Case>,
    /// Time to open (recover) the largest log written, in seconds.
    pub open_seconds: f64,
    /// Bytes in that log.
    pub open_log_bytes: u64,
    /// Entries in that log.
    pub open_log_entries: u64,
}

/// What one case measured: operations, seconds, and each operation's latency.
struct Measured {
    ops: u64,
    secs: f64,
    latencies_us: Vec<u32>,
}

fn micros(d: Duration) -> u32 {
    u32::try_from(d.as_micros()).unwrap_or(u32::MAX)
}

/// The quantile of `v` at `permille` / 1000 (sorted here; nearest rank).
fn quantile(v: &mut [u32], permille: usize) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_unstable();
    let i = (v.len() - 1) * permille.min(1000) / 1000;
    f64::from(v[i])
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StorageError + '_ {
    move |source| StorageError::Io { path: path.to_path_buf(), source }
}

fn bare_fdatasync(
    fs: &dyn FileSystem,
    dir: &Path,
    size: usize,
    dur: Duration,
) -> Result<Measured, StorageError> {
    let path = dir.join("bare-fdatasync.dat");
    let f = fs.open(&path, OpenMode::CreateTruncate).map_err(io(&path))?;
    // Preallocate like a WAL segment so each sync covers data, not a size change.
    let prealloc: u64 = 64 << 20;
    f.set_len(prealloc).map_err(io(&path))?;
    f.sync_all().map_err(io(&path))?;
    let buf = vec![0xA5u8; size];
    let start = Instant::now();
    let mut ops = 0u64;
    let mut off = 0u64;
    let mut latencies_us = Vec::new();
    while start.elapsed() < dur {
        if off + size as u64 > prealloc {
            off = 0;
        }
        let t = Instant::now();
        f.write_all_at(&buf, off).map_err(io(&path))?;
        f.sync_data().map_err(io(&path))?;
        latencies_us.push(micros(t.elapsed()));
        off += size as u64;
        ops += 1;
    }
    let secs = start.elapsed().as_secs_f64();
    drop(f);
    fs.remove_file(&path).map_err(io(&path))?;
    Ok(Measured { ops, secs, latencies_us })
}

fn open_wal(
    fs: &Arc<dyn FileSystem>,
    dir: PathBuf,
    sync: SyncPolicy,
) -> Result<NativeWal, StorageError> {
    let mut opts = NativeWalOptions::new(dir);
    opts.sync = sync;
    Ok(NativeWal::open(fs.clone(), opts)?)
}

fn wal_case(
    fs: &Arc<dyn FileSystem>,
    dir: PathBuf,
    sync: SyncPolicy,
    writers: usize,
    size: usize,
    dur: Duration,
) -> Result<Measured, StorageError> {
    let wal = Arc::new(open_wal(fs, dir, sync)?);
    let payload = vec![0x5Au8; size];
    let start = Instant::now();
    let latencies_us = std::thread::scope(|s| -> Result<Vec<u32>, StorageError> {
        let handles: Vec<_> = (0..writers)
            .map(|_| {
                let wal = wal.clone();
                let payload = &payload;
                s.spawn(move || -> Result<Vec<u32>, StorageError> {
                    let mut lat = Vec::new();
                    while start.elapsed() < dur {
                        let t = Instant::now();
                        wal.append_next(1, &[payload.as_slice()])?;
                        lat.push(micros(t.elapsed()));
                    }
                    Ok(lat)
                })
            })
            .collect();
        let mut all = Vec::new();
        for h in handles {
            // A writer that panicked is a bug here: pass the panic on.
            all.extend(h.join().unwrap_or_else(|p| std::panic::resume_unwind(p))?);
        }
        Ok(all)
    })?;
    if sync == SyncPolicy::Never {
        wal.sync()?;
    }
    let ops = latencies_us.len() as u64;
    Ok(Measured { ops, secs: start.elapsed().as_secs_f64(), latencies_us })
}

/// Measures, for `seconds` each, `size`-byte entries: a bare write+fdatasync loop,
/// keeperkit's log synced with 1 and 4 writers and unsynced, then the time to open
/// (recover) the biggest log written. Everything is written under `root`, which must
/// exist; the caller removes it.
pub fn wal(
    fs: &Arc<dyn FileSystem>,
    root: &Path,
    size: usize,
    seconds: f64,
) -> Result<WalReport, StorageError> {
    let dur = Duration::from_secs_f64(seconds);
    let mut cases = Vec::new();
    let mut add = |name: &str, mut m: Measured, bare: Option<f64>| {
        let rate = m.ops as f64 / m.secs.max(1e-9);
        cases.push(Case {
            name: name.to_string(),
            ops_per_s: rate,
            mib_per_s: rate * size as f64 / (1024.0 * 1024.0),
            ops: m.ops,
            seconds: m.secs,
            vs_bare_fdatasync: bare.map(|b| rate / b),
            p50_us: quantile(&mut m.latencies_us, 500),
            p99_us: quantile(&mut m.latencies_us, 990),
        });
        rate
    };
    let bare =
        add("bare write+fdatasync (1 writer)", bare_fdatasync(&**fs, root, size, dur)?, None);
    let synced =
        |dir: &str, writers| wal_case(fs, root.join(dir), SyncPolicy::Always, writers, size, dur);
    add("keeperkit synced, 1 writer", synced("synced-1", 1)?, Some(bare));
    add("keeperkit synced, 4 writers", synced("synced-4", 4)?, Some(bare));
    let unsynced = wal_case(fs, root.join("unsynced"), SyncPolicy::Never, 1, size, dur)?;
    add("keeperkit unsynced, 1 writer", unsynced, Some(bare));
    // Open (recover) the biggest log just written.
    let start = Instant::now();
    let wal = open_wal(fs, root.join("unsynced"), SyncPolicy::Never)?;
    let open_seconds = start.elapsed().as_secs_f64();
    let entries = match (wal.first_index(), wal.last_index()) {
        (Some(a), Some(b)) => b - a + 1,
        _ => 0,
    };
    let dir = root.join("unsynced");
    let log_bytes: u64 = fs.read_dir(&dir).map_err(io(&dir))?.iter().map(|e| e.len).sum();
    drop(wal);
    Ok(WalReport {
        dir: root.display().to_string(),
        entry_size: size,
        cases,
        open_seconds,
        open_log_bytes: log_bytes,
        open_log_entries: entries,
    })
}

/// What [`snapshot`] measured (`bench snapshot --json`).
#[derive(Debug, Serialize)]
pub struct SnapshotReport {
    /// The snapshot file written (left in place).
    pub file: String,
    /// Znodes in the tree, parents and the root included.
    pub nodes: u64,
    /// Leaf znodes asked for (`--nodes`).
    pub leaf_nodes: usize,
    /// Snapshot file length in bytes.
    pub file_bytes: u64,
    /// File bytes per znode.
    pub bytes_per_znode: f64,
    /// Seconds to build the tree in memory (not part of the save).
    pub build_seconds: f64,
    /// Seconds to save (write, fsync, rename).
    pub save_seconds: f64,
    /// Znodes saved per second.
    pub save_znodes_per_s: f64,
    /// Seconds to load (read, decompress, build the tree, check count and digest).
    pub load_seconds: f64,
    /// Znodes loaded per second.
    pub load_znodes_per_s: f64,
    /// Cores available to the process (compression threads of the save).
    pub cores: usize,
    /// The tree's digest (equal before the save and after the load).
    pub digest: String,
}

/// Znodes per bucket of the synthetic tree.
const PER_BUCKET: usize = 1000;

/// The synthetic tree, in zkgen's scale shape: `/scale`, then `n` leaves
/// `/scale/bXXXX/nXXXXXXX` in buckets of [`PER_BUCKET`], each with 0–48 pseudo-random
/// bytes (xorshift, fixed seed) and increasing zxids and times. Inserted in pre-order,
/// parents with their final child count and sequence counter.
pub fn synthetic_tree(n: usize) -> DataTree {
    let mut tree = DataTree::new();
    let acl = Acl::open_unsafe();
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    let mut rand = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut zxid = 0x1_0000_0000i64;
    let mut next_stat = |cversion: i32| {
        zxid += 1;
        let time = 1_700_000_000_000 + zxid / 8;
        Stat {
            czxid: zxid,
            mzxid: zxid,
            pzxid: zxid,
            ctime: time,
            mtime: time,
            cversion,
            ..Stat::default()
        }
    };
    let buckets = n.div_ceil(PER_BUCKET);
    // Counters saturate (a tree of more than 2^31 buckets does not fit in memory).
    let count = |k: usize| i32::try_from(k).unwrap_or(i32::MAX);
    // The paths are well formed and each parent comes first: an insert cannot fail.
    let must = |r: Result<(), keeperkit_tree::TreeError>| {
        r.unwrap_or_else(|e| unreachable!("synthetic tree: {e}"));
    };
    must(tree.insert_loaded_full(
        "/scale",
        Some(b""),
        &acl,
        &next_stat(count(buckets)),
        count(buckets),
        0,
    ));
    let mut data = Vec::with_capacity(48);
    let mut path = String::with_capacity(32);
    for b in 0..buckets {
        let first = b * PER_BUCKET;
        let k = (n - first).min(PER_BUCKET);
        let bucket = format!("/scale/b{b:04}");
        must(tree.insert_loaded_full(&bucket, Some(b""), &acl, &next_stat(count(k)), count(k), 0));
        for i in first..first + k {
            let len = usize::try_from(rand() % 49).unwrap_or(0);
            data.clear();
            while data.len() < len {
                data.extend_from_slice(&rand().to_le_bytes());
            }
            data.truncate(len);
            path.clear();
            let _ = write!(path, "{bucket}/n{i:07}");
            must(tree.insert_loaded_full(&path, Some(&data), &acl, &next_stat(0), 0, 0));
        }
    }
    tree.set_last_processed_zxid(Zxid(zxid));
    tree
}

/// Builds [`synthetic_tree`] of `leaves` leaves, saves it as a native snapshot in `root`
/// (which must exist; the file is left there), loads it back and checks node count and
/// digest: a loaded tree that differs is [`StorageError::Corrupt`].
pub fn snapshot(
    fs: &dyn FileSystem,
    root: &Path,
    leaves: usize,
) -> Result<SnapshotReport, StorageError> {
    let start = Instant::now();
    let tree = synthetic_tree(leaves);
    let build_seconds = start.elapsed().as_secs_f64();
    let nodes = tree.node_count() as u64;
    let digest = tree.digest();

    let pos = SnapshotPosition { last_index: 1, last_term: 1, cluster_config: Vec::new() };
    let name = snapshot_file_name(pos.last_index);
    let start = Instant::now();
    let written = save_tree(fs, root, &name, &tree, &pos, &WriteOptions::default())?;
    let save_seconds = start.elapsed().as_secs_f64();
    drop(tree);

    let start = Instant::now();
    let loaded = load_tree(fs, &written.path)?;
    let load_seconds = start.elapsed().as_secs_f64();
    let mismatch = |what: &str, saved: String, got: String| {
        let kind = CorruptionKind::bad_tree(format!(
            "the loaded tree's {what} is {got}, the saved tree's {saved}"
        ));
        StorageError::Corrupt(Corruption::new(&written.path, 0, kind))
    };
    let loaded_nodes = loaded.tree.node_count() as u64;
    if loaded_nodes != nodes {
        return Err(mismatch("node count", nodes.to_string(), loaded_nodes.to_string()));
    }
    if loaded.tree.digest() != digest {
        let got = loaded.tree.digest();
        return Err(mismatch("digest", format!("{digest:#018x}"), format!("{got:#018x}")));
    }
    drop(loaded);

    let n = nodes as f64;
    Ok(SnapshotReport {
        file: written.path.display().to_string(),
        nodes,
        leaf_nodes: leaves,
        file_bytes: written.file_len,
        bytes_per_znode: written.file_len as f64 / n,
        build_seconds,
        save_seconds,
        save_znodes_per_s: n / save_seconds.max(1e-9),
        load_seconds,
        load_znodes_per_s: n / load_seconds.max(1e-9),
        cores: std::thread::available_parallelism().map_or(1, |c| c.get()),
        digest: format!("{digest:#018x}"),
    })
}
