//! The snapshot writer's write-behind (`WriteOptions::write_behind`): as the file is
//! written, the writeback of each new step is started and the step before it waited
//! for, so that the dirty pages stay within about two steps; with 0 there is none. The
//! file written is the same either way.
//!
//! Guards against: a write-behind that starts ranges twice or skips some, waits for a
//! range it never started, runs ahead of the bytes written, lets the dirty bytes grow
//! past two steps, or changes what the snapshot holds.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::cast_possible_truncation)]

use std::io;
use std::path::Path;
use std::sync::{Arc, Mutex};

use keeperkit_model::{Acl, Zxid};
use keeperkit_snapshot::native::{
    read_snapshot, write_snapshot, AclEntry, CollectSink, NodeStat, OwnedNode, SnapshotMeta,
    WriteOptions,
};
use keeperkit_vfs::{DirEntry, FaultConfig, FaultFs, File, FileSystem, Metadata, OpenMode};

/// One call: a write (offset, len) or a write-back (offset, len, wait).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Call {
    Write(u64, u64),
    WriteBack(u64, u64, bool),
}

/// A file system that records the writes and write-backs of its files.
#[derive(Debug)]
struct Recording {
    inner: FaultFs,
    calls: Arc<Mutex<Vec<Call>>>,
}

#[derive(Debug)]
struct RecordingFile {
    inner: Arc<dyn File>,
    calls: Arc<Mutex<Vec<Call>>>,
}

impl File for RecordingFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.inner.read_at(buf, offset)
    }
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.calls.lock().unwrap().push(Call::Write(offset, buf.len() as u64));
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
    fn write_back(&self, offset: u64, len: u64, wait: bool) -> io::Result<()> {
        self.calls.lock().unwrap().push(Call::WriteBack(offset, len, wait));
        self.inner.write_back(offset, len, wait)
    }
}

impl FileSystem for Recording {
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Arc<dyn File>> {
        let inner = self.inner.open(path, mode)?;
        Ok(Arc::new(RecordingFile { inner, calls: Arc::clone(&self.calls) }))
    }
    fn read_dir(&self, path: &Path) -> io::Result<Vec<DirEntry>> {
        self.inner.read_dir(path)
    }
    fn metadata(&self, path: &Path) -> io::Result<Metadata> {
        self.inner.metadata(path)
    }
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        self.inner.create_dir_all(path)
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.inner.rename(from, to)
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        self.inner.remove_file(path)
    }
    fn remove_dir(&self, path: &Path) -> io::Result<()> {
        self.inner.remove_dir(path)
    }
    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        self.inner.sync_dir(path)
    }
}

/// The root and `n` nodes with values that do not compress much (a pseudo-random
/// sequence), so that the file is several write-behind steps long.
fn nodes(n: usize) -> Vec<OwnedNode> {
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let mut out =
        vec![OwnedNode { path: "/".into(), data: None, acl_id: 1, stat: NodeStat::default() }];
    for i in 0..n {
        let data = (0..200)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        out.push(OwnedNode {
            path: format!("/n{i:05}"),
            data: Some(data),
            acl_id: 1,
            stat: NodeStat { czxid: i as i64, ..NodeStat::default() },
        });
    }
    out
}

fn meta(nodes: &[OwnedNode]) -> SnapshotMeta {
    SnapshotMeta {
        last_index: 7,
        last_term: 1,
        zxid: Zxid(7),
        node_count: nodes.len() as u64,
        digest: 7,
        cluster_config: vec![],
        sessions: vec![],
        acls: vec![AclEntry { id: 1, acl: Acl::open_unsafe() }],
    }
}

/// Writes the snapshot of `src` through a recording file system; returns the calls
/// and the nodes read back.
fn write(src: &[OwnedNode], opts: &WriteOptions) -> (Vec<Call>, Vec<OwnedNode>) {
    let fs = Recording { inner: FaultFs::new(FaultConfig::default()), calls: Arc::default() };
    fs.create_dir_all(Path::new("/s")).unwrap();
    let src = src.to_vec();
    let w = write_snapshot(&fs, Path::new("/s"), "snap", &meta(&src), &src, opts).unwrap();
    let calls = fs.calls.lock().unwrap().clone();
    let mut sink = CollectSink::default();
    read_snapshot(&fs, &w.path, &mut sink).unwrap();
    (calls, sink.nodes)
}

/// Checks the write-backs of `calls` against the writes before each of them.
fn check(calls: &[Call], step: u64) -> usize {
    let mut written = 0u64; // end of the bytes written so far
    let mut started = 0u64; // end of the ranges started
    let mut waited = 0u64; // end of the ranges waited for
    let mut n = 0;
    for c in calls {
        match *c {
            Call::Write(off, len) => written = written.max(off + len),
            Call::WriteBack(off, len, false) => {
                assert_eq!(off, started, "ranges are started in order, each once: {c:?}");
                assert!(off + len <= written, "{c:?} runs ahead of the {written} bytes written");
                assert!(len >= step, "{c:?}: a start covers at least one step of {step}");
                started = off + len;
                n += 1;
            }
            Call::WriteBack(off, len, true) => {
                assert_eq!(off, waited, "ranges are waited for in order, each once: {c:?}");
                assert!(off + len <= started, "{c:?} waits for a range never started");
                waited = off + len;
            }
        }
        // What is neither waited for nor being started is within two steps (plus the
        // chunk that crossed the step's end).
        if matches!(c, Call::WriteBack(_, _, true)) {
            assert!(written - waited <= 2 * step + 64 * 1024, "{written} written, {waited} waited");
        }
    }
    n
}

#[test]
fn write_behind_starts_each_step_and_waits_for_the_one_before() {
    let src = nodes(3000); // about 600 KiB of values
    let step = 16 << 10;
    for threads in [1, 2] {
        let opts =
            WriteOptions { chunk_len_target: 4096, threads, write_behind: step, level: Some(1) };
        let (calls, back) = write(&src, &opts);
        let starts = check(&calls, step);
        let waits = calls.iter().filter(|c| matches!(c, Call::WriteBack(_, _, true))).count();
        assert!(starts >= 20, "{threads} threads: {starts} write-backs started for ~600 KiB");
        assert_eq!(waits, starts - 1, "{threads} threads: every start but the last is waited for");
        assert_eq!(back, src, "{threads} threads");
    }
}

#[test]
fn write_behind_zero_writes_nothing_back_and_the_same_file() {
    let src = nodes(500);
    let on = WriteOptions { chunk_len_target: 4096, threads: 1, write_behind: 4096, level: None };
    let off = WriteOptions { write_behind: 0, ..on };
    let (calls_on, back_on) = write(&src, &on);
    let (calls_off, back_off) = write(&src, &off);
    assert!(calls_on.iter().any(|c| matches!(c, Call::WriteBack(..))));
    assert!(!calls_off.iter().any(|c| matches!(c, Call::WriteBack(..))), "{calls_off:?}");
    let writes = |calls: &[Call]| {
        calls.iter().filter(|c| matches!(c, Call::Write(..))).copied().collect::<Vec<_>>()
    };
    assert_eq!(writes(&calls_on), writes(&calls_off), "the same writes either way");
    assert_eq!(back_on, src);
    assert_eq!(back_off, src);
}
