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
use crate::findings::{Finding, Position};
use crate::zookeeper::{Progress, ZkLayout};
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
    /// A ClickHouse Keeper coordination directory (or a snapshot file).
    ClickHouse(ChLayout),
    /// A single ClickHouse Keeper changelog file.
    ClickHouseLog(PathBuf),
    /// A native data directory, or a bare native WAL directory.
    NativeDir {
        /// `snapshots/` (may not exist).
        snap_dir: PathBuf,
        /// The WAL directory.
        wal_dir: PathBuf,
    },
    /// A single native snapshot file.
    NativeFile(PathBuf),
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
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if !md.is_dir && name.trim_start_matches("tmp_").starts_with("changelog") {
                Source::ClickHouseLog(path.to_path_buf())
            } else {
                Source::ClickHouse(ChLayout::locate(fs, path, options.log_dir.as_deref())?)
            }
        }
        Dialect::Native if md.is_dir => crate::native::dir::locate(fs, path),
        Dialect::Native => Source::NativeFile(path.to_path_buf()),
    };
    Ok(DataDir { fs, path: path.to_path_buf(), options: options.clone(), source })
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
            Source::ClickHouse(_) | Source::ClickHouseLog(_) => Dialect::ClickHouse,
            Source::NativeDir { .. } | Source::NativeFile(_) => Dialect::Native,
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
        self.recover_with(point, &mut crate::zookeeper::NoProgress)
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
            (Source::ZooKeeperFile(path), p) => {
                crate::zookeeper::dir::recover_file(self.fs, path, p != Point::Latest)
            }
            (_, Point::Zxid(_)) => Err(wrong("log index", "zxid")),
            (Source::ClickHouse(layout), p) => crate::clickhouse::dir::recover(
                self.fs,
                layout,
                &self.path,
                match p {
                    Point::Index(i) => Some(i),
                    _ => None,
                },
            ),
            (Source::ClickHouseLog(file), _) => Err(StorageError::Unsupported(format!(
                "{} is a single changelog file, which holds no state; give the coordination \
                 directory (with logs/ and snapshots/) or the log directory",
                file.display()
            ))),
            (Source::NativeDir { snap_dir, wal_dir, .. }, p) => crate::native::dir::recover(
                self.fs,
                snap_dir,
                wal_dir,
                match p {
                    Point::Index(i) => Some(i),
                    _ => None,
                },
            ),
            (Source::NativeFile(path), p) => {
                crate::native::dir::recover_file(self.fs, path, p != Point::Latest)
            }
        }
    }
}
