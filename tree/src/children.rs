//! The children of one node: a set of node ids sorted by name bytes, in copy-on-write
//! chunks.
//!
//! Small sets (up to [`CHUNK_MAX`] children, nearly all of them) are one shared sorted
//! vector. Larger sets are a vector of shared sorted chunks of at most [`CHUNK_MAX`] ids,
//! a two-level B-tree: a lookup binary-searches the chunks by their last name, then the
//! chunk. Names are not stored here; comparisons read them through the node store.
//! Writing after a clone copies the chunk index (8 bytes per chunk) and the one chunk
//! written (at most 2 KiB), never the whole set: a million children under one parent
//! stay cheap to change while a snapshot view holds the old version.

use std::cmp::Ordering;

use imbl::Vector;
use triomphe::Arc;

use crate::node::{Node, NodeId};

/// Largest chunk, in ids. 512 ids = 2 KiB: a small copy on the first write after a
/// clone, and a binary search of 9 steps.
pub(crate) const CHUNK_MAX: usize = 512;

/// A chunk that shrinks below this is merged into a neighbour when they fit together.
const CHUNK_MERGE_BELOW: usize = CHUNK_MAX / 4;

/// The name of node `id`.
#[inline]
fn name_of(nodes: &Vector<Node>, id: NodeId) -> &[u8] {
    nodes[id as usize].name()
}

/// A non-empty set of children, sorted by name bytes.
#[derive(Clone)]
pub(crate) enum ChildSet {
    /// Up to [`CHUNK_MAX`] ids in one vector.
    Flat(Arc<Vec<NodeId>>),
    /// More: sorted chunks, each non-empty and at most [`CHUNK_MAX`] long.
    Chunked(Arc<Chunked>),
}

/// The chunk index of a large set.
#[derive(Clone)]
pub(crate) struct Chunked {
    len: usize,
    chunks: Vec<Arc<Vec<NodeId>>>,
}

/// Where a name is missing from a set: chunk index and position in the chunk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Slot {
    chunk: usize,
    pos: usize,
}

impl ChildSet {
    /// A set holding one child.
    pub(crate) fn one(id: NodeId) -> ChildSet {
        ChildSet::Flat(Arc::new(vec![id]))
    }

    /// Number of children.
    pub(crate) fn len(&self) -> usize {
        match self {
            ChildSet::Flat(v) => v.len(),
            ChildSet::Chunked(c) => c.len,
        }
    }

    /// The child with this name.
    pub(crate) fn find(&self, nodes: &Vector<Node>, name: &[u8]) -> Option<NodeId> {
        self.locate(nodes, name).ok()
    }

    /// The chunks (a flat set is one chunk).
    fn chunks(&self) -> &[Arc<Vec<NodeId>>] {
        match self {
            ChildSet::Flat(v) => std::slice::from_ref(v),
            ChildSet::Chunked(c) => &c.chunks,
        }
    }

    /// The child with this name, or the slot where a child of that name would go
    /// (valid until the set changes).
    pub(crate) fn locate(&self, nodes: &Vector<Node>, name: &[u8]) -> Result<NodeId, Slot> {
        self.position(nodes, name).map(|s| self.chunks()[s.chunk][s.pos])
    }

    /// `Ok(where the name is)` or `Err(where it would go)`.
    fn position(&self, nodes: &Vector<Node>, name: &[u8]) -> Result<Slot, Slot> {
        let chunks = self.chunks();
        // Appending in name order (sequential nodes) is the common case: one compare.
        let last_chunk = chunks.len() - 1;
        match chunks[last_chunk].last() {
            Some(&last) if name_of(nodes, last) < name => {
                return Err(Slot { chunk: last_chunk, pos: chunks[last_chunk].len() });
            }
            None => return Err(Slot { chunk: 0, pos: 0 }),
            _ => {}
        }
        // First chunk whose last name is >= name (exists: the last one is).
        let ci = if chunks.len() == 1 {
            0
        } else {
            chunks.partition_point(|k| k.last().is_none_or(|&last| name_of(nodes, last) < name))
        };
        match search(nodes, &chunks[ci], name) {
            Ok(pos) => Ok(Slot { chunk: ci, pos }),
            Err(pos) => Err(Slot { chunk: ci, pos }),
        }
    }

    /// Inserts `id` at `slot`, found by [`ChildSet::locate`] for its name on this very
    /// set version.
    pub(crate) fn insert_at(&mut self, slot: Slot, id: NodeId) {
        match self {
            ChildSet::Flat(v) => {
                debug_assert_eq!(slot.chunk, 0);
                if v.len() < CHUNK_MAX {
                    Arc::make_mut(v).insert(slot.pos, id);
                    return;
                }
                let mut c = Chunked::from_sorted(v);
                let half = c.chunks[0].len();
                let slot =
                    if slot.pos <= half { slot } else { Slot { chunk: 1, pos: slot.pos - half } };
                c.insert_at(slot, id);
                *self = ChildSet::Chunked(Arc::new(c));
            }
            ChildSet::Chunked(c) => Arc::make_mut(c).insert_at(slot, id),
        }
    }

    /// Inserts `id`, whose name is `name`. Returns false (and changes nothing) when a
    /// child of that name is present.
    #[cfg(test)]
    pub(crate) fn insert(&mut self, nodes: &Vector<Node>, id: NodeId, name: &[u8]) -> bool {
        match self.locate(nodes, name) {
            Ok(_) => false,
            Err(slot) => {
                self.insert_at(slot, id);
                true
            }
        }
    }

    /// Removes the child with this name; returns its id.
    pub(crate) fn remove(&mut self, nodes: &Vector<Node>, name: &[u8]) -> Option<NodeId> {
        let slot = self.position(nodes, name).ok()?;
        match self {
            ChildSet::Flat(v) => Some(Arc::make_mut(v).remove(slot.pos)),
            ChildSet::Chunked(c) => {
                let c = Arc::make_mut(c);
                let id = c.remove_at(slot.chunk, slot.pos);
                if c.len <= CHUNK_MAX / 2 {
                    let flat: Vec<NodeId> =
                        c.chunks.iter().flat_map(|k| k.iter().copied()).collect();
                    *self = ChildSet::Flat(Arc::new(flat));
                }
                Some(id)
            }
        }
    }

    /// The ids in name order.
    pub(crate) fn iter(&self) -> impl DoubleEndedIterator<Item = NodeId> + '_ {
        let chunks: &[Arc<Vec<NodeId>>] = match self {
            ChildSet::Flat(v) => std::slice::from_ref(v),
            ChildSet::Chunked(c) => &c.chunks,
        };
        chunks.iter().flat_map(|k| k.iter().copied())
    }

    /// Checks the structure's invariants (tests).
    #[cfg(test)]
    pub(crate) fn check(&self, nodes: &Vector<Node>) {
        let ids: Vec<NodeId> = self.iter().collect();
        assert_eq!(ids.len(), self.len());
        assert!(!ids.is_empty());
        for w in ids.windows(2) {
            assert!(name_of(nodes, w[0]) < name_of(nodes, w[1]), "children out of order");
        }
        match self {
            ChildSet::Flat(v) => assert!(v.len() <= CHUNK_MAX),
            ChildSet::Chunked(c) => {
                assert!(c.len > CHUNK_MAX / 2);
                for k in &c.chunks {
                    assert!(!k.is_empty());
                    assert!(k.len() <= CHUNK_MAX);
                }
            }
        }
    }

    /// Number of chunks (tests).
    #[cfg(test)]
    pub(crate) fn chunk_count(&self) -> usize {
        match self {
            ChildSet::Flat(_) => 1,
            ChildSet::Chunked(c) => c.chunks.len(),
        }
    }
}

/// Binary search of a sorted chunk by name.
#[inline]
fn search(nodes: &Vector<Node>, ids: &[NodeId], name: &[u8]) -> Result<usize, usize> {
    ids.binary_search_by(|&id| name_of(nodes, id).cmp(name))
}

impl Chunked {
    /// Splits a full flat vector into two chunks.
    fn from_sorted(ids: &[NodeId]) -> Chunked {
        let half = ids.len() / 2;
        Chunked {
            len: ids.len(),
            chunks: vec![Arc::new(ids[..half].to_vec()), Arc::new(ids[half..].to_vec())],
        }
    }

    /// Inserts an id at a slot found by `locate`.
    fn insert_at(&mut self, slot: Slot, id: NodeId) {
        let Slot { chunk: ci, pos } = slot;
        self.len += 1;
        let n_chunks = self.chunks.len();
        let chunk_len = self.chunks[ci].len();
        if chunk_len < CHUNK_MAX {
            Arc::make_mut(&mut self.chunks[ci]).insert(pos, id);
            return;
        }
        // Full chunk. At either end of the whole set (sequential names, or names
        // arriving in reverse) start a new chunk, so that chunks stay full; otherwise
        // split in halves.
        if ci == n_chunks - 1 && pos == chunk_len {
            self.chunks.push(Arc::new(vec![id]));
        } else if ci == 0 && pos == 0 {
            self.chunks.insert(0, Arc::new(vec![id]));
        } else {
            let chunk = Arc::make_mut(&mut self.chunks[ci]);
            let mut right = chunk.split_off(chunk_len / 2);
            if pos <= chunk.len() {
                chunk.insert(pos, id);
            } else {
                right.insert(pos - chunk.len(), id);
            }
            self.chunks.insert(ci + 1, Arc::new(right));
        }
    }

    /// Removes the id at `pos` of chunk `ci`, keeping chunks non-empty and merging a
    /// small chunk into a neighbour when they fit in one.
    fn remove_at(&mut self, ci: usize, pos: usize) -> NodeId {
        let id = Arc::make_mut(&mut self.chunks[ci]).remove(pos);
        self.len -= 1;
        let len = self.chunks[ci].len();
        if len == 0 {
            self.chunks.remove(ci);
        } else if len < CHUNK_MERGE_BELOW {
            let neighbour =
                if ci + 1 < self.chunks.len() { Some(ci + 1) } else { ci.checked_sub(1) };
            if let Some(ni) = neighbour {
                if self.chunks[ni].len() + len <= CHUNK_MAX / 2 {
                    let (lo, hi) = if ni < ci { (ni, ci) } else { (ci, ni) };
                    let tail = self.chunks.remove(hi);
                    Arc::make_mut(&mut self.chunks[lo]).extend_from_slice(&tail);
                }
            }
        }
        id
    }
}

/// Orders `a + "/"` against `b + "/"` (used by sorted iteration).
pub(crate) fn cmp_with_slash(a: &[u8], b: &[u8]) -> Ordering {
    a.iter().chain(b"/").cmp(b.iter().chain(b"/"))
}

/// Orders `a` against `b + "/"` (used by sorted iteration).
pub(crate) fn cmp_to_slashed(a: &[u8], b: &[u8]) -> Ordering {
    a.iter().cmp(b.iter().chain(b"/"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;
    use crate::node::{new_blob, Fields};

    fn store(names: &[String]) -> Vector<Node> {
        names
            .iter()
            .map(|n| Node { f: Fields::default(), blob: new_blob(0, n.as_bytes(), None) })
            .collect()
    }

    /// Applies inserts (true) and removes (false) of name indexes to a set and to a
    /// BTreeMap, comparing after every step.
    fn run(names: &[String], ops: &[(bool, usize)]) {
        let nodes = store(names);
        let mut set: Option<ChildSet> = None;
        let mut model: BTreeMap<&[u8], NodeId> = BTreeMap::new();
        for (step, &(ins, i)) in ops.iter().enumerate() {
            let i = i % names.len();
            let name = names[i].as_bytes();
            let id = NodeId::try_from(i).unwrap();
            if ins {
                let fresh = match &mut set {
                    Some(s) => s.insert(&nodes, id, name),
                    None => {
                        set = Some(ChildSet::one(id));
                        true
                    }
                };
                assert_eq!(fresh, model.insert(name, id).is_none());
            } else {
                let got = set.as_mut().and_then(|s| s.remove(&nodes, name));
                assert_eq!(got, model.remove(name));
                if set.as_ref().is_some_and(|s| s.len() == 0) {
                    set = None;
                }
            }
            assert_eq!(set.as_ref().map_or(0, ChildSet::len), model.len());
            if step % 101 != 0 && step + 1 != ops.len() {
                continue;
            }
            match &set {
                None => assert!(model.is_empty()),
                Some(s) => {
                    s.check(&nodes);
                    let ids: Vec<NodeId> = s.iter().collect();
                    let want: Vec<NodeId> = model.values().copied().collect();
                    assert_eq!(ids, want);
                    for (n, id) in &model {
                        assert_eq!(s.find(&nodes, n), Some(*id));
                    }
                }
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        #[test]
        fn matches_btreemap(ops in proptest::collection::vec((any::<bool>(), 0usize..2000), 0..3000)) {
            let names: Vec<String> = (0..2000).map(|i| format!("n{}", (i * 7919) % 2000)).collect();
            run(&names, &ops);
        }
    }

    #[test]
    fn large_set_grows_and_shrinks() {
        let n = 5000;
        let names: Vec<String> = (0..n).map(|i| format!("{:06}", (i * 7919) % n)).collect();
        let nodes = store(&names);
        let mut set = ChildSet::one(0);
        for (i, name) in names.iter().enumerate().skip(1) {
            assert!(set.insert(&nodes, NodeId::try_from(i).unwrap(), name.as_bytes()));
        }
        set.check(&nodes);
        assert!(set.chunk_count() >= n / CHUNK_MAX);
        // Clone (a view), then change the original: the view is unchanged.
        let view = set.clone();
        for name in names.iter().take(n - 1) {
            assert!(set.remove(&nodes, name.as_bytes()).is_some());
        }
        set.check(&nodes);
        assert_eq!(set.len(), 1);
        assert_eq!(view.len(), n);
        view.check(&nodes);
    }

    #[test]
    fn sequential_appends_keep_chunks_full() {
        let n = 10 * CHUNK_MAX;
        let names: Vec<String> = (0..n).map(|i| format!("seq{i:010}")).collect();
        let nodes = store(&names);
        let mut set = ChildSet::one(0);
        for (i, name) in names.iter().enumerate().skip(1) {
            assert!(set.insert(&nodes, NodeId::try_from(i).unwrap(), name.as_bytes()));
        }
        set.check(&nodes);
        // One split of the first full flat vector into halves, then full chunks.
        assert!(set.chunk_count() <= n / CHUNK_MAX + 2, "{} chunks", set.chunk_count());
    }

    #[test]
    fn slash_orders() {
        assert_eq!(cmp_with_slash(b"a", b"a-b"), Ordering::Greater);
        assert_eq!(cmp_with_slash(b"a", b"b"), Ordering::Less);
        assert_eq!(cmp_to_slashed(b"a-b", b"a"), Ordering::Less);
        assert_eq!(cmp_to_slashed(b"a0", b"a"), Ordering::Greater);
        assert_eq!(cmp_to_slashed(b"a", b"a"), Ordering::Less);
    }
}
