//! Replays the txn logs of real ZooKeeper 3.8.0 data directories (`testdata/`, made by
//! zkgen: every txn type, sessions expiring, containers, TTLs, failing multis, error
//! txns, big values, a quorum with reconfig) into a fresh tree, and checks the running
//! digest against the `TxnDigest` ZooKeeper logged after **every** txn, then the final
//! tree, node by node and field by field, against what ZooKeeper's clients saw
//! (`expected.json`) and what a restarted server served (`recovered.json`). Guards
//! against any divergence from ZooKeeper's real behaviour, including ones the spec text
//! and our own reference model could share.
#![allow(clippy::unwrap_used, clippy::cast_possible_truncation)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use base64::Engine;
use keeperkit_model::{SessionId, Txn, Zxid};
use keeperkit_tree::DataTree;
use serde_json::Value;

fn fixture(set: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/zookeeper-3.8.0").join(set)
}

/// Every txn of every `log.*` file, in zxid order (docs/formats/zookeeper.md, "Transaction log": 16-byte header; records
/// `checksum(8) len(4) payload 0x42`; a zero length, EOF or a bad marker ends a file).
fn read_logs(dir: &Path) -> Vec<Txn> {
    let mut logs: Vec<(i64, PathBuf)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter_map(|p| {
            let name = p.file_name()?.to_str()?.to_owned();
            let zxid = Zxid::parse_hex(name.strip_prefix("log.")?)?;
            Some((zxid.0, p))
        })
        .collect();
    logs.sort();
    let mut txns = Vec::new();
    for (_, path) in logs {
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(&bytes[..4], b"ZKLG");
        let mut pos = 16;
        while pos + 12 <= bytes.len() {
            let len = i32::from_be_bytes(bytes[pos + 8..pos + 12].try_into().unwrap());
            let Ok(len) = usize::try_from(len) else { break };
            let end = pos + 12 + len;
            if len == 0 || end >= bytes.len() || bytes[end] != 0x42 {
                break;
            }
            txns.push(Txn::decode_from(&bytes[pos + 12..end]).unwrap());
            pos = end + 1;
        }
    }
    txns
}

/// Replays `txns` (skipping zxids already applied) into a fresh tree, checking every
/// logged digest; stops after `until` when given.
fn replay(txns: &[Txn], until: Option<i64>) -> (DataTree, usize) {
    let mut tree = DataTree::new();
    let mut checked = 0;
    for t in txns {
        if t.header.zxid <= tree.last_processed_zxid() {
            continue;
        }
        if until.is_some_and(|u| t.header.zxid.0 > u) {
            break;
        }
        tree.apply(t);
        if let Some(d) = t.digest {
            assert_eq!(d.version, 2);
            assert_eq!(
                tree.digest() as i64,
                d.tree_digest,
                "digest after zxid {:#x} ({:?})",
                t.header.zxid.0,
                t.header.op
            );
            checked += 1;
        }
    }
    tree.check_consistency(true).unwrap();
    (tree, checked)
}

/// The tree as JSON values shaped like zkgen's `nodes` entries, keyed by path.
fn tree_json(tree: &DataTree) -> BTreeMap<String, Value> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut out = BTreeMap::new();
    let mut order = Vec::new();
    tree.for_each_sorted(|p, n| {
        let s = n.stat();
        let acl: Vec<Value> = n
            .acl()
            .iter()
            .map(|a| serde_json::json!({"id": a.id.id, "perms": a.perms.0, "scheme": a.id.scheme}))
            .collect();
        let v = serde_json::json!({
            "acl": acl,
            "data": n.data().map(|d| b64.encode(d)),
            "path": p,
            "stat": {
                "aversion": s.aversion, "ctime": s.ctime, "cversion": s.cversion,
                "czxid": s.czxid, "dataLength": s.data_length,
                "ephemeralOwner": s.ephemeral_owner, "mtime": s.mtime, "mzxid": s.mzxid,
                "numChildren": s.num_children, "pzxid": s.pzxid, "version": s.version,
            },
        });
        order.push(p.to_owned());
        out.insert(p.to_owned(), v);
    });
    let mut sorted = order.clone();
    sorted.sort();
    assert_eq!(order, sorted, "for_each_sorted order");
    out
}

fn load_json(set: &str, file: &str) -> Value {
    serde_json::from_slice(&std::fs::read(fixture(set).join(file)).unwrap()).unwrap()
}

fn assert_same_tree(tree: &DataTree, want: &Value, skip: &[&str], what: &str) {
    let got = tree_json(tree);
    let mut want_nodes = BTreeMap::new();
    for n in want["nodes"].as_array().unwrap() {
        want_nodes.insert(n["path"].as_str().unwrap().to_owned(), n.clone());
    }
    let got_paths: Vec<&String> = got.keys().filter(|p| !skip.contains(&p.as_str())).collect();
    let want_paths: Vec<&String> =
        want_nodes.keys().filter(|p| !skip.contains(&p.as_str())).collect();
    assert_eq!(got_paths, want_paths, "{what}: node paths");
    for p in got_paths {
        assert_eq!(got[p], want_nodes[p], "{what}: node {p}");
    }
}

fn check_set(set: &str) {
    let dir = fixture(set).join("data/version-2");
    let txns = read_logs(&dir);
    let expected = load_json(set, "expected.json");
    let recovered = load_json(set, "recovered.json");
    let last = expected["last_zxid"].as_i64().unwrap();
    // In quorum mode the server rewrites /zookeeper/config without txns.
    let skip: &[&str] = if set == "quorum" { &["/zookeeper/config"] } else { &[] };

    // Everything in the files.
    let (mut full, checked) = replay(&txns, None);
    assert!(checked > 200, "{set}: only {checked} digests checked");
    if expected["crash"].as_bool() != Some(true) {
        assert_eq!(full.last_processed_zxid(), Zxid(last), "{set}");
        assert_same_tree(&full, &expected, skip, &format!("{set} expected"));
        // The sessions still open at the end are in the session map.
        for s in expected["sessions_left_open"].as_array().unwrap() {
            let id = SessionId(s["session_id"].as_i64().unwrap());
            assert!(full.session_timeout(id).is_some(), "{set}: session {id} missing");
        }
        let expired = Zxid::parse_hex(expected["expired_session"].as_str().unwrap()).unwrap();
        assert_eq!(full.session_timeout(SessionId(expired.0)), None, "{set}: expired session");
    } else {
        // A crash: replaying up to the last acknowledged zxid gives what clients saw.
        let (acked, _) = replay(&txns, Some(last));
        assert_same_tree(&acked, &expected, skip, &format!("{set} acknowledged"));
    }
    // What a restarted server serves: everything in the files, minus orphan ephemerals.
    let removed = full.remove_orphan_ephemerals();
    assert_same_tree(&full, &recovered, skip, &format!("{set} recovered (removed {removed:?})"));
    full.check_consistency(true).unwrap();
}

#[test]
fn basic() {
    check_set("basic");
}

#[test]
fn crash() {
    check_set("crash");
}

#[test]
fn big_values() {
    check_set("big-values");
}

#[test]
fn gz() {
    check_set("gz");
}

#[test]
fn snappy() {
    check_set("snappy");
}

#[test]
fn quorum() {
    check_set("quorum");
}
