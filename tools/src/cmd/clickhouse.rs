//! ClickHouse Keeper data in `keeperkit log | inspect | verify | repair`.
//!
//! Accepted paths: a coordination dir (`logs/` + `snapshots/`), a log dir, a snapshot
//! dir, a dir holding both kinds of files, or one `changelog_<from>_<to>.bin[.zstd]` /
//! `snapshot_<N>.bin[.zstd]` file. A log dir whose sibling is `snapshots/` takes the
//! newest snapshot there as Keeper's last committed index.
//!
//! Keeper's own rules decide everything here: which files it reads at startup, what it
//! sets aside or deletes, where it resumes writing (`keeperkit_wal::clickhouse::
//! startup`), and what it refuses to load in a snapshot
//! (`keeperkit_snapshot::clickhouse::check_contents`). Settings are Keeper's defaults:
//! `reserved_log_items` 100000, `compress_logs` false.
//!
//! Offsets of records in `.zstd` changelogs are offsets in the decompressed stream (as
//! Keeper records them); zstd framing problems carry file offsets. Offsets of snapshot
//! body problems are offsets in the decompressed body.

use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::anyhow;
use keeperkit_model::keeper::nuraft::ClusterConfig;
use keeperkit_model::keeper::{KeeperLogEntry, KeeperRequest};
use keeperkit_model::{Corruption, CorruptionKind};
use keeperkit_snapshot::clickhouse::container::{METHOD_LZ4, METHOD_NONE, METHOD_ZSTD};
use keeperkit_snapshot::clickhouse::{
    self as chsnap, check_contents, Container, ContentProblem, Severity, SnapshotContents,
    SnapshotInfo,
};
use keeperkit_snapshot::SnapshotError;
use keeperkit_vfs::FileSystem;
use keeperkit_wal::clickhouse::startup::{
    self, plan_repair, plan_startup, ProblemKind, RepairAction, RepairPlan, Resume, VerifyReport,
};
use keeperkit_wal::clickhouse::{
    list_changelogs, read_file, ChangelogFile, ChangelogName, Listing, ReadOptions, RecordPayload,
    RESERVED_LOG_ITEMS_DEFAULT, TMP_PREFIX, VALUE_TYPE_APP_LOG, VALUE_TYPE_CONF,
};
use keeperkit_wal::WalError;
use serde::Serialize;

use super::log::JsonOp;
use super::verify::kind_name;
use crate::{CmdResult, Failure, Outcome};

/// `compress_logs` as current Keeper defaults it (changelog spec §3): decides whether a
/// clean, short last file is appended to or followed by a new one.
const COMPRESS_LOGS: bool = false;

fn storage_failure(e: impl Into<keeperkit_storage::StorageError>) -> Failure {
    Failure::from(e.into())
}

fn file_name(p: &Path) -> String {
    p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}

fn is_dir(fs: &dyn FileSystem, p: &Path) -> bool {
    fs.metadata(p).map(|m| m.is_dir).unwrap_or(false)
}

// ---------------------------------------------------------------------------------
// Where the files are.

/// The files a ClickHouse Keeper path holds.
#[derive(Debug, Clone)]
struct ChPaths {
    /// What the user gave.
    root: PathBuf,
    /// The log dir, when the path has changelogs.
    log_dir: Option<PathBuf>,
    /// The snapshot dir, when the path has snapshots.
    snap_dir: Option<PathBuf>,
    /// Where the last committed index comes from (the snapshot dir, or the sibling
    /// `snapshots/` of a log dir).
    plan_snap_dir: Option<PathBuf>,
    /// A single changelog file.
    changelog: Option<PathBuf>,
    /// A single snapshot file.
    snapshot: Option<PathBuf>,
}

fn is_changelog_name(name: &str) -> bool {
    name.starts_with("changelog") && ChangelogName::parse(name).is_some()
}

fn locate(fs: &dyn FileSystem, path: &Path, log_dir: Option<&Path>) -> Result<ChPaths, Failure> {
    let mut p = ChPaths {
        root: path.to_path_buf(),
        log_dir: None,
        snap_dir: None,
        plan_snap_dir: None,
        changelog: None,
        snapshot: None,
    };
    if !fs.exists(path) {
        return Err(Failure::usage(anyhow!("{} does not exist", path.display())));
    }
    if !is_dir(fs, path) {
        let name = file_name(path);
        if is_changelog_name(&name) {
            p.changelog = Some(path.to_path_buf());
        } else if chsnap::parse_snapshot_name(&name).is_some() {
            p.snapshot = Some(path.to_path_buf());
        } else {
            return Err(Failure::usage(anyhow!(
                "{} is neither a changelog_<from>_<to>.bin[.zstd] nor a snapshot_<N>.bin[.zstd] \
                 file",
                path.display()
            ))
            .hint(
                "point at the coordination dir, its logs/ or snapshots/, or one changelog or \
                 snapshot file (a tmp_ file is a marker Keeper deletes at startup)",
            ));
        }
        return Ok(p);
    }
    // Keeper's defaults: `<path>/logs` (standalone) or `coordination/log` (in server).
    let logs = ["logs", "log"].map(|n| path.join(n)).into_iter().find(|d| is_dir(fs, d));
    let snaps = path.join("snapshots");
    if logs.is_some() || is_dir(fs, &snaps) {
        p.log_dir = logs;
        p.snap_dir = is_dir(fs, &snaps).then_some(snaps);
    } else {
        let entries = fs.read_dir(path)?;
        let stem = |n: &str| n.strip_prefix(TMP_PREFIX).unwrap_or(n).to_string();
        if entries.iter().any(|e| !e.is_dir && stem(&e.name).starts_with("changelog")) {
            p.log_dir = Some(path.to_path_buf());
        }
        if entries.iter().any(|e| !e.is_dir && stem(&e.name).starts_with("snapshot_")) {
            p.snap_dir = Some(path.to_path_buf());
        }
        let name = file_name(path);
        if p.log_dir.is_none() && p.snap_dir.is_none() {
            match name.as_str() {
                "logs" | "log" => p.log_dir = Some(path.to_path_buf()),
                "snapshots" => p.snap_dir = Some(path.to_path_buf()),
                _ => {
                    return Err(Failure::usage(anyhow!(
                        "{} holds no ClickHouse Keeper changelogs or snapshots",
                        path.display()
                    ))
                    .hint(
                        "point at Keeper's coordination dir (the one with logs/ and \
                         snapshots/), or at one of those",
                    ))
                }
            }
        }
        if p.log_dir.is_some() && p.snap_dir.is_none() {
            // A log dir next to its snapshots: Keeper's last committed index is there.
            if let Some(sib) = path.parent().map(|d| d.join("snapshots")) {
                if is_dir(fs, &sib) && sib != path {
                    p.plan_snap_dir = Some(sib);
                }
            }
        }
    }
    if let Some(l) = log_dir {
        p.log_dir = Some(l.to_path_buf());
    }
    if p.plan_snap_dir.is_none() {
        p.plan_snap_dir.clone_from(&p.snap_dir);
    }
    Ok(p)
}

// ---------------------------------------------------------------------------------
// Reading everything.

/// A snapshot file and what reading it gave.
#[derive(Debug)]
struct SnapScan {
    path: PathBuf,
    index: u64,
    file_len: u64,
    /// A `tmp_` marker names it: an incomplete snapshot Keeper deletes (not read).
    incomplete: bool,
    /// The one Keeper loads at startup (the newest complete one).
    newest: bool,
    /// `None` when not read (incomplete).
    read: Option<Result<(SnapshotInfo, Vec<ContentProblem>), Corruption>>,
}

/// The changelog side.
#[derive(Debug)]
enum LogScan {
    /// Read, with Keeper's startup decisions.
    Report(Box<VerifyReport>),
    /// A record version Keeper does not know: it aborts, nothing else can be said.
    Fatal(Corruption),
}

#[derive(Debug)]
struct Scan {
    paths: ChPaths,
    /// Keeper's last committed index (the newest complete snapshot's index, 0 if none).
    last_committed: u64,
    /// The snapshot that index comes from.
    plan_snapshot: Option<PathBuf>,
    snapshots: Vec<SnapScan>,
    /// `tmp_` markers of the snapshot dir without a partner.
    snap_markers: Vec<PathBuf>,
    logs: Option<LogScan>,
    listing: Listing,
}

impl Scan {
    fn report(&self) -> Option<&VerifyReport> {
        match &self.logs {
            Some(LogScan::Report(r)) => Some(r),
            _ => None,
        }
    }

    fn files(&self) -> &[ChangelogFile] {
        self.report().map_or(&[], |r| &r.files[..])
    }
}

/// The complete snapshots of a dir (as `(index, path)`) and its `tmp_` markers split
/// into those naming a snapshot (incomplete) and lone ones.
#[allow(clippy::type_complexity)]
fn snapshot_listing(
    fs: &dyn FileSystem,
    dir: &Path,
) -> Result<(Vec<(u64, PathBuf, bool)>, Vec<PathBuf>), Failure> {
    let (files, markers) = chsnap::list_snapshots(fs, dir).map_err(storage_failure)?;
    let names: HashSet<String> = files.iter().map(|(_, p)| file_name(p)).collect();
    let mut lone = Vec::new();
    let mut incomplete = HashSet::new();
    for m in markers {
        let partner = m.strip_prefix(TMP_PREFIX).unwrap_or(&m).to_string();
        if names.contains(&partner) {
            incomplete.insert(partner);
        } else if partner.starts_with("snapshot_") || !partner.starts_with("changelog") {
            lone.push(dir.join(&m));
        }
    }
    let out = files
        .into_iter()
        .map(|(i, p)| (i, p.clone(), incomplete.contains(&file_name(&p))))
        .collect();
    Ok((out, lone))
}

fn read_snapshot(fs: &dyn FileSystem, path: &Path) -> Result<SnapScanRead, Failure> {
    match SnapshotContents::read(fs, path) {
        Ok((contents, info)) => Ok(Ok((info, check_contents(&contents)))),
        Err(SnapshotError::Corrupt(c)) => Ok(Err(c)),
        Err(e) => Err(storage_failure(e)),
    }
}

type SnapScanRead = Result<(SnapshotInfo, Vec<ContentProblem>), Corruption>;

fn scan(fs: &dyn FileSystem, paths: ChPaths, read_snapshots: bool) -> Result<Scan, Failure> {
    let mut snapshots = Vec::new();
    let mut snap_markers = Vec::new();
    if let Some(dir) = &paths.snap_dir {
        let (files, lone) = snapshot_listing(fs, dir)?;
        snap_markers = lone;
        for (index, path, incomplete) in files {
            let file_len = fs.metadata(&path)?.len;
            snapshots.push(SnapScan {
                path,
                index,
                file_len,
                incomplete,
                newest: false,
                read: None,
            });
        }
    } else if let Some(path) = &paths.snapshot {
        let index = chsnap::parse_snapshot_name(&file_name(path)).unwrap_or(0);
        let file_len = fs.metadata(path)?.len;
        snapshots.push(SnapScan {
            path: path.clone(),
            index,
            file_len,
            incomplete: false,
            newest: true,
            read: None,
        });
    }
    // Keeper's last committed index: its newest complete snapshot.
    let (mut last_committed, mut plan_snapshot) = (0, None);
    if paths.snap_dir.is_some() && paths.plan_snap_dir == paths.snap_dir {
        if let Some(s) = snapshots.iter_mut().rev().find(|s| !s.incomplete) {
            s.newest = true;
            last_committed = s.index;
            plan_snapshot = Some(s.path.clone());
        }
    } else if let Some(dir) = &paths.plan_snap_dir {
        let (files, _) = snapshot_listing(fs, dir)?;
        if let Some((i, p, _)) = files.iter().rev().find(|f| !f.2) {
            last_committed = *i;
            plan_snapshot = Some(p.clone());
        }
    }
    if read_snapshots {
        for s in snapshots.iter_mut().filter(|s| !s.incomplete) {
            s.read = Some(read_snapshot(fs, &s.path)?);
        }
    }
    let mut listing = Listing::default();
    let logs = if let Some(dir) = &paths.log_dir {
        listing = list_changelogs(fs, dir)?;
        match startup::verify_dir(
            fs,
            dir,
            last_committed,
            RESERVED_LOG_ITEMS_DEFAULT,
            COMPRESS_LOGS,
            ReadOptions::default(),
        ) {
            Ok(mut r) => {
                if paths.snap_dir.as_ref() == Some(dir) {
                    // A dir of both kinds: snapshot markers are the snapshot side's.
                    r.problems.retain(|p| {
                        p.kind != ProblemKind::TmpMarker
                            || file_name(&p.file)
                                .trim_start_matches(TMP_PREFIX)
                                .starts_with("changelog")
                    });
                    listing.unknown.retain(|n| chsnap::parse_snapshot_name(n).is_none());
                    listing
                        .tmp_markers
                        .retain(|n| n.trim_start_matches(TMP_PREFIX).starts_with("changelog"));
                }
                Some(LogScan::Report(Box::new(r)))
            }
            Err(WalError::Corrupt(c)) => Some(LogScan::Fatal(c)),
            Err(e) => return Err(e.into()),
        }
    } else if let Some(path) = &paths.changelog {
        Some(single_changelog(fs, path)?)
    } else {
        None
    };
    Ok(Scan { paths, last_committed, plan_snapshot, snapshots, snap_markers, logs, listing })
}

/// One changelog file alone, checked as if a snapshot covered everything before it.
fn single_changelog(fs: &dyn FileSystem, path: &Path) -> Result<LogScan, Failure> {
    let f = match read_file(fs, path, ReadOptions::default()) {
        Ok(f) => f,
        Err(WalError::Corrupt(c)) => return Ok(LogScan::Fatal(c)),
        Err(e) => return Err(e.into()),
    };
    let from = ChangelogName::parse(&file_name(path)).map_or(1, |n| n.from);
    let mut problems = Vec::new();
    let mut seen = HashSet::new();
    for r in &f.records {
        if !seen.insert(r.record.index) {
            problems.push(startup::Problem {
                file: f.path.clone(),
                offset: r.offset,
                index: Some(r.record.index),
                kind: ProblemKind::RepeatedIndex,
            });
        }
    }
    if let Some(b) = &f.broken {
        problems.push(startup::Problem {
            file: f.path.clone(),
            offset: b.offset,
            index: b.index,
            kind: ProblemKind::Broken(b.kind.clone()),
        });
    }
    if let Some(z) = &f.zstd {
        if let Some(stop) = z.stop.as_ref().filter(|s| s.at_eof) {
            problems.push(startup::Problem {
                file: f.path.clone(),
                offset: stop.file_offset,
                index: f.records.last().map(|r| r.record.index),
                kind: ProblemKind::TornZstdBlock,
            });
        } else if z.last_frame_unterminated() {
            problems.push(startup::Problem {
                file: f.path.clone(),
                offset: f.file_len,
                index: f.records.last().map(|r| r.record.index),
                kind: ProblemKind::UnterminatedFrame,
            });
        }
    }
    let files = vec![f];
    let plan =
        plan_startup(&files, from.saturating_sub(1), RESERVED_LOG_ITEMS_DEFAULT, COMPRESS_LOGS);
    Ok(LogScan::Report(Box::new(VerifyReport { files, plan, problems })))
}

// ---------------------------------------------------------------------------------
// Problems.

/// A problem as `verify --json` prints it (the native dialect's shape).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct JsonProblem {
    /// `error` (exit 1) or `warning` (reported, exit 0).
    pub severity: &'static str,
    /// The file concerned.
    pub file: String,
    /// Byte offset: in the decompressed stream for records of `.zstd` changelogs and
    /// for snapshot bodies; in the file for zstd framing problems.
    pub offset: Option<u64>,
    /// Log index: of the record, or the snapshot's index.
    pub index: Option<u64>,
    /// Machine-readable kind.
    pub kind: &'static str,
    /// Full sentence.
    pub message: String,
}

fn stream_note(f: Option<&ChangelogFile>) -> &'static str {
    if f.is_some_and(|f| f.compressed) {
        " (offset in the decompressed stream)"
    } else {
        ""
    }
}

fn log_problems(scan: &Scan) -> Vec<JsonProblem> {
    let mut out = Vec::new();
    let report = match &scan.logs {
        None => return out,
        Some(LogScan::Fatal(c)) => {
            out.push(JsonProblem {
                severity: "error",
                file: c.file.display().to_string(),
                offset: Some(c.offset),
                index: c.index,
                kind: kind_name(&c.kind),
                message: format!(
                    "{c}: Keeper aborts at startup (UNKNOWN_FORMAT_VERSION); nothing can be \
                     repaired here: restore the file from another replica"
                ),
            });
            return out;
        }
        Some(LogScan::Report(r)) => r,
    };
    let plan = report.plan.as_ref().ok();
    let loaded: HashSet<u64> =
        plan.map(|p| p.entries.iter().map(|e| e.0).collect()).unwrap_or_default();
    let file_of = |p: &Path| report.files.iter().find(|f| f.path == p);
    let read_past: Vec<&Path> =
        read_past(report).into_iter().map(|i| report.files[i].path.as_path()).collect();
    for p in &report.problems {
        let file = p.file.display().to_string();
        let f = file_of(&p.file);
        let (severity, kind, message) = match &p.kind {
            ProblemKind::Broken(k @ CorruptionKind::Truncated { .. })
                if read_past.contains(&p.file.as_path()) =>
            {
                (
                    "warning",
                    "torn_tail",
                    format!(
                        "the file ends with a partial record{} ({k}): a write cut short, never \
                         acknowledged; Keeper ignores it and reads on in the next file, which \
                         continues the log; nothing to repair",
                        p.index.map(|i| format!(" of index {i}")).unwrap_or_default()
                    ),
                )
            }
            ProblemKind::Broken(k @ CorruptionKind::Truncated { .. }) => (
                "warning",
                "torn_tail",
                format!(
                    "the file ends with a partial record{} ({k}): a write cut short, never \
                     acknowledged; Keeper ignores it and writes on in a new file; `keeperkit \
                     repair --apply` moves the partial bytes to a backup",
                    p.index.map(|i| format!(" of index {i}")).unwrap_or_default()
                ),
            ),
            ProblemKind::Broken(k) => (
                "error",
                kind_name(k),
                format!(
                    "record{} cannot be read{}: {k}; Keeper stops reading this file here, \
                     ignores every later record of it, sets later files aside and must fetch \
                     those entries from another replica; `keeperkit repair --apply` does the \
                     same with a backup (or restore the file from another replica)",
                    p.index.map(|i| format!(" of index {i}")).unwrap_or_default(),
                    stream_note(f)
                ),
            ),
            ProblemKind::TornZstdBlock => (
                "warning",
                "torn_tail",
                format!(
                    "the zstd stream ends inside a block at file offset {} (a write cut \
                     short, never acknowledged); Keeper ignores the partial block{}",
                    p.offset,
                    if read_past.contains(&p.file.as_path()) {
                        " and reads on in the next file, which continues the log; nothing to \
                         repair"
                    } else {
                        "; `keeperkit repair --apply` cuts it at the last whole record (with a \
                         backup) and ends the frame"
                    }
                ),
            ),
            ProblemKind::UnterminatedFrame => (
                "warning",
                "unterminated_frame",
                "the last zstd frame is not terminated (Keeper stopped without finishing the \
                 file); Keeper writes 01 00 00 before appending to it; `keeperkit repair \
                 --apply` does the same, after which the zstd tool can read it too"
                    .to_string(),
            ),
            ProblemKind::RepeatedIndex => (
                "warning",
                "repeated_index",
                format!(
                    "index {} appears again (a follower's log rewritten by the leader): the \
                     last occurrence wins and drops the entries after the earlier one",
                    p.index.unwrap_or(0)
                ),
            ),
            ProblemKind::WouldDetach => {
                let lost: u64 = f
                    .map(|f| {
                        f.records
                            .iter()
                            .map(|r| r.record.index)
                            .filter(|i| *i > scan.last_committed && !loaded.contains(i))
                            .collect::<HashSet<_>>()
                            .len() as u64
                    })
                    .unwrap_or(0);
                if lost > 0 {
                    (
                        "error",
                        "would_detach",
                        format!(
                            "Keeper would move this file to detached/ at startup and lose \
                             {lost} entries after the last committed index {} that it holds \
                             (the node must fetch them from another replica)",
                            scan.last_committed
                        ),
                    )
                } else {
                    (
                        "warning",
                        "would_detach",
                        format!(
                            "Keeper would move this file to detached/ at startup: every entry \
                             in it is in the snapshot (index {}) or in the log it loads",
                            scan.last_committed
                        ),
                    )
                }
            }
            ProblemKind::Refusal(msg) => (
                "error",
                "startup_refused",
                format!(
                    "Keeper refuses to start: {msg}; a changelog is missing or was cut short: \
                     restore it from another replica, or start this node from a newer snapshot"
                ),
            ),
            ProblemKind::BadName => (
                "error",
                "bad_name",
                "the name starts with `changelog` but is not changelog_<from>_<to>.bin[.zstd]: \
                 Keeper refuses to start; rename or move the file"
                    .to_string(),
            ),
            ProblemKind::TmpMarker => (
                "warning",
                "tmp_marker",
                "a tmp_ marker left by an interrupted copy; Keeper deletes it at startup"
                    .to_string(),
            ),
            ProblemKind::IncompleteCopy => (
                "warning",
                "incomplete_copy",
                "a tmp_ marker says this file is an incomplete copy: Keeper deletes it at \
                 startup without reading it"
                    .to_string(),
            ),
        };
        out.push(JsonProblem {
            severity,
            file,
            offset: Some(p.offset),
            index: p.index,
            kind,
            message,
        });
    }
    if let Some(plan) = plan {
        let loaded_at: HashSet<(usize, usize)> =
            plan.entries.iter().map(|(_, l)| (l.file, l.record)).collect();
        for (fi, f) in report.files.iter().enumerate() {
            for (ri, r) in f.records.iter().enumerate() {
                if let Err(c) = r.payload_in(&f.path) {
                    let preprocessed =
                        loaded_at.contains(&(fi, ri)) && r.record.index > scan.last_committed;
                    out.push(JsonProblem {
                        severity: if preprocessed { "error" } else { "warning" },
                        file: f.path.display().to_string(),
                        offset: Some(c.offset),
                        index: Some(r.record.index),
                        kind: kind_name(&c.kind),
                        message: if preprocessed {
                            format!(
                                "the entry cannot be decoded{}: {}; Keeper aborts at startup \
                                 (\"Failed to preprocess stored log at index {}\"); restore \
                                 the file from another replica",
                                stream_note(Some(f)),
                                c.kind,
                                r.record.index
                            )
                        } else {
                            format!(
                                "the entry cannot be decoded{}: {}; Keeper never parses it \
                                 (already in the snapshot or not loaded)",
                                stream_note(Some(f)),
                                c.kind
                            )
                        },
                    });
                }
            }
        }
        for w in &plan.warnings {
            out.push(JsonProblem {
                severity: "warning",
                file: scan.paths.log_dir.as_ref().unwrap_or(&scan.paths.root).display().to_string(),
                offset: None,
                index: None,
                kind: "startup_warning",
                message: format!("Keeper warns at startup: {w}"),
            });
        }
    }
    out
}

fn snapshot_problems(scan: &Scan) -> Vec<JsonProblem> {
    let mut out = Vec::new();
    for s in &scan.snapshots {
        let file = s.path.display().to_string();
        if s.incomplete {
            out.push(JsonProblem {
                severity: "warning",
                file: file.clone(),
                offset: None,
                index: Some(s.index),
                kind: "incomplete_snapshot",
                message: "a tmp_ marker says this snapshot was not finished (a crash while \
                          writing it): Keeper deletes it and its marker at startup; `keeperkit \
                          repair --apply` moves both to a backup"
                    .into(),
            });
            continue;
        }
        match &s.read {
            None => {}
            Some(Err(c)) => out.push(JsonProblem {
                severity: "error",
                file,
                offset: Some(c.offset),
                index: Some(s.index),
                kind: kind_name(&c.kind),
                message: format!(
                    "damaged snapshot: {c}; {}",
                    if s.newest {
                        "Keeper loads only its newest snapshot and aborts on this one (\"failure \
                         to load from latest snapshot\"): copy a sound snapshot and the logs \
                         after it from another replica"
                    } else {
                        "Keeper does not load it while a newer snapshot exists, but it is no \
                         fallback: remove it or replace it from another replica"
                    }
                ),
            }),
            Some(Ok((info, problems))) => {
                if info.header.meta.last_log_idx != s.index {
                    out.push(JsonProblem {
                        severity: "warning",
                        file: file.clone(),
                        offset: None,
                        index: Some(s.index),
                        kind: "name_mismatch",
                        message: format!(
                            "the file is named for index {} but covers the log up to index {}",
                            s.index, info.header.meta.last_log_idx
                        ),
                    });
                }
                for p in problems {
                    let fatal = p.severity == Severity::Fatal;
                    out.push(JsonProblem {
                        severity: if fatal { "error" } else { "warning" },
                        file: file.clone(),
                        offset: None,
                        index: Some(s.index),
                        kind: if fatal { "snapshot_refused" } else { "snapshot_content" },
                        message: format!(
                            "{}{}{}",
                            p.path.as_ref().map(|n| format!("{n}: ")).unwrap_or_default(),
                            p.message,
                            if fatal {
                                "; Keeper refuses to load this snapshot"
                            } else {
                                "; Keeper loads it as is"
                            }
                        ),
                    });
                }
            }
        }
    }
    for m in &scan.snap_markers {
        out.push(JsonProblem {
            severity: "warning",
            file: m.display().to_string(),
            offset: None,
            index: None,
            kind: "tmp_marker",
            message: "a tmp_ marker without its snapshot; Keeper deletes it at startup".into(),
        });
    }
    out
}

fn all_problems(scan: &Scan) -> Vec<JsonProblem> {
    let mut p = snapshot_problems(scan);
    p.extend(log_problems(scan));
    p.sort_by(|a, b| {
        (a.severity != "error", &a.file, a.offset).cmp(&(b.severity != "error", &b.file, b.offset))
    });
    p
}

// ---------------------------------------------------------------------------------
// log

/// One changelog record as `keeperkit log --json` prints it: the fields of the other
/// dialects' entries, plus Keeper's own.
#[derive(Debug, Serialize)]
pub struct JsonChEntry {
    /// The changelog file.
    pub file: String,
    /// Offset of the record (in the decompressed stream for `.zstd` files).
    pub offset: u64,
    /// Raft log index.
    pub index: u64,
    /// Raft term.
    pub term: u64,
    /// Record format version (0, 1 or 2).
    pub record_version: u8,
    /// NuRaft value type: 1 a Keeper request, 2 a cluster config.
    pub value_type: i32,
    /// The zxid Keeper applies the request with: the one in the entry, or the log index
    /// when the entry says 0 or has none.
    pub zxid: Option<i64>,
    /// The zxid in hex.
    pub zxid_hex: Option<String>,
    /// The zxid field of the entry as stored (0: the log index is used).
    pub zxid_stored: Option<i64>,
    /// Request time in ms since the epoch.
    pub time: Option<i64>,
    /// Session id.
    pub session: Option<i64>,
    /// Session id in hex.
    pub session_hex: Option<String>,
    /// The request's xid (ZooKeeper's cxid).
    pub xid: Option<i64>,
    /// Same as `xid`, under the other dialects' name.
    pub cxid: Option<i64>,
    /// Operation name (`Create`, `Multi`, ...; `Config` for a cluster config entry,
    /// `Empty` for an empty request entry).
    pub op: String,
    /// The request's opnum.
    pub opnum: Option<i32>,
    /// Paths named by the request (sub-requests of a multi included).
    pub paths: Vec<String>,
    /// Always `null`: Keeper's log holds requests, not their results.
    pub result: Option<String>,
    /// Digest version of the tree digest after the entry (0 = none).
    pub digest_version: Option<u8>,
    /// Tree digest after the entry, when the entry carries one.
    pub digest: Option<String>,
    /// Members of a multi.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ops: Vec<JsonOp>,
    /// Human-readable detail.
    pub detail: String,
    /// Why the payload could not be decoded, if it could not.
    pub error: Option<String>,
}

fn config_detail(c: &ClusterConfig) -> String {
    let servers: Vec<String> = c
        .servers
        .iter()
        .map(|s| {
            format!("{} {}{}", s.id, s.endpoint, if s.flags & 1 != 0 { " (learner)" } else { "" })
        })
        .collect();
    format!(
        "cluster config of index {} (previous {}): servers {}",
        c.log_idx,
        c.prev_log_idx,
        if servers.is_empty() { "none".to_string() } else { servers.join(", ") }
    )
}

fn request_detail(r: &KeeperRequest) -> String {
    match r {
        KeeperRequest::Create(c) | KeeperRequest::CreateIfNotExists(c) => format!(
            "data {} bytes, {} acl{}{}",
            c.data.len(),
            c.acls.len(),
            if c.is_ephemeral() { ", ephemeral" } else { "" },
            if c.is_sequential() { ", sequential" } else { "" }
        ),
        KeeperRequest::Remove { version, .. }
        | KeeperRequest::Check { version, .. }
        | KeeperRequest::CheckNotExists { version, .. } => format!("version {version}"),
        KeeperRequest::Set { data, version, .. } => {
            format!("data {} bytes, version {version}", data.len())
        }
        KeeperRequest::SetAcl { acls, version, .. } => {
            format!("{} acl, aversion {version}", acls.len())
        }
        KeeperRequest::Multi(subs) | KeeperRequest::MultiRead(subs) => {
            format!("{} ops", subs.len())
        }
        KeeperRequest::Reconfig { joining, leaving, new_members, version } => format!(
            "joining {joining:?}, leaving {leaving:?}, new members {new_members:?}, version \
             {version}"
        ),
        KeeperRequest::Auth { scheme, .. } => format!("scheme {scheme}"),
        KeeperRequest::FilteredList { list_type, .. } => format!(
            "list {}",
            match list_type {
                1 => "persistent",
                2 => "ephemeral",
                _ => "all",
            }
        ),
        KeeperRequest::RemoveRecursive { remove_nodes_limit, .. } => {
            format!("at most {remove_nodes_limit} nodes")
        }
        KeeperRequest::SessionId { internal_id, session_timeout_ms, server_id } => format!(
            "internal id {internal_id:#x}, timeout {session_timeout_ms} ms, server {server_id}"
        ),
        KeeperRequest::Close
        | KeeperRequest::Heartbeat
        | KeeperRequest::Exists { .. }
        | KeeperRequest::Get { .. }
        | KeeperRequest::GetAcl { .. }
        | KeeperRequest::SimpleList { .. }
        | KeeperRequest::Sync { .. }
        | KeeperRequest::List { .. } => String::new(),
    }
}

fn request_entry(e: &mut JsonChEntry, k: &KeeperLogEntry) {
    let zd = k.trailer.zxid_digest;
    let stored = zd.map(|z| z.zxid);
    let zxid = match stored {
        Some(z) if z != 0 => z,
        _ => i64::try_from(e.index).unwrap_or(i64::MAX),
    };
    e.zxid = Some(zxid);
    e.zxid_hex = Some(format!("{zxid:#x}"));
    e.zxid_stored = stored;
    e.time = k.trailer.time_ms;
    e.session = Some(k.session_id);
    e.session_hex = Some(format!("{:#x}", k.session_id));
    e.xid = Some(k.xid());
    e.cxid = Some(k.xid());
    e.op = k.request.name().to_string();
    e.opnum = Some(k.request.opnum());
    e.paths = k.request.paths().into_iter().map(str::to_string).collect();
    e.digest_version = zd.map(|z| z.digest_version);
    e.digest =
        zd.filter(|z| z.digest_version != 0).and_then(|z| z.digest).map(|d| format!("{d:#x}"));
    if let KeeperRequest::Multi(subs) | KeeperRequest::MultiRead(subs) = &k.request {
        e.ops = subs
            .iter()
            .map(|s| JsonOp {
                op: s.name(),
                path: s.paths().first().map(|p| p.to_string()),
                error: None,
            })
            .collect();
    }
    e.detail = request_detail(&k.request);
}

fn entry_json(f: &ChangelogFile, r: &keeperkit_wal::clickhouse::RecordAt) -> JsonChEntry {
    let rec = &r.record;
    let mut e = JsonChEntry {
        file: f.path.display().to_string(),
        offset: r.offset,
        index: rec.index,
        term: rec.term,
        record_version: rec.version,
        value_type: rec.value_type,
        zxid: None,
        zxid_hex: None,
        zxid_stored: None,
        time: None,
        session: None,
        session_hex: None,
        xid: None,
        cxid: None,
        op: String::new(),
        opnum: None,
        paths: Vec::new(),
        result: None,
        digest_version: None,
        digest: None,
        ops: Vec::new(),
        detail: String::new(),
        error: None,
    };
    match r.payload_in(&f.path) {
        Ok(RecordPayload::Request(k)) => request_entry(&mut e, &k),
        Ok(RecordPayload::Config(c)) => {
            e.op = "Config".into();
            e.detail = config_detail(&c);
        }
        Ok(RecordPayload::Opaque) => {
            if rec.value_type == VALUE_TYPE_APP_LOG {
                e.op = "Empty".into();
                e.detail = "empty request entry".into();
            } else {
                e.op = format!("value_type_{}", rec.value_type);
                e.detail = format!("{} bytes, not a Keeper request", rec.blob.len());
            }
        }
        Err(c) => {
            e.op = "Undecodable".into();
            e.detail = format!("{} bytes", rec.blob.len());
            e.error = Some(c.to_string());
        }
    }
    e
}

fn parse_index(s: &str) -> Result<u64, Failure> {
    let parsed = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(h) => u64::from_str_radix(h, 16).ok(),
        None => s.parse().ok(),
    };
    parsed.ok_or_else(|| {
        Failure::usage(anyhow!("{s:?} is not a log index"))
            .hint("ClickHouse Keeper entries are addressed by log index: give it in decimal (1234)")
    })
}

/// `keeperkit log` on ClickHouse Keeper data: every record of every changelog (file
/// order, then stream order; `detached/` excluded), decoded. A damaged record ends its
/// file, as in Keeper; the exit status is then 1.
pub fn log(
    fs: &dyn FileSystem,
    path: &Path,
    log_dir: Option<&Path>,
    from: Option<&str>,
    to: Option<&str>,
    json: bool,
    out: &mut dyn Write,
) -> CmdResult {
    let from = from.map(parse_index).transpose()?;
    let to = to.map(parse_index).transpose()?;
    let paths = locate(fs, path, log_dir)?;
    let files: Vec<PathBuf> = if let Some(f) = &paths.changelog {
        vec![f.clone()]
    } else if let Some(dir) = &paths.log_dir {
        let listing = list_changelogs(fs, dir)?;
        let copies: HashSet<String> = listing
            .tmp_markers
            .iter()
            .map(|m| m.trim_start_matches(TMP_PREFIX).to_string())
            .collect();
        listing
            .files
            .into_iter()
            .filter(|f| {
                let name = file_name(&f.path);
                if copies.contains(&name) {
                    eprintln!(
                        "note: {} is an incomplete copy (a tmp_ marker names it); Keeper deletes \
                         it at startup; skipped",
                        f.path.display()
                    );
                    return false;
                }
                // Keeper itself skips files by their names' ranges.
                from.is_none_or(|fr| f.name.to >= fr) && to.is_none_or(|t| f.name.from <= t)
            })
            .map(|f| f.path)
            .collect()
    } else {
        return Err(Failure::usage(anyhow!("{} holds no changelogs", path.display()))
            .hint("point at the coordination dir or its logs/ directory"));
    };
    let mut printed = 0u64;
    let mut damaged = false;
    for p in &files {
        let f = read_file(fs, p, ReadOptions::default()).map_err(|e| {
            Failure::from(e).hint(format!(
                "{printed} entries were printed before this file; `keeperkit verify` lists every \
                 problem"
            ))
        })?;
        for r in &f.records {
            let i = r.record.index;
            if from.is_some_and(|fr| i < fr) || to.is_some_and(|t| i > t) {
                continue;
            }
            printed += 1;
            let e = entry_json(&f, r);
            if json {
                super::json_line(out, &e)?;
            } else {
                writeln!(
                    out,
                    "{:>10} term {:<4} {} session {} xid {} {:<16} {} {}",
                    e.index,
                    e.term,
                    e.time.map_or("-".to_string(), super::iso_time),
                    e.session_hex.as_deref().unwrap_or("-"),
                    e.xid.map_or("-".to_string(), |x| x.to_string()),
                    e.op,
                    e.paths.join(" "),
                    e.error.as_deref().unwrap_or(&e.detail)
                )?;
            }
        }
        if let Some(b) = &f.broken {
            if matches!(b.kind, CorruptionKind::Truncated { .. }) {
                eprintln!(
                    "note: {} ends with a partial record at byte {}{} (never acknowledged; Keeper \
                     ignores it)",
                    p.display(),
                    b.offset,
                    stream_note(Some(&f))
                );
            } else {
                damaged = true;
                eprintln!(
                    "error: {b}{}; Keeper stops reading this file there; `keeperkit verify` says \
                     what Keeper does about it",
                    stream_note(Some(&f))
                );
            }
        }
    }
    if !json {
        writeln!(out, "{printed} entries")?;
    }
    Ok(if damaged { Outcome::Found } else { Outcome::Clean })
}

// ---------------------------------------------------------------------------------
// inspect

/// Where a record could not be read.
#[derive(Debug, Serialize)]
struct JsonBreak {
    offset: u64,
    index: Option<u64>,
    kind: &'static str,
    message: String,
}

/// A changelog as `inspect --json` reports it.
#[derive(Debug, Serialize)]
struct JsonChangelog {
    file: String,
    name_from: Option<u64>,
    name_to: Option<u64>,
    compressed: bool,
    file_len: u64,
    stream_len: u64,
    records: u64,
    first_index: Option<u64>,
    last_index: Option<u64>,
    first_term: Option<u64>,
    last_term: Option<u64>,
    record_versions: Vec<u8>,
    request_entries: u64,
    config_entries: u64,
    other_entries: u64,
    repeated_indexes: u64,
    zstd_frames: Option<usize>,
    last_frame_terminated: Option<bool>,
    torn_zstd_block_at: Option<u64>,
    broken: Option<JsonBreak>,
    /// What Keeper does with it at startup.
    keeper: String,
}

/// A snapshot as `inspect --json` reports it.
#[derive(Debug, Serialize)]
struct JsonChSnapshot {
    file: String,
    index: u64,
    file_len: u64,
    incomplete: bool,
    loaded_at_startup: bool,
    container: Option<&'static str>,
    block_method: Option<String>,
    body_len: Option<u64>,
    version: Option<u8>,
    last_log_idx: Option<u64>,
    last_log_term: Option<u64>,
    zxid: Option<i64>,
    zxid_hex: Option<String>,
    digest_version: Option<u8>,
    digest: Option<String>,
    session_id_counter: Option<i64>,
    nodes: Option<u64>,
    sessions: Option<u64>,
    acls: Option<u64>,
    cluster_config: Option<bool>,
    servers: Option<usize>,
    content_ok: Option<bool>,
    error: Option<String>,
}

/// Keeper's startup plan.
#[derive(Debug, Serialize)]
struct JsonStartup {
    last_committed: u64,
    snapshot: Option<String>,
    reserved_log_items: u64,
    compress_logs: bool,
    start_index: Option<u64>,
    reads: Vec<String>,
    first_index: Option<u64>,
    last_index: Option<u64>,
    entries: u64,
    set_aside: Vec<String>,
    deletes: Vec<String>,
    broken_file: Option<String>,
    resume_append_to: Option<String>,
    resume_new_file_from: Option<u64>,
    warnings: Vec<String>,
    refusal: Option<String>,
}

/// `inspect --json` of ClickHouse Keeper data.
#[derive(Debug, Serialize)]
struct JsonChInspect {
    dialect: &'static str,
    path: String,
    log_dir: Option<String>,
    snapshot_dir: Option<String>,
    snapshots: Vec<JsonChSnapshot>,
    changelogs: Vec<JsonChangelog>,
    tmp_markers: Vec<String>,
    unknown_files: Vec<String>,
    bad_names: Vec<String>,
    index_range: Option<(u64, u64)>,
    startup: Option<JsonStartup>,
    checksums_ok: bool,
    errors: usize,
    warnings: usize,
}

fn container_json(info: &SnapshotInfo) -> (&'static str, Option<String>) {
    match info.container {
        Container::Zstd => ("zstd", None),
        Container::Blocks(m) => (
            "blocks",
            Some(match m {
                METHOD_LZ4 => "lz4".to_string(),
                METHOD_ZSTD => "zstd".to_string(),
                METHOD_NONE => "none".to_string(),
                other => format!("{other:#04x}"),
            }),
        ),
    }
}

fn snapshot_json(s: &SnapScan) -> JsonChSnapshot {
    let ok = s.read.as_ref().and_then(|r| r.as_ref().ok());
    let info = ok.map(|r| &r.0);
    let h = info.map(|i| &i.header);
    let c = info.map(container_json);
    JsonChSnapshot {
        file: s.path.display().to_string(),
        index: s.index,
        file_len: s.file_len,
        incomplete: s.incomplete,
        loaded_at_startup: s.newest,
        container: c.as_ref().map(|c| c.0),
        block_method: c.and_then(|c| c.1),
        body_len: info.map(|i| i.body_len),
        version: h.map(|h| h.version),
        last_log_idx: h.map(|h| h.meta.last_log_idx),
        last_log_term: h.map(|h| h.meta.last_log_term),
        zxid: h.and_then(|h| h.zxid),
        zxid_hex: h.and_then(|h| h.zxid).map(|z| format!("{z:#x}")),
        digest_version: h.map(|h| h.digest_version),
        digest: h.and_then(|h| h.digest).map(|d| format!("{d:#018x}")),
        session_id_counter: h.map(|h| h.session_id_counter),
        nodes: info.map(|i| i.counts.nodes),
        sessions: info.map(|i| i.counts.sessions),
        acls: info.map(|i| i.counts.acls),
        cluster_config: info.map(|i| i.counts.has_cluster_config),
        servers: h.map(|h| h.meta.config.servers.len()),
        content_ok: ok.map(|r| r.1.iter().all(|p| p.severity != Severity::Fatal)),
        error: s.read.as_ref().and_then(|r| r.as_ref().err()).map(|c| c.to_string()),
    }
}

fn changelog_json(f: &ChangelogFile, keeper: String) -> JsonChangelog {
    let name = ChangelogName::parse(&file_name(&f.path));
    let mut versions: Vec<u8> = f.records.iter().map(|r| r.record.version).collect();
    versions.sort_unstable();
    versions.dedup();
    let count = |t: Option<i32>| {
        f.records
            .iter()
            .filter(|r| match t {
                Some(t) => r.record.value_type == t,
                None => ![VALUE_TYPE_APP_LOG, VALUE_TYPE_CONF].contains(&r.record.value_type),
            })
            .count() as u64
    };
    let mut seen = HashSet::new();
    let repeated = f.records.iter().filter(|r| !seen.insert(r.record.index)).count() as u64;
    JsonChangelog {
        file: f.path.display().to_string(),
        name_from: name.as_ref().map(|n| n.from),
        name_to: name.as_ref().map(|n| n.to),
        compressed: f.compressed,
        file_len: f.file_len,
        stream_len: f.stream_len,
        records: f.records.len() as u64,
        first_index: f.records.first().map(|r| r.record.index),
        last_index: f.records.last().map(|r| r.record.index),
        first_term: f.records.first().map(|r| r.record.term),
        last_term: f.records.last().map(|r| r.record.term),
        record_versions: versions,
        request_entries: count(Some(VALUE_TYPE_APP_LOG)),
        config_entries: count(Some(VALUE_TYPE_CONF)),
        other_entries: count(None),
        repeated_indexes: repeated,
        zstd_frames: f.zstd.as_ref().map(|z| z.frames.len()),
        last_frame_terminated: f.zstd.as_ref().map(|z| !z.last_frame_unterminated()),
        torn_zstd_block_at: f
            .zstd
            .as_ref()
            .and_then(|z| z.stop.as_ref())
            .filter(|s| s.at_eof)
            .map(|s| s.file_offset),
        broken: f.broken.as_ref().map(|b| JsonBreak {
            offset: b.offset,
            index: b.index,
            kind: kind_name(&b.kind),
            message: b.kind.to_string(),
        }),
        keeper,
    }
}

fn resume_name(from: u64, compress: bool) -> String {
    ChangelogName::new(
        from,
        from.saturating_add(keeperkit_wal::clickhouse::ROTATE_INTERVAL_DEFAULT - 1),
        compress,
    )
    .file_name()
}

fn startup_json(scan: &Scan) -> Option<JsonStartup> {
    scan.paths.log_dir.as_ref()?;
    let mut j = JsonStartup {
        last_committed: scan.last_committed,
        snapshot: scan.plan_snapshot.as_ref().map(|p| p.display().to_string()),
        reserved_log_items: RESERVED_LOG_ITEMS_DEFAULT,
        compress_logs: COMPRESS_LOGS,
        start_index: None,
        reads: Vec::new(),
        first_index: None,
        last_index: None,
        entries: 0,
        set_aside: Vec::new(),
        deletes: Vec::new(),
        broken_file: None,
        resume_append_to: None,
        resume_new_file_from: None,
        warnings: Vec::new(),
        refusal: None,
    };
    let dir = scan.paths.log_dir.as_deref().unwrap_or(Path::new("."));
    for m in &scan.listing.tmp_markers {
        j.deletes.push(dir.join(m).display().to_string());
        let partner = dir.join(m.trim_start_matches(TMP_PREFIX));
        if scan.listing.files.iter().any(|f| f.path == partner) {
            j.deletes.push(partner.display().to_string());
        }
    }
    for s in scan.snapshots.iter().filter(|s| s.incomplete) {
        j.deletes.push(s.path.display().to_string());
    }
    j.deletes.extend(scan.snap_markers.iter().map(|p| p.display().to_string()));
    match &scan.logs {
        Some(LogScan::Fatal(c)) => j.refusal = Some(format!("{c} (UNKNOWN_FORMAT_VERSION)")),
        Some(LogScan::Report(r)) => match &r.plan {
            Err(c) => j.refusal = Some(c.to_string()),
            Ok(plan) => {
                j.start_index = Some(plan.start_index);
                j.reads = r
                    .files
                    .iter()
                    .filter(|f| {
                        ChangelogName::parse(&file_name(&f.path))
                            .is_some_and(|n| n.to >= plan.start_index)
                    })
                    .map(|f| f.path.display().to_string())
                    .collect();
                j.first_index = plan.first_index();
                j.last_index = plan.last_index();
                j.entries = plan.entries.len() as u64;
                j.set_aside =
                    plan.detach.iter().map(|&i| r.files[i].path.display().to_string()).collect();
                j.broken_file = plan.broken_file.map(|i| r.files[i].path.display().to_string());
                match &plan.resume {
                    Resume::AppendTo(i) => {
                        j.resume_append_to = Some(r.files[*i].path.display().to_string());
                    }
                    Resume::NewFile { from } => j.resume_new_file_from = Some(*from),
                }
                j.warnings.clone_from(&plan.warnings);
            }
        },
        None => {}
    }
    Some(j)
}

fn keeper_fate(scan: &Scan, fi: usize) -> String {
    let Some(r) = scan.report() else { return String::new() };
    let f = &r.files[fi];
    let Ok(plan) = &r.plan else { return "Keeper refuses to start".into() };
    if scan.paths.changelog.is_some() {
        return match (&f.broken, f.records.is_empty()) {
            (Some(_), false) => "read up to the damage; the rest is ignored".into(),
            (Some(_), true) => "no readable record".into(),
            (None, _) => "read".into(),
        };
    }
    let in_scope =
        ChangelogName::parse(&file_name(&f.path)).is_some_and(|n| n.to >= plan.start_index);
    if plan.detach.contains(&fi) {
        "set aside to detached/ at startup".into()
    } else if !in_scope {
        format!("not read (ends before start index {})", plan.start_index)
    } else if plan.broken_file == Some(fi) {
        "read up to the damage, kept as is; writing resumes in a new file".into()
    } else if plan.resume == Resume::AppendTo(fi) {
        "read; writing resumes in it".into()
    } else if !plan.entries.iter().any(|e| e.1.file == fi) {
        "read; holds no entry that is loaded".into()
    } else {
        "read".into()
    }
}

fn inspect_json(scan: &Scan, problems: &[JsonProblem]) -> JsonChInspect {
    let files = scan.files();
    let changelogs: Vec<JsonChangelog> =
        files.iter().enumerate().map(|(i, f)| changelog_json(f, keeper_fate(scan, i))).collect();
    let lo = files.iter().filter_map(|f| f.records.iter().map(|r| r.record.index).min()).min();
    let hi = files.iter().filter_map(|f| f.records.iter().map(|r| r.record.index).max()).max();
    let dir = scan.paths.log_dir.as_deref().unwrap_or(Path::new("."));
    let mut markers: Vec<String> =
        scan.listing.tmp_markers.iter().map(|m| dir.join(m).display().to_string()).collect();
    markers.extend(scan.snap_markers.iter().map(|p| p.display().to_string()));
    let checksums_ok = files.iter().all(|f| {
        f.broken.as_ref().is_none_or(|b| matches!(b.kind, CorruptionKind::Truncated { .. }))
    }) && scan.snapshots.iter().all(|s| !matches!(s.read, Some(Err(_))))
        && !matches!(scan.logs, Some(LogScan::Fatal(_)));
    JsonChInspect {
        dialect: "clickhouse",
        path: scan.paths.root.display().to_string(),
        log_dir: scan.paths.log_dir.as_ref().map(|p| p.display().to_string()),
        snapshot_dir: scan.paths.snap_dir.as_ref().map(|p| p.display().to_string()),
        snapshots: scan.snapshots.iter().map(snapshot_json).collect(),
        changelogs,
        tmp_markers: markers,
        unknown_files: scan.listing.unknown.clone(),
        bad_names: scan.listing.bad_names.clone(),
        index_range: lo.zip(hi),
        startup: startup_json(scan),
        checksums_ok,
        errors: problems.iter().filter(|p| p.severity == "error").count(),
        warnings: problems.iter().filter(|p| p.severity == "warning").count(),
    }
}

fn print_inspect(out: &mut dyn Write, j: &JsonChInspect) -> std::io::Result<()> {
    let short = |p: &str| file_name(Path::new(p));
    writeln!(out, "dialect:      ClickHouse Keeper ({})", j.path)?;
    if let Some(d) = &j.log_dir {
        writeln!(out, "log dir:      {d}")?;
    }
    if let Some(d) = &j.snapshot_dir {
        writeln!(out, "snapshot dir: {d}")?;
    }
    if let Some((a, b)) = j.index_range {
        writeln!(out, "log indexes:  {a} .. {b}")?;
    }
    if !j.snapshots.is_empty() || j.snapshot_dir.is_some() {
        writeln!(out, "\nsnapshots ({}):", j.snapshots.len())?;
    }
    for s in &j.snapshots {
        let name = short(&s.file);
        if s.incomplete {
            writeln!(
                out,
                "  {name:<32} {:>10} B  INCOMPLETE (tmp_ marker): deleted at startup",
                s.file_len
            )?;
            continue;
        }
        if let Some(e) = &s.error {
            writeln!(out, "  {name:<32} {:>10} B  DAMAGED: {e}", s.file_len)?;
            continue;
        }
        writeln!(
            out,
            "  {name:<32} {:>10} B  {}{} V{} index {} term {} zxid {} nodes {} sessions {} \
             acls {} digest {}{}{}",
            s.file_len,
            s.container.unwrap_or("-"),
            s.block_method.as_deref().map(|m| format!("/{m}")).unwrap_or_default(),
            s.version.unwrap_or(0),
            s.last_log_idx.unwrap_or(0),
            s.last_log_term.unwrap_or(0),
            s.zxid_hex.as_deref().unwrap_or("(= index)"),
            s.nodes.unwrap_or(0),
            s.sessions.unwrap_or(0),
            s.acls.unwrap_or(0),
            match (s.digest_version, &s.digest) {
                (Some(v), Some(d)) if v != 0 => format!("v{v} {d}"),
                _ => "none".into(),
            },
            if s.content_ok == Some(false) { "  REFUSED BY KEEPER" } else { "" },
            if s.loaded_at_startup { "  (loaded at startup)" } else { "" },
        )?;
    }
    if !j.changelogs.is_empty() || j.log_dir.is_some() {
        writeln!(out, "\nchangelogs ({}):", j.changelogs.len())?;
    }
    for c in &j.changelogs {
        let range = match (c.first_index, c.last_index) {
            (Some(a), Some(b)) => format!("{a} .. {b}"),
            _ => "empty".into(),
        };
        let zstd = match (c.zstd_frames, c.last_frame_terminated) {
            (Some(n), Some(t)) => {
                format!(
                    "zstd {n} frame{}{}",
                    if n == 1 { "" } else { "s" },
                    if t { "" } else { ", last unterminated" }
                )
            }
            _ => "plain".into(),
        };
        let state = match (&c.broken, c.torn_zstd_block_at) {
            (Some(b), _) => format!("broken at byte {} ({})", b.offset, b.message),
            (None, Some(at)) => format!("torn zstd block at byte {at}"),
            (None, None) => "clean".into(),
        };
        let versions: Vec<String> = c.record_versions.iter().map(|v| format!("v{v}")).collect();
        writeln!(
            out,
            "  {:<32} {:>10} B  {zstd:<32} {:>7} records {} {range:<18} {state}; {}",
            short(&c.file),
            c.file_len,
            c.records,
            if versions.is_empty() { "-".to_string() } else { versions.join(",") },
            c.keeper
        )?;
    }
    for m in &j.tmp_markers {
        writeln!(out, "  tmp_ marker {m} (deleted at startup)")?;
    }
    for n in &j.bad_names {
        writeln!(out, "  BAD NAME {n} (Keeper refuses to start)")?;
    }
    if let Some(s) = &j.startup {
        writeln!(
            out,
            "\nstartup, as Keeper would (reserved_log_items {}, compress_logs {}):",
            s.reserved_log_items, s.compress_logs
        )?;
        writeln!(
            out,
            "  last committed index {} ({})",
            s.last_committed,
            s.snapshot.as_deref().map_or("no snapshot".to_string(), short)
        )?;
        if let Some(r) = &s.refusal {
            writeln!(out, "  REFUSES TO START: {r}")?;
        } else {
            writeln!(
                out,
                "  reads {} file(s) from index {}; loads {} entries{}",
                s.reads.len(),
                s.start_index.unwrap_or(1),
                s.entries,
                match (s.first_index, s.last_index) {
                    (Some(a), Some(b)) => format!(" ({a} .. {b})"),
                    _ => String::new(),
                }
            )?;
            for f in &s.set_aside {
                writeln!(out, "  sets aside {} (to detached/)", short(f))?;
            }
            if let Some(b) = &s.broken_file {
                writeln!(out, "  keeps {} as is, ignoring its damaged tail", short(b))?;
            }
            match (&s.resume_append_to, s.resume_new_file_from) {
                (Some(f), _) => writeln!(out, "  resumes writing in {}", short(f))?,
                (None, Some(n)) => writeln!(
                    out,
                    "  resumes writing in a new file {}",
                    resume_name(n, s.compress_logs)
                )?,
                _ => {}
            }
        }
        for d in &s.deletes {
            writeln!(out, "  deletes {}", short(d))?;
        }
        for w in &s.warnings {
            writeln!(out, "  warning: {w}")?;
        }
    }
    writeln!(
        out,
        "\nchecksums: {}; {} errors, {} warnings{}",
        if j.checksums_ok { "all ok" } else { "PROBLEMS" },
        j.errors,
        j.warnings,
        if j.errors + j.warnings > 0 { " (run keeperkit verify)" } else { "" }
    )?;
    Ok(())
}

/// `keeperkit inspect` on ClickHouse Keeper data.
pub fn inspect(
    fs: &dyn FileSystem,
    path: &Path,
    log_dir: Option<&Path>,
    json: bool,
    out: &mut dyn Write,
) -> CmdResult {
    let scan = scan(fs, locate(fs, path, log_dir)?, true)?;
    let problems = all_problems(&scan);
    let j = inspect_json(&scan, &problems);
    if json {
        super::json_doc(out, &j)?;
    } else {
        print_inspect(out, &j)?;
    }
    Ok(if j.errors == 0 { Outcome::Clean } else { Outcome::Found })
}

// ---------------------------------------------------------------------------------
// verify

/// `verify --json` of ClickHouse Keeper data.
#[derive(Debug, Serialize)]
pub struct JsonChVerify {
    /// Whether no error was found.
    pub ok: bool,
    /// Always `clickhouse`.
    pub dialect: &'static str,
    /// Files read (changelogs and snapshots).
    pub files_checked: usize,
    /// Changelog records whose checksum and payload were checked.
    pub records_checked: u64,
    /// Snapshots decoded and checked.
    pub snapshots_checked: usize,
    /// Snapshot digests recomputed and compared (digest versions 4 and 5), plus the
    /// digests of changelog entries compared while replaying them.
    pub digests_checked: usize,
    /// Changelog entries executed on the newest snapshot's tree with Keeper's
    /// semantics (the state Keeper would start with).
    pub entries_replayed: u64,
    /// Problems, errors first.
    pub problems: Vec<JsonProblem>,
}

fn verify_report(scan: &Scan) -> JsonChVerify {
    let problems = all_problems(scan);
    let read: Vec<&SnapshotInfo> = scan
        .snapshots
        .iter()
        .filter_map(|s| s.read.as_ref().and_then(|r| r.as_ref().ok()).map(|r| &r.0))
        .collect();
    JsonChVerify {
        ok: !problems.iter().any(|p| p.severity == "error"),
        dialect: "clickhouse",
        files_checked: scan.files().len()
            + scan.snapshots.iter().filter(|s| s.read.is_some()).count(),
        records_checked: scan.files().iter().map(|f| f.records.len() as u64).sum(),
        snapshots_checked: scan.snapshots.iter().filter(|s| s.read.is_some()).count(),
        digests_checked: read.iter().filter(|i| matches!(i.header.digest_version, 4 | 5)).count(),
        entries_replayed: 0,
        problems,
    }
}

/// Replays the log on the newest snapshot as Keeper starts
/// ([`keeperkit_storage::clickhouse::recover`]): an entry Keeper could not execute, or
/// whose digest disagrees with the tree after it, is an error.
fn replay_problems(fs: &dyn FileSystem, path: &Path, log_dir: Option<&Path>, r: &mut JsonChVerify) {
    use keeperkit_storage::clickhouse::{recover, ChLayout, ChRecoverOptions};
    let Ok(layout) = ChLayout::locate(fs, path, log_dir) else { return };
    let log = layout
        .log_dir
        .as_ref()
        .map_or_else(|| path.display().to_string(), |d| d.display().to_string());
    match recover(fs, &layout, &ChRecoverOptions::default()) {
        Ok(rec) => {
            r.entries_replayed = rec.entries_applied;
            r.digests_checked += usize::try_from(rec.digests_checked).unwrap_or(usize::MAX);
            for m in &rec.digest_mismatches {
                r.problems.push(JsonProblem {
                    severity: "error",
                    file: log.clone(),
                    offset: None,
                    index: Some(m.index),
                    kind: "digest_mismatch",
                    message: format!(
                        "after executing entry {} the tree's digest is {:#x}, the entry says \
                         {:#x} (Keeper reports \"Digest for nodes is not matching after \
                         applying request\"): the log and the snapshot do not describe the \
                         same history, or an entry was altered before its checksum was made",
                        m.index, m.computed, m.stored
                    ),
                });
            }
        }
        Err(e) => {
            let c = e.corruption();
            r.problems.push(JsonProblem {
                severity: "error",
                file: c.map_or(log, |c| c.file.display().to_string()),
                offset: c.map(|c| c.offset).filter(|&o| o != 0),
                index: c.and_then(|c| c.index),
                kind: "replay",
                message: format!(
                    "replaying the log on the newest snapshot as Keeper starts failed: {e}"
                ),
            });
        }
    }
    r.problems.sort_by_key(|p| p.severity != "error");
    r.ok = !r.problems.iter().any(|p| p.severity == "error");
}

fn print_problems(out: &mut dyn Write, problems: &[JsonProblem]) -> std::io::Result<()> {
    for p in problems {
        let pos = match (p.offset, p.index) {
            (Some(o), Some(i)) => format!(" at byte {o} (index {i})"),
            (Some(o), None) => format!(" at byte {o}"),
            (None, Some(i)) => format!(" (index {i})"),
            (None, None) => String::new(),
        };
        writeln!(out, "{}: {}{pos}: [{}] {}", p.severity, p.file, p.kind, p.message)?;
    }
    Ok(())
}

/// `keeperkit verify` on ClickHouse Keeper data.
pub fn verify(
    fs: &dyn FileSystem,
    path: &Path,
    log_dir: Option<&Path>,
    json: bool,
    out: &mut dyn Write,
) -> CmdResult {
    let paths = locate(fs, path, log_dir)?;
    let single_file = paths.changelog.is_some() || paths.snapshot.is_some();
    let scan = scan(fs, paths, true)?;
    let mut r = verify_report(&scan);
    // Replay only over files that load: every problem found so far is one Keeper stops
    // at (or ignores) before executing anything.
    if r.ok && !single_file {
        replay_problems(fs, path, log_dir, &mut r);
    }
    if json {
        super::json_doc(out, &r)?;
    } else {
        print_problems(out, &r.problems)?;
        writeln!(
            out,
            "{}: {} changelog records, {} snapshots, {} entries replayed ({} digests) checked; \
             {} errors, {} warnings",
            if r.ok { "OK" } else { "FAILED" },
            r.records_checked,
            r.snapshots_checked,
            r.entries_replayed,
            r.digests_checked,
            r.problems.iter().filter(|p| p.severity == "error").count(),
            r.problems.iter().filter(|p| p.severity == "warning").count(),
        )?;
    }
    Ok(if r.ok { Outcome::Clean } else { Outcome::Found })
}

// ---------------------------------------------------------------------------------
// repair

/// The state after a repair.
#[derive(Debug, Serialize)]
struct JsonAfter {
    ok: bool,
    problems: Vec<JsonProblem>,
}

/// `repair --json` (the native dialect's shape, plus the verification after).
#[derive(Debug, Serialize)]
struct JsonChRepair {
    applied: bool,
    backup_dir: Option<String>,
    actions: Vec<String>,
    backups: Vec<String>,
    refused: Vec<(JsonProblem, String)>,
    /// Damage Keeper handles by itself, left as it is.
    notes: Vec<String>,
    verify_after: Option<JsonAfter>,
}

fn describe_action(a: &RepairAction) -> String {
    match a {
        RepairAction::TerminateFrame { path, at } => format!(
            "end the unterminated zstd frame of {} by writing 01 00 00 at byte {at} (what Keeper \
             does before appending to it)",
            path.display()
        ),
        RepairAction::CutTail { path, keep_len, removed, last_index } => format!(
            "move the damaged tail of {} ({removed} bytes from byte {keep_len}, after index {}) \
             to the backup and cut the file there (Keeper ignores those bytes)",
            path.display(),
            last_index.map_or("none".to_string(), |i| i.to_string())
        ),
        RepairAction::SetAside { paths, entries_lost } => format!(
            "move {} to the backup (Keeper sets them aside or deletes them at startup){}",
            paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "),
            if *entries_lost > 0 {
                format!("; {entries_lost} entries in them are not in the log Keeper loads")
            } else {
                String::new()
            }
        ),
    }
}

/// The snapshot side of a repair: files to move, in a crash-safe order (an incomplete
/// snapshot before its marker, so that a crash never leaves it without one).
fn snapshot_moves(scan: &Scan) -> Vec<PathBuf> {
    let mut moves = Vec::new();
    for s in scan.snapshots.iter().filter(|s| s.incomplete) {
        moves.push(s.path.clone());
        if let Some(dir) = s.path.parent() {
            moves.push(dir.join(format!("{TMP_PREFIX}{}", file_name(&s.path))));
        }
    }
    moves.extend(scan.snap_markers.iter().cloned());
    moves
}

fn snapshot_refusals(scan: &Scan) -> Vec<(JsonProblem, String)> {
    snapshot_problems(scan)
        .into_iter()
        .filter(|p| p.severity == "error")
        .map(|p| {
            (
                p,
                "a damaged snapshot is never rewritten (its checksums would be recomputed over \
                 bad bytes); copy a sound snapshot and the logs after it from another replica, \
                 or move the file away yourself if an older snapshot and the logs cover it"
                    .to_string(),
            )
        })
        .collect()
}

fn log_plan(scan: &Scan) -> (Option<RepairPlan>, Vec<(JsonProblem, String)>) {
    match &scan.logs {
        None => (None, Vec::new()),
        Some(LogScan::Fatal(_)) => (
            None,
            log_problems(scan)
                .into_iter()
                .map(|p| {
                    (
                        p,
                        "Keeper cannot read a record version above 2 and aborts; nothing safe \
                         can be done here: restore the file from another replica"
                            .to_string(),
                    )
                })
                .collect(),
        ),
        Some(LogScan::Report(r)) => {
            let mut plan = plan_repair(r);
            // Markers last: a crash in between never leaves an incomplete copy unmarked.
            for a in &mut plan.actions {
                if let RepairAction::SetAside { paths, .. } = a {
                    paths.sort_by_key(|p| file_name(p).starts_with(TMP_PREFIX));
                }
            }
            // A torn file that Keeper reads past (the next file continues the log, as
            // Keeper writes it after a torn tail) needs nothing.
            let ok_as_is: Vec<String> = read_past(r)
                .into_iter()
                .map(|fi| format!("{}:", r.files[fi].path.display()))
                .collect();
            plan.refusals.retain(|why| !ok_as_is.iter().any(|f| why.starts_with(f)));
            let problems = log_problems(scan);
            let refused = plan
                .refusals
                .iter()
                .map(|why| {
                    let errors = || problems.iter().filter(|p| p.severity == "error");
                    let p = errors()
                        .find(|p| why.starts_with(&format!("{}:", p.file)))
                        .or_else(|| errors().next())
                        .cloned()
                        .unwrap_or_else(|| JsonProblem {
                            severity: "error",
                            file: scan
                                .paths
                                .log_dir
                                .as_ref()
                                .unwrap_or(&scan.paths.root)
                                .display()
                                .to_string(),
                            offset: None,
                            index: None,
                            kind: "refused",
                            message: why.clone(),
                        });
                    (
                        p,
                        format!(
                            "{why}; repair only does what Keeper itself would do at startup: \
                             restore the missing or damaged file from another replica"
                        ),
                    )
                })
                .collect();
            (Some(plan), refused)
        }
    }
}

/// Files that end in a torn write (a partial record or zstd block) which Keeper reads
/// past: entries of later files are loaded after them.
fn read_past(r: &VerifyReport) -> Vec<usize> {
    let Ok(plan) = &r.plan else { return Vec::new() };
    r.files
        .iter()
        .enumerate()
        .filter(|(fi, f)| {
            let torn = match &f.broken {
                Some(b) => matches!(b.kind, CorruptionKind::Truncated { .. }),
                None => f.zstd.as_ref().is_some_and(|z| z.stop.as_ref().is_some_and(|s| s.at_eof)),
            };
            torn && !plan.detach.contains(fi) && plan.entries.iter().any(|e| e.1.file > *fi)
        })
        .map(|(fi, _)| fi)
        .collect()
}

/// `keeperkit repair` on ClickHouse Keeper data: only what Keeper itself does at
/// startup (end an unterminated zstd frame, set a torn tail and the files after a
/// broken one aside, remove `tmp_` markers with their incomplete file), everything
/// removed moved to a backup first. A dry run unless `apply`.
pub fn repair(
    fs: &dyn FileSystem,
    path: &Path,
    apply: bool,
    backup: Option<&Path>,
    json: bool,
    out: &mut dyn Write,
) -> CmdResult {
    let paths = locate(fs, path, None)?;
    let root = if paths.changelog.is_some() || paths.snapshot.is_some() {
        path.parent().unwrap_or(Path::new(".")).to_path_buf()
    } else {
        path.to_path_buf()
    };
    let backup_dir =
        backup.map(Path::to_path_buf).unwrap_or_else(|| super::native::default_backup_dir(&root));
    if backup_dir.starts_with(&root) {
        return Err(Failure::usage(anyhow!(
            "the backup directory {} is inside the data directory",
            backup_dir.display()
        ))
        .hint("choose a directory outside the data directory with --backup DIR"));
    }
    let scan = scan(fs, paths, true)?;
    let (plan, mut refused) = log_plan(&scan);
    refused.extend(snapshot_refusals(&scan));
    let moves = snapshot_moves(&scan);
    let describe_move =
        |p: &Path| format!("move {} to the backup (Keeper deletes it at startup)", p.display());
    let mut report = JsonChRepair {
        applied: false,
        backup_dir: None,
        actions: plan
            .iter()
            .flat_map(|p| p.actions.iter().map(describe_action))
            .chain(moves.iter().map(|p| describe_move(p)))
            .collect(),
        backups: Vec::new(),
        refused,
        notes: scan
            .report()
            .map(|r| {
                read_past(r)
                    .into_iter()
                    .map(|i| {
                        format!(
                            "ok as is: {} ends with a partial write that Keeper reads past (the \
                             next file continues the log)",
                            r.files[i].path.display()
                        )
                    })
                    .collect()
            })
            .unwrap_or_default(),
        verify_after: None,
    };
    if apply && report.refused.is_empty() && !report.actions.is_empty() {
        report.actions.clear();
        // Files of a coordination dir keep their side in the backup.
        let side = |dir: &Option<PathBuf>| match dir {
            Some(d) if *d != root => backup_dir.join(file_name(d)),
            _ => backup_dir.clone(),
        };
        if let Some(plan) = plan.as_ref().filter(|p| !p.actions.is_empty()) {
            let log_backup = side(&scan.paths.log_dir);
            startup::apply_repair(fs, plan, &log_backup)?;
            for a in &plan.actions {
                report.actions.push(describe_action(a));
                match a {
                    RepairAction::CutTail { path, keep_len, .. } => report.backups.push(
                        log_backup
                            .join(format!("{}.tail-{keep_len}", file_name(path)))
                            .display()
                            .to_string(),
                    ),
                    RepairAction::SetAside { paths, .. } => {
                        for p in paths {
                            report.backups.push(
                                log_backup
                                    .join(keeperkit_wal::clickhouse::DETACHED_DIR)
                                    .join(file_name(p))
                                    .display()
                                    .to_string(),
                            );
                        }
                    }
                    RepairAction::TerminateFrame { .. } => {}
                }
            }
        }
        let snap_backup = side(&scan.paths.snap_dir);
        for p in &moves {
            let saved = super::native::move_to_backup(fs, p, &snap_backup)?;
            report.actions.push(describe_move(p));
            report.backups.push(saved.display().to_string());
        }
        report.applied = true;
        report.backup_dir = Some(backup_dir.display().to_string());
        let again = scan_again(fs, &scan.paths)?;
        let after = verify_report(&again);
        report.verify_after = Some(JsonAfter { ok: after.ok, problems: after.problems });
    }
    let after_ok = report.verify_after.as_ref().is_none_or(|a| a.ok);
    if json {
        super::json_doc(out, &report)?;
    } else {
        for n in &report.notes {
            writeln!(out, "{n}")?;
        }
        if report.actions.is_empty() && report.refused.is_empty() {
            writeln!(out, "nothing to repair: {} is sound", path.display())?;
        }
        let verb = if report.applied { "done" } else { "would" };
        for a in &report.actions {
            writeln!(out, "{verb}: {a}")?;
        }
        for b in &report.backups {
            writeln!(out, "backup: {b}")?;
        }
        for (p, why) in &report.refused {
            let at = p.offset.map(|o| format!(" at byte {o}")).unwrap_or_default();
            writeln!(out, "refused: {}{at}: {}\n  why: {why}", p.file, p.message)?;
        }
        if !report.applied && !report.actions.is_empty() && report.refused.is_empty() {
            writeln!(
                out,
                "dry run: nothing was changed; run again with --apply (backups go to {})",
                backup_dir.display()
            )?;
        }
        if !report.refused.is_empty() {
            writeln!(
                out,
                "nothing was changed: repair only does what Keeper itself would do at startup"
            )?;
        }
        if let Some(a) = &report.verify_after {
            print_problems(out, &a.problems)?;
            writeln!(
                out,
                "verify after repair: {}",
                if a.ok { "OK" } else { "FAILED (see the problems above)" }
            )?;
        }
    }
    Ok(if report.refused.is_empty() && after_ok && (report.applied || report.actions.is_empty()) {
        Outcome::Clean
    } else {
        Outcome::Found
    })
}

fn scan_again(fs: &dyn FileSystem, paths: &ChPaths) -> Result<Scan, Failure> {
    scan(fs, paths.clone(), true)
}
