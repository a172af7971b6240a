//! The snapshot's file is written by a thread at the configured CPU priority
//! (`NativeEngineOptions::snapshot_priority`), and only that thread: the thread that
//! starts the snapshot (a server's committer) keeps its own, and so does the thread
//! that retires old snapshots and purges the log after it (it takes the log's locks).
//! An idle-class writer that is not done after `raise_after` is raised.
//!
//! Guards against: the class set on the wrong thread (the committer's, which would put
//! every client behind every other thread of the machine), or not at all.
#![cfg(target_os = "linux")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod engine_support;

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use engine_support::{options, write_n, Workload};
use keeperkit_storage::engine::layout::SNAPSHOT_DIR;
use keeperkit_storage::engine::priority::{current_class, ThreadClass, RAISED_NICE};
use keeperkit_storage::engine::{NativeEngine, SnapshotPriority};
use keeperkit_storage::traits::SnapshotStore;
use keeperkit_vfs::{FaultConfig, FaultFs, FileSystem, OpenMode};

/// What the test saw: the class of the thread that created each snapshot file, and of
/// the thread that opened anything else during the snapshot (the log's metadata file,
/// which a purge rewrites).
#[derive(Default, Debug)]
struct Seen {
    snapshot_file: Vec<ThreadClass>,
    others: Vec<(String, ThreadClass)>,
}

/// Takes three snapshots (so that retention removes one and purges the log) with `p`
/// configured, from a fresh thread; returns what was seen and the starting thread's
/// class afterwards. `wait_for_raise`: the hook at the snapshot file's creation waits
/// (up to 10 s) until its thread has left the idle class.
fn snapshots_with(p: SnapshotPriority, wait_for_raise: bool) -> (Seen, ThreadClass) {
    std::thread::spawn(move || {
        let fault = FaultFs::new(FaultConfig::default());
        let seen = Arc::new(Mutex::new(Seen::default()));
        let recording = Arc::new(Mutex::new(false));
        {
            let (seen, recording) = (seen.clone(), recording.clone());
            fault.on_open(move |path, mode| {
                if !*recording.lock().unwrap() {
                    return;
                }
                let tmp = path.extension().is_some_and(|e| e == "tmp");
                let in_snapshots = path.parent().is_some_and(|d| d.ends_with(SNAPSHOT_DIR));
                if tmp && in_snapshots && mode == OpenMode::CreateTruncate {
                    if wait_for_raise {
                        let t0 = Instant::now();
                        while current_class().unwrap() == ThreadClass::Idle
                            && t0.elapsed() < Duration::from_secs(10)
                        {
                            std::thread::sleep(Duration::from_millis(1));
                        }
                    }
                    seen.lock().unwrap().snapshot_file.push(current_class().unwrap());
                } else if mode != OpenMode::Read {
                    let name = path.display().to_string();
                    seen.lock().unwrap().others.push((name, current_class().unwrap()));
                }
            });
        }
        let fs: Arc<dyn FileSystem> = Arc::new(fault);
        let mut o = options(Path::new("/data"));
        o.snapshot_priority = p;
        o.keep_snapshots = 2;
        let e = NativeEngine::open(fs, o).expect("the engine opens");
        let mut w = Workload::new(20);
        *recording.lock().unwrap() = true;
        for _ in 0..3 {
            write_n(&e, &mut w, 50);
            e.start_snapshot().unwrap().wait().unwrap();
        }
        *recording.lock().unwrap() = false;
        let seen = std::mem::take(&mut *seen.lock().unwrap());
        (seen, current_class().unwrap())
    })
    .join()
    .expect("the test thread")
}

fn fresh_thread_class() -> ThreadClass {
    std::thread::spawn(|| current_class().unwrap()).join().unwrap()
}

#[test]
fn an_idle_snapshot_is_written_in_the_idle_class_and_retired_at_the_callers_priority() {
    let caller = fresh_thread_class();
    assert!(matches!(caller, ThreadClass::Normal { .. }), "a new thread is normal: {caller:?}");
    let idle = SnapshotPriority::Idle { raise_after: Duration::from_secs(600) };
    let (seen, after) = snapshots_with(idle, false);
    assert_eq!(seen.snapshot_file, vec![ThreadClass::Idle; 3], "{seen:?}");
    // The purges after the second and third snapshots rewrite the log's metadata file.
    assert!(!seen.others.is_empty(), "retention opened no file: {seen:?}");
    for (path, class) in &seen.others {
        assert_eq!(*class, caller, "{path} was written by a thread of class {class:?}");
    }
    assert_eq!(after, caller, "the thread that started the snapshots keeps its class");
}

#[test]
fn a_nice_value_applies_to_the_writer_only() {
    let caller = fresh_thread_class();
    let ThreadClass::Normal { nice } = caller else { panic!("{caller:?}") };
    let target = (nice + 7).min(19);
    let (seen, after) = snapshots_with(SnapshotPriority::Nice(target), false);
    assert_eq!(seen.snapshot_file, vec![ThreadClass::Normal { nice: target }; 3], "{seen:?}");
    assert_eq!(after, caller);
}

#[test]
fn without_a_priority_the_writer_keeps_the_inherited_one() {
    let caller = fresh_thread_class();
    let (seen, after) = snapshots_with(SnapshotPriority::Inherit, false);
    assert_eq!(seen.snapshot_file, vec![caller; 3], "{seen:?}");
    assert_eq!(after, caller);
}

#[test]
fn an_idle_writer_still_running_after_raise_after_is_raised_when_privileged() {
    let idle = SnapshotPriority::Idle { raise_after: Duration::ZERO };
    let (seen, _) = snapshots_with(idle, true);
    let expected = if rustix::process::geteuid().is_root() {
        ThreadClass::Normal { nice: RAISED_NICE }
    } else {
        // Leaving the idle class needs CAP_SYS_NICE (or an RLIMIT_NICE that allows
        // nice 10): refused, the writer stays idle, the snapshot is still written.
        ThreadClass::Idle
    };
    assert_eq!(seen.snapshot_file, vec![expected; 3], "{seen:?}");
}
