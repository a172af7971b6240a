//! Whole-tree walks on several threads whose results come back in the order of the
//! one-thread walks ([`DataTree::for_each_sorted`], [`DataTree::for_each_preorder`]).
//!
//! The walk is cut into parts before it starts: a part is a run of consecutive steps
//! under one parent (a node alone, or the block of all its descendants), so the parts,
//! taken in order, give exactly the one-thread walk. Parts are cut level by level
//! (every block of descendants becomes a part of its own) until there are enough to
//! keep every thread busy, then long runs are cut into pieces of at most
//! [`PART_STEPS_MAX`] steps. Workers take parts in order; the caller's thread receives
//! their results in order, with at most a few parts per thread waiting, so memory is
//! bounded by the size of those results, not by the tree.

use std::collections::BTreeMap;
use std::sync::{Condvar, Mutex};

use crate::children::ChildSet;
use crate::iter::{push_sorted_steps_of, Step};
use crate::node::{Node, NodeId, NO_NODE};
use crate::tree::{name_str, DataTree, Kids, NodeRef};

/// Longest run of steps one part holds: a parent with a million children is cut into
/// pieces a worker renders in a few milliseconds.
pub const PART_STEPS_MAX: usize = 4096;

/// Parts wanted per thread before cutting stops; more parts balance uneven subtrees.
const PARTS_PER_THREAD: usize = 64;

/// Levels cut at most: past this the tree is a chain, and parts would not balance it.
const LEVELS_MAX: usize = 32;

/// Results computed ahead of the one the caller waits for, per thread.
const AHEAD_PER_THREAD: usize = 4;

/// How far ahead of the node it visits a walk asks the cache for what it will read:
/// the index slot of the node [`PREFETCH_SLOT`] steps ahead, the node itself of the one
/// [`PREFETCH_NODE`] ahead (its slot has arrived by then), and the blob (ACL id and
/// data) of the one [`PREFETCH_BLOB`] ahead (its node has arrived). Nodes sit where the
/// recovery allocated them, in no relation to path order, so without this every step
/// waits for three dependent cache misses in turn; with it those of several steps are
/// in flight at once.
const PREFETCH_SLOT: usize = 12;
/// See [`PREFETCH_SLOT`].
const PREFETCH_NODE: usize = 6;
/// See [`PREFETCH_SLOT`].
const PREFETCH_BLOB: usize = 3;

/// Asks the cache for the line at `p`. A hint only: it reads nothing the program sees
/// and never faults, whatever the address (on other targets it does nothing).
#[inline(always)]
#[cfg_attr(
    target_arch = "x86_64",
    expect(unsafe_code, reason = "the prefetch intrinsic is unsafe; see the SAFETY comment")
)]
fn prefetch<T>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: PREFETCHT0 has no architectural effect: it cannot fault, even on an
    // invalid address, and changes no memory or register the program reads.
    unsafe {
        core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(p.cast::<i8>());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// A part of the walk in full-path byte order; see [`DataTree::par_sorted`].
pub struct SortedPart<'t> {
    flat: &'t Flat<'t>,
    /// The parent's path ("" for the root's children).
    prefix: String,
    span: SortedSpan<'t>,
}

/// What a [`SortedPart`] holds under its parent.
enum SortedSpan<'t> {
    /// The root alone.
    Root,
    /// Every descendant of the parent (its steps are listed by the worker).
    Below(NodeId),
    /// These consecutive steps under the parent.
    Steps(Vec<Step<'t>>),
}

impl<'t> SortedPart<'t> {
    /// Calls `f` for each node of the part, in full-path byte order, with its path.
    pub fn for_each(&self, mut f: impl FnMut(&str, NodeRef<'t>)) {
        let flat = self.flat;
        let mut path = self.prefix.clone();
        let mut stack: Vec<Step<'t>> = match &self.span {
            SortedSpan::Root => {
                f("/", flat.node_ref(flat.tree.root));
                return;
            }
            SortedSpan::Below(id) => {
                let mut stack = Vec::new();
                flat.push_sorted_steps(*id, path.len(), &mut stack);
                stack
            }
            SortedSpan::Steps(steps) => steps.iter().rev().copied().collect(),
        };
        while let Some(step) = stack.pop() {
            flat.prefetch_ahead(stack.len(), |back| stack[back].id());
            let (id, name, parent_len) = match step {
                Step::Visit(id, n, l) | Step::Expand(id, n, l) => (id, n, l),
            };
            path.truncate(parent_len);
            path.push('/');
            path.push_str(name_str(name));
            match step {
                Step::Visit(..) => f(&path, flat.node_ref(id)),
                Step::Expand(..) => flat.push_sorted_steps(id, path.len(), &mut stack),
            }
        }
    }
}

/// What a part of the pre-order walk holds; see [`DataTree::par_preorder`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PreorderKind<'p> {
    /// One node alone (its descendants are in later parts): its path and depth.
    Node(&'p str, usize),
    /// Whole subtrees of consecutive children of one parent: the parent's path (`/`
    /// for the root) and depth. Every node of those subtrees is in this part.
    Subtrees(&'p str, usize),
}

/// A part of the pre-order walk; see [`DataTree::par_preorder`].
pub struct PreorderPart<'t> {
    flat: &'t Flat<'t>,
    /// The node's path (alone) or the parent's path (subtrees), "" for the root.
    path: String,
    depth: usize,
    /// The node (alone) or the parent (subtrees).
    id: NodeId,
    /// `None`: the node alone; else the parent's children `start..end`, in name
    /// order, each with its whole subtree.
    children: Option<(usize, usize)>,
}

impl<'t> PreorderPart<'t> {
    /// What the part holds.
    pub fn kind(&self) -> PreorderKind<'_> {
        let shown = if self.path.is_empty() { "/" } else { &self.path };
        match self.children {
            None => PreorderKind::Node(shown, self.depth),
            Some(_) => PreorderKind::Subtrees(shown, self.depth),
        }
    }

    /// Calls `f` for each node of the part in pre-order, with its path and depth (the
    /// root's is 0).
    pub fn for_each(&self, mut f: impl FnMut(&str, usize, NodeRef<'t>)) {
        let flat = self.flat;
        let Some((start, end)) = self.children else {
            let shown = if self.path.is_empty() { "/" } else { &self.path };
            f(shown, self.depth, flat.node_ref(self.id));
            return;
        };
        let mut path = self.path.clone();
        // (node, name, length of the parent's path, depth)
        let mut stack: Vec<(NodeId, &[u8], usize, usize)> = Vec::new();
        if let Some(set) = flat.kids(self.id) {
            let (len, depth) = (path.len(), self.depth + 1);
            stack
                .extend(set.entries_from(start).take(end - start).map(|(c, n)| (c, n, len, depth)));
            stack.reverse();
        }
        while let Some((id, name, parent_len, depth)) = stack.pop() {
            flat.prefetch_ahead(stack.len(), |back| stack[back].0);
            path.truncate(parent_len);
            path.push('/');
            path.push_str(name_str(name));
            let node = flat.node_ref(id);
            f(&path, depth, node);
            if let Kids::Known(Some(set)) = node.kids {
                let len = path.len();
                stack.extend(set.entries().rev().map(|(c, n)| (c, n, len, depth + 1)));
            }
        }
    }
}

/// Every node slot and every child set by node id, for the length of one parallel
/// walk: a step of the walk then reads its node and its children in one load each,
/// where the tree itself needs a descent of the persistent node vector and a lookup in
/// the children map (several dependent cache misses per node). Building it is one
/// sequential pass over each (16 bytes per node slot).
pub(crate) struct Flat<'t> {
    tree: &'t DataTree,
    slots: Vec<FlatSlot<'t>>,
}

#[derive(Clone, Copy)]
struct FlatSlot<'t> {
    node: &'t Node,
    kids: Option<&'t ChildSet>,
}

impl<'t> Flat<'t> {
    fn new(tree: &'t DataTree) -> Flat<'t> {
        let mut slots: Vec<FlatSlot<'t>> =
            tree.nodes.iter().map(|node| FlatSlot { node, kids: None }).collect();
        for (&id, set) in &tree.children {
            // The children map holds live node ids only (check_consistency checks it).
            slots[id as usize].kids = Some(set);
        }
        Flat { tree, slots }
    }

    #[inline]
    fn node_ref(&self, id: NodeId) -> NodeRef<'t> {
        let s = self.slots[id as usize];
        NodeRef { tree: self.tree, id, node: s.node, kids: Kids::Known(s.kids) }
    }

    #[inline]
    fn kids(&self, id: NodeId) -> Option<&'t ChildSet> {
        self.slots[id as usize].kids
    }

    #[inline]
    fn has_kids(&self, id: NodeId) -> bool {
        self.slots[id as usize].kids.is_some()
    }

    /// Prefetches, for a walk whose next steps are at the top of a stack of `len`
    /// entries (`id_at(i)`: the node of entry `i`), what the steps [`PREFETCH_SLOT`],
    /// [`PREFETCH_NODE`] and [`PREFETCH_BLOB`] ahead will read.
    #[inline(always)]
    fn prefetch_ahead(&self, len: usize, id_at: impl Fn(usize) -> NodeId) {
        if let Some(i) = len.checked_sub(PREFETCH_SLOT) {
            if let Some(slot) = self.slots.get(id_at(i) as usize) {
                prefetch(slot);
            }
        }
        if let Some(i) = len.checked_sub(PREFETCH_NODE) {
            if let Some(slot) = self.slots.get(id_at(i) as usize) {
                // A node spans two cache lines.
                let node: *const Node = slot.node;
                prefetch(node);
                prefetch(node.cast::<u8>().wrapping_add(64));
                if let Some(kids) = slot.kids {
                    prefetch(kids);
                }
            }
        }
        if let Some(i) = len.checked_sub(PREFETCH_BLOB) {
            if let Some(slot) = self.slots.get(id_at(i) as usize) {
                prefetch(slot.node.blob.heap_ptr());
            }
        }
    }

    fn num_children(&self, id: NodeId) -> usize {
        self.kids(id).map_or(0, ChildSet::len)
    }

    fn push_sorted_steps(&self, parent: NodeId, len: usize, stack: &mut Vec<Step<'t>>) {
        if let Some(set) = self.kids(parent) {
            push_sorted_steps_of(set, |c| self.has_kids(c), len, stack);
        }
    }

    /// Cuts the sorted walk into at least `want` parts where the tree allows. Steps
    /// are listed only for the nodes cut through (a part of all of a node's
    /// descendants is listed by the worker that walks it).
    fn sorted_parts(&self, want: usize) -> Vec<SortedPart<'_>> {
        let root = self.tree.root;
        if root == NO_NODE {
            return Vec::new();
        }
        let part = |prefix: String, span| SortedPart { flat: self, prefix, span };
        let cut = |prefix, id, out: &mut Vec<_>| self.cut_sorted(prefix, id, out);
        let mut parts = vec![part(String::new(), SortedSpan::Root)];
        if self.has_kids(root) {
            parts.push(part(String::new(), SortedSpan::Below(root)));
        }
        for _ in 0..LEVELS_MAX {
            let below = parts.iter().filter(|p| matches!(p.span, SortedSpan::Below(_))).count();
            if below == 0 || parts.len() >= want {
                break;
            }
            let mut next = Vec::with_capacity(parts.len() + 2 * below);
            for p in parts {
                match p.span {
                    SortedSpan::Below(id) => cut(p.prefix, id, &mut next),
                    _ => next.push(p),
                }
            }
            parts = next;
        }
        // A node with more children than a part holds is cut however many parts there
        // are: one worker would walk all of them alone.
        let mut out = Vec::with_capacity(parts.len());
        for p in parts {
            match p.span {
                SortedSpan::Below(id) if self.num_children(id) > PART_STEPS_MAX => {
                    cut(p.prefix, id, &mut out);
                }
                _ => out.push(p),
            }
        }
        out
    }

    /// Cuts a part of all of node `id`'s descendants (`prefix` is its path) into runs
    /// of its children's steps and parts of all of a child's descendants.
    fn cut_sorted<'a>(&'a self, prefix: String, id: NodeId, out: &mut Vec<SortedPart<'a>>) {
        let part = |prefix: String, span| SortedPart { flat: self, prefix, span };
        let mut run = Vec::new();
        let mut steps = Vec::new();
        self.push_sorted_steps(id, prefix.len(), &mut steps);
        for step in steps.into_iter().rev() {
            let Step::Expand(c, name, _) = step else {
                run.push(step);
                if run.len() == PART_STEPS_MAX {
                    out.push(part(prefix.clone(), SortedSpan::Steps(std::mem::take(&mut run))));
                }
                continue;
            };
            if !run.is_empty() {
                out.push(part(prefix.clone(), SortedSpan::Steps(std::mem::take(&mut run))));
            }
            let mut child = prefix.clone();
            child.push('/');
            child.push_str(name_str(name));
            out.push(part(child, SortedSpan::Below(c)));
        }
        if !run.is_empty() {
            out.push(part(prefix, SortedSpan::Steps(run)));
        }
    }

    /// Cuts the pre-order walk into at least `want` parts where the tree allows,
    /// without listing any node's children.
    fn preorder_parts(&self, want: usize) -> Vec<PreorderPart<'_>> {
        let root = self.tree.root;
        if root == NO_NODE {
            return Vec::new();
        }
        let part = |path: String, depth, id, children| PreorderPart {
            flat: self,
            path,
            depth,
            id,
            children,
        };
        let all = |id| Some((0, self.num_children(id)));
        let mut parts = vec![part(String::new(), 0, root, None)];
        if self.has_kids(root) {
            parts.push(part(String::new(), 0, root, all(root)));
        }
        for _ in 0..LEVELS_MAX {
            let deep = parts.iter().filter(|p| p.children.is_some()).count();
            if deep == 0 || parts.len() >= want {
                break;
            }
            let mut next = Vec::with_capacity(parts.len() + 2 * deep);
            for p in parts {
                let (Some((start, end)), Some(set)) = (p.children, self.kids(p.id)) else {
                    next.push(p);
                    continue;
                };
                let mut run = start;
                for (i, (c, name)) in (start..end).zip(set.entries_from(start)) {
                    if !self.has_kids(c) {
                        continue;
                    }
                    if run < i {
                        next.push(part(p.path.clone(), p.depth, p.id, Some((run, i))));
                    }
                    run = i + 1;
                    let mut path = p.path.clone();
                    path.push('/');
                    path.push_str(name_str(name));
                    next.push(part(path.clone(), p.depth + 1, c, None));
                    next.push(part(path, p.depth + 1, c, all(c)));
                }
                if run < end {
                    next.push(part(p.path, p.depth, p.id, Some((run, end))));
                }
            }
            parts = next;
        }
        let mut out = Vec::with_capacity(parts.len());
        for p in parts {
            match p.children {
                Some((start, end)) if end - start > PART_STEPS_MAX => {
                    for s in (start..end).step_by(PART_STEPS_MAX) {
                        let e = (s + PART_STEPS_MAX).min(end);
                        out.push(part(p.path.clone(), p.depth, p.id, Some((s, e))));
                    }
                }
                _ => out.push(p),
            }
        }
        out
    }
}

impl DataTree {
    /// The full-path byte order walk ([`DataTree::for_each_sorted`]) on `threads`
    /// threads: `work` runs on worker threads, once per part, and `sink` receives its
    /// results on the calling thread in walk order. Concatenating what `work` sees of
    /// each part, in the order `sink` receives them, is exactly the one-thread walk.
    /// An `Err` from `sink` stops the walk and is returned.
    ///
    /// While it runs, the walk holds an index of every node slot and child set (16
    /// bytes per node slot), so that a step costs a load, not a search.
    pub fn par_sorted<R: Send, E>(
        &self,
        threads: usize,
        work: impl Fn(&SortedPart<'_>) -> R + Sync,
        sink: impl FnMut(R) -> Result<(), E>,
    ) -> Result<(), E> {
        let flat = Flat::new(self);
        let parts = flat.sorted_parts(threads.max(1) * PARTS_PER_THREAD);
        run_in_order(&parts, threads, work, sink)
    }

    /// The pre-order walk ([`DataTree::for_each_preorder`]) on `threads` threads, as
    /// [`DataTree::par_sorted`] does it for the sorted walk. A part is one node alone
    /// or whole subtrees of consecutive siblings ([`PreorderKind`]), so results that
    /// sum over subtrees can be merged in order.
    pub fn par_preorder<R: Send, E>(
        &self,
        threads: usize,
        work: impl Fn(&PreorderPart<'_>) -> R + Sync,
        sink: impl FnMut(R) -> Result<(), E>,
    ) -> Result<(), E> {
        let flat = Flat::new(self);
        let parts = flat.preorder_parts(threads.max(1) * PARTS_PER_THREAD);
        run_in_order(&parts, threads, work, sink)
    }
}

/// What the workers and the caller's thread share.
struct Queue<R> {
    /// The next part a worker takes.
    next: usize,
    /// Parts the caller has taken the result of.
    taken: usize,
    /// Results not yet taken, by part index.
    done: BTreeMap<usize, R>,
    /// Set when the caller stops early or a worker panicked.
    stop: bool,
}

/// Sets `stop` if a worker unwinds, so the caller does not wait for its result forever
/// (the scope then re-raises the panic).
struct StopOnPanic<'a, R>(&'a (Mutex<Queue<R>>, Condvar));

impl<R> Drop for StopOnPanic<'_, R> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            if let Ok(mut q) = self.0 .0.lock() {
                q.stop = true;
            }
            self.0 .1.notify_all();
        }
    }
}

fn lock<R>(m: &Mutex<Queue<R>>) -> std::sync::MutexGuard<'_, Queue<R>> {
    // A worker that panicked while holding the lock left consistent data (every
    // update is a single insert or counter store), and the scope re-raises its panic.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Runs `work` over `parts` on `threads` threads and feeds the results to `sink` in
/// part order on the calling thread.
fn run_in_order<P: Sync, R: Send, E>(
    parts: &[P],
    threads: usize,
    work: impl Fn(&P) -> R + Sync,
    mut sink: impl FnMut(R) -> Result<(), E>,
) -> Result<(), E> {
    if threads <= 1 || parts.len() <= 1 {
        return parts.iter().try_for_each(|p| sink(work(p)));
    }
    let ahead = threads * AHEAD_PER_THREAD;
    let shared = (
        Mutex::new(Queue { next: 0, taken: 0, done: BTreeMap::new(), stop: false }),
        Condvar::new(),
    );
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                let _guard = StopOnPanic(&shared);
                loop {
                    let i = {
                        let mut q = lock(&shared.0);
                        while !q.stop && q.next < parts.len() && q.next >= q.taken + ahead {
                            q = shared.1.wait(q).unwrap_or_else(std::sync::PoisonError::into_inner);
                        }
                        if q.stop || q.next >= parts.len() {
                            return;
                        }
                        q.next += 1;
                        q.next - 1
                    };
                    let r = work(&parts[i]);
                    lock(&shared.0).done.insert(i, r);
                    shared.1.notify_all();
                }
            });
        }
        let mut result = Ok(());
        for i in 0..parts.len() {
            let r = {
                let mut q = lock(&shared.0);
                loop {
                    if let Some(r) = q.done.remove(&i) {
                        q.taken = i + 1;
                        break Some(r);
                    }
                    if q.stop {
                        break None;
                    }
                    q = shared.1.wait(q).unwrap_or_else(std::sync::PoisonError::into_inner);
                }
            };
            shared.1.notify_all();
            let Some(r) = r else { break };
            if let Err(e) = sink(r) {
                result = Err(e);
                break;
            }
        }
        lock(&shared.0).stop = true;
        shared.1.notify_all();
        result
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use keeperkit_model::{Acl, Stat, StatPersisted};

    use super::*;

    /// A tree with the shapes that stress cutting: a wide parent, a chain, names that
    /// sort between a node and its children (`a-b` < `a/…`), leaves at the root.
    fn tree(wide: usize) -> DataTree {
        let mut t = DataTree::new();
        let acl = Acl::open_unsafe();
        let mut add = |p: &str| {
            t.insert_loaded(p, Some(p.as_bytes()), &acl, StatPersisted::default()).unwrap();
        };
        for p in ["/a", "/a-b", "/a/x", "/a/x/y", "/a-b/c", "/b", "/zz"] {
            add(p);
        }
        add("/wide");
        for i in 0..wide {
            add(&format!("/wide/n{i:05}"));
            if i % 97 == 0 {
                add(&format!("/wide/n{i:05}/k"));
                add(&format!("/wide/n{i:05}-x"));
            }
        }
        let mut chain = String::from("/chain");
        for i in 0..50 {
            add(&chain);
            chain.push_str(&format!("/c{i}"));
        }
        t
    }

    /// Paths with the client stat (its child count comes from the walk's own index in
    /// the parallel walks).
    fn sorted_one(t: &DataTree) -> Vec<(String, Stat)> {
        let mut v = Vec::new();
        t.for_each_sorted(|p, n| v.push((p.to_owned(), n.stat())));
        v
    }

    fn preorder_one(t: &DataTree) -> Vec<(String, usize, Stat)> {
        let mut v = Vec::new();
        t.for_each_preorder(|p, n| {
            v.push((p.to_owned(), keeperkit_model::path::depth(p), n.stat()));
        });
        v
    }

    #[test]
    fn parallel_walks_give_the_one_thread_order() {
        for wide in [0, 3, 5000, 9000] {
            let t = tree(wide);
            let want = sorted_one(&t);
            let want_pre = preorder_one(&t);
            for threads in [1, 2, 3, 8] {
                let mut got = Vec::new();
                t.par_sorted::<_, ()>(
                    threads,
                    |part| {
                        let mut v = Vec::new();
                        part.for_each(|p, n| {
                            if p != "/" && !p.starts_with("/zookeeper") {
                                assert_eq!(n.data(), Some(p.as_bytes()));
                            }
                            v.push((p.to_owned(), n.stat()));
                        });
                        v
                    },
                    |v| {
                        got.extend(v);
                        Ok(())
                    },
                )
                .unwrap();
                assert_eq!(got, want, "sorted, {wide} wide, {threads} threads");
                let mut got = Vec::new();
                t.par_preorder::<_, ()>(
                    threads,
                    |part| {
                        let mut v = Vec::new();
                        part.for_each(|p, d, n| v.push((p.to_owned(), d, n.stat())));
                        (part.kind().clone_owned(), v)
                    },
                    |(kind, v)| {
                        match kind {
                            (true, path, depth) => {
                                assert_eq!(v.len(), 1);
                                assert_eq!((&v[0].0, v[0].1), (&path, depth));
                            }
                            (false, parent, depth) => {
                                // Every node of the part is below its parent.
                                for (p, d, _) in &v {
                                    assert!(*d > depth);
                                    assert!(parent == "/" || p.starts_with(&format!("{parent}/")));
                                }
                            }
                        }
                        got.extend(v);
                        Ok(())
                    },
                )
                .unwrap();
                assert_eq!(got, want_pre, "preorder, {wide} wide, {threads} threads");
            }
        }
    }

    impl PreorderKind<'_> {
        fn clone_owned(self) -> (bool, String, usize) {
            match self {
                PreorderKind::Node(p, d) => (true, p.to_owned(), d),
                PreorderKind::Subtrees(p, d) => (false, p.to_owned(), d),
            }
        }
    }

    #[test]
    fn wide_parents_are_cut_into_bounded_parts() {
        let t = tree(3 * PART_STEPS_MAX + 5);
        // Cutting goes down to /wide, whose children are more than a part may hold.
        for want in [2, 64, 1000] {
            let flat = Flat::new(&t);
            let parts = flat.sorted_parts(want);
            let steps = |p: &SortedPart<'_>| match &p.span {
                SortedSpan::Steps(s) => s.len(),
                SortedSpan::Below(id) => t.num_children(*id),
                SortedSpan::Root => 1,
            };
            assert!(parts.iter().all(|p| steps(p) <= PART_STEPS_MAX), "want {want}");
            if want >= 64 {
                // A part of all of /wide's descendants is cut however many parts there are.
                assert!(parts.iter().filter(|p| p.prefix == "/wide").count() >= 4, "want {want}");
            }
            let parts = flat.preorder_parts(want);
            let children = |p: &PreorderPart<'_>| p.children.map_or(0, |(s, e)| e - s);
            assert!(parts.iter().all(|p| children(p) <= PART_STEPS_MAX), "want {want}");
        }
        let flat = Flat::new(&t);
        let parts = flat.preorder_parts(1000);
        assert!(parts.iter().filter(|p| p.path == "/wide" && p.children.is_some()).count() >= 4);
    }

    #[test]
    fn an_error_from_the_sink_stops_the_walk() {
        let t = tree(20_000);
        let mut seen = 0usize;
        let r = t.par_sorted(
            2,
            |part| {
                let mut n = 0usize;
                part.for_each(|_, _| n += 1);
                n
            },
            |n| {
                seen += 1;
                if seen == 3 {
                    return Err(n);
                }
                Ok(())
            },
        );
        assert!(r.is_err());
        assert_eq!(seen, 3);
    }

    #[test]
    fn empty_tree_has_no_parts() {
        let t = DataTree::empty();
        let mut calls = 0;
        t.par_sorted::<_, ()>(
            2,
            |_| (),
            |()| {
                calls += 1;
                Ok(())
            },
        )
        .unwrap();
        t.par_preorder::<_, ()>(
            2,
            |_| (),
            |()| {
                calls += 1;
                Ok(())
            },
        )
        .unwrap();
        assert_eq!(calls, 0);
    }
}
