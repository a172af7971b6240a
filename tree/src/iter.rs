//! Whole-tree traversals: pre-order (parents first, for snapshot writers) and sorted
//! by full path bytes (for dumps and diffs); full digest recomputation; a consistency
//! check. All iterative: depth is bounded only by `TREE_DEPTH_MAX`.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use crate::children::{cmp_to_slashed, cmp_with_slash, ChildSet};
use crate::digest::{contribution, digest_path, node_crc};
use crate::node::{NodeId, NO_NODE};
use crate::tree::{client_cversion, name_str, session_owner, DataTree, NodeRef};

/// A pending step of the sorted walk: a node, its name, and the length of its
/// parent's path.
#[derive(Clone, Copy)]
pub(crate) enum Step<'a> {
    /// Report this node.
    Visit(NodeId, &'a [u8], usize),
    /// Expand this node's children (all its descendants sort here, as a block).
    Expand(NodeId, &'a [u8], usize),
}

impl Step<'_> {
    /// The step's node.
    #[inline]
    pub(crate) fn id(&self) -> NodeId {
        match *self {
            Step::Visit(id, ..) | Step::Expand(id, ..) => id,
        }
    }
}

/// One difference found by [`DataTree::diff_sorted`].
#[derive(Debug, Clone, Copy)]
pub enum Change<'t> {
    /// The path is only in A.
    Removed(NodeRef<'t>),
    /// The path is only in B.
    Added(NodeRef<'t>),
    /// The path is in both, with other data, client stat or ACL (A, B).
    Changed(NodeRef<'t>, NodeRef<'t>),
}

/// A walk over a tree in full-path byte order; see [`DataTree::sorted_walk`].
/// Memory: the current path and one pending step per sibling along it.
pub struct SortedWalk<'a> {
    tree: &'a DataTree,
    /// The path of the node last returned (`/` for the root).
    path: String,
    stack: Vec<Step<'a>>,
    started: bool,
}

impl<'a> SortedWalk<'a> {
    /// Moves to the next node; `None` once every node was returned.
    pub fn advance(&mut self) -> Option<NodeRef<'a>> {
        let t = self.tree;
        if !self.started {
            self.started = true;
            if t.root == NO_NODE {
                return None;
            }
            self.path.push('/');
            t.push_sorted_steps(t.root, 0, &mut self.stack);
            return Some(t.node_ref(t.root));
        }
        while let Some(step) = self.stack.pop() {
            let (id, name, parent_len) = match step {
                Step::Visit(id, n, l) | Step::Expand(id, n, l) => (id, n, l),
            };
            self.path.truncate(parent_len);
            self.path.push('/');
            self.path.push_str(name_str(name));
            match step {
                Step::Visit(..) => return Some(t.node_ref(id)),
                Step::Expand(..) => t.push_sorted_steps(id, self.path.len(), &mut self.stack),
            }
        }
        None
    }

    /// The path of the node [`SortedWalk::advance`] returned last (`/` for the root).
    pub fn path(&self) -> &str {
        &self.path
    }
}

impl DataTree {
    /// Calls `f` for every node, parents before their children (the root first, as
    /// `/`), siblings in name order. No global sort: O(n) plus the stack.
    pub fn for_each_preorder(&self, mut f: impl FnMut(&str, NodeRef<'_>)) {
        if self.root == NO_NODE {
            return;
        }
        f("/", self.node_ref(self.root));
        let mut path = String::new();
        // (node, length of its parent's path in `path`)
        let mut stack: Vec<(NodeId, &[u8], usize)> = Vec::new();
        if let Some(set) = self.children.get(&self.root) {
            stack.extend(set.entries().rev().map(|(c, name)| (c, name, 0)));
        }
        while let Some((id, name, parent_len)) = stack.pop() {
            path.truncate(parent_len);
            path.push('/');
            path.push_str(name_str(name));
            f(&path, self.node_ref(id));
            if let Some(set) = self.children.get(&id) {
                let len = path.len();
                stack.extend(set.entries().rev().map(|(c, name)| (c, name, len)));
            }
        }
    }

    /// Calls `f` for every node in the byte order of full paths, the root as `/`.
    ///
    /// This is not plain depth-first order: `/a-b` sorts between `/a` and `/a/b`
    /// because `-` < `/`. Each parent's children are merged as two kinds of keys: a
    /// child's own name (the child itself) and its name followed by `/` (the block of
    /// all its descendants, which share that prefix); sorting those keys gives the
    /// exact byte order of the full paths without sorting the whole tree.
    pub fn for_each_sorted(&self, mut f: impl FnMut(&str, NodeRef<'_>)) {
        let mut walk = self.sorted_walk();
        while let Some(node) = walk.advance() {
            f(walk.path(), node);
        }
    }

    /// A pull-based [`DataTree::for_each_sorted`]: [`SortedWalk::advance`] moves to the
    /// next node in full-path byte order and [`SortedWalk::path`] is its path. Two
    /// walks over two trees merge into a diff without listing either tree.
    pub fn sorted_walk(&self) -> SortedWalk<'_> {
        SortedWalk { tree: self, path: String::new(), stack: Vec::new(), started: false }
    }

    /// Calls `f` with every difference between this tree (A) and `other` (B) that a
    /// client could see, in full-path byte order: nodes only in A, only in B, and nodes
    /// at the same path whose data, client stat or ACL differ. Paths for which `skip`
    /// is true are left out on both sides. The two trees are walked together (a merge
    /// of two [`DataTree::sorted_walk`]s): nothing is listed or copied, so memory stays
    /// O(depth + siblings) beyond the two trees. An `Err` from `f` stops the walk.
    pub fn diff_sorted<'t, E>(
        &'t self,
        other: &'t DataTree,
        skip: impl Fn(&str) -> bool,
        mut f: impl FnMut(&str, Change<'t>) -> Result<(), E>,
    ) -> Result<(), E> {
        let next = |w: &mut SortedWalk<'t>| loop {
            let n = w.advance()?;
            if !skip(w.path()) {
                return Some(n);
            }
        };
        let (mut wa, mut wb) = (self.sorted_walk(), other.sorted_walk());
        let (mut na, mut nb) = (next(&mut wa), next(&mut wb));
        loop {
            match (na, nb) {
                (None, None) => return Ok(()),
                (Some(a), None) => {
                    f(wa.path(), Change::Removed(a))?;
                    na = next(&mut wa);
                }
                (None, Some(b)) => {
                    f(wb.path(), Change::Added(b))?;
                    nb = next(&mut wb);
                }
                (Some(a), Some(b)) => match wa.path().as_bytes().cmp(wb.path().as_bytes()) {
                    Ordering::Less => {
                        f(wa.path(), Change::Removed(a))?;
                        na = next(&mut wa);
                    }
                    Ordering::Greater => {
                        f(wb.path(), Change::Added(b))?;
                        nb = next(&mut wb);
                    }
                    Ordering::Equal => {
                        let same =
                            a.data() == b.data() && a.stat() == b.stat() && a.acl() == b.acl();
                        if !same {
                            f(wa.path(), Change::Changed(a, b))?;
                        }
                        na = next(&mut wa);
                        nb = next(&mut wb);
                    }
                },
            }
        }
    }

    /// Pushes the steps for `parent`'s children (path length `len`) so that they pop
    /// in full-path byte order.
    pub(crate) fn push_sorted_steps<'a>(
        &'a self,
        parent: NodeId,
        len: usize,
        stack: &mut Vec<Step<'a>>,
    ) {
        if let Some(set) = self.children.get(&parent) {
            push_sorted_steps_of(set, |c| self.children.contains_key(&c), len, stack);
        }
    }

    /// Recomputes the digest from every node's path, data and stat (O(n)); equals
    /// [`DataTree::digest`] unless something is broken.
    pub fn compute_digest(&self) -> u64 {
        let mut sum = 0u64;
        self.for_each_preorder(|p, n| {
            sum = sum.wrapping_add(u64::from(contribution(digest_path(p), n.node)));
        });
        sum
    }

    /// Checks every internal invariant in O(n log n): children sets sorted and holding
    /// live nodes only, node count and free list, the running digest,
    /// the running Keeper digest (when enabled), ACL reference counts, the ephemeral
    /// index, and (when `zookeeper_cversion`) the
    /// client cversion relation `cversion == 2 * seq - numChildren` of ZooKeeper-loaded
    /// trees. Returns the first violation found.
    pub fn check_consistency(&self, zookeeper_cversion: bool) -> Result<(), String> {
        let mut count = 0usize;
        let mut sum = 0u64;
        let mut acl_refs: BTreeMap<u32, u64> = BTreeMap::new();
        let mut ephemerals = Vec::new();
        let mut err = None;
        self.for_each_preorder(|p, n| {
            if err.is_some() {
                return;
            }
            count += 1;
            let node = n.node;
            if node.is_free() {
                err = Some(format!("{p}: reachable free slot {}", n.id));
            }
            let term = contribution(digest_path(p), node);
            if term != 0 && term != node_crc(digest_path(p), node) {
                err = Some(format!("{p}: digest term is not its CRC"));
            }
            sum = sum.wrapping_add(u64::from(term));
            *acl_refs.entry(node.acl()).or_default() += 1;
            if let Some(s) = session_owner(node.f.owner) {
                ephemerals.push((s, p.to_owned()));
            }
            if zookeeper_cversion
                && node.f.cversion != client_cversion(node.f.seq, n.num_children())
            {
                err = Some(format!("{p}: cversion {} but seq {}", node.f.cversion, node.f.seq));
            }
            if let Some(set) = self.children.get(&n.id) {
                if set.len() == 0 {
                    err = Some(format!("{p}: empty children entry"));
                }
                let mut prev: Option<&[u8]> = None;
                for (c, name) in set.entries() {
                    let child = &self.nodes[c as usize];
                    if child.is_free() {
                        err = Some(format!("{p}: child {c} is a free slot"));
                    }
                    if prev.is_some_and(|q| q >= name) {
                        err = Some(format!("{p}: children out of order"));
                    }
                    prev = Some(name);
                }
            }
        });
        if let Some(e) = err {
            return Err(e);
        }
        if count != self.live {
            return Err(format!("{count} reachable nodes, live count {}", self.live));
        }
        if self.children.len() > count {
            return Err("children entries for unreachable nodes".into());
        }
        if sum != self.digest {
            return Err(format!("running digest {:#x}, recomputed {sum:#x}", self.digest));
        }
        if let Some(kd) = self.kd {
            let full = self.compute_keeper_digest(kd.version);
            if full != kd.value {
                return Err(format!("running Keeper digest {:#x}, recomputed {full:#x}", kd.value));
            }
        }
        let usage: BTreeMap<u32, u64> = self.acls.usage().into_iter().collect();
        if usage != acl_refs {
            return Err(format!("ACL usage {usage:?}, counted {acl_refs:?}"));
        }
        ephemerals.sort_unstable();
        let indexed: Vec<(i64, String)> = self.ephemerals.iter().cloned().collect();
        if indexed != ephemerals {
            return Err(format!("ephemeral index {indexed:?}, nodes {ephemerals:?}"));
        }
        let mut free = 0usize;
        let mut cur = self.free_head;
        while cur != NO_NODE {
            let slot = &self.nodes[cur as usize];
            if !slot.is_free() || free > self.nodes.len() {
                return Err("free list broken".into());
            }
            free += 1;
            cur = slot.next_free();
        }
        if free + self.live != self.nodes.len() {
            return Err(format!("{free} free + {} live != {} slots", self.live, self.nodes.len()));
        }
        Ok(())
    }
}

/// Pushes the steps for the children in `set` (their parent's path has length `len`)
/// so that they pop in full-path byte order; `has_children` says which children have
/// descendants.
pub(crate) fn push_sorted_steps_of<'a>(
    set: &'a ChildSet,
    has_children: impl Fn(NodeId) -> bool,
    len: usize,
    stack: &mut Vec<Step<'a>>,
) {
    // Children with descendants, ordered by `name + "/"` (not always name order:
    // "a-/" < "a/").
    let mut expand: Vec<(NodeId, &[u8])> =
        set.entries().filter(|&(c, _)| has_children(c)).collect();
    expand.sort_by(|a, b| cmp_with_slash(a.1, b.1));
    let start = stack.len();
    let mut pending = expand.into_iter().peekable();
    for (c, name) in set.entries() {
        while let Some(&(e, ename)) = pending.peek() {
            if cmp_to_slashed(name, ename) == Ordering::Greater {
                stack.push(Step::Expand(e, ename, len));
                pending.next();
            } else {
                break;
            }
        }
        stack.push(Step::Visit(c, name, len));
    }
    stack.extend(pending.map(|(e, ename)| Step::Expand(e, ename, len)));
    stack[start..].reverse();
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use keeperkit_model::{Acl, Perms, StatPersisted};

    use super::*;

    fn tree(nodes: &[(&str, Option<&[u8]>, i32)], acl: &[Acl]) -> DataTree {
        let mut t = DataTree::new();
        for (i, (p, d, v)) in nodes.iter().enumerate() {
            let z = i as i64 + 1;
            let stat = StatPersisted { czxid: z, mzxid: z, version: *v, ..Default::default() };
            t.insert_loaded(p, *d, acl, stat).unwrap();
        }
        t
    }

    /// (path, data, client stat, ACL) of every node, in path byte order.
    type Listed = Vec<(String, Option<Vec<u8>>, keeperkit_model::Stat, Vec<Acl>)>;

    fn listed(t: &DataTree, skip: &dyn Fn(&str) -> bool) -> Listed {
        let mut v = Vec::new();
        t.for_each_sorted(|p, n| {
            if !skip(p) {
                v.push((p.to_owned(), n.data().map(<[u8]>::to_vec), n.stat(), n.acl().to_vec()));
            }
        });
        v
    }

    /// The diff of two full listings, merged by path.
    fn naive(a: &Listed, b: &Listed) -> Vec<(String, char)> {
        let (mut i, mut j, mut out) = (0, 0, Vec::new());
        while i < a.len() || j < b.len() {
            let ord = match (a.get(i), b.get(j)) {
                (Some(x), Some(y)) => x.0.as_bytes().cmp(y.0.as_bytes()),
                (Some(_), None) => Ordering::Less,
                _ => Ordering::Greater,
            };
            match ord {
                Ordering::Less => {
                    out.push((a[i].0.clone(), '-'));
                    i += 1;
                }
                Ordering::Greater => {
                    out.push((b[j].0.clone(), '+'));
                    j += 1;
                }
                Ordering::Equal => {
                    if a[i] != b[j] {
                        out.push((a[i].0.clone(), '~'));
                    }
                    i += 1;
                    j += 1;
                }
            }
        }
        out
    }

    #[test]
    fn diff_walks_both_trees_in_path_order() {
        let open = Acl::open_unsafe();
        let a = tree(
            &[
                ("/a", Some(b"x"), 0),
                ("/a/b", None, 0),
                ("/a-b", Some(b""), 0),
                ("/c", Some(b"same"), 2),
                ("/d", Some(b"1"), 0),
                ("/d/e", Some(b"1"), 0),
                ("/zookeeper/quota/q", None, 0),
            ],
            &open,
        );
        let mut b = tree(
            &[
                ("/a", Some(b"y"), 1),
                ("/a-b", None, 0),
                ("/a0", Some(b""), 0),
                ("/c", Some(b"same"), 2),
                ("/d", Some(b"1"), 0),
                ("/d/f", Some(b"1"), 0),
            ],
            &open,
        );
        let read_only = [Acl { perms: Perms::READ, ..open[0].clone() }];
        b.insert_loaded("/g", None, &read_only, StatPersisted::default()).unwrap();
        let quota = |p: &str| p.starts_with("/zookeeper/quota/");
        let none = |_: &str| false;
        for skip in [&quota as &dyn Fn(&str) -> bool, &none] {
            let mut got = Vec::new();
            a.diff_sorted(&b, skip, |p, c| -> Result<(), ()> {
                got.push((
                    p.to_owned(),
                    match c {
                        Change::Removed(_) => '-',
                        Change::Added(_) => '+',
                        Change::Changed(..) => '~',
                    },
                ));
                Ok(())
            })
            .unwrap();
            assert_eq!(got, naive(&listed(&a, skip), &listed(&b, skip)));
            for kind in ['-', '+', '~'] {
                assert!(got.iter().any(|(_, k)| *k == kind), "{got:?}");
            }
        }
        // A tree against its own clone, and an early stop.
        a.diff_sorted(&a.clone(), none, |p, _| Err(p.to_owned())).unwrap();
        // The roots differ (their children).
        assert_eq!(a.diff_sorted(&b, none, |p, _| Err(p.to_owned())), Err("/".to_owned()));
    }
}
