//! `keeperkit verify`.

use std::io::Write;

use anyhow::anyhow;
use keeperkit_model::{Corruption, CorruptionKind};
use keeperkit_storage::zookeeper::scan::{self as zkscan, DirScan};
use keeperkit_storage::zookeeper::{self as zk, NoProgress, RecoverOptions, ZkLayout};
use keeperkit_storage::Dialect;
use keeperkit_vfs::FileSystem;
use keeperkit_wal::zookeeper::LogEnd;
use serde::Serialize;

use crate::cmd::inspect::single_file_scan;
use crate::load::dialect_of;
use crate::{CmdResult, Failure, Outcome, VerifyArgs};

/// One problem found.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Problem {
    /// `error` (exit 1) or `warning` (reported, exit 0).
    pub severity: &'static str,
    /// File concerned.
    pub file: String,
    /// Byte offset, when known (in the decompressed stream for compressed snapshots).
    pub offset: Option<u64>,
    /// Zxid, when known.
    pub zxid_hex: Option<String>,
    /// Machine-readable kind.
    pub kind: &'static str,
    /// Full sentence.
    pub message: String,
}

/// `verify --json`.
#[derive(Debug, Serialize)]
pub struct JsonVerify {
    /// Whether no error was found.
    pub ok: bool,
    /// Files checked.
    pub files_checked: usize,
    /// Txns whose checksum was verified.
    pub records_checked: u64,
    /// Digests compared during replay.
    pub digests_checked: u64,
    /// Problems, errors first.
    pub problems: Vec<Problem>,
}

pub(crate) fn kind_name(k: &CorruptionKind) -> &'static str {
    match k {
        CorruptionKind::BadMagic { .. } => "bad_magic",
        CorruptionKind::UnsupportedVersion { .. } => "unsupported_version",
        CorruptionKind::ChecksumMismatch { .. } => "checksum_mismatch",
        CorruptionKind::LengthOutOfRange { .. } => "length_out_of_range",
        CorruptionKind::Truncated { .. } => "truncated",
        CorruptionKind::InvalidUtf8 => "invalid_utf8",
        CorruptionKind::UnknownTxnType(_) => "unknown_txn_type",
        CorruptionKind::Decompression(_) => "decompression",
        _ => "invalid",
    }
}

fn from_corruption(c: &Corruption, what: &str) -> Problem {
    Problem {
        severity: "error",
        file: c.file.display().to_string(),
        offset: Some(c.offset),
        zxid_hex: c.zxid.map(|z| format!("{:#x}", z.0)),
        kind: kind_name(&c.kind),
        message: format!("{what}: {c}"),
    }
}

/// Checks a scanned ZooKeeper directory; returns the problems.
pub fn check_scan(scan: &DirScan) -> Vec<Problem> {
    let mut p = Vec::new();
    for s in &scan.snapshots {
        let file = s.path.display().to_string();
        if let Err(e) = &s.result {
            match &s.corruption {
                Some(c) => p.push(from_corruption(c, "damaged snapshot")),
                None => p.push(Problem {
                    severity: "error",
                    file: file.clone(),
                    offset: None,
                    zxid_hex: None,
                    kind: "unreadable",
                    message: format!("snapshot cannot be read: {e}"),
                }),
            }
        } else if !s.quick_valid {
            p.push(Problem {
                severity: "error",
                file,
                offset: None,
                zxid_hex: None,
                kind: "invalid_trailer",
                message: "snapshot parses but fails ZooKeeper's quick validity test (it would be \
                          ignored)"
                    .into(),
            });
        }
    }
    let newest_log = scan.logs.last().map(|l| l.path.clone());
    for l in &scan.logs {
        let file = l.path.display().to_string();
        if let Some(e) = &l.error {
            match &l.corruption {
                Some(c) => p.push(from_corruption(c, "damaged txn log")),
                None => p.push(Problem {
                    severity: "error",
                    file: file.clone(),
                    offset: None,
                    zxid_hex: None,
                    kind: "unreadable",
                    message: format!("log cannot be read: {e}"),
                }),
            }
        }
        for (prev, next, off) in &l.sequence_breaks {
            p.push(Problem {
                severity: "error",
                file: file.clone(),
                offset: Some(*off),
                zxid_hex: Some(format!("{:#x}", next.0)),
                kind: "sequence_break",
                message: format!("zxid {next} follows {prev} inside one log file"),
            });
        }
        if let Some((first, _)) = l.zxids {
            if first != l.name_zxid {
                p.push(Problem {
                    severity: "warning",
                    file: file.clone(),
                    offset: Some(16),
                    zxid_hex: Some(format!("{:#x}", first.0)),
                    kind: "name_mismatch",
                    message: format!(
                        "the file is named for zxid {} but its first txn is {first}",
                        l.name_zxid
                    ),
                });
            }
        }
        if let Some(LogEnd::Torn { offset, reason }) = &l.end {
            let newest = Some(&l.path) == newest_log.as_ref();
            p.push(Problem {
                severity: "warning",
                file: file.clone(),
                offset: Some(*offset),
                zxid_hex: None,
                kind: "torn_tail",
                message: if newest {
                    format!(
                        "the newest log ends with a partial record ({}); ZooKeeper ignores it; \
                         it was never acknowledged",
                        keeperkit_storage::zookeeper::dir::torn_reason_text(reason)
                    )
                } else {
                    format!(
                        "a log that is not the newest ends with a partial record ({})",
                        keeperkit_storage::zookeeper::dir::torn_reason_text(reason)
                    )
                },
            });
        }
        if l.header.is_none() && l.error.is_none() {
            let newest = Some(&l.path) == newest_log.as_ref();
            p.push(Problem {
                // ZooKeeper 3.8.0 refuses to start with an empty newest log
                // (EOFException, ZOOKEEPER-2332); an older one it never opens.
                severity: if newest { "error" } else { "warning" },
                file: file.clone(),
                offset: Some(0),
                zxid_hex: None,
                kind: "empty_log",
                message: if newest {
                    format!(
                        "the newest log is {} bytes long and holds no header: ZooKeeper 3.8 \
                         refuses to start (EOFException, ZOOKEEPER-2332) until it is removed; \
                         it holds no txn, so moving it away loses nothing",
                        l.file_len
                    )
                } else {
                    format!("log is {} bytes long and holds no header", l.file_len)
                },
            });
        }
    }
    for (after, next, file) in &scan.gaps {
        p.push(Problem {
            severity: "error",
            file: file.display().to_string(),
            offset: None,
            zxid_hex: Some(format!("{:#x}", next.0)),
            kind: "gap",
            message: format!(
                "no txn between zxid {after} and {next}: a log file is missing or was cut short"
            ),
        });
    }
    p
}

/// Runs the command.
pub fn run(fs: &dyn FileSystem, args: &VerifyArgs, out: &mut dyn Write) -> CmdResult {
    let dialect = dialect_of(fs, &args.source.path, args.source.format)?;
    if dialect == Dialect::Native {
        return verify_native(fs, &args.source.path, args.json, out);
    }
    if dialect == Dialect::ClickHouse {
        let log_dir = args.source.log_dir.as_deref();
        return super::clickhouse::verify(fs, &args.source.path, log_dir, args.json, out);
    }
    if dialect != Dialect::ZooKeeper {
        return Err(Failure::usage(anyhow!(
            "verifying {dialect} data is not supported by this build of keeperkit yet"
        )));
    }
    let path = &args.source.path;
    let is_dir = fs.metadata(path).map(|m| m.is_dir).unwrap_or(false);
    let (scan, layout) = if is_dir {
        let layout = ZkLayout::locate(fs, path, args.source.log_dir.as_deref())?;
        (zkscan::scan(fs, &layout)?, Some(layout))
    } else {
        (single_file_scan(fs, path)?, None)
    };
    let mut problems = check_scan(&scan);
    let mut digests_checked = 0;
    // Replay: digests and cross-file invariants as ZooKeeper's restore checks them.
    if let Some(layout) = layout {
        let opts = RecoverOptions { snapshot: args.source.snapshot.clone(), ..Default::default() };
        match zk::recover(fs, &layout, &opts, &mut NoProgress) {
            Ok(rec) => {
                digests_checked = rec.report.digests_checked;
                for m in &rec.report.digest_mismatches {
                    problems.push(Problem {
                        severity: if m.benign { "warning" } else { "error" },
                        file: m.file.display().to_string(),
                        offset: None,
                        zxid_hex: Some(format!("{:#x}", m.zxid.0)),
                        kind: "digest_mismatch",
                        message: format!(
                            "tree digest after zxid {} is {:#x}, the file says {:#x}{}",
                            m.zxid,
                            m.computed,
                            m.stored,
                            if m.benign { " (benign race of a fuzzy snapshot)" } else { "" }
                        ),
                    });
                }
                if let Some(g) = &rec.report.gap {
                    let dup = problems.iter().any(|p| p.kind == "gap");
                    if !dup {
                        problems.push(Problem {
                            severity: "error",
                            file: g.file.display().to_string(),
                            offset: None,
                            zxid_hex: Some(format!("{:#x}", g.next.0)),
                            kind: "gap",
                            message: format!(
                                "replay from {} cannot continue after zxid {}: next txn is {}",
                                rec.report
                                    .snapshot
                                    .as_ref()
                                    .map(|p| p.display().to_string())
                                    .unwrap_or_default(),
                                g.after,
                                g.next
                            ),
                        });
                    }
                }
            }
            Err(e) => {
                let already = e.corruption().is_some_and(|c| {
                    problems.iter().any(|p| p.file == c.file.display().to_string())
                });
                if !already {
                    problems.push(Problem {
                        severity: "error",
                        file: path.display().to_string(),
                        offset: e.corruption().map(|c| c.offset),
                        zxid_hex: None,
                        kind: "unrecoverable",
                        message: format!("the directory cannot be recovered: {e}"),
                    });
                }
            }
        }
    }
    problems.sort_by_key(|p| (p.severity != "error", p.file.clone(), p.offset));
    let ok = !problems.iter().any(|p| p.severity == "error");
    let report = JsonVerify {
        ok,
        files_checked: scan.snapshots.len() + scan.logs.len(),
        records_checked: scan.logs.iter().map(|l| l.records).sum(),
        digests_checked,
        problems,
    };
    if args.json {
        super::json_doc(out, &report)?;
    } else {
        for p in &report.problems {
            let pos = match (p.offset, &p.zxid_hex) {
                (Some(o), Some(z)) => format!(" at byte {o} (zxid {z})"),
                (Some(o), None) => format!(" at byte {o}"),
                (None, Some(z)) => format!(" (zxid {z})"),
                (None, None) => String::new(),
            };
            writeln!(out, "{}: {}{pos}: [{}] {}", p.severity, p.file, p.kind, p.message)?;
        }
        writeln!(
            out,
            "{}: {} files, {} txn checksums, {} digests checked; {} errors, {} warnings",
            if ok { "OK" } else { "FAILED" },
            report.files_checked,
            report.records_checked,
            report.digests_checked,
            report.problems.iter().filter(|p| p.severity == "error").count(),
            report.problems.iter().filter(|p| p.severity == "warning").count(),
        )?;
    }
    Ok(if ok { Outcome::Clean } else { Outcome::Found })
}

/// `keeperkit verify` on native data: every snapshot (every block, both CRCs of every
/// chunk, every record) and the WAL of a data directory; a single snapshot file; or a
/// bare WAL directory (the WAL alone, as before).
fn verify_native(
    fs: &dyn FileSystem,
    path: &std::path::Path,
    json: bool,
    out: &mut dyn Write,
) -> CmdResult {
    use keeperkit_storage::engine::layout;
    let is_dir = fs.metadata(path).map(|m| m.is_dir).unwrap_or(false);
    let snapshots: Vec<std::path::PathBuf> = if !is_dir {
        vec![path.to_path_buf()]
    } else if layout::is_native_data_dir(fs, path) || fs.exists(&path.join(layout::SNAPSHOT_DIR)) {
        layout::snapshot_files(fs, &path.join(layout::SNAPSHOT_DIR))?
            .into_iter()
            .map(|(_, p)| p)
            .collect()
    } else {
        return super::native::verify(fs, path, json, out);
    };
    let mut problems = Vec::new();
    for p in &snapshots {
        let found = keeperkit_snapshot::native::verify_snapshot(fs, p)
            .map_err(keeperkit_storage::StorageError::from)?;
        for pr in found {
            problems.push(serde_json::json!({
                "severity": "error",
                "file": pr.path.display().to_string(),
                "offset": pr.offset,
                "chunk": pr.chunk,
                "index": null,
                "kind": kind_name(&pr.kind),
                "message": pr.to_string(),
            }));
        }
    }
    let snapshots_ok = problems.is_empty();
    // The WAL, through the WAL's own verify (captured, to merge the reports).
    let mut wal_out = Vec::new();
    let wal =
        if is_dir { Some(super::native::verify(fs, path, json, &mut wal_out)?) } else { None };
    let ok = snapshots_ok && wal != Some(Outcome::Found);
    if json {
        let mut wal_problems = Vec::new();
        if wal.is_some() {
            let v: serde_json::Value = serde_json::from_slice(&wal_out)
                .map_err(|e| Failure::usage(anyhow!("internal: WAL verify output: {e}")))?;
            if let Some(a) = v.get("problems").and_then(|p| p.as_array()) {
                wal_problems.clone_from(a);
            }
        }
        problems.extend(wal_problems);
        super::json_doc(
            out,
            &serde_json::json!({
                "ok": ok,
                "snapshots_checked": snapshots.len(),
                "problems": problems,
            }),
        )?;
    } else {
        for p in &problems {
            writeln!(
                out,
                "error: {}: [{}]",
                p["message"].as_str().unwrap_or_default(),
                p["kind"].as_str().unwrap_or_default()
            )?;
        }
        writeln!(
            out,
            "snapshots: {} checked, {}",
            snapshots.len(),
            if snapshots_ok {
                "all intact".to_string()
            } else {
                format!("{} problems", problems.len())
            }
        )?;
        if wal.is_some() {
            write!(out, "wal: ")?;
            out.write_all(&wal_out)?;
        }
    }
    Ok(if ok { Outcome::Clean } else { Outcome::Found })
}
