//! `keeperkit log`.

use std::io::Write;
use std::path::PathBuf;

use anyhow::anyhow;
use keeperkit_model::{Txn, TxnBody};
use keeperkit_storage::zookeeper::ZkLayout;
use keeperkit_storage::Dialect;
use keeperkit_vfs::FileSystem;
use keeperkit_wal::zookeeper::{LogEnd, LogReader};
use serde::Serialize;

use crate::load::dialect_of;
use crate::{parse_zxid, CmdResult, Failure, LogArgs, Outcome};

/// One sub-operation of a multi.
#[derive(Debug, Serialize)]
pub struct JsonOp {
    /// Operation name.
    pub op: &'static str,
    /// Path, if any.
    pub path: Option<String>,
    /// Error code name for error members.
    pub error: Option<&'static str>,
}

/// One decoded log entry.
#[derive(Debug, Serialize)]
pub struct JsonEntry {
    /// The file holding it.
    pub file: String,
    /// Byte offset of the record in the file.
    pub offset: u64,
    /// Zxid (ZooKeeper); `null` for Raft-style logs.
    pub zxid: Option<i64>,
    /// Zxid in hex.
    pub zxid_hex: Option<String>,
    /// Log index (Raft-style logs); `null` for ZooKeeper.
    pub index: Option<u64>,
    /// Raft term; `null` for ZooKeeper.
    pub term: Option<u64>,
    /// Time in ms since the epoch.
    pub time: i64,
    /// Session id.
    pub session: i64,
    /// Session id in hex.
    pub session_hex: String,
    /// Client request counter.
    pub cxid: i32,
    /// Operation name.
    pub op: &'static str,
    /// Paths touched.
    pub paths: Vec<String>,
    /// `ok`, or the error code name (error txns, failed multis).
    pub result: String,
    /// Stored tree digest after this txn, if the record has one.
    pub digest: Option<String>,
    /// Members of a multi.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ops: Vec<JsonOp>,
    /// Extra human-readable detail (data length, versions, timeout).
    pub detail: String,
}

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

/// Builds the JSON entry of a ZooKeeper txn.
pub fn zk_entry(file: &str, offset: u64, txn: &Txn) -> JsonEntry {
    let (paths, result, detail) = describe(&txn.body);
    let ops = match &txn.body {
        TxnBody::Multi(subs) => subs
            .iter()
            .map(|s| JsonOp {
                op: s.op().name(),
                path: s.path().map(str::to_string),
                error: match s {
                    TxnBody::Error { err } => Some(err.name()),
                    _ => None,
                },
            })
            .collect(),
        _ => Vec::new(),
    };
    JsonEntry {
        file: file.to_string(),
        offset,
        zxid: Some(txn.header.zxid.0),
        zxid_hex: Some(format!("{:#x}", txn.header.zxid.0)),
        index: None,
        term: None,
        time: txn.header.time,
        session: txn.header.client_id.0,
        session_hex: format!("{:#x}", txn.header.client_id.0),
        cxid: txn.header.cxid,
        op: txn.header.op.name(),
        paths,
        result,
        digest: txn.digest.map(|d| format!("{:#x}", d.tree_digest as u64)),
        ops,
        detail,
    }
}

/// Runs the command.
pub fn run(fs: &dyn FileSystem, args: &LogArgs, out: &mut dyn Write) -> CmdResult {
    let dialect = dialect_of(fs, &args.path, args.format)?;
    if dialect == Dialect::Native {
        let index = |s: &Option<String>| -> Result<Option<u64>, Failure> {
            s.as_deref()
                .map(|v| {
                    v.parse::<u64>().map_err(|_| {
                        Failure::usage(anyhow!("{v:?} is not a log index (a decimal number)"))
                    })
                })
                .transpose()
        };
        return super::native::log(
            fs,
            &args.path,
            index(&args.from)?,
            index(&args.to)?,
            args.json,
            out,
        );
    }
    if dialect == Dialect::ClickHouse {
        let (from, to) = (args.from.as_deref(), args.to.as_deref());
        let log_dir = args.log_dir.as_deref();
        return super::clickhouse::log(fs, &args.path, log_dir, from, to, args.json, out);
    }
    if dialect != Dialect::ZooKeeper {
        return Err(Failure::usage(anyhow!(
            "reading {dialect} logs is not supported by this build of keeperkit yet"
        )));
    }
    let from = args.from.as_deref().map(parse_zxid).transpose()?;
    let to = args.to.as_deref().map(parse_zxid).transpose()?;
    let files: Vec<PathBuf> = if fs.metadata(&args.path).map(|m| m.is_dir).unwrap_or(false) {
        let layout = ZkLayout::locate(fs, &args.path, args.log_dir.as_deref())?;
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
    } else {
        vec![args.path.clone()]
    };
    let mut printed = 0u64;
    for path in files {
        let mut reader = LogReader::open(fs, &path)?;
        let file = path.display().to_string();
        loop {
            let rec = match reader.next_record() {
                Ok(Some(r)) => r,
                Ok(None) => break,
                Err(e) => {
                    let f: Failure = keeperkit_storage::StorageError::from(e).into();
                    return Err(f.hint(format!(
                        "{printed} entries were printed before the damage; `keeperkit verify` lists \
                         every problem"
                    )));
                }
            };
            let z = rec.zxid();
            if from.is_some_and(|f| z < f) {
                continue;
            }
            if to.is_some_and(|t| z > t) {
                break;
            }
            printed += 1;
            let e = zk_entry(&file, rec.offset, &rec.txn);
            if args.json {
                super::json_line(out, &e)?;
            } else {
                writeln!(
                    out,
                    "{:>12} {} session {} cxid {:#x} {:<16} {} {}{}",
                    format!("{:#x}", z.0),
                    super::iso_time(e.time),
                    e.session_hex,
                    e.cxid,
                    e.op,
                    e.paths.join(" "),
                    if e.result == "ok" { String::new() } else { format!("[{}] ", e.result) },
                    e.detail
                )?;
            }
        }
        if !args.json {
            if let Some(LogEnd::Torn { offset, reason }) = reader.end() {
                eprintln!(
                    "note: {file} ends with a partial record at byte {offset} ({})",
                    keeperkit_storage::zookeeper::dir::torn_reason_text(reason)
                );
            }
        }
    }
    if !args.json {
        writeln!(out, "{printed} entries")?;
    }
    Ok(Outcome::Clean)
}
