//! What the native engine keeps for a replicated server besides the tree: cluster
//! config entries (applied, snapshotted, replayed, installed), the durable server
//! state and the unsynced commit hint, each through crashes of the fault-injecting
//! file system.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod engine_support;

use std::path::Path;
use std::sync::Arc;

use engine_support::{assert_matches, open, write_n, Workload};
use keeperkit_storage::engine::{
    batch_entry, config_entry, parse_batch_entry, parse_config_entry, recover_readonly,
    NativeEngine, Replay, ReplayEnd,
};
use keeperkit_storage::traits::{
    EntryRef, LogPosition, LogStore, SnapshotStore, StateMachine, Storage,
};
use keeperkit_vfs::fault::{FaultConfig, FaultFs};
use keeperkit_vfs::FileSystem;

fn fault_fs() -> (FaultFs, Arc<dyn FileSystem>) {
    let f = FaultFs::new(FaultConfig { torn_writes: true, partial_write_on_enospc: false });
    let fs: Arc<dyn FileSystem> = Arc::new(f.clone());
    (f, fs)
}

fn power_loss(f: &FaultFs, e: NativeEngine, seed: u64) {
    f.halt();
    drop(e);
    f.crash(seed);
}

#[test]
fn config_entry_encoding() {
    for c in [&b""[..], b"members=1,2,3", &[0u8; 100][..]] {
        let p = config_entry(c);
        assert_eq!(parse_config_entry(&p), Some(c));
    }
    // A jute txn and an empty payload are not config entries.
    let mut w = Workload::new(10);
    assert_eq!(parse_config_entry(&w.next_txn()), None);
    assert_eq!(parse_config_entry(&[]), None);
    let mut p = config_entry(b"x");
    p[5] = 1;
    assert_eq!(parse_config_entry(&p), None);
}

#[test]
fn batch_entry_encoding_and_hostile_bytes() {
    let mut w = Workload::new(10);
    let txns: Vec<Vec<u8>> = (0..3).map(|_| w.next_txn()).collect();
    let refs: Vec<&[u8]> = txns.iter().map(Vec::as_slice).collect();
    let p = batch_entry(&refs);
    assert_eq!(parse_batch_entry(&p), Some(Ok(refs.clone())));
    assert_eq!(parse_batch_entry(&batch_entry(&[])), Some(Ok(Vec::new())));
    // Txns, config entries and empty payloads are not batch entries.
    assert_eq!(parse_batch_entry(&txns[0]), None);
    assert_eq!(parse_batch_entry(&config_entry(b"x")), None);
    assert_eq!(parse_batch_entry(&[]), None);
    assert_eq!(parse_config_entry(&p), None);
    // Cut anywhere after the header, one byte more, or a huge count: an error.
    for n in 32..p.len() {
        assert!(matches!(parse_batch_entry(&p[..n]), Some(Err(_))), "cut at {n}");
    }
    let mut long = p.clone();
    long.push(0);
    assert!(matches!(parse_batch_entry(&long), Some(Err(_))));
    let mut huge = p.clone();
    huge[32..36].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(matches!(parse_batch_entry(&huge), Some(Err(_))));
}

#[test]
fn batch_entries_are_applied_in_order_and_replayed() {
    let (_f, fs) = fault_fs();
    let dir = Path::new("/b");
    let mut w = Workload::new(30);
    let e = open(&fs, dir);
    write_n(&e, &mut w, 10);
    let txns: Vec<Vec<u8>> = (0..7).map(|_| w.next_txn()).collect();
    let refs: Vec<&[u8]> = txns.iter().map(Vec::as_slice).collect();
    let batch = batch_entry(&refs);
    e.append(&[EntryRef { index: 11, term: 2, payload: &batch }]).unwrap();
    let results = e.apply_entry(EntryRef { index: 11, term: 2, payload: &batch }).unwrap();
    assert_eq!(results.len(), 7);
    assert!(results.iter().all(|r| r.is_ok()), "{results:?}");
    assert_eq!(e.applied(), LogPosition { index: 11, term: 2 });
    e.with_tree(|t| assert_matches(t, &w.model, "applied"));
    e.sync().unwrap();
    write_n(&e, &mut w, 3);
    drop(e);
    // Replayed on open, and by the tools' read-only recovery.
    let e = open(&fs, dir);
    assert_eq!(e.applied().index, 14);
    e.with_tree(|t| assert_matches(t, &w.model, "reopened"));
    let ro = recover_readonly(&*fs, dir, None).unwrap();
    assert_eq!(ro.end, ReplayEnd::Complete);
    assert_matches(&ro.tree, &w.model, "read-only");
    // A damaged batch (a txn that does not decode) is refused, nothing of it applied.
    let bad = batch_entry(&[refs[0], b"not a txn"]);
    e.append(&[EntryRef { index: 15, term: 2, payload: &bad }]).unwrap();
    assert!(e.apply_entry(EntryRef { index: 15, term: 2, payload: &bad }).is_err());
    assert_eq!(e.applied().index, 14);
    e.with_tree(|t| assert_matches(t, &w.model, "after a damaged batch"));
}

#[test]
fn config_entries_are_applied_snapshotted_replayed_and_installed() {
    let (_f, fs) = fault_fs();
    let dir = Path::new("/a");
    let mut w = Workload::new(30);
    let e = open(&fs, dir);
    assert_eq!(e.cluster_config(), (Vec::new(), LogPosition::default()));
    write_n(&e, &mut w, 20);
    e.write(1, &[&config_entry(b"v1")]).unwrap();
    write_n(&e, &mut w, 20);
    let (c, pos) = e.cluster_config();
    assert_eq!((c.as_slice(), pos.index), (&b"v1"[..], 41));
    let snap = e.start_snapshot().unwrap().wait().unwrap();
    assert_eq!(e.snapshot_cluster_config(snap.position.index).unwrap(), b"v1");
    // A config entry after the snapshot is replayed on open.
    e.write(1, &[&config_entry(b"v2")]).unwrap();
    write_n(&e, &mut w, 5);
    drop(e);
    let e = open(&fs, dir);
    assert_eq!(e.cluster_config().0, b"v2");
    e.with_tree(|t| assert_matches(t, &w.model, "reopened"));
    // Opened without replay: the snapshot's config.
    let mut o = engine_support::options(dir);
    o.replay = Replay::None;
    drop(e);
    let e = NativeEngine::open(fs.clone(), o).unwrap();
    assert_eq!(e.cluster_config(), (b"v1".to_vec(), snap.position));
    // The read-only recovery the tools use skips config entries.
    let ro = recover_readonly(&*fs, dir, None).unwrap();
    assert_eq!(ro.end, ReplayEnd::Complete);
    assert_matches(&ro.tree, &w.model, "read-only");
    // An install carries the snapshot's config.
    let bytes = e.snapshot_bytes(snap.position.index).unwrap();
    let other = open(&fs, Path::new("/b"));
    other.install_snapshot(&mut bytes.as_slice()).unwrap();
    assert_eq!(other.cluster_config(), (b"v1".to_vec(), snap.position));
    // Applying a config entry through the trait.
    let payload = config_entry(b"v3");
    let next = snap.position.index + 1;
    other.append(&[EntryRef { index: next, term: 1, payload: &payload }]).unwrap();
    other.apply(EntryRef { index: next, term: 1, payload: &payload }).unwrap();
    assert_eq!(other.cluster_config().0, b"v3");
    assert_eq!(other.applied().index, next);
}

#[test]
fn server_state_is_durable_and_atomic_at_every_fsync() {
    let dir = Path::new("/d");
    let mut n = 1;
    loop {
        let (f, fs) = fault_fs();
        let e = open(&fs, dir);
        assert!(e.server_state().is_empty());
        e.set_server_state(b"old state").unwrap();
        f.fail_nth_sync(n);
        let faults = f.stats().faults;
        let r = e.set_server_state(&[9u8; 300]);
        let fired = f.stats().faults > faults;
        f.clear_faults();
        assert!(fired || r.is_ok(), "{r:?}");
        power_loss(&f, e, n);
        let e = open(&fs, dir);
        let s = e.server_state();
        if r.is_ok() {
            assert_eq!(s, vec![9u8; 300], "sync fault #{n}: an acknowledged state is lost");
        } else {
            assert!(s == b"old state" || s == vec![9u8; 300], "sync fault #{n}: {s:?}");
        }
        assert!(!fs.exists(&dir.join("server-state.tmp")));
        if !fired {
            assert!(n > 2, "the write should take a file and a directory fsync");
            break;
        }
        n += 1;
    }
}

#[test]
fn damaged_server_state_is_an_error() {
    let (f, fs) = fault_fs();
    let dir = Path::new("/d");
    let e = open(&fs, dir);
    e.set_server_state(b"vote").unwrap();
    drop(e);
    f.flip_bit(&dir.join("server-state"), 17, 0).unwrap();
    let err = NativeEngine::open(fs.clone(), engine_support::options(dir)).unwrap_err();
    assert!(err.is_corruption(), "{err}");
}

#[test]
fn commit_hint_is_kept_but_not_synced() {
    let (f, fs) = fault_fs();
    let dir = Path::new("/d");
    let e = open(&fs, dir);
    assert_eq!(e.commit_hint(), None);
    let p1 = LogPosition { index: 10, term: 2 };
    e.set_commit_hint(p1).unwrap();
    assert_eq!(e.commit_hint(), Some(p1));
    drop(e);
    // A clean restart (the OS kept the write).
    let e = open(&fs, dir);
    assert_eq!(e.commit_hint(), Some(p1));
    let syncs = f.stats().file_syncs + f.stats().dir_syncs;
    for i in 11..100 {
        e.set_commit_hint(LogPosition { index: i, term: 2 }).unwrap();
    }
    assert_eq!(f.stats().file_syncs + f.stats().dir_syncs, syncs, "the hint is never synced");
    // Power loss: the hint is whatever reached the disk, or nothing; never garbage.
    for seed in 0..20 {
        e.set_commit_hint(LogPosition { index: 500 + seed, term: 3 }).unwrap();
    }
    power_loss(&f, e, 7);
    let e = open(&fs, dir);
    assert!(e.commit_hint().is_none_or(|h| h.term <= 3 && h.index <= 519), "{:?}", e.commit_hint());
    assert!(e.open_report().snapshot.is_none());
}
