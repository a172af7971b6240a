//! The compact in-memory znode: 64 bytes of stat and one thin pointer, 72 bytes.

use keeperkit_model::limits;
use triomphe::ThinArc;

/// Index of a node slot in the node store. Slots of deleted nodes are reused.
pub(crate) type NodeId = u32;

/// "No node": the end of the free list.
pub(crate) const NO_NODE: NodeId = u32::MAX;

/// Interned ACL list id (see [`crate::acl`]).
pub(crate) type AclId = u32;

/// Marks a free slot's blob; never a real ACL id.
pub(crate) const ACL_FREE: AclId = u32::MAX;

/// Set in [`BlobHeader::meta`] when the node's data is null (as opposed to empty).
const NULL_DATA: u32 = 1 << 31;

/// The fixed part of a node's blob.
#[derive(Clone, Copy, Debug)]
pub(crate) struct BlobHeader {
    /// The node's interned ACL list ([`ACL_FREE`] in free slots).
    acl: AclId,
    /// Length of the name in bytes, plus [`NULL_DATA`] when the data is null.
    meta: u32,
}

/// One refcounted allocation holding a node's ACL id, name bytes and data bytes.
///
/// Thin (8 bytes in the node); its header is 24 bytes (count, ACL id and name length,
/// slice length). Cloning a node (copy-on-write of a chunk of the node store) only
/// bumps the count, it never copies data. Changing the data or the ACL makes a new
/// blob.
pub(crate) type Blob = ThinArc<BlobHeader, u8>;

/// Builds a blob. `name` must be at most [`limits::PATH_LEN_MAX`] bytes.
pub(crate) fn new_blob(acl: AclId, name: &[u8], data: Option<&[u8]>) -> Blob {
    const _: () = assert!(limits::PATH_LEN_MAX < NULL_DATA as usize);
    assert!(name.len() <= limits::PATH_LEN_MAX, "node name longer than PATH_LEN_MAX");
    let name_len = u32::try_from(name.len()).unwrap_or(NULL_DATA - 1);
    let meta = if data.is_none() { name_len | NULL_DATA } else { name_len };
    let header = BlobHeader { acl, meta };
    let data = data.unwrap_or(&[]);
    let total = name.len() + data.len();
    // Small blobs (the common case) are assembled on the stack: one allocation only.
    const STACK_LEN: usize = 256;
    if total <= STACK_LEN {
        let mut buf = [0u8; STACK_LEN];
        buf[..name.len()].copy_from_slice(name);
        buf[name.len()..total].copy_from_slice(data);
        ThinArc::from_header_and_slice(header, &buf[..total])
    } else {
        let mut buf = Vec::with_capacity(total);
        buf.extend_from_slice(name);
        buf.extend_from_slice(data);
        ThinArc::from_header_and_slice(header, &buf)
    }
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
    /// ACL id, name and data.
    pub(crate) blob: Blob,
}

/// Pins the node size: the memory target (≤ 128 bytes per znode beyond name and data)
/// is designed around it.
pub(crate) const NODE_SIZE: usize = std::mem::size_of::<Node>();
const _: () = assert!(NODE_SIZE <= 72, "Node grew beyond 72 bytes");

impl Node {
    /// The node's name (last path component; empty for the root).
    #[inline]
    pub(crate) fn name(&self) -> &[u8] {
        let len = (self.blob.header.header.meta & !NULL_DATA) as usize;
        &self.blob.slice[..len]
    }

    /// The node's data; `None` when null.
    #[inline]
    pub(crate) fn data(&self) -> Option<&[u8]> {
        let meta = self.blob.header.header.meta;
        if meta & NULL_DATA != 0 {
            None
        } else {
            Some(&self.blob.slice[meta as usize..])
        }
    }

    /// Length of the data (0 when null).
    #[inline]
    pub(crate) fn data_len(&self) -> usize {
        self.blob.slice.len() - self.name().len()
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
    fn blob_keeps_acl_name_data_and_null() {
        let n = node(new_blob(7, b"name", Some(b"data")));
        assert_eq!(n.name(), b"name");
        assert_eq!(n.data(), Some(&b"data"[..]));
        assert_eq!(n.data_len(), 4);
        assert_eq!(n.acl(), 7);
        assert!(!n.is_free());

        let n = node(new_blob(0, b"", None));
        assert_eq!(n.name(), b"");
        assert_eq!(n.data(), None);
        assert_eq!(n.data_len(), 0);

        let n = node(new_blob(1, b"x", Some(b"")));
        assert_eq!(n.data(), Some(&b""[..]));

        let big = vec![9u8; 1000];
        let n = node(new_blob(1, b"long-name", Some(&big)));
        assert_eq!(n.name(), b"long-name");
        assert_eq!(n.data(), Some(&big[..]));
    }

    #[test]
    fn free_slots_chain() {
        let n = Node::free(42, new_blob(ACL_FREE, b"", None));
        assert!(n.is_free());
        assert_eq!(n.next_free(), 42);
        let n = Node::free(NO_NODE, new_blob(ACL_FREE, b"", None));
        assert_eq!(n.next_free(), NO_NODE);
    }
}
