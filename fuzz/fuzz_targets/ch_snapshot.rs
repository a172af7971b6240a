//! A ClickHouse Keeper snapshot on arbitrary bytes: never panics or over-allocates
//! (the body is capped at 64 MiB). Byte 0: odd = the rest is a body, wrapped in one
//! valid NONE block (so the fuzzer gets past the CityHash128 checksum); even = the
//! rest is the file (zstd or compressed blocks). A snapshot that loads with V6–V8
//! re-encodes in the same version and container into a file that loads to the same
//! contents.
#![no_main]

use keeperkit_snapshot::clickhouse::container::{encode_blocks, METHOD_NONE};
use keeperkit_snapshot::clickhouse::{
    encode_snapshot, read_snapshot_bytes, ReadOptions, SnapshotContents, SnapshotHeader,
    WriteOptions,
};
use libfuzzer_sys::fuzz_target;

const OPTS: ReadOptions = ReadOptions { body_len_max: 64 << 20, compute_digest: true };

fn empty() -> SnapshotContents {
    SnapshotContents::new(SnapshotHeader {
        version: 0,
        meta: Default::default(),
        zxid: None,
        digest_version: 0,
        digest: None,
        session_id_counter: 0,
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    let file = if mode & 1 == 1 { encode_blocks(rest, METHOD_NONE, 1 << 20) } else { rest.to_vec() };
    let mut c = empty();
    let info = match read_snapshot_bytes("fuzz".as_ref(), &file, &mut c, OPTS) {
        Ok(i) => i,
        Err(e) => {
            assert!(e.corruption().is_some(), "in-memory reads fail only as corruption: {e}");
            return;
        }
    };
    assert_eq!(info.counts.nodes, c.nodes.len() as u64);
    assert_eq!(info.counts.sessions, c.sessions.len() as u64);
    assert_eq!(info.header, c.header);
    let _ = keeperkit_snapshot::clickhouse::check_contents(&c);
    if (6..=8).contains(&info.header.version) {
        let opts = WriteOptions {
            version: info.header.version,
            container: info.container,
            compute_digest: None,
            sync: false,
        };
        let bytes = encode_snapshot(&c, opts).expect("what was read can be written");
        let mut back = empty();
        read_snapshot_bytes("again".as_ref(), &bytes, &mut back, OPTS).expect("ours reads");
        assert_eq!(back, c);
    }
});
