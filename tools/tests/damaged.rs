//! Damaged copies of real ZooKeeper data give the documented outcome, and no command
//! panics on them.
//!
//! Guards against: a torn tail turning into an error (ZooKeeper accepts it), a flipped bit
//! being skipped silently, a deleted log becoming a silent hole, a broken newest snapshot
//! aborting recovery instead of falling back, and a hostile length causing a huge
//! allocation. Each case runs the real `keeperkit` binary and checks its exit code and
//! what it names.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use keeperkit_model::Zxid;
use keeperkit_storage::{open, OpenOptions, Point};
use keeperkit_tools::json::JsonNode;
use keeperkit_wal::zookeeper::{read_all, LogRecord};

fn fixture(set: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/zookeeper-3.8.0").join(set).join("data")
}

/// Copies a fixture's `version-2` into a fresh temp dir; returns (guard, version-2 path).
fn copy(set: &str) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dst = tmp.path().join("version-2");
    std::fs::create_dir_all(&dst).unwrap();
    for e in std::fs::read_dir(fixture(set).join("version-2")).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), dst.join(e.file_name())).unwrap();
    }
    (tmp, dst)
}

fn keeperkit(args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_keeperkit")).args(args).output().unwrap();
    assert_ne!(out.status.code(), Some(101), "keeperkit panicked: {}", stderr(&out));
    assert!(out.status.code().is_some(), "keeperkit was killed by a signal");
    out
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn names(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    let mut v: Vec<(i64, PathBuf)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter_map(|p| {
            let n = p.file_name()?.to_str()?.to_string();
            let hex = n.strip_prefix(prefix)?.split('.').next()?.to_string();
            Some((i64::from_str_radix(&hex, 16).ok()?, p))
        })
        .collect();
    v.sort();
    v.into_iter().map(|(_, p)| p).collect()
}

fn records(path: &Path) -> Vec<LogRecord> {
    read_all(&*keeperkit_vfs::std_fs(), path).unwrap().1
}

fn state(dir: &Path, at: Option<Zxid>) -> (Vec<JsonNode>, bool) {
    let fs = keeperkit_vfs::std_fs();
    let s = open(&*fs, dir, &OpenOptions::default())
        .and_then(|d| d.recover(at.map_or(Point::Latest, Point::Zxid)))
        .unwrap_or_else(|e| panic!("{e}"));
    let mut v = Vec::new();
    s.tree.for_each_sorted(|p, n| v.push(JsonNode::from_node(p, &n)));
    (v, s.report.has_errors())
}

#[test]
fn torn_last_record_at_every_offset_gives_the_prefix() {
    let (_tmp, dir) = copy("basic");
    let newest = names(&dir, "log.").pop().unwrap();
    let recs = records(&newest);
    let last = recs.last().unwrap();
    let (want, _) = state(&dir, Some(Zxid(last.zxid().0 - 1)));
    let original = std::fs::read(&newest).unwrap();
    let start = last.offset;
    let end = last.end_offset();
    for cut in start..end {
        std::fs::write(&newest, &original[..usize::try_from(cut).unwrap()]).unwrap();
        let (got, errors) = state(&dir, None);
        assert!(!errors, "cut at {cut}: a torn tail must not be an error");
        assert_eq!(got, want, "cut at {cut}: state differs from the prefix state");
    }
    // The same cut with zeros after it (what a crash leaves in a preallocated file).
    let mut zeroed = original.clone();
    zeroed[usize::try_from(start + 20).unwrap()..].fill(0);
    std::fs::write(&newest, &zeroed).unwrap();
    assert_eq!(state(&dir, None).0, want);
    let out = keeperkit(&["dump", dir.to_str().unwrap(), "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out).lines().count(), want.len());
}

#[test]
fn flipped_bit_in_a_middle_record_is_named_by_verify() {
    let (_tmp, dir) = copy("basic");
    let logs = names(&dir, "log.");
    let middle = &logs[logs.len() / 2];
    let recs = records(middle);
    let rec = &recs[recs.len() / 2];
    let mut bytes = std::fs::read(middle).unwrap();
    let at = usize::try_from(rec.offset).unwrap() + 12 + 40;
    bytes[at] ^= 0x10;
    std::fs::write(middle, &bytes).unwrap();

    let out = keeperkit(&["verify", dir.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let text = stdout(&out);
    let name = middle.file_name().unwrap().to_str().unwrap();
    assert!(text.contains(name), "verify must name the file: {text}");
    assert!(text.contains(&format!("byte {}", rec.offset)), "verify must name the offset: {text}");
    assert!(text.contains("checksum_mismatch"), "{text}");

    let out = keeperkit(&["verify", dir.to_str().unwrap(), "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let p = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["code"] == "checksum_mismatch")
        .expect("a checksum_mismatch problem");
    assert_eq!(p["offset"].as_u64(), Some(rec.offset));
    assert_eq!(p["zxid"].as_str(), Some(format!("{:#x}", rec.zxid().0).as_str()));
    // The unreadable rest of that log is the damage itself, not a missing file.
    assert!(
        !v["findings"].as_array().unwrap().iter().any(|p| p["code"] == "gap"),
        "no spurious gap after a checksum error: {v}"
    );

    // dump refuses to build a state past corruption when recovery needs that log (as
    // ZooKeeper refuses to start), and says where the damage is.
    let fs = keeperkit_vfs::std_fs();
    let layout = keeperkit_storage::zookeeper::ZkLayout::locate(&*fs, &dir, None).unwrap();
    let newest_snap = layout.snapshots.last().unwrap().0;
    let needed = keeperkit_storage::zookeeper::logs_to_replay(&layout.logs, newest_snap)
        .iter()
        .any(|(_, p)| p == middle);
    let out = keeperkit(&["dump", dir.to_str().unwrap()]);
    if needed {
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
        assert!(stderr(&out).contains(name), "{}", stderr(&out));
    } else {
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    }
}

#[test]
fn flipped_bit_in_a_snapshot_is_named_and_recovery_falls_back() {
    let (_tmp, dir) = copy("basic");
    let snaps = names(&dir, "snapshot.");
    let newest = snaps.last().unwrap();
    let mut bytes = std::fs::read(newest).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x01;
    std::fs::write(newest, &bytes).unwrap();
    let out = keeperkit(&["verify", dir.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    assert!(text.contains(newest.file_name().unwrap().to_str().unwrap()), "{text}");
    // Recovery still gives the exact state from the previous snapshot.
    let (want, _) = state(&fixture("basic"), None);
    let (got, errors) = state(&dir, None);
    assert!(!errors);
    assert_eq!(got, want);
    let out = keeperkit(&["dump", dir.to_str().unwrap(), "--json"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(stderr(&out).contains("damaged and was skipped"), "{}", stderr(&out));
}

#[test]
fn garbage_or_empty_newest_snapshot_falls_back_and_says_so() {
    let (want, _) = state(&fixture("basic"), None);
    for content in [&b""[..], &b"this is not a snapshot at all, just garbage bytes"[..]] {
        let (_tmp, dir) = copy("basic");
        let newest = names(&dir, "snapshot.").pop().unwrap();
        std::fs::write(&newest, content).unwrap();
        let (got, errors) = state(&dir, None);
        assert!(!errors);
        assert_eq!(got, want);
        let out = keeperkit(&["dump", dir.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(0));
        assert!(stderr(&out).contains("skipped"), "{}", stderr(&out));
        let out = keeperkit(&["verify", dir.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(1), "a damaged snapshot is a problem for verify");
    }
}

#[test]
fn deleted_middle_log_is_a_reported_gap_not_a_silent_hole() {
    let (_tmp, dir) = copy("basic");
    let logs = names(&dir, "log.");
    // Keep the snapshots that need the deleted log: the gap must be found from any base.
    let victim = &logs[logs.len() - 2];
    let first_missing = records(victim)[0].zxid();
    std::fs::remove_file(victim).unwrap();
    for s in names(&dir, "snapshot.") {
        let z = i64::from_str_radix(
            s.file_name().unwrap().to_str().unwrap().trim_start_matches("snapshot."),
            16,
        )
        .unwrap();
        if z >= first_missing.0 {
            std::fs::remove_file(s).unwrap();
        }
    }
    let out = keeperkit(&["dump", dir.to_str().unwrap(), "--json"]);
    assert_eq!(out.status.code(), Some(1), "a gap must not exit 0");
    assert!(stderr(&out).contains("gap"), "{}", stderr(&out));
    // The printed state is the consistent prefix before the gap.
    let (want, _) = state(&fixture("basic"), Some(Zxid(first_missing.0 - 1)));
    assert_eq!(stdout(&out).lines().count(), want.len());
    let out = keeperkit(&["verify", dir.to_str().unwrap(), "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["findings"].as_array().unwrap().iter().any(|p| p["code"] == "gap"), "{v}");
}

#[test]
fn zero_length_newest_log_changes_nothing() {
    let (_tmp, dir) = copy("basic");
    std::fs::write(dir.join("log.fffff"), b"").unwrap();
    let (want, _) = state(&fixture("basic"), None);
    let (got, errors) = state(&dir, None);
    assert!(!errors);
    assert_eq!(got, want);
    let out = keeperkit(&["dump", dir.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    // ZooKeeper 3.8.0 refuses to start with it (docs/ZOOKEEPER-BEHAVIOUR.md, d1).
    let out = keeperkit(&["verify", dir.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(stdout(&out).contains("empty_log"));
}

#[test]
fn huge_length_fields_are_errors_without_allocation() {
    for len in [0x7FFF_FFFFu32, 0x8000_0000] {
        let (_tmp, dir) = copy("basic");
        let newest = names(&dir, "log.").pop().unwrap();
        let recs = records(&newest);
        let rec = &recs[recs.len() / 2];
        let mut bytes = std::fs::read(&newest).unwrap();
        let at = usize::try_from(rec.offset).unwrap() + 8;
        bytes[at..at + 4].copy_from_slice(&len.to_be_bytes());
        std::fs::write(&newest, &bytes).unwrap();
        let started = std::time::Instant::now();
        let out = keeperkit(&["verify", dir.to_str().unwrap(), "--json"]);
        assert_eq!(out.status.code(), Some(1));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let p = v["findings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["code"] == "length_out_of_range")
            .unwrap_or_else(|| panic!("{v}"));
        assert_eq!(p["offset"].as_u64(), Some(rec.offset + 8));
        // dump prints the state before the damage and exits 1.
        let out = keeperkit(&["dump", dir.to_str().unwrap(), "--json"]);
        assert_eq!(out.status.code(), Some(1));
        assert!(stderr(&out).contains("replay stopped at damage"), "{}", stderr(&out));
        let (want, _) = state(&fixture("basic"), Some(Zxid(rec.zxid().0 - 1)));
        assert_eq!(stdout(&out).lines().count(), want.len());
        assert!(started.elapsed().as_secs() < 20);
    }
}

#[test]
fn no_command_panics_on_damaged_files() {
    let (_tmp, dir) = copy("basic");
    // Damage several files in several ways at once.
    for (i, f) in names(&dir, "log.").iter().chain(names(&dir, "snapshot.").iter()).enumerate() {
        let mut b = std::fs::read(f).unwrap();
        if b.is_empty() {
            continue;
        }
        let n = b.len();
        match i % 3 {
            0 => b.truncate(n / 3),
            1 => b[n / 4] ^= 0xFF,
            _ => b[..n.min(24)].fill(0xEE),
        }
        std::fs::write(f, &b).unwrap();
    }
    let d = dir.to_str().unwrap();
    for args in [
        vec!["dump", d],
        vec!["dump", d, "--json"],
        vec!["sessions", d],
        vec!["log", d],
        vec!["log", d, "--json"],
        vec!["inspect", d],
        vec!["inspect", d, "--json"],
        vec!["verify", d],
        vec!["stats", d],
        vec!["diff", d, d],
    ] {
        let out = keeperkit(&args);
        assert!(matches!(out.status.code(), Some(0..=2)), "{args:?}: {:?}", out.status);
    }
    for f in names(&dir, "log.").iter().chain(names(&dir, "snapshot.").iter()) {
        let f = f.to_str().unwrap();
        for cmd in ["inspect", "verify", "log", "dump"] {
            let out = keeperkit(&[cmd, f]);
            assert!(matches!(out.status.code(), Some(0..=2)), "{cmd} {f}");
        }
    }
}
