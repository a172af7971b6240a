//! A native data directory (or a bare WAL directory, or one snapshot file) through
//! the seam: locating it and recovering it read-only with its findings.

use std::path::Path;

use keeperkit_vfs::FileSystem;

use crate::convert::clickhouse::ChPosition;
use crate::datadir::{Recovered, RecoveryReport, Source};
use crate::engine::{layout, recover_readonly_with, ReplayEnd};
use crate::findings::{Code, Finding, Position, Severity};
use crate::{Dialect, StorageError};

/// Where a native directory's snapshots and WAL are: a data directory (marker or
/// `wal/`) or a bare WAL directory.
pub(crate) fn locate(fs: &dyn FileSystem, path: &Path) -> Result<Source, StorageError> {
    crate::dialect::check_subdirs(fs, path, &[layout::WAL_DIR, layout::SNAPSHOT_DIR])?;
    let marker = path.join(layout::MARKER_FILE);
    let has_marker =
        fs.read_dir(path).is_ok_and(|es| es.iter().any(|e| e.name == layout::MARKER_FILE));
    if has_marker {
        let md = fs.metadata(&marker).ok();
        if md.is_none_or(|m| m.is_dir) {
            return Err(StorageError::WrongKind {
                path: marker,
                expected: "keeperkit's marker file",
                found: "a directory or an entry that cannot be opened".into(),
            });
        }
        let ok = md.is_some_and(|m| m.len <= 4096)
            && fs.read_all(&marker).is_ok_and(|b| b == layout::MARKER_V1);
        if !ok {
            return Err(StorageError::NotADataDir {
                path: path.to_path_buf(),
                what: "keeperkit native data directory",
                reason: format!(
                    "its {} marker does not hold keeperkit's marker text (empty, zeroed or \
                     another program's file)",
                    layout::MARKER_FILE
                ),
            });
        }
    }
    let data_dir = has_marker || fs.exists(&path.join(layout::WAL_DIR));
    Ok(Source::NativeDir {
        snap_dir: path.join(layout::SNAPSHOT_DIR),
        wal_dir: if data_dir { path.join(layout::WAL_DIR) } else { path.to_path_buf() },
    })
}

/// Reads a single snapshot file: the state at its log index.
pub(crate) fn recover_file(
    fs: &dyn FileSystem,
    path: &Path,
    at: bool,
) -> Result<Recovered, StorageError> {
    if at {
        return Err(StorageError::Unsupported(
            "a point in time needs a data directory, not a single snapshot file".into(),
        ));
    }
    let loaded = super::snapshot::load_tree(fs, path)?;
    let findings = vec![Finding::new(
        Severity::Info,
        Code::SingleFile,
        format!(
            "{} read on its own: the state at log index {} (give the data directory to replay \
             the log after it)",
            path.display(),
            loaded.meta.last_index
        ),
    )
    .file(path)
    .index(loaded.meta.last_index)];
    let raft = ChPosition {
        last_log_idx: loaded.meta.last_index,
        last_log_term: loaded.meta.last_term,
        ..ChPosition::default()
    };
    Ok(Recovered {
        report: RecoveryReport {
            dialect: Dialect::Native,
            last_zxid: loaded.tree.last_processed_zxid(),
            raft: Some(raft),
            entries_replayed: 0,
            zookeeper: None,
            findings,
        },
        tree: loaded.tree,
    })
}

/// Recovers read-only: the newest intact snapshot and the WAL after it, stopping after
/// `upto` when given.
pub(crate) fn recover(
    fs: &dyn FileSystem,
    snap_dir: &Path,
    wal_dir: &Path,
    upto: Option<u64>,
    progress: &mut dyn crate::progress::Progress,
) -> Result<Recovered, StorageError> {
    let r = recover_readonly_with(fs, snap_dir, wal_dir, upto, progress)?;
    if let Some(n) = upto.filter(|&n| r.position.index > n) {
        return Err(StorageError::Unreachable {
            what: format!("index {n}"),
            reason: format!(
                "it is before the oldest state the files hold: the snapshot used is at index {} \
                 and the log does not reach back to {n}",
                r.position.index
            ),
        });
    }
    if let Some(n) = upto {
        if r.position.index < n && r.end == ReplayEnd::Complete {
            return Err(StorageError::PastEnd {
                requested: Position::Index(n),
                last: Position::Index(r.position.index),
            });
        }
    }
    let mut out = Vec::new();
    let used = r.snapshot.as_ref().map_or_else(
        || "the initial empty tree (no snapshot)".to_string(),
        |s| format!("snapshot {} (index {})", s.path.display(), s.position.index),
    );
    for s in &r.skipped {
        out.push(Finding::damaged_snapshot_skipped(&s.path, &s.reason, &used));
    }
    out.push(
        Finding::new(
            Severity::Info,
            Code::Recovered,
            format!(
                "recovered from {used} and {} log entries; last index {} (term {}), last zxid {}",
                r.replayed,
                r.position.index,
                r.position.term,
                r.tree.last_processed_zxid()
            ),
        )
        .index(r.position.index),
    );
    match &r.end {
        ReplayEnd::Complete => {}
        ReplayEnd::TornTail { path, valid_end } => out.push(
            Finding::new(
                Severity::Warning,
                Code::TornTail,
                format!(
                    "{} ends with an unfinished write at byte {valid_end} (never acknowledged; \
                     the engine cuts it when it opens)",
                    path.display()
                ),
            )
            .file(path)
            .offset(*valid_end),
        ),
        ReplayEnd::Damaged(why) => out.push(
            Finding::new(
                Severity::Error,
                Code::Unrecoverable,
                format!(
                    "replay stopped at damage: {why}; the state shown is the one after index {} \
                     (`keeperkit verify` lists every problem)",
                    r.position.index
                ),
            )
            .index(r.position.index + 1),
        ),
        ReplayEnd::Gap { expected, found } => out.push(
            Finding::new(
                Severity::Error,
                Code::Gap,
                format!(
                    "the log does not continue the snapshot: index {expected} was needed, the \
                     log holds {found}; the state stops at {}",
                    r.position.index
                ),
            )
            .index(*found),
        ),
    }
    out.extend(crate::findings::data_named_dirs(fs, snap_dir, |n| {
        keeperkit_snapshot::native::parse_snapshot_file_name(n).is_some()
    }));
    out.extend(crate::findings::data_named_dirs(fs, wal_dir, |n| {
        keeperkit_wal::native::parse_segment_file_name(n).is_some()
    }));
    let raft = ChPosition {
        last_log_idx: r.position.index,
        last_log_term: r.position.term,
        ..ChPosition::default()
    };
    Ok(Recovered {
        report: RecoveryReport {
            dialect: Dialect::Native,
            last_zxid: r.tree.last_processed_zxid(),
            raft: Some(raft),
            entries_replayed: r.replayed,
            zookeeper: None,
            findings: out,
        },
        tree: r.tree,
    })
}
