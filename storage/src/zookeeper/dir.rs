//! A ZooKeeper data directory through the seam: recovery with its findings.

use std::path::Path;

use keeperkit_model::Zxid;
use keeperkit_vfs::FileSystem;
use keeperkit_wal::zookeeper::{LogEnd, TornReason};

use super::{
    load_snapshot, recover as zk_recover, Progress, RecoverOptions, RecoveryReport, ZkLayout,
};
use crate::datadir::{OpenOptions, Recovered, RecoveryReport as Report};
use crate::findings::{Code, Finding, Position, Severity};
use crate::{Dialect, StorageError};

/// Recovers a directory as ZooKeeper does, up to `at` when given.
pub(crate) fn recover(
    fs: &dyn FileSystem,
    layout: &ZkLayout,
    options: &OpenOptions,
    at: Option<Zxid>,
    progress: &mut dyn Progress,
) -> Result<Recovered, StorageError> {
    let opts = RecoverOptions {
        at,
        snapshot: options.snapshot.clone(),
        keep_orphan_ephemerals: options.keep_orphan_ephemerals,
        stop_at_damage: true,
    };
    let rec = zk_recover(fs, layout, &opts, progress)?;
    let r = &rec.report;
    if let Some(at) = at {
        if r.last_zxid < at && r.gap.is_none() && r.stopped_at.is_none() && r.damage.is_none() {
            return Err(StorageError::PastEnd {
                requested: Position::Zxid(at),
                last: Position::Zxid(r.last_zxid),
            });
        }
    }
    let mut findings = findings_of(r, layout);
    // A log that ends early (a zeroed length field) with valid records after its end:
    // ZooKeeper stops there too, which is why it must be said.
    if at.is_none() {
        for l in &r.logs {
            let Some(end) = &l.end else { continue };
            if let Some(a) = super::scan::search_after_end(fs, &l.path, end) {
                findings.push(
                    Finding::new(
                        Severity::Error,
                        Code::RecordsAfterEnd,
                        format!(
                            "{} ends at byte {} ({}) but {} complete, checksum-valid records \
                             follow from byte {} (zxid {} ..): they are not in this state, and \
                             ZooKeeper would not load them either",
                            l.path.display(),
                            a.end_offset,
                            a.end,
                            a.records,
                            a.first_offset,
                            a.first_zxid
                        ),
                    )
                    .file(&l.path)
                    .offset(a.end_offset)
                    .zxid(a.first_zxid),
                );
            }
        }
    }
    Ok(Recovered {
        report: Report {
            dialect: Dialect::ZooKeeper,
            last_zxid: rec.tree.last_processed_zxid(),
            raft: None,
            entries_replayed: rec.report.txns_applied,
            zookeeper: Some(rec.report.clone()),
            findings,
        },
        tree: rec.tree,
    })
}

/// Reads a single snapshot file (a log alone holds no state).
pub(crate) fn recover_file(
    fs: &dyn FileSystem,
    path: &Path,
    at: bool,
) -> Result<Recovered, StorageError> {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    if keeperkit_wal::zookeeper::parse_log_name(name).is_some() {
        return Err(StorageError::Unsupported(format!(
            "{} is a txn log: a log alone holds no state (give the data directory to replay \
             it on a snapshot, or use `keeperkit log`)",
            path.display()
        )));
    }
    if at {
        return Err(StorageError::Unsupported(
            "a point in time needs a data directory, not a single snapshot".into(),
        ));
    }
    let loaded = load_snapshot(fs, path)?;
    let mut tree = loaded.tree;
    let findings = vec![Finding::new(
        Severity::Info,
        Code::SingleFile,
        format!(
            "{} read on its own: ZooKeeper snapshots are fuzzy (changes up to {} are in it); \
             give the directory to get the exact state",
            path.display(),
            loaded.max_node_zxid.max(loaded.zxid)
        ),
    )
    .file(path)];
    tree.set_last_processed_zxid(loaded.zxid);
    Ok(Recovered {
        report: Report {
            dialect: Dialect::ZooKeeper,
            last_zxid: loaded.zxid,
            raft: None,
            entries_replayed: 0,
            zookeeper: None,
            findings,
        },
        tree,
    })
}

/// The findings of a recovery report.
pub fn findings_of(r: &RecoveryReport, layout: &ZkLayout) -> Vec<Finding> {
    let mut out = Vec::new();
    let used =
        r.snapshot.as_ref().map(|p| p.display().to_string()).unwrap_or_else(|| {
            "the initial empty tree (the directory has no snapshot)".to_string()
        });
    for s in &r.skipped_snapshots {
        let name = s.path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let zxid = keeperkit_snapshot::zookeeper::parse_snapshot_name(name).map(|(z, _)| z);
        if let Some(z) = zxid.filter(|&z| s.damaged && z > r.last_zxid) {
            // The fallback loses what the snapshot held past the log's end.
            out.push(
                Finding::new(
                    Severity::Error,
                    Code::SnapshotSkipped,
                    format!(
                        "snapshot {} (zxid {z}) is damaged and was skipped ({}), and the log \
                         does not reach its zxid: the state stops at zxid {}, without what \
                         the snapshot held; recovered from {used}",
                        s.path.display(),
                        s.reason,
                        r.last_zxid
                    ),
                )
                .file(&s.path)
                .zxid(z),
            );
        } else if s.damaged {
            out.push(Finding::damaged_snapshot_skipped(&s.path, &s.reason, &used));
        }
    }
    out.push(
        Finding::new(
            Severity::Info,
            Code::Recovered,
            format!(
                "recovered from {used} and {} txns of {} log files; last zxid {}",
                r.txns_applied,
                r.logs.len(),
                r.last_zxid
            ),
        )
        .zxid(r.last_zxid),
    );
    if let Some(g) = &r.gap {
        out.push(
            Finding::new(
                Severity::Error,
                Code::Gap,
                format!(
                    "gap in the txn sequence: after zxid {} the next txn found is {} in {}; a \
                     log file is missing or damaged, so the state stops at {}",
                    g.after,
                    g.next,
                    g.file.display(),
                    g.after
                ),
            )
            .file(&g.file)
            .zxid(g.next),
        );
    }
    if let Some(c) = &r.damage {
        let mut f = Finding::corruption(c, "");
        f.message = format!(
            "replay stopped at damage: {c}; the state shown is the one after zxid {} \
             (ZooKeeper refuses to start with this log; `keeperkit verify` lists every \
             problem)",
            r.last_zxid
        );
        out.push(f);
    }
    let newest_log = layout.logs.last().map(|(_, p)| p.clone());
    for l in &r.logs {
        if let Some(LogEnd::Torn { offset, reason }) = &l.end {
            let newest = Some(&l.path) == newest_log.as_ref();
            out.push(
                Finding::new(
                    if newest { Severity::Warning } else { Severity::Error },
                    Code::TornTail,
                    format!(
                        "{} ends with a partial record at byte {offset} ({}){}",
                        l.path.display(),
                        torn_reason_text(reason),
                        if newest {
                            "; ZooKeeper drops it too (it was never acknowledged)"
                        } else {
                            " in a log that is not the newest"
                        }
                    ),
                )
                .file(&l.path)
                .offset(*offset),
            );
        }
    }
    for m in &r.digest_mismatches {
        out.push(
            Finding::new(
                if m.benign { Severity::Info } else { Severity::Error },
                Code::DigestMismatch,
                format!(
                    "digest mismatch after zxid {}: {} stores {:#x}, the replayed tree has \
                     {:#x}{}",
                    m.zxid,
                    m.file.display(),
                    m.stored,
                    m.computed,
                    if m.benign {
                        " (the known race of fuzzy snapshots; later digests match)"
                    } else {
                        ""
                    }
                ),
            )
            .file(&m.file)
            .zxid(m.zxid),
        );
    }
    out.extend(layout.findings.iter().cloned());
    if !r.orphan_ephemerals_removed.is_empty() {
        out.push(Finding::new(
            Severity::Info,
            Code::OrphanEphemerals,
            format!(
                "{} ephemeral nodes of sessions that no longer exist were dropped, as \
                 ZooKeeper does on start (--keep-orphan-ephemerals keeps them)",
                r.orphan_ephemerals_removed.len()
            ),
        ));
    }
    out
}

/// A sentence fragment describing why a ZooKeeper log record is partial.
pub fn torn_reason_text(reason: &TornReason) -> String {
    match reason {
        TornReason::TruncatedHeader { available } => {
            format!("only {available} of the 12 header bytes were written")
        }
        TornReason::TruncatedPayload { len, available } if *available >= u64::from(*len) => {
            format!("the {len}-byte payload is there but its end-of-record marker is missing")
        }
        TornReason::TruncatedPayload { len, available } => {
            format!("only {available} of its {len} payload bytes were written")
        }
        TornReason::BadMarker { found } => {
            format!("its end-of-record marker is {found:#04x}, not 0x42")
        }
    }
}
