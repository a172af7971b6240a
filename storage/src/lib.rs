//! keeperkit storage: opening, recovering, checking and repairing data directories of
//! every dialect: Apache ZooKeeper 3.x, ClickHouse Keeper, and keeperkit's own.
//!
//! This crate composes the format crates (`wal`, `snapshot`) and the `tree`. It is the
//! only library crate that depends on more than one of them, and the only place that
//! knows which dialect a path holds: [`open`] detects it once and returns a
//! [`DataDir`], through which every operation goes the same way for every dialect.
//!
//! # Opening any data directory
//!
//! ```no_run
//! use keeperkit_storage::{open, OpenOptions, Point};
//!
//! # fn main() -> Result<(), keeperkit_storage::StorageError> {
//! let fs = keeperkit_vfs::std_fs();
//! let dir = open(&*fs, "/var/lib/zookeeper".as_ref(), &OpenOptions::default())?;
//! println!("{} data", dir.dialect());
//!
//! // The state as the server would start from it, and how it was built.
//! let state = dir.recover(Point::Latest)?;
//! println!("{} znodes, last zxid {}", state.tree.node_count(), state.report.last_zxid);
//! for f in &state.report.findings {
//!     println!("{f}");
//! }
//!
//! // A point in time: a zxid for ZooKeeper, a log index for the Raft-style dialects.
//! let earlier = dir.recover(Point::Zxid(keeperkit_model::Zxid(0x1_0000_0004)))?;
//! # let _ = earlier;
//!
//! // Every checksum, digest and cross-file rule; exit status 1 when an error is found.
//! let check = dir.check()?;
//! println!("{} files, exit {}", check.files_checked, keeperkit_storage::findings::exit_status(&check.findings));
//!
//! // The files and what the dialect's server does with them.
//! println!("{}", dir.inspect()?);
//!
//! // Log entries of a range, decoded (the sink may stop the reading).
//! let found = dir.read_log(keeperkit_storage::LogRange::default(), &mut |e| {
//!     println!("{} {:?}", e.op, e.paths);
//!     std::ops::ControlFlow::Continue(())
//! })?;
//! # let _ = found;
//!
//! // A repair: what it would do, what it refuses (each with its finding), then apply.
//! let plan = dir.plan_repair(None)?;
//! for r in &plan.refused {
//!     println!("refused: {} ({})", r.finding, r.reason);
//! }
//! if plan.refused.is_empty() {
//!     let done = dir.apply_repair(plan)?;
//!     println!("{} actions, backups in {:?}", done.actions.len(), done.backup_dir);
//! }
//! # Ok(())
//! # }
//! ```
//!
//! Every recovery, and every check, reports in one vocabulary: [`findings::Finding`]
//! (severity, stable code, file, offset, zxid or index, message). Only `tools` prints.
//!
//! Architecture invariants:
//! - recovery never writes: it only reads through the [`keeperkit_vfs::FileSystem`];
//! - replay never crosses a gap in the history silently: it stops before the gap and
//!   reports it;
//! - a checksum mismatch is never skipped: it is an error naming file, offset and
//!   position;
//! - a point after the last one the files hold is an error naming the last one
//!   ([`StorageError::PastEnd`]), in every dialect.

pub mod bench;
pub mod clickhouse;
pub mod convert;
pub mod datadir;
pub mod dialect;
pub mod dump;
pub mod engine;
pub mod error;
pub mod findings;
pub mod native;
pub mod progress;
mod repair;
pub mod replicas;
pub mod report;
pub mod stats;
pub mod traits;
pub mod zookeeper;

pub use datadir::{open, DataDir, OpenOptions, Point, Recovered, RecoveryReport};
pub use dialect::{detect, Dialect};
pub use error::StorageError;
pub use findings::{Code, Finding, Position, Severity};
pub use progress::{NoProgress, Progress};
pub use report::{
    default_backup_dir, CheckReport, Inspection, LogEntry, LogRange, Refusal, RepairPlan,
    RepairReport, StateCount,
};
