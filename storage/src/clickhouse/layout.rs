//! Where a ClickHouse Keeper path keeps its files: the one locator every command uses
//! (recovery, check, inspect, log, repair).
//!
//! Accepted paths, in this order of rules:
//!
//! 1. one file: `changelog_<from>_<to>.bin[.zstd]` or `snapshot_<N>.bin[.zstd]` (a
//!    `tmp_` file is a marker Keeper deletes at startup, not data);
//! 2. a coordination directory: `logs/` (standalone Keeper) or `log/` (Keeper inside
//!    the ClickHouse server), and `snapshots/`;
//! 3. a directory holding `changelog*` and/or `snapshot_*` files (`tmp_` markers
//!    included), or an empty directory named `logs`, `log` or `snapshots`. A log
//!    directory whose sibling is `snapshots/` takes Keeper's last committed index from
//!    there.
//!
//! `--log-dir` replaces where changelogs are read from (for a directory or a single
//! snapshot file).

use std::path::{Path, PathBuf};

use keeperkit_snapshot::clickhouse as chsnap;
use keeperkit_vfs::FileSystem;
use keeperkit_wal::clickhouse::{ChangelogName, TMP_PREFIX};

use crate::StorageError;

/// Where a ClickHouse Keeper path keeps its files.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ChLayout {
    /// The path given.
    pub root: PathBuf,
    /// The changelog directory, when the path has changelogs.
    pub log_dir: Option<PathBuf>,
    /// The snapshot directory, when the path has snapshots.
    pub snapshot_dir: Option<PathBuf>,
    /// Where Keeper's last committed index comes from: the snapshot directory, or the
    /// sibling `snapshots/` of a log directory given on its own.
    pub committed_snapshot_dir: Option<PathBuf>,
    /// A single changelog file given on its own.
    pub changelog_file: Option<PathBuf>,
    /// A single snapshot file given on its own.
    pub snapshot_file: Option<PathBuf>,
}

pub(crate) fn file_name(p: &Path) -> String {
    p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}

fn is_dir(fs: &dyn FileSystem, p: &Path) -> bool {
    fs.metadata(p).map(|m| m.is_dir).unwrap_or(false)
}

fn is_changelog_name(name: &str) -> bool {
    name.starts_with("changelog") && ChangelogName::parse(name).is_some()
}

impl ChLayout {
    /// Finds the files under `path` (module docs). `log_dir` replaces where changelogs
    /// are read from.
    pub fn locate(
        fs: &dyn FileSystem,
        path: &Path,
        log_dir: Option<&Path>,
    ) -> Result<ChLayout, StorageError> {
        let mut p = ChLayout { root: path.to_path_buf(), ..ChLayout::default() };
        if !fs.exists(path) {
            return Err(StorageError::NotFound(path.to_path_buf()));
        }
        if !is_dir(fs, path) {
            let name = file_name(path);
            if is_changelog_name(&name) {
                p.changelog_file = Some(path.to_path_buf());
            } else if chsnap::parse_snapshot_name(&name).is_some() {
                p.snapshot_file = Some(path.to_path_buf());
                p.log_dir = log_dir.map(Path::to_path_buf);
            } else {
                return Err(StorageError::NotADataDir {
                    path: path.to_path_buf(),
                    what: "ClickHouse Keeper changelog or snapshot file",
                    reason: "the name is neither changelog_<from>_<to>.bin[.zstd] nor \
                             snapshot_<N>.bin[.zstd] (a tmp_ file is a marker Keeper deletes \
                             at startup)"
                        .into(),
                });
            }
            return Ok(p);
        }
        crate::dialect::check_subdirs(fs, path, &["logs", "log", "snapshots"])?;
        // Keeper's defaults: `<path>/logs` (standalone) or `coordination/log` (in server).
        let logs = ["logs", "log"].map(|n| path.join(n)).into_iter().find(|d| is_dir(fs, d));
        let snaps = path.join("snapshots");
        if logs.is_some() || is_dir(fs, &snaps) {
            p.log_dir = logs;
            p.snapshot_dir = is_dir(fs, &snaps).then_some(snaps);
        } else {
            let entries = fs
                .read_dir(path)
                .map_err(|source| StorageError::Io { path: path.into(), source })?;
            let stem = |n: &str| n.strip_prefix(TMP_PREFIX).unwrap_or(n).to_string();
            if entries.iter().any(|e| !e.is_dir && stem(&e.name).starts_with("changelog")) {
                p.log_dir = Some(path.to_path_buf());
            }
            if entries.iter().any(|e| !e.is_dir && stem(&e.name).starts_with("snapshot_")) {
                p.snapshot_dir = Some(path.to_path_buf());
            }
            if p.log_dir.is_none() && p.snapshot_dir.is_none() {
                match file_name(path).as_str() {
                    "logs" | "log" => p.log_dir = Some(path.to_path_buf()),
                    "snapshots" => p.snapshot_dir = Some(path.to_path_buf()),
                    _ => {
                        return Err(StorageError::NotADataDir {
                            path: path.to_path_buf(),
                            what: "ClickHouse Keeper coordination directory",
                            reason: "it holds no changelogs or snapshots".into(),
                        })
                    }
                }
            }
            if p.log_dir.is_some() && p.snapshot_dir.is_none() {
                // A log dir next to its snapshots: Keeper's last committed index is there.
                if let Some(sib) = path.parent().map(|d| d.join("snapshots")) {
                    if is_dir(fs, &sib) && sib != path {
                        p.committed_snapshot_dir = Some(sib);
                    }
                }
            }
        }
        if let Some(l) = log_dir {
            p.log_dir = Some(l.to_path_buf());
        }
        if p.committed_snapshot_dir.is_none() {
            p.committed_snapshot_dir.clone_from(&p.snapshot_dir);
        }
        Ok(p)
    }

    /// Whether the path is one file (a changelog or a snapshot) rather than a
    /// directory.
    pub fn is_single_file(&self) -> bool {
        self.changelog_file.is_some() || self.snapshot_file.is_some()
    }
}
