//! `keeperkit log` of ClickHouse Keeper data: every record of every changelog, decoded.

use std::collections::HashSet;
use std::ops::ControlFlow;
use std::path::PathBuf;

use keeperkit_model::keeper::nuraft::ClusterConfig;
use keeperkit_model::keeper::{KeeperLogEntry, KeeperRequest};
use keeperkit_model::CorruptionKind;
use keeperkit_vfs::FileSystem;
use keeperkit_wal::clickhouse::{
    list_changelogs, read_file, ChangelogFile, ReadOptions, RecordAt, RecordPayload, TMP_PREFIX,
    VALUE_TYPE_APP_LOG,
};

use super::layout::{file_name, ChLayout};
use crate::findings::{Code, Finding, Severity};
use crate::report::{LogEntry, LogOp};
use crate::StorageError;

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

fn request_entry(e: &mut LogEntry, k: &KeeperLogEntry) {
    let zd = k.trailer.zxid_digest;
    let stored = zd.map(|z| z.zxid);
    let zxid = match stored {
        Some(z) if z != 0 => z,
        _ => e.index.and_then(|i| i64::try_from(i).ok()).unwrap_or(i64::MAX),
    };
    e.kind = "txn";
    e.zxid = Some(zxid);
    e.zxid_hex = Some(format!("{zxid:#x}"));
    e.time = k.trailer.time_ms;
    e.session = Some(k.session_id);
    e.session_hex = Some(format!("{:#x}", k.session_id));
    e.cxid = Some(k.xid());
    e.op = k.request.name().to_string();
    e.opnum = Some(k.request.opnum());
    e.paths = k.request.paths().into_iter().map(str::to_string).collect();
    e.digest_version = zd.map(|z| z.digest_version);
    e.digest =
        zd.filter(|z| z.digest_version != 0).and_then(|z| z.digest).map(|d| format!("{d:#x}"));
    e.value = match &k.request {
        KeeperRequest::Create(c) | KeeperRequest::CreateIfNotExists(c) => Some(c.data.clone()),
        KeeperRequest::Set { data, .. } => Some(data.clone()),
        _ => None,
    };
    if let KeeperRequest::Multi(subs) | KeeperRequest::MultiRead(subs) = &k.request {
        e.ops = subs
            .iter()
            .map(|s| LogOp {
                op: s.name().to_string(),
                path: s.paths().first().map(|p| p.to_string()),
                error: None,
            })
            .collect();
    }
    e.detail = request_detail(&k.request);
}

fn entry(f: &ChangelogFile, r: &RecordAt) -> LogEntry {
    let rec = &r.record;
    let mut e = LogEntry::blank(&f.path, r.offset);
    e.index = Some(rec.index);
    e.term = Some(rec.term);
    e.payload_len = rec.blob.len();
    e.record_version = Some(rec.version);
    e.value_type = Some(rec.value_type);
    match r.payload_in(&f.path) {
        Ok(RecordPayload::Request(k)) => request_entry(&mut e, &k),
        Ok(RecordPayload::Config(c)) => {
            e.kind = "config";
            e.op = "Config".into();
            e.detail = config_detail(&c);
        }
        Ok(RecordPayload::Opaque) => {
            if rec.value_type == VALUE_TYPE_APP_LOG {
                e.kind = "noop";
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

fn stream_note(f: &ChangelogFile) -> &'static str {
    if f.compressed {
        " (offset in the decompressed stream)"
    } else {
        ""
    }
}

/// Every record of every changelog in index range `from..=to` (file order, then stream
/// order; `detached/` excluded), decoded, given to `sink`. A damaged record ends its
/// file, as in Keeper, and is an error finding; so is an entry that cannot be decoded.
pub(crate) fn read_log(
    fs: &dyn FileSystem,
    layout: &ChLayout,
    from: Option<u64>,
    to: Option<u64>,
    sink: &mut dyn FnMut(LogEntry) -> ControlFlow<()>,
) -> Result<Vec<Finding>, StorageError> {
    let path = layout.root.as_path();
    let mut findings = Vec::new();
    let files: Vec<PathBuf> = if let Some(f) = &layout.changelog_file {
        vec![f.clone()]
    } else if let Some(dir) = &layout.log_dir {
        let listing = list_changelogs(fs, dir)?;
        let copies: HashSet<String> = listing
            .tmp_markers
            .iter()
            .map(|m| m.trim_start_matches(TMP_PREFIX).to_string())
            .collect();
        let mut keep = Vec::new();
        for f in listing.files {
            if !matches!(f.name.extension.as_str(), "bin" | "bin.zstd") {
                findings.push(
                    Finding::new(
                        Severity::Error,
                        Code::BadName,
                        format!(
                            "{} has parts after its extension: a stray copy, not listed; Keeper \
                             may read it as a changelog of that range: move it out of the \
                             directory",
                            f.path.display()
                        ),
                    )
                    .file(&f.path),
                );
                continue;
            }
            if copies.contains(&file_name(&f.path)) {
                findings.push(
                    Finding::new(
                        Severity::Info,
                        Code::IncompleteCopy,
                        format!(
                            "{} is an incomplete copy (a tmp_ marker names it); Keeper deletes it \
                             at startup; skipped",
                            f.path.display()
                        ),
                    )
                    .file(&f.path),
                );
                continue;
            }
            // Keeper itself skips files by their names' ranges.
            if from.is_none_or(|fr| f.name.to >= fr) && to.is_none_or(|t| f.name.from <= t) {
                keep.push(f.path);
            }
        }
        keep
    } else {
        return Err(StorageError::NotADataDir {
            path: path.to_path_buf(),
            what: "ClickHouse Keeper log directory",
            reason: "it holds no changelogs".into(),
        });
    };
    let last = files.last().cloned();
    for p in &files {
        let f = read_file(fs, p, ReadOptions::default())?;
        let name = keeperkit_wal::clickhouse::ChangelogName::parse(&file_name(p));
        if let (Some(name), Some(first)) = (&name, f.records.first()) {
            if first.record.index != name.from {
                // Keeper names a changelog after the first index written into it:
                // another start is a stray or renamed copy, which Keeper would read as
                // entries of the range its name gives (verify: it refuses to start).
                findings.push(
                    Finding::new(
                        Severity::Error,
                        Code::NameMismatch,
                        format!(
                            "{} starts with index {}, not the index {} its name gives: a \
                             copy under another name, not a changelog of this history; its \
                             entries are not listed: move it out of the directory",
                            p.display(),
                            first.record.index,
                            name.from
                        ),
                    )
                    .file(p)
                    .offset(first.offset)
                    .index(first.record.index),
                );
                continue;
            }
        }
        for r in &f.records {
            let i = r.record.index;
            if from.is_some_and(|fr| i < fr) || to.is_some_and(|t| i > t) {
                continue;
            }
            let e = entry(&f, r);
            if let Some(err) = &e.error {
                findings.push(
                    Finding::new(
                        Severity::Error,
                        Code::EntryRefused,
                        format!("entry {i} cannot be decoded{}: {err}", stream_note(&f)),
                    )
                    .file(p)
                    .offset(r.offset)
                    .index(i),
                );
            }
            if sink(e).is_break() {
                return Ok(findings);
            }
        }
        // Only the last file can end in a write cut short, or one the next file
        // continues (Keeper restarted and wrote on); any other cut lost entries.
        let next_from = files
            .iter()
            .skip_while(|x| *x != p)
            .nth(1)
            .and_then(|n| keeperkit_wal::clickhouse::ChangelogName::parse(&file_name(n)))
            .map(|n| n.from);
        let continued = f.records.last().map(|r| r.record.index + 1) == next_from;
        let torn = layout.changelog_file.is_some() || last.as_ref() == Some(p) || continued;
        let zstd_cut = f.zstd.as_ref().and_then(|z| z.stop.as_ref()).filter(|s| s.at_eof);
        if let (Some(stop), None, false) = (zstd_cut, &f.broken, torn) {
            findings.push(
                Finding::new(
                    Severity::Error,
                    Code::Truncated,
                    format!(
                        "{} is cut short inside a zstd block at file offset {} though later \
                         files exist and none continues it: the entries after the cut are lost",
                        p.display(),
                        stop.file_offset
                    ),
                )
                .file(p)
                .offset(stop.file_offset),
            );
        }
        if let Some(b) = &f.broken {
            if torn && matches!(b.kind, CorruptionKind::Truncated { .. }) {
                findings.push(
                    Finding::new(
                        Severity::Warning,
                        Code::TornTail,
                        format!(
                            "{} ends with a partial record at byte {}{} (never acknowledged; \
                             Keeper ignores it)",
                            p.display(),
                            b.offset,
                            stream_note(&f)
                        ),
                    )
                    .file(p)
                    .offset(b.offset),
                );
            } else {
                let mut x = Finding::corruption(b, "");
                x.message = format!(
                    "{b}{}; Keeper stops reading this file there; `keeperkit verify` says what \
                     Keeper does about it",
                    stream_note(&f)
                );
                findings.push(x);
            }
        }
    }
    Ok(findings)
}
