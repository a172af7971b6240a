//! Side-by-side: keeperkit's native WAL vs raft-engine 0.4 vs a bare
//! write+fdatasync loop, in the same run, on the same directory, with 1 KiB entries.
//!
//! `cargo bench -p keeperkit-benches --bench wal_compare`. Sizes (env):
//! `KEEPERKIT_BENCH_SYNC_OPS` (synced appends per case, default 2000),
//! `KEEPERKIT_BENCH_UNSYNCED_OPS` (default 200000), `KEEPERKIT_BENCH_OPEN_MIB` (log
//! size for the open test, default 1024), `KEEPERKIT_BENCH_DIR` (where; default
//! `target/bench-tmp`, which must not be a tmpfs to mean anything).
//!
//! DESIGN targets: synced 1-writer appends >= raft-engine and >= 0.9x bare; unsynced
//! >= 2x raft-engine; opening a 1 GiB log < 0.5 s warm.

use std::sync::Arc;
use std::time::Duration;

use keeperkit_benches::{
    bare_write_fdatasync, bare_write_fdatasync_prezeroed, bench_dir, dir_size, keeperkit_append,
    keeperkit_fill, keeperkit_open, keeperkit_open_wal, raft_engine_append, raft_engine_fill,
    raft_engine_open, raft_engine_open_engine, Rate, ENTRY_LEN,
};
use keeperkit_wal::native::SyncPolicy;

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn kk(name: &str, sync: SyncPolicy, n: u64, writers: u64) -> Rate {
    let dir = bench_dir(name).expect("bench dir");
    let wal = Arc::new(keeperkit_open_wal(&dir, sync));
    // Warm up: first segment creation and page faults.
    keeperkit_append(&wal, ENTRY_LEN, (n / 20).max(writers), writers);
    keeperkit_append(&wal, ENTRY_LEN, n, writers)
}

fn re(name: &str, sync: bool, n: u64, writers: u64) -> Rate {
    let dir = bench_dir(name).expect("bench dir");
    let engine = Arc::new(raft_engine_open_engine(&dir));
    raft_engine_append(&engine, ENTRY_LEN, (n / 20).max(writers), writers, sync);
    raft_engine_append(&engine, ENTRY_LEN, n, writers, sync)
}

fn main() {
    // `cargo bench` passes `--bench`; a filter argument is ignored.
    let sync_ops = env("KEEPERKIT_BENCH_SYNC_OPS", 2000);
    let unsynced_ops = env("KEEPERKIT_BENCH_UNSYNCED_OPS", 200_000);
    let open_mib = env("KEEPERKIT_BENCH_OPEN_MIB", 1024);
    let base = bench_dir("probe").expect("bench dir");
    println!(
        "wal_compare: directory {}",
        base.parent().map_or(base.clone(), |p| p.to_path_buf()).display()
    );

    // Interleave the cases over several rounds and report medians: the disk (and on
    // shared machines, the neighbours) drift over time.
    let rounds = env("KEEPERKIT_BENCH_ROUNDS", 3).max(1);
    let mut rates: Vec<Vec<Rate>> = vec![Vec::new(); 8];
    for round in 0..rounds {
        let r = [
            bare_write_fdatasync(&base, ENTRY_LEN, sync_ops).expect("bare loop"),
            kk("kk-sync1", SyncPolicy::Always, sync_ops, 1),
            re("re-sync1", true, sync_ops, 1),
            kk("kk-sync4", SyncPolicy::Always, sync_ops * 2, 4),
            re("re-sync4", true, sync_ops * 2, 4),
            kk("kk-unsynced", SyncPolicy::Never, unsynced_ops, 1),
            re("re-unsynced", false, unsynced_ops, 1),
            bare_write_fdatasync_prezeroed(&base, ENTRY_LEN, sync_ops).expect("bare loop"),
        ];
        let line: Vec<String> = r.iter().map(|x| format!("{:.0}", x.per_sec())).collect();
        println!(
            "round {round}: bare, kk1, re1, kk4, re4, kk-unsynced, re-unsynced, bare-prezeroed = {}",
            line.join(", ")
        );
        for (v, x) in rates.iter_mut().zip(r) {
            v.push(x);
        }
    }
    let median = |v: &mut Vec<Rate>| {
        v.sort_by(|a, b| a.per_sec().total_cmp(&b.per_sec()));
        v[v.len() / 2]
    };
    let [bare, kk1, re1, kk4, re4, kkn, ren, bare0] =
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
    println!("| case (1 KiB entries) | bare fdatasync | keeperkit | raft-engine 0.4 | kk / raft-engine | kk / bare |");
    println!("|---|---:|---:|---:|---:|---:|");
    let row = |name: &str, b: Option<f64>, k: f64, r: f64| {
        let bs = b.map_or("".to_string(), |b| format!("{b:.0}/s"));
        let kb = b.map_or("".to_string(), |b| format!("{:.2}x", k / b));
        println!("| {name} | {bs} | {k:.0}/s | {r:.0}/s | {:.2}x | {kb} |", k / r);
    };
    row("synced, 1 writer", Some(bare.per_sec()), kk1.per_sec(), re1.per_sec());
    row("synced, 4 writers", Some(bare.per_sec()), kk4.per_sec(), re4.per_sec());
    row("unsynced, 1 writer", None, kkn.per_sec(), ren.per_sec());
    println!(
        "| open {open_mib} MiB log (warm) | | {:.3} s ({kk_n} entries, {} MiB) | {:.3} s ({re_n} entries, {} MiB) | {:.2}x faster | |",
        kk_open.as_secs_f64(),
        dir_size(&kk_dir) >> 20,
        re_open.as_secs_f64(),
        dir_size(&re_dir) >> 20,
        re_open.as_secs_f64() / kk_open.as_secs_f64().max(1e-9),
    );
    println!(
        "| bare write+fdatasync over a pre-zeroed file (the disk's floor) | {:.0}/s | kk synced 1 writer = {:.2}x of it | | | |",
        bare0.per_sec(),
        kk1.per_sec() / bare0.per_sec()
    );
    println!();
    let targets = [
        ("synced 1 writer >= raft-engine", kk1.per_sec() >= re1.per_sec()),
        ("synced 1 writer >= 0.9x bare", kk1.per_sec() >= 0.9 * bare.per_sec()),
        ("unsynced >= 2x raft-engine", kkn.per_sec() >= 2.0 * ren.per_sec()),
        ("open < 0.5 s", kk_open < Duration::from_millis(500)),
    ];
    for (name, ok) in targets {
        println!("target {name}: {}", if ok { "met" } else { "MISSED" });
    }
}
