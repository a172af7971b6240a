//! ClickHouse Keeper changelog records, byte for byte: guards against a checksum that
//! covers the wrong bytes or a header field in the wrong place (Keeper would treat
//! every record we write as a torn tail).

use keeperkit_model::keeper::nuraft::{ClusterConfig, ServerConfig};
use keeperkit_model::keeper::{KeeperLogEntry, KeeperRequest};
use keeperkit_wal::clickhouse::{
    decode_record, record_checksum, ChangelogRecord, RecordPayload, VALUE_TYPE_APP_LOG,
    VALUE_TYPE_CONF,
};

fn hex(s: &str) -> Vec<u8> {
    let s: String = s.split_whitespace().collect();
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex")).collect()
}

fn check(record: &ChangelogRecord, checksum: u64, bytes: &[u8]) {
    assert_eq!(record.checksum(), checksum);
    let mut enc = Vec::new();
    record.encode_into(&mut enc);
    assert_eq!(enc, bytes);
    assert_eq!(decode_record(bytes), Ok((record.clone(), bytes.len())));
}

/// Spec TV1: `getLogEntry("hello world", 77)` as index 1.
#[test]
fn tv1_hello_world() {
    let bytes = hex("6e 9b 0c 80 e3 3a 21 6b 01 01 00 00 00 00 00 00 00 4d 00 00 00 00 00 00 00
         01 00 00 00 0b 00 00 00 00 00 00 00 68 65 6c 6c 6f 20 77 6f 72 6c 64");
    let r = ChangelogRecord::new(1, 77, VALUE_TYPE_APP_LOG, b"hello world".to_vec());
    check(&r, 0x6b21_3ae3_800c_9b6e, &bytes);
}

/// Spec TV2: an empty blob (no blob bytes at all).
#[test]
fn tv2_empty_blob() {
    let bytes = hex("97 db 87 9c ba b1 85 69 01 02 00 00 00 00 00 00 00 4d 00 00 00 00 00 00 00
         01 00 00 00 00 00 00 00 00 00 00 00");
    let r = ChangelogRecord::new(2, 77, VALUE_TYPE_APP_LOG, vec![]);
    check(&r, 0x6985_b1ba_9c87_db97, &bytes);
    assert_eq!(r.payload(), Ok(RecordPayload::Opaque));
}

/// Spec TV3: a Create request for `/hello_1` as index 3, term 1.
#[test]
fn tv3_create_request_record() {
    let req = KeeperLogEntry::new(
        1,
        0,
        KeeperRequest::Create(keeperkit_model::keeper::CreateRequest {
            path: "/hello_1".into(),
            data: vec![],
            acls: vec![],
            flags: 0,
        }),
        0,
    );
    let blob = req.encode();
    assert_eq!(blob.len(), 69);
    let mut bytes =
        hex("a0 e2 89 90 06 c5 54 1b 01 03 00 00 00 00 00 00 00 01 00 00 00 00 00 00 00
         01 00 00 00 45 00 00 00 00 00 00 00");
    bytes.extend_from_slice(&blob);
    assert_eq!(bytes.len(), 106);
    let r = ChangelogRecord::new(3, 1, VALUE_TYPE_APP_LOG, blob);
    check(&r, 0x1b54_c506_9089_e2a0, &bytes);
    assert_eq!(r.payload(), Ok(RecordPayload::Request(req)));
}

/// Spec TV4: a conf entry (NuRaft cluster_config with one server).
#[test]
fn tv4_conf_record() {
    let blob = hex("01 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 01 00 00 00 00 01 00 00 00
         01 00 00 00 00 00 00 00 6c 6f 63 61 6c 68 6f 73 74 3a 39 32 33 34 00 00 00 01 00 00 00");
    assert_eq!(blob.len(), 54);
    let cfg = ClusterConfig {
        log_idx: 1,
        prev_log_idx: 0,
        async_replication: 1,
        user_ctx: vec![],
        servers: vec![ServerConfig {
            id: 1,
            dc_id: 0,
            endpoint: "localhost:9234".into(),
            aux: String::new(),
            flags: 0,
            priority: 1,
        }],
    };
    assert_eq!(cfg.encode(), blob);
    assert_eq!(ClusterConfig::decode(&blob), Ok(cfg.clone()));
    let r = ChangelogRecord::new(1, 1, VALUE_TYPE_CONF, blob.clone());
    assert_eq!(r.checksum(), 0x87e5_232c_6df4_6575);
    let mut enc = Vec::new();
    r.encode_into(&mut enc);
    assert_eq!(
        &enc[..37],
        &hex("75 65 f4 6d 2c 23 e5 87 01 01 00 00 00 00 00 00 00 01 00 00 00 00 00 00 00
              02 00 00 00 36 00 00 00 00 00 00 00")[..]
    );
    assert_eq!(r.payload(), Ok(RecordPayload::Config(cfg)));
}

/// A real ClickHouse value: `sipHash64` (chDB) of a version-2 record after its checksum
/// (index 1, term 1, app_log, blob `hello`) from the shared hash vectors.
#[test]
fn clickhouse_siphash_of_a_v2_record() {
    let tsv = include_str!("../../testdata/clickhouse/chdb-hash-vectors/hash_vectors.tsv");
    let row = tsv
        .lines()
        .find(|l| l.starts_with("0201000000"))
        .expect("the record row is in the vectors");
    let cols: Vec<&str> = row.split('\t').collect();
    let expected: u64 = cols[1].parse().expect("decimal");
    assert_eq!(record_checksum(2, 1, 1, VALUE_TYPE_APP_LOG, b"hello"), expected);
    let r =
        ChangelogRecord { version: 2, index: 1, term: 1, value_type: 1, blob: b"hello".to_vec() };
    let mut enc = Vec::new();
    r.encode_into(&mut enc);
    assert_eq!(&enc[8..], &hex(cols[0])[..]);
    assert_eq!(&enc[..8], &expected.to_le_bytes());
    // Versions 0–2 read identically.
    for v in 0..=2 {
        let r = ChangelogRecord { version: v, ..r.clone() };
        let mut enc = Vec::new();
        r.encode_into(&mut enc);
        assert_eq!(decode_record(&enc).map(|x| x.0), Ok(r));
    }
}
