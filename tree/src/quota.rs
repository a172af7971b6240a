//! ZooKeeper's quota accounting: the `zookeeper_stats` node of every quota, which
//! ZooKeeper's `DataTree` keeps current as part of applying txns (so it is in its
//! snapshots, and every replica and every replay computes the same bytes).
//!
//! A quota on `P` is the node `/zookeeper/quota` + `P` + `/zookeeper_limits` (zkCli's
//! `setquota` creates it, then `zookeeper_stats` beside it). ZooKeeper 3.8 then:
//!
//! - when a `zookeeper_stats` node is created under `/zookeeper/quota`, recounts `P`
//!   (`updateQuotaForPath`): the node `P` and everything below it, and the sum of
//!   their data lengths, written as `count=N,bytes=B` into the new node;
//! - after each create, delete and setData of a node, finds the deepest quota whose
//!   `P` is a path prefix of the node (`getMaxPrefixWithQuota`; a quota on `/` never
//!   counts) and adds the change (+1 / −1 node, the data length difference) to that
//!   quota's stats node (`updateQuotaStat`): its data is parsed as `StatsTrack` text
//!   and written back, without a new version, mzxid or watch event;
//! - after loading a snapshot, recounts every quota again (`setupQuota`:
//!   [`DataTree::setup_quota`]).
//!
//! ZooKeeper keeps the set of quota paths in a `PathTrie` filled by those creates and
//! by `setupQuota`; here a quota is found by the existence of its `zookeeper_limits`
//! node, which is the same set except in cases ZooKeeper itself cannot handle (a
//! limits node with children, a `zookeeper_limits` directly under
//! `/zookeeper/quota`). Stats data that `StatsTrack` cannot parse (ZooKeeper's apply
//! thread dies on it) is left as it is. Quota limits are never enforced (ZooKeeper
//! only enforces them with `zookeeper.enforceQuota`, off by default); the quota
//! nodes are under `/zookeeper/`, outside ZooKeeper's tree digest.

use crate::node::{new_blob, NodeId};
use crate::tree::{name_str, DataTree};

/// `Quotas.quotaZookeeper`.
pub(crate) const QUOTA_ROOT: &str = "/zookeeper/quota";
/// `Quotas.limitNode`.
const LIMIT_NODE: &str = "zookeeper_limits";
/// `Quotas.statNode`.
const STAT_NODE: &str = "zookeeper_stats";

/// Whether Java's `String.trim().isEmpty()` holds (every char at most U+0020).
fn blank(s: &str) -> bool {
    s.chars().all(|c| c <= ' ')
}

/// The `count` and `bytes` of a `StatsTrack` text, with its other pairs, as Java's
/// `new StatsTrack(String)` parses it (pairs split on runs of `,` or `;`, each pair on
/// `=`). `None` where Java throws.
fn parse_stats(text: &str) -> Option<Vec<(String, i64)>> {
    let mut pairs: Vec<(String, i64)> = Vec::new();
    if text.is_empty() {
        return Some(pairs);
    }
    // Pattern.split("[,;]+"): the pieces between runs of separators, an empty first
    // piece when the text starts with one, trailing empty pieces dropped.
    let mut merged: Vec<&str> = Vec::new();
    for (i, p) in text.split([',', ';']).enumerate() {
        if i == 0 || !p.is_empty() {
            merged.push(p);
        }
    }
    while merged.last() == Some(&"") {
        merged.pop();
    }
    for piece in merged {
        let mut kv: Vec<&str> = piece.split('=').collect();
        while kv.last() == Some(&"") {
            kv.pop();
        }
        let (key, value) = match kv.as_slice() {
            [key, value, ..] => (*key, *value),
            _ => return None,
        };
        let value: i64 = if value.is_empty() { -1 } else { value.parse().ok()? };
        match pairs.iter_mut().find(|(k, _)| k == key) {
            Some(slot) => slot.1 = value,
            None => pairs.push((key.to_owned(), value)),
        }
    }
    Some(pairs)
}

fn get(pairs: &[(String, i64)], key: &str) -> i64 {
    pairs.iter().find(|(k, _)| k == key).map_or(-1, |(_, v)| *v)
}

/// `StatsTrack.toString`: `count=…,bytes=…`, then (as ZooKeeper 3.8.0 writes it) `=`
/// and `;key=value` for every other key in Java string order.
fn format_stats(pairs: &[(String, i64)]) -> String {
    let mut out = format!("count={},bytes={}", get(pairs, "count"), get(pairs, "bytes"));
    let mut rest: Vec<&(String, i64)> =
        pairs.iter().filter(|(k, _)| k != "count" && k != "bytes").collect();
    if !rest.is_empty() {
        rest.sort_by(|a, b| a.0.encode_utf16().cmp(b.0.encode_utf16()));
        out.push('=');
        for (k, v) in rest {
            out.push_str(&format!(";{k}={v}"));
        }
    }
    out
}

impl DataTree {
    /// `getMaxPrefixWithQuota`: the deepest quota covering `path`, as its `P` and the
    /// id of its stats node directory (`/zookeeper/quota` + `P`). `None` when no quota
    /// covers it (the common case costs one lookup).
    fn quota_prefix(&self, path: &str) -> Option<(String, NodeId)> {
        let mut dir = self.lookup(QUOTA_ROOT)?;
        if self.num_children(dir) == 0 {
            return None;
        }
        let mut prefix = String::new();
        let mut best = None;
        // PathTrie splits on `/` and drops blank components.
        for name in path.split('/').filter(|c| !blank(c)) {
            let Some(next) = self.child(dir, name.as_bytes()) else { break };
            dir = next;
            prefix.push('/');
            prefix.push_str(name);
            if self.child(dir, LIMIT_NODE.as_bytes()).is_some() {
                best = Some((prefix.clone(), dir));
            }
        }
        best
    }

    /// `updateQuotaStat`: adds to the stats node in `dir` (of quota `prefix`).
    fn update_quota_stat(&mut self, prefix: &str, dir: NodeId, bytes: i64, count: i64) {
        let Some(stat) = self.child(dir, STAT_NODE.as_bytes()) else { return };
        let node = &self.nodes[stat as usize];
        // `new String(null)` throws: nothing to update.
        let Some(data) = node.data() else { return };
        let Some(mut pairs) = parse_stats(&String::from_utf8_lossy(data)) else { return };
        for (key, diff) in [("count", count), ("bytes", bytes)] {
            let v = get(&pairs, key).wrapping_add(diff);
            match pairs.iter_mut().find(|(k, _)| k == key) {
                Some(slot) => slot.1 = v,
                None => pairs.push((key.to_owned(), v)),
            }
        }
        let text = format_stats(&pairs);
        let stat_path = format!("{QUOTA_ROOT}{prefix}/{STAT_NODE}");
        self.modify(stat, stat_path.as_bytes(), |n| {
            n.blob = new_blob(n.acl(), Some(text.as_bytes()));
        });
    }

    /// `updateQuotaForPath`: recounts the subtree at `prefix` (`""` is the root) into
    /// `/zookeeper/quota` + `prefix` + `/zookeeper_stats`, if that node exists.
    fn update_quota_for_path(&mut self, prefix: &str) {
        let stat_path = format!("{QUOTA_ROOT}{prefix}/{STAT_NODE}");
        let Some(stat) = self.lookup(&stat_path) else { return };
        let (mut count, mut bytes) = (0i32, 0i64);
        if let Some(top) = self.lookup(prefix) {
            let mut stack = vec![top];
            while let Some(id) = stack.pop() {
                count = count.wrapping_add(1);
                let len = self.nodes[id as usize].data().map_or(0, <[u8]>::len);
                bytes = bytes.wrapping_add(i64::try_from(len).unwrap_or(i64::MAX));
                if let Some(set) = self.children.get(&id) {
                    stack.extend(set.iter());
                }
            }
        }
        let text = format!("count={count},bytes={bytes}");
        self.modify(stat, stat_path.as_bytes(), |n| {
            n.blob = new_blob(n.acl(), Some(text.as_bytes()));
        });
    }

    /// The quota part of `createNode`, after the node at `path` (`data_len` bytes of
    /// data) was added.
    pub(crate) fn quota_created(&mut self, path: &str, data_len: usize) {
        if let Some((parent, name)) = crate::tree::split(path) {
            if name == STAT_NODE && parent.starts_with(QUOTA_ROOT) {
                self.update_quota_for_path(&parent[QUOTA_ROOT.len()..]);
            }
        }
        if let Some((prefix, dir)) = self.quota_prefix(path) {
            self.update_quota_stat(&prefix, dir, len_i64(data_len), 1);
        }
    }

    /// The quota part of `deleteNode`, after the node at `path` (`data_len` bytes of
    /// data) was removed.
    pub(crate) fn quota_deleted(&mut self, path: &str, data_len: usize) {
        if let Some((prefix, dir)) = self.quota_prefix(path) {
            self.update_quota_stat(&prefix, dir, -len_i64(data_len), -1);
        }
    }

    /// The quota part of `setData`: the data of the node at `path` went from `old`
    /// to `new` bytes.
    pub(crate) fn quota_data_changed(&mut self, path: &str, old: usize, new: usize) {
        if let Some((prefix, dir)) = self.quota_prefix(path) {
            self.update_quota_stat(&prefix, dir, len_i64(new) - len_i64(old), 0);
        }
    }

    /// What ZooKeeper does after deserializing a snapshot (`setupQuota`): every
    /// quota's stats node is recounted from the tree, for each `zookeeper_limits` leaf
    /// under `/zookeeper/quota`. Loaders of ZooKeeper snapshots call it before
    /// replaying the log, so that a fuzzy snapshot's stats come out as ZooKeeper's.
    pub fn setup_quota(&mut self) {
        let Some(root) = self.lookup(QUOTA_ROOT) else { return };
        let mut prefixes = Vec::new();
        let mut stack = vec![(root, QUOTA_ROOT.to_owned())];
        while let Some((id, path)) = stack.pop() {
            match self.children.get(&id) {
                Some(set) => {
                    for (c, name) in set.entries() {
                        let name = name_str(name);
                        stack.push((c, format!("{path}/{name}")));
                    }
                }
                None => {
                    let marker = format!("/{LIMIT_NODE}");
                    if path.ends_with(&marker) {
                        // path.substring(quotaZookeeper.length(), path.indexOf(marker))
                        let end = path.find(&marker).unwrap_or(path.len());
                        if end >= QUOTA_ROOT.len() {
                            prefixes.push(path[QUOTA_ROOT.len()..end].to_owned());
                        }
                    }
                }
            }
        }
        for p in prefixes {
            self.update_quota_for_path(&p);
        }
    }
}

fn len_i64(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(v: &[(&str, i64)]) -> Vec<(String, i64)> {
        v.iter().map(|(k, v)| (k.to_string(), *v)).collect()
    }

    #[test]
    fn stats_text_as_java_parses_and_writes_it() {
        assert_eq!(parse_stats("count=3,bytes=5"), Some(pairs(&[("count", 3), ("bytes", 5)])));
        assert_eq!(parse_stats(""), Some(vec![]));
        assert_eq!(parse_stats("count=1;;,bytes=2,"), Some(pairs(&[("count", 1), ("bytes", 2)])));
        assert_eq!(parse_stats("count=1,count=4"), Some(pairs(&[("count", 4)])));
        assert_eq!(parse_stats("a=b=c"), None);
        assert_eq!(parse_stats("a=7=x"), Some(pairs(&[("a", 7)])));
        assert_eq!(parse_stats("count="), None);
        assert_eq!(parse_stats(",count=1"), None);
        assert_eq!(parse_stats("count"), None);
        assert_eq!(parse_stats("count=x"), None);
        assert_eq!(parse_stats("=5"), Some(pairs(&[("", 5)])));
        assert_eq!(parse_stats(","), Some(vec![]));
        assert_eq!(parse_stats("a==5"), Some(pairs(&[("a", -1)])));
        assert_eq!(parse_stats("=="), None);
        assert_eq!(format_stats(&[]), "count=-1,bytes=-1");
        assert_eq!(format_stats(&pairs(&[("bytes", 2), ("count", 1)])), "count=1,bytes=2");
        assert_eq!(
            format_stats(&pairs(&[("count", 1), ("zz", 3), ("bytes", 2), ("countHardLimit", 9)])),
            "count=1,bytes=2=;countHardLimit=9;zz=3"
        );
    }
}
