//! Repairs through the seam: the plan each dialect makes, applied with a backup of
//! everything removed, and the state before and after.

use std::path::{Path, PathBuf};

use keeperkit_vfs::FileSystem;

use crate::report::{RepairPlan, RepairReport, StateCount};
use crate::StorageError;

/// What a dialect's planner returns: the actions described, the refusals, the notes,
/// and what to apply.
pub(crate) type Planned<T> = (Vec<String>, Vec<crate::report::Refusal>, Vec<String>, T);

/// The dialect-specific part of a plan, applied by [`apply`].
#[derive(Debug, Default)]
pub(crate) enum PlanInner {
    /// Nothing to apply.
    #[default]
    Nothing,
    /// ClickHouse Keeper: the changelog plan and the snapshot-side moves.
    ClickHouse(crate::clickhouse::check::ChRepair),
    /// Native: the WAL plan and partial snapshots.
    Native(crate::native::check::NativeRepair),
    /// Files to move to the backup (ZooKeeper: an empty newest log).
    Moves(Vec<PathBuf>),
}

/// Moves `file` into `backup_dir` durably ([`keeperkit_vfs::move_to_backup`]).
pub(crate) fn move_to_backup(
    fs: &dyn FileSystem,
    file: &Path,
    backup_dir: &Path,
) -> Result<PathBuf, StorageError> {
    keeperkit_vfs::move_to_backup(fs, file, backup_dir)
        .map_err(|e| StorageError::Io { path: e.path.clone(), source: e.source })
}

/// The directory a repair of `path` works in: the path itself, or the directory of a
/// single file (`.` for a bare relative file name).
pub(crate) fn root_of(fs: &dyn FileSystem, path: &Path) -> PathBuf {
    if fs.metadata(path).is_ok_and(|m| m.is_dir) {
        return path.to_path_buf();
    }
    keeperkit_vfs::parent_dir(path).to_path_buf()
}

/// Refuses a backup directory inside the data directory.
pub(crate) fn check_backup_dir(root: &Path, backup: &Path) -> Result<(), StorageError> {
    let abs = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    if abs(backup).starts_with(abs(root)) {
        return Err(StorageError::Usage(format!(
            "the backup directory {} is inside the data directory {}; choose a directory \
             outside it",
            backup.display(),
            root.display()
        )));
    }
    Ok(())
}

/// Applies `plan`, then checks again.
pub(crate) fn apply(
    dir: &crate::DataDir<'_>,
    plan: RepairPlan,
) -> Result<RepairReport, StorageError> {
    let mut report = RepairReport {
        applied: false,
        backup_dir: None,
        actions: plan.actions.clone(),
        backups: Vec::new(),
        refused: plan.refused,
        notes: plan.notes,
        state_before: plan.state_before,
        state_after: None,
        verify_after: None,
    };
    if !report.refused.is_empty() || report.actions.is_empty() {
        return Ok(report);
    }
    let fs = dir.fs();
    let backup_dir = PathBuf::from(&plan.backup_dir);
    let (actions, backups) = match plan.inner {
        PlanInner::Nothing => (Vec::new(), Vec::new()),
        PlanInner::ClickHouse(r) => crate::clickhouse::check::apply_repair(fs, r)?,
        PlanInner::Native(r) => crate::native::check::apply_repair(fs, r, &backup_dir)?,
        PlanInner::Moves(files) => {
            let mut backups = Vec::new();
            for f in &files {
                backups.push(move_to_backup(fs, f, &backup_dir)?.display().to_string());
            }
            (report.actions.clone(), backups)
        }
    };
    report.actions = actions;
    report.backups = backups;
    report.applied = true;
    report.backup_dir = Some(plan.backup_dir);
    // The files changed: locate them again.
    let again = crate::open(fs, dir.path(), dir.options())?;
    report.state_after = state_count(&again);
    report.verify_after = Some(again.check()?);
    Ok(report)
}

/// The node count and last point of the latest state, when it recovers.
pub(crate) fn state_count(dir: &crate::DataDir<'_>) -> Option<StateCount> {
    let r = dir.recover(crate::Point::Latest).ok()?;
    Some(StateCount { nodes: r.tree.node_count() as u64, last: r.report.last_point() })
}
