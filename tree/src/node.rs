//! The compact in-memory znode: 64 bytes of stat and one thin pointer, 72 bytes.

use triomphe::ThinArc;

/// Index of a node slot in the node store. Slots of deleted nodes are reused.
pub(crate) type NodeId = u32;

/// "No node": the end of the free list.
pub(crate) const NO_NODE: NodeId = u32::MAX;

/// Interned ACL list id (see [`crate::acl`]).
pub(crate) type AclId = u32;

/// Marks a free slot's blob; never a real ACL id.
pub(crate) const ACL_FREE: AclId = u32::MAX;

/// The fixed part of a node's blob.
#[derive(Clone, Copy, Debug)]
pub(crate) struct BlobHeader {
    /// The node's interned ACL list ([`ACL_FREE`] in free slots).
    acl: AclId,
    /// Whether the data is null (as opposed to empty).
    null_data: bool,
}

/// One refcounted allocation holding a node's ACL id and data bytes.
///
/// Thin (8 bytes in the node); its header is 24 bytes (count, ACL id and null flag,
/// slice length). Cloning a node (copy-on-write of a chunk of the node store) only
/// bumps the count, it never copies data. Changing the data or the ACL makes a new
/// blob. The node's name is not here: its parent's child set holds it.
pub(crate) type Blob = ThinArc<BlobHeader, u8>;

/// Builds a blob.
pub(crate) fn new_blob(acl: AclId, data: Option<&[u8]>) -> Blob {
    let header = BlobHeader { acl, null_data: data.is_none() };
    ThinArc::from_header_and_slice(header, data.unwrap_or(&[]))
}

/// The stat fields of a node, in the internal representation.
///
/// `cversion` is what clients see; `seq` is ZooKeeper's stored cversion (the number of
/// child creations, the next sequential suffix). `owner` is the stored
/// `ephemeralOwner` (container and TTL encodings included).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Fields {
    pub(crate) czxid: i64,
    pub(crate) mzxid: i64,
    pub(crate) pzxid: i64,
    pub(crate) ctime: i64,
    pub(crate) mtime: i64,
    pub(crate) owner: i64,
    pub(crate) version: i32,
    pub(crate) cversion: i32,
    pub(crate) aversion: i32,
    pub(crate) seq: i32,
}

/// A znode as stored in the node store.
///
/// Layout: the ten stat fields (64 bytes) and the blob pointer: 72 bytes. The children
/// set is not here but in a side table keyed by node id, so that leaves (most nodes)
/// pay nothing for it; the parent is not recorded at all (every operation reaches a
/// node from the root, by path).
#[derive(Clone)]
pub(crate) struct Node {
    pub(crate) f: Fields,
    /// ACL id and data.
    pub(crate) blob: Blob,
}

/// Pins the node size: the memory target (≤ 128 bytes per znode beyond name and data)
/// is designed around it.
pub(crate) const NODE_SIZE: usize = std::mem::size_of::<Node>();
const _: () = assert!(NODE_SIZE <= 72, "Node grew beyond 72 bytes");

impl Node {
    /// The node's data; `None` when null.
    #[inline]
    pub(crate) fn data(&self) -> Option<&[u8]> {
        if self.blob.header.header.null_data {
            None
        } else {
            Some(&self.blob.slice)
        }
    }

    /// Length of the data (0 when null).
    #[inline]
    pub(crate) fn data_len(&self) -> usize {
        self.blob.slice.len()
    }

    /// The interned ACL id.
    #[inline]
    pub(crate) fn acl(&self) -> AclId {
        self.blob.header.header.acl
    }

    /// Whether this slot is on the free list.
    #[inline]
    pub(crate) fn is_free(&self) -> bool {
        self.acl() == ACL_FREE
    }

    /// A free slot whose next free slot is `next`; `free_blob` is the tree's shared
    /// blob made with [`ACL_FREE`].
    pub(crate) fn free(next: NodeId, free_blob: Blob) -> Node {
        debug_assert_eq!(free_blob.header.header.acl, ACL_FREE);
        Node { f: Fields { czxid: i64::from(next), ..Fields::default() }, blob: free_blob }
    }

    /// For a free slot: the next free slot.
    pub(crate) fn next_free(&self) -> NodeId {
        debug_assert!(self.is_free());
        NodeId::try_from(self.f.czxid).unwrap_or(NO_NODE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_is_72_bytes() {
        println!("size_of::<Node>() = {NODE_SIZE}");
        println!("size_of::<Fields>() = {}", std::mem::size_of::<Fields>());
        assert_eq!(NODE_SIZE, 72);
        assert_eq!(std::mem::size_of::<Blob>(), 8);
        assert_eq!(std::mem::size_of::<Option<Blob>>(), 8);
        assert_eq!(std::mem::size_of::<BlobHeader>(), 8);
    }

    fn node(blob: Blob) -> Node {
        Node { f: Fields::default(), blob }
    }

    #[test]
    fn blob_keeps_acl_data_and_null() {
        let n = node(new_blob(7, Some(b"data")));
        assert_eq!(n.data(), Some(&b"data"[..]));
        assert_eq!(n.data_len(), 4);
        assert_eq!(n.acl(), 7);
        assert!(!n.is_free());

        let n = node(new_blob(0, None));
        assert_eq!(n.data(), None);
        assert_eq!(n.data_len(), 0);

        let n = node(new_blob(1, Some(b"")));
        assert_eq!(n.data(), Some(&b""[..]));
        assert_eq!(n.data_len(), 0);

        let big = vec![9u8; 1000];
        let n = node(new_blob(1, Some(&big)));
        assert_eq!(n.data(), Some(&big[..]));
    }

    #[test]
    fn free_slots_chain() {
        let n = Node::free(42, new_blob(ACL_FREE, None));
        assert!(n.is_free());
        assert_eq!(n.next_free(), 42);
        let n = Node::free(NO_NODE, new_blob(ACL_FREE, None));
        assert_eq!(n.next_free(), NO_NODE);
    }
}
