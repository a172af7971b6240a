//! The native WAL in `keeperkit log | inspect | verify | repair`.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::anyhow;
use keeperkit_model::{CorruptionKind, Txn};
use keeperkit_vfs::FileSystem;
use keeperkit_wal::native::{
    self, NativeLogInfo, NativeWalError, Problem, ProblemKind, RepairAction, SegmentStatus,
};
use serde::Serialize;

use crate::{CmdResult, Failure, Outcome};

impl From<NativeWalError> for Failure {
    fn from(e: NativeWalError) -> Self {
        let corruption = e.corruption().is_some() || matches!(e, NativeWalError::TornTail(_));
        Failure { error: e.into(), corruption, hint: None }
    }
}

/// The WAL directory of a native path: the path itself, or its `wal/` subdirectory.
pub fn wal_dir(fs: &dyn FileSystem, path: &Path) -> PathBuf {
    let sub = path.join("wal");
    if fs.metadata(&sub).map(|m| m.is_dir).unwrap_or(false) {
        sub
    } else {
        path.to_path_buf()
    }
}

/// A native log entry as `log --json` prints it.
#[derive(Debug, Serialize)]
pub struct JsonNativeEntry {
    index: u64,
    term: u64,
    payload_len: usize,
    /// `txn` (a ZooKeeper txn), `config` (a cluster-config entry, e.g. an openraft
    /// membership), `noop` (an empty payload: a Raft blank entry) or `opaque`.
    kind: &'static str,
    /// When the payload is a keeperkit tree txn: its decoded form.
    txn: Option<super::log::JsonEntry>,
}

/// `keeperkit log` on a native log.
pub fn log(
    fs: &dyn FileSystem,
    path: &Path,
    from: Option<u64>,
    to: Option<u64>,
    json: bool,
    out: &mut dyn Write,
) -> CmdResult {
    let dir = wal_dir(fs, path);
    let iter = native::iter_entries(fs, &dir, from.unwrap_or(0), to.unwrap_or(u64::MAX))?;
    let mut printed = 0u64;
    for e in iter {
        let e = match e {
            Ok(e) => e,
            Err(NativeWalError::TornTail(p)) => {
                eprintln!(
                    "note: {} ends with an unfinished write at byte {} (never acknowledged; \
                     `keeperkit repair` cuts it)",
                    p.path.display(),
                    p.offset
                );
                break;
            }
            Err(err) => {
                let f: Failure = err.into();
                return Err(f.hint(format!(
                    "{printed} entries were printed before the damage; `keeperkit verify` \
                     lists every problem"
                )));
            }
        };
        printed += 1;
        let config = keeperkit_storage::engine::parse_config_entry(&e.payload);
        let txn = if config.is_some() { None } else { Txn::decode_from(&e.payload).ok() };
        let kind = match (&txn, config) {
            (Some(_), _) => "txn",
            (None, Some(_)) => "config",
            (None, None) if e.payload.is_empty() => "noop",
            (None, None) => "opaque",
        };
        if json {
            let j = JsonNativeEntry {
                index: e.index,
                term: e.term,
                payload_len: e.payload.len(),
                kind,
                txn: txn.as_ref().map(|t| super::log::zk_entry(&dir.display().to_string(), 0, t)),
            };
            super::json_line(out, &j)?;
        } else {
            match &txn {
                Some(t) => {
                    let j = super::log::zk_entry("", 0, t);
                    writeln!(
                        out,
                        "{:>10} term {:<6} {:<16} {} {}",
                        e.index,
                        e.term,
                        j.op,
                        j.paths.join(" "),
                        j.detail
                    )?;
                }
                None => writeln!(
                    out,
                    "{:>10} term {:<6} {:<16} {} bytes",
                    e.index,
                    e.term,
                    kind,
                    e.payload.len()
                )?,
            }
        }
    }
    if !json {
        writeln!(out, "{printed} entries")?;
    }
    Ok(Outcome::Clean)
}

#[derive(Debug, Serialize)]
struct JsonSegment {
    file: String,
    seq: u64,
    file_len: u64,
    data_end: u64,
    first_index: Option<u64>,
    last_index: Option<u64>,
    records: u64,
    entries: u64,
    compressed_records: u64,
    format_version: Option<u16>,
    purged: bool,
    status: String,
}

#[derive(Debug, Serialize)]
struct JsonNativeInspect {
    dialect: &'static str,
    dir: String,
    log_id: Option<String>,
    term: Option<u64>,
    vote: Option<u64>,
    purged_up_to: Option<u64>,
    first_index: Option<u64>,
    last_index: Option<u64>,
    segments: Vec<JsonSegment>,
    temp_files: Vec<String>,
    checksums_ok: bool,
    problems: Vec<JsonProblem>,
}

/// A problem as `verify --json` prints it (same shape as for ZooKeeper).
#[derive(Debug, Serialize, Clone)]
pub struct JsonProblem {
    severity: &'static str,
    file: String,
    offset: Option<u64>,
    index: Option<u64>,
    kind: &'static str,
    message: String,
}

fn problem_json(p: &Problem) -> JsonProblem {
    let c = p.to_corruption();
    let (severity, kind, message) = match &p.kind {
        // A complete record at the very end that fails its checksum is either a write
        // torn inside a sector or a flipped bit in an acknowledged entry; the bytes
        // cannot tell which, so verify does not call it harmless.
        ProblemKind::TornTail {
            valid_end, cause: CorruptionKind::ChecksumMismatch { .. }, ..
        } => (
            "error",
            "checksum_mismatch",
            format!(
                "the last record of the newest segment, at byte {valid_end}, fails its checksum \
                 ({}): either a torn write that was never acknowledged or a flipped bit in an \
                 acknowledged entry; `keeperkit repair --apply` cuts it (with a backup)",
                c.kind
            ),
        ),
        ProblemKind::TornTail { valid_end, file_len, .. } => (
            "warning",
            "torn_tail",
            format!(
                "the newest segment ends in an unfinished write from byte {valid_end} to \
                 {file_len} ({}); it was never acknowledged; `keeperkit repair --apply` cuts it",
                c.kind
            ),
        ),
        ProblemKind::Corrupt(k) => ("error", super::verify::kind_name(k), format!("{c}")),
    };
    JsonProblem {
        severity,
        file: p.path.display().to_string(),
        offset: Some(p.offset),
        index: p.index,
        kind,
        message,
    }
}

fn inspect_json(info: &NativeLogInfo) -> JsonNativeInspect {
    JsonNativeInspect {
        dialect: "native",
        dir: info.dir.display().to_string(),
        log_id: info.meta.map(|m| format!("{:#018x}", m.log_id)),
        term: info.meta.map(|m| m.term),
        vote: info.meta.and_then(|m| m.vote),
        purged_up_to: info.meta.map(|m| m.purged),
        first_index: info.first_index,
        last_index: info.last_index,
        segments: info
            .segments
            .iter()
            .map(|s| JsonSegment {
                file: s.path.display().to_string(),
                seq: s.seq,
                file_len: s.file_len,
                data_end: s.data_end,
                first_index: s.first_index,
                last_index: s.last_index,
                records: s.records,
                entries: s.entries,
                compressed_records: s.compressed_records,
                format_version: s.header.map(|_| native::format::FORMAT_VERSION),
                purged: s.purged,
                status: match &s.status {
                    SegmentStatus::Ok => "ok".to_string(),
                    SegmentStatus::TornTail { valid_end } => format!("torn tail at {valid_end}"),
                    SegmentStatus::Corrupt { offset } => format!("CORRUPT at byte {offset}"),
                },
            })
            .collect(),
        temp_files: info.temp_files.iter().map(|p| p.display().to_string()).collect(),
        checksums_ok: info.problems.iter().all(|p| problem_json(p).severity != "error"),
        problems: info.problems.iter().map(problem_json).collect(),
    }
}

/// `keeperkit inspect` on a native log.
pub fn inspect(fs: &dyn FileSystem, path: &Path, json: bool, out: &mut dyn Write) -> CmdResult {
    let dir = wal_dir(fs, path);
    let info = native::inspect(fs, &dir)?;
    let j = inspect_json(&info);
    if json {
        super::json_doc(out, &j)?;
    } else {
        writeln!(out, "dialect:  keeperkit native WAL ({})", j.dir)?;
        writeln!(
            out,
            "log id:   {}   term {}   vote {}   purged up to {}",
            j.log_id.as_deref().unwrap_or("-"),
            j.term.map_or("-".into(), |t| t.to_string()),
            j.vote.map_or("-".into(), |t| t.to_string()),
            j.purged_up_to.map_or("-".into(), |t| t.to_string()),
        )?;
        match (j.first_index, j.last_index) {
            (Some(a), Some(b)) => writeln!(out, "indexes:  {a} .. {b}")?,
            _ => writeln!(out, "indexes:  none")?,
        }
        writeln!(out, "\nsegments ({}):", j.segments.len())?;
        for s in &j.segments {
            let name =
                Path::new(&s.file).file_name().map(|n| n.to_string_lossy()).unwrap_or_default();
            let range = match (s.first_index, s.last_index) {
                (Some(a), Some(b)) => format!("{a} .. {b}"),
                (Some(a), None) => format!("{a} .. (empty)"),
                _ => "-".into(),
            };
            writeln!(
                out,
                "  {name:<28} {:>12} B ({:>12} used) {:>8} entries  {range:<24} {}{}",
                s.file_len,
                s.data_end,
                s.entries,
                s.status,
                if s.purged { " (purged leftover)" } else { "" }
            )?;
        }
        for t in &j.temp_files {
            writeln!(out, "  leftover temporary file {t}")?;
        }
        writeln!(
            out,
            "\nchecksums: {}",
            if j.checksums_ok { "all ok" } else { "PROBLEMS (run keeperkit verify)" }
        )?;
    }
    Ok(if j.checksums_ok { Outcome::Clean } else { Outcome::Found })
}

#[derive(Debug, Serialize)]
struct JsonNativeVerify {
    ok: bool,
    problems: Vec<JsonProblem>,
}

/// `keeperkit verify` on a native log.
pub fn verify(fs: &dyn FileSystem, path: &Path, json: bool, out: &mut dyn Write) -> CmdResult {
    let dir = wal_dir(fs, path);
    let problems: Vec<JsonProblem> = native::verify(fs, &dir)?.iter().map(problem_json).collect();
    let ok = problems.iter().all(|p| p.severity != "error");
    if json {
        super::json_doc(out, &JsonNativeVerify { ok, problems })?;
    } else {
        for p in &problems {
            let pos = match (p.offset, p.index) {
                (Some(o), Some(i)) => format!(" at byte {o} (index {i})"),
                (Some(o), None) => format!(" at byte {o}"),
                _ => String::new(),
            };
            writeln!(out, "{}: {}{pos}: [{}] {}", p.severity, p.file, p.kind, p.message)?;
        }
        writeln!(
            out,
            "{}: {} errors, {} warnings",
            if ok { "OK" } else { "FAILED" },
            problems.iter().filter(|p| p.severity == "error").count(),
            problems.iter().filter(|p| p.severity == "warning").count()
        )?;
    }
    Ok(if ok { Outcome::Clean } else { Outcome::Found })
}

#[derive(Debug, Serialize)]
struct JsonRepair {
    applied: bool,
    backup_dir: Option<String>,
    actions: Vec<String>,
    backups: Vec<String>,
    refused: Vec<(JsonProblem, String)>,
}

/// A backup directory next to the log directory, named after it and the time.
pub fn default_backup_dir(dir: &Path) -> PathBuf {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    dir.parent().unwrap_or(Path::new(".")).join(format!("{name}.keeperkit-backup-{secs}"))
}

/// `keeperkit repair` on a native log.
pub fn repair(
    fs: &dyn FileSystem,
    path: &Path,
    apply: bool,
    backup: Option<&Path>,
    json: bool,
    out: &mut dyn Write,
) -> CmdResult {
    let dir = wal_dir(fs, path);
    let plan = native::repair_plan(fs, &dir)?;
    let refused: Vec<(JsonProblem, String)> =
        plan.refused.iter().map(|(p, why)| (problem_json(p), why.clone())).collect();
    // A native data directory (snapshots/ + wal/) is backed up beside itself; a bare
    // WAL directory beside the WAL.
    let root = if dir.as_path() == path { dir.clone() } else { path.to_path_buf() };
    let backup_dir = backup.map(Path::to_path_buf).unwrap_or_else(|| default_backup_dir(&root));
    if backup_dir.starts_with(&root) {
        return Err(Failure::usage(anyhow!(
            "the backup directory {} is inside the data directory",
            backup_dir.display()
        ))
        .hint("choose a directory outside the data directory"));
    }
    let partial_snapshots = partial_snapshots(fs, path)?;
    let describe = |a: &RepairAction| a.to_string();
    let describe_partial = |p: &PathBuf| {
        format!(
            "move partial snapshot {} (left by a crash while writing) to the backup",
            p.display()
        )
    };
    let mut report = JsonRepair {
        applied: false,
        backup_dir: None,
        actions: plan
            .actions
            .iter()
            .map(describe)
            .chain(partial_snapshots.iter().map(describe_partial))
            .collect(),
        backups: vec![],
        refused,
    };
    if apply && report.refused.is_empty() && !report.actions.is_empty() {
        report.actions.clear();
        if !plan.actions.is_empty() {
            let done = native::repair(fs, &dir, &backup_dir)?;
            report.actions.extend(done.performed.iter().map(describe));
            report.backups.extend(done.backups.iter().map(|p| p.display().to_string()));
        }
        for p in &partial_snapshots {
            let saved = move_to_backup(fs, p, &backup_dir)?;
            report.actions.push(describe_partial(p));
            report.backups.push(saved.display().to_string());
        }
        report.applied = true;
        report.backup_dir = Some(backup_dir.display().to_string());
    }
    if json {
        super::json_doc(out, &report)?;
    } else {
        if report.actions.is_empty() && report.refused.is_empty() {
            writeln!(out, "nothing to repair: {} is sound", dir.display())?;
        }
        for a in &report.actions {
            let verb = if report.applied { "done" } else { "would" };
            writeln!(out, "{verb}: {a}")?;
        }
        for b in &report.backups {
            writeln!(out, "backup: {b}")?;
        }
        for (p, why) in &report.refused {
            writeln!(
                out,
                "refused: {} at byte {:?}: {}\n  why: {why}",
                p.file, p.offset, p.message
            )?;
        }
        if !report.applied && !report.actions.is_empty() && report.refused.is_empty() {
            writeln!(
                out,
                "dry run: nothing was changed; run again with --apply (backups go to {})",
                backup_dir.display()
            )?;
        }
        if !report.refused.is_empty() {
            writeln!(out, "nothing was changed: repair does not touch damage that could hold acknowledged data")?;
        }
    }
    Ok(if report.refused.is_empty() && (report.applied || report.actions.is_empty()) {
        Outcome::Clean
    } else {
        Outcome::Found
    })
}

/// Partial snapshots (`*.kks.tmp`) a crash left in a native data directory's
/// `snapshots/`.
fn partial_snapshots(fs: &dyn FileSystem, path: &Path) -> Result<Vec<PathBuf>, Failure> {
    let dir = path.join("snapshots");
    if !fs.metadata(&dir).map(|m| m.is_dir).unwrap_or(false) {
        return Ok(Vec::new());
    }
    let suffix = format!(".kks{}", keeperkit_snapshot::native::TEMP_SUFFIX);
    Ok(fs
        .read_dir(&dir)?
        .into_iter()
        .filter(|e| !e.is_dir && e.name.ends_with(&suffix))
        .map(|e| dir.join(e.name))
        .collect())
}

/// Copies `file` into `backup_dir` (created if missing) under its own name (`.1`, `.2`,
/// ... appended when taken), makes the copy durable, then removes the original and makes
/// that durable. Shared by the repair of every dialect.
pub(crate) fn move_to_backup(
    fs: &dyn FileSystem,
    file: &Path,
    backup_dir: &Path,
) -> Result<PathBuf, Failure> {
    fs.create_dir_all(backup_dir)?;
    let name = file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let mut target = backup_dir.join(&name);
    let mut n = 1;
    while fs.exists(&target) {
        target = backup_dir.join(format!("{name}.{n}"));
        n += 1;
    }
    let bytes = fs.read_all(file)?;
    let f = fs.open(&target, keeperkit_vfs::OpenMode::CreateNew)?;
    f.write_all_at(&bytes, 0)?;
    f.sync_all()?;
    fs.sync_dir(backup_dir)?;
    fs.remove_file(file)?;
    if let Some(parent) = file.parent() {
        fs.sync_dir(parent)?;
    }
    Ok(target)
}
