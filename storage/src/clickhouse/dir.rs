//! A ClickHouse Keeper coordination directory through the seam: recovery with its
//! findings.

use std::path::Path;

use keeperkit_vfs::FileSystem;

use super::{recover_with as ch_recover, ChLayout, ChRecoverOptions};
use crate::convert::clickhouse::ChPosition;
use crate::datadir::{Recovered, RecoveryReport};
use crate::findings::{Code, Finding, Severity};
use crate::progress::Progress;
use crate::{Dialect, StorageError};

/// Recovers the state as Keeper starts, up to log index `at_index` when given.
pub(crate) fn recover(
    fs: &dyn FileSystem,
    layout: &ChLayout,
    path: &Path,
    at_index: Option<u64>,
    progress: &mut dyn Progress,
) -> Result<Recovered, StorageError> {
    let opts = ChRecoverOptions { at_index, ..ChRecoverOptions::default() };
    let r = ch_recover(fs, layout, &opts, progress)?;
    let mut out: Vec<Finding> = Vec::new();
    for s in &r.skipped {
        let name = s.path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let index = keeperkit_snapshot::clickhouse::parse_snapshot_name(name);
        let lost = index.filter(|&i| i > r.last_index && at_index.is_none_or(|a| i <= a));
        if let Some(i) = lost {
            out.push(
                Finding::new(
                    Severity::Error,
                    Code::SnapshotSkipped,
                    format!(
                        "snapshot {} (index {i}) was not used ({}) and the log does not reach \
                         it: the state stops at index {}, without what the snapshot held",
                        s.path.display(),
                        s.reason,
                        r.last_index
                    ),
                )
                .file(&s.path)
                .index(i),
            );
            continue;
        }
        out.push(
            Finding::new(
                if s.damaged { Severity::Warning } else { Severity::Info },
                Code::SnapshotSkipped,
                format!("snapshot {} not used: {}", s.path.display(), s.reason),
            )
            .file(&s.path),
        );
    }
    out.extend(r.notes.iter().cloned());
    out.extend(data_named_dirs(fs, layout));
    let used = r.snapshot.as_ref().map_or_else(
        || "an empty Keeper tree (no snapshot)".to_string(),
        |s| format!("snapshot {} (index {})", s.path.display(), s.header.meta.last_log_idx),
    );
    out.push(
        Finding::new(
            Severity::Info,
            Code::Recovered,
            format!(
                "recovered from {used} and {} changelog entries; last index {} (term {}), \
                 last zxid {}; {} entry digests checked",
                r.entries_applied,
                r.last_index,
                r.last_term,
                r.tree.last_processed_zxid(),
                r.digests_checked
            ),
        )
        .index(r.last_index),
    );
    if layout.snapshot_file.is_some() {
        out.push(
            Finding::new(
                Severity::Info,
                Code::SingleFile,
                format!(
                    "{} read on its own: give the coordination directory to replay the \
                     changelogs after it",
                    path.display()
                ),
            )
            .file(path),
        );
    }
    if let Some(plan) = &r.plan {
        for w in &plan.warnings {
            out.push(Finding::new(Severity::Info, Code::StartupWarning, format!("Keeper: {w}")));
        }
        if let Some(b) = plan.broken_file {
            let f = &r.files[b];
            let torn = f.broken.as_ref().is_some_and(|c| {
                matches!(c.kind, keeperkit_model::CorruptionKind::Truncated { .. })
            });
            let at = f.broken.as_ref().map(|c| c.offset);
            out.push(if torn {
                Finding::new(
                    Severity::Warning,
                    Code::TornTail,
                    format!(
                        "{} ends with a partial record (a write cut short, never acknowledged); \
                         Keeper ignores it and so does this state",
                        f.path.display()
                    ),
                )
                .file(&f.path)
                .offset_opt(at)
            } else {
                let mut x = match &f.broken {
                    Some(c) => Finding::corruption(c, ""),
                    None => {
                        Finding::new(Severity::Error, Code::Truncated, String::new()).file(&f.path)
                    }
                };
                x.message = format!(
                    "{} is damaged{}: Keeper stops reading it there and starts without \
                     every later entry of it; this state stops at index {} too \
                     (`keeperkit verify` tells more)",
                    f.path.display(),
                    at.map(|o| format!(" at byte {o}")).unwrap_or_default(),
                    r.last_index
                );
                x
            });
        }
        let loaded: std::collections::HashSet<u64> = plan.entries.iter().map(|e| e.0).collect();
        let committed = r.snapshot.as_ref().map_or(0, |s| s.header.meta.last_log_idx);
        // A damaged file the plan neither stops at nor sets aside: one that yields no
        // record at all (damaged from its first byte) is passed over by the plan, and
        // whatever it held after the snapshot is not in this state.
        let last_file = r.files.len().checked_sub(1);
        for (i, f) in r.files.iter().enumerate() {
            let Some(c) = &f.broken else { continue };
            if plan.broken_file == Some(i) || plan.detach.contains(&i) {
                continue;
            }
            let named_to = f
                .path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(keeperkit_wal::clickhouse::ChangelogName::parse)
                .map_or(u64::MAX, |n| n.to);
            if named_to <= committed {
                continue;
            }
            let torn = matches!(c.kind, keeperkit_model::CorruptionKind::Truncated { .. })
                && last_file == Some(i)
                && f.records.is_empty();
            let mut x = Finding::corruption(c, "");
            if torn {
                x.severity = Severity::Warning;
                x.code = Code::TornTail;
                x.message = format!(
                    "{} holds only a partial record (a write cut short, never acknowledged); \
                     Keeper ignores it and so does this state",
                    f.path.display()
                );
            } else {
                x.message = format!(
                    "{} is damaged at byte {}{} ({}): no entry of it can be read, so the \
                     entries it held are not in this state, which stops at index {} \
                     (`keeperkit verify` tells more)",
                    f.path.display(),
                    c.offset,
                    if f.compressed { " of its decompressed stream" } else { "" },
                    c.kind,
                    r.last_index
                );
            }
            out.push(x);
        }
        for &d in &plan.detach {
            let f = &r.files[d];
            let lost: std::collections::HashSet<u64> = f
                .records
                .iter()
                .map(|x| x.record.index)
                .filter(|i| *i > committed && !loaded.contains(i))
                .collect();
            // A damaged file's unreadable part may hold entries past the state.
            let named_to = f
                .path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(keeperkit_wal::clickhouse::ChangelogName::parse)
                .map_or(u64::MAX, |n| n.to);
            let unreadable = f.broken.as_ref().map(|c| c.offset);
            if let Some(at) = unreadable.filter(|_| lost.is_empty() && named_to > committed) {
                out.push(
                    Finding::new(
                        Severity::Error,
                        Code::WouldDetach,
                        format!(
                            "Keeper would move {} to detached/ at startup; it is damaged from \
                             byte {at} on, so the entries it held there cannot be read and \
                             are not in this state (index {})",
                            f.path.display(),
                            r.last_index
                        ),
                    )
                    .file(&f.path)
                    .offset(at),
                );
                continue;
            }
            out.push(
                Finding::new(
                    if lost.is_empty() { Severity::Warning } else { Severity::Error },
                    Code::WouldDetach,
                    if lost.is_empty() {
                        format!(
                            "Keeper would move {} to detached/ at startup (every entry in it is \
                             in the snapshot or in the log it loads)",
                            f.path.display()
                        )
                    } else {
                        format!(
                            "Keeper would move {} to detached/ at startup and lose the {} entries \
                             after index {committed} it holds; this state stops at index {} too",
                            f.path.display(),
                            lost.len(),
                            r.last_index
                        )
                    },
                )
                .file(&f.path),
            );
        }
    }
    let raft = ChPosition {
        last_log_idx: r.last_index,
        last_log_term: r.last_term,
        cluster_config: r.cluster_config.clone(),
    };
    Ok(Recovered {
        report: RecoveryReport {
            dialect: Dialect::ClickHouse,
            last_zxid: r.tree.last_processed_zxid(),
            raft: Some(raft),
            entries_replayed: r.entries_applied,
            zookeeper: None,
            findings: out,
        },
        tree: r.tree,
    })
}

/// Error findings for directories named like changelogs or snapshots (`tmp_` markers
/// included) in the layout's directories: Keeper fails on them, and recovering the state
/// never passes over them silently (verify reports them the same way).
fn data_named_dirs(fs: &dyn FileSystem, layout: &ChLayout) -> Vec<Finding> {
    let data_like = |n: &str| {
        let n = n.strip_prefix(keeperkit_wal::clickhouse::TMP_PREFIX).unwrap_or(n);
        n.starts_with("changelog_") || n.starts_with("snapshot_")
    };
    let mut dirs: Vec<&std::path::PathBuf> = layout.log_dir.iter().collect();
    dirs.extend(layout.snapshot_dir.iter().filter(|d| Some(*d) != layout.log_dir.as_ref()));
    dirs.into_iter().flat_map(|d| crate::findings::data_named_dirs(fs, d, data_like)).collect()
}
