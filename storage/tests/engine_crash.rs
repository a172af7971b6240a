//! Crash safety of the native engine, driven by the fault-injecting file system.
//!
//! A snapshot (write, publish, retire old ones, purge the log) and an install from a
//! peer (receive, validate, publish, reset the log) are run with a fault at every
//! fsync (and, separately, at every write) in turn; the power is then cut (pending
//! writes torn at random) and the engine reopened. The durable state only changes at
//! an fsync, so failing each fsync in turn and crashing covers a crash at every
//! instant of the operation; a final round crashes after the operation succeeded.
//!
//! Checked every time: the engine opens; its state holds every acknowledged entry
//! (it equals the model); the snapshot it starts from is at least as new as the newest
//! one that was durable before the operation (no valid snapshot is deleted before its
//! successor is durable); every snapshot file on disk is intact.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod engine_support;

use std::path::Path;
use std::sync::Arc;

use engine_support::{assert_matches, open, write_n, Workload};
use keeperkit_snapshot::native::verify_snapshot;
use keeperkit_storage::engine::layout::snapshot_files;
use keeperkit_storage::engine::NativeEngine;
use keeperkit_storage::traits::{EntryRef, LogStore, SnapshotStore, StateMachine, Storage};
use keeperkit_vfs::fault::{FaultConfig, FaultFs};
use keeperkit_vfs::FileSystem;

#[derive(Clone, Copy, Debug)]
enum Fault {
    Sync,
    Write,
}

fn torn_fs() -> (FaultFs, Arc<dyn FileSystem>) {
    let f = FaultFs::new(FaultConfig { torn_writes: true, partial_write_on_enospc: false });
    let fs: Arc<dyn FileSystem> = Arc::new(f.clone());
    (f, fs)
}

fn arm(f: &FaultFs, fault: Fault, n: u64) {
    match fault {
        Fault::Sync => f.fail_nth_sync(n),
        Fault::Write => f.fail_nth_write(n),
    }
}

/// Power loss: nothing more reaches the disk, the engine is dropped, reboot.
fn power_loss(f: &FaultFs, e: NativeEngine, seed: u64) {
    f.halt();
    drop(e);
    f.crash(seed);
}

fn check_snapshots_intact(fs: &dyn FileSystem, dir: &Path) {
    for (_, p) in snapshot_files(fs, &dir.join("snapshots")).unwrap() {
        let problems = verify_snapshot(fs, &p).unwrap();
        assert!(problems.is_empty(), "{}: {problems:?}", p.display());
    }
}

/// Three rounds of writes and two snapshots (so the next snapshot retires one and
/// purges the log), then more writes after the newest snapshot.
fn scenario(fs: &Arc<dyn FileSystem>, dir: &Path) -> (NativeEngine, Workload, u64) {
    let mut w = Workload::new(40);
    let e = open(fs, dir);
    write_n(&e, &mut w, 150);
    e.start_snapshot().unwrap().wait().unwrap();
    write_n(&e, &mut w, 150);
    let newest = e.start_snapshot().unwrap().wait().unwrap().position.index;
    write_n(&e, &mut w, 150);
    (e, w, newest)
}

fn crash_during_snapshot(fault: Fault) {
    let dir = Path::new("/data");
    let mut n = 1;
    loop {
        let (f, fs) = torn_fs();
        let (e, w, newest_before) = scenario(&fs, dir);
        let faults = f.stats().faults;
        arm(&f, fault, n);
        let result = e.start_snapshot().unwrap().wait();
        let fired = f.stats().faults > faults;
        f.clear_faults();
        assert!(fired || result.is_ok(), "no fault, yet the snapshot failed: {result:?}");
        let ok = result.is_ok();
        power_loss(&f, e, n);

        let e = open(&fs, dir);
        let what = format!("{fault:?} fault #{n} (snapshot {})", if ok { "ok" } else { "failed" });
        e.with_tree(|t| assert_matches(t, &w.model, &what));
        assert_eq!(e.applied().index, w.count as u64, "{what}: every acknowledged entry");
        let r = e.open_report();
        assert!(r.skipped_snapshots.is_empty(), "{what}: {r:?}");
        let used = r.snapshot.as_ref().unwrap().position.index;
        assert!(used >= newest_before, "{what}: started from {used}, older than {newest_before}");
        if ok {
            assert_eq!(used, w.count as u64, "{what}: an acknowledged snapshot is used");
        }
        check_snapshots_intact(&*fs, dir);
        // The engine goes on working after the crash.
        let mut w2 = w.clone();
        write_n(&e, &mut w2, 3);
        e.start_snapshot().unwrap().wait().unwrap();
        e.with_tree(|t| assert_matches(t, &w2.model, &what));
        if !fired {
            assert!(n > 3, "{fault:?}: the snapshot should take several steps, took {n}");
            break;
        }
        n += 1;
    }
}

#[test]
fn crash_at_every_fsync_of_snapshot_publish_and_log_purge() {
    crash_during_snapshot(Fault::Sync);
}

#[test]
fn crash_at_every_write_of_snapshot_publish_and_log_purge() {
    crash_during_snapshot(Fault::Write);
}

#[test]
fn crash_at_every_fsync_of_an_install() {
    let leader_dir = Path::new("/leader");
    let dir = Path::new("/follower");
    let mut n = 1;
    loop {
        let (f, fs) = torn_fs();
        // The leader: 300 entries of term 2, a snapshot at 300.
        let mut lw = Workload::new(30);
        let leader = open(&fs, leader_dir);
        for _ in 0..300 {
            let t = lw.next_txn();
            leader.write(2, &[&t]).unwrap();
        }
        let snap = leader.start_snapshot().unwrap().wait().unwrap();
        let bytes = leader.snapshot_bytes(snap.position.index).unwrap();
        drop(leader);
        // The follower: 100 committed (applied) entries and a snapshot, then a
        // diverging, uncommitted history of term 1 in its log up to 350.
        let mut fw = Workload::new(40);
        let follower = open(&fs, dir);
        write_n(&follower, &mut fw, 100);
        follower.start_snapshot().unwrap().wait().unwrap();
        for index in 101..=350 {
            let t = fw.next_txn();
            follower.append(&[EntryRef { index, term: 1, payload: &t }]).unwrap();
        }

        let faults = f.stats().faults;
        arm(&f, Fault::Sync, n);
        let result = follower.install_snapshot(&mut bytes.as_slice());
        let fired = f.stats().faults > faults;
        f.clear_faults();
        assert!(fired || result.is_ok(), "no fault, yet the install failed: {result:?}");
        let ok = result.is_ok();
        power_loss(&f, follower, n);

        let e = open(&fs, dir);
        let what = format!("sync fault #{n} (install {})", if ok { "ok" } else { "failed" });
        let applied = e.applied();
        if applied == snap.position {
            e.with_tree(|t| assert_matches(t, &lw.model, &what));
            assert_eq!(e.next_index(), 301, "{what}: the log continues the snapshot");
        } else {
            // Before the new snapshot was durable: the old state, its log replayed.
            assert!(!ok, "{what}: the install was acknowledged but is lost");
            e.with_tree(|t| assert_matches(t, &fw.model, &what));
            assert_eq!(applied.index, 350, "{what}");
        }
        check_snapshots_intact(&*fs, dir);
        if !fired {
            break;
        }
        n += 1;
    }
}
