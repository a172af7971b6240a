//! What `keeperkit inspect` shows of ClickHouse Keeper data: every changelog and
//! snapshot, and Keeper's startup plan.

use std::collections::HashSet;
use std::fmt;
use std::path::Path;

use keeperkit_model::CorruptionKind;
use keeperkit_snapshot::clickhouse::container::{METHOD_LZ4, METHOD_NONE, METHOD_ZSTD};
use keeperkit_snapshot::clickhouse::{Container, Severity as ContentSeverity, SnapshotInfo};
use keeperkit_vfs::FileSystem;
use keeperkit_wal::clickhouse::startup::Resume;
use keeperkit_wal::clickhouse::{
    ChangelogFile, ChangelogName, RESERVED_LOG_ITEMS_DEFAULT, TMP_PREFIX, VALUE_TYPE_APP_LOG,
    VALUE_TYPE_CONF,
};
use serde::Serialize;

use super::check::{all_problems, file_name, scan, LogScan, Scan, SnapScan, COMPRESS_LOGS};
use super::layout::ChLayout;
use crate::findings::{Code, Finding};
use crate::report::{InspectDetails, Inspection};
use crate::{Dialect, StorageError};

/// Inspects ClickHouse Keeper data at `path`.
pub(crate) fn inspect(fs: &dyn FileSystem, layout: &ChLayout) -> Result<Inspection, StorageError> {
    let path = layout.root.as_path();
    let scan = scan(fs, layout.clone(), true)?;
    let findings: Vec<Finding> = all_problems(&scan).into_iter().map(Finding::from).collect();
    let j = inspect_json(&scan);
    let ok = j.checksums_ok;
    Ok(Inspection::new(
        Dialect::ClickHouse,
        path,
        InspectDetails::ClickHouse(Box::new(j)),
        ok,
        findings,
    ))
}

/// Where a record could not be read.
#[derive(Debug, Serialize)]
pub struct JsonBreak {
    /// Byte offset (in the decompressed stream for `.zstd` changelogs).
    pub offset: u64,
    /// Log index, when known.
    pub index: Option<u64>,
    /// The finding code of the fault.
    pub kind: &'static str,
    /// What is wrong.
    pub message: String,
}

/// A changelog as `inspect --json` reports it.
#[derive(Debug, Serialize)]
pub struct JsonChangelog {
    /// The file.
    pub file: String,
    /// First index in the file name.
    pub name_from: Option<u64>,
    /// Last index in the file name.
    pub name_to: Option<u64>,
    /// Whether the file is zstd-compressed.
    pub compressed: bool,
    /// Length of the file in bytes.
    pub file_len: u64,
    /// Length of the (decompressed) record stream.
    pub stream_len: u64,
    /// Records read.
    pub records: u64,
    /// First log index.
    pub first_index: Option<u64>,
    /// Last log index.
    pub last_index: Option<u64>,
    /// Term of the first record.
    pub first_term: Option<u64>,
    /// Term of the last record.
    pub last_term: Option<u64>,
    /// Record format versions present.
    pub record_versions: Vec<u8>,
    /// Entries holding a Keeper request.
    pub request_entries: u64,
    /// Entries holding a cluster configuration.
    pub config_entries: u64,
    /// Entries of other value types.
    pub other_entries: u64,
    /// Records whose index appeared before in the file.
    pub repeated_indexes: u64,
    /// zstd frames in the file.
    pub zstd_frames: Option<usize>,
    /// Whether the last zstd frame is terminated.
    pub last_frame_terminated: Option<bool>,
    /// File offset of a zstd block cut short at the end, if any.
    pub torn_zstd_block_at: Option<u64>,
    /// Where reading stopped at damage, if it did.
    pub broken: Option<JsonBreak>,
    /// What Keeper does with it at startup.
    pub keeper: String,
}

/// A snapshot as `inspect --json` reports it.
#[derive(Debug, Serialize)]
pub struct JsonChSnapshot {
    /// The file.
    pub file: String,
    /// Log index, when known.
    pub index: u64,
    /// Length of the file in bytes.
    pub file_len: u64,
    /// Whether a `tmp_` marker says the snapshot is incomplete.
    pub incomplete: bool,
    /// Whether Keeper loads this snapshot at startup.
    pub loaded_at_startup: bool,
    /// The container: `zstd` or `blocks`.
    pub container: Option<&'static str>,
    /// The compression of the blocks of a `blocks` container.
    pub block_method: Option<String>,
    /// Length of the decompressed body.
    pub body_len: Option<u64>,
    /// Snapshot format version.
    pub version: Option<u8>,
    /// The last log index the snapshot covers.
    pub last_log_idx: Option<u64>,
    /// The term of that entry.
    pub last_log_term: Option<u64>,
    /// The zxid.
    pub zxid: Option<i64>,
    /// The zxid, in hex.
    pub zxid_hex: Option<String>,
    /// The digest version (0: none).
    pub digest_version: Option<u8>,
    /// The tree digest, in hex.
    pub digest: Option<String>,
    /// The next session id.
    pub session_id_counter: Option<i64>,
    /// Nodes in the tree.
    pub nodes: Option<u64>,
    /// Sessions.
    pub sessions: Option<u64>,
    /// ACL lists.
    pub acls: Option<u64>,
    /// Whether the snapshot holds a cluster configuration.
    pub cluster_config: Option<bool>,
    /// Servers in the cluster configuration.
    pub servers: Option<usize>,
    /// Whether Keeper accepts the content.
    pub content_ok: Option<bool>,
    /// Why the file could not be read, if it could not.
    pub error: Option<String>,
}

/// Keeper's startup plan.
#[derive(Debug, Serialize)]
pub struct JsonStartup {
    /// Keeper's last committed index (its newest complete snapshot's).
    pub last_committed: u64,
    /// The snapshot that index comes from.
    pub snapshot: Option<String>,
    /// Keeper's `reserved_log_items`.
    pub reserved_log_items: u64,
    /// Keeper's `compress_logs`.
    pub compress_logs: bool,
    /// The first index Keeper loads.
    pub start_index: Option<u64>,
    /// The changelogs Keeper reads.
    pub reads: Vec<String>,
    /// First log index.
    pub first_index: Option<u64>,
    /// Last log index.
    pub last_index: Option<u64>,
    /// Entries Keeper loads.
    pub entries: u64,
    /// Files Keeper moves to `detached/`.
    pub set_aside: Vec<String>,
    /// Files Keeper deletes at startup.
    pub deletes: Vec<String>,
    /// The file Keeper keeps as is, ignoring its damaged tail.
    pub broken_file: Option<String>,
    /// The file Keeper appends to.
    pub resume_append_to: Option<String>,
    /// The first index of the new file Keeper starts, when it starts one.
    pub resume_new_file_from: Option<u64>,
    /// Warnings Keeper logs at startup.
    pub warnings: Vec<String>,
    /// Why Keeper refuses to start, if it does.
    pub refusal: Option<String>,
}

/// `inspect --json` of ClickHouse Keeper data.
#[derive(Debug, Serialize)]
pub struct ChInspect {
    /// The path given.
    #[serde(skip)]
    pub path: String,
    /// The log directory.
    pub log_dir: Option<String>,
    /// The snapshot directory.
    pub snapshot_dir: Option<String>,
    /// The snapshots, oldest first.
    pub snapshots: Vec<JsonChSnapshot>,
    /// The changelogs, in order.
    pub changelogs: Vec<JsonChangelog>,
    /// `tmp_` markers.
    pub tmp_markers: Vec<String>,
    /// Files that are not Keeper files.
    pub unknown_files: Vec<String>,
    /// Names starting with `changelog` that do not parse.
    pub bad_names: Vec<String>,
    /// The lowest and highest log index.
    pub index_range: Option<(u64, u64)>,
    /// Keeper's startup plan.
    pub startup: Option<JsonStartup>,
    /// Whether every checksum is right.
    #[serde(skip)]
    pub checksums_ok: bool,
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
        content_ok: ok.map(|r| r.1.iter().all(|p| p.severity != ContentSeverity::Fatal)),
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
            kind: Code::from(&b.kind).as_str(),
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
    scan.layout.log_dir.as_ref()?;
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
    let dir = scan.layout.log_dir.as_deref().unwrap_or(Path::new("."));
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
    if scan.layout.changelog_file.is_some() {
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

fn inspect_json(scan: &Scan) -> ChInspect {
    let files = scan.files();
    let changelogs: Vec<JsonChangelog> =
        files.iter().enumerate().map(|(i, f)| changelog_json(f, keeper_fate(scan, i))).collect();
    let lo = files.iter().filter_map(|f| f.records.iter().map(|r| r.record.index).min()).min();
    let hi = files.iter().filter_map(|f| f.records.iter().map(|r| r.record.index).max()).max();
    let dir = scan.layout.log_dir.as_deref().unwrap_or(Path::new("."));
    let mut markers: Vec<String> =
        scan.listing.tmp_markers.iter().map(|m| dir.join(m).display().to_string()).collect();
    markers.extend(scan.snap_markers.iter().map(|p| p.display().to_string()));
    let checksums_ok = files.iter().all(|f| {
        f.broken.as_ref().is_none_or(|b| matches!(b.kind, CorruptionKind::Truncated { .. }))
    }) && scan.snapshots.iter().all(|s| !matches!(s.read, Some(Err(_))))
        && !matches!(scan.logs, Some(LogScan::Fatal(_)));
    ChInspect {
        path: scan.layout.root.display().to_string(),
        log_dir: scan.layout.log_dir.as_ref().map(|p| p.display().to_string()),
        snapshot_dir: scan.layout.snapshot_dir.as_ref().map(|p| p.display().to_string()),
        snapshots: scan.snapshots.iter().map(snapshot_json).collect(),
        changelogs,
        tmp_markers: markers,
        unknown_files: scan.listing.unknown.clone(),
        bad_names: scan.listing.bad_names.clone(),
        index_range: lo.zip(hi),
        startup: startup_json(scan),
        checksums_ok,
    }
}

impl fmt::Display for ChInspect {
    fn fmt(&self, out: &mut fmt::Formatter<'_>) -> fmt::Result {
        let j = self;
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
        Ok(())
    }
}
