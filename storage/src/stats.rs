//! Statistics of a tree, in one pass: node, data and path byte counts, depth and kind
//! histograms, the biggest subtrees (by nodes and by bytes), the largest values and
//! the ephemerals of each session (`keeperkit stats`).

use std::cmp::Ordering;
use std::collections::{BTreeMap, BinaryHeap, HashMap};

use keeperkit_model::NodeKind;
use keeperkit_tree::{DataTree, NodeRef, PreorderKind, PreorderPart};
use serde::Serialize;

/// A subtree in a top list.
#[derive(Debug, Serialize, Clone, PartialEq, Eq)]
pub struct Subtree {
    /// Path of the subtree's root.
    pub path: String,
    /// Nodes in the subtree, its root included.
    pub nodes: u64,
    /// Data bytes in the subtree.
    pub bytes: u64,
}

/// A value in the top list.
#[derive(Debug, Serialize, Clone, PartialEq, Eq)]
pub struct Value {
    /// Path.
    pub path: String,
    /// Data length.
    pub bytes: u64,
}

/// Ephemerals of one session.
#[derive(Debug, Serialize, Clone, PartialEq, Eq)]
pub struct SessionEphemerals {
    /// Session id in hex.
    pub session: String,
    /// Timeout in ms (`null` when the owner is not a live session).
    pub timeout_ms: Option<i32>,
    /// Number of ephemeral nodes.
    pub ephemerals: u64,
}

/// `stats --json`.
#[derive(Debug, Serialize, Clone, PartialEq, Eq)]
pub struct Stats {
    /// Number of znodes (`nodes` in JSON, as in every report).
    #[serde(rename = "nodes")]
    pub node_count: u64,
    /// Sum of data lengths.
    pub data_bytes: u64,
    /// Sum of path lengths.
    pub path_bytes: u64,
    /// Nodes per depth (root = 0).
    pub depth_histogram: BTreeMap<usize, u64>,
    /// Nodes per kind.
    pub kinds: BTreeMap<&'static str, u64>,
    /// Distinct ACL lists in use.
    pub acl_lists: u64,
    /// Live sessions.
    pub sessions: u64,
    /// Biggest subtrees by node count (the root excluded).
    pub biggest_subtrees_by_nodes: Vec<Subtree>,
    /// Biggest subtrees by data bytes (the root excluded).
    pub biggest_subtrees_by_bytes: Vec<Subtree>,
    /// Largest values.
    pub largest_values: Vec<Value>,
    /// Ephemeral nodes per owning session, most first.
    pub ephemerals_per_session: Vec<SessionEphemerals>,
    /// Digest of the tree (ZooKeeper's algorithm).
    pub digest: String,
}

/// The `top` best items under a total order, kept in a bounded heap: what sorting every
/// candidate and truncating would give, without holding every candidate.
struct TopK<T: Ord> {
    k: usize,
    /// Max-heap on the order: its top is the worst item kept.
    heap: BinaryHeap<T>,
}

impl<T: Ord> TopK<T> {
    fn new(k: usize) -> Self {
        TopK { k, heap: BinaryHeap::with_capacity(k.min(1024) + 1) }
    }

    /// Whether an item that compares as `worse_than_top` would be kept: `beats` says
    /// whether the candidate orders before the current worst.
    fn wants(&self, beats: impl FnOnce(&T) -> bool) -> bool {
        if self.k == 0 {
            return false;
        }
        self.heap.len() < self.k || self.heap.peek().is_some_and(beats)
    }

    fn push(&mut self, item: T) {
        self.heap.push(item);
        if self.heap.len() > self.k {
            self.heap.pop();
        }
    }

    /// The kept items, best first.
    fn into_sorted(self) -> Vec<T> {
        self.heap.into_sorted_vec()
    }
}

/// A ranked candidate: by `key` descending, then by path ascending (paths are unique,
/// so the order is total). `Ord` puts the better one first.
#[derive(PartialEq, Eq)]
struct Ranked {
    key: u64,
    path: String,
    nodes: u64,
    bytes: u64,
}

impl Ord for Ranked {
    fn cmp(&self, o: &Self) -> Ordering {
        o.key.cmp(&self.key).then_with(|| self.path.cmp(&o.path))
    }
}

impl PartialOrd for Ranked {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}

/// Offers a candidate (`key`, `path`) to a top list; the path is copied only if kept.
fn offer(top: &mut TopK<Ranked>, key: u64, path: &str, nodes: u64, bytes: u64) {
    let beats = |w: &Ranked| key > w.key || (key == w.key && path < w.path.as_str());
    if top.wants(beats) {
        top.push(Ranked { key, path: path.to_owned(), nodes, bytes });
    }
}

/// A subtree whose walk is not finished: its path, and its totals so far.
/// A subtree whose totals are still growing.
struct Open {
    path: String,
    nodes: u64,
    bytes: u64,
}

struct SubtreeTops {
    by_nodes: TopK<Ranked>,
    by_bytes: TopK<Ranked>,
}

impl SubtreeTops {
    fn close(&mut self, s: &Open) {
        offer(&mut self.by_nodes, s.nodes, &s.path, s.nodes, s.bytes);
        offer(&mut self.by_bytes, s.bytes, &s.path, s.nodes, s.bytes);
    }
}

/// Open subtrees by depth, `slots[..open]` live, the rest spare path buffers.
struct OpenStack {
    slots: Vec<Open>,
    open: usize,
}

impl OpenStack {
    fn new() -> Self {
        OpenStack { slots: Vec::new(), open: 0 }
    }

    /// Closes every open subtree at stack level `level` or deeper, each into its
    /// parent's totals; returns the totals of those at level 0 (they belong to a
    /// subtree below the stack).
    fn close_to(&mut self, level: usize, tops: &mut SubtreeTops) -> (u64, u64) {
        let mut carried = (0, 0);
        while self.open > level {
            self.open -= 1;
            let s = &self.slots[self.open];
            tops.close(s);
            let (n, b) = (s.nodes, s.bytes);
            if self.open > 0 {
                self.slots[self.open - 1].nodes += n;
                self.slots[self.open - 1].bytes += b;
            } else {
                carried.0 += n;
                carried.1 += b;
            }
        }
        carried
    }

    /// Opens a subtree at the next level.
    fn push(&mut self, path: &str, nodes: u64, bytes: u64) {
        if self.slots.len() == self.open {
            self.slots.push(Open { path: String::new(), nodes: 0, bytes: 0 });
        }
        let slot = &mut self.slots[self.open];
        slot.path.clear();
        slot.path.push_str(path);
        slot.nodes = nodes;
        slot.bytes = bytes;
        self.open += 1;
    }

    fn add(&mut self, level: usize, nodes: u64, bytes: u64) {
        let s = &mut self.slots[level];
        s.nodes += nodes;
        s.bytes += bytes;
    }
}

/// Everything [`compute`] counts per node, for one part of the tree; parts merge.
struct Counts {
    node_count: u64,
    data_bytes: u64,
    path_bytes: u64,
    depths: Vec<u64>,
    /// Persistent, ephemeral, container, TTL.
    kinds: [u64; 4],
    values: TopK<Ranked>,
    tops: SubtreeTops,
    owners: HashMap<i64, u64>,
}

impl Counts {
    fn new(top: usize) -> Self {
        Counts {
            node_count: 0,
            data_bytes: 0,
            path_bytes: 0,
            depths: Vec::new(),
            kinds: [0; 4],
            values: TopK::new(top),
            tops: SubtreeTops { by_nodes: TopK::new(top), by_bytes: TopK::new(top) },
            owners: HashMap::new(),
        }
    }

    /// Counts one node (not its subtree); returns its data length.
    fn node(&mut self, path: &str, depth: usize, node: NodeRef<'_>) -> u64 {
        let len = node.data().map_or(0, <[u8]>::len) as u64;
        self.node_count += 1;
        self.data_bytes += len;
        self.path_bytes += path.len() as u64;
        if self.depths.len() <= depth {
            self.depths.resize(depth + 1, 0);
        }
        self.depths[depth] += 1;
        let kind = node.kind();
        self.kinds[match kind {
            NodeKind::Persistent => 0,
            NodeKind::Ephemeral => 1,
            NodeKind::Container => 2,
            NodeKind::Ttl => 3,
        }] += 1;
        if kind == NodeKind::Ephemeral {
            *self.owners.entry(node.stored_stat().ephemeral_owner).or_default() += 1;
        }
        if len > 0 {
            offer(&mut self.values, len, path, 1, len);
        }
        len
    }

    fn merge(&mut self, o: Counts) {
        self.node_count += o.node_count;
        self.data_bytes += o.data_bytes;
        self.path_bytes += o.path_bytes;
        if self.depths.len() < o.depths.len() {
            self.depths.resize(o.depths.len(), 0);
        }
        for (d, n) in o.depths.into_iter().enumerate() {
            self.depths[d] += n;
        }
        for (k, n) in o.kinds.into_iter().enumerate() {
            self.kinds[k] += n;
        }
        for (id, n) in o.owners {
            *self.owners.entry(id).or_default() += n;
        }
        for r in o.values.heap {
            offer(&mut self.values, r.key, &r.path, r.nodes, r.bytes);
        }
        for r in o.tops.by_nodes.heap {
            offer(&mut self.tops.by_nodes, r.key, &r.path, r.nodes, r.bytes);
        }
        for r in o.tops.by_bytes.heap {
            offer(&mut self.tops.by_bytes, r.key, &r.path, r.nodes, r.bytes);
        }
    }
}

/// How one part of the walk adds to the subtrees it does not hold whole.
enum Edge {
    /// A node alone at this depth (path, data length): its subtree opens here.
    Node(String, usize, u64),
    /// Whole subtrees below the node at this depth, with their node and byte totals.
    Below(usize, u64, u64),
}

/// Counts one part: a node alone, or whole subtrees of siblings, each closed inside.
fn count_part(part: &PreorderPart<'_>, top: usize) -> (Counts, Edge) {
    let mut c = Counts::new(top);
    match part.kind() {
        PreorderKind::Node(path, depth) => {
            let mut len = 0;
            part.for_each(|p, d, n| len = c.node(p, d, n));
            (c, Edge::Node(path.to_owned(), depth, len))
        }
        PreorderKind::Subtrees(_, parent_depth) => {
            let mut stack = OpenStack::new();
            let mut tops = SubtreeTops { by_nodes: TopK::new(top), by_bytes: TopK::new(top) };
            let mut carried = (0, 0);
            part.for_each(|p, depth, n| {
                let len = c.node(p, depth, n);
                // Pre-order: every open subtree at this depth or deeper is complete.
                let level = depth - parent_depth - 1;
                let (n, b) = stack.close_to(level, &mut tops);
                carried = (carried.0 + n, carried.1 + b);
                stack.push(p, 1, len);
            });
            let (n, b) = stack.close_to(0, &mut tops);
            c.tops = tops;
            (c, Edge::Below(parent_depth, carried.0 + n, carried.1 + b))
        }
    }
}

/// Computes the statistics of `tree`, keeping the `top` biggest of each list, on
/// every core.
pub fn compute(tree: &DataTree, top: usize) -> Stats {
    compute_on(tree, top, std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// [`compute`] on `threads` threads (the result does not depend on it).
pub fn compute_on(tree: &DataTree, top: usize, threads: usize) -> Stats {
    let mut all = Counts::new(top);
    // Nodes whose subtree spans parts, by depth from 1 (the root is no subtree of
    // interest); a part of subtrees adds its totals to the node it hangs from.
    let mut spanning = OpenStack::new();
    let mut tops = SubtreeTops { by_nodes: TopK::new(top), by_bytes: TopK::new(top) };
    let merged: Result<(), std::convert::Infallible> = tree.par_preorder(
        threads,
        |part| count_part(part, top),
        |(counts, edge)| {
            all.merge(counts);
            match edge {
                Edge::Node(_, 0, _) => {}
                Edge::Node(path, depth, len) => {
                    spanning.close_to(depth - 1, &mut tops);
                    spanning.push(&path, 1, len);
                }
                Edge::Below(depth, nodes, bytes) => {
                    spanning.close_to(depth, &mut tops);
                    if depth > 0 {
                        spanning.add(depth - 1, nodes, bytes);
                    }
                }
            }
            Ok(())
        },
    );
    if let Err(never) = merged {
        match never {}
    }
    spanning.close_to(0, &mut tops);
    for r in tops.by_nodes.heap {
        offer(&mut all.tops.by_nodes, r.key, &r.path, r.nodes, r.bytes);
    }
    for r in tops.by_bytes.heap {
        offer(&mut all.tops.by_bytes, r.key, &r.path, r.nodes, r.bytes);
    }
    let names = ["persistent", "ephemeral", "container", "ttl"];
    let subtree = |r: Ranked| Subtree { path: r.path, nodes: r.nodes, bytes: r.bytes };
    let mut eph: Vec<SessionEphemerals> = all
        .owners
        .into_iter()
        .map(|(id, n)| SessionEphemerals {
            session: format!("{id:#x}"),
            timeout_ms: tree.session_timeout(keeperkit_model::SessionId(id)),
            ephemerals: n,
        })
        .collect();
    eph.sort_by(|a, b| b.ephemerals.cmp(&a.ephemerals).then_with(|| a.session.cmp(&b.session)));
    Stats {
        node_count: all.node_count,
        data_bytes: all.data_bytes,
        path_bytes: all.path_bytes,
        depth_histogram: all.depths.into_iter().enumerate().filter(|&(_, n)| n > 0).collect(),
        kinds: names.into_iter().zip(all.kinds).filter(|&(_, n)| n > 0).collect(),
        acl_lists: tree.acl_lists().len() as u64,
        sessions: tree.sessions().len() as u64,
        biggest_subtrees_by_nodes: all
            .tops
            .by_nodes
            .into_sorted()
            .into_iter()
            .map(subtree)
            .collect(),
        biggest_subtrees_by_bytes: all
            .tops
            .by_bytes
            .into_sorted()
            .into_iter()
            .map(subtree)
            .collect(),
        largest_values: all
            .values
            .into_sorted()
            .into_iter()
            .map(|r| Value { path: r.path, bytes: r.bytes })
            .collect(),
        ephemerals_per_session: eph,
        digest: format!("{:#x}", tree.digest()),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use keeperkit_model::{Acl, SessionId, StatPersisted};

    /// The statistics as first written: every subtree and value listed, then sorted.
    fn naive(tree: &DataTree, top: usize) -> Stats {
        let mut s = Stats {
            node_count: 0,
            data_bytes: 0,
            path_bytes: 0,
            depth_histogram: BTreeMap::new(),
            kinds: BTreeMap::new(),
            acl_lists: tree.acl_lists().len() as u64,
            sessions: tree.sessions().len() as u64,
            biggest_subtrees_by_nodes: vec![],
            biggest_subtrees_by_bytes: vec![],
            largest_values: vec![],
            ephemerals_per_session: vec![],
            digest: format!("{:#x}", tree.digest()),
        };
        // Subtree totals accumulate into every proper ancestor except the root.
        let mut subtrees: HashMap<String, (u64, u64)> = HashMap::new();
        let mut values: Vec<Value> = Vec::new();
        let mut owners: HashMap<i64, u64> = HashMap::new();
        tree.for_each_preorder(|path, node| {
            let len = node.data().map_or(0, <[u8]>::len) as u64;
            s.node_count += 1;
            s.data_bytes += len;
            s.path_bytes += path.len() as u64;
            *s.depth_histogram.entry(keeperkit_model::path::depth(path)).or_default() += 1;
            let kind = match node.kind() {
                NodeKind::Persistent => "persistent",
                NodeKind::Ephemeral => "ephemeral",
                NodeKind::Container => "container",
                NodeKind::Ttl => "ttl",
            };
            *s.kinds.entry(kind).or_default() += 1;
            if node.kind() == NodeKind::Ephemeral {
                *owners.entry(node.stored_stat().ephemeral_owner).or_default() += 1;
            }
            if len > 0 {
                values.push(Value { path: path.to_string(), bytes: len });
            }
            if path != "/" {
                let mut p = path;
                loop {
                    let e = subtrees.entry(p.to_string()).or_default();
                    e.0 += 1;
                    e.1 += len;
                    match keeperkit_model::path::parent(p) {
                        Some("/") | None => break,
                        Some(q) => p = q,
                    }
                }
            }
        });
        values.sort_by(|a, b| b.bytes.cmp(&a.bytes).then_with(|| a.path.cmp(&b.path)));
        values.truncate(top);
        s.largest_values = values;
        let mut subs: Vec<Subtree> = subtrees
            .into_iter()
            .map(|(path, (nodes, bytes))| Subtree { path, nodes, bytes })
            .collect();
        subs.sort_by(|a, b| b.nodes.cmp(&a.nodes).then_with(|| a.path.cmp(&b.path)));
        s.biggest_subtrees_by_nodes = subs.iter().take(top).cloned().collect();
        subs.sort_by(|a, b| b.bytes.cmp(&a.bytes).then_with(|| a.path.cmp(&b.path)));
        s.biggest_subtrees_by_bytes = subs.into_iter().take(top).collect();
        let mut eph: Vec<SessionEphemerals> = owners
            .into_iter()
            .map(|(id, n)| SessionEphemerals {
                session: format!("{id:#x}"),
                timeout_ms: tree.session_timeout(keeperkit_model::SessionId(id)),
                ephemerals: n,
            })
            .collect();
        eph.sort_by(|a, b| b.ephemerals.cmp(&a.ephemerals).then_with(|| a.session.cmp(&b.session)));
        s.ephemerals_per_session = eph;
        s
    }

    /// A tree with many ties (equal subtree sizes, equal value lengths), ephemerals of
    /// two sessions (one live), containers, and a deep chain.
    fn sample() -> DataTree {
        let mut t = DataTree::new();
        t.add_session(SessionId(7), 4000);
        let acl = Acl::open_unsafe();
        let mut z = 0;
        let mut add = |t: &mut DataTree, p: &str, data: &[u8], owner: i64| {
            z += 1;
            let stat =
                StatPersisted { czxid: z, mzxid: z, ephemeral_owner: owner, ..Default::default() };
            t.insert_loaded(p, Some(data), &acl, stat).unwrap();
        };
        for a in 0..6 {
            add(&mut t, &format!("/a{a}"), &vec![b'x'; a % 3], 0);
            for b in 0..(a % 4) {
                add(&mut t, &format!("/a{a}/b{b}"), &vec![b'y'; (a + b) % 5], 0);
                for c in 0..2 {
                    let owner = match c {
                        0 => 7,
                        _ if b == 1 => 9,
                        _ => i64::MIN,
                    };
                    add(&mut t, &format!("/a{a}/b{b}/c{c}"), b"vv", owner);
                }
            }
        }
        let mut p = String::from("/deep");
        for i in 0..30 {
            add(&mut t, &p, &vec![b'z'; i % 7], 0);
            p.push_str("/d");
        }
        t
    }

    #[test]
    fn one_pass_equals_listing_everything() {
        let t = sample();
        for top in [0, 1, 3, 10, 1000] {
            let want = naive(&t, top);
            for threads in [1, 2, 3] {
                assert_eq!(compute_on(&t, top, threads), want, "top {top}, {threads} threads");
            }
        }
        let s = compute(&t, 5);
        assert_eq!(s.node_count, t.node_count() as u64);
        assert_eq!(s.kinds.get("ephemeral"), Some(&9));
        assert_eq!(s.kinds.get("container"), Some(&5));
        assert_eq!(s.ephemerals_per_session.len(), 2);
        assert_eq!(s.biggest_subtrees_by_nodes[0].path, "/deep");
    }
}
