//! A real process is killed with SIGKILL while it appends: everything it reported
//! as acknowledged must be in the log when it is reopened, over and over on the
//! same directory.
//!
//! Guards against durability claimed before the data reaches the OS, an index
//! reported before its append returned, and a log that a killed writer leaves
//! unopenable (half-created segments, temp files, torn records).
//!
//! Method: the test re-executes its own binary, running only `child_writer` with
//! `KEEPERKIT_SIGKILL_CHILD_DIR` set; that child opens the log (recovering whatever
//! the previous child left), appends synced entries from two threads and prints
//! `ack <index>` after each append returns. The parent kills it after a random delay,
//! reopens the log and checks every printed index and its payload. Seeds are printed;
//! `KEEPERKIT_SIGKILL_SEED` and `KEEPERKIT_SIGKILL_ITERS` reproduce and extend runs.

#![allow(clippy::unwrap_used, clippy::cast_possible_truncation)]

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use keeperkit_vfs::{FileSystem, StdFs};
use keeperkit_wal::native::{NativeWal, NativeWalOptions, SyncPolicy};

const CHILD_ENV: &str = "KEEPERKIT_SIGKILL_CHILD_DIR";

fn options(dir: &Path) -> NativeWalOptions {
    let mut o = NativeWalOptions::new(dir);
    // Small segments so that kills land during rotations too.
    o.segment_len = 64 << 10;
    o.sync = SyncPolicy::Always;
    o
}

/// The payload of entry `index`: derived from the index so the parent can check it.
fn payload(index: u64) -> Vec<u8> {
    let len = 100 + (index % 7) as usize * 150;
    (0..len)
        .map(|i| (index.wrapping_mul(2_654_435_761).wrapping_add(i as u64) >> 3) as u8)
        .collect()
}

/// Runs only in the child process.
#[test]
fn child_writer() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let fs: Arc<dyn FileSystem> = Arc::new(StdFs);
    let wal = Arc::new(NativeWal::open(fs, options(Path::new(&dir))).unwrap());
    let out = Arc::new(std::sync::Mutex::new(std::io::stdout()));
    let threads: Vec<_> = (0..2)
        .map(|_| {
            let wal = Arc::clone(&wal);
            let out = Arc::clone(&out);
            std::thread::spawn(move || loop {
                // Reserve the index and write under the WAL's lock: the payload depends
                // on the index, so we append with the index we are given.
                let r = {
                    let next = wal.next_index();
                    let p = payload(next);
                    wal.append(&[keeperkit_wal::native::EntryRef {
                        index: next,
                        term: 1,
                        payload: &p,
                    }])
                    .map(|()| next)
                };
                if let Ok(index) = r {
                    let mut o = out.lock().unwrap();
                    writeln!(o, "ack {index}").unwrap();
                    o.flush().unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

#[test]
fn sigkill_loses_no_acknowledged_entry() {
    if std::env::var(CHILD_ENV).is_ok() {
        return;
    }
    let seed = std::env::var("KEEPERKIT_SIGKILL_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| u64::from(std::process::id()) ^ 0x5EED);
    let iters: u32 =
        std::env::var("KEEPERKIT_SIGKILL_ITERS").ok().and_then(|v| v.parse().ok()).unwrap_or(30);
    let budget = Duration::from_secs(15);
    println!("native_sigkill: seed {seed} (KEEPERKIT_SIGKILL_SEED), {iters} iterations");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    let exe = std::env::current_exe().unwrap();
    let mut rng = seed;
    let mut acked_all = std::collections::BTreeSet::new();
    let start = Instant::now();
    let mut runs = 0;
    for _ in 0..iters {
        if start.elapsed() > budget {
            break;
        }
        rng = rng.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        let delay = Duration::from_millis(20 + (rng >> 33) % 180);
        let mut child = Command::new(&exe)
            .args(["--exact", "child_writer", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, &dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            let mut acked = Vec::new();
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(i) = line.strip_prefix("ack ").and_then(|v| v.parse::<u64>().ok()) {
                    acked.push(i);
                }
            }
            acked
        });
        std::thread::sleep(delay);
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        acked_all.extend(reader.join().unwrap());
        runs += 1;

        let fs: Arc<dyn FileSystem> = Arc::new(StdFs);
        let wal = NativeWal::open(fs, options(&dir))
            .unwrap_or_else(|e| panic!("seed {seed} run {runs}: open after SIGKILL: {e}"));
        let last = wal.last_index().unwrap_or(0);
        for &i in &acked_all {
            assert!(i <= last, "seed {seed} run {runs}: acknowledged {i} past the end {last}");
        }
        if let Some(first) = wal.first_index() {
            for e in wal.read_range(first..last + 1).unwrap() {
                assert_eq!(
                    e.payload,
                    payload(e.index),
                    "seed {seed} run {runs}: index {}",
                    e.index
                );
            }
        }
    }
    println!(
        "native_sigkill: {runs} kills, {} acknowledged entries checked, {:?}",
        acked_all.len(),
        start.elapsed()
    );
    assert!(runs > 0);
    assert!(!acked_all.is_empty(), "the child never acknowledged anything");
}
