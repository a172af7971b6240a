//! Loading the state of any supported data directory or file, with the notes the
//! user needs about how it was recovered.

use std::path::Path;

use anyhow::anyhow;
use keeperkit_model::Zxid;
use keeperkit_storage::clickhouse::{self as chs, ChLayout, ChRecoverOptions};
use keeperkit_storage::convert::clickhouse::ChPosition;
use keeperkit_storage::engine::{layout, recover_readonly_in, EngineError, ReplayEnd};
use keeperkit_storage::zookeeper::{self as zk, RecoverOptions, RecoveryReport, ZkLayout};
use keeperkit_storage::{detect, Dialect};
use keeperkit_tree::DataTree;
use keeperkit_vfs::FileSystem;
use keeperkit_wal::zookeeper::LogEnd;

use crate::progress::Bar;
use crate::{Failure, Source};

/// How serious a note is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// Worth knowing.
    Info,
    /// Something was damaged or doubtful but the state is complete.
    Warning,
    /// The state is incomplete or untrustworthy.
    Error,
}

/// Something the user should know about how a state was recovered.
#[derive(Debug, Clone)]
pub struct Note {
    /// How serious.
    pub severity: Severity,
    /// The message, a full sentence.
    pub message: String,
}

/// A loaded state.
#[derive(Debug)]
pub struct LoadedState {
    /// The tree and its sessions.
    pub tree: DataTree,
    /// The dialect it came from.
    pub dialect: Dialect,
    /// The ZooKeeper recovery report, for ZooKeeper sources.
    pub zk_report: Option<RecoveryReport>,
    /// Where the state sits in a Raft log (ClickHouse Keeper and native sources): what
    /// a conversion to ClickHouse Keeper continues from.
    pub position: Option<ChPosition>,
    /// What the user should know.
    pub notes: Vec<Note>,
}

impl LoadedState {
    /// Whether any note is an error (the state is incomplete or untrustworthy).
    pub fn has_errors(&self) -> bool {
        self.notes.iter().any(|n| n.severity == Severity::Error)
    }

    /// Prints the notes to stderr (info notes only when `verbose`).
    pub fn print_notes(&self, verbose: bool) {
        for n in &self.notes {
            match n.severity {
                Severity::Info if verbose => eprintln!("note: {}", n.message),
                Severity::Info => {}
                Severity::Warning => eprintln!("warning: {}", n.message),
                Severity::Error => eprintln!("error: {}", n.message),
            }
        }
    }
}

/// Determines the dialect of a source.
pub fn dialect_of(
    fs: &dyn FileSystem,
    path: &Path,
    forced: Option<Dialect>,
) -> Result<Dialect, Failure> {
    if let Some(d) = forced {
        return Ok(d);
    }
    if !fs.exists(path) {
        return Err(Failure::usage(anyhow!("{} does not exist", path.display())));
    }
    detect(fs, path).ok_or_else(|| {
        Failure::usage(anyhow!(
            "cannot tell which kind of data {} holds: no ZooKeeper, ClickHouse Keeper or \
             keeperkit files found",
            path.display()
        ))
        .hint(
            "point at the data directory (ZooKeeper dataDir, Keeper coordination dir) or \
               force the dialect with --format",
        )
    })
}

/// Loads the state a source holds, as of `at` when given.
pub fn load_state(
    fs: &dyn FileSystem,
    source: &Source,
    at: Option<Zxid>,
    keep_orphan_ephemerals: bool,
) -> Result<LoadedState, Failure> {
    let dialect = dialect_of(fs, &source.path, source.format)?;
    match dialect {
        Dialect::ZooKeeper => load_zookeeper(fs, source, at, keep_orphan_ephemerals),
        Dialect::Native => {
            if at.is_some() {
                return Err(Failure::usage(anyhow!(
                    "native data is addressed by log index, not by zxid"
                ))
                .hint("use --at-index N"));
            }
            load_native(fs, &source.path, None)
        }
        Dialect::ClickHouse => {
            if at.is_some() {
                return Err(Failure::usage(anyhow!(
                    "ClickHouse Keeper data is addressed by log index, not by zxid"
                ))
                .hint("use --at-index N"));
            }
            load_clickhouse(fs, source, None)
        }
    }
}

impl From<EngineError> for Failure {
    fn from(e: EngineError) -> Self {
        let corruption = e.is_corruption();
        Failure { error: e.into(), corruption, hint: None }
    }
}

/// Loads a native source read-only: a data directory (newest intact snapshot + WAL
/// replay, stopping after `upto` when given), a bare WAL directory (replayed on the
/// empty tree) or a single snapshot file.
pub fn load_native(
    fs: &dyn FileSystem,
    path: &Path,
    upto: Option<u64>,
) -> Result<LoadedState, Failure> {
    let md = fs
        .metadata(path)
        .map_err(|e| Failure::usage(anyhow::Error::new(e).context(path.display().to_string())))?;
    if !md.is_dir {
        if upto.is_some() {
            return Err(Failure::usage(anyhow!("--at-index needs a data directory, not a file")));
        }
        let loaded = keeperkit_storage::native_snapshot::load_tree(fs, path)?;
        let notes = vec![Note {
            severity: Severity::Info,
            message: format!(
                "{} read on its own: the state at log index {} (give the data directory to \
                 replay the log after it)",
                path.display(),
                loaded.meta.last_index
            ),
        }];
        let position = ChPosition {
            last_log_idx: loaded.meta.last_index,
            last_log_term: loaded.meta.last_term,
            ..ChPosition::default()
        };
        return Ok(LoadedState {
            tree: loaded.tree,
            dialect: Dialect::Native,
            zk_report: None,
            position: Some(position),
            notes,
        });
    }
    let (snap_dir, wal_dir) =
        if fs.exists(&path.join(layout::MARKER_FILE)) || fs.exists(&path.join(layout::WAL_DIR)) {
            (path.join(layout::SNAPSHOT_DIR), path.join(layout::WAL_DIR))
        } else {
            (path.join(layout::SNAPSHOT_DIR), path.to_path_buf())
        };
    let r = recover_readonly_in(fs, &snap_dir, &wal_dir, upto)?;
    let mut notes = Vec::new();
    let used = r.snapshot.as_ref().map_or_else(
        || "the initial empty tree (no snapshot)".to_string(),
        |s| format!("snapshot {} (index {})", s.path.display(), s.position.index),
    );
    for s in &r.skipped {
        notes.push(Note {
            severity: Severity::Warning,
            message: format!(
                "snapshot {} is damaged and was skipped ({}); recovered from {used} instead",
                s.path.display(),
                s.reason
            ),
        });
    }
    notes.push(Note {
        severity: Severity::Info,
        message: format!(
            "recovered from {used} and {} log entries; last index {} (term {}), last zxid {}",
            r.replayed,
            r.position.index,
            r.position.term,
            r.tree.last_processed_zxid()
        ),
    });
    match &r.end {
        ReplayEnd::Complete => {}
        ReplayEnd::TornTail { path, valid_end } => notes.push(Note {
            severity: Severity::Info,
            message: format!(
                "{} ends with an unfinished write at byte {valid_end} (never acknowledged; \
                 the engine cuts it when it opens)",
                path.display()
            ),
        }),
        ReplayEnd::Damaged(why) => notes.push(Note {
            severity: Severity::Error,
            message: format!(
                "replay stopped at damage: {why}; the state shown is the one after index {} \
                 (`keeperkit verify` lists every problem)",
                r.position.index
            ),
        }),
        ReplayEnd::Gap { expected, found } => notes.push(Note {
            severity: Severity::Error,
            message: format!(
                "the log does not continue the snapshot: index {expected} was needed, the log \
                 holds {found}; the state stops at {}",
                r.position.index
            ),
        }),
    }
    if let Some(n) = upto {
        if r.position.index < n && r.end == ReplayEnd::Complete {
            notes.push(Note {
                severity: Severity::Warning,
                message: format!(
                    "the log ends at index {} before the requested {n}",
                    r.position.index
                ),
            });
        }
    }
    let position = ChPosition {
        last_log_idx: r.position.index,
        last_log_term: r.position.term,
        ..ChPosition::default()
    };
    Ok(LoadedState {
        tree: r.tree,
        dialect: Dialect::Native,
        zk_report: None,
        position: Some(position),
        notes,
    })
}

/// Loads a ClickHouse Keeper coordination directory (or a snapshot file) the way Keeper
/// starts, up to log index `at_index` when given.
pub fn load_clickhouse(
    fs: &dyn FileSystem,
    source: &Source,
    at_index: Option<u64>,
) -> Result<LoadedState, Failure> {
    if source.snapshot.is_some() {
        return Err(Failure::usage(anyhow!(
            "--snapshot applies to ZooKeeper data; for ClickHouse Keeper give the snapshot \
             file itself, or --at-index N to start from the newest snapshot at or before N"
        )));
    }
    let layout = ChLayout::locate(fs, &source.path, source.log_dir.as_deref())?;
    let opts = ChRecoverOptions { at_index, ..ChRecoverOptions::default() };
    let r = chs::recover(fs, &layout, &opts)?;
    let mut notes: Vec<Note> = Vec::new();
    for s in &r.skipped {
        notes.push(Note {
            severity: if s.damaged { Severity::Warning } else { Severity::Info },
            message: format!("snapshot {} not used: {}", s.path.display(), s.reason),
        });
    }
    for n in &r.notes {
        notes.push(Note { severity: Severity::Warning, message: n.clone() });
    }
    let used = r.snapshot.as_ref().map_or_else(
        || "an empty Keeper tree (no snapshot)".to_string(),
        |s| format!("snapshot {} (index {})", s.path.display(), s.header.meta.last_log_idx),
    );
    notes.push(Note {
        severity: Severity::Info,
        message: format!(
            "recovered from {used} and {} changelog entries; last index {} (term {}), last \
             zxid {}; {} entry digests checked",
            r.entries_applied,
            r.last_index,
            r.last_term,
            r.tree.last_processed_zxid(),
            r.digests_checked
        ),
    });
    if layout.snapshot_file.is_some() {
        notes.push(Note {
            severity: Severity::Info,
            message: format!(
                "{} read on its own: give the coordination directory to replay the changelogs \
                 after it",
                source.path.display()
            ),
        });
    }
    if let Some(plan) = &r.plan {
        for w in &plan.warnings {
            notes.push(Note { severity: Severity::Info, message: format!("Keeper: {w}") });
        }
        if let Some(b) = plan.broken_file {
            notes.push(Note {
                severity: Severity::Info,
                message: format!(
                    "{} ends with a torn or damaged record; Keeper keeps what precedes it and \
                     so does this state (`keeperkit verify` tells more)",
                    r.files[b].path.display()
                ),
            });
        }
        for &d in &plan.detach {
            notes.push(Note {
                severity: Severity::Warning,
                message: format!(
                    "Keeper would move {} to detached/ at startup (not read here)",
                    r.files[d].path.display()
                ),
            });
        }
    }
    let position = ChPosition {
        last_log_idx: r.last_index,
        last_log_term: r.last_term,
        cluster_config: r.cluster_config.clone(),
    };
    Ok(LoadedState {
        tree: r.tree,
        dialect: Dialect::ClickHouse,
        zk_report: None,
        position: Some(position),
        notes,
    })
}

fn load_zookeeper(
    fs: &dyn FileSystem,
    source: &Source,
    at: Option<Zxid>,
    keep_orphan_ephemerals: bool,
) -> Result<LoadedState, Failure> {
    let md = fs.metadata(&source.path).map_err(|e| {
        Failure::usage(anyhow::Error::new(e).context(source.path.display().to_string()))
    })?;
    if !md.is_dir {
        return load_single_zk_file(fs, &source.path, at);
    }
    let layout = ZkLayout::locate(fs, &source.path, source.log_dir.as_deref())?;
    let opts = RecoverOptions {
        at,
        snapshot: source.snapshot.clone(),
        keep_orphan_ephemerals,
        stop_at_damage: true,
    };
    let mut bar = Bar::for_load();
    let rec = zk::recover(fs, &layout, &opts, &mut bar)?;
    bar.finish();
    let notes = notes_from_report(&rec.report, &layout, at);
    Ok(LoadedState {
        tree: rec.tree,
        dialect: Dialect::ZooKeeper,
        zk_report: Some(rec.report),
        position: None,
        notes,
    })
}

fn load_single_zk_file(
    fs: &dyn FileSystem,
    path: &Path,
    at: Option<Zxid>,
) -> Result<LoadedState, Failure> {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    if keeperkit_wal::zookeeper::parse_log_name(name).is_some() {
        return Err(Failure::usage(anyhow!(
            "{} is a txn log: a log alone holds no state",
            path.display()
        ))
        .hint("give the data directory to replay it on a snapshot, or use `keeperkit log`"));
    }
    if at.is_some() {
        return Err(Failure::usage(anyhow!("--at needs a data directory, not a single snapshot")));
    }
    let loaded = zk::load_snapshot(fs, path)?;
    let mut tree = loaded.tree;
    let notes = vec![Note {
        severity: Severity::Info,
        message: format!(
            "{} read on its own: ZooKeeper snapshots are fuzzy (changes up to {} are in it); \
             give the directory to get the exact state",
            path.display(),
            loaded.max_node_zxid.max(loaded.zxid)
        ),
    }];
    tree.set_last_processed_zxid(loaded.zxid);
    Ok(LoadedState { tree, dialect: Dialect::ZooKeeper, zk_report: None, position: None, notes })
}

/// Turns a recovery report into notes for the user.
pub fn notes_from_report(r: &RecoveryReport, layout: &ZkLayout, at: Option<Zxid>) -> Vec<Note> {
    let mut notes = Vec::new();
    let used =
        r.snapshot.as_ref().map(|p| p.display().to_string()).unwrap_or_else(|| {
            "the initial empty tree (the directory has no snapshot)".to_string()
        });
    for s in &r.skipped_snapshots {
        if s.damaged {
            notes.push(Note {
                severity: Severity::Warning,
                message: format!(
                    "snapshot {} is damaged and was skipped ({}); recovered from {used} instead",
                    s.path.display(),
                    s.reason
                ),
            });
        }
    }
    notes.push(Note {
        severity: Severity::Info,
        message: format!(
            "recovered from {used} and {} txns of {} log files; last zxid {}",
            r.txns_applied,
            r.logs.len(),
            r.last_zxid
        ),
    });
    if let Some(g) = &r.gap {
        notes.push(Note {
            severity: Severity::Error,
            message: format!(
                "gap in the txn sequence: after zxid {} the next txn found is {} in {}; a log \
                 file is missing or damaged, so the state stops at {}",
                g.after,
                g.next,
                g.file.display(),
                g.after
            ),
        });
    }
    if let Some(c) = &r.damage {
        notes.push(Note {
            severity: Severity::Error,
            message: format!(
                "replay stopped at damage: {c}; the state shown is the one after zxid {} \
                 (ZooKeeper refuses to start with this log; `keeperkit verify` lists every \
                 problem)",
                r.last_zxid
            ),
        });
    }
    let newest_log = layout.logs.last().map(|(_, p)| p.clone());
    for l in &r.logs {
        if let Some(LogEnd::Torn { offset, reason }) = &l.end {
            let newest = Some(&l.path) == newest_log.as_ref();
            notes.push(Note {
                severity: if newest { Severity::Info } else { Severity::Warning },
                message: format!(
                    "{} ends with a partial record at byte {offset} ({}){}",
                    l.path.display(),
                    torn_reason_text(reason),
                    if newest {
                        "; ZooKeeper drops it too (it was never acknowledged)"
                    } else {
                        " in a log that is not the newest"
                    }
                ),
            });
        }
    }
    for m in &r.digest_mismatches {
        notes.push(Note {
            severity: if m.benign { Severity::Info } else { Severity::Error },
            message: format!(
                "digest mismatch after zxid {}: {} stores {:#x}, the replayed tree has {:#x}{}",
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
        });
    }
    if let Some(at) = at {
        if r.last_zxid < at && r.gap.is_none() && r.stopped_at.is_none() {
            notes.push(Note {
                severity: Severity::Warning,
                message: format!("the logs end at zxid {} before the requested {at}", r.last_zxid),
            });
        }
    }
    if !r.orphan_ephemerals_removed.is_empty() {
        notes.push(Note {
            severity: Severity::Info,
            message: format!(
                "{} ephemeral nodes of sessions that no longer exist were dropped, as \
                 ZooKeeper does on start (--keep-orphan-ephemerals keeps them)",
                r.orphan_ephemerals_removed.len()
            ),
        });
    }
    notes
}

/// A sentence fragment describing why a ZooKeeper log record is partial.
pub fn torn_reason_text(reason: &keeperkit_wal::zookeeper::TornReason) -> String {
    use keeperkit_wal::zookeeper::TornReason;
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
