//! Side-by-side: keeperkit's native WAL vs raft-engine 0.4 vs a bare
//! write+fdatasync loop, in the same run, on the same directory, with 1 KiB entries.
//!
//! `cargo bench -p keeperkit-benches --bench wal_compare`. Sizes (env):
//! `KEEPERKIT_BENCH_SYNC_OPS` (synced appends per case and round, default 2000),
//! `KEEPERKIT_BENCH_UNSYNCED_OPS` (default 200000), `KEEPERKIT_BENCH_OPEN_MIB` (log
//! size for the open test, default 1024), `KEEPERKIT_BENCH_ROUNDS` (default 3),
//! `KEEPERKIT_BENCH_DIR` (where; default `target/bench-tmp`, which must be on a real
//! disk, not tmpfs, to mean anything).
//!
//! Method: synced cases run interleaved in slices of 1/10 of their operations (bare,
//! keeperkit, raft-engine, bare over pre-zeroed blocks, in turn), so that all of them
//! see the same disk conditions, which on shared machines drift by 10x within
//! seconds. Each round reports its rates; the table shows the medians over rounds.
//!
//! DESIGN targets: synced 1-writer appends >= raft-engine and >= 0.9x bare; unsynced
//! >= 2x raft-engine; opening a 1 GiB log < 0.5 s warm.

use std::sync::Arc;
use std::time::Duration;

use keeperkit_benches::{
    bench_dir, dir_size, keeperkit_append, keeperkit_fill, keeperkit_open, keeperkit_open_wal,
    raft_engine_append, raft_engine_fill, raft_engine_open, raft_engine_open_engine, BareLoop,
    Rate, ENTRY_LEN,
};
use keeperkit_wal::native::SyncPolicy;

const SLICES: u64 = 10;

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// One round of the synced cases, interleaved: returns (bare, kk1, re1, kk4, re4,
/// bare over pre-zeroed blocks).
fn synced_round(ops: u64) -> [Rate; 6] {
    let dir = bench_dir("synced").expect("bench dir");
    let mut bare = BareLoop::new(&dir, "bare.dat", ENTRY_LEN, None).expect("bare");
    let mut bare0 =
        BareLoop::new(&dir, "bare0.dat", ENTRY_LEN, Some(ENTRY_LEN as u64 * ops)).expect("bare");
    let kk1 = Arc::new(keeperkit_open_wal(&dir.join("kk1"), SyncPolicy::Always));
    let kk4 = Arc::new(keeperkit_open_wal(&dir.join("kk4"), SyncPolicy::Always));
    let re1 = Arc::new(raft_engine_open_engine(&dir.join("re1")));
    let re4 = Arc::new(raft_engine_open_engine(&dir.join("re4")));
    // Warm up (first segment or file creation).
    keeperkit_append(&kk1, ENTRY_LEN, 20, 1);
    keeperkit_append(&kk4, ENTRY_LEN, 20, 4);
    raft_engine_append(&re1, ENTRY_LEN, 20, 1, true);
    raft_engine_append(&re4, ENTRY_LEN, 20, 4, true);
    let mut r = [Rate::default(); 6];
    let slice = (ops / SLICES).max(4);
    for _ in 0..SLICES {
        r[0] = r[0].plus(bare.run(slice).expect("bare"));
        r[1] = r[1].plus(keeperkit_append(&kk1, ENTRY_LEN, slice, 1));
        r[2] = r[2].plus(raft_engine_append(&re1, ENTRY_LEN, slice, 1, true));
        r[3] = r[3].plus(keeperkit_append(&kk4, ENTRY_LEN, slice * 2, 4));
        r[4] = r[4].plus(raft_engine_append(&re4, ENTRY_LEN, slice * 2, 4, true));
        r[5] = r[5].plus(bare0.run(slice).expect("bare"));
    }
    r
}

fn unsynced_round(ops: u64) -> [Rate; 2] {
    let dir = bench_dir("unsynced").expect("bench dir");
    let kk = Arc::new(keeperkit_open_wal(&dir.join("kk"), SyncPolicy::Never));
    let re = Arc::new(raft_engine_open_engine(&dir.join("re")));
    keeperkit_append(&kk, ENTRY_LEN, 1000, 1);
    raft_engine_append(&re, ENTRY_LEN, 1000, 1, false);
    [keeperkit_append(&kk, ENTRY_LEN, ops, 1), raft_engine_append(&re, ENTRY_LEN, ops, 1, false)]
}

fn main() {
    // `cargo bench` passes `--bench`; a filter argument is ignored.
    let sync_ops = env("KEEPERKIT_BENCH_SYNC_OPS", 2000);
    let unsynced_ops = env("KEEPERKIT_BENCH_UNSYNCED_OPS", 200_000);
    let open_mib = env("KEEPERKIT_BENCH_OPEN_MIB", 1024);
    let rounds = env("KEEPERKIT_BENCH_ROUNDS", 3).max(1);
    let probe = bench_dir("probe").expect("bench dir");
    println!(
        "wal_compare: directory {}",
        probe.parent().map_or(probe.clone(), |p| p.to_path_buf()).display()
    );

    let mut rates: Vec<Vec<Rate>> = vec![Vec::new(); 8];
    for round in 0..rounds {
        let s = synced_round(sync_ops);
        let u = unsynced_round(unsynced_ops);
        let all: Vec<Rate> = s.iter().chain(u.iter()).copied().collect();
        let line: Vec<String> = all.iter().map(|x| format!("{:.0}", x.per_sec())).collect();
        println!(
            "round {round}: bare, kk1, re1, kk4, re4, bare-prezeroed, kk-unsynced, re-unsynced = {}",
            line.join(", ")
        );
        for (v, x) in rates.iter_mut().zip(all) {
            v.push(x);
        }
    }
    let median = |v: &mut Vec<Rate>| {
        v.sort_by(|a, b| a.per_sec().total_cmp(&b.per_sec()));
        v[v.len() / 2]
    };
    let [bare, kk1, re1, kk4, re4, bare0, kkn, ren] =
        [0, 1, 2, 3, 4, 5, 6, 7].map(|i| median(&mut rates[i]));

    let bytes = open_mib << 20;
    let kk_dir = bench_dir("kk-open").expect("bench dir");
    keeperkit_fill(&kk_dir, bytes);
    let re_dir = bench_dir("re-open").expect("bench dir");
    raft_engine_fill(&re_dir, bytes);
    // Warm: open once (page cache), then take the best of three.
    let best = |f: &dyn Fn() -> (Duration, u64)| {
        let _ = f();
        (0..3).map(|_| f()).min_by_key(|(d, _)| *d).unwrap_or_default()
    };
    let (kk_open, kk_n) = best(&|| keeperkit_open(&kk_dir));
    let (re_open, re_n) = best(&|| raft_engine_open(&re_dir));

    println!();
    println!(
        "| case (1 KiB entries) | bare write+fdatasync (appending / pre-zeroed) | keeperkit | \
         raft-engine 0.4 | kk / raft-engine | kk / bare (appending / pre-zeroed) |"
    );
    println!("|---|---:|---:|---:|---:|---:|");
    let row = |name: &str, b: Option<(f64, f64)>, k: f64, r: f64| {
        let bs = b.map_or(String::new(), |(b, z)| format!("{b:.0}/s / {z:.0}/s"));
        let kb = b.map_or(String::new(), |(b, z)| format!("{:.2}x / {:.2}x", k / b, k / z));
        println!("| {name} | {bs} | {k:.0}/s | {r:.0}/s | {:.2}x | {kb} |", k / r);
    };
    let b = Some((bare.per_sec(), bare0.per_sec()));
    row("synced, 1 writer", b, kk1.per_sec(), re1.per_sec());
    row("synced, 4 writers", b, kk4.per_sec(), re4.per_sec());
    row("unsynced, 1 writer", None, kkn.per_sec(), ren.per_sec());
    println!(
        "| open a {open_mib} MiB log (warm, best of 3) | | {:.3} s ({kk_n} entries, {} MiB) | \
         {:.3} s ({re_n} entries, {} MiB) | {:.2}x less time | |",
        kk_open.as_secs_f64(),
        dir_size(&kk_dir) >> 20,
        re_open.as_secs_f64(),
        dir_size(&re_dir) >> 20,
        re_open.as_secs_f64() / kk_open.as_secs_f64().max(1e-9),
    );
    println!();
    let targets = [
        ("synced 1 writer >= raft-engine", kk1.per_sec() >= re1.per_sec()),
        ("synced 1 writer >= 0.9x bare (appending)", kk1.per_sec() >= 0.9 * bare.per_sec()),
        ("unsynced >= 2x raft-engine", kkn.per_sec() >= 2.0 * ren.per_sec()),
        ("open < 0.5 s", kk_open < Duration::from_millis(500)),
    ];
    for (name, ok) in targets {
        println!("target {name}: {}", if ok { "met" } else { "MISSED" });
    }
}
