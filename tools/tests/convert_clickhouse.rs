//! `keeperkit convert --to clickhouse`: every real ZooKeeper fixture converted to a
//! ClickHouse Keeper coordination directory and dumped with keeperkit equals what
//! ZooKeeper's clients saw (`expected.json`, crash sets: `recovered.json`), node for
//! node and field for field; the one documented lossy case a client can see is a null
//! value, which Keeper stores as empty (each such node is named in the report, and is
//! the only difference allowed). Converting the result on to native keeps it equal, and
//! back to ClickHouse gives the same snapshot bytes.
//!
//! Guards against: a stat, ACL, session or sequence counter lost on the way to Keeper;
//! a refusal that writes something; a lossy mapping that is not reported.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/zookeeper-3.8.0")
}

fn keeperkit(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_keeperkit")).args(args).output().unwrap()
}

fn ok(out: &Output, what: &str) -> String {
    assert_eq!(out.status.code(), Some(0), "{what}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn expected(set: &str, file: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(fixtures().join(set).join(file)).unwrap();
    let v: Value = serde_json::from_str(&text).unwrap();
    v["nodes"].as_array().unwrap().clone()
}

fn dump(dir: &Path, extra: &[&str]) -> Vec<Value> {
    let mut args = vec!["dump", dir.to_str().unwrap(), "--json"];
    args.extend_from_slice(extra);
    let out = ok(&keeperkit(&args), &format!("dump {}", dir.display()));
    out.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// Compares node lists, with `null_to_empty` nodes' data expected as `""`.
fn assert_same(what: &str, got: &[Value], want: &[Value], null_to_empty: &BTreeSet<String>) {
    let skip = ["/zookeeper/config"];
    let keep =
        |v: &&Value| !(what.contains("quorum") && skip.contains(&v["path"].as_str().unwrap()));
    let want: Vec<Value> = want
        .iter()
        .filter(keep)
        .map(|w| {
            let mut w = w.clone();
            if null_to_empty.contains(w["path"].as_str().unwrap()) {
                assert!(
                    w["data"].is_null(),
                    "{what}: {} is reported as null but is not",
                    w["path"]
                );
                w["data"] = Value::from("");
            }
            w
        })
        .collect();
    let got: Vec<&Value> = got.iter().filter(keep).collect();
    for (g, w) in got.iter().zip(&want) {
        assert_eq!(*g, w, "{what}: first differing node (got vs expected)");
    }
    assert_eq!(got.len(), want.len(), "{what}: node count");
}

#[test]
fn every_fixture_converted_to_clickhouse_dumps_as_zookeeper_served_it() {
    let sets = [
        ("basic", "expected.json"),
        ("big-values", "expected.json"),
        ("gz", "expected.json"),
        ("snappy", "expected.json"),
        ("quorum", "expected.json"),
        ("seed7-small-snapcount", "expected.json"),
        ("crash", "recovered.json"),
        ("crash-seed8", "recovered.json"),
    ];
    let tmp = tempfile::tempdir().unwrap();
    for (set, file) in sets {
        let src = fixtures().join(set).join("data");
        for version in ["6", "8"] {
            let what = format!("{set} V{version}");
            let ch = tmp.path().join(format!("{set}-ch{version}"));
            // Without --lossy: refused (every fixture has null values), nothing written.
            let refused = keeperkit(&[
                "convert",
                src.to_str().unwrap(),
                ch.to_str().unwrap(),
                "--to",
                "clickhouse",
                "--clickhouse-version",
                version,
            ]);
            assert_eq!(refused.status.code(), Some(2), "{what}");
            let err = String::from_utf8_lossy(&refused.stderr);
            assert!(err.contains("null value stored as an empty value"), "{what}: {err}");
            assert!(err.contains("--lossy"), "{what}: {err}");
            assert!(!ch.exists(), "{what}: a refusal wrote {}", ch.display());
            let out = ok(
                &keeperkit(&[
                    "convert",
                    src.to_str().unwrap(),
                    ch.to_str().unwrap(),
                    "--to",
                    "clickhouse",
                    "--clickhouse-version",
                    version,
                    "--lossy",
                    "--json",
                ]),
                &what,
            );
            let report: Value = serde_json::from_str(&out).unwrap();
            assert_eq!(report["to"], "clickhouse");
            let nulls: BTreeSet<String> = report["mappings"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|m| m[1].as_str().unwrap().starts_with("null value"))
                .map(|m| m[0].as_str().unwrap().to_owned())
                .collect();
            assert!(!nulls.is_empty(), "{what}: the fixtures have null values");
            let want = expected(set, file);
            let got = dump(&ch, &[]);
            assert_same(&what, &got, &want, &nulls);
            // On to native: still equal.
            let native = tmp.path().join(format!("{set}-native{version}"));
            ok(
                &keeperkit(&[
                    "convert",
                    ch.to_str().unwrap(),
                    native.to_str().unwrap(),
                    "--to",
                    "native",
                ]),
                &what,
            );
            assert_same(&format!("{what} -> native"), &dump(&native, &[]), &want, &nulls);
            // And back to ClickHouse: the same snapshot, byte for byte.
            let back = tmp.path().join(format!("{set}-back{version}"));
            ok(
                &keeperkit(&[
                    "convert",
                    native.to_str().unwrap(),
                    back.to_str().unwrap(),
                    "--to",
                    "clickhouse",
                    "--clickhouse-version",
                    version,
                ]),
                &format!("{what} native -> clickhouse"),
            );
            let name = report["files"][0].as_str().unwrap();
            let a = std::fs::read(ch.join(name)).unwrap();
            let b = std::fs::read(back.join(name)).unwrap_or_else(|e| {
                panic!("{what}: {name} in the native -> clickhouse result: {e}")
            });
            assert!(a == b, "{what}: ZooKeeper -> CH and CH -> native -> CH differ");
        }
    }
}

#[test]
fn sessions_and_their_ephemerals_survive_with_timeouts() {
    let tmp = tempfile::tempdir().unwrap();
    let src = fixtures().join("basic").join("data");
    let ch = tmp.path().join("ch");
    ok(
        &keeperkit(&[
            "convert",
            src.to_str().unwrap(),
            ch.to_str().unwrap(),
            "--to",
            "clickhouse",
            "--lossy",
        ]),
        "convert",
    );
    let a = ok(&keeperkit(&["sessions", src.to_str().unwrap(), "--json"]), "zk sessions");
    let b = ok(&keeperkit(&["sessions", ch.to_str().unwrap(), "--json"]), "ch sessions");
    assert_eq!(a, b, "sessions, timeouts and ephemeral counts");
    assert_eq!(a.lines().count(), 3, "{a}");
    assert!(a.contains("\"ephemerals\":3"), "{a}");
}
