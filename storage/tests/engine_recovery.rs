//! The native engine opens to the state it acknowledged: snapshot + log replay, keep N,
//! log purge up to the oldest kept snapshot, fallback to an older snapshot when the
//! newest is damaged, installing a snapshot from a peer (and refusing a bad one).
//!
//! Guards against: replay applying entries the snapshot already holds (or missing
//! some), retention deleting the snapshot recovery needs, a purge removing entries an
//! older kept snapshot needs, an install publishing unvalidated bytes or leaving the
//! log out of step with the new state.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod engine_support;

use std::path::Path;
use std::sync::Arc;

use engine_support::{assert_matches, open, write_n, Workload};
use keeperkit_storage::engine::NativeEngine;
use keeperkit_storage::traits::{LogStore, SnapshotStore, StateMachine, Storage};
use keeperkit_vfs::fault::{FaultConfig, FaultFs};
use keeperkit_vfs::FileSystem;

fn fault_fs() -> (FaultFs, Arc<dyn FileSystem>) {
    let f = FaultFs::new(FaultConfig::default());
    let fs: Arc<dyn FileSystem> = Arc::new(f.clone());
    (f, fs)
}

fn state_matches(e: &NativeEngine, w: &Workload, what: &str) {
    e.with_tree(|t| assert_matches(t, &w.model, what));
    assert_eq!(e.applied().index, w.count as u64, "{what}: applied index");
}

#[test]
fn reopen_replays_after_the_snapshot() {
    let (_f, fs) = fault_fs();
    let dir = Path::new("/data");
    let mut w = Workload::new(50);
    let e = open(&fs, dir);
    assert!(e.open_report().created);
    write_n(&e, &mut w, 300);
    let info = e.start_snapshot().unwrap().wait().unwrap();
    assert_eq!(info.position.index, 300);
    write_n(&e, &mut w, 120);
    state_matches(&e, &w, "live");
    drop(e);
    let e = open(&fs, dir);
    let r = e.open_report().clone();
    assert!(!r.created);
    assert_eq!(r.snapshot.as_ref().unwrap().position.index, 300);
    assert_eq!(r.replayed, 120);
    assert!(r.skipped_snapshots.is_empty());
    state_matches(&e, &w, "reopened");
    assert_eq!(e.get("/w").unwrap().stat.num_children as usize, w.model.len());
    assert!(e.exists("/nope").is_none());
    // Writes continue after a reopen.
    write_n(&e, &mut w, 10);
    state_matches(&e, &w, "after more writes");
}

#[test]
fn keeps_n_snapshots_and_purges_up_to_the_oldest_kept() {
    let (_f, fs) = fault_fs();
    let dir = Path::new("/data");
    let mut w = Workload::new(40);
    let e = open(&fs, dir);
    let mut indexes = Vec::new();
    for _ in 0..4 {
        write_n(&e, &mut w, 200);
        indexes.push(e.start_snapshot().unwrap().wait().unwrap().position.index);
    }
    let kept: Vec<u64> = e.list_snapshots().unwrap().iter().map(|s| s.position.index).collect();
    assert_eq!(kept, indexes[2..].to_vec(), "the newest two are kept");
    assert_eq!(e.wal().purged_index(), indexes[2], "purged up to the oldest kept");
    assert_eq!(e.first_index(), Some(indexes[2] + 1));
    state_matches(&e, &w, "live");
}

#[test]
fn falls_back_to_an_older_snapshot_when_the_newest_is_damaged() {
    let (f, fs) = fault_fs();
    let dir = Path::new("/data");
    let mut w = Workload::new(40);
    let e = open(&fs, dir);
    write_n(&e, &mut w, 200);
    e.start_snapshot().unwrap().wait().unwrap();
    write_n(&e, &mut w, 200);
    let newest = e.start_snapshot().unwrap().wait().unwrap();
    write_n(&e, &mut w, 30);
    drop(e);
    // Media corruption in the middle of the newest snapshot.
    f.flip_bit(&newest.path, newest.file_len / 3, 2).unwrap();
    let e = open(&fs, dir);
    let r = e.open_report();
    assert_eq!(r.skipped_snapshots.len(), 1, "{r:?}");
    assert_eq!(r.skipped_snapshots[0].path, newest.path);
    assert_eq!(r.snapshot.as_ref().unwrap().position.index, 200);
    assert_eq!(r.replayed, 230);
    state_matches(&e, &w, "after fallback");
}

#[test]
fn installs_a_snapshot_from_a_peer() {
    let (_f, fs) = fault_fs();
    let mut w = Workload::new(60);
    let leader = open(&fs, Path::new("/leader"));
    write_n(&leader, &mut w, 500);
    let snap = leader.start_snapshot().unwrap().wait().unwrap();
    let bytes = leader.snapshot_bytes(snap.position.index).unwrap();

    let follower = open(&fs, Path::new("/follower"));
    let mut fw = Workload::new(7);
    write_n(&follower, &mut fw, 20); // a divergent history, replaced by the install
                                     // Garbage is refused and changes nothing.
    let mut bad = bytes.clone();
    bad[bytes.len() / 2] ^= 0x10;
    assert!(follower.install_snapshot(&mut bad.as_slice()).is_err());
    assert_eq!(follower.applied().index, 20);
    assert!(!fs.exists(Path::new("/follower/snapshots/incoming.kks.tmp")));

    let info = follower.install_snapshot(&mut bytes.as_slice()).unwrap();
    assert_eq!(info.position, snap.position);
    assert_eq!(follower.applied(), snap.position);
    assert_eq!(follower.next_index(), 501);
    assert_eq!(follower.first_index(), None);
    state_matches(&follower, &w, "installed");
    // The follower continues the leader's log.
    let more: Vec<Vec<u8>> = (0..5).map(|_| w.next_txn()).collect();
    for (i, p) in more.iter().enumerate() {
        let index = 501 + i as u64;
        follower
            .append(&[keeperkit_storage::traits::EntryRef { index, term: 1, payload: p }])
            .unwrap();
        follower.apply(keeperkit_storage::traits::EntryRef { index, term: 1, payload: p }).unwrap();
    }
    drop(follower);
    let follower = open(&fs, Path::new("/follower"));
    assert_eq!(follower.open_report().replayed, 5);
    state_matches(&follower, &w, "installed, reopened");
}

#[test]
fn refuses_a_non_empty_directory_without_marker() {
    let (_f, fs) = fault_fs();
    fs.create_dir_all(Path::new("/other")).unwrap();
    let file = fs.open(Path::new("/other/x"), keeperkit_vfs::OpenMode::CreateNew).unwrap();
    file.write_all_at(b"x", 0).unwrap();
    let err =
        NativeEngine::open(fs.clone(), engine_support::options(Path::new("/other"))).unwrap_err();
    assert!(err.to_string().contains("KEEPERKIT"), "{err}");
}

/// Finding 1 of the damaged-input review, in the engine a server opens: a converted
/// snapshot carries its real position, and when it is damaged and the log does not
/// reach back, opening fails with a typed error instead of starting from an empty tree.
#[test]
fn finding_01_engine_refuses_a_damaged_snapshot_the_log_does_not_cover() {
    let fs: Arc<dyn FileSystem> = keeperkit_vfs::std_fs();
    let fixture =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/zookeeper-3.8.0/basic/data");
    let src = keeperkit_storage::open(&*fs, &fixture, &Default::default()).unwrap();
    let state = src.recover(keeperkit_storage::Point::Latest).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("native");
    let opts = keeperkit_storage::convert::ConvertOptions { lossy: true, ..Default::default() };
    keeperkit_storage::convert::write_state(
        &fs,
        &state,
        keeperkit_storage::Dialect::Native,
        &fixture,
        &dir,
        &opts,
        &mut keeperkit_storage::NoProgress,
    )
    .unwrap();
    let e = open(&fs, &dir);
    let nodes = e.with_tree(|t| t.node_count());
    assert_eq!(nodes, state.tree.node_count());
    drop(e);
    let snaps = dir.join("snapshots");
    let snap = std::fs::read_dir(&snaps).unwrap().map(|e| e.unwrap().path()).next().unwrap();
    assert!(!snap.ends_with("snap-0000000000000000.kks"), "{}", snap.display());
    let mut bytes = std::fs::read(&snap).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x10;
    std::fs::write(&snap, bytes).unwrap();
    let err = NativeEngine::open(fs.clone(), engine_support::options(&dir)).unwrap_err();
    assert!(err.is_corruption(), "{err}");
    assert!(err.to_string().contains(&snap.display().to_string()), "{err}");
}
