//! The CLI contract: JSON shapes, exit codes, and what each command reports, checked
//! against ground truth computed independently from the fixtures' `expected.json`.
//!
//! Guards against: a `diff` that misses or invents differences, `stats` figures that do
//! not add up, `sessions` losing an open session, `log` skipping records, wrong exit
//! codes for scripts, and a separate dataLogDir not being honoured.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn fixture(set: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/zookeeper-3.8.0").join(set)
}

fn run(args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_keeperkit")).args(args).output().unwrap();
    assert_ne!(out.status.code(), Some(101), "panic: {}", String::from_utf8_lossy(&out.stderr));
    out
}

fn data(set: &str) -> String {
    fixture(set).join("data").to_str().unwrap().to_string()
}

fn expected_nodes(set: &str) -> Vec<Value> {
    let v: Value =
        serde_json::from_str(&std::fs::read_to_string(fixture(set).join("expected.json")).unwrap())
            .unwrap();
    v["nodes"].as_array().unwrap().clone()
}

fn lines(out: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// The differences between two node lists, computed the obvious way.
fn reference_diff(a: &[Value], b: &[Value]) -> BTreeMap<String, (String, BTreeSet<String>)> {
    let ma: BTreeMap<String, &Value> =
        a.iter().map(|n| (n["path"].as_str().unwrap().to_string(), n)).collect();
    let mb: BTreeMap<String, &Value> =
        b.iter().map(|n| (n["path"].as_str().unwrap().to_string(), n)).collect();
    let mut out = BTreeMap::new();
    for (p, na) in &ma {
        match mb.get(p) {
            None => {
                out.insert(p.clone(), ("removed".to_string(), BTreeSet::new()));
            }
            Some(nb) => {
                let mut f = BTreeSet::new();
                if na["data"] != nb["data"] {
                    f.insert("data".to_string());
                }
                if na["acl"] != nb["acl"] {
                    f.insert("acl".to_string());
                }
                for (k, v) in na["stat"].as_object().unwrap() {
                    if nb["stat"][k] != *v {
                        f.insert(k.clone());
                    }
                }
                if !f.is_empty() {
                    out.insert(p.clone(), ("changed".to_string(), f));
                }
            }
        }
    }
    for p in mb.keys() {
        if !ma.contains_key(p) {
            out.insert(p.clone(), ("added".to_string(), BTreeSet::new()));
        }
    }
    out
}

#[test]
fn diff_lists_exactly_the_differing_nodes_and_fields() {
    let out = run(&["diff", &data("basic"), &data("gz"), "--json"]);
    assert_eq!(out.status.code(), Some(1), "different states must exit 1");
    let got: BTreeMap<String, (String, BTreeSet<String>)> = lines(&out)
        .into_iter()
        .map(|d| {
            let fields = d["fields"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| f["field"].as_str().unwrap().to_string())
                .collect();
            (
                d["path"].as_str().unwrap().to_string(),
                (d["change"].as_str().unwrap().to_string(), fields),
            )
        })
        .collect();
    let want = reference_diff(&expected_nodes("basic"), &expected_nodes("gz"));
    assert!(!want.is_empty());
    assert_eq!(got, want);
}

#[test]
fn diff_of_a_state_with_itself_is_empty_and_exits_0() {
    let out = run(&["diff", &data("basic"), &data("basic")]);
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("0 differences"));
}

#[test]
fn diff_between_two_points_in_time_of_the_crash_set() {
    let head: Value = serde_json::from_str(
        &std::fs::read_to_string(fixture("crash").join("expected.json")).unwrap(),
    )
    .unwrap();
    let last = head["last_zxid"].as_i64().unwrap().to_string();
    let out = run(&["diff", &data("crash"), &data("crash"), "--at-a", &last, "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let recovered: Value = serde_json::from_str(
        &std::fs::read_to_string(fixture("crash").join("recovered.json")).unwrap(),
    )
    .unwrap();
    let want = reference_diff(&expected_nodes("crash"), recovered["nodes"].as_array().unwrap());
    assert_eq!(lines(&out).len(), want.len());
}

#[test]
fn stats_add_up_and_match_expected() {
    let out = run(&["stats", &data("basic"), "--json"]);
    assert_eq!(out.status.code(), Some(0));
    let s: Value = serde_json::from_slice(&out.stdout).unwrap();
    let nodes = expected_nodes("basic");
    assert_eq!(s["nodes"].as_u64().unwrap(), nodes.len() as u64);
    let data_bytes: u64 = nodes.iter().map(|n| n["stat"]["dataLength"].as_u64().unwrap()).sum();
    assert_eq!(s["data_bytes"].as_u64().unwrap(), data_bytes);
    let hist: u64 =
        s["depth_histogram"].as_object().unwrap().values().map(|v| v.as_u64().unwrap()).sum();
    assert_eq!(hist, nodes.len() as u64);
    // The biggest subtree by nodes is the one with the most descendants in expected.json.
    let top = &s["biggest_subtrees_by_nodes"][0];
    let p = top["path"].as_str().unwrap();
    let count = nodes
        .iter()
        .filter(|n| {
            let q = n["path"].as_str().unwrap();
            q == p || q.starts_with(&format!("{p}/"))
        })
        .count();
    assert_eq!(top["nodes"].as_u64().unwrap(), count as u64);
    // Ephemerals per session equal the ephemeral owners in expected.json.
    let mut owners: BTreeMap<String, u64> = BTreeMap::new();
    for n in &nodes {
        let o = n["stat"]["ephemeralOwner"].as_i64().unwrap();
        if o != 0 {
            *owners.entry(format!("{o:#x}")).or_default() += 1;
        }
    }
    let got: BTreeMap<String, u64> = s["ephemerals_per_session"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["session"].as_str().unwrap().to_string(), e["ephemerals"].as_u64().unwrap()))
        .collect();
    assert!(!owners.is_empty());
    assert_eq!(got, owners);
    let largest = s["largest_values"][0]["bytes"].as_u64().unwrap();
    let max = nodes.iter().map(|n| n["stat"]["dataLength"].as_u64().unwrap()).max().unwrap();
    assert_eq!(largest, max);
}

#[test]
fn sessions_lists_every_session_left_open() {
    let out = run(&["sessions", &data("basic"), "--json"]);
    assert_eq!(out.status.code(), Some(0));
    let got: BTreeSet<i64> = lines(&out).iter().map(|s| s["id"].as_i64().unwrap()).collect();
    let head: Value = serde_json::from_str(
        &std::fs::read_to_string(fixture("basic").join("expected.json")).unwrap(),
    )
    .unwrap();
    for s in head["sessions_left_open"].as_array().unwrap() {
        assert!(got.contains(&s["session_id"].as_i64().unwrap()), "missing session {s}");
    }
    let expired =
        i64::from_str_radix(head["expired_session"].as_str().unwrap().trim_start_matches("0x"), 16)
            .unwrap();
    assert!(!got.contains(&expired), "the expired session must not be live");
}

#[test]
fn log_prints_every_record_in_order() {
    let out = run(&["log", &data("basic"), "--json"]);
    assert_eq!(out.status.code(), Some(0));
    let entries = lines(&out);
    let zxids: Vec<i64> = entries.iter().map(|e| e["zxid"].as_i64().unwrap()).collect();
    assert_eq!(zxids.first(), Some(&1));
    for w in zxids.windows(2) {
        assert_eq!(w[1], w[0] + 1, "log entries must be contiguous");
    }
    let head: Value = serde_json::from_str(
        &std::fs::read_to_string(fixture("basic").join("expected.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(*zxids.last().unwrap(), head["last_zxid"].as_i64().unwrap());
    let errors = entries.iter().filter(|e| e["op"] == "error").count();
    assert!(errors >= 10, "the workload logs error txns");
    assert!(entries.iter().any(|e| e["op"] == "multi" && e["result"] != "ok"));
    // A range.
    let out = run(&["log", &data("basic"), "--from", "0x10", "--to", "0x20", "--json"]);
    let z: Vec<i64> = lines(&out).iter().map(|e| e["zxid"].as_i64().unwrap()).collect();
    assert_eq!(z, (0x10..=0x20).collect::<Vec<_>>());
}

#[test]
fn inspect_reports_files_and_ranges() {
    let out = run(&["inspect", &data("gz"), "--json"]);
    assert_eq!(out.status.code(), Some(0));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["dialect"], "zookeeper");
    assert_eq!(v["checksums_ok"], true);
    let snaps = v["snapshots"].as_array().unwrap();
    assert!(snaps.iter().all(|s| s["compression"] == "gzip"));
    assert!(snaps.iter().all(|s| s["checksums_ok"] == true));
    assert!(v["gaps"].as_array().unwrap().is_empty());
    let quorum = run(&["inspect", &data("quorum"), "--json"]);
    let q: Value = serde_json::from_slice(&quorum.stdout).unwrap();
    assert_eq!(q["accepted_epoch"], "1");
    assert!(q["zxid_range_hex"][0].as_str().unwrap().starts_with("0x1000000"));
}

#[test]
fn verify_is_clean_on_every_fixture() {
    for set in [
        "basic",
        "crash",
        "big-values",
        "gz",
        "snappy",
        "quorum",
        "seed7-small-snapcount",
        "crash-seed8",
    ] {
        let out = run(&["verify", &data(set), "--json"]);
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(out.status.code(), Some(0), "{set}: {v}");
        assert!(v["digests_checked"].as_u64().unwrap() > 0, "{set}: digests must be checked");
    }
}

#[test]
fn separate_data_log_dir_is_honoured() {
    let tmp = tempfile::tempdir().unwrap();
    let snaps = tmp.path().join("data/version-2");
    let logs = tmp.path().join("datalog/version-2");
    std::fs::create_dir_all(&snaps).unwrap();
    std::fs::create_dir_all(&logs).unwrap();
    for e in std::fs::read_dir(fixture("basic").join("data/version-2")).unwrap() {
        let e = e.unwrap();
        let name = e.file_name().to_str().unwrap().to_string();
        let dst = if name.starts_with("log.") { &logs } else { &snaps };
        std::fs::copy(e.path(), dst.join(&name)).unwrap();
    }
    let d = tmp.path().join("data");
    let l = tmp.path().join("datalog");
    let out = run(&["dump", d.to_str().unwrap(), "--log-dir", l.to_str().unwrap(), "--json"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(lines(&out), expected_nodes("basic"));
}

#[test]
fn a_single_snapshot_file_dumps_without_replay() {
    let snap = fixture("basic").join("data/version-2/snapshot.0");
    let out = run(&["dump", snap.to_str().unwrap(), "--json"]);
    assert_eq!(out.status.code(), Some(0));
    let paths: Vec<String> =
        lines(&out).iter().map(|n| n["path"].as_str().unwrap().to_string()).collect();
    assert_eq!(paths, ["/", "/zookeeper", "/zookeeper/config", "/zookeeper/quota"]);
}

#[test]
fn exit_code_2_for_usage_and_io_errors() {
    let out = run(&["dump", "/nonexistent/keeperkit/path"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not exist"));
    let out = run(&["dump", &data("basic"), "--at", "zz"]);
    assert_eq!(out.status.code(), Some(2));
    let out = run(&["frobnicate"]);
    assert_eq!(out.status.code(), Some(2));
    let tmp = tempfile::tempdir().unwrap();
    let out = run(&["dump", tmp.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("hint:"));
}

#[test]
fn help_has_examples() {
    for cmd in ["dump", "log", "diff", "verify"] {
        let out = run(&[cmd, "--help"]);
        assert_eq!(out.status.code(), Some(0));
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("keeperkit "), "{cmd} --help lacks examples");
    }
}
