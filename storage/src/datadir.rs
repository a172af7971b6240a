//! The data-directory seam: [`open`] any data directory (or single file) of any
//! dialect and get a [`DataDir`], which recovers a state to a [`Point`], reads log
//! entries, inspects, checks and repairs, the same way for every dialect.
//!
//! # Design choice: a closed enum, not a trait
//!
//! The dialects are a closed set that this crate owns: ZooKeeper, ClickHouse Keeper
//! and keeperkit's own. [`DataDir`] holds a private enum with one variant per dialect
//! (and per single-file form) and every method dispatches with one `match`. A trait
//! object would let code outside the crate add dialects, which nothing needs, and
//! would hide the exhaustiveness check: with the enum, a new dialect does not compile
//! until every operation handles it, and all of those matches are in this crate.
//! Detection happens once, in [`open`]; no caller ever matches on the dialect.

use std::path::{Path, PathBuf};

use keeperkit_model::Zxid;
use keeperkit_tree::DataTree;
use keeperkit_vfs::FileSystem;

use crate::clickhouse::ChLayout;
use crate::convert::clickhouse::ChPosition;
use crate::dialect::{detect, present, Dialect};
use std::ops::ControlFlow;

use crate::findings::{Finding, Position};
use crate::progress::{NoProgress, Progress};
use crate::repair::PlanInner;
use crate::report::{CheckReport, Inspection, LogEntry, LogRange, RepairPlan, RepairReport};
use crate::zookeeper::ZkLayout;
use crate::StorageError;

/// How to open a data directory.
#[derive(Debug, Clone, Default)]
pub struct OpenOptions {
    /// The dialect to read, instead of detecting it. Honoured only when that dialect's
    /// own files or marker are at the path.
    pub format: Option<Dialect>,
    /// Where the logs are when they are kept apart from the snapshots: ZooKeeper's
    /// `dataLogDir`, ClickHouse Keeper's `log_storage_path`.
    pub log_dir: Option<PathBuf>,
    /// ZooKeeper: recover from this snapshot file instead of the newest valid one.
    pub snapshot: Option<PathBuf>,
    /// ZooKeeper: keep ephemeral nodes whose session is gone (ZooKeeper drops them when
    /// it starts).
    pub keep_orphan_ephemerals: bool,
}

/// A point in the history to recover to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Point {
    /// Everything the files hold.
    #[default]
    Latest,
    /// After the last txn with zxid ≤ this (ZooKeeper).
    Zxid(Zxid),
    /// After the entry with this log index (ClickHouse Keeper, native).
    Index(u64),
}

/// What a recovery did and where the state sits.
#[derive(Debug, Clone)]
pub struct RecoveryReport {
    /// The dialect read.
    pub dialect: Dialect,
    /// The zxid of the state (`lastProcessedZxid`).
    pub last_zxid: Zxid,
    /// Where the state sits in a Raft log (ClickHouse Keeper and native): what a
    /// conversion to ClickHouse Keeper continues from.
    pub raft: Option<ChPosition>,
    /// Log entries (txns) replayed on the snapshot.
    pub entries_replayed: u64,
    /// ZooKeeper's detailed report, for ZooKeeper directories.
    pub zookeeper: Option<crate::zookeeper::RecoveryReport>,
    /// What the user should know: info notes on how the state was built, warnings on
    /// what was doubtful, errors when the state is incomplete or untrustworthy.
    pub findings: Vec<Finding>,
}

impl RecoveryReport {
    /// Whether the state is incomplete or untrustworthy (an error finding).
    pub fn has_errors(&self) -> bool {
        crate::findings::has_errors(&self.findings)
    }

    /// The last point of the state, in the dialect's own terms.
    pub fn last_point(&self) -> Position {
        match &self.raft {
            Some(p) => Position::Index(p.last_log_idx),
            None => Position::Zxid(self.last_zxid),
        }
    }
}

/// A recovered state.
#[derive(Debug)]
pub struct Recovered {
    /// The tree and its sessions.
    pub tree: DataTree,
    /// How it was recovered.
    pub report: RecoveryReport,
}

/// What was opened (one variant per dialect and form).
#[derive(Debug, Clone)]
pub(crate) enum Source {
    /// A ZooKeeper data directory.
    ZooKeeperDir(ZkLayout),
    /// A single ZooKeeper snapshot or log file.
    ZooKeeperFile(PathBuf),
    /// A ClickHouse Keeper coordination directory, log or snapshot directory, or a
    /// single changelog or snapshot file.
    ClickHouse(ChLayout),
    /// A native data directory, or a bare native WAL directory.
    NativeDir {
        /// `snapshots/` (may not exist).
        snap_dir: PathBuf,
        /// The WAL directory.
        wal_dir: PathBuf,
    },
    /// A single native snapshot file.
    NativeFile(PathBuf),
    /// A single native WAL segment file.
    NativeSegment(PathBuf),
}

/// An opened data directory (or single file) of any dialect.
pub struct DataDir<'a> {
    pub(crate) fs: &'a dyn FileSystem,
    pub(crate) path: PathBuf,
    pub(crate) options: OpenOptions,
    pub(crate) source: Source,
}

impl std::fmt::Debug for DataDir<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataDir").field("path", &self.path).field("source", &self.source).finish()
    }
}

/// Opens `path`: detects its dialect (or checks that the forced one's files are
/// there) and locates its files. Nothing is read beyond directory listings and names
/// (ZooKeeper's epoch files excepted); nothing is ever written.
pub fn open<'a>(
    fs: &'a dyn FileSystem,
    path: &Path,
    options: &OpenOptions,
) -> Result<DataDir<'a>, StorageError> {
    let md = fs.metadata(path).map_err(|_| StorageError::NotFound(path.to_path_buf()))?;
    if !md.is_dir {
        // A FIFO, a device or a socket given as the path: refused here, without blocking.
        fs.open(path, keeperkit_vfs::OpenMode::Read)
            .map_err(|source| StorageError::Io { path: path.to_path_buf(), source })?;
    }
    let dialect = match options.format {
        Some(d) => {
            let found = present(fs, path);
            if !found.contains(&d) {
                return Err(StorageError::FormatNotThere {
                    path: path.to_path_buf(),
                    dialect: d,
                    found,
                });
            }
            d
        }
        None => detect(fs, path).ok_or_else(|| StorageError::UnknownDialect(path.to_path_buf()))?,
    };
    if let Some(s) = options.snapshot.as_deref().filter(|s| !fs.exists(s)) {
        return Err(StorageError::NotFound(s.to_path_buf()));
    }
    if options.snapshot.is_some() && dialect != Dialect::ZooKeeper {
        return Err(StorageError::Unsupported(format!(
            "--snapshot applies to ZooKeeper data; for {} give the snapshot file itself, or \
             --at-index N to start from the newest snapshot at or before N",
            dialect_name(dialect)
        )));
    }
    let source = match dialect {
        Dialect::ZooKeeper if md.is_dir => {
            Source::ZooKeeperDir(ZkLayout::locate(fs, path, options.log_dir.as_deref())?)
        }
        Dialect::ZooKeeper => Source::ZooKeeperFile(path.to_path_buf()),
        Dialect::ClickHouse => {
            Source::ClickHouse(ChLayout::locate(fs, path, options.log_dir.as_deref())?)
        }
        Dialect::Native if md.is_dir => crate::native::dir::locate(fs, path)?,
        Dialect::Native => {
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if keeperkit_wal::native::parse_segment_file_name(name).is_some() {
                Source::NativeSegment(path.to_path_buf())
            } else {
                Source::NativeFile(path.to_path_buf())
            }
        }
    };
    refuse_special_files(fs, &source)?;
    Ok(DataDir { fs, path: path.to_path_buf(), options: options.clone(), source })
}

/// Fails, naming it, on an entry of the source's directories that is named like one of
/// the dialect's data files but is not a regular file or a directory: a FIFO, a socket,
/// a device, a symbolic link that loops or leads nowhere. Such an entry cannot be read
/// as what its name says (a FIFO would block a reader forever), so the call cannot be
/// carried out: every command refuses it the same way, before reading anything.
/// (Directories named like data files are findings of their own.) Opening does not
/// block: the file system opens without waiting for a FIFO's writer and refuses
/// whatever is not a regular file.
fn refuse_special_files(fs: &dyn FileSystem, source: &Source) -> Result<(), StorageError> {
    let zookeeper = |n: &str| n.starts_with("log.") || n.starts_with("snapshot.");
    let clickhouse = |n: &str| {
        let n = n.strip_prefix(keeperkit_wal::clickhouse::TMP_PREFIX).unwrap_or(n);
        n.starts_with("changelog_") || n.starts_with("snapshot_")
    };
    let native = |n: &str| {
        n.starts_with("seg-")
            || n.starts_with("snap-")
            || n == keeperkit_wal::native::META_FILE_NAME
    };
    type DataLike<'f> = &'f dyn Fn(&str) -> bool;
    let (dirs, data_like): (Vec<&Path>, DataLike<'_>) = match source {
        Source::ZooKeeperDir(l) => (vec![&l.snap_dir, &l.log_dir], &zookeeper),
        Source::ClickHouse(l) => (
            [&l.log_dir, &l.snapshot_dir, &l.committed_snapshot_dir]
                .into_iter()
                .flatten()
                .map(PathBuf::as_path)
                .collect(),
            &clickhouse,
        ),
        // (The marker is checked where the directory is located.)
        Source::NativeDir { snap_dir, wal_dir } => (vec![snap_dir, wal_dir], &native),
        Source::ZooKeeperFile(_) | Source::NativeFile(_) | Source::NativeSegment(_) => {
            return Ok(())
        }
    };
    let mut seen: Vec<&Path> = Vec::new();
    for dir in dirs {
        if seen.contains(&dir) {
            continue;
        }
        seen.push(dir);
        let Ok(entries) = fs.read_dir(dir) else { continue };
        for e in entries.iter().filter(|e| !e.is_dir && data_like(&e.name)) {
            let p = dir.join(&e.name);
            match fs.open(&p, keeperkit_vfs::OpenMode::Read) {
                Ok(_) => {}
                // Deleted since the listing (a live server's purge): nothing to refuse.
                // A link that leads nowhere is still listed.
                Err(err)
                    if err.kind() == std::io::ErrorKind::NotFound
                        && fs.read_dir(dir).is_ok_and(|es| es.iter().all(|x| x.name != e.name)) => {
                }
                Err(err) => {
                    // The file system says what it is: "not a regular file (a FIFO)".
                    let msg = err.to_string();
                    let found = msg
                        .strip_prefix("not a regular file (")
                        .and_then(|k| k.strip_suffix(')'))
                        .map_or_else(
                            || format!("an entry that cannot be opened ({msg})"),
                            str::to_string,
                        );
                    return Err(StorageError::WrongKind {
                        path: p,
                        expected: "the regular file its name says it is",
                        found,
                    });
                }
            }
        }
    }
    Ok(())
}

/// A load of one file, reported as one step of its size.
fn single_file<T>(
    fs: &dyn FileSystem,
    path: &Path,
    progress: &mut dyn Progress,
    load: impl FnOnce() -> Result<T, StorageError>,
) -> Result<T, StorageError> {
    let len = crate::progress::file_len(fs, path);
    progress.set_total(len);
    progress.phase(&path.display().to_string());
    let r = load()?;
    progress.advance(len);
    Ok(r)
}

/// How a dialect is named in sentences.
pub fn dialect_name(d: Dialect) -> &'static str {
    match d {
        Dialect::ZooKeeper => "ZooKeeper",
        Dialect::ClickHouse => "ClickHouse Keeper",
        Dialect::Native => "native",
    }
}

impl<'a> DataDir<'a> {
    /// The dialect of the files.
    pub fn dialect(&self) -> Dialect {
        match self.source {
            Source::ZooKeeperDir(_) | Source::ZooKeeperFile(_) => Dialect::ZooKeeper,
            Source::ClickHouse(_) => Dialect::ClickHouse,
            Source::NativeDir { .. } | Source::NativeFile(_) | Source::NativeSegment(_) => {
                Dialect::Native
            }
        }
    }

    /// The path given to [`open`].
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file system read through.
    pub fn fs(&self) -> &'a dyn FileSystem {
        self.fs
    }

    /// The options given to [`open`].
    pub fn options(&self) -> &OpenOptions {
        &self.options
    }

    /// Whether points are log indexes (ClickHouse Keeper, native) rather than zxids.
    pub fn addressed_by_index(&self) -> bool {
        self.dialect() != Dialect::ZooKeeper
    }

    /// Recovers the state as of `point` (the way the dialect's server starts), with a
    /// report of everything it did, skipped or doubted. A point after the last one the
    /// files hold is [`StorageError::PastEnd`], naming the last one.
    pub fn recover(&self, point: Point) -> Result<Recovered, StorageError> {
        self.recover_with(point, &mut NoProgress)
    }

    /// [`DataDir::recover`] reporting progress (bytes read) to `progress`.
    pub fn recover_with(
        &self,
        point: Point,
        progress: &mut dyn Progress,
    ) -> Result<Recovered, StorageError> {
        let wrong = |by, not| StorageError::WrongPointKind { dialect: self.dialect(), by, not };
        match (&self.source, point) {
            (Source::ZooKeeperDir(_) | Source::ZooKeeperFile(_), Point::Index(_)) => {
                Err(wrong("zxid", "log index"))
            }
            (Source::ZooKeeperDir(layout), p) => crate::zookeeper::dir::recover(
                self.fs,
                layout,
                &self.options,
                match p {
                    Point::Zxid(z) => Some(z),
                    _ => None,
                },
                progress,
            ),
            (Source::ZooKeeperFile(path), p) => single_file(self.fs, path, progress, || {
                crate::zookeeper::dir::recover_file(self.fs, path, p != Point::Latest)
            }),
            (_, Point::Zxid(_)) => Err(wrong("log index", "zxid")),
            (Source::ClickHouse(layout), p) => crate::clickhouse::dir::recover(
                self.fs,
                layout,
                &self.path,
                match p {
                    Point::Index(i) => Some(i),
                    _ => None,
                },
                progress,
            ),
            (Source::NativeDir { snap_dir, wal_dir, .. }, p) => crate::native::dir::recover(
                self.fs,
                snap_dir,
                wal_dir,
                match p {
                    Point::Index(i) => Some(i),
                    _ => None,
                },
                progress,
            ),
            (Source::NativeFile(path), p) => single_file(self.fs, path, progress, || {
                crate::native::dir::recover_file(self.fs, path, p != Point::Latest)
            }),
            (Source::NativeSegment(path), _) => Err(StorageError::Unsupported(format!(
                "{} is a single WAL segment, which holds no state; give the data directory \
                 (with snapshots/ and wal/)",
                path.display()
            ))),
        }
    }

    /// Checks every file (every checksum, every record), then what the dialect's
    /// server does when it starts from them. Exit 0 of a tool means no finding is an
    /// error ([`crate::findings::exit_status`]).
    pub fn check(&self) -> Result<CheckReport, StorageError> {
        self.check_with(&mut NoProgress)
    }

    /// [`DataDir::check`] reporting progress to `progress`: the files checked, then the
    /// bytes of the replay.
    pub fn check_with(&self, progress: &mut dyn Progress) -> Result<CheckReport, StorageError> {
        match &self.source {
            Source::ZooKeeperDir(layout) => crate::zookeeper::check::check(
                self.fs,
                &self.path,
                Some(layout),
                self.options.snapshot.as_deref(),
                progress,
            ),
            Source::ZooKeeperFile(_) => {
                crate::zookeeper::check::check(self.fs, &self.path, None, None, progress)
            }
            Source::ClickHouse(layout) => {
                crate::clickhouse::check::check(self.fs, layout, progress)
            }
            Source::NativeDir { snap_dir, wal_dir } => {
                crate::native::check::check(self.fs, &self.path, snap_dir, wal_dir, progress)
            }
            Source::NativeFile(p) => crate::native::check::check_file(self.fs, p),
            Source::NativeSegment(p) => crate::native::check::check_segment(self.fs, p),
        }
    }

    /// Describes the files: metadata, ranges, and what the dialect's server does with
    /// them at startup.
    pub fn inspect(&self) -> Result<Inspection, StorageError> {
        let fs = self.fs;
        match &self.source {
            Source::ZooKeeperDir(layout) => {
                crate::zookeeper::inspect::inspect(fs, &self.path, Some(layout))
            }
            Source::ZooKeeperFile(_) => crate::zookeeper::inspect::inspect(fs, &self.path, None),
            Source::ClickHouse(layout) => crate::clickhouse::inspect::inspect(fs, layout),
            Source::NativeDir { snap_dir, wal_dir } => {
                let snaps = crate::native::check::snapshot_files(fs, snap_dir)?;
                crate::native::inspect::inspect(fs, &self.path, &snaps, Some(wal_dir))
            }
            Source::NativeFile(p) => {
                crate::native::inspect::inspect(fs, &self.path, std::slice::from_ref(p), None)
            }
            Source::NativeSegment(p) => {
                let dir = crate::repair::root_of(fs, p);
                crate::native::inspect::inspect(fs, &self.path, &[], Some(&dir))
            }
        }
    }

    /// Gives every log entry in `range` to `sink` (which may stop the reading), decoded;
    /// returns the findings of reading (a torn tail, damage that ended the reading, an
    /// entry that cannot be decoded).
    pub fn read_log(
        &self,
        range: LogRange,
        sink: &mut dyn FnMut(LogEntry) -> ControlFlow<()>,
    ) -> Result<Vec<Finding>, StorageError> {
        let index = self.addressed_by_index();
        let wrong = |by, not| StorageError::WrongPointKind { dialect: self.dialect(), by, not };
        let conv = |p: Option<Position>| -> Result<Option<Position>, StorageError> {
            match p {
                Some(Position::Zxid(_)) if index => Err(wrong("log index", "zxid")),
                Some(Position::Index(_)) if !index => Err(wrong("zxid", "log index")),
                other => Ok(other),
            }
        };
        let (from, to) = (conv(range.from)?, conv(range.to)?);
        if let (Some(a), Some(b)) = (from, to) {
            if a > b {
                return Err(StorageError::Usage(format!(
                    "the range is empty: it starts at {a}, after its end {b}"
                )));
            }
        }
        let zx = |p: Option<Position>| match p {
            Some(Position::Zxid(z)) => Some(z),
            _ => None,
        };
        let ix = |p: Option<Position>| match p {
            Some(Position::Index(i)) => Some(i),
            _ => None,
        };
        let fs = self.fs;
        match &self.source {
            Source::ZooKeeperDir(layout) => crate::zookeeper::log::read_log(
                fs,
                Some(layout),
                &self.path,
                zx(from),
                zx(to),
                sink,
            ),
            Source::ZooKeeperFile(p) => {
                let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
                if keeperkit_wal::zookeeper::parse_log_name(name).is_none() {
                    return Err(StorageError::Unsupported(format!(
                        "{} is a snapshot: it holds no log (give the data directory or a log \
                         file)",
                        p.display()
                    )));
                }
                crate::zookeeper::log::read_log(fs, None, p, zx(from), zx(to), sink)
            }
            Source::ClickHouse(layout) => {
                crate::clickhouse::log::read_log(fs, layout, ix(from), ix(to), sink)
            }
            Source::NativeDir { wal_dir, .. } => {
                crate::native::log::read_log(fs, wal_dir, ix(from), ix(to), sink)
            }
            Source::NativeSegment(p) => {
                let dir = crate::repair::root_of(fs, p);
                crate::native::log::read_log(fs, &dir, ix(from), ix(to), sink)
            }
            Source::NativeFile(p) => Err(StorageError::Unsupported(format!(
                "{} is a snapshot: it holds no log (give the data directory)",
                p.display()
            ))),
        }
    }

    /// Plans a repair: what it would change (only what the dialect's server itself
    /// does at startup, or removing leftovers), what it refuses and why (each refusal
    /// with the finding it refuses), and the state before. `backup` is where removed
    /// bytes go (by default beside the directory); it must be outside it. Nothing is
    /// written.
    pub fn plan_repair(&self, backup: Option<&Path>) -> Result<RepairPlan, StorageError> {
        let fs = self.fs;
        let root = crate::repair::root_of(fs, &self.path);
        let backup_dir = backup
            .map(Path::to_path_buf)
            .unwrap_or_else(|| crate::report::default_backup_dir(&root));
        crate::repair::check_backup_dir(&root, &backup_dir)?;
        let single = |p: &Path| {
            StorageError::Unsupported(format!(
                "{} is a single file: repair works on a data directory",
                p.display()
            ))
        };
        let (actions, refused, notes, inner) = match &self.source {
            Source::ZooKeeperDir(layout) => {
                let (actions, refused, notes, moves) = crate::zookeeper::check::plan(fs, layout)?;
                let inner =
                    if moves.is_empty() { PlanInner::Nothing } else { PlanInner::Moves(moves) };
                (actions, refused, notes, inner)
            }
            Source::ClickHouse(layout) => {
                let (a, r, n, inner) = crate::clickhouse::check::plan(fs, layout, &backup_dir)?;
                (a, r, n, PlanInner::ClickHouse(inner))
            }
            Source::NativeDir { snap_dir, wal_dir } => {
                let (a, r, inner) = crate::native::check::plan(fs, snap_dir, wal_dir)?;
                (a, r, Vec::new(), PlanInner::Native(inner))
            }
            Source::ZooKeeperFile(p) | Source::NativeFile(p) | Source::NativeSegment(p) => {
                return Err(single(p))
            }
        };
        Ok(RepairPlan {
            dialect: self.dialect(),
            path: self.path.display().to_string(),
            backup_dir: backup_dir.display().to_string(),
            actions,
            refused,
            notes,
            state_before: crate::repair::state_count(self),
            inner,
        })
    }

    /// Applies a plan of [`DataDir::plan_repair`] (nothing when it refuses anything):
    /// every byte removed goes to the backup first; then the state after and a check.
    pub fn apply_repair(&self, plan: RepairPlan) -> Result<RepairReport, StorageError> {
        crate::repair::apply(self, plan)
    }
}
