//! The state commands on a ClickHouse Keeper coordination directory whose changelogs go
//! past its snapshot: `dump` (and `--at-index`), `sessions`, `stats`, `diff`, `verify`
//! replaying the log with entry digests, `convert` to native and back.
//!
//! Guards against: a dump that ignores the changelogs, `--at-index` off by one, a verify
//! that misses an entry whose digest disagrees, a conversion that loses the log
//! position.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::cast_possible_truncation)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use keeperkit_model::keeper::{
    digest_version, CreateRequest, KeeperLogEntry, KeeperRequest, ZxidDigest,
};
use keeperkit_model::Acl;
use keeperkit_tree::KeeperExecOptions;
use keeperkit_vfs::StdFs;
use keeperkit_wal::clickhouse::{ChangelogRecord, ChangelogWriter, WriterOptions};
use serde_json::Value;

fn keeperkit(args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_keeperkit")).args(args).output().unwrap();
    assert_ne!(out.status.code(), Some(101), "panic: {}", String::from_utf8_lossy(&out.stderr));
    out
}

fn ok(out: &Output) -> String {
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/zookeeper-3.8.0/basic/data")
}

fn create(path: &str, data: &[u8], flags: i32) -> KeeperRequest {
    KeeperRequest::Create(CreateRequest {
        path: path.into(),
        data: data.to_vec(),
        acls: Acl::open_unsafe(),
        flags,
    })
}

/// basic → ClickHouse (snapshot at index N), then N+1.. : a session, its addauth, /kk,
/// /kk/e (ephemeral), set /kk, /kk/s- (sequential). Returns (dir, N). `bad_digest_at`: the
/// entry written with a wrong digest.
fn build(root: &Path, bad_digest_at: Option<usize>) -> (PathBuf, u64) {
    let dir = root.join(format!("ch-{bad_digest_at:?}"));
    ok(&keeperkit(&[
        "convert",
        fixture().to_str().unwrap(),
        dir.to_str().unwrap(),
        "--to",
        "clickhouse",
        "--lossy",
    ]));
    let snap = std::fs::read_dir(dir.join("snapshots")).unwrap().next().unwrap().unwrap().path();
    let loaded = keeperkit_storage::clickhouse::snapshot::load_snapshot(&StdFs, &snap).unwrap();
    let n = loaded.header.meta.last_log_idx;
    let s = loaded.header.session_id_counter;
    let mut tree = loaded.tree;
    tree.set_session_id_counter(s);
    tree.enable_keeper_digest();
    let reqs = vec![
        (-1, KeeperRequest::SessionId { internal_id: 1, session_timeout_ms: 9_000, server_id: 1 }),
        (
            s,
            KeeperRequest::Auth {
                auth_type: 0,
                scheme: "digest".into(),
                data: b"user1:password1".to_vec(),
            },
        ),
        (s, create("/kk", b"one", 0)),
        (s, create("/kk/e", b"", 1)),
        (s, KeeperRequest::Set { path: "/kk".into(), data: b"two".to_vec(), version: -1 }),
        (s, create("/kk/s-", b"", 2)),
    ];
    let mut w = ChangelogWriter::new(
        &StdFs,
        &dir.join("logs"),
        WriterOptions { rotate_interval: 3, compress: true, sync: false },
    );
    for (k, (sess, req)) in reqs.into_iter().enumerate() {
        let index = n + 1 + k as u64;
        let mut e = KeeperLogEntry::new(sess, k as i64, req, 1_800_000_000_000 + k as i64);
        e.trailer.zxid_digest = Some(ZxidDigest {
            zxid: index as i64,
            digest_version: digest_version::V4,
            digest: Some(0),
        });
        tree.apply_keeper_entry(&e, index, &KeeperExecOptions::default()).unwrap();
        let mut d = tree.keeper_digest_with_system_node().unwrap();
        if bad_digest_at == Some(k) {
            d = d.wrapping_add(1);
        }
        e.trailer.zxid_digest.as_mut().unwrap().digest = Some(d);
        w.append(&ChangelogRecord::new(index, 2, 1, e.encode())).unwrap();
    }
    w.finish().unwrap();
    (dir, n)
}

fn dump(path: &Path, extra: &[&str]) -> Vec<Value> {
    let mut args = vec!["dump", path.to_str().unwrap(), "--json"];
    args.extend_from_slice(extra);
    ok(&keeperkit(&args)).lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// The state at the snapshot's own index.
fn snap_only(dir: &Path, n: u64) -> Vec<Value> {
    dump(dir, &["--at-index", &n.to_string()])
}

fn node<'a>(d: &'a [Value], path: &str) -> Option<&'a Value> {
    d.iter().find(|n| n["path"] == path)
}

#[test]
fn dump_sessions_stats_diff_verify_convert_on_snapshot_plus_changelogs() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, n) = build(tmp.path(), None);
    let d = dir.to_str().unwrap();
    let full = dump(&dir, &[]);
    let kk = node(&full, "/kk").expect("/kk from the changelog");
    assert_eq!(kk["data"], "dHdv", "two");
    assert_eq!(kk["stat"]["version"], 1);
    assert_eq!(kk["stat"]["numChildren"], 2);
    assert!(node(&full, "/kk/s-0000000001").is_some(), "the counter counts the ephemeral");
    let eph = node(&full, "/kk/e").unwrap();
    assert_ne!(eph["stat"]["ephemeralOwner"], 0);
    // --at-index: right after the ephemeral create.
    let at = (n + 4).to_string();
    let early = dump(&dir, &["--at-index", &at]);
    assert_eq!(node(&early, "/kk").unwrap()["data"], "b25l", "one");
    assert!(node(&early, "/kk/s-0000000001").is_none());
    // At the snapshot's own index: the converted ZooKeeper state, without /kk.
    let snap = dump(&dir, &["--at-index", &n.to_string()]);
    assert!(node(&snap, "/kk").is_none());
    assert_eq!(snap.len() + 3, full.len());
    // The two directories given separately (Keeper's snapshot_storage_path and
    // log_storage_path can be anywhere).
    let apart = dump(&dir.join("snapshots"), &["--log-dir", dir.join("logs").to_str().unwrap()]);
    assert_eq!(apart, full, "snapshots dir + --log-dir");
    // The snapshots dir alone: the snapshot's state.
    assert_eq!(dump(&dir.join("snapshots"), &[]), snap_only(&dir, n));
    // --at is for zxids: refused with a hint.
    let out = keeperkit(&["dump", d, "--at", "0x10"]);
    assert_eq!(out.status.code(), Some(2));
    // sessions: the new one with its timeout and its ephemeral.
    let sessions = ok(&keeperkit(&["sessions", d, "--json"]));
    assert!(sessions.contains("\"timeout_ms\":9000,"), "{sessions}");
    assert!(sessions.contains("user1:XDkd2dsEuhc9ImU3q8pa8UOdtpI="), "addauth kept: {sessions}");
    // stats and diff.
    let stats: Value = serde_json::from_str(&ok(&keeperkit(&["stats", d, "--json"]))).unwrap();
    assert_eq!(stats["nodes"].as_u64().unwrap(), full.len() as u64, "{stats}");
    let diff = keeperkit(&["diff", fixture().to_str().unwrap(), d, "--json"]);
    assert_eq!(diff.status.code(), Some(1), "they differ");
    let text = String::from_utf8_lossy(&diff.stdout);
    assert!(text.contains("/kk/s-0000000001"), "{text}");
    // log shows each entry's zxid and digest as the leader patched them in.
    let log: Vec<Value> = ok(&keeperkit(&["log", d, "--json"]))
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(log.len(), 6);
    assert_eq!(log[2]["op"], "Create");
    assert_eq!(log[2]["index"], n + 3);
    assert_eq!(log[2]["zxid"], n + 3);
    assert_eq!(log[2]["digest_version"], 4);
    assert!(log[2]["digest"].as_str().unwrap().starts_with("0x"), "{}", log[2]);
    // verify replays the log and checks every entry digest.
    let v: Value = serde_json::from_str(&ok(&keeperkit(&["verify", d, "--json"]))).unwrap();
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["entries_replayed"], 6, "{v}");
    assert!(v["digests_checked"].as_u64().unwrap() >= 7, "snapshot + 6 entries: {v}");
    // To native and back: the state and the log position survive.
    let native = tmp.path().join("native");
    ok(&keeperkit(&["convert", d, native.to_str().unwrap(), "--to", "native"]));
    assert_eq!(dump(&native, &[]), full);
    let back = tmp.path().join("back");
    ok(&keeperkit(&[
        "convert",
        native.to_str().unwrap(),
        back.to_str().unwrap(),
        "--to",
        "clickhouse",
    ]));
    let names: Vec<String> = std::fs::read_dir(back.join("snapshots"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, [format!("snapshot_{}.bin.zstd", n + 6)], "the last index carried over");
    assert_eq!(dump(&back, &[]), full);
    // The session's auth ids went through native and back.
    let back_sessions = ok(&keeperkit(&["sessions", back.to_str().unwrap(), "--json"]));
    assert_eq!(back_sessions, sessions);
    // --at-index on convert.
    let part = tmp.path().join("part");
    ok(&keeperkit(&["convert", d, part.to_str().unwrap(), "--to", "native", "--at-index", &at]));
    assert_eq!(dump(&part, &[]), early);
}

#[test]
fn verify_names_the_entry_whose_digest_disagrees() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, n) = build(tmp.path(), Some(4));
    let out = keeperkit(&["verify", dir.to_str().unwrap(), "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let p = &v["findings"][0];
    assert_eq!(p["code"], "digest_mismatch", "{v}");
    assert_eq!(p["index"], n + 5);
    assert!(p["file"].as_str().unwrap().ends_with("logs"), "{p}");
}
