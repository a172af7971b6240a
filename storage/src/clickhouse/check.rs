//! Checking and repairing ClickHouse Keeper data through the seam.
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

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use keeperkit_model::{Corruption, CorruptionKind};
use keeperkit_snapshot::clickhouse::{
    self as chsnap, check_contents, ContentProblem, SnapshotContents, SnapshotInfo,
};
use keeperkit_snapshot::SnapshotError;
use keeperkit_vfs::FileSystem;
use keeperkit_wal::clickhouse::startup::{
    self, plan_repair, plan_startup, ProblemKind, RepairAction, RepairPlan, VerifyReport,
};
use keeperkit_wal::clickhouse::{
    list_changelogs, read_file, ChangelogFile, ChangelogName, Listing, ReadOptions,
    RESERVED_LOG_ITEMS_DEFAULT, TMP_PREFIX,
};
use keeperkit_wal::WalError;

use crate::findings::{Code, Finding, Severity};
use crate::report::{CheckReport, Refusal};
use crate::{Dialect, StorageError};
use keeperkit_snapshot::clickhouse::Severity as ContentSeverity;

/// `compress_logs` as current Keeper defaults it: decides whether a clean, short last
/// file is appended to or followed by a new one.
pub(crate) const COMPRESS_LOGS: bool = false;

pub(crate) use super::layout::file_name;
use super::layout::ChLayout;

// ---------------------------------------------------------------------------------
// Reading everything.

/// A snapshot file and what reading it gave.
#[derive(Debug)]
pub(crate) struct SnapScan {
    pub(crate) path: PathBuf,
    pub(crate) index: u64,
    pub(crate) file_len: u64,
    /// A `tmp_` marker names it: an incomplete snapshot Keeper deletes (not read).
    pub(crate) incomplete: bool,
    /// The one Keeper loads at startup (the newest complete one).
    pub(crate) newest: bool,
    /// `None` when not read (incomplete).
    pub(crate) read: Option<Result<(SnapshotInfo, Vec<ContentProblem>), Corruption>>,
}

/// The changelog side.
#[derive(Debug)]
pub(crate) enum LogScan {
    /// Read, with Keeper's startup decisions.
    Report(Box<VerifyReport>),
    /// A record version Keeper does not know: it aborts, nothing else can be said.
    Fatal(Corruption),
}

#[derive(Debug)]
pub(crate) struct Scan {
    pub(crate) layout: ChLayout,
    /// Keeper's last committed index (the newest complete snapshot's index, 0 if none).
    pub(crate) last_committed: u64,
    /// The snapshot that index comes from.
    pub(crate) plan_snapshot: Option<PathBuf>,
    pub(crate) snapshots: Vec<SnapScan>,
    /// `tmp_` markers of the snapshot dir without a partner.
    pub(crate) snap_markers: Vec<PathBuf>,
    pub(crate) logs: Option<LogScan>,
    pub(crate) listing: Listing,
}

impl Scan {
    pub(crate) fn report(&self) -> Option<&VerifyReport> {
        match &self.logs {
            Some(LogScan::Report(r)) => Some(r),
            _ => None,
        }
    }

    pub(crate) fn files(&self) -> &[ChangelogFile] {
        self.report().map_or(&[], |r| &r.files[..])
    }
}

/// The complete snapshots of a dir (as `(index, path)`) and its `tmp_` markers split
/// into those naming a snapshot (incomplete) and lone ones.
#[allow(clippy::type_complexity)]
fn snapshot_listing(
    fs: &dyn FileSystem,
    dir: &Path,
) -> Result<(Vec<(u64, PathBuf, bool)>, Vec<PathBuf>), StorageError> {
    let (files, markers) = chsnap::list_snapshots(fs, dir).map_err(StorageError::from)?;
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

/// Collects a snapshot's contents for [`check_contents`], keeping one record per path
/// (the last, as Keeper does): memory follows the distinct nodes, so a body that
/// repeats one record millions of times (a zeroed body reads as empty paths) costs one
/// record. The repeats become the warnings `check_contents` would give.
struct Distinct {
    contents: SnapshotContents,
    at: HashMap<String, usize>,
    repeated: Vec<String>,
    repeats: u64,
}

/// Repeated paths named one by one in the findings; the rest are counted.
const REPEATS_NAMED: usize = 20;

impl chsnap::ClickHouseSnapshotSink for Distinct {
    fn header(&mut self, header: &chsnap::SnapshotHeader) -> Result<(), String> {
        self.contents.header(header)
    }
    fn acl(&mut self, id: u64, acls: keeperkit_model::AclList) -> Result<(), String> {
        self.contents.acl(id, acls)
    }
    fn node(&mut self, node: &chsnap::NodeRecord<'_>) -> Result<(), String> {
        match self.at.get(node.path) {
            Some(&i) => {
                self.repeats += 1;
                if self.repeated.len() < REPEATS_NAMED
                    && !self.repeated.iter().any(|p| p == node.path)
                {
                    self.repeated.push(node.path.to_owned());
                }
                // The last record wins; it takes the place of the first.
                self.contents.nodes[i] = chsnap::OwnedNode {
                    path: node.path.to_owned(),
                    data: node.data.to_vec(),
                    acl_id: node.acl_id,
                    stat: node.stat,
                    seq_num: node.seq_num,
                    ttl_ms: node.ttl_ms,
                };
                Ok(())
            }
            None => {
                self.at.insert(node.path.to_owned(), self.contents.nodes.len());
                self.contents.node(node)
            }
        }
    }
    fn session(&mut self, session: chsnap::SessionRecord) -> Result<(), String> {
        self.contents.session(session)
    }
    fn cluster_config(
        &mut self,
        config: keeperkit_model::keeper::nuraft::ClusterConfig,
    ) -> Result<(), String> {
        self.contents.cluster_config(config)
    }
}

fn read_snapshot(fs: &dyn FileSystem, path: &Path) -> Result<SnapScanRead, StorageError> {
    let mut sink = Distinct {
        contents: SnapshotContents::new(chsnap::SnapshotHeader {
            version: 0,
            meta: Default::default(),
            zxid: None,
            digest_version: 0,
            digest: None,
            session_id_counter: 0,
        }),
        at: HashMap::new(),
        repeated: Vec::new(),
        repeats: 0,
    };
    match chsnap::read_snapshot(fs, path, &mut sink, chsnap::ReadOptions::default()) {
        Ok(info) => {
            let mut problems: Vec<ContentProblem> = sink
                .repeated
                .iter()
                .map(|p| ContentProblem {
                    severity: ContentSeverity::Warning,
                    path: Some(p.clone()),
                    message: "path appears more than once; the last record wins".into(),
                })
                .collect();
            let unnamed = sink.repeats.saturating_sub(sink.repeated.len() as u64);
            if unnamed > 0 {
                problems.push(ContentProblem {
                    severity: ContentSeverity::Warning,
                    path: None,
                    message: format!(
                        "{unnamed} more records repeat a path; the last record of each wins"
                    ),
                });
            }
            problems.extend(check_contents(&sink.contents));
            Ok(Ok((info, problems)))
        }
        Err(SnapshotError::Corrupt(c)) => Ok(Err(c)),
        Err(e) => Err(StorageError::from(e)),
    }
}

type SnapScanRead = Result<(SnapshotInfo, Vec<ContentProblem>), Corruption>;

pub(crate) fn scan(
    fs: &dyn FileSystem,
    layout: ChLayout,
    read_snapshots: bool,
) -> Result<Scan, StorageError> {
    let mut snapshots = Vec::new();
    let mut snap_markers = Vec::new();
    if let Some(dir) = &layout.snapshot_dir {
        let (files, lone) = snapshot_listing(fs, dir)?;
        snap_markers = lone;
        for (index, path, incomplete) in files {
            let file_len = fs
                .metadata(&path)
                .map_err(|source| StorageError::Io { path: path.clone(), source })?
                .len;
            snapshots.push(SnapScan {
                path,
                index,
                file_len,
                incomplete,
                newest: false,
                read: None,
            });
        }
    } else if let Some(path) = &layout.snapshot_file {
        let index = chsnap::parse_snapshot_name(&file_name(path)).unwrap_or(0);
        let file_len = fs
            .metadata(path)
            .map_err(|source| StorageError::Io { path: path.clone(), source })?
            .len;
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
    if layout.snapshot_dir.is_some() && layout.committed_snapshot_dir == layout.snapshot_dir {
        if let Some(s) = snapshots.iter_mut().rev().find(|s| !s.incomplete) {
            s.newest = true;
            last_committed = s.index;
            plan_snapshot = Some(s.path.clone());
        }
    } else if let Some(dir) = &layout.committed_snapshot_dir {
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
    let logs = if let Some(dir) = &layout.log_dir {
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
                if layout.snapshot_dir.as_ref() == Some(dir) {
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
    } else if let Some(path) = &layout.changelog_file {
        Some(single_changelog(fs, path)?)
    } else {
        None
    };
    Ok(Scan { layout, last_committed, plan_snapshot, snapshots, snap_markers, logs, listing })
}

/// One changelog file alone, checked as if a snapshot covered everything before it.
fn single_changelog(fs: &dyn FileSystem, path: &Path) -> Result<LogScan, StorageError> {
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

/// A finding as the checks below build it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct JsonProblem {
    pub(crate) severity: Severity,
    pub(crate) file: String,
    pub(crate) offset: Option<u64>,
    pub(crate) index: Option<u64>,
    pub(crate) kind: Code,
    pub(crate) message: String,
}

impl From<JsonProblem> for Finding {
    fn from(p: JsonProblem) -> Finding {
        Finding {
            severity: p.severity,
            code: p.kind,
            file: Some(PathBuf::from(p.file)),
            offset: p.offset,
            position: p.index.map(crate::findings::Position::Index),
            message: p.message,
        }
    }
}

pub(crate) fn stream_note(f: Option<&ChangelogFile>) -> &'static str {
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
                severity: Severity::Error,
                file: c.file.display().to_string(),
                offset: Some(c.offset),
                index: c.index,
                kind: Code::from(&c.kind),
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
        report.read_past().into_iter().map(|i| report.files[i].path.as_path()).collect();
    let last_file = report.files.last().map(|f| f.path.as_path());
    for p in &report.problems {
        let file = p.file.display().to_string();
        let f = file_of(&p.file);
        // A write cut short can only be in the last file, or in one the next file
        // continues (Keeper restarted and wrote on); any other cut lost entries.
        let cut_not_torn = Some(p.file.as_path()) != last_file
            && !read_past.contains(&p.file.as_path())
            && matches!(
                p.kind,
                ProblemKind::Broken(CorruptionKind::Truncated { .. }) | ProblemKind::TornZstdBlock
            );
        let (severity, kind, message) = match &p.kind {
            _ if cut_not_torn => (
                Severity::Error,
                Code::Truncated,
                format!(
                    "the file is cut short{} though later files exist and none continues it: \
                     the entries it held after the cut are lost from the log (Keeper sets \
                     the file aside); restore it from another replica",
                    p.index.map(|i| format!(" at index {i}")).unwrap_or_default()
                ),
            ),
            ProblemKind::Broken(k @ CorruptionKind::Truncated { .. })
                if read_past.contains(&p.file.as_path()) =>
            {
                (
                    Severity::Warning,
                    Code::TornTail,
                    format!(
                        "the file ends with a partial record{} ({k}): a write cut short, never \
                         acknowledged; Keeper ignores it and reads on in the next file, which \
                         continues the log; nothing to repair",
                        p.index.map(|i| format!(" of index {i}")).unwrap_or_default()
                    ),
                )
            }
            ProblemKind::Broken(k @ CorruptionKind::Truncated { .. }) => (
                Severity::Warning,
                Code::TornTail,
                format!(
                    "the file ends with a partial record{} ({k}): a write cut short, never \
                     acknowledged; Keeper ignores it and writes on in a new file; `keeperkit \
                     repair --apply` moves the partial bytes to a backup",
                    p.index.map(|i| format!(" of index {i}")).unwrap_or_default()
                ),
            ),
            ProblemKind::Broken(k) => (
                Severity::Error,
                Code::from(k),
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
                Severity::Warning,
                Code::TornTail,
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
                Severity::Warning,
                Code::UnterminatedFrame,
                "the last zstd frame is not terminated (Keeper stopped without finishing the \
                 file); Keeper writes 01 00 00 before appending to it; `keeperkit repair \
                 --apply` does the same, after which the zstd tool can read it too"
                    .to_string(),
            ),
            ProblemKind::RepeatedIndex => (
                Severity::Warning,
                Code::RepeatedIndex,
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
                        Severity::Error,
                        Code::WouldDetach,
                        format!(
                            "Keeper would move this file to detached/ at startup and lose \
                             {lost} entries after the last committed index {} that it holds \
                             (the node must fetch them from another replica)",
                            scan.last_committed
                        ),
                    )
                } else {
                    (
                        Severity::Warning,
                        Code::WouldDetach,
                        format!(
                            "Keeper would move this file to detached/ at startup: every entry \
                             in it is in the snapshot (index {}) or in the log it loads",
                            scan.last_committed
                        ),
                    )
                }
            }
            ProblemKind::Refusal(msg) => (
                Severity::Error,
                Code::StartupRefused,
                format!(
                    "Keeper refuses to start: {msg}; a changelog is missing or was cut short: \
                     restore it from another replica, or start this node from a newer snapshot"
                ),
            ),
            ProblemKind::BadName => (
                Severity::Error,
                Code::BadName,
                "the name starts with `changelog` but is not changelog_<from>_<to>.bin[.zstd]: \
                 Keeper refuses to start; rename or move the file"
                    .to_string(),
            ),
            ProblemKind::TmpMarker => (
                Severity::Warning,
                Code::Leftover,
                "a tmp_ marker left by an interrupted copy; Keeper deletes it at startup"
                    .to_string(),
            ),
            ProblemKind::IncompleteCopy => (
                Severity::Warning,
                Code::IncompleteCopy,
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
                        severity: if preprocessed { Severity::Error } else { Severity::Warning },
                        file: f.path.display().to_string(),
                        offset: Some(c.offset),
                        index: Some(r.record.index),
                        kind: Code::from(&c.kind),
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
                severity: Severity::Warning,
                file: scan
                    .layout
                    .log_dir
                    .as_ref()
                    .unwrap_or(&scan.layout.root)
                    .display()
                    .to_string(),
                offset: None,
                index: None,
                kind: Code::StartupWarning,
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
                severity: Severity::Warning,
                file: file.clone(),
                offset: None,
                index: Some(s.index),
                kind: Code::IncompleteSnapshot,
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
                severity: Severity::Error,
                file,
                offset: Some(c.offset),
                index: Some(s.index),
                kind: Code::from(&c.kind),
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
                        severity: Severity::Warning,
                        file: file.clone(),
                        offset: None,
                        index: Some(s.index),
                        kind: Code::NameMismatch,
                        message: format!(
                            "the file is named for index {} but covers the log up to index {}",
                            s.index, info.header.meta.last_log_idx
                        ),
                    });
                }
                for p in problems {
                    let fatal = p.severity == ContentSeverity::Fatal;
                    out.push(JsonProblem {
                        severity: if fatal { Severity::Error } else { Severity::Warning },
                        file: file.clone(),
                        offset: None,
                        index: Some(s.index),
                        kind: if fatal { Code::SnapshotRefused } else { Code::SnapshotContent },
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
            severity: Severity::Warning,
            file: m.display().to_string(),
            offset: None,
            index: None,
            kind: Code::Leftover,
            message: "a tmp_ marker without its snapshot; Keeper deletes it at startup".into(),
        });
    }
    out
}

pub(crate) fn all_problems(scan: &Scan) -> Vec<JsonProblem> {
    let mut p = snapshot_problems(scan);
    p.extend(log_problems(scan));
    p.sort_by(|a, b| {
        (a.severity != Severity::Error, &a.file, a.offset).cmp(&(
            b.severity != Severity::Error,
            &b.file,
            b.offset,
        ))
    });
    p
}

// ---------------------------------------------------------------------------------
// verify

/// Checks ClickHouse Keeper data at `path`: every changelog record and snapshot, Keeper's
/// startup decisions, then (when nothing so far stops Keeper) the replay of the log on
/// the newest snapshot as Keeper starts.
pub(crate) fn check(
    fs: &dyn FileSystem,
    layout: &ChLayout,
    progress: &mut dyn crate::progress::Progress,
) -> Result<CheckReport, StorageError> {
    progress.phase("checking every file");
    let scan = scan(fs, layout.clone(), true)?;
    let mut r = verify_report(fs, &scan, &layout.root);
    if r.findings.iter().all(|f| f.severity != Severity::Error) && !layout.is_single_file() {
        replay_problems(fs, layout, &mut r, progress);
    }
    Ok(r.finish())
}

fn verify_report(fs: &dyn FileSystem, scan: &Scan, path: &Path) -> CheckReport {
    let read: Vec<&SnapshotInfo> = scan
        .snapshots
        .iter()
        .filter_map(|s| s.read.as_ref().and_then(|r| r.as_ref().ok()).map(|r| &r.0))
        .collect();
    let mut r = CheckReport::new(Dialect::ClickHouse, path);
    r.files_checked =
        scan.files().len() + scan.snapshots.iter().filter(|s| s.read.is_some()).count();
    r.records_checked = scan.files().iter().map(|f| f.records.len() as u64).sum();
    r.snapshots_checked = scan.snapshots.iter().filter(|s| s.read.is_some()).count();
    r.digests_checked =
        read.iter().filter(|i| matches!(i.header.digest_version, 4 | 5)).count() as u64;
    r.findings = all_problems(scan).into_iter().map(Finding::from).collect();
    let data_like = |n: &str| {
        let n = n.strip_prefix(TMP_PREFIX).unwrap_or(n);
        n.starts_with("changelog_") || n.starts_with("snapshot_")
    };
    let mut dirs: Vec<&PathBuf> = scan.layout.log_dir.iter().collect();
    dirs.extend(
        scan.layout.snapshot_dir.iter().filter(|d| Some(*d) != scan.layout.log_dir.as_ref()),
    );
    for d in dirs {
        r.findings.extend(crate::findings::data_named_dirs(fs, d, data_like));
    }
    let fatal = matches!(scan.logs, Some(LogScan::Fatal(_)));
    if scan.snapshots.is_empty()
        && scan.files().is_empty()
        && !fatal
        && scan.layout.changelog_file.is_none()
    {
        r.findings.push(
            Finding::new(
                Severity::Error,
                Code::NoData,
                "no snapshot and no changelog: the directory holds no state at all (a lost \
                 volume, or the wrong directory); a fresh Keeper has nothing here either, but \
                 a check cannot say that any data is sound",
            )
            .file(path),
        );
    }
    r
}

/// Replays the log on the newest snapshot as Keeper starts ([`super::recover`]): an
/// entry Keeper could not execute, or whose digest disagrees with the tree after it, is
/// an error.
fn replay_problems(
    fs: &dyn FileSystem,
    layout: &ChLayout,
    r: &mut CheckReport,
    progress: &mut dyn crate::progress::Progress,
) {
    use super::{recover_with, ChRecoverOptions};
    let path = layout.root.as_path();
    let log = layout.log_dir.clone().unwrap_or_else(|| path.to_path_buf());
    match recover_with(fs, layout, &ChRecoverOptions::default(), progress) {
        Ok(rec) => {
            r.entries_replayed = rec.entries_applied;
            r.digests_checked += rec.digests_checked;
            for m in &rec.digest_mismatches {
                r.findings.push(
                    Finding::new(
                        Severity::Error,
                        Code::DigestMismatch,
                        format!(
                            "after executing entry {} the tree's digest is {:#x}, the entry says \
                             {:#x} (Keeper reports \"Digest for nodes is not matching after \
                             applying request\"): the log and the snapshot do not describe the \
                             same history, or an entry was altered before its checksum was made",
                            m.index, m.computed, m.stored
                        ),
                    )
                    .file(&log)
                    .index(m.index),
                );
            }
            for n in rec.notes.iter().filter(|n| n.severity == Severity::Error) {
                r.findings.push(n.clone());
            }
        }
        Err(e) => {
            let c = e.corruption();
            let mut f = Finding::new(
                Severity::Error,
                Code::EntryRefused,
                format!("replaying the log on the newest snapshot as Keeper starts failed: {e}"),
            )
            .file(c.map_or(log, |c| c.file.clone()))
            .offset_opt(c.map(|c| c.offset).filter(|&o| o != 0));
            f.position = c.and_then(|c| c.index).map(crate::findings::Position::Index);
            r.findings.push(f);
        }
    }
}

// ---------------------------------------------------------------------------------
// repair

/// A ClickHouse Keeper repair, ready to apply.
#[derive(Debug)]
pub(crate) struct ChRepair {
    plan: Option<RepairPlan>,
    moves: Vec<PathBuf>,
    log_backup: PathBuf,
    snap_backup: PathBuf,
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
        .filter(|p| p.severity == Severity::Error)
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
            // `log_problems` lists the report's problems first, one finding each and in
            // order: a refusal's problem is the finding at the same position.
            let problems = log_problems(scan);
            let refused =
                plan.refusals
                    .iter()
                    .map(|why| {
                        let p = why.problem.and_then(|i| problems.get(i)).cloned().unwrap_or_else(
                            || JsonProblem {
                                severity: Severity::Error,
                                file: why.file.display().to_string(),
                                offset: None,
                                index: None,
                                kind: Code::StartupRefused,
                                message: why.to_string(),
                            },
                        );
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

/// Plans a repair of ClickHouse Keeper data: only what Keeper itself does at startup
/// (end an unterminated zstd frame, set a torn tail and the files after a broken one
/// aside, remove `tmp_` markers with their incomplete file), everything removed moved to
/// a backup first.
pub(crate) fn plan(
    fs: &dyn FileSystem,
    layout: &ChLayout,
    backup_dir: &Path,
) -> Result<crate::repair::Planned<ChRepair>, StorageError> {
    let root = crate::repair::root_of(fs, &layout.root);
    crate::repair::check_backup_dir(&root, backup_dir)?;
    let scan = scan(fs, layout.clone(), true)?;
    let (plan, mut refused) = log_plan(&scan);
    refused.extend(snapshot_refusals(&scan));
    let mut moves = snapshot_moves(&scan);
    // An incomplete snapshot when there is no complete one and the log does not start at
    // index 1 may be the only copy of the state (a marker left over after a finished
    // write): removing it loses that state.
    let complete = scan.snapshots.iter().any(|s| !s.incomplete);
    let log_from_1 =
        scan.files().iter().any(|f| f.records.first().is_some_and(|r| r.record.index <= 1));
    for s in scan.snapshots.iter().filter(|s| s.incomplete) {
        if complete || log_from_1 {
            continue;
        }
        let marker = s.path.parent().map(|d| d.join(format!("{TMP_PREFIX}{}", file_name(&s.path))));
        moves.retain(|m| *m != s.path && Some(m) != marker.as_ref());
        refused.push((
            JsonProblem {
                severity: Severity::Error,
                file: s.path.display().to_string(),
                offset: None,
                index: Some(s.index),
                kind: Code::IncompleteSnapshot,
                message: "a tmp_ marker says this snapshot is incomplete, and there is no \
                          complete snapshot nor a log from index 1: Keeper deletes it and \
                          starts from less"
                    .into(),
            },
            "removing it would lose the newest state the files hold; if `keeperkit inspect` \
             reads it whole, remove only its tmp_ marker by hand; otherwise restore the \
             coordination directory from another replica"
                .to_string(),
        ));
    }
    let actions = plan
        .iter()
        .flat_map(|p| p.actions.iter().map(describe_action))
        .chain(moves.iter().map(|p| describe_move(p)))
        .collect();
    let notes = scan
        .report()
        .map(|r| {
            r.read_past()
                .into_iter()
                .map(|i| {
                    format!(
                        "ok as is: {} ends with a partial write that Keeper reads past (the next \
                         file continues the log)",
                        r.files[i].path.display()
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    // Files of a coordination dir keep their side in the backup.
    let side = |dir: &Option<PathBuf>| match dir {
        Some(d) if *d != root => backup_dir.join(file_name(d)),
        _ => backup_dir.to_path_buf(),
    };
    let inner = ChRepair {
        log_backup: side(&scan.layout.log_dir),
        snap_backup: side(&scan.layout.snapshot_dir),
        plan,
        moves,
    };
    let refused =
        refused.into_iter().map(|(p, reason)| Refusal { finding: p.into(), reason }).collect();
    Ok((actions, refused, notes, inner))
}

fn describe_move(p: &Path) -> String {
    format!("move {} to the backup (Keeper deletes it at startup)", p.display())
}

/// Applies a planned repair; returns what was done and the backups made.
pub(crate) fn apply_repair(
    fs: &dyn FileSystem,
    r: ChRepair,
) -> Result<(Vec<String>, Vec<String>), StorageError> {
    let (mut actions, mut backups) = (Vec::new(), Vec::new());
    if let Some(plan) = r.plan.as_ref().filter(|p| !p.actions.is_empty()) {
        startup::apply_repair(fs, plan, &r.log_backup)?;
        for a in &plan.actions {
            actions.push(describe_action(a));
            match a {
                RepairAction::CutTail { path, keep_len, .. } => backups.push(
                    r.log_backup
                        .join(format!("{}.tail-{keep_len}", file_name(path)))
                        .display()
                        .to_string(),
                ),
                RepairAction::SetAside { paths, .. } => {
                    for p in paths {
                        backups.push(
                            r.log_backup
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
    for p in &r.moves {
        let saved = crate::repair::move_to_backup(fs, p, &r.snap_backup)?;
        actions.push(describe_move(p));
        backups.push(saved.display().to_string());
    }
    Ok((actions, backups))
}
