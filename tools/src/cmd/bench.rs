//! `keeperkit bench wal DIR` and `keeperkit bench snapshot DIR` (the measurements are
//! `keeperkit_storage::bench`'s), and `keeperkit bench server` (the server crate's load
//! generator).

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use anyhow::anyhow;
use keeperkit_storage::bench;
use keeperkit_vfs::FileSystem;

use crate::{BenchServerArgs, BenchSnapshotArgs, BenchWalArgs, CmdResult, Failure, Outcome};

fn bench_err(e: impl std::fmt::Display) -> Failure {
    Failure::usage(anyhow!("benchmark failed: {e}"))
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
    let size = args.entry_size;
    let report = bench::wal(&fs, &root, size, args.seconds)?;
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
    let report = bench::snapshot(&*fs, &root, args.nodes)?;
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
