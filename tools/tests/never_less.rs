//! Never silently less: each numbered finding of the damaged-input review, as a
//! regression test named after it (`finding_NN_...`).
//!
//! The rule they guard: exit 0 from a command that recovers a state means "this is
//! everything the files durably hold"; the only loss allowed with exit 0 is a torn tail
//! the format defines as never acknowledged, and even that is said on stderr. A wrong
//! kind of input is exit 2 naming it. (Findings 4 and 5, decompression bombs and FIFOs,
//! live with the decoders and the file system layer.)
#![allow(clippy::unwrap_used, clippy::expect_used)]

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

#[test]
fn finding_13_directories_named_like_data_files_and_bad_markers_are_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = zk_copy(tmp.path());
    std::fs::create_dir(dir.join("log.600")).unwrap();
    std::fs::create_dir(dir.join("snapshot.600")).unwrap();
    let o = run(&["verify", s(&dir), "--json"]);
    assert_eq!(code(&o), Some(1));
    assert_eq!(codes(&json(&o)).iter().filter(|c| *c == "wrong_kind").count(), 2, "{}", stdout(&o));

    let keeper = converted(tmp.path(), "k", "clickhouse");
    std::fs::create_dir(keeper.join("logs/changelog_1_100.bin")).unwrap();
    let o = run(&["verify", s(&keeper), "--json"]);
    assert_eq!(code(&o), Some(1), "{}", stdout(&o));
    assert!(codes(&json(&o)).contains(&"wrong_kind".to_string()));

    let native = converted(tmp.path(), "n", "native");
    std::fs::create_dir(native.join("snapshots/snap-00000000000000ff.kks")).unwrap();
    let o = run(&["verify", s(&native), "--json"]);
    assert_eq!(code(&o), Some(1), "{}", stdout(&o));
    assert!(codes(&json(&o)).contains(&"wrong_kind".to_string()));
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
