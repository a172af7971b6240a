//! The library behind the `keeperkit` command-line tool.
//!
//! `main.rs` only parses arguments and calls [`main_with`]; every command lives in
//! [`cmd`] and writes to the `Output` it is given, so tests can run commands in
//! process. Only this crate prints.
//!
//! Exit codes (a contract, docs/CLI.md): 0 success, 1 corruption or differences
//! found, 2 bad usage or an I/O error, 3 replicas that diverge (`keeperkit replicas`).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

pub mod allocator;
pub mod cmd;
pub mod json;
pub mod load;
pub mod progress;

/// Inspect, verify, repair, diff and convert ZooKeeper, ClickHouse Keeper and keeperkit
/// data directories, offline.
#[derive(Debug, Parser)]
#[command(
    name = "keeperkit",
    version,
    about,
    after_help = "Examples:\n  \
      keeperkit dump testdata/zookeeper-3.8.0/basic/data --json | head\n  \
      keeperkit verify /var/lib/zookeeper\n  \
      keeperkit log /var/lib/zookeeper --from 0x100 --to 0x1ff\n  \
      keeperkit diff /backup/zk /var/lib/zookeeper\n\n\
      Exit codes: 0 success, 1 corruption or differences found, 2 bad usage or I/O error, \
      3 replicas that diverge (`keeperkit replicas`)."
)]
pub struct Cli {
    /// Also print the info notes (how each state was recovered) on stderr.
    #[arg(long, short = 'v', global = true)]
    pub verbose: bool,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// A point in the history (shared by every command that shows a state).
#[derive(Debug, Clone, Default, Args)]
pub struct At {
    /// The state as of this zxid (ZooKeeper; hex with 0x, or decimal).
    #[arg(long, value_name = "ZXID")]
    pub at: Option<String>,
    /// The state as of this log index (ClickHouse Keeper, native).
    #[arg(long, value_name = "N", conflicts_with = "at")]
    pub at_index: Option<u64>,
}

/// Where the data is and how to read it (shared by every command that reads a state).
#[derive(Debug, Clone, Args)]
pub struct Source {
    /// A data directory (ZooKeeper dataDir or its version-2/, ...) or a single file.
    pub path: PathBuf,
    /// Force the dialect instead of detecting it.
    #[arg(long, value_name = "zookeeper|clickhouse|native")]
    pub format: Option<keeperkit_storage::Dialect>,
    /// Where the logs are when they are kept apart from the snapshots: ZooKeeper's
    /// dataLogDir, ClickHouse Keeper's log_storage_path (give its snapshot dir as PATH).
    #[arg(long, value_name = "DIR")]
    pub log_dir: Option<PathBuf>,
    /// ZooKeeper: start recovery from this snapshot file instead of the newest valid one.
    #[arg(long, value_name = "FILE")]
    pub snapshot: Option<PathBuf>,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the state of the tree: newest snapshot + log replay, or a point in time.
    #[command(after_help = "Examples:\n  \
        keeperkit dump DATA_DIR\n  \
        keeperkit dump DATA_DIR --json > tree.jsonl\n  \
        keeperkit dump DATA_DIR --at 0x4cc --json\n  \
        keeperkit dump DATA_DIR/version-2/snapshot.177   (one snapshot, no replay)\n\n\
        With --json: JSON Lines, one znode per line, sorted by path bytes, stats as a \
        ZooKeeper client sees them.\n\
        Exit status 1 when the state could not be recovered completely (a gap in the \
        log, a digest mismatch) or the data is corrupt.")]
    Dump(DumpArgs),
    /// List live sessions with their timeouts, auth ids and ephemeral node counts.
    Sessions(SessionsArgs),
    /// Print log entries decoded.
    #[command(after_help = "Examples:\n  \
        keeperkit log DATA_DIR\n  \
        keeperkit log DATA_DIR/version-2/log.1cb --json\n  \
        keeperkit log DATA_DIR --from 0x100 --to 0x120\n  \
        keeperkit log /var/lib/clickhouse/coordination --from 1000 --to 1010 --json\n\n\
        ClickHouse Keeper and native logs are addressed by log index (decimal); a Keeper \
        entry shows its request (op, session, xid, paths) and the zxid and digest the \
        leader stored with it; its `result` is null (Keeper logs requests, not results).")]
    Log(LogArgs),
    /// Describe a data directory or file: dialect, files, ranges, gaps, checksums.
    #[command(after_help = "Examples:\n  \
        keeperkit inspect /var/lib/zookeeper\n  \
        keeperkit inspect /var/lib/clickhouse/coordination --json\n  \
        keeperkit inspect /var/lib/clickhouse/coordination/snapshots/snapshot_100000.bin.zstd\n\n\
        On ClickHouse Keeper data it also shows the startup plan Keeper would follow \
        (reserved_log_items 100000, compress_logs false): the files it reads, what it sets \
        aside or deletes, where it resumes writing.\n\
        Exit status 1 when it found damage (`keeperkit verify` lists every problem).")]
    Inspect(InspectArgs),
    /// Check every checksum, digest, sequence and cross-file invariant.
    #[command(after_help = "Examples:\n  \
        keeperkit verify /var/lib/zookeeper\n  \
        keeperkit verify /var/lib/clickhouse/coordination --json\n\n\
        Exit status 0 when everything checks out, 1 when a problem was \
        found (each is listed with file, offset and kind), 2 on an I/O or usage error.")]
    Verify(VerifyArgs),
    /// Node-by-node differences between two states (any dialects).
    #[command(after_help = "Examples:\n  \
        keeperkit diff OLD_DIR NEW_DIR\n  \
        keeperkit diff DIR_A DIR_B --json\n  \
        keeperkit diff DIR --at-a 0x100 DIR --at-b 0x200   (what changed in between)\n\n\
        Exit status 0 when the states are identical, 1 when they differ.")]
    Diff(DiffArgs),
    /// Node count, bytes, depth histogram, biggest subtrees, largest values,
    /// ephemerals per session.
    Stats(StatsArgs),
    /// Fix only what is safe (a torn tail, leftovers of a crash), with a backup; by
    /// default only says what it would do.
    #[command(after_help = "Examples:\n  \
        keeperkit repair /var/lib/keeperkit/wal            (dry run: what would be done)\n  \
        keeperkit repair /var/lib/keeperkit/wal --apply --backup /root/wal-backup\n  \
        keeperkit repair /var/lib/clickhouse/coordination --apply   (only what Keeper does at startup)\n\n\
        repair never recomputes a checksum over bad bytes and never touches damage that \
        could hold acknowledged data; it moves everything it removes into the backup \
        directory first.\n\
        Exit status 0 when the data is sound or was repaired, 1 when something needs repair \
        (dry run) or was refused, 2 on an I/O or usage error.")]
    Repair(RepairArgs),
    /// Write the state as a complete data directory of another dialect, atomically.
    #[command(after_help = "Examples:\n  \
        keeperkit convert /var/lib/zookeeper /var/lib/keeperkit --to native\n  \
        keeperkit convert /var/lib/zookeeper /tmp/at-0x4cc --to native --at 0x4cc\n  \
        keeperkit convert /var/lib/zookeeper /var/lib/clickhouse-keeper --to clickhouse --lossy\n  \
        keeperkit convert /var/lib/clickhouse/coordination /var/lib/keeperkit --to native\n  \
        keeperkit convert /var/lib/keeperkit /tmp/keeper --to clickhouse --clickhouse-version 8\n\n\
        The destination must not exist. It is written under a temporary name, fsynced and \
        renamed: a failure leaves no half-written directory. Whatever the target cannot \
        hold exactly is an error naming the nodes, unless --lossy is given, which applies \
        the documented mapping and lists every node it changed. ClickHouse Keeper has no \
        null values, containers (V6-V8) or TTL nodes before V8; a ZooKeeper source starts \
        Keeper's log after its last zxid with term 1, as clickhouse keeper-converter does. \
        Copy the result to every Keeper node before starting them.")]
    Convert(ConvertArgs),
    /// Measure this machine: a synced log, snapshot save and load.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Print a shell completion script (install: `keeperkit completions bash >
    /// /etc/bash_completion.d/keeperkit`).
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the manual page (install: `keeperkit man > /usr/local/share/man/man1/keeperkit.1`).
    Man,
    /// Serve the ZooKeeper client protocol on a native data directory.
    Serve(cmd::serve::ServeArgs),
    /// Heal a replica offline: `--force-new-cluster` after a lost quorum.
    Recover(cmd::recover::RecoverArgs),
    /// Compare replicas' data directories offline: logs, commit, digests, divergence.
    Replicas(cmd::replicas::ReplicasArgs),
    /// A replicated service's membership: list, add, remove, move the leadership, check
    /// whether a member can be stopped.
    Members(cmd::members::MembersArgs),
}

/// `keeperkit repair`.
#[derive(Debug, Args)]
pub struct RepairArgs {
    /// A data directory.
    pub path: PathBuf,
    /// Force the dialect instead of detecting it.
    #[arg(long, value_name = "zookeeper|clickhouse|native")]
    pub format: Option<keeperkit_storage::Dialect>,
    /// Only say what would be done (the default).
    #[arg(long, conflicts_with = "apply")]
    pub dry_run: bool,
    /// Make the changes.
    #[arg(long)]
    pub apply: bool,
    /// Where to move what is removed (default: next to the data directory).
    #[arg(long, value_name = "DIR")]
    pub backup: Option<PathBuf>,
    /// JSON output.
    #[arg(long)]
    pub json: bool,
}

/// `keeperkit convert`.
#[derive(Debug, Args)]
pub struct ConvertArgs {
    /// Source data directory (any dialect).
    pub src: PathBuf,
    /// Destination directory (must not exist).
    pub dst: PathBuf,
    /// Target dialect: native (keeperkit's data directory: snapshot + WAL), zookeeper (an
    /// Apache ZooKeeper 3.8 dataDir) or clickhouse (a ClickHouse Keeper coordination dir).
    #[arg(long, value_name = "native|zookeeper|clickhouse")]
    pub to: keeperkit_storage::Dialect,
    /// The point in time of the source.
    #[command(flatten)]
    pub at: At,
    /// Force the source dialect instead of detecting it.
    #[arg(long, value_name = "zookeeper|clickhouse|native")]
    pub format: Option<keeperkit_storage::Dialect>,
    /// ZooKeeper source: its dataLogDir, when separate.
    #[arg(long, value_name = "DIR")]
    pub log_dir: Option<PathBuf>,
    /// Apply the documented mapping for what the target cannot hold exactly.
    #[arg(long)]
    pub lossy: bool,
    /// ZooKeeper target: snapshot compression (gz or snappy).
    #[arg(long, value_name = "gz|snappy")]
    pub compression: Option<String>,
    /// ClickHouse target: snapshot version to write: 6 (default, read by every Keeper
    /// since 2024), 7, or 8 (keeps TTL nodes).
    #[arg(long, value_name = "6|7|8")]
    pub clickhouse_version: Option<u8>,
    /// ZooKeeper target: the largest value accepted (ZooKeeper's jute.maxbuffer,
    /// default 1048575); run ZooKeeper and its clients with the same -Djute.maxbuffer.
    #[arg(long, value_name = "BYTES")]
    pub jute_maxbuffer: Option<u64>,
    /// JSON output.
    #[arg(long)]
    pub json: bool,
}

/// `keeperkit bench ...`.
#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Bare write+fdatasync rate, keeperkit synced appends with 1 and 4 writers,
    /// unsynced appends, and open time, on DIR's disk.
    #[command(after_help = "Example:\n  keeperkit bench wal /var/lib/keeperkit --seconds 5\n\n\
        The logs are left in DIR/keeperkit-bench-wal so they can be inspected.")]
    Wal(BenchWalArgs),
    /// Save and load rates of a native snapshot of a synthetic tree
    /// (`/scale/bXXXX/nXXXXXXX`, 1000 znodes per bucket, 0-48 random bytes each).
    #[command(
        after_help = "Example:\n  keeperkit bench snapshot /var/lib/keeperkit --nodes 5000000\n\n\
        The tree is built in memory (timed apart), saved into DIR/keeperkit-bench-snapshot, \
        loaded back and checked (node count and digest). The snapshot is left there for \
        `keeperkit inspect FILE`."
    )]
    Snapshot(BenchSnapshotArgs),
    /// Load on a running ZooKeeper-protocol server (like ClickHouse's keeper-bench):
    /// ops/s and p50/p99/p99.9 latency per operation.
    #[command(
        after_help = "Example:\n  keeperkit bench server --connect 127.0.0.1:2181 --clients 64 \
        --duration 10 --mix create=50,set=50 --value-size 1024\n\n\
        Ops: create (new nodes), delete (the client's own), set, get, exists (random pool \
        nodes), list (getChildren of the client's own node). Everything lives under --prefix; \
        the pool is kept for the next run."
    )]
    Server(BenchServerArgs),
}

/// `keeperkit bench server`.
#[derive(Debug, Args)]
pub struct BenchServerArgs {
    /// Server address HOST:PORT (a comma-separated list spreads the clients).
    #[arg(long, value_name = "HOST:PORT")]
    pub connect: String,
    /// Concurrent clients, one session each.
    #[arg(long, default_value_t = 8)]
    pub clients: usize,
    /// Seconds of measured load.
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Operation weights, e.g. create=10,set=40,get=50.
    #[arg(long, default_value = "create=20,set=30,get=50")]
    pub mix: String,
    /// Bytes of each value written.
    #[arg(long, default_value_t = 1024)]
    pub value_size: usize,
    /// Pool nodes read and written by set/get/exists (created before the clock starts).
    #[arg(long, default_value_t = 1000)]
    pub nodes: usize,
    /// Root znode of everything the run creates.
    #[arg(long, default_value = "/keeperkit-bench")]
    pub prefix: String,
    /// JSON output.
    #[arg(long)]
    pub json: bool,
}

/// `keeperkit bench snapshot`.
#[derive(Debug, Args)]
pub struct BenchSnapshotArgs {
    /// Directory on the disk to measure.
    pub dir: PathBuf,
    /// Leaf znodes in the synthetic tree (plus one parent per 1000 and `/scale`).
    #[arg(long, default_value_t = 1_000_000)]
    pub nodes: usize,
    /// JSON output.
    #[arg(long)]
    pub json: bool,
}

/// `keeperkit bench wal`.
#[derive(Debug, Args)]
pub struct BenchWalArgs {
    /// Directory on the disk to measure.
    pub dir: PathBuf,
    /// Seconds per case.
    #[arg(long, default_value_t = 2.0)]
    pub seconds: f64,
    /// Entry size in bytes.
    #[arg(long, default_value_t = 1024)]
    pub entry_size: usize,
    /// Leave the logs written (up to gigabytes) for `keeperkit inspect`; by default
    /// they are removed.
    #[arg(long)]
    pub keep: bool,
    /// JSON output.
    #[arg(long)]
    pub json: bool,
}

/// `keeperkit dump`.
#[derive(Debug, Args)]
pub struct DumpArgs {
    /// Where to read.
    #[command(flatten)]
    pub source: Source,
    /// The point in time.
    #[command(flatten)]
    pub at: At,
    /// JSON Lines output.
    #[arg(long)]
    pub json: bool,
    /// Keep ephemeral nodes whose session is gone (ZooKeeper drops them on start).
    #[arg(long)]
    pub keep_orphan_ephemerals: bool,
}

/// `keeperkit sessions`.
#[derive(Debug, Args)]
pub struct SessionsArgs {
    /// Where to read.
    #[command(flatten)]
    pub source: Source,
    /// The point in time.
    #[command(flatten)]
    pub at: At,
    /// JSON Lines output, one session per line.
    #[arg(long)]
    pub json: bool,
}

/// `keeperkit log`.
#[derive(Debug, Args)]
pub struct LogArgs {
    /// A data directory or one log file.
    pub path: PathBuf,
    /// Force the dialect instead of detecting it.
    #[arg(long, value_name = "zookeeper|clickhouse|native")]
    pub format: Option<keeperkit_storage::Dialect>,
    /// ZooKeeper's dataLogDir, when separate.
    #[arg(long, value_name = "DIR")]
    pub log_dir: Option<PathBuf>,
    /// First zxid (or index) to print.
    #[arg(long, value_name = "N")]
    pub from: Option<String>,
    /// Last zxid (or index) to print.
    #[arg(long, value_name = "N")]
    pub to: Option<String>,
    /// JSON Lines output, one entry per line.
    #[arg(long)]
    pub json: bool,
}

/// `keeperkit inspect`.
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// Where to read.
    #[command(flatten)]
    pub source: Source,
    /// JSON output.
    #[arg(long)]
    pub json: bool,
}

/// `keeperkit verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Where to read.
    #[command(flatten)]
    pub source: Source,
    /// JSON output.
    #[arg(long)]
    pub json: bool,
}

/// `keeperkit diff`.
#[derive(Debug, Args)]
pub struct DiffArgs {
    /// First state (directory or file).
    pub a: PathBuf,
    /// Second state (directory or file).
    pub b: PathBuf,
    /// Point in time of the first state (a zxid).
    #[arg(long, value_name = "ZXID")]
    pub at_a: Option<String>,
    /// Point in time of the first state (a log index).
    #[arg(long, value_name = "N", conflicts_with = "at_a")]
    pub at_index_a: Option<u64>,
    /// Point in time of the second state (a zxid).
    #[arg(long, value_name = "ZXID")]
    pub at_b: Option<String>,
    /// Point in time of the second state (a log index).
    #[arg(long, value_name = "N", conflicts_with = "at_b")]
    pub at_index_b: Option<u64>,
    /// Skip `/zookeeper/config` and `/zookeeper/quota/...` nodes, which ZooKeeper
    /// rewrites without txns.
    #[arg(long)]
    pub ignore_system: bool,
    /// JSON Lines output, one differing node per line.
    #[arg(long)]
    pub json: bool,
}

/// `keeperkit stats`.
#[derive(Debug, Args)]
pub struct StatsArgs {
    /// Where to read.
    #[command(flatten)]
    pub source: Source,
    /// The point in time.
    #[command(flatten)]
    pub at: At,
    /// How many entries in each top list.
    #[arg(long, default_value_t = 10)]
    pub top: usize,
    /// JSON output.
    #[arg(long)]
    pub json: bool,
}

/// The outcome of a command, before it becomes an exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Exit 0.
    Clean,
    /// Exit 1: corruption or differences found.
    Found,
    /// Exit 3: replicas whose histories diverge (`keeperkit replicas`).
    Diverged,
    /// A command's own documented exit status (`members`: 3 and 4).
    Exit(u8),
}

/// A failure: its message, an optional hint, and whether it means corruption (exit 1)
/// or a usage/I-O problem (exit 2).
#[derive(Debug)]
pub struct Failure {
    /// What went wrong.
    pub error: anyhow::Error,
    /// Exit 1 instead of 2.
    pub corruption: bool,
    /// What the user can do next.
    pub hint: Option<String>,
}

impl Failure {
    /// A usage or I/O failure (exit 2).
    pub fn usage(error: impl Into<anyhow::Error>) -> Failure {
        Failure { error: error.into(), corruption: false, hint: None }
    }

    /// Adds a hint.
    pub fn hint(mut self, hint: impl Into<String>) -> Failure {
        self.hint = Some(hint.into());
        self
    }
}

impl From<keeperkit_storage::StorageError> for Failure {
    fn from(e: keeperkit_storage::StorageError) -> Self {
        let corruption = e.is_corruption();
        let hint = e.hint();
        Failure { error: e.into(), corruption, hint }
    }
}

impl From<keeperkit_wal::WalError> for Failure {
    fn from(e: keeperkit_wal::WalError) -> Self {
        keeperkit_storage::StorageError::from(e).into()
    }
}

impl From<std::io::Error> for Failure {
    fn from(e: std::io::Error) -> Self {
        Failure::usage(e)
    }
}

/// Result of a command.
pub type CmdResult = Result<Outcome, Failure>;

/// Runs a parsed command line, printing to stdout/stderr, and returns the exit code.
pub fn main_with(cli: Cli) -> ExitCode {
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let result = run(cli, &mut out);
    let flushed = out.flush();
    let code = match result {
        Ok(Outcome::Clean) => ExitCode::from(0),
        Ok(Outcome::Found) => ExitCode::from(1),
        Ok(Outcome::Diverged) => ExitCode::from(3),
        Ok(Outcome::Exit(code)) => ExitCode::from(code),
        Err(f) => {
            if is_broken_pipe(&f.error) {
                return ExitCode::from(0);
            }
            eprintln!("error: {:#}", f.error);
            if let Some(h) = f.hint {
                eprintln!("hint: {h}");
            }
            ExitCode::from(if f.corruption { 1 } else { 2 })
        }
    };
    // Output that could not be written fails the run (a closed pipe does not).
    match flushed {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            eprintln!("error: writing output: {e}");
            ExitCode::from(2)
        }
        _ => code,
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// Runs a command, writing its standard output to `out`.
pub fn run(cli: Cli, out: &mut dyn Write) -> CmdResult {
    let fs = keeperkit_vfs::std_fs();
    let v = cli.verbose;
    progress::hide(match &cli.command {
        Command::Dump(a) => a.json,
        Command::Sessions(a) => a.json,
        Command::Log(a) => a.json,
        Command::Inspect(a) => a.json,
        Command::Verify(a) => a.json,
        Command::Diff(a) => a.json,
        Command::Stats(a) => a.json,
        Command::Repair(a) => a.json,
        Command::Convert(a) => a.json,
        Command::Replicas(a) => a.json,
        Command::Members(a) => a.json,
        _ => false,
    });
    match cli.command {
        Command::Dump(a) => cmd::dump::run(&*fs, &a, v, out),
        Command::Sessions(a) => cmd::sessions::run(&*fs, &a, v, out),
        Command::Log(a) => cmd::log::run(&*fs, &a, v, out),
        Command::Inspect(a) => cmd::inspect::run(&*fs, &a, out),
        Command::Verify(a) => cmd::verify::run(&*fs, &a, out),
        Command::Diff(a) => cmd::diff::run(&*fs, &a, v, out),
        Command::Stats(a) => cmd::stats::run(&*fs, &a, v, out),
        Command::Repair(a) => cmd::repair::run(&*fs, &a, out),
        Command::Convert(a) => cmd::convert::run(&fs, &a, v, out),
        Command::Serve(a) => cmd::serve::run(&a, out),
        Command::Recover(a) => cmd::recover::run(&fs, &a, out),
        Command::Replicas(a) => cmd::replicas::run(&*fs, &a, out),
        Command::Members(a) => cmd::members::run(&a, out),
        Command::Bench(BenchCommand::Wal(a)) => cmd::bench::run(&a, out),
        Command::Completions { shell } => {
            let mut c = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut c, "keeperkit", out);
            Ok(Outcome::Clean)
        }
        Command::Man => {
            clap_mangen::Man::new(<Cli as clap::CommandFactory>::command()).render(out)?;
            Ok(Outcome::Clean)
        }
        Command::Bench(BenchCommand::Snapshot(a)) => cmd::bench::run_snapshot(&a, out),
        Command::Bench(BenchCommand::Server(a)) => cmd::bench::run_server(&a, out),
    }
}

/// Parses a user zxid argument.
pub fn parse_zxid(s: &str) -> Result<keeperkit_model::Zxid, Failure> {
    keeperkit_model::Zxid::parse_user(s).ok_or_else(|| {
        Failure::usage(anyhow::anyhow!("{s:?} is not a zxid"))
            .hint("give it in hex with 0x (0x1cb) or in decimal (459)")
    })
}
