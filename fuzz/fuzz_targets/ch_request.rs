//! ClickHouse Keeper `app_log` payloads and NuRaft blobs on arbitrary bytes: never
//! panics or over-allocates; whatever decodes re-encodes into bytes that decode to the
//! same value, and encoding is a fixed point. Byte 0 picks the decoder: 0 mod 3 a
//! Keeper request entry, 1 a NuRaft `cluster_config`, 2 a NuRaft snapshot meta.
#![no_main]

use keeperkit_model::keeper::nuraft::{ClusterConfig, SnapshotMeta};
use keeperkit_model::keeper::KeeperLogEntry;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, data)) = data.split_first() else { return };
    match mode % 3 {
        0 => {
            if let Ok(e) = KeeperLogEntry::decode(data) {
                let bytes = e.encode();
                // Only a null string (-1, read as empty, written as 0) can change bytes,
                // and it never grows them.
                assert!(bytes.len() <= data.len());
                let again = KeeperLogEntry::decode(&bytes).expect("a re-encoded entry decodes");
                assert_eq!(again, e);
                assert_eq!(again.encode(), bytes, "encoding is a fixed point");
                let _ = e.xid();
            }
        }
        1 => {
            if let Ok(c) = ClusterConfig::decode(data) {
                assert_eq!(c.encode(), data, "cluster configs re-encode byte for byte");
            }
        }
        _ => {
            if let Ok(m) = SnapshotMeta::decode(data) {
                assert_eq!(m.encode(), data, "snapshot metas re-encode byte for byte");
            }
        }
    }
});
