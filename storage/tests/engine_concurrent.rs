//! A snapshot taken while writes continue holds exactly the state at the index it
//! claims, and the live tree loses nothing to it.
//!
//! 30,000 writes build a tree, a snapshot is started, and 100,000 more writes
//! (override with `KEEPERKIT_ENGINE_WRITES`) are applied while it is serialized on its
//! background thread: the file system holds the snapshot's first write until every
//! one of them is applied, so all of them overlap the serialization. The snapshot file is then loaded and
//! compared with the model replayed up to its index (every node under the workload
//! parent, with data and version; the zxid; the digest of an independent replay of
//! the same txns on a fresh tree), and the live tree with the model after all writes.
//!
//! Guards against: a view that sees writes made after it was taken, a snapshot
//! labelled with the wrong index, writers corrupting the tree during serialization.
//! Runs on a real directory with `SyncPolicy::Never` (the log is synced once at the
//! end), batches of 100 entries per append: about 1 s in a debug build.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::cast_possible_truncation)]

mod engine_support;

use std::io;
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex};

use engine_support::{assert_matches, options, Workload};
use keeperkit_model::Txn;
use keeperkit_storage::engine::NativeEngine;
use keeperkit_storage::native::snapshot::load_tree;
use keeperkit_storage::traits::{LogStore, SnapshotStore, StateMachine};
use keeperkit_tree::DataTree;
use keeperkit_vfs::{DirEntry, File, FileSystem, Metadata, OpenMode, StdFs};
use keeperkit_wal::native::SyncPolicy;

/// Opens while `false`: writes to a snapshot being written wait for it.
type Gate = Arc<(Mutex<bool>, Condvar)>;

/// [`StdFs`], except that writes to `*.kks.tmp` files wait until the gate opens.
#[derive(Debug)]
struct GatedFs {
    gate: Gate,
}

#[derive(Debug)]
struct GatedFile {
    inner: Arc<dyn File>,
    gate: Gate,
}

impl File for GatedFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.inner.read_at(buf, offset)
    }
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        let (m, c) = &*self.gate;
        let mut open = m.lock().unwrap();
        while !*open {
            open = c.wait(open).unwrap();
        }
        drop(open);
        self.inner.write_all_at(buf, offset)
    }
    fn len(&self) -> io::Result<u64> {
        self.inner.len()
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.inner.set_len(len)
    }
    fn sync_data(&self) -> io::Result<()> {
        self.inner.sync_data()
    }
    fn sync_all(&self) -> io::Result<()> {
        self.inner.sync_all()
    }
}

impl FileSystem for GatedFs {
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Arc<dyn File>> {
        let f = StdFs.open(path, mode)?;
        if path.to_string_lossy().ends_with(".kks.tmp") {
            return Ok(Arc::new(GatedFile { inner: f, gate: self.gate.clone() }));
        }
        Ok(f)
    }
    fn read_dir(&self, path: &Path) -> io::Result<Vec<DirEntry>> {
        StdFs.read_dir(path)
    }
    fn metadata(&self, path: &Path) -> io::Result<Metadata> {
        StdFs.metadata(path)
    }
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        StdFs.create_dir_all(path)
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        StdFs.rename(from, to)
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        StdFs.remove_file(path)
    }
    fn remove_dir(&self, path: &Path) -> io::Result<()> {
        StdFs.remove_dir(path)
    }
    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        StdFs.sync_dir(path)
    }
}

#[test]
fn snapshot_during_writes_equals_the_state_at_its_index() {
    let total: usize = std::env::var("KEEPERKIT_ENGINE_WRITES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let prefill = 30_000;
    let total = prefill + total;
    let gate: Gate = Arc::new((Mutex::new(false), Condvar::new()));
    let tmp = tempfile::tempdir().unwrap();
    let fs: Arc<dyn FileSystem> = Arc::new(GatedFs { gate: gate.clone() });
    let mut o = options(&tmp.path().join("data"));
    o.sync = SyncPolicy::Never;
    o.segment_len = 8 << 20;
    o.snapshot_write.threads = 0;
    let e = NativeEngine::open(fs.clone(), o).unwrap();
    let mut w = Workload::new(20_000);
    let mut all: Vec<Vec<u8>> = Vec::with_capacity(total);
    let batch = 100;
    let mut ticket = None;
    let mut writes_during = 0usize;
    while all.len() < total {
        let n = batch.min(total - all.len());
        let txns: Vec<Vec<u8>> = (0..n).map(|_| w.next_txn()).collect();
        let refs: Vec<&[u8]> = txns.iter().map(Vec::as_slice).collect();
        if ticket
            .as_ref()
            .is_some_and(|t: &keeperkit_storage::traits::SnapshotTicket| !t.is_finished())
        {
            writes_during += n;
        }
        e.write(1, &refs).unwrap();
        all.extend(txns);
        if ticket.is_none() && all.len() >= prefill {
            ticket = Some(e.start_snapshot().unwrap());
        }
    }
    e.sync().unwrap();
    *gate.0.lock().unwrap() = true;
    gate.1.notify_all();
    let info = ticket.unwrap().wait().unwrap();
    let s = info.position.index;
    eprintln!(
        "snapshot at index {s} ({} nodes); {writes_during} writes applied while it was \
         serialized; {} writes in all",
        info.node_count,
        all.len()
    );
    assert_eq!(s as usize, prefill);
    assert_eq!(writes_during, total - prefill, "every later write overlapped the snapshot");

    // The live tree equals the model after every write.
    e.with_tree(|t| assert_matches(t, &w.model, "live tree"));
    assert_eq!(e.applied().index, total as u64);

    // The snapshot equals the model replayed up to its index...
    let loaded = load_tree(&*fs, &info.path).unwrap();
    assert_eq!(loaded.meta.last_index, s);
    let mut at_s = Workload::new(20_000);
    for _ in 0..s {
        at_s.next_txn();
    }
    assert_matches(&loaded.tree, &at_s.model, "snapshot");
    // ...and an independent replay of the same txns on a fresh tree.
    let mut replay = DataTree::new();
    for t in &all[..s as usize] {
        replay.apply(&Txn::decode_from(t).unwrap());
    }
    assert_eq!(loaded.tree.digest(), replay.digest(), "snapshot digest vs replay");
    assert_eq!(loaded.tree.last_processed_zxid(), replay.last_processed_zxid());
    assert_eq!(loaded.tree.node_count(), replay.node_count());
}
