//! Keeper's tree digest (docs/formats/clickhouse.md, "Digests"): the wrapping sum of every node's SipHash
//! digest ([`keeper::node_digest`]), the data-carrying `/keeper/*` system nodes
//! excluded ([`keeper::counts_in_tree_digest`]).
//!
//! Kept up to date only once enabled ([`DataTree::enable_keeper_digest`]): every
//! change of a node (its fields, data or number of children) takes the node's old term
//! out before the change and puts the new one in after it (`kd_sub` / `kd_add`, called
//! from the node store primitives in `tree.rs`). While disabled those calls are one
//! branch each, so ZooKeeper and native loading and replay pay nothing.
//!
//! How a tree node maps to Keeper's stat (checked against `calculateDigest` in
//! `src/Coordination/KeeperStorage.cpp`, 2024–2025, and `KeeperNodeStats` in
//! `KeeperCommon.cpp`, 2026): the client cversion (Keeper stores what clients see),
//! numChildren = the node's real child count, path `/` for the root, data (null =
//! empty); ephemeralOwner = the session for an ephemeral node, `i64::MIN` for a
//! container, 0 otherwise; a TTL node hashes its TTL (digest V5).

use keeperkit_model::keeper::{self, digest_version, KeeperStat};
use keeperkit_model::EphemeralOwner;

use crate::node::{Node, NodeId};
use crate::tree::{count_i32, keeper_path, DataTree};

/// The running Keeper digest and the digest version it is computed for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct KeeperDigestState {
    /// Digest version (4 or 5; any version ≥ 1 hashes the V4 fields).
    pub(crate) version: u8,
    /// Wrapping sum of the node digests.
    pub(crate) value: u64,
}

/// Keeper's view of a node's stat, and its TTL for digest V5.
pub(crate) fn keeper_stat(node: &Node, num_children: usize) -> (KeeperStat, Option<i64>) {
    let f = &node.f;
    let (ephemeral_owner, ttl) = match EphemeralOwner::decode(f.owner) {
        EphemeralOwner::None => (0, None),
        EphemeralOwner::Session(s) => (s, None),
        EphemeralOwner::Container => (i64::MIN, None),
        EphemeralOwner::Ttl(t) => (0, Some(t)),
    };
    let stat = KeeperStat {
        czxid: f.czxid,
        mzxid: f.mzxid,
        ctime: f.ctime,
        mtime: f.mtime,
        version: f.version,
        cversion: f.cversion,
        aversion: f.aversion,
        ephemeral_owner,
        num_children: count_i32(num_children),
        pzxid: f.pzxid,
    };
    (stat, ttl)
}

/// A node's term in Keeper's tree digest; `kpath` is its Keeper path (`/` for the
/// root). 0 for the paths Keeper leaves out.
pub(crate) fn keeper_term(version: u8, kpath: &[u8], node: &Node, num_children: usize) -> u64 {
    if !keeper::counts_in_tree_digest(kpath) {
        return 0;
    }
    let (stat, ttl) = keeper_stat(node, num_children);
    keeper::node_digest(version, kpath, node.data().unwrap_or(b""), &stat, ttl)
}

impl DataTree {
    /// Takes node `id`'s current term out of the Keeper digest (no-op when disabled).
    #[inline]
    pub(crate) fn kd_sub(&mut self, id: NodeId, kpath: &[u8]) {
        if let Some(kd) = self.kd {
            let t = keeper_term(kd.version, kpath, &self.nodes[id as usize], self.num_children(id));
            self.kd = Some(KeeperDigestState { value: kd.value.wrapping_sub(t), ..kd });
        }
    }

    /// Puts node `id`'s current term into the Keeper digest (no-op when disabled).
    #[inline]
    pub(crate) fn kd_add(&mut self, id: NodeId, kpath: &[u8]) {
        if let Some(kd) = self.kd {
            let t = keeper_term(kd.version, kpath, &self.nodes[id as usize], self.num_children(id));
            self.kd = Some(KeeperDigestState { value: kd.value.wrapping_add(t), ..kd });
        }
    }

    /// Starts maintaining Keeper's tree digest for digest version 4 (the version of
    /// 2022–2025 Keeper): one full scan now, then every change keeps it current.
    /// Calling it again (or after [`DataTree::enable_keeper_digest_version`] with
    /// another version) recomputes it.
    pub fn enable_keeper_digest(&mut self) {
        self.enable_keeper_digest_version(digest_version::V4);
    }

    /// As [`DataTree::enable_keeper_digest`] for a given digest version: 4, or 5 (2026
    /// Keeper, TTL fields hashed). Versions 1–3 hash like 4 (not checked against
    /// Keeper); 0 (`NO_DIGEST`) disables the digest.
    pub fn enable_keeper_digest_version(&mut self, version: u8) {
        if version == digest_version::NO_DIGEST {
            self.kd = None;
            return;
        }
        let value = self.compute_keeper_digest(version);
        self.kd = Some(KeeperDigestState { version, value });
    }

    /// Stops maintaining Keeper's digest.
    pub fn disable_keeper_digest(&mut self) {
        self.kd = None;
    }

    /// The running Keeper tree digest over the nodes in this tree (O(1)), `None`
    /// unless enabled. Keeper's `/keeper` system node is not in a tree loaded from a
    /// Keeper snapshot; [`DataTree::keeper_digest_with_system_node`] adds it.
    pub fn keeper_digest(&self) -> Option<u64> {
        self.kd.map(|kd| kd.value)
    }

    /// The digest version the running Keeper digest is computed for.
    pub fn keeper_digest_version(&self) -> Option<u8> {
        self.kd.map(|kd| kd.version)
    }

    /// Recomputes Keeper's tree digest for `version` from every node (O(n)).
    pub fn compute_keeper_digest(&self, version: u8) -> u64 {
        let mut sum = 0u64;
        self.for_each_preorder(|p, n| {
            let t = keeper_term(version, keeper_path(p), n.node, n.num_children());
            sum = sum.wrapping_add(t);
        });
        sum
    }
}
