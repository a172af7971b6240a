//! `keeperkit bench wal DIR`: what the user's disk gives a synced log, measured the way
//! etcd's `check perf` or PostgreSQL's `pg_test_fsync` do, next to keeperkit's own log.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::anyhow;
use keeperkit_vfs::{FileSystem, OpenMode};
use keeperkit_wal::native::{NativeWal, NativeWalOptions, SyncPolicy};
use serde::Serialize;

use crate::{BenchWalArgs, CmdResult, Failure, Outcome};

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
) -> Result<(u64, f64), Failure> {
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
    while start.elapsed() < dur {
        if off + size as u64 > prealloc {
            off = 0;
        }
        f.write_all_at(&buf, off).map_err(bench_err)?;
        f.sync_data().map_err(bench_err)?;
        off += size as u64;
        ops += 1;
    }
    let secs = start.elapsed().as_secs_f64();
    drop(f);
    fs.remove_file(&path).map_err(bench_err)?;
    Ok((ops, secs))
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
) -> Result<(u64, f64), Failure> {
    let wal = Arc::new(open_wal(fs, dir, sync)?);
    let payload = vec![0x5Au8; size];
    let start = Instant::now();
    let ops = std::thread::scope(|s| -> Result<u64, Failure> {
        let handles: Vec<_> = (0..writers)
            .map(|_| {
                let wal = wal.clone();
                let payload = &payload;
                s.spawn(move || -> Result<u64, Failure> {
                    let mut n = 0u64;
                    while start.elapsed() < dur {
                        wal.append_next(1, &[payload.as_slice()]).map_err(bench_err)?;
                        n += 1;
                    }
                    Ok(n)
                })
            })
            .collect();
        let mut total = 0;
        for h in handles {
            total += h.join().map_err(|_| bench_err("a writer thread panicked"))??;
        }
        Ok(total)
    })?;
    if sync == SyncPolicy::Never {
        wal.sync().map_err(bench_err)?;
    }
    Ok((ops, start.elapsed().as_secs_f64()))
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
    let mut add = |name: &str, (ops, secs): (u64, f64), bare: Option<f64>| {
        let rate = ops as f64 / secs.max(1e-9);
        cases.push(Case {
            name: name.to_string(),
            ops_per_s: rate,
            mib_per_s: rate * size as f64 / (1024.0 * 1024.0),
            ops,
            seconds: secs,
            vs_bare_fdatasync: bare.map(|b| rate / b),
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
        writeln!(out, "{:<34} {:>12} {:>10} {:>10}", "case", "ops/s", "MiB/s", "vs bare")?;
        for c in &report.cases {
            writeln!(
                out,
                "{:<34} {:>12.0} {:>10.2} {:>10}",
                c.name,
                c.ops_per_s,
                c.mib_per_s,
                c.vs_bare_fdatasync.map_or("-".to_string(), |r| format!("{r:.2}x"))
            )?;
        }
        writeln!(
            out,
            "open (recover) {} entries, {} bytes on disk: {:.3} s",
            report.open_log_entries, report.open_log_bytes, report.open_seconds
        )?;
        writeln!(out, "the logs are left in {} for `keeperkit inspect`", report.dir)?;
    }
    Ok(Outcome::Clean)
}
