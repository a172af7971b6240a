//! A ClickHouse Keeper snapshot on arbitrary bytes loaded into a tree, as
//! `keeperkit_storage::clickhouse::snapshot::load_snapshot` does (a `TreeSink` fed by
//! the reader, then `finish`; the body is capped at 64 MiB). Byte 0 as in
//! `ch_snapshot`: odd = the rest is a body, wrapped in one valid NONE block (so the
//! fuzzer gets past the CityHash128 checksum); even = the rest is the file.
//!
//! Checks: no panic or over-allocation; a snapshot that loads gives a tree whose
//! `check_consistency(false)` passes; that tree, written back the way
//! `convert --to clickhouse --lossy` writes it (`check` with `lossy`, then
//! `TreeChSource` + `encode_snapshot`, V6, or V8 when the tree has a TTL node; one
//! NONE block instead of zstd), loads again into the same tree: every node (data,
//! stats, sequence counter, ACL, kind), the sessions and the last zxid, except what
//! the lossy mapping changes (containers and unstorable TTL nodes become persistent;
//! an empty ACL list is Keeper's "no ACL", written as id 0 = `world:anyone` with every
//! permission).
#![no_main]

use std::path::Path;

use keeperkit_model::{Acl, Id, NodeKind, Perms, Stat, StatPersisted};
use keeperkit_snapshot::clickhouse::container::{encode_blocks, METHOD_NONE};
use keeperkit_snapshot::clickhouse::{
    encode_snapshot, read_snapshot_bytes, Container, ReadOptions, WriteOptions,
};
use keeperkit_storage::clickhouse::snapshot::{LoadedChSnapshot, TreeSink};
use keeperkit_storage::convert::clickhouse::{check, ChPosition, TreeChSource};
use keeperkit_storage::convert::ConvertOptions;
use keeperkit_tree::{DataTree, SessionInfo};
use libfuzzer_sys::fuzz_target;

const OPTS: ReadOptions = ReadOptions { body_len_max: 64 << 20, compute_digest: true };

fn load(name: &str, file: &[u8]) -> Option<LoadedChSnapshot> {
    let path = Path::new(name);
    let mut sink = TreeSink::new();
    match read_snapshot_bytes(path, file, &mut sink, OPTS) {
        Ok(info) => {
            let mut loaded = sink.finish(path).ok()?;
            loaded.computed_digest = info.counts.computed_digest;
            Some(loaded)
        }
        Err(e) => {
            assert!(e.corruption().is_some(), "in-memory reads fail only as corruption: {e}");
            None
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
struct Node {
    path: String,
    data: Option<Vec<u8>>,
    stat: Stat,
    stored: StatPersisted,
    seq: i32,
    acl: Vec<Acl>,
    kind: NodeKind,
}

#[derive(Debug, PartialEq, Eq)]
struct Dump {
    nodes: Vec<Node>,
    sessions: Vec<SessionInfo>,
    last_zxid: i64,
}

fn open_acl() -> Vec<Acl> {
    vec![Acl { perms: Perms::ALL, id: Id::anyone() }]
}

/// The tree as loading the written snapshot must give it back; `version` is the one
/// written (the lossy mapping of `keeperkit_storage::convert::clickhouse`).
fn dump(t: &DataTree, version: Option<u8>) -> Dump {
    let mut nodes = Vec::new();
    t.for_each_sorted(|p, n| {
        let mut node = Node {
            path: p.to_owned(),
            data: n.data().map(<[u8]>::to_vec),
            stat: n.stat(),
            stored: n.stored_stat(),
            seq: n.seq(),
            acl: n.acl().clone(),
            kind: n.kind(),
        };
        if node.acl.is_empty() {
            node.acl = open_acl();
        }
        if let Some(v) = version {
            let keep_ttl = v >= 8 && n.num_children() == 0 && n.seq() == 0;
            let persistent = match n.kind() {
                NodeKind::Container => true,
                NodeKind::Ttl => !keep_ttl,
                _ => false,
            };
            if persistent {
                node.kind = NodeKind::Persistent;
                node.stored.ephemeral_owner = 0;
                node.stat.ephemeral_owner = 0;
            }
        }
        nodes.push(node);
    });
    Dump { nodes, sessions: t.sessions(), last_zxid: t.last_processed_zxid().0 }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    let file =
        if mode & 1 == 1 { encode_blocks(rest, METHOD_NONE, 1 << 20) } else { rest.to_vec() };
    let Some(loaded) = load("snapshot_1.bin", &file) else { return };
    let tree = &loaded.tree;
    if let Err(e) = tree.check_consistency(false) {
        panic!("a loaded snapshot gives an inconsistent tree: {e}");
    }
    let _ = loaded.digest_matches();
    let mut has_ttl = false;
    tree.for_each_preorder(|_, n| has_ttl |= n.kind() == NodeKind::Ttl);
    let version = if has_ttl { 8 } else { 6 };
    let opts = ConvertOptions {
        lossy: true,
        clickhouse_version: Some(version),
        ..ConvertOptions::default()
    };
    check(tree, &opts).expect("with --lossy every tree is writable");
    let pos = ChPosition {
        last_log_idx: loaded.header.meta.last_log_idx,
        last_log_term: loaded.header.meta.last_log_term,
        cluster_config: loaded.cluster_config.clone(),
    };
    let source = TreeChSource::new(tree, &pos, version);
    let digest = if version >= 8 { 5 } else { 4 };
    let wopts = WriteOptions {
        version,
        container: Container::Blocks(METHOD_NONE),
        compute_digest: Some(digest),
        sync: false,
    };
    let bytes = match encode_snapshot(&source, wopts) {
        Ok(b) => b,
        Err(e) => panic!("a loaded tree that passes the lossy check cannot be written: {e}"),
    };
    let path = Path::new("snapshot_2.bin");
    let mut sink = TreeSink::new();
    let info = read_snapshot_bytes(path, &bytes, &mut sink, OPTS).expect("the written file reads");
    let mut back = sink.finish(path).expect("the written snapshot loads into a tree");
    back.computed_digest = info.counts.computed_digest;
    assert_eq!(back.digest_matches(), Some(true), "the written digest is the records'");
    assert_eq!(dump(&back.tree, None), dump(tree, Some(version)));
});
