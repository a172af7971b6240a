//! `keeperkit bench wal DIR`: what the user's disk gives a synced log, measured the way
//! etcd's `check perf` or PostgreSQL's `pg_test_fsync` do, next to keeperkit's own log.
//!
//! `keeperkit bench snapshot DIR`: save and load rates of a native snapshot of a
//! synthetic tree in zkgen's scale shape (`/scale/bXXXX/nXXXXXXX`, 1000 znodes per
//! bucket, 0–48 random bytes each).

use std::fmt::Write as _;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::anyhow;
use keeperkit_vfs::{FileSystem, OpenMode};
use keeperkit_wal::native::{NativeWal, NativeWalOptions, SyncPolicy};
use serde::Serialize;

use keeperkit_model::{Acl, Stat, Zxid};
use keeperkit_snapshot::native::{snapshot_file_name, WriteOptions};
use keeperkit_storage::native::snapshot::{load_tree, save_tree, SnapshotPosition};
use keeperkit_tree::DataTree;

use crate::{BenchServerArgs, BenchSnapshotArgs, BenchWalArgs, CmdResult, Failure, Outcome};

/// One measured case.
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

/// `bench wal --json`.
#[derive(Debug, Serialize)]
pub struct Report {
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

fn bench_err(e: impl std::fmt::Display) -> Failure {
    Failure::usage(anyhow!("benchmark failed: {e}"))
}

fn bare_fdatasync(
    fs: &dyn FileSystem,
    dir: &Path,
    size: usize,
    dur: Duration,
) -> Result<Measured, Failure> {
    let path = dir.join("bare-fdatasync.dat");
    let f = fs.open(&path, OpenMode::CreateTruncate).map_err(bench_err)?;
    // Preallocate like a WAL segment so each sync covers data, not a size change.
    let prealloc: u64 = 64 << 20;
    f.set_len(prealloc).map_err(bench_err)?;
    f.sync_all().map_err(bench_err)?;
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
        f.write_all_at(&buf, off).map_err(bench_err)?;
        f.sync_data().map_err(bench_err)?;
        latencies_us.push(micros(t.elapsed()));
        off += size as u64;
        ops += 1;
    }
    let secs = start.elapsed().as_secs_f64();
    drop(f);
    fs.remove_file(&path).map_err(bench_err)?;
    Ok(Measured { ops, secs, latencies_us })
}

fn open_wal(
    fs: &Arc<dyn FileSystem>,
    dir: PathBuf,
    sync: SyncPolicy,
) -> Result<NativeWal, Failure> {
    let mut opts = NativeWalOptions::new(dir);
    opts.sync = sync;
    NativeWal::open(fs.clone(), opts).map_err(bench_err)
}

fn wal_case(
    fs: &Arc<dyn FileSystem>,
    dir: PathBuf,
    sync: SyncPolicy,
    writers: usize,
    size: usize,
    dur: Duration,
) -> Result<Measured, Failure> {
    let wal = Arc::new(open_wal(fs, dir, sync)?);
    let payload = vec![0x5Au8; size];
    let start = Instant::now();
    let latencies_us = std::thread::scope(|s| -> Result<Vec<u32>, Failure> {
        let handles: Vec<_> = (0..writers)
            .map(|_| {
                let wal = wal.clone();
                let payload = &payload;
                s.spawn(move || -> Result<Vec<u32>, Failure> {
                    let mut lat = Vec::new();
                    while start.elapsed() < dur {
                        let t = Instant::now();
                        wal.append_next(1, &[payload.as_slice()]).map_err(bench_err)?;
                        lat.push(micros(t.elapsed()));
                    }
                    Ok(lat)
                })
            })
            .collect();
        let mut all = Vec::new();
        for h in handles {
            all.extend(h.join().map_err(|_| bench_err("a writer thread panicked"))??);
        }
        Ok(all)
    })?;
    if sync == SyncPolicy::Never {
        wal.sync().map_err(bench_err)?;
    }
    let ops = latencies_us.len() as u64;
    Ok(Measured { ops, secs: start.elapsed().as_secs_f64(), latencies_us })
}

/// Runs the benchmark.
pub fn run(args: &BenchWalArgs, out: &mut dyn Write) -> CmdResult {
    let fs: Arc<dyn FileSystem> = keeperkit_vfs::std_fs();
    let root = args.dir.join("keeperkit-bench-wal");
    if fs.exists(&root) {
        return Err(Failure::usage(anyhow!("{} exists from an earlier run", root.display()))
            .hint("remove it (or choose another DIR): the benchmark leaves its logs there"));
    }
    fs.create_dir_all(&root).map_err(bench_err)?;
    let dur = Duration::from_secs_f64(args.seconds);
    let size = args.entry_size;
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
        add("bare write+fdatasync (1 writer)", bare_fdatasync(&*fs, &root, size, dur)?, None);
    add(
        "keeperkit synced, 1 writer",
        wal_case(&fs, root.join("synced-1"), SyncPolicy::Always, 1, size, dur)?,
        Some(bare),
    );
    add(
        "keeperkit synced, 4 writers",
        wal_case(&fs, root.join("synced-4"), SyncPolicy::Always, 4, size, dur)?,
        Some(bare),
    );
    add(
        "keeperkit unsynced, 1 writer",
        wal_case(&fs, root.join("unsynced"), SyncPolicy::Never, 1, size, dur)?,
        Some(bare),
    );
    // Open (recover) the biggest log just written.
    let start = Instant::now();
    let wal = open_wal(&fs, root.join("unsynced"), SyncPolicy::Never)?;
    let open_seconds = start.elapsed().as_secs_f64();
    let entries = match (wal.first_index(), wal.last_index()) {
        (Some(a), Some(b)) => b - a + 1,
        _ => 0,
    };
    let log_bytes: u64 =
        fs.read_dir(&root.join("unsynced")).map_err(bench_err)?.iter().map(|e| e.len).sum();
    drop(wal);
    let report = Report {
        dir: root.display().to_string(),
        entry_size: size,
        cases,
        open_seconds,
        open_log_bytes: log_bytes,
        open_log_entries: entries,
    };
    if args.json {
        super::json_doc(out, &report)?;
    } else {
        writeln!(
            out,
            "keeperkit bench wal: {} B entries, {} s per case, in {}",
            size, args.seconds, report.dir
        )?;
        writeln!(
            out,
            "{:<34} {:>12} {:>10} {:>10} {:>10} {:>10}",
            "case", "ops/s", "MiB/s", "vs bare", "p50 us", "p99 us"
        )?;
        for c in &report.cases {
            writeln!(
                out,
                "{:<34} {:>12.0} {:>10.2} {:>10} {:>10.0} {:>10.0}",
                c.name,
                c.ops_per_s,
                c.mib_per_s,
                c.vs_bare_fdatasync.map_or("-".to_string(), |r| format!("{r:.2}x")),
                c.p50_us,
                c.p99_us
            )?;
        }
        writeln!(
            out,
            "open (recover) {} entries, {} bytes on disk: {:.3} s",
            report.open_log_entries, report.open_log_bytes, report.open_seconds
        )?;
        if args.keep {
            writeln!(out, "the logs are left in {} for `keeperkit inspect`", report.dir)?;
        }
    }
    if !args.keep {
        std::fs::remove_dir_all(&root).map_err(bench_err)?;
    }
    Ok(Outcome::Clean)
}

/// `bench snapshot --json`.
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

/// The synthetic tree: `/scale`, then `n` leaves `/scale/bXXXX/nXXXXXXX` in buckets of
/// [`PER_BUCKET`], each with 0–48 pseudo-random bytes (xorshift, fixed seed) and
/// increasing zxids and times. Inserted in pre-order, parents with their final child
/// count and sequence counter.
fn synthetic_tree(n: usize) -> Result<DataTree, Failure> {
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
    let top = i32::try_from(buckets).map_err(bench_err)?;
    tree.insert_loaded_full("/scale", Some(b""), &acl, &next_stat(top), top, 0)
        .map_err(bench_err)?;
    let mut data = Vec::with_capacity(48);
    let mut path = String::with_capacity(32);
    for b in 0..buckets {
        let first = b * PER_BUCKET;
        let k = (n - first).min(PER_BUCKET);
        let bucket = format!("/scale/b{b:04}");
        let seq = i32::try_from(k).map_err(bench_err)?;
        tree.insert_loaded_full(&bucket, Some(b""), &acl, &next_stat(seq), seq, 0)
            .map_err(bench_err)?;
        for i in first..first + k {
            let len = usize::try_from(rand() % 49).unwrap_or(0);
            data.clear();
            while data.len() < len {
                data.extend_from_slice(&rand().to_le_bytes());
            }
            data.truncate(len);
            path.clear();
            write!(path, "{bucket}/n{i:07}").map_err(bench_err)?;
            tree.insert_loaded_full(&path, Some(&data), &acl, &next_stat(0), 0, 0)
                .map_err(bench_err)?;
        }
    }
    tree.set_last_processed_zxid(Zxid(zxid));
    Ok(tree)
}

fn mismatch(what: &str, saved: impl std::fmt::Display, loaded: impl std::fmt::Display) -> Failure {
    Failure {
        error: anyhow!("the loaded tree's {what} is {loaded}, the saved tree's {saved}"),
        corruption: true,
        hint: None,
    }
}

/// Runs `bench snapshot`.
pub fn run_snapshot(args: &BenchSnapshotArgs, out: &mut dyn Write) -> CmdResult {
    let fs: Arc<dyn FileSystem> = keeperkit_vfs::std_fs();
    let root = args.dir.join("keeperkit-bench-snapshot");
    if fs.exists(&root) {
        return Err(Failure::usage(anyhow!("{} exists from an earlier run", root.display()))
            .hint("remove it (or choose another DIR): the benchmark leaves its snapshot there"));
    }
    if args.nodes == 0 {
        return Err(Failure::usage(anyhow!("--nodes must be at least 1")));
    }
    fs.create_dir_all(&root).map_err(bench_err)?;

    let start = Instant::now();
    let tree = synthetic_tree(args.nodes)?;
    let build_seconds = start.elapsed().as_secs_f64();
    let nodes = u64::try_from(tree.node_count()).map_err(bench_err)?;
    let digest = tree.digest();

    let pos = SnapshotPosition { last_index: 1, last_term: 1, cluster_config: Vec::new() };
    let name = snapshot_file_name(pos.last_index);
    let start = Instant::now();
    let written = save_tree(&*fs, &root, &name, &tree, &pos, &WriteOptions::default())?;
    let save_seconds = start.elapsed().as_secs_f64();
    drop(tree);

    let start = Instant::now();
    let loaded = load_tree(&*fs, &written.path)?;
    let load_seconds = start.elapsed().as_secs_f64();
    let loaded_nodes = u64::try_from(loaded.tree.node_count()).map_err(bench_err)?;
    if loaded_nodes != nodes {
        return Err(mismatch("node count", nodes, loaded_nodes));
    }
    if loaded.tree.digest() != digest {
        return Err(mismatch(
            "digest",
            format!("{digest:#018x}"),
            format!("{:#018x}", loaded.tree.digest()),
        ));
    }
    drop(loaded);

    let n = nodes as f64;
    let report = SnapshotReport {
        file: written.path.display().to_string(),
        nodes,
        leaf_nodes: args.nodes,
        file_bytes: written.file_len,
        bytes_per_znode: written.file_len as f64 / n,
        build_seconds,
        save_seconds,
        save_znodes_per_s: n / save_seconds.max(1e-9),
        load_seconds,
        load_znodes_per_s: n / load_seconds.max(1e-9),
        cores: std::thread::available_parallelism().map_or(1, |c| c.get()),
        digest: format!("{digest:#018x}"),
    };
    if args.json {
        super::json_doc(out, &report)?;
    } else {
        writeln!(
            out,
            "keeperkit bench snapshot: {} znodes ({} leaves), {} cores, in {}",
            report.nodes,
            report.leaf_nodes,
            report.cores,
            root.display()
        )?;
        writeln!(out, "{:<10} {:>10} {:>14}", "step", "seconds", "znodes/s")?;
        writeln!(out, "{:<10} {:>10.3} {:>14}", "build", report.build_seconds, "-")?;
        writeln!(
            out,
            "{:<10} {:>10.3} {:>14.0}",
            "save", report.save_seconds, report.save_znodes_per_s
        )?;
        writeln!(
            out,
            "{:<10} {:>10.3} {:>14.0}",
            "load", report.load_seconds, report.load_znodes_per_s
        )?;
        writeln!(
            out,
            "file: {} bytes, {:.1} bytes per znode; node count and digest {} checked after the load",
            report.file_bytes, report.bytes_per_znode, report.digest
        )?;
        writeln!(out, "the snapshot is left for `keeperkit inspect {}`", report.file)?;
    }
    Ok(Outcome::Clean)
}

/// `keeperkit bench server`: the load generator of the server crate.
pub fn run_server(args: &BenchServerArgs, out: &mut dyn Write) -> CmdResult {
    use keeperkit_server::loadgen;
    let duration = Duration::try_from_secs_f64(args.duration)
        .map_err(|_| Failure::usage(anyhow!("--duration must be a number of seconds")))?;
    let opts = loadgen::Options {
        connect: args.connect.split(',').map(|s| s.trim().to_string()).collect(),
        clients: args.clients,
        duration,
        mix: loadgen::Mix::parse(&args.mix).map_err(Failure::usage)?,
        value_size: args.value_size,
        nodes: args.nodes,
        prefix: args.prefix.clone(),
        session_timeout_ms: 30_000,
        threads: 0,
    };
    let report = loadgen::run(&opts).map_err(|e| match e {
        loadgen::LoadError::Options(e) => Failure::usage(e),
        e => Failure::usage(anyhow!("bench server: {e}")),
    })?;
    let text = if args.json { report.to_json() + "\n" } else { report.to_text() };
    out.write_all(text.as_bytes()).map_err(bench_err)?;
    Ok(Outcome::Clean)
}
