//! A tree written as a ClickHouse Keeper snapshot and loaded back is the same tree as
//! Keeper clients see it: every node's client stat, sequence counter, raw owner, data
//! (null becomes empty: the documented lossy case), ACL; sessions with timeouts; the
//! zxid. Writing the loaded tree again gives the same bytes. The digest in the header
//! equals Keeper's digest recomputed from the records.
//!
//! Checked on the state recovered from every real ZooKeeper 3.8.0 fixture set, in V6,
//! V7 and V8.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::cast_possible_truncation)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use keeperkit_model::{AclList, NodeKind, Stat};
use keeperkit_snapshot::clickhouse::{self as ch, Container};
use keeperkit_storage::clickhouse::snapshot::load_snapshot;
use keeperkit_storage::convert::clickhouse::{check, write, ChPosition, TreeChSource};
use keeperkit_storage::convert::{convert_atomically, ConvertOptions};
use keeperkit_storage::zookeeper::{recover, NoProgress, RecoverOptions, ZkLayout};
use keeperkit_tree::DataTree;
use keeperkit_vfs::{FileSystem, StdFs};

#[derive(Debug, PartialEq, Eq)]
struct NodeView {
    path: String,
    data: Vec<u8>,
    stat: Stat,
    seq: i32,
    kind: NodeKind,
    acl: AclList,
}

fn nodes(tree: &DataTree) -> Vec<NodeView> {
    let mut out = Vec::with_capacity(tree.node_count());
    tree.for_each_preorder(|path, n| {
        out.push(NodeView {
            path: path.to_owned(),
            data: n.data().unwrap_or(b"").to_vec(),
            stat: n.stat(),
            seq: n.seq(),
            kind: n.kind(),
            acl: n.acl().clone(),
        })
    });
    out
}

fn fixture_sets() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/zookeeper-3.8.0");
    let mut sets: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("data/version-2").is_dir())
        .collect();
    sets.sort();
    assert!(sets.len() >= 6, "fixture sets: {sets:?}");
    sets
}

fn recovered(set: &Path) -> DataTree {
    let fs = StdFs;
    let layout = ZkLayout::locate(&fs, &set.join("data"), None).unwrap();
    recover(&fs, &layout, &RecoverOptions::default(), &mut NoProgress).unwrap().tree
}

#[test]
fn every_zookeeper_fixture_survives_a_clickhouse_snapshot() {
    let tmp = tempfile::tempdir().unwrap();
    let fs: Arc<dyn FileSystem> = Arc::new(StdFs);
    for set in fixture_sets() {
        let name = set.file_name().unwrap().to_string_lossy().into_owned();
        let tree = recovered(&set);
        let (mut nulls, mut containers, mut ttls, mut ttl_parents) = (0, 0, 0, 0);
        tree.for_each_preorder(|_, node| {
            nulls += usize::from(node.data().is_none());
            containers += usize::from(node.kind() == NodeKind::Container);
            ttls += usize::from(node.kind() == NodeKind::Ttl);
            ttl_parents += usize::from(
                node.kind() == NodeKind::Ttl && (node.num_children() > 0 || node.seq() != 0),
            );
        });
        for version in [6u8, 7, 8] {
            let what = format!("{name} V{version}");
            let strict = ConvertOptions { clickhouse_version: Some(version), ..Default::default() };
            let opts = ConvertOptions { lossy: true, ..strict.clone() };
            // Null values, containers and (before V8) TTL nodes are what a ZooKeeper
            // fixture has that Keeper lacks.
            let lost = nulls + containers + if version < 8 { ttls } else { ttl_parents };
            match check(&tree, &strict) {
                Ok(m) => assert!(m.is_empty() && lost == 0, "{what}"),
                Err(e) => {
                    assert!(lost > 0, "{what}: {e}");
                    assert!(e.to_string().contains("--lossy"), "{what}: {e}");
                }
            }
            let dst = tmp.path().join(format!("{name}-v{version}"));
            let pos = ChPosition::from_zookeeper(&tree);
            let report = convert_atomically(&*fs, &dst, |d| {
                write(&fs, &tree, &pos, d, &opts, &mut keeperkit_storage::NoProgress)
            })
            .unwrap();
            assert_eq!(report.nodes, tree.node_count() as u64, "{what}");
            assert_eq!(report.mappings.len(), lost, "{what}: one mapping per node");
            let snap = dst.join(&report.files[0]);
            assert_eq!(
                snap.file_name().unwrap().to_string_lossy(),
                format!("snapshot_{}.bin.zstd", tree.last_processed_zxid().0),
                "{what}: keeper-converter's naming (index = last zxid)"
            );
            let loaded = load_snapshot(&*fs, &snap).unwrap_or_else(|e| panic!("{what}: {e}"));
            assert_eq!(loaded.header.version, version, "{what}");
            assert_eq!(loaded.digest_matches(), Some(true), "{what}: header digest");
            assert!(loaded.notes.is_empty(), "{what}: {:?}", loaded.notes);
            let (mut a, b) = (nodes(&tree), nodes(&loaded.tree));
            for n in &mut a {
                let ttl_lost = n.kind == NodeKind::Ttl
                    && (version < 8 || n.stat.num_children > 0 || n.seq != 0);
                if n.kind == NodeKind::Container || ttl_lost {
                    n.kind = NodeKind::Persistent;
                }
            }
            for (x, y) in a.iter().zip(&b) {
                assert_eq!(x, y, "{what}: first differing node");
            }
            assert_eq!(a.len(), b.len(), "{what}: node count");
            assert_eq!(tree.sessions(), loaded.tree.sessions(), "{what}: sessions");
            assert_eq!(tree.last_processed_zxid(), loaded.tree.last_processed_zxid(), "{what}");
            loaded.tree.check_consistency(false).unwrap();
            // Contents are what Keeper's loader accepts.
            let (contents, _) = ch::SnapshotContents::read(&*fs, &snap).unwrap();
            let problems = ch::check_contents(&contents);
            assert!(problems.is_empty(), "{what}: {problems:?}");
            assert_eq!(contents.nodes[1].path, "/keeper", "{what}: /keeper after the root");
            assert!(
                contents.header.session_id_counter
                    > contents.sessions.iter().map(|s| s.id).max().unwrap_or(0),
                "{what}: session counter"
            );
            // Rewriting the loaded tree gives the same bytes.
            let mut pos2 = ChPosition {
                last_log_idx: loaded.header.meta.last_log_idx,
                last_log_term: loaded.header.meta.last_log_term,
                ..ChPosition::default()
            };
            pos2.cluster_config = loaded.cluster_config.clone();
            let source = TreeChSource::new(&loaded.tree, &pos2, version);
            let digest = if version >= 8 { 5 } else { 4 };
            let again = ch::encode_snapshot(
                &source,
                ch::WriteOptions {
                    version,
                    container: Container::Zstd,
                    compute_digest: Some(digest),
                    sync: false,
                },
            )
            .unwrap();
            assert!(again == std::fs::read(&snap).unwrap(), "{what}: rewrite changed the bytes");
        }
    }
}

fn txn(zxid: i64, body: keeperkit_model::TxnBody) -> keeperkit_model::Txn {
    use keeperkit_model::{SessionId, TxnHeader, Zxid};
    let header =
        TxnHeader { client_id: SessionId(1), cxid: 0, zxid: Zxid(zxid), time: zxid, op: body.op() };
    keeperkit_model::Txn { header, body, digest: None }
}

fn create(
    path: &str,
    data: Option<&[u8]>,
    parent_cversion: i32,
    ttl: Option<i64>,
) -> keeperkit_model::CreateTxn {
    keeperkit_model::CreateTxn {
        path: path.into(),
        data: data.map(<[u8]>::to_vec),
        acl: keeperkit_model::Acl::open_unsafe(),
        ephemeral: false,
        parent_cversion,
        ttl,
        v0: false,
    }
}

#[test]
fn what_keeper_cannot_hold_is_refused_with_the_list_or_mapped_with_lossy() {
    use keeperkit_model::TxnBody;
    let mut tree = DataTree::new();
    for (z, body) in [
        TxnBody::CreateContainer(create("/c", Some(b""), 1, None)),
        TxnBody::CreateTtl(create("/t", Some(b"x"), 2, Some(60_000))),
        TxnBody::Create(create("/n", None, 3, None)),
        TxnBody::Create(create("/ok", Some(b"x"), 4, None)),
    ]
    .into_iter()
    .enumerate()
    {
        let r = tree.apply(&txn(z as i64 + 1, body));
        assert!(r.is_ok(), "{r:?}");
    }
    let fs: Arc<dyn FileSystem> = Arc::new(StdFs);
    let tmp = tempfile::tempdir().unwrap();
    for version in [6u8, 7, 8] {
        let strict = ConvertOptions { clickhouse_version: Some(version), ..Default::default() };
        let err = check(&tree, &strict).unwrap_err().to_string();
        assert!(err.contains("/c (container stored as a persistent node"), "{err}");
        assert!(err.contains("/n (null value stored as an empty value"), "{err}");
        assert_eq!(err.contains("/t (TTL node stored"), version < 8, "{err}");
        assert!(!err.contains("/ok"), "{err}");
        // Refused before anything is written.
        let dst = tmp.path().join(format!("strict-{version}"));
        let pos = ChPosition::from_zookeeper(&tree);
        assert!(convert_atomically(&*fs, &dst, |d| write(
            &fs,
            &tree,
            &pos,
            d,
            &strict,
            &mut keeperkit_storage::NoProgress
        ))
        .is_err());
        assert!(!dst.exists());
        let lossy = ConvertOptions { lossy: true, ..strict };
        let m = check(&tree, &lossy).unwrap();
        assert_eq!(m.len(), if version < 8 { 3 } else { 2 }, "{m:?}");
        let dst = tmp.path().join(format!("lossy-{version}"));
        let report = convert_atomically(&*fs, &dst, |d| {
            write(&fs, &tree, &pos, d, &lossy, &mut keeperkit_storage::NoProgress)
        })
        .unwrap();
        let loaded = load_snapshot(&*fs, &dst.join(&report.files[0])).unwrap();
        let t = &loaded.tree;
        assert_eq!(t.get("/c").unwrap().kind(), NodeKind::Persistent);
        assert_eq!(t.get("/n").unwrap().data(), Some(&b""[..]));
        let ttl = t.get("/t").unwrap();
        if version >= 8 {
            assert_eq!(ttl.kind(), NodeKind::Ttl);
            assert_eq!(ttl.owner(), keeperkit_model::EphemeralOwner::Ttl(60_000));
        } else {
            assert_eq!(ttl.kind(), NodeKind::Persistent);
        }
        assert_eq!(t.get("/ok").unwrap().stat(), tree.get("/ok").unwrap().stat());
    }
    // Versions keeperkit does not write are refused by name.
    let v5 = ConvertOptions { clickhouse_version: Some(5), ..Default::default() };
    assert!(check(&tree, &v5).unwrap_err().to_string().contains("V5"));
}
