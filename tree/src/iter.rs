//! Whole-tree traversals: pre-order (parents first, for snapshot writers) and sorted
//! by full path bytes (for dumps and diffs); full digest recomputation; a consistency
//! check. All iterative: depth is bounded only by `TREE_DEPTH_MAX`.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use crate::children::{cmp_to_slashed, cmp_with_slash};
use crate::digest::{contribution, digest_path, node_crc};
use crate::node::{NodeId, NO_NODE};
use crate::tree::{client_cversion, name_str, session_owner, DataTree, NodeRef};

/// A pending step of the sorted walk.
enum Step {
    /// Report this node.
    Visit(NodeId, usize),
    /// Expand this node's children (all its descendants sort here, as a block).
    Expand(NodeId, usize),
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
        let mut stack: Vec<(NodeId, usize)> = Vec::new();
        if let Some(set) = self.children.get(&self.root) {
            stack.extend(set.iter().rev().map(|c| (c, 0)));
        }
        while let Some((id, parent_len)) = stack.pop() {
            let node = &self.nodes[id as usize];
            path.truncate(parent_len);
            path.push('/');
            path.push_str(name_str(node));
            f(&path, self.node_ref(id));
            if let Some(set) = self.children.get(&id) {
                let len = path.len();
                stack.extend(set.iter().rev().map(|c| (c, len)));
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
        if self.root == NO_NODE {
            return;
        }
        f("/", self.node_ref(self.root));
        let mut path = String::new();
        let mut stack: Vec<Step> = Vec::new();
        self.push_sorted_steps(self.root, 0, &mut stack);
        while let Some(step) = stack.pop() {
            let (id, parent_len) = match step {
                Step::Visit(id, l) | Step::Expand(id, l) => (id, l),
            };
            path.truncate(parent_len);
            path.push('/');
            path.push_str(name_str(&self.nodes[id as usize]));
            match step {
                Step::Visit(..) => f(&path, self.node_ref(id)),
                Step::Expand(..) => self.push_sorted_steps(id, path.len(), &mut stack),
            }
        }
    }

    /// Pushes the steps for `parent`'s children (path length `len`) so that they pop
    /// in full-path byte order.
    fn push_sorted_steps(&self, parent: NodeId, len: usize, stack: &mut Vec<Step>) {
        let Some(set) = self.children.get(&parent) else { return };
        let name = |id: NodeId| self.nodes[id as usize].name();
        // Children with descendants, ordered by `name + "/"` (not always name order:
        // "a-/" < "a/").
        let mut expand: Vec<NodeId> =
            set.iter().filter(|c| self.children.contains_key(c)).collect();
        expand.sort_by(|&a, &b| cmp_with_slash(name(a), name(b)));
        let start = stack.len();
        let mut pending = expand.into_iter().peekable();
        for c in set.iter() {
            while let Some(&e) = pending.peek() {
                if cmp_to_slashed(name(c), name(e)) == Ordering::Greater {
                    stack.push(Step::Expand(e, len));
                    pending.next();
                } else {
                    break;
                }
            }
            stack.push(Step::Visit(c, len));
        }
        stack.extend(pending.map(|e| Step::Expand(e, len)));
        stack[start..].reverse();
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
                for c in set.iter() {
                    let child = &self.nodes[c as usize];
                    if child.is_free() {
                        err = Some(format!("{p}: child {c} is a free slot"));
                    }
                    if prev.is_some_and(|q| q >= child.name()) {
                        err = Some(format!("{p}: children out of order"));
                    }
                    prev = Some(child.name());
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
