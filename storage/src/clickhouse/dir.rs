//! A ClickHouse Keeper coordination directory through the seam: recovery with its
//! findings.

use std::path::Path;

use keeperkit_vfs::FileSystem;

use super::{recover as ch_recover, ChLayout, ChRecoverOptions};
use crate::convert::clickhouse::ChPosition;
use crate::datadir::{Recovered, RecoveryReport};
use crate::findings::{Code, Finding, Severity};
use crate::{Dialect, StorageError};

/// Recovers the state as Keeper starts, up to log index `at_index` when given.
pub(crate) fn recover(
    fs: &dyn FileSystem,
    layout: &ChLayout,
    path: &Path,
    at_index: Option<u64>,
) -> Result<Recovered, StorageError> {
    let opts = ChRecoverOptions { at_index, ..ChRecoverOptions::default() };
    let r = ch_recover(fs, layout, &opts)?;
    let mut out: Vec<Finding> = Vec::new();
    for s in &r.skipped {
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
            out.push(
                Finding::new(
                    Severity::Info,
                    Code::TornTail,
                    format!(
                        "{} ends with a torn or damaged record; Keeper keeps what precedes it \
                         and so does this state (`keeperkit verify` tells more)",
                        r.files[b].path.display()
                    ),
                )
                .file(&r.files[b].path),
            );
        }
        for &d in &plan.detach {
            out.push(
                Finding::new(
                    Severity::Warning,
                    Code::WouldDetach,
                    format!(
                        "Keeper would move {} to detached/ at startup (not read here)",
                        r.files[d].path.display()
                    ),
                )
                .file(&r.files[d].path),
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
            zookeeper: None,
            findings: out,
        },
        tree: r.tree,
    })
}
