//! `keeperkit log` of ZooKeeper data, and the decoded form of a txn that the native
//! log shares.

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use keeperkit_model::{Txn, TxnBody, Zxid};
use keeperkit_vfs::FileSystem;
use keeperkit_wal::zookeeper::{LogEnd, LogReader};

use super::dir::torn_reason_text;
use super::ZkLayout;
use crate::findings::{Code, Finding, Severity};
use crate::report::{LogEntry, LogOp};
use crate::StorageError;

fn describe(body: &TxnBody) -> (Vec<String>, String, String) {
    let mut paths = Vec::new();
    if let Some(p) = body.path() {
        paths.push(p.to_string());
    }
    let dlen = |d: &Option<Vec<u8>>| {
        d.as_ref().map_or("null".to_string(), |d| format!("{} bytes", d.len()))
    };
    let (result, detail) = match body {
        TxnBody::Create(c)
        | TxnBody::Create2(c)
        | TxnBody::CreateContainer(c)
        | TxnBody::CreateTtl(c) => (
            "ok".to_string(),
            format!(
                "data {}, {} acl, {}parentCVersion {}{}",
                dlen(&c.data),
                c.acl.len(),
                if c.ephemeral { "ephemeral, " } else { "" },
                c.parent_cversion,
                c.ttl.map(|t| format!(", ttl {t} ms")).unwrap_or_default()
            ),
        ),
        TxnBody::SetData(s) | TxnBody::Reconfig(s) => {
            ("ok".to_string(), format!("data {}, version {}", dlen(&s.data), s.version))
        }
        TxnBody::SetAcl { acl, version, .. } => {
            ("ok".to_string(), format!("{} acl, aversion {version}", acl.len()))
        }
        TxnBody::Check { version, .. } => ("ok".to_string(), format!("version {version}")),
        TxnBody::CreateSession { timeout_ms } => {
            ("ok".to_string(), format!("timeout {timeout_ms} ms"))
        }
        TxnBody::CloseSession { paths: p } => {
            if let Some(p) = p {
                paths.extend(p.iter().cloned());
            }
            ("ok".to_string(), String::new())
        }
        TxnBody::Error { err } => (err.name().to_string(), String::new()),
        TxnBody::Multi(subs) => {
            for s in subs {
                if let Some(p) = s.path() {
                    paths.push(p.to_string());
                }
            }
            let failed = subs.iter().find_map(|s| match s {
                TxnBody::Error { err } if err.as_i32() != 0 && err.as_i32() != -2 => Some(*err),
                _ => None,
            });
            match failed {
                Some(e) => {
                    (e.name().to_string(), format!("{} ops, failed: nothing applied", subs.len()))
                }
                None if body.is_failed_multi() => {
                    ("failed".to_string(), format!("{} ops", subs.len()))
                }
                None => ("ok".to_string(), format!("{} ops", subs.len())),
            }
        }
        TxnBody::Delete { .. } | TxnBody::DeleteContainer { .. } => {
            ("ok".to_string(), String::new())
        }
    };
    (paths, result, detail)
}

/// Fills `e` with the decoded txn.
pub(crate) fn txn_entry(e: &mut LogEntry, txn: &Txn) {
    let (paths, result, detail) = describe(&txn.body);
    e.ops = match &txn.body {
        TxnBody::Multi(subs) => subs
            .iter()
            .map(|s| LogOp {
                op: s.op().name().to_string(),
                path: s.path().map(str::to_string),
                error: match s {
                    TxnBody::Error { err } => Some(err.name().to_string()),
                    _ => None,
                },
            })
            .collect(),
        _ => Vec::new(),
    };
    e.kind = "txn";
    e.zxid = Some(txn.header.zxid.0);
    e.zxid_hex = Some(format!("{:#x}", txn.header.zxid.0));
    e.time = Some(txn.header.time);
    e.session = Some(txn.header.client_id.0);
    e.session_hex = Some(format!("{:#x}", txn.header.client_id.0));
    e.cxid = Some(i64::from(txn.header.cxid));
    e.op = txn.header.op.name().to_string();
    e.opnum = Some(txn.header.op.0);
    e.paths = paths;
    e.value = value_of(&txn.body);
    e.result = Some(result);
    e.digest = txn.digest.map(|d| format!("{:#x}", d.tree_digest as u64));
    e.detail = detail;
}

/// The value a txn writes (created or set), the first one for a multi.
fn value_of(body: &TxnBody) -> Option<Vec<u8>> {
    match body {
        TxnBody::Create(c)
        | TxnBody::Create2(c)
        | TxnBody::CreateContainer(c)
        | TxnBody::CreateTtl(c) => c.data.clone(),
        TxnBody::SetData(s) => s.data.clone(),
        TxnBody::Multi(subs) => subs.iter().find_map(value_of),
        _ => None,
    }
}

/// Every txn with zxid in `from..=to` of the logs of `layout` (or of the single log
/// `file`), decoded, given to `sink`. Damage is an error finding; the txns before it
/// have been given.
pub(crate) fn read_log(
    fs: &dyn FileSystem,
    layout: Option<&ZkLayout>,
    file: &Path,
    from: Option<Zxid>,
    to: Option<Zxid>,
    sink: &mut dyn FnMut(LogEntry) -> ControlFlow<()>,
) -> Result<Vec<Finding>, StorageError> {
    let files: Vec<PathBuf> = match layout {
        Some(layout) => {
            // Skip files that end before `from`: a file covers up to the next one's start.
            let logs = &layout.logs;
            logs.iter()
                .enumerate()
                .filter(|(i, _)| match (from, logs.get(i + 1)) {
                    (Some(f), Some((next, _))) => *next > f,
                    _ => true,
                })
                .filter(|(_, (z, _))| to.is_none_or(|t| *z <= t))
                .map(|(_, (_, p))| p.clone())
                .collect()
        }
        None => vec![file.to_path_buf()],
    };
    let mut findings = Vec::new();
    let newest = layout.and_then(|l| l.logs.last()).map(|(_, p)| p.clone());
    for path in files {
        let mut reader = LogReader::open(fs, &path)?;
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        let name_zxid = keeperkit_wal::zookeeper::parse_log_name(name);
        let mut first = true;
        loop {
            let rec = match reader.next_record() {
                Ok(Some(r)) => r,
                Ok(None) => break,
                Err(e) => {
                    let e = StorageError::from(e);
                    match e.corruption() {
                        Some(c) => {
                            findings.push(Finding::corruption(c, "damaged txn log"));
                            return Ok(findings);
                        }
                        None => return Err(e),
                    }
                }
            };
            let z = rec.zxid();
            if std::mem::take(&mut first) && name_zxid.is_some_and(|n| n != z) {
                // A log is named after its first txn: another name is a stray or
                // renamed copy, which ZooKeeper would replay out of order.
                findings.push(
                    Finding::new(
                        Severity::Error,
                        Code::NameMismatch,
                        format!(
                            "{} starts with zxid {z}, not the zxid its name gives: a copy \
                             under another name, not a log of this history",
                            path.display()
                        ),
                    )
                    .file(&path)
                    .offset(rec.offset)
                    .zxid(z),
                );
                return Ok(findings);
            }
            if from.is_some_and(|f| z < f) {
                continue;
            }
            if to.is_some_and(|t| z > t) {
                break;
            }
            let mut e = LogEntry::blank(&path, rec.offset);
            e.payload_len = rec.payload_len as usize;
            txn_entry(&mut e, &rec.txn);
            if sink(e).is_break() {
                return Ok(findings);
            }
        }
        if let Some(LogEnd::Torn { offset, reason }) = reader.end() {
            // Only the newest log can end in a write cut short; an older one lost txns.
            let torn = layout.is_none() || newest.as_ref() == Some(&path);
            findings.push(
                Finding::new(
                    if torn { Severity::Warning } else { Severity::Error },
                    if torn { Code::TornTail } else { Code::Truncated },
                    format!(
                        "{} ends with a partial record at byte {offset} ({}){}",
                        path.display(),
                        torn_reason_text(reason),
                        if torn {
                            ""
                        } else {
                            ": it is not the newest log, so txns it held are lost"
                        }
                    ),
                )
                .file(&path)
                .offset(*offset),
            );
        }
        if let Some(a) = reader.end().and_then(|end| super::scan::search_after_end(fs, &path, end))
        {
            findings.push(
                Finding::new(
                    Severity::Error,
                    Code::RecordsAfterEnd,
                    format!(
                        "{} ends at byte {} ({}) but {} complete, checksum-valid records follow \
                         from byte {} (zxid {} ..): they are not listed, and ZooKeeper would \
                         not load them either",
                        path.display(),
                        a.end_offset,
                        a.end,
                        a.records,
                        a.first_offset,
                        a.first_zxid
                    ),
                )
                .file(&path)
                .offset(a.end_offset)
                .zxid(a.first_zxid),
            );
            return Ok(findings);
        }
    }
    Ok(findings)
}
