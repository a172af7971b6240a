//! `read_snapshot` over an arbitrary file: never panics or over-allocates, and a
//! snapshot that loads is consistent with what the sink received. The first input byte
//! picks the file name and so the compression (`snapshot.1`, `snapshot.1.gz`,
//! `snapshot.1.snappy`); the rest of the input is the file.
#![no_main]

use keeperkit_fuzz::MemFs;
use keeperkit_model::{AclList, SessionId};
use keeperkit_snapshot::zookeeper::{
    decompress, quick_valid, read_snapshot, Compression, SnapshotNode, SnapshotSink,
};
use libfuzzer_sys::fuzz_target;

#[derive(Default)]
struct Counter {
    sessions: u64,
    acls: u64,
    nodes: u64,
}

impl SnapshotSink for Counter {
    fn session(&mut self, _id: SessionId, _timeout_ms: i32) {
        self.sessions += 1;
    }
    fn acl_list(&mut self, _id: i64, _acl: AclList) {
        self.acls += 1;
    }
    fn node(&mut self, node: SnapshotNode) -> Result<(), String> {
        self.nodes += 1;
        // Exercise the abort path too.
        if node.path == "/abort" {
            return Err("abort requested".into());
        }
        Ok(())
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, file)) = data.split_first() else { return };
    let (name, compression) = match mode % 3 {
        0 => ("snapshot.1", Compression::None),
        1 => ("snapshot.1.gz", Compression::Gzip),
        _ => ("snapshot.1.snappy", Compression::Snappy),
    };
    let fs = MemFs::new(name, file.to_vec());
    let path = fs.path();
    let _ = quick_valid(&fs, &path).expect("MemFs never fails a read");
    let mut sink = Counter::default();
    match read_snapshot(&fs, &path, &mut sink) {
        Ok(info) => {
            assert_eq!(info.compression, compression);
            assert_eq!(info.file_len, file.len() as u64);
            assert_eq!(info.session_count, sink.sessions);
            assert_eq!(info.acl_count, sink.acls);
            assert_eq!(info.node_count, sink.nodes);
            assert_eq!(info.digest.is_some(), info.digest_checksum.is_some());
            let stream = decompress(&fs, &path, compression).expect("decompressed once already");
            assert_eq!(stream.len() as u64, info.stream_len);
        }
        Err(e) => {
            assert!(e.corruption().is_some(), "MemFs never fails a read: {e}");
        }
    }
});
