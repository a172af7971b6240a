//! Shared by the engine tests: a deterministic workload of ZooKeeper txns and the
//! model (path → data, version) it must produce.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::cast_possible_truncation)]

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use keeperkit_model::txn::{CreateTxn, SetDataTxn};
use keeperkit_model::{Acl, OpCode, SessionId, Txn, TxnBody, TxnHeader, Zxid};
use keeperkit_snapshot::native::WriteOptions;
use keeperkit_storage::engine::{NativeEngine, NativeEngineOptions};
use keeperkit_tree::DataTree;
use keeperkit_vfs::FileSystem;

/// The parent of every workload node.
pub const PARENT: &str = "/w";

/// Jute bytes of a txn with zxid `zxid`.
pub fn txn_bytes(zxid: i64, op: OpCode, body: TxnBody) -> Vec<u8> {
    Txn {
        header: TxnHeader { client_id: SessionId(0), cxid: 0, zxid: Zxid(zxid), time: zxid, op },
        body,
        digest: None,
    }
    .to_bytes()
}

fn create(path: String, data: Vec<u8>) -> TxnBody {
    TxnBody::Create(CreateTxn {
        path,
        data: Some(data),
        acl: Acl::open_unsafe(),
        ephemeral: false,
        parent_cversion: -1,
        ttl: None,
        v0: false,
    })
}

/// A deterministic workload: txn number `i` (1-based; i = its zxid) and the model
/// after it.
#[derive(Debug, Clone, Default)]
pub struct Workload {
    /// path → (data, version).
    pub model: BTreeMap<String, (Vec<u8>, i32)>,
    /// Txns generated so far.
    pub count: i64,
    keys: u64,
}

impl Workload {
    /// A workload touching `keys` distinct nodes under [`PARENT`].
    pub fn new(keys: u64) -> Workload {
        Workload { model: BTreeMap::new(), count: 0, keys }
    }

    /// The next txn, applied to the model.
    pub fn next_txn(&mut self) -> Vec<u8> {
        self.count += 1;
        let i = self.count;
        if i == 1 {
            return txn_bytes(i, OpCode::CREATE, create(PARENT.into(), Vec::new()));
        }
        let r = (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 11;
        let key = r % self.keys;
        let path = format!("{PARENT}/k{key:06}");
        let data = format!("v{i}").into_bytes();
        match self.model.get(&path).cloned() {
            None => {
                self.model.insert(path.clone(), (data.clone(), 0));
                txn_bytes(i, OpCode::CREATE, create(path, data))
            }
            Some(_) if r.is_multiple_of(5) => {
                self.model.remove(&path);
                txn_bytes(i, OpCode::DELETE, TxnBody::Delete { path })
            }
            Some((_, v)) => {
                self.model.insert(path.clone(), (data.clone(), v + 1));
                txn_bytes(
                    i,
                    OpCode::SET_DATA,
                    TxnBody::SetData(SetDataTxn { path, data: Some(data), version: v + 1 }),
                )
            }
        }
    }
}

/// Asserts `tree` holds exactly the model under [`PARENT`].
pub fn assert_matches(tree: &DataTree, model: &BTreeMap<String, (Vec<u8>, i32)>, what: &str) {
    let mut found = BTreeMap::new();
    tree.for_each_preorder(|path, n| {
        if path.starts_with("/w/") {
            found
                .insert(path.to_owned(), (n.data().unwrap_or_default().to_vec(), n.stat().version));
        }
    });
    assert_eq!(found.len(), model.len(), "{what}: node count under {PARENT}");
    assert!(found == *model, "{what}: the tree differs from the model");
    assert_eq!(tree.digest(), tree.compute_digest(), "{what}: running digest");
}

/// Engine options for tests: small segments, one snapshot thread, small chunks.
pub fn options(dir: &Path) -> NativeEngineOptions {
    let mut o = NativeEngineOptions::new(dir);
    o.segment_len = 16 << 10;
    o.preallocate = false;
    o.keep_snapshots = 2;
    o.snapshot_write = WriteOptions {
        level: Some(1),
        chunk_len_target: 4 << 10,
        threads: 1,
        ..WriteOptions::default()
    };
    o
}

/// Opens the engine at `dir`.
pub fn open(fs: &Arc<dyn FileSystem>, dir: &Path) -> NativeEngine {
    NativeEngine::open(fs.clone(), options(dir)).expect("the engine opens")
}

/// Writes `n` txns of the workload, one entry per call, term 1.
pub fn write_n(e: &NativeEngine, w: &mut Workload, n: usize) {
    for _ in 0..n {
        let t = w.next_txn();
        e.write(1, &[&t]).expect("write");
    }
}
