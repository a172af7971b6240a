//! Keeper's startup rules over a log directory, verification and safe repair.
//!
//! [`plan_startup`] replays the decisions of current Keeper's
//! `Changelog::readChangelogAndInitWriter` and `finalizeChangelogsAfterRead`
//! (docs/formats/clickhouse.md, "Startup rules", 2026 code; PR #94168 made gaps fatal instead of auto-cleaning):
//!
//! 1. reading starts at `start = max(1, last_committed + 1 − reserved_log_items)`;
//!    files with `to < start` are not opened;
//! 2. the first file read must start at `≤ last_committed + 1`, else Keeper refuses
//!    ("Some records were lost ...");
//! 3. a later file starting after `last_read + 1` is a gap: covered by the snapshot
//!    (`from ≤ last_committed`) ⇒ every earlier file is set aside and reading goes on;
//!    after a file that ended with an error ⇒ reading stops (torn tail); otherwise
//!    Keeper refuses;
//! 4. within files, a repeated index drops everything from that index on, then the
//!    record is added (the last occurrence wins);
//! 5. a file that yields no record at or after `start` is skipped;
//! 6. finally: nothing read, or the last index below `last_committed` ⇒ every file is
//!    set aside; a last file that is broken or shorter than its name range ⇒ the files
//!    after it are set aside; a broken last file is kept as it is and writing resumes
//!    in a new file at `last + 1`; a clean short one is appended to (if its
//!    compression matches); a full one is followed by a new file.
//!
//! "Set aside" is Keeper's move to `detached/<timestamp>/`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use keeperkit_model::{Corruption, CorruptionKind};
use keeperkit_vfs::{FileSystem, OpenMode};

use super::zstd_stream::FRAME_TERMINATOR;
use super::{list_changelogs, read_file, ChangelogFile, ChangelogName, ReadOptions, DETACHED_DIR};
use crate::error::WalError;

/// Where an entry of the loaded log lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryLoc {
    /// Position of the file in the slice given to [`plan_startup`].
    pub file: usize,
    /// Position of the record in that file's `records`.
    pub record: usize,
}

/// Where Keeper would write the next entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resume {
    /// Continue in this file (a clean file not yet full, same compression).
    AppendTo(usize),
    /// Start a new file at this index.
    NewFile {
        /// First index of the new file.
        from: u64,
    },
}

/// What Keeper would do with a log directory at startup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartupPlan {
    /// First index Keeper reads (`last_committed + 1 − reserved`, at least 1).
    pub start_index: u64,
    /// The loaded log, ascending by index (the last occurrence of each index).
    pub entries: Vec<(u64, EntryLoc)>,
    /// Files Keeper would move to `detached/`.
    pub detach: Vec<usize>,
    /// The last file read, when it ended with an error (kept as is, `broken_at_end`).
    pub broken_file: Option<usize>,
    /// Where writing resumes.
    pub resume: Resume,
    /// Keeper's warnings (e.g. fewer reserved entries than configured).
    pub warnings: Vec<String>,
}

impl StartupPlan {
    /// First loaded index.
    pub fn first_index(&self) -> Option<u64> {
        self.entries.first().map(|e| e.0)
    }

    /// Last loaded index.
    pub fn last_index(&self) -> Option<u64> {
        self.entries.last().map(|e| e.0)
    }
}

fn lost(file: &ChangelogFile, msg: String) -> Corruption {
    Corruption::new(&file.path, 0, CorruptionKind::sequence_break(msg))
}

fn name_of(f: &ChangelogFile) -> Option<ChangelogName> {
    f.path.file_name().and_then(|n| n.to_str()).and_then(ChangelogName::parse)
}

/// Applies Keeper's startup rules (module docs) to files sorted by `from` (as
/// [`list_changelogs`] sorts them) and read with [`read_file`]. `compress_logs` is the
/// setting Keeper would run with (it decides whether a short clean last file is
/// appended to).
///
/// `Err` is Keeper's refusal to start (CORRUPTED_DATA "Some records were lost"), with
/// the file and the index it concerns.
pub fn plan_startup(
    files: &[ChangelogFile],
    last_committed: u64,
    reserved_log_items: u64,
    compress_logs: bool,
) -> Result<StartupPlan, Corruption> {
    let start = last_committed.saturating_add(1).saturating_sub(reserved_log_items).max(1);
    let mut map: BTreeMap<u64, EntryLoc> = BTreeMap::new();
    let mut detach = Vec::new();
    let mut warnings = Vec::new();
    let mut last_file: Option<usize> = None;
    let mut last_read: u64 = 0;
    let mut last_incomplete = false;
    let mut first_checked = false;
    let mut stopped_at: Option<usize> = None;
    for (fi, f) in files.iter().enumerate() {
        let Some(name) = name_of(f) else { continue };
        if name.to < start {
            continue;
        }
        if !first_checked {
            first_checked = true;
            if name.from > last_committed.saturating_add(1) {
                return Err(lost(
                    f,
                    format!(
                        "Some records were lost, last committed log index {last_committed}, \
                         smallest available log index on disk {}",
                        name.from
                    ),
                )
                .with_index(name.from));
            }
            if name.from > start {
                warnings.push(format!(
                    "Don't have required amount of reserved log records: need to start from \
                     {start}, smallest on disk is {}",
                    name.from
                ));
            }
        } else if last_file.is_some() && name.from > last_read.saturating_add(1) {
            if name.from <= last_committed {
                // Covered by the snapshot: everything before is set aside.
                detach.extend(0..fi);
                map.clear();
                last_file = None;
            } else if last_incomplete && files[last_file.unwrap_or(0)].broken.is_some() {
                stopped_at = Some(fi);
                break;
            } else {
                return Err(lost(
                    f,
                    format!(
                        "Some records were lost, last found log index {last_read}, while the \
                         next log index on disk is {}",
                        name.from
                    ),
                )
                .with_index(name.from));
            }
        }
        let mut any = false;
        let mut last_in_file = 0;
        for (ri, r) in f.records.iter().enumerate() {
            let idx = r.record.index;
            if idx < start {
                continue;
            }
            if map.contains_key(&idx) {
                map.split_off(&idx);
            }
            map.insert(idx, EntryLoc { file: fi, record: ri });
            any = true;
            last_in_file = idx;
        }
        if !any {
            continue;
        }
        last_file = Some(fi);
        last_read = last_in_file;
        // Keeper drops in-memory entries after the last record read from this file.
        if let Some(next) = last_in_file.checked_add(1) {
            map.split_off(&next);
        }
        last_incomplete = f.broken.is_some() || (f.records.len() as u64) < name.range_len();
    }
    let all: Vec<usize> = (0..files.len()).filter(|&i| name_of(&files[i]).is_some()).collect();
    let Some(lf) = last_file.filter(|_| !map.is_empty()) else {
        return Ok(StartupPlan {
            start_index: start,
            entries: Vec::new(),
            detach: all,
            broken_file: None,
            resume: Resume::NewFile { from: last_committed.saturating_add(1) },
            warnings,
        });
    };
    if last_read < last_committed {
        warnings.push(format!(
            "Our most fresh log_id {last_read} is smaller than stored data in snapshot \
             {last_committed}. Removing outdated logs"
        ));
        return Ok(StartupPlan {
            start_index: start,
            entries: Vec::new(),
            detach: all,
            broken_file: None,
            resume: Resume::NewFile { from: last_committed.saturating_add(1) },
            warnings,
        });
    }
    let mut broken_file = None;
    let resume;
    if last_incomplete {
        let after = stopped_at.unwrap_or(lf + 1);
        detach.extend(after.min(lf + 1)..files.len());
        if files[lf].broken.is_some() {
            broken_file = Some(lf);
            resume = Resume::NewFile { from: last_read.saturating_add(1) };
        } else if files[lf].compressed == compress_logs {
            resume = Resume::AppendTo(lf);
        } else {
            resume = Resume::NewFile { from: last_read.saturating_add(1) };
        }
    } else {
        resume = Resume::NewFile { from: last_read.saturating_add(1) };
    }
    detach.sort_unstable();
    detach.dedup();
    Ok(StartupPlan {
        start_index: start,
        entries: map.into_iter().collect(),
        detach,
        broken_file,
        resume,
        warnings,
    })
}

/// What kind of problem [`verify_dir`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProblemKind {
    /// A record could not be read: the file ends there for Keeper.
    Broken(CorruptionKind),
    /// The last zstd frame is not terminated (Keeper terminates it when it appends).
    UnterminatedFrame,
    /// The file ends inside a zstd block (a torn write).
    TornZstdBlock,
    /// A record's index is repeated (legal: the last occurrence wins).
    RepeatedIndex,
    /// Keeper would move the file to `detached/`.
    WouldDetach,
    /// Keeper refuses to start.
    Refusal(String),
    /// A name starts with `changelog` but does not parse (Keeper refuses to start).
    BadName,
    /// A `tmp_` marker (Keeper deletes it, and its partner file if there is one).
    TmpMarker,
    /// A changelog with a `tmp_` marker: an incomplete copy between disks, which Keeper
    /// deletes at startup without reading it (it is left out of the plan).
    IncompleteCopy,
}

/// One problem, with where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The file.
    pub file: PathBuf,
    /// Byte offset (stream offset for records of `.zstd` files, file offset for zstd
    /// framing problems).
    pub offset: u64,
    /// Log index concerned, when known.
    pub index: Option<u64>,
    /// What.
    pub kind: ProblemKind,
}

/// What [`verify_dir`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    /// The files read, sorted by `from`.
    pub files: Vec<ChangelogFile>,
    /// Keeper's startup decisions, or its refusal.
    pub plan: Result<StartupPlan, Corruption>,
    /// Every problem found.
    pub problems: Vec<Problem>,
}

impl VerifyReport {
    /// Whether a problem would stop Keeper or lose entries (anything but an
    /// unterminated frame and repeated indexes, which Keeper handles).
    pub fn has_errors(&self) -> bool {
        self.problems
            .iter()
            .any(|p| !matches!(p.kind, ProblemKind::UnterminatedFrame | ProblemKind::RepeatedIndex))
    }
}

/// Reads every changelog of `dir` (with `read` options) and checks it against
/// Keeper's startup rules. A record version > 2 is an `Err` (Keeper aborts; nothing
/// else can be said).
pub fn verify_dir(
    fs: &dyn FileSystem,
    dir: &Path,
    last_committed: u64,
    reserved_log_items: u64,
    compress_logs: bool,
    read: ReadOptions,
) -> Result<VerifyReport, WalError> {
    let listing = list_changelogs(fs, dir)?;
    let mut problems = Vec::new();
    for n in &listing.bad_names {
        problems.push(Problem {
            file: dir.join(n),
            offset: 0,
            index: None,
            kind: ProblemKind::BadName,
        });
    }
    for n in &listing.tmp_markers {
        problems.push(Problem {
            file: dir.join(n),
            offset: 0,
            index: None,
            kind: ProblemKind::TmpMarker,
        });
    }
    let mut files = Vec::with_capacity(listing.files.len());
    for lf in &listing.files {
        let name = lf.path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        if listing.tmp_markers.iter().any(|m| m.strip_prefix(super::TMP_PREFIX) == Some(name)) {
            problems.push(Problem {
                file: lf.path.clone(),
                offset: 0,
                index: None,
                kind: ProblemKind::IncompleteCopy,
            });
            continue;
        }
        files.push(read_file(fs, &lf.path, read)?);
    }
    for f in &files {
        let mut seen = std::collections::HashSet::new();
        for r in &f.records {
            if !seen.insert(r.record.index) {
                problems.push(Problem {
                    file: f.path.clone(),
                    offset: r.offset,
                    index: Some(r.record.index),
                    kind: ProblemKind::RepeatedIndex,
                });
            }
        }
        if let Some(b) = &f.broken {
            problems.push(Problem {
                file: f.path.clone(),
                offset: b.offset,
                index: b.index,
                kind: ProblemKind::Broken(b.kind.clone()),
            });
        }
        if let Some(z) = &f.zstd {
            if let Some(stop) = z.stop.as_ref().filter(|s| s.at_eof) {
                problems.push(Problem {
                    file: f.path.clone(),
                    offset: stop.file_offset,
                    index: f.records.last().map(|r| r.record.index),
                    kind: ProblemKind::TornZstdBlock,
                });
            } else if z.last_frame_unterminated() {
                problems.push(Problem {
                    file: f.path.clone(),
                    offset: f.file_len,
                    index: f.records.last().map(|r| r.record.index),
                    kind: ProblemKind::UnterminatedFrame,
                });
            }
        }
    }
    let plan = plan_startup(&files, last_committed, reserved_log_items, compress_logs);
    match &plan {
        Ok(p) => {
            for &i in &p.detach {
                problems.push(Problem {
                    file: files[i].path.clone(),
                    offset: 0,
                    index: files[i].records.first().map(|r| r.record.index),
                    kind: ProblemKind::WouldDetach,
                });
            }
        }
        Err(c) => problems.push(Problem {
            file: c.file.clone(),
            offset: c.offset,
            index: c.index,
            kind: ProblemKind::Refusal(c.kind.to_string()),
        }),
    }
    Ok(VerifyReport { files, plan, problems })
}

/// One step of a repair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RepairAction {
    /// Append `01 00 00` at `at` (the file's end) to end its unterminated last frame,
    /// as Keeper does before appending to such a file.
    TerminateFrame {
        /// The file.
        path: PathBuf,
        /// Its length, where the bytes go.
        at: u64,
    },
    /// Cut a torn or broken tail: the bytes from `keep_len` on are copied to the
    /// backup, then the file is truncated to `keep_len` (a record boundary; for `.zstd`
    /// files a block boundary, followed by a [`RepairAction::TerminateFrame`]).
    CutTail {
        /// The file.
        path: PathBuf,
        /// File length kept.
        keep_len: u64,
        /// Bytes removed.
        removed: u64,
        /// Index of the last record kept.
        last_index: Option<u64>,
    },
    /// Move whole files to the backup, as Keeper moves them to `detached/`.
    SetAside {
        /// The files.
        paths: Vec<PathBuf>,
        /// Number of distinct indexes in them that the loaded log does not hold.
        entries_lost: u64,
    },
}

/// A repair plan: what [`apply_repair`] would do, or why it refuses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepairPlan {
    /// The steps, in order.
    pub actions: Vec<RepairAction>,
    /// Why no repair is offered (Keeper itself would refuse to start, or the damage is
    /// not at the end of the log), empty when the plan is usable.
    pub refusals: Vec<Refusal>,
}

/// A repair [`plan_repair`] refuses, and the problem it refuses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// Position in [`VerifyReport::problems`] of the problem refused (`None` only for a
    /// report that does not list it, one not built by [`verify_dir`]).
    pub problem: Option<usize>,
    /// The file it concerns.
    pub file: PathBuf,
    /// Why.
    pub reason: RefusalReason,
}

/// Why a repair is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefusalReason {
    /// Keeper itself refuses to start on these files ([`ProblemKind::Refusal`]).
    KeeperRefuses(Corruption),
    /// A name starting with `changelog` that does not parse ([`ProblemKind::BadName`]).
    BadName,
    /// The file is damaged (not a torn write) and Keeper reads entries of later files
    /// after it: cutting it is not what Keeper does.
    DamagedBeforeEnd {
        /// Where the damage starts (stream offset for `.zstd` files).
        offset: u64,
    },
    /// The zstd stream cannot be cut just after the last good record (no block ends
    /// there).
    NoCutPoint {
        /// The last good record's index (0 if none).
        last_index: u64,
    },
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let file = self.file.display();
        match &self.reason {
            RefusalReason::KeeperRefuses(c) => write!(f, "Keeper would refuse to start: {c}"),
            RefusalReason::BadName => write!(f, "{file}: not a valid changelog name"),
            RefusalReason::DamagedBeforeEnd { offset } => write!(
                f,
                "{file}: damaged at stream offset {offset}, and Keeper reads entries of later \
                 files after it"
            ),
            RefusalReason::NoCutPoint { last_index } => {
                write!(f, "{file}: the zstd stream cannot be cut at the end of record {last_index}")
            }
        }
    }
}

/// Whether a file ends in a torn write (a partial record, or a zstd stream that ends
/// inside a block), as opposed to damage inside.
fn is_torn(f: &ChangelogFile) -> bool {
    match &f.broken {
        Some(b) => matches!(b.kind, CorruptionKind::Truncated { .. }),
        None => f.zstd.as_ref().is_some_and(|z| z.stop.as_ref().is_some_and(|s| s.at_eof)),
    }
}

impl VerifyReport {
    /// The files (positions in [`VerifyReport::files`]) that end in a torn write which
    /// Keeper reads past: the loaded log goes on in a later file (Keeper's own layout
    /// after a torn tail and a restart). They need no repair.
    pub fn read_past(&self) -> Vec<usize> {
        let Ok(plan) = &self.plan else { return Vec::new() };
        (0..self.files.len())
            .filter(|&fi| {
                is_torn(&self.files[fi])
                    && !plan.detach.contains(&fi)
                    && plan.entries.iter().any(|e| e.1.file > fi)
            })
            .collect()
    }
}

/// Builds a repair that does only what Keeper itself would do at startup: set aside
/// `tmp_` markers and the incomplete copies they mark (Keeper deletes both); end an
/// unterminated zstd frame; set a torn or broken tail of the last file read aside
/// (Keeper keeps those bytes and ignores them; here they go to the backup so the file
/// is clean again); set aside the files Keeper would move to `detached/`. Nothing is
/// recomputed over bad bytes. A torn file Keeper reads past (the log goes on in a later
/// file) needs nothing ([`VerifyReport::read_past`]). Refused: anything Keeper refuses
/// to start on (gaps, bad names, record versions > 2), damage (not a torn write) in a
/// file Keeper reads later entries after, and a zstd tail that cannot be cut at a
/// record boundary. Each refusal points at the problem of `report` it refuses.
pub fn plan_repair(report: &VerifyReport) -> RepairPlan {
    let mut actions = Vec::new();
    let mut refusals = Vec::new();
    let problem_of = |file: &Path, what: &dyn Fn(&ProblemKind) -> bool| {
        report.problems.iter().position(|p| p.file == file && what(&p.kind))
    };
    let plan = match &report.plan {
        Ok(p) => p,
        Err(c) => {
            refusals.push(Refusal {
                problem: report
                    .problems
                    .iter()
                    .position(|p| matches!(p.kind, ProblemKind::Refusal(_))),
                file: c.file.clone(),
                reason: RefusalReason::KeeperRefuses(c.clone()),
            });
            return RepairPlan { actions, refusals };
        }
    };
    for (pi, p) in report.problems.iter().enumerate() {
        if p.kind == ProblemKind::BadName {
            refusals.push(Refusal {
                problem: Some(pi),
                file: p.file.clone(),
                reason: RefusalReason::BadName,
            });
        }
    }
    let loaded: std::collections::HashSet<u64> = plan.entries.iter().map(|e| e.0).collect();
    let damage = |k: &ProblemKind| matches!(k, ProblemKind::Broken(_) | ProblemKind::TornZstdBlock);
    let read_past = report.read_past();
    for (fi, f) in report.files.iter().enumerate() {
        if plan.detach.contains(&fi) || read_past.contains(&fi) {
            continue;
        }
        let broken_or_torn = f.broken.is_some() || is_torn(f);
        if broken_or_torn {
            // The last file Keeper reads: no entry it loads comes from a later file (a
            // file whose only records are torn yields none, and is still the last).
            let last_read = !plan.entries.iter().any(|e| e.1.file > fi);
            if !last_read && plan.broken_file != Some(fi) {
                refusals.push(Refusal {
                    problem: problem_of(&f.path, &damage),
                    file: f.path.clone(),
                    reason: RefusalReason::DamagedBeforeEnd { offset: f.good_len() },
                });
                continue;
            }
            if f.records.is_empty() {
                // Nothing readable in it: set the whole file aside (with a backup)
                // rather than leave an empty changelog behind.
                actions
                    .push(RepairAction::SetAside { paths: vec![f.path.clone()], entries_lost: 0 });
                continue;
            }
            match cut_point(f) {
                Some(keep_len) => {
                    actions.push(RepairAction::CutTail {
                        path: f.path.clone(),
                        keep_len,
                        removed: f.file_len - keep_len,
                        last_index: f.records.last().map(|r| r.record.index),
                    });
                    if f.compressed && !f.records.is_empty() {
                        actions.push(RepairAction::TerminateFrame {
                            path: f.path.clone(),
                            at: keep_len,
                        });
                    }
                }
                None => refusals.push(Refusal {
                    problem: problem_of(&f.path, &damage),
                    file: f.path.clone(),
                    reason: RefusalReason::NoCutPoint {
                        last_index: f.records.last().map_or(0, |r| r.record.index),
                    },
                }),
            }
        } else if f.zstd.as_ref().is_some_and(super::ZstdLayout::last_frame_unterminated) {
            actions.push(RepairAction::TerminateFrame { path: f.path.clone(), at: f.file_len });
        }
    }
    let leftovers: Vec<PathBuf> = report
        .problems
        .iter()
        .filter(|p| matches!(p.kind, ProblemKind::TmpMarker | ProblemKind::IncompleteCopy))
        .map(|p| p.file.clone())
        .collect();
    if !leftovers.is_empty() {
        actions.push(RepairAction::SetAside { paths: leftovers, entries_lost: 0 });
    }
    if !plan.detach.is_empty() {
        let mut lost = std::collections::HashSet::new();
        for &i in &plan.detach {
            for r in &report.files[i].records {
                if !loaded.contains(&r.record.index) {
                    lost.insert(r.record.index);
                }
            }
        }
        actions.push(RepairAction::SetAside {
            paths: plan.detach.iter().map(|&i| report.files[i].path.clone()).collect(),
            entries_lost: lost.len() as u64,
        });
    }
    RepairPlan { actions, refusals }
}

/// File offset at which a damaged file can be cut just after its last good record:
/// the stream offset for plain files; for `.zstd` files the end of the block whose
/// output ends exactly there (Keeper flushes a block per record). `None` when no block
/// ends there.
fn cut_point(f: &ChangelogFile) -> Option<u64> {
    let good = f.good_len();
    let Some(z) = &f.zstd else { return Some(good) };
    if good == 0 {
        return Some(0);
    }
    z.block_ends.iter().filter(|b| b.stream_offset == good).map(|b| b.file_offset).next()
}

/// What [`apply_repair`] did, one line per step.
pub type RepairLog = Vec<String>;

/// Carries out a plan. Before anything is changed, every byte that will be removed is
/// copied to `backup_dir` (created if needed): a cut tail as `<name>.tail-<offset>`,
/// a set-aside file under its own name. Refuses a plan with refusals.
pub fn apply_repair(
    fs: &dyn FileSystem,
    plan: &RepairPlan,
    backup_dir: &Path,
) -> Result<RepairLog, WalError> {
    if !plan.refusals.is_empty() {
        let why: Vec<String> = plan.refusals.iter().map(ToString::to_string).collect();
        return Err(WalError::InvalidArgument(format!("repair refused: {}", why.join("; "))));
    }
    fs.create_dir_all(backup_dir).map_err(|e| WalError::io(backup_dir, e))?;
    let mut log = Vec::new();
    for a in &plan.actions {
        match a {
            RepairAction::CutTail { path, keep_len, removed, .. } => {
                let file = fs.open(path, OpenMode::ReadWrite).map_err(|e| WalError::io(path, e))?;
                let len = file.len().map_err(|e| WalError::io(path, e))?;
                let n = usize::try_from(len.saturating_sub(*keep_len))
                    .map_err(|_| WalError::io(path, std::io::Error::other("tail too large")))?;
                let mut tail = vec![0u8; n];
                file.read_exact_at(&mut tail, *keep_len).map_err(|e| WalError::io(path, e))?;
                let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("changelog");
                let bpath = backup_dir.join(format!("{name}.tail-{keep_len}"));
                write_new(fs, &bpath, &tail)?;
                file.set_len(*keep_len).map_err(|e| WalError::io(path, e))?;
                file.sync_all().map_err(|e| WalError::io(path, e))?;
                log.push(format!(
                    "{}: cut {removed} bytes at offset {keep_len} (saved as {})",
                    path.display(),
                    bpath.display()
                ));
            }
            RepairAction::TerminateFrame { path, at } => {
                let file = fs.open(path, OpenMode::ReadWrite).map_err(|e| WalError::io(path, e))?;
                file.write_all_at(&FRAME_TERMINATOR, *at).map_err(|e| WalError::io(path, e))?;
                file.sync_all().map_err(|e| WalError::io(path, e))?;
                log.push(format!(
                    "{}: wrote 01 00 00 at offset {at} to end the zstd frame",
                    path.display()
                ));
            }
            RepairAction::SetAside { paths, entries_lost } => {
                let dest = backup_dir.join(DETACHED_DIR);
                fs.create_dir_all(&dest).map_err(|e| WalError::io(&dest, e))?;
                for p in paths {
                    let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("changelog");
                    let to = dest.join(name);
                    let bytes = fs.read_all(p).map_err(|e| WalError::io(p, e))?;
                    write_new(fs, &to, &bytes)?;
                    fs.remove_file(p).map_err(|e| WalError::io(p, e))?;
                    log.push(format!("{}: moved to {}", p.display(), to.display()));
                }
                log.push(format!("{entries_lost} entries not in the loaded log were set aside"));
            }
        }
    }
    if let Some(dir) = plan.actions.iter().find_map(|a| match a {
        RepairAction::CutTail { path, .. } | RepairAction::TerminateFrame { path, .. } => {
            path.parent().map(Path::to_path_buf)
        }
        RepairAction::SetAside { paths, .. } => {
            paths.first().and_then(|p| p.parent()).map(Path::to_path_buf)
        }
    }) {
        fs.sync_dir(&dir).map_err(|e| WalError::io(&dir, e))?;
    }
    Ok(log)
}

fn write_new(fs: &dyn FileSystem, path: &Path, bytes: &[u8]) -> Result<(), WalError> {
    let f = fs.open(path, OpenMode::CreateNew).map_err(|e| WalError::io(path, e))?;
    f.write_all_at(bytes, 0).map_err(|e| WalError::io(path, e))?;
    f.sync_all().map_err(|e| WalError::io(path, e))?;
    if let Some(d) = path.parent() {
        fs.sync_dir(d).map_err(|e| WalError::io(d, e))?;
    }
    Ok(())
}
