//! Real ZooKeeper 3.8.0 data directories reproduce exactly what ZooKeeper's clients saw.
//!
//! Guards against any drift in the exact semantics: a stat field, an ACL, a null value,
//! the stored-vs-client cversion, ephemerals of open sessions, fuzzy snapshot replay.
//! Each fixture is recovered from every snapshot in its directory and must equal
//! `expected.json` node for node and field for field (crash sets: the full state equals
//! `recovered.json`, and the state at the last acknowledged zxid equals `expected.json`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use keeperkit_model::Zxid;
use keeperkit_storage::{open, OpenOptions, Point};
use keeperkit_tools::json::JsonNode;
use serde_json::Value;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/zookeeper-3.8.0")
}

fn expected(set: &str, file: &str) -> (Value, Vec<Value>) {
    let text = std::fs::read_to_string(fixtures().join(set).join(file)).unwrap();
    let v: Value = serde_json::from_str(&text).unwrap();
    let nodes = v["nodes"].as_array().unwrap().clone();
    (v, nodes)
}

fn dump(set: &str, at: Option<Zxid>, snapshot: Option<PathBuf>) -> Vec<Value> {
    let fs = keeperkit_vfs::std_fs();
    let opts = OpenOptions { snapshot, ..OpenOptions::default() };
    let point = at.map_or(Point::Latest, Point::Zxid);
    let state = open(&*fs, &fixtures().join(set).join("data"), &opts)
        .and_then(|d| d.recover(point))
        .unwrap_or_else(|e| panic!("{set}: {e}"));
    assert!(
        !state.report.has_errors(),
        "{set}: recovery reported errors: {:?}",
        state.report.findings
    );
    let mut out = Vec::new();
    state.tree.for_each_sorted(|p, n| {
        out.push(serde_json::to_value(JsonNode::from_node(p, &n)).unwrap())
    });
    out
}

/// Compares two node lists and panics with the first difference.
fn assert_same(what: &str, got: &[Value], want: &[Value], skip: &[&str]) {
    let keep = |v: &&Value| !skip.contains(&v["path"].as_str().unwrap_or(""));
    let got: Vec<&Value> = got.iter().filter(keep).collect();
    let want: Vec<&Value> = want.iter().filter(keep).collect();
    for (g, w) in got.iter().zip(want.iter()) {
        assert_eq!(g, w, "{what}: first differing node (got vs expected)");
    }
    assert_eq!(got.len(), want.len(), "{what}: node count differs");
}

fn snapshots(set: &str) -> Vec<PathBuf> {
    let dir = fixtures().join(set).join("data/version-2");
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_str().unwrap().starts_with("snapshot."))
        .collect();
    v.sort();
    v
}

fn check_set(set: &str, skip: &[&str]) {
    let (_, want) = expected(set, "expected.json");
    assert!(want.len() > 100, "{set}: expected.json too small to mean anything");
    let got = dump(set, None, None);
    assert_same(set, &got, &want, skip);
    // The result is the same whichever snapshot recovery starts from.
    for snap in snapshots(set) {
        let got = dump(set, None, Some(snap.clone()));
        assert_same(&format!("{set} from {}", snap.display()), &got, &want, skip);
    }
}

#[test]
fn basic_equals_expected_from_every_snapshot() {
    check_set("basic", &[]);
}

#[test]
fn big_values_equal_expected_from_every_snapshot() {
    check_set("big-values", &[]);
}

#[test]
fn gz_equals_expected_from_every_snapshot() {
    check_set("gz", &[]);
}

#[test]
fn snappy_equals_expected_from_every_snapshot() {
    check_set("snappy", &[]);
}

/// In quorum mode ZooKeeper writes `/zookeeper/config` without a txn when the server
/// starts, so the files cannot determine what clients saw there (testdata/README.md).
#[test]
fn quorum_equals_expected_except_config_node() {
    check_set("quorum", &["/zookeeper/config"]);
}

#[test]
fn crash_full_state_equals_what_restarted_zookeeper_served() {
    let (_, recovered) = expected("crash", "recovered.json");
    let got = dump("crash", None, None);
    assert_same("crash full", &got, &recovered, &[]);
    for snap in snapshots("crash") {
        let got = dump("crash", None, Some(snap.clone()));
        assert_same(&format!("crash full from {}", snap.display()), &got, &recovered, &[]);
    }
}

#[test]
fn crash_at_last_acknowledged_zxid_equals_expected() {
    let (head, want) = expected("crash", "expected.json");
    let last = Zxid(head["last_zxid"].as_i64().unwrap());
    let got = dump("crash", Some(last), None);
    assert_same("crash --at last acknowledged", &got, &want, &[]);
}

/// Made for this project: `zkgen --nodes 3000 --seed 7 --snap-count 400` (many rolls).
#[test]
fn seed7_small_snapcount_equals_expected_from_every_snapshot() {
    check_set("seed7-small-snapcount", &[]);
}

/// Made for this project: a second crash set (`--crash`, seed 8).
#[test]
fn crash_seed8_full_state_and_acknowledged_state() {
    let (_, recovered) = expected("crash-seed8", "recovered.json");
    let got = dump("crash-seed8", None, None);
    assert_same("crash-seed8 full", &got, &recovered, &[]);
    let (head, want) = expected("crash-seed8", "expected.json");
    let last = Zxid(head["last_zxid"].as_i64().unwrap());
    let got = dump("crash-seed8", Some(last), None);
    assert_same("crash-seed8 --at last acknowledged", &got, &want, &[]);
}
