//! The JSON contract of `docs/CLI.md`: every command runs with `--json` on data of all
//! three dialects, and every key it prints must be named in `docs/CLI.md`.
//!
//! Guards against: a key added, renamed or left over in one dialect's output that the
//! documented contract does not know (the same fact under two names).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use serde_json::Value;

fn run(args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_keeperkit")).args(args).output().unwrap();
    assert_ne!(out.status.code(), Some(101), "panic: {}", String::from_utf8_lossy(&out.stderr));
    (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned())
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Every object key in a JSON document or JSON Lines, keys of maps keyed by numbers
/// (a histogram) excepted.
fn keys_of(text: &str) -> BTreeSet<String> {
    fn walk(v: &Value, acc: &mut BTreeSet<String>) {
        match v {
            Value::Object(m) => {
                for (k, x) in m {
                    if !k.chars().all(|c| c.is_ascii_digit()) {
                        acc.insert(k.clone());
                    }
                    walk(x, acc);
                }
            }
            Value::Array(a) => a.iter().for_each(|x| walk(x, acc)),
            _ => {}
        }
    }
    let mut acc = BTreeSet::new();
    match serde_json::from_str::<Value>(text) {
        Ok(v) => walk(&v, &mut acc),
        Err(_) => {
            for l in text.lines().filter(|l| !l.trim().is_empty()) {
                walk(&serde_json::from_str(l).unwrap(), &mut acc);
            }
        }
    }
    acc
}

/// Every identifier inside a backtick span of `docs/CLI.md`.
fn documented() -> BTreeSet<String> {
    let doc = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/CLI.md"))
        .unwrap();
    let mut out = BTreeSet::new();
    for (i, span) in doc.split('`').enumerate() {
        if i % 2 == 1 {
            for w in span.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
                if !w.is_empty() {
                    out.insert(w.to_string());
                }
            }
        }
    }
    out
}

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/zookeeper-3.8.0/basic/data")
}

/// A native WAL with a few entries, and a Keeper changelog with a config, a session and
/// a create: logs of the dialects whose conversions hold none.
fn logs(root: &Path) -> (PathBuf, PathBuf) {
    use keeperkit_model::keeper::nuraft::ClusterConfig;
    use keeperkit_model::keeper::{CreateRequest, KeeperLogEntry, KeeperRequest};
    use keeperkit_wal::clickhouse::{
        ChangelogRecord, ChangelogWriter, WriterOptions, VALUE_TYPE_APP_LOG, VALUE_TYPE_CONF,
    };
    let wal = root.join("wal");
    let mut o = keeperkit_wal::native::NativeWalOptions::new(&wal);
    o.sync = keeperkit_wal::native::SyncPolicy::Never;
    let w = keeperkit_wal::native::NativeWal::open(Arc::new(keeperkit_vfs::StdFs), o).unwrap();
    for p in [&b""[..], b"opaque"] {
        w.append_next(1, &[p]).unwrap();
    }
    w.sync().unwrap();
    drop(w);
    let coord = root.join("coordination");
    let logs = coord.join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    std::fs::create_dir_all(coord.join("snapshots")).unwrap();
    let fs = keeperkit_vfs::StdFs;
    let mut cw = ChangelogWriter::new(
        &fs,
        &logs,
        WriterOptions { rotate_interval: 10, compress: false, sync: false },
    );
    let config = ClusterConfig {
        log_idx: 1,
        prev_log_idx: 0,
        async_replication: 0,
        user_ctx: vec![],
        servers: vec![],
    };
    cw.append(&ChangelogRecord::new(1, 1, VALUE_TYPE_CONF, config.encode())).unwrap();
    let create = KeeperRequest::Multi(vec![KeeperRequest::Create(CreateRequest {
        path: "/a".into(),
        data: b"v".to_vec(),
        acls: vec![],
        flags: 0,
    })]);
    let e = KeeperLogEntry::new(0x10, 1, create, 1_700_000_000_000);
    cw.append(&ChangelogRecord::new(2, 1, VALUE_TYPE_APP_LOG, e.encode())).unwrap();
    cw.finish().unwrap();
    (wal, coord)
}

#[test]
fn every_json_key_of_every_command_is_documented() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let zk = fixture();
    let mut sources = vec![zk.clone()];
    for to in ["native", "clickhouse"] {
        let dst = root.join(to);
        assert_eq!(run(&["convert", s(&zk), s(&dst), "--to", to, "--lossy"]).0, Some(0));
        sources.push(dst);
    }
    let (wal, coord) = logs(root);
    let mut printed: BTreeSet<(String, String)> = BTreeSet::new();
    let mut note = |cmd: &str, text: &str| {
        assert!(!text.trim().is_empty(), "{cmd} --json printed nothing");
        for k in keys_of(text) {
            printed.insert((k, cmd.to_string()));
        }
    };
    for src in &sources {
        for cmd in ["dump", "sessions", "stats", "inspect", "verify", "repair"] {
            let (code, text) = run(&[cmd, s(src), "--json"]);
            assert!(matches!(code, Some(0 | 1)), "{cmd} {}: {code:?}", src.display());
            note(cmd, &text);
        }
        let back = root.join(format!("back-{}", src.file_name().unwrap().to_str().unwrap()));
        let (code, text) =
            run(&["convert", s(src), s(&back), "--to", "zookeeper", "--json", "--lossy"]);
        assert_eq!(code, Some(0));
        note("convert", &text);
    }
    for log_src in [zk.clone(), wal, coord] {
        let (code, text) = run(&["log", s(&log_src), "--json"]);
        assert!(matches!(code, Some(0 | 1)), "log {}: {code:?}", log_src.display());
        note("log", &text);
    }
    let (code, text) = run(&["diff", s(&zk), s(&zk), "--at-a", "0x300", "--json"]);
    assert_eq!(code, Some(1));
    note("diff", &text);
    let (code, text) = run(&["replicas", s(&sources[1]), s(&sources[2]), "--json"]);
    assert!(matches!(code, Some(0 | 3)), "replicas: {code:?}");
    note("replicas", &text);
    let bench = root.join("bench");
    std::fs::create_dir(&bench).unwrap();
    let (code, text) = run(&["bench", "wal", s(&bench), "--seconds", "0.05", "--json"]);
    assert_eq!(code, Some(0));
    note("bench wal", &text);
    let (code, text) = run(&["bench", "snapshot", s(&bench), "--nodes", "500", "--json"]);
    assert_eq!(code, Some(0));
    note("bench snapshot", &text);
    let doc = documented();
    let missing: Vec<String> = printed
        .iter()
        .filter(|(k, _)| !doc.contains(k))
        .map(|(k, cmd)| format!("{cmd}: {k}"))
        .collect();
    assert!(missing.is_empty(), "keys printed but not in docs/CLI.md: {missing:?}");
    // The checks the contract promises for verify hold in every dialect.
    for src in &sources {
        let v: Value = serde_json::from_str(&run(&["verify", s(src), "--json"]).1).unwrap();
        for k in ["dialect", "files_checked", "findings"] {
            assert!(v.get(k).is_some(), "verify of {} lacks {k}: {v}", src.display());
        }
    }
}
