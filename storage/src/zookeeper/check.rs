//! Checking and repairing ZooKeeper data through the seam.

use std::path::{Path, PathBuf};

use keeperkit_snapshot::zookeeper as zksnap;
use keeperkit_vfs::FileSystem;
use keeperkit_wal::zookeeper::LogEnd;

use super::dir::torn_reason_text;
use super::scan::{self as zkscan, DirScan};
use super::{recover, RecoverOptions, ZkLayout};
use crate::findings::{Code, Finding, Severity};
use crate::report::{CheckReport, Refusal};
use crate::{Dialect, StorageError};

/// The findings of a scanned ZooKeeper directory (file by file, and the gaps between
/// logs).
pub(crate) fn check_scan(scan: &DirScan) -> Vec<Finding> {
    let mut p = Vec::new();
    for s in &scan.snapshots {
        if let Err(e) = &s.result {
            match &s.corruption {
                Some(c) => p.push(Finding::corruption(c, "damaged snapshot")),
                None => p.push(
                    Finding::new(
                        Severity::Error,
                        Code::Unreadable,
                        format!("snapshot cannot be read: {e}"),
                    )
                    .file(&s.path),
                ),
            }
        } else if !s.quick_valid {
            p.push(
                Finding::new(
                    Severity::Error,
                    Code::InvalidTrailer,
                    "snapshot parses but fails ZooKeeper's quick validity test (it would be \
                     ignored)",
                )
                .file(&s.path),
            );
        }
    }
    let newest_log = scan.logs.last().map(|l| l.path.clone());
    for l in &scan.logs {
        let newest = Some(&l.path) == newest_log.as_ref();
        if let Some(e) = &l.error {
            match &l.corruption {
                Some(c) => p.push(Finding::corruption(c, "damaged txn log")),
                None => p.push(
                    Finding::new(
                        Severity::Error,
                        Code::Unreadable,
                        format!("log cannot be read: {e}"),
                    )
                    .file(&l.path),
                ),
            }
        }
        for (prev, next, off) in &l.sequence_breaks {
            p.push(
                Finding::new(
                    Severity::Error,
                    Code::SequenceBreak,
                    format!("zxid {next} follows {prev} inside one log file"),
                )
                .file(&l.path)
                .offset(*off)
                .zxid(*next),
            );
        }
        if let Some((first, _)) = l.zxids {
            if first != l.name_zxid {
                p.push(
                    Finding::new(
                        Severity::Warning,
                        Code::NameMismatch,
                        format!(
                            "the file is named for zxid {} but its first txn is {first}",
                            l.name_zxid
                        ),
                    )
                    .file(&l.path)
                    .offset(16)
                    .zxid(first),
                );
            }
        }
        if let Some(LogEnd::Torn { offset, reason }) = &l.end {
            // Only the newest log can end in a write that was never acknowledged: a
            // log that is followed by another was complete when the next one started.
            p.push(
                Finding::new(
                    if newest { Severity::Warning } else { Severity::Error },
                    Code::TornTail,
                    if newest {
                        format!(
                            "the newest log ends with a partial record ({}); ZooKeeper ignores \
                             it; it was never acknowledged",
                            torn_reason_text(reason)
                        )
                    } else {
                        format!(
                            "a log that is not the newest ends with a partial record ({}): it \
                             was cut short after a newer log was started, so txns it held are \
                             lost",
                            torn_reason_text(reason)
                        )
                    },
                )
                .file(&l.path)
                .offset(*offset),
            );
        }
        if let Some(after) = &l.after_end {
            p.push(
                Finding::new(
                    Severity::Error,
                    Code::RecordsAfterEnd,
                    format!(
                        "the log ends at byte {} ({}) but {} complete, checksum-valid records \
                         follow from byte {} (zxid {} ..); ZooKeeper stops reading at the end \
                         and would lose them",
                        after.end_offset,
                        after.end,
                        after.records,
                        after.first_offset,
                        after.first_zxid
                    ),
                )
                .file(&l.path)
                .offset(after.end_offset)
                .zxid(after.first_zxid),
            );
        }
        if l.header.is_none() && l.error.is_none() {
            // ZooKeeper 3.8.0 refuses to start with an empty newest log
            // (EOFException, ZOOKEEPER-2332); an older one it never opens.
            p.push(
                Finding::new(
                    if newest { Severity::Error } else { Severity::Warning },
                    Code::EmptyLog,
                    if newest {
                        format!(
                            "the newest log is {} bytes long and holds no header: ZooKeeper 3.8 \
                             refuses to start (EOFException, ZOOKEEPER-2332) until it is \
                             removed; it holds no txn, so moving it away loses nothing \
                             (`keeperkit repair --apply` does)",
                            l.file_len
                        )
                    } else {
                        format!("log is {} bytes long and holds no header", l.file_len)
                    },
                )
                .file(&l.path)
                .offset(0),
            );
        }
    }
    for (after, next, file) in &scan.gaps {
        p.push(
            Finding::new(
                Severity::Error,
                Code::Gap,
                format!(
                    "no txn between zxid {after} and {next}: a log file is missing or was cut \
                     short"
                ),
            )
            .file(file)
            .zxid(*next),
        );
    }
    p.extend(scan.layout.findings.iter().cloned());
    p
}

/// A scan of a single snapshot or log file.
pub(crate) fn single_file_scan(fs: &dyn FileSystem, path: &Path) -> Result<DirScan, StorageError> {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    let dir = crate::repair::root_of(fs, path);
    let mut layout = ZkLayout {
        snap_dir: dir.clone(),
        log_dir: dir,
        snapshots: vec![],
        logs: vec![],
        accepted_epoch: None,
        current_epoch: None,
        findings: vec![],
    };
    let mut scan =
        DirScan { layout: layout.clone(), snapshots: vec![], logs: vec![], gaps: vec![] };
    if let Some((z, c)) = zksnap::parse_snapshot_name(name) {
        layout.snapshots.push((z, c, path.to_path_buf()));
        scan.snapshots.push(zkscan::scan_snapshot(fs, z, c, path));
    } else if let Some(z) = keeperkit_wal::zookeeper::parse_log_name(name) {
        layout.logs.push((z, path.to_path_buf()));
        scan.logs.push(zkscan::scan_log(fs, z, path));
    } else {
        return Err(StorageError::NotADataDir {
            path: path.to_path_buf(),
            what: "ZooKeeper snapshot or log file",
            reason: "the name is neither snapshot.<zxid> nor log.<zxid>".into(),
        });
    }
    scan.layout = layout;
    Ok(scan)
}

/// Scans a directory or a single file.
pub(crate) fn scan_source(
    fs: &dyn FileSystem,
    path: &Path,
    layout: Option<&ZkLayout>,
) -> Result<DirScan, StorageError> {
    match layout {
        Some(l) => zkscan::scan(fs, l),
        None => single_file_scan(fs, path),
    }
}

/// Checks ZooKeeper data: every file, then the replay ZooKeeper's restore does
/// (digests, cross-file invariants).
pub(crate) fn check(
    fs: &dyn FileSystem,
    path: &Path,
    layout: Option<&ZkLayout>,
    snapshot: Option<&Path>,
    progress: &mut dyn crate::progress::Progress,
) -> Result<CheckReport, StorageError> {
    progress.phase("checking every file");
    let scan = scan_source(fs, path, layout)?;
    let mut r = CheckReport::new(Dialect::ZooKeeper, path);
    r.findings = check_scan(&scan);
    r.files_checked = scan.snapshots.len() + scan.logs.len();
    r.snapshots_checked = scan.snapshots.len();
    r.records_checked = scan.logs.iter().map(|l| l.records).sum();
    if let Some(layout) = layout {
        let opts =
            RecoverOptions { snapshot: snapshot.map(Path::to_path_buf), ..Default::default() };
        match recover(fs, layout, &opts, progress) {
            Ok(rec) => {
                r.digests_checked = rec.report.digests_checked;
                r.entries_replayed = rec.report.txns_applied;
                for m in &rec.report.digest_mismatches {
                    r.findings.push(
                        Finding::new(
                            if m.benign { Severity::Warning } else { Severity::Error },
                            Code::DigestMismatch,
                            format!(
                                "tree digest after zxid {} is {:#x}, the file says {:#x}{}",
                                m.zxid,
                                m.computed,
                                m.stored,
                                if m.benign { " (benign race of a fuzzy snapshot)" } else { "" }
                            ),
                        )
                        .file(&m.file)
                        .zxid(m.zxid),
                    );
                }
                if let Some(g) = &rec.report.gap {
                    if !r.findings.iter().any(|p| p.code == Code::Gap) {
                        r.findings.push(
                            Finding::new(
                                Severity::Error,
                                Code::Gap,
                                format!(
                                    "replay from {} cannot continue after zxid {}: next txn is {}",
                                    rec.report
                                        .snapshot
                                        .as_ref()
                                        .map(|p| p.display().to_string())
                                        .unwrap_or_default(),
                                    g.after,
                                    g.next
                                ),
                            )
                            .file(&g.file)
                            .zxid(g.next),
                        );
                    }
                }
            }
            Err(e) => {
                let already = e.corruption().is_some_and(|c| {
                    r.findings.iter().any(|p| p.file.as_deref() == Some(c.file.as_path()))
                });
                if !already {
                    r.findings.push(
                        Finding::new(
                            Severity::Error,
                            Code::Unrecoverable,
                            format!("the directory cannot be recovered: {e}"),
                        )
                        .file(path)
                        .offset_opt(e.corruption().map(|c| c.offset)),
                    );
                }
            }
        }
    }
    if r.files_checked == 0 {
        r.findings.push(
            Finding::new(Severity::Error, Code::NoData, "no snapshot and no log file").file(path),
        );
    }
    Ok(r.finish())
}

/// Plans a repair of ZooKeeper data. ZooKeeper needs no repair for a torn tail of its
/// newest log (it ignores it and starts a new log on its next start); an empty newest
/// log (which ZooKeeper 3.8 refuses to start on) is moved to the backup; anything else
/// is damage a checksum cannot be recomputed over, refused with its finding.
pub(crate) fn plan(
    fs: &dyn FileSystem,
    layout: &ZkLayout,
) -> Result<crate::repair::Planned<Vec<PathBuf>>, StorageError> {
    let scan = zkscan::scan(fs, layout)?;
    let findings = check_scan(&scan);
    let mut actions = Vec::new();
    let mut refused = Vec::new();
    let mut notes = Vec::new();
    let mut moves = Vec::new();
    for f in findings {
        match (f.severity, f.code) {
            (Severity::Warning, Code::TornTail) => notes.push(format!(
                "ok as is: {} ends with a partial record at byte {}; ZooKeeper ignores it and \
                 writes a new log file on its next start",
                f.file_text(),
                f.offset.unwrap_or(0)
            )),
            (Severity::Error, Code::EmptyLog) => {
                if let Some(p) = &f.file {
                    actions.push(format!(
                        "move {} to the backup (it holds no header and no txn; ZooKeeper 3.8 \
                         refuses to start while it is there)",
                        p.display()
                    ));
                    moves.push(p.clone());
                }
            }
            (Severity::Error, code) => {
                let reason = match code {
                    Code::ChecksumMismatch | Code::InvalidTrailer | Code::Truncated
                        if scan.snapshots.iter().any(|s| f.file.as_deref() == Some(&s.path)) =>
                    {
                        "ZooKeeper skips a damaged snapshot and falls back to an older one with \
                         the logs after it, so nothing needs to change for it to start; the \
                         snapshot is never rewritten (its checksums would be recomputed over \
                         bad bytes): move it away yourself once `keeperkit dump` shows the \
                         fallback state is complete, or restore it from another server"
                    }
                    Code::Gap => {
                        "a missing log cannot be made up: restore it from another server, or \
                         start from a snapshot taken after the gap"
                    }
                    _ => {
                        "recomputing a checksum would make ZooKeeper serve bad bytes: recover \
                         the state before the damage with `keeperkit dump --at ZXID`, or \
                         restore the file from another server"
                    }
                };
                refused.push(Refusal { finding: f, reason: reason.into() });
            }
            _ => {}
        }
    }
    Ok((actions, refused, notes, moves))
}
