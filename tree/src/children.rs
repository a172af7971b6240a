//! The children of one node: a set of node ids sorted by name bytes, in copy-on-write
//! chunks that keep each child's name next to its id.
//!
//! Small sets (up to [`CHUNK_MAX`] children, nearly all of them) are one shared sorted
//! chunk. Larger sets are a vector of shared sorted chunks of at most [`CHUNK_MAX`]
//! children, a two-level B-tree: a lookup binary-searches the chunks by their last
//! name, then the chunk. A chunk holds its children's names in one byte buffer, so a
//! search compares bytes in memory it already holds, never going through the node store
//! (an indexed persistent vector: several dependent loads per compare). This doubles
//! the memory of the names (the node store keeps them too) for lookups that touch one
//! or two cache lines per compare. Writing after a clone copies the chunk index (8
//! bytes per chunk) and the one chunk written (at most [`CHUNK_MAX`] ids and names),
//! never the whole set: a million children under one parent stay cheap to change while
//! a snapshot view holds the old version.

use std::cmp::Ordering;
use std::collections::HashSet;
use std::hash::{BuildHasherDefault, Hasher};

use keeperkit_model::limits;
use triomphe::Arc;

use crate::node::NodeId;

/// Largest chunk, in children. 512 ids = 2 KiB (plus their names): a small copy on the
/// first write after a clone, and a binary search of 9 steps.
pub(crate) const CHUNK_MAX: usize = 512;

/// A chunk that shrinks below this is merged into a neighbour when they fit together.
const CHUNK_MERGE_BELOW: usize = CHUNK_MAX / 4;

// Name offsets in a chunk are u32: a full chunk of the longest names must fit.
const _: () = assert!(CHUNK_MAX * limits::PATH_LEN_MAX <= u32::MAX as usize);

/// A byte offset in a chunk's names as stored.
#[inline]
fn offset(n: usize) -> u32 {
    // A chunk holds at most CHUNK_MAX names of at most PATH_LEN_MAX bytes (asserted
    // above): a larger offset is a bug in this file.
    u32::try_from(n).unwrap_or_else(|_| unreachable!("chunk name offset {n} exceeds u32"))
}

/// Up to [`CHUNK_MAX`] children sorted by name: ids, and the names end to end in one
/// buffer (`ends[i]` is where name `i` ends).
#[derive(Clone, Default)]
pub(crate) struct Chunk {
    ids: Vec<NodeId>,
    ends: Vec<u32>,
    names: Vec<u8>,
}

impl Chunk {
    fn len(&self) -> usize {
        self.ids.len()
    }

    fn start(&self, i: usize) -> usize {
        if i == 0 {
            0
        } else {
            self.ends[i - 1] as usize
        }
    }

    /// The name of child `i`.
    #[inline]
    fn name(&self, i: usize) -> &[u8] {
        &self.names[self.start(i)..self.ends[i] as usize]
    }

    fn last_name(&self) -> Option<&[u8]> {
        self.len().checked_sub(1).map(|i| self.name(i))
    }

    /// Binary search by name.
    #[inline]
    fn search(&self, name: &[u8]) -> Result<usize, usize> {
        let (mut lo, mut hi) = (0, self.len());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match self.name(mid).cmp(name) {
                Ordering::Less => lo = mid + 1,
                Ordering::Greater => hi = mid,
                Ordering::Equal => return Ok(mid),
            }
        }
        Err(lo)
    }

    fn insert(&mut self, pos: usize, id: NodeId, name: &[u8]) {
        let at = self.start(pos);
        let grow = offset(name.len());
        let old = self.names.len();
        self.names.resize(old + name.len(), 0);
        self.names.copy_within(at..old, at + name.len());
        self.names[at..at + name.len()].copy_from_slice(name);
        self.ids.insert(pos, id);
        self.ends.insert(pos, offset(at) + grow);
        for e in &mut self.ends[pos + 1..] {
            *e += grow;
        }
    }

    /// Appends a child after the others (the caller keeps the order it needs).
    fn push(&mut self, id: NodeId, name: &[u8]) {
        self.names.extend_from_slice(name);
        self.ids.push(id);
        self.ends.push(offset(self.names.len()));
    }

    fn remove(&mut self, pos: usize) -> NodeId {
        let (start, end) = (self.start(pos), self.ends[pos] as usize);
        let shrink = offset(end - start);
        self.names.drain(start..end);
        self.ends.remove(pos);
        for e in &mut self.ends[pos..] {
            *e -= shrink;
        }
        self.ids.remove(pos)
    }

    /// Moves children `at..` into a new chunk.
    fn split_off(&mut self, at: usize) -> Chunk {
        let cut = self.start(at);
        let ids = self.ids.split_off(at);
        let ends = self.ends.split_off(at).into_iter().map(|e| e - offset(cut)).collect();
        let names = self.names.split_off(cut);
        Chunk { ids, ends, names }
    }

    /// Appends every child of `other` (all named after this chunk's).
    fn append(&mut self, other: &Chunk) {
        let base = offset(self.names.len());
        self.ids.extend_from_slice(&other.ids);
        self.ends.extend(other.ends.iter().map(|e| e + base));
        self.names.extend_from_slice(&other.names);
    }

    fn iter(&self) -> impl DoubleEndedIterator<Item = (NodeId, &[u8])> + '_ {
        self.ids.iter().enumerate().map(|(i, &id)| (id, self.name(i)))
    }
}

/// A non-empty set of children, sorted by name bytes.
#[derive(Clone)]
pub(crate) enum ChildSet {
    /// Up to [`CHUNK_MAX`] children in one chunk.
    Flat(Arc<Chunk>),
    /// More: sorted chunks, each non-empty and at most [`CHUNK_MAX`] long.
    Chunked(Arc<Chunked>),
}

/// The chunk index of a large set.
#[derive(Clone)]
pub(crate) struct Chunked {
    len: usize,
    chunks: Vec<Arc<Chunk>>,
}

/// Where a name is missing from a set: chunk index and position in the chunk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Slot {
    chunk: usize,
    pos: usize,
}

impl ChildSet {
    /// A set holding one child.
    pub(crate) fn one(id: NodeId, name: &[u8]) -> ChildSet {
        let mut c = Chunk::default();
        c.insert(0, id, name);
        ChildSet::Flat(Arc::new(c))
    }

    /// The set of `entries`, which are in strictly increasing name order (`n` of
    /// them, at least one), in chunks of even sizes.
    fn from_sorted<'a>(n: usize, entries: impl Iterator<Item = (NodeId, &'a [u8])>) -> ChildSet {
        assert!(n > 0, "empty child set");
        let chunks = n.div_ceil(CHUNK_MAX);
        let (size, larger) = (n / chunks, n % chunks);
        let mut out = Vec::with_capacity(chunks);
        let mut cur = Chunk::default();
        for (id, name) in entries {
            debug_assert!(cur.last_name().is_none_or(|last| last < name), "unsorted children");
            cur.push(id, name);
            if cur.len() == size + usize::from(out.len() < larger) {
                out.push(Arc::new(std::mem::take(&mut cur)));
            }
        }
        assert!(out.len() == chunks && cur.len() == 0, "{n} children announced, others given");
        if chunks == 1 {
            ChildSet::Flat(out.swap_remove(0))
        } else {
            ChildSet::Chunked(Arc::new(Chunked { len: n, chunks: out }))
        }
    }

    /// Number of children.
    pub(crate) fn len(&self) -> usize {
        match self {
            ChildSet::Flat(v) => v.len(),
            ChildSet::Chunked(c) => c.len,
        }
    }

    /// The child with this name.
    pub(crate) fn find(&self, name: &[u8]) -> Option<NodeId> {
        self.locate(name).ok()
    }

    /// The chunks (a flat set is one chunk).
    fn chunks(&self) -> &[Arc<Chunk>] {
        match self {
            ChildSet::Flat(v) => std::slice::from_ref(v),
            ChildSet::Chunked(c) => &c.chunks,
        }
    }

    /// The child with this name, or the slot where a child of that name would go
    /// (valid until the set changes).
    pub(crate) fn locate(&self, name: &[u8]) -> Result<NodeId, Slot> {
        self.position(name).map(|s| self.chunks()[s.chunk].ids[s.pos])
    }

    /// `Ok(where the name is)` or `Err(where it would go)`.
    fn position(&self, name: &[u8]) -> Result<Slot, Slot> {
        let chunks = self.chunks();
        // Appending in name order (sequential nodes) is the common case: one compare.
        let last_chunk = chunks.len() - 1;
        match chunks[last_chunk].last_name() {
            Some(last) if last < name => {
                return Err(Slot { chunk: last_chunk, pos: chunks[last_chunk].len() });
            }
            None => return Err(Slot { chunk: 0, pos: 0 }),
            _ => {}
        }
        // First chunk whose last name is >= name (exists: the last one is).
        let ci = if chunks.len() == 1 {
            0
        } else {
            chunks.partition_point(|k| k.last_name().is_none_or(|last| last < name))
        };
        match chunks[ci].search(name) {
            Ok(pos) => Ok(Slot { chunk: ci, pos }),
            Err(pos) => Err(Slot { chunk: ci, pos }),
        }
    }

    /// Inserts child `id`, named `name`, at `slot`, found by [`ChildSet::locate`] for
    /// that name on this very set version.
    pub(crate) fn insert_at(&mut self, slot: Slot, id: NodeId, name: &[u8]) {
        match self {
            ChildSet::Flat(v) => {
                debug_assert_eq!(slot.chunk, 0);
                if v.len() < CHUNK_MAX {
                    Arc::make_mut(v).insert(slot.pos, id, name);
                    return;
                }
                let mut c = Chunked::from_full(v);
                let half = c.chunks[0].len();
                let slot =
                    if slot.pos <= half { slot } else { Slot { chunk: 1, pos: slot.pos - half } };
                c.insert_at(slot, id, name);
                *self = ChildSet::Chunked(Arc::new(c));
            }
            ChildSet::Chunked(c) => Arc::make_mut(c).insert_at(slot, id, name),
        }
    }

    /// Inserts `id`, whose name is `name`. Returns false (and changes nothing) when a
    /// child of that name is present.
    #[cfg(test)]
    pub(crate) fn insert(&mut self, id: NodeId, name: &[u8]) -> bool {
        match self.locate(name) {
            Ok(_) => false,
            Err(slot) => {
                self.insert_at(slot, id, name);
                true
            }
        }
    }

    /// Removes the child with this name; returns its id.
    pub(crate) fn remove(&mut self, name: &[u8]) -> Option<NodeId> {
        let slot = self.position(name).ok()?;
        match self {
            ChildSet::Flat(v) => Some(Arc::make_mut(v).remove(slot.pos)),
            ChildSet::Chunked(c) => {
                let c = Arc::make_mut(c);
                let id = c.remove_at(slot.chunk, slot.pos);
                if c.len <= CHUNK_MAX / 2 {
                    let mut flat = Chunk::default();
                    for k in &c.chunks {
                        flat.append(k);
                    }
                    *self = ChildSet::Flat(Arc::new(flat));
                }
                Some(id)
            }
        }
    }

    /// The ids in name order.
    pub(crate) fn iter(&self) -> impl DoubleEndedIterator<Item = NodeId> + '_ {
        self.chunks().iter().flat_map(|k| k.ids.iter().copied())
    }

    /// The ids and names in name order.
    pub(crate) fn entries(&self) -> impl DoubleEndedIterator<Item = (NodeId, &[u8])> + '_ {
        self.chunks().iter().flat_map(|k| k.iter())
    }

    /// The ids and names in name order from the `start`-th child on (whole chunks
    /// before it are stepped over, not walked).
    pub(crate) fn entries_from(&self, start: usize) -> impl Iterator<Item = (NodeId, &[u8])> + '_ {
        let chunks = self.chunks();
        let (mut first, mut skip) = (0, start);
        while first < chunks.len() && skip >= chunks[first].len() {
            skip -= chunks[first].len();
            first += 1;
        }
        chunks[first..].iter().flat_map(|k| k.iter()).skip(skip)
    }

    /// Checks the structure's invariants (tests): sorted, sizes, and each name the one
    /// the node store holds for its id.
    #[cfg(test)]
    pub(crate) fn check(&self, name_of: impl Fn(NodeId) -> Vec<u8>) {
        let entries: Vec<(NodeId, &[u8])> = self.entries().collect();
        assert_eq!(entries.len(), self.len());
        assert!(!entries.is_empty());
        for w in entries.windows(2) {
            assert!(w[0].1 < w[1].1, "children out of order");
        }
        for (id, name) in &entries {
            assert_eq!(*name, name_of(*id).as_slice(), "name of child {id}");
        }
        for k in self.chunks() {
            assert_eq!(k.ids.len(), k.ends.len());
            assert_eq!(k.ends.last().map_or(0, |&e| e as usize), k.names.len());
        }
        match self {
            ChildSet::Flat(v) => assert!(v.len() <= CHUNK_MAX),
            ChildSet::Chunked(c) => {
                assert!(c.len > CHUNK_MAX / 2);
                for k in &c.chunks {
                    assert!(k.len() > 0);
                    assert!(k.len() <= CHUNK_MAX);
                }
            }
        }
    }

    /// Number of chunks (tests).
    #[cfg(test)]
    pub(crate) fn chunk_count(&self) -> usize {
        self.chunks().len()
    }
}

impl Chunked {
    /// Splits a full flat chunk into two.
    fn from_full(flat: &Chunk) -> Chunked {
        let mut left = flat.clone();
        let right = left.split_off(flat.len() / 2);
        Chunked { len: flat.len(), chunks: vec![Arc::new(left), Arc::new(right)] }
    }

    /// Inserts a child at a slot found by `locate`.
    fn insert_at(&mut self, slot: Slot, id: NodeId, name: &[u8]) {
        let Slot { chunk: ci, pos } = slot;
        self.len += 1;
        let n_chunks = self.chunks.len();
        let chunk_len = self.chunks[ci].len();
        if chunk_len < CHUNK_MAX {
            Arc::make_mut(&mut self.chunks[ci]).insert(pos, id, name);
            return;
        }
        // Full chunk. At either end of the whole set (sequential names, or names
        // arriving in reverse) start a new chunk, so that chunks stay full; otherwise
        // split in halves.
        let mut fresh = Chunk::default();
        if ci == n_chunks - 1 && pos == chunk_len {
            fresh.insert(0, id, name);
            self.chunks.push(Arc::new(fresh));
        } else if ci == 0 && pos == 0 {
            fresh.insert(0, id, name);
            self.chunks.insert(0, Arc::new(fresh));
        } else {
            let chunk = Arc::make_mut(&mut self.chunks[ci]);
            let mut right = chunk.split_off(chunk_len / 2);
            if pos <= chunk.len() {
                chunk.insert(pos, id, name);
            } else {
                right.insert(pos - chunk.len(), id, name);
            }
            self.chunks.insert(ci + 1, Arc::new(right));
        }
    }

    /// Removes the child at `pos` of chunk `ci`, keeping chunks non-empty and merging a
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
                    Arc::make_mut(&mut self.chunks[lo]).append(&tail);
                }
            }
        }
        id
    }
}

/// Hasher for [`Gathering`]'s set of name hashes, which are well mixed already.
#[derive(Default, Clone, Copy)]
struct PassHasher(u64);

impl Hasher for PassHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) | u64::from(b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// A 64-bit hash of a name (unkeyed: a collision only costs time, see [`Gathering`]).
fn name_hash(name: &[u8]) -> u64 {
    const K: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut h = (name.len() as u64).wrapping_mul(K);
    let mut words = name.chunks_exact(8);
    for w in &mut words {
        let mut b = [0u8; 8];
        b.copy_from_slice(w);
        h = (h ^ u64::from_le_bytes(b)).wrapping_mul(K).rotate_left(29);
    }
    let rest = words.remainder();
    if !rest.is_empty() {
        let mut b = [0u8; 8];
        b[..rest.len()].copy_from_slice(rest);
        h = (h ^ u64::from_le_bytes(b)).wrapping_mul(K).rotate_left(29);
    }
    // splitmix64's finaliser: both the low bits (bucket) and the high bits (tag) of
    // the hash set must be mixed.
    h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

/// The children of one node gathered in arrival order while a snapshot loads, sorted
/// once into a [`ChildSet`] by [`Gathering::into_set`].
///
/// Snapshots list a node's children in hash order, each followed by its subtree: put
/// into a sorted set one by one, every child lands at a random place (a binary search
/// and a move of half a chunk). Gathered, a child costs an append and a hash-set
/// insert, and the set is sorted once. Duplicate names are refused as they arrive:
/// [`Gathering::claim`] answers whether a name is certainly new (its hash was never
/// seen); when not, the caller seals what it gathered and checks exactly in the set,
/// so a hash collision costs a sort, never a wrong answer.
#[derive(Default)]
pub(crate) struct Gathering {
    ids: Vec<NodeId>,
    /// `ends[i]`: where name `i` ends in `names` (unbounded: not a chunk's `u32`).
    ends: Vec<usize>,
    names: Vec<u8>,
    hashes: HashSet<u64, BuildHasherDefault<PassHasher>>,
    /// The number of children when the last child loaded with ZooKeeper stats arrived:
    /// the parent's client cversion is derived from it when the set is built, instead
    /// of on every arrival.
    pub(crate) cversion_count: Option<usize>,
}

impl Gathering {
    /// Number of children gathered.
    pub(crate) fn len(&self) -> usize {
        self.ids.len()
    }

    fn name(&self, i: usize) -> &[u8] {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.names[start..self.ends[i]]
    }

    /// Whether `name` is certainly not among the children gathered: true when its
    /// hash is new (and is now recorded: the caller [`Gathering::push`]es the child),
    /// false when a child of that name may be present.
    pub(crate) fn claim(&mut self, name: &[u8]) -> bool {
        self.hashes.insert(name_hash(name))
    }

    /// Adds child `id`, whose name was [`Gathering::claim`]ed.
    pub(crate) fn push(&mut self, id: NodeId, name: &[u8]) {
        debug_assert!(self.hashes.contains(&name_hash(name)));
        self.names.extend_from_slice(name);
        self.ids.push(id);
        self.ends.push(self.names.len());
    }

    /// The children as a sorted set (`None` when there are none); leaves this empty,
    /// its memory kept for the next node. Names are distinct (claimed).
    pub(crate) fn take_set(&mut self) -> Option<ChildSet> {
        let n = self.len();
        if n == 0 {
            return None;
        }
        // Sort positions by the names' first 8 bytes as a big-endian number (zero
        // padded: a name that is a prefix of another sorts first or ties), ties broken
        // by the whole names.
        let key = |name: &[u8]| {
            let mut b = [0u8; 8];
            let k = name.len().min(8);
            b[..k].copy_from_slice(&name[..k]);
            u64::from_be_bytes(b)
        };
        let mut order: Vec<(u64, usize)> = (0..n).map(|i| (key(self.name(i)), i)).collect();
        order.sort_unstable_by(|a, b| {
            a.0.cmp(&b.0).then_with(|| self.name(a.1).cmp(self.name(b.1)))
        });
        let sorted = order.iter().map(|&(_, i)| (self.ids[i], self.name(i)));
        let set = ChildSet::from_sorted(n, sorted);
        self.ids.clear();
        self.ends.clear();
        self.names.clear();
        self.hashes.clear();
        self.cversion_count = None;
        Some(set)
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

    /// The name of id `i` is `names[i]`.
    fn store(names: &[String]) -> impl Fn(NodeId) -> Vec<u8> + '_ {
        move |id| names[id as usize].as_bytes().to_vec()
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
                    Some(s) => s.insert(id, name),
                    None => {
                        set = Some(ChildSet::one(id, name));
                        true
                    }
                };
                assert_eq!(fresh, model.insert(name, id).is_none());
            } else {
                let got = set.as_mut().and_then(|s| s.remove(name));
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
                        assert_eq!(s.find(n), Some(*id));
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
        let mut set = ChildSet::one(0, names[0].as_bytes());
        for (i, name) in names.iter().enumerate().skip(1) {
            assert!(set.insert(NodeId::try_from(i).unwrap(), name.as_bytes()));
        }
        set.check(&nodes);
        assert!(set.chunk_count() >= n / CHUNK_MAX);
        // Clone (a view), then change the original: the view is unchanged.
        let view = set.clone();
        for name in names.iter().take(n - 1) {
            assert!(set.remove(name.as_bytes()).is_some());
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
        let mut set = ChildSet::one(0, names[0].as_bytes());
        for (i, name) in names.iter().enumerate().skip(1) {
            assert!(set.insert(NodeId::try_from(i).unwrap(), name.as_bytes()));
        }
        set.check(&nodes);
        // One split of the first full flat vector into halves, then full chunks.
        assert!(set.chunk_count() <= n / CHUNK_MAX + 2, "{} chunks", set.chunk_count());
    }

    #[test]
    fn gathered_children_sort_into_valid_sets() {
        for n in [1, 2, CHUNK_MAX, CHUNK_MAX + 1, 2 * CHUNK_MAX + 1, 5000] {
            // Names that tie on their first 8 bytes, prefix one another, or are short.
            let names: Vec<String> = (0..n)
                .map(|i| match (i * 7919) % 3 {
                    0 => format!("prefix-long-{}", (i * 7919) % n),
                    1 => {
                        "abcdefghij".chars().take(1 + i % 10).collect::<String>()
                            + &"x".repeat(i / 10)
                    }
                    _ => format!("{}", (i * 104_729) % (n + 7)),
                })
                .collect();
            let nodes = store(&names);
            let mut g = Gathering::default();
            for (i, name) in names.iter().enumerate() {
                assert!(g.claim(name.as_bytes()), "{name} claimed twice");
                g.push(NodeId::try_from(i).unwrap(), name.as_bytes());
            }
            assert!(!g.claim(names[n / 2].as_bytes()));
            assert_eq!(g.len(), n);
            let set = g.take_set().unwrap();
            set.check(&nodes);
            assert_eq!(set.len(), n);
            let mut want: Vec<&str> = names.iter().map(String::as_str).collect();
            want.sort_unstable();
            let got: Vec<&[u8]> = set.entries().map(|(_, name)| name).collect();
            assert_eq!(got, want.iter().map(|w| w.as_bytes()).collect::<Vec<_>>());
            assert_eq!(set.chunk_count(), n.div_ceil(CHUNK_MAX));
            // Emptied, and reusable.
            assert_eq!(g.len(), 0);
            assert!(g.take_set().is_none());
            assert!(g.claim(names[0].as_bytes()));
        }
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
