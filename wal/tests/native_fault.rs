//! Seeded random crash and fault test of the native WAL against an in-memory model.
//!
//! Guards against the failures that lose data in the systems keeperkit replaces: an
//! acknowledged (synced) entry missing after a crash, a log that refuses to open
//! after a crash, entries served past a gap or a torn/corrupt record, an unlink or
//! rename that was not made durable, and a failed fsync later treated as success.
//!
//! Method: each case builds a fresh `FaultFs` (torn writes on or off, partial writes
//! on ENOSPC on or off) and a WAL with random options (sync policy, tiny segments,
//! preallocation, compression), then runs random steps: appends, suffix truncations,
//! purges, syncs, term/vote updates, scheduled EIO on the n-th write or fsync, ENOSPC,
//! space coming back, clean reopens and simulated power losses. After every crash
//! the log must open with `TolerateTornTail`, hold every acknowledged entry, and
//! serve only entries that were appended at that index (never an older, truncated
//! version, never anything corrupt).
//!
//! Reproduce a failure with the printed seed:
//! `KEEPERKIT_FAULT_SEED=<seed> KEEPERKIT_FAULT_ITERS=1 cargo test -p keeperkit-wal --test native_fault`.
//! Run longer with `KEEPERKIT_FAULT_ITERS=100000 KEEPERKIT_FAULT_SECS=600`.

#![allow(clippy::unwrap_used, clippy::cast_possible_truncation)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use keeperkit_vfs::{FaultConfig, FaultFs, FileSystem, OpenMode};
use keeperkit_wal::native::{
    Entry, EntryRef, HardState, NativeWal, NativeWalOptions, RecoveryMode, SyncPolicy,
};
use keeperkit_wal::WalError;

use keeperkit_vfs::SplitMix64 as Rng;

/// `percent` in 100.
fn chance(rng: &mut Rng, percent: u64) -> bool {
    rng.below(100) < percent
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

type Version = (u64, Vec<u8>);

/// What the log may and must hold.
struct Model {
    /// Versions each index may hold after a crash (every version appended since the
    /// last successful truncation below it).
    allowed: BTreeMap<u64, Vec<Version>>,
    /// Every index in `(purged_hi, acked_last]` must survive a crash.
    acked_last: u64,
    /// The purge marker after a crash lies in `purged_lo..=purged_hi`.
    purged_lo: u64,
    purged_hi: u64,
    /// Hard states that may be found after a crash (the last acknowledged one and
    /// any attempted since).
    hard_states: Vec<HardState>,
    term: u64,
}

impl Model {
    fn allow(&mut self, index: u64, v: Version) {
        let list = self.allowed.entry(index).or_default();
        if !list.contains(&v) {
            list.push(v);
        }
    }
}

struct Case {
    rng: Rng,
    seed: u64,
    fault: FaultFs,
    fs: Arc<dyn FileSystem>,
    opts: NativeWalOptions,
    wal: Option<NativeWal>,
    model: Model,
    step: usize,
    log: Vec<String>,
}

fn payload_for(rng: &mut Rng) -> Vec<u8> {
    let len = match rng.below(20) {
        0 => 1500 + rng.below(3000),
        1 => 0,
        _ => rng.below(300),
    } as usize;
    let fill = rng.next_u64();
    // Compressible half the time.
    if chance(rng, 50) {
        vec![fill as u8; len]
    } else {
        (0..len).map(|i| (fill.wrapping_mul(i as u64 + 1) >> 7) as u8).collect()
    }
}

impl Case {
    fn new(seed: u64) -> Case {
        let mut rng = Rng(seed);
        let config = FaultConfig {
            torn_writes: chance(&mut rng, 70),
            partial_write_on_enospc: chance(&mut rng, 50),
        };
        let fault = FaultFs::new(config);
        let fs: Arc<dyn FileSystem> = Arc::new(fault.clone());
        let mut opts = NativeWalOptions::new("/data/log");
        opts.sync = match rng.below(3) {
            0 => SyncPolicy::Always,
            1 => SyncPolicy::Never,
            _ => SyncPolicy::GroupCommit { max_delay: Duration::ZERO },
        };
        opts.recovery = RecoveryMode::TolerateTornTail;
        opts.segment_len = 4096 * (1 + rng.below(4));
        opts.preallocate = chance(&mut rng, 60);
        opts.compress_threshold = if chance(&mut rng, 50) { Some(1024) } else { None };
        fault.create_dir_all(Path::new("/data")).unwrap();
        fault.sync_dir(Path::new("/")).unwrap();
        let mut case = Case {
            rng,
            seed,
            fault,
            fs,
            opts,
            wal: None,
            model: Model {
                allowed: BTreeMap::new(),
                acked_last: 0,
                purged_lo: 0,
                purged_hi: 0,
                hard_states: vec![HardState::default()],
                term: 1,
            },
            step: 0,
            log: Vec::new(),
        };
        case.note(format!("config {config:?} opts {:?}", case.opts));
        case.open_after_crash();
        case
    }

    fn note(&mut self, s: String) {
        self.log.push(format!("step {}: {s}", self.step));
        if self.log.len() > 60 {
            self.log.remove(0);
        }
    }

    fn fail(&self, msg: &str) -> ! {
        panic!(
            "seed {} step {}: {msg}\nlast steps:\n{}\nreproduce: KEEPERKIT_FAULT_SEED={} \
             KEEPERKIT_FAULT_ITERS=1 cargo test -p keeperkit-wal --test native_fault",
            self.seed,
            self.step,
            self.log.join("\n"),
            self.seed
        )
    }

    fn wal(&self) -> &NativeWal {
        self.wal.as_ref().unwrap()
    }

    fn acked(&self) -> bool {
        !matches!(self.opts.sync, SyncPolicy::Never)
    }

    /// Reads the whole log and checks it against the model; returns it.
    fn check_log(&self) -> BTreeMap<u64, Version> {
        let wal = self.wal();
        let mut out = BTreeMap::new();
        let purged = wal.purged_index();
        if purged < self.model.purged_lo || purged > self.model.purged_hi {
            self.fail(&format!(
                "purge marker {purged} outside {}..={}",
                self.model.purged_lo, self.model.purged_hi
            ));
        }
        if let (Some(first), Some(last)) = (wal.first_index(), wal.last_index()) {
            if wal.next_index() != last + 1 {
                self.fail("next_index != last_index + 1");
            }
            let entries = match wal.read_range(first..last + 1) {
                Ok(e) => e,
                Err(e) => self.fail(&format!("reading {first}..={last}: {e}")),
            };
            for e in entries {
                let ok = self
                    .model
                    .allowed
                    .get(&e.index)
                    .is_some_and(|l| l.contains(&(e.term, e.payload.clone())));
                if !ok {
                    self.fail(&format!(
                        "index {} holds (term {}, {} bytes) which was never appended there \
                         (or was truncated)",
                        e.index,
                        e.term,
                        e.payload.len()
                    ));
                }
                out.insert(e.index, (e.term, e.payload));
            }
        }
        let lo = self.model.purged_hi.max(purged) + 1;
        for j in lo..=self.model.acked_last {
            if !out.contains_key(&j) {
                self.fail(&format!(
                    "acknowledged index {j} is missing (log holds {:?}..={:?}, acked up to {})",
                    out.keys().next(),
                    out.keys().last(),
                    self.model.acked_last
                ));
            }
        }
        out
    }

    fn open(&mut self) -> NativeWal {
        match NativeWal::open(Arc::clone(&self.fs), self.opts.clone()) {
            Ok(w) => w,
            Err(e) => self.fail(&format!("open failed: {e}")),
        }
    }

    /// Power loss, then open: everything found is durable from now on.
    fn crash(&mut self) {
        self.wal = None;
        let seed = self.rng.next_u64();
        self.note(format!("crash seed {seed}"));
        self.fault.crash(seed);
        self.open_after_crash();
    }

    fn open_after_crash(&mut self) {
        self.fault.set_space(None);
        let wal = self.open();
        if let Some(cut) = &wal.recovery_report().torn_tail {
            self.note(format!("recovery cut {cut:?}"));
        }
        let hs = wal.hard_state();
        if !self.model.hard_states.contains(&hs) {
            self.fail(&format!("hard state {hs:?} not in {:?}", self.model.hard_states));
        }
        self.wal = Some(wal);
        let log = self.check_log();
        let purged = self.wal().purged_index();
        let last_term = self.wal().last_term();
        let m = &mut self.model;
        m.hard_states = vec![hs];
        m.purged_lo = purged;
        m.purged_hi = purged;
        m.allowed = log.iter().map(|(i, v)| (*i, vec![v.clone()])).collect();
        m.acked_last = log.keys().last().copied().unwrap_or(purged);
        m.term = m.term.max(last_term).max(1);
        // The log must accept appends again (there is no fault scheduled now).
        if !self.fault.config().partial_write_on_enospc || chance(&mut self.rng, 100) {
            self.append_batch(true);
        }
    }

    /// Clean reopen without a power loss (the page cache survives).
    fn reopen(&mut self) {
        self.wal = None;
        self.note("reopen".into());
        self.fault.clear_faults();
        self.fault.set_space(None);
        self.wal = Some(self.open());
        self.check_log();
    }

    fn append_batch(&mut self, must_succeed: bool) {
        let n = 1 + self.rng.below(4);
        if chance(&mut self.rng, 5) {
            self.model.term += 1;
        }
        let term = self.model.term;
        let first = self.wal().next_index();
        let entries: Vec<Entry> = (0..n)
            .map(|k| Entry { index: first + k, term, payload: payload_for(&mut self.rng) })
            .collect();
        for e in &entries {
            self.model.allow(e.index, (e.term, e.payload.clone()));
        }
        let refs: Vec<EntryRef<'_>> = entries.iter().map(Entry::as_ref).collect();
        let r = self.wal().append(&refs);
        self.note(format!("append {first}..={} -> {:?}", first + n - 1, r.as_ref().err()));
        match r {
            Ok(()) => {
                if self.acked() {
                    self.model.acked_last = first + n - 1;
                }
            }
            Err(e) if must_succeed => self.fail(&format!("append after recovery failed: {e}")),
            Err(e) => self.after_error(e),
        }
    }

    fn after_error(&mut self, e: WalError) {
        let enospc = matches!(&e, WalError::Io { source, .. }
            if source.kind() == std::io::ErrorKind::StorageFull);
        if enospc && !self.wal().is_poisoned() {
            // Space comes back: the log must be appendable again, and still readable.
            self.fault.set_space(None);
            self.fault.clear_faults();
            self.check_log();
            self.note("space back".into());
            self.append_batch(true);
            return;
        }
        if self.wal().is_poisoned() {
            // Poisoned writers refuse everything until reopened.
            let next = self.wal().next_index();
            let r = self.wal().append(&[EntryRef {
                index: next,
                term: self.model.term,
                payload: b"p",
            }]);
            if !matches!(r, Err(WalError::Poisoned { .. })) {
                self.fail(&format!("poisoned writer accepted an append: {r:?}"));
            }
            self.model.allow(next, (self.model.term, b"p".to_vec()));
            if chance(&mut self.rng, 50) {
                self.crash();
            } else {
                self.reopen();
            }
        }
    }

    fn run_step(&mut self) {
        self.step += 1;
        match self.rng.below(100) {
            0..=49 => self.append_batch(false),
            50..=55 => {
                let lo = self.wal().purged_index() + 1;
                let hi = self.wal().next_index();
                let from = lo + self.rng.below(hi - lo + 1);
                let r = self.wal().truncate_suffix(from);
                self.note(format!("truncate_suffix({from}) -> {:?}", r.as_ref().err()));
                match r {
                    Ok(()) => {
                        self.model.allowed.retain(|i, _| *i < from);
                        self.model.acked_last = self.model.acked_last.min(from - 1);
                    }
                    Err(e) => {
                        // A failed truncation may have happened in part: entries from
                        // `from` on may be there or not; older ones must be.
                        self.model.acked_last = self.model.acked_last.min(from - 1);
                        self.after_error(e);
                    }
                }
            }
            56..=59 => {
                let (purged, next) = (self.wal().purged_index(), self.wal().next_index());
                let upto = purged + self.rng.below(next - purged + 3);
                let r = self.wal().purge(upto);
                self.note(format!("purge({upto}) -> {:?}", r.as_ref().err()));
                self.model.purged_hi = self.model.purged_hi.max(upto);
                match r {
                    Ok(()) => {
                        self.model.purged_lo = self.model.purged_lo.max(upto);
                        if upto >= self.model.acked_last {
                            self.model.acked_last = upto;
                        }
                    }
                    Err(e) => self.after_error(e),
                }
            }
            60..=64 => {
                let r = self.wal().sync();
                self.note(format!("sync -> {:?}", r.as_ref().err()));
                match r {
                    Ok(()) => {
                        let wal = self.wal();
                        if let Some(last) = wal.last_index() {
                            self.model.acked_last = self.model.acked_last.max(last);
                        }
                    }
                    Err(e) => self.after_error(e),
                }
            }
            65..=67 => {
                let hs = HardState {
                    term: self.model.term + self.rng.below(3),
                    vote: if chance(&mut self.rng, 50) { Some(self.rng.below(5)) } else { None },
                };
                self.model.hard_states.push(hs);
                let r = self.wal().set_hard_state(hs);
                self.note(format!("set_hard_state({hs:?}) -> {:?}", r.as_ref().err()));
                if r.is_ok() {
                    self.model.hard_states = vec![hs];
                }
            }
            68..=71 => {
                let n = 1 + self.rng.below(6);
                self.note(format!("fail write #{n}"));
                self.fault.fail_nth_write(n);
            }
            72..=75 => {
                let n = 1 + self.rng.below(6);
                self.note(format!("fail sync #{n}"));
                self.fault.fail_nth_sync(n);
            }
            76..=79 => {
                let room = self.rng.below(6000);
                self.note(format!("space left {room}"));
                self.fault.set_space(Some(self.fault.used_space() + room));
            }
            80..=81 => self.fault.set_space(None),
            82..=84 => self.reopen(),
            _ => self.crash(),
        }
    }
}

#[test]
fn random_crashes_and_faults_keep_acknowledged_entries() {
    let base = env_u64("KEEPERKIT_FAULT_SEED").unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()
            as u64
    });
    let cases = env_u64("KEEPERKIT_FAULT_ITERS").unwrap_or(3000);
    let budget = Duration::from_secs(env_u64("KEEPERKIT_FAULT_SECS").unwrap_or(15));
    let steps = env_u64("KEEPERKIT_FAULT_STEPS").unwrap_or(150) as usize;
    println!("native_fault: base seed {base} (KEEPERKIT_FAULT_SEED), up to {cases} cases of {steps} steps, {budget:?}");
    let start = Instant::now();
    let mut done = 0u64;
    let mut total_steps = 0usize;
    let mut crashes = 0u64;
    for k in 0..cases {
        if start.elapsed() > budget {
            break;
        }
        let seed = base.wrapping_add(k);
        let mut case = Case::new(seed);
        for _ in 0..steps {
            case.run_step();
        }
        case.crash();
        total_steps += case.step;
        crashes += case.fault.stats().crashes;
        done += 1;
    }
    println!(
        "native_fault: {done} cases, {total_steps} steps, {crashes} crashes in {:?}",
        start.elapsed()
    );
    assert!(done > 0);
}

/// Several threads append concurrently through group commit, then the power fails:
/// every append that returned Ok must be there.
#[test]
fn concurrent_group_commit_survives_crash() {
    let base = env_u64("KEEPERKIT_FAULT_SEED").unwrap_or(7);
    for round in 0..20u64 {
        let seed = base.wrapping_add(round);
        let fault = FaultFs::new(FaultConfig { torn_writes: true, ..FaultConfig::default() });
        let fs: Arc<dyn FileSystem> = Arc::new(fault.clone());
        let mut opts = NativeWalOptions::new(PathBuf::from("/log"));
        opts.segment_len = 8192;
        opts.sync = if round % 2 == 0 {
            SyncPolicy::Always
        } else {
            SyncPolicy::GroupCommit { max_delay: Duration::from_micros(100) }
        };
        let wal = Arc::new(NativeWal::open(Arc::clone(&fs), opts.clone()).unwrap());
        let threads: Vec<_> = (0..4u8)
            .map(|t| {
                let wal = Arc::clone(&wal);
                std::thread::spawn(move || {
                    let mut acked = Vec::new();
                    for k in 0..40u16 {
                        let p = [t, (k >> 8) as u8, k as u8];
                        if let Ok(r) = wal.append_next(1, &[&p[..]]) {
                            acked.push((r.start, p));
                        }
                    }
                    acked
                })
            })
            .collect();
        // Power off while the threads are still writing: from this instant nothing
        // reaches the disk, and every later operation fails.
        std::thread::sleep(Duration::from_micros(300 + seed % 2000));
        fault.halt();
        let mut acked = Vec::new();
        for t in threads {
            acked.extend(t.join().unwrap());
        }
        drop(wal);
        fault.crash(seed);
        let wal = NativeWal::open(Arc::clone(&fs), opts).unwrap_or_else(|e| {
            panic!("seed {seed}: open after crash failed: {e}");
        });
        // Appends acknowledged before the power went off are durable; after it every
        // fsync fails, so every Ok here predates it.
        for (index, p) in acked {
            let e = wal.read(index).unwrap_or_else(|e| panic!("seed {seed}: index {index}: {e}"));
            assert_eq!(e.payload, p, "seed {seed}: index {index}");
        }
    }
}

fn small_log(
    fault: &FaultFs,
    policy: SyncPolicy,
    preallocate: bool,
) -> (Arc<dyn FileSystem>, NativeWalOptions) {
    let fs: Arc<dyn FileSystem> = Arc::new(fault.clone());
    let mut o = NativeWalOptions::new("/log");
    o.segment_len = 8192;
    o.sync = policy;
    o.preallocate = preallocate;
    (fs, o)
}

fn append_one(wal: &NativeWal, len: usize) -> Result<u64, WalError> {
    let p = vec![wal.next_index() as u8; len];
    wal.append_next(1, &[&p[..]]).map(|r| r.start)
}

/// ENOSPC fails the append without acknowledging anything, the log stays readable,
/// and appends work again once space comes back (with and without preallocation,
/// with and without partial writes).
#[test]
fn enospc_then_space_returns() {
    for (preallocate, partial) in [(false, false), (false, true), (true, false), (true, true)] {
        let fault = FaultFs::new(FaultConfig {
            partial_write_on_enospc: partial,
            ..FaultConfig::default()
        });
        let (fs, o) = small_log(&fault, SyncPolicy::Always, preallocate);
        let wal = NativeWal::open(Arc::clone(&fs), o.clone()).unwrap();
        for _ in 0..5 {
            append_one(&wal, 100).unwrap();
        }
        fault.set_space(Some(fault.used_space() + 50));
        let mut failed = 0;
        for _ in 0..200 {
            match append_one(&wal, 300) {
                Ok(_) => {}
                Err(WalError::Io { source, .. }) => {
                    assert_eq!(source.kind(), std::io::ErrorKind::StorageFull);
                    failed += 1;
                    break;
                }
                Err(e) => panic!("unexpected {e}"),
            }
        }
        assert_eq!(failed, 1, "the disk filled up (preallocate {preallocate})");
        assert!(!wal.is_poisoned());
        let last = wal.last_index().unwrap();
        assert_eq!(wal.read_range(1..last + 1).unwrap().len() as u64, last);
        fault.set_space(None);
        let next = append_one(&wal, 300).unwrap();
        assert_eq!(next, last + 1);
        drop(wal);
        fault.crash(3);
        let wal = NativeWal::open(Arc::clone(&fs), o).unwrap();
        assert_eq!(wal.last_index(), Some(next), "everything acknowledged survived");
        assert!(keeperkit_wal::native::verify(fs.as_ref(), Path::new("/log")).unwrap().is_empty());
    }
}

/// A failed fsync poisons the writer; nothing after it is acknowledged, even though
/// a retried fsync would "succeed" (Linux drops the dirty pages); a reopen without a
/// reboot does not serve the dropped bytes, and after a power loss everything
/// acknowledged is there.
#[test]
fn failed_fsync_poisons_until_reopen() {
    let fault = FaultFs::default();
    let (fs, o) = small_log(&fault, SyncPolicy::Always, true);
    let wal = NativeWal::open(Arc::clone(&fs), o.clone()).unwrap();
    for _ in 0..3 {
        append_one(&wal, 50).unwrap();
    }
    fault.fail_nth_sync(1);
    assert!(matches!(append_one(&wal, 50), Err(WalError::Io { .. })));
    assert!(wal.is_poisoned());
    assert!(matches!(append_one(&wal, 50), Err(WalError::Poisoned { .. })));
    assert!(matches!(wal.sync(), Err(WalError::Poisoned { .. })));
    assert!(matches!(wal.truncate_suffix(2), Err(WalError::Poisoned { .. })));
    // Reads still work, and only show durable entries.
    assert_eq!(wal.last_index(), Some(3));
    assert_eq!(wal.read_range(1..4).unwrap().len(), 3);
    drop(wal);
    let wal = NativeWal::open(Arc::clone(&fs), o.clone()).unwrap();
    assert_eq!(wal.last_index(), Some(3), "the failed append is not served after a reopen");
    assert_eq!(append_one(&wal, 50).unwrap(), 4);
    drop(wal);
    fault.crash(1);
    let wal = NativeWal::open(fs, o).unwrap();
    assert_eq!(wal.last_index(), Some(4));
}

/// Crash leftovers are cleaned up by open and reported: temp files, and segments an
/// interrupted purge did not get to unlink.
#[test]
fn open_removes_temp_files_and_purge_leftovers() {
    let fault = FaultFs::default();
    let (fs, o) = small_log(&fault, SyncPolicy::Always, false);
    let wal = NativeWal::open(Arc::clone(&fs), o.clone()).unwrap();
    for _ in 0..100 {
        append_one(&wal, 300).unwrap();
    }
    let segs = |fs: &dyn FileSystem| {
        fs.read_dir(Path::new("/log"))
            .unwrap()
            .into_iter()
            .filter(|e| e.name.ends_with(".wal"))
            .count()
    };
    let before = segs(fs.as_ref());
    assert!(before >= 3);
    // A temp file left by a crash.
    fs.open(Path::new("/log/seg-00000000000000ff.wal.tmp"), OpenMode::CreateNew).unwrap();
    fs.sync_dir(Path::new("/log")).unwrap();
    // The purge marker is durable (temp file fsync, directory fsync), the unlinks are
    // not: the directory sync after them fails.
    fault.fail_nth_sync(3);
    let r = wal.purge(60);
    assert!(r.is_err(), "{r:?}");
    drop(wal);
    fault.crash(5);
    assert_eq!(segs(fs.as_ref()), before, "the unlinks were lost");
    let wal = NativeWal::open(Arc::clone(&fs), o).unwrap();
    let report = wal.recovery_report();
    assert_eq!(report.removed_temp_files.len(), 1, "{report:?}");
    assert!(!report.removed_purged_segments.is_empty(), "{report:?}");
    assert_eq!(wal.purged_index(), 60);
    assert_eq!(wal.first_index(), Some(61));
    assert_eq!(wal.last_index(), Some(100));
    assert!(segs(fs.as_ref()) < before);
}
