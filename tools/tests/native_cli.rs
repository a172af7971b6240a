//! `keeperkit log | inspect | verify | repair | bench wal` on keeperkit's native WAL.
//!
//! Guards against: verify missing a flipped bit (or not naming the segment and the
//! offset), repair changing anything without a backup or touching damage that could
//! hold acknowledged entries, log serving entries past damage, and the bench command
//! not leaving its log behind for inspection.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;

use keeperkit_wal::native::{NativeWal, NativeWalOptions, SyncPolicy};

fn run(args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_keeperkit")).args(args).output().unwrap();
    assert_ne!(out.status.code(), Some(101), "panic: {}", String::from_utf8_lossy(&out.stderr));
    out
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A log of `n` entries spread over several small segments.
fn make_log(dir: &Path, n: u64) {
    let mut opts = NativeWalOptions::new(dir);
    opts.sync = SyncPolicy::Never;
    opts.segment_len = 64 << 10;
    let wal = NativeWal::open(Arc::new(keeperkit_vfs::StdFs), opts).unwrap();
    for i in 0..n {
        let payload = format!("entry {i} {}", "x".repeat(usize::try_from(i % 300).unwrap()));
        wal.append_next(1 + i / 100, &[payload.as_bytes()]).unwrap();
    }
    wal.sync().unwrap();
}

fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_str().unwrap().starts_with("seg-"))
        .collect();
    v.sort();
    v
}

#[test]
fn log_inspect_verify_on_a_sound_log() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("wal");
    make_log(&dir, 2000);
    let d = dir.to_str().unwrap();
    let out = run(&["log", d, "--json"]);
    assert_eq!(out.status.code(), Some(0));
    let idx: Vec<u64> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["index"].as_u64().unwrap())
        .collect();
    assert_eq!(idx, (1..=2000).collect::<Vec<_>>());
    let out = run(&["log", d, "--from", "10", "--to", "12", "--json"]);
    assert_eq!(stdout(&out).lines().count(), 3);
    let out = run(&["inspect", d, "--json"]);
    assert_eq!(out.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["dialect"], "native");
    assert_eq!(v["first_index"], 1);
    assert_eq!(v["last_index"], 2000);
    assert!(v["segments"].as_array().unwrap().len() > 3, "several segments expected");
    let out = run(&["verify", d]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    // The parent directory is detected too (a data dir with wal/ inside).
    let out = run(&["verify", tmp.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
}

#[test]
fn verify_names_segment_and_offset_of_a_flipped_bit_anywhere() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("wal");
    make_log(&dir, 1500);
    let segs = segments(&dir);
    let info: serde_json::Value =
        serde_json::from_slice(&run(&["inspect", dir.to_str().unwrap(), "--json"]).stdout).unwrap();
    let mut rng = 0x9E37_79B9_7F4A_7C15u64;
    let mut checked = 0;
    for (i, seg) in segs.iter().enumerate() {
        let data_end = info["segments"][i]["data_end"].as_u64().unwrap();
        for _ in 0..6 {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            let off = usize::try_from(rng % data_end).unwrap();
            let bit = u8::try_from(rng >> 61).unwrap();
            let original = std::fs::read(seg).unwrap();
            let mut bytes = original.clone();
            bytes[off] ^= 1 << bit;
            std::fs::write(seg, &bytes).unwrap();
            let out = run(&["verify", dir.to_str().unwrap(), "--json"]);
            let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            assert_eq!(
                out.status.code(),
                Some(1),
                "flip at {} byte {off} not found: {v}",
                seg.display()
            );
            let p = v["findings"]
                .as_array()
                .unwrap()
                .iter()
                .find(|p| p["severity"] == "error")
                .unwrap();
            assert_eq!(p["file"].as_str().unwrap(), seg.to_str().unwrap(), "{v}");
            let reported = p["offset"].as_u64().unwrap();
            assert!(reported <= off as u64, "reported offset {reported} is after the flip {off}");
            std::fs::write(seg, &original).unwrap();
            checked += 1;
        }
    }
    assert!(checked >= 18);
    assert_eq!(run(&["verify", dir.to_str().unwrap()]).status.code(), Some(0));
}

#[test]
fn repair_cuts_a_torn_tail_with_a_backup_and_refuses_mid_log_damage() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("wal");
    make_log(&dir, 800);
    let d = dir.to_str().unwrap();
    let info: serde_json::Value =
        serde_json::from_slice(&run(&["inspect", d, "--json"]).stdout).unwrap();
    let last = info["segments"].as_array().unwrap().last().unwrap().clone();
    let newest = PathBuf::from(last["file"].as_str().unwrap());
    let data_end = usize::try_from(last["data_end"].as_u64().unwrap()).unwrap();
    // A torn write: half a record header's worth of garbage right after the data.
    let mut bytes = std::fs::read(&newest).unwrap();
    for b in &mut bytes[data_end..data_end + 9] {
        *b = 0xC3;
    }
    std::fs::write(&newest, &bytes).unwrap();
    let out = run(&["verify", d]);
    assert_eq!(out.status.code(), Some(0), "a torn tail is a warning: {}", stdout(&out));
    assert!(stdout(&out).contains("torn_tail"));

    let backup = tmp.path().join("backup");
    let b = backup.to_str().unwrap();
    let out = run(&["repair", d, "--backup", b]);
    assert_eq!(out.status.code(), Some(1), "dry run must report work to do");
    assert!(stdout(&out).contains("would"), "{}", stdout(&out));
    assert_eq!(std::fs::read(&newest).unwrap(), bytes, "a dry run changes nothing");
    assert!(!backup.exists());

    let out = run(&["repair", d, "--apply", "--backup", b]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let saved = backup.join(newest.file_name().unwrap());
    assert_eq!(std::fs::read(&saved).unwrap(), bytes, "the backup holds the file as it was");
    let out = run(&["verify", d]);
    assert_eq!(out.status.code(), Some(0));
    assert!(!stdout(&out).contains("torn_tail"));
    assert_eq!(stdout(&run(&["log", d, "--json"])).lines().count(), 800);

    // Mid-log damage is refused and nothing changes.
    let first = &segments(&dir)[0];
    let mut b0 = std::fs::read(first).unwrap();
    b0[200] ^= 0x40;
    std::fs::write(first, &b0).unwrap();
    let out = run(&["repair", d, "--apply", "--backup", tmp.path().join("b2").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).contains("refused"), "{}", stdout(&out));
    assert_eq!(std::fs::read(first).unwrap(), b0);
    assert!(!tmp.path().join("b2").exists());
    // log serves the entries before the damage and exits 1.
    let out = run(&["log", d]);
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn bench_wal_reports_every_case_and_leaves_its_log() {
    let tmp = tempfile::tempdir().unwrap();
    let out = run(&[
        "bench",
        "wal",
        tmp.path().to_str().unwrap(),
        "--seconds",
        "0.2",
        "--json",
        "--keep",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let cases = v["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 4);
    for c in cases {
        assert!(c["ops"].as_u64().unwrap() > 0, "{c}");
        let (p50, p99) = (c["p50_us"].as_f64().unwrap(), c["p99_us"].as_f64().unwrap());
        assert!(p50 <= p99, "{c}");
    }
    assert!(v["open_log_entries"].as_u64().unwrap() > 0);
    let left = tmp.path().join("keeperkit-bench-wal/unsynced");
    assert_eq!(run(&["verify", left.to_str().unwrap()]).status.code(), Some(0));
    // A second run refuses to overwrite.
    let out = run(&["bench", "wal", tmp.path().to_str().unwrap(), "--seconds", "0.1"]);
    assert_eq!(out.status.code(), Some(2));
    // Without --keep, nothing is left behind.
    let other = tmp.path().join("other");
    std::fs::create_dir(&other).unwrap();
    let out = run(&["bench", "wal", other.to_str().unwrap(), "--seconds", "0.1"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(std::fs::read_dir(&other).unwrap().count(), 0);
}

#[test]
fn repair_moves_a_partial_snapshot_of_a_data_directory_to_the_backup() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let fixture =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/zookeeper-3.8.0/basic/data");
    let out =
        run(&["convert", fixture.to_str().unwrap(), data.to_str().unwrap(), "--to", "native"]);
    assert_eq!(out.status.code(), Some(0));
    let partial = data.join("snapshots/snap-00000000000000ff.kks.tmp");
    std::fs::write(&partial, b"half a snapshot").unwrap();
    let d = data.to_str().unwrap();
    let backup = tmp.path().join("backup");
    let out = run(&["repair", d, "--backup", backup.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(stdout(&out).contains("partial snapshot"), "{}", stdout(&out));
    assert!(partial.exists(), "a dry run changes nothing");
    let out = run(&["repair", d, "--apply", "--backup", backup.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert!(!partial.exists());
    assert_eq!(
        std::fs::read(backup.join("snap-00000000000000ff.kks.tmp")).unwrap(),
        b"half a snapshot"
    );
    let out = run(&["repair", d]);
    assert_eq!(out.status.code(), Some(0), "sound now: {}", stdout(&out));
    assert_eq!(run(&["dump", d]).status.code(), Some(0));
}

#[test]
fn log_names_config_and_blank_entries() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("wal");
    let mut opts = NativeWalOptions::new(&dir);
    opts.sync = SyncPolicy::Never;
    let wal = NativeWal::open(Arc::new(keeperkit_vfs::StdFs), opts).unwrap();
    let config = keeperkit_storage::engine::config_entry(b"{\"voters\":[1,2,3]}");
    wal.append_next(1, &[&config[..]]).unwrap();
    wal.append_next(1, &[&b""[..]]).unwrap();
    wal.append_next(1, &[&b"not a txn"[..]]).unwrap();
    wal.sync().unwrap();
    drop(wal);
    let out = run(&["log", dir.to_str().unwrap(), "--json"]);
    assert_eq!(out.status.code(), Some(0));
    let kinds: Vec<String> = stdout(&out)
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            assert!(v["zxid"].is_null(), "{v}");
            v["kind"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(kinds, ["config", "noop", "opaque"]);
    let text = stdout(&run(&["log", dir.to_str().unwrap()]));
    assert!(text.contains("config"), "{text}");
}
