//! The ZooKeeper snapshot writer is the inverse of the reader at the file level: every
//! snapshot of every real ZooKeeper 3.8.0 fixture set, read, written again (plain, gzip,
//! snappy) in the same node order and read back, gives the same sessions, the same
//! nodes (path, data with null kept apart from empty, resolved ACL list, stored stat) and
//! the same digest trailer. A failed write leaves no file behind.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use keeperkit_model::{Acl, AclList, SessionId, StatPersisted, Zxid};
use keeperkit_snapshot::zookeeper::{
    list_snapshots, quick_valid, read_snapshot, Compression, SnapshotNode, SnapshotSink,
};
use keeperkit_snapshot::zookeeper_writer::{write_snapshot, OwnedSource, ZkWriteOptions};
use keeperkit_vfs::StdFs;

#[derive(Default)]
struct Collect {
    acls: HashMap<i64, AclList>,
    src: OwnedSource,
}

impl SnapshotSink for Collect {
    fn session(&mut self, id: SessionId, timeout_ms: i32) {
        self.src.sessions.push((id, timeout_ms));
    }
    fn acl_list(&mut self, id: i64, acl: AclList) {
        self.acls.insert(id, acl);
    }
    fn node(&mut self, n: SnapshotNode) -> Result<(), String> {
        let acl = if n.acl_id == -1 {
            Acl::open_unsafe()
        } else {
            self.acls.get(&n.acl_id).cloned().ok_or("unknown ACL id")?
        };
        let path = if n.path.is_empty() { "/".to_owned() } else { n.path };
        self.src.nodes.push((path, n.data, acl, n.stat));
        Ok(())
    }
}

fn read(path: &Path) -> OwnedSource {
    let mut c = Collect::default();
    let info = read_snapshot(&StdFs, path, &mut c).unwrap_or_else(|e| panic!("{e}"));
    c.src.digest = info.digest;
    c.src
}

fn fixture_snapshots() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/zookeeper-3.8.0");
    let mut out = Vec::new();
    for e in std::fs::read_dir(root).unwrap() {
        let v2 = e.unwrap().path().join("data/version-2");
        if v2.is_dir() {
            out.extend(list_snapshots(&StdFs, &v2).unwrap().into_iter().map(|(_, _, p)| p));
        }
    }
    out.sort();
    assert!(out.len() >= 40, "expected every fixture snapshot, found {}", out.len());
    out
}

#[test]
fn every_fixture_snapshot_survives_write_and_read() {
    let tmp = tempfile::tempdir().unwrap();
    for (i, path) in fixture_snapshots().iter().enumerate() {
        let src = read(path);
        let dir = tmp.path().join(i.to_string());
        std::fs::create_dir(&dir).unwrap();
        for compression in [Compression::None, Compression::Gzip, Compression::Snappy] {
            let w =
                write_snapshot(&StdFs, &dir, Zxid(0x1234), &src, &ZkWriteOptions { compression })
                    .unwrap();
            assert!(quick_valid(&StdFs, &w.path).unwrap(), "{}", w.path.display());
            assert_eq!(w.node_count, src.nodes.len() as u64);
            let back = read(&w.path);
            assert_eq!(back.sessions, src.sessions, "{}: sessions", path.display());
            for (a, b) in back.nodes.iter().zip(&src.nodes) {
                assert_eq!(a, b, "{} {compression:?}: first differing node", path.display());
            }
            assert_eq!(back.nodes.len(), src.nodes.len());
            assert_eq!(back.digest, src.digest, "{}: digest trailer", path.display());
        }
        let names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names.len(), 3, "no temporary files left: {names:?}");
    }
}

#[test]
fn a_refused_write_leaves_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let mut src = OwnedSource::default();
    src.nodes.push(("/a".into(), None, Acl::open_unsafe(), StatPersisted::default()));
    let opts = ZkWriteOptions::default();
    assert!(write_snapshot(&StdFs, tmp.path(), Zxid(5), &src, &opts).is_err());
    assert!(write_snapshot(&StdFs, tmp.path(), Zxid(-1), &src, &opts).is_err());
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0);
}
