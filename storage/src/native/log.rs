//! `keeperkit log` of native data: every WAL entry, decoded.

use std::ops::ControlFlow;
use std::path::Path;

use keeperkit_model::Txn;
use keeperkit_vfs::FileSystem;
use keeperkit_wal::native;
use keeperkit_wal::WalError;

use crate::findings::{Code, Finding, Severity};
use crate::report::LogEntry;
use crate::StorageError;

/// Every entry of the native log at `wal_dir` with index in `from..=to`, in order,
/// given to `each` until it breaks. Where the readable log ends early, a finding says
/// so: a torn tail is a warning (never acknowledged), damage an error finding (with
/// `damage` as its context) after the entries before it. I/O errors are returned.
pub(crate) fn walk_entries(
    fs: &dyn FileSystem,
    wal_dir: &Path,
    from: u64,
    to: u64,
    damage: &str,
    each: &mut dyn FnMut(native::Entry) -> ControlFlow<()>,
) -> Result<Vec<Finding>, StorageError> {
    let mut findings = Vec::new();
    for e in native::iter_entries(fs, wal_dir, from, to)? {
        let e = match e {
            Ok(e) => e,
            Err(WalError::TornTail(p)) => {
                findings.push(
                    Finding::new(
                        Severity::Warning,
                        Code::TornTail,
                        format!(
                            "{} ends with an unfinished write at byte {} (never acknowledged; \
                             `keeperkit repair` cuts it)",
                            p.path.display(),
                            p.offset
                        ),
                    )
                    .file(&p.path)
                    .offset(p.offset),
                );
                break;
            }
            Err(err) => {
                let err = StorageError::from(err);
                match err.corruption() {
                    Some(c) => {
                        findings.push(Finding::corruption(c, damage));
                        break;
                    }
                    None => return Err(err),
                }
            }
        };
        if each(e).is_break() {
            break;
        }
    }
    Ok(findings)
}

/// Every entry with index in `from..=to`, decoded, given to `sink`; the findings as
/// [`walk_entries`] makes them.
pub(crate) fn read_log(
    fs: &dyn FileSystem,
    wal_dir: &Path,
    from: Option<u64>,
    to: Option<u64>,
    sink: &mut dyn FnMut(LogEntry) -> ControlFlow<()>,
) -> Result<Vec<Finding>, StorageError> {
    let (from, to) = (from.unwrap_or(0), to.unwrap_or(u64::MAX));
    walk_entries(fs, wal_dir, from, to, "damaged WAL", &mut |e| {
        let mut j = LogEntry::blank(wal_dir, 0);
        j.index = Some(e.index);
        j.term = Some(e.term);
        j.payload_len = e.payload.len();
        let config = crate::engine::parse_config_entry(&e.payload);
        if let Some(batch) = crate::engine::parse_batch_entry(&e.payload) {
            batch_entry(&mut j, batch);
            return sink(j);
        }
        match (config, Txn::decode_from(&e.payload)) {
            (Some(c), _) => {
                j.kind = "config";
                j.op = "Config".into();
                j.detail = format!("cluster configuration, {} bytes", c.len());
            }
            (None, Ok(t)) => crate::zookeeper::log::txn_entry(&mut j, &t),
            (None, Err(_)) if e.payload.is_empty() => {
                j.kind = "noop";
                j.op = "Noop".into();
            }
            (None, Err(err)) => {
                j.op = "Opaque".into();
                j.detail = format!("{} bytes, not a tree txn ({err})", e.payload.len());
            }
        }
        sink(j)
    })
}

/// Describes a batch entry (several txns in one entry): its txn count and the zxids
/// of its first and last txn (the entry's zxid is the last one's).
fn batch_entry(j: &mut LogEntry, batch: Result<Vec<&[u8]>, String>) {
    j.op = "Batch".into();
    let txns = batch.and_then(|parts| {
        parts
            .into_iter()
            .enumerate()
            .map(|(i, b)| Txn::decode_from(b).map_err(|e| format!("txn {i}: {e}")))
            .collect::<Result<Vec<_>, _>>()
    });
    match txns {
        Ok(txns) => {
            j.kind = "batch";
            let zxids: Vec<i64> = txns.iter().map(|t| t.header.zxid.0).collect();
            if let (Some(first), Some(last)) = (zxids.first(), zxids.last()) {
                j.zxid = Some(*last);
                j.zxid_hex = Some(format!("{last:#x}"));
                j.detail = format!("{} txns, zxid {first:#x} ..= {last:#x}", txns.len());
            } else {
                j.detail = "0 txns".into();
            }
        }
        Err(err) => {
            j.op = "Opaque".into();
            j.detail = format!("{} bytes, a damaged batch entry ({err})", j.payload_len);
        }
    }
}
