//! Keeper's digests: of one node, of the tree, and the SipHash they are built on.

/// Digest versions Keeper writes (`KeeperStorage::DigestVersion` / `KeeperCommon.h`).
pub mod digest_version {
    /// No digest: checks are skipped.
    pub const NO_DIGEST: u8 = 0;
    /// V4: the current version in 2024–2025 Keeper.
    pub const V4: u8 = 4;
    /// V5: TTL fields hashed (2026, PR #100397).
    pub const V5: u8 = 5;
}

/// The stat fields Keeper keeps per node, as stored in its snapshots (stats as clients
/// see them: Keeper stores cversion as served, unlike ZooKeeper).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct KeeperStat {
    /// Zxid of the create.
    pub czxid: i64,
    /// Zxid of the last data change.
    pub mzxid: i64,
    /// Create time, ms since the epoch.
    pub ctime: i64,
    /// Last data change time, ms since the epoch.
    pub mtime: i64,
    /// Data version.
    pub version: i32,
    /// Children version.
    pub cversion: i32,
    /// ACL version.
    pub aversion: i32,
    /// Owning session of an ephemeral node, 0 for a persistent one.
    pub ephemeral_owner: i64,
    /// Number of direct children.
    pub num_children: i32,
    /// Zxid of the last change of the children.
    pub pzxid: i64,
}

/// Computes Keeper's digest of one node (docs/formats/clickhouse.md, "Digests"; `calculateDigest` in
/// `KeeperStorage.cpp` for V1–V4, `KeeperNodeStats::calculateDigest` in
/// `KeeperCommon.cpp` for V5): SipHash-2-4 with key (0, 0) over the plain
/// concatenation of path, data, czxid, mzxid, ctime, mtime (i64 LE), version, cversion,
/// aversion (i32 LE), ephemeralOwner (i64 LE), numChildren (i32 LE), pzxid (i64 LE),
/// and for V5 `u8 is_ttl` then `i64 ttl` when it is a TTL node. No length prefixes.
/// A result of 0 becomes 1 (0 means "not computed" in Keeper).
///
/// numChildren is hashed as 0 for an ephemeral node (`ephemeral_owner != 0`) and, in
/// V5, for a TTL node: Keeper's stat keeps those in a union with the owner/ttl, and
/// its `numChildren()` accessor returns 0 for them.
///
/// `digest_version` is one of [`digest_version`]'s values; older versions (1–3) hashed
/// the same fields (V3 fixed a cast and a duplicated czxid: UNSURE, only V4 and V5 are
/// checked against vectors). The function is only meaningful for versions ≥ 1.
pub fn node_digest(
    digest_version: u8,
    path: &[u8],
    data: &[u8],
    stat: &KeeperStat,
    ttl_ms: Option<i64>,
) -> u64 {
    use std::hash::Hasher;
    let mut h = siphasher::sip::SipHasher24::new_with_keys(0, 0);
    h.write(path);
    h.write(data);
    h.write(&stat.czxid.to_le_bytes());
    h.write(&stat.mzxid.to_le_bytes());
    h.write(&stat.ctime.to_le_bytes());
    h.write(&stat.mtime.to_le_bytes());
    h.write(&stat.version.to_le_bytes());
    h.write(&stat.cversion.to_le_bytes());
    h.write(&stat.aversion.to_le_bytes());
    h.write(&stat.ephemeral_owner.to_le_bytes());
    let ttl = if digest_version >= digest_version::V5 { ttl_ms } else { None };
    let no_children = stat.ephemeral_owner != 0 || ttl.is_some();
    let num_children = if no_children { 0 } else { stat.num_children };
    h.write(&num_children.to_le_bytes());
    h.write(&stat.pzxid.to_le_bytes());
    if digest_version >= digest_version::V5 {
        h.write(&[u8::from(ttl.is_some())]);
        if let Some(t) = ttl {
            h.write(&t.to_le_bytes());
        }
    }
    match h.finish() {
        0 => 1,
        d => d,
    }
}

/// Whether a node counts in Keeper's tree digest: every node except the data-carrying
/// children of `/keeper` (`/keeper/api_version`, `/keeper/feature_flags`, ...), which
/// Keeper inserts without updating the digest. `/` and `/keeper` count.
pub fn counts_in_tree_digest(path: &[u8]) -> bool {
    !path.starts_with(b"/keeper/")
}

/// A running tree digest: the wrapping sum of node digests (docs/formats/clickhouse.md, "Digests").
/// Keeper updates it by subtracting a node's old digest and adding the new one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TreeDigest(pub u64);

impl TreeDigest {
    /// Adds a node digest.
    pub fn add(&mut self, node_digest: u64) {
        self.0 = self.0.wrapping_add(node_digest);
    }

    /// Removes a node digest.
    pub fn remove(&mut self, node_digest: u64) {
        self.0 = self.0.wrapping_sub(node_digest);
    }
}

/// The SipHash-2-4 (key 0, 0) of a byte string: what ClickHouse's `sipHash64` returns
/// and what Keeper's changelog checksum and digests are built on.
pub fn sip_hash64(bytes: &[u8]) -> u64 {
    use std::hash::Hasher;
    let mut h = siphasher::sip::SipHasher24::new_with_keys(0, 0);
    h.write(bytes);
    h.finish()
}
