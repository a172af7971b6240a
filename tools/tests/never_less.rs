//! Never silently less: each numbered finding of the damaged-input review, as a
//! regression test named after it (`finding_NN_...`).
//!
//! The rule they guard: exit 0 from a command that recovers a state means "this is
//! everything the files durably hold"; the only loss allowed with exit 0 is a torn tail
//! the format defines as never acknowledged, and even that is said on stderr. A wrong
//! kind of input is exit 2 naming it. Findings 4 and 5 (decompression bombs, FIFOs)
//! run the binary under a time limit and a memory bound (`common::run_bounded`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;

use serde_json::Value;

fn keeperkit_in(dir: Option<&Path>, args: &[&str]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_keeperkit"));
    c.args(args);
    if let Some(d) = dir {
        c.current_dir(d);
    }
    let out = c.output().unwrap();
    assert_ne!(out.status.code(), Some(101), "panic: {}", stderr(&out));
    assert!(out.status.code().is_some(), "killed by a signal");
    out
}

fn run(args: &[&str]) -> Output {
    keeperkit_in(None, args)
}

fn code(o: &Output) -> Option<i32> {
    o.status.code()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn json(o: &Output) -> Value {
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}\n{}", stdout(o), stderr(o)))
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn codes(v: &Value) -> Vec<String> {
    v["findings"].as_array().unwrap().iter().map(|f| f["code"].as_str().unwrap().into()).collect()
}

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/zookeeper-3.8.0/basic/data")
}

/// A copy of the basic fixture's `version-2` in `root`; returns it.
fn zk_copy(root: &Path) -> PathBuf {
    let dst = root.join("version-2");
    std::fs::create_dir_all(&dst).unwrap();
    for e in std::fs::read_dir(fixture().join("version-2")).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), dst.join(e.file_name())).unwrap();
    }
    dst
}

fn dump_lines(path: &Path) -> usize {
    stdout(&run(&["dump", s(path)])).lines().count()
}

/// The basic fixture converted to `to` in `root/name`.
fn converted(root: &Path, name: &str, to: &str) -> PathBuf {
    let dst = root.join(name);
    let o = run(&["convert", s(&fixture()), s(&dst), "--to", to, "--lossy"]);
    assert_eq!(code(&o), Some(0), "{}", stderr(&o));
    dst
}

fn files_with(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_str().unwrap().ends_with(suffix))
        .collect();
    v.sort();
    v
}

#[test]
fn finding_01_a_damaged_converted_snapshot_never_gives_the_empty_tree() {
    let tmp = tempfile::tempdir().unwrap();
    let native = converted(tmp.path(), "n", "native");
    let full = dump_lines(&native);
    assert!(full > 1000, "{full}");
    let snap = files_with(&native.join("snapshots"), ".kks").pop().unwrap();
    // The snapshot carries its real position, never index 0.
    assert!(!s(&snap).ends_with("snap-0000000000000000.kks"), "{}", snap.display());
    let mut bytes = std::fs::read(&snap).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x10;
    std::fs::write(&snap, bytes).unwrap();
    for cmd in ["dump", "stats"] {
        let o = run(&[cmd, s(&native)]);
        assert_eq!(code(&o), Some(1), "{cmd}: {}", stderr(&o));
        assert!(stderr(&o).contains("checksum mismatch"), "{cmd}: {}", stderr(&o));
    }
    let out = tmp.path().join("back");
    let o = run(&["convert", s(&native), s(&out), "--to", "zookeeper"]);
    assert_eq!(code(&o), Some(1), "{}", stderr(&o));
    assert!(!out.exists());
    let o = run(&["repair", s(&native)]);
    assert_eq!(code(&o), Some(1), "{}", stdout(&o));
    assert!(!stdout(&o).contains("nothing to repair"), "{}", stdout(&o));
    assert_eq!(code(&run(&["verify", s(&native)])), Some(1));
}

#[test]
fn finding_02_valid_records_after_a_zeroed_length_are_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = zk_copy(tmp.path());
    let full = dump_lines(&dir);
    let log = dir.join("log.560");
    let mut bytes = std::fs::read(&log).unwrap();
    bytes[24..28].fill(0);
    std::fs::write(&log, bytes).unwrap();
    let o = run(&["verify", s(&dir), "--json"]);
    assert_eq!(code(&o), Some(1), "{}", stdout(&o));
    assert!(codes(&json(&o)).contains(&"records_after_end".to_string()), "{}", stdout(&o));
    let o = run(&["dump", s(&dir)]);
    assert_eq!(code(&o), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("checksum-valid records"), "{}", stderr(&o));
    assert!(stdout(&o).lines().count() <= full);
}

/// `first` then zeros, as concatenated frames of one `unit` each, `total` bytes in all
/// (how a small file stands for gigabytes: every format that reads concatenated frames
/// or members reads this).
fn repeated_frames(
    first: &[u8],
    unit: usize,
    total: usize,
    compress: impl Fn(&[u8]) -> Vec<u8>,
) -> Vec<u8> {
    let mut head = first.to_vec();
    head.resize(unit, 0);
    let mut out = compress(&head);
    let zeros = compress(&vec![0u8; unit]);
    for _ in 1..total / unit {
        out.extend_from_slice(&zeros);
    }
    out
}

fn zstd_frames(first: &[u8], total: usize) -> Vec<u8> {
    repeated_frames(first, 8 << 20, total, |b| zstd::bulk::compress(b, 3).unwrap())
}

fn gzip_members(first: &[u8], total: usize) -> Vec<u8> {
    use std::io::Write;
    repeated_frames(first, 8 << 20, total, |b| {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gz.write_all(b).unwrap();
        gz.finish().unwrap()
    })
}

/// Finding 4 of the damaged-input review: decompression bombs (a gzip ZooKeeper
/// snapshot and a zstd ClickHouse changelog, each at most a few hundred KB
/// standing for 1 GiB of mostly zeros, named after the newest state) given to verify,
/// dump and inspect, inside a data directory and alone: exit 1 or 2, never 0, with the
/// peak resident size under the bound (the run is stopped, and the test fails, as soon
/// as it passes it).
#[test]
fn finding_04_decompression_bombs_cost_bounded_memory_and_are_not_exit_0() {
    const GIB: usize = 1 << 30;
    let tmp = tempfile::tempdir().unwrap();
    let mut zk_header = 0x5A4B_534E_i32.to_be_bytes().to_vec();
    zk_header.extend_from_slice(&2i32.to_be_bytes());
    zk_header.extend_from_slice(&0i64.to_be_bytes());
    let zk = zk_copy(&tmp.path().join("zk"));
    let keeper = converted(tmp.path(), "k", "clickhouse");
    let bombs = [
        (zk.join("snapshot.999.gz"), gzip_members(&zk_header, GIB)),
        (keeper.join("logs/changelog_1425_1524.bin.zstd"), zstd_frames(&[], GIB)),
    ];
    for (path, bytes) in &bombs {
        assert!(bytes.len() < 2 << 20, "{}: {} bytes", path.display(), bytes.len());
        std::fs::write(path, bytes).unwrap();
        let dir = if path.starts_with(&zk) { zk.clone() } else { keeper.clone() };
        for target in [&dir, path] {
            for cmd in ["verify", "dump", "inspect"] {
                let what = format!("{cmd} {}", target.display());
                let r = common::run(&[cmd, s(target)]);
                println!(
                    "{what}: exit {:?}, {} ms, peak RSS {} MiB",
                    r.code,
                    r.elapsed.as_millis(),
                    r.peak_rss >> 20
                );
                r.assert_sane(&what);
                assert!(matches!(r.code, Some(1 | 2)), "{what}: exit {:?}: {}", r.code, r.stderr);
                assert!(r.peak_rss < common::RSS_BOUND, "{what}: {} bytes", r.peak_rss);
            }
        }
        std::fs::remove_file(path).unwrap();
    }
}

/// Finding 5 of the damaged-input review: a FIFO named like a data file (a ZooKeeper
/// log or snapshot, a ClickHouse changelog or snapshot, a native segment or snapshot)
/// never hangs a command and is never passed over: within seconds, every command run on
/// the directory exits 2 naming it, or 1 with an error naming it (a check lists it with
/// the other problems; a recovery that can fall back to an older snapshot says what that
/// loses); `log` alone may pass over a snapshot, which it does not read. Given as the
/// path itself: exit 2 naming it.
#[cfg(unix)]
#[test]
fn finding_05_a_fifo_named_like_a_data_file_is_exit_2_naming_it() {
    let tmp = tempfile::tempdir().unwrap();
    let zk = zk_copy(&tmp.path().join("zk"));
    let keeper = converted(tmp.path(), "k", "clickhouse");
    let native = converted(tmp.path(), "n", "native");
    let fifos = [
        (zk.clone(), zk.join("log.600")),
        (zk.clone(), zk.join("snapshot.600")),
        (keeper.clone(), keeper.join("logs/changelog_1325_1424.bin")),
        (keeper.clone(), keeper.join("snapshots/snapshot_99999.bin.zstd")),
        (native.clone(), native.join("wal/seg-00000000000000ff.wal")),
        (native.clone(), native.join("snapshots/snap-00000000000fffff.kks")),
    ];
    let mut bad = Vec::new();
    for (n, (dir, fifo)) in fifos.iter().enumerate() {
        common::mkfifo(fifo);
        let name = fifo.file_name().unwrap().to_str().unwrap();
        let out = tmp.path().join(format!("out{n}"));
        let runs: Vec<Vec<&str>> = vec![
            vec!["verify", s(dir)],
            vec!["dump", s(dir)],
            vec!["stats", s(dir)],
            vec!["sessions", s(dir)],
            vec!["log", s(dir)],
            vec!["inspect", s(dir)],
            vec!["repair", s(dir)],
            vec!["convert", s(dir), s(&out), "--to", "zookeeper", "--lossy"],
            vec!["verify", s(fifo)],
            vec!["dump", s(fifo)],
            vec!["inspect", s(fifo)],
        ];
        for args in runs {
            let what = args.join(" ");
            let r =
                common::run_bounded(&args, std::time::Duration::from_secs(10), common::RSS_BOUND);
            r.assert_sane(&what);
            let alone = args[1] == s(fifo);
            let named = r.stderr.contains(name) || r.stdout.contains(name);
            let snapshot = name.starts_with("snap");
            let fine = if alone {
                r.code == Some(2) && r.stderr.contains(name)
            } else if args[0] == "log" && snapshot {
                // `log` reads no snapshot.
                r.code == Some(0) || (matches!(r.code, Some(1 | 2)) && named)
            } else {
                matches!(r.code, Some(1 | 2)) && named
            };
            if !fine {
                bad.push(format!("{what}: exit {:?}: {}", r.code, r.stderr.trim()));
            }
        }
        if out.exists() {
            bad.push(format!("convert with {} there wrote {}", fifo.display(), out.display()));
        }
        std::fs::remove_file(fifo).unwrap();
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

#[test]
fn finding_06_a_forced_dialect_needs_its_files_and_an_empty_keeper_dir_is_no_data() {
    let tmp = tempfile::tempdir().unwrap();
    let empty = tmp.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    for cmd in ["verify", "dump"] {
        assert_eq!(code(&run(&[cmd, s(&empty), "--format", "native"])), Some(2), "{cmd}");
        let o = run(&[cmd, s(&fixture()), "--format", "native"]);
        assert_eq!(code(&o), Some(2), "{cmd}");
        assert!(stderr(&o).contains("holds no native files"), "{}", stderr(&o));
    }
    let keeper = tmp.path().join("coordination");
    std::fs::create_dir_all(keeper.join("logs")).unwrap();
    std::fs::create_dir_all(keeper.join("snapshots")).unwrap();
    let o = run(&["verify", s(&keeper), "--json"]);
    assert_eq!(code(&o), Some(1));
    assert_eq!(codes(&json(&o)), ["no_data"]);
}

#[cfg(unix)]
#[test]
fn finding_07_a_logs_or_wal_dir_that_is_not_a_directory_is_exit_2() {
    let tmp = tempfile::tempdir().unwrap();
    let native = converted(tmp.path(), "n", "native");
    std::fs::remove_dir_all(native.join("wal")).unwrap();
    std::fs::write(native.join("wal"), b"not a dir").unwrap();
    for cmd in ["verify", "dump"] {
        let o = run(&[cmd, s(&native)]);
        assert_eq!(code(&o), Some(2), "{cmd}: {}", stderr(&o));
        assert!(stderr(&o).contains("wal"), "{}", stderr(&o));
    }
    let keeper = converted(tmp.path(), "k", "clickhouse");
    std::fs::remove_dir_all(keeper.join("logs")).unwrap();
    std::os::unix::fs::symlink("logs", keeper.join("logs")).unwrap();
    for cmd in ["verify", "dump"] {
        let o = run(&[cmd, s(&keeper)]);
        assert_eq!(code(&o), Some(2), "{cmd}: {}", stderr(&o));
        assert!(stderr(&o).contains("logs"), "{}", stderr(&o));
    }
}

#[test]
fn finding_08_a_stray_snapshot_copy_is_not_taken_for_the_newest() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = zk_copy(tmp.path());
    let full = stdout(&run(&["dump", s(&dir)]));
    std::fs::copy(dir.join("snapshot.22c"), dir.join("snapshot.600.bak")).unwrap();
    let o = run(&["dump", s(&dir)]);
    assert_eq!(code(&o), Some(1), "{}", stderr(&o));
    assert_eq!(stdout(&o), full, "the state is the one of the real files");
    assert!(stderr(&o).contains("snapshot.600.bak"), "{}", stderr(&o));
    let o = run(&["verify", s(&dir), "--json"]);
    assert_eq!(code(&o), Some(1));
    assert!(codes(&json(&o)).contains(&"bad_name".to_string()));
}

/// Found by the bad-input campaign (with findings 4 and 5): a damaged ZooKeeper snapshot
/// newer than the log reaches was skipped with a warning and the state of an older one
/// printed with exit 0, without what the damaged one held. A damaged snapshot the log
/// covers loses nothing: a warning, the same state.
#[test]
fn a_damaged_snapshot_past_the_log_end_is_an_error_not_a_silent_fallback() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = zk_copy(tmp.path());
    let full = stdout(&run(&["dump", s(&dir)]));
    let mut bytes = std::fs::read(dir.join("snapshot.545")).unwrap();
    let at = bytes.len() / 3;
    bytes[at] ^= 0x08;
    std::fs::write(dir.join("snapshot.545"), &bytes).unwrap();
    let o = run(&["dump", s(&dir)]);
    assert_eq!(code(&o), Some(0), "the log covers 0x545: {}", stderr(&o));
    assert_eq!(stdout(&o), full);
    assert!(stderr(&o).contains("warning:"), "{}", stderr(&o));
    std::fs::write(dir.join("snapshot.9999"), &bytes).unwrap();
    for cmd in ["dump", "stats", "sessions"] {
        let o = run(&[cmd, s(&dir)]);
        assert_eq!(code(&o), Some(1), "{cmd}: {}", stderr(&o));
        assert!(stderr(&o).contains("snapshot.9999"), "{cmd}: {}", stderr(&o));
    }
    let out = tmp.path().join("out");
    assert_eq!(code(&run(&["convert", s(&dir), s(&out), "--to", "native", "--lossy"])), Some(1));
    assert!(!out.exists());
}

#[test]
fn finding_09_a_truncated_oldest_log_is_an_error() {
    for len in [16u64, 40] {
        let tmp = tempfile::tempdir().unwrap();
        let dir = zk_copy(tmp.path());
        let f = std::fs::OpenOptions::new().write(true).open(dir.join("log.1")).unwrap();
        f.set_len(len).unwrap();
        drop(f);
        let o = run(&["verify", s(&dir), "--json"]);
        assert_eq!(code(&o), Some(1), "truncated to {len}: {}", stdout(&o));
    }
}

#[test]
fn finding_10_a_point_past_the_end_is_exit_2_naming_the_last_point() {
    let tmp = tempfile::tempdir().unwrap();
    let o = run(&["dump", s(&fixture()), "--at", "0xffffff"]);
    assert_eq!(code(&o), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("the last point available is zxid"), "{}", stderr(&o));
    for (name, to) in [("n", "native"), ("k", "clickhouse")] {
        let d = converted(tmp.path(), name, to);
        for cmd in ["dump", "stats", "sessions"] {
            let o = run(&[cmd, s(&d), "--at-index", "99999999999"]);
            assert_eq!(code(&o), Some(2), "{to} {cmd}: {}", stderr(&o));
            assert!(stderr(&o).contains("the last point available is index"), "{}", stderr(&o));
        }
        // Before the oldest state the files hold: exit 2 too, never a later state.
        let o = run(&["dump", s(&d), "--at-index", "5"]);
        assert_eq!(code(&o), Some(2), "{to}: {}", stderr(&o));
        assert!(stderr(&o).contains("before the oldest state"), "{}", stderr(&o));
    }
}

#[test]
fn finding_11_usage_errors_are_exit_2() {
    let f = fixture();
    assert_eq!(code(&run(&["verify", s(&f), "--snapshot", "/nonexistent"])), Some(2));
    let tmp = tempfile::tempdir().unwrap();
    let o = run(&["verify", s(&f), "--log-dir", s(tmp.path())]);
    assert_eq!(code(&o), Some(2), "{}", stdout(&o));
    let o = run(&["log", s(&f), "--from", "0x500", "--to", "0x100"]);
    assert_eq!(code(&o), Some(2), "{}", stdout(&o));
}

#[test]
fn finding_12_a_segment_given_alone_is_read_as_a_segment() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("wal");
    let mut opts = keeperkit_wal::native::NativeWalOptions::new(&dir);
    opts.sync = keeperkit_wal::native::SyncPolicy::Never;
    let wal = keeperkit_wal::native::NativeWal::open(Arc::new(keeperkit_vfs::StdFs), opts).unwrap();
    for i in 0..10u64 {
        wal.append_next(1, &[format!("entry {i}").as_bytes()]).unwrap();
    }
    wal.sync().unwrap();
    drop(wal);
    let seg = files_with(&dir, ".wal").remove(0);
    let o = run(&["verify", s(&seg)]);
    assert_eq!(code(&o), Some(0), "{}{}", stdout(&o), stderr(&o));
    assert!(!stdout(&o).contains("bad magic"), "{}", stdout(&o));
    assert_eq!(code(&run(&["dump", s(&seg)])), Some(2), "a segment holds no state");
}

/// `dump` of `dir` exits 1 naming every one of `dirs` (directories named like data
/// files), or exits 2 naming one of them; returns what it printed.
fn dump_reports(dir: &Path, dirs: &[&Path]) -> String {
    let o = run(&["dump", s(dir)]);
    let err = stderr(&o);
    let name = |d: &Path| d.file_name().unwrap().to_str().unwrap().to_string();
    match code(&o) {
        Some(1) => {
            for d in dirs {
                assert!(err.contains(&name(d)), "{} not named: {err}", d.display());
            }
        }
        Some(2) => assert!(dirs.iter().any(|d| err.contains(&name(d))), "none named: {err}"),
        c => panic!("dump {} exited {c:?} with {dirs:?} there: {err}", dir.display()),
    }
    stdout(&o)
}

#[test]
fn finding_13_directories_named_like_data_files_and_bad_markers_are_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = zk_copy(tmp.path());
    std::fs::create_dir(dir.join("log.600")).unwrap();
    std::fs::create_dir(dir.join("snapshot.600")).unwrap();
    let o = run(&["verify", s(&dir), "--json"]);
    assert_eq!(code(&o), Some(1));
    assert_eq!(codes(&json(&o)).iter().filter(|c| *c == "wrong_kind").count(), 2, "{}", stdout(&o));
    dump_reports(&dir, &[&dir.join("log.600"), &dir.join("snapshot.600")]);

    let keeper = converted(tmp.path(), "k", "clickhouse");
    let intact = stdout(&run(&["dump", s(&keeper)]));
    let strays = [
        keeper.join("logs/changelog_1_100.bin"),
        keeper.join("logs/changelog_900_999.bin.zstd"),
        keeper.join("snapshots/snapshot_99999.bin.zstd"),
    ];
    for d in &strays {
        std::fs::create_dir(d).unwrap();
    }
    let o = run(&["verify", s(&keeper), "--json"]);
    assert_eq!(code(&o), Some(1), "{}", stdout(&o));
    assert!(codes(&json(&o)).contains(&"wrong_kind".to_string()));
    let refs: Vec<&Path> = strays.iter().map(PathBuf::as_path).collect();
    assert_eq!(dump_reports(&keeper, &refs), intact, "the state is the one of the real files");

    let native = converted(tmp.path(), "n", "native");
    let intact = stdout(&run(&["dump", s(&native)]));
    let strays = [
        native.join("snapshots/snap-00000000000000ff.kks"),
        native.join("wal/seg-00000000000000ff.wal"),
    ];
    for d in &strays {
        std::fs::create_dir(d).unwrap();
    }
    let o = run(&["verify", s(&native), "--json"]);
    assert_eq!(code(&o), Some(1), "{}", stdout(&o));
    assert!(codes(&json(&o)).contains(&"wrong_kind".to_string()));
    let refs: Vec<&Path> = strays.iter().map(PathBuf::as_path).collect();
    assert_eq!(dump_reports(&native, &refs), intact, "the state is the one of the real files");
    for d in &strays {
        std::fs::remove_dir(d).unwrap();
    }
    for marker in [&b""[..], &[0u8; 42][..]] {
        std::fs::write(native.join("KEEPERKIT"), marker).unwrap();
        assert_eq!(code(&run(&["verify", s(&native)])), Some(2));
    }
    std::fs::remove_file(native.join("KEEPERKIT")).unwrap();
    std::fs::create_dir(native.join("KEEPERKIT")).unwrap();
    assert_eq!(code(&run(&["dump", s(&native)])), Some(2));
}

#[test]
fn finding_14_repair_reasons_match_verify_and_say_the_state_before_and_after() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = zk_copy(tmp.path());
    // An empty newest log: verify says moving it away loses nothing; repair does that.
    std::fs::write(dir.join("log.600"), b"").unwrap();
    let v = json(&run(&["verify", s(&dir), "--json"]));
    assert!(codes(&v).contains(&"empty_log".to_string()), "{v}");
    let plan = json(&run(&["repair", s(&dir), "--json"]));
    assert_eq!(plan["refused"], serde_json::json!([]), "{plan}");
    assert_eq!(plan["actions"].as_array().unwrap().len(), 1, "{plan}");
    assert!(plan["state_before"]["nodes"].as_u64().unwrap() > 1000, "{plan}");
    let backup = tmp.path().join("backup");
    let o = run(&["repair", s(&dir), "--apply", "--backup", s(&backup), "--json"]);
    assert_eq!(code(&o), Some(0), "{}", stdout(&o));
    let r = json(&o);
    assert_eq!(r["state_after"], r["state_before"], "{r}");
    assert!(backup.join("log.600").exists());
    assert!(!dir.join("log.600").exists());

    // A damaged newest snapshot: ZooKeeper falls back, and the refusal says so.
    let mut bytes = std::fs::read(dir.join("snapshot.22c")).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x01;
    std::fs::write(dir.join("snapshot.22c"), bytes).unwrap();
    let plan = json(&run(&["repair", s(&dir), "--json"]));
    let refused = plan["refused"].as_array().unwrap();
    assert_eq!(refused.len(), 1, "{plan}");
    assert_eq!(refused[0]["finding"]["file"], s(&dir.join("snapshot.22c")));
    assert!(refused[0]["reason"].as_str().unwrap().contains("falls back"), "{plan}");

    // A tmp_ marker on the only Keeper snapshot: Keeper deletes it and starts empty, so
    // the state is not "everything the files hold" and the repair says what it loses.
    let keeper = converted(tmp.path(), "k", "clickhouse");
    let snap = files_with(&keeper.join("snapshots"), ".zstd").pop().unwrap();
    let name = snap.file_name().unwrap().to_str().unwrap().to_string();
    std::fs::write(keeper.join("snapshots").join(format!("tmp_{name}")), b"").unwrap();
    assert_eq!(code(&run(&["dump", s(&keeper)])), Some(1));
    let o = run(&["repair", s(&keeper), "--apply", "--backup", s(&tmp.path().join("kb"))]);
    assert_eq!(code(&o), Some(1), "{}", stdout(&o));
    assert!(stdout(&o).contains("state before:"), "{}", stdout(&o));
    assert!(stdout(&o).contains("refused:"), "{}", stdout(&o));
    assert!(snap.exists(), "the only copy of the state is kept");
}

#[test]
fn finding_15_repair_of_a_bare_relative_directory_name_works() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = zk_copy(tmp.path());
    std::fs::write(dir.join("log.600"), b"").unwrap();
    let o = keeperkit_in(Some(tmp.path()), &["repair", "version-2", "--apply"]);
    assert_eq!(code(&o), Some(0), "{}{}", stdout(&o), stderr(&o));
    let backups: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with("version-2.keeperkit-backup-"))
        .collect();
    assert_eq!(backups.len(), 1, "{backups:?}");
    assert!(tmp.path().join(&backups[0]).join("log.600").exists());
}

#[test]
fn finding_17_convert_into_its_own_source_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = zk_copy(tmp.path());
    let inside = dir.join("inside");
    let o = run(&["convert", s(tmp.path()), s(&inside), "--to", "native"]);
    assert_eq!(code(&o), Some(2), "{}", stderr(&o));
    assert!(!inside.exists());
}

/// A V6 ClickHouse Keeper snapshot body's start: version, metadata at `index`, zxid, no
/// digest, the session counter, an empty ACL map, then a node count of `nodes`.
fn ch_body_prefix(index: u64, nodes: u64) -> Vec<u8> {
    use keeperkit_model::keeper::nuraft::SnapshotMeta;
    let meta = SnapshotMeta::new(index, 1).encode();
    let mut b = vec![6u8, u8::try_from(meta.len()).unwrap()];
    b.extend_from_slice(&meta);
    b.extend_from_slice(&i64::try_from(index).unwrap().to_le_bytes());
    b.push(0);
    b.extend_from_slice(&1i64.to_le_bytes());
    b.extend_from_slice(&0u64.to_le_bytes());
    b.extend_from_slice(&nodes.to_le_bytes());
    b
}

/// Found by the campaign after the review: a ClickHouse Keeper snapshot (zstd) whose
/// body after a sound header is zeros (a zeroed volume, or a bomb: 512 MiB of zeros in
/// under 100 KiB) reads as millions of nodes with empty paths. They never become part
/// of a tree, but were kept while they waited for a root that never came: every command
/// went past the memory bound. Such a node is refused at once, naming the file.
#[test]
fn finding_18_a_zeroed_keeper_snapshot_body_costs_bounded_memory() {
    use std::io::Write;
    let tmp = tempfile::tempdir().unwrap();
    let dir = common::clickhouse_dir(tmp.path(), "k", false);
    let mut enc = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
    enc.write_all(&ch_body_prefix(60, 1 << 40)).unwrap();
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..512 {
        enc.write_all(&zeros).unwrap();
    }
    let bomb = enc.finish().unwrap();
    assert!(bomb.len() < 1 << 20, "{} bytes", bomb.len());
    let snap = dir.join("snapshots/snapshot_60.bin.zstd");
    std::fs::write(&snap, &bomb).unwrap();
    for target in [&dir, &snap] {
        for cmd in ["verify", "dump", "stats", "inspect"] {
            let what = format!("{cmd} {}", target.display());
            let r = common::run(&[cmd, s(target)]);
            r.assert_sane(&what);
            assert!(r.peak_rss < common::RSS_BOUND, "{what}: {} MiB", r.peak_rss >> 20);
            assert_eq!(r.code, Some(1), "{what}: {}{}", r.stdout, r.stderr);
            let said = format!("{}{}", r.stdout, r.stderr);
            assert!(said.contains("snapshot_60.bin.zstd"), "{what}: {said}");
        }
    }
}

/// Found by the campaign after the review: in the newest zstd changelog, one flipped
/// bit in the size field of a block header (not the last block) made the block claim
/// more bytes than the file holds. It read as a write cut short, so every block after
/// it was dropped as a torn tail: `dump`, `stats`, `convert` exited 0 with a smaller
/// state and no message. A block larger than the format allows is damage: exit 1,
/// naming the file (`verify`: and the block's file offset).
#[test]
fn finding_19_a_damaged_zstd_block_size_is_not_a_torn_tail() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = common::clickhouse_dir(tmp.path(), "k", true);
    let log = dir.join("logs/changelog_41_60.bin.zstd");
    let mut bytes = std::fs::read(&log).unwrap();
    let layout = keeperkit_wal::clickhouse::zstd_stream::decode(&bytes, 1 << 30).unwrap();
    assert!(layout.stop.is_none() && layout.block_ends.len() > 6);
    // The header of the third block: its size's top bit (adds 1 MiB).
    let at = usize::try_from(layout.block_ends[1].file_offset).unwrap();
    bytes[at + 2] ^= 0x80;
    std::fs::write(&log, &bytes).unwrap();
    let out = tmp.path().join("out");
    for args in [
        vec!["verify", s(&dir)],
        vec!["dump", s(&dir)],
        vec!["stats", s(&dir)],
        vec!["log", s(&dir)],
        vec!["convert", s(&dir), s(&out), "--to", "native"],
    ] {
        let what = args.join(" ");
        let r = common::run(&args);
        r.assert_sane(&what);
        assert_eq!(r.code, Some(1), "{what}: {}{}", r.stdout, r.stderr);
        let said = format!("{}{}", r.stdout, r.stderr);
        assert!(said.contains("changelog_41_60.bin.zstd"), "{what}: {said}");
        if args[0] == "verify" {
            // The finding's offset is in the decompressed stream; its message also
            // gives the block's file offset.
            assert!(said.contains(&format!("file offset {at}")), "{what}: {said}");
        }
    }
    assert!(!out.exists());
}

/// Found by the campaign after the review: a FIFO named like a data file inside a data
/// directory made `verify`, `inspect` and `repair` exit 1 (an unreadable file among the
/// findings) where the other commands exit 2. It is a wrong kind of input, refused the
/// same way by every command: exit 2 naming it, without blocking on it.
#[cfg(unix)]
#[test]
fn finding_20_a_fifo_in_a_data_directory_is_exit_2_for_every_command() {
    let tmp = tempfile::tempdir().unwrap();
    let zk = zk_copy(&tmp.path().join("zk"));
    let keeper = common::clickhouse_dir(tmp.path(), "k", true);
    let native = converted(tmp.path(), "n", "native");
    let fifos = [
        (zk.clone(), zk.join("log.600")),
        (zk.clone(), zk.join("snapshot.600")),
        (keeper.clone(), keeper.join("logs/changelog_41_60.bin.zstd")),
        (keeper.clone(), keeper.join("snapshots/snapshot_99999.bin.zstd")),
        (native.clone(), native.join("wal/seg-00000000000000ff.wal")),
        (native.clone(), native.join("snapshots/snap-00000000000fffff.kks")),
    ];
    let mut bad = Vec::new();
    for (n, (dir, fifo)) in fifos.iter().enumerate() {
        let saved = std::fs::read(fifo).ok();
        if saved.is_some() {
            std::fs::remove_file(fifo).unwrap();
        }
        common::mkfifo(fifo);
        let name = fifo.file_name().unwrap().to_str().unwrap();
        let out = tmp.path().join(format!("out{n}"));
        let mut runs: Vec<Vec<&str>> = ["verify", "dump", "stats", "sessions", "log", "inspect"]
            .iter()
            .map(|c| vec![*c, s(dir)])
            .collect();
        runs.push(vec!["repair", s(dir)]);
        runs.push(vec!["repair", s(dir), "--apply"]);
        runs.push(vec!["convert", s(dir), s(&out), "--to", "zookeeper", "--lossy"]);
        for args in runs {
            let what = args.join(" ");
            let r =
                common::run_bounded(&args, std::time::Duration::from_secs(10), common::RSS_BOUND);
            r.assert_sane(&what);
            if r.code != Some(2) || !r.stderr.contains(name) || !r.stderr.contains("FIFO") {
                bad.push(format!("{what}: exit {:?}: {}", r.code, r.stderr.trim()));
            }
        }
        if out.exists() {
            bad.push(format!("convert with {} there wrote {}", fifo.display(), out.display()));
        }
        std::fs::remove_file(fifo).unwrap();
        if let Some(b) = saved {
            std::fs::write(fifo, b).unwrap();
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

/// Found by the campaign after the review: a stray copy of a changelog under a newer
/// file's name (`changelog_61_80.bin` holding entries 41..55, or 1..20): `verify` and
/// `dump` exit 1 (Keeper refuses to start: records lost), but `log` listed its entries
/// as if they were the next ones and exited 0. A changelog that does not start at the
/// index its name gives is an error naming it; its entries are not listed.
#[test]
fn finding_21_a_stray_changelog_under_a_newer_name_is_an_error_for_log() {
    let tmp = tempfile::tempdir().unwrap();
    for (compress, ext) in [(false, "bin"), (true, "bin.zstd")] {
        let dir = common::clickhouse_dir(tmp.path(), &format!("k-{compress}"), compress);
        let logs = dir.join("logs");
        let intact = run(&["log", s(&dir), "--json"]);
        assert_eq!(code(&intact), Some(0), "{}", stderr(&intact));
        for src in ["changelog_1_20", "changelog_41_60"] {
            let stray = logs.join(format!("changelog_61_80.{ext}"));
            std::fs::copy(logs.join(format!("{src}.{ext}")), &stray).unwrap();
            for cmd in ["verify", "dump", "log"] {
                let o = run(&[cmd, s(&dir)]);
                let said = format!("{}{}", stdout(&o), stderr(&o));
                assert_eq!(code(&o), Some(1), "{cmd} with a copy of {src}: {said}");
                assert!(said.contains("changelog_61_80"), "{cmd} with a copy of {src}: {said}");
            }
            let o = run(&["log", s(&dir), "--json"]);
            assert_eq!(stdout(&o), stdout(&intact), "only the real entries are listed");
            std::fs::remove_file(&stray).unwrap();
        }
    }
}

/// Found by the campaign after the review: one flipped bit inside the first block of
/// the newest zstd changelog makes the decoder reject that block, so no entry of the
/// file can be read. Keeper's startup plan passes over a file that yields no entry, and
/// `dump`, `stats`, `convert` exited 0 with the state at the previous file's end (40 of
/// 55 entries) and no message. A damaged file whose entries are missing from the state
/// is an error naming it, in every recovering command.
#[test]
fn finding_22_a_changelog_damaged_from_its_first_block_is_not_passed_over() {
    use std::io::Read;
    let tmp = tempfile::tempdir().unwrap();
    let dir = common::clickhouse_dir(tmp.path(), "k", true);
    let log = dir.join("logs/changelog_41_60.bin.zstd");
    let mut bytes = std::fs::read(&log).unwrap();
    let layout = keeperkit_wal::clickhouse::zstd_stream::decode(&bytes, 1 << 30).unwrap();
    // Inside the first block's compressed content.
    let first_block_end = usize::try_from(layout.block_ends[0].file_offset).unwrap();
    assert!(first_block_end > 64, "{first_block_end}");
    bytes[64] ^= 0x80;
    let mut out = Vec::new();
    let rejected =
        zstd::stream::read::Decoder::new(&bytes[..]).unwrap().read_to_end(&mut out).is_err();
    assert!(rejected && out.is_empty(), "the damage must make zstd reject the first block");
    std::fs::write(&log, &bytes).unwrap();
    let conv = tmp.path().join("out");
    for args in [
        vec!["dump", s(&dir)],
        vec!["stats", s(&dir)],
        vec!["sessions", s(&dir)],
        vec!["convert", s(&dir), s(&conv), "--to", "native"],
    ] {
        let what = args.join(" ");
        let r = common::run(&args);
        r.assert_sane(&what);
        assert_eq!(r.code, Some(1), "{what}: {}", r.stderr);
        assert!(r.stderr.contains("changelog_41_60.bin.zstd"), "{what}: {}", r.stderr);
    }
    assert!(!conv.exists());
}

/// Found by the campaign (native case 147 of `KEEPERKIT_CAMPAIGN_CASES=60`): zeros over
/// bytes 116..588 of the newest WAL segment, from inside its first record past the
/// start of its last one. Every record of that segment had been synced (each append
/// is), and later records' durable marks said so, but the zeros took those records
/// with them: nothing left in the segment showed the bytes had been durable, so the
/// reader took them for a torn tail, and `dump`, `stats`, `log` and `convert` exited 0
/// with four entries fewer. The metadata file's durable mark (written when the log is
/// closed) now says how much of the segment was durable: the zeros are damage.
#[test]
fn finding_23_zeros_over_the_last_synced_records_of_the_newest_segment_are_damage() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("native");
    common::native_engine_dir(&dir);
    let full = run(&["dump", s(&dir)]);
    assert_eq!(code(&full), Some(0), "{}", stderr(&full));
    let wal = dir.join("wal");
    let seg = files_with(&wal, ".wal").pop().unwrap();
    let intact = std::fs::read(&seg).unwrap();
    let mut bytes = intact.clone();
    // The segment of the case: four records, the last one starting before byte 588,
    // so that zeros over 116..588 leave no record header after the damage.
    let mut starts = Vec::new();
    let mut off = 64;
    while off + 40 <= bytes.len() && bytes[off..off + 40].iter().any(|&b| b != 0) {
        starts.push(off);
        let n = u32::from_le_bytes(bytes[off + 4..off + 8].try_into().unwrap()) as usize;
        off = (off + 40 + n).div_ceil(8) * 8;
    }
    assert_eq!(starts.len(), 4, "{}: records at {starts:?}", seg.display());
    assert!(starts[3] + 40 <= 588 && off > 116, "records at {starts:?}, end {off}");
    bytes[116..588].fill(0);
    std::fs::write(&seg, &bytes).unwrap();

    let o = run(&["verify", s(&dir), "--json"]);
    assert_eq!(code(&o), Some(1), "{}", stdout(&o));
    assert!(!codes(&json(&o)).contains(&"torn_tail".to_string()), "{}", stdout(&o));
    let conv = tmp.path().join("back");
    for args in [
        vec!["dump", s(&dir)],
        vec!["stats", s(&dir)],
        vec!["log", s(&dir)],
        vec!["convert", s(&dir), s(&conv), "--to", "zookeeper", "--lossy"],
    ] {
        let o = run(&args);
        let what = args.join(" ");
        assert_ne!(code(&o), Some(0), "{what}: {}", stderr(&o));
        assert!(!stderr(&o).contains("never acknowledged"), "{what}: {}", stderr(&o));
        assert!(stderr(&o).contains(s(&seg)), "{what} names the segment: {}", stderr(&o));
    }
    assert!(!conv.exists());
    // The same segment cut at a record boundary (its last two records gone): a
    // shorter log, but the metadata file says those bytes had been durable.
    std::fs::write(&seg, &intact[..starts[2]]).unwrap();
    let o = run(&["verify", s(&dir)]);
    assert_eq!(code(&o), Some(1), "{}", stdout(&o));
    assert_ne!(code(&run(&["dump", s(&dir)])), Some(0));
}
