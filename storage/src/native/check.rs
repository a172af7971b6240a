//! Checking and repairing native data through the seam: every snapshot (every block,
//! both CRCs of every chunk, every record) and the WAL.

use std::path::{Path, PathBuf};

use keeperkit_model::CorruptionKind;
use keeperkit_vfs::FileSystem;
use keeperkit_wal::native::{self, Problem, ProblemKind, RepairAction};

use crate::engine::layout;
use crate::findings::{Code, Finding, Position, Severity};
use crate::report::{CheckReport, Refusal};
use crate::{Dialect, StorageError};

/// The finding of a WAL problem.
pub(crate) fn wal_finding(p: &Problem) -> Finding {
    let c = p.to_corruption();
    let (severity, code, message) = match &p.kind {
        // A complete record at the very end that fails its checksum is either a write
        // torn inside a sector or a flipped bit in an acknowledged entry; the bytes
        // cannot tell which, so verify does not call it harmless.
        ProblemKind::TornTail {
            valid_end, cause: CorruptionKind::ChecksumMismatch { .. }, ..
        } => (
            Severity::Error,
            Code::ChecksumMismatch,
            format!(
                "the last record of the newest segment, at byte {valid_end}, fails its checksum \
                 ({}): either a torn write that was never acknowledged or a flipped bit in an \
                 acknowledged entry; `keeperkit repair --apply` cuts it (with a backup)",
                c.kind
            ),
        ),
        ProblemKind::TornTail { valid_end, file_len, .. } => (
            Severity::Warning,
            Code::TornTail,
            format!(
                "the newest segment ends in an unfinished write from byte {valid_end} to \
                 {file_len} ({}); it was never acknowledged; `keeperkit repair --apply` cuts it",
                c.kind
            ),
        ),
        ProblemKind::Corrupt(k) => (Severity::Error, Code::from(k), format!("{c}")),
    };
    Finding {
        severity,
        code,
        file: Some(p.path.clone()),
        offset: Some(p.offset),
        position: p.index.map(Position::Index),
        message,
    }
}

/// The findings of a native snapshot file.
pub(crate) fn snapshot_findings(
    fs: &dyn FileSystem,
    path: &Path,
) -> Result<Vec<Finding>, StorageError> {
    Ok(keeperkit_snapshot::native::verify_snapshot(fs, path)?
        .into_iter()
        .map(|c| Finding::corruption(&c, "damaged snapshot"))
        .collect())
}

/// The snapshot files of a data directory (`snapshots/` may not exist).
pub(crate) fn snapshot_files(
    fs: &dyn FileSystem,
    snap_dir: &Path,
) -> Result<Vec<PathBuf>, StorageError> {
    if !fs.metadata(snap_dir).is_ok_and(|m| m.is_dir) {
        return Ok(Vec::new());
    }
    Ok(layout::snapshot_files(fs, snap_dir)?.into_iter().map(|(_, p)| p).collect())
}

/// Checks a native data directory (or bare WAL directory): every snapshot, the WAL,
/// then a read-only recovery (a snapshot the log does not continue, a fallback that
/// loses entries).
pub(crate) fn check(
    fs: &dyn FileSystem,
    path: &Path,
    snap_dir: &Path,
    wal_dir: &Path,
    progress: &mut dyn crate::progress::Progress,
) -> Result<CheckReport, StorageError> {
    progress.phase("checking every file");
    let mut r = CheckReport::new(Dialect::Native, path);
    let snaps = snapshot_files(fs, snap_dir)?;
    for p in &snaps {
        r.findings.extend(snapshot_findings(fs, p)?);
    }
    r.snapshots_checked = snaps.len();
    let info = native::inspect(fs, wal_dir)?;
    r.files_checked = snaps.len() + info.segments.len();
    r.records_checked = info.segments.iter().map(|s| s.records).sum();
    r.findings.extend(native::verify(fs, wal_dir)?.iter().map(wal_finding));
    r.findings.extend(crate::findings::data_named_dirs(fs, snap_dir, |n| {
        keeperkit_snapshot::native::parse_snapshot_file_name(n).is_some()
    }));
    r.findings.extend(crate::findings::data_named_dirs(fs, wal_dir, |n| {
        native::parse_segment_file_name(n).is_some()
    }));
    if snaps.is_empty() && info.segments.is_empty() {
        r.findings.push(
            Finding::new(
                Severity::Error,
                Code::NoData,
                "no snapshot and no WAL segment: the directory holds no state at all",
            )
            .file(path),
        );
    }
    // A bare WAL directory holds any payloads; only a data directory holds a tree.
    let data_dir = fs.exists(&path.join(layout::MARKER_FILE)) || fs.exists(snap_dir);
    if data_dir && !crate::findings::has_errors(&r.findings) {
        match super::dir::recover(fs, snap_dir, wal_dir, None, progress) {
            Ok(rec) => {
                r.entries_replayed = rec.report.entries_replayed;
                r.findings.extend(
                    rec.report.findings.into_iter().filter(|f| f.severity != Severity::Info),
                );
            }
            Err(e) => r.findings.push(
                Finding::new(
                    Severity::Error,
                    Code::Unrecoverable,
                    format!("the directory cannot be recovered: {e}"),
                )
                .file(path),
            ),
        }
    }
    Ok(r.finish())
}

/// Checks a single native snapshot file.
pub(crate) fn check_file(fs: &dyn FileSystem, path: &Path) -> Result<CheckReport, StorageError> {
    let mut r = CheckReport::new(Dialect::Native, path);
    r.findings = snapshot_findings(fs, path)?;
    r.files_checked = 1;
    r.snapshots_checked = 1;
    Ok(r.finish())
}

/// Checks a single native WAL segment file, given alone: the segment's records (its
/// directory's other segments are not read).
pub(crate) fn check_segment(fs: &dyn FileSystem, path: &Path) -> Result<CheckReport, StorageError> {
    let mut r = CheckReport::new(Dialect::Native, path);
    let dir = crate::repair::root_of(fs, path);
    let info = native::inspect(fs, &dir)?;
    let seg = info.segments.iter().find(|s| s.path == path);
    r.files_checked = 1;
    r.records_checked = seg.map_or(0, |s| s.records);
    r.findings =
        native::verify(fs, &dir)?.iter().filter(|p| p.path == path).map(wal_finding).collect();
    Ok(r.finish())
}

/// A native repair, ready to apply.
#[derive(Debug)]
pub(crate) struct NativeRepair {
    wal_dir: PathBuf,
    wal_actions: bool,
    partial: Vec<PathBuf>,
}

/// Partial snapshots (`*.kks.tmp`) a crash left in `snapshots/`.
fn partial_snapshots(fs: &dyn FileSystem, snap_dir: &Path) -> Result<Vec<PathBuf>, StorageError> {
    if !fs.metadata(snap_dir).is_ok_and(|m| m.is_dir) {
        return Ok(Vec::new());
    }
    let suffix = format!(".kks{}", keeperkit_snapshot::native::TEMP_SUFFIX);
    Ok(fs
        .read_dir(snap_dir)
        .map_err(|source| StorageError::Io { path: snap_dir.to_path_buf(), source })?
        .into_iter()
        .filter(|e| !e.is_dir && e.name.ends_with(&suffix))
        .map(|e| snap_dir.join(e.name))
        .collect())
}

fn describe_partial(p: &Path) -> String {
    format!("move partial snapshot {} (left by a crash while writing) to the backup", p.display())
}

/// Plans a repair of native data: cut a torn WAL tail, remove leftover temporary files
/// and partial snapshots, all into the backup; damage that could hold acknowledged
/// entries is refused with its finding.
pub(crate) fn plan(
    fs: &dyn FileSystem,
    snap_dir: &Path,
    wal_dir: &Path,
) -> Result<(Vec<String>, Vec<Refusal>, NativeRepair), StorageError> {
    let plan = native::repair_plan(fs, wal_dir)?;
    let mut refused: Vec<Refusal> = plan
        .refused
        .iter()
        .map(|(p, why)| Refusal { finding: wal_finding(p), reason: why.clone() })
        .collect();
    for s in snapshot_files(fs, snap_dir)? {
        for f in snapshot_findings(fs, &s)? {
            refused.push(Refusal {
                finding: f,
                reason: "a damaged snapshot is never rewritten (its checksums would be \
                         recomputed over bad bytes); the engine falls back to an older \
                         snapshot only when the log reaches back to it"
                    .into(),
            });
        }
    }
    let partial = partial_snapshots(fs, snap_dir)?;
    let actions = plan
        .actions
        .iter()
        .map(RepairAction::to_string)
        .chain(partial.iter().map(|p| describe_partial(p)))
        .collect();
    let inner = NativeRepair {
        wal_dir: wal_dir.to_path_buf(),
        wal_actions: !plan.actions.is_empty(),
        partial,
    };
    Ok((actions, refused, inner))
}

/// Applies a planned repair; returns what was done and the backups made.
pub(crate) fn apply_repair(
    fs: &dyn FileSystem,
    r: NativeRepair,
    backup_dir: &Path,
) -> Result<(Vec<String>, Vec<String>), StorageError> {
    let (mut actions, mut backups) = (Vec::new(), Vec::new());
    if r.wal_actions {
        let done = native::repair(fs, &r.wal_dir, backup_dir)?;
        actions.extend(done.performed.iter().map(RepairAction::to_string));
        backups.extend(done.backups.iter().map(|p| p.display().to_string()));
    }
    for p in &r.partial {
        let saved = crate::repair::move_to_backup(fs, p, backup_dir)?;
        actions.push(describe_partial(p));
        backups.push(saved.display().to_string());
    }
    Ok((actions, backups))
}
