//! Opening a ClickHouse Keeper coordination directory the way Keeper starts: the
//! newest snapshot, then the changelog entries after it (Keeper's startup rules,
//! [`keeperkit_wal::clickhouse::startup::plan_startup`]) executed with Keeper's
//! semantics on the tree, each entry's digest checked when it carries one.
//!
//! Read-only: nothing is written, moved or deleted (what Keeper would set aside is
//! reported in the plan).

use std::path::{Path, PathBuf};

use keeperkit_model::keeper::nuraft::ClusterConfig;
use keeperkit_model::{Corruption, CorruptionKind, Stat};
use keeperkit_snapshot::clickhouse::{self as ch, Container, SnapshotHeader};
use keeperkit_tree::{DataTree, DigestCheck, KeeperExecOptions};
use keeperkit_vfs::FileSystem;
use keeperkit_wal::clickhouse::startup::{plan_startup, StartupPlan};
use keeperkit_wal::clickhouse::{
    self as chwal, ChangelogFile, ReadOptions, RecordPayload, RESERVED_LOG_ITEMS_DEFAULT,
};

use super::layout::{file_name, ChLayout};
use super::snapshot::{load_snapshot, open_acl, LoadedChSnapshot};
use crate::findings::{Code, Finding, Position, Severity};
use crate::progress::{file_len, NoProgress, Progress};
pub use crate::zookeeper::SkippedSnapshot;
use crate::StorageError;

/// Options of [`recover`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChRecoverOptions {
    /// Stop after this log index (the newest snapshot at or before it is used).
    pub at_index: Option<u64>,
    /// Keeper's `reserved_log_items` (which files its startup reads).
    pub reserved_log_items: u64,
    /// Keeper's `compress_logs` setting (where it would resume writing).
    pub compress_logs: bool,
}

impl Default for ChRecoverOptions {
    fn default() -> Self {
        ChRecoverOptions {
            at_index: None,
            reserved_log_items: RESERVED_LOG_ITEMS_DEFAULT,
            compress_logs: false,
        }
    }
}

/// An entry whose digest disagreed with the tree after executing it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DigestMismatch {
    /// Log index.
    pub index: u64,
    /// The digest in the entry.
    pub stored: u64,
    /// The digest of the tree.
    pub computed: u64,
}

/// What [`recover`] found.
pub struct ChRecovery {
    /// The state (without Keeper's `/keeper` system node).
    pub tree: DataTree,
    /// The snapshot used, if any.
    pub snapshot: Option<UsedSnapshot>,
    /// Snapshots not used.
    pub skipped: Vec<SkippedSnapshot>,
    /// Keeper's startup plan over the changelogs (when there is a log directory), with
    /// the warnings Keeper would log.
    pub plan: Option<StartupPlan>,
    /// The changelog files read.
    pub files: Vec<ChangelogFile>,
    /// Last log index in the state (the snapshot's, or the last entry executed).
    pub last_index: u64,
    /// Its term.
    pub last_term: u64,
    /// Entries executed after the snapshot.
    pub entries_applied: u64,
    /// Config entries seen after the snapshot.
    pub config_entries: u64,
    /// Entries whose digest was compared.
    pub digests_checked: u64,
    /// Entries whose digest disagreed.
    pub digest_mismatches: Vec<DigestMismatch>,
    /// The newest cluster config (snapshot trailer or a later config entry).
    pub cluster_config: Option<ClusterConfig>,
    /// Warnings on what was doubtful (damaged snapshots skipped, digests that
    /// disagree, snapshot content Keeper loads as is).
    pub notes: Vec<Finding>,
}

impl std::fmt::Debug for ChRecovery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChRecovery")
            .field("snapshot", &self.snapshot)
            .field("last_index", &self.last_index)
            .field("entries_applied", &self.entries_applied)
            .field("nodes", &self.tree.node_count())
            .finish()
    }
}

/// The snapshot a recovery started from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsedSnapshot {
    /// The file.
    pub path: PathBuf,
    /// Its header.
    pub header: SnapshotHeader,
    /// Its container.
    pub container: Option<Container>,
    /// Whether its header digest matched the records (`None`: no digest).
    pub digest_ok: Option<bool>,
}

/// The tree a Keeper without any snapshot starts from: `/` with zeroed stats.
pub fn fresh_keeper_tree() -> DataTree {
    let mut t = DataTree::empty();
    let root = Stat::default();
    // An empty tree and a valid root: cannot fail.
    let inserted = t.insert_loaded_full("/", Some(b""), &open_acl(), &root, 0, 0);
    debug_assert!(inserted.is_ok());
    t.enable_keeper_digest();
    t
}

fn corrupt(file: &Path, index: u64, msg: String) -> StorageError {
    StorageError::Corrupt(
        Corruption::new(file, 0, CorruptionKind::inconsistent(msg)).with_index(index),
    )
}

/// Opens the state of a coordination directory (module docs).
pub fn recover(
    fs: &dyn FileSystem,
    layout: &ChLayout,
    opts: &ChRecoverOptions,
) -> Result<ChRecovery, StorageError> {
    recover_with(fs, layout, opts, &mut NoProgress)
}

/// [`recover`] reporting progress (bytes of the snapshot and changelogs read).
pub fn recover_with(
    fs: &dyn FileSystem,
    layout: &ChLayout,
    opts: &ChRecoverOptions,
    progress: &mut dyn Progress,
) -> Result<ChRecovery, StorageError> {
    if let Some(file) = &layout.changelog_file {
        return Err(StorageError::Unsupported(format!(
            "{} is a single changelog file, which holds no state; give the coordination \
             directory (with logs/ and snapshots/) or the log directory",
            file.display()
        )));
    }
    let mut notes = Vec::new();
    let mut skipped = Vec::new();
    let at = opts.at_index.unwrap_or(u64::MAX);
    // 1. The snapshot.
    let mut candidates: Vec<(u64, PathBuf)> = Vec::new();
    if let Some(f) = &layout.snapshot_file {
        let name = f.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if let Some(n) = ch::parse_snapshot_name(name) {
            candidates.push((n, f.clone()));
        }
    } else if let Some(dir) = &layout.snapshot_dir {
        let (files, markers) = ch::list_snapshots(fs, dir)?;
        for (n, p) in files {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("").to_owned();
            if markers.iter().any(|m| m == &format!("{}{name}", ch::TMP_PREFIX)) {
                skipped.push(SkippedSnapshot {
                    path: p,
                    reason: format!(
                        "incomplete: its {}{name} marker is there (Keeper deletes both at startup)",
                        ch::TMP_PREFIX
                    ),
                    damaged: false,
                });
            } else {
                candidates.push((n, p));
            }
        }
    }
    let mut loaded: Option<LoadedChSnapshot> = None;
    let mut later: Option<u64> = None;
    let mut total =
        candidates.iter().rev().find(|(n, _)| *n <= at).map_or(0, |(_, p)| file_len(fs, p));
    progress.set_total(total);
    for (n, p) in candidates.into_iter().rev() {
        if n > at {
            later = Some(later.map_or(n, |l: u64| l.min(n)));
            skipped.push(SkippedSnapshot {
                path: p,
                reason: format!("its index {n} is after --at-index {at}"),
                damaged: false,
            });
            continue;
        }
        progress.phase(&file_name(&p));
        match load_snapshot(fs, &p) {
            Ok(l) => {
                progress.advance(file_len(fs, &p));
                loaded = Some(l);
                break;
            }
            Err(e) => {
                notes.push(
                    Finding::new(
                        Severity::Warning,
                        Code::SnapshotSkipped,
                        format!(
                            "snapshot {} is unreadable ({e}); Keeper 2024-2025 aborts at \
                             startup on it, older and 2026 builds fall back to the previous \
                             snapshot, as done here",
                            p.display()
                        ),
                    )
                    .file(&p),
                );
                skipped.push(SkippedSnapshot { path: p, reason: e.to_string(), damaged: true });
            }
        }
    }
    if loaded.is_none() && skipped.iter().any(|s| s.damaged) {
        return Err(StorageError::NoUsableSnapshot {
            dir: layout
                .snapshot_dir
                .clone()
                .or_else(|| layout.snapshot_file.clone())
                .unwrap_or_default(),
            tried: skipped
                .iter()
                .filter(|s| s.damaged)
                .map(|s| (s.path.clone(), s.reason.clone()))
                .collect(),
        });
    }
    let (mut tree, snapshot, mut last_index, mut last_term, mut cluster_config) =
        match loaded {
            Some(mut l) => {
                notes.extend(l.notes.drain(..).map(|n| {
                    Finding::new(Severity::Warning, Code::SnapshotContent, n).file(&l.file)
                }));
                let digest_ok = l.digest_matches();
                if digest_ok == Some(false) {
                    notes.push(
                        Finding::new(
                            Severity::Warning,
                            Code::DigestMismatch,
                            format!(
                                "snapshot {}: the digest in its header does not match its nodes \
                             (Keeper logs this and goes on)",
                                l.file.display()
                            ),
                        )
                        .file(&l.file),
                    );
                }
                l.tree.set_session_id_counter(l.header.session_id_counter);
                // Entries are checked against the digest version of the snapshot (Keeper's
                // running version); a snapshot without one gets V4, Keeper's default.
                match l.header.digest_version {
                    0 => l.tree.enable_keeper_digest(),
                    v => l.tree.enable_keeper_digest_version(v),
                }
                let used = UsedSnapshot {
                    path: l.file.clone(),
                    header: l.header.clone(),
                    container: l.container,
                    digest_ok,
                };
                let (idx, term) = (l.header.meta.last_log_idx, l.header.meta.last_log_term);
                let cfg = l.cluster_config.or_else(|| Some(l.header.meta.config.clone()));
                (l.tree, Some(used), idx, term, cfg)
            }
            None => (fresh_keeper_tree(), None, 0, 0, None),
        };
    // 2. The changelogs.
    let mut plan = None;
    let mut files = Vec::new();
    let (mut applied, mut config_entries, mut digests_checked) = (0u64, 0u64, 0u64);
    let mut mismatches = Vec::new();
    let exec = KeeperExecOptions::default();
    if let Some(dir) = &layout.log_dir {
        let listing = chwal::list_changelogs(fs, dir)?;
        if !listing.bad_names.is_empty() {
            return Err(StorageError::NotADataDir {
                path: dir.clone(),
                what: "ClickHouse Keeper log directory",
                reason: format!(
                    "file names Keeper cannot parse (it refuses to start): {}",
                    listing.bad_names.join(", ")
                ),
            });
        }
        let start = last_index.saturating_add(1).saturating_sub(opts.reserved_log_items).max(1);
        let to_read: Vec<&PathBuf> =
            listing.files.iter().filter(|f| f.name.to >= start).map(|f| &f.path).collect();
        total += to_read.iter().map(|p| file_len(fs, p)).sum::<u64>();
        progress.set_total(total);
        for path in to_read {
            progress.phase(&file_name(path));
            files.push(chwal::read_file(fs, path, ReadOptions::default())?);
            progress.advance(file_len(fs, path));
        }
        let p = plan_startup(&files, last_index, opts.reserved_log_items, opts.compress_logs)
            .map_err(StorageError::Corrupt)?;
        for &(index, loc) in &p.entries {
            if index <= last_index {
                continue;
            }
            if index > at {
                break;
            }
            if index != last_index + 1 {
                return Err(corrupt(
                    &files[loc.file].path,
                    index,
                    format!("the log jumps from index {last_index} to {index}"),
                ));
            }
            let file = &files[loc.file];
            let rec = &file.records[loc.record];
            match rec.payload_in(&file.path).map_err(StorageError::Corrupt)? {
                RecordPayload::Request(entry) => {
                    // A request that fails (bad version, no node, ...) is a normal
                    // outcome: it changed nothing, as in Keeper. An Err is what makes
                    // Keeper abort.
                    tree.apply_keeper_entry(&entry, index, &exec)
                        .map_err(|e| corrupt(&file.path, index, e.to_string()))?;
                    applied += 1;
                    match tree.check_entry_digest(&entry) {
                        DigestCheck::NotChecked => {}
                        DigestCheck::Match(_) => digests_checked += 1,
                        DigestCheck::Mismatch { stored, computed } => {
                            digests_checked += 1;
                            mismatches.push(DigestMismatch { index, stored, computed });
                        }
                    }
                }
                RecordPayload::Config(c) => {
                    config_entries += 1;
                    cluster_config = Some(c);
                }
                RecordPayload::Opaque => {}
            }
            last_index = index;
            last_term = rec.record.term;
        }
        plan = Some(p);
    }
    if let Some(a) = opts.at_index {
        if let (true, Some(first)) = (a > last_index && a != u64::MAX, later) {
            return Err(StorageError::Unreachable {
                what: format!("index {a}"),
                reason: format!(
                    "it is before the oldest state the files hold: the oldest snapshot is at \
                     index {first} and the log does not reach back to {a}"
                ),
            });
        }
        if a > last_index && a != u64::MAX {
            return Err(StorageError::PastEnd {
                requested: Position::Index(a),
                last: Position::Index(last_index),
            });
        }
    }
    if !mismatches.is_empty() {
        let first = &mismatches[0];
        notes.push(
            Finding::new(
                Severity::Warning,
                Code::DigestMismatch,
                format!(
                    "{} entr{} carried a digest that disagrees with the tree after executing it \
                     (first: index {}, stored {:#x}, computed {:#x}); Keeper reports \"Digest \
                     for nodes is not matching after applying request\"",
                    mismatches.len(),
                    if mismatches.len() == 1 { "y" } else { "ies" },
                    first.index,
                    first.stored,
                    first.computed
                ),
            )
            .index(first.index),
        );
    }
    Ok(ChRecovery {
        tree,
        snapshot,
        skipped,
        plan,
        files,
        last_index,
        last_term,
        entries_applied: applied,
        config_entries,
        digests_checked,
        digest_mismatches: mismatches,
        cluster_config,
        notes,
    })
}
