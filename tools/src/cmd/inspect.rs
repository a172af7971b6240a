//! `keeperkit inspect`.

use std::io::Write;
use std::path::Path;

use anyhow::anyhow;
use keeperkit_model::Zxid;
use keeperkit_snapshot::zookeeper::{self as zksnap, Compression};
use keeperkit_storage::zookeeper::scan::{self as zkscan, DirScan, LogScan, SnapshotScan};
use keeperkit_storage::zookeeper::ZkLayout;
use keeperkit_storage::Dialect;
use keeperkit_vfs::FileSystem;
use keeperkit_wal::zookeeper::LogEnd;
use serde::Serialize;

use crate::load::dialect_of;
use crate::{CmdResult, Failure, InspectArgs, Outcome};

/// A snapshot as `inspect --json` reports it.
#[derive(Debug, Serialize)]
pub struct JsonSnapshot {
    file: String,
    zxid: i64,
    zxid_hex: String,
    compression: &'static str,
    file_len: u64,
    quick_valid: bool,
    checksums_ok: bool,
    error: Option<String>,
    stream_len: Option<u64>,
    nodes: Option<u64>,
    sessions: Option<u64>,
    acl_lists: Option<u64>,
    digest_zxid_hex: Option<String>,
    digest: Option<String>,
    max_node_zxid_hex: String,
}

/// A log as `inspect --json` reports it.
#[derive(Debug, Serialize)]
pub struct JsonLog {
    file: String,
    name_zxid_hex: String,
    first_zxid_hex: Option<String>,
    last_zxid_hex: Option<String>,
    records: u64,
    records_with_digest: u64,
    file_len: u64,
    data_len: u64,
    format_version: Option<i32>,
    end: Option<String>,
    checksums_ok: bool,
    error: Option<String>,
}

/// A gap between logs.
#[derive(Debug, Serialize)]
pub struct JsonGap {
    after_hex: String,
    next_hex: String,
    file: String,
}

/// `inspect --json` of a directory.
#[derive(Debug, Serialize)]
pub struct JsonInspect {
    dialect: &'static str,
    path: String,
    snapshot_dir: String,
    log_dir: String,
    accepted_epoch: Option<String>,
    current_epoch: Option<String>,
    snapshots: Vec<JsonSnapshot>,
    logs: Vec<JsonLog>,
    gaps: Vec<JsonGap>,
    zxid_range_hex: Option<(String, String)>,
    checksums_ok: bool,
}

fn compression_name(c: Compression) -> &'static str {
    match c {
        Compression::None => "none",
        Compression::Gzip => "gzip",
        Compression::Snappy => "snappy",
    }
}

/// Describes how a log ended.
pub fn describe_end(end: &LogEnd) -> String {
    match end {
        LogEnd::Eof { offset } => format!("physical end of file at byte {offset}"),
        LogEnd::ZeroLength { offset } => format!("zero padding from byte {offset}"),
        LogEnd::Torn { offset, reason } => {
            format!(
                "partial record at byte {offset} ({})",
                keeperkit_storage::zookeeper::dir::torn_reason_text(reason)
            )
        }
    }
}

fn hex(z: Zxid) -> String {
    format!("{:#x}", z.0)
}

fn snapshot_json(s: &SnapshotScan) -> JsonSnapshot {
    let info = s.result.as_ref().ok();
    JsonSnapshot {
        file: s.path.display().to_string(),
        zxid: s.zxid.0,
        zxid_hex: hex(s.zxid),
        compression: compression_name(s.compression),
        file_len: s.file_len,
        quick_valid: s.quick_valid,
        checksums_ok: s.result.is_ok(),
        error: s.result.as_ref().err().cloned(),
        stream_len: info.map(|i| i.stream_len),
        nodes: info.map(|i| i.node_count),
        sessions: info.map(|i| i.session_count),
        acl_lists: info.map(|i| i.acl_count),
        digest_zxid_hex: info.and_then(|i| i.digest).map(|d| hex(d.zxid)),
        digest: info.and_then(|i| i.digest).map(|d| format!("{:#x}", d.digest as u64)),
        max_node_zxid_hex: hex(s.max_node_zxid),
    }
}

fn log_json(l: &LogScan) -> JsonLog {
    JsonLog {
        file: l.path.display().to_string(),
        name_zxid_hex: hex(l.name_zxid),
        first_zxid_hex: l.zxids.map(|z| hex(z.0)),
        last_zxid_hex: l.zxids.map(|z| hex(z.1)),
        records: l.records,
        records_with_digest: l.digests,
        file_len: l.file_len,
        data_len: l.data_len,
        format_version: l.header.map(|h| h.version),
        end: l.end.as_ref().map(describe_end),
        checksums_ok: l.error.is_none(),
        error: l.error.clone(),
    }
}

/// Builds the JSON report of a scanned directory.
pub fn inspect_json(path: &Path, scan: &DirScan) -> JsonInspect {
    let mut lo: Option<Zxid> = None;
    let mut hi: Option<Zxid> = None;
    for l in &scan.logs {
        if let Some((a, b)) = l.zxids {
            lo = Some(lo.map_or(a, |x| x.min(a)));
            hi = Some(hi.map_or(b, |x| x.max(b)));
        }
    }
    JsonInspect {
        dialect: "zookeeper",
        path: path.display().to_string(),
        snapshot_dir: scan.layout.snap_dir.display().to_string(),
        log_dir: scan.layout.log_dir.display().to_string(),
        accepted_epoch: scan.layout.accepted_epoch.clone(),
        current_epoch: scan.layout.current_epoch.clone(),
        snapshots: scan.snapshots.iter().map(snapshot_json).collect(),
        logs: scan.logs.iter().map(log_json).collect(),
        gaps: scan
            .gaps
            .iter()
            .map(|(a, n, f)| JsonGap {
                after_hex: hex(*a),
                next_hex: hex(*n),
                file: f.display().to_string(),
            })
            .collect(),
        zxid_range_hex: lo.zip(hi).map(|(a, b)| (hex(a), hex(b))),
        checksums_ok: scan.snapshots.iter().all(|s| s.result.is_ok())
            && scan.logs.iter().all(|l| l.error.is_none()),
    }
}

fn print_human(out: &mut dyn Write, j: &JsonInspect) -> std::io::Result<()> {
    writeln!(out, "dialect:      ZooKeeper ({})", j.path)?;
    writeln!(out, "snapshot dir: {}", j.snapshot_dir)?;
    if j.log_dir != j.snapshot_dir {
        writeln!(out, "log dir:      {}", j.log_dir)?;
    }
    if let (Some(a), Some(c)) = (&j.accepted_epoch, &j.current_epoch) {
        writeln!(out, "epochs:       accepted {a}, current {c} (quorum mode)")?;
    }
    if let Some((a, b)) = &j.zxid_range_hex {
        writeln!(out, "log zxids:    {a} .. {b}")?;
    }
    writeln!(out, "\nsnapshots ({}):", j.snapshots.len())?;
    for s in &j.snapshots {
        let name = Path::new(&s.file).file_name().map(|n| n.to_string_lossy()).unwrap_or_default();
        match &s.error {
            None => writeln!(
                out,
                "  {name:<28} {:>10} B  {:<6} {:>8} nodes {:>4} sessions  digest@{}  ok",
                s.file_len,
                s.compression,
                s.nodes.unwrap_or(0),
                s.sessions.unwrap_or(0),
                s.digest_zxid_hex.as_deref().unwrap_or("-"),
            )?,
            Some(e) => writeln!(out, "  {name:<28} {:>10} B  DAMAGED: {e}", s.file_len)?,
        }
    }
    writeln!(out, "\nlogs ({}):", j.logs.len())?;
    for l in &j.logs {
        let name = Path::new(&l.file).file_name().map(|n| n.to_string_lossy()).unwrap_or_default();
        let range = match (&l.first_zxid_hex, &l.last_zxid_hex) {
            (Some(a), Some(b)) => format!("{a} .. {b}"),
            _ => "empty".to_string(),
        };
        writeln!(
            out,
            "  {name:<28} {:>10} B  {:>7} txns  {range:<26} {}",
            l.file_len,
            l.records,
            match &l.error {
                None => l.end.clone().unwrap_or_default(),
                Some(e) => format!("DAMAGED: {e}"),
            }
        )?;
    }
    for g in &j.gaps {
        writeln!(
            out,
            "\nGAP: nothing between {} and {} (before {})",
            g.after_hex, g.next_hex, g.file
        )?;
    }
    writeln!(
        out,
        "\nchecksums: {}",
        if j.checksums_ok { "all ok" } else { "PROBLEMS (run keeperkit verify)" }
    )?;
    Ok(())
}

/// Runs the command.
pub fn run(fs: &dyn FileSystem, args: &InspectArgs, out: &mut dyn Write) -> CmdResult {
    let dialect = dialect_of(fs, &args.source.path, args.source.format)?;
    if dialect == Dialect::Native {
        return inspect_native(fs, &args.source.path, args.json, out);
    }
    if dialect == Dialect::ClickHouse {
        let log_dir = args.source.log_dir.as_deref();
        return super::clickhouse::inspect(fs, &args.source.path, log_dir, args.json, out);
    }
    if dialect != Dialect::ZooKeeper {
        return Err(Failure::usage(anyhow!(
            "inspecting {dialect} data is not supported by this build of keeperkit yet"
        )));
    }
    let path = &args.source.path;
    let is_dir = fs.metadata(path).map(|m| m.is_dir).unwrap_or(false);
    let scan = if is_dir {
        let layout = ZkLayout::locate(fs, path, args.source.log_dir.as_deref())?;
        zkscan::scan(fs, &layout)?
    } else {
        single_file_scan(fs, path)?
    };
    let j = inspect_json(path, &scan);
    if args.json {
        super::json_doc(out, &j)?;
    } else {
        print_human(out, &j)?;
    }
    Ok(if j.checksums_ok && j.gaps.is_empty() { Outcome::Clean } else { Outcome::Found })
}

/// A scan of a single snapshot or log file.
pub fn single_file_scan(fs: &dyn FileSystem, path: &Path) -> Result<DirScan, Failure> {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    let dir = path.parent().unwrap_or(Path::new(".")).to_path_buf();
    let mut layout = ZkLayout {
        snap_dir: dir.clone(),
        log_dir: dir,
        snapshots: vec![],
        logs: vec![],
        accepted_epoch: None,
        current_epoch: None,
    };
    let mut scan =
        DirScan { layout: layout.clone(), snapshots: vec![], logs: vec![], gaps: vec![] };
    if let Some((z, c)) = zksnap::parse_snapshot_name(name) {
        layout.snapshots.push((z, c, path.to_path_buf()));
        scan.snapshots.push(zkscan::scan_snapshot(fs, z, c, path));
    } else if let Some(z) = keeperkit_wal::zookeeper::parse_log_name(name) {
        layout.logs.push((z, path.to_path_buf()));
        scan.logs.push(zkscan::scan_log(fs, z, path));
    } else {
        return Err(Failure::usage(anyhow!(
            "{} is neither snapshot.<zxid> nor log.<zxid>",
            path.display()
        )));
    }
    scan.layout = layout;
    Ok(scan)
}

/// `keeperkit inspect` on native data: the snapshots of a data directory (metadata and
/// chunk table, from the footer: chunks are not read) followed by its WAL; a single
/// snapshot file; or a bare WAL directory (the WAL alone, as before). With `--json`
/// the WAL's document gets `data_dir` and `snapshots` fields.
fn inspect_native(fs: &dyn FileSystem, path: &Path, json: bool, out: &mut dyn Write) -> CmdResult {
    use keeperkit_storage::engine::layout;
    let is_dir = fs.metadata(path).map(|m| m.is_dir).unwrap_or(false);
    let files: Vec<std::path::PathBuf> = if !is_dir {
        vec![path.to_path_buf()]
    } else if layout::is_native_data_dir(fs, path) || fs.exists(&path.join(layout::SNAPSHOT_DIR)) {
        layout::snapshot_files(fs, &path.join(layout::SNAPSHOT_DIR))?
            .into_iter()
            .map(|(_, p)| p)
            .collect()
    } else {
        return super::native::inspect(fs, path, json, out);
    };
    let mut snaps = Vec::new();
    let mut all_ok = true;
    for f in &files {
        match keeperkit_snapshot::native::inspect_snapshot(fs, f) {
            Ok(i) => snaps.push(serde_json::json!({
                "file": f.display().to_string(),
                "file_len": i.file_len,
                "version": i.version,
                "last_index": i.meta.last_index,
                "last_term": i.meta.last_term,
                "zxid_hex": format!("{:#x}", i.meta.zxid.0),
                "node_count": i.meta.node_count,
                "digest_hex": format!("{:#018x}", i.meta.digest),
                "sessions": i.meta.sessions.len(),
                "acls": i.meta.acls.len(),
                "chunks": i.chunks.len(),
                "compression": i.chunks.first().map(|c| c.codec.name()),
                "raw_bytes": i.chunks.iter().map(|c| u64::from(c.raw_len)).sum::<u64>(),
                "stored_bytes": i.chunks.iter().map(|c| u64::from(c.stored_len)).sum::<u64>(),
                "error": null,
            })),
            Err(e) => {
                all_ok = false;
                snaps.push(serde_json::json!({
                    "file": f.display().to_string(),
                    "error": e.to_string(),
                }));
            }
        }
    }
    let mut wal_out = Vec::new();
    let wal =
        if is_dir { Some(super::native::inspect(fs, path, json, &mut wal_out)?) } else { None };
    let ok = all_ok && wal != Some(Outcome::Found);
    if json {
        let mut doc = if wal.is_some() {
            serde_json::from_slice(&wal_out)
                .map_err(|e| Failure::usage(anyhow!("internal: WAL inspect output: {e}")))?
        } else {
            serde_json::json!({ "dialect": "native" })
        };
        if let Some(o) = doc.as_object_mut() {
            o.insert("data_dir".into(), serde_json::json!(path.display().to_string()));
            o.insert("snapshots".into(), serde_json::Value::Array(snaps));
        }
        super::json_doc(out, &doc)?;
    } else {
        writeln!(out, "snapshots ({}):", snaps.len())?;
        for s in &snaps {
            if let Some(e) = s["error"].as_str() {
                writeln!(out, "  {}  UNREADABLE: {e}", s["file"].as_str().unwrap_or_default())?;
                continue;
            }
            writeln!(
                out,
                "  {}  index {} term {} zxid {} nodes {} chunks {} ({}) {} B",
                s["file"].as_str().unwrap_or_default(),
                s["last_index"],
                s["last_term"],
                s["zxid_hex"].as_str().unwrap_or_default(),
                s["node_count"],
                s["chunks"],
                s["compression"].as_str().unwrap_or("-"),
                s["file_len"],
            )?;
        }
        if wal.is_some() {
            writeln!(out)?;
            out.write_all(&wal_out)?;
        }
    }
    Ok(if ok { Outcome::Clean } else { Outcome::Found })
}
