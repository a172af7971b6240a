//! Quota stats as ZooKeeper 3.8's `DataTree` keeps them (`updateQuotaForPath` when a
//! `zookeeper_stats` node is created, `updateQuotaStat` on every create, delete and
//! setData under a quota, `setupQuota` after a snapshot is loaded). The expected
//! texts are what ZooKeeper 3.8 shows for the same zkCli steps (`setquota -n 10 /zc/p`
//! over /zc/p with data "x" and two children "a", "b": `count=3,bytes=3`).
#![allow(clippy::unwrap_used, clippy::cast_possible_truncation)]

mod common;

use common::{create, txn};
use keeperkit_model::txn::SetDataTxn;
use keeperkit_model::TxnBody;
use keeperkit_tree::{DataTree, TxnResult};

struct T {
    tree: DataTree,
    zxid: i64,
}

impl T {
    fn apply(&mut self, body: TxnBody) -> TxnResult {
        self.zxid += 1;
        self.tree.apply(&txn(self.zxid, 1, body))
    }

    fn create(&mut self, path: &str, data: &[u8]) {
        let r = self.apply(TxnBody::Create2(create(path, Some(data), false, -1)));
        assert_eq!(r, TxnResult::Ok, "create {path}");
    }

    fn set(&mut self, path: &str, data: &[u8]) {
        let body = TxnBody::SetData(SetDataTxn {
            path: path.into(),
            data: Some(data.to_vec()),
            version: 1,
        });
        assert_eq!(self.apply(body), TxnResult::Ok, "setData {path}");
    }

    fn delete(&mut self, path: &str) {
        assert_eq!(
            self.apply(TxnBody::Delete { path: path.into() }),
            TxnResult::Ok,
            "delete {path}"
        );
    }

    fn data(&self, path: &str) -> String {
        String::from_utf8(self.tree.get(path).unwrap().data().unwrap().to_vec()).unwrap()
    }

    /// What zkCli's `setquota -n 10 P` sends: the quota directories, the limits node,
    /// the stats node with `count=0,bytes=0`.
    fn setquota(&mut self, p: &str) {
        let mut dir = "/zookeeper/quota".to_owned();
        for c in p.split('/').filter(|c| !c.is_empty()) {
            dir = format!("{dir}/{c}");
            if self.tree.get(&dir).is_none() {
                self.create(&dir, b"");
            }
        }
        self.create(&format!("{dir}/zookeeper_limits"), b"count=10,bytes=-1");
        self.create(&format!("{dir}/zookeeper_stats"), b"count=0,bytes=0");
    }
}

const STATS: &str = "/zookeeper/quota/zc/p/zookeeper_stats";

fn quota_tree() -> T {
    let mut t = T { tree: DataTree::new(), zxid: 0 };
    t.create("/zc", b"");
    t.create("/zc/p", b"x");
    t.create("/zc/p/a", b"ab");
    t.create("/zc/p/b", b"");
    t.setquota("/zc/p");
    t
}

#[test]
fn stats_node_counts_the_subtree_when_created() {
    let t = quota_tree();
    assert_eq!(t.data(STATS), "count=3,bytes=3");
    assert_eq!(t.tree.digest(), t.tree.compute_digest());
}

#[test]
fn writes_under_the_quota_update_its_stats_without_a_new_version() {
    let mut t = quota_tree();
    let before = t.tree.get(STATS).unwrap().stat();
    t.create("/zc/p/a/deep", b"12345");
    assert_eq!(t.data(STATS), "count=4,bytes=8");
    t.set("/zc/p/a", b"");
    assert_eq!(t.data(STATS), "count=4,bytes=6");
    t.delete("/zc/p/a/deep");
    assert_eq!(t.data(STATS), "count=3,bytes=1");
    // Outside the quota: nothing.
    t.create("/zc/q", b"zzz");
    t.create("/zc/pp", b"zzz");
    assert_eq!(t.data(STATS), "count=3,bytes=1");
    let after = t.tree.get(STATS).unwrap().stat();
    assert_eq!(
        (after.version, after.mzxid, after.mtime),
        (before.version, before.mzxid, before.mtime)
    );
    assert_eq!(after.data_length, 15);
    assert_eq!(t.tree.digest(), t.tree.compute_digest());
}

#[test]
fn the_deepest_quota_counts_and_a_deleted_limit_stops_counting() {
    let mut t = quota_tree();
    t.create("/zc/p/a/x", b"");
    t.setquota("/zc/p/a");
    assert_eq!(t.data("/zookeeper/quota/zc/p/a/zookeeper_stats"), "count=2,bytes=2");
    assert_eq!(t.data(STATS), "count=4,bytes=3");
    t.create("/zc/p/a/y", b"yy");
    assert_eq!(t.data("/zookeeper/quota/zc/p/a/zookeeper_stats"), "count=3,bytes=4");
    assert_eq!(t.data(STATS), "count=4,bytes=3");
    t.delete("/zookeeper/quota/zc/p/a/zookeeper_limits");
    t.create("/zc/p/a/z", b"z");
    assert_eq!(t.data(STATS), "count=5,bytes=4");
    assert_eq!(t.data("/zookeeper/quota/zc/p/a/zookeeper_stats"), "count=3,bytes=4");
}

#[test]
fn stats_text_is_parsed_and_written_as_zookeeper_does() {
    let mut t = quota_tree();
    // Extra pairs survive (3.8.0's odd `=` before them), an empty text counts from -1.
    t.set(STATS, b"bytes=1;count=2,zeta=7,alpha=1");
    t.create("/zc/p/n", b"");
    assert_eq!(t.data(STATS), "count=3,bytes=1=;alpha=1;zeta=7");
    t.set(STATS, b"");
    t.create("/zc/p/m", b"m");
    assert_eq!(t.data(STATS), "count=0,bytes=0");
    // What Java cannot parse stays as it is.
    t.set(STATS, b"garbage");
    t.create("/zc/p/o", b"");
    assert_eq!(t.data(STATS), "garbage");
}

#[test]
fn setup_quota_recounts_after_a_load() {
    let mut t = quota_tree();
    t.set(STATS, b"count=99,bytes=99,extra=1");
    t.tree.setup_quota();
    assert_eq!(t.data(STATS), "count=3,bytes=3");
    // A tree without quotas is left alone.
    let mut plain = DataTree::new();
    plain.setup_quota();
    assert_eq!(plain.digest(), DataTree::new().digest());
}
