//! `keeperkit-harness`: fault injection against a three-node keeperkit cluster, and
//! the linearizability checker on its own.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use keeperkit_harness::checker::{self, Limits};
use keeperkit_harness::history;
use keeperkit_harness::run::{self, Options};

/// Fault injection for a three-node `keeperkit serve` cluster.
#[derive(Debug, Parser)]
#[command(
    name = "keeperkit-harness",
    after_help = "Environment: KEEPERKIT (the keeperkit binary; default target/release/keeperkit), \
    KEEPERKIT_FAULTS_SECONDS and KEEPERKIT_FAULTS_SEED (defaults of --seconds and --seed), \
    KEEPERKIT_FAULTS_DIR (default of --dir).\n\n\
    Exit status: 0 when every check passed, 1 when one failed (the work directory with \
    history.jsonl, the nodes' logs and dumps is kept), 2 when the harness itself could not run."
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Start three nodes, run seeded workloads under a seeded nemesis, heal, check.
    Run {
        /// Seconds of workload under faults [default: $KEEPERKIT_FAULTS_SECONDS or 75].
        #[arg(long)]
        seconds: Option<u64>,
        /// Seed of the workloads and of the fault schedule [default: $KEEPERKIT_FAULTS_SEED or 1].
        #[arg(long)]
        seed: Option<u64>,
        /// Concurrent clients.
        #[arg(long, default_value_t = 6)]
        clients: u32,
        /// Ports BASE+1..BASE+23 (on 127.0.0.1..127.0.0.4).
        #[arg(long, default_value_t = 24100)]
        base_port: u16,
        /// The work directory [default: $KEEPERKIT_FAULTS_DIR or a new one under the
        /// system's temporary directory].
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Keep the work directory after a passing run.
        #[arg(long)]
        keep: bool,
        /// No faults (a baseline).
        #[arg(long)]
        no_faults: bool,
        /// Seconds the checker may search one key.
        #[arg(long, default_value_t = 20)]
        check_seconds: u64,
    },
    /// Check a recorded history (JSON lines).
    Check {
        /// The history.
        history: PathBuf,
        /// Seconds the checker may search one key.
        #[arg(long, default_value_t = 20)]
        check_seconds: u64,
    },
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Check { history: path, check_seconds } => {
            let ops = match std::fs::read_to_string(&path)
                .map_err(|e| e.to_string())
                .and_then(|t| history::read_jsonl(&t))
            {
                Ok(o) => o,
                Err(e) => {
                    eprintln!("keeperkit-harness: {}: {e}", path.display());
                    return ExitCode::from(2);
                }
            };
            let limits =
                Limits { max_time: Duration::from_secs(check_seconds), ..Limits::default() };
            let r = checker::check(&ops, limits);
            println!(
                "{} ops, {} keys: {} violations, {} anomalies, {} keys unknown",
                ops.len(),
                r.keys.values().sum::<usize>(),
                r.violations.len(),
                r.anomalies.len(),
                r.unknown.len()
            );
            for v in &r.violations {
                println!("violation: {}", v.message);
            }
            for a in &r.anomalies {
                println!("anomaly: {a}");
            }
            for u in &r.unknown {
                println!("unknown: {u}");
            }
            ExitCode::from(if r.valid() { 0 } else { 1 })
        }
        Cmd::Run { seconds, seed, clients, base_port, dir, keep, no_faults, check_seconds } => {
            let seconds = seconds.or_else(|| env_u64("KEEPERKIT_FAULTS_SECONDS")).unwrap_or(75);
            let seed = seed.or_else(|| env_u64("KEEPERKIT_FAULTS_SEED")).unwrap_or(1);
            let binary = std::env::var_os("KEEPERKIT")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("target/release/keeperkit"));
            if !binary.is_file() {
                eprintln!(
                    "keeperkit-harness: no keeperkit binary at {} (build it with cargo build --release, or set KEEPERKIT)",
                    binary.display()
                );
                return ExitCode::from(2);
            }
            let dir = dir
                .or_else(|| std::env::var_os("KEEPERKIT_FAULTS_DIR").map(PathBuf::from))
                .unwrap_or_else(|| {
                    std::env::temp_dir()
                        .join(format!("keeperkit-faults-{seed}-{}", std::process::id()))
                });
            if clients == 0 || seconds == 0 || base_port > 65_000 {
                eprintln!("keeperkit-harness: --clients and --seconds must be positive, --base-port at most 65000");
                return ExitCode::from(2);
            }
            let o = Options {
                binary,
                dir: dir.clone(),
                seconds,
                seed,
                clients,
                base_port,
                keep,
                no_faults,
                limits: Limits {
                    max_time: Duration::from_secs(check_seconds),
                    ..Limits::default()
                },
            };
            println!(
                "faults: seed {seed}, {seconds} s, {clients} clients, work directory {}",
                dir.display()
            );
            match run::run(&o) {
                Ok(s) => {
                    print!("{}", s.text());
                    let _ = std::fs::write(dir.join("summary.txt"), s.text());
                    if s.passed && !keep {
                        let _ = std::fs::remove_dir_all(&dir);
                    }
                    ExitCode::from(if s.passed { 0 } else { 1 })
                }
                Err(e) => {
                    eprintln!("keeperkit-harness: {e:#} (work directory {})", dir.display());
                    ExitCode::from(2)
                }
            }
        }
    }
}
