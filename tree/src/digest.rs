//! ZooKeeper's tree digest (3.6+, digest version 2; docs/formats/zookeeper.md, "Tree digest").
//!
//! Per node: CRC-32 over the path bytes (the root is `""`), the data bytes (none when
//! null), then 60 bytes big-endian: czxid, mzxid, pzxid, ctime, mtime, version, *stored*
//! cversion (our `seq`), aversion, *stored* ephemeralOwner. The tree digest is the
//! wrapping 64-bit sum of the node CRCs, skipping every path that starts with
//! `/zookeeper/` (`/zookeeper` itself counts).

use crate::node::Node;

/// Paths under this prefix are not part of the digest (quota and config nodes, which
/// ZooKeeper changes without txns).
const SKIPPED_PREFIX: &[u8] = b"/zookeeper/";

/// ZooKeeper's CRC-32 of one node. `path` is the digest path (`""` for the root).
pub(crate) fn node_crc(path: &[u8], node: &Node) -> u32 {
    let f = &node.f;
    let mut tail = [0u8; 60];
    tail[0..8].copy_from_slice(&f.czxid.to_be_bytes());
    tail[8..16].copy_from_slice(&f.mzxid.to_be_bytes());
    tail[16..24].copy_from_slice(&f.pzxid.to_be_bytes());
    tail[24..32].copy_from_slice(&f.ctime.to_be_bytes());
    tail[32..40].copy_from_slice(&f.mtime.to_be_bytes());
    tail[40..44].copy_from_slice(&f.version.to_be_bytes());
    tail[44..48].copy_from_slice(&f.seq.to_be_bytes());
    tail[48..52].copy_from_slice(&f.aversion.to_be_bytes());
    tail[52..60].copy_from_slice(&f.owner.to_be_bytes());
    let mut h = crc32fast::Hasher::new();
    h.update(path);
    if let Some(data) = node.data() {
        h.update(data);
    }
    h.update(&tail);
    h.finalize()
}

/// The node's term in the tree digest: its CRC, or 0 when the digest skips its path.
pub(crate) fn contribution(path: &[u8], node: &Node) -> u32 {
    if path.starts_with(SKIPPED_PREFIX) {
        0
    } else {
        node_crc(path, node)
    }
}

/// The digest path of a node path: the root is `""`, everything else as is.
pub(crate) fn digest_path(path: &str) -> &[u8] {
    if path == "/" {
        b""
    } else {
        path.as_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::{new_blob, Fields};

    #[test]
    fn crc_covers_path_data_and_stored_fields_in_digest_order() {
        let f = Fields {
            czxid: 1,
            mzxid: 2,
            pzxid: 3,
            ctime: 4,
            mtime: 5,
            owner: 9,
            version: 6,
            cversion: 100, // client value: not part of the digest
            aversion: 8,
            seq: 7,
        };
        let node = Node { f, blob: new_blob(0, Some(b"xyz")) };
        let mut want = Vec::new();
        want.extend_from_slice(b"/a");
        want.extend_from_slice(b"xyz");
        for v in [1i64, 2, 3, 4, 5] {
            want.extend_from_slice(&v.to_be_bytes());
        }
        for v in [6i32, 7, 8] {
            want.extend_from_slice(&v.to_be_bytes());
        }
        want.extend_from_slice(&9i64.to_be_bytes());
        assert_eq!(node_crc(b"/a", &node), crc32fast::hash(&want));
        // The client cversion does not matter.
        let other = Node { f: Fields { cversion: -3, ..f }, ..node.clone() };
        assert_eq!(node_crc(b"/a", &other), node_crc(b"/a", &node));
        // Null and empty data hash the same.
        let null = Node { blob: new_blob(0, None), ..node.clone() };
        let empty = Node { blob: new_blob(0, Some(b"")), ..node.clone() };
        assert_eq!(node_crc(b"/a", &null), node_crc(b"/a", &empty));
    }

    #[test]
    fn zookeeper_children_are_skipped_but_not_zookeeper() {
        let node = Node { f: Fields::default(), blob: new_blob(0, Some(b"")) };
        assert_eq!(contribution(b"/zookeeper/quota", &node), 0);
        assert_ne!(contribution(b"/zookeeper", &node), 0);
        assert_ne!(contribution(b"/zookeeperx", &node), 0);
        assert_eq!(digest_path("/"), b"");
        assert_eq!(digest_path("/a"), b"/a");
    }
}
